//! Where a model's files come from: a local directory, a Hugging Face hub id
//! (through `hf-hub` and its cache), or the seed's case of a bare PyTorch
//! state dict beside a separate `config.json`.
use crate::error::{Error, Result};
use crate::tokenizer::is_tokenizer_dir;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// A model to load.
///
/// ```
/// use encoder_bench::models::ModelSource;
/// let s = ModelSource::state_dict("models/electra-seed/config.json", "models/electra-seed/babylm_model.bin");
/// assert!(s.to_string().contains("babylm_model.bin"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelSource {
    /// A directory with `config.json` (or `bert_config.json`) and `model.safetensors`,
    /// `pytorch_model.bin`, or the `*.index.json` of sharded weights.
    Dir(PathBuf),
    /// A hub id such as `bert-base-uncased` or `huawei-noah/TinyBERT_General_4L_312D`.
    Hub(String),
    /// A weights file (e.g. `babylm_model.bin`) and its `config.json`.
    StateDict { config: PathBuf, weights: PathBuf },
}

impl std::fmt::Display for ModelSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ModelSource::Dir(d) => write!(f, "{}", d.display()),
            ModelSource::Hub(id) => write!(f, "hub:{id}"),
            ModelSource::StateDict { config, weights } => write!(f, "{} + {}", config.display(), weights.display()),
        }
    }
}

/// The files of a resolved [`ModelSource`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelFiles {
    /// `config.json` (or, for Google's original conversions, `bert_config.json`).
    pub config: PathBuf,
    /// The weights file, or the `*.index.json` of a sharded checkpoint
    /// (open either with [`WeightSet::open`](super::WeightSet::open)).
    pub weights: PathBuf,
    /// A directory holding `tokenizer.json` or `vocab.txt`, when there is one.
    pub tokenizer_dir: Option<PathBuf>,
}

/// Weight files looked for, in order: single files before shard indexes,
/// safetensors before PyTorch.
const WEIGHT_FILES: [&str; 4] = ["model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json"];

/// Config files looked for, in order (`bert_config.json`: Google's original BERT conversions).
const CONFIG_FILES: [&str; 2] = ["config.json", "bert_config.json"];

impl ModelSource {
    /// A local directory if `spec` exists on disk, otherwise a hub id.
    pub fn parse(spec: &str) -> ModelSource {
        let p = Path::new(spec);
        if p.exists() || spec.starts_with('.') || spec.starts_with('/') {
            ModelSource::Dir(p.to_path_buf())
        } else {
            ModelSource::Hub(spec.to_string())
        }
    }

    /// The seed's case: a state dict file plus its config.
    pub fn state_dict(config: impl Into<PathBuf>, weights: impl Into<PathBuf>) -> ModelSource {
        ModelSource::StateDict { config: config.into(), weights: weights.into() }
    }

    /// Finds (and for hub ids, downloads or reads from the cache) the files.
    /// With `HF_HUB_OFFLINE=1` only the local hub cache is consulted.
    pub fn resolve(&self) -> Result<ModelFiles> {
        match self {
            ModelSource::Dir(dir) => {
                if !dir.is_dir() {
                    return Err(Error::io(dir, std::io::Error::new(std::io::ErrorKind::NotFound, "model directory not found")));
                }
                let config = CONFIG_FILES.iter().map(|c| dir.join(c)).find(|p| p.exists()).ok_or_else(|| {
                    Error::io(
                        dir.join(CONFIG_FILES[0]),
                        std::io::Error::new(
                            std::io::ErrorKind::NotFound,
                            format!(
                                "file not found: a model directory needs {} and one of {}",
                                CONFIG_FILES.join(" or "),
                                WEIGHT_FILES.join(", ")
                            ),
                        ),
                    )
                })?;
                let weights =
                    WEIGHT_FILES.iter().map(|w| dir.join(w)).find(|p| p.exists()).ok_or_else(|| {
                        Error::weights(dir, None, format!("no weights file: expected one of {}", WEIGHT_FILES.join(", ")))
                    })?;
                Ok(ModelFiles { config, weights, tokenizer_dir: is_tokenizer_dir(dir).then(|| dir.clone()) })
            }
            ModelSource::StateDict { config, weights } => {
                for (p, what) in [(config, "the model's config.json"), (weights, "the weights file")] {
                    if !p.exists() {
                        return Err(Error::io(
                            p,
                            std::io::Error::new(std::io::ErrorKind::NotFound, format!("file not found: expected {what}")),
                        ));
                    }
                }
                let tokenizer_dir = config.parent().filter(|d| is_tokenizer_dir(d)).map(Path::to_path_buf);
                Ok(ModelFiles { config: config.clone(), weights: weights.clone(), tokenizer_dir })
            }
            ModelSource::Hub(id) => resolve_hub(id),
        }
    }
}

/// The hub cache: `HF_HUB_CACHE` when set, else `HF_HOME/hub`, else
/// `~/.cache/huggingface/hub` (as `huggingface_hub` decides).
fn hub_cache() -> hf_hub::Cache {
    match std::env::var_os("HF_HUB_CACHE") {
        Some(dir) if !dir.is_empty() => hf_hub::Cache::new(PathBuf::from(dir)),
        _ => hf_hub::Cache::from_env(),
    }
}

fn offline() -> bool {
    std::env::var("HF_HUB_OFFLINE").is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true"))
}

fn resolve_hub(id: &str) -> Result<ModelFiles> {
    let place = PathBuf::from(format!("hub:{id}"));
    // Ok(path) or the reason it could not be had.
    let fetch = |file: &str| -> std::result::Result<PathBuf, String> {
        if offline() {
            return hub_cache()
                .model(id.to_string())
                .get(file)
                .ok_or_else(|| "not in the local hub cache and HF_HUB_OFFLINE=1".to_string());
        }
        let mut builder = hf_hub::api::sync::ApiBuilder::from_cache(hub_cache());
        if let Ok(endpoint) = std::env::var("HF_ENDPOINT") {
            builder = builder.with_endpoint(endpoint);
        }
        let api = builder.with_progress(false).build().map_err(|e| format!("cannot start the hub client: {e}"))?;
        api.model(id.to_string()).get(file).map_err(|e| format!("download failed: {e} (HF_HUB_OFFLINE=1 uses the local cache only)"))
    };
    let first = |names: &[&str]| -> std::result::Result<PathBuf, String> {
        let mut reasons = Vec::new();
        for name in names {
            match fetch(name) {
                Ok(p) => return Ok(p),
                Err(why) => reasons.push(format!("{name}: {why}")),
            }
        }
        Err(reasons.join("; "))
    };
    let config = first(&CONFIG_FILES).map_err(|why| Error::weights(&place, Some("config.json"), format!("model `{id}`: {why}")))?;
    let weights = first(&WEIGHT_FILES).map_err(|why| Error::weights(&place, None, format!("no weights file: {why}")))?;
    if super::shards::is_index(&weights) {
        // Each shard the index names, from the cache or downloaded.
        let index = super::shards::ShardIndex::read(&weights)?;
        let mut names: Vec<&String> = index.weight_map.values().collect();
        names.sort();
        names.dedup();
        for name in names {
            fetch(name).map_err(|why| {
                let key = index.weight_map.iter().find(|(_, f)| *f == name).map(|(k, _)| k.as_str());
                Error::weights(place.join(name), key, format!("shard named by {}: {why}", weights.display()))
            })?;
        }
    }
    for t in ["tokenizer.json", "vocab.txt", "tokenizer_config.json"] {
        // Optional: models ship one tokenizer format or the other.
        let _ = fetch(t);
    }
    let tokenizer_dir = config.parent().filter(|d| is_tokenizer_dir(d)).map(Path::to_path_buf);
    Ok(ModelFiles { config, weights, tokenizer_dir })
}
