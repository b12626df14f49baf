//! img2img and inpainting with A1111 v1.10 semantics: the pixel stage (resize, mask blur, masked
//! content, "only masked" crop), the latent stage (VAE encode, latent mask, inpainting-model
//! conditioning) and the final composite over the original pixels.
//!
//! The pixel arithmetic lives in [`crate::imaging::ops`] (PIL/OpenCV-compatible); this module puts
//! the stages in A1111's order. One deliberate difference: A1111 samples the VAE posterior from the
//! global torch RNG, which depends on whatever ran before; Easel uses the posterior mean, so the same
//! settings always give the same image.

use candle_core::{DType, Device, Tensor};
use image::{GrayImage, RgbImage};
use serde::{Deserialize, Serialize};

use super::DiffusionError;
use super::model::SdModel;
use super::pipeline::Start;
use crate::imaging::ops::{self, ResizeMode as OpsResize};

/// How an init image of another size is fitted to the generation size (A1111's "Resize mode").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum ResizeMode {
    /// Stretch to the target size.
    #[default]
    #[serde(rename = "Just resize")]
    JustResize,
    /// Scale to cover the target and crop the overflow (centred).
    #[serde(rename = "Crop and resize")]
    CropAndResize,
    /// Scale to fit inside the target and fill the borders with stretched edge pixels.
    #[serde(rename = "Resize and fill")]
    ResizeAndFill,
}

impl ResizeMode {
    /// Every mode, in A1111's order.
    pub const ALL: [ResizeMode; 3] = [Self::JustResize, Self::CropAndResize, Self::ResizeAndFill];

    /// A1111's label.
    pub fn label(self) -> &'static str {
        match self {
            Self::JustResize => "Just resize",
            Self::CropAndResize => "Crop and resize",
            Self::ResizeAndFill => "Resize and fill",
        }
    }

    /// Parses a CLI name (`just-resize`, `crop`, `fill`, …) or an A1111 label.
    pub fn from_name(s: &str) -> Option<Self> {
        let s = s.trim().to_ascii_lowercase().replace(['_', ' '], "-");
        match s.as_str() {
            "just-resize" | "just" | "resize" | "stretch" => Some(Self::JustResize),
            "crop-and-resize" | "crop" => Some(Self::CropAndResize),
            "resize-and-fill" | "fill" => Some(Self::ResizeAndFill),
            _ => None,
        }
    }

    fn ops(self) -> OpsResize {
        match self {
            Self::JustResize => OpsResize::Just,
            Self::CropAndResize => OpsResize::CropAndResize,
            Self::ResizeAndFill => OpsResize::ResizeAndFill,
        }
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

/// The infotext keys of img2img and inpainting that Easel reads and writes.
pub const INFOTEXT_KEYS: [&str; 6] = [
    "Conditional mask weight",
    "Mask blur",
    "Mask mode",
    "Masked content",
    "Inpaint area",
    "Masked area padding",
];

/// img2img and inpainting settings, A1111's defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Img2ImgSettings {
    /// Denoising strength in [0, 1].
    pub strength: f32,
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
}

impl Default for Img2ImgSettings {
    fn default() -> Self {
        Self {
            strength: 0.75,
            resize_mode: ResizeMode::JustResize,
            mask_blur: 4,
            masked_content: MaskedContent::Original,
            inpaint_area: InpaintArea::WholePicture,
            padding: 32,
            invert_mask: false,
            mask_weight: 1.0,
        }
    }
}

impl Img2ImgSettings {
    /// Checks values a user can type.
    ///
    /// # Errors
    /// A strength outside [0, 1], a non-finite mask weight, or an absurd blur.
    pub fn validate(&self) -> Result<(), DiffusionError> {
        let bad = |m: String| Err(DiffusionError::Input(m));
        if !(0.0..=1.0).contains(&self.strength) {
            return bad(format!(
                "denoising strength {} must be between 0 and 1",
                self.strength
            ));
        }
        if !(0.0..=1.0).contains(&self.mask_weight) {
            return bad(format!(
                "conditional mask weight {} must be between 0 and 1",
                self.mask_weight
            ));
        }
        if self.mask_blur > 256 {
            return bad(format!("mask blur {} is larger than 256 px", self.mask_blur));
        }
        Ok(())
    }

    /// Adds A1111's img2img/inpaint infotext keys to `extra` (replacing earlier values).
    pub fn write_infotext_keys(
        &self,
        extra: &mut Vec<(String, String)>,
        masked: bool,
        inpainting_model: bool,
    ) {
        let mut set = |k: &str, v: String| match extra.iter_mut().find(|(key, _)| key == k) {
            Some(slot) => slot.1 = v,
            None => extra.push((k.to_owned(), v)),
        };
        if masked {
            if inpainting_model {
                set(
                    "Conditional mask weight",
                    crate::params::py_number(self.mask_weight),
                );
            }
            set("Mask blur", self.mask_blur.to_string());
            if self.invert_mask {
                set("Mask mode", "Inpaint not masked".into());
            }
            set("Masked content", self.masked_content.label().into());
            if self.inpaint_area == InpaintArea::OnlyMasked {
                set("Inpaint area", self.inpaint_area.label().into());
                set("Masked area padding", self.padding.to_string());
            }
        }
    }

    /// Removes the keys [`Self::write_infotext_keys`] writes (before a txt2img job reuses the params).
    pub fn strip_infotext_keys(extra: &mut Vec<(String, String)>) {
        extra.retain(|(k, _)| !INFOTEXT_KEYS.contains(&k.as_str()));
    }

    /// Reads the keys [`Self::write_infotext_keys`] writes back from an infotext's extra keys;
    /// keys that are missing keep A1111's defaults.
    pub fn from_infotext_keys(extra: &[(String, String)], strength: Option<f32>) -> Self {
        let get = |k: &str| extra.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str());
        let mut s = Self::default();
        if let Some(v) = strength {
            s.strength = v;
        }
        if let Some(v) = get("Mask blur").and_then(|v| v.trim().parse().ok()) {
            s.mask_blur = v;
        }
        if let Some(v) = get("Masked content").and_then(MaskedContent::from_name) {
            s.masked_content = v;
        }
        if let Some(v) = get("Inpaint area").and_then(InpaintArea::from_name) {
            s.inpaint_area = v;
        }
        if let Some(v) = get("Masked area padding").and_then(|v| v.trim().parse().ok()) {
            s.padding = v;
        }
        if let Some(v) = get("Conditional mask weight").and_then(|v| v.trim().parse().ok()) {
            s.mask_weight = v;
        }
        s.invert_mask = get("Mask mode") == Some("Inpaint not masked");
        s
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

/// How the decoded image goes back over the original.
#[derive(Debug, Clone)]
pub struct Overlay {
    /// The original pixels the result is composited over (the resized init image, or the full original
    /// for "only masked").
    pub original: RgbImage,
    /// Where the generation replaces the original (A1111's `mask_for_overlay`; 0 = keep exactly).
    pub mask: GrayImage,
    /// "Only masked": the region `(x, y, w, h)` of `original` the generation is scaled into.
    pub paste_to: Option<(u32, u32, u32, u32)>,
}

impl Overlay {
    /// Composites a decoded generation over the original.
    ///
    /// # Errors
    /// Sizes that do not fit together (a bug, not user input).
    pub fn apply(&self, generated: &RgbImage) -> Result<RgbImage, DiffusionError> {
        match self.paste_to {
            None => ops::overlay_composite(generated, &self.original, &self.mask),
            Some(region) => ops::paste_back(generated, region, &self.original, &self.mask),
        }
        .map_err(ops_error)
    }
}

/// The pixel stage's output: what the VAE encodes and which latents are repainted.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// The image the VAE encodes, at the generation size (after resize, crop and masked content).
    pub encode_rgb: RgbImage,
    /// The blurred mask at the generation size (inpainting models round it for their conditioning).
    pub image_mask: Option<GrayImage>,
    /// Latent repaint mask `h × w`, 0 or 1 (A1111's `nmask`).
    pub latent_mask: Option<Vec<f32>>,
    /// The final composite, when a mask is used.
    pub overlay: Option<Overlay>,
}

/// The mask after inverting and blurring, at the init image's size.
pub fn processed_mask(mask: &GrayImage, settings: &Img2ImgSettings) -> GrayImage {
    let mut m = mask.clone();
    if settings.invert_mask {
        m = ops::invert(&m);
    }
    if settings.mask_blur > 0 {
        let sigma = f64::from(settings.mask_blur);
        m = ops::gaussian_blur_x(&m, sigma);
        m = ops::gaussian_blur_y(&m, sigma);
    }
    m
}

#[expect(clippy::needless_pass_by_value, reason = "used as map_err(ops_error)")]
fn ops_error(e: ops::OpsError) -> DiffusionError {
    DiffusionError::Input(e.to_string())
}

/// "Only masked": the region of the image the model sees, `(x1, y1, x2, y2)`, for a processed mask;
/// `None` when the mask is empty (A1111 v1.10 `get_crop_region_v2` + `expand_crop_region`).
pub fn only_masked_region(
    blurred: &GrayImage,
    padding: u32,
    width: u32,
    height: u32,
) -> Option<(u32, u32, u32, u32)> {
    let crop = ops::crop_region_v2(blurred, padding)?;
    ops::expand_crop_region(crop, width, height, blurred.width(), blurred.height())
}

/// The pixel stage of img2img/inpainting for a `width × height` generation with an `lw × lh` latent.
///
/// # Errors
/// A mask whose size differs from the image, or an empty image.
pub fn prepare(
    init: &InitImage,
    width: u32,
    height: u32,
    latent_w: u32,
    latent_h: u32,
) -> Result<Prepared, DiffusionError> {
    let s = &init.settings;
    if init.image.width() == 0 || init.image.height() == 0 {
        return Err(DiffusionError::Input("the init image is empty".into()));
    }
    if s.resize_mode == ResizeMode::CropAndResize {
        // Crop and resize first scales the whole image to cover the target: bound that intermediate.
        let (iw, ih) = (u64::from(init.image.width()), u64::from(init.image.height()));
        let cover = (u64::from(width) * ih).max(u64::from(height) * iw);
        let pixels = cover * cover / (iw * ih).max(1);
        if pixels > 64 << 20 {
            return Err(DiffusionError::Input(format!(
                "a {}x{} image cannot be cropped to {width}x{height}: the aspect ratios are too far apart; \
                 use Just resize or Resize and fill",
                init.image.width(),
                init.image.height()
            )));
        }
    }
    let Some(mask) = &init.mask else {
        return Ok(Prepared {
            encode_rgb: ops::resize_image(s.resize_mode.ops(), &init.image, width, height),
            image_mask: None,
            latent_mask: None,
            overlay: None,
        });
    };
    if mask.dimensions() != init.image.dimensions() {
        return Err(DiffusionError::Input(format!(
            "the mask is {}x{} but the image is {}x{}; they must be the same size",
            mask.width(),
            mask.height(),
            init.image.width(),
            init.image.height()
        )));
    }
    let blurred = processed_mask(mask, s);
    let (mut image, image_mask, overlay) = match s.inpaint_area {
        InpaintArea::WholePicture => {
            let image_mask = ops::resize_image_gray(s.resize_mode.ops(), &blurred, width, height);
            let image = ops::resize_image(s.resize_mode.ops(), &init.image, width, height);
            let overlay = Overlay {
                original: image.clone(),
                mask: ops::overlay_mask_whole(&image_mask),
                paste_to: None,
            };
            (image, image_mask, overlay)
        }
        InpaintArea::OnlyMasked => {
            let Some((x1, y1, x2, y2)) = only_masked_region(&blurred, s.padding, width, height)
                .filter(|(x1, y1, x2, y2)| x2 > x1 && y2 > y1)
            else {
                return Err(DiffusionError::Input(
                    "the mask is empty: paint the area to repaint, or use Whole picture".into(),
                ));
            };
            let crop_mask = image::imageops::crop_imm(&blurred, x1, y1, x2 - x1, y2 - y1).to_image();
            let crop_image = image::imageops::crop_imm(&init.image, x1, y1, x2 - x1, y2 - y1).to_image();
            let image_mask = ops::resize_image_gray(OpsResize::ResizeAndFill, &crop_mask, width, height);
            let image = ops::resize_image(OpsResize::ResizeAndFill, &crop_image, width, height);
            let overlay = Overlay {
                original: init.image.clone(),
                mask: blurred,
                paste_to: Some((x1, y1, x2 - x1, y2 - y1)),
            };
            (image, image_mask, overlay)
        }
    };
    if s.masked_content != MaskedContent::Original {
        image = ops::masking_fill(&image, &image_mask).map_err(ops_error)?;
    }
    let small = ops::resize_bicubic_gray(&image_mask, latent_w, latent_h);
    let latent_mask = small
        .pixels()
        .map(|p| (f32::from(p.0[0]) / 255.0).round_ties_even())
        .collect();
    Ok(Prepared {
        encode_rgb: image,
        image_mask: Some(image_mask),
        latent_mask: Some(latent_mask),
        overlay: Some(overlay),
    })
}

/// RGB8 → `[1, 3, H, W]` in [-1, 1], A1111's `x/255·2 − 1`.
pub fn rgb_to_tensor(rgb: &RgbImage, device: &Device) -> Result<Tensor, DiffusionError> {
    let (w, h) = rgb.dimensions();
    let data: Vec<f32> = rgb
        .as_raw()
        .iter()
        .map(|v| f32::from(*v) / 255.0 * 2.0 - 1.0)
        .collect();
    let t = Tensor::from_vec(data, (h as usize, w as usize, 3), &Device::Cpu)?
        .permute((2, 0, 1))?
        .unsqueeze(0)?
        .to_device(device)?;
    Ok(t)
}

/// The VAE's latents for images in [-1, 1]: scale factor × posterior mean, f32.
pub fn encode_latent(model: &SdModel, pixels: &Tensor) -> Result<Tensor, DiffusionError> {
    let post = model.vae.encode(&pixels.to_dtype(model.dtype)?)?;
    let scale = model.geometry().schedule.scale_factor;
    Ok((post.mean.to_dtype(DType::F32)? * scale)?)
}

/// Nearest-neighbour downscale of a `[1, 1, H, W]` mask to `h × w` (torch `interpolate` default).
fn nearest(mask: &[f32], (mh, mw): (usize, usize), (h, w): (usize, usize)) -> Vec<f32> {
    let (sy, sx) = (mh as f32 / h as f32, mw as f32 / w as f32);
    let mut out = Vec::with_capacity(h * w);
    for y in 0..h {
        let iy = ((y as f32 * sy) as usize).min(mh - 1);
        for x in 0..w {
            let ix = ((x as f32 * sx) as usize).min(mw - 1);
            out.push(mask[iy * mw + ix]);
        }
    }
    out
}

/// Inpainting-model conditioning `[1, 5, h, w]`: the rounded mask, then the latents of
/// `lerp(image, image·(1 − mask), weight)` (A1111's `inpainting_image_conditioning`). Without a mask
/// (txt2img, plain img2img) the mask is all ones.
pub fn inpainting_conditioning(
    model: &SdModel,
    pixels: &Tensor,
    image_mask: Option<&GrayImage>,
    weight: f32,
) -> Result<Tensor, DiffusionError> {
    let (_, _, ph, pw) = pixels.dims4()?;
    let mask: Vec<f32> = match image_mask {
        Some(m) => m
            .pixels()
            .map(|p| (f32::from(p.0[0]) / 255.0).round_ties_even())
            .collect(),
        None => vec![1.0; ph * pw],
    };
    let device = &model.device;
    let m = Tensor::from_vec(mask.clone(), (1, 1, ph, pw), device)?;
    let masked = pixels.broadcast_mul(&(1.0 - &m)?)?;
    // torch.lerp(a, b, w) = a + w·(b − a)
    let image = (pixels + ((masked - pixels)? * f64::from(weight))?)?;
    let latent = encode_latent(model, &image)?;
    let (_, _, h, w) = latent.dims4()?;
    let small = Tensor::from_vec(nearest(&mask, (ph, pw), (h, w)), (1, 1, h, w), device)?;
    Ok(Tensor::cat(&[&small, &latent], 1)?)
}

/// A1111's txt2img conditioning for inpainting models: a mid-grey image (zeros in [-1, 1]) and a mask of ones.
pub fn txt2img_inpainting_conditioning(
    model: &SdModel,
    width: u32,
    height: u32,
) -> Result<Tensor, DiffusionError> {
    let grey = Tensor::zeros((1, 3, height as usize, width as usize), DType::F32, &model.device)?;
    let latent = encode_latent(model, &grey)?;
    let (_, _, h, w) = latent.dims4()?;
    let ones = Tensor::ones((1, 1, h, w), DType::F32, &model.device)?;
    Ok(Tensor::cat(&[&ones, &latent], 1)?)
}

/// The latent stage: encodes the prepared image and builds the sampler's [`Start`]. `first_noise` is
/// draw 0 of the first batch iteration's RNG `[1, C, h, w]`, which A1111 uses for "latent noise" in
/// every iteration.
///
/// # Errors
/// Tensor failures.
pub fn latent_start(
    model: &SdModel,
    prepared: &Prepared,
    settings: &Img2ImgSettings,
    first_noise: &Tensor,
) -> Result<Start, DiffusionError> {
    let pixels = rgb_to_tensor(&prepared.encode_rgb, &model.device)?;
    let mut latent = encode_latent(model, &pixels)?;
    let (_, _, h, w) = latent.dims4()?;
    let repaint = prepared
        .latent_mask
        .as_ref()
        .map(|m| Tensor::from_vec(m.clone(), (1, 1, h, w), &model.device))
        .transpose()?;
    if let Some(nmask) = &repaint {
        let keep = (1.0 - nmask)?;
        latent = match settings.masked_content {
            MaskedContent::LatentNoise => {
                (latent.broadcast_mul(&keep)? + first_noise.to_dtype(DType::F32)?.broadcast_mul(nmask)?)?
            }
            MaskedContent::LatentNothing => latent.broadcast_mul(&keep)?,
            MaskedContent::Original | MaskedContent::Fill => latent,
        };
    }
    let inpainting_model = model.geometry().unet.in_channels == 9;
    let image_cond = if inpainting_model {
        Some(inpainting_conditioning(
            model,
            &pixels,
            prepared.image_mask.as_ref(),
            settings.mask_weight,
        )?)
    } else {
        None
    };
    Ok(Start {
        image: Some((latent, settings.strength)),
        // An inpainting model repaints through its conditioning; A1111 still blends with the latent mask.
        repaint,
        image_cond,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn infotext_keys_round_trip() {
        let s = Img2ImgSettings {
            strength: 0.4,
            mask_blur: 8,
            masked_content: MaskedContent::LatentNoise,
            inpaint_area: InpaintArea::OnlyMasked,
            padding: 24,
            invert_mask: true,
            mask_weight: 0.5,
            ..Img2ImgSettings::default()
        };
        let mut extra = Vec::new();
        s.write_infotext_keys(&mut extra, true, true);
        let back = Img2ImgSettings::from_infotext_keys(&extra, Some(0.4));
        assert_eq!(back, s);
        let mut plain = Vec::new();
        s.write_infotext_keys(&mut plain, false, false);
        assert!(plain.is_empty());
    }

    #[test]
    fn t_enc_matches_a1111() {
        assert_eq!(super::super::pipeline::img2img_t_enc(0.75, 20), 15);
        assert_eq!(super::super::pipeline::img2img_t_enc(1.0, 10), 9);
        assert_eq!(super::super::pipeline::img2img_t_enc(0.0, 10), 0);
        assert_eq!(super::super::pipeline::img2img_t_enc(0.6, 10), 6);
    }

    #[test]
    fn nearest_downscale_picks_top_left() {
        let m: Vec<f32> = (0..16).map(|v| v as f32).collect();
        assert_eq!(nearest(&m, (4, 4), (2, 2)), vec![0.0, 2.0, 8.0, 10.0]);
    }
}
