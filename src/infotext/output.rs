//! Output files with the infotext inside: PNG (`parameters` text chunk, the default), JPEG and
//! WebP with A1111's EXIF UserComment (`UNICODE\0` + UTF-16 BE), each written atomically.

use std::fmt;
use std::path::{Path, PathBuf};

use image::ImageEncoder as _;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::exif;
use super::png_chunks::{self, PngMetaError};

/// JPEG quality A1111 uses by default (`jpeg_quality` option).
pub const JPEG_QUALITY: u8 = 80;

/// Largest EXIF block a JPEG APP1 segment holds: 65535 minus the length field and `Exif\0\0`.
const MAX_JPEG_EXIF_BYTES: usize = 65535 - 2 - 6;

/// The file format of generated images.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum OutputFormat {
    /// PNG with a `parameters` text chunk (A1111's default).
    #[default]
    #[serde(rename = "png")]
    Png,
    /// JPEG (quality 80) with the infotext in EXIF UserComment.
    #[serde(rename = "jpeg")]
    Jpeg,
    /// Lossless WebP with the infotext in EXIF UserComment.
    #[serde(rename = "webp")]
    WebP,
}

impl OutputFormat {
    /// Every format, in the order the app lists them.
    pub const ALL: [OutputFormat; 3] = [OutputFormat::Png, OutputFormat::Jpeg, OutputFormat::WebP];

    /// The name used on the command line and in settings.
    pub fn name(self) -> &'static str {
        match self {
            OutputFormat::Png => "png",
            OutputFormat::Jpeg => "jpeg",
            OutputFormat::WebP => "webp",
        }
    }

    /// The file extension written.
    pub fn extension(self) -> &'static str {
        match self {
            OutputFormat::Png => "png",
            OutputFormat::Jpeg => "jpg",
            OutputFormat::WebP => "webp",
        }
    }

    /// Looks a format up by name or extension (`png`, `jpeg`, `jpg`, `webp`), any case.
    pub fn from_name(name: &str) -> Option<Self> {
        match name.trim().to_ascii_lowercase().as_str() {
            "png" => Some(OutputFormat::Png),
            "jpeg" | "jpg" => Some(OutputFormat::Jpeg),
            "webp" => Some(OutputFormat::WebP),
            _ => None,
        }
    }

    /// The format a file name's extension names, if any.
    pub fn from_path(path: &Path) -> Option<Self> {
        path.extension()
            .and_then(|e| e.to_str())
            .and_then(Self::from_name)
    }
}

impl fmt::Display for OutputFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why an image could not be written; each names the file.
#[derive(Debug, Error)]
pub enum OutputError {
    /// Writing a PNG failed (or the atomic write of any format).
    #[error(transparent)]
    Png(#[from] PngMetaError),
    /// The encoder rejected the image.
    #[error("could not encode {format}: {message} (file: {})", path.display())]
    Encode {
        /// Format being written.
        format: OutputFormat,
        /// Target file.
        path: PathBuf,
        /// The encoder's message.
        message: String,
    },
    /// The infotext does not fit in a JPEG's EXIF segment.
    #[error(
        "could not write JPEG: the parameters take {bytes} bytes as EXIF, more than the {MAX_JPEG_EXIF_BYTES} a JPEG segment holds; use PNG or WebP for prompts this long (file: {})",
        path.display()
    )]
    TooLongForJpeg {
        /// Target file.
        path: PathBuf,
        /// Size of the EXIF block.
        bytes: usize,
    },
}

/// Writes an RGB8 image in `format` with `parameters` as A1111 stores it, atomically (temporary
/// file in the same folder, then rename).
///
/// # Errors
/// A pixel buffer of the wrong size, an encoder error, infotext too long for JPEG EXIF, or an
/// I/O error; each names the path.
///
/// Empty `parameters` write no text chunk or EXIF block at all (a picture without settings).
pub fn write_image_with_parameters(
    path: &Path,
    format: OutputFormat,
    width: u32,
    height: u32,
    rgb: &[u8],
    parameters: &str,
) -> Result<(), OutputError> {
    let expected = (width as usize)
        .checked_mul(height as usize)
        .and_then(|n| n.checked_mul(3));
    if format == OutputFormat::Png || expected != Some(rgb.len()) {
        // The PNG writer also reports a wrong buffer size, with the numbers.
        let chunks: &[(&str, &str)] = if parameters.is_empty() {
            &[]
        } else {
            &[(png_chunks::PARAMETERS_KEYWORD, parameters)]
        };
        return Ok(png_chunks::write_png_with_text_chunks(
            path, width, height, rgb, chunks,
        )?);
    }
    let block = (!parameters.is_empty()).then(|| exif::user_comment_block(parameters));
    let encode_error = |e: image::ImageError| OutputError::Encode {
        format,
        path: path.to_owned(),
        message: e.to_string(),
    };
    let mut bytes = Vec::new();
    match format {
        OutputFormat::Jpeg => {
            if let Some(block) = &block
                && block.len() > MAX_JPEG_EXIF_BYTES
            {
                return Err(OutputError::TooLongForJpeg {
                    path: path.to_owned(),
                    bytes: block.len(),
                });
            }
            let mut encoder = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, JPEG_QUALITY);
            if let Some(block) = block {
                encoder
                    .set_exif_metadata(block)
                    .map_err(|e| encode_error(image::ImageError::Unsupported(e)))?;
            }
            encoder
                .write_image(rgb, width, height, image::ExtendedColorType::Rgb8)
                .map_err(encode_error)?;
        }
        OutputFormat::WebP => {
            let mut encoder = image::codecs::webp::WebPEncoder::new_lossless(&mut bytes);
            if let Some(block) = block {
                encoder
                    .set_exif_metadata(block)
                    .map_err(|e| encode_error(image::ImageError::Unsupported(e)))?;
            }
            encoder
                .write_image(rgb, width, height, image::ExtendedColorType::Rgb8)
                .map_err(encode_error)?;
        }
        OutputFormat::Png => unreachable!("PNG is written above"),
    }
    png_chunks::write_atomically(path, &bytes)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::infotext::read::read_image_file;

    fn gradient(width: u32, height: u32) -> Vec<u8> {
        (0..width * height * 3).map(|i| (i % 251) as u8).collect()
    }

    #[test]
    fn empty_parameters_write_no_metadata() {
        let dir = tempfile::tempdir().expect("tempdir");
        for format in [OutputFormat::Jpeg, OutputFormat::WebP, OutputFormat::Png] {
            let path = dir.path().join(format!("plain.{}", format.extension()));
            write_image_with_parameters(&path, format, 4, 4, &gradient(4, 4), "").expect("writes");
            assert_eq!(image::open(&path).expect("decodes").width(), 4);
            let read = read_image_file(&path).expect("reads");
            assert!(read.metadata.is_none(), "{format}: no settings were written");
        }
    }

    #[test]
    fn jpeg_and_webp_carry_a1111_user_comment_and_read_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let text = "一只猫 <lora:ink:0.5>\nNegative prompt: blurry\nSteps: 20, Sampler: Euler a, Schedule type: \
                    Automatic, CFG scale: 7, Seed: 42, Size: 16x8, Version: easel 0.1.0";
        for format in [OutputFormat::Jpeg, OutputFormat::WebP, OutputFormat::Png] {
            let path = dir.path().join(format!("out.{}", format.extension()));
            write_image_with_parameters(&path, format, 16, 8, &gradient(16, 8), text).expect("writes");
            let picture = image::open(&path).expect("decodes");
            assert_eq!((picture.width(), picture.height()), (16, 8));
            let read = read_image_file(&path).expect("reads");
            let m = read.metadata.expect("metadata");
            assert_eq!(m.infotext(), text, "{format}");
            assert_eq!(m.seed, Some(42));
            let bytes = std::fs::read(&path).expect("bytes");
            if format != OutputFormat::Png {
                // A1111's block: big-endian TIFF, UNICODE prefix, UTF-16 BE text.
                assert!(bytes.windows(4).any(|w| w == b"MM\0*"), "{format}");
                assert!(bytes.windows(10).any(|w| w == b"UNICODE\0N\x00"), "{format}");
            }
        }
        let names: Vec<_> = std::fs::read_dir(dir.path()).expect("list").collect();
        assert_eq!(names.len(), 3, "no temporary files are left");
    }

    #[test]
    fn overlong_jpeg_parameters_are_refused_with_the_reason() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("long.jpg");
        let text = "x".repeat(40_000);
        let err = write_image_with_parameters(&path, OutputFormat::Jpeg, 2, 2, &gradient(2, 2), &text)
            .expect_err("too long");
        assert!(err.to_string().contains("use PNG or WebP"), "{err}");
        assert!(!path.exists());
        assert_eq!(OutputFormat::from_name("JPG"), Some(OutputFormat::Jpeg));
        assert_eq!(
            OutputFormat::from_path(Path::new("a/b.webp")),
            Some(OutputFormat::WebP)
        );
    }
}
