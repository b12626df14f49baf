//! Model files: safetensors reading, family detection, LDM/diffusers key mapping, geometry configs, hashes.
//! Nothing here runs a network; it turns files on disk into validated weights and geometry.

pub mod config;
pub mod controlnet;
pub mod diffusers;
pub mod family;
pub mod hash;
pub mod keymap;
pub mod loader;
pub mod lora_file;
pub mod registry;
pub mod safetensors;
pub mod vae_file;

use std::path::{Path, PathBuf};

pub use family::{Family, ModelInfo, inspect};

/// Why a model file could not be used. Each message says what failed, why, and the path.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// The file does not exist.
    #[error("model file not found: {path}")]
    NotFound {
        /// The missing path.
        path: PathBuf,
    },
    /// Reading failed at the OS level.
    #[error("could not read {path}: {why}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        why: String,
    },
    /// The safetensors structure is broken.
    #[error("corrupt or truncated safetensors file: {why} (file: {path})")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// A pickle-based checkpoint; never executed.
    #[error(
        "refusing to open {path}: .ckpt/.pt files are Python pickles that can run arbitrary code when loaded. Use the .safetensors version of this model (most model pages offer one)"
    )]
    Pickle {
        /// The file.
        path: PathBuf,
    },
    /// Not a format Easel reads.
    #[error(
        "unsupported model format '{ext}': Easel reads .safetensors files and diffusers folders (file: {path})"
    )]
    UnsupportedFormat {
        /// The file.
        path: PathBuf,
        /// Its extension.
        ext: String,
    },
    /// The file is a model of a family this version cannot run.
    #[error("{what} (file: {path})")]
    UnsupportedFamily {
        /// The file.
        path: PathBuf,
        /// A sentence naming the family and what Easel supports.
        what: String,
    },
    /// A tensor the architecture needs is absent.
    #[error("could not load checkpoint: tensor '{name}' is missing (file: {path})")]
    MissingTensor {
        /// The file.
        path: PathBuf,
        /// The tensor's name in the file's own layout.
        name: String,
    },
    /// A tensor has the wrong shape for the geometry.
    #[error(
        "could not load checkpoint: tensor '{name}' has shape {found:?}, expected {expected:?} (file: {path})"
    )]
    ShapeMismatch {
        /// The file.
        path: PathBuf,
        /// The tensor's name in the file's own layout.
        name: String,
        /// Shape in the file.
        found: Vec<usize>,
        /// Shape the geometry needs.
        expected: Vec<usize>,
    },
    /// The geometry config beside the checkpoint is unreadable or contradicts the weights.
    #[error("model config problem: {why} (file: {path})")]
    Config {
        /// The config file (or checkpoint, when the contradiction is in its shapes).
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// A tensor operation failed while building a component.
    #[error("could not build {what} from {path}: {source}")]
    Tensor {
        /// The file.
        path: PathBuf,
        /// Which part.
        what: String,
        /// The candle error.
        source: candle_core::Error,
    },
}

impl ModelError {
    pub(crate) fn io(path: &Path, err: &std::io::Error) -> Self {
        if err.kind() == std::io::ErrorKind::NotFound {
            Self::NotFound {
                path: path.to_path_buf(),
            }
        } else {
            Self::Io {
                path: path.to_path_buf(),
                why: err.to_string(),
            }
        }
    }
}
