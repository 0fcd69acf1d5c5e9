//! The model as the worker uses it: loaded on one device, with the stages split so image tokens
//! can go to and come from the embedding cache.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use half::f16;

use super::embeddings::ImageEmbedding;
use super::settings::ModelSpec;
use crate::model::{self, DeviceKind, LoadedModel, ModelError, Precision, PromptTokenizer, PromptTokens};

/// A loaded model and what it really runs on.
#[derive(Debug)]
pub struct Scorer {
    loaded: LoadedModel,
    model_id: String,
    batch: usize,
    spec: ModelSpec,
}

/// Batch size per device when none is asked for: the CPU gains nothing past 8; a GPU needs large
/// batches to be busy (measured on an H100: 128 is 2.5× faster per image than 8).
fn default_batch(device: &Device) -> usize {
    match device {
        Device::Cpu => 8,
        Device::Cuda(_) => 64,
        Device::Metal(_) => 16,
    }
}

/// A stable id for a weight file, so scores and cached tokens of different models never mix:
/// its size and a hash of its first and last 4 MiB (a full hash of 1.8 GB would cost seconds at
/// every start).
pub fn model_id(weights: &Path) -> std::io::Result<String> {
    const PART: u64 = 4 << 20;
    let mut file = std::fs::File::open(weights)?;
    let len = file.metadata()?.len();
    let mut hasher = blake3::Hasher::new();
    hasher.update(&len.to_le_bytes());
    let mut buf = Vec::new();
    (&mut file).take(PART).read_to_end(&mut buf)?;
    hasher.update(&buf);
    if len > PART {
        buf.clear();
        file.seek(SeekFrom::Start(len.saturating_sub(PART).max(PART)))?;
        file.take(PART).read_to_end(&mut buf)?;
        hasher.update(&buf);
    }
    Ok(format!("imagereward-{}", &hasher.finalize().to_hex()[..16]))
}

impl Scorer {
    /// Loads `spec` on exactly `device`, with no fall-back (that is [`super::backend`]'s policy).
    pub fn load_on(spec: &ModelSpec, device: &Device) -> Result<Self, ModelError> {
        let dtype = match (spec.dtype, device) {
            (Some(p), Device::Cuda(_) | Device::Metal(_)) => p.dtype(),
            // Half precision on the CPU is slower than f32 and less exact: only when asked for.
            (Some(p), Device::Cpu) if spec.device == DeviceKind::Cpu => p.dtype(),
            (_, Device::Cpu) => DType::F32,
            (None, _) => DType::F16,
        };
        let loaded = model::load_model(&spec.path, device, dtype)?;
        let model_id = model_id(&loaded.files.weights)
            .map_err(|source| ModelError::Io { path: loaded.files.weights.clone(), source })?;
        let batch = spec.batch.unwrap_or_else(|| default_batch(device)).max(1);
        Ok(Self { loaded, model_id, batch, spec: spec.clone() })
    }

    /// After a GPU failure at run time: the same model on the CPU.
    pub fn reload_on_cpu(&self) -> Result<Self, ModelError> {
        Self::load_cpu(&self.spec)
    }

    /// `spec` on the CPU (f32 unless the CPU itself was asked for in another dtype).
    pub fn load_cpu(spec: &ModelSpec) -> Result<Self, ModelError> {
        Self::load_on(spec, &Device::Cpu)
    }

    /// The id scores and cached tokens are stored under.
    pub fn model_id(&self) -> &str {
        &self.model_id
    }

    /// Images per forward pass.
    pub fn batch(&self) -> usize {
        self.batch
    }

    /// Where it really runs.
    pub fn device(&self) -> DeviceKind {
        DeviceKind::of(self.loaded.model.device())
    }

    /// The precision it really runs in.
    pub fn precision(&self) -> Precision {
        Precision::of(self.loaded.model.dtype()).unwrap_or(Precision::F32)
    }

    /// Whether it runs on a GPU (and so may fall back to the CPU).
    pub fn on_gpu(&self) -> bool {
        !matches!(self.loaded.model.device(), Device::Cpu)
    }

    /// The model's tokenizer (prompts are tokenised on the decode threads).
    pub fn tokenizer(&self) -> &PromptTokenizer {
        &self.loaded.tokenizer
    }

    /// Image tokens `[B, N, W]` on the device for preprocessed images.
    pub fn image_tokens(&self, pixels: &[&[f32]]) -> Result<Tensor, ModelError> {
        let model = &self.loaded.model;
        model.image_features(&model.pixels_to_tensor(pixels)?)
    }

    /// Rewards of image tokens `[B, N, W]` against one prompt or one per image.
    pub fn score_tokens(&self, prompts: &[PromptTokens], tokens: &Tensor) -> Result<Vec<f32>, ModelError> {
        let model = &self.loaded.model;
        model.score_from_features(&model.text_features(prompts, tokens)?)
    }

    /// Image tokens as the cache stores them (f16 on the CPU), one entry per image.
    pub fn to_embeddings(&self, tokens: &Tensor) -> Result<Vec<ImageEmbedding>, ModelError> {
        let (batch, n, w) = tokens.dims3()?;
        let flat: Vec<f16> = tokens.to_dtype(DType::F16)?.to_device(&Device::Cpu)?.flatten_all()?.to_vec1()?;
        Ok((0..batch)
            .map(|i| ImageEmbedding { tokens: n, width: w, values: flat[i * n * w..(i + 1) * n * w].to_vec() })
            .collect())
    }

    /// Cached embeddings as image tokens `[B, N, W]` on the device (f32, as the tower's output).
    pub fn from_embeddings(&self, embeddings: &[&ImageEmbedding]) -> Result<Tensor, ModelError> {
        let config = self.loaded.model.vision_config();
        let (n, w) = (config.num_tokens(), config.width);
        let mut flat = Vec::with_capacity(embeddings.len() * n * w);
        for e in embeddings {
            if (e.tokens, e.width) != (n, w) {
                return Err(candle_core::Error::Msg(format!(
                    "cached image tokens are {}×{}, the model makes {n}×{w}",
                    e.tokens, e.width
                ))
                .into());
            }
            flat.extend_from_slice(&e.values);
        }
        let tensor = Tensor::from_vec(flat, (embeddings.len(), n, w), &Device::Cpu)?;
        Ok(tensor.to_device(self.loaded.model.device())?.to_dtype(DType::F32)?)
    }
}
