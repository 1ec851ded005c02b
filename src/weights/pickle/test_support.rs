//! Helpers shared by the unit tests of every part: a tiny pickle writer for
//! hand-made inputs, a legacy-file builder around it, and shorthands for
//! running the machine or the whole reader. Test-only, kept apart so that
//! each part's tests can use them without one part's tests depending on
//! another's.
use super::container::LEGACY_MAGIC;
use super::machine::{PickleError, Unpickled, unpickle};
use super::read_torch_state_dict_bytes;
use super::tensors::Storages;
use crate::error::Result;
use std::path::Path;
use tch::Tensor;

pub(super) fn run(bytes: &[u8]) -> std::result::Result<Unpickled, PickleError> {
    unpickle(bytes, 0, &mut Storages::default())
}

pub(super) fn err(bytes: &[u8]) -> String {
    run(bytes).unwrap_err().msg
}

/// A tiny pickle writer for hand-made test files.
#[derive(Default)]
pub(super) struct P(pub(super) Vec<u8>);

impl P {
    pub(super) fn op(mut self, b: &[u8]) -> Self {
        self.0.extend_from_slice(b);
        self
    }
    pub(super) fn s(self, s: &str) -> Self {
        let mut p = self.op(b"X");
        p.0.extend_from_slice(&(s.len() as u32).to_le_bytes());
        p.op(s.as_bytes())
    }
    pub(super) fn int(self, i: i32) -> Self {
        let p = self.op(b"J");
        p.op(&i.to_le_bytes())
    }
    pub(super) fn global(self, module: &str, name: &str) -> Self {
        self.op(format!("c{module}\n{name}\n").as_bytes())
    }
    /// `('storage', torch.<class>, key, 'cpu', numel)` as BINPERSID.
    pub(super) fn storage(self, class: &str, key: &str, numel: i32) -> Self {
        self.op(b"(").s("storage").global("torch", class).s(key).s("cpu").int(numel).op(b"tQ")
    }
    /// `_rebuild_tensor_v2(storage, offset, size, stride, False, OrderedDict())`.
    pub(super) fn tensor(self, class: &str, key: &str, numel: i32, offset: i32, size: &[i32], stride: &[i32]) -> Self {
        let mut p = self.global("torch._utils", "_rebuild_tensor_v2").op(b"(").storage(class, key, numel).int(offset);
        p = p.op(b"(");
        for &s in size {
            p = p.int(s);
        }
        p = p.op(b"t(");
        for &s in stride {
            p = p.int(s);
        }
        p.op(b"t\x89").global("collections", "OrderedDict").op(b")R").op(b"tR")
    }
}

/// A legacy file holding `OrderedDict(body)`, with `data` per storage key.
pub(super) fn legacy(body: P, storages: &[(&str, u64, &[u8])]) -> Vec<u8> {
    let mut out = vec![0x80, 2, 0x8a, 10];
    out.extend_from_slice(&LEGACY_MAGIC);
    out.extend_from_slice(b".\x80\x02M\xe9\x03.");
    out.extend_from_slice(&P::default().op(b"\x80\x02}").s("little_endian").op(b"\x88s.").0);
    let main = P::default().op(b"\x80\x02").global("collections", "OrderedDict").op(b")R(");
    out.extend_from_slice(&main.op(&body.0).op(b"u.").0);
    let mut keys = P::default().op(b"\x80\x02](");
    for (k, _, _) in storages {
        keys = keys.s(k);
    }
    out.extend_from_slice(&keys.op(b"e.").0);
    for (_, count, bytes) in storages {
        out.extend_from_slice(&count.to_le_bytes());
        out.extend_from_slice(bytes);
    }
    out
}

pub(super) fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

pub(super) fn read(bytes: &[u8]) -> Result<Vec<(String, Tensor)>> {
    read_torch_state_dict_bytes(Path::new("test.pt"), bytes)
}
