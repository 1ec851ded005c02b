//! The seed's argument measured: fine-tuned accuracy against pre-training
//! compute. Each point is an ELECTRA pre-trained for a budget of minutes on
//! every fold's training texts ([`FoldPretraining`]), 0 minutes being its
//! randomly initialised twin; each point joins the sweep as a model, so its
//! accuracy carries the sweep's intervals and paired comparisons, and the
//! pre-training's cost sits beside the fine-tuning's, both measured. Each
//! budget can be spent on either objective, masked LM or replaced-token
//! detection, both starting from the same random-init twin, so the two are
//! compared at equal wall time on the same folds.
use super::pretrained::{FoldPretrained, FoldPretraining};
use super::summary::{self, Setting, interval_text, level_line};
use super::{Sweep, SweepModel};
use crate::data::Split;
use crate::error::Result;
use crate::report::HtmlTable;
use crate::report::html::html_table;
use crate::report::plot::{LineChart, Series};
use crate::report::stats::Summary;
use crate::train::pretrain::Objective;

/// One budget: its sweep model name and the per-fold weights.
#[derive(Debug, Clone, PartialEq)]
pub struct CurvePoint {
    /// Pre-training wall minutes per fold (0: random initialisation).
    pub minutes: f64,
    /// The objective (`None`: random initialisation).
    pub objective: Option<Objective>,
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
/// use encoder_bench::train::pretrain::Objective;
/// let ds = Dataset::read_wos("../shared/data/wos-sample", WosLevel::L1)?;
/// let splits = Split::kfold(&ds, 3, 0)?;
/// let base = FoldPretraining::new(ElectraConfig::seed_shape(), "models/minilm", 0.0, "target/electra");
/// let curve = PretrainingCurve::run(&base, &[Objective::Mlm, Objective::Rtd], &[0.0, 1.0], &splits, tch::Device::Cpu)?;
/// let names: Vec<String> = curve.models().into_iter().map(|m| m.name).collect();
/// assert_eq!(names, ["ELECTRA (random init)", "ELECTRA (MLM, 1 min)", "ELECTRA (RTD, 1 min)"]);
/// # Ok::<(), encoder_bench::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct PretrainingCurve {
    /// The pre-training recipe (its `minutes` and `root` are per point).
    pub base: FoldPretraining,
    /// One point per objective and budget (random init once, first), in
    /// increasing minutes.
    pub points: Vec<CurvePoint>,
}

/// The sweep name of an ELECTRA pre-trained with `objective` for `minutes`.
///
/// ```
/// use encoder_bench::sweep::curve::point_name;
/// use encoder_bench::train::pretrain::Objective;
/// assert_eq!(point_name(None, 0.0), "ELECTRA (random init)");
/// assert_eq!(point_name(Some(Objective::Rtd), 1.5), "ELECTRA (RTD, 1.5 min)");
/// ```
pub fn point_name(objective: Option<Objective>, minutes: f64) -> String {
    match objective {
        Some(o) if minutes > 0.0 => format!("ELECTRA ({}, {minutes} min)", o.name()),
        _ => "ELECTRA (random init)".into(),
    }
}

/// The mean of `xs`, NaN when empty (a table cell then reads "NaN", never a made-up 0).
fn mean(xs: impl Iterator<Item = f64>) -> f64 {
    summary::mean(&xs.collect::<Vec<_>>()).unwrap_or(f64::NAN)
}

impl PretrainingCurve {
    /// Pre-trains (or reuses) `base` with each objective for each budget
    /// in `minutes` on each split's training texts, under
    /// `base.root/<objective>-<minutes>min/fold-K/`; a budget of 0 is the
    /// random-init twin, once, under `base.root/0min/`.
    pub fn run(base: &FoldPretraining, objectives: &[Objective], minutes: &[f64], splits: &[Split], device: tch::Device) -> Result<Self> {
        if objectives.is_empty() {
            return Err(crate::error::Error::invalid("objectives", "expected at least one (mlm, rtd)"));
        }
        let mut budgets = minutes.to_vec();
        budgets.sort_by(f64::total_cmp);
        budgets.dedup();
        let mut jobs: Vec<(Option<Objective>, f64)> = Vec::new();
        for &m in &budgets {
            if m == 0.0 {
                jobs.push((None, m));
            } else {
                jobs.extend(objectives.iter().map(|&o| (Some(o), m)));
            }
        }
        let points = jobs
            .into_iter()
            .map(|(objective, m)| {
                let dir = match objective {
                    Some(o) => format!("{o}-{m}min"),
                    None => "0min".into(),
                };
                let mut pretrain = base.pretrain.clone();
                pretrain.objective = objective.unwrap_or(base.pretrain.objective);
                let p = FoldPretraining { minutes: m, root: base.root.join(dir), pretrain, ..base.clone() };
                Ok(CurvePoint { minutes: m, objective, name: point_name(objective, m), folds: p.run(splits, device)? })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(PretrainingCurve { base: base.clone(), points })
    }

    /// The objectives of the curve, in order of appearance.
    pub fn objectives(&self) -> Vec<Objective> {
        let mut out: Vec<Objective> = Vec::new();
        for o in self.points.iter().filter_map(|p| p.objective) {
            if !out.contains(&o) {
                out.push(o);
            }
        }
        out
    }

    /// One sweep model per budget.
    pub fn models(&self) -> Vec<SweepModel> {
        self.points.iter().map(|p| self.base.sweep_model(p.name.clone(), &p.folds)).collect()
    }

    /// The best setting (chosen on validation) of each point, with its accuracy.
    fn best<'a>(&'a self, sw: &Sweep) -> Vec<(&'a CurvePoint, Setting, Summary)> {
        let cells = sw.cells();
        self.points
            .iter()
            .filter_map(|p| {
                let s = sw.best_setting(&p.name)?;
                let c = cells.iter().find(|c| c.setting == s)?;
                Some((p, s, c.accuracy))
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
        let objectives = self.objectives();
        let mut color = 0;
        for o in &objectives {
            for &b in &sw.plan.batch_sizes {
                // Each objective's line starts from the shared random-init point.
                let mine: Vec<(f64, &Summary)> = self
                    .points
                    .iter()
                    .filter(|p| p.objective.is_none_or(|x| x == *o))
                    .filter_map(|p| {
                        let c = cells.iter().find(|c| c.setting.model == p.name && c.setting.batch_size == Some(b))?;
                        Some((p.minutes, &c.accuracy))
                    })
                    .collect();
                let points = mine.iter().map(|(m, s)| (*m, s.mean)).collect();
                let errors = mine.iter().map(|(_, s)| (s.ci_low.unwrap_or(f64::NAN), s.ci_high.unwrap_or(f64::NAN))).collect();
                chart.series.push(Series::new(format!("{}, batch size {b}", o.name()), points).color(color).with_errors(errors));
                color += 1;
            }
        }
        let xs: Vec<f64> = self.points.iter().map(|p| p.minutes).collect();
        chart.series.push(Series::new("chance (majority class)", level_line(&xs, sw.chance_accuracy())).dashed(true).color(7));
        chart
    }

    /// The masked-LM loss of every pre-trained fold against steps (under
    /// replaced-token detection, the generator's), so a reader sees whether
    /// pre-training was still improving when its budget ran out.
    pub fn loss_chart(&self) -> LineChart {
        let mut chart = LineChart::new("Masked-LM loss in pre-training, per fold (RTD: the generator's)", "step", "MLM loss");
        let mut i = 0;
        for p in self.points.iter().filter(|p| p.minutes > 0.0) {
            for f in &p.folds {
                if let Some(r) = &f.result {
                    let pts = r.history.records.iter().map(|x| (x.step as f64, x.loss)).collect();
                    let o = p.objective.map_or("", |o| o.name());
                    chart.series.push(Series::new(format!("{o} {} min, fold {}", p.minutes, f.fold + 1), pts).color(i));
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
            let acc = best.iter().find(|(q, ..)| q.name == p.name).map_or("-".into(), |(_, s, a)| format!("{} ({s})", interval_text(a)));
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
        let zero = best.iter().find(|(p, ..)| p.objective.is_none());
        for (p, s, acc) in best.iter().filter(|(p, ..)| p.objective.is_some()) {
            let pre_s = mean(p.folds.iter().filter_map(|f| f.result.as_ref()).map(|r| r.elapsed_s));
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
        // The objectives against each other at equal wall time, on the same folds.
        if let [first, second, ..] = self.objectives()[..] {
            for (p, s, _) in best.iter().filter(|(p, ..)| p.objective == Some(second)) {
                if let Some((_, other, _)) = best.iter().find(|(q, ..)| q.objective == Some(first) && q.minutes == p.minutes)
                    && let Ok(c) = sw.compare(s, other, "objective")
                {
                    out.push(c.sentence());
                }
            }
        }
        out
    }
}
