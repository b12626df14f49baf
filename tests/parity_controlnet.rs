//! ControlNet parity with A1111 v1.10 + sd-webui-controlnet semantics on the tiny model and a tiny
//! random ControlNet: balanced / prompt / control modes, weights, guidance start and end counted as
//! the extension counts them (first- and second-order samplers), two units, an inpaint hint, CFG 1.
//! References come from tests/fixtures/make_controlnet_fixtures.py.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;

use candle_core::{DType, Device, Tensor};
use common::{Quiet, fixtures, max_abs, max_abs_diff, tiny_model};
use easel::diffusion::conditioning::{Conditioning, encode_prompt};
use easel::diffusion::controlnet::{ActiveControl, ControlMode, ControlNet};
use easel::diffusion::img2img::Start;
use easel::diffusion::pipeline;
use easel::params::{GenerationParams, RngSource, Sampler, Schedule};
use easel::prompt::ClipTokenizer;

fn control_dir() -> std::path::PathBuf {
    fixtures().join("models").join("controlnet")
}

fn ref_dir() -> std::path::PathBuf {
    fixtures().join("ref").join("controlnet")
}

/// A hint tensor `[1, C, H, W]` in [0, 1] from PNGs (RGB, plus a mask as the 4th channel).
fn hint(rgb: &str, mask: Option<&str>) -> Tensor {
    let im = image::open(ref_dir().join(rgb)).unwrap().to_rgb8();
    let (w, h) = (im.width() as usize, im.height() as usize);
    let mut chans: Vec<f32> = Vec::new();
    for c in 0..3 {
        chans.extend(im.pixels().map(|p| f32::from(p[c]) / 255.0));
    }
    let mut n = 3;
    if let Some(m) = mask {
        let m = image::open(ref_dir().join(m)).unwrap().to_luma8();
        chans.extend(m.pixels().map(|p| f32::from(p[0]) / 255.0));
        n = 4;
    }
    let t = Tensor::from_vec(chans, (1, n, h, w), &Device::Cpu).unwrap();
    ActiveControl::inpaint_protocol(&t).unwrap()
}

fn run(
    net: &Arc<ControlNet>,
    refs: &std::collections::HashMap<String, Tensor>,
    case: &serde_json::Value,
) -> (pipeline::SampledBatch, GenerationParams) {
    let model = tiny_model();
    let tok = ClipTokenizer::bundled().unwrap();
    let p = GenerationParams {
        prompt: case["prompt"].as_str().unwrap().into(),
        negative_prompt: case["negative"].as_str().unwrap().into(),
        steps: case["steps"].as_u64().unwrap() as u32,
        sampler: Sampler::from_name(case["sampler"].as_str().unwrap()).unwrap(),
        schedule: Schedule::Automatic,
        cfg_scale: case["cfg"].as_f64().unwrap() as f32,
        seed: case["seed"].as_u64().unwrap(),
        width: case["width"].as_u64().unwrap() as u32,
        height: case["height"].as_u64().unwrap() as u32,
        rng: RngSource::Cpu,
        ..GenerationParams::default()
    };
    let controls = case["units"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| ActiveControl {
            net: net.clone(),
            hint: match u["hint"].as_str().unwrap() {
                "a" => hint("hint_a.png", None),
                "b" => hint("hint_b.png", None),
                _ => hint("hint_b.png", Some("mask.png")),
            },
            weight: u["weight"].as_f64().unwrap(),
            start: u["start"].as_f64().unwrap(),
            end: u["end"].as_f64().unwrap(),
            mode: ControlMode::from_name(u["mode"].as_str().unwrap()).unwrap(),
        })
        .collect();
    let enc =
        |text: &str| Conditioning::fixed(encode_prompt(&model.clip, &tok, text, 1, &Device::Cpu).unwrap());
    let name = case["name"].as_str().unwrap();
    // img2img cases start from the committed latents at their strength.
    let image = case["strength"]
        .as_f64()
        .map(|s| (refs[&format!("{name}/init_latent")].clone(), s as f32));
    let start = Start {
        controls,
        image,
        ..Start::default()
    };
    let sampled = pipeline::sample_batch(
        model,
        &enc(&p.prompt),
        &enc(&p.negative_prompt),
        &p,
        vec![p.seed],
        &start,
        |_, _, _| Ok(()),
    )
    .unwrap();
    (sampled, p)
}

#[test]
fn every_case_matches_the_extension() {
    let model = tiny_model();
    let net = Arc::new(
        ControlNet::load(
            &control_dir().join("tiny-control.safetensors"),
            &Device::Cpu,
            DType::F32,
        )
        .unwrap(),
    );
    let refs = candle_core::safetensors::load(ref_dir().join("ref.safetensors"), &Device::Cpu).unwrap();
    let index: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(ref_dir().join("cases.json")).unwrap()).unwrap();
    let mut failures = Vec::new();
    let (mut worst_rel, mut worst_px) = (0f32, 0i32);
    for case in index["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let (sampled, _) = run(&net, &refs, case);
        let evals = case["unet_evals"].as_u64().unwrap() as usize;
        // CFG 1 runs the conditional half alone; the count of model calls is the same.
        assert_eq!(sampled.evaluations, evals, "{name}: model calls");
        let want = &refs[&format!("{name}/latent")];
        let rel = max_abs_diff(&sampled.latents, want) / max_abs(want).max(1.0);
        let rgb = pipeline::decode_rgb(model, &sampled.latents, &mut Quiet)
            .unwrap()
            .remove(0);
        let want_rgb = refs[&format!("{name}/image")]
            .flatten_all()
            .unwrap()
            .to_vec1::<u8>()
            .unwrap();
        let px = rgb
            .iter()
            .zip(&want_rgb)
            .map(|(a, b)| (i32::from(*a) - i32::from(*b)).abs())
            .max()
            .unwrap();
        println!("{name:28} latent rel diff {rel:.2e}, max pixel diff {px}");
        worst_rel = worst_rel.max(rel);
        worst_px = worst_px.max(px);
        if rel > 1e-4 || px > 1 {
            failures.push(format!("{name}: latent rel {rel:e}, pixel {px}"));
        }
    }
    println!("worst latent relative diff {worst_rel:e}, worst pixel diff {worst_px}");
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn layouts_and_precisions_load_the_same_network() {
    // The LDM file with its prefix, the same without it stored in f16, and the diffusers folder.
    let dir = tempfile::tempdir().unwrap();
    let src = control_dir().join("tiny-control.safetensors");
    let tensors = candle_core::safetensors::load(&src, &Device::Cpu).unwrap();
    let stripped: std::collections::HashMap<String, Tensor> = tensors
        .iter()
        .map(|(k, v)| {
            (
                k.strip_prefix("control_model.").unwrap().to_owned(),
                v.to_dtype(DType::F16).unwrap(),
            )
        })
        .collect();
    let f16_path = dir.path().join("control_f16.safetensors");
    candle_core::safetensors::save(&stripped, &f16_path).unwrap();
    std::fs::copy(
        control_dir().join("tiny-control.yaml"),
        dir.path().join("control_f16.yaml"),
    )
    .unwrap();

    let x = Tensor::randn(0f32, 1.0, (2, 4, 8, 8), &Device::Cpu).unwrap();
    let ctx = Tensor::randn(0f32, 1.0, (2, 77, 32), &Device::Cpu).unwrap();
    let h = Tensor::rand(0f32, 1.0, (2, 3, 16, 16), &Device::Cpu).unwrap();
    let out = |path: &std::path::Path| {
        ControlNet::load(path, &Device::Cpu, DType::F32)
            .unwrap()
            .forward(&x, &[500.0], &ctx, &h)
            .unwrap()
    };
    let a = out(&src);
    assert_eq!(a.len(), 5);
    for other in [f16_path.as_path(), &control_dir().join("tiny-control-diffusers")] {
        let b = out(other);
        for (ra, rb) in a.iter().zip(&b) {
            // The fixture's weights are f16 values, so the f16 copy is exact too.
            assert!(max_abs_diff(ra, rb) < 1e-5, "{}", other.display());
        }
    }
}

#[test]
fn wrong_files_say_what_they_are() {
    let err = ControlNet::load(&common::model_path(), &Device::Cpu, DType::F32)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("not a ControlNet"), "{err}");
    let dir = tempfile::tempdir().unwrap();
    let pickle = dir.path().join("control_v11p_sd15_canny.pth");
    std::fs::write(&pickle, b"PK\x03\x04").unwrap();
    let err = ControlNet::load(&pickle, &Device::Cpu, DType::F32)
        .err()
        .unwrap()
        .to_string();
    assert!(err.to_lowercase().contains("pickle"), "{err}");
    // A truncated file says so.
    let bytes = std::fs::read(control_dir().join("tiny-control.safetensors")).unwrap();
    let cut = dir.path().join("cut.safetensors");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let err = ControlNet::load(&cut, &Device::Cpu, DType::F32)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("truncated"), "{err}");
    // A tiny control file with no yaml: a 32-wide context is not SD 1.x, so the heads are unknown.
    let copy = dir.path().join("orphan.safetensors");
    std::fs::copy(control_dir().join("tiny-control.safetensors"), &copy).unwrap();
    let err = ControlNet::load(&copy, &Device::Cpu, DType::F32)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains(".yaml"), "{err}");
}

struct Quietly;

impl pipeline::Observer for Quietly {
    fn on_step(
        &mut self,
        _: easel::request::StepInfo,
        _: &Tensor,
    ) -> Result<(), easel::diffusion::DiffusionError> {
        Ok(())
    }
    fn on_image(&mut self, _: &easel::request::GeneratedImage) {}
    fn on_warning(&mut self, _: &str) {}
}

#[test]
fn inpaint_only_keeps_the_control_image_outside_the_grown_mask() {
    // sd-webui-controlnet's inpaint_only: the picture is blended back over the control image with the
    // mask dilated and blurred by 7 px, so pixels 7+ px from the mask are the control image's.
    let model = tiny_model();
    let tok = ClipTokenizer::bundled().unwrap();
    let net = Arc::new(
        ControlNet::load(
            &control_dir().join("tiny-control.safetensors"),
            &Device::Cpu,
            DType::F32,
        )
        .unwrap(),
    );
    let control = image::open(ref_dir().join("hint_b.png")).unwrap().to_rgb8();
    let mask = image::open(ref_dir().join("mask.png")).unwrap().to_luma8();
    let mut unit = easel::request::ControlUnit::new(control_dir().join("tiny-control.safetensors"));
    unit.preprocessor = easel::imaging::ops::HintPreprocessor::InpaintOnly;
    unit.image = Some(control.clone());
    unit.mask = Some(mask.clone());
    let p = GenerationParams {
        prompt: "a house".into(),
        steps: 3,
        width: 64,
        height: 64,
        seed: 5,
        ..GenerationParams::default()
    };
    let job = pipeline::JobControl {
        net,
        unit,
        label: "tiny-control [00000000]".into(),
    };
    let images = pipeline::generate_with(model, &tok, &p, None, &[job], &mut Quietly).unwrap();
    let out = &images[0].rgb;
    let (mut inside, mut far) = (0usize, 0usize);
    for y in 0..64u32 {
        for x in 0..64u32 {
            let near = (y.saturating_sub(7)..=(y + 7).min(63))
                .any(|yy| (x.saturating_sub(7)..=(x + 7).min(63)).any(|xx| mask.get_pixel(xx, yy)[0] > 127));
            let i = ((y * 64 + x) * 3) as usize;
            let want = control.get_pixel(x, y);
            let diff = (0..3)
                .map(|c| (i32::from(out[i + c]) - i32::from(want[c])).abs())
                .max()
                .unwrap();
            if !near {
                far += 1;
                assert!(diff <= 1, "({x}, {y}) is {diff} levels from the control image");
            } else if mask.get_pixel(x, y)[0] > 127 && diff > 8 {
                inside += 1;
            }
        }
    }
    assert!(far > 500, "{far} pixels far from the mask");
    assert!(
        inside > 100,
        "the masked area is repainted ({inside} pixels differ)"
    );
    assert!(
        images[0]
            .infotext
            .contains("ControlNet 0: \"Module: inpaint_only, Model: tiny-control [00000000]"),
        "{}",
        images[0].infotext
    );
}
