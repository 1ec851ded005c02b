//! Classification metrics that match scikit-learn's to the last bit that
//! matters (`tests/metrics.rs` checks them against `sklearn.metrics`).
//!
//! The semantics are those of scikit-learn called with
//! `labels=range(num_classes)` and `zero_division=0`: every class counts in
//! the macro averages, also one that never occurs, and a ratio whose
//! denominator is zero is 0 rather than NaN.
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;

/// Precision, recall, F1 and support of one class.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassMetrics {
    /// True positives over predicted positives; 0 when the class is never predicted.
    pub precision: f64,
    /// True positives over actual positives; 0 when the class never occurs.
    pub recall: f64,
    /// `2·tp / (2·tp + fp + fn)`; 0 when the class is neither predicted nor present.
    pub f1: f64,
    /// How many targets belong to the class.
    pub support: usize,
}

/// Counts of (true class, predicted class) pairs.
///
/// ```
/// use encoder_bench::train::metrics::ConfusionMatrix;
/// let cm = ConfusionMatrix::from_labels(&[0, 1, 1], &[0, 0, 1], 2)?;
/// assert_eq!(cm.counts, vec![vec![1, 0], vec![1, 1]]);
/// # Ok::<(), encoder_bench::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfusionMatrix {
    /// Number of classes; `counts` is `n × n`.
    pub n: usize,
    /// `counts[true][pred]`, as scikit-learn's `confusion_matrix`.
    pub counts: Vec<Vec<usize>>,
}

impl ConfusionMatrix {
    /// Tallies `targets` against `preds`, after the checks [`Metrics::compute`] documents.
    pub fn from_labels(targets: &[usize], preds: &[usize], num_classes: usize) -> Result<ConfusionMatrix> {
        check_labels(targets, preds, num_classes)?;
        let mut counts = vec![vec![0usize; num_classes]; num_classes];
        for (&t, &p) in targets.iter().zip(preds) {
            counts[t][p] += 1;
        }
        Ok(ConfusionMatrix { n: num_classes, counts })
    }

    /// Targets of class `k` (row sum).
    pub fn support(&self, k: usize) -> usize {
        self.counts[k].iter().sum()
    }

    /// Predictions of class `k` (column sum).
    pub fn predicted(&self, k: usize) -> usize {
        self.counts.iter().map(|row| row[k]).sum()
    }

    /// Number of examples tallied.
    pub fn total(&self) -> usize {
        self.counts.iter().flatten().sum()
    }
}

/// Scores of one evaluation, as scikit-learn reports them.
///
/// ```
/// use encoder_bench::train::Metrics;
/// let m = Metrics::compute(&[0, 1, 2, 2], &[0, 2, 2, 2], 3)?;
/// assert_eq!(m.accuracy, 0.75);
/// assert_eq!(m.per_class[1].precision, 0.0); // class 1 is never predicted
/// assert!((m.macro_f1 - (1.0 + 0.0 + 0.8) / 3.0).abs() < 1e-15);
/// # Ok::<(), encoder_bench::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    /// Fraction of exact matches.
    pub accuracy: f64,
    /// Unweighted mean of the per-class F1 over all `num_classes` classes.
    pub macro_f1: f64,
    /// Per-class F1 weighted by support.
    pub weighted_f1: f64,
    /// Unweighted mean of the per-class precision.
    pub macro_precision: f64,
    /// Unweighted mean of the per-class recall.
    pub macro_recall: f64,
    /// One entry per class, in label order.
    pub per_class: Vec<ClassMetrics>,
    /// The counts everything above derives from.
    pub confusion: ConfusionMatrix,
}

impl Metrics {
    /// Scores `preds` against `targets` for labels `0..num_classes`.
    ///
    /// Fails with [`Error::Invalid`] when the slices are empty or of different
    /// lengths, when `num_classes` is 0, or when a label is `>= num_classes`.
    pub fn compute(targets: &[usize], preds: &[usize], num_classes: usize) -> Result<Metrics> {
        let confusion = ConfusionMatrix::from_labels(targets, preds, num_classes)?;
        let per_class: Vec<ClassMetrics> = (0..num_classes)
            .map(|k| {
                let tp = confusion.counts[k][k];
                let support = confusion.support(k);
                let predicted = confusion.predicted(k);
                ClassMetrics {
                    precision: ratio(tp, predicted),
                    recall: ratio(tp, support),
                    // From the counts, as scikit-learn does: 2pr/(p+r) can
                    // differ from it in the last bit.
                    f1: ratio(2 * tp, support + predicted),
                    support,
                }
            })
            .collect();
        let n = targets.len();
        let correct: usize = (0..num_classes).map(|k| confusion.counts[k][k]).sum();
        let mean = |f: fn(&ClassMetrics) -> f64| per_class.iter().map(f).sum::<f64>() / num_classes as f64;
        // Supports sum to n > 0, so the weighted mean is always defined.
        let weighted_f1 = weighted_mean(&per_class, |c| c.f1);
        Ok(Metrics {
            accuracy: correct as f64 / n as f64,
            macro_f1: mean(|c| c.f1),
            weighted_f1,
            macro_precision: mean(|c| c.precision),
            macro_recall: mean(|c| c.recall),
            per_class,
            confusion,
        })
    }

    /// Support-weighted mean precision (scikit-learn's `average="weighted"`).
    pub fn weighted_precision(&self) -> f64 {
        weighted_mean(&self.per_class, |c| c.precision)
    }

    /// Support-weighted mean recall (scikit-learn's `average="weighted"`).
    pub fn weighted_recall(&self) -> f64 {
        weighted_mean(&self.per_class, |c| c.recall)
    }

    /// The text of scikit-learn's `classification_report(..., digits=2)`,
    /// character for character.
    ///
    /// `names[k]` names class `k`; classes past the end of `names` are named
    /// by their number.
    ///
    /// ```
    /// use encoder_bench::train::Metrics;
    /// let m = Metrics::compute(&[0, 1, 1], &[0, 1, 0], 2)?;
    /// let text = m.report(&["neg".to_string(), "pos".to_string()]);
    /// assert!(text.contains("         pos       1.00      0.50      0.67         2\n"));
    /// assert!(text.contains("    accuracy                           0.67         3\n"));
    /// # Ok::<(), encoder_bench::Error>(())
    /// ```
    pub fn report(&self, names: &[String]) -> String {
        let names: Vec<String> = (0..self.per_class.len()).map(|k| names.get(k).cloned().unwrap_or_else(|| k.to_string())).collect();
        // Column width as scikit-learn computes it (in characters, like Python's len).
        let width = names.iter().map(|s| s.chars().count()).chain([WEIGHTED_AVG.len()]).max().unwrap_or(0);
        let total: usize = self.per_class.iter().map(|c| c.support).sum();
        let row = |out: &mut String, name: &str, p: f64, r: f64, f: f64, s: usize| {
            let _ = writeln!(out, "{name:>width$}  {p:>9.2} {r:>9.2} {f:>9.2} {s:>9}");
        };
        let mut out = format!("{:>width$}  {:>9} {:>9} {:>9} {:>9}\n\n", "", "precision", "recall", "f1-score", "support");
        for (name, c) in names.iter().zip(&self.per_class) {
            row(&mut out, name, c.precision, c.recall, c.f1, c.support);
        }
        out.push('\n');
        let _ = writeln!(out, "{:>width$}  {:>9} {:>9} {:>9.2} {:>9}", "accuracy", "", "", self.accuracy, total);
        row(&mut out, "macro avg", self.macro_precision, self.macro_recall, self.macro_f1, total);
        row(&mut out, WEIGHTED_AVG, self.weighted_precision(), self.weighted_recall(), self.weighted_f1, total);
        out
    }
}

const WEIGHTED_AVG: &str = "weighted avg";

/// Index of the largest value in each row of a row-major `[rows, num_classes]`
/// matrix; the first one wins a tie and a NaN counts as the largest, as in
/// `numpy.argmax(probs, axis=1)`.
///
/// ```
/// use encoder_bench::train::metrics::argmax_rows;
/// assert_eq!(argmax_rows(&[0.1, 0.7, 0.2, 0.5, 0.5, 0.0], 3), vec![1, 0]);
/// ```
///
/// # Panics
/// When `num_classes` is 0 or does not divide `probs.len()`: the caller has
/// mixed up shapes, and guessing the rows would hide it.
pub fn argmax_rows(probs: &[f32], num_classes: usize) -> Vec<usize> {
    assert!(
        num_classes > 0 && probs.len().is_multiple_of(num_classes),
        "argmax_rows: {} values do not form rows of {num_classes} classes",
        probs.len()
    );
    probs
        .chunks_exact(num_classes)
        .map(|row| {
            let mut best = 0;
            for (k, &v) in row.iter().enumerate() {
                if v.is_nan() {
                    return k;
                }
                if v > row[best] {
                    best = k;
                }
            }
            best
        })
        .collect()
}

fn check_labels(targets: &[usize], preds: &[usize], num_classes: usize) -> Result<()> {
    if num_classes == 0 {
        return Err(Error::invalid("num_classes", "must be at least 1"));
    }
    // The confusion matrix is num_classes² counts.
    crate::data::text::check_class_count(num_classes, "the model's outputs").map_err(|msg| Error::invalid("num_classes", msg))?;
    if targets.len() != preds.len() {
        return Err(Error::invalid("preds", format!("{} predictions for {} targets", preds.len(), targets.len())));
    }
    if targets.is_empty() {
        return Err(Error::invalid("targets", "no examples to score"));
    }
    for (name, labels) in [("targets", targets), ("preds", preds)] {
        if let Some((i, &l)) = labels.iter().enumerate().find(|&(_, &l)| l >= num_classes) {
            return Err(Error::invalid(name, format!("label {l} at index {i} is not below num_classes = {num_classes}")));
        }
    }
    Ok(())
}

/// Support-weighted mean of `f`, as `numpy.average(x, weights=support)`.
fn weighted_mean(per_class: &[ClassMetrics], f: fn(&ClassMetrics) -> f64) -> f64 {
    let n: usize = per_class.iter().map(|c| c.support).sum();
    per_class.iter().map(|c| f(c) * c.support as f64).sum::<f64>() / n as f64
}

/// `num / den`, or 0 when `den` is 0 (scikit-learn's `zero_division=0`).
fn ratio(num: usize, den: usize) -> f64 {
    if den == 0 { 0.0 } else { num as f64 / den as f64 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_division_is_zero() {
        // Class 2 occurs nowhere, class 1 is never predicted.
        let m = Metrics::compute(&[0, 1, 0], &[0, 0, 0], 3).unwrap();
        assert_eq!(m.per_class[1], ClassMetrics { precision: 0.0, recall: 0.0, f1: 0.0, support: 1 });
        assert_eq!(m.per_class[2], ClassMetrics { precision: 0.0, recall: 0.0, f1: 0.0, support: 0 });
        assert_eq!(m.per_class[0].f1, 0.8);
        assert!((m.macro_f1 - 0.8 / 3.0).abs() < 1e-15);
    }

    #[test]
    fn argmax_ties_and_nan_follow_numpy() {
        assert_eq!(argmax_rows(&[1.0, 1.0, 0.0], 3), vec![0]);
        assert_eq!(argmax_rows(&[1.0, f32::NAN, 2.0, f32::NAN], 4), vec![1]);
        assert_eq!(argmax_rows(&[f32::NEG_INFINITY, -1.0], 2), vec![1]);
        assert!(argmax_rows(&[], 5).is_empty());
    }

    #[test]
    #[should_panic(expected = "do not form rows")]
    fn argmax_rejects_ragged_input() {
        argmax_rows(&[0.0; 5], 2);
    }
}
