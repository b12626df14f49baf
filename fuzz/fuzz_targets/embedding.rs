//! Any bytes as a textual-inversion embedding in an embeddings folder: the folder reader, then a
//! prompt that calls the embedding by name.
#![no_main]

use std::sync::LazyLock;

use easel_fuzz::Scratch;
use easel_fuzz::prompt::ClipTokenizer;
use libfuzzer_sys::fuzz_target;

static SCRATCH: LazyLock<Scratch> = LazyLock::new(|| Scratch::new("embedding"));
static TOKENIZER: LazyLock<ClipTokenizer> =
    LazyLock::new(|| ClipTokenizer::bundled().expect("bundled tokenizer"));

fuzz_target!(|data: &[u8]| {
    let _ = easel_fuzz::exercise::embedding(SCRATCH.dir(), data, &TOKENIZER);
});
