//! Blurs: OpenCV's bit-exact 8-bit Gaussian (A1111's mask blur) and Pillow's extended box blur
//! (`ImageFilter.GaussianBlur`, used by masked-content fill).

use image::GrayImage;

use super::Raw;

// ------------------------------------------------------------------------------------------------
// 2. OpenCV bit-exact Gaussian blur (8-bit path)
// ------------------------------------------------------------------------------------------------

/// `2^(i/64)` as stored in OpenCV's `softfloat.cpp` `expTab` (raw IEEE-754 bits).
const CV_EXP_TAB: [u64; 64] = [
    0x3ff0_0000_0000_0000,
    0x3ff0_2c9a_3e77_8061,
    0x3ff0_59b0_d315_8574,
    0x3ff0_8745_1875_9bc8,
    0x3ff0_b558_6cf9_890f,
    0x3ff0_e3ec_32d3_d1a2,
    0x3ff1_1301_d012_5b51,
    0x3ff1_429a_aea9_2de0,
    0x3ff1_72b8_3c7d_517b,
    0x3ff1_a35b_eb6f_cb75,
    0x3ff1_d487_3168_b9aa,
    0x3ff2_063b_8862_8cd6,
    0x3ff2_387a_6e75_6238,
    0x3ff2_6b45_65e2_7cdd,
    0x3ff2_9e9d_f51f_dee1,
    0x3ff2_d285_a6e4_030b,
    0x3ff3_06fe_0a31_b715,
    0x3ff3_3c08_b264_16ff,
    0x3ff3_71a7_373a_a9cb,
    0x3ff3_a7db_34e5_9ff7,
    0x3ff3_dea6_4c12_3422,
    0x3ff4_160a_21f7_2e2a,
    0x3ff4_4e08_6061_892d,
    0x3ff4_86a2_b5c1_3cd0,
    0x3ff4_bfda_d536_2a27,
    0x3ff4_f9b2_769d_2ca7,
    0x3ff5_342b_569d_4f82,
    0x3ff5_6f47_36b5_27da,
    0x3ff5_ab07_dd48_5429,
    0x3ff5_e76f_15ad_2148,
    0x3ff6_247e_b03a_5585,
    0x3ff6_6238_8255_2225,
    0x3ff6_a09e_667f_3bcd,
    0x3ff6_dfb2_3c65_1a2f,
    0x3ff7_1f75_e8ec_5f74,
    0x3ff7_5feb_5642_67c9,
    0x3ff7_a114_73eb_0187,
    0x3ff7_e2f3_36cf_4e62,
    0x3ff8_2589_994c_ce13,
    0x3ff8_68d9_9b44_92ed,
    0x3ff8_ace5_422a_a0db,
    0x3ff8_f1ae_9915_7736,
    0x3ff9_3737_b0cd_c5e5,
    0x3ff9_7d82_9fde_4e50,
    0x3ff9_c491_82a3_f090,
    0x3ffa_0c66_7b5d_e565,
    0x3ffa_5503_b23e_255d,
    0x3ffa_9e6b_5579_fdbf,
    0x3ffa_e89f_995a_d3ad,
    0x3ffb_33a2_b84f_15fb,
    0x3ffb_7f76_f2fb_5e47,
    0x3ffb_cc1e_904b_c1d2,
    0x3ffc_199b_dd85_529c,
    0x3ffc_67f1_2e57_d14b,
    0x3ffc_b720_dcef_9069,
    0x3ffd_072d_4a07_897c,
    0x3ffd_5818_dcfb_a487,
    0x3ffd_a9e6_03db_3285,
    0x3ffd_fc97_337b_9b5f,
    0x3ffe_502e_e78b_3ff6,
    0x3ffe_a4af_a2a4_90da,
    0x3ffe_fa1b_ee61_5a27,
    0x3fff_5076_5b6e_4540,
    0x3fff_a7c1_819e_90d8,
];

/// OpenCV's `softdouble exp` (`f64_exp` in `core/src/softfloat.cpp`).
///
/// It is a table plus polynomial, less accurate than libm's `exp` (a few ulp apart), and OpenCV's
/// Gaussian kernels are built from it, so it is ported literally. IEEE `f64` `+ - * /` round the same
/// as softfloat's, so plain Rust arithmetic reproduces it bit for bit for finite inputs.
fn cv_exp(x: f64) -> f64 {
    const EXPTAB_SCALE: i32 = 6;
    let a0c = f64::from_bits(0x3f83_ce0f_3e46_f431);
    let a5 = 1.0 / a0c;
    let a4 = f64::from_bits(0x3fe6_2e42_fefa_39f1) / a0c;
    let a3 = f64::from_bits(0x3fce_bfbd_ff82_a45a) / a0c;
    let a2 = f64::from_bits(0x3fac_6b08_d81f_ec75) / a0c;
    let a1 = f64::from_bits(0x3f83_b2a7_2b4f_3cd3) / a0c;
    let a0 = f64::from_bits(0x3f55_e7aa_1566_c2a4) / a0c;
    let prescale = f64::from_bits(0x3ff7_1547_652b_82fe) * f64::from(1 << EXPTAB_SCALE);
    let postscale = 1.0 / f64::from(1 << EXPTAB_SCALE);
    let max_val = f64::from(3000 * (1 << EXPTAB_SCALE));

    if x.is_nan() {
        return f64::NAN;
    }
    if x.is_infinite() {
        return if x > 0.0 { x } else { 0.0 };
    }
    let biased_exp = (x.to_bits() >> 52) & 0x7ff;
    let mut x0 = if biased_exp > 1023 + 10 {
        if x.is_sign_negative() { -max_val } else { max_val }
    } else {
        x * prescale
    };
    // cvRound(softdouble) rounds half to even.
    let val0 = x0.round_ties_even() as i32;
    let t = ((val0 >> EXPTAB_SCALE) + 1023).clamp(0, 2047);
    let buf = f64::from_bits((t as u64) << 52);
    x0 = (x0 - x0.round_ties_even()) * postscale;
    let tab = f64::from_bits(CV_EXP_TAB[(val0 & ((1 << EXPTAB_SCALE) - 1)) as usize]);
    buf * a0c * tab * (((((a0 * x0 + a1) * x0 + a2) * x0 + a3) * x0 + a4) * x0 + a5)
}

/// OpenCV `getGaussianKernelBitExact(n, sigma)` for `sigma > 0`: the `softdouble` kernel that
/// `cv2.getGaussianKernel(n, sigma, CV_64F)` returns (verified equal for sigma 0.1..200).
pub(super) fn cv_gaussian_kernel_f64(n: usize, sigma: f64) -> Vec<f64> {
    let scale2x = -0.125 / (sigma * sigma);
    let n2 = (n - 1) / 2;
    let mut values = Vec::with_capacity(n2);
    let mut sum = 0.0;
    let mut x = 1 - n as i64;
    for _ in 0..n2 {
        let t = cv_exp((x * x) as f64 * scale2x);
        values.push(t);
        sum += t;
        x += 2;
    }
    sum *= 2.0;
    sum += 1.0;
    if n.is_multiple_of(2) {
        sum += 1.0;
    }
    let mul1 = 1.0 / sum;
    let mut result = vec![0.0; n];
    for (i, v) in values.iter().enumerate() {
        let t = v * mul1;
        result[i] = t;
        result[n - 1 - i] = t;
    }
    result[n2] = mul1;
    if n.is_multiple_of(2) {
        result[n2 + 1] = result[n2];
    }
    result
}

/// OpenCV's `ufixedpoint16` Gaussian kernel (8 fraction bits, sums to exactly 256): the bit-exact
/// kernel rounded with error diffusion (`getGaussianKernelFixedPoint_ED`). `n` must be odd.
fn cv_gaussian_kernel_fixed(n: usize, sigma: f64) -> Vec<u32> {
    let k = cv_gaussian_kernel_f64(n, sigma);
    let n2 = n / 2;
    let mut res = vec![0i64; n];
    let mut err = 0.0f64;
    let mut sum = 0i64;
    for i in 0..n2 {
        let adj = k[i] * 256.0 + err;
        let v0 = adj.round_ties_even() as i64;
        err = adj - v0 as f64;
        res[i] = v0;
        res[n - 1 - i] = v0;
        sum += v0;
    }
    res[n2] = 256 - 2 * sum;
    res.into_iter()
        .map(|v| v.clamp(0, i64::from(u16::MAX)) as u32)
        .collect()
}

/// OpenCV `borderInterpolate(p, len, BORDER_REFLECT_101)`, reflecting as often as needed.
pub(super) fn reflect101(mut p: i64, len: i64) -> usize {
    if len == 1 {
        return 0;
    }
    while p < 0 || p >= len {
        p = if p < 0 { -p } else { 2 * len - 2 - p };
    }
    p as usize
}

/// The kernel size A1111 passes to `cv2.GaussianBlur`: `2 * int(2.5 * sigma + 0.5) + 1`.
fn a1111_kernel_size(sigma: f64) -> usize {
    2 * ((2.5 * sigma + 0.5) as usize) + 1
}

/// One-dimensional bit-exact Gaussian along rows (`horizontal`) or columns of a gray image.
fn cv_blur_axis(mask: &GrayImage, sigma: f64, horizontal: bool) -> GrayImage {
    if sigma.is_nan() || sigma <= 0.0 || mask.width() == 0 || mask.height() == 0 {
        return mask.clone();
    }
    let n = a1111_kernel_size(sigma);
    let m = cv_gaussian_kernel_fixed(n, sigma);
    let r = (n / 2) as i64;
    let (w, h) = (mask.width() as usize, mask.height() as usize);
    let (len, lines) = if horizontal { (w, h) } else { (h, w) };
    // For each output position along the line, where its taps read from (REFLECT_101 border).
    let taps: Vec<Vec<usize>> = (0..len as i64)
        .map(|i| (0..n as i64).map(|j| reflect101(i - r + j, len as i64)).collect())
        .collect();
    let src = mask.as_raw();
    let mut out = GrayImage::new(mask.width(), mask.height());
    let mut line = vec![0u8; len];
    for l in 0..lines {
        for (i, v) in line.iter_mut().enumerate() {
            *v = if horizontal {
                src[l * w + i]
            } else {
                src[i * w + l]
            };
        }
        for (i, idx) in taps.iter().enumerate() {
            // Row pass: Σ m[j]·src in ufixedpoint16 (never saturates, the kernel sums to 1.0);
            // the identity pass in the other axis then rounds: (acc + 128) >> 8.
            let acc: u32 = idx.iter().zip(&m).map(|(&s, &k)| u32::from(line[s]) * k).sum();
            let v = ((acc + 128) >> 8).min(255) as u8;
            let o = if horizontal { l * w + i } else { i * w + l };
            out.as_mut()[o] = v;
        }
    }
    out
}

/// A1111's horizontal mask blur: `cv2.GaussianBlur(np_mask, (k, 1), sigma)` with
/// `k = 2*int(2.5*sigma + 0.5) + 1`, `BORDER_REFLECT_101`, on uint8.
///
/// Reproduces OpenCV's 8-bit fixed-point path (`GaussianBlurFixedPoint`), with the kernel from
/// OpenCV's softfloat `exp` and error-diffused 8-bit coefficients. Bit-exact (verified against
/// opencv-python-headless 5.0.0.93 for sigma 0.3..64 incl. 1..64, 2.7, on sizes 1x1..257x193,
/// including images narrower than the kernel). `sigma <= 0` returns a copy (A1111 skips the call).
pub fn gaussian_blur_x(mask: &GrayImage, sigma: f64) -> GrayImage {
    cv_blur_axis(mask, sigma, true)
}

/// A1111's vertical mask blur: `cv2.GaussianBlur(np_mask, (1, k), sigma)`; see [`gaussian_blur_x`].
/// Bit-exact (verified as for [`gaussian_blur_x`]). `sigma <= 0` returns a copy.
pub fn gaussian_blur_y(mask: &GrayImage, sigma: f64) -> GrayImage {
    cv_blur_axis(mask, sigma, false)
}

/// A1111's mask blur step in `StableDiffusionProcessingImg2Img.init`: blur x if `blur_x > 0`, then
/// blur y if `blur_y > 0`. Bit-exact (composition of [`gaussian_blur_x`] and [`gaussian_blur_y`]).
pub fn mask_blur(mask: &GrayImage, blur_x: f64, blur_y: f64) -> GrayImage {
    let blurred = if blur_x > 0.0 {
        gaussian_blur_x(mask, blur_x)
    } else {
        mask.clone()
    };
    if blur_y > 0.0 {
        gaussian_blur_y(&blurred, blur_y)
    } else {
        blurred
    }
}

// ------------------------------------------------------------------------------------------------
// 7. Pillow GaussianBlur = extended box blur (libImaging/BoxBlur.c), used by masking.fill
// ------------------------------------------------------------------------------------------------

/// `_gaussian_blur_radius` in `BoxBlur.c` (float arithmetic as in C, with the double-precision
/// `sqrt` and `floor`): the extended-box radius whose `passes`-fold box blur matches sigma.
pub(super) fn pil_gaussian_box_radius(radius: f32, passes: i32) -> f32 {
    let sigma2: f32 = radius * radius / passes as f32;
    let big_l: f32 = (12.0 * f64::from(sigma2) + 1.0).sqrt() as f32;
    let l: f32 = ((f64::from(big_l) - 1.0) / 2.0).floor() as f32;
    let mut a: f32 = (2.0 * l + 1.0) * (l * (l + 1.0) - 3.0 * sigma2);
    a /= 6.0 * (sigma2 - (l + 1.0) * (l + 1.0));
    l + a
}

/// Pillow's `ImagingLineBoxBlur8` for one channel of one line (wrapping `UINT32` arithmetic).
fn box_blur_line(inp: &[u8], out: &mut [u8], radius: usize, edge_a: usize, edge_b: usize, ww: u32, fw: u32) {
    let lastx = inp.len() - 1;
    let v = |i: usize| u32::from(inp[i]);
    let mv = |acc: u32, sub: usize, add: usize| acc.wrapping_add(v(add)).wrapping_sub(v(sub));
    let far =
        |acc: u32, l: usize, r: usize| acc.wrapping_mul(ww).wrapping_add((v(l) + v(r)).wrapping_mul(fw));
    let save = |bulk: u32| (bulk.wrapping_add(1 << 23) >> 24) as u8;

    let mut acc = v(0).wrapping_mul(radius as u32 + 1);
    for x in 0..edge_a.saturating_sub(1) {
        acc = acc.wrapping_add(v(x));
    }
    acc = acc.wrapping_add(v(lastx).wrapping_mul((radius + 1 - edge_a) as u32));

    // The three regions of the C loops: window clipped on the left, fully inside, clipped on the
    // right (or, for short lines, clipped on both sides in the middle region).
    for (x, o) in out.iter_mut().enumerate() {
        let (sub, add, right) = if edge_a <= edge_b {
            if x < edge_a {
                (0, x + radius, x + radius + 1)
            } else if x < edge_b {
                (x - radius - 1, x + radius, x + radius + 1)
            } else {
                (x - radius - 1, lastx, lastx)
            }
        } else if x < edge_b {
            (0, x + radius, x + radius + 1)
        } else if x < edge_a {
            (0, lastx, lastx)
        } else {
            (x - radius - 1, lastx, lastx)
        };
        acc = mv(acc, sub, add);
        *o = save(far(acc, sub, right));
    }
}

/// `passes` box-blur passes of `float_radius` along each of `lines` lines of length `len`;
/// `index(l, i)` is where sample `i` of line `l` lives in `data`.
fn box_blur_lines(
    data: &mut [u8],
    lines: usize,
    len: usize,
    float_radius: f32,
    passes: usize,
    index: impl Fn(usize, usize) -> usize,
) {
    // ImagingHorizontalBoxBlur's parameters.
    let radius = float_radius as usize;
    let ww = (16_777_216.0f32 / (float_radius * 2.0 + 1.0)) as u32;
    let fw = (1u32 << 24).wrapping_sub(((radius * 2 + 1) as u32).wrapping_mul(ww)) / 2;
    let edge_a = (radius + 1).min(len);
    let edge_b = len.saturating_sub(radius + 1);
    let mut line = vec![0u8; len];
    let mut tmp = vec![0u8; len];
    for l in 0..lines {
        for (i, v) in line.iter_mut().enumerate() {
            *v = data[index(l, i)];
        }
        for _ in 0..passes {
            box_blur_line(&line, &mut tmp, radius, edge_a, edge_b, ww, fw);
            std::mem::swap(&mut line, &mut tmp);
        }
        for (i, v) in line.iter().enumerate() {
            data[index(l, i)] = *v;
        }
    }
}

/// Pillow `ImageFilter.GaussianBlur(radius)` (`ImagingGaussianBlur`, 3 passes of an extended box
/// blur, rows then columns) on interleaved data with `cn` channels, each channel on its own.
pub(super) fn pil_gaussian_blur(img: &mut Raw, radius: f32) {
    if radius == 0.0 || img.w == 0 || img.h == 0 {
        return;
    }
    let r = pil_gaussian_box_radius(radius, 3);
    let (w, h, cn) = (img.w, img.h, img.cn);
    if r != 0.0 {
        for ch in 0..cn {
            box_blur_lines(&mut img.data, h, w, r, 3, |l, i| (l * w + i) * cn + ch);
        }
        for ch in 0..cn {
            box_blur_lines(&mut img.data, w, h, r, 3, |l, i| (i * w + l) * cn + ch);
        }
    }
}

/// Pillow `ImageFilter.GaussianBlur(radius)` on an `L` image (soft inpainting's anti-aliasing blur of
/// its composite mask). Same integer path as the masked-content fill's blur.
pub fn pil_gaussian_blur_gray(mask: &GrayImage, radius: f32) -> GrayImage {
    let mut raw = Raw::of_gray(mask);
    pil_gaussian_blur(&mut raw, radius);
    GrayImage::from_raw(mask.width(), mask.height(), raw.data).unwrap_or_else(|| mask.clone())
}

#[cfg(test)]
mod tests {
    //! Expected arrays were produced with Pillow 13 / OpenCV 5 as described in `ops::tests`.

    use image::Luma;

    use super::super::tests::{gray, gray_from};
    use super::*;

    #[test]
    fn cv_kernel_matches_opencv_bits() {
        // cv2.getGaussianKernel(7, 1.0, cv2.CV_64F) (OpenCV 5): bit patterns of the first half.
        // libm's exp gives 0x3f7228634ef2bf31 for the first tap; OpenCV's softfloat exp does not.
        let k = cv_gaussian_kernel_f64(7, 1.0);
        let bits: Vec<u64> = k[..4].iter().map(|v| v.to_bits()).collect();
        assert_eq!(
            bits,
            [
                0x3f72_2863_4ef2_bf2f,
                0x3fab_a69e_a654_530e,
                0x3fce_fb0b_0ccf_0c64,
                0x3fd9_8a0a_2f24_48e1
            ]
        );
        let k = cv_gaussian_kernel_f64(21, 4.0);
        assert_eq!(k[0].to_bits(), 0x3f72_1a4b_44d6_f4a0);
        assert_eq!(k[10].to_bits(), 0x3fb9_c040_bb38_fba2);
        for (n, sigma) in [(7, 1.0), (21, 4.0), (41, 8.0), (101, 20.0)] {
            let fixed = cv_gaussian_kernel_fixed(n, sigma);
            assert_eq!(fixed.len(), n);
            assert_eq!(fixed.iter().sum::<u32>(), 256, "sigma {sigma}");
            assert!(
                fixed.iter().zip(fixed.iter().rev()).all(|(a, b)| a == b),
                "symmetric"
            );
        }
    }

    #[test]
    fn gaussian_blur_matches_opencv_including_kernels_wider_than_the_image() {
        let m = gray(9, 3, 1);
        // cv2.GaussianBlur(m, (k, 1), sigma) and (1, k) with k = 2*int(2.5*sigma + 0.5) + 1 (OpenCV 5).
        let x1 = [
            93, 94, 97, 100, 103, 106, 109, 112, 113, 222, 225, 231, 225, 171, 77, 23, 16, 18, 94, 100, 111,
            124, 137, 150, 163, 174, 180,
        ];
        let y1 = [
            152, 158, 165, 172, 178, 59, 65, 72, 78, 153, 161, 169, 177, 185, 63, 71, 79, 87, 150, 160, 169,
            178, 188, 71, 81, 90, 100,
        ];
        let x4 = [
            100, 100, 101, 102, 103, 104, 105, 106, 106, 176, 172, 165, 151, 137, 121, 109, 98, 96, 124, 125,
            128, 132, 137, 142, 146, 149, 150,
        ];
        let y4 = [
            150, 158, 166, 174, 182, 66, 74, 82, 90, 154, 162, 170, 178, 186, 62, 70, 78, 86, 150, 158, 166,
            174, 182, 66, 74, 82, 90,
        ];
        assert_eq!(gaussian_blur_x(&m, 1.0).as_raw(), &x1);
        assert_eq!(gaussian_blur_y(&m, 1.0).as_raw(), &y1);
        assert_eq!(gaussian_blur_x(&m, 4.0).as_raw(), &x4);
        assert_eq!(gaussian_blur_y(&m, 4.0).as_raw(), &y4);
        assert_eq!(mask_blur(&m, 4.0, 0.0), gaussian_blur_x(&m, 4.0));
    }

    #[test]
    fn gaussian_blur_edge_cases() {
        let one = gray_from(1, 1, &[77]);
        for sigma in [1.0, 4.0, 8.0, 20.0] {
            assert_eq!(gaussian_blur_x(&one, sigma), one);
            assert_eq!(gaussian_blur_y(&one, sigma), one);
            for v in [0, 255] {
                let flat = GrayImage::from_pixel(37, 5, Luma([v]));
                assert_eq!(
                    gaussian_blur_x(&flat, sigma),
                    flat,
                    "constant {v} survives sigma {sigma}"
                );
                assert_eq!(gaussian_blur_y(&flat, sigma), flat);
            }
        }
        let m = gray(6, 4, 2);
        assert_eq!(gaussian_blur_x(&m, 0.0), m);
        assert_eq!(gaussian_blur_y(&m, -1.0), m);
        assert_eq!(gaussian_blur_x(&GrayImage::new(0, 3), 4.0).dimensions(), (0, 3));
    }
}
