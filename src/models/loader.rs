//! Opens a checkpoint (LDM single file or diffusers folder) and hands out candle `VarBuilder`s per component.
//! Weights are read straight from the memory map and renamed on the fly; nothing is converted on disk.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use candle_core::{DType, Device, Shape, Tensor};
use candle_nn::var_builder::{SimpleBackend, VarBuilder};

use super::ModelError;
use super::config::Geometry;
use super::family::{self, Family, ModelInfo};
use super::keymap;
use super::safetensors::SafetensorsFile;

/// The three networks of a Stable Diffusion checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Component {
    /// Denoising UNet.
    Unet,
    /// Autoencoder.
    Vae,
    /// Text encoder.
    TextEncoder,
}

pub(crate) type KeyFn = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// Records the first loading problem as a [`ModelError`] so that the message names the file's own key.
#[derive(Clone, Default)]
pub struct ErrorSlot(Arc<Mutex<Option<ModelError>>>);

impl ErrorSlot {
    fn set(&self, err: ModelError) {
        let mut slot = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if slot.is_none() {
            *slot = Some(err);
        }
    }

    /// Turns a candle error from building a component into the recorded [`ModelError`] when there is one.
    pub fn explain(&self, path: &Path, what: &str, err: candle_core::Error) -> ModelError {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
            .unwrap_or_else(|| ModelError::Tensor {
                path: path.to_path_buf(),
                what: what.to_owned(),
                source: err,
            })
    }
}

/// A candle weight backend over one safetensors file with a name mapping.
struct MappedBackend {
    file: Arc<SafetensorsFile>,
    key: KeyFn,
    errors: ErrorSlot,
}

impl MappedBackend {
    fn fail(&self, err: ModelError) -> candle_core::Error {
        let msg = err.to_string();
        self.errors.set(err);
        candle_core::Error::Msg(msg)
    }

    fn resolve(&self, name: &str) -> candle_core::Result<String> {
        let Some(key) = (self.key)(name) else {
            return Err(self.fail(ModelError::MissingTensor {
                path: self.file.path().to_path_buf(),
                name: format!("{name} (no mapping for this parameter)"),
            }));
        };
        if self.file.entry(&key).is_none() {
            return Err(self.fail(ModelError::MissingTensor {
                path: self.file.path().to_path_buf(),
                name: key,
            }));
        }
        Ok(key)
    }

    fn load(&self, key: &str, dtype: DType, dev: &Device) -> candle_core::Result<Tensor> {
        self.file.load(key, dtype, dev).map_err(|e| self.fail(e))
    }
}

/// Shapes equal up to trailing 1s (a 1x1 conv `[o, i, 1, 1]` stored where a linear `[o, i]` is asked, or back).
fn same_up_to_unit_dims(a: &[usize], b: &[usize]) -> bool {
    let trim = |s: &[usize]| {
        let mut s = s.to_vec();
        while s.len() > 2 && s.last() == Some(&1) {
            s.pop();
        }
        s
    };
    trim(a) == trim(b)
}

impl SimpleBackend for MappedBackend {
    fn get(
        &self,
        s: Shape,
        name: &str,
        _init: candle_nn::Init,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        let key = self.resolve(name)?;
        let found = self.file.entry(&key).map(|e| e.shape.clone()).unwrap_or_default();
        if found != s.dims() {
            if !same_up_to_unit_dims(&found, s.dims()) {
                return Err(self.fail(ModelError::ShapeMismatch {
                    path: self.file.path().to_path_buf(),
                    name: key,
                    found,
                    expected: s.dims().to_vec(),
                }));
            }
            return self.load(&key, dtype, dev)?.reshape(s);
        }
        self.load(&key, dtype, dev)
    }

    fn get_unchecked(&self, name: &str, dtype: DType, dev: &Device) -> candle_core::Result<Tensor> {
        let key = self.resolve(name)?;
        self.load(&key, dtype, dev)
    }

    fn contains_tensor(&self, name: &str) -> bool {
        (self.key)(name).is_some_and(|k| self.file.entry(&k).is_some())
    }
}

/// A `VarBuilder` over one file whose parameters are found through `key` (diffusers name → file key).
pub(crate) fn mapped_var_builder(
    file: Arc<SafetensorsFile>,
    key: KeyFn,
    dtype: DType,
    device: &Device,
) -> (VarBuilder<'static>, ErrorSlot) {
    let errors = ErrorSlot::default();
    let backend: Box<dyn SimpleBackend> = Box::new(MappedBackend {
        file,
        key,
        errors: errors.clone(),
    });
    (VarBuilder::from_backend(backend, dtype, device.clone()), errors)
}

enum Source {
    Single(Arc<SafetensorsFile>),
    Diffusers {
        unet: Arc<SafetensorsFile>,
        vae: Arc<SafetensorsFile>,
        text_encoder: Arc<SafetensorsFile>,
    },
}

/// An opened, validated checkpoint whose weights can be handed to the networks.
pub struct Checkpoint {
    /// What the file is.
    pub info: ModelInfo,
    /// Geometry of the three networks.
    pub geometry: Geometry,
    source: Source,
}

impl std::fmt::Debug for Checkpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Checkpoint")
            .field("info", &self.info)
            .field("geometry", &self.geometry)
            .finish_non_exhaustive()
    }
}

impl Checkpoint {
    /// Opens a `.safetensors` single file (with an optional `<name>.yaml` beside it) or a diffusers folder.
    pub fn open(path: &Path) -> Result<Self, ModelError> {
        if !path.exists() {
            return Err(ModelError::NotFound {
                path: path.to_path_buf(),
            });
        }
        family::check_extension(path)?;
        let checkpoint = if path.is_dir() {
            Self::open_diffusers(path)?
        } else {
            Self::open_single(path)?
        };
        if let Some(why) = checkpoint.info.family.unsupported_reason() {
            return Err(ModelError::UnsupportedFamily {
                path: path.to_path_buf(),
                what: why,
            });
        }
        Ok(checkpoint)
    }

    fn open_single(path: &Path) -> Result<Self, ModelError> {
        let file = SafetensorsFile::open(path)?;
        let info = family::info_of(&file);
        if let Some(why) = info.family.unsupported_reason() {
            return Err(ModelError::UnsupportedFamily {
                path: path.to_path_buf(),
                what: why,
            });
        }
        let mut geometry = Geometry::sd15();
        if let Some(yaml) = Geometry::sidecar_yaml(path) {
            geometry = geometry.apply_ldm_yaml(&yaml)?;
        } else if let Some(in_ch) = info.unet_in_channels {
            // No config beside the file: the input channels come from the shapes (inpainting = 9).
            geometry.unet.in_channels = in_ch;
        }
        let g = geometry.clone();
        let levels = g.vae.ch_mult.len();
        geometry.check_shapes(
            &file,
            &|n| keymap::unet_key(n, &g.unet),
            &|n| keymap::vae_key(n, levels),
            &keymap::clip_key,
        )?;
        Ok(Self {
            info,
            geometry,
            source: Source::Single(Arc::new(file)),
        })
    }

    fn open_diffusers(dir: &Path) -> Result<Self, ModelError> {
        let info = family::inspect(dir)?;
        if let Some(why) = info.family.unsupported_reason() {
            return Err(ModelError::UnsupportedFamily {
                path: dir.to_path_buf(),
                what: why,
            });
        }
        let geometry = Geometry::from_diffusers_folder(dir)?;
        let files = super::diffusers::weight_files(dir)?;
        let open = |p: &PathBuf| SafetensorsFile::open(p).map(Arc::new);
        Ok(Self {
            info,
            geometry,
            source: Source::Diffusers {
                unet: open(&files[0])?,
                vae: open(&files[1])?,
                text_encoder: open(&files[2])?,
            },
        })
    }

    /// Path of the checkpoint.
    pub fn path(&self) -> &Path {
        &self.info.path
    }

    /// Detected family.
    pub fn family(&self) -> Family {
        self.info.family
    }

    /// The `ᾱ` buffer stored in the checkpoint, when there is one (LDM single files carry it).
    pub fn stored_alphas_cumprod(&self) -> Option<Vec<f32>> {
        match &self.source {
            Source::Single(file) => file
                .load("alphas_cumprod", DType::F32, &Device::Cpu)
                .ok()
                .and_then(|t| t.to_vec1::<f32>().ok()),
            Source::Diffusers { .. } => None,
        }
    }

    /// A `VarBuilder` reading `component`'s weights in candle's (diffusers) names, plus the slot
    /// that turns a failure into a precise message.
    pub fn var_builder(
        &self,
        component: Component,
        dtype: DType,
        device: &Device,
    ) -> (VarBuilder<'static>, ErrorSlot) {
        let (backend, errors) = self.backend(component);
        (VarBuilder::from_backend(backend, dtype, device.clone()), errors)
    }

    /// The backend behind [`Self::var_builder`], for wrapping (e.g. to record the weights).
    pub fn backend(&self, component: Component) -> (Box<dyn SimpleBackend>, ErrorSlot) {
        let errors = ErrorSlot::default();
        let (file, key): (Arc<SafetensorsFile>, KeyFn) = match (&self.source, component) {
            (Source::Single(file), Component::Unet) => {
                let g = self.geometry.unet.clone();
                (file.clone(), Arc::new(move |n: &str| keymap::unet_key(n, &g)))
            }
            (Source::Single(file), Component::Vae) => {
                let levels = self.geometry.vae.ch_mult.len();
                (file.clone(), Arc::new(move |n: &str| keymap::vae_key(n, levels)))
            }
            (Source::Single(file), Component::TextEncoder) => {
                (file.clone(), Arc::new(|n: &str| Some(keymap::clip_key(n))))
            }
            (Source::Diffusers { unet, .. }, Component::Unet) => {
                (unet.clone(), Arc::new(|n: &str| Some(n.to_owned())))
            }
            (Source::Diffusers { vae, .. }, Component::Vae) => {
                (vae.clone(), Arc::new(|n: &str| Some(n.to_owned())))
            }
            (Source::Diffusers { text_encoder, .. }, Component::TextEncoder) => {
                (text_encoder.clone(), Arc::new(|n: &str| Some(n.to_owned())))
            }
        };
        let backend = MappedBackend {
            file,
            key,
            errors: errors.clone(),
        };
        let boxed: Box<dyn SimpleBackend> = Box::new(backend);
        (boxed, errors)
    }
}

#[cfg(test)]
mod tests {
    use super::same_up_to_unit_dims;

    #[test]
    fn unit_dims() {
        assert!(same_up_to_unit_dims(&[4, 4, 1, 1], &[4, 4]));
        assert!(!same_up_to_unit_dims(&[4, 4, 3, 3], &[4, 4]));
        assert!(same_up_to_unit_dims(&[4, 4], &[4, 4, 1, 1]));
    }
}
