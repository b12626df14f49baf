//! What each fuzz target does with one input, shared by the targets (`fuzz_targets/`) and the
//! corpus replay (`tests/fuzz_corpus.rs`). Each returns whether the input was accepted, so the
//! replay can check that the seeds still are. Reaching the end without a panic is the property.

use std::path::Path;

use candle_core::{DType, Device};

use crate::diffusion::embeddings::EmbeddingDb;
use crate::infotext;
use crate::models::{self, config, family, lora_file, safetensors::SafetensorsFile};
use crate::prompt::{self, ClipTokenizer, editing, extra_networks};

/// `data` as a model file written under `dir`: the header, every tensor loaded as f32, and the
/// family detection the model browser runs.
pub fn safetensors_header(dir: &Path, data: &[u8]) -> bool {
    let path = &dir.join("model.safetensors");
    std::fs::write(path, data).expect("scratch write");
    let opened = match SafetensorsFile::open(path) {
        Ok(file) => {
            for name in file.tensors().keys() {
                let _ = file.load(name, DType::F32, &Device::Cpu);
            }
            let _ = family::detect_single_file(&file);
            let _ = models::controlnet::looks_like_controlnet(&file);
            true
        }
        Err(_) => false,
    };
    let _ = models::inspect(path);
    let _ = models::controlnet::ControlNetFile::open(path);
    let _ = models::vae_file::VaeFile::open(path);
    opened
}

/// The configs that come with a model, written under `dir`: the first byte of `data` picks an
/// LDM `.yaml` sidecar, a CLIP `config.json`, or the four configs of a diffusers folder (the rest
/// split at 0xFF bytes).
pub fn model_config(dir: &Path, data: &[u8]) -> bool {
    const DIFFUSERS: [&str; 4] = [
        "unet/config.json",
        "vae/config.json",
        "scheduler/scheduler_config.json",
        "text_encoder/config.json",
    ];
    let Some((&pick, rest)) = data.split_first() else {
        return false;
    };
    match pick % 3 {
        0 => {
            let path = dir.join("model.yaml");
            std::fs::write(&path, rest).expect("scratch write");
            // The checkpoint's shapes complete the geometry, so only reading is asked of a seed.
            let geometry = config::Geometry::sd15().apply_ldm_yaml(&path);
            if let Ok(g) = &geometry {
                let _ = g.validate();
            }
            geometry.is_ok()
        }
        1 => {
            let path = dir.join("config.json");
            std::fs::write(&path, rest).expect("scratch write");
            config::ClipConfig::from_json_file(&path).is_ok_and(|c| c.validate().is_ok())
        }
        _ => {
            let root = dir.join("diffusers");
            let _ = std::fs::remove_dir_all(&root);
            for (name, part) in DIFFUSERS.iter().zip(rest.split(|&b| b == 0xff)) {
                let path = root.join(name);
                std::fs::create_dir_all(path.parent().expect("a folder")).expect("scratch folder");
                std::fs::write(&path, part).expect("scratch write");
            }
            config::Geometry::from_diffusers_folder(&root).is_ok_and(|g| g.validate().is_ok())
        }
    }
}

/// `data` as a LoRA / LyCORIS file written under `dir`: the reader, its family label, and every
/// module's weight change for a few layer shapes, right or wrong for the module.
pub fn lora(dir: &Path, data: &[u8]) -> bool {
    const SHAPES: [&[usize]; 4] = [&[4, 4], &[8, 4], &[8, 4, 3, 3], &[320, 768]];
    let path = &dir.join("style.safetensors");
    std::fs::write(path, data).expect("scratch write");
    let _ = lora_file::family_label(path);
    let Ok(file) = lora_file::LoraFile::open(path, "style") else {
        return false;
    };
    for (_, _, module) in file.modules() {
        let _ = module.scale();
        for shape in SHAPES {
            let _ = module.delta(shape, &Device::Cpu);
        }
    }
    true
}

/// `data` as `tiny_neg.safetensors` in the embeddings folder `dir`, read for a text encoder 32
/// wide, then a prompt that calls the embedding by name.
pub fn embedding(dir: &Path, data: &[u8], tokenizer: &ClipTokenizer) -> bool {
    std::fs::write(dir.join("tiny_neg.safetensors"), data).expect("scratch write");
    let db = EmbeddingDb::load(&[dir.to_path_buf()], tokenizer, 32);
    let _ = prompt::chunk_prompt_with(tokenizer, "a photo, tiny_neg, (tiny_neg:1.2)", Some(&db));
    db.len() == 1
}

/// A prompt: the first byte sets the step count, the rest is the text. Emphasis, prompt editing
/// and its schedule, extra-network tags and the 75-token chunks.
pub fn prompt(data: &[u8], tokenizer: &ClipTokenizer) -> bool {
    let Some((&steps, text)) = data.split_first() else {
        return false;
    };
    let text = String::from_utf8_lossy(text);
    let _ = prompt::parse_attention(&text);
    let parsed = editing::parse(&text).is_ok();
    for (_, part) in editing::schedule(&text, usize::from(steps % 64) + 1) {
        let _ = prompt::parse_attention(&part);
    }
    let tags = extra_networks::extract_tags(&text).is_ok();
    // The BPE tokenizer (a library, slow under the sanitizer) sees at most the first 256 bytes:
    // enough to reach every branch of the chunking around it, at a useful rate of executions.
    let cut = (0..=text.len().min(256))
        .rev()
        .find(|&i| text.is_char_boundary(i))
        .unwrap_or(0);
    let chunks = prompt::chunk_prompt(tokenizer, &text[..cut]).is_ok();
    parsed && tags && chunks
}

/// Pasted generation parameters: A1111's parser and the reader that names the generator.
pub fn infotext(data: &[u8]) -> bool {
    let text = String::from_utf8_lossy(data);
    let _ = infotext::parse(&text);
    match infotext::read::read_infotext(&text) {
        Some(m) => {
            let _ = m.infotext();
            let _ = m.to_json();
            let _ = m.generation_params();
            true
        }
        None => false,
    }
}

/// Any bytes as an `.easel` document (a file from another machine, or a damaged autosave): the
/// reader, then the document its versions make and the versions it would save again.
pub fn document(data: &[u8]) -> bool {
    match crate::document::file::read_from(std::io::Cursor::new(data), Path::new("fuzz.easel")) {
        Ok(opened) => {
            if let Some(doc) = crate::document::Document::from_versions(opened.versions, opened.current) {
                let _ = doc.versions();
            }
            true
        }
        Err(_) => false,
    }
}
