//! Any bytes as the text configs that come with a model: an LDM `.yaml` sidecar, a CLIP
//! `config.json`, or the four configs of a diffusers folder. The first byte picks which.
#![no_main]

use std::sync::LazyLock;

use easel_fuzz::Scratch;
use libfuzzer_sys::fuzz_target;

static SCRATCH: LazyLock<Scratch> = LazyLock::new(|| Scratch::new("config"));

fuzz_target!(|data: &[u8]| {
    let _ = easel_fuzz::exercise::model_config(SCRATCH.dir(), data);
});
