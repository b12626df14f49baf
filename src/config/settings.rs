//! What the app remembers between runs: last parameters, model folders, the selected model, the
//! canvas tools. Stored as `settings.json` in the data folder, written atomically; the CLI reads the
//! folders from it too.
//! Unknown or missing fields fall back to defaults (`serde(default)`); a broken file never stops the
//! app: it is set aside and the app starts from defaults with a warning.

use std::path::{Path, PathBuf};

use crate::document::ToolSettings;
use crate::infotext::OutputFormat;
use crate::params::GenerationParams;
use crate::request::{DEFAULT_STRENGTH, Img2ImgSettings, VaeDecoder, VaeEncoder};

/// What Generate does with the canvas.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum Mode {
    /// A new picture from the prompt.
    #[default]
    TextToImage,
    /// Start from the canvas picture; repaint the masked area when there is a mask.
    ImageToImage,
}

/// The ControlNet section (one unit), kept by name so that a settings file stays readable.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct ControlSettings {
    /// Apply the unit to generations.
    pub enabled: bool,
    /// The ControlNet file or folder.
    pub model: Option<PathBuf>,
    /// Use this image file as the control image instead of the canvas picture.
    pub image_file: Option<PathBuf>,
    /// Preprocessor module name (`none`, `canny`, `inpaint_only`, `tile_resample`, `lineart_standard`, `scribble_xdog`).
    pub preprocessor: String,
    /// Canny thresholds.
    pub canny_low: u8,
    /// Canny high threshold.
    pub canny_high: u8,
    /// tile_resample's down-sampling rate.
    pub tile_rate: f32,
    /// scribble_xdog's threshold.
    pub xdog_threshold: u8,
    /// Weight, 0…2.
    pub weight: f64,
    /// Guidance start.
    pub start: f64,
    /// Guidance end.
    pub end: f64,
    /// Control mode label.
    pub mode: String,
    /// Resize mode label.
    pub resize: String,
    /// Pixel perfect.
    pub pixel_perfect: bool,
    /// Preprocessor resolution.
    pub processor_res: u32,
}

impl Default for ControlSettings {
    fn default() -> Self {
        Self {
            enabled: false,
            model: None,
            image_file: None,
            preprocessor: "none".into(),
            canny_low: 100,
            canny_high: 200,
            tile_rate: 1.0,
            xdog_threshold: 32,
            weight: 1.0,
            start: 0.0,
            end: 1.0,
            mode: "Balanced".into(),
            resize: "Crop and Resize".into(),
            pixel_perfect: false,
            processor_res: 512,
        }
    }
}

impl ControlSettings {
    /// The preprocessor with this section's thresholds.
    pub fn preprocessor(&self) -> crate::imaging::ops::HintPreprocessor {
        use crate::imaging::ops::HintPreprocessor as P;
        match P::from_name(&self.preprocessor).unwrap_or(P::None) {
            P::Canny { .. } => P::Canny {
                low: self.canny_low,
                high: self.canny_high,
            },
            P::TileResample { .. } => P::TileResample {
                down_sampling_rate: self.tile_rate,
            },
            P::ScribbleXdog { .. } => P::ScribbleXdog {
                threshold: self.xdog_threshold,
            },
            other => other,
        }
    }

    /// The unit for `model` (the image and mask are the caller's).
    pub fn unit(&self, model: PathBuf) -> crate::request::ControlUnit {
        let mut unit = crate::request::ControlUnit::new(model);
        unit.preprocessor = self.preprocessor();
        unit.weight = self.weight;
        unit.start = self.start;
        unit.end = self.end;
        unit.mode = crate::diffusion::controlnet::ControlMode::from_name(&self.mode).unwrap_or_default();
        unit.resize = crate::imaging::ops::HintResize::from_name(&self.resize).unwrap_or_default();
        unit.pixel_perfect = self.pixel_perfect;
        unit.processor_res = self.processor_res;
        unit
    }
}

/// Persisted state (`settings.json`).
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
    /// img2img denoising strength (the prompt panel's slider; written into the job's parameters
    /// when Generate starts from the canvas).
    pub strength: f32,
    /// img2img / inpainting settings.
    pub img2img: Img2ImgSettings,
    /// Canvas tools.
    pub tools: ToolSettings,
    /// File format of generated images (PNG by default; JPEG and WebP carry A1111's EXIF).
    pub output_format: OutputFormat,
    /// Look model files up on Civitai by their hash (name, trigger words, preview). Off by default:
    /// Easel makes no network request unless the user asks for one.
    pub civitai_lookup: bool,
    /// The ControlNet section.
    pub controlnet: ControlSettings,
    /// Refine adds a ControlNet inpaint (or tile) unit, so the repainted area keeps its structure.
    pub keep_structure: bool,
    /// "After generating: fix faces / fix hands": ADetailer's flow after every Generate.
    pub fix_after: FixAfter,
    /// The final decode: the checkpoint's VAE, or TAESD ("Decode with TAESD" in the prompt panel).
    pub vae_decoder: VaeDecoder,
    /// The encode of the img2img start image: the checkpoint's VAE, or TAESD ("Encode with TAESD").
    pub vae_encoder: VaeEncoder,
    /// A standalone VAE file used instead of the checkpoint's ("SD VAE"); `None`: Automatic, the
    /// checkpoint's own.
    pub vae: Option<PathBuf>,
    /// The UI language; `None` (and settings files from before the field) follow the system locale.
    pub language: Option<super::Language>,
}

/// What every Generate fixes afterwards (ADetailer's "Enable" with its first and second tab).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct FixAfter {
    /// Repaint each face found in the result.
    pub faces: bool,
    /// Repaint each hand found in the result (after the faces).
    pub hands: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            params: GenerationParams::default(),
            random_seed: true,
            model_folders: Vec::new(),
            selected_model: None,
            mode: Mode::TextToImage,
            strength: DEFAULT_STRENGTH,
            img2img: Img2ImgSettings::default(),
            tools: ToolSettings::default(),
            output_format: OutputFormat::Png,
            civitai_lookup: false,
            controlnet: ControlSettings::default(),
            keep_structure: false,
            fix_after: FixAfter::default(),
            vae_decoder: VaeDecoder::Full,
            vae_encoder: VaeEncoder::Full,
            vae: None,
            language: None,
        }
    }
}

impl Settings {
    /// Reads `path`. A missing file gives defaults; an unreadable one gives defaults plus a warning
    /// for the user, and is renamed to `*.broken` so the next save does not lose it silently.
    pub fn load(path: &Path) -> (Self, Option<String>) {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return (Self::default(), None),
            Err(e) => {
                return (
                    Self::default(),
                    Some(format!(
                        "could not read the settings ({}: {e}); using defaults",
                        path.display()
                    )),
                );
            }
        };
        match serde_json::from_str(&text) {
            Ok(settings) => (settings, None),
            Err(e) => {
                let broken = path.with_extension("json.broken");
                let _ = std::fs::rename(path, &broken);
                (
                    Self::default(),
                    Some(format!(
                        "the settings file was damaged ({e}); starting from defaults. The old file is {}",
                        broken.display()
                    )),
                )
            }
        }
    }

    /// The UI language: the one chosen in the menu, else the system locale's.
    pub fn ui_language(&self) -> super::Language {
        self.language.unwrap_or_else(super::Language::from_environment)
    }

    /// Writes `path` through a temporary file and a rename.
    ///
    /// # Errors
    /// The folder or file cannot be written.
    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let text = serde_json::to_string_pretty(self).map_err(std::io::Error::other)?;
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, text)?;
        std::fs::rename(&tmp, path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_round_trip_and_a_damaged_file_gives_defaults_and_a_warning() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("settings.json");
        assert_eq!(Settings::load(&path), (Settings::default(), None));
        let mut s = Settings::default();
        s.params.prompt = "a heron".into();
        s.params.sampler = crate::params::Sampler::EulerA;
        s.strength = 0.35;
        s.save(&path).unwrap();
        assert_eq!(Settings::load(&path), (s, None));
        std::fs::write(&path, "{ not json").unwrap();
        let (loaded, warning) = Settings::load(&path);
        assert_eq!(loaded, Settings::default());
        assert!(warning.unwrap().contains("damaged"));
        assert!(dir.path().join("settings.json.broken").exists());
    }

    #[test]
    fn round_trip_and_tolerant_of_missing_fields() {
        let mut s = Settings::default();
        s.params.prompt = "a fox".into();
        s.model_folders.push("/models".into());
        let text = serde_json::to_string(&s).unwrap();
        assert_eq!(serde_json::from_str::<Settings>(&text).unwrap(), s);
        let partial: Settings = serde_json::from_str(r#"{"random_seed": false}"#).unwrap();
        assert!(!partial.random_seed);
        assert!(!partial.civitai_lookup, "no network request unless asked");
        assert_eq!(partial.params, GenerationParams::default());
        assert_eq!(partial.language, None, "an old file follows the system locale");
        let chosen: Settings = serde_json::from_str(r#"{"language": "SimplifiedChinese"}"#).unwrap();
        assert_eq!(chosen.ui_language(), crate::config::Language::SimplifiedChinese);
    }
}
