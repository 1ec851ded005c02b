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
//! let cfg = PretrainConfig { max_steps: Some(200), ..Default::default() };
//! let corpus = Corpus::from_text_file("../shared/data/wos-sample/X.txt", &tok, cfg.max_len)?;
//! let model_cfg = ElectraConfig::from_file("tests/fixtures/large/electra-seed/config.json")?;
//! let mut model = ElectraForMaskedLM::random(&model_cfg, tch::Device::Cpu, 0);
//! let out = pretrain(&mut model, &corpus, &cfg)?;
//! for r in &out.history.records { println!("step {}: loss {:.3}, masked acc {:.3}", r.step, r.loss, r.accuracy); }
//! model.save("models/my-electra", Some(&tok))?;
//! # Ok::<(), encoder_bench::Error>(())
//! ```
use super::config::{OptimizerKind, Schedule, TrainConfig};
use super::fit::{StopReason, save_dir, saved_dir};
use super::flops::{TRAIN_FACTOR, encoder_forward_flops, mlm_head_forward_flops};
use super::optim::Optimizer;
use super::progress::{Progress, ProgressMode};
use crate::weights::{KeyMap, load_into, read_weights};
use crate::models::{ElectraConfig, ElectraForMaskedLM, ModelConfig};
use crate::tokenizer::TextTokenizer;
use crate::{Error, Result};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Instant;
use tch::{Device, Kind, Tensor};

/// The corpus used when none is given: the shipped WOS sample's abstracts.
pub const DEFAULT_CORPUS: &str = "../shared/data/wos-sample/X.txt";

/// Label of positions that carry no loss (as in transformers and PyTorch).
pub const IGNORE_INDEX: i64 = -100;

/// Everything that decides a pre-training run. Serialised into checkpoints.
///
/// ```
/// let cfg = encoder_bench::train::pretrain::PretrainConfig::default();
/// assert_eq!((cfg.mask_prob, cfg.mask_token_ratio, cfg.random_token_ratio), (0.15, 0.8, 0.1));
/// assert_eq!((cfg.learning_rate, cfg.weight_decay, cfg.max_grad_norm), (5e-4, 0.01, Some(1.0)));
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PretrainConfig {
    /// Sequence length in tokens, `[CLS]` and `[SEP]` included; longer
    /// documents are cut into several sequences (nothing is thrown away).
    pub max_len: usize,
    /// Sequences per step.
    pub batch_size: usize,
    /// Passes over the corpus (ignored when `max_steps` is set).
    pub epochs: usize,
    /// Total optimizer steps; overrides `epochs`, as in transformers' Trainer.
    /// The learning-rate schedule spans these steps.
    pub max_steps: Option<usize>,
    /// Peak learning rate (ELECTRA-small used 5e-4).
    pub learning_rate: f64,
    /// Decoupled (AdamW) weight decay, never on biases or LayerNorm parameters.
    pub weight_decay: f64,
    /// Adam's betas.
    pub betas: (f64, f64),
    /// Adam's epsilon (ELECTRA used 1e-6).
    pub eps: f64,
    /// Fraction of the steps spent warming up linearly from zero.
    pub warmup_ratio: f64,
    /// Schedule after warmup (linear decay to zero by default).
    pub schedule: Schedule,
    /// Clip the global gradient norm to this value.
    pub max_grad_norm: Option<f64>,
    /// Probability that a non-special token is chosen for prediction.
    pub mask_prob: f64,
    /// Of the chosen tokens, the fraction replaced by `[MASK]`.
    pub mask_token_ratio: f64,
    /// Of the chosen tokens, the fraction replaced by a random token (the
    /// rest keep their token).
    pub random_token_ratio: f64,
    /// Seeds shuffling, masking and dropout (the initial weights are seeded
    /// where the model is made, e.g. [`ElectraForMaskedLM::random`]).
    pub seed: u64,
    /// Read loss and masked-token accuracy back from the device and record
    /// them every this many steps.
    pub log_every: usize,
    /// Stop cleanly after this many seconds (of this call; a resumed run
    /// gets a fresh budget).
    pub time_budget_s: Option<f64>,
    /// Stop cleanly when this file appears.
    pub stop_file: Option<PathBuf>,
    /// Progress bar style.
    pub progress: ProgressMode,
    /// Where the `last/` checkpoint (model, optimizer, trainer state) goes.
    pub checkpoint_dir: Option<PathBuf>,
    /// Also checkpoint every this many steps (always at the end and at a stop).
    pub checkpoint_every: Option<usize>,
}

impl Default for PretrainConfig {
    fn default() -> Self {
        PretrainConfig {
            max_len: 128,
            batch_size: 32,
            epochs: 10,
            max_steps: None,
            learning_rate: 5e-4,
            weight_decay: 0.01,
            betas: (0.9, 0.999),
            eps: 1e-6,
            warmup_ratio: 0.1,
            schedule: Schedule::Linear,
            max_grad_norm: Some(1.0),
            mask_prob: 0.15,
            mask_token_ratio: 0.8,
            random_token_ratio: 0.1,
            seed: 0,
            log_every: 10,
            time_budget_s: None,
            stop_file: None,
            progress: ProgressMode::Auto,
            checkpoint_dir: None,
            checkpoint_every: None,
        }
    }
}

impl PretrainConfig {
    /// Checks ranges; errors name the field.
    pub fn validate(&self) -> Result<()> {
        let bad = |name: &str, msg: String| Err(Error::invalid(name, msg));
        if self.batch_size == 0 {
            return bad("batch_size", "expected at least 1".into());
        }
        if self.max_len < 3 {
            return bad("max_len", format!("{} leaves no room for a token between [CLS] and [SEP]", self.max_len));
        }
        if !(self.learning_rate.is_finite() && self.learning_rate > 0.0) {
            return bad("learning_rate", format!("{} is not a positive number", self.learning_rate));
        }
        if !(self.mask_prob > 0.0 && self.mask_prob <= 1.0) {
            return bad("mask_prob", format!("{} is outside (0, 1]", self.mask_prob));
        }
        let (m, r) = (self.mask_token_ratio, self.random_token_ratio);
        if !(m >= 0.0 && r >= 0.0 && m + r <= 1.0 + 1e-12) {
            return bad("random_token_ratio", format!("mask {m} + random {r} must be non-negative and at most 1"));
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
        if self.checkpoint_every == Some(0) {
            return bad("checkpoint_every", "expected at least 1".into());
        }
        if self.max_steps.is_none() && self.epochs == 0 {
            return bad("epochs", "expected at least 1 (or set max_steps)".into());
        }
        Ok(())
    }

    /// The optimizer and schedule settings as the fine-tuning [`TrainConfig`]
    /// holds them (AdamW), so [`Optimizer`] and [`TrainConfig::lr_at`] serve both.
    pub fn optimizer_config(&self) -> TrainConfig {
        TrainConfig {
            learning_rate: self.learning_rate,
            optimizer: OptimizerKind::AdamW,
            weight_decay: self.weight_decay,
            betas: self.betas,
            eps: self.eps,
            schedule: self.schedule,
            warmup_ratio: self.warmup_ratio,
            max_grad_norm: self.max_grad_norm,
            seed: self.seed,
            ..TrainConfig::default()
        }
    }

    /// Optimizer steps of the whole run on a corpus of `sequences`.
    ///
    /// ```
    /// use encoder_bench::train::pretrain::PretrainConfig;
    /// let cfg = PretrainConfig { batch_size: 4, epochs: 3, ..Default::default() };
    /// assert_eq!(cfg.total_steps(10), 9);
    /// assert_eq!(PretrainConfig { max_steps: Some(5), ..cfg }.total_steps(10), 5);
    /// ```
    pub fn total_steps(&self, sequences: usize) -> usize {
        self.max_steps.unwrap_or(sequences.div_ceil(self.batch_size.max(1)) * self.epochs)
    }

    /// The fields that decide which batches and masks are drawn; a resumed
    /// run must not change them.
    fn data_recipe(&self) -> (usize, usize, u64, [u64; 3]) {
        let bits = [self.mask_prob.to_bits(), self.mask_token_ratio.to_bits(), self.random_token_ratio.to_bits()];
        (self.max_len, self.batch_size, self.seed, bits)
    }
}

/// A tokenised plain-text corpus, cut into training sequences.
#[derive(Debug, Clone, PartialEq)]
pub struct Corpus {
    /// `[CLS] tokens [SEP]` sequences of at most `max_len` ids.
    pub sequences: Vec<Vec<i64>>,
    /// Non-blank documents (lines) read.
    pub documents: usize,
    /// The sequence length the documents were cut at.
    pub max_len: usize,
    /// Padding id.
    pub pad_id: i64,
    /// `[MASK]` id.
    pub mask_id: i64,
    /// Ids never chosen for prediction nor drawn as random replacements
    /// (`[CLS]`, `[SEP]`, `[PAD]`, `[MASK]`), sorted.
    pub special_ids: Vec<i64>,
    /// The tokenizer's vocabulary size: random replacements are drawn below it.
    pub vocab_size: i64,
}

impl Corpus {
    /// Reads a plain-text file, one document per line (blank lines are
    /// skipped), and tokenises it with `tokenizer`.
    pub fn from_text_file(path: impl AsRef<Path>, tokenizer: &TextTokenizer, max_len: usize) -> Result<Corpus> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let docs: Vec<String> = text.lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_string).collect();
        if docs.is_empty() {
            return Err(Error::data(path, None, "no text: expected one document per line"));
        }
        Self::from_texts(&docs, tokenizer, max_len)
    }

    /// Tokenises `texts` (one document each) without truncation and cuts
    /// every document into consecutive pieces of `max_len - 2` tokens, each
    /// wrapped in `[CLS] … [SEP]`, so long documents are used in full.
    ///
    /// ```no_run
    /// use encoder_bench::train::pretrain::Corpus;
    /// let tok = encoder_bench::tokenizer::TextTokenizer::from_dir("models/minilm")?;
    /// let c = Corpus::from_texts(&["one two three four".into()], &tok, 4)?;
    /// assert_eq!(c.sequences.len(), 2); // [CLS] one two [SEP], [CLS] three four [SEP]
    /// # Ok::<(), encoder_bench::Error>(())
    /// ```
    pub fn from_texts(texts: &[String], tokenizer: &TextTokenizer, max_len: usize) -> Result<Corpus> {
        if max_len < 3 {
            return Err(Error::invalid("max_len", format!("{max_len} leaves no room for a token between [CLS] and [SEP]")));
        }
        let inner = tokenizer.inner();
        let id = |t: &str| {
            inner.token_to_id(t).map(i64::from).ok_or_else(|| Error::Tokenizer {
                path: tokenizer.source().to_path_buf(),
                msg: format!("vocabulary has no `{t}` token; masked-LM pre-training needs a BERT-style vocabulary"),
            })
        };
        let (cls, sep, mask) = (id("[CLS]")?, id("[SEP]")?, id("[MASK]")?);
        let pad = i64::from(tokenizer.pad_id());
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let encs =
            inner.encode_batch(refs, false).map_err(|e| Error::Tokenizer { path: tokenizer.source().to_path_buf(), msg: e.to_string() })?;
        let mut sequences = Vec::new();
        let mut documents = 0;
        for enc in &encs {
            let ids = enc.get_ids();
            if ids.is_empty() {
                continue;
            }
            documents += 1;
            for piece in ids.chunks(max_len - 2) {
                let mut seq = Vec::with_capacity(piece.len() + 2);
                seq.push(cls);
                seq.extend(piece.iter().map(|&i| i64::from(i)));
                seq.push(sep);
                sequences.push(seq);
            }
        }
        if sequences.is_empty() {
            return Err(Error::invalid("texts", "no document has any token"));
        }
        let mut special_ids = vec![cls, sep, pad, mask];
        special_ids.sort_unstable();
        special_ids.dedup();
        Ok(Corpus { sequences, documents, max_len, pad_id: pad, mask_id: mask, special_ids, vocab_size: tokenizer.vocab_size() as i64 })
    }

    /// Number of sequences.
    pub fn len(&self) -> usize {
        self.sequences.len()
    }

    /// True when there are no sequences.
    pub fn is_empty(&self) -> bool {
        self.sequences.is_empty()
    }

    /// Tokens over all sequences (special tokens included).
    pub fn num_tokens(&self) -> usize {
        self.sequences.iter().map(Vec::len).sum()
    }

    fn is_special(&self, id: i64) -> bool {
        self.special_ids.binary_search(&id).is_ok()
    }
}

/// What a chosen position became.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Choice {
    Mask,
    Random,
    Keep,
}

/// Masks one sequence: returns the model's input ids and the labels
/// (the original id where chosen, [`IGNORE_INDEX`] elsewhere).
fn mask_sequence(ids: &[i64], corpus: &Corpus, cfg: &PretrainConfig, rng: &mut ChaCha8Rng) -> (Vec<i64>, Vec<i64>) {
    let mut input = ids.to_vec();
    let mut labels = vec![IGNORE_INDEX; ids.len()];
    for (i, &id) in ids.iter().enumerate() {
        // One draw per position whether eligible or not keeps the stream of
        // random numbers aligned with positions.
        let chosen = rng.random_bool(cfg.mask_prob);
        if chosen && !corpus.is_special(id) {
            labels[i] = id;
            input[i] = replacement(id, corpus, cfg, rng);
        }
    }
    (input, labels)
}

fn choice(cfg: &PretrainConfig, rng: &mut ChaCha8Rng) -> Choice {
    let u: f64 = rng.random();
    if u < cfg.mask_token_ratio {
        Choice::Mask
    } else if u < cfg.mask_token_ratio + cfg.random_token_ratio {
        Choice::Random
    } else {
        Choice::Keep
    }
}

fn replacement(id: i64, corpus: &Corpus, cfg: &PretrainConfig, rng: &mut ChaCha8Rng) -> i64 {
    match choice(cfg, rng) {
        Choice::Mask => corpus.mask_id,
        Choice::Keep => id,
        // transformers draws from the whole vocabulary; we skip the special
        // tokens so that [CLS]/[SEP]/[PAD] only ever appear where they belong.
        Choice::Random => loop {
            let r = rng.random_range(0..corpus.vocab_size);
            if !corpus.is_special(r) {
                break r;
            }
        },
    }
}

/// One masked batch on a device.
#[derive(Debug)]
pub struct MlmBatch {
    /// Model input `[batch, width]`: masked, padded ids.
    pub input_ids: Tensor,
    /// 1 for real tokens, 0 for padding.
    pub attention_mask: Tensor,
    /// Original ids at chosen positions, [`IGNORE_INDEX`] elsewhere.
    pub labels: Tensor,
    /// Chosen (predicted) positions.
    pub masked: usize,
    /// Real (non-padding) tokens.
    pub tokens: usize,
    /// Sequences.
    pub rows: usize,
    /// Padded width (longest sequence of the batch).
    pub width: usize,
}

/// The seed of every random draw of one step (masks, dropout) and of one
/// epoch's shuffle: a pure function of the run seed and the position.
fn step_seed(seed: u64, epoch: usize, step: usize) -> u64 {
    let mut x = seed ^ 0xD1B5_4A32_D192_ED03;
    for v in [epoch as u64, step as u64] {
        x = (x ^ v).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        x ^= x >> 31;
    }
    x
}

/// The batches of one epoch, in a seeded shuffle, each masked afresh.
pub struct MlmBatches<'a> {
    corpus: &'a Corpus,
    cfg: &'a PretrainConfig,
    order: Vec<usize>,
    epoch: usize,
    step: usize,
    device: Device,
}

/// The masked batches of epoch `epoch` (0-based) as pre-training draws them.
///
/// ```no_run
/// use encoder_bench::train::pretrain::{Corpus, PretrainConfig, epoch_batches};
/// let tok = encoder_bench::tokenizer::TextTokenizer::from_dir("models/minilm")?;
/// let cfg = PretrainConfig::default();
/// let corpus = Corpus::from_text_file("../shared/data/wos-sample/X.txt", &tok, cfg.max_len)?;
/// let b = epoch_batches(&corpus, &cfg, 0, tch::Device::Cpu)?.next().unwrap();
/// println!("{} of {} tokens masked", b.masked, b.tokens);
/// # Ok::<(), encoder_bench::Error>(())
/// ```
pub fn epoch_batches<'a>(corpus: &'a Corpus, cfg: &'a PretrainConfig, epoch: usize, device: Device) -> Result<MlmBatches<'a>> {
    cfg.validate()?;
    let mut order: Vec<usize> = (0..corpus.len()).collect();
    order.shuffle(&mut ChaCha8Rng::seed_from_u64(step_seed(cfg.seed, epoch, usize::MAX)));
    Ok(MlmBatches { corpus, cfg, order, epoch, step: 0, device })
}

impl MlmBatches<'_> {
    /// Skips `n` batches without building them (to resume inside an epoch).
    pub fn advance(&mut self, n: usize) {
        self.step += n;
    }

    fn build(&self, rows: &[usize], rng: &mut ChaCha8Rng) -> MlmBatch {
        let c = self.corpus;
        let width = rows.iter().map(|&r| c.sequences[r].len()).max().unwrap_or(0);
        let n = rows.len();
        let mut ids = vec![c.pad_id; n * width];
        let mut mask = vec![0i64; n * width];
        let mut labels = vec![IGNORE_INDEX; n * width];
        let mut tokens = 0;
        for (row, &r) in rows.iter().enumerate() {
            let (input, lab) = mask_sequence(&c.sequences[r], c, self.cfg, rng);
            let at = row * width;
            ids[at..at + input.len()].copy_from_slice(&input);
            labels[at..at + lab.len()].copy_from_slice(&lab);
            mask[at..at + input.len()].fill(1);
            tokens += input.len();
        }
        let mut masked = labels.iter().filter(|&&l| l != IGNORE_INDEX).count();
        if masked == 0 {
            // A short batch can come out with nothing chosen, and a mean over
            // no positions is NaN: predict one eligible token instead.
            let eligible: Vec<usize> = (0..ids.len()).filter(|&i| mask[i] == 1 && !c.is_special(ids[i])).collect();
            if let Some(&i) = eligible.get(rng.random_range(0..eligible.len().max(1))) {
                labels[i] = ids[i];
                ids[i] = replacement(ids[i], c, self.cfg, rng);
                masked = 1;
            }
        }
        let shape = [n as i64, width as i64];
        let put = |v: &[i64]| Tensor::from_slice(v).view(shape).to_device(self.device);
        MlmBatch { input_ids: put(&ids), attention_mask: put(&mask), labels: put(&labels), masked, tokens, rows: n, width }
    }
}

impl Iterator for MlmBatches<'_> {
    type Item = MlmBatch;

    fn next(&mut self) -> Option<MlmBatch> {
        let bs = self.cfg.batch_size;
        let start = self.step * bs;
        if start >= self.order.len() {
            return None;
        }
        let end = (start + bs).min(self.order.len());
        let mut rng = ChaCha8Rng::seed_from_u64(step_seed(self.cfg.seed, self.epoch, self.step));
        let batch = self.build(&self.order[start..end], &mut rng);
        self.step += 1;
        Some(batch)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.order.len().div_ceil(self.cfg.batch_size).saturating_sub(self.step);
        (left, Some(left))
    }
}

impl ExactSizeIterator for MlmBatches<'_> {}

/// Figures over the `log_every` steps ending at `step`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PretrainRecord {
    /// Optimizer steps done (1-based: the record after the first step is step 1).
    pub step: usize,
    /// Epochs done, fractional (`step / steps per epoch`).
    pub epoch: f64,
    /// Mean masked-LM loss (cross-entropy over chosen positions) of the window's steps.
    pub loss: f64,
    /// Fraction of the window's chosen positions whose original token is the argmax.
    pub accuracy: f64,
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
    /// Trainable parameters of the model (tied decoder counted once).
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
}

impl Window {
    fn new(device: Device, loss_sum: f32, correct: i64, steps: usize, masked: u64) -> Self {
        Window { steps, loss_sum: Tensor::from(loss_sum).to_device(device), correct: Tensor::from(correct).to_device(device), masked }
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
    history: PretrainHistory,
    config: PretrainConfig,
}

/// Pre-trains `model` with masked-LM on `corpus` per `cfg` and returns the
/// history (step, loss, masked-token accuracy, tokens, FLOPs, wall time).
/// Stops cleanly at `max_steps`/`epochs`, when `time_budget_s` runs out or
/// when `stop_file` appears, writing `checkpoint_dir/last/` if set.
pub fn pretrain(model: &mut ElectraForMaskedLM, corpus: &Corpus, cfg: &PretrainConfig) -> Result<PretrainResult> {
    run(model, corpus, cfg, None)
}

/// Continues a run from `checkpoint_dir/last/` (written by an earlier
/// [`pretrain`] with the same corpus and data settings): weights, optimizer
/// moments, position, counters and history are restored, and the result is
/// the one the uninterrupted run would have given.
pub fn resume_pretraining(model: &mut ElectraForMaskedLM, corpus: &Corpus, cfg: &PretrainConfig) -> Result<PretrainResult> {
    let dir = cfg
        .checkpoint_dir
        .as_ref()
        .ok_or_else(|| Error::invalid("checkpoint_dir", "resuming needs the checkpoint directory of the run to continue"))?;
    run(model, corpus, cfg, Some(saved_dir(dir, "last")))
}

fn run(model: &mut ElectraForMaskedLM, corpus: &Corpus, cfg: &PretrainConfig, resume_from: Option<PathBuf>) -> Result<PretrainResult> {
    cfg.validate()?;
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
    let ocfg = cfg.optimizer_config();
    let mut opt = Optimizer::new(model.var_store(), &ocfg);
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
        history: PretrainHistory::default(),
        config: cfg.clone(),
    };
    if let Some(from) = &resume_from {
        st = restore(model, &mut opt, from, cfg)?;
        st.config = cfg.clone();
    }
    let per_epoch = corpus.len().div_ceil(cfg.batch_size);
    let total = cfg.total_steps(corpus.len());
    let start = Instant::now();
    let elapsed_before = st.elapsed_s;
    let elapsed = || elapsed_before + start.elapsed().as_secs_f64();
    let flop_cfg = ModelConfig::Electra(mcfg.clone());
    let mut window = Window::new(device, st.window_loss_sum, st.window_correct, st.window_steps, st.window_masked);
    let bar = Progress::new(total as u64, "pretrain", cfg.progress);
    bar.set_initial(st.global_step as u64);
    let mut lr = cfg.optimizer_config().lr_at(st.global_step.saturating_sub(1), total);
    let mut stop = None;
    'epochs: while st.global_step < total {
        let mut batches = epoch_batches(corpus, cfg, st.epoch, device)?;
        batches.advance(st.epoch_step);
        for b in batches {
            tch::manual_seed((step_seed(cfg.seed, st.epoch, st.epoch_step) >> 1) as i64);
            let positions = b.labels.ne(IGNORE_INDEX);
            let targets = b.labels.masked_select(&positions);
            let logits = model.masked_logits(&b.input_ids, &b.attention_mask, None, &positions, true).to_kind(Kind::Float);
            let loss = logits.cross_entropy_loss::<Tensor>(&targets, None, tch::Reduction::Mean, IGNORE_INDEX, 0.0);
            opt.zero_grad();
            loss.backward();
            if let Some(max) = cfg.max_grad_norm {
                let _ = opt.clip_grad_norm(max);
            }
            lr = ocfg.lr_at(st.global_step, total);
            opt.step(lr);
            tch::no_grad(|| {
                window.loss_sum += loss.detach();
                window.correct += logits.argmax(-1, false).eq_tensor(&targets).sum(Kind::Int64);
            });
            window.steps += 1;
            window.masked += b.masked as u64;
            st.global_step += 1;
            st.epoch_step += 1;
            st.tokens += b.tokens as u64;
            st.padded_tokens += (b.rows * b.width) as u64;
            st.masked_tokens += b.masked as u64;
            st.flops += TRAIN_FACTOR * (encoder_forward_flops(&flop_cfg, b.rows, b.width) + mlm_head_forward_flops(&mcfg, b.masked));
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
            stop = if st.global_step >= total {
                None
            } else if cfg.time_budget_s.is_some_and(|b| start.elapsed().as_secs_f64() >= b) {
                Some(StopReason::TimeBudget)
            } else if cfg.stop_file.as_ref().is_some_and(|f| f.exists()) {
                Some(StopReason::StopFile)
            } else {
                None
            };
            let periodic = cfg.checkpoint_every.is_some_and(|n| st.global_step.is_multiple_of(n));
            if (stop.is_some() || st.global_step >= total || periodic)
                && let Some(dir) = &cfg.checkpoint_dir
            {
                st.elapsed_s = elapsed();
                save_checkpoint(model, &opt, &mut st, &window, dir)?;
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
    Ok(PretrainResult {
        history,
        stop: stop.unwrap_or(if cfg.max_steps.is_some() { StopReason::MaxSteps } else { StopReason::Completed }),
        steps: st.global_step,
        tokens: st.tokens,
        padded_tokens: st.padded_tokens,
        masked_tokens: st.masked_tokens,
        flops: st.flops,
        elapsed_s: st.elapsed_s,
        parameters: model.num_parameters(),
        sequences: corpus.len(),
    })
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
    let rec = PretrainRecord {
        step: st.global_step,
        epoch: st.global_step as f64 / per_epoch as f64,
        loss,
        accuracy: correct as f64 / w.masked.max(1) as f64,
        masked_tokens: w.masked,
        tokens: st.tokens,
        flops: st.flops,
        lr,
        elapsed_s,
        partial,
    };
    *w = Window::new(device, 0.0, 0, 0, 0);
    Ok(rec)
}

/// Writes `dir/last` as a whole: into `last.partial`, then swapped in by
/// renames, so a crash mid-save leaves the previous checkpoint intact.
fn save_checkpoint(model: &ElectraForMaskedLM, opt: &Optimizer, st: &mut PretrainState, w: &Window, dir: &Path) -> Result<()> {
    st.window_steps = w.steps;
    st.window_loss_sum = w.loss_sum.double_value(&[]) as f32;
    st.window_correct = w.correct.int64_value(&[]);
    st.window_masked = w.masked;
    let json = serde_json::to_string_pretty(&*st).map_err(|e| Error::invalid("trainer state", e.to_string()))?;
    save_dir(dir, "last", |tmp| {
        model.save(tmp, None)?;
        let opt_path = tmp.join("optimizer.safetensors");
        Tensor::write_safetensors(&opt.state(), &opt_path).map_err(|e| Error::torch(format!("writing {}", opt_path.display()), e))?;
        crate::error::write_atomic(tmp.join("trainer_state.json"), json.as_bytes())
    })
}

fn restore(model: &ElectraForMaskedLM, opt: &mut Optimizer, from: &Path, cfg: &PretrainConfig) -> Result<PretrainState> {
    let ts_path = from.join("trainer_state.json");
    let text = std::fs::read_to_string(&ts_path).map_err(|e| Error::io(&ts_path, e))?;
    let st: PretrainState = serde_json::from_str(&text).map_err(|e| Error::config(&ts_path, "<json>", e.to_string()))?;
    if st.config.data_recipe() != cfg.data_recipe() {
        return Err(Error::config(
            &ts_path,
            "config",
            "max_len, batch_size, seed or the masking ratios differ from the run being resumed: its batches could not be continued",
        ));
    }
    let weights_path = from.join("model.safetensors");
    let map = KeyMap { encoder_prefix: "", strip_prefixes: &[], ignore: &[], may_be_missing: &[] };
    load_into(model.var_store(), read_weights(&weights_path)?, &map, &weights_path)?;
    let opt_path = from.join("optimizer.safetensors");
    opt.load_state(&read_weights(&opt_path)?, &opt_path)?;
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

/// Pre-trains a new `ElectraForMaskedLM` of shape `model_config` (HF
/// initialisation, seeded by `cfg.seed`) on `corpus` and writes `out_dir`:
/// `config.json`, `model.safetensors`, `tokenizer.json` and
/// `pretrain_summary.json`. The directory loads with
/// `ModelSource::Dir(out_dir)` for fine-tuning, and in Python with
/// `ElectraForMaskedLM.from_pretrained`. With `resume`, an existing
/// `checkpoint_dir/last/` is continued instead of starting afresh.
pub fn pretrain_to_dir(
    model_config: &ElectraConfig,
    tokenizer: &TextTokenizer,
    corpus: &Corpus,
    cfg: &PretrainConfig,
    out_dir: impl AsRef<Path>,
    device: Device,
    resume: bool,
) -> Result<(ElectraForMaskedLM, PretrainResult)> {
    let mut model = ElectraForMaskedLM::random(model_config, device, cfg.seed as i64);
    let resumable = cfg.checkpoint_dir.as_ref().is_some_and(|d| saved_dir(d, "last").join("trainer_state.json").exists());
    let result = if resume && resumable { resume_pretraining(&mut model, corpus, cfg)? } else { pretrain(&mut model, corpus, cfg)? };
    let out = out_dir.as_ref();
    model.save(out, Some(tokenizer))?;
    let summary = PretrainSummary { config: cfg.clone(), model: model_config.clone(), result: result.clone() };
    let json = serde_json::to_string_pretty(&summary).map_err(|e| Error::invalid("summary", e.to_string()))?;
    crate::error::write_atomic(out.join("pretrain_summary.json"), json.as_bytes())?;
    Ok((model, result))
}
