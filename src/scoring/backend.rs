//! Where the model runs for the worker: in this process, or in the GPU helper process.

use super::embeddings::ImageEmbedding;
use super::remote::{GpuHelper, helper_path};
use super::scorer::{ModelSpec, Scorer};
use crate::model::{ModelError, PromptTokens};

/// The model, in-process or in the GPU helper; both store scores under the same model id.
#[derive(Debug)]
pub(crate) enum Backend {
    /// In this process (CPU, or a GPU when this build links CUDA or Metal itself).
    Local(Box<Scorer>),
    /// In the `rewardlens-gpu` child process, with the spec it was started for.
    Helper(Box<GpuHelper>, ModelSpec),
}

impl Backend {
    /// Loads `spec`: through the GPU helper when a GPU is wanted, this build does not link CUDA
    /// and a helper is installed; in-process otherwise. Any GPU failure ends on the CPU, with a
    /// note saying why.
    pub fn load(spec: &ModelSpec) -> Result<(Self, Option<String>), ModelError> {
        let wants_cuda = matches!(spec.device.as_str(), "auto" | "cuda");
        if wants_cuda
            && !cfg!(feature = "cuda")
            && let Some(helper) = helper_path()
        {
            return match GpuHelper::start(&helper, spec) {
                Ok(h) => Ok((Self::Helper(Box::new(h), spec.clone()), None)),
                Err(reason) => {
                    let scorer = Scorer::load_cpu(spec)?;
                    Ok((
                        Self::Local(Box::new(scorer)),
                        Some(format!("the GPU helper is unavailable ({reason}); scoring on the CPU")),
                    ))
                }
            };
        }
        let (scorer, note) = Scorer::load(spec)?;
        Ok((Self::Local(Box::new(scorer)), note))
    }

    /// After a GPU failure at run time: the same model in-process on the CPU.
    pub fn cpu_fallback(&self) -> Result<Self, ModelError> {
        Ok(Self::Local(Box::new(match self {
            Self::Local(s) => s.reload_on_cpu()?,
            Self::Helper(_, spec) => Scorer::load_cpu(spec)?,
        })))
    }

    /// The id scores and cached tokens are stored under.
    pub fn model_id(&self) -> &str {
        match self {
            Self::Local(s) => s.model_id(),
            Self::Helper(h, _) => h.model_id(),
        }
    }

    /// Images per forward pass.
    pub fn batch(&self) -> usize {
        match self {
            Self::Local(s) => s.batch(),
            Self::Helper(h, _) => h.batch(),
        }
    }

    /// Where it really runs.
    pub fn device_name(&self) -> &str {
        match self {
            Self::Local(s) => s.device_name(),
            Self::Helper(h, _) => h.device_name(),
        }
    }

    /// The dtype it really runs in.
    pub fn dtype_name(&self) -> &str {
        match self {
            Self::Local(s) => s.dtype_name(),
            Self::Helper(h, _) => h.dtype_name(),
        }
    }

    /// Whether a failure should fall back to the CPU.
    pub fn on_gpu(&self) -> bool {
        match self {
            Self::Local(s) => s.on_gpu(),
            Self::Helper(..) => true,
        }
    }

    /// Tokenises a prompt.
    pub fn tokenize(&self, prompt: &str) -> Result<PromptTokens, ModelError> {
        match self {
            Self::Local(s) => s.tokenize(prompt),
            Self::Helper(h, _) => h.tokenize(prompt),
        }
    }

    /// Rewards of preprocessed images, with their image tokens for the cache.
    pub fn score_pixels(
        &mut self,
        prompts: &[PromptTokens],
        pixels: &[&[f32]],
    ) -> Result<(Vec<f32>, Vec<ImageEmbedding>), String> {
        match self {
            Self::Local(s) => (|| {
                let tokens = s.image_tokens(pixels)?;
                let scores = s.score_tokens(prompts, &tokens)?;
                Ok::<_, ModelError>((scores, s.to_embeddings(&tokens)?))
            })()
            .map_err(|e| e.to_string()),
            Self::Helper(h, _) => h.score_pixels(prompts, pixels),
        }
    }

    /// Rewards of cached image tokens.
    pub fn score_embeddings(
        &mut self,
        prompts: &[PromptTokens],
        embeddings: &[&ImageEmbedding],
    ) -> Result<Vec<f32>, String> {
        match self {
            Self::Local(s) => {
                s.from_embeddings(embeddings).and_then(|t| s.score_tokens(prompts, &t)).map_err(|e| e.to_string())
            }
            Self::Helper(h, _) => h.score_embeddings(prompts, embeddings),
        }
    }
}
