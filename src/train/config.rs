//! Settings by concern: the optimizer with its schedule ([`OptimizerConfig`]),
//! when a run stops ([`StopConfig`]), and fine-tuning's own settings
//! ([`TrainConfig`], which holds the other two). Pre-training holds the same
//! two in its [`PretrainConfig`](super::pretrain::PretrainConfig), so one
//! optimizer and one set of stop checks serve both.
//!
//! The shared configs are flattened into their holders' JSON, so run records
//! keep the key names they always had (`learning_rate`, `epochs`, ...), and
//! they derive `clap::Args`, so the CLI's flags are these fields.
use crate::data::Padding;
use crate::error::{Error, Result};
use crate::models::Precision;
use crate::train::progress::ProgressMode;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// The most examples per batch any config accepts. Far beyond any batch a
/// model fits in memory; what it bounds is arithmetic: steps × batch size,
/// twice the batch size (the default evaluation batch) and the like stay far
/// from overflowing.
pub const MAX_BATCH_SIZE: usize = 1 << 20;

/// The most epochs any config accepts (steps per epoch × epochs must not overflow).
pub const MAX_EPOCHS: usize = 1 << 20;

/// The longest `max_len` any config accepts: the largest
/// `max_position_embeddings` a model config may have
/// ([`crate::models::config::limits::MAX_POSITION_EMBEDDINGS`]); the model's
/// own is checked against the data.
pub const MAX_SEQUENCE_LEN: usize = crate::models::config::limits::MAX_POSITION_EMBEDDINGS as usize;

/// Checks a count setting against `1..=max`, naming the field.
pub(crate) fn check_count(name: &str, value: usize, max: usize) -> Result<()> {
    if value == 0 {
        Err(Error::invalid(name, "expected at least 1"))
    } else if value > max {
        Err(Error::invalid(name, format!("{value} is more than {max}: expected 1..={max}")))
    } else {
        Ok(())
    }
}

/// Which optimizer to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum OptimizerKind {
    /// `torch.optim.Adam`: weight decay, if any, is an L2 term added to the gradient.
    Adam,
    /// `torch.optim.AdamW`: decoupled weight decay.
    #[value(name = "adamw")]
    AdamW,
}

/// Learning-rate schedule after the warmup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Schedule {
    /// Constant after warmup.
    Constant,
    /// Linear decay to zero at the last step (transformers' `get_linear_schedule_with_warmup`).
    Linear,
}

/// Parses a clipping threshold: a positive number, or `0`/`none` for no clipping.
fn parse_clip(s: &str) -> std::result::Result<Option<f64>, String> {
    if s.eq_ignore_ascii_case("none") {
        return Ok(None);
    }
    let v: f64 = s.parse().map_err(|_| format!("`{s}`: expected a positive number, or 0 / none for no clipping"))?;
    if !v.is_finite() || v < 0.0 {
        return Err(format!("`{s}`: expected a positive number, or 0 / none for no clipping"));
    }
    Ok((v > 0.0).then_some(v))
}

fn parse_layer_decay(s: &str) -> std::result::Result<Option<f64>, String> {
    if s.eq_ignore_ascii_case("none") {
        return Ok(None);
    }
    match s.parse::<f64>() {
        Ok(v) if v > 0.0 && v <= 1.0 => Ok((v < 1.0).then_some(v)),
        _ => Err(format!("`{s}`: expected a decay in (0, 1], e.g. 0.8, or none")),
    }
}

/// The optimizer, its hyper-parameters and its learning-rate schedule: all
/// that [`Optimizer::new`](super::optim::Optimizer::new) and the schedule
/// ([`OptimizerConfig::lr_at`]) read. The default is the seed's (Adam at
/// 1e-5, constant, no clipping); [`OptimizerConfig::transformers`] is
/// transformers' `Trainer` recipe.
///
/// ```
/// use encoder_bench::train::{OptimizerConfig, OptimizerKind};
/// let seed = OptimizerConfig::default();
/// assert_eq!((seed.kind, seed.learning_rate, seed.max_grad_norm), (OptimizerKind::Adam, 1e-5, None));
/// assert_eq!(OptimizerConfig::transformers().learning_rate, 5e-5);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, clap::Args)]
#[serde(default)]
pub struct OptimizerConfig {
    /// Adam (the seed's) or AdamW.
    #[serde(rename = "optimizer")]
    #[arg(long = "optimizer", value_enum, default_value_t = OptimizerConfig::transformers().kind)]
    pub kind: OptimizerKind,
    /// Peak learning rate.
    #[arg(long = "lr", default_value_t = OptimizerConfig::transformers().learning_rate)]
    pub learning_rate: f64,
    /// Weight decay, never applied to biases or LayerNorm parameters.
    #[arg(long, default_value_t = OptimizerConfig::transformers().weight_decay)]
    pub weight_decay: f64,
    /// Adam's betas (PyTorch defaults).
    #[arg(skip = (0.9, 0.999))]
    pub betas: (f64, f64),
    /// Adam's epsilon.
    #[arg(skip = 1e-8)]
    pub eps: f64,
    /// Schedule after warmup.
    #[arg(long, value_enum, default_value_t = OptimizerConfig::transformers().schedule)]
    pub schedule: Schedule,
    /// Fraction of all steps spent warming up linearly from zero.
    #[arg(long, default_value_t = OptimizerConfig::transformers().warmup_ratio)]
    pub warmup_ratio: f64,
    /// Clip the global gradient norm to this value. None in the recipes
    /// above; the CLI clips at 1.0 by default, as transformers'
    /// `TrainingArguments` does (`--max-grad-norm 0` or `none`: no clipping).
    #[arg(long, value_parser = parse_clip, default_value = "1.0")]
    pub max_grad_norm: std::option::Option<f64>,
    /// Layer-wise learning-rate decay (ELECTRA's fine-tuning: 0.8 for small
    /// and base): encoder layer `i` of `L` trains at `decay^(L - i)` times the
    /// rate, the embeddings at `decay^(L + 1)`, the head at the full rate.
    #[arg(long, value_parser = parse_layer_decay, default_value = "none")]
    pub layer_decay: std::option::Option<f64>,
}

impl Default for OptimizerConfig {
    fn default() -> Self {
        OptimizerConfig {
            kind: OptimizerKind::Adam,
            learning_rate: 1e-5,
            weight_decay: 0.0,
            betas: (0.9, 0.999),
            eps: 1e-8,
            schedule: Schedule::Constant,
            warmup_ratio: 0.0,
            max_grad_norm: None,
            layer_decay: None,
        }
    }
}

impl OptimizerConfig {
    /// transformers' `Trainer`: AdamW at 5e-5 with weight decay 0.01 (not on
    /// biases/LayerNorm), linear decay after a 10% warmup.
    ///
    /// ```
    /// let o = encoder_bench::train::OptimizerConfig::transformers();
    /// assert_eq!((o.learning_rate, o.weight_decay, o.warmup_ratio), (5e-5, 0.01, 0.1));
    /// ```
    pub fn transformers() -> Self {
        OptimizerConfig {
            kind: OptimizerKind::AdamW,
            learning_rate: 5e-5,
            weight_decay: 0.01,
            schedule: Schedule::Linear,
            warmup_ratio: 0.1,
            ..Default::default()
        }
    }

    /// ELECTRA-small's pre-training: AdamW at 5e-4, weight decay 0.01,
    /// epsilon 1e-6, linear decay after a 10% warmup, clipping at 1.0.
    ///
    /// ```
    /// let o = encoder_bench::train::OptimizerConfig::electra_pretraining();
    /// assert_eq!((o.learning_rate, o.eps, o.max_grad_norm), (5e-4, 1e-6, Some(1.0)));
    /// ```
    pub fn electra_pretraining() -> Self {
        OptimizerConfig {
            kind: OptimizerKind::AdamW,
            learning_rate: 5e-4,
            weight_decay: 0.01,
            eps: 1e-6,
            schedule: Schedule::Linear,
            warmup_ratio: 0.1,
            max_grad_norm: Some(1.0),
            ..Default::default()
        }
    }

    /// Checks ranges; errors name the field.
    ///
    /// ```
    /// use encoder_bench::train::OptimizerConfig;
    /// assert!(OptimizerConfig::default().validate().is_ok());
    /// assert!(OptimizerConfig { learning_rate: f64::NAN, ..Default::default() }.validate().is_err());
    /// ```
    pub fn validate(&self) -> Result<()> {
        let bad = |name: &str, msg: String| Err(Error::invalid(name, msg));
        if !(self.learning_rate.is_finite() && self.learning_rate > 0.0) {
            return bad("learning_rate", format!("{} is not a positive number", self.learning_rate));
        }
        if !(0.0..=1.0).contains(&self.warmup_ratio) {
            return bad("warmup_ratio", format!("{} is outside [0, 1]", self.warmup_ratio));
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return bad("weight_decay", format!("{} is not a number >= 0", self.weight_decay));
        }
        let (b1, b2) = self.betas;
        if !((0.0..1.0).contains(&b1) && (0.0..1.0).contains(&b2)) {
            return bad("betas", format!("({b1}, {b2}): each must be in [0, 1)"));
        }
        if !(self.eps.is_finite() && self.eps > 0.0) {
            return bad("eps", format!("{} is not a positive number", self.eps));
        }
        if let Some(c) = self.max_grad_norm
            && !(c.is_finite() && c > 0.0)
        {
            return bad("max_grad_norm", format!("{c} is not a positive number (use none for no clipping)"));
        }
        if let Some(d) = self.layer_decay
            && !(d > 0.0 && d <= 1.0)
        {
            return bad("layer_decay", format!("{d} is outside (0, 1]"));
        }
        Ok(())
    }

    /// Learning rate at optimizer step `step` (0-based) of `total`.
    ///
    /// ```
    /// use encoder_bench::train::{OptimizerConfig, Schedule};
    /// let o = OptimizerConfig { learning_rate: 1.0, warmup_ratio: 0.1, schedule: Schedule::Linear, ..Default::default() };
    /// assert_eq!(o.lr_at(0, 100), 0.0);
    /// assert_eq!(o.lr_at(10, 100), 1.0);
    /// assert!((o.lr_at(55, 100) - 0.5).abs() < 1e-12);
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

impl OptimizerConfig {
    /// Learning rate at `fraction` (0 to 1) of the run: the same warmup and
    /// decay as [`lr_at`](Self::lr_at), over a run measured in wall time
    /// (pre-training under a time budget).
    ///
    /// ```
    /// use encoder_bench::train::{OptimizerConfig, Schedule};
    /// let o = OptimizerConfig { learning_rate: 1.0, warmup_ratio: 0.1, schedule: Schedule::Linear, ..Default::default() };
    /// assert_eq!(o.lr_at_fraction(0.05), 0.5);
    /// assert_eq!(o.lr_at_fraction(0.1), 1.0);
    /// assert!((o.lr_at_fraction(0.55) - 0.5).abs() < 1e-12);
    /// assert_eq!(o.lr_at_fraction(1.5), 0.0);
    /// ```
    pub fn lr_at_fraction(&self, fraction: f64) -> f64 {
        let f = fraction.clamp(0.0, 1.0);
        if f < self.warmup_ratio {
            return self.learning_rate * f / self.warmup_ratio;
        }
        match self.schedule {
            Schedule::Constant => self.learning_rate,
            Schedule::Linear => self.learning_rate * ((1.0 - f) / (1.0 - self.warmup_ratio).max(1e-12)).max(0.0),
        }
    }
}

/// When a run ends: its length in epochs, and the signals that cut it short
/// (a step limit, a time budget, a stop file). The checks themselves are in
/// [`checkpoint::StopWatch`](super::checkpoint::StopWatch), shared by
/// fine-tuning and pre-training.
///
/// How `max_steps` meets the schedule differs by design: fine-tuning's
/// schedule spans all epochs and `max_steps` only stops the run (so a run cut
/// short and resumed follows the same learning rates), while pre-training's
/// `max_steps` is the run's length, as in transformers' `Trainer`.
///
/// ```
/// let s = encoder_bench::train::StopConfig { max_steps: Some(10), ..Default::default() };
/// assert!(s.reached_max_steps(10) && !s.reached_max_steps(9));
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, clap::Args)]
#[serde(default)]
pub struct StopConfig {
    /// Passes over the training data.
    #[arg(long, default_value_t = 3)]
    pub epochs: usize,
    /// Stop after this many optimizer steps.
    #[arg(long)]
    pub max_steps: Option<usize>,
    /// Stop cleanly after this many seconds of training.
    #[arg(long = "time-budget")]
    pub time_budget_s: Option<f64>,
    /// Stop cleanly when this file appears (Jupyter's interrupt cannot stop evcxr code).
    #[arg(long)]
    pub stop_file: Option<PathBuf>,
}

impl Default for StopConfig {
    fn default() -> Self {
        StopConfig { epochs: 3, max_steps: None, time_budget_s: None, stop_file: None }
    }
}

impl StopConfig {
    /// True once `global_step` optimizer steps reach `max_steps`.
    pub fn reached_max_steps(&self, global_step: usize) -> bool {
        self.max_steps.is_some_and(|m| global_step >= m)
    }

    /// Checks ranges; errors name the field.
    pub fn validate(&self) -> Result<()> {
        if let Some(b) = self.time_budget_s
            && !(b.is_finite() && b >= 0.0)
        {
            return Err(Error::invalid("time_budget_s", format!("{b} is not a number of seconds >= 0")));
        }
        Ok(())
    }
}

/// The validation metric that chooses the epoch (`best/`, early stopping,
/// the reported point).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum SelectMetric {
    /// Highest accuracy; ties go to the lower loss, then the earlier epoch.
    #[default]
    Accuracy,
    /// Lowest loss; ties go to the earlier epoch.
    Loss,
}

impl SelectMetric {
    /// True when `a` is strictly better than `b` (accuracy, loss) by this
    /// metric: the comparison behind every choice of epoch.
    ///
    /// ```
    /// use encoder_bench::train::SelectMetric;
    /// assert!(SelectMetric::Accuracy.better((0.8, 0.9), (0.7, 0.1)));
    /// assert!(SelectMetric::Accuracy.better((0.8, 0.5), (0.8, 0.6)));
    /// assert!(!SelectMetric::Loss.better((0.9, 0.5), (0.1, 0.5)));
    /// ```
    pub fn better(self, a: (f64, f64), b: (f64, f64)) -> bool {
        match self {
            SelectMetric::Accuracy => a.0 > b.0 || (a.0 == b.0 && a.1 < b.1),
            SelectMetric::Loss => a.1 < b.1,
        }
    }
}

/// How a fine-tuning run chooses its epoch: the metric on the validation
/// set, and early stopping after `patience` validated epochs without
/// improvement. (Which set validates is the caller's: a validation split, or
/// the test set in the seed's mode, which run records then say.)
///
/// ```
/// let s = encoder_bench::train::SelectionConfig::default();
/// assert_eq!(s.patience, None);
/// ```
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, clap::Args)]
#[serde(default)]
pub struct SelectionConfig {
    /// Validation metric that chooses the epoch: accuracy or loss.
    #[arg(long = "select-on", value_enum, default_value_t = SelectMetric::Accuracy)]
    pub select_on: SelectMetric,
    /// Stop after this many validated epochs without improvement (none: run every epoch).
    #[arg(long)]
    pub patience: Option<usize>,
    /// Also evaluate the test set after every epoch: curves for insight,
    /// never used to choose (the reported test result is the chosen epoch's).
    #[arg(long)]
    pub test_every_epoch: bool,
}

/// Everything that decides a fine-tuning run. Serialised into run records
/// (the optimizer and stop settings flattened, under their usual keys).
///
/// ```
/// let cfg = encoder_bench::train::TrainConfig::default();
/// assert_eq!((cfg.max_len, cfg.batch_size, cfg.stop.epochs), (64, 16, 3));
/// assert_eq!(cfg.optimizer.learning_rate, 1e-5);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TrainConfig {
    /// Truncation length in tokens, `[CLS]` and `[SEP]` included. The data
    /// is encoded at this length, and `fit` refuses data encoded at another.
    pub max_len: usize,
    /// Examples per step.
    pub batch_size: usize,
    /// Examples per evaluation batch (default: twice `batch_size`; no
    /// gradients are kept, so bigger batches fit).
    pub eval_batch_size: Option<usize>,
    /// Optimizer, hyper-parameters, schedule, clipping.
    #[serde(flatten)]
    pub optimizer: OptimizerConfig,
    /// Epochs, step limit, time budget, stop file.
    #[serde(flatten)]
    pub stop: StopConfig,
    /// The metric that chooses the epoch, early stopping.
    #[serde(flatten)]
    pub selection: SelectionConfig,
    /// Label smoothing of the cross-entropy (the seed used 0.001).
    pub label_smoothing: f64,
    /// Seeds weights of new heads, dropout and shuffling.
    pub seed: u64,
    /// Shuffle the training set every epoch.
    pub shuffle: bool,
    /// Pad to `max_len` (the seed), to the longest text of each batch, or
    /// that with texts of similar length batched together ([`Padding`]).
    pub padding: Padding,
    /// Validate after every epoch (otherwise only after the last).
    pub eval_every_epoch: bool,
    /// Read the running loss back from the device every this many steps.
    pub log_every: usize,
    /// Progress bar style.
    pub progress: ProgressMode,
    /// fp32, or bf16 matrix products over fp32 weights (see [`crate::models::precision`]).
    pub precision: Precision,
    /// Where `best/` and `last/` checkpoints go; none when unset.
    pub checkpoint_dir: Option<PathBuf>,
    /// The tokenizer directory the data was encoded with: its files are
    /// copied into every checkpoint, so each is a complete model directory
    /// (`eval` and `from_pretrained` need no guess), and run records name it.
    pub tokenizer_dir: Option<PathBuf>,
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
            optimizer: OptimizerConfig::default(),
            stop: StopConfig::default(),
            selection: SelectionConfig::default(),
            label_smoothing: 0.001,
            seed: 0,
            shuffle: true,
            padding: Padding::Dynamic,
            eval_every_epoch: true,
            log_every: 10,
            progress: ProgressMode::Auto,
            precision: Precision::Fp32,
            checkpoint_dir: None,
            tokenizer_dir: None,
            overwrite: false,
        }
    }
}

impl TrainConfig {
    /// The recipe of transformers' `Trainer` ([`OptimizerConfig::transformers`]);
    /// the other fields keep the seed's defaults.
    ///
    /// ```
    /// let cfg = encoder_bench::train::TrainConfig::transformers_recipe();
    /// let o = &cfg.optimizer;
    /// assert_eq!((o.learning_rate, o.weight_decay, o.warmup_ratio), (5e-5, 0.01, 0.1));
    /// ```
    pub fn transformers_recipe() -> Self {
        TrainConfig { optimizer: OptimizerConfig::transformers(), ..Default::default() }
    }

    /// Checks ranges; errors name the field. Counts are bounded by
    /// [`MAX_BATCH_SIZE`], [`MAX_EPOCHS`] and [`MAX_SEQUENCE_LEN`]; bf16 is
    /// refused while the MPS rules are enforced (see
    /// [`TrainConfig::validate_for`] for a given device).
    ///
    /// ```
    /// use encoder_bench::train::TrainConfig;
    /// assert!(TrainConfig::default().validate().is_ok());
    /// let e = TrainConfig { batch_size: usize::MAX, ..Default::default() }.validate().unwrap_err().to_string();
    /// assert!(e.contains("batch_size"), "{e}");
    /// ```
    pub fn validate(&self) -> Result<()> {
        let bad = |name: &str, msg: String| Err(Error::invalid(name, msg));
        check_count("batch_size", self.batch_size, MAX_BATCH_SIZE)?;
        if self.max_len < 2 {
            return bad("max_len", format!("{} leaves no room for [CLS] and [SEP]", self.max_len));
        }
        if self.max_len > MAX_SEQUENCE_LEN {
            return bad("max_len", format!("{} is longer than any model's positions: expected 2..={MAX_SEQUENCE_LEN}", self.max_len));
        }
        if !(0.0..1.0).contains(&self.label_smoothing) {
            return bad("label_smoothing", format!("{} is outside [0, 1)", self.label_smoothing));
        }
        if self.log_every == 0 {
            return bad("log_every", "expected at least 1".into());
        }
        check_count("epochs", self.stop.epochs, MAX_EPOCHS)?;
        if let Some(n) = self.eval_batch_size {
            check_count("eval_batch_size", n, MAX_BATCH_SIZE)?;
        }
        if self.selection.patience == Some(0) {
            return bad("patience", "expected at least 1 epoch (or none: no early stopping)".into());
        }
        if self.selection.patience.is_some() && !self.eval_every_epoch {
            return bad("patience", "early stopping needs a validation after every epoch (eval_every_epoch)".into());
        }
        if crate::device::mps_rules_enforced() {
            self.precision.check_device(tch::Device::Mps)?;
        }
        self.optimizer.validate()?;
        self.stop.validate()
    }

    /// [`TrainConfig::validate`], and the precision against `device`: bf16
    /// is refused on MPS ([`Precision::check_device`]).
    ///
    /// ```
    /// use encoder_bench::models::Precision;
    /// use encoder_bench::train::TrainConfig;
    /// let cfg = TrainConfig { precision: Precision::Bf16, ..Default::default() };
    /// assert!(cfg.validate_for(tch::Device::Cpu).is_ok());
    /// assert!(cfg.validate_for(tch::Device::Mps).is_err());
    /// ```
    pub fn validate_for(&self, device: tch::Device) -> Result<()> {
        self.validate()?;
        self.precision.check_device(device)
    }
}
