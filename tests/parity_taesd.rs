//! TAESD parity with diffusers' `AutoencoderTiny` on tiny random weights (references from
//! `tests/fixtures/make_taesd_fixtures.py`): the diffusers folder, its weights file and madebyollin's
//! standalone decoder/encoder files load to the same network; decode and encode match; the end-to-end
//! `VAE Decoder: TAESD` path through the engine.

#![allow(clippy::unwrap_used)]

mod common;

use candle_core::{DType, Device};
use common::{fixtures, load_ref, max_abs_diff};
use easel::diffusion::taesd::{self, TinyDecoder, TinyEncoder};

fn approx_dir() -> std::path::PathBuf {
    fixtures().join("models").join("vae-approx")
}

/// Float parity tolerance: the networks are ~10 convolutions deep in f32.
const TOL: f32 = 2e-5;

#[test]
fn decoder_matches_diffusers_in_every_layout() {
    let r = load_ref("taesd/ref.safetensors");
    let dir = approx_dir();
    for path in [
        dir.join("taesd_decoder.safetensors"),
        dir.join("taesd"),
        dir.join("taesd").join("diffusion_pytorch_model.safetensors"),
    ] {
        let dec = TinyDecoder::open(&path, &Device::Cpu, DType::F32).unwrap();
        assert_eq!((dec.upscale_factor(), dec.latent_channels()), (2, 4));
        let out = dec.decode(&r["tiny_latents"]).unwrap();
        let diff = max_abs_diff(&out, &r["tiny_decoded"]);
        eprintln!("TAESD decode {}: max abs diff {diff:e}", path.display());
        assert!(diff < TOL, "{}: {diff}", path.display());
        // A1111's uint8 conversion; a value within rounding of a step boundary may differ by one.
        let rgb = taesd::to_rgb8(&out).unwrap().concat();
        let want = common::u8_bytes(&r["tiny_rgb8"]);
        let (worst, _) = common::byte_diff(&rgb, &want);
        assert!(worst <= 1, "{}: rgb8 differs by {worst}", path.display());
    }
}

#[test]
fn encoder_matches_diffusers_in_every_layout() {
    let r = load_ref("taesd/ref.safetensors");
    let dir = approx_dir();
    for path in [dir.join("taesd_encoder.safetensors"), dir.join("taesd")] {
        let enc = TinyEncoder::open(&path, &Device::Cpu, DType::F32).unwrap();
        assert_eq!(enc.downscale_factor(), 2);
        let out = enc.encode(&r["tiny_image"]).unwrap();
        let diff = max_abs_diff(&out, &r["tiny_encoded"]);
        eprintln!("TAESD encode {}: max abs diff {diff:e}", path.display());
        assert!(diff < TOL, "{}: {diff}", path.display());
    }
}

#[test]
fn the_real_8x_geometry_matches_diffusers() {
    let r = load_ref("taesd/ref.safetensors");
    let path = fixtures().join("ref").join("taesd").join("taesd8x.safetensors");
    let dec = TinyDecoder::open(&path, &Device::Cpu, DType::F32).unwrap();
    assert_eq!(dec.upscale_factor(), 8);
    let diff = max_abs_diff(&dec.decode(&r["x8_latents"]).unwrap(), &r["x8_decoded"]);
    eprintln!("TAESD 8x decode: max abs diff {diff:e}");
    assert!(diff < TOL, "{diff}");
    let enc = TinyEncoder::open(&path, &Device::Cpu, DType::F32).unwrap();
    assert_eq!(enc.downscale_factor(), 8);
    let diff = max_abs_diff(&enc.encode(&r["x8_image"]).unwrap(), &r["x8_encoded"]);
    eprintln!("TAESD 8x encode: max abs diff {diff:e}");
    assert!(diff < TOL, "{diff}");
}

#[test]
fn wrong_files_get_a_message() {
    let dir = approx_dir();
    // An encoder asked to decode, and the other way round.
    let err = TinyDecoder::open(&dir.join("taesd_encoder.safetensors"), &Device::Cpu, DType::F32)
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("not a TAESD decoder") && err.contains("looks like a TAESD encoder"),
        "{err}"
    );
    let err = TinyEncoder::open(&dir.join("taesd_decoder.safetensors"), &Device::Cpu, DType::F32)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("not a TAESD encoder"), "{err}");
    // A checkpoint is not a TAESD.
    let err = TinyDecoder::open(&common::model_path(), &Device::Cpu, DType::F32)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("not a TAESD decoder"), "{err}");
    // Finding: the standalone decoder first; nothing in an empty folder, with a message naming it.
    assert_eq!(
        taesd::find_decoder(std::slice::from_ref(&dir)),
        Some(dir.join("taesd_decoder.safetensors"))
    );
    let empty = tempfile::tempdir().unwrap();
    std::fs::write(empty.path().join("taesd_decoder.pth"), b"pickle").unwrap();
    let dirs = [empty.path().to_path_buf()];
    assert_eq!(taesd::find_decoder(&dirs), None);
    let msg = taesd::missing_message(&dirs, "decoder");
    assert!(
        msg.contains("taesd_decoder.safetensors") && msg.contains("pickle"),
        "{msg}"
    );
    // The encoder's message names the encoder's file and its download, and no decoder pickle.
    let msg = taesd::missing_message(&dirs, "encoder");
    assert!(
        msg.contains("taesd_encoder.safetensors")
            && msg.contains("easel download taesd-encoder")
            && !msg.contains("pickle"),
        "{msg}"
    );
}

/// Runs `request` on a fresh engine and returns the preview sizes and the finished images.
fn run_job(
    request: easel::request::Request,
) -> (
    Vec<(usize, usize)>,
    Vec<easel::request::GeneratedImage>,
    Option<String>,
) {
    use easel::engine::{Engine, Event};
    let engine = Engine::spawn(None).unwrap();
    let (job, _cancel) = engine.submit(request);
    let (mut previews, mut images) = (Vec::new(), Vec::new());
    let deadline = std::time::Instant::now() + std::time::Duration::from_mins(5);
    loop {
        assert!(std::time::Instant::now() < deadline, "the job did not finish");
        let Ok(event) = engine
            .events()
            .recv_timeout(std::time::Duration::from_millis(200))
        else {
            continue;
        };
        match event {
            Event::Preview { job: j, image } if j == job => previews.push((image.width, image.height)),
            Event::Image { job: j, image } if j == job => images.push(*image),
            Event::Finished { job: j } if j == job => return (previews, images, None),
            Event::Failed { job: j, message, .. } if j == job => return (previews, images, Some(message)),
            _ => {}
        }
    }
}

fn tiny_request(
    decoder: easel::request::VaeDecoder,
    dirs: Vec<std::path::PathBuf>,
) -> easel::request::Request {
    let params = easel::params::GenerationParams {
        prompt: "a red barn".into(),
        steps: 3,
        width: 64,
        height: 64,
        seed: 5,
        ..Default::default()
    };
    easel::request::Request {
        device: easel::request::DeviceChoice::Cpu,
        previews: true,
        vae_decoder: decoder,
        vae_approx_dirs: dirs,
        ..easel::request::Request::new(common::model_path(), params)
    }
}

#[test]
fn the_engine_previews_and_decodes_with_taesd() {
    use easel::request::VaeDecoder;
    // No decoder anywhere: latent-resolution previews, full decode, no VAE Decoder key.
    let (previews, images, failed) = run_job(tiny_request(VaeDecoder::Full, Vec::new()));
    assert_eq!(failed, None);
    // Previews are dropped when the channel is full, so check the ones that came.
    assert!(
        !previews.is_empty() && previews.iter().all(|&p| p == (32, 32)),
        "{previews:?}"
    );
    assert!(
        !images[0].infotext.contains("VAE Decoder"),
        "{}",
        images[0].infotext
    );
    let full = images[0].rgb.clone();
    // A decoder present: full-resolution previews; the final decode is still the VAE's.
    let (previews, images, failed) = run_job(tiny_request(VaeDecoder::Full, vec![approx_dir()]));
    assert_eq!(failed, None);
    assert!(
        !previews.is_empty() && previews.iter().all(|&p| p == (64, 64)),
        "{previews:?}"
    );
    assert_eq!(images[0].rgb, full);
    // TAESD decode: A1111's infotext key and other pixels.
    let (_, images, failed) = run_job(tiny_request(VaeDecoder::Taesd, vec![approx_dir()]));
    assert_eq!(failed, None);
    let image = &images[0];
    assert_eq!((image.width, image.height), (64, 64));
    assert!(
        image.infotext.contains("VAE Decoder: TAESD"),
        "{}",
        image.infotext
    );
    assert_ne!(image.rgb, full);
    // Asked for TAESD without one: a message saying where to put it.
    let empty = tempfile::tempdir().unwrap();
    let (_, images, failed) = run_job(tiny_request(VaeDecoder::Taesd, vec![empty.path().to_path_buf()]));
    assert!(images.is_empty());
    let failed = failed.unwrap();
    assert!(
        failed.contains("no TAESD decoder found") && failed.contains("taesd_decoder.safetensors"),
        "{failed}"
    );
}
