//! Checkpoints fine-tuned here load in Python `transformers` with the same
//! predictions, or refuse to load: each head × family (BERT, ELECTRA) is
//! fine-tuned a few steps (tiny random models, vocabulary of models/minilm),
//! saved, exported, and loaded by scripts/heads_parity.py with
//! `AutoModelForSequenceClassification.from_pretrained`; its logits must
//! match ours within 1e-4. The seed's head must be refused without
//! `trust_remote_code` and match with it.
use encoder_bench::data::{Dataset, LabelMap, Split, WosLevel};
use encoder_bench::models::export::export_classifier;
use encoder_bench::models::{
    Head, ModelConfig, ModelSource, TextClassifier, load_classifier, load_classifier_with_head, random_classifier_with_head,
};
use encoder_bench::tokenizer::TextTokenizer;
use encoder_bench::train::{OptimizerConfig, ProgressMode, StopConfig, TrainConfig, fit};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use tch::{Device, Tensor};

static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn python() -> Option<PathBuf> {
    let p = root().join(".venv/bin/python");
    if p.exists() {
        Some(p)
    } else {
        eprintln!("SKIPPED: {} is absent (run `make setup`); the Python parity checks need transformers", p.display());
        None
    }
}

fn run_python(py: &Path, args: &[&str]) -> String {
    let out = Command::new(py).arg(root().join("scripts/heads_parity.py")).args(args).output().unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "heads_parity.py {args:?} failed:\n{stdout}\n{stderr}");
    stdout.into_owned()
}

fn config(family: &str) -> ModelConfig {
    match family {
        "bert" => ModelConfig::from_file(root().join("tests/fixtures/tiny-bert.json")).unwrap(),
        _ => ModelConfig::Electra(
            serde_json::from_str(
                r#"{"model_type": "electra", "vocab_size": 30522, "embedding_size": 16, "hidden_size": 32, "num_hidden_layers": 2,
            "num_attention_heads": 4, "intermediate_size": 48, "max_position_embeddings": 64, "pad_token_id": 0}"#,
            )
            .unwrap(),
        ),
    }
}

/// A few steps of `fit` on the WOS sample; returns the model and its `best/` checkpoint.
fn fine_tuned(family: &str, head: Head, dir: &Path) -> (Box<dyn TextClassifier>, PathBuf) {
    let ds = Dataset::read_wos(root().join("../shared/data/wos-sample"), WosLevel::L1).unwrap();
    let split = Split::first_n(&ds.subset(&(0..40).collect::<Vec<_>>()), 32).unwrap();
    let tok = TextTokenizer::from_dir(root().join("models/minilm")).unwrap();
    let (train, test) = (tok.encode_dataset(&split.train, 32).unwrap(), tok.encode_dataset(&split.test, 32).unwrap());
    let mut model = random_classifier_with_head(&config(family), LabelMap::wos_level1(), head, Device::Cpu, 1);
    let cfg = TrainConfig {
        max_len: 32,
        batch_size: 8,
        optimizer: OptimizerConfig { learning_rate: 1e-3, ..OptimizerConfig::transformers() },
        stop: StopConfig { epochs: 1, ..Default::default() },
        progress: ProgressMode::Quiet,
        checkpoint_dir: Some(dir.to_path_buf()),
        ..TrainConfig::transformers_recipe()
    };
    fit(model.as_mut(), &train, &test, &cfg).unwrap();
    (model, dir.join("best"))
}

/// Max |ours - transformers'| on the texts heads_parity.py wrote to `out`.
fn logit_diff(model: &dyn TextClassifier, out: &Path) -> f64 {
    let f: HashMap<String, Tensor> = Tensor::read_safetensors(out).unwrap().into_iter().collect();
    let ours = tch::no_grad(|| model.forward_t(&f["input_ids"], &f["attention_mask"], Some(&f["token_type_ids"]), false));
    assert_eq!(ours.size(), f["logits"].size());
    (ours - &f["logits"]).abs().max().double_value(&[])
}

fn check(family: &str, head: Head) {
    let _guard = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let tmp = tempfile::tempdir().unwrap();
    let (model, best) = fine_tuned(family, head, tmp.path());
    // Our own loader rebuilds the same head from config.json, with the label names.
    let (back, report) = load_classifier(&ModelSource::Dir(best.clone()), None, Device::Cpu, 9).unwrap();
    assert!(report.missing.is_empty() && report.unexpected.is_empty(), "{report}");
    assert_eq!(back.head(), head);
    assert_eq!(back.labels().names()[0], "Computer Science");
    let other = if head == Head::Cls { Head::Transformers } else { Head::Cls };
    let e = load_classifier_with_head(&ModelSource::Dir(best.clone()), None, Some(other), Device::Cpu, 0).unwrap_err().to_string();
    assert!(e.contains("encoder_bench_head"), "{e}");

    let cfg: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(best.join("config.json")).unwrap()).unwrap();
    assert_eq!(cfg["id2label"]["0"], "Computer Science");
    assert_eq!(cfg["label2id"]["Computer Science"], 0);
    assert_eq!(cfg["architectures"][0], head.architecture(family));

    let exported = tmp.path().join("exported");
    let e =
        export_classifier(&ModelSource::Dir(best.clone()), Some(LabelMap::wos_level1()), Some(&root().join("models/minilm")), &exported)
            .unwrap();
    assert_eq!((e.head, e.needs_remote_code), (head, head == Head::Cls));
    assert!(exported.join("tokenizer.json").exists() && exported.join("model.safetensors").exists());

    let Some(py) = python() else { return };
    let refusal = run_python(&py, &["refuse", exported.to_str().unwrap()]);
    let r: serde_json::Value = serde_json::from_str(refusal.lines().last().unwrap_or_default()).unwrap();
    let out = tmp.path().join("logits.safetensors");
    let report = match head {
        Head::Transformers => {
            assert_eq!(r["refused"], false, "{refusal}");
            assert_eq!(r["class"], head.architecture(family), "{refusal}");
            run_python(&py, &["logits", exported.to_str().unwrap(), out.to_str().unwrap()])
        }
        Head::Cls => {
            // Without remote code transformers must refuse: never a BertForSequenceClassification
            // with a newly initialised pooler.
            assert_eq!(r["refused"], true, "{refusal}");
            assert!(r["error"].as_str().unwrap().contains("trust_remote_code"), "{refusal}");
            run_python(&py, &["logits", exported.to_str().unwrap(), out.to_str().unwrap(), "--trust-remote-code"])
        }
    };
    let v: serde_json::Value = serde_json::from_str(report.lines().last().unwrap_or_default()).unwrap_or_else(|e| panic!("{e}: {report}"));
    assert_eq!(v["id2label"]["0"], "Computer Science", "{report}");
    assert_eq!(v["loading_info"], serde_json::json!({}), "{report}");
    let d = logit_diff(model.as_ref(), &out);
    println!("{family} / {head} head: {} max abs logit diff vs transformers {d:e}", v["class"]);
    assert!(d <= 1e-4, "{family} / {head}: max abs diff {d}");
    // The checkpoint itself (not only the export) loads the same way.
    let report = match head {
        Head::Transformers => run_python(&py, &["logits", best.to_str().unwrap(), out.to_str().unwrap()]),
        Head::Cls => run_python(&py, &["logits", best.to_str().unwrap(), out.to_str().unwrap(), "--trust-remote-code"]),
    };
    assert!(report.contains("\"loading_info\": {}"), "{report}");
    assert!(logit_diff(model.as_ref(), &out) <= 1e-4);
}

#[test]
fn bert_transformers_head_matches_transformers() {
    check("bert", Head::Transformers);
}

#[test]
fn electra_transformers_head_matches_transformers() {
    check("electra", Head::Transformers);
}

#[test]
fn bert_seed_head_is_refused_without_remote_code_and_matches_with_it() {
    check("bert", Head::Cls);
}

#[test]
fn electra_seed_head_is_refused_without_remote_code_and_matches_with_it() {
    check("electra", Head::Cls);
}

/// A pretrained BERT's pooler is loaded into the transformers head.
#[test]
fn transformers_head_loads_the_pretrained_pooler() {
    let _guard = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let src = ModelSource::Dir(root().join("models/minilm"));
    let (_, report) = load_classifier_with_head(&src, Some(LabelMap::wos_level1()), Some(Head::Transformers), Device::Cpu, 0).unwrap();
    assert!(report.loaded.iter().any(|k| k == "bert.pooler.dense.weight"), "{report}");
    assert_eq!(report.missing, ["classifier.bias", "classifier.weight"], "{report}");
}
