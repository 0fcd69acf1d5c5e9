//! The ImageReward human-preference reward model (Xu et al. 2023, "ImageReward: Learning and
//! Evaluating Human Preferences for Text-to-Image Generation", arXiv 2304.05977), ported to candle.
//!
//! Reference code: THUDM/ImageReward (now zai-org/ImageReward) at commit `c1392c6`, PyPI
//! `image-reward` 1.5; weights: Hugging Face `THUDM/ImageReward` (`ImageReward.pt`, `med_config.json`).
//! No GUI dependency: the app, the CLI and the scoring worker all call in here.

pub mod blip_vision;
pub mod config;
pub mod device;
pub mod error;
pub mod fused;
pub mod hub;
pub mod image_reward;
pub mod layers;
pub mod locate;
pub mod med_bert;
pub mod model_dir;
pub mod preprocess;
pub mod tokenizer;
pub mod weights;

pub use config::{MedConfig, REWARD_MEAN, REWARD_STD, VisionConfig};
pub use device::{DeviceKind, Precision, select_device};
pub use error::ModelError;
pub use image_reward::ImageReward;
pub use model_dir::{LoadedModel, ModelFiles, load_model};
pub use tokenizer::{MAX_TOKENS, PromptTokenizer, PromptTokens, TokenKey};
