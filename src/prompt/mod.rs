//! A1111 prompt syntax: emphasis `(word:1.2)`, `[word]`, escapes, `BREAK`, and 75-token chunking with the comma rule.
//! Pure text → token ids and per-token weights; the tensors are made in `diffusion::conditioning`.

pub mod attention;
pub mod brackets;
pub mod editing;
pub mod extra_networks;
pub mod tokenizer;

pub use attention::parse_attention;
pub use tokenizer::{BOS, ClipTokenizer, EOS};

/// Tokens per chunk between the bos and eos markers (A1111 `chunk_length`).
pub const CHUNK_LEN: usize = 75;
/// A1111 `comma_padding_backtrack` default: a comma this close to a chunk's end moves the rest to the next chunk.
pub const COMMA_BACKTRACK: usize = 20;

/// One 77-token window: `[bos] + 75 tokens + [eos]`, padded with eos, and the weight of each token.
#[derive(Debug, Clone, PartialEq)]
pub struct Chunk {
    /// Token ids, length 77.
    pub ids: Vec<u32>,
    /// Emphasis multiplier per token, length 77.
    pub weights: Vec<f64>,
    /// Textual-inversion embeddings placed in this chunk: (offset after the bos token, embedding
    /// index in the [`EmbeddingLookup`]). Their slots hold token id 0.
    pub fixes: Vec<(usize, usize)>,
}

/// Finds textual-inversion embeddings in token sequences (A1111 `EmbeddingDatabase`).
pub trait EmbeddingLookup {
    /// The embedding whose name's tokens start at `tokens[pos]`, longest name first:
    /// `(embedding index, tokens of its name, vectors it occupies)`.
    fn find(&self, tokens: &[u32], pos: usize) -> Option<(usize, usize, usize)>;
}

impl Chunk {
    /// True when every weight is 1 (no emphasis to apply).
    pub fn is_unweighted(&self) -> bool {
        self.weights.iter().all(|w| *w == 1.0)
    }
}

#[derive(Default)]
struct Builder {
    chunks: Vec<Chunk>,
    ids: Vec<u32>,
    weights: Vec<f64>,
    fixes: Vec<(usize, usize)>,
    last_comma: Option<usize>,
}

impl Builder {
    fn close(&mut self) {
        let mut ids = Vec::with_capacity(CHUNK_LEN + 2);
        let mut weights = Vec::with_capacity(CHUNK_LEN + 2);
        ids.push(BOS);
        weights.push(1.0);
        ids.append(&mut self.ids);
        weights.append(&mut self.weights);
        while ids.len() < CHUNK_LEN + 1 {
            ids.push(EOS);
            weights.push(1.0);
        }
        ids.push(EOS);
        weights.push(1.0);
        let fixes = std::mem::take(&mut self.fixes);
        self.chunks.push(Chunk { ids, weights, fixes });
        self.last_comma = None;
    }
}

/// Splits a prompt into A1111 chunks (`tokenize_line` semantics, emphasis "Original").
pub fn chunk_prompt(
    tokenizer: &ClipTokenizer,
    prompt: &str,
) -> Result<Vec<Chunk>, tokenizer::TokenizerError> {
    chunk_prompt_with(tokenizer, prompt, None)
}

/// [`chunk_prompt`] with textual-inversion embeddings: an embedding of n vectors takes n slots (id 0,
/// the piece's weight) and moves whole to the next chunk when it does not fit, as A1111 does. As in
/// A1111, a comma backtrack moves tokens but not the embedding positions recorded before it.
pub fn chunk_prompt_with(
    tokenizer: &ClipTokenizer,
    prompt: &str,
    embeddings: Option<&dyn EmbeddingLookup>,
) -> Result<Vec<Chunk>, tokenizer::TokenizerError> {
    let comma = tokenizer.comma_id();
    let mut b = Builder::default();
    for piece in parse_attention(prompt) {
        if piece.is_break() {
            b.close();
            continue;
        }
        let tokens = tokenizer.encode(&piece.text)?;
        let mut pos = 0;
        while pos < tokens.len() {
            let token = tokens[pos];
            if Some(token) == comma {
                b.last_comma = Some(b.ids.len());
            } else if b.ids.len() == CHUNK_LEN
                && let Some(last) = b.last_comma
                && b.ids.len() - last <= COMMA_BACKTRACK
            {
                let at = last + 1;
                let moved_ids = b.ids.split_off(at);
                let moved_weights = b.weights.split_off(at);
                b.close();
                b.ids = moved_ids;
                b.weights = moved_weights;
            }
            if b.ids.len() == CHUNK_LEN {
                b.close();
            }
            match embeddings.and_then(|e| e.find(&tokens, pos)) {
                None => {
                    b.ids.push(token);
                    b.weights.push(piece.weight);
                    pos += 1;
                }
                Some((index, name_len, vectors)) => {
                    if b.ids.len() + vectors > CHUNK_LEN {
                        b.close();
                    }
                    b.fixes.push((b.ids.len(), index));
                    b.ids.extend(std::iter::repeat_n(0, vectors));
                    b.weights.extend(std::iter::repeat_n(piece.weight, vectors));
                    pos += name_len.max(1);
                }
            }
        }
    }
    if !b.ids.is_empty() || b.chunks.is_empty() {
        b.close();
    }
    Ok(b.chunks)
}
