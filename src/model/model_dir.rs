//! The model folder users fill from the published files: `ImageReward.pt` or `model.safetensors`,
//! `med_config.json`, optionally `vocab.txt`/`tokenizer.json` and `vision_config.json`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use candle_core::{DType, Device};

use super::config::{MedConfig, VisionConfig};
use super::error::ModelError;
use super::image_reward::ImageReward;
use super::tokenizer::PromptTokenizer;
use super::weights::{WeightStore, Weights};

/// Weight file names looked for, in order of preference (safetensors maps without pickle).
pub const WEIGHT_FILES: &[&str] = &["model.safetensors", "ImageReward.safetensors", "ImageReward.pt"];

/// The files that make up one model, found in a folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelFiles {
    /// The folder.
    pub dir: PathBuf,
    /// `model.safetensors` or `ImageReward.pt` (or a file named explicitly).
    pub weights: PathBuf,
    /// BLIP's text-tower configuration.
    pub med_config: PathBuf,
    /// Overrides the ViT-L/16 default image tower.
    pub vision_config: Option<PathBuf>,
    /// Vocabulary; the bundled bert-base-uncased one is used when absent.
    pub vocab: Option<PathBuf>,
    /// A Hugging Face tokenizer, used when there is no `vocab.txt`.
    pub tokenizer_json: Option<PathBuf>,
}

impl ModelFiles {
    /// Finds the model files in `path`, which is the model folder or its weight file.
    pub fn discover(path: &Path) -> Result<Self, ModelError> {
        let (dir, weights) = if path.is_file() {
            (path.parent().unwrap_or(Path::new(".")).to_path_buf(), Some(path.to_path_buf()))
        } else if path.is_dir() {
            (path.to_path_buf(), None)
        } else {
            return Err(ModelError::Io {
                path: path.to_path_buf(),
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such model folder or file"),
            });
        };
        let existing = |name: &str| Some(dir.join(name)).filter(|p| p.is_file());
        let weights = weights
            .or_else(|| WEIGHT_FILES.iter().find_map(|n| existing(n)))
            .ok_or_else(|| ModelError::MissingFile { dir: dir.clone(), what: WEIGHT_FILES.join(" or ") })?;
        let med_config = existing("med_config.json")
            .ok_or_else(|| ModelError::MissingFile { dir: dir.clone(), what: "med_config.json".into() })?;
        Ok(Self {
            weights,
            med_config,
            vision_config: existing("vision_config.json"),
            vocab: existing("vocab.txt"),
            tokenizer_json: existing("tokenizer.json"),
            dir,
        })
    }

    /// The tokenizer these files call for: the folder's own vocabulary, else the bundled one.
    pub fn tokenizer(&self) -> Result<PromptTokenizer, ModelError> {
        match (&self.vocab, &self.tokenizer_json) {
            (Some(vocab), _) => PromptTokenizer::from_vocab_file(vocab),
            (None, Some(json)) => PromptTokenizer::from_tokenizer_json(json),
            (None, None) => PromptTokenizer::bundled(),
        }
    }

    /// The image tower's configuration: `vision_config.json` or ViT-L/16 at 224 px.
    pub fn vision_config(&self) -> Result<VisionConfig, ModelError> {
        match &self.vision_config {
            Some(p) => VisionConfig::from_file(p),
            None => Ok(VisionConfig::vit_large_224()),
        }
    }
}

/// A model ready to score, with its tokenizer and what loading found.
#[derive(Debug, Clone)]
pub struct LoadedModel {
    /// The network.
    pub model: ImageReward,
    /// The matching tokenizer.
    pub tokenizer: PromptTokenizer,
    /// Where it came from.
    pub files: ModelFiles,
    /// Keys in the checkpoint that nothing read (neither used nor known to be unused).
    pub unexpected_keys: Vec<String>,
    /// Wall time of the load.
    pub load_time: Duration,
}

/// Loads a model folder (or weight file) onto `device` in `dtype`.
pub fn load_model(path: &Path, device: &Device, dtype: DType) -> Result<LoadedModel, ModelError> {
    let started = Instant::now();
    let files = ModelFiles::discover(path)?;
    let vision = files.vision_config()?;
    let text = MedConfig::from_file(&files.med_config, vision.width)?;
    let tokenizer = files.tokenizer()?;
    if tokenizer.vocab_size() > text.vocab_size {
        return Err(ModelError::Config {
            path: files.med_config.clone(),
            reason: format!(
                "vocab_size {} is smaller than the tokenizer's {} tokens",
                text.vocab_size,
                tokenizer.vocab_size()
            ),
        });
    }
    let store = WeightStore::open(&files.weights)?;
    let model = ImageReward::new(&vision, &text, &Weights::new(&store, dtype, device))?;
    let unexpected_keys = store.unexpected_keys();
    Ok(LoadedModel { model, tokenizer, files, unexpected_keys, load_time: started.elapsed() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_weights_name_the_folder_and_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("med_config.json"), "{}").unwrap();
        let err = ModelFiles::discover(dir.path()).unwrap_err().to_string();
        assert!(err.contains("model.safetensors or ImageReward.safetensors or ImageReward.pt"), "{err}");
        assert!(err.contains(&dir.path().display().to_string()), "{err}");
    }

    #[test]
    fn missing_folder_is_an_error() {
        let err = ModelFiles::discover(Path::new("/nonexistent/model")).unwrap_err().to_string();
        assert!(err.contains("no such model folder"), "{err}");
    }
}
