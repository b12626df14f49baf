//! ControlNet preprocessors ("hint" images) as sd-webui-controlnet computes them: the model-free
//! annotators, the pixel-perfect resolution, and the final resize of the detected map.
//!
//! Reference: Mikubill/sd-webui-controlnet@56cec5b2 (`scripts/controlnet.py` `get_control` and
//! `detectmap_proc`, `scripts/utils.py` `resize_image_with_pad`, `scripts/preprocessor/*`,
//! `scripts/lvminthin.py`, `internal_controlnet/external_code.py`) with
//! `opencv-python-headless 5.0.0.93` and numpy 2. The OpenCV routines it calls (`resize` with
//! `INTER_CUBIC` / `INTER_AREA` / `INTER_NEAREST`, `Canny`, `GaussianBlur` on float32, `erode`,
//! `dilate`, `MORPH_HITMISS`, Otsu's threshold) are re-implemented here after OpenCV's own code
//! paths, including the SIMD variants that round differently from the scalar ones, because that is
//! what the extension really runs. `tests/parity_hints.rs` states what is bit-exact and what is not.

use std::collections::HashSet;

use image::{GrayImage, RgbImage};

use super::Raw;
use super::blur::{cv_gaussian_kernel_f64, reflect101};

/// Largest `processor_res` or generation side accepted; the extension's sliders stop at 2048.
const MAX_SIDE_PX: u32 = 8192;
/// Largest image (in pixels) any intermediate step may allocate.
const MAX_AREA_PX: u64 = 64 * 1024 * 1024;

// ------------------------------------------------------------------------------------------------
// Public API
// ------------------------------------------------------------------------------------------------

/// A model-free ControlNet preprocessor (the extension's "module").
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum HintPreprocessor {
    /// `none`: the input image is the hint.
    None,
    /// `canny`: `cv2.Canny` (aperture 3, L1 gradient) with the low and high thresholds.
    Canny {
        /// Low hysteresis threshold (extension default 100).
        low: u8,
        /// High hysteresis threshold (extension default 200).
        high: u8,
    },
    /// `inpaint_only`: the image with the inpaint mask as a fourth channel.
    InpaintOnly,
    /// `tile_resample`: an `INTER_AREA` downscale by the rate (no change below 1.1).
    TileResample {
        /// Down Sampling Rate, the extension's slider 1..8 (default 1).
        down_sampling_rate: f32,
    },
    /// `lineart_standard`: the model-free difference-of-Gaussian line art.
    LineartStandard,
    /// `scribble_xdog`: the XDoG scribble with its threshold.
    ScribbleXdog {
        /// XDoG Threshold, the extension's slider 1..64 (default 32).
        threshold: u8,
    },
}

impl HintPreprocessor {
    /// The extension's module name, as written in infotext (`Module: canny`).
    pub fn name(&self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Canny { .. } => "canny",
            Self::InpaintOnly => "inpaint_only",
            Self::TileResample { .. } => "tile_resample",
            Self::LineartStandard => "lineart_standard",
            Self::ScribbleXdog { .. } => "scribble_xdog",
        }
    }

    /// Parses a module name (the extension's, or the CLI spellings `inpaint`, `tile`,
    /// `lineart-standard`, `scribble-xdog`), with the extension's default thresholds.
    pub fn from_name(s: &str) -> Option<Self> {
        Some(match s.trim().to_ascii_lowercase().as_str() {
            "none" => Self::None,
            "canny" => Self::Canny { low: 100, high: 200 },
            "inpaint_only" | "inpaint-only" | "inpaint" => Self::InpaintOnly,
            "tile_resample" | "tile-resample" | "tile" => Self::TileResample {
                down_sampling_rate: 1.0,
            },
            "lineart_standard" | "lineart-standard" => Self::LineartStandard,
            "scribble_xdog" | "scribble-xdog" => Self::ScribbleXdog { threshold: 32 },
            _ => return None,
        })
    }

    /// Threshold A and B as the extension's infotext writes them for this module.
    ///
    /// A module without a slider has the hidden `PreprocessorParameter()` (range 0..1, value 0.5);
    /// the unit's validator resets an out-of-range threshold (the API default is -1) to that 0.5.
    pub fn thresholds(&self) -> (f32, f32) {
        match *self {
            Self::Canny { low, high } => (f32::from(low), f32::from(high)),
            Self::TileResample { down_sampling_rate } => (down_sampling_rate, 0.5),
            Self::ScribbleXdog { threshold } => (f32::from(threshold), 0.5),
            Self::None | Self::InpaintOnly | Self::LineartStandard => (0.5, 0.5),
        }
    }
}

/// How the detected map is fitted to the generation size (the extension's `ResizeMode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HintResize {
    /// Stretch to the target size (`RESIZE`).
    JustResize,
    /// Scale to cover the target, then crop the centre (`INNER_FIT`); the extension's default.
    #[default]
    CropAndResize,
    /// Scale to fit inside the target, then fill the rest with the border's median colour
    /// (`OUTER_FIT`).
    ResizeAndFill,
}

impl HintResize {
    /// The extension's label (its `ResizeMode` value, written in infotext).
    pub fn label(self) -> &'static str {
        match self {
            Self::JustResize => "Just Resize",
            Self::CropAndResize => "Crop and Resize",
            Self::ResizeAndFill => "Resize and Fill",
        }
    }

    /// Parses a label, its CLI spelling (`just-resize`, `crop`, `fill`) or the extension's old
    /// aliases ("Inner Fit (Scale to Fit)", "Outer Fit (Shrink to Fit)", ...).
    pub fn from_name(s: &str) -> Option<Self> {
        Some(match s.trim().to_ascii_lowercase().as_str() {
            "just resize" | "just-resize" | "resize" => Self::JustResize,
            "crop and resize"
            | "crop-and-resize"
            | "crop"
            | "inner fit (scale to fit)"
            | "scale to fit (inner fit)" => Self::CropAndResize,
            "resize and fill"
            | "resize-and-fill"
            | "fill"
            | "outer fit (shrink to fit)"
            | "envelope (outer fit)" => Self::ResizeAndFill,
            _ => return None,
        })
    }
}

/// The control image a ControlNet sees: the extension's `get_pytorch_control` tensor.
#[derive(Debug, Clone, PartialEq)]
pub struct Hint {
    /// Width in pixels (the generation width).
    pub width: usize,
    /// Height in pixels (the generation height).
    pub height: usize,
    /// 3, or 4 for `inpaint_only` (the fourth plane is the mask, 0 or 1).
    pub channels: usize,
    /// CHW planes, `detected_map / 255` in f32 exactly as the extension's tensor. For
    /// `inpaint_only` the RGB planes come from a float resize and may overshoot [0, 1] slightly
    /// (the extension does not clip); the mask plane is exactly 0.0 or 1.0, and the ControlNet
    /// hook treats `mask > 0.5` as "inpaint here" (it feeds `rgb * (1 - m) - m`).
    pub data: Vec<f32>,
}

/// Why a hint could not be made; each message names the input at fault.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum HintError {
    /// The input image has a zero side.
    #[error("control image is empty ({width}x{height})")]
    EmptyImage {
        /// Image width.
        width: u32,
        /// Image height.
        height: u32,
    },
    /// The mask is not the size of the image.
    #[error("control mask is {mask_w}x{mask_h}, but the control image is {image_w}x{image_h}")]
    MaskSize {
        /// Mask width.
        mask_w: u32,
        /// Mask height.
        mask_h: u32,
        /// Image width.
        image_w: u32,
        /// Image height.
        image_h: u32,
    },
    /// The generation size is zero or too large.
    #[error("hint size {width}x{height} is not usable (each side must be 1..={MAX_SIDE_PX})")]
    TargetSize {
        /// Requested width.
        width: u32,
        /// Requested height.
        height: u32,
    },
    /// The preprocessor resolution is zero or absurdly large.
    #[error(
        "preprocessor resolution {0} is out of range (1..={MAX_SIDE_PX}; the extension's slider is 64..2048)"
    )]
    Resolution(u32),
    /// The tile down-sampling rate is not a finite number >= 1.
    #[error("tile down sampling rate {0} is out of range (1..=8 in the extension; at least 1)")]
    TileRate(f32),
    /// A step would make an image with a zero side (OpenCV raises here too).
    #[error(
        "{what} would be {width}x{height}: the control image's aspect ratio is too extreme for this size"
    )]
    Degenerate {
        /// Which step.
        what: &'static str,
        /// Its width.
        width: u64,
        /// Its height.
        height: u64,
    },
    /// A step would allocate an absurdly large image.
    #[error("{what} would be {width}x{height} pixels, too large")]
    TooLarge {
        /// Which step.
        what: &'static str,
        /// Its width.
        width: u64,
        /// Its height.
        height: u64,
    },
}

/// The extension's `pixel_perfect_resolution`: the processor resolution that maps the image's
/// short side onto the generation size (the smaller scale for Resize and Fill, else the larger).
pub fn pixel_perfect_resolution(
    image_w: u32,
    image_h: u32,
    target_w: u32,
    target_h: u32,
    resize: HintResize,
) -> u32 {
    if image_w == 0 || image_h == 0 {
        return 0;
    }
    let k0 = f64::from(target_h) / f64::from(image_h);
    let k1 = f64::from(target_w) / f64::from(image_w);
    let short = f64::from(image_h.min(image_w));
    let est = match resize {
        HintResize::ResizeAndFill => k0.min(k1) * short,
        HintResize::JustResize | HintResize::CropAndResize => k0.max(k1) * short,
    };
    np_round(est).clamp(0.0, f64::from(u32::MAX)) as u32
}

/// One ControlNet unit's image path: the preprocessor at `processor_res` (or the pixel-perfect
/// resolution), then the extension's `detectmap_proc` to `width` x `height`, which for binary maps
/// re-thresholds (Otsu) and, for one-pixel edges, thins the resized map (`lvmin_thin`).
///
/// `mask` is used only by `InpaintOnly` (`None` there means an all-zero mask, as the extension's
/// `combine_image_and_mask`); its values are kept as given and only the final `> 127` test makes
/// them binary. It must have the image's size whenever it is given.
#[expect(
    clippy::too_many_arguments,
    reason = "the public signature the ControlNet hook calls"
)]
pub fn prepare_hint(
    image: &RgbImage,
    mask: Option<&GrayImage>,
    pre: &HintPreprocessor,
    processor_res: u32,
    pixel_perfect: bool,
    resize: HintResize,
    width: u32,
    height: u32,
) -> Result<Hint, HintError> {
    let (iw, ih) = image.dimensions();
    if iw == 0 || ih == 0 {
        return Err(HintError::EmptyImage {
            width: iw,
            height: ih,
        });
    }
    if let Some(m) = mask
        && m.dimensions() != (iw, ih)
    {
        return Err(HintError::MaskSize {
            mask_w: m.width(),
            mask_h: m.height(),
            image_w: iw,
            image_h: ih,
        });
    }
    if width == 0 || height == 0 || width > MAX_SIDE_PX || height > MAX_SIDE_PX {
        return Err(HintError::TargetSize { width, height });
    }
    let res = if pixel_perfect {
        pixel_perfect_resolution(iw, ih, width, height, resize)
    } else {
        processor_res
    };
    let uses_res = matches!(
        pre,
        HintPreprocessor::Canny { .. }
            | HintPreprocessor::LineartStandard
            | HintPreprocessor::ScribbleXdog { .. }
    );
    if uses_res && (res == 0 || res > MAX_SIDE_PX) {
        return Err(HintError::Resolution(res));
    }
    let detected = detect(&Raw::of_rgb(image), mask, *pre, res)?;
    Ok(detectmap(detected, resize, width as usize, height as usize)?.into_hint())
}

/// The preprocessor alone at resolution `res`: the extension's detected map before
/// `detectmap_proc` (8-bit RGB, or float RGBA for `inpaint_only`).
fn detect(rgb: &Raw, mask: Option<&GrayImage>, pre: HintPreprocessor, res: u32) -> Result<Map, HintError> {
    Ok(match pre {
        HintPreprocessor::None => Map::U8(rgb.clone()),
        HintPreprocessor::Canny { low, high } => {
            let (padded, tw, th) = resize_image_with_pad(rgb, res)?;
            let edges = canny(&padded, f64::from(low), f64::from(high));
            Map::U8(gray_to_rgb(&crop(&edges, tw, th)))
        }
        HintPreprocessor::TileResample { down_sampling_rate } => {
            Map::U8(tile_resample(rgb.clone(), down_sampling_rate)?)
        }
        HintPreprocessor::LineartStandard => {
            let (padded, tw, th) = resize_image_with_pad(rgb, res)?;
            Map::U8(gray_to_rgb(&crop(&lineart_standard(&padded), tw, th)))
        }
        HintPreprocessor::ScribbleXdog { threshold } => {
            let (padded, tw, th) = resize_image_with_pad(rgb, res)?;
            Map::U8(crop(&scribble_xdog(&padded, f64::from(threshold)), tw, th))
        }
        HintPreprocessor::InpaintOnly => {
            let mut rgba = ImgF::zeros(rgb.w, rgb.h, 4);
            for (i, px) in rgba.data.chunks_exact_mut(4).enumerate() {
                px[0] = f32::from(rgb.data[i * 3]);
                px[1] = f32::from(rgb.data[i * 3 + 1]);
                px[2] = f32::from(rgb.data[i * 3 + 2]);
                px[3] = mask.map_or(0.0, |m| f32::from(m.as_raw()[i]));
            }
            Map::F32(rgba)
        }
    })
}

/// A GUI preview of a hint: RGB scaled back to 8 bits; for `inpaint_only`, pixels under the mask
/// are drawn black, as the ControlNet sees them (-1, the bottom of its input range).
pub fn hint_preview(hint: &Hint) -> RgbImage {
    let plane = hint.width * hint.height;
    let to8 = |v: f32| (v * 255.0).round().clamp(0.0, 255.0) as u8;
    RgbImage::from_fn(hint.width as u32, hint.height as u32, |x, y| {
        let i = y as usize * hint.width + x as usize;
        if hint.channels == 4 && hint.data.get(3 * plane + i).is_some_and(|&m| m > 0.5) {
            return image::Rgb([0, 0, 0]);
        }
        let c = |k: usize| hint.data.get(k * plane + i).copied().map_or(0, to8);
        image::Rgb([c(0), c(1), c(2)])
    })
}

// ------------------------------------------------------------------------------------------------
// Numeric helpers with numpy / OpenCV rounding
// ------------------------------------------------------------------------------------------------

/// `np.round` (half to even).
fn np_round(v: f64) -> f64 {
    v.round_ties_even()
}

/// `np.mean` of two float32 values: the sum rounded to f32, then halved (not `f32::midpoint`,
/// which rounds once).
#[expect(clippy::manual_midpoint, reason = "numpy rounds the f32 sum before halving")]
fn np_mean2_f32(a: f32, b: f32) -> f32 {
    (a + b) / 2.0
}

/// `cvRound` on a float (`lrintf`, half to even) then `saturate_cast<uchar>`.
fn sat_u8_f32(v: f32) -> u8 {
    v.round_ties_even().clamp(0.0, 255.0) as u8
}

/// `saturate_cast<short>(cvRound(v))` as OpenCV makes the fixed-point resize coefficients.
fn sat_i16_f32(v: f32) -> i32 {
    v.round_ties_even().clamp(-32768.0, 32767.0) as i32
}

fn check_area(what: &'static str, w: u64, h: u64) -> Result<(), HintError> {
    if w == 0 || h == 0 {
        return Err(HintError::Degenerate {
            what,
            width: w,
            height: h,
        });
    }
    if w.saturating_mul(h) > MAX_AREA_PX {
        return Err(HintError::TooLarge {
            what,
            width: w,
            height: h,
        });
    }
    Ok(())
}

/// An interleaved float image (numpy float32 HWC).
#[derive(Clone, Debug)]
struct ImgF {
    w: usize,
    h: usize,
    cn: usize,
    data: Vec<f32>,
}

impl ImgF {
    fn zeros(w: usize, h: usize, cn: usize) -> Self {
        Self {
            w,
            h,
            cn,
            data: vec![0.0; w * h * cn],
        }
    }

    fn of_raw(r: &Raw) -> Self {
        Self {
            w: r.w,
            h: r.h,
            cn: r.cn,
            data: r.data.iter().map(|&v| f32::from(v)).collect(),
        }
    }
}

/// `HWC3` of a one-channel image: the plane repeated three times.
fn gray_to_rgb(g: &Raw) -> Raw {
    debug_assert_eq!(g.cn, 1);
    let mut out = Raw::zeros(g.w, g.h, 3);
    for (o, &v) in out.data.chunks_exact_mut(3).zip(&g.data) {
        o.fill(v);
    }
    out
}

/// `x[:h, :w]`.
fn crop(src: &Raw, w: usize, h: usize) -> Raw {
    let mut out = Raw::zeros(w, h, src.cn);
    let row = w * src.cn;
    for y in 0..h {
        let s = y * src.w * src.cn;
        out.data[y * row..(y + 1) * row].copy_from_slice(&src.data[s..s + row]);
    }
    out
}

// ------------------------------------------------------------------------------------------------
// cv2.resize
// ------------------------------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Interp {
    Nearest,
    Area,
    Cubic,
}

/// OpenCV `interpolateCubic` (A = -0.75), in float as OpenCV computes it.
fn cubic_coeffs(x: f32) -> [f32; 4] {
    const A: f32 = -0.75;
    let c0 = ((A * (x + 1.0) - 5.0 * A) * (x + 1.0) + 8.0 * A) * (x + 1.0) - 4.0 * A;
    let c1 = ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0;
    let c2 = ((A + 2.0) * (1.0 - x) - (A + 3.0)) * (1.0 - x) * (1.0 - x) + 1.0;
    [c0, c1, c2, 1.0 - c0 - c1 - c2]
}

/// The per-axis tables of OpenCV's `resizeGeneric_`: source offsets and coefficients for cubic
/// (`ksize` 4) or for `INTER_AREA` when enlarging (`ksize` 2, the "area mode" bilinear).
struct GenericAxis {
    ofs: Vec<i64>,
    coef: Vec<[f32; 4]>,
}

fn generic_axis(src: usize, dst: usize, cubic: bool) -> GenericAxis {
    let inv_scale = dst as f64 / src as f64;
    let scale = 1.0 / inv_scale;
    let mut ofs = Vec::with_capacity(dst);
    let mut coef = Vec::with_capacity(dst);
    for d in 0..dst {
        let (mut s, mut f);
        if cubic {
            f = ((d as f64 + 0.5) * scale - 0.5) as f32;
            s = f.floor() as i64;
            f -= s as f32;
        } else {
            s = (d as f64 * scale).floor() as i64;
            f = ((d + 1) as f64 - (s + 1) as f64 * inv_scale) as f32;
            f = if f <= 0.0 { 0.0 } else { f - f.floor() };
            // The linear kernel's clamps (never reached by area mode's floor(d * scale) >= 0).
            if s < 0 {
                f = 0.0;
                s = 0;
            }
            if s >= src as i64 - 1 {
                f = 0.0;
                s = src as i64 - 1;
            }
        }
        ofs.push(s);
        coef.push(if cubic {
            cubic_coeffs(f)
        } else {
            [1.0 - f, f, 0.0, 0.0]
        });
    }
    GenericAxis { ofs, coef }
}

/// Source index `s + k - (ksize/2 - 1)` clamped into the image (OpenCV's replicated border).
fn tap(s: i64, k: usize, ksize: usize, len: usize) -> usize {
    (s + k as i64 - (ksize as i64 / 2 - 1)).clamp(0, len as i64 - 1) as usize
}

/// Narrowest output row (in values) for which the cv2 5.0.0.93 wheel's 8-bit cubic resize takes
/// its float path (one SIMD block of eight 16-bit lanes).
const V_LANES_I16: usize = 8;

/// `resizeGeneric_` for 8-bit images.
///
/// Area-mode bilinear (INTER_AREA with an enlarged axis) is OpenCV's fixed point
/// (`INTER_RESIZE_COEF_BITS` = 11; vertical `((b * (S >> 4)) >> 16)` sums, `(x + 2) >> 2`), bit-exact.
/// Cubic is what the cv2 5.0.0.93 wheel was measured to do, which differs from OpenCV 4's source:
/// for output rows of at least 8 values from at least 4 source rows, a float computation with the
/// unquantized coefficients (horizontal sum in f32, then the vertical taps multiply-added from the
/// last row, rounded half to even); otherwise the classic fixed-point one. On 40 random images
/// (3..70 px to 3..140 px) 25 of 648 753 values differ, each by one level.
fn resize_generic_u8(src: &Raw, dw: usize, dh: usize, cubic: bool) -> Raw {
    const SCALE: f32 = 2048.0;
    let ksize = if cubic { 4 } else { 2 };
    let cn = src.cn;
    let xs = generic_axis(src.w, dw, cubic);
    let ys = generic_axis(src.h, dh, cubic);
    let xcoef: Vec<[i32; 4]> = xs
        .coef
        .iter()
        .map(|c| c.map(|v| sat_i16_f32(v * SCALE)))
        .collect();
    // Horizontal pass of every source row into int buffers (exact integer arithmetic).
    let width = dw * cn;
    let mut rows = vec![0i32; src.h * width];
    for sy in 0..src.h {
        let srow = &src.data[sy * src.w * cn..(sy + 1) * src.w * cn];
        let drow = &mut rows[sy * width..(sy + 1) * width];
        for dx in 0..dw {
            let a = xcoef[dx];
            for c in 0..cn {
                let mut v = 0i32;
                for (k, &ak) in a.iter().enumerate().take(ksize) {
                    let sx = tap(xs.ofs[dx], k, ksize, src.w);
                    v += i32::from(srow[sx * cn + c]) * ak;
                }
                drow[dx * cn + c] = v;
            }
        }
    }
    let mut rowsf = vec![0f32; src.h * width];
    for sy in 0..src.h {
        let srow = &src.data[sy * src.w * cn..(sy + 1) * src.w * cn];
        for dx in 0..dw {
            let a = xs.coef[dx];
            for c in 0..cn {
                let mut v = f32::from(srow[tap(xs.ofs[dx], 0, ksize, src.w) * cn + c]) * a[0];
                for k in 1..ksize {
                    v += f32::from(srow[tap(xs.ofs[dx], k, ksize, src.w) * cn + c]) * a[k];
                }
                rowsf[sy * width + dx * cn + c] = v;
            }
        }
    }
    let mut out = Raw::zeros(dw, dh, cn);
    // Measured against cv2 5.0.0.93: rows at least 8 values wide from a source of at least 4 rows
    // take the float path; the rest the classic fixed-point one.
    let float_path = width >= V_LANES_I16 && src.h >= 4;
    for dy in 0..dh {
        let b = ys.coef[dy].map(|v| sat_i16_f32(v * SCALE));
        let r: Vec<&[i32]> = (0..ksize)
            .map(|k| {
                let sy = tap(ys.ofs[dy], k, ksize, src.h);
                &rows[sy * width..(sy + 1) * width]
            })
            .collect();
        let drow = &mut out.data[dy * width..(dy + 1) * width];
        for x in 0..width {
            drow[x] = if cubic {
                if float_path {
                    // The SIMD cubic rows of OpenCV 5's build: float arithmetic on the integer
                    // row sums with the unquantized coefficients (measured: this, not the 11-bit
                    // `beta`, reproduces cv2 on all but ~0.1% of values), muladd from the last row.
                    let bf = ys.coef[dy];
                    let rf = |k: usize| rowsf[tap(ys.ofs[dy], k, ksize, src.h) * width + x];
                    let mut t = rf(3) * bf[3];
                    t += rf(2) * bf[2];
                    t += rf(1) * bf[1];
                    t += rf(0) * bf[0];
                    sat_u8_f32(t)
                } else {
                    let v = i64::from(r[0][x]) * i64::from(b[0])
                        + i64::from(r[1][x]) * i64::from(b[1])
                        + i64::from(r[2][x]) * i64::from(b[2])
                        + i64::from(r[3][x]) * i64::from(b[3]);
                    ((v + (1 << 21)) >> 22).clamp(0, 255) as u8
                }
            } else {
                // VResizeLinear<uchar> (vector and scalar alike): 16-bit mulhi on the rows
                // shifted right by 4, then (x + 2) >> 2.
                let m0 = ((r[0][x] >> 4) * b[0]) >> 16;
                let m1 = ((r[1][x] >> 4) * b[1]) >> 16;
                ((m0 + m1 + 2) >> 2).clamp(0, 255) as u8
            };
        }
    }
    out
}

/// `resizeGeneric_` for float32 images.
fn resize_generic_f32(src: &ImgF, dw: usize, dh: usize, cubic: bool) -> ImgF {
    let ksize = if cubic { 4 } else { 2 };
    let cn = src.cn;
    let xs = generic_axis(src.w, dw, cubic);
    let ys = generic_axis(src.h, dh, cubic);
    let width = dw * cn;
    let mut rows = vec![0f32; src.h * width];
    for sy in 0..src.h {
        let srow = &src.data[sy * src.w * cn..(sy + 1) * src.w * cn];
        let drow = &mut rows[sy * width..(sy + 1) * width];
        for dx in 0..dw {
            let a = xs.coef[dx];
            for c in 0..cn {
                let mut v = srow[tap(xs.ofs[dx], 0, ksize, src.w) * cn + c] * a[0];
                for (k, &ak) in a.iter().enumerate().take(ksize).skip(1) {
                    v += srow[tap(xs.ofs[dx], k, ksize, src.w) * cn + c] * ak;
                }
                drow[dx * cn + c] = v;
            }
        }
    }
    let mut out = ImgF::zeros(dw, dh, cn);
    for dy in 0..dh {
        let b = ys.coef[dy];
        let r: Vec<&[f32]> = (0..ksize)
            .map(|k| {
                let sy = tap(ys.ofs[dy], k, ksize, src.h);
                &rows[sy * width..(sy + 1) * width]
            })
            .collect();
        let drow = &mut out.data[dy * width..(dy + 1) * width];
        for x in 0..width {
            let mut v = r[0][x] * b[0];
            for k in 1..ksize {
                v += r[k][x] * b[k];
            }
            drow[x] = v;
        }
    }
    out
}

/// OpenCV `resizeNN` (`INTER_NEAREST`: `floor(d * src/dst)`, not the "exact" variant).
fn nn_index(src: usize, dst: usize) -> Vec<usize> {
    let inv_scale = dst as f64 / src as f64;
    let ifx = 1.0 / inv_scale;
    (0..dst)
        .map(|d| ((d as f64 * ifx).floor() as usize).min(src - 1))
        .collect()
}

/// `computeResizeAreaTab`: (destination index, source index, weight) triples.
fn area_tab(src: usize, dst: usize) -> Vec<(usize, usize, f32)> {
    let scale = 1.0 / (dst as f64 / src as f64);
    let mut tab = Vec::new();
    for dx in 0..dst {
        let fsx1 = dx as f64 * scale;
        let fsx2 = fsx1 + scale;
        let cell = scale.min(src as f64 - fsx1);
        let mut sx1 = fsx1.ceil() as i64;
        let sx2 = (fsx2.floor() as i64).min(src as i64 - 1);
        sx1 = sx1.min(sx2);
        if sx1 as f64 - fsx1 > 1e-3 {
            tab.push((dx, (sx1 - 1) as usize, ((sx1 as f64 - fsx1) / cell) as f32));
        }
        for sx in sx1..sx2 {
            tab.push((dx, sx as usize, (1.0 / cell) as f32));
        }
        if fsx2 - sx2 as f64 > 1e-3 {
            tab.push((
                dx,
                sx2 as usize,
                ((fsx2 - sx2 as f64).min(1.0).min(cell) / cell) as f32,
            ));
        }
    }
    tab
}

/// `resizeArea_`: float accumulation per output row, written with `out` when the row changes.
fn resize_area_float(src: &ImgF, dw: usize, dh: usize) -> ImgF {
    let cn = src.cn;
    let xtab = area_tab(src.w, dw);
    let ytab = area_tab(src.h, dh);
    let width = dw * cn;
    let mut out = ImgF::zeros(dw, dh, cn);
    let mut sum = vec![0f32; width];
    let mut buf = vec![0f32; width];
    let mut prev_dy = ytab.first().map_or(0, |t| t.0);
    for &(dy, sy, beta) in &ytab {
        buf.fill(0.0);
        let srow = &src.data[sy * src.w * cn..(sy + 1) * src.w * cn];
        for &(dx, sx, alpha) in &xtab {
            for c in 0..cn {
                buf[dx * cn + c] += srow[sx * cn + c] * alpha;
            }
        }
        if dy == prev_dy {
            for (s, b) in sum.iter_mut().zip(&buf) {
                *s += beta * b;
            }
        } else {
            out.data[prev_dy * width..(prev_dy + 1) * width].copy_from_slice(&sum);
            for (s, b) in sum.iter_mut().zip(&buf) {
                *s = beta * b;
            }
            prev_dy = dy;
        }
    }
    out.data[prev_dy * width..(prev_dy + 1) * width].copy_from_slice(&sum);
    out
}

/// The scale test of `cv::resize`: integer factors in both axes select `resizeAreaFast_`.
fn area_fast_scale(sw: usize, sh: usize, dw: usize, dh: usize) -> Option<(usize, usize)> {
    let sx = 1.0 / (dw as f64 / sw as f64);
    let sy = 1.0 / (dh as f64 / sh as f64);
    let (ix, iy) = (sx.round_ties_even(), sy.round_ties_even());
    ((sx - ix).abs() < f64::EPSILON && (sy - iy).abs() < f64::EPSILON).then_some((ix as usize, iy as usize))
}

/// `INTER_NEAREST` of `cn`-channel pixels from `w`×`h` to `dw`×`dh`.
fn resize_nearest<T: Copy + Default>(
    data: &[T],
    w: usize,
    h: usize,
    cn: usize,
    dw: usize,
    dh: usize,
) -> Vec<T> {
    let (xi, yi) = (nn_index(w, dw), nn_index(h, dh));
    let mut out = vec![T::default(); dw * dh * cn];
    for (dy, &sy) in yi.iter().enumerate() {
        for (dx, &sx) in xi.iter().enumerate() {
            let s = (sy * w + sx) * cn;
            let d = (dy * dw + dx) * cn;
            out[d..d + cn].copy_from_slice(&data[s..s + cn]);
        }
    }
    out
}

fn resize_u8(src: &Raw, dw: usize, dh: usize, interp: Interp) -> Raw {
    if (dw, dh) == (src.w, src.h) {
        return src.clone();
    }
    let cn = src.cn;
    match interp {
        Interp::Nearest => Raw {
            w: dw,
            h: dh,
            cn,
            data: resize_nearest(&src.data, src.w, src.h, cn, dw, dh),
        },
        Interp::Cubic => resize_generic_u8(src, dw, dh, true),
        Interp::Area if dw <= src.w && dh <= src.h => {
            if let Some((ix, iy)) = area_fast_scale(src.w, src.h, dw, dh) {
                let mut out = Raw::zeros(dw, dh, cn);
                let scale = 1.0f32 / (ix * iy) as f32;
                for dy in 0..dh {
                    for dx in 0..dw {
                        for c in 0..cn {
                            let mut s = 0u32;
                            for ky in 0..iy {
                                for kx in 0..ix {
                                    s +=
                                        u32::from(src.data[((dy * iy + ky) * src.w + dx * ix + kx) * cn + c]);
                                }
                            }
                            // resizeAreaFast_: (sum + 2) >> 2 for 2x2, else cvRound(sum * (1/area)).
                            out.data[(dy * dw + dx) * cn + c] = if ix == 2 && iy == 2 {
                                ((s + 2) >> 2) as u8
                            } else {
                                sat_u8_f32(s as f32 * scale)
                            };
                        }
                    }
                }
                return out;
            }
            let f = resize_area_float(&ImgF::of_raw(src), dw, dh);
            Raw {
                w: dw,
                h: dh,
                cn,
                data: f.data.iter().map(|&v| sat_u8_f32(v)).collect(),
            }
        }
        // INTER_AREA with an enlarged axis: OpenCV's "area mode" bilinear.
        Interp::Area => resize_generic_u8(src, dw, dh, false),
    }
}

fn resize_f32(src: &ImgF, dw: usize, dh: usize, interp: Interp) -> ImgF {
    if (dw, dh) == (src.w, src.h) {
        return src.clone();
    }
    let cn = src.cn;
    match interp {
        Interp::Nearest => ImgF {
            w: dw,
            h: dh,
            cn,
            data: resize_nearest(&src.data, src.w, src.h, cn, dw, dh),
        },
        Interp::Cubic => resize_generic_f32(src, dw, dh, true),
        Interp::Area if dw <= src.w && dh <= src.h => {
            if let Some((ix, iy)) = area_fast_scale(src.w, src.h, dw, dh) {
                let mut out = ImgF::zeros(dw, dh, cn);
                let scale = 1.0f32 / (ix * iy) as f32;
                for dy in 0..dh {
                    for dx in 0..dw {
                        for c in 0..cn {
                            let mut s = 0f32;
                            for ky in 0..iy {
                                for kx in 0..ix {
                                    s += src.data[((dy * iy + ky) * src.w + dx * ix + kx) * cn + c];
                                }
                            }
                            out.data[(dy * dw + dx) * cn + c] = s * scale;
                        }
                    }
                }
                return out;
            }
            resize_area_float(src, dw, dh)
        }
        Interp::Area => resize_generic_f32(src, dw, dh, false),
    }
}

// ------------------------------------------------------------------------------------------------
// The extension's input resize and preprocessors
// ------------------------------------------------------------------------------------------------

/// `resize_image_with_pad`: scale the short side to `res` (cubic up, area down, sizes rounded
/// half-to-even), then pad right and bottom by edge replication to multiples of 64. Returns the
/// padded image and the unpadded size.
fn resize_image_with_pad(img: &Raw, res: u32) -> Result<(Raw, usize, usize), HintError> {
    let k = f64::from(res) / img.h.min(img.w) as f64;
    let interp = if k > 1.0 { Interp::Cubic } else { Interp::Area };
    let th = np_round(img.h as f64 * k);
    let tw = np_round(img.w as f64 * k);
    check_area("the preprocessor's input", tw as u64, th as u64)?;
    let (tw, th) = (tw as usize, th as usize);
    let pad64 = |x: usize| x.div_ceil(64) * 64;
    let (pw, ph) = (pad64(tw), pad64(th));
    check_area("the padded preprocessor input", pw as u64, ph as u64)?;
    let resized = resize_u8(img, tw, th, interp);
    let cn = img.cn;
    let mut out = Raw::zeros(pw, ph, cn);
    for y in 0..ph {
        let sy = y.min(th - 1);
        for x in 0..pw {
            let sx = x.min(tw - 1);
            let s = (sy * tw + sx) * cn;
            out.data[(y * pw + x) * cn..(y * pw + x + 1) * cn].copy_from_slice(&resized.data[s..s + cn]);
        }
    }
    Ok((out, tw, th))
}

/// `tile_resample`: unchanged below a rate of 1.1, else `INTER_AREA` to `int(side / rate)`.
fn tile_resample(img: Raw, rate: f32) -> Result<Raw, HintError> {
    if !rate.is_finite() || rate < 1.0 {
        return Err(HintError::TileRate(rate));
    }
    // The extension gets the rate as a Python float: use the f32's shortest decimal, so that 1.3
    // divides as 1.3 and not as 1.2999999523.
    let rate = format!("{rate}").parse::<f64>().unwrap_or(f64::from(rate));
    if rate < 1.1 {
        return Ok(img);
    }
    let h = (img.h as f64 / rate) as u64;
    let w = (img.w as f64 / rate) as u64;
    check_area("the tile_resample output", w, h)?;
    Ok(resize_u8(&img, w as usize, h as usize, Interp::Area))
}

/// `cv2.Canny(img, low, high)` on a 3-channel 8-bit image: aperture 3, L1 gradient, the channel
/// with the largest |dx|+|dy| per pixel, OpenCV's integer non-maximum suppression and 8-connected
/// hysteresis. Returns a one-channel 0/255 map.
fn canny(img: &Raw, low: f64, high: f64) -> Raw {
    const SHIFT: i32 = 15;
    // (int)(tan(22.5 deg) * (1 << 15) + 0.5)
    const TG22: i32 = 13573;
    let (w, h, cn) = (img.w, img.h, img.cn);
    let (low, high) = if low > high { (high, low) } else { (low, high) };
    let (low, high) = (low.floor() as i32, high.floor() as i32);
    let px = |x: i64, y: i64, c: usize| -> i32 {
        let xx = x.clamp(0, w as i64 - 1) as usize;
        let yy = y.clamp(0, h as i64 - 1) as usize;
        i32::from(img.data[(yy * w + xx) * cn + c])
    };
    // Sobel 3x3 (BORDER_REPLICATE), best channel by L1 magnitude (first wins ties).
    let mut dx = vec![0i32; w * h];
    let mut dy = vec![0i32; w * h];
    let mut mag = vec![0i32; w * h];
    for y in 0..h as i64 {
        for x in 0..w as i64 {
            let i = y as usize * w + x as usize;
            for c in 0..cn {
                let gx = (px(x + 1, y - 1, c) - px(x - 1, y - 1, c))
                    + 2 * (px(x + 1, y, c) - px(x - 1, y, c))
                    + (px(x + 1, y + 1, c) - px(x - 1, y + 1, c));
                let gy = (px(x - 1, y + 1, c) - px(x - 1, y - 1, c))
                    + 2 * (px(x, y + 1, c) - px(x, y - 1, c))
                    + (px(x + 1, y + 1, c) - px(x + 1, y - 1, c));
                let m = gx.abs() + gy.abs();
                if c == 0 || m > mag[i] {
                    mag[i] = m;
                    dx[i] = gx;
                    dy[i] = gy;
                }
            }
        }
    }
    let mag_at = |x: i64, y: i64| -> i32 {
        if x < 0 || y < 0 || x >= w as i64 || y >= h as i64 {
            0
        } else {
            mag[y as usize * w + x as usize]
        }
    };
    // 0: candidate (weak), 1: not an edge, 2: edge.
    let mut map = vec![1u8; w * h];
    let mut stack = Vec::new();
    for y in 0..h as i64 {
        for x in 0..w as i64 {
            let i = y as usize * w + x as usize;
            let m = mag[i];
            if m <= low {
                continue;
            }
            let (xs, ys) = (dx[i], dy[i]);
            let ax = xs.abs();
            let ay = ys.abs() << SHIFT;
            let tg22x = ax * TG22;
            let is_max = if ay < tg22x {
                m > mag_at(x - 1, y) && m >= mag_at(x + 1, y)
            } else {
                let tg67x = tg22x + (ax << (SHIFT + 1));
                if ay > tg67x {
                    m > mag_at(x, y - 1) && m >= mag_at(x, y + 1)
                } else {
                    let s = if (xs ^ ys) < 0 { -1 } else { 1 };
                    m > mag_at(x - s, y - 1) && m > mag_at(x + s, y + 1)
                }
            };
            if is_max {
                if m > high {
                    map[i] = 2;
                    stack.push(i);
                } else {
                    map[i] = 0;
                }
            }
        }
    }
    while let Some(i) = stack.pop() {
        let (x, y) = ((i % w) as i64, (i / w) as i64);
        for (ox, oy) in [
            (-1, -1),
            (0, -1),
            (1, -1),
            (-1, 0),
            (1, 0),
            (-1, 1),
            (0, 1),
            (1, 1),
        ] {
            let (nx, ny) = (x + ox, y + oy);
            if nx < 0 || ny < 0 || nx >= w as i64 || ny >= h as i64 {
                continue;
            }
            let j = ny as usize * w + nx as usize;
            if map[j] == 0 {
                map[j] = 2;
                stack.push(j);
            }
        }
    }
    Raw {
        w,
        h,
        cn: 1,
        data: map.iter().map(|&v| if v == 2 { 255 } else { 0 }).collect(),
    }
}

/// `cv2.GaussianBlur(img.astype(np.float32), (0, 0), sigma)`: kernel size `round(8 sigma + 1) | 1`,
/// the bit-exact kernel rounded to f32, separable, BORDER_REFLECT_101.
fn gaussian_blur_f32(img: &ImgF, sigma: f64) -> ImgF {
    let n = (((sigma * 8.0 + 1.0).round_ties_even()) as usize) | 1;
    let k: Vec<f32> = cv_gaussian_kernel_f64(n, sigma)
        .iter()
        .map(|&v| v as f32)
        .collect();
    let r = (n / 2) as i64;
    let (w, h, cn) = (img.w, img.h, img.cn);
    let mut tmp = ImgF::zeros(w, h, cn);
    for y in 0..h {
        for x in 0..w {
            for c in 0..cn {
                let mut s = 0f32;
                for (t, &kt) in k.iter().enumerate() {
                    let sx = reflect101(x as i64 + t as i64 - r, w as i64);
                    s += img.data[(y * w + sx) * cn + c] * kt;
                }
                tmp.data[(y * w + x) * cn + c] = s;
            }
        }
    }
    let mut out = ImgF::zeros(w, h, cn);
    for y in 0..h {
        for x in 0..w {
            for c in 0..cn {
                let mut s = 0f32;
                for (t, &kt) in k.iter().enumerate() {
                    let sy = reflect101(y as i64 + t as i64 - r, h as i64);
                    s += tmp.data[(sy * w + x) * cn + c] * kt;
                }
                out.data[(y * w + x) * cn + c] = s;
            }
        }
    }
    out
}

/// `lineart_standard`: `min_c(blur6(x) - x)` clipped to 0..255, divided by
/// `max(16, median of the values > 8)`, times 127, truncated to 8 bits. One channel.
fn lineart_standard(img: &Raw) -> Raw {
    let x = ImgF::of_raw(img);
    let g = gaussian_blur_f32(&x, 6.0);
    let cn = x.cn;
    let mut intensity: Vec<f32> = (0..x.w * x.h)
        .map(|i| {
            (0..cn)
                .map(|c| g.data[i * cn + c] - x.data[i * cn + c])
                .fold(f32::INFINITY, f32::min)
                .clamp(0.0, 255.0)
        })
        .collect();
    let mut strong: Vec<f32> = intensity.iter().copied().filter(|&v| v > 8.0).collect();
    let median = if strong.is_empty() {
        // np.median of nothing is NaN and Python's max(16, nan) is 16.
        f32::NAN
    } else {
        strong.sort_by(f32::total_cmp);
        let n = strong.len();
        if n % 2 == 1 {
            strong[n / 2]
        } else {
            np_mean2_f32(strong[n / 2 - 1], strong[n / 2])
        }
    };
    let div = if median > 16.0 { median } else { 16.0 };
    for v in &mut intensity {
        *v /= div;
        *v *= 127.0;
    }
    Raw {
        w: x.w,
        h: x.h,
        cn: 1,
        data: intensity.iter().map(|&v| v.clamp(0.0, 255.0) as u8).collect(),
    }
}

/// `scribble_xdog`: `dog = uint8(clip(255 - min_c(blur5 - blur0.5)))`, white where
/// `2 * (255 - dog) > threshold` in uint8 arithmetic (the doubling wraps modulo 256, as numpy's).
fn scribble_xdog(img: &Raw, threshold: f64) -> Raw {
    let x = ImgF::of_raw(img);
    let g1 = gaussian_blur_f32(&x, 0.5);
    let g2 = gaussian_blur_f32(&x, 5.0);
    let cn = x.cn;
    let mut out = Raw::zeros(x.w, x.h, 3);
    for i in 0..x.w * x.h {
        let d = (0..cn)
            .map(|c| g2.data[i * cn + c] - g1.data[i * cn + c])
            .fold(f32::INFINITY, f32::min);
        let dog = (255.0 - d).clamp(0.0, 255.0) as u8;
        let doubled = (255 - dog).wrapping_mul(2);
        if f64::from(doubled) > threshold {
            out.data[i * 3..i * 3 + 3].fill(255);
        }
    }
    out
}

// ------------------------------------------------------------------------------------------------
// detectmap_proc and high_quality_resize
// ------------------------------------------------------------------------------------------------

/// A detected map on its way to the tensor: 8-bit (most modules) or float (`inpaint` modules).
enum Map {
    U8(Raw),
    F32(ImgF),
}

impl Map {
    fn into_hint(self) -> Hint {
        let (w, h, cn, vals): (usize, usize, usize, Vec<f32>) = match self {
            Map::U8(r) => (r.w, r.h, r.cn, r.data.iter().map(|&v| f32::from(v)).collect()),
            Map::F32(f) => (f.w, f.h, f.cn, f.data),
        };
        let plane = w * h;
        let mut data = vec![0f32; plane * cn];
        for (i, px) in vals.chunks_exact(cn).enumerate() {
            for (c, &v) in px.iter().enumerate() {
                data[c * plane + i] = v / 255.0;
            }
        }
        Hint {
            width: w,
            height: h,
            channels: cn,
            data,
        }
    }
}

/// Erode (`min`) or dilate (`max`) with a 3x3 structuring element given as a mask; out-of-image
/// taps are ignored (OpenCV's default morphology border). Per channel.
fn morph(x: &[f32], w: usize, h: usize, cn: usize, kernel: [[bool; 3]; 3], dilate: bool) -> Vec<f32> {
    let mut out = vec![0f32; x.len()];
    for y in 0..h {
        for xx in 0..w {
            for c in 0..cn {
                let mut acc = if dilate { f32::NEG_INFINITY } else { f32::INFINITY };
                for (ky, row) in kernel.iter().enumerate() {
                    for (kx, &on) in row.iter().enumerate() {
                        let (sy, sx) = (y as i64 + ky as i64 - 1, xx as i64 + kx as i64 - 1);
                        if !on || sy < 0 || sx < 0 || sy >= h as i64 || sx >= w as i64 {
                            continue;
                        }
                        let v = x[(sy as usize * w + sx as usize) * cn + c];
                        acc = if dilate { acc.max(v) } else { acc.min(v) };
                    }
                }
                out[(y * w + xx) * cn + c] = acc;
            }
        }
    }
    out
}

/// `nake_nms`: keep a pixel where it is the maximum of its 3-tap line in any of the four
/// directions, else 0.
fn naked_nms(y: &[u8], w: usize, h: usize) -> Vec<u8> {
    let f: Vec<f32> = y.iter().map(|&v| f32::from(v)).collect();
    let lines = [
        [[false, false, false], [true, true, true], [false, false, false]],
        [[false, true, false], [false, true, false], [false, true, false]],
        [[true, false, false], [false, true, false], [false, false, true]],
        [[false, false, true], [false, true, false], [true, false, false]],
    ];
    let mut out = vec![0u8; y.len()];
    for k in lines {
        let d = morph(&f, w, h, 1, k, true);
        for i in 0..y.len() {
            if d[i] == f[i] {
                out[i] = y[i];
            }
        }
    }
    out
}

/// Otsu's threshold (`getThreshVal_Otsu_8u`), then `THRESH_BINARY` (`> t` becomes 255).
fn otsu_binary(y: &mut [u8]) {
    let mut hist = [0u64; 256];
    for &v in y.iter() {
        hist[v as usize] += 1;
    }
    let scale = 1.0 / y.len() as f64;
    let mu: f64 = hist
        .iter()
        .enumerate()
        .map(|(i, &c)| i as f64 * c as f64)
        .sum::<f64>()
        * scale;
    let (mut mu1, mut q1, mut max_sigma, mut max_val) = (0.0f64, 0.0f64, 0.0f64, 0usize);
    let eps = f64::from(f32::EPSILON);
    for (i, &c) in hist.iter().enumerate() {
        let p_i = c as f64 * scale;
        mu1 *= q1;
        q1 += p_i;
        let q2 = 1.0 - q1;
        if q1.min(q2) < eps || q1.max(q2) > 1.0 - eps {
            continue;
        }
        mu1 = (mu1 + i as f64 * p_i) / q1;
        let mu2 = (mu - q1 * mu1) / q2;
        let sigma = q1 * q2 * (mu1 - mu2) * (mu1 - mu2);
        if sigma > max_sigma {
            max_sigma = sigma;
            max_val = i;
        }
    }
    for v in y.iter_mut() {
        *v = if usize::from(*v) > max_val { 255 } else { 0 };
    }
}

/// The 3x3 hit-or-miss kernels of `lvmin_thin` (1 = set, -1 = clear, 0 = any), each in its four
/// `np.rot90` rotations, in the extension's order.
fn rotations(raw: [[[i8; 3]; 3]; 2]) -> Vec<[[i8; 3]; 3]> {
    let rot = |m: [[i8; 3]; 3]| {
        let mut r = [[0i8; 3]; 3];
        for (i, row) in r.iter_mut().enumerate() {
            for (j, v) in row.iter_mut().enumerate() {
                *v = m[j][2 - i];
            }
        }
        r
    };
    let mut out = Vec::with_capacity(8);
    for turns in 0..4 {
        for &k in &raw {
            let mut m = k;
            for _ in 0..turns {
                m = rot(m);
            }
            out.push(m);
        }
    }
    out
}

/// One `thin_one_time` pass: for each kernel in turn, clear the pixels where `MORPH_HITMISS`
/// fires (computed on the image as the previous kernels left it). Returns whether nothing changed.
fn thin_pass(y: &mut [u8], w: usize, h: usize, kernels: &[[[i8; 3]; 3]]) -> bool {
    let mut done = true;
    let mut hits = Vec::new();
    for k in kernels {
        hits.clear();
        for py in 0..h {
            for px in 0..w {
                let mut hit = true;
                'k: for (ky, row) in k.iter().enumerate() {
                    for (kx, &want) in row.iter().enumerate() {
                        if want == 0 {
                            continue;
                        }
                        let (sy, sx) = (py as i64 + ky as i64 - 1, px as i64 + kx as i64 - 1);
                        if sy < 0 || sx < 0 || sy >= h as i64 || sx >= w as i64 {
                            continue;
                        }
                        let set = y[sy as usize * w + sx as usize] == 255;
                        if (want == 1) != set {
                            hit = false;
                            break 'k;
                        }
                    }
                }
                if hit {
                    hits.push(py * w + px);
                }
            }
        }
        for &i in &hits {
            y[i] = 0;
        }
        if !hits.is_empty() {
            done = false;
        }
    }
    done
}

/// `lvmin_thin`: up to 32 thinning passes, then one pruning pass when enlarging.
fn lvmin_thin(y: &mut [u8], w: usize, h: usize, prunings: bool) {
    let thin = rotations([
        [[-1, -1, -1], [0, 1, 0], [1, 1, 1]],
        [[0, -1, -1], [1, 1, -1], [0, 1, 0]],
    ]);
    let prune = rotations([
        [[-1, -1, -1], [-1, 1, -1], [0, 0, -1]],
        [[-1, -1, -1], [-1, 1, -1], [-1, 0, 0]],
    ]);
    for _ in 0..32 {
        if thin_pass(y, w, h, &thin) {
            break;
        }
    }
    if prunings {
        thin_pass(y, w, h, &prune);
    }
}

/// The facts `high_quality_resize` decides on: colour count and the binary / one-pixel-edge tests.
struct MapKind {
    colors: usize,
    binary: bool,
    one_px_edge: bool,
}

fn map_kind(x: &ImgF) -> MapKind {
    let mut set = HashSet::new();
    for px in x.data.chunks_exact(x.cn) {
        set.insert(px.iter().map(|v| v.to_bits()).collect::<Vec<u32>>());
        if set.len() > 200 {
            break;
        }
    }
    let colors = set.len();
    let (mut binary, mut one_px_edge) = (false, false);
    if colors == 2 {
        let min = x.data.iter().copied().fold(f32::INFINITY, f32::min);
        let max = x.data.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        binary = min < 16.0 && max > 240.0;
        if binary {
            let ones = [[true; 3]; 3];
            let e = morph(&x.data, x.w, x.h, x.cn, ones, false);
            let opened = morph(&e, x.w, x.h, x.cn, ones, true);
            let thin_count = opened.iter().zip(&x.data).filter(|(o, v)| o < v).count();
            let edge_count = x.data.iter().filter(|&&v| v > 127.0).count();
            one_px_edge = thin_count * 2 > edge_count;
        }
    }
    MapKind {
        colors,
        binary,
        one_px_edge,
    }
}

/// `high_quality_resize`: nearest for 3..199 colours, area when shrinking, cubic when enlarging;
/// binary maps are averaged to one channel and re-binarized with Otsu, one-pixel edges through
/// `nake_nms` and `lvmin_thin` first. The mask plane (4th channel) follows the same
/// interpolation and becomes `(mask > 127) * 255`.
fn high_quality_resize(x: Map, w: usize, h: usize) -> Map {
    // Split off the inpaint mask.
    let (rgb, mask) = match x {
        Map::U8(r) => (Map::U8(r), None),
        Map::F32(f) if f.cn == 4 => {
            let mut rgb = ImgF::zeros(f.w, f.h, 3);
            let mut m = ImgF::zeros(f.w, f.h, 1);
            for (i, px) in f.data.chunks_exact(4).enumerate() {
                rgb.data[i * 3..i * 3 + 3].copy_from_slice(&px[..3]);
                m.data[i] = px[3];
            }
            (Map::F32(rgb), Some(m))
        }
        Map::F32(f) => (Map::F32(f), None),
    };
    let (sw, sh) = match &rgb {
        Map::U8(r) => (r.w, r.h),
        Map::F32(f) => (f.w, f.h),
    };
    let (y, mask) = if (sw, sh) == (w, h) {
        (rgb, mask)
    } else {
        let smaller = w * h < sw * sh;
        let bigger = w * h > sw * sh;
        let as_f = match &rgb {
            Map::U8(r) => ImgF::of_raw(r),
            Map::F32(f) => f.clone(),
        };
        let kind = map_kind(&as_f);
        let interp = if kind.colors > 2 && kind.colors < 200 {
            Interp::Nearest
        } else if smaller {
            Interp::Area
        } else {
            Interp::Cubic
        };
        let resized = match &rgb {
            Map::U8(r) => Map::U8(resize_u8(r, w, h, interp)),
            Map::F32(f) => Map::F32(resize_f32(f, w, h, interp)),
        };
        let mask = mask.map(|m| resize_f32(&m, w, h, interp));
        let y = if kind.binary {
            let r = match &resized {
                Map::U8(r) => ImgF::of_raw(r),
                Map::F32(f) => f.clone(),
            };
            // np.mean(float32, axis=2): ((a + b) + c) / 3 in f32, clipped and truncated.
            let mut g: Vec<u8> = r
                .data
                .chunks_exact(r.cn)
                .map(|px| {
                    let s = px.iter().skip(1).fold(px[0], |a, &b| a + b);
                    (s / r.cn as f32).clamp(0.0, 255.0) as u8
                })
                .collect();
            if kind.one_px_edge {
                g = naked_nms(&g, w, h);
                otsu_binary(&mut g);
                lvmin_thin(&mut g, w, h, bigger);
            } else {
                otsu_binary(&mut g);
            }
            let out = gray_to_rgb(&Raw { w, h, cn: 1, data: g });
            match resized {
                Map::U8(_) => Map::U8(out),
                Map::F32(_) => Map::F32(ImgF::of_raw(&out)),
            }
        } else {
            resized
        };
        (y, mask)
    };
    match (y, mask) {
        (y, None) => y,
        (y, Some(m)) => {
            let yf = match y {
                Map::U8(r) => ImgF::of_raw(&r),
                Map::F32(f) => f,
            };
            let mut out = ImgF::zeros(yf.w, yf.h, 4);
            for (i, px) in out.data.chunks_exact_mut(4).enumerate() {
                px[..3].copy_from_slice(&yf.data[i * 3..i * 3 + 3]);
                px[3] = if m.data[i] > 127.0 { 255.0 } else { 0.0 };
            }
            Map::F32(out)
        }
    }
}

/// `np.median` of one channel of the border pixels, cast back to the map's dtype (uint8 truncates
/// the half of an even count's middle pair; float32 keeps it).
fn border_median(vals: &mut [f32], is_u8: bool) -> f32 {
    vals.sort_by(f32::total_cmp);
    let n = vals.len();
    if n % 2 == 1 {
        return vals[n / 2];
    }
    if is_u8 {
        f64::midpoint(f64::from(vals[n / 2 - 1]), f64::from(vals[n / 2])).trunc() as f32
    } else {
        np_mean2_f32(vals[n / 2 - 1], vals[n / 2])
    }
}

/// `detectmap_proc`: fit the detected map to `w` x `h` by the resize mode.
fn detectmap(x: Map, resize: HintResize, w: usize, h: usize) -> Result<Map, HintError> {
    let (old_w, old_h) = match &x {
        Map::U8(r) => (r.w as f64, r.h as f64),
        Map::F32(f) => (f.w as f64, f.h as f64),
    };
    if resize == HintResize::JustResize {
        return Ok(high_quality_resize(x, w, h));
    }
    let k0 = h as f64 / old_h;
    let k1 = w as f64 / old_w;
    if resize == HintResize::ResizeAndFill {
        let k = k0.min(k1);
        let (nw, nh) = (np_round(old_w * k) as u64, np_round(old_h * k) as u64);
        check_area("the fitted control map", nw, nh)?;
        // Median colour of the four borders (corners counted twice, as the extension does).
        let (is_u8, f) = match &x {
            Map::U8(r) => (true, ImgF::of_raw(r)),
            Map::F32(f) => (false, f.clone()),
        };
        let cn = f.cn;
        let mut color = vec![0f32; cn];
        for (c, col) in color.iter_mut().enumerate() {
            let at = |xx: usize, yy: usize| f.data[(yy * f.w + xx) * cn + c];
            let mut vals = Vec::with_capacity(2 * (f.w + f.h));
            vals.extend((0..f.w).map(|xx| at(xx, 0)));
            vals.extend((0..f.w).map(|xx| at(xx, f.h - 1)));
            vals.extend((0..f.h).map(|yy| at(0, yy)));
            vals.extend((0..f.h).map(|yy| at(f.w - 1, yy)));
            *col = border_median(&mut vals, is_u8);
        }
        if cn == 4 {
            color[3] = 255.0;
        }
        let fitted = high_quality_resize(x, nw as usize, nh as usize);
        let (fw, fh, fcn, fdata): (usize, usize, usize, Vec<f32>) = match &fitted {
            Map::U8(r) => (r.w, r.h, r.cn, r.data.iter().map(|&v| f32::from(v)).collect()),
            Map::F32(g) => (g.w, g.h, g.cn, g.data.clone()),
        };
        let mut bg = ImgF::zeros(w, h, fcn);
        for px in bg.data.chunks_exact_mut(fcn) {
            px.copy_from_slice(&color[..fcn]);
        }
        let pad_h = h.saturating_sub(fh) / 2;
        let pad_w = w.saturating_sub(fw) / 2;
        for yy in 0..fh.min(h - pad_h) {
            for xx in 0..fw.min(w - pad_w) {
                let d = ((yy + pad_h) * w + xx + pad_w) * fcn;
                let s = (yy * fw + xx) * fcn;
                bg.data[d..d + fcn].copy_from_slice(&fdata[s..s + fcn]);
            }
        }
        return Ok(match fitted {
            Map::U8(_) => Map::U8(Raw {
                w,
                h,
                cn: fcn,
                data: bg.data.iter().map(|&v| v as u8).collect(),
            }),
            Map::F32(_) => Map::F32(bg),
        });
    }
    let k = k0.max(k1);
    let (nw, nh) = (np_round(old_w * k) as u64, np_round(old_h * k) as u64);
    check_area("the scaled control map", nw, nh)?;
    let scaled = high_quality_resize(x, nw as usize, nh as usize);
    let pad_h = (nh as usize).saturating_sub(h) / 2;
    let pad_w = (nw as usize).saturating_sub(w) / 2;
    let cut = |data: &[f32], cn: usize| -> Vec<f32> {
        let mut out = Vec::with_capacity(w * h * cn);
        for yy in 0..h {
            let s = ((yy + pad_h) * nw as usize + pad_w) * cn;
            out.extend_from_slice(&data[s..s + w * cn]);
        }
        out
    };
    Ok(match scaled {
        Map::U8(r) => {
            let f: Vec<f32> = r.data.iter().map(|&v| f32::from(v)).collect();
            Map::U8(Raw {
                w,
                h,
                cn: r.cn,
                data: cut(&f, r.cn).iter().map(|&v| v as u8).collect(),
            })
        }
        Map::F32(g) => Map::F32(ImgF {
            w,
            h,
            cn: g.cn,
            data: cut(&g.data, g.cn),
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_cli_spellings() {
        for name in [
            "none",
            "canny",
            "inpaint_only",
            "tile_resample",
            "lineart_standard",
            "scribble_xdog",
        ] {
            let p = HintPreprocessor::from_name(name).expect("known module");
            assert_eq!(p.name(), name);
        }
        assert_eq!(
            HintPreprocessor::from_name("inpaint"),
            Some(HintPreprocessor::InpaintOnly)
        );
        assert_eq!(
            HintPreprocessor::from_name("tile"),
            Some(HintPreprocessor::TileResample {
                down_sampling_rate: 1.0
            })
        );
        assert_eq!(
            HintPreprocessor::from_name("scribble-xdog"),
            Some(HintPreprocessor::ScribbleXdog { threshold: 32 })
        );
        assert_eq!(
            HintPreprocessor::from_name("lineart-standard"),
            Some(HintPreprocessor::LineartStandard)
        );
        assert_eq!(HintPreprocessor::from_name("depth"), None);
        assert_eq!(
            HintPreprocessor::from_name("canny").map(|p| p.thresholds()),
            Some((100.0, 200.0))
        );
        assert_eq!(HintPreprocessor::LineartStandard.thresholds(), (0.5, 0.5));
        for r in [
            HintResize::JustResize,
            HintResize::CropAndResize,
            HintResize::ResizeAndFill,
        ] {
            assert_eq!(HintResize::from_name(r.label()), Some(r));
        }
        assert_eq!(HintResize::from_name("crop"), Some(HintResize::CropAndResize));
        assert_eq!(HintResize::from_name("fill"), Some(HintResize::ResizeAndFill));
        assert_eq!(HintResize::from_name("just-resize"), Some(HintResize::JustResize));
    }

    #[test]
    fn pixel_perfect_matches_the_extension() {
        // 96x72 image: short side 72; to 64x48 both scales are 2/3 -> 48.
        assert_eq!(
            pixel_perfect_resolution(96, 72, 64, 48, HintResize::CropAndResize),
            48
        );
        // 64x80 to 72x48: k0 = 0.6, k1 = 1.125; fill takes 0.6 * 64 = 38.4 -> 38.
        assert_eq!(
            pixel_perfect_resolution(64, 80, 72, 48, HintResize::ResizeAndFill),
            38
        );
        assert_eq!(
            pixel_perfect_resolution(64, 80, 72, 48, HintResize::JustResize),
            72
        );
        // Half to even: 2.5 -> 2.
        assert_eq!(pixel_perfect_resolution(4, 2, 5, 1, HintResize::CropAndResize), 2);
        assert_eq!(pixel_perfect_resolution(4, 2, 7, 1, HintResize::CropAndResize), 4);
    }

    #[test]
    fn bad_inputs_are_errors_not_panics() {
        let img = RgbImage::new(8, 6);
        let canny = HintPreprocessor::Canny { low: 100, high: 200 };
        let r = prepare_hint(
            &RgbImage::new(0, 5),
            None,
            &canny,
            512,
            false,
            HintResize::JustResize,
            64,
            64,
        );
        assert_eq!(r.unwrap_err().to_string(), "control image is empty (0x5)");
        let m = GrayImage::new(4, 4);
        let r = prepare_hint(
            &img,
            Some(&m),
            &HintPreprocessor::InpaintOnly,
            512,
            false,
            HintResize::JustResize,
            64,
            64,
        );
        assert_eq!(
            r.unwrap_err().to_string(),
            "control mask is 4x4, but the control image is 8x6"
        );
        for res in [0, 100_000] {
            let r = prepare_hint(&img, None, &canny, res, false, HintResize::JustResize, 64, 64);
            assert_eq!(r.unwrap_err(), HintError::Resolution(res));
        }
        let r = prepare_hint(&img, None, &canny, 512, false, HintResize::JustResize, 0, 64);
        assert!(matches!(r, Err(HintError::TargetSize { .. })));
        // A 1-pixel-tall strip at resolution 8192 would be 8192 x 67 million pixels.
        let strip = RgbImage::new(65_536, 1);
        let r = prepare_hint(&strip, None, &canny, 8192, false, HintResize::JustResize, 64, 64);
        assert!(matches!(r, Err(HintError::TooLarge { .. })), "{r:?}");
        let tile = HintPreprocessor::TileResample {
            down_sampling_rate: 8.0,
        };
        let r = prepare_hint(&img, None, &tile, 512, false, HintResize::JustResize, 64, 64);
        assert!(matches!(r, Err(HintError::Degenerate { .. })), "{r:?}");
        let nan = HintPreprocessor::TileResample {
            down_sampling_rate: f32::NAN,
        };
        assert!(prepare_hint(&img, None, &nan, 512, false, HintResize::JustResize, 64, 64).is_err());
        // Resize and Fill with an extreme aspect ratio scales a side to zero.
        let wide = RgbImage::new(4000, 1);
        let r = prepare_hint(
            &wide,
            None,
            &HintPreprocessor::None,
            512,
            false,
            HintResize::ResizeAndFill,
            64,
            64,
        );
        assert!(matches!(r, Err(HintError::Degenerate { .. })), "{r:?}");
    }

    #[test]
    fn preview_blacks_out_the_inpaint_mask() {
        let hint = Hint {
            width: 2,
            height: 1,
            channels: 4,
            data: vec![1.0, 0.5, 0.0, 0.2, 1.0, 0.4, 0.0, 1.0],
        };
        let p = hint_preview(&hint);
        assert_eq!(p.get_pixel(0, 0).0, [255, 0, 255]);
        assert_eq!(p.get_pixel(1, 0).0, [0, 0, 0]);
    }

    fn ref_dir() -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ref/hint")
    }

    /// The preprocessor outputs (before `detectmap_proc`) of `tests/fixtures/ref/hint`: all
    /// bit-exact except lineart after a cubic upscale (10 of 21 888 pixels, at most 5 levels).
    #[test]
    fn detected_maps_match_the_extension() {
        let meta: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(ref_dir().join("cases.json")).expect("cases.json"))
                .expect("json");
        let mut report = Vec::new();
        for case in meta["cases"].as_array().expect("cases") {
            let module = case["module"].as_str().expect("module");
            if module == "inpaint_only" {
                continue;
            }
            let id = case["id"].as_str().expect("id");
            let img = image::open(ref_dir().join(case["image"].as_str().expect("image")))
                .expect("input png")
                .to_rgb8();
            let ta = case["threshold_a"].as_f64().expect("thr a");
            let pre = match module {
                "canny" => HintPreprocessor::Canny {
                    low: ta as u8,
                    high: case["threshold_b"].as_f64().expect("thr b") as u8,
                },
                "tile_resample" => HintPreprocessor::TileResample {
                    down_sampling_rate: ta as f32,
                },
                "scribble_xdog" => HintPreprocessor::ScribbleXdog { threshold: ta as u8 },
                other => HintPreprocessor::from_name(other).expect("module"),
            };
            let res = case["effective_res"].as_u64().expect("res") as u32;
            let Map::U8(got) = detect(&Raw::of_rgb(&img), None, pre, res).expect("detect") else {
                panic!("8-bit map expected");
            };
            let want = image::open(ref_dir().join(format!("{id}_det.png")))
                .expect("det png")
                .to_rgb8();
            assert_eq!((got.w as u32, got.h as u32), want.dimensions(), "{id}");
            let diffs = got.data.iter().zip(want.as_raw()).filter(|(a, b)| a != b).count();
            let max = got
                .data
                .iter()
                .zip(want.as_raw())
                .map(|(&a, &b)| a.abs_diff(b))
                .max()
                .unwrap_or(0);
            report.push(format!("{id}: {diffs} values differ, max {max}"));
            if module == "lineart_standard" {
                // A cubic-upscaled input can differ by one level at ~0.01% of values (see
                // `resize_generic_u8`); lineart divides by the median strength and multiplies by
                // 127, which amplifies such a step a few times.
                assert!(
                    max <= 8 && diffs * 100 <= got.data.len(),
                    "{id}: {}",
                    report.join("; ")
                );
            } else {
                assert_eq!(diffs, 0, "{id}: {}", report.join("; "));
            }
        }
        println!("{}", report.join("\n"));
    }

    #[test]
    fn thinning_kernels_follow_np_rot90() {
        let k = rotations([[[1, 2, 3], [4, 5, 6], [7, 8, 9]], [[0; 3]; 3]]);
        // np.rot90([[1,2,3],[4,5,6],[7,8,9]]) == [[3,6,9],[2,5,8],[1,4,7]]
        assert_eq!(k[2], [[3, 6, 9], [2, 5, 8], [1, 4, 7]]);
    }
}

/// The extension's `control_net_inpaint_blur_sigma` default: the kernel of the inpaint_only blend.
pub const INPAINT_ONLY_BLUR: usize = 7;

/// The weight of the generated picture in sd-webui-controlnet's inpaint_only post-processing:
/// the 0/1 mask (`w`×`h`, row-major) dilated by a `k`×`k` square (`cv2.dilate`), then box-blurred
/// with the same size (`cv2.blur`, reflect-101 border). The picture is then
/// `m·generated + (1 − m)·control image`.
pub fn inpaint_only_weight(mask: &[f32], w: usize, h: usize, k: usize) -> Vec<f32> {
    let r = (k / 2) as i64;
    let (wi, hi) = (w as i64, h as i64);
    // Dilation: the window's maximum, clipped to the image (the border never wins a maximum).
    let mut rows = vec![0f32; w * h];
    for y in 0..h {
        for x in 0..w as i64 {
            let (a, b) = ((x - r).max(0), (x + r).min(wi - 1));
            rows[y * w + x as usize] = (a..=b)
                .map(|xx| mask[y * w + xx as usize])
                .fold(f32::MIN, f32::max);
        }
    }
    let mut dilated = vec![0f32; w * h];
    for y in 0..hi {
        for x in 0..w {
            let (a, b) = ((y - r).max(0), (y + r).min(hi - 1));
            dilated[y as usize * w + x] = (a..=b)
                .map(|yy| rows[yy as usize * w + x])
                .fold(f32::MIN, f32::max);
        }
    }
    // Normalised box filter, reflect-101 border, rows then columns (as cv2's separable filter).
    let inv = 1.0 / k as f32;
    let mut tmp = vec![0f32; w * h];
    for y in 0..h {
        for x in 0..wi {
            let s: f32 = (x - r..=x + r)
                .map(|xx| dilated[y * w + super::blur::reflect101(xx, wi)])
                .sum();
            tmp[y * w + x as usize] = s;
        }
    }
    let mut out = vec![0f32; w * h];
    for y in 0..hi {
        for x in 0..w {
            let s: f32 = (y - r..=y + r)
                .map(|yy| tmp[super::blur::reflect101(yy, hi) * w + x])
                .sum();
            out[y as usize * w + x] = s * inv * inv;
        }
    }
    out
}

#[cfg(test)]
mod inpaint_only_tests {
    use super::inpaint_only_weight;

    #[test]
    fn matches_cv2_dilate_then_blur() {
        // Reference: cv2 5.0.0.93, cv2.blur(cv2.dilate(m, np.ones((7, 7), np.uint8)), (7, 7)).
        let (w, h) = (20, 16);
        let mut m = vec![0f32; w * h];
        for y in 6..9 {
            for x in 8..11 {
                m[y * w + x] = 1.0;
            }
        }
        m[0] = 1.0;
        let b = inpaint_only_weight(&m, w, h, 7);
        let sum: f64 = b.iter().map(|&v| f64::from(v)).sum();
        assert!((sum - 98.285_715_635_865_93).abs() < 1e-4, "{sum}");
        for ((y, x), want) in [
            ((0, 0), 1.0),
            ((0, 5), 0.448_979_586_362_838_75),
            ((3, 3), 0.489_795_923_233_032_2),
            ((7, 9), 1.0),
            ((1, 14), 0.122_448_980_808_258_06),
            ((15, 19), 0.0),
            ((10, 3), 0.204_081_639_647_483_83),
            ((12, 12), 0.306_122_452_020_645_14),
            ((5, 6), 0.653_061_211_109_161_4),
        ] {
            assert!(
                (f64::from(b[y * w + x]) - want).abs() < 1e-6,
                "({y}, {x}): {} vs {want}",
                b[y * w + x]
            );
        }
    }
}
