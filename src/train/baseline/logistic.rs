//! Multinomial logistic regression as scikit-learn's `LogisticRegression()`
//! fits it by default (`solver="lbfgs"`, `C=1`, L2 penalty), on sparse
//! features, in `f64` on the CPU.
//!
//! The objective is scikit-learn's mean form,
//! `(1/n) Σᵢ −log softmax(xᵢW + b)[yᵢ] + ‖W‖² / (2Cn)`, the same minimiser
//! as `½‖W‖² + C Σᵢ log-loss` and the scale at which its `tol` is measured.
//! `W` has one column per class (the full softmax; the L2 penalty makes it
//! unique) and the intercepts `b` are not penalised. With two classes,
//! scikit-learn fits the binomial model instead, which equals a softmax whose
//! first column is fixed at zero; that is what is fitted here too, so that
//! `C` means the same (a free two-column softmax would halve the penalty).
//! The classes are those present in the training targets, as scikit-learn's
//! `classes_`: a class with no example has no finite optimum.
//!
//! Memory: L-BFGS keeps `2 · history` vectors of the parameters' size, plus
//! about eight more in flight, so `(2·history + 8) × n_features × classes × 8`
//! bytes in all: 1.6 GB at 10⁶ features and 7 classes with the default
//! history of 10 (SciPy's L-BFGS-B under scikit-learn keeps the same).
//!
//! CPU only: `f64` keeps the solver's stopping rule comparable with SciPy's,
//! and MPS has no `f64`. The sparse products run on libtorch's CSR kernels,
//! which CUDA also has, should a GPU variant (in `f32`) be wanted.
use super::lbfgs::{self, Lbfgs, Stop};
use super::sparse::CsrMatrix;
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

/// Settings of [`LogisticRegression::fit`]; the defaults are scikit-learn's
/// `LogisticRegression(max_iter=2000)`.
///
/// ```
/// use encoder_bench::train::baseline::LogisticConfig;
/// let c = LogisticConfig::default();
/// assert_eq!((c.c, c.tol, c.max_iter, c.fit_intercept), (1.0, 1e-4, 2000, true));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LogisticConfig {
    /// Inverse regularisation strength (scikit-learn's `C`): larger fits the
    /// training data more closely.
    pub c: f64,
    /// Stop when every component of the mean-form gradient is at most this.
    pub tol: f64,
    /// Most L-BFGS iterations.
    pub max_iter: usize,
    /// How many past steps L-BFGS remembers (SciPy's `maxcor`).
    pub history: usize,
    /// Fit an unpenalised intercept per class.
    pub fit_intercept: bool,
}

impl Default for LogisticConfig {
    fn default() -> Self {
        LogisticConfig { c: 1.0, tol: 1e-4, max_iter: 2000, history: 10, fit_intercept: true }
    }
}

impl LogisticConfig {
    /// Fails with [`Error::Invalid`] naming the first setting out of range.
    pub fn validate(&self) -> Result<()> {
        if !(self.c > 0.0 && self.c.is_finite()) {
            return Err(Error::invalid("c", format!("{}: expected a finite value > 0", self.c)));
        }
        if !(self.tol >= 0.0 && self.tol.is_finite()) {
            return Err(Error::invalid("tol", format!("{}: expected a finite value >= 0", self.tol)));
        }
        if self.history == 0 {
            return Err(Error::invalid("history", "expected at least 1"));
        }
        Ok(())
    }
}

/// How a fit went: the solver's numbers, for the run record.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct FitReport {
    /// L-BFGS iterations (scikit-learn's `n_iter_`).
    pub n_iter: usize,
    /// Objective evaluations, line searches included.
    pub n_evals: usize,
    /// The mean-form objective at the solution.
    pub loss: f64,
    /// Largest absolute gradient component at the solution.
    pub grad_max: f64,
    /// Why the solver stopped.
    pub stop: Stop,
    /// Whether that counts as convergence (else scikit-learn would warn).
    pub converged: bool,
}

/// A fitted multinomial logistic regression.
///
/// ```
/// use encoder_bench::train::baseline::{CsrMatrix, LogisticConfig, LogisticRegression};
/// // Feature 0 marks class 3, feature 1 class 5.
/// let x = CsrMatrix::new(4, 2, vec![0, 1, 2, 3, 4], vec![0, 0, 1, 1], vec![1.0; 4])?;
/// let m = LogisticRegression::fit(&x, &[3, 3, 5, 5], &LogisticConfig::default())?;
/// assert_eq!(m.classes(), [3, 5]);
/// assert_eq!(m.predict(&x)?, [3, 3, 5, 5]);
/// assert!(m.report().converged);
/// # Ok::<(), encoder_bench::Error>(())
/// ```
#[derive(Debug)]
pub struct LogisticRegression {
    classes: Vec<usize>,
    /// `n_features × n_free`: one column per class, or one for two classes.
    coef: Tensor,
    /// `n_free` intercepts (zeros without `fit_intercept`).
    intercept: Tensor,
    report: FitReport,
}

impl LogisticRegression {
    /// Fits on the rows of `x` with labels `targets` (any ids; the classes
    /// are the distinct ones, sorted).
    ///
    /// Fails with [`Error::Invalid`] on an invalid config, no rows, a count
    /// of targets other than `x`'s rows, or fewer than two classes. Not
    /// converging within `max_iter` is not an error: see [`FitReport`].
    pub fn fit(x: &CsrMatrix, targets: &[usize], cfg: &LogisticConfig) -> Result<LogisticRegression> {
        cfg.validate()?;
        if x.n_rows() == 0 {
            return Err(Error::invalid("x", "no rows to fit on"));
        }
        if targets.len() != x.n_rows() {
            return Err(Error::invalid("targets", format!("{} targets for {} rows", targets.len(), x.n_rows())));
        }
        let mut classes = targets.to_vec();
        classes.sort_unstable();
        classes.dedup();
        if classes.len() < 2 {
            return Err(Error::invalid("targets", format!("only class {} present: at least two classes are needed", classes[0])));
        }
        let column: Vec<i64> = targets.iter().map(|t| classes.binary_search(t).expect("from targets") as i64).collect();
        let problem = Problem::new(x, &column, classes.len(), cfg)?;
        let opts = Lbfgs { max_iter: cfg.max_iter, gtol: cfg.tol, history: cfg.history, ..Lbfgs::default() };
        let theta0 = Tensor::zeros([problem.n_params()], (Kind::Double, Device::Cpu));
        let m = tch::no_grad(|| lbfgs::minimize(&opts, theta0, |theta| problem.loss_grad(theta)))?;
        let (coef, intercept) = problem.split(&m.x);
        let report = FitReport {
            n_iter: m.n_iter,
            n_evals: m.n_evals,
            loss: m.f,
            grad_max: m.grad_max,
            stop: m.stop,
            converged: m.stop.converged(),
        };
        Ok(LogisticRegression { classes, coef, intercept, report })
    }

    /// The class ids it can predict, in column order of [`predict_proba`](Self::predict_proba).
    pub fn classes(&self) -> &[usize] {
        &self.classes
    }

    /// Number of features it was fitted on.
    pub fn n_features(&self) -> usize {
        self.coef.size()[0] as usize
    }

    /// The weights, `n_features × k` (`f64`): one column per class, or a
    /// single one (the second class's) with two classes, as scikit-learn's
    /// `coef_` transposed.
    pub fn coef(&self) -> &Tensor {
        &self.coef
    }

    /// The intercepts, one per column of [`coef`](Self::coef).
    pub fn intercept(&self) -> &Tensor {
        &self.intercept
    }

    /// How the fit went.
    pub fn report(&self) -> &FitReport {
        &self.report
    }

    /// One score per row and class (`n × classes`, `f64`); with two classes
    /// the first column is 0 and the second is scikit-learn's
    /// `decision_function`.
    pub fn decision_function(&self, x: &CsrMatrix) -> Result<Tensor> {
        if x.n_cols() != self.n_features() {
            return Err(Error::invalid("x", format!("{} features, but the model was fitted on {}", x.n_cols(), self.n_features())));
        }
        let z = tch::no_grad(|| -> Result<Tensor> { Ok(sparse_mm(&x.to_tensor()?, &self.coef)? + &self.intercept) })?;
        Ok(if self.classes.len() == 2 { Tensor::cat(&[z.zeros_like(), z], 1) } else { z })
    }

    /// Class probabilities per row (`n × classes`, `f64`, rows summing to 1).
    ///
    /// ```
    /// use encoder_bench::train::baseline::{CsrMatrix, LogisticConfig, LogisticRegression};
    /// let x = CsrMatrix::new(2, 1, vec![0, 1, 1], vec![0], vec![1.0])?;
    /// let m = LogisticRegression::fit(&x, &[1, 0], &LogisticConfig::default())?;
    /// let p = m.predict_proba(&x)?;
    /// assert!(p.double_value(&[0, 1]) > 0.5 && p.double_value(&[1, 0]) > 0.5);
    /// # Ok::<(), encoder_bench::Error>(())
    /// ```
    pub fn predict_proba(&self, x: &CsrMatrix) -> Result<Tensor> {
        Ok(self.decision_function(x)?.softmax(1, Kind::Double))
    }

    /// The most probable class of each row (the first one on a tie, as
    /// NumPy's `argmax`).
    pub fn predict(&self, x: &CsrMatrix) -> Result<Vec<usize>> {
        let z = self.decision_function(x)?;
        let k = self.classes.len();
        let flat = Vec::<f64>::try_from(z.view([-1])).map_err(|e| Error::torch("reading scores", e))?;
        Ok(flat
            .chunks(k)
            .map(|row| {
                let best = row.iter().enumerate().fold(0, |b, (j, &v)| if v > row[b] { j } else { b });
                self.classes[best]
            })
            .collect())
    }
}

fn sparse_mm(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    a.f_mm(b).map_err(|e| Error::torch("sparse matrix product", e))
}

/// The training problem in tensor form. The parameters are one flat vector,
/// `[W row-major, b]`, so that L-BFGS works on a single tensor.
struct Problem {
    /// `n × d` and its transpose, both CSR: libtorch multiplies CSR by dense,
    /// and the gradient needs `Xᵀ·R`.
    x: Tensor,
    xt: Tensor,
    /// One-hot targets over all `k` classes, `n × k`.
    y: Tensor,
    n: usize,
    d: usize,
    k: usize,
    /// Free columns: `k`, or 1 for the binomial case.
    free: usize,
    /// `1 / (C n)`.
    alpha: f64,
    fit_intercept: bool,
}

impl Problem {
    fn new(x: &CsrMatrix, column: &[i64], k: usize, cfg: &LogisticConfig) -> Result<Problem> {
        let n = x.n_rows();
        let y = Tensor::from_slice(column).one_hot(k as i64).to_kind(Kind::Double);
        Ok(Problem {
            x: x.to_tensor()?,
            xt: x.transpose().to_tensor()?,
            y,
            n,
            d: x.n_cols(),
            k,
            free: if k == 2 { 1 } else { k },
            alpha: 1.0 / (cfg.c * n as f64),
            fit_intercept: cfg.fit_intercept,
        })
    }

    fn n_params(&self) -> i64 {
        (self.d * self.free + if self.fit_intercept { self.free } else { 0 }) as i64
    }

    /// `(W, b)` as views into `theta` (b zeros without an intercept).
    fn split(&self, theta: &Tensor) -> (Tensor, Tensor) {
        let (d, free) = (self.d as i64, self.free as i64);
        let w = theta.narrow(0, 0, d * free).view([d, free]);
        let b = if self.fit_intercept { theta.narrow(0, d * free, free) } else { Tensor::zeros([free], (Kind::Double, Device::Cpu)) };
        (w, b)
    }

    /// The mean-form objective and its gradient with respect to `theta`.
    /// The gradient is written in place into one buffer: at WOS-46985's size
    /// each temporary of `theta`'s size is tens of megabytes.
    fn loss_grad(&self, theta: &Tensor) -> Result<(f64, Tensor)> {
        let (w, b) = self.split(theta);
        let z = sparse_mm(&self.x, &w)? + &b;
        let z = if self.free == self.k { z } else { Tensor::cat(&[z.zeros_like(), z], 1) };
        let lse = z.logsumexp([1], true);
        let n = self.n as f64;
        let data = (lse.sum(Kind::Double) - (&z * &self.y).sum(Kind::Double)).double_value(&[]) / n;
        let w_flat = theta.narrow(0, 0, (self.d * self.free) as i64);
        let penalty = 0.5 * self.alpha * w_flat.dot(&w_flat).double_value(&[]);
        // d(mean loss)/dz = (softmax(z) - y) / n, restricted to the free columns.
        let r = ((z - &lse).exp() - &self.y) / n;
        let r = if self.free == self.k { r } else { r.narrow(1, 1, 1).contiguous() };
        let grad = theta.empty_like();
        let mut gw = grad.narrow(0, 0, w_flat.numel() as i64).view([self.d as i64, self.free as i64]);
        gw.copy_(&w);
        let _ = gw.g_mul_scalar_(self.alpha);
        let _ = gw.f_addmm_(&self.xt, &r).map_err(|e| Error::torch("sparse matrix product", e))?;
        if self.fit_intercept {
            grad.narrow(0, w_flat.numel() as i64, self.free as i64).copy_(&r.sum_dim_intlist(0, false, Kind::Double));
        }
        Ok((data + penalty, grad))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small dense problem as CSR (zeros dropped).
    fn csr(rows: &[&[f64]]) -> CsrMatrix {
        let mut indptr = vec![0];
        let (mut indices, mut values) = (vec![], vec![]);
        for r in rows {
            for (j, &v) in r.iter().enumerate() {
                if v != 0.0 {
                    indices.push(j);
                    values.push(v);
                }
            }
            indptr.push(values.len());
        }
        CsrMatrix::new(rows.len(), rows[0].len(), indptr, indices, values).unwrap()
    }

    fn toy() -> (CsrMatrix, Vec<usize>) {
        let x = csr(&[
            &[1.0, 0.0, 0.5],
            &[0.9, 0.2, 0.0],
            &[0.0, 1.0, 0.3],
            &[0.1, 0.8, 0.0],
            &[0.0, 0.0, 1.0],
            &[0.4, 0.0, 0.9],
            &[0.7, 0.7, 0.0],
        ]);
        (x, vec![0, 0, 1, 1, 2, 2, 1])
    }

    /// The objective by plain loops, for the brute-force checks.
    fn objective(x: &CsrMatrix, y: &[usize], w: &[Vec<f64>], b: &[f64], c: f64) -> f64 {
        let n = x.n_rows() as f64;
        let mut loss = 0.0;
        for i in 0..x.n_rows() {
            let z: Vec<f64> = (0..b.len()).map(|k| b[k] + (0..x.n_cols()).map(|j| x.get(i, j) * w[j][k]).sum::<f64>()).collect();
            let m = z.iter().cloned().fold(f64::MIN, f64::max);
            let lse = m + z.iter().map(|v| (v - m).exp()).sum::<f64>().ln();
            loss += lse - z[y[i]];
        }
        let norm2: f64 = w.iter().flatten().map(|v| v * v).sum();
        loss / n + norm2 / (2.0 * c * n)
    }

    fn unpack(m: &LogisticRegression) -> (Vec<Vec<f64>>, Vec<f64>) {
        let w: Vec<Vec<f64>> = Vec::<Vec<f64>>::try_from(m.coef()).unwrap();
        (w, Vec::<f64>::try_from(m.intercept()).unwrap())
    }

    #[test]
    fn gradient_matches_finite_differences() {
        let (x, y) = toy();
        let column: Vec<i64> = y.iter().map(|&t| t as i64).collect();
        let p = Problem::new(&x, &column, 3, &LogisticConfig { c: 0.7, ..LogisticConfig::default() }).unwrap();
        let theta = Tensor::from_slice(&[0.3, -0.2, 0.1, 0.5, 0.0, -0.4, 0.2, 0.2, -0.1, 0.05, -0.3, 0.25f64]);
        let (_, g) = p.loss_grad(&theta).unwrap();
        let g = Vec::<f64>::try_from(g).unwrap();
        let h = 1e-6;
        for (i, &gi) in g.iter().enumerate() {
            let bump = |s: f64| {
                let t = theta.copy();
                let _ = t.get(i as i64).g_add_scalar_(s);
                p.loss_grad(&t).unwrap().0
            };
            let fd = (bump(h) - bump(-h)) / (2.0 * h);
            assert!((fd - gi).abs() < 1e-8, "param {i}: finite difference {fd}, gradient {gi}");
        }
    }

    #[test]
    fn reaches_the_optimum() {
        let (x, y) = toy();
        // tol 1e-10 is below what the relative-reduction rule lets through;
        // whichever rule stops it, the gradient must be tiny.
        let cfg = LogisticConfig { tol: 1e-10, ..LogisticConfig::default() };
        let m = LogisticRegression::fit(&x, &y, &cfg).unwrap();
        let r = m.report();
        assert!(r.converged && r.grad_max <= 1e-8, "{r:?}");
        let (w, b) = unpack(&m);
        let f = objective(&x, &y, &w, &b, 1.0);
        assert!((f - r.loss).abs() < 1e-12, "loss {} vs brute force {f}", r.loss);
        // Brute force: no nudge of any parameter lowers the objective.
        for (j, k) in (0..3).flat_map(|j| (0..3).map(move |k| (j, k))) {
            for s in [1e-3, -1e-3] {
                let mut w2 = w.clone();
                w2[j][k] += s;
                assert!(objective(&x, &y, &w2, &b, 1.0) > f, "W[{j}][{k}] {s:+}");
            }
        }
        for k in 0..3 {
            for s in [1e-3, -1e-3] {
                let mut b2 = b.clone();
                b2[k] += s;
                assert!(objective(&x, &y, &w, &b2, 1.0) > f - 1e-15, "b[{k}] {s:+}");
            }
        }
        // Stationarity in closed form: the penalty's pull on W balances the
        // loss; per feature, the columns of W sum to 0 (softmax residuals sum
        // to 0 across classes).
        for row in &w {
            assert!(row.iter().sum::<f64>().abs() < 1e-8, "{row:?}");
        }
    }

    #[test]
    fn two_classes_are_binomial() {
        // One feature, one example per class, no intercept: the binomial
        // objective is ½w² + 2C·ln(1 + e^{-w}), stationary where
        // w = 2C(1 - σ(w)), found here by bisection. A free two-column
        // softmax would instead penalise ½(w₀² + w₁²) and land elsewhere.
        let x = csr(&[&[1.0], &[-1.0]]);
        let cfg = LogisticConfig { tol: 1e-12, fit_intercept: false, ..LogisticConfig::default() };
        let m = LogisticRegression::fit(&x, &[7, 2], &cfg).unwrap();
        assert_eq!(m.classes(), [2, 7]);
        assert_eq!(m.coef().size(), [1, 1]);
        let sigma = |w: f64| 1.0 / (1.0 + (-w).exp());
        let (mut lo, mut hi) = (0.0, 2.0);
        for _ in 0..200 {
            let mid = 0.5 * (lo + hi);
            if mid - 2.0 * (1.0 - sigma(mid)) > 0.0 { hi = mid } else { lo = mid }
        }
        assert!((m.coef().double_value(&[0, 0]) - lo).abs() < 1e-10);
        assert_eq!(m.predict(&x).unwrap(), [7, 2]);
        let p = m.predict_proba(&x).unwrap();
        assert!((p.double_value(&[0, 1]) - sigma(lo)).abs() < 1e-10);
    }

    #[test]
    fn errors_not_panics() {
        let (x, y) = toy();
        let cfg = LogisticConfig::default();
        assert!(LogisticRegression::fit(&x, &y[..3], &cfg).is_err());
        let err = LogisticRegression::fit(&x, &[4; 7], &cfg).unwrap_err();
        assert!(err.to_string().contains("only class 4"), "{err}");
        let empty = CsrMatrix::new(0, 3, vec![0], vec![], vec![]).unwrap();
        assert!(LogisticRegression::fit(&empty, &[], &cfg).is_err());
        for bad in [LogisticConfig { c: 0.0, ..cfg }, LogisticConfig { tol: f64::NAN, ..cfg }, LogisticConfig { history: 0, ..cfg }] {
            assert!(matches!(LogisticRegression::fit(&x, &y, &bad), Err(Error::Invalid { .. })));
        }
        let m = LogisticRegression::fit(&x, &y, &cfg).unwrap();
        assert!(m.predict(&csr(&[&[1.0, 2.0]])).is_err(), "wrong feature count");
    }

    #[test]
    fn max_iter_is_reported_not_an_error() {
        let (x, y) = toy();
        let m = LogisticRegression::fit(&x, &y, &LogisticConfig { max_iter: 1, tol: 0.0, ..LogisticConfig::default() }).unwrap();
        assert_eq!((m.report().n_iter, m.report().stop, m.report().converged), (1, Stop::MaxIter, false));
    }
}
