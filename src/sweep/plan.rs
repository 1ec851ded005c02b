//! A sweep as data: which texts, which splits, which models, batch sizes and
//! seeds, and the shared recipe. A plan expands into independent jobs (one
//! fine-tuning run, or the baseline on one fold), so the same sweep runs in
//! one process ([`sweep`](super::sweep)) or as `encoder-bench sweep --plan
//! DIR --run-job N` under any scheduler, with the same results.
use crate::data::{Dataset, Split, ValidationSpec};
use crate::error::{Error, Result, write_atomic};
use crate::models::{ModelFamily, ModelSource};
use crate::train::{Recipe, TrainConfig};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Where a sweep's texts come from (read with [`Dataset::read_path`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataSpec {
    /// A WOS directory, or a CSV/TSV/Parquet file.
    pub path: PathBuf,
    /// Text column of a CSV/TSV/Parquet file.
    pub text_column: String,
    /// Label column of a CSV/TSV/Parquet file.
    pub label_column: String,
    /// Keep only the first this-many texts (the seed's sample mode: 10%).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first: Option<usize>,
}

impl DataSpec {
    /// A WOS directory, or a table with `text` and `label` columns.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        DataSpec { path: path.into(), text_column: "text".into(), label_column: "label".into(), first: None }
    }

    /// Reads the data (its first [`first`](Self::first) texts when set).
    ///
    /// ```
    /// use encoder_bench::sweep::DataSpec;
    /// let spec = DataSpec { first: Some(21), ..DataSpec::new("../shared/data/wos-sample") };
    /// # if std::path::Path::new("../shared/data/wos-sample").exists() {
    /// assert_eq!(spec.read()?.len(), 21);
    /// # }
    /// # Ok::<(), encoder_bench::Error>(())
    /// ```
    pub fn read(&self) -> Result<Dataset> {
        let ds = Dataset::read_path(&self.path, &self.text_column, &self.label_column)?;
        match self.first {
            Some(n) if n < ds.len() => Ok(ds.subset(&(0..n).collect::<Vec<_>>())),
            _ => Ok(ds),
        }
    }
}

/// How the test texts are chosen.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TestSplit {
    /// The first `n_train` texts train, the rest test (the seed's split).
    FirstN {
        /// Training texts.
        n_train: usize,
    },
    /// A stratified split with this share of test texts.
    Stratified {
        /// Share of each class that is tested.
        test_fraction: f64,
        /// Seed of the per-class shuffle.
        seed: u64,
    },
    /// Stratified k-fold cross-validation: every text is a test text once.
    KFold {
        /// Number of folds.
        k: usize,
        /// Seed of the per-class shuffle.
        seed: u64,
    },
}

/// The test split and the validation set carved from each training side.
///
/// ```
/// use encoder_bench::sweep::{SplitSpec, TestSplit};
/// let s = SplitSpec::kfold(5, 0);
/// assert_eq!(s.n_folds(), 5);
/// assert!(s.validation.is_some());
/// assert!(SplitSpec { validation: None, ..s }.selects_on_test());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SplitSpec {
    /// How the test texts are chosen.
    pub test: TestSplit,
    /// The validation set that chooses epochs and settings; `None` is the
    /// seed's mode, where the test set chooses (and reports say so).
    pub validation: Option<ValidationSpec>,
    /// Seed of the validation carve (fold `i` uses `validation_seed + i`).
    pub validation_seed: u64,
}

impl SplitSpec {
    /// k-fold cross-validation with the default validation carve.
    pub fn kfold(k: usize, seed: u64) -> Self {
        SplitSpec { test: TestSplit::KFold { k, seed }, validation: Some(ValidationSpec::default()), validation_seed: seed }
    }

    /// The seed's split (first `n_train` texts train) with the default validation carve.
    pub fn first_n(n_train: usize) -> Self {
        SplitSpec { test: TestSplit::FirstN { n_train }, validation: Some(ValidationSpec::default()), validation_seed: 0 }
    }

    /// `k`-fold cross-validation for `k >= 2`, else the seed's split with
    /// `n_train` training texts; both with the default validation carve.
    ///
    /// ```
    /// use encoder_bench::sweep::{SplitSpec, TestSplit};
    /// assert_eq!(SplitSpec::folds_or_first_n(1, 168, 0).test, TestSplit::FirstN { n_train: 168 });
    /// assert_eq!(SplitSpec::folds_or_first_n(5, 168, 0).n_folds(), 5);
    /// ```
    pub fn folds_or_first_n(k: usize, n_train: usize, seed: u64) -> Self {
        if k >= 2 { SplitSpec::kfold(k, seed) } else { SplitSpec { validation_seed: seed, ..SplitSpec::first_n(n_train) } }
    }

    /// How many train/test splits the spec makes.
    pub fn n_folds(&self) -> usize {
        match self.test {
            TestSplit::KFold { k, .. } => k,
            _ => 1,
        }
    }

    /// True in the seed's mode: no validation set, the test set chooses.
    pub fn selects_on_test(&self) -> bool {
        self.validation.is_none()
    }

    /// The splits of `ds`, each with its validation set carved out.
    pub fn splits(&self, ds: &Dataset) -> Result<Vec<Split>> {
        let tests = match self.test {
            TestSplit::FirstN { n_train } => vec![Split::first_n(ds, n_train)?],
            TestSplit::Stratified { test_fraction, seed } => vec![Split::stratified(ds, test_fraction, seed)?],
            TestSplit::KFold { k, seed } => Split::kfold(ds, k, seed)?,
        };
        tests
            .into_iter()
            .enumerate()
            .map(|(i, s)| match self.validation {
                Some(v) => s.with_validation(v, self.validation_seed.wrapping_add(i as u64)),
                None => Ok(s),
            })
            .collect()
    }
}

/// One model of a sweep.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SweepModel {
    /// Name in tables and legends ("BERT", "ELECTRA", ...).
    pub name: String,
    /// Where its weights come from.
    pub source: ModelSource,
    /// Tokenizer directory when the model has none (an ELECTRA state dict).
    pub tokenizer: Option<PathBuf>,
    /// The family, when neither the config nor the weights' key names say it
    /// (`None`: decided by the loader, see [`load_classifier_as`](crate::models::load_classifier_as)).
    pub family: Option<ModelFamily>,
    /// One source per fold (a model pre-trained on that fold's training
    /// texts, so no test text reached its pre-training); empty: `source`
    /// serves every fold.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fold_sources: Vec<ModelSource>,
    /// This model's fine-tuning recipe (see [`Recipe::for_config`]); `None`:
    /// the plan's `train.optimizer`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipe: Option<Recipe>,
}

impl SweepModel {
    /// A model whose directory (or hub snapshot) carries its tokenizer.
    pub fn new(name: impl Into<String>, source: ModelSource) -> Self {
        SweepModel { name: name.into(), source, tokenizer: None, family: None, fold_sources: Vec::new(), recipe: None }
    }

    /// The same model fine-tuned with `recipe` instead of the plan's optimizer.
    ///
    /// ```
    /// use encoder_bench::models::ModelSource;
    /// use encoder_bench::sweep::SweepModel;
    /// use encoder_bench::train::Recipe;
    /// let m = SweepModel::new("BERT", ModelSource::parse("models/minilm")).with_recipe(Recipe::transformers());
    /// assert_eq!(m.recipe.unwrap().name, "transformers");
    /// ```
    pub fn with_recipe(mut self, recipe: Recipe) -> Self {
        self.recipe = Some(recipe);
        self
    }

    /// The recipe chosen from this model's config (see [`Recipe::for_config`]).
    pub fn with_recipe_from_config(self) -> Result<Self> {
        let files = self.source_for(0)?.resolve()?;
        let config = crate::models::ModelConfig::from_file_with(&files.config, self.family, &[])?.config;
        Ok(self.with_recipe(Recipe::for_config(&config)))
    }

    /// A model with other weights on every fold: `sources[k]` serves fold
    /// `k` (see [`crate::sweep::FoldPretraining`], which makes them).
    ///
    /// ```
    /// use encoder_bench::models::ModelSource;
    /// use encoder_bench::sweep::SweepModel;
    /// let m = SweepModel::per_fold("ELECTRA", vec![ModelSource::parse("pre/fold-1"), ModelSource::parse("pre/fold-2")]);
    /// assert_eq!(m.source_for(1)?, &ModelSource::parse("pre/fold-2"));
    /// assert!(m.source_for(2).is_err());
    /// # Ok::<(), encoder_bench::Error>(())
    /// ```
    pub fn per_fold(name: impl Into<String>, sources: Vec<ModelSource>) -> Self {
        let first = sources.first().cloned().unwrap_or_else(|| ModelSource::Dir(PathBuf::new()));
        SweepModel { fold_sources: sources, ..SweepModel::new(name, first) }
    }

    /// The weights fold `fold` fine-tunes.
    pub fn source_for(&self, fold: usize) -> Result<&ModelSource> {
        if self.fold_sources.is_empty() {
            return Ok(&self.source);
        }
        self.fold_sources.get(fold).ok_or_else(|| {
            Error::invalid(
                format!("sweep model `{}`", self.name),
                format!("has weights for {} folds, not for fold {}", self.fold_sources.len(), fold + 1),
            )
        })
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

    /// The tokenizer directory: the explicit one, else the model's own.
    pub fn tokenizer_dir(&self) -> Result<PathBuf> {
        if let Some(t) = &self.tokenizer {
            return Ok(t.clone());
        }
        self.source.resolve()?.tokenizer_dir.ok_or_else(|| {
            Error::invalid(format!("sweep model `{}`", self.name), "has no tokenizer: give one with SweepModel::with_tokenizer")
        })
    }
}

/// What one job does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum JobKind {
    /// Fine-tune `plan.models[model]` at `batch_size` with `seed`.
    Encoder {
        /// Index into the plan's models.
        model: usize,
        /// Training batch size.
        batch_size: usize,
        /// Seed of the head, dropout and shuffling.
        seed: u64,
    },
    /// The TF-IDF + logistic-regression baseline (deterministic: one per fold).
    Baseline,
}

/// One independent unit of a sweep: a kind of run on one fold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Job {
    /// Position in [`SweepPlan::jobs`]: the `N` of `--run-job N`.
    pub id: usize,
    /// Which split of [`SplitSpec::splits`].
    pub fold: usize,
    /// What runs.
    pub kind: JobKind,
}

/// A whole sweep: data, splits, models × batch sizes × seeds, the shared
/// recipe, and whether the baseline runs.
///
/// ```
/// use encoder_bench::models::ModelSource;
/// use encoder_bench::sweep::{DataSpec, SplitSpec, SweepModel, SweepPlan};
/// use encoder_bench::train::TrainConfig;
/// let plan = SweepPlan {
///     data: DataSpec::new("../shared/data/wos-sample"),
///     data_fingerprint: None,
///     split: SplitSpec::kfold(5, 0),
///     models: vec![SweepModel::new("BERT", ModelSource::parse("models/minilm"))],
///     batch_sizes: vec![8, 16],
///     seeds: vec![0],
///     baseline: true,
///     train: TrainConfig::transformers_recipe(),
/// };
/// // 5 folds × (1 model × 2 batch sizes × 1 seed + the baseline)
/// assert_eq!(plan.jobs().len(), 15);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SweepPlan {
    /// The texts.
    pub data: DataSpec,
    /// [`Dataset::fingerprint`] of the data when the plan was written: jobs
    /// refuse other data.
    pub data_fingerprint: Option<String>,
    /// Test split and validation carve.
    pub split: SplitSpec,
    /// The models compared.
    pub models: Vec<SweepModel>,
    /// Training batch sizes.
    pub batch_sizes: Vec<usize>,
    /// Seeds: every model × batch size runs once per seed on every fold.
    pub seeds: Vec<u64>,
    /// Also run the TF-IDF + logistic-regression baseline on every fold.
    pub baseline: bool,
    /// The shared recipe (`batch_size`, `seed` and `checkpoint_dir` are set per job).
    pub train: TrainConfig,
}

/// The plan's file in a plan directory.
pub const PLAN_FILE: &str = "plan.json";
/// One command per job, one per line (`xargs`, Slurm arrays).
pub const COMMANDS_FILE: &str = "jobs.txt";

impl SweepPlan {
    /// The fine-tuning recipe of model `model`: its own, or the plan's optimizer.
    pub fn recipe_of(&self, model: usize) -> Recipe {
        match self.models.get(model).and_then(|m| m.recipe.clone()) {
            Some(r) => r,
            None => Recipe { name: "as set".into(), optimizer: self.train.optimizer.clone() },
        }
    }

    /// The recipe each model is fine-tuned with, as a table.
    pub fn recipes_table(&self) -> crate::report::HtmlTable {
        let rows: Vec<Vec<String>> = (0..self.models.len())
            .map(|i| {
                let r = self.recipe_of(i);
                vec![self.models[i].name.clone(), r.name.clone(), r.describe()]
            })
            .collect();
        crate::report::HtmlTable(crate::report::html_table(&["model".into(), "recipe".into(), "optimizer".into()], &rows))
    }

    /// Checks the plan before anything runs; errors name the setting.
    pub fn validate(&self) -> Result<()> {
        if self.models.is_empty() && !self.baseline {
            return Err(Error::invalid("sweep", "needs at least one model (or the baseline)"));
        }
        if !self.models.is_empty() && self.batch_sizes.is_empty() {
            return Err(Error::invalid("sweep batch sizes", "needs at least one batch size"));
        }
        if let Some(b) = self.batch_sizes.iter().find(|&&b| b == 0) {
            return Err(Error::invalid("sweep batch sizes", format!("{b}: expected at least 1")));
        }
        if self.seeds.is_empty() {
            return Err(Error::invalid("sweep seeds", "needs at least one seed"));
        }
        let mut names: Vec<&str> = self.models.iter().map(|m| m.name.as_str()).collect();
        names.sort_unstable();
        if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
            return Err(Error::invalid("sweep models", format!("two models are called `{}`: names must differ", w[0])));
        }
        if let Some(m) = self.models.iter().find(|m| !m.fold_sources.is_empty() && m.fold_sources.len() != self.split.n_folds()) {
            return Err(Error::invalid(
                format!("sweep model `{}`", m.name),
                format!("has weights for {} folds but the split has {}", m.fold_sources.len(), self.split.n_folds()),
            ));
        }
        if names.contains(&super::BASELINE_NAME) {
            return Err(Error::invalid("sweep models", format!("`{}` is the baseline's name", super::BASELINE_NAME)));
        }
        for (what, v) in [("batch sizes", &self.batch_sizes), ("seeds", &self.seeds.iter().map(|&s| s as usize).collect())] {
            let mut sorted = v.clone();
            sorted.sort_unstable();
            sorted.dedup();
            if sorted.len() != v.len() {
                return Err(Error::invalid(format!("sweep {what}"), format!("{v:?} repeats a value")));
            }
        }
        for m in &self.models {
            if let Some(r) = &m.recipe {
                r.optimizer.validate().map_err(|e| Error::invalid(format!("sweep model `{}` recipe", m.name), e.to_string()))?;
            }
        }
        self.train.validate()
    }

    /// Every job, in a fixed order: per model, batch size, fold and seed,
    /// then the baseline per fold.
    pub fn jobs(&self) -> Vec<Job> {
        let mut kinds = Vec::new();
        for model in 0..self.models.len() {
            for &batch_size in &self.batch_sizes {
                for fold in 0..self.split.n_folds() {
                    for &seed in &self.seeds {
                        kinds.push((fold, JobKind::Encoder { model, batch_size, seed }));
                    }
                }
            }
        }
        if self.baseline {
            kinds.extend((0..self.split.n_folds()).map(|fold| (fold, JobKind::Baseline)));
        }
        kinds.into_iter().enumerate().map(|(id, (fold, kind))| Job { id, fold, kind }).collect()
    }

    /// Writes the plan into `dir`: `plan.json`, `jobs/NNNN/job.json` (the
    /// job and the exact command that runs it) and `jobs.txt` (the commands,
    /// one per line). Refuses a directory that already holds a plan. Reads
    /// the data once to record its fingerprint.
    pub fn write(&self, dir: &Path) -> Result<Vec<String>> {
        self.validate()?;
        let path = dir.join(PLAN_FILE);
        if path.exists() {
            return Err(Error::invalid("plan", format!("{} already holds a plan: choose another directory", dir.display())));
        }
        let mut plan = self.clone();
        let ds = self.data.read()?;
        self.split.splits(&ds)?;
        plan.data_fingerprint = Some(ds.fingerprint());
        let jobs_dir = dir.join("jobs");
        std::fs::create_dir_all(&jobs_dir).map_err(|e| Error::io(&jobs_dir, e))?;
        let mut commands = Vec::new();
        for job in plan.jobs() {
            let command = job_command(dir, job.id);
            let d = job_dir(dir, job.id);
            std::fs::create_dir_all(&d).map_err(|e| Error::io(&d, e))?;
            let text = serde_json::json!({ "job": job, "command": command });
            write_atomic(d.join("job.json"), serde_json::to_string_pretty(&text).unwrap_or_default().as_bytes())?;
            commands.push(command);
        }
        write_atomic(dir.join(COMMANDS_FILE), (commands.join("\n") + "\n").as_bytes())?;
        // The plan last: a directory with plan.json is complete.
        write_atomic(&path, to_json(&plan)?.as_bytes())?;
        Ok(commands)
    }

    /// Reads the plan in `dir`.
    pub fn read(dir: &Path) -> Result<SweepPlan> {
        let path = dir.join(PLAN_FILE);
        let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
        serde_json::from_str(&text).map_err(|e| Error::config(&path, "<json>", e.to_string()))
    }
}

/// The directory of job `id` in a plan directory.
pub fn job_dir(dir: &Path, id: usize) -> PathBuf {
    dir.join("jobs").join(format!("{id:04}"))
}

/// The command line that runs job `id` of the plan in `dir`.
pub fn job_command(dir: &Path, id: usize) -> String {
    let quoted = shell_quote(&dir.display().to_string());
    format!("encoder-bench sweep --plan {quoted} --run-job {id}")
}

fn shell_quote(s: &str) -> String {
    if !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "/._-+=:,".contains(c)) {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

pub(crate) fn to_json<T: Serialize>(v: &T) -> Result<String> {
    serde_json::to_string_pretty(v).map_err(|e| Error::invalid("sweep record", e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> SweepPlan {
        SweepPlan {
            data: DataSpec::new("../shared/data/wos-sample"),
            data_fingerprint: None,
            split: SplitSpec::kfold(3, 1),
            models: vec![SweepModel::new("A", ModelSource::parse("a")), SweepModel::new("B", ModelSource::parse("b"))],
            batch_sizes: vec![8, 16],
            seeds: vec![0, 1],
            baseline: true,
            train: TrainConfig::default(),
        }
    }

    #[test]
    fn jobs_cover_the_grid_once() {
        let p = plan();
        let jobs = p.jobs();
        assert_eq!(jobs.len(), 2 * 2 * 3 * 2 + 3);
        assert!(jobs.iter().enumerate().all(|(i, j)| j.id == i));
        let mut enc: Vec<_> = jobs
            .iter()
            .filter_map(|j| match j.kind {
                JobKind::Encoder { model, batch_size, seed } => Some((model, batch_size, j.fold, seed)),
                JobKind::Baseline => None,
            })
            .collect();
        enc.sort_unstable();
        enc.dedup();
        assert_eq!(enc.len(), 24);
        assert_eq!(jobs.iter().filter(|j| j.kind == JobKind::Baseline).map(|j| j.fold).collect::<Vec<_>>(), [0, 1, 2]);
    }

    #[test]
    fn bad_plans_are_refused_by_name() {
        let mut p = plan();
        p.models[1].name = "A".into();
        assert!(p.validate().unwrap_err().to_string().contains("`A`"));
        let mut p = plan();
        p.batch_sizes = vec![8, 8];
        assert!(p.validate().unwrap_err().to_string().contains("repeats"));
        let mut p = plan();
        p.seeds.clear();
        assert!(p.validate().unwrap_err().to_string().contains("seed"));
        let mut p = plan();
        p.batch_sizes.push(0);
        assert!(p.validate().is_err());
    }

    #[test]
    fn commands_quote_odd_paths() {
        assert_eq!(job_command(Path::new("runs/plan"), 3), "encoder-bench sweep --plan runs/plan --run-job 3");
        assert_eq!(job_command(Path::new("my plan"), 0), "encoder-bench sweep --plan 'my plan' --run-job 0");
    }
}
