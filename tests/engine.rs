//! The inference worker: events in order, cancel within one step, the worker keeps serving after
//! failures and cancels, and the f16 VAE NaN fallback.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use candle_core::{DType, Device, Tensor};
use common::model_path;
use easel::diffusion::model::SdModel;
use easel::diffusion::pipeline::{self, Observer};
use easel::engine::{Engine, Event, FailureKind};
use easel::params::GenerationParams;
use easel::request::{DeviceChoice, GeneratedImage, Request, StepInfo};

fn small(steps: u32) -> GenerationParams {
    GenerationParams {
        prompt: "a lighthouse".into(),
        steps,
        width: 64,
        height: 64,
        seed: 3,
        ..GenerationParams::default()
    }
}

/// Collects events of `job` until its terminal event (bounded wait).
fn until_done(engine: &Engine, job: u64, mut on: impl FnMut(&Event)) -> Event {
    let deadline = Instant::now() + Duration::from_mins(5);
    loop {
        assert!(Instant::now() < deadline, "job {job} did not finish");
        let event = engine.events().recv_timeout(Duration::from_mins(5)).unwrap();
        on(&event);
        match &event {
            Event::Finished { job: j } | Event::Cancelled { job: j } | Event::Failed { job: j, .. }
                if *j == job =>
            {
                return event;
            }
            _ => {}
        }
    }
}

/// A CPU request for `model`.
fn cpu(model: std::path::PathBuf, params: GenerationParams) -> Request {
    Request {
        device: DeviceChoice::Cpu,
        ..Request::new(model, params)
    }
}

#[test]
fn cancel_stops_within_a_step_and_the_worker_keeps_going() {
    let engine = Engine::spawn(None).unwrap();
    let (job, cancel) = engine.submit(cpu(model_path(), small(200)));
    let mut last_step = 0;
    let end = until_done(&engine, job, |e| {
        if let Event::Progress { info, .. } = e {
            last_step = info.step;
            if info.step == 2 {
                cancel.store(true, Ordering::Relaxed);
            }
        }
    });
    assert!(matches!(end, Event::Cancelled { .. }), "{end:?}");
    assert!(last_step <= 3, "stopped at step {last_step}");

    // A broken job next: a clear failure, and the worker survives it.
    let (bad, _) = engine.submit(cpu(model_path().with_extension("missing"), small(2)));
    match until_done(&engine, bad, |_| {}) {
        Event::Failed { kind, message, .. } => {
            assert_eq!(kind, FailureKind::BadInput);
            assert!(
                message.contains("unsupported model format") || message.contains("not found"),
                "{message}"
            );
        }
        other => panic!("{other:?}"),
    }

    // Then a normal job completes with progress, one image, and the infotext.
    let (ok, _) = engine.submit(cpu(model_path(), small(4)));
    let mut steps = Vec::new();
    let mut images: Vec<Box<GeneratedImage>> = Vec::new();
    let end = until_done(&engine, ok, |e| match e {
        Event::Progress { info, .. } => steps.push(info.step),
        Event::Image { image, .. } => images.push(image.clone()),
        _ => {}
    });
    assert!(matches!(end, Event::Finished { .. }), "{end:?}");
    assert_eq!(steps, vec![1, 2, 3, 4]);
    assert_eq!(images.len(), 1);
    assert!(
        images[0]
            .infotext
            .contains("Model hash: bb4501b74a, Model: tiny-sd15")
    );
}

struct Recorder(Vec<String>);
impl Observer for Recorder {
    fn on_step(&mut self, _: StepInfo, _: &Tensor) -> Result<(), easel::diffusion::DiffusionError> {
        Ok(())
    }
    fn on_image(&mut self, _: &GeneratedImage) {}
    fn on_warning(&mut self, m: &str) {
        self.0.push(m.to_owned());
    }
}

#[test]
fn half_precision_vae_overflow_falls_back_to_f32() {
    let model = SdModel::open(&model_path(), &Device::Cpu, DType::F16).unwrap();
    // Latents this large overflow f16 inside the decoder (the classic SD 1.x fp16 VAE failure).
    let z = (Tensor::randn(0f32, 1.0, (1, 4, 32, 32), &Device::Cpu).unwrap() * 3000.0).unwrap();
    let mut rec = Recorder(Vec::new());
    let rgb = pipeline::decode_rgb(&model, &z, &mut rec).unwrap();
    assert_eq!(rec.0.len(), 1, "one warning about the fallback");
    assert!(rec.0[0].contains("f32"), "{:?}", rec.0);
    assert_eq!(rgb[0].len(), 64 * 64 * 3);
}

#[test]
fn a_lora_tag_for_another_family_fails_the_job_naming_the_lora_and_both_families() {
    let engine = Engine::spawn(None).unwrap();
    let mut params = small(2);
    params.prompt = "a lighthouse <lora:tiny_sdxl_like:1>".into();
    let request = Request {
        lora_dirs: vec![common::fixtures().join("models").join("loras")],
        ..cpu(model_path(), params)
    };
    let (job, _) = engine.submit(request);
    let mut steps = 0;
    let end = until_done(&engine, job, |e| {
        if matches!(e, Event::Progress { .. }) {
            steps += 1;
        }
    });
    match end {
        Event::Failed { kind, message, .. } => {
            assert_eq!(kind, FailureKind::BadInput, "{message}");
            for part in ["tiny_sdxl_like", "SDXL", "SD 1.x"] {
                assert!(message.contains(part), "{part:?} missing from: {message}");
            }
        }
        other => panic!("expected a failure, got {other:?}"),
    }
    assert_eq!(steps, 0, "refused before sampling");
}
