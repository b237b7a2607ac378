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
                        "device cuda:{n} requested, but it cannot be opened: {} \
                         (is there a GPU, and are the driver and the CUDA libraries found?)",
                        crate::error::brief(&e)
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

/// Free and total memory of a CUDA device in bytes (`None` on the CPU or when unknown).
pub fn cuda_mem_info(dev: &Device) -> Option<(usize, usize)> {
    #[cfg(feature = "cuda")]
    if let Device::Cuda(d) = dev {
        return d.cuda_stream().context().mem_get_info().ok();
    }
    let _ = dev;
    None
}

/// Memory in use at one moment: the process's resident set (current and peak, Linux
/// `/proc/self/status`; `None` elsewhere) and, on a CUDA device, the device memory in use
/// (`total − free` from cudarc's mem info, every process on the device counted) and its total.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemReport {
    /// `VmRSS`, bytes.
    pub rss_bytes: Option<u64>,
    /// `VmHWM` (the process's peak resident set so far), bytes.
    pub rss_peak_bytes: Option<u64>,
    /// CUDA: device memory in use, bytes.
    pub device_used_bytes: Option<u64>,
    /// CUDA: the device's memory, bytes.
    pub device_total_bytes: Option<u64>,
}

impl MemReport {
    /// The larger of each field (a peak over several readings).
    pub fn max(self, o: MemReport) -> MemReport {
        let m = |a: Option<u64>, b: Option<u64>| match (a, b) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        MemReport {
            rss_bytes: m(self.rss_bytes, o.rss_bytes),
            rss_peak_bytes: m(self.rss_peak_bytes, o.rss_peak_bytes),
            device_used_bytes: m(self.device_used_bytes, o.device_used_bytes),
            device_total_bytes: m(self.device_total_bytes, o.device_total_bytes),
        }
    }
}

/// Reads the memory in use now (see [`MemReport`]); `dev` decides whether the device is asked.
pub fn mem_report(dev: &Device) -> MemReport {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|r| r.trim().strip_suffix("kB"))
            .and_then(|n| n.trim().parse::<u64>().ok())
            .map(|kb| kb * 1024)
    };
    let dm = cuda_mem_info(dev);
    MemReport {
        rss_bytes: field("VmRSS:"),
        rss_peak_bytes: field("VmHWM:"),
        device_used_bytes: dm.map(|(free, total)| total.saturating_sub(free) as u64),
        device_total_bytes: dm.map(|(_, total)| total as u64),
    }
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
    fn mem_report_reads_the_resident_set_on_the_cpu() {
        let a = mem_report(&Device::Cpu);
        let rss = a.rss_bytes.expect("VmRSS in /proc/self/status");
        let peak = a.rss_peak_bytes.expect("VmHWM in /proc/self/status");
        // A test process holds at least 1 MiB and less than the machine's memory.
        assert!(rss > 1 << 20 && rss < 1 << 42, "rss {rss}");
        assert!(peak >= rss, "peak {peak} < rss {rss}");
        // 64 MiB touched raises the resident set by about that much.
        let v = vec![1u8; 64 << 20];
        let b = mem_report(&Device::Cpu);
        assert!(
            b.rss_bytes.unwrap() >= rss + (48 << 20),
            "{a:?} -> {b:?} (sum {})",
            v.iter().map(|&x| x as u64).sum::<u64>()
        );
        assert_eq!((a.device_used_bytes, a.device_total_bytes), (None, None));
        let m = a.max(b);
        assert_eq!(m.rss_bytes, b.rss_bytes);
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
