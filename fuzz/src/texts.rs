//! How the `recognise_texts` target turns bytes into metadata texts (shared with the corpus replay
//! test in `tests/fuzz_corpus.rs`).

/// Splits fuzz input into (key, text) pairs: records separated by 0xFF, each starting with a byte
/// that picks the key from the ones the reader looks at.
pub fn texts_of(data: &[u8]) -> Vec<(String, String)> {
    const KEYS: [&str; 20] = [
        "parameters",
        "UserComment",
        "prompt",
        "workflow",
        "Comment",
        "Description",
        "Software",
        "Source",
        "invokeai_metadata",
        "invokeai_graph",
        "sd-metadata",
        "Dream",
        "generation_data",
        "xmp:UserComment",
        "ImageDescription",
        "Civitai resources",
        "xmp:description",
        "XPComment",
        "Title",
        "fooocus_scheme",
    ];
    data.split(|&b| b == 0xff)
        .take(64)
        .filter_map(|record| {
            let (&first, rest) = record.split_first()?;
            let key = KEYS[usize::from(first) % KEYS.len()];
            Some((key.to_owned(), String::from_utf8_lossy(rest).into_owned()))
        })
        .collect()
}
