//! Training settings, defaulting to the seed notebook's values.
use crate::data::Padding;
use crate::models::Precision;
use crate::train::progress::ProgressMode;
use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Which optimizer to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OptimizerKind {
    /// `torch.optim.Adam`: weight decay, if any, is an L2 term added to the gradient.
    Adam,
    /// `torch.optim.AdamW`: decoupled weight decay.
    AdamW,
}

/// Learning-rate schedule after the warmup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Schedule {
    /// Constant after warmup.
    Constant,
    /// Linear decay to zero at the last step (transformers' `get_linear_schedule_with_warmup`).
    Linear,
}

/// Everything that decides a fine-tuning run. Serialised into run records.
///
/// ```
/// let cfg = encoder_bench::train::TrainConfig::default();
/// assert_eq!((cfg.max_len, cfg.batch_size, cfg.epochs), (64, 16, 3));
/// assert_eq!(cfg.learning_rate, 1e-5);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TrainConfig {
    /// Truncation length in tokens, `[CLS]` and `[SEP]` included.
    pub max_len: usize,
    /// Examples per step.
    pub batch_size: usize,
    /// Examples per evaluation batch (default: twice `batch_size`; no
    /// gradients are kept, so bigger batches fit).
    pub eval_batch_size: Option<usize>,
    /// Passes over the training set.
    pub epochs: usize,
    /// Peak learning rate.
    pub learning_rate: f64,
    /// Adam (the seed's) or AdamW.
    pub optimizer: OptimizerKind,
    /// Weight decay, never applied to biases or LayerNorm parameters.
    pub weight_decay: f64,
    /// Adam's betas and epsilon (PyTorch defaults).
    pub betas: (f64, f64),
    /// Adam's epsilon.
    pub eps: f64,
    /// Label smoothing of the cross-entropy (the seed used 0.001).
    pub label_smoothing: f64,
    /// Schedule after warmup.
    pub schedule: Schedule,
    /// Fraction of all steps spent warming up linearly from zero.
    pub warmup_ratio: f64,
    /// Clip the global gradient norm to this value.
    pub max_grad_norm: Option<f64>,
    /// Seeds weights of new heads, dropout and shuffling.
    pub seed: u64,
    /// Shuffle the training set every epoch.
    pub shuffle: bool,
    /// Pad to `max_len` (the seed), to the longest text of each batch, or
    /// that with texts of similar length batched together ([`Padding`]).
    pub padding: Padding,
    /// Validate after every epoch (otherwise only after the last).
    pub eval_every_epoch: bool,
    /// Stop after this many optimizer steps.
    pub max_steps: Option<usize>,
    /// Stop cleanly after this many seconds of training.
    pub time_budget_s: Option<f64>,
    /// Stop cleanly when this file appears (Jupyter's interrupt cannot stop evcxr code).
    pub stop_file: Option<PathBuf>,
    /// Read the running loss back from the device every this many steps.
    pub log_every: usize,
    /// Progress bar style.
    pub progress: ProgressMode,
    /// fp32, or bf16 matrix products over fp32 weights (see [`crate::models::precision`]).
    pub precision: Precision,
    /// Where `best/` and `last/` checkpoints go; none when unset.
    pub checkpoint_dir: Option<PathBuf>,
    /// Let `fit` start a new run in a `checkpoint_dir` that already holds
    /// one; its checkpoints are then replaced as the new run saves. Off by
    /// default, so an earlier run is never replaced by accident (`resume`
    /// continues one instead).
    pub overwrite: bool,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            max_len: 64,
            batch_size: 16,
            eval_batch_size: None,
            epochs: 3,
            learning_rate: 1e-5,
            optimizer: OptimizerKind::Adam,
            weight_decay: 0.0,
            betas: (0.9, 0.999),
            eps: 1e-8,
            label_smoothing: 0.001,
            schedule: Schedule::Constant,
            warmup_ratio: 0.0,
            max_grad_norm: None,
            seed: 0,
            shuffle: true,
            padding: Padding::Dynamic,
            eval_every_epoch: true,
            max_steps: None,
            time_budget_s: None,
            stop_file: None,
            log_every: 10,
            progress: ProgressMode::Auto,
            precision: Precision::Fp32,
            checkpoint_dir: None,
            overwrite: false,
        }
    }
}

impl TrainConfig {
    /// The recipe of transformers' `Trainer`: AdamW at 5e-5 with weight decay
    /// 0.01 (not on biases/LayerNorm), linear decay after a 10% warmup; the
    /// other fields keep the seed's defaults.
    ///
    /// ```
    /// let cfg = encoder_bench::train::TrainConfig::transformers_recipe();
    /// assert_eq!((cfg.learning_rate, cfg.weight_decay, cfg.warmup_ratio), (5e-5, 0.01, 0.1));
    /// ```
    pub fn transformers_recipe() -> Self {
        TrainConfig {
            learning_rate: 5e-5,
            optimizer: OptimizerKind::AdamW,
            weight_decay: 0.01,
            schedule: Schedule::Linear,
            warmup_ratio: 0.1,
            ..Default::default()
        }
    }

    /// Checks ranges; errors name the field.
    pub fn validate(&self) -> Result<()> {
        let bad = |name: &str, msg: String| Err(Error::invalid(name, msg));
        if self.batch_size == 0 {
            return bad("batch_size", "expected at least 1".into());
        }
        if self.max_len < 2 {
            return bad("max_len", format!("{} leaves no room for [CLS] and [SEP]", self.max_len));
        }
        if !(self.learning_rate.is_finite() && self.learning_rate > 0.0) {
            return bad("learning_rate", format!("{} is not a positive number", self.learning_rate));
        }
        if !(0.0..1.0).contains(&self.label_smoothing) {
            return bad("label_smoothing", format!("{} is outside [0, 1)", self.label_smoothing));
        }
        if !(0.0..=1.0).contains(&self.warmup_ratio) {
            return bad("warmup_ratio", format!("{} is outside [0, 1]", self.warmup_ratio));
        }
        if self.weight_decay < 0.0 {
            return bad("weight_decay", format!("{} is negative", self.weight_decay));
        }
        if self.log_every == 0 {
            return bad("log_every", "expected at least 1".into());
        }
        Ok(())
    }

    /// Learning rate at optimizer step `step` (0-based) of `total`.
    ///
    /// ```
    /// use encoder_bench::train::{Schedule, TrainConfig};
    /// let cfg = TrainConfig { learning_rate: 1.0, warmup_ratio: 0.1, schedule: Schedule::Linear, ..Default::default() };
    /// assert_eq!(cfg.lr_at(0, 100), 0.0);
    /// assert_eq!(cfg.lr_at(10, 100), 1.0);
    /// assert!((cfg.lr_at(55, 100) - 0.5).abs() < 1e-12);
    /// ```
    pub fn lr_at(&self, step: usize, total: usize) -> f64 {
        let warmup = (self.warmup_ratio * total as f64).ceil() as usize;
        if step < warmup {
            return self.learning_rate * step as f64 / warmup as f64;
        }
        match self.schedule {
            Schedule::Constant => self.learning_rate,
            Schedule::Linear => {
                let left = total.saturating_sub(step) as f64;
                let span = total.saturating_sub(warmup).max(1) as f64;
                self.learning_rate * (left / span).max(0.0)
            }
        }
    }
}
