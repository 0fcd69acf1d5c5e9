//! BLIP's "MED" BERT text encoder: bidirectional self-attention over the prompt and
//! cross-attention to every image token in every layer (`blip.text_encoder.*`).
//!
//! Reference: THUDM/ImageReward `c1392c6`, `ImageReward/models/BLIP/med.py` (`BertEmbeddings`
//! without token-type embeddings, `BertSelfAttention`, `BertLayer` in `mode='multimodal'`),
//! post-LayerNorm residual blocks with eps 1e-12, exact-erf GELU, additive padding mask
//! `(1 - mask) * -10000`, and no mask on the cross-attention.

use candle_core::{DType, Tensor};

use super::config::MedConfig;
use super::error::ModelError;
use super::layers::{LayerNorm, Linear, attention, merge_heads, split_heads};
use super::weights::Weights;

/// `BertSelfAttention` + `BertSelfOutput`: attention, dense, residual, LayerNorm.
#[derive(Debug, Clone)]
struct AttentionBlock {
    query: Linear,
    key: Linear,
    value: Linear,
    dense: Linear,
    norm: LayerNorm,
    heads: usize,
}

impl AttentionBlock {
    /// `kv_width` is the hidden size for self-attention and the image width for cross-attention.
    fn new(cfg: &MedConfig, kv_width: usize, w: &Weights) -> Result<Self, ModelError> {
        let h = cfg.hidden_size;
        let s = w.pp("self");
        Ok(Self {
            query: Linear::new(h, h, &s.pp("query"))?,
            key: Linear::new(kv_width, h, &s.pp("key"))?,
            value: Linear::new(kv_width, h, &s.pp("value"))?,
            dense: Linear::new(h, h, &w.pp("output").pp("dense"))?,
            norm: LayerNorm::new(h, cfg.layer_norm_eps, &w.pp("output").pp("LayerNorm"))?,
            heads: cfg.num_attention_heads,
        })
    }

    fn forward(&self, x: &Tensor, memory: &Tensor, mask: Option<&Tensor>) -> candle_core::Result<Tensor> {
        let q = split_heads(&self.query.forward(x)?, self.heads)?;
        let k = split_heads(&self.key.forward(memory)?, self.heads)?;
        let v = split_heads(&self.value.forward(memory)?, self.heads)?;
        let ctx = merge_heads(&attention(&q, &k, &v, mask)?)?;
        self.norm.forward(&(self.dense.forward(&ctx)? + x)?)
    }
}

/// `BertLayer`: self-attention, cross-attention to the image, feed-forward.
#[derive(Debug, Clone)]
struct Layer {
    attention: AttentionBlock,
    crossattention: AttentionBlock,
    intermediate: Linear,
    output: Linear,
    output_norm: LayerNorm,
}

impl Layer {
    fn new(cfg: &MedConfig, w: &Weights) -> Result<Self, ModelError> {
        Ok(Self {
            attention: AttentionBlock::new(cfg, cfg.hidden_size, &w.pp("attention"))?,
            crossattention: AttentionBlock::new(cfg, cfg.encoder_width, &w.pp("crossattention"))?,
            intermediate: Linear::new(cfg.hidden_size, cfg.intermediate_size, &w.pp("intermediate").pp("dense"))?,
            output: Linear::new(cfg.intermediate_size, cfg.hidden_size, &w.pp("output").pp("dense"))?,
            output_norm: LayerNorm::new(cfg.hidden_size, cfg.layer_norm_eps, &w.pp("output").pp("LayerNorm"))?,
        })
    }

    fn forward(&self, x: &Tensor, mask: &Tensor, image: &Tensor) -> candle_core::Result<Tensor> {
        let a = self.attention.forward(x, x, Some(mask))?;
        let c = self.crossattention.forward(&a, image, None)?;
        let h = self.intermediate.forward_gelu(&c)?;
        self.output_norm.forward(&(self.output.forward(&h)? + c)?)
    }
}

/// The text tower: token ids + padding mask + image tokens → hidden states.
#[derive(Debug, Clone)]
pub struct MedBert {
    cfg: MedConfig,
    word_embeddings: Tensor,
    position_embeddings: Tensor,
    embeddings_norm: LayerNorm,
    layers: Vec<Layer>,
}

impl MedBert {
    /// Loads the tower from `w` (rooted at `blip.text_encoder`).
    pub fn new(cfg: &MedConfig, w: &Weights) -> Result<Self, ModelError> {
        let e = w.pp("embeddings");
        let layers = (0..cfg.num_hidden_layers)
            .map(|i| Layer::new(cfg, &w.pp("encoder").pp("layer").pp(i)))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            cfg: cfg.clone(),
            word_embeddings: e.pp("word_embeddings").activations().get("weight", &[cfg.vocab_size, cfg.hidden_size])?,
            position_embeddings: e
                .pp("position_embeddings")
                .activations()
                .get("weight", &[cfg.max_position_embeddings, cfg.hidden_size])?,
            embeddings_norm: LayerNorm::new(cfg.hidden_size, cfg.layer_norm_eps, &e.pp("LayerNorm"))?,
            layers,
        })
    }

    /// The tower's configuration.
    pub fn config(&self) -> &MedConfig {
        &self.cfg
    }

    /// Hidden states `[B, L, hidden]` for ids `[B or 1, L]` (u32) and mask `[B or 1, L]` (1 = token,
    /// 0 = padding) attending to `image` `[B, N, encoder_width]`. A single prompt row is shared by all images.
    pub fn forward(&self, ids: &Tensor, mask: &Tensor, image: &Tensor) -> candle_core::Result<Tensor> {
        let (rows, len) = ids.dims2()?;
        let batch = image.dim(0)?;
        let words = self.word_embeddings.embedding(&ids.flatten_all()?)?.reshape((rows, len, self.cfg.hidden_size))?;
        let positions = self.position_embeddings.narrow(0, 0, len)?;
        let mut x = self.embeddings_norm.forward(&words.broadcast_add(&positions)?)?;
        // (1 - mask) * -10000, shaped [rows, 1, 1, L] to broadcast over heads and queries.
        let dtype = self.word_embeddings.dtype();
        let image = image.to_dtype(dtype)?;
        let image = &image;
        let additive = (mask.to_dtype(DType::F32)?.affine(-1.0, 1.0)? * -10000.0)?.to_dtype(dtype)?;
        let additive = additive.reshape((rows, 1, 1, len))?;
        if rows != batch {
            x = x.broadcast_as((batch, len, self.cfg.hidden_size))?.contiguous()?;
        }
        for layer in &self.layers {
            x = layer.forward(&x, &additive, image)?;
        }
        Ok(x)
    }
}
