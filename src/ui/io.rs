//! The app's disk worker: scans model folders, writes outputs, loads the gallery and images.
//! One named thread with bounded channels, so the UI thread never waits on the disk.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};

use crate::diffusion::pipeline::GeneratedImage;
use crate::imaging::png_meta;
use crate::models::registry::{self, ModelEntry};

/// Longest side of gallery thumbnails, in pixels.
const THUMB_PX: u32 = 128;

/// RGBA pixels with their size.
#[derive(Debug, Clone)]
pub struct Rgba {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// Row-major RGBA8.
    pub pixels: Vec<u8>,
}

/// One image in the gallery.
#[derive(Debug, Clone)]
pub struct GalleryItem {
    /// The PNG on disk.
    pub path: PathBuf,
    /// Small picture for the strip.
    pub thumbnail: Rgba,
    /// Its A1111 parameters, if it has them.
    pub infotext: Option<String>,
}

/// Work for the disk thread.
pub enum Request {
    /// List the checkpoints under these folders.
    Scan(Vec<PathBuf>),
    /// Write a generated image into the outputs folder.
    Save(PathBuf, Box<GeneratedImage>),
    /// Read every PNG of the outputs folder, newest first.
    LoadGallery(PathBuf),
    /// Read one image at full size (for the canvas).
    LoadImage(PathBuf),
}

/// What the disk thread reports.
pub enum Reply {
    /// Checkpoints found.
    Models(Vec<ModelEntry>),
    /// An output was written.
    Saved(GalleryItem),
    /// The whole gallery.
    Gallery(Vec<GalleryItem>),
    /// A full-size image and its parameters.
    Image(Rgba, Option<String>),
    /// Something failed; the text is for the user.
    Failed(String),
}

/// Handle to the disk thread.
pub struct Io {
    requests: SyncSender<Request>,
    replies: Receiver<Reply>,
}

impl Io {
    /// Starts the thread; `wake` runs after every reply (the UI passes `request_repaint`).
    pub fn spawn(wake: impl Fn() + Send + 'static) -> std::io::Result<Self> {
        let (req_tx, req_rx) = sync_channel::<Request>(64);
        let (rep_tx, rep_rx) = sync_channel::<Reply>(64);
        std::thread::Builder::new().name("io".into()).spawn(move || {
            while let Ok(request) = req_rx.recv() {
                let reply = handle(request);
                if rep_tx.send(reply).is_err() {
                    break;
                }
                wake();
            }
        })?;
        Ok(Self {
            requests: req_tx,
            replies: rep_rx,
        })
    }

    /// Queues work; if the queue is full the request is dropped with a log line.
    pub fn send(&self, request: Request) {
        if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) = self.requests.try_send(request) {
            tracing::warn!("the disk worker is busy or gone; a request was dropped");
        }
    }

    /// Replies that arrived since the last call.
    pub fn drain(&self) -> Vec<Reply> {
        self.replies.try_iter().collect()
    }
}

fn handle(request: Request) -> Reply {
    match request {
        Request::Scan(folders) => Reply::Models(registry::scan(&folders)),
        Request::Save(dir, image) => save(&dir, &image).unwrap_or_else(Reply::Failed),
        Request::LoadGallery(dir) => Reply::Gallery(load_gallery(&dir)),
        Request::LoadImage(path) => match load_rgba(&path, None) {
            Ok(rgba) => Reply::Image(rgba, parameters_of(&path)),
            Err(e) => Reply::Failed(e),
        },
    }
}

fn parameters_of(path: &Path) -> Option<String> {
    png_meta::read_png_text_chunks(path)
        .ok()?
        .into_iter()
        .find(|(k, _)| k == png_meta::PARAMETERS_KEYWORD)
        .map(|(_, v)| v)
}

fn load_rgba(path: &Path, max_side: Option<u32>) -> Result<Rgba, String> {
    let img = image::open(path).map_err(|e| format!("could not open {}: {e}", path.display()))?;
    let img = match max_side {
        Some(side) => img.thumbnail(side, side),
        None => img,
    };
    let rgba = img.to_rgba8();
    Ok(Rgba {
        width: rgba.width() as usize,
        height: rgba.height() as usize,
        pixels: rgba.into_raw(),
    })
}

fn item(path: &Path) -> Result<GalleryItem, String> {
    Ok(GalleryItem {
        path: path.to_path_buf(),
        thumbnail: load_rgba(path, Some(THUMB_PX))?,
        infotext: parameters_of(path),
    })
}

fn save(dir: &Path, image: &GeneratedImage) -> Result<Reply, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("could not create {}: {e}", dir.display()))?;
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let path = dir.join(format!("{stamp}-{}.png", image.seed));
    png_meta::write_png_with_parameters(&path, image.width, image.height, &image.rgb, &image.infotext)
        .map_err(|e| e.to_string())?;
    item(&path).map(Reply::Saved)
}

fn load_gallery(dir: &Path) -> Vec<GalleryItem> {
    let Ok(read) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<(std::time::SystemTime, PathBuf)> = read
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e.eq_ignore_ascii_case("png")))
        .map(|p| {
            (
                std::fs::metadata(&p)
                    .and_then(|m| m.modified())
                    .unwrap_or(std::time::UNIX_EPOCH),
                p,
            )
        })
        .collect();
    files.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| b.1.cmp(&a.1)));
    files.iter().filter_map(|(_, p)| item(p).ok()).collect()
}
