//! Training end to end on the real MiniLM checkpoint and the WOS sample.
use encoder_bench::data::{Dataset, Encoded, Split, WosLevel};
use encoder_bench::models::{ModelSource, TextClassifier, load_classifier};
use encoder_bench::tokenizer::TextTokenizer;
use encoder_bench::train::{OptimizerConfig, ProgressMode, Schedule, StopConfig, StopReason, TrainConfig, fit, resume, validate};
use std::path::PathBuf;
use tch::Device;

/// libtorch's RNG is process-global: runs that must be reproducible cannot
/// overlap with other training in the same test process.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn minilm() -> ModelSource {
    let p = root().join("models/minilm");
    assert!(p.join("config.json").exists(), "models/minilm is missing: run `make setup`");
    ModelSource::Dir(p)
}

fn wos_split() -> Split {
    let ds = Dataset::read_wos(root().join("../shared/data/wos-sample"), WosLevel::L1).unwrap();
    Split::first_n(&ds, 168).unwrap()
}

fn encode(split: &Split, max_len: usize) -> (Encoded, Encoded) {
    let tok = TextTokenizer::from_dir(root().join("models/minilm")).unwrap();
    (tok.encode_dataset(&split.train, max_len).unwrap(), tok.encode_dataset(&split.test, max_len).unwrap())
}

fn model(seed: i64) -> Box<dyn TextClassifier> {
    let labels = encoder_bench::data::LabelMap::wos_level1();
    load_classifier(&minilm(), Some(labels), Device::Cpu, seed).unwrap().0
}

/// The settings Python transformers was measured with (issue #4: 43 / 64 / 64
/// / 64 / 74% with BertForSequenceClassification; our reference script gives
/// 26 / 36 / 40 / 52 / 50% with this [CLS] head and 33 / 48 / 64 / 57 / 55%
/// with the pooler head, seed 0).
#[test]
fn fine_tuning_minilm_on_the_wos_sample_learns() {
    let _guard = serial();
    let split = wos_split();
    let (train, test) = encode(&split, 128);
    let cfg = TrainConfig {
        max_len: 128,
        batch_size: 16,
        stop: StopConfig { epochs: 5, ..Default::default() },
        seed: 0,
        progress: ProgressMode::Quiet,
        ..TrainConfig::transformers_recipe()
    };
    let mut m = model(0);
    let out = fit(m.as_mut(), &train, &test, &cfg).unwrap();
    let accs: Vec<f64> = out.history.epochs.iter().map(|e| e.accuracy.unwrap()).collect();
    println!("accuracy per epoch: {accs:?}");
    assert_eq!(out.stop, StopReason::Completed);
    assert_eq!(accs.len(), 5);
    // 42 test documents: one document is 2.4 points. Python transformers with
    // this head and these settings lands at 50% (scripts/reference_wos_minilm.py);
    // chance is 14%, so a broken loop fails both bounds.
    let best = accs.iter().cloned().fold(0.0, f64::max);
    assert!(best >= 0.55, "best epoch accuracy {accs:?}");
    assert!(*accs.last().unwrap() >= 0.50, "final accuracy {accs:?}");
    let losses: Vec<f64> = out.history.epochs.iter().map(|e| e.train_loss).collect();
    assert!(losses[4] < losses[0], "training loss did not fall: {losses:?}");
}

fn small_cfg(dir: Option<PathBuf>) -> TrainConfig {
    TrainConfig {
        max_len: 32,
        batch_size: 8,
        optimizer: OptimizerConfig { max_grad_norm: Some(1.0), ..OptimizerConfig::transformers() },
        stop: StopConfig { epochs: 2, ..Default::default() },
        seed: 7,
        progress: ProgressMode::Quiet,
        checkpoint_dir: dir,
        ..TrainConfig::transformers_recipe()
    }
}

/// `cfg` with its stop settings changed by `f`.
fn with_stop(mut cfg: TrainConfig, f: impl FnOnce(&mut StopConfig)) -> TrainConfig {
    f(&mut cfg.stop);
    cfg
}

fn small_data() -> (Encoded, Encoded) {
    let split = wos_split();
    let train = split.train.subset(&(0..40).collect::<Vec<_>>());
    let test = split.test.subset(&(0..14).collect::<Vec<_>>());
    let tok = TextTokenizer::from_dir(root().join("models/minilm")).unwrap();
    (tok.encode_dataset(&train, 32).unwrap(), tok.encode_dataset(&test, 32).unwrap())
}

#[test]
fn same_seed_same_history_and_resume_matches_uninterrupted() {
    let _guard = serial();
    let (train, test) = small_data();
    let a = fit(model(1).as_mut(), &train, &test, &small_cfg(None)).unwrap();
    let b = fit(model(1).as_mut(), &train, &test, &small_cfg(None)).unwrap();
    assert!(a.history.same_results(&b.history), "{:?}\n{:?}", a.history, b.history);

    // Interrupted in the middle of epoch 1, then resumed in a fresh model.
    let dir = tempfile::tempdir().unwrap();
    let first = fit(model(1).as_mut(), &train, &test, &with_stop(small_cfg(Some(dir.path().into())), |s| s.max_steps = Some(3))).unwrap();
    assert_eq!(first.stop, StopReason::MaxSteps);
    assert_eq!(first.history.epochs.len(), 1);
    assert!(!first.history.epochs[0].complete);
    assert!(dir.path().join("last/optimizer.safetensors").exists() && dir.path().join("best/model.safetensors").exists());
    let resumed = resume(model(99).as_mut(), &train, &test, &small_cfg(Some(dir.path().into()))).unwrap();
    assert!(resumed.history.same_results(&a.history), "{:?}\n{:?}", resumed.history, a.history);
}

#[test]
fn best_checkpoint_reloads_with_the_same_predictions() {
    let _guard = serial();
    let (train, test) = small_data();
    let dir = tempfile::tempdir().unwrap();
    let cfg = with_stop(small_cfg(Some(dir.path().into())), |s| s.epochs = 1);
    let mut m = model(2);
    let out = fit(m.as_mut(), &train, &test, &cfg).unwrap();
    let (back, _) = load_classifier(&ModelSource::Dir(dir.path().join("best")), None, Device::Cpu, 0).unwrap();
    let v = validate(back.as_ref(), &test, &cfg).unwrap();
    assert_eq!(v.preds, out.last_validation.unwrap().preds);
}

#[test]
fn diverging_loss_stops_with_a_clear_error_and_keeps_the_good_checkpoint() {
    let _guard = serial();
    let (train, test) = small_data();
    let dir = tempfile::tempdir().unwrap();
    let mut m = model(3);
    fit(m.as_mut(), &train, &test, &with_stop(small_cfg(Some(dir.path().into())), |s| s.epochs = 1)).unwrap();
    let before = std::fs::read(dir.path().join("last/model.safetensors")).unwrap();
    let mut cfg = TrainConfig { log_every: 1, overwrite: true, ..with_stop(small_cfg(Some(dir.path().into())), |s| s.epochs = 1) };
    cfg.optimizer = OptimizerConfig { learning_rate: 1e38, warmup_ratio: 0.0, schedule: Schedule::Constant, ..cfg.optimizer };
    let e = fit(m.as_mut(), &train, &test, &cfg).unwrap_err().to_string();
    assert!(e.contains("loss became") && e.contains("learning rate"), "{e}");
    assert_eq!(std::fs::read(dir.path().join("last/model.safetensors")).unwrap(), before);
}

#[test]
fn stop_file_ends_training_cleanly_with_history() {
    let _guard = serial();
    let (train, test) = small_data();
    let dir = tempfile::tempdir().unwrap();
    let stop = dir.path().join("STOP");
    std::fs::write(&stop, "").unwrap();
    let cfg = with_stop(small_cfg(None), |s| s.stop_file = Some(stop.clone()));
    let out = fit(model(4).as_mut(), &train, &test, &cfg).unwrap();
    assert_eq!(out.stop, StopReason::StopFile);
    assert!(!stop.exists(), "the stop file is consumed, so the next run is not stopped by it");
    assert_eq!(out.history.epochs.len(), 1);
    assert_eq!(out.history.epochs[0].steps, 1);
    assert!(!out.history.epochs[0].complete && out.history.epochs[0].accuracy.is_some());
}

#[test]
fn bucketed_validation_keeps_dataset_order_and_matches_dynamic_padding() {
    let _guard = serial();
    // At 512 tokens WOS abstracts differ in length (at 32 all are truncated alike).
    let split = wos_split();
    let tok = TextTokenizer::from_dir(root().join("models/minilm")).unwrap();
    let test = tok.encode_dataset(&split.test.subset(&(0..14).collect::<Vec<_>>()), 512).unwrap();
    let m = model(3);
    let cfg = |padding| TrainConfig { padding, eval_batch_size: Some(4), ..small_cfg(None) };
    let dynamic = validate(m.as_ref(), &test, &cfg(encoder_bench::data::Padding::Dynamic)).unwrap();
    let bucketed = validate(m.as_ref(), &test, &cfg(encoder_bench::data::Padding::Bucketed)).unwrap();
    // Sorting by length must actually reorder this set, or the test proves nothing.
    let order = test.batch_order(4, encoder_bench::data::Padding::Bucketed, None);
    assert_ne!(order, (0..test.len()).collect::<Vec<_>>());
    assert_eq!(bucketed.preds, dynamic.preds);
    assert_eq!(bucketed.targets, dynamic.targets);
    let diff = (&bucketed.probs - &dynamic.probs).abs().max().double_value(&[]);
    assert!(diff < 1e-5, "probabilities differ by {diff}");
    assert!((bucketed.loss - dynamic.loss).abs() < 1e-5);
}
