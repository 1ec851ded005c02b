//! Fine-tuning: loss, optimizers and schedules, the train/validate loops,
//! metrics, progress bars and checkpoints.
pub mod config;
pub mod fit;
pub mod metrics;
pub mod optim;
pub mod progress;
pub mod sweep;

pub use config::{OptimizerKind, Schedule, TrainConfig};
pub use fit::{EpochRecord, FitResult, History, StopReason, Validation, fit, loss_fn, resume, train_step, validate};
pub use metrics::{ConfusionMatrix, Metrics};
pub use progress::{Progress, ProgressMode};
pub use sweep::{Sweep, SweepModel, SweepRun, sweep};
