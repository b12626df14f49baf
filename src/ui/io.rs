//! The app's disk worker: scans model and LoRA folders, hashes files, loads preview pictures, writes
//! outputs, loads the gallery, images and the clipboard, saves and opens `.easel` documents, and
//! autosaves the open one.
//! One named thread with bounded channels, so the UI thread never waits on the disk.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};

use crate::document::Version;
use crate::document::file::{self as docfile, PngCache};
use crate::engine::GeneratedImage;
use crate::infotext::{self, ImageMetadata, OutputFormat};
use crate::models::registry::{self, ModelEntry};
use crate::ui::i18n::{tr, trf};

/// Longest side of gallery thumbnails, in pixels.
const THUMB_PX: u32 = 128;
/// The autosaved document in the autosave folder.
pub const AUTOSAVE_FILE: &str = "document.easel";
/// Beside it: which file the document belongs to ([`Origin`]).
const ORIGIN_FILE: &str = "origin.json";

/// The file an autosaved document was saved to or opened from, so that after a restart it keeps
/// its name and Save writes there.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct Origin {
    /// The document's `.easel` file, if it has one.
    pub file: Option<PathBuf>,
    /// The autosaved revision is what that file holds.
    pub saved: bool,
}

/// A document to write: its versions, which one is shown, and which document and revision they
/// are (so the reply can say what was saved).
pub struct DocumentSave {
    /// The versions, oldest first.
    pub versions: Vec<Version>,
    /// Index of the version shown.
    pub current: usize,
    /// Which open document this is (the app counts documents it opens).
    pub serial: u64,
    /// The document's revision when it was handed over.
    pub revision: u64,
    /// The file it belongs to (written beside the autosave).
    pub origin: Origin,
}

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
pub enum IoTask {
    /// List the checkpoints under these folders.
    Scan(Vec<PathBuf>),
    /// List the LoRAs under these folders.
    ScanLoras(Vec<PathBuf>),
    /// Write a generated image into the outputs folder, in this format.
    Save(PathBuf, Box<GeneratedImage>, OutputFormat),
    /// Write the canvas picture to a file the user chose, with its parameters (empty: none).
    Export {
        /// The file.
        path: PathBuf,
        /// The picture.
        picture: Box<image::RgbImage>,
        /// A1111 parameters text.
        parameters: String,
        /// The format the extension named.
        format: OutputFormat,
    },
    /// Read every PNG of the outputs folder, newest first.
    LoadGallery(PathBuf),
    /// Read one image at full size (for the canvas), or open a `.easel` document.
    LoadImage(PathBuf),
    /// Read an image to stage over the canvas picture (a gallery item).
    StageImage(PathBuf),
    /// Read an image from the system clipboard.
    PasteImage,
    /// Compute the AutoV2 hash (from the cached SHA-256) of these files, one reply each; after the
    /// first, the rest wait until no other request does.
    Hash(Vec<PathBuf>),
    /// Load these `(file, picture beside it)` pictures small, one reply per picture that loads.
    Thumbnails(Vec<(PathBuf, PathBuf)>),
    /// Autosave the open document into this folder, atomically.
    SaveDocument(PathBuf, Box<DocumentSave>),
    /// Save the open document to this `.easel` file, atomically.
    SaveFile(PathBuf, Box<DocumentSave>),
    /// Read the autosaved document from this folder.
    LoadDocument(PathBuf),
    /// List the ControlNets in these folders.
    ScanControlNets(Vec<PathBuf>),
    /// Read a ControlNet control image.
    LoadControlImage(PathBuf),
    /// Run a ControlNet preprocessor for the section's preview.
    Hint(Box<HintTask>),
    /// Find faces in a picture (of this document revision) and mask their grown boxes.
    FindFaces(Box<image::RgbImage>, u64),
    /// Find hands in a picture (of this document revision) and mask their grown boxes.
    FindHands(Box<image::RgbImage>, u64),
    /// Segment the people in a picture (of this document revision); `true` selects the rest.
    SelectPeople(Box<image::RgbImage>, u64, bool),
}

/// One hint preview: the unit's preprocessor on `image` at the generation size.
pub struct HintTask {
    /// The control image.
    pub image: std::sync::Arc<image::RgbImage>,
    /// The inpaint mask, if any.
    pub mask: Option<std::sync::Arc<image::GrayImage>>,
    /// The unit (its model is not used).
    pub unit: crate::request::ControlUnit,
    /// Generation width.
    pub width: u32,
    /// Generation height.
    pub height: u32,
    /// Which request this answers (the section shows only the newest).
    pub serial: u64,
}

/// What the disk thread reports.
pub enum Reply {
    /// Checkpoints found.
    Models(Vec<ModelEntry>),
    /// LoRAs found.
    Loras(Vec<registry::LoraEntry>),
    /// An output was written.
    Saved(GalleryItem),
    /// The whole gallery.
    Gallery(Vec<GalleryItem>),
    /// A full-size image and the generation settings it carries (any tool's), if any.
    Image(Rgba, Option<Box<ImageMetadata>>),
    /// An image to stage over the canvas picture, read from this file, with its settings if any.
    Staged(PathBuf, Rgba, Option<Box<ImageMetadata>>),
    /// A file's AutoV2 hash, or why it could not be computed.
    Hashed(PathBuf, Result<String, String>),
    /// The preview picture of a checkpoint or LoRA, keyed by that file.
    Thumbnail(PathBuf, Rgba),
    /// The autosaved document and the file it belongs to.
    Document(Box<docfile::Opened>, Origin),
    /// A `.easel` document, opened.
    OpenedFile(PathBuf, Box<docfile::Opened>),
    /// The document (serial, revision) was saved to this file.
    SavedFile(PathBuf, u64, u64),
    /// ControlNets found.
    ControlNets(Vec<registry::ControlNetEntry>),
    /// A control image, read.
    ControlImage(PathBuf, std::sync::Arc<image::RgbImage>),
    /// A hint preview (request serial, picture) or why it could not be made.
    Hint(u64, Result<Rgba, String>),
    /// The faces (or hands) found in the picture of a document revision: each one's score and
    /// its own mask (ADetailer's grown box).
    Faces(
        u64,
        crate::request::FixTarget,
        Result<Vec<(f32, image::GrayImage)>, String>,
    ),
    /// The people (or the background) of the picture of a document revision: whether anything was
    /// selected, and the mask.
    People(u64, Result<(bool, image::GrayImage), String>),
    /// The canvas picture was exported to this file.
    Exported(PathBuf),
    /// Nothing to show (a save finished, or there was nothing to do); never sent to the UI.
    Done,
    /// Something failed; the text is for the user.
    Failed(String),
}

/// Handle to the disk thread.
pub struct Io {
    requests: SyncSender<IoTask>,
    replies: Receiver<Reply>,
}

impl Io {
    /// Starts the thread; `wake` runs after every reply (the UI passes `request_repaint`).
    pub fn spawn(wake: impl Fn() + Send + 'static) -> std::io::Result<Self> {
        let (req_tx, req_rx) = sync_channel::<IoTask>(64);
        let (rep_tx, rep_rx) = sync_channel::<Reply>(64);
        std::thread::Builder::new().name("io".into()).spawn(move || {
            let mut pending_hashes: Vec<PathBuf> = Vec::new();
            // Document pictures already encoded, so autosaves encode only new versions.
            let mut pngs = PngCache::default();
            loop {
                // Background hashing yields to every other request.
                let request = match req_rx.try_recv() {
                    Ok(r) => r,
                    Err(std::sync::mpsc::TryRecvError::Disconnected) => break,
                    Err(std::sync::mpsc::TryRecvError::Empty) => match pending_hashes.pop() {
                        Some(path) => IoTask::Hash(vec![path]),
                        None => match req_rx.recv() {
                            Ok(r) => r,
                            Err(_) => break,
                        },
                    },
                };
                let mut gone = false;
                handle(request, &mut pending_hashes, &mut pngs, &mut |r| {
                    if !matches!(r, Reply::Done) {
                        gone |= rep_tx.send(r).is_err();
                    }
                });
                if gone {
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
    pub fn send(&self, request: IoTask) {
        if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) = self.requests.try_send(request) {
            tracing::warn!("the disk worker is busy or gone; a request was dropped");
        }
    }

    /// Replies that arrived since the last call.
    pub fn drain(&self) -> Vec<Reply> {
        self.replies.try_iter().collect()
    }
}

/// Does one task and sends its replies through `reply` (thumbnails one by one, so the browser fills
/// in as they decode). Hashes of several files are done one per call: the first now, the rest
/// pushed onto `pending_hashes`, which the loop works through between other tasks. `pngs` keeps
/// the encoded pictures of the last document save.
fn handle(
    request: IoTask,
    pending_hashes: &mut Vec<PathBuf>,
    pngs: &mut PngCache,
    reply: &mut dyn FnMut(Reply),
) {
    let single = match request {
        IoTask::Scan(folders) => Reply::Models(registry::scan(&folders)),
        IoTask::ScanLoras(folders) => Reply::Loras(registry::scan_loras(&folders)),
        IoTask::Save(dir, image, format) => save(&dir, &image, format).unwrap_or_else(Reply::Failed),
        IoTask::Export {
            path,
            picture,
            parameters,
            format,
        } => {
            let (w, h) = picture.dimensions();
            match infotext::write_image_with_parameters(&path, format, w, h, picture.as_raw(), &parameters) {
                Ok(()) => Reply::Exported(path),
                Err(e) => Reply::Failed(trf("could not export the picture: {error}", &[("error", &e)])),
            }
        }
        IoTask::LoadGallery(dir) => Reply::Gallery(load_gallery(&dir)),
        IoTask::LoadImage(path) if docfile::is_document_path(&path) => match docfile::read(&path) {
            Ok(opened) => Reply::OpenedFile(path, Box::new(opened)),
            Err(e) => Reply::Failed(trf("could not open the document: {error}", &[("error", &e)])),
        },
        IoTask::LoadImage(path) => match crate::imaging::read_file(&path) {
            Ok(bytes) => decode_image(&path.display().to_string(), &bytes),
            Err(e) => Reply::Failed(e.to_string()),
        },
        IoTask::StageImage(path) => match crate::imaging::read_file(&path) {
            Ok(bytes) => match decode_image(&path.display().to_string(), &bytes) {
                Reply::Image(rgba, metadata) => Reply::Staged(path, rgba, metadata),
                other => other,
            },
            Err(e) => Reply::Failed(e.to_string()),
        },
        IoTask::PasteImage => paste_image(),
        IoTask::Hash(paths) => {
            // One reply per file, so the browser fills in as hashes arrive; the rest continue after.
            let Some((first, rest)) = paths.split_first() else {
                return;
            };
            let result = crate::models::hash::cached_sha256(first, |_, _| {})
                .map(|sha| crate::models::hash::autov2(&sha))
                .map_err(|e| e.to_string());
            pending_hashes.extend(rest.iter().cloned());
            Reply::Hashed(first.clone(), result)
        }
        IoTask::Thumbnails(pairs) => {
            for (model, picture) in pairs {
                if let Ok(rgba) = load_rgba(&picture, Some(THUMB_PX)) {
                    reply(Reply::Thumbnail(model, rgba));
                }
            }
            Reply::Done
        }
        IoTask::SaveDocument(dir, doc) => match save_document(&dir, &doc, pngs) {
            Ok(()) => Reply::Done,
            Err(e) => Reply::Failed(trf("could not autosave the document: {error}", &[("error", &e)])),
        },
        IoTask::SaveFile(path, doc) => match docfile::write(&path, &doc.versions, doc.current, pngs) {
            Ok(()) => Reply::SavedFile(path, doc.serial, doc.revision),
            Err(e) => Reply::Failed(trf("could not save the document: {error}", &[("error", &e)])),
        },
        IoTask::LoadDocument(dir) => match load_document(&dir) {
            Ok(Some((doc, origin))) => Reply::Document(Box::new(doc), origin),
            Ok(None) => Reply::Done,
            Err(e) => Reply::Failed(trf(
                "could not restore the autosaved document: {error}",
                &[("error", &e)],
            )),
        },
        IoTask::ScanControlNets(folders) => Reply::ControlNets(registry::scan_controlnets(&folders)),
        IoTask::LoadControlImage(path) => match crate::imaging::load_rgb(&path) {
            Ok(img) => Reply::ControlImage(path, std::sync::Arc::new(img)),
            Err(e) => Reply::Failed(e.to_string()),
        },
        IoTask::FindFaces(picture, revision) => {
            let target = crate::request::FixTarget::Faces;
            Reply::Faces(revision, target, face_mask(&picture, target))
        }
        IoTask::FindHands(picture, revision) => {
            let target = crate::request::FixTarget::Hands;
            Reply::Faces(revision, target, face_mask(&picture, target))
        }
        IoTask::SelectPeople(picture, revision, background) => {
            Reply::People(revision, people_mask(&picture, background))
        }
        IoTask::Hint(task) => {
            let u = &task.unit;
            let hint = crate::imaging::ops::prepare_hint(
                &task.image,
                task.mask.as_deref(),
                &u.preprocessor,
                u.processor_res,
                u.pixel_perfect,
                u.resize,
                task.width,
                task.height,
            );
            Reply::Hint(
                task.serial,
                hint.map(|h| {
                    let rgb = crate::imaging::ops::hint_preview(&h);
                    let (width, height) = (rgb.width() as usize, rgb.height() as usize);
                    let rgba = image::DynamicImage::ImageRgb8(rgb).to_rgba8();
                    Rgba {
                        width,
                        height,
                        pixels: rgba.into_raw(),
                    }
                })
                .map_err(|e| e.to_string()),
            )
        }
    };
    reply(single);
}

fn decode_image(name: &str, bytes: &[u8]) -> Reply {
    let img = match crate::imaging::decode(bytes, name) {
        Ok(img) => img,
        Err(e) => return Reply::Failed(e.to_string()),
    };
    let rgba = img.to_rgba8();
    // The same reader as `easel png-info`: any container, any tool, stealth pixels.
    let metadata = match infotext::read_image_bytes(bytes, Path::new(name)) {
        Ok(read) => read.metadata.filter(ImageMetadata::states_anything).map(Box::new),
        Err(e) => {
            tracing::info!("no parameters read from {name}: {e}");
            None
        }
    };
    Reply::Image(
        Rgba {
            width: rgba.width() as usize,
            height: rgba.height() as usize,
            pixels: rgba.into_raw(),
        },
        metadata,
    )
}

fn paste_image() -> Reply {
    let image = arboard::Clipboard::new().and_then(|mut c| c.get_image());
    match image {
        Ok(img) if img.width > 0 && img.height > 0 && img.bytes.len() == img.width * img.height * 4 => {
            // A pasted picture has no file around it; only stealth bits can carry its settings.
            let pixels = infotext::stealth::Pixels {
                width: img.width,
                height: img.height,
                has_alpha: true,
                rgba: &img.bytes,
            };
            let metadata = infotext::stealth::read(&pixels)
                .and_then(|text| infotext::read_infotext(&text))
                .filter(ImageMetadata::states_anything)
                .map(|mut m| {
                    infotext::read::STEALTH_SOURCE.clone_into(&mut m.source);
                    Box::new(m)
                });
            Reply::Image(
                Rgba {
                    width: img.width,
                    height: img.height,
                    pixels: img.bytes.into_owned(),
                },
                metadata,
            )
        }
        Ok(_) => Reply::Failed(tr("the clipboard image has an unexpected layout").into()),
        Err(arboard::Error::ContentNotAvailable) => Reply::Failed(tr("the clipboard holds no image").into()),
        Err(e) => Reply::Failed(trf("could not read the clipboard: {error}", &[("error", &e)])),
    }
}

/// Writes the document as [`AUTOSAVE_FILE`] into `dir`, and its [`Origin`] beside it (each
/// through a temporary file and a rename); the `image.png` and `mask.png` of older autosaves go
/// once it is written.
pub fn save_document(dir: &Path, doc: &DocumentSave, pngs: &mut PngCache) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    docfile::write(&dir.join(AUTOSAVE_FILE), &doc.versions, doc.current, pngs).map_err(|e| e.to_string())?;
    let origin = dir.join(ORIGIN_FILE);
    let tmp = docfile::temporary_beside(&origin).unwrap_or_else(|| dir.join(".origin.tmp"));
    let json = serde_json::to_vec_pretty(&doc.origin).map_err(|e| e.to_string())?;
    std::fs::write(&tmp, json)
        .and_then(|()| std::fs::rename(&tmp, &origin))
        .map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            format!("{}: {e}", origin.display())
        })?;
    for old in ["image.png", "mask.png"] {
        // Best effort: they are only read when no document file is there.
        let _ = std::fs::remove_file(dir.join(old));
    }
    Ok(())
}

/// Reads what [`save_document`] wrote, or else the `image.png` and `mask.png` of an older Easel's
/// autosave; `Ok(None)` when there is neither. An unreadable origin is no origin.
pub fn load_document(dir: &Path) -> Result<Option<(docfile::Opened, Origin)>, docfile::FileError> {
    let file = dir.join(AUTOSAVE_FILE);
    if file.exists() {
        let origin = std::fs::read(dir.join(ORIGIN_FILE))
            .ok()
            .and_then(|json| serde_json::from_slice(&json).ok())
            .unwrap_or_default();
        return docfile::read(&file).map(|doc| Some((doc, origin)));
    }
    Ok(docfile::read_old_autosave(dir).map(|version| {
        let opened = docfile::Opened {
            versions: vec![version],
            current: 0,
        };
        (opened, Origin::default())
    }))
}

fn parameters_of(path: &Path) -> Option<String> {
    infotext::read_image_file(path)
        .ok()?
        .metadata
        .filter(ImageMetadata::states_anything)
        .map(|m| m.infotext())
}

fn load_rgba(path: &Path, max_side: Option<u32>) -> Result<Rgba, String> {
    let img = image::open(path).map_err(|e| {
        trf(
            "could not open {path}: {error}",
            &[("path", &path.display()), ("error", &e)],
        )
    })?;
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

fn save(dir: &Path, image: &GeneratedImage, format: OutputFormat) -> Result<Reply, String> {
    std::fs::create_dir_all(dir).map_err(|e| {
        trf(
            "could not create {path}: {error}",
            &[("path", &dir.display()), ("error", &e)],
        )
    })?;
    let prompt = infotext::parse(&image.infotext)
        .map(|p| p.prompt)
        .unwrap_or_default();
    let path = super::output_name::output_path(dir, image.seed, &prompt, format.extension());
    infotext::write_image_with_parameters(
        &path,
        format,
        image.width,
        image.height,
        &image.rgb,
        &image.infotext,
    )
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
        .filter(|p| OutputFormat::from_path(p).is_some())
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

/// MediaPipe's selfie segmentation of `picture` at probability 0.5 (as `easel detect people`): the
/// people, or with `background` everything else. Whether any pixel was selected comes with it.
fn people_mask(picture: &image::RgbImage, background: bool) -> Result<(bool, image::GrayImage), String> {
    let people = crate::detect::segment::segment_people(picture)
        .map_err(|e| trf("could not look for people: {error}", &[("error", &e)]))?;
    let mut mask = people.to_mask(0.5);
    let found = mask.pixels().any(|p| p.0[0] > 0);
    if background {
        image::imageops::invert(&mut mask);
    }
    let selected = mask.pixels().any(|p| p.0[0] > 0);
    Ok((found && selected, mask))
}

/// ADetailer's mask of every face or hand, with its score (the Fix flow's detector and its
/// defaults).
fn face_mask(
    picture: &image::RgbImage,
    target: crate::request::FixTarget,
) -> Result<Vec<(f32, image::GrayImage)>, String> {
    let fix = crate::request::FixSettings {
        target,
        ..crate::request::FixSettings::default()
    };
    let found = match target {
        crate::request::FixTarget::Faces => {
            crate::detect::detect_faces(picture, crate::detect::FaceModel::Short, fix.confidence)
                .map_err(|e| trf("could not look for faces: {error}", &[("error", &e)]))?
        }
        crate::request::FixTarget::Hands => crate::detect::hands::detect_hands(picture, fix.confidence, None)
            .map_err(|e| trf("could not look for hands: {error}", &[("error", &e)]))?,
    };
    let (w, h) = picture.dimensions();
    Ok(found
        .iter()
        .filter_map(|d| crate::detect::adetailer_box_mask(d, w, h, fix.dilate_erode).map(|m| (d.score, m)))
        .collect())
}
