//! One JSON file per run: configuration, history, final metrics, device,
//! versions and timings, written atomically and reloadable.
use crate::error::{Error, Result};
use crate::train::{History, Metrics, StopReason, TrainConfig};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Versions of the moving parts, so numbers can be traced to software.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Versions {
    /// This crate.
    pub encoder_bench: String,
    /// The tch crate the build used.
    pub tch: String,
    /// Number of CPU threads libtorch used.
    pub torch_threads: i32,
}

impl Versions {
    /// The versions of this build.
    pub fn current() -> Self {
        Versions { encoder_bench: env!("CARGO_PKG_VERSION").into(), tch: "0.24".into(), torch_threads: tch::get_num_threads() }
    }
}

/// Everything about one fine-tuning run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// A short name (e.g. `minilm-bs16`).
    pub name: String,
    /// The model source, as given.
    pub model: String,
    /// The dataset source.
    pub data: String,
    /// Examples in the training and validation sets.
    pub train_size: usize,
    /// Validation examples.
    pub valid_size: usize,
    /// The device name (`cpu`, `cuda:0`, ...).
    pub device: String,
    /// Training settings.
    pub config: TrainConfig,
    /// Per-epoch figures.
    pub history: History,
    /// Metrics of the last validation.
    pub final_metrics: Option<Metrics>,
    /// Test examples (none in the seed's mode, where the test set validates).
    #[serde(default)]
    pub test_size: Option<usize>,
    /// The epoch chosen by the validation metric (`best/`).
    #[serde(default)]
    pub chosen_epoch: Option<usize>,
    /// Which split chose it: `validation`, or `test` in the seed's mode
    /// (then the chosen epoch's score is optimistic).
    #[serde(default)]
    pub chosen_on: Option<String>,
    /// The test set evaluated once, at the chosen epoch: the run's result.
    #[serde(default)]
    pub test_metrics: Option<Metrics>,
    /// Class names, indexed by id.
    pub labels: Vec<String>,
    /// Why training ended.
    pub stop: StopReason,
    /// Wall time of the whole run in seconds.
    pub wall_s: f64,
    /// Seconds since the Unix epoch when the run started.
    pub started_unix: u64,
    /// Software versions.
    pub versions: Versions,
}

impl RunRecord {
    /// Writes the record as pretty JSON ([`to_json_pretty`](super::to_json_pretty):
    /// a row of the confusion matrix a line), atomically.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let text = super::to_json_pretty(self).map_err(|e| Error::invalid("run record", e.to_string()))?;
        crate::error::write_atomic(path, text.as_bytes())
    }

    /// Reads a record written by [`RunRecord::save`].
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        serde_json::from_str(&text).map_err(|e| Error::data(path, Some(e.line()), format!("not a run record: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::EpochRecord;

    #[test]
    fn round_trips_through_json_and_refuses_other_files() {
        let rec = RunRecord {
            name: "minilm-bs16".into(),
            model: "models/minilm".into(),
            data: "wos-sample".into(),
            train_size: 168,
            valid_size: 42,
            device: "cpu".into(),
            config: TrainConfig::default(),
            history: History {
                epochs: vec![EpochRecord {
                    epoch: 1,
                    train_loss: 1.9,
                    val_loss: Some(1.8),
                    accuracy: Some(0.5),
                    macro_f1: Some(0.4),
                    steps: 11,
                    lr: 1e-5,
                    complete: true,
                    train_s: 3.0,
                    eval_s: 0.5,
                    train_samples_per_s: 56.0,
                    eval_samples_per_s: Some(84.0),
                    test_loss: None,
                    test_accuracy: None,
                    test_macro_f1: None,
                }],
            },
            final_metrics: None,
            test_size: None,
            chosen_epoch: None,
            chosen_on: None,
            test_metrics: None,
            labels: vec!["a".into(), "b".into()],
            stop: StopReason::Completed,
            wall_s: 4.0,
            started_unix: 1,
            versions: Versions::current(),
        };
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("run.json");
        rec.save(&p).unwrap();
        assert_eq!(RunRecord::load(&p).unwrap(), rec);
        std::fs::write(&p, "{\"name\": 3}").unwrap();
        let e = RunRecord::load(&p).unwrap_err().to_string();
        assert!(e.contains("run.json") && e.contains("not a run record"), "{e}");
    }
}
