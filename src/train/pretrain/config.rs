//! Pre-training's settings: the sequence and batch shape, masking, and the
//! shared optimizer ([`OptimizerConfig`]) and stop ([`StopConfig`]) configs,
//! flattened into the JSON under their usual keys.
use crate::error::{Error, Result};
use crate::models::Precision;
use crate::train::config::{OptimizerConfig, StopConfig};
use crate::train::progress::ProgressMode;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Everything that decides a pre-training run. Serialised into checkpoints.
///
/// ```
/// let cfg = encoder_bench::train::pretrain::PretrainConfig::default();
/// assert_eq!((cfg.mask_prob, cfg.mask_token_ratio, cfg.random_token_ratio), (0.15, 0.8, 0.1));
/// let o = &cfg.optimizer;
/// assert_eq!((o.learning_rate, o.weight_decay, o.max_grad_norm), (5e-4, 0.01, Some(1.0)));
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PretrainConfig {
    /// Sequence length in tokens, `[CLS]` and `[SEP]` included; longer
    /// documents are cut into several sequences (nothing is thrown away).
    pub max_len: usize,
    /// Sequences per step.
    pub batch_size: usize,
    /// Optimizer and schedule (default: ELECTRA-small's, AdamW at 5e-4).
    /// The learning-rate schedule spans `stop.max_steps` when set, else all epochs; under
    /// `stop.time_budget_s` it spans whichever ends first, the steps or the budget.
    #[serde(flatten)]
    pub optimizer: OptimizerConfig,
    /// Epochs (ignored when `max_steps` is set), total optimizer steps
    /// (overrides epochs, as in transformers' Trainer), time budget (of this
    /// call; a resumed run gets a fresh budget), stop file.
    #[serde(flatten)]
    pub stop: StopConfig,
    /// Probability that a non-special token is chosen for prediction.
    pub mask_prob: f64,
    /// Of the chosen tokens, the fraction replaced by `[MASK]`.
    pub mask_token_ratio: f64,
    /// Of the chosen tokens, the fraction replaced by a random token (the
    /// rest keep their token).
    pub random_token_ratio: f64,
    /// Seeds shuffling, masking and dropout (the initial weights are seeded
    /// where the model is made, e.g. [`ElectraForMaskedLM::random`](crate::models::ElectraForMaskedLM::random)).
    pub seed: u64,
    /// Read loss and masked-token accuracy back from the device and record
    /// them every this many steps.
    pub log_every: usize,
    /// Progress bar style.
    pub progress: ProgressMode,
    /// Where the `last/` checkpoint (model, optimizer, trainer state) goes.
    pub checkpoint_dir: Option<PathBuf>,
    /// Also checkpoint every this many steps (always at the end and at a stop).
    pub checkpoint_every: Option<usize>,
    /// Matrix products in fp32 or bf16 (weights, LayerNorm, softmax and loss
    /// stay fp32, as in fine-tuning); bf16 roughly doubles a CPU with
    /// AVX512-BF16/AMX.
    pub precision: Precision,
    /// What is learned: masked LM, or ELECTRA's replaced-token detection.
    pub objective: Objective,
    /// Replaced-token detection: the generator's width as a fraction of the
    /// discriminator's ([`ElectraConfig::generator`](crate::models::ElectraConfig::generator)).
    pub generator_size: f64,
    /// Replaced-token detection: the weight of the discriminator's loss
    /// beside the generator's (the paper's λ = 50).
    pub discriminator_weight: f64,
}

/// The pre-training objective.
///
/// ```
/// use encoder_bench::train::pretrain::Objective;
/// assert_eq!("RTD".parse::<Objective>()?, Objective::Rtd);
/// assert_eq!(Objective::Mlm.to_string(), "mlm");
/// assert!("clm".parse::<Objective>().unwrap_err().to_string().contains("expected mlm or rtd"));
/// # Ok::<(), encoder_bench::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Objective {
    /// Masked LM (BERT's): predict the chosen tokens; the encoder of an
    /// `ElectraForMaskedLM` is kept.
    #[default]
    Mlm,
    /// Replaced-token detection (ELECTRA's): a small generator fills the
    /// masked positions and the discriminator, the model kept, tells
    /// replaced tokens from originals at every position.
    Rtd,
}

impl Objective {
    /// The short name a report shows: `MLM` or `RTD`.
    pub fn name(self) -> &'static str {
        match self {
            Objective::Mlm => "MLM",
            Objective::Rtd => "RTD",
        }
    }

    /// A comma-separated list, as settings give it (`mlm,rtd`).
    ///
    /// ```
    /// use encoder_bench::train::pretrain::Objective;
    /// assert_eq!(Objective::parse_list("rtd, mlm")?, vec![Objective::Rtd, Objective::Mlm]);
    /// assert!(Objective::parse_list("").is_err());
    /// # Ok::<(), encoder_bench::Error>(())
    /// ```
    pub fn parse_list(s: &str) -> Result<Vec<Objective>> {
        let mut out = Vec::new();
        for part in s.split(',') {
            let o: Objective = part.parse()?;
            if !out.contains(&o) {
                out.push(o);
            }
        }
        Ok(out)
    }
}

impl std::fmt::Display for Objective {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Objective::Mlm => "mlm",
            Objective::Rtd => "rtd",
        })
    }
}

impl std::str::FromStr for Objective {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "mlm" => Ok(Objective::Mlm),
            "rtd" => Ok(Objective::Rtd),
            other => Err(Error::invalid("objective", format!("`{other}`: expected mlm or rtd"))),
        }
    }
}

impl Default for PretrainConfig {
    fn default() -> Self {
        PretrainConfig {
            max_len: 128,
            batch_size: 32,
            optimizer: OptimizerConfig::electra_pretraining(),
            stop: StopConfig { epochs: 10, ..Default::default() },
            mask_prob: 0.15,
            mask_token_ratio: 0.8,
            random_token_ratio: 0.1,
            seed: 0,
            log_every: 10,
            progress: ProgressMode::Auto,
            checkpoint_dir: None,
            checkpoint_every: None,
            precision: Precision::Fp32,
            objective: Objective::Mlm,
            generator_size: 0.25,
            discriminator_weight: 50.0,
        }
    }
}

impl PretrainConfig {
    /// Checks ranges; errors name the field.
    pub fn validate(&self) -> Result<()> {
        use crate::train::config::{MAX_BATCH_SIZE, MAX_EPOCHS, MAX_SEQUENCE_LEN, check_count};
        let bad = |name: &str, msg: String| Err(Error::invalid(name, msg));
        check_count("batch_size", self.batch_size, MAX_BATCH_SIZE)?;
        if self.max_len < 3 {
            return bad("max_len", format!("{} leaves no room for a token between [CLS] and [SEP]", self.max_len));
        }
        if self.max_len > MAX_SEQUENCE_LEN {
            return bad("max_len", format!("{} is longer than any model's positions: expected 3..={MAX_SEQUENCE_LEN}", self.max_len));
        }
        if !(self.mask_prob > 0.0 && self.mask_prob <= 1.0) {
            return bad("mask_prob", format!("{} is outside (0, 1]", self.mask_prob));
        }
        let (m, r) = (self.mask_token_ratio, self.random_token_ratio);
        if !(m >= 0.0 && r >= 0.0 && m + r <= 1.0 + 1e-12) {
            return bad("random_token_ratio", format!("mask {m} + random {r} must be non-negative and at most 1"));
        }
        if self.log_every == 0 {
            return bad("log_every", "expected at least 1".into());
        }
        if self.checkpoint_every == Some(0) {
            return bad("checkpoint_every", "expected at least 1".into());
        }
        if self.stop.max_steps.is_none() && self.stop.epochs == 0 {
            return bad("epochs", "expected at least 1 (or set max_steps)".into());
        }
        if self.stop.epochs > MAX_EPOCHS {
            return bad("epochs", format!("{} is more than {MAX_EPOCHS}: expected 1..={MAX_EPOCHS}", self.stop.epochs));
        }
        if !(self.generator_size > 0.0 && self.generator_size <= 1.0) {
            return bad(
                "generator_size",
                format!("{} is outside (0, 1]: the generator's width as a fraction of the discriminator's", self.generator_size),
            );
        }
        if !(self.discriminator_weight.is_finite() && self.discriminator_weight > 0.0) {
            return bad("discriminator_weight", format!("{}: expected a positive number (the paper's is 50)", self.discriminator_weight));
        }
        self.optimizer.validate()?;
        self.stop.validate()
    }

    /// Optimizer steps of the whole run on a corpus of `sequences`.
    ///
    /// ```
    /// use encoder_bench::train::pretrain::PretrainConfig;
    /// use encoder_bench::train::StopConfig;
    /// let cfg = PretrainConfig { batch_size: 4, stop: StopConfig { epochs: 3, ..Default::default() }, ..Default::default() };
    /// assert_eq!(cfg.total_steps(10), 9);
    /// let capped = PretrainConfig { stop: StopConfig { max_steps: Some(5), ..cfg.stop.clone() }, ..cfg };
    /// assert_eq!(capped.total_steps(10), 5);
    /// ```
    pub fn total_steps(&self, sequences: usize) -> usize {
        self.stop.max_steps.unwrap_or(sequences.div_ceil(self.batch_size.max(1)) * self.stop.epochs)
    }

    /// The fields that decide which batches and masks are drawn; a resumed
    /// run must not change them.
    pub(super) fn data_recipe(&self) -> (usize, usize, u64, [u64; 3], Objective, u64) {
        let bits = [self.mask_prob.to_bits(), self.mask_token_ratio.to_bits(), self.random_token_ratio.to_bits()];
        (self.max_len, self.batch_size, self.seed, bits, self.objective, self.generator_size.to_bits())
    }
}
