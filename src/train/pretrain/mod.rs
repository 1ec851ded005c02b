//! Masked-language-model pre-training of an ELECTRA generator
//! ([`ElectraForMaskedLM`]) on plain text, producing the state dict the
//! notebook fine-tunes (what the seed's `babylm_model.bin` is).
//!
//! The recipe is BERT's, as transformers' `DataCollatorForLanguageModeling`
//! implements it: every non-special token is chosen with probability 0.15;
//! a chosen token becomes `[MASK]` 80% of the time, a random token 10% and
//! stays itself 10%; the loss is the cross-entropy over chosen positions only
//! (labels -100 elsewhere). `[CLS]`, `[SEP]` and padding are never chosen.
//! Masks are drawn anew for every batch of every epoch (dynamic masking,
//! RoBERTa-style) from a seed that is a pure function of the run seed, the
//! epoch and the step, so a run is reproducible and resuming from any step
//! draws exactly what the uninterrupted run drew.
//!
//! ```no_run
//! use encoder_bench::models::{ElectraConfig, ElectraForMaskedLM};
//! use encoder_bench::tokenizer::TextTokenizer;
//! use encoder_bench::train::pretrain::{Corpus, PretrainConfig, pretrain};
//! let tok = TextTokenizer::from_dir("models/minilm")?;
//! let cfg = PretrainConfig { stop: encoder_bench::train::StopConfig { max_steps: Some(200), ..Default::default() }, ..Default::default() };
//! let corpus = Corpus::from_text_file("../shared/data/wos-sample/X.txt", &tok, cfg.max_len)?;
//! let model_cfg = ElectraConfig::from_file("tests/fixtures/large/electra-seed/config.json")?;
//! let mut model = ElectraForMaskedLM::random(&model_cfg, tch::Device::Cpu, 0);
//! let out = pretrain(&mut model, &corpus, &cfg)?;
//! for r in &out.history.records { println!("step {}: loss {:.3}, masked acc {:.3}", r.step, r.loss, r.accuracy); }
//! model.save("models/my-electra", Some(&tok))?;
//! # Ok::<(), encoder_bench::Error>(())
//! ```
mod config;
mod masking;
mod objective;

pub use config::{Objective, PretrainConfig};
pub use masking::{Corpus, IGNORE_INDEX, MlmBatch, MlmBatches, epoch_batches};
pub use objective::{Detection, PretrainingModel, StepOutput};

use super::checkpoint::{
    PRETRAINING_SALT, RunLock, StopReason, StopWatch, check_finite_weights, read_state, restore_weights, save_checkpoint, saved_dir,
    step_seed, torch_seed,
};
use super::flops::TRAIN_FACTOR;
use super::optim::Optimizer;
use super::progress::Progress;
use crate::error::{Error, Result};
use crate::models::{ElectraConfig, ElectraForMaskedLM, ElectraRtd};
use crate::tokenizer::TextTokenizer;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use tch::{Device, Tensor};

/// The corpus used when none is given: the shipped WOS sample's abstracts.
pub const DEFAULT_CORPUS: &str = "../shared/data/wos-sample/X.txt";

/// Figures over the `log_every` steps ending at `step`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PretrainRecord {
    /// Optimizer steps done (1-based: the record after the first step is step 1).
    pub step: usize,
    /// Epochs done, fractional (`step / steps per epoch`).
    pub epoch: f64,
    /// Mean masked-LM loss (cross-entropy over chosen positions) of the
    /// window's steps; under replaced-token detection, the generator's.
    pub loss: f64,
    /// Fraction of the window's chosen positions whose original token is the argmax.
    pub accuracy: f64,
    /// Replaced-token detection: the discriminator's mean loss (binary
    /// cross-entropy over real tokens) of the window's steps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detection_loss: Option<f64>,
    /// Replaced-token detection: the fraction of the window's real tokens
    /// the discriminator classified right.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detection_accuracy: Option<f64>,
    /// Chosen positions in the window.
    pub masked_tokens: u64,
    /// Real (non-padding) tokens processed since the start of the run.
    pub tokens: u64,
    /// Estimated training FLOPs since the start of the run (see [`super::flops`]).
    pub flops: f64,
    /// Learning rate of the window's last step.
    pub lr: f64,
    /// Seconds of training since the start of the run (resumed runs included).
    pub elapsed_s: f64,
    /// True for a window cut short by a stop (time budget, stop file): a
    /// resumed run finishes that window and records it in full instead.
    pub partial: bool,
}

/// The records of a run, in order.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PretrainHistory {
    /// One record every `log_every` steps, plus the last (possibly shorter) window.
    pub records: Vec<PretrainRecord>,
}

impl PretrainHistory {
    /// The same results ignoring timings: what determinism can promise.
    pub fn same_results(&self, other: &PretrainHistory) -> bool {
        let strip = |h: &PretrainHistory| h.records.iter().map(|r| PretrainRecord { elapsed_s: 0.0, ..r.clone() }).collect::<Vec<_>>();
        strip(self) == strip(other)
    }

    /// `(step, loss)` pairs, for a chart.
    pub fn losses(&self) -> Vec<(usize, f64)> {
        self.records.iter().map(|r| (r.step, r.loss)).collect()
    }
}

/// The outcome of [`pretrain`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PretrainResult {
    /// Loss and masked-token accuracy every `log_every` steps.
    pub history: PretrainHistory,
    /// Why training ended.
    pub stop: StopReason,
    /// Optimizer steps done in all.
    pub steps: usize,
    /// Real tokens processed in all.
    pub tokens: u64,
    /// Tokens processed including padding (what the model computed on).
    pub padded_tokens: u64,
    /// Chosen (predicted) positions in all.
    pub masked_tokens: u64,
    /// Estimated training FLOPs in all (see [`super::flops`]).
    pub flops: f64,
    /// Seconds of training in all (resumed runs included).
    pub elapsed_s: f64,
    /// Trainable parameters of the model (tied decoder counted once; under
    /// replaced-token detection, generator and discriminator, shared tables once).
    pub parameters: i64,
    /// Sequences in the corpus.
    pub sequences: usize,
}

/// Running sums of the current log window. Loss and hits stay on the
/// device and are read back every `log_every` steps, so the GPU is not
/// synchronised on every step.
struct Window {
    steps: usize,
    loss_sum: Tensor,
    correct: Tensor,
    masked: u64,
    detection: Option<DetectionWindow>,
}

/// The discriminator's running sums (replaced-token detection).
struct DetectionWindow {
    loss_sum: Tensor,
    correct: Tensor,
    tokens: Tensor,
}

/// A window's sums as a checkpoint keeps them.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct DetectionSums {
    loss_sum: f32,
    correct: i64,
    tokens: i64,
}

impl Window {
    fn new(device: Device, loss_sum: f32, correct: i64, steps: usize, masked: u64, detection: Option<&DetectionSums>) -> Result<Self> {
        let on_device = |t: Tensor| crate::device::to_device(&t, device);
        let detection = match detection {
            Some(d) => Some(DetectionWindow {
                loss_sum: on_device(Tensor::from(d.loss_sum))?,
                correct: on_device(Tensor::from(d.correct))?,
                tokens: on_device(Tensor::from(d.tokens))?,
            }),
            None => None,
        };
        Ok(Window { steps, loss_sum: on_device(Tensor::from(loss_sum))?, correct: on_device(Tensor::from(correct))?, masked, detection })
    }

    fn sums(&self) -> Option<DetectionSums> {
        self.detection.as_ref().map(|d| DetectionSums {
            loss_sum: d.loss_sum.double_value(&[]) as f32,
            correct: d.correct.int64_value(&[]),
            tokens: d.tokens.int64_value(&[]),
        })
    }
}

/// Progress of a run: what a `last/` checkpoint holds besides weights and moments.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct PretrainState {
    global_step: usize,
    epoch: usize,
    epoch_step: usize,
    tokens: u64,
    padded_tokens: u64,
    masked_tokens: u64,
    flops: f64,
    elapsed_s: f64,
    window_steps: usize,
    window_loss_sum: f32,
    window_correct: i64,
    window_masked: u64,
    #[serde(default)]
    window_detection: Option<DetectionSums>,
    history: PretrainHistory,
    config: PretrainConfig,
}

/// Pre-trains `model` on `corpus` per `cfg` (masked LM for an
/// [`ElectraForMaskedLM`], replaced-token detection for an [`ElectraRtd`])
/// and returns the history (step, loss, masked-token accuracy, tokens,
/// FLOPs, wall time). Stops cleanly at `max_steps`/`epochs`, when
/// `time_budget_s` runs out or when `stop_file` appears, writing
/// `checkpoint_dir/last/` if set.
pub fn pretrain<M: PretrainingModel>(model: &mut M, corpus: &Corpus, cfg: &PretrainConfig) -> Result<PretrainResult> {
    run(model, corpus, cfg, None)
}

/// Continues a run from `checkpoint_dir/last/` (written by an earlier
/// [`pretrain`] with the same corpus and data settings): weights, optimizer
/// moments, position, counters and history are restored, and the result is
/// the one the uninterrupted run would have given.
pub fn resume_pretraining<M: PretrainingModel>(model: &mut M, corpus: &Corpus, cfg: &PretrainConfig) -> Result<PretrainResult> {
    let dir = cfg
        .checkpoint_dir
        .as_ref()
        .ok_or_else(|| Error::invalid("checkpoint_dir", "resuming needs the checkpoint directory of the run to continue"))?;
    run(model, corpus, cfg, Some(saved_dir(dir, "last")))
}

fn run<M: PretrainingModel>(model: &mut M, corpus: &Corpus, cfg: &PretrainConfig, resume_from: Option<PathBuf>) -> Result<PretrainResult> {
    cfg.validate()?;
    if model.objective() != cfg.objective {
        return Err(Error::invalid(
            "objective",
            format!("the config says {} but the model given pre-trains with {}", cfg.objective, model.objective()),
        ));
    }
    cfg.precision.check_device(model.var_store().device())?;
    let _lock = cfg.checkpoint_dir.as_deref().map(RunLock::acquire).transpose()?;
    crate::device::retain_freed_cpu_memory();
    if corpus.is_empty() {
        return Err(Error::invalid("corpus", "is empty"));
    }
    if corpus.max_len != cfg.max_len {
        return Err(Error::invalid(
            "max_len",
            format!("the corpus was cut at {} tokens but the config says {}", corpus.max_len, cfg.max_len),
        ));
    }
    let mcfg = model.config().clone();
    if cfg.max_len as i64 > mcfg.max_position_embeddings {
        return Err(Error::invalid(
            "max_len",
            format!("{} exceeds the model's max_position_embeddings {}", cfg.max_len, mcfg.max_position_embeddings),
        ));
    }
    if corpus.vocab_size > mcfg.vocab_size {
        return Err(Error::invalid(
            "vocab_size",
            format!("the tokenizer has {} tokens but the model's vocabulary only {}", corpus.vocab_size, mcfg.vocab_size),
        ));
    }
    let device = model.var_store().device();
    let ocfg = &cfg.optimizer;
    let mut opt = Optimizer::new(model.var_store(), ocfg);
    let mut st = PretrainState {
        global_step: 0,
        epoch: 0,
        epoch_step: 0,
        tokens: 0,
        padded_tokens: 0,
        masked_tokens: 0,
        flops: 0.0,
        elapsed_s: 0.0,
        window_steps: 0,
        window_loss_sum: 0.0,
        window_correct: 0,
        window_masked: 0,
        window_detection: None,
        history: PretrainHistory::default(),
        config: cfg.clone(),
    };
    if let Some(from) = &resume_from {
        st = restore(model, &mut opt, from, cfg)?;
        st.config = cfg.clone();
    }
    let per_epoch = corpus.len().div_ceil(cfg.batch_size);
    let total = cfg.total_steps(corpus.len());
    let watch = StopWatch::start(&cfg.stop);
    let elapsed_before = st.elapsed_s;
    let elapsed = || elapsed_before + watch.elapsed_s();
    let fresh_detection = (cfg.objective == Objective::Rtd).then(DetectionSums::default);
    let detection = st.window_detection.clone().or(fresh_detection);
    let mut window = Window::new(device, st.window_loss_sum, st.window_correct, st.window_steps, st.window_masked, detection.as_ref())?;
    // Summarised: under a time budget the step count is a cap, not the length,
    // so a final frame would read "0% of 100000"; the summary line says what ran.
    let bar = Progress::new(total as u64, "pretrain", cfg.progress).summarised();
    bar.set_initial(st.global_step as u64);
    let mut lr = ocfg.lr_at(st.global_step.saturating_sub(1), total);
    let mut stop = None;
    'epochs: while st.global_step < total {
        let mut batches = epoch_batches(corpus, cfg, st.epoch, device)?;
        batches.advance(st.epoch_step);
        for b in batches {
            let seed = torch_seed(step_seed(PRETRAINING_SALT, cfg.seed, st.epoch, st.epoch_step));
            let out = crate::device::seeded(seed, || model.step(&b, cfg));
            opt.zero_grad();
            out.loss.backward();
            if let Some(max) = ocfg.max_grad_norm {
                let _ = opt.clip_grad_norm(max);
            }
            lr = match cfg.stop.time_budget_s {
                // Under a time budget the schedule spans whichever ends first,
                // the steps or the budget: warmup and decay fit the minutes given.
                Some(budget) => ocfg.lr_at_fraction((st.global_step as f64 / total as f64).max(elapsed() / budget)),
                None => ocfg.lr_at(st.global_step, total),
            };
            opt.step(lr);
            tch::no_grad(|| {
                window.loss_sum += &out.mlm_loss;
                window.correct += &out.mlm_correct;
                if let (Some(w), Some(d)) = (window.detection.as_mut(), out.detection.as_ref()) {
                    w.loss_sum += &d.loss;
                    w.correct += &d.correct;
                    w.tokens += &d.tokens;
                }
            });
            window.steps += 1;
            window.masked += b.masked as u64;
            st.global_step += 1;
            st.epoch_step += 1;
            st.tokens += b.tokens as u64;
            st.padded_tokens += (b.rows * b.width) as u64;
            st.masked_tokens += b.masked as u64;
            st.flops += TRAIN_FACTOR * model.forward_flops(&b);
            bar.inc(1);
            if st.global_step.is_multiple_of(cfg.log_every) || st.global_step == total {
                let rec = flush(&mut window, &st, per_epoch, lr, elapsed(), false, device)?;
                bar.set_postfix(&format!("loss={:.4}, acc={:.3}", rec.loss, rec.accuracy));
                st.history.records.push(rec);
            }
            if st.epoch_step == per_epoch {
                st.epoch += 1;
                st.epoch_step = 0;
            }
            stop = if st.global_step >= total { None } else { watch.check() };
            let periodic = cfg.checkpoint_every.is_some_and(|n| st.global_step.is_multiple_of(n));
            if (stop.is_some() || st.global_step >= total || periodic)
                && let Some(dir) = &cfg.checkpoint_dir
            {
                st.elapsed_s = elapsed();
                save_last(model, &opt, &mut st, &window, dir)?;
            }
            if stop.is_some() || st.global_step >= total {
                break 'epochs;
            }
            if st.epoch_step == 0 {
                break; // the epoch is over: reshuffle
            }
        }
    }
    bar.finish();
    st.elapsed_s = elapsed();
    let mut history = st.history.clone();
    // The checkpoint keeps the cut window open (a resumed run completes it);
    // the caller sees it now, marked partial.
    if stop.is_some() && window.steps > 0 {
        history.records.push(flush(&mut window, &st, per_epoch, lr, st.elapsed_s, true, device)?);
    }
    let out = PretrainResult {
        history,
        stop: stop.unwrap_or(if cfg.stop.max_steps.is_some() { StopReason::MaxSteps } else { StopReason::Completed }),
        steps: st.global_step,
        tokens: st.tokens,
        padded_tokens: st.padded_tokens,
        masked_tokens: st.masked_tokens,
        flops: st.flops,
        elapsed_s: st.elapsed_s,
        parameters: model.num_parameters(),
        sequences: corpus.len(),
    };
    if cfg.progress != super::progress::ProgressMode::Quiet {
        println!("{}", out.summary_line());
    }
    Ok(out)
}

impl PretrainResult {
    /// The run in one line: steps, time, rate, the last loss and accuracy, why it stopped.
    ///
    /// ```
    /// use encoder_bench::train::pretrain::{PretrainHistory, PretrainResult};
    /// use encoder_bench::train::StopReason;
    /// let r = PretrainResult { history: PretrainHistory::default(), stop: StopReason::TimeBudget, steps: 120, tokens: 240_000,
    ///     padded_tokens: 245_760, masked_tokens: 36_000, flops: 1e13, elapsed_s: 60.0, parameters: 13_000_000, sequences: 200 };
    /// assert_eq!(r.summary_line(), "pretrain: 120 steps in 60 s (2.00 steps/s, 4000 tokens/s), stop: TimeBudget");
    /// ```
    pub fn summary_line(&self) -> String {
        let rate = |x: f64| x / self.elapsed_s.max(1e-9);
        let last = self.history.records.last().map_or(String::new(), |r| {
            let detection = match (r.detection_loss, r.detection_accuracy) {
                (Some(l), Some(a)) => format!(", detection loss {l:.3}, detection accuracy {a:.3}"),
                _ => String::new(),
            };
            format!(", MLM loss {:.3}, masked accuracy {:.3}{detection}", r.loss, r.accuracy)
        });
        format!(
            "pretrain: {} steps in {:.0} s ({:.2} steps/s, {:.0} tokens/s){last}, stop: {:?}",
            self.steps,
            self.elapsed_s,
            rate(self.steps as f64),
            rate(self.tokens as f64),
            self.stop
        )
    }
}

/// Reads the window back from the device, turns it into a record and clears it.
fn flush(
    w: &mut Window,
    st: &PretrainState,
    per_epoch: usize,
    lr: f64,
    elapsed_s: f64,
    partial: bool,
    device: Device,
) -> Result<PretrainRecord> {
    let loss = w.loss_sum.double_value(&[]) / w.steps.max(1) as f64;
    if !loss.is_finite() {
        return Err(Error::Training(format!(
            "masked-LM loss became {loss} by step {}: stopped (the learning rate may be too high); the last checkpoint, if any, is kept",
            st.global_step
        )));
    }
    let correct = w.correct.int64_value(&[]);
    let detection = w.sums();
    let detection_loss = detection.as_ref().map(|d| d.loss_sum as f64 / w.steps.max(1) as f64);
    if let Some(l) = detection_loss.filter(|l| !l.is_finite()) {
        return Err(Error::Training(format!(
            "replaced-token detection loss became {l} by step {}: stopped (the learning rate may be too high); the last checkpoint, if any, is kept",
            st.global_step
        )));
    }
    let rec = PretrainRecord {
        step: st.global_step,
        epoch: st.global_step as f64 / per_epoch as f64,
        loss,
        accuracy: correct as f64 / w.masked.max(1) as f64,
        detection_loss,
        detection_accuracy: detection.as_ref().map(|d| d.correct as f64 / d.tokens.max(1) as f64),
        masked_tokens: w.masked,
        tokens: st.tokens,
        flops: st.flops,
        lr,
        elapsed_s,
        partial,
    };
    *w = Window::new(device, 0.0, 0, 0, 0, detection.map(|_| DetectionSums::default()).as_ref())?;
    Ok(rec)
}

/// Writes `dir/last` (the run core's [`save_checkpoint`]) with the open
/// log window, so a resumed run completes it.
fn save_last<M: PretrainingModel>(model: &M, opt: &Optimizer, st: &mut PretrainState, w: &Window, dir: &Path) -> Result<()> {
    st.window_steps = w.steps;
    st.window_detection = w.sums();
    st.window_loss_sum = w.loss_sum.double_value(&[]) as f32;
    st.window_correct = w.correct.int64_value(&[]);
    st.window_masked = w.masked;
    check_finite_weights(model.var_store(), &format!("pre-training at step {}", st.global_step))?;
    save_checkpoint(dir, "last", |d| model.save_all(d), Some(opt), &*st)
}

fn restore<M: PretrainingModel>(model: &M, opt: &mut Optimizer, from: &Path, cfg: &PretrainConfig) -> Result<PretrainState> {
    let st: PretrainState = read_state(from)?;
    if st.config.data_recipe() != cfg.data_recipe() {
        return Err(Error::config(
            from.join(super::checkpoint::TRAINER_STATE),
            "config",
            "max_len, batch_size, seed, the masking ratios, the objective or the generator size differ from the run being resumed: it could not be continued",
        ));
    }
    restore_weights(from, model.var_store(), opt)?;
    Ok(st)
}

/// What [`pretrain_to_dir`] writes besides the model: the run's settings and results.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PretrainSummary {
    /// The pre-training settings.
    pub config: PretrainConfig,
    /// The model's configuration.
    pub model: ElectraConfig,
    /// History, stop reason, counts, FLOPs and time.
    pub result: PretrainResult,
}

/// Pre-trains a new ELECTRA of shape `model_config` (HF initialisation,
/// seeded by `cfg.seed`) on `corpus` with `cfg.objective` and writes
/// `out_dir`: `config.json`, `model.safetensors`, `tokenizer.json` and
/// `pretrain_summary.json`. Masked LM writes an `ElectraForMaskedLM`;
/// replaced-token detection writes the discriminator as an
/// `ElectraForPreTraining`, and its generator as an `ElectraForMaskedLM` in
/// `out_dir/generator/`. The directory loads with `ModelSource::Dir(out_dir)`
/// for fine-tuning, and in Python with `from_pretrained` of the class named
/// in its config. With `resume`, an existing `checkpoint_dir/last/` is
/// continued instead of starting afresh.
pub fn pretrain_to_dir(
    model_config: &ElectraConfig,
    tokenizer: &TextTokenizer,
    corpus: &Corpus,
    cfg: &PretrainConfig,
    out_dir: impl AsRef<Path>,
    device: Device,
    resume: bool,
) -> Result<PretrainResult> {
    let out = out_dir.as_ref();
    let resumable = cfg.checkpoint_dir.as_ref().is_some_and(|d| saved_dir(d, "last").join(super::checkpoint::TRAINER_STATE).exists());
    if resume && !resumable {
        let at = cfg.checkpoint_dir.as_ref().map_or("(no checkpoint_dir set)".into(), |d| d.join("last").display().to_string());
        return Err(Error::invalid("resume", format!("there is no run to resume: {at} holds no checkpoint; start without resume")));
    }
    let occupied = std::fs::read_dir(out).map(|mut d| d.next().is_some()).unwrap_or(false);
    if !resume && occupied {
        return Err(Error::invalid(
            "out_dir",
            format!("{} already holds files (a model or a run): resume its run, remove it, or choose another directory", out.display()),
        ));
    }
    // A config made in code has not met `ElectraConfig::from_file`'s checks.
    model_config.validate(Path::new("model_config"))?;
    let seed = cfg.seed as i64;
    let result = match cfg.objective {
        Objective::Mlm => train_and_save(&mut ElectraForMaskedLM::random(model_config, device, seed), tokenizer, corpus, cfg, out, resume)?,
        Objective::Rtd => {
            cfg.validate()?; // the generator size, before a model is built from it
            let mut model = ElectraRtd::random(model_config, cfg.generator_size, device, seed);
            train_and_save(&mut model, tokenizer, corpus, cfg, out, resume)?
        }
    };
    let summary = PretrainSummary { config: cfg.clone(), model: model_config.clone(), result: result.clone() };
    let json = serde_json::to_string_pretty(&summary).map_err(|e| Error::invalid("summary", e.to_string()))?;
    crate::error::write_atomic(out.join("pretrain_summary.json"), json.as_bytes())?;
    Ok(result)
}

fn train_and_save<M: PretrainingModel>(
    model: &mut M,
    tokenizer: &TextTokenizer,
    corpus: &Corpus,
    cfg: &PretrainConfig,
    out: &Path,
    resume: bool,
) -> Result<PretrainResult> {
    let result = if resume { resume_pretraining(model, corpus, cfg)? } else { pretrain(model, corpus, cfg)? };
    model.save(out, Some(tokenizer))?;
    Ok(result)
}
