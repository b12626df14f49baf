//! MediaPipe's SSD post-processing: anchors (SsdAnchorsCalculator), box decoding and score
//! sigmoid (TensorsToDetectionsCalculator), weighted non-max suppression (NonMaxSuppressionCalculator).

/// SsdAnchorsCalculator options, as the face graphs of MediaPipe 0.10.14 set them.
#[derive(Clone, Debug)]
pub struct AnchorOptions {
    /// Model input side in pixels.
    pub input_size: usize,
    /// One stride per layer; consecutive equal strides share a feature map.
    pub strides: &'static [usize],
    /// `interpolated_scale_aspect_ratio`: > 0 adds one more anchor per cell.
    pub interpolated_scale_aspect_ratio: f32,
}

/// Anchor centres (x, y) in [0, 1]; `fixed_anchor_size: true` makes every anchor 1×1.
pub fn anchors(o: &AnchorOptions) -> Vec<(f32, f32)> {
    // aspect_ratios: [1.0]; anchor_offset_x/y: 0.5; reduce_boxes_in_lowest_layer: false.
    let mut out = Vec::new();
    let mut layer = 0;
    while layer < o.strides.len() {
        let mut per_cell = 0;
        let mut last = layer;
        while last < o.strides.len() && o.strides[last] == o.strides[layer] {
            per_cell += 1;
            if o.interpolated_scale_aspect_ratio > 0.0 {
                per_cell += 1;
            }
            last += 1;
        }
        let stride = o.strides[layer];
        let fm = o.input_size.div_ceil(stride);
        for y in 0..fm {
            for x in 0..fm {
                let cx = (x as f32 + 0.5) / fm as f32;
                let cy = (y as f32 + 0.5) / fm as f32;
                out.extend(std::iter::repeat_n((cx, cy), per_cell));
            }
        }
        layer = last;
    }
    out
}

/// A box in [0, 1] coordinates of the model input, with its score and keypoints.
#[derive(Clone, Debug, PartialEq)]
pub struct RelBox {
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
    /// Keypoints (x, y), in the model's order.
    pub keypoints: Vec<(f32, f32)>,
}

/// How to read one anchor's row of regressors (TensorsToDetectionsCalculator options).
#[derive(Clone, Copy, Debug)]
pub struct Decoding {
    /// `num_coords`: values per anchor.
    pub num_coords: usize,
    /// `num_keypoints` (x, y pairs after the 4 box values).
    pub num_keypoints: usize,
    /// `x_scale` = `y_scale` = `w_scale` = `h_scale` (the input size).
    pub scale: f32,
}

/// TensorsToDetectionsCalculator: `reverse_output_order` boxes (x, y, w, h first) and keypoints
/// (x, y), divided by `scale`, around fixed-size anchors; score = sigmoid(clamp(raw, ±100));
/// boxes scoring below `threshold` are dropped.
pub fn decode(
    raw_boxes: &[f32],
    raw_scores: &[f32],
    d: Decoding,
    anchors: &[(f32, f32)],
    threshold: f32,
) -> Vec<RelBox> {
    let (num_coords, scale) = (d.num_coords, d.scale);
    let mut out = Vec::new();
    for (i, &(ax, ay)) in anchors.iter().enumerate() {
        let s = raw_scores[i].clamp(-100.0, 100.0);
        let score = 1.0 / (1.0 + (-s).exp());
        if score < threshold {
            continue;
        }
        let r = &raw_boxes[i * num_coords..i * num_coords + 4];
        let xc = r[0] / scale + ax;
        let yc = r[1] / scale + ay;
        let w = r[2] / scale;
        let h = r[3] / scale;
        let (xmin, ymin) = (xc - w / 2.0, yc - h / 2.0);
        let (xmax, ymax) = (xc + w / 2.0, yc + h / 2.0);
        let keypoints = (0..d.num_keypoints)
            .map(|k| {
                let o = i * num_coords + 4 + k * 2;
                (raw_boxes[o] / scale + ax, raw_boxes[o + 1] / scale + ay)
            })
            .collect();
        out.push(RelBox {
            xmin,
            ymin,
            width: xmax - xmin,
            height: ymax - ymin,
            score,
            keypoints,
        });
    }
    out
}

fn iou(a: &RelBox, b: &RelBox) -> f32 {
    let x0 = a.xmin.max(b.xmin);
    let y0 = a.ymin.max(b.ymin);
    let x1 = (a.xmin + a.width).min(b.xmin + b.width);
    let y1 = (a.ymin + a.height).min(b.ymin + b.height);
    if x1 < x0 || y1 < y0 {
        return 0.0;
    }
    let inter = (x1 - x0) * (y1 - y0);
    let union = a.width * a.height + b.width * b.height - inter;
    if union > 0.0 { inter / union } else { 0.0 }
}

/// NonMaxSuppressionCalculator, `algorithm: WEIGHTED`, IoU: the best box takes every remaining box
/// that overlaps it by more than `min_iou` and becomes their score-weighted mean (box and
/// keypoints); it keeps its own score.
pub fn weighted_nms(mut boxes: Vec<RelBox>, min_iou: f32) -> Vec<RelBox> {
    boxes.sort_by(|a, b| b.score.total_cmp(&a.score));
    let mut out = Vec::new();
    while let Some(top) = boxes.first().cloned() {
        let (candidates, rest): (Vec<RelBox>, Vec<RelBox>) =
            boxes.into_iter().partition(|b| iou(b, &top) > min_iou);
        let total: f32 = candidates.iter().map(|c| c.score).sum();
        let (mut x0, mut y0, mut x1, mut y1) = (0f32, 0f32, 0f32, 0f32);
        let mut keypoints = vec![(0f32, 0f32); top.keypoints.len()];
        for c in &candidates {
            x0 += c.xmin * c.score;
            y0 += c.ymin * c.score;
            x1 += (c.xmin + c.width) * c.score;
            y1 += (c.ymin + c.height) * c.score;
            for (k, p) in keypoints.iter_mut().zip(&c.keypoints) {
                k.0 += p.0 * c.score;
                k.1 += p.1 * c.score;
            }
        }
        let (xmin, ymin) = (x0 / total, y0 / total);
        out.push(RelBox {
            xmin,
            ymin,
            width: x1 / total - xmin,
            height: y1 / total - ymin,
            score: top.score,
            keypoints: keypoints
                .into_iter()
                .map(|(x, y)| (x / total, y / total))
                .collect(),
        });
        boxes = rest;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anchor_counts_match_the_graphs() {
        let short = AnchorOptions {
            input_size: 128,
            strides: &[8, 16, 16, 16],
            interpolated_scale_aspect_ratio: 1.0,
        };
        assert_eq!(anchors(&short).len(), 896);
        let full = AnchorOptions {
            input_size: 192,
            strides: &[4],
            interpolated_scale_aspect_ratio: 0.0,
        };
        let a = anchors(&full);
        assert_eq!(a.len(), 2304);
        assert_eq!(a[1], (1.5 / 48.0, 0.5 / 48.0));
    }

    #[test]
    fn weighted_nms_blends_overlaps_and_keeps_the_top_score() {
        let b = |x: f32, s: f32| RelBox {
            xmin: x,
            ymin: 0.0,
            width: 1.0,
            height: 1.0,
            score: s,
            keypoints: vec![(x, 0.5)],
        };
        let out = weighted_nms(vec![b(0.0, 0.5), b(0.1, 1.0), b(5.0, 0.7)], 0.3);
        assert_eq!(out.len(), 2);
        assert!((out[0].xmin - 0.1 / 1.5).abs() < 1e-6);
        assert!((out[0].keypoints[0].0 - 0.1 / 1.5).abs() < 1e-6);
        assert_eq!(out[0].score, 1.0);
        assert_eq!(out[1].xmin, 5.0);
    }
}
