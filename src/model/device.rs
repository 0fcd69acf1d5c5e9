//! Device and dtype selection: CUDA, then Metal, then CPU, in one place.

use candle_core::{DType, Device};

use super::error::ModelError;

/// Picks the compute device by name: `auto` tries CUDA, then Metal, then falls back to the CPU.
pub fn select_device(name: &str) -> Result<Device, ModelError> {
    let unavailable = |reason: String| ModelError::Device { name: name.to_string(), reason };
    match name {
        "cpu" => Ok(Device::Cpu),
        "cuda" => {
            if !cfg!(feature = "cuda") {
                return Err(unavailable("this build has no CUDA support (build with --features cuda)".into()));
            }
            Device::new_cuda(0).map_err(|e| unavailable(e.to_string()))
        }
        "metal" => {
            if !cfg!(feature = "metal") {
                return Err(unavailable("this build has no Metal support (build with --features metal)".into()));
            }
            Device::new_metal(0).map_err(|e| unavailable(e.to_string()))
        }
        "auto" => {
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
        other => {
            Err(ModelError::Device { name: other.to_string(), reason: "expected auto, cpu, cuda or metal".into() })
        }
    }
}

/// Parses a dtype name as the CLI takes it.
pub fn parse_dtype(name: &str) -> Result<DType, ModelError> {
    match name.to_ascii_lowercase().as_str() {
        "f32" | "float32" => Ok(DType::F32),
        "f16" | "float16" | "half" => Ok(DType::F16),
        "bf16" | "bfloat16" => Ok(DType::BF16),
        _ => Err(ModelError::UnknownDtype(name.to_string())),
    }
}

/// A short human name for a device, for logs and tables.
pub fn device_name(device: &Device) -> &'static str {
    match device {
        Device::Cpu => "cpu",
        Device::Cuda(_) => "cuda",
        Device::Metal(_) => "metal",
    }
}

/// Short name of a dtype, for logs and tables.
pub fn dtype_name(dtype: DType) -> &'static str {
    match dtype {
        DType::F32 => "f32",
        DType::F16 => "f16",
        DType::BF16 => "bf16",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_names_are_clear_errors() {
        assert!(parse_dtype("f8").unwrap_err().to_string().contains("unknown dtype \"f8\""));
        assert!(select_device("tpu").unwrap_err().to_string().contains("expected auto, cpu, cuda or metal"));
        assert_eq!(parse_dtype("BF16").unwrap(), DType::BF16);
        assert!(
            matches!(select_device("auto").unwrap(), Device::Cpu) || cfg!(any(feature = "cuda", feature = "metal"))
        );
    }
}
