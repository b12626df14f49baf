//! Shared helpers for the integration tests: fixture paths, reference tensors, the tiny model.

#![allow(dead_code, clippy::unwrap_used, clippy::missing_panics_doc)]

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::OnceLock;

use candle_core::{DType, Device, Tensor};
use easel::diffusion::model::SdModel;

pub fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("fixtures")
}

pub fn model_path() -> PathBuf {
    fixtures().join("models").join("tiny-sd15.safetensors")
}

pub fn load_ref(name: &str) -> HashMap<String, Tensor> {
    candle_core::safetensors::load(fixtures().join("ref").join(name), &Device::Cpu).unwrap()
}

pub fn cases() -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(fixtures().join("ref").join("cases.json")).unwrap())
        .unwrap()
}

/// The tiny single-file model, loaded once per test binary.
pub fn tiny_model() -> &'static SdModel {
    static MODEL: OnceLock<SdModel> = OnceLock::new();
    MODEL.get_or_init(|| SdModel::open(&model_path(), &Device::Cpu, DType::F32).unwrap())
}

/// Largest absolute difference between two tensors of the same shape.
pub fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    assert_eq!(a.dims(), b.dims(), "shape mismatch");
    let a = a.to_dtype(DType::F32).unwrap();
    let b = b.to_dtype(DType::F32).unwrap();
    max_abs(&(a - b).unwrap())
}

/// Largest absolute value of a tensor.
pub fn max_abs(a: &Tensor) -> f32 {
    a.to_dtype(DType::F32)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

pub fn inpaint_model_path() -> PathBuf {
    fixtures().join("models").join("tiny-sd15-inpainting.safetensors")
}

/// The tiny 9-channel inpainting model, loaded once per test binary.
pub fn tiny_inpaint_model() -> &'static SdModel {
    static MODEL: OnceLock<SdModel> = OnceLock::new();
    MODEL.get_or_init(|| SdModel::open(&inpaint_model_path(), &Device::Cpu, DType::F32).unwrap())
}

/// An image-shaped u8 tensor `[H, W, C]` as bytes.
pub fn u8_bytes(t: &Tensor) -> Vec<u8> {
    t.flatten_all().unwrap().to_vec1::<u8>().unwrap()
}

/// Largest absolute difference of two byte buffers, and how many differ.
pub fn byte_diff(a: &[u8], b: &[u8]) -> (u8, usize) {
    assert_eq!(a.len(), b.len(), "size mismatch");
    a.iter().zip(b).fold((0, 0), |(m, n), (x, y)| {
        let d = x.abs_diff(*y);
        (m.max(d), n + usize::from(d > 0))
    })
}

/// An observer that lets every step pass and treats any warning as a test failure.
pub struct Quiet;

impl easel::diffusion::pipeline::Observer for Quiet {
    fn on_step(
        &mut self,
        _: easel::request::StepInfo,
        _: &Tensor,
    ) -> Result<(), easel::diffusion::DiffusionError> {
        Ok(())
    }
    fn on_image(&mut self, _: &easel::request::GeneratedImage) {}
    fn on_warning(&mut self, m: &str) {
        panic!("unexpected warning {m}");
    }
}
