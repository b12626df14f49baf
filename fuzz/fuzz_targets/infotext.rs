//! Any text as pasted generation parameters: A1111's infotext parser and the reader that names
//! the generator and its settings.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = easel_fuzz::exercise::infotext(data);
});
