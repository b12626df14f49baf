//! Diffusion: text conditioning, the networks, torch-compatible noise, σ schedules, samplers and the txt2img pipeline.
//! Knows nothing of egui; the engine drives it and the CLI and GUI share it.

pub mod clip;
pub mod conditioning;
pub mod embeddings;
pub mod img2img;
pub mod lora;
pub mod model;
pub mod pipeline;
pub mod preview;
pub mod rng;
pub mod sampler;
pub mod schedule;
pub mod unet;
pub mod vae;

/// Failures while generating.
#[derive(Debug, thiserror::Error)]
pub enum DiffusionError {
    /// The job's cancel flag was set; nothing is wrong.
    #[error("cancelled")]
    Cancelled,
    /// The request cannot be run as given (size, steps, …); the message says what to change.
    #[error("{0}")]
    Input(String),
    /// A tensor operation failed.
    #[error("computation failed: {0}")]
    Tensor(#[from] candle_core::Error),
    /// The prompt could not be tokenized.
    #[error(transparent)]
    Tokenizer(#[from] crate::prompt::tokenizer::TokenizerError),
    /// The model could not be loaded.
    #[error(transparent)]
    Model(#[from] crate::models::ModelError),
}
