//! The names a notebook or script usually needs, in one import.
//!
//! ```
//! use encoder_bench::prelude::*;
//! let cfg = TrainConfig::transformers_recipe();
//! assert_eq!(cfg.optimizer.kind, OptimizerKind::AdamW);
//! ```
pub use crate::data::{Dataset, Encoded, LabelMap, Padding, Split, ValidationSpec, WosLevel};
pub use crate::device::select_device;
pub use crate::error::{Error, Result};
pub use crate::models::{ElectraForMaskedLM, Precision, TextClassifier, load_classifier, save_classifier};
pub use crate::report::RunRecord;
pub use crate::sweep::{DataSpec, SplitSpec, Sweep, SweepModel, SweepPlan, TestSplit, sweep};
pub use crate::tokenizer::TextTokenizer;
pub use crate::train::pretrain::{Corpus, PretrainConfig, PretrainResult};
pub use crate::train::{
    FitResult, History, Metrics, OptimizerConfig, OptimizerKind, ProgressMode, Schedule, SelectMetric, SelectionConfig, StopConfig,
    TrainConfig, fit, fit_and_test, validate,
};
pub use crate::weights::{LoadReport, ModelFamily, ModelSource};
pub use tch::Device;
