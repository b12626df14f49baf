//! Soft inpainting parity with A1111 v1.10's built-in soft-inpainting extension on the tiny model:
//! the unrounded latent mask, sampling with the per-step `latent_blend`, no final blend, the adaptive
//! composite mask and the composite, then end to end. References come from
//! tests/fixtures/make_soft_fixtures.py (inputs: ref/img2img's init.png and masks).

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;

use candle_core::{Device, Tensor};
use common::{Quiet, byte_diff, fixtures, max_abs, max_abs_diff, tiny_model, u8_bytes};
use easel::diffusion::conditioning::{Conditioning, encode_prompt};
use easel::diffusion::img2img::{self, Overlay, Prepared};
use easel::diffusion::noise::first_noise;
use easel::diffusion::pipeline;
use easel::imaging::ops;
use easel::params::{GenerationParams, RngSource, Sampler, Schedule};
use easel::prompt::ClipTokenizer;
use easel::request::{Img2ImgSettings, InitImage, InpaintArea, MaskedContent, SoftInpainting};
use image::{GrayImage, RgbImage};

fn dir() -> std::path::PathBuf {
    fixtures().join("ref").join("soft")
}

fn images() -> std::path::PathBuf {
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
        denoising_strength: Some(case["strength"].as_f64().unwrap() as f32),
        ..GenerationParams::default()
    }
}

fn soft_of(case: &serde_json::Value) -> SoftInpainting {
    let s = &case["soft"];
    let f = |k: &str| s[k].as_f64().unwrap() as f32;
    SoftInpainting {
        schedule_bias: f("schedule_bias"),
        preservation: f("preservation"),
        transition_boost: f("transition_boost"),
        mask_influence: f("mask_influence"),
        difference_threshold: f("difference_threshold"),
        difference_contrast: f("difference_contrast"),
    }
}

fn init_of(case: &serde_json::Value) -> InitImage {
    InitImage {
        image: easel::imaging::load_rgb(&images().join(case["init_image"].as_str().unwrap())).unwrap(),
        mask: Some(easel::imaging::load_mask(&images().join(case["mask"].as_str().unwrap())).unwrap()),
        settings: Img2ImgSettings {
            mask_blur: case["mask_blur"].as_u64().unwrap() as u32,
            masked_content: MaskedContent::ALL[case["inpainting_fill"].as_u64().unwrap() as usize],
            inpaint_area: if case["inpaint_full_res"].as_bool().unwrap() {
                InpaintArea::OnlyMasked
            } else {
                InpaintArea::WholePicture
            },
            padding: case["padding"].as_u64().unwrap() as u32,
            soft: Some(soft_of(case)),
            ..Img2ImgSettings::default()
        },
    }
}

fn rgb(t: &Tensor) -> RgbImage {
    let (h, w, _) = t.dims3().unwrap();
    RgbImage::from_raw(w as u32, h as u32, u8_bytes(t)).unwrap()
}

fn gray(t: &Tensor) -> GrayImage {
    let (h, w) = t.dims2().unwrap();
    GrayImage::from_raw(w as u32, h as u32, u8_bytes(t)).unwrap()
}

fn load() -> (HashMap<String, Tensor>, serde_json::Value) {
    let refs = candle_core::safetensors::load(dir().join("ref.safetensors"), &Device::Cpu).unwrap();
    let index = serde_json::from_str(&std::fs::read_to_string(dir().join("cases.json")).unwrap()).unwrap();
    (refs, index)
}

/// The reference's pixel stage as the latent stage takes it.
fn reference_prepared(
    refs: &HashMap<String, Tensor>,
    name: &str,
    init: &InitImage,
    p: &GenerationParams,
) -> Prepared {
    let get = |k: &str| refs.get(&format!("{name}/{k}"));
    let paste_to = get("crop").map(|c| {
        let c = c.to_vec1::<i32>().unwrap();
        (
            c[0] as u32,
            c[1] as u32,
            (c[2] - c[0]) as u32,
            (c[3] - c[1]) as u32,
        )
    });
    let original = if paste_to.is_some() {
        init.image.clone()
    } else {
        ops::resize_image(init.settings.resize_mode, &init.image, p.width, p.height)
    };
    Prepared {
        encode_rgb: rgb(get("encode_rgb").unwrap()),
        image_mask: get("cond_mask").map(gray),
        latent_mask: get("latmask").map(|m| m.flatten_all().unwrap().to_vec1::<f32>().unwrap()),
        overlay: Some(Overlay {
            original,
            mask: gray(get("mask_for_overlay").unwrap()),
            paste_to,
        }),
    }
}

#[test]
fn soft_inpainting_matches_a1111() {
    let tok = ClipTokenizer::bundled().unwrap();
    let model = tiny_model();
    let (refs, index) = load();
    let mut failures = Vec::new();
    for case in index["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let get = |k: &str| refs[&format!("{name}/{k}")].clone();
        let p = params_of(case);
        let init = init_of(case);
        let f = model.vae.downscale_factor() as u32;
        let (lw, lh) = (p.width / f, p.height / f);

        // 1. Pixel stage: with soft inpainting the latent mask is not rounded.
        let ours = img2img::prepare(&init, p.width, p.height, lw, lh).unwrap();
        let want_lm = get("latmask").flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let lm = ours.latent_mask.as_ref().unwrap();
        assert_eq!(lm, &want_lm, "{name}: unrounded latent mask");
        assert!(
            lm.iter().any(|v| *v > 0.0 && *v < 1.0),
            "{name}: the mask must be fractional somewhere"
        );
        let (d_rgb, _) = byte_diff(ours.encode_rgb.as_raw(), &u8_bytes(&get("encode_rgb")));
        assert!(d_rgb <= 1, "{name}: encode image differs by {d_rgb}");

        // 2. Latent stage and sampling from the reference's pixel stage.
        let reference = reference_prepared(&refs, name, &init, &p);
        let noise = first_noise(model, &p, &[p.seed]).unwrap();
        let start = img2img::latent_start(
            model,
            &reference,
            &init.settings,
            p.denoising_strength.unwrap(),
            &noise,
        )
        .unwrap();
        assert!(
            start.soft.is_some(),
            "{name}: soft inpainting reaches the sampler"
        );
        let (latent0, _) = start.image.as_ref().unwrap();
        let want = get("init_latent");
        let rel0 = max_abs_diff(latent0, &want) / max_abs(&want).max(1.0);
        assert!(rel0 < 1e-4, "{name}: init latent rel diff {rel0}");
        let cond = encode_prompt(&model.clip, &tok, &p.prompt, 1, &Device::Cpu).unwrap();
        let uncond = encode_prompt(&model.clip, &tok, &p.negative_prompt, 1, &Device::Cpu).unwrap();
        let sampled = pipeline::sample_batch(
            model,
            &Conditioning::fixed(cond),
            &Conditioning::fixed(uncond),
            &p,
            vec![p.seed],
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

        // 3. The adaptive composite mask and the composite, from the reference's latents and pixels.
        let overlay = reference.overlay.as_ref().unwrap();
        let soft = pipeline::soft_overlay(&start, Some(&reference), overlay, &want, 0, &p)
            .unwrap()
            .unwrap();
        let (d_mask, n_mask) = byte_diff(soft.mask.as_raw(), &u8_bytes(&get("soft_mask")));
        let out = soft.apply(&rgb(&get("decoded"))).unwrap();
        let (d_out, _) = byte_diff(out.as_raw(), &u8_bytes(&get("output")));

        // 4. End to end.
        let e2e = pipeline::generate(model, &tok, &p, Some(&init), &mut Quiet)
            .unwrap()
            .remove(0);
        let (d_e2e, n_e2e) = byte_diff(&e2e.rgb, &u8_bytes(&get("output")));
        assert!(
            e2e.infotext.contains("Soft inpainting enabled: True"),
            "{}",
            e2e.infotext
        );
        println!(
            "{name:24} latent rel diff {rel:.2e}, soft mask max diff {d_mask} ({n_mask} differ), composite max diff \
             {d_out}, end to end max diff {d_e2e} ({n_e2e} values differ)"
        );
        if rel > 1e-4 || d_mask > 1 || d_out > 1 || d_e2e > 1 {
            failures.push(format!(
                "{name}: latent {rel:.2e}, mask {d_mask}, composite {d_out}, e2e {d_e2e}"
            ));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn soft_inpainting_softens_the_seam_and_keeps_far_pixels() {
    let tok = ClipTokenizer::bundled().unwrap();
    let model = tiny_model();
    let (refs, index) = load();
    let case = &index["cases"][0];
    let name = case["name"].as_str().unwrap();
    let p = params_of(case);
    let soft_init = init_of(case);
    let mut binary_init = soft_init.clone();
    binary_init.settings.soft = None;
    let run = |init: &InitImage| {
        pipeline::generate(model, &tok, &p, Some(init), &mut Quiet)
            .unwrap()
            .remove(0)
    };
    let (soft, binary) = (run(&soft_init), run(&binary_init));
    let original = soft_init.image.as_raw();
    let (w, h) = (p.width as usize, p.height as usize);
    // The binary composite's feather: where its overlay mask is strictly between 0 and 255.
    let feather = img2img::prepare(&binary_init, p.width, p.height, p.width / 2, p.height / 2)
        .unwrap()
        .overlay
        .unwrap()
        .mask;
    let mut edge_changed = 0;
    let mut edge = 0;
    for (i, m) in feather.as_raw().iter().enumerate() {
        if *m > 0 && *m < 255 {
            edge += 1;
            if soft.rgb[i * 3..i * 3 + 3] != binary.rgb[i * 3..i * 3 + 3] {
                edge_changed += 1;
            }
        }
    }
    assert!(
        edge > 100 && edge_changed * 2 > edge,
        "{name}: {edge_changed} of {edge} edge pixels changed"
    );
    // Far from anything the adaptive mask touches (its 0 area shrunk by 2 px), the input comes back exactly.
    let mask = gray(&refs[&format!("{name}/soft_mask")]);
    let mut far = 0;
    for y in 0..h {
        for x in 0..w {
            let clear = (y.saturating_sub(2)..(y + 3).min(h)).all(|yy| {
                (x.saturating_sub(2)..(x + 3).min(w)).all(|xx| mask.get_pixel(xx as u32, yy as u32).0[0] == 0)
            });
            if clear {
                far += 1;
                let i = (y * w + x) * 3;
                assert_eq!(
                    soft.rgb[i..i + 3],
                    original[i..i + 3],
                    "{name}: far pixel ({x}, {y}) changed"
                );
            }
        }
    }
    assert!(far > 40, "{name}: only {far} far pixels");
    println!(
        "{name}: {edge_changed} of {edge} feather pixels differ from the binary mask's; {far} far pixels kept"
    );
}

#[test]
fn soft_inpainting_without_a_mask_is_plain_img2img_and_bad_values_are_refused() {
    let tok = ClipTokenizer::bundled().unwrap();
    let model = tiny_model();
    let (_, index) = load();
    let case = &index["cases"][0];
    let p = params_of(case);
    // Without a mask soft inpainting does nothing (A1111 skips it when nothing is inpainted).
    let mut init = init_of(case);
    init.mask = None;
    let with = pipeline::generate(model, &tok, &p, Some(&init), &mut Quiet)
        .unwrap()
        .remove(0);
    init.settings.soft = None;
    let without = pipeline::generate(model, &tok, &p, Some(&init), &mut Quiet)
        .unwrap()
        .remove(0);
    assert_eq!(with.rgb, without.rgb);
    assert_eq!(with.infotext, without.infotext);
    assert!(!with.infotext.contains("Soft inpainting"), "{}", with.infotext);
    let mut init = init_of(case);
    init.settings.soft = Some(SoftInpainting {
        transition_boost: 0.5,
        ..SoftInpainting::default()
    });
    let e = pipeline::generate(model, &tok, &p, Some(&init), &mut Quiet).unwrap_err();
    assert!(
        e.to_string()
            .contains("Transition contrast boost (--soft-transition-boost) 0.5 must be between 1 and 32"),
        "{e}"
    );
    init.settings.soft = Some(SoftInpainting {
        difference_threshold: f32::NAN,
        ..SoftInpainting::default()
    });
    assert!(pipeline::generate(model, &tok, &p, Some(&init), &mut Quiet).is_err());
}
