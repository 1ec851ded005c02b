//! # encoder-bench
//!
//! Fine-tune and compare pretrained transformer encoders (BERT family and
//! ELECTRA) on text classification, from Rust code or cell by cell in a Jupyter
//! notebook through the evcxr kernel.
//!
//! The pieces, in the order a run uses them:
//! - [`device`]: pick CUDA, MPS or CPU (overridable, never a silent fallback).
//! - [`data`]: datasets (WOS, CSV, Parquet), label maps, splits, batches.
//! - [`tokenizer`]: Hugging Face `tokenizers` (from `tokenizer.json` or `vocab.txt`).
//! - [`models`]: BERT and ELECTRA encoders with classifier heads, loading real
//!   checkpoints (safetensors, PyTorch `.bin` state dicts, hub ids) unchanged.
//! - [`weights`]: reading state dicts (safetensors, PyTorch `.bin`), key
//!   mapping with a load report, model files from directories or the hub,
//!   writing model directories.
//! - [`train`]: configs by concern, loss, Adam/AdamW, schedules, the run core
//!   (checkpoints, exact resume, stop checks), `fit`/`validate`, metrics,
//!   progress bars; masked-LM pre-training of ELECTRA (`train::pretrain`)
//!   with FLOP counts (`train::flops`).
//! - [`report`]: run records, charts, tables.
//! - [`sweep`]: models × batch sizes × seeds × folds fine-tuned and reported together, with intervals,
//!   paired comparisons and a TF-IDF baseline; [`notebook`]: the notebook's settings and deviations.
//! - [`bench`](mod@bench): training/evaluation throughput, comparable with `bench/reference.py`.
//!
//! ```no_run
//! use encoder_bench::prelude::*;
//! let ds = Dataset::read_wos("../shared/data/wos-sample", WosLevel::L1)?;
//! println!("{} texts, {} classes", ds.len(), ds.num_classes());
//! # Ok::<(), encoder_bench::Error>(())
//! ```
pub mod bench;
pub mod data;
pub mod device;
pub mod error;
pub mod models;
pub mod notebook;
pub mod report;
mod simd;
pub mod sweep;
pub mod tokenizer;
pub mod train;
pub mod weights;

pub use error::{Error, Result};
/// The libtorch bindings this crate is built on, re-exported so notebooks and
/// downstream code use the same version.
pub use tch;

pub mod prelude;

/// Unit tests that seed libtorch's process-global RNG and then draw from it
/// hold this lock, so that a test running beside them cannot move the stream.
#[cfg(test)]
pub(crate) fn rng_lock() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}
