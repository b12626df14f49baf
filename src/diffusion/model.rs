//! A loaded Stable Diffusion checkpoint: text encoder, UNet and VAE on one device, plus its σ table.
//! Built from plain tensors read out of the memory map (no `VarMap`, so no gradient bookkeeping).

use std::sync::Arc;
use std::time::Instant;

use candle_core::{DType, Device};

use super::DiffusionError;
use super::clip::ClipTextModel;
use super::schedule::ModelSigmas;
use super::unet::Unet;
use super::vae::Vae;
use crate::models::Family;
use crate::models::config::Geometry;
use crate::models::loader::{Checkpoint, Component};

/// Where inference runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum DeviceChoice {
    /// CUDA if compiled in and present, else Metal, else CPU.
    #[default]
    Auto,
    /// The CPU.
    Cpu,
    /// The first CUDA GPU.
    Cuda,
    /// The Apple GPU.
    Metal,
}

impl DeviceChoice {
    /// Parses `auto|cpu|cuda|metal`.
    pub fn from_name(s: &str) -> Option<Self> {
        Some(match s.to_ascii_lowercase().as_str() {
            "auto" => Self::Auto,
            "cpu" => Self::Cpu,
            "cuda" | "gpu" => Self::Cuda,
            "metal" | "mps" => Self::Metal,
            _ => return None,
        })
    }

    /// Opens the device, with a message naming the missing feature when it is not compiled in.
    pub fn open(self) -> Result<Device, DiffusionError> {
        let unavailable = |what: &str, feature: &str| {
            DiffusionError::Input(format!(
                "{what} was requested but this build of Easel has no {what} support (build with `--features {feature}`), or no {what} device is present; use --device cpu"
            ))
        };
        match self {
            Self::Cpu => Ok(Device::Cpu),
            Self::Cuda => Device::new_cuda(0).map_err(|_| unavailable("CUDA", "cuda")),
            Self::Metal => Device::new_metal(0).map_err(|_| unavailable("Metal", "metal")),
            Self::Auto => {
                if candle_core::utils::cuda_is_available()
                    && let Ok(d) = Device::new_cuda(0)
                {
                    return Ok(d);
                }
                if candle_core::utils::metal_is_available()
                    && let Ok(d) = Device::new_metal(0)
                {
                    return Ok(d);
                }
                Ok(Device::Cpu)
            }
        }
    }
}

/// The working precision for a device: f32 on CPU (f16 is slower there), f16 on GPUs.
pub fn compute_dtype(device: &Device) -> DType {
    if device.is_cpu() { DType::F32 } else { DType::F16 }
}

/// Everything needed to generate with one checkpoint.
pub struct SdModel {
    /// The opened file (kept for reloading a component, e.g. the VAE in f32).
    pub checkpoint: Arc<Checkpoint>,
    /// Text encoder.
    pub clip: ClipTextModel,
    /// Denoiser.
    pub unet: Unet,
    /// Autoencoder.
    pub vae: Vae,
    /// σ table from the checkpoint's ᾱ.
    pub sigmas: ModelSigmas,
    /// Device the weights live on.
    pub device: Device,
    /// Working precision.
    pub dtype: DType,
    /// Seconds spent building the networks from the memory map.
    pub load_secs: f64,
}

impl SdModel {
    /// Geometry of the loaded networks.
    pub fn geometry(&self) -> &Geometry {
        &self.checkpoint.geometry
    }

    /// Rough peak memory of decoding one `h`×`w` image: the VAE's last level holds about
    /// 12 tensors of `[ch, h, w]`, and its mid-block attention one `(hw/f²)²` score matrix.
    pub fn vae_decode_memory_bytes(&self, h: usize, w: usize) -> u64 {
        let elem = self.dtype.size_in_bytes() as u64;
        let g = &self.geometry().vae;
        let f = g.downscale_factor();
        let tokens = ((h / f) * (w / f)) as u64;
        12 * (g.ch * h * w) as u64 * elem + 2 * tokens * tokens * elem
    }

    /// Detected family.
    pub fn family(&self) -> Family {
        self.checkpoint.family()
    }

    /// Builds the three networks of `checkpoint` on `device` in `dtype`.
    pub fn load(checkpoint: Arc<Checkpoint>, device: &Device, dtype: DType) -> Result<Self, DiffusionError> {
        let started = Instant::now();
        let g = checkpoint.geometry.clone();
        let path = checkpoint.path().to_path_buf();

        let (vb, slot) = checkpoint.var_builder(Component::TextEncoder, dtype, device);
        let clip =
            ClipTextModel::new(&vb, &g.clip).map_err(|e| slot.explain(&path, "the text encoder", e))?;

        let (vb, slot) = checkpoint.var_builder(Component::Unet, dtype, device);
        let unet = Unet::new(&vb, &g.unet).map_err(|e| slot.explain(&path, "the UNet", e))?;

        let vae = Self::load_vae(&checkpoint, device, dtype)?;

        let computed = g.schedule.alphas_cumprod();
        let alphas = match checkpoint.stored_alphas_cumprod() {
            Some(stored) if stored.len() == computed.len() => {
                let worst = stored
                    .iter()
                    .zip(&computed)
                    .map(|(a, b)| (a - b).abs())
                    .fold(0f32, f32::max);
                if worst > 1e-6 {
                    tracing::warn!(
                        "the checkpoint's alphas_cumprod differs from its config's schedule by up to {worst}; using the stored one as A1111 does"
                    );
                }
                stored
            }
            _ => computed,
        };
        Ok(Self {
            checkpoint,
            clip,
            unet,
            vae,
            sigmas: ModelSigmas::from_alphas_cumprod(&alphas),
            device: device.clone(),
            dtype,
            load_secs: started.elapsed().as_secs_f64(),
        })
    }

    /// Builds the VAE alone (used again to fall back to f32 when an f16 decode overflows).
    pub fn load_vae(checkpoint: &Checkpoint, device: &Device, dtype: DType) -> Result<Vae, DiffusionError> {
        let (vb, slot) = checkpoint.var_builder(Component::Vae, dtype, device);
        Vae::new(&vb, &checkpoint.geometry.vae)
            .map_err(|e| DiffusionError::Model(slot.explain(checkpoint.path(), "the VAE", e)))
    }

    /// Opens and loads a checkpoint path in one go.
    pub fn open(path: &std::path::Path, device: &Device, dtype: DType) -> Result<Self, DiffusionError> {
        let checkpoint = Checkpoint::open(path).map_err(DiffusionError::Model)?;
        Self::load(Arc::new(checkpoint), device, dtype)
    }
}
