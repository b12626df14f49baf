//! One generation, start to finish, with A1111 v1.10 semantics: check the request, encode the
//! prompts, sample every batch iteration, decode, composite over the original, render the infotext.
//! The CLI, the GUI (through the engine) and the tests all run this; observers see every step.

use std::sync::Arc;

use candle_core::{DType, Device, Tensor};

use super::DiffusionError;
use super::brownian::BrownianNoise;
use super::conditioning::{Conditioning, encode_scheduled};
use super::controlnet::{ActiveControl, ControlNet};
use super::denoiser::{CfgDenoiser, LatentBlend};
use super::img2img::{self, Start, img2img_t_enc};
use super::model::SdModel;
use super::noise::{BatchNoise, batch_seeds, first_noise, latent_shape, rng_kind};
use super::sampler::{self, NoiseSource};
use super::schedule::{self, ModelSigmas, ScheduleOptions, sigmas_with};
use super::unet as unet_mod;
use crate::imaging::ops::HintResize;
use crate::infotext;
use crate::infotext::controlnet::ControlInfo;
use crate::params::{GenerationParams, Sampler, Schedule};
use crate::prompt::ClipTokenizer;
use crate::request::{ControlUnit, GeneratedImage, InitImage, StepInfo};

/// Receives what the pipeline produces. Returning an error from `on_step` stops the job.
pub trait Observer {
    /// After each sampler step; `x0` is the current prediction of the clean latents (what previews show).
    fn on_step(&mut self, info: StepInfo, x0: &Tensor) -> Result<(), DiffusionError>;
    /// Each finished image, as soon as it is decoded.
    fn on_image(&mut self, image: &GeneratedImage);
    /// Something the user should know that did not stop the job.
    fn on_warning(&mut self, message: &str);
}

/// Largest CFG scale magnitude a job accepts: beyond it the guidance only amplifies rounding noise
/// into infinities.
pub const MAX_CFG_SCALE: f32 = 100.0;

/// Checks a request against the model before any work starts.
pub fn validate(params: &GenerationParams, model: &SdModel) -> Result<(), DiffusionError> {
    let bad = |m: String| Err(DiffusionError::Input(m));
    if params.steps == 0 {
        return bad("steps must be at least 1".into());
    }
    if params.steps > 1000 {
        return bad(format!(
            "steps {} is more than the model's 1000 training timesteps",
            params.steps
        ));
    }
    if !params.width.is_multiple_of(8) || !params.height.is_multiple_of(8) {
        return bad(format!(
            "size {}x{} is not a multiple of 8; try {}x{}",
            params.width,
            params.height,
            params.width / 8 * 8,
            params.height / 8 * 8
        ));
    }
    let f = model.vae.downscale_factor() as u32;
    if params.width < 64 || params.height < 64 {
        return bad(format!(
            "size {}x{} is too small; the minimum is 64x64",
            params.width, params.height
        ));
    }
    if params.width > 8192 || params.height > 8192 {
        return bad(format!(
            "size {}x{} is larger than 8192 pixels on a side",
            params.width, params.height
        ));
    }
    if params.batch_size == 0 || params.batch_count == 0 {
        return bad("batch count and batch size must be at least 1".into());
    }
    if params.batch_size > 64 || params.image_count() > 10_000 {
        return bad(format!(
            "batch size {} × batch count {} is too many images; at most 64 per batch and 10000 in one job",
            params.batch_size, params.batch_count
        ));
    }
    if !params.cfg_scale.is_finite() || params.cfg_scale.abs() > MAX_CFG_SCALE {
        return bad(format!(
            "CFG scale {} is outside -{MAX_CFG_SCALE}…{MAX_CFG_SCALE} (A1111's slider goes to 30; 4–12 is usual)",
            params.cfg_scale
        ));
    }
    let layers = model.clip.config().num_hidden_layers as u32;
    if params.clip_skip == 0 || params.clip_skip > layers {
        return bad(format!(
            "clip skip must be between 1 and {layers} (the text encoder's layer count)"
        ));
    }
    let needed = unet_mod::working_memory_bytes(
        &model.geometry().unet,
        2 * params.batch_size as usize,
        (params.height / f) as usize,
        (params.width / f) as usize,
        model.dtype,
        model.device.is_cpu(),
    ) + model.vae_decode_memory_bytes(params.height as usize, params.width as usize);
    if let Some(avail) = model
        .device
        .is_cpu()
        .then(crate::system::available_memory_bytes)
        .flatten()
        && needed > avail
    {
        let gib = |b: u64| b as f64 / f64::from(1u32 << 30);
        return bad(format!(
            "{}x{} needs about {:.1} GiB of working memory but only {:.1} GiB of memory is available; choose a smaller size or batch size",
            params.width,
            params.height,
            gib(needed),
            gib(avail)
        ));
    }
    Ok(())
}

/// Result of one batch iteration, before decoding.
pub struct SampledBatch {
    /// Final latents `[B, C, h, w]`, f32.
    pub latents: Tensor,
    /// The first noise draw `[B, C, h, w]`.
    pub noise: Tensor,
    /// UNet evaluations (each CFG batch counts once).
    pub evaluations: usize,
}

/// Samples one batch iteration's latents. `on_step` gets (step, steps, x0 prediction) after each step.
pub fn sample_batch(
    model: &SdModel,
    cond: &Conditioning,
    uncond: &Conditioning,
    params: &GenerationParams,
    seeds: Vec<u64>,
    start: &Start,
    mut on_step: impl FnMut(usize, usize, &Tensor) -> Result<(), DiffusionError>,
) -> Result<SampledBatch, DiffusionError> {
    let shape = latent_shape(model, params);
    let b = seeds.len();
    let mut noise = BatchNoise::new(
        rng_kind(params.rng),
        seeds,
        params.eta_noise_seed_delta,
        shape,
        &model.device,
    );
    let first = noise.next_noise()?;
    let repeat = |t: &Tensor| t.repeat((b, 1, 1));
    // Where NaN or infinity first appears names its cause: the text conditioning (an emphasis
    // weight like `(word:1e400)`, or a broken text encoder / embedding) before any UNet call.
    for (which, c) in [("prompt", cond), ("negative prompt", uncond)] {
        if !c.is_finite()? {
            return Err(DiffusionError::Input(format!(
                "the {which}'s text conditioning holds NaN or infinite values: an emphasis weight `(word:N)` or a LoRA weight is \
                 too large to represent, or the text encoder or an embedding in it is broken"
            )));
        }
    }
    let cond = cond.map(repeat)?;
    let uncond = uncond.map(repeat)?;
    let batch = |t: &Tensor| -> Result<Tensor, DiffusionError> {
        Ok(t.to_device(&model.device)?
            .to_dtype(DType::F32)?
            .repeat((b, 1, 1, 1))?)
    };
    let init = start.image.as_ref().map(|(t, _)| batch(t)).transpose()?;
    let blend = match (&init, &start.repaint) {
        (Some(init), Some(mask)) => Some(LatentBlend {
            init: init.clone(),
            repaint: batch(mask)?,
            soft: start.soft,
        }),
        _ => None,
    };
    let cfgpp = params.sampler == Sampler::DdimCfgPp;
    let mut denoiser = CfgDenoiser {
        unet: &model.unet,
        table: &model.sigmas,
        lcm_grid: (params.sampler == Sampler::Lcm)
            .then(|| ModelSigmas::lcm_grid(model.sigmas.alphas_cumprod())),
        cond: &cond,
        uncond: &uncond,
        // DDIM CFG++ maps CFG 0…12.5 to 0…1 (A1111's cond_scale_miltiplier).
        cfg: if cfgpp {
            f64::from(params.cfg_scale) * (1.0 / 12.5)
        } else {
            f64::from(params.cfg_scale)
        },
        // A1111 v1.10 always runs the unconditional half; at CFG 1 it cannot change the result
        // (uncond + (cond − uncond)·1 = cond up to rounding), so Easel runs batch 1 instead of 2.
        // DDIM CFG++ needs the unconditional prediction itself.
        skip_uncond: params.cfg_scale == 1.0 && !cfgpp,
        keep_uncond: cfgpp,
        last_uncond: None,
        dtype: model.dtype,
        evaluations: 0,
        image_cond: start.image_cond.as_ref().map(batch).transpose()?,
        blend: blend.clone(),
        controls: &start.controls,
        // A1111's launch_sampling(steps), or (t_enc + 1) in img2img.
        sampling_steps: match &start.image {
            Some((_, strength)) => img2img_t_enc(*strength, params.steps as usize) + 1,
            None => params.steps as usize,
        },
        sampling_step: 0,
    };
    let steps = params.steps as usize;
    let mut callback = |i: usize, total: usize, _x: &Tensor, x0: &Tensor| {
        if !super::all_finite(x0)? {
            return Err(DiffusionError::Input(format!(
                "the UNet's prediction at step {}/{total} holds NaN or infinite values (the \
                 conditioning was finite): the checkpoint's weights are broken, or a LoRA's weight is \
                 far too large; the job stopped instead of saving a black image",
                i + 1
            )));
        }
        on_step(i + 1, total, x0)
    };
    let mut latents = if params.sampler == Sampler::Tcd {
        let gamma = infotext::read_tcd_gamma(&params.extra).map_err(DiffusionError::Input)?;
        let alphas = model.sigmas.alphas_cumprod().to_vec();
        let timesteps = schedule::tcd_timesteps(steps, alphas.len()).ok_or_else(|| {
            DiffusionError::Input(format!(
                "TCD runs 1 to {} steps (its distillation grid), not {steps}",
                schedule::TCD_ORIGINAL_STEPS
            ))
        })?;
        // diffusers' img2img (StableDiffusionImg2ImgPipeline.get_timesteps): skip the first
        // steps − ⌊steps·strength⌋ timesteps and noise the image latents to the next one.
        let (x, start) = match (&init, &start.image) {
            (Some(init), Some((_, strength))) => {
                let skip = steps - tcd_init_steps(*strength, steps);
                if skip >= steps {
                    return Err(DiffusionError::Input(format!(
                        "a denoising strength of {strength} leaves TCD no step of {steps}: raise it"
                    )));
                }
                let a = alphas[timesteps[skip]];
                let x = ((init * f64::from(a.sqrt()))? + (&first * f64::from((1.0 - a).sqrt()))?)?;
                (x, skip)
            }
            _ => (first.clone(), 0),
        };
        sampler::sample_tcd(
            &mut denoiser,
            x,
            &timesteps[start..],
            &alphas,
            gamma,
            &mut noise,
            &mut callback,
        )?
    } else if params.sampler.uses_timesteps() {
        let timesteps = schedule::ddim_timesteps(steps, model.sigmas.alphas_cumprod().len());
        let alphas = model.sigmas.alphas_cumprod().to_vec();
        // A1111's timestep img2img: noise to timesteps[t_enc], then run over timesteps[..t_enc].
        let (x, timesteps) = match (&init, &start.image) {
            (Some(init), Some((_, strength))) => {
                let t_enc = img2img_t_enc(*strength, steps).min(timesteps.len() - 1);
                let a = alphas[timesteps[t_enc]];
                let x = ((init * f64::from(a.sqrt()))? + (&first * f64::from((1.0 - a).sqrt()))?)?;
                (x, &timesteps[..t_enc])
            }
            _ => (first.clone(), &timesteps[..]),
        };
        match params.sampler {
            Sampler::Plms => sampler::sample_plms(&mut denoiser, x, timesteps, &alphas, &mut callback)?,
            Sampler::UniPc => {
                let options = infotext::read_unipc_options(&params.extra).map_err(DiffusionError::Input)?;
                // sd_samplers_timesteps_impl.unipc: as many steps as timesteps; img2img starts at
                // timesteps[t_enc − 1]/1000 + 1/1000 (A1111's own comment calls it "likely off by a
                // bit": the latents were noised to timesteps[t_enc]).
                let t_start = (init.is_some() && start.image.is_some())
                    .then(|| {
                        timesteps
                            .last()
                            .map(|&t| t as f32 / 1000.0 + (1.0f64 / 1000.0) as f32)
                    })
                    .flatten();
                sampler::sample_unipc(
                    &mut denoiser,
                    x,
                    &alphas,
                    timesteps.len(),
                    t_start,
                    options,
                    &mut callback,
                )?
            }
            Sampler::DdimCfgPp => {
                sampler::sample_ddim_cfgpp(&mut denoiser, x, timesteps, &alphas, &mut noise, &mut callback)?
            }
            _ => sampler::sample_ddim(&mut denoiser, x, timesteps, &alphas, &mut noise, &mut callback)?,
        }
    } else {
        let options = ScheduleOptions {
            beta: infotext::read_beta_schedule(&params.extra),
        };
        let sigmas = sigmas_with(params.sampler, params.schedule, steps, &model.sigmas, options);
        // img2img: run the last t_enc + 1 steps of the full schedule from the noised image latents.
        let img2img = matches!((&init, &start.image), (Some(_), Some(_)));
        let (x, sched) = if let (Some(init), Some((_, strength))) = (&init, &start.image) {
            let cut = (steps - img2img_t_enc(*strength, steps) - 1).min(sigmas.len() - 1);
            let sched = &sigmas[cut..];
            ((init + (&first * f64::from(sched[0]))?)?, sched)
        } else {
            ((&first * f64::from(sigmas[0]))?, &sigmas[..])
        };
        match params.sampler {
            Sampler::DpmFast | Sampler::DpmAdaptive => {
                // A1111 hands these the model's σ range (txt2img) or the img2img schedule's ends.
                let range = if img2img && sched.len() >= 2 {
                    (sched[sched.len() - 2], sched[0])
                } else {
                    (model.sigmas.sigma_min(), model.sigmas.sigma_max())
                };
                let n = if img2img { sched.len() - 1 } else { steps };
                sampler::sample_dpm_solver(
                    params.sampler,
                    &mut denoiser,
                    x,
                    range,
                    n,
                    &mut noise,
                    &mut callback,
                )?
            }
            s if s.uses_brownian_noise() => {
                // A1111's create_noise_sampler: one tree per image seed over the whole schedule's
                // positive σ range, drawing with the job's RNG setting.
                let lo = sigmas
                    .iter()
                    .copied()
                    .filter(|&s| s > 0.0)
                    .fold(f32::INFINITY, f32::min);
                let hi = sigmas.iter().copied().fold(0.0f32, f32::max);
                let mut brownian =
                    BrownianNoise::new(rng_kind(params.rng), noise.seeds(), lo, hi, shape, &model.device);
                sampler::sample_sde(s, &mut denoiser, x, sched, &mut brownian, &mut callback)?
            }
            _ => sampler::sample_k(params.sampler, &mut denoiser, x, sched, &mut noise, &mut callback)?,
        }
    };
    if let Some(blend) = &blend {
        latents = blend.apply_final(&latents)?;
    }
    Ok(SampledBatch {
        latents,
        noise: first,
        evaluations: denoiser.evaluations,
    })
}

/// diffusers' img2img step count `int(steps · strength)` (at most `steps`), with the strength read
/// through its shortest decimal form as Python holds it.
fn tcd_init_steps(strength: f32, steps: usize) -> usize {
    let strength: f64 = strength.to_string().parse().unwrap_or(0.0);
    ((steps as f64 * strength) as usize).min(steps)
}

/// Sets the infotext keys that depend on the schedule: A1111 writes `Beta schedule alpha`/`beta`
/// (its settings, A1111's defaults unless the parameters name others) when the Beta schedule is
/// used, and nothing otherwise.
pub fn write_schedule_keys(params: &mut GenerationParams) {
    let beta = (!params.sampler.uses_timesteps()
        && params.sampler.resolved_schedule(params.schedule) == Schedule::Beta)
        .then(|| infotext::read_beta_schedule(&params.extra));
    infotext::write_beta_schedule(&mut params.extra, beta);
}

/// Decodes latents `[B, C, h, w]` to RGB8 images, A1111's way (clamp, ×255, truncate), with
/// the model's TAESD decoder when one is set. Falls back to an f32 VAE when a half-precision decode produces NaN.
pub fn decode_rgb(
    model: &SdModel,
    latents: &Tensor,
    observer: &mut dyn Observer,
) -> Result<Vec<Vec<u8>>, DiffusionError> {
    quantize(&decode_unit(model, latents, observer)?)
}

/// A1111's `255·x` truncated to u8, HWC, per image of `[B, 3, H, W]` values in [0, 1].
fn quantize(pixels: &Tensor) -> Result<Vec<Vec<u8>>, DiffusionError> {
    let pixels = (pixels * 255.0)?;
    let (b, _, h, w) = pixels.dims4()?;
    let hwc = pixels
        .permute((0, 2, 3, 1))?
        .contiguous()?
        .to_device(&Device::Cpu)?;
    let flat = hwc.flatten_all()?.to_vec1::<f32>()?;
    let per = h * w * 3;
    Ok((0..b)
        .map(|i| flat[i * per..(i + 1) * per].iter().map(|v| *v as u8).collect())
        .collect())
}

/// Decodes latents to `[B, 3, H, W]` f32 in [0, 1] (A1111's clamp((x + 1) / 2)).
fn decode_unit(
    model: &SdModel,
    latents: &Tensor,
    observer: &mut dyn Observer,
) -> Result<Tensor, DiffusionError> {
    if let Some(tiny) = &model.tiny_decoder {
        // TAESD reads the diffusion latents as they are (its scale factor is 1); its output is
        // converted as `taesd::to_rgb8` does.
        let pixels = tiny.decode(latents)?.to_dtype(DType::F32)?;
        return Ok(((pixels + 1.0)? / 2.0)?.clamp(0f32, 1f32)?);
    }
    let scale = 1.0 / model.geometry().schedule.scale_factor;
    let z = (latents * scale)?;
    let mut pixels = model
        .vae
        .decode(&z.to_dtype(model.dtype)?)?
        .to_dtype(DType::F32)?;
    let has_nan = pixels
        .ne(&pixels)?
        .to_dtype(DType::F32)?
        .sum_all()?
        .to_scalar::<f32>()?
        > 0.0;
    if has_nan {
        if model.dtype == DType::F32 {
            return Err(DiffusionError::Input(
                "the VAE produced NaN values; the checkpoint's VAE weights are broken".into(),
            ));
        }
        observer.on_warning(
            "the half-precision VAE produced NaN; decoding again in f32 (slower, uses more memory)",
        );
        let vae = model.reload_vae(DType::F32)?;
        pixels = vae.decode(&z.to_dtype(DType::F32)?)?;
    }
    Ok(((pixels + 1.0)? / 2.0)?.clamp(0f32, 1f32)?)
}

/// sd-webui-controlnet's inpaint_only post-processing of one unit: the decoded picture becomes
/// `m·x + (1 − m)·control image` (clipped to [0, 1]), `m` the unit's mask dilated and blurred.
struct InpaintOnlyBlend {
    /// `[1, 1, H, W]` weight of the generated picture.
    weight: Tensor,
    /// `[1, 3, H, W]` the control image as the network got it (before the −1 of masked pixels).
    raw: Tensor,
}

impl InpaintOnlyBlend {
    fn apply(&self, x: &Tensor) -> Result<Tensor, DiffusionError> {
        let w = self.weight.to_device(x.device())?;
        let raw = self.raw.to_device(x.device())?;
        let y = (x.broadcast_mul(&w)? + raw.broadcast_mul(&(1.0 - &w)?)?)?;
        Ok(y.clamp(0f32, 1f32)?)
    }
}

/// A ControlNet unit with its network loaded.
pub struct JobControl {
    /// The loaded network.
    pub net: Arc<ControlNet>,
    /// The unit as requested.
    pub unit: ControlUnit,
    /// `name [hash]` for the infotext.
    pub label: String,
}

/// The extension's resize mode for a control image taken from the img2img input: the img2img
/// resize mode's counterpart.
fn hint_resize_of(mode: crate::request::ResizeMode) -> HintResize {
    use crate::request::ResizeMode as R;
    match mode {
        R::JustResize => HintResize::JustResize,
        R::CropAndResize => HintResize::CropAndResize,
        R::ResizeAndFill => HintResize::ResizeAndFill,
    }
}

/// sd-webui-controlnet's crop of a control image (and its mask) for A1111's "only masked"
/// inpainting: fitted to the picture's size with the unit's resize mode, cut to the region A1111
/// generates (`get_crop_region` of the blurred mask, padded, expanded to the output's aspect), then
/// scaled into the output size with Resize and Fill. `None` without an A1111 mask or with an empty one.
fn crop_for_only_masked(
    image: &image::RgbImage,
    mask: Option<&image::GrayImage>,
    init: &InitImage,
    resize: HintResize,
    width: u32,
    height: u32,
) -> Option<(image::RgbImage, Option<image::GrayImage>)> {
    use crate::imaging::ops;
    use crate::request::ResizeMode;
    let a1111_mask = init.mask.as_ref()?;
    let s = &init.settings;
    let blurred = crate::imaging::processed_mask(a1111_mask, s.invert_mask, s.mask_blur);
    let (mw, mh) = blurred.dimensions();
    let (x1, y1, x2, y2) =
        ops::expand_crop_region(ops::crop_region(&blurred, s.padding), width, height, mw, mh)
            .filter(|(x1, y1, x2, y2)| x2 > x1 && y2 > y1)?;
    let mode = match resize {
        HintResize::JustResize => ResizeMode::JustResize,
        HintResize::CropAndResize => ResizeMode::CropAndResize,
        HintResize::ResizeAndFill => ResizeMode::ResizeAndFill,
    };
    let full = ops::resize_image(mode, image, mw, mh);
    let crop = image::imageops::crop_imm(&full, x1, y1, x2 - x1, y2 - y1).to_image();
    let out = ops::resize_image(ResizeMode::ResizeAndFill, &crop, width, height);
    let out_mask = mask.map(|m| {
        let full = ops::resize_image_gray(mode, m, mw, mh);
        let crop = image::imageops::crop_imm(&full, x1, y1, x2 - x1, y2 - y1).to_image();
        ops::resize_image_gray(ResizeMode::ResizeAndFill, &crop, width, height)
    });
    Some((out, out_mask))
}

/// The sampler-side units, their infotext entries and their inpaint_only blends.
type PreparedControls = (Vec<ActiveControl>, Vec<ControlInfo>, Vec<InpaintOnlyBlend>);

/// Computes each unit's hint for a `params.width`×`params.height` job and checks the network fits
/// the model. Returns the sampler-side units and their infotext entries.
fn prepare_controls(
    model: &SdModel,
    params: &GenerationParams,
    init: Option<&InitImage>,
    controls: &[JobControl],
) -> Result<PreparedControls, DiffusionError> {
    let mut active = Vec::new();
    let mut infos = Vec::new();
    let mut blends = Vec::new();
    for (i, c) in controls.iter().enumerate() {
        let unit = &c.unit;
        unit.validate()?;
        let g = c.net.geometry();
        let f = model.vae.downscale_factor();
        if g.hint_scale() != f {
            return Err(DiffusionError::Input(format!(
                "ControlNet unit {i} ({}) embeds its control image at 1/{} size but this model's latents are 1/{f}; it belongs to another model family",
                c.label,
                g.hint_scale()
            )));
        }
        if g.unet.context_dim != model.geometry().unet.context_dim {
            return Err(DiffusionError::Input(format!(
                "ControlNet unit {i} ({}) reads {}-wide text features but the checkpoint gives {}; it belongs to another model family",
                c.label,
                g.unet.context_dim,
                model.geometry().unet.context_dim
            )));
        }
        let (image, resize) = match (&unit.image, init) {
            (Some(image), _) => (image, unit.resize),
            (None, Some(init)) => (&init.image, hint_resize_of(init.settings.resize_mode)),
            (None, None) => {
                return Err(DiffusionError::Input(format!(
                    "ControlNet unit {i} ({}) has no control image: give it one (--control-image), or start from an image",
                    c.label
                )));
            }
        };
        let mask = unit.mask.as_ref().or(init.and_then(|i| i.mask.as_ref()));
        // "Only masked" generates a crop of the picture: the control image is cropped the same way.
        let cropped = init
            .filter(|i| i.settings.inpaint_area == crate::request::InpaintArea::OnlyMasked)
            .and_then(|i| crop_for_only_masked(image, mask, i, resize, params.width, params.height));
        let (image, mask) = match &cropped {
            Some((img, m)) => (img, m.as_ref()),
            None => (image, mask),
        };
        let hint = crate::imaging::ops::prepare_hint(
            image,
            mask,
            &unit.preprocessor,
            unit.processor_res,
            unit.pixel_perfect,
            resize,
            params.width,
            params.height,
        )
        .map_err(|e| DiffusionError::Input(format!("ControlNet unit {i}: {e}")))?;
        let t = Tensor::from_vec(
            hint.data,
            (1, hint.channels, hint.height, hint.width),
            &Device::Cpu,
        )?;
        // inpaint_only blends the result back over the control image, except in A1111's own
        // masked img2img, where the extension falls back to plain `inpaint` (and A1111 composites).
        let masked_img2img = init.is_some_and(|i| i.mask.is_some());
        if unit.preprocessor == crate::imaging::ops::HintPreprocessor::InpaintOnly
            && !masked_img2img
            && hint.channels == 4
        {
            let (h, w) = (hint.height, hint.width);
            let mask = t.narrow(1, 3, 1)?.flatten_all()?.to_vec1::<f32>()?;
            let weight =
                crate::imaging::ops::inpaint_only_weight(&mask, w, h, crate::imaging::ops::INPAINT_ONLY_BLUR);
            blends.push(InpaintOnlyBlend {
                weight: Tensor::from_vec(weight, (1, 1, h, w), &Device::Cpu)?,
                raw: t.narrow(1, 0, 3)?,
            });
        }
        let t = ActiveControl::inpaint_protocol(&t)?.to_device(&model.device)?;
        if t.dim(1)? != g.hint_channels {
            return Err(DiffusionError::Input(format!(
                "ControlNet unit {i} ({}) expects {} hint channels, the preprocessor gives {}",
                c.label,
                g.hint_channels,
                t.dim(1)?
            )));
        }
        active.push(ActiveControl {
            net: c.net.clone(),
            hint: t,
            weight: unit.weight,
            start: unit.start,
            end: unit.end,
            mode: unit.mode,
        });
        let (a, b) = unit.preprocessor.thresholds();
        // Through the shortest decimal form, so a slider's 0.5 stays Python's 0.5.
        let wide = |v: f32| v.to_string().parse::<f64>().unwrap_or(f64::from(v));
        infos.push(ControlInfo {
            module: unit.preprocessor.name().to_owned(),
            model: c.label.clone(),
            weight: unit.weight,
            resize_mode: resize.label().to_owned(),
            processor_res: unit.processor_res,
            threshold_a: wide(a),
            threshold_b: wide(b),
            guidance_start: unit.start,
            guidance_end: unit.end,
            pixel_perfect: unit.pixel_perfect,
            control_mode: unit.mode.label().to_owned(),
        });
    }
    Ok((active, infos, blends))
}

/// Runs a whole job, txt2img or (with `init`) img2img/inpainting: every batch iteration, decoded,
/// composited over the original when masked, and handed to `observer`.
pub fn generate(
    model: &SdModel,
    tokenizer: &ClipTokenizer,
    params: &GenerationParams,
    init: Option<&InitImage>,
    observer: &mut dyn Observer,
) -> Result<Vec<GeneratedImage>, DiffusionError> {
    generate_with(model, tokenizer, params, init, &[], observer)
}

/// Soft inpainting's composite for image `index` of a batch: the overlay with A1111's adaptive mask
/// (how far each latent moved) in place of the blurred user mask. `None` without soft inpainting.
pub fn soft_overlay(
    start: &Start,
    prepared: Option<&img2img::Prepared>,
    overlay: &img2img::Overlay,
    latents: &Tensor,
    index: usize,
    params: &GenerationParams,
) -> Result<Option<img2img::Overlay>, DiffusionError> {
    let (Some(soft), Some((init, _)), Some(nmask)) = (
        start.soft.as_ref(),
        start.image.as_ref(),
        prepared.and_then(|p| p.latent_mask.as_ref()),
    ) else {
        return Ok(None);
    };
    let mask = super::soft_inpaint::composite_mask(
        soft,
        nmask,
        &init.get(0)?,
        &latents.get(index)?,
        (params.width, params.height),
        overlay.paste_to,
        overlay.original.dimensions(),
    )?;
    Ok(Some(img2img::Overlay {
        mask,
        ..overlay.clone()
    }))
}

/// [`generate`] with ControlNet units.
pub fn generate_with(
    model: &SdModel,
    tokenizer: &ClipTokenizer,
    params: &GenerationParams,
    init: Option<&InitImage>,
    controls: &[JobControl],
    observer: &mut dyn Observer,
) -> Result<Vec<GeneratedImage>, DiffusionError> {
    validate(params, model)?;
    let (active_controls, control_infos, blends) = prepare_controls(model, params, init, controls)?;
    let mut params = params.clone();
    infotext::controlnet::write(&mut params.extra, &control_infos);
    let inpainting_model = model.geometry().unet.in_channels == 9;
    infotext::strip_img2img(&mut params.extra);
    let strength = init.map(|_| {
        params
            .denoising_strength
            .unwrap_or(crate::request::DEFAULT_STRENGTH)
    });
    params.denoising_strength = strength;
    if let (Some(init), Some(strength)) = (init, strength) {
        crate::request::validate_strength(strength)?;
        // Soft inpainting without a mask is plain img2img, as in A1111 (a pasted infotext may carry
        // it); the CLI refuses `--soft-inpainting` without `--mask` itself.
        init.settings.validate()?;
        infotext::write_img2img(
            &mut params.extra,
            &init.settings,
            init.mask.is_some(),
            inpainting_model,
        );
    }
    write_schedule_keys(&mut params);
    infotext::write_vae_method(
        &mut params.extra,
        infotext::VAE_DECODER,
        model.tiny_decoder.is_some(),
    );
    infotext::write_vae_method(
        &mut params.extra,
        infotext::VAE_ENCODER,
        init.is_some() && model.tiny_encoder.is_some(),
    );
    let params = &params;
    let clip_skip = params.clip_skip as usize;
    // `<lora:…>` tags are applied to the model by the engine; the text encoder never sees them.
    let (prompt, _, _) = crate::prompt::extra_networks::extract_tags(&params.prompt)?;
    // Prompt editing counts model calls: Heun makes two per step but one in its last step.
    let calls = if params.sampler.is_second_order() {
        2 * params.steps as usize - 1
    } else {
        params.steps as usize
    };
    let (mut used, mut used_negative) = (Vec::new(), Vec::new());
    let cond = encode_scheduled(model, tokenizer, &prompt, clip_skip, calls, &mut used)?;
    let uncond = encode_scheduled(
        model,
        tokenizer,
        &params.negative_prompt,
        clip_skip,
        calls,
        &mut used_negative,
    )?;
    // A1111: the prompt's embeddings, then the negative prompt's, `name: short hash`.
    let ti_hashes: Vec<(String, String)> = used
        .iter()
        .chain(&used_negative)
        .filter_map(|n| {
            let e = (0..model.embeddings.len())
                .filter_map(|i| model.embeddings.get(i))
                .find(|e| &e.name == n)?;
            (!e.short_hash.is_empty()).then(|| (n.replace([':', ','], ""), e.short_hash.clone()))
        })
        .collect();
    let mut params = params.clone();
    infotext::set_hashes(&mut params, infotext::TI_HASHES, &ti_hashes);
    let params = &params;
    let f = model.vae.downscale_factor() as u32;
    let prepared = init
        .map(|i| {
            img2img::prepare(
                i,
                params.width,
                params.height,
                params.width / f,
                params.height / f,
            )
        })
        .transpose()?;
    let start = match (init, &prepared) {
        (Some(init), Some(prepared)) => {
            // A1111 makes "latent noise" once per job from the first iteration's seeds.
            let first = first_noise(model, params, &batch_seeds(params, 0))?;
            img2img::latent_start(
                model,
                prepared,
                &init.settings,
                strength.unwrap_or_default(),
                &first,
            )?
        }
        _ => Start {
            image_cond: inpainting_model
                .then(|| img2img::txt2img_inpainting_conditioning(model, params.width, params.height))
                .transpose()?,
            ..Start::default()
        },
    };
    let start = Start {
        controls: active_controls,
        ..start
    };
    let version = infotext::version();
    let batch_count = params.batch_count as usize;
    let mut images = Vec::new();
    for batch in 0..batch_count {
        let seeds = batch_seeds(params, batch);
        let sampled = sample_batch(
            model,
            &cond,
            &uncond,
            params,
            seeds.clone(),
            &start,
            |step, steps, x| {
                observer.on_step(
                    StepInfo {
                        batch,
                        batch_count,
                        step,
                        steps,
                    },
                    x,
                )
            },
        )?;
        let mut pixels = decode_unit(model, &sampled.latents, observer)?;
        for blend in &blends {
            pixels = blend.apply(&pixels)?;
        }
        let rgb = quantize(&pixels)?;
        for (i, (seed, rgb)) in seeds.iter().zip(rgb).enumerate() {
            let mut p = params.clone();
            p.seed = *seed;
            let mut image = image::RgbImage::from_raw(params.width, params.height, rgb)
                .ok_or_else(|| DiffusionError::Input("decoded image has the wrong size".into()))?;
            if let Some(overlay) = prepared.as_ref().and_then(|p| p.overlay.as_ref()) {
                image = match soft_overlay(&start, prepared.as_ref(), overlay, &sampled.latents, i, params)? {
                    Some(soft) => soft.apply(&image)?,
                    None => overlay.apply(&image)?,
                };
            }
            let image = GeneratedImage {
                index: batch * seeds.len() + i,
                seed: *seed,
                width: image.width(),
                height: image.height(),
                rgb: image.into_raw(),
                infotext: infotext::render(&p, p.a1111_schedule_label(), &version),
            };
            observer.on_image(&image);
            images.push(image);
        }
    }
    Ok(images)
}
