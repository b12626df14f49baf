//! A1111/Civitai model hashes: AutoV2 (SHA-256 of the whole file, first 10 hex) and the LoRA tensor-data hash.
//! Hashing reads the whole file; callers run it off the UI thread.

use std::io::Read;
use std::path::Path;

use sha2::{Digest, Sha256};

use super::ModelError;

/// Full SHA-256 of a file, lowercase hex, streamed in 1 MiB blocks.
/// `progress` gets (bytes done, total) after each block.
pub fn sha256_file(path: &Path, mut progress: impl FnMut(u64, u64)) -> Result<String, ModelError> {
    let mut file = std::fs::File::open(path).map_err(|err| ModelError::io(path, &err))?;
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
