//! Where Easel keeps things and what it remembers: the data, model, LoRA, embeddings, ControlNet,
//! VAE and output folders, and `settings.json`. Shared by the CLI and the GUI; knows nothing of egui.

mod language;
mod settings;

use std::path::PathBuf;

pub use language::Language;
pub use settings::{ControlSettings, FixAfter, Mode, Settings};

/// Folders the app reads and writes.
#[derive(Debug, Clone)]
pub struct AppPaths {
    /// Settings, logs, the default model folder.
    pub data_dir: PathBuf,
    /// Generated images (the gallery).
    pub outputs_dir: PathBuf,
    /// Where users can drop checkpoints without configuring anything.
    pub default_models_dir: PathBuf,
}

impl AppPaths {
    /// The platform's data folder for Easel (`EASEL_DATA_DIR` overrides it).
    pub fn platform() -> Self {
        let data_dir = std::env::var_os("EASEL_DATA_DIR").map_or_else(
            || {
                directories::ProjectDirs::from("", "", "Easel")
                    .map_or_else(|| PathBuf::from(".easel"), |d| d.data_dir().to_path_buf())
            },
            PathBuf::from,
        );
        Self::under(data_dir)
    }

    /// Where the open document is autosaved.
    pub fn document_dir(&self) -> PathBuf {
        self.data_dir.join("document")
    }

    /// The default LoRA folder.
    pub fn default_lora_dir(&self) -> PathBuf {
        self.data_dir.join("loras")
    }

    /// Every LoRA folder: the default one plus the A1111 / ComfyUI LoRA folders of `model_folders`.
    pub fn lora_dirs(&self, model_folders: &[PathBuf]) -> Vec<PathBuf> {
        let mut dirs = vec![self.default_lora_dir()];
        for root in model_folders {
            dirs.extend(crate::models::registry::lora_dirs(root));
        }
        dirs
    }

    /// The default embeddings folder.
    pub fn default_embeddings_dir(&self) -> PathBuf {
        self.data_dir.join("embeddings")
    }

    /// Every embeddings folder: the default one plus A1111's `embeddings` and ComfyUI's
    /// `models/embeddings` below `model_folders`.
    pub fn embedding_dirs(&self, model_folders: &[PathBuf]) -> Vec<PathBuf> {
        let mut dirs = vec![self.default_embeddings_dir()];
        for root in model_folders {
            for sub in ["embeddings", "models/embeddings"] {
                let d = root.join(sub);
                if d.is_dir() {
                    dirs.push(d);
                }
            }
        }
        dirs
    }

    /// The default ControlNet folder.
    pub fn default_controlnet_dir(&self) -> PathBuf {
        self.data_dir.join("controlnet")
    }

    /// Every ControlNet folder: the default one plus A1111's `models/ControlNet` and ComfyUI's
    /// `models/controlnet` below `model_folders`.
    pub fn controlnet_dirs(&self, model_folders: &[PathBuf]) -> Vec<PathBuf> {
        let mut dirs = vec![self.default_controlnet_dir()];
        for root in model_folders {
            dirs.extend(crate::models::registry::controlnet_dirs(root));
        }
        dirs
    }

    /// The default VAE folder.
    pub fn default_vae_dir(&self) -> PathBuf {
        self.data_dir.join("vae")
    }

    /// Every VAE folder: the default one plus A1111's `models/VAE` and ComfyUI's `models/vae`
    /// below `model_folders`.
    pub fn vae_dirs(&self, model_folders: &[PathBuf]) -> Vec<PathBuf> {
        let mut dirs = vec![self.default_vae_dir()];
        for root in model_folders {
            dirs.extend(crate::models::vae_file::vae_dirs(root));
        }
        dirs
    }

    /// The default folder of tiny preview decoders (TAESD), A1111's `models/VAE-approx`.
    pub fn default_vae_approx_dir(&self) -> PathBuf {
        self.data_dir.join("vae-approx")
    }

    /// Every TAESD folder: the default one plus A1111's `models/VAE-taesd` (where v1.10 keeps
    /// `taesd_decoder`) and `models/VAE-approx`, and ComfyUI's `models/vae_approx`, below `model_folders`.
    pub fn vae_approx_dirs(&self, model_folders: &[PathBuf]) -> Vec<PathBuf> {
        let mut dirs = vec![self.default_vae_approx_dir()];
        for root in model_folders {
            for sub in [
                "models/VAE-taesd",
                "models/VAE-approx",
                "models/vae_approx",
                "VAE-taesd",
                "VAE-approx",
                "vae_approx",
            ] {
                let d = root.join(sub);
                if d.is_dir() {
                    dirs.push(d);
                }
            }
        }
        dirs
    }

    /// Where Civitai lookups by hash and their preview pictures are cached.
    pub fn civitai_cache_dir(&self) -> PathBuf {
        self.data_dir.join("cache").join("civitai")
    }

    /// The settings file.
    pub fn settings_file(&self) -> PathBuf {
        self.data_dir.join("settings.json")
    }

    /// The log file.
    pub fn log_file(&self) -> PathBuf {
        self.data_dir.join("easel.log")
    }

    /// All folders below one root (tests use a temporary one).
    pub fn under(data_dir: PathBuf) -> Self {
        Self {
            outputs_dir: data_dir.join("outputs"),
            default_models_dir: data_dir.join("models"),
            data_dir,
        }
    }
}
