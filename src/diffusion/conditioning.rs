//! Prompt → cross-attention context, as A1111 builds it: 77-token chunks encoded one by one,
//! emphasis applied with the chunk mean restored, chunks concatenated along the sequence axis.

use candle_core::{Device, Tensor};

use super::DiffusionError;
use super::clip::{ClipTextModel, mean_all};
use super::embeddings::EmbeddingDb;
use crate::prompt::{ClipTokenizer, EmbeddingLookup, chunk_prompt_with};

/// Encodes `prompt` into `[1, 77·chunks, hidden]`.
pub fn encode_prompt(
    clip: &ClipTextModel,
    tokenizer: &ClipTokenizer,
    prompt: &str,
    clip_skip: usize,
    device: &Device,
) -> Result<Tensor, DiffusionError> {
    encode_prompt_with(clip, tokenizer, prompt, clip_skip, device, None, &mut Vec::new())
}

/// [`encode_prompt`] with textual-inversion embeddings; the names of the embeddings used are
/// appended to `used` (each once, in order of use).
pub fn encode_prompt_with(
    clip: &ClipTextModel,
    tokenizer: &ClipTokenizer,
    prompt: &str,
    clip_skip: usize,
    device: &Device,
    embeddings: Option<&EmbeddingDb>,
    used: &mut Vec<String>,
) -> Result<Tensor, DiffusionError> {
    let lookup = embeddings.map(|e| e as &dyn EmbeddingLookup);
    let chunks = chunk_prompt_with(tokenizer, prompt, lookup)?;
    let vocab = clip.config().vocab_size;
    let mut parts = Vec::with_capacity(chunks.len());
    for chunk in &chunks {
        if let Some(bad) = chunk.ids.iter().find(|id| **id as usize >= vocab) {
            return Err(DiffusionError::Input(format!(
                "token id {bad} is outside the text encoder's vocabulary of {vocab}"
            )));
        }
        let ids = Tensor::from_slice(&chunk.ids, (1, chunk.ids.len()), device)?;
        let mut fixes = Vec::new();
        for (offset, index) in &chunk.fixes {
            if let Some(e) = embeddings.and_then(|db| db.get(*index)) {
                fixes.push((*offset, e.vectors.clone()));
                if !used.contains(&e.name) {
                    used.push(e.name.clone());
                }
            }
        }
        let z = clip.forward_with(&ids, clip_skip, &fixes)?;
        let z = if chunk.is_unweighted() {
            // A1111 multiplies by 1 and rescales by mean/mean = 1; skipping keeps 0/0 out of zero-mean outputs.
            z
        } else {
            let before = mean_all(&z)?;
            let w: Vec<f32> = chunk.weights.iter().map(|w| *w as f32).collect();
            let w = Tensor::from_vec(w, (1, chunk.weights.len(), 1), device)?.to_dtype(z.dtype())?;
            let z = z.broadcast_mul(&w)?;
            let after = mean_all(&z)?;
            (z * (before / after))?
        };
        parts.push(z);
    }
    Ok(Tensor::cat(&parts, 1)?)
}
