//! BLIP's ViT image tower with timm key names (`blip.visual_encoder.*`).
//!
//! Reference: THUDM/ImageReward `c1392c6`, `ImageReward/models/BLIP/vit.py` (`VisionTransformer`,
//! `Block`, `Attention`, `Mlp`): pre-norm blocks, fused qkv, exact-erf GELU, LayerNorm eps 1e-6,
//! the final norm applied to all tokens, which form the text tower's cross-attention memory.

use candle_core::Tensor;

use super::config::VisionConfig;
use super::error::ModelError;
use super::layers::{LayerNorm, Linear, attention, merge_heads};
use super::weights::Weights;

/// `Attention`: fused `qkv` projection, softmax attention, output `proj`.
#[derive(Debug, Clone)]
struct Attn {
    qkv: Linear,
    proj: Linear,
    heads: usize,
}

impl Attn {
    fn new(cfg: &VisionConfig, w: &Weights) -> Result<Self, ModelError> {
        Ok(Self {
            qkv: Linear::new(cfg.width, 3 * cfg.width, &w.pp("qkv"))?,
            proj: Linear::new(cfg.width, cfg.width, &w.pp("proj"))?,
            heads: cfg.heads,
        })
    }

    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let (b, n, width) = x.dims3()?;
        // (B, N, 3, H, D) → (3, B, H, N, D), q/k/v in that order as the reference reshapes.
        let qkv = self.qkv.forward(x)?.reshape((b, n, 3, self.heads, width / self.heads))?.permute((2, 0, 3, 1, 4))?;
        let (q, k, v) = (qkv.get(0)?, qkv.get(1)?, qkv.get(2)?);
        let out = attention(&q, &k, &v, None)?;
        self.proj.forward(&merge_heads(&out)?)
    }
}

/// `Block`: `x + attn(norm1(x))`, then `x + mlp(norm2(x))`.
#[derive(Debug, Clone)]
struct Block {
    norm1: LayerNorm,
    attn: Attn,
    norm2: LayerNorm,
    fc1: Linear,
    fc2: Linear,
}

impl Block {
    fn new(cfg: &VisionConfig, w: &Weights) -> Result<Self, ModelError> {
        let eps = VisionConfig::LAYER_NORM_EPS;
        Ok(Self {
            norm1: LayerNorm::new(cfg.width, eps, &w.pp("norm1"))?,
            attn: Attn::new(cfg, &w.pp("attn"))?,
            norm2: LayerNorm::new(cfg.width, eps, &w.pp("norm2"))?,
            fc1: Linear::new(cfg.width, cfg.mlp_dim, &w.pp("mlp").pp("fc1"))?,
            fc2: Linear::new(cfg.mlp_dim, cfg.width, &w.pp("mlp").pp("fc2"))?,
        })
    }

    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let x = (x + self.attn.forward(&self.norm1.forward(x)?)?)?;
        let h = self.fc1.forward_gelu(&self.norm2.forward(&x)?)?;
        x + self.fc2.forward(&h)?
    }
}

/// The image tower: pixels `[B, 3, S, S]` → tokens `[B, 1 + (S/P)^2, width]`.
#[derive(Debug, Clone)]
pub struct VisionTransformer {
    cfg: VisionConfig,
    cls_token: Tensor,
    pos_embed: Tensor,
    /// The patch convolution with its kernel flattened to `[width, 3*P*P]`, applied as one GEMM.
    patch_embed: Linear,
    blocks: Vec<Block>,
    norm: LayerNorm,
}

impl VisionTransformer {
    /// Loads the tower from `w` (rooted at `blip.visual_encoder`).
    pub fn new(cfg: &VisionConfig, w: &Weights) -> Result<Self, ModelError> {
        let p = cfg.patch_size;
        let tokens = cfg.num_tokens();
        let proj = w.pp("patch_embed").pp("proj");
        let patch_weight = proj.get("weight", &[cfg.width, 3, p, p])?.reshape((cfg.width, 3 * p * p))?;
        let patch_bias = proj.activations().get("bias", &[cfg.width])?;
        let blocks = (0..cfg.depth).map(|i| Block::new(cfg, &w.pp("blocks").pp(i))).collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            cfg: cfg.clone(),
            cls_token: w.activations().get("cls_token", &[1, 1, cfg.width])?,
            pos_embed: w.activations().get("pos_embed", &[1, tokens, cfg.width])?,
            patch_embed: Linear::from_weight(&patch_weight, patch_bias)?,
            blocks,
            norm: LayerNorm::new(cfg.width, VisionConfig::LAYER_NORM_EPS, &w.pp("norm"))?,
        })
    }

    /// The tower's configuration.
    pub fn config(&self) -> &VisionConfig {
        &self.cfg
    }

    /// Runs the tower on normalised pixels; the tokens come out in the activation dtype.
    pub fn forward(&self, pixels: &Tensor) -> candle_core::Result<Tensor> {
        let pixels = pixels.to_dtype(self.cls_token.dtype())?;
        let (b, _c, s, _) = pixels.dims4()?;
        let p = self.cfg.patch_size;
        let g = s / p;
        // A stride-P P×P convolution is a GEMM over non-overlapping patches flattened as (c, kh, kw).
        let patches = pixels
            .reshape((b, 3, g, p, g, p))?
            .permute((0, 2, 4, 1, 3, 5))?
            .contiguous()?
            .reshape((b * g * g, 3 * p * p))?;
        let x = self.patch_embed.forward(&patches)?.reshape((b, g * g, self.cfg.width))?;
        let cls = self.cls_token.broadcast_as((b, 1, self.cfg.width))?;
        let mut x = Tensor::cat(&[&cls, &x], 1)?.broadcast_add(&self.pos_embed)?;
        for block in &self.blocks {
            x = block.forward(&x)?;
        }
        self.norm.forward(&x)
    }
}
