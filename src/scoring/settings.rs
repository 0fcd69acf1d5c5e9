//! What the user chooses about the model: which one, where it runs, in which precision, in what
//! batches. Plain data that derives serde, so the app can persist it and bind it to controls.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use crate::model::{DeviceKind, Precision};

/// Which model to run, where, and how.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelSpec {
    /// Model folder or weight file.
    pub path: PathBuf,
    /// Where to run it; a GPU that fails gives way to the CPU.
    #[serde(default)]
    pub device: DeviceKind,
    /// Precision; `None` picks f16 on a GPU and f32 on the CPU.
    #[serde(default)]
    pub dtype: Option<Precision>,
    /// Images per forward pass; `None` picks one from the device.
    #[serde(default)]
    pub batch: Option<usize>,
}

impl ModelSpec {
    /// The model at `path` on the automatically chosen device, precision and batch.
    pub fn auto(path: &Path) -> Self {
        Self { path: path.to_path_buf(), device: DeviceKind::Auto, dtype: None, batch: None }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spec_persists_as_json_and_old_files_fill_defaults() {
        let spec = ModelSpec {
            path: "/models/ir".into(),
            device: DeviceKind::Cuda,
            dtype: Some(Precision::Bf16),
            batch: Some(32),
        };
        let text = serde_json::to_string(&spec).unwrap();
        assert_eq!(text, r#"{"path":"/models/ir","device":"cuda","dtype":"bf16","batch":32}"#);
        assert_eq!(serde_json::from_str::<ModelSpec>(&text).unwrap(), spec);
        let minimal: ModelSpec = serde_json::from_str(r#"{"path":"/m"}"#).unwrap();
        assert_eq!(minimal, ModelSpec::auto(Path::new("/m")));
    }
}
