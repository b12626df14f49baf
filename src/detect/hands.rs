//! Built-in hand detection: MediaPipe's palm detector and hand landmark model, in either of the
//! two sizes MediaPipe ships ([`HandModel`]: `palm_detection_full` + `hand_landmark_full`, the
//! default as in MediaPipe's Python `Hands(model_complexity=1)`, or the `_lite` pair of
//! `model_complexity=0`), weights in `assets/detect/`, with MediaPipe 0.10.14's own pre- and
//! post-processing as its `HandLandmarkTrackingCpu` graph runs them on a still image
//! (`PalmDetectionCpu`, `PalmDetectionDetectionToRoi`, `HandLandmarkCpu`). Both sizes share that
//! processing: the compiled graphs only switch the model file on `model_complexity` (same 192×192
//! palm input, anchors and decoding; same 224×224 landmark input).
//!
//! Flow: one bilinear warp of the whole image, letterboxed into a black square, to 192×192 with
//! values in [0, 1]; the network; SSD decoding over 2016 fixed-size anchors (strides 8, 16, 16,
//! 16) of a box and 7 keypoints per anchor, sigmoid scores clamped to ±100, the threshold,
//! weighted non-max suppression at IoU 0.3; the letterbox removed. A palm box covers the palm
//! only: the hand region is the palm box turned upright by the wrist → middle-finger angle,
//! shifted half its height towards the fingers, squared on its long side and scaled by 2.6
//! (`DetectionsToRectsCalculator` + `RectTransformationCalculator`). The landmark model reads
//! that region (one bilinear warp of the rotated square to 224×224, edges replicated, values in
//! [0, 1]) and says whether a hand is there (presence > 0.5) and where its 21 landmarks are. A
//! [`Detection`] is the box around the 21 landmarks of a present hand, scored by its palm
//! ([`detect_hands`]); [`hand_regions`] keeps every palm's region without the landmark check.

use candle_core::Device;
use image::RgbImage;

use super::graph::Graph;
use super::ssd::{self, AnchorOptions, Decoding};
use super::warp::{self, Letterbox};
use super::{DetectError, Detection};

/// palm_detection_lite.tflite, converted.
static PALM_LITE: &[u8] = include_bytes!("../../assets/detect/palm_detection_lite.safetensors");
/// hand_landmark_lite.tflite, converted.
static LANDMARK_LITE: &[u8] = include_bytes!("../../assets/detect/hand_landmark_lite.safetensors");
/// palm_detection_full.tflite, converted.
static PALM_FULL: &[u8] = include_bytes!("../../assets/detect/palm_detection_full.safetensors");
/// hand_landmark_full.tflite, converted.
static LANDMARK_FULL: &[u8] = include_bytes!("../../assets/detect/hand_landmark_full.safetensors");

/// Which pair of MediaPipe hand networks runs; both stages switch together, as MediaPipe's
/// `model_complexity` switches them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum HandModel {
    /// `model_complexity=0`: `palm_detection_lite` and `hand_landmark_lite` (smaller, faster).
    Lite,
    /// `model_complexity=1`, MediaPipe's default: `palm_detection_full` and `hand_landmark_full`.
    #[default]
    Full,
}

impl HandModel {
    /// The size's short name, as the CLI spells it (`lite`, `full`).
    pub const fn name(self) -> &'static str {
        match self {
            Self::Lite => "lite",
            Self::Full => "full",
        }
    }

    /// The palm detector's name (the TFLite file it came from).
    pub const fn palm_name(self) -> &'static str {
        match self {
            Self::Lite => "palm_detection_lite",
            Self::Full => "palm_detection_full",
        }
    }

    /// The landmark model's name (the TFLite file it came from).
    pub const fn landmark_name(self) -> &'static str {
        match self {
            Self::Lite => "hand_landmark_lite",
            Self::Full => "hand_landmark_full",
        }
    }

    /// The detector's name in ADetailer's `mediapipe_*` style, for the infotext of a fix.
    pub const fn adetailer_name(self) -> &'static str {
        match self {
            Self::Lite => "mediapipe_hands_lite",
            Self::Full => "mediapipe_hands_full",
        }
    }
}

/// The landmark model's square input side in pixels.
pub const LANDMARK_INPUT_SIZE: usize = 224;
/// `ThresholdingCalculator` of `HandLandmarkCpu`: the least presence score of a hand.
const PRESENCE_THRESHOLD: f32 = 0.5;

/// The palm model's square input side in pixels.
pub const INPUT_SIZE: usize = 192;

/// SsdAnchorsCalculator options of `PalmDetectionCpu` (fixed anchor size).
const ANCHORS: AnchorOptions = AnchorOptions {
    input_size: INPUT_SIZE,
    strides: &[8, 16, 16, 16],
    interpolated_scale_aspect_ratio: 1.0,
};

/// TensorsToDetectionsCalculator options of `PalmDetectionCpu`.
const DECODING: Decoding = Decoding {
    num_coords: 18,
    num_keypoints: 7,
    scale: INPUT_SIZE as f32,
};

/// The wrist-centre keypoint (`rotation_vector_start_keypoint_index`).
const WRIST: usize = 0;
/// The middle finger's MCP keypoint (`rotation_vector_end_keypoint_index`).
const MIDDLE_MCP: usize = 2;
/// `RectTransformationCalculator` of `PalmDetectionDetectionToRoi`: scale and shift.
const ROI_SCALE: f32 = 2.6;
const ROI_SHIFT_Y: f32 = -0.5;

/// Loads `model`'s palm network (parses the embedded asset).
///
/// # Errors
/// The embedded asset is broken (a build problem).
pub fn load(model: HandModel) -> Result<Graph, DetectError> {
    let bytes = match model {
        HandModel::Lite => PALM_LITE,
        HandModel::Full => PALM_FULL,
    };
    Graph::from_safetensors(bytes, model.palm_name(), &Device::Cpu)
}

/// Loads `model`'s hand landmark network (parses the embedded asset).
///
/// # Errors
/// The embedded asset is broken (a build problem).
pub fn load_landmarks(model: HandModel) -> Result<Graph, DetectError> {
    let bytes = match model {
        HandModel::Lite => LANDMARK_LITE,
        HandModel::Full => LANDMARK_FULL,
    };
    Graph::from_safetensors(bytes, model.landmark_name(), &Device::Cpu)
}

/// Both hand networks of one [`HandModel`], loaded.
pub struct HandModels {
    /// Which pair these are.
    pub model: HandModel,
    /// The palm detector.
    pub palm: Graph,
    /// The landmark model.
    pub landmarks: Graph,
}

impl HandModels {
    /// Loads both networks of `model`.
    ///
    /// # Errors
    /// An embedded asset is broken (a build problem).
    pub fn load(model: HandModel) -> Result<Self, DetectError> {
        Ok(Self {
            model,
            palm: load(model)?,
            landmarks: load_landmarks(model)?,
        })
    }
}

/// One palm, in [0, 1] coordinates of the image (letterbox removed), as MediaPipe reports it.
#[derive(Clone, Debug, PartialEq)]
pub struct Palm {
    /// Left edge.
    pub xmin: f32,
    /// Top edge.
    pub ymin: f32,
    /// Width.
    pub width: f32,
    /// Height.
    pub height: f32,
    /// Sigmoid score.
    pub score: f32,
    /// The 7 keypoints (x, y): wrist centre, then index, middle, ring and pinky MCPs, then two
    /// thumb joints.
    pub keypoints: Vec<(f32, f32)>,
}

/// A rotated region in [0, 1] coordinates of the image (MediaPipe's `NormalizedRect`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct HandRect {
    /// Centre x.
    pub x_center: f32,
    /// Centre y.
    pub y_center: f32,
    /// Width (before rotation).
    pub width: f32,
    /// Height (before rotation).
    pub height: f32,
    /// Clockwise rotation in radians, in [−π, π).
    pub rotation: f32,
}

impl HandRect {
    /// The axis-aligned box around the rotated region, in pixels of a `width`×`height` image.
    pub fn bounding_box(&self, width: u32, height: u32, score: f32) -> Detection {
        let (iw, ih) = (width as f32, height as f32);
        let (w, h) = (self.width * iw, self.height * ih);
        let (s, c) = self.rotation.sin_cos();
        let half_w = f32::midpoint(w * c.abs(), h * s.abs());
        let half_h = f32::midpoint(w * s.abs(), h * c.abs());
        let (cx, cy) = (self.x_center * iw, self.y_center * ih);
        Detection {
            x: cx - half_w,
            y: cy - half_h,
            width: 2.0 * half_w,
            height: 2.0 * half_h,
            score,
        }
    }
}

/// The model's input tensor for `image` (HWC, [0, 1]) and the letterbox it used.
pub fn input(image: &RgbImage) -> (Vec<f32>, Letterbox) {
    let letterbox = Letterbox::around(image.width(), image.height());
    (
        warp::warp_to_tensor(image, letterbox, INPUT_SIZE, 0.0, 1.0),
        letterbox,
    )
}

/// The network's raw outputs (regressors `[2016, 18]`, classificators `[2016]`, flattened).
///
/// # Errors
/// The network could not run.
pub fn raw_outputs(graph: &Graph, input: &[f32]) -> Result<(Vec<f32>, Vec<f32>), DetectError> {
    super::face_raw_outputs(graph, input)
}

/// The palm network's outputs on one picture, ready to decode at any threshold (the network
/// itself does not depend on it).
pub struct PalmScan {
    boxes: Vec<f32>,
    scores: Vec<f32>,
    letterbox: Letterbox,
    width: u32,
    height: u32,
}

/// Runs the palm network on `image`.
///
/// # Errors
/// The image is empty or the network could not run.
pub fn scan_palms(graph: &Graph, image: &RgbImage) -> Result<PalmScan, DetectError> {
    if image.width() == 0 || image.height() == 0 {
        return Err(DetectError::Image("the image is empty".into()));
    }
    let (input, letterbox) = input(image);
    let (boxes, scores) = raw_outputs(graph, &input)?;
    let anchors = ssd::anchors(&ANCHORS).len();
    if scores.len() != anchors || boxes.len() != anchors * DECODING.num_coords {
        return Err(DetectError::Model(format!(
            "{}: {} scores for {anchors} anchors",
            graph.source(),
            scores.len(),
        )));
    }
    Ok(PalmScan {
        boxes,
        scores,
        letterbox,
        width: image.width(),
        height: image.height(),
    })
}

impl PalmScan {
    /// The palms scoring at least `confidence`, best first, overlapping ones blended.
    pub fn palms(&self, confidence: f32) -> Vec<Palm> {
        let anchors = ssd::anchors(&ANCHORS);
        let found = ssd::decode(&self.boxes, &self.scores, DECODING, &anchors, confidence);
        let kept = ssd::weighted_nms(found, 0.3);
        // DetectionLetterboxRemovalCalculator: model [0, 1] → image [0, 1].
        let (w, h) = (f64::from(self.width), f64::from(self.height));
        let fx = |v: f32| (self.letterbox.image_x(f64::from(v)) / w) as f32;
        let fy = |v: f32| (self.letterbox.image_y(f64::from(v)) / h) as f32;
        kept.into_iter()
            .map(|b| {
                let (x0, y0) = (fx(b.xmin), fy(b.ymin));
                Palm {
                    xmin: x0,
                    ymin: y0,
                    width: fx(b.xmin + b.width) - x0,
                    height: fy(b.ymin + b.height) - y0,
                    score: b.score,
                    keypoints: b.keypoints.iter().map(|&(x, y)| (fx(x), fy(y))).collect(),
                }
            })
            .collect()
    }

    /// The hand regions of the palms scoring at least `confidence`, best first, at most
    /// `max_hands` when given (`ClipDetectionVectorSizeCalculator`), each with its palm.
    pub fn hand_regions(&self, confidence: f32, max_hands: Option<usize>) -> Vec<(Palm, HandRect)> {
        let mut palms = self.palms(confidence);
        if let Some(n) = max_hands {
            palms.truncate(n);
        }
        palms
            .into_iter()
            .map(|p| {
                let r = hand_rect(&p, self.width, self.height);
                (p, r)
            })
            .collect()
    }
}

/// The palms in `image` scoring at least `confidence`, best first, overlapping ones blended.
///
/// # Errors
/// The image is empty or the network could not run.
pub fn palms_with(graph: &Graph, image: &RgbImage, confidence: f32) -> Result<Vec<Palm>, DetectError> {
    Ok(scan_palms(graph, image)?.palms(confidence))
}

/// MediaPipe's angle normalisation into [−π, π).
fn normalize_radians(angle: f32) -> f32 {
    use std::f32::consts::PI;
    angle - 2.0 * PI * ((angle + PI) / (2.0 * PI)).floor()
}

/// `PalmDetectionDetectionToRoi`: the hand region of `palm` in a `width`×`height` image.
pub fn hand_rect(palm: &Palm, width: u32, height: u32) -> HandRect {
    let (iw, ih) = (width as f32, height as f32);
    // DetectionsToRectsCalculator: the box centre and size, turned so that wrist → middle finger
    // points up (target angle 90°).
    let (mut x_center, mut y_center) = (palm.xmin + palm.width / 2.0, palm.ymin + palm.height / 2.0);
    let (mut w, mut h) = (palm.width, palm.height);
    let rotation = match (palm.keypoints.get(WRIST), palm.keypoints.get(MIDDLE_MCP)) {
        (Some(&(x0, y0)), Some(&(x1, y1))) => {
            let (x0, y0, x1, y1) = (x0 * iw, y0 * ih, x1 * iw, y1 * ih);
            normalize_radians(std::f32::consts::FRAC_PI_2 - (-(y1 - y0)).atan2(x1 - x0))
        }
        _ => 0.0,
    };
    // RectTransformationCalculator: shift along the rotated y axis, square on the long side,
    // scale.
    if rotation == 0.0 {
        y_center += h * ROI_SHIFT_Y;
    } else {
        let (s, c) = rotation.sin_cos();
        x_center += -(ih * h * ROI_SHIFT_Y * s) / iw;
        y_center += (ih * h * ROI_SHIFT_Y * c) / ih;
    }
    let long_side = (w * iw).max(h * ih);
    (w, h) = (long_side / iw, long_side / ih);
    HandRect {
        x_center,
        y_center,
        width: w * ROI_SCALE,
        height: h * ROI_SCALE,
        rotation,
    }
}

/// The hand regions of the palms in `image` scoring at least `confidence`, best first, at most
/// `max_hands` when given, each with its palm ([`PalmScan::hand_regions`]).
///
/// # Errors
/// The image is empty or the network could not run.
pub fn hand_regions(
    palm: &Graph,
    image: &RgbImage,
    confidence: f32,
    max_hands: Option<usize>,
) -> Result<Vec<(Palm, HandRect)>, DetectError> {
    Ok(scan_palms(palm, image)?.hand_regions(confidence, max_hands))
}

/// The landmark model's look at one hand region.
#[derive(Clone, Debug, PartialEq)]
pub struct HandLandmarks {
    /// Presence score in [0, 1] (the model's sigmoid); a hand is there above 0.5.
    pub presence: f32,
    /// The 21 landmarks (x, y) in [0, 1] coordinates of the image.
    pub points: Vec<(f32, f32)>,
}

/// The rotated square that MediaPipe's ImageToTensorCalculator warps for `rect` (its
/// `keep_aspect_ratio` padding to the square model input), in pixels, and that padding
/// (horizontal, vertical) as fractions of the padded side.
fn landmark_roi(rect: &HandRect, width: u32, height: u32) -> (warp::RotatedRect, f32, f32) {
    let (mut w, mut h) = (rect.width * width as f32, rect.height * height as f32);
    // PadRoi with a square tensor (aspect ratio 1).
    let roi_aspect = h / w;
    let (mut hpad, mut vpad) = (0f32, 0f32);
    if 1.0 > roi_aspect {
        vpad = (1.0 - roi_aspect) / 2.0;
        h = w;
    } else {
        hpad = (1.0 - 1.0 / roi_aspect) / 2.0;
        w = h;
    }
    let roi = warp::RotatedRect {
        cx: f64::from(rect.x_center * width as f32),
        cy: f64::from(rect.y_center * height as f32),
        width: f64::from(w),
        height: f64::from(h),
        rotation: f64::from(rect.rotation),
    };
    (roi, hpad, vpad)
}

/// The landmark model's input tensor for the hand region `rect` of `image` (HWC, [0, 1]).
pub fn landmark_input(image: &RgbImage, rect: &HandRect) -> Vec<f32> {
    let (roi, _, _) = landmark_roi(rect, image.width(), image.height());
    warp::warp_rotated_to_tensor(image, roi, LANDMARK_INPUT_SIZE, 0.0, 1.0)
}

/// The landmark network's raw outputs on a prepared input: 63 landmark values (x, y, z in
/// input pixels) and the presence score.
///
/// # Errors
/// The network could not run.
pub fn landmark_raw_outputs(graph: &Graph, input: &[f32]) -> Result<(Vec<f32>, f32), DetectError> {
    let outs = graph.run(input)?;
    let (Some(points), Some(flag)) = (outs.first(), outs.get(1)) else {
        return Err(DetectError::Model(format!(
            "{}: expected 4 outputs, got {}",
            graph.source(),
            outs.len()
        )));
    };
    let points: Vec<f32> = points.flatten_all()?.to_vec1()?;
    let flag: Vec<f32> = flag.flatten_all()?.to_vec1()?;
    match (points.len(), flag.as_slice()) {
        (63, [p]) => Ok((points, *p)),
        (n, f) => Err(DetectError::Model(format!(
            "{}: {n} landmark values and {} presence values",
            graph.source(),
            f.len()
        ))),
    }
}

/// `HandLandmarkCpu` on one hand region: the warp, the network, and the landmarks taken back to
/// the image (`LandmarkLetterboxRemovalCalculator`, `LandmarkProjectionCalculator`).
///
/// # Errors
/// The network could not run.
pub fn landmarks_with(
    graph: &Graph,
    image: &RgbImage,
    rect: &HandRect,
) -> Result<HandLandmarks, DetectError> {
    let (_, hpad, vpad) = landmark_roi(rect, image.width(), image.height());
    let (raw, presence) = landmark_raw_outputs(graph, &landmark_input(image, rect))?;
    let size = LANDMARK_INPUT_SIZE as f32;
    let (s, c) = rect.rotation.sin_cos();
    let points = raw
        .chunks_exact(3)
        .map(|p| {
            let x = (p[0] / size - hpad) / (1.0 - 2.0 * hpad) - 0.5;
            let y = (p[1] / size - vpad) / (1.0 - 2.0 * vpad) - 0.5;
            (
                (c * x - s * y).mul_add(rect.width, rect.x_center),
                (s * x + c * y).mul_add(rect.height, rect.y_center),
            )
        })
        .collect();
    Ok(HandLandmarks { presence, points })
}

/// `AssociationNormRectCalculator` (min similarity 0.5) on one list: each region, in order,
/// replaces the earlier ones it overlaps by IoU > 0.5 (of the unrotated rectangles).
fn associate(regions: Vec<(Palm, HandRect)>) -> Vec<(Palm, HandRect)> {
    let iou = |a: &HandRect, b: &HandRect| {
        let x0 = (a.x_center - a.width / 2.0).max(b.x_center - b.width / 2.0);
        let x1 = (a.x_center + a.width / 2.0).min(b.x_center + b.width / 2.0);
        let y0 = (a.y_center - a.height / 2.0).max(b.y_center - b.height / 2.0);
        let y1 = (a.y_center + a.height / 2.0).min(b.y_center + b.height / 2.0);
        if x1 <= x0 || y1 <= y0 {
            return 0.0;
        }
        let inter = (x1 - x0) * (y1 - y0);
        inter / (a.width * a.height + b.width * b.height - inter)
    };
    let mut kept: Vec<(Palm, HandRect)> = Vec::with_capacity(regions.len());
    for (palm, rect) in regions {
        kept.retain(|(_, r)| iou(r, &rect) <= 0.5);
        kept.push((palm, rect));
    }
    kept
}

/// The box around `points` ([0, 1] coordinates) in pixels of a `width`×`height` image.
fn points_box(points: &[(f32, f32)], width: u32, height: u32, score: f32) -> Detection {
    let (mut x0, mut y0, mut x1, mut y1) = (f32::MAX, f32::MAX, f32::MIN, f32::MIN);
    for &(x, y) in points {
        (x0, y0, x1, y1) = (x0.min(x), y0.min(y), x1.max(x), y1.max(y));
    }
    let (w, h) = (width as f32, height as f32);
    Detection {
        x: x0 * w,
        y: y0 * h,
        width: (x1 - x0) * w,
        height: (y1 - y0) * h,
        score,
    }
}

/// Finds hands in `image` as MediaPipe Hands does on a still picture with its default model size
/// ([`HandModel::Full`]); see [`detect_hands_using`].
///
/// # Errors
/// The image is empty or a network could not run.
pub fn detect_hands(
    image: &RgbImage,
    confidence: f32,
    max_hands: Option<usize>,
) -> Result<Vec<Detection>, DetectError> {
    detect_hands_using(image, HandModel::default(), confidence, max_hands)
}

/// Finds hands in `image` with `model`'s networks as MediaPipe Hands does on a still picture:
/// the palms scoring at least `confidence` (MediaPipe's palm threshold, applied before
/// suppression), best first, at most `max_hands` when given; each palm's hand region checked by
/// the landmark model, and a hand whose presence is not above 0.5 dropped. Each detection is the
/// box around the hand's 21 landmarks, scored by its palm.
///
/// # Errors
/// The image is empty or a network could not run.
pub fn detect_hands_using(
    image: &RgbImage,
    model: HandModel,
    confidence: f32,
    max_hands: Option<usize>,
) -> Result<Vec<Detection>, DetectError> {
    if image.width() == 0 || image.height() == 0 {
        return Err(DetectError::Image("the image is empty".into()));
    }
    let models = HandModels::load(model)?;
    detect_hands_with(&models, image, confidence, max_hands)
}

/// [`detect_hands_using`] with the networks already loaded by [`HandModels::load`].
///
/// # Errors
/// The image is empty or a network could not run.
pub fn detect_hands_with(
    models: &HandModels,
    image: &RgbImage,
    confidence: f32,
    max_hands: Option<usize>,
) -> Result<Vec<Detection>, DetectError> {
    let regions = hand_regions(&models.palm, image, confidence, max_hands)?;
    hands_in_regions(&models.landmarks, image, regions)
}

/// The second half of [`detect_hands_with`]: the hand `regions` (from [`hand_regions`] or
/// [`PalmScan::hand_regions`], in that order) associated, each read by the `landmarks` network,
/// the hands present boxed and scored by their palms.
///
/// # Errors
/// The network could not run.
pub fn hands_in_regions(
    landmarks: &Graph,
    image: &RgbImage,
    regions: Vec<(Palm, HandRect)>,
) -> Result<Vec<Detection>, DetectError> {
    let (w, h) = image.dimensions();
    let mut out = Vec::new();
    for (palm, rect) in associate(regions) {
        let hand = landmarks_with(landmarks, image, &rect)?;
        if hand.presence > PRESENCE_THRESHOLD {
            out.push(points_box(&hand.points, w, h, palm.score));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anchors_match_the_palm_graph() {
        let a = ssd::anchors(&ANCHORS);
        assert_eq!(a.len(), 2016);
        // 24×24 cells of 2 anchors, then 12×12 cells of 6.
        assert_eq!(a[1], (0.5 / 24.0, 0.5 / 24.0));
        assert_eq!(a[1152], (0.5 / 12.0, 0.5 / 12.0));
        assert_eq!(a[1157], (0.5 / 12.0, 0.5 / 12.0));
    }

    #[test]
    fn both_model_sizes_load_with_the_graph_input_sizes() {
        for model in [HandModel::Lite, HandModel::Full] {
            let m = HandModels::load(model).expect("embedded assets load");
            assert_eq!(m.palm.input_hw(), (INPUT_SIZE, INPUT_SIZE), "{model:?}");
            assert_eq!(
                m.landmarks.input_hw(),
                (LANDMARK_INPUT_SIZE, LANDMARK_INPUT_SIZE),
                "{model:?}"
            );
            assert_eq!(m.palm.source(), format!("{}.tflite", model.palm_name()));
            assert_eq!(m.landmarks.source(), format!("{}.tflite", model.landmark_name()));
        }
        assert_eq!(HandModel::default(), HandModel::Full, "MediaPipe's default size");
    }

    #[test]
    fn the_fix_infotext_names_the_default_hand_model() {
        // Fix hands runs `detect_hands`, i.e. the default size; ADetailer's model key says so.
        assert_eq!(
            crate::infotext::adetailer::model_name(crate::request::FixTarget::Hands),
            HandModel::default().adetailer_name()
        );
        assert_ne!(HandModel::Lite.adetailer_name(), HandModel::Full.adetailer_name());
    }

    #[test]
    fn an_upright_palm_grows_into_a_square_above_it() {
        // Wrist below the middle finger: no rotation; the region moves up by half the palm
        // height and becomes a 2.6× square of the long side.
        let palm = Palm {
            xmin: 0.4,
            ymin: 0.5,
            width: 0.1,
            height: 0.2,
            score: 0.9,
            keypoints: vec![(0.45, 0.7), (0.0, 0.0), (0.45, 0.5)],
        };
        let r = hand_rect(&palm, 200, 100);
        assert!(r.rotation.abs() < 1e-6);
        assert!((r.x_center - 0.45).abs() < 1e-6 && (r.y_center - 0.5).abs() < 1e-6);
        // Long side: max(0.1·200, 0.2·100) = 20 px.
        assert!((r.width - 20.0 / 200.0 * 2.6).abs() < 1e-6);
        assert!((r.height - 20.0 / 100.0 * 2.6).abs() < 1e-6);
        let b = r.bounding_box(200, 100, 0.9);
        assert!((b.width - 52.0).abs() < 1e-4 && (b.height - 52.0).abs() < 1e-4);
        // Fingers pointing right: rotated by +90°, shifted right; the box stays 52 px square.
        let right = Palm {
            keypoints: vec![(0.4, 0.6), (0.0, 0.0), (0.5, 0.6)],
            ..palm
        };
        let r = hand_rect(&right, 200, 100);
        assert!((r.rotation - std::f32::consts::FRAC_PI_2).abs() < 1e-6);
        assert!((r.x_center - (0.45 + 10.0 / 200.0)).abs() < 1e-6);
        let b = r.bounding_box(200, 100, 0.9);
        assert!((b.width - 52.0).abs() < 1e-3 && (b.height - 52.0).abs() < 1e-3);
    }
}
