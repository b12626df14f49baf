//! A loaded Stable Diffusion checkpoint: text encoder, UNet and VAE on one device, plus its σ table.
//! Built from plain tensors read out of the memory map (no `VarMap`, so no gradient bookkeeping).

use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use candle_core::{DType, Device};
use candle_nn::VarBuilder;

use super::DiffusionError;
use super::clip::ClipTextModel;
use super::embeddings::EmbeddingDb;
use super::lora_merge::{self as lora, RecordingBackend, WeightMap};
use super::schedule::ModelSigmas;
use super::unet::Unet;
use super::vae::Vae;
use crate::models::Family;
use crate::models::config::Geometry;
use crate::models::loader::{Checkpoint, Component};
use crate::models::lora_file::{LoraError, Part};
use crate::models::vae_file::VaeFile;
use crate::request::DeviceChoice;

/// Opens the device a request names, with a message naming the missing feature when it is not
/// compiled in.
pub fn open_device(choice: DeviceChoice) -> Result<Device, DiffusionError> {
    let unavailable = |what: &str, feature: &str| {
        DiffusionError::Input(format!(
            "{what} was requested but this build of Easel has no {what} support (build with `--features {feature}`), or no {what} device is present; use --device cpu"
        ))
    };
    match choice {
        DeviceChoice::Cpu => Ok(Device::Cpu),
        DeviceChoice::Cuda => Device::new_cuda(0).map_err(|_| unavailable("CUDA", "cuda")),
        DeviceChoice::Metal => Device::new_metal(0).map_err(|_| unavailable("Metal", "metal")),
        DeviceChoice::Auto => {
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
    /// The text encoder's base weights by name (shared with the network built without LoRAs).
    clip_weights: Arc<WeightMap>,
    /// The UNet's base weights by name.
    unet_weights: Arc<WeightMap>,
    clip_index: lora::ModuleIndex,
    unet_index: lora::ModuleIndex,
    /// The LoRA set merged into `clip` and `unet` now: (path, hash, te, unet) per LoRA.
    loras: Vec<(PathBuf, String, f32, f32)>,
    /// Textual-inversion embeddings prompts may use (set by the engine from its folders).
    pub embeddings: Arc<EmbeddingDb>,
    /// When set, the final decode runs TAESD instead of the VAE (set by the engine per job).
    pub tiny_decoder: Option<Arc<super::taesd::TinyDecoder>>,
    /// When set, img2img and inpainting encode their start image with TAESD instead of the VAE
    /// (A1111's "VAE type for encode"; set by the engine per job).
    pub tiny_encoder: Option<Arc<super::taesd::TinyEncoder>>,
    /// The standalone VAE file that `vae` was built from; `None` while it is the checkpoint's own.
    vae_file: Option<Arc<VaeFile>>,
    /// The checkpoint's own VAE, kept while an override is in `vae` so that restoring it is free.
    checkpoint_vae: Option<Vae>,
}

impl SdModel {
    /// Geometry of the loaded networks.
    pub fn geometry(&self) -> &Geometry {
        &self.checkpoint.geometry
    }

    /// Rough peak memory of decoding one `h`×`w` image: the VAE's last level holds about
    /// 12 tensors of `[ch, h, w]`, plus its mid-block attention's scratch over `hw/f²` tokens.
    pub fn vae_decode_memory_bytes(&self, h: usize, w: usize) -> u64 {
        let elem = self.dtype.size_in_bytes() as u64;
        let g = &self.geometry().vae;
        let f = g.downscale_factor();
        let tokens = (h / f) * (w / f);
        12 * (g.ch * h * w) as u64 * elem
            + super::ops::attention_scratch_bytes(1, tokens, tokens, self.dtype, self.device.is_cpu())
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

        let recording = |component| {
            let (inner, slot) = checkpoint.backend(component);
            let record = Arc::new(Mutex::new(WeightMap::new()));
            let backend = RecordingBackend {
                inner,
                record: record.clone(),
            };
            let vb = VarBuilder::from_backend(Box::new(backend), dtype, device.clone());
            (vb, slot, record)
        };
        let take = |record: Arc<Mutex<WeightMap>>| {
            Arc::new(std::mem::take(
                &mut *record.lock().unwrap_or_else(PoisonError::into_inner),
            ))
        };
        let (vb, slot, record) = recording(Component::TextEncoder);
        let clip =
            ClipTextModel::new(&vb, &g.clip).map_err(|e| slot.explain(&path, "the text encoder", e))?;
        let clip_weights = take(record);

        let (vb, slot, record) = recording(Component::Unet);
        let unet = Unet::new(&vb, &g.unet).map_err(|e| slot.explain(&path, "the UNet", e))?;
        let unet_weights = take(record);

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
            clip_index: lora::index_modules(&clip_weights),
            unet_index: lora::index_modules(&unet_weights),
            clip_weights,
            unet_weights,
            loras: Vec::new(),
            embeddings: Arc::new(EmbeddingDb::default()),
            tiny_decoder: None,
            tiny_encoder: None,
            vae_file: None,
            checkpoint_vae: None,
        })
    }

    /// Builds the VAE alone (used again to fall back to f32 when an f16 decode overflows).
    pub fn load_vae(checkpoint: &Checkpoint, device: &Device, dtype: DType) -> Result<Vae, DiffusionError> {
        let (vb, slot) = checkpoint.var_builder(Component::Vae, dtype, device);
        Vae::new(&vb, &checkpoint.geometry.vae)
            .map_err(|e| DiffusionError::Model(slot.explain(checkpoint.path(), "the VAE", e)))
    }

    /// Builds the VAE in use (the override when one is set) again in `dtype` (the f32 fallback
    /// when an f16 decode overflows).
    pub fn reload_vae(&self, dtype: DType) -> Result<Vae, DiffusionError> {
        match &self.vae_file {
            Some(file) => Self::load_vae_file(file, &self.checkpoint, &self.device, dtype),
            None => Self::load_vae(&self.checkpoint, &self.device, dtype),
        }
    }

    fn load_vae_file(
        file: &VaeFile,
        checkpoint: &Checkpoint,
        device: &Device,
        dtype: DType,
    ) -> Result<Vae, DiffusionError> {
        let g = &checkpoint.geometry.vae;
        let (vb, slot) = file.var_builder(g.ch_mult.len(), dtype, device);
        Vae::new(&vb, g).map_err(|e| DiffusionError::Model(slot.explain(&file.path, "the VAE", e)))
    }

    /// The standalone VAE file in use, if any.
    pub fn vae_file(&self) -> Option<&Arc<VaeFile>> {
        self.vae_file.as_ref()
    }

    /// Decodes and encodes with `file` from now on (`None`: the checkpoint's own VAE again). The
    /// same file again is free, and so is going back to the checkpoint's VAE.
    ///
    /// # Errors
    /// The file's tensors do not fit this checkpoint's VAE geometry; the model is left as it was.
    pub fn set_vae(&mut self, file: Option<&Arc<VaeFile>>) -> Result<(), DiffusionError> {
        match file {
            None => {
                if let Some(own) = self.checkpoint_vae.take() {
                    self.vae = own;
                }
                self.vae_file = None;
            }
            Some(file) => {
                if self.vae_file.as_ref().is_some_and(|f| Arc::ptr_eq(f, file)) {
                    return Ok(());
                }
                let vae = Self::load_vae_file(file, &self.checkpoint, &self.device, self.dtype)?;
                let previous = std::mem::replace(&mut self.vae, vae);
                if self.checkpoint_vae.is_none() {
                    self.checkpoint_vae = Some(previous);
                }
                self.vae_file = Some(file.clone());
            }
        }
        Ok(())
    }

    /// Merges `set` into the text encoder and UNet (replacing whatever set was merged before) by
    /// rebuilding both from the base weights plus the deltas. The same set again is free; an empty
    /// set restores the base networks. The checkpoint is not read again.
    ///
    /// # Errors
    /// A LoRA none of whose modules match this model, or one whose shapes do not fit.
    pub fn set_loras(&mut self, set: &[lora::Applied]) -> Result<lora::ApplyReport, DiffusionError> {
        let key: Vec<(PathBuf, String, f32, f32)> = set
            .iter()
            .map(|a| (a.lora.path.clone(), a.lora.short_hash.clone(), a.te, a.unet))
            .collect();
        if key == self.loras {
            return Ok(lora::ApplyReport::default());
        }
        let mut report = lora::ApplyReport::default();
        let te = lora::deltas(
            set,
            Part::TextEncoder,
            &self.clip_weights,
            &self.clip_index,
            &mut report,
        )?;
        let un = lora::deltas(set, Part::Unet, &self.unet_weights, &self.unet_index, &mut report)?;
        for applied in set {
            let total = applied.lora.module_count();
            let unmatched = report
                .unmatched
                .iter()
                .filter(|(n, _)| *n == applied.lora.name)
                .count();
            if total > 0 && unmatched == total {
                let first = report
                    .unmatched
                    .iter()
                    .find(|(n, _)| *n == applied.lora.name)
                    .map(|(_, k)| k.clone())
                    .unwrap_or_default();
                return Err(LoraError::NothingMatches {
                    name: applied.lora.name.clone(),
                    count: total,
                    first,
                }
                .into());
            }
        }
        let build = |base: &Arc<WeightMap>, deltas| {
            let backend = lora::MergedBackend {
                base: base.clone(),
                deltas,
            };
            VarBuilder::from_backend(Box::new(backend), self.dtype, self.device.clone())
        };
        let g = self.checkpoint.geometry.clone();
        let clip = ClipTextModel::new(&build(&self.clip_weights, te), &g.clip)?;
        let unet = Unet::new(&build(&self.unet_weights, un), &g.unet)?;
        self.clip = clip;
        self.unet = unet;
        self.loras = key;
        Ok(report)
    }

    /// Opens and loads a checkpoint path in one go.
    pub fn open(path: &std::path::Path, device: &Device, dtype: DType) -> Result<Self, DiffusionError> {
        let checkpoint = Checkpoint::open(path).map_err(DiffusionError::Model)?;
        Self::load(Arc::new(checkpoint), device, dtype)
    }
}
