//! `report::stats` against numpy/scipy: `tests/fixtures/stats_reference.json`,
//! written by `scripts/stats_reference.py`.
//!
//! serde_json's default float parser may be off by an ulp; the tolerances here
//! (1e-9 relative and looser) are far above that, and the sample values are
//! short decimals that every parser reads exactly.
use encoder_bench::report::stats::{McNemar, Summary, mcnemar_exact_p};
use serde::Deserialize;

#[derive(Deserialize)]
struct Fixture {
    scipy_version: String,
    summaries: Vec<SummaryCase>,
    mcnemar: Vec<McNemarCase>,
}

#[derive(Deserialize)]
struct SummaryCase {
    name: String,
    level: f64,
    n: usize,
    xs: Vec<f64>,
    mean: f64,
    sd: f64,
    t_quantile: f64,
    ci_low: f64,
    ci_high: f64,
}

#[derive(Deserialize)]
struct McNemarCase {
    b: usize,
    c: usize,
    p_value: f64,
}

fn fixture() -> Fixture {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/stats_reference.json");
    let text = std::fs::read_to_string(path).expect("run scripts/stats_reference.py");
    serde_json::from_str(&text).unwrap()
}

/// `got` within `rel` of `want`, relative to |want| (so 0 must be met exactly).
#[track_caller]
fn close(what: &str, got: f64, want: f64, rel: f64, scipy: &str) {
    assert!((got - want).abs() <= rel * want.abs(), "{what}: got {got:e}, scipy {scipy} {want:e} (rel {rel:e})");
}

#[test]
fn summaries_match_scipy() {
    let fx = fixture();
    let v = &fx.scipy_version;
    assert!(fx.summaries.len() >= 6, "fixture has too few summaries");
    for c in &fx.summaries {
        let name = &c.name;
        assert_eq!(c.xs.len(), c.n, "{name}");
        let s = Summary::with_level(&c.xs, c.level).unwrap();
        assert_eq!((s.n, s.level), (c.n, c.level), "{name}");
        close(&format!("{name} mean"), s.mean, c.mean, 1e-9, v);
        let sd = s.sd.unwrap_or_else(|| panic!("{name}: n = {} has a standard deviation", c.n));
        close(&format!("{name} sd"), sd, c.sd, 1e-9, v);
        let half = c.t_quantile * c.sd / (c.n as f64).sqrt();
        close(&format!("{name} half width"), s.half_width().unwrap(), half, 1e-7, v);
        close(&format!("{name} ci_low"), s.ci_low.unwrap(), c.ci_low, 1e-7, v);
        close(&format!("{name} ci_high"), s.ci_high.unwrap(), c.ci_high, 1e-7, v);
        if c.level == 0.95 {
            assert_eq!(Summary::of(&c.xs), Some(s), "{name}: of() is with_level(0.95)");
        }
    }
}

#[test]
fn mcnemar_matches_scipy_binomtest() {
    let fx = fixture();
    let v = &fx.scipy_version;
    assert!(fx.mcnemar.len() >= 8, "fixture has too few tables");
    assert!(fx.mcnemar.iter().any(|m| m.b + m.c >= 60_000), "fixture lacks a large table");
    for m in &fx.mcnemar {
        close(&format!("mcnemar_exact_p({}, {})", m.b, m.c), mcnemar_exact_p(m.b, m.c), m.p_value, 1e-7, v);
    }
}

#[test]
fn mcnemar_table_from_answers_matches_scipy() {
    // The fixture's (b, c) tables rebuilt as answers, with concordant texts
    // around them, must give the same counts and p-value.
    let fx = fixture();
    for m in fx.mcnemar.iter().filter(|m| m.b + m.c <= 5000) {
        let (both_right, both_wrong) = (37, 11);
        let mut a = Vec::new();
        let mut b = Vec::new();
        for (x, y, k) in [(true, true, both_right), (true, false, m.b), (false, true, m.c), (false, false, both_wrong)] {
            a.extend(std::iter::repeat_n(x, k));
            b.extend(std::iter::repeat_n(y, k));
        }
        let t = McNemar::from_correct(&a, &b).unwrap();
        assert_eq!((t.both_right, t.a_only, t.b_only, t.both_wrong), (both_right, m.b, m.c, both_wrong));
        assert_eq!(t.n(), a.len());
        close(&format!("table ({}, {})", m.b, m.c), t.p_value, m.p_value, 1e-7, &fx.scipy_version);
    }
}
