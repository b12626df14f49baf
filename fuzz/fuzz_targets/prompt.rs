//! Any text as a prompt: emphasis, prompt editing and its step schedule, extra-network tags, and
//! the tokenised 75-token chunks.
#![no_main]

use std::sync::LazyLock;

use easel_fuzz::prompt::{
    ClipTokenizer, attention::parse_attention, chunk_prompt, editing, extra_networks::extract_tags,
};
use libfuzzer_sys::fuzz_target;

static TOKENIZER: LazyLock<ClipTokenizer> =
    LazyLock::new(|| ClipTokenizer::bundled().expect("bundled tokenizer"));

fuzz_target!(|data: &[u8]| {
    let Some((&steps, text)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(text);
    let _ = parse_attention(&text);
    let _ = editing::parse(&text);
    for (_, part) in editing::schedule(&text, usize::from(steps % 64) + 1) {
        let _ = parse_attention(&part);
    }
    let _ = extract_tags(&text);
    let _ = chunk_prompt(&TOKENIZER, &text);
});
