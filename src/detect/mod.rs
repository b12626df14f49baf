//! Built-in face detection (hands: [`hands`], people: [`segment`]): MediaPipe's BlazeFace networks (weights shipped in `assets/detect/`,
//! converted by `scripts/convert_mediapipe.py`) with MediaPipe 0.10.14's own pre- and post-processing.
//!
//! Flow, as MediaPipe's `FaceDetection` graph runs it: one bilinear warp of the whole image,
//! letterboxed into a black square, to the model size with values in [−1, 1] ([`warp`]); the
//! network ([`graph`]); SSD decoding, sigmoid scores clamped to ±100, the threshold, weighted
//! non-max suppression at IoU 0.3 ([`ssd`]); and the letterbox removed to get image pixels.
//!
//! The weights are compiled into the binary (`include_bytes!`, like the CLIP tokenizer): the
//! packaging (packaging/easel.desktop, `cargo install`) ships one executable and no data folder.

pub mod graph;
pub mod hands;
pub mod segment;
pub mod ssd;
pub mod warp;

use candle_core::Device;
use image::RgbImage;

use graph::Graph;
use ssd::AnchorOptions;
use warp::Letterbox;

/// face_detection_short_range.tflite, converted.
static SHORT_RANGE: &[u8] = include_bytes!("../../assets/detect/face_detection_short_range.safetensors");
/// face_detection_full_range_sparse.tflite, converted (densified).
static FULL_RANGE: &[u8] = include_bytes!("../../assets/detect/face_detection_full_range_sparse.safetensors");

/// What went wrong while detecting.
#[derive(Debug, thiserror::Error)]
pub enum DetectError {
    /// A shipped model could not be read or run (a build problem, not the user's input).
    #[error("detector model: {0}")]
    Model(String),
    /// The image cannot be used.
    #[error("image: {0}")]
    Image(String),
    /// A tensor operation failed.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

/// Which MediaPipe face detector to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaceModel {
    /// `face_detection_short_range`: faces within about 2 m of the camera (128×128 input).
    Short,
    /// `face_detection_full_range_sparse`: faces up to about 5 m away (192×192 input).
    Full,
}

/// The graph options of one face model (MediaPipe 0.10.14, `FaceDetectionShortRange` /
/// `FaceDetectionFullRange` subgraphs, read from the wheel's compiled graphs).
struct FaceConfig {
    asset: &'static [u8],
    name: &'static str,
    anchors: AnchorOptions,
    /// `x_scale` = `y_scale` = `w_scale` = `h_scale`.
    box_scale: f32,
}

impl FaceModel {
    fn config(self) -> FaceConfig {
        match self {
            Self::Short => FaceConfig {
                asset: SHORT_RANGE,
                name: "face_detection_short_range",
                anchors: AnchorOptions {
                    input_size: 128,
                    strides: &[8, 16, 16, 16],
                    interpolated_scale_aspect_ratio: 1.0,
                },
                box_scale: 128.0,
            },
            Self::Full => FaceConfig {
                asset: FULL_RANGE,
                name: "face_detection_full_range_sparse",
                anchors: AnchorOptions {
                    input_size: 192,
                    strides: &[4],
                    interpolated_scale_aspect_ratio: 0.0,
                },
                box_scale: 192.0,
            },
        }
    }

    /// The score threshold MediaPipe's own graph uses (`min_score_thresh`).
    pub fn mediapipe_threshold(self) -> f32 {
        match self {
            Self::Short => 0.5,
            Self::Full => 0.6,
        }
    }

    /// The model's square input side in pixels.
    pub fn input_size(self) -> usize {
        self.config().anchors.input_size
    }

    /// Loads the network (parses the embedded asset).
    pub fn load(self) -> Result<Graph, DetectError> {
        let c = self.config();
        Graph::from_safetensors(c.asset, c.name, &Device::Cpu)
    }
}

/// One detected face, in pixels of the input image (not clipped to it, as MediaPipe reports it).
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct Detection {
    /// Left edge.
    pub x: f32,
    /// Top edge.
    pub y: f32,
    /// Width.
    pub width: f32,
    /// Height.
    pub height: f32,
    /// Detector confidence in [0, 1].
    pub score: f32,
}

/// The model's input tensor for `image` (HWC, [−1, 1]) and the letterbox it used.
pub fn face_input(image: &RgbImage, model: FaceModel) -> (Vec<f32>, Letterbox) {
    let letterbox = Letterbox::around(image.width(), image.height());
    let size = model.input_size();
    (warp::warp_to_tensor(image, letterbox, size, -1.0, 1.0), letterbox)
}

/// The network's raw outputs (regressors `[n, 16]`, classificators `[n]`, flattened) on a
/// prepared input tensor: what the TFLite interpreter returns.
pub fn face_raw_outputs(graph: &Graph, input: &[f32]) -> Result<(Vec<f32>, Vec<f32>), DetectError> {
    let outs = graph.run(input)?;
    let [boxes, scores] = outs.as_slice() else {
        return Err(DetectError::Model(format!(
            "expected 2 outputs, got {}",
            outs.len()
        )));
    };
    Ok((boxes.flatten_all()?.to_vec1()?, scores.flatten_all()?.to_vec1()?))
}

/// Finds faces in `image`: every detection scoring at least `confidence` (applied before
/// suppression, as MediaPipe's `min_score_thresh`), overlapping ones blended.
pub fn detect_faces(
    image: &RgbImage,
    model: FaceModel,
    confidence: f32,
) -> Result<Vec<Detection>, DetectError> {
    if image.width() == 0 || image.height() == 0 {
        return Err(DetectError::Image("the image is empty".into()));
    }
    let graph = model.load()?;
    detect_faces_with(&graph, image, model, confidence)
}

/// [`detect_faces`] with a network already loaded by [`FaceModel::load`].
pub fn detect_faces_with(
    graph: &Graph,
    image: &RgbImage,
    model: FaceModel,
    confidence: f32,
) -> Result<Vec<Detection>, DetectError> {
    let c = model.config();
    let (input, letterbox) = face_input(image, model);
    let (boxes, scores) = face_raw_outputs(graph, &input)?;
    let anchors = ssd::anchors(&c.anchors);
    if scores.len() != anchors.len() || boxes.len() != anchors.len() * 16 {
        return Err(DetectError::Model(format!(
            "{}: {} scores for {} anchors",
            c.name,
            scores.len(),
            anchors.len()
        )));
    }
    let decoding = ssd::Decoding {
        num_coords: 16,
        num_keypoints: 0,
        scale: c.box_scale,
    };
    let found = ssd::decode(&boxes, &scores, decoding, &anchors, confidence);
    let kept = ssd::weighted_nms(found, 0.3);
    Ok(kept
        .into_iter()
        .map(|b| {
            // DetectionProjectionCalculator: model coordinates → image pixels.
            let x0 = letterbox.image_x(f64::from(b.xmin));
            let y0 = letterbox.image_y(f64::from(b.ymin));
            let x1 = letterbox.image_x(f64::from(b.xmin + b.width));
            let y1 = letterbox.image_y(f64::from(b.ymin + b.height));
            Detection {
                x: x0 as f32,
                y: y0 as f32,
                width: (x1 - x0) as f32,
                height: (y1 - y0) as f32,
                score: b.score,
            }
        })
        .collect())
}

/// ADetailer's mask of one box (`create_mask_from_bbox` + `mask_preprocess`): PIL's
/// `rectangle([x1, y1, x2, y2])` on a black `width`×`height` image (corners truncated toward
/// zero, both ends inclusive), then `cv2.dilate` (`dilate_erode` > 0) or `cv2.erode` (< 0) with
/// a square kernel of that side. `None` when nothing is left (ADetailer drops all-black masks).
pub fn adetailer_box_mask(
    d: &Detection,
    width: u32,
    height: u32,
    dilate_erode: i32,
) -> Option<image::GrayImage> {
    if width == 0 || height == 0 {
        return None;
    }
    // PIL: (int) casts of the float corners, then clipped to the image.
    let trunc = |v: f32| v.trunc() as i64;
    let (mut x0, mut y0) = (trunc(d.x), trunc(d.y));
    let (mut x1, mut y1) = (trunc(d.x + d.width), trunc(d.y + d.height));
    let (w, h) = (i64::from(width), i64::from(height));
    let clip = |v: i64, max: i64| v.clamp(0, max - 1);
    if x1 < 0 || y1 < 0 || x0 >= w || y0 >= h || x1 < x0 || y1 < y0 {
        return None;
    }
    (x0, x1, y0, y1) = (clip(x0, w), clip(x1, w), clip(y0, h), clip(y1, h));
    // A k×k rectangle kernel anchored at (k/2, k/2): dilation reaches k−1−k/2 before and k/2
    // after; erosion takes as much off, except at the image border (OpenCV pads erosion with
    // the maximum, so a side on the border stays).
    let k = i64::from(dilate_erode.unsigned_abs());
    if k > 0 {
        let (before, after) = (k - 1 - k / 2, k / 2);
        if dilate_erode > 0 {
            (x0, y0) = ((x0 - before).max(0), (y0 - before).max(0));
            (x1, y1) = ((x1 + after).min(w - 1), (y1 + after).min(h - 1));
        } else {
            // Erosion: a pixel stays when its whole kernel window is inside the box.
            if x0 > 0 {
                x0 += after;
            }
            if y0 > 0 {
                y0 += after;
            }
            if x1 < w - 1 {
                x1 -= before;
            }
            if y1 < h - 1 {
                y1 -= before;
            }
            if x1 < x0 || y1 < y0 {
                return None;
            }
        }
    }
    let mut mask = image::GrayImage::new(width, height);
    for y in y0..=y1 {
        for x in x0..=x1 {
            mask.put_pixel(x as u32, y as u32, image::Luma([255]));
        }
    }
    Some(mask)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn white(m: &image::GrayImage) -> (u32, u32, u32, u32, usize) {
        let px: Vec<(u32, u32)> = m
            .enumerate_pixels()
            .filter(|p| p.2[0] == 255)
            .map(|p| (p.0, p.1))
            .collect();
        let xs = px.iter().map(|p| p.0);
        let ys = px.iter().map(|p| p.1);
        (
            xs.clone().min().unwrap_or(0),
            ys.clone().min().unwrap_or(0),
            xs.max().unwrap_or(0),
            ys.max().unwrap_or(0),
            px.len(),
        )
    }

    #[test]
    fn box_masks_match_pil_and_cv2() {
        // PIL rectangle([2.7, 1.2, 5.9, 3.99]) fills x 2..=5, y 1..=3; cv2.dilate with a 4×4
        // kernel then covers x 1..=7, y 0..=5, cv2.erode with 2×2 x 3..=5, y 2..=3 (checked with
        // Pillow 13 and OpenCV 5.1).
        let d = Detection {
            x: 2.7,
            y: 1.2,
            width: 3.2,
            height: 2.79,
            score: 0.9,
        };
        let m = adetailer_box_mask(&d, 12, 8, 0).expect("a mask");
        assert_eq!(white(&m), (2, 1, 5, 3, 12));
        let m = adetailer_box_mask(&d, 12, 8, 4).expect("a mask");
        assert_eq!(white(&m), (1, 0, 7, 5, 42));
        let m = adetailer_box_mask(&d, 12, 8, -2).expect("a mask");
        assert_eq!(white(&m), (3, 2, 5, 3, 6));
        let off = Detection { x: 20.0, ..d };
        assert!(adetailer_box_mask(&off, 12, 8, 4).is_none());
    }
}
