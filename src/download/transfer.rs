//! The transfer itself: bytes appended to `<name>.part` (resumed with HTTP Range), hashed as they
//! arrive, checked against the published SHA-256 and the safetensors header, renamed into place.

use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use super::http::{Http, Service, authority_of, check_status, io_why};
use super::source::{Endpoints, Resolved, is_sha256, resolve};
use super::{DownloadError, DownloadEvent, DownloadRequest, Downloaded, ModelKind, Progress};
use crate::config::AppPaths;

/// Bytes read from the connection at a time.
const CHUNK_BYTES: usize = 1 << 20;
/// Progress events at most this often.
const PROGRESS_EVERY: Duration = Duration::from_millis(100);
/// Pause before the first automatic resume (then twice, three times as long …).
const RETRY_PAUSE: Duration = Duration::from_millis(300);

/// Downloads `request` on this thread, reporting through `on_event`, until done, failed, or
/// `cancel` is set (then the `.part` file stays for the next attempt).
pub fn download(
    request: &DownloadRequest,
    paths: &AppPaths,
    endpoints: &Endpoints,
    cancel: &AtomicBool,
    on_event: &mut dyn FnMut(DownloadEvent),
) -> Result<Downloaded, DownloadError> {
    let http = Http::new();
    let resolved = resolve(&request.source, endpoints, &http)?;
    let file_name = safe_file_name(&resolved.file_name)?;
    // Refused before a byte is fetched, with the loader's own message.
    crate::models::family::check_extension(Path::new(&file_name))?;
    let kind = request.kind.or(resolved.kind).unwrap_or(ModelKind::Checkpoint);
    let dir = request.to.clone().unwrap_or_else(|| kind.folder(paths));
    std::fs::create_dir_all(&dir).map_err(|e| write_error(&e, &dir))?;
    let path = dir.join(&file_name);
    let part = dir.join(format!("{file_name}.part"));
    let mut expected: Vec<String> = request
        .sha256
        .iter()
        .chain(resolved.sha256.iter())
        .map(|h| h.trim().to_ascii_lowercase())
        .filter(|h| is_sha256(h))
        .collect();
    expected.dedup();

    if path.exists() {
        return already_there(path, kind, &expected, on_event);
    }

    let mut job = Transfer {
        http: &http,
        resolved: &resolved,
        part: &part,
        cancel,
        hashing: Hashing::new(),
        started: false,
        published: None,
    };
    let mut attempt = 0;
    loop {
        match job.attempt(on_event) {
            Ok(()) => break,
            Err(Stop::Dropped(err)) if attempt < request.retries && !cancel.load(Ordering::Relaxed) => {
                attempt += 1;
                on_event(DownloadEvent::Retrying {
                    attempt,
                    why: err.to_string(),
                });
                pause(RETRY_PAUSE * attempt, cancel);
            }
            Err(Stop::Dropped(err) | Stop::Fatal(err)) => return Err(err),
        }
    }
    expected.extend(job.published.take().filter(|h| !expected.contains(h)));

    on_event(DownloadEvent::Verifying);
    let actual = job.hashing.finish();
    if let Some(wanted) = expected.iter().find(|h| **h != actual) {
        let _ = std::fs::remove_file(&part);
        return Err(DownloadError::HashMismatch {
            path: part,
            expected: wanted.clone(),
            actual,
        });
    }
    if let Err(why) = check_safetensors_header(&part) {
        let _ = std::fs::remove_file(&part);
        return Err(DownloadError::NotSafetensors { path: part, why });
    }
    std::fs::rename(&part, &path).map_err(|e| write_error(&e, &path))?;
    Ok(Downloaded {
        path,
        kind,
        sha256: actual,
        verified: !expected.is_empty(),
        already_present: false,
    })
}

/// The file is already in its folder: fine when it has the published hash (or none is known).
fn already_there(
    path: PathBuf,
    kind: ModelKind,
    expected: &[String],
    on_event: &mut dyn FnMut(DownloadEvent),
) -> Result<Downloaded, DownloadError> {
    on_event(DownloadEvent::Verifying);
    let sha256 = hash_file(&path).map_err(|e| DownloadError::Io {
        path: path.clone(),
        why: e.to_string(),
    })?;
    if expected.iter().any(|h| *h != sha256) {
        return Err(DownloadError::Exists { path });
    }
    Ok(Downloaded {
        path,
        kind,
        sha256,
        verified: !expected.is_empty(),
        already_present: true,
    })
}

/// Why one attempt stopped.
enum Stop {
    /// The connection dropped mid-file: the `.part` file is good, resuming makes sense.
    Dropped(DownloadError),
    /// Anything else.
    Fatal(DownloadError),
}

/// SHA-256 of the bytes of the `.part` file so far.
struct Hashing {
    hasher: Sha256,
    bytes: u64,
}

impl Hashing {
    fn new() -> Self {
        Self {
            hasher: Sha256::new(),
            bytes: 0,
        }
    }

    fn update(&mut self, data: &[u8]) {
        self.hasher.update(data);
        self.bytes += data.len() as u64;
    }

    /// Makes the hash cover exactly the first `len` bytes of `part` (read again from disk unless
    /// it already does: a resume within one download reuses it).
    fn catch_up(&mut self, part: &Path, len: u64) -> std::io::Result<()> {
        if self.bytes == len {
            return Ok(());
        }
        *self = Self::new();
        let mut file = File::open(part)?.take(len);
        let mut buf = vec![0; CHUNK_BYTES];
        loop {
            let n = file.read(&mut buf)?;
            if n == 0 {
                break;
            }
            self.update(&buf[..n]);
        }
        if self.bytes == len {
            Ok(())
        } else {
            Err(std::io::Error::new(
                ErrorKind::UnexpectedEof,
                "the partial file shrank",
            ))
        }
    }

    fn finish(&self) -> String {
        hex(&self.hasher.clone().finalize())
    }
}

/// One download's state across its attempts.
struct Transfer<'a> {
    http: &'a Http,
    resolved: &'a Resolved,
    part: &'a Path,
    cancel: &'a AtomicBool,
    hashing: Hashing,
    /// `Started` was sent.
    started: bool,
    /// The SHA-256 the hub published with the file (`X-Linked-Etag`).
    published: Option<String>,
}

impl Transfer<'_> {
    /// Fetches what the `.part` file lacks (all of it when the server ignores Range).
    fn attempt(&mut self, on_event: &mut dyn FnMut(DownloadEvent)) -> Result<(), Stop> {
        let part = self.part;
        let fatal_io = |e: &std::io::Error| Stop::Fatal(write_error(e, part));
        let mut offset = std::fs::metadata(part).map_or(0, |m| m.len());
        let got = self
            .http
            .get(
                &self.resolved.url,
                (offset > 0).then_some(offset),
                self.resolved.auth.as_ref(),
            )
            .map_err(Stop::Fatal)?;
        let status = got.response.status().as_u16();
        let content_range = got.header("content-range").and_then(parse_content_range);
        let total = match status {
            // The part is already whole (or longer than the file: start again).
            416 => {
                if content_range.and_then(|r| r.total) == Some(offset) {
                    self.hashing.catch_up(part, offset).map_err(|e| fatal_io(&e))?;
                    return Ok(());
                }
                std::fs::remove_file(part).map_err(|e| fatal_io(&e))?;
                return self.attempt(on_event);
            }
            206 => match content_range {
                Some(range) if range.start == offset => range.total,
                _ => {
                    return Err(Stop::Fatal(DownloadError::Protocol {
                        url: got.url.clone(),
                        why: format!(
                            "asked for bytes from {offset}, got {:?}",
                            got.header("content-range")
                        ),
                    }));
                }
            },
            200 => {
                offset = 0;
                got.header("content-length").and_then(|v| v.trim().parse().ok())
            }
            _ => {
                check_status(&got, self.resolved.service).map_err(Stop::Fatal)?;
                return Err(Stop::Fatal(DownloadError::Protocol {
                    url: got.url.clone(),
                    why: format!("HTTP {status} instead of the file"),
                }));
            }
        };
        let total = total.or_else(|| {
            got.first_header("x-linked-size")
                .and_then(|v| v.trim().parse().ok())
        });
        if self.resolved.service == Service::HuggingFace && self.published.is_none() {
            self.published = got
                .first_header("x-linked-etag")
                .or_else(|| got.first_header("etag"))
                .map(|v| {
                    v.trim()
                        .trim_start_matches("W/")
                        .trim_matches('"')
                        .to_ascii_lowercase()
                })
                .filter(|h| is_sha256(h));
        }
        if !self.started {
            self.started = true;
            on_event(DownloadEvent::Started {
                file_name: part
                    .file_name()
                    .map(|n| n.to_string_lossy().trim_end_matches(".part").to_owned())
                    .unwrap_or_default(),
                path: part.with_extension(""),
                total_bytes: total,
                resumed_from_bytes: offset,
            });
        }
        let mut file = if offset > 0 {
            self.hashing.catch_up(part, offset).map_err(|e| fatal_io(&e))?;
            OpenOptions::new().append(true).open(part)
        } else {
            self.hashing = Hashing::new();
            File::create(part)
        }
        .map_err(|e| fatal_io(&e))?;

        let host = authority_of(&got.url).unwrap_or_default();
        let mut reader = got.response.into_body().into_reader();
        let mut buf = vec![0; CHUNK_BYTES];
        let start = Instant::now();
        let mut last_report = start;
        let mut bytes = offset;
        let report = |bytes: u64, on_event: &mut dyn FnMut(DownloadEvent)| {
            let secs = start.elapsed().as_secs_f64().max(1e-3);
            let bytes_per_sec = (bytes - offset) as f64 / secs;
            on_event(DownloadEvent::Progress(Progress {
                bytes,
                total_bytes: total,
                bytes_per_sec,
                eta_secs: total
                    .filter(|_| bytes_per_sec > 0.0)
                    .map(|t| t.saturating_sub(bytes) as f64 / bytes_per_sec),
            }));
        };
        let dropped = |why: String, bytes: u64| {
            Stop::Dropped(DownloadError::Network {
                host: host.clone(),
                why: match total {
                    Some(t) => format!("{why} after {bytes} of {t} bytes"),
                    None => format!("{why} after {bytes} bytes"),
                },
                resume: format!(
                    "; the partial file {} is kept and downloading again resumes from it",
                    part.display()
                ),
            })
        };
        loop {
            if self.cancel.load(Ordering::Relaxed) {
                file.flush().map_err(|e| fatal_io(&e))?;
                return Err(Stop::Fatal(DownloadError::Cancelled {
                    path: part.to_path_buf(),
                }));
            }
            let n = match reader.read(&mut buf) {
                Ok(n) => n,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => {
                    file.flush().map_err(|e| fatal_io(&e))?;
                    return Err(dropped(io_why(&e), bytes));
                }
            };
            if n == 0 {
                break;
            }
            file.write_all(&buf[..n]).map_err(|e| fatal_io(&e))?;
            self.hashing.update(&buf[..n]);
            bytes += n as u64;
            if last_report.elapsed() >= PROGRESS_EVERY {
                last_report = Instant::now();
                report(bytes, on_event);
            }
        }
        file.sync_all().map_err(|e| fatal_io(&e))?;
        report(bytes, on_event);
        match total {
            Some(t) if bytes < t => Err(dropped("the connection ended early".into(), bytes)),
            Some(t) if bytes > t => Err(Stop::Fatal(DownloadError::Protocol {
                url: self.resolved.url.clone(),
                why: format!("sent {bytes} bytes, more than the {t} it announced"),
            })),
            _ => Ok(()),
        }
    }
}

/// `bytes START-END/TOTAL` or `bytes */TOTAL`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ContentRange {
    start: u64,
    total: Option<u64>,
}

fn parse_content_range(value: &str) -> Option<ContentRange> {
    let rest = value.trim().strip_prefix("bytes")?.trim();
    let (range, total) = rest.split_once('/')?;
    let total = total.trim().parse().ok();
    let start = match range.trim() {
        "*" => 0,
        r => r.split_once('-')?.0.trim().parse().ok()?,
    };
    Some(ContentRange { start, total })
}

/// A file-system error as a message; a full disk gets its own.
fn write_error(err: &std::io::Error, path: &Path) -> DownloadError {
    // ENOSPC (Linux, macOS) and ERROR_DISK_FULL / ERROR_HANDLE_DISK_FULL (Windows) too, for
    // systems where std does not map them.
    let full = matches!(err.kind(), ErrorKind::StorageFull | ErrorKind::QuotaExceeded)
        || (cfg!(unix) && err.raw_os_error() == Some(28))
        || (cfg!(windows) && matches!(err.raw_os_error(), Some(39 | 112)));
    if full {
        DownloadError::DiskFull {
            path: path.to_path_buf(),
        }
    } else {
        DownloadError::Io {
            path: path.to_path_buf(),
            why: err.to_string(),
        }
    }
}

/// The name a server gave, usable as a file name in our folder: no folders, no hidden files.
fn safe_file_name(name: &str) -> Result<String, DownloadError> {
    let name = name.trim();
    let bad = name.is_empty()
        || name.starts_with('.')
        || name.contains(['/', '\\', ':'])
        || name.chars().any(char::is_control)
        || name.len() > 255;
    if bad {
        return Err(DownloadError::BadSource(format!(
            "the file name {:?} cannot be used as a file name",
            crate::text::shorten(name, 100)
        )));
    }
    Ok(name.to_owned())
}

/// Whether `path` starts like a safetensors file: an 8-byte little-endian header length that fits
/// the file, then a JSON object.
fn check_safetensors_header(path: &Path) -> Result<(), String> {
    let mut file = File::open(path).map_err(|e| e.to_string())?;
    let len = file.metadata().map_err(|e| e.to_string())?.len();
    let mut head = [0u8; 9];
    file.read_exact(&mut head)
        .map_err(|_| format!("only {len} bytes"))?;
    let header_len = u64::from_le_bytes([
        head[0], head[1], head[2], head[3], head[4], head[5], head[6], head[7],
    ]);
    if head[0] == b'P' && head[1] == b'K' {
        return Err("it is a zip archive (a PyTorch pickle)".into());
    }
    if head[0] == 0x80 {
        return Err("it is a Python pickle".into());
    }
    if header_len < 2 || header_len > len - 8 || head[8] != b'{' {
        return Err("its header is not safetensors JSON (an error page?)".into());
    }
    Ok(())
}

/// SHA-256 of a whole file.
fn hash_file(path: &Path) -> std::io::Result<String> {
    let mut hashing = Hashing::new();
    let len = std::fs::metadata(path)?.len();
    hashing.catch_up(path, len)?;
    Ok(hashing.finish())
}

/// Lowercase hex.
fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// Sleeps `total`, waking early when `cancel` is set.
fn pause(total: Duration, cancel: &AtomicBool) {
    let until = Instant::now() + total;
    while Instant::now() < until && !cancel.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_ranges_parse() {
        assert_eq!(
            parse_content_range("bytes 100-199/200"),
            Some(ContentRange {
                start: 100,
                total: Some(200)
            })
        );
        assert_eq!(
            parse_content_range("bytes */200"),
            Some(ContentRange {
                start: 0,
                total: Some(200)
            })
        );
        assert_eq!(
            parse_content_range("bytes 0-9/*"),
            Some(ContentRange {
                start: 0,
                total: None
            })
        );
        assert_eq!(parse_content_range("items 1-2/3"), None);
    }

    #[test]
    fn a_full_disk_has_its_own_message() {
        let err = write_error(
            &std::io::Error::from(ErrorKind::StorageFull),
            Path::new("/m/x.part"),
        );
        assert!(matches!(err, DownloadError::DiskFull { .. }));
        assert!(err.to_string().contains("disk is full"), "{err}");
        #[cfg(unix)]
        assert!(matches!(
            write_error(&std::io::Error::from_raw_os_error(28), Path::new("/m/x.part")),
            DownloadError::DiskFull { .. }
        ));
        assert!(matches!(
            write_error(
                &std::io::Error::from(ErrorKind::PermissionDenied),
                Path::new("/m")
            ),
            DownloadError::Io { .. }
        ));
    }

    #[test]
    fn server_names_cannot_leave_the_folder() {
        assert_eq!(safe_file_name("a b.safetensors").unwrap(), "a b.safetensors");
        for bad in [
            "",
            "../x.safetensors",
            "a/b.safetensors",
            "a\\b",
            ".hidden",
            "c:x",
            "a\nb",
        ] {
            assert!(safe_file_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_header_check_knows_safetensors_from_pickles_and_pages() {
        let dir = tempfile::tempdir().unwrap();
        let check = |bytes: &[u8]| {
            let p = dir.path().join("f");
            std::fs::write(&p, bytes).unwrap();
            check_safetensors_header(&p)
        };
        let mut good = 2u64.to_le_bytes().to_vec();
        good.extend(b"{}");
        assert!(check(&good).is_ok());
        assert!(check(b"PK\x03\x04aaaaaaaaaa").unwrap_err().contains("pickle"));
        assert!(check(b"\x80\x02aaaaaaaaaaa").unwrap_err().contains("pickle"));
        assert!(check(b"<!DOCTYPE html><html>").unwrap_err().contains("header"));
        assert!(check(b"abc").is_err());
    }
}
