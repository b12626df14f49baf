//! Soft inpainting with the semantics of A1111 1.8+'s built-in `soft-inpainting` extension
//! (`extensions-builtin/soft-inpainting/scripts/soft_inpainting.py`, checked against v1.10):
//!
//! - every denoising step blends the original and the denoised latents by a per-step power of the
//!   unrounded latent mask, interpolating the vectors' magnitudes separately (`get_modified_nmask`,
//!   `latent_blend`);
//! - the final latent blend is skipped;
//! - the pixel composite over the original uses a mask built from how far each latent moved away
//!   from the original (`apply_adaptive_masks`), not the blurred user mask.

use candle_core::{DType, Tensor};
use image::GrayImage;

use super::DiffusionError;
use crate::imaging::ops::{self, ResizeMode};
use crate::request::SoftInpainting;

/// `nmask^(σ^schedule_bias · preservation)`: the repaint weight of one step (A1111's
/// `get_modified_nmask`; 1 = take the denoised latent, 0 = keep the original).
pub fn step_mask(nmask: &Tensor, sigma: f32, s: &SoftInpainting) -> Result<Tensor, DiffusionError> {
    let exponent = sigma.powf(s.schedule_bias) * s.preservation;
    Ok(nmask.powf(f64::from(exponent))?)
}

/// The channel-wise L2 norm of `[B, C, h, w]`, kept as `[B, 1, h, w]`.
fn norm_keepdim(x: &Tensor) -> Result<Tensor, DiffusionError> {
    Ok(x.sqr()?.sum_keepdim(1)?.sqrt()?)
}

/// A1111's `latent_blend(a, b, t)`: the linear interpolation of `a` (original) and `b` (denoised)
/// by `t` (`[B or 1, 1, h, w]`), rescaled so that each latent vector's length is the
/// `transition_boost`-power mean of the two lengths (computed in f64 as A1111 does; f32 on Metal,
/// where A1111 falls back to f32 too).
pub fn latent_blend(
    a: &Tensor,
    b: &Tensor,
    t: &Tensor,
    s: &SoftInpainting,
) -> Result<Tensor, DiffusionError> {
    // A1111's `torch_utils.float64`: f64, except f32 on Apple's GPU, which has no f64.
    let wide = if a.device().is_metal() {
        DType::F32
    } else {
        DType::F64
    };
    let one_minus = (1.0 - t)?;
    let interp = (a.broadcast_mul(&one_minus)? + b.broadcast_mul(t)?)?;
    let current = (norm_keepdim(&interp)?.to_dtype(wide)? + 1e-5)?;
    let p = f64::from(s.transition_boost);
    let a_mag = norm_keepdim(a)?
        .to_dtype(wide)?
        .powf(p)?
        .broadcast_mul(&one_minus.to_dtype(wide)?)?;
    let b_mag = norm_keepdim(b)?
        .to_dtype(wide)?
        .powf(p)?
        .broadcast_mul(&t.to_dtype(wide)?)?;
    let desired = (a_mag + b_mag)?.powf(1.0 / p)?;
    let factor = (desired / current)?.to_dtype(interp.dtype())?;
    Ok(interp.broadcast_mul(&factor)?)
}

/// The 5×5 kernel of A1111's `get_gaussian_kernel(stddev_radius=1.5, max_radius=2)`: a Gaussian
/// lowered so that it reaches 0 one pixel beyond the radius, rescaled to 1 at the centre.
fn composite_kernel() -> [[f64; 5]; 5] {
    let sd = 1.5f64;
    let gaussian = |sq: f64| (-sq / (sd * sd)).exp();
    let zero = gaussian(3.0 * 3.0);
    let scale = 1.0 / (1.0 - zero);
    let mut k = [[0.0; 5]; 5];
    for (y, row) in k.iter_mut().enumerate() {
        for (x, v) in row.iter_mut().enumerate() {
            let (dy, dx) = (y as f64 - 2.0, x as f64 - 2.0);
            *v = ((gaussian(dy * dy + dx * dx) - zero) * scale).max(0.0);
        }
    }
    k
}

/// A1111's `weighted_histogram_filter` with the 5×5 composite kernel: for each pixel, the kernel-
/// weighted values of its (border-clipped) neighbourhood are sorted and stacked by weight, and the
/// result is the overlap-weighted mean of the values in the `[lo, hi]` fraction of the stack
/// (widened to at least `min_width` weight). `lo = 0.9, hi = 1` is a soft maximum; `0.25…0.75` a
/// soft median.
fn weighted_histogram_filter(img: &[f32], w: usize, h: usize, lo: f64, hi: f64, min_width: f64) -> Vec<f32> {
    let kernel = composite_kernel();
    let mut out = vec![0.0f32; img.len()];
    let mut values: Vec<(f32, f64)> = Vec::with_capacity(25);
    for y in 0..h {
        for x in 0..w {
            values.clear();
            for iy in y.saturating_sub(2)..(y + 3).min(h) {
                for ix in x.saturating_sub(2)..(x + 3).min(w) {
                    values.push((img[iy * w + ix], kernel[iy + 2 - y][ix + 2 - x]));
                }
            }
            values.sort_by(|a, b| a.0.total_cmp(&b.0));
            let sum: f64 = values.iter().fold(0.0, |s, v| s + v.1);
            let (mut wmin, mut wmax) = (sum * lo, sum * hi);
            if wmax - wmin < min_width {
                let centre = f64::midpoint(wmin, wmax);
                wmin = centre - min_width / 2.0;
                wmax = centre + min_width / 2.0;
                if wmax > sum {
                    wmax = sum;
                    wmin = sum - min_width;
                }
                if wmin < 0.0 {
                    wmin = 0.0;
                    wmax = min_width;
                }
            }
            let (mut value, mut weight, mut start) = (0.0f64, 0.0f64, 0.0f64);
            for &(v, k) in &values {
                let end = start + k;
                if wmin < end {
                    if wmax <= start {
                        break;
                    }
                    let overlap = wmax.min(end) - wmin.max(start);
                    value += f64::from(v) * overlap;
                    weight += overlap;
                }
                start = end;
            }
            out[y * w + x] = if weight == 0.0 {
                0.0
            } else {
                (value / weight) as f32
            };
        }
    }
    out
}

/// `x³(x(6x − 15) + 10)`.
fn smootherstep(x: f32) -> f32 {
    x * x * x * (x * (6.0 * x - 15.0) + 10.0)
}

/// Where the final composite shows the generation, for one image (A1111's `apply_adaptive_masks`):
/// 255 where the latents changed a lot relative to the difference threshold (scaled by the mask
/// where `mask_influence` > 0), 0 where they stayed close to the original.
///
/// `nmask` is the unrounded `lw × lh` latent mask; `original` and `result` are the image's `[C, h, w]`
/// latents before and after sampling. The mask comes back at `width × height`, or — for "only
/// masked" (`paste_to` = `(x, y, w, h)`) — fitted into that box of a `full` = `(W, H)` canvas of zeros.
///
/// # Errors
/// Tensor failures or a latent size that does not match the mask.
#[allow(clippy::too_many_arguments)]
pub fn composite_mask(
    s: &SoftInpainting,
    nmask: &[f32],
    original: &Tensor,
    result: &Tensor,
    (width, height): (u32, u32),
    paste_to: Option<(u32, u32, u32, u32)>,
    full: (u32, u32),
) -> Result<GrayImage, DiffusionError> {
    let (_, lh, lw) = result.dims3()?;
    if nmask.len() != lw * lh {
        return Err(DiffusionError::Input(format!(
            "soft inpainting: the latent mask has {} values for a {lw}x{lh} latent",
            nmask.len()
        )));
    }
    let diff = (result.to_dtype(DType::F32)? - original.to_dtype(DType::F32)?)?;
    let distance: Vec<f32> = diff.sqr()?.sum(0)?.sqrt()?.flatten_all()?.to_vec1()?;
    let distance = weighted_histogram_filter(&distance, lw, lh, 0.9, 1.0, 1.0);
    let distance = weighted_histogram_filter(&distance, lw, lh, 0.25, 0.75, 1.0);
    // numpy float32 throughout, Python floats folded in as A1111's expressions order them.
    let neutral = (0.5 * (1.0 - f64::from(s.mask_influence))) as f32;
    let bytes: Vec<u8> = distance
        .iter()
        .zip(nmask)
        .map(|(&d, &m)| {
            let scalar = 1.0 - m.clamp(0.0, 1.0).powf(s.preservation / 2.0);
            let scalar = neutral + scalar * s.mask_influence;
            let scalar = scalar / (1.00001 - scalar);
            let half = scalar * s.difference_threshold;
            let x = d / half;
            let x = 1.0 / (1.0 + x.powf(s.difference_contrast));
            let x = 255.0 * (1.0 - smootherstep(x));
            // numpy's astype(uint8) truncates; NaN (0/0 where nothing moved and the threshold
            // collapsed) counts as "keep the original".
            if x.is_nan() { 0 } else { x.clamp(0.0, 255.0) as u8 }
        })
        .collect();
    let small = GrayImage::from_raw(lw as u32, lh as u32, bytes)
        .ok_or_else(|| DiffusionError::Input("soft inpainting: mask size".into()))?;
    let resized = ops::resize_image_gray(ResizeMode::ResizeAndFill, &small, width, height);
    let blurred = ops::pil_gaussian_blur_gray(&resized, 4.0);
    let Some((x, y, w, h)) = paste_to else {
        return Ok(blurred);
    };
    if w == 0 || h == 0 {
        return Err(DiffusionError::Input("soft inpainting: empty paste box".into()));
    }
    let fitted = ops::resize_image_gray(ResizeMode::CropAndResize, &blurred, w, h);
    let mut canvas = GrayImage::new(full.0, full.1);
    for (fx, fy, p) in fitted.enumerate_pixels() {
        let (cx, cy) = (x + fx, y + fy);
        if cx < full.0 && cy < full.1 {
            canvas.put_pixel(cx, cy, *p);
        }
    }
    Ok(canvas)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn kernel_is_one_at_the_centre_and_zero_in_the_corners() {
        let k = composite_kernel();
        assert!((k[2][2] - 1.0).abs() < 1e-12);
        assert!(k[0][0] > 0.0 && k[0][0] < k[0][1] && k[0][1] < k[1][1]);
        assert!((k[0][2] - k[2][0]).abs() < 1e-15);
    }

    #[test]
    fn histogram_filter_max_and_median_of_a_constant_are_the_constant() {
        let img = vec![0.75f32; 36];
        for (lo, hi) in [(0.9, 1.0), (0.25, 0.75)] {
            let out = weighted_histogram_filter(&img, 6, 6, lo, hi, 1.0);
            assert!(out.iter().all(|v| (v - 0.75).abs() < 1e-6), "{out:?}");
        }
        // A single spike survives the soft maximum around it but not the median.
        let mut spike = vec![0.0f32; 49];
        spike[24] = 1.0;
        let max = weighted_histogram_filter(&spike, 7, 7, 0.9, 1.0, 1.0);
        assert!(max[24] > 0.5 && max[23] > 0.5 && max[0] == 0.0, "{max:?}");
        let med = weighted_histogram_filter(&spike, 7, 7, 0.25, 0.75, 1.0);
        assert!(med[24] == 0.0, "{med:?}");
    }

    #[test]
    fn latent_blend_ends_are_the_inputs_and_keep_the_longer_length() {
        let dev = Device::Cpu;
        let s = SoftInpainting::default();
        let a = Tensor::new(&[3.0f32, 0.0, 0.0, 0.0], &dev)
            .unwrap()
            .reshape((1, 4, 1, 1))
            .unwrap();
        let b = Tensor::new(&[0.0f32, 1.0, 0.0, 0.0], &dev)
            .unwrap()
            .reshape((1, 4, 1, 1))
            .unwrap();
        for (t, want) in [(0.0f32, [3.0f32, 0.0]), (1.0, [0.0, 1.0])] {
            let tt = Tensor::new(&[t], &dev).unwrap().reshape((1, 1, 1, 1)).unwrap();
            let v: Vec<f32> = latent_blend(&a, &b, &tt, &s)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap();
            assert!(
                (v[0] - want[0]).abs() < 1e-4 && (v[1] - want[1]).abs() < 1e-4,
                "{t}: {v:?}"
            );
        }
        // Halfway, the length is the 4-power mean of 3 and 1 (≈2.52), not the linear 1.58.
        let half = Tensor::new(&[0.5f32], &dev)
            .unwrap()
            .reshape((1, 1, 1, 1))
            .unwrap();
        let v: Vec<f32> = latent_blend(&a, &b, &half, &s)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let len = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        let want = 41.0f32.powf(0.25); // ((3⁴ + 1⁴) / 2)^(1/4)
        assert!((len - want).abs() < 1e-4, "{len} vs {want}");
    }

    #[test]
    fn step_mask_follows_sigma() {
        let dev = Device::Cpu;
        let s = SoftInpainting::default();
        let m = Tensor::new(&[0.0f32, 0.25, 1.0], &dev).unwrap();
        let v: Vec<f32> = step_mask(&m, 4.0, &s).unwrap().to_vec1().unwrap();
        // exponent = 4^1 · 0.5 = 2
        assert_eq!(v, vec![0.0, 0.0625, 1.0]);
    }

    #[test]
    fn unchanged_latents_keep_the_original_everywhere() {
        let dev = Device::Cpu;
        let s = SoftInpainting::default();
        let lat = Tensor::ones((4, 8, 8), DType::F32, &dev).unwrap();
        let mask = composite_mask(&s, &[1.0; 64], &lat, &lat, (16, 16), None, (16, 16)).unwrap();
        assert!(mask.iter().all(|&v| v == 0));
        let moved = (&lat * 3.0).unwrap();
        let mask = composite_mask(
            &s,
            &[1.0; 64],
            &lat,
            &moved,
            (16, 16),
            Some((4, 4, 8, 8)),
            (32, 32),
        )
        .unwrap();
        assert_eq!(mask.get_pixel(0, 0).0[0], 0);
        // Distance 4 against the threshold 0.5: 255·(1 − smootherstep(1/65)) = 254.99…, truncated.
        assert_eq!(mask.get_pixel(8, 8).0[0], 254);
    }
}
