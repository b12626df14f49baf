//! Any bytes as a `.safetensors` file: the header reader, every tensor loaded as f32, and the
//! family detection that the model browser runs on each file it lists.
#![no_main]

use std::sync::LazyLock;

use easel_fuzz::Scratch;
use libfuzzer_sys::fuzz_target;

static SCRATCH: LazyLock<Scratch> = LazyLock::new(|| Scratch::new("safetensors"));

fuzz_target!(|data: &[u8]| {
    let _ = easel_fuzz::exercise::safetensors_header(SCRATCH.dir(), data);
});
