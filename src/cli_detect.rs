//! `easel detect faces|hands|people IMAGE`: the built-in detectors on the command line, printing
//! boxes (text or `--json`) and optionally writing a white-on-black mask.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, ValueEnum};
use easel::detect::hands::HandModel;
use easel::detect::{self, Detection, FaceModel};

use crate::bad;

/// What to detect.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Target {
    /// Faces (MediaPipe face detection).
    Faces,
    /// Hands (MediaPipe Hands: palm detection, then the box around the 21 hand landmarks).
    Hands,
    /// People (MediaPipe selfie segmentation).
    People,
}

/// Which face or hand model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ModelArg {
    /// Faces: short range, faces within about 2 m (MediaPipe face_detection_short_range).
    Short,
    /// Faces: full range, faces up to about 5 m (MediaPipe face_detection_full_range_sparse).
    /// Hands: MediaPipe's full palm and landmark models (its default, model_complexity 1).
    Full,
    /// Hands: MediaPipe's lite palm and landmark models (model_complexity 0, faster).
    Lite,
}

/// `easel detect`'s arguments.
#[derive(Args, Debug)]
pub struct DetectArgs {
    /// What to find: faces, hands or people.
    #[arg(value_enum)]
    pub what: Target,
    /// The image (PNG, JPEG, WebP).
    pub image: PathBuf,
    /// Faces: short or full [default: short]. Hands: full or lite [default: full]. People have
    /// one model.
    #[arg(long, value_enum)]
    pub model: Option<ModelArg>,
    /// Hands: keep at most this many, the best palms first. The default is MediaPipe Hands'
    /// `max_num_hands`; give a larger N for a group of people.
    #[arg(long, value_name = "N", default_value_t = 2)]
    pub max_hands: usize,
    /// Score threshold in [0, 1], applied before overlapping boxes are merged; for people, the
    /// mask probability a pixel needs [default: 0.5].
    #[arg(long, value_name = "F")]
    pub confidence: Option<f32>,
    /// Print {"width", "height", "detections": [{"x", "y", "width", "height", "score"}]} in
    /// pixels of the input image.
    #[arg(long)]
    pub json: bool,
    /// Also write a white-on-black mask to this PNG: the boxes grown by --dilate (faces, hands), the
    /// segmentation (people).
    #[arg(long, value_name = "OUT.png")]
    pub mask: Option<PathBuf>,
    /// Grow each box by this many pixels on every side in the mask.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub dilate: u32,
}

/// Runs `easel detect`.
pub fn run(args: &DetectArgs) -> anyhow::Result<ExitCode> {
    let confidence = args.confidence.unwrap_or(0.5);
    if !(0.0..=1.0).contains(&confidence) {
        return Err(bad(format!(
            "--confidence must be between 0 and 1, got {confidence}"
        )));
    }
    let model = match (args.what, args.model) {
        (Target::Faces, None | Some(ModelArg::Short)) => Model::Face(FaceModel::Short),
        (Target::Faces, Some(ModelArg::Full)) => Model::Face(FaceModel::Full),
        (Target::Faces, Some(ModelArg::Lite)) => {
            return Err(bad(
                "--model lite is a hand model; faces take --model short or --model full",
            ));
        }
        (Target::Hands, None | Some(ModelArg::Full)) => Model::Hand(HandModel::Full),
        (Target::Hands, Some(ModelArg::Lite)) => Model::Hand(HandModel::Lite),
        (Target::Hands, Some(ModelArg::Short)) => {
            return Err(bad(
                "--model short is a face model; hands take --model full or --model lite",
            ));
        }
        (Target::People, Some(_)) => {
            return Err(bad(
                "--model does not apply to people: they have one built-in model",
            ));
        }
        (Target::People, None) => return people(args, confidence),
    };
    let image = easel::imaging::load_rgb(&args.image).map_err(|e| bad(e.to_string()))?;
    let (found, what) = match model {
        Model::Face(model) => {
            let found = detect::detect_faces(&image, model, confidence).context("face detection failed")?;
            (found, "face")
        }
        Model::Hand(model) => {
            if args.max_hands == 0 {
                return Err(bad("--max-hands must be at least 1"));
            }
            let found = detect::hands::detect_hands_using(&image, model, confidence, Some(args.max_hands))
                .context("hand detection failed")?;
            (found, "hand")
        }
    };
    let (width, height) = image.dimensions();
    print_detections(args.json, width, height, &found, what)?;
    if let Some(path) = &args.mask {
        box_mask(width, height, &found, args.dilate)
            .save_with_format(path, image::ImageFormat::Png)
            .with_context(|| format!("could not write the mask (file: {})", path.display()))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// The detector `run` picked.
enum Model {
    Face(FaceModel),
    Hand(HandModel),
}

/// `easel detect people`: the segmentation thresholded at `threshold`, one box around it.
fn people(args: &DetectArgs, threshold: f32) -> anyhow::Result<ExitCode> {
    let image = easel::imaging::load_rgb(&args.image).map_err(|e| bad(e.to_string()))?;
    let mask = detect::segment::segment_people(&image).context("person segmentation failed")?;
    let found: Vec<Detection> = mask.bounding_box(threshold).into_iter().collect();
    print_detections(args.json, mask.width, mask.height, &found, "person mask")?;
    if let Some(path) = &args.mask {
        mask.to_mask(threshold)
            .save_with_format(path, image::ImageFormat::Png)
            .with_context(|| format!("could not write the mask (file: {})", path.display()))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints the CLI contract's JSON object or one line per detection.
fn print_detections(
    json: bool,
    width: u32,
    height: u32,
    found: &[Detection],
    what: &str,
) -> anyhow::Result<()> {
    if json {
        /// The CLI contract's object, keys in this order.
        #[derive(serde::Serialize)]
        struct Out<'a> {
            width: u32,
            height: u32,
            detections: &'a [Detection],
        }
        let out = Out {
            width,
            height,
            detections: found,
        };
        println!("{}", serde_json::to_string(&out).context("could not write JSON")?);
    } else {
        println!("{} {what}(s) in {}×{}", found.len(), width, height);
        for d in found {
            println!(
                "x {:.1} y {:.1} width {:.1} height {:.1} score {:.3}",
                d.x, d.y, d.width, d.height, d.score
            );
        }
    }
    Ok(())
}

/// White boxes on black, each grown by `dilate_px` on every side and clipped to the image.
fn box_mask(width: u32, height: u32, boxes: &[Detection], dilate_px: u32) -> image::GrayImage {
    let mut mask = image::GrayImage::new(width, height);
    let grow = dilate_px as f32;
    for d in boxes {
        let clip = |v: f32, max: u32| v.clamp(0.0, max as f32) as u32;
        let (x0, x1) = (
            clip((d.x - grow).floor(), width),
            clip((d.x + d.width + grow).ceil(), width),
        );
        let (y0, y1) = (
            clip((d.y - grow).floor(), height),
            clip((d.y + d.height + grow).ceil(), height),
        );
        for y in y0..y1 {
            for x in x0..x1 {
                mask.put_pixel(x, y, image::Luma([255]));
            }
        }
    }
    mask
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mask_boxes_grow_and_clip() {
        let d = Detection {
            x: 2.5,
            y: 1.0,
            width: 2.0,
            height: 2.0,
            score: 0.9,
        };
        let m = box_mask(8, 5, &[d], 1);
        let white: Vec<(u32, u32)> = m
            .enumerate_pixels()
            .filter(|p| p.2[0] == 255)
            .map(|p| (p.0, p.1))
            .collect();
        assert_eq!(white.first(), Some(&(1, 0)));
        assert_eq!(white.last(), Some(&(5, 3)));
        assert_eq!(white.len(), 5 * 4);
    }
}
