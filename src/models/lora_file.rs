//! LoRA and LyCORIS files: reading kohya / LyCORIS / diffusers-PEFT safetensors into typed modules,
//! the family a file was made for, and finding LoRAs by name in folders. Nothing here runs a network.
//!
//! Semantics (A1111 `extensions-builtin/Lora`, kohya): `ΔW = (up @ down)` reshaped to the weight,
//! scale = `alpha / rank` (1 without alpha); LoHa `ΔW = (w1a @ w1b) ⊙ (w2a @ w2b)`, LoKr
//! `ΔW = w1 ⊗ w2`, with the same alpha scaling over the rank of the decomposed factors.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};

use super::safetensors::SafetensorsFile;

/// Which network a module belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Part {
    /// The CLIP text encoder.
    TextEncoder,
    /// The UNet.
    Unet,
}

/// The decomposition of one module's update.
#[derive(Debug, Clone)]
enum Update {
    /// LoRA / LoCon: `up @ down`.
    LowRank { down: Tensor, up: Tensor },
    /// LoHa: `(w1a @ w1b) ⊙ (w2a @ w2b)`.
    Hadamard {
        w1a: Tensor,
        w1b: Tensor,
        w2a: Tensor,
        w2b: Tensor,
    },
    /// LoKr: `w1 ⊗ w2` (each full or `a @ b`).
    Kronecker {
        w1: Tensor,
        w2: Tensor,
        rank: Option<usize>,
    },
}

/// One module of a LoRA file.
#[derive(Debug, Clone)]
pub struct Module {
    /// The key as written in the file (without the tensor suffix).
    pub key: String,
    update: Update,
    alpha: Option<f32>,
}

impl Module {
    fn rank(&self) -> Option<usize> {
        match &self.update {
            Update::LowRank { down, .. } => down.dims().first().copied(),
            Update::Hadamard { w1b, .. } => w1b.dims().first().copied(),
            Update::Kronecker { rank, .. } => *rank,
        }
    }

    /// `alpha / rank`, or 1 without alpha (kohya, A1111).
    pub fn scale(&self) -> f32 {
        match (self.alpha, self.rank()) {
            (Some(alpha), Some(rank)) if rank > 0 => alpha / rank as f32,
            _ => 1.0,
        }
    }

    /// How many elements `ΔW` has, from the factors' shapes alone, or why they do not fit together.
    fn delta_elements(&self) -> Result<usize, String> {
        let rows_cols = |t: &Tensor| (t.dims()[0], t.dims()[1..].iter().product::<usize>());
        match &self.update {
            Update::LowRank { down, up } => {
                let ((r, cols), (rows, r2)) = (rows_cols(down), rows_cols(up));
                if r != r2 {
                    return Err(format!("down has rank {r} but up has {r2}"));
                }
                Ok(rows.saturating_mul(cols))
            }
            Update::Hadamard { w1a, w1b, w2a, w2b } => {
                let (m1, r1) = rows_cols(w1a);
                let (r1b, n1) = rows_cols(w1b);
                let (m2, r2) = rows_cols(w2a);
                let (r2b, n2) = rows_cols(w2b);
                if r1 != r1b || r2 != r2b || m1 != m2 || n1 != n2 {
                    return Err("the LoHa factors do not fit together".into());
                }
                Ok(m1.saturating_mul(n1))
            }
            Update::Kronecker { w1, w2, .. } => {
                if w1.rank() != 2 || w2.rank() < 2 {
                    return Err("LoKr factors need two dimensions".into());
                }
                Ok(w1.elem_count().saturating_mul(w2.elem_count()))
            }
        }
    }

    /// `ΔW` (unscaled) reshaped to `shape`, in f32 on `device`. Factors whose product would not
    /// have `shape`'s size are refused before anything is multiplied.
    pub fn delta(&self, shape: &[usize], device: &Device) -> candle_core::Result<Tensor> {
        let want: usize = shape.iter().product();
        match self.delta_elements() {
            Ok(n) if n == want => {}
            Ok(n) => {
                return Err(candle_core::Error::Msg(format!(
                    "its factors make {n} values, the layer has {want}"
                )));
            }
            Err(why) => return Err(candle_core::Error::Msg(why)),
        }
        let f = |t: &Tensor| t.to_device(device)?.to_dtype(DType::F32);
        let flat = |t: &Tensor| -> candle_core::Result<Tensor> {
            let t = f(t)?;
            let rows = t.dims()[0];
            t.reshape((rows, ()))
        };
        let d = match &self.update {
            Update::LowRank { down, up } => {
                let (down_f, up_f) = (flat(down)?, flat(up)?);
                if down.rank() == 4 && up.rank() == 4 && up.dims()[2..] != [1, 1] {
                    return Err(candle_core::Error::Msg(format!(
                        "{}: convolutional up weights are not supported",
                        self.key
                    )));
                }
                up_f.matmul(&down_f)?
            }
            Update::Hadamard { w1a, w1b, w2a, w2b } => {
                let a = flat(w1a)?.matmul(&flat(w1b)?)?;
                let b = flat(w2a)?.matmul(&flat(w2b)?)?;
                (a * b)?
            }
            Update::Kronecker { w1, w2, .. } => {
                let (w1, w2) = (f(w1)?, f(w2)?);
                let (m, n) = (w1.dims()[0], w1.dims()[1]);
                let (p, q) = (w2.dims()[0], w2.dims()[1]);
                let rest: Vec<usize> = w2.dims()[2..].to_vec();
                let k: usize = rest.iter().product();
                // kron over the first two axes: [m, p, n, q, k]
                let a = w1.reshape((m, 1, n, 1, 1))?;
                let b = w2.reshape((1, p, 1, q, k))?;
                let prod = a.broadcast_mul(&b)?;
                let mut dims = vec![m * p, n * q];
                dims.extend(rest);
                prod.reshape(dims)?
            }
        };
        d.reshape(shape)
    }
}

/// A LoRA file, read and checked.
#[derive(Debug)]
pub struct LoraFile {
    /// The name used in prompts (file stem).
    pub name: String,
    /// The file.
    pub path: PathBuf,
    /// A1111's short hash for `Lora hashes`: `sshs_model_hash` from the metadata, or the first 12
    /// hex digits of the SHA-256 of the bytes after the safetensors header.
    pub short_hash: String,
    modules: Vec<(Part, String, Module)>,
}

/// Why a LoRA cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum LoraError {
    /// Not found under the given folders.
    #[error("LoRA '{name}' was not found in {folders}")]
    NotFound {
        /// Name from the prompt.
        name: String,
        /// The folders searched, for the message.
        folders: String,
    },
    /// The file could not be read.
    #[error("LoRA '{name}': {why}")]
    Unreadable {
        /// Name.
        name: String,
        /// Cause.
        why: String,
    },
    /// Made for another model family.
    #[error(
        "LoRA '{name}' is for {family} and will not apply to the loaded SD 1.x model: take its tag out of the prompt or use an SD 1.x LoRA"
    )]
    WrongFamily {
        /// Name.
        name: String,
        /// What it looks like.
        family: &'static str,
    },
    /// None of its modules exist in the model.
    #[error("LoRA '{name}' has {count} modules but none of them matches this model (first: {first})")]
    NothingMatches {
        /// Name.
        name: String,
        /// Module count.
        count: usize,
        /// First unmatched key.
        first: String,
    },
}

/// The largest weight a LoKr factor pair may expand to at load time (SD 1.x's largest layer has
/// 14.7M values).
const MAX_DELTA_ELEMENTS: usize = 64 << 20;

const SUFFIXES: [&str; 16] = [
    ".lora_down.weight",
    ".lora_up.weight",
    ".lora_A.weight",
    ".lora_B.weight",
    ".lora.down.weight",
    ".lora.up.weight",
    ".hada_w1_a",
    ".hada_w1_b",
    ".hada_w2_a",
    ".hada_w2_b",
    ".lokr_w1",
    ".lokr_w1_a",
    ".lokr_w1_b",
    ".lokr_w2",
    ".lokr_w2_a",
    ".lokr_w2_b",
];

fn split_key(name: &str) -> Option<(&str, &str)> {
    SUFFIXES
        .iter()
        .chain(&[".alpha"])
        .find_map(|s| name.strip_suffix(s).map(|k| (k, *s)))
}

/// Which network a module key targets, and the key without its network prefix.
/// Kohya: `lora_unet_…`, `lora_te_…`; diffusers/PEFT: `unet.…`, `text_encoder.…`.
fn part_of(key: &str) -> Option<(Part, &str)> {
    for (prefix, part) in [
        ("lora_unet_", Part::Unet),
        ("lora_te_", Part::TextEncoder),
        ("unet.", Part::Unet),
        ("text_encoder.", Part::TextEncoder),
        ("lora_unet.", Part::Unet),
    ] {
        if let Some(rest) = key.strip_prefix(prefix) {
            return Some((part, rest));
        }
    }
    None
}

fn family_of(keys: &[&str]) -> Option<&'static str> {
    if keys
        .iter()
        .any(|k| k.starts_with("lora_te1_") || k.starts_with("lora_te2_"))
    {
        return Some("SDXL (it has two text encoders)");
    }
    if keys
        .iter()
        .any(|k| k.starts_with("lora_unet_input_blocks_") || k.starts_with("lora_unet_output_blocks_"))
        && keys
            .iter()
            .any(|k| k.contains("_input_blocks_4_1_transformer_blocks_1_"))
    {
        return Some("SDXL (deeper transformer blocks)");
    }
    if keys
        .iter()
        .any(|k| k.contains("transformer.transformer_blocks") || k.contains("lora_transformer_"))
    {
        return Some("a transformer model (SD 3 or Flux)");
    }
    None
}

/// The family a LoRA file is for, from its tensor names only (cheap: reads the header):
/// `Some("SD 1.x")` when nothing says otherwise, `None` when the file cannot be read.
pub fn family_label(path: &Path) -> Option<&'static str> {
    let file = SafetensorsFile::open(path).ok()?;
    let keys: Vec<&str> = file.tensors().keys().map(String::as_str).collect();
    Some(match family_of(&keys) {
        Some(f) if f.starts_with("SDXL") => "SDXL",
        Some(_) => "SD 3 / Flux",
        None => "SD 1.x",
    })
}

impl LoraFile {
    /// Reads `path` (a `.safetensors` LoRA / LyCORIS file). `name` is how prompts call it.
    ///
    /// # Errors
    /// Unreadable files, `.pt`/`.ckpt` pickles, files that are not LoRAs, other families.
    pub fn open(path: &Path, name: &str) -> Result<Self, LoraError> {
        let unreadable = |why: String| LoraError::Unreadable {
            name: name.to_owned(),
            why,
        };
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .unwrap_or_default()
            .to_ascii_lowercase();
        if ext != "safetensors" {
            return Err(unreadable(format!(
                "{} is not a .safetensors file (pickled .pt/.ckpt files are never executed); convert it to safetensors",
                path.display()
            )));
        }
        let file = SafetensorsFile::open(path).map_err(|e| unreadable(e.to_string()))?;
        let keys: Vec<&str> = file.tensors().keys().map(String::as_str).collect();
        if let Some(family) = family_of(&keys) {
            return Err(LoraError::WrongFamily {
                name: name.to_owned(),
                family,
            });
        }
        let load = |k: &str| {
            let entry = file.entry(k).map(|e| e.shape.clone()).unwrap_or_default();
            let is_alpha = split_key(k).is_some_and(|(_, suffix)| suffix == ".alpha");
            if !is_alpha && (entry.len() < 2 || entry.contains(&0)) {
                return Err(unreadable(format!(
                    "tensor {k} has shape {entry:?}; a LoRA factor needs at least two non-empty dimensions"
                )));
            }
            let t = file
                .load(k, DType::F32, &Device::Cpu)
                .map_err(|e| unreadable(e.to_string()))?;
            let finite = t
                .flatten_all()
                .and_then(|f| f.to_vec1::<f32>())
                .map_err(|e| unreadable(e.to_string()))?
                .iter()
                .all(|v| v.is_finite());
            if !finite {
                return Err(unreadable(format!(
                    "tensor {k} holds NaN or infinite values; the file is broken"
                )));
            }
            Ok(t)
        };
        let mut grouped: BTreeMap<&str, BTreeMap<&str, &str>> = BTreeMap::new();
        for key in &keys {
            if let Some((module, suffix)) = split_key(key) {
                grouped.entry(module).or_default().insert(suffix, key);
            }
        }
        if grouped.is_empty() {
            return Err(unreadable(format!(
                "{} has no LoRA tensors (expected names like lora_unet_…lora_down.weight)",
                path.display()
            )));
        }
        let mut modules = Vec::new();
        for (module, parts) in grouped {
            let get = |s: &str| parts.get(s).map(|k| load(k)).transpose();
            let alpha = match get(".alpha")? {
                Some(t) => Some(
                    t.flatten_all()
                        .and_then(|t| t.get(0))
                        .and_then(|t| t.to_scalar::<f32>())
                        .map_err(|e| unreadable(format!("{module}.alpha: {e}")))?,
                ),
                None => None,
            };
            let pair = |a: &str, b: &str| -> Result<Option<(Tensor, Tensor)>, LoraError> {
                Ok(match (get(a)?, get(b)?) {
                    (Some(x), Some(y)) => Some((x, y)),
                    _ => None,
                })
            };
            let update = if let Some((down, up)) = pair(".lora_down.weight", ".lora_up.weight")?
                .or(pair(".lora_A.weight", ".lora_B.weight")?)
                .or(pair(".lora.down.weight", ".lora.up.weight")?)
            {
                Update::LowRank { down, up }
            } else if let (Some((w1a, w1b)), Some((w2a, w2b))) = (
                pair(".hada_w1_a", ".hada_w1_b")?,
                pair(".hada_w2_a", ".hada_w2_b")?,
            ) {
                Update::Hadamard { w1a, w1b, w2a, w2b }
            } else {
                let full_or = |w: &str,
                               a: &str,
                               b: &str|
                 -> Result<Option<(Tensor, Option<usize>)>, LoraError> {
                    if let Some(t) = get(w)? {
                        return Ok(Some((t, None)));
                    }
                    match pair(a, b)? {
                        Some((a, b)) => {
                            let product_elements = a.dims()[0].saturating_mul(b.dims()[1..].iter().product());
                            if a.rank() != 2
                                || a.dims()[1] != b.dims()[0]
                                || product_elements > MAX_DELTA_ELEMENTS
                            {
                                return Err(unreadable(format!(
                                    "module {module}: LoKr factors {:?} and {:?} do not multiply to a layer-sized weight",
                                    a.dims(),
                                    b.dims()
                                )));
                            }
                            let rank = b.dims().first().copied();
                            let prod = a.matmul(
                                &b.reshape((b.dims()[0], ()))
                                    .map_err(|e| unreadable(e.to_string()))?,
                            );
                            let prod = prod.map_err(|e| unreadable(e.to_string()))?;
                            let mut dims = vec![a.dims()[0]];
                            dims.extend_from_slice(&b.dims()[1..]);
                            Ok(Some((
                                prod.reshape(dims).map_err(|e| unreadable(e.to_string()))?,
                                rank,
                            )))
                        }
                        None => Ok(None),
                    }
                };
                match (
                    full_or(".lokr_w1", ".lokr_w1_a", ".lokr_w1_b")?,
                    full_or(".lokr_w2", ".lokr_w2_a", ".lokr_w2_b")?,
                ) {
                    (Some((w1, r1)), Some((w2, r2))) => Update::Kronecker {
                        w1,
                        w2,
                        rank: r2.or(r1),
                    },
                    _ => {
                        return Err(unreadable(format!(
                            "module {module} has an incomplete set of tensors ({})",
                            parts.keys().copied().collect::<Vec<_>>().join(", ")
                        )));
                    }
                }
            };
            let Some((part, rest)) = part_of(module) else {
                // Keep unknown prefixes as unmatched UNet keys so they are reported.
                modules.push((
                    Part::Unet,
                    module.to_owned(),
                    Module {
                        key: module.to_owned(),
                        update,
                        alpha,
                    },
                ));
                continue;
            };
            modules.push((
                part,
                rest.to_owned(),
                Module {
                    key: module.to_owned(),
                    update,
                    alpha,
                },
            ));
        }
        let short_hash = file.metadata().get("sshs_model_hash").map_or_else(
            || {
                crate::models::hash::sha256_bytes(file.data_bytes())
                    .chars()
                    .take(12)
                    .collect()
            },
            |h| h.chars().take(12).collect(),
        );
        Ok(Self {
            name: name.to_owned(),
            path: path.to_path_buf(),
            short_hash,
            modules,
        })
    }

    /// Every module: the network it targets, its module path without the network prefix, the module.
    pub fn modules(&self) -> &[(Part, String, Module)] {
        &self.modules
    }

    /// Number of modules in the file.
    pub fn module_count(&self) -> usize {
        self.modules.len()
    }
}

/// Finds `name` (`name.safetensors`, case-insensitive, also in subfolders) under `folders`.
pub fn find(name: &str, folders: &[PathBuf]) -> Option<PathBuf> {
    find_with(name, folders, &["safetensors"])
}

/// Finds a pickled LoRA called `name` (`.pt`, `.ckpt`, `.bin`), which Easel never loads, so the
/// user hears why a tag that names it does nothing.
pub fn find_pickle(name: &str, folders: &[PathBuf]) -> Option<PathBuf> {
    find_with(name, folders, &["pt", "ckpt", "bin", "pth"])
}

fn find_with(name: &str, folders: &[PathBuf], extensions: &[&str]) -> Option<PathBuf> {
    fn walk(dir: &Path, name: &str, extensions: &[&str], depth: usize) -> Option<PathBuf> {
        let entries = std::fs::read_dir(dir).ok()?;
        let mut subdirs = Vec::new();
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                subdirs.push(p);
            } else if p
                .extension()
                .is_some_and(|x| extensions.iter().any(|e| x.eq_ignore_ascii_case(e)))
                && p.file_stem()
                    .is_some_and(|s| s.to_string_lossy().eq_ignore_ascii_case(name))
            {
                return Some(p);
            }
        }
        if depth == 0 {
            return None;
        }
        subdirs.sort();
        subdirs
            .into_iter()
            .find_map(|d| walk(&d, name, extensions, depth - 1))
    }
    folders.iter().find_map(|f| walk(f, name, extensions, 3))
}

/// Every LoRA file under `folders` (name, path), sorted by name.
pub fn list(folders: &[PathBuf]) -> Vec<(String, PathBuf)> {
    fn walk(dir: &Path, out: &mut Vec<(String, PathBuf)>, depth: usize) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() && depth > 0 {
                walk(&p, out, depth - 1);
            } else if p
                .extension()
                .is_some_and(|x| x.eq_ignore_ascii_case("safetensors"))
                && let Some(stem) = p.file_stem()
            {
                out.push((stem.to_string_lossy().into_owned(), p));
            }
        }
    }
    let mut out = Vec::new();
    for f in folders {
        walk(f, &mut out, 3);
    }
    out.sort_by_key(|a| a.0.to_lowercase());
    out.dedup_by(|a, b| a.0.eq_ignore_ascii_case(&b.0));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(v: &[f32], shape: &[usize]) -> Tensor {
        Tensor::from_vec(v.to_vec(), shape, &Device::Cpu).unwrap()
    }

    #[test]
    fn low_rank_delta_and_scale() {
        let m = Module {
            key: "k".into(),
            update: Update::LowRank {
                down: t(&[1., 2., 3., 4., 5., 6.], &[2, 3]),
                up: t(&[1., 0., 0., 1.], &[2, 2]),
            },
            alpha: Some(1.0),
        };
        assert_eq!(m.scale(), 0.5);
        let d = m.delta(&[2, 3], &Device::Cpu).unwrap();
        assert_eq!(
            d.to_vec2::<f32>().unwrap(),
            vec![vec![1., 2., 3.], vec![4., 5., 6.]]
        );
        // A conv LoCon: down [r, in, kh, kw], up [out, r, 1, 1] → [out, in, kh, kw].
        let conv = Module {
            key: "c".into(),
            update: Update::LowRank {
                down: t(&[1.0; 8], &[1, 2, 2, 2]),
                up: t(&[2.0, 3.0], &[2, 1, 1, 1]),
            },
            alpha: None,
        };
        assert_eq!(conv.scale(), 1.0);
        let d = conv.delta(&[2, 2, 2, 2], &Device::Cpu).unwrap();
        assert_eq!(
            d.flatten_all().unwrap().to_vec1::<f32>().unwrap()[..2],
            [2.0, 2.0]
        );
    }

    #[test]
    fn hadamard_and_kronecker() {
        let h = Module {
            key: "h".into(),
            update: Update::Hadamard {
                w1a: t(&[1., 2.], &[2, 1]),
                w1b: t(&[1., 1.], &[1, 2]),
                w2a: t(&[3., 4.], &[2, 1]),
                w2b: t(&[1., 2.], &[1, 2]),
            },
            alpha: Some(2.0),
        };
        assert_eq!(h.scale(), 2.0);
        let d = h.delta(&[2, 2], &Device::Cpu).unwrap().to_vec2::<f32>().unwrap();
        assert_eq!(d, vec![vec![3., 6.], vec![8., 16.]]);
        let k = Module {
            key: "k".into(),
            update: Update::Kronecker {
                w1: t(&[1., 2.], &[1, 2]),
                w2: t(&[1., 10., 100., 1000.], &[2, 2]),
                rank: None,
            },
            alpha: Some(4.0),
        };
        assert_eq!(k.scale(), 1.0);
        let d = k.delta(&[2, 4], &Device::Cpu).unwrap().to_vec2::<f32>().unwrap();
        assert_eq!(d, vec![vec![1., 10., 2., 20.], vec![100., 1000., 200., 2000.]]);
    }

    #[test]
    fn keys_split_into_network_and_suffix() {
        assert_eq!(
            part_of("lora_te_text_model_encoder_layers_0_mlp_fc1").unwrap().0,
            Part::TextEncoder
        );
        assert_eq!(
            split_key("lora_unet_x.lora_down.weight"),
            Some(("lora_unet_x", ".lora_down.weight"))
        );
        assert_eq!(split_key("lora_unet_x.alpha"), Some(("lora_unet_x", ".alpha")));
    }

    #[test]
    fn factors_that_do_not_fit_the_layer_are_refused_before_multiplying() {
        // A LoKr whose factors would multiply to far more values than the 2×4 layer has.
        let k = Module {
            key: "k".into(),
            update: Update::Kronecker {
                w1: t(&[1.; 64], &[8, 8]),
                w2: t(&[1.; 64], &[8, 8]),
                rank: None,
            },
            alpha: None,
        };
        let err = k.delta(&[2, 4], &Device::Cpu).unwrap_err().to_string();
        assert!(err.contains("4096 values, the layer has 8"), "{err}");
        let lr = Module {
            key: "l".into(),
            update: Update::LowRank {
                down: t(&[1.; 6], &[2, 3]),
                up: t(&[1.; 6], &[2, 3]),
            },
            alpha: None,
        };
        assert!(
            lr.delta(&[2, 3], &Device::Cpu)
                .unwrap_err()
                .to_string()
                .contains("rank 2 but up has 3")
        );
    }
}
