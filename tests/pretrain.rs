//! Masked-LM pre-training of ELECTRA: masking statistics, learning, exact
//! resume, parity with Python `transformers` in both directions, and loading
//! the result for fine-tuning. Tiny models throughout (vocabulary of
//! models/minilm, 2 layers of width 32) so the file runs in seconds.
//! Replaced-token detection, ELECTRA's own objective, is in `pretrain/rtd.rs`.
#[path = "pretrain/rtd.rs"]
mod rtd;

use encoder_bench::data::LabelMap;
use encoder_bench::models::{ElectraConfig, ElectraForMaskedLM, ModelConfig, ModelSource, load_classifier, read_weights};
use encoder_bench::tokenizer::TextTokenizer;
use encoder_bench::train::flops::{TRAIN_FACTOR, encoder_forward_flops};
use encoder_bench::train::pretrain::{Corpus, IGNORE_INDEX, PretrainConfig, epoch_batches, pretrain, pretrain_to_dir, resume_pretraining};
use encoder_bench::train::{OptimizerConfig, ProgressMode, StopConfig, StopReason};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use tch::{Device, Kind, Tensor};

/// libtorch's RNG is process-global: runs that must be reproducible cannot
/// overlap with other training in the same test process.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn tokenizer() -> TextTokenizer {
    let p = root().join("models/minilm");
    assert!(p.join("vocab.txt").exists(), "models/minilm is missing: run `make setup`");
    TextTokenizer::from_dir(p).unwrap()
}

fn wos_lines(n: usize) -> Vec<String> {
    let text = std::fs::read_to_string(root().join("../shared/data/wos-sample/X.txt")).unwrap();
    text.lines().filter(|l| !l.trim().is_empty()).take(n).map(str::to_string).collect()
}

fn tiny_config() -> ElectraConfig {
    serde_json::from_str(
        r#"{"vocab_size": 30522, "embedding_size": 16, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4,
            "intermediate_size": 48, "max_position_embeddings": 64, "pad_token_id": 0}"#,
    )
    .unwrap()
}

fn tiny_cfg(max_len: usize) -> PretrainConfig {
    PretrainConfig {
        max_len,
        batch_size: 8,
        stop: StopConfig { epochs: 3, ..Default::default() },
        optimizer: OptimizerConfig { learning_rate: 2e-3, ..OptimizerConfig::electra_pretraining() },
        log_every: 4,
        progress: ProgressMode::Quiet,
        ..Default::default()
    }
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
    let out = Command::new(py).arg(root().join("scripts/mlm_parity.py")).args(args).output().unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "mlm_parity.py {args:?} failed:\n{stdout}\n{stderr}");
    stdout.into_owned()
}

fn vec_i64(t: &Tensor) -> Vec<i64> {
    Vec::<i64>::try_from(t.reshape(-1)).unwrap()
}

/// Max |a - b| over positions where `mask` is 1 (padding rows are not defined to match).
fn masked_diff(a: &Tensor, b: &Tensor, mask: &Tensor) -> f64 {
    let m = mask.to_kind(Kind::Float).unsqueeze(-1);
    ((a - b) * m).abs().max().double_value(&[])
}

#[test]
fn masking_follows_the_bert_recipe_and_is_dynamic_and_seeded() {
    // Every test of this binary takes the lock: the time-budget test counts
    // steps per second and must have the CPU to itself.
    let _guard = serial();
    let tok = tokenizer();
    let cfg = PretrainConfig { max_len: 64, ..Default::default() };
    let corpus = Corpus::from_texts(&wos_lines(210), &tok, 64).unwrap();
    assert!(corpus.len() > corpus.documents, "long abstracts are cut into several sequences");
    assert!(corpus.sequences.iter().all(|s| s.len() <= 64 && s[0] == 101 && *s.last().unwrap() == 102));
    let special: HashSet<i64> = corpus.special_ids.iter().copied().collect();
    assert!(special.contains(&101) && special.contains(&102) && special.contains(&0) && special.contains(&corpus.mask_id));

    let epoch = |e| -> Vec<(Vec<i64>, Vec<i64>, Vec<i64>)> {
        epoch_batches(&corpus, &cfg, e, Device::Cpu)
            .unwrap()
            .map(|b| (vec_i64(&b.input_ids), vec_i64(&b.labels), vec_i64(&b.attention_mask)))
            .collect()
    };
    let e0 = epoch(0);
    let (mut eligible, mut chosen, mut masked, mut random, mut kept) = (0usize, 0usize, 0usize, 0usize, 0usize);
    for (ids, labels, mask) in &e0 {
        for i in 0..ids.len() {
            let original = if labels[i] == IGNORE_INDEX { ids[i] } else { labels[i] };
            if mask[i] == 0 || special.contains(&original) {
                assert_eq!(labels[i], IGNORE_INDEX, "a special or padding position was chosen");
                assert!(mask[i] == 0 || special.contains(&ids[i]), "a special token was replaced");
                continue;
            }
            eligible += 1;
            if labels[i] != IGNORE_INDEX {
                chosen += 1;
                if ids[i] == corpus.mask_id {
                    masked += 1;
                } else if ids[i] == labels[i] {
                    kept += 1;
                } else {
                    random += 1;
                    assert!(!special.contains(&ids[i]) && ids[i] < corpus.vocab_size, "random replacement {}", ids[i]);
                }
            } else {
                assert!(!special.contains(&ids[i]), "an unchosen token became special");
            }
        }
    }
    let frac = |a: usize, b: usize| a as f64 / b as f64;
    println!(
        "{eligible} eligible, {:.4} chosen; of those {:.4} [MASK], {:.4} random, {:.4} kept",
        frac(chosen, eligible),
        frac(masked, chosen),
        frac(random, chosen),
        frac(kept, chosen)
    );
    assert!(eligible > 40_000, "{eligible}");
    // Binomial standard errors: ~0.0017 for the 15%, ~0.004 for the 80/10/10 split.
    assert!((frac(chosen, eligible) - 0.15).abs() < 0.01);
    assert!((frac(masked, chosen) - 0.8).abs() < 0.02);
    assert!((frac(random, chosen) - 0.1).abs() < 0.015);
    assert!((frac(kept, chosen) - 0.1).abs() < 0.015);

    // Same seed, same masks; the next epoch masks afresh; another seed differs.
    assert_eq!(epoch(0), e0);
    let labels = |v: &[(Vec<i64>, Vec<i64>, Vec<i64>)]| v.iter().map(|b| b.1.clone()).collect::<Vec<_>>();
    assert_ne!(labels(&epoch(1)), labels(&e0));
    let other = PretrainConfig { seed: 1, ..cfg.clone() };
    let e0_other: Vec<Vec<i64>> = epoch_batches(&corpus, &other, 0, Device::Cpu).unwrap().map(|b| vec_i64(&b.labels)).collect();
    assert_ne!(e0_other, labels(&e0));
}

#[test]
fn tiny_model_mlm_loss_drops_and_flops_are_counted() {
    let _guard = serial();
    let tok = tokenizer();
    let corpus = Corpus::from_texts(&wos_lines(20), &tok, 32).unwrap();
    let mut cfg = PretrainConfig { batch_size: 16, ..tiny_cfg(32) };
    (cfg.stop.max_steps, cfg.optimizer.learning_rate) = (Some(40), 1e-2);
    let mcfg = tiny_config();
    let mut model = ElectraForMaskedLM::random(&mcfg, Device::Cpu, 0);
    let out = pretrain(&mut model, &corpus, &cfg).unwrap();
    let losses = out.history.losses();
    println!("loss per 4 steps: {losses:?}");
    println!("accuracy: {:?}", out.history.records.iter().map(|r| r.accuracy).collect::<Vec<_>>());
    assert_eq!(out.stop, StopReason::MaxSteps);
    assert_eq!((out.steps, out.history.records.len()), (40, 10));
    let (first, last) = (losses[0].1, losses.last().unwrap().1);
    // ln(30522) = 10.3 at random init; unigram statistics alone take it far lower.
    assert!((first - 30522f64.ln()).abs() < 0.5, "initial loss {first}");
    assert!(last < first - 1.0, "loss did not drop: {losses:?}");
    // At random init nearly no masked token is guessed (1 in 30522); soon the
    // frequent ones are.
    let recs = &out.history.records;
    let late = recs[5..].iter().map(|r| r.accuracy).sum::<f64>() / (recs.len() - 5) as f64;
    assert!(late > recs[0].accuracy && late > 0.01, "masked-token accuracy {recs:?}");

    // FLOPs: at least 6 × (encoder matmul parameters) per processed token, and
    // exactly what the records accumulate.
    let (h, i, e) = (32.0, 48.0, 16.0);
    let matmul_params = 2.0 * (4.0 * h * h + 2.0 * h * i) + e * h;
    assert!(out.flops > 6.0 * matmul_params * out.padded_tokens as f64);
    assert_eq!(out.history.records.last().unwrap().flops, out.flops);
    let one_seq = TRAIN_FACTOR * encoder_forward_flops(&ModelConfig::Electra(mcfg), 1, 32);
    assert!(out.flops < one_seq * out.padded_tokens as f64, "the head cannot cost more than the whole encoder here");
    assert!(out.tokens <= out.padded_tokens && out.masked_tokens > 0 && out.elapsed_s > 0.0);
}

/// Under a time budget with a far-off step limit, warmup and decay fit the
/// budget: the rate rises, peaks and is near zero when the budget runs out
/// (with a schedule over the step limit it would still be warming up), and
/// bf16 matrix products train as well.
#[test]
fn a_time_budget_schedule_spans_the_budget_in_bf16() {
    let _guard = serial();
    let tok = tokenizer();
    let corpus = Corpus::from_texts(&wos_lines(20), &tok, 32).unwrap();
    let mut cfg = PretrainConfig { log_every: 1, precision: encoder_bench::models::Precision::Bf16, ..tiny_cfg(32) };
    cfg.stop = StopConfig { max_steps: Some(1_000_000), time_budget_s: Some(3.0), ..Default::default() };
    let peak = cfg.optimizer.learning_rate;
    let mut model = ElectraForMaskedLM::random(&tiny_config(), Device::Cpu, 0);
    let out = pretrain(&mut model, &corpus, &cfg).unwrap();
    assert_eq!(out.stop, StopReason::TimeBudget);
    let lrs: Vec<f64> = out.history.records.iter().map(|r| r.lr).collect();
    assert!(lrs.len() >= 20, "only {} steps in 3 s", lrs.len());
    let top = lrs.iter().copied().fold(0.0, f64::max);
    assert!(top > 0.8 * peak, "the rate never came near its peak {peak}: {lrs:?}");
    assert!(*lrs.last().unwrap() < 0.2 * peak, "the rate had not decayed at the end: {lrs:?}");
    // Step 1's rate comes from its own end time, which a loaded machine can
    // push past the 0.3 s of warmup; the rise after it cannot be missed.
    assert!(lrs[0] < top, "no warmup: {lrs:?}");
    let losses = out.history.losses();
    assert!(losses.last().unwrap().1 < losses[0].1 - 0.5, "bf16 pre-training did not learn: {losses:?}");
}

#[test]
fn resumed_runs_give_the_uninterrupted_history_and_weights() {
    let _guard = serial();
    let tok = tokenizer();
    let corpus = Corpus::from_texts(&wos_lines(6), &tok, 32).unwrap();
    let mut base = tiny_cfg(32);
    base.stop.epochs = 2;
    let mcfg = tiny_config();
    let mut a = ElectraForMaskedLM::random(&mcfg, Device::Cpu, 5);
    let full = pretrain(&mut a, &corpus, &base).unwrap();
    assert_eq!(full.stop, StopReason::Completed);
    let per_epoch = corpus.len().div_ceil(8);
    assert_eq!(full.steps, 2 * per_epoch);
    assert!(!per_epoch.is_multiple_of(4), "windows should straddle epochs: {per_epoch} steps per epoch");

    // Stop after step 1 (stop file), resume and stop after step 2, then finish.
    let dir = tempfile::tempdir().unwrap();
    let stop = dir.path().join("STOP");
    std::fs::write(&stop, "").unwrap();
    let mut cfg = PretrainConfig { checkpoint_dir: Some(dir.path().join("ckpt")), ..base.clone() };
    cfg.stop.stop_file = Some(stop.clone());
    let mut b = ElectraForMaskedLM::random(&mcfg, Device::Cpu, 5);
    let first = pretrain(&mut b, &corpus, &cfg).unwrap();
    assert_eq!((first.stop.clone(), first.steps), (StopReason::StopFile, 1));
    assert!(first.history.records.len() == 1 && first.history.records[0].partial);
    assert!(!stop.exists(), "the stop file is consumed when it stops a run");
    std::fs::write(&stop, "").unwrap();
    let mut c = ElectraForMaskedLM::random(&mcfg, Device::Cpu, 77);
    let second = resume_pretraining(&mut c, &corpus, &cfg).unwrap();
    assert_eq!((second.stop.clone(), second.steps), (StopReason::StopFile, 2));
    assert!(!stop.exists());
    let mut d = ElectraForMaskedLM::random(&mcfg, Device::Cpu, 99);
    let rest = resume_pretraining(&mut d, &corpus, &cfg).unwrap();
    assert_eq!(rest.stop, StopReason::Completed);
    assert!(rest.history.same_results(&full.history), "{:#?}\n{:#?}", rest.history, full.history);
    assert_eq!((rest.tokens, rest.masked_tokens, rest.flops), (full.tokens, full.masked_tokens, full.flops));
    let (va, vd) = (a.var_store().variables(), d.var_store().variables());
    for (name, t) in &va {
        assert!(t.equal(&vd[name]), "{name} differs after resume");
    }
    assert!(!dir.path().join("ckpt/last.partial").exists());

    // A changed data recipe cannot continue the run.
    let e = resume_pretraining(&mut d, &corpus, &PretrainConfig { seed: 9, ..cfg.clone() }).unwrap_err().to_string();
    assert!(e.contains("seed"), "{e}");

    // A time budget stops cleanly too.
    let mut timed = base;
    timed.stop.time_budget_s = Some(0.0);
    let out = pretrain(&mut ElectraForMaskedLM::random(&mcfg, Device::Cpu, 5), &corpus, &timed).unwrap();
    assert_eq!((out.stop, out.steps), (StopReason::TimeBudget, 1));
}

/// Trains a tiny model for a few steps (so no weight is at its initial
/// value) and writes it with `pretrain_to_dir`.
fn pretrained_dir(dir: &Path) -> ElectraForMaskedLM {
    let tok = tokenizer();
    let corpus = Corpus::from_texts(&wos_lines(4), &tok, 32).unwrap();
    let mut cfg = tiny_cfg(32);
    cfg.stop.max_steps = Some(3);
    let out = pretrain_to_dir(&tiny_config(), &tok, &corpus, &cfg, dir, Device::Cpu, false).unwrap();
    assert_eq!(out.steps, 3);
    ElectraForMaskedLM::load(&ModelSource::Dir(dir.to_path_buf()), Device::Cpu).unwrap().0
}

#[test]
fn rust_pretrained_dir_loads_in_transformers_with_the_same_logits() {
    let _guard = serial();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("electra");
    let model = pretrained_dir(&dir);
    for f in ["config.json", "model.safetensors", "tokenizer.json", "pretrain_summary.json"] {
        assert!(dir.join(f).exists(), "{f} missing");
    }
    let cfg: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
    assert_eq!(cfg["model_type"], "electra");
    assert_eq!(cfg["architectures"], serde_json::json!(["ElectraForMaskedLM"]));
    assert_eq!((cfg["embedding_size"].as_i64(), cfg["hidden_size"].as_i64()), (Some(16), Some(32)));
    let keys: HashSet<String> = read_weights(dir.join("model.safetensors")).unwrap().into_iter().map(|(k, _)| k).collect();
    for k in [
        "electra.embeddings.word_embeddings.weight",
        "electra.embeddings_project.weight",
        "electra.encoder.layer.1.output.LayerNorm.bias",
        "generator_predictions.dense.weight",
        "generator_predictions.LayerNorm.weight",
        "generator_lm_head.bias",
    ] {
        assert!(keys.contains(k), "{k} not saved");
    }
    assert!(!keys.contains("generator_lm_head.weight"), "the tied decoder is saved once, as transformers does");

    let Some(py) = python() else { return };
    let out = tmp.path().join("logits.safetensors");
    let report = run_python(&py, &["logits", dir.to_str().unwrap(), out.to_str().unwrap()]);
    assert!(report.contains("\"loading_info\": {}") && report.contains("\"tied\": true"), "{report}");
    let f: HashMap<String, Tensor> = Tensor::read_safetensors(&out).unwrap().into_iter().collect();
    let mask = &f["attention_mask"];
    let ours = tch::no_grad(|| model.forward_t(&f["input_ids"], mask, Some(&f["token_type_ids"]), false));
    assert_eq!(ours.size(), f["logits"].size());
    let d = masked_diff(&ours, &f["logits"], mask);
    println!("max abs logit diff vs transformers: {d:e}");
    assert!(d <= 1e-4, "max abs diff {d}");
}

#[test]
fn python_state_dict_loads_in_rust_with_the_same_logits() {
    // Building a model draws its default initial weights from the global RNG.
    let _guard = serial();
    let Some(py) = python() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    run_python(&py, &["random", dir.to_str().unwrap()]);
    let src = ModelSource::state_dict(dir.join("config.json"), dir.join("babylm_model.bin"));
    let (model, report) = ElectraForMaskedLM::load(&src, Device::Cpu).unwrap();
    assert!(report.missing.is_empty() && report.unexpected.is_empty(), "{report}");
    assert!(report.ignored.contains(&"generator_lm_head.weight".to_string()), "{report}");
    let f: HashMap<String, Tensor> = Tensor::read_safetensors(dir.join("logits.safetensors")).unwrap().into_iter().collect();
    let mask = &f["attention_mask"];
    let ours = tch::no_grad(|| model.forward_t(&f["input_ids"], mask, Some(&f["token_type_ids"]), false));
    let d = masked_diff(&ours, &f["logits"], mask);
    println!("max abs logit diff vs transformers: {d:e}");
    assert!(d <= 1e-4, "max abs diff {d}");

    // A decoder that is not the word-embedding table is refused, naming the key.
    let mut weights = read_weights(dir.join("babylm_model.bin")).unwrap();
    for (k, t) in weights.iter_mut() {
        if k == "generator_lm_head.weight" {
            *t = &*t + 0.5; // no RNG: other tests in this process rely on it
        }
    }
    let named: Vec<(&str, Tensor)> = weights.iter().map(|(k, t)| (k.as_str(), t.shallow_clone())).collect();
    Tensor::write_safetensors(&named, dir.join("untied.safetensors")).unwrap();
    let src = ModelSource::state_dict(dir.join("config.json"), dir.join("untied.safetensors"));
    let e = ElectraForMaskedLM::load(&src, Device::Cpu).unwrap_err().to_string();
    assert!(e.contains("generator_lm_head.weight") && e.contains("tied"), "{e}");
}

#[test]
fn pretrained_dir_loads_for_fine_tuning_like_the_seed_state_dict() {
    let _guard = serial();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("electra");
    let mlm = pretrained_dir(&dir);
    let sources = [ModelSource::Dir(dir.clone()), ModelSource::state_dict(dir.join("config.json"), dir.join("model.safetensors"))];
    for src in sources {
        let (clf, report) = load_classifier(&src, Some(LabelMap::wos_level1()), Device::Cpu, 0).unwrap();
        assert_eq!(clf.config().family(), "electra");
        assert_eq!(report.missing, vec!["classifier.bias".to_string(), "classifier.weight".to_string()], "{report}");
        assert!(report.unexpected.is_empty(), "{report}");
        assert!(report.ignored.iter().any(|k| k.starts_with("generator_predictions.")), "{report}");
        let (cv, mv) = (clf.var_store().variables(), mlm.var_store().variables());
        for name in ["electra.embeddings.word_embeddings.weight", "electra.encoder.layer.1.intermediate.dense.weight"] {
            assert!(cv[name].equal(&mv[name]), "{name} not carried over");
        }
        // The pre-trained encoder gives the classifier the same hidden states.
        let ids = Tensor::from_slice(&[101i64, 7592, 2088, 102]).view([1, 4]);
        let ones = ids.ones_like();
        let h_mlm = tch::no_grad(|| mlm.hidden_states(&ids, &ones, None, false));
        let logits = tch::no_grad(|| clf.forward_t(&ids, &ones, None, false));
        assert_eq!(logits.size(), vec![1, 7]);
        assert!(h_mlm.isfinite().all().int64_value(&[]) == 1);
    }
}
