//! Fine-tuning: loss, optimizers and schedules, the train/validate loops,
//! metrics, progress bars and checkpoints; masked-LM pre-training of ELECTRA
//! ([`pretrain`]) and FLOP estimates to compare the two ([`flops`]).
pub mod config;
pub mod fit;
pub mod flops;
mod infer;
pub mod metrics;
pub mod optim;
pub mod pretrain;
pub mod progress;
pub mod sweep;

pub use config::{OptimizerKind, Schedule, TrainConfig};
pub use fit::{EpochRecord, FitResult, History, StopReason, Validation, fit, loss_fn, resume, train_step, validate};
pub use metrics::{ConfusionMatrix, Metrics};
pub use pretrain::{
    Corpus, PretrainConfig, PretrainHistory, PretrainRecord, PretrainResult, pretrain, pretrain_to_dir, resume_pretraining,
};
pub use progress::{Progress, ProgressMode};
pub use sweep::{Sweep, SweepModel, SweepRun, sweep};
