//! Any bytes as a `.safetensors` file: the header reader, every tensor loaded as f32, and the
//! family detection that the model browser runs on each file it lists.
#![no_main]

use std::sync::LazyLock;

use candle_core::{DType, Device};
use easel_fuzz::Scratch;
use easel_fuzz::models::{self, family, safetensors::SafetensorsFile};
use libfuzzer_sys::fuzz_target;

static SCRATCH: LazyLock<Scratch> = LazyLock::new(|| Scratch::new("safetensors"));

fuzz_target!(|data: &[u8]| {
    let path = SCRATCH.write("model.safetensors", data);
    if let Ok(file) = SafetensorsFile::open(&path) {
        for name in file.tensors().keys() {
            let _ = file.load(name, DType::F32, &Device::Cpu);
        }
        let _ = family::detect_single_file(&file);
        let _ = models::controlnet::looks_like_controlnet(&file);
    }
    let _ = models::inspect(&path);
    let _ = models::controlnet::ControlNetFile::open(&path);
    let _ = models::vae_file::VaeFile::open(&path);
});
