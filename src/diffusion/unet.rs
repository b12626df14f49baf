//! The SD denoising UNet (diffusers `UNet2DConditionModel` layout, LDM semantics), owned here.
//! candle-transformers' version uses the tanh approximation of GELU in the feed-forward, which LDM
//! does not; owning the network also gives per-item timesteps and memory-bounded attention.

use candle_core::{DType, Result, Tensor};
use candle_nn::{Conv2d, Conv2dConfig, LayerNorm, Linear, VarBuilder};

use super::ops::{self, GroupNorm};
use crate::models::config::UnetGeometry;

/// GroupNorm groups everywhere in the SD UNet (LDM `normalization` = GroupNorm32).
const GROUPS: usize = 32;
/// Epsilon of the resnet GroupNorms and the output norm.
const RESNET_EPS: f64 = 1e-5;
/// Epsilon of the GroupNorm in front of each spatial transformer.
const TRANSFORMER_NORM_EPS: f64 = 1e-6;
/// Epsilon of the LayerNorms inside transformer blocks.
const LAYER_NORM_EPS: f64 = 1e-5;

pub(crate) fn conv(vb: VarBuilder<'_>, i: usize, o: usize, k: usize, stride: usize) -> Result<Conv2d> {
    let cfg = Conv2dConfig {
        padding: k / 2,
        stride,
        ..Conv2dConfig::default()
    };
    candle_nn::conv2d(i, o, k, cfg, vb)
}

/// Sinusoidal timestep features, cos first (diffusers `flip_sin_to_cos`, shift 0 = LDM `timestep_embedding`).
fn timestep_features(t: &[f64], dim: usize, device: &candle_core::Device) -> Result<Tensor> {
    let half = dim / 2;
    let freqs: Vec<f32> = (0..half)
        .map(|i| ((-(10000f32.ln())) * i as f32 / half as f32).exp())
        .collect();
    let mut out = Vec::with_capacity(t.len() * dim);
    for &ti in t {
        let ti = ti as f32;
        out.extend(freqs.iter().map(|f| (ti * f).cos()));
        out.extend(freqs.iter().map(|f| (ti * f).sin()));
    }
    Tensor::from_vec(out, (t.len(), dim), device)
}

struct ResBlock {
    norm1: GroupNorm,
    conv1: Conv2d,
    time_proj: Linear,
    norm2: GroupNorm,
    conv2: Conv2d,
    shortcut: Option<Conv2d>,
}

impl ResBlock {
    fn new(vb: &VarBuilder<'_>, input: usize, output: usize, temb: usize) -> Result<Self> {
        Ok(Self {
            norm1: GroupNorm::new(&vb.pp("norm1"), GROUPS, input, RESNET_EPS)?,
            conv1: conv(vb.pp("conv1"), input, output, 3, 1)?,
            time_proj: candle_nn::linear(temb, output, vb.pp("time_emb_proj"))?,
            norm2: GroupNorm::new(&vb.pp("norm2"), GROUPS, output, RESNET_EPS)?,
            conv2: conv(vb.pp("conv2"), output, output, 3, 1)?,
            shortcut: if input == output {
                None
            } else {
                Some(conv(vb.pp("conv_shortcut"), input, output, 1, 1)?)
            },
        })
    }

    fn forward(&self, x: &Tensor, temb_act: &Tensor) -> Result<Tensor> {
        let h = ops::conv2d(&self.conv1, &self.norm1.forward(x, true)?)?;
        // The time embedding is added per channel inside the second norm (h + t is used nowhere else).
        let t = ops::linear(&self.time_proj, temb_act)?;
        let h = ops::conv2d(&self.conv2, &self.norm2.forward_shifted(&h, &t, true)?)?;
        match &self.shortcut {
            Some(s) => ops::add(&ops::conv2d(s, x)?, &h),
            None => ops::add(x, &h),
        }
    }
}

struct Attention {
    q: Linear,
    k: Linear,
    v: Linear,
    out: Linear,
    heads: usize,
}

impl Attention {
    fn new(vb: &VarBuilder<'_>, query_dim: usize, context_dim: usize, heads: usize) -> Result<Self> {
        Ok(Self {
            q: candle_nn::linear_no_bias(query_dim, query_dim, vb.pp("to_q"))?,
            k: candle_nn::linear_no_bias(context_dim, query_dim, vb.pp("to_k"))?,
            v: candle_nn::linear_no_bias(context_dim, query_dim, vb.pp("to_v"))?,
            out: candle_nn::linear(query_dim, query_dim, vb.pp("to_out").pp("0"))?,
            heads,
        })
    }

    fn forward(&self, x: &Tensor, context: &Tensor) -> Result<Tensor> {
        let c = x.dim(2)?;
        let scale = ((c / self.heads) as f64).powf(-0.5);
        let q = ops::linear(&self.q, x)?;
        let k = ops::linear(&self.k, context)?;
        let v = ops::linear(&self.v, context)?;
        ops::linear(&self.out, &ops::attention(&q, &k, &v, self.heads, scale)?)
    }
}

struct TransformerBlock {
    norm1: LayerNorm,
    attn1: Attention,
    norm2: LayerNorm,
    attn2: Attention,
    norm3: LayerNorm,
    ff_in: Linear,
    ff_out: Linear,
}

impl TransformerBlock {
    fn new(vb: &VarBuilder<'_>, dim: usize, context_dim: usize, heads: usize) -> Result<Self> {
        let inner = dim * 4;
        Ok(Self {
            norm1: candle_nn::layer_norm(dim, LAYER_NORM_EPS, vb.pp("norm1"))?,
            attn1: Attention::new(&vb.pp("attn1"), dim, dim, heads)?,
            norm2: candle_nn::layer_norm(dim, LAYER_NORM_EPS, vb.pp("norm2"))?,
            attn2: Attention::new(&vb.pp("attn2"), dim, context_dim, heads)?,
            norm3: candle_nn::layer_norm(dim, LAYER_NORM_EPS, vb.pp("norm3"))?,
            ff_in: candle_nn::linear(dim, inner * 2, vb.pp("ff").pp("net").pp("0").pp("proj"))?,
            ff_out: candle_nn::linear(inner, dim, vb.pp("ff").pp("net").pp("2"))?,
        })
    }

    fn forward(&self, x: &Tensor, context: &Tensor) -> Result<Tensor> {
        let h = ops::layer_norm(&self.norm1, x)?;
        let x = ops::add(&self.attn1.forward(&h, &h)?, x)?;
        let x = ops::add(
            &self.attn2.forward(&ops::layer_norm(&self.norm2, &x)?, context)?,
            &x,
        )?;
        let proj = ops::linear(&self.ff_in, &ops::layer_norm(&self.norm3, &x)?)?;
        ops::add(&ops::linear(&self.ff_out, &ops::geglu(&proj)?)?, &x)
    }
}

enum Projection {
    Conv(Conv2d),
    Linear(Linear),
}

struct SpatialTransformer {
    norm: GroupNorm,
    proj_in: Projection,
    blocks: Vec<TransformerBlock>,
    proj_out: Projection,
}

impl SpatialTransformer {
    fn new(vb: &VarBuilder<'_>, channels: usize, g: &UnetGeometry, heads: usize) -> Result<Self> {
        let proj = |name: &str| -> Result<Projection> {
            Ok(if g.use_linear_projection {
                Projection::Linear(candle_nn::linear(channels, channels, vb.pp(name))?)
            } else {
                Projection::Conv(conv(vb.pp(name), channels, channels, 1, 1)?)
            })
        };
        Ok(Self {
            norm: GroupNorm::new(&vb.pp("norm"), GROUPS, channels, TRANSFORMER_NORM_EPS)?,
            proj_in: proj("proj_in")?,
            blocks: (0..g.transformer_depth)
                .map(|i| {
                    TransformerBlock::new(
                        &vb.pp("transformer_blocks").pp(i.to_string()),
                        channels,
                        g.context_dim,
                        heads,
                    )
                })
                .collect::<Result<_>>()?,
            proj_out: proj("proj_out")?,
        })
    }

    fn forward(&self, x: &Tensor, context: &Tensor) -> Result<Tensor> {
        let (b, c, h, w) = x.dims4()?;
        let normed = self.norm.forward(x, false)?;
        let to_tokens = |t: Tensor| ops::layout(|| t.reshape((b, c, h * w))?.transpose(1, 2)?.contiguous());
        let mut tokens = match &self.proj_in {
            Projection::Conv(p) => to_tokens(ops::conv2d(p, &normed)?)?,
            Projection::Linear(p) => ops::linear(p, &to_tokens(normed)?)?,
        };
        for block in &self.blocks {
            tokens = block.forward(&tokens, context)?;
        }
        let to_image = |t: Tensor| ops::layout(|| t.transpose(1, 2)?.reshape((b, c, h, w))?.contiguous());
        let out = match &self.proj_out {
            Projection::Conv(p) => ops::conv2d(p, &to_image(tokens)?)?,
            Projection::Linear(p) => to_image(ops::linear(p, &tokens)?)?,
        };
        ops::add(&out, x)
    }
}

struct Level {
    resnets: Vec<ResBlock>,
    attentions: Vec<SpatialTransformer>,
    resample: Option<Conv2d>,
}

/// The UNet's first half, shared with ControlNet: time embedding, input convolution, the down
/// levels and the middle block.
pub(crate) struct Encoder {
    time_linear_1: Linear,
    time_linear_2: Linear,
    conv_in: Conv2d,
    down: Vec<Level>,
    mid_res1: ResBlock,
    mid_attn: SpatialTransformer,
    mid_res2: ResBlock,
    model_channels: usize,
}

impl Encoder {
    /// Builds the encoder from diffusers names; also returns the channels of each skip connection
    /// (input convolution, every resnet, every downsampler), in order.
    pub(crate) fn new(vb: &VarBuilder<'_>, g: &UnetGeometry) -> Result<(Self, Vec<usize>)> {
        let mc = g.model_channels;
        let temb = mc * 4;
        let chans: Vec<usize> = g.channel_mult.iter().map(|m| mc * m).collect();
        let levels = chans.len();
        let last = *chans
            .last()
            .ok_or_else(|| candle_core::Error::Msg("UNet has no levels".into()))?;

        let mut down = Vec::with_capacity(levels);
        let mut skips = vec![mc];
        let mut ch = mc;
        for (i, &out) in chans.iter().enumerate() {
            let lvb = vb.pp("down_blocks").pp(i.to_string());
            let mut resnets = Vec::new();
            let mut attentions = Vec::new();
            for j in 0..g.num_res_blocks {
                resnets.push(ResBlock::new(
                    &lvb.pp("resnets").pp(j.to_string()),
                    ch,
                    out,
                    temb,
                )?);
                ch = out;
                if g.attention_levels[i] {
                    attentions.push(SpatialTransformer::new(
                        &lvb.pp("attentions").pp(j.to_string()),
                        out,
                        g,
                        g.heads[i],
                    )?);
                }
                skips.push(out);
            }
            let resample = if i + 1 < levels {
                skips.push(out);
                Some(conv(lvb.pp("downsamplers").pp("0").pp("conv"), out, out, 3, 2)?)
            } else {
                None
            };
            down.push(Level {
                resnets,
                attentions,
                resample,
            });
        }

        let mvb = vb.pp("mid_block");
        let encoder = Self {
            time_linear_1: candle_nn::linear(mc, temb, vb.pp("time_embedding").pp("linear_1"))?,
            time_linear_2: candle_nn::linear(temb, temb, vb.pp("time_embedding").pp("linear_2"))?,
            conv_in: conv(vb.pp("conv_in"), g.in_channels, mc, 3, 1)?,
            down,
            mid_res1: ResBlock::new(&mvb.pp("resnets").pp("0"), last, last, temb)?,
            mid_attn: SpatialTransformer::new(&mvb.pp("attentions").pp("0"), last, g, g.heads[levels - 1])?,
            mid_res2: ResBlock::new(&mvb.pp("resnets").pp("1"), last, last, temb)?,
            model_channels: mc,
        };
        Ok((encoder, skips))
    }

    /// The time embedding after the SiLU every resnet applies first, for a batch of `b`.
    pub(crate) fn time_embedding(&self, timesteps: &[f64], b: usize, x: &Tensor) -> Result<Tensor> {
        let t: Vec<f64> = match timesteps.len() {
            1 => vec![timesteps[0]; b],
            n if n == b => timesteps.to_vec(),
            n => {
                return Err(candle_core::Error::Msg(format!(
                    "{n} timesteps for a batch of {b}"
                )));
            }
        };
        let temb = timestep_features(&t, self.model_channels, x.device())?.to_dtype(x.dtype())?;
        let temb = ops::linear(
            &self.time_linear_2,
            &ops::silu(&ops::linear(&self.time_linear_1, &temb)?)?,
        )?;
        ops::silu(&temb)
    }

    /// Runs the down levels and the middle block; `added` (ControlNet's embedded hint) is added to
    /// the input convolution's output. Returns the middle block's output and the skips.
    pub(crate) fn forward(
        &self,
        x: &Tensor,
        temb: &Tensor,
        context: &Tensor,
        added: Option<&Tensor>,
    ) -> Result<(Tensor, Vec<Tensor>)> {
        let mut h = ops::conv2d(&self.conv_in, x)?;
        if let Some(a) = added {
            h = ops::add(&h, a)?;
        }
        let mut skips = vec![h.clone()];
        for level in &self.down {
            for (j, res) in level.resnets.iter().enumerate() {
                h = res.forward(&h, temb)?;
                if let Some(attn) = level.attentions.get(j) {
                    h = attn.forward(&h, context)?;
                }
                skips.push(h.clone());
            }
            if let Some(down) = &level.resample {
                h = ops::conv2d(down, &h)?;
                skips.push(h.clone());
            }
        }
        h = self.mid_res1.forward(&h, temb)?;
        h = self.mid_attn.forward(&h, context)?;
        h = self.mid_res2.forward(&h, temb)?;
        Ok((h, skips))
    }
}

/// Residuals added to a UNet call (ControlNet): one per skip connection, then one for the middle
/// block's output. Skips without one (a shorter list) are left alone.
pub type Residuals = [Tensor];

/// The SD UNet: (noisy latents, timesteps, text context) → predicted noise.
pub struct Unet {
    encoder: Encoder,
    up: Vec<Level>,
    norm_out: GroupNorm,
    conv_out: Conv2d,
}

impl Unet {
    /// Builds the UNet from a `VarBuilder` in diffusers names.
    pub fn new(vb: &VarBuilder<'_>, g: &UnetGeometry) -> Result<Self> {
        let (encoder, mut skips) = Encoder::new(vb, g)?;
        let mc = g.model_channels;
        let temb = mc * 4;
        let chans: Vec<usize> = g.channel_mult.iter().map(|m| mc * m).collect();
        let levels = chans.len();
        let mut ch = chans[levels - 1];

        let mut up = Vec::with_capacity(levels);
        for i in 0..levels {
            let level = levels - 1 - i;
            let out = chans[level];
            let lvb = vb.pp("up_blocks").pp(i.to_string());
            let mut resnets = Vec::new();
            let mut attentions = Vec::new();
            for j in 0..=g.num_res_blocks {
                let skip = skips
                    .pop()
                    .ok_or_else(|| candle_core::Error::Msg("UNet skip bookkeeping".into()))?;
                resnets.push(ResBlock::new(
                    &lvb.pp("resnets").pp(j.to_string()),
                    ch + skip,
                    out,
                    temb,
                )?);
                ch = out;
                if g.attention_levels[level] {
                    attentions.push(SpatialTransformer::new(
                        &lvb.pp("attentions").pp(j.to_string()),
                        out,
                        g,
                        g.heads[level],
                    )?);
                }
            }
            let resample = if i + 1 < levels {
                Some(conv(lvb.pp("upsamplers").pp("0").pp("conv"), out, out, 3, 1)?)
            } else {
                None
            };
            up.push(Level {
                resnets,
                attentions,
                resample,
            });
        }

        Ok(Self {
            encoder,
            up,
            norm_out: GroupNorm::new(&vb.pp("conv_norm_out"), GROUPS, chans[0], RESNET_EPS)?,
            conv_out: conv(vb.pp("conv_out"), chans[0], g.out_channels, 3, 1)?,
        })
    }

    /// Predicts the noise in `x` `[B, C, h, w]`. `timesteps` holds one value for the whole batch or one per item.
    ///
    /// When a level's size is odd, the upsampler resizes to the skip connection's size (diffusers'
    /// behaviour; A1111 upsamples ×2 and then crops by nearest resize).
    pub fn forward(&self, x: &Tensor, timesteps: &[f64], context: &Tensor) -> Result<Tensor> {
        self.forward_with(x, timesteps, context, None)
    }

    /// [`Self::forward`] with ControlNet residuals added to the skips and the middle block's
    /// output, as sd-webui-controlnet's hook does.
    pub fn forward_with(
        &self,
        x: &Tensor,
        timesteps: &[f64],
        context: &Tensor,
        residuals: Option<&Residuals>,
    ) -> Result<Tensor> {
        let temb = self.encoder.time_embedding(timesteps, x.dim(0)?, x)?;
        let (mut h, mut skips) = self.encoder.forward(x, &temb, context, None)?;
        if let Some(res) = residuals {
            let Some((mid, per_skip)) = res.split_last() else {
                return Err(candle_core::Error::Msg("empty ControlNet residuals".into()));
            };
            if per_skip.len() != skips.len() {
                return Err(candle_core::Error::Msg(format!(
                    "the ControlNet gives {} skip residuals, the UNet has {} skips",
                    per_skip.len(),
                    skips.len()
                )));
            }
            h = ops::add(&h, mid)?;
            for (s, r) in skips.iter_mut().zip(per_skip) {
                *s = ops::add(s, r)?;
            }
        }
        let temb = &temb;
        for level in &self.up {
            for (j, res) in level.resnets.iter().enumerate() {
                let skip = skips
                    .pop()
                    .ok_or_else(|| candle_core::Error::Msg("UNet skip bookkeeping".into()))?;
                h = res.forward(&ops::layout(|| Tensor::cat(&[&h, &skip], 1))?, temb)?;
                if let Some(attn) = level.attentions.get(j) {
                    h = attn.forward(&h, context)?;
                }
            }
            if let Some(up) = &level.resample {
                let (th, tw) = match skips.last() {
                    Some(s) => (s.dim(2)?, s.dim(3)?),
                    None => (h.dim(2)? * 2, h.dim(3)? * 2),
                };
                h = ops::conv2d(up, &ops::layout(|| h.upsample_nearest2d(th, tw))?)?;
            }
        }
        let h = self.norm_out.forward(&h, true)?;
        ops::conv2d(&self.conv_out, &h)
    }
}

/// Rough peak working memory of one UNet call on `batch` latents of `h`×`w`: the first level's
/// activations and skips (about 40 live tensors of `[batch, C, h, w]`) plus the first level's
/// attention scratch (8 heads; see [`ops::attention_scratch_bytes`]).
pub fn working_memory_bytes(
    g: &UnetGeometry,
    batch: usize,
    h: usize,
    w: usize,
    dtype: DType,
    cpu: bool,
) -> u64 {
    let elem = dtype.size_in_bytes() as u64;
    let level0 = (batch * g.model_channels * h * w) as u64 * elem;
    40 * level0 + ops::attention_scratch_bytes(batch * 8, h * w, h * w, dtype, cpu)
}

#[cfg(test)]
mod tests {
    use candle_core::DType;

    use super::working_memory_bytes;
    use crate::models::config::Geometry;

    #[test]
    fn working_memory_counts_score_matrices_only_where_they_exist() {
        let g = Geometry::sd15().unet;
        let gib = |b: u64| b as f64 / f64::from(1u32 << 30);
        // A 2048² image (256² latents), CFG batch 2: the CPU kernel keeps no 65536² score matrix.
        let cpu = working_memory_bytes(&g, 2, 256, 256, DType::F32, true);
        let sliced = working_memory_bytes(&g, 2, 256, 256, DType::F32, false);
        assert!(gib(cpu) < 7.0, "{:.1} GiB on the CPU", gib(cpu));
        assert!(
            gib(sliced) - gib(cpu) > 30.0,
            "one 65536² f32 score row pair is 32 GiB"
        );
        // 512²: both are a few hundred MiB to about a GiB.
        assert!(working_memory_bytes(&g, 2, 64, 64, DType::F32, true) < 1 << 30);
    }
}
