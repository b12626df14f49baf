//! Any text as pasted generation parameters: A1111's infotext parser and the reader that names
//! the generator and its settings.
#![no_main]

use easel_fuzz::infotext::{parse, read::read_infotext};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = parse(&text);
    if let Some(m) = read_infotext(&text) {
        let _ = m.infotext();
        let _ = m.to_json();
        let _ = m.generation_params();
    }
});
