//! The job types every front end speaks: a [`Request`] in, [`StepInfo`] and [`GeneratedImage`] out.
//! Plain values with no tensors, so the GUI, the CLI and the tests build and read them the same way.

use std::path::PathBuf;

use image::{GrayImage, RgbImage};
use serde::{Deserialize, Serialize};

pub use crate::imaging::ops::ResizeMode;
use crate::params::GenerationParams;

/// A request that cannot be run as given; the message says what to change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidRequest(pub String);

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
}

/// What the masked area starts from (A1111's "Masked content").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum MaskedContent {
    /// The image's own colours blurred in from around the mask.
    #[serde(rename = "fill")]
    Fill,
    /// The original pixels.
    #[default]
    #[serde(rename = "original")]
    Original,
    /// Fresh noise in latent space.
    #[serde(rename = "latent noise")]
    LatentNoise,
    /// Zero latents.
    #[serde(rename = "latent nothing")]
    LatentNothing,
}

impl MaskedContent {
    /// Every choice, in A1111's order (its index is A1111's `inpainting_fill`).
    pub const ALL: [MaskedContent; 4] = [Self::Fill, Self::Original, Self::LatentNoise, Self::LatentNothing];

    /// A1111's label.
    pub fn label(self) -> &'static str {
        match self {
            Self::Fill => "fill",
            Self::Original => "original",
            Self::LatentNoise => "latent noise",
            Self::LatentNothing => "latent nothing",
        }
    }

    /// Parses a CLI name (`latent-noise`) or an A1111 label (`latent noise`).
    pub fn from_name(s: &str) -> Option<Self> {
        let s = s.trim().to_ascii_lowercase().replace(['-', '_'], " ");
        Self::ALL.into_iter().find(|m| m.label() == s)
    }
}

/// Which part of the image the model sees (A1111's "Inpaint area").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum InpaintArea {
    /// The whole image at the generation size.
    #[default]
    #[serde(rename = "Whole picture")]
    WholePicture,
    /// The mask's bounding box plus padding, scaled to the generation size and pasted back.
    #[serde(rename = "Only masked")]
    OnlyMasked,
}

impl InpaintArea {
    /// A1111's label.
    pub fn label(self) -> &'static str {
        match self {
            Self::WholePicture => "Whole picture",
            Self::OnlyMasked => "Only masked",
        }
    }

    /// Parses a CLI name (`whole`, `only-masked`) or an A1111 label.
    pub fn from_name(s: &str) -> Option<Self> {
        let s = s.trim().to_ascii_lowercase().replace(['_', ' '], "-");
        match s.as_str() {
            "whole" | "whole-picture" => Some(Self::WholePicture),
            "only-masked" | "masked" => Some(Self::OnlyMasked),
            _ => None,
        }
    }
}

/// The denoising strength A1111 uses when none is given.
pub const DEFAULT_STRENGTH: f32 = 0.75;

/// How an img2img input is fitted and masked, A1111's defaults. The denoising strength is not
/// here: it is [`GenerationParams::denoising_strength`], the one field the infotext also carries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Img2ImgSettings {
    /// How the init image is fitted to the generation size.
    pub resize_mode: ResizeMode,
    /// Gaussian σ of the mask feather, in pixels (0 = hard edge).
    pub mask_blur: u32,
    /// What the masked area starts from.
    pub masked_content: MaskedContent,
    /// Whole picture or only the masked region.
    pub inpaint_area: InpaintArea,
    /// "Only masked" padding around the mask's box, in pixels.
    pub padding: u32,
    /// Repaint the unmasked area instead ("Inpaint not masked").
    pub invert_mask: bool,
    /// Inpainting models: how much of the masked image the model sees (A1111's "Conditional mask weight").
    pub mask_weight: f32,
    /// Soft inpainting (A1111 1.8+): blend by mask strength instead of a binary latent mask. `None` = off.
    pub soft: Option<SoftInpainting>,
}

/// A1111's soft inpainting parameters (its built-in `soft-inpainting` extension), with its defaults.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SoftInpainting {
    /// "Schedule bias" (`mask_blend_power`): the σ exponent of the per-step preservation, 0–8.
    pub schedule_bias: f32,
    /// "Preservation strength" (`mask_blend_scale`): how strongly partly masked content is kept, 0–8.
    pub preservation: f32,
    /// "Transition contrast boost" (`inpaint_detail_preservation`): the magnitude-blend power, 1–32.
    pub transition_boost: f32,
    /// "Mask influence" (`composite_mask_influence`): how much the mask biases the difference threshold, 0–1.
    pub mask_influence: f32,
    /// "Difference threshold" (`composite_difference_threshold`): the latent change at which the
    /// original keeps 50 % opacity in the final composite, above 0 and at most 8.
    pub difference_threshold: f32,
    /// "Difference contrast" (`composite_difference_contrast`): how sharp that transition is, 0–8.
    pub difference_contrast: f32,
}

impl Default for SoftInpainting {
    fn default() -> Self {
        Self {
            schedule_bias: 1.0,
            preservation: 0.5,
            transition_boost: 4.0,
            mask_influence: 0.0,
            difference_threshold: 0.5,
            difference_contrast: 2.0,
        }
    }
}

impl SoftInpainting {
    /// Checks the six values against A1111's slider ranges.
    ///
    /// # Errors
    /// A non-finite or out-of-range value, named as in the CLI.
    pub fn validate(&self) -> Result<(), InvalidRequest> {
        // (label, CLI flag, value, low, high, low excluded)
        let checks = [
            (
                "Schedule bias",
                "--soft-schedule-bias",
                self.schedule_bias,
                0.0,
                8.0,
                false,
            ),
            (
                "Preservation strength",
                "--soft-preservation",
                self.preservation,
                0.0,
                8.0,
                false,
            ),
            (
                "Transition contrast boost",
                "--soft-transition-boost",
                self.transition_boost,
                1.0,
                32.0,
                false,
            ),
            (
                "Mask influence",
                "--soft-mask-influence",
                self.mask_influence,
                0.0,
                1.0,
                false,
            ),
            (
                "Difference threshold",
                "--soft-difference-threshold",
                self.difference_threshold,
                0.0,
                8.0,
                true,
            ),
            (
                "Difference contrast",
                "--soft-difference-contrast",
                self.difference_contrast,
                0.0,
                8.0,
                false,
            ),
        ];
        for (label, flag, v, lo, hi, above_lo) in checks {
            let ok = v.is_finite() && v <= hi && if above_lo { v > lo } else { v >= lo };
            if !ok {
                let range = if above_lo {
                    format!("above {lo} and at most {hi}")
                } else {
                    format!("between {lo} and {hi}")
                };
                return Err(InvalidRequest(format!(
                    "soft inpainting: {label} ({flag}) {v} must be {range}"
                )));
            }
        }
        Ok(())
    }
}

impl Default for Img2ImgSettings {
    fn default() -> Self {
        Self {
            resize_mode: ResizeMode::JustResize,
            mask_blur: 4,
            masked_content: MaskedContent::Original,
            inpaint_area: InpaintArea::WholePicture,
            padding: 32,
            invert_mask: false,
            mask_weight: 1.0,
            soft: None,
        }
    }
}

impl Img2ImgSettings {
    /// Checks values a user can type.
    ///
    /// # Errors
    /// A non-finite or out-of-range mask weight, or an absurd blur.
    pub fn validate(&self) -> Result<(), InvalidRequest> {
        if !(0.0..=1.0).contains(&self.mask_weight) {
            return Err(InvalidRequest(format!(
                "conditional mask weight {} must be between 0 and 1",
                self.mask_weight
            )));
        }
        if let Some(soft) = &self.soft {
            soft.validate()?;
        }
        if self.mask_blur > 256 {
            return Err(InvalidRequest(format!(
                "mask blur {} is larger than 256 px",
                self.mask_blur
            )));
        }
        Ok(())
    }
}

/// Checks a denoising strength a user typed.
///
/// # Errors
/// A strength outside [0, 1] (NaN included).
pub fn validate_strength(strength: f32) -> Result<(), InvalidRequest> {
    if (0.0..=1.0).contains(&strength) {
        Ok(())
    } else {
        Err(InvalidRequest(format!(
            "denoising strength {strength} must be between 0 and 1"
        )))
    }
}

/// An img2img input: the image, an optional mask (white = repaint) and the settings.
#[derive(Debug, Clone)]
pub struct InitImage {
    /// The image (any size; fitted with the resize mode, or cropped for "only masked").
    pub image: RgbImage,
    /// Mask of the same size as `image`: 255 repaints, 0 keeps, grey levels feather the composite.
    /// Files go through A1111's `create_binary_mask` when read ([`crate::imaging::load_mask`]).
    pub mask: Option<GrayImage>,
    /// Settings.
    pub settings: Img2ImgSettings,
}

/// One ControlNet unit of a job (sd-webui-controlnet's `ControlNetUnit`, the fields Easel runs).
#[derive(Debug, Clone, PartialEq)]
pub struct ControlUnit {
    /// The ControlNet file or diffusers folder.
    pub model: PathBuf,
    /// The control image; `None` uses the img2img input image (the canvas picture).
    pub image: Option<RgbImage>,
    /// The mask an inpaint hint carries; `None` uses the img2img mask.
    pub mask: Option<GrayImage>,
    /// The preprocessor ("module").
    pub preprocessor: crate::imaging::ops::HintPreprocessor,
    /// Weight, 0…2.
    pub weight: f64,
    /// Guidance start, a fraction of the steps.
    pub start: f64,
    /// Guidance end.
    pub end: f64,
    /// Control mode.
    pub mode: crate::diffusion::controlnet::ControlMode,
    /// How the control image is fitted to the generation size.
    pub resize: crate::imaging::ops::HintResize,
    /// Pick the preprocessor resolution from the image and generation sizes.
    pub pixel_perfect: bool,
    /// The preprocessor resolution, 64…2048.
    pub processor_res: u32,
}

impl ControlUnit {
    /// A unit with the extension's defaults for `model`.
    pub fn new(model: impl Into<PathBuf>) -> Self {
        Self {
            model: model.into(),
            image: None,
            mask: None,
            preprocessor: crate::imaging::ops::HintPreprocessor::None,
            weight: 1.0,
            start: 0.0,
            end: 1.0,
            mode: crate::diffusion::controlnet::ControlMode::Balanced,
            resize: crate::imaging::ops::HintResize::CropAndResize,
            pixel_perfect: false,
            processor_res: 512,
        }
    }

    /// Checks the ranges the extension enforces.
    ///
    /// # Errors
    /// A value out of range, with what to change.
    pub fn validate(&self) -> Result<(), InvalidRequest> {
        let bad = |m: String| Err(InvalidRequest(m));
        if !(0.0..=2.0).contains(&self.weight) {
            return bad(format!("ControlNet weight {} is outside 0…2", self.weight));
        }
        if !(0.0..=1.0).contains(&self.start) || !(0.0..=1.0).contains(&self.end) {
            return bad(format!(
                "ControlNet guidance start {} and end {} must lie in 0…1",
                self.start, self.end
            ));
        }
        if self.start > self.end {
            return bad(format!(
                "ControlNet guidance start {} is after its end {}",
                self.start, self.end
            ));
        }
        if !(64..=2048).contains(&self.processor_res) {
            return bad(format!(
                "ControlNet preprocessor resolution {} is outside 64…2048",
                self.processor_res
            ));
        }
        Ok(())
    }
}

/// Which network turns the final latents into pixels (A1111's "VAE type for decode").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum VaeDecoder {
    /// The checkpoint's own VAE.
    #[default]
    Full,
    /// TAESD, the tiny autoencoder: much faster, slightly softer; needs a `taesd_decoder` file in a
    /// `vae-approx` folder. The infotext gets A1111's `VAE Decoder: TAESD`.
    Taesd,
}

impl VaeDecoder {
    /// Parses `full|taesd` (any case).
    pub fn from_name(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "full" => Some(Self::Full),
            "taesd" => Some(Self::Taesd),
            _ => None,
        }
    }
}

/// Which network turns the img2img or inpaint start image into latents (A1111's "VAE type for
/// encode"): the same two choices as the decode. TAESD needs a `taesd_encoder` file in a
/// `vae-approx` folder, and the infotext gets A1111's `VAE Encoder: TAESD`.
pub type VaeEncoder = VaeDecoder;

/// What a fix looks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum FixTarget {
    /// Faces, MediaPipe's short-range detector (ADetailer's `mediapipe_face_short`).
    #[default]
    Faces,
    /// Hands, MediaPipe Hands lite (palm detection, then the hand landmark model; the box around
    /// the landmarks), what ADetailer's `hand_yolov8n.pt` is used for.
    Hands,
}

/// ADetailer's flow after a generation (or on an existing picture): detect, then one only-masked
/// inpaint per detection, in order, each on the previous result. Defaults are ADetailer's
/// (`adetailer/args.py`), except the confidence: 0.5 is what its MediaPipe option effectively
/// runs (the legacy MediaPipe call ignores ADetailer's 0.3).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct FixSettings {
    /// What to find.
    pub target: FixTarget,
    /// Further targets, each fixed in turn on the result of the one before with the same
    /// settings (ADetailer's 2nd, 3rd … tab; their infotext keys carry that suffix).
    pub more_targets: Vec<FixTarget>,
    /// Detector score threshold.
    pub confidence: f32,
    /// Square kernel in pixels that grows (> 0) or shrinks (< 0) each box mask (`cv2.dilate`).
    pub dilate_erode: i32,
    /// Mask blur of each inpaint, in pixels.
    pub mask_blur: u32,
    /// Denoising strength of each inpaint.
    pub strength: f32,
    /// Inpaint only the masked region (at the generation size) instead of the whole picture.
    pub only_masked: bool,
    /// "Only masked" padding in pixels.
    pub padding: u32,
    /// Prompt of the fix; empty uses the generation's prompt.
    pub prompt: String,
    /// Negative prompt of the fix; empty uses the generation's.
    pub negative_prompt: String,
    /// Fix the request's init image as it is instead of generating first (the init's mask and
    /// settings are not used).
    pub picture_only: bool,
    /// ADetailer's ControlNet option: a unit applied to every fix inpaint (its image and mask are
    /// the pass's own), e.g. an inpaint ControlNet that keeps the face's structure.
    #[serde(skip)]
    pub control: Option<ControlUnit>,
    /// Soft inpainting for every fix inpaint (A1111 runs its always-on scripts, soft inpainting
    /// among them, in ADetailer's passes); `None`: the binary mask.
    pub soft: Option<SoftInpainting>,
}

impl Default for FixSettings {
    fn default() -> Self {
        Self {
            target: FixTarget::Faces,
            more_targets: Vec::new(),
            confidence: 0.5,
            dilate_erode: 4,
            mask_blur: 4,
            strength: 0.4,
            only_masked: true,
            padding: 32,
            prompt: String::new(),
            negative_prompt: String::new(),
            picture_only: false,
            control: None,
            soft: None,
        }
    }
}

/// One generation job as the GUI, the CLI and the tests describe it.
#[derive(Debug, Clone, Default)]
pub struct Request {
    /// Checkpoint file or diffusers folder.
    pub model: PathBuf,
    /// Where to run.
    pub device: DeviceChoice,
    /// What to generate. `denoising_strength` is the img2img strength when `init` is given
    /// ([`DEFAULT_STRENGTH`] when unset) and is ignored otherwise.
    pub params: GenerationParams,
    /// img2img/inpainting input; `None` for txt2img.
    pub init: Option<InitImage>,
    /// Folders where `<lora:name:w>` tags are looked up.
    pub lora_dirs: Vec<PathBuf>,
    /// Folders of textual-inversion embeddings.
    pub embedding_dirs: Vec<PathBuf>,
    /// Send a live preview after every step.
    pub previews: bool,
    /// ControlNet units, applied together.
    pub controls: Vec<ControlUnit>,
    /// A standalone VAE file used instead of the checkpoint's for decoding and encoding (A1111's
    /// SD VAE setting); `None`: the checkpoint's own.
    pub vae: Option<PathBuf>,
    /// The final decode: the checkpoint's VAE or TAESD.
    pub vae_decoder: VaeDecoder,
    /// The encode of an img2img or inpaint start image: the checkpoint's VAE or TAESD.
    pub vae_encoder: VaeEncoder,
    /// Folders searched for TAESD files (`taesd_decoder.safetensors`, …): the final decode with
    /// [`VaeDecoder::Taesd`], and full-resolution live previews whenever a decoder is there.
    pub vae_approx_dirs: Vec<PathBuf>,
    /// ADetailer's after-step: find faces and repaint each one (`None`: no fix).
    pub fix: Option<FixSettings>,
}

impl Request {
    /// A txt2img request for `model` with no LoRA or embedding folders.
    pub fn new(model: impl Into<PathBuf>, params: GenerationParams) -> Self {
        Self {
            model: model.into(),
            params,
            ..Self::default()
        }
    }
}

/// Where a generation is, reported after every sampler step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StepInfo {
    /// Batch iteration (0-based) of `batch_count`.
    pub batch: usize,
    /// Number of batch iterations.
    pub batch_count: usize,
    /// Step just finished (1-based).
    pub step: usize,
    /// Steps per image.
    pub steps: usize,
}

/// One finished image.
#[derive(Debug, Clone)]
pub struct GeneratedImage {
    /// 0-based index over the whole job (batch iteration × batch size + position).
    pub index: usize,
    /// The seed that made it.
    pub seed: u64,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Row-major RGB8 pixels.
    pub rgb: Vec<u8>,
    /// A1111 `parameters` text for this image.
    pub infotext: String,
}

/// A live preview of the first image of a batch: latent-resolution RGBA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreviewImage {
    /// Width in latent cells (the image width / the VAE factor).
    pub width: usize,
    /// Height in latent cells.
    pub height: usize,
    /// Row-major RGBA8.
    pub rgba: Vec<u8>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn soft_inpainting_defaults_ranges_and_old_settings() {
        let d = SoftInpainting::default();
        assert_eq!(
            (
                d.schedule_bias,
                d.preservation,
                d.transition_boost,
                d.mask_influence
            ),
            (1.0, 0.5, 4.0, 0.0)
        );
        assert_eq!((d.difference_threshold, d.difference_contrast), (0.5, 2.0));
        assert!(d.validate().is_ok());
        let edges = SoftInpainting {
            schedule_bias: 0.0,
            preservation: 8.0,
            transition_boost: 1.0,
            mask_influence: 1.0,
            difference_threshold: 8.0,
            difference_contrast: 0.0,
        };
        assert!(edges.validate().is_ok());
        for bad in [
            SoftInpainting {
                schedule_bias: -0.1,
                ..d
            },
            SoftInpainting {
                preservation: f32::INFINITY,
                ..d
            },
            SoftInpainting {
                transition_boost: 0.0,
                ..d
            },
            SoftInpainting {
                mask_influence: 1.01,
                ..d
            },
            SoftInpainting {
                difference_threshold: 0.0,
                ..d
            },
            SoftInpainting {
                difference_contrast: f32::NAN,
                ..d
            },
        ] {
            let s = Img2ImgSettings {
                soft: Some(bad),
                ..Img2ImgSettings::default()
            };
            assert!(s.validate().unwrap_err().0.contains("soft inpainting"), "{bad:?}");
        }
        // Settings saved before soft inpainting existed load with it off.
        let old: Img2ImgSettings = serde_json::from_str(r#"{"mask_blur": 8}"#).unwrap();
        assert_eq!(old.soft, None);
        assert_eq!(old.mask_blur, 8);
    }

    #[test]
    fn names_parse() {
        assert_eq!(
            MaskedContent::from_name("latent-noise"),
            Some(MaskedContent::LatentNoise)
        );
        assert_eq!(
            MaskedContent::from_name("latent nothing"),
            Some(MaskedContent::LatentNothing)
        );
        assert_eq!(MaskedContent::from_name("Fill"), Some(MaskedContent::Fill));
        assert_eq!(MaskedContent::from_name("blank"), None);
        assert_eq!(
            InpaintArea::from_name("only-masked"),
            Some(InpaintArea::OnlyMasked)
        );
        assert_eq!(
            InpaintArea::from_name("Whole picture"),
            Some(InpaintArea::WholePicture)
        );
        assert_eq!(ResizeMode::from_name("crop"), Some(ResizeMode::CropAndResize));
        assert_eq!(
            ResizeMode::from_name("Resize and fill"),
            Some(ResizeMode::ResizeAndFill)
        );
    }
}
