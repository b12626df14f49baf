//! A1111/Civitai model hashes: AutoV2 (SHA-256 of the whole file, first 10 hex) and the LoRA tensor-data hash.
//! Hashing reads the whole file; callers run it off the UI thread.

use std::io::Read;
use std::path::Path;

use sha2::{Digest, Sha256};

use super::ModelError;

/// Full SHA-256 of a file, lowercase hex, streamed in 1 MiB blocks.
/// `progress` gets (bytes done, total) after each block.
pub fn sha256_file(path: &Path, mut progress: impl FnMut(u64, u64)) -> Result<String, ModelError> {
    let mut file = crate::system::open_regular(path).map_err(|err| ModelError::io(path, &err))?;
    let total = file.metadata().map_err(|err| ModelError::io(path, &err))?.len();
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut done = 0u64;
    loop {
        let n = file.read(&mut buf).map_err(|err| ModelError::io(path, &err))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        done += n as u64;
        progress(done, total);
    }
    Ok(hex(&hasher.finalize()))
}

/// A1111's "AutoV2" model hash: the first 10 hex digits of the file's SHA-256.
pub fn autov2(sha256_hex: &str) -> String {
    sha256_hex.chars().take(10).collect()
}

/// A1111's old model hash (`sd_models.model_hash`), which sd-webui-controlnet shows after each
/// ControlNet's name: the first 8 hex digits of the SHA-256 of the 64 KiB at offset 1 MiB (of
/// whatever part of the file is there).
///
/// # Errors
/// The file cannot be read.
pub fn old_model_hash(path: &Path) -> std::io::Result<String> {
    use std::io::{Seek, SeekFrom};
    let mut f = std::fs::File::open(path)?;
    f.seek(SeekFrom::Start(0x10_0000))?;
    let mut buf = Vec::with_capacity(0x1_0000);
    f.take(0x1_0000).read_to_end(&mut buf)?;
    Ok(sha256_bytes(&buf)[..8].to_owned())
}

/// SHA-256 of bytes as lowercase hex.
pub fn sha256_bytes(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::with_capacity(64), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_digest() {
        assert_eq!(
            sha256_bytes(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, b"abc").unwrap();
        let full = sha256_file(&p, |_, _| {}).unwrap();
        assert_eq!(autov2(&full), "ba7816bf8f");
    }
}

/// SHA-256 of `path`, cached on disk by (path, size, modification time) like A1111's `cache.json`,
/// so a multi-gigabyte checkpoint is hashed once. The cache lives in the platform cache folder
/// (`EASEL_CACHE_DIR` overrides it); a missing or corrupt cache is rebuilt silently.
pub fn cached_sha256(path: &Path, progress: impl FnMut(u64, u64)) -> Result<String, ModelError> {
    cached_sha256_in(cache_dir().as_deref(), path, progress)
}

/// [`cached_sha256`] with an explicit cache folder (`None`: no caching).
pub fn cached_sha256_in(
    cache_dir: Option<&Path>,
    path: &Path,
    progress: impl FnMut(u64, u64),
) -> Result<String, ModelError> {
    let meta = std::fs::metadata(path).map_err(|err| ModelError::io(path, &err))?;
    let mtime_ns = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    let key = std::fs::canonicalize(path)
        .unwrap_or_else(|_| path.to_path_buf())
        .display()
        .to_string();
    let stamp = format!("{}:{mtime_ns}", meta.len());
    let cache_file = cache_dir.map(|d| d.join("hashes.json"));
    let mut cache: serde_json::Map<String, serde_json::Value> = cache_file
        .as_ref()
        .and_then(|f| std::fs::read_to_string(f).ok())
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default();
    if let Some(entry) = cache.get(&key)
        && entry.get("stamp").and_then(serde_json::Value::as_str) == Some(stamp.as_str())
        && let Some(sha) = entry.get("sha256").and_then(serde_json::Value::as_str)
    {
        return Ok(sha.to_owned());
    }
    let sha = sha256_file(path, progress)?;
    if let Some(file) = cache_file {
        cache.insert(key, serde_json::json!({ "stamp": stamp, "sha256": sha }));
        if let Err(err) = write_atomically(&file, &serde_json::Value::Object(cache).to_string()) {
            tracing::warn!("could not update the hash cache {}: {err}", file.display());
        }
    }
    Ok(sha)
}

fn cache_dir() -> Option<std::path::PathBuf> {
    if let Some(dir) = std::env::var_os("EASEL_CACHE_DIR") {
        return Some(dir.into());
    }
    directories::ProjectDirs::from("", "", "Easel").map(|d| d.cache_dir().to_path_buf())
}

fn write_atomically(path: &Path, text: &str) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod cache_tests {
    use super::*;

    #[test]
    fn cache_hits_and_invalidates_on_change() {
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("cache");
        let file = dir.path().join("m.safetensors");
        std::fs::write(&file, b"abc").unwrap();
        let mut reads = 0;
        let first = cached_sha256_in(Some(&cache), &file, |_, _| reads += 1).unwrap();
        assert_eq!(first, sha256_bytes(b"abc"));
        assert_eq!(reads, 1);
        let again = cached_sha256_in(Some(&cache), &file, |_, _| reads += 1).unwrap();
        assert_eq!(
            (again.as_str(), reads),
            (first.as_str(), 1),
            "second call is served from the cache"
        );
        std::fs::write(&file, b"abcd").unwrap();
        let changed = cached_sha256_in(Some(&cache), &file, |_, _| reads += 1).unwrap();
        assert_eq!(changed, sha256_bytes(b"abcd"));
        std::fs::write(cache.join("hashes.json"), "not json").unwrap();
        assert_eq!(cached_sha256_in(Some(&cache), &file, |_, _| {}).unwrap(), changed);
    }
}
