//! Device and precision choices, as enums a settings file and a combo box can hold, and their
//! mapping onto candle: CUDA, then Metal, then CPU, in one place.

use std::fmt;
use std::str::FromStr;

use candle_core::{DType, Device};
use serde::{Deserialize, Serialize};

use super::error::ModelError;

/// Where the model should run (as asked) or runs (as reported; never `Auto` then).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceKind {
    /// The best available: CUDA, then Metal, then the CPU.
    #[default]
    Auto,
    /// The CPU.
    Cpu,
    /// An NVIDIA GPU (device 0).
    Cuda,
    /// An Apple GPU.
    Metal,
}

impl DeviceKind {
    /// Every choice, in the order a settings list shows them.
    pub const ALL: [Self; 4] = [Self::Auto, Self::Cpu, Self::Cuda, Self::Metal];

    /// The name the command line and settings use.
    pub fn name(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Cpu => "cpu",
            Self::Cuda => "cuda",
            Self::Metal => "metal",
        }
    }

    /// Where a candle device is, for reporting where the model really runs.
    pub fn of(device: &Device) -> Self {
        match device {
            Device::Cpu => Self::Cpu,
            Device::Cuda(_) => Self::Cuda,
            Device::Metal(_) => Self::Metal,
        }
    }

    /// Whether this asks for (or is) a GPU, which may have to give way to the CPU.
    pub fn is_gpu(self) -> bool {
        matches!(self, Self::Cuda | Self::Metal)
    }
}

impl fmt::Display for DeviceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for DeviceKind {
    type Err = ModelError;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Self::ALL.into_iter().find(|d| d.name().eq_ignore_ascii_case(name)).ok_or_else(|| ModelError::Device {
            name: name.to_string(),
            reason: "expected auto, cpu, cuda or metal".into(),
        })
    }
}

/// The floating-point precision of weights and matrix products.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// 32-bit float: the reference's precision; the CPU default.
    F32,
    /// 16-bit float: half the memory, the GPU default.
    F16,
    /// bfloat16: half the memory with f32's range.
    Bf16,
}

impl Precision {
    /// Every choice, in the order a settings list shows them.
    pub const ALL: [Self; 3] = [Self::F32, Self::F16, Self::Bf16];

    /// The name the command line and settings use.
    pub fn name(self) -> &'static str {
        match self {
            Self::F32 => "f32",
            Self::F16 => "f16",
            Self::Bf16 => "bf16",
        }
    }

    /// The candle dtype.
    pub fn dtype(self) -> DType {
        match self {
            Self::F32 => DType::F32,
            Self::F16 => DType::F16,
            Self::Bf16 => DType::BF16,
        }
    }

    /// The precision of a candle dtype the model runs in (`None` for dtypes it never uses).
    pub fn of(dtype: DType) -> Option<Self> {
        match dtype {
            DType::F32 => Some(Self::F32),
            DType::F16 => Some(Self::F16),
            DType::BF16 => Some(Self::Bf16),
            _ => None,
        }
    }
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Precision {
    type Err = ModelError;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        match name.to_ascii_lowercase().as_str() {
            "f32" | "float32" => Ok(Self::F32),
            "f16" | "float16" | "half" => Ok(Self::F16),
            "bf16" | "bfloat16" => Ok(Self::Bf16),
            _ => Err(ModelError::UnknownDtype(name.to_string())),
        }
    }
}

/// Opens the compute device: `Auto` tries CUDA, then Metal, then falls back to the CPU; a GPU
/// this build or machine lacks is an error naming why.
pub fn select_device(kind: DeviceKind) -> Result<Device, ModelError> {
    let unavailable = |reason: String| ModelError::Device { name: kind.name().to_string(), reason };
    match kind {
        DeviceKind::Cpu => Ok(Device::Cpu),
        DeviceKind::Cuda => {
            if !cfg!(feature = "cuda") {
                return Err(unavailable("this build has no CUDA support (build with --features cuda)".into()));
            }
            Device::new_cuda(0).map_err(|e| unavailable(e.to_string()))
        }
        DeviceKind::Metal => {
            if !cfg!(feature = "metal") {
                return Err(unavailable("this build has no Metal support (build with --features metal)".into()));
            }
            Device::new_metal(0).map_err(|e| unavailable(e.to_string()))
        }
        DeviceKind::Auto => {
            if cfg!(feature = "cuda")
                && let Ok(d) = Device::new_cuda(0)
            {
                return Ok(d);
            }
            if cfg!(feature = "metal")
                && let Ok(d) = Device::new_metal(0)
            {
                return Ok(d);
            }
            Ok(Device::Cpu)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_names_are_clear_errors() {
        assert!("f8".parse::<Precision>().unwrap_err().to_string().contains("unknown dtype \"f8\""));
        assert!("tpu".parse::<DeviceKind>().unwrap_err().to_string().contains("expected auto, cpu, cuda or metal"));
        assert_eq!("BF16".parse::<Precision>().unwrap(), Precision::Bf16);
        assert!(
            matches!(select_device(DeviceKind::Auto).unwrap(), Device::Cpu)
                || cfg!(any(feature = "cuda", feature = "metal"))
        );
    }

    #[test]
    fn names_round_trip_through_text_and_serde() {
        for d in DeviceKind::ALL {
            assert_eq!(d.name().parse::<DeviceKind>().unwrap(), d);
            assert_eq!(serde_json::to_string(&d).unwrap(), format!("\"{}\"", d.name()));
        }
        for p in Precision::ALL {
            assert_eq!(p.name().parse::<Precision>().unwrap(), p);
            assert_eq!(Precision::of(p.dtype()), Some(p));
            assert_eq!(serde_json::from_str::<Precision>(&format!("\"{}\"", p.name())).unwrap(), p);
        }
    }
}
