//! What the app remembers between runs: last parameters, model folders, the selected model.
//! Unknown or broken fields fall back to defaults (`serde(default)`); a broken file never stops the app.

use std::path::PathBuf;

use super::canvas::ToolSettings;
use crate::diffusion::img2img::Img2ImgSettings;
use crate::params::GenerationParams;

/// What Generate does with the canvas.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum Mode {
    /// A new picture from the prompt.
    #[default]
    TextToImage,
    /// Start from the canvas picture; repaint the masked area when there is a mask.
    ImageToImage,
}

/// Persisted state (eframe storage, RON).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct Settings {
    /// The prompt panel's values.
    pub params: GenerationParams,
    /// Pick a new random seed for every generation.
    pub random_seed: bool,
    /// Folders the user added to the model browser.
    pub model_folders: Vec<PathBuf>,
    /// The checkpoint last used.
    pub selected_model: Option<PathBuf>,
    /// Text to image or image to image.
    pub mode: Mode,
    /// img2img / inpainting settings.
    pub img2img: Img2ImgSettings,
    /// Canvas tools.
    pub tools: ToolSettings,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            params: GenerationParams::default(),
            random_seed: true,
            model_folders: Vec::new(),
            selected_model: None,
            mode: Mode::TextToImage,
            img2img: Img2ImgSettings::default(),
            tools: ToolSettings::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_tolerant_of_missing_fields() {
        let mut s = Settings::default();
        s.params.prompt = "a fox".into();
        s.model_folders.push("/models".into());
        let text = serde_json::to_string(&s).unwrap();
        assert_eq!(serde_json::from_str::<Settings>(&text).unwrap(), s);
        let partial: Settings = serde_json::from_str(r#"{"random_seed": false}"#).unwrap();
        assert!(!partial.random_seed);
        assert_eq!(partial.params, GenerationParams::default());
    }
}
