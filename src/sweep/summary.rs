//! What a sweep's runs say, and no more: per setting (model × batch size)
//! the mean test accuracy at the validation-chosen epoch with its 95%
//! t-interval over runs; per pair of settings the paired difference on the
//! same test texts (bootstrap over texts, McNemar's exact test); and
//! conclusions that claim a difference only when its interval excludes zero.
//!
//! Runs are combined two ways, and each statistic says which:
//! - the cell intervals are over runs (folds × seeds): n is the number of runs;
//! - paired comparisons average each text's correctness over seeds, pool
//!   the folds (each text is tested once per seed), and resample texts;
//!   McNemar's test pools (text, seed) pairs.
//!
//! One tie rule everywhere ([`best_index`]): the highest value wins, ties go
//! to the earlier setting in plan order.
use super::{BASELINE_NAME, ChosenOn, JobResult, Sweep};
use crate::report::frames::history_frame;
use crate::report::plot::{LineChart, Series};
use crate::report::stats::{BootstrapInterval, McNemar, Summary, best_index, paired_bootstrap};
use polars::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Resamples of the paired bootstrap.
pub const BOOTSTRAP_RESAMPLES: usize = 10_000;
/// Seed of the paired bootstrap (fixed: the same runs give the same interval).
pub const BOOTSTRAP_SEED: u64 = 20_261_201;
/// Level of every interval.
pub const LEVEL: f64 = 0.95;

/// A setting of a sweep: a model at a batch size, or the baseline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Setting {
    /// Model name.
    pub model: String,
    /// Batch size (none for the baseline).
    pub batch_size: Option<usize>,
}

impl std::fmt::Display for Setting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.batch_size {
            Some(b) => write!(f, "{} (batch size {b})", self.model),
            None => write!(f, "{}", self.model),
        }
    }
}

/// One setting's runs, summarised.
#[derive(Debug, Clone, PartialEq)]
pub struct Cell {
    /// Model and batch size.
    pub setting: Setting,
    /// Test accuracy at the chosen epoch, over runs.
    pub accuracy: Summary,
    /// Test macro-F1 at the chosen epoch, over runs.
    pub macro_f1: Summary,
    /// Validation accuracy at the chosen epoch, over runs (what chooses the
    /// best setting; none for the baseline).
    pub valid_accuracy: Option<Summary>,
    /// Mean chosen epoch.
    pub chosen_epoch: Option<f64>,
    /// Mean training samples/s.
    pub train_samples_per_s: Option<f64>,
}

/// A paired comparison of two settings on the same test texts.
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    /// What the pair is ("batch size 16", "best settings", "baseline").
    pub scope: String,
    /// First setting.
    pub a: Setting,
    /// Second setting.
    pub b: Setting,
    /// Accuracy of `a` minus `b`, with its paired-bootstrap interval over
    /// texts (correctness averaged over seeds per text).
    pub diff: BootstrapInterval,
    /// McNemar's exact test on (text, seed) pairs pooled over seeds.
    pub mcnemar: McNemar,
}

impl Comparison {
    /// The conclusion in words: a difference is claimed only when its
    /// interval excludes zero.
    pub fn sentence(&self) -> String {
        let d = &self.diff;
        // Oriented so the first-named setting is the better one.
        let (first, second, diff, low, high) =
            if d.diff >= 0.0 { (&self.a, &self.b, d.diff, d.low, d.high) } else { (&self.b, &self.a, -d.diff, -d.high, -d.low) };
        let detail = format!(
            "95% CI {:+.1} to {:+.1} points, paired bootstrap over {} texts; McNemar p = {}",
            low * 100.0,
            high * 100.0,
            d.n,
            p_text(self.mcnemar.p_value)
        );
        if d.excludes_zero() {
            format!("{first} beats {second} by {:.1} points ({detail}).", diff * 100.0)
        } else {
            format!(
                "No difference between {first} and {second} is detectable with {} test texts ({first} ahead by {:.1} points, {detail}).",
                d.n,
                diff * 100.0
            )
        }
    }
}

fn p_text(p: f64) -> String {
    if p < 1e-4 { format!("{p:.1e}") } else { format!("{p:.3}") }
}

pub(super) fn mean(xs: &[f64]) -> Option<f64> {
    (!xs.is_empty()).then(|| xs.iter().sum::<f64>() / xs.len() as f64)
}

/// A horizontal reference line at `y` across the span of `xs` (a unit
/// either side of a single x), for baseline and chance levels.
pub(super) fn level_line(xs: &[f64], y: f64) -> Vec<(f64, f64)> {
    let (lo, hi) = (xs.iter().copied().fold(f64::INFINITY, f64::min), xs.iter().copied().fold(f64::NEG_INFINITY, f64::max));
    if lo < hi { vec![(lo, y), (hi, y)] } else { vec![(lo - 1.0, y), (lo + 1.0, y)] }
}

fn seed_of(r: &JobResult) -> Option<u64> {
    match r.job.kind {
        super::JobKind::Encoder { seed, .. } => Some(seed),
        super::JobKind::Baseline => None,
    }
}

impl Sweep {
    /// Every setting in plan order: models × batch sizes, then the baseline.
    pub fn settings(&self) -> Vec<Setting> {
        let mut out: Vec<Setting> = Vec::new();
        for m in &self.plan.models {
            for &b in &self.plan.batch_sizes {
                out.push(Setting { model: m.name.clone(), batch_size: Some(b) });
            }
        }
        if self.plan.baseline {
            out.push(Setting { model: BASELINE_NAME.into(), batch_size: None });
        }
        out
    }

    /// The runs of one setting, in job order.
    pub fn runs_of(&self, s: &Setting) -> Vec<&JobResult> {
        self.runs.iter().filter(|r| r.model == s.model && r.batch_size == s.batch_size).collect()
    }

    /// True when epochs and settings were chosen on the test set (the seed's mode).
    pub fn selects_on_test(&self) -> bool {
        self.runs.iter().any(|r| r.chosen_on == ChosenOn::Test)
    }

    /// One summary per setting (settings without runs are left out).
    pub fn cells(&self) -> Vec<Cell> {
        self.settings()
            .into_iter()
            .filter_map(|setting| {
                let runs = self.runs_of(&setting);
                let acc: Vec<f64> = runs.iter().map(|r| r.test.accuracy).collect();
                let f1: Vec<f64> = runs.iter().map(|r| r.test.macro_f1).collect();
                let valid: Vec<f64> = runs.iter().filter_map(|r| r.valid_accuracy).collect();
                let epochs: Vec<f64> = runs.iter().filter_map(|r| r.chosen_epoch.map(|e| e as f64)).collect();
                let speed: Vec<f64> = runs
                    .iter()
                    .flat_map(|r| r.history.epochs.iter().map(|e| e.train_samples_per_s))
                    .filter(|v| v.is_finite() && *v > 0.0)
                    .collect();
                Some(Cell {
                    accuracy: Summary::of(&acc)?,
                    macro_f1: Summary::of(&f1)?,
                    valid_accuracy: Summary::of(&valid),
                    chosen_epoch: mean(&epochs),
                    train_samples_per_s: mean(&speed),
                    setting,
                })
            })
            .collect()
    }

    /// The setting of `model` that validation chooses: the highest mean
    /// validation accuracy at the chosen epochs (ties: the earlier batch
    /// size in plan order). In the seed's mode, the test accuracy chooses
    /// (and the conclusions say so). The baseline is its own best setting.
    pub fn best_setting(&self, model: &str) -> Option<Setting> {
        let cells: Vec<Cell> = self.cells().into_iter().filter(|c| c.setting.model == model).collect();
        let score = |c: &Cell| match (&c.valid_accuracy, self.selects_on_test()) {
            (Some(v), false) => v.mean,
            _ => c.accuracy.mean,
        };
        best_index(&cells.iter().map(score).collect::<Vec<_>>()).map(|i| cells[i].setting.clone())
    }

    /// Each test text's correctness under `s`, averaged over seeds, keyed by
    /// dataset row (folds pooled).
    fn text_scores(&self, s: &Setting) -> BTreeMap<usize, f64> {
        let mut acc: BTreeMap<usize, (f64, f64)> = BTreeMap::new();
        for r in self.runs_of(s) {
            for (&row, ok) in r.test_rows.iter().zip(r.correct()) {
                let e = acc.entry(row).or_default();
                e.0 += f64::from(u8::from(ok));
                e.1 += 1.0;
            }
        }
        acc.into_iter().map(|(row, (k, n))| (row, k / n)).collect()
    }

    /// Paired comparison of `a` and `b` on the texts both were tested on.
    pub fn compare(&self, a: &Setting, b: &Setting, scope: &str) -> crate::Result<Comparison> {
        let (sa, sb) = (self.text_scores(a), self.text_scores(b));
        let rows: Vec<usize> = sa.keys().filter(|r| sb.contains_key(r)).copied().collect();
        let xa: Vec<f64> = rows.iter().map(|r| sa[r]).collect();
        let xb: Vec<f64> = rows.iter().map(|r| sb[r]).collect();
        let diff = paired_bootstrap(&xa, &xb, BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED, LEVEL)?;
        // (text, seed) pairs: runs on the same fold with the same seed, the
        // baseline (no seed) paired with every seed.
        let (mut ca, mut cb) = (Vec::new(), Vec::new());
        for ra in self.runs_of(a) {
            for rb in self.runs_of(b) {
                let seeds_match = match (seed_of(ra), seed_of(rb)) {
                    (Some(x), Some(y)) => x == y,
                    _ => true,
                };
                if ra.job.fold == rb.job.fold && seeds_match && ra.test_rows == rb.test_rows {
                    ca.extend(ra.correct());
                    cb.extend(rb.correct());
                }
            }
        }
        let mcnemar = McNemar::from_correct(&ca, &cb)?;
        Ok(Comparison { scope: scope.into(), a: a.clone(), b: b.clone(), diff, mcnemar })
    }

    /// Every pair of models at each batch size, the models' best settings
    /// against each other, and each best setting against the baseline.
    pub fn comparisons(&self) -> Vec<Comparison> {
        let mut out = Vec::new();
        let models: Vec<&str> = self.plan.models.iter().map(|m| m.name.as_str()).collect();
        let mut push = |a: Setting, b: Setting, scope: String| {
            if let Ok(c) = self.compare(&a, &b, &scope) {
                out.push(c);
            }
        };
        for &bs in &self.plan.batch_sizes {
            for (i, a) in models.iter().enumerate() {
                for b in &models[i + 1..] {
                    let s = |m: &str| Setting { model: m.into(), batch_size: Some(bs) };
                    push(s(a), s(b), format!("batch size {bs}"));
                }
            }
        }
        let best: Vec<Setting> = models.iter().filter_map(|m| self.best_setting(m)).collect();
        if self.plan.batch_sizes.len() > 1 {
            for (i, a) in best.iter().enumerate() {
                for b in &best[i + 1..] {
                    push(a.clone(), b.clone(), "best settings".into());
                }
            }
        }
        if self.plan.baseline {
            let base = Setting { model: BASELINE_NAME.into(), batch_size: None };
            for a in &best {
                push(a.clone(), base.clone(), "baseline".into());
            }
        }
        out
    }

    /// Test metrics of `s` with its runs' predictions pooled (every fold's
    /// test texts, every seed): the confusion matrix and per-class figures
    /// of a setting.
    pub fn pooled_metrics(&self, s: &Setting) -> crate::Result<crate::train::Metrics> {
        let runs = self.runs_of(s);
        let targets: Vec<usize> = runs.iter().flat_map(|r| r.test_targets.iter().copied()).collect();
        let preds: Vec<usize> = runs.iter().flat_map(|r| r.test_preds.iter().copied()).collect();
        crate::train::Metrics::compute(&targets, &preds, self.labels.len())
    }

    /// The best setting overall: each model's validation-chosen setting,
    /// then the highest mean validation accuracy among them (ties: the
    /// earlier model); in the seed's mode, the test accuracy chooses.
    pub fn best_overall(&self) -> Option<Setting> {
        let best: Vec<Setting> = self.plan.models.iter().filter_map(|m| self.best_setting(&m.name)).collect();
        let cells = self.cells();
        let score = |s: &Setting| {
            let c = cells.iter().find(|c| &c.setting == s);
            match (c.and_then(|c| c.valid_accuracy.as_ref()), self.selects_on_test()) {
                (Some(v), false) => v.mean,
                _ => c.map_or(f64::NAN, |c| c.accuracy.mean),
            }
        };
        best_index(&best.iter().map(score).collect::<Vec<_>>()).map(|i| best[i].clone())
    }

    /// Accuracy of always predicting the most frequent class of the test
    /// texts (pooled over folds): the floor a model must clear.
    pub fn chance_accuracy(&self) -> f64 {
        let mut counts: BTreeMap<usize, usize> = BTreeMap::new();
        let mut seen = std::collections::BTreeSet::new();
        for r in &self.runs {
            for (&row, &t) in r.test_rows.iter().zip(&r.test_targets) {
                if seen.insert(row) {
                    *counts.entry(t).or_default() += 1;
                }
            }
        }
        let n: usize = counts.values().sum();
        counts.values().max().map_or(0.0, |&m| m as f64 / n.max(1) as f64)
    }

    /// How the sweep measured, in one sentence (splits, selection, n).
    pub fn design(&self) -> String {
        let folds = self.plan.split.n_folds();
        let seeds = self.plan.seeds.len();
        let tested: std::collections::BTreeSet<usize> = self.runs.iter().flat_map(|r| r.test_rows.iter().copied()).collect();
        let split = if folds > 1 {
            format!("{folds}-fold stratified cross-validation: each of the {} texts is a test text once per seed", tested.len())
        } else {
            format!("one split with {} test texts", tested.len())
        };
        let choose = match &self.plan.split.validation {
            Some(v) => format!(
                "epochs and batch sizes are chosen on a validation set ({:.0}% of each training side, at least {} per class) and the test set is reported once, at the chosen epoch",
                v.fraction * 100.0,
                v.min_per_class
            ),
            None => {
                "seed's mode: epochs and batch sizes are chosen on the test set itself, so the reported accuracies are optimistic".into()
            }
        };
        format!("{split}; {seeds} seed(s) per setting, so n = {} runs per cell; {choose}.", folds * seeds)
    }

    /// Plain-language findings computed from the runs: the design, each
    /// model's chosen setting with its interval, paired comparisons that
    /// claim a difference only when their interval excludes zero, the
    /// batch-size effect within each model, and throughput.
    pub fn conclusions(&self) -> Vec<String> {
        let mut out = vec![format!("Design: {}", self.design())];
        let cells = self.cells();
        let cell = |s: &Setting| cells.iter().find(|c| &c.setting == s);
        let chooser = if self.selects_on_test() { "chosen on the test set (seed's mode)" } else { "chosen on validation" };
        let several_bs = self.plan.batch_sizes.len() > 1;
        for m in &self.plan.models {
            let Some(best) = self.best_setting(&m.name) else { continue };
            let Some(c) = cell(&best) else { continue };
            if !several_bs {
                out.push(format!("{}: test accuracy {}.", m.name, interval_text(&c.accuracy)));
                continue;
            }
            out.push(format!(
                "{}: batch size {} {chooser}; test accuracy {}.",
                m.name,
                best.batch_size.unwrap_or(0),
                interval_text(&c.accuracy)
            ));
            // The batch-size effect: the chosen setting against the others.
            for &bs in &self.plan.batch_sizes {
                let other = Setting { model: m.name.clone(), batch_size: Some(bs) };
                if other != best
                    && let Ok(c) = self.compare(&best, &other, "batch size")
                {
                    out.push(format!("  {}", c.sentence()));
                }
            }
        }
        if let Some(b) = cells.iter().find(|c| c.setting.model == BASELINE_NAME) {
            out.push(format!("{BASELINE_NAME}: test accuracy {}.", interval_text(&b.accuracy)));
        }
        for c in self.comparisons() {
            let include = match c.scope.as_str() {
                "best settings" | "baseline" => true,
                _ => !several_bs,
            };
            if include {
                out.push(c.sentence());
            }
        }
        let speeds: Vec<(String, f64)> = self
            .plan
            .models
            .iter()
            .filter_map(|m| {
                let v: Vec<f64> = cells.iter().filter(|c| c.setting.model == m.name).filter_map(|c| c.train_samples_per_s).collect();
                mean(&v).map(|s| (m.name.clone(), s))
            })
            .collect();
        if speeds.len() > 1 {
            let list: Vec<String> = speeds.iter().map(|(m, s)| format!("{m} {s:.1}")).collect();
            out.push(format!("Training throughput (samples/s, mean over batch sizes): {}.", list.join(", ")));
        }
        out.push(format!(
            "Chance level (always the most frequent class): {:.1}%. Cell intervals are t-intervals over runs; k-fold runs share training texts, so they are approximate.",
            self.chance_accuracy() * 100.0
        ));
        out
    }

    /// The seed's table shape: one row per model, one column per batch size,
    /// cells "mean ± half-width" of test accuracy in percent with n.
    pub fn report_frame(&self) -> DataFrame {
        let cells = self.cells();
        let mut rows: Vec<String> = self.plan.models.iter().map(|m| m.name.clone()).collect();
        if self.plan.baseline {
            rows.push(BASELINE_NAME.into());
        }
        let mut columns = vec![Column::new("model".into(), rows.clone())];
        for &bs in &self.plan.batch_sizes {
            let v: Vec<Option<String>> = rows
                .iter()
                .map(|m| {
                    let want = if m == BASELINE_NAME { None } else { Some(bs) };
                    cells.iter().find(|c| &c.setting.model == m && c.setting.batch_size == want).map(|c| interval_text(&c.accuracy))
                })
                .collect();
            columns.push(Column::new(format!("batch size {bs}").into(), v));
        }
        DataFrame::new(rows.len(), columns).expect("report columns have equal lengths and distinct names")
    }

    /// One row per setting: n, mean, sd and interval of test accuracy and
    /// macro-F1, validation accuracy, chosen epoch, throughput.
    pub fn cells_frame(&self) -> DataFrame {
        let c = self.cells();
        let f = |g: &dyn Fn(&Cell) -> Option<f64>| c.iter().map(g).collect::<Vec<_>>();
        let columns = vec![
            Column::new("model".into(), c.iter().map(|x| x.setting.model.clone()).collect::<Vec<_>>()),
            Column::new("batch_size".into(), c.iter().map(|x| x.setting.batch_size.map(|b| b as u64)).collect::<Vec<_>>()),
            Column::new("n".into(), c.iter().map(|x| x.accuracy.n as u64).collect::<Vec<_>>()),
            Column::new("accuracy_mean".into(), f(&|x| Some(x.accuracy.mean))),
            Column::new("accuracy_sd".into(), f(&|x| x.accuracy.sd)),
            Column::new("accuracy_ci_low".into(), f(&|x| x.accuracy.ci_low)),
            Column::new("accuracy_ci_high".into(), f(&|x| x.accuracy.ci_high)),
            Column::new("macro_f1_mean".into(), f(&|x| Some(x.macro_f1.mean))),
            Column::new("macro_f1_ci_low".into(), f(&|x| x.macro_f1.ci_low)),
            Column::new("macro_f1_ci_high".into(), f(&|x| x.macro_f1.ci_high)),
            Column::new("valid_accuracy_mean".into(), f(&|x| x.valid_accuracy.as_ref().map(|v| v.mean))),
            Column::new("chosen_epoch_mean".into(), f(&|x| x.chosen_epoch)),
            Column::new("train_samples_per_s".into(), f(&|x| x.train_samples_per_s)),
        ];
        DataFrame::new(c.len(), columns).expect("cell columns have equal lengths and distinct names")
    }

    /// One row per run: its job, the chosen epoch and the split that chose
    /// it, validation and test figures.
    pub fn runs_frame(&self) -> DataFrame {
        let r = &self.runs;
        let columns = vec![
            Column::new("job".into(), r.iter().map(|x| x.job.id as u64).collect::<Vec<_>>()),
            Column::new("model".into(), r.iter().map(|x| x.model.clone()).collect::<Vec<_>>()),
            Column::new("batch_size".into(), r.iter().map(|x| x.batch_size.map(|b| b as u64)).collect::<Vec<_>>()),
            Column::new("fold".into(), r.iter().map(|x| x.job.fold as u64).collect::<Vec<_>>()),
            Column::new("seed".into(), r.iter().map(seed_of).collect::<Vec<_>>()),
            Column::new("chosen_epoch".into(), r.iter().map(|x| x.chosen_epoch.map(|e| e as u64)).collect::<Vec<_>>()),
            Column::new("chosen_on".into(), r.iter().map(|x| format!("{:?}", x.chosen_on).to_lowercase()).collect::<Vec<_>>()),
            Column::new("valid_accuracy".into(), r.iter().map(|x| x.valid_accuracy).collect::<Vec<_>>()),
            Column::new("test_accuracy".into(), r.iter().map(|x| x.test.accuracy).collect::<Vec<_>>()),
            Column::new("test_macro_f1".into(), r.iter().map(|x| x.test.macro_f1).collect::<Vec<_>>()),
            Column::new("test_texts".into(), r.iter().map(|x| x.test_rows.len() as u64).collect::<Vec<_>>()),
            Column::new("params".into(), r.iter().map(|x| x.params).collect::<Vec<_>>()),
            Column::new("wall_s".into(), r.iter().map(|x| x.wall_s).collect::<Vec<_>>()),
        ];
        DataFrame::new(r.len(), columns).expect("run columns have equal lengths and distinct names")
    }

    /// One row per run and epoch (see [`history_frame`]), with the fold and seed.
    pub fn epochs_frame(&self) -> DataFrame {
        let runs: Vec<&JobResult> = self.runs.iter().filter(|r| !r.history.epochs.is_empty()).collect();
        let named: Vec<(String, usize, &crate::train::History)> = runs
            .iter()
            .map(|r| (format!("{} f{} s{}", r.model, r.job.fold, seed_of(r).unwrap_or(0)), r.batch_size.unwrap_or(0), &r.history))
            .collect();
        history_frame(&named)
    }

    /// One row per paired comparison.
    pub fn comparisons_frame(&self) -> DataFrame {
        let c = self.comparisons();
        let columns = vec![
            Column::new("scope".into(), c.iter().map(|x| x.scope.clone()).collect::<Vec<_>>()),
            Column::new("a".into(), c.iter().map(|x| x.a.to_string()).collect::<Vec<_>>()),
            Column::new("b".into(), c.iter().map(|x| x.b.to_string()).collect::<Vec<_>>()),
            Column::new("texts".into(), c.iter().map(|x| x.diff.n as u64).collect::<Vec<_>>()),
            Column::new("diff".into(), c.iter().map(|x| x.diff.diff).collect::<Vec<_>>()),
            Column::new("ci_low".into(), c.iter().map(|x| x.diff.low).collect::<Vec<_>>()),
            Column::new("ci_high".into(), c.iter().map(|x| x.diff.high).collect::<Vec<_>>()),
            Column::new("mcnemar_p".into(), c.iter().map(|x| x.mcnemar.p_value).collect::<Vec<_>>()),
            Column::new("a_only".into(), c.iter().map(|x| x.mcnemar.a_only as u64).collect::<Vec<_>>()),
            Column::new("b_only".into(), c.iter().map(|x| x.mcnemar.b_only as u64).collect::<Vec<_>>()),
            Column::new("conclusion".into(), c.iter().map(Comparison::sentence).collect::<Vec<_>>()),
        ];
        DataFrame::new(c.len(), columns).expect("comparison columns have equal lengths and distinct names")
    }

    /// Test accuracy (at the chosen epochs) by batch size: the mean per model
    /// with its 95% interval as error bars, the baseline and chance level
    /// as dashed lines, on a 0–100% axis.
    pub fn accuracy_chart(&self) -> LineChart {
        let cells = self.cells();
        let mut chart = LineChart::new(
            format!("Test accuracy by batch size (mean, 95% CI; n = {} runs per point)", self.plan.split.n_folds() * self.plan.seeds.len()),
            "batch size",
            "test accuracy",
        );
        chart.percent_y = true;
        chart.y_range = Some((0.0, 1.0));
        let xs: Vec<f64> = self.plan.batch_sizes.iter().map(|&b| b as f64).collect();
        let span = |y: f64| level_line(&xs, y);
        for (i, m) in self.plan.models.iter().enumerate() {
            let mine: Vec<&Cell> = self
                .plan
                .batch_sizes
                .iter()
                .filter_map(|&b| cells.iter().find(|c| c.setting.model == m.name && c.setting.batch_size == Some(b)))
                .collect();
            let points = mine.iter().map(|c| (c.setting.batch_size.unwrap_or(0) as f64, c.accuracy.mean)).collect();
            let errors = mine.iter().map(|c| (c.accuracy.ci_low.unwrap_or(f64::NAN), c.accuracy.ci_high.unwrap_or(f64::NAN))).collect();
            chart.series.push(Series::new(m.name.clone(), points).color(i).with_errors(errors));
        }
        if let Some(b) = cells.iter().find(|c| c.setting.model == BASELINE_NAME) {
            chart
                .series
                .push(Series::new(format!("{BASELINE_NAME} (mean)"), span(b.accuracy.mean)).dashed(true).color(self.plan.models.len()));
        }
        chart.series.push(Series::new("chance (majority class)", span(self.chance_accuracy())).dashed(true).color(7));
        chart
    }

    /// [`Sweep::epoch_charts`] as panels of one image (one display in a notebook cell).
    pub fn epoch_facets(&self) -> crate::report::plot::Facets {
        crate::report::plot::Facets(self.epoch_charts())
    }

    /// Validation accuracy per epoch, mean over each setting's runs: one
    /// chart per model (at most one line per batch size, so charts stay
    /// readable); test curves, when recorded, are drawn dashed and labelled
    /// as insight only.
    pub fn epoch_charts(&self) -> Vec<LineChart> {
        let chooser = if self.selects_on_test() { "test (chooses: seed's mode)" } else { "validation" };
        self.plan
            .models
            .iter()
            .map(|m| {
                let mut chart = LineChart::new(format!("{}: {chooser} accuracy per epoch (mean over runs)", m.name), "epoch", "accuracy");
                chart.percent_y = true;
                chart.y_range = Some((0.0, 1.0));
                for (i, &bs) in self.plan.batch_sizes.iter().enumerate() {
                    let runs = self.runs_of(&Setting { model: m.name.clone(), batch_size: Some(bs) });
                    let curve = |f: &dyn Fn(&crate::train::EpochRecord) -> Option<f64>| -> Vec<(f64, f64)> {
                        let mut by_epoch: BTreeMap<usize, Vec<f64>> = BTreeMap::new();
                        for r in &runs {
                            for e in &r.history.epochs {
                                if let Some(v) = f(e) {
                                    by_epoch.entry(e.epoch).or_default().push(v);
                                }
                            }
                        }
                        by_epoch.into_iter().filter_map(|(e, v)| mean(&v).map(|m| (e as f64, m))).collect()
                    };
                    chart.series.push(Series::new(format!("batch size {bs}"), curve(&|e| e.accuracy)).color(i));
                    let test = curve(&|e| e.test_accuracy);
                    if !test.is_empty() && !self.selects_on_test() {
                        chart.series.push(Series::new(format!("batch size {bs} test (insight only)"), test).color(i).dashed(true));
                    }
                }
                chart
            })
            .collect()
    }
}

/// "70.1 ± 4.2 (n=5)" in percent; "57.1 (n=1, no interval)" for one run.
pub fn interval_text(s: &Summary) -> String {
    match s.half_width() {
        Some(h) => format!("{:.1} ± {:.1} (n={})", s.mean * 100.0, h * 100.0, s.n),
        None => format!("{:.1} (n={}, no interval)", s.mean * 100.0, s.n),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::ModelSource;
    use crate::sweep::{DataSpec, Job, JobKind, SplitSpec, SweepModel, SweepPlan};
    use crate::train::{EpochRecord, History, Metrics, TrainConfig};

    /// A run of `model` (index `m`, `None`: the baseline) on `fold` that gets
    /// the test rows in `right` right; the test rows are `fold*n .. fold*n+n`,
    /// all of class 0.
    fn run(m: Option<usize>, bs: usize, fold: usize, n: usize, right: &[usize], valid: f64) -> JobResult {
        let rows: Vec<usize> = (fold * n..fold * n + n).collect();
        let targets = vec![0; n];
        let preds: Vec<usize> = rows.iter().map(|r| usize::from(!right.contains(r))).collect();
        let kind = match m {
            Some(model) => JobKind::Encoder { model, batch_size: bs, seed: 0 },
            None => JobKind::Baseline,
        };
        let epoch = EpochRecord {
            epoch: 1,
            accuracy: Some(valid),
            val_loss: Some(1.0),
            complete: true,
            train_samples_per_s: 10.0,
            ..Default::default()
        };
        JobResult {
            job: Job { id: 0, fold, kind },
            model: m.map_or(BASELINE_NAME.to_string(), |i| ["A", "B"][i].to_string()),
            batch_size: m.map(|_| bs),
            history: History { epochs: if m.is_some() { vec![epoch] } else { vec![] } },
            chosen_epoch: m.map(|_| 1),
            chosen_on: if m.is_some() { ChosenOn::Validation } else { ChosenOn::Nothing },
            valid_accuracy: m.map(|_| valid),
            valid_loss: None,
            test: Metrics::compute(&targets, &preds, 2).unwrap(),
            test_rows: rows,
            test_targets: targets,
            test_preds: preds,
            stop: None,
            params: 1,
            wall_s: 1.0,
        }
    }

    fn sweep_of(runs: Vec<JobResult>, batch_sizes: Vec<usize>) -> Sweep {
        Sweep {
            plan: SweepPlan {
                data: DataSpec::new("x"),
                data_fingerprint: None,
                split: SplitSpec::kfold(2, 0),
                models: vec![SweepModel::new("A", ModelSource::parse("a")), SweepModel::new("B", ModelSource::parse("b"))],
                batch_sizes,
                seeds: vec![0],
                baseline: true,
                train: TrainConfig::default(),
            },
            labels: vec!["x".into(), "y".into()],
            n_texts: 200,
            runs,
        }
    }

    #[test]
    fn a_clear_difference_is_claimed_and_a_tie_is_not() {
        let all: Vec<usize> = (0..200).collect();
        let half: Vec<usize> = (0..200).filter(|r| r % 2 == 0).collect();
        let almost: Vec<usize> = (0..200).filter(|r| r % 2 == 0 || *r == 1).collect();
        let s = sweep_of(
            vec![
                run(Some(0), 8, 0, 100, &all, 0.9),
                run(Some(0), 8, 1, 100, &all, 0.9),
                run(Some(1), 8, 0, 100, &half, 0.5),
                run(Some(1), 8, 1, 100, &half, 0.5),
                run(None, 0, 0, 100, &almost, 0.0),
                run(None, 0, 1, 100, &almost, 0.0),
            ],
            vec![8],
        );
        let ab = s
            .compare(&Setting { model: "A".into(), batch_size: Some(8) }, &Setting { model: "B".into(), batch_size: Some(8) }, "x")
            .unwrap();
        assert!((ab.diff.diff - 0.5).abs() < 1e-12);
        assert!(ab.diff.excludes_zero() && ab.mcnemar.p_value < 1e-20);
        assert!(ab.sentence().starts_with("A (batch size 8) beats B (batch size 8) by 50.0 points"), "{}", ab.sentence());
        let base = Setting { model: BASELINE_NAME.into(), batch_size: None };
        let bb = s.compare(&Setting { model: "B".into(), batch_size: Some(8) }, &base, "x").unwrap();
        assert!(!bb.diff.excludes_zero(), "one text of 200 apart: {:?}", bb.diff);
        assert!(
            bb.sentence().starts_with("No difference between TF-IDF + LR and B (batch size 8) is detectable with 200"),
            "{}",
            bb.sentence()
        );
        let text = s.conclusions().join("\n");
        assert!(text.contains("A (batch size 8) beats TF-IDF + LR"), "{text}");
        assert!(!text.contains("B (batch size 8) beats") && !text.contains("TF-IDF + LR beats B"), "{text}");
        assert!(text.contains("Chance level (always the most frequent class): 100.0%"), "{text}");
        let cells = s.cells();
        assert_eq!(cells.len(), 3);
        assert_eq!(cells[0].accuracy.n, 2);
        assert_eq!(cells[0].accuracy.sd, Some(0.0));
        assert_eq!(s.report_frame().shape(), (3, 2));
        use crate::report::plot::Chart;
        let svg = s.accuracy_chart().svg().unwrap();
        assert!(svg.contains("chance (majority class)") && svg.contains(BASELINE_NAME), "the chart has the reference lines");
        let facets = s.epoch_facets();
        assert_eq!(facets.0.len(), 2, "one panel per model");
        assert!(facets.svg().unwrap().contains("B: validation accuracy per epoch"));
    }

    #[test]
    fn validation_chooses_the_batch_size_with_ties_to_the_earlier_one() {
        let all: Vec<usize> = (0..20).collect();
        let none: Vec<usize> = vec![];
        // bs 16 is best on test but validation prefers bs 8; model B ties on validation.
        let s = sweep_of(
            vec![
                run(Some(0), 8, 0, 10, &none, 0.8),
                run(Some(0), 16, 0, 10, &all, 0.6),
                run(Some(1), 8, 0, 10, &none, 0.7),
                run(Some(1), 16, 0, 10, &all, 0.7),
            ],
            vec![8, 16],
        );
        assert_eq!(s.best_setting("A").unwrap().batch_size, Some(8));
        assert_eq!(s.best_setting("B").unwrap().batch_size, Some(8));
        assert_eq!(s.best_overall().unwrap().model, "A");
        assert!(s.conclusions().iter().any(|c| c.starts_with("A: batch size 8 chosen on validation")));
    }
}
