//! Fine-tuning and pre-training: settings by concern ([`config`]), the
//! optimizer and its schedule ([`optim`]), the loss ([`loss`]), the run core
//! both loops share (run directory, checkpoints and resume, per-step seeds,
//! stop checks: [`checkpoint`]), the fine-tuning loop with validation
//! ([`fit`](mod@fit)), masked-LM pre-training of ELECTRA ([`pretrain`](mod@pretrain)), metrics,
//! progress bars and FLOP estimates ([`flops`]), and the classical TF-IDF +
//! logistic regression baseline every comparison includes ([`baseline`]).
pub mod baseline;
pub mod checkpoint;
pub mod config;
pub mod fit;
pub mod flops;
mod infer;
pub mod loss;
pub mod metrics;
pub mod optim;
pub mod pretrain;
pub mod progress;
pub mod recipe;

pub use checkpoint::StopReason;
pub use config::{OptimizerConfig, OptimizerKind, Schedule, SelectMetric, SelectionConfig, StopConfig, TrainConfig};
pub use fit::{EpochRecord, FitResult, History, Validation, fit, fit_and_test, resume, resume_and_test, train_step, validate};
pub use loss::loss_fn;
pub use metrics::{ConfusionMatrix, Metrics};
pub use pretrain::{
    Corpus, PretrainConfig, PretrainHistory, PretrainRecord, PretrainResult, pretrain, pretrain_to_dir, resume_pretraining,
};
pub use progress::{Progress, ProgressMode};
pub use recipe::Recipe;
