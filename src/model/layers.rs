//! The few building blocks both towers share, loaded under checkpoint key names.

use candle_core::{D, Tensor};

use super::error::ModelError;
use super::fused;
use super::weights::Weights;

/// `nn.Linear`: weight `[out, in]`, bias `[out]`; inputs of any rank are flattened into one GEMM.
#[derive(Debug, Clone)]
pub struct Linear {
    weight_t: Tensor,
    bias: Tensor,
}

impl Linear {
    /// Loads `{prefix}.weight` and `{prefix}.bias` with the given shape.
    pub fn new(in_dim: usize, out_dim: usize, w: &Weights) -> Result<Self, ModelError> {
        // Kept as `[in, out]` so the GEMM streams the weight row-major instead of packing a transposed view.
        // The matrix in the model's dtype, the bias in the activation dtype.
        Ok(Self {
            weight_t: w.get_transposed("weight", out_dim, in_dim)?,
            bias: w.activations().get("bias", &[out_dim])?,
        })
    }

    /// Wraps an already loaded `[out, in]` weight (in the model's dtype) and f32 bias.
    pub fn from_weight(weight: &Tensor, bias: Tensor) -> candle_core::Result<Self> {
        Ok(Self { weight_t: weight.t()?.contiguous()?, bias })
    }

    /// Output width.
    pub fn out_dim(&self) -> usize {
        self.weight_t.dims()[1]
    }

    /// `x @ W^T + b` over the last dimension.
    pub fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        self.forward_then(x, fused::bias_add)
    }

    /// `gelu(x @ W^T + b)` with the exact GELU, fused with the bias add where possible.
    pub fn forward_gelu(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        self.forward_then(x, fused::bias_gelu)
    }

    fn forward_then(
        &self,
        x: &Tensor,
        bias_op: fn(&Tensor, &Tensor) -> candle_core::Result<Tensor>,
    ) -> candle_core::Result<Tensor> {
        let dims = x.dims();
        let in_dim = dims[dims.len() - 1];
        let rows = x.elem_count() / in_dim;
        // Half weights: the GEMM runs in half precision (f32 accumulation on GPUs) while the residual
        // stream, LayerNorms and softmax stay f32 (see `ACTIVATION_DTYPE`).
        let x = x.reshape((rows, in_dim))?.to_dtype(self.weight_t.dtype())?;
        let y = bias_op(&x.matmul(&self.weight_t)?.to_dtype(self.bias.dtype())?, &self.bias)?;
        let mut out_dims = dims.to_vec();
        if let Some(last) = out_dims.last_mut() {
            *last = self.out_dim();
        }
        y.reshape(out_dims)
    }
}

/// `nn.LayerNorm` over the last dimension, in the activation dtype.
#[derive(Debug, Clone)]
pub struct LayerNorm {
    weight: Tensor,
    bias: Tensor,
    eps: f32,
}

impl LayerNorm {
    /// Loads `{prefix}.weight` and `{prefix}.bias`.
    pub fn new(dim: usize, eps: f64, w: &Weights) -> Result<Self, ModelError> {
        let w = w.activations();
        Ok(Self { weight: w.get("weight", &[dim])?, bias: w.get("bias", &[dim])?, eps: eps as f32 })
    }

    /// Normalises the last dimension (fused kernel; needs a contiguous input).
    pub fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        candle_nn::ops::layer_norm(&x.contiguous()?, &self.weight, &self.bias, self.eps)
    }
}

/// Scaled dot-product attention over `[batch, heads, tokens, head_dim]` tensors, with an optional
/// additive mask broadcastable to `[batch, heads, q_tokens, k_tokens]`.
pub fn attention(q: &Tensor, k: &Tensor, v: &Tensor, mask: Option<&Tensor>) -> candle_core::Result<Tensor> {
    let head_dim = q.dim(D::Minus1)?;
    let q = (q * (1.0 / (head_dim as f64).sqrt()))?;
    let scores = q.contiguous()?.matmul(&k.t()?.contiguous()?)?;
    let scores = match mask {
        Some(m) => scores.broadcast_add(m)?,
        None => scores,
    };
    let probs = candle_nn::ops::softmax_last_dim(&scores)?;
    probs.matmul(&v.contiguous()?)
}

/// `[batch, tokens, heads*head_dim]` → `[batch, heads, tokens, head_dim]`.
pub fn split_heads(x: &Tensor, heads: usize) -> candle_core::Result<Tensor> {
    let (b, n, width) = x.dims3()?;
    x.reshape((b, n, heads, width / heads))?.transpose(1, 2)
}

/// `[batch, heads, tokens, head_dim]` → `[batch, tokens, heads*head_dim]`.
pub fn merge_heads(x: &Tensor) -> candle_core::Result<Tensor> {
    let (b, h, n, d) = x.dims4()?;
    x.transpose(1, 2)?.reshape((b, n, h * d))
}
