//! Mixed precision: bf16 matrix products over fp32 master weights.
//!
//! libtorch's autocast, as tch exposes it, is CUDA-only and picks fp16 (tch
//! cannot set the autocast dtype), and fp16 on a CPU is orders of magnitude
//! slower. So the layers of this crate cast for themselves, the way
//! `torch.autocast(dtype=torch.bfloat16)` does: inside a [`with_precision`]
//! scope every [`linear`] runs in bf16 (inputs, weights and bias cast on the
//! fly, so the optimizer still updates fp32 weights), while LayerNorm,
//! softmax and the loss run in fp32 ([`layer_norm`] casts back up). The same
//! code path serves CPU (AVX512-BF16/AMX) and CUDA.
use serde::{Deserialize, Serialize};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use tch::nn::{self, Module};
use tch::{Kind, Tensor};

/// Numeric precision of the matrix products.
///
/// ```
/// use encoder_bench::models::Precision;
/// assert_eq!("bf16".parse::<Precision>().unwrap(), Precision::Bf16);
/// assert!("fp16".parse::<Precision>().is_err());
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// Everything in fp32.
    #[default]
    Fp32,
    /// bf16 matrix products (Linear layers, attention), fp32 weights,
    /// LayerNorm, softmax and loss.
    Bf16,
}

impl Precision {
    /// The dtype matrix products run in.
    pub fn compute_kind(self) -> Kind {
        match self {
            Precision::Fp32 => Kind::Float,
            Precision::Bf16 => Kind::BFloat16,
        }
    }

    /// Refuses a precision `device` does not offer: bf16 on MPS (or on any
    /// device while the MPS rules are enforced, see
    /// [`crate::device::enforce_mps_rules`]).
    ///
    /// ```
    /// use encoder_bench::models::Precision;
    /// assert!(Precision::Bf16.check_device(tch::Device::Cpu).is_ok());
    /// let e = Precision::Bf16.check_device(tch::Device::Mps).unwrap_err().to_string();
    /// assert!(e.contains("bf16") && e.contains("MPS"), "{e}");
    /// assert!(Precision::Fp32.check_device(tch::Device::Mps).is_ok());
    /// ```
    pub fn check_device(self, device: tch::Device) -> crate::Result<()> {
        if self == Precision::Bf16 && crate::device::mps_rules_apply(device) {
            let on = if device == tch::Device::Mps {
                "on MPS".to_string()
            } else {
                format!("on {} under the MPS rules", crate::device::device_name(device))
            };
            return Err(crate::Error::invalid(
                "precision",
                format!("bf16 is not offered {on} (MPS's bf16 support depends on the macOS version): use fp32"),
            ));
        }
        Ok(())
    }

    /// The faster precision `device` offers: bf16 where its matrix products
    /// are fast ([`crate::device::bf16_is_fast`]), else fp32.
    ///
    /// ```
    /// use encoder_bench::models::Precision;
    /// assert_eq!(Precision::fastest_for(tch::Device::Mps), Precision::Fp32);
    /// ```
    pub fn fastest_for(device: tch::Device) -> Precision {
        if crate::device::bf16_is_fast(device) { Precision::Bf16 } else { Precision::Fp32 }
    }

    /// `"fp32"` or `"bf16"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Precision::Fp32 => "fp32",
            Precision::Bf16 => "bf16",
        }
    }
}

impl std::fmt::Display for Precision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Precision {
    type Err = crate::Error;
    fn from_str(s: &str) -> crate::Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "fp32" | "float32" | "f32" => Ok(Precision::Fp32),
            "bf16" | "bfloat16" => Ok(Precision::Bf16),
            other => Err(crate::Error::invalid(
                "precision",
                format!("`{other}` is not supported; expected fp32 or bf16 (fp16 is not offered: it is ~1000x slower on CPUs)"),
            )),
        }
    }
}

thread_local! {
    // Thread-local like torch's autocast state: a scope on one thread never
    // changes what another thread computes.
    static PRECISION: Cell<Precision> = const { Cell::new(Precision::Fp32) };
    // bf16 copies of weights, keyed by the weight's storage address and the
    // number of weights concatenated from there ([`fused_linear`]); only
    // alive inside `with_cast_cache` (inference, where weights do not change).
    static CAST_CACHE: RefCell<Option<HashMap<(usize, usize), Tensor>>> = const { RefCell::new(None) };
}

/// Runs `f` (inference without gradients, weights unchanged) casting each
/// weight to bf16 once instead of once per batch, as torch's autocast weight
/// cache does; the copies are dropped when `f` returns.
///
/// ```
/// use encoder_bench::models::precision::{Precision, linear, with_cast_cache, with_precision};
/// let vs = tch::nn::VarStore::new(tch::Device::Cpu);
/// let lin = tch::nn::linear(vs.root(), 4, 2, Default::default());
/// let x = tch::Tensor::ones([3, 4], (tch::Kind::Float, tch::Device::Cpu));
/// let y = tch::no_grad(|| with_cast_cache(|| with_precision(Precision::Bf16, || linear(&lin, &x))));
/// assert_eq!(y.kind(), tch::Kind::BFloat16);
/// ```
pub fn with_cast_cache<T>(f: impl FnOnce() -> T) -> T {
    struct Clear;
    impl Drop for Clear {
        fn drop(&mut self) {
            CAST_CACHE.with(|c| c.borrow_mut().take());
        }
    }
    CAST_CACHE.with(|c| *c.borrow_mut() = Some(HashMap::new()));
    let _clear = Clear;
    f()
}

/// `parts` concatenated along dim 0 (no copy for a single part).
fn cat0(parts: &[&Tensor]) -> Tensor {
    match parts {
        [one] => one.shallow_clone(),
        _ => Tensor::cat(parts, 0),
    }
}

/// `parts` concatenated along dim 0 and cast to bf16, from the cache when one is active.
fn to_bf16_cat(parts: &[&Tensor]) -> Tensor {
    let make = || cat0(parts).to_kind(Kind::BFloat16);
    CAST_CACHE.with(|c| match c.borrow_mut().as_mut() {
        Some(cache) => cache.entry((parts[0].data_ptr() as usize, parts.len())).or_insert_with(make).shallow_clone(),
        None => make(),
    })
}

fn to_bf16(t: &Tensor) -> Tensor {
    to_bf16_cat(&[t])
}

/// Runs `f` with matrix products in `precision`; restores the previous
/// setting afterwards, also when `f` panics.
///
/// ```
/// use encoder_bench::models::precision::{Precision, linear, with_precision};
/// let vs = tch::nn::VarStore::new(tch::Device::Cpu);
/// let lin = tch::nn::linear(vs.root(), 4, 2, Default::default());
/// let x = tch::Tensor::ones([3, 4], (tch::Kind::Float, tch::Device::Cpu));
/// let y = with_precision(Precision::Bf16, || linear(&lin, &x));
/// assert_eq!(y.kind(), tch::Kind::BFloat16);
/// assert_eq!(linear(&lin, &x).kind(), tch::Kind::Float);
/// ```
pub fn with_precision<T>(precision: Precision, f: impl FnOnce() -> T) -> T {
    struct Restore(Precision);
    impl Drop for Restore {
        fn drop(&mut self) {
            PRECISION.with(|p| p.set(self.0));
        }
    }
    let _restore = Restore(PRECISION.with(|p| p.replace(precision)));
    f()
}

/// The precision of the enclosing [`with_precision`] scope (fp32 outside any).
pub fn current() -> Precision {
    PRECISION.with(Cell::get)
}

/// `xs · Wᵀ + b` in the current precision.
pub fn linear(layer: &nn::Linear, xs: &Tensor) -> Tensor {
    match current() {
        Precision::Fp32 => layer.forward(xs),
        Precision::Bf16 => {
            let bias = layer.bs.as_ref().map(to_bf16);
            xs.to_kind(Kind::BFloat16).linear(&to_bf16(&layer.ws), bias.as_ref())
        }
    }
}

/// The outputs of several Linear layers over the same input, concatenated
/// along the last dimension, computed as one matrix product (the query, key
/// and value projections: one GEMM and one input cast instead of three; the
/// weights stay separate variables under their checkpoint names).
///
/// ```
/// use encoder_bench::models::precision::{fused_linear, linear};
/// let vs = tch::nn::VarStore::new(tch::Device::Cpu);
/// let (a, b) = (tch::nn::linear(vs.root() / "a", 4, 2, Default::default()), tch::nn::linear(vs.root() / "b", 4, 3, Default::default()));
/// let x = tch::Tensor::ones([3, 4], (tch::Kind::Float, tch::Device::Cpu));
/// let y = fused_linear(&[&a, &b], &x);
/// assert_eq!(y.size(), vec![3, 5]);
/// assert!(y.narrow(1, 2, 3).allclose(&linear(&b, &x), 1e-6, 1e-6, false));
/// ```
pub fn fused_linear(layers: &[&nn::Linear], xs: &Tensor) -> Tensor {
    assert!(!layers.is_empty(), "fused_linear needs at least one layer");
    let weights: Vec<&Tensor> = layers.iter().map(|l| &l.ws).collect();
    let biases: Option<Vec<&Tensor>> = layers.iter().map(|l| l.bs.as_ref()).collect();
    match current() {
        Precision::Fp32 => xs.linear(&cat0(&weights), biases.as_deref().map(cat0).as_ref()),
        Precision::Bf16 => xs.to_kind(Kind::BFloat16).linear(&to_bf16_cat(&weights), biases.as_deref().map(to_bf16_cat).as_ref()),
    }
}

/// LayerNorm computed in fp32 whatever the input dtype (autocast's rule:
/// normalisation statistics in bf16 lose too much).
pub fn layer_norm(layer: &nn::LayerNorm, xs: &Tensor) -> Tensor {
    if xs.kind() == Kind::Float { layer.forward(xs) } else { layer.forward(&xs.to_kind(Kind::Float)) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    #[test]
    fn bf16_linear_is_close_to_fp32_and_trains_fp32_weights() {
        let _rng = crate::rng_lock();
        tch::manual_seed(0);
        let vs = nn::VarStore::new(Device::Cpu);
        let lin = nn::linear(vs.root(), 64, 32, Default::default());
        let x = Tensor::randn([8, 64], (Kind::Float, Device::Cpu));
        let y32 = linear(&lin, &x);
        let y16 = with_precision(Precision::Bf16, || linear(&lin, &x));
        let rel = (&y32 - y16.to_kind(Kind::Float)).abs().max().double_value(&[]) / y32.abs().max().double_value(&[]);
        assert!(rel < 2e-2, "bf16 relative error {rel}");
        assert!(rel > 0.0, "bf16 path computed in fp32");
        with_precision(Precision::Bf16, || linear(&lin, &x)).to_kind(Kind::Float).sum(Kind::Float).backward();
        assert_eq!(lin.ws.grad().kind(), Kind::Float);
        assert_eq!(lin.ws.kind(), Kind::Float);
    }

    #[test]
    fn cached_casts_give_the_same_outputs_and_are_dropped() {
        let _rng = crate::rng_lock();
        tch::manual_seed(1);
        let vs = nn::VarStore::new(Device::Cpu);
        let lin = nn::linear(vs.root(), 16, 8, Default::default());
        let x = Tensor::randn([4, 16], (Kind::Float, Device::Cpu));
        let plain = tch::no_grad(|| with_precision(Precision::Bf16, || linear(&lin, &x)));
        let cached = tch::no_grad(|| with_cast_cache(|| with_precision(Precision::Bf16, || (linear(&lin, &x), linear(&lin, &x)))));
        assert!(plain.equal(&cached.0) && plain.equal(&cached.1));
        assert!(CAST_CACHE.with(|c| c.borrow().is_none()), "the cache outlived its scope");
    }

    #[test]
    fn fused_linear_matches_separate_layers_in_both_precisions_and_with_the_cache() {
        let _rng = crate::rng_lock();
        tch::manual_seed(2);
        let vs = nn::VarStore::new(Device::Cpu);
        let layers: Vec<nn::Linear> = (0..3).map(|i| nn::linear(vs.root() / i, 24, 8 + i, Default::default())).collect();
        let refs: Vec<&nn::Linear> = layers.iter().collect();
        let x = Tensor::randn([5, 7, 24], (Kind::Float, Device::Cpu));
        for precision in [Precision::Fp32, Precision::Bf16] {
            let separate = with_precision(precision, || Tensor::cat(&layers.iter().map(|l| linear(l, &x)).collect::<Vec<_>>(), -1));
            let fused = with_precision(precision, || fused_linear(&refs, &x));
            assert_eq!(fused.size(), vec![5, 7, 27]);
            assert_eq!(fused.kind(), precision.compute_kind());
            let tol = if precision == Precision::Bf16 { 1e-2 } else { 1e-6 };
            assert!((&fused - &separate).abs().max().double_value(&[]) < tol, "{precision}");
            // The first layer alone and the fused three share a weight address
            // but not a cache entry.
            let (one, three) =
                tch::no_grad(|| with_cast_cache(|| with_precision(precision, || (linear(&layers[0], &x), fused_linear(&refs, &x)))));
            assert_eq!(one.size(), vec![5, 7, 8]);
            assert!((&three - &fused).abs().max().double_value(&[]) < tol, "{precision}: cached fused product differs");
        }
        // Gradients reach every layer's own weight.
        fused_linear(&refs, &x).sum(Kind::Float).backward();
        assert!(layers.iter().all(|l| l.ws.grad().defined() && l.ws.grad().abs().sum(Kind::Float).double_value(&[]) > 0.0));
    }

    #[test]
    fn scope_is_restored_after_a_panic() {
        let r = std::panic::catch_unwind(|| with_precision(Precision::Bf16, || panic!("boom")));
        assert!(r.is_err());
        assert_eq!(current(), Precision::Fp32);
    }
}
