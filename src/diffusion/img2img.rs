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

use super::DiffusionError;
use super::model::SdModel;
use crate::imaging::ops;
use crate::imaging::{only_masked_region, processed_mask};
use crate::request::{Img2ImgSettings, InitImage, InpaintArea, MaskedContent, ResizeMode, SoftInpainting};

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

#[expect(clippy::needless_pass_by_value, reason = "used as map_err(ops_error)")]
fn ops_error(e: ops::OpsError) -> DiffusionError {
    DiffusionError::Input(e.to_string())
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
            encode_rgb: ops::resize_image(s.resize_mode, &init.image, width, height),
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
    let blurred = processed_mask(mask, s.invert_mask, s.mask_blur);
    let (mut image, image_mask, overlay) = match s.inpaint_area {
        InpaintArea::WholePicture => {
            let image_mask = ops::resize_image_gray(s.resize_mode, &blurred, width, height);
            let image = ops::resize_image(s.resize_mode, &init.image, width, height);
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
            let image_mask = ops::resize_image_gray(ResizeMode::ResizeAndFill, &crop_mask, width, height);
            let image = ops::resize_image(ResizeMode::ResizeAndFill, &crop_image, width, height);
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
    // Soft inpainting turns off A1111's `mask_round`.
    let latent_mask = ops::latent_mask(&image_mask, latent_w, latent_h, s.soft.is_none());
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
    strength: f32,
    first_noise: &Tensor,
) -> Result<Start, DiffusionError> {
    let pixels = rgb_to_tensor(&prepared.encode_rgb, &model.device)?;
    // A1111 encodes only the init image with TAESD when asked (`images_tensor_to_samples`); the
    // inpainting model's conditioning keeps the full VAE.
    let mut latent = match &model.tiny_encoder {
        Some(tiny) => tiny.encode(&pixels)?,
        None => encode_latent(model, &pixels)?,
    };
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
        image: Some((latent, strength)),
        // An inpainting model repaints through its conditioning; A1111 still blends with the latent mask.
        repaint: repaint.clone(),
        image_cond,
        soft: if repaint.is_some() { settings.soft } else { None },
        controls: Vec::new(),
    })
}

/// Where sampling starts: pure noise (txt2img) or noised image latents (img2img, inpainting).
#[derive(Clone, Default)]
pub struct Start {
    /// img2img: the image latents `[1, C, h, w]` (0.18215 × posterior mean, after masked-content changes)
    /// and the denoising strength.
    pub image: Option<(Tensor, f32)>,
    /// Inpainting on a normal model: the latent repaint mask `[1, 1, h, w]` (1 = repaint).
    pub repaint: Option<Tensor>,
    /// Inpainting models: mask + masked-image latents `[1, 5, h, w]`.
    pub image_cond: Option<Tensor>,
    /// Soft inpainting (with `repaint`, which is then unrounded).
    pub soft: Option<SoftInpainting>,
    /// ControlNet units, each with its hint.
    pub controls: Vec<super::controlnet::ActiveControl>,
}

/// img2img step selection (A1111 `setup_img2img_steps` without "fix steps"): how many steps of the
/// full schedule are skipped and run.
pub fn img2img_t_enc(strength: f32, steps: usize) -> usize {
    // Through the shortest decimal form, so 0.7 is Python's 0.7 (0.7·10 = 7.000000000000001 → 7),
    // not 0.699999988 (→ 6).
    let strength: f64 = strength.min(0.999).to_string().parse().unwrap_or(0.0);
    (strength * steps as f64) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn t_enc_matches_a1111() {
        assert_eq!(img2img_t_enc(0.75, 20), 15);
        assert_eq!(img2img_t_enc(1.0, 10), 9);
        assert_eq!(img2img_t_enc(0.0, 10), 0);
        assert_eq!(img2img_t_enc(0.6, 10), 6);
    }

    #[test]
    fn nearest_downscale_picks_top_left() {
        let m: Vec<f32> = (0..16).map(|v| v as f32).collect();
        assert_eq!(nearest(&m, (4, 4), (2, 2)), vec![0.0, 2.0, 8.0, 10.0]);
    }
}
