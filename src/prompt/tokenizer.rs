//! The CLIP BPE tokenizer, shipped inside the binary (`assets/clip/tokenizer.json`, built by `scripts/build_clip_tokenizer.py`).
//! Encodes text to ids without special tokens; chunking adds bos/eos.

use tokenizers::Tokenizer;

/// `<|startoftext|>`.
pub const BOS: u32 = 49406;
/// `<|endoftext|>`, also the padding token of SD 1.x.
pub const EOS: u32 = 49407;

static BUNDLED: &[u8] = include_bytes!("../../assets/clip/tokenizer.json");

/// Tokenizer failures.
#[derive(Debug, thiserror::Error)]
pub enum TokenizerError {
    /// The bundled or given tokenizer file could not be parsed.
    #[error("could not load the CLIP tokenizer: {0}")]
    Load(String),
    /// Encoding failed.
    #[error("could not tokenize the prompt: {0}")]
    Encode(String),
}

/// OpenAI CLIP's byte-level BPE tokenizer.
pub struct ClipTokenizer {
    inner: Tokenizer,
    comma: Option<u32>,
}

impl std::fmt::Debug for ClipTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClipTokenizer").finish_non_exhaustive()
    }
}

impl ClipTokenizer {
    /// The tokenizer compiled into the binary.
    pub fn bundled() -> Result<Self, TokenizerError> {
        let inner = Tokenizer::from_bytes(BUNDLED).map_err(|e| TokenizerError::Load(e.to_string()))?;
        let comma = inner.token_to_id(",</w>");
        Ok(Self { inner, comma })
    }

    /// Token ids of `text` without bos/eos.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, TokenizerError> {
        if text.is_empty() {
            return Ok(Vec::new());
        }
        let enc = self
            .inner
            .encode(text, false)
            .map_err(|e| TokenizerError::Encode(e.to_string()))?;
        Ok(enc.get_ids().to_vec())
    }

    /// Id of the `,` token (A1111's comma backtrack looks for it).
    pub fn comma_id(&self) -> Option<u32> {
        self.comma
    }
}
