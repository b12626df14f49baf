//! LoRA merging against diffusers' own `load_lora_weights` on the tiny model: kohya LoRA at
//! weights 1, 0.5 and −0.5 on the UNet and the text encoder, LoCon conv layers, two LoRAs at once,
//! removing them again, A1111's `Lora hashes`, and the files that must be refused or reported.
//! References come from tests/fixtures/make_lora_fixtures.py.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;

use candle_core::{DType, Device, Tensor};
use common::{fixtures, max_abs, max_abs_diff, model_path};
use easel::diffusion::lora_merge::Applied;
use easel::diffusion::model::SdModel;
use easel::models::lora_file::LoraFile;

fn refs() -> (std::collections::HashMap<String, Tensor>, serde_json::Value) {
    let dir = fixtures().join("ref").join("lora");
    let tensors = candle_core::safetensors::load(dir.join("ref.safetensors"), &Device::Cpu).unwrap();
    let cases = serde_json::from_str(&std::fs::read_to_string(dir.join("cases.json")).unwrap()).unwrap();
    (tensors, cases)
}

fn lora(file: &str) -> Arc<LoraFile> {
    let path = fixtures().join(file);
    let name = path.file_stem().unwrap().to_string_lossy().into_owned();
    Arc::new(LoraFile::open(&path, &name).unwrap())
}

fn unet_eps(model: &SdModel, unet_ref: &std::collections::HashMap<String, Tensor>) -> Tensor {
    let t = unet_ref["t"].to_vec1::<f32>().unwrap();
    let t: Vec<f64> = t.iter().map(|v| f64::from(*v)).collect();
    model
        .unet
        .forward(&unet_ref["x"], &t, &unet_ref["context"])
        .unwrap()
}

fn text_emb(model: &SdModel, ids: &Tensor) -> Tensor {
    model.clip.forward(&ids.to_dtype(DType::U32).unwrap(), 1).unwrap()
}

#[test]
fn merged_networks_match_diffusers() {
    let (tensors, index) = refs();
    let unet_ref = common::load_ref("unet.safetensors");
    let mut model = SdModel::open(&model_path(), &Device::Cpu, DType::F32).unwrap();
    let ids = &tensors["base/text_ids"];
    let base_eps = unet_eps(&model, &unet_ref);
    let base_emb = text_emb(&model, ids);
    assert!(max_abs_diff(&base_eps, &tensors["base/eps"]) / max_abs(&tensors["base/eps"]) < 1e-5);
    let mut worst = 0f32;
    for case in index["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let set: Vec<Applied> = case["loras"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| {
                let w = l["weight"].as_f64().unwrap() as f32;
                Applied {
                    lora: lora(l["file"].as_str().unwrap()),
                    te: w,
                    unet: w,
                }
            })
            .collect();
        let started = std::time::Instant::now();
        let report = model.set_loras(&set).unwrap();
        assert!(report.unmatched.is_empty(), "{name}: {:?}", report.unmatched);
        let want = &tensors[case["tensor"].as_str().unwrap()];
        let got = match case["kind"].as_str().unwrap() {
            "unet" => unet_eps(&model, &unet_ref),
            _ => text_emb(&model, ids),
        };
        let rel = max_abs_diff(&got, want) / max_abs(want);
        println!(
            "{:5} {name:22} rel diff {rel:.2e} (applied in {:.3} s, {} modules)",
            case["kind"].as_str().unwrap(),
            started.elapsed().as_secs_f64(),
            report.matched
        );
        assert!(rel < 2e-5, "{name}: relative difference {rel}");
        worst = worst.max(rel);
    }
    println!("worst relative difference {worst:.2e}");
    // Removing every LoRA restores the base networks exactly (no accumulated rounding).
    model.set_loras(&[]).unwrap();
    assert_eq!(max_abs_diff(&unet_eps(&model, &unet_ref), &base_eps), 0.0);
    assert_eq!(max_abs_diff(&text_emb(&model, ids), &base_emb), 0.0);
}

#[test]
fn hashes_and_bad_files() {
    let (_, index) = refs();
    for (key, file) in index["files"].as_object().unwrap() {
        let path = fixtures().join(file["file"].as_str().unwrap());
        match LoraFile::open(&path, key) {
            Ok(l) => {
                assert_eq!(l.short_hash, file["a1111_lora_hash"].as_str().unwrap(), "{key}");
                assert_eq!(
                    l.module_count() as u64,
                    file["modules"].as_u64().unwrap(),
                    "{key}"
                );
            }
            Err(e) => {
                assert_eq!(key, "tiny_sdxl_like", "{e}");
                let msg = e.to_string();
                assert!(msg.contains("tiny_sdxl_like") && msg.contains("SDXL"), "{msg}");
            }
        }
    }
    let family = |f: &str| easel::models::lora_file::family_label(&fixtures().join("models/loras").join(f));
    assert_eq!(family("tiny_style.safetensors"), Some("SD 1.x"));
    assert_eq!(family("tiny_sdxl_like.safetensors"), Some("SDXL"));
    assert_eq!(family("missing.safetensors"), None);
    let mut model = SdModel::open(&model_path(), &Device::Cpu, DType::F32).unwrap();
    // Half of the partial file's modules match: they are merged and the rest reported.
    let partial = lora("models/loras/tiny_partial.safetensors");
    let report = model
        .set_loras(&[Applied {
            lora: partial,
            te: 1.0,
            unet: 1.0,
        }])
        .unwrap();
    assert_eq!((report.matched, report.unmatched.len()), (4, 4), "{report:?}");
    // A pickle is refused without being opened as one.
    let dir = tempfile::tempdir().unwrap();
    let pt = dir.path().join("old.pt");
    std::fs::write(&pt, b"\x80\x02}q\x00.").unwrap();
    let err = LoraFile::open(&pt, "old").unwrap_err().to_string();
    assert!(err.contains("old") && err.contains("never executed"), "{err}");
    // A file that is no LoRA at all.
    let err = LoraFile::open(&model_path(), "checkpoint")
        .unwrap_err()
        .to_string();
    assert!(err.contains("checkpoint"), "{err}");
}

#[test]
fn lcm_lora_layouts_apply_alike() {
    // LCM-LoRA ships in kohya's layout with diffusers module names (`lora_unet_down_blocks_…`, as
    // tiny_style is) and in diffusers' PEFT layout (`unet.down_blocks….lora_A/lora_B`, no alpha:
    // scale 1). The same weights in both layouts must change the UNet identically.
    let src = fixtures().join("models/loras/tiny_style.safetensors");
    let tensors = candle_core::safetensors::load(&src, &Device::Cpu).unwrap();
    // kohya's module path uses `_` for every `.`: the dotted diffusers paths come from the tiny
    // model's diffusers folder.
    let unet_file = fixtures().join("models/tiny-sd15-diffusers/unet/diffusion_pytorch_model.safetensors");
    let dotted: std::collections::HashMap<String, String> =
        candle_core::safetensors::load(&unet_file, &Device::Cpu)
            .unwrap()
            .keys()
            .filter_map(|k| {
                k.rsplit_once('.')
                    .map(|(m, _)| (m.replace('.', "_"), m.to_owned()))
            })
            .collect();
    let mut peft = std::collections::HashMap::new();
    for (k, down) in &tensors {
        let Some(stem) = k.strip_suffix(".lora_down.weight") else {
            continue;
        };
        let Some(module) = stem.strip_prefix("lora_unet_") else {
            continue;
        };
        let up = &tensors[&format!("{stem}.lora_up.weight")];
        let rank = down.dim(0).unwrap() as f64;
        let alpha = tensors.get(&format!("{stem}.alpha")).map_or(rank, |a| {
            f64::from(a.to_dtype(DType::F32).unwrap().to_vec0::<f32>().unwrap())
        });
        let path = &dotted[module];
        peft.insert(format!("unet.{path}.lora_A.weight"), down.clone());
        peft.insert(
            format!("unet.{path}.lora_B.weight"),
            (up * (alpha / rank)).unwrap(),
        );
    }
    assert!(!peft.is_empty());
    let dir = tempfile::tempdir().unwrap();
    let peft_path = dir.path().join("pytorch_lora_weights.safetensors");
    candle_core::safetensors::save(&peft, &peft_path).unwrap();

    let unet_ref = common::load_ref("unet.safetensors");
    let mut model = SdModel::open(&model_path(), &Device::Cpu, DType::F32).unwrap();
    let base = unet_eps(&model, &unet_ref);
    let apply = |model: &mut SdModel, path: &std::path::Path| {
        let lora = Arc::new(LoraFile::open(path, "lcm").unwrap());
        let report = model
            .set_loras(&[Applied {
                lora,
                te: 0.0,
                unet: 1.0,
            }])
            .unwrap();
        assert!(report.unmatched.is_empty(), "{:?}", report.unmatched);
        unet_eps(model, &unet_ref)
    };
    let kohya = apply(&mut model, &src);
    let from_peft = apply(&mut model, &peft_path);
    assert!(max_abs_diff(&kohya, &base) > 1e-3, "the LoRA changes the UNet");
    let rel = max_abs_diff(&kohya, &from_peft) / max_abs(&kohya);
    assert!(rel < 1e-5, "PEFT vs kohya layout: relative difference {rel}");
}
