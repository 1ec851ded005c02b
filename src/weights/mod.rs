//! Weight I/O, beside the networks that use it: reading state dicts
//! (safetensors, PyTorch `.bin` through a pickle reader that executes no
//! code), mapping their keys onto a var store with a report of what loaded,
//! resolving where a model's files are (a directory, a state dict plus
//! config, a hub id; single or sharded weights), which family they are, and writing a model directory ([`save_pretrained`]).
//!
//! ```no_run
//! let weights = encoder_bench::weights::read_weights("models/minilm/model.safetensors")?;
//! println!("{} tensors", weights.len());
//! # Ok::<(), encoder_bench::Error>(())
//! ```
pub mod checkpoint;
pub mod family;
pub mod pickle;
pub mod read;
pub mod save;
pub mod shards;
pub mod source;

pub use checkpoint::{KeyMap, LoadReport, load_into, load_set_into};
pub use family::{FamilySource, ModelFamily, infer_family};
pub use read::read_weights;
pub use save::{save_pretrained, save_pretrained_vars};
pub use shards::{ShardIndex, WeightSet};
pub use source::{ModelFiles, ModelSource};
