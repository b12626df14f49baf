//! The `.easel` document file: the picture, its mask, and the earlier (and redoable) versions with
//! their labels, so that a reopened document undoes back through its versions.
//!
//! A zip archive of stored (uncompressed) entries, each layer a PNG:
//!
//! - `document.json`: format name and version, the shown picture's size, which version is shown,
//!   and for each version its size, whether it has a mask entry, and its label;
//! - `picture.png` and `mask.png`: the version shown;
//! - `versions/NNNN.png` (and `versions/NNNN-mask.png` where the mask is not empty): the others,
//!   numbered by their place in the list.
//!
//! Reading trusts nothing: entry sizes, picture sizes and the total decoded size are capped before
//! anything large is allocated, and every problem is an [`FileError`] that says what to do.

use std::collections::HashMap;
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use image::GrayImage;
use serde::{Deserialize, Serialize};

use super::Version;

/// The file extension of Easel documents (without the dot).
pub const EXTENSION: &str = "easel";
/// The `format` value of `document.json`.
pub const FORMAT_NAME: &str = "easel-document";
/// The newest format version this Easel writes and reads.
pub const FORMAT_VERSION: u32 = 1;
/// Most versions a file keeps; older ones are dropped when saving.
pub const MAX_VERSIONS: usize = 20;
/// Most versions a file may list when reading (files from other writers may keep more).
const MAX_VERSIONS_READ: usize = 256;
/// Longest side of any picture in a file, in pixels.
pub const MAX_SIDE_PX: u32 = 16384;
/// Most bytes all the decoded pictures and masks of one file may take (4 bytes a pixel).
pub const MAX_DECODED_BYTES: u64 = 2 << 30;
/// Most bytes `document.json` may have.
const MAX_MANIFEST_BYTES: u64 = 4 << 20;
/// Most bytes one PNG entry may have.
const MAX_ENTRY_BYTES: u64 = 1 << 30;

const MANIFEST: &str = "document.json";
const PICTURE: &str = "picture.png";
const MASK: &str = "mask.png";

/// Why a document file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// The file system refused.
    #[error("could not read {path}: {source}", path = .path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not a zip archive with a `document.json` of this format.
    #[error("{path} is not an Easel document ({why}): only files written by Easel's File > Save are; a picture opens under its own extension (.png, .jpg, .webp)", path = .path.display())]
    NotADocument {
        /// The file.
        path: PathBuf,
        /// What was found instead.
        why: String,
    },
    /// The file was written by a newer Easel.
    #[error("{path} was saved by a newer Easel (document format version {found}; this Easel reads up to version {supported}): update Easel to open it", path = .path.display())]
    TooNew {
        /// The file.
        path: PathBuf,
        /// The file's format version.
        found: u32,
        /// The newest version this build reads.
        supported: u32,
    },
    /// The file is incomplete or some part of it is broken.
    #[error("{path} is damaged and cannot be opened: {why}; the autosaved copy or an earlier save may still open", path = .path.display())]
    Damaged {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// The file asks for more memory than Easel allows a document.
    #[error("{path} is too large to open: {why}", path = .path.display())]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Which limit it passes.
        why: String,
    },
    /// Writing failed; the file that was there (if any) is unchanged.
    #[error("could not save {path}: {why}", path = .path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        why: String,
    },
}

/// `document.json`.
#[derive(Debug, Serialize, Deserialize)]
struct Manifest {
    format: String,
    version: u32,
    /// The shown picture's size.
    width: u32,
    height: u32,
    /// Index of the shown version in `versions`.
    current: usize,
    versions: Vec<ManifestVersion>,
}

/// One version in `document.json`.
#[derive(Debug, Serialize, Deserialize)]
struct ManifestVersion {
    width: u32,
    height: u32,
    /// Whether a mask entry exists (an absent one is empty); the shown version always has one.
    mask: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    label: Option<String>,
}

/// The first fields of `document.json`, read before the rest (a newer format may change the rest).
#[derive(Debug, Deserialize)]
struct Header {
    format: String,
    version: u32,
}

/// A read document: its versions, oldest first, and which one is shown.
#[derive(Debug)]
pub struct Opened {
    /// The versions, oldest first (at least one).
    pub versions: Vec<Version>,
    /// Index of the version shown.
    pub current: usize,
}

/// Encoded pictures of the last save, by [`Version::picture_id`], so that saving again encodes
/// only the pictures that are new.
#[derive(Debug, Default)]
pub struct PngCache {
    pictures: HashMap<u64, Arc<Vec<u8>>>,
}

/// The entry names of version `index` of a file whose shown version is `current`.
fn entry_names(index: usize, current: usize) -> (String, String) {
    if index == current {
        (PICTURE.into(), MASK.into())
    } else {
        (
            format!("versions/{index:04}.png"),
            format!("versions/{index:04}-mask.png"),
        )
    }
}

/// The bytes a version takes decoded, as reading counts them.
fn decoded_bytes(v: &Version) -> u64 {
    u64::from(v.image.width()) * u64::from(v.image.height()) * 4
}

/// The versions a file keeps, so that it opens again: at most [`MAX_VERSIONS`] taking at most
/// `max_bytes` (reading allows [`MAX_DECODED_BYTES`]), dropping the oldest first, then the newest
/// redo steps, never the shown one. Returns the kept range.
fn kept_range(versions: &[Version], current: usize, max_bytes: u64) -> std::ops::Range<usize> {
    let mut start = versions.len().saturating_sub(MAX_VERSIONS).min(current);
    let mut end = versions.len().min(start + MAX_VERSIONS);
    let mut total: u64 = versions[start..end].iter().map(decoded_bytes).sum();
    while total > max_bytes && start < current {
        total -= decoded_bytes(&versions[start]);
        start += 1;
    }
    while total > max_bytes && end > current + 1 {
        end -= 1;
        total -= decoded_bytes(&versions[end]);
    }
    start..end
}

fn encode_png(
    width: u32,
    height: u32,
    raw: &[u8],
    color: image::ExtendedColorType,
) -> Result<Vec<u8>, String> {
    use image::ImageEncoder;
    let mut out = Vec::new();
    image::codecs::png::PngEncoder::new_with_quality(
        &mut out,
        image::codecs::png::CompressionType::Fast,
        image::codecs::png::FilterType::Adaptive,
    )
    .write_image(raw, width, height, color)
    .map_err(|e| e.to_string())?;
    Ok(out)
}

/// Writes `versions` (showing `versions[current]`) as a document to `to`; `cache` keeps the
/// encoded pictures for the next save.
pub fn write_to<W: Write + Seek>(
    to: W,
    versions: &[Version],
    current: usize,
    cache: &mut PngCache,
) -> Result<W, String> {
    if current >= versions.len() {
        return Err(format!(
            "version {current} is shown but there are {} versions",
            versions.len()
        ));
    }
    if let Some(v) = versions
        .iter()
        .find(|v| v.image.width() > MAX_SIDE_PX || v.image.height() > MAX_SIDE_PX)
    {
        return Err(format!(
            "a version is {}×{} pixels, and documents hold pictures up to {MAX_SIDE_PX} pixels a side (Export picture… writes it as a picture)",
            v.image.width(),
            v.image.height()
        ));
    }
    let range = kept_range(versions, current, MAX_DECODED_BYTES);
    let kept = &versions[range.clone()];
    let current = current - range.start;
    let shown = &kept[current];
    let manifest = Manifest {
        format: FORMAT_NAME.into(),
        version: FORMAT_VERSION,
        width: shown.image.width(),
        height: shown.image.height(),
        current,
        versions: kept
            .iter()
            .enumerate()
            .map(|(i, v)| ManifestVersion {
                width: v.image.width(),
                height: v.image.height(),
                mask: i == current || v.mask.as_raw().iter().any(|p| *p > 0),
                label: v.label.clone(),
            })
            .collect(),
    };
    let json = serde_json::to_vec_pretty(&manifest).map_err(|e| e.to_string())?;
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Stored)
        .large_file(false);
    let mut zip = zip::ZipWriter::new(to);
    let zip_err = |e: zip::result::ZipError| e.to_string();
    let io_err = |e: std::io::Error| e.to_string();
    zip.start_file(MANIFEST, options).map_err(zip_err)?;
    zip.write_all(&json).map_err(io_err)?;
    let mut encoded = HashMap::new();
    for (i, (version, entry)) in kept.iter().zip(&manifest.versions).enumerate() {
        let (picture_name, mask_name) = entry_names(i, current);
        let picture = match cache.pictures.get(&version.picture_id) {
            Some(png) => Arc::clone(png),
            None => Arc::new(encode_png(
                version.image.width(),
                version.image.height(),
                version.image.as_raw(),
                image::ExtendedColorType::Rgb8,
            )?),
        };
        zip.start_file(picture_name, options).map_err(zip_err)?;
        zip.write_all(&picture).map_err(io_err)?;
        encoded.insert(version.picture_id, picture);
        if entry.mask {
            let mask = encode_png(
                version.mask.width(),
                version.mask.height(),
                version.mask.as_raw(),
                image::ExtendedColorType::L8,
            )?;
            zip.start_file(mask_name, options).map_err(zip_err)?;
            zip.write_all(&mask).map_err(io_err)?;
        }
    }
    let to = zip.finish().map_err(zip_err)?;
    cache.pictures = encoded;
    Ok(to)
}

/// Writes the document to `path` through a temporary file beside it and a rename, so a failed or
/// interrupted save leaves the file that was there as it was.
pub fn write(
    path: &Path,
    versions: &[Version],
    current: usize,
    cache: &mut PngCache,
) -> Result<(), FileError> {
    let fail = |why: String| FileError::Write {
        path: path.to_path_buf(),
        why,
    };
    let tmp = temporary_beside(path).ok_or_else(|| fail("the path names no file".into()))?;
    let result = (|| {
        let file = std::fs::File::create(&tmp).map_err(|e| e.to_string())?;
        let file = write_to(std::io::BufWriter::new(file), versions, current, cache)?
            .into_inner()
            .map_err(|e| e.to_string())?;
        file.sync_all().map_err(|e| e.to_string())?;
        drop(file);
        std::fs::rename(&tmp, path).map_err(|e| e.to_string())
    })();
    if result.is_err() {
        // Best effort: the temporary file may not even exist.
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(fail)
}

/// A temporary file name beside `path` that no other write (of any thread of this process, or of
/// another process) uses at the same time; `None` when `path` names no file.
pub fn temporary_beside(path: &Path) -> Option<PathBuf> {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let name = path.file_name()?;
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    Some(path.with_file_name(format!(
        ".{}.{}-{n}.tmp",
        name.to_string_lossy(),
        std::process::id()
    )))
}

/// Reads a document file.
pub fn read(path: &Path) -> Result<Opened, FileError> {
    let file = std::fs::File::open(path).map_err(|source| FileError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    read_from(std::io::BufReader::new(file), path)
}

/// Reads a document from `from`; `path` names it in messages.
pub fn read_from<R: Read + Seek>(from: R, path: &Path) -> Result<Opened, FileError> {
    let damaged = |why: String| FileError::Damaged {
        path: path.to_path_buf(),
        why,
    };
    let too_large = |why: String| FileError::TooLarge {
        path: path.to_path_buf(),
        why,
    };
    let mut zip = zip::ZipArchive::new(from).map_err(|e| FileError::NotADocument {
        path: path.to_path_buf(),
        why: format!("not a complete zip archive: {e}"),
    })?;
    let json = match read_entry(&mut zip, MANIFEST, MAX_MANIFEST_BYTES) {
        Ok(json) => json,
        Err(EntryError::Missing) => {
            return Err(FileError::NotADocument {
                path: path.to_path_buf(),
                why: format!("a zip archive without {MANIFEST}"),
            });
        }
        Err(e) => return Err(damaged(e.describe(MANIFEST))),
    };
    let header: Header = serde_json::from_slice(&json).map_err(|e| FileError::NotADocument {
        path: path.to_path_buf(),
        why: format!("{MANIFEST} does not name a format: {e}"),
    })?;
    if header.format != FORMAT_NAME {
        return Err(FileError::NotADocument {
            path: path.to_path_buf(),
            why: format!("its format is '{}'", crate::text::shorten(&header.format, 80)),
        });
    }
    if header.version > FORMAT_VERSION {
        return Err(FileError::TooNew {
            path: path.to_path_buf(),
            found: header.version,
            supported: FORMAT_VERSION,
        });
    }
    if header.version == 0 {
        return Err(damaged(format!("{MANIFEST} gives format version 0")));
    }
    let manifest: Manifest =
        serde_json::from_slice(&json).map_err(|e| damaged(format!("{MANIFEST} cannot be read: {e}")))?;
    check_manifest(&manifest).map_err(|e| match e {
        Check::Damaged(why) => damaged(why),
        Check::TooLarge(why) => too_large(why),
    })?;
    let mut versions = Vec::with_capacity(manifest.versions.len());
    for (i, entry) in manifest.versions.iter().enumerate() {
        let (picture_name, mask_name) = entry_names(i, manifest.current);
        let size = (entry.width, entry.height);
        let picture = read_png(&mut zip, &picture_name, size)
            .map_err(damaged)?
            .into_rgb8();
        let mask = if entry.mask {
            read_png(&mut zip, &mask_name, size)
                .map_err(damaged)?
                .into_luma8()
        } else {
            GrayImage::new(entry.width, entry.height)
        };
        versions.push(Version::new(picture, mask, entry.label.clone()));
    }
    Ok(Opened {
        versions,
        current: manifest.current,
    })
}

enum Check {
    Damaged(String),
    TooLarge(String),
}

/// Checks the sizes and counts of `document.json` before any picture is decoded.
fn check_manifest(m: &Manifest) -> Result<(), Check> {
    if m.versions.is_empty() {
        return Err(Check::Damaged(format!("{MANIFEST} lists no versions")));
    }
    if m.versions.len() > MAX_VERSIONS_READ {
        return Err(Check::TooLarge(format!(
            "it lists {} versions; Easel opens at most {MAX_VERSIONS_READ}",
            m.versions.len()
        )));
    }
    let Some(shown) = m.versions.get(m.current) else {
        return Err(Check::Damaged(format!(
            "{MANIFEST} shows version {} of {}",
            m.current + 1,
            m.versions.len()
        )));
    };
    if (shown.width, shown.height) != (m.width, m.height) {
        return Err(Check::Damaged(format!(
            "{MANIFEST} gives the picture as {}×{} and its version as {}×{}",
            m.width, m.height, shown.width, shown.height
        )));
    }
    if !shown.mask {
        return Err(Check::Damaged(format!("{MANIFEST} gives the picture no mask")));
    }
    let mut total: u64 = 0;
    for v in &m.versions {
        if v.width == 0 || v.height == 0 {
            return Err(Check::Damaged(format!(
                "{MANIFEST} lists a picture of {}×{} pixels",
                v.width, v.height
            )));
        }
        if v.width > MAX_SIDE_PX || v.height > MAX_SIDE_PX {
            return Err(Check::TooLarge(format!(
                "a picture is {}×{} pixels; Easel opens pictures up to {MAX_SIDE_PX} pixels a side",
                v.width, v.height
            )));
        }
        total += u64::from(v.width) * u64::from(v.height) * 4;
    }
    if total > MAX_DECODED_BYTES {
        return Err(Check::TooLarge(format!(
            "its versions would take {} MiB of memory; Easel opens documents up to {} MiB",
            total >> 20,
            MAX_DECODED_BYTES >> 20
        )));
    }
    Ok(())
}

enum EntryError {
    Missing,
    Other(String),
}

impl EntryError {
    fn describe(&self, name: &str) -> String {
        match self {
            EntryError::Missing => format!("{name} is missing"),
            EntryError::Other(why) => format!("{name}: {why}"),
        }
    }
}

/// The bytes of entry `name`, at most `limit` of them; only stored (uncompressed) entries are
/// read, so what an entry claims is what the file holds.
fn read_entry<R: Read + Seek>(
    zip: &mut zip::ZipArchive<R>,
    name: &str,
    limit: u64,
) -> Result<Vec<u8>, EntryError> {
    let entry = match zip.by_name(name) {
        Ok(entry) => entry,
        Err(zip::result::ZipError::FileNotFound) => return Err(EntryError::Missing),
        Err(e) => return Err(EntryError::Other(e.to_string())),
    };
    if entry.compression() != zip::CompressionMethod::Stored {
        return Err(EntryError::Other(format!(
            "it is compressed ({}); Easel documents store their entries uncompressed",
            entry.compression()
        )));
    }
    if entry.size() > limit {
        return Err(EntryError::Other(format!(
            "it has {} MiB, more than the {} MiB allowed",
            entry.size() >> 20,
            limit >> 20
        )));
    }
    // The header's size may lie: reserve little up front, and never read past the limit.
    let mut bytes = Vec::with_capacity(entry.size().min(1 << 20) as usize);
    entry
        .take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| EntryError::Other(format!("cannot be read ({e})")))?;
    if bytes.len() as u64 > limit {
        return Err(EntryError::Other("it is longer than its header says".into()));
    }
    Ok(bytes)
}

/// Decodes PNG entry `name`, which must be `size`; its header is checked before its pixels are
/// decoded, so a small file cannot unpack into a huge picture.
fn read_png<R: Read + Seek>(
    zip: &mut zip::ZipArchive<R>,
    name: &str,
    size: (u32, u32),
) -> Result<image::DynamicImage, String> {
    let bytes = read_entry(zip, name, MAX_ENTRY_BYTES).map_err(|e| e.describe(name))?;
    let reader = || image::ImageReader::with_format(std::io::Cursor::new(&bytes), image::ImageFormat::Png);
    let found = reader()
        .into_dimensions()
        .map_err(|e| format!("{name} is not a readable PNG ({e})"))?;
    if found != size {
        return Err(format!(
            "{name} is {}×{} pixels, but {MANIFEST} says {}×{}",
            found.0, found.1, size.0, size.1
        ));
    }
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(size.0);
    limits.max_image_height = Some(size.1);
    // Room for the decoded picture in its stored layout, up to 16-bit RGBA, and its conversion.
    limits.max_alloc = Some(u64::from(size.0) * u64::from(size.1) * 8 * 2);
    let mut decoder = reader();
    decoder.limits(limits);
    let picture = decoder
        .decode()
        .map_err(|e| format!("{name} is not a readable PNG ({e})"))?;
    Ok(picture)
}

/// The picture and mask of the old autosave (`image.png` and `mask.png` in `dir`), as one
/// version; `None` when there is none (or it cannot be read).
pub fn read_old_autosave(dir: &Path) -> Option<Version> {
    let image = image::open(dir.join("image.png")).ok()?.to_rgb8();
    let mask = image::open(dir.join("mask.png"))
        .ok()
        .map(|m| m.to_luma8())
        .unwrap_or_default();
    Some(Version::new(image, mask, None))
}

/// True when `path` names a document file (by its extension).
pub fn is_document_path(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case(EXTENSION))
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use image::{Luma, Rgb, RgbImage};

    use super::*;

    fn version(w: u32, h: u32, shade: u8, label: Option<&str>) -> Version {
        let image = RgbImage::from_fn(w, h, |x, y| Rgb([shade, (x * 7) as u8, (y * 3) as u8]));
        let mask = GrayImage::from_fn(w, h, |x, _| Luma([if x < w / 2 { shade } else { 0 }]));
        Version::new(image, mask, label.map(str::to_owned))
    }

    fn to_bytes(versions: &[Version], current: usize) -> Vec<u8> {
        write_to(
            Cursor::new(Vec::new()),
            versions,
            current,
            &mut PngCache::default(),
        )
        .unwrap()
        .into_inner()
    }

    fn open(bytes: Vec<u8>) -> Result<Opened, FileError> {
        read_from(Cursor::new(bytes), Path::new("/pictures/cat.easel"))
    }

    /// Rewrites one entry of a document archive (all entries stored again).
    fn with_entry(bytes: Vec<u8>, name: &str, data: Option<&[u8]>) -> Vec<u8> {
        let mut zip = zip::ZipArchive::new(Cursor::new(bytes)).unwrap();
        let mut out = zip::ZipWriter::new(Cursor::new(Vec::new()));
        let options = zip::write::SimpleFileOptions::default();
        for i in 0..zip.len() {
            let mut entry = zip.by_index(i).unwrap();
            let entry_name = entry.name().unwrap().into_owned();
            let mut old = Vec::new();
            entry.read_to_end(&mut old).unwrap();
            if entry_name == name {
                if let Some(data) = data {
                    out.start_file(entry_name, options).unwrap();
                    out.write_all(data).unwrap();
                }
            } else {
                out.start_file(entry_name, options).unwrap();
                out.write_all(&old).unwrap();
            }
        }
        out.finish().unwrap().into_inner()
    }

    fn manifest_of(bytes: &[u8]) -> serde_json::Value {
        let mut zip = zip::ZipArchive::new(Cursor::new(bytes)).unwrap();
        let mut json = Vec::new();
        zip.by_name(MANIFEST).unwrap().read_to_end(&mut json).unwrap();
        serde_json::from_slice(&json).unwrap()
    }

    fn with_manifest(bytes: Vec<u8>, edit: impl FnOnce(&mut serde_json::Value)) -> Vec<u8> {
        let mut manifest = manifest_of(&bytes);
        edit(&mut manifest);
        let json = serde_json::to_vec(&manifest).unwrap();
        with_entry(bytes, MANIFEST, Some(&json))
    }

    fn three() -> Vec<Version> {
        vec![
            version(40, 30, 10, Some("first\nSteps: 3")),
            version(40, 30, 90, None),
            // A version of another size, as when a picture of another size was opened.
            version(24, 16, 200, Some("third")),
        ]
    }

    #[test]
    fn pictures_masks_versions_and_labels_round_trip() {
        let versions = three();
        for current in 0..3 {
            let opened = open(to_bytes(&versions, current)).unwrap();
            assert_eq!(opened.current, current);
            assert_eq!(opened.versions.len(), 3);
            for (read, wrote) in opened.versions.iter().zip(&versions) {
                assert_eq!(read.image, wrote.image);
                assert_eq!(read.mask, wrote.mask);
                assert_eq!(read.label, wrote.label);
            }
        }
    }

    #[test]
    fn the_archive_stores_its_entries_uncompressed_under_the_documented_names() {
        let bytes = to_bytes(&three(), 1);
        let mut zip = zip::ZipArchive::new(Cursor::new(&bytes)).unwrap();
        let mut names: Vec<String> = zip.file_names().map(|n| n.unwrap().into_owned()).collect();
        names.sort();
        assert_eq!(
            names,
            [
                "document.json",
                "mask.png",
                "picture.png",
                "versions/0000-mask.png",
                "versions/0000.png",
                "versions/0002-mask.png",
                "versions/0002.png"
            ]
        );
        for i in 0..zip.len() {
            assert_eq!(
                zip.by_index(i).unwrap().compression(),
                zip::CompressionMethod::Stored
            );
        }
        let manifest = manifest_of(&bytes);
        assert_eq!(manifest["format"], FORMAT_NAME);
        assert_eq!(manifest["version"], FORMAT_VERSION);
        assert_eq!(manifest["current"], 1);
        assert_eq!(
            (manifest["width"].as_u64(), manifest["height"].as_u64()),
            (Some(40), Some(30))
        );
    }

    #[test]
    fn empty_masks_of_other_versions_are_left_out() {
        let mut versions = three();
        versions[0] = Version::new((*versions[0].image).clone(), GrayImage::new(1, 1), None);
        let bytes = to_bytes(&versions, 2);
        let zip = zip::ZipArchive::new(Cursor::new(&bytes)).unwrap();
        assert!(zip.index_for_name("versions/0000-mask.png").is_none());
        let opened = open(bytes).unwrap();
        assert!(opened.versions[0].mask.as_raw().iter().all(|p| *p == 0));
        assert_eq!(opened.versions[0].mask.dimensions(), (40, 30));
    }

    #[test]
    fn only_the_newest_versions_are_kept_and_never_the_shown_one_dropped() {
        let versions: Vec<Version> = (0..25).map(|i| version(8, 8, i, None)).collect();
        let opened = open(to_bytes(&versions, 24)).unwrap();
        assert_eq!(opened.versions.len(), MAX_VERSIONS);
        assert_eq!(opened.current, MAX_VERSIONS - 1);
        assert_eq!(opened.versions[0].image, versions[5].image);
        // Shown early: the older ones go, then the newest redo steps.
        let opened = open(to_bytes(&versions, 2)).unwrap();
        assert_eq!(opened.versions.len(), MAX_VERSIONS);
        assert_eq!(opened.current, 0);
        assert_eq!(opened.versions[0].image, versions[2].image);
        assert_eq!(opened.versions[19].image, versions[21].image);
    }

    #[test]
    fn what_is_saved_opens_again() {
        // Versions that together pass a memory limit of three: the oldest go first, then the
        // newest redo steps.
        let versions: Vec<Version> = (0..6).map(|i| version(4, 4, i, None)).collect();
        let three = 3 * 4 * 4 * 4;
        assert_eq!(kept_range(&versions, 4, three), 3..6);
        assert_eq!(kept_range(&versions, 1, three), 1..4);
        assert_eq!(kept_range(&versions, 1, 1), 1..2, "never without the shown one");
        assert_eq!(kept_range(&versions, 4, MAX_DECODED_BYTES), 0..6);
        // Pictures over the side limit are refused with a way out.
        let huge = vec![version(20_000, 1, 0, None)];
        let err = write_to(Cursor::new(Vec::new()), &huge, 0, &mut PngCache::default()).unwrap_err();
        assert!(err.contains("a version is 20000×1 pixels"), "{err}");
        assert!(err.contains("Export picture…"), "{err}");
    }

    #[test]
    fn a_second_save_reuses_the_encoded_pictures() {
        let versions = three();
        let mut cache = PngCache::default();
        let first = write_to(Cursor::new(Vec::new()), &versions, 2, &mut cache)
            .unwrap()
            .into_inner();
        assert_eq!(cache.pictures.len(), 3);
        let kept: Vec<*const Vec<u8>> = versions
            .iter()
            .map(|v| Arc::as_ptr(&cache.pictures[&v.picture_id()]))
            .collect();
        let second = write_to(Cursor::new(Vec::new()), &versions, 2, &mut cache)
            .unwrap()
            .into_inner();
        assert_eq!(first, second);
        for (v, ptr) in versions.iter().zip(kept) {
            assert_eq!(
                Arc::as_ptr(&cache.pictures[&v.picture_id()]),
                ptr,
                "not encoded again"
            );
        }
        // Pictures no longer saved leave the cache.
        write_to(Cursor::new(Vec::new()), &versions[2..], 0, &mut cache).unwrap();
        assert_eq!(cache.pictures.len(), 1);
    }

    #[test]
    fn saving_goes_through_a_temporary_file_and_replaces_the_old_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("doc.easel");
        std::fs::write(&path, b"old").unwrap();
        write(&path, &three(), 0, &mut PngCache::default()).unwrap();
        assert_eq!(read(&path).unwrap().versions.len(), 3);
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["doc.easel"], "no temporary file is left");
        // A missing folder: an error naming the file, nothing written.
        let nowhere = dir.path().join("missing/doc.easel");
        let err = write(&nowhere, &three(), 0, &mut PngCache::default()).unwrap_err();
        assert!(err.to_string().starts_with("could not save "), "{err}");
        assert!(err.to_string().contains("missing/doc.easel"), "{err}");
        assert!(!dir.path().join("missing").exists());
    }

    #[test]
    fn truncated_files_and_other_files_are_refused_with_what_they_are() {
        let bytes = to_bytes(&three(), 0);
        for cut in [bytes.len() / 2, bytes.len() - 10, 4, 0] {
            let err = open(bytes[..cut].to_vec()).unwrap_err().to_string();
            assert!(
                err.contains("is not an Easel document (not a complete zip archive"),
                "{err}"
            );
            assert!(err.contains("/pictures/cat.easel"), "{err}");
        }
        let png = encode_png(2, 2, &[0; 12], image::ExtendedColorType::Rgb8).unwrap();
        let err = open(png).unwrap_err().to_string();
        assert!(err.contains("is not an Easel document"), "{err}");
        // Another zip archive.
        let other = with_entry(bytes.clone(), MANIFEST, None);
        let err = open(other).unwrap_err().to_string();
        assert!(err.contains("a zip archive without document.json"), "{err}");
        let other = with_manifest(bytes, |m| m["format"] = "something-else".into());
        let err = open(other).unwrap_err().to_string();
        assert!(err.contains("its format is 'something-else'"), "{err}");
    }

    #[test]
    fn a_file_from_a_newer_easel_asks_for_an_update() {
        let bytes = with_manifest(to_bytes(&three(), 0), |m| {
            m["version"] = 7.into();
            m["versions"] = "a new layout".into();
        });
        let err = open(bytes).unwrap_err();
        assert!(
            matches!(
                err,
                FileError::TooNew {
                    found: 7,
                    supported: 1,
                    ..
                }
            ),
            "{err:?}"
        );
        let text = err.to_string();
        assert!(text.contains("document format version 7"), "{text}");
        assert!(text.contains("update Easel"), "{text}");
    }

    #[test]
    fn missing_or_broken_entries_say_which_entry() {
        let bytes = to_bytes(&three(), 1);
        let err = open(with_entry(bytes.clone(), "versions/0002.png", None))
            .unwrap_err()
            .to_string();
        assert!(err.contains("is damaged"), "{err}");
        assert!(err.contains("versions/0002.png is missing"), "{err}");
        let err = open(with_entry(bytes.clone(), MASK, None))
            .unwrap_err()
            .to_string();
        assert!(err.contains("mask.png is missing"), "{err}");
        let err = open(with_entry(
            bytes.clone(),
            PICTURE,
            Some(b"\x89PNG\r\n\x1a\nnot really"),
        ))
        .unwrap_err()
        .to_string();
        assert!(err.contains("picture.png is not a readable PNG"), "{err}");
        let err = open(with_entry(
            bytes.clone(),
            MANIFEST,
            Some(b"{\"format\": \"easel-document\""),
        ))
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("is not an Easel document (document.json does not name a format"),
            "{err}"
        );
        let err = open(with_manifest(bytes.clone(), |m| m["current"] = 9.into()))
            .unwrap_err()
            .to_string();
        assert!(err.contains("document.json shows version 10 of 3"), "{err}");
        let err = open(with_manifest(bytes, |m| m["versions"] = serde_json::json!([])))
            .unwrap_err()
            .to_string();
        assert!(err.contains("document.json lists no versions"), "{err}");
    }

    #[test]
    fn a_picture_of_another_size_than_listed_is_refused_before_decoding() {
        let bytes = to_bytes(&three(), 0);
        // A 4096² picture entry in a file that lists 40×30: its header alone refuses it.
        let big = encode_png(
            4096,
            4096,
            &vec![0; 4096 * 4096 * 3],
            image::ExtendedColorType::Rgb8,
        )
        .unwrap();
        let err = open(with_entry(bytes.clone(), PICTURE, Some(&big)))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("picture.png is 4096×4096 pixels, but document.json says 40×30"),
            "{err}"
        );
        let err = open(with_manifest(bytes, |m| m["versions"][1]["width"] = 41.into()))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("versions/0001.png is 40×30 pixels, but document.json says 41×30"),
            "{err}"
        );
    }

    #[test]
    fn absurd_sizes_and_counts_are_refused_before_anything_is_allocated() {
        let bytes = to_bytes(&three(), 0);
        let err = open(with_manifest(bytes.clone(), |m| {
            m["versions"][2]["height"] = 100_000.into();
        }))
        .unwrap_err();
        assert!(matches!(err, FileError::TooLarge { .. }), "{err:?}");
        assert!(err.to_string().contains("up to 16384 pixels a side"), "{err}");
        // Each side allowed, all together too much.
        let err = open(with_manifest(bytes.clone(), |m| {
            for v in m["versions"].as_array_mut().unwrap() {
                v["width"] = 16384.into();
                v["height"] = 16384.into();
            }
            m["width"] = 16384.into();
            m["height"] = 16384.into();
        }))
        .unwrap_err();
        assert!(err.to_string().contains("would take 3072 MiB of memory"), "{err}");
        let err = open(with_manifest(bytes.clone(), |m| {
            let one = m["versions"][0].clone();
            m["versions"] = serde_json::Value::Array(vec![one; 300]);
        }))
        .unwrap_err();
        assert!(err.to_string().contains("it lists 300 versions"), "{err}");
        let err = open(with_manifest(bytes, |m| m["versions"][1]["width"] = 0.into())).unwrap_err();
        assert!(
            err.to_string().contains("lists a picture of 0×30 pixels"),
            "{err}"
        );
    }

    #[test]
    fn compressed_entries_are_refused_so_nothing_unpacks_beyond_the_file() {
        let mut bytes = to_bytes(&three(), 0);
        // Mark picture.png as deflated in its local and central headers (method field = 8).
        let name = PICTURE.as_bytes();
        let mut marked = 0;
        for at in 0..bytes.len() - 46 {
            let (sig, method_at, name_at) = match &bytes[at..at + 4] {
                b"PK\x03\x04" => ("local", at + 8, at + 30),
                b"PK\x01\x02" => ("central", at + 10, at + 46),
                _ => continue,
            };
            if bytes.get(name_at..name_at + name.len()) == Some(name) {
                bytes[method_at] = 8;
                marked += 1;
                let _ = sig;
            }
        }
        assert_eq!(marked, 2);
        let err = open(bytes).unwrap_err().to_string();
        assert!(err.contains("is damaged"), "{err}");
        assert!(err.contains("picture.png: it is compressed"), "{err}");
    }

    #[test]
    fn corrupted_bytes_inside_an_entry_are_caught() {
        let mut bytes = to_bytes(&three(), 0);
        // Flip a byte in the middle of the archive (inside one of the PNGs): the CRC catches it.
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0x55;
        let err = open(bytes).unwrap_err().to_string();
        assert!(err.contains("is damaged"), "{err}");
    }

    #[test]
    fn no_damaged_byte_or_cut_makes_reading_panic() {
        let versions = vec![version(6, 4, 10, Some("a")), version(3, 5, 200, None)];
        let bytes = to_bytes(&versions, 1);
        let mut refused = 0;
        for at in 0..bytes.len() {
            for flip in [0x01, 0xff] {
                let mut damaged = bytes.clone();
                damaged[at] ^= flip;
                // Some bytes (timestamps, PNG filler) do not matter; the rest must be refused.
                if let Ok(opened) = open(damaged) {
                    assert_eq!(opened.versions.len(), 2);
                } else {
                    refused += 1;
                }
            }
            assert!(open(bytes[..at].to_vec()).is_err(), "cut at {at}");
        }
        assert!(refused > bytes.len(), "{refused} of {} refused", 2 * bytes.len());
    }

    #[test]
    fn document_paths_are_known_by_their_extension() {
        assert!(is_document_path(Path::new("/a/b.easel")));
        assert!(is_document_path(Path::new("B.EASEL")));
        assert!(!is_document_path(Path::new("/a/b.png")));
        assert!(!is_document_path(Path::new("/a/easel")));
    }

    #[test]
    fn the_old_autosave_reads_as_one_version() {
        let dir = tempfile::tempdir().unwrap();
        assert!(read_old_autosave(dir.path()).is_none());
        let v = version(16, 8, 50, None);
        v.image.save(dir.path().join("image.png")).unwrap();
        v.mask.save(dir.path().join("mask.png")).unwrap();
        let old = read_old_autosave(dir.path()).unwrap();
        assert_eq!(old.image, v.image);
        assert_eq!(old.mask, v.mask);
    }
}
