//! What one pre-training step computes, per objective: masked LM on an
//! [`ElectraForMaskedLM`], or replaced-token detection on an [`ElectraRtd`]
//! (generator + discriminator). The run loop (`super::run`) is the same for
//! both: batches, schedule, logging, checkpoints and stops.
//!
//! Replaced-token detection follows ELECTRA (Clark et al., 2020) and
//! transformers' `ElectraForPreTraining`: the generator's masked-LM loss on
//! the chosen positions, plus `discriminator_weight` × the discriminator's
//! binary cross-entropy over every real (non-padding) token, where a token
//! is "replaced" when the generator's sample differs from the original (a
//! sample that happens to be the original is labelled original). Samples
//! are drawn from the generator's softmax without gradient, so the
//! discriminator's loss does not train the generator except through the
//! shared embeddings.
use super::config::{Objective, PretrainConfig};
use super::masking::{IGNORE_INDEX, MlmBatch};
use crate::error::Result;
use crate::models::{ElectraConfig, ElectraForMaskedLM, ElectraRtd, with_precision};
use crate::tokenizer::TextTokenizer;
use crate::train::flops::{electra_forward_flops, mlm_head_forward_flops};
use std::path::Path;
use tch::{Kind, Tensor, nn};

/// One step's losses and hits, all still on the device.
#[derive(Debug)]
pub struct StepOutput {
    /// The loss to minimise (masked LM; or masked LM + λ × detection).
    pub loss: Tensor,
    /// The masked-LM loss (of the generator, under replaced-token detection).
    pub mlm_loss: Tensor,
    /// Chosen positions whose original token is the argmax.
    pub mlm_correct: Tensor,
    /// Replaced-token detection only: the discriminator's figures.
    pub detection: Option<Detection>,
}

/// The discriminator's figures of one step.
#[derive(Debug)]
pub struct Detection {
    /// Mean binary cross-entropy over real tokens.
    pub loss: Tensor,
    /// Real tokens classified right (replaced or original).
    pub correct: Tensor,
    /// Real tokens.
    pub tokens: Tensor,
}

/// A model [`pretrain`](super::pretrain) can train.
pub trait PretrainingModel {
    /// The objective it learns.
    fn objective(&self) -> Objective;
    /// Every variable trained (what checkpoints hold).
    fn var_store(&self) -> &nn::VarStore;
    /// The configuration of the encoder kept for fine-tuning.
    fn config(&self) -> &ElectraConfig;
    /// The forward pass of one batch, with dropout.
    fn step(&self, batch: &MlmBatch, cfg: &PretrainConfig) -> StepOutput;
    /// Estimated forward FLOPs of [`step`](Self::step) on `batch`.
    fn forward_flops(&self, batch: &MlmBatch) -> f64;
    /// Writes the model to fine-tune as a model directory.
    fn save(&self, dir: &Path, tokenizer: Option<&TextTokenizer>) -> Result<()>;
    /// Writes every variable (a checkpoint's weights).
    fn save_all(&self, dir: &Path) -> Result<()>;
    /// Trainable parameters (shared tables counted once).
    fn num_parameters(&self) -> i64 {
        self.var_store().trainable_variables().iter().map(Tensor::numel).sum::<usize>() as i64
    }
}

fn masked_lm(logits: &Tensor, targets: &Tensor) -> (Tensor, Tensor) {
    let loss = logits.cross_entropy_loss::<Tensor>(targets, None, tch::Reduction::Mean, IGNORE_INDEX, 0.0);
    let correct = tch::no_grad(|| logits.argmax(-1, false).eq_tensor(targets).sum(Kind::Int64));
    (loss, correct)
}

impl PretrainingModel for ElectraForMaskedLM {
    fn objective(&self) -> Objective {
        Objective::Mlm
    }
    fn var_store(&self) -> &nn::VarStore {
        ElectraForMaskedLM::var_store(self)
    }
    fn config(&self) -> &ElectraConfig {
        ElectraForMaskedLM::config(self)
    }
    fn step(&self, b: &MlmBatch, cfg: &PretrainConfig) -> StepOutput {
        let positions = b.labels.ne(IGNORE_INDEX);
        let targets = b.labels.masked_select(&positions);
        let logits = with_precision(cfg.precision, || self.masked_logits(&b.input_ids, &b.attention_mask, None, &positions, true))
            .to_kind(Kind::Float);
        let (loss, mlm_correct) = masked_lm(&logits, &targets);
        StepOutput { mlm_loss: loss.detach(), loss, mlm_correct, detection: None }
    }
    fn forward_flops(&self, b: &MlmBatch) -> f64 {
        let cfg = ElectraForMaskedLM::config(self);
        electra_forward_flops(cfg, b.rows, b.width) + mlm_head_forward_flops(cfg, b.masked)
    }
    fn save(&self, dir: &Path, tokenizer: Option<&TextTokenizer>) -> Result<()> {
        ElectraForMaskedLM::save(self, dir, tokenizer)
    }
    fn save_all(&self, dir: &Path) -> Result<()> {
        ElectraForMaskedLM::save(self, dir, None)
    }
}

impl PretrainingModel for ElectraRtd {
    fn objective(&self) -> Objective {
        Objective::Rtd
    }
    fn var_store(&self) -> &nn::VarStore {
        ElectraRtd::var_store(self)
    }
    fn config(&self) -> &ElectraConfig {
        ElectraRtd::config(self)
    }
    fn step(&self, b: &MlmBatch, cfg: &PretrainConfig) -> StepOutput {
        let positions = b.labels.ne(IGNORE_INDEX);
        let targets = b.labels.masked_select(&positions);
        let logits =
            with_precision(cfg.precision, || self.generator_logits(&b.input_ids, &b.attention_mask, &positions, true)).to_kind(Kind::Float);
        let (mlm_loss, mlm_correct) = masked_lm(&logits, &targets);
        let (corrupted, replaced) = tch::no_grad(|| {
            let sampled = logits.softmax(-1, Kind::Float).multinomial(1, true).squeeze_dim(-1);
            let original = b.input_ids.masked_scatter(&positions, &targets);
            let corrupted = original.masked_scatter(&positions, &sampled);
            let replaced = corrupted.ne_tensor(&original).to_kind(Kind::Float);
            (corrupted, replaced)
        });
        let d_logits =
            with_precision(cfg.precision, || self.discriminator_logits(&corrupted, &b.attention_mask, true)).to_kind(Kind::Float);
        let real = b.attention_mask.eq(1);
        let (d_real, labels) = (d_logits.masked_select(&real), replaced.masked_select(&real));
        let d_loss = d_real.binary_cross_entropy_with_logits::<Tensor>(&labels, None, None, tch::Reduction::Mean);
        let (correct, tokens) =
            tch::no_grad(|| (d_real.gt(0.0).to_kind(Kind::Float).eq_tensor(&labels).sum(Kind::Int64), real.sum(Kind::Int64)));
        let loss = &mlm_loss + &d_loss * cfg.discriminator_weight;
        StepOutput { loss, mlm_loss: mlm_loss.detach(), mlm_correct, detection: Some(Detection { loss: d_loss.detach(), correct, tokens }) }
    }
    fn forward_flops(&self, b: &MlmBatch) -> f64 {
        let (d, g) = (ElectraRtd::config(self), self.generator_config());
        let h = d.hidden_size as f64;
        let detection_head = (b.rows * b.width) as f64 * 2.0 * (h * h + h);
        electra_forward_flops(g, b.rows, b.width)
            + mlm_head_forward_flops(g, b.masked)
            + electra_forward_flops(d, b.rows, b.width)
            + detection_head
    }
    fn save(&self, dir: &Path, tokenizer: Option<&TextTokenizer>) -> Result<()> {
        ElectraRtd::save(self, dir, tokenizer)?;
        self.save_generator(dir.join("generator"), tokenizer)
    }
    fn save_all(&self, dir: &Path) -> Result<()> {
        let cfg = serde_json::json!({ "model_type": "electra", "architectures": ["ElectraRtd"] });
        crate::weights::save_pretrained(self.var_store(), &cfg, None, dir)
    }
}
