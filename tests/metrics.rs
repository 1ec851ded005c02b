//! `Metrics` against scikit-learn: `tests/fixtures/metrics.json`, written by
//! `scripts/make_metrics_fixture.py`.
use encoder_bench::Error;
use encoder_bench::train::metrics::{ConfusionMatrix, Metrics, argmax_rows};
use serde::Deserialize;

#[derive(Deserialize)]
struct Fixture {
    sklearn_version: String,
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Average {
    precision: f64,
    recall: f64,
    f1: f64,
    /// `f1_score(average=...)`, which must agree with `f1`.
    f1_score: f64,
}

#[derive(Deserialize)]
struct Case {
    name: String,
    num_classes: usize,
    targets: Vec<usize>,
    preds: Vec<usize>,
    accuracy: f64,
    precision: Vec<f64>,
    recall: Vec<f64>,
    f1: Vec<f64>,
    support: Vec<usize>,
    #[serde(rename = "macro")]
    macro_avg: Average,
    weighted: Average,
    confusion: Vec<Vec<usize>>,
    names: Vec<String>,
    report: String,
}

fn fixture() -> Fixture {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/metrics.json");
    let text = std::fs::read_to_string(path).expect("run scripts/make_metrics_fixture.py");
    serde_json::from_str(&text).unwrap()
}

#[track_caller]
fn close(what: &str, got: f64, want: f64) {
    assert!((got - want).abs() <= 1e-12, "{what}: got {got}, scikit-learn {want}");
}

#[test]
fn matches_sklearn() {
    let fx = fixture();
    assert!(fx.cases.len() >= 4, "fixture from scikit-learn {} has too few cases", fx.sklearn_version);
    for c in &fx.cases {
        let m = Metrics::compute(&c.targets, &c.preds, c.num_classes).unwrap();
        let n = &c.name;
        close(&format!("{n} accuracy"), m.accuracy, c.accuracy);
        assert_eq!(m.per_class.len(), c.num_classes, "{n}");
        for (k, pc) in m.per_class.iter().enumerate() {
            close(&format!("{n} precision[{k}]"), pc.precision, c.precision[k]);
            close(&format!("{n} recall[{k}]"), pc.recall, c.recall[k]);
            close(&format!("{n} f1[{k}]"), pc.f1, c.f1[k]);
            assert_eq!(pc.support, c.support[k], "{n} support[{k}]");
        }
        close(&format!("{n} macro precision"), m.macro_precision, c.macro_avg.precision);
        close(&format!("{n} macro recall"), m.macro_recall, c.macro_avg.recall);
        close(&format!("{n} macro f1"), m.macro_f1, c.macro_avg.f1);
        close(&format!("{n} f1_score macro"), m.macro_f1, c.macro_avg.f1_score);
        close(&format!("{n} weighted precision"), m.weighted_precision(), c.weighted.precision);
        close(&format!("{n} weighted recall"), m.weighted_recall(), c.weighted.recall);
        close(&format!("{n} weighted f1"), m.weighted_f1, c.weighted.f1);
        close(&format!("{n} f1_score weighted"), m.weighted_f1, c.weighted.f1_score);
        assert_eq!(m.confusion, ConfusionMatrix { n: c.num_classes, counts: c.confusion.clone() }, "{n}");
        assert_eq!(m.report(&c.names), c.report, "{n} classification_report");
    }
}

#[test]
fn fixture_covers_the_edge_cases() {
    let fx = fixture();
    let find = |name: &str| fx.cases.iter().find(|c| c.name == name).unwrap();
    assert!(find("never_predicted").preds.iter().all(|&p| p != 3));
    assert!(find("absent_from_targets").support.contains(&0));
    assert_eq!(find("perfect").accuracy, 1.0);
}

#[test]
fn serde_round_trip() {
    let m = Metrics::compute(&[0, 1, 2, 1], &[0, 2, 2, 1], 4).unwrap();
    let back: Metrics = serde_json::from_str(&serde_json::to_string(&m).unwrap()).unwrap();
    assert_eq!(back, m);
}

#[test]
fn bad_input_names_the_argument() {
    let invalid = |r: encoder_bench::Result<Metrics>| match r {
        Err(Error::Invalid { name, msg }) => format!("{name}: {msg}"),
        other => panic!("expected Error::Invalid, got {other:?}"),
    };
    assert_eq!(invalid(Metrics::compute(&[0, 1], &[0], 2)), "preds: 1 predictions for 2 targets");
    assert_eq!(invalid(Metrics::compute(&[], &[], 2)), "targets: no examples to score");
    assert_eq!(invalid(Metrics::compute(&[0], &[0], 0)), "num_classes: must be at least 1");
    assert_eq!(invalid(Metrics::compute(&[0, 2], &[0, 1], 2)), "targets: label 2 at index 1 is not below num_classes = 2");
    assert_eq!(invalid(Metrics::compute(&[0, 1], &[5, 1], 2)), "preds: label 5 at index 0 is not below num_classes = 2");
}

#[test]
fn argmax_then_metrics() {
    let probs = [0.9, 0.1, 0.3, 0.7, 0.6, 0.4];
    let preds = argmax_rows(&probs, 2);
    assert_eq!(preds, vec![0, 1, 0]);
    let m = Metrics::compute(&[0, 1, 1], &preds, 2).unwrap();
    assert!((m.accuracy - 2.0 / 3.0).abs() < 1e-15);
}
