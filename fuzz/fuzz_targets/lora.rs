//! Any bytes as a LoRA / LyCORIS `.safetensors` file: the reader, its family label, and every
//! module's weight change for a few layer shapes.
#![no_main]

use std::sync::LazyLock;

use easel_fuzz::Scratch;
use libfuzzer_sys::fuzz_target;

static SCRATCH: LazyLock<Scratch> = LazyLock::new(|| Scratch::new("lora"));

fuzz_target!(|data: &[u8]| {
    let _ = easel_fuzz::exercise::lora(SCRATCH.dir(), data);
});
