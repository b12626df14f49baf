//! Composites: A1111's masked-content fill, the overlay image, alpha-compositing the result over the
//! original and pasting an "only masked" crop back (Pillow `Paste.c`, `AlphaComposite.c`).

use image::{GrayImage, RgbImage, RgbaImage};

use super::blur::pil_gaussian_blur;
use super::resample::{ResizeMode, resize_image};
use super::{OpsError, Raw, alpha_composite_px, blend, muldiv255, unpremultiply};

// ------------------------------------------------------------------------------------------------
// 7. masking.fill (Pillow GaussianBlur = extended box blur)
// ------------------------------------------------------------------------------------------------

fn check_same_size(what: &'static str, expected: (u32, u32), actual: (u32, u32)) -> Result<(), OpsError> {
    if expected == actual {
        Ok(())
    } else {
        Err(OpsError::SizeMismatch {
            what,
            expected,
            actual,
        })
    }
}

/// `Image.new('RGBa'); paste(image.convert('RGBA').convert('RGBa'), mask=ImageOps.invert(mask))`:
/// the image premultiplied by the inverted mask, as "RGBa" (premultiplied) pixels.
fn premultiplied_by_inverted_mask(image: &RgbImage, mask: &GrayImage) -> Raw {
    let mut out = Raw::zeros(image.width() as usize, image.height() as usize, 4);
    for ((o, p), m) in out.data.chunks_exact_mut(4).zip(image.pixels()).zip(mask.iter()) {
        let inv = 255 - m;
        // RGB → RGBA (alpha 255) → RGBa (MULDIV255 by 255, the identity), then the L-mask paste
        // onto zeros: BLEND(inv, 0, v).
        o[0] = blend(inv, 0, muldiv255(p[0], 255));
        o[1] = blend(inv, 0, muldiv255(p[1], 255));
        o[2] = blend(inv, 0, muldiv255(p[2], 255));
        o[3] = blend(inv, 0, 255);
    }
    out
}

/// A1111 `masking.fill(image, mask)` ("Masked content: fill"): the masked area is filled with
/// colours blurred in from its surroundings.
///
/// The image is premultiplied by the inverted mask (Pillow "RGBa"), blurred with Pillow
/// `GaussianBlur` radii 256, 64, 16, 4, 2, 0 (Pillow's 3-pass extended box blur, `BoxBlur.c`),
/// each result un-premultiplied and alpha-composited onto a transparent canvas 1, 1, 2, 4, 2, 1
/// times, then the alpha is dropped. Bit-exact (verified against A1111's function on Pillow 13,
/// random/blob/empty/full masks, sizes 1x1..257x193). `mask` must have the image's size.
pub fn masking_fill(image: &RgbImage, mask: &GrayImage) -> Result<RgbImage, OpsError> {
    check_same_size("fill mask", image.dimensions(), mask.dimensions())?;
    let masked = premultiplied_by_inverted_mask(image, mask);
    let mut image_mod = vec![[0u8; 4]; masked.w * masked.h];
    for (radius, repeats) in [(256.0f32, 1), (64.0, 1), (16.0, 2), (4.0, 4), (2.0, 2), (0.0, 1)] {
        let mut blurred = masked.clone();
        pil_gaussian_blur(&mut blurred, radius);
        let blurred: Vec<[u8; 4]> = blurred
            .data
            .chunks_exact(4)
            .map(|c| unpremultiply([c[0], c[1], c[2], c[3]]))
            .collect();
        for _ in 0..repeats {
            for (d, s) in image_mod.iter_mut().zip(&blurred) {
                *d = alpha_composite_px(*d, *s);
            }
        }
    }
    let mut out = RgbImage::new(image.width(), image.height());
    for (o, p) in out.pixels_mut().zip(&image_mod) {
        o.0 = [p[0], p[1], p[2]];
    }
    Ok(out)
}

// ------------------------------------------------------------------------------------------------
// 8./9./10. Final composite (processing.apply_overlay)
// ------------------------------------------------------------------------------------------------

/// A1111's overlay image (`StableDiffusionProcessingImg2Img.init`): `image_masked = Image.new('RGBa')`,
/// `paste(original.convert('RGBA').convert('RGBa'), mask=ImageOps.invert(mask_for_overlay))`,
/// `.convert('RGBA')` — the original where the mask is 0, transparent where it is 255, partly
/// transparent (and un-premultiplied with Pillow's truncating division) in between.
/// Bit-exact (verified against Pillow 13). `mask_for_overlay` must have the original's size.
pub fn overlay_image(original: &RgbImage, mask_for_overlay: &GrayImage) -> Result<RgbaImage, OpsError> {
    check_same_size(
        "overlay mask",
        original.dimensions(),
        mask_for_overlay.dimensions(),
    )?;
    let masked = premultiplied_by_inverted_mask(original, mask_for_overlay);
    let mut out = RgbaImage::new(original.width(), original.height());
    for (o, c) in out.pixels_mut().zip(masked.data.chunks_exact(4)) {
        o.0 = unpremultiply([c[0], c[1], c[2], c[3]]);
    }
    Ok(out)
}

/// A1111 `processing.apply_overlay`'s last step: `base.alpha_composite(overlay).convert('RGB')`
/// with Pillow's integer `ImagingAlphaComposite`. Bit-exact (verified). Sizes must match.
pub fn apply_overlay(base: &RgbaImage, overlay: &RgbaImage) -> Result<RgbImage, OpsError> {
    check_same_size("overlay", base.dimensions(), overlay.dimensions())?;
    let mut out = RgbImage::new(base.width(), base.height());
    for ((o, b), s) in out.pixels_mut().zip(base.pixels()).zip(overlay.pixels()) {
        let p = alpha_composite_px(b.0, s.0);
        o.0 = [p[0], p[1], p[2]];
    }
    Ok(out)
}

/// A1111's final whole-picture composite: `generated.convert('RGBA').alpha_composite(overlay)
/// .convert('RGB')` with the overlay of [`overlay_image`].
///
/// Wherever `mask_for_overlay` is 0 the result is exactly the original pixel; where it is 255,
/// exactly the generated one. Bit-exact with Pillow's integer paste, un-premultiply and
/// alpha-composite (verified against Pillow 13). All three images must have the same size.
pub fn overlay_composite(
    generated: &RgbImage,
    original: &RgbImage,
    mask_for_overlay: &GrayImage,
) -> Result<RgbImage, OpsError> {
    check_same_size("generated image", original.dimensions(), generated.dimensions())?;
    let overlay = overlay_image(original, mask_for_overlay)?;
    let mut base = RgbaImage::new(generated.width(), generated.height());
    for (b, g) in base.pixels_mut().zip(generated.pixels()) {
        b.0 = [g[0], g[1], g[2], 255];
    }
    apply_overlay(&base, &overlay)
}

/// A1111 `processing.apply_overlay` for "Inpaint area: Only masked" (`uncrop` then composite):
/// the generated crop is fitted to `paste_to = (x, y, w, h)` with `resize_image(1, ...)`
/// ([`ResizeMode::CropAndResize`]), pasted opaque onto a transparent canvas of the original's size
/// at `(x, y)`, and the overlay of `original`/`mask_for_overlay` is alpha-composited on top.
///
/// Outside the pasted box the canvas is transparent, so the result there is the overlay's colour
/// (the original, where the mask is 0) or black where the overlay is transparent too.
/// Bit-exact (verified against A1111's code on Pillow 13). `mask_for_overlay` must have the
/// original's size and `w`, `h` must be non-zero.
pub fn paste_back(
    generated_crop: &RgbImage,
    paste_to: (u32, u32, u32, u32),
    original: &RgbImage,
    mask_for_overlay: &GrayImage,
) -> Result<RgbImage, OpsError> {
    let (x, y, w, h) = paste_to;
    if w == 0 || h == 0 {
        return Err(OpsError::EmptySize {
            what: "paste box",
            width: w,
            height: h,
        });
    }
    let overlay = overlay_image(original, mask_for_overlay)?;
    let fitted = resize_image(ResizeMode::CropAndResize, generated_crop, w, h);
    let mut canvas = Raw::zeros(original.width() as usize, original.height() as usize, 4);
    let mut fitted_rgba = Raw::zeros(w as usize, h as usize, 4);
    for (o, p) in fitted_rgba.data.chunks_exact_mut(4).zip(fitted.pixels()) {
        o.copy_from_slice(&[p[0], p[1], p[2], 255]);
    }
    canvas.paste(&fitted_rgba, i64::from(x), i64::from(y));
    let mut base = RgbaImage::new(original.width(), original.height());
    base.copy_from_slice(&canvas.data);
    apply_overlay(&base, &overlay)
}

/// A1111's whole-picture `mask_for_overlay`: `np.clip(mask.astype(np.float32) * 2, 0, 255)
/// .astype(np.uint8)`, i.e. `min(2 v, 255)`. Bit-exact (trivially).
pub fn overlay_mask_whole(blurred: &GrayImage) -> GrayImage {
    let mut out = blurred.clone();
    for v in out.iter_mut() {
        *v = v.saturating_mul(2);
    }
    out
}

#[cfg(test)]
mod tests {
    //! Expected arrays were produced with Pillow 13 / OpenCV 5 as described in `ops::tests`.

    use image::{Luma, Rgb};

    use super::super::tests::{gray_from, rgb};
    use super::*;

    #[test]
    fn masking_fill_matches_a1111() {
        let img = rgb(4, 3, 5);
        let mask = gray_from(4, 3, &[0, 0, 255, 255, 0, 128, 255, 255, 0, 0, 0, 40]);
        // masking.fill(Image.fromarray(img), Image.fromarray(mask)) (A1111 v1.10, Pillow 13).
        let want = [
            199, 34, 125, 202, 37, 128, 188, 59, 139, 194, 58, 140, 68, 159, 250, 130, 113, 72, 190, 58, 140,
            196, 58, 140, 193, 28, 119, 206, 41, 132, 219, 54, 145, 227, 65, 154,
        ];
        assert_eq!(masking_fill(&img, &mask).expect("same size").as_raw(), &want);
    }

    #[test]
    fn masking_fill_properties() {
        let img = rgb(13, 9, 2);
        assert_eq!(
            masking_fill(&img, &GrayImage::new(13, 9)).expect("same size"),
            img,
            "empty mask"
        );
        let full = masking_fill(&img, &GrayImage::from_pixel(13, 9, Luma([255]))).expect("same size");
        assert_eq!(full, RgbImage::new(13, 9), "nothing to fill from");
        let one = rgb(1, 1, 3);
        assert_eq!(masking_fill(&one, &GrayImage::new(1, 1)).expect("same size"), one);
        assert!(matches!(
            masking_fill(&img, &GrayImage::new(3, 3)),
            Err(OpsError::SizeMismatch { .. })
        ));
    }

    #[test]
    fn overlay_matches_pillow() {
        let orig = rgb(4, 2, 6);
        let generated = rgb(4, 2, 9);
        let mask = gray_from(4, 2, &[0, 1, 100, 254, 255, 128, 3, 77]);
        // make_overlay / apply_overlay as in A1111 v1.10 (Pillow 13).
        let ov = [
            34, 125, 216, 255, 37, 127, 218, 254, 39, 131, 222, 155, 0, 255, 255, 1, 0, 0, 0, 0, 166, 2, 92,
            127, 175, 10, 101, 252, 183, 18, 108, 178,
        ];
        assert_eq!(overlay_image(&orig, &mask).expect("same size").as_raw(), &ov);
        let out = [
            34, 125, 216, 37, 127, 218, 46, 138, 229, 60, 151, 242, 176, 11, 102, 175, 11, 101, 175, 10, 101,
            188, 23, 113,
        ];
        assert_eq!(
            overlay_composite(&generated, &orig, &mask)
                .expect("same size")
                .as_raw(),
            &out
        );
    }

    #[test]
    fn overlay_keeps_original_where_mask_is_zero_and_generated_where_255() {
        // Every channel value, against every other value.
        let orig = RgbImage::from_fn(256, 3, |x, y| Rgb([x as u8, (255 - x) as u8, (x * 7 + y) as u8]));
        let generated = RgbImage::from_fn(256, 3, |x, y| Rgb([(x * 3 + y) as u8, x as u8, 255 - x as u8]));
        let mask = GrayImage::from_fn(256, 3, |x, y| Luma([if (x + y) % 3 == 0 { 0 } else { 255 }]));
        let out = overlay_composite(&generated, &orig, &mask).expect("same size");
        for (x, y, p) in out.enumerate_pixels() {
            if mask.get_pixel(x, y)[0] == 0 {
                assert_eq!(p, orig.get_pixel(x, y), "mask 0 at {x},{y}");
            } else {
                assert_eq!(p, generated.get_pixel(x, y), "mask 255 at {x},{y}");
            }
        }
        assert!(matches!(
            overlay_composite(&generated, &orig, &GrayImage::new(2, 2)),
            Err(OpsError::SizeMismatch { .. })
        ));
    }

    #[test]
    fn paste_back_matches_a1111_uncrop_and_composite() {
        let orig = rgb(6, 5, 7);
        let mut mask = GrayImage::new(6, 5);
        for (i, v) in [40, 200, 255, 90, 255, 255, 0, 130, 60].into_iter().enumerate() {
            mask.put_pixel(2 + (i % 3) as u32, 1 + (i / 3) as u32, Luma([v]));
        }
        let crop = rgb(4, 4, 8);
        // apply_overlay(gen, (2, 1, 3, 3), make_overlay(orig, mask)) (A1111 v1.10, Pillow 13).
        let want = [
            125, 216, 51, 128, 219, 54, 131, 222, 57, 134, 225, 60, 137, 228, 63, 140, 231, 66, 250, 85, 176,
            2, 93, 184, 34, 99, 177, 142, 104, 123, 181, 107, 107, 34, 125, 216, 119, 210, 45, 132, 223, 58,
            146, 192, 72, 164, 127, 90, 178, 141, 104, 184, 19, 110, 244, 79, 170, 6, 97, 188, 24, 115, 206,
            98, 142, 149, 87, 156, 208, 78, 169, 4, 113, 204, 39, 136, 227, 62, 159, 250, 85, 182, 17, 108,
            205, 40, 131, 228, 63, 154,
        ];
        let out = paste_back(&crop, (2, 1, 3, 3), &orig, &mask).expect("sizes fit");
        assert_eq!(out.as_raw(), &want);
        // Outside the box the mask is 0, so the original shows through unchanged.
        assert_eq!(out.get_pixel(0, 0), orig.get_pixel(0, 0));
        assert_eq!(out.get_pixel(5, 4), orig.get_pixel(5, 4));
        // A box hanging off the canvas is clipped, not an error.
        assert!(paste_back(&crop, (4, 3, 6, 5), &orig, &mask).is_ok());
        assert!(matches!(
            paste_back(&crop, (0, 0, 0, 3), &orig, &mask),
            Err(OpsError::EmptySize { .. })
        ));
    }

    #[test]
    fn overlay_mask_whole_doubles_and_clips() {
        let m = gray_from(5, 1, &[0, 1, 127, 128, 255]);
        assert_eq!(overlay_mask_whole(&m).as_raw(), &[0, 2, 254, 255, 255]);
    }
}
