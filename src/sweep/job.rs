//! Running one job of a plan: fine-tune a model on one fold (choosing the
//! epoch on validation, testing once), or fit the baseline. The in-process
//! sweep and `--run-job` both come here, so both give the same results; a
//! planned job keeps checkpoints in its directory, skips itself once done
//! and resumes exactly when it was cut short.
use super::BASELINE_NAME;
use super::plan::{Job, JobKind, SweepPlan, job_dir, to_json};
use crate::data::{Dataset, Encoded, Split};
use crate::error::{Error, Result, write_atomic};
use crate::models::load_classifier_as;
use crate::tokenizer::TextTokenizer;
use crate::train::baseline::Baseline;
use crate::train::checkpoint::{TRAINER_STATE, saved_dir};
use crate::train::{History, Metrics, StopReason, TrainConfig, fit_and_test, resume_and_test};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Which split chose a run's epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChosenOn {
    /// The validation set carved from the training side.
    Validation,
    /// The test set (the seed's mode): the reported test score is then an
    /// optimistic, selected one.
    Test,
    /// Nothing was chosen (the baseline has no epochs).
    Nothing,
}

/// The record of one finished job: what a planned job writes as
/// `result.json` and what a sweep's summary is computed from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobResult {
    /// The job.
    pub job: Job,
    /// Model name ([`BASELINE_NAME`] for the baseline).
    pub model: String,
    /// Training batch size (none for the baseline).
    pub batch_size: Option<usize>,
    /// Per-epoch figures (empty for the baseline).
    pub history: History,
    /// The epoch the selection metric chose.
    pub chosen_epoch: Option<usize>,
    /// Which split chose it.
    pub chosen_on: ChosenOn,
    /// Validation accuracy at the chosen epoch (what chooses settings).
    pub valid_accuracy: Option<f64>,
    /// Validation loss at the chosen epoch.
    pub valid_loss: Option<f64>,
    /// The test set at the chosen epoch: the reported result.
    pub test: Metrics,
    /// Rows (in the dataset) of the test texts, in order.
    pub test_rows: Vec<usize>,
    /// True class of each test text.
    pub test_targets: Vec<usize>,
    /// Predicted class of each test text.
    pub test_preds: Vec<usize>,
    /// Why training ended (none for the baseline).
    pub stop: Option<StopReason>,
    /// Trainable parameters (the baseline: weights and intercepts).
    pub params: i64,
    /// Whole job, loading included.
    pub wall_s: f64,
}

impl JobResult {
    /// Per test text: 1 when predicted right.
    pub fn correct(&self) -> Vec<bool> {
        self.test_preds.iter().zip(&self.test_targets).map(|(p, t)| p == t).collect()
    }

    /// The same results without timings (what determinism can promise).
    pub fn without_timings(&self) -> JobResult {
        let mut r = self.clone();
        r.wall_s = 0.0;
        r.history = r.history.without_timings();
        r
    }
}

/// The data a sweep's jobs share: read, split and encoded once per process.
pub struct JobData {
    ds: Dataset,
    splits: Vec<Split>,
    encoded: HashMap<(PathBuf, usize), (Encoded, Option<Encoded>, Encoded)>,
}

impl JobData {
    /// Reads the plan's data (refusing data that differs from the plan's
    /// fingerprint) and makes its splits.
    pub fn load(plan: &SweepPlan) -> Result<JobData> {
        let ds = plan.data.read()?;
        if let Some(want) = &plan.data_fingerprint
            && &ds.fingerprint() != want
        {
            return Err(Error::data(
                &plan.data.path,
                None,
                format!("differs from the data the plan was made from (fingerprint {} vs {want}): plan again", ds.fingerprint()),
            ));
        }
        JobData::from_dataset(plan, ds)
    }

    /// The splits of data already read.
    pub fn from_dataset(plan: &SweepPlan, ds: Dataset) -> Result<JobData> {
        let splits = plan.split.splits(&ds)?;
        Ok(JobData { ds, splits, encoded: HashMap::new() })
    }

    /// The dataset.
    pub fn dataset(&self) -> &Dataset {
        &self.ds
    }

    /// The splits, one per fold.
    pub fn splits(&self) -> &[Split] {
        &self.splits
    }

    fn encoded(&mut self, tok_dir: &Path, fold: usize, max_len: usize) -> Result<&(Encoded, Option<Encoded>, Encoded)> {
        let key = (tok_dir.to_path_buf(), fold);
        if !self.encoded.contains_key(&key) {
            let tok = TextTokenizer::from_dir(tok_dir)?;
            let s = &self.splits[fold];
            let valid = s.valid.as_ref().map(|v| tok.encode_dataset(v, max_len)).transpose()?;
            let sets = (tok.encode_dataset(&s.train, max_len)?, valid, tok.encode_dataset(&s.test, max_len)?);
            self.encoded.insert(key.clone(), sets);
        }
        Ok(&self.encoded[&key])
    }
}

/// Runs `job` of `plan` on `device`. With `checkpoint_dir`, the run keeps
/// its checkpoints there and continues a run found there.
pub fn run_job(plan: &SweepPlan, job: Job, data: &mut JobData, device: tch::Device, checkpoint_dir: Option<PathBuf>) -> Result<JobResult> {
    let start = Instant::now();
    let split = data.splits.get(job.fold).ok_or_else(|| Error::invalid("job", format!("fold {} of {}", job.fold, data.splits.len())))?;
    let test_rows = split.rows.test.clone();
    let (model_idx, batch_size, seed) = match job.kind {
        JobKind::Baseline => return run_baseline(job, split, test_rows, start),
        JobKind::Encoder { model, batch_size, seed } => (model, batch_size, seed),
    };
    let m = plan.models.get(model_idx).ok_or_else(|| Error::invalid("job", format!("model {model_idx} of {}", plan.models.len())))?;
    let tok_dir = m.tokenizer_dir()?;
    let labels = data.ds.labels.clone();
    let chosen_on = if split.valid.is_some() { ChosenOn::Validation } else { ChosenOn::Test };
    let (train, valid, test) = data.encoded(&tok_dir, job.fold, plan.train.max_len)?;
    let valid = valid.as_ref().unwrap_or(test);
    let (mut model, _) = load_classifier_as(m.source_for(job.fold)?, m.family, Some(labels), device, seed as i64)?;
    let resuming = checkpoint_dir.as_ref().is_some_and(|d| saved_dir(d, "last").join(TRAINER_STATE).exists());
    let cfg = TrainConfig { batch_size, seed, checkpoint_dir, optimizer: plan.recipe_of(model_idx).optimizer, ..plan.train.clone() };
    let out = if resuming {
        resume_and_test(model.as_mut(), train, valid, test, &cfg)?
    } else {
        fit_and_test(model.as_mut(), train, valid, test, &cfg)?
    };
    let t = out.test.ok_or_else(|| Error::Training(format!("job {}: the run validated no epoch, so nothing was tested", job.id)))?;
    let v = out.chosen_validation.as_ref();
    Ok(JobResult {
        job,
        model: m.name.clone(),
        batch_size: Some(batch_size),
        history: out.history,
        chosen_epoch: out.chosen_epoch,
        chosen_on,
        valid_accuracy: v.map(|v| v.metrics.accuracy),
        valid_loss: v.map(|v| v.loss),
        test: t.metrics,
        test_rows,
        test_targets: t.targets,
        test_preds: t.preds,
        stop: Some(out.stop),
        params: model.num_parameters(),
        wall_s: start.elapsed().as_secs_f64(),
    })
}

/// The baseline chooses nothing, so it learns from the whole training side
/// (training and validation texts) and is tested on the same test texts.
fn run_baseline(job: Job, split: &Split, test_rows: Vec<usize>, start: Instant) -> Result<JobResult> {
    let train = match &split.valid {
        Some(v) => split.train.concat(v)?,
        None => split.train.clone(),
    };
    let b = Baseline::fit(&train, &Default::default())?;
    let preds = b.predict(&split.test.texts)?;
    let targets = &split.test.targets;
    let test = Metrics::compute(targets, &preds, split.test.num_classes())?;
    Ok(JobResult {
        job,
        model: BASELINE_NAME.into(),
        batch_size: None,
        history: History::default(),
        chosen_epoch: None,
        chosen_on: ChosenOn::Nothing,
        valid_accuracy: None,
        valid_loss: None,
        test,
        test_rows,
        test_targets: targets.clone(),
        test_preds: preds,
        stop: None,
        params: (b.model().coef().numel() + b.model().intercept().numel()) as i64,
        wall_s: start.elapsed().as_secs_f64(),
    })
}

/// What [`run_planned_job`] did.
#[derive(Debug)]
pub enum JobOutcome {
    /// The job had already finished; its result is unchanged.
    AlreadyDone(JobResult),
    /// The job ran (from the start, or resumed from its checkpoints).
    Ran(JobResult),
}

/// The result file of a job in a plan directory.
pub fn result_path(dir: &Path, id: usize) -> PathBuf {
    job_dir(dir, id).join("result.json")
}

/// Reads a job's result, if it finished.
pub fn read_result(dir: &Path, id: usize) -> Result<Option<JobResult>> {
    let path = result_path(dir, id);
    if !path.exists() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
    serde_json::from_str(&text).map(Some).map_err(|e| Error::config(&path, "<json>", e.to_string()))
}

/// Runs job `id` of the plan in `dir` (`encoder-bench sweep --plan DIR
/// --run-job N`): skipped when its `result.json` exists, resumed when its
/// checkpoints hold a run, and its result written atomically at the end.
pub fn run_planned_job(dir: &Path, id: usize, device: tch::Device) -> Result<JobOutcome> {
    let plan = SweepPlan::read(dir)?;
    let jobs = plan.jobs();
    let job = *jobs.get(id).ok_or_else(|| {
        Error::invalid(
            "run-job",
            format!("{id}: the plan in {} has {} jobs (0..={})", dir.display(), jobs.len(), jobs.len().saturating_sub(1)),
        )
    })?;
    if let Some(done) = read_result(dir, id)? {
        return Ok(JobOutcome::AlreadyDone(done));
    }
    let mut data = JobData::load(&plan)?;
    let ckpt = matches!(job.kind, JobKind::Encoder { .. }).then(|| job_dir(dir, id).join("run"));
    let result = run_job(&plan, job, &mut data, device, ckpt)?;
    write_atomic(result_path(dir, id), to_json(&result)?.as_bytes())?;
    Ok(JobOutcome::Ran(result))
}
