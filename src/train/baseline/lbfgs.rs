//! Full-batch L-BFGS on flat `f64` tensors: the solver behind the baseline's
//! logistic regression.
//!
//! The directions come from the two-loop recursion over the last `history`
//! steps (Nocedal & Wright, *Numerical Optimization*, algorithm 7.4), the step
//! length from a line search that enforces the strong Wolfe conditions
//! (algorithms 3.5 and 3.6, with a safeguarded cubic step). The stopping rules
//! are those scikit-learn hands to SciPy's L-BFGS-B, so that "converged" means
//! the same on both sides: the largest gradient component at most `gtol`, or a
//! relative decrease of the objective at most `ftol`, or `max_iter` iterations.
//!
//! Vectors are tensors rather than `Vec<f64>` because the baseline's parameter
//! vector is the size of a 1-2-gram vocabulary times the number of classes
//! (about 7·10⁶ on WOS-46985), where libtorch's vectorised, multi-threaded
//! axpy and dot products matter.
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use tch::Tensor;

/// Settings of [`minimize`]; the defaults are those scikit-learn's
/// `LogisticRegression(solver="lbfgs")` passes to SciPy.
///
/// ```
/// use encoder_bench::train::baseline::lbfgs::Lbfgs;
/// let o = Lbfgs::default();
/// assert_eq!((o.gtol, o.history, o.max_line_search), (1e-4, 10, 50));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Lbfgs {
    /// Most iterations (directions tried).
    pub max_iter: usize,
    /// Stop when every gradient component is at most this in absolute value.
    pub gtol: f64,
    /// Stop when one iteration lowers the objective by at most this fraction
    /// of `max(|f|, |f_new|, 1)`.
    pub ftol: f64,
    /// How many past steps the inverse-Hessian estimate remembers.
    pub history: usize,
    /// Most objective evaluations in one line search.
    pub max_line_search: usize,
}

impl Default for Lbfgs {
    fn default() -> Self {
        Lbfgs { max_iter: 2000, gtol: 1e-4, ftol: 64.0 * f64::EPSILON, history: 10, max_line_search: 50 }
    }
}

/// Why [`minimize`] stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Stop {
    /// Every gradient component is within `gtol`: converged.
    Gradient,
    /// The last iteration barely lowered the objective (`ftol`): converged.
    RelativeReduction,
    /// `max_iter` iterations ran out first.
    MaxIter,
    /// No step along steepest descent satisfied the line search (usually the
    /// objective is flat to rounding error there).
    LineSearch,
}

impl Stop {
    /// Whether the stop counts as convergence (as SciPy's `success`).
    pub fn converged(self) -> bool {
        matches!(self, Stop::Gradient | Stop::RelativeReduction)
    }
}

/// Where [`minimize`] ended and how it got there.
#[derive(Debug)]
pub struct Minimum {
    /// The minimiser found.
    pub x: Tensor,
    /// The objective there.
    pub f: f64,
    /// Largest absolute gradient component there.
    pub grad_max: f64,
    /// Iterations run (accepted steps).
    pub n_iter: usize,
    /// Objective evaluations, line searches included.
    pub n_evals: usize,
    /// Why it stopped.
    pub stop: Stop,
}

/// One evaluated point.
struct Point {
    x: Tensor,
    f: f64,
    g: Tensor,
}

/// Minimises `objective`, which returns the value and gradient at a point,
/// from `x0` (a flat `f64` tensor; the gradient must have its shape).
///
/// Fails when `objective` fails, when it is not finite at `x0`, or on
/// settings that cannot work (`history` or `max_line_search` of 0, a negative
/// or NaN tolerance).
///
/// ```
/// use encoder_bench::train::baseline::lbfgs::{Lbfgs, minimize};
/// use tch::Tensor;
/// // f(x) = Σ (x_i - i)², minimised at x = (0, 1, 2).
/// let target = Tensor::from_slice(&[0.0f64, 1.0, 2.0]);
/// let m = minimize(&Lbfgs::default(), Tensor::zeros([3], (tch::Kind::Double, tch::Device::Cpu)), |x| {
///     let r = x - &target;
///     Ok((r.square().sum(tch::Kind::Double).double_value(&[]), r * 2.0))
/// })?;
/// assert!(m.stop.converged());
/// assert!((m.x - target).abs().max().double_value(&[]) < 1e-4);
/// # Ok::<(), encoder_bench::Error>(())
/// ```
pub fn minimize(opts: &Lbfgs, x0: Tensor, mut objective: impl FnMut(&Tensor) -> Result<(f64, Tensor)>) -> Result<Minimum> {
    if opts.history == 0 || opts.max_line_search == 0 {
        return Err(Error::invalid("lbfgs", "history and max_line_search must be at least 1"));
    }
    if !(opts.gtol >= 0.0 && opts.ftol >= 0.0) {
        return Err(Error::invalid("lbfgs", format!("tolerances must be >= 0, got gtol {} and ftol {}", opts.gtol, opts.ftol)));
    }
    let (f, g) = objective(&x0)?;
    if !f.is_finite() {
        return Err(Error::Training(format!("L-BFGS: the objective is {f} at the starting point")));
    }
    let mut n_evals = 1;
    let mut at = Point { x: x0, f, g };
    // (s, y, 1 / s·y) of the remembered steps, oldest first.
    let mut memory: VecDeque<(Tensor, Tensor, f64)> = VecDeque::with_capacity(opts.history);
    // The buffers of the last pair forgotten, reused for the next one: at 10⁷
    // parameters a fresh tensor is a fresh mmap, and faulting its pages in
    // costs as much as the arithmetic.
    let mut spare: Option<(Tensor, Tensor)> = None;
    let mut n_iter = 0;
    let stop = loop {
        if max_abs(&at.g) <= opts.gtol {
            break Stop::Gradient;
        }
        if n_iter >= opts.max_iter {
            break Stop::MaxIter;
        }
        let mut dir = direction(&at.g, &memory);
        let mut slope = dot(&at.g, &dir);
        if slope >= 0.0 || slope.is_nan() {
            // Rounding can make the estimate lose positive definiteness.
            memory.clear();
            dir = -&at.g;
            slope = dot(&at.g, &dir);
        }
        // Without curvature information, a first step of unit length.
        let step0 = if memory.is_empty() { 1.0 / dot(&dir, &dir).sqrt() } else { 1.0 };
        let found = line_search(&at, &dir, slope, step0, opts.max_line_search, &mut n_evals, &mut objective)?;
        let Some(next) = found else {
            if memory.is_empty() {
                break Stop::LineSearch;
            }
            // A stale estimate can point nearly uphill: retry from scratch.
            memory.clear();
            continue;
        };
        n_iter += 1;
        let (mut s, mut y) = spare.take().unwrap_or_else(|| (at.x.empty_like(), at.g.empty_like()));
        s.copy_(&next.x);
        let _ = s.g_sub_(&at.x);
        y.copy_(&next.g);
        let _ = y.g_sub_(&at.g);
        let sy = dot(&s, &y);
        // Only steps with positive curvature keep the estimate positive definite.
        if sy > f64::EPSILON * dot(&y, &y) {
            if memory.len() == opts.history {
                spare = memory.pop_front().map(|(s, y, _)| (s, y));
            }
            memory.push_back((s, y, 1.0 / sy));
        } else {
            spare = Some((s, y));
        }
        let reduction = (at.f - next.f) / at.f.abs().max(next.f.abs()).max(1.0);
        at = next;
        if max_abs(&at.g) <= opts.gtol {
            break Stop::Gradient;
        }
        if reduction <= opts.ftol {
            break Stop::RelativeReduction;
        }
    };
    Ok(Minimum { grad_max: max_abs(&at.g), x: at.x, f: at.f, n_iter, n_evals, stop })
}

fn dot(a: &Tensor, b: &Tensor) -> f64 {
    a.dot(b).double_value(&[])
}

/// The infinity norm, without the temporary `abs()` would allocate.
fn max_abs(t: &Tensor) -> f64 {
    if t.numel() == 0 { 0.0 } else { t.norm_scalaropt_dim(f64::INFINITY, [0], false).double_value(&[]) }
}

/// `y += a·x` in one pass and no temporary.
fn axpy(y: &mut Tensor, a: f64, x: &Tensor) {
    let _ = y.addcmul_(x, &Tensor::from(a));
}

/// `-H·g` by the two-loop recursion, `H` scaled by the latest `s·y / y·y`.
fn direction(g: &Tensor, memory: &VecDeque<(Tensor, Tensor, f64)>) -> Tensor {
    let mut q = g.copy();
    let mut alphas = Vec::with_capacity(memory.len());
    for (s, y, rho) in memory.iter().rev() {
        let a = rho * dot(s, &q);
        axpy(&mut q, -a, y);
        alphas.push(a);
    }
    if let Some((s, y, _)) = memory.back() {
        q *= dot(s, y) / dot(y, y);
    }
    for ((s, y, rho), a) in memory.iter().zip(alphas.into_iter().rev()) {
        let b = rho * dot(y, &q);
        axpy(&mut q, a - b, s);
    }
    let _ = q.neg_();
    q
}

/// Sufficient decrease (Armijo) and curvature constants of the strong Wolfe
/// conditions, the usual values for quasi-Newton methods.
const C1: f64 = 1e-4;
const C2: f64 = 0.9;

/// A step length along `dir` meeting the strong Wolfe conditions, found by
/// bracketing then zooming. `None` when `max_evals` evaluations found no
/// point with sufficient decrease; a point with sufficient decrease but no
/// curvature condition is accepted at the end rather than wasted.
fn line_search(
    at: &Point,
    dir: &Tensor,
    slope0: f64,
    step0: f64,
    max_evals: usize,
    n_evals: &mut usize,
    objective: &mut impl FnMut(&Tensor) -> Result<(f64, Tensor)>,
) -> Result<Option<Point>> {
    let armijo = |step: f64, f: f64| f <= at.f + C1 * step * slope0;
    let mut eval = |step: f64| -> Result<(Point, f64)> {
        *n_evals += 1;
        let x = at.x.addcmul(dir, &Tensor::from(step));
        let (f, g) = objective(&x)?;
        let slope = dot(&g, dir);
        Ok((Point { x, f, g }, slope))
    };
    let mut best: Option<Point> = None;
    let keep_best = |p: Point, best: &mut Option<Point>| {
        if best.as_ref().is_none_or(|b| p.f < b.f) {
            *best = Some(p);
        }
    };

    // Bracketing: grow the step until it overshoots or the slope turns.
    let (mut lo, mut hi); // (step, f, slope) at the ends of the bracket
    let mut prev = (0.0, at.f, slope0);
    let mut step = step0;
    let mut evals = 0;
    loop {
        if evals == max_evals {
            return Ok(best);
        }
        evals += 1;
        let (p, slope) = eval(step)?;
        let f = p.f;
        if !f.is_finite() {
            // Overflow far out: come back towards the last good step.
            step = prev.0 + (step - prev.0) / 4.0;
            continue;
        }
        if !armijo(step, f) || (evals > 1 && f >= prev.1) {
            (lo, hi) = (prev, (step, f, slope));
            break;
        }
        if slope.abs() <= -C2 * slope0 {
            return Ok(Some(p));
        }
        keep_best(p, &mut best);
        if slope >= 0.0 {
            (lo, hi) = ((step, f, slope), prev);
            break;
        }
        prev = (step, f, slope);
        step *= 2.0;
    }

    // Zoom: shrink [lo, hi], lo always the best end with sufficient decrease.
    while evals < max_evals {
        evals += 1;
        let step = cubic_step(lo, hi);
        let (p, slope) = eval(step)?;
        let f = p.f;
        if !f.is_finite() || !armijo(step, f) || f >= lo.1 {
            hi = (step, f, slope);
        } else {
            if slope.abs() <= -C2 * slope0 {
                return Ok(Some(p));
            }
            keep_best(p, &mut best);
            if slope * (hi.0 - lo.0) >= 0.0 {
                hi = lo;
            }
            lo = (step, f, slope);
        }
        if (hi.0 - lo.0).abs() <= f64::EPSILON * lo.0.abs().max(1e-300) {
            break;
        }
    }
    Ok(best)
}

/// The minimiser of the cubic through both ends' values and slopes, kept
/// inside the middle 80 % of the interval; bisection when the cubic has no
/// usable minimum (or a value is infinite).
fn cubic_step((a, fa, da): (f64, f64, f64), (b, fb, db): (f64, f64, f64)) -> f64 {
    let (left, right) = (a.min(b), a.max(b));
    let margin = 0.1 * (right - left);
    let d1 = da + db - 3.0 * (fa - fb) / (a - b);
    let disc = d1 * d1 - da * db;
    let candidate = if disc >= 0.0 && fb.is_finite() {
        let d2 = (b - a).signum() * disc.sqrt();
        b - (b - a) * (db + d2 - d1) / (db - da + 2.0 * d2)
    } else {
        f64::NAN
    };
    if candidate.is_finite() && candidate >= left + margin && candidate <= right - margin { candidate } else { 0.5 * (left + right) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    fn zeros(n: i64) -> Tensor {
        Tensor::zeros([n], (Kind::Double, Device::Cpu))
    }

    #[test]
    fn rosenbrock_reaches_its_minimum() {
        // The classic badly-conditioned test: minimum 0 at (1, 1), start (-1.2, 1).
        let rosen = |x: &Tensor| {
            let v = Vec::<f64>::try_from(x).unwrap();
            let (a, b) = (v[0], v[1]);
            let f = (1.0 - a).powi(2) + 100.0 * (b - a * a).powi(2);
            let g = [-2.0 * (1.0 - a) - 400.0 * a * (b - a * a), 200.0 * (b - a * a)];
            Ok((f, Tensor::from_slice(&g)))
        };
        let opts = Lbfgs { gtol: 1e-10, ftol: 0.0, ..Lbfgs::default() };
        let m = minimize(&opts, Tensor::from_slice(&[-1.2f64, 1.0]), rosen).unwrap();
        assert_eq!(m.stop, Stop::Gradient, "{m:?}");
        assert!(m.f < 1e-18, "{m:?}");
        assert!(m.n_iter < 100, "{m:?}");
    }

    #[test]
    fn quadratic_matches_closed_form() {
        // f(x) = ½ xᵀAx - bᵀx with A = diag(1..=50): x* = b / diag.
        let diag = Tensor::arange_start(1, 51, (Kind::Double, Device::Cpu));
        let b = Tensor::ones([50], (Kind::Double, Device::Cpu));
        let quad = |x: &Tensor| {
            let ax = x * &diag;
            let f = 0.5 * dot(x, &ax) - dot(&b, x);
            Ok((f, ax - &b))
        };
        // Much below gtol 1e-7, the decrease a step can make, about |g|²,
        // drowns in the rounding of f (about 1e-16) and no line search can
        // tell better from worse.
        let opts = Lbfgs { gtol: 1e-7, ftol: 0.0, ..Lbfgs::default() };
        let m = minimize(&opts, zeros(50), quad).unwrap();
        let want = &b / &diag;
        assert_eq!(m.stop, Stop::Gradient, "{m:?}");
        assert!(max_abs(&(&m.x - &want)) < 1e-7);
        let f_star = -0.5 * dot(&b, &want);
        assert!((m.f - f_star).abs() < 1e-13, "{} vs {f_star}", m.f);
    }

    #[test]
    fn stops_at_max_iter_and_at_a_zero_gradient() {
        let bowl = |x: &Tensor| Ok((dot(x, x), x * 2.0));
        let start = Tensor::from_slice(&[3.0f64, -4.0]);
        let m = minimize(&Lbfgs { max_iter: 0, ..Lbfgs::default() }, start.copy(), bowl).unwrap();
        assert_eq!((m.stop, m.n_iter, m.n_evals), (Stop::MaxIter, 0, 1));
        let m = minimize(&Lbfgs::default(), zeros(2), bowl).unwrap();
        assert_eq!((m.stop, m.n_iter), (Stop::Gradient, 0));
    }

    #[test]
    fn survives_overflow_along_the_first_step() {
        // exp overflows to infinity far out; the search must come back.
        let f = |x: &Tensor| {
            let v = x.double_value(&[0]);
            Ok(((v * 50.0).exp() + (-v).exp(), Tensor::from_slice(&[50.0 * (v * 50.0).exp() - (-v).exp()])))
        };
        let m = minimize(&Lbfgs { gtol: 1e-9, ..Lbfgs::default() }, Tensor::from_slice(&[-20.0f64]), f).unwrap();
        let want = (1.0f64 / 50.0).ln() / 51.0;
        assert!((m.x.double_value(&[0]) - want).abs() < 1e-8, "{m:?}");
    }

    #[test]
    fn bad_settings_and_start_are_errors() {
        let bowl = |x: &Tensor| Ok((dot(x, x), x * 2.0));
        assert!(minimize(&Lbfgs { history: 0, ..Lbfgs::default() }, zeros(2), bowl).is_err());
        assert!(minimize(&Lbfgs { gtol: f64::NAN, ..Lbfgs::default() }, zeros(2), bowl).is_err());
        assert!(minimize(&Lbfgs::default(), zeros(2), |x| Ok((f64::NAN, x.copy()))).is_err());
    }

    #[test]
    fn cubic_step_finds_a_parabola_minimum() {
        // f(t) = (t - 0.3)²: values and slopes at 0 and 1.
        let s = cubic_step((0.0, 0.09, -0.6), (1.0, 0.49, 1.4));
        assert!((s - 0.3).abs() < 1e-12, "{s}");
        // Falls back to bisection without a usable minimum.
        assert_eq!(cubic_step((0.0, 0.0, -1.0), (1.0, f64::INFINITY, 0.0)), 0.5);
    }
}
