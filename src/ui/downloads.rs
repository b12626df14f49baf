//! Download state of the window: each download runs on its own `download` thread
//! ([`crate::download::spawn`]); its updates are drained here every frame, in `logic`.

use std::path::PathBuf;

use crate::config::AppPaths;
use crate::download::{
    DownloadEvent, DownloadHandle, DownloadRequest, DownloadUpdate, Downloaded, Endpoints, Progress,
};

/// Where one download stands.
#[derive(Debug, Clone, PartialEq)]
pub enum DownloadState {
    /// Asking the server.
    Starting,
    /// Bytes are flowing.
    Running(Option<Progress>),
    /// The connection dropped; resuming.
    Retrying(String),
    /// Checking the SHA-256.
    Verifying,
    /// In its folder.
    Done(PathBuf),
    /// Failed or cancelled, with the message.
    Failed(String),
}

impl DownloadState {
    /// Still running (can be cancelled).
    pub fn is_active(&self) -> bool {
        !matches!(self, Self::Done(_) | Self::Failed(_))
    }
}

/// One download the window knows of.
pub struct DownloadItem {
    /// Identifies it (a catalogue id, or the typed source).
    pub key: String,
    /// What the list shows.
    pub label: String,
    /// Where it stands.
    pub state: DownloadState,
    handle: Option<DownloadHandle>,
}

/// All downloads of this session, oldest first.
#[derive(Default)]
pub struct Downloads {
    items: Vec<DownloadItem>,
}

impl Downloads {
    /// The downloads, oldest first.
    pub fn items(&self) -> &[DownloadItem] {
        &self.items
    }

    /// The download with this key.
    pub fn get(&self, key: &str) -> Option<&DownloadItem> {
        self.items.iter().find(|i| i.key == key)
    }

    /// Starts `request` on its own thread (a running download with the same key is left alone).
    pub fn start(
        &mut self,
        key: String,
        label: String,
        request: DownloadRequest,
        paths: &AppPaths,
        wake: Box<dyn Fn() + Send>,
    ) {
        if self.get(&key).is_some_and(|i| i.state.is_active()) {
            return;
        }
        self.items.retain(|i| i.key != key);
        let (state, handle) =
            match crate::download::spawn(request, paths.clone(), Endpoints::from_env(), wake) {
                Ok(handle) => (DownloadState::Starting, Some(handle)),
                Err(err) => (
                    DownloadState::Failed(crate::ui::i18n::trf(
                        "could not start the download: {error}",
                        &[("error", &err)],
                    )),
                    None,
                ),
            };
        self.items.push(DownloadItem {
            key,
            label,
            state,
            handle,
        });
    }

    /// Asks a download to stop (its `.part` file stays for the next try).
    pub fn cancel(&self, key: &str) {
        if let Some(handle) = self.get(key).and_then(|i| i.handle.as_ref()) {
            handle.cancel();
        }
    }

    /// Forgets a finished download.
    pub fn dismiss(&mut self, key: &str) {
        self.items.retain(|i| i.key != key || i.state.is_active());
    }

    /// Drains every download's updates; returns the downloads that finished well this frame.
    pub fn poll(&mut self) -> Vec<Downloaded> {
        let mut finished = Vec::new();
        for item in &mut self.items {
            let Some(handle) = &item.handle else {
                continue;
            };
            while let Some(update) = handle.try_recv() {
                match update {
                    DownloadUpdate::Event(event) => {
                        item.state = match event {
                            DownloadEvent::Started { .. } => DownloadState::Running(None),
                            DownloadEvent::Progress(p) => DownloadState::Running(Some(p)),
                            DownloadEvent::Retrying { why, .. } => DownloadState::Retrying(why),
                            DownloadEvent::Verifying => DownloadState::Verifying,
                        };
                    }
                    DownloadUpdate::Finished(Ok(done)) => {
                        item.state = DownloadState::Done(done.path.clone());
                        finished.push(done);
                    }
                    DownloadUpdate::Finished(Err(err)) => item.state = DownloadState::Failed(err.to_string()),
                }
            }
            if !item.state.is_active() {
                item.handle = None;
            }
        }
        finished
    }
}

/// One line on a running transfer: "12.3 MB of 40.0 MB, 3.2 MB/s, 9 s left".
pub fn progress_text(progress: &Progress) -> String {
    use std::fmt::Write as _;

    use crate::ui::i18n::trf;
    use crate::ui::text::human_size;
    let mut text = match progress.total_bytes {
        Some(total) => trf(
            "{done} of {total}",
            &[
                ("done", &human_size(progress.bytes)),
                ("total", &human_size(total)),
            ],
        ),
        None => human_size(progress.bytes),
    };
    let _ = write!(text, ", {:.1} MB/s", progress.bytes_per_sec / 1e6);
    if let Some(eta) = progress.eta_secs {
        text.push_str(&trf(", {secs} s left", &[("secs", &format!("{eta:.0}"))]));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_reads_like_a_sentence() {
        let p = Progress {
            bytes: 12_300_000,
            total_bytes: Some(40_000_000),
            bytes_per_sec: 3_200_000.0,
            eta_secs: Some(8.6),
        };
        assert_eq!(progress_text(&p), "12.3 MB of 40.0 MB, 3.2 MB/s, 9 s left");
        let unknown = Progress {
            total_bytes: None,
            eta_secs: None,
            ..p
        };
        assert_eq!(progress_text(&unknown), "12.3 MB, 3.2 MB/s");
    }
}
