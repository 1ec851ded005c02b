//! Encoders pre-trained here, once per fold, on that fold's training texts
//! only: with k-fold cross-validation every text is a test text once, so a
//! single pre-training on the data would have read each fold's test texts.
//! A budget of 0 minutes is the randomly initialised twin (the same seeded
//! initialisation the pre-training starts from, under either objective: the
//! replaced-token detector's encoder is drawn as the masked LM's is), so
//! "pre-trained vs not" is one axis, pre-training minutes.
//!
//! The weights are kept under `root/fold-K/` with a `corpus.json` naming the
//! texts they were pre-trained on (fingerprint and count); a later call with
//! the same settings and corpus reuses them instead of pre-training again.
use super::plan::SweepModel;
use crate::data::{Dataset, Split};
use crate::error::{Error, Result, write_atomic};
use crate::models::{ElectraConfig, ElectraForMaskedLM, ModelSource};
use crate::tokenizer::TextTokenizer;
use crate::train::StopConfig;
use crate::train::pretrain::{Corpus, PretrainConfig, PretrainResult, PretrainSummary, pretrain_to_dir};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// How to pre-train one ELECTRA per fold.
///
/// ```no_run
/// use encoder_bench::data::{Dataset, Split, WosLevel};
/// use encoder_bench::models::ElectraConfig;
/// use encoder_bench::sweep::FoldPretraining;
/// let ds = Dataset::read_wos("../shared/data/wos-sample", WosLevel::L1)?;
/// let splits = Split::kfold(&ds, 3, 0)?;
/// let p = FoldPretraining::new(ElectraConfig::seed_shape(), "models/minilm", 1.0, "target/electra-1min");
/// let folds = p.run(&splits, tch::Device::Cpu)?;
/// let model = p.sweep_model("ELECTRA (pre-trained 1 min)", &folds);
/// # Ok::<(), encoder_bench::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FoldPretraining {
    /// The encoder's shape.
    pub model: ElectraConfig,
    /// Pre-training settings, the objective included; its time budget is
    /// set from `minutes`.
    pub pretrain: PretrainConfig,
    /// Pre-training wall minutes per fold; 0: random initialisation only.
    pub minutes: f64,
    /// Tokenizer directory (vocabulary of the corpus and of fine-tuning).
    pub tokenizer: PathBuf,
    /// Where `fold-K/` directories go.
    pub root: PathBuf,
}

/// One fold's pre-trained weights.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FoldPretrained {
    /// Fold index (0-based).
    pub fold: usize,
    /// The weights directory (loads with [`ModelSource::Dir`]).
    pub dir: PathBuf,
    /// What pre-trained it (`None`: random initialisation).
    pub result: Option<PretrainResult>,
    /// Texts of the corpus: the fold's training texts.
    pub corpus_texts: usize,
    /// Whether the weights were found from an earlier call.
    pub reused: bool,
}

/// The way a seed becomes starting weights: 2 since a seeded ELECTRA is
/// seeded after it is built (so both objectives start from one encoder);
/// records without it (0) were drawn before and are pre-trained again.
const INIT_VERSION: u32 = 2;

/// What `corpus.json` records beside each fold's weights.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct CorpusRecord {
    /// How the starting weights are drawn ([`INIT_VERSION`]); weights drawn
    /// another way are not reused.
    #[serde(default)]
    init: u32,
    fingerprint: String,
    texts: usize,
    minutes: f64,
    pretrain: PretrainConfig,
    model: ElectraConfig,
}

impl FoldPretraining {
    /// Pre-training of `model` for `minutes` per fold with the notebook's
    /// masked-LM recipe (sequences of 128, batches of 16, AdamW 1e-3).
    pub fn new(model: ElectraConfig, tokenizer: impl Into<PathBuf>, minutes: f64, root: impl Into<PathBuf>) -> Self {
        let pretrain = PretrainConfig {
            max_len: 128,
            batch_size: 16,
            optimizer: crate::train::OptimizerConfig { learning_rate: 1e-3, ..crate::train::OptimizerConfig::electra_pretraining() },
            ..PretrainConfig::default()
        };
        FoldPretraining { model, pretrain, minutes, tokenizer: tokenizer.into(), root: root.into() }
    }

    /// The texts fold `split` pre-trains on: its training texts, never its
    /// validation or test texts.
    pub fn corpus_texts(split: &Split) -> &Dataset {
        &split.train
    }

    /// Pre-trains (or reuses) one model per split, in fold order.
    pub fn run(&self, splits: &[Split], device: tch::Device) -> Result<Vec<FoldPretrained>> {
        if !(self.minutes.is_finite() && self.minutes >= 0.0) {
            return Err(Error::invalid("pre-training minutes", format!("{}: expected a number >= 0", self.minutes)));
        }
        let tok = TextTokenizer::from_dir(&self.tokenizer)?;
        splits.iter().enumerate().map(|(k, s)| self.run_fold(k, s, &tok, device)).collect()
    }

    fn run_fold(&self, fold: usize, split: &Split, tok: &TextTokenizer, device: tch::Device) -> Result<FoldPretrained> {
        let dir = self.root.join(format!("fold-{}", fold + 1));
        let texts = Self::corpus_texts(split);
        let record = CorpusRecord {
            init: INIT_VERSION,
            fingerprint: texts.fingerprint(),
            texts: texts.len(),
            minutes: self.minutes,
            pretrain: self.pretrain.clone(),
            model: self.model.clone(),
        };
        let record_path = dir.join("corpus.json");
        if let Some(found) = read_record(&record_path)?
            && found == record
        {
            let result = read_summary(&dir)?.map(|s| s.result);
            return Ok(FoldPretrained { fold, dir, result, corpus_texts: texts.len(), reused: true });
        }
        if dir.exists() {
            std::fs::remove_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        }
        let result = if self.minutes == 0.0 {
            self.model.validate(Path::new("model_config"))?;
            ElectraForMaskedLM::random(&self.model, device, self.pretrain.seed as i64).save(&dir, Some(tok))?;
            None
        } else {
            let corpus = Corpus::from_texts(&texts.texts, tok, self.pretrain.max_len)?;
            let cfg = PretrainConfig {
                stop: StopConfig { time_budget_s: Some(self.minutes * 60.0), ..self.pretrain.stop.clone() },
                ..self.pretrain.clone()
            };
            Some(pretrain_to_dir(&self.model, tok, &corpus, &cfg, &dir, device, false)?)
        };
        let json = serde_json::to_string_pretty(&record).map_err(|e| Error::invalid("corpus record", e.to_string()))?;
        // Written last: a fold cut short is pre-trained again, never reused half-done.
        write_atomic(&record_path, json.as_bytes())?;
        Ok(FoldPretrained { fold, dir, result, corpus_texts: texts.len(), reused: false })
    }

    /// The sweep model fine-tuning fold `k` from `folds[k]`.
    pub fn sweep_model(&self, name: impl Into<String>, folds: &[FoldPretrained]) -> SweepModel {
        SweepModel::per_fold(name, folds.iter().map(|f| ModelSource::Dir(f.dir.clone())).collect()).with_tokenizer(&self.tokenizer)
    }
}

fn read_record(path: &Path) -> Result<Option<CorpusRecord>> {
    match std::fs::read_to_string(path) {
        // An unreadable or older record only means "pre-train again".
        Ok(text) => Ok(serde_json::from_str(&text).ok()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(path, e)),
    }
}

fn read_summary(dir: &Path) -> Result<Option<PretrainSummary>> {
    let path = dir.join("pretrain_summary.json");
    match std::fs::read_to_string(&path) {
        Ok(text) => serde_json::from_str(&text).map(Some).map_err(|e| Error::invalid(path.display().to_string(), e.to_string())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(&path, e)),
    }
}
