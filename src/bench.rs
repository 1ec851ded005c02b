//! Throughput of the seed's training and evaluation work, measured the way
//! `bench/reference.py` measures Python `transformers`, so the two can be
//! compared side by side (`scripts/bench-vs-python`).
//!
//! A timed phase covers everything from raw texts to results: tokenising
//! the texts it consumes, batching, the steps, and the final device
//! synchronisation. Warm-up steps run first and are not timed.
use crate::data::{Dataset, Encoded, Padding};
use crate::error::{Error, Result};
use crate::models::{ModelConfig, Precision, TextClassifier};
use crate::tokenizer::TextTokenizer;
use crate::train::flops::{TRAIN_FACTOR, fine_tuning_flops};
use crate::train::optim::Optimizer;
use crate::train::{ProgressMode, TrainConfig, train_step, validate};
use serde::{Deserialize, Serialize};
use std::time::Instant;
use tch::{Device, Kind, Tensor};

/// What to measure.
///
/// ```
/// let cfg = encoder_bench::bench::BenchConfig::default();
/// assert_eq!((cfg.batch_size, cfg.max_len), (16, 64));
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct BenchConfig {
    /// Examples per step (training and evaluation).
    pub batch_size: usize,
    /// Truncation length.
    pub max_len: usize,
    /// Untimed steps before each timed phase.
    pub warmup_steps: usize,
    /// Timed training steps.
    pub train_steps: usize,
    /// Timed evaluation batches.
    pub eval_batches: usize,
    /// fp32 or bf16 matrix products.
    pub precision: Precision,
    /// Pad to `max_len` (the seed) or per batch.
    pub padding: Padding,
}

impl Default for BenchConfig {
    fn default() -> Self {
        BenchConfig {
            batch_size: 16,
            max_len: 64,
            warmup_steps: 3,
            train_steps: 10,
            eval_batches: 10,
            precision: Precision::Fp32,
            padding: Padding::Dynamic,
        }
    }
}

/// The most texts one phase of a benchmark may use (steps × batch size):
/// they are copied and tokenised before the phase starts.
pub const MAX_BENCH_TEXTS: usize = 1 << 17;

/// The largest `n` of [`matmul_gflops`] the CLI takes: three `n`×`n` fp32
/// matrices (3 GiB) fit in memory with room to spare.
pub const MAX_MATMUL: i64 = 16_384;

impl BenchConfig {
    /// Checks ranges before anything is tokenised or built; errors name the
    /// field. (`max_len` is checked against the model by [`run`].)
    ///
    /// ```
    /// use encoder_bench::bench::BenchConfig;
    /// assert!(BenchConfig::default().validate().is_ok());
    /// let e = BenchConfig { train_steps: usize::MAX, ..Default::default() }.validate().unwrap_err().to_string();
    /// assert!(e.contains("train_steps"), "{e}");
    /// ```
    pub fn validate(&self) -> Result<()> {
        use crate::train::config::{MAX_BATCH_SIZE, MAX_SEQUENCE_LEN, check_count};
        check_count("batch_size", self.batch_size, MAX_BATCH_SIZE)?;
        if !(2..=MAX_SEQUENCE_LEN).contains(&self.max_len) {
            return Err(Error::invalid("max_len", format!("{} is outside 2..={MAX_SEQUENCE_LEN}", self.max_len)));
        }
        check_count("train_steps", self.train_steps, usize::MAX)?;
        check_count("eval_batches", self.eval_batches, usize::MAX)?;
        for (name, steps) in [("warmup_steps", self.warmup_steps), ("train_steps", self.train_steps), ("eval_batches", self.eval_batches)] {
            if steps.checked_mul(self.batch_size).is_none_or(|n| n > MAX_BENCH_TEXTS) {
                return Err(Error::invalid(
                    name,
                    format!("{steps} × batch size {} is more than {MAX_BENCH_TEXTS} texts for one phase", self.batch_size),
                ));
            }
        }
        Ok(())
    }
}

/// Checks the size of the matrix product `bench --matmul` times (0: none).
///
/// ```
/// assert!(encoder_bench::bench::check_matmul_size(0).is_ok());
/// assert!(encoder_bench::bench::check_matmul_size(1_000_000_000).is_err());
/// ```
pub fn check_matmul_size(n: i64) -> Result<()> {
    if (0..=MAX_MATMUL).contains(&n) { Ok(()) } else { Err(Error::invalid("matmul", format!("{n}: expected 0 (skip) up to {MAX_MATMUL}"))) }
}

/// The settings of `encoder-bench check-device`: how many texts, cut at
/// what length, and the largest fp32 logit difference allowed.
///
/// ```
/// use encoder_bench::bench::DeviceCheck;
/// assert!(DeviceCheck { n: 16, max_len: 128, tol: 1e-3 }.validate().is_ok());
/// assert!(DeviceCheck { n: 0, max_len: 128, tol: 1e-3 }.validate().is_err());
/// assert!(DeviceCheck { n: 16, max_len: 128, tol: f64::NAN }.validate().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DeviceCheck {
    /// Texts to run (the first `n` of the data).
    pub n: usize,
    /// Truncation length.
    pub max_len: usize,
    /// Largest allowed |logit difference| in fp32.
    pub tol: f64,
}

impl DeviceCheck {
    /// Checks ranges; errors name the field. (`max_len` is checked against
    /// the model once the texts are encoded.)
    pub fn validate(&self) -> Result<()> {
        use crate::train::config::MAX_SEQUENCE_LEN;
        if self.n == 0 {
            return Err(Error::invalid("n", "expected at least 1 text"));
        }
        if !(2..=MAX_SEQUENCE_LEN).contains(&self.max_len) {
            return Err(Error::invalid("max_len", format!("{} is outside 2..={MAX_SEQUENCE_LEN}", self.max_len)));
        }
        if !(self.tol.is_finite() && self.tol >= 0.0) {
            return Err(Error::invalid("tol", format!("{}: expected a number >= 0", self.tol)));
        }
        Ok(())
    }
}

/// Figures of one [`run`], in the units `bench/reference.py` prints.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BenchResult {
    /// What was measured (a model name or path).
    pub model: String,
    /// Trainable parameters.
    pub params: i64,
    /// Device name.
    pub device: String,
    /// The settings.
    pub config: BenchConfig,
    /// Training samples per second (tokenising included).
    pub train_samples_per_s: f64,
    /// Evaluation samples per second (tokenising included).
    pub eval_samples_per_s: f64,
    /// Mean padded sequence length of the timed training batches.
    pub mean_seq_len: f64,
    /// Model FLOPs of one training sample (3 × forward).
    pub train_flops_per_sample: f64,
    /// Achieved model FLOP/s in training, in GFLOP/s.
    pub train_gflops: f64,
    /// Achieved model FLOP/s in evaluation, in GFLOP/s.
    pub eval_gflops: f64,
    /// Peak resident memory of the process so far, MiB (Linux only).
    pub peak_rss_mib: Option<f64>,
}

/// Waits for queued device work (CUDA); a no-op on the CPU.
pub fn synchronize(device: Device) {
    if let Device::Cuda(i) = device {
        tch::Cuda::synchronize(i as i64);
    }
}

/// Measured GFLOP/s of an `n`×`n`×`n` matrix product in `kind` on `device`
/// (the ceiling the model figures are compared with).
pub fn matmul_gflops(device: Device, n: i64, kind: Kind) -> f64 {
    let a = Tensor::randn([n, n], (kind, device));
    let b = Tensor::randn([n, n], (kind, device));
    for _ in 0..2 {
        let _ = a.matmul(&b);
    }
    synchronize(device);
    let (start, mut reps) = (Instant::now(), 0u32);
    while reps < 3 || start.elapsed().as_secs_f64() < 1.0 {
        let _ = a.matmul(&b);
        reps += 1;
        synchronize(device);
    }
    2.0 * (n as f64).powi(3) * reps as f64 / start.elapsed().as_secs_f64() / 1e9
}

/// Peak resident set size of this process in MiB (`VmHWM`), Linux only.
pub fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// `n` examples taken from `ds` in order, cycling when it is shorter.
fn cycled(ds: &Dataset, start: usize, n: usize) -> Dataset {
    let idx: Vec<usize> = (0..n).map(|i| (start + i) % ds.len()).collect();
    ds.subset(&idx)
}

fn train_config(cfg: &BenchConfig) -> TrainConfig {
    // The seed's optimisation (Adam 1e-5, label smoothing 0.001, no clipping).
    TrainConfig {
        batch_size: cfg.batch_size,
        max_len: cfg.max_len,
        padding: cfg.padding,
        precision: cfg.precision,
        shuffle: false,
        progress: ProgressMode::Quiet,
        eval_batch_size: Some(cfg.batch_size),
        ..TrainConfig::default()
    }
}

/// Forward FLOPs per example of the batches `enc` is cut into (see [`crate::train::flops`]).
fn forward_flops_per_example(config: &ModelConfig, enc: &Encoded, batch: usize, padding: Padding, classes: i64) -> f64 {
    fine_tuning_flops(config, enc, batch, padding, 1, classes as usize) / TRAIN_FACTOR / enc.len().max(1) as f64
}

fn mean_len(enc: &Encoded, batch: usize, padding: Padding) -> f64 {
    let widths = enc.batch_widths(batch, padding, None);
    widths.iter().sum::<usize>() as f64 / widths.len().max(1) as f64
}

/// Measures training and evaluation throughput of `model` on texts cycled
/// from `data`. The model is trained by the timed steps (use a copy you
/// can discard).
pub fn run(name: &str, model: &mut dyn TextClassifier, tok: &TextTokenizer, data: &Dataset, cfg: &BenchConfig) -> Result<BenchResult> {
    if data.is_empty() {
        return Err(Error::invalid("bench data", "is empty"));
    }
    cfg.validate()?;
    let max_pos = model.config().max_position_embeddings();
    if cfg.max_len < 2 || cfg.max_len as i64 > max_pos {
        return Err(Error::invalid("max_len", format!("{} is outside 2..={max_pos} (the model's max_position_embeddings)", cfg.max_len)));
    }
    let device = model.var_store().device();
    cfg.precision.check_device(device)?;
    // As `fit` does, before the first timed step.
    crate::device::retain_freed_cpu_memory();
    let tc = train_config(cfg);
    let bs = cfg.batch_size;
    let mut opt = Optimizer::new(model.var_store(), &tc.optimizer);

    let warm = tok.encode_dataset(&cycled(data, 0, cfg.warmup_steps * bs), cfg.max_len)?;
    crate::models::check_encoded(&warm, model, "bench texts")?;
    for b in warm.batches(bs, cfg.padding, None, device)? {
        let _ = train_step(model, &mut opt, &b, &tc, tc.optimizer.learning_rate);
    }
    synchronize(device);
    let texts = cycled(data, cfg.warmup_steps * bs, cfg.train_steps * bs);
    let start = Instant::now();
    let enc = tok.encode_dataset(&texts, cfg.max_len)?;
    crate::models::check_encoded(&enc, model, "bench texts")?;
    let mut loss = Tensor::zeros([], (Kind::Float, device));
    for b in enc.batches(bs, cfg.padding, None, device)? {
        loss += train_step(model, &mut opt, &b, &tc, tc.optimizer.learning_rate);
    }
    let loss = loss.double_value(&[]); // synchronises
    let train_s = start.elapsed().as_secs_f64();
    if !loss.is_finite() {
        return Err(Error::Training(format!("benchmark loss became {loss}")));
    }
    let seq = mean_len(&enc, bs, cfg.padding);
    let classes = model.num_classes();
    let fwd = forward_flops_per_example(model.config(), &enc, bs, cfg.padding, classes);

    if cfg.warmup_steps > 0 {
        validate(model, &warm, &tc)?;
    }
    let texts = cycled(data, 0, cfg.eval_batches * bs);
    let start = Instant::now();
    let enc = tok.encode_dataset(&texts, cfg.max_len)?;
    validate(model, &enc, &tc)?;
    let eval_s = start.elapsed().as_secs_f64();
    let eval_fwd = forward_flops_per_example(model.config(), &enc, bs, cfg.padding, classes);
    let train_sps = (cfg.train_steps * bs) as f64 / train_s;
    let eval_sps = (cfg.eval_batches * bs) as f64 / eval_s;
    Ok(BenchResult {
        model: name.to_string(),
        params: model.num_parameters(),
        device: crate::device::device_name(device),
        config: cfg.clone(),
        train_samples_per_s: train_sps,
        eval_samples_per_s: eval_sps,
        mean_seq_len: seq,
        train_flops_per_sample: 3.0 * fwd,
        train_gflops: 3.0 * fwd * train_sps / 1e9,
        eval_gflops: eval_fwd * eval_sps / 1e9,
        peak_rss_mib: peak_rss_mib(),
    })
}
