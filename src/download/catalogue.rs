//! The starter catalogue (`assets/catalogue.json`, built into the binary): the files a new user
//! needs first, with size, licence and, where known, SHA-256, for the Get models dialog.

use super::source::{Source, is_sha256};
use super::{DownloadRequest, ModelKind};

/// The catalogue shipped with Easel.
const CATALOGUE_JSON: &str = include_str!("../../assets/catalogue.json");

/// One downloadable file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct CatalogueEntry {
    /// Stable id (tests and logs).
    pub id: String,
    /// What the dialog shows.
    pub name: String,
    /// What it is (decides the folder).
    pub kind: ModelKind,
    /// A Hugging Face repository (`org/name`) when `file` is given, else any source text.
    pub source: String,
    /// The file in the repository.
    #[serde(default)]
    pub file: Option<String>,
    /// Branch, tag or commit (`main` when absent).
    #[serde(default)]
    pub revision: Option<String>,
    /// Size in bytes, when recorded.
    #[serde(default)]
    pub size_bytes: Option<u64>,
    /// SHA-256 (lowercase hex), when recorded; otherwise the hub's published hash is checked.
    #[serde(default)]
    pub sha256: Option<String>,
    /// The licence its repository states.
    pub licence: String,
    /// One line on what it is for.
    #[serde(default)]
    pub description: String,
}

impl CatalogueEntry {
    /// Where it comes from.
    pub fn source(&self) -> Result<Source, super::DownloadError> {
        match &self.file {
            Some(file) => Ok(Source::HuggingFace {
                repo: self.source.clone(),
                file: file.clone(),
                revision: self.revision.clone().unwrap_or_else(|| "main".into()),
            }),
            None => Source::parse(&self.source),
        }
    }

    /// The file name it will have.
    pub fn file_name(&self) -> &str {
        self.file
            .as_deref()
            .map_or(self.source.as_str(), |f| f.rsplit('/').next().unwrap_or(f))
    }

    /// A request for it: its kind's folder, its recorded hash.
    pub fn request(&self) -> Result<DownloadRequest, super::DownloadError> {
        Ok(DownloadRequest {
            kind: Some(self.kind),
            sha256: self.sha256.clone(),
            ..DownloadRequest::new(self.source()?)
        })
    }
}

/// The list of starter files.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct Catalogue {
    /// The entries, in the dialog's order.
    pub entries: Vec<CatalogueEntry>,
}

impl Catalogue {
    /// The catalogue built into Easel.
    ///
    /// # Errors
    /// The built-in JSON is broken (a unit test keeps it valid).
    pub fn builtin() -> Result<Self, String> {
        Self::parse(CATALOGUE_JSON)
    }

    /// Reads a catalogue; entries with a malformed SHA-256 are refused.
    ///
    /// # Errors
    /// Not JSON of this shape, or a bad hash, with the entry named.
    pub fn parse(json: &str) -> Result<Self, String> {
        let catalogue: Self =
            serde_json::from_str(json).map_err(|e| format!("the model catalogue is broken: {e}"))?;
        for e in &catalogue.entries {
            if e.sha256.as_deref().is_some_and(|h| !is_sha256(h)) {
                return Err(format!(
                    "the model catalogue's entry {} has a malformed sha256",
                    e.id
                ));
            }
            e.source()
                .map_err(|err| format!("the model catalogue's entry {}: {err}", e.id))?;
        }
        Ok(catalogue)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_builtin_catalogue_parses_and_lists_the_starter_files() {
        let c = Catalogue::builtin().unwrap();
        let ids: Vec<&str> = c.entries.iter().map(|e| e.id.as_str()).collect();
        for id in [
            "sd15",
            "vae-ft-mse",
            "taesd",
            "lcm-lora-sd15",
            "controlnet-inpaint",
            "controlnet-tile",
            "controlnet-canny",
            "controlnet-lineart",
        ] {
            assert!(ids.contains(&id), "{id} missing");
        }
        for e in &c.entries {
            assert!(e.file_name().ends_with(".safetensors"), "{}", e.id);
            assert!(!e.licence.is_empty(), "{}", e.id);
            let request = e.request().unwrap();
            assert_eq!(request.kind, Some(e.kind));
            assert!(matches!(request.source, Source::HuggingFace { .. }));
        }
        let sd15 = &c.entries[0];
        assert_eq!(sd15.kind, ModelKind::Checkpoint);
        assert_eq!(sd15.size_bytes, Some(4_265_146_304));
        assert!(
            sd15.sha256
                .as_deref()
                .is_some_and(|h| h.starts_with("6ce0161689"))
        );
        let taesd = c.entries.iter().find(|e| e.id == "taesd").unwrap();
        assert_eq!(taesd.kind, ModelKind::VaeApprox);
        assert!(taesd.sha256.is_none());
    }

    #[test]
    fn a_malformed_hash_or_kind_is_refused() {
        let entry = |kind: &str, sha: &str| {
            format!(
                r#"{{"entries": [{{"id": "x", "name": "X", "kind": "{kind}", "source": "o/r", "file": "x.safetensors", "sha256": {sha}, "licence": "MIT"}}]}}"#
            )
        };
        assert!(Catalogue::parse(&entry("lora", "null")).is_ok());
        assert!(
            Catalogue::parse(&entry("lora", "\"abc\""))
                .unwrap_err()
                .contains("sha256")
        );
        assert!(Catalogue::parse(&entry("upscaler", "null")).is_err());
    }
}
