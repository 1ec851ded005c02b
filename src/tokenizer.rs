//! Tokenisation with Hugging Face `tokenizers`: load a model's `tokenizer.json`,
//! or build the BERT WordPiece tokenizer from a bare `vocab.txt`.
//!
//! Whole datasets are encoded once, in parallel, into an [`Encoded`] set of
//! unpadded id sequences (`[CLS] … [SEP]`, truncated at `max_len`); padding is
//! decided later, per batch (see [`crate::data::batch`]).
use crate::data::{Dataset, Encoded};
use crate::{Error, Result};
use std::path::{Path, PathBuf};
use tokenizers::models::wordpiece::WordPiece;
use tokenizers::normalizers::BertNormalizer;
use tokenizers::pre_tokenizers::bert::BertPreTokenizer;
use tokenizers::processors::bert::BertProcessing;
use tokenizers::{Model, PaddingParams, Tokenizer, TruncationParams};

/// A tokenizer plus what batching needs to know about it.
#[derive(Clone)]
pub struct TextTokenizer {
    inner: Tokenizer,
    source: PathBuf,
    pad_id: u32,
}

impl std::fmt::Debug for TextTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TextTokenizer")
            .field("source", &self.source)
            .field("vocab_size", &self.vocab_size())
            .field("pad_id", &self.pad_id)
            .finish()
    }
}

fn tok_err(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Tokenizer { path: path.to_path_buf(), msg: e.to_string() }
}

impl TextTokenizer {
    /// Loads a `tokenizer.json` (any model type `tokenizers` supports).
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        if !path.exists() {
            return Err(Error::io(path, std::io::Error::new(std::io::ErrorKind::NotFound, "tokenizer file not found")));
        }
        let inner = Tokenizer::from_file(path).map_err(|e| tok_err(path, e))?;
        Self::finish(inner, path)
    }

    /// Builds BERT's uncased/cased WordPiece tokenizer from `vocab.txt`, as
    /// `transformers.BertTokenizerFast` does (`[CLS] text [SEP]`).
    pub fn from_vocab(vocab: impl AsRef<Path>, lowercase: bool) -> Result<Self> {
        let path = vocab.as_ref();
        let path_str = path.to_str().ok_or_else(|| tok_err(path, "path is not UTF-8"))?;
        let wp = WordPiece::from_file(path_str).unk_token("[UNK]".into()).build().map_err(|e| tok_err(path, e))?;
        let special = |t: &str| {
            wp.get_vocab()
                .get(t)
                .copied()
                .ok_or_else(|| tok_err(path, format!("vocabulary has no `{t}` token (expected a BERT vocab.txt)")))
        };
        let (cls, sep) = (special("[CLS]")?, special("[SEP]")?);
        let mut inner = Tokenizer::new(wp);
        // strip_accents None follows `lowercase`, as BertNormalizer does in HF.
        inner.with_normalizer(Some(BertNormalizer::new(true, true, None, lowercase)));
        inner.with_pre_tokenizer(Some(BertPreTokenizer));
        inner.with_post_processor(Some(BertProcessing::new(("[SEP]".into(), sep), ("[CLS]".into(), cls))));
        Self::finish(inner, path)
    }

    /// Loads the tokenizer of a model directory: `tokenizer.json` when
    /// present, else `vocab.txt` with `do_lower_case` from
    /// `tokenizer_config.json` (default: lowercase, as bert-base-uncased).
    ///
    /// ```no_run
    /// let tok = encoder_bench::tokenizer::TextTokenizer::from_dir("models/minilm")?;
    /// let ids = tok.encode("Hello world", 64)?;
    /// assert_eq!(ids.first(), Some(&101)); // [CLS]
    /// # Ok::<(), encoder_bench::Error>(())
    /// ```
    pub fn from_dir(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref();
        let json = dir.join("tokenizer.json");
        if json.exists() {
            return Self::from_file(json);
        }
        let vocab = dir.join("vocab.txt");
        if !vocab.exists() {
            return Err(tok_err(dir, "expected tokenizer.json or vocab.txt in this directory"));
        }
        let cfg_path = dir.join("tokenizer_config.json");
        let lowercase = if cfg_path.exists() {
            let text = std::fs::read_to_string(&cfg_path).map_err(|e| Error::io(&cfg_path, e))?;
            let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| Error::config(&cfg_path, "<json>", e.to_string()))?;
            match v.get("do_lower_case") {
                None => true,
                Some(serde_json::Value::Bool(b)) => *b,
                Some(other) => return Err(Error::config(&cfg_path, "do_lower_case", format!("expected a boolean, found {other}"))),
            }
        } else {
            true
        };
        Self::from_vocab(vocab, lowercase)
    }

    fn finish(mut inner: Tokenizer, path: &Path) -> Result<Self> {
        // A tokenizer.json may carry its own padding/truncation; we decide
        // those per call and per batch instead.
        inner.with_padding(None::<PaddingParams>);
        inner.with_truncation(None).map_err(|e| tok_err(path, e))?;
        let pad_id = inner.token_to_id("[PAD]").or_else(|| inner.token_to_id("<pad>")).unwrap_or(0);
        Ok(TextTokenizer { inner, source: path.to_path_buf(), pad_id })
    }

    /// The file the tokenizer was read from.
    pub fn source(&self) -> &Path {
        &self.source
    }

    /// Vocabulary size including added tokens.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// The id used for padding (`[PAD]`, else 0).
    pub fn pad_id(&self) -> u32 {
        self.pad_id
    }

    /// The underlying `tokenizers::Tokenizer`.
    pub fn inner(&self) -> &Tokenizer {
        &self.inner
    }

    fn truncating(&self, max_len: usize) -> Result<Tokenizer> {
        if max_len < 2 {
            return Err(Error::invalid("max_len", format!("{max_len} leaves no room for [CLS] and [SEP]; expected >= 2")));
        }
        let mut t = self.inner.clone();
        t.with_truncation(Some(TruncationParams { max_length: max_len, ..Default::default() })).map_err(|e| tok_err(&self.source, e))?;
        Ok(t)
    }

    /// Ids of one text with special tokens, truncated to `max_len`.
    pub fn encode(&self, text: &str, max_len: usize) -> Result<Vec<i64>> {
        let enc = self.truncating(max_len)?.encode(text, true).map_err(|e| tok_err(&self.source, e))?;
        Ok(enc.get_ids().iter().map(|&i| i as i64).collect())
    }

    /// Encodes many texts in parallel (rayon, inside `tokenizers`).
    pub fn encode_texts(&self, texts: &[String], max_len: usize) -> Result<Encoded> {
        let t = self.truncating(max_len)?;
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let encs = t.encode_batch(refs, true).map_err(|e| tok_err(&self.source, e))?;
        let to_i64 = |v: &[u32]| v.iter().map(|&i| i as i64).collect::<Vec<_>>();
        Ok(Encoded {
            ids: encs.iter().map(|e| to_i64(e.get_ids())).collect(),
            type_ids: encs.iter().map(|e| to_i64(e.get_type_ids())).collect(),
            targets: vec![0; texts.len()],
            pad_id: self.pad_id as i64,
            max_len,
        })
    }

    /// Encodes a whole dataset once (texts and targets), ready for batching.
    pub fn encode_dataset(&self, ds: &Dataset, max_len: usize) -> Result<Encoded> {
        let mut enc = self.encode_texts(&ds.texts, max_len)?;
        enc.targets = ds.targets.iter().map(|&t| t as i64).collect();
        Ok(enc)
    }
}
