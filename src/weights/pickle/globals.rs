//! Evaluating the allowed globals: the only things a pickle may do with the
//! globals [`allowlist`](super::allowlist) lets it name.
//!
//! REDUCE
//! ([`Machine::reduce`]) evaluates those functions here, in Rust, with the
//! arities torch writes, and BINPERSID ([`Machine::persistent_load`]) turns
//! a `('storage', ...)` id into a [`StorageRef`]. Its own concept because it
//! is the security policy and torch's side of the format, while `machine`
//! only knows pickle opcodes; both caches (replayed argument tuples and
//! persistent ids) live here so that a few input bytes cannot allocate again
//! and again.
use super::allowlist::{Global, StorageRef, TensorSpec};
use super::machine::Machine;
use super::values::{Dict, Obj, Value};
use super::{Step, shorten};

const MAX_DIMS: usize = 64;
/// torch's storage keys are short numbers; a long one would make every
/// reference to it cost a hash of its length.
const MAX_STORAGE_KEY: usize = 256;

impl Machine<'_, '_> {
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
    pub(super) fn reduce(&mut self, callable: Value, args_value: Value) -> Step<Value> {
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
    pub(super) fn persistent_load(&mut self, pid: Value) -> Step<Value> {
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

#[cfg(test)]
mod tests {
    use super::super::machine::unpickle;
    use super::super::tensors::Storages;
    use super::super::test_support::{P, err, run};
    use super::*;

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
}
