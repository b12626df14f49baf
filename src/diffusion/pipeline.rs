//! txt2img with A1111 v1.10 semantics: seeds, noise order, σ schedules, CFG batch order, VAE decode and uint8 truncation.
//! One pipeline for the CLI, the GUI and the tests; observers see every step and may cancel.

use candle_core::{DType, Device, Tensor};

use super::DiffusionError;
use super::conditioning::encode_prompt_with;
use super::img2img::{self, InitImage};
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
/// `image_cond` (inpainting models) is concatenated to the input channels of both halves.
fn unet_cfg(
    unet: &Unet,
    x_in: &Tensor,
    t: f64,
    cond: &Tensor,
    uncond: &Tensor,
    image_cond: Option<&Tensor>,
) -> Result<(Tensor, Tensor), DiffusionError> {
    let b = x_in.dim(0)?;
    let with_cond;
    let x_in = match image_cond {
        Some(c) => {
            with_cond = Tensor::cat(&[x_in, &c.to_dtype(x_in.dtype())?], 1)?;
            &with_cond
        }
        None => x_in,
    };
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
    cond: &'a Conditioning,
    uncond: &'a Conditioning,
    cfg: f64,
    dtype: DType,
    evaluations: usize,
    /// Inpainting-model conditioning `[B, 5, h, w]` (mask + masked-image latents).
    image_cond: Option<Tensor>,
    /// Inpainting on a normal model: the original latents and the repaint mask (1 = repaint).
    blend: Option<LatentBlend>,
}

/// A1111's per-step inpainting blend: `init·(1 − m) + x·m` with the latent repaint mask `m`.
#[derive(Clone)]
pub struct LatentBlend {
    /// Original latents `[B, C, h, w]`.
    pub init: Tensor,
    /// Repaint mask (A1111's `nmask`), broadcastable to the latents.
    pub repaint: Tensor,
}

impl LatentBlend {
    /// Keeps the original where the mask is 0.
    pub fn apply(&self, x: &Tensor) -> Result<Tensor, DiffusionError> {
        let keep = (1.0 - &self.repaint)?;
        Ok((self.init.broadcast_mul(&keep)? + x.broadcast_mul(&self.repaint)?)?)
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
            self.uncond.at(self.evaluations),
            self.image_cond.as_ref(),
        )?;
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
        let denoised = (&d_u + ((d_c - &d_u)? * self.cfg)?)?;
        match &self.blend {
            Some(blend) => blend.apply(&denoised),
            None => Ok(denoised),
        }
    }
}

impl EpsModel for CfgDenoiser<'_> {
    fn eps(&mut self, x: &Tensor, t: usize) -> Result<Tensor, DiffusionError> {
        // A1111's timestep samplers blend before the model call (`mask_before_denoising`): the model
        // sees the clean original latents outside the mask; the sampler's own x is not changed.
        let blended = self.blend.as_ref().map(|b| b.apply(x)).transpose()?;
        let x_in = blended.as_ref().unwrap_or(x).to_dtype(self.dtype)?;
        let (e_c, e_u) = unet_cfg(
            self.unet,
            &x_in,
            t as f64,
            self.cond.at(self.evaluations),
            self.uncond.at(self.evaluations),
            self.image_cond.as_ref(),
        )?;
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

/// Where sampling starts: pure noise (txt2img) or noised image latents (img2img, inpainting).
#[derive(Clone, Default)]
pub struct Start {
    /// img2img: the image latents `[1, C, h, w]` (0.18215 × posterior mean, after masked-content changes)
    /// and the denoising strength.
    pub image: Option<(Tensor, f32)>,
    /// Inpainting on a normal model: the latent repaint mask `[1, 1, h, w]` (1 = repaint).
    pub repaint: Option<Tensor>,
    /// Inpainting models: mask + masked-image latents `[1, 5, h, w]`.
    pub image_cond: Option<Tensor>,
}

/// img2img step selection (A1111 `setup_img2img_steps` without "fix steps"): how many steps of the
/// full schedule are skipped and run.
pub fn img2img_t_enc(strength: f32, steps: usize) -> usize {
    // Through the shortest decimal form, so 0.7 is Python's 0.7 (0.7·10 = 7.000000000000001 → 7),
    // not 0.699999988 (→ 6).
    let strength: f64 = strength.min(0.999).to_string().parse().unwrap_or(0.0);
    (strength * steps as f64) as usize
}

/// Text conditioning that may change during sampling (A1111 prompt editing): `(last model call,
/// embeddings)` pairs; model call `k` (0-based, counted like A1111's `CFGDenoiser.step`) uses the
/// first entry whose last call is ≥ `k`.
#[derive(Debug, Clone)]
pub struct Conditioning {
    entries: Vec<(usize, Tensor)>,
}

impl Conditioning {
    /// The same embeddings for every step.
    pub fn fixed(embeddings: Tensor) -> Self {
        Self {
            entries: vec![(usize::MAX, embeddings)],
        }
    }

    /// A schedule of `(last step, embeddings)`, in order.
    ///
    /// # Panics
    /// Never for a non-empty schedule; an empty one is a bug.
    pub fn scheduled(entries: Vec<(usize, Tensor)>) -> Self {
        assert!(!entries.is_empty(), "a conditioning schedule needs an entry");
        Self { entries }
    }

    /// The embeddings for model call `call`.
    pub fn at(&self, call: usize) -> &Tensor {
        let i = self.entries.iter().position(|(end, _)| call <= *end).unwrap_or(0);
        &self.entries[i].1
    }

    /// Number of distinct prompts in the schedule.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when the schedule is empty (never, for the constructors above).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn map(&self, f: impl Fn(&Tensor) -> candle_core::Result<Tensor>) -> candle_core::Result<Self> {
        let entries = self
            .entries
            .iter()
            .map(|(end, t)| f(t).map(|t| (*end, t)))
            .collect::<candle_core::Result<_>>()?;
        Ok(Self { entries })
    }
}

/// Encodes a prompt with A1111's prompt editing resolved for `steps` model calls, using the model's
/// textual-inversion embeddings; the names of those used are appended to `used`.
///
/// # Errors
/// Tokenizer or tensor failures.
pub fn encode_scheduled(
    model: &SdModel,
    tokenizer: &ClipTokenizer,
    prompt: &str,
    clip_skip: usize,
    steps: usize,
    used: &mut Vec<String>,
) -> Result<Conditioning, DiffusionError> {
    let schedule = crate::prompt::editing::schedule(prompt, steps);
    let mut cache: Vec<(String, Tensor)> = Vec::new();
    let mut entries = Vec::with_capacity(schedule.len());
    for (end, text) in schedule {
        let t = if let Some((_, t)) = cache.iter().find(|(s, _)| *s == text) {
            t.clone()
        } else {
            let t = encode_prompt_with(
                &model.clip,
                tokenizer,
                &text,
                clip_skip,
                &model.device,
                Some(&model.embeddings),
                used,
            )?;
            cache.push((text, t.clone()));
            t
        };
        entries.push((end, t));
    }
    Ok(Conditioning::scheduled(entries))
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
        }),
        _ => None,
    };
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
        image_cond: start.image_cond.as_ref().map(batch).transpose()?,
        blend: blend.clone(),
    };
    let steps = params.steps as usize;
    let mut callback = |i: usize, total: usize, _x: &Tensor, x0: &Tensor| on_step(i + 1, total, x0);
    let mut latents = if params.sampler == Sampler::Ddim {
        let timesteps = schedule::ddim_timesteps(steps, model.sigmas.alphas_cumprod().len());
        let alphas = model.sigmas.alphas_cumprod().to_vec();
        match (&init, &start.image) {
            (Some(init), Some((_, strength))) => {
                // A1111's timestep img2img: noise to timesteps[t_enc], then run DDIM over timesteps[..t_enc].
                let t_enc = img2img_t_enc(*strength, steps).min(timesteps.len() - 1);
                let a = alphas[timesteps[t_enc]];
                let x = ((init * f64::from(a.sqrt()))? + (&first * f64::from((1.0 - a).sqrt()))?)?;
                sampler::sample_ddim(
                    &mut denoiser,
                    x,
                    &timesteps[..t_enc],
                    &alphas,
                    &mut noise,
                    &mut callback,
                )?
            }
            _ => sampler::sample_ddim(
                &mut denoiser,
                first.clone(),
                &timesteps,
                &alphas,
                &mut noise,
                &mut callback,
            )?,
        }
    } else {
        let sigmas = sigmas_for(params.sampler, params.schedule, steps, &model.sigmas);
        // img2img: run the last t_enc + 1 steps of the full schedule from the noised image latents.
        let (x, sched) = if let (Some(init), Some((_, strength))) = (&init, &start.image) {
            let sched = &sigmas[steps - img2img_t_enc(*strength, steps) - 1..];
            ((init + (&first * f64::from(sched[0]))?)?, sched)
        } else {
            ((&first * f64::from(sigmas[0]))?, &sigmas[..])
        };
        sampler::sample_k(params.sampler, &mut denoiser, x, sched, &mut noise, &mut callback)?
    };
    if let Some(blend) = &blend {
        latents = blend.apply(&latents)?;
    }
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
    generate(model, tokenizer, params, None, observer)
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
    validate(params, model)?;
    let mut params = params.clone();
    let inpainting_model = model.geometry().unet.in_channels == 9;
    img2img::Img2ImgSettings::strip_infotext_keys(&mut params.extra);
    params.denoising_strength = None;
    if let Some(init) = init {
        init.settings.validate()?;
        params.denoising_strength = Some(init.settings.strength);
        init.settings
            .write_infotext_keys(&mut params.extra, init.mask.is_some(), inpainting_model);
    }
    let params = &params;
    let clip_skip = params.clip_skip as usize;
    // `<lora:…>` tags are applied to the model by the engine; the text encoder never sees them.
    let (prompt, _, _) = super::lora::extract_tags(&params.prompt).map_err(DiffusionError::Input)?;
    // Prompt editing counts model calls: Heun makes two per step but one in its last step.
    let calls = match params.sampler {
        Sampler::Heun => 2 * params.steps as usize - 1,
        _ => params.steps as usize,
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
    let mut params = params.clone();
    params.extra.retain(|(k, _)| k != "TI hashes");
    let hashes: Vec<String> = used
        .iter()
        .chain(&used_negative)
        .filter_map(|n| {
            let e = (0..model.embeddings.len())
                .filter_map(|i| model.embeddings.get(i))
                .find(|e| &e.name == n)?;
            (!e.short_hash.is_empty()).then(|| format!("{}: {}", n.replace([':', ','], ""), e.short_hash))
        })
        .collect();
    if !hashes.is_empty() {
        params.extra.push(("TI hashes".into(), hashes.join(", ")));
    }
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
            img2img::latent_start(model, prepared, &init.settings, &first)?
        }
        _ => Start {
            image_cond: inpainting_model
                .then(|| img2img::txt2img_inpainting_conditioning(model, params.width, params.height))
                .transpose()?,
            ..Start::default()
        },
    };
    let version = format!("easel {}", env!("CARGO_PKG_VERSION"));
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
        let rgb = decode_rgb(model, &sampled.latents, observer)?;
        for (i, (seed, rgb)) in seeds.iter().zip(rgb).enumerate() {
            let mut p = params.clone();
            p.seed = *seed;
            let mut image = image::RgbImage::from_raw(params.width, params.height, rgb)
                .ok_or_else(|| DiffusionError::Input("decoded image has the wrong size".into()))?;
            if let Some(overlay) = prepared.as_ref().and_then(|p| p.overlay.as_ref()) {
                image = overlay.apply(&image)?;
            }
            let image = GeneratedImage {
                index: batch * seeds.len() + i,
                seed: *seed,
                width: image.width(),
                height: image.height(),
                rgb: image.into_raw(),
                latent: sampled.latents.get(i)?.to_device(&Device::Cpu)?,
                infotext: p.to_infotext(p.a1111_schedule_label(), &version),
            };
            observer.on_image(&image);
            images.push(image);
        }
    }
    Ok(images)
}

/// `(channels, height, width)` of one image's latents.
fn latent_shape(model: &SdModel, params: &GenerationParams) -> (usize, usize, usize) {
    let f = model.vae.downscale_factor();
    (
        model.geometry().vae.z_channels,
        params.height as usize / f,
        params.width as usize / f,
    )
}

/// Draw 0 of the image RNG for `seeds`, `[B, C, h, w]`.
pub fn first_noise(
    model: &SdModel,
    params: &GenerationParams,
    seeds: &[u64],
) -> Result<Tensor, DiffusionError> {
    let shape = latent_shape(model, params);
    BatchNoise::new(rng_kind(params.rng), seeds.to_vec(), 0, shape, &model.device).next_noise()
}

#[cfg(test)]
mod conditioning_tests {
    use super::*;

    #[test]
    fn model_call_k_uses_the_first_entry_lasting_until_k() {
        let t = |v: f32| Tensor::new(&[v], &Device::Cpu).unwrap();
        // "[a:b:2]" over 4 steps: (2, a), (4, b). A1111 compares its call counter with `<=`.
        let c = Conditioning::scheduled(vec![(2, t(1.0)), (4, t(2.0))]);
        let at = |k| c.at(k).to_vec1::<f32>().unwrap()[0];
        assert_eq!([at(0), at(1), at(2), at(3), at(4)], [1.0, 1.0, 1.0, 2.0, 2.0]);
        // Past the end A1111 falls back to the first entry.
        assert_eq!(at(9), 1.0);
        assert_eq!(
            Conditioning::fixed(t(5.0)).at(1000).to_vec1::<f32>().unwrap(),
            [5.0]
        );
    }
}
