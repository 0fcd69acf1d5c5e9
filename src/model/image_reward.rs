//! ImageReward: BLIP image tower → image-conditioned text tower → `[CLS]` → linear head →
//! the reference's mean/std normalisation. One entry point per stage so image tokens can be cached.
//!
//! Reference: THUDM/ImageReward `c1392c6`, `ImageReward/ImageReward.py` (`MLP`, `ImageReward.score`,
//! `inference_rank`): `rewards = mlp(text_output.last_hidden_state[:, 0, :].float())`,
//! `(rewards - mean) / std`.

use candle_core::{DType, Device, Tensor};

use super::blip_vision::VisionTransformer;
use super::config::{MedConfig, REWARD_MEAN, REWARD_STD, VisionConfig};
use super::error::ModelError;
use super::layers::Linear;
use super::med_bert::MedBert;
use super::tokenizer::PromptTokens;
use super::weights::Weights;

/// Output sizes of the reference head after its input (`nn.Linear` at Sequential positions 0, 2, 4, 6, 7).
const REFERENCE_HEAD: &[(usize, usize)] = &[(0, 1024), (2, 128), (4, 64), (6, 16), (7, 1)];

/// The reward head: five linear layers with no activation (the reference comments its ReLUs out);
/// dropout is the identity at inference. Always f32, as the reference casts `[CLS]` to float first.
#[derive(Debug, Clone)]
pub struct RewardHead {
    layers: Vec<Linear>,
}

impl RewardHead {
    /// Loads `mlp.layers.N`; layer sizes come from the checkpoint's shapes so small models load too.
    pub fn new(input: usize, w: &Weights) -> Result<Self, ModelError> {
        let w = w.pp("layers").with_dtype(DType::F32);
        let stored: Vec<(usize, usize)> =
            (0..16).filter_map(|i| w.pp(i).shape("weight").filter(|s| s.len() == 2).map(|s| (i, s[0]))).collect();
        let plan = if stored.is_empty() { REFERENCE_HEAD.to_vec() } else { stored };
        let mut layers = Vec::with_capacity(plan.len());
        let mut width = input;
        for (index, out) in plan {
            layers.push(Linear::new(width, out, &w.pp(index))?);
            width = out;
        }
        if width != 1 {
            return Err(ModelError::WeightFile {
                path: w.path().to_path_buf(),
                reason: format!("the reward head `mlp.layers.*` ends in width {width}, expected a single output"),
            });
        }
        Ok(Self { layers })
    }

    /// Raw (unnormalised) rewards `[B]` from `[CLS]` features `[B, hidden]`.
    pub fn forward(&self, cls: &Tensor) -> candle_core::Result<Tensor> {
        let mut x = cls.clone();
        for layer in &self.layers {
            x = layer.forward(&x)?;
        }
        x.flatten_all()
    }
}

/// The reward model with separately callable stages.
#[derive(Debug, Clone)]
pub struct ImageReward {
    vision: VisionTransformer,
    text: MedBert,
    head: RewardHead,
    device: Device,
    dtype: DType,
}

impl ImageReward {
    /// Builds the model from weights rooted at the checkpoint's top level (`blip.*`, `mlp.*`).
    pub fn new(vision: &VisionConfig, text: &MedConfig, w: &Weights) -> Result<Self, ModelError> {
        let blip = w.pp("blip");
        Ok(Self {
            vision: VisionTransformer::new(vision, &blip.pp("visual_encoder"))?,
            text: MedBert::new(text, &blip.pp("text_encoder"))?,
            head: RewardHead::new(text.hidden_size, &w.pp("mlp"))?,
            device: w.device().clone(),
            dtype: w.dtype(),
        })
    }

    /// The device the weights live on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The dtype of the towers' matrices; activations, norms and the head are always f32.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// The image tower's configuration (input size, token count).
    pub fn vision_config(&self) -> &VisionConfig {
        self.vision.config()
    }

    /// The text tower's configuration.
    pub fn text_config(&self) -> &MedConfig {
        self.text.config()
    }

    /// Stacks preprocessed `[3, S, S]` f32 images into one batch on the model's device.
    pub fn pixels_to_tensor(&self, images: &[&[f32]]) -> Result<Tensor, ModelError> {
        let s = self.vision.config().image_size;
        let mut flat = Vec::with_capacity(images.len() * 3 * s * s);
        for image in images {
            flat.extend_from_slice(image);
        }
        Ok(Tensor::from_vec(flat, (images.len(), 3, s, s), &Device::Cpu)?.to_device(&self.device)?)
    }

    /// Image tokens `[B, N, width]` (class token + patches, after the final norm): the part worth caching per image.
    pub fn image_features(&self, pixels: &Tensor) -> Result<Tensor, ModelError> {
        Ok(self.vision.forward(&pixels.to_dtype(DType::F32)?)?)
    }

    /// `[CLS]` features `[B, hidden]` (f32) of prompts attending to `image_tokens` `[B, N, width]`.
    /// `prompts` holds one prompt for all images or one per image; the text runs at the longest
    /// real length in the batch, since trailing padding never changes `[CLS]`.
    pub fn text_features(&self, prompts: &[PromptTokens], image_tokens: &Tensor) -> Result<Tensor, ModelError> {
        let batch = image_tokens.dim(0)?;
        if prompts.is_empty() || (prompts.len() != 1 && prompts.len() != batch) {
            return Err(candle_core::Error::Msg(format!(
                "text_features needs 1 or {batch} prompts, got {}",
                prompts.len()
            ))
            .into());
        }
        let len = prompts.iter().map(|p| p.len).max().unwrap_or(1).max(1);
        let mut ids = Vec::with_capacity(prompts.len() * len);
        let mut mask = Vec::with_capacity(prompts.len() * len);
        for p in prompts {
            ids.extend_from_slice(&p.ids[..len]);
            mask.extend_from_slice(&p.mask[..len]);
        }
        let ids = Tensor::from_vec(ids, (prompts.len(), len), &self.device)?;
        let mask = Tensor::from_vec(mask, (prompts.len(), len), &self.device)?;
        let hidden = self.text.forward(&ids, &mask, image_tokens)?;
        Ok(hidden.narrow(1, 0, 1)?.squeeze(1)?.to_dtype(DType::F32)?)
    }

    /// Normalised rewards (higher is better, roughly N(0,1) on the reference test set) from `[CLS]` features.
    pub fn score_from_features(&self, cls: &Tensor) -> Result<Vec<f32>, ModelError> {
        let raw = self.head.forward(&cls.to_dtype(DType::F32)?)?;
        let normalised = raw.affine(1.0 / REWARD_STD, -REWARD_MEAN / REWARD_STD)?;
        Ok(normalised.to_device(&Device::Cpu)?.to_vec1::<f32>()?)
    }

    /// Rewards for a batch of preprocessed images against one prompt, or one prompt per image.
    pub fn score(&self, prompts: &[PromptTokens], pixels: &Tensor) -> Result<Vec<f32>, ModelError> {
        let tokens = self.image_features(pixels)?;
        let cls = self.text_features(prompts, &tokens)?;
        self.score_from_features(&cls)
    }
}
