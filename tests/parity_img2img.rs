//! img2img and inpainting parity with A1111 v1.10 semantics on the tiny models, stage by stage:
//! the pixel stage (resize, mask blur, fill, crop), the latent stage (encode, latent mask, masked
//! content, inpainting conditioning), sampling, decode and the composite over the original. Each stage
//! is fed the reference's inputs, so a difference shows where it starts; a last run goes end to end.
//! References come from tests/fixtures/make_img2img_fixtures.py.

#![allow(clippy::unwrap_used)]

mod common;

use candle_core::{Device, Tensor};
use common::{Quiet, byte_diff, fixtures, max_abs, max_abs_diff, tiny_inpaint_model, tiny_model, u8_bytes};
use easel::diffusion::conditioning::Conditioning;
use easel::diffusion::conditioning::encode_prompt;
use easel::diffusion::img2img::{self, Overlay, Prepared, Start};
use easel::diffusion::model::SdModel;
use easel::diffusion::noise::first_noise;
use easel::diffusion::pipeline;
use easel::imaging::ops;
use easel::params::{GenerationParams, RngSource, Sampler, Schedule};
use easel::prompt::ClipTokenizer;
use easel::request::{Img2ImgSettings, InitImage, InpaintArea, MaskedContent, ResizeMode};
use image::{GrayImage, RgbImage};

fn dir() -> std::path::PathBuf {
    fixtures().join("ref").join("img2img")
}

fn params_of(case: &serde_json::Value) -> GenerationParams {
    GenerationParams {
        prompt: case["prompt"].as_str().unwrap().into(),
        negative_prompt: case["negative"].as_str().unwrap().into(),
        steps: case["steps"].as_u64().unwrap() as u32,
        sampler: Sampler::from_name(case["sampler"].as_str().unwrap()).unwrap(),
        schedule: Schedule::from_name(case["schedule"].as_str().unwrap()).unwrap(),
        cfg_scale: case["cfg"].as_f64().unwrap() as f32,
        seed: case["seed"].as_u64().unwrap(),
        width: case["width"].as_u64().unwrap() as u32,
        height: case["height"].as_u64().unwrap() as u32,
        rng: RngSource::from_name(case["rng"].as_str().unwrap()).unwrap(),
        denoising_strength: Some(case["strength"].as_f64().unwrap_or(1.0) as f32),
        ..GenerationParams::default()
    }
}

fn settings_of(case: &serde_json::Value) -> Img2ImgSettings {
    Img2ImgSettings {
        resize_mode: ResizeMode::ALL[case["resize_mode"].as_u64().unwrap_or(0) as usize],
        mask_blur: case["mask_blur"].as_u64().unwrap_or(4) as u32,
        masked_content: MaskedContent::ALL[case["inpainting_fill"].as_u64().unwrap_or(1) as usize],
        inpaint_area: if case["inpaint_full_res"].as_bool().unwrap_or(false) {
            InpaintArea::OnlyMasked
        } else {
            InpaintArea::WholePicture
        },
        padding: case["padding"].as_u64().unwrap_or(0) as u32,
        invert_mask: case["invert"].as_bool().unwrap_or(false),
        mask_weight: case["mask_weight"].as_f64().unwrap_or(1.0) as f32,
        soft: None,
    }
}

fn model_of(case: &serde_json::Value) -> &'static SdModel {
    if case["model"].as_str().unwrap().contains("inpaint") {
        tiny_inpaint_model()
    } else {
        tiny_model()
    }
}

fn init_of(case: &serde_json::Value) -> Option<InitImage> {
    let image = case["init_image"].as_str()?;
    Some(InitImage {
        image: easel::imaging::load_rgb(&dir().join(image)).unwrap(),
        mask: case["mask"]
            .as_str()
            .map(|m| easel::imaging::load_mask(&dir().join(m)).unwrap()),
        settings: settings_of(case),
    })
}

fn rgb(t: &Tensor) -> RgbImage {
    let (h, w, _) = t.dims3().unwrap();
    RgbImage::from_raw(w as u32, h as u32, u8_bytes(t)).unwrap()
}

fn gray(t: &Tensor) -> GrayImage {
    let (h, w) = t.dims2().unwrap();
    GrayImage::from_raw(w as u32, h as u32, u8_bytes(t)).unwrap()
}

/// The reference's pixel-stage outputs, as the latent stage takes them.
fn reference_prepared(
    refs: &std::collections::HashMap<String, Tensor>,
    name: &str,
    init: &InitImage,
    p: &GenerationParams,
) -> Prepared {
    let get = |k: &str| refs.get(&format!("{name}/{k}"));
    let overlay = get("mask_for_overlay").map(|m| {
        let paste_to = get("crop").map(|c| {
            let c = c.to_vec1::<i32>().unwrap();
            (
                c[0] as u32,
                c[1] as u32,
                (c[2] - c[0]) as u32,
                (c[3] - c[1]) as u32,
            )
        });
        let mode = init.settings.resize_mode;
        let original = if paste_to.is_some() {
            init.image.clone()
        } else {
            ops::resize_image(mode, &init.image, p.width, p.height)
        };
        Overlay {
            original,
            mask: gray(m),
            paste_to,
        }
    });
    Prepared {
        encode_rgb: rgb(get("encode_rgb").unwrap()),
        image_mask: get("cond_mask").map(gray),
        latent_mask: get("latmask").map(|m| m.flatten_all().unwrap().to_vec1::<f32>().unwrap()),
        overlay,
    }
}

#[test]
fn every_img2img_and_inpaint_case_matches_a1111() {
    let tok = ClipTokenizer::bundled().unwrap();
    let refs = candle_core::safetensors::load(dir().join("ref.safetensors"), &Device::Cpu).unwrap();
    let index: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir().join("cases.json")).unwrap()).unwrap();
    let mut failures = Vec::new();
    let (mut worst_stage_px, mut worst_latmask, mut worst_latent, mut worst_out, mut worst_e2e) =
        (0u8, 0usize, 0f32, 0u8, 0u8);
    for case in index["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let get = |k: &str| refs[&format!("{name}/{k}")].clone();
        let model = model_of(case);
        let p = params_of(case);
        let init = init_of(case);
        let f = model.vae.downscale_factor() as u32;
        let (lw, lh) = (p.width / f, p.height / f);

        // 1. Pixel stage, ours against the reference.
        let reference = init.as_ref().map(|i| reference_prepared(&refs, name, i, &p));
        if let (Some(init), Some(reference)) = (&init, &reference) {
            let ours = img2img::prepare(init, p.width, p.height, lw, lh).unwrap();
            let (d_rgb, n_rgb) = byte_diff(ours.encode_rgb.as_raw(), reference.encode_rgb.as_raw());
            worst_stage_px = worst_stage_px.max(d_rgb);
            let mut d_mask = 0;
            if let (Some(a), Some(b)) = (&ours.image_mask, &reference.image_mask) {
                d_mask = byte_diff(a.as_raw(), b.as_raw()).0;
                worst_stage_px = worst_stage_px.max(d_mask);
            }
            if let (Some(a), Some(b)) = (&ours.latent_mask, &reference.latent_mask) {
                let flips = a.iter().zip(b).filter(|(x, y)| x != y).count();
                worst_latmask = worst_latmask.max(flips);
            }
            let mut d_overlay = 0;
            if let (Some(a), Some(b)) = (&ours.overlay, &reference.overlay) {
                d_overlay = byte_diff(a.mask.as_raw(), b.mask.as_raw()).0;
                worst_stage_px = worst_stage_px.max(d_overlay);
                assert_eq!(a.paste_to, b.paste_to, "{name}: crop region");
            }
            println!(
                "{name:28} pixel stage: encode image max diff {d_rgb} ({n_rgb} values differ), \
                 mask {d_mask}, overlay mask {d_overlay}"
            );
        }

        // 2. Latent stage and sampling from the reference's stage inputs.
        let seeds = vec![p.seed];
        let noise = first_noise(model, &p, &seeds).unwrap();
        assert_eq!(
            max_abs_diff(&noise, &get("noise")),
            0.0,
            "{name}: noise must be bit-exact"
        );
        let start = match (&init, &reference) {
            (Some(init), Some(reference)) => img2img::latent_start(
                model,
                reference,
                &init.settings,
                p.denoising_strength.unwrap(),
                &noise,
            )
            .unwrap(),
            _ => Start {
                image_cond: Some(img2img::txt2img_inpainting_conditioning(model, p.width, p.height).unwrap()),
                ..Start::default()
            },
        };
        if let Some((latent, _)) = &start.image {
            let want = get("init_latent");
            let rel = max_abs_diff(latent, &want) / max_abs(&want).max(1.0);
            assert!(rel < 1e-4, "{name}: init latent rel diff {rel}");
        }
        if let Some(cond) = &start.image_cond {
            let want = get("image_cond");
            let rel = max_abs_diff(cond, &want) / max_abs(&want).max(1.0);
            assert!(rel < 1e-4, "{name}: inpainting conditioning rel diff {rel}");
        }
        let cond = encode_prompt(&model.clip, &tok, &p.prompt, 1, &Device::Cpu).unwrap();
        let uncond = encode_prompt(&model.clip, &tok, &p.negative_prompt, 1, &Device::Cpu).unwrap();
        let sampled = pipeline::sample_batch(
            model,
            &Conditioning::fixed(cond.clone()),
            &Conditioning::fixed(uncond.clone()),
            &p,
            seeds,
            &start,
            |_, _, _| Ok(()),
        )
        .unwrap();
        assert_eq!(
            sampled.evaluations as u64,
            case["unet_evals"].as_u64().unwrap(),
            "{name}: UNet evaluations"
        );
        let want = get("latent");
        let rel = max_abs_diff(&sampled.latents, &want) / max_abs(&want).max(1.0);
        worst_latent = worst_latent.max(rel);

        // 3. Decode and composite (from the reference's decoded pixels, so only the composite is tested).
        let decoded = pipeline::decode_rgb(model, &sampled.latents, &mut Quiet)
            .unwrap()
            .remove(0);
        let (d_dec, _) = byte_diff(&decoded, &u8_bytes(&get("decoded")));
        let out = match reference.as_ref().and_then(|r| r.overlay.as_ref()) {
            Some(overlay) => overlay.apply(&rgb(&get("decoded"))).unwrap().into_raw(),
            None => u8_bytes(&get("decoded")),
        };
        let (d_out, _) = byte_diff(&out, &u8_bytes(&get("output")));
        worst_out = worst_out.max(d_out);

        // 4. End to end through the job pipeline.
        let e2e = pipeline::generate(model, &tok, &p, init.as_ref(), &mut Quiet)
            .unwrap()
            .remove(0);
        let (d_e2e, n_e2e) = byte_diff(&e2e.rgb, &u8_bytes(&get("output")));
        worst_e2e = worst_e2e.max(d_e2e);
        println!(
            "{name:28} latent rel diff {rel:.2e}, decoded max diff {d_dec}, composite max diff {d_out}, \
             end to end max diff {d_e2e} ({n_e2e} values differ)"
        );
        if rel > 1e-4 || d_dec > 1 || d_out > 0 {
            failures.push(format!(
                "{name}: latent {rel:.2e}, decoded {d_dec}, composite {d_out}"
            ));
        }
    }
    println!(
        "worst: pixel stage {worst_stage_px}, latent-mask flips {worst_latmask}, latent rel {worst_latent:.2e}, \
         composite {worst_out}, end to end {worst_e2e}"
    );
    assert!(failures.is_empty(), "{failures:#?}");
    assert!(worst_stage_px <= 1, "pixel stage differs by {worst_stage_px}");
    assert_eq!(worst_latmask, 0, "latent mask elements differ");
}

#[test]
fn pixels_outside_the_mask_are_bit_identical_to_the_input() {
    let tok = ClipTokenizer::bundled().unwrap();
    let model = tiny_model();
    let image = easel::imaging::load_rgb(&dir().join("init.png")).unwrap();
    let mask = easel::imaging::load_mask(&dir().join("mask.png")).unwrap();
    for (area, content) in [
        (InpaintArea::WholePicture, MaskedContent::Original),
        (InpaintArea::WholePicture, MaskedContent::LatentNoise),
        (InpaintArea::OnlyMasked, MaskedContent::Fill),
    ] {
        let settings = Img2ImgSettings {
            inpaint_area: area,
            masked_content: content,
            padding: 8,
            ..Img2ImgSettings::default()
        };
        let init = InitImage {
            image: image.clone(),
            mask: Some(mask.clone()),
            settings: settings.clone(),
        };
        let p = GenerationParams {
            prompt: "a red barn".into(),
            steps: 4,
            width: 64,
            height: 64,
            seed: 5,
            denoising_strength: Some(0.9),
            ..GenerationParams::default()
        };
        let out = pipeline::generate(model, &tok, &p, Some(&init), &mut Quiet)
            .unwrap()
            .remove(0);
        assert_eq!((out.width, out.height), image.dimensions());
        // Where the feathered overlay mask is 0, the input comes back exactly.
        let prepared = img2img::prepare(&init, 64, 64, 32, 32).unwrap();
        let overlay = prepared.overlay.unwrap();
        let (mut kept, mut changed) = (0, 0);
        for (i, m) in overlay.mask.as_raw().iter().enumerate() {
            let (a, b) = (&out.rgb[i * 3..i * 3 + 3], &image.as_raw()[i * 3..i * 3 + 3]);
            if *m == 0 {
                assert_eq!(a, b, "{area:?}/{content:?}: pixel {i} outside the mask changed");
                kept += 1;
            } else if a != b {
                changed += 1;
            }
        }
        assert!(
            kept > 1000 && changed > 100,
            "{area:?}: kept {kept}, changed {changed}"
        );
        assert!(
            out.infotext.contains("Denoising strength: 0.9"),
            "{}",
            out.infotext
        );
        assert!(out.infotext.contains("Mask blur: 4"), "{}", out.infotext);
    }
}
