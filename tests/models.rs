//! Parity with Python `transformers` on real checkpoints, loading and saving.
//! Fixtures come from `scripts/make_parity_fixtures.py` (run by `make test`).
use encoder_bench::data::LabelMap;
use encoder_bench::models::{
    BertConfig, BertModel, ElectraConfig, ElectraModel, ModelSource, load_classifier, read_weights, save_classifier,
};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use tch::{Device, Kind, Tensor, nn};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn fixture(name: &str) -> HashMap<String, Tensor> {
    let p = root().join("tests/fixtures/large").join(name);
    assert!(p.exists(), "{} is missing: run `make fixtures`", p.display());
    Tensor::read_safetensors(p).unwrap().into_iter().collect()
}

fn minilm() -> PathBuf {
    let p = root().join("models/minilm");
    assert!(p.join("config.json").exists(), "models/minilm is missing: run `make setup`");
    p
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
    (a - b).abs().max().double_value(&[])
}

/// Compares only real (unpadded) positions: padded rows are not defined to match.
fn masked_diff(ours: &Tensor, theirs: &Tensor, mask: &Tensor) -> f64 {
    let m = mask.to_kind(Kind::Float).unsqueeze(-1);
    max_abs_diff(&(ours * &m), &(theirs * &m))
}

#[test]
fn minilm_last_hidden_state_matches_transformers() {
    let dir = minilm();
    let f = fixture("minilm_parity.safetensors");
    let cfg = BertConfig::from_file(dir.join("config.json")).unwrap();
    let vs = nn::VarStore::new(Device::Cpu);
    let model = BertModel::new(&vs.root(), &cfg, true);
    let map =
        encoder_bench::weights::KeyMap { encoder_prefix: "", strip_prefixes: &["bert."], ignore: &["position_ids"], may_be_missing: &[] };
    let weights = read_weights(dir.join("model.safetensors")).unwrap();
    let report = encoder_bench::weights::load_into(&vs, weights, &map, &dir).unwrap();
    assert!(report.missing.is_empty() && report.unexpected.is_empty(), "{report}");
    let mask = &f["attention_mask"];
    let hidden = tch::no_grad(|| model.forward(&f["input_ids"], mask, Some(&f["token_type_ids"]), false));
    assert_eq!(hidden.size(), f["last_hidden_state"].size());
    let lens = Vec::<i64>::try_from(mask.sum_dim_intlist(1, false, Kind::Int64)).unwrap();
    assert!(lens.iter().min() != lens.iter().max(), "fixture must contain padding: {lens:?}");
    let d = masked_diff(&hidden, &f["last_hidden_state"], mask);
    assert!(d <= 1e-4, "max abs diff {d}");
}

#[test]
fn seed_shaped_electra_state_dict_matches_transformers() {
    let dir = root().join("tests/fixtures/large/electra-seed");
    let f = fixture("electra_parity.safetensors");
    let cfg = ElectraConfig::from_file(dir.join("config.json")).unwrap();
    assert_eq!((cfg.embedding_size, cfg.hidden_size, cfg.num_hidden_layers), (64, 196, 18));
    let vs = nn::VarStore::new(Device::Cpu);
    let model = ElectraModel::new(&(vs.root() / "electra"), &cfg);
    let map = encoder_bench::weights::KeyMap {
        encoder_prefix: "electra",
        strip_prefixes: &["electra."],
        ignore: &["position_ids", "generator_"],
        may_be_missing: &[],
    };
    let weights = read_weights(dir.join("babylm_model.bin")).unwrap();
    let report = encoder_bench::weights::load_into(&vs, weights, &map, &dir).unwrap();
    assert!(report.missing.is_empty() && report.unexpected.is_empty(), "{report}");
    assert!(report.ignored.iter().any(|k| k.starts_with("generator_lm_head")), "{report}");
    let mask = &f["attention_mask"];
    let hidden = tch::no_grad(|| model.forward(&f["input_ids"], mask, Some(&f["token_type_ids"]), false));
    let d = masked_diff(&hidden, &f["last_hidden_state"], mask);
    assert!(d <= 1e-4, "max abs diff {d}");
}

#[test]
fn electra_classifier_loads_the_seed_files_and_reports_the_new_head() {
    let dir = root().join("tests/fixtures/large/electra-seed");
    let src = ModelSource::state_dict(dir.join("config.json"), dir.join("babylm_model.bin"));
    let (model, report) = load_classifier(&src, Some(LabelMap::wos_level1()), Device::Cpu, 0).unwrap();
    assert_eq!(model.config().family(), "electra");
    assert_eq!(report.missing, vec!["classifier.bias".to_string(), "classifier.weight".to_string()]);
    assert!(report.unexpected.is_empty(), "{report}");
    assert!(report.summary().contains("newly initialised"));
}

#[test]
fn one_training_step_matches_pytorch() {
    let f = fixture("train_step.safetensors");
    let (model, _) = load_classifier(&ModelSource::Dir(minilm()), Some(LabelMap::wos_level1()), Device::Cpu, 0).unwrap();
    let vars = model.var_store().variables();
    tch::no_grad(|| {
        vars["classifier.weight"].shallow_clone().copy_(&f["classifier.weight"]);
        vars["classifier.bias"].shallow_clone().copy_(&f["classifier.bias"]);
    });
    let logits = model.forward_t(&f["input_ids"], &f["attention_mask"], Some(&f["token_type_ids"]), false);
    assert!(max_abs_diff(&logits, &f["logits"]) <= 1e-4);
    let loss = logits.cross_entropy_loss::<Tensor>(&f["targets"], None, tch::Reduction::Mean, -100, 0.001);
    assert!((loss.double_value(&[]) - f["loss"].double_value(&[0])).abs() <= 1e-4);
    loss.backward();
    for name in ["classifier.weight", "classifier.bias", "bert.encoder.layer.0.attention.self.query.weight"] {
        let d = max_abs_diff(&vars[name].grad(), &f[&format!("grad.{name}")]);
        assert!(d <= 1e-4, "{name}: grad diff {d}");
    }
}

#[test]
fn saved_classifier_reloads_with_identical_predictions() {
    let (model, _) = load_classifier(&ModelSource::Dir(minilm()), Some(LabelMap::wos_level1()), Device::Cpu, 3).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    save_classifier(model.as_ref(), tmp.path(), None).unwrap();
    let (back, report) = load_classifier(&ModelSource::Dir(tmp.path().to_path_buf()), None, Device::Cpu, 99).unwrap();
    assert!(report.missing.is_empty(), "{report}");
    assert_eq!(back.labels(), &LabelMap::wos_level1());
    let ids = Tensor::from_slice(&[101i64, 7592, 2088, 102, 101, 2023, 102, 0]).view([2, 4]);
    let mask = ids.ne(0).to_kind(Kind::Int64);
    let (a, b) = (model.probabilities(&ids, &mask, None), back.probabilities(&ids, &mask, None));
    assert_eq!(max_abs_diff(&a, &b), 0.0);
    assert!(!tmp.path().read_dir().unwrap().any(|e| e.unwrap().file_name().to_string_lossy().contains(".tmp")));
}

fn write_safetensors(path: &Path, tensors: &[(&str, Tensor)]) {
    Tensor::write_safetensors(tensors, path).unwrap();
}

#[test]
fn shape_mismatch_and_missing_encoder_keys_are_refused() {
    let dir = minilm();
    let tmp = tempfile::tempdir().unwrap();
    std::fs::copy(dir.join("config.json"), tmp.path().join("config.json")).unwrap();
    let mut weights = read_weights(dir.join("model.safetensors")).unwrap();
    for (k, t) in weights.iter_mut() {
        if k == "embeddings.LayerNorm.bias" {
            *t = Tensor::zeros([3], (Kind::Float, Device::Cpu));
        }
    }
    let named: Vec<(&str, Tensor)> = weights.iter().map(|(k, t)| (k.as_str(), t.shallow_clone())).collect();
    write_safetensors(&tmp.path().join("model.safetensors"), &named);
    let e = load_classifier(&ModelSource::Dir(tmp.path().into()), Some(LabelMap::numbered(2)), Device::Cpu, 0).unwrap_err().to_string();
    assert!(e.contains("embeddings.LayerNorm.bias") && e.contains("shape mismatch") && e.contains("[3]") && e.contains("[384]"), "{e}");

    let weights = read_weights(dir.join("model.safetensors")).unwrap();
    let named: Vec<(&str, Tensor)> =
        weights.iter().filter(|(k, _)| !k.contains("layer.5.")).map(|(k, t)| (k.as_str(), t.shallow_clone())).collect();
    write_safetensors(&tmp.path().join("model.safetensors"), &named);
    let e = load_classifier(&ModelSource::Dir(tmp.path().into()), Some(LabelMap::numbered(2)), Device::Cpu, 0).unwrap_err().to_string();
    assert!(e.contains("missing") && e.contains("layer.5"), "{e}");
}

#[test]
fn legacy_names_prefixes_and_half_precision_load() {
    let dir = minilm();
    let tmp = tempfile::tempdir().unwrap();
    std::fs::copy(dir.join("config.json"), tmp.path().join("config.json")).unwrap();
    let weights = read_weights(dir.join("model.safetensors")).unwrap();
    let renamed: Vec<(String, Tensor)> = weights
        .iter()
        .map(|(k, t)| {
            (
                format!("bert.{}", k.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta")),
                t.to_kind(Kind::Half),
            )
        })
        .collect();
    write_safetensors(
        &tmp.path().join("model.safetensors"),
        &renamed.iter().map(|(k, t)| (k.as_str(), t.shallow_clone())).collect::<Vec<_>>(),
    );
    let (model, report) = load_classifier(&ModelSource::Dir(tmp.path().into()), Some(LabelMap::numbered(2)), Device::Cpu, 0).unwrap();
    assert!(report.unexpected.is_empty(), "{report}");
    assert!(report.converted.iter().all(|(_, k)| k == "Half") && !report.converted.is_empty());
    assert!(report.renamed > 0);
    assert!(model.var_store().variables().values().all(|v| v.kind() == Kind::Float));
}

#[test]
fn offline_hub_id_not_in_cache_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    // SAFETY: tests in this file do not read these variables concurrently.
    unsafe {
        std::env::set_var("HF_HUB_OFFLINE", "1");
        std::env::set_var("HF_HOME", tmp.path());
    }
    let e = ModelSource::Hub("no-such-org/no-such-model".into()).resolve().unwrap_err().to_string();
    assert!(e.contains("no-such-org/no-such-model") && e.contains("HF_HUB_OFFLINE"), "{e}");
}
