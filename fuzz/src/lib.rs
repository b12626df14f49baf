//! The image-metadata reader of Easel (`src/infotext/`), compiled from the same source files with
//! only the modules it needs, for the fuzz targets.

#![allow(dead_code, unused_imports, missing_docs)]

#[path = "../../src/params.rs"]
pub mod params;
#[path = "../../src/system.rs"]
pub mod system;

pub mod infotext;

mod texts;
pub use texts::texts_of;
