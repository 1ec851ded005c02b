//! Writing a model directory as Hugging Face lays it out: `model.safetensors`
//! (every variable, on the CPU, in sorted key order), `config.json` and, when
//! given, `tokenizer.json`. Each file is written atomically, so an
//! interrupted save never leaves a torn file. Classifiers and the masked-LM
//! model both save through here; they differ only in their `config.json`.
use crate::error::{Error, Result};
use crate::tokenizer::TextTokenizer;
use std::path::Path;
use tch::{Device, Tensor, nn};

/// Saves the variables of `vs`, `config` as `config.json` and `tokenizer`
/// into `dir` (created if needed).
///
/// ```
/// let vs = tch::nn::VarStore::new(tch::Device::Cpu);
/// let _w = vs.root().zeros("w", &[2]);
/// let dir = tempfile::tempdir()?;
/// encoder_bench::weights::save_pretrained(&vs, &serde_json::json!({"model_type": "bert"}), None, dir.path())?;
/// assert!(dir.path().join("model.safetensors").exists() && dir.path().join("config.json").exists());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn save_pretrained(vs: &nn::VarStore, config: &serde_json::Value, tokenizer: Option<&TextTokenizer>, dir: &Path) -> Result<()> {
    save_pretrained_vars(vs.variables().into_iter().collect(), config, tokenizer, dir)
}

/// [`save_pretrained`] of named tensors: a subset of a var store, or its
/// variables under other names (ELECTRA's generator and discriminator live
/// in one store and are written as two models).
///
/// ```
/// let dir = tempfile::tempdir()?;
/// let vars = vec![("electra.w".to_string(), tch::Tensor::zeros([2], (tch::Kind::Float, tch::Device::Cpu)))];
/// encoder_bench::weights::save_pretrained_vars(vars, &serde_json::json!({"model_type": "electra"}), None, dir.path())?;
/// assert!(dir.path().join("model.safetensors").exists());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn save_pretrained_vars(
    vars: Vec<(String, Tensor)>,
    config: &serde_json::Value,
    tokenizer: Option<&TextTokenizer>,
    dir: &Path,
) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let mut vars: Vec<(String, Tensor)> = vars.into_iter().map(|(k, v)| (k, v.to_device(Device::Cpu))).collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    let weights = dir.join("model.safetensors");
    crate::error::write_atomic_with(&weights, |tmp| {
        Tensor::write_safetensors(&vars, tmp).map_err(|e| Error::torch(format!("writing {}", weights.display()), e))
    })?;
    let text = serde_json::to_string_pretty(config).map_err(|e| Error::invalid("config", e.to_string()))?;
    crate::error::write_atomic(dir.join("config.json"), text.as_bytes())?;
    if let Some(tok) = tokenizer {
        let path = dir.join("tokenizer.json");
        crate::error::write_atomic_with(&path, |tmp| {
            tok.inner().save(tmp, false).map_err(|e| Error::Tokenizer { path: path.clone(), msg: e.to_string() })
        })?;
    }
    Ok(())
}
