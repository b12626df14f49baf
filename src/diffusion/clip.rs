//! CLIP text transformer (transformers' `CLIPTextModel` layout) with A1111's clip skip.
//! Owned here rather than taken from candle-transformers so any geometry can be built and hidden states can be tapped.

use candle_core::{D, DType, Device, Module, Result, Tensor};
use candle_nn::{Embedding, LayerNorm, Linear, VarBuilder};

use super::ops::linear;
use crate::models::config::{ClipActivation, ClipConfig};

struct Attention {
    q: Linear,
    k: Linear,
    v: Linear,
    out: Linear,
    heads: usize,
}

impl Attention {
    fn new(vb: &VarBuilder<'_>, c: &ClipConfig) -> Result<Self> {
        let d = c.hidden_size;
        Ok(Self {
            q: candle_nn::linear(d, d, vb.pp("q_proj"))?,
            k: candle_nn::linear(d, d, vb.pp("k_proj"))?,
            v: candle_nn::linear(d, d, vb.pp("v_proj"))?,
            out: candle_nn::linear(d, d, vb.pp("out_proj"))?,
            heads: c.num_attention_heads,
        })
    }

    fn forward(&self, x: &Tensor, mask: &Tensor) -> Result<Tensor> {
        let (b, t, d) = x.dims3()?;
        let head_dim = d / self.heads;
        let split = |y: Tensor| {
            y.reshape((b, t, self.heads, head_dim))?
                .transpose(1, 2)?
                .contiguous()
        };
        let scale = (head_dim as f64).powf(-0.5);
        let q = split((linear(&self.q, x)? * scale)?)?;
        let k = split(linear(&self.k, x)?)?;
        let v = split(linear(&self.v, x)?)?;
        let scores = q.matmul(&k.t()?)?.broadcast_add(mask)?;
        let probs = candle_nn::ops::softmax_last_dim(&scores)?;
        let y = probs.matmul(&v)?.transpose(1, 2)?.reshape((b, t, d))?;
        linear(&self.out, &y)
    }
}

struct EncoderLayer {
    ln1: LayerNorm,
    attn: Attention,
    ln2: LayerNorm,
    fc1: Linear,
    fc2: Linear,
    activation: ClipActivation,
}

impl EncoderLayer {
    fn new(vb: &VarBuilder<'_>, c: &ClipConfig) -> Result<Self> {
        Ok(Self {
            ln1: candle_nn::layer_norm(c.hidden_size, c.layer_norm_eps, vb.pp("layer_norm1"))?,
            attn: Attention::new(&vb.pp("self_attn"), c)?,
            ln2: candle_nn::layer_norm(c.hidden_size, c.layer_norm_eps, vb.pp("layer_norm2"))?,
            fc1: candle_nn::linear(c.hidden_size, c.intermediate_size, vb.pp("mlp").pp("fc1"))?,
            fc2: candle_nn::linear(c.intermediate_size, c.hidden_size, vb.pp("mlp").pp("fc2"))?,
            activation: c.activation,
        })
    }

    fn forward(&self, x: &Tensor, mask: &Tensor) -> Result<Tensor> {
        let h = (x + self.attn.forward(&self.ln1.forward(x)?, mask)?)?;
        let m = linear(&self.fc1, &self.ln2.forward(&h)?)?;
        let m = match self.activation {
            ClipActivation::QuickGelu => (&m * candle_nn::ops::sigmoid(&(&m * 1.702)?)?)?,
            ClipActivation::Gelu => m.gelu_erf()?,
        };
        h + linear(&self.fc2, &m)?
    }
}

/// The text tower of CLIP: token ids → per-token embeddings used as cross-attention context.
pub struct ClipTextModel {
    token_embedding: Embedding,
    position_embedding: Tensor,
    layers: Vec<EncoderLayer>,
    final_layer_norm: LayerNorm,
    causal_mask: Tensor,
    config: ClipConfig,
}

impl ClipTextModel {
    /// Builds the model from a `VarBuilder` rooted where `text_model.` lives.
    pub fn new(vb: &VarBuilder<'_>, config: &ClipConfig) -> Result<Self> {
        let vb = vb.pp("text_model");
        let emb = vb.pp("embeddings");
        let token_embedding =
            candle_nn::embedding(config.vocab_size, config.hidden_size, emb.pp("token_embedding"))?;
        let position_embedding = emb
            .pp("position_embedding")
            .get((config.max_position_embeddings, config.hidden_size), "weight")?;
        let layers = (0..config.num_hidden_layers)
            .map(|i| EncoderLayer::new(&vb.pp("encoder").pp("layers").pp(i.to_string()), config))
            .collect::<Result<Vec<_>>>()?;
        let final_layer_norm = candle_nn::layer_norm(
            config.hidden_size,
            config.layer_norm_eps,
            vb.pp("final_layer_norm"),
        )?;
        let causal_mask = causal_mask(config.max_position_embeddings, vb.device(), vb.dtype())?;
        Ok(Self {
            token_embedding,
            position_embedding,
            layers,
            final_layer_norm,
            causal_mask,
            config: config.clone(),
        })
    }

    /// Geometry of this model.
    pub fn config(&self) -> &ClipConfig {
        &self.config
    }

    /// Encodes one chunk of token ids `[batch, seq]` into `[batch, seq, hidden]`.
    ///
    /// `clip_skip` = N follows A1111: N = 1 is the last layer's output; N > 1 takes
    /// `hidden_states[-N]` (stopping N − 1 layers early). The final layer norm is applied either way.
    pub fn forward(&self, ids: &Tensor, clip_skip: usize) -> Result<Tensor> {
        self.forward_with(ids, clip_skip, &[])
    }

    /// [`Self::forward`] with textual-inversion vectors: each `(offset, vectors [n, hidden])` replaces
    /// the token embeddings from position `offset + 1` (after the bos token), before the position
    /// embeddings are added (A1111's `EmbeddingsWithFixes`).
    pub fn forward_with(&self, ids: &Tensor, clip_skip: usize, fixes: &[(usize, Tensor)]) -> Result<Tensor> {
        let (_, seq) = ids.dims2()?;
        let run = self
            .layers
            .len()
            .checked_sub(clip_skip.max(1) - 1)
            .filter(|n| *n > 0)
            .ok_or_else(|| {
                candle_core::Error::Msg(format!(
                    "clip skip {clip_skip} is larger than the text encoder's {} layers",
                    self.layers.len()
                ))
            })?;
        let positions = self.position_embedding.narrow(0, 0, seq)?;
        let mut tokens = self.token_embedding.forward(ids)?;
        for (offset, vectors) in fixes {
            let start = offset + 1;
            if start >= seq {
                continue;
            }
            let n = vectors.dim(0)?.min(seq - start);
            let v = vectors
                .narrow(0, 0, n)?
                .to_dtype(tokens.dtype())?
                .to_device(tokens.device())?;
            let v = v
                .unsqueeze(0)?
                .broadcast_as((tokens.dim(0)?, n, tokens.dim(2)?))?;
            let head = tokens.narrow(1, 0, start)?;
            let tail = tokens.narrow(1, start + n, seq - start - n)?;
            tokens = Tensor::cat(&[&head, &v, &tail], 1)?;
        }
        let mut x = tokens.broadcast_add(&positions)?;
        let mask = self.causal_mask.narrow(0, 0, seq)?.narrow(1, 0, seq)?;
        for layer in &self.layers[..run] {
            x = layer.forward(&x, &mask)?;
        }
        self.final_layer_norm.forward(&x)
    }
}

fn causal_mask(n: usize, device: &Device, dtype: DType) -> Result<Tensor> {
    let values: Vec<f32> = (0..n)
        .flat_map(|i| (0..n).map(move |j| if j > i { f32::NEG_INFINITY } else { 0.0 }))
        .collect();
    Tensor::from_vec(values, (n, n), device)?.to_dtype(dtype)
}

/// Mean over all elements as f64 (used for A1111's emphasis mean restoration).
pub fn mean_all(t: &Tensor) -> Result<f64> {
    t.to_dtype(DType::F64)?
        .flatten_all()?
        .mean(D::Minus1)?
        .to_scalar::<f64>()
}
