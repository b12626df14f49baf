//! One GET with the rules every download follows: https only (plain http only to this computer,
//! which is how the tests' local server is reached), redirects followed here so the first answer's
//! headers are kept and each hop is checked, a token only for its own host, statuses as messages.

use std::time::Duration;

use ureq::http::{HeaderMap, Response};

use super::DownloadError;

/// Redirects followed at most (the hub and Civitai use one or two).
const MAX_REDIRECTS: usize = 10;
/// Bytes of a JSON answer read at most.
const JSON_LIMIT_BYTES: u64 = 16 * 1024 * 1024;

/// Which service an address belongs to, for the hints of 401/403/404.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    /// huggingface.co (or `HF_ENDPOINT`).
    HuggingFace,
    /// civitai.com (or `CIVITAI_ENDPOINT`).
    Civitai,
    /// Any other address.
    Web,
}

/// A bearer token and the only host it is sent to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Auth {
    /// `host[:port]` of the service.
    pub authority: String,
    /// The token.
    pub token: String,
}

/// An answer that is not a redirect, with the headers of the hops before it.
pub struct Got {
    /// The final answer (its body unread).
    pub response: Response<ureq::Body>,
    /// Headers of each redirect answer, first first.
    pub redirect_headers: Vec<HeaderMap>,
    /// The address that gave `response`.
    pub url: String,
}

impl Got {
    /// A header of the first answer that has it (the hub puts its hash on the redirect).
    pub fn first_header(&self, name: &str) -> Option<&str> {
        self.redirect_headers
            .iter()
            .chain(std::iter::once(self.response.headers()))
            .find_map(|h| h.get(name).and_then(|v| v.to_str().ok()))
    }

    /// A header of the final answer.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.response.headers().get(name).and_then(|v| v.to_str().ok())
    }
}

/// The HTTP client of the downloads.
pub struct Http {
    agent: ureq::Agent,
}

impl Http {
    /// An agent that returns every status and every redirect to us, with connect and read time limits.
    pub fn new() -> Self {
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .timeout_resolve(Some(Duration::from_secs(20)))
            .timeout_connect(Some(Duration::from_secs(20)))
            // A stalled transfer ends after a minute without a byte (and can be resumed).
            .timeout_per_read(Some(Duration::from_mins(1)))
            .user_agent(concat!("easel/", env!("CARGO_PKG_VERSION")))
            .build();
        Self {
            agent: ureq::Agent::new_with_config(config),
        }
    }

    /// GETs `url`, following redirects; `range_from` asks for the bytes from that offset on.
    pub fn get(&self, url: &str, range_from: Option<u64>, auth: Option<&Auth>) -> Result<Got, DownloadError> {
        let mut url = url.to_owned();
        let mut redirect_headers = Vec::new();
        for _ in 0..=MAX_REDIRECTS {
            let authority = check_url(&url)?;
            let mut request = self.agent.get(&url);
            if let Some(from) = range_from {
                request = request.header("Range", format!("bytes={from}-"));
            }
            if let Some(auth) = auth.filter(|a| a.authority.eq_ignore_ascii_case(&authority)) {
                request = request.header("Authorization", format!("Bearer {}", auth.token));
            }
            let response = request.call().map_err(|e| network_error(&url, &e))?;
            if response.status().is_redirection() {
                let location = response
                    .headers()
                    .get("location")
                    .and_then(|v| v.to_str().ok())
                    .ok_or_else(|| DownloadError::Protocol {
                        url: url.clone(),
                        why: format!("HTTP {} without a Location header", response.status().as_u16()),
                    })?;
                let next = join_url(&url, location);
                redirect_headers.push(response.headers().clone());
                url = next;
                continue;
            }
            return Ok(Got {
                response,
                redirect_headers,
                url,
            });
        }
        Err(DownloadError::Protocol {
            url,
            why: format!("more than {MAX_REDIRECTS} redirects"),
        })
    }

    /// GETs `url` and reads its JSON answer; statuses other than 200 become errors.
    pub fn get_json(
        &self,
        url: &str,
        auth: Option<&Auth>,
        service: Service,
    ) -> Result<serde_json::Value, DownloadError> {
        let mut got = self.get(url, None, auth)?;
        check_status(&got, service)?;
        let text = got
            .response
            .body_mut()
            .with_config()
            .limit(JSON_LIMIT_BYTES)
            .read_to_string()
            .map_err(|e| network_error(&got.url, &e))?;
        serde_json::from_str(&text).map_err(|e| DownloadError::Protocol {
            url: got.url.clone(),
            why: format!("not JSON ({e})"),
        })
    }
}

/// `Ok` for 2xx; otherwise the message for the status, with the service's hint.
pub fn check_status(got: &Got, service: Service) -> Result<(), DownloadError> {
    let status = got.response.status().as_u16();
    if (200..300).contains(&status) {
        return Ok(());
    }
    let url = got.url.clone();
    Err(match status {
        401 => DownloadError::Unauthorized {
            url,
            hint: match service {
                Service::HuggingFace => "the repository is gated or private (or its name is wrong): set HF_TOKEN to a Hugging Face access token and accept the model's terms on its page".into(),
                Service::Civitai => "this file needs a Civitai login: set CIVITAI_TOKEN to an API key from your Civitai account settings".into(),
                Service::Web => "the server wants a login Easel cannot give; download it in a browser and add its folder".into(),
            },
        },
        403 => DownloadError::Forbidden {
            url,
            hint: match service {
                Service::HuggingFace => "accept the model's terms on its Hugging Face page, or use an HF_TOKEN with read access to it".into(),
                Service::Civitai => "the file is restricted: log in on civitai.com to accept its terms, or check CIVITAI_TOKEN".into(),
                Service::Web => "the server does not allow this download".into(),
            },
        },
        404 => DownloadError::NotFound {
            url,
            hint: match service {
                Service::HuggingFace => "check the repository, the file name and the revision".into(),
                Service::Civitai => "check the model or version id (the version may have been removed)".into(),
                Service::Web => "check the address".into(),
            },
        },
        429 => DownloadError::RateLimited {
            host: authority_of(&url).unwrap_or(url),
            retry_after: got
                .header("retry-after")
                .map(|s| format!(", it asks to wait {} s", s.trim()))
                .unwrap_or_default(),
        },
        status => DownloadError::Status { status, url },
    })
}

/// The `host[:port]` of `url`, after checking its scheme: https, or http to this computer only.
pub fn check_url(url: &str) -> Result<String, DownloadError> {
    let insecure = || DownloadError::Insecure { url: url.to_owned() };
    let (scheme, _) = url.split_once("://").ok_or_else(insecure)?;
    let scheme = scheme.to_ascii_lowercase();
    if scheme != "https" && scheme != "http" {
        return Err(insecure());
    }
    let authority = authority_of(url).ok_or_else(|| DownloadError::BadSource(format!("no host in {url}")))?;
    if scheme == "https" || is_loopback(&authority) {
        Ok(authority)
    } else {
        Err(insecure())
    }
}

/// `host[:port]` of an absolute URL (user info dropped).
pub fn authority_of(url: &str) -> Option<String> {
    let (_, rest) = url.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    let authority = authority.rsplit('@').next()?;
    (!authority.is_empty()).then(|| authority.to_ascii_lowercase())
}

/// The host part of an authority, brackets of IPv6 kept.
fn host_of(authority: &str) -> &str {
    if authority.starts_with('[') {
        authority
            .split_once(']')
            .map_or(authority, |(h, _)| &authority[..=h.len()])
    } else {
        authority.split(':').next().unwrap_or(authority)
    }
}

/// This computer: `localhost`, `127.x.x.x`, `[::1]`.
fn is_loopback(authority: &str) -> bool {
    let host = host_of(authority);
    host == "localhost"
        || host == "[::1]"
        || host
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// `location` (absolute, host-relative or path-relative) against `base`.
pub fn join_url(base: &str, location: &str) -> String {
    if location.contains("://") {
        return location.to_owned();
    }
    let Some((scheme, rest)) = base.split_once("://") else {
        return location.to_owned();
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or(rest);
    if let Some(network_path) = location.strip_prefix("//") {
        return format!("{scheme}://{network_path}");
    }
    if location.starts_with('/') {
        return format!("{scheme}://{authority}{location}");
    }
    let path = rest[authority.len()..].split(['?', '#']).next().unwrap_or("");
    let dir = path.rfind('/').map_or("/", |i| &path[..=i]);
    format!("{scheme}://{authority}{dir}{location}")
}

/// A transport failure as a message naming the host: no network, DNS, refused, timed out, TLS.
pub fn network_error(url: &str, err: &ureq::Error) -> DownloadError {
    let host = authority_of(url).unwrap_or_else(|| url.to_owned());
    let why = match err {
        ureq::Error::HostNotFound => "its name could not be resolved (no network, or a DNS problem)".into(),
        ureq::Error::ConnectionFailed => "the connection failed".into(),
        ureq::Error::Timeout(what) => format!("it did not answer in time ({what})"),
        ureq::Error::Tls(what) => format!("the secure connection failed ({what})"),
        ureq::Error::Io(io) => io_why(io),
        other => other.to_string(),
    };
    DownloadError::Network {
        host,
        why,
        resume: String::new(),
    }
}

/// A readable reason for an I/O error of a connection.
pub fn io_why(err: &std::io::Error) -> String {
    use std::io::ErrorKind as K;
    match err.kind() {
        K::ConnectionRefused => "the connection was refused".into(),
        K::ConnectionReset | K::ConnectionAborted | K::BrokenPipe | K::UnexpectedEof => {
            "the connection dropped".into()
        }
        K::TimedOut | K::WouldBlock => "it stopped sending (timed out)".into(),
        _ => err.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_https_or_this_computer() {
        assert_eq!(check_url("https://huggingface.co/a/b").unwrap(), "huggingface.co");
        assert_eq!(check_url("http://127.0.0.1:8080/x").unwrap(), "127.0.0.1:8080");
        assert_eq!(check_url("http://localhost/x").unwrap(), "localhost");
        assert_eq!(check_url("http://[::1]:9/x").unwrap(), "[::1]:9");
        for bad in [
            "http://example.com/x",
            "ftp://127.0.0.1/x",
            "file:///etc/passwd",
            "huggingface.co/x",
        ] {
            assert!(
                matches!(check_url(bad), Err(DownloadError::Insecure { .. })),
                "{bad}"
            );
        }
        // A look-alike host is not this computer.
        assert!(check_url("http://127.0.0.1.evil.com/x").is_err());
        assert!(check_url("http://localhost.evil.com/x").is_err());
    }

    #[test]
    fn redirect_locations_resolve_like_a_browser() {
        let base = "https://hub.example/org/repo/resolve/main/a.safetensors?x=1";
        assert_eq!(
            join_url(base, "https://cdn.example/f?sig=2"),
            "https://cdn.example/f?sig=2"
        );
        assert_eq!(join_url(base, "/api/x"), "https://hub.example/api/x");
        assert_eq!(join_url(base, "//cdn.example/y"), "https://cdn.example/y");
        assert_eq!(
            join_url(base, "b.safetensors"),
            "https://hub.example/org/repo/resolve/main/b.safetensors"
        );
        assert_eq!(
            authority_of("https://user:pw@Hub.Example:443/x").as_deref(),
            Some("hub.example:443")
        );
    }
}
