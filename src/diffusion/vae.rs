//! KL autoencoder (SD's VAE): encode to the posterior mean/log-variance, decode latents to pixels.
//! Built from candle-transformers' public blocks so that the posterior moments are reachable.

use candle_core::{Module, Result, Tensor};
use candle_nn::{Conv2d, Conv2dConfig, GroupNorm, VarBuilder};
use candle_transformers::models::stable_diffusion::unet_2d_blocks::{
    DownEncoderBlock2D, DownEncoderBlock2DConfig, UNetMidBlock2D, UNetMidBlock2DConfig, UpDecoderBlock2D,
    UpDecoderBlock2DConfig,
};

use crate::models::config::VaeGeometry;

/// Groups of every GroupNorm in SD's VAE (LDM's `Normalize`).
const GROUPS: usize = 32;
/// Epsilon of every GroupNorm in SD's VAE.
const EPS: f64 = 1e-6;

fn mid_config() -> UNetMidBlock2DConfig {
    UNetMidBlock2DConfig {
        resnet_eps: EPS,
        resnet_groups: Some(GROUPS),
        attn_num_head_channels: None,
        ..UNetMidBlock2DConfig::default()
    }
}

fn conv3(vb: VarBuilder<'_>, i: usize, o: usize) -> Result<Conv2d> {
    candle_nn::conv2d(
        i,
        o,
        3,
        Conv2dConfig {
            padding: 1,
            ..Conv2dConfig::default()
        },
        vb,
    )
}

struct Encoder {
    conv_in: Conv2d,
    down: Vec<DownEncoderBlock2D>,
    mid: UNetMidBlock2D,
    norm_out: GroupNorm,
    conv_out: Conv2d,
}

struct Decoder {
    conv_in: Conv2d,
    mid: UNetMidBlock2D,
    up: Vec<UpDecoderBlock2D>,
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
                let cfg = DownEncoderBlock2DConfig {
                    num_layers: g.num_res_blocks,
                    resnet_eps: EPS,
                    resnet_groups: GROUPS,
                    add_downsample: i + 1 < chans.len(),
                    downsample_padding: 0,
                    ..DownEncoderBlock2DConfig::default()
                };
                DownEncoderBlock2D::new(e.pp("down_blocks").pp(i.to_string()), input, out, cfg)
            })
            .collect::<Result<Vec<_>>>()?;
        let encoder = Encoder {
            conv_in: conv3(e.pp("conv_in"), 3, chans[0])?,
            down,
            mid: UNetMidBlock2D::new(e.pp("mid_block"), last, None, mid_config())?,
            norm_out: candle_nn::group_norm(GROUPS, last, EPS, e.pp("conv_norm_out"))?,
            conv_out: conv3(e.pp("conv_out"), last, 2 * z)?,
        };

        let d = vb.pp("decoder");
        let rev: Vec<usize> = chans.iter().rev().copied().collect();
        let up = rev
            .iter()
            .enumerate()
            .map(|(i, &out)| {
                let input = if i == 0 { rev[0] } else { rev[i - 1] };
                let cfg = UpDecoderBlock2DConfig {
                    num_layers: g.num_res_blocks + 1,
                    resnet_eps: EPS,
                    resnet_groups: GROUPS,
                    add_upsample: i + 1 < rev.len(),
                    ..UpDecoderBlock2DConfig::default()
                };
                UpDecoderBlock2D::new(d.pp("up_blocks").pp(i.to_string()), input, out, cfg)
            })
            .collect::<Result<Vec<_>>>()?;
        let decoder = Decoder {
            conv_in: conv3(d.pp("conv_in"), z, last)?,
            mid: UNetMidBlock2D::new(d.pp("mid_block"), last, None, mid_config())?,
            up,
            norm_out: candle_nn::group_norm(GROUPS, chans[0], EPS, d.pp("conv_norm_out"))?,
            conv_out: conv3(d.pp("conv_out"), chans[0], 3)?,
        };
        let one = Conv2dConfig::default();
        Ok(Self {
            encoder,
            decoder,
            quant_conv: candle_nn::conv2d(2 * z, 2 * z, 1, one, vb.pp("quant_conv"))?,
            post_quant_conv: candle_nn::conv2d(z, z, 1, one, vb.pp("post_quant_conv"))?,
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
        let mut h = e.conv_in.forward(x)?;
        for block in &e.down {
            h = block.forward(&h)?;
        }
        let h = e.mid.forward(&h, None)?;
        let h = candle_nn::ops::silu(&e.norm_out.forward(&h)?)?;
        let moments = self.quant_conv.forward(&e.conv_out.forward(&h)?)?;
        let z = self.geometry.z_channels;
        Ok(Posterior {
            mean: moments.narrow(1, 0, z)?,
            logvar: moments.narrow(1, z, z)?.clamp(-30.0, 20.0)?,
        })
    }

    /// Decodes latents (already divided by the scale factor) to images in about [-1, 1].
    pub fn decode(&self, z: &Tensor) -> Result<Tensor> {
        let d = &self.decoder;
        let h = d.conv_in.forward(&self.post_quant_conv.forward(z)?)?;
        let mut h = d.mid.forward(&h, None)?;
        for block in &d.up {
            h = block.forward(&h)?;
        }
        let h = candle_nn::ops::silu(&d.norm_out.forward(&h)?)?;
        d.conv_out.forward(&h)
    }
}
