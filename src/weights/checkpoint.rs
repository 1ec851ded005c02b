//! Reading weight files and copying them into a model's variables, with a
//! load report like transformers' (loaded / missing / unexpected / mismatched).
//!
//! tch would silently broadcast a `[3]` tensor into a `[2, 3]` variable and
//! silently convert integer data to floats; we check shapes and dtypes
//! ourselves and refuse mismatches.
use super::pickle::read_torch_state_dict;
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::Path;
use tch::{Kind, Tensor, nn};

/// Reads every tensor of a weights file: `.safetensors`, or a PyTorch
/// `.bin`/`.pt`/`.pth` state dict (zip or legacy format, read without
/// executing any pickle code). Tensors come back on the CPU.
pub fn read_weights(path: impl AsRef<Path>) -> Result<Vec<(String, Tensor)>> {
    let path = path.as_ref();
    let mut head = [0u8; 8];
    {
        use std::io::Read;
        let mut f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        let n = f.read(&mut head).map_err(|e| Error::io(path, e))?;
        if n < 8 {
            return Err(Error::weights(path, None, format!("file is {n} bytes long: too short to be a weights file")));
        }
    }
    let is_safetensors = path.extension().is_some_and(|e| e == "safetensors");
    if is_safetensors {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let st = safetensors::SafeTensors::deserialize(&bytes)
            .map_err(|e| Error::weights(path, None, format!("not a valid safetensors file: {e}")))?;
        let mut out = Vec::with_capacity(st.len());
        for (name, view) in st.iter() {
            let kind = match view.dtype() {
                safetensors::Dtype::F32 => Kind::Float,
                safetensors::Dtype::F16 => Kind::Half,
                safetensors::Dtype::BF16 => Kind::BFloat16,
                safetensors::Dtype::F64 => Kind::Double,
                safetensors::Dtype::I64 => Kind::Int64,
                safetensors::Dtype::I32 => Kind::Int,
                safetensors::Dtype::I16 => Kind::Int16,
                safetensors::Dtype::I8 => Kind::Int8,
                safetensors::Dtype::U8 => Kind::Uint8,
                safetensors::Dtype::BOOL => Kind::Bool,
                other => return Err(Error::weights(path, Some(name), format!("unsupported dtype {other:?}"))),
            };
            let shape: Vec<i64> = view.shape().iter().map(|&d| d as i64).collect();
            let t = Tensor::f_from_data_size(view.data(), &shape, kind)
                .map_err(|e| Error::weights(path, Some(name), format!("cannot build tensor: {e}")))?;
            out.push((name.to_string(), t));
        }
        // safetensors iterates in hash order; sort for stable reports.
        out.sort_by(|a, b| a.0.cmp(&b.0));
        return Ok(out);
    }
    read_torch_state_dict(path)
}

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
        format!(
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
        )
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
    let mut report = LoadReport { source: source.display().to_string(), ..Default::default() };
    let vars = vs.variables();
    let prefix = if map.encoder_prefix.is_empty() { String::new() } else { format!("{}.", map.encoder_prefix) };

    // File key → model variable name.
    let mut by_var: HashMap<String, (String, Tensor)> = HashMap::new();
    for (key, t) in weights {
        let mut k = normalise(&key);
        if k != key {
            report.renamed += 1;
        }
        let target = if vars.contains_key(&k) {
            k
        } else {
            for p in map.strip_prefixes {
                if let Some(rest) = k.strip_prefix(p) {
                    k = rest.to_string();
                    break;
                }
            }
            let with_prefix = format!("{prefix}{k}");
            if vars.contains_key(&with_prefix) {
                if with_prefix != key {
                    report.renamed += 1;
                }
                with_prefix
            } else {
                if map.ignore.iter().any(|i| k.starts_with(i) || k.ends_with(i)) {
                    report.ignored.push(key);
                } else {
                    report.unexpected.push(key);
                }
                continue;
            }
        };
        if let Some((prev, _)) = by_var.get(&target) {
            return Err(Error::weights(source, Some(&key), format!("duplicates `{prev}`: both map to variable `{target}`")));
        }
        by_var.insert(target, (key, t));
    }

    let mut names: Vec<&String> = vars.keys().collect();
    names.sort();
    let mut missing_required = Vec::new();
    for name in names {
        let var = &vars[name];
        let Some((key, src)) = by_var.remove(name) else {
            report.missing.push(name.clone());
            if !map.may_be_missing.iter().any(|m| name.starts_with(m)) {
                missing_required.push(name.clone());
            }
            continue;
        };
        if src.size() != var.size() {
            return Err(Error::weights(
                source,
                Some(&key),
                format!("shape mismatch: file has {:?}, model variable `{name}` expects {:?}", src.size(), var.size()),
            ));
        }
        let (sk, vk) = (src.kind(), var.kind());
        if sk != vk {
            if !(is_float(sk) && is_float(vk)) {
                return Err(Error::weights(
                    source,
                    Some(&key),
                    format!("dtype mismatch: file has {sk:?}, model variable `{name}` expects {vk:?}"),
                ));
            }
            report.converted.push((key.clone(), format!("{sk:?}")));
        }
        if is_float(sk) && src.numel() > 0 {
            let bad = src.isfinite().logical_not().sum(Kind::Int64).int64_value(&[]);
            if bad > 0 {
                return Err(Error::weights(
                    source,
                    Some(&key),
                    format!(
                        "{bad} of {} values are NaN or infinite: the checkpoint is corrupt (or was saved after training diverged)",
                        src.numel()
                    ),
                ));
            }
        }
        tch::no_grad(|| var.shallow_clone().copy_(&src.to_kind(vk).to_device(var.device())));
        report.loaded.push(name.clone());
    }
    if !missing_required.is_empty() {
        let shown: Vec<_> = missing_required.iter().take(6).cloned().collect();
        return Err(Error::weights(
            source,
            Some(&missing_required[0]),
            format!(
                "{} model variable(s) missing from the file ({}{}); is this the right checkpoint for this architecture?",
                missing_required.len(),
                shown.join(", "),
                if missing_required.len() > 6 { ", …" } else { "" }
            ),
        ));
    }
    report.unexpected.sort();
    report.ignored.sort();
    Ok(report)
}

fn is_float(kind: Kind) -> bool {
    matches!(kind, Kind::Float | Kind::Double | Kind::Half | Kind::BFloat16)
}
