//! The seed's analysis grid, generated and repeated instead of hand-typed:
//! every model × batch size fine-tuned with the same recipe over seeds and
//! cross-validation folds, next to a TF-IDF + logistic-regression baseline,
//! then summarised with intervals and paired comparisons. It sits above
//! training and reporting because it orchestrates both.
//!
//! - [`plan`]: the sweep as data, expanded into independent jobs;
//! - [`job`]: one job (in process, or `--run-job N` under a scheduler);
//! - [`curve`]: accuracy against pre-training minutes, with both costs;
//! - [`pretrained`]: ELECTRAs pre-trained per fold on its training texts;
//! - [`summary`]: cells with intervals, paired comparisons, conclusions,
//!   tables and charts, from the jobs' records.
pub mod curve;
pub mod job;
pub mod plan;
pub mod pretrained;
pub mod summary;

pub use curve::PretrainingCurve;
pub use job::{ChosenOn, JobData, JobOutcome, JobResult, run_job, run_planned_job};
pub use plan::{DataSpec, Job, JobKind, SplitSpec, SweepModel, SweepPlan, TestSplit};
pub use pretrained::{FoldPretrained, FoldPretraining};
pub use summary::{Cell, Comparison, Setting};

use crate::error::{Error, Result, write_atomic};
use crate::report::frames::save_frame;
use crate::train::ProgressMode;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The baseline's name in tables, legends and conclusions.
pub const BASELINE_NAME: &str = "TF-IDF + LR";

/// A finished sweep: its plan and every job's record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sweep {
    /// What was run.
    pub plan: SweepPlan,
    /// Class names.
    pub labels: Vec<String>,
    /// Texts in the dataset (each tested once per seed with k folds).
    pub n_texts: usize,
    /// One record per job, in job order.
    pub runs: Vec<JobResult>,
}

/// Runs every job of `plan` in this process on `device`, in job order;
/// `on_run` sees each finished job (a live line in a notebook). The same
/// jobs run one by one with `encoder-bench sweep --plan DIR --run-job N`
/// give the same [`Sweep`] through [`Sweep::collect`].
///
/// ```no_run
/// use encoder_bench::prelude::*;
/// use encoder_bench::sweep::{DataSpec, SplitSpec, SweepModel, SweepPlan, sweep};
/// let plan = SweepPlan {
///     data: DataSpec::new("../shared/data/wos-sample"),
///     data_fingerprint: None,
///     split: SplitSpec::kfold(5, 0),
///     models: vec![SweepModel::new("MiniLM", ModelSource::parse("models/minilm"))],
///     batch_sizes: vec![8, 16, 32],
///     seeds: vec![0],
///     baseline: true,
///     train: TrainConfig::transformers_recipe(),
/// };
/// let s = sweep(&plan, Device::Cpu, |_| {})?;
/// println!("{}", s.conclusions().join("\n"));
/// # Ok::<(), encoder_bench::Error>(())
/// ```
pub fn sweep(plan: &SweepPlan, device: tch::Device, mut on_run: impl FnMut(&JobResult)) -> Result<Sweep> {
    plan.validate()?;
    let mut data = JobData::load(plan)?;
    let mut runs = Vec::new();
    for job in plan.jobs() {
        let ckpt = plan.train.checkpoint_dir.as_ref().map(|d| d.join(format!("job-{:04}", job.id)));
        if plan.train.progress != ProgressMode::Quiet {
            println!("── job {} of {}: {} ──", job.id + 1, plan.jobs().len(), describe(plan, &job));
        }
        let r = run_job(plan, job, &mut data, device, ckpt)?;
        // A stop request ends the sweep, not just the run it cut short: a
        // partial run would otherwise stand in the summary as a full one.
        if let Some(why @ (crate::train::StopReason::StopFile | crate::train::StopReason::Interrupted)) = &r.stop {
            return Err(Error::Training(format!(
                "the sweep was stopped ({why:?}) during job {} of {} ({}): its results are incomplete (a planned sweep, `--plan`, keeps finished jobs)",
                job.id + 1,
                plan.jobs().len(),
                describe(plan, &job)
            )));
        }
        on_run(&r);
        runs.push(r);
    }
    let ds = data.dataset();
    Ok(Sweep { plan: plan.clone(), labels: ds.labels.names().to_vec(), n_texts: ds.len(), runs })
}

/// "BERT · batch size 16 · fold 2/5 · seed 0", for progress lines.
pub fn describe(plan: &SweepPlan, job: &Job) -> String {
    let fold = if plan.split.n_folds() > 1 { format!(" · fold {}/{}", job.fold + 1, plan.split.n_folds()) } else { String::new() };
    match job.kind {
        JobKind::Encoder { model, batch_size, seed } => {
            let name = plan.models.get(model).map_or("?", |m| m.name.as_str());
            format!("{name} · batch size {batch_size}{fold} · seed {seed}")
        }
        JobKind::Baseline => format!("{BASELINE_NAME}{fold}"),
    }
}

impl Sweep {
    /// Builds the sweep of a plan directory whose jobs have all finished
    /// (`encoder-bench sweep --collect DIR`); an unfinished job is an error
    /// naming it and the command that runs it.
    pub fn collect(dir: &Path) -> Result<Sweep> {
        let plan = SweepPlan::read(dir)?;
        let jobs = plan.jobs();
        let mut runs = Vec::new();
        let mut missing = Vec::new();
        for job in &jobs {
            match job::read_result(dir, job.id)? {
                Some(r) if r.job == *job => runs.push(r),
                Some(_) => {
                    return Err(Error::config(job::result_path(dir, job.id), "job", "records another job than the plan's: plan again"));
                }
                None => missing.push(job.id),
            }
        }
        if !missing.is_empty() {
            let list: Vec<String> = missing.iter().take(10).map(|i| i.to_string()).collect();
            return Err(Error::invalid(
                "collect",
                format!(
                    "{} of {} jobs in {} have no result yet (jobs {}{}): run them, e.g. `{}`",
                    missing.len(),
                    jobs.len(),
                    dir.display(),
                    list.join(", "),
                    if missing.len() > 10 { ", …" } else { "" },
                    plan::job_command(dir, missing[0])
                ),
            ));
        }
        let data = JobData::load(&plan)?;
        let ds = data.dataset();
        Ok(Sweep { labels: ds.labels.names().to_vec(), n_texts: ds.len(), plan, runs })
    }

    /// Writes `sweep.json` and the tables (`report`, `cells`, `runs`,
    /// `epochs`, `comparisons`, each as CSV and Parquet) into `dir`, each
    /// file atomically.
    pub fn save(&self, dir: impl AsRef<Path>) -> Result<()> {
        let dir = dir.as_ref();
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let frames = [
            ("report", self.report_frame()),
            ("cells", self.cells_frame()),
            ("runs", self.runs_frame()),
            ("epochs", self.epochs_frame()),
            ("comparisons", self.comparisons_frame()),
        ];
        for (name, mut df) in frames {
            save_frame(&mut df, &dir.join(format!("{name}.csv")))?;
            save_frame(&mut df, &dir.join(format!("{name}.parquet")))?;
        }
        write_atomic(dir.join("sweep.json"), plan::to_json(self)?.as_bytes())
    }

    /// Reads a `sweep.json` written by [`Sweep::save`].
    pub fn read(path: &Path) -> Result<Sweep> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        serde_json::from_str(&text).map_err(|e| Error::config(path, "<json>", e.to_string()))
    }
}
