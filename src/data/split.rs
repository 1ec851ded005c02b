//! Train/validation/test splits of a [`Dataset`].
//!
//! Four ways to split off the test set, all deterministic:
//! - [`Split::first_n`]: the seed notebook's split, first rows train, the rest test;
//! - [`Split::sample`]: the seed notebook's quick "sample" mode on a head of the data;
//! - [`Split::stratified`]: per-class seeded shuffle, so every class keeps its
//!   share on both sides;
//! - [`Split::kfold`]: stratified k-fold cross-validation, every text a test
//!   text exactly once.
//!
//! [`Split::with_validation`] then carves a stratified validation set from the
//! training side: what chooses epochs, early stopping and settings, so that
//! the test set is only ever reported.
use super::Dataset;
use crate::error::{Error, Result};
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Share of the dataset [`Split::sample`] keeps in the seed notebook's sample mode.
pub const SAMPLE_FRACTION: f64 = 0.10;
/// Share of the kept rows that [`Split::sample`] puts in the test set in the
/// seed notebook's sample mode.
pub const SAMPLE_TEST_FRACTION: f64 = 0.024;

/// A train/(validation)/test split: datasets sharing the original label map,
/// with the row numbers (in the original dataset) of each side.
///
/// ```
/// use encoder_bench::data::{Dataset, LabelMap, Split};
/// let texts = (0..10).map(|i| format!("text {i}")).collect();
/// let ds = Dataset::new("demo", texts, vec![0, 1, 0, 1, 0, 1, 0, 1, 0, 1], LabelMap::numbered(2))?;
/// let s = Split::stratified(&ds, 0.2, 42)?;
/// assert_eq!((s.train.len(), s.test.len()), (8, 2));
/// assert_eq!(s.test.class_counts(), [1, 1]);
/// # Ok::<(), encoder_bench::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Split {
    /// Examples to train on.
    pub train: Dataset,
    /// Examples that choose (epochs, early stopping, settings), carved from
    /// the training side by [`Split::with_validation`]; `None` in the seed's
    /// mode, where the test set chooses.
    pub valid: Option<Dataset>,
    /// Held-out examples to report on.
    pub test: Dataset,
    /// Row numbers of each side in the dataset the split was made from.
    pub rows: SplitRows,
}

/// Row numbers (in the original dataset) of each side of a [`Split`], in
/// ascending order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SplitRows {
    /// Training rows.
    pub train: Vec<usize>,
    /// Validation rows (empty without a validation set).
    pub valid: Vec<usize>,
    /// Test rows.
    pub test: Vec<usize>,
}

/// How much of the training side [`Split::with_validation`] keeps for
/// validation.
///
/// ```
/// use encoder_bench::data::split::ValidationSpec;
/// let v = ValidationSpec::default();
/// assert_eq!((v.fraction, v.min_per_class), (0.1, 2));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ValidationSpec {
    /// Share of each class's training texts, in (0, 1).
    pub fraction: f64,
    /// Floor per class (a class keeps at least one training text whatever
    /// the floor says; a class with a single text gives none).
    pub min_per_class: usize,
}

impl Default for ValidationSpec {
    fn default() -> Self {
        ValidationSpec { fraction: 0.1, min_per_class: 2 }
    }
}

impl Split {
    /// The first `n_train` rows train, the rest test: the seed notebook's
    /// split (balanced on data whose classes are interleaved, like the WOS
    /// sample). `n_train` must be in `1..ds.len()`.
    ///
    /// ```
    /// use encoder_bench::data::{Dataset, LabelMap, Split};
    /// let ds = Dataset::new("demo", vec!["a".into(), "b".into(), "c".into()], vec![0, 1, 0], LabelMap::numbered(2))?;
    /// let s = Split::first_n(&ds, 2)?;
    /// assert_eq!(s.train.texts, ["a", "b"]);
    /// assert_eq!(s.test.texts, ["c"]);
    /// # Ok::<(), encoder_bench::Error>(())
    /// ```
    pub fn first_n(ds: &Dataset, n_train: usize) -> Result<Split> {
        let len = ds.len();
        if n_train == 0 || n_train >= len {
            return Err(Error::invalid(
                "n_train",
                format!("{n_train} leaves an empty side: expected 1..{len} for a dataset of {len} texts"),
            ));
        }
        Ok(Split::from_indices(ds, (0..n_train).collect(), (n_train..len).collect()))
    }

    /// The seed notebook's "sample" mode: keep the first
    /// `round(fraction · len)` rows and use the last `round(test_fraction ·
    /// kept)` of them as the test set. The seed used [`SAMPLE_FRACTION`]
    /// (0.10) and [`SAMPLE_TEST_FRACTION`] (0.024).
    ///
    /// `fraction` must be in (0, 1] (1 keeps every row), `test_fraction` in
    /// (0, 1), and both sides must end up non-empty.
    ///
    /// ```
    /// use encoder_bench::data::{Dataset, LabelMap, Split};
    /// use encoder_bench::data::split::{SAMPLE_FRACTION, SAMPLE_TEST_FRACTION};
    /// let n = 1000;
    /// let ds = Dataset::new("demo", vec!["t".to_string(); n], vec![0; n], LabelMap::numbered(1))?;
    /// let s = Split::sample(&ds, SAMPLE_FRACTION, SAMPLE_TEST_FRACTION)?;
    /// assert_eq!((s.train.len(), s.test.len()), (98, 2));
    /// # Ok::<(), encoder_bench::Error>(())
    /// ```
    pub fn sample(ds: &Dataset, fraction: f64, test_fraction: f64) -> Result<Split> {
        if !(fraction > 0.0 && fraction <= 1.0) {
            return Err(Error::invalid("fraction", format!("{fraction} is not in (0, 1]")));
        }
        check_fraction("test_fraction", test_fraction)?;
        let kept = (fraction * ds.len() as f64).round() as usize;
        let n_test = (test_fraction * kept as f64).round() as usize;
        if n_test == 0 || n_test >= kept {
            return Err(Error::invalid(
                "test_fraction",
                format!(
                    "sampling {fraction} of {} texts keeps {kept}, of which {test_fraction} gives {n_test} test texts \
                     and {} train texts: both sides must be non-empty",
                    ds.len(),
                    kept.saturating_sub(n_test)
                ),
            ));
        }
        let n_train = kept - n_test;
        Ok(Split::from_indices(ds, (0..n_train).collect(), (n_train..kept).collect()))
    }

    /// A stratified split: within each class the indices are shuffled with
    /// ChaCha8 seeded by `seed` (same seed, same split, on every platform)
    /// and `round(test_fraction · count)` of them go to test. A class with at
    /// least two examples always has at least one on each side; a class with
    /// a single example stays in train. Both sides keep the original row
    /// order, so they read like the source file.
    ///
    /// `test_fraction` must be in (0, 1) and both sides must end up non-empty.
    ///
    /// ```
    /// use encoder_bench::data::{Dataset, LabelMap, Split};
    /// let texts = (0..20).map(|i| i.to_string()).collect();
    /// let ds = Dataset::new("demo", texts, (0..20).map(|i| i % 2).collect(), LabelMap::numbered(2))?;
    /// let a = Split::stratified(&ds, 0.3, 7)?;
    /// let b = Split::stratified(&ds, 0.3, 7)?;
    /// assert_eq!(a.test.texts, b.test.texts);
    /// assert_eq!(a.test.class_counts(), [3, 3]);
    /// # Ok::<(), encoder_bench::Error>(())
    /// ```
    pub fn stratified(ds: &Dataset, test_fraction: f64, seed: u64) -> Result<Split> {
        check_fraction("test_fraction", test_fraction)?;
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let (mut train, mut test) = (Vec::new(), Vec::new());
        for mut idx in by_class(ds.targets.iter().copied().enumerate()).into_values() {
            let count = idx.len();
            let n_test = if count < 2 { 0 } else { ((test_fraction * count as f64).round() as usize).clamp(1, count - 1) };
            shuffle(&mut idx, &mut rng);
            test.extend_from_slice(&idx[..n_test]);
            train.extend_from_slice(&idx[n_test..]);
        }
        if train.is_empty() || test.is_empty() {
            return Err(Error::invalid(
                "test_fraction",
                format!(
                    "{test_fraction} of {} texts leaves {} train and {} test texts: both sides must be non-empty",
                    ds.len(),
                    train.len(),
                    test.len()
                ),
            ));
        }
        train.sort_unstable();
        test.sort_unstable();
        Ok(Split::from_indices(ds, train, test))
    }

    /// Stratified k-fold cross-validation: within each class the texts are
    /// shuffled (ChaCha8 seeded by `seed`) and dealt to the folds in turn,
    /// continuing across classes so fold sizes differ by at most one. Split
    /// `i` tests on fold `i` and trains on the others; every text is a test
    /// text exactly once. `k` must be in `2..=ds.len()`.
    ///
    /// ```
    /// use encoder_bench::data::{Dataset, LabelMap, Split};
    /// let texts = (0..20).map(|i| i.to_string()).collect();
    /// let ds = Dataset::new("demo", texts, (0..20).map(|i| i % 2).collect(), LabelMap::numbered(2))?;
    /// let folds = Split::kfold(&ds, 5, 0)?;
    /// assert_eq!(folds.len(), 5);
    /// assert!(folds.iter().all(|f| f.test.class_counts() == [2, 2]));
    /// let mut tested: Vec<usize> = folds.iter().flat_map(|f| f.rows.test.clone()).collect();
    /// tested.sort();
    /// assert_eq!(tested, (0..20).collect::<Vec<_>>());
    /// # Ok::<(), encoder_bench::Error>(())
    /// ```
    pub fn kfold(ds: &Dataset, k: usize, seed: u64) -> Result<Vec<Split>> {
        if k < 2 || k > ds.len() {
            return Err(Error::invalid("folds", format!("{k} folds of {} texts: expected 2..={}", ds.len(), ds.len())));
        }
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut fold_of = vec![0usize; ds.len()];
        let mut dealt = 0usize;
        for mut idx in by_class(ds.targets.iter().copied().enumerate()).into_values() {
            shuffle(&mut idx, &mut rng);
            for i in idx {
                fold_of[i] = dealt % k;
                dealt += 1;
            }
        }
        Ok((0..k)
            .map(|f| {
                let (test, train): (Vec<usize>, Vec<usize>) = (0..ds.len()).partition(|&i| fold_of[i] == f);
                Split::from_indices(ds, train, test)
            })
            .collect())
    }

    /// Carves a stratified validation set out of the training side: within
    /// each class, `max(round(fraction · count), min_per_class)` texts
    /// (seeded shuffle), always leaving at least one to train on; a class
    /// with a single training text gives none. The test side is untouched.
    ///
    /// ```
    /// use encoder_bench::data::{Dataset, LabelMap, Split};
    /// use encoder_bench::data::split::ValidationSpec;
    /// let texts = (0..40).map(|i| i.to_string()).collect();
    /// let ds = Dataset::new("demo", texts, (0..40).map(|i| i % 2).collect(), LabelMap::numbered(2))?;
    /// let s = Split::first_n(&ds, 30)?.with_validation(ValidationSpec::default(), 0)?;
    /// let valid = s.valid.as_ref().unwrap();
    /// assert_eq!(valid.class_counts(), [2, 2]); // 10% of 15 rounds to 2, the floor
    /// assert_eq!((s.train.len(), s.test.len()), (26, 10));
    /// # Ok::<(), encoder_bench::Error>(())
    /// ```
    pub fn with_validation(self, spec: ValidationSpec, seed: u64) -> Result<Split> {
        check_fraction("validation fraction", spec.fraction)?;
        let train_rows = &self.rows.train;
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5641_4c49_4420_5350); // "VALID SP": not the test split's stream
        let (mut train, mut valid) = (Vec::new(), Vec::new());
        for mut idx in by_class(self.train.targets.iter().copied().enumerate()).into_values() {
            let count = idx.len();
            let n_valid =
                if count < 2 { 0 } else { ((spec.fraction * count as f64).round() as usize).max(spec.min_per_class).clamp(1, count - 1) };
            shuffle(&mut idx, &mut rng);
            valid.extend(idx[..n_valid].iter().map(|&i| train_rows[i]));
            train.extend(idx[n_valid..].iter().map(|&i| train_rows[i]));
        }
        if valid.is_empty() {
            return Err(Error::invalid(
                "validation fraction",
                format!("{} training texts leave no validation text: every class has fewer than two", self.train.len()),
            ));
        }
        train.sort_unstable();
        valid.sort_unstable();
        // Subsets of the original rows: rebuild from the training dataset by position.
        let pos: std::collections::HashMap<usize, usize> = train_rows.iter().enumerate().map(|(p, &r)| (r, p)).collect();
        let local = |rows: &[usize]| rows.iter().map(|r| pos[r]).collect::<Vec<_>>();
        Ok(Split {
            train: self.train.subset(&local(&train)),
            valid: Some(self.train.subset(&local(&valid))),
            test: self.test,
            rows: SplitRows { train, valid, test: self.rows.test },
        })
    }

    /// The set that chooses epochs and settings: the validation set, or the
    /// test set in the seed's mode (no validation set).
    pub fn selection(&self) -> &Dataset {
        self.valid.as_ref().unwrap_or(&self.test)
    }

    fn from_indices(ds: &Dataset, train: Vec<usize>, test: Vec<usize>) -> Split {
        Split { train: ds.subset(&train), valid: None, test: ds.subset(&test), rows: SplitRows { train, valid: Vec::new(), test } }
    }
}

/// Indices grouped by class id. A map rather than a Vec indexed by id:
/// ordered by class id, and robust to targets edited by hand past the label map.
fn by_class(targets: impl Iterator<Item = (usize, usize)>) -> BTreeMap<usize, Vec<usize>> {
    let mut m: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for (i, t) in targets {
        m.entry(t).or_default().push(i);
    }
    m
}

fn check_fraction(name: &str, f: f64) -> Result<()> {
    // Written so that NaN fails too.
    if f > 0.0 && f < 1.0 { Ok(()) } else { Err(Error::invalid(name, format!("{f} is not in (0, 1)"))) }
}

/// Fisher–Yates over raw ChaCha8 output. `rand`'s own shuffle may change its
/// algorithm between releases; this keeps a seed's split fixed for good.
fn shuffle(v: &mut [usize], rng: &mut ChaCha8Rng) {
    for i in (1..v.len()).rev() {
        v.swap(i, below(rng, i as u64 + 1) as usize);
    }
}

/// Uniform in `0..n` (n > 0) by rejection (Lemire), free of modulo bias.
fn below(rng: &mut ChaCha8Rng, n: u64) -> u64 {
    let threshold = n.wrapping_neg() % n;
    loop {
        let m = u128::from(rng.next_u64()) * u128::from(n);
        if (m as u64) >= threshold {
            return (m >> 64) as u64;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::LabelMap;

    fn ds(targets: Vec<usize>, classes: usize) -> Dataset {
        let texts = (0..targets.len()).map(|i| format!("t{i}")).collect();
        Dataset::new("test", texts, targets, LabelMap::numbered(classes)).unwrap()
    }

    #[test]
    fn first_n_bounds() {
        let d = ds(vec![0, 1, 0, 1], 2);
        assert!(Split::first_n(&d, 0).is_err());
        assert!(Split::first_n(&d, 4).unwrap_err().to_string().contains("n_train"));
        let s = Split::first_n(&d, 3).unwrap();
        assert_eq!(s.train.texts, ["t0", "t1", "t2"]);
        assert_eq!(s.test.texts, ["t3"]);
        assert_eq!(s.test.labels, d.labels);
    }

    #[test]
    fn sample_takes_head_and_tail_of_head() {
        let d = ds(vec![0; 200], 1);
        let s = Split::sample(&d, 0.5, 0.1).unwrap();
        assert_eq!(s.train.texts.first().map(String::as_str), Some("t0"));
        assert_eq!((s.train.len(), s.test.len()), (90, 10));
        assert_eq!(s.test.texts.last().map(String::as_str), Some("t99"));
        let all = Split::sample(&d, 1.0, 0.25).unwrap();
        assert_eq!((all.train.len(), all.test.len()), (150, 50));
        // 0.024 of 10 rounds to 0 test texts.
        assert!(Split::sample(&ds(vec![0; 100], 1), 0.1, 0.024).is_err());
    }

    #[test]
    fn fractions_are_validated() {
        let d = ds(vec![0, 1, 0, 1], 2);
        for f in [0.0, 1.0, -0.5, 1.5, f64::NAN] {
            assert!(Split::stratified(&d, f, 1).unwrap_err().to_string().contains("test_fraction"), "{f}");
            assert!(Split::sample(&d, 0.5, f).is_err(), "{f}");
        }
        assert!(Split::sample(&d, 0.0, 0.5).unwrap_err().to_string().contains("fraction"));
        assert!(Split::sample(&d, 1.01, 0.5).is_err());
    }

    #[test]
    fn stratified_counts_order_and_seed() {
        let targets: Vec<usize> = (0..100).map(|i| if i % 4 == 0 { 1 } else { 0 }).collect();
        let d = ds(targets, 3);
        let s = Split::stratified(&d, 0.2, 3).unwrap();
        assert_eq!(s.test.class_counts(), [15, 5, 0]);
        assert_eq!(s.train.class_counts(), [60, 20, 0]);
        let idx = |x: &Dataset| x.texts.iter().map(|t| t[1..].parse::<usize>().unwrap()).collect::<Vec<_>>();
        assert!(idx(&s.test).is_sorted() && idx(&s.train).is_sorted());
        let mut all = [idx(&s.train), idx(&s.test)].concat();
        all.sort_unstable();
        assert_eq!(all, (0..100).collect::<Vec<_>>());
        assert_eq!(Split::stratified(&d, 0.2, 3).unwrap().test.texts, s.test.texts);
        assert_ne!(Split::stratified(&d, 0.2, 4).unwrap().test.texts, s.test.texts);
    }

    #[test]
    fn stratified_small_classes() {
        // Two examples at 1%: still one on each side. One example: train only.
        let s = Split::stratified(&ds(vec![0, 0, 1], 2), 0.01, 0).unwrap();
        assert_eq!(s.test.class_counts(), [1, 0]);
        assert_eq!(s.train.class_counts(), [1, 1]);
        assert!(Split::stratified(&ds(vec![0, 1], 2), 0.5, 0).is_err());
    }

    #[test]
    fn kfold_tests_every_text_once_and_stays_stratified() {
        let targets: Vec<usize> = (0..53).map(|i| i % 3).collect();
        let d = ds(targets, 3);
        let folds = Split::kfold(&d, 5, 9).unwrap();
        let mut seen = vec![0; 53];
        for f in &folds {
            for &r in &f.rows.test {
                seen[r] += 1;
            }
            assert_eq!(f.rows.train.len() + f.rows.test.len(), 53);
            assert!(f.rows.train.iter().all(|r| !f.rows.test.contains(r)));
            assert!((10..=11).contains(&f.test.len()), "{}", f.test.len());
            assert!(f.test.class_counts().iter().all(|&c| (3..=4).contains(&c)), "{:?}", f.test.class_counts());
            assert_eq!(f.test.texts, f.rows.test.iter().map(|r| format!("t{r}")).collect::<Vec<_>>());
        }
        assert!(seen.iter().all(|&n| n == 1));
        assert_eq!(Split::kfold(&d, 5, 9).unwrap()[2].rows, folds[2].rows);
        assert_ne!(Split::kfold(&d, 5, 10).unwrap()[2].rows, folds[2].rows);
        assert!(Split::kfold(&d, 1, 0).unwrap_err().to_string().contains("folds"));
        assert!(Split::kfold(&d, 54, 0).is_err());
    }

    #[test]
    fn validation_comes_from_the_training_side_only() {
        let targets: Vec<usize> = (0..100).map(|i| if i % 5 == 0 { 1 } else { 0 }).collect();
        let d = ds(targets, 3);
        let base = Split::first_n(&d, 80).unwrap();
        let s = base.clone().with_validation(ValidationSpec { fraction: 0.25, min_per_class: 2 }, 4).unwrap();
        let v = s.valid.as_ref().unwrap();
        assert_eq!(v.class_counts(), [16, 4, 0]);
        assert_eq!(s.train.class_counts(), [48, 12, 0]);
        assert_eq!(s.rows.test, base.rows.test);
        assert!(s.rows.valid.iter().all(|r| *r < 80 && !s.rows.train.contains(r)));
        assert_eq!(v.texts, s.rows.valid.iter().map(|r| format!("t{r}")).collect::<Vec<_>>());
        assert_eq!(s.train.texts, s.rows.train.iter().map(|r| format!("t{r}")).collect::<Vec<_>>());
        // The floor applies per class; a class always keeps a training text.
        let tiny = Split::first_n(&ds(vec![0, 0, 0, 1, 1, 2, 0], 3), 6).unwrap();
        let t = tiny.with_validation(ValidationSpec { fraction: 0.01, min_per_class: 5 }, 0).unwrap();
        assert_eq!(t.valid.unwrap().class_counts(), [2, 1, 0]);
        assert_eq!(t.train.class_counts(), [1, 1, 1]);
        assert!(Split::first_n(&ds(vec![0, 1, 2], 3), 2).unwrap().with_validation(ValidationSpec::default(), 0).is_err());
        assert!(base.with_validation(ValidationSpec { fraction: 1.0, min_per_class: 0 }, 0).is_err());
    }

    #[test]
    fn shuffle_is_a_fixed_permutation() {
        let mut v: Vec<usize> = (0..10).collect();
        shuffle(&mut v, &mut ChaCha8Rng::seed_from_u64(0));
        let mut sorted = v.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..10).collect::<Vec<_>>());
        assert_ne!(v, sorted);
        // Pinned: if this changes, every published seed gives a different split.
        assert_eq!(v, [6, 1, 8, 3, 2, 9, 0, 5, 4, 7]);
        let mut w: Vec<usize> = (0..10).collect();
        shuffle(&mut w, &mut ChaCha8Rng::seed_from_u64(0));
        assert_eq!(v, w);
        assert!((0..1000).all(|_| below(&mut ChaCha8Rng::seed_from_u64(5), 7) < 7));
    }
}
