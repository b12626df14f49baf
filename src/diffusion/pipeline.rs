//! txt2img with A1111 v1.10 semantics: seeds, noise order, σ schedules, CFG batch order, VAE decode and uint8 truncation.
//! One pipeline for the CLI, the GUI and the tests; observers see every step and may cancel.

use candle_core::{DType, Device, Tensor};

use super::DiffusionError;
use super::conditioning::encode_prompt;
use super::model::SdModel;
use super::rng::{NoiseRng, NoiseSource as RngKind};
use super::sampler::{self, Denoiser, EpsModel, NoiseSource};
use super::schedule::{self, ModelSigmas};
use super::unet::{self as unet_mod, Unet};
use crate::params::{GenerationParams, RngSource, Sampler, Schedule};
use crate::prompt::ClipTokenizer;

/// Where a generation is, reported after every sampler step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StepInfo {
    /// Batch iteration (0-based) of `batch_count`.
    pub batch: usize,
    /// Number of batch iterations.
    pub batch_count: usize,
    /// Step just finished (1-based).
    pub step: usize,
    /// Steps per image.
    pub steps: usize,
}

/// One finished image.
#[derive(Debug, Clone)]
pub struct GeneratedImage {
    /// 0-based index over the whole job (batch iteration × batch size + position).
    pub index: usize,
    /// The seed that made it.
    pub seed: u64,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Row-major RGB8 pixels.
    pub rgb: Vec<u8>,
    /// Final latents `[C, h, w]` (before the 1/scale factor), f32 on the CPU.
    pub latent: Tensor,
    /// A1111 `parameters` text for this image.
    pub infotext: String,
}

/// Receives what the pipeline produces. Returning an error from `on_step` stops the job.
pub trait Observer {
    /// After each sampler step; `x0` is the current prediction of the clean latents (what previews show).
    fn on_step(&mut self, info: StepInfo, x0: &Tensor) -> Result<(), DiffusionError>;
    /// Each finished image, as soon as it is decoded.
    fn on_image(&mut self, image: &GeneratedImage);
    /// Something the user should know that did not stop the job.
    fn on_warning(&mut self, message: &str);
}

/// The schedule type A1111 writes in the infotext for this sampler and choice.
pub fn resolved_schedule(sampler: Sampler, schedule: Schedule) -> Schedule {
    match (schedule, sampler.default_schedule()) {
        (Schedule::Automatic, Some(resolved)) => resolved,
        (chosen, _) => chosen,
    }
}

/// The σ schedule (ending in 0) for a k-diffusion sampler.
pub fn sigmas_for(sampler: Sampler, schedule: Schedule, steps: usize, table: &ModelSigmas) -> Vec<f32> {
    let lcm_grid = (sampler == Sampler::Lcm).then(|| ModelSigmas::lcm_grid(table.alphas_cumprod()));
    let grid = lcm_grid.as_ref().unwrap_or(table);
    match resolved_schedule(sampler, schedule) {
        Schedule::Automatic | Schedule::Uniform => match &lcm_grid {
            Some(g) => schedule::lcm(g, steps, table.alphas_cumprod().len()),
            None => table.discrete(steps),
        },
        Schedule::Karras => schedule::karras(steps, grid.sigma_min(), grid.sigma_max()),
        Schedule::Exponential => schedule::exponential(steps, grid.sigma_min(), grid.sigma_max()),
    }
}

/// Bytes available for tensors, when the platform tells us.
fn available_memory_bytes(device: &Device) -> Option<u64> {
    if !device.is_cpu() {
        return None;
    }
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

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
    if !params.cfg_scale.is_finite() {
        return bad("CFG scale must be a finite number".into());
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
    ) + model.vae_decode_memory_bytes(params.height as usize, params.width as usize);
    if let Some(avail) = available_memory_bytes(&model.device)
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

/// The seeds of batch iteration `batch`, A1111 style: `seed + batch·size + i`.
pub fn batch_seeds(params: &GenerationParams, batch: usize) -> Vec<u64> {
    let size = params.batch_size as usize;
    (0..size)
        .map(|i| params.seed.wrapping_add((batch * size + i) as u64))
        .collect()
}

fn rng_kind(source: RngSource) -> RngKind {
    match source {
        RngSource::Cpu => RngKind::Cpu,
        // "GPU" means CUDA's torch.randn on the machines that make most infotexts; A1111's NV source imitates it.
        RngSource::Gpu | RngSource::Nv => RngKind::Nv,
    }
}

/// One generator per image, as A1111's `ImageRNG`; after the first draw ENSD reseeds them.
struct BatchNoise {
    kind: RngKind,
    seeds: Vec<u64>,
    rngs: Vec<NoiseRng>,
    ensd: u64,
    shape: (usize, usize, usize),
    device: Device,
    draws: usize,
}

impl BatchNoise {
    fn new(kind: RngKind, seeds: Vec<u64>, ensd: u64, shape: (usize, usize, usize), device: &Device) -> Self {
        let rngs = seeds.iter().map(|s| NoiseRng::new(kind, *s)).collect();
        Self {
            kind,
            seeds,
            rngs,
            ensd,
            shape,
            device: device.clone(),
            draws: 0,
        }
    }
}

impl NoiseSource for BatchNoise {
    fn next_noise(&mut self) -> Result<Tensor, DiffusionError> {
        let numel = self.shape.0 * self.shape.1 * self.shape.2;
        let per_image = self
            .rngs
            .iter_mut()
            .map(|r| Tensor::from_vec(r.randn(numel), self.shape, &self.device))
            .collect::<Result<Vec<_>, _>>()?;
        self.draws += 1;
        if self.draws == 1 && self.ensd != 0 {
            self.rngs = self
                .seeds
                .iter()
                .map(|s| NoiseRng::new(self.kind, s.wrapping_add(self.ensd)))
                .collect();
        }
        Ok(Tensor::stack(&per_image, 0)?)
    }
}

/// Runs the UNet on `[cond, uncond]` (one batch when the lengths match, two calls otherwise).
fn unet_cfg(
    unet: &Unet,
    x_in: &Tensor,
    t: f64,
    cond: &Tensor,
    uncond: &Tensor,
) -> Result<(Tensor, Tensor), DiffusionError> {
    let b = x_in.dim(0)?;
    if cond.dim(1)? == uncond.dim(1)? {
        let x2 = Tensor::cat(&[x_in, x_in], 0)?;
        let ctx = Tensor::cat(&[cond, uncond], 0)?;
        let eps = unet.forward(&x2, &[t], &ctx)?.to_dtype(DType::F32)?;
        Ok((eps.narrow(0, 0, b)?, eps.narrow(0, b, b)?))
    } else {
        let c = unet.forward(x_in, &[t], cond)?.to_dtype(DType::F32)?;
        let u = unet.forward(x_in, &[t], uncond)?.to_dtype(DType::F32)?;
        Ok((c, u))
    }
}

/// k-diffusion's `CompVisDenoiser` (or A1111's LCM variant) inside A1111's `CFGDenoiser`.
struct CfgDenoiser<'a> {
    unet: &'a Unet,
    table: &'a ModelSigmas,
    lcm_grid: Option<ModelSigmas>,
    cond: &'a Tensor,
    uncond: &'a Tensor,
    cfg: f64,
    dtype: DType,
    evaluations: usize,
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
        let (eps_c, eps_u) = unet_cfg(self.unet, &x_in, f64::from(t), self.cond, self.uncond)?;
        self.evaluations += 1;
        let c_out = -f64::from(sigma);
        let mut d_c = (x + (eps_c * c_out)?)?;
        let mut d_u = (x + (eps_u * c_out)?)?;
        if self.lcm_grid.is_some() {
            // LCM's consistency scalings with σ_data = 0.5 and the timestep ×10.
            let ts = f64::from(t) * 10.0;
            let c_skip = 0.25 / (ts * ts + 0.25);
            let c_out = ts / (ts * ts + 0.25).sqrt();
            d_c = ((d_c * c_out)? + (x * c_skip)?)?;
            d_u = ((d_u * c_out)? + (x * c_skip)?)?;
        }
        Ok((&d_u + ((d_c - &d_u)? * self.cfg)?)?)
    }
}

impl EpsModel for CfgDenoiser<'_> {
    fn eps(&mut self, x: &Tensor, t: usize) -> Result<Tensor, DiffusionError> {
        let x_in = x.to_dtype(self.dtype)?;
        let (e_c, e_u) = unet_cfg(self.unet, &x_in, t as f64, self.cond, self.uncond)?;
        self.evaluations += 1;
        Ok((&e_u + ((e_c - &e_u)? * self.cfg)?)?)
    }
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
    cond: &Tensor,
    uncond: &Tensor,
    params: &GenerationParams,
    seeds: Vec<u64>,
    mut on_step: impl FnMut(usize, usize, &Tensor) -> Result<(), DiffusionError>,
) -> Result<SampledBatch, DiffusionError> {
    let f = model.vae.downscale_factor();
    let shape = (
        model.geometry().vae.z_channels,
        params.height as usize / f,
        params.width as usize / f,
    );
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
    let cond = repeat(cond)?;
    let uncond = repeat(uncond)?;
    let mut denoiser = CfgDenoiser {
        unet: &model.unet,
        table: &model.sigmas,
        lcm_grid: (params.sampler == Sampler::Lcm)
            .then(|| ModelSigmas::lcm_grid(model.sigmas.alphas_cumprod())),
        cond: &cond,
        uncond: &uncond,
        cfg: f64::from(params.cfg_scale),
        dtype: model.dtype,
        evaluations: 0,
    };
    let steps = params.steps as usize;
    let mut callback = |i: usize, total: usize, _x: &Tensor, x0: &Tensor| on_step(i + 1, total, x0);
    let latents = if params.sampler == Sampler::Ddim {
        let timesteps = schedule::ddim_timesteps(steps, model.sigmas.alphas_cumprod().len());
        let alphas = model.sigmas.alphas_cumprod().to_vec();
        sampler::sample_ddim(
            &mut denoiser,
            first.clone(),
            &timesteps,
            &alphas,
            &mut noise,
            &mut callback,
        )?
    } else {
        let sigmas = sigmas_for(params.sampler, params.schedule, steps, &model.sigmas);
        let x = (&first * f64::from(sigmas[0]))?;
        sampler::sample_k(
            params.sampler,
            &mut denoiser,
            x,
            &sigmas,
            &mut noise,
            &mut callback,
        )?
    };
    Ok(SampledBatch {
        latents,
        noise: first,
        evaluations: denoiser.evaluations,
    })
}

/// Decodes latents `[B, C, h, w]` to RGB8 images, A1111's way (clamp, ×255, truncate).
/// Falls back to an f32 VAE when a half-precision decode produces NaN.
pub fn decode_rgb(
    model: &SdModel,
    latents: &Tensor,
    observer: &mut dyn Observer,
) -> Result<Vec<Vec<u8>>, DiffusionError> {
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
        let vae = SdModel::load_vae(&model.checkpoint, &model.device, DType::F32)?;
        pixels = vae.decode(&z.to_dtype(DType::F32)?)?;
    }
    let pixels = (((pixels + 1.0)? / 2.0)?.clamp(0f32, 1f32)? * 255.0)?;
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

/// Runs a whole txt2img job: every batch iteration, decoded and handed to `observer`.
pub fn txt2img(
    model: &SdModel,
    tokenizer: &ClipTokenizer,
    params: &GenerationParams,
    observer: &mut dyn Observer,
) -> Result<Vec<GeneratedImage>, DiffusionError> {
    validate(params, model)?;
    let clip_skip = params.clip_skip as usize;
    let cond = encode_prompt(&model.clip, tokenizer, &params.prompt, clip_skip, &model.device)?;
    let uncond = encode_prompt(
        &model.clip,
        tokenizer,
        &params.negative_prompt,
        clip_skip,
        &model.device,
    )?;
    let version = format!("easel {}", env!("CARGO_PKG_VERSION"));
    let batch_count = params.batch_count as usize;
    let mut images = Vec::new();
    for batch in 0..batch_count {
        let seeds = batch_seeds(params, batch);
        let sampled = sample_batch(model, &cond, &uncond, params, seeds.clone(), |step, steps, x| {
            observer.on_step(
                StepInfo {
                    batch,
                    batch_count,
                    step,
                    steps,
                },
                x,
            )
        })?;
        let rgb = decode_rgb(model, &sampled.latents, observer)?;
        for (i, (seed, rgb)) in seeds.iter().zip(rgb).enumerate() {
            let mut p = params.clone();
            p.seed = *seed;
            let image = GeneratedImage {
                index: batch * seeds.len() + i,
                seed: *seed,
                width: params.width,
                height: params.height,
                rgb,
                latent: sampled.latents.get(i)?.to_device(&Device::Cpu)?,
                infotext: p.to_infotext(p.a1111_schedule_label(), &version),
            };
            observer.on_image(&image);
            images.push(image);
        }
    }
    Ok(images)
}
