//! Metadata texts as the containers hand them over: every generator's parser on any text.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let texts = easel_fuzz::texts_of(data);
    if let Some(m) = easel_fuzz::infotext::read::recognise_texts(&texts) {
        let text = m.infotext();
        let _ = m.to_json();
        let _ = m.generation_params();
        // What the app keeps with a picture is read back the same way.
        let _ = easel_fuzz::infotext::read::read_infotext(&text);
    }
});
