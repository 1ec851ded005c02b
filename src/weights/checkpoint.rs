//! Reading weight files and copying them into a model's variables, with a
//! load report like transformers' (loaded / missing / unexpected / mismatched).
//!
//! tch would silently broadcast a `[3]` tensor into a `[2, 3]` variable and
//! silently convert integer data to floats; we check shapes and dtypes
//! ourselves and refuse mismatches.
pub use super::read::read_weights;
use super::shards::WeightSet;
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::Path;
use tch::{Kind, Tensor, nn};

/// What happened to each key when weights were loaded into a model.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LoadReport {
    /// The weights file.
    pub source: String,
    /// Model variables filled from the file.
    pub loaded: Vec<String>,
    /// Model variables the file did not have (left at their initial values).
    pub missing: Vec<String>,
    /// File keys the model has no variable for.
    pub unexpected: Vec<String>,
    /// File keys that are known not to matter here (buffers such as
    /// `position_ids`, the ELECTRA generator's MLM head when classifying).
    pub ignored: Vec<String>,
    /// `(key, file dtype)` of floating tensors converted to the model's dtype.
    pub converted: Vec<(String, String)>,
    /// Keys whose names were rewritten (`LayerNorm.gamma` → `.weight`, prefixes).
    pub renamed: usize,
    /// The family the model was built as (`bert`, `electra`; empty when not recorded).
    #[serde(default)]
    pub family: String,
    /// How the family was decided: `model_type`, `architectures`, `caller` or `weight keys`.
    #[serde(default)]
    pub family_from: String,
    /// Config fields this crate does not use, ignored as transformers does
    /// (TinyBERT's `emb_size`, `cell`, `structure`, ...).
    #[serde(default)]
    pub config_ignored: Vec<String>,
    /// Number of shard files read (0 for a single weights file).
    #[serde(default)]
    pub shards: usize,
}

impl LoadReport {
    /// One line per category, the way transformers warns about weights.
    pub fn summary(&self) -> String {
        let list = |v: &[String]| {
            if v.is_empty() {
                "none".to_string()
            } else if v.len() <= 8 {
                v.join(", ")
            } else {
                format!("{} … ({} in all)", v[..8].join(", "), v.len())
            }
        };
        let mut text = format!(
            "weights from {}\n  loaded:     {} tensors\n  missing:    {} (newly initialised)\n  unexpected: {}\n  ignored:    {}\n  converted:  {}",
            self.source,
            self.loaded.len(),
            list(&self.missing),
            list(&self.unexpected),
            list(&self.ignored),
            if self.converted.is_empty() {
                "none".into()
            } else {
                format!("{} tensors from {} to f32", self.converted.len(), self.converted[0].1)
            },
        );
        if self.shards > 0 {
            text.push_str(&format!("\n  shards:     {}", self.shards));
        }
        if !self.family.is_empty() {
            text.push_str(&format!("\n  family:     {} (from {})", self.family, self.family_from));
        }
        if !self.config_ignored.is_empty() {
            text.push_str(&format!("\n  config fields ignored: {}", list(&self.config_ignored)));
        }
        text
    }
}

impl std::fmt::Display for LoadReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.summary())
    }
}

/// How checkpoint keys map onto a model's variables.
#[derive(Debug, Clone)]
pub struct KeyMap<'a> {
    /// The prefix of the encoder's variables in the var store (`bert`,
    /// `electra`, or empty for a bare encoder).
    pub encoder_prefix: &'a str,
    /// File prefixes stripped before matching (`bert.`, `electra.`).
    pub strip_prefixes: &'a [&'a str],
    /// File key prefixes/suffixes to ignore rather than report as unexpected.
    pub ignore: &'a [&'a str],
    /// Model variables allowed to be missing (e.g. a new classifier head).
    pub may_be_missing: &'a [&'a str],
}

fn normalise(key: &str) -> String {
    // TF-era checkpoints name LayerNorm parameters gamma/beta.
    key.replace("LayerNorm.gamma", "LayerNorm.weight").replace("LayerNorm.beta", "LayerNorm.bias")
}

/// Copies `weights` into the variables of `vs`, checking names, shapes and
/// dtypes. Missing variables that are not allowed to be missing, shape
/// mismatches and non-float data for float variables are errors naming the
/// key; everything else is reported.
pub fn load_into(vs: &nn::VarStore, weights: Vec<(String, Tensor)>, map: &KeyMap, source: &Path) -> Result<LoadReport> {
    let mut loading = Loading::new(vs, map, source);
    loading.feed(weights, source)?;
    loading.finish()
}

/// [`load_into`] for a [`WeightSet`]: a single file, or a sharded checkpoint
/// loaded one shard at a time (each shard is copied into the model and
/// dropped before the next is read). The report's `source` is the file or
/// the index.
///
/// ```no_run
/// use encoder_bench::weights::{KeyMap, WeightSet, load_set_into};
/// let vs = tch::nn::VarStore::new(tch::Device::Cpu);
/// let set = WeightSet::open("my-model/model.safetensors.index.json")?;
/// let map = KeyMap { encoder_prefix: "", strip_prefixes: &["bert."], ignore: &["pooler."], may_be_missing: &[] };
/// let report = load_set_into(&vs, set, &map)?;
/// println!("{report}");
/// # Ok::<(), encoder_bench::Error>(())
/// ```
pub fn load_set_into(vs: &nn::VarStore, set: WeightSet, map: &KeyMap) -> Result<LoadReport> {
    let source = set.path().to_path_buf();
    let sharded = matches!(set, WeightSet::Sharded(_));
    let mut loading = Loading::new(vs, map, &source);
    let mut shards = 0;
    set.for_each_shard(|file, tensors| {
        shards += 1;
        loading.feed(tensors, file)
    })?;
    let mut report = loading.finish()?;
    report.shards = if sharded { shards } else { 0 };
    Ok(report)
}

/// An incremental load: tensors are fed file by file and copied at once.
struct Loading<'a> {
    vars: HashMap<String, Tensor>,
    map: &'a KeyMap<'a>,
    prefix: String,
    source: &'a Path,
    /// Model variable → the file key that filled it.
    filled: HashMap<String, String>,
    report: LoadReport,
}

impl<'a> Loading<'a> {
    fn new(vs: &nn::VarStore, map: &'a KeyMap<'a>, source: &'a Path) -> Self {
        let prefix = if map.encoder_prefix.is_empty() { String::new() } else { format!("{}.", map.encoder_prefix) };
        Loading {
            vars: vs.variables(),
            map,
            prefix,
            source,
            filled: HashMap::new(),
            report: LoadReport { source: source.display().to_string(), ..Default::default() },
        }
    }

    /// The model variable a file key maps to, or `None` (reported as ignored or unexpected).
    fn target(&mut self, key: &str) -> Option<String> {
        let mut k = normalise(key);
        if k != key {
            self.report.renamed += 1;
        }
        if self.vars.contains_key(&k) {
            return Some(k);
        }
        for p in self.map.strip_prefixes {
            if let Some(rest) = k.strip_prefix(p) {
                k = rest.to_string();
                break;
            }
        }
        let with_prefix = format!("{}{k}", self.prefix);
        if self.vars.contains_key(&with_prefix) {
            if with_prefix != key {
                self.report.renamed += 1;
            }
            return Some(with_prefix);
        }
        if self.map.ignore.iter().any(|i| k.starts_with(i) || k.ends_with(i)) {
            self.report.ignored.push(key.to_string());
        } else {
            self.report.unexpected.push(key.to_string());
        }
        None
    }

    /// Checks and copies the tensors of one file (`file` names it in errors).
    fn feed(&mut self, weights: Vec<(String, Tensor)>, file: &Path) -> Result<()> {
        for (key, src) in weights {
            let Some(name) = self.target(&key) else { continue };
            if let Some(prev) = self.filled.get(&name) {
                return Err(Error::weights(file, Some(&key), format!("duplicates `{prev}`: both map to variable `{name}`")));
            }
            let var = &self.vars[&name];
            if src.size() != var.size() {
                return Err(Error::weights(
                    file,
                    Some(&key),
                    format!("shape mismatch: file has {:?}, model variable `{name}` expects {:?}", src.size(), var.size()),
                ));
            }
            let (sk, vk) = (src.kind(), var.kind());
            if sk != vk {
                if !(is_float(sk) && is_float(vk)) {
                    return Err(Error::weights(
                        file,
                        Some(&key),
                        format!("dtype mismatch: file has {sk:?}, model variable `{name}` expects {vk:?}"),
                    ));
                }
                self.report.converted.push((key.clone(), format!("{sk:?}")));
            }
            if is_float(sk) && src.numel() > 0 {
                let bad = src.isfinite().logical_not().sum(Kind::Int64).int64_value(&[]);
                if bad > 0 {
                    return Err(Error::weights(
                        file,
                        Some(&key),
                        format!(
                            "{bad} of {} values are NaN or infinite: the checkpoint is corrupt (or was saved after training diverged)",
                            src.numel()
                        ),
                    ));
                }
            }
            let src = crate::device::to_device(&src.to_kind(vk), var.device())?;
            tch::no_grad(|| var.shallow_clone().copy_(&src));
            self.report.loaded.push(name.clone());
            self.filled.insert(name, key);
        }
        Ok(())
    }

    /// Lists what stayed missing (an error unless allowed) and sorts the report.
    fn finish(mut self) -> Result<LoadReport> {
        let mut names: Vec<&String> = self.vars.keys().filter(|n| !self.filled.contains_key(*n)).collect();
        names.sort();
        let mut missing_required = Vec::new();
        for name in names {
            self.report.missing.push(name.clone());
            if !self.map.may_be_missing.iter().any(|m| name.starts_with(m)) {
                missing_required.push(name.clone());
            }
        }
        if !missing_required.is_empty() {
            let shown: Vec<_> = missing_required.iter().take(6).cloned().collect();
            return Err(Error::weights(
                self.source,
                Some(&missing_required[0]),
                format!(
                    "{} model variable(s) missing from the file ({}{}); is this the right checkpoint for this architecture?",
                    missing_required.len(),
                    shown.join(", "),
                    if missing_required.len() > 6 { ", …" } else { "" }
                ),
            ));
        }
        self.report.loaded.sort();
        self.report.unexpected.sort();
        self.report.ignored.sort();
        Ok(self.report)
    }
}

fn is_float(kind: Kind) -> bool {
    matches!(kind, Kind::Float | Kind::Double | Kind::Half | Kind::BFloat16)
}
