//! Any bytes as the text configs that come with a model: an LDM `.yaml` sidecar, a CLIP
//! `config.json`, or the four configs of a diffusers folder (split at 0xFF bytes). The first byte
//! picks which.
#![no_main]

use std::sync::LazyLock;

use easel_fuzz::Scratch;
use easel_fuzz::models::config::{ClipConfig, Geometry};
use libfuzzer_sys::fuzz_target;

static SCRATCH: LazyLock<Scratch> = LazyLock::new(|| Scratch::new("config"));

const DIFFUSERS: [&str; 4] = [
    "unet/config.json",
    "vae/config.json",
    "scheduler/scheduler_config.json",
    "text_encoder/config.json",
];

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    match pick % 3 {
        0 => {
            let path = SCRATCH.write("model.yaml", rest);
            if let Ok(g) = Geometry::sd15().apply_ldm_yaml(&path) {
                let _ = g.validate();
            }
        }
        1 => {
            let path = SCRATCH.write("config.json", rest);
            if let Ok(c) = ClipConfig::from_json_file(&path) {
                let _ = c.validate();
            }
        }
        _ => {
            let dir = SCRATCH.dir().join("diffusers");
            for (name, part) in DIFFUSERS.iter().zip(rest.split(|&b| b == 0xff)) {
                let path = dir.join(name);
                let _ = std::fs::create_dir_all(path.parent().unwrap());
                std::fs::write(&path, part).unwrap();
            }
            if let Ok(g) = Geometry::from_diffusers_folder(&dir) {
                let _ = g.validate();
            }
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
});
