//! Face detection parity with MediaPipe 0.10.14 (references: tests/fixtures/make_detect_fixtures.py,
//! committed in tests/fixtures/ref/detect/): the input warp, the raw network outputs against the
//! TFLite interpreter, and the final boxes and scores on real photos.

use std::path::PathBuf;

use easel::detect::hands::HandModel;
use easel::detect::{self, FaceModel};
use serde_json::Value;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ref/detect")
}

fn refs() -> Value {
    let text = std::fs::read_to_string(dir().join("faces.json")).expect("faces.json");
    serde_json::from_str(&text).expect("faces.json parses")
}

fn rgb(name: &str) -> image::RgbImage {
    image::open(dir().join(name)).expect("fixture image").to_rgb8()
}

fn model(name: &str) -> FaceModel {
    if name == "full" {
        FaceModel::Full
    } else {
        FaceModel::Short
    }
}

fn f(v: &Value) -> f32 {
    v.as_f64().expect("number") as f32
}

#[test]
fn the_input_warp_matches_opencv() {
    for m in ["short", "full"] {
        let expected = rgb(&format!("pair_input_{m}.png"));
        let (input, _) = detect::face_input(&rgb("pair.png"), model(m));
        let mut worst = 0i32;
        let mut differing = 0usize;
        for (v, &e) in input.iter().zip(expected.as_raw()) {
            let got = ((v + 1.0) * 127.5).round() as i32;
            let d = (got - i32::from(e)).abs();
            worst = worst.max(d);
            differing += usize::from(d != 0);
        }
        eprintln!("{m}: input warp differs from OpenCV in {differing} values, by at most {worst}");
        // The reference is pip's OpenCV 5.1, not the OpenCV MediaPipe links in; both are
        // fixed-point bilinear, a few values round the other way.
        assert!(
            worst <= 1 && differing * 100 <= input.len(),
            "{m}: {differing} values, worst {worst}"
        );
    }
}

#[test]
fn the_network_matches_the_tflite_interpreter() {
    let r = refs();
    for m in ["short", "full"] {
        let raw = &r["raw"][m];
        let png = rgb(raw["input"].as_str().expect("input name"));
        let input: Vec<f32> = png
            .as_raw()
            .iter()
            .map(|&v| f32::from(v).mul_add(2.0 / 255.0, -1.0))
            .collect();
        let graph = model(m).load().expect("model loads");
        let (boxes, scores) = detect::face_raw_outputs(&graph, &input).expect("network runs");
        let want: Vec<f32> = raw["scores"].as_array().expect("scores").iter().map(f).collect();
        assert_eq!(scores.len(), want.len());
        let mut worst_score = 0f32;
        let mut largest = 0f32;
        for (a, b) in scores.iter().zip(&want) {
            worst_score = worst_score.max((a - b).abs());
            largest = largest.max(b.abs());
        }
        let mut worst_box = 0f32;
        let tops = raw["top"].as_array().expect("top");
        for (i, row) in tops.iter().zip(raw["top_boxes"].as_array().expect("boxes")) {
            let i = i.as_u64().expect("index") as usize;
            for (k, v) in row.as_array().expect("row").iter().enumerate() {
                worst_box = worst_box.max((boxes[i * 16 + k] - f(v)).abs());
            }
        }
        eprintln!(
            "{m}: raw logits (|logit| up to {largest:.1}) max |diff| {worst_score:.2e}, raw box regressors (top 64) max |diff| {worst_box:.2e}"
        );
        assert!(
            worst_score < 1e-2 && worst_box < 1e-2,
            "{m}: {worst_score} {worst_box}"
        );
    }
}

fn iou(a: [f32; 4], b: [f32; 4]) -> f32 {
    let x0 = a[0].max(b[0]);
    let y0 = a[1].max(b[1]);
    let x1 = (a[0] + a[2]).min(b[0] + b[2]);
    let y1 = (a[1] + a[3]).min(b[1] + b[3]);
    let inter = (x1 - x0).max(0.0) * (y1 - y0).max(0.0);
    inter / (a[2] * a[3] + b[2] * b[3] - inter)
}

#[test]
fn faces_match_mediapipe_on_photos() {
    let r = refs();
    let mut worst_iou = 1f32;
    let mut worst_score = 0f32;
    let mut boxes = 0;
    for case in r["cases"].as_array().expect("cases") {
        let name = case["image"].as_str().expect("image");
        let m = model(case["model"].as_str().expect("model"));
        let confidence = f(&case["confidence"]);
        let img = rgb(name);
        let (w, h) = (img.width() as f32, img.height() as f32);
        let got = detect::detect_faces(&img, m, confidence).expect("detection runs");
        let want = case["detections"].as_array().expect("detections");
        assert_eq!(got.len(), want.len(), "{name} {m:?} @{confidence}: count");
        for (g, e) in got.iter().zip(want) {
            let e_box = [
                f(&e["xmin"]) * w,
                f(&e["ymin"]) * h,
                f(&e["width"]) * w,
                f(&e["height"]) * h,
            ];
            let o = iou([g.x, g.y, g.width, g.height], e_box);
            worst_iou = worst_iou.min(o);
            worst_score = worst_score.max((g.score - f(&e["score"])).abs());
            boxes += 1;
            assert!(
                o >= 0.95,
                "{name} {m:?} @{confidence}: IoU {o} ({g:?} vs {e_box:?})"
            );
        }
    }
    eprintln!("{boxes} faces: worst IoU {worst_iou:.5}, worst score |diff| {worst_score:.2e}");
    assert!(worst_score < 1e-3, "score diff {worst_score}");
}

#[test]
fn the_cli_prints_the_contract_json_and_writes_a_mask() {
    let out_dir = tempfile::tempdir().expect("temp dir");
    let mask = out_dir.path().join("mask.png");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_easel"))
        .args(["detect", "faces"])
        .arg(dir().join("pair.png"))
        .args([
            "--model",
            "full",
            "--confidence",
            "0.5",
            "--json",
            "--dilate",
            "4",
            "--mask",
        ])
        .arg(&mask)
        .output()
        .expect("easel runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    assert_eq!(
        (v["width"].as_u64(), v["height"].as_u64()),
        (Some(300), Some(150))
    );
    let dets = v["detections"].as_array().expect("detections");
    assert_eq!(dets.len(), 2);
    for key in ["x", "y", "width", "height", "score"] {
        assert!(dets[0][key].is_f64(), "{key}");
    }
    let m = image::open(&mask).expect("mask written").to_luma8();
    assert_eq!(m.dimensions(), (300, 150));
    let (x, y) = (f(&dets[0]["x"]) as u32, f(&dets[0]["y"]) as u32);
    assert_eq!(m.get_pixel(x + 2, y + 2)[0], 255);
    assert_eq!(m.get_pixel(0, 149)[0], 0);
}

fn people_refs() -> Value {
    let text = std::fs::read_to_string(dir().join("people.json")).expect("people.json");
    serde_json::from_str(&text).expect("people.json parses")
}

/// A 16-bit reference mask as probabilities.
fn probs16(name: &str) -> Vec<f32> {
    let img = image::open(dir().join(name)).expect("reference mask").to_luma16();
    img.as_raw().iter().map(|&v| f32::from(v) / 65535.0).collect()
}

#[test]
fn the_segmentation_network_matches_tflite() {
    let r = people_refs();
    let png = rgb(r["raw_input"].as_str().expect("input name"));
    let input: Vec<f32> = png.as_raw().iter().map(|&v| f32::from(v) / 255.0).collect();
    // Our stretch warp gives the same tensor as OpenCV's warpPerspective.
    let ours = detect::segment::input(&rgb("astronaut.png"));
    let warp_worst = ours
        .iter()
        .zip(&input)
        .map(|(a, b)| ((a - b) * 255.0).abs().round() as i32)
        .max()
        .unwrap_or(0);
    let graph = detect::segment::load().expect("model loads");
    // The ai-edge-litert interpreter on the model cut before the custom transposed conv.
    let cut = graph
        .run_to(&input, r["cut_tensor"].as_i64().expect("id"))
        .expect("runs")
        .flatten_all()
        .expect("flat")
        .to_vec1::<f32>()
        .expect("values");
    let step = r["cut_step"].as_u64().expect("step") as usize;
    let want: Vec<f32> = r["cut_values"]
        .as_array()
        .expect("values")
        .iter()
        .map(f)
        .collect();
    assert_eq!(cut.len().div_ceil(step), want.len());
    let cut_worst = cut
        .iter()
        .step_by(step)
        .zip(&want)
        .map(|(a, b)| (a - b).abs() / b.abs().max(1.0))
        .fold(0f32, f32::max);
    // The whole network (custom op included) through MediaPipe's own XNNPACK inference.
    let out = detect::segment::raw_output(&graph, &input).expect("runs");
    let want = probs16(r["raw_output"].as_str().expect("name"));
    let out_worst = out
        .iter()
        .zip(&want)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    eprintln!(
        "selfie: input warp worst {warp_worst}/255; tensor {} max rel diff {cut_worst:.2e} vs TFLite; output max |diff| {out_worst:.2e} vs MediaPipe",
        r["cut_tensor"]
    );
    assert!(warp_worst <= 1, "warp {warp_worst}");
    assert!(cut_worst < 1e-3, "cut {cut_worst}");
    assert!(out_worst < 2e-3, "output {out_worst}");
}

#[test]
fn person_masks_match_mediapipe_on_photos() {
    let r = people_refs();
    let graph = detect::segment::load().expect("model loads");
    for (name, p) in r["photos"].as_object().expect("photos") {
        let got = detect::segment::segment_people_with(&graph, &rgb(name)).expect("runs");
        let want = probs16(p["mask"].as_str().expect("mask"));
        assert_eq!(got.probs.len(), want.len());
        let worst = got
            .probs
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        let (mut inter, mut union) = (0usize, 0usize);
        for (a, b) in got.probs.iter().zip(&want) {
            inter += usize::from(*a >= 0.5 && *b >= 0.5);
            union += usize::from(*a >= 0.5 || *b >= 0.5);
        }
        let iou = if union == 0 {
            1.0
        } else {
            inter as f32 / union as f32
        };
        eprintln!("{name}: mask IoU @0.5 {iou:.5}, max |p diff| {worst:.2e}");
        assert!(iou > 0.999, "{name}: IoU {iou}");
        assert!(worst < 1e-3, "{name}: {worst}");
    }
}

#[test]
fn the_cli_finds_people_and_writes_the_segmentation() {
    let out_dir = tempfile::tempdir().expect("temp dir");
    let mask = out_dir.path().join("people.png");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_easel"))
        .args(["detect", "people"])
        .arg(dir().join("hopper.png"))
        .args(["--json", "--mask"])
        .arg(&mask)
        .output()
        .expect("easel runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    assert_eq!(
        (v["width"].as_u64(), v["height"].as_u64()),
        (Some(136), Some(160))
    );
    let dets = v["detections"].as_array().expect("detections");
    assert_eq!(dets.len(), 1);
    let m = image::open(&mask).expect("mask written").to_luma8();
    assert_eq!(m.dimensions(), (136, 160));
    let want = probs16("people_hopper.png");
    let white = m.pixels().filter(|p| p[0] == 255).count();
    let want_white = want.iter().filter(|&&p| p >= 0.5).count();
    assert!(
        white.abs_diff(want_white) * 100 < want_white,
        "{white} vs {want_white}"
    );
    let (x, y) = (f(&dets[0]["x"]), f(&dets[0]["y"]));
    let (w, h) = (f(&dets[0]["width"]), f(&dets[0]["height"]));
    assert!(x >= 0.0 && y >= 0.0 && x + w <= 136.0 && y + h <= 160.0 && w * h > 1000.0);
}

fn hand_refs() -> Value {
    let text = std::fs::read_to_string(dir().join("hands.json")).expect("hands.json");
    serde_json::from_str(&text).expect("hands.json parses")
}

/// The references of one hand model size: the lite ones at the top level of hands.json, the
/// full ones under `full`.
fn hand_refs_of(model: HandModel) -> Value {
    let mut r = hand_refs();
    let r = match model {
        HandModel::Lite => r,
        HandModel::Full => r["full"].take(),
    };
    assert_eq!(
        r["models"],
        serde_json::json!([model.palm_name(), model.landmark_name()]),
        "hands.json is made with these models"
    );
    r
}

#[test]
fn the_palm_network_matches_the_tflite_interpreter() {
    palm_network_matches_the_tflite_interpreter(HandModel::Lite);
}

#[test]
fn the_full_palm_network_matches_the_tflite_interpreter() {
    palm_network_matches_the_tflite_interpreter(HandModel::Full);
}

fn palm_network_matches_the_tflite_interpreter(model: HandModel) {
    let r = hand_refs_of(model);
    let raw = &r["raw"];
    let png = rgb(raw["input"].as_str().expect("input name"));
    // Our warp of the picture is OpenCV's (a value may round the other way).
    let (ours, _) = detect::hands::input(&rgb("hands_cell.png"));
    let warp_worst = ours
        .iter()
        .zip(png.as_raw())
        .map(|(a, &b)| ((a * 255.0).round() as i32 - i32::from(b)).abs())
        .max()
        .unwrap_or(0);
    let input: Vec<f32> = png.as_raw().iter().map(|&v| f32::from(v) / 255.0).collect();
    let graph = detect::hands::load(model).expect("model loads");
    let (boxes, scores) = detect::hands::raw_outputs(&graph, &input).expect("network runs");
    let want: Vec<f32> = raw["scores"].as_array().expect("scores").iter().map(f).collect();
    assert_eq!(scores.len(), 2016);
    assert_eq!(scores.len(), want.len());
    let worst_score = scores
        .iter()
        .zip(&want)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    let mut worst_box = 0f32;
    let tops = raw["top"].as_array().expect("top");
    for (i, row) in tops.iter().zip(raw["top_boxes"].as_array().expect("boxes")) {
        let i = i.as_u64().expect("index") as usize;
        for (k, v) in row.as_array().expect("row").iter().enumerate() {
            worst_box = worst_box.max((boxes[i * 18 + k] - f(v)).abs());
        }
    }
    eprintln!(
        "{} palm: input warp worst {warp_worst}/255; raw logits max |diff| {worst_score:.2e}, box and keypoint regressors (top 32) max |diff| {worst_box:.2e}",
        model.name()
    );
    assert!(warp_worst <= 1, "warp {warp_worst}");
    assert!(
        worst_score < 1e-2 && worst_box < 1e-2,
        "{worst_score} {worst_box}"
    );
}

/// The axis-aligned box around a MediaPipe `NormalizedRect`, in pixels.
fn rect_box(r: &Value, w: f32, h: f32) -> [f32; 4] {
    let (rw, rh) = (f(&r["width"]) * w, f(&r["height"]) * h);
    let (s, c) = f(&r["rotation"]).sin_cos();
    let (hw, hh) = (
        f32::midpoint(rw * c.abs(), rh * s.abs()),
        f32::midpoint(rw * s.abs(), rh * c.abs()),
    );
    let (cx, cy) = (f(&r["x_center"]) * w, f(&r["y_center"]) * h);
    [cx - hw, cy - hh, 2.0 * hw, 2.0 * hh]
}

#[test]
fn hands_match_mediapipe_on_pictures() {
    hands_match_mediapipe(HandModel::Lite, 3);
}

#[test]
fn full_model_hands_match_mediapipe_on_pictures() {
    hands_match_mediapipe(HandModel::Full, 5);
}

/// Palms, hand regions and hands against MediaPipe Hands with `model` on every reference
/// picture and threshold (the palm network runs once a picture); the references hold at least
/// `least_hands` hands.
fn hands_match_mediapipe(model: HandModel, least_hands: usize) {
    let r = hand_refs_of(model);
    let models = detect::hands::HandModels::load(model).expect("models load");
    let (mut worst_palm, mut worst_hand, mut worst_score, mut worst_kp, mut worst_rot) =
        (1f32, 1f32, 0f32, 0f32, 0f32);
    let mut hands = 0;
    let mut scans = std::collections::HashMap::new();
    let mut found = HandStats::default();
    for case in r["cases"].as_array().expect("cases") {
        let name = case["image"].as_str().expect("image");
        let confidence = f(&case["confidence"]);
        let img = rgb(name);
        let (w, h) = img.dimensions();
        let (wf, hf) = (w as f32, h as f32);
        let want = case["palms"].as_array().expect("palms");
        let rects = case["hand_rects"].as_array().expect("rects");
        let scan = scans
            .entry(name)
            .or_insert_with(|| detect::hands::scan_palms(&models.palm, &img).expect("palm network"));
        let regions = scan.hand_regions(confidence, None);
        assert_eq!(regions.len(), want.len(), "{name} @{confidence}: palm count");
        assert_eq!(regions.len(), rects.len(), "{name} @{confidence}: region count");
        for ((p, rect), (e, er)) in regions.iter().zip(want.iter().zip(rects)) {
            let d = rect.bounding_box(w, h, p.score);
            let o = iou(
                [p.xmin * wf, p.ymin * hf, p.width * wf, p.height * hf],
                [
                    f(&e["xmin"]) * wf,
                    f(&e["ymin"]) * hf,
                    f(&e["width"]) * wf,
                    f(&e["height"]) * hf,
                ],
            );
            worst_palm = worst_palm.min(o);
            worst_score = worst_score.max((p.score - f(&e["score"])).abs());
            for (k, ek) in p.keypoints.iter().zip(e["keypoints"].as_array().expect("kps")) {
                let dx = (k.0 - f(&ek[0])) * wf;
                let dy = (k.1 - f(&ek[1])) * hf;
                worst_kp = worst_kp.max(dx.abs().max(dy.abs()));
            }
            worst_rot = worst_rot.max((rect.rotation - f(&er["rotation"])).abs());
            let oh = iou([d.x, d.y, d.width, d.height], rect_box(er, wf, hf));
            worst_hand = worst_hand.min(oh);
            hands += 1;
            assert!(
                o >= 0.95 && oh >= 0.95,
                "{name} @{confidence}: palm IoU {o}, hand IoU {oh} ({d:?})"
            );
        }
        let got = detect::hands::hands_in_regions(&models.landmarks, &img, regions).expect("hands");
        found.compare(&got, case);
    }
    eprintln!(
        "{} {hands} palms: worst palm IoU {worst_palm:.5}, worst hand-region box IoU {worst_hand:.5}, worst score |diff| {worst_score:.2e}, keypoints within {worst_kp:.3} px, rotation within {worst_rot:.2e} rad",
        model.name()
    );
    eprintln!(
        "{} {} hands: worst landmark-box IoU {:.5}, box edges within {:.3} px, worst score |diff| {:.2e}",
        model.name(),
        found.count,
        found.worst_iou,
        found.worst_edge,
        found.worst_score
    );
    assert!(hands >= 6, "the references have palms");
    assert!(worst_score < 1e-3, "score diff {worst_score}");
    assert!(worst_kp < 0.5 && worst_rot < 1e-2, "{worst_kp} {worst_rot}");
    assert!(found.count >= least_hands, "the references have hands");
    assert!(found.worst_score < 1e-3, "hand score diff {}", found.worst_score);
}

/// The worst agreement of hand boxes with MediaPipe's, over the cases compared so far.
struct HandStats {
    count: usize,
    worst_iou: f32,
    worst_edge: f32,
    worst_score: f32,
}

impl Default for HandStats {
    fn default() -> Self {
        Self {
            count: 0,
            worst_iou: 1.0,
            worst_edge: 0.0,
            worst_score: 0.0,
        }
    }
}

impl HandStats {
    /// Compares `got` with the case's hands (the boxes around MediaPipe's landmarks).
    fn compare(&mut self, got: &[detect::Detection], case: &Value) {
        let name = case["image"].as_str().expect("image");
        let confidence = f(&case["confidence"]);
        let (w, h) = (f(&case["width"]), f(&case["height"]));
        let want = case["hands"].as_array().expect("hands");
        assert_eq!(got.len(), want.len(), "{name} @{confidence}: hand count");
        for (g, e) in got.iter().zip(want) {
            let e_box = [
                f(&e["xmin"]) * w,
                f(&e["ymin"]) * h,
                f(&e["width"]) * w,
                f(&e["height"]) * h,
            ];
            let o = iou([g.x, g.y, g.width, g.height], e_box);
            self.worst_iou = self.worst_iou.min(o);
            self.worst_score = self.worst_score.max((g.score - f(&e["score"])).abs());
            // The box's corners against the reference landmarks' extremes.
            self.worst_edge = self.worst_edge.max(
                (g.x - e_box[0])
                    .abs()
                    .max((g.y - e_box[1]).abs())
                    .max((g.x + g.width - e_box[0] - e_box[2]).abs())
                    .max((g.y + g.height - e_box[1] - e_box[3]).abs()),
            );
            self.count += 1;
            assert!(o >= 0.95, "{name} @{confidence}: IoU {o} ({g:?} vs {e_box:?})");
        }
    }
}

/// The best hand MediaPipe Hands finds with `model` in `image` at confidence 0.5.
fn best_reference_hand(model: HandModel, image: &str) -> Value {
    let mut r = hand_refs_of(model);
    r["cases"]
        .as_array_mut()
        .expect("cases")
        .iter_mut()
        .find(|c| c["image"] == image && f(&c["confidence"]) == 0.5)
        .expect("the picture's case")["hands"][0]
        .take()
}

#[test]
fn the_cli_finds_hands_and_writes_their_boxes() {
    let out_dir = tempfile::tempdir().expect("temp dir");
    let run = |name: &str, extra: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_easel"))
            .args(["detect", "hands"])
            .arg(dir().join(name))
            .args(["--json", "--max-hands", "1"])
            .args(extra)
            .output()
            .expect("easel runs");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let v: Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
        v
    };
    // --model lite: MediaPipe's lite models (two palms here, --max-hands keeps the best).
    let v = run("hands_horse2.png", &["--model", "lite"]);
    assert_eq!((v["width"].as_u64(), v["height"].as_u64()), (Some(96), Some(79)));
    let dets = v["detections"].as_array().expect("detections");
    assert_eq!(dets.len(), 1, "--max-hands 1 keeps the best palm");
    let best = best_reference_hand(HandModel::Lite, "hands_horse2.png");
    assert!((f(&dets[0]["score"]) - f(&best["score"])).abs() < 1e-3);
    // The default: MediaPipe's full models, as its Python `Hands()` runs them.
    let mask = out_dir.path().join("hands.png");
    let mask_arg = mask.to_str().expect("utf-8 path");
    let v = run("hands_hopper_small.png", &["--dilate", "2", "--mask", mask_arg]);
    assert_eq!((v["width"].as_u64(), v["height"].as_u64()), (Some(96), Some(112)));
    let dets = v["detections"].as_array().expect("detections");
    assert_eq!(dets.len(), 1, "{v}");
    let best = best_reference_hand(HandModel::Full, "hands_hopper_small.png");
    assert!((f(&dets[0]["score"]) - f(&best["score"])).abs() < 1e-3);
    let m = image::open(&mask).expect("mask written").to_luma8();
    assert_eq!(m.dimensions(), (96, 112));
    let (x, y) = (f(&dets[0]["x"]), f(&dets[0]["y"]));
    let (w, h) = (f(&dets[0]["width"]), f(&dets[0]["height"]));
    assert_eq!(m.get_pixel((x + w / 2.0) as u32, (y + h / 2.0) as u32)[0], 255);
    assert_eq!(m.get_pixel(0, 0)[0], 0);
    let white = m.pixels().filter(|p| p[0] == 255).count() as f32;
    // The box grown by 2 px, clipped to the picture.
    let x1 = (x + w + 2.0).min(96.0);
    let y1 = (y + h + 2.0).min(112.0);
    let expect = (x1 - (x - 2.0).max(0.0)) * (y1 - (y - 2.0).max(0.0));
    assert!((white - expect).abs() < 2.0 * (x1 + y1), "{white} vs {expect}");
}

#[test]
fn bad_hand_requests_exit_2_with_a_message() {
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_easel"))
            .args(args)
            .output()
            .expect("easel runs")
    };
    let missing = dir().join("no_such_picture.png");
    let out = run(&["detect", "hands", missing.to_str().expect("utf-8 path"), "--json"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(!String::from_utf8_lossy(&out.stderr).trim().is_empty());
    let horse = dir().join("hands_horse.png");
    let horse = horse.to_str().expect("utf-8 path");
    for (extra, needle) in [
        (["--max-hands", "0"], "--max-hands"),
        (["--confidence", "1.5"], "--confidence"),
        (["--model", "short"], "--model short is a face model"),
    ] {
        let mut args = vec!["detect", "hands", horse];
        args.extend(extra);
        let out = run(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
    }
    // A hand model name for faces, any model for people.
    for (what, model, needle) in [
        ("faces", "lite", "--model lite is a hand model"),
        ("people", "full", "--model does not apply to people"),
    ] {
        let out = run(&["detect", what, horse, "--model", model]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{what} {model}: {err}");
        assert!(err.contains(needle), "{what} {model}: {err}");
    }
}

#[test]
fn the_hand_landmark_network_matches_the_tflite_interpreter() {
    hand_landmark_network_matches_the_tflite_interpreter(HandModel::Lite);
}

#[test]
fn the_full_hand_landmark_network_matches_the_tflite_interpreter() {
    hand_landmark_network_matches_the_tflite_interpreter(HandModel::Full);
}

fn hand_landmark_network_matches_the_tflite_interpreter(model: HandModel) {
    let r = hand_refs_of(model);
    let raw = &r["raw_landmarks"];
    let png = rgb(raw["input"].as_str().expect("input name"));
    let e = &raw["rect"];
    let rect = detect::hands::HandRect {
        x_center: f(&e["x_center"]),
        y_center: f(&e["y_center"]),
        width: f(&e["width"]),
        height: f(&e["height"]),
        rotation: f(&e["rotation"]),
    };
    // Our warp of the rotated hand region is OpenCV's warpPerspective with replicated edges.
    let ours = detect::hands::landmark_input(&rgb(raw["image"].as_str().expect("image")), &rect);
    let (mut warp_worst, mut differing) = (0i32, 0usize);
    for (a, &b) in ours.iter().zip(png.as_raw()) {
        let d = ((a * 255.0).round() as i32 - i32::from(b)).abs();
        warp_worst = warp_worst.max(d);
        differing += usize::from(d != 0);
    }
    let input: Vec<f32> = png.as_raw().iter().map(|&v| f32::from(v) / 255.0).collect();
    let graph = detect::hands::load_landmarks(model).expect("model loads");
    let (points, presence) = detect::hands::landmark_raw_outputs(&graph, &input).expect("runs");
    let want: Vec<f32> = raw["landmarks"]
        .as_array()
        .expect("landmarks")
        .iter()
        .map(f)
        .collect();
    assert_eq!(points.len(), want.len());
    let worst = points
        .iter()
        .zip(&want)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    let presence_diff = (presence - f(&raw["presence"])).abs();
    eprintln!(
        "{} hand landmarks: input warp differs in {differing} values, by at most {warp_worst}/255; landmarks max |diff| {worst:.2e} px of 224, presence |diff| {presence_diff:.2e}",
        model.name()
    );
    assert!(
        warp_worst <= 1 && differing * 100 <= ours.len(),
        "warp {differing} values, worst {warp_worst}"
    );
    assert!(worst < 0.05 && presence_diff < 1e-3, "{worst} {presence_diff}");
}
