//! The masked-LM data: a tokenised corpus cut into sequences, BERT's masking
//! recipe (15% chosen; of those 80% `[MASK]`, 10% random, 10% kept), and the
//! seeded, resumable batches of each epoch.
use super::config::PretrainConfig;
use crate::error::{Error, Result};
use crate::tokenizer::TextTokenizer;
use crate::train::checkpoint::{PRETRAINING_SALT, step_seed};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::path::Path;
use tch::{Device, Tensor};

/// Label of positions that carry no loss (as in transformers and PyTorch).
pub const IGNORE_INDEX: i64 = -100;

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

    pub(super) fn is_special(&self, id: i64) -> bool {
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
    crate::device::check_transfer(tch::Kind::Int64, device)?;
    let mut order: Vec<usize> = (0..corpus.len()).collect();
    order.shuffle(&mut ChaCha8Rng::seed_from_u64(step_seed(PRETRAINING_SALT, cfg.seed, epoch, usize::MAX)));
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
        let put = |v: &[i64]| crate::data::batch::int64_on(v, &shape, self.device);
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
        let mut rng = ChaCha8Rng::seed_from_u64(step_seed(PRETRAINING_SALT, self.cfg.seed, self.epoch, self.step));
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
