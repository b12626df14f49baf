//! Person segmentation: MediaPipe's `SelfieSegmentation` general model (256×256) with the
//! pre- and post-processing of its `SelfieSegmentationCpu` graph (MediaPipe 0.10.14).
//!
//! The graph: `ImageToTensorCalculator` stretches the whole image to 256×256 (no letterbox) with
//! values in [0, 1]; the network ends in a sigmoid; `TensorsToSegmentationCalculator` (activation
//! NONE) resizes the 256×256 probabilities to the image size with `cv::resize`'s INTER_LINEAR.

use candle_core::Device;
use image::{GrayImage, RgbImage};

use super::graph::Graph;
use super::{DetectError, Detection, warp};

/// selfie_segmentation.tflite, converted.
static SELFIE: &[u8] = include_bytes!("../../assets/detect/selfie_segmentation.safetensors");

/// The model's input side in pixels (square).
pub const INPUT_SIZE: usize = 256;

/// Per-pixel person probabilities at the size of the image they were computed for.
#[derive(Clone, Debug, PartialEq)]
pub struct PersonMask {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Row-major probabilities in [0, 1].
    pub probs: Vec<f32>,
}

impl PersonMask {
    /// White where the probability is at least `threshold`, black elsewhere.
    pub fn to_mask(&self, threshold: f32) -> GrayImage {
        let px = self
            .probs
            .iter()
            .map(|&p| if p >= threshold { 255 } else { 0 })
            .collect();
        GrayImage::from_raw(self.width, self.height, px)
            .unwrap_or_else(|| GrayImage::new(self.width, self.height))
    }

    /// The box around the pixels at or above `threshold` (pixel edges: a single pixel at (x, y)
    /// gives x, y, 1, 1) scored by their mean probability; `None` when there are none.
    pub fn bounding_box(&self, threshold: f32) -> Option<Detection> {
        let w = self.width as usize;
        let (mut x0, mut y0, mut x1, mut y1) = (usize::MAX, usize::MAX, 0, 0);
        let (mut sum, mut count) = (0f64, 0usize);
        for (i, &p) in self.probs.iter().enumerate() {
            if p >= threshold {
                let (x, y) = (i % w, i / w);
                x0 = x0.min(x);
                y0 = y0.min(y);
                x1 = x1.max(x + 1);
                y1 = y1.max(y + 1);
                sum += f64::from(p);
                count += 1;
            }
        }
        (count > 0).then(|| Detection {
            x: x0 as f32,
            y: y0 as f32,
            width: (x1 - x0) as f32,
            height: (y1 - y0) as f32,
            score: (sum / count as f64) as f32,
        })
    }
}

/// Loads the segmentation network (parses the embedded asset).
pub fn load() -> Result<Graph, DetectError> {
    Graph::from_safetensors(SELFIE, "selfie_segmentation", &Device::Cpu)
}

/// The model's input tensor for `image` (HWC, 256×256, [0, 1]).
pub fn input(image: &RgbImage) -> Vec<f32> {
    warp::stretch_to_tensor(image, INPUT_SIZE, INPUT_SIZE, 0.0, 1.0)
}

/// The network's 256×256 probabilities on a prepared input tensor.
pub fn raw_output(graph: &Graph, input: &[f32]) -> Result<Vec<f32>, DetectError> {
    let outs = graph.run(input)?;
    let [mask] = outs.as_slice() else {
        return Err(DetectError::Model(format!(
            "expected 1 output, got {}",
            outs.len()
        )));
    };
    let v: Vec<f32> = mask.flatten_all()?.to_vec1()?;
    if v.len() != INPUT_SIZE * INPUT_SIZE {
        return Err(DetectError::Model(format!("mask has {} values", v.len())));
    }
    Ok(v)
}

/// Person probabilities for every pixel of `image`.
pub fn segment_people(image: &RgbImage) -> Result<PersonMask, DetectError> {
    if image.width() == 0 || image.height() == 0 {
        return Err(DetectError::Image("the image is empty".into()));
    }
    let graph = load()?;
    segment_people_with(&graph, image)
}

/// [`segment_people`] with the network already loaded by [`load`].
pub fn segment_people_with(graph: &Graph, image: &RgbImage) -> Result<PersonMask, DetectError> {
    let small = raw_output(graph, &input(image))?;
    let (width, height) = image.dimensions();
    Ok(PersonMask {
        width,
        height,
        probs: resize_linear(&small, INPUT_SIZE, INPUT_SIZE, width as usize, height as usize),
    })
}

/// One axis of `cv::resize` INTER_LINEAR on floats: source index and the weight of the next one.
fn linear_taps(src: usize, dst: usize) -> Vec<(usize, f32)> {
    let scale = src as f64 / dst as f64;
    (0..dst)
        .map(|d| {
            let f = ((d as f64 + 0.5) * scale - 0.5) as f32;
            let s = f.floor();
            let (mut si, mut frac) = (s as i64, f - s);
            if si < 0 {
                si = 0;
                frac = 0.0;
            }
            if si >= src as i64 - 1 {
                si = src as i64 - 1;
                frac = 0.0;
            }
            (si as usize, frac)
        })
        .collect()
}

/// `cv::resize(src, dst, Size(dw, dh))` for a one-channel float image: bilinear with
/// half-pixel centres, edges clamped, no antialiasing (a 2× reduction is a 2×2 mean either way).
fn resize_linear(src: &[f32], sw: usize, sh: usize, dw: usize, dh: usize) -> Vec<f32> {
    if (sw, sh) == (dw, dh) {
        return src.to_vec();
    }
    let xs = linear_taps(sw, dw);
    let ys = linear_taps(sh, dh);
    let row = |y: usize| -> Vec<f32> {
        let r = &src[y * sw..(y + 1) * sw];
        xs.iter()
            .map(|&(x, a)| {
                if a == 0.0 {
                    r[x]
                } else {
                    r[x] * (1.0 - a) + r[x + 1] * a
                }
            })
            .collect()
    };
    let mut out = Vec::with_capacity(dw * dh);
    for &(y, b) in &ys {
        let r0 = row(y);
        if b == 0.0 {
            out.extend_from_slice(&r0);
        } else {
            let r1 = row(y + 1);
            out.extend(r0.iter().zip(&r1).map(|(p, q)| p * (1.0 - b) + q * b));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resize_matches_opencv_on_a_ramp() {
        // cv2.resize(np.float32([[0, 1, 2, 3]]), (8, 1)) = [0, .25, .75, 1.25, 1.75, 2.25, 2.75, 3].
        let got = resize_linear(&[0.0, 1.0, 2.0, 3.0], 4, 1, 8, 1);
        assert_eq!(got, vec![0.0, 0.25, 0.75, 1.25, 1.75, 2.25, 2.75, 3.0]);
        // Downscale by 2: pairwise means.
        assert_eq!(resize_linear(&[0.0, 1.0, 2.0, 3.0], 4, 1, 2, 1), vec![0.5, 2.5]);
    }

    #[test]
    fn mask_box_covers_the_pixels_above_threshold() {
        let m = PersonMask {
            width: 4,
            height: 3,
            probs: vec![0.0, 0.0, 0.0, 0.0, 0.0, 0.9, 0.7, 0.0, 0.0, 0.0, 0.6, 0.0],
        };
        let b = m.bounding_box(0.5).expect("a box");
        assert_eq!((b.x, b.y, b.width, b.height), (1.0, 1.0, 2.0, 2.0));
        assert!((b.score - (0.9 + 0.7 + 0.6) / 3.0).abs() < 1e-6);
        assert!(m.bounding_box(0.95).is_none());
        assert_eq!(m.to_mask(0.5).pixels().filter(|p| p[0] == 255).count(), 3);
    }
}
