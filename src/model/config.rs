//! Model configuration: the BLIP ViT image tower, the MED BERT text tower and the reward constants.
//!
//! The image tower's default is ImageReward's ViT-L/16 at 224 px
//! (`ImageReward/models/BLIP/blip.py:create_vit('large', 224)` at THUDM/ImageReward `c1392c6`);
//! the text tower is read from the checkpoint's `med_config.json`.

use serde::Deserialize;
use std::path::Path;

use super::error::ModelError;

/// Mean of the raw reward on the reference test set; subtracting it centres the published scale.
pub const REWARD_MEAN: f64 = 0.167_173_628_300_524_26;
/// Standard deviation of the raw reward on the reference test set; dividing by it gives N(0,1)-like scores.
pub const REWARD_STD: f64 = 1.033_339_496_605_407_2;

/// The ViT image tower's shape, overridable through `vision_config.json` so small test models load too.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VisionConfig {
    /// Input side in pixels (the crop the preprocessing produces).
    pub image_size: usize,
    /// Side of one square patch; `(image_size / patch_size)^2 + 1` tokens come out.
    pub patch_size: usize,
    /// Token width (1024 for ViT-L).
    pub width: usize,
    /// Number of transformer blocks.
    pub depth: usize,
    /// Attention heads per block.
    pub heads: usize,
    /// Hidden size of each block's MLP.
    pub mlp_dim: usize,
}

impl VisionConfig {
    /// ImageReward's released image tower: BLIP ViT-L/16 at 224 px.
    pub fn vit_large_224() -> Self {
        Self { image_size: 224, patch_size: 16, width: 1024, depth: 24, heads: 16, mlp_dim: 4096 }
    }

    /// Patch tokens plus the class token: the length of the cross-attention memory.
    pub fn num_tokens(&self) -> usize {
        let side = self.image_size / self.patch_size;
        side * side + 1
    }

    /// The LayerNorm epsilon BLIP's ViT uses (`partial(nn.LayerNorm, eps=1e-6)`).
    pub const LAYER_NORM_EPS: f64 = 1e-6;

    /// Reads `vision_config.json`, rejecting shapes that cannot form a ViT.
    pub fn from_file(path: &Path) -> Result<Self, ModelError> {
        let cfg: Self = read_json(path)?;
        let bad = |reason: String| ModelError::Config { path: path.to_path_buf(), reason };
        if cfg.patch_size == 0 || !cfg.image_size.is_multiple_of(cfg.patch_size) {
            return Err(bad(format!(
                "image_size {} is not a multiple of patch_size {}",
                cfg.image_size, cfg.patch_size
            )));
        }
        if cfg.image_size != super::preprocess::IMAGE_SIZE {
            return Err(bad(format!(
                "image_size {} is not supported: ImageReward's preprocessing produces {} px crops",
                cfg.image_size,
                super::preprocess::IMAGE_SIZE
            )));
        }
        if cfg.heads == 0 || !cfg.width.is_multiple_of(cfg.heads) {
            return Err(bad(format!("width {} is not a multiple of heads {}", cfg.width, cfg.heads)));
        }
        Ok(cfg)
    }
}

/// The text tower's shape, as BLIP's `med_config.json` states it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct MedConfig {
    /// WordPiece vocabulary plus BLIP's `[DEC]` and `[ENC]`.
    pub vocab_size: usize,
    /// Token width (768 for BERT-base).
    pub hidden_size: usize,
    /// Number of encoder layers, each with self- and cross-attention.
    pub num_hidden_layers: usize,
    /// Attention heads per layer.
    pub num_attention_heads: usize,
    /// Hidden size of each layer's feed-forward block.
    pub intermediate_size: usize,
    /// Rows of the learned position table; prompts never exceed it.
    pub max_position_embeddings: usize,
    /// LayerNorm epsilon of the text tower (1e-12).
    #[serde(default = "default_text_eps")]
    pub layer_norm_eps: f64,
    /// Only `gelu` (exact erf) is what the reference uses; anything else is rejected.
    #[serde(default = "default_act")]
    pub hidden_act: String,
    /// Width of the image tokens the cross-attention reads. The JSON says 768 but the reference
    /// code overwrites it with the ViT width, and so do we (`blip_pretrain.py`: `encoder_config.encoder_width = vision_width`).
    #[serde(default)]
    pub encoder_width: usize,
}

fn default_text_eps() -> f64 {
    1e-12
}

fn default_act() -> String {
    "gelu".to_string()
}

impl MedConfig {
    /// BERT-base with cross-attention to a ViT-L, as the released `med_config.json` (after the width override).
    pub fn bert_base() -> Self {
        Self {
            vocab_size: 30524,
            hidden_size: 768,
            num_hidden_layers: 12,
            num_attention_heads: 12,
            intermediate_size: 3072,
            max_position_embeddings: 512,
            layer_norm_eps: 1e-12,
            hidden_act: "gelu".to_string(),
            encoder_width: 1024,
        }
    }

    /// Reads `med_config.json` and applies the reference's override of `encoder_width` by the ViT width.
    pub fn from_file(path: &Path, vision_width: usize) -> Result<Self, ModelError> {
        let mut cfg: Self = read_json(path)?;
        let bad = |reason: String| ModelError::Config { path: path.to_path_buf(), reason };
        if cfg.hidden_act != "gelu" {
            return Err(bad(format!("hidden_act {:?} is not supported (expected \"gelu\")", cfg.hidden_act)));
        }
        if cfg.num_attention_heads == 0 || !cfg.hidden_size.is_multiple_of(cfg.num_attention_heads) {
            return Err(bad(format!(
                "hidden_size {} is not a multiple of num_attention_heads {}",
                cfg.hidden_size, cfg.num_attention_heads
            )));
        }
        if cfg.max_position_embeddings < super::tokenizer::MAX_TOKENS {
            return Err(bad(format!(
                "max_position_embeddings {} is below the {} tokens a prompt may have",
                cfg.max_position_embeddings,
                super::tokenizer::MAX_TOKENS
            )));
        }
        cfg.encoder_width = vision_width;
        Ok(cfg)
    }
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T, ModelError> {
    let text = std::fs::read_to_string(path).map_err(|source| ModelError::Io { path: path.to_path_buf(), source })?;
    serde_json::from_str(&text).map_err(|e| ModelError::Config { path: path.to_path_buf(), reason: e.to_string() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vit_large_has_197_tokens() {
        assert_eq!(VisionConfig::vit_large_224().num_tokens(), 197);
    }

    #[test]
    fn med_config_encoder_width_is_overridden() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("med_config.json");
        std::fs::write(
            &path,
            r#"{"architectures":["BertModel"],"hidden_size":768,"num_hidden_layers":12,
               "num_attention_heads":12,"intermediate_size":3072,"max_position_embeddings":512,
               "layer_norm_eps":1e-12,"hidden_act":"gelu","vocab_size":30524,"encoder_width":768,
               "add_cross_attention":true,"type_vocab_size":2}"#,
        )
        .unwrap();
        let cfg = MedConfig::from_file(&path, 1024).unwrap();
        assert_eq!(cfg, MedConfig::bert_base());
    }

    #[test]
    fn bad_vision_config_names_the_problem() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vision_config.json");
        std::fs::write(&path, r#"{"image_size":224,"patch_size":15,"width":64,"depth":2,"heads":4,"mlp_dim":256}"#)
            .unwrap();
        let err = VisionConfig::from_file(&path).unwrap_err().to_string();
        assert!(err.contains("patch_size 15"), "{err}");
    }
}
