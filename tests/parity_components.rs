//! Component parity with diffusers/transformers on the tiny fixture model: tokenizer, CLIP (with clip skip),
//! UNet, VAE, and single-file vs diffusers-folder loading.

#![allow(clippy::unwrap_used)]

mod common;

use candle_core::{DType, Device, Tensor};
use common::{fixtures, load_ref, max_abs, max_abs_diff, tiny_model};
use easel::diffusion::conditioning::encode_prompt;
use easel::diffusion::model::SdModel;
use easel::prompt::{ClipTokenizer, chunk_prompt};

#[test]
fn tokenizer_matches_transformers() {
    let tok = ClipTokenizer::bundled().unwrap();
    let text = std::fs::read_to_string(fixtures().join("ref").join("tokenizer_cases.json")).unwrap();
    let cases: Vec<serde_json::Value> = serde_json::from_str(&text).unwrap();
    assert!(cases.len() >= 50);
    for case in cases {
        let input = case["text"].as_str().unwrap();
        let expected: Vec<u32> = case["ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u32)
            .collect();
        let mut ids = vec![easel::prompt::BOS];
        ids.extend(tok.encode(input).unwrap());
        ids.push(easel::prompt::EOS);
        assert_eq!(ids, expected, "text {input:?}");
    }
    let mut cat = vec![easel::prompt::BOS];
    cat.extend(tok.encode("a photo of a cat").unwrap());
    cat.push(easel::prompt::EOS);
    assert_eq!(cat, [49406, 320, 1125, 539, 320, 2368, 49407]);
}

#[test]
fn text_embeddings_match_reference_with_clip_skip() {
    let model = tiny_model();
    let tok = ClipTokenizer::bundled().unwrap();
    let refs = load_ref("text.safetensors");
    let prompts: Vec<String> = serde_json::from_value(common::cases()["text_prompts"].clone()).unwrap();
    for (i, prompt) in prompts.iter().enumerate() {
        let chunks = chunk_prompt(&tok, prompt).unwrap();
        assert_eq!(chunks.len(), 1);
        let ids: Vec<u32> = refs[&format!("ids_{i}")]
            .flatten_all()
            .unwrap()
            .to_vec1::<i64>()
            .unwrap()
            .iter()
            .map(|v| *v as u32)
            .collect();
        assert_eq!(chunks[0].ids, ids, "ids of {prompt:?} (77 tokens, eos padding)");
        for skip in [1usize, 2] {
            let got = encode_prompt(&model.clip, &tok, prompt, skip, &Device::Cpu).unwrap();
            let want = &refs[&format!("emb_{i}_skip{skip}")];
            let diff = max_abs_diff(&got, want);
            println!("prompt {i} skip {skip}: max diff {diff:e}");
            assert!(diff < 1e-4, "prompt {prompt:?} clip skip {skip}: max diff {diff}");
        }
    }
}

fn unet_eps(model: &SdModel, x: &Tensor, t: &[f32], ctx: &Tensor) -> Tensor {
    let t: Vec<f64> = t.iter().map(|v| f64::from(*v)).collect();
    model.unet.forward(x, &t, ctx).unwrap()
}

#[test]
fn unet_forward_matches_diffusers() {
    let refs = load_ref("unet.safetensors");
    let t = refs["t"].to_vec1::<f32>().unwrap();
    let got = unet_eps(tiny_model(), &refs["x"], &t, &refs["context"]);
    let diff = max_abs_diff(&got, &refs["eps"]);
    println!("UNet eps max diff {diff:e} (max |eps| {})", max_abs(&refs["eps"]));
    assert!(diff < 1e-4, "UNet max diff {diff}");

    let inpaint = SdModel::open(
        &fixtures().join("models").join("tiny-sd15-inpainting.safetensors"),
        &Device::Cpu,
        DType::F32,
    )
    .unwrap();
    assert_eq!(inpaint.family(), easel::models::Family::Sd1Inpaint);
    let got = unet_eps(&inpaint, &refs["x9"], &t, &refs["context"]);
    let diff = max_abs_diff(&got, &refs["eps9"]);
    println!("inpainting UNet eps max diff {diff:e}");
    assert!(diff < 1e-4, "inpainting UNet max diff {diff}");
}

#[test]
fn vae_matches_diffusers() {
    let refs = load_ref("vae.safetensors");
    let vae = &tiny_model().vae;
    let decoded = vae.decode(&refs["z"]).unwrap();
    let diff = max_abs_diff(&decoded, &refs["decoded_raw"]);
    println!("VAE decode max diff {diff:e}");
    assert!(diff < 1e-4, "VAE decode max diff {diff}");
    let scaled = vae.decode(&(&refs["z"] * (1.0 / 0.18215)).unwrap()).unwrap();
    let diff = max_abs_diff(&scaled, &refs["decoded"]);
    assert!(diff < 1e-3, "VAE decode of z/0.18215 max diff {diff}");
    let posterior = vae.encode(&refs["image"]).unwrap();
    let d_mean = max_abs_diff(&posterior.mean, &refs["posterior_mean"]);
    let d_logvar = max_abs_diff(&posterior.logvar, &refs["posterior_logvar"]);
    println!("VAE encode max diff mean {d_mean:e} logvar {d_logvar:e}");
    assert!(
        d_mean < 1e-4 && d_logvar < 1e-4,
        "VAE encode max diff {d_mean} / {d_logvar}"
    );
}

#[test]
fn single_file_and_diffusers_folder_agree() {
    let folder = SdModel::open(
        &fixtures().join("models").join("tiny-sd15-diffusers"),
        &Device::Cpu,
        DType::F32,
    )
    .unwrap();
    let single = tiny_model();
    assert_eq!(folder.geometry().unet, single.geometry().unet);
    assert_eq!(folder.geometry().vae, single.geometry().vae);
    assert_eq!(folder.geometry().clip, single.geometry().clip);
    let refs = load_ref("unet.safetensors");
    let t = refs["t"].to_vec1::<f32>().unwrap();
    let a = unet_eps(single, &refs["x"], &t, &refs["context"]);
    let b = unet_eps(&folder, &refs["x"], &t, &refs["context"]);
    assert_eq!(max_abs_diff(&a, &b), 0.0, "UNet outputs differ between layouts");
    let vrefs = load_ref("vae.safetensors");
    let a = single.vae.decode(&vrefs["z"]).unwrap();
    let b = folder.vae.decode(&vrefs["z"]).unwrap();
    assert_eq!(max_abs_diff(&a, &b), 0.0, "VAE outputs differ between layouts");
    let tok = ClipTokenizer::bundled().unwrap();
    let a = encode_prompt(&single.clip, &tok, "a photo of a cat", 1, &Device::Cpu).unwrap();
    let b = encode_prompt(&folder.clip, &tok, "a photo of a cat", 1, &Device::Cpu).unwrap();
    assert_eq!(
        max_abs_diff(&a, &b),
        0.0,
        "text embeddings differ between layouts"
    );
}
