//! The seed's argument measured: fine-tuned accuracy against pre-training
//! compute. Each point is an ELECTRA pre-trained for a budget of minutes on
//! every fold's training texts ([`FoldPretraining`]), 0 minutes being its
//! randomly initialised twin; each point joins the sweep as a model, so its
//! accuracy carries the sweep's intervals and paired comparisons, and the
//! pre-training's cost sits beside the fine-tuning's, both measured.
use super::pretrained::{FoldPretrained, FoldPretraining};
use super::summary::{self, Setting, interval_text, level_line};
use super::{Sweep, SweepModel};
use crate::data::Split;
use crate::error::Result;
use crate::report::HtmlTable;
use crate::report::html::html_table;
use crate::report::plot::{LineChart, Series};
use crate::report::stats::Summary;

/// One budget: its sweep model name and the per-fold weights.
#[derive(Debug, Clone, PartialEq)]
pub struct CurvePoint {
    /// Pre-training wall minutes per fold (0: random initialisation).
    pub minutes: f64,
    /// The model's name in the sweep.
    pub name: String,
    /// The weights of each fold.
    pub folds: Vec<FoldPretrained>,
}

/// ELECTRAs pre-trained for several budgets, per fold.
///
/// ```no_run
/// use encoder_bench::data::{Dataset, Split, WosLevel};
/// use encoder_bench::models::ElectraConfig;
/// use encoder_bench::sweep::{FoldPretraining, PretrainingCurve};
/// let ds = Dataset::read_wos("../shared/data/wos-sample", WosLevel::L1)?;
/// let splits = Split::kfold(&ds, 3, 0)?;
/// let base = FoldPretraining::new(ElectraConfig::seed_shape(), "models/minilm", 0.0, "target/electra");
/// let curve = PretrainingCurve::run(&base, &[0.0, 1.0], &splits, tch::Device::Cpu)?;
/// assert_eq!(curve.models()[0].name, "ELECTRA (random init)");
/// # Ok::<(), encoder_bench::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct PretrainingCurve {
    /// The pre-training recipe (its `minutes` and `root` are per point).
    pub base: FoldPretraining,
    /// One point per budget, in increasing minutes.
    pub points: Vec<CurvePoint>,
}

/// The sweep name of an ELECTRA pre-trained for `minutes`.
///
/// ```
/// use encoder_bench::sweep::curve::point_name;
/// assert_eq!(point_name(0.0), "ELECTRA (random init)");
/// assert_eq!(point_name(1.5), "ELECTRA (pre-trained 1.5 min)");
/// ```
pub fn point_name(minutes: f64) -> String {
    if minutes == 0.0 { "ELECTRA (random init)".into() } else { format!("ELECTRA (pre-trained {minutes} min)") }
}

/// The mean of `xs`, NaN when empty (a table cell then reads "NaN", never a made-up 0).
fn mean(xs: impl Iterator<Item = f64>) -> f64 {
    summary::mean(&xs.collect::<Vec<_>>()).unwrap_or(f64::NAN)
}

impl PretrainingCurve {
    /// Pre-trains (or reuses) `base` for each budget in `minutes` on each
    /// split's training texts, under `base.root/<minutes>min/fold-K/`.
    pub fn run(base: &FoldPretraining, minutes: &[f64], splits: &[Split], device: tch::Device) -> Result<Self> {
        let mut budgets = minutes.to_vec();
        budgets.sort_by(f64::total_cmp);
        budgets.dedup();
        let points = budgets
            .into_iter()
            .map(|m| {
                let p = FoldPretraining { minutes: m, root: base.root.join(format!("{m}min")), ..base.clone() };
                Ok(CurvePoint { minutes: m, name: point_name(m), folds: p.run(splits, device)? })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(PretrainingCurve { base: base.clone(), points })
    }

    /// One sweep model per budget.
    pub fn models(&self) -> Vec<SweepModel> {
        self.points.iter().map(|p| self.base.sweep_model(p.name.clone(), &p.folds)).collect()
    }

    /// The best setting (chosen on validation) of each point, with its accuracy.
    fn best(&self, sw: &Sweep) -> Vec<(f64, Setting, Summary)> {
        let cells = sw.cells();
        self.points
            .iter()
            .filter_map(|p| {
                let s = sw.best_setting(&p.name)?;
                let c = cells.iter().find(|c| c.setting == s)?;
                Some((p.minutes, s, c.accuracy))
            })
            .collect()
    }

    /// Test accuracy against pre-training minutes: one line per batch size
    /// (mean with its 95% interval) and chance level, on a 0–100% axis.
    pub fn chart(&self, sw: &Sweep) -> LineChart {
        let cells = sw.cells();
        let mut chart =
            LineChart::new("Fine-tuned ELECTRA vs pre-training budget (mean, 95% CI)", "pre-training minutes per fold", "test accuracy");
        chart.percent_y = true;
        chart.y_range = Some((0.0, 1.0));
        for (i, &b) in sw.plan.batch_sizes.iter().enumerate() {
            let mine: Vec<(f64, &Summary)> = self
                .points
                .iter()
                .filter_map(|p| {
                    let c = cells.iter().find(|c| c.setting.model == p.name && c.setting.batch_size == Some(b))?;
                    Some((p.minutes, &c.accuracy))
                })
                .collect();
            let points = mine.iter().map(|(m, s)| (*m, s.mean)).collect();
            let errors = mine.iter().map(|(_, s)| (s.ci_low.unwrap_or(f64::NAN), s.ci_high.unwrap_or(f64::NAN))).collect();
            chart.series.push(Series::new(format!("batch size {b}"), points).color(i).with_errors(errors));
        }
        let xs: Vec<f64> = self.points.iter().map(|p| p.minutes).collect();
        chart.series.push(Series::new("chance (majority class)", level_line(&xs, sw.chance_accuracy())).dashed(true).color(7));
        chart
    }

    /// The masked-LM loss of every pre-trained fold against steps, so a
    /// reader sees whether pre-training was still improving when its budget
    /// ran out.
    pub fn loss_chart(&self) -> LineChart {
        let mut chart = LineChart::new("Masked-LM pre-training loss per fold", "step", "MLM loss");
        let mut i = 0;
        for p in self.points.iter().filter(|p| p.minutes > 0.0) {
            for f in &p.folds {
                if let Some(r) = &f.result {
                    let pts = r.history.records.iter().map(|x| (x.step as f64, x.loss)).collect();
                    chart.series.push(Series::new(format!("{} min, fold {}", p.minutes, f.fold + 1), pts).color(i));
                    i += 1;
                }
            }
        }
        chart
    }

    /// Pre-training cost per fold beside fine-tuning cost per run, and the
    /// accuracy each budget reached (its best setting, chosen on validation).
    pub fn compute_table(&self, sw: &Sweep) -> HtmlTable {
        let best = self.best(sw);
        let mut rows = Vec::new();
        for p in &self.points {
            let pre: Vec<_> = p.folds.iter().filter_map(|f| f.result.as_ref()).collect();
            let acc = best.iter().find(|(m, ..)| *m == p.minutes).map_or("-".into(), |(_, s, a)| format!("{} ({s})", interval_text(a)));
            if pre.is_empty() {
                rows.push(vec![p.name.clone(), "0".into(), "0".into(), "0".into(), "0".into(), acc]);
                continue;
            }
            rows.push(vec![
                p.name.clone(),
                format!("{:.0}", mean(pre.iter().map(|r| r.steps as f64))),
                format!("{:.0}", mean(pre.iter().map(|r| r.tokens as f64))),
                format!("{:.2e}", mean(pre.iter().map(|r| r.flops))),
                format!("{:.1}", mean(pre.iter().map(|r| r.elapsed_s))),
                acc,
            ]);
        }
        let (ft_s, ft_steps) = self.fine_tuning_cost(sw);
        rows.push(vec![
            "fine-tuning one run (mean over the ELECTRA runs)".into(),
            format!("{ft_steps:.0}"),
            "-".into(),
            "-".into(),
            format!("{ft_s:.1}"),
            "".into(),
        ]);
        let headers: Vec<String> =
            ["stage (per fold)", "steps", "tokens", "model FLOPs", "wall s", "test accuracy, %"].iter().map(|s| s.to_string()).collect();
        HtmlTable(html_table(&headers, &rows))
    }

    /// Mean training wall seconds and optimizer steps of one fine-tuning
    /// run of the curve's models.
    fn fine_tuning_cost(&self, sw: &Sweep) -> (f64, f64) {
        let runs: Vec<_> = sw.runs.iter().filter(|r| self.points.iter().any(|p| p.name == r.model)).collect();
        (
            mean(runs.iter().map(|r| r.history.epochs.iter().map(|e| e.train_s).sum::<f64>())),
            mean(runs.iter().map(|r| r.history.epochs.iter().map(|e| e.steps as f64).sum::<f64>())),
        )
    }

    /// What the curve says, computed: each budget against random
    /// initialisation (paired, claimed only when the interval excludes 0),
    /// its accuracy against chance, and what the pre-training cost next to
    /// one fine-tuning run.
    pub fn conclusions(&self, sw: &Sweep) -> Vec<String> {
        let best = self.best(sw);
        let chance = sw.chance_accuracy();
        let (ft_s, _) = self.fine_tuning_cost(sw);
        let mut out = Vec::new();
        let zero = best.iter().find(|(m, ..)| *m == 0.0);
        for (m, s, acc) in best.iter().filter(|(m, ..)| *m > 0.0) {
            let p = self.points.iter().find(|p| p.minutes == *m);
            let pre_s = p.map_or(f64::NAN, |p| mean(p.folds.iter().filter_map(|f| f.result.as_ref()).map(|r| r.elapsed_s)));
            out.push(format!(
                "{} reaches a mean test accuracy of {:.1}%{} ({:.1}x chance, {:.1}%); its pre-training took {pre_s:.0} s per fold, {:.1}x the {ft_s:.0} s of one fine-tuning run.",
                s.model,
                acc.mean * 100.0,
                acc.half_width().map_or(format!(" (n={}, no interval)", acc.n), |h| format!(" ± {:.1} (95% CI, n={})", h * 100.0, acc.n)),
                acc.mean / chance,
                chance * 100.0,
                pre_s / ft_s
            ));
            if let Some((_, z, _)) = zero
                && let Ok(c) = sw.compare(s, z, "pre-training")
            {
                out.push(c.sentence());
            }
        }
        out
    }
}
