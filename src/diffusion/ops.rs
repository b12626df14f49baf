//! The ops the UNet and VAE are built from. Each times itself for `easel bench --profile`
//! ([`super::profile`]); the hot ones are where Easel's CPU kernels get wired in.

use candle_core::{D, DType, Module, Result, Tensor};
use candle_nn::{Conv2d, LayerNorm, Linear, VarBuilder};

use super::profile::{OpKind, time};

/// Attention score buffers larger than this are computed in slices over batch × heads.
pub const ATTENTION_SLICE_BYTES: usize = 512 << 20;

/// A convolution, timed as 1×1 or 3×3 by its kernel size.
pub fn conv2d(conv: &Conv2d, x: &Tensor) -> Result<Tensor> {
    let kind = if conv.weight().dim(3)? == 1 {
        OpKind::Conv1x1
    } else {
        OpKind::Conv3x3
    };
    time(kind, || conv.forward(x))
}

/// A linear layer.
pub fn linear(layer: &Linear, x: &Tensor) -> Result<Tensor> {
    time(OpKind::Linear, || layer.forward(x))
}

/// A LayerNorm over the last dimension.
pub fn layer_norm(norm: &LayerNorm, x: &Tensor) -> Result<Tensor> {
    time(OpKind::Norm, || norm.forward(x))
}

/// SiLU, `x · σ(x)`.
pub fn silu(x: &Tensor) -> Result<Tensor> {
    time(OpKind::Elementwise, || candle_nn::ops::silu(x))
}

/// `a + b`, same shapes (residual connections).
pub fn add(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    time(OpKind::Elementwise, || a + b)
}

/// `a + b` with `b` broadcast to `a`'s shape (per-channel time embedding).
pub fn broadcast_add(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    time(OpKind::Elementwise, || a.broadcast_add(b))
}

/// GEGLU with the exact (erf) GELU, as LDM's `GEGLU` calls `F.gelu`: `[.., 2n]` → `a · gelu(g)` `[.., n]`
/// where `a` is the first half of the last dimension and `g` the second.
pub fn geglu(proj: &Tensor) -> Result<Tensor> {
    time(OpKind::Elementwise, || {
        let half = proj.dim(D::Minus1)? / 2;
        proj.narrow(D::Minus1, 0, half)? * proj.narrow(D::Minus1, half, half)?.gelu_erf()?
    })
}

/// Runs a pure data movement (transpose + copy, concatenation, upsampling, padding) under the layout timer.
pub fn layout(f: impl FnOnce() -> Result<Tensor>) -> Result<Tensor> {
    time(OpKind::Layout, f)
}

/// GroupNorm over NCHW (or any `[B, C, …]`) with an optional fused SiLU.
pub struct GroupNorm {
    reference: candle_nn::GroupNorm,
}

impl GroupNorm {
    /// Loads `weight` and `bias` of `channels` from `vb` (candle-nn's names and init hints).
    pub fn new(vb: &VarBuilder<'_>, groups: usize, channels: usize, eps: f64) -> Result<Self> {
        let weight = vb.get_with_hints(channels, "weight", candle_nn::Init::Const(1.))?;
        let bias = vb.get_with_hints(channels, "bias", candle_nn::Init::Const(0.))?;
        Ok(Self {
            reference: candle_nn::GroupNorm::new(weight, bias, channels, groups, eps)?,
        })
    }

    /// Normalises `x`, then applies SiLU when `silu` is set.
    pub fn forward(&self, x: &Tensor, silu: bool) -> Result<Tensor> {
        time(OpKind::Norm, || {
            let y = self.reference.forward(x)?;
            if silu { candle_nn::ops::silu(&y) } else { Ok(y) }
        })
    }
}

/// Multi-head attention core: `q` `[B, N, C]`, `k` and `v` `[B, M, C]` with `C = heads · d`
/// → `softmax(q kᵀ · scale) v` per head, merged back to `[B, N, C]`. Scores and softmax are f32.
pub fn attention(q: &Tensor, k: &Tensor, v: &Tensor, heads: usize, scale: f64) -> Result<Tensor> {
    time(OpKind::Attention, || attention_reference(q, k, v, heads, scale))
}

/// The attention core in candle ops, sliced over batch × heads so that no score buffer exceeds
/// [`ATTENTION_SLICE_BYTES`]; the reference the kernels are tested against.
pub fn attention_reference(q: &Tensor, k: &Tensor, v: &Tensor, heads: usize, scale: f64) -> Result<Tensor> {
    let (b, n, c) = q.dims3()?;
    let head_dim = c / heads;
    let split = |t: &Tensor| -> Result<Tensor> {
        let (b, m, _) = t.dims3()?;
        t.reshape((b, m, heads, head_dim))?
            .transpose(1, 2)?
            .reshape((b * heads, m, head_dim))?
            .contiguous()
    };
    let (q, k, v) = (split(q)?, split(k)?, split(v)?);
    let m = k.dim(1)?;
    let rows = b * heads;
    let per_row = n * m * q.dtype().size_in_bytes() * 2;
    let slice = (ATTENTION_SLICE_BYTES / per_row.max(1)).clamp(1, rows);
    let kt = k.t()?;
    let mut outs = Vec::with_capacity(rows.div_ceil(slice));
    let mut start = 0;
    while start < rows {
        let len = slice.min(rows - start);
        let scores = (q.narrow(0, start, len)?.matmul(&kt.narrow(0, start, len)?)? * scale)?;
        let probs = candle_nn::ops::softmax_last_dim(&scores.to_dtype(DType::F32)?)?.to_dtype(q.dtype())?;
        outs.push(probs.matmul(&v.narrow(0, start, len)?)?);
        start += len;
    }
    Tensor::cat(&outs, 0)?
        .reshape((b, heads, n, head_dim))?
        .transpose(1, 2)?
        .reshape((b, n, c))
}
