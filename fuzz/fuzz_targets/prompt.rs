//! Any text as a prompt (the first byte sets the step count): emphasis, prompt editing and its
//! step schedule, extra-network tags, and the tokenised 75-token chunks.
#![no_main]

use std::sync::LazyLock;

use easel_fuzz::prompt::ClipTokenizer;
use libfuzzer_sys::fuzz_target;

static TOKENIZER: LazyLock<ClipTokenizer> =
    LazyLock::new(|| ClipTokenizer::bundled().expect("bundled tokenizer"));

fuzz_target!(|data: &[u8]| {
    let _ = easel_fuzz::exercise::prompt(data, &TOKENIZER);
});
