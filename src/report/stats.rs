//! Statistics for comparing runs and models honestly: a mean with its
//! Student-t interval over seeds ([`Summary`]), a paired bootstrap interval
//! for the difference between two models on the same test texts
//! ([`paired_bootstrap`]), McNemar's exact test on their right/wrong answers
//! ([`McNemar`]), and the crate's one tie rule for "best" ([`best_index`]).
//!
//! Which to use: several seeds of one configuration → [`Summary`]; two models
//! scored on the same test texts → [`paired_bootstrap`] for how large the
//! difference is, [`McNemar`] for whether it could be chance.
//!
//! ```
//! use encoder_bench::report::stats::{McNemar, Summary, paired_bootstrap};
//! let s = Summary::of(&[0.812, 0.809, 0.816, 0.810, 0.813]).unwrap();
//! assert!(s.ci_low.unwrap() < s.mean && s.mean < s.ci_high.unwrap());
//!
//! let a = [true, true, true, false, true, true, false, true];
//! let b = [true, false, true, false, false, true, false, true];
//! let m = McNemar::from_correct(&a, &b)?;
//! assert_eq!((m.a_only, m.b_only), (2, 0));
//!
//! let score = |v: &[bool]| v.iter().map(|&r| f64::from(u8::from(r))).collect::<Vec<_>>();
//! let d = paired_bootstrap(&score(&a), &score(&b), 1000, 7, 0.95)?;
//! assert_eq!(d.diff, 0.25);
//! # Ok::<(), encoder_bench::Error>(())
//! ```
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use statrs::distribution::{Binomial, ContinuousCDF, DiscreteCDF, StudentsT};

use crate::error::{Error, Result};

/// The confidence level used when none is given.
pub const DEFAULT_LEVEL: f64 = 0.95;

/// Mean, sample standard deviation and two-sided Student-t confidence
/// interval of a few measurements (e.g. test accuracy over seeds).
///
/// The interval is `mean ± t·sd/√n` with `t` the `(1 + level)/2` quantile of
/// Student's t with `n − 1` degrees of freedom. With one measurement there is
/// no spread to estimate, so `sd` and the interval are `None` rather than NaN.
///
/// ```
/// use encoder_bench::report::stats::Summary;
/// let s = Summary::of(&[0.81, 0.84]).unwrap();
/// assert_eq!(s.n, 2);
/// assert!((s.mean - 0.825).abs() < 1e-12);
/// // Two seeds: t(0.975, 1) = 12.706…, so the interval is wide.
/// assert!((s.ci_high.unwrap() - 1.01559).abs() < 1e-5);
///
/// let one = Summary::of(&[0.8]).unwrap();
/// assert_eq!((one.sd, one.ci_low, one.ci_high), (None, None, None));
/// assert!(Summary::of(&[]).is_none());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Number of measurements.
    pub n: usize,
    /// Arithmetic mean.
    pub mean: f64,
    /// Sample standard deviation (divides by `n − 1`); `None` when `n = 1`.
    pub sd: Option<f64>,
    /// Lower end of the interval; `None` when `n = 1`.
    pub ci_low: Option<f64>,
    /// Upper end of the interval; `None` when `n = 1`.
    pub ci_high: Option<f64>,
    /// Confidence level of the interval, in (0, 1).
    pub level: f64,
}

impl Summary {
    /// The summary with a 95 % interval, or `None` when `xs` is empty or holds
    /// a NaN or infinity (a diverged run has no meaningful mean; use
    /// [`Summary::with_level`] to learn which value was at fault).
    ///
    /// ```
    /// use encoder_bench::report::stats::Summary;
    /// assert_eq!(Summary::of(&[0.5, 0.5, 0.5]).unwrap().ci_low, Some(0.5));
    /// assert!(Summary::of(&[0.5, f64::NAN]).is_none());
    /// ```
    pub fn of(xs: &[f64]) -> Option<Summary> {
        Summary::with_level(xs, DEFAULT_LEVEL).ok()
    }

    /// The summary with an interval at `level` (e.g. 0.9, 0.95, 0.99).
    ///
    /// Errors when `xs` is empty, holds a non-finite value, or `level` is not
    /// strictly between 0 and 1.
    ///
    /// ```
    /// use encoder_bench::report::stats::Summary;
    /// let xs = [0.8123, 0.8091, 0.8156, 0.8102, 0.8134];
    /// let s90 = Summary::with_level(&xs, 0.90)?;
    /// let s99 = Summary::with_level(&xs, 0.99)?;
    /// assert!(s99.half_width().unwrap() > s90.half_width().unwrap());
    /// assert!(Summary::with_level(&xs, 1.0).is_err());
    /// # Ok::<(), encoder_bench::Error>(())
    /// ```
    pub fn with_level(xs: &[f64], level: f64) -> Result<Summary> {
        check_level(level)?;
        if xs.is_empty() {
            return Err(Error::invalid("xs", "no values to summarise"));
        }
        check_finite("xs", xs)?;
        let n = xs.len();
        let nf = n as f64;
        // Two passes with the residual-sum correction: a one-pass sum of
        // squares cancels catastrophically when the values share a large
        // offset, and the residual sum also corrects the mean's rounding.
        let rough = xs.iter().sum::<f64>() / nf;
        let resid: f64 = xs.iter().map(|x| x - rough).sum();
        let mean = rough + resid / nf;
        if n == 1 {
            return Ok(Summary { n, mean, sd: None, ci_low: None, ci_high: None, level });
        }
        let ss: f64 = xs.iter().map(|x| (x - rough) * (x - rough)).sum::<f64>() - resid * resid / nf;
        let sd = (ss.max(0.0) / (nf - 1.0)).sqrt();
        let mut s = Summary { n, mean, sd: Some(sd), ci_low: None, ci_high: None, level };
        let half = s.half_width().expect("n > 1 has a spread");
        (s.ci_low, s.ci_high) = (Some(mean - half), Some(mean + half));
        Ok(s)
    }

    /// Half the interval's width (`t·sd/√n`), for "mean ± h" displays;
    /// `None` when `n = 1`.
    ///
    /// ```
    /// use encoder_bench::report::stats::Summary;
    /// let s = Summary::of(&[1.0, 2.0, 3.0]).unwrap();
    /// let h = s.half_width().unwrap();
    /// assert!((s.ci_high.unwrap() - s.mean - h).abs() < 1e-12);
    /// ```
    pub fn half_width(&self) -> Option<f64> {
        // Recomputed rather than `ci_high − mean`, which cancels when the
        // mean is large next to the spread.
        let nf = self.n as f64;
        self.sd.filter(|_| self.n > 1).map(|sd| t_quantile((1.0 + self.level) / 2.0, nf - 1.0) * sd / nf.sqrt())
    }
}

/// The `p` quantile of Student's t with `df` degrees of freedom.
fn t_quantile(p: f64, df: f64) -> f64 {
    StudentsT::new(0.0, 1.0, df).expect("df >= 1 is a valid Student-t").inverse_cdf(p)
}

fn check_level(level: f64) -> Result<()> {
    if level > 0.0 && level < 1.0 { Ok(()) } else { Err(Error::invalid("level", format!("{level} is not strictly between 0 and 1"))) }
}

fn check_finite(name: &str, xs: &[f64]) -> Result<()> {
    match xs.iter().position(|x| !x.is_finite()) {
        Some(i) => Err(Error::invalid(name, format!("value {} at index {i} is not finite", xs[i]))),
        None => Ok(()),
    }
}

/// A percentile bootstrap interval for `mean(a) − mean(b)` over paired
/// per-item scores, as returned by [`paired_bootstrap`].
///
/// ```
/// use encoder_bench::report::stats::paired_bootstrap;
/// let a = [1.0, 1.0, 0.0, 1.0];
/// let b = [1.0, 0.0, 0.0, 1.0];
/// let iv = paired_bootstrap(&a, &b, 2000, 1, 0.95)?;
/// assert_eq!((iv.n, iv.resamples, iv.diff), (4, 2000, 0.25));
/// assert!(iv.low <= iv.diff && iv.diff <= iv.high);
/// # Ok::<(), encoder_bench::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BootstrapInterval {
    /// Observed difference `mean(a) − mean(b)` on all items.
    pub diff: f64,
    /// Lower percentile of the resampled differences.
    pub low: f64,
    /// Upper percentile of the resampled differences.
    pub high: f64,
    /// Number of bootstrap resamples drawn.
    pub resamples: usize,
    /// Confidence level, in (0, 1).
    pub level: f64,
    /// Number of paired items (test texts).
    pub n: usize,
}

impl BootstrapInterval {
    /// Whether zero lies outside `[low, high]`, i.e. the data favour one
    /// model at this level. An interval touching zero does not exclude it.
    ///
    /// ```
    /// use encoder_bench::report::stats::paired_bootstrap;
    /// let same = paired_bootstrap(&[1.0, 0.0], &[1.0, 0.0], 100, 0, 0.95)?;
    /// assert!(!same.excludes_zero());
    /// let better = paired_bootstrap(&[1.0, 1.0], &[0.0, 0.0], 100, 0, 0.95)?;
    /// assert!(better.excludes_zero());
    /// # Ok::<(), encoder_bench::Error>(())
    /// ```
    pub fn excludes_zero(&self) -> bool {
        self.low > 0.0 || self.high < 0.0
    }
}

/// Paired bootstrap interval for the difference in mean per-item score of
/// model A over model B.
///
/// `a[i]` and `b[i]` are the scores of the same test text `i` under A and B:
/// 1/0 correctness, or correctness averaged over several runs. Each of the
/// `resamples` draws `n` text indices with replacement and computes
/// `mean(a) − mean(b)` over them; the interval is the `(1 − level)/2` and
/// `(1 + level)/2` percentiles of those differences (linear interpolation
/// between order statistics, numpy's default). Resampling texts, not scores
/// of each model separately, keeps the pairing, so texts that both models
/// find hard do not widen the interval.
///
/// Deterministic for a given `seed` on every platform and thread count:
/// resample `r` uses ChaCha8 seeded with `seed` on stream `r`, and indices are
/// drawn with Lemire's unbiased multiply-and-reject method on raw `u64`s, not
/// through `rand`'s distributions, whose algorithms may change between
/// releases.
///
/// Errors when the lengths differ, the input is empty, a score is not finite,
/// `resamples` is 0 or `level` is not strictly between 0 and 1.
///
/// ```
/// use encoder_bench::report::stats::paired_bootstrap;
/// // A is right on texts 0..70 of 100, B on texts 0..60: A is 10 points better.
/// let a: Vec<f64> = (0..100).map(|i| f64::from(u8::from(i < 70))).collect();
/// let b: Vec<f64> = (0..100).map(|i| f64::from(u8::from(i < 60))).collect();
/// let iv = paired_bootstrap(&a, &b, 2000, 42, 0.95)?;
/// assert!((iv.diff - 0.1).abs() < 1e-12);
/// assert!(iv.excludes_zero() && iv.low > 0.03 && iv.high < 0.17);
/// assert_eq!(iv, paired_bootstrap(&a, &b, 2000, 42, 0.95)?);
/// # Ok::<(), encoder_bench::Error>(())
/// ```
pub fn paired_bootstrap(a: &[f64], b: &[f64], resamples: usize, seed: u64, level: f64) -> Result<BootstrapInterval> {
    if a.len() != b.len() {
        return Err(Error::invalid("b", format!("{} scores for model B, {} for model A; they must be paired", b.len(), a.len())));
    }
    if a.is_empty() {
        return Err(Error::invalid("a", "no scores to compare"));
    }
    if resamples == 0 {
        return Err(Error::invalid("resamples", "must be at least 1"));
    }
    check_level(level)?;
    check_finite("a", a)?;
    check_finite("b", b)?;
    let n = a.len();
    let nf = n as f64;
    let diff = a.iter().sum::<f64>() / nf - b.iter().sum::<f64>() / nf;
    let d: Vec<f64> = a.iter().zip(b).map(|(x, y)| x - y).collect();
    let mut stats: Vec<f64> = (0..resamples)
        .into_par_iter()
        .map(|r| {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            rng.set_stream(r as u64);
            (0..n).map(|_| d[uniform_index(&mut rng, n as u64) as usize]).sum::<f64>() / nf
        })
        .collect();
    stats.sort_unstable_by(f64::total_cmp);
    let low = percentile(&stats, (1.0 - level) / 2.0);
    let high = percentile(&stats, (1.0 + level) / 2.0);
    Ok(BootstrapInterval { diff, low, high, resamples, level, n })
}

/// A uniform integer in `0..n` (`n > 0`) by Lemire's method: the high word of
/// `x·n` is uniform once the low word is outside the `2^64 mod n` values that
/// would over-represent some results.
fn uniform_index(rng: &mut impl RngCore, n: u64) -> u64 {
    let mut m = u128::from(rng.next_u64()) * u128::from(n);
    if (m as u64) < n {
        let threshold = n.wrapping_neg() % n;
        while (m as u64) < threshold {
            m = u128::from(rng.next_u64()) * u128::from(n);
        }
    }
    (m >> 64) as u64
}

/// The `q` quantile of sorted `xs` (non-empty), interpolating linearly
/// between the order statistics at positions `q·(len − 1)`.
fn percentile(sorted: &[f64], q: f64) -> f64 {
    let h = q * (sorted.len() - 1) as f64;
    let lo = h.floor() as usize;
    let hi = h.ceil() as usize;
    let (x0, x1) = (sorted[lo], sorted[hi]);
    // x0 + w·(x1 − x0) returns x0 exactly when the two are equal, so a
    // constant statistic gives an interval of exactly that constant.
    x0 + (h - lo as f64) * (x1 - x0)
}

/// McNemar's exact test of two models' right/wrong answers on the same test
/// texts: a 2×2 table of agreement and the two-sided exact p-value of
/// [`mcnemar_exact_p`] on the discordant counts.
///
/// ```
/// use encoder_bench::report::stats::McNemar;
/// let a = [true, true, false, true, false];
/// let b = [true, false, false, false, true];
/// let m = McNemar::from_correct(&a, &b)?;
/// assert_eq!((m.both_right, m.a_only, m.b_only, m.both_wrong), (1, 2, 1, 1));
/// assert_eq!(m.p_value, 1.0);
/// assert_eq!(m.n(), 5);
/// # Ok::<(), encoder_bench::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct McNemar {
    /// Texts both models got right.
    pub both_right: usize,
    /// Texts A got right and B got wrong.
    pub a_only: usize,
    /// Texts B got right and A got wrong.
    pub b_only: usize,
    /// Texts both models got wrong.
    pub both_wrong: usize,
    /// Two-sided exact p-value, `mcnemar_exact_p(a_only, b_only)`.
    pub p_value: f64,
}

impl McNemar {
    /// Counts the table from per-text correctness of model A (`a[i]`) and
    /// model B (`b[i]`) and computes the exact p-value.
    ///
    /// Errors when the lengths differ or the input is empty.
    ///
    /// ```
    /// use encoder_bench::report::stats::McNemar;
    /// // A fixes 10 of B's errors and breaks none.
    /// let a = vec![true; 10];
    /// let b = vec![false; 10];
    /// let m = McNemar::from_correct(&a, &b)?;
    /// assert!((m.p_value - 2.0 / 1024.0).abs() < 1e-15);
    /// assert!(McNemar::from_correct(&a, &b[..9]).is_err());
    /// # Ok::<(), encoder_bench::Error>(())
    /// ```
    pub fn from_correct(a: &[bool], b: &[bool]) -> Result<McNemar> {
        if a.len() != b.len() {
            return Err(Error::invalid("b", format!("{} answers for model B, {} for model A; they must be paired", b.len(), a.len())));
        }
        if a.is_empty() {
            return Err(Error::invalid("a", "no answers to compare"));
        }
        let mut t = [[0usize; 2]; 2];
        for (&x, &y) in a.iter().zip(b) {
            t[usize::from(x)][usize::from(y)] += 1;
        }
        let (both_right, a_only, b_only, both_wrong) = (t[1][1], t[1][0], t[0][1], t[0][0]);
        Ok(McNemar { both_right, a_only, b_only, both_wrong, p_value: mcnemar_exact_p(a_only, b_only) })
    }

    /// Number of texts in the table.
    ///
    /// ```
    /// use encoder_bench::report::stats::McNemar;
    /// assert_eq!(McNemar::from_correct(&[true, false], &[false, false])?.n(), 2);
    /// # Ok::<(), encoder_bench::Error>(())
    /// ```
    pub fn n(&self) -> usize {
        self.both_right + self.a_only + self.b_only + self.both_wrong
    }
}

/// Two-sided exact McNemar p-value for `b` texts only A got right and `c`
/// texts only B got right: `min(1, 2·P(X ≤ min(b, c)))` with
/// `X ~ Binomial(b + c, 1/2)`; 1 when there are no discordant texts.
///
/// The binomial tail comes from the regularized incomplete beta function
/// (statrs), so it stays accurate where summing factorials would overflow or
/// lose precision: within 1e-9 relative of the exact value for every table in
/// `tests/stats.rs`, up to `b + c` = 200,800. It is not bit-exact (10 vs 0
/// gives 0.001953124999999997, not 2/1024), so compare with a tolerance.
///
/// ```
/// use encoder_bench::report::stats::mcnemar_exact_p;
/// assert_eq!(mcnemar_exact_p(0, 0), 1.0);
/// assert!((mcnemar_exact_p(10, 0) - 2.0 / 1024.0).abs() < 1e-15);
/// assert!((mcnemar_exact_p(3, 7) - 0.34375).abs() < 1e-12);
/// assert!(mcnemar_exact_p(30_000, 30_500) < 0.05);
/// ```
pub fn mcnemar_exact_p(b: usize, c: usize) -> f64 {
    let n = (b + c) as u64;
    if n == 0 {
        return 1.0;
    }
    let k = b.min(c) as u64;
    let tail = Binomial::new(0.5, n).expect("p = 1/2 is a valid binomial").cdf(k);
    (2.0 * tail).min(1.0)
}

/// Index of the highest value: **the crate's one tie rule for "best"**.
///
/// Ties go to the earliest index, so the winner is the first in the order the
/// caller listed (e.g. the earlier run, the smaller batch size), and the
/// choice does not depend on sort stability or iterator direction. NaN never
/// wins; `None` when `values` is empty or all NaN. Every "best" the crate
/// reports should go through this function so that tables, charts and
/// summaries agree.
///
/// ```
/// use encoder_bench::report::stats::best_index;
/// assert_eq!(best_index(&[0.7, 0.9, 0.9, 0.8]), Some(1));
/// assert_eq!(best_index(&[f64::NAN, 0.1]), Some(1));
/// assert_eq!(best_index(&[f64::NAN]), None);
/// assert_eq!(best_index(&[]), None);
/// ```
pub fn best_index(values: &[f64]) -> Option<usize> {
    let mut best: Option<usize> = None;
    for (i, &v) in values.iter().enumerate() {
        // Strictly greater: an equal later value never displaces the earlier.
        if !v.is_nan() && best.is_none_or(|j| v > values[j]) {
            best = Some(i);
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bits(v: impl IntoIterator<Item = bool>) -> Vec<f64> {
        v.into_iter().map(|x| f64::from(u8::from(x))).collect()
    }

    #[test]
    fn identical_models_give_exactly_zero() {
        let a = bits((0..500).map(|i| i % 7 < 4));
        let iv = paired_bootstrap(&a, &a, 2000, 3, 0.95).unwrap();
        assert_eq!((iv.diff, iv.low, iv.high), (0.0, 0.0, 0.0));
        assert!(!iv.excludes_zero());
    }

    #[test]
    fn constant_difference_gives_a_point_interval() {
        // Dyadic values, so every a[i] - b[i] is exactly 0.25.
        let b: Vec<f64> = (0..300).map(|i| f64::from(i % 5) * 0.125).collect();
        let a: Vec<f64> = b.iter().map(|x| x + 0.25).collect();
        let iv = paired_bootstrap(&a, &b, 2000, 11, 0.9).unwrap();
        assert_eq!((iv.diff, iv.low, iv.high), (0.25, 0.25, 0.25));
        assert!(iv.excludes_zero());
        let iv = paired_bootstrap(&b, &a, 2000, 11, 0.9).unwrap();
        assert_eq!((iv.low, iv.high), (-0.25, -0.25));
        assert!(iv.excludes_zero());
    }

    #[test]
    fn bernoulli_against_zero_matches_the_normal_approximation() {
        // mean(a*) is Binomial(n, p)/n, so the 95 % percentile interval must be
        // close to p ± 1.96·σ, σ = √(p(1−p)/n). With 10,000 resamples the
        // Monte Carlo error of a 2.5 % quantile is about 0.03σ, the lattice
        // step 1/n is 0.07σ and the skew shifts the ends by about 0.01σ, so
        // 0.15σ can only be missed by a resampler that is wrong.
        let n = 1000;
        let p = 0.3;
        let a = bits((0..n).map(|i| i % 10 < 3));
        let b = vec![0.0; n];
        let iv = paired_bootstrap(&a, &b, 10_000, 2024, 0.95).unwrap();
        let sigma = (p * (1.0 - p) / n as f64).sqrt();
        assert!((iv.diff - p).abs() < 1e-12);
        assert!((iv.low - (p - 1.959964 * sigma)).abs() < 0.15 * sigma, "low {} vs {}", iv.low, p - 1.96 * sigma);
        assert!((iv.high - (p + 1.959964 * sigma)).abs() < 0.15 * sigma, "high {} vs {}", iv.high, p + 1.96 * sigma);
    }

    #[test]
    fn pairing_removes_shared_difficulty() {
        // Both models fail the same hard half; A also gets 20 of B's wrong
        // easy texts right. Unpaired, the spread of the hard/easy mix would
        // dominate; paired, the interval covers only the 20 discordant texts.
        let n = 400;
        let b = bits((0..n).map(|i| i % 2 == 0 && i % 20 != 0));
        let a = bits((0..n).map(|i| i % 2 == 0));
        let iv = paired_bootstrap(&a, &b, 4000, 5, 0.95).unwrap();
        assert!((iv.diff - 0.05).abs() < 1e-12);
        // d is Bernoulli(0.05) per text: σ = √(0.05·0.95/400) ≈ 0.0109.
        assert!(iv.low > 0.025 && iv.low < 0.035, "{iv:?}");
        assert!(iv.high > 0.065 && iv.high < 0.075, "{iv:?}");
    }

    #[test]
    fn seeds_decide_the_resamples() {
        let a = bits((0..200).map(|i| i % 3 == 0));
        let b = bits((0..200).map(|i| i % 4 == 0));
        let one = paired_bootstrap(&a, &b, 500, 1, 0.95).unwrap();
        assert_eq!(one, paired_bootstrap(&a, &b, 500, 1, 0.95).unwrap());
        let two = paired_bootstrap(&a, &b, 500, 2, 0.95).unwrap();
        assert_eq!(one.diff, two.diff);
        assert!((one.low, one.high) != (two.low, two.high), "{one:?} {two:?}");
    }

    #[test]
    fn resampling_stream_is_pinned() {
        // Pins the ChaCha8 stream, the index drawing and the percentile rule:
        // a change to any of them (or to rand_chacha's output) changes the
        // intervals that earlier reports printed for the same seed.
        // Scores with many distinct differences, so nearly every resample
        // has its own statistic and no reordering of draws goes unnoticed.
        let a: Vec<f64> = (0..60).map(|i| f64::from(i * 37 % 101) / 101.0).collect();
        let b: Vec<f64> = (0..60).map(|i| f64::from(i * 53 % 97) / 97.0).collect();
        let iv = paired_bootstrap(&a, &b, 1000, 17, 0.9).unwrap();
        assert_eq!((iv.low, iv.high), (-0.06264877003164235, 0.10417143002960094));
    }

    #[test]
    fn bootstrap_rejects_bad_input() {
        let x = [1.0, 0.0];
        let err = |r: Result<BootstrapInterval>| match r {
            Err(Error::Invalid { name, .. }) => name,
            other => panic!("expected an invalid-argument error, got {other:?}"),
        };
        assert_eq!(err(paired_bootstrap(&x, &x[..1], 10, 0, 0.95)), "b");
        assert_eq!(err(paired_bootstrap(&[], &[], 10, 0, 0.95)), "a");
        assert_eq!(err(paired_bootstrap(&x, &x, 0, 0, 0.95)), "resamples");
        for level in [0.0, 1.0, -0.5, 95.0, f64::NAN] {
            assert_eq!(err(paired_bootstrap(&x, &x, 10, 0, level)), "level");
        }
        assert_eq!(err(paired_bootstrap(&[1.0, f64::NAN], &x, 10, 0, 0.95)), "a");
        assert_eq!(err(paired_bootstrap(&x, &[f64::INFINITY, 0.0], 10, 0, 0.95)), "b");
    }

    /// Replays fixed words, to drive the rejection branch deterministically.
    struct Words(Vec<u64>);
    impl RngCore for Words {
        fn next_u32(&mut self) -> u32 {
            self.next_u64() as u32
        }
        fn next_u64(&mut self) -> u64 {
            self.0.remove(0)
        }
        fn fill_bytes(&mut self, _: &mut [u8]) {
            unimplemented!()
        }
    }

    #[test]
    fn lemire_rejects_the_overrepresented_words() {
        // 2^64 mod 3 = 1: only x = 0 (low word 0) must be redrawn.
        let mut w = Words(vec![0, u64::MAX, 7]);
        assert_eq!(uniform_index(&mut w, 3), 2);
        assert_eq!(w.0, vec![7], "exactly one redraw");
        // Low word 3·(2^63) mod 2^64 = 2^63 ≥ 1: accepted, high word 1.
        let mut w = Words(vec![1 << 63]);
        assert_eq!(uniform_index(&mut w, 3), 1);
        // n = 1 never rejects and always gives 0.
        assert_eq!(uniform_index(&mut Words(vec![0]), 1), 0);
    }

    #[test]
    fn lemire_indices_are_uniform_and_in_range() {
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let mut counts = [0usize; 3];
        for _ in 0..300_000 {
            counts[uniform_index(&mut rng, 3) as usize] += 1;
        }
        // σ of each count ≈ 258; ±1000 is about 4σ.
        assert!(counts.iter().all(|&c| c.abs_diff(100_000) < 1000), "{counts:?}");
        // Just above 2^63 almost half the words are rejected; results stay in range.
        let n = (1u64 << 63) + 1;
        let upper = (0..1000).filter(|_| uniform_index(&mut rng, n) >= 1 << 62).count();
        assert!((400..600).contains(&upper), "{upper}");
    }

    #[test]
    fn percentile_interpolates_between_order_statistics() {
        let xs = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(percentile(&xs, 0.0), 1.0);
        assert_eq!(percentile(&xs, 1.0), 4.0);
        assert_eq!(percentile(&xs, 0.5), 2.5);
        assert!((percentile(&xs, 0.1) - 1.3).abs() < 1e-12);
        assert_eq!(percentile(&[5.0], 0.025), 5.0);
    }

    #[test]
    fn summary_edge_cases() {
        assert!(Summary::of(&[]).is_none());
        assert!(Summary::of(&[1.0, f64::INFINITY]).is_none());
        assert!(matches!(Summary::with_level(&[1.0, f64::NAN], 0.95), Err(Error::Invalid { name, .. }) if name == "xs"));
        assert!(matches!(Summary::with_level(&[1.0, 2.0], 0.0), Err(Error::Invalid { name, .. }) if name == "level"));
        let one = Summary::with_level(&[0.7], 0.9).unwrap();
        assert_eq!(one, Summary { n: 1, mean: 0.7, sd: None, ci_low: None, ci_high: None, level: 0.9 });
        assert_eq!(one.half_width(), None);
        let s = Summary::of(&[2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0]).unwrap();
        assert_eq!(s.mean, 5.0);
        assert!((s.sd.unwrap() - (32.0f64 / 7.0).sqrt()).abs() < 1e-15);
        // t(0.975, 7) = 2.3646242515927849 (scipy).
        assert!((s.half_width().unwrap() - 2.364_624_251_592_785 * s.sd.unwrap() / 8f64.sqrt()).abs() < 1e-9);
    }

    #[test]
    fn mcnemar_table_and_p() {
        let a = [true, true, true, false, false, true];
        let b = [true, false, false, true, false, true];
        let m = McNemar::from_correct(&a, &b).unwrap();
        assert_eq!((m.both_right, m.a_only, m.b_only, m.both_wrong), (2, 2, 1, 1));
        assert_eq!(m.p_value, 1.0);
        let swapped = McNemar::from_correct(&b, &a).unwrap();
        assert_eq!((swapped.a_only, swapped.b_only, swapped.p_value), (1, 2, 1.0));
        assert!(McNemar::from_correct(&[], &[]).is_err());
        assert!(McNemar::from_correct(&a, &b[..5]).is_err());
        // P(X ≤ 1 | n = 12) = 13/4096, two-sided 26/4096.
        assert!((mcnemar_exact_p(1, 11) - 26.0 / 4096.0).abs() < 1e-15);
        assert_eq!(mcnemar_exact_p(11, 1), mcnemar_exact_p(1, 11));
        assert_eq!(mcnemar_exact_p(6, 6), 1.0);
        // Far in the tail the p-value underflows cleanly to 0, never NaN.
        assert_eq!(mcnemar_exact_p(100_000, 0), 0.0);
    }

    #[test]
    fn best_index_is_first_of_the_highest_and_ignores_nan() {
        assert_eq!(best_index(&[0.5, 0.9, 0.9, 0.1]), Some(1));
        assert_eq!(best_index(&[0.9, 0.5, 0.9]), Some(0));
        assert_eq!(best_index(&[f64::NAN, 0.2, 0.2]), Some(1));
        assert_eq!(best_index(&[0.1, f64::NAN, 0.3]), Some(2));
        assert_eq!(best_index(&[0.3, f64::NAN, 0.1]), Some(0));
        assert_eq!(best_index(&[f64::NEG_INFINITY, f64::NAN]), Some(0));
        assert_eq!(best_index(&[f64::NAN, f64::NAN]), None);
        assert_eq!(best_index(&[]), None);
        // -0 == +0: a tie, so the earlier wins whichever sign it has.
        assert_eq!(best_index(&[-0.0, 0.0]), Some(0));
        assert_eq!(best_index(&[0.0, -0.0]), Some(0));
        assert_eq!(best_index(&[1.0, f64::INFINITY, f64::INFINITY]), Some(1));
    }
}
