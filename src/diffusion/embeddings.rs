//! Textual-inversion embeddings (A1111 `embeddings/` folder): learned token vectors used by name in
//! prompts. Safetensors files only: A1111/kohya `emb_params`, the `string_to_param`-style single
//! tensor, or diffusers' `{token: vector}`. Pickled `.pt`/`.bin` files are never executed; they are
//! listed with a message asking for a safetensors copy.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};

use crate::models::safetensors::SafetensorsFile;
use crate::prompt::{CHUNK_LEN, ClipTokenizer, EmbeddingLookup};

/// One embedding.
#[derive(Debug, Clone)]
pub struct Embedding {
    /// The word that calls it (file stem).
    pub name: String,
    /// `[vectors, hidden]`, f32 on the CPU.
    pub vectors: Tensor,
    /// A1111's short hash for `TI hashes`: the first 12 hex digits of the file's SHA-256.
    pub short_hash: String,
}

/// The embeddings of some folders, indexed by the first token of each name (longest names first).
#[derive(Debug, Default)]
pub struct EmbeddingDb {
    items: Vec<Embedding>,
    lookup: HashMap<u32, Vec<(Vec<u32>, usize)>>,
    /// Files that could not be used, with the reason (shown to the user once).
    pub skipped: Vec<String>,
}

fn read_vectors(path: &Path, hidden: usize) -> Result<Tensor, String> {
    let file = SafetensorsFile::open(path).map_err(|e| e.to_string())?;
    let names: Vec<&String> = file.tensors().keys().collect();
    if names.iter().any(|n| *n == "clip_g") {
        return Err("it is an SDXL embedding (clip_l + clip_g)".into());
    }
    let key = if file.tensors().contains_key("emb_params") {
        "emb_params".to_owned()
    } else if names.len() == 1 {
        names[0].clone()
    } else {
        return Err(format!(
            "it has {} tensors; expected `emb_params` or a single vector tensor",
            names.len()
        ));
    };
    let t = file
        .load(&key, DType::F32, &Device::Cpu)
        .map_err(|e| e.to_string())?;
    let t = match t.rank() {
        1 => t.unsqueeze(0).map_err(|e| e.to_string())?,
        2 => t,
        r => {
            return Err(format!(
                "its tensor has {r} dimensions; expected [vectors, {hidden}]"
            ));
        }
    };
    let (n, d) = t.dims2().map_err(|e| e.to_string())?;
    if d != hidden {
        return Err(format!(
            "its vectors have {d} values but this text encoder uses {hidden} (another model family)"
        ));
    }
    if n == 0 || n > CHUNK_LEN {
        return Err(format!(
            "it has {n} vectors; 1 to {CHUNK_LEN} fit in a prompt chunk"
        ));
    }
    Ok(t)
}

impl EmbeddingDb {
    /// Reads every embedding under `folders` (one level of subfolders) for a text encoder of width
    /// `hidden`. Files that cannot be used are listed in [`Self::skipped`].
    pub fn load(folders: &[PathBuf], tokenizer: &ClipTokenizer, hidden: usize) -> Self {
        let mut db = Self::default();
        let mut files = Vec::new();
        for folder in folders {
            collect(folder, 1, &mut files);
        }
        files.sort();
        for path in files {
            let Some(name) = path.file_stem().map(|s| s.to_string_lossy().into_owned()) else {
                continue;
            };
            let ext = path
                .extension()
                .map(|e| e.to_string_lossy().to_ascii_lowercase())
                .unwrap_or_default();
            if ext == "pt" || ext == "bin" {
                db.skipped.push(format!(
                    "embedding '{name}' is a pickled .{ext} file, which Easel never executes; use a .safetensors copy"
                ));
                continue;
            }
            if db.items.iter().any(|e| e.name == name) {
                continue;
            }
            match read_vectors(&path, hidden) {
                Ok(vectors) => {
                    let short_hash = crate::models::hash::sha256_file(&path, |_, _| {})
                        .map(|h| h.chars().take(12).collect())
                        .unwrap_or_default();
                    db.items.push(Embedding {
                        name,
                        vectors,
                        short_hash,
                    });
                }
                Err(why) => db.skipped.push(format!("embedding '{name}' was skipped: {why}")),
            }
        }
        for (i, e) in db.items.iter().enumerate() {
            if let Ok(ids) = tokenizer.encode(&e.name)
                && let Some(first) = ids.first()
            {
                db.lookup.entry(*first).or_default().push((ids, i));
            }
        }
        for list in db.lookup.values_mut() {
            list.sort_by_key(|(ids, _)| std::cmp::Reverse(ids.len()));
        }
        db
    }

    /// The embedding with index `i`.
    pub fn get(&self, i: usize) -> Option<&Embedding> {
        self.items.get(i)
    }

    /// Number of usable embeddings.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// True without any usable embedding.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Names, sorted.
    pub fn names(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self.items.iter().map(|e| e.name.as_str()).collect();
        v.sort_unstable();
        v
    }
}

impl EmbeddingLookup for EmbeddingDb {
    fn find(&self, tokens: &[u32], pos: usize) -> Option<(usize, usize, usize)> {
        let candidates = self.lookup.get(tokens.get(pos)?)?;
        candidates.iter().find_map(|(ids, i)| {
            (tokens.get(pos..pos + ids.len()) == Some(ids.as_slice()))
                .then(|| (*i, ids.len(), self.items[*i].vectors.dims()[0]))
        })
    }
}

fn collect(dir: &Path, depth: usize, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            if depth > 0 {
                collect(&p, depth - 1, out);
            }
        } else if p.extension().is_some_and(|x| {
            ["safetensors", "pt", "bin"]
                .iter()
                .any(|k| x.eq_ignore_ascii_case(k))
        }) {
            out.push(p);
        }
    }
}
