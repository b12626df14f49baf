//! The readers of Easel that take bytes from strangers, compiled from the same source files with
//! only the modules they need, for the fuzz targets: the image-metadata reader (`src/infotext/`),
//! model files (`src/models/`: safetensors headers, `.yaml` sidecars, CLIP configs, LoRAs), the
//! prompt parsers (`src/prompt/`), textual-inversion embeddings and `.easel` documents
//! (`src/document/`).

#![allow(dead_code, unused_imports, missing_docs)]

#[path = "../../src/params.rs"]
pub mod params;
#[path = "../../src/system.rs"]
pub mod system;
#[path = "../../src/text.rs"]
pub mod text;
#[path = "../../src/document/mod.rs"]
pub mod document;

pub mod infotext;

#[path = "../../src/models/mod.rs"]
pub mod models;
#[path = "../../src/prompt/mod.rs"]
pub mod prompt;

pub mod diffusion;

pub mod exercise;
mod scratch;
pub use scratch::Scratch;

mod texts;
pub use texts::texts_of;
