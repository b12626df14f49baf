//! Replays the committed corpus of the fuzz targets (`fuzz/corpus/`, seeds plus the inputs that
//! once crashed a reader) through the same calls the targets make: each must read or fail with an
//! error, never panic. The named seeds must still be recognised (seeds named `refused-…` must be
//! refused).

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

#[path = "../fuzz/src/texts.rs"]
mod texts;

// `exercise.rs` names the readers by `crate::…`, as the fuzz package's own modules.
use easel::{diffusion, document, infotext, models, prompt};
#[path = "../fuzz/src/exercise.rs"]
mod exercise;

fn corpus(target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz")
        .join("corpus")
        .join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no corpus in {}", dir.display());
    files
}

fn is_seed(path: &Path) -> bool {
    !path.file_name().unwrap().to_string_lossy().starts_with("crash-")
}

#[test]
fn read_image_corpus() {
    for path in corpus("read_image") {
        let bytes = std::fs::read(&path).unwrap();
        let read = easel::infotext::read_image_bytes(&bytes, &path);
        if is_seed(&path) {
            let m = read.as_ref().ok().and_then(|r| r.metadata.as_ref());
            assert!(
                m.is_some_and(easel::infotext::ImageMetadata::states_anything),
                "{}",
                path.display()
            );
        }
        if let Ok(easel::infotext::ImageRead {
            metadata: Some(m), ..
        }) = read
        {
            let _ = m.infotext();
            let _ = m.to_json();
            let _ = m.generation_params();
        }
    }
}

#[test]
fn recognise_texts_corpus() {
    for path in corpus("recognise_texts") {
        let texts = texts::texts_of(&std::fs::read(&path).unwrap());
        let m = easel::infotext::read::recognise_texts(&texts);
        if is_seed(&path) {
            assert!(
                m.as_ref()
                    .is_some_and(easel::infotext::ImageMetadata::states_anything),
                "{}",
                path.display()
            );
        }
        if let Some(m) = m {
            let text = m.infotext();
            let _ = m.to_json();
            let _ = m.generation_params();
            let _ = easel::infotext::read_infotext(&text);
        }
    }
}

#[test]
fn stealth_pixels_corpus() {
    for path in corpus("stealth_pixels") {
        let data = std::fs::read(&path).unwrap();
        let [w, flags, rest @ ..] = data.as_slice() else {
            continue;
        };
        let width = usize::from(*w) + 1;
        let height = rest.len() / 4 / width;
        let pixels = easel::infotext::stealth::Pixels {
            width,
            height,
            has_alpha: flags & 1 == 1,
            rgba: &rest[..width * height * 4],
        };
        let text = easel::infotext::stealth::read(&pixels);
        if is_seed(&path) {
            assert!(text.is_some(), "{}", path.display());
        }
    }
}

/// Runs `accepts` (given a scratch folder and the input) over a target's corpus; seeds must be
/// accepted, `refused-` seeds refused.
fn replay(target: &str, accepts: impl Fn(&Path, &[u8]) -> bool) {
    for path in corpus(target) {
        let bytes = std::fs::read(&path).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let accepted = accepts(dir.path(), &bytes);
        if is_seed(&path) {
            let refused = path
                .file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("refused-");
            assert_eq!(accepted, !refused, "{}", path.display());
        }
    }
}

fn tokenizer() -> prompt::ClipTokenizer {
    prompt::ClipTokenizer::bundled().unwrap()
}

#[test]
fn safetensors_header_corpus() {
    replay("safetensors_header", exercise::safetensors_header);
}

#[test]
fn model_config_corpus() {
    replay("model_config", exercise::model_config);
}

#[test]
fn lora_corpus() {
    replay("lora", exercise::lora);
}

#[test]
fn embedding_corpus() {
    let tokenizer = tokenizer();
    replay("embedding", |dir, bytes| {
        exercise::embedding(dir, bytes, &tokenizer)
    });
}

#[test]
fn prompt_corpus() {
    let tokenizer = tokenizer();
    replay("prompt", |_, bytes| exercise::prompt(bytes, &tokenizer));
}

#[test]
fn infotext_corpus() {
    replay("infotext", |_, bytes| exercise::infotext(bytes));
}

#[test]
fn document_corpus() {
    replay("document", |_, bytes| exercise::document(bytes));
}
