//! Downloads against a local server that answers the way the Hugging Face hub and Civitai do:
//! their headers, a redirect to a CDN path (on another host name, `localhost`), Range requests, a
//! connection dropped mid-file and resumed, a wrong hash, 401/404/429, the model-versions JSON.
//! Nothing here reaches the internet: the sources' base URLs point at 127.0.0.1.

#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use easel::config::AppPaths;
use easel::download::{
    DownloadError, DownloadEvent, DownloadRequest, Downloaded, Endpoints, ModelKind, Source, download,
};
use sha2::{Digest, Sha256};

/// One request as the server saw it.
#[derive(Debug, Clone)]
struct Seen {
    path: String,
    headers: HashMap<String, String>,
}

/// What the server answers.
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    /// Close the connection after this many body bytes (a dropped transfer).
    drop_after: Option<usize>,
    /// Send the body slowly (16 KiB every 10 ms), for cancel.
    slow: bool,
}

impl Answer {
    fn new(status: u16, body: impl Into<Vec<u8>>) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: body.into(),
            drop_after: None,
            slow: false,
        }
    }

    fn header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }
}

type Handler = dyn Fn(&Seen, u16) -> Answer + Send + Sync;

/// A local HTTP/1.1 server on 127.0.0.1: one request per connection.
struct Server {
    port: u16,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Server {
    fn start(handler: impl Fn(&Seen, u16) -> Answer + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let handler: Arc<Handler> = Arc::new(handler);
        let log = Arc::clone(&seen);
        std::thread::Builder::new()
            .name("test-http".into())
            .spawn(move || {
                for stream in listener.incoming() {
                    let Ok(stream) = stream else { continue };
                    let handler = Arc::clone(&handler);
                    let log = Arc::clone(&log);
                    std::thread::Builder::new()
                        .name("test-http-conn".into())
                        .spawn(move || serve(stream, &*handler, &log, port))
                        .unwrap();
                }
            })
            .unwrap();
        Self { port, seen }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

fn serve(stream: TcpStream, handler: &Handler, log: &Mutex<Vec<Seen>>, port: u16) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() {
        return;
    }
    let path = line.split_whitespace().nth(1).unwrap_or("/").to_owned();
    let mut headers = HashMap::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).is_err() || h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
        }
    }
    let seen = Seen { path, headers };
    log.lock().unwrap().push(seen.clone());
    let answer = handler(&seen, port);
    let mut out = stream;
    let mut head = format!("HTTP/1.1 {} X\r\nConnection: close\r\n", answer.status);
    for (k, v) in &answer.headers {
        let _ = write!(head, "{k}: {v}\r\n");
    }
    let _ = write!(head, "Content-Length: {}\r\n\r\n", answer.body.len());
    if out.write_all(head.as_bytes()).is_err() {
        return;
    }
    let body = &answer.body[..answer
        .drop_after
        .unwrap_or(answer.body.len())
        .min(answer.body.len())];
    if answer.slow {
        for chunk in body.chunks(16 * 1024) {
            if out.write_all(chunk).is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    } else {
        let _ = out.write_all(body);
    }
    let _ = out.flush();
    let _ = out.shutdown(std::net::Shutdown::Both);
}

/// A small valid safetensors file (`size` bytes of data).
fn safetensors(size: usize) -> Vec<u8> {
    let header = format!(r#"{{"w":{{"dtype":"U8","shape":[{size}],"data_offsets":[0,{size}]}}}}"#);
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend(header.as_bytes());
    bytes.extend((0..size).map(|i| (i * 7 % 251) as u8));
    bytes
}

fn sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// The file (or the part from a `Range: bytes=N-` header), as a CDN serves it.
fn serve_file(seen: &Seen, file: &[u8]) -> Answer {
    let range_from = seen
        .headers
        .get("range")
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.trim_end_matches('-').parse::<usize>().ok());
    match range_from {
        Some(from) if from >= file.len() => {
            Answer::new(416, "").header("Content-Range", format!("bytes */{}", file.len()))
        }
        Some(from) => Answer::new(206, file[from..].to_vec())
            .header("Accept-Ranges", "bytes")
            .header(
                "Content-Range",
                format!("bytes {from}-{}/{}", file.len() - 1, file.len()),
            ),
        None => Answer::new(200, file.to_vec()).header("Accept-Ranges", "bytes"),
    }
}

/// The hub's answer to `/resolve/`: a 302 to the CDN on another host name, with the LFS hash.
fn hub_redirect(port: u16, sha: &str, size: usize) -> Answer {
    Answer::new(302, "")
        .header("Location", format!("http://localhost:{port}/cdn/{sha}?sig=abc"))
        .header("X-Linked-Etag", format!("\"{sha}\""))
        .header("X-Linked-Size", size.to_string())
        .header("X-Repo-Commit", "0123456789abcdef0123456789abcdef01234567")
        .header("ETag", "\"0123456789abcdef\"")
}

fn endpoints(server: &Server) -> Endpoints {
    Endpoints {
        hugging_face: server.url(),
        civitai: server.url(),
        hf_token: None,
        civitai_token: None,
    }
}

fn hub_source(file: &str) -> Source {
    Source::HuggingFace {
        repo: "org/repo".into(),
        file: file.into(),
        revision: "main".into(),
    }
}

/// Runs a download on this thread, collecting its events.
fn run(
    request: &DownloadRequest,
    paths: &AppPaths,
    endpoints: &Endpoints,
) -> (Result<Downloaded, DownloadError>, Vec<DownloadEvent>) {
    let mut events = Vec::new();
    let cancel = AtomicBool::new(false);
    let result = download(request, paths, endpoints, &cancel, &mut |e| events.push(e));
    (result, events)
}

#[test]
fn a_hub_file_follows_the_redirect_is_checked_against_the_linked_etag_and_lands_in_its_folder() {
    let file = Arc::new(safetensors(300_000));
    let sha = sha256(&file);
    let served = Arc::clone(&file);
    let server = Server::start(move |seen, port| {
        if seen.path == "/org/repo/resolve/main/taesd_decoder.safetensors" {
            if seen.headers.get("authorization").map(String::as_str) != Some("Bearer hf_secret") {
                return Answer::new(401, "gated");
            }
            return hub_redirect(port, &sha256(&served), served.len());
        }
        if seen.path.starts_with("/cdn/") {
            return serve_file(seen, &served);
        }
        Answer::new(404, "")
    });
    let dir = tempfile::tempdir().unwrap();
    let paths = AppPaths::under(dir.path().to_path_buf());
    let mut request = DownloadRequest::new(hub_source("taesd_decoder.safetensors"));
    request.kind = Some(ModelKind::VaeApprox);

    // Without the token: the gated repository's 401 names HF_TOKEN.
    let (result, _) = run(&request, &paths, &endpoints(&server));
    let message = result.unwrap_err().to_string();
    assert!(
        message.contains("401") && message.contains("HF_TOKEN"),
        "{message}"
    );

    let with_token = Endpoints {
        hf_token: Some("hf_secret".into()),
        ..endpoints(&server)
    };
    let (result, events) = run(&request, &paths, &with_token);
    let done = result.unwrap();
    let expected_path = paths.default_vae_approx_dir().join("taesd_decoder.safetensors");
    assert_eq!(done.path, expected_path);
    assert_eq!(std::fs::read(&expected_path).unwrap(), *file);
    assert_eq!(done.sha256, sha);
    assert!(done.verified && !done.already_present);
    assert!(!expected_path.with_extension("safetensors.part").exists());
    assert!(matches!(
        events.first(),
        Some(DownloadEvent::Started { total_bytes: Some(n), resumed_from_bytes: 0, .. }) if *n == file.len() as u64
    ));
    let last_progress = events.iter().rev().find_map(|e| match e {
        DownloadEvent::Progress(p) => Some(*p),
        _ => None,
    });
    assert_eq!(last_progress.unwrap().bytes, file.len() as u64);
    assert!(events.contains(&DownloadEvent::Verifying));
    // The token went to the hub only, never to the CDN host.
    let seen = server.seen();
    let cdn = seen.iter().find(|s| s.path.starts_with("/cdn/")).unwrap();
    assert!(!cdn.headers.contains_key("authorization"));
    assert!(cdn.headers.get("host").unwrap().starts_with("localhost:"));

    // Asking again finds it in place: nothing is fetched.
    let requests_before = server.seen().len();
    let (again, _) = run(&request, &paths, &with_token);
    assert!(again.unwrap().already_present);
    assert_eq!(server.seen().len(), requests_before, "nothing is fetched");
}

#[test]
fn a_dropped_connection_keeps_the_part_file_and_the_next_download_resumes_with_range() {
    let file = Arc::new(safetensors(400_000));
    let served = Arc::clone(&file);
    let cdn_calls = Arc::new(AtomicUsize::new(0));
    let calls = Arc::clone(&cdn_calls);
    let server = Server::start(move |seen, port| {
        if seen.path.contains("/resolve/") {
            return hub_redirect(port, &sha256(&served), served.len());
        }
        let mut answer = serve_file(seen, &served);
        // The first transfer and the third stop halfway.
        if matches!(calls.fetch_add(1, Ordering::SeqCst), 0 | 2) {
            answer.drop_after = Some(answer.body.len() / 2);
        }
        answer
    });
    let dir = tempfile::tempdir().unwrap();
    let paths = AppPaths::under(dir.path().to_path_buf());
    let mut request = DownloadRequest::new(hub_source("model.safetensors"));
    request.retries = 0;
    let (result, _) = run(&request, &paths, &endpoints(&server));
    let err = result.unwrap_err();
    assert!(matches!(err, DownloadError::Network { .. }), "{err}");
    assert!(err.to_string().contains("resumes"), "{err}");
    let part = paths.default_models_dir.join("model.safetensors.part");
    let kept = std::fs::metadata(&part).unwrap().len();
    assert!(kept > 0 && kept < file.len() as u64, "{kept}");

    // Second run (the server now sends it all): asks for the rest only.
    let (result, events) = run(&request, &paths, &endpoints(&server));
    let done = result.unwrap();
    assert!(done.verified);
    assert_eq!(std::fs::read(&done.path).unwrap(), *file);
    assert!(events.iter().any(
        |e| matches!(e, DownloadEvent::Started { resumed_from_bytes, .. } if *resumed_from_bytes == kept)
    ));
    let ranges: Vec<String> = server
        .seen()
        .iter()
        .filter(|s| s.path.starts_with("/cdn/"))
        .filter_map(|s| s.headers.get("range").cloned())
        .collect();
    assert_eq!(ranges, [format!("bytes={kept}-")]);

    // With retries, one call rides over the drop (the third transfer drops, the fourth finishes).
    std::fs::remove_file(&done.path).unwrap();
    let request = DownloadRequest::new(hub_source("model.safetensors"));
    let (result, events) = run(&request, &paths, &endpoints(&server));
    assert_eq!(std::fs::read(result.unwrap().path).unwrap(), *file);
    assert!(
        events
            .iter()
            .any(|e| matches!(e, DownloadEvent::Retrying { attempt: 1, .. }))
    );
}

#[test]
fn a_file_with_the_wrong_hash_is_deleted_and_the_message_says_so() {
    let file = safetensors(50_000);
    let server = Server::start(move |seen, port| {
        if seen.path.contains("/resolve/") {
            // The hub publishes a hash the bytes do not have.
            return hub_redirect(port, &"ab".repeat(32), file.len());
        }
        serve_file(seen, &file)
    });
    let dir = tempfile::tempdir().unwrap();
    let paths = AppPaths::under(dir.path().to_path_buf());
    let (result, _) = run(
        &DownloadRequest::new(hub_source("bad.safetensors")),
        &paths,
        &endpoints(&server),
    );
    let err = result.unwrap_err();
    assert!(matches!(err, DownloadError::HashMismatch { .. }), "{err}");
    assert!(err.to_string().contains("SHA-256"), "{err}");
    assert!(!paths.default_models_dir.join("bad.safetensors").exists());
    assert!(!paths.default_models_dir.join("bad.safetensors.part").exists());
}

#[test]
fn statuses_become_messages_that_say_what_to_do() {
    let server = Server::start(|seen, _| match seen.path.as_str() {
        p if p.contains("missing") => Answer::new(404, "Entry not found"),
        p if p.contains("busy") => Answer::new(429, "slow down").header("Retry-After", "7"),
        p if p.contains("forbidden") => Answer::new(403, ""),
        "/api/v1/model-versions/457" => Answer::new(401, "{}"),
        _ => Answer::new(500, ""),
    });
    let dir = tempfile::tempdir().unwrap();
    let paths = AppPaths::under(dir.path().to_path_buf());
    let message = |source: Source| {
        run(&DownloadRequest::new(source), &paths, &endpoints(&server))
            .0
            .unwrap_err()
            .to_string()
    };
    let m = message(hub_source("missing.safetensors"));
    assert!(m.contains("404") && m.contains("revision"), "{m}");
    let m = message(hub_source("busy.safetensors"));
    assert!(m.contains("429") && m.contains("7 s"), "{m}");
    let m = message(hub_source("forbidden.safetensors"));
    assert!(m.contains("403") && m.contains("terms"), "{m}");
    let m = message(Source::parse("civitai:457").unwrap());
    assert!(m.contains("401") && m.contains("CIVITAI_TOKEN"), "{m}");
    let m = message(hub_source("other.safetensors"));
    assert!(m.contains("HTTP 500"), "{m}");
    // Plain http to another computer is refused before any connection.
    let m = message(Source::Url("http://example.com/x.safetensors".into()));
    assert!(m.contains("https://"), "{m}");
}

#[test]
fn no_server_listening_is_a_network_message() {
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let dir = tempfile::tempdir().unwrap();
    let paths = AppPaths::under(dir.path().to_path_buf());
    let source = Source::Url(format!("http://127.0.0.1:{port}/x.safetensors"));
    let (result, _) = run(&DownloadRequest::new(source), &paths, &Endpoints::default());
    let err = result.unwrap_err();
    assert!(matches!(err, DownloadError::Network { .. }), "{err}");
    assert!(
        err.to_string()
            .contains(&format!("could not reach 127.0.0.1:{port}")),
        "{err}"
    );
}

/// Civitai's model-version JSON for a LoRA with a safetensors file (and the upper-case hash
/// Civitai writes).
fn civitai_version(port: u16, id: u64, file_name: &str, sha: &str) -> String {
    format!(
        r#"{{"id": {id}, "modelId": 123, "name": "v1.0", "baseModel": "SD 1.5",
            "trainedWords": ["detailed"], "model": {{"name": "Detail Tweaker", "type": "LORA"}},
            "downloadUrl": "http://127.0.0.1:{port}/api/download/models/{id}",
            "files": [
              {{"name": "{file_name}", "type": "Model", "primary": true, "sizeKB": 48.8,
                "metadata": {{"format": "SafeTensor"}},
                "hashes": {{"AutoV2": "{auto}", "SHA256": "{upper}"}},
                "downloadUrl": "http://127.0.0.1:{port}/api/download/models/{id}"}}
            ]}}"#,
        auto = &sha[..10].to_ascii_uppercase(),
        upper = sha.to_ascii_uppercase()
    )
}

#[test]
fn a_civitai_page_resolves_to_its_version_file_kind_and_hash() {
    let file = Arc::new(safetensors(50_000));
    let served = Arc::clone(&file);
    let server = Server::start(move |seen, port| {
        let sha = sha256(&served);
        match seen.path.as_str() {
            "/api/v1/models/123" => Answer::new(200, r#"{"id": 123, "modelVersions": [{"id": 456}]}"#),
            "/api/v1/model-versions/456" => {
                Answer::new(200, civitai_version(port, 456, "detail.safetensors", &sha))
                    .header("Content-Type", "application/json")
            }
            "/api/v1/model-versions/458" => Answer::new(
                200,
                civitai_version(port, 458, "wrong.safetensors", &"cd".repeat(32)),
            ),
            "/api/v1/model-versions/459" => Answer::new(200, civitai_version(port, 459, "old.ckpt", &sha)),
            p if p.starts_with("/api/download/models/") => {
                Answer::new(307, "").header("Location", format!("http://localhost:{port}/cdn/{sha}"))
            }
            p if p.starts_with("/cdn/") => serve_file(seen, &served),
            _ => Answer::new(404, ""),
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let paths = AppPaths::under(dir.path().to_path_buf());
    let source = Source::parse("https://civitai.com/models/123?modelVersionId=456").unwrap();
    let with_key = Endpoints {
        civitai_token: Some("civitai_key".into()),
        ..endpoints(&server)
    };
    let (result, _) = run(&DownloadRequest::new(source), &paths, &with_key);
    let done = result.unwrap();
    assert_eq!(done.kind, ModelKind::Lora);
    assert_eq!(done.path, paths.default_lora_dir().join("detail.safetensors"));
    assert!(done.verified);
    assert_eq!(std::fs::read(&done.path).unwrap(), *file);
    let seen = server.seen();
    let api = seen
        .iter()
        .find(|s| s.path == "/api/v1/model-versions/456")
        .unwrap();
    assert_eq!(api.headers.get("authorization").unwrap(), "Bearer civitai_key");
    assert!(
        seen.iter()
            .filter(|s| s.path.starts_with("/cdn/"))
            .all(|s| !s.headers.contains_key("authorization"))
    );

    // A model page without a version takes the newest one, into a folder given by the user.
    let to = dir.path().join("elsewhere");
    let mut request =
        DownloadRequest::new(Source::parse("https://civitai.com/models/123/detail-tweaker").unwrap());
    request.to = Some(to.clone());
    let (result, _) = run(&request, &paths, &endpoints(&server));
    assert_eq!(result.unwrap().path, to.join("detail.safetensors"));

    // The published hash is checked.
    let (result, _) = run(
        &DownloadRequest::new(Source::parse("civitai:458").unwrap()),
        &paths,
        &endpoints(&server),
    );
    assert!(matches!(result, Err(DownloadError::HashMismatch { .. })));

    // A pickle is refused before a byte is fetched, with the loader's message.
    let cdn_before = server
        .seen()
        .iter()
        .filter(|s| s.path.starts_with("/api/download"))
        .count();
    let (result, _) = run(
        &DownloadRequest::new(Source::parse("civitai:459").unwrap()),
        &paths,
        &endpoints(&server),
    );
    let err = result.unwrap_err();
    assert!(matches!(err, DownloadError::Refused(_)), "{err}");
    assert!(err.to_string().contains("pickles"), "{err}");
    let cdn_after = server
        .seen()
        .iter()
        .filter(|s| s.path.starts_with("/api/download"))
        .count();
    assert_eq!(cdn_before, cdn_after);
    assert!(!paths.default_lora_dir().join("old.ckpt").exists());
}

#[test]
fn an_error_page_under_a_safetensors_name_is_deleted_not_kept() {
    let server = Server::start(|_, _| Answer::new(200, "<!DOCTYPE html><html><body>Sign in</body></html>"));
    let dir = tempfile::tempdir().unwrap();
    let paths = AppPaths::under(dir.path().to_path_buf());
    let source = Source::Url(format!("{}/files/model.safetensors", server.url()));
    let (result, _) = run(&DownloadRequest::new(source), &paths, &endpoints(&server));
    let err = result.unwrap_err();
    assert!(matches!(err, DownloadError::NotSafetensors { .. }), "{err}");
    assert!(!paths.default_models_dir.join("model.safetensors").exists());
    assert!(!paths.default_models_dir.join("model.safetensors.part").exists());
}

#[test]
fn cancel_keeps_the_part_file_for_the_next_download() {
    let file = Arc::new(safetensors(600_000));
    let served = Arc::clone(&file);
    let server = Server::start(move |seen, _| {
        let mut answer = serve_file(seen, &served);
        answer.slow = true;
        answer
    });
    let dir = tempfile::tempdir().unwrap();
    let paths = AppPaths::under(dir.path().to_path_buf());
    let source = Source::Url(format!("{}/files/slow.safetensors", server.url()));
    let mut request = DownloadRequest::new(source);
    request.sha256 = Some(sha256(&file));
    let cancel = AtomicBool::new(false);
    let result = download(&request, &paths, &endpoints(&server), &cancel, &mut |e| {
        if matches!(e, DownloadEvent::Progress(_)) {
            cancel.store(true, Ordering::Relaxed);
        }
    });
    let err = result.unwrap_err();
    assert!(matches!(err, DownloadError::Cancelled { .. }), "{err}");
    let part = paths.default_models_dir.join("slow.safetensors.part");
    let kept = std::fs::metadata(&part).unwrap().len();
    assert!(kept > 0 && kept < file.len() as u64);
    let (result, _) = run(&request, &paths, &endpoints(&server));
    let done = result.unwrap();
    assert!(done.verified);
    assert_eq!(std::fs::read(&done.path).unwrap(), *file);
    assert!(!Path::new(&part).exists());
}

#[test]
fn civitai_lookup_by_hash_is_cached_with_its_preview_and_unknown_files_too() {
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&calls);
    let server = Server::start(move |seen, port| {
        counted.fetch_add(1, Ordering::SeqCst);
        match seen.path.as_str() {
            "/api/v1/model-versions/by-hash/6ce0161689" => Answer::new(
                200,
                format!(
                    r#"{{"id": 456, "modelId": 123, "name": "v1.0", "baseModel": "SD 1.5",
                        "trainedWords": ["detailed", "sharp"], "model": {{"name": "Detail Tweaker", "type": "LORA"}},
                        "images": [{{"url": "http://127.0.0.1:{port}/img/abc.png?w=450"}}]}}"#
                ),
            ),
            "/img/abc.png?w=450" => Answer::new(200, b"\x89PNG fake".to_vec()),
            _ => Answer::new(404, r#"{"error": "Model not found"}"#),
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let info = easel::download::lookup_by_hash("6CE0161689", &endpoints(&server), &cache)
        .unwrap()
        .unwrap();
    assert_eq!(info.model_name, "Detail Tweaker");
    assert_eq!(info.version_name, "v1.0");
    assert_eq!(info.base_model, "SD 1.5");
    assert_eq!(info.trained_words, ["detailed", "sharp"]);
    assert_eq!(info.version_id, Some(456));
    let preview = easel::download::cached_preview(&info, "6ce0161689", &cache)
        .unwrap()
        .unwrap();
    assert_eq!(std::fs::read(&preview).unwrap(), b"\x89PNG fake");
    assert!(preview.to_string_lossy().ends_with(".png"));
    let unknown = easel::download::lookup_by_hash("0123456789", &endpoints(&server), &cache).unwrap();
    assert!(unknown.is_none());
    // Asked again: all from the cache, no request.
    let before = calls.load(Ordering::SeqCst);
    assert_eq!(
        easel::download::lookup_by_hash("6ce0161689", &endpoints(&server), &cache).unwrap(),
        Some(info.clone())
    );
    assert!(
        easel::download::lookup_by_hash("0123456789", &endpoints(&server), &cache)
            .unwrap()
            .is_none()
    );
    assert_eq!(
        easel::download::cached_preview(&info, "6ce0161689", &cache).unwrap(),
        Some(preview)
    );
    assert_eq!(calls.load(Ordering::SeqCst), before);
    assert!(easel::download::lookup_by_hash("../x", &endpoints(&server), &cache).is_err());
}
