//! The `easel` binary: `generate`, `info`, `png-info`, `download` and `bench` on the command line.
//! Thin: it parses arguments, drives the engine and prints; all work lives in the library.

mod cli_detect;
mod cli_download;
mod cli_fix;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::Context as _;
use clap::{CommandFactory as _, FromArgMatches as _, Parser, Subcommand};
use easel::config::{AppPaths, Settings};
use easel::engine::{Engine, Event, FailureKind};
use easel::infotext::{self, OutputFormat};
use easel::params::{GenerationParams, Overrides, RngSource, Sampler, Schedule};
mod cli_control;

use easel::request::{
    DeviceChoice, Img2ImgSettings, InitImage, InpaintArea, MaskedContent, Request, ResizeMode,
    SoftInpainting, VaeDecoder,
};

#[derive(Parser)]
#[command(
    name = "easel",
    version,
    about = "Paint with Stable Diffusion on your own computer"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Generate images from a prompt (txt2img, or img2img/inpaint with --init/--mask) and write PNG, JPEG or WebP files with A1111 infotext.
    Generate(Box<GenerateArgs>),
    /// Show what a model file is: family, storage dtype, tensor count, size, AutoV2 hash.
    Info {
        /// A .safetensors checkpoint or a diffusers folder.
        path: PathBuf,
        /// Skip the SHA-256 (which reads the whole file).
        #[arg(long)]
        no_hash: bool,
    },
    /// Print the generation parameters stored in an image (PNG, JPEG, WebP, AVIF) by A1111, Forge,
    /// ComfyUI, InvokeAI, NovelAI, SwarmUI, Fooocus, TensorArt or Civitai; exit code 2 when it has none.
    PngInfo {
        /// The image.
        image: PathBuf,
        /// Print one JSON object (generator, prompt, sampler, …, infotext, warnings) instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Download a model file (Hugging Face, Civitai, an https URL or a catalogue entry) into the
    /// folder for its kind; resumable, checked against the published SHA-256.
    Download(cli_download::DownloadArgs),
    /// Find faces in an image with the built-in MediaPipe detector (weights ship with Easel);
    /// print the boxes (--json for machines) and optionally write a mask of them.
    Detect(cli_detect::DetectArgs),
    /// Time CLIP, a UNet step and VAE decode at full SD 1.5 size with random weights, and checkpoint loading.
    Bench {
        /// Image size in pixels (square).
        #[arg(long, default_value_t = 512)]
        size: usize,
        /// Runs per measurement (the best is reported).
        #[arg(long, default_value_t = 1)]
        repeats: usize,
        /// Also write a random full-size fp16 checkpoint to this folder and time loading it.
        #[arg(long)]
        load_dir: Option<PathBuf>,
        /// Skip the network timings (only the load test).
        #[arg(long)]
        load_only: bool,
        /// Also print the time per kind of op (convolutions, attention, norms, …) in the UNet step, the VAE decode and the ControlNet unit.
        #[arg(long)]
        profile: bool,
        /// Instead: seconds to a finished image with the fast path (LCM 6 steps, CFG 1, TAESD decode)
        /// against the default 20-step path, and the ratio.
        #[arg(long)]
        fast: bool,
    },
}

#[derive(clap::Args)]
struct GenerateArgs {
    /// Checkpoint (.safetensors single file or diffusers folder).
    #[arg(long)]
    model: PathBuf,
    /// The prompt.
    #[arg(long)]
    prompt: Option<String>,
    /// The negative prompt.
    #[arg(long)]
    negative: Option<String>,
    /// Sampling steps [default: 20].
    #[arg(long)]
    steps: Option<u32>,
    /// CFG scale [default: 7].
    #[arg(long)]
    cfg: Option<f32>,
    /// Sampler, A1111 name: "Euler a", "DPM++ 2M", "DPM++ 2M SDE", "DPM++ SDE", "LMS", "Restart", "DDIM",
    /// "UniPC", "LCM", "TCD", … (the README lists all) [default: Euler a].
    #[arg(long)]
    sampler: Option<String>,
    /// Schedule type: Automatic, Uniform, Karras, Exponential, Polyexponential, "SGM Uniform",
    /// "KL Optimal", "Align Your Steps", Simple, Normal, DDIM, Beta [default: Automatic].
    #[arg(long)]
    schedule: Option<String>,
    /// Seed; -1 picks a random one [default: -1].
    #[arg(long, allow_hyphen_values = true)]
    seed: Option<i64>,
    /// Noise source: gpu (A1111 default, CUDA-compatible Philox), cpu, or nv [default: gpu].
    #[arg(long)]
    rng: Option<String>,
    /// Eta noise seed delta (A1111 ENSD).
    #[arg(long)]
    ensd: Option<u64>,
    /// Width in pixels, a multiple of 8 [default: 512].
    #[arg(long)]
    width: Option<u32>,
    /// Height in pixels, a multiple of 8 [default: 512].
    #[arg(long)]
    height: Option<u32>,
    /// Clip skip (1 = last layer) [default: 1].
    #[arg(long)]
    clip_skip: Option<u32>,
    /// Number of batches; outputs are PATH-1.png … PATH-N.png [default: 1].
    #[arg(long)]
    batch_count: Option<u32>,
    /// Images per batch [default: 1].
    #[arg(long)]
    batch_size: Option<u32>,
    /// Where to run: auto, cpu, cuda, metal.
    #[arg(long, default_value = "auto")]
    device: String,
    /// Replay the parameters stored in this image (any tool `png-info` reads); flags given
    /// explicitly override them.
    #[arg(long)]
    params_from: Option<PathBuf>,
    /// img2img: start from this image (PNG, JPEG or WebP); it is fitted to --width/--height.
    #[arg(long)]
    init: Option<PathBuf>,
    /// img2img denoising strength, 0..1 [default: 0.75].
    #[arg(long)]
    strength: Option<f32>,
    /// How --init is fitted to the size: just-resize, crop (crop and resize), fill (resize and fill).
    #[arg(long)]
    resize_mode: Option<String>,
    /// Inpaint: mask image of the same size as --init; white = repaint (alpha is used when present).
    #[arg(long, requires = "init")]
    mask: Option<PathBuf>,
    /// Inpaint: mask feather in pixels [default: 4].
    #[arg(long)]
    mask_blur: Option<u32>,
    /// Inpaint: what the masked area starts from: original, fill, latent-noise, latent-nothing [default: original].
    #[arg(long)]
    masked_content: Option<String>,
    /// Inpaint: whole (the whole picture) or only-masked (the mask's box plus --padding, at full size).
    #[arg(long)]
    inpaint_area: Option<String>,
    /// Inpaint only masked: padding around the mask in pixels [default: 32].
    #[arg(long)]
    padding: Option<u32>,
    /// Inpaint: repaint everything except the mask.
    #[arg(long)]
    invert_mask: bool,
    /// Inpainting models: conditional mask weight, 0..1 [default: 1].
    #[arg(long)]
    mask_weight: Option<f32>,
    /// Inpaint: soft inpainting (A1111 1.8+): blend by mask strength at every step and composite by
    /// how much each area changed, so a feathered mask leaves no seam. Needs --mask, or --fix (it
    /// then softens every fix inpaint, as A1111 does in ADetailer's passes).
    #[arg(long)]
    soft_inpainting: bool,
    /// Soft inpainting "Schedule bias", 0..8 [default: 1].
    #[arg(long)]
    soft_schedule_bias: Option<f32>,
    /// Soft inpainting "Preservation strength", 0..8 [default: 0.5].
    #[arg(long)]
    soft_preservation: Option<f32>,
    /// Soft inpainting "Transition contrast boost", 1..32 [default: 4].
    #[arg(long)]
    soft_transition_boost: Option<f32>,
    /// Soft inpainting "Mask influence", 0..1 [default: 0].
    #[arg(long)]
    soft_mask_influence: Option<f32>,
    /// Soft inpainting "Difference threshold", above 0, at most 8 [default: 0.5].
    #[arg(long)]
    soft_difference_threshold: Option<f32>,
    /// Soft inpainting "Difference contrast", 0..8 [default: 2].
    #[arg(long)]
    soft_difference_contrast: Option<f32>,
    /// Folder with LoRA files for `<lora:name:weight>` tags in the prompt (repeatable)
    /// [default: the desktop app's LoRA folders].
    #[arg(long)]
    lora_dir: Vec<PathBuf>,
    /// Folder with textual-inversion embeddings (.safetensors) used by name in prompts (repeatable)
    /// [default: the desktop app's embeddings folders].
    #[arg(long)]
    embeddings_dir: Vec<PathBuf>,
    /// Final decode: full (the checkpoint's VAE) or taesd (the tiny autoencoder: much faster; needs
    /// taesd_decoder.safetensors in a vae-approx folder) [default: full, or what --params-from says].
    #[arg(long)]
    vae_decoder: Option<String>,
    /// Encode of the --init image: full (the checkpoint's VAE) or taesd (faster, softer; needs
    /// taesd_encoder.safetensors in a vae-approx folder) [default: full, or what --params-from says].
    #[arg(long)]
    vae_encoder: Option<String>,
    /// A standalone VAE file (.safetensors) used instead of the checkpoint's own, for decoding and
    /// encoding [default: the checkpoint's, or the `VAE:` file --params-from names, looked up in
    /// the VAE folders].
    #[arg(long)]
    vae: Option<PathBuf>,
    /// Folder searched for the `VAE:` file of --params-from (repeatable) [default: the app's vae
    /// folder, A1111's models/VAE, ComfyUI's models/vae].
    #[arg(long)]
    vae_dir: Vec<PathBuf>,
    /// Folder searched for taesd_decoder/taesd_encoder.safetensors (repeatable) [default: the app's vae-approx
    /// folder, A1111's models/VAE-taesd and models/VAE-approx, ComfyUI's models/vae_approx].
    #[arg(long)]
    vae_approx_dir: Vec<PathBuf>,
    /// Output file path.
    #[arg(long)]
    out: PathBuf,
    /// Output format: png (parameters text chunk), jpeg or webp (A1111's EXIF UserComment)
    /// [default: from --out's extension, else png].
    #[arg(long)]
    format: Option<String>,
    #[command(flatten)]
    control: cli_control::ControlArgs,
    #[command(flatten)]
    fix: cli_fix::FixArgs,
}

/// An error the user can fix (exit code 2) as opposed to an internal failure (exit code 1).
#[derive(Debug)]
struct BadInput(String);

impl std::fmt::Display for BadInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BadInput {}

fn bad(msg: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(BadInput(msg.into()))
}

/// Logs go to stderr; the desktop app also appends them to `easel.log` in its data folder.
fn init_logging(gui: bool) {
    use tracing_subscriber::fmt::writer::MakeWriterExt as _;
    let default = if gui { "warn,easel=info" } else { "warn" };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| default.into());
    let file = gui
        .then(|| {
            let path = AppPaths::platform().log_file();
            if let Some(dir) = path.parent() {
                let _ = std::fs::create_dir_all(dir);
            }
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .ok()
        })
        .flatten();
    match file {
        Some(file) => tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_ansi(false)
            .with_writer(std::io::stderr.and(std::sync::Mutex::new(file)))
            .init(),
        None => tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .init(),
    }
}

/// The desktop app leaves one core to the UI thread and the renderer: on a 2-core machine with a
/// software renderer, inference on every core made frames arrive 200–400 ms apart. CPU inference
/// threads come from `RAYON_NUM_THREADS` (candle reads it), so set it unless the user did.
#[expect(unsafe_code, reason = "set_var before any other thread exists")]
fn leave_a_core_for_the_ui() {
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
        let threads = cores.saturating_sub(1).max(1);
        // SAFETY: called first thing in main, while the process has a single thread.
        unsafe { std::env::set_var("RAYON_NUM_THREADS", threads.to_string()) };
    }
}

fn main() -> ExitCode {
    // Every command may run a network: reuse its freed buffers instead of faulting them in anew.
    // First, so that every thread shares the heap it sets up.
    easel::kernels::memory::keep_freed_memory();
    let started = std::time::Instant::now();
    let matches = Cli::command().get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    if cli.command.is_none() {
        leave_a_core_for_the_ui();
    }
    init_logging(cli.command.is_none());
    let result = match cli.command {
        Some(Command::Generate(args)) => match matches.subcommand_matches("generate") {
            Some(m) => generate(&args, m),
            None => Err(anyhow::anyhow!("internal error: no generate arguments")),
        },
        Some(Command::Info { path, no_hash }) => info(&path, no_hash),
        Some(Command::PngInfo { image, json }) => png_info(&image, json),
        Some(Command::Download(args)) => cli_download::run(&args),
        Some(Command::Detect(args)) => cli_detect::run(&args),
        Some(Command::Bench {
            size,
            repeats,
            load_dir,
            load_only,
            profile,
            fast,
        }) => {
            if fast {
                bench_fast(size, repeats)
            } else {
                bench(size, repeats, profile, load_dir.as_deref(), load_only)
            }
        }
        None => easel::ui::run(started).map(|()| ExitCode::SUCCESS),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            let limit = easel::text::MESSAGE_LIMIT;
            if err.downcast_ref::<BadInput>().is_some() {
                eprintln!(
                    "error: {}",
                    printable(&easel::text::shorten(&err.to_string(), limit))
                );
                ExitCode::from(2)
            } else {
                eprintln!(
                    "error: {}",
                    printable(&easel::text::shorten(&format!("{err:#}"), limit))
                );
                ExitCode::from(1)
            }
        }
    }
}

/// The generation metadata of `image`; a file that cannot be read, or that holds none, is bad
/// input with a message naming it.
fn image_metadata(image: &Path) -> anyhow::Result<infotext::ImageMetadata> {
    let read = infotext::read_image_file(image).map_err(|e| bad(e.to_string()))?;
    match read.metadata {
        Some(m) if m.states_anything() => Ok(m),
        other => {
            let keys = if read.keys.is_empty() {
                "none".to_owned()
            } else {
                read.keys.join(", ")
            };
            let why = other
                .map(|m| m.warnings.join("; "))
                .filter(|w| !w.is_empty())
                .map(|w| format!("; {w}"))
                .unwrap_or_default();
            Err(bad(format!(
                "{} carries no generation metadata ({} image; metadata texts found: {keys}{why})",
                image.display(),
                read.kind.name()
            )))
        }
    }
}

/// The `--rng` value: gpu, cpu or nv (A1111's names, any case).
fn cli_rng(name: &str) -> anyhow::Result<RngSource> {
    match name.to_ascii_lowercase().as_str() {
        "gpu" => Ok(RngSource::Gpu),
        "cpu" => Ok(RngSource::Cpu),
        "nv" => Ok(RngSource::Nv),
        other => Err(bad(format!("unknown --rng '{other}'; use gpu, cpu or nv"))),
    }
}

/// The file of a replayed `VAE: name`, looked up in `dirs`.
fn replayed_vae(name: &str, dirs: &[PathBuf]) -> anyhow::Result<PathBuf> {
    if let Some(path) = easel::models::vae_file::find(name, dirs) {
        return Ok(path);
    }
    if let Some(pickle) = easel::models::vae_file::find_pickle(name, dirs) {
        return Err(bad(easel::models::ModelError::Pickle { path: pickle }.to_string()));
    }
    let folders = dirs
        .iter()
        .map(|d| d.display().to_string())
        .collect::<Vec<_>>()
        .join(", ");
    Err(bad(format!(
        "the image was made with the VAE '{}', which is in none of the VAE folders ({folders}); put the file there, pass --vae PATH, or --vae-dir FOLDER",
        printable(name)
    )))
}

fn build_params(args: &GenerateArgs) -> anyhow::Result<GenerationParams> {
    let mut p = match &args.params_from {
        Some(image) => {
            let metadata = image_metadata(image)?;
            for warning in &metadata.warnings {
                eprintln!(
                    "warning: {}: {}",
                    image.display(),
                    printable(&easel::text::shorten(warning, easel::text::MESSAGE_LIMIT))
                );
            }
            let (params, problems) = metadata.generation_params();
            for problem in problems {
                let overridden = match problem {
                    infotext::ReplayProblem::Sampler(_) => args.sampler.is_some(),
                    infotext::ReplayProblem::Schedule(_) => args.schedule.is_some(),
                    infotext::ReplayProblem::Other(_) => false,
                };
                if !overridden {
                    let hint = match problem {
                        infotext::ReplayProblem::Sampler(_) => "; pick one with --sampler",
                        infotext::ReplayProblem::Schedule(_) => "; pick one with --schedule",
                        infotext::ReplayProblem::Other(_) => "",
                    };
                    return Err(bad(format!("{}: {problem}{hint}", image.display())));
                }
            }
            params
        }
        None => GenerationParams::default(),
    };
    if args.params_from.is_none() && args.prompt.is_none() {
        return Err(bad("--prompt is required (or --params-from IMAGE.png)"));
    }
    let parse_or_bad = |e: easel::params::ParamsError| bad(e.to_string());
    Overrides {
        prompt: args.prompt.clone(),
        negative_prompt: args.negative.clone(),
        steps: args.steps,
        sampler: args
            .sampler
            .as_deref()
            .map(Sampler::from_name)
            .transpose()
            .map_err(parse_or_bad)?,
        schedule: args
            .schedule
            .as_deref()
            .map(Schedule::from_name)
            .transpose()
            .map_err(parse_or_bad)?,
        cfg_scale: args.cfg,
        width: args.width,
        height: args.height,
        clip_skip: args.clip_skip,
        batch_count: args.batch_count,
        batch_size: args.batch_size,
        rng: args.rng.as_deref().map(cli_rng).transpose()?,
        eta_noise_seed_delta: args.ensd,
        denoising_strength: args.strength,
        ..Overrides::default()
    }
    .apply(&mut p);
    match args.seed {
        Some(-1) => p.seed = easel::params::random_seed(),
        Some(s) if s >= 0 => p.seed = s as u64,
        Some(s) => return Err(bad(format!("seed {s} is negative; use -1 for a random seed"))),
        // No seed flag: a replayed infotext keeps its seed, a fresh prompt gets a random one.
        None if args.params_from.is_none() => p.seed = easel::params::random_seed(),
        None => {}
    }
    Ok(p)
}

fn build_init(args: &GenerateArgs, params: &GenerationParams) -> anyhow::Result<Option<InitImage>> {
    let Some(path) = &args.init else {
        let img2img_flags = args.strength.is_some()
            || args.resize_mode.is_some()
            || args.mask_blur.is_some()
            || args.masked_content.is_some()
            || args.inpaint_area.is_some()
            || args.padding.is_some()
            || args.invert_mask
            || args.mask_weight.is_some()
            // With --fix, soft inpainting softens the fix's inpaints: no --init needed.
            || (soft_asked(args) && args.fix.fix.is_empty());
        if img2img_flags {
            return Err(bad("img2img and inpaint options need --init IMAGE"));
        }
        return Ok(None);
    };
    let mut settings = infotext::read_img2img(&params.extra);
    if let Some(v) = &args.resize_mode {
        settings.resize_mode = ResizeMode::from_name(v).ok_or_else(|| {
            bad(format!(
                "unknown --resize-mode '{v}'; use just-resize, crop or fill"
            ))
        })?;
    }
    if let Some(v) = args.mask_blur {
        settings.mask_blur = v;
    }
    if let Some(v) = &args.masked_content {
        settings.masked_content = MaskedContent::from_name(v).ok_or_else(|| {
            bad(format!(
                "unknown --masked-content '{v}'; use original, fill, latent-noise or latent-nothing"
            ))
        })?;
    }
    if let Some(v) = &args.inpaint_area {
        settings.inpaint_area = InpaintArea::from_name(v)
            .ok_or_else(|| bad(format!("unknown --inpaint-area '{v}'; use whole or only-masked")))?;
    }
    if let Some(v) = args.padding {
        settings.padding = v;
    }
    settings.invert_mask |= args.invert_mask;
    if let Some(v) = args.mask_weight {
        settings.mask_weight = v;
    }
    apply_soft_flags(args, &mut settings)?;
    settings.validate().map_err(|e| bad(e.to_string()))?;
    if let Some(strength) = params.denoising_strength {
        easel::request::validate_strength(strength).map_err(|e| bad(e.to_string()))?;
    }
    let image = easel::imaging::load_rgb(path).map_err(|e| bad(e.to_string()))?;
    let mask = match &args.mask {
        Some(m) => {
            let mask = easel::imaging::load_mask(m).map_err(|e| bad(e.to_string()))?;
            if mask.dimensions() != image.dimensions() {
                return Err(bad(format!(
                    "the mask {} is {}x{} but the image {} is {}x{}; they must be the same size",
                    m.display(),
                    mask.width(),
                    mask.height(),
                    path.display(),
                    image.width(),
                    image.height()
                )));
            }
            Some(mask)
        }
        None => None,
    };
    Ok(Some(InitImage {
        image,
        mask,
        settings,
    }))
}

/// The `--soft-*` value flags with their names.
fn soft_flags(args: &GenerateArgs) -> [(&'static str, Option<f32>); 6] {
    [
        ("--soft-schedule-bias", args.soft_schedule_bias),
        ("--soft-preservation", args.soft_preservation),
        ("--soft-transition-boost", args.soft_transition_boost),
        ("--soft-mask-influence", args.soft_mask_influence),
        ("--soft-difference-threshold", args.soft_difference_threshold),
        ("--soft-difference-contrast", args.soft_difference_contrast),
    ]
}

/// `--soft-inpainting` and its values over `base` (what --params-from gave, if anything).
fn soft_settings(
    args: &GenerateArgs,
    base: Option<SoftInpainting>,
) -> anyhow::Result<Option<SoftInpainting>> {
    let mut soft = base;
    if args.soft_inpainting && soft.is_none() {
        soft = Some(SoftInpainting::default());
    }
    let given = soft_flags(args);
    if let Some((flag, _)) = given.iter().find(|(_, v)| v.is_some())
        && soft.is_none()
    {
        return Err(bad(format!("{flag} needs --soft-inpainting")));
    }
    if let Some(soft) = &mut soft {
        let [a, b, c, d, e, f] = given.map(|(_, v)| v);
        for (slot, v) in [
            (&mut soft.schedule_bias, a),
            (&mut soft.preservation, b),
            (&mut soft.transition_boost, c),
            (&mut soft.mask_influence, d),
            (&mut soft.difference_threshold, e),
            (&mut soft.difference_contrast, f),
        ] {
            if let Some(v) = v {
                *slot = v;
            }
        }
    }
    Ok(soft)
}

/// True when soft inpainting was asked for on the command line.
fn soft_asked(args: &GenerateArgs) -> bool {
    args.soft_inpainting || soft_flags(args).iter().any(|(_, v)| v.is_some())
}

/// `--soft-inpainting` and its values over what --params-from gave. Soft inpainting asked for on
/// the command line needs --mask, or --fix (whose inpaints it softens); one that only came from
/// --params-from is dropped without a mask, as A1111 ignores it for plain img2img.
fn apply_soft_flags(args: &GenerateArgs, settings: &mut Img2ImgSettings) -> anyhow::Result<()> {
    settings.soft = soft_settings(args, settings.soft.take())?;
    if args.mask.is_none() && settings.soft.is_some() {
        if soft_asked(args) && args.fix.fix.is_empty() {
            return Err(bad(
                "--soft-inpainting needs --mask MASK.png (it softens an inpainting mask) or --fix faces|hands (it softens each fix's mask)",
            ));
        }
        settings.soft = None;
    }
    Ok(())
}

/// Refuses an `--out` that cannot be written before any work starts: a folder, a missing or
/// read-only folder. A probe file is created and removed in the output folder.
fn check_output(out: &Path) -> anyhow::Result<()> {
    if out.is_dir() {
        return Err(bad(format!(
            "--out {} is a folder; give a file name such as {}",
            out.display(),
            out.join("image.png").display()
        )));
    }
    let dir = match out.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if !dir.is_dir() {
        return Err(bad(format!("output folder {} does not exist", dir.display())));
    }
    let probe = dir.join(format!(".easel-write-check-{}", std::process::id()));
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
    {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            Ok(())
        }
        Err(e) => Err(bad(format!(
            "cannot write to the output folder {}: {e}",
            dir.display()
        ))),
    }
}

/// `text` with control characters other than newline and tab shown as `\u{…}` escapes, so a
/// file cannot send terminal escape sequences through `png-info`.
fn printable(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() && c != '\n' && c != '\t' {
                c.escape_unicode().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// Writes `text` to stdout; a reader that went away (`easel png-info x.png | head -1`) ends the
/// output quietly instead of failing.
fn print_out(text: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}

/// A line above the progress bar, or on stderr when the bar is hidden (not a terminal).
fn say(bar: &indicatif::ProgressBar, line: &str) {
    if bar.is_hidden() {
        eprintln!("{line}");
    } else {
        bar.println(line);
    }
}

/// `out.png` for one image; `out-1.png`, `out-2.png`, … for several.
fn output_path(out: &Path, index: usize, total: usize, format: OutputFormat) -> PathBuf {
    if total <= 1 {
        return out.to_path_buf();
    }
    let stem = out.file_stem().and_then(|s| s.to_str()).unwrap_or("easel");
    let ext = out
        .extension()
        .and_then(|s| s.to_str())
        .unwrap_or(format.extension());
    out.with_file_name(format!("{stem}-{}.{ext}", index + 1))
}

/// The output format: `--format`, else the one `--out`'s extension names, else PNG. A format
/// that contradicts the extension is refused rather than writing, say, JPEG bytes into `x.png`.
fn output_format(args: &GenerateArgs) -> anyhow::Result<OutputFormat> {
    let from_ext = OutputFormat::from_path(&args.out);
    let Some(name) = &args.format else {
        return Ok(from_ext.unwrap_or_default());
    };
    let format = OutputFormat::from_name(name)
        .ok_or_else(|| bad(format!("unknown --format '{name}'; use png, jpeg or webp")))?;
    match from_ext {
        Some(ext) if ext != format => Err(bad(format!(
            "--out {} names a {} file but --format is {format}; give the file a .{} name",
            args.out.display(),
            ext.name().to_ascii_uppercase(),
            format.extension()
        ))),
        _ => Ok(format),
    }
}

fn generate(args: &GenerateArgs, matches: &clap::ArgMatches) -> anyhow::Result<ExitCode> {
    let params = build_params(args)?;
    let mut controls = cli_control::units(matches).map_err(bad)?;
    if controls.is_empty() {
        let (paths, folders) = {
            let paths = AppPaths::platform();
            let (settings, _) = Settings::load(&paths.settings_file());
            (paths, settings.model_folders)
        };
        controls = cli_control::replay_units(&params.extra, matches, &paths.controlnet_dirs(&folders))
            .map_err(bad)?;
    }
    let format = output_format(args)?;
    let device = DeviceChoice::from_name(&args.device).ok_or_else(|| {
        bad(format!(
            "unknown --device '{}'; use auto, cpu, cuda or metal",
            args.device
        ))
    })?;
    check_output(&args.out)?;
    let init = build_init(args, &params)?;
    let fix_picture_only = args.init.is_some() && args.strength.is_none() && args.mask.is_none();
    let mut fix = cli_fix::settings(&args.fix, fix_picture_only)?;
    if let Some(fix) = &mut fix {
        // A1111 runs its always-on scripts (soft inpainting among them) in ADetailer's inpaints.
        let base = init.as_ref().and_then(|i| i.settings.soft);
        fix.soft = soft_settings(args, base)?;
    }
    let total_images = usize::try_from(params.image_count()).unwrap_or(usize::MAX);
    let app_folders = || {
        let paths = AppPaths::platform();
        let (settings, _) = Settings::load(&paths.settings_file());
        (paths, settings.model_folders)
    };
    let lora_dirs = if args.lora_dir.is_empty() {
        let (paths, folders) = app_folders();
        paths.lora_dirs(&folders)
    } else {
        args.lora_dir.clone()
    };
    let embedding_dirs = if args.embeddings_dir.is_empty() {
        let (paths, folders) = app_folders();
        paths.embedding_dirs(&folders)
    } else {
        args.embeddings_dir.clone()
    };
    // A replayed `VAE Decoder: TAESD` or `VAE Encoder: TAESD` asks for TAESD, as A1111's setting
    // override does.
    let vae_method = |flag: &Option<String>, name: &str, key: &str| match flag {
        Some(value) => VaeDecoder::from_name(value)
            .ok_or_else(|| bad(format!("unknown --{name} '{value}'; use full or taesd"))),
        None if infotext::reads_taesd(&params.extra, key) => Ok(VaeDecoder::Taesd),
        None => Ok(VaeDecoder::Full),
    };
    let vae_decoder = vae_method(&args.vae_decoder, "vae-decoder", infotext::VAE_DECODER)?;
    let vae_encoder = vae_method(&args.vae_encoder, "vae-encoder", infotext::VAE_ENCODER)?;
    let vae_approx_dirs = if args.vae_approx_dir.is_empty() {
        let (paths, folders) = app_folders();
        paths.vae_approx_dirs(&folders)
    } else {
        args.vae_approx_dir.clone()
    };
    let vae = match &args.vae {
        Some(path) => Some(path.clone()),
        None => match params.extra.iter().find(|(k, _)| k == infotext::VAE_NAME) {
            Some((_, name)) => {
                let dirs = if args.vae_dir.is_empty() {
                    let (paths, folders) = app_folders();
                    paths.vae_dirs(&folders)
                } else {
                    args.vae_dir.clone()
                };
                Some(replayed_vae(name, &dirs)?)
            }
            None => None,
        },
    };
    let request = Request {
        model: args.model.clone(),
        vae,
        device,
        params: params.clone(),
        init,
        lora_dirs,
        embedding_dirs,
        previews: false,
        controls,
        vae_decoder,
        vae_encoder,
        vae_approx_dirs,
        fix,
    };
    let engine = Engine::spawn(None).context("could not start the inference thread")?;
    let (job, cancel) = engine.submit(request);
    {
        let cancel = cancel.clone();
        let mut interrupted = false;
        ctrlc::set_handler(move || {
            if interrupted {
                std::process::exit(130);
            }
            interrupted = true;
            eprintln!("\nstopping after the current step… (press Ctrl-C again to quit at once)");
            cancel.store(true, Ordering::Relaxed);
        })
        .context("could not install the Ctrl-C handler")?;
    }
    let bar = indicatif::ProgressBar::new(u64::from(params.steps) * u64::from(params.batch_count));
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} [{bar:30}] {pos}/{len} steps {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.enable_steady_tick(Duration::from_millis(200));
    let mut written = 0;
    loop {
        let Ok(event) = engine.events().recv() else {
            bar.abandon();
            anyhow::bail!("the inference thread stopped unexpectedly");
        };
        match event {
            Event::LoadingModel { path, .. } => bar.set_message(format!("loading {}", path.display())),
            Event::ModelLoaded { secs, .. } => say(&bar, &format!("model loaded in {secs:.2} s")),
            Event::Progress {
                info,
                steps_per_sec,
                eta_secs,
                ..
            } => {
                bar.set_length((info.steps * info.batch_count) as u64);
                bar.set_position((info.batch * info.steps + info.step) as u64);
                bar.set_message(format!("{steps_per_sec:.2} it/s, ETA {eta_secs:.0} s"));
            }
            Event::Image { image, .. } => {
                let path = output_path(&args.out, image.index, total_images, format);
                infotext::write_image_with_parameters(
                    &path,
                    format,
                    image.width,
                    image.height,
                    &image.rgb,
                    &image.infotext,
                )
                .with_context(|| format!("could not write {}", path.display()))?;
                say(&bar, &format!("wrote {} (seed {})", path.display(), image.seed));
                written += 1;
            }
            Event::Warning { message, .. } => say(&bar, &format!("warning: {message}")),
            Event::Finished { job: id } if id == job => {
                bar.finish_and_clear();
                eprintln!("done: {written} image(s)");
                return Ok(ExitCode::SUCCESS);
            }
            Event::Cancelled { job: id } if id == job => {
                bar.abandon();
                eprintln!("cancelled; {written} image(s) written");
                return Ok(ExitCode::from(130));
            }
            Event::Failed {
                job: id,
                kind,
                message,
            } if id == job => {
                bar.finish_and_clear();
                return Err(match kind {
                    FailureKind::BadInput => bad(message),
                    FailureKind::Internal => anyhow::anyhow!(message),
                });
            }
            _ => {}
        }
    }
}

fn info(path: &Path, no_hash: bool) -> anyhow::Result<ExitCode> {
    use std::fmt::Write as _;
    let mut text = String::new();
    let info = easel::models::inspect(path).map_err(|e| bad(e.to_string()))?;
    let _ = writeln!(text, "file:          {}", info.path.display());
    let _ = writeln!(text, "family:        {}", info.family.label());
    let _ = writeln!(text, "storage dtype: {}", info.storage_dtype.name());
    let _ = writeln!(text, "tensors:       {}", info.tensor_count);
    let _ = writeln!(
        text,
        "size:          {} bytes ({:.2} GiB)",
        info.file_size,
        info.file_size as f64 / f64::from(1u32 << 30)
    );
    if let Some(reason) = info.family.unsupported_reason() {
        let _ = writeln!(text, "note:          {reason}");
    }
    if !no_hash && path.is_file() {
        let sha = easel::models::hash::cached_sha256(path, |_, _| {}).map_err(|e| bad(e.to_string()))?;
        let _ = writeln!(text, "hash (AutoV2): {}", easel::models::hash::autov2(&sha));
        let _ = writeln!(text, "sha256:        {sha}");
    }
    print_out(&text)?;
    Ok(ExitCode::SUCCESS)
}

fn png_info(image: &Path, json: bool) -> anyhow::Result<ExitCode> {
    use std::fmt::Write as _;
    let m = image_metadata(image)?;
    if json {
        print_out(&format!("{}\n", m.to_json()))?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut text = printable(&m.infotext());
    text.push_str("\n\n");
    let or_unknown = |v: Option<String>| v.unwrap_or_else(|| "not stated".to_owned());
    let _ = writeln!(text, "generator: {} (from {})", m.generator, m.source);
    let _ = writeln!(
        text,
        "sampler:   {} (schedule {})",
        printable(&or_unknown(m.sampler.clone())),
        printable(&m.schedule.clone().unwrap_or_else(|| "Automatic".to_owned()))
    );
    let _ = writeln!(
        text,
        "steps:     {}, CFG {}, seed {}, size {}",
        or_unknown(m.steps.map(|v| v.to_string())),
        or_unknown(m.cfg_scale.map(infotext::py_number)),
        or_unknown(m.seed.map(|v| v.to_string())),
        or_unknown(m.width.zip(m.height).map(|(w, h)| format!("{w}x{h}")))
    );
    if m.model.is_some() || m.model_hash.is_some() {
        let hash = m
            .model_hash
            .as_ref()
            .map(|h| format!(" [{h}]"))
            .unwrap_or_default();
        let _ = writeln!(
            text,
            "model:     {}{hash}",
            printable(&or_unknown(m.model.clone()))
        );
    }
    if let Some(d) = m.denoising_strength {
        let _ = writeln!(text, "denoising: {}", infotext::py_number(d));
    }
    if let Some(c) = m.clip_skip {
        let _ = writeln!(text, "clip skip: {c}");
    }
    for lora in &m.loras {
        let weight = lora
            .weight
            .map_or_else(|| "weight not stated".to_owned(), infotext::py_number);
        let hash = lora
            .hash
            .as_ref()
            .map(|h| format!(", hash {h}"))
            .unwrap_or_default();
        let _ = writeln!(text, "lora:      {} ({weight}{hash})", printable(&lora.name));
    }
    for warning in &m.warnings {
        eprintln!(
            "warning: {}",
            printable(&easel::text::shorten(warning, easel::text::MESSAGE_LIMIT))
        );
    }
    print_out(&text)?;
    Ok(ExitCode::SUCCESS)
}

fn bench(
    size: usize,
    repeats: usize,
    profile: bool,
    load_dir: Option<&Path>,
    load_only: bool,
) -> anyhow::Result<ExitCode> {
    if !size.is_multiple_of(8) || size < 64 {
        return Err(bad("--size must be a multiple of 8 and at least 64"));
    }
    easel::bench::run(size, repeats, profile, load_dir, load_only, &mut |line| {
        println!("{line}");
    })?;
    Ok(ExitCode::SUCCESS)
}

fn bench_fast(size: usize, repeats: usize) -> anyhow::Result<ExitCode> {
    if !size.is_multiple_of(8) || size < 64 {
        return Err(bad("--size must be a multiple of 8 and at least 64"));
    }
    easel::bench::run_fast_cpu(size, repeats, &mut |line| println!("{line}"))?;
    Ok(ExitCode::SUCCESS)
}
