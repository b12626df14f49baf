//! The opt-in Civitai lookup of the model browser: one named thread asks Civitai about each hashed
//! file (answers and pictures cached on disk) and sends what it learns back, polled in `logic`.

use std::path::PathBuf;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};

use crate::config::AppPaths;
use crate::download::{CivitaiInfo, Endpoints, cached_preview, lookup_by_hash};

/// Files waiting for a lookup at most (more are skipped until the next scan).
const QUEUE: usize = 256;

/// What the lookup thread found about one file.
pub struct Found {
    /// The model file.
    pub path: PathBuf,
    /// Civitai's answer.
    pub info: CivitaiInfo,
    /// The cached preview picture, when there is one.
    pub preview: Option<PathBuf>,
}

/// The lookup thread's two channels.
pub struct CivitaiLookup {
    requests: SyncSender<(PathBuf, String)>,
    found: Receiver<Found>,
}

impl CivitaiLookup {
    /// Starts the thread; `wake` runs after each answer.
    pub fn spawn(paths: &AppPaths, wake: Box<dyn Fn() + Send>) -> std::io::Result<Self> {
        let (requests, queue) = sync_channel::<(PathBuf, String)>(QUEUE);
        let (answers, found) = sync_channel(QUEUE);
        let cache = paths.civitai_cache_dir();
        std::thread::Builder::new()
            .name("civitai-lookup".into())
            .spawn(move || {
                let endpoints = Endpoints::from_env();
                for (path, hash) in queue {
                    let info = match lookup_by_hash(&hash, &endpoints, &cache) {
                        Ok(Some(info)) => info,
                        Ok(None) => continue,
                        Err(err) => {
                            tracing::warn!("Civitai lookup of {}: {err}", path.display());
                            continue;
                        }
                    };
                    let preview = cached_preview(&info, &hash, &cache)
                        .inspect_err(|err| tracing::warn!("Civitai preview of {}: {err}", path.display()))
                        .ok()
                        .flatten();
                    if answers.send(Found { path, info, preview }).is_err() {
                        return;
                    }
                    wake();
                }
            })?;
        Ok(Self { requests, found })
    }

    /// Asks about `path`, whose AutoV2 hash is `hash` (skipped when the queue is full).
    pub fn ask(&self, path: PathBuf, hash: String) {
        if let Err(TrySendError::Full((path, _))) = self.requests.try_send((path, hash)) {
            tracing::debug!("Civitai lookup queue full; {} skipped", path.display());
        }
    }

    /// Answers that arrived.
    pub fn drain(&self) -> Vec<Found> {
        self.found.try_iter().collect()
    }
}
