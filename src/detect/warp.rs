//! MediaPipe's input step: one bilinear warp from the image straight to the model's size, as its
//! ImageToTensorCalculator does on CPU (OpenCV `warpPerspective`, INTER_LINEAR, constant border).
//!
//! OpenCV's 8-bit bilinear is fixed point: coordinates in 1/32 pixel, weights in 1/32768, the
//! result rounded back to 8 bits before the float conversion. This file reproduces that.

use image::RgbImage;

/// OpenCV's `INTER_BITS`: sub-pixel positions are multiples of 1/32.
const INTER_BITS: i32 = 5;
const INTER_TAB_SIZE: i64 = 1 << INTER_BITS;
/// OpenCV's `INTER_REMAP_COEF_BITS`.
const COEF_BITS: i32 = 15;

/// A square region of the image (in pixels) that maps onto the whole model input; the parts of it
/// outside the image are black (MediaPipe's `keep_aspect_ratio` + `BORDER_ZERO`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Letterbox {
    /// Left edge of the square in image pixels (≤ 0 when padded left and right).
    pub left_px: f64,
    /// Top edge of the square in image pixels.
    pub top_px: f64,
    /// Side of the square in image pixels: the longer side of the image.
    pub side_px: f64,
}

impl Letterbox {
    /// The square around the whole `width`×`height` image, centred (MediaPipe's `PadRoi`).
    pub fn around(width: u32, height: u32) -> Self {
        let side = f64::from(width.max(height));
        Self {
            left_px: (f64::from(width) - side) / 2.0,
            top_px: (f64::from(height) - side) / 2.0,
            side_px: side,
        }
    }

    /// Image pixel x of a position in [0, 1] across the model input.
    pub fn image_x(&self, rel: f64) -> f64 {
        self.left_px + rel * self.side_px
    }

    /// Image pixel y of a position in [0, 1] down the model input.
    pub fn image_y(&self, rel: f64) -> f64 {
        self.top_px + rel * self.side_px
    }
}

/// Warps `image` into a `size`×`size` RGB tensor (HWC, f32) through `letterbox`, with values
/// mapped from [0, 255] to [`lo`, `hi`] as OpenCV's `convertTo(CV_32F, (hi-lo)/255, lo)` does.
pub fn warp_to_tensor(image: &RgbImage, letterbox: Letterbox, size: usize, lo: f32, hi: f32) -> Vec<f32> {
    let scale = letterbox.side_px / size as f64;
    let region = Region {
        left_px: letterbox.left_px,
        top_px: letterbox.top_px,
        x_scale: scale,
        y_scale: scale,
    };
    warp_region(image, region, (size, size), lo, hi)
}

/// Stretches the whole `image` to `width`×`height` without keeping its aspect ratio (MediaPipe's
/// `keep_aspect_ratio: false`, as the selfie segmentation graph asks), values in [`lo`, `hi`].
pub fn stretch_to_tensor(image: &RgbImage, width: usize, height: usize, lo: f32, hi: f32) -> Vec<f32> {
    // OpenCV inverts the forward map diag(a, b, 1) by Cramer's rule, 1/(a·b) then times b or a:
    // the scales can be one ulp off w/out_w, which decides how exact ties at 1/32 px round
    // (e.g. 300 → 256 puts every odd column on a tie).
    let a = width as f64 / f64::from(image.width());
    let b = height as f64 / f64::from(image.height());
    let inv_det = 1.0 / (a * b);
    let region = Region {
        left_px: 0.0,
        top_px: 0.0,
        x_scale: b * inv_det,
        y_scale: a * inv_det,
    };
    warp_region(image, region, (width, height), lo, hi)
}

/// An axis-aligned region of the image: model pixel (x, y) reads image pixel
/// (`left_px` + x·`x_scale`, `top_px` + y·`y_scale`).
#[derive(Clone, Copy, Debug)]
struct Region {
    left_px: f64,
    top_px: f64,
    x_scale: f64,
    y_scale: f64,
}

fn warp_region(
    image: &RgbImage,
    region: Region,
    (out_w, out_h): (usize, usize),
    lo: f32,
    hi: f32,
) -> Vec<f32> {
    let alpha = (hi - lo) / 255.0;
    let mut out = vec![0f32; out_w * out_h * 3];
    // Fixed-point source position of destination pixel i along one axis (OpenCV: the inverse
    // transform times 32, rounded half to even).
    let fixed = |i: usize, scale: f64, origin: f64| -> i64 {
        let v = (i as f64 * scale + origin) * INTER_TAB_SIZE as f64;
        v.round_ties_even() as i64
    };
    let xs: Vec<i64> = (0..out_w)
        .map(|x| fixed(x, region.x_scale, region.left_px))
        .collect();
    for y in 0..out_h {
        let fy = fixed(y, region.y_scale, region.top_px);
        for (x, &fx) in xs.iter().enumerate() {
            let o = (y * out_w + x) * 3;
            let px = sample(image, fx, fy, Border::Zero);
            for c in 0..3 {
                out[o + c] = f32::from(px[c]).mul_add(alpha, lo);
            }
        }
    }
    out
}

/// What OpenCV reads outside the image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Border {
    /// `BORDER_CONSTANT` with 0.
    Zero,
    /// `BORDER_REPLICATE`: the nearest edge pixel.
    Replicate,
}

/// OpenCV's 8-bit fixed-point bilinear sample at (`fx`, `fy`) in 1/32 pixel.
fn sample(image: &RgbImage, fx: i64, fy: i64, border: Border) -> [u8; 3] {
    let (w, h) = (i64::from(image.width()), i64::from(image.height()));
    let raw = image.as_raw();
    let (sx, ax) = (fx >> INTER_BITS, fx & (INTER_TAB_SIZE - 1));
    let (sy, ay) = (fy >> INTER_BITS, fy & (INTER_TAB_SIZE - 1));
    if border == Border::Zero && (sx >= w || sx + 1 < 0 || sy >= h || sy + 1 < 0) {
        return [0; 3];
    }
    // Weights (32-a)(32-b)·32 etc. sum to 32768 exactly (OpenCV's BilinearTab_i).
    let wts = [
        (INTER_TAB_SIZE - ay) * (INTER_TAB_SIZE - ax),
        (INTER_TAB_SIZE - ay) * ax,
        ay * (INTER_TAB_SIZE - ax),
        ay * ax,
    ]
    .map(|v| v * (1 << (COEF_BITS - 2 * INTER_BITS)));
    let taps = [(sy, sx), (sy, sx + 1), (sy + 1, sx), (sy + 1, sx + 1)];
    let mut px = [0u8; 3];
    for (c, out) in px.iter_mut().enumerate() {
        let mut acc = 0i64;
        for (k, &(ty, tx)) in taps.iter().enumerate() {
            let (ty, tx) = match border {
                Border::Zero if ty < 0 || ty >= h || tx < 0 || tx >= w => continue,
                Border::Zero => (ty, tx),
                Border::Replicate => (ty.clamp(0, h - 1), tx.clamp(0, w - 1)),
            };
            acc += i64::from(raw[((ty * w + tx) * 3) as usize + c]) * wts[k];
        }
        *out = ((acc + (1 << (COEF_BITS - 1))) >> COEF_BITS).clamp(0, 255) as u8;
    }
    px
}

/// A rotated rectangle of the image in pixels (OpenCV's `RotatedRect`, angle in radians,
/// clockwise on screen).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RotatedRect {
    /// Centre x.
    pub cx: f64,
    /// Centre y.
    pub cy: f64,
    /// Width.
    pub width: f64,
    /// Height.
    pub height: f64,
    /// Rotation in radians.
    pub rotation: f64,
}

/// Warps the rotated rectangle `rect` of `image` onto a `size`×`size` RGB tensor (HWC, values in
/// [`lo`, `hi`]), as MediaPipe's ImageToTensorCalculator does for a region of interest: OpenCV
/// `warpPerspective` from the rectangle's corners to the output's, `BORDER_REPLICATE`.
pub fn warp_rotated_to_tensor(
    image: &RgbImage,
    rect: RotatedRect,
    size: usize,
    lo: f32,
    hi: f32,
) -> Vec<f32> {
    let alpha = (hi - lo) / 255.0;
    let (s, c) = rect.rotation.sin_cos();
    let n = size as f64;
    // Output pixel (u, v) reads the rectangle at ((u/n − ½)·width, (v/n − ½)·height), turned by
    // the rotation around the centre.
    let (ux, uy) = (c * rect.width / n, s * rect.width / n);
    let (vx, vy) = (-s * rect.height / n, c * rect.height / n);
    let x0 = rect.cx - (c * rect.width - s * rect.height) / 2.0;
    let y0 = rect.cy - f64::midpoint(s * rect.width, c * rect.height);
    let mut out = vec![0f32; size * size * 3];
    let t = INTER_TAB_SIZE as f64;
    for v in 0..size {
        let (bx, by) = ((v as f64).mul_add(vx, x0), (v as f64).mul_add(vy, y0));
        for u in 0..size {
            let fx = ((u as f64).mul_add(ux, bx) * t).round_ties_even() as i64;
            let fy = ((u as f64).mul_add(uy, by) * t).round_ties_even() as i64;
            let px = sample(image, fx, fy, Border::Replicate);
            let o = (v * size + u) * 3;
            for k in 0..3 {
                out[o + k] = f32::from(px[k]).mul_add(alpha, lo);
            }
        }
    }
    out
}
