//! Diffusion: the networks, text conditioning, torch-compatible noise, σ schedules, samplers, the
//! CFG denoiser, LoRA merging and the one generation pipeline. Knows nothing of egui; the engine drives it.

pub mod brownian;
pub mod clip;
pub mod conditioning;
pub mod controlnet;
pub mod denoiser;
pub mod embeddings;
pub mod fix;
pub mod img2img;
pub mod lora_merge;
pub mod model;
pub mod noise;
pub mod ops;
pub mod pipeline;
pub mod preview;
pub mod profile;
pub mod rng;
pub mod sampler;
pub mod schedule;
pub mod soft_inpaint;
pub mod special;
pub mod taesd;
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
    /// A request value is out of range.
    #[error(transparent)]
    Request(#[from] crate::request::InvalidRequest),
    /// An extra-network tag in the prompt is malformed.
    #[error(transparent)]
    Tag(#[from] crate::prompt::extra_networks::BadTag),
    /// A LoRA could not be used.
    #[error(transparent)]
    Lora(#[from] crate::models::lora_file::LoraError),
}

/// True when `t` holds no NaN or infinity (checked in f32).
///
/// # Errors
/// Tensor failures.
pub fn all_finite(t: &candle_core::Tensor) -> candle_core::Result<bool> {
    Ok(t.to_dtype(candle_core::DType::F32)?
        .flatten_all()?
        .to_vec1::<f32>()?
        .iter()
        .all(|v| v.is_finite()))
}
