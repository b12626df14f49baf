//! Any bytes as an `.easel` document: the reader (zip entries, manifest, PNG layers, size limits)
//! and the document its versions make.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = easel_fuzz::exercise::document(data);
});
