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
use crate::error::{Error, Result};
use std::borrow::Cow;
use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::rc::Rc;
use tch::{Device, Kind, Tensor};

/// `0x1950a86a20f9469cfc6c`, the legacy format's magic number, as pickle's
/// little-endian two's-complement LONG1 payload.
const LEGACY_MAGIC: [u8; 10] = [0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19];
const LEGACY_PROTOCOL_VERSION: i64 = 1001;
const NOT_TORCH: &str = "not a PyTorch file: expected a zip archive or legacy magic number";
/// Real state dicts keep a few thousand values on the stack at most (SETITEMS
/// batches of 1000); the cap only stops a hostile pickle from growing it.
const MAX_STACK: usize = 1 << 22;
/// MARK depth equals the nesting depth of tuples/lists/dicts being built.
const MAX_MARKS: usize = 1 << 12;
const MAX_DIMS: usize = 64;
const MAX_LINE: usize = 4096;
/// torch's storage keys are short numbers; a long one would make every
/// reference to it cost a hash of its length.
const MAX_STORAGE_KEY: usize = 256;
/// Deflate cannot expand data by more than about 1032:1, so a larger claimed
/// size is a lie that must not drive an allocation.
const DEFLATE_MAX_RATIO: u64 = 1032;
/// Views that are not a whole storage are copied; a hostile file could name
/// the same large region many times, so copies are limited to this much plus
/// four times the input size.
const COPY_ALLOWANCE: u64 = 256 << 20;

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
/// use encoder_bench::models::pickle::read_torch_state_dict;
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

fn looks_like_zip(head: &[u8]) -> bool {
    head.starts_with(b"PK\x03\x04") || head.starts_with(b"PK\x05\x06")
}

// ---------------------------------------------------------------------------
// Values

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct DType {
    kind: Kind,
    size: usize,
    class: &'static str,
}

fn storage_dtype(class: &str) -> Option<DType> {
    let (kind, size, class) = match class {
        "FloatStorage" => (Kind::Float, 4, "FloatStorage"),
        "DoubleStorage" => (Kind::Double, 8, "DoubleStorage"),
        "HalfStorage" => (Kind::Half, 2, "HalfStorage"),
        "BFloat16Storage" => (Kind::BFloat16, 2, "BFloat16Storage"),
        "LongStorage" => (Kind::Int64, 8, "LongStorage"),
        "IntStorage" => (Kind::Int, 4, "IntStorage"),
        "ShortStorage" => (Kind::Int16, 2, "ShortStorage"),
        "CharStorage" => (Kind::Int8, 1, "CharStorage"),
        "ByteStorage" => (Kind::Uint8, 1, "ByteStorage"),
        "BoolStorage" => (Kind::Bool, 1, "BoolStorage"),
        // Untyped storages are counted in bytes.
        "UntypedStorage" => (Kind::Uint8, 1, "UntypedStorage"),
        _ => return None,
    };
    Some(DType { kind, size, class })
}

/// The only globals a state dict needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Global {
    OrderedDict,
    RebuildTensorV2,
    RebuildTensor,
    RebuildParameter,
    RebuildParameterWithState,
    Storage(DType),
}

impl Global {
    fn python_name(self) -> &'static str {
        match self {
            Global::OrderedDict => "collections.OrderedDict",
            Global::RebuildTensorV2 => "torch._utils._rebuild_tensor_v2",
            Global::RebuildTensor => "torch._utils._rebuild_tensor",
            Global::RebuildParameter => "torch._utils._rebuild_parameter",
            Global::RebuildParameterWithState => "torch._utils._rebuild_parameter_with_state",
            Global::Storage(d) => d.class,
        }
    }
}

fn resolve_global(module: &str, name: &str) -> Option<Global> {
    Some(match (module, name) {
        ("collections", "OrderedDict") => Global::OrderedDict,
        ("torch._utils", "_rebuild_tensor_v2") => Global::RebuildTensorV2,
        ("torch._utils", "_rebuild_tensor") => Global::RebuildTensor,
        ("torch._utils", "_rebuild_parameter") => Global::RebuildParameter,
        ("torch._utils", "_rebuild_parameter_with_state") => Global::RebuildParameterWithState,
        ("torch", class) => Global::Storage(storage_dtype(class)?),
        ("torch.storage", "UntypedStorage") => Global::Storage(storage_dtype("UntypedStorage")?),
        _ => return None,
    })
}

fn refused_global(module: &str, name: &str) -> String {
    let full = shorten(&format!("{module}.{name}"));
    let mut msg = format!("refused global `{full}`: only torch state-dict types are allowed");
    if module == "__main__" || module.starts_with("torch.nn") {
        msg.push_str(" (this looks like a whole pickled model; save `model.state_dict()` instead)");
    }
    msg
}

/// Keeps names from a hostile file short and printable in messages.
fn shorten(s: &str) -> String {
    let mut out: String = s.chars().take(120).flat_map(char::escape_debug).collect();
    if s.chars().nth(120).is_some() {
        out.push('…');
    }
    out
}

/// A pickle value. Containers live in the [`Heap`] and are referred to by
/// index, which gives them Python's shared-reference semantics (memo, APPEND
/// after PUT) without reference counting, cycles or recursive drops.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Value {
    None,
    Bool(bool),
    Int(i64),
    Float(f64),
    Obj(usize),
}

#[derive(Debug)]
enum Obj {
    /// Interned: equal strings are one object, so dict keys compare by index.
    Str(Rc<str>),
    /// Nothing in a state dict reads bytes, so their content is not kept.
    Bytes,
    /// An integer that does not fit in i64, as minimal little-endian two's complement.
    BigInt(Vec<u8>),
    Tuple(Vec<Value>),
    List(Vec<Value>),
    Dict(Dict),
    Global(Global),
    Storage(StorageRef),
    Tensor(TensorSpec),
}

#[derive(Debug, Default)]
struct Dict {
    entries: Vec<(Value, Value)>,
    index: HashMap<DictKey, usize>,
}

impl Dict {
    fn insert(&mut self, dk: DictKey, k: Value, v: Value) {
        match self.index.get(&dk) {
            // Python keeps the first position of a re-assigned key.
            Some(&i) => self.entries[i].1 = v,
            None => {
                self.index.insert(dk, self.entries.len());
                self.entries.push((k, v));
            }
        }
    }
}

/// Hashable form of a dict key. Strings are interned, so their identity is
/// their value and a key never needs re-hashing; other objects (tuples,
/// bytes, ...) compare by identity, which is all state dicts need.
#[derive(Debug, PartialEq, Eq, Hash)]
enum DictKey {
    None,
    Bool(bool),
    Int(i64),
    Float(u64),
    Identity(usize),
}

impl DictKey {
    fn of(v: Value) -> Self {
        match v {
            Value::None => DictKey::None,
            Value::Bool(b) => DictKey::Bool(b),
            Value::Int(i) => DictKey::Int(i),
            Value::Float(f) => DictKey::Float(f.to_bits()),
            Value::Obj(i) => DictKey::Identity(i),
        }
    }
}

/// A storage (or, in the legacy format, a view of one), in elements.
#[derive(Debug, Clone)]
struct StorageRef {
    key: String,
    dtype: DType,
    offset: u64,
    numel: u64,
}

#[derive(Debug)]
struct TensorSpec {
    storage: StorageRef,
    offset: i64,
    size: Vec<i64>,
    stride: Vec<i64>,
}

#[derive(Debug, Default)]
struct Heap {
    objs: Vec<Obj>,
    strings: HashMap<Rc<str>, usize>,
}

impl Heap {
    fn alloc_str(&mut self, s: &str) -> Value {
        if let Some(&i) = self.strings.get(s) {
            return Value::Obj(i);
        }
        let s: Rc<str> = Rc::from(s);
        self.objs.push(Obj::Str(s.clone()));
        self.strings.insert(s, self.objs.len() - 1);
        Value::Obj(self.objs.len() - 1)
    }

    fn alloc(&mut self, obj: Obj) -> Value {
        self.objs.push(obj);
        Value::Obj(self.objs.len() - 1)
    }

    fn get(&self, v: Value) -> Option<&Obj> {
        match v {
            Value::Obj(i) => self.objs.get(i),
            _ => None,
        }
    }

    fn str(&self, v: Value) -> Option<&str> {
        match self.get(v) {
            Some(Obj::Str(s)) => Some(s),
            _ => None,
        }
    }

    fn dict(&self, v: Value) -> Option<&Dict> {
        match self.get(v) {
            Some(Obj::Dict(d)) => Some(d),
            _ => None,
        }
    }

    fn is_tensor(&self, v: Value) -> bool {
        matches!(self.get(v), Some(Obj::Tensor(_)))
    }

    /// What `v` is, with an article, for messages ("an int", "a dict").
    fn type_name(&self, v: Value) -> &'static str {
        match v {
            Value::None => "None",
            Value::Bool(_) => "a bool",
            Value::Int(_) => "an int",
            Value::Float(_) => "a float",
            Value::Obj(_) => match self.get(v) {
                Some(Obj::Str(_)) => "a str",
                Some(Obj::Bytes) => "a bytes",
                Some(Obj::BigInt(_)) => "an int",
                Some(Obj::Tuple(_)) => "a tuple",
                Some(Obj::List(_)) => "a list",
                Some(Obj::Dict(_)) => "a dict",
                Some(Obj::Global(_)) => "a global",
                Some(Obj::Storage(_)) => "a storage",
                Some(Obj::Tensor(_)) => "a tensor",
                None => "an invalid reference",
            },
        }
    }

    fn seq(&self, v: Value) -> Option<&[Value]> {
        match self.get(v) {
            Some(Obj::Tuple(t)) | Some(Obj::List(t)) => Some(t),
            _ => None,
        }
    }
}

/// Storage keys declared by persistent ids, with their type and size in elements.
#[derive(Debug, Default)]
struct Storages {
    by_key: HashMap<String, (DType, u64)>,
}

// ---------------------------------------------------------------------------
// The pickle machine

/// A finished pickle: its objects, the value STOP returned, and the offset
/// just past STOP (legacy files put further pickles there).
#[derive(Debug)]
struct Unpickled {
    heap: Heap,
    value: Value,
    end: usize,
}

/// A failure inside a pickle, with the offset of the opcode that failed.
#[derive(Debug)]
struct PickleError {
    at: usize,
    msg: String,
}

impl PickleError {
    fn describe(&self, what: &str) -> String {
        format!("{} (at byte {} of {what})", self.msg, self.at)
    }
}

type Step<T> = std::result::Result<T, String>;

struct Machine<'a, 's> {
    data: &'a [u8],
    pos: usize,
    stack: Vec<Value>,
    marks: Vec<usize>,
    memo: HashMap<u32, Value>,
    heap: Heap,
    storages: &'s mut Storages,
    /// Persistent id object → the storage it loaded.
    loaded: HashMap<usize, Value>,
    /// Argument tuple object → the tensor rebuilt from it.
    rebuilt: HashMap<usize, Value>,
}

/// Runs the pickle starting at `data[start]` up to its STOP opcode.
fn unpickle(data: &[u8], start: usize, storages: &mut Storages) -> std::result::Result<Unpickled, PickleError> {
    let mut m = Machine {
        data,
        pos: start,
        stack: Vec::new(),
        marks: Vec::new(),
        memo: HashMap::new(),
        heap: Heap::default(),
        storages,
        loaded: HashMap::new(),
        rebuilt: HashMap::new(),
    };
    loop {
        let at = m.pos;
        let Some(&op) = data.get(at) else {
            return Err(PickleError { at, msg: "truncated: the pickle ends without a STOP opcode".into() });
        };
        m.pos += 1;
        match m.step(op) {
            Ok(None) => {}
            Ok(Some(value)) => {
                return Ok(Unpickled { heap: m.heap, value, end: m.pos });
            }
            Err(msg) => return Err(PickleError { at, msg }),
        }
    }
}

fn op_name(op: u8) -> String {
    if op.is_ascii_graphic() { format!("0x{op:02x} (`{}`)", op as char) } else { format!("0x{op:02x}") }
}

impl<'a> Machine<'a, '_> {
    fn take(&mut self, n: usize, what: &str) -> Step<&'a [u8]> {
        let left = self.data.len().saturating_sub(self.pos);
        if n > left {
            return Err(format!("truncated: {what} needs {n} bytes, {left} present"));
        }
        let s = &self.data[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn take_u64(&mut self, n: u64, what: &str) -> Step<&'a [u8]> {
        let left = self.data.len().saturating_sub(self.pos);
        match usize::try_from(n) {
            Ok(n) => self.take(n, what),
            Err(_) => Err(format!("truncated: {what} needs {n} bytes, {left} present")),
        }
    }

    fn array<const N: usize>(&mut self, what: &str) -> Step<[u8; N]> {
        let s = self.take(N, what)?;
        let mut out = [0u8; N];
        out.copy_from_slice(s);
        Ok(out)
    }

    fn byte(&mut self, what: &str) -> Step<u8> {
        Ok(self.array::<1>(what)?[0])
    }

    fn line(&mut self, what: &str) -> Step<&'a [u8]> {
        let rest = &self.data[self.pos.min(self.data.len())..];
        let window = &rest[..rest.len().min(MAX_LINE + 1)];
        match window.iter().position(|&b| b == b'\n') {
            Some(n) => {
                self.pos += n + 1;
                Ok(&rest[..n])
            }
            None if window.len() > MAX_LINE => Err(format!("{what}: line longer than {MAX_LINE} bytes")),
            None => Err(format!("truncated: {what} has no end of line")),
        }
    }

    fn push(&mut self, v: Value) -> Step<()> {
        if self.stack.len() >= MAX_STACK {
            return Err(format!("pickle stack exceeds {MAX_STACK} entries"));
        }
        self.stack.push(v);
        Ok(())
    }

    fn floor(&self) -> usize {
        self.marks.last().copied().unwrap_or(0)
    }

    fn pop(&mut self) -> Step<Value> {
        if self.stack.len() <= self.floor() {
            return Err("pickle stack underflow".into());
        }
        self.stack.pop().ok_or_else(|| "pickle stack underflow".into())
    }

    fn top(&self) -> Step<Value> {
        if self.stack.len() <= self.floor() {
            return Err("pickle stack underflow".into());
        }
        self.stack.last().copied().ok_or_else(|| "pickle stack underflow".into())
    }

    fn pop_mark(&mut self) -> Step<Vec<Value>> {
        let mark = self.marks.pop().ok_or("opcode needs a MARK, but none is open")?;
        if mark > self.stack.len() {
            return Err("pickle stack underflow".into());
        }
        Ok(self.stack.split_off(mark))
    }

    fn alloc_push(&mut self, obj: Obj) -> Step<()> {
        let v = self.heap.alloc(obj);
        self.push(v)
    }

    fn push_str(&mut self, bytes: &[u8], what: &str) -> Step<()> {
        let s = std::str::from_utf8(bytes).map_err(|_| format!("{what}: invalid UTF-8"))?;
        let v = self.heap.alloc_str(s);
        self.push(v)
    }

    /// Python 2 `str`: text if it decodes, bytes otherwise.
    fn push_py2_str(&mut self, bytes: &[u8]) -> Step<()> {
        match std::str::from_utf8(bytes) {
            Ok(s) => {
                let v = self.heap.alloc_str(s);
                self.push(v)
            }
            Err(_) => self.alloc_push(Obj::Bytes),
        }
    }

    fn memo_put(&mut self, idx: u32) -> Step<()> {
        let v = self.top()?;
        self.memo.insert(idx, v);
        Ok(())
    }

    fn memo_get(&mut self, idx: u32) -> Step<()> {
        let v = *self.memo.get(&idx).ok_or_else(|| format!("memo entry {idx} was never stored"))?;
        self.push(v)
    }

    fn text_index(line: &[u8], what: &str) -> Step<u32> {
        std::str::from_utf8(line).ok().and_then(|s| s.trim().parse().ok()).ok_or_else(|| format!("{what}: bad memo index"))
    }

    /// Executes one opcode; returns the result on STOP.
    fn step(&mut self, op: u8) -> Step<Option<Value>> {
        match op {
            0x80 => {
                let v = self.byte("PROTO")?;
                if v > 5 {
                    return Err(format!("unsupported pickle protocol {v}"));
                }
            }
            // FRAME only announces how many bytes follow.
            0x95 => {
                self.take(8, "FRAME")?;
            }
            b'.' => return Ok(Some(self.pop()?)),
            b'(' => {
                if self.marks.len() >= MAX_MARKS {
                    return Err(format!("more than {MAX_MARKS} nested MARKs"));
                }
                self.marks.push(self.stack.len());
            }
            b'0' => {
                self.pop()?;
            }
            b'1' => {
                self.pop_mark()?;
            }
            b'2' => {
                let v = self.top()?;
                self.push(v)?;
            }
            b'N' => self.push(Value::None)?,
            0x88 => self.push(Value::Bool(true))?,
            0x89 => self.push(Value::Bool(false))?,
            b'J' => {
                let v = i32::from_le_bytes(self.array("BININT")?);
                self.push(Value::Int(v.into()))?;
            }
            b'K' => {
                let v = self.byte("BININT1")?;
                self.push(Value::Int(v.into()))?;
            }
            b'M' => {
                let v = u16::from_le_bytes(self.array("BININT2")?);
                self.push(Value::Int(v.into()))?;
            }
            0x8a => {
                let n = self.byte("LONG1")?;
                let bytes = self.take(n.into(), "LONG1")?;
                self.push_long(bytes)?;
            }
            0x8b => {
                let n = i32::from_le_bytes(self.array("LONG4")?);
                let n = usize::try_from(n).map_err(|_| "LONG4: negative length".to_string())?;
                let bytes = self.take(n, "LONG4")?;
                self.push_long(bytes)?;
            }
            b'I' => {
                let line = self.line("INT")?;
                let v = match line {
                    b"01" => Value::Bool(true),
                    b"00" => Value::Bool(false),
                    _ => Value::Int(parse_text_int(line).ok_or("INT: not a 64-bit integer")?),
                };
                self.push(v)?;
            }
            b'L' => {
                let line = self.line("LONG")?;
                let digits = line.strip_suffix(b"L").unwrap_or(line);
                let v = parse_text_int(digits).ok_or("LONG: not a 64-bit integer")?;
                self.push(Value::Int(v))?;
            }
            b'G' => {
                let v = f64::from_be_bytes(self.array("BINFLOAT")?);
                self.push(Value::Float(v))?;
            }
            b'X' => {
                let n = u32::from_le_bytes(self.array("BINUNICODE")?);
                let s = self.take_u64(n.into(), "BINUNICODE")?;
                self.push_str(s, "BINUNICODE")?;
            }
            0x8c => {
                let n = self.byte("SHORT_BINUNICODE")?;
                let s = self.take(n.into(), "SHORT_BINUNICODE")?;
                self.push_str(s, "SHORT_BINUNICODE")?;
            }
            0x8d => {
                let n = u64::from_le_bytes(self.array("BINUNICODE8")?);
                let s = self.take_u64(n, "BINUNICODE8")?;
                self.push_str(s, "BINUNICODE8")?;
            }
            b'T' => {
                let n = i32::from_le_bytes(self.array("BINSTRING")?);
                let n = usize::try_from(n).map_err(|_| "BINSTRING: negative length".to_string())?;
                let s = self.take(n, "BINSTRING")?;
                self.push_py2_str(s)?;
            }
            b'U' => {
                let n = self.byte("SHORT_BINSTRING")?;
                let s = self.take(n.into(), "SHORT_BINSTRING")?;
                self.push_py2_str(s)?;
            }
            b'B' => {
                let n = u32::from_le_bytes(self.array("BINBYTES")?);
                self.take_u64(n.into(), "BINBYTES")?;
                self.alloc_push(Obj::Bytes)?;
            }
            b'C' => {
                let n = self.byte("SHORT_BINBYTES")?;
                self.take(n.into(), "SHORT_BINBYTES")?;
                self.alloc_push(Obj::Bytes)?;
            }
            0x8e => {
                let n = u64::from_le_bytes(self.array("BINBYTES8")?);
                self.take_u64(n, "BINBYTES8")?;
                self.alloc_push(Obj::Bytes)?;
            }
            b')' => self.alloc_push(Obj::Tuple(Vec::new()))?,
            b't' => {
                let items = self.pop_mark()?;
                self.alloc_push(Obj::Tuple(items))?;
            }
            0x85 => {
                let a = self.pop()?;
                self.alloc_push(Obj::Tuple(vec![a]))?;
            }
            0x86 => {
                let b = self.pop()?;
                let a = self.pop()?;
                self.alloc_push(Obj::Tuple(vec![a, b]))?;
            }
            0x87 => {
                let c = self.pop()?;
                let b = self.pop()?;
                let a = self.pop()?;
                self.alloc_push(Obj::Tuple(vec![a, b, c]))?;
            }
            b']' => self.alloc_push(Obj::List(Vec::new()))?,
            b'l' => {
                let items = self.pop_mark()?;
                self.alloc_push(Obj::List(items))?;
            }
            b'a' => {
                let v = self.pop()?;
                self.extend_list(vec![v])?;
            }
            b'e' => {
                let items = self.pop_mark()?;
                self.extend_list(items)?;
            }
            b'}' => self.alloc_push(Obj::Dict(Dict::default()))?,
            b'd' => {
                let items = self.pop_mark()?;
                let d = self.heap.alloc(Obj::Dict(Dict::default()));
                self.set_items(d, items)?;
                self.push(d)?;
            }
            b's' => {
                let v = self.pop()?;
                let k = self.pop()?;
                let d = self.top()?;
                self.set_items(d, vec![k, v])?;
            }
            b'u' => {
                let items = self.pop_mark()?;
                let d = self.top()?;
                self.set_items(d, items)?;
            }
            b'q' => {
                let i = self.byte("BINPUT")?;
                self.memo_put(i.into())?;
            }
            b'r' => {
                let i = u32::from_le_bytes(self.array("LONG_BINPUT")?);
                self.memo_put(i)?;
            }
            0x94 => {
                let i = u32::try_from(self.memo.len()).map_err(|_| "MEMOIZE: memo is full".to_string())?;
                self.memo_put(i)?;
            }
            b'p' => {
                let line = self.line("PUT")?;
                self.memo_put(Self::text_index(line, "PUT")?)?;
            }
            b'h' => {
                let i = self.byte("BINGET")?;
                self.memo_get(i.into())?;
            }
            b'j' => {
                let i = u32::from_le_bytes(self.array("LONG_BINGET")?);
                self.memo_get(i)?;
            }
            b'g' => {
                let line = self.line("GET")?;
                self.memo_get(Self::text_index(line, "GET")?)?;
            }
            b'c' => {
                let module = String::from_utf8_lossy(self.line("GLOBAL")?);
                let name = String::from_utf8_lossy(self.line("GLOBAL")?);
                let g = resolve_global(&module, &name).ok_or_else(|| refused_global(&module, &name))?;
                self.alloc_push(Obj::Global(g))?;
            }
            0x93 => {
                let name = self.pop()?;
                let module = self.pop()?;
                let (Some(module), Some(name)) = (self.heap.str(module), self.heap.str(name)) else {
                    return Err("STACK_GLOBAL needs two strings".into());
                };
                let g = resolve_global(module, name).ok_or_else(|| refused_global(module, name))?;
                self.alloc_push(Obj::Global(g))?;
            }
            b'R' => {
                let args = self.pop()?;
                let callable = self.pop()?;
                let v = self.reduce(callable, args)?;
                self.push(v)?;
            }
            b'b' => {
                let _state = self.pop()?;
                let target = self.top()?;
                // Attribute state (OrderedDict's `_metadata`) says nothing
                // about the tensors, and applying it would mean calling
                // `__setstate__`, so it is dropped.
                if !matches!(self.heap.get(target), Some(Obj::Dict(_)) | Some(Obj::Tensor(_))) {
                    return Err(format!("BUILD on {} is not supported", self.heap.type_name(target)));
                }
            }
            b'Q' => {
                let pid = self.pop()?;
                let v = self.persistent_load(pid)?;
                self.push(v)?;
            }
            0x81 | 0x92 | b'i' | b'o' => {
                return Err(format!("opcode {} creates arbitrary objects and is not allowed in a state dict", op_name(op)));
            }
            _ => return Err(format!("unsupported pickle opcode {}", op_name(op))),
        }
        Ok(None)
    }

    fn push_long(&mut self, bytes: &[u8]) -> Step<()> {
        match long_value(bytes) {
            Ok(v) => self.push(Value::Int(v)),
            Err(big) => self.alloc_push(Obj::BigInt(big)),
        }
    }

    fn extend_list(&mut self, items: Vec<Value>) -> Step<()> {
        let target = self.top()?;
        let kind = self.heap.type_name(target);
        match target {
            Value::Obj(i) => match self.heap.objs.get_mut(i) {
                Some(Obj::List(list)) => {
                    list.extend(items);
                    Ok(())
                }
                _ => Err(format!("APPEND to {kind}, not a list")),
            },
            _ => Err(format!("APPEND to {kind}, not a list")),
        }
    }

    fn set_items(&mut self, target: Value, items: Vec<Value>) -> Step<()> {
        if !items.len().is_multiple_of(2) {
            return Err("SETITEMS with an odd number of keys and values".into());
        }
        let kind = self.heap.type_name(target);
        let dict = match target {
            Value::Obj(i) => match self.heap.objs.get_mut(i) {
                Some(Obj::Dict(d)) => d,
                _ => return Err(format!("SETITEM on {kind}, not a dict")),
            },
            _ => return Err(format!("SETITEM on {kind}, not a dict")),
        };
        for pair in items.chunks_exact(2) {
            dict.insert(DictKey::of(pair[0]), pair[0], pair[1]);
        }
        Ok(())
    }

    fn int(&self, v: Value, what: &str) -> Step<i64> {
        match v {
            Value::Int(i) => Ok(i),
            _ => Err(format!("{what}: expected an int, found {}", self.heap.type_name(v))),
        }
    }

    fn non_negative(&self, v: Value, what: &str) -> Step<u64> {
        let i = self.int(v, what)?;
        u64::try_from(i).map_err(|_| format!("{what}: negative value {i}"))
    }

    fn int_seq(&self, v: Value, what: &str) -> Step<Vec<i64>> {
        let items = self.heap.seq(v).ok_or_else(|| format!("{what}: expected a tuple, found {}", self.heap.type_name(v)))?;
        if items.len() > MAX_DIMS {
            return Err(format!("{what}: {} dimensions, at most {MAX_DIMS} supported", items.len()));
        }
        items.iter().map(|&x| self.int(x, what)).collect()
    }

    /// REDUCE: only the known constructors, evaluated here.
    fn reduce(&mut self, callable: Value, args_value: Value) -> Step<Value> {
        let Some(Obj::Global(g)) = self.heap.get(callable) else {
            return Err(format!("REDUCE can only call allowed torch functions, not {}", self.heap.type_name(callable)));
        };
        let g = *g;
        let Some(Obj::Tuple(args)) = self.heap.get(args_value) else {
            return Err(format!("REDUCE arguments must be a tuple, found {}", self.heap.type_name(args_value)));
        };
        // Check the arity before copying, so a huge memoized tuple costs nothing.
        let arity_ok = match g {
            Global::OrderedDict => args.is_empty(),
            Global::RebuildTensorV2 => args.len() == 6 || args.len() == 7,
            Global::RebuildTensor => args.len() == 4,
            Global::RebuildParameter => args.len() == 3,
            Global::RebuildParameterWithState => args.len() == 4,
            Global::Storage(d) => return Err(format!("calling `torch.{}` is not allowed", d.class)),
        };
        if !arity_ok {
            // torch pickles an OrderedDict as `OrderedDict()` plus SETITEMS;
            // building one from a (possibly memoized, huge) list would let a
            // few bytes of input allocate without bound.
            return Err(format!("`{}` called with {} arguments, which torch never writes", g.python_name(), args.len()));
        }
        let args = args.clone();
        match g {
            Global::OrderedDict => Ok(self.heap.alloc(Obj::Dict(Dict::default()))),
            Global::RebuildTensorV2 | Global::RebuildTensor => {
                // Same arguments, same tensor: a memoized argument tuple
                // replayed many times must not allocate each time.
                let Value::Obj(key) = args_value else { return Err("internal: arguments are not an object".into()) };
                if let Some(&t) = self.rebuilt.get(&key) {
                    return Ok(t);
                }
                let t = self.rebuild_tensor(&args)?;
                self.rebuilt.insert(key, t);
                Ok(t)
            }
            Global::RebuildParameter | Global::RebuildParameterWithState => match args[0] {
                t if self.heap.is_tensor(t) => Ok(t),
                t => Err(format!("_rebuild_parameter expects a tensor, found {}", self.heap.type_name(t))),
            },
            Global::Storage(_) => Err("internal: storage classes are refused above".into()),
        }
    }

    fn rebuild_tensor(&mut self, args: &[Value]) -> Step<Value> {
        let storage = match self.heap.get(args[0]) {
            Some(Obj::Storage(s)) => s.clone(),
            _ => {
                return Err(format!("_rebuild_tensor: expected a storage, found {}", self.heap.type_name(args[0])));
            }
        };
        let offset = self.int(args[1], "tensor storage offset")?;
        let size = self.int_seq(args[2], "tensor size")?;
        let stride = self.int_seq(args[3], "tensor stride")?;
        if size.len() != stride.len() {
            return Err(format!("tensor size {size:?} and stride {stride:?} differ in length"));
        }
        Ok(self.heap.alloc(Obj::Tensor(TensorSpec { storage, offset, size, stride })))
    }

    /// `('storage', StorageType, key, location, numel[, view_metadata])`.
    fn persistent_load(&mut self, pid: Value) -> Step<Value> {
        const SHAPE: &str = "expected ('storage', type, key, location, size[, view])";
        let Some(Obj::Tuple(items)) = self.heap.get(pid) else {
            return Err(format!("persistent id: {SHAPE}, found {}", self.heap.type_name(pid)));
        };
        if !(items.len() == 5 || items.len() == 6) || self.heap.str(items[0]) != Some("storage") {
            return Err(format!("persistent id: {SHAPE}"));
        }
        // A memoized id loaded again is the same storage (torch caches them
        // too); answering from the cache keeps a few input bytes from
        // allocating a new object each time.
        if let Value::Obj(i) = pid
            && let Some(&v) = self.loaded.get(&i)
        {
            return Ok(v);
        }
        let items = items.clone();
        let Some(Obj::Global(Global::Storage(dtype))) = self.heap.get(items[1]) else {
            return Err(format!("persistent id: the storage type must be a torch storage class, found {}", self.heap.type_name(items[1])));
        };
        let dtype = *dtype;
        let key = match (items[2], self.heap.str(items[2])) {
            (_, Some(s)) if s.len() > MAX_STORAGE_KEY => {
                return Err(format!("persistent id: storage key of {} bytes; torch writes short numbers", s.len()));
            }
            (_, Some(s)) => s.to_string(),
            (Value::Int(i), None) => i.to_string(),
            _ => {
                return Err(format!("persistent id: the storage key must be a str, found {}", self.heap.type_name(items[2])));
            }
        };
        let numel = self.non_negative(items[4], "persistent id: storage size")?;
        match self.storages.by_key.get(&key) {
            Some(&(d, n)) if d != dtype || n != numel => {
                return Err(format!(
                    "storage `{}` is declared twice with different types or sizes ({} of {n}, {} of {numel})",
                    shorten(&key),
                    d.class,
                    dtype.class
                ));
            }
            Some(_) => {}
            None => {
                self.storages.by_key.insert(key.clone(), (dtype, numel));
            }
        }
        // Pre-1.0 files could name a view of a storage: (view_key, offset, size).
        let (offset, view_numel) = match items.get(5) {
            None | Some(Value::None) => (0, numel),
            Some(&view) => match self.heap.seq(view) {
                Some(&[_, off, n]) => {
                    let off = self.non_negative(off, "storage view offset")?;
                    let n = self.non_negative(n, "storage view size")?;
                    if off.checked_add(n).is_none_or(|end| end > numel) {
                        return Err(format!("storage view [{off}, +{n}) exceeds storage `{}` of {numel} elements", shorten(&key)));
                    }
                    (off, n)
                }
                _ => return Err("persistent id: view metadata must be (key, offset, size)".into()),
            },
        };
        let v = self.heap.alloc(Obj::Storage(StorageRef { key, dtype, offset, numel: view_numel }));
        if let Value::Obj(i) = pid {
            self.loaded.insert(i, v);
        }
        Ok(v)
    }
}

/// Decodes a LONG1/LONG4 payload; `Err` carries integers that need more
/// than 64 bits, minimally encoded.
fn long_value(bytes: &[u8]) -> std::result::Result<i64, Vec<u8>> {
    let mut b = bytes;
    while let [.., prev, last] = b {
        let redundant = (*last == 0 && prev & 0x80 == 0) || (*last == 0xff && prev & 0x80 != 0);
        if !redundant {
            break;
        }
        b = &b[..b.len() - 1];
    }
    let Some(&last) = b.last() else { return Ok(0) };
    if b.len() > 8 {
        return Err(b.to_vec());
    }
    let mut buf = if last & 0x80 != 0 { [0xff; 8] } else { [0; 8] };
    buf[..b.len()].copy_from_slice(b);
    Ok(i64::from_le_bytes(buf))
}

fn parse_text_int(line: &[u8]) -> Option<i64> {
    std::str::from_utf8(line).ok()?.trim().parse().ok()
}

// ---------------------------------------------------------------------------
// Finding the tensors

/// The (key, tensor object) pairs of the state dict, in file order.
fn state_dict_entries(heap: &Heap, root: Value) -> Step<Vec<(String, usize)>> {
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
trait StorageSource<'a> {
    fn read(&mut self, key: &str, nbytes: u64) -> Step<Cow<'a, [u8]>>;
}

fn build_tensors<'a>(
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

fn read_zip<R: Read + Seek>(path: &Path, reader: R, input_len: u64) -> Result<Vec<(String, Tensor)>> {
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

fn read_legacy(path: &Path, data: &[u8]) -> Result<Vec<(String, Tensor)>> {
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
    use super::*;

    fn run(bytes: &[u8]) -> std::result::Result<Unpickled, PickleError> {
        unpickle(bytes, 0, &mut Storages::default())
    }

    fn err(bytes: &[u8]) -> String {
        run(bytes).unwrap_err().msg
    }

    /// A tiny pickle writer for hand-made test files.
    #[derive(Default)]
    struct P(Vec<u8>);

    impl P {
        fn op(mut self, b: &[u8]) -> Self {
            self.0.extend_from_slice(b);
            self
        }
        fn s(self, s: &str) -> Self {
            let mut p = self.op(b"X");
            p.0.extend_from_slice(&(s.len() as u32).to_le_bytes());
            p.op(s.as_bytes())
        }
        fn int(self, i: i32) -> Self {
            let p = self.op(b"J");
            p.op(&i.to_le_bytes())
        }
        fn global(self, module: &str, name: &str) -> Self {
            self.op(format!("c{module}\n{name}\n").as_bytes())
        }
        /// `('storage', torch.<class>, key, 'cpu', numel)` as BINPERSID.
        fn storage(self, class: &str, key: &str, numel: i32) -> Self {
            self.op(b"(").s("storage").global("torch", class).s(key).s("cpu").int(numel).op(b"tQ")
        }
        /// `_rebuild_tensor_v2(storage, offset, size, stride, False, OrderedDict())`.
        fn tensor(self, class: &str, key: &str, numel: i32, offset: i32, size: &[i32], stride: &[i32]) -> Self {
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
    fn legacy(body: P, storages: &[(&str, u64, &[u8])]) -> Vec<u8> {
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

    fn f32_bytes(v: &[f32]) -> Vec<u8> {
        v.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    fn read(bytes: &[u8]) -> Result<Vec<(String, Tensor)>> {
        read_torch_state_dict_bytes(Path::new("test.pt"), bytes)
    }

    #[test]
    fn integers() {
        let u = run(
            b"\x80\x02(K\x07M\x01\x01J\xff\xff\xff\xff\x8a\x01\xff\x8a\x00\x8a\x09\xff\xff\xff\xff\xff\xff\xff\xff\x00I01\nI-5\nL12L\nt.",
        )
        .unwrap();
        let Some(Obj::Tuple(items)) = u.heap.get(u.value) else { panic!("not a tuple") };
        let ints = [Value::Int(7), Value::Int(257), Value::Int(-1), Value::Int(-1), Value::Int(0)];
        assert_eq!(&items[..5], &ints);
        assert_eq!(&items[6..], &[Value::Bool(true), Value::Int(-5), Value::Int(12)]);
        // 2^64 - 1 needs 9 bytes: kept as a big integer.
        assert!(matches!(u.heap.get(items[5]), Some(Obj::BigInt(b)) if b.len() == 9));
        assert_eq!(long_value(&[0x00, 0x80]), Ok(-32768));
        assert_eq!(long_value(&[0x00, 0x80, 0x00]), Ok(0x8000));
        assert_eq!(long_value(&[0xff, 0x7f]), Ok(0x7fff));
        assert_eq!(long_value(&[0x00, 0xff]), Ok(-256));
        assert_eq!(long_value(&LEGACY_MAGIC), Err(LEGACY_MAGIC.to_vec()));
    }

    #[test]
    fn memo_shares_containers() {
        // l = []; memo[0] = l; d = {'a': l}; l.append(1) (through the memo); STOP d
        let p = P::default().op(b"\x80\x02]q\x00}").s("a").op(b"h\x00sh\x00K\x01a0.");
        let u = run(&p.0).unwrap();
        let d = u.heap.dict(u.value).unwrap();
        assert_eq!(d.entries.len(), 1);
        assert_eq!(u.heap.seq(d.entries[0].1), Some(&[Value::Int(1)][..]));
    }

    #[test]
    fn setitems_replaces_in_place() {
        let p = P::default().op(b"\x80\x02}(").s("a").op(b"K\x01").s("b").op(b"K\x02").s("a").op(b"K\x03u.");
        let u = run(&p.0).unwrap();
        let d = u.heap.dict(u.value).unwrap();
        let got: Vec<_> = d.entries.iter().map(|&(k, v)| (u.heap.str(k).unwrap().to_string(), v)).collect();
        assert_eq!(got, vec![("a".into(), Value::Int(3)), ("b".into(), Value::Int(2))]);
    }

    #[test]
    fn refuses_foreign_globals() {
        assert!(err(b"\x80\x02cos\nsystem\n.").contains("refused global `os.system`"));
        assert!(err(b"\x80\x02cposix\nsystem\n.").contains("`posix.system`"));
        assert!(err(b"\x80\x02c__builtin__\ngetattr\n.").contains("`__builtin__.getattr`"));
        let stack_global = P::default().op(b"\x80\x04").s("builtins").s("eval").op(b"\x93.");
        assert!(err(&stack_global.0).contains("refused global `builtins.eval`"));
        assert!(err(b"\x80\x02ctorch\nload\n.").contains("`torch.load`"));
        assert!(err(b"\x80\x02c__main__\nNet\n.").contains("state_dict()"));
        // A storage class may be named but not called.
        assert!(err(b"\x80\x02ctorch\nFloatStorage\n)R.").contains("not allowed"));
    }

    #[test]
    fn refuses_object_creation_opcodes() {
        let newobj = b"\x80\x02ccollections\nOrderedDict\n)\x81.";
        assert!(err(newobj).contains("not allowed"));
        assert!(err(b"\x80\x02(i__main__\nX\n.").contains("not allowed"));
        assert!(err(b"\x80\x02K\x01K\x02R.").contains("REDUCE can only call"));
    }

    #[test]
    fn hostile_lengths_and_stack() {
        assert!(err(b"\x80\x04\x8d\xff\xff\xff\xff\xff\xff\xff\x7f").contains("truncated"));
        assert!(err(b"\x80\x02X\xff\xff\xff\xffab").contains("needs 4294967295 bytes, 2 present"));
        assert!(err(b"\x80\x02\x8b\x00\x00\x00\x80").contains("negative"));
        assert!(err(b"\x80\x02T\xff\xff\xff\xff").contains("negative"));
        assert!(err(b"\x80\x02t.").contains("MARK"));
        assert!(err(b"\x80\x02(0").contains("underflow"));
        assert!(err(b"\x80\x02.").contains("underflow"));
        assert!(err(b"\x80\x02h\x05.").contains("memo entry 5"));
        assert!(err(b"\x80\x02N").contains("without a STOP"));
        assert!(err(b"\x80\x02cos\nsys").contains("truncated"));
        assert!(err(b"\x80\x02\xff").contains("unsupported pickle opcode 0xff"));
        assert!(err(&[b'('; MAX_MARKS + 1]).contains("nested MARKs"));
        // Deep nesting costs nothing: no recursion while building or dropping.
        let mut deep = b"\x80\x02".to_vec();
        deep.extend(std::iter::repeat_n(b']', 100_000));
        deep.extend(std::iter::repeat_n(b'a', 99_999));
        deep.push(b'.');
        assert!(run(&deep).is_ok());
        let e = run(b"\x80\x02K\x01K\x02\xfe").unwrap_err();
        assert_eq!(e.at, 6);
    }

    #[test]
    fn replayed_memo_references_do_not_allocate() {
        // A tensor's function and argument tuple are memoized, then replayed
        // 1000 times: every replay must give back the same object.
        let mut p = P::default().op(b"\x80\x02]q\x00").global("torch._utils", "_rebuild_tensor_v2").op(b"q\x01(");
        p = p.storage("FloatStorage", "k", 4).op(b"K\x00(K\x04t(K\x01t\x89}tq\x02Ra");
        for _ in 0..1000 {
            p = p.op(b"h\x01h\x02Ra");
        }
        let u = run(&p.op(b".").0).unwrap();
        let items = u.heap.seq(u.value).unwrap();
        assert_eq!(items.len(), 1001);
        assert!(items.iter().all(|&v| v == items[0] && u.heap.is_tensor(v)));
        assert!(u.heap.objs.len() < 20, "{} objects", u.heap.objs.len());
        // Persistent ids replayed from the memo load the same storage.
        let pid = P::default().op(b"\x80\x02(").s("storage").global("torch", "FloatStorage").s("k").s("cpu").int(4).op(b"tq\x00Q");
        let mut pid = pid;
        for _ in 0..1000 {
            pid = pid.op(b"h\x00Q0");
        }
        let u = unpickle(&pid.op(b".").0, 0, &mut Storages::default()).unwrap();
        assert!(u.heap.objs.len() < 20, "{} objects", u.heap.objs.len());
    }

    #[test]
    fn refuses_shapes_torch_never_writes() {
        // OrderedDict(list) could copy a huge memoized list per REDUCE.
        let p = P::default().op(b"\x80\x02").global("collections", "OrderedDict").op(b"]").s("a").op(b"K\x01\x86a\x85R.");
        assert!(err(&p.0).contains("never writes"));
        let long_key = "9".repeat(MAX_STORAGE_KEY + 1);
        let p = P::default().op(b"\x80\x02").storage("FloatStorage", &long_key, 1).op(b".");
        assert!(err(&p.0).contains("storage key of 257 bytes"));
        let p = P::default().op(b"\x80\x02").storage("FloatStorage", "k", -1).op(b".");
        assert!(err(&p.0).contains("negative"));
        let p = P::default().op(b"\x80\x02(").s("storage").global("collections", "OrderedDict").s("k").s("cpu").int(1).op(b"tQ.");
        assert!(err(&p.0).contains("storage class"));
    }

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

    #[test]
    fn not_torch() {
        let e = read(b"hello world").unwrap_err().to_string();
        assert!(e.contains("test.pt") && e.contains(NOT_TORCH), "{e}");
        let e = read(b"\x80\x02K\x01.").unwrap_err().to_string();
        assert!(e.contains(NOT_TORCH), "{e}");
    }
}
