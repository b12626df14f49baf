//! Pillow resampling (`Resample.c`: Lanczos and bicubic resize, the latent mask) and A1111's
//! `images.resize_image` modes built on it.

use image::{GrayImage, RgbImage};

use super::Raw;

// ------------------------------------------------------------------------------------------------
// 4./5. Pillow resampling (libImaging/Resample.c)
// ------------------------------------------------------------------------------------------------

/// Pillow's `PRECISION_BITS` for 8-bit resampling: `32 - 8 - 2`.
const PRECISION_BITS: u32 = 32 - 8 - 2;

#[derive(Clone, Copy, Debug)]
enum Filter {
    /// `Image.BICUBIC`, a = -0.5, support 2.
    Bicubic,
    /// `Image.LANCZOS`, truncated sinc, support 3.
    Lanczos,
}

impl Filter {
    fn support(self) -> f64 {
        match self {
            Self::Bicubic => 2.0,
            Self::Lanczos => 3.0,
        }
    }

    fn eval(self, x: f64) -> f64 {
        match self {
            Self::Bicubic => {
                const A: f64 = -0.5;
                let x = if x < 0.0 { -x } else { x };
                if x < 1.0 {
                    ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
                } else if x < 2.0 {
                    (((x - 5.0) * x + 8.0) * x - 4.0) * A
                } else {
                    0.0
                }
            }
            Self::Lanczos => {
                if (-3.0..3.0).contains(&x) {
                    sinc(x) * sinc(x / 3.0)
                } else {
                    0.0
                }
            }
        }
    }
}

fn sinc(x: f64) -> f64 {
    if x == 0.0 {
        return 1.0;
    }
    let x = x * std::f64::consts::PI;
    x.sin() / x
}

/// Per-output-pixel taps: first source index and fixed-point weights (`precompute_coeffs` followed
/// by `normalize_coeffs_8bpc`).
struct Coeffs {
    taps: Vec<(usize, Vec<i32>)>,
}

impl Coeffs {
    fn new(in_size: usize, in0: f32, in1: f32, out_size: usize, filter: Filter) -> Self {
        let scale = f64::from(in1 - in0) / out_size as f64;
        let filterscale = if scale < 1.0 { 1.0 } else { scale };
        let support = filter.support() * filterscale;
        let inv_filterscale = 1.0 / filterscale;
        let taps = (0..out_size)
            .map(|xx| {
                let center = f64::from(in0) + (xx as f64 + 0.5) * scale;
                // C casts truncate toward zero; `as i64` does the same.
                let xmin = ((center - support + 0.5) as i64).max(0);
                let xmax = ((center + support + 0.5) as i64).min(in_size as i64);
                let count = (xmax - xmin).max(0) as usize;
                let mut k: Vec<f64> = (0..count)
                    .map(|x| filter.eval(((x as i64 + xmin) as f64 - center + 0.5) * inv_filterscale))
                    .collect();
                let ww: f64 = k.iter().fold(0.0, |acc, w| acc + w);
                if ww != 0.0 {
                    for w in &mut k {
                        *w /= ww;
                    }
                }
                let one = f64::from(1u32 << PRECISION_BITS);
                let fixed = k
                    .iter()
                    .map(|&w| {
                        if w < 0.0 {
                            (-0.5 + w * one) as i32
                        } else {
                            (0.5 + w * one) as i32
                        }
                    })
                    .collect();
                (xmin as usize, fixed)
            })
            .collect();
        Self { taps }
    }
}

/// Pillow's `clip8`: `(ss >> PRECISION_BITS)` clamped to 0..=255.
#[inline]
fn clip8(ss: i32) -> u8 {
    (ss >> PRECISION_BITS).clamp(0, 255) as u8
}

/// `_ImagingResampleHorizontal_8bpc` over source rows `y0..y0 + rows`.
fn resample_horizontal(src: &Raw, y0: usize, rows: usize, out_w: usize, c: &Coeffs) -> Raw {
    let cn = src.cn;
    let mut out = Raw::zeros(out_w, rows, cn);
    for yy in 0..rows {
        let line = &src.data[(y0 + yy) * src.w * cn..(y0 + yy + 1) * src.w * cn];
        let out_line = &mut out.data[yy * out_w * cn..(yy + 1) * out_w * cn];
        for (xx, (xmin, k)) in c.taps.iter().enumerate() {
            for ch in 0..cn {
                let mut ss: i32 = 1 << (PRECISION_BITS - 1);
                for (x, &kv) in k.iter().enumerate() {
                    ss = ss.wrapping_add(i32::from(line[(xmin + x) * cn + ch]).wrapping_mul(kv));
                }
                out_line[xx * cn + ch] = clip8(ss);
            }
        }
    }
    out
}

/// `_ImagingResampleVertical_8bpc`; `c`'s first indices are rows of `src`.
fn resample_vertical(src: &Raw, out_h: usize, c: &Coeffs) -> Raw {
    let cn = src.cn;
    let stride = src.w * cn;
    let mut out = Raw::zeros(src.w, out_h, cn);
    for (yy, (ymin, k)) in c.taps.iter().enumerate() {
        let out_line = &mut out.data[yy * stride..(yy + 1) * stride];
        for (i, o) in out_line.iter_mut().enumerate() {
            let mut ss: i32 = 1 << (PRECISION_BITS - 1);
            for (y, &kv) in k.iter().enumerate() {
                ss = ss.wrapping_add(i32::from(src.data[(ymin + y) * stride + i]).wrapping_mul(kv));
            }
            *o = clip8(ss);
        }
    }
    out
}

/// Pillow `Image.resize((out_w, out_h), filter, box)` for 8-bit "L"/"RGB" data, including the
/// Python-level copy shortcut and `_resize`'s crop shortcut. Sizes must be non-zero.
fn resample(src: &Raw, out_w: usize, out_h: usize, filter: Filter, bx: [f32; 4]) -> Raw {
    // _imaging.c `_resize`: integer box of exactly the output size → plain crop (or copy).
    if bx[0].fract() == 0.0
        && bx[2] - bx[0] == out_w as f32
        && bx[1].fract() == 0.0
        && bx[3] - bx[1] == out_h as f32
    {
        let (x0, y0) = (bx[0] as usize, bx[1] as usize);
        let mut out = Raw::zeros(out_w, out_h, src.cn);
        for y in 0..out_h {
            let s = ((y0 + y) * src.w + x0) * src.cn;
            let d = y * out_w * src.cn;
            out.data[d..d + out_w * src.cn].copy_from_slice(&src.data[s..s + out_w * src.cn]);
        }
        return out;
    }
    // Resample.c `ImagingResampleInner`. Note the `box[2] != xsize` test compares the box edge
    // with the *output* size, as Pillow does.
    let need_horizontal = out_w != src.w || bx[0] != 0.0 || bx[2] != out_w as f32;
    let need_vertical = out_h != src.h || bx[1] != 0.0 || bx[3] != out_h as f32;
    let (box_w, box_h) = (bx[2] - bx[0], bx[3] - bx[1]);
    // Pillow 13 (python-pillow/Pillow#9549) runs the vertical pass first when the height shrinks
    // by more than twice as many pixels as the width. Each pass rounds to 8 bits, so the order
    // changes results. The rule was fitted to Pillow 13.0.0 (no mismatch in 2,969 size pairs
    // where the two orders differ); PR #9549's first draft used a simpler test.
    let vertical_first = (out_h as f32) < box_h && box_h - out_h as f32 > (box_w - out_w as f32) * 2.0;
    if vertical_first {
        let vert = Coeffs::new(src.h, bx[1], bx[3], out_h, filter);
        let mut current = resample_vertical(src, out_h, &vert);
        if need_horizontal {
            let horiz = Coeffs::new(src.w, bx[0], bx[2], out_w, filter);
            current = resample_horizontal(&current, 0, out_h, out_w, &horiz);
        }
        return current;
    }
    let mut vert = Coeffs::new(src.h, bx[1], bx[3], out_h, filter);
    let ybox_first = vert.taps.first().map_or(0, |t| t.0);
    let ybox_last = vert.taps.last().map_or(0, |t| t.0 + t.1.len());

    let mut current: Option<Raw> = None;
    if need_horizontal {
        let horiz = Coeffs::new(src.w, bx[0], bx[2], out_w, filter);
        for t in &mut vert.taps {
            t.0 -= ybox_first;
        }
        current = Some(resample_horizontal(
            src,
            ybox_first,
            ybox_last - ybox_first,
            out_w,
            &horiz,
        ));
    }
    if need_vertical {
        let input = current.as_ref().unwrap_or(src);
        current = Some(resample_vertical(input, out_h, &vert));
    }
    current.unwrap_or_else(|| src.clone())
}

/// `Image.resize((w, h), filter)` on raw data; zero sizes give an empty or black image.
fn resize_raw(src: &Raw, w: usize, h: usize, filter: Filter) -> Raw {
    if w == 0 || h == 0 || src.w == 0 || src.h == 0 {
        return Raw::zeros(w, h, src.cn);
    }
    resample(src, w, h, filter, [0.0, 0.0, src.w as f32, src.h as f32])
}

fn lanczos_raw(src: &Raw, w: usize, h: usize) -> Raw {
    resize_raw(src, w, h, Filter::Lanczos)
}

/// Pillow `img.resize((width, height), Image.LANCZOS)` on an RGB image.
///
/// Two-pass separable filter, each pass rounded to 8 bits, support 3 scaled by the downscale
/// factor, 22-bit fixed-point weights, as in Pillow's `Resample.c`. The horizontal pass runs first,
/// except that Pillow 13 runs the vertical one first when the height shrinks by more than twice as
/// many pixels as the width (the order changes the rounding, so it is reproduced). Same size
/// returns a copy. Bit-exact (verified against Pillow 13 on 1x1..599x599 images, up and down
/// by factors 0.02..8 and mixed). A zero target side gives an empty image; an empty source a black one.
pub fn resize_lanczos_rgb(img: &RgbImage, width: u32, height: u32) -> RgbImage {
    lanczos_raw(&Raw::of_rgb(img), width as usize, height as usize).into_rgb()
}

/// Pillow `img.resize((width, height), Image.LANCZOS)` on an "L" image; see [`resize_lanczos_rgb`].
/// Bit-exact (verified as for the RGB version).
pub fn resize_lanczos_gray(img: &GrayImage, width: u32, height: u32) -> GrayImage {
    lanczos_raw(&Raw::of_gray(img), width as usize, height as usize).into_gray()
}

fn bicubic_raw(src: &Raw, w: usize, h: usize) -> Raw {
    resize_raw(src, w, h, Filter::Bicubic)
}

/// Pillow `img.resize((width, height))` with the default filter, which for "L"/"RGB" images in
/// Pillow 13 is `BICUBIC` (a = -0.5, support 2). A1111 uses it for the latent mask
/// (`init_mask.convert('RGB').resize((lw, lh))`); every channel of a gray-as-RGB image is the same,
/// so this gray version gives channel 0. Bit-exact (verified against Pillow 13).
pub fn resize_bicubic_gray(img: &GrayImage, width: u32, height: u32) -> GrayImage {
    bicubic_raw(&Raw::of_gray(img), width as usize, height as usize).into_gray()
}

/// Pillow `img.resize((width, height))` (BICUBIC) on an RGB image. Bit-exact (verified).
pub fn resize_bicubic_rgb(img: &RgbImage, width: u32, height: u32) -> RgbImage {
    bicubic_raw(&Raw::of_rgb(img), width as usize, height as usize).into_rgb()
}

/// A1111's latent-space mask (`StableDiffusionProcessingImg2Img.init`): the mask resized with
/// Pillow's default BICUBIC to the latent size, as `float32 / 255`, rounded half-to-even
/// (`np.around`) when `round` (A1111's `mask_round`) is set. Row-major, `latent_w * latent_h` values;
/// 1.0 means "repaint". Bit-exact (built on [`resize_bicubic_gray`]; float32 math as numpy does it).
pub fn latent_mask(mask: &GrayImage, latent_w: u32, latent_h: u32, round: bool) -> Vec<f32> {
    resize_bicubic_gray(mask, latent_w, latent_h)
        .iter()
        .map(|&v| {
            let x = f32::from(v) / 255.0;
            if round { x.round_ties_even() } else { x }
        })
        .collect()
}

// ------------------------------------------------------------------------------------------------
// 6. images.resize_image
// ------------------------------------------------------------------------------------------------

/// How an init image of another size is fitted to the generation size (A1111's "Resize mode",
/// `images.resize_image(resize_mode, ...)`; the index in [`ResizeMode::ALL`] is A1111's number).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
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
}

/// `images.resize_image(mode, im, width, height)` with no upscaler, on raw data.
fn resize_image_raw(mode: ResizeMode, im: &Raw, width: usize, height: usize) -> Raw {
    if width == 0 || height == 0 || im.w == 0 || im.h == 0 {
        return Raw::zeros(width, height, im.cn);
    }
    let ratio = width as f64 / height as f64;
    let src_ratio = im.w as f64 / im.h as f64;
    match mode {
        ResizeMode::JustResize => lanczos_raw(im, width, height),
        ResizeMode::CropAndResize => {
            let src_w = if ratio > src_ratio {
                width
            } else {
                im.w * height / im.h
            };
            let src_h = if ratio <= src_ratio {
                height
            } else {
                im.h * width / im.w
            };
            let resized = lanczos_raw(im, src_w, src_h);
            let mut res = Raw::zeros(width, height, im.cn);
            res.paste(
                &resized,
                (width / 2) as i64 - (src_w / 2) as i64,
                (height / 2) as i64 - (src_h / 2) as i64,
            );
            res
        }
        ResizeMode::ResizeAndFill => {
            // A1111 would ask Pillow for a zero-sized image (and raise) when the rounded-down side
            // is 0; we keep at least one pixel instead.
            let src_w = if ratio < src_ratio {
                width
            } else {
                (im.w * height / im.h).max(1)
            };
            let src_h = if ratio >= src_ratio {
                height
            } else {
                (im.h * width / im.w).max(1)
            };
            let resized = lanczos_raw(im, src_w, src_h);
            let mut res = Raw::zeros(width, height, im.cn);
            res.paste(
                &resized,
                (width / 2) as i64 - (src_w / 2) as i64,
                (height / 2) as i64 - (src_h / 2) as i64,
            );
            if ratio < src_ratio {
                let fill_height = (height / 2) as i64 - (src_h / 2) as i64;
                if fill_height > 0 {
                    let fill = fill_height as usize;
                    // `resized.resize((width, fill), box=(0, 0, width, 0))`: no `resample=`, so
                    // Pillow's default BICUBIC, and a zero-height box, so every fill row is the
                    // bicubic tap set centred on the top edge (rows 0 and 1), not a copy of row 0.
                    let top = resample(
                        &resized,
                        width,
                        fill,
                        Filter::Bicubic,
                        [0.0, 0.0, width as f32, 0.0],
                    );
                    res.paste(&top, 0, 0);
                    let rh = resized.h as f32;
                    let bottom = resample(
                        &resized,
                        width,
                        fill,
                        Filter::Bicubic,
                        [0.0, rh, width as f32, rh],
                    );
                    res.paste(&bottom, 0, fill_height + src_h as i64);
                }
            } else if ratio > src_ratio {
                let fill_width = (width / 2) as i64 - (src_w / 2) as i64;
                if fill_width > 0 {
                    let fill = fill_width as usize;
                    let left = resample(
                        &resized,
                        fill,
                        height,
                        Filter::Bicubic,
                        [0.0, 0.0, 0.0, height as f32],
                    );
                    res.paste(&left, 0, 0);
                    let rw = resized.w as f32;
                    let right = resample(
                        &resized,
                        fill,
                        height,
                        Filter::Bicubic,
                        [rw, 0.0, rw, height as f32],
                    );
                    res.paste(&right, fill_width + src_w as i64, 0);
                }
            }
            res
        }
    }
}

/// A1111 `images.resize_image(resize_mode, im, width, height)` with no img2img upscaler (plain
/// `LANCZOS`), on an RGB image.
///
/// - `Just`: `im.resize((width, height), LANCZOS)`.
/// - `CropAndResize`: scale so the image covers the target (`im.width * height // im.height`),
///   paste centred at `(width//2 - src_w//2, height//2 - src_h//2)` on black, clipping the excess.
/// - `ResizeAndFill`: scale to fit, paste centred, then fill the bars with
///   `resized.resize((width, fill), box=(0, 0, width, 0))` and the mirror box at the other edge.
///   A1111 passes no `resample=` there, so the bars use Pillow's default BICUBIC, and the box has
///   zero height, so each bar row is a bicubic blend of the 2 outermost rows (columns), not a copy
///   of the edge. With odd sizes one row/column may stay black, as in A1111.
///
/// Bit-exact for all three modes (verified against A1111's function on Pillow 13, sizes 1x1..
/// 700x700 into 1x1..800x800, portrait/landscape in both directions). Deviation: where A1111 would compute a zero
/// side (e.g. 1000x1 into 1x1000) and Pillow would raise, this keeps one pixel.
pub fn resize_image(mode: ResizeMode, img: &RgbImage, width: u32, height: u32) -> RgbImage {
    resize_image_raw(mode, &Raw::of_rgb(img), width as usize, height as usize).into_rgb()
}

/// [`resize_image`] for masks. A1111 passes "L" masks to `resize_image` (whole-picture mode, and
/// "Resize and fill" of the cropped mask in "only masked" mode); "L" images always take the plain
/// Lanczos path, and the RGB/RGBA canvas they land on holds the same gray value in every channel,
/// so converting the result back with `.convert('L')` is lossless. Bit-exact (verified).
pub fn resize_image_gray(mode: ResizeMode, img: &GrayImage, width: u32, height: u32) -> GrayImage {
    resize_image_raw(mode, &Raw::of_gray(img), width as usize, height as usize).into_gray()
}

#[cfg(test)]
mod tests {
    //! Expected arrays were produced with Pillow 13 / OpenCV 5 as described in `ops::tests`.

    use image::Luma;

    use super::super::tests::{gray, gray_from, rgb};
    use super::*;

    #[test]
    fn lanczos_matches_pillow_up_down_and_mixed() {
        let g = gray(5, 4, 2);
        // Image.fromarray(g).resize((w, h), Image.LANCZOS) (Pillow 13).
        assert_eq!(
            resize_lanczos_gray(&g, 3, 2).as_raw(),
            &[132, 141, 151, 102, 128, 153]
        );
        let up = [
            201, 202, 204, 206, 207, 209, 211, 212, 132, 133, 137, 139, 142, 144, 148, 149, 52, 55, 61, 66,
            70, 74, 81, 84, 112, 116, 125, 132, 137, 144, 153, 157, 173, 178, 189, 198, 204, 214, 224, 229,
            94, 100, 113, 124, 133, 144, 157, 163, 25, 32, 45, 57, 68, 80, 93, 100,
        ];
        assert_eq!(resize_lanczos_gray(&g, 8, 7).as_raw(), &up);
        // Wider but shorter: Pillow 13 runs the vertical pass first here.
        let mixed = [
            129, 131, 135, 139, 141, 144, 148, 152, 153, 96, 100, 110, 120, 128, 135, 145, 155, 159,
        ];
        assert_eq!(resize_lanczos_gray(&g, 9, 2).as_raw(), &mixed);
        let tall = [
            207, 214, 164, 173, 93, 107, 58, 79, 122, 148, 185, 216, 150, 188, 79, 122, 36, 81,
        ];
        assert_eq!(resize_lanczos_gray(&g, 2, 9).as_raw(), &tall);
        let c = [
            1, 92, 215, 2, 93, 216, 6, 97, 219, 6, 97, 220, 80, 171, 134, 82, 173, 136, 88, 179, 142, 91,
            182, 145, 158, 249, 52, 162, 253, 56, 170, 255, 65, 175, 255, 69,
        ];
        assert_eq!(resize_lanczos_rgb(&rgb(3, 2, 3), 4, 3).as_raw(), &c);
    }

    #[test]
    fn lanczos_edge_cases() {
        let g = gray(7, 5, 4);
        assert_eq!(resize_lanczos_gray(&g, 7, 5), g, "same size is a copy");
        assert_eq!(
            resize_lanczos_gray(&gray_from(1, 1, &[77]), 3, 2).as_raw(),
            &[77; 6]
        );
        for (w, h) in [(1, 1), (3, 11), (40, 2), (13, 13)] {
            let flat = GrayImage::from_pixel(9, 6, Luma([255]));
            assert_eq!(
                resize_lanczos_gray(&flat, w, h),
                GrayImage::from_pixel(w, h, Luma([255]))
            );
        }
        assert_eq!(resize_lanczos_gray(&g, 0, 3).dimensions(), (0, 3));
        assert_eq!(
            resize_lanczos_rgb(&RgbImage::new(0, 0), 2, 2),
            RgbImage::new(2, 2)
        );
    }

    #[test]
    fn bicubic_matches_pillow_default_resize() {
        let g = gray(6, 5, 3);
        // Image.fromarray(g).convert('RGB').resize((3, 2)) channel 0 (Pillow 13).
        assert_eq!(
            resize_bicubic_gray(&g, 3, 2).as_raw(),
            &[75, 90, 104, 75, 112, 148]
        );
        let up = [
            8, 10, 12, 15, 17, 19, 21, 73, 76, 81, 85, 89, 93, 97, 140, 147, 154, 161, 168, 176, 182, 42, 50,
            60, 71, 80, 90, 99, 39, 51, 64, 77, 89, 101, 113, 134, 149, 164, 179, 194, 209, 224, 62, 79, 98,
            116, 134, 153, 170, 0, 13, 34, 55, 74, 95, 113,
        ];
        assert_eq!(resize_bicubic_gray(&g, 7, 8).as_raw(), &up);
        assert_eq!(resize_bicubic_rgb(&rgb(6, 5, 3), 3, 2).dimensions(), (3, 2));
    }

    #[test]
    fn latent_mask_rounds_like_numpy() {
        let m = GrayImage::from_fn(16, 8, |x, _| Luma([if x >= 6 { 255 } else { 0 }]));
        // (126/255 as float32 in the second value; Pillow 13 bicubic.)
        assert_eq!(
            latent_mask(&m, 4, 1, false),
            [0.0, f32::from_bits(1_056_767_229), 1.0, 1.0]
        );
        assert_eq!(latent_mask(&m, 4, 1, true), [0.0, 0.0, 1.0, 1.0]);
    }

    #[test]
    fn resize_image_matches_a1111_all_modes() {
        let g = gray(6, 4, 4);
        // images.resize_image(mode, Image.fromarray(g), w, h).convert('L') (A1111 v1.10, Pillow 13).
        let just = [
            90, 91, 114, 138, 140, 155, 165, 116, 71, 81, 227, 252, 122, 0, 21, 162, 200, 150, 73, 95, 106,
            115, 126, 151, 166, 194, 143, 40, 88, 103, 255, 181, 0, 27, 42,
        ];
        let crop = [
            92, 102, 128, 137, 138, 165, 147, 85, 71, 75, 251, 204, 40, 0, 9, 214, 201, 98, 71, 82, 115, 117,
            136, 145, 154, 92, 31, 57, 83, 88, 96, 0, 0, 22, 25,
        ];
        let fill = [
            151, 157, 111, 74, 82, 151, 157, 111, 74, 82, 152, 161, 114, 74, 83, 164, 193, 139, 74, 94, 199,
            142, 33, 86, 101, 203, 136, 20, 88, 102, 203, 136, 20, 88, 102,
        ];
        assert_eq!(
            resize_image_gray(ResizeMode::JustResize, &g, 5, 7).as_raw(),
            &just
        );
        assert_eq!(
            resize_image_gray(ResizeMode::CropAndResize, &g, 5, 7).as_raw(),
            &crop
        );
        assert_eq!(
            resize_image_gray(ResizeMode::ResizeAndFill, &g, 5, 7).as_raw(),
            &fill
        );
        // Side bars; the odd width leaves no black column here.
        let bars = [
            156, 156, 156, 154, 77, 79, 79, 79, 167, 167, 170, 191, 81, 88, 89, 89, 218, 218, 203, 83, 58,
            103, 109, 109,
        ];
        assert_eq!(
            resize_image_gray(ResizeMode::ResizeAndFill, &g, 8, 3).as_raw(),
            &bars
        );
        // RGB goes through the same arithmetic per channel.
        let c = rgb(6, 4, 4);
        let r = resize_image(ResizeMode::ResizeAndFill, &c, 5, 7);
        assert!(r.pixels().zip(fill.iter()).all(|(p, &v)| p[0] == v));
    }

    #[test]
    fn resize_image_degenerate_sizes_do_not_panic() {
        // A1111 would ask Pillow for a 1x0 image here (and raise); we keep one row.
        let wide = gray(40, 1, 1);
        assert_eq!(
            resize_image_gray(ResizeMode::ResizeAndFill, &wide, 1, 50).dimensions(),
            (1, 50)
        );
        // Crop and resize of a flat strip stays flat (checked with A1111 on Pillow 13).
        let strip = GrayImage::from_pixel(50, 1, Luma([200]));
        assert_eq!(
            resize_image_gray(ResizeMode::CropAndResize, &strip, 1, 7).as_raw(),
            &[200; 7]
        );
        assert_eq!(
            resize_image_gray(ResizeMode::JustResize, &wide, 0, 3).dimensions(),
            (0, 3)
        );
        let one = gray_from(1, 1, &[9]);
        assert_eq!(
            resize_image_gray(ResizeMode::JustResize, &one, 3, 2).as_raw(),
            &[9; 6]
        );
        assert_eq!(
            resize_image_gray(ResizeMode::CropAndResize, &one, 3, 2).as_raw(),
            &[9; 6]
        );
        // Pasted at x = 3//2 - 2//2 = 0 with a 0-wide bar: the last column stays black, as in A1111.
        assert_eq!(
            resize_image_gray(ResizeMode::ResizeAndFill, &one, 3, 2).as_raw(),
            &[9, 9, 0, 9, 9, 0]
        );
    }
}
