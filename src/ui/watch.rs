//! The folder watcher: a named thread that looks at the model, LoRA, embedding and ControlNet
//! folders every few seconds and asks for the Rescan button's rescan once what they hold changed
//! and has settled (a file still being copied waits). Names, sizes and times only: no file is read.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel};
use std::time::Duration;

use crate::config::AppPaths;
use crate::models::registry;

/// How often the folders are looked at.
pub const POLL: Duration = Duration::from_secs(2);

/// How many folder levels below a watched folder are looked at (as deep as the checkpoint scan).
const DEPTH: usize = 2;

/// Every folder a rescan reads, as it would find them now: the checkpoint folders of the app's
/// models folder and of each folder the user added, and the LoRA, embedding and ControlNet folders.
fn watched_dirs(paths: &AppPaths, model_folders: &[PathBuf]) -> Vec<PathBuf> {
    let mut dirs = registry::checkpoint_dirs(&paths.default_models_dir);
    for root in model_folders {
        dirs.extend(registry::checkpoint_dirs(root));
    }
    dirs.extend(paths.lora_dirs(model_folders));
    dirs.extend(paths.embedding_dirs(model_folders));
    dirs.extend(paths.controlnet_dirs(model_folders));
    dirs
}

/// A cheap fingerprint of what `dirs` hold: each entry's name, kind, size and modification time,
/// [`DEPTH`] levels down. A folder that is missing or cannot be read counts as its error kind, so
/// it neither fails nor hides a later change.
pub fn signature(dirs: &[PathBuf]) -> u64 {
    let mut hasher = DefaultHasher::new();
    for dir in dirs {
        dir.hash(&mut hasher);
        hash_dir(dir, 0, &mut hasher);
    }
    hasher.finish()
}

fn hash_dir(dir: &Path, depth: usize, hasher: &mut DefaultHasher) {
    let read = match std::fs::read_dir(dir) {
        Ok(read) => read,
        Err(err) => {
            err.kind().hash(hasher);
            return;
        }
    };
    let mut entries: Vec<PathBuf> = read.filter_map(|e| e.ok().map(|e| e.path())).collect();
    entries.sort();
    for path in entries {
        path.file_name().hash(hasher);
        // `metadata` follows links: a linked model counts by its file.
        match std::fs::metadata(&path) {
            Ok(meta) => {
                meta.is_dir().hash(hasher);
                meta.len().hash(hasher);
                meta.modified().ok().hash(hasher);
                if meta.is_dir() && depth < DEPTH {
                    hash_dir(&path, depth + 1, hasher);
                }
            }
            Err(err) => err.kind().hash(hasher),
        }
    }
}

/// Decides when a change calls for a rescan: once the signature differs from the one last
/// scanned and has stayed the same for one poll.
#[derive(Debug, Default)]
pub struct Settle {
    /// The signature of the previous poll.
    previous: Option<u64>,
    /// The signature the folders had when they were last scanned.
    scanned: Option<u64>,
}

impl Settle {
    /// The folders were just scanned with this signature.
    pub fn scanned(&mut self, signature: u64) {
        self.previous = Some(signature);
        self.scanned = Some(signature);
    }

    /// Takes one poll's signature; true when a rescan is due now (and counts it as scanned).
    pub fn poll(&mut self, signature: u64) -> bool {
        let steady = self.previous == Some(signature);
        self.previous = Some(signature);
        if steady && self.scanned != Some(signature) {
            self.scanned = Some(signature);
            true
        } else {
            false
        }
    }
}

/// Handle to the watcher thread; dropping it stops the thread.
pub struct FolderWatcher {
    folders: SyncSender<Vec<PathBuf>>,
    changed: Receiver<()>,
}

impl FolderWatcher {
    /// Starts watching the folders of `paths` and `model_folders` every `every`; `wake` runs
    /// when a rescan is due (the UI passes `request_repaint`).
    ///
    /// # Errors
    /// The thread could not be started.
    pub fn spawn(
        paths: AppPaths,
        model_folders: Vec<PathBuf>,
        every: Duration,
        wake: impl Fn() + Send + 'static,
    ) -> std::io::Result<Self> {
        let (folders_tx, folders_rx) = sync_channel::<Vec<PathBuf>>(4);
        let (changed_tx, changed_rx) = sync_channel::<()>(1);
        std::thread::Builder::new()
            .name("folder-watch".into())
            .spawn(move || {
                let mut model_folders = model_folders;
                let mut settle = Settle::default();
                settle.scanned(signature(&watched_dirs(&paths, &model_folders)));
                loop {
                    match folders_rx.recv_timeout(every) {
                        Ok(folders) => {
                            // The rescan that sent them reads the new folders: that is the new baseline.
                            if folders != model_folders {
                                model_folders = folders;
                                settle.scanned(signature(&watched_dirs(&paths, &model_folders)));
                            }
                            continue;
                        }
                        Err(RecvTimeoutError::Timeout) => {}
                        // The app is closing.
                        Err(RecvTimeoutError::Disconnected) => break,
                    }
                    if settle.poll(signature(&watched_dirs(&paths, &model_folders))) {
                        match changed_tx.try_send(()) {
                            // Full: a rescan is already waiting to be picked up.
                            Ok(()) | Err(TrySendError::Full(())) => wake(),
                            Err(TrySendError::Disconnected(())) => break,
                        }
                    }
                }
            })?;
        Ok(Self {
            folders: folders_tx,
            changed: changed_rx,
        })
    }

    /// The user's model folders as a rescan reads them now (called with every rescan; never waits).
    pub fn set_folders(&self, model_folders: Vec<PathBuf>) {
        if self.folders.try_send(model_folders).is_err() {
            tracing::warn!("the folder watcher is busy or gone; it keeps its previous folders");
        }
    }

    /// Whether the folders changed and settled since the last call (never waits).
    pub fn take_change(&self) -> bool {
        self.changed.try_iter().count() > 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture_model() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/models/tiny-sd15.safetensors")
    }

    #[test]
    fn a_copied_file_gives_one_rescan_once_it_stops_growing() {
        let dir = tempfile::tempdir().unwrap();
        let models = dir.path().join("models");
        std::fs::create_dir_all(&models).unwrap();
        let dirs = [models.clone()];
        let mut settle = Settle::default();
        settle.scanned(signature(&dirs));
        assert!(!settle.poll(signature(&dirs)), "nothing changed");

        // A copy under way: part of the file, then more of it.
        let bytes = std::fs::read(fixture_model()).unwrap();
        let target = models.join("new.safetensors");
        std::fs::write(&target, &bytes[..1000]).unwrap();
        let mut rescans = usize::from(settle.poll(signature(&dirs)));
        std::fs::write(&target, &bytes[..5000]).unwrap();
        rescans += usize::from(settle.poll(signature(&dirs)));
        std::fs::write(&target, &bytes).unwrap();
        rescans += usize::from(settle.poll(signature(&dirs)));
        assert_eq!(rescans, 0, "no rescan while the file grows");
        // Settled: exactly one rescan, then quiet.
        assert!(settle.poll(signature(&dirs)));
        assert!(!settle.poll(signature(&dirs)));
        assert!(!settle.poll(signature(&dirs)));

        // A file in a subfolder and a removed file count too.
        std::fs::create_dir_all(models.join("sub")).unwrap();
        std::fs::copy(fixture_model(), models.join("sub").join("deep.safetensors")).unwrap();
        assert!(!settle.poll(signature(&dirs)));
        assert!(settle.poll(signature(&dirs)));
        std::fs::remove_file(&target).unwrap();
        assert!(!settle.poll(signature(&dirs)));
        assert!(settle.poll(signature(&dirs)));
        assert!(!settle.poll(signature(&dirs)));
    }

    #[test]
    fn missing_folders_are_watched_until_they_appear() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("not-yet");
        let a_file = dir.path().join("file.txt");
        std::fs::write(&a_file, b"x").unwrap();
        // A missing folder and a file where a folder is expected: signatures, no failure.
        let dirs = [missing.clone(), a_file];
        let mut settle = Settle::default();
        settle.scanned(signature(&dirs));
        assert!(!settle.poll(signature(&dirs)));
        std::fs::create_dir_all(&missing).unwrap();
        std::fs::write(missing.join("m.safetensors"), b"12345678").unwrap();
        assert!(!settle.poll(signature(&dirs)));
        assert!(settle.poll(signature(&dirs)));
    }

    #[test]
    fn the_thread_reports_a_settled_change_and_stops_with_its_handle() {
        let dir = tempfile::tempdir().unwrap();
        let paths = AppPaths::under(dir.path().to_path_buf());
        std::fs::create_dir_all(&paths.default_models_dir).unwrap();
        let (woken_tx, woken_rx) = sync_channel::<()>(8);
        let watcher = FolderWatcher::spawn(paths.clone(), Vec::new(), Duration::from_millis(20), move || {
            let _ = woken_tx.try_send(());
        })
        .unwrap();
        // Let it take its baseline, then copy a model in.
        std::thread::sleep(Duration::from_millis(100));
        assert!(!watcher.take_change());
        std::fs::copy(
            fixture_model(),
            paths.default_models_dir.join("copied.safetensors"),
        )
        .unwrap();
        woken_rx.recv_timeout(Duration::from_secs(10)).unwrap();
        assert!(watcher.take_change());
        assert!(!watcher.take_change(), "one change, one rescan");
        drop(watcher);
        // Dropping the handle ends the thread: the wake closure (and its sender) is dropped.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            match woken_rx.recv_timeout(Duration::from_millis(50)) {
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
                _ => assert!(std::time::Instant::now() < deadline, "the watcher did not stop"),
            }
        }
    }
}
