//! `src/infotext/` without the parts the reader does not use (img2img keys, writers).

#[path = "../../src/infotext/a1111.rs"]
mod a1111;
#[path = "../../src/infotext/containers.rs"]
pub mod containers;
#[path = "../../src/infotext/exif.rs"]
pub mod exif;
#[path = "../../src/infotext/foreign.rs"]
pub mod foreign;
#[path = "../../src/infotext/generators.rs"]
mod generators;
#[path = "../../src/infotext/metadata.rs"]
pub mod metadata;
#[path = "../../src/infotext/png_chunks.rs"]
pub mod png_chunks;
#[path = "../../src/infotext/read.rs"]
pub mod read;
#[path = "../../src/infotext/stealth.rs"]
pub mod stealth;

pub use a1111::{RawInfotext, parse, py_number, render};
