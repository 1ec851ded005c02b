//! From pickled descriptions to tensors: the storage dtypes, the
//! [`StorageRef`] and [`TensorSpec`] the machine records, finding the state
//! dict's tensors among the unpickled objects, and rebuilding each one from
//! its storage's bytes.
//!
//! Every view (size, stride, offset) is bounds-checked against its storage
//! with checked arithmetic before libtorch sees it, bool storages are checked
//! for bytes other than 0 and 1, a storage is read once and shared by all its
//! tensors, and views that need a copy draw on a budget tied to the input
//! size. Its own concept because it is the only part that touches libtorch;
//! it reads storage bytes through [`StorageSource`], so it does not care
//! which container they came from.
use super::allowlist::{DType, TensorSpec};
use super::values::{Dict, Heap, Obj, Value};
use super::{Step, shorten};
use crate::error::{Error, Result};
use std::borrow::Cow;
use std::collections::HashMap;
use std::path::Path;
use tch::{Device, Kind, Tensor};

/// Views that are not a whole storage are copied; a hostile file could name
/// the same large region many times, so copies are limited to this much plus
/// four times the input size.
const COPY_ALLOWANCE: u64 = 256 << 20;

/// Storage keys declared by persistent ids, with their type and size in elements.
#[derive(Debug, Default)]
pub(super) struct Storages {
    pub(super) by_key: HashMap<String, (DType, u64)>,
}

// ---------------------------------------------------------------------------
// Finding the tensors

/// The (key, tensor object) pairs of the state dict, in file order.
pub(super) fn state_dict_entries(heap: &Heap, root: Value) -> Step<Vec<(String, usize)>> {
    let Some(top) = heap.dict(root) else {
        return Err(format!("expected a dict of tensors at the top level, found {}", heap.type_name(root)));
    };
    let direct = tensor_entries(heap, top)?;
    if !direct.is_empty() || top.entries.is_empty() {
        return Ok(direct);
    }
    let mut nested = Vec::new();
    for name in ["state_dict", "model"] {
        let found = top.entries.iter().find(|(k, _)| heap.str(*k) == Some(name));
        if let Some(d) = found.and_then(|&(_, v)| heap.dict(v)) {
            let entries = tensor_entries(heap, d)?;
            if !entries.is_empty() {
                nested.push((name, entries));
            }
        }
    }
    match nested.len() {
        1 => Ok(nested.pop().map(|(_, e)| e).unwrap_or_default()),
        0 => {
            let keys: Vec<String> =
                top.entries.iter().take(20).map(|&(k, _)| heap.str(k).map_or_else(|| "<non-str>".into(), shorten)).collect();
            Err(format!(
                "no tensors found: the top-level dict has keys [{}] and no `state_dict` or `model` dict of tensors",
                keys.join(", ")
            ))
        }
        _ => Err("ambiguous checkpoint: both `state_dict` and `model` hold tensors".into()),
    }
}

fn tensor_entries(heap: &Heap, dict: &Dict) -> Step<Vec<(String, usize)>> {
    let mut out = Vec::new();
    for &(k, v) in &dict.entries {
        if let Value::Obj(i) = v
            && heap.is_tensor(v)
        {
            let key = heap.str(k).ok_or_else(|| format!("a tensor is stored under {} key; expected str names", heap.type_name(k)))?;
            out.push((key.to_string(), i));
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------------------
// Storages and tensors

/// Where a storage's bytes come from: a zip record or a slice of a legacy file.
pub(super) trait StorageSource<'a> {
    fn read(&mut self, key: &str, nbytes: u64) -> Step<Cow<'a, [u8]>>;
}

/// Builds the tensors of `entries` (from [`state_dict_entries`]), reading
/// each storage once from `source`; failures name the file and the key.
pub(super) fn build_tensors<'a>(
    path: &Path,
    heap: &Heap,
    entries: Vec<(String, usize)>,
    storages: &Storages,
    source: &mut dyn StorageSource<'a>,
    input_len: u64,
) -> Result<Vec<(String, Tensor)>> {
    let mut b = Builder {
        storages,
        source,
        storage_tensors: HashMap::new(),
        copy_budget: COPY_ALLOWANCE.saturating_add(input_len.saturating_mul(4)),
    };
    // The same tensor object under several names (a tied Parameter) is
    // built once.
    let mut built: HashMap<usize, Tensor> = HashMap::new();
    let mut out = Vec::with_capacity(entries.len());
    for (key, idx) in entries {
        if let Some(t) = built.get(&idx) {
            out.push((key, t.shallow_clone()));
            continue;
        }
        let Some(Obj::Tensor(spec)) = heap.objs.get(idx) else {
            return Err(Error::weights(path, Some(&key), "internal: entry is not a tensor"));
        };
        let t = b.tensor(spec).map_err(|m| Error::weights(path, Some(&key), m))?;
        built.insert(idx, t.shallow_clone());
        out.push((key, t));
    }
    Ok(out)
}

struct Builder<'s, 'a> {
    storages: &'s Storages,
    source: &'s mut dyn StorageSource<'a>,
    storage_tensors: HashMap<String, Tensor>,
    copy_budget: u64,
}

fn torch_err(what: &str) -> impl Fn(tch::TchError) -> String + '_ {
    move |e| format!("{what}: {e}")
}

impl Builder<'_, '_> {
    fn tensor(&mut self, spec: &TensorSpec) -> Step<Tensor> {
        let TensorSpec { storage, offset, size, stride } = spec;
        let key = shorten(&storage.key);
        let kind = storage.dtype.kind;
        let &(_, root_numel) = self.storages.by_key.get(&storage.key).ok_or_else(|| format!("storage `{key}` was never declared"))?;
        let offset = u64::try_from(*offset).map_err(|_| format!("negative storage offset {offset}"))?;
        if size.iter().any(|&s| s < 0) || stride.iter().any(|&s| s < 0) {
            return Err(format!("negative size {size:?} or stride {stride:?}"));
        }
        let numel = size.iter().try_fold(1u64, |acc, &s| acc.checked_mul(s as u64)).ok_or_else(|| format!("size {size:?} overflows"))?;
        if numel == 0 {
            return Tensor::f_zeros(size.as_slice(), (kind, Device::Cpu)).map_err(torch_err("cannot create empty tensor"));
        }
        // The last element the view touches must lie inside the storage.
        let last = size
            .iter()
            .zip(stride)
            .try_fold(offset, |acc, (&s, &st)| acc.checked_add((s as u64 - 1).checked_mul(st as u64)?))
            .ok_or_else(|| format!("size {size:?} and stride {stride:?} overflow"))?;
        if last >= storage.numel {
            return Err(format!(
                "tensor of size {size:?}, stride {stride:?} and offset {offset} reaches element {last}, \
                 but storage `{key}` has {} elements",
                storage.numel
            ));
        }
        let start = storage.offset.checked_add(offset).ok_or("storage offset overflows")?;
        let whole = self.storage_tensor(&storage.key, storage.dtype, root_numel)?;
        if start == 0 && numel == root_numel && is_contiguous(size, stride) {
            // The tensor is its whole storage: no copy needed.
            return whole.f_view(size.as_slice()).map_err(torch_err("cannot shape tensor"));
        }
        let nbytes = numel.saturating_mul(storage.dtype.size as u64);
        if nbytes > self.copy_budget {
            return Err(format!("tensor views of this file would need more than {} bytes of copies; refusing", self.copy_budget));
        }
        self.copy_budget -= nbytes;
        let start = i64::try_from(start).map_err(|_| "storage offset overflows")?;
        let view = whole.f_as_strided(size.as_slice(), stride.as_slice(), start).map_err(torch_err("cannot view storage"))?;
        // A fresh tensor, so that a small slice does not keep a large
        // storage alive and the result is always contiguous.
        let mut out = Tensor::f_empty(size.as_slice(), (kind, Device::Cpu)).map_err(torch_err("cannot allocate tensor"))?;
        out.f_copy_(&view).map_err(torch_err("cannot copy tensor"))?;
        Ok(out)
    }

    fn storage_tensor(&mut self, key: &str, dtype: DType, numel: u64) -> Step<Tensor> {
        if let Some(t) = self.storage_tensors.get(key) {
            return Ok(t.shallow_clone());
        }
        let nbytes =
            numel.checked_mul(dtype.size as u64).ok_or_else(|| format!("storage `{}` of {numel} elements overflows", shorten(key)))?;
        let bytes = self.source.read(key, nbytes)?;
        // `from_data_size` trusts the length; never let it read past the buffer.
        if bytes.len() as u64 != nbytes {
            return Err(format!("storage `{}`: read {} bytes, expected {nbytes}", shorten(key), bytes.len()));
        }
        // A bool byte other than 0 or 1 is undefined behaviour in C++.
        if dtype.kind == Kind::Bool && bytes.iter().any(|&b| b > 1) {
            return Err(format!("storage `{}` of bools holds bytes other than 0 and 1", shorten(key)));
        }
        let n = i64::try_from(numel).map_err(|_| "storage too large")?;
        let t = Tensor::f_from_data_size(&bytes, &[n], dtype.kind).map_err(torch_err("cannot create storage"))?;
        self.storage_tensors.insert(key.to_string(), t.shallow_clone());
        Ok(t)
    }
}

/// Whether `stride` is the row-major layout of `size` (dimensions of size
/// 1 may have any stride, e.g. the 0 of an expanded `position_ids`).
fn is_contiguous(size: &[i64], stride: &[i64]) -> bool {
    let mut expected: i64 = 1;
    for (&s, &st) in size.iter().zip(stride).rev() {
        if s != 1 {
            if st != expected {
                return false;
            }
            expected = match expected.checked_mul(s) {
                Some(e) => e,
                None => return false,
            };
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{P, f32_bytes, legacy, read};

    #[test]
    fn reads_legacy_views_and_sharing() {
        let data = f32_bytes(&[0., 1., 2., 3., 4., 5.]);
        let body = P::default()
            .s("w")
            .tensor("FloatStorage", "k0", 6, 0, &[2, 3], &[3, 1])
            .s("t")
            .tensor("FloatStorage", "k0", 6, 0, &[3, 2], &[1, 3])
            .s("tail")
            .tensor("FloatStorage", "k0", 6, 4, &[2], &[1])
            .s("step")
            .op(b"K\x05");
        let out = read(&legacy(body, &[("k0", 6, &data)])).unwrap();
        let names: Vec<_> = out.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["w", "t", "tail"]);
        assert_eq!(Vec::<f32>::try_from(out[0].1.flatten(0, -1)).unwrap(), [0., 1., 2., 3., 4., 5.]);
        assert_eq!(Vec::<f32>::try_from(out[1].1.flatten(0, -1)).unwrap(), [0., 3., 1., 4., 2., 5.]);
        assert!(out[1].1.is_contiguous());
        assert_eq!(Vec::<f32>::try_from(&out[2].1).unwrap(), [4., 5.]);
    }

    #[test]
    fn rejects_out_of_bounds_views() {
        let data = f32_bytes(&[0.; 4]);
        let body = P::default().s("w").tensor("FloatStorage", "k", 4, 1, &[2, 2], &[2, 1]);
        let e = read(&legacy(body, &[("k", 4, &data)])).unwrap_err().to_string();
        assert!(e.contains("key `w`") && e.contains("reaches element 4"), "{e}");
        let body = P::default().s("w").tensor("FloatStorage", "k", 4, 0, &[2], &[-1]);
        let e = read(&legacy(body, &[("k", 4, &data)])).unwrap_err().to_string();
        assert!(e.contains("negative"), "{e}");
        // Overflowing products are errors, not wrap-arounds.
        let body = P::default().s("w").tensor("FloatStorage", "k", 4, 0, &[i32::MAX, i32::MAX, i32::MAX], &[0, 0, 0]);
        let e = read(&legacy(body, &[("k", 4, &data)])).unwrap_err().to_string();
        assert!(e.contains("refusing") || e.contains("overflow"), "{e}");
        // Zero elements need no storage, whatever the other dimensions say.
        let body = P::default().s("w").tensor("FloatStorage", "k", 4, 0, &[0, i32::MAX, i32::MAX], &[1, 1, 1]);
        let r = read(&legacy(body, &[("k", 4, &data)]));
        assert!(r.is_err() || r.unwrap()[0].1.numel() == 0);
    }

    #[test]
    fn picks_nested_state_dict() {
        let inner = P::default().s("w").tensor("LongStorage", "k", 1, 0, &[], &[]);
        let body = P::default().s("epoch").op(b"K\x03").s("state_dict").op(b"}(").op(&inner.0).op(b"u");
        let out = read(&legacy(body, &[("k", 1, &7i64.to_le_bytes())])).unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].0, "w");
        assert_eq!(out[0].1.size(), Vec::<i64>::new());
        assert_eq!(out[0].1.int64_value(&[]), 7);
        let body = P::default().s("epoch").op(b"K\x03");
        let e = read(&legacy(body, &[])).unwrap_err().to_string();
        assert!(e.contains("no tensors found") && e.contains("epoch"), "{e}");
    }
}
