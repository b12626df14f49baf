//! A standalone VAE file (A1111's `models/VAE`, e.g. `vae-ft-mse-840000-ema-pruned.safetensors`)
//! that replaces a checkpoint's autoencoder: LDM keys (optionally `first_stage_model.`-prefixed) or diffusers names.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::{DType, Device};
use candle_nn::VarBuilder;

use super::ModelError;
use super::family::{self, Family};
use super::keymap::{self, LDM_VAE_PREFIX};
use super::loader::{ErrorSlot, KeyFn, mapped_var_builder};
use super::safetensors::SafetensorsFile;

/// How the file names its tensors.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Layout {
    /// LDM names (`decoder.up.3.block.0…`) after `prefix` (empty or `first_stage_model.`).
    Ldm { prefix: String },
    /// diffusers `AutoencoderKL` names (`decoder.up_blocks.0.resnets.0…`).
    Diffusers,
}

/// An opened standalone VAE, with what the infotext says about it.
pub struct VaeFile {
    /// The file.
    pub path: PathBuf,
    /// A1111's `VAE:` value: the file name with its extension.
    pub name: String,
    /// A1111's `VAE hash:` value: the first 10 hex digits of the file's sha256.
    pub short_hash: String,
    file: Arc<SafetensorsFile>,
    layout: Layout,
}

impl std::fmt::Debug for VaeFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VaeFile")
            .field("path", &self.path)
            .field("layout", &self.layout)
            .finish_non_exhaustive()
    }
}

/// Folders searched for VAE files below a model folder: A1111's `models/VAE`, ComfyUI's `models/vae`.
pub fn vae_dirs(root: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = Vec::new();
    for sub in ["models/VAE", "models/vae", "VAE", "vae"] {
        let d = root.join(sub);
        // On case-insensitive file systems `VAE` and `vae` are the same folder.
        let same = |p: &PathBuf| std::fs::canonicalize(p).ok() == std::fs::canonicalize(&d).ok();
        if d.is_dir() && !out.iter().any(same) {
            out.push(d);
        }
    }
    out
}

/// The `.safetensors` files of `dirs`, sorted by file name (the VAE picker's list).
pub fn list(dirs: &[PathBuf]) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = dirs
        .iter()
        .filter_map(|d| std::fs::read_dir(d).ok())
        .flat_map(|entries| entries.flatten().map(|e| e.path()))
        .filter(|p| {
            p.extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("safetensors"))
        })
        .collect();
    files.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
    files
}

/// The file called `name` (A1111's `VAE:` value, with or without `.safetensors`) in `dirs`.
pub fn find(name: &str, dirs: &[PathBuf]) -> Option<PathBuf> {
    let stem = name.strip_suffix(".safetensors").unwrap_or(name);
    dirs.iter()
        .map(|d| d.join(format!("{stem}.safetensors")))
        .find(|p| p.is_file())
}

/// A pickle (`.pt`/`.ckpt`) called `name` in `dirs`, to refuse by name rather than say "not found".
pub fn find_pickle(name: &str, dirs: &[PathBuf]) -> Option<PathBuf> {
    let stem = Path::new(name).file_stem()?.to_string_lossy().into_owned();
    dirs.iter()
        .flat_map(|d| ["pt", "ckpt"].map(|e| d.join(format!("{stem}.{e}"))))
        .find(|p| p.is_file())
}

fn wrong_file(path: &Path, what: &str) -> ModelError {
    ModelError::UnsupportedFamily {
        path: path.to_path_buf(),
        what: format!(
            "this is {what}, not a VAE: a VAE file holds only encoder.*, decoder.*, quant_conv.* and post_quant_conv.* tensors"
        ),
    }
}

impl VaeFile {
    /// Opens and classifies `path`, and hashes it (cached on disk).
    ///
    /// # Errors
    /// A missing file, a pickle, or a file that is not a standalone VAE (a checkpoint, a LoRA…).
    pub fn open(path: &Path) -> Result<Self, ModelError> {
        if !path.is_file() {
            return Err(ModelError::Io {
                path: path.to_path_buf(),
                why: "the VAE file does not exist".into(),
            });
        }
        family::check_extension(path)?;
        let file = SafetensorsFile::open(path)?;
        let layout = Self::layout(&file)?;
        let sha = super::hash::cached_sha256(path, |_, _| {})?;
        Ok(Self {
            path: path.to_path_buf(),
            name: path
                .file_name()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default(),
            short_hash: sha.chars().take(10).collect(),
            file: Arc::new(file),
            layout,
        })
    }

    fn layout(file: &SafetensorsFile) -> Result<Layout, ModelError> {
        let tensors = file.tensors();
        let path = file.path();
        let family = family::detect_single_file(file);
        let has = |k: &str| tensors.contains_key(k);
        match family {
            Family::Sd1
            | Family::Sd1Inpaint
            | Family::Sd1Other
            | Family::Sd2
            | Family::Sdxl
            | Family::SdxlRefiner
            | Family::Sd3
            | Family::Flux => return Err(wrong_file(path, "a full checkpoint")),
            Family::Lora => return Err(wrong_file(path, "a LoRA")),
            Family::ControlNet => return Err(wrong_file(path, "a ControlNet")),
            Family::Vae | Family::Unknown => {}
        }
        for prefix in ["", LDM_VAE_PREFIX] {
            if has(&format!("{prefix}decoder.conv_in.weight"))
                && has(&format!("{prefix}encoder.conv_in.weight"))
            {
                return Ok(
                    if has(&format!("{prefix}decoder.up_blocks.0.resnets.0.conv1.weight")) {
                        Layout::Diffusers
                    } else {
                        Layout::Ldm {
                            prefix: prefix.to_owned(),
                        }
                    },
                );
            }
        }
        Err(ModelError::UnsupportedFamily {
            path: path.to_path_buf(),
            what: "this file is not a VAE: it has no encoder.conv_in and decoder.conv_in tensors".into(),
        })
    }

    /// A `VarBuilder` reading the autoencoder in candle's (diffusers) names, for a VAE with
    /// `levels` resolution levels, plus the slot that names the file's own key on failure.
    pub fn var_builder(
        &self,
        levels: usize,
        dtype: DType,
        device: &Device,
    ) -> (VarBuilder<'static>, ErrorSlot) {
        let key: KeyFn = match &self.layout {
            Layout::Diffusers => Arc::new(|n: &str| Some(n.to_owned())),
            Layout::Ldm { prefix } => {
                let prefix = prefix.clone();
                Arc::new(move |n: &str| {
                    let ldm = keymap::vae_key(n, levels)?;
                    let body = ldm.strip_prefix(LDM_VAE_PREFIX).unwrap_or(&ldm);
                    Some(format!("{prefix}{body}"))
                })
            }
        };
        mapped_var_builder(self.file.clone(), key, dtype, device)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vae_folders_and_names() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let root = dir.path();
        let a1111 = root.join("models").join("VAE");
        std::fs::create_dir_all(&a1111).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(a1111.join("ft-mse.safetensors"), b"").unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(a1111.join("old.pt"), b"").unwrap_or_else(|e| panic!("{e}"));
        let dirs = vae_dirs(root);
        assert_eq!(dirs.first(), Some(&a1111));
        assert_eq!(list(&dirs), vec![a1111.join("ft-mse.safetensors")]);
        assert_eq!(
            find("ft-mse.safetensors", &dirs),
            Some(a1111.join("ft-mse.safetensors"))
        );
        assert_eq!(find("ft-mse", &dirs), Some(a1111.join("ft-mse.safetensors")));
        assert_eq!(find("other.safetensors", &dirs), None);
        assert_eq!(find_pickle("old.pt", &dirs), Some(a1111.join("old.pt")));
    }
}
