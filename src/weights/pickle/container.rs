//! The two containers `torch.save` writes around its pickles, and where each
//! storage's bytes come from in them:
//!
//! - zip (torch >= 1.6): `<folder>/data.pkl`, an optional `<folder>/byteorder`
//!   and one `<folder>/data/<key>` record per storage. Every record's claimed
//!   size is checked against what the archive can hold before allocating, and
//!   each is read to its end so that its CRC is checked;
//! - legacy: five pickles (magic number, protocol version, system info, the
//!   object, the storage keys) followed by each storage's element count and
//!   raw bytes, each checked against what the pickle declared.
//!
//! Its own concept because it is the only part that knows about file layout:
//! the machine sees a byte slice holding a pickle, and the tensor builder
//! reads storages through [`StorageSource`] without knowing where they live.
use super::machine::unpickle;
use super::tensors::{StorageSource, Storages, build_tensors, state_dict_entries};
use super::values::{Obj, Value};
use super::{Step, shorten};
use crate::error::{Error, Result};
use std::borrow::Cow;
use std::collections::HashMap;
use std::io::{Read, Seek};
use std::path::Path;
use tch::Tensor;

/// `0x1950a86a20f9469cfc6c`, the legacy format's magic number, as pickle's
/// little-endian two's-complement LONG1 payload.
pub(super) const LEGACY_MAGIC: [u8; 10] = [0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19];
const LEGACY_PROTOCOL_VERSION: i64 = 1001;
const NOT_TORCH: &str = "not a PyTorch file: expected a zip archive or legacy magic number";
/// Deflate cannot expand data by more than about 1032:1, so a larger claimed
/// size is a lie that must not drive an allocation.
const DEFLATE_MAX_RATIO: u64 = 1032;

pub(super) fn looks_like_zip(head: &[u8]) -> bool {
    head.starts_with(b"PK\x03\x04") || head.starts_with(b"PK\x05\x06")
}

// ---------------------------------------------------------------------------
// Zip format

struct ZipStorages<R> {
    zip: zip::ZipArchive<R>,
    prefix: String,
    input_len: u64,
}

impl<'a, R: Read + Seek> StorageSource<'a> for ZipStorages<R> {
    fn read(&mut self, key: &str, nbytes: u64) -> Step<Cow<'a, [u8]>> {
        let name = format!("{}data/{key}", self.prefix);
        let size = {
            let entry = self.zip.by_name(&name).map_err(|e| zip_entry_error(&name, e))?;
            entry.size()
        };
        if size < nbytes {
            return Err(format!("truncated: storage `{}` needs {nbytes} bytes, {size} present", shorten(key)));
        }
        let mut bytes = read_zip_entry(&mut self.zip, &name, self.input_len)?;
        bytes.truncate(usize::try_from(nbytes).map_err(|_| "storage too large")?);
        Ok(Cow::Owned(bytes))
    }
}

fn zip_entry_error(name: &str, e: zip::result::ZipError) -> String {
    match e {
        zip::result::ZipError::FileNotFound => {
            format!("the zip archive has no `{}`", shorten(name))
        }
        e => format!("cannot open `{}` in the zip archive: {e}", shorten(name)),
    }
}

/// Reads a whole entry, refusing sizes the archive cannot hold before
/// allocating, and reading to the end so that the CRC is checked.
fn read_zip_entry<R: Read + Seek>(zip: &mut zip::ZipArchive<R>, name: &str, input_len: u64) -> Step<Vec<u8>> {
    let mut entry = zip.by_name(name).map_err(|e| zip_entry_error(name, e))?;
    let size = entry.size();
    let bound = match entry.compression() {
        zip::CompressionMethod::Stored => input_len,
        _ => entry.compressed_size().min(input_len).saturating_mul(DEFLATE_MAX_RATIO).saturating_add(64),
    };
    if size > bound {
        return Err(format!("corrupt zip: `{}` claims {size} bytes, more than the archive can hold", shorten(name)));
    }
    let cap = usize::try_from(size).map_err(|_| format!("`{}` is too large", shorten(name)))?;
    let mut buf = Vec::with_capacity(cap);
    (&mut entry).take(size).read_to_end(&mut buf).map_err(|e| format!("cannot read `{}` from the zip archive: {e}", shorten(name)))?;
    let mut extra = [0u8; 1];
    match entry.read(&mut extra) {
        Ok(0) => {}
        Ok(_) => {
            return Err(format!("corrupt zip: `{}` is longer than its recorded size", shorten(name)));
        }
        Err(e) => {
            return Err(format!("cannot read `{}` from the zip archive: {e}", shorten(name)));
        }
    }
    if buf.len() != cap {
        return Err(format!("truncated: `{}` holds {} of its {size} bytes", shorten(name), buf.len()));
    }
    Ok(buf)
}

pub(super) fn read_zip<R: Read + Seek>(path: &Path, reader: R, input_len: u64) -> Result<Vec<(String, Tensor)>> {
    let err = |msg: String| Error::weights(path, None, msg);
    let mut zip = zip::ZipArchive::new(reader).map_err(|e| err(format!("not a valid zip archive (truncated or corrupt?): {e}")))?;
    // torch puts everything under one folder whose name varies
    // (`archive/`, or the file's stem).
    let pkl_name = zip
        .file_names()
        .find(|n| n.ends_with("/data.pkl") && n.matches('/').count() == 1)
        .map(str::to_string)
        .ok_or_else(|| err("not a PyTorch file: the zip archive has no `<folder>/data.pkl`".into()))?;
    let prefix = pkl_name[..pkl_name.len() - "data.pkl".len()].to_string();
    let byteorder = format!("{prefix}byteorder");
    if zip.index_for_name(&byteorder).is_some() {
        let order = read_zip_entry(&mut zip, &byteorder, input_len).map_err(err)?;
        match order.trim_ascii() {
            b"little" => {}
            b"big" => {
                return Err(err("big-endian files are not supported (byteorder is `big`)".into()));
            }
            other => {
                return Err(err(format!("unknown byteorder `{}`", shorten(&String::from_utf8_lossy(other)))));
            }
        }
    }
    let pkl = read_zip_entry(&mut zip, &pkl_name, input_len).map_err(err)?;
    let mut storages = Storages::default();
    let main = unpickle(&pkl, 0, &mut storages).map_err(|e| err(e.describe(&pkl_name)))?;
    let entries = state_dict_entries(&main.heap, main.value).map_err(err)?;
    let mut source = ZipStorages { zip, prefix, input_len };
    build_tensors(path, &main.heap, entries, &storages, &mut source, input_len)
}

// ---------------------------------------------------------------------------
// Legacy format

struct LegacyStorages<'a> {
    data: &'a [u8],
    spans: HashMap<String, (usize, usize)>,
}

impl<'a> StorageSource<'a> for LegacyStorages<'a> {
    fn read(&mut self, key: &str, nbytes: u64) -> Step<Cow<'a, [u8]>> {
        let &(start, len) = self.spans.get(key).ok_or_else(|| format!("storage `{}` is missing from the file", shorten(key)))?;
        if len as u64 != nbytes {
            return Err(format!("storage `{}` holds {len} bytes, expected {nbytes}", shorten(key)));
        }
        let data = self.data;
        data.get(start..start.saturating_add(len)).map(Cow::Borrowed).ok_or_else(|| "storage out of range".into())
    }
}

pub(super) fn read_legacy(path: &Path, data: &[u8]) -> Result<Vec<(String, Tensor)>> {
    let err = |msg: String| Error::weights(path, None, msg);
    if data.first() != Some(&0x80) {
        return Err(err(NOT_TORCH.into()));
    }
    let mut scratch = Storages::default();
    let magic = unpickle(data, 0, &mut scratch).map_err(|e| err(e.describe("the first pickle")))?;
    if !matches!(magic.heap.get(magic.value), Some(Obj::BigInt(b)) if b[..] == LEGACY_MAGIC) {
        return Err(err(NOT_TORCH.into()));
    }
    let proto = unpickle(data, magic.end, &mut scratch).map_err(|e| err(e.describe("the protocol-version pickle")))?;
    match proto.value {
        Value::Int(LEGACY_PROTOCOL_VERSION) => {}
        Value::Int(v) => {
            return Err(err(format!("unsupported legacy protocol version {v} (expected 1001)")));
        }
        v => {
            return Err(err(format!("legacy header: expected a protocol version, found {}", proto.heap.type_name(v))));
        }
    }
    let sys = unpickle(data, proto.end, &mut scratch).map_err(|e| err(e.describe("the sys_info pickle")))?;
    if let Some(info) = sys.heap.dict(sys.value) {
        let little = info.entries.iter().find(|(k, _)| sys.heap.str(*k) == Some("little_endian"));
        if let Some(&(_, Value::Bool(false))) = little {
            return Err(err("big-endian files are not supported (little_endian is False)".into()));
        }
    }
    let mut storages = Storages::default();
    let main = unpickle(data, sys.end, &mut storages).map_err(|e| err(e.describe("the main pickle")))?;
    let entries = state_dict_entries(&main.heap, main.value).map_err(err)?;
    let keys = unpickle(data, main.end, &mut scratch).map_err(|e| err(e.describe("the storage-key pickle")))?;
    let key_list = keys
        .heap
        .seq(keys.value)
        .ok_or_else(|| err(format!("expected the list of storage keys, found {}", keys.heap.type_name(keys.value))))?;

    let mut spans = HashMap::new();
    let mut pos = keys.end;
    for &k in key_list {
        let key = match (k, keys.heap.str(k)) {
            (_, Some(s)) => s.to_string(),
            (Value::Int(i), None) => i.to_string(),
            _ => {
                return Err(err(format!("storage key list holds {}", keys.heap.type_name(k))));
            }
        };
        let shown = shorten(&key);
        let &(dtype, numel) =
            storages.by_key.get(&key).ok_or_else(|| err(format!("storage `{shown}` in the key list was never declared by a tensor")))?;
        let left = data.len().saturating_sub(pos);
        let Some(count) = data.get(pos..pos.saturating_add(8)).and_then(|b| b.try_into().ok()).map(u64::from_le_bytes) else {
            return Err(err(format!("truncated: storage `{shown}` needs an 8-byte size, {left} bytes present")));
        };
        let left = left - 8;
        let nbytes = count.checked_mul(dtype.size as u64);
        let Some(nbytes) = nbytes.filter(|&n| n <= left as u64) else {
            return Err(err(format!(
                "truncated: storage `{shown}` needs {} bytes ({count} elements of {} bytes), {left} present",
                nbytes.map_or_else(|| "more than 2^64".to_string(), |n| n.to_string()),
                dtype.size
            )));
        };
        if count != numel {
            return Err(err(format!("storage `{shown}` holds {count} elements, but the pickle declares {numel}")));
        }
        let start = pos + 8;
        let len = nbytes as usize;
        if spans.insert(key, (start, len)).is_some() {
            return Err(err(format!("storage `{shown}` is listed twice")));
        }
        pos = start + len;
    }
    let mut source = LegacyStorages { data, spans };
    build_tensors(path, &main.heap, entries, &storages, &mut source, data.len() as u64)
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{P, f32_bytes, legacy, read};
    use super::*;

    #[test]
    fn rejects_bad_storages() {
        let body = P::default().s("m").tensor("BoolStorage", "b", 2, 0, &[2], &[1]);
        let e = read(&legacy(body, &[("b", 2, &[1, 7])])).unwrap_err().to_string();
        assert!(e.contains("other than 0 and 1"), "{e}");
        let body = P::default().s("w").tensor("FloatStorage", "k", 4, 0, &[4], &[1]);
        let e = read(&legacy(body, &[("k", 3, &f32_bytes(&[0.; 3]))])).unwrap_err().to_string();
        assert!(e.contains("holds 3 elements"), "{e}");
        let body = P::default().s("w").tensor("FloatStorage", "k", 4, 0, &[4], &[1]);
        let e = read(&legacy(body, &[("k", 4, &f32_bytes(&[0.; 2]))])).unwrap_err().to_string();
        assert!(e.contains("truncated: storage `k` needs 16 bytes"), "{e}");
        let body = P::default().s("a").tensor("FloatStorage", "k", 4, 0, &[4], &[1]).s("b").tensor("IntStorage", "k", 4, 0, &[4], &[1]);
        let e = read(&legacy(body, &[("k", 4, &f32_bytes(&[0.; 4]))])).unwrap_err().to_string();
        assert!(e.contains("declared twice"), "{e}");
    }

    #[test]
    fn not_torch() {
        let e = read(b"hello world").unwrap_err().to_string();
        assert!(e.contains("test.pt") && e.contains(NOT_TORCH), "{e}");
        let e = read(b"\x80\x02K\x01.").unwrap_err().to_string();
        assert!(e.contains(NOT_TORCH), "{e}");
    }
}
