//! Memory-mapped, validated reader for `.safetensors` files.
//! Every offset and size in the header is checked before any tensor is touched, so a truncated or corrupt file is a message, not a crash.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use memmap2::Mmap;

use super::ModelError;

/// Largest JSON header we accept (real checkpoints have headers of a few hundred KiB).
const MAX_HEADER_BYTES: u64 = 100 * 1024 * 1024;

/// Element type of a stored tensor, as spelled in the safetensors header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StorageDtype {
    /// 64-bit float.
    F64,
    /// 32-bit float.
    F32,
    /// IEEE half precision.
    F16,
    /// bfloat16.
    BF16,
    /// 64-bit signed integer.
    I64,
    /// 32-bit signed integer.
    I32,
    /// 16-bit signed integer.
    I16,
    /// 8-bit signed integer.
    I8,
    /// 8-bit unsigned integer.
    U8,
    /// Boolean stored as one byte.
    Bool,
    /// 8-bit float, e4m3.
    F8E4M3,
    /// 8-bit float, e5m2.
    F8E5M2,
}

impl StorageDtype {
    fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "F64" => Self::F64,
            "F32" => Self::F32,
            "F16" => Self::F16,
            "BF16" => Self::BF16,
            "I64" => Self::I64,
            "I32" => Self::I32,
            "I16" => Self::I16,
            "I8" => Self::I8,
            "U8" => Self::U8,
            "BOOL" => Self::Bool,
            "F8_E4M3" => Self::F8E4M3,
            "F8_E5M2" => Self::F8E5M2,
            _ => return None,
        })
    }

    /// Bytes per element.
    pub fn size_bytes(self) -> usize {
        match self {
            Self::F64 | Self::I64 => 8,
            Self::F32 | Self::I32 => 4,
            Self::F16 | Self::BF16 | Self::I16 => 2,
            Self::I8 | Self::U8 | Self::Bool | Self::F8E4M3 | Self::F8E5M2 => 1,
        }
    }

    /// Name as written in the safetensors header.
    pub fn name(self) -> &'static str {
        match self {
            Self::F64 => "F64",
            Self::F32 => "F32",
            Self::F16 => "F16",
            Self::BF16 => "BF16",
            Self::I64 => "I64",
            Self::I32 => "I32",
            Self::I16 => "I16",
            Self::I8 => "I8",
            Self::U8 => "U8",
            Self::Bool => "BOOL",
            Self::F8E4M3 => "F8_E4M3",
            Self::F8E5M2 => "F8_E5M2",
        }
    }

    /// True for the float types a model's weights can be stored in.
    pub fn is_float(self) -> bool {
        matches!(
            self,
            Self::F64 | Self::F32 | Self::F16 | Self::BF16 | Self::F8E4M3 | Self::F8E5M2
        )
    }

    fn candle(self) -> Option<DType> {
        Some(match self {
            Self::F64 => DType::F64,
            Self::F32 => DType::F32,
            Self::F16 => DType::F16,
            Self::BF16 => DType::BF16,
            Self::I64 => DType::I64,
            Self::U8 | Self::Bool => DType::U8,
            Self::F8E4M3 => DType::F8E4M3,
            Self::I32 | Self::I16 | Self::I8 | Self::F8E5M2 => return None,
        })
    }
}

/// One tensor's entry in the header. Offsets are absolute positions in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorEntry {
    /// Storage element type.
    pub dtype: StorageDtype,
    /// Shape, outermost dimension first.
    pub shape: Vec<usize>,
    /// First byte of the data in the file.
    pub start: usize,
    /// One past the last byte of the data in the file.
    pub end: usize,
}

impl TensorEntry {
    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }
}

/// An open, validated, memory-mapped safetensors file.
pub struct SafetensorsFile {
    path: PathBuf,
    mmap: Mmap,
    header_end: usize,
    tensors: BTreeMap<String, TensorEntry>,
    metadata: BTreeMap<String, String>,
}

impl std::fmt::Debug for SafetensorsFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SafetensorsFile")
            .field("path", &self.path)
            .field("tensors", &self.tensors.len())
            .finish_non_exhaustive()
    }
}

impl SafetensorsFile {
    /// Opens and validates `path`. Tensor data is not read until asked for.
    pub fn open(path: &Path) -> Result<Self, ModelError> {
        let file = crate::system::open_regular(path).map_err(|err| ModelError::io(path, &err))?;
        let file_len = file.metadata().map_err(|err| ModelError::io(path, &err))?.len();
        let bad = |why: String| ModelError::Corrupt {
            path: path.to_path_buf(),
            why,
        };
        if file_len < 8 {
            return Err(bad(format!(
                "the file is {file_len} bytes long, too short to hold a safetensors header"
            )));
        }
        // SAFETY: the map is read-only. If another program truncates the file while it is
        // mapped, reads may fault; that is the accepted contract of every mmap-based model
        // loader (candle, safetensors, llama.cpp) and the price of not copying gigabytes.
        #[expect(unsafe_code, reason = "memory-mapping the checkpoint avoids copying it")]
        let mmap = unsafe { Mmap::map(&file) }.map_err(|err| ModelError::io(path, &err))?;
        let mut len_bytes = [0u8; 8];
        len_bytes.copy_from_slice(&mmap[..8]);
        let header_len = u64::from_le_bytes(len_bytes);
        if header_len > MAX_HEADER_BYTES || header_len > file_len - 8 {
            return Err(bad(format!(
                "the header claims {header_len} bytes but the file is {file_len} bytes long (truncated download?)"
            )));
        }
        let header_end = 8 + header_len as usize;
        let header: serde_json::Value = serde_json::from_slice(&mmap[8..header_end])
            .map_err(|err| bad(format!("the header is not valid JSON ({err})")))?;
        let serde_json::Value::Object(entries) = header else {
            return Err(bad("the header is not a JSON object".into()));
        };
        let data_len = mmap.len() - header_end;
        let mut tensors = BTreeMap::new();
        let mut metadata = BTreeMap::new();
        for (name, value) in entries {
            if name == "__metadata__" {
                if let serde_json::Value::Object(map) = value {
                    for (k, v) in map {
                        let text = match v {
                            serde_json::Value::String(s) => s,
                            other => other.to_string(),
                        };
                        metadata.insert(k, text);
                    }
                }
                continue;
            }
            let entry = parse_entry(&name, &value, data_len).map_err(bad)?;
            tensors.insert(
                name,
                TensorEntry {
                    start: entry.start + header_end,
                    end: entry.end + header_end,
                    ..entry
                },
            );
        }
        Ok(Self {
            path: path.to_path_buf(),
            mmap,
            header_end,
            tensors,
            metadata,
        })
    }

    /// Path the file was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Size of the whole file in bytes.
    pub fn file_size(&self) -> u64 {
        self.mmap.len() as u64
    }

    /// Tensor entries by name.
    pub fn tensors(&self) -> &BTreeMap<String, TensorEntry> {
        &self.tensors
    }

    /// `__metadata__` strings.
    pub fn metadata(&self) -> &BTreeMap<String, String> {
        &self.metadata
    }

    /// The header entry of `name`, if present.
    pub fn entry(&self, name: &str) -> Option<&TensorEntry> {
        self.tensors.get(name)
    }

    /// Raw bytes of the whole file (memory-mapped).
    pub fn bytes(&self) -> &[u8] {
        &self.mmap
    }

    /// Raw bytes after the header (what A1111 and kohya hash for LoRA files).
    pub fn data_bytes(&self) -> &[u8] {
        &self.mmap[self.header_end..]
    }

    /// Loads tensor `name` onto `device`, converted to `dtype`.
    pub fn load(&self, name: &str, dtype: DType, device: &Device) -> Result<Tensor, ModelError> {
        let entry = self.tensors.get(name).ok_or_else(|| ModelError::MissingTensor {
            path: self.path.clone(),
            name: name.to_owned(),
        })?;
        let storage = entry.dtype.candle().ok_or_else(|| ModelError::Corrupt {
            path: self.path.clone(),
            why: format!(
                "tensor '{name}' is stored as {}, which Easel cannot read",
                entry.dtype.name()
            ),
        })?;
        let bytes = &self.mmap[entry.start..entry.end];
        let tensor = Tensor::from_raw_buffer(bytes, storage, &entry.shape, &Device::Cpu)
            .and_then(|t| t.to_dtype(dtype))
            .and_then(|t| t.to_device(device))
            .map_err(|err| ModelError::Tensor {
                path: self.path.clone(),
                what: format!("tensor '{name}'"),
                source: err,
            })?;
        Ok(tensor)
    }
}

fn parse_entry(name: &str, value: &serde_json::Value, data_len: usize) -> Result<TensorEntry, String> {
    let dtype_name = value
        .get("dtype")
        .and_then(serde_json::Value::as_str)
        .ok_or_else(|| format!("tensor '{name}' has no dtype"))?;
    let dtype = StorageDtype::parse(dtype_name)
        .ok_or_else(|| format!("tensor '{name}' has unknown dtype '{dtype_name}'"))?;
    let shape = value
        .get("shape")
        .and_then(serde_json::Value::as_array)
        .ok_or_else(|| format!("tensor '{name}' has no shape"))?
        .iter()
        .map(|d| d.as_u64().map(|d| d as usize))
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| format!("tensor '{name}' has a malformed shape"))?;
    let offsets = value
        .get("data_offsets")
        .and_then(serde_json::Value::as_array)
        .filter(|a| a.len() == 2)
        .and_then(|a| Some((a[0].as_u64()? as usize, a[1].as_u64()? as usize)))
        .ok_or_else(|| format!("tensor '{name}' has malformed data_offsets"))?;
    let (start, end) = offsets;
    if start > end || end > data_len {
        return Err(format!(
            "tensor '{name}' lies at bytes {start}..{end} but the data section holds only {data_len} bytes (truncated file?)"
        ));
    }
    let numel = shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| format!("tensor '{name}' has an absurd shape {shape:?}"))?;
    let expected = numel
        .checked_mul(dtype.size_bytes())
        .ok_or_else(|| format!("tensor '{name}' has an absurd shape {shape:?}"))?;
    if end - start != expected {
        return Err(format!(
            "tensor '{name}' of shape {shape:?} and dtype {dtype_name} needs {expected} bytes but its offsets span {}",
            end - start
        ));
    }
    Ok(TensorEntry {
        dtype,
        shape,
        start,
        end,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::File;
    use std::io::Write;

    fn write_file(dir: &Path, header: &str, data: &[u8]) -> PathBuf {
        let path = dir.join("t.safetensors");
        let mut f = File::create(&path).unwrap();
        f.write_all(&(header.len() as u64).to_le_bytes()).unwrap();
        f.write_all(header.as_bytes()).unwrap();
        f.write_all(data).unwrap();
        path
    }

    #[test]
    fn reads_valid_file() {
        let dir = tempfile::tempdir().unwrap();
        let data: Vec<u8> = [1.0f32, 2.0, 3.0, 4.0]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let path = write_file(
            dir.path(),
            r#"{"__metadata__":{"format":"pt"},"w":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]}}"#,
            &data,
        );
        let file = SafetensorsFile::open(&path).unwrap();
        assert_eq!(file.metadata()["format"], "pt");
        let t = file.load("w", DType::F32, &Device::Cpu).unwrap();
        assert_eq!(t.to_vec2::<f32>().unwrap(), vec![vec![1.0, 2.0], vec![3.0, 4.0]]);
    }

    #[test]
    fn rejects_offsets_past_end() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_file(
            dir.path(),
            r#"{"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}"#,
            &[0u8; 8],
        );
        let err = SafetensorsFile::open(&path).unwrap_err().to_string();
        assert!(err.contains("truncated"), "{err}");
        assert!(err.contains("t.safetensors"), "{err}");
    }

    #[test]
    fn rejects_bad_header_length() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.safetensors");
        std::fs::write(&path, 1_000_000u64.to_le_bytes()).unwrap();
        let err = SafetensorsFile::open(&path).unwrap_err().to_string();
        assert!(err.contains("header claims"), "{err}");
    }

    #[test]
    fn rejects_size_mismatch_and_garbage() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_file(
            dir.path(),
            r#"{"w":{"dtype":"F16","shape":[4],"data_offsets":[0,4]}}"#,
            &[0u8; 8],
        );
        assert!(SafetensorsFile::open(&path).is_err());
        let path = write_file(dir.path(), "not json at all", &[]);
        let err = SafetensorsFile::open(&path).unwrap_err().to_string();
        assert!(err.contains("JSON"), "{err}");
    }
}
