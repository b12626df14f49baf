//! Getting models without leaving Easel: a Hugging Face file, a Civitai model version or any https
//! URL, streamed to a `.part` file (resumable), checked against its published SHA-256, moved into
//! the folder for its kind. Runs on its own named thread (GUI) or the caller's (CLI, tests); never
//! on the UI thread; knows nothing of egui.
//!
//! The HTTP client is `ureq` 3 with rustls (ring + webpki-roots): blocking I/O, a body that streams
//! through `std::io::Read` (progress, cancel and hashing per chunk), any header we set (`Range` for
//! resume, `Authorization`), and 3xx responses handed back unfollowed so that the hub's first answer
//! (`X-Linked-Etag`: the file's SHA-256) is kept. It adds about fifteen small crates and no OpenSSL,
//! tokio or hyper; `reqwest` would bring tokio and hyper, and `hf-hub` brings reqwest (or ureq
//! anyway) and knows nothing of Civitai.

mod catalogue;
mod http;
mod lookup;
mod source;
mod transfer;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};

pub use catalogue::{Catalogue, CatalogueEntry};
pub use lookup::{CivitaiInfo, cached_preview, lookup_by_hash};
pub use source::{Endpoints, Source};
pub use transfer::download;

use crate::config::AppPaths;
use crate::models::ModelError;

/// What a downloaded file is, which decides its folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ModelKind {
    /// A full Stable Diffusion checkpoint.
    Checkpoint,
    /// A LoRA / LyCORIS file.
    Lora,
    /// A textual-inversion embedding.
    Embedding,
    /// A ControlNet model.
    #[serde(rename = "controlnet")]
    ControlNet,
    /// A VAE.
    Vae,
    /// A tiny preview decoder (TAESD), A1111's `VAE-approx`.
    VaeApprox,
}

impl ModelKind {
    /// Every kind, in the order menus list them.
    pub const ALL: [Self; 6] = [
        Self::Checkpoint,
        Self::Lora,
        Self::Embedding,
        Self::ControlNet,
        Self::Vae,
        Self::VaeApprox,
    ];

    /// The name used on the command line and in the catalogue.
    pub fn name(self) -> &'static str {
        match self {
            Self::Checkpoint => "checkpoint",
            Self::Lora => "lora",
            Self::Embedding => "embedding",
            Self::ControlNet => "controlnet",
            Self::Vae => "vae",
            Self::VaeApprox => "vae-approx",
        }
    }

    /// Reads a name as [`Self::name`] writes it (case and `_`/`-` ignored).
    pub fn parse(text: &str) -> Option<Self> {
        let t = text.trim().to_ascii_lowercase().replace('_', "-");
        let t = match t.as_str() {
            "model" | "checkpoints" | "ckpt" => "checkpoint",
            "loras" | "lycoris" | "locon" => "lora",
            "embeddings" | "textual-inversion" | "ti" => "embedding",
            "control-net" | "controlnets" => "controlnet",
            "vaeapprox" | "taesd" => "vae-approx",
            other => other,
        };
        Self::ALL.into_iter().find(|k| k.name() == t)
    }

    /// Civitai's model `type` (`Checkpoint`, `LORA`, `TextualInversion`, …).
    pub fn from_civitai(model_type: &str) -> Option<Self> {
        match model_type.to_ascii_lowercase().as_str() {
            "checkpoint" => Some(Self::Checkpoint),
            "lora" | "locon" | "lycoris" | "dora" => Some(Self::Lora),
            "textualinversion" => Some(Self::Embedding),
            "controlnet" => Some(Self::ControlNet),
            "vae" => Some(Self::Vae),
            _ => None,
        }
    }

    /// The default folder for this kind.
    pub fn folder(self, paths: &AppPaths) -> PathBuf {
        match self {
            Self::Checkpoint => paths.default_models_dir.clone(),
            Self::Lora => paths.default_lora_dir(),
            Self::Embedding => paths.default_embeddings_dir(),
            Self::ControlNet => paths.default_controlnet_dir(),
            Self::Vae => paths.default_vae_dir(),
            Self::VaeApprox => paths.default_vae_approx_dir(),
        }
    }
}

/// What to download, and where.
#[derive(Debug, Clone, PartialEq)]
pub struct DownloadRequest {
    /// Where it comes from.
    pub source: Source,
    /// What it is; `None` takes Civitai's model type, else checkpoint.
    pub kind: Option<ModelKind>,
    /// A folder chosen by the user instead of the kind's default.
    pub to: Option<PathBuf>,
    /// The SHA-256 the file must have (the catalogue's), besides what the source publishes.
    pub sha256: Option<String>,
    /// How many times a dropped connection is resumed automatically before giving up.
    pub retries: u32,
}

impl DownloadRequest {
    /// A request for `source` with the defaults (kind from the source, default folder, 3 retries).
    pub fn new(source: Source) -> Self {
        Self {
            source,
            kind: None,
            to: None,
            sha256: None,
            retries: 3,
        }
    }
}

/// How far a transfer is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Progress {
    /// Bytes in the `.part` file so far (including a resumed part).
    pub bytes: u64,
    /// The file's size, when the server says.
    pub total_bytes: Option<u64>,
    /// Bytes per second over this attempt.
    pub bytes_per_sec: f64,
    /// Seconds left at that rate, when the size is known.
    pub eta_secs: Option<f64>,
}

impl Progress {
    /// Done fraction in 0..=1, when the size is known.
    pub fn fraction(&self) -> Option<f32> {
        self.total_bytes
            .filter(|&t| t > 0)
            .map(|t| (self.bytes as f64 / t as f64).clamp(0.0, 1.0) as f32)
    }
}

/// What a download reports while it runs.
#[derive(Debug, Clone, PartialEq)]
pub enum DownloadEvent {
    /// The source was resolved; bytes start to flow.
    Started {
        /// The file's name in its folder.
        file_name: String,
        /// Where it will be.
        path: PathBuf,
        /// Its size, when known.
        total_bytes: Option<u64>,
        /// Bytes already in a `.part` file from an earlier attempt.
        resumed_from_bytes: u64,
    },
    /// More bytes arrived (at most ten a second).
    Progress(Progress),
    /// The connection dropped; the transfer resumes from the `.part` file.
    Retrying {
        /// Which retry this is (1 = first).
        attempt: u32,
        /// Why the previous attempt stopped.
        why: String,
    },
    /// All bytes are in; the SHA-256 and the file's header are being checked.
    Verifying,
}

/// A finished download.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Downloaded {
    /// The file in its folder.
    pub path: PathBuf,
    /// What it is (decides the folder).
    pub kind: ModelKind,
    /// Its SHA-256 (lowercase hex).
    pub sha256: String,
    /// Whether the source published a hash that it was checked against.
    pub verified: bool,
    /// The file was already there (nothing was downloaded).
    pub already_present: bool,
}

/// Why a download failed. Each message says what failed, why, and what to do.
#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    /// The text is not a source Easel understands.
    #[error("not a download source: {0}")]
    BadSource(String),
    /// Plain http (or another scheme) to a host other than this computer.
    #[error("refusing {url}: downloads use https:// (plain http only to this computer)")]
    Insecure {
        /// The address.
        url: String,
    },
    /// DNS failure, connection refused, a dropped or stalled connection.
    #[error("could not reach {host}: {why}. Check the network connection{resume}")]
    Network {
        /// The server.
        host: String,
        /// What went wrong.
        why: String,
        /// A note on the partial file kept for resuming (empty when none).
        resume: String,
    },
    /// HTTP 401.
    #[error("{url} needs a login (HTTP 401): {hint}")]
    Unauthorized {
        /// The address.
        url: String,
        /// What to set.
        hint: String,
    },
    /// HTTP 403.
    #[error("access to {url} was refused (HTTP 403): {hint}")]
    Forbidden {
        /// The address.
        url: String,
        /// What to do.
        hint: String,
    },
    /// HTTP 404.
    #[error("not found (HTTP 404): {url}; {hint}")]
    NotFound {
        /// The address.
        url: String,
        /// What to check.
        hint: String,
    },
    /// HTTP 429.
    #[error("{host} is limiting requests (HTTP 429){retry_after}; wait a while and try again")]
    RateLimited {
        /// The server.
        host: String,
        /// ", it asks to wait N s" when the server says.
        retry_after: String,
    },
    /// Another HTTP status.
    #[error("the server answered HTTP {status} for {url}")]
    Status {
        /// The status code.
        status: u16,
        /// The address.
        url: String,
    },
    /// An answer Easel cannot use (bad JSON, no file in a Civitai version, a bad redirect).
    #[error("unexpected answer from {url}: {why}")]
    Protocol {
        /// The address.
        url: String,
        /// What is wrong.
        why: String,
    },
    /// No space left on the disk.
    #[error(
        "the disk is full: could not write {path}; free some space and download again (the partial file is kept and the download resumes)"
    )]
    DiskFull {
        /// The file being written.
        path: PathBuf,
    },
    /// Another file-system error.
    #[error("could not write {path}: {why}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The OS error.
        why: String,
    },
    /// The bytes do not have the published SHA-256.
    #[error(
        "the downloaded file does not match its published SHA-256 (expected {expected}, got {actual}); it was deleted, download it again (file: {path})"
    )]
    HashMismatch {
        /// The file that was deleted.
        path: PathBuf,
        /// Published hash.
        expected: String,
        /// Hash of what arrived.
        actual: String,
    },
    /// A pickle or a format the model loader refuses (its own message).
    #[error("{0}")]
    Refused(#[from] ModelError),
    /// The bytes are not a safetensors file (an HTML page, a pickle under a .safetensors name).
    #[error(
        "the downloaded file is not a safetensors file ({why}); it was deleted, never opened (file: {path})"
    )]
    NotSafetensors {
        /// The file that was deleted.
        path: PathBuf,
        /// What is wrong with its header.
        why: String,
    },
    /// A different file of that name is already in the folder.
    #[error(
        "{path} already exists and is not the published file (its SHA-256 differs); move it away to download this one"
    )]
    Exists {
        /// The existing file.
        path: PathBuf,
    },
    /// Cancelled by the user.
    #[error("download cancelled; {path} is kept and the next download of this file resumes from it")]
    Cancelled {
        /// The `.part` file.
        path: PathBuf,
    },
}

/// What a download thread sends back.
#[derive(Debug)]
pub enum DownloadUpdate {
    /// Something happened.
    Event(DownloadEvent),
    /// It ended (the last message).
    Finished(Result<Downloaded, DownloadError>),
}

/// A download running on its own thread: poll [`Self::try_recv`] each frame.
#[derive(Debug)]
pub struct DownloadHandle {
    cancel: Arc<AtomicBool>,
    receiver: Receiver<DownloadUpdate>,
}

impl DownloadHandle {
    /// Asks the download to stop (the `.part` file is kept for resuming).
    pub fn cancel(&self) {
        self.cancel.store(true, Ordering::Relaxed);
    }

    /// The next update, if one is waiting.
    pub fn try_recv(&self) -> Option<DownloadUpdate> {
        self.receiver.try_recv().ok()
    }

    /// Waits for the next update; `None` when the thread is gone.
    pub fn recv(&self) -> Option<DownloadUpdate> {
        self.receiver.recv().ok()
    }
}

/// Updates waiting in a download's channel at most (progress is dropped when it is full).
const UPDATE_CAPACITY: usize = 64;

/// Starts `request` on a thread named `download`; `wake` runs after each update (the GUI's repaint).
///
/// # Errors
/// The thread could not be started.
pub fn spawn(
    request: DownloadRequest,
    paths: AppPaths,
    endpoints: Endpoints,
    wake: Box<dyn Fn() + Send>,
) -> std::io::Result<DownloadHandle> {
    let cancel = Arc::new(AtomicBool::new(false));
    let (sender, receiver) = sync_channel(UPDATE_CAPACITY);
    let flag = Arc::clone(&cancel);
    std::thread::Builder::new()
        .name("download".into())
        .spawn(move || {
            let mut on_event = |event: DownloadEvent| send_event(&sender, event, &*wake);
            let result = download(&request, &paths, &endpoints, &flag, &mut on_event);
            // The receiver may be gone (the window closed): nothing to tell then.
            let _ = sender.send(DownloadUpdate::Finished(result));
            wake();
        })?;
    Ok(DownloadHandle { cancel, receiver })
}

/// Sends an event without ever blocking the transfer on a slow UI: progress is dropped when the
/// channel is full (the next one carries the same information), other events wait.
fn send_event(sender: &SyncSender<DownloadUpdate>, event: DownloadEvent, wake: &dyn Fn()) {
    let update = DownloadUpdate::Event(event);
    // A full channel drops progress (the next one says the same); other events wait.
    if let Err(TrySendError::Full(update)) = sender.try_send(update)
        && !matches!(update, DownloadUpdate::Event(DownloadEvent::Progress(_)))
    {
        let _ = sender.send(update);
    }
    wake();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_their_names_and_map_civitai_types() {
        for kind in ModelKind::ALL {
            assert_eq!(ModelKind::parse(kind.name()), Some(kind));
        }
        assert_eq!(ModelKind::parse("ControlNet"), Some(ModelKind::ControlNet));
        assert_eq!(ModelKind::parse("vae_approx"), Some(ModelKind::VaeApprox));
        assert_eq!(ModelKind::parse("upscaler"), None);
        assert_eq!(ModelKind::from_civitai("LORA"), Some(ModelKind::Lora));
        assert_eq!(
            ModelKind::from_civitai("TextualInversion"),
            Some(ModelKind::Embedding)
        );
        assert_eq!(ModelKind::from_civitai("Poses"), None);
        let paths = AppPaths::under("/data".into());
        assert_eq!(
            ModelKind::ControlNet.folder(&paths),
            PathBuf::from("/data/controlnet")
        );
        assert_eq!(
            ModelKind::VaeApprox.folder(&paths),
            PathBuf::from("/data/vae-approx")
        );
    }

    #[test]
    fn progress_fraction_needs_a_size() {
        let p = Progress {
            bytes: 50,
            total_bytes: Some(200),
            bytes_per_sec: 1.0,
            eta_secs: None,
        };
        assert_eq!(p.fraction(), Some(0.25));
        assert_eq!(
            Progress {
                total_bytes: None,
                ..p
            }
            .fraction(),
            None
        );
    }
}
