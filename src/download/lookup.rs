//! Civitai lookup by hash (`/api/v1/model-versions/by-hash/{hash}`): which model a file is, its
//! version, base model, trigger words and preview picture. Answers and pictures are cached on disk,
//! so each file is asked about once. Only called when the user turned the lookup on.

use std::path::{Path, PathBuf};

use super::DownloadError;
use super::http::{Http, Service, check_status};
use super::source::Endpoints;

/// Bytes of a preview picture read at most.
const PREVIEW_LIMIT_BYTES: u64 = 20 * 1024 * 1024;

/// What Civitai says about a file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CivitaiInfo {
    /// The model's name.
    pub model_name: String,
    /// The version's name.
    pub version_name: String,
    /// "SD 1.5", "SDXL 1.0", …
    pub base_model: String,
    /// Trigger words.
    pub trained_words: Vec<String>,
    /// The first preview image, when there is one.
    pub preview_url: Option<String>,
    /// Civitai's model id.
    pub model_id: Option<u64>,
    /// Civitai's model version id.
    pub version_id: Option<u64>,
}

/// A cached answer: found, or known to be unknown to Civitai.
#[derive(serde::Serialize, serde::Deserialize)]
struct Cached {
    info: Option<CivitaiInfo>,
}

/// Looks `hash` (SHA-256, or Civitai's AutoV2 / AutoV1 / CRC32 / BLAKE3) up on Civitai;
/// `None` when Civitai does not know the file. Answers are cached in `cache_dir`.
pub fn lookup_by_hash(
    hash: &str,
    endpoints: &Endpoints,
    cache_dir: &Path,
) -> Result<Option<CivitaiInfo>, DownloadError> {
    let hash = hash.trim().to_ascii_lowercase();
    if hash.is_empty() || !hash.bytes().all(|b| b.is_ascii_hexdigit()) || hash.len() > 64 {
        return Err(DownloadError::BadSource(format!("not a file hash: {hash}")));
    }
    let cache = cache_dir.join(format!("{hash}.json"));
    if let Some(cached) = std::fs::read_to_string(&cache)
        .ok()
        .and_then(|text| serde_json::from_str::<Cached>(&text).ok())
    {
        return Ok(cached.info);
    }
    let base = endpoints.civitai.trim_end_matches('/');
    let url = format!("{base}/api/v1/model-versions/by-hash/{hash}");
    let auth = super::http::authority_of(base)
        .zip(endpoints.civitai_token.clone())
        .map(|(authority, token)| super::http::Auth { authority, token });
    let http = Http::new();
    let info = match http.get_json(&url, auth.as_ref(), Service::Civitai) {
        Ok(version) => Some(info_from_version(&version)),
        Err(DownloadError::NotFound { .. }) => None,
        Err(err) => return Err(err),
    };
    let text =
        serde_json::to_string_pretty(&Cached { info: info.clone() }).map_err(|e| DownloadError::Io {
            path: cache.clone(),
            why: e.to_string(),
        })?;
    write_atomically(&cache, text.as_bytes())?;
    Ok(info)
}

/// The fields the browser shows, from a model-version answer.
fn info_from_version(version: &serde_json::Value) -> CivitaiInfo {
    let text = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_owned();
    CivitaiInfo {
        model_name: text(&version["model"]["name"]),
        version_name: text(&version["name"]),
        base_model: text(&version["baseModel"]),
        trained_words: version["trainedWords"]
            .as_array()
            .map(|words| {
                words
                    .iter()
                    .filter_map(|w| w.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default(),
        preview_url: version["images"]
            .as_array()
            .and_then(|images| images.iter().find_map(|i| i["url"].as_str()))
            .map(str::to_owned),
        model_id: version["modelId"].as_u64(),
        version_id: version["id"].as_u64(),
    }
}

/// The preview picture of `info`, fetched once and kept in `cache_dir` as `{key}.preview.{ext}`.
pub fn cached_preview(
    info: &CivitaiInfo,
    key: &str,
    cache_dir: &Path,
) -> Result<Option<PathBuf>, DownloadError> {
    let Some(url) = &info.preview_url else {
        return Ok(None);
    };
    let ext = url
        .split(['?', '#'])
        .next()
        .and_then(|p| p.rsplit_once('.'))
        .map(|(_, e)| e.to_ascii_lowercase())
        .filter(|e| ["png", "jpg", "jpeg", "webp"].contains(&e.as_str()))
        .unwrap_or_else(|| "jpeg".into());
    let key: String = key.chars().filter(char::is_ascii_alphanumeric).collect();
    let path = cache_dir.join(format!("{key}.preview.{ext}"));
    if path.is_file() {
        return Ok(Some(path));
    }
    let mut got = Http::new().get(url, None, None)?;
    check_status(&got, Service::Civitai)?;
    let bytes = got
        .response
        .body_mut()
        .with_config()
        .limit(PREVIEW_LIMIT_BYTES)
        .read_to_vec()
        .map_err(|e| super::http::network_error(&got.url, &e))?;
    write_atomically(&path, &bytes)?;
    Ok(Some(path))
}

/// Writes through a temporary file and a rename.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), DownloadError> {
    let io = |e: std::io::Error| DownloadError::Io {
        path: path.to_path_buf(),
        why: e.to_string(),
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}
