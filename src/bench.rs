//! `easel bench`: times CLIP, one UNet step and VAE decode at full SD 1.5 size with random weights, and checkpoint loading.
//! Figures, not tests: run it on an idle machine and report what it prints.

use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use candle_core::{DType, Device, Shape, Tensor};
use candle_nn::var_builder::{SimpleBackend, VarBuilder};
use candle_nn::{Init, init::NormalOrUniform};

use crate::diffusion::clip::ClipTextModel;
use crate::diffusion::lora_merge::Applied;
use crate::diffusion::model::SdModel;
use crate::diffusion::profile::{self, OpTotal};
use crate::diffusion::unet::Unet;
use crate::diffusion::vae::Vae;
use crate::models::config::Geometry;
use crate::models::keymap;
use crate::models::lora_file::LoraFile;

/// Writes one formatted line to a bench report sink.
macro_rules! say {
    ($out:expr, $($arg:tt)*) => {
        $out(&format!($($arg)*))
    };
}

/// Parameter names and shapes seen while building a network.
type Recording = Arc<Mutex<Vec<(String, Vec<usize>)>>>;

/// Random weights that follow each parameter's init hint; optionally records every (name, shape) asked for.
struct RandomBackend {
    record: Option<Recording>,
}

impl SimpleBackend for RandomBackend {
    fn get(
        &self,
        s: Shape,
        name: &str,
        init: Init,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        if let Some(rec) = &self.record {
            rec.lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push((name.to_owned(), s.dims().to_vec()));
        }
        let t = match init {
            Init::Const(v) => Tensor::full(v as f32, s, dev)?,
            Init::Randn { mean, stdev } => Tensor::randn(mean as f32, stdev as f32, s, dev)?,
            Init::Uniform { lo, up } => Tensor::rand(lo as f32, up as f32, s, dev)?,
            Init::Kaiming { dist, .. } => {
                let fan_in: usize = s.dims().iter().skip(1).product();
                let std = 1.0 / (fan_in.max(1) as f32).sqrt();
                match dist {
                    NormalOrUniform::Normal => Tensor::randn(0f32, std, s, dev)?,
                    NormalOrUniform::Uniform => Tensor::rand(-std * 1.7, std * 1.7, s, dev)?,
                }
            }
        };
        t.to_dtype(dtype)
    }

    fn get_unchecked(&self, name: &str, _dtype: DType, _dev: &Device) -> candle_core::Result<Tensor> {
        Err(candle_core::Error::Msg(format!(
            "random backend cannot guess the shape of {name}"
        )))
    }

    fn contains_tensor(&self, name: &str) -> bool {
        // The VAE attention picks the diffusers names when they "exist".
        name.ends_with("to_q.weight")
    }
}

fn random_vb(dtype: DType, device: &Device, record: Option<Recording>) -> VarBuilder<'static> {
    let backend: Box<dyn SimpleBackend> = Box::new(RandomBackend { record });
    VarBuilder::from_backend(backend, dtype, device.clone())
}

/// Benchmark figures.
#[derive(Debug, Clone, Default)]
pub struct BenchReport {
    /// Seconds to build the three networks from random weights.
    pub build_secs: f64,
    /// Seconds per CLIP encode of one 77-token chunk.
    pub clip_secs: f64,
    /// Seconds per UNet evaluation with CFG batch 2.
    pub unet_step_secs: f64,
    /// Seconds per VAE decode of one image.
    pub vae_decode_secs: f64,
    /// Seconds per ControlNet evaluation with CFG batch 2 (what one unit adds to a step).
    pub controlnet_secs: f64,
    /// Seconds per live preview (latent → RGB projection) of one image.
    pub preview_secs: f64,
    /// Peak RSS in bytes after the run.
    pub peak_rss_bytes: Option<u64>,
    /// With profiling, time per kind of op in one UNet evaluation (mean over the runs).
    pub unet_profile: Vec<OpTotal>,
    /// With profiling, time per kind of op in one VAE decode (mean over the runs).
    pub vae_profile: Vec<OpTotal>,
}

/// Wall times of repeated runs and, when profiled, what one run spent per kind of op.
struct Timed {
    best_secs: f64,
    mean_secs: f64,
    /// Mean over the runs; empty unless profiled.
    ops: Vec<OpTotal>,
}

/// Runs `f` `repeats` times (at least once), with the op timer on when `profile` is set.
fn time_runs(
    repeats: usize,
    profile: bool,
    f: &mut dyn FnMut() -> candle_core::Result<()>,
) -> candle_core::Result<Timed> {
    let runs = repeats.max(1);
    profile::reset();
    profile::set_enabled(profile);
    let (mut best, mut total) = (f64::INFINITY, 0.0);
    let mut outcome = Ok(());
    for _ in 0..runs {
        let t = Instant::now();
        outcome = f();
        if outcome.is_err() {
            break;
        }
        let secs = t.elapsed().as_secs_f64();
        best = best.min(secs);
        total += secs;
    }
    profile::set_enabled(false);
    outcome?;
    let ops = if profile {
        profile::snapshot()
            .into_iter()
            .map(|t| OpTotal {
                secs: t.secs / runs as f64,
                calls: t.calls / runs as u64,
                ..t
            })
            .collect()
    } else {
        Vec::new()
    };
    Ok(Timed {
        best_secs: best,
        mean_secs: total / runs as f64,
        ops,
    })
}

/// Report lines for a profile: one per kind of op, largest first, then what no op accounts for.
fn profile_lines(what: &str, totals: &[OpTotal], wall_secs: f64) -> Vec<String> {
    let mut sorted = totals.to_vec();
    sorted.sort_by(|a, b| b.secs.total_cmp(&a.secs));
    let timed: f64 = sorted.iter().map(|t| t.secs).sum();
    let percent = |secs: f64| secs / wall_secs.max(f64::MIN_POSITIVE) * 100.0;
    let mut lines = vec![format!("profile of {what} (mean of the runs, {wall_secs:.2} s):")];
    lines.extend(sorted.iter().map(|t| {
        format!(
            "  {:<14} {:>8.3} s {:>5.1} %  {:>5} calls",
            t.kind.label(),
            t.secs,
            percent(t.secs),
            t.calls
        )
    }));
    let rest = (wall_secs - timed).max(0.0);
    lines.push(format!(
        "  {:<14} {:>8.3} s {:>5.1} %",
        "other",
        rest,
        percent(rest)
    ));
    lines
}

/// Canvas painting costs on the CPU side (document edit + dirty-region copy for the GPU upload).
#[derive(Debug, Clone, Copy, Default)]
pub struct CanvasReport {
    /// Document side in pixels.
    pub size: u32,
    /// Mean milliseconds per pointer move (dabs along the segment + dirty-region copy).
    pub move_ms: f64,
    /// Worst milliseconds of one pointer move.
    pub worst_move_ms: f64,
    /// Milliseconds to undo the stroke.
    pub undo_ms: f64,
    /// Bytes of undo history the stroke took.
    pub history_bytes: usize,
}

/// Paints one long stroke on a `size`×`size` document the way the canvas does (a pointer move
/// every few pixels, then the dirty rectangle copied out for the texture upload) and times it.
pub fn run_canvas(size: u32) -> CanvasReport {
    use crate::document::{Brush, Document, Layer};
    let mut doc = Document::new(image::RgbImage::new(size, size));
    doc.take_dirty();
    let brush = Brush {
        size: 96.0,
        ..Brush::default()
    };
    let (mut total, mut worst, mut moves) = (0.0f64, 0.0f64, 0u32);
    let c = size as f32 / 2.0;
    doc.begin_stroke(brush, c, c);
    for i in 0..600 {
        let a = i as f32 * 0.02;
        let (x, y) = (c + a.cos() * c * 0.6, c + a.sin() * c * 0.6 * (a * 0.3).cos());
        let t = Instant::now();
        doc.stroke_to(x, y);
        for (layer, rect) in doc.take_dirty() {
            if layer == Layer::Mask {
                std::hint::black_box(crate::document::gray_region(doc.mask(), rect));
            }
        }
        let ms = t.elapsed().as_secs_f64() * 1000.0;
        total += ms;
        worst = worst.max(ms);
        moves += 1;
    }
    doc.end_stroke();
    let history_bytes = doc.history_bytes();
    let t = Instant::now();
    doc.undo();
    CanvasReport {
        size,
        move_ms: total / f64::from(moves),
        worst_move_ms: worst,
        undo_ms: t.elapsed().as_secs_f64() * 1000.0,
        history_bytes,
    }
}

/// Times the full-size SD 1.5 networks at `size`×`size` pixels, `repeats` runs each (the best is
/// reported); with `profile`, also the time per kind of op in the UNet step and the VAE decode.
pub fn run_networks(
    size: usize,
    repeats: usize,
    profile: bool,
    device: &Device,
    log: &mut dyn FnMut(&str),
) -> candle_core::Result<BenchReport> {
    let g = Geometry::sd15();
    let dtype = crate::diffusion::model::compute_dtype(device);
    let started = Instant::now();
    let clip = ClipTextModel::new(&random_vb(dtype, device, None), &g.clip)?;
    let unet = Unet::new(&random_vb(dtype, device, None), &g.unet)?;
    let vae = Vae::new(&random_vb(dtype, device, None), &g.vae)?;
    let mut report = BenchReport {
        build_secs: started.elapsed().as_secs_f64(),
        ..BenchReport::default()
    };
    log(&format!(
        "built SD 1.5 networks with random weights in {:.2} s ({dtype:?}, {} threads, Easel kernels {})",
        report.build_secs,
        rayon::current_num_threads(),
        if crate::diffusion::ops::kernels_enabled() {
            "on"
        } else {
            "off (EASEL_KERNELS)"
        }
    ));

    let time = |f: &mut dyn FnMut() -> candle_core::Result<()>| -> candle_core::Result<f64> {
        let mut best = f64::INFINITY;
        for _ in 0..repeats.max(1) {
            let t = Instant::now();
            f()?;
            best = best.min(t.elapsed().as_secs_f64());
        }
        Ok(best)
    };
    let ids = Tensor::from_vec(
        (0..77u32).map(|i| 49406 + (i % 2)).collect::<Vec<_>>(),
        (1, 77),
        device,
    )?;
    report.clip_secs = time(&mut || clip.forward(&ids, 1).map(|_| ()))?;
    log(&format!("CLIP encode, one chunk: {:.3} s", report.clip_secs));

    let lat = size / 8;
    let x = Tensor::randn(0f32, 1.0, (2, 4, lat, lat), device)?.to_dtype(dtype)?;
    let ctx = Tensor::randn(0f32, 1.0, (2, 77, 768), device)?.to_dtype(dtype)?;
    let unet_step = time_runs(repeats, profile, &mut || {
        unet.forward(&x, &[500.0], &ctx).map(|_| ())
    })?;
    report.unet_step_secs = unet_step.best_secs;
    log(&format!(
        "UNet step, {size}x{size}, CFG batch 2: {:.2} s",
        report.unet_step_secs
    ));
    if profile {
        for line in profile_lines("the UNet step", &unet_step.ops, unet_step.mean_secs) {
            log(&line);
        }
    }
    report.unet_profile = unet_step.ops;

    let z = Tensor::randn(0f32, 1.0, (1, 4, lat, lat), device)?.to_dtype(dtype)?;
    report.preview_secs = time(&mut || {
        crate::diffusion::preview::latent_preview(&z.to_dtype(DType::F32)?)
            .map(|_| ())
            .map_err(|e| candle_core::Error::Msg(e.to_string()))
    })?;
    log(&format!(
        "live preview, {size}x{size}: {:.2} ms ({:.4} % of a UNet step)",
        report.preview_secs * 1000.0,
        report.preview_secs / report.unet_step_secs * 100.0
    ));
    let decode = time_runs(repeats, profile, &mut || vae.decode(&z).map(|_| ()))?;
    report.vae_decode_secs = decode.best_secs;
    log(&format!(
        "VAE decode, {size}x{size}: {:.2} s",
        report.vae_decode_secs
    ));
    if profile {
        for line in profile_lines("the VAE decode", &decode.ops, decode.mean_secs) {
            log(&line);
        }
    }
    report.vae_profile = decode.ops;
    drop(vae);
    drop(clip);
    // One ControlNet unit: SD 1.5's ControlNet (the UNet's encoder, the 16-32-96-256 hint block).
    let control = crate::diffusion::controlnet::ControlNet::new(
        &random_vb(dtype, device, None),
        &crate::models::controlnet::ControlGeometry {
            unet: g.unet.clone(),
            hint_channels: 3,
            hint_levels: vec![16, 32, 96, 256],
        },
    )?;
    let hint = Tensor::rand(0f32, 1.0, (2, 3, size, size), device)?.to_dtype(dtype)?;
    let controlnet = time_runs(repeats, profile, &mut || {
        control.forward(&x, &[500.0], &ctx, &hint).map(|_| ())
    })?;
    report.controlnet_secs = controlnet.best_secs;
    log(&format!(
        "ControlNet, {size}x{size}, CFG batch 2: {:.2} s ({:.0} % of a UNet step)",
        report.controlnet_secs,
        report.controlnet_secs / report.unet_step_secs * 100.0
    ));
    if profile {
        for line in profile_lines("the ControlNet unit", &controlnet.ops, controlnet.mean_secs) {
            log(&line);
        }
    }
    report.peak_rss_bytes = crate::system::peak_rss_bytes();
    Ok(report)
}

/// `easel bench --fast` figures: the fast path against the default path, per finished image.
#[derive(Debug, Clone, Default)]
pub struct FastReport {
    /// Seconds per CLIP encode of one 77-token chunk (each path encodes the prompt and the negative prompt).
    pub clip_secs: f64,
    /// Seconds per UNet evaluation at batch 1 (CFG 1 skips the unconditional half).
    pub unet_batch1_secs: f64,
    /// Seconds per UNet evaluation at CFG batch 2.
    pub unet_batch2_secs: f64,
    /// Seconds per TAESD decode of one image.
    pub taesd_decode_secs: f64,
    /// Seconds per full VAE decode of one image.
    pub vae_decode_secs: f64,
    /// Fast path: LCM, 6 steps, CFG 1, TAESD decode.
    pub fast_secs: f64,
    /// Default path: 20 steps at CFG batch 2, full VAE decode.
    pub default_secs: f64,
}

/// Steps of the fast path (LCM with an LCM-LoRA; the prompt panel's Fast preset).
pub const FAST_STEPS: usize = 6;
/// Steps of A1111's default path.
pub const DEFAULT_STEPS: usize = 20;

/// Times the pieces of one `size`² image at full SD 1.5 size with random weights (a random
/// full-size TAESD too) and adds them up: the fast path (6 UNet evaluations at batch 1, TAESD
/// decode) against the default (20 evaluations at CFG batch 2, full VAE decode). Sampler
/// arithmetic is negligible next to a UNet evaluation, so per-step timings stand for whole runs.
///
/// # Errors
/// Tensor failures.
pub fn run_fast(
    size: usize,
    repeats: usize,
    device: &Device,
    log: &mut dyn FnMut(&str),
) -> Result<FastReport, crate::diffusion::DiffusionError> {
    let g = Geometry::sd15();
    let dtype = crate::diffusion::model::compute_dtype(device);
    let clip = ClipTextModel::new(&random_vb(dtype, device, None), &g.clip)?;
    let unet = Unet::new(&random_vb(dtype, device, None), &g.unet)?;
    let vae = Vae::new(&random_vb(dtype, device, None), &g.vae)?;
    let taesd = crate::diffusion::taesd::TinyDecoder::random_sd(device, dtype)?;
    log(&format!(
        "built SD 1.5 networks and a full-size TAESD decoder with random weights ({dtype:?}, {} threads)",
        rayon::current_num_threads()
    ));
    let time = |f: &mut dyn FnMut() -> Result<(), crate::diffusion::DiffusionError>| {
        let mut best = f64::INFINITY;
        for _ in 0..repeats.max(1) {
            let t = Instant::now();
            f()?;
            best = best.min(t.elapsed().as_secs_f64());
        }
        Ok::<f64, crate::diffusion::DiffusionError>(best)
    };
    let ids = Tensor::from_vec(
        (0..77u32).map(|i| 49406 + (i % 2)).collect::<Vec<_>>(),
        (1, 77),
        device,
    )?;
    let mut r = FastReport {
        clip_secs: time(&mut || Ok(clip.forward(&ids, 1).map(|_| ())?))?,
        ..FastReport::default()
    };
    let lat = size / 8;
    let step = |batch: usize| -> Result<f64, crate::diffusion::DiffusionError> {
        let x = Tensor::randn(0f32, 1.0, (batch, 4, lat, lat), device)?.to_dtype(dtype)?;
        let ctx = Tensor::randn(0f32, 1.0, (batch, 77, 768), device)?.to_dtype(dtype)?;
        time(&mut || Ok(unet.forward(&x, &[500.0], &ctx).map(|_| ())?))
    };
    r.unet_batch1_secs = step(1)?;
    log(&format!(
        "UNet step, {size}x{size}, batch 1 (CFG 1): {:.2} s",
        r.unet_batch1_secs
    ));
    r.unet_batch2_secs = step(2)?;
    log(&format!(
        "UNet step, {size}x{size}, CFG batch 2: {:.2} s",
        r.unet_batch2_secs
    ));
    let z = Tensor::randn(0f32, 1.0, (1, 4, lat, lat), device)?.to_dtype(dtype)?;
    r.taesd_decode_secs = time(&mut || taesd.decode(&z).map(|_| ()))?;
    log(&format!(
        "TAESD decode, {size}x{size}: {:.2} s",
        r.taesd_decode_secs
    ));
    r.vae_decode_secs = time(&mut || Ok(vae.decode(&z).map(|_| ())?))?;
    log(&format!("VAE decode, {size}x{size}: {:.2} s", r.vae_decode_secs));
    r.fast_secs = 2.0 * r.clip_secs + FAST_STEPS as f64 * r.unet_batch1_secs + r.taesd_decode_secs;
    r.default_secs = 2.0 * r.clip_secs + DEFAULT_STEPS as f64 * r.unet_batch2_secs + r.vae_decode_secs;
    log(&format!(
        "fast path (LCM {FAST_STEPS} steps, CFG 1 = UNet batch 1, TAESD decode): {:.1} s to a finished {size}x{size} image",
        r.fast_secs
    ));
    log(&format!(
        "default path ({DEFAULT_STEPS} steps, CFG batch 2, full VAE decode): {:.1} s (from the per-step and decode timings)",
        r.default_secs
    ));
    log(&format!(
        "the fast path is {:.1}x faster",
        r.default_secs / r.fast_secs
    ));
    Ok(r)
}

/// [`run_fast`] on the CPU, for `easel bench --fast`.
///
/// # Errors
/// Tensor failures.
pub fn run_fast_cpu(size: usize, repeats: usize, out: &mut dyn FnMut(&str)) -> anyhow::Result<()> {
    run_fast(size, repeats, &Device::Cpu, out)?;
    Ok(())
}

/// Writes a full-size SD 1.5 checkpoint with random f16 weights in the LDM layout to `path`
/// (≈ 2 GB), using the same name mapping the loader uses in reverse.
pub fn write_random_sd15_checkpoint(path: &Path) -> anyhow::Result<()> {
    let g = Geometry::sd15();
    let rec = Arc::new(Mutex::new(Vec::new()));
    let device = Device::Cpu;
    // Build each network once against a recording backend to learn every parameter's name and shape.
    let unet_names = {
        rec.lock().unwrap_or_else(PoisonError::into_inner).clear();
        Unet::new(&random_vb(DType::F16, &device, Some(rec.clone())), &g.unet)?;
        std::mem::take(&mut *rec.lock().unwrap_or_else(PoisonError::into_inner))
    };
    let vae_names = {
        Vae::new(&random_vb(DType::F16, &device, Some(rec.clone())), &g.vae)?;
        std::mem::take(&mut *rec.lock().unwrap_or_else(PoisonError::into_inner))
    };
    let clip_names = {
        ClipTextModel::new(&random_vb(DType::F16, &device, Some(rec.clone())), &g.clip)?;
        std::mem::take(&mut *rec.lock().unwrap_or_else(PoisonError::into_inner))
    };
    let levels = g.vae.ch_mult.len();
    let mut tensors: Vec<(String, Tensor)> = Vec::new();
    for (name, shape) in unet_names {
        let key =
            keymap::unet_key(&name, &g.unet).ok_or_else(|| anyhow::anyhow!("no LDM name for UNet {name}"))?;
        tensors.push((
            key,
            Tensor::randn(0f32, 0.02, shape, &device)?.to_dtype(DType::F16)?,
        ));
    }
    for (name, mut shape) in vae_names {
        let key =
            keymap::vae_key(&name, levels).ok_or_else(|| anyhow::anyhow!("no LDM name for VAE {name}"))?;
        if key.contains(".attn_1.") && key.ends_with(".weight") && shape.len() == 2 {
            shape.extend([1, 1]); // LDM stores the VAE attention projections as 1x1 convolutions
        }
        tensors.push((
            key,
            Tensor::randn(0f32, 0.02, shape, &device)?.to_dtype(DType::F16)?,
        ));
    }
    for (name, shape) in clip_names {
        tensors.push((
            keymap::clip_key(&name),
            Tensor::randn(0f32, 0.02, shape, &device)?.to_dtype(DType::F16)?,
        ));
    }
    let alphas = g.schedule.alphas_cumprod();
    tensors.push(("alphas_cumprod".into(), Tensor::from_vec(alphas, 1000, &device)?));
    candle_core::safetensors::save(&tensors.into_iter().collect(), path)?;
    Ok(())
}

/// Writes a random kohya-format LoRA for the SD 1.5 geometry (rank `rank`, alpha `rank / 2`) on every
/// attention projection, feed-forward and `proj_in`/`proj_out` of the UNet and every attention and
/// MLP projection of the text encoder: what a typical character or style LoRA touches.
pub fn write_random_sd15_lora(path: &Path, rank: usize) -> anyhow::Result<usize> {
    let g = Geometry::sd15();
    let rec = Arc::new(Mutex::new(Vec::new()));
    let device = Device::Cpu;
    Unet::new(&random_vb(DType::F16, &device, Some(rec.clone())), &g.unet)?;
    let unet = std::mem::take(&mut *rec.lock().unwrap_or_else(PoisonError::into_inner));
    ClipTextModel::new(&random_vb(DType::F16, &device, Some(rec.clone())), &g.clip)?;
    let clip = std::mem::take(&mut *rec.lock().unwrap_or_else(PoisonError::into_inner));
    let unet_targets = [
        "to_q",
        "to_k",
        "to_v",
        "to_out.0",
        "ff.net.0.proj",
        "ff.net.2",
        "proj_in",
        "proj_out",
    ];
    let te_targets = ["q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2"];
    let mut tensors: Vec<(String, Tensor)> = Vec::new();
    let mut modules = 0;
    for (prefix, names, targets) in [
        ("lora_unet_", unet, &unet_targets[..]),
        ("lora_te_", clip, &te_targets[..]),
    ] {
        for (name, shape) in names {
            let Some(module) = name.strip_suffix(".weight") else {
                continue;
            };
            if !targets.iter().any(|t| module.ends_with(t)) || shape.len() < 2 {
                continue;
            }
            let key = format!("{prefix}{}", module.replace('.', "_"));
            let (out, inp) = (shape[0], shape[1]);
            let tail: Vec<usize> = shape[2..].to_vec();
            let mut down_shape = vec![rank, inp];
            down_shape.extend(&tail);
            let mut up_shape = vec![out, rank];
            up_shape.extend(tail.iter().map(|_| 1));
            let randn = |s: Vec<usize>| Tensor::randn(0f32, 0.01, s, &device)?.to_dtype(DType::F16);
            tensors.push((format!("{key}.lora_down.weight"), randn(down_shape)?));
            tensors.push((format!("{key}.lora_up.weight"), randn(up_shape)?));
            tensors.push((
                format!("{key}.alpha"),
                Tensor::new(&[rank as f32 / 2.0], &device)?
                    .to_dtype(DType::F16)?
                    .reshape(())?,
            ));
            modules += 1;
        }
    }
    candle_core::safetensors::save(&tensors.into_iter().collect(), path)?;
    Ok(modules)
}
/// All of `easel bench`: canvas painting, the networks at `size`² (unless `load_only`; with `profile`,
/// time per kind of op), and with `load_dir` checkpoint loading and LoRA changes on a random
/// full-size checkpoint written there. Each finished line goes to `out`.
pub fn run(
    size: usize,
    repeats: usize,
    profile: bool,
    load_dir: Option<&Path>,
    load_only: bool,
    out: &mut dyn FnMut(&str),
) -> anyhow::Result<()> {
    let device = candle_core::Device::Cpu;
    let canvas = run_canvas(4096);
    say!(
        out,
        "canvas {0}x{0}: pointer move while painting {1:.2} ms mean, {2:.2} ms worst; undo {3:.1} ms; \
         stroke history {4:.1} MB",
        canvas.size,
        canvas.move_ms,
        canvas.worst_move_ms,
        canvas.undo_ms,
        canvas.history_bytes as f64 / 1e6
    );
    if !load_only {
        run_networks(size, repeats, profile, &device, out)?;
        if let Some(rss) = crate::system::peak_rss_bytes() {
            say!(out, "peak RSS: {:.2} GiB", rss as f64 / f64::from(1u32 << 30));
        }
    }
    if let Some(dir) = load_dir {
        let path = dir.join("easel-bench-sd15-random-fp16.safetensors");
        if !path.exists() {
            say!(
                out,
                "writing a random full-size fp16 checkpoint to {} …",
                path.display()
            );
            write_random_sd15_checkpoint(&path)?;
        }
        // Warm the page cache, then time open + build.
        let _ = std::fs::read(&path)?;
        let started = std::time::Instant::now();
        let mut model = SdModel::open(&path, &device, candle_core::DType::F32)?;
        say!(
            out,
            "loaded {} ({:.2} GiB, fp16 → f32) in {:.2} s (networks built in {:.2} s)",
            path.display(),
            std::fs::metadata(&path)?.len() as f64 / f64::from(1u32 << 30),
            started.elapsed().as_secs_f64(),
            model.load_secs
        );
        if let Some(rss) = crate::system::peak_rss_bytes() {
            say!(out, "peak RSS: {:.2} GiB", rss as f64 / f64::from(1u32 << 30));
        }
        // Changing LoRAs between jobs: merge into, and restore from, the loaded weights.
        let lora_path = dir.join("easel-bench-sd15-random-lora-r32.safetensors");
        let modules = write_random_sd15_lora(&lora_path, 32)?;
        let lora = std::sync::Arc::new(LoraFile::open(&lora_path, "bench")?);
        for (what, weight) in [("apply", 1.0), ("change weight", 0.6)] {
            let started = std::time::Instant::now();
            model.set_loras(&[Applied {
                lora: lora.clone(),
                te: weight,
                unet: weight,
            }])?;
            say!(
                out,
                "LoRA {what} (rank 32, {modules} modules, {:.0} MB): {:.2} s",
                std::fs::metadata(&lora_path)?.len() as f64 / 1e6,
                started.elapsed().as_secs_f64()
            );
        }
        let started = std::time::Instant::now();
        model.set_loras(&[])?;
        say!(out, "LoRA removed: {:.2} s", started.elapsed().as_secs_f64());
        if let Some(rss) = crate::system::peak_rss_bytes() {
            say!(out, "peak RSS: {:.2} GiB", rss as f64 / f64::from(1u32 << 30));
        }
    }
    Ok(())
}
