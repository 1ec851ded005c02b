//! Tokenisation with Hugging Face `tokenizers`: load a model's `tokenizer.json`,
//! or build the BERT WordPiece tokenizer from a bare `vocab.txt`.
//!
//! Whole datasets are encoded once, in parallel, into an [`Encoded`] set of
//! unpadded id sequences (`[CLS] … [SEP]`, truncated at `max_len`); padding is
//! decided later, per batch (see [`crate::data::batch`]).
use crate::data::{Dataset, Encoded};
use crate::error::{Error, Result};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tokenizers::models::wordpiece::WordPiece;
use tokenizers::normalizers::BertNormalizer;
use tokenizers::normalizers::NormalizerWrapper;
use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::pre_tokenizers::bert::BertPreTokenizer;
use tokenizers::processors::bert::BertProcessing;
use tokenizers::{Model, PaddingParams, Tokenizer, TruncationParams};

/// A tokenizer plus what batching needs to know about it.
#[derive(Clone)]
pub struct TextTokenizer {
    inner: Tokenizer,
    source: PathBuf,
    pad_id: u32,
    /// `inner` with truncation at the last `max_len` asked for (a tokenizer
    /// is costly to clone; callers use one `max_len` at a time).
    truncating: Arc<Mutex<Option<Truncating>>>,
    /// Whether a text cut after a word tokenises to a prefix of the whole
    /// text's tokens (see [`cuts_at_whitespace`]).
    prefix_exact: bool,
}

/// A tokenizer truncating at a `max_len`.
type Truncating = (usize, Arc<Tokenizer>);

/// Whether tokenising a text cut at ASCII whitespace gives a prefix of the
/// tokens of the whole text: true when the normalizer only maps characters
/// (BERT's, lowercasing, Unicode normal forms, accent stripping), the
/// pre-tokenizer splits at whitespace (BERT's, `Whitespace`, ...; the model
/// then sees each word on its own) and no added token contains whitespace.
fn cuts_at_whitespace(t: &Tokenizer) -> bool {
    fn normalizer_ok(n: &NormalizerWrapper) -> bool {
        use NormalizerWrapper as N;
        match n {
            N::BertNormalizer(_) | N::Lowercase(_) | N::NFC(_) | N::NFD(_) | N::NFKC(_) | N::NFKD(_) | N::StripAccents(_) => true,
            N::Sequence(seq) => seq.as_ref().iter().all(normalizer_ok),
            _ => false,
        }
    }
    fn splits(p: &PreTokenizerWrapper) -> bool {
        use PreTokenizerWrapper as P;
        match p {
            P::BertPreTokenizer(_) | P::Whitespace(_) | P::WhitespaceSplit(_) => true,
            P::Sequence(seq) => seq.as_ref().iter().any(splits) && seq.as_ref().iter().all(|p| splits(p) || refines(p)),
            _ => false,
        }
    }
    // Pre-tokenizers that only split further.
    fn refines(p: &PreTokenizerWrapper) -> bool {
        matches!(p, PreTokenizerWrapper::Punctuation(_) | PreTokenizerWrapper::Digits(_))
    }
    t.get_normalizer().is_none_or(normalizer_ok)
        && t.get_pre_tokenizer().is_some_and(splits)
        && t.get_added_tokens_decoder().values().all(|a| !a.content.contains(|c: char| c.is_ascii_whitespace()))
}

/// `text` up to the end of its `words`-th word (words separated by ASCII
/// whitespace), or all of it when it has no more words.
fn first_words(text: &str, words: usize) -> &str {
    let mut seen = 0;
    let mut in_word = false;
    for (i, c) in text.char_indices() {
        if c.is_ascii_whitespace() {
            if in_word {
                seen += 1;
                if seen == words {
                    return &text[..i];
                }
            }
            in_word = false;
        } else {
            in_word = true;
        }
    }
    text
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
        let prefix_exact = cuts_at_whitespace(&inner);
        Ok(TextTokenizer { inner, source: path.to_path_buf(), pad_id, truncating: Arc::default(), prefix_exact })
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

    fn truncating(&self, max_len: usize) -> Result<Arc<Tokenizer>> {
        if max_len < 2 {
            return Err(Error::invalid("max_len", format!("{max_len} leaves no room for [CLS] and [SEP]; expected >= 2")));
        }
        let mut cached = self.truncating.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, t)) = cached.as_ref().filter(|(len, _)| *len == max_len) {
            return Ok(t.clone());
        }
        let mut t = self.inner.clone();
        t.with_truncation(Some(TruncationParams { max_length: max_len, ..Default::default() })).map_err(|e| tok_err(&self.source, e))?;
        let t = Arc::new(t);
        *cached = Some((max_len, t.clone()));
        Ok(t)
    }

    /// Ids of one text with special tokens, truncated to `max_len`.
    pub fn encode(&self, text: &str, max_len: usize) -> Result<Vec<i64>> {
        Ok(self.encode_texts(&[text.to_string()], max_len)?.ids.remove(0))
    }

    /// Encodes many texts in parallel (rayon, inside `tokenizers`).
    ///
    /// With a tokenizer that splits at whitespace (BERT's), only the first
    /// `max_len` words of each text are tokenised, and a text is tokenised
    /// whole only when its first words did not fill `max_len` tokens: the ids
    /// are the same, and a WOS abstract (~190 words) at MAX_LEN 64 costs a
    /// third of the work.
    pub fn encode_texts(&self, texts: &[String], max_len: usize) -> Result<Encoded> {
        let t = self.truncating(max_len)?;
        let refs: Vec<&str> = texts.iter().map(|text| if self.prefix_exact { first_words(text, max_len) } else { text.as_str() }).collect();
        let mut encs = t.encode_batch(refs.clone(), true).map_err(|e| tok_err(&self.source, e))?;
        // A cut text whose words gave fewer than `max_len` tokens (words that
        // normalise to nothing) is tokenised again in full.
        let short: Vec<usize> =
            (0..texts.len()).filter(|&i| refs[i].len() < texts[i].len() && encs[i].get_overflowing().is_empty()).collect();
        if !short.is_empty() {
            let whole = t.encode_batch(short.iter().map(|&i| texts[i].as_str()).collect(), true).map_err(|e| tok_err(&self.source, e))?;
            for (i, enc) in short.into_iter().zip(whole) {
                encs[i] = enc;
            }
        }
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

/// The files a Hugging Face tokenizer directory may hold; [`copy_tokenizer_files`] copies those present.
pub const TOKENIZER_FILES: &[&str] = &["tokenizer.json", "vocab.txt", "tokenizer_config.json", "special_tokens_map.json"];

/// True when `dir` holds a tokenizer [`TextTokenizer::from_dir`] can read
/// (`tokenizer.json` or `vocab.txt`).
///
/// ```
/// assert!(!encoder_bench::tokenizer::is_tokenizer_dir(std::path::Path::new("no/such/dir")));
/// ```
pub fn is_tokenizer_dir(dir: &Path) -> bool {
    dir.join("tokenizer.json").is_file() || dir.join("vocab.txt").is_file()
}

/// Copies the tokenizer files of directory `from` (see [`TOKENIZER_FILES`])
/// into `to`, each atomically, and returns their names. A directory with
/// neither `tokenizer.json` nor `vocab.txt` is an error naming it.
///
/// ```
/// let (a, b) = (tempfile::tempdir()?, tempfile::tempdir()?);
/// std::fs::write(a.path().join("vocab.txt"), "[PAD]\n[UNK]\n")?;
/// let copied = encoder_bench::tokenizer::copy_tokenizer_files(a.path(), b.path())?;
/// assert_eq!(copied, ["vocab.txt"]);
/// assert!(encoder_bench::tokenizer::copy_tokenizer_files(b.path().join("none").as_path(), a.path()).is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn copy_tokenizer_files(from: &Path, to: &Path) -> Result<Vec<String>> {
    if !is_tokenizer_dir(from) {
        return Err(Error::Tokenizer {
            path: from.to_path_buf(),
            msg: "no tokenizer.json or vocab.txt: expected a tokenizer directory".into(),
        });
    }
    let mut copied = Vec::new();
    for name in TOKENIZER_FILES {
        let src = from.join(name);
        if src.is_file() {
            let bytes = std::fs::read(&src).map_err(|e| Error::io(&src, e))?;
            crate::error::write_atomic(to.join(name), &bytes)?;
            copied.push(name.to_string());
        }
    }
    Ok(copied)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn minilm() -> TextTokenizer {
        TextTokenizer::from_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("models/minilm")).expect("models/minilm (run `make setup`)")
    }

    #[test]
    fn first_words_cuts_after_the_nth_word() {
        assert_eq!(first_words("a bb  c\td", 2), "a bb");
        assert_eq!(first_words("  a bb", 1), "  a");
        assert_eq!(first_words("a bb", 2), "a bb");
        assert_eq!(first_words("a bb ", 5), "a bb ");
        // Only ASCII whitespace cuts: BERT deletes U+0085 rather than splitting there.
        assert_eq!(first_words("a\u{85}b c", 1), "a\u{85}b");
    }

    #[test]
    fn cut_texts_give_the_ids_of_whole_texts() {
        let tok = minilm();
        assert!(tok.prefix_exact, "BERT's tokenizer splits at whitespace");
        let whole = TextTokenizer { prefix_exact: false, ..tok.clone() };
        let ds =
            Dataset::read_wos(Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/wos-sample"), crate::data::WosLevel::L1).unwrap();
        let mut texts = ds.texts.clone();
        // Words that normalise to nothing (a lone combining accent, control
        // characters), so the first words give fewer tokens than words.
        let silent = ["\u{301}"; 40].join(" ") + " \u{7} \u{7}\u{7} " + &"x ".repeat(30);
        texts.extend([silent, "\t  lead  and\n\ntrail  ".into(), "汉字很多的句子 没有空格".repeat(20), String::new()]);
        for max_len in [2, 3, 8, 64, 512] {
            let (a, b) = (tok.encode_texts(&texts, max_len).unwrap(), whole.encode_texts(&texts, max_len).unwrap());
            for (i, text) in texts.iter().enumerate() {
                assert_eq!(a.ids[i], b.ids[i], "max_len {max_len}: {text:?}");
                assert_eq!(a.type_ids[i], b.type_ids[i]);
            }
        }
    }

    #[test]
    fn tokenizers_that_do_not_split_at_whitespace_tokenise_whole_texts() {
        let mut t = minilm().inner.clone();
        t.with_pre_tokenizer(Some(tokenizers::pre_tokenizers::metaspace::Metaspace::default()));
        assert!(!cuts_at_whitespace(&t));
        let mut t = minilm().inner.clone();
        t.with_pre_tokenizer(None::<PreTokenizerWrapper>);
        assert!(!cuts_at_whitespace(&t));
        let mut t = minilm().inner.clone();
        t.add_tokens(&[tokenizers::AddedToken::from("new york", false)]);
        assert!(!cuts_at_whitespace(&t));
    }
}
