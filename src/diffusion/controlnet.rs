//! ControlNet (Zhang et al. 2023; LDM `cldm.ControlNet`, diffusers `ControlNetModel`): a copy of the
//! UNet's encoder that also sees an embedded control image ("hint") and gives one residual per skip
//! connection plus one for the middle block, through 1×1 convolutions.
//!
//! How the residuals are scaled, when a unit is active and how several units add up follows
//! sd-webui-controlnet's hook; see [`ControlUnit`] and [`control_scales`].

use std::sync::Arc;

use candle_core::{DType, Device, Result, Tensor};
use candle_nn::{Conv2d, VarBuilder};

use super::DiffusionError;
use super::ops;
use super::unet::{Encoder, conv};
use crate::models::controlnet::{ControlGeometry, ControlNetFile};

/// The base of the extension's soft injection ("My prompt is more important"): residual `i` of `n`
/// is scaled by `0.825^(n−1−i)`, so the middle block keeps the full weight.
pub const SOFT_INJECTION_BASE: f64 = 0.825;

/// How a unit balances the prompt and the control (the extension's Control Mode).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ControlMode {
    /// Every residual at the unit's weight, on both halves of the CFG batch.
    #[default]
    Balanced,
    /// Soft injection: deeper skips weigh less.
    PromptMoreImportant,
    /// Soft injection, and no control on the unconditional half of the batch.
    ControlMoreImportant,
}

impl ControlMode {
    /// Every mode, in the extension's order.
    pub const ALL: [Self; 3] = [
        Self::Balanced,
        Self::PromptMoreImportant,
        Self::ControlMoreImportant,
    ];

    /// The label the extension shows and writes to the infotext.
    pub fn label(self) -> &'static str {
        match self {
            Self::Balanced => "Balanced",
            Self::PromptMoreImportant => "My prompt is more important",
            Self::ControlMoreImportant => "ControlNet is more important",
        }
    }

    /// From a label or a CLI name (`balanced`, `prompt`, `control`).
    pub fn from_name(s: &str) -> Option<Self> {
        let s = s.trim();
        Self::ALL
            .into_iter()
            .find(|m| m.label().eq_ignore_ascii_case(s))
            .or(match s.to_ascii_lowercase().as_str() {
                "balanced" | "0" => Some(Self::Balanced),
                "prompt" | "1" => Some(Self::PromptMoreImportant),
                "control" | "controlnet" | "2" => Some(Self::ControlMoreImportant),
                _ => None,
            })
    }
}

/// The per-residual scales of one unit with `n` residuals (the extension's rule for SD 1.5's 13,
/// right-aligned so that smaller geometries keep the middle block at full weight).
pub fn control_scales(weight: f64, mode: ControlMode, n: usize) -> Vec<f64> {
    (0..n)
        .map(|i| match mode {
            ControlMode::Balanced => weight,
            ControlMode::PromptMoreImportant | ControlMode::ControlMoreImportant => {
                weight * SOFT_INJECTION_BASE.powi(i32::try_from(n - 1 - i).unwrap_or(i32::MAX))
            }
        })
        .collect()
}

/// Whether a unit with guidance `start`..`end` runs at the extension's sampling percentage `p`.
pub fn guidance_active(p: f64, start: f64, end: f64) -> bool {
    !(p < start || p > end)
}

/// One ControlNet unit of a job, with its hint ready for the network.
#[derive(Clone)]
pub struct ActiveControl {
    /// The network.
    pub net: Arc<ControlNet>,
    /// The control image `[1, C, H, W]` (f32 on the model's device, values as the network sees
    /// them: an inpaint hint's masked pixels are already −1).
    pub hint: Tensor,
    /// Weight.
    pub weight: f64,
    /// Guidance start (fraction of the steps).
    pub start: f64,
    /// Guidance end.
    pub end: f64,
    /// Control mode.
    pub mode: ControlMode,
}

impl ActiveControl {
    /// Turns the extension's 4-channel inpaint hint (RGB + mask in [0, 1]) into what the network
    /// sees: `rgb·(1 − m) − m` with `m = mask > 0.5`. Other hints are returned as they are.
    pub fn inpaint_protocol(hint: &Tensor) -> Result<Tensor> {
        if hint.dim(1)? != 4 {
            return Ok(hint.clone());
        }
        let rgb = hint.narrow(1, 0, 3)?;
        let m = hint.narrow(1, 3, 1)?.gt(0.5)?.to_dtype(hint.dtype())?;
        rgb.broadcast_mul(&(1.0 - &m)?)?.broadcast_sub(&m)
    }

    /// The sum of the active units' scaled residuals for one UNet call on `x` `[B, 4, h, w]`
    /// whose first `cond_rows` rows are conditional (ControlNet is more important leaves the rest
    /// without control). `None` when no unit is active.
    pub fn residuals(
        units: &[&ActiveControl],
        x: &Tensor,
        t: f64,
        context: &Tensor,
        cond_rows: usize,
    ) -> Result<Option<Vec<Tensor>>> {
        let b = x.dim(0)?;
        let mut total: Option<Vec<Tensor>> = None;
        for unit in units {
            let hint = unit.hint.to_dtype(x.dtype())?.repeat((b, 1, 1, 1))?;
            let out = unit.net.forward(x, &[t], context, &hint)?;
            let scales = control_scales(unit.weight, unit.mode, out.len());
            let mark = if unit.mode == ControlMode::ControlMoreImportant && cond_rows < b {
                let rows: Vec<f32> = (0..b).map(|i| if i < cond_rows { 1.0 } else { 0.0 }).collect();
                Some(Tensor::from_vec(rows, (b, 1, 1, 1), x.device())?.to_dtype(x.dtype())?)
            } else {
                None
            };
            let scaled = out
                .into_iter()
                .zip(scales)
                .map(|(r, s)| {
                    let r = match &mark {
                        Some(m) => r.broadcast_mul(m)?,
                        None => r,
                    };
                    r * s
                })
                .collect::<Result<Vec<_>>>()?;
            total = Some(match total {
                None => scaled,
                Some(acc) => acc
                    .iter()
                    .zip(&scaled)
                    .map(|(a, s)| a + s)
                    .collect::<Result<_>>()?,
            });
        }
        Ok(total)
    }
}

/// The hint embedding: 3×3 convolutions with SiLU, every second one halving the size, to the UNet's
/// first width (`input_hint_block`).
struct HintEmbedding {
    convs: Vec<Conv2d>,
}

impl HintEmbedding {
    fn new(vb: &VarBuilder<'_>, g: &ControlGeometry) -> Result<Self> {
        let levels = &g.hint_levels;
        let mut convs = vec![conv(vb.pp("conv_in"), g.hint_channels, levels[0], 3, 1)?];
        for (i, pair) in levels.windows(2).enumerate() {
            let (a, b) = (pair[0], pair[1]);
            convs.push(conv(vb.pp("blocks").pp((2 * i).to_string()), a, a, 3, 1)?);
            convs.push(conv(vb.pp("blocks").pp((2 * i + 1).to_string()), a, b, 3, 2)?);
        }
        let last = *levels.last().unwrap_or(&levels[0]);
        convs.push(conv(vb.pp("conv_out"), last, g.unet.model_channels, 3, 1)?);
        Ok(Self { convs })
    }

    fn forward(&self, hint: &Tensor) -> Result<Tensor> {
        let mut h = hint.clone();
        let last = self.convs.len() - 1;
        for (i, c) in self.convs.iter().enumerate() {
            h = ops::conv2d(c, &h)?;
            if i < last {
                h = ops::silu(&h)?;
            }
        }
        Ok(h)
    }
}

/// A loaded ControlNet.
pub struct ControlNet {
    encoder: Encoder,
    hint: HintEmbedding,
    zero_convs: Vec<Conv2d>,
    mid_out: Conv2d,
    geometry: ControlGeometry,
}

impl ControlNet {
    /// Builds the network from a `VarBuilder` in diffusers `ControlNetModel` names.
    pub fn new(vb: &VarBuilder<'_>, g: &ControlGeometry) -> Result<Self> {
        let (encoder, skips) = Encoder::new(vb, &g.unet)?;
        let zero_convs = skips
            .iter()
            .enumerate()
            .map(|(i, &c)| conv(vb.pp("controlnet_down_blocks").pp(i.to_string()), c, c, 1, 1))
            .collect::<Result<Vec<_>>>()?;
        let mid = g.unet.model_channels * g.unet.channel_mult.last().copied().unwrap_or(1);
        Ok(Self {
            encoder,
            hint: HintEmbedding::new(&vb.pp("controlnet_cond_embedding"), g)?,
            zero_convs,
            mid_out: conv(vb.pp("controlnet_mid_block"), mid, mid, 1, 1)?,
            geometry: g.clone(),
        })
    }

    /// Loads a ControlNet file or folder onto `device` in `dtype`.
    ///
    /// # Errors
    /// The file cannot be opened, is not a ControlNet Easel runs, or a tensor is missing or misshapen.
    pub fn load(
        path: &std::path::Path,
        device: &Device,
        dtype: DType,
    ) -> std::result::Result<Self, DiffusionError> {
        let file = ControlNetFile::open(path)?;
        let (vb, errors) = file.var_builder(dtype, device);
        Self::new(&vb, &file.geometry)
            .map_err(|e| DiffusionError::Model(errors.explain(path, "the ControlNet", e)))
    }

    /// The network's geometry.
    pub fn geometry(&self) -> &ControlGeometry {
        &self.geometry
    }

    /// The residuals for `x` `[B, 4, h, w]` (the UNet's own input, without inpainting channels) and
    /// `hint` `[B, hint_channels, h·f, w·f]`: one per skip connection, then the middle block's.
    pub fn forward(
        &self,
        x: &Tensor,
        timesteps: &[f64],
        context: &Tensor,
        hint: &Tensor,
    ) -> Result<Vec<Tensor>> {
        let temb = self.encoder.time_embedding(timesteps, x.dim(0)?, x)?;
        let guided = self.hint.forward(&hint.to_dtype(x.dtype())?)?;
        let (xh, xw) = (x.dim(2)?, x.dim(3)?);
        if guided.dim(2)? != xh || guided.dim(3)? != xw {
            return Err(candle_core::Error::Msg(format!(
                "the control image embeds to {}x{} but the latents are {xw}x{xh}; its size must be the image's",
                guided.dim(3)?,
                guided.dim(2)?
            )));
        }
        let (mid, skips) = self.encoder.forward(x, &temb, context, Some(&guided))?;
        let mut out = skips
            .iter()
            .zip(&self.zero_convs)
            .map(|(s, c)| ops::conv2d(c, s))
            .collect::<Result<Vec<_>>>()?;
        out.push(ops::conv2d(&self.mid_out, &mid)?);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::{ControlMode, control_scales, guidance_active};

    #[test]
    fn soft_injection_is_right_aligned() {
        let s = control_scales(2.0, ControlMode::PromptMoreImportant, 13);
        assert!((s[12] - 2.0).abs() < 1e-12);
        assert!((s[0] - 2.0 * 0.825f64.powi(12)).abs() < 1e-12);
        let s5 = control_scales(1.0, ControlMode::ControlMoreImportant, 5);
        assert!((s5[4] - 1.0).abs() < 1e-12 && (s5[0] - 0.825f64.powi(4)).abs() < 1e-12);
        assert!(
            control_scales(0.5, ControlMode::Balanced, 13)
                .iter()
                .all(|&w| (w - 0.5).abs() < 1e-12)
        );
    }

    #[test]
    fn guidance_window_is_inclusive() {
        assert!(guidance_active(0.0, 0.0, 1.0));
        assert!(guidance_active(0.5, 0.0, 0.5));
        assert!(!guidance_active(4.0 / 6.0, 0.0, 0.5));
        assert!(!guidance_active(1.0 / 6.0, 0.2, 1.0));
    }

    #[test]
    fn mode_names() {
        for m in ControlMode::ALL {
            assert_eq!(ControlMode::from_name(m.label()), Some(m));
        }
        assert_eq!(
            ControlMode::from_name("control"),
            Some(ControlMode::ControlMoreImportant)
        );
        assert_eq!(
            ControlMode::from_name("prompt"),
            Some(ControlMode::PromptMoreImportant)
        );
        assert_eq!(ControlMode::from_name("x"), None);
    }
}
