//! Shared helpers: fixture paths and the reference's recorded outputs.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use serde::Deserialize;

/// `tests/fixtures` in this checkout.
pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join("fixtures")
}

/// One tokenised prompt as the reference tokenizer produced it.
#[derive(Debug, Deserialize)]
pub struct ExpectedPrompt {
    pub text: String,
    pub input_ids: Vec<u32>,
    pub attention_mask: Vec<u32>,
}

/// One test image and the Pillow mode it opened as.
#[derive(Debug, Deserialize)]
pub struct ExpectedImage {
    pub file: String,
    pub pil_mode: String,
}

impl ExpectedImage {
    /// File stem, the key of its tensors.
    pub fn stem(&self) -> String {
        Path::new(&self.file).file_stem().unwrap().to_string_lossy().into_owned()
    }

    /// JPEG decoders differ by a few LSBs between libjpeg-turbo (Pillow) and zune-jpeg (ours).
    pub fn is_jpeg(&self) -> bool {
        self.file.ends_with(".jpg")
    }
}

/// `expected/expected.json` written by `make_fixtures.py`.
#[derive(Debug, Deserialize)]
pub struct Expected {
    pub mean: f64,
    pub std: f64,
    pub prompts: Vec<ExpectedPrompt>,
    pub images: Vec<ExpectedImage>,
    /// `rewards[image][prompt]` from the reference's own `score`.
    pub rewards: Vec<Vec<f32>>,
    pub inference_rank: InferenceRank,
    pub a1111_parameters: String,
}

/// The reference's `inference_rank` output for one prompt over all images.
#[derive(Debug, Deserialize)]
pub struct InferenceRank {
    pub prompt_index: usize,
    pub files: Vec<String>,
    pub ranks: Vec<usize>,
}

/// Loads the JSON side of the fixtures.
pub fn expected() -> Expected {
    let text = std::fs::read_to_string(fixtures().join("expected/expected.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// Loads the tensor side of the fixtures.
pub fn tensors() -> HashMap<String, Tensor> {
    candle_core::safetensors::load(fixtures().join("expected/tensors.safetensors"), &Device::Cpu).unwrap()
}

/// Largest absolute difference between two equally long f32 slices.
pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

/// Indices sorted by descending value: the ranking a user sees.
pub fn ranking(values: &[f32]) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..values.len()).collect();
    idx.sort_by(|&a, &b| values[b].total_cmp(&values[a]));
    idx
}

/// The `rewardlens` binary with its data and cache folders (library database, embedding cache)
/// in a temporary folder shared by this test run, never the user's.
pub fn rewardlens_command() -> std::process::Command {
    static HOME: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    let home = HOME.get_or_init(|| tempfile::tempdir().unwrap()).path();
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_rewardlens"));
    command.env("HOME", home).env("XDG_DATA_HOME", home.join("data")).env("XDG_CACHE_HOME", home.join("cache"));
    command
}
