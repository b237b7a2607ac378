//! Where a model runs: `cpu` (the packed AVX kernels), `cpu-generic` (candle ops on the CPU,
//! the very code path a GPU runs), `cuda[:N]`, or `auto` (CUDA when built with it and a GPU
//! is present, else `cpu`).
//!
//! The binary picks one device per process with [`DeviceSpec::activate`]; it becomes the
//! default of [`crate::LoadOptions`] and decides whether models built afterwards on the CPU
//! use the packed kernels ([`packed_kernels_default`]). Libraries and tests pass a
//! [`candle_core::Device`] explicitly and switch the kernels per model with
//! [`crate::Model::set_packed_kernels`].

use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use candle_core::{DType, Device};

use crate::error::{Error, Result};

/// A device as named on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeviceSpec {
    /// CUDA device 0 when compiled in and present, else [`DeviceSpec::Cpu`].
    #[default]
    Auto,
    /// The CPU with the packed inference kernels.
    Cpu,
    /// The CPU with candle ops only (the GPU's code path).
    CpuGeneric,
    /// CUDA device N.
    Cuda(usize),
}

impl FromStr for DeviceSpec {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let s = s.trim();
        match s {
            "auto" => Ok(DeviceSpec::Auto),
            "cpu" => Ok(DeviceSpec::Cpu),
            "cpu-generic" => Ok(DeviceSpec::CpuGeneric),
            "cuda" | "gpu" => Ok(DeviceSpec::Cuda(0)),
            _ => match s.strip_prefix("cuda:") {
                Some(n) => n.parse().map(DeviceSpec::Cuda).map_err(|_| {
                    Error::Invalid(format!("device {s:?}: `cuda:N` needs a device number N"))
                }),
                None => Err(Error::Invalid(format!(
                    "unknown device {s:?} (expected cpu, cpu-generic, cuda, cuda:N or auto)"
                ))),
            },
        }
    }
}

impl fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceSpec::Auto => write!(f, "auto"),
            DeviceSpec::Cpu => write!(f, "cpu"),
            DeviceSpec::CpuGeneric => write!(f, "cpu-generic"),
            DeviceSpec::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

/// Whether this build has candle's CUDA backend (`--features cuda`).
pub fn cuda_compiled() -> bool {
    candle_core::utils::cuda_is_available()
}

impl DeviceSpec {
    /// `Auto` resolved: `cuda:0` when compiled in and a GPU answers, else `cpu`. Other
    /// values are returned unchanged.
    pub fn resolve(self) -> DeviceSpec {
        match self {
            DeviceSpec::Auto if cuda_compiled() && Device::new_cuda(0).is_ok() => {
                DeviceSpec::Cuda(0)
            }
            DeviceSpec::Auto => DeviceSpec::Cpu,
            s => s,
        }
    }

    /// The candle device (`Auto` resolved). Asking for CUDA in a build without it, or
    /// without a usable GPU, is an error that says which.
    pub fn device(self) -> Result<Device> {
        match self.resolve() {
            DeviceSpec::Cuda(n) => {
                if !cuda_compiled() {
                    return Err(Error::Invalid(format!(
                        "device cuda:{n} requested, but this rzero was built without CUDA \
                         (build it with `bash scripts/build-cuda.sh`, i.e. --features cuda)"
                    )));
                }
                Device::new_cuda(n).map_err(|e| {
                    Error::Invalid(format!(
                        "device cuda:{n} requested, but it cannot be opened: {e} \
                         (is there a GPU, and are the driver and the CUDA libraries found?)"
                    ))
                })
            }
            _ => Ok(Device::Cpu),
        }
    }

    /// Whether models on this device use the packed CPU kernels (`cpu` only).
    pub fn packed_kernels(self) -> bool {
        self.resolve() == DeviceSpec::Cpu
    }

    /// Makes this the process's device: the default of [`crate::LoadOptions`] and of
    /// [`packed_kernels_default`]. Returns the resolved spec and its candle device.
    pub fn activate(self) -> Result<(DeviceSpec, Device)> {
        let spec = self.resolve();
        let dev = spec.device()?;
        PACKED_KERNELS.store(spec.packed_kernels(), Ordering::Relaxed);
        *DEFAULT_DEVICE.lock().unwrap_or_else(|p| p.into_inner()) = Some((spec, dev.clone()));
        Ok((spec, dev))
    }
}

static PACKED_KERNELS: AtomicBool = AtomicBool::new(true);
static DEFAULT_DEVICE: Mutex<Option<(DeviceSpec, Device)>> = Mutex::new(None);
static DEFAULT_DTYPE: Mutex<Option<DType>> = Mutex::new(None);

/// Parses a weight dtype name: `f32`, `bf16` or `f16`.
pub fn parse_dtype(s: &str) -> Result<DType> {
    match s.trim() {
        "f32" | "float32" => Ok(DType::F32),
        "bf16" | "bfloat16" => Ok(DType::BF16),
        "f16" | "float16" => Ok(DType::F16),
        other => Err(Error::Invalid(format!(
            "unknown dtype {other:?} (expected f32, bf16 or f16)"
        ))),
    }
}

/// The name [`parse_dtype`] reads back.
pub fn dtype_name(d: DType) -> &'static str {
    match d {
        DType::F32 => "f32",
        DType::BF16 => "bf16",
        DType::F16 => "f16",
        DType::F64 => "f64",
        _ => "other",
    }
}

/// Sets the weight dtype of [`crate::LoadOptions::default`] for this process (`--dtype`).
pub fn set_default_dtype(d: DType) {
    *DEFAULT_DTYPE.lock().unwrap_or_else(|p| p.into_inner()) = Some(d);
}

/// The process's weight dtype ([`set_default_dtype`]; f32 until then).
pub fn default_dtype() -> DType {
    DEFAULT_DTYPE
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .unwrap_or(DType::F32)
}

/// The device [`DeviceSpec::activate`] picked (`cpu` until then), for reports.
pub fn active_spec() -> DeviceSpec {
    DEFAULT_DEVICE
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .as_ref()
        .map_or(DeviceSpec::Cpu, |(s, _)| *s)
}

/// Whether a model built on the CPU uses the packed kernels unless told otherwise (true until
/// [`DeviceSpec::activate`] picks `cpu-generic`).
pub fn packed_kernels_default() -> bool {
    PACKED_KERNELS.load(Ordering::Relaxed)
}

/// The process's device ([`DeviceSpec::activate`]; the CPU until then).
pub fn default_device() -> Device {
    DEFAULT_DEVICE
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .as_ref()
        .map_or(Device::Cpu, |(_, d)| d.clone())
}

/// A short name of a candle device for reports: `cpu` or `cuda:N`.
pub fn device_name(dev: &Device) -> String {
    match dev.location() {
        candle_core::DeviceLocation::Cpu => "cpu".into(),
        candle_core::DeviceLocation::Cuda { gpu_id } => format!("cuda:{gpu_id}"),
        candle_core::DeviceLocation::Metal { gpu_id } => format!("metal:{gpu_id}"),
    }
}

/// Free and total memory of a CUDA device in bytes (`None` on the CPU or when unknown).
pub fn cuda_mem_info(dev: &Device) -> Option<(usize, usize)> {
    #[cfg(feature = "cuda")]
    if let Device::Cuda(d) = dev {
        return d.cuda_stream().context().mem_get_info().ok();
    }
    let _ = dev;
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints() {
        for (s, d) in [
            ("cpu", DeviceSpec::Cpu),
            ("cpu-generic", DeviceSpec::CpuGeneric),
            ("cuda", DeviceSpec::Cuda(0)),
            ("cuda:3", DeviceSpec::Cuda(3)),
            ("auto", DeviceSpec::Auto),
        ] {
            assert_eq!(s.parse::<DeviceSpec>().unwrap(), d);
        }
        assert_eq!(DeviceSpec::Cuda(2).to_string(), "cuda:2");
        assert_eq!(DeviceSpec::CpuGeneric.to_string(), "cpu-generic");
        let e = "tpu".parse::<DeviceSpec>().unwrap_err().to_string();
        assert!(e.contains("unknown device \"tpu\""), "{e}");
        let e = "cuda:x".parse::<DeviceSpec>().unwrap_err().to_string();
        assert!(e.contains("device number"), "{e}");
        assert_eq!(parse_dtype("bf16").unwrap(), DType::BF16);
        assert_eq!(dtype_name(parse_dtype("f16").unwrap()), "f16");
        assert!(parse_dtype("int4")
            .unwrap_err()
            .to_string()
            .contains("int4"));
    }

    #[test]
    fn cpu_specs_resolve_without_gpu() {
        assert!(DeviceSpec::Cpu.packed_kernels());
        assert!(!DeviceSpec::CpuGeneric.packed_kernels());
        assert!(DeviceSpec::CpuGeneric.device().unwrap().is_cpu());
        if !cuda_compiled() {
            assert_eq!(DeviceSpec::Auto.resolve(), DeviceSpec::Cpu);
            let e = DeviceSpec::Cuda(0).device().unwrap_err().to_string();
            assert!(e.contains("built without CUDA"), "{e}");
        }
    }
}
