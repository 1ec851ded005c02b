//! Model selection without looking at the test set (issue #22): the
//! validation set chooses the epoch, early stopping counts validation
//! epochs, and the test set is reported once, at the chosen epoch — also
//! after an interrupted run is resumed. Tiny random models throughout.
use encoder_bench::data::{Encoded, LabelMap};
use encoder_bench::models::{BertConfig, ModelConfig, TextClassifier, random_classifier};
use encoder_bench::train::{
    OptimizerConfig, ProgressMode, SelectMetric, SelectionConfig, StopConfig, StopReason, TrainConfig, fit_and_test, resume_and_test,
    validate,
};
use std::path::Path;
use tch::Device;

// Runs seed torch's global generator per step: tests that train run one at a time.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn tiny_model(seed: i64) -> Box<dyn TextClassifier> {
    let cfg: BertConfig = serde_json::from_str(
        r#"{"vocab_size": 100, "hidden_size": 8, "num_hidden_layers": 1, "num_attention_heads": 2,
            "intermediate_size": 16, "max_position_embeddings": 32, "pad_token_id": 0}"#,
    )
    .unwrap();
    random_classifier(&ModelConfig::Bert(cfg), LabelMap::numbered(2), Device::Cpu, seed)
}

/// The class is told by the second token (10 or 11); `flip` swaps the labels.
fn data(n: usize, shift: i64, flip: bool) -> Encoded {
    let ids: Vec<Vec<i64>> = (0..n).map(|i| vec![1, 10 + (i % 2) as i64, 20 + (i as i64 * 7 + shift) % 50, 2]).collect();
    Encoded {
        type_ids: ids.iter().map(|v| vec![0; v.len()]).collect(),
        ids,
        targets: (0..n).map(|i| ((i % 2) as i64) ^ i64::from(flip)).collect(),
        pad_id: 0,
        max_len: 16,
    }
}

fn cfg(epochs: usize, selection: SelectionConfig, dir: Option<&Path>) -> TrainConfig {
    TrainConfig {
        max_len: 16,
        batch_size: 4,
        optimizer: OptimizerConfig { learning_rate: 3e-3, ..Default::default() },
        stop: StopConfig { epochs, ..Default::default() },
        selection,
        seed: 5,
        progress: ProgressMode::Quiet,
        checkpoint_dir: dir.map(Path::to_path_buf),
        ..TrainConfig::default()
    }
}

#[test]
fn the_reported_test_score_is_the_one_at_the_validation_chosen_epoch() {
    let _g = serial();
    // The test set is the validation texts' twin with flipped labels: the
    // epoch the test set would pick is the one validation likes least.
    let (train, valid, test) = (data(40, 0, false), data(20, 3, false), data(20, 3, true));
    let sel = SelectionConfig { test_every_epoch: true, ..Default::default() };
    let mut model = tiny_model(1);
    let out = fit_and_test(model.as_mut(), &train, &valid, &test, &cfg(6, sel, None)).unwrap();
    let h = &out.history;
    let accs: Vec<f64> = h.epochs.iter().map(|e| e.accuracy.unwrap()).collect();
    assert!(accs.iter().any(|&a| a != accs[0]), "the case needs validation accuracy that changes: {accs:?}");
    let chosen = out.chosen_epoch.unwrap();
    assert_eq!(Some(chosen), h.chosen(SelectMetric::Accuracy).map(|e| e.epoch));
    let test_pick = h.epochs.iter().max_by(|a, b| a.test_accuracy.partial_cmp(&b.test_accuracy).unwrap()).unwrap();
    assert!(test_pick.test_accuracy > h.epochs[chosen - 1].test_accuracy, "test-set selection would report a higher score");
    let reported = out.test.as_ref().unwrap().metrics.accuracy;
    assert_eq!(Some(reported), h.epochs[chosen - 1].test_accuracy, "reported: the test score at the chosen epoch");
    assert_eq!(out.chosen_validation.as_ref().unwrap().metrics.accuracy, accs[chosen - 1]);
    // The model ends holding the chosen epoch's weights.
    let again = validate(model.as_ref(), &valid, &cfg(6, SelectionConfig::default(), None)).unwrap();
    assert_eq!(Some(again.loss), h.epochs[chosen - 1].val_loss);
}

#[test]
fn early_stopping_stops_after_patience_restores_the_choice_and_resumes_exactly() {
    let _g = serial();
    // Validation on flipped labels: the more the model learns, the worse
    // its validation loss, so the first epoch stays chosen.
    let (train, valid, test) = (data(40, 0, false), data(20, 3, true), data(20, 7, false));
    let sel = SelectionConfig { select_on: SelectMetric::Loss, patience: Some(2), test_every_epoch: false };
    let mut model = tiny_model(2);
    let whole = fit_and_test(model.as_mut(), &train, &valid, &test, &cfg(10, sel.clone(), None)).unwrap();
    let chosen = whole.chosen_epoch.unwrap();
    assert_eq!(whole.stop, StopReason::EarlyStopping);
    assert_eq!(whole.history.epochs.len(), chosen + 2, "stops two validated epochs after the last improvement");
    assert!(whole.history.epochs.len() < 10);
    let again = validate(model.as_ref(), &valid, &cfg(10, sel.clone(), None)).unwrap();
    assert_eq!(Some(again.loss), whole.history.epochs[chosen - 1].val_loss, "the chosen epoch's weights are restored");

    // Cut after 15 steps (mid-epoch 2), then resumed: the same run.
    let dir = tempfile::tempdir().unwrap();
    let mut cut_cfg = cfg(10, sel.clone(), Some(dir.path()));
    cut_cfg.stop.max_steps = Some(15);
    let mut m = tiny_model(2);
    let cut = fit_and_test(m.as_mut(), &train, &valid, &test, &cut_cfg).unwrap();
    assert_eq!(cut.stop, StopReason::MaxSteps);
    let mut m = tiny_model(99);
    let resumed = resume_and_test(m.as_mut(), &train, &valid, &test, &cfg(10, sel, Some(dir.path()))).unwrap();
    assert!(resumed.history.same_results(&whole.history), "{:?}\nvs\n{:?}", resumed.history, whole.history);
    assert_eq!(resumed.stop, StopReason::EarlyStopping);
    assert_eq!(resumed.chosen_epoch, whole.chosen_epoch);
    assert_eq!(resumed.test.unwrap().preds, whole.test.unwrap().preds);
}
