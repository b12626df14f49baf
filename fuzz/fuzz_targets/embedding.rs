//! Any bytes as a textual-inversion embedding in an embeddings folder: the folder reader, then a
//! prompt that calls the embedding by name.
#![no_main]

use std::sync::LazyLock;

use easel_fuzz::Scratch;
use easel_fuzz::diffusion::embeddings::EmbeddingDb;
use easel_fuzz::prompt::{ClipTokenizer, chunk_prompt_with};
use libfuzzer_sys::fuzz_target;

static SCRATCH: LazyLock<Scratch> = LazyLock::new(|| Scratch::new("embedding"));
static TOKENIZER: LazyLock<ClipTokenizer> =
    LazyLock::new(|| ClipTokenizer::bundled().expect("bundled tokenizer"));

fuzz_target!(|data: &[u8]| {
    let _ = SCRATCH.write("tiny_neg.safetensors", data);
    let db = EmbeddingDb::load(&[SCRATCH.dir().to_path_buf()], &TOKENIZER, 8);
    let _ = chunk_prompt_with(&TOKENIZER, "a photo, tiny_neg, (tiny_neg:1.2)", Some(&db));
});
