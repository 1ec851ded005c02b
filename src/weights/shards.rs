//! Sharded checkpoints: `model.safetensors.index.json` or
//! `pytorch_model.bin.index.json` (a `weight_map` from key to shard file, as
//! `save_pretrained(max_shard_size=...)` writes) beside
//! `model-00001-of-0000N.*` shards, read one shard at a time.
//!
//! The index is checked against the files: every shard it names must exist
//! (checked before anything is read), may only name files beside the index,
//! and must hold every key the index assigns to it.
use super::read::read_weights;
use crate::error::{Error, Result};
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use tch::Tensor;

/// A parsed shard index.
///
/// ```no_run
/// use encoder_bench::weights::ShardIndex;
/// let index = ShardIndex::read("my-model/model.safetensors.index.json")?;
/// index.check_files()?;
/// for shard in index.shard_files() {
///     let tensors = index.read_shard(&shard)?;
///     println!("{}: {} tensors", shard.display(), tensors.len());
/// }
/// # Ok::<(), encoder_bench::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardIndex {
    /// The index file.
    pub path: PathBuf,
    /// Key → shard file name (relative to the index's directory).
    pub weight_map: BTreeMap<String, String>,
}

/// Whether `path` names a shard index (`*.index.json`).
///
/// ```
/// assert!(encoder_bench::weights::shards::is_index("m/model.safetensors.index.json"));
/// assert!(!encoder_bench::weights::shards::is_index("m/model.safetensors"));
/// ```
pub fn is_index(path: impl AsRef<Path>) -> bool {
    path.as_ref().file_name().and_then(|n| n.to_str()).is_some_and(|n| n.ends_with(".index.json"))
}

impl ShardIndex {
    /// Reads an index file; its `weight_map` must map keys to plain file names.
    pub fn read(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let v: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| Error::weights(path, None, format!("not a valid shard index (expected JSON with a `weight_map`): {e}")))?;
        let map = v.get("weight_map").and_then(|m| m.as_object()).ok_or_else(|| {
            Error::weights(path, Some("weight_map"), "missing or not an object: expected {\"tensor key\": \"shard file\", ...}")
        })?;
        if map.is_empty() {
            return Err(Error::weights(path, Some("weight_map"), "empty: the index names no tensors"));
        }
        let mut weight_map = BTreeMap::new();
        for (key, file) in map {
            let file = file.as_str().ok_or_else(|| Error::weights(path, Some(key), format!("shard name {file} is not a string")))?;
            let plain = Path::new(file).file_name().is_some_and(|n| n == std::ffi::OsStr::new(file));
            if !plain {
                return Err(Error::weights(
                    path,
                    Some(key),
                    format!("shard `{file}` is not a plain file name: shards must lie beside the index"),
                ));
            }
            weight_map.insert(key.clone(), file.to_string());
        }
        Ok(ShardIndex { path: path.to_path_buf(), weight_map })
    }

    /// The directory holding the index and its shards.
    pub fn dir(&self) -> &Path {
        self.path.parent().unwrap_or(Path::new("."))
    }

    /// The shard files, each once, in name order.
    pub fn shard_files(&self) -> Vec<PathBuf> {
        let mut names: Vec<&String> = self.weight_map.values().collect();
        names.sort();
        names.dedup();
        names.into_iter().map(|n| self.dir().join(n)).collect()
    }

    /// Every key the index lists.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.weight_map.keys().map(String::as_str)
    }

    /// Fails, naming the shard and a key assigned to it, when a shard file is absent.
    pub fn check_files(&self) -> Result<()> {
        for (key, file) in &self.weight_map {
            let p = self.dir().join(file);
            if !p.is_file() {
                return Err(Error::weights(&p, Some(key), format!("shard file not found: {} assigns this key to it", self.path.display())));
            }
        }
        Ok(())
    }

    /// Reads one shard, checking that it holds every key the index assigns to it.
    pub fn read_shard(&self, shard: &Path) -> Result<Vec<(String, Tensor)>> {
        let tensors = read_weights(shard)?;
        let name = shard.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        let have: HashSet<&str> = tensors.iter().map(|(k, _)| k.as_str()).collect();
        if let Some((key, _)) = self.weight_map.iter().find(|(k, f)| f.as_str() == name && !have.contains(k.as_str())) {
            return Err(Error::weights(
                shard,
                Some(key),
                format!("missing from this shard: {} says the shard holds it", self.path.display()),
            ));
        }
        Ok(tensors)
    }
}

/// The tensors of a checkpoint: one file read whole, or a shard index whose
/// shards are read one at a time by [`WeightSet::for_each_shard`].
///
/// ```no_run
/// use encoder_bench::weights::WeightSet;
/// let set = WeightSet::open("my-model/pytorch_model.bin.index.json")?;
/// println!("{} keys", set.keys().len());
/// set.for_each_shard(|file, tensors| {
///     println!("{}: {}", file.display(), tensors.len());
///     Ok(())
/// })?;
/// # Ok::<(), encoder_bench::Error>(())
/// ```
#[derive(Debug)]
pub enum WeightSet {
    /// A single weights file, already read.
    Single { path: PathBuf, tensors: Vec<(String, Tensor)> },
    /// A checked shard index; shards are read on demand.
    Sharded(ShardIndex),
}

impl WeightSet {
    /// A `*.index.json` opens as sharded (index parsed, shard files checked);
    /// any other path is read whole with [`read_weights`].
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        if is_index(path) {
            let index = ShardIndex::read(path)?;
            index.check_files()?;
            Ok(WeightSet::Sharded(index))
        } else {
            Ok(WeightSet::Single { path: path.to_path_buf(), tensors: read_weights(path)? })
        }
    }

    /// The weights file, or the index of a sharded checkpoint.
    pub fn path(&self) -> &Path {
        match self {
            WeightSet::Single { path, .. } => path,
            WeightSet::Sharded(index) => &index.path,
        }
    }

    /// Every tensor key (from the index when sharded, so no shard is read).
    pub fn keys(&self) -> Vec<String> {
        match self {
            WeightSet::Single { tensors, .. } => tensors.iter().map(|(k, _)| k.clone()).collect(),
            WeightSet::Sharded(index) => index.keys().map(str::to_string).collect(),
        }
    }

    /// Calls `f` with each file and its tensors in turn; each shard is
    /// dropped before the next is read.
    pub fn for_each_shard(self, mut f: impl FnMut(&Path, Vec<(String, Tensor)>) -> Result<()>) -> Result<()> {
        match self {
            WeightSet::Single { path, tensors } => f(&path, tensors),
            WeightSet::Sharded(index) => {
                for shard in index.shard_files() {
                    let tensors = index.read_shard(&shard)?;
                    f(&shard, tensors)?;
                }
                Ok(())
            }
        }
    }

    /// Every tensor at once, keys sorted (for callers that need them all,
    /// such as a tied-weights check); prefer [`WeightSet::for_each_shard`].
    pub fn into_tensors(self) -> Result<Vec<(String, Tensor)>> {
        let mut all = Vec::new();
        self.for_each_shard(|_, mut t| {
            all.append(&mut t);
            Ok(())
        })?;
        all.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(all)
    }
}
