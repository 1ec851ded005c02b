//! Reading one weights file whole: `.safetensors`, or a PyTorch state dict
//! through the pickle reader (which executes no code). Sharded checkpoints
//! are read shard by shard through [`super::shards`].
use super::pickle::read_torch_state_dict;
use crate::error::{Error, Result};
use std::path::Path;
use tch::{Kind, Tensor};

/// Reads every tensor of a weights file: `.safetensors`, or a PyTorch
/// `.bin`/`.pt`/`.pth` state dict (zip or legacy format, read without
/// executing any pickle code). Tensors come back on the CPU.
///
/// ```no_run
/// let tensors = encoder_bench::weights::read_weights("models/minilm/model.safetensors")?;
/// assert!(!tensors.is_empty());
/// # Ok::<(), encoder_bench::Error>(())
/// ```
pub fn read_weights(path: impl AsRef<Path>) -> Result<Vec<(String, Tensor)>> {
    let path = path.as_ref();
    let mut head = [0u8; 8];
    {
        use std::io::Read;
        let mut f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        let n = f.read(&mut head).map_err(|e| Error::io(path, e))?;
        if n < 8 {
            return Err(Error::weights(path, None, format!("file is {n} bytes long: too short to be a weights file")));
        }
    }
    let is_safetensors = path.extension().is_some_and(|e| e == "safetensors");
    if is_safetensors {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let st = safetensors::SafeTensors::deserialize(&bytes)
            .map_err(|e| Error::weights(path, None, format!("not a valid safetensors file: {e}")))?;
        let mut out = Vec::with_capacity(st.len());
        for (name, view) in st.iter() {
            let kind = match view.dtype() {
                safetensors::Dtype::F32 => Kind::Float,
                safetensors::Dtype::F16 => Kind::Half,
                safetensors::Dtype::BF16 => Kind::BFloat16,
                safetensors::Dtype::F64 => Kind::Double,
                safetensors::Dtype::I64 => Kind::Int64,
                safetensors::Dtype::I32 => Kind::Int,
                safetensors::Dtype::I16 => Kind::Int16,
                safetensors::Dtype::I8 => Kind::Int8,
                safetensors::Dtype::U8 => Kind::Uint8,
                safetensors::Dtype::BOOL => Kind::Bool,
                other => return Err(Error::weights(path, Some(name), format!("unsupported dtype {other:?}"))),
            };
            let shape: Vec<i64> = view.shape().iter().map(|&d| d as i64).collect();
            let t = Tensor::f_from_data_size(view.data(), &shape, kind)
                .map_err(|e| Error::weights(path, Some(name), format!("cannot build tensor: {e}")))?;
            out.push((name.to_string(), t));
        }
        // safetensors iterates in hash order; sort for stable reports.
        out.sort_by(|a, b| a.0.cmp(&b.0));
        return Ok(out);
    }
    read_torch_state_dict(path)
}
