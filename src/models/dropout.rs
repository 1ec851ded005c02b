//! Dropout with masks drawn in Rust, and the attention that uses it.
//!
//! libtorch draws a CPU dropout mask with `bernoulli_` at about 7 ns per
//! element on one thread, and `scaled_dot_product_attention` with dropout
//! leaves its fused kernel for a slow path. On a 2-core CPU that made dropout
//! about a quarter of a MiniLM training step (measured: a training-mode forward
//! took 214 ms against 99 ms without dropout). Here a CPU mask is a
//! counter-based hash of each element's index, vectorised (about 0.4 ns per
//! element with AVX-512), keyed by one draw from libtorch's generator, so `tch::manual_seed` still
//! decides every mask. Tensors on accelerators keep libtorch's own fused
//! dropout.
use rayon::prelude::*;
use tch::{Device, Kind, Tensor};

const CHUNK: usize = 1 << 16;
const PARALLEL_FROM: usize = 1 << 22;

/// Chris Wellons' `lowbias32` integer hash (a full-avalanche 32-bit mix).
#[inline(always)]
fn lowbias32(mut x: u32) -> u32 {
    x ^= x >> 16;
    x = x.wrapping_mul(0x7feb_352d);
    x ^= x >> 15;
    x = x.wrapping_mul(0x846c_a68b);
    x ^ (x >> 16)
}

crate::simd::simd_dispatch! {
    /// Writes `scale` (kept) or `0` into `out`; element `base + j` is kept when
    /// a two-round keyed hash of its index falls below `threshold`. Counter-based,
    /// so any chunk can be filled independently and the result does not depend
    /// on how the work is split. 32-bit arithmetic, so it vectorises.
    fn fill(out: &mut [f32], key: (u32, u32), base: u32, threshold: u32, scale: f32) {
        for (j, o) in out.iter_mut().enumerate() {
            let h = lowbias32(lowbias32(base.wrapping_add(j as u32) ^ key.0).wrapping_add(key.1));
            *o = scale * u32::from(h < threshold) as f32;
        }
    }
}

/// A `[size]` fp32 tensor of `1 / (1 - p)` (kept) and `0` (dropped), each
/// element kept with probability `1 - p` (to within 2^-32).
fn keep_mask(size: &[i64], p: f64) -> Tensor {
    // One draw from libtorch's CPU generator keys the whole mask.
    let seed = Tensor::randint(i64::MAX, [1], (Kind::Int64, Device::Cpu)).int64_value(&[0]) as u64;
    let scale = (1.0 / (1.0 - p)) as f32;
    let threshold = ((1.0 - p) * 4_294_967_296.0).round().min(u32::MAX as f64) as u32;
    let mask = Tensor::empty(size, (Kind::Float, Device::Cpu));
    let n = mask.numel();
    // SAFETY: `mask` is a fresh, contiguous fp32 CPU tensor of `n` elements that
    // nothing else references until this function returns it; every element
    // is written exactly once below.
    let out = unsafe { std::slice::from_raw_parts_mut(mask.data_ptr() as *mut f32, n) };
    let chunk_fill = |c: usize, chunk: &mut [f32]| {
        let start = (c * CHUNK) as u64;
        // Indices past 2^32 (a 16 GiB mask) move to another key instead of wrapping.
        let key = ((seed as u32), ((seed >> 32) as u32).wrapping_add(((start >> 32) as u32).wrapping_mul(0x9E37_79B9)));
        fill(chunk, key, start as u32, threshold, scale);
    };
    // libtorch's OpenMP workers keep spinning for a while after each op, so a
    // second pool only pays off on masks large enough to outlast that.
    if n >= PARALLEL_FROM {
        out.par_chunks_mut(CHUNK).enumerate().for_each(|(c, chunk)| chunk_fill(c, chunk));
    } else {
        out.chunks_mut(CHUNK).enumerate().for_each(|(c, chunk)| chunk_fill(c, chunk));
    }
    mask
}

/// Inverted dropout, `torch.nn.functional.dropout(xs, p, train)`: zeroes each
/// element with probability `p` and scales the rest by `1 / (1 - p)` when
/// `train`, and returns `xs` unchanged otherwise.
///
/// ```
/// use encoder_bench::models::dropout::dropout;
/// let x = tch::Tensor::ones([1000], (tch::Kind::Float, tch::Device::Cpu));
/// tch::manual_seed(0);
/// let a = dropout(&x, 0.5, true);
/// tch::manual_seed(0);
/// assert!(a.equal(&dropout(&x, 0.5, true)));   // the seed decides the mask
/// assert!(dropout(&x, 0.5, false).equal(&x));  // identity outside training
/// let kept = a.gt(0.0).sum(tch::Kind::Int64).int64_value(&[]);
/// assert!((400..600).contains(&kept));
/// ```
pub fn dropout(xs: &Tensor, p: f64, train: bool) -> Tensor {
    if !train || p <= 0.0 {
        return xs.shallow_clone();
    }
    if p >= 1.0 || xs.device() != Device::Cpu || !matches!(xs.kind(), Kind::Float | Kind::BFloat16 | Kind::Double) {
        return xs.dropout(p, train);
    }
    let mask = keep_mask(&xs.size(), p);
    if xs.kind() == Kind::Float { xs * mask } else { xs * mask.to_kind(xs.kind()) }
}

/// Multi-head attention `softmax(q·kᵀ/√d + mask)·v` over `[batch, heads,
/// seq, head_dim]` tensors; `mask` is bool `[batch, 1, 1, seq]`, true where a
/// key may be attended to (`None`: all may). Without dropout this is libtorch's fused SDPA
/// kernel; with dropout on the CPU the probabilities are computed explicitly
/// (softmax in fp32) and dropped with [`dropout`]'s mask, which is what SDPA
/// itself falls back to, minus its slow mask.
pub fn attention(q: &Tensor, k: &Tensor, v: &Tensor, mask: Option<&Tensor>, p: f64, train: bool) -> Tensor {
    let p = if train { p } else { 0.0 };
    if p <= 0.0 || q.device() != Device::Cpu {
        return Tensor::scaled_dot_product_attention(q, k, v, mask, p, false, None, false);
    }
    let head_dim = *q.size().last().expect("attention inputs are [batch, heads, seq, head_dim]");
    // Scaling q rather than the scores: [seq, head_dim] is smaller than [seq, seq].
    let scores = (q * (1.0 / (head_dim as f64).sqrt())).matmul(&k.transpose(-2, -1)).to_kind(Kind::Float);
    let scores = match mask {
        Some(m) => scores.masked_fill(&m.logical_not(), f64::from(f32::MIN)),
        None => scores,
    };
    let probs = scores.softmax(-1, Kind::Float);
    dropout(&probs, p, true).to_kind(v.kind()).matmul(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mask_keeps_the_right_share_and_scales_the_kept() {
        let _rng = crate::rng_lock();
        tch::manual_seed(3);
        let x = Tensor::ones([200_000], (Kind::Float, Device::Cpu));
        let y = dropout(&x, 0.1, true);
        let kept = y.gt(0.0).sum(Kind::Int64).int64_value(&[]) as f64 / 200_000.0;
        assert!((kept - 0.9).abs() < 0.003, "kept {kept}");
        let values = Vec::<f32>::try_from(&y).unwrap();
        assert!(values.iter().all(|&v| v == 0.0 || (v - 1.0 / 0.9).abs() < 1e-6));
        // Unbiased: the mean stays at 1.
        assert!((y.mean(Kind::Float).double_value(&[]) - 1.0).abs() < 0.005);
    }

    #[test]
    fn masks_follow_the_torch_seed_and_differ_between_calls() {
        let _rng = crate::rng_lock();
        let x = Tensor::ones([4096], (Kind::Float, Device::Cpu));
        tch::manual_seed(11);
        let (a, b) = (dropout(&x, 0.3, true), dropout(&x, 0.3, true));
        tch::manual_seed(11);
        assert!(a.equal(&dropout(&x, 0.3, true)));
        assert!(!a.equal(&b), "two calls drew the same mask");
        // Neighbouring elements are not correlated (a counter-based stream can fail this).
        let m = a.gt(0.0).to_kind(Kind::Float);
        let both = (m.narrow(0, 0, 4095) * m.narrow(0, 1, 4095)).mean(Kind::Float).double_value(&[]);
        assert!((both - 0.49).abs() < 0.03, "P(keep i and i+1) = {both}");
    }

    #[test]
    fn gradient_is_the_mask_and_bf16_stays_bf16() {
        let _rng = crate::rng_lock();
        tch::manual_seed(5);
        let x = Tensor::randn([64, 32], (Kind::Float, Device::Cpu)).set_requires_grad(true);
        let y = dropout(&x, 0.2, true);
        y.sum(Kind::Float).backward();
        let g = x.grad();
        // Wherever the output is not zero, d y / d x is the scale, elsewhere 0.
        let expected = y.ne(0.0).to_kind(Kind::Float) * (1.0 / 0.8);
        assert!((g - expected).abs().max().double_value(&[]) < 1e-6);
        let h = dropout(&Tensor::ones([8], (Kind::BFloat16, Device::Cpu)), 0.5, true);
        assert_eq!(h.kind(), Kind::BFloat16);
    }

    #[test]
    fn explicit_attention_matches_sdpa_without_dropout_and_respects_the_mask() {
        let _rng = crate::rng_lock();
        tch::manual_seed(7);
        let opts = (Kind::Float, Device::Cpu);
        let (q, k, v) = (Tensor::randn([2, 3, 5, 4], opts), Tensor::randn([2, 3, 5, 4], opts), Tensor::randn([2, 3, 5, 4], opts));
        let mask = Tensor::from_slice(&[true, true, true, false, false, true, true, true, true, true]).view([2, 1, 1, 5]);
        let mask = Some(&mask);
        let fused = attention(&q, &k, &v, mask, 0.0, true);
        // p → 0 keeps every element but takes the explicit path.
        let explicit = attention(&q, &k, &v, mask, 1e-12, true);
        assert!((&fused - &explicit).abs().max().double_value(&[]) < 1e-5);
        // Changing a masked-out key/value changes nothing.
        let v2 = v.copy();
        let _ = v2.get(0).narrow(1, 3, 2).fill_(100.0);
        let masked = attention(&q, &k, &v2, mask, 1e-12, true);
        assert!((&explicit - &masked).abs().max().double_value(&[]) < 1e-5);
        // Without a mask both paths agree too.
        let open = attention(&q, &k, &v, None, 1e-12, true);
        assert!((&open - &attention(&q, &k, &v, None, 0.0, true)).abs().max().double_value(&[]) < 1e-5);
        assert!((&open - &explicit).abs().max().double_value(&[]) > 1e-3, "the mask changed nothing");
        // With dropout the expectation is preserved: averaged over many masks.
        let mean =
            Tensor::stack(&(0..400).map(|_| attention(&q, &k, &v, mask, 0.3, true)).collect::<Vec<_>>(), 0).mean_dim(0, false, Kind::Float);
        assert!((&mean - &fused).abs().mean(Kind::Float).double_value(&[]) < 0.05);
    }
}
