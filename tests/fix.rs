//! ADetailer's flow on the tiny model through the CLI (`easel generate … --fix faces|hands`):
//! every detected face or hand repainted in turn, every pixel outside all (grown, feathered) masks kept
//! bit for bit, ADetailer's infotext keys written.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::{fixtures, model_path};
use easel::detect::{self, FaceModel};

fn easel(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_easel"))
        .args(args)
        .env("EASEL_CACHE_DIR", std::env::temp_dir().join("easel-test-cache"))
        .output()
        .unwrap()
}

fn parameters_of(png: &Path) -> String {
    let chunks = easel::infotext::png_chunks::read_png_text_chunks(png).unwrap();
    chunks.into_iter().find(|(k, _)| k == "parameters").unwrap().1
}

/// `easel generate` on the tiny model: "a portrait" at 64×64 with seed 7 and `steps` steps, from
/// `init`, written to `out`, with `extra` flags (the fix) after those.
fn portrait(init: &Path, steps: &str, out: &Path, extra: &[&str]) -> Output {
    let model = model_path();
    let mut args = vec![
        "generate",
        "--model",
        model.to_str().unwrap(),
        "--prompt",
        "a portrait",
        "--width",
        "64",
        "--height",
        "64",
        "--steps",
        steps,
        "--seed",
        "7",
        "--init",
        init.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    easel(&args)
}

/// Two faces side by side, 200×100: crops of the detection fixtures' astronaut and Grace Hopper
/// photos (only-masked inpainting works on crops at the generation size, so the picture's own
/// size need not suit the model).
fn two_faces() -> image::RgbImage {
    let open = |name: &str| {
        image::open(fixtures().join("ref/detect").join(name))
            .unwrap()
            .to_rgb8()
    };
    let mut out = image::RgbImage::new(200, 100);
    let astronaut = image::imageops::crop_imm(&open("astronaut.png"), 38, 0, 100, 100).to_image();
    let hopper = image::imageops::crop_imm(&open("hopper.png"), 18, 15, 100, 100).to_image();
    image::imageops::replace(&mut out, &astronaut, 0, 0);
    image::imageops::replace(&mut out, &hopper, 100, 0);
    out
}

const ADETAILER_KEYS: &str = "ADetailer model: mediapipe_face_short, ADetailer confidence: 0.5, ADetailer dilate erode: 4, ADetailer mask blur: 4, ADetailer denoising strength: 0.4, ADetailer inpaint only masked: True, ADetailer inpaint padding: 32, ADetailer version: 24.8.0";

#[test]
fn fix_faces_repaints_each_face_and_keeps_everything_else() {
    let dir = tempfile::tempdir().unwrap();
    let input = two_faces();
    let init = dir.path().join("pair.png");
    input.save(&init).unwrap();
    let faces = detect::detect_faces(&input, FaceModel::Short, 0.5).unwrap();
    assert_eq!(faces.len(), 2, "{faces:?}");
    let out = dir.path().join("fixed.png");
    let o = portrait(&init, "4", &out, &["--fix", "faces"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let fixed = image::open(&out).unwrap().to_rgb8();
    assert_eq!(fixed.dimensions(), input.dimensions());
    // Each mask is the box grown by the 4×4 dilation, then feathered by a Gaussian of σ 4
    // (kernel radius 10): nothing farther than that from a box may change.
    let reach = 2.0 + 10.0 + 1.0;
    let near = |x: u32, y: u32| {
        faces.iter().any(|d| {
            let (x, y) = (x as f32 + 0.5, y as f32 + 0.5);
            x >= d.x - reach && x <= d.x + d.width + reach && y >= d.y - reach && y <= d.y + d.height + reach
        })
    };
    let mut outside = 0;
    for (x, y, p) in input.enumerate_pixels() {
        if !near(x, y) {
            assert_eq!(
                fixed.get_pixel(x, y),
                p,
                "pixel ({x}, {y}) outside every mask changed"
            );
            outside += 1;
        }
    }
    assert!(outside > 200 * 100 / 3, "{outside} pixels outside the masks");
    for d in &faces {
        let (x0, y0) = (d.x.max(0.0) as u32, d.y.max(0.0) as u32);
        let (x1, y1) = ((d.x + d.width) as u32, (d.y + d.height) as u32);
        let mut changed = 0;
        let mut total = 0;
        for y in y0..y1.min(100) {
            for x in x0..x1.min(200) {
                total += 1;
                changed += usize::from(fixed.get_pixel(x, y) != input.get_pixel(x, y));
            }
        }
        assert!(
            changed * 2 > total,
            "face at {d:?}: {changed} of {total} pixels repainted"
        );
    }
    let text = parameters_of(&out);
    assert!(text.contains(ADETAILER_KEYS), "{text}");
    assert!(
        text.contains("Denoising strength: 0.4") && text.contains("Seed: 7,"),
        "{text}"
    );
}

#[test]
fn fix_after_generating_writes_the_keys_and_warns_when_there_is_no_face() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.png");
    let model = model_path();
    let o = easel(&[
        "generate",
        "--model",
        model.to_str().unwrap(),
        "--prompt",
        "a cozy cabin",
        "--width",
        "64",
        "--height",
        "64",
        "--steps",
        "3",
        "--seed",
        "42",
        "--fix",
        "faces",
        "--fix-prompt",
        "a happy face",
        "--out",
        out.to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("no face found"), "{err}");
    let text = parameters_of(&out);
    assert!(
        text.contains(
            "ADetailer model: mediapipe_face_short, ADetailer prompt: a happy face, ADetailer confidence: 0.5"
        ),
        "{text}"
    );
    assert!(!text.contains("Denoising strength"), "{text}");
    // Unknown or repeated targets: clear errors before any work.
    for (fix, needle) in [("feet", "unknown --fix 'feet'"), ("hands,hand", "twice")] {
        let o = easel(&[
            "generate",
            "--model",
            model.to_str().unwrap(),
            "--prompt",
            "x",
            "--fix",
            fix,
            "--out",
            out.to_str().unwrap(),
        ]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{fix}: {err}");
        assert!(err.contains(needle), "{fix}: {err}");
    }
}

#[test]
fn fix_hands_repaints_the_hand_region_only() {
    let dir = tempfile::tempdir().unwrap();
    // A 96×112 picture in which MediaPipe Hands (full models, the default) finds one small hand
    // (see tests/fixtures/make_hand_fixtures.py).
    let input = image::open(fixtures().join("ref/detect/hands_hopper_small.png"))
        .unwrap()
        .to_rgb8();
    let init = dir.path().join("picture.png");
    input.save(&init).unwrap();
    let hands = detect::hands::detect_hands(&input, 0.5, None).unwrap();
    assert_eq!(hands.len(), 1, "{hands:?}");
    let out_dir = dir.path().join("out");
    std::fs::create_dir(&out_dir).unwrap();
    let out = out_dir.join("fixed.png");
    let model = model_path();
    let o = easel(&[
        "generate",
        "--model",
        model.to_str().unwrap(),
        "--prompt",
        "a hand",
        "--width",
        "64",
        "--height",
        "64",
        "--steps",
        "4",
        "--seed",
        "3",
        "--init",
        init.to_str().unwrap(),
        "--fix",
        "hands",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // One new picture, the size of the input.
    assert_eq!(std::fs::read_dir(&out_dir).unwrap().count(), 1);
    let fixed = image::open(&out).unwrap().to_rgb8();
    assert_eq!(fixed.dimensions(), input.dimensions());
    // The box grown by the 4×4 dilation and feathered by the mask blur (σ 4, radius 10).
    let d = hands[0];
    let reach = 2.0 + 10.0 + 1.0;
    let (mut outside, mut changed, mut inside) = (0, 0, 0);
    for (x, y, p) in input.enumerate_pixels() {
        let (xf, yf) = (x as f32 + 0.5, y as f32 + 0.5);
        let near = xf >= d.x - reach
            && xf <= d.x + d.width + reach
            && yf >= d.y - reach
            && yf <= d.y + d.height + reach;
        if !near {
            assert_eq!(
                fixed.get_pixel(x, y),
                p,
                "pixel ({x}, {y}) outside the hand changed"
            );
            outside += 1;
        } else if xf >= d.x && xf <= d.x + d.width && yf >= d.y && yf <= d.y + d.height {
            inside += 1;
            changed += usize::from(fixed.get_pixel(x, y) != p);
        }
    }
    assert!(
        outside > input.width() * input.height() / 2,
        "{outside} pixels outside the mask"
    );
    assert!(
        changed * 2 > inside,
        "{changed} of {inside} hand pixels repainted"
    );
    let text = parameters_of(&out);
    assert!(
        text.contains(&ADETAILER_KEYS.replace("mediapipe_face_short", "mediapipe_hands_full")),
        "{text}"
    );
}

#[test]
fn fix_with_an_inpaint_controlnet_keeps_structure_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let input = two_faces();
    let init = dir.path().join("pair.png");
    input.save(&init).unwrap();
    // The tiny ControlNet under an inpaint model's name (its yaml beside it).
    let src = fixtures().join("models/controlnet");
    let control = dir.path().join("tiny_sd15_inpaint.safetensors");
    std::fs::copy(src.join("tiny-control.safetensors"), &control).unwrap();
    std::fs::copy(
        src.join("tiny-control.yaml"),
        dir.path().join("tiny_sd15_inpaint.yaml"),
    )
    .unwrap();
    let run = |out: &Path, extra: &[&str]| {
        let o = portrait(&init, "4", out, &[&["--fix", "faces"], extra].concat());
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        image::open(out).unwrap().to_rgb8()
    };
    let plain = run(&dir.path().join("plain.png"), &[]);
    let out = dir.path().join("controlled.png");
    let controlled = run(&out, &["--fix-control", control.to_str().unwrap()]);
    assert_ne!(plain, controlled, "the ControlNet changes the repainted faces");
    // Outside the faces both are the input.
    assert_eq!(controlled.get_pixel(0, 99), input.get_pixel(0, 99));
    let text = parameters_of(&out);
    assert!(
        text.contains("ADetailer ControlNet model: tiny_sd15_inpaint [")
            && text.contains("ADetailer ControlNet module: inpaint_only"),
        "{text}"
    );
}

#[test]
fn fix_faces_then_hands_runs_both_like_adetailers_two_tabs() {
    let dir = tempfile::tempdir().unwrap();
    let init = dir.path().join("pair.png");
    two_faces().save(&init).unwrap();
    let run = |fix: &str, out: &Path| {
        let o = portrait(&init, "3", out, &["--fix", fix]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stderr).into_owned()
    };
    let (faces, both) = (dir.path().join("faces.png"), dir.path().join("both.png"));
    run("faces", &faces);
    let err = run("faces,hands", &both);
    // No hand in these two portraits: the second tab finds nothing and says so, so the picture
    // is the faces-only one.
    assert!(err.contains("no hand found"), "{err}");
    assert_eq!(
        image::open(&both).unwrap().to_rgb8(),
        image::open(&faces).unwrap().to_rgb8()
    );
    let text = parameters_of(&both);
    assert!(
        text.contains(ADETAILER_KEYS.trim_end_matches(", ADetailer version: 24.8.0")),
        "{text}"
    );
    assert!(
        text.contains(
            "ADetailer inpaint padding: 32, ADetailer model 2nd: mediapipe_hands_full, ADetailer confidence 2nd: 0.5"
        ) && text.contains("ADetailer inpaint padding 2nd: 32, ADetailer version: 24.8.0"),
        "{text}"
    );
}

/// The fixed picture of `two_faces` through the engine, with or without soft inpainting.
fn fix_through_the_engine(soft: Option<easel::request::SoftInpainting>) -> image::RgbImage {
    use easel::engine::{Engine, Event};
    use easel::request::{DeviceChoice, FixSettings, Img2ImgSettings, InitImage, Request};
    let params = easel::params::GenerationParams {
        prompt: "a portrait".into(),
        steps: 4,
        width: 64,
        height: 64,
        seed: 7,
        denoising_strength: Some(0.4),
        ..easel::params::GenerationParams::default()
    };
    let request = Request {
        device: DeviceChoice::Cpu,
        init: Some(InitImage {
            image: two_faces(),
            mask: None,
            settings: Img2ImgSettings::default(),
        }),
        fix: Some(FixSettings {
            picture_only: true,
            soft,
            ..FixSettings::default()
        }),
        ..Request::new(model_path(), params)
    };
    let engine = Engine::spawn(None).unwrap();
    let (job, _) = engine.submit(request);
    let mut picture = None;
    loop {
        match engine
            .events()
            .recv_timeout(std::time::Duration::from_mins(5))
            .unwrap()
        {
            Event::Image { job: j, image } if j == job => {
                picture = image::RgbImage::from_raw(image.width, image.height, image.rgb);
            }
            Event::Failed { job: j, message, .. } if j == job => panic!("{message}"),
            Event::Finished { job: j } if j == job => break,
            _ => {}
        }
    }
    picture.unwrap()
}

#[test]
fn soft_inpainting_reaches_every_fix_inpaint() {
    let input = two_faces();
    let binary = fix_through_the_engine(None);
    let soft = fix_through_the_engine(Some(easel::request::SoftInpainting::default()));
    assert_eq!(soft.dimensions(), input.dimensions());
    assert_ne!(soft, binary, "soft inpainting changed nothing in the fix");
    assert_ne!(soft, input, "the faces were repainted");
}

#[test]
fn soft_inpainting_flags_reach_the_fix_without_a_mask_and_are_refused_without_either() {
    let dir = tempfile::tempdir().unwrap();
    let init = dir.path().join("pair.png");
    two_faces().save(&init).unwrap();
    let out = dir.path().join("fixed.png");
    let run = |extra: &[&str]| portrait(&init, "2", &out, extra);
    let o = run(&[
        "--fix",
        "faces",
        "--soft-inpainting",
        "--soft-preservation",
        "0.8",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = parameters_of(&out);
    assert!(
        text.contains("Soft inpainting enabled: True")
            && text.contains("Soft inpainting preservation strength: 0.8"),
        "{text}"
    );
    assert!(text.contains(ADETAILER_KEYS), "{text}");
    // Without --mask and without --fix there is nothing for it to soften: refused, saying why.
    let o = run(&["--soft-inpainting"]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("--soft-inpainting needs --mask") && err.contains("--fix"),
        "{err}"
    );
}
