//! The notebook's `train` and `validation` functions, and `fit`, which runs
//! epochs of them with schedules, clipping, progress bars, stop signals and
//! checkpoints.
//!
//! Model selection never looks at the test set: the validation set chooses
//! the epoch ([`SelectionConfig`](super::config::SelectionConfig): the
//! metric, early stopping), `fit` ends holding that epoch's weights, and
//! [`fit_and_test`] evaluates the test set once, there.
//!
//! Losses stay on the device and are read back every `log_every` steps, so
//! the GPU is not synchronised on every step.
use super::checkpoint::{
    FINE_TUNING_SALT, RunLock, StopReason, StopWatch, check_finite_weights, check_no_run, read_state, restore_model, restore_weights,
    save_checkpoint, saved_dir, step_seed, torch_seed,
};
use super::config::{SelectMetric, TrainConfig};
use super::loss::loss_fn;
use super::metrics::{Metrics, argmax_rows};
use super::optim::Optimizer;
use super::progress::Progress;
use crate::data::{Batch, Encoded};
use crate::error::{Error, Result};
use crate::models::{TextClassifier, check_encoded, with_precision};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Instant;
use tch::{Kind, Tensor};

/// One epoch's figures.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
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
    /// Test loss, when the test set is evaluated every epoch (curves for
    /// insight only: nothing is chosen on them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_loss: Option<f64>,
    /// Test accuracy after this epoch (insight only, see `test_loss`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_accuracy: Option<f64>,
    /// Test macro-F1 after this epoch (insight only, see `test_loss`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_macro_f1: Option<f64>,
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
    /// The epoch with the best validation accuracy (ties: lower loss, then
    /// the earlier epoch): [`History::chosen`] by accuracy.
    pub fn best(&self) -> Option<&EpochRecord> {
        self.chosen(SelectMetric::Accuracy)
    }

    /// The validated epoch that `metric` chooses (ties: the earlier epoch).
    /// An epoch cut short is chosen only when no epoch completed: a resumed
    /// run redoes it, and its weights must not stand in for a complete one.
    ///
    /// ```
    /// use encoder_bench::train::{EpochRecord, History, SelectMetric};
    /// let e = |epoch, acc, loss| EpochRecord { epoch, accuracy: Some(acc), val_loss: Some(loss), complete: true, ..EpochRecord::default() };
    /// let h = History { epochs: vec![e(1, 0.6, 0.9), e(2, 0.7, 1.1), e(3, 0.7, 1.0)] };
    /// assert_eq!(h.chosen(SelectMetric::Accuracy).map(|e| e.epoch), Some(3));
    /// assert_eq!(h.chosen(SelectMetric::Loss).map(|e| e.epoch), Some(1));
    /// ```
    pub fn chosen(&self, metric: SelectMetric) -> Option<&EpochRecord> {
        let key = |e: &EpochRecord| (e.accuracy.unwrap_or(0.0), e.val_loss.unwrap_or(f64::INFINITY));
        let any_complete = self.epochs.iter().any(|e| e.complete && e.accuracy.is_some());
        let mut best: Option<&EpochRecord> = None;
        for e in self.epochs.iter().filter(|e| e.accuracy.is_some() && (e.complete || !any_complete)) {
            if best.is_none_or(|b| metric.better(key(e), key(b))) {
                best = Some(e);
            }
        }
        best
    }

    /// Validated epochs after the chosen one (what early stopping counts).
    pub fn validated_since_chosen(&self, metric: SelectMetric) -> usize {
        let chosen = self.chosen(metric).map_or(0, |e| e.epoch);
        self.epochs.iter().filter(|e| e.epoch > chosen && e.accuracy.is_some()).count()
    }

    /// The same results ignoring timings: what determinism can promise.
    pub fn same_results(&self, other: &History) -> bool {
        self.without_timings() == other.without_timings()
    }

    /// The same figures with every timing zeroed (timings vary run to run).
    pub fn without_timings(&self) -> History {
        let epochs = self
            .epochs
            .iter()
            .map(|e| EpochRecord { train_s: 0.0, eval_s: 0.0, train_samples_per_s: 0.0, eval_samples_per_s: None, ..e.clone() })
            .collect();
        History { epochs }
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

impl Validation {
    /// A second handle on the same results (the probabilities are shared).
    fn duplicate(&self) -> Validation {
        Validation {
            probs: self.probs.shallow_clone(),
            targets: self.targets.clone(),
            preds: self.preds.clone(),
            loss: self.loss,
            metrics: self.metrics.clone(),
            seconds: self.seconds,
        }
    }
}

/// The outcome of [`fit`]. The model it trained ends holding the weights of
/// the chosen epoch.
#[derive(Debug)]
pub struct FitResult {
    /// Per-epoch figures.
    pub history: History,
    /// Why training ended.
    pub stop: StopReason,
    /// The last validation, with probabilities and the confusion matrix.
    pub last_validation: Option<Validation>,
    /// The epoch the validation metric chose (see [`History::chosen`]).
    pub chosen_epoch: Option<usize>,
    /// The validation at the chosen epoch.
    pub chosen_validation: Option<Validation>,
    /// The test set evaluated once, at the chosen epoch ([`fit_and_test`]).
    pub test: Option<Validation>,
}

impl FitResult {
    /// What the run chose and what the test set said there, in one line.
    ///
    /// ```
    /// use encoder_bench::train::{FitResult, History, StopReason};
    /// let r = FitResult { history: History::default(), stop: StopReason::Completed, last_validation: None,
    ///     chosen_epoch: None, chosen_validation: None, test: None };
    /// assert_eq!(r.outcome(), "no epoch was validated, so nothing was tested");
    /// ```
    pub fn outcome(&self) -> String {
        match (self.chosen_epoch, &self.test) {
            (Some(e), Some(t)) => format!(
                "epoch {e} chosen on validation; test accuracy there {:.1}%, macro-F1 {:.1}% ({} texts, stop: {:?})",
                t.metrics.accuracy * 100.0,
                t.metrics.macro_f1 * 100.0,
                t.targets.len(),
                self.stop
            ),
            (Some(e), None) => format!("epoch {e} chosen on validation (the test set was not scored)"),
            _ => "no epoch was validated, so nothing was tested".into(),
        }
    }
}

/// A copy of the weights on the CPU, so the chosen epoch can be restored
/// without a checkpoint directory.
struct Snapshot(Vec<(String, Tensor)>);

impl Snapshot {
    fn take(vs: &tch::nn::VarStore) -> Snapshot {
        Snapshot(vs.variables().into_iter().map(|(k, t)| (k, t.detach().to_device(tch::Device::Cpu).copy())).collect())
    }

    fn restore(&self, vs: &tch::nn::VarStore) -> Result<()> {
        let vars = vs.variables();
        tch::no_grad(|| {
            for (k, t) in &self.0 {
                let mut v = vars.get(k).ok_or_else(|| Error::invalid("snapshot", format!("variable `{k}` vanished")))?.shallow_clone();
                v.f_copy_(t).map_err(|e| Error::torch(format!("restoring `{k}`"), e))?;
            }
            Ok(())
        })
    }
}

/// Evaluates `model` on `data`: no gradients, no dropout.
pub fn validate(model: &dyn TextClassifier, data: &Encoded, cfg: &TrainConfig) -> Result<Validation> {
    if data.is_empty() {
        return Err(Error::invalid("validation data", "is empty"));
    }
    check_encoded(data, model, "validation data")?;
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

/// Mutable state of a run (what a `last/` checkpoint holds besides the
/// weights, the optimizer and the config).
#[derive(Clone, Serialize, Deserialize)]
struct RunState {
    history: History,
    global_step: usize,
    best_accuracy: Option<f64>,
    /// Steps already done in the current, unfinished epoch.
    epoch_steps: usize,
    /// Their summed loss (an f32 sum, kept exactly).
    epoch_loss_sum: f32,
    /// [`Encoded::fingerprint`] of the training and validation data (absent
    /// in states written before it was recorded).
    #[serde(default)]
    data: Option<(String, String)>,
}

/// One optimizer step on `batch` at learning rate `lr`: forward (in
/// `cfg.precision`), loss, backward, optional clipping, update. Returns the
/// loss as a detached device scalar (reading it would synchronise the device).
pub fn train_step(model: &dyn TextClassifier, opt: &mut Optimizer, batch: &Batch, cfg: &TrainConfig, lr: f64) -> Tensor {
    let logits = with_precision(cfg.precision, || model.forward_t(&batch.ids, &batch.mask, Some(&batch.token_type_ids), true));
    let loss = loss_fn(&logits, &batch.targets, cfg.label_smoothing);
    opt.zero_grad();
    loss.backward();
    if let Some(max) = cfg.optimizer.max_grad_norm {
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
    let shuffle = cfg.shuffle.then(|| torch_seed(step_seed(FINE_TUNING_SALT, cfg.seed, epoch, usize::MAX)) as u64);
    let mut batches = data.batches(cfg.batch_size, cfg.padding, shuffle, device)?;
    let total = batches.len() as u64;
    batches.advance(state.epoch_steps);
    let bar = Progress::new(total, &format!("epoch {}/{}", epoch + 1, cfg.stop.epochs), cfg.progress).summarised();
    bar.set_initial(state.epoch_steps as u64);
    let mut loss_sum = crate::device::to_device(&Tensor::from(state.epoch_loss_sum), device)?;
    let (mut lr, mut stop) = (cfg.optimizer.lr_at(state.global_step, total_steps), None);
    let mut steps = state.epoch_steps;
    for b in batches {
        lr = cfg.optimizer.lr_at(state.global_step, total_steps);
        let seed = torch_seed(step_seed(FINE_TUNING_SALT, cfg.seed, epoch, steps));
        loss_sum += crate::device::seeded(seed, || train_step(model, opt, &b, cfg, lr));
        steps += 1;
        state.global_step += 1;
        bar.inc(1);
        if steps.is_multiple_of(cfg.log_every) {
            let mean = loss_sum.double_value(&[]) / steps as f64;
            check_finite(mean, epoch, state.global_step)?;
            bar.set_postfix(&format!("loss={mean:.4}"));
        }
        if cfg.stop.reached_max_steps(state.global_step) {
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
/// let cfg = TrainConfig { stop: StopConfig { epochs: 5, ..Default::default() }, ..Default::default() };
/// let out = encoder_bench::train::fit(model, train, valid, &cfg)?;
/// for e in &out.history.epochs { println!("epoch {}: acc {:?}", e.epoch, e.accuracy); }
/// # Ok(()) }
/// ```
pub fn fit(model: &mut dyn TextClassifier, train: &Encoded, valid: &Encoded, cfg: &TrainConfig) -> Result<FitResult> {
    run(model, train, valid, None, cfg, None)
}

/// [`fit`], choosing the epoch on `valid`, then evaluates `test` once with
/// the chosen epoch's weights ([`FitResult::test`]). With
/// `selection.test_every_epoch`, the test set is also evaluated after every
/// epoch for the curves (never for a choice).
///
/// ```no_run
/// # fn run(model: &mut dyn encoder_bench::models::TextClassifier, train: &encoder_bench::data::Encoded, valid: &encoder_bench::data::Encoded, test: &encoder_bench::data::Encoded) -> encoder_bench::Result<()> {
/// let cfg = encoder_bench::train::TrainConfig::transformers_recipe();
/// let out = encoder_bench::train::fit_and_test(model, train, valid, test, &cfg)?;
/// println!("epoch {:?}: test accuracy {:?}", out.chosen_epoch, out.test.map(|t| t.metrics.accuracy));
/// # Ok(()) }
/// ```
pub fn fit_and_test(
    model: &mut dyn TextClassifier,
    train: &Encoded,
    valid: &Encoded,
    test: &Encoded,
    cfg: &TrainConfig,
) -> Result<FitResult> {
    run(model, train, valid, Some(test), cfg, None)
}

/// Continues a run from the `last/` checkpoint in `checkpoint_dir` (written
/// by an earlier `fit` with the same config): weights, optimizer moments,
/// step counter and history are restored, and the remaining epochs run.
pub fn resume(model: &mut dyn TextClassifier, train: &Encoded, valid: &Encoded, cfg: &TrainConfig) -> Result<FitResult> {
    run(model, train, valid, None, cfg, Some(last_checkpoint(cfg)?))
}

/// The `last/` checkpoint a resumed run continues from.
fn last_checkpoint(cfg: &TrainConfig) -> Result<PathBuf> {
    let dir =
        cfg.checkpoint_dir.as_ref().ok_or_else(|| Error::invalid("checkpoint_dir", "resume needs the directory of the run to continue"))?;
    Ok(saved_dir(dir, "last"))
}

/// [`resume`] for a run started with [`fit_and_test`].
pub fn resume_and_test(
    model: &mut dyn TextClassifier,
    train: &Encoded,
    valid: &Encoded,
    test: &Encoded,
    cfg: &TrainConfig,
) -> Result<FitResult> {
    run(model, train, valid, Some(test), cfg, Some(last_checkpoint(cfg)?))
}

fn run(
    model: &mut dyn TextClassifier,
    train: &Encoded,
    valid: &Encoded,
    test: Option<&Encoded>,
    cfg: &TrainConfig,
    resume_from: Option<PathBuf>,
) -> Result<FitResult> {
    cfg.validate_for(model.var_store().device())?;
    crate::device::retain_freed_cpu_memory();
    if train.is_empty() {
        return Err(Error::invalid("training data", "is empty"));
    }
    let mut sets = vec![(train, "training data"), (valid, "validation data")];
    sets.extend(test.map(|t| (t, "test data")));
    for (data, what) in sets {
        check_encoded(data, model, what)?;
        // The config owns max_len: data encoded at another length would make
        // the run record (and the reader) believe a length that was not used.
        if !data.is_empty() && data.max_len != cfg.max_len {
            return Err(Error::invalid(
                "max_len",
                format!(
                    "the {what} was encoded at max_len {} but the config says {}: encode it with the config's max_len",
                    data.max_len, cfg.max_len
                ),
            ));
        }
    }
    // Held for the whole run: one run per directory, and an unwritable
    // directory is found before any training.
    let _lock = cfg.checkpoint_dir.as_deref().map(RunLock::acquire).transpose()?;
    if let (None, false, Some(dir)) = (&resume_from, cfg.overwrite, &cfg.checkpoint_dir) {
        check_no_run(dir)?;
    }
    if let Some(tok) = &cfg.tokenizer_dir
        && !crate::tokenizer::is_tokenizer_dir(tok)
    {
        return Err(Error::invalid("tokenizer_dir", format!("{} has no tokenizer.json or vocab.txt", tok.display())));
    }
    let data = Some((train.fingerprint(), valid.fingerprint()));
    let mut opt = Optimizer::new(model.var_store(), &cfg.optimizer);
    let mut state = RunState {
        history: History::default(),
        global_step: 0,
        best_accuracy: None,
        epoch_steps: 0,
        epoch_loss_sum: 0.0,
        data: data.clone(),
    };
    if let Some(from) = &resume_from {
        state = restore(model, &mut opt, from, cfg, &data)?;
    }
    let per_epoch = train.len().div_ceil(cfg.batch_size);
    // `max_steps` only stops a run; the schedule always spans all epochs, so
    // a run cut short and resumed follows the same learning rates.
    let total_steps = per_epoch * cfg.stop.epochs;
    let watch = StopWatch::start(&cfg.stop);
    let mut last_validation = None;
    let metric = cfg.selection.select_on;
    let (mut snapshot, mut chosen_validation) = (None, None);
    let mut stop = StopReason::Completed;
    let first_epoch = state.history.epochs.iter().filter(|e| e.complete).count();
    let patience_ran_out = |h: &History| cfg.selection.patience.is_some_and(|p| h.validated_since_chosen(metric) >= p);
    for epoch in first_epoch..cfg.stop.epochs {
        if cfg.stop.reached_max_steps(state.global_step) {
            stop = StopReason::MaxSteps;
            break;
        }
        if patience_ran_out(&state.history) {
            stop = StopReason::EarlyStopping;
            break;
        }
        let t0 = Instant::now();
        let (train_loss, steps, lr, cut) = train_epoch(model, &mut opt, train, cfg, epoch, &mut state, total_steps, &watch)?;
        let train_s = t0.elapsed().as_secs_f64();
        let last = cut.is_some() || epoch + 1 == cfg.stop.epochs;
        let v = if (cfg.eval_every_epoch || last) && !valid.is_empty() { Some(validate(model, valid, cfg)?) } else { None };
        if let Some(v) = &v
            && !v.loss.is_finite()
        {
            return Err(Error::Training(format!(
                "validation loss became {} after epoch {} (the learning rate may be too high): stopped; the last good checkpoint, if any, is kept",
                v.loss,
                epoch + 1
            )));
        }
        let t = match test {
            Some(t) if cfg.selection.test_every_epoch && v.is_some() => Some(validate(model, t, cfg)?),
            _ => None,
        };
        let rec = EpochRecord {
            epoch: epoch + 1,
            train_loss,
            val_loss: v.as_ref().map(|v| v.loss),
            accuracy: v.as_ref().map(|v| v.metrics.accuracy),
            macro_f1: v.as_ref().map(|v| v.metrics.macro_f1),
            test_loss: t.as_ref().map(|t| t.loss),
            test_accuracy: t.as_ref().map(|t| t.metrics.accuracy),
            test_macro_f1: t.as_ref().map(|t| t.metrics.macro_f1),
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
            println!("{}", epoch_line(&rec, cfg.stop.epochs));
        }
        state.history.epochs.push(rec);
        let improved = v.is_some() && state.history.chosen(metric).map(|e| e.epoch) == Some(epoch + 1);
        if improved {
            state.best_accuracy = v.as_ref().map(|v| v.metrics.accuracy);
            snapshot = Some(Snapshot::take(model.var_store()));
            chosen_validation = v.as_ref().map(Validation::duplicate);
        }
        if let Some(dir) = &cfg.checkpoint_dir {
            save_checkpoints(model, &opt, &state, improved, cfg, dir)?;
        }
        last_validation = v;
        if let Some(r) = cut {
            stop = r;
            break;
        }
        if patience_ran_out(&state.history) {
            stop = StopReason::EarlyStopping;
            break;
        }
    }
    // End holding the chosen epoch's weights: from memory, or from `best/`
    // when it was chosen before a resume.
    let chosen_epoch = state.history.chosen(metric).map(|e| e.epoch);
    if chosen_epoch.is_some() && chosen_epoch != state.history.epochs.last().map(|e| e.epoch) {
        match (&snapshot, &cfg.checkpoint_dir) {
            (Some(s), _) => s.restore(model.var_store())?,
            (None, Some(dir)) => restore_model(&saved_dir(dir, "best"), model.var_store())?,
            (None, None) => return Err(Error::invalid("checkpoint_dir", "the chosen epoch's weights are neither in memory nor saved")),
        }
    }
    if chosen_epoch.is_some() && chosen_validation.is_none() {
        chosen_validation = match &last_validation {
            Some(v) if chosen_epoch == state.history.epochs.last().map(|e| e.epoch) => Some(v.duplicate()),
            _ => Some(validate(model, valid, cfg)?),
        };
    }
    let test = match test {
        Some(t) if chosen_epoch.is_some() => Some(validate(model, t, cfg)?),
        _ => None,
    };
    Ok(FitResult { history: state.history, stop, last_validation, chosen_epoch, chosen_validation, test })
}

fn epoch_line(r: &EpochRecord, epochs: usize) -> String {
    let pct = |x: Option<f64>| x.map_or("-".into(), |a| format!("{:.2}%", a * 100.0));
    format!(
        "epoch {}/{epochs}{}: train loss {:.4} | valid loss {} | accuracy {} | macro-F1 {} | {:.1} s, {:.1} samples/s",
        r.epoch,
        if r.complete { "" } else { " (cut short)" },
        r.train_loss,
        r.val_loss.map_or("-".into(), |l| format!("{l:.4}")),
        pct(r.accuracy),
        pct(r.macro_f1),
        r.train_s + r.eval_s,
        r.train_samples_per_s
    )
}

/// What a fine-tuning checkpoint's `trainer_state.json` holds.
#[derive(Serialize, Deserialize)]
struct TrainerState {
    #[serde(flatten)]
    run: RunState,
    config: TrainConfig,
}

/// `best/` whenever the epoch becomes the chosen one; `last/` after every
/// epoch and at every stop (also mid-epoch: resuming from any step is exact).
fn save_checkpoints(
    model: &dyn TextClassifier,
    opt: &Optimizer,
    state: &RunState,
    improved: bool,
    cfg: &TrainConfig,
    dir: &Path,
) -> Result<()> {
    check_finite_weights(model.var_store(), &format!("fine-tuning at step {}", state.global_step))?;
    let ts = TrainerState { run: state.clone(), config: cfg.clone() };
    let save_model = |d: &Path| {
        crate::models::save_classifier(model, d, None)?;
        if let Some(tok) = &cfg.tokenizer_dir {
            crate::tokenizer::copy_tokenizer_files(tok, d)?;
        }
        Ok(())
    };
    save_checkpoint(dir, "last", save_model, Some(opt), &ts)?;
    if improved {
        save_checkpoint(dir, "best", save_model, None, &ts)?;
    }
    Ok(())
}

/// The settings that decide a run's results: a resumed run must keep them
/// (stop signals, progress, logging and the directory may change).
fn recipe(c: &TrainConfig) -> serde_json::Value {
    let mut v = serde_json::to_value(c).unwrap_or_default();
    if let Some(m) = v.as_object_mut() {
        for k in [
            "max_steps",
            "time_budget_s",
            "stop_file",
            "progress",
            "log_every",
            "checkpoint_dir",
            "overwrite",
            "tokenizer_dir",
            "test_every_epoch",
        ] {
            m.remove(k);
        }
    }
    v
}

fn restore(
    model: &mut dyn TextClassifier,
    opt: &mut Optimizer,
    from: &Path,
    cfg: &TrainConfig,
    data: &Option<(String, String)>,
) -> Result<RunState> {
    let ts: TrainerState = read_state(from)?;
    let path = from.join(super::checkpoint::TRAINER_STATE);
    let (was, now) = (recipe(&ts.config), recipe(cfg));
    if was != now {
        let (was, now) = (was.as_object().cloned().unwrap_or_default(), now.as_object().cloned().unwrap_or_default());
        let changed: Vec<String> = now
            .iter()
            .filter(|(k, v)| was.get(*k) != Some(v))
            .map(|(k, v)| format!("{k}: {} -> {v}", was.get(k).map_or("(absent)".into(), |w| w.to_string())))
            .collect();
        return Err(Error::config(
            &path,
            "config",
            format!(
                "the run being resumed used other settings ({}): resume with the settings it started with, or start a new run",
                changed.join(", ")
            ),
        ));
    }
    if let (Some(was), Some(now)) = (&ts.run.data, data)
        && was != now
    {
        let which = if was.0 != now.0 { "training" } else { "validation" };
        return Err(Error::config(
            &path,
            "data",
            format!(
                "the {which} data differs from the run being resumed (other texts, labels, tokenizer or max_len): resume with the same data, or start a new run"
            ),
        ));
    }
    restore_weights(from, model.var_store(), opt)?;
    let mut run = ts.run;
    run.data = data.clone();
    // An epoch cut short is redone from where it stopped; its record is rewritten.
    run.history.epochs.retain(|e| e.complete);
    Ok(run)
}
