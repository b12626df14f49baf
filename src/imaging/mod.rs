//! Image files: PNG with A1111 text chunks, written atomically.
//! Mask operations join this module with inpainting.

pub mod png_meta;
