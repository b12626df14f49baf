//! What the worker keeps between jobs: the loaded checkpoint (with its name and hash), the opened
//! LoRA files and the last embeddings load. Owned by the worker thread; nothing here is global.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use crate::diffusion::DiffusionError;
use crate::diffusion::embeddings::EmbeddingDb;
use crate::diffusion::model::{SdModel, compute_dtype, open_device};
use crate::diffusion::taesd::{TinyDecoder, TinyEncoder};
use crate::models::ModelError;
use crate::models::lora_file::{LoraError, LoraFile};
use crate::models::vae_file::VaeFile;
use crate::prompt::ClipTokenizer;
use crate::request::DeviceChoice;

/// How a checkpoint is named in infotexts.
#[derive(Debug, Clone, Default)]
pub struct ModelIdentity {
    /// A1111 `Model:` (file stem or folder name).
    pub name: Option<String>,
    /// A1111 `Model hash:` (AutoV2), for single files.
    pub hash: Option<String>,
}

impl ModelIdentity {
    /// Name and AutoV2 hash of a checkpoint path (hashing reads the whole file).
    pub fn of(path: &Path) -> Result<Self, ModelError> {
        let name = path.file_stem().map(|s| s.to_string_lossy().into_owned());
        let hash = if path.is_file() {
            Some(crate::models::hash::autov2(&crate::models::hash::cached_sha256(
                path,
                |_, _| {},
            )?))
        } else {
            None
        };
        Ok(Self { name, hash })
    }
}

/// The loaded checkpoint and what it was loaded from.
struct Loaded {
    path: PathBuf,
    device: DeviceChoice,
    mtime: Option<SystemTime>,
    model: SdModel,
    identity: ModelIdentity,
}

/// What an embeddings load depends on: folders, text-encoder width, and every file with its mtime.
type EmbeddingKey = (Vec<PathBuf>, usize, Vec<(PathBuf, Option<SystemTime>)>);

/// The worker's caches, borrowed separately while a job runs.
#[derive(Default)]
pub struct Caches {
    /// The loaded checkpoint.
    pub models: ModelCache,
    /// Opened LoRA files.
    pub loras: LoraCache,
    /// The last embeddings load.
    pub embeddings: EmbeddingCache,
    /// The ControlNets of the last job.
    pub controlnets: ControlNetCache,
    /// The last TAESD decoder loaded.
    pub taesd: TaesdCache,
    /// Opened standalone VAE files.
    pub vaes: VaeCache,
}

/// Opened standalone VAE files by path (with their hashes), reused while the file is unchanged.
#[derive(Default)]
pub struct VaeCache {
    files: HashMap<PathBuf, (Option<SystemTime>, Arc<VaeFile>)>,
}

impl VaeCache {
    /// The VAE file at `path`, opened (and hashed) once while it is unchanged.
    ///
    /// # Errors
    /// The file is missing, a pickle, or not a standalone VAE.
    pub fn get(&mut self, path: &Path) -> Result<Arc<VaeFile>, ModelError> {
        let mtime = std::fs::metadata(path).and_then(|m| m.modified()).ok();
        if let Some((m, file)) = self.files.get(path)
            && *m == mtime
        {
            return Ok(file.clone());
        }
        let file = Arc::new(VaeFile::open(path)?);
        self.files.insert(path.to_path_buf(), (mtime, file.clone()));
        Ok(file)
    }
}

/// The TAESD decoder and encoder of the last job, each kept while its file, device and precision
/// stay the same.
#[derive(Default)]
pub struct TaesdCache {
    decoder: Option<(TaesdKey, Arc<TinyDecoder>)>,
    encoder: Option<(TaesdKey, Arc<TinyEncoder>)>,
}

/// What a loaded TAESD network depends on: file, mtime, device and dtype.
type TaesdKey = (PathBuf, Option<SystemTime>, String, candle_core::DType);

impl TaesdCache {
    /// The TAESD decoder found first in `dirs`, loaded on `device` in `dtype`; `None` when no folder has one.
    ///
    /// # Errors
    /// The file exists but is not a usable TAESD decoder.
    pub fn get(
        &mut self,
        dirs: &[PathBuf],
        device: &candle_core::Device,
        dtype: candle_core::DType,
    ) -> Result<Option<Arc<TinyDecoder>>, DiffusionError> {
        let path = crate::diffusion::taesd::find_decoder(dirs);
        cached(&mut self.decoder, path, device, dtype, TinyDecoder::open)
    }

    /// The TAESD encoder found first in `dirs`, loaded on `device` in `dtype`; `None` when no folder has one.
    ///
    /// # Errors
    /// The file exists but is not a usable TAESD encoder.
    pub fn encoder(
        &mut self,
        dirs: &[PathBuf],
        device: &candle_core::Device,
        dtype: candle_core::DType,
    ) -> Result<Option<Arc<TinyEncoder>>, DiffusionError> {
        let path = crate::diffusion::taesd::find_encoder(dirs);
        cached(&mut self.encoder, path, device, dtype, TinyEncoder::open)
    }
}

/// The network in `slot` when it was loaded from `path` as it is now, on `device` in `dtype`;
/// otherwise `open` loads it and replaces the slot.
fn cached<T>(
    slot: &mut Option<(TaesdKey, Arc<T>)>,
    path: Option<PathBuf>,
    device: &candle_core::Device,
    dtype: candle_core::DType,
    open: impl FnOnce(&std::path::Path, &candle_core::Device, candle_core::DType) -> Result<T, DiffusionError>,
) -> Result<Option<Arc<T>>, DiffusionError> {
    let Some(path) = path else {
        return Ok(None);
    };
    let mtime = std::fs::metadata(&path).and_then(|m| m.modified()).ok();
    let key = (path.clone(), mtime, format!("{:?}", device.location()), dtype);
    if let Some((k, net)) = slot.as_ref()
        && *k == key
    {
        return Ok(Some(net.clone()));
    }
    let net = Arc::new(open(&path, device, dtype)?);
    *slot = Some((key, net.clone()));
    Ok(Some(net))
}

/// A loaded ControlNet and what it was loaded for.
struct LoadedControl {
    path: std::path::PathBuf,
    device: String,
    dtype: candle_core::DType,
    net: std::sync::Arc<crate::diffusion::controlnet::ControlNet>,
    label: String,
}

/// Keeps the ControlNets the last job used (by path, device and precision), so that repeating a
/// job does not reload them; the others are dropped.
#[derive(Default)]
pub struct ControlNetCache {
    loaded: Vec<LoadedControl>,
}

/// A loaded network and its `name [hash]` label.
pub type ControlEntry = (std::sync::Arc<crate::diffusion::controlnet::ControlNet>, String);

impl ControlNetCache {
    /// The networks and `name [hash]` labels for `paths`, loading those not cached on `device`.
    ///
    /// # Errors
    /// A file cannot be loaded; the message names it.
    pub fn get(
        &mut self,
        paths: &[std::path::PathBuf],
        device: &candle_core::Device,
        dtype: candle_core::DType,
    ) -> Result<Vec<ControlEntry>, crate::diffusion::DiffusionError> {
        let dev = format!("{:?}", device.location());
        let mut kept: Vec<LoadedControl> = Vec::new();
        let mut out = Vec::new();
        for path in paths {
            let same = |l: &&LoadedControl| &l.path == path && l.device == dev && l.dtype == dtype;
            let found = self
                .loaded
                .iter()
                .chain(kept.iter())
                .find(same)
                .map(|l| (l.net.clone(), l.label.clone()));
            let (net, label) = if let Some(hit) = found {
                hit
            } else {
                let net = crate::diffusion::controlnet::ControlNet::load(path, device, dtype)?;
                (
                    std::sync::Arc::new(net),
                    crate::models::controlnet::list_label(path),
                )
            };
            if !kept.iter().any(|l| same(&l)) {
                kept.push(LoadedControl {
                    path: path.clone(),
                    device: dev.clone(),
                    dtype,
                    net: net.clone(),
                    label: label.clone(),
                });
            }
            out.push((net, label));
        }
        self.loaded = kept;
        Ok(out)
    }
}

/// Keeps the last loaded checkpoint so consecutive jobs do not reload it.
#[derive(Default)]
pub struct ModelCache {
    loaded: Option<Loaded>,
}

/// Opened LoRA files by path, reused while the file is unchanged.
#[derive(Default)]
pub struct LoraCache {
    files: HashMap<PathBuf, (Option<SystemTime>, Arc<LoraFile>)>,
}

/// The last embeddings load and what it came from.
#[derive(Default)]
pub struct EmbeddingCache {
    last: Option<(EmbeddingKey, Arc<EmbeddingDb>)>,
}

/// The model a job runs on, its identity, and the seconds it took to load (`None` when cached).
pub type ModelHandle<'a> = (&'a mut SdModel, &'a ModelIdentity, Option<f64>);

impl ModelCache {
    /// The model for `path` on `device`, loading it if it is not the cached one (or the file changed).
    pub fn get(
        &mut self,
        path: &Path,
        device: DeviceChoice,
        on_load: impl FnOnce(),
    ) -> Result<ModelHandle<'_>, DiffusionError> {
        let mtime = std::fs::metadata(path).and_then(|m| m.modified()).ok();
        let hit = self
            .loaded
            .as_ref()
            .is_some_and(|l| l.path == path && l.device == device && l.mtime == mtime);
        let mut loaded_secs = None;
        if !hit {
            self.loaded = None; // free the old model before loading the next one
            on_load();
            let dev = open_device(device)?;
            let model = SdModel::open(path, &dev, compute_dtype(&dev))?;
            loaded_secs = Some(model.load_secs);
            let identity = ModelIdentity::of(path)?;
            self.loaded = Some(Loaded {
                path: path.to_path_buf(),
                device,
                mtime,
                model,
                identity,
            });
        }
        match &mut self.loaded {
            Some(l) => Ok((&mut l.model, &l.identity, loaded_secs)),
            None => Err(DiffusionError::Input("no model is loaded".into())),
        }
    }

    /// Drops the loaded model (after a panic, so the next job starts clean).
    pub fn clear(&mut self) {
        self.loaded = None;
    }
}

impl LoraCache {
    /// The LoRA file at `path` opened as `name`, reused while the file is unchanged.
    pub fn get(&mut self, path: &Path, name: &str) -> Result<Arc<LoraFile>, LoraError> {
        let mtime = std::fs::metadata(path).and_then(|m| m.modified()).ok();
        if let Some((m, file)) = self.files.get(path)
            && *m == mtime
        {
            return Ok(file.clone());
        }
        let file = Arc::new(LoraFile::open(path, name)?);
        self.files.insert(path.to_path_buf(), (mtime, file.clone()));
        Ok(file)
    }
}

impl EmbeddingCache {
    /// The embeddings of `dirs`, reloaded only when a file changed; `on_skipped` hears about each
    /// file that could not be used, once per load.
    pub fn get(
        &mut self,
        dirs: &[PathBuf],
        tokenizer: &ClipTokenizer,
        hidden: usize,
        mut on_skipped: impl FnMut(&str),
    ) -> Arc<EmbeddingDb> {
        let mut files = Vec::new();
        for d in dirs {
            if let Ok(entries) = std::fs::read_dir(d) {
                for e in entries.flatten() {
                    let mtime = e.metadata().and_then(|m| m.modified()).ok();
                    files.push((e.path(), mtime));
                }
            }
        }
        files.sort();
        let key = (dirs.to_vec(), hidden, files);
        if let Some((k, db)) = &self.last
            && *k == key
        {
            return db.clone();
        }
        let db = Arc::new(EmbeddingDb::load(dirs, tokenizer, hidden));
        for why in &db.skipped {
            on_skipped(why);
        }
        self.last = Some((key, db.clone()));
        db
    }
}
