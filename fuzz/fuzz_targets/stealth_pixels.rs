//! Any pixels for the stealth reader: the first two bytes give the width and the alpha flag.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let [w, flags, rest @ ..] = data else {
        return;
    };
    let width = usize::from(*w) + 1;
    let height = rest.len() / 4 / width;
    let rgba = &rest[..width * height * 4];
    let pixels = easel_fuzz::infotext::stealth::Pixels {
        width,
        height,
        has_alpha: flags & 1 == 1,
        rgba,
    };
    let _ = easel_fuzz::infotext::stealth::read(&pixels);
});
