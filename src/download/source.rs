//! Where a file comes from: what the user typed (`org/repo/file`, a hub or Civitai page, an id, a
//! URL) as a [`Source`], and the service's API turning it into an address, a name and a hash.

use std::fmt::Write as _;

use serde_json::Value;

use super::http::{Auth, Http, Service, authority_of};
use super::{DownloadError, ModelKind};

/// The Hugging Face hub, unless `HF_ENDPOINT` says otherwise.
pub const HF_DEFAULT: &str = "https://huggingface.co";
/// Civitai, unless `CIVITAI_ENDPOINT` says otherwise.
pub const CIVITAI_DEFAULT: &str = "https://civitai.com";

/// Where the services are and how to log in to them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoints {
    /// Base URL of the Hugging Face hub (`HF_ENDPOINT`).
    pub hugging_face: String,
    /// Base URL of Civitai (`CIVITAI_ENDPOINT`; the tests point it at their local server).
    pub civitai: String,
    /// `HF_TOKEN`, sent to the hub only.
    pub hf_token: Option<String>,
    /// `CIVITAI_TOKEN`, sent to Civitai only.
    pub civitai_token: Option<String>,
}

impl Default for Endpoints {
    fn default() -> Self {
        Self {
            hugging_face: HF_DEFAULT.into(),
            civitai: CIVITAI_DEFAULT.into(),
            hf_token: None,
            civitai_token: None,
        }
    }
}

impl Endpoints {
    /// The defaults with `HF_ENDPOINT`, `CIVITAI_ENDPOINT`, `HF_TOKEN` and `CIVITAI_TOKEN` applied.
    pub fn from_env() -> Self {
        let var = |name: &str| {
            std::env::var(name)
                .ok()
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let defaults = Self::default();
        Self {
            hugging_face: var("HF_ENDPOINT")
                .map_or(defaults.hugging_face, |v| v.trim_end_matches('/').to_owned()),
            civitai: var("CIVITAI_ENDPOINT").map_or(defaults.civitai, |v| v.trim_end_matches('/').to_owned()),
            hf_token: var("HF_TOKEN").or_else(|| var("HUGGING_FACE_HUB_TOKEN")),
            civitai_token: var("CIVITAI_TOKEN"),
        }
    }

    fn auth(base: &str, token: Option<&String>) -> Option<Auth> {
        Some(Auth {
            authority: authority_of(base)?,
            token: token?.clone(),
        })
    }
}

/// A Civitai model or one of its versions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CivitaiRef {
    /// A model version id (`modelVersionId`).
    Version(u64),
    /// A model id: its newest version.
    Model(u64),
}

/// Where a file comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A file of a Hugging Face repository.
    HuggingFace {
        /// `org/name`.
        repo: String,
        /// Path of the file in the repository.
        file: String,
        /// Branch, tag or commit.
        revision: String,
    },
    /// A Civitai model version (or a model's newest version).
    Civitai(CivitaiRef),
    /// Any https address.
    Url(String),
}

impl Source {
    /// Reads what a user typed: `org/repo/path/file.safetensors`, `hf:org/repo/file`, a hub page
    /// (`…/blob/REV/file` or `…/resolve/REV/file`), `civitai:ID` or a bare version id, a Civitai page
    /// (`/models/123?modelVersionId=456`, `/models/123`) or download link, or any https URL.
    pub fn parse(text: &str) -> Result<Self, DownloadError> {
        let t = text.trim();
        let bad = |why: &str| DownloadError::BadSource(format!("{}: {why}", crate::text::shorten(t, 300)));
        if t.is_empty() {
            return Err(bad("nothing given"));
        }
        if let Some(id) = t.strip_prefix("civitai:") {
            return id
                .trim()
                .parse()
                .map(|id| Self::Civitai(CivitaiRef::Version(id)))
                .map_err(|_| bad("expected civitai:VERSION_ID"));
        }
        if t.bytes().all(|b| b.is_ascii_digit()) {
            return t
                .parse()
                .map(|id| Self::Civitai(CivitaiRef::Version(id)))
                .map_err(|_| bad("the number is too large for a Civitai version id"));
        }
        if let Some(spec) = t.strip_prefix("hf:").or_else(|| t.strip_prefix("hf://")) {
            return hub_spec(spec.trim_start_matches('/')).ok_or_else(|| bad(HUB_FORM));
        }
        if t.contains("://") {
            let host = authority_of(t).unwrap_or_default();
            let host = host.trim_start_matches("www.");
            if host == "huggingface.co" || host == "hf.co" {
                return hub_page(t).ok_or_else(|| {
                    bad("a Hugging Face address names a file: …/org/repo/blob/main/file.safetensors")
                });
            }
            if host == "civitai.com" {
                return civitai_page(t).ok_or_else(|| {
                    bad("a Civitai address names a model: …/models/123 or …/models/123?modelVersionId=456")
                });
            }
            return Ok(Self::Url(t.to_owned()));
        }
        hub_spec(t).ok_or_else(|| bad(HUB_FORM))
    }

    /// The same source at another revision (Hugging Face only; others ignore it).
    #[must_use]
    pub fn at_revision(self, revision: &str) -> Self {
        match self {
            Self::HuggingFace { repo, file, .. } => Self::HuggingFace {
                repo,
                file,
                revision: revision.to_owned(),
            },
            other => other,
        }
    }
}

/// How a hub file is written.
const HUB_FORM: &str =
    "expected org/repo/file.safetensors (a Hugging Face file), a Civitai page or id, or an https:// URL";

/// `org/repo/path/to/file`.
fn hub_spec(spec: &str) -> Option<Source> {
    let parts: Vec<&str> = spec.split('/').collect();
    if parts.len() < 3 || parts.iter().any(|p| p.is_empty() || *p == "..") {
        return None;
    }
    Some(Source::HuggingFace {
        repo: format!("{}/{}", parts[0], parts[1]),
        file: parts[2..].join("/"),
        revision: "main".into(),
    })
}

/// `https://huggingface.co/org/repo/(blob|resolve)/REV/path/to/file[?download=true]`.
fn hub_page(url: &str) -> Option<Source> {
    let (_, rest) = url.split_once("://")?;
    let path = rest.split(['?', '#']).next()?;
    let parts: Vec<&str> = path.split('/').skip(1).collect();
    let [org, name, how, revision, file @ ..] = parts.as_slice() else {
        return None;
    };
    if !matches!(*how, "blob" | "resolve")
        || file.is_empty()
        || file.iter().any(|p| p.is_empty() || *p == "..")
    {
        return None;
    }
    Some(Source::HuggingFace {
        repo: format!("{org}/{name}"),
        file: file.join("/"),
        revision: (*revision).to_owned(),
    })
}

/// `https://civitai.com/models/123[/slug][?modelVersionId=456]` or `/api/download/models/456`.
fn civitai_page(url: &str) -> Option<Source> {
    let (_, rest) = url.split_once("://")?;
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    let query = query.split('#').next().unwrap_or("");
    let version = query
        .split('&')
        .find_map(|kv| kv.strip_prefix("modelVersionId="))
        .and_then(|v| v.parse().ok());
    let parts: Vec<&str> = path.split('/').skip(1).collect();
    match parts.as_slice() {
        ["api", "download", "models", id, ..] => Some(Source::Civitai(CivitaiRef::Version(id.parse().ok()?))),
        ["models", id, ..] => Some(Source::Civitai(version.map_or_else(
            || id.parse().ok().map(CivitaiRef::Model),
            |v| Some(CivitaiRef::Version(v)),
        )?)),
        _ => None,
    }
}

/// A source turned into an address to fetch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// The address of the bytes.
    pub url: String,
    /// The file's name in its folder.
    pub file_name: String,
    /// The SHA-256 the service publishes, lowercase (the hub's comes with the download instead).
    pub sha256: Option<String>,
    /// What the service says the file is.
    pub kind: Option<ModelKind>,
    /// The token for the service's host.
    pub auth: Option<Auth>,
    /// Which service, for the messages.
    pub service: Service,
}

/// Asks the service where `source`'s bytes are.
pub fn resolve(source: &Source, endpoints: &Endpoints, http: &Http) -> Result<Resolved, DownloadError> {
    match source {
        Source::HuggingFace { repo, file, revision } => Ok(Resolved {
            url: format!(
                "{}/{repo}/resolve/{}/{}",
                endpoints.hugging_face.trim_end_matches('/'),
                encode_path(revision),
                encode_path(file)
            ),
            file_name: last_segment(file),
            sha256: None,
            kind: None,
            auth: Endpoints::auth(&endpoints.hugging_face, endpoints.hf_token.as_ref()),
            service: Service::HuggingFace,
        }),
        Source::Civitai(reference) => resolve_civitai(*reference, endpoints, http),
        Source::Url(url) => Ok(Resolved {
            url: url.clone(),
            file_name: last_segment(url.split(['?', '#']).next().unwrap_or(url)),
            sha256: None,
            kind: None,
            auth: None,
            service: Service::Web,
        }),
    }
}

/// `/api/v1/model-versions/{id}` (after `/api/v1/models/{id}` for a model): the safetensors file,
/// its `downloadUrl` and `hashes.SHA256`, and the model's type.
fn resolve_civitai(
    reference: CivitaiRef,
    endpoints: &Endpoints,
    http: &Http,
) -> Result<Resolved, DownloadError> {
    let base = endpoints.civitai.trim_end_matches('/');
    let auth = Endpoints::auth(base, endpoints.civitai_token.as_ref());
    let version_id = match reference {
        CivitaiRef::Version(id) => id,
        CivitaiRef::Model(id) => {
            let url = format!("{base}/api/v1/models/{id}");
            let model = http.get_json(&url, auth.as_ref(), Service::Civitai)?;
            model["modelVersions"][0]["id"]
                .as_u64()
                .ok_or_else(|| DownloadError::Protocol {
                    url,
                    why: "the model lists no version".into(),
                })?
        }
    };
    let url = format!("{base}/api/v1/model-versions/{version_id}");
    let version = http.get_json(&url, auth.as_ref(), Service::Civitai)?;
    let protocol = |why: String| DownloadError::Protocol {
        url: url.clone(),
        why,
    };
    let file = pick_civitai_file(&version).ok_or_else(|| protocol("the version lists no file".into()))?;
    let file_name = file["name"]
        .as_str()
        .map(last_segment)
        .ok_or_else(|| protocol("a file without a name".into()))?;
    let download_url = file["downloadUrl"]
        .as_str()
        .or_else(|| version["downloadUrl"].as_str())
        .ok_or_else(|| protocol("no downloadUrl".into()))?;
    let sha256 = file["hashes"]["SHA256"]
        .as_str()
        .map(|h| h.trim().to_ascii_lowercase())
        .filter(|h| is_sha256(h));
    Ok(Resolved {
        url: download_url.to_owned(),
        file_name,
        sha256,
        kind: version["model"]["type"]
            .as_str()
            .and_then(ModelKind::from_civitai),
        auth,
        service: Service::Civitai,
    })
}

/// The version's model file: the primary one when it is safetensors, else any safetensors model
/// file, else the primary (whose pickle extension is then refused by the caller).
fn pick_civitai_file(version: &Value) -> Option<&Value> {
    let files = version["files"].as_array()?;
    let is_model = |f: &&Value| f["type"].as_str().is_none_or(|t| t.eq_ignore_ascii_case("model"));
    let is_safetensors = |f: &&Value| {
        f["name"]
            .as_str()
            .is_some_and(|n| n.to_ascii_lowercase().ends_with(".safetensors"))
    };
    let primary = |f: &&Value| f["primary"].as_bool() == Some(true);
    files
        .iter()
        .find(|f| primary(f) && is_safetensors(f))
        .or_else(|| files.iter().find(|f| is_model(f) && is_safetensors(f)))
        .or_else(|| files.iter().find(primary))
        .or_else(|| files.iter().find(is_model))
}

/// 64 hex digits.
pub fn is_sha256(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The last `/`- or `\`-separated part, percent-decoded.
fn last_segment(path: &str) -> String {
    let last = path.rsplit(['/', '\\']).next().unwrap_or(path);
    percent_decode(last)
}

/// `%XX` sequences decoded (invalid UTF-8 replaced).
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| char::from(b).to_digit(16);
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push((h * 16 + l) as u8);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Each path segment percent-encoded where a URL needs it (spaces, `#`, `?`, `%`, non-ASCII).
fn encode_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for b in path.bytes() {
        if b.is_ascii_alphanumeric() || b"/-_.~+@".contains(&b) {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hf(repo: &str, file: &str, revision: &str) -> Source {
        Source::HuggingFace {
            repo: repo.into(),
            file: file.into(),
            revision: revision.into(),
        }
    }

    #[test]
    fn what_users_type_becomes_a_source() {
        assert_eq!(
            Source::parse(" madebyollin/taesd/taesd_decoder.safetensors ").unwrap(),
            hf("madebyollin/taesd", "taesd_decoder.safetensors", "main")
        );
        assert_eq!(
            Source::parse("hf:org/repo/sub/dir/x.safetensors").unwrap(),
            hf("org/repo", "sub/dir/x.safetensors", "main")
        );
        assert_eq!(
            Source::parse("https://huggingface.co/org/repo/blob/v1.0/x.safetensors?download=true").unwrap(),
            hf("org/repo", "x.safetensors", "v1.0")
        );
        assert_eq!(
            Source::parse("https://huggingface.co/org/repo/resolve/main/a/b.safetensors").unwrap(),
            hf("org/repo", "a/b.safetensors", "main")
        );
        assert_eq!(
            Source::parse("https://civitai.com/models/123?modelVersionId=456").unwrap(),
            Source::Civitai(CivitaiRef::Version(456))
        );
        assert_eq!(
            Source::parse("https://civitai.com/models/123/some-slug").unwrap(),
            Source::Civitai(CivitaiRef::Model(123))
        );
        assert_eq!(
            Source::parse("https://civitai.com/api/download/models/789?type=Model").unwrap(),
            Source::Civitai(CivitaiRef::Version(789))
        );
        assert_eq!(
            Source::parse("civitai:42").unwrap(),
            Source::Civitai(CivitaiRef::Version(42))
        );
        assert_eq!(
            Source::parse("42").unwrap(),
            Source::Civitai(CivitaiRef::Version(42))
        );
        assert_eq!(
            Source::parse("https://example.com/m/x.safetensors").unwrap(),
            Source::Url("https://example.com/m/x.safetensors".into())
        );
        for bad in [
            "",
            "org/repo",
            "org/../x",
            "https://huggingface.co/org/repo",
            "https://civitai.com/images/5",
        ] {
            assert!(
                matches!(Source::parse(bad), Err(DownloadError::BadSource(_))),
                "{bad}"
            );
        }
        assert_eq!(
            hf("a/b", "c", "main").at_revision("abc123"),
            hf("a/b", "c", "abc123")
        );
    }

    #[test]
    fn hub_sources_resolve_to_the_resolve_url_with_the_token_for_the_hub_only() {
        let endpoints = Endpoints {
            hugging_face: "http://127.0.0.1:9/".into(),
            hf_token: Some("tok".into()),
            ..Endpoints::default()
        };
        let r = resolve(
            &hf("o/r", "dir/my file.safetensors", "main"),
            &endpoints,
            &Http::new(),
        )
        .unwrap();
        assert_eq!(
            r.url,
            "http://127.0.0.1:9/o/r/resolve/main/dir/my%20file.safetensors"
        );
        assert_eq!(r.file_name, "my file.safetensors");
        assert_eq!(r.auth.unwrap().authority, "127.0.0.1:9");
        let url = resolve(
            &Source::Url("https://x.org/a/b%20c.safetensors?sig=1".into()),
            &endpoints,
            &Http::new(),
        )
        .unwrap();
        assert_eq!(url.file_name, "b c.safetensors");
        assert!(url.auth.is_none());
    }

    #[test]
    fn the_safetensors_file_of_a_civitai_version_is_picked() {
        let version: Value = serde_json::json!({"files": [
            {"name": "x.ckpt", "type": "Model", "primary": true},
            {"name": "x.safetensors", "type": "Model"},
            {"name": "x-config.yaml", "type": "Config"}
        ]});
        assert_eq!(pick_civitai_file(&version).unwrap()["name"], "x.safetensors");
        let only_pickle: Value =
            serde_json::json!({"files": [{"name": "x.pt", "type": "Model", "primary": true}]});
        assert_eq!(pick_civitai_file(&only_pickle).unwrap()["name"], "x.pt");
        assert_eq!(percent_decode("a%2Fb%zz%4"), "a/b%zz%4");
    }
}
