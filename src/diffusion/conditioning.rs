//! Prompt → cross-attention context, as A1111 builds it: 77-token chunks encoded one by one,
//! emphasis applied with the chunk mean restored, chunks concatenated along the sequence axis; and
//! the per-model-call schedule of prompt editing ([`Conditioning`]).

use candle_core::{Device, Tensor};

use super::DiffusionError;
use super::clip::{ClipTextModel, mean_all};
use super::embeddings::EmbeddingDb;
use super::model::SdModel;
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

/// Text conditioning that may change during sampling (A1111 prompt editing): `(last model call,
/// embeddings)` pairs; model call `k` (0-based, counted like A1111's `CFGDenoiser.step`) uses the
/// first entry whose last call is ≥ `k`.
#[derive(Debug, Clone)]
pub struct Conditioning {
    entries: Vec<(usize, Tensor)>,
}

impl Conditioning {
    /// The same embeddings for every step.
    pub fn fixed(embeddings: Tensor) -> Self {
        Self {
            entries: vec![(usize::MAX, embeddings)],
        }
    }

    /// A schedule of `(last step, embeddings)`, in order.
    ///
    /// # Panics
    /// Never for a non-empty schedule; an empty one is a bug.
    pub fn scheduled(entries: Vec<(usize, Tensor)>) -> Self {
        assert!(!entries.is_empty(), "a conditioning schedule needs an entry");
        Self { entries }
    }

    /// The embeddings for model call `call`.
    pub fn at(&self, call: usize) -> &Tensor {
        let i = self.entries.iter().position(|(end, _)| call <= *end).unwrap_or(0);
        &self.entries[i].1
    }

    /// Number of distinct prompts in the schedule.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when the schedule is empty (never, for the constructors above).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// True when every embedding in the schedule is finite (no NaN or infinity).
    ///
    /// # Errors
    /// Tensor failures.
    pub fn is_finite(&self) -> candle_core::Result<bool> {
        for (_, t) in &self.entries {
            if !super::all_finite(t)? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    pub(crate) fn map(
        &self,
        f: impl Fn(&Tensor) -> candle_core::Result<Tensor>,
    ) -> candle_core::Result<Self> {
        let entries = self
            .entries
            .iter()
            .map(|(end, t)| f(t).map(|t| (*end, t)))
            .collect::<candle_core::Result<_>>()?;
        Ok(Self { entries })
    }
}

/// Encodes a prompt with A1111's prompt editing resolved for `steps` model calls, using the model's
/// textual-inversion embeddings; the names of those used are appended to `used`.
///
/// # Errors
/// Tokenizer or tensor failures.
pub fn encode_scheduled(
    model: &SdModel,
    tokenizer: &ClipTokenizer,
    prompt: &str,
    clip_skip: usize,
    steps: usize,
    used: &mut Vec<String>,
) -> Result<Conditioning, DiffusionError> {
    let schedule = crate::prompt::editing::schedule(prompt, steps);
    let mut cache: Vec<(String, Tensor)> = Vec::new();
    let mut entries = Vec::with_capacity(schedule.len());
    for (end, text) in schedule {
        let t = if let Some((_, t)) = cache.iter().find(|(s, _)| *s == text) {
            t.clone()
        } else {
            let t = encode_prompt_with(
                &model.clip,
                tokenizer,
                &text,
                clip_skip,
                &model.device,
                Some(&model.embeddings),
                used,
            )?;
            cache.push((text, t.clone()));
            t
        };
        entries.push((end, t));
    }
    Ok(Conditioning::scheduled(entries))
}

#[cfg(test)]
mod schedule_tests {
    use super::*;

    #[test]
    fn model_call_k_uses_the_first_entry_lasting_until_k() {
        let t = |v: f32| Tensor::new(&[v], &Device::Cpu).unwrap();
        // "[a:b:2]" over 4 steps: (2, a), (4, b). A1111 compares its call counter with `<=`.
        let c = Conditioning::scheduled(vec![(2, t(1.0)), (4, t(2.0))]);
        let at = |k| c.at(k).to_vec1::<f32>().unwrap()[0];
        assert_eq!([at(0), at(1), at(2), at(3), at(4)], [1.0, 1.0, 1.0, 2.0, 2.0]);
        // Past the end A1111 falls back to the first entry.
        assert_eq!(at(9), 1.0);
        assert_eq!(
            Conditioning::fixed(t(5.0)).at(1000).to_vec1::<f32>().unwrap(),
            [5.0]
        );
    }
}
