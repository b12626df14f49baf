//! A standalone VAE file instead of the checkpoint's (A1111's SD VAE setting): the same weights give
//! the same pixels, other weights change decode and encode, the infotext names the file, replay finds it.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use candle_core::{Device, Tensor};
use common::{fixtures, model_path};
use easel::engine::{Engine, Event};
use easel::params::GenerationParams;
use easel::request::{DeviceChoice, InitImage, Request};

/// Writes the tiny checkpoint's VAE as a standalone file, `prefixed` keeping `first_stage_model.`,
/// with each tensor in `scale` multiplied by its factor.
fn extract_vae(path: &Path, prefixed: bool, scale: &[(&str, f64)]) -> PathBuf {
    let tensors = candle_core::safetensors::load(model_path(), &Device::Cpu).unwrap();
    let vae: HashMap<String, Tensor> = tensors
        .into_iter()
        .filter_map(|(k, t)| {
            let body = k.strip_prefix("first_stage_model.")?.to_owned();
            let t = match scale.iter().find(|(n, _)| *n == body) {
                Some((_, f)) => t.affine(*f, 0.0).unwrap(),
                None => t,
            };
            Some((if prefixed { k } else { body }, t))
        })
        .collect();
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    candle_core::safetensors::save(&vae, path).unwrap();
    path.to_path_buf()
}

const HALF_OUT: &[(&str, f64)] = &[("decoder.conv_out.weight", 0.5)];

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

fn generate(out: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "generate",
        "--model",
        model_path().to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
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
    ]
    .into_iter()
    .map(str::to_owned)
    .collect::<Vec<_>>();
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    easel(&refs)
}

fn pixels(png: &Path) -> Vec<u8> {
    image::open(png).unwrap().to_rgb8().into_raw()
}

fn parameters_of(png: &Path) -> String {
    let chunks = easel::infotext::png_chunks::read_png_text_chunks(png).unwrap();
    chunks.into_iter().find(|(k, _)| k == "parameters").unwrap().1
}

fn assert_bad_input(o: &Output, needle: &str) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(2), "stderr: {err}");
    assert!(err.contains(needle), "expected {needle:?} in: {err}");
    assert!(!err.contains("panicked"), "{err}");
}

fn short_hash(path: &Path) -> String {
    easel::models::hash::cached_sha256_in(None, path, |_, _| {}).unwrap()[..10].to_owned()
}

#[test]
fn vae_override_from_the_command_line_writes_a1111s_keys_and_replays() {
    let dir = tempfile::tempdir().unwrap();
    let vae_dir = dir.path().join("models").join("VAE");
    let plain = extract_vae(&vae_dir.join("plain.safetensors"), false, &[]);
    let half = extract_vae(&vae_dir.join("half.safetensors"), false, HALF_OUT);
    let prefixed = extract_vae(&dir.path().join("prefixed.safetensors"), true, HALF_OUT);

    let base = dir.path().join("base.png");
    let o = generate(&base, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!parameters_of(&base).contains("VAE"), "{}", parameters_of(&base));

    // The checkpoint's own weights as a file: the same pixels, and A1111's keys after `Model`.
    let same = dir.path().join("same.png");
    let o = generate(&same, &["--vae", plain.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(pixels(&base), pixels(&same));
    let text = parameters_of(&same);
    let expected = format!(
        "Model: tiny-sd15, VAE hash: {}, VAE: plain.safetensors, ",
        short_hash(&plain)
    );
    assert!(text.contains(&expected), "{text}");

    // A diffusers AutoencoderKL file (the diffusers copy of the same weights) reads the same.
    let diffusers = fixtures()
        .join("models")
        .join("tiny-sd15-diffusers")
        .join("vae")
        .join("diffusion_pytorch_model.safetensors");
    let from_diffusers = dir.path().join("diffusers.png");
    let o = generate(&from_diffusers, &["--vae", diffusers.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(pixels(&base), pixels(&from_diffusers));

    // Other weights change the picture; the `first_stage_model.` layout reads the same.
    let changed = dir.path().join("changed.png");
    let o = generate(&changed, &["--vae", half.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_ne!(pixels(&base), pixels(&changed));
    let again = dir.path().join("prefixed.png");
    let o = generate(&again, &["--vae", prefixed.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(pixels(&changed), pixels(&again));

    // Replay finds `VAE: half.safetensors` in the folder given, or says where it looked.
    let replay = |out: &Path, vae_dir: &Path| {
        easel(&[
            "generate",
            "--model",
            model_path().to_str().unwrap(),
            "--params-from",
            changed.to_str().unwrap(),
            "--vae-dir",
            vae_dir.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ])
    };
    let replayed = dir.path().join("replayed.png");
    let o = replay(&replayed, &vae_dir);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(pixels(&changed), pixels(&replayed));
    assert!(parameters_of(&replayed).contains("VAE: half.safetensors"));
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let o = replay(&dir.path().join("x.png"), &empty);
    assert_bad_input(
        &o,
        "the VAE 'half.safetensors', which is in none of the VAE folders",
    );
}

#[test]
fn wrong_vae_files_are_clear_messages() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("x.png");
    let model = model_path();
    let o = generate(&out, &["--vae", model.to_str().unwrap()]);
    assert_bad_input(&o, "this is a full checkpoint, not a VAE");
    let lora = fixtures()
        .join("models")
        .join("loras")
        .join("tiny_style.safetensors");
    let o = generate(&out, &["--vae", lora.to_str().unwrap()]);
    assert_bad_input(&o, "this is a LoRA, not a VAE");
    let pickle = dir.path().join("vae.pt");
    std::fs::write(&pickle, b"not really").unwrap();
    let o = generate(&out, &["--vae", pickle.to_str().unwrap()]);
    assert_bad_input(&o, "refusing to open");
    let missing = dir.path().join("missing.safetensors");
    let o = generate(&out, &["--vae", missing.to_str().unwrap()]);
    assert_bad_input(&o, "missing.safetensors");
    // A VAE of another shape names the tensor and the file.
    let tensors = candle_core::safetensors::load(model_path(), &Device::Cpu).unwrap();
    let odd: HashMap<String, Tensor> = tensors
        .into_iter()
        .filter_map(|(k, t)| {
            let body = k.strip_prefix("first_stage_model.")?.to_owned();
            let t = if body == "decoder.conv_in.bias" {
                Tensor::zeros(7, t.dtype(), &Device::Cpu).unwrap()
            } else {
                t
            };
            Some((body, t))
        })
        .collect();
    let odd_path = dir.path().join("odd.safetensors");
    candle_core::safetensors::save(&odd, &odd_path).unwrap();
    let o = generate(&out, &["--vae", odd_path.to_str().unwrap()]);
    assert_bad_input(&o, "decoder.conv_in.bias");
}

/// Runs `request` on `engine`; the first image's pixels.
fn run(engine: &Engine, request: Request) -> Vec<u8> {
    let (job, _) = engine.submit(request);
    let deadline = Instant::now() + Duration::from_mins(5);
    let mut rgb = None;
    loop {
        assert!(Instant::now() < deadline, "job {job} did not finish");
        match engine.events().recv_timeout(Duration::from_mins(5)).unwrap() {
            Event::Image { job: j, image } if j == job => rgb = Some(image.rgb.clone()),
            Event::Finished { job: j } if j == job => return rgb.unwrap(),
            Event::Failed { job: j, message, .. } if j == job => panic!("{message}"),
            _ => {}
        }
    }
}

#[test]
fn the_engine_swaps_the_vae_per_job_for_decode_and_encode() {
    let dir = tempfile::tempdir().unwrap();
    let half = extract_vae(&dir.path().join("half.safetensors"), false, HALF_OUT);
    let enc = extract_vae(
        &dir.path().join("enc.safetensors"),
        false,
        &[("encoder.conv_out.weight", 0.5)],
    );
    let params = GenerationParams {
        prompt: "a lighthouse".into(),
        steps: 3,
        width: 64,
        height: 64,
        seed: 3,
        ..GenerationParams::default()
    };
    let request = |vae: Option<&PathBuf>, init: Option<InitImage>| Request {
        device: DeviceChoice::Cpu,
        vae: vae.cloned(),
        init,
        ..Request::new(model_path(), params.clone())
    };
    let engine = Engine::spawn(None).unwrap();
    let base = run(&engine, request(None, None));
    assert_ne!(run(&engine, request(Some(&half), None)), base);
    // The next job without an override is the checkpoint's VAE again.
    assert_eq!(run(&engine, request(None, None)), base);

    // img2img encodes with the override: a changed encoder changes the result.
    let picture = image::RgbImage::from_fn(64, 64, |x, y| image::Rgb([(x * 4) as u8, (y * 4) as u8, 128]));
    let init = || {
        Some(InitImage {
            image: picture.clone(),
            mask: None,
            settings: easel::request::Img2ImgSettings::default(),
        })
    };
    let own = run(&engine, request(None, init()));
    assert_ne!(run(&engine, request(Some(&enc), init())), own);
    assert_eq!(run(&engine, request(None, init())), own);
}
