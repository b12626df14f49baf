//! Diffusers folders on disk: the JSON configs and the weight file of each component. The one place
//! the other model modules read a folder's layout from, so they do not import each other.

use std::path::{Path, PathBuf};

use super::ModelError;

/// Reads a JSON config file, with a message naming the file when it is not valid JSON.
pub fn read_json(path: &Path) -> Result<serde_json::Value, ModelError> {
    let text = crate::system::read_regular_text(path).map_err(|err| ModelError::io(path, &err))?;
    serde_json::from_str(&text).map_err(|err| ModelError::Config {
        path: path.to_path_buf(),
        why: format!("not valid JSON ({err})"),
    })
}

/// The weight file of each component of a diffusers folder (preferring full precision names, then `.fp16`).
pub fn weight_files(dir: &Path) -> Result<Vec<PathBuf>, ModelError> {
    [
        ("unet", "diffusion_pytorch_model"),
        ("vae", "diffusion_pytorch_model"),
        ("text_encoder", "model"),
    ]
    .iter()
    .map(|(sub, stem)| {
        let plain = dir.join(sub).join(format!("{stem}.safetensors"));
        let half = dir.join(sub).join(format!("{stem}.fp16.safetensors"));
        if plain.is_file() {
            Ok(plain)
        } else if half.is_file() {
            Ok(half)
        } else {
            Err(ModelError::Config {
                path: dir.to_path_buf(),
                why: format!(
                    "diffusers folder has no {sub}/{stem}.safetensors (pickled .bin weights are never loaded)"
                ),
            })
        }
    })
    .collect()
}
