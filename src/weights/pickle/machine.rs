//! The pickle virtual machine: reads opcodes one at a time and keeps the
//! stack, the MARK positions and the memo, building values in a [`Heap`].
//!
//! It never calls anything. Naming a global asks [`resolve_global`] (the
//! allow-list), and REDUCE and BINPERSID are handed to `globals`, which
//! evaluates the few torch functions a state dict uses, in Rust. Its own
//! concept because the opcode semantics (protocols 0 to 5, lengths checked
//! against the bytes present, the stack and MARK depth capped, iteration
//! rather than recursion) are independent of what torch puts in a pickle.
use super::Step;
use super::allowlist::{refused_global, resolve_global};
use super::tensors::Storages;
use super::values::{Dict, DictKey, Heap, Obj, Value};
use std::collections::HashMap;

/// Real state dicts keep a few thousand values on the stack at most (SETITEMS
/// batches of 1000); the cap only stops a hostile pickle from growing it.
const MAX_STACK: usize = 1 << 22;
/// MARK depth equals the nesting depth of tuples/lists/dicts being built.
const MAX_MARKS: usize = 1 << 12;
const MAX_LINE: usize = 4096;

/// A finished pickle: its objects, the value STOP returned, and the offset
/// just past STOP (legacy files put further pickles there).
#[derive(Debug)]
pub(super) struct Unpickled {
    pub(super) heap: Heap,
    pub(super) value: Value,
    pub(super) end: usize,
}

/// A failure inside a pickle, with the offset of the opcode that failed.
#[derive(Debug)]
pub(super) struct PickleError {
    at: usize,
    pub(super) msg: String,
}

impl PickleError {
    pub(super) fn describe(&self, what: &str) -> String {
        format!("{} (at byte {} of {what})", self.msg, self.at)
    }
}

/// The machine's state while it runs one pickle. The fields `globals` needs
/// (the heap, the declared storages and its two caches) are shared with it.
pub(super) struct Machine<'a, 's> {
    data: &'a [u8],
    pos: usize,
    stack: Vec<Value>,
    marks: Vec<usize>,
    memo: HashMap<u32, Value>,
    pub(super) heap: Heap,
    pub(super) storages: &'s mut Storages,
    /// Persistent id object → the storage it loaded.
    pub(super) loaded: HashMap<usize, Value>,
    /// Argument tuple object → the tensor rebuilt from it.
    pub(super) rebuilt: HashMap<usize, Value>,
}

/// Runs the pickle starting at `data[start]` up to its STOP opcode.
pub(super) fn unpickle(data: &[u8], start: usize, storages: &mut Storages) -> std::result::Result<Unpickled, PickleError> {
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

#[cfg(test)]
mod tests {
    use super::super::container::LEGACY_MAGIC;
    use super::super::test_support::{P, err, run};
    use super::*;

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
}
