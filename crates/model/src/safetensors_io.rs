//! Reading a safetensors file (memory-mapped) into tensors: shared by loading and LoRA
//! adapters.

use std::path::Path;

use candle_core::{DType, Device, Tensor};

use crate::error::{brief, Error, Result};

/// The tensors of the safetensors file `path`, converted to `dtype` on `device`.
pub(crate) fn read(path: &Path, dtype: DType, device: &Device) -> Result<Vec<(String, Tensor)>> {
    let io = |source| Error::from(fsutil::at(path)(source));
    let bad = |msg: String| Error::BadFile {
        path: path.to_path_buf(),
        msg,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    // SAFETY: read-only map; the file is not expected to change while it is read.
    let mmap = unsafe { memmap2::Mmap::map(&file) }.map_err(io)?;
    let st = safetensors::SafeTensors::deserialize(&mmap)
        .map_err(|e| bad(format!("not a valid safetensors file: {e}")))?;
    let mut out = Vec::with_capacity(st.len());
    for (name, view) in st.tensors() {
        let t = candle_core::safetensors::Load::load(&view, &Device::Cpu)
            .map_err(|e| bad(format!("tensor {name}: {}", brief(&e))))?;
        let t = t
            .to_dtype(dtype)
            .and_then(|t| t.to_device(device))
            .map_err(|e| bad(format!("tensor {name}: {}", brief(&e))))?;
        out.push((name, t));
    }
    Ok(out)
}
