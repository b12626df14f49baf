//! A1111's `CFGDenoiser` around the UNet: classifier-free guidance over `[cond, uncond]`, k-diffusion's
//! `CompVisDenoiser` scalings (or LCM's), inpainting-model conditioning and the per-step latent blend.

use candle_core::{DType, Tensor};

use super::DiffusionError;
use super::conditioning::Conditioning;
use super::controlnet::{ActiveControl, guidance_active};
use super::sampler::{Denoiser, EpsModel};
use super::schedule::{self, ModelSigmas};
use super::soft_inpaint;
use super::unet::Unet;
use crate::request::SoftInpainting;

/// Runs the UNet on `[cond, uncond]` (one batch when the lengths match, two calls otherwise), or
/// on `cond` alone when `uncond` is `None` (CFG scale 1). `image_cond` (inpainting models) is
/// concatenated to the input channels of every half.
#[allow(clippy::too_many_arguments)]
fn unet_cfg(
    unet: &Unet,
    x_in: &Tensor,
    t: f64,
    cond: &Tensor,
    uncond: Option<&Tensor>,
    image_cond: Option<&Tensor>,
    controls: &[&ActiveControl],
) -> Result<(Tensor, Option<Tensor>), DiffusionError> {
    let b = x_in.dim(0)?;
    // One UNet call on `x` (latents only) with `ctx`, whose first `cond_rows` rows are conditional;
    // the ControlNets see the latents without the inpainting channels.
    let call = |x: &Tensor, ctx: &Tensor, cond_rows: usize| -> Result<Tensor, DiffusionError> {
        let residuals = ActiveControl::residuals(controls, x, t, ctx, cond_rows)?;
        let x_full = match image_cond {
            Some(c) => {
                let c = c.to_dtype(x.dtype())?;
                let c = if c.dim(0)? == x.dim(0)? {
                    c
                } else {
                    c.repeat((x.dim(0)? / c.dim(0)?, 1, 1, 1))?
                };
                Tensor::cat(&[x, &c], 1)?
            }
            None => x.clone(),
        };
        Ok(unet
            .forward_with(&x_full, &[t], ctx, residuals.as_deref())?
            .to_dtype(DType::F32)?)
    };
    let Some(uncond) = uncond else {
        return Ok((call(x_in, cond, b)?, None));
    };
    if cond.dim(1)? == uncond.dim(1)? {
        let x2 = Tensor::cat(&[x_in, x_in], 0)?;
        let ctx = Tensor::cat(&[cond, uncond], 0)?;
        let eps = call(&x2, &ctx, b)?;
        Ok((eps.narrow(0, 0, b)?, Some(eps.narrow(0, b, b)?)))
    } else {
        let c = call(x_in, cond, b)?;
        let u = call(x_in, uncond, 0)?;
        Ok((c, Some(u)))
    }
}

/// A1111's `uncond + (cond − uncond)·cfg`; at CFG 1 (no unconditional pass) the conditional
/// output itself, which equals A1111's result up to the rounding of that expression.
fn combine(cond: Tensor, uncond: Option<Tensor>, cfg: f64) -> Result<Tensor, DiffusionError> {
    match uncond {
        Some(u) => Ok((&u + ((cond - &u)? * cfg)?)?),
        None => Ok(cond),
    }
}

/// k-diffusion's `CompVisDenoiser` (or A1111's LCM variant) inside A1111's `CFGDenoiser`.
pub(crate) struct CfgDenoiser<'a> {
    pub(crate) unet: &'a Unet,
    pub(crate) table: &'a ModelSigmas,
    pub(crate) lcm_grid: Option<ModelSigmas>,
    pub(crate) cond: &'a Conditioning,
    pub(crate) uncond: &'a Conditioning,
    pub(crate) cfg: f64,
    /// Skip the unconditional pass (set at CFG scale 1, where it cannot change the result).
    pub(crate) skip_uncond: bool,
    /// Keep the unconditional noise prediction of the last call (DDIM CFG++).
    pub(crate) keep_uncond: bool,
    pub(crate) last_uncond: Option<Tensor>,
    pub(crate) dtype: DType,
    pub(crate) evaluations: usize,
    /// Inpainting-model conditioning `[B, 5, h, w]` (mask + masked-image latents).
    pub(crate) image_cond: Option<Tensor>,
    /// Inpainting on a normal model: the original latents and the repaint mask (1 = repaint).
    pub(crate) blend: Option<LatentBlend>,
    /// ControlNet units.
    pub(crate) controls: &'a [ActiveControl],
    /// A1111's `state.sampling_steps` (steps; t_enc + 1 in img2img), for guidance start/end.
    pub(crate) sampling_steps: usize,
    /// A1111's `state.sampling_step` (see [`crate::diffusion::sampler::Denoiser::set_sampling_step`]).
    pub(crate) sampling_step: usize,
}

impl CfgDenoiser<'_> {
    /// The units whose guidance window holds the current sampling percentage.
    fn active_controls(&self) -> Vec<&ActiveControl> {
        let p = self.sampling_step as f64 / self.sampling_steps.max(1) as f64;
        self.controls
            .iter()
            .filter(|c| guidance_active(p, c.start, c.end))
            .collect()
    }
}

/// A1111's per-step inpainting blend: `init·(1 − m) + x·m` with the latent repaint mask `m`.
#[derive(Clone)]
pub struct LatentBlend {
    /// Original latents `[B, C, h, w]`.
    pub init: Tensor,
    /// Repaint mask (A1111's `nmask`), broadcastable to the latents.
    pub repaint: Tensor,
    /// Soft inpainting: the unrounded mask is raised to a per-step power and the vectors' lengths
    /// are blended separately (see [`super::soft_inpaint`]).
    pub soft: Option<SoftInpainting>,
}

impl LatentBlend {
    /// Keeps the original where the mask is 0.
    pub fn apply(&self, x: &Tensor) -> Result<Tensor, DiffusionError> {
        let keep = (1.0 - &self.repaint)?;
        Ok((self.init.broadcast_mul(&keep)? + x.broadcast_mul(&self.repaint)?)?)
    }

    /// The per-step blend at noise level `sigma` (the timestep itself for timestep samplers, as
    /// A1111 passes it): binary as [`Self::apply`], or soft inpainting's `latent_blend`.
    pub fn apply_at(&self, x: &Tensor, sigma: f32) -> Result<Tensor, DiffusionError> {
        match &self.soft {
            None => self.apply(x),
            Some(s) => {
                let t = soft_inpaint::step_mask(&self.repaint, sigma, s)?;
                soft_inpaint::latent_blend(&self.init, x, &t, s)
            }
        }
    }

    /// The blend after sampling: binary, or none with soft inpainting (A1111's `is_final_blend`).
    pub fn apply_final(&self, x: &Tensor) -> Result<Tensor, DiffusionError> {
        match self.soft {
            None => self.apply(x),
            Some(_) => Ok(x.clone()),
        }
    }
}

impl Denoiser for CfgDenoiser<'_> {
    fn denoise(&mut self, x: &Tensor, sigma: f32) -> Result<Tensor, DiffusionError> {
        let c_in = 1.0 / (sigma * sigma + 1.0).sqrt();
        let train_steps = self.table.alphas_cumprod().len();
        let t = match &self.lcm_grid {
            None => self.table.sigma_to_t(sigma),
            Some(grid) => {
                let skip = train_steps / schedule::LCM_ORIGINAL_STEPS;
                (grid.nearest_index(sigma) * skip + skip - 1) as f32
            }
        };
        let x_in = (x * f64::from(c_in))?.to_dtype(self.dtype)?;
        let (eps_c, eps_u) = unet_cfg(
            self.unet,
            &x_in,
            f64::from(t),
            self.cond.at(self.evaluations),
            (!self.skip_uncond).then(|| self.uncond.at(self.evaluations)),
            self.image_cond.as_ref(),
            &self.active_controls(),
        )?;
        self.evaluations += 1;
        let c_out = -f64::from(sigma);
        let lcm = self.lcm_grid.is_some();
        let x0 = |eps: Tensor| -> Result<Tensor, DiffusionError> {
            let d = (x + (eps * c_out)?)?;
            if !lcm {
                return Ok(d);
            }
            // LCM's consistency scalings with σ_data = 0.5 and the timestep ×10.
            let ts = f64::from(t) * 10.0;
            let c_skip = 0.25 / (ts * ts + 0.25);
            let c_out = ts / (ts * ts + 0.25).sqrt();
            Ok(((d * c_out)? + (x * c_skip)?)?)
        };
        let d_c = x0(eps_c)?;
        let d_u = eps_u.map(x0).transpose()?;
        let denoised = combine(d_c, d_u, self.cfg)?;
        match &self.blend {
            Some(blend) => blend.apply_at(&denoised, sigma),
            None => Ok(denoised),
        }
    }

    fn set_sampling_step(&mut self, step: usize) {
        self.sampling_step = step;
    }
}

impl EpsModel for CfgDenoiser<'_> {
    fn eps_at(&mut self, x: &Tensor, t: f64) -> Result<Tensor, DiffusionError> {
        // A1111's timestep samplers blend before the model call (`mask_before_denoising`): the model
        // sees the clean original latents outside the mask; the sampler's own x is not changed.
        let blended = self.blend.as_ref().map(|b| b.apply_at(x, t as f32)).transpose()?;
        let x_in = blended.as_ref().unwrap_or(x).to_dtype(self.dtype)?;
        let (e_c, e_u) = unet_cfg(
            self.unet,
            &x_in,
            t,
            self.cond.at(self.evaluations),
            (!self.skip_uncond).then(|| self.uncond.at(self.evaluations)),
            self.image_cond.as_ref(),
            &self.active_controls(),
        )?;
        self.evaluations += 1;
        if self.keep_uncond {
            self.last_uncond.clone_from(&e_u);
        }
        combine(e_c, e_u, self.cfg)
    }

    fn last_uncond_eps(&self) -> Option<Tensor> {
        self.last_uncond.clone()
    }

    fn set_sampling_step(&mut self, step: usize) {
        self.sampling_step = step;
    }
}
