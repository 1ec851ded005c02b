//! A safe reader for PyTorch state-dict files (`.bin`, `.pt`, `.pth`).
//!
//! `torch.save` writes Python pickles, and unpickling them with a general
//! unpickler can run arbitrary code. tch's own loader also fails on the
//! `OrderedDict` that `model.state_dict()` returns and on the legacy format,
//! so we read both formats ourselves:
//!
//! - zip (torch >= 1.6): `<folder>/data.pkl` plus one `<folder>/data/<key>`
//!   record per storage;
//! - legacy (`_use_new_zipfile_serialization=False`): five pickles (magic
//!   number, protocol version, system info, the object, the storage keys)
//!   followed by each storage's element count and raw bytes.
//!
//! The pickle machine here never calls anything: a global is checked against
//! a short allow-list as soon as it is named, and REDUCE/BUILD only evaluate
//! the known torch rebuild functions, in Rust. Against hostile input, every
//! length field is checked against the bytes present before allocating,
//! arithmetic is checked, the machine is iterative (objects live in an arena
//! and refer to each other by index, so nothing recurses, even on drop), its
//! stack is capped, and tensor views are bounds-checked against their storage
//! before libtorch sees them.
//!
//! The parts, one concept each (all private; this file holds the entry
//! points and the two helpers every part shares):
//! - `container`: the two file formats around the pickles (zip records with
//!   their size and CRC checks, the legacy stream of pickles and storages);
//! - `machine`: the pickle opcode machine (stack, marks, memo, opcodes);
//! - `values`: the objects a pickle builds, kept in an arena;
//! - `allowlist`: the only globals a pickle may name, the storage dtypes,
//!   and the storage/tensor descriptions calling them records (plain data);
//! - `globals`: the only calls (REDUCE) and persistent loads a pickle may
//!   make, evaluated in Rust;
//! - `tensors`: finding the state dict's tensors and rebuilding them from
//!   their storages (dtypes, strides, offsets, bounds checks).
use crate::error::{Error, Result};
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use tch::Tensor;

mod allowlist;
mod container;
mod globals;
mod machine;
mod tensors;
#[cfg(test)]
mod test_support;
mod values;

use container::{looks_like_zip, read_legacy, read_zip};

/// Reads a PyTorch state dict (zip format of torch>=1.6, or the legacy pre-1.6 format)
/// into (key, tensor) pairs in file order. Tensors are on the CPU, contiguous, in their stored dtype.
///
/// The top-level object must be a dict (or `OrderedDict`) of name → tensor;
/// non-tensor values are skipped. If it holds no tensors itself but a single
/// `state_dict` or `model` entry that is such a dict, that one is used.
/// Names bound to the same tensor (tied weights) may share memory, as with
/// `torch.load`. No pickle code is executed: any global other than the torch
/// rebuild functions, storage classes and `collections.OrderedDict` is refused.
///
/// ```no_run
/// use encoder_bench::weights::pickle::read_torch_state_dict;
/// let tensors = read_torch_state_dict("pytorch_model.bin".as_ref())?;
/// for (name, t) in &tensors {
///     println!("{name}: {:?} {:?}", t.size(), t.kind());
/// }
/// # Ok::<(), encoder_bench::Error>(())
/// ```
pub fn read_torch_state_dict(path: &Path) -> Result<Vec<(String, Tensor)>> {
    let mut file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
    let mut head = Vec::with_capacity(4);
    (&mut file).take(4).read_to_end(&mut head).map_err(|e| Error::io(path, e))?;
    file.seek(SeekFrom::Start(0)).map_err(|e| Error::io(path, e))?;
    if looks_like_zip(&head) {
        // Storages are read one at a time from the file, so the whole
        // archive is never in memory at once.
        read_zip(path, std::io::BufReader::new(file), len)
    } else {
        let mut bytes = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
        file.read_to_end(&mut bytes).map_err(|e| Error::io(path, e))?;
        read_legacy(path, &bytes)
    }
}

/// Same, from bytes already in memory (`name` is used in messages). Used by fuzzing.
///
/// Never panics on malformed input; every failure is an [`Error::Weights`]
/// naming `name`.
pub fn read_torch_state_dict_bytes(name: &Path, bytes: &[u8]) -> Result<Vec<(String, Tensor)>> {
    if looks_like_zip(bytes) { read_zip(name, std::io::Cursor::new(bytes), bytes.len() as u64) } else { read_legacy(name, bytes) }
}

/// A failure message from one step of reading; the caller adds the file
/// name (and tensor key) when it becomes an [`Error`].
type Step<T> = std::result::Result<T, String>;

/// Keeps names from a hostile file short and printable in messages.
fn shorten(s: &str) -> String {
    let mut out: String = s.chars().take(120).flat_map(char::escape_debug).collect();
    if s.chars().nth(120).is_some() {
        out.push('…');
    }
    out
}
