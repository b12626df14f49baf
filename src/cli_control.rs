//! `easel generate`'s ControlNet flags. Each `--control MODEL` starts a unit; every `--control-*`
//! and `--canny-*` flag applies to the unit begun by the last `--control` before it, so the units
//! are rebuilt from the flags' positions on the command line.

use std::path::PathBuf;

use clap::{ArgMatches, Args};
use easel::diffusion::controlnet::ControlMode;
use easel::imaging::ops::{HintPreprocessor, HintResize};
use easel::request::ControlUnit;

/// The ControlNet flags (all repeatable, one per unit).
#[derive(Args, Debug, Default)]
pub struct ControlArgs {
    /// ControlNet model (.safetensors or diffusers folder); starts a unit. The --control-* and
    /// --canny-* flags after it set that unit. Without --control-image the init image is the
    /// control image.
    #[arg(long, value_name = "MODEL")]
    pub control: Vec<PathBuf>,
    /// The unit's control image.
    #[arg(long, value_name = "IMG")]
    pub control_image: Vec<PathBuf>,
    /// Preprocessor: none, canny, inpaint, tile, lineart-standard or scribble-xdog [default: none].
    #[arg(long, value_name = "NAME")]
    pub control_preprocessor: Vec<String>,
    /// Weight, 0..2 [default: 1].
    #[arg(long, value_name = "F")]
    pub control_weight: Vec<f64>,
    /// Guidance start, 0..1 [default: 0].
    #[arg(long, value_name = "F")]
    pub control_start: Vec<f64>,
    /// Guidance end, 0..1 [default: 1].
    #[arg(long, value_name = "F")]
    pub control_end: Vec<f64>,
    /// Control mode: balanced, prompt (my prompt is more important) or control (ControlNet is more
    /// important) [default: balanced].
    #[arg(long, value_name = "MODE")]
    pub control_mode: Vec<String>,
    /// How the control image fits the size: just-resize, crop or fill [default: crop].
    #[arg(long, value_name = "MODE")]
    pub control_resize: Vec<String>,
    /// Pick the preprocessor resolution from the image and output sizes.
    #[arg(long, action = clap::ArgAction::Count)]
    pub control_pixel_perfect: u8,
    /// Preprocessor resolution, 64..2048 [default: 512].
    #[arg(long, value_name = "N")]
    pub control_res: Vec<u32>,
    /// Canny low threshold, 1..255 [default: 100].
    #[arg(long, value_name = "N")]
    pub canny_low: Vec<u8>,
    /// Canny high threshold, 1..255 [default: 200].
    #[arg(long, value_name = "N")]
    pub canny_high: Vec<u8>,
}

/// (command-line position, value) pairs of one flag.
fn each<'a, T: Clone + Send + Sync + 'static>(
    m: &'a ArgMatches,
    id: &'a str,
) -> impl Iterator<Item = (usize, T)> + 'a {
    m.indices_of(id)
        .into_iter()
        .flatten()
        .zip(m.get_many::<T>(id).into_iter().flatten().cloned())
}

/// The units the flags describe, in order.
///
/// # Errors
/// A flag before any `--control`, an unknown name, or an unreadable control image.
pub fn units(m: &ArgMatches) -> Result<Vec<ControlUnit>, String> {
    let starts: Vec<usize> = m.indices_of("control").map(Iterator::collect).unwrap_or_default();
    if starts.is_empty() && m.get_many::<PathBuf>("control_image").is_some() {
        // Replaying an image's ControlNet units: `replay_units` takes the images in order.
        return Ok(Vec::new());
    }
    let mut units: Vec<ControlUnit> = m
        .get_many::<PathBuf>("control")
        .map(|v| v.map(ControlUnit::new).collect())
        .unwrap_or_default();
    // The unit a flag at `index` belongs to.
    let owner = |flag: &str, index: usize| -> Result<usize, String> {
        starts
            .iter()
            .rposition(|&s| s < index)
            .ok_or_else(|| format!("--{flag} must come after the --control it sets"))
    };
    for (i, name) in each::<String>(m, "control_preprocessor") {
        let u = owner("control-preprocessor", i)?;
        units[u].preprocessor = HintPreprocessor::from_name(&name).ok_or_else(|| {
            format!("unknown --control-preprocessor '{name}'; use none, canny, inpaint, tile, lineart-standard or scribble-xdog")
        })?;
    }
    for (i, path) in each::<PathBuf>(m, "control_image") {
        let u = owner("control-image", i)?;
        units[u].image = Some(easel::imaging::load_rgb(&path).map_err(|e| e.to_string())?);
    }
    for (i, v) in each::<f64>(m, "control_weight") {
        units[owner("control-weight", i)?].weight = v;
    }
    for (i, v) in each::<f64>(m, "control_start") {
        units[owner("control-start", i)?].start = v;
    }
    for (i, v) in each::<f64>(m, "control_end") {
        units[owner("control-end", i)?].end = v;
    }
    for (i, v) in each::<String>(m, "control_mode") {
        let u = owner("control-mode", i)?;
        units[u].mode = ControlMode::from_name(&v)
            .ok_or_else(|| format!("unknown --control-mode '{v}'; use balanced, prompt or control"))?;
    }
    for (i, v) in each::<String>(m, "control_resize") {
        let u = owner("control-resize", i)?;
        units[u].resize = HintResize::from_name(&v)
            .ok_or_else(|| format!("unknown --control-resize '{v}'; use just-resize, crop or fill"))?;
    }
    let given = m.value_source("control_pixel_perfect") == Some(clap::parser::ValueSource::CommandLine);
    for i in m
        .indices_of("control_pixel_perfect")
        .into_iter()
        .flatten()
        .filter(|_| given)
    {
        units[owner("control-pixel-perfect", i)?].pixel_perfect = true;
    }
    for (i, v) in each::<u32>(m, "control_res") {
        units[owner("control-res", i)?].processor_res = v;
    }
    for (flag, id, low) in [
        ("canny-low", "canny_low", true),
        ("canny-high", "canny_high", false),
    ] {
        for (i, v) in each::<u8>(m, id) {
            let u = owner(flag, i)?;
            match &mut units[u].preprocessor {
                HintPreprocessor::Canny { low: l, high: h } => *(if low { l } else { h }) = v,
                other => {
                    return Err(format!(
                        "--{flag} sets a canny threshold, but unit {u} uses the {} preprocessor (put --control-preprocessor canny before it)",
                        other.name()
                    ));
                }
            }
        }
    }
    for (u, unit) in units.iter().enumerate() {
        unit.validate().map_err(|e| format!("ControlNet unit {u}: {e}"))?;
    }
    Ok(units)
}

/// The ControlNet units of a replayed infotext (`ControlNet N` keys), their models found by name in
/// `dirs` (the `[hash]` decides between files of the same name), their control images the
/// `--control-image` flags in order (none: the init image). Empty when the infotext has none or
/// `--control` flags were given.
///
/// # Errors
/// A model that is not there, a preprocessor Easel does not have, an unreadable image.
pub fn replay_units(
    extra: &[(String, String)],
    m: &ArgMatches,
    dirs: &[PathBuf],
) -> Result<Vec<ControlUnit>, String> {
    if m.get_many::<PathBuf>("control").is_some() {
        return Ok(Vec::new());
    }
    let infos = easel::infotext::controlnet::read(extra);
    let mut images = m.get_many::<PathBuf>("control_image").into_iter().flatten();
    if infos.is_empty() {
        return match images.next() {
            Some(_) => Err("--control-image needs a --control before it (or an image to replay whose infotext names ControlNet units)".into()),
            None => Ok(Vec::new()),
        };
    }
    let candidates = easel::models::registry::scan_controlnets(dirs);
    let mut units = Vec::new();
    for (i, info) in infos.iter().enumerate() {
        let named: Vec<_> = candidates
            .iter()
            .filter(|c| c.name == info.model_name())
            .collect();
        let found = named
            .iter()
            .find(|c| c.label == info.model)
            .or_else(|| named.first())
            .ok_or_else(|| {
                format!(
                    "the image used ControlNet {i} '{}', which is not in {}; put it there or choose one with --control",
                    info.model,
                    dirs.iter().map(|d| d.display().to_string()).collect::<Vec<_>>().join(", ")
                )
            })?;
        let mut unit = ControlUnit::new(found.path.clone());
        let threshold = |v: f64| -> u8 { v.round().clamp(0.0, 255.0) as u8 };
        unit.preprocessor = match HintPreprocessor::from_name(&info.module) {
            Some(HintPreprocessor::Canny { .. }) => HintPreprocessor::Canny {
                low: threshold(info.threshold_a),
                high: threshold(info.threshold_b),
            },
            Some(HintPreprocessor::TileResample { .. }) => HintPreprocessor::TileResample {
                down_sampling_rate: info.threshold_a as f32,
            },
            Some(HintPreprocessor::ScribbleXdog { .. }) => HintPreprocessor::ScribbleXdog {
                threshold: threshold(info.threshold_a),
            },
            Some(other) => other,
            None => {
                return Err(format!(
                    "ControlNet {i} used the preprocessor '{}', which Easel does not have; give a ready-made control image with --control {} --control-image IMG",
                    info.module,
                    found.path.display()
                ));
            }
        };
        unit.weight = info.weight;
        unit.start = info.guidance_start;
        unit.end = info.guidance_end;
        unit.mode = ControlMode::from_name(&info.control_mode).unwrap_or_default();
        unit.resize = HintResize::from_name(&info.resize_mode).unwrap_or_default();
        unit.pixel_perfect = info.pixel_perfect;
        unit.processor_res = info.processor_res;
        if let Some(path) = images.next() {
            unit.image = Some(easel::imaging::load_rgb(path).map_err(|e| e.to_string())?);
        }
        unit.validate().map_err(|e| format!("ControlNet {i}: {e}"))?;
        units.push(unit);
    }
    Ok(units)
}
