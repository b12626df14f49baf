//! The one inference module the readers need: textual-inversion embeddings.

#[path = "../../src/diffusion/embeddings.rs"]
pub mod embeddings;
