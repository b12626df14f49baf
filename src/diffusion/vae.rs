//! KL autoencoder (SD's VAE): encode to the posterior mean/log-variance, decode latents to pixels.
//! Owned block by block (diffusers names, LDM semantics) so that the posterior moments are reachable and every op is Easel's.

use candle_core::{D, Result, Tensor};
use candle_nn::{Conv2d, Conv2dConfig, Linear, VarBuilder};

use super::ops::{self, GroupNorm};
use crate::models::config::VaeGeometry;

/// Groups of every GroupNorm in SD's VAE (LDM's `Normalize`).
const GROUPS: usize = 32;
/// Epsilon of every GroupNorm in SD's VAE.
const EPS: f64 = 1e-6;

fn conv(vb: VarBuilder<'_>, i: usize, o: usize, k: usize, stride: usize, padding: usize) -> Result<Conv2d> {
    let cfg = Conv2dConfig {
        padding,
        stride,
        ..Conv2dConfig::default()
    };
    candle_nn::conv2d(i, o, k, cfg, vb)
}

fn conv3(vb: VarBuilder<'_>, i: usize, o: usize) -> Result<Conv2d> {
    conv(vb, i, o, 3, 1, 1)
}

/// LDM's `ResnetBlock` without a time embedding (diffusers `ResnetBlock2D`, output scale 1).
struct ResBlock {
    norm1: GroupNorm,
    conv1: Conv2d,
    norm2: GroupNorm,
    conv2: Conv2d,
    shortcut: Option<Conv2d>,
}

impl ResBlock {
    fn new(vb: &VarBuilder<'_>, input: usize, output: usize) -> Result<Self> {
        Ok(Self {
            norm1: GroupNorm::new(&vb.pp("norm1"), GROUPS, input, EPS)?,
            conv1: conv3(vb.pp("conv1"), input, output)?,
            norm2: GroupNorm::new(&vb.pp("norm2"), GROUPS, output, EPS)?,
            conv2: conv3(vb.pp("conv2"), output, output)?,
            shortcut: if input == output {
                None
            } else {
                Some(conv(vb.pp("conv_shortcut"), input, output, 1, 1, 0)?)
            },
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let h = ops::conv2d(&self.conv1, &self.norm1.forward(x, true)?)?;
        let h = ops::conv2d(&self.conv2, &self.norm2.forward(&h, true)?)?;
        match &self.shortcut {
            Some(s) => ops::add(&ops::conv2d(s, x)?, &h),
            None => ops::add(x, &h),
        }
    }
}

/// The single-head self-attention of the VAE's mid block (LDM `AttnBlock`, diffusers `Attention`).
struct AttnBlock {
    norm: GroupNorm,
    q: Linear,
    k: Linear,
    v: Linear,
    out: Linear,
}

/// A `channels`² projection. LDM stores it as a 1×1 convolution `[c, c, 1, 1]`; every Easel backend
/// (file loader, LoRA merge) hands out weights reshaped across unit dimensions, so it loads as `[c, c]`.
fn projection(vb: VarBuilder<'_>, channels: usize) -> Result<Linear> {
    candle_nn::linear(channels, channels, vb)
}

impl AttnBlock {
    fn new(vb: &VarBuilder<'_>, channels: usize) -> Result<Self> {
        let names = if vb.contains_tensor("to_q.weight") {
            ["to_q", "to_k", "to_v", "to_out.0"]
        } else {
            ["query", "key", "value", "proj_attn"]
        };
        Ok(Self {
            norm: GroupNorm::new(&vb.pp("group_norm"), GROUPS, channels, EPS)?,
            q: projection(vb.pp(names[0]), channels)?,
            k: projection(vb.pp(names[1]), channels)?,
            v: projection(vb.pp(names[2]), channels)?,
            out: projection(vb.pp(names[3]), channels)?,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (b, c, h, w) = x.dims4()?;
        let normed = self.norm.forward(x, false)?;
        let tokens = ops::layout(|| normed.reshape((b, c, h * w))?.transpose(1, 2)?.contiguous())?;
        let q = ops::linear(&self.q, &tokens)?;
        let k = ops::linear(&self.k, &tokens)?;
        let v = ops::linear(&self.v, &tokens)?;
        let y = ops::linear(&self.out, &ops::attention(&q, &k, &v, 1, (c as f64).powf(-0.5))?)?;
        let y = ops::layout(|| y.transpose(1, 2)?.reshape((b, c, h, w))?.contiguous())?;
        ops::add(&y, x)
    }
}

/// resnet → attention → resnet at the lowest resolution.
struct MidBlock {
    res1: ResBlock,
    attn: AttnBlock,
    res2: ResBlock,
}

impl MidBlock {
    fn new(vb: &VarBuilder<'_>, channels: usize) -> Result<Self> {
        Ok(Self {
            res1: ResBlock::new(&vb.pp("resnets").pp("0"), channels, channels)?,
            attn: AttnBlock::new(&vb.pp("attentions").pp("0"), channels)?,
            res2: ResBlock::new(&vb.pp("resnets").pp("1"), channels, channels)?,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.res2.forward(&self.attn.forward(&self.res1.forward(x)?)?)
    }
}

/// One resolution of the encoder or decoder: resnets, then an optional 2× resample.
struct Level {
    resnets: Vec<ResBlock>,
    resample: Option<Conv2d>,
}

impl Level {
    /// `layers` resnets from `input` to `output` channels under `vb.resnets`, and with `resample`
    /// the resampling convolution at `vb.{resample}.0.conv` (3×3, `stride`, `padding`).
    fn new(
        vb: &VarBuilder<'_>,
        layers: usize,
        input: usize,
        output: usize,
        resample: Option<(&str, usize, usize)>,
    ) -> Result<Self> {
        Ok(Self {
            resnets: (0..layers)
                .map(|i| {
                    let input = if i == 0 { input } else { output };
                    ResBlock::new(&vb.pp("resnets").pp(i.to_string()), input, output)
                })
                .collect::<Result<_>>()?,
            resample: resample
                .map(|(name, stride, padding)| {
                    conv(vb.pp(name).pp("0").pp("conv"), output, output, 3, stride, padding)
                })
                .transpose()?,
        })
    }

    fn resnets(&self, x: &Tensor) -> Result<Tensor> {
        let mut h = x.clone();
        for res in &self.resnets {
            h = res.forward(&h)?;
        }
        Ok(h)
    }

    /// Resnets, then the stride-2 convolution on the input padded by one on the right and bottom (LDM `Downsample`).
    fn forward_down(&self, x: &Tensor) -> Result<Tensor> {
        let h = self.resnets(x)?;
        match &self.resample {
            Some(down) => {
                let padded =
                    ops::layout(|| h.pad_with_zeros(D::Minus1, 0, 1)?.pad_with_zeros(D::Minus2, 0, 1))?;
                ops::conv2d(down, &padded)
            }
            None => Ok(h),
        }
    }

    /// Resnets, then nearest 2× upsampling and a 3×3 convolution (LDM `Upsample`).
    fn forward_up(&self, x: &Tensor) -> Result<Tensor> {
        let h = self.resnets(x)?;
        match &self.resample {
            Some(up) => {
                let (_, _, hh, ww) = h.dims4()?;
                ops::conv2d(up, &ops::layout(|| h.upsample_nearest2d(2 * hh, 2 * ww))?)
            }
            None => Ok(h),
        }
    }
}

struct Encoder {
    conv_in: Conv2d,
    down: Vec<Level>,
    mid: MidBlock,
    norm_out: GroupNorm,
    conv_out: Conv2d,
}

struct Decoder {
    conv_in: Conv2d,
    mid: MidBlock,
    up: Vec<Level>,
    norm_out: GroupNorm,
    conv_out: Conv2d,
}

/// The posterior of the encoder: per-latent Gaussian moments.
#[derive(Debug, Clone)]
pub struct Posterior {
    /// Mean `[b, z, h, w]`.
    pub mean: Tensor,
    /// Log-variance `[b, z, h, w]` (clamped to [-30, 20] as LDM does).
    pub logvar: Tensor,
}

/// SD's KL autoencoder.
pub struct Vae {
    encoder: Encoder,
    decoder: Decoder,
    quant_conv: Conv2d,
    post_quant_conv: Conv2d,
    geometry: VaeGeometry,
}

impl Vae {
    /// Builds the VAE from a `VarBuilder` in diffusers names.
    pub fn new(vb: &VarBuilder<'_>, g: &VaeGeometry) -> Result<Self> {
        let chans: Vec<usize> = g.ch_mult.iter().map(|m| g.ch * m).collect();
        let last = *chans
            .last()
            .ok_or_else(|| candle_core::Error::Msg("VAE has no levels".into()))?;
        let z = g.z_channels;

        let e = vb.pp("encoder");
        let down = chans
            .iter()
            .enumerate()
            .map(|(i, &out)| {
                let input = if i == 0 { chans[0] } else { chans[i - 1] };
                let resample = (i + 1 < chans.len()).then_some(("downsamplers", 2, 0));
                Level::new(
                    &e.pp("down_blocks").pp(i.to_string()),
                    g.num_res_blocks,
                    input,
                    out,
                    resample,
                )
            })
            .collect::<Result<Vec<_>>>()?;
        let encoder = Encoder {
            conv_in: conv3(e.pp("conv_in"), 3, chans[0])?,
            down,
            mid: MidBlock::new(&e.pp("mid_block"), last)?,
            norm_out: GroupNorm::new(&e.pp("conv_norm_out"), GROUPS, last, EPS)?,
            conv_out: conv3(e.pp("conv_out"), last, 2 * z)?,
        };

        let d = vb.pp("decoder");
        let rev: Vec<usize> = chans.iter().rev().copied().collect();
        let up = rev
            .iter()
            .enumerate()
            .map(|(i, &out)| {
                let input = if i == 0 { rev[0] } else { rev[i - 1] };
                let resample = (i + 1 < rev.len()).then_some(("upsamplers", 1, 1));
                Level::new(
                    &d.pp("up_blocks").pp(i.to_string()),
                    g.num_res_blocks + 1,
                    input,
                    out,
                    resample,
                )
            })
            .collect::<Result<Vec<_>>>()?;
        let decoder = Decoder {
            conv_in: conv3(d.pp("conv_in"), z, last)?,
            mid: MidBlock::new(&d.pp("mid_block"), last)?,
            up,
            norm_out: GroupNorm::new(&d.pp("conv_norm_out"), GROUPS, chans[0], EPS)?,
            conv_out: conv3(d.pp("conv_out"), chans[0], 3)?,
        };
        Ok(Self {
            encoder,
            decoder,
            quant_conv: conv(vb.pp("quant_conv"), 2 * z, 2 * z, 1, 1, 0)?,
            post_quant_conv: conv(vb.pp("post_quant_conv"), z, z, 1, 1, 0)?,
            geometry: g.clone(),
        })
    }

    /// Pixels per latent cell.
    pub fn downscale_factor(&self) -> usize {
        self.geometry.downscale_factor()
    }

    /// Encodes images in [-1, 1] `[b, 3, H, W]` to the posterior moments (before the latent scale factor).
    pub fn encode(&self, x: &Tensor) -> Result<Posterior> {
        let e = &self.encoder;
        let mut h = ops::conv2d(&e.conv_in, x)?;
        for level in &e.down {
            h = level.forward_down(&h)?;
        }
        let h = e.mid.forward(&h)?;
        let h = e.norm_out.forward(&h, true)?;
        let moments = ops::conv2d(&self.quant_conv, &ops::conv2d(&e.conv_out, &h)?)?;
        let z = self.geometry.z_channels;
        Ok(Posterior {
            mean: moments.narrow(1, 0, z)?,
            logvar: moments.narrow(1, z, z)?.clamp(-30.0, 20.0)?,
        })
    }

    /// Decodes latents (already divided by the scale factor) to images in about [-1, 1].
    pub fn decode(&self, z: &Tensor) -> Result<Tensor> {
        let d = &self.decoder;
        let h = ops::conv2d(&d.conv_in, &ops::conv2d(&self.post_quant_conv, z)?)?;
        let mut h = d.mid.forward(&h)?;
        for level in &d.up {
            h = level.forward_up(&h)?;
        }
        let h = d.norm_out.forward(&h, true)?;
        ops::conv2d(&d.conv_out, &h)
    }
}
