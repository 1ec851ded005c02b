//! The seed's analysis grid, generated instead of hand-typed: every model ×
//! batch size fine-tuned with the same settings, collected into tables,
//! charts and conclusions computed from the numbers. It sits above training
//! and reporting because it orchestrates both.
use crate::data::{Encoded, LabelMap, Split};
use crate::error::{Error, Result};
use crate::models::{ModelFamily, ModelSource, load_classifier_as};
use crate::report::frames::{history_frame, save_frame};
use crate::report::plot::LineChart;
use crate::tokenizer::TextTokenizer;
use crate::train::{EpochRecord, History, Metrics, ProgressMode, TrainConfig, fit};
use polars::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// One model of a sweep.
#[derive(Debug, Clone)]
pub struct SweepModel {
    /// Name in tables and legends ("BERT", "ELECTRA", ...).
    pub name: String,
    /// Where its weights come from.
    pub source: ModelSource,
    /// Tokenizer directory when the model has none (an ELECTRA state dict).
    pub tokenizer: Option<PathBuf>,
    /// The family, when neither the config nor the weights' key names say it
    /// (`None`: decided by the loader, see [`load_classifier_as`]).
    pub family: Option<ModelFamily>,
}

impl SweepModel {
    /// A model whose directory (or hub snapshot) carries its tokenizer.
    pub fn new(name: impl Into<String>, source: ModelSource) -> Self {
        SweepModel { name: name.into(), source, tokenizer: None, family: None }
    }

    /// Uses `dir` as tokenizer only when the model's files carry none.
    pub fn with_tokenizer_if_missing(self, dir: impl Into<PathBuf>) -> Self {
        match self.source.resolve() {
            Ok(f) if f.tokenizer_dir.is_some() => self,
            _ => self.with_tokenizer(dir),
        }
    }

    /// The same model built as `family` whatever its config says (an old
    /// checkpoint whose config has no `model_type`).
    ///
    /// ```
    /// use encoder_bench::models::{ModelFamily, ModelSource};
    /// use encoder_bench::sweep::SweepModel;
    /// let m = SweepModel::new("TinyBERT", ModelSource::parse("models/tinybert")).with_family(ModelFamily::Bert);
    /// assert_eq!(m.family, Some(ModelFamily::Bert));
    /// ```
    pub fn with_family(mut self, family: ModelFamily) -> Self {
        self.family = Some(family);
        self
    }

    /// The same model with an explicit tokenizer directory.
    pub fn with_tokenizer(mut self, dir: impl Into<PathBuf>) -> Self {
        self.tokenizer = Some(dir.into());
        self
    }
}

/// The outcome of one model at one batch size.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SweepRun {
    /// Model name.
    pub model: String,
    /// Batch size.
    pub batch_size: usize,
    /// Per-epoch figures.
    pub history: History,
    /// Metrics of the last validation (with the confusion matrix).
    pub metrics: Option<Metrics>,
    /// Trainable parameters.
    pub params: i64,
    /// Whole run, loading included.
    pub wall_s: f64,
}

impl SweepRun {
    /// Best validation accuracy over the epochs.
    pub fn best_accuracy(&self) -> Option<f64> {
        self.history.best().and_then(|e| e.accuracy)
    }

    /// Mean training samples/s over the epochs.
    pub fn train_samples_per_s(&self) -> f64 {
        let e = &self.history.epochs;
        e.iter().map(|r| r.train_samples_per_s).sum::<f64>() / e.len().max(1) as f64
    }

    /// Mean evaluation samples/s over the validations.
    pub fn eval_samples_per_s(&self) -> Option<f64> {
        let v: Vec<f64> = self.history.epochs.iter().filter_map(|r| r.eval_samples_per_s).collect();
        (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
    }

    /// `"<model> bs=<n>"`, the legend label.
    pub fn label(&self) -> String {
        format!("{} bs={}", self.model, self.batch_size)
    }
}

/// All runs of a sweep.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Sweep {
    /// In the order they ran (model-major).
    pub runs: Vec<SweepRun>,
    /// Class names.
    pub labels: Vec<String>,
    /// Test-set size (what one text is worth in accuracy).
    pub test_size: usize,
    /// The shared settings (batch size varies per run).
    pub config: TrainConfig,
}

/// Fine-tunes every model at every batch size on `split`, with `base` for
/// everything else; each run starts from the pretrained weights and the same
/// seed. `on_run` sees each finished run (for live tables in a notebook).
///
/// ```no_run
/// use encoder_bench::prelude::*;
/// use encoder_bench::sweep::{SweepModel, sweep};
/// let ds = Dataset::read_wos("../shared/data/wos-sample", WosLevel::L1)?;
/// let split = Split::first_n(&ds, 168)?;
/// let models = [SweepModel::new("MiniLM", ModelSource::parse("models/minilm"))];
/// let s = sweep(&models, &[8, 16, 32], &split, &ds.labels, &TrainConfig::transformers_recipe(), Device::Cpu, |_| {})?;
/// println!("{}", s.conclusions().join("\n"));
/// # Ok::<(), encoder_bench::Error>(())
/// ```
pub fn sweep(
    models: &[SweepModel],
    batch_sizes: &[usize],
    split: &Split,
    labels: &LabelMap,
    base: &TrainConfig,
    device: tch::Device,
    mut on_run: impl FnMut(&SweepRun),
) -> Result<Sweep> {
    if models.is_empty() || batch_sizes.is_empty() {
        return Err(Error::invalid("sweep", "needs at least one model and one batch size"));
    }
    let mut encoded: HashMap<PathBuf, (Encoded, Encoded)> = HashMap::new();
    let mut runs = Vec::new();
    for m in models {
        let files = m.source.resolve()?;
        let tok_dir = m.tokenizer.clone().or(files.tokenizer_dir).ok_or_else(|| {
            Error::invalid(format!("sweep model `{}`", m.name), "has no tokenizer: give one with SweepModel::with_tokenizer")
        })?;
        if !encoded.contains_key(&tok_dir) {
            let tok = TextTokenizer::from_dir(&tok_dir)?;
            let pair = (tok.encode_dataset(&split.train, base.max_len)?, tok.encode_dataset(&split.test, base.max_len)?);
            encoded.insert(tok_dir.clone(), pair);
        }
        let (train, test) = &encoded[&tok_dir];
        for &bs in batch_sizes {
            let start = Instant::now();
            let (mut model, _) = load_classifier_as(&m.source, m.family, Some(labels.clone()), device, base.seed as i64)?;
            let cfg = TrainConfig {
                batch_size: bs,
                checkpoint_dir: base.checkpoint_dir.as_ref().map(|d| d.join(format!("{}-bs{bs}", m.name))),
                ..base.clone()
            };
            if cfg.progress != ProgressMode::Quiet {
                println!("── {} · batch size {bs} ──", m.name);
            }
            let out = fit(model.as_mut(), train, test, &cfg)?;
            let run = SweepRun {
                model: m.name.clone(),
                batch_size: bs,
                history: out.history,
                metrics: out.last_validation.map(|v| v.metrics),
                params: model.num_parameters(),
                wall_s: start.elapsed().as_secs_f64(),
            };
            on_run(&run);
            runs.push(run);
        }
    }
    Ok(Sweep { runs, labels: labels.names().to_vec(), test_size: split.test.len(), config: base.clone() })
}

fn pct(x: f64) -> String {
    format!("{:.1}%", x * 100.0)
}

impl Sweep {
    /// One row per run and epoch (see [`history_frame`]).
    pub fn epochs_frame(&self) -> DataFrame {
        history_frame(&self.runs.iter().map(|r| (r.model.clone(), r.batch_size, &r.history)).collect::<Vec<_>>())
    }

    /// One row per run: best and final accuracy, final losses, throughput, size.
    pub fn summary_frame(&self) -> DataFrame {
        let r = &self.runs;
        let last = |f: &dyn Fn(&EpochRecord) -> Option<f64>| r.iter().map(|x| x.history.epochs.last().and_then(f)).collect::<Vec<_>>();
        let columns = vec![
            Column::new("model".into(), r.iter().map(|x| x.model.as_str()).collect::<Vec<_>>()),
            Column::new("batch_size".into(), r.iter().map(|x| x.batch_size as u64).collect::<Vec<_>>()),
            Column::new("best_accuracy".into(), r.iter().map(SweepRun::best_accuracy).collect::<Vec<_>>()),
            Column::new("best_epoch".into(), r.iter().map(|x| x.history.best().map(|e| e.epoch as u64)).collect::<Vec<_>>()),
            Column::new("final_accuracy".into(), last(&|e| e.accuracy)),
            Column::new("final_macro_f1".into(), last(&|e| e.macro_f1)),
            Column::new("final_train_loss".into(), last(&|e| Some(e.train_loss))),
            Column::new("final_val_loss".into(), last(&|e| e.val_loss)),
            Column::new("train_samples_per_s".into(), r.iter().map(SweepRun::train_samples_per_s).collect::<Vec<_>>()),
            Column::new("eval_samples_per_s".into(), r.iter().map(SweepRun::eval_samples_per_s).collect::<Vec<_>>()),
            Column::new("params".into(), r.iter().map(|x| x.params).collect::<Vec<_>>()),
            Column::new("wall_s".into(), r.iter().map(|x| x.wall_s).collect::<Vec<_>>()),
        ];
        DataFrame::new(r.len(), columns).expect("summary columns have equal lengths and distinct names")
    }

    /// The run with the best validation accuracy (ties: the earlier run).
    pub fn best(&self) -> Option<&SweepRun> {
        self.runs.iter().filter(|r| r.best_accuracy().is_some()).fold(None, |best: Option<&SweepRun>, r| match best {
            Some(b) if b.best_accuracy() >= r.best_accuracy() => Some(b),
            _ => Some(r),
        })
    }

    /// Accuracy per epoch, one line per run.
    pub fn accuracy_chart(&self) -> LineChart {
        let runs: Vec<(String, &History)> = self.runs.iter().map(|r| (r.label(), &r.history)).collect();
        let mut c = LineChart::accuracy_per_epoch(&runs);
        c.title = format!("Validation accuracy per epoch ({} test texts)", self.test_size);
        c
    }

    /// Training and validation loss per epoch, one colour per run.
    pub fn loss_chart(&self) -> LineChart {
        let runs: Vec<(String, &History)> = self.runs.iter().map(|r| (r.label(), &r.history)).collect();
        LineChart::loss_per_epoch(&runs)
    }

    /// Plain-language findings computed from the runs (what the seed wrote
    /// by hand): the best run, each model's best batch size, model and
    /// throughput comparisons, and how much one test text weighs.
    pub fn conclusions(&self) -> Vec<String> {
        let mut out = Vec::new();
        let one_text = 1.0 / self.test_size.max(1) as f64;
        if let Some(b) = self.best() {
            let e = b.history.best().expect("best run has a validated epoch");
            out.push(format!(
                "Best run: {} at batch size {}: {} validation accuracy at epoch {} of {} (macro-F1 {}).",
                b.model,
                b.batch_size,
                pct(e.accuracy.unwrap_or(0.0)),
                e.epoch,
                b.history.epochs.len(),
                pct(e.macro_f1.unwrap_or(0.0))
            ));
        }
        let mut models: Vec<&str> = self.runs.iter().map(|r| r.model.as_str()).collect();
        models.dedup();
        let mut best_per_model = Vec::new();
        for m in &models {
            let runs: Vec<&SweepRun> = self.runs.iter().filter(|r| r.model == *m).collect();
            let accs: Vec<(usize, f64)> = runs.iter().filter_map(|r| r.best_accuracy().map(|a| (r.batch_size, a))).collect();
            if let Some(&(bs, a)) = accs.iter().max_by(|x, y| x.1.total_cmp(&y.1)) {
                best_per_model.push((*m, a));
                if accs.len() > 1 {
                    let (lo, hi) = accs.iter().fold((f64::MAX, f64::MIN), |(lo, hi), &(_, a)| (lo.min(a), hi.max(a)));
                    let spread = if hi - lo < 2.0 * one_text + 1e-12 {
                        format!("a spread of {} — two test texts or fewer, within noise", pct(hi - lo))
                    } else {
                        format!("a spread of {} across batch sizes", pct(hi - lo))
                    };
                    let list = accs.iter().map(|(b, a)| format!("bs={b}: {}", pct(*a))).collect::<Vec<_>>().join(", ");
                    out.push(format!("{m}: best at batch size {bs} ({}); {list}; {spread}.", pct(a)));
                }
            }
        }
        if best_per_model.len() > 1 {
            best_per_model.sort_by(|a, b| b.1.total_cmp(&a.1));
            let (top, second) = (best_per_model[0], best_per_model[1]);
            let gap = top.1 - second.1;
            out.push(format!(
                "{} beats {} by {} at their best settings ({} test texts: {:.1} texts' worth).",
                top.0,
                second.0,
                pct(gap),
                self.test_size,
                gap / one_text
            ));
        }
        if models.len() > 1 {
            let speed: Vec<(&str, f64)> = models
                .iter()
                .map(|m| {
                    let rs: Vec<f64> = self.runs.iter().filter(|r| r.model == *m).map(SweepRun::train_samples_per_s).collect();
                    (*m, rs.iter().sum::<f64>() / rs.len() as f64)
                })
                .collect();
            let (fast, slow) = (
                speed.iter().max_by(|a, b| a.1.total_cmp(&b.1)).expect("non-empty"),
                speed.iter().min_by(|a, b| a.1.total_cmp(&b.1)).expect("non-empty"),
            );
            out.push(format!(
                "Training throughput: {} {:.1} samples/s vs {} {:.1} samples/s ({:.1}x).",
                fast.0,
                fast.1,
                slow.0,
                slow.1,
                fast.1 / slow.1.max(1e-9)
            ));
        }
        out.push(format!(
            "Caution: one test text moves accuracy by {}; differences of a few points on {} texts are within seed-to-seed variation.",
            pct(one_text),
            self.test_size
        ));
        out
    }

    /// Writes `summary.csv`, `summary.parquet`, `epochs.csv`, `epochs.parquet`
    /// and `sweep.json` into `dir`, each atomically.
    pub fn save(&self, dir: impl AsRef<Path>) -> Result<()> {
        let dir = dir.as_ref();
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        for (name, mut df) in [("summary", self.summary_frame()), ("epochs", self.epochs_frame())] {
            save_frame(&mut df, &dir.join(format!("{name}.csv")))?;
            save_frame(&mut df, &dir.join(format!("{name}.parquet")))?;
        }
        let json = serde_json::to_string_pretty(self).map_err(|e| Error::invalid("sweep", e.to_string()))?;
        crate::error::write_atomic(dir.join("sweep.json"), json.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(model: &str, bs: usize, accs: &[f64], sps: f64) -> SweepRun {
        let epochs = accs
            .iter()
            .enumerate()
            .map(|(i, &a)| EpochRecord {
                epoch: i + 1,
                train_loss: 1.0 / (i + 1) as f64,
                val_loss: Some(1.2 / (i + 1) as f64),
                accuracy: Some(a),
                macro_f1: Some(a - 0.05),
                steps: 10,
                lr: 1e-5,
                complete: true,
                train_s: 1.0,
                eval_s: 0.1,
                train_samples_per_s: sps,
                eval_samples_per_s: Some(sps * 3.0),
            })
            .collect();
        SweepRun { model: model.into(), batch_size: bs, history: History { epochs }, metrics: None, params: 1000, wall_s: 2.0 }
    }

    fn sample() -> Sweep {
        Sweep {
            runs: vec![run("BERT", 8, &[0.5, 0.7], 30.0), run("BERT", 16, &[0.4, 0.6], 40.0), run("ELECTRA", 8, &[0.3, 0.45], 60.0)],
            labels: vec!["a".into(), "b".into()],
            test_size: 40,
            config: TrainConfig::default(),
        }
    }

    #[test]
    fn best_and_tables_follow_the_numbers() {
        let s = sample();
        let b = s.best().unwrap();
        assert_eq!((b.model.as_str(), b.batch_size), ("BERT", 8));
        let df = s.summary_frame();
        assert_eq!(df.height(), 3);
        let best: Vec<Option<f64>> = df.column("best_accuracy").unwrap().f64().unwrap().into_iter().collect();
        assert_eq!(best, vec![Some(0.7), Some(0.6), Some(0.45)]);
        assert_eq!(s.epochs_frame().height(), 6);
    }

    #[test]
    fn conclusions_are_computed_from_the_runs() {
        let c = sample().conclusions().join("\n");
        assert!(c.contains("Best run: BERT at batch size 8: 70.0%"), "{c}");
        assert!(c.contains("BERT beats ELECTRA by 25.0%"), "{c}");
        assert!(c.contains("10.0 texts' worth"), "{c}");
        assert!(c.contains("ELECTRA 60.0 samples/s vs BERT 35.0 samples/s"), "{c}");
        assert!(c.contains("one test text moves accuracy by 2.5%"), "{c}");
    }

    #[test]
    fn save_writes_readable_tables() {
        let dir = tempfile::tempdir().unwrap();
        sample().save(dir.path()).unwrap();
        let f = std::fs::File::open(dir.path().join("summary.parquet")).unwrap();
        assert_eq!(ParquetReader::new(f).finish().unwrap().height(), 3);
        let csv = std::fs::read_to_string(dir.path().join("summary.csv")).unwrap();
        assert!(csv.starts_with("model,batch_size,best_accuracy"), "{csv}");
        let back: Sweep = serde_json::from_str(&std::fs::read_to_string(dir.path().join("sweep.json")).unwrap()).unwrap();
        assert_eq!(back.runs.len(), 3);
    }
}
