//! Errors of the reward model: each names the file, key or setting that is wrong.

use std::path::PathBuf;

/// Everything that can go wrong loading or running the reward model.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// A model file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A configuration file is malformed or describes an unsupported model.
    #[error("bad model configuration {path}: {reason}")]
    Config {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The model folder lacks a required file.
    #[error("model folder {dir} has no {what}")]
    MissingFile {
        /// The folder searched.
        dir: PathBuf,
        /// Which file(s) were looked for.
        what: String,
    },
    /// A weight file is unreadable as safetensors or as a PyTorch zip checkpoint.
    #[error("cannot load weights from {path}: {reason}")]
    WeightFile {
        /// The file.
        path: PathBuf,
        /// The reader's message.
        reason: String,
    },
    /// A tensor the model needs is not in the checkpoint.
    #[error("weight `{key}` is missing from {path}")]
    MissingKey {
        /// The checkpoint key.
        key: String,
        /// The weight file.
        path: PathBuf,
    },
    /// A tensor has another shape than the configuration implies.
    #[error("weight `{key}` in {path} has shape {found:?}, the model expects {expected:?}")]
    ShapeMismatch {
        /// The checkpoint key.
        key: String,
        /// The weight file.
        path: PathBuf,
        /// Shape implied by the configuration.
        expected: Vec<usize>,
        /// Shape stored in the file.
        found: Vec<usize>,
    },
    /// The vocabulary could not be turned into a tokenizer.
    #[error("cannot build the tokenizer from {path}: {reason}")]
    Tokenizer {
        /// The vocabulary or tokenizer file.
        path: PathBuf,
        /// The tokenizer library's message.
        reason: String,
    },
    /// A dtype name other than f32, f16 or bf16.
    #[error("unknown dtype {0:?}: expected f32, f16 or bf16")]
    UnknownDtype(String),
    /// A device name other than auto, cpu, cuda or metal, or one this build lacks.
    #[error("device {name:?} is not available: {reason}")]
    Device {
        /// The device asked for.
        name: String,
        /// Why it cannot be used.
        reason: String,
    },
    /// An image could not be decoded or preprocessed.
    #[error(transparent)]
    Image(#[from] crate::image_file::ImageFileError),
    /// A tensor operation failed (shape bug, out of device memory, kernel error).
    #[error("tensor operation failed: {0}")]
    Candle(#[from] candle_core::Error),
}
