//! `easel png-info` on images from other tools, built here byte by byte from each format's
//! documentation: A1111 JPEG and WebP (EXIF UserComment), ComfyUI PNG graphs, NovelAI, stealth
//! pixels; the JSON form, and exit code 2 with one line when an image has no metadata.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use image::ImageEncoder as _;

fn easel(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_easel"))
        .args(args)
        .env("EASEL_CACHE_DIR", std::env::temp_dir().join("easel-test-cache"))
        .output()
        .unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn json_info(path: &Path) -> serde_json::Value {
    let o = easel(&["png-info", "--json", path.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    serde_json::from_slice(&o.stdout).unwrap()
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

/// A 4×4 PNG with the given chunks (type, data) after IHDR.
fn png(chunks: &[(&[u8; 4], Vec<u8>)]) -> Vec<u8> {
    let mut bytes = Vec::new();
    let mut encoder = png::Encoder::new(&mut bytes, 4, 4);
    encoder.set_color(png::ColorType::Rgb);
    let mut writer = encoder.write_header().unwrap();
    for (kind, data) in chunks {
        writer.write_chunk(png::chunk::ChunkType(**kind), data).unwrap();
    }
    writer.write_image_data(&[90; 48]).unwrap();
    writer.finish().unwrap();
    bytes
}

fn text_chunk(keyword: &str, text: &str) -> (&'static [u8; 4], Vec<u8>) {
    let mut data = keyword.as_bytes().to_vec();
    data.push(0);
    data.extend_from_slice(text.as_bytes());
    (b"tEXt", data)
}

/// A little-endian EXIF block (TIFF 6.0 header, IFD0 with an Exif IFD pointer, Exif IFD with a
/// UserComment of `comment`), as many non-piexif tools lay it out.
fn exif_le(comment: &[u8]) -> Vec<u8> {
    let mut out = b"II*\0".to_vec();
    out.extend(8u32.to_le_bytes());
    out.extend(1u16.to_le_bytes());
    out.extend(0x8769u16.to_le_bytes());
    out.extend(4u16.to_le_bytes());
    out.extend(1u32.to_le_bytes());
    out.extend(26u32.to_le_bytes());
    out.extend(0u32.to_le_bytes());
    out.extend(1u16.to_le_bytes());
    out.extend(0x9286u16.to_le_bytes());
    out.extend(7u16.to_le_bytes());
    out.extend((comment.len() as u32).to_le_bytes());
    out.extend(44u32.to_le_bytes());
    out.extend(0u32.to_le_bytes());
    out.extend_from_slice(comment);
    out
}

fn unicode_le(text: &str) -> Vec<u8> {
    let mut comment = b"UNICODE\0".to_vec();
    comment.extend(text.encode_utf16().flat_map(u16::to_le_bytes));
    comment
}

/// A real 8×8 JPEG with `segments` (marker, body) inserted after SOI.
fn jpeg(segments: &[(u8, Vec<u8>)]) -> Vec<u8> {
    let mut plain = Vec::new();
    image::codecs::jpeg::JpegEncoder::new(&mut plain)
        .write_image(&[128; 8 * 8 * 3], 8, 8, image::ExtendedColorType::Rgb8)
        .unwrap();
    let mut out = plain[..2].to_vec();
    for (marker, body) in segments {
        out.extend([0xff, *marker]);
        out.extend(((body.len() + 2) as u16).to_be_bytes());
        out.extend_from_slice(body);
    }
    out.extend_from_slice(&plain[2..]);
    out
}

const A1111: &str = "a lighthouse at dusk, <lora:ink_style:0.7>\nNegative prompt: fog\nSteps: 28, Sampler: DPM++ 2M SDE, \
                     Schedule type: Karras, CFG scale: 6.5, Seed: 1234, Size: 832x1216, Model hash: 31e35c80fc, Model: \
                     sd_xl_base_1.0, Denoising strength: 0.4, Clip skip: 2, Lora hashes: \"ink_style: 0123abcd4567\", \
                     Version: v1.10.1";

#[test]
fn a1111_jpeg_webp_and_png_give_the_same_json() {
    let dir = tempfile::tempdir().unwrap();
    let mut app1 = b"Exif\0\0".to_vec();
    app1.extend(exif_le(&unicode_le(A1111)));
    let jpg = write(dir.path(), "civitai.jpg", &jpeg(&[(0xe1, app1)]));

    let mut webp_bytes = Vec::new();
    let mut encoder = image::codecs::webp::WebPEncoder::new_lossless(&mut webp_bytes);
    let mut be = b"UNICODE\0".to_vec();
    be.extend(A1111.encode_utf16().flat_map(u16::to_be_bytes));
    encoder.set_exif_metadata(exif_le(&be)).unwrap();
    encoder
        .write_image(&[7; 4 * 4 * 3], 4, 4, image::ExtendedColorType::Rgb8)
        .unwrap();
    let webp = write(dir.path(), "forge.webp", &webp_bytes);
    let png_path = write(dir.path(), "a1111.png", &png(&[text_chunk("parameters", A1111)]));

    for path in [&jpg, &webp, &png_path] {
        let json = json_info(path);
        let name = path.display();
        assert_eq!(json["generator"], "A1111", "{name}");
        assert_eq!(
            json["prompt"], "a lighthouse at dusk, <lora:ink_style:0.7>",
            "{name}"
        );
        assert_eq!(json["negative_prompt"], "fog");
        assert_eq!(json["steps"], 28);
        assert_eq!(json["sampler"], "DPM++ 2M SDE");
        assert_eq!(json["schedule"], "Karras");
        assert_eq!(json["cfg_scale"], 6.5);
        assert_eq!(json["seed"], 1234);
        assert_eq!(
            (json["width"].clone(), json["height"].clone()),
            (832.into(), 1216.into())
        );
        assert_eq!(json["model"], "sd_xl_base_1.0");
        assert_eq!(json["model_hash"], "31e35c80fc");
        assert_eq!(json["denoising_strength"], 0.4);
        assert_eq!(json["clip_skip"], 2);
        assert_eq!(json["loras"][0]["name"], "ink_style");
        assert_eq!(json["loras"][0]["hash"], "0123abcd4567");
        assert_eq!(json["infotext"], A1111);
        assert_eq!(json["warnings"], serde_json::json!([]));
    }
    // The readable form names the generator and keeps every number of a sampler Easel lacks.
    let o = easel(&["png-info", jpg.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.starts_with(A1111), "{text}");
    assert!(
        text.contains("generator: A1111 (from EXIF UserComment)"),
        "{text}"
    );
    assert!(
        text.contains("steps:     28, CFG 6.5, seed 1234, size 832x1216"),
        "{text}"
    );
}

const COMFY_GRAPH: &str = r#"{
  "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "dreamshaper_8.safetensors"}},
  "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 512, "height": 768, "batch_size": 1}},
  "6": {"class_type": "CLIPTextEncode", "inputs": {"text": ["20", 0], "clip": ["4", 1]}},
  "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry", "clip": ["4", 1]}},
  "10": {"class_type": "LoraLoader", "inputs": {"lora_name": "film.safetensors", "strength_model": 0.6,
         "strength_clip": 1, "model": ["4", 0], "clip": ["4", 1]}},
  "3": {"class_type": "KSampler", "inputs": {"seed": ["21", 0], "steps": 25, "cfg": 6, "sampler_name": "uni_pc",
        "scheduler": "sgm_uniform", "denoise": 1, "model": ["10", 0], "positive": ["6", 0],
        "negative": ["7", 0], "latent_image": ["5", 0]}},
  "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
  "9": {"class_type": "SaveImage", "inputs": {"images": ["8", 0], "filename_prefix": "ComfyUI"}},
  "20": {"class_type": "StringConcatenate", "inputs": {"string_a": "a red fox", "string_b": "in snow", "delimiter": ", "}},
  "21": {"class_type": "PrimitiveInt", "inputs": {"value": 777}},
  "30": {"class_type": "KSampler", "inputs": {"seed": 1, "steps": 5, "cfg": 2, "sampler_name": "euler",
         "scheduler": "normal", "denoise": 1, "model": ["4", 0], "positive": ["7", 0], "negative": ["7", 0],
         "latent_image": ["5", 0]}}
}"#;

#[test]
fn comfyui_png_json_maps_names_and_keeps_numbers() {
    let dir = tempfile::tempdir().unwrap();
    // ComfyUI writes its chunks as tEXt with UTF-8 bytes; the graph comes after IDAT here.
    let mut bytes = png(&[]);
    let iend = bytes.len() - 12;
    let mut chunk = Vec::new();
    let (_, data) = text_chunk("prompt", COMFY_GRAPH);
    chunk.extend((data.len() as u32).to_be_bytes());
    chunk.extend(b"tEXt");
    chunk.extend(&data);
    let mut crc_input = b"tEXt".to_vec();
    crc_input.extend(&data);
    chunk.extend(crc32(&crc_input).to_be_bytes());
    bytes.splice(iend..iend, chunk);
    let path = write(dir.path(), "comfy.png", &bytes);
    let json = json_info(&path);
    assert_eq!(json["generator"], "ComfyUI");
    assert_eq!(json["prompt"], "a red fox, in snow");
    assert_eq!(json["negative_prompt"], "blurry");
    assert_eq!(json["seed"], 777);
    assert_eq!(json["steps"], 25);
    assert_eq!(json["sampler"], "UniPC");
    assert_eq!(json["schedule"], "SGM Uniform");
    assert_eq!(
        (json["width"].clone(), json["height"].clone()),
        (512.into(), 768.into())
    );
    assert_eq!(json["model"], "dreamshaper_8");
    assert_eq!(json["loras"][0]["name"], "film");
    assert_eq!(json["loras"][0]["weight"], 0.6);
    assert_eq!(json["model_hash"], serde_json::Value::Null);
    let infotext = json["infotext"].as_str().unwrap();
    assert!(
        infotext.contains("Sampler: UniPC, Schedule type: SGM Uniform"),
        "{infotext}"
    );
    assert!(
        infotext.contains("Other sampler 1: \"KSampler 30: seed 1"),
        "{infotext}"
    );

    // Replaying it: UniPC runs, so the replay gets as far as the missing checkpoint.
    let out = dir.path().join("o.png");
    let o = easel(&[
        "generate",
        "--model",
        "missing.safetensors",
        "--params-from",
        path.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    assert!(!stderr(&o).contains("runs yet"), "{}", stderr(&o));
    assert!(stderr(&o).contains("missing.safetensors"), "{}", stderr(&o));
}

/// CRC-32 of PNG chunks (ISO 3309, as in the PNG spec's sample code).
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                0xedb8_8320 ^ (crc >> 1)
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[test]
fn novelai_stealth_alpha_is_read_from_the_pixels() {
    let dir = tempfile::tempdir().unwrap();
    // NovelAI hides the JSON of its text fields with the `stealth_pngcomp` signature; this one is
    // uncompressed (`stealth_pnginfo`), which the same readers accept.
    let hidden = serde_json::json!({
        "Software": "NovelAI",
        "Source": "NovelAI Diffusion V4.5 4BDE2A90",
        "Comment": serde_json::json!({"prompt": "1girl, cherry blossoms", "uc": "lowres", "steps": 28, "scale": 5.0,
            "seed": 42, "width": 64, "height": 64, "sampler": "k_euler_ancestral", "noise_schedule": "karras"}).to_string(),
    })
    .to_string();
    let mut bits = Vec::new();
    for byte in b"stealth_pnginfo"
        .iter()
        .copied()
        .chain(((hidden.len() * 8) as u32).to_be_bytes())
        .chain(hidden.bytes())
    {
        bits.extend((0..8).rev().map(|i| byte >> i & 1));
    }
    let (w, h) = (64u32, 64u32);
    let mut rgba = vec![200u8; (w * h * 4) as usize];
    for (i, bit) in bits.into_iter().enumerate() {
        let (x, y) = (i as u32 / h, i as u32 % h);
        let alpha = &mut rgba[((y * w + x) * 4 + 3) as usize];
        *alpha = 0xfe | bit;
    }
    let path = dir.path().join("nai.png");
    image::RgbaImage::from_raw(w, h, rgba)
        .unwrap()
        .save(&path)
        .unwrap();
    let json = json_info(&path);
    assert_eq!(json["generator"], "NovelAI");
    assert_eq!(json["prompt"], "1girl, cherry blossoms");
    assert_eq!(json["sampler"], "Euler a");
    assert_eq!(json["schedule"], "Karras");
    assert_eq!(json["model"], "NovelAI Diffusion V4.5 4BDE2A90");
    let o = easel(&["png-info", path.to_str().unwrap()]);
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("pixel low bits"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn images_without_metadata_exit_2_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        write(
            dir.path(),
            "plain.png",
            &png(&[text_chunk("Software", "GIMP 2.10")]),
        ),
        write(
            dir.path(),
            "plain.jpg",
            &jpeg(&[(0xfe, b"just a comment with no settings".to_vec())]),
        ),
    ];
    for path in &cases {
        for json in [false, true] {
            let mut args = vec!["png-info", path.to_str().unwrap()];
            if json {
                args.insert(1, "--json");
            }
            let o = easel(&args);
            let err = stderr(&o);
            assert_eq!(o.status.code(), Some(2), "{err}");
            assert_eq!(err.lines().count(), 1, "{err}");
            assert!(err.contains("carries no generation metadata"), "{err}");
            assert!(o.stdout.is_empty());
        }
    }
    let o = easel(&["png-info", cases[0].to_str().unwrap()]);
    assert!(
        stderr(&o).contains("metadata texts found: Software"),
        "{}",
        stderr(&o)
    );
    let text = write(dir.path(), "notes.txt", b"hello");
    let o = easel(&["png-info", text.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("not a PNG, JPEG, WebP or AVIF image"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn json_in_parameters_is_read_not_summarised_as_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let swarm = r#"{"sui_image_params": {"prompt": "a cabin", "negativeprompt": "", "model": "juggernautXL",
        "seed": 31337, "steps": 32, "cfgscale": 4.5, "width": 1344, "height": 768, "sampler": "euler_ancestral",
        "scheduler": "karras"}}"#;
    let path = write(dir.path(), "swarm.png", &png(&[text_chunk("parameters", swarm)]));
    let json = json_info(&path);
    assert_eq!(json["generator"], "SwarmUI");
    assert_eq!(json["seed"], 31337);
    assert_eq!(
        (json["width"].clone(), json["height"].clone()),
        (1344.into(), 768.into())
    );
    assert_eq!(json["sampler"], "Euler a");
    assert_eq!(json["schedule"], "Karras");
    assert_eq!(json["denoising_strength"], serde_json::Value::Null);
}
