//! Built-in face detection: MediaPipe's BlazeFace networks (weights shipped in `assets/detect/`,
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
    let found = ssd::decode(&boxes, &scores, 16, &anchors, c.box_scale, confidence);
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
