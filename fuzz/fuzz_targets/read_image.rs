//! Any bytes as an image file: the containers, the generators, stealth pixels, and every output
//! form of what was read.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(read) = easel_fuzz::infotext::read::read_image_bytes(data, std::path::Path::new("fuzz")) {
        if let Some(m) = read.metadata {
            let _ = m.infotext();
            let _ = m.to_json();
            let _ = m.generation_params();
        }
    }
});
