//! The one reader of generation metadata in image files, used by `easel png-info`,
//! `--params-from` and the app's drop and paste: container texts ([`super::containers`]), then
//! the tool that wrote them ([`super::generators`]), then, for PNG and WebP pictures without any,
//! stealth bits in the pixels ([`super::stealth`]).

use std::io::Cursor;
use std::path::{Path, PathBuf};

use thiserror::Error;

use super::containers::{self, ImageKind};
use super::generators;
use super::metadata::ImageMetadata;
use super::png_chunks::PngMetaError;
use super::stealth;

/// Largest picture whose pixels are searched for stealth metadata: 8192 px a side, and at most
/// 256 MiB of decoded pixels (8192 × 8192 RGBA8); larger pictures are not searched.
const MAX_STEALTH_SIDE_PX: u32 = 8192;
const MAX_STEALTH_ALLOC_BYTES: u64 = 256 << 20;

/// What [`ImageMetadata::source`] says for settings found in pixel low bits.
pub const STEALTH_SOURCE: &str = "pixel low bits (stealth pnginfo)";

/// Why an image's metadata could not be read; each names the file.
#[derive(Debug, Error)]
pub enum MetadataError {
    /// The file could not be read.
    #[error("could not read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Not an image format this reader knows.
    #[error("could not read {}: the file is not a PNG, JPEG, WebP or AVIF image", path.display())]
    NotAnImage {
        /// The file.
        path: PathBuf,
    },
    /// A malformed PNG, or a compressed text chunk too large to inflate.
    #[error(transparent)]
    Png(#[from] PngMetaError),
}

/// What an image holds.
#[derive(Debug, Clone)]
pub struct ImageRead {
    /// The container format.
    pub kind: ImageKind,
    /// The keys of every metadata text found, in file order.
    pub keys: Vec<String>,
    /// The generation settings, when any were found.
    pub metadata: Option<ImageMetadata>,
}

/// Reads the generation metadata of the image file at `path`.
///
/// # Errors
/// See [`MetadataError`].
pub fn read_image_file(path: &Path) -> Result<ImageRead, MetadataError> {
    let bytes = crate::system::read_regular(path).map_err(|source| MetadataError::Read {
        path: path.to_owned(),
        source,
    })?;
    read_image_bytes(&bytes, path)
}

/// [`read_image_file`] on bytes in memory; `path` names them in errors.
///
/// # Errors
/// See [`MetadataError`].
pub fn read_image_bytes(bytes: &[u8], path: &Path) -> Result<ImageRead, MetadataError> {
    let (kind, texts) = containers::read_texts(bytes, path)?.ok_or_else(|| MetadataError::NotAnImage {
        path: path.to_owned(),
    })?;
    let keys = texts.iter().map(|(k, _)| k.clone()).collect();
    let mut metadata = generators::recognise(&texts);
    let found = metadata.as_ref().is_some_and(ImageMetadata::states_anything);
    if !found
        && matches!(kind, ImageKind::Png | ImageKind::WebP)
        && let Some(hidden) = stealth_metadata(bytes, kind)
    {
        metadata = Some(hidden);
    }
    Ok(ImageRead { kind, keys, metadata })
}

/// The generation settings in metadata texts already taken out of a file, as (key, text) with
/// the keys [`containers::read_texts`] uses (PNG keywords, `UserComment`, `xmp:…`, `Comment`).
pub fn recognise_texts(texts: &[(String, String)]) -> Option<ImageMetadata> {
    generators::recognise(texts)
}

/// Reads an A1111-form infotext (what the app keeps with a picture) back into metadata.
pub fn read_infotext(text: &str) -> Option<ImageMetadata> {
    let mut m = generators::recognise(&[("parameters".to_owned(), text.to_owned())])?;
    if let Some(source) = m.extra_value("Source") {
        m.generator = source.to_owned();
    }
    Some(m)
}

fn stealth_metadata(bytes: &[u8], kind: ImageKind) -> Option<ImageMetadata> {
    let format = match kind {
        ImageKind::Png => image::ImageFormat::Png,
        ImageKind::WebP => image::ImageFormat::WebP,
        _ => return None,
    };
    let mut reader = image::ImageReader::with_format(Cursor::new(bytes), format);
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_STEALTH_SIDE_PX);
    limits.max_image_height = Some(MAX_STEALTH_SIDE_PX);
    limits.max_alloc = Some(MAX_STEALTH_ALLOC_BYTES);
    reader.limits(limits);
    let picture = reader.decode().ok()?;
    let has_alpha = picture.color().has_alpha();
    let rgba = picture.into_rgba8();
    let pixels = stealth::Pixels {
        width: rgba.width() as usize,
        height: rgba.height() as usize,
        has_alpha,
        rgba: rgba.as_raw(),
    };
    let text = stealth::read(&pixels)?;
    // NovelAI hides a JSON object of its PNG text fields; A1111 hides the infotext itself.
    let texts = match serde_json::from_str::<serde_json::Value>(&text) {
        Ok(serde_json::Value::Object(fields)) if fields.contains_key("Comment") => fields
            .into_iter()
            .filter_map(|(k, v)| match v {
                serde_json::Value::String(s) => Some((k, s)),
                serde_json::Value::Object(_) => Some((k, v.to_string())),
                _ => None,
            })
            .collect(),
        _ => vec![("parameters".to_owned(), text)],
    };
    let mut m = generators::recognise(&texts)?;
    STEALTH_SOURCE.clone_into(&mut m.source);
    Some(m)
}
