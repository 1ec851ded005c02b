//! The allow-list and what it lets a pickle describe: the only globals a
//! state dict may name ([`Global`], checked as soon as it is named by
//! [`resolve_global`]), the storage dtypes, and the storage and tensor
//! descriptions ([`StorageRef`], [`TensorSpec`]) that calling those globals
//! records. Plain data, below everything else in the reader: the machine,
//! the arena and the tensor rebuilding all speak these types.
use super::shorten;
use tch::Kind;

/// A storage class's element type: the libtorch kind, its size in bytes, and
/// the class name for messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct DType {
    pub(super) kind: Kind,
    pub(super) size: usize,
    pub(super) class: &'static str,
}

/// The dtype of a `torch.<class>` storage class, if it is one.
pub(super) fn storage_dtype(class: &str) -> Option<DType> {
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

/// A storage (or, in the legacy format, a view of one), in elements.
#[derive(Debug, Clone)]
pub(super) struct StorageRef {
    pub(super) key: String,
    pub(super) dtype: DType,
    pub(super) offset: u64,
    pub(super) numel: u64,
}

/// The arguments of a `_rebuild_tensor` call: a view of a storage, not yet checked.
#[derive(Debug)]
pub(super) struct TensorSpec {
    pub(super) storage: StorageRef,
    pub(super) offset: i64,
    pub(super) size: Vec<i64>,
    pub(super) stride: Vec<i64>,
}

/// The only globals a state dict needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Global {
    OrderedDict,
    RebuildTensorV2,
    RebuildTensor,
    RebuildParameter,
    RebuildParameterWithState,
    Storage(DType),
}

impl Global {
    pub(super) fn python_name(self) -> &'static str {
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

pub(super) fn resolve_global(module: &str, name: &str) -> Option<Global> {
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

pub(super) fn refused_global(module: &str, name: &str) -> String {
    let full = shorten(&format!("{module}.{name}"));
    let mut msg = format!("refused global `{full}`: only torch state-dict types are allowed");
    if module == "__main__" || module.starts_with("torch.nn") {
        msg.push_str(" (this looks like a whole pickled model; save `model.state_dict()` instead)");
    }
    msg
}
