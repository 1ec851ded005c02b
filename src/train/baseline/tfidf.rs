//! TF-IDF features with scikit-learn's semantics, so that the baseline's
//! numbers can be compared with `TfidfVectorizer(sublinear_tf=True,
//! ngram_range=(1, 2))` value for value (`tests/baseline.rs` checks them to
//! 1e-9 against `tests/fixtures/baseline_reference.json`).
//!
//! What "scikit-learn's semantics" pins down, in the order a text goes through:
//! - lowercase (Unicode, full case mapping, as Python's `str.lower`);
//! - tokens are what the pattern `(?u)\b\w\w+\b` finds, i.e. maximal runs of
//!   two or more word characters, with Python's `\w` (letters, digits of any
//!   kind, `_`; not combining marks);
//! - n-grams are the tokens joined by one space, for every length in the
//!   range, unigrams first;
//! - the vocabulary is every n-gram of the training texts (`min_df=1`,
//!   `max_df=1.0`), its feature index the term's rank in sorted order;
//! - tf is the raw count in the text, or `1 + ln(tf)` when sublinear;
//!   idf is `ln((1 + n) / (1 + df)) + 1` (smooth idf); each row is then
//!   divided by its Euclidean norm. Terms unseen in training are ignored.
use super::sparse::CsrMatrix;
use crate::error::{Error, Result};
use rayon::prelude::*;
use regex::Regex;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::LazyLock;

/// What a [`TfidfVectorizer`] counts and how, for the run record.
///
/// The default is scikit-learn's `TfidfVectorizer(sublinear_tf=True,
/// ngram_range=(1, 2))`.
///
/// ```
/// use encoder_bench::train::baseline::TfidfConfig;
/// let c = TfidfConfig::default();
/// assert_eq!((c.ngram_range, c.sublinear_tf), ((1, 2), true));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct TfidfConfig {
    /// Shortest and longest n-gram, in words, both included (`1 <= min <= max`).
    pub ngram_range: (usize, usize),
    /// Use `1 + ln(tf)` instead of the raw count `tf`.
    pub sublinear_tf: bool,
}

impl Default for TfidfConfig {
    fn default() -> Self {
        TfidfConfig { ngram_range: (1, 2), sublinear_tf: true }
    }
}

impl TfidfConfig {
    /// Fails with [`Error::Invalid`] on an empty or zero-based n-gram range.
    pub fn validate(&self) -> Result<()> {
        let (lo, hi) = self.ngram_range;
        if lo == 0 || lo > hi {
            return Err(Error::invalid("ngram_range", format!("({lo}, {hi}): expected 1 <= min <= max")));
        }
        Ok(())
    }
}

/// Python's `(?u)\b\w\w+\b` in the `regex` crate's terms. Python's `\w` is
/// letters, numbers and `_` (`str.isalnum`), whereas the crate's also takes
/// combining marks and leaves out numbers such as `²`; spelling the class out
/// keeps Python's meaning. Its `\b` is then implied: a greedy run of the class
/// matched leftmost-first starts and ends at word boundaries, and leaving it
/// out keeps the regex on its fast DFA for non-ASCII text.
static TOKEN: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"[\p{L}\p{N}_]{2,}").expect("valid token regex"));

/// The tokens of `text` as scikit-learn's default analyzer sees them:
/// lowercased, runs of two or more word characters.
///
/// ```
/// use encoder_bench::train::baseline::tokenize;
/// assert_eq!(tokenize("The cat's 2 HATS, x² and snake_case!"), ["the", "cat", "hats", "x²", "and", "snake_case"]);
/// ```
pub fn tokenize(text: &str) -> Vec<String> {
    let lower = text.to_lowercase();
    TOKEN.find_iter(&lower).map(|m| m.as_str().to_string()).collect()
}

/// The n-grams of `tokens` for every length in `range` (inclusive), in
/// scikit-learn's order: all of the shortest length first, each length left
/// to right.
///
/// ```
/// use encoder_bench::train::baseline::ngrams;
/// let t: Vec<String> = ["a1", "b2", "c3"].map(String::from).to_vec();
/// assert_eq!(ngrams(&t, (1, 2)), ["a1", "b2", "c3", "a1 b2", "b2 c3"]);
/// assert_eq!(ngrams(&t, (3, 5)), ["a1 b2 c3"]);
/// ```
pub fn ngrams(tokens: &[String], range: (usize, usize)) -> Vec<String> {
    let mut out = Vec::new();
    for_each_ngram(tokens, range, &mut String::new(), |g| out.push(g.to_string()));
    out
}

/// Calls `f` on each n-gram, built in `buf` so that looking a term up costs
/// no allocation.
fn for_each_ngram(tokens: &[String], (lo, hi): (usize, usize), buf: &mut String, mut f: impl FnMut(&str)) {
    for n in lo.max(1)..=hi.min(tokens.len()) {
        for window in tokens.windows(n) {
            buf.clear();
            for (k, t) in window.iter().enumerate() {
                if k > 0 {
                    buf.push(' ');
                }
                buf.push_str(t);
            }
            f(buf);
        }
    }
}

/// Counts of one text: (term id, count), sorted by id.
type Counts = Vec<(usize, u32)>;

/// Sorts term ids and folds repeats into counts.
fn run_lengths(mut ids: Vec<usize>) -> Counts {
    ids.sort_unstable();
    let mut out: Counts = Vec::with_capacity(ids.len());
    for id in ids {
        match out.last_mut() {
            Some((last, c)) if *last == id => *c += 1,
            _ => out.push((id, 1)),
        }
    }
    out
}

/// A fitted TF-IDF vectorizer: vocabulary and idf weights from the training
/// texts.
///
/// ```
/// use encoder_bench::train::baseline::{TfidfConfig, TfidfVectorizer};
/// let train = ["the cat sat", "the dog sat down"];
/// let v = TfidfVectorizer::fit(&train, &TfidfConfig::default())?;
/// assert_eq!(v.terms()[..3], ["cat", "cat sat", "dog"]);
/// let x = v.transform(&["a cat and a bird"]); // only "cat" is known
/// assert_eq!(x.nnz(), 1);
/// assert!((x.get(0, v.index("cat").unwrap()) - 1.0).abs() < 1e-15); // rows have norm 1
/// # Ok::<(), encoder_bench::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct TfidfVectorizer {
    config: TfidfConfig,
    vocabulary: HashMap<String, usize>,
    terms: Vec<String>,
    idf: Vec<f64>,
}

impl TfidfVectorizer {
    /// Learns the vocabulary and idf of `texts`.
    ///
    /// Fails with [`Error::Invalid`] when the config is invalid, `texts` is
    /// empty, or no text has a single token (an empty vocabulary).
    pub fn fit<S: AsRef<str> + Sync>(texts: &[S], config: &TfidfConfig) -> Result<TfidfVectorizer> {
        Self::fit_counts(texts, config).map(|(v, _)| v)
    }

    /// [`fit`](Self::fit) and [`transform`](Self::transform) of the same
    /// texts, counting them once.
    ///
    /// ```
    /// use encoder_bench::train::baseline::{TfidfConfig, TfidfVectorizer};
    /// let texts = ["one fish two fish", "red fish blue fish"];
    /// let (v, x) = TfidfVectorizer::fit_transform(&texts, &TfidfConfig::default())?;
    /// assert_eq!(x, v.transform(&texts));
    /// # Ok::<(), encoder_bench::Error>(())
    /// ```
    pub fn fit_transform<S: AsRef<str> + Sync>(texts: &[S], config: &TfidfConfig) -> Result<(TfidfVectorizer, CsrMatrix)> {
        let (v, counts) = Self::fit_counts(texts, config)?;
        let x = v.weigh(counts);
        Ok((v, x))
    }

    /// The vocabulary in one pass: ids in order of first appearance while
    /// counting (one hash look-up per n-gram), renumbered by sorted term at
    /// the end. Sequential, because the vocabulary is shared state; the
    /// tokenizing, half of the work, runs in parallel ahead of it.
    fn fit_counts<S: AsRef<str> + Sync>(texts: &[S], config: &TfidfConfig) -> Result<(TfidfVectorizer, Vec<Counts>)> {
        config.validate()?;
        if texts.is_empty() {
            return Err(Error::invalid("texts", "no texts to learn a vocabulary from"));
        }
        let mut vocabulary: HashMap<String, usize> = HashMap::new();
        let mut counts: Vec<Counts> = Vec::with_capacity(texts.len());
        let mut buf = String::new();
        // Chunks bound the memory held by tokens waiting for the vocabulary.
        for chunk in texts.chunks(4096) {
            let tokens: Vec<Vec<String>> = chunk.par_iter().map(|t| tokenize(t.as_ref())).collect();
            for toks in &tokens {
                let mut ids = Vec::new();
                for_each_ngram(toks, config.ngram_range, &mut buf, |g| {
                    let next = vocabulary.len();
                    let id = match vocabulary.get(g) {
                        Some(&id) => id,
                        None => *vocabulary.entry(g.to_string()).or_insert(next),
                    };
                    ids.push(id);
                });
                counts.push(run_lengths(ids));
            }
        }
        if vocabulary.is_empty() {
            return Err(Error::invalid(
                "texts",
                format!("empty vocabulary: none of the {} texts has a word of two or more letters or digits", texts.len()),
            ));
        }

        let mut terms: Vec<String> = vec![String::new(); vocabulary.len()];
        for (term, &id) in &vocabulary {
            terms[id] = term.clone();
        }
        let mut order: Vec<usize> = (0..terms.len()).collect();
        order.par_sort_unstable_by(|&a, &b| terms[a].cmp(&terms[b]));
        let mut rank = vec![0usize; order.len()];
        for (r, &id) in order.iter().enumerate() {
            rank[id] = r;
        }
        let terms: Vec<String> = order.iter().map(|&id| std::mem::take(&mut terms[id])).collect();
        for id in vocabulary.values_mut() {
            *id = rank[*id];
        }
        let mut df = vec![0usize; terms.len()];
        for doc in &mut counts {
            for (id, _) in doc.iter_mut() {
                *id = rank[*id];
                df[*id] += 1;
            }
            doc.sort_unstable_by_key(|&(id, _)| id);
        }
        let n = texts.len() as f64;
        let idf = df.iter().map(|&d| smooth_idf(n, d as f64)).collect();
        Ok((TfidfVectorizer { config: *config, vocabulary, terms, idf }, counts))
    }

    /// The tf-idf matrix of `texts`: one L2-normalised row per text, one
    /// column per vocabulary term. Terms not in the vocabulary are ignored; a
    /// text without known terms gives a row of zeros.
    pub fn transform<S: AsRef<str> + Sync>(&self, texts: &[S]) -> CsrMatrix {
        let counts: Vec<Counts> = texts
            .par_iter()
            .map_init(String::new, |buf, t| {
                let mut ids = Vec::new();
                for_each_ngram(&tokenize(t.as_ref()), self.config.ngram_range, buf, |g| ids.extend(self.vocabulary.get(g)));
                run_lengths(ids)
            })
            .collect();
        self.weigh(counts)
    }

    /// Counts to tf-idf rows, in the order scikit-learn computes them
    /// (tf transform, times idf, divided by the row norm).
    fn weigh(&self, counts: Vec<Counts>) -> CsrMatrix {
        let mut indptr = Vec::with_capacity(counts.len() + 1);
        indptr.push(0);
        let nnz = counts.iter().map(Vec::len).sum();
        let mut indices = Vec::with_capacity(nnz);
        let mut values = Vec::with_capacity(nnz);
        for doc in &counts {
            let start = values.len();
            for &(id, c) in doc {
                let tf = if self.config.sublinear_tf { (c as f64).ln() + 1.0 } else { c as f64 };
                indices.push(id);
                values.push(tf * self.idf[id]);
            }
            let norm = values[start..].iter().map(|v| v * v).sum::<f64>().sqrt();
            if norm > 0.0 {
                values[start..].iter_mut().for_each(|v| *v /= norm);
            }
            indptr.push(values.len());
        }
        CsrMatrix::new(counts.len(), self.terms.len(), indptr, indices, values).expect("counts are sorted by id and within the vocabulary")
    }

    /// The settings it was fitted with.
    pub fn config(&self) -> &TfidfConfig {
        &self.config
    }

    /// Number of terms (columns of the matrices it makes).
    pub fn vocabulary_len(&self) -> usize {
        self.terms.len()
    }

    /// The terms in feature order (sorted), as scikit-learn's `get_feature_names_out()`.
    pub fn terms(&self) -> &[String] {
        &self.terms
    }

    /// The feature index of `term`, if it is in the vocabulary.
    pub fn index(&self, term: &str) -> Option<usize> {
        self.vocabulary.get(term).copied()
    }

    /// The idf weight of each term, in feature order (scikit-learn's `idf_`).
    pub fn idf(&self) -> &[f64] {
        &self.idf
    }
}

/// Smooth idf: as if one extra document held every term once, so no weight
/// divides by zero, plus one so that terms in every document still count.
fn smooth_idf(n_docs: f64, df: f64) -> f64 {
    ((1.0 + n_docs) / (1.0 + df)).ln() + 1.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn tokens_follow_python_word_characters() {
        // Combining acute (U+0301) is not \w in Python, so it ends a token;
        // superscript two is (a number); one-character runs are dropped.
        assert_eq!(tokenize("Café cafe\u{301}s x² a I ok"), strings(&["café", "cafe", "x²", "ok"]));
        assert_eq!(tokenize("e-mail: foo_bar@baz.org, 3.14"), strings(&["mail", "foo_bar", "baz", "org", "14"]));
        // Final sigma, as Python's str.lower.
        assert_eq!(tokenize("ΟΔΥΣΣΕΥΣ"), strings(&["οδυσσευς"]));
        assert!(tokenize("? ! a . b").is_empty());
    }

    #[test]
    fn ngrams_in_sklearn_order() {
        let t = strings(&["a1", "b2", "c3", "d4"]);
        assert_eq!(ngrams(&t, (1, 1)), t);
        assert_eq!(ngrams(&t, (2, 3)), strings(&["a1 b2", "b2 c3", "c3 d4", "a1 b2 c3", "b2 c3 d4"]));
        assert!(ngrams(&t[..1], (2, 2)).is_empty());
        assert!(ngrams(&[], (1, 2)).is_empty());
    }

    #[test]
    fn idf_formula() {
        // ln((1+n)/(1+df)) + 1: a term in every document gets exactly 1.
        assert_eq!(smooth_idf(4.0, 4.0), 1.0);
        assert!((smooth_idf(3.0, 1.0) - (2f64.ln() + 1.0)).abs() < 1e-15);
        let v = TfidfVectorizer::fit(&["aa bb", "aa cc", "aa"], &TfidfConfig { ngram_range: (1, 1), sublinear_tf: true }).unwrap();
        assert_eq!(v.terms(), ["aa", "bb", "cc"]);
        assert_eq!(v.idf()[0], 1.0);
        assert!((v.idf()[1] - (2f64.ln() + 1.0)).abs() < 1e-15);
    }

    #[test]
    fn sublinear_and_raw_tf() {
        let texts = ["aa aa aa aa bb", "bb cc"];
        for sublinear in [true, false] {
            let cfg = TfidfConfig { ngram_range: (1, 1), sublinear_tf: sublinear };
            let (v, x) = TfidfVectorizer::fit_transform(&texts, &cfg).unwrap();
            let tf_aa = if sublinear { 4f64.ln() + 1.0 } else { 4.0 };
            let (aa, bb) = (tf_aa * v.idf()[0], v.idf()[1]);
            let norm = (aa * aa + bb * bb).sqrt();
            assert!((x.get(0, 0) - aa / norm).abs() < 1e-15, "sublinear {sublinear}");
            assert!((x.get(0, 1) - bb / norm).abs() < 1e-15, "sublinear {sublinear}");
            assert_eq!(x.get(0, 2), 0.0);
        }
    }

    #[test]
    fn unknown_terms_and_empty_rows() {
        let v = TfidfVectorizer::fit(&["red fish", "blue fish"], &TfidfConfig::default()).unwrap();
        let x = v.transform(&["green eggs", "", "fish fish"]);
        assert_eq!((x.n_rows(), x.nnz()), (3, 1));
        assert_eq!(x.row(0).0.len(), 0);
        assert_eq!(x.get(2, v.index("fish").unwrap()), 1.0);
        assert_eq!(v.index("fish fish"), None);
    }

    #[test]
    fn errors_not_panics() {
        let cfg = TfidfConfig::default();
        let empty: [&str; 0] = [];
        assert!(matches!(TfidfVectorizer::fit(&empty, &cfg), Err(Error::Invalid { .. })));
        let err = TfidfVectorizer::fit(&["a b c", "?!", ""], &cfg).unwrap_err();
        assert!(err.to_string().contains("empty vocabulary"), "{err}");
        for range in [(0, 2), (3, 2)] {
            assert!(TfidfVectorizer::fit(&["aa bb"], &TfidfConfig { ngram_range: range, sublinear_tf: true }).is_err());
        }
    }

    #[test]
    fn config_round_trips_through_json() {
        let c = TfidfConfig { ngram_range: (1, 3), sublinear_tf: false };
        let back: TfidfConfig = serde_json::from_str(&serde_json::to_string(&c).unwrap()).unwrap();
        assert_eq!(back, c);
        let d: TfidfConfig = serde_json::from_str("{}").unwrap();
        assert_eq!(d, TfidfConfig::default());
    }
}
