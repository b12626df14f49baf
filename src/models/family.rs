//! Model family detection from tensor names and shapes (never from the file name).
//! Recognises what Easel runs (SD 1.x, SD 1.x inpainting) and names what it does not yet run.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::ModelError;
use super::diffusers::read_json;
use super::safetensors::{SafetensorsFile, StorageDtype};

/// What kind of model a file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    /// Stable Diffusion 1.x (CLIP ViT-L/14 text encoder, 4-channel UNet).
    Sd1,
    /// Stable Diffusion 1.x inpainting (9-channel UNet input).
    Sd1Inpaint,
    /// Stable Diffusion 2.x (OpenCLIP ViT-H text encoder).
    Sd2,
    /// Stable Diffusion XL base.
    Sdxl,
    /// Stable Diffusion XL refiner.
    SdxlRefiner,
    /// Stable Diffusion 3.x (MMDiT).
    Sd3,
    /// Flux (double/single stream transformer).
    Flux,
    /// A LoRA / LyCORIS adapter, not a checkpoint.
    Lora,
    /// A standalone VAE.
    Vae,
    /// An SD 1.x UNet with another input layout (e.g. instruct-pix2pix, 8 channels).
    Sd1Other,
    /// A ControlNet (used beside a checkpoint, not as one).
    ControlNet,
    /// Nothing Easel recognises.
    Unknown,
}

impl Family {
    /// Short human label, e.g. for `easel info` and the model browser badge.
    pub fn label(self) -> &'static str {
        match self {
            Self::Sd1 => "SD 1.x",
            Self::Sd1Inpaint => "SD 1.x inpainting",
            Self::Sd2 => "SD 2.x",
            Self::Sdxl => "SDXL",
            Self::SdxlRefiner => "SDXL refiner",
            Self::Sd3 => "SD 3",
            Self::Flux => "Flux",
            Self::Lora => "LoRA",
            Self::Vae => "VAE",
            Self::Sd1Other => "SD 1.x (unusual UNet input)",
            Self::ControlNet => "ControlNet",
            Self::Unknown => "unknown",
        }
    }

    /// True when this version of Easel can generate with it.
    pub fn is_supported_checkpoint(self) -> bool {
        matches!(self, Self::Sd1 | Self::Sd1Inpaint)
    }

    /// Why the family cannot be used as a checkpoint, as a sentence; `None` when it can.
    pub fn unsupported_reason(self) -> Option<String> {
        let planned = |name: &str, version: &str| {
            // "an SDXL" (ess-dee), "a Flux".
            let article = if name.starts_with("SD") { "an" } else { "a" };
            format!(
                "this is {article} {name} checkpoint; Easel {} runs SD 1.x checkpoints, {name} support is planned for Easel {version}",
                env!("CARGO_PKG_VERSION")
            )
        };
        match self {
            Self::Sd1 | Self::Sd1Inpaint => None,
            Self::Sd2 => Some(planned("SD 2.x", "0.2")),
            Self::Sdxl | Self::SdxlRefiner => Some(planned("SDXL", "0.3")),
            Self::Sd3 => Some(planned("SD 3", "a later version")),
            Self::Flux => Some(planned("Flux", "a later version")),
            Self::Lora => Some(
                "this is a LoRA, not a checkpoint: put it in a LoRA folder and use it with <lora:name:weight> in the prompt"
                    .into(),
            ),
            Self::Vae => Some("this is a standalone VAE, not a full checkpoint".into()),
            Self::ControlNet => Some(
                "this is a ControlNet, not a checkpoint: put it in a ControlNet folder and use it in the ControlNet section (or with --control)"
                    .into(),
            ),
            Self::Sd1Other => Some(
                "this SD 1.x checkpoint has an unusual UNet input (e.g. instruct-pix2pix), which Easel does not run yet".into(),
            ),
            Self::Unknown => Some(
                "this file does not look like a Stable Diffusion checkpoint (no known UNet, VAE and text-encoder tensors)".into(),
            ),
        }
    }
}

/// What `easel info` shows about a model file.
#[derive(Debug, Clone)]
pub struct ModelInfo {
    /// The file or folder.
    pub path: PathBuf,
    /// Detected family.
    pub family: Family,
    /// Most common storage dtype of the float weights (by bytes).
    pub storage_dtype: StorageDtype,
    /// Number of tensors.
    pub tensor_count: usize,
    /// Bytes on disk.
    pub file_size: u64,
    /// UNet input channels, when there is a UNet.
    pub unet_in_channels: Option<usize>,
}

/// Refuses pickles and unknown extensions before anything is opened.
pub fn check_extension(path: &Path) -> Result<(), ModelError> {
    if path.is_dir() {
        return Ok(());
    }
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    match ext.as_str() {
        "safetensors" => Ok(()),
        "ckpt" | "pt" | "pth" | "bin" | "pkl" => Err(ModelError::Pickle {
            path: path.to_path_buf(),
        }),
        _ => Err(ModelError::UnsupportedFormat {
            path: path.to_path_buf(),
            ext: if ext.is_empty() { "(none)".into() } else { ext },
        }),
    }
}

/// Detects the family of a single-file checkpoint from its header.
pub fn detect_single_file(file: &SafetensorsFile) -> Family {
    let tensors = file.tensors();
    let has_prefix = |p: &str| {
        tensors
            .range(p.to_owned()..)
            .next()
            .is_some_and(|(k, _)| k.starts_with(p))
    };
    let any_contains = |s: &str| tensors.keys().any(|k| k.contains(s));
    if has_prefix("lora_unet_")
        || has_prefix("lora_te")
        || any_contains(".lora_down.")
        || any_contains(".lora_A.")
    {
        return Family::Lora;
    }
    if has_prefix("double_blocks.") || has_prefix("model.diffusion_model.double_blocks.") {
        return Family::Flux;
    }
    if has_prefix("model.diffusion_model.joint_blocks.") {
        return Family::Sd3;
    }
    if has_prefix("conditioner.embedders.")
        || tensors.contains_key("model.diffusion_model.label_emb.0.0.weight")
    {
        return if has_prefix("conditioner.embedders.0.transformer.") {
            Family::Sdxl
        } else {
            Family::SdxlRefiner
        };
    }
    if let Some(conv_in) = tensors.get("model.diffusion_model.input_blocks.0.0.weight") {
        let in_channels = conv_in.shape.get(1).copied().unwrap_or(0);
        if has_prefix("cond_stage_model.model.") {
            return Family::Sd2;
        }
        if has_prefix("cond_stage_model.transformer.") || !has_prefix("cond_stage_model.") {
            return match in_channels {
                4 => Family::Sd1,
                9 => Family::Sd1Inpaint,
                _ => Family::Sd1Other,
            };
        }
        return Family::Unknown;
    }
    if has_prefix("encoder.conv_in.") && has_prefix("decoder.conv_in.") {
        return Family::Vae;
    }
    if super::controlnet::looks_like_controlnet(file) {
        return Family::ControlNet;
    }
    Family::Unknown
}

/// Detects the family of a diffusers pipeline folder from its component configs.
pub fn detect_diffusers_folder(dir: &Path) -> Result<Family, ModelError> {
    let unet_cfg = read_json(&dir.join("unet").join("config.json"))?;
    if dir.join("text_encoder_2").exists() {
        return Ok(if dir.join("text_encoder").exists() {
            Family::Sdxl
        } else {
            Family::SdxlRefiner
        });
    }
    if unet_cfg
        .get("use_linear_projection")
        .and_then(serde_json::Value::as_bool)
        .unwrap_or(false)
    {
        return Ok(Family::Sd2);
    }
    let in_channels = unet_cfg
        .get("in_channels")
        .and_then(serde_json::Value::as_u64)
        .unwrap_or(4);
    Ok(match in_channels {
        4 => Family::Sd1,
        9 => Family::Sd1Inpaint,
        _ => Family::Sd1Other,
    })
}

fn dominant_dtype<'a>(entries: impl Iterator<Item = &'a super::safetensors::TensorEntry>) -> StorageDtype {
    let mut bytes: BTreeMap<&'static str, (u64, StorageDtype)> = BTreeMap::new();
    for e in entries.filter(|e| e.dtype.is_float()) {
        let slot = bytes.entry(e.dtype.name()).or_insert((0, e.dtype));
        slot.0 += (e.end - e.start) as u64;
    }
    bytes
        .into_values()
        .max_by_key(|(n, _)| *n)
        .map_or(StorageDtype::F32, |(_, d)| d)
}

/// Opens `path` (a `.safetensors` file or a diffusers folder) and reports what it is.
pub fn inspect(path: &Path) -> Result<ModelInfo, ModelError> {
    if !path.exists() {
        return Err(ModelError::NotFound {
            path: path.to_path_buf(),
        });
    }
    check_extension(path)?;
    if path.is_dir() {
        let family = detect_diffusers_folder(path)?;
        let mut tensor_count = 0;
        let mut file_size = 0;
        let mut entries = Vec::new();
        for file in super::diffusers::weight_files(path)? {
            let st = SafetensorsFile::open(&file)?;
            tensor_count += st.tensors().len();
            file_size += st.file_size();
            entries.extend(st.tensors().values().cloned());
        }
        let unet_in = read_json(&path.join("unet").join("config.json"))?
            .get("in_channels")
            .and_then(serde_json::Value::as_u64)
            .map(|v| v as usize);
        return Ok(ModelInfo {
            path: path.to_path_buf(),
            family,
            storage_dtype: dominant_dtype(entries.iter()),
            tensor_count,
            file_size,
            unet_in_channels: unet_in,
        });
    }
    let file = SafetensorsFile::open(path)?;
    Ok(info_of(&file))
}

/// [`ModelInfo`] of an already opened single file.
pub fn info_of(file: &SafetensorsFile) -> ModelInfo {
    ModelInfo {
        path: file.path().to_path_buf(),
        family: detect_single_file(file),
        storage_dtype: dominant_dtype(file.tensors().values()),
        tensor_count: file.tensors().len(),
        file_size: file.file_size(),
        unet_in_channels: file
            .entry("model.diffusion_model.input_blocks.0.0.weight")
            .and_then(|e| e.shape.get(1).copied()),
    }
}
