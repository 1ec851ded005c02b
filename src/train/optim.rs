//! Adam / AdamW over a var store, with weight decay kept off biases and
//! LayerNorm parameters, global-norm gradient clipping, and state that can be
//! saved with a checkpoint and restored (libtorch's C++ optimizers, as
//! exposed by tch, cannot export their moments, which rules out exact resume).
use super::config::{OptimizerKind, TrainConfig};
use crate::{Error, Result};
use tch::{Kind, Tensor, nn};

struct Param {
    name: String,
    var: Tensor,
    exp_avg: Tensor,
    exp_avg_sq: Tensor,
    decay: bool,
}

/// Adam or AdamW with PyTorch's update rule (bias-corrected moments).
pub struct Optimizer {
    params: Vec<Param>,
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

impl Optimizer {
    /// Optimizes every trainable variable of `vs`.
    pub fn new(vs: &nn::VarStore, cfg: &TrainConfig) -> Self {
        let mut named: Vec<(String, Tensor)> = vs.variables().into_iter().filter(|(_, v)| v.requires_grad()).collect();
        // A fixed order makes updates, state files and clipping reproducible.
        named.sort_by(|a, b| a.0.cmp(&b.0));
        let params = named
            .into_iter()
            .map(|(name, var)| Param { decay: decays(&name), exp_avg: var.zeros_like(), exp_avg_sq: var.zeros_like(), name, var })
            .collect();
        Optimizer { params, kind: cfg.optimizer, betas: cfg.betas, eps: cfg.eps, weight_decay: cfg.weight_decay, step: 0 }
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
            // clip_coef = min(1, max_norm / (total + 1e-6)), as torch.nn.utils.clip_grad_norm_.
            let coef = (Tensor::from(max_norm).to_device(total.device()) / (&total + 1e-6)).clamp_max(1.0);
            for mut g in grads {
                let _ = g.g_mul_(&coef);
            }
            total
        })
    }

    /// One update with learning rate `lr`.
    pub fn step(&mut self, lr: f64) {
        self.step += 1;
        let (b1, b2) = self.betas;
        let bc1 = 1.0 - b1.powi(self.step as i32);
        let bc2 = 1.0 - b2.powi(self.step as i32);
        tch::no_grad(|| {
            for p in &mut self.params {
                let mut g = p.var.grad();
                if !g.defined() {
                    continue;
                }
                let wd = if p.decay { self.weight_decay } else { 0.0 };
                match self.kind {
                    OptimizerKind::AdamW if wd > 0.0 => {
                        let _ = p.var.g_mul_scalar_(1.0 - lr * wd);
                    }
                    OptimizerKind::Adam if wd > 0.0 => g = &g + &p.var * wd,
                    _ => {}
                }
                // Seven passes over each tensor, in place where possible: the
                // word-embedding table makes this the costliest part of a step.
                let _ = p.exp_avg.lerp_(&g, 1.0 - b1);
                let _ = p.exp_avg_sq.lerp_(&(&g * &g), 1.0 - b2);
                // var += exp_avg / denom with denom = (sqrt(v / bc2) + eps) · (-bc1 / lr),
                // i.e. PyTorch's step -lr/bc1 · m / (sqrt(v)/sqrt(bc2) + eps).
                if lr == 0.0 {
                    continue; // first warmup step: moments advance, weights stay
                }
                let mut denom = p.exp_avg_sq.sqrt();
                let _ = denom.g_div_scalar_(bc2.sqrt()).g_add_scalar_(self.eps).g_mul_scalar_(-bc1 / lr);
                let _ = p.var.addcdiv_(&p.exp_avg, &denom);
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
            Ok(t.to_kind(like.kind()).to_device(like.device()))
        };
        let step = map.get("step").ok_or_else(|| Error::weights(source, Some("step"), "missing from the optimizer state"))?;
        self.step = step.int64_value(&[0]);
        for p in &mut self.params {
            p.exp_avg = get(&format!("exp_avg.{}", p.name), &p.var)?;
            p.exp_avg_sq = get(&format!("exp_avg_sq.{}", p.name), &p.var)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Our update against closed-form Adam on one scalar: after one step with
    /// gradient g, the parameter moves by exactly -lr·sign(g) (bias correction
    /// cancels), up to eps.
    #[test]
    fn first_adam_step_moves_by_lr() {
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let w = vs.root().var("w", &[2], nn::Init::Const(1.0));
        let cfg = TrainConfig::default();
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
        let cfg = TrainConfig { optimizer: OptimizerKind::AdamW, weight_decay: 0.5, ..Default::default() };
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
        let opt = Optimizer::new(&vs, &TrainConfig::default());
        (&w * Tensor::from_slice(&[3.0f32, 4.0])).sum(Kind::Float).backward();
        let norm = opt.clip_grad_norm(1.0);
        assert!((norm.double_value(&[]) - 5.0).abs() < 1e-5);
        assert!((w.grad().norm().double_value(&[]) - 1.0).abs() < 1e-5);
    }
}
