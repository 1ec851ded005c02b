//! The notebook's settings in one place: read from the environment with
//! errors that name the variable and what it takes (a typo is an error, never
//! a silent default), shown as a table, turned into the configs the cells
//! use, and compared with the seed notebook's settings so every deviation is
//! stated. `SEED_SETTINGS=1` runs the seed's exact recipe.
use crate::data::{Dataset, Padding, Split, ValidationSpec};
use crate::error::{Error, Result};
use crate::models::{ElectraConfig, ModelSource, Precision};
use crate::report::HtmlTable;
use crate::report::html::html_table;
use crate::sweep::{DataSpec, FoldPretraining, PretrainingCurve, SplitSpec, SweepModel, SweepPlan};
use crate::train::pretrain::Objective;
use crate::train::{OptimizerConfig, OptimizerKind, ProgressMode, Schedule, StopConfig, TrainConfig};
use std::path::{Path, PathBuf};

/// The pre-training objective of the notebook's ELECTRAs unless
/// `PRETRAIN_OBJECTIVE` says otherwise. Masked LM: side by side at 1 and 4
/// minutes per fold (README, "Pre-training ELECTRA") neither objective was
/// ahead in accuracy, and masked LM made 1.3-1.9x more steps per minute.
pub const DEFAULT_OBJECTIVE: Objective = Objective::Mlm;

/// Every setting the notebook reads, with its value.
///
/// ```
/// use encoder_bench::notebook::NotebookSettings;
/// let s = NotebookSettings::from_vars(|k| (k == "MAX_LEN").then(|| "128".to_string()))?;
/// assert_eq!(s.max_len, 128);
/// let e = NotebookSettings::from_vars(|k| (k == "PRECISION").then(|| "fp16".to_string())).unwrap_err();
/// assert!(e.to_string().contains("PRECISION"));
/// # Ok::<(), encoder_bench::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct NotebookSettings {
    /// `SEED_SETTINGS=1`: the seed's recipe (Adam 1e-5, constant, no clipping, no shuffling, the test set chooses).
    pub seed_settings: bool,
    /// `WOS_DIR`: the WOS directory.
    pub wos_dir: PathBuf,
    /// `TRAIN_SIZE`: training texts of the first-N split (default 80%).
    pub train_size: Option<usize>,
    /// `BERT_MODEL`: directory or hub id.
    pub bert_model: String,
    /// `TINYBERT_MODEL`: joins the sweep when set.
    pub tinybert_model: Option<String>,
    /// `ELECTRA_CONFIG` + `ELECTRA_STATE_DICT`.
    pub electra: Option<(PathBuf, PathBuf)>,
    /// `MAX_LEN`.
    pub max_len: usize,
    /// `BATCH_SIZE`.
    pub batch_size: usize,
    /// `EPOCHS`.
    pub epochs: usize,
    /// `LEARNING_RATE`.
    pub learning_rate: f64,
    /// `PRECISION`: fp32, bf16, or auto (bf16 where the device runs it fast).
    pub precision: Precision,
    /// Whether `precision` was chosen by `auto`.
    pub precision_auto: bool,
    /// `SAMPLE`: the share of the data used, from the top of the files (the
    /// seed's sample mode is 0.1); `None`: all of it.
    pub sample: Option<f64>,
    /// `PADDING`: dynamic, bucketed or max_len.
    pub padding: Padding,
    /// `SWEEP_BATCH_SIZES`.
    pub sweep_batch_sizes: Vec<usize>,
    /// `SWEEP_EPOCHS`.
    pub sweep_epochs: usize,
    /// `SWEEP_FOLDS`: 1 keeps the first-N split.
    pub sweep_folds: usize,
    /// `SWEEP_SEEDS`: how many seeds per cell.
    pub sweep_seeds: u64,
    /// `PRETRAIN_MINUTES`: pre-training budgets per fold, in minutes, of the
    /// ELECTRAs pre-trained here (0: the random-init twin).
    pub pretrain_minutes: Vec<f64>,
    /// `PRETRAIN_STEPS`: a cap on pre-training steps per fold.
    pub pretrain_steps: usize,
    /// `PRETRAIN_OBJECTIVE`: the objectives each budget is spent on (`mlm`,
    /// `rtd`, or both to compare them).
    pub pretrain_objectives: Vec<Objective>,
    /// Variables that were set, as read.
    pub set: Vec<(String, String)>,
}

/// The variables [`NotebookSettings`] reads.
pub const VARIABLES: [&str; 21] = [
    "SEED_SETTINGS",
    "WOS_DIR",
    "TRAIN_SIZE",
    "BERT_MODEL",
    "TINYBERT_MODEL",
    "ELECTRA_CONFIG",
    "ELECTRA_STATE_DICT",
    "MAX_LEN",
    "BATCH_SIZE",
    "EPOCHS",
    "LEARNING_RATE",
    "PRECISION",
    "PADDING",
    "SWEEP_BATCH_SIZES",
    "SWEEP_EPOCHS",
    "SWEEP_FOLDS",
    "SWEEP_SEEDS",
    "PRETRAIN_MINUTES",
    "PRETRAIN_STEPS",
    "PRETRAIN_OBJECTIVE",
    "SAMPLE",
];

fn parse<T: std::str::FromStr>(var: &str, v: &str, expected: &str) -> Result<T> {
    v.trim().parse().map_err(|_| Error::invalid(var, format!("`{v}`: expected {expected}")))
}

impl NotebookSettings {
    /// Reads the process environment (see [`NotebookSettings::from_vars`]).
    pub fn from_env() -> Result<Self> {
        Self::from_vars(|k| std::env::var(k).ok())
    }

    /// Reads the settings through `get` (a variable's value, if set); a
    /// value that does not parse is an error naming the variable and what
    /// it takes.
    pub fn from_vars(get: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let set: Vec<(String, String)> = VARIABLES.iter().filter_map(|k| get(k).map(|v| (k.to_string(), v))).collect();
        let val = |k: &str| get(k).filter(|v| !v.trim().is_empty());
        let seed_settings = match val("SEED_SETTINGS").as_deref().map(str::trim) {
            None | Some("0") => false,
            Some("1") => true,
            Some(v) => return Err(Error::invalid("SEED_SETTINGS", format!("`{v}`: expected 1 (the seed's recipe) or 0"))),
        };
        let num = |k: &str, default: usize, min: usize| -> Result<usize> {
            let n = val(k).map(|v| parse::<usize>(k, &v, &format!("a whole number >= {min}"))).transpose()?.unwrap_or(default);
            if n < min {
                return Err(Error::invalid(k, format!("`{n}`: expected a whole number >= {min}")));
            }
            Ok(n)
        };
        let real = |k: &str, default: f64| -> Result<f64> {
            let x = val(k).map(|v| parse::<f64>(k, &v, "a positive number")).transpose()?.unwrap_or(default);
            if !(x.is_finite() && x > 0.0) {
                return Err(Error::invalid(k, format!("`{x}`: expected a positive number")));
            }
            Ok(x)
        };
        let electra = match (val("ELECTRA_CONFIG"), val("ELECTRA_STATE_DICT")) {
            (Some(c), Some(w)) => Some((c.into(), w.into())),
            (None, None) => None,
            _ => return Err(Error::invalid("ELECTRA_CONFIG", "and ELECTRA_STATE_DICT go together: set both or neither")),
        };
        let sweep_batch_sizes = match val("SWEEP_BATCH_SIZES") {
            None => vec![8, 16, 32],
            Some(v) => v
                .split(',')
                .map(|b| match b.trim().parse::<usize>() {
                    Ok(n) if n > 0 => Ok(n),
                    _ => Err(Error::invalid(
                        "SWEEP_BATCH_SIZES",
                        format!("`{v}`: expected comma-separated whole numbers >= 1, e.g. 8,16,32"),
                    )),
                })
                .collect::<Result<_>>()?,
        };
        let default_lr = if seed_settings { 1e-5 } else { 5e-5 };
        let (precision, precision_auto) = match val("PRECISION").as_deref().map(str::trim) {
            None | Some("auto") if seed_settings => (Precision::Fp32, false),
            None | Some("auto") => (Precision::fastest_for(crate::device::resolve_device(None)?.device), true),
            Some(v) => {
                (v.parse::<Precision>().map_err(|_| Error::invalid("PRECISION", format!("`{v}`: expected auto, fp32 or bf16")))?, false)
            }
        };
        let sample = match val("SAMPLE") {
            None => None,
            Some(v) => match v.trim().parse::<f64>() {
                Ok(x) if x > 0.0 && x <= 1.0 => (x < 1.0).then_some(x),
                _ => {
                    return Err(Error::invalid(
                        "SAMPLE",
                        format!("`{v}`: expected a share of the data in (0, 1], e.g. 0.1 (the seed's sample mode)"),
                    ));
                }
            },
        };
        let pretrain_minutes = match val("PRETRAIN_MINUTES") {
            None => vec![0.0, 1.0],
            Some(v) => v
                .split(',')
                .map(|m| match m.trim().parse::<f64>() {
                    Ok(x) if x.is_finite() && x >= 0.0 => Ok(x),
                    _ => Err(Error::invalid(
                        "PRETRAIN_MINUTES",
                        format!("`{v}`: expected comma-separated minutes >= 0, e.g. 0,1,2 (0: random initialisation)"),
                    )),
                })
                .collect::<Result<_>>()?,
        };
        Ok(NotebookSettings {
            seed_settings,
            wos_dir: val("WOS_DIR").unwrap_or_else(|| "../../shared/data/wos-sample".into()).into(),
            train_size: val("TRAIN_SIZE").map(|v| parse::<usize>("TRAIN_SIZE", &v, "a whole number of training texts")).transpose()?,
            bert_model: val("BERT_MODEL").unwrap_or_else(|| "../models/minilm".into()),
            tinybert_model: val("TINYBERT_MODEL"),
            electra,
            max_len: num("MAX_LEN", 64, 2)?,
            batch_size: num("BATCH_SIZE", 16, 1)?,
            epochs: num("EPOCHS", 3, 1)?,
            learning_rate: real("LEARNING_RATE", default_lr)?,
            precision,
            precision_auto,
            sample,
            padding: match val("PADDING") {
                Some(v) => {
                    v.parse::<Padding>().map_err(|_| Error::invalid("PADDING", format!("`{v}`: expected dynamic, bucketed or max_len")))?
                }
                None if seed_settings => Padding::MaxLen,
                None => Padding::Dynamic,
            },
            sweep_batch_sizes,
            sweep_epochs: num("SWEEP_EPOCHS", num("EPOCHS", 3, 1)?, 1)?,
            sweep_folds: num("SWEEP_FOLDS", if seed_settings { 1 } else { 3 }, 1)?,
            sweep_seeds: num("SWEEP_SEEDS", 1, 1)? as u64,
            pretrain_minutes,
            pretrain_steps: num("PRETRAIN_STEPS", 100_000, 1)?,
            pretrain_objectives: match val("PRETRAIN_OBJECTIVE") {
                None => vec![DEFAULT_OBJECTIVE],
                Some(v) => Objective::parse_list(&v)
                    .map_err(|_| Error::invalid("PRETRAIN_OBJECTIVE", format!("`{v}`: expected mlm, rtd or mlm,rtd")))?,
            },
            set,
        })
    }

    /// The fine-tuning config of the training cell (and the sweep's base):
    /// transformers' recipe, or the seed's with `SEED_SETTINGS=1`.
    pub fn train_config(&self) -> TrainConfig {
        let optimizer = if self.seed_settings {
            OptimizerConfig { learning_rate: self.learning_rate, ..OptimizerConfig::default() }
        } else {
            OptimizerConfig { learning_rate: self.learning_rate, max_grad_norm: Some(1.0), ..OptimizerConfig::transformers() }
        };
        TrainConfig {
            max_len: self.max_len,
            batch_size: self.batch_size,
            eval_batch_size: self.seed_settings.then_some(self.batch_size),
            optimizer,
            stop: StopConfig { epochs: self.epochs, stop_file: Some("STOP".into()), ..StopConfig::default() },
            shuffle: !self.seed_settings,
            precision: self.precision,
            padding: self.padding,
            progress: ProgressMode::Notebook,
            ..TrainConfig::default()
        }
    }

    /// The validation carve: none in the seed's mode (the test set chooses).
    pub fn validation(&self) -> Option<ValidationSpec> {
        (!self.seed_settings).then(ValidationSpec::default)
    }

    /// The data: `WOS_DIR`, cut to its first `SAMPLE` share when set.
    pub fn dataset(&self) -> Result<Dataset> {
        let all = DataSpec::new(&self.wos_dir).read()?;
        Ok(match self.sample {
            Some(x) => all.subset(&(0..((x * all.len() as f64).round() as usize).max(1)).collect::<Vec<_>>()),
            None => all,
        })
    }

    /// The training cell's split: the first `TRAIN_SIZE` texts (default 80%)
    /// train, the rest test, and a validation set carved from the training side.
    pub fn split(&self, ds: &Dataset) -> Result<Split> {
        let first = Split::first_n(ds, self.n_train(ds))?;
        match self.validation() {
            Some(v) => first.with_validation(v, 0),
            None => Ok(first),
        }
    }

    fn n_train(&self, ds: &Dataset) -> usize {
        self.train_size.unwrap_or(ds.len() * 4 / 5)
    }

    /// The user's ELECTRA (`ELECTRA_CONFIG` + `ELECTRA_STATE_DICT`), if given.
    pub fn electra_source(&self) -> Option<ModelSource> {
        self.electra.as_ref().map(|(c, w)| ModelSource::state_dict(c, w))
    }

    /// The sweep's split: `SWEEP_FOLDS`-fold cross-validation (1: the
    /// training cell's first-N split), validation carved per fold.
    pub fn sweep_split(&self, ds: &Dataset) -> SplitSpec {
        SplitSpec { validation: self.validation(), ..SplitSpec::folds_or_first_n(self.sweep_folds, self.n_train(ds), 0) }
    }

    /// ELECTRA-small (the seed's shape) pre-trained for each `PRETRAIN_MINUTES`
    /// budget on each sweep fold's training texts, kept under `root` (reused
    /// when nothing changed). `tokenizer`: the vocabulary it learns.
    pub fn pretraining_curve(&self, ds: &Dataset, tokenizer: &Path, root: &Path, device: tch::Device) -> Result<PretrainingCurve> {
        let mut base = FoldPretraining::new(ElectraConfig::seed_shape(), tokenizer, 0.0, root);
        base.pretrain.precision = self.precision;
        base.pretrain.progress = ProgressMode::Notebook;
        base.pretrain.stop = StopConfig { max_steps: Some(self.pretrain_steps), stop_file: Some("STOP".into()), ..StopConfig::default() };
        let splits = self.sweep_split(ds).splits(ds)?;
        PretrainingCurve::run(&base, &self.pretrain_objectives, &self.pretrain_minutes, &splits, device)
    }

    /// Whether each sweep model gets the recipe of its family and size
    /// ([`Recipe::for_config`]): yes unless `SEED_SETTINGS` or `LEARNING_RATE`
    /// fixes one recipe for all.
    pub fn per_family_recipes(&self) -> bool {
        !self.seed_settings && !self.set.iter().any(|(k, _)| k == "LEARNING_RATE")
    }

    /// The sweep: BERT (and TinyBERT, and the user's ELECTRA, when set) and
    /// the curve's ELECTRAs, at every `SWEEP_BATCH_SIZES` × fold × seed,
    /// with the baseline, for `SWEEP_EPOCHS`; each model with its family's
    /// recipe (see [`per_family_recipes`](Self::per_family_recipes)).
    pub fn sweep_plan(&self, ds: &Dataset, curve: &PretrainingCurve) -> Result<SweepPlan> {
        let mut models = vec![SweepModel::new("BERT", ModelSource::parse(&self.bert_model))];
        if let Some(t) = &self.tinybert_model {
            models.push(SweepModel::new("TinyBERT", ModelSource::parse(t)));
        }
        if let Some(src) = self.electra_source() {
            models.push(SweepModel::new("ELECTRA", src).with_tokenizer_if_missing(&curve.base.tokenizer));
        }
        models.extend(curve.models());
        if self.per_family_recipes() {
            models = models.into_iter().map(SweepModel::with_recipe_from_config).collect::<Result<_>>()?;
        }
        let cfg = self.train_config();
        Ok(SweepPlan {
            // `ds` is what `dataset` gave: the sweep reads that many texts from the top.
            data: DataSpec { first: self.sample.map(|_| ds.len()), ..DataSpec::new(&self.wos_dir) },
            data_fingerprint: Some(ds.fingerprint()),
            split: self.sweep_split(ds),
            models,
            batch_sizes: self.sweep_batch_sizes.clone(),
            seeds: (0..self.sweep_seeds).collect(),
            baseline: true,
            train: TrainConfig { progress: ProgressMode::Quiet, stop: StopConfig { epochs: self.sweep_epochs, ..cfg.stop.clone() }, ..cfg },
        })
    }

    /// Every difference from the seed notebook's settings, computed from
    /// the configs the cells use.
    pub fn deviations(&self) -> Vec<String> {
        let cfg = self.train_config();
        let seed = TrainConfig::default();
        let o = &cfg.optimizer;
        let mut out = vec![
            "Loss: cross-entropy on the logits; the seed applied a softmax before CrossEntropyLoss, which squashes the gradients (a fix, not a choice)."
                .to_string(),
        ];
        if o.kind != OptimizerKind::Adam {
            out.push(format!(
                "Optimizer: {:?} with weight decay {} (not on biases/LayerNorm); the seed used Adam without decay.",
                o.kind, o.weight_decay
            ));
        }
        if o.learning_rate != seed.optimizer.learning_rate {
            out.push(format!("Learning rate: {:e}; the seed used 1e-5.", o.learning_rate));
        }
        if o.schedule != Schedule::Constant || o.warmup_ratio > 0.0 {
            out.push(format!(
                "Schedule: {:?} decay after {:.0}% warmup; the seed kept the rate constant.",
                o.schedule,
                o.warmup_ratio * 100.0
            ));
        }
        if let Some(c) = o.max_grad_norm {
            out.push(format!("Gradient clipping at norm {c}; the seed did not clip."));
        }
        if cfg.shuffle {
            out.push("Training texts are shuffled every epoch (seeded); the seed did not shuffle.".into());
        }
        if cfg.eval_batch_size.is_none() {
            out.push(format!(
                "Evaluation batches of {} (2 × the training batch: no gradients are kept); the seed evaluated at the training batch size.",
                2 * cfg.batch_size
            ));
        }
        for (what, ours, theirs) in [
            ("MAX_LEN", cfg.max_len, seed.max_len),
            ("Batch size", cfg.batch_size, seed.batch_size),
            ("Epochs", cfg.stop.epochs, seed.stop.epochs),
        ] {
            if ours != theirs {
                out.push(format!("{what}: {ours}; the seed used {theirs}."));
            }
        }
        if cfg.padding != Padding::MaxLen {
            out.push(format!(
                "Padding: {:?} (same results as padding to MAX_LEN, less work); the seed padded every batch to MAX_LEN.",
                cfg.padding
            ));
        }
        if cfg.precision != Precision::Fp32 {
            out.push(format!(
                "Precision: bf16 matrix products over fp32 weights{}; the seed ran fp32.",
                if self.precision_auto { " (auto: this device runs bf16 fast; PRECISION=fp32 for the seed's)" } else { "" }
            ));
        }
        if let Some(x) = self.sample {
            out.push(format!("Data: the first {:.0}% of the texts (SAMPLE), as the seed's sample mode.", x * 100.0));
        }
        match self.train_size {
            Some(n) => out.push(format!("Split: the first {n} texts train, the rest test (the seed split WOS-46985 at 46,000).")),
            None => out.push(
                "Split: the first 80% of the texts train, the rest test; the seed split WOS-46985 at 46,000 (set TRAIN_SIZE).".into(),
            ),
        }
        if let Some(v) = self.validation() {
            out.push(format!(
                "Selection: a validation set ({:.0}% of the training texts, at least {} per class) chooses the epoch and batch size and the test set is scored once; the seed read its best epoch off the test set.",
                v.fraction * 100.0,
                v.min_per_class
            ));
        }
        if !self.pretrain_minutes.is_empty() {
            out.push(format!(
                "ELECTRA: pre-trained here with {} for {} minute(s) per fold on that fold's training texts only (0: random initialisation); the seed pre-trained its own elsewhere.",
                self.pretrain_objectives.iter().map(|o| o.name()).collect::<Vec<_>>().join(" and "),
                self.pretrain_minutes.iter().map(|m| m.to_string()).collect::<Vec<_>>().join(", ")
            ));
        }
        if self.per_family_recipes() {
            out.push(
                "Recipes: in the sweep each model is fine-tuned with its family's recipe (ELECTRA: the ELECTRA paper's, e.g. small at lr 3e-4 with layer-wise decay 0.8; BERT: transformers'); the seed used one recipe for all. The table in section 6 lists them."
                    .into(),
            );
        }
        if self.sweep_folds > 1 {
            out.push(format!(
                "Model analysis: {}-fold cross-validation × {} seed(s) per cell with intervals and a TF-IDF baseline; the seed ran each cell once on one split.",
                self.sweep_folds, self.sweep_seeds
            ));
        }
        out
    }

    /// The settings as a table: variable, value, and whether it was set or
    /// is the default.
    pub fn table(&self) -> HtmlTable {
        let was_set = |k: &str| self.set.iter().any(|(n, _)| n == k);
        let row = |k: &str, v: String| vec![k.to_string(), v, if was_set(k) { "set".into() } else { "default".into() }];
        let rows = vec![
            row("SEED_SETTINGS", u8::from(self.seed_settings).to_string()),
            row("WOS_DIR", self.wos_dir.display().to_string()),
            row("TRAIN_SIZE", self.train_size.map_or("80%".into(), |n| n.to_string())),
            row("BERT_MODEL", self.bert_model.clone()),
            row("TINYBERT_MODEL", self.tinybert_model.clone().unwrap_or_else(|| "-".into())),
            row(
                "ELECTRA_CONFIG / _STATE_DICT",
                self.electra.as_ref().map_or("-".into(), |(c, w)| format!("{} + {}", c.display(), w.display())),
            ),
            row("MAX_LEN", self.max_len.to_string()),
            row("BATCH_SIZE", self.batch_size.to_string()),
            row("EPOCHS", self.epochs.to_string()),
            row("LEARNING_RATE", format!("{:e}", self.learning_rate)),
            row("PRECISION", format!("{}{}", self.precision.as_str(), if self.precision_auto { " (auto)" } else { "" })),
            row("SAMPLE", self.sample.map_or("all".into(), |x| x.to_string())),
            row("PADDING", format!("{:?}", self.padding)),
            row("SWEEP_BATCH_SIZES", self.sweep_batch_sizes.iter().map(|b| b.to_string()).collect::<Vec<_>>().join(",")),
            row("SWEEP_EPOCHS", self.sweep_epochs.to_string()),
            row("SWEEP_FOLDS", self.sweep_folds.to_string()),
            row("SWEEP_SEEDS", self.sweep_seeds.to_string()),
            row("PRETRAIN_MINUTES", self.pretrain_minutes.iter().map(|m| m.to_string()).collect::<Vec<_>>().join(",")),
            row("PRETRAIN_STEPS", self.pretrain_steps.to_string()),
            row("PRETRAIN_OBJECTIVE", self.pretrain_objectives.iter().map(|o| o.to_string()).collect::<Vec<_>>().join(",")),
        ];
        HtmlTable(html_table(&["variable".into(), "value".into(), "".into()], &rows))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(vars: &[(&str, &str)]) -> Result<NotebookSettings> {
        let map: std::collections::HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        NotebookSettings::from_vars(|k| map.get(k).cloned())
    }

    #[test]
    fn parse_errors_name_the_variable_and_what_it_takes() {
        for (k, v) in [
            ("PRECISION", "fp16"),
            ("MAX_LEN", "abc"),
            ("MAX_LEN", "1"),
            ("BATCH_SIZE", "0"),
            ("LEARNING_RATE", "nan"),
            ("SWEEP_BATCH_SIZES", "8,x"),
            ("SEED_SETTINGS", "yes"),
            ("PADDING", "longest"),
            ("ELECTRA_CONFIG", "c.json"),
            ("SAMPLE", "0"),
            ("SAMPLE", "1.5"),
            ("PRETRAIN_MINUTES", "1,-2"),
            ("PRETRAIN_MINUTES", "two"),
            ("PRETRAIN_OBJECTIVE", "clm"),
        ] {
            let e = with(&[(k, v)]).unwrap_err().to_string();
            assert!(e.contains(k), "{k}={v}: {e}");
        }
        let s = with(&[("SWEEP_BATCH_SIZES", "8, 32"), ("PRECISION", "bf16")]).unwrap();
        assert_eq!((s.sweep_batch_sizes.clone(), s.precision), (vec![8, 32], Precision::Bf16));
        assert!(s.table().0.contains("set") && s.table().0.contains("default"));
    }

    #[test]
    fn sample_cuts_the_data_from_the_top_and_is_stated() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/wos-sample");
        let s = with(&[("WOS_DIR", dir.to_str().unwrap()), ("SAMPLE", "0.5"), ("PRETRAIN_MINUTES", "0, 2.5")]).unwrap();
        let all = DataSpec::new(&dir).read().unwrap();
        let ds = s.dataset().unwrap();
        assert_eq!(ds.len(), 105);
        assert_eq!(ds.texts[..], all.texts[..105]);
        assert!(s.deviations().iter().any(|d| d.contains("first 50%")));
        assert_eq!(s.pretrain_minutes, vec![0.0, 2.5]);
        // The sweep reads the same texts the notebook does.
        let spec = DataSpec { first: s.sample.map(|_| ds.len()), ..DataSpec::new(&dir) };
        assert_eq!(spec.read().unwrap().fingerprint(), ds.fingerprint());
        assert_eq!(with(&[("SAMPLE", "1")]).unwrap().sample, None);
    }

    #[test]
    fn auto_precision_follows_the_device_and_is_stated() {
        let s = with(&[]).unwrap();
        assert!(s.precision_auto);
        assert_eq!(s.precision, Precision::fastest_for(tch::Device::Cpu));
        let fixed = with(&[("PRECISION", "fp32")]).unwrap();
        assert!(!fixed.precision_auto && fixed.precision == Precision::Fp32);
        if s.precision == Precision::Bf16 {
            assert!(s.deviations().iter().any(|d| d.contains("bf16") && d.contains("auto")));
        }
    }

    #[test]
    fn the_seed_recipe_has_no_deviation_but_the_fixes_and_the_split() {
        let seed = with(&[("SEED_SETTINGS", "1"), ("TRAIN_SIZE", "168")]).unwrap();
        let cfg = seed.train_config();
        assert_eq!((cfg.optimizer.kind, cfg.optimizer.learning_rate, cfg.optimizer.max_grad_norm), (OptimizerKind::Adam, 1e-5, None));
        assert!(!cfg.shuffle && cfg.eval_batch_size == Some(16) && seed.validation().is_none());
        let d = seed.deviations();
        assert_eq!(d.len(), 3, "{d:#?}");
        assert!(d[0].starts_with("Loss") && d[1].starts_with("Split") && d[2].starts_with("ELECTRA: pre-trained here"));
        assert_eq!(cfg.precision, Precision::Fp32);
        let ours = with(&[]).unwrap().deviations().join("\n");
        for word in
            ["AdamW", "Learning rate: 5e-5", "warmup", "clipping", "shuffled", "Evaluation batches of 32", "validation set", "3-fold"]
        {
            assert!(ours.contains(word), "{word} missing from:\n{ours}");
        }
    }
}
