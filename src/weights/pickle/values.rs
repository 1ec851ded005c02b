//! The objects a pickle builds. Scalars are [`Value`]s held inline;
//! everything else lives in one arena, the [`Heap`], and is referred to by
//! index.
//!
//! The arena gives Python's shared-reference semantics (memo, APPEND after
//! PUT) without reference counting, and since nothing owns anything, deep
//! nesting never recurses, not even on drop. Strings are interned so that
//! dict keys compare by index. Its own concept because the machine, the
//! allow-list and the tensor finder all read these objects, and none of them
//! should depend on how the others use them.
use super::allowlist::{Global, StorageRef, TensorSpec};
use std::collections::HashMap;
use std::rc::Rc;

/// A pickle value. Containers live in the [`Heap`] and are referred to by
/// index, which gives them Python's shared-reference semantics (memo, APPEND
/// after PUT) without reference counting, cycles or recursive drops.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Value {
    None,
    Bool(bool),
    Int(i64),
    Float(f64),
    Obj(usize),
}

#[derive(Debug)]
pub(super) enum Obj {
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
pub(super) struct Dict {
    pub(super) entries: Vec<(Value, Value)>,
    index: HashMap<DictKey, usize>,
}

impl Dict {
    pub(super) fn insert(&mut self, dk: DictKey, k: Value, v: Value) {
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
pub(super) enum DictKey {
    None,
    Bool(bool),
    Int(i64),
    Float(u64),
    Identity(usize),
}

impl DictKey {
    pub(super) fn of(v: Value) -> Self {
        match v {
            Value::None => DictKey::None,
            Value::Bool(b) => DictKey::Bool(b),
            Value::Int(i) => DictKey::Int(i),
            Value::Float(f) => DictKey::Float(f.to_bits()),
            Value::Obj(i) => DictKey::Identity(i),
        }
    }
}

#[derive(Debug, Default)]
pub(super) struct Heap {
    pub(super) objs: Vec<Obj>,
    strings: HashMap<Rc<str>, usize>,
}

impl Heap {
    pub(super) fn alloc_str(&mut self, s: &str) -> Value {
        if let Some(&i) = self.strings.get(s) {
            return Value::Obj(i);
        }
        let s: Rc<str> = Rc::from(s);
        self.objs.push(Obj::Str(s.clone()));
        self.strings.insert(s, self.objs.len() - 1);
        Value::Obj(self.objs.len() - 1)
    }

    pub(super) fn alloc(&mut self, obj: Obj) -> Value {
        self.objs.push(obj);
        Value::Obj(self.objs.len() - 1)
    }

    pub(super) fn get(&self, v: Value) -> Option<&Obj> {
        match v {
            Value::Obj(i) => self.objs.get(i),
            _ => None,
        }
    }

    pub(super) fn str(&self, v: Value) -> Option<&str> {
        match self.get(v) {
            Some(Obj::Str(s)) => Some(s),
            _ => None,
        }
    }

    pub(super) fn dict(&self, v: Value) -> Option<&Dict> {
        match self.get(v) {
            Some(Obj::Dict(d)) => Some(d),
            _ => None,
        }
    }

    pub(super) fn is_tensor(&self, v: Value) -> bool {
        matches!(self.get(v), Some(Obj::Tensor(_)))
    }

    /// What `v` is, with an article, for messages ("an int", "a dict").
    pub(super) fn type_name(&self, v: Value) -> &'static str {
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

    pub(super) fn seq(&self, v: Value) -> Option<&[Value]> {
        match self.get(v) {
            Some(Obj::Tuple(t)) | Some(Obj::List(t)) => Some(t),
            _ => None,
        }
    }
}
