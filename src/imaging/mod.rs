//! Image files and pixels: PNG with A1111 text chunks (written atomically), loading images and masks,
//! and the PIL/OpenCV-compatible pixel operations of img2img and inpainting.

pub mod ops;

use std::path::Path;

use image::{DynamicImage, GrayImage, RgbImage};

/// Why an image could not be read.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file could not be opened or read.
    #[error("could not read {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The bytes are not an image Easel can decode.
    #[error("{path} is not a PNG, JPEG or WebP image Easel can read: {reason}")]
    Decode {
        /// The file.
        path: String,
        /// The decoder's message.
        reason: String,
    },
    /// Zero-sized or absurdly large.
    #[error("{path} is {width}x{height}; images must be between 1x1 and 16384x16384")]
    Size {
        /// The file.
        path: String,
        /// Width.
        width: u32,
        /// Height.
        height: u32,
    },
}

/// Largest side Easel accepts for an input image.
pub const MAX_SIDE: u32 = 16384;

/// Decodes PNG, JPEG or WebP bytes. `name` is used in messages.
///
/// # Errors
/// Undecodable bytes or an out-of-range size.
pub fn decode(bytes: &[u8], name: &str) -> Result<DynamicImage, LoadError> {
    let reader = image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| LoadError::Decode {
            path: name.to_owned(),
            reason: e.to_string(),
        })?;
    let mut reader = reader;
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    reader.limits(limits);
    let img = reader.decode().map_err(|e| LoadError::Decode {
        path: name.to_owned(),
        reason: e.to_string(),
    })?;
    if img.width() == 0 || img.height() == 0 {
        return Err(LoadError::Size {
            path: name.to_owned(),
            width: img.width(),
            height: img.height(),
        });
    }
    Ok(img)
}

/// The bytes of an image file; only regular files are read (a pipe named `x.png` would block).
///
/// # Errors
/// Missing or unreadable files, or a path that is not a regular file.
pub fn read_file(path: &Path) -> Result<Vec<u8>, LoadError> {
    crate::system::read_regular(path).map_err(|source| LoadError::Io {
        path: path.display().to_string(),
        source,
    })
}

fn read(path: &Path) -> Result<DynamicImage, LoadError> {
    decode(&read_file(path)?, &path.display().to_string())
}

/// A1111's `images.flatten(img, "#ffffff")`: transparency composited over white, as RGB8.
pub fn flatten_on_white(img: &DynamicImage) -> RgbImage {
    if !img.color().has_alpha() {
        return img.to_rgb8();
    }
    let rgba = img.to_rgba8();
    let (w, h) = rgba.dimensions();
    let mut out = RgbImage::new(w, h);
    for (o, p) in out.pixels_mut().zip(rgba.pixels()) {
        let a = u32::from(p.0[3]);
        for c in 0..3 {
            // Over an opaque white base: (src·a + 255·(255 − a)) / 255, rounded.
            let v = u32::from(p.0[c]) * a + 255 * (255 - a);
            o.0[c] = ((v + 127) / 255) as u8;
        }
    }
    out
}

/// A1111's mask reading (`create_binary_mask(image, round=True)`): a mask with transparency uses its
/// alpha channel, thresholded (`> 128`); an opaque one is its luma (PIL `convert('L')`), grey levels kept.
pub fn mask_from_image(img: &DynamicImage) -> GrayImage {
    ops::binary_mask(&img.to_rgba8(), true)
}

/// Loads an init image as RGB8 (transparency flattened on white).
///
/// # Errors
/// Missing, unreadable or undecodable files.
pub fn load_rgb(path: &Path) -> Result<RgbImage, LoadError> {
    Ok(flatten_on_white(&read(path)?))
}

/// Loads a mask (white, or opaque where the image has transparency, = repaint).
///
/// # Errors
/// Missing, unreadable or undecodable files.
pub fn load_mask(path: &Path) -> Result<GrayImage, LoadError> {
    Ok(mask_from_image(&read(path)?))
}

/// An inpainting mask after A1111's invert and Gaussian feather (`blur_px` = σ), at its own size.
pub fn processed_mask(mask: &GrayImage, invert: bool, blur_px: u32) -> GrayImage {
    let mut m = mask.clone();
    if invert {
        m = ops::invert(&m);
    }
    if blur_px > 0 {
        let sigma = f64::from(blur_px);
        m = ops::gaussian_blur_x(&m, sigma);
        m = ops::gaussian_blur_y(&m, sigma);
    }
    m
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alpha_masks_use_alpha_and_opaque_ones_use_luma() {
        let mut rgba = image::RgbaImage::new(2, 1);
        rgba.put_pixel(0, 0, image::Rgba([0, 0, 0, 200]));
        rgba.put_pixel(1, 0, image::Rgba([255, 255, 255, 255]));
        let m = mask_from_image(&DynamicImage::ImageRgba8(rgba));
        assert_eq!(m.into_raw(), vec![255, 255]);
        let rgb = RgbImage::from_raw(2, 1, vec![255, 255, 255, 10, 20, 30]).unwrap();
        let m = mask_from_image(&DynamicImage::ImageRgb8(rgb));
        // PIL: L = R·299/1000 + G·587/1000 + B·114/1000 in 16-bit fixed point; no threshold.
        assert_eq!(m.into_raw(), vec![255, 18]);
    }

    #[test]
    fn flatten_composites_on_white() {
        let mut rgba = image::RgbaImage::new(3, 1);
        rgba.put_pixel(0, 0, image::Rgba([0, 0, 0, 0]));
        rgba.put_pixel(1, 0, image::Rgba([0, 0, 0, 255]));
        rgba.put_pixel(2, 0, image::Rgba([100, 0, 200, 128]));
        let out = flatten_on_white(&DynamicImage::ImageRgba8(rgba));
        assert_eq!(out.into_raw(), vec![255, 255, 255, 0, 0, 0, 177, 127, 227]);
    }

    #[test]
    fn garbage_is_a_decode_error_not_a_panic() {
        let err = decode(b"not an image at all", "x.png").unwrap_err();
        assert!(err.to_string().contains("x.png"), "{err}");
        let err = decode(&[0x89, b'P', b'N', b'G', 13, 10, 26, 10, 0, 0], "t.png").unwrap_err();
        assert!(matches!(err, LoadError::Decode { .. }), "{err}");
    }
}
