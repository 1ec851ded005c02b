//! Adam / AdamW over a var store, with weight decay kept off biases and
//! LayerNorm parameters, global-norm gradient clipping, and state that can be
//! saved with a checkpoint and restored (libtorch's C++ optimizers, as
//! exposed by tch, cannot export their moments, which rules out exact resume).
//! With a layer-wise learning-rate decay (ELECTRA's fine-tuning recipe) each
//! parameter's rate is scaled by its depth: the head at the full rate, each
//! encoder layer below it by one more factor of the decay, the embeddings last.
use super::config::{OptimizerConfig, OptimizerKind};
use crate::error::{Error, Result};
use tch::{Kind, Tensor, nn};

struct Param {
    name: String,
    var: Tensor,
    exp_avg: Tensor,
    exp_avg_sq: Tensor,
    decay: bool,
    /// Multiplies the step's learning rate (layer-wise decay; 1 without).
    lr_scale: f64,
}

/// Parameters of one weight-decay class packed into one buffer, so that an
/// update is a dozen kernel launches instead of a dozen per tensor (what
/// `torch.optim.Adam(foreach=True)` buys on a GPU; tch binds no `_foreach_*`).
struct FlatGroup {
    /// Indices into `Optimizer::params`.
    members: Vec<usize>,
    /// The packed weights: every member's variable is a view into it.
    var: Tensor,
    exp_avg: Tensor,
    exp_avg_sq: Tensor,
    decay: bool,
    lr_scale: f64,
}

/// Adam or AdamW with PyTorch's update rule (bias-corrected moments).
pub struct Optimizer {
    params: Vec<Param>,
    /// Packed groups on accelerators; empty on the CPU, where the fused
    /// per-tensor pass needs no gather.
    flat: Vec<FlatGroup>,
    kind: OptimizerKind,
    betas: (f64, f64),
    eps: f64,
    weight_decay: f64,
    step: i64,
}

/// True for parameters that conventionally get weight decay (not biases or
/// LayerNorm scales/shifts).
///
/// ```
/// use encoder_bench::train::optim::decays;
/// assert!(decays("bert.encoder.layer.0.attention.self.query.weight"));
/// assert!(!decays("bert.encoder.layer.0.output.LayerNorm.weight"));
/// assert!(!decays("classifier.bias"));
/// ```
pub fn decays(name: &str) -> bool {
    !(name.ends_with(".bias") || name.contains("LayerNorm") || name.contains("layer_norm"))
}

/// Depth of a parameter for layer-wise learning-rate decay, from its HF key
/// name: 0 for the embeddings, `i + 1` for encoder layer `i`, `layers + 1`
/// for everything above the encoder (pooler, heads).
///
/// ```
/// use encoder_bench::train::optim::layer_depth;
/// assert_eq!(layer_depth("electra.embeddings.word_embeddings.weight", 12), 0);
/// assert_eq!(layer_depth("electra.embeddings_project.weight", 12), 0);
/// assert_eq!(layer_depth("electra.encoder.layer.3.output.dense.weight", 12), 4);
/// assert_eq!(layer_depth("classifier.dense.weight", 12), 13);
/// ```
pub fn layer_depth(name: &str, layers: usize) -> usize {
    if let Some(i) = layer_index(name) {
        return i + 1;
    }
    if name.contains("embeddings") { 0 } else { layers + 1 }
}

/// The `i` of `.layer.i.` in a key name.
fn layer_index(name: &str) -> Option<usize> {
    let at = name.find("encoder.layer.")? + "encoder.layer.".len();
    name[at..].split('.').next()?.parse().ok()
}

/// Learning-rate scale of each named parameter under layer-wise decay
/// `decay`: `decay^(layers + 1 - depth)`, so the head keeps the full rate.
fn lr_scales(names: &[String], decay: Option<f64>) -> Vec<f64> {
    let Some(d) = decay else { return vec![1.0; names.len()] };
    let layers = names.iter().filter_map(|n| layer_index(n)).max().map_or(0, |i| i + 1);
    names.iter().map(|n| d.powi((layers + 1 - layer_depth(n, layers).min(layers + 1)) as i32)).collect()
}

impl Optimizer {
    /// Optimizes every trainable variable of `vs` per `cfg` (kind, betas,
    /// epsilon, weight decay; the learning rate comes with each [`step`](Self::step)).
    ///
    /// ```
    /// use encoder_bench::train::{OptimizerConfig, optim::Optimizer};
    /// let vs = tch::nn::VarStore::new(tch::Device::Cpu);
    /// let _w = vs.root().zeros("w", &[2]);
    /// let opt = Optimizer::new(&vs, &OptimizerConfig::transformers());
    /// assert_eq!(opt.steps(), 0);
    /// ```
    pub fn new(vs: &nn::VarStore, cfg: &OptimizerConfig) -> Self {
        let mut named: Vec<(String, Tensor)> = vs.variables().into_iter().filter(|(_, v)| v.requires_grad()).collect();
        // A fixed order makes updates, state files and clipping reproducible.
        named.sort_by(|a, b| a.0.cmp(&b.0));
        let scales = lr_scales(&named.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>(), cfg.layer_decay);
        let mut params: Vec<Param> = named
            .into_iter()
            .zip(scales)
            .map(|((name, var), lr_scale)| Param {
                decay: decays(&name),
                exp_avg: var.zeros_like(),
                exp_avg_sq: var.zeros_like(),
                name,
                var,
                lr_scale,
            })
            .collect();
        let packable = params.iter().all(|p| p.var.device() != tch::Device::Cpu && p.var.kind() == Kind::Float);
        let flat = if packable && !params.is_empty() { pack(&mut params) } else { Vec::new() };
        Optimizer { params, flat, kind: cfg.kind, betas: cfg.betas, eps: cfg.eps, weight_decay: cfg.weight_decay, step: 0 }
    }

    /// Optimizer steps taken so far.
    pub fn steps(&self) -> i64 {
        self.step
    }

    /// Clears gradients (sets them to zero in place, keeping their buffers).
    pub fn zero_grad(&self) {
        for p in &self.params {
            let mut g = p.var.grad();
            if g.defined() {
                let _ = g.zero_();
            }
        }
    }

    /// Scales gradients so that their global L2 norm is at most `max_norm`;
    /// returns the norm before clipping (a device scalar, not synchronised).
    pub fn clip_grad_norm(&self, max_norm: f64) -> Tensor {
        tch::no_grad(|| {
            let grads: Vec<Tensor> = self.params.iter().map(|p| p.var.grad()).filter(Tensor::defined).collect();
            let norms: Vec<Tensor> = grads.iter().map(|g| g.norm().to_kind(Kind::Float)).collect();
            let total = Tensor::stack(&norms, 0).norm();
            // clip_coef = min(1, max_norm / (total + 1e-6)), as torch.nn.utils.clip_grad_norm_
            // computes it: `float / tensor` is `tensor.reciprocal() * float` in
            // torch, a scalar operand and no tensor moved to the device (MPS
            // has no float64, and a host scalar per step would be a transfer).
            let coef = ((&total + 1e-6).reciprocal() * max_norm).clamp_max(1.0);
            for mut g in grads {
                let _ = g.g_mul_(&coef);
            }
            total
        })
    }

    /// One update with learning rate `lr`.
    ///
    /// fp32 tensors on the CPU take a fused pass written here (one read of
    /// weight, gradient and both moments, spread over the cores), since tch
    /// does not bind libtorch's `_fused_adam`; tensors elsewhere (CUDA, MPS)
    /// take the same arithmetic as tensor ops.
    pub fn step(&mut self, lr: f64) {
        self.step += 1;
        let (b1, b2) = self.betas;
        let h = Hyper {
            lr,
            b1,
            b2,
            eps: self.eps,
            bc1: 1.0 - b1.powi(self.step as i32),
            bc2_sqrt: (1.0 - b2.powi(self.step as i32)).sqrt(),
            decoupled: self.kind == OptimizerKind::AdamW,
        };
        tch::no_grad(|| {
            for group in &mut self.flat {
                let grads: Vec<Tensor> = group
                    .members
                    .iter()
                    .map(|&i| {
                        let (v, g) = (&self.params[i].var, self.params[i].var.grad());
                        if g.defined() { g.reshape(-1) } else { v.zeros_like().reshape(-1) }
                    })
                    .collect();
                let wd = if group.decay { self.weight_decay } else { 0.0 };
                let mut packed = Param {
                    name: String::new(),
                    var: group.var.shallow_clone(),
                    exp_avg: group.exp_avg.shallow_clone(),
                    exp_avg_sq: group.exp_avg_sq.shallow_clone(),
                    decay: group.decay,
                    lr_scale: group.lr_scale,
                };
                tensor_step(&mut packed, Tensor::cat(&grads, 0), wd, &Hyper { lr: h.lr * group.lr_scale, ..h });
            }
            if !self.flat.is_empty() {
                return;
            }
            for p in &mut self.params {
                let g = p.var.grad();
                if !g.defined() {
                    continue;
                }
                let wd = if p.decay { self.weight_decay } else { 0.0 };
                let hp = Hyper { lr: h.lr * p.lr_scale, ..h };
                if !fused_cpu_step(p, &g, wd, &hp) {
                    tensor_step(p, g, wd, &hp);
                }
            }
        });
    }

    /// Moments and step count, for a checkpoint (`exp_avg.<name>`, ...), on the CPU.
    pub fn state(&self) -> Vec<(String, Tensor)> {
        let mut out = vec![("step".to_string(), Tensor::from_slice(&[self.step]))];
        for p in &self.params {
            out.push((format!("exp_avg.{}", p.name), p.exp_avg.to_device(tch::Device::Cpu)));
            out.push((format!("exp_avg_sq.{}", p.name), p.exp_avg_sq.to_device(tch::Device::Cpu)));
        }
        out
    }

    /// Restores [`Optimizer::state`]; every parameter must be present with its shape.
    pub fn load_state(&mut self, state: &[(String, Tensor)], source: &std::path::Path) -> Result<()> {
        let map: std::collections::HashMap<&str, &Tensor> = state.iter().map(|(k, v)| (k.as_str(), v)).collect();
        let get = |k: &str, like: &Tensor| -> Result<Tensor> {
            let t = map.get(k).ok_or_else(|| Error::weights(source, Some(k), "missing from the optimizer state"))?;
            if t.size() != like.size() {
                return Err(Error::weights(source, Some(k), format!("shape mismatch: {:?} vs {:?}", t.size(), like.size())));
            }
            crate::device::to_device(&t.to_kind(like.kind()), like.device())
        };
        let step = map.get("step").ok_or_else(|| Error::weights(source, Some("step"), "missing from the optimizer state"))?;
        // A file's tensor: an empty or multi-element one would make libtorch panic.
        if step.numel() != 1 {
            return Err(Error::weights(
                source,
                Some("step"),
                format!("expected one step count, found a tensor of shape {:?}", step.size()),
            ));
        }
        self.step = step.reshape([1]).f_int64_value(&[0]).map_err(|e| Error::torch(format!("{}: reading `step`", source.display()), e))?;
        // Copied in place: on accelerators the moments are views into packed buffers.
        tch::no_grad(|| -> Result<()> {
            for p in &mut self.params {
                p.exp_avg.copy_(&get(&format!("exp_avg.{}", p.name), &p.var)?);
                p.exp_avg_sq.copy_(&get(&format!("exp_avg_sq.{}", p.name), &p.var)?);
            }
            Ok(())
        })?;
        Ok(())
    }
}

/// Packs the parameters of each decay class into one buffer: each variable's
/// data becomes a view of it (`set_data`, so the model's handles follow), and
/// the moments become views of packed moment buffers.
fn pack(params: &mut [Param]) -> Vec<FlatGroup> {
    let mut groups = Vec::new();
    let mut keys: Vec<(bool, f64)> = Vec::new();
    for p in params.iter() {
        if !keys.contains(&(p.decay, p.lr_scale)) {
            keys.push((p.decay, p.lr_scale));
        }
    }
    for (decay, lr_scale) in keys {
        let members: Vec<usize> = (0..params.len()).filter(|&i| params[i].decay == decay && params[i].lr_scale == lr_scale).collect();
        let var = tch::no_grad(|| Tensor::cat(&members.iter().map(|&i| params[i].var.detach().reshape(-1)).collect::<Vec<_>>(), 0));
        let (exp_avg, exp_avg_sq) = (var.zeros_like(), var.zeros_like());
        let mut offset = 0;
        for &i in &members {
            let p = &mut params[i];
            let (n, shape) = (p.var.numel() as i64, p.var.size());
            let view = |t: &Tensor| t.narrow(0, offset, n).view(shape.as_slice());
            tch::no_grad(|| p.var.set_data(&view(&var)));
            p.exp_avg = view(&exp_avg);
            p.exp_avg_sq = view(&exp_avg_sq);
            offset += n;
        }
        groups.push(FlatGroup { members, var, exp_avg, exp_avg_sq, decay, lr_scale });
    }
    groups
}

/// The scalars of one Adam update.
#[derive(Clone, Copy)]
struct Hyper {
    lr: f64,
    b1: f64,
    b2: f64,
    eps: f64,
    bc1: f64,
    bc2_sqrt: f64,
    decoupled: bool,
}

/// PyTorch's single-tensor Adam(W) as tensor ops (any device).
fn tensor_step(p: &mut Param, mut g: Tensor, wd: f64, h: &Hyper) {
    if wd > 0.0 {
        if h.decoupled {
            let _ = p.var.g_mul_scalar_(1.0 - h.lr * wd);
        } else {
            g = &g + &p.var * wd;
        }
    }
    let _ = p.exp_avg.lerp_(&g, 1.0 - h.b1);
    let _ = p.exp_avg_sq.g_mul_scalar_(h.b2).g_add_(&(&g * &g * (1.0 - h.b2)));
    let mut denom = p.exp_avg_sq.sqrt();
    let _ = denom.g_div_scalar_(h.bc2_sqrt).g_add_scalar_(h.eps);
    let _ = p.var.g_sub_(&(&p.exp_avg / denom * (h.lr / h.bc1)));
}

/// The f32 scalars of [`adam_update`].
#[derive(Clone, Copy)]
struct AdamScalars {
    l2: f32,
    decay: f32,
    w1: f32,
    b2: f32,
    one_b2: f32,
    bc2_sqrt: f32,
    eps: f32,
    step: f32,
}

crate::simd::simd_dispatch! {
    /// One Adam update of a chunk: the same f32 operations, in the same order,
    /// as torch's `_single_tensor_adam`. Vectorised at the CPU's full width:
    /// on the baseline (4 lanes) the square root and division made this pass
    /// compute-bound.
    fn adam_update(w: &mut [f32], gr: &[f32], m: &mut [f32], v: &mut [f32], k: AdamScalars) {
        // Equal lengths up front, so the loop carries no bounds checks.
        let n = w.len();
        let (gr, m, v) = (&gr[..n], &mut m[..n], &mut v[..n]);
        for i in 0..n {
            let mut g = gr[i];
            if k.l2 != 0.0 {
                g += w[i] * k.l2;
            }
            if k.decay != 1.0 {
                w[i] *= k.decay;
            }
            m[i] += k.w1 * (g - m[i]);
            v[i] = v[i] * k.b2 + k.one_b2 * g * g;
            w[i] += k.step * (m[i] / (v[i].sqrt() / k.bc2_sqrt + k.eps));
        }
    }
}

/// The fused CPU update; false when a tensor is not a contiguous fp32 CPU
/// tensor (the caller then takes [`tensor_step`]).
fn fused_cpu_step(p: &mut Param, g: &Tensor, wd: f64, h: &Hyper) -> bool {
    let ok = |t: &Tensor| t.device() == tch::Device::Cpu && t.kind() == Kind::Float && t.is_contiguous();
    let n = p.var.numel();
    if ![&p.var, g, &p.exp_avg, &p.exp_avg_sq].iter().all(|t| ok(t) && t.numel() == n) {
        return false;
    }
    // SAFETY: the four tensors are distinct, live (borrowed for this whole
    // call), contiguous fp32 CPU buffers of `n` elements; nothing else runs
    // on them meanwhile (no_grad, single caller).
    let (w, gr, m, v) = unsafe {
        (
            std::slice::from_raw_parts_mut(p.var.data_ptr() as *mut f32, n),
            std::slice::from_raw_parts(g.data_ptr() as *const f32, n),
            std::slice::from_raw_parts_mut(p.exp_avg.data_ptr() as *mut f32, n),
            std::slice::from_raw_parts_mut(p.exp_avg_sq.data_ptr() as *mut f32, n),
        )
    };
    let (decay, l2) = if h.decoupled { ((1.0 - h.lr * wd) as f32, 0.0f32) } else { (1.0f32, wd as f32) };
    let k = AdamScalars {
        l2,
        decay,
        w1: (1.0 - h.b1) as f32,
        b2: h.b2 as f32,
        one_b2: (1.0 - h.b2) as f32,
        bc2_sqrt: h.bc2_sqrt as f32,
        eps: h.eps as f32,
        step: (-h.lr / h.bc1) as f32,
    };
    const CHUNK: usize = 1 << 14;
    if n < 2 * CHUNK {
        adam_update(w, gr, m, v, k);
    } else {
        use rayon::prelude::*;
        w.par_chunks_mut(CHUNK)
            .zip(gr.par_chunks(CHUNK))
            .zip(m.par_chunks_mut(CHUNK))
            .zip(v.par_chunks_mut(CHUNK))
            .for_each(|(((w, g), m), v)| adam_update(w, g, m, v, k));
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A checkpoint's optimizer state is a file: an empty `step` tensor made
    /// `int64_value` panic inside libtorch.
    #[test]
    fn a_step_tensor_that_is_not_one_count_is_an_error() {
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let _w = vs.root().var("w", &[2], nn::Init::Const(1.0));
        let mut opt = Optimizer::new(&vs, &OptimizerConfig::default());
        let mut state = opt.state();
        let source = std::path::Path::new("optimizer.safetensors");
        for bad in [Tensor::zeros([0], (Kind::Int64, tch::Device::Cpu)), Tensor::from_slice(&[1i64, 2])] {
            state[0].1 = bad;
            let e = opt.load_state(&state, source).unwrap_err().to_string();
            assert!(e.contains("optimizer.safetensors") && e.contains("`step`"), "{e}");
        }
        state[0].1 = Tensor::from(7i64);
        opt.load_state(&state, source).unwrap();
        assert_eq!(opt.steps(), 7);
    }

    /// Our update against closed-form Adam on one scalar: after one step with
    /// gradient g, the parameter moves by exactly -lr·sign(g) (bias correction
    /// cancels), up to eps.
    #[test]
    fn first_adam_step_moves_by_lr() {
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let w = vs.root().var("w", &[2], nn::Init::Const(1.0));
        let cfg = OptimizerConfig::default();
        let mut opt = Optimizer::new(&vs, &cfg);
        (&w * Tensor::from_slice(&[3.0f32, -0.5])).sum(Kind::Float).backward();
        opt.step(0.1);
        let got = Vec::<f32>::try_from(&w).unwrap();
        assert!((got[0] - 0.9).abs() < 1e-6 && (got[1] - 1.1).abs() < 1e-6, "{got:?}");
    }

    #[test]
    fn adamw_decays_weights_but_not_biases() {
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let w = (vs.root() / "lin").var("weight", &[1], nn::Init::Const(1.0));
        let b = (vs.root() / "lin").var("bias", &[1], nn::Init::Const(1.0));
        let cfg = OptimizerConfig { kind: OptimizerKind::AdamW, weight_decay: 0.5, ..Default::default() };
        let mut opt = Optimizer::new(&vs, &cfg);
        ((&w + &b) * 0.0).sum(Kind::Float).backward(); // zero gradients: only decay acts
        opt.step(0.1);
        assert!((w.double_value(&[0]) - 0.95).abs() < 1e-6);
        assert!((b.double_value(&[0]) - 1.0).abs() < 1e-6);
    }

    #[test]
    fn clipping_bounds_the_global_norm() {
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let w = vs.root().var("w", &[2], nn::Init::Const(0.0));
        let opt = Optimizer::new(&vs, &OptimizerConfig::default());
        (&w * Tensor::from_slice(&[3.0f32, 4.0])).sum(Kind::Float).backward();
        let norm = opt.clip_grad_norm(1.0);
        assert!((norm.double_value(&[]) - 5.0).abs() < 1e-5);
        assert!((w.grad().norm().double_value(&[]) - 1.0).abs() < 1e-5);
    }

    /// The fused CPU pass and the tensor-op path agree over several steps,
    /// for Adam with L2 decay and for AdamW.
    #[test]
    fn fused_step_matches_tensor_ops() {
        let _rng = crate::rng_lock();
        for decoupled in [false, true] {
            tch::manual_seed(1);
            let n = 70_000; // above the parallel threshold
            let init = Tensor::randn([n], (Kind::Float, tch::Device::Cpu));
            let mk = || Param {
                name: "w".into(),
                var: init.copy(),
                exp_avg: init.zeros_like(),
                exp_avg_sq: init.zeros_like(),
                decay: true,
                lr_scale: 1.0,
            };
            let (mut a, mut b) = (mk(), mk());
            for step in 1..=5 {
                let g = Tensor::randn([n], (Kind::Float, tch::Device::Cpu));
                let h = Hyper {
                    lr: 1e-3,
                    b1: 0.9,
                    b2: 0.999,
                    eps: 1e-8,
                    bc1: 1.0 - 0.9f64.powi(step),
                    bc2_sqrt: (1.0 - 0.999f64.powi(step)).sqrt(),
                    decoupled,
                };
                assert!(fused_cpu_step(&mut a, &g, 0.01, &h));
                tensor_step(&mut b, g, 0.01, &h);
            }
            let diff = (&a.var - &b.var).abs().max().double_value(&[]);
            assert!(diff < 1e-6, "decoupled={decoupled}: fused and tensor paths differ by {diff}");
            let moved = (&a.var - &init).abs().max().double_value(&[]);
            assert!(moved > 1e-3, "the update did nothing ({moved})");
        }
    }

    /// The vectorised update is bit for bit the scalar f32 arithmetic
    /// (no fused multiply-adds or reordering crept in).
    #[test]
    fn vectorised_update_is_the_scalar_arithmetic() {
        let n = 10_003; // not a multiple of any vector width
        let val = |i: usize, s: u32| ((i as u32).wrapping_mul(2_654_435_761).wrapping_add(s) >> 8) as f32 / (1 << 24) as f32 - 0.5;
        let k = AdamScalars { l2: 0.01, decay: 0.999, w1: 0.1, b2: 0.999, one_b2: 0.001, bc2_sqrt: 0.0447, eps: 1e-8, step: -1e-3 };
        let (g, w0, m0, v0): (Vec<f32>, Vec<f32>, Vec<f32>, Vec<f32>) = (
            (0..n).map(|i| val(i, 1)).collect(),
            (0..n).map(|i| val(i, 2)).collect(),
            (0..n).map(|i| val(i, 3) * 0.1).collect(),
            (0..n).map(|i| val(i, 4).abs() * 0.01).collect(),
        );
        let (mut w, mut m, mut v) = (w0.clone(), m0.clone(), v0.clone());
        adam_update(&mut w, &g, &mut m, &mut v, k);
        for i in 0..n {
            let gi = std::hint::black_box(g[i] + w0[i] * k.l2);
            let wi = w0[i] * k.decay;
            let mi = m0[i] + k.w1 * (gi - m0[i]);
            let vi = v0[i] * k.b2 + k.one_b2 * gi * gi;
            let wi = wi + k.step * (mi / (vi.sqrt() / k.bc2_sqrt + k.eps));
            assert_eq!((w[i].to_bits(), m[i].to_bits(), v[i].to_bits()), (wi.to_bits(), mi.to_bits(), vi.to_bits()), "element {i}");
        }
    }

    /// The packed (accelerator) path gives the same weights as the
    /// per-tensor path, and the model's own handles see the packed data.
    /// Adam's first step moves every weight by lr·sign(g), so each parameter's
    /// move is its layer-wise rate: decay^(L+1-depth), the head at 1.
    #[test]
    fn layer_decay_scales_each_depth() {
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let names = [
            "electra.embeddings.word_embeddings.weight",
            "electra.encoder.layer.0.dense.weight",
            "electra.encoder.layer.1.dense.weight",
            "classifier.weight",
        ];
        let vars: Vec<Tensor> = names
            .iter()
            .map(|n| {
                let (path, leaf) = n.rsplit_once('.').unwrap();
                path.split('.').fold(vs.root(), |p, seg| p / seg).zeros(leaf, &[2])
            })
            .collect();
        let cfg = OptimizerConfig { layer_decay: Some(0.5), ..Default::default() };
        for packed in [false, true] {
            let mut opt = Optimizer::new(&vs, &cfg);
            if packed {
                opt.flat = pack(&mut opt.params);
            }
            opt.zero_grad();
            let loss = vars.iter().map(|v| v.sum(Kind::Float)).fold(Tensor::from(0.0f32), |a, b| a + b);
            loss.backward();
            let before: Vec<f64> = vars.iter().map(|v| v.double_value(&[0])).collect();
            opt.step(1.0);
            let moved: Vec<f64> = vars.iter().zip(&before).map(|(v, b)| b - v.double_value(&[0])).collect();
            for (m, want) in moved.iter().zip([0.125, 0.25, 0.5, 1.0]) {
                assert!((m - want).abs() < 1e-5, "packed {packed}: moved {moved:?}");
            }
            tch::no_grad(|| {
                vars.iter().for_each(|v| {
                    let _ = v.shallow_clone().zero_();
                })
            });
        }
        let e = OptimizerConfig { layer_decay: Some(1.5), ..Default::default() }.validate().unwrap_err().to_string();
        assert!(e.contains("layer_decay"), "{e}");
    }

    #[test]
    fn packed_groups_match_per_tensor_updates() {
        let _rng = crate::rng_lock();
        let run = |packed: bool| {
            tch::manual_seed(3);
            let vs = nn::VarStore::new(tch::Device::Cpu);
            let lin = nn::linear(vs.root() / "lin", 5, 3, Default::default());
            let ln = nn::layer_norm(vs.root() / "LayerNorm", vec![3], Default::default());
            let cfg = OptimizerConfig { kind: OptimizerKind::AdamW, weight_decay: 0.1, ..Default::default() };
            let mut opt = Optimizer::new(&vs, &cfg);
            if packed {
                opt.flat = pack(&mut opt.params);
                assert_eq!(opt.flat.len(), 2, "one group with decay, one without");
            }
            let x = Tensor::randn([4, 5], (Kind::Float, tch::Device::Cpu));
            for _ in 0..3 {
                opt.zero_grad();
                use tch::nn::Module;
                ln.forward(&lin.forward(&x)).pow_tensor_scalar(2).sum(Kind::Float).backward();
                opt.step(0.01);
            }
            let state = opt.state();
            (lin.ws.copy(), ln.ws.as_ref().unwrap().copy(), state)
        };
        let (w1, g1, s1) = run(false);
        let (w2, g2, s2) = run(true);
        assert!((&w1 - &w2).abs().max().double_value(&[]) < 1e-6);
        assert!((&g1 - &g2).abs().max().double_value(&[]) < 1e-6);
        assert!(
            s1.iter()
                .zip(&s2)
                .all(|((k1, a), (k2, b))| k1 == k2
                    && (a.to_kind(Kind::Double) - b.to_kind(Kind::Double)).abs().max().double_value(&[]) < 1e-6)
        );
        assert!((&w1 - Tensor::zeros_like(&w1)).abs().max().double_value(&[]) > 0.0);
    }
}
