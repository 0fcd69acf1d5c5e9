//! Where the model runs for the worker, in this process or in the GPU helper process, and the one
//! place that decides when a GPU gives way to the CPU: at load (no driver, no GPU support in this
//! build, out of memory, a helper that cannot start) and at run time (a kernel error, the helper
//! dying). Every fall-back keeps the same model id, so scores and cached tokens stay valid.

use candle_core::Device;

use super::embeddings::ImageEmbedding;
use super::remote::{GpuHelper, HelperError, helper_path};
use super::scorer::Scorer;
use super::settings::ModelSpec;
use crate::model::{DeviceKind, ModelError, Precision, PromptTokenizer, PromptTokens, select_device};

/// Why the model could not score a batch.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// The in-process model failed (a tensor operation, a shape, device memory).
    #[error(transparent)]
    Model(#[from] ModelError),
    /// The GPU helper failed or died.
    #[error(transparent)]
    Helper(#[from] HelperError),
}

/// The model, in-process or in the GPU helper; both store scores under the same model id.
#[derive(Debug)]
pub(crate) enum Backend {
    /// In this process (CPU, or a GPU when this build links CUDA or Metal itself).
    Local(Box<Scorer>),
    /// In the `rewardlens-gpu` child process, with the spec it was started for.
    Helper(Box<GpuHelper>, ModelSpec),
}

impl Backend {
    /// Loads `spec` on the device it asks for, or on the CPU when that GPU cannot be used; the
    /// note says why it is not where it was asked to be. A broken model file is an error (the CPU
    /// would fail on it too).
    pub fn load(spec: &ModelSpec) -> Result<(Self, Option<String>), ModelError> {
        let cpu = |note: String| Ok((Self::Local(Box::new(Scorer::load_on(spec, &Device::Cpu)?)), Some(note)));
        let wants_cuda = matches!(spec.device, DeviceKind::Auto | DeviceKind::Cuda);
        // A build without CUDA reaches an NVIDIA GPU through the helper process, when installed.
        if wants_cuda
            && !cfg!(feature = "cuda")
            && let Some(helper) = helper_path()
        {
            return match GpuHelper::start(&helper, spec) {
                Ok(h) => Ok((Self::Helper(Box::new(h), spec.clone()), None)),
                Err(reason) => cpu(format!("the GPU helper is unavailable ({reason}); scoring on the CPU")),
            };
        }
        let device = match select_device(spec.device) {
            Ok(device) => device,
            Err(e) if spec.device.is_gpu() => return cpu(format!("{e}; scoring on the CPU")),
            Err(e) => return Err(e),
        };
        if matches!(device, Device::Cpu) {
            let scorer = Self::Local(Box::new(Scorer::load_on(spec, &device)?));
            let note = (spec.device == DeviceKind::Auto).then(|| "no usable GPU found; scoring on the CPU".to_string());
            return Ok((scorer, note));
        }
        match Scorer::load_on(spec, &device) {
            Ok(scorer) => Ok((Self::Local(Box::new(scorer)), None)),
            Err(gpu_error) => {
                cpu(format!("loading on {} failed ({gpu_error}); scoring on the CPU", DeviceKind::of(&device)))
            }
        }
    }

    /// Runs `f`; when it fails on a GPU (or the GPU helper dies), replaces this backend with the
    /// same model in-process on the CPU and runs `f` there. The note, when set, says the device
    /// changed and why, for the user.
    pub fn run<T>(
        &mut self,
        mut f: impl FnMut(&mut Self) -> Result<T, BackendError>,
    ) -> (Result<T, BackendError>, Option<String>) {
        match f(self) {
            Err(e) if self.on_gpu() => {
                let cpu = match self.cpu_fallback() {
                    Ok(cpu) => cpu,
                    Err(load) => return (Err(load.into()), None),
                };
                let note = format!("the {} failed while scoring ({e}); now scoring on the CPU", self.device());
                // Dropping the old backend stops a GPU helper that is still alive.
                *self = cpu;
                (f(self), Some(note))
            }
            result => (result, None),
        }
    }

    /// The same model in-process on the CPU.
    fn cpu_fallback(&self) -> Result<Self, ModelError> {
        Ok(Self::Local(Box::new(match self {
            Self::Local(s) => s.reload_on_cpu()?,
            Self::Helper(_, spec) => Scorer::load_on(spec, &Device::Cpu)?,
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
    pub fn device(&self) -> DeviceKind {
        match self {
            Self::Local(s) => s.device(),
            Self::Helper(h, _) => h.device(),
        }
    }

    /// The precision it really runs in.
    pub fn precision(&self) -> Precision {
        match self {
            Self::Local(s) => s.precision(),
            Self::Helper(h, _) => h.precision(),
        }
    }

    /// Whether a failure should fall back to the CPU.
    fn on_gpu(&self) -> bool {
        match self {
            Self::Local(s) => s.on_gpu(),
            Self::Helper(..) => true,
        }
    }

    /// The model's tokenizer.
    pub fn tokenizer(&self) -> &PromptTokenizer {
        match self {
            Self::Local(s) => s.tokenizer(),
            Self::Helper(h, _) => h.tokenizer(),
        }
    }

    /// Rewards of preprocessed images, with their image tokens for the cache.
    pub fn score_pixels(
        &mut self,
        prompts: &[PromptTokens],
        pixels: &[&[f32]],
    ) -> Result<(Vec<f32>, Vec<ImageEmbedding>), BackendError> {
        match self {
            Self::Local(s) => {
                let tokens = s.image_tokens(pixels)?;
                let scores = s.score_tokens(prompts, &tokens)?;
                Ok((scores, s.to_embeddings(&tokens)?))
            }
            Self::Helper(h, _) => Ok(h.score_pixels(prompts, pixels)?),
        }
    }

    /// Rewards of cached image tokens.
    pub fn score_embeddings(
        &mut self,
        prompts: &[PromptTokens],
        embeddings: &[&ImageEmbedding],
    ) -> Result<Vec<f32>, BackendError> {
        match self {
            Self::Local(s) => Ok(s.score_tokens(prompts, &s.from_embeddings(embeddings)?)?),
            Self::Helper(h, _) => Ok(h.score_embeddings(prompts, embeddings)?),
        }
    }
}
