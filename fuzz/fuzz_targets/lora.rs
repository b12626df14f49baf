//! Any bytes as a LoRA / LyCORIS `.safetensors` file: the reader, its family label, and every
//! module's weight change for a few layer shapes (right or wrong for the module).
#![no_main]

use std::sync::LazyLock;

use candle_core::Device;
use easel_fuzz::Scratch;
use easel_fuzz::models::lora_file::{self, LoraFile};
use libfuzzer_sys::fuzz_target;

static SCRATCH: LazyLock<Scratch> = LazyLock::new(|| Scratch::new("lora"));

const SHAPES: [&[usize]; 4] = [&[4, 4], &[8, 4], &[8, 4, 3, 3], &[320, 768]];

fuzz_target!(|data: &[u8]| {
    let path = SCRATCH.write("style.safetensors", data);
    let _ = lora_file::family_label(&path);
    if let Ok(file) = LoraFile::open(&path, "style") {
        for (_, _, module) in file.modules() {
            let _ = module.scale();
            for shape in SHAPES {
                let _ = module.delta(shape, &Device::Cpu);
            }
        }
    }
});
