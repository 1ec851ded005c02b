//! Evaluation forward passes over an encoded set, on one stream or several.
//!
//! On a CPU, the batches of a small encoder are too small to keep libtorch's
//! threads busy: every op is a parallel region of its own, and most of them
//! are too short to split well. So when the model allows concurrent use
//! ([`TextClassifier::as_sync`]) and its activations are small, evaluation on
//! a multi-core CPU runs several streams, each taking the next batch and
//! running it with its share of the threads; on a 2-core CPU that is two
//! single-threaded streams. The outputs come back in batch order.
//!
//! Measured on a 2-core AVX512-BF16 CPU, batch 16, MAX_LEN 64, alternating
//! inside one process: the seed-shaped ELECTRA (hidden 196) evaluated about
//! 30% faster in bf16 and 10% faster in fp32; MiniLM (hidden 384) was
//! unchanged in bf16 and a few percent slower in fp32, and at MAX_LEN 512
//! neither changed, hence [`STREAMS_UP_TO`].
use super::config::TrainConfig;
use super::loss::loss_fn;
use super::progress::Progress;
use crate::data::{Batch, Encoded};
use crate::error::Result;
use crate::models::precision::with_cast_cache;
use crate::models::{TextClassifier, with_precision};
use std::sync::Mutex;
use tch::{Device, Kind, Tensor};

/// Streams are used when a batch's `[tokens, hidden]` activations have at
/// most this many elements (ops any larger split well across threads).
const STREAMS_UP_TO: usize = 1 << 18;

/// Most streams run at once; past this, the streams' own copies of the bf16
/// weights cost more memory than the extra overlap gains.
const MAX_STREAMS: usize = 4;

/// One evaluated batch.
pub(crate) struct BatchOutput {
    /// fp32 logits `[batch, classes]`.
    pub logits: Tensor,
    /// Summed (not mean) loss of the batch's rows, a scalar tensor.
    pub loss_sum: Tensor,
    /// Rows' positions in the encoded set.
    pub indices: Vec<usize>,
}

fn forward(model: &dyn TextClassifier, b: &Batch, cfg: &TrainConfig) -> BatchOutput {
    let logits = with_precision(cfg.precision, || model.forward_t(&b.ids, &b.mask, Some(&b.token_type_ids), false)).to_kind(Kind::Float);
    let loss_sum = loss_fn(&logits, &b.targets, cfg.label_smoothing) * b.size() as f64;
    BatchOutput { logits, loss_sum, indices: b.indices.clone() }
}

/// How many streams to evaluate `data` with: 1 unless the model runs on a
/// CPU with several threads, supports concurrent use, and its batches are
/// small (see [`STREAMS_UP_TO`]).
pub(crate) fn streams(model: &dyn TextClassifier, data: &Encoded, cfg: &TrainConfig) -> usize {
    let threads = tch::get_num_threads().max(1) as usize;
    if model.var_store().device() != Device::Cpu || model.as_sync().is_none() || threads < 2 {
        return 1;
    }
    let widths = data.batch_widths(eval_batch_size(cfg), cfg.padding, None);
    let n = widths.len().max(1) as f64;
    let mean_tokens = data.len() as f64 / n * widths.iter().sum::<usize>() as f64 / n;
    if mean_tokens * model.config().hidden_size() as f64 > STREAMS_UP_TO as f64 {
        return 1;
    }
    threads.min(MAX_STREAMS).min(widths.len()).max(1)
}

/// The validation batch size of `cfg`.
pub(crate) fn eval_batch_size(cfg: &TrainConfig) -> usize {
    cfg.eval_batch_size.unwrap_or(cfg.batch_size * 2).max(1)
}

/// Runs `model` without gradients or dropout over the batches of `data`
/// (the validation batch size and padding of `cfg`), in batch order, with a
/// progress bar.
pub(crate) fn eval_batches(model: &dyn TextClassifier, data: &Encoded, cfg: &TrainConfig) -> Result<Vec<BatchOutput>> {
    crate::device::retain_freed_cpu_memory();
    let n_streams = streams(model, data, cfg);
    run(model, data, cfg, n_streams)
}

fn run(model: &dyn TextClassifier, data: &Encoded, cfg: &TrainConfig, n_streams: usize) -> Result<Vec<BatchOutput>> {
    let batch_size = eval_batch_size(cfg);
    let bar = Progress::new(data.len().div_ceil(batch_size) as u64, "valid", cfg.progress).summarised();
    let queue = Mutex::new(data.batches(batch_size, cfg.padding, None, model.var_store().device())?.enumerate());
    // Takes batches until none are left: the whole set on one stream, a share
    // of it on each of several.
    let drain = |m: &dyn TextClassifier| {
        tch::no_grad(|| {
            with_cast_cache(|| {
                let mut done = Vec::new();
                loop {
                    let next = queue.lock().unwrap_or_else(|e| e.into_inner()).next();
                    let Some((i, b)) = next else { break };
                    done.push((i, forward(m, &b, cfg)));
                    bar.inc(1);
                }
                done
            })
        })
    };
    let mut outputs: Vec<(usize, BatchOutput)> = match model.as_sync().filter(|_| n_streams > 1) {
        None => drain(model),
        Some(shared) => {
            // `set_num_threads` also sets the default for threads libtorch
            // starts later, so the caller's count is put back on the way out
            // (a panic included).
            struct RestoreThreads(i32);
            impl Drop for RestoreThreads {
                fn drop(&mut self) {
                    tch::set_num_threads(self.0);
                }
            }
            let threads = tch::get_num_threads().max(1);
            let _restore = RestoreThreads(threads);
            let per_stream = (threads / n_streams as i32).max(1);
            std::thread::scope(|s| {
                let workers: Vec<_> = (0..n_streams)
                    .map(|_| {
                        let drain = &drain;
                        s.spawn(move || {
                            // Thread counts are per thread in libtorch's OpenMP backend.
                            tch::set_num_threads(per_stream);
                            drain(shared)
                        })
                    })
                    .collect();
                workers.into_iter().flat_map(|w| w.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))).collect()
            })
        }
    };
    bar.finish();
    outputs.sort_by_key(|(i, _)| *i);
    Ok(outputs.into_iter().map(|(_, out)| out).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{LabelMap, Padding};
    use crate::models::{BertConfig, ModelConfig, Precision, random_classifier};
    use crate::train::ProgressMode;

    fn model(hidden: i64) -> Box<dyn TextClassifier> {
        let cfg: BertConfig = serde_json::from_str(&format!(
            r#"{{"vocab_size": 100, "hidden_size": {hidden}, "num_hidden_layers": 2, "num_attention_heads": 2,
                "intermediate_size": 37, "max_position_embeddings": 64, "pad_token_id": 0}}"#
        ))
        .unwrap();
        let _rng = crate::rng_lock();
        random_classifier(&ModelConfig::Bert(cfg), LabelMap::numbered(3), Device::Cpu, 4)
    }

    /// Texts of 2 to 20 tokens, so batches differ in width.
    fn data(n: usize, max_len: usize) -> Encoded {
        let ids: Vec<Vec<i64>> = (0..n).map(|i| (0..2 + (i * 7) % 19).map(|j| 1 + ((i * 13 + j * 5) % 99) as i64).collect()).collect();
        Encoded {
            type_ids: ids.iter().map(|v| vec![0; v.len()]).collect(),
            ids,
            targets: (0..n).map(|i| (i % 3) as i64).collect(),
            pad_id: 0,
            max_len,
        }
    }

    fn cfg(precision: Precision, padding: Padding) -> TrainConfig {
        TrainConfig { eval_batch_size: Some(4), precision, padding, progress: ProgressMode::Quiet, ..TrainConfig::default() }
    }

    #[test]
    fn streams_return_the_serial_outputs_in_batch_order() {
        let (m, enc) = (model(32), data(41, 32));
        let threads = tch::get_num_threads();
        for precision in [Precision::Fp32, Precision::Bf16] {
            for padding in [Padding::Dynamic, Padding::Bucketed] {
                let c = cfg(precision, padding);
                let serial = run(m.as_ref(), &enc, &c, 1).unwrap();
                let streamed = run(m.as_ref(), &enc, &c, 3).unwrap();
                assert_eq!(serial.len(), 11);
                assert_eq!(serial.len(), streamed.len());
                let tol = if precision == Precision::Bf16 { 2e-2 } else { 1e-5 };
                for (a, b) in serial.iter().zip(&streamed) {
                    assert_eq!(a.indices, b.indices, "{precision} {padding:?}: batches out of order");
                    let diff = (&a.logits - &b.logits).abs().max().double_value(&[]);
                    assert!(diff < tol, "{precision} {padding:?}: logits differ by {diff}");
                    let loss = (&a.loss_sum - &b.loss_sum).abs().double_value(&[]);
                    assert!(loss < tol * 10.0, "{precision} {padding:?}: losses differ by {loss}");
                }
            }
        }
        assert_eq!(tch::get_num_threads(), threads, "the caller's thread count was not restored");
    }

    #[test]
    fn streams_only_for_small_activations_on_a_multi_thread_cpu() {
        let threads = tch::get_num_threads() as usize;
        let c = cfg(Precision::Fp32, Padding::Dynamic);
        // 4 rows of about 11 tokens × hidden 32: far below the limit.
        let small = streams(model(32).as_ref(), &data(40, 32), &c);
        assert_eq!(small, if threads >= 2 { threads.min(MAX_STREAMS) } else { 1 });
        // A batch of 8 × 48 tokens at hidden 1024 is 1.5 × 2^18 activations per op.
        let wide = Encoded { ids: vec![vec![5; 48]; 16], type_ids: vec![vec![0; 48]; 16], targets: vec![0; 16], pad_id: 0, max_len: 48 };
        let c8 = TrainConfig { eval_batch_size: Some(8), ..c.clone() };
        assert_eq!(streams(model(1024).as_ref(), &wide, &c8), 1);
        // Never more streams than batches.
        assert_eq!(streams(model(32).as_ref(), &data(4, 32), &c), 1);
    }
}
