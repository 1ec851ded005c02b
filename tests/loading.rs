//! Checkpoints as researchers have them (issue 21), made by Python
//! `transformers` (scripts/make_loading_fixtures.py, run here into a temp
//! dir): sharded safetensors and `.bin`, a TinyBERT-style config without
//! `model_type` plus extra fields and keys, a `bert_config.json`-only
//! directory with TF-era names, and a hub cache loaded by id offline. Each
//! must give transformers' [CLS] logits to 1e-4.
use encoder_bench::data::LabelMap;
use encoder_bench::models::{ModelSource, TextClassifier, load_classifier, load_classifier_as};
use encoder_bench::weights::{ModelFamily, ShardIndex, WeightSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use tch::{Device, Kind, Tensor};

const TOL: f64 = 1e-4;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The fixtures, made once per process; `None` (test skipped) without `.venv`.
fn fixtures() -> Option<&'static Path> {
    static DIR: OnceLock<Option<tempfile::TempDir>> = OnceLock::new();
    DIR.get_or_init(|| {
        let py = root().join(".venv/bin/python");
        if !py.exists() {
            eprintln!("SKIPPED: {} is absent (run `make setup`); these checks need transformers", py.display());
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new(&py).arg(root().join("scripts/make_loading_fixtures.py")).arg(dir.path()).output().unwrap();
        assert!(
            out.status.success(),
            "make_loading_fixtures.py failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        Some(dir)
    })
    .as_ref()
    .map(|d| d.path())
}

struct Reference {
    ids: Tensor,
    mask: Tensor,
    logits: Tensor,
}

fn reference(dir: &Path, key: &str) -> Reference {
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.join("reference.json")).unwrap()).unwrap();
    let rows = |key: &str| -> Vec<Vec<f64>> { serde_json::from_value(v[key].clone()).unwrap() };
    let int = |key: &str| {
        let r = rows(key);
        let flat: Vec<i64> = r.iter().flatten().map(|&x| x as i64).collect();
        Tensor::from_slice(&flat).view([r.len() as i64, -1])
    };
    let l = rows(key);
    let flat: Vec<f32> = l.iter().flatten().map(|&x| x as f32).collect();
    Reference { ids: int("input_ids"), mask: int("attention_mask"), logits: Tensor::from_slice(&flat).view([l.len() as i64, -1]) }
}

/// Max |ours - transformers'| over the logits; asserts it is below 1e-4. A
/// checkpoint naming `BertForSequenceClassification` loads with transformers'
/// pooler head (`seq_logits`), one without `architectures` with the seed's
/// [CLS] head (`cls_logits`).
fn check_logits(model: &dyn TextClassifier, dir: &Path, what: &str) -> f64 {
    check_logits_of(model, dir, what, "cls_logits")
}

fn check_seq_logits(model: &dyn TextClassifier, dir: &Path, what: &str) -> f64 {
    check_logits_of(model, dir, what, "seq_logits")
}

fn check_logits_of(model: &dyn TextClassifier, dir: &Path, what: &str, key: &str) -> f64 {
    let r = reference(dir, key);
    let ours = tch::no_grad(|| model.forward_t(&r.ids, &r.mask, None, false)).to_kind(Kind::Float);
    let diff = (ours - &r.logits).abs().max().double_value(&[]);
    println!("{what}: max abs diff of [CLS] logits vs transformers = {diff:.3e}");
    assert!(diff < TOL, "{what}: max abs diff {diff} >= {TOL}");
    diff
}

fn labels() -> Option<LabelMap> {
    Some(LabelMap::numbered(3))
}

#[test]
fn sharded_safetensors_load_shard_by_shard_with_transformers_logits() {
    let Some(fx) = fixtures() else { return };
    let dir = fx.join("sharded-safetensors");
    let (model, report) = load_classifier(&ModelSource::Dir(dir.clone()), labels(), Device::Cpu, 0).unwrap();
    assert!(report.source.ends_with("model.safetensors.index.json"), "{report}");
    assert!(report.shards >= 3, "{report}");
    assert_eq!((report.family.as_str(), report.family_from.as_str()), ("bert", "model_type"));
    assert!(report.missing.is_empty() && report.unexpected.is_empty(), "{report}");
    check_seq_logits(model.as_ref(), fx, "sharded safetensors");
    // The comparison can fail: a random model of the same shape is far off.
    let other = encoder_bench::models::random_classifier(model.config(), LabelMap::numbered(3), Device::Cpu, 1);
    let r = reference(fx, "seq_logits");
    let ours = tch::no_grad(|| other.forward_t(&r.ids, &r.mask, None, false));
    assert!((ours - &r.logits).abs().max().double_value(&[]) > 1e-2);
}

#[test]
fn sharded_bin_loads_with_transformers_logits() {
    let Some(fx) = fixtures() else { return };
    let dir = fx.join("sharded-bin");
    let (model, report) = load_classifier(&ModelSource::Dir(dir), labels(), Device::Cpu, 0).unwrap();
    assert!(report.source.ends_with("pytorch_model.bin.index.json"), "{report}");
    assert!(report.shards >= 3, "{report}");
    assert!(report.missing.is_empty() && report.unexpected.is_empty(), "{report}");
    check_seq_logits(model.as_ref(), fx, "sharded .bin");
}

#[test]
fn tinybert_style_config_loads_by_key_inference_and_by_family_given() {
    let Some(fx) = fixtures() else { return };
    let src = ModelSource::Dir(fx.join("tinybert"));
    let (model, report) = load_classifier(&src, labels(), Device::Cpu, 0).unwrap();
    assert_eq!((report.family.as_str(), report.family_from.as_str()), ("bert", "weight keys"));
    for field in ["cell", "emb_size", "pre_trained", "structure"] {
        assert!(report.config_ignored.iter().any(|f| f == field), "{field} not listed: {report}");
    }
    assert!(report.summary().contains("config fields ignored") && report.summary().contains("weight keys"), "{report}");
    assert!(report.ignored.iter().any(|k| k.starts_with("fit_denses.")), "{report}");
    assert!(report.ignored.iter().any(|k| k.starts_with("cls.predictions.")), "{report}");
    assert!(report.unexpected.is_empty() && report.missing.is_empty(), "{report}");
    check_logits(model.as_ref(), fx, "TinyBERT-style, family from weight keys");

    let (model, report) = load_classifier_as(&src, Some(ModelFamily::Bert), labels(), Device::Cpu, 0).unwrap();
    assert_eq!(report.family_from, "caller");
    check_logits(model.as_ref(), fx, "TinyBERT-style, family bert given");

    // The wrong family given is an error naming a key, not a panic.
    let e = load_classifier_as(&src, Some(ModelFamily::Electra), labels(), Device::Cpu, 0).unwrap_err().to_string();
    assert!(e.contains("pytorch_model.bin") && e.contains("key `"), "{e}");
}

#[test]
fn bert_config_json_only_directory_with_gamma_beta_names_loads() {
    let Some(fx) = fixtures() else { return };
    let dir = fx.join("google");
    assert!(!dir.join("config.json").exists());
    let files = ModelSource::Dir(dir.clone()).resolve().unwrap();
    assert!(files.config.ends_with("bert_config.json"));
    let (model, report) = load_classifier(&ModelSource::Dir(dir), labels(), Device::Cpu, 0).unwrap();
    assert_eq!(report.family_from, "weight keys");
    assert!(report.renamed > 0 && report.unexpected.is_empty(), "{report}");
    check_logits(model.as_ref(), fx, "bert_config.json + LayerNorm.gamma/beta");
}

/// Runs this test binary's `hub_child` test in a child process with `env`
/// (hub variables are process-wide; the child keeps them out of this process).
fn run_child(fx: &Path, env: &[(&str, String)]) -> String {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["--exact", "hub_child", "--nocapture", "--test-threads", "1"])
        .env("LOADING_FIXTURES", fx)
        .env("LOADING_HUB_CHILD", "1")
        .env("HF_HUB_OFFLINE", "1")
        .env_remove("HF_HUB_CACHE")
        .env_remove("HF_HOME");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let text = format!("{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "child failed:\n{text}");
    assert!(text.contains("1 passed"), "the child test did not run:\n{text}");
    text
}

#[test]
fn hub_id_loads_from_a_local_hub_cache_offline() {
    let Some(fx) = fixtures() else { return };
    let hub = fx.join("hub").display().to_string();
    let home_unused = fx.join("no-such-home").display().to_string();
    // HF_HUB_CACHE wins over HF_HOME, as in huggingface_hub ...
    let text = run_child(fx, &[("HF_HUB_CACHE", hub), ("HF_HOME", home_unused)]);
    assert!(text.contains("hub id: max abs diff"), "{text}");
    // ... and HF_HOME alone means HF_HOME/hub.
    let text = run_child(fx, &[("HF_HOME", fx.display().to_string())]);
    assert!(text.contains("hub id: max abs diff"), "{text}");
}

/// The child side of [`hub_id_loads_from_a_local_hub_cache_offline`]; a no-op when run directly.
#[test]
fn hub_child() {
    if std::env::var("LOADING_HUB_CHILD").is_err() {
        return;
    }
    let fx = PathBuf::from(std::env::var("LOADING_FIXTURES").unwrap());
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(fx.join("reference.json")).unwrap()).unwrap();
    let id = v["hub_id"].as_str().unwrap();
    let src = ModelSource::parse(id);
    assert_eq!(src, ModelSource::Hub(id.to_string()));
    let files = src.resolve().unwrap();
    assert!(files.weights.ends_with("model.safetensors.index.json"), "{files:?}");
    let (model, report) = load_classifier(&src, labels(), Device::Cpu, 0).unwrap();
    assert!(report.shards >= 3, "{report}");
    check_seq_logits(model.as_ref(), &fx, "hub id");
    // An id the cache lacks names itself and the offline mode.
    let e = ModelSource::Hub("test-org/absent".into()).resolve().unwrap_err().to_string();
    assert!(e.contains("test-org/absent") && e.contains("HF_HUB_OFFLINE"), "{e}");
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

fn edit_index(path: &Path, f: impl FnOnce(&mut serde_json::Map<String, serde_json::Value>)) {
    let mut v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    f(v["weight_map"].as_object_mut().unwrap());
    std::fs::write(path, serde_json::to_string(&v).unwrap()).unwrap();
}

#[test]
fn missing_shard_file_is_an_error_naming_file_and_key() {
    let Some(fx) = fixtures() else { return };
    for (name, index) in [("sharded-safetensors", "model.safetensors.index.json"), ("sharded-bin", "pytorch_model.bin.index.json")] {
        let tmp = tempfile::tempdir().unwrap();
        copy_dir(&fx.join(name), tmp.path());
        let shard = ShardIndex::read(tmp.path().join(index)).unwrap().shard_files().pop().unwrap();
        std::fs::remove_file(&shard).unwrap();
        let e = load_classifier(&ModelSource::Dir(tmp.path().into()), labels(), Device::Cpu, 0).unwrap_err().to_string();
        println!("{e}");
        let shard_name = shard.file_name().unwrap().to_str().unwrap();
        assert!(e.contains(shard_name) && e.contains("key `") && e.contains("shard file not found") && e.contains(index), "{e}");
    }
}

#[test]
fn index_key_missing_from_its_shard_is_an_error_naming_file_and_key() {
    let Some(fx) = fixtures() else { return };
    for (name, index) in [("sharded-safetensors", "model.safetensors.index.json"), ("sharded-bin", "pytorch_model.bin.index.json")] {
        let tmp = tempfile::tempdir().unwrap();
        copy_dir(&fx.join(name), tmp.path());
        let idx = tmp.path().join(index);
        let first = ShardIndex::read(&idx).unwrap().shard_files()[0].file_name().unwrap().to_str().unwrap().to_string();
        edit_index(&idx, |m| {
            m.insert("bert.encoder.layer.9.output.dense.weight".into(), first.clone().into());
        });
        let e = load_classifier(&ModelSource::Dir(tmp.path().into()), labels(), Device::Cpu, 0).unwrap_err().to_string();
        assert!(
            e.contains(&first) && e.contains("key `bert.encoder.layer.9.output.dense.weight`") && e.contains("missing from this shard"),
            "{e}"
        );
    }
}

#[test]
fn shard_names_outside_the_directory_and_bad_indexes_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let idx = tmp.path().join("model.safetensors.index.json");
    std::fs::write(&idx, r#"{"weight_map": {"w": "../elsewhere.safetensors"}}"#).unwrap();
    let e = WeightSet::open(&idx).unwrap_err().to_string();
    assert!(e.contains("key `w`") && e.contains("not a plain file name"), "{e}");
    std::fs::write(&idx, r#"{"metadata": {}}"#).unwrap();
    let e = WeightSet::open(&idx).unwrap_err().to_string();
    assert!(e.contains("weight_map") && e.contains("missing"), "{e}");
    std::fs::write(&idx, "not json").unwrap();
    let e = WeightSet::open(&idx).unwrap_err().to_string();
    assert!(e.contains("not a valid shard index"), "{e}");
}

#[test]
fn undecidable_family_asks_for_one() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("config.json"), r#"{"hidden_size": 4, "num_attention_heads": 2}"#).unwrap();
    Tensor::write_safetensors(
        &[("decoder.weight", Tensor::zeros([2, 2], (Kind::Float, Device::Cpu)))],
        tmp.path().join("model.safetensors"),
    )
    .unwrap();
    let e = load_classifier(&ModelSource::Dir(tmp.path().into()), labels(), Device::Cpu, 0).unwrap_err().to_string();
    println!("{e}");
    assert!(e.contains("key `model_type`") && e.contains("decoder.weight") && e.contains("--family"), "{e}");
}

/// `--family` on the command line (the `ModelArgs` every command shares),
/// on a TinyBERT-style checkpoint without a classifier head.
#[test]
fn cli_family_flag_and_key_inference() {
    let Some(fx) = fixtures() else { return };
    let model = fx.join("tinybert-general").display().to_string();
    let tok = root().join("models/minilm").display().to_string();
    let data = root().join("../shared/data/wos-sample").display().to_string();
    let bench = |family: &[&str]| {
        let mut args = vec!["bench", "--model", &model, "--tokenizer", &tok, "--data", &data, "--device", "cpu"];
        args.extend(["--batch-size", "2", "--max-len", "16", "--warmup", "0", "--train-steps", "1", "--eval-batches", "1"]);
        args.extend(family);
        let out = Command::new(env!("CARGO_BIN_EXE_encoder-bench")).args(&args).env("RUST_BACKTRACE", "0").output().unwrap();
        (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let (ok, err) = bench(&["--family", "bert"]);
    assert!(ok && err.contains("family:     bert (from caller)") && err.contains("config fields ignored: cell"), "{err}");
    assert!(err.contains("missing:    classifier.bias, classifier.weight (newly initialised)"), "{err}");
    let (ok, err) = bench(&[]);
    assert!(ok && err.contains("family:     bert (from weight keys)"), "{err}");
    let (ok, err) = bench(&["--family", "electra"]);
    assert!(!ok && err.contains("pytorch_model.bin: key `") && !err.contains("panicked"), "{err}");
    let (ok, err) = bench(&["--family", "gpt2"]);
    assert!(!ok && err.contains("possible values: bert, electra"), "{err}");
}

/// ELECTRA without `model_type`/`architectures`: inferred from the `electra.`
/// keys and `embeddings_project`, and the reloaded model gives the same logits.
#[test]
fn electra_without_model_type_is_inferred_from_its_keys() {
    use encoder_bench::models::{ElectraClassifier, ElectraConfig, save_classifier};
    let cfg: ElectraConfig = serde_json::from_value(serde_json::json!({"vocab_size": 50, "embedding_size": 8, "hidden_size": 16,
        "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 32, "max_position_embeddings": 16}))
    .unwrap();
    tch::manual_seed(3);
    let model = ElectraClassifier::new(&cfg, LabelMap::numbered(3));
    let tmp = tempfile::tempdir().unwrap();
    save_classifier(&model, tmp.path(), None).unwrap();
    let path = tmp.path().join("config.json");
    let mut v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    for k in ["model_type", "architectures"] {
        v.as_object_mut().unwrap().remove(k);
    }
    std::fs::write(&path, v.to_string()).unwrap();
    let (loaded, report) = load_classifier(&ModelSource::Dir(tmp.path().into()), None, Device::Cpu, 0).unwrap();
    assert_eq!((report.family.as_str(), report.family_from.as_str()), ("electra", "weight keys"), "{report}");
    let ids = Tensor::from_slice(&[2i64, 5, 7, 9]).view([1, 4]);
    let (a, b) =
        tch::no_grad(|| (model.forward_t(&ids, &ids.ones_like(), None, false), loaded.forward_t(&ids, &ids.ones_like(), None, false)));
    assert_eq!((a - b).abs().max().double_value(&[]), 0.0);
}
