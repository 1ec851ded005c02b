//! A classical baseline for every comparison: TF-IDF features (word 1- and
//! 2-grams, sublinear tf) and multinomial logistic regression, scikit-learn's
//! `TfidfVectorizer(sublinear_tf=True, ngram_range=(1, 2))` +
//! `LogisticRegression()` (issue 17). `tests/baseline.rs` runs it on the same
//! five folds of the WOS sample as `scripts/baseline_reference.py` runs
//! scikit-learn, and holds it to scikit-learn's vocabulary, tf-idf values and
//! accuracy.
//!
//! Why the solver is our own, on tch, rather than a crate such as
//! `linfa-logistic`: the data users bring is WOS-46985, 46,985 abstracts with
//! a 1-2-gram vocabulary of about 10⁶ terms. linfa's logistic regression takes
//! a dense `ndarray` matrix, which at that size is hundreds of gigabytes;
//! libtorch has sparse CSR tensors with sparse × dense products on CPU and
//! CUDA, so the features stay sparse from the vectorizer to the gradient, and
//! the only dense arrays are the `vocabulary × classes` weights. The L-BFGS
//! around it ([`lbfgs`]) is a few hundred lines with the stopping rules
//! scikit-learn gives SciPy. The vectorizer is plain Rust ([`tfidf`]): its
//! work is hashing strings, which tensors do not help with.
//!
//! The parts: [`tfidf`] (tokens, n-grams, vocabulary, weights), [`sparse`]
//! (the CSR matrix between them), [`lbfgs`] (the optimiser), [`logistic`]
//! (the model), and [`Baseline`] here, which fits both on a [`Dataset`].
pub mod lbfgs;
pub mod logistic;
pub mod sparse;
pub mod tfidf;

pub use logistic::{FitReport, LogisticConfig, LogisticRegression};
pub use sparse::CsrMatrix;
pub use tfidf::{TfidfConfig, TfidfVectorizer, ngrams, tokenize};

use crate::data::{Dataset, LabelMap};
use crate::error::{Error, Result};
use crate::train::Metrics;
use serde::{Deserialize, Serialize};
use std::time::Instant;

/// The baseline's settings: vectorizer and classifier.
///
/// The default is scikit-learn's `TfidfVectorizer(sublinear_tf=True,
/// ngram_range=(1, 2))` + `LogisticRegression(max_iter=2000)`; it serialises
/// as it is, for the run record.
///
/// ```
/// use encoder_bench::train::baseline::BaselineConfig;
/// let c: BaselineConfig = serde_json::from_str(r#"{"logistic": {"c": 10.0}}"#)?;
/// assert_eq!((c.logistic.c, c.logistic.max_iter, c.tfidf.ngram_range), (10.0, 2000, (1, 2)));
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct BaselineConfig {
    /// What the features are.
    pub tfidf: TfidfConfig,
    /// How the classifier is fitted.
    pub logistic: LogisticConfig,
}

/// What a baseline fit did and how long it took, for the run record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BaselineReport {
    /// The settings used.
    pub config: BaselineConfig,
    /// Training texts.
    pub n_train: usize,
    /// Terms in the vocabulary (features).
    pub vocabulary_size: usize,
    /// Non-zeros of the training matrix.
    pub train_nnz: usize,
    /// The solver's numbers.
    pub solver: FitReport,
    /// Seconds spent on the vocabulary and the training matrix.
    pub vectorize_seconds: f64,
    /// Seconds spent fitting the classifier.
    pub solve_seconds: f64,
}

/// A fitted TF-IDF + logistic regression classifier.
///
/// ```
/// use encoder_bench::data::{Dataset, LabelMap};
/// use encoder_bench::train::baseline::{Baseline, BaselineConfig};
/// let texts = ["stocks fell sharply", "the striker scored twice", "markets and stocks rallied", "a late goal by the striker"];
/// let train = Dataset::new("toy", texts.map(String::from).to_vec(), vec![0, 1, 0, 1], LabelMap::numbered(2))?;
/// let model = Baseline::fit(&train, &BaselineConfig::default())?;
/// assert_eq!(model.predict(&["stocks".to_string(), "striker".to_string()])?, [0, 1]);
/// assert_eq!(model.evaluate(&train)?.accuracy, 1.0);
/// # Ok::<(), encoder_bench::Error>(())
/// ```
#[derive(Debug)]
pub struct Baseline {
    vectorizer: TfidfVectorizer,
    model: LogisticRegression,
    labels: LabelMap,
    report: BaselineReport,
}

impl Baseline {
    /// Fits the vectorizer and the classifier on `train`.
    ///
    /// Fails with [`Error::Invalid`] when `train` is empty, when no text has
    /// a token (two or more letters or digits), when fewer than two classes
    /// occur, or when `cfg` is out of range.
    pub fn fit(train: &Dataset, cfg: &BaselineConfig) -> Result<Baseline> {
        cfg.tfidf.validate()?;
        if train.is_empty() {
            return Err(Error::invalid("train", format!("{}: no texts to fit the baseline on", train.source)));
        }
        cfg.logistic.validate()?;
        // Data problems name the data; other errors pass through as they are.
        let naming_data = |e: Error| match e {
            Error::Invalid { msg, .. } => Error::invalid("train", format!("{}: {msg}", train.source)),
            other => other,
        };
        let t0 = Instant::now();
        let (vectorizer, x) = TfidfVectorizer::fit_transform(&train.texts, &cfg.tfidf).map_err(naming_data)?;
        let vectorize_seconds = t0.elapsed().as_secs_f64();
        let t1 = Instant::now();
        let model = LogisticRegression::fit(&x, &train.targets, &cfg.logistic).map_err(naming_data)?;
        let report = BaselineReport {
            config: *cfg,
            n_train: train.len(),
            vocabulary_size: vectorizer.vocabulary_len(),
            train_nnz: x.nnz(),
            solver: *model.report(),
            vectorize_seconds,
            solve_seconds: t1.elapsed().as_secs_f64(),
        };
        Ok(Baseline { vectorizer, model, labels: train.labels.clone(), report })
    }

    /// The predicted label id of each text (ids of the training set's label map).
    pub fn predict(&self, texts: &[String]) -> Result<Vec<usize>> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        self.model.predict(&self.vectorizer.transform(texts))
    }

    /// Accuracy, F1 and the rest on `test`, over all the training label
    /// map's classes.
    ///
    /// Fails with [`Error::Invalid`] when `test` is empty or its label map
    /// differs from the training set's (see [`Dataset::with_labels`]).
    pub fn evaluate(&self, test: &Dataset) -> Result<Metrics> {
        if test.labels != self.labels {
            return Err(Error::invalid(
                "test",
                format!(
                    "{}: labels {:?} differ from the training labels {:?}; renumber them with Dataset::with_labels",
                    test.source,
                    test.labels.names(),
                    self.labels.names()
                ),
            ));
        }
        let preds = self.predict(&test.texts)?;
        Metrics::compute(&test.targets, &preds, self.labels.len())
    }

    /// The fitted vectorizer.
    pub fn vectorizer(&self) -> &TfidfVectorizer {
        &self.vectorizer
    }

    /// The fitted classifier.
    pub fn model(&self) -> &LogisticRegression {
        &self.model
    }

    /// What the fit did, with timings.
    pub fn report(&self) -> &BaselineReport {
        &self.report
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dataset(texts: &[&str], targets: Vec<usize>, classes: usize) -> Dataset {
        Dataset::new("mem", texts.iter().map(|s| s.to_string()).collect(), targets, LabelMap::numbered(classes)).unwrap()
    }

    #[test]
    fn errors_name_the_problem() {
        let cfg = BaselineConfig::default();
        let e = Baseline::fit(&dataset(&[], vec![], 3), &cfg).unwrap_err();
        assert!(e.to_string().contains("no texts"), "{e}");
        let e = Baseline::fit(&dataset(&["aa bb", "cc dd"], vec![1, 1], 3), &cfg).unwrap_err();
        assert!(e.to_string().contains("only class 1"), "{e}");
        let e = Baseline::fit(&dataset(&["a b", "! ?"], vec![0, 1], 2), &cfg).unwrap_err();
        assert!(e.to_string().contains("empty vocabulary"), "{e}");
        assert!(e.to_string().starts_with("invalid `train`: mem: "), "{e}");
        let bad = BaselineConfig { tfidf: TfidfConfig { ngram_range: (2, 1), sublinear_tf: true }, ..cfg };
        let e = Baseline::fit(&dataset(&["aa bb", "cc dd"], vec![0, 1], 2), &bad).unwrap_err();
        assert!(e.to_string().contains("ngram_range"), "{e}");
    }

    #[test]
    fn evaluate_checks_labels_and_counts_all_classes() {
        let train = dataset(&["red apple", "green pear", "red cherry", "green lime"], vec![0, 1, 0, 1], 3);
        let m = Baseline::fit(&train, &BaselineConfig::default()).unwrap();
        let metrics = m.evaluate(&dataset(&["red", "green", "blue"], vec![0, 1, 2], 3)).unwrap();
        assert_eq!(metrics.per_class.len(), 3);
        assert!((metrics.accuracy - 2.0 / 3.0).abs() < 1e-15);
        assert!(m.evaluate(&dataset(&["red"], vec![0], 2)).is_err(), "different label map");
        assert_eq!(m.predict(&[]).unwrap(), Vec::<usize>::new());
        let r = m.report();
        assert_eq!((r.n_train, r.vocabulary_size), (4, 10));
        assert!(r.solver.converged);
    }
}
