//! The notebook's `train` and `validation` functions, and `fit`, which runs
//! epochs of them with schedules, clipping, progress bars, stop signals and
//! checkpoints.
//!
//! Losses stay on the device and are read back every `log_every` steps, so
//! the GPU is not synchronised on every step.
use super::config::TrainConfig;
use super::metrics::{Metrics, argmax_rows};
use super::optim::Optimizer;
use super::progress::Progress;
use crate::data::{Batch, Encoded};
use crate::weights::{KeyMap, load_into, read_weights};
use crate::models::{TextClassifier, with_precision};
use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Instant;
use tch::{Kind, Tensor};

/// Cross-entropy on logits with label smoothing: one softmax, inside the loss
/// (the seed's model applied a second one before `CrossEntropyLoss`).
///
/// ```
/// let logits = tch::Tensor::from_slice(&[10.0f32, 0.0, 0.0]).view([1, 3]);
/// let loss = encoder_bench::train::loss_fn(&logits, &tch::Tensor::from_slice(&[0i64]), 0.0);
/// assert!(loss.double_value(&[]) < 1e-3);
/// ```
pub fn loss_fn(logits: &Tensor, targets: &Tensor, label_smoothing: f64) -> Tensor {
    logits.to_kind(Kind::Float).cross_entropy_loss::<Tensor>(targets, None, tch::Reduction::Mean, -100, label_smoothing)
}

/// One epoch's figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    /// 1-based epoch number.
    pub epoch: usize,
    /// Mean training loss over the epoch's steps.
    pub train_loss: f64,
    /// Validation loss, when validated.
    pub val_loss: Option<f64>,
    /// Validation accuracy in [0, 1].
    pub accuracy: Option<f64>,
    /// Validation macro-F1.
    pub macro_f1: Option<f64>,
    /// Optimizer steps in this epoch.
    pub steps: usize,
    /// Learning rate of the epoch's last step.
    pub lr: f64,
    /// False when the epoch was cut short by a stop signal or step limit.
    pub complete: bool,
    /// Seconds spent training (validation excluded).
    pub train_s: f64,
    /// Seconds spent validating.
    pub eval_s: f64,
    /// Training throughput.
    pub train_samples_per_s: f64,
    /// Validation throughput.
    pub eval_samples_per_s: Option<f64>,
}

/// Per-epoch results of a run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct History {
    /// One record per epoch, in order.
    pub epochs: Vec<EpochRecord>,
}

impl History {
    /// The epoch with the best validation accuracy (ties: lower loss).
    pub fn best(&self) -> Option<&EpochRecord> {
        self.epochs.iter().filter(|e| e.accuracy.is_some()).max_by(|a, b| {
            let key = |e: &EpochRecord| (e.accuracy.unwrap_or(0.0), -e.val_loss.unwrap_or(f64::INFINITY));
            key(a).partial_cmp(&key(b)).unwrap_or(std::cmp::Ordering::Equal)
        })
    }

    /// The same results ignoring timings: what determinism can promise.
    pub fn same_results(&self, other: &History) -> bool {
        let strip = |h: &History| {
            h.epochs
                .iter()
                .map(|e| EpochRecord { train_s: 0.0, eval_s: 0.0, train_samples_per_s: 0.0, eval_samples_per_s: None, ..e.clone() })
                .collect::<Vec<_>>()
        };
        strip(self) == strip(other)
    }
}

/// What `validate` returns: like the seed's (outputs, targets), plus loss and metrics.
#[derive(Debug)]
pub struct Validation {
    /// Class probabilities `[n, classes]` on the CPU.
    pub probs: Tensor,
    /// True label ids.
    pub targets: Vec<usize>,
    /// Predicted label ids (argmax of `probs`).
    pub preds: Vec<usize>,
    /// Mean loss (same label smoothing as training).
    pub loss: f64,
    /// Accuracy, F1, confusion matrix, ...
    pub metrics: Metrics,
    /// Seconds taken.
    pub seconds: f64,
}

/// Why `fit` returned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// All epochs ran.
    Completed,
    /// `max_steps` was reached.
    MaxSteps,
    /// `time_budget_s` ran out.
    TimeBudget,
    /// The stop file appeared.
    StopFile,
}

/// The outcome of [`fit`].
#[derive(Debug)]
pub struct FitResult {
    /// Per-epoch figures.
    pub history: History,
    /// Why training ended.
    pub stop: StopReason,
    /// The last validation, with probabilities and the confusion matrix.
    pub last_validation: Option<Validation>,
}

/// Evaluates `model` on `data`: no gradients, no dropout.
pub fn validate(model: &dyn TextClassifier, data: &Encoded, cfg: &TrainConfig) -> Result<Validation> {
    if data.is_empty() {
        return Err(Error::invalid("validation data", "is empty"));
    }
    crate::models::check_encoded(data, model, "validation data")?;
    let start = Instant::now();
    let outputs = super::infer::eval_batches(model, data, cfg)?;
    let loss_sum = outputs.iter().fold(Tensor::zeros([], (Kind::Float, model.var_store().device())), |acc, o| acc + &o.loss_sum);
    let order: Vec<usize> = outputs.iter().flat_map(|o| o.indices.iter().copied()).collect();
    let logits_all: Vec<Tensor> = outputs.into_iter().map(|o| o.logits).collect();
    let probs = Tensor::cat(&logits_all, 0).softmax(-1, Kind::Float).to_device(tch::Device::Cpu);
    // Rows back into dataset order (bucketed batches are sorted by length).
    let probs = if order.iter().enumerate().all(|(row, &i)| row == i) {
        probs
    } else {
        let mut position = vec![0i64; order.len()];
        for (row, &i) in order.iter().enumerate() {
            position[i] = row as i64;
        }
        probs.index_select(0, &Tensor::from_slice(&position))
    };
    let n_classes = probs.size()[1] as usize;
    let flat = Vec::<f32>::try_from(probs.reshape(-1)).map_err(|e| Error::torch("reading probabilities", e))?;
    let preds = argmax_rows(&flat, n_classes);
    let targets: Vec<usize> = data.targets.iter().map(|&t| t as usize).collect();
    let metrics = Metrics::compute(&targets, &preds, n_classes)?;
    let loss = loss_sum.double_value(&[]) / data.len() as f64;
    Ok(Validation { probs, targets, preds, loss, metrics, seconds: start.elapsed().as_secs_f64() })
}

struct StopWatch {
    start: Instant,
    budget: Option<f64>,
    stop_file: Option<PathBuf>,
}

impl StopWatch {
    fn check(&self) -> Option<StopReason> {
        if self.budget.is_some_and(|b| self.start.elapsed().as_secs_f64() >= b) {
            return Some(StopReason::TimeBudget);
        }
        if self.stop_file.as_ref().is_some_and(|f| f.exists()) {
            return Some(StopReason::StopFile);
        }
        None
    }
}

/// Mutable state of a run (what a `last/` checkpoint holds).
struct RunState {
    history: History,
    global_step: usize,
    best_accuracy: Option<f64>,
    /// Steps already done in the current, unfinished epoch.
    epoch_steps: usize,
    /// Their summed loss (an f32 sum, kept exactly).
    epoch_loss_sum: f32,
}

/// The seed of every random draw of one step (dropout) and of one epoch's
/// shuffle: a pure function of the run seed and the position, so a run
/// resumed from any step draws exactly what the uninterrupted run drew.
fn step_seed(seed: u64, epoch: usize, step: usize) -> i64 {
    let mut x = seed ^ 0x9E37_79B9_7F4A_7C15;
    for v in [epoch as u64, step as u64] {
        x = (x ^ v).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        x ^= x >> 31;
    }
    (x >> 1) as i64
}

/// One optimizer step on `batch` at learning rate `lr`: forward (in
/// `cfg.precision`), loss, backward, optional clipping, update. Returns the
/// loss as a detached device scalar (reading it would synchronise the device).
pub fn train_step(model: &dyn TextClassifier, opt: &mut Optimizer, batch: &Batch, cfg: &TrainConfig, lr: f64) -> Tensor {
    let logits = with_precision(cfg.precision, || model.forward_t(&batch.ids, &batch.mask, Some(&batch.token_type_ids), true));
    let loss = loss_fn(&logits, &batch.targets, cfg.label_smoothing);
    opt.zero_grad();
    loss.backward();
    if let Some(max) = cfg.max_grad_norm {
        let _ = opt.clip_grad_norm(max);
    }
    opt.step(lr);
    loss.detach()
}

/// Runs (the rest of) one epoch, the seed's `train`; returns mean loss,
/// steps, last lr, and a stop reason if the epoch was cut short.
#[allow(clippy::too_many_arguments)]
fn train_epoch(
    model: &dyn TextClassifier,
    opt: &mut Optimizer,
    data: &Encoded,
    cfg: &TrainConfig,
    epoch: usize,
    state: &mut RunState,
    total_steps: usize,
    watch: &StopWatch,
) -> Result<(f64, usize, f64, Option<StopReason>)> {
    let device = model.var_store().device();
    let shuffle = cfg.shuffle.then(|| step_seed(cfg.seed, epoch, usize::MAX) as u64);
    let mut batches = data.batches(cfg.batch_size, cfg.padding, shuffle, device)?;
    let total = batches.len() as u64;
    batches.advance(state.epoch_steps);
    let bar = Progress::new(total, &format!("epoch {}/{}", epoch + 1, cfg.epochs), cfg.progress);
    bar.set_initial(state.epoch_steps as u64);
    let mut loss_sum = Tensor::from(state.epoch_loss_sum).to_device(device);
    let (mut lr, mut stop) = (cfg.lr_at(state.global_step, total_steps), None);
    let mut steps = state.epoch_steps;
    for b in batches {
        tch::manual_seed(step_seed(cfg.seed, epoch, steps));
        lr = cfg.lr_at(state.global_step, total_steps);
        loss_sum += train_step(model, opt, &b, cfg, lr);
        steps += 1;
        state.global_step += 1;
        bar.inc(1);
        if steps.is_multiple_of(cfg.log_every) {
            let mean = loss_sum.double_value(&[]) / steps as f64;
            check_finite(mean, epoch, state.global_step)?;
            bar.set_postfix(&format!("loss={mean:.4}"));
        }
        if cfg.max_steps.is_some_and(|m| state.global_step >= m) {
            stop = Some(StopReason::MaxSteps);
        } else {
            stop = watch.check();
        }
        if stop.is_some() && (steps as u64) < total {
            break;
        }
    }
    let sum = loss_sum.double_value(&[]);
    let mean = if steps == 0 { f64::NAN } else { sum / steps as f64 };
    if steps > 0 {
        check_finite(mean, epoch, state.global_step)?;
        bar.set_postfix(&format!("loss={mean:.4}"));
    }
    bar.finish();
    let finished = steps as u64 == total;
    state.epoch_steps = if finished { 0 } else { steps };
    state.epoch_loss_sum = if finished { 0.0 } else { sum as f32 };
    Ok((mean, steps, lr, stop))
}

fn check_finite(loss: f64, epoch: usize, step: usize) -> Result<()> {
    if loss.is_finite() {
        Ok(())
    } else {
        Err(Error::Training(format!(
            "loss became {loss} in epoch {} by step {step}: stopped (the learning rate may be too high); the last good checkpoint, if any, is kept",
            epoch + 1
        )))
    }
}

/// Fine-tunes `model` on `train`, validating on `valid`, per `cfg`.
///
/// ```no_run
/// use encoder_bench::prelude::*;
/// # fn run(model: &mut dyn encoder_bench::models::TextClassifier, train: &encoder_bench::data::Encoded, valid: &encoder_bench::data::Encoded) -> encoder_bench::Result<()> {
/// let out = encoder_bench::train::fit(model, train, valid, &TrainConfig { epochs: 5, ..Default::default() })?;
/// for e in &out.history.epochs { println!("epoch {}: acc {:?}", e.epoch, e.accuracy); }
/// # Ok(()) }
/// ```
pub fn fit(model: &mut dyn TextClassifier, train: &Encoded, valid: &Encoded, cfg: &TrainConfig) -> Result<FitResult> {
    run(model, train, valid, cfg, None)
}

/// Continues a run from the `last/` checkpoint in `checkpoint_dir` (written
/// by an earlier `fit` with the same config): weights, optimizer moments,
/// step counter and history are restored, and the remaining epochs run.
pub fn resume(model: &mut dyn TextClassifier, train: &Encoded, valid: &Encoded, cfg: &TrainConfig) -> Result<FitResult> {
    let dir =
        cfg.checkpoint_dir.as_ref().ok_or_else(|| Error::invalid("checkpoint_dir", "resume needs the directory of the run to continue"))?;
    run(model, train, valid, cfg, Some(saved_dir(dir, "last")))
}

/// Refuses to start a new run over the checkpoints of an earlier one.
fn check_no_run(dir: &Path) -> Result<()> {
    if let Some(found) = ["last", "best", "last.old"].iter().find(|n| dir.join(n).exists()) {
        return Err(Error::invalid(
            "checkpoint_dir",
            format!(
                "{} already holds a run ({found}/ exists): call `resume` to continue it, set `overwrite: true` in TrainConfig \
                 to replace it, or choose another directory",
                dir.display()
            ),
        ));
    }
    Ok(())
}

fn run(
    model: &mut dyn TextClassifier,
    train: &Encoded,
    valid: &Encoded,
    cfg: &TrainConfig,
    resume_from: Option<PathBuf>,
) -> Result<FitResult> {
    cfg.validate()?;
    crate::device::retain_freed_cpu_memory();
    if train.is_empty() {
        return Err(Error::invalid("training data", "is empty"));
    }
    crate::models::check_encoded(train, model, "training data")?;
    crate::models::check_encoded(valid, model, "validation data")?;
    if let (None, false, Some(dir)) = (&resume_from, cfg.overwrite, &cfg.checkpoint_dir) {
        check_no_run(dir)?;
    }
    let mut opt = Optimizer::new(model.var_store(), cfg);
    let mut state = RunState { history: History::default(), global_step: 0, best_accuracy: None, epoch_steps: 0, epoch_loss_sum: 0.0 };
    if let Some(from) = &resume_from {
        state = restore(model, &mut opt, from)?;
    }
    let per_epoch = train.len().div_ceil(cfg.batch_size);
    // `max_steps` only stops a run; the schedule always spans all epochs, so
    // a run cut short and resumed follows the same learning rates.
    let total_steps = per_epoch * cfg.epochs;
    let watch = StopWatch { start: Instant::now(), budget: cfg.time_budget_s, stop_file: cfg.stop_file.clone() };
    let mut last_validation = None;
    let mut stop = StopReason::Completed;
    let first_epoch = state.history.epochs.iter().filter(|e| e.complete).count();
    for epoch in first_epoch..cfg.epochs {
        if cfg.max_steps.is_some_and(|m| state.global_step >= m) {
            stop = StopReason::MaxSteps;
            break;
        }
        let t0 = Instant::now();
        let (train_loss, steps, lr, cut) = train_epoch(model, &mut opt, train, cfg, epoch, &mut state, total_steps, &watch)?;
        let train_s = t0.elapsed().as_secs_f64();
        let last = cut.is_some() || epoch + 1 == cfg.epochs;
        let v = if (cfg.eval_every_epoch || last) && !valid.is_empty() { Some(validate(model, valid, cfg)?) } else { None };
        let rec = EpochRecord {
            epoch: epoch + 1,
            train_loss,
            val_loss: v.as_ref().map(|v| v.loss),
            accuracy: v.as_ref().map(|v| v.metrics.accuracy),
            macro_f1: v.as_ref().map(|v| v.metrics.macro_f1),
            steps,
            lr,
            complete: state.epoch_steps == 0,
            train_s,
            eval_s: v.as_ref().map_or(0.0, |v| v.seconds),
            train_samples_per_s: (steps * cfg.batch_size).min(train.len()) as f64 / train_s.max(1e-9),
            eval_samples_per_s: v.as_ref().map(|v| valid.len() as f64 / v.seconds.max(1e-9)),
        };
        // Epoch summaries print unless asked for silence, even when `Auto`
        // hides the bars (piped output, CI logs).
        if cfg.progress != super::progress::ProgressMode::Quiet {
            println!("{}", epoch_line(&rec));
        }
        state.history.epochs.push(rec);
        if let Some(dir) = &cfg.checkpoint_dir {
            save_checkpoints(model, &opt, &mut state, v.as_ref(), cfg, dir)?;
        }
        last_validation = v;
        if let Some(r) = cut {
            stop = r;
            break;
        }
    }
    Ok(FitResult { history: state.history, stop, last_validation })
}

fn epoch_line(r: &EpochRecord) -> String {
    let pct = |x: Option<f64>| x.map_or("-".into(), |a| format!("{:.2}%", a * 100.0));
    format!(
        "epoch {}: train loss {:.4} | valid loss {} | accuracy {} | macro-F1 {} | {:.1} samples/s",
        r.epoch,
        r.train_loss,
        r.val_loss.map_or("-".into(), |l| format!("{l:.4}")),
        pct(r.accuracy),
        pct(r.macro_f1),
        r.train_samples_per_s
    )
}

#[derive(Serialize, Deserialize)]
struct TrainerState {
    global_step: usize,
    best_accuracy: Option<f64>,
    epoch_steps: usize,
    epoch_loss_sum: f32,
    history: History,
    config: TrainConfig,
}

/// Where [`save_dir`]'s `dir/<name>` is: itself, or `<name>.old` when a
/// crash fell between its two renames.
pub(crate) fn saved_dir(dir: &Path, name: &str) -> PathBuf {
    let (fin, old) = (dir.join(name), dir.join(format!("{name}.old")));
    if !fin.exists() && old.exists() { old } else { fin }
}

/// Writes `dir/<name>` as a whole: into `<name>.partial`, then swapped in by
/// renames, so a crash mid-save leaves the previous checkpoint intact.
pub(crate) fn save_dir(dir: &Path, name: &str, write: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let fin = dir.join(name);
    let tmp = dir.join(format!("{name}.partial"));
    let old = dir.join(format!("{name}.old"));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
    write(&tmp)?;
    let _ = std::fs::remove_dir_all(&old);
    if fin.exists() {
        std::fs::rename(&fin, &old).map_err(|e| Error::io(&fin, e))?;
    }
    std::fs::rename(&tmp, &fin).map_err(|e| Error::io(&fin, e))?;
    let _ = std::fs::remove_dir_all(&old);
    Ok(())
}

/// `best/` whenever validation accuracy improves; `last/` after every epoch
/// and at every stop (also mid-epoch: resuming from any step is exact).
fn save_checkpoints(
    model: &dyn TextClassifier,
    opt: &Optimizer,
    state: &mut RunState,
    v: Option<&Validation>,
    cfg: &TrainConfig,
    dir: &Path,
) -> Result<()> {
    let acc = v.map(|v| v.metrics.accuracy);
    let improved = acc.is_some_and(|a| state.best_accuracy.is_none_or(|b| a > b));
    if improved {
        state.best_accuracy = acc;
    }
    let ts = TrainerState {
        global_step: state.global_step,
        best_accuracy: state.best_accuracy,
        epoch_steps: state.epoch_steps,
        epoch_loss_sum: state.epoch_loss_sum,
        history: state.history.clone(),
        config: cfg.clone(),
    };
    let json = serde_json::to_string_pretty(&ts).map_err(|e| Error::invalid("trainer state", e.to_string()))?;
    save_dir(dir, "last", |d| {
        crate::models::save_classifier(model, d, None)?;
        let st = opt.state();
        Tensor::write_safetensors(&st, d.join("optimizer.safetensors")).map_err(|e| Error::torch("writing optimizer state", e))?;
        std::fs::write(d.join("trainer_state.json"), &json).map_err(|e| Error::io(d.join("trainer_state.json"), e))
    })?;
    if improved {
        save_dir(dir, "best", |d| {
            crate::models::save_classifier(model, d, None)?;
            std::fs::write(d.join("trainer_state.json"), &json).map_err(|e| Error::io(d.join("trainer_state.json"), e))
        })?;
    }
    Ok(())
}

fn restore(model: &mut dyn TextClassifier, opt: &mut Optimizer, from: &Path) -> Result<RunState> {
    let ts_path = from.join("trainer_state.json");
    let text = std::fs::read_to_string(&ts_path).map_err(|e| Error::io(&ts_path, e))?;
    let ts: TrainerState = serde_json::from_str(&text).map_err(|e| Error::config(&ts_path, "<json>", e.to_string()))?;
    let weights_path = from.join("model.safetensors");
    let map = KeyMap { encoder_prefix: "", strip_prefixes: &[], ignore: &[], may_be_missing: &[] };
    load_into(model.var_store(), read_weights(&weights_path)?, &map, &weights_path)?;
    let opt_path = from.join("optimizer.safetensors");
    let st = read_weights(&opt_path)?;
    opt.load_state(&st, &opt_path)?;
    let mut history = ts.history;
    // An epoch cut short is redone from where it stopped; its record is rewritten.
    history.epochs.retain(|e| e.complete);
    Ok(RunState {
        history,
        global_step: ts.global_step,
        best_accuracy: ts.best_accuracy,
        epoch_steps: ts.epoch_steps,
        epoch_loss_sum: ts.epoch_loss_sum,
    })
}
