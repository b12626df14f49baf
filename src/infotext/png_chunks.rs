//! PNG files with text metadata: writes RGB8 images with A1111's `parameters` chunk atomically,
//! and reads every text chunk back in file order.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use png::chunk::{self, ChunkType};
use png::text_metadata::{ITXtChunk, TEXtChunk};
use png::{Decoded, StreamingDecoder};
use thiserror::Error;

/// The text chunk keyword A1111 stores its infotext under.
pub const PARAMETERS_KEYWORD: &str = "parameters";

const PNG_SIGNATURE: [u8; 8] = [0x89, b'P', b'N', b'G', b'\r', b'\n', 0x1a, b'\n'];

/// Errors from writing or reading PNG files; each names the file.
#[derive(Debug, Error)]
pub enum PngMetaError {
    /// The pixel buffer does not match the image size.
    #[error(
        "could not write PNG: {width}x{height} RGB8 needs {expected} bytes, got {actual} (file: {})",
        path.display()
    )]
    BadPixelBuffer {
        /// Target file.
        path: PathBuf,
        /// Image width in pixels.
        width: u32,
        /// Image height in pixels.
        height: u32,
        /// Bytes needed (width × height × 3), as text since it may overflow `usize`.
        expected: String,
        /// Bytes given.
        actual: usize,
    },
    /// The PNG encoder rejected the image or a text chunk.
    #[error("could not encode PNG: {source} (file: {})", path.display())]
    Encode {
        /// Target file.
        path: PathBuf,
        /// Encoder error.
        source: png::EncodingError,
    },
    /// The target path has no file name.
    #[error("could not write PNG: the path does not name a file (file: {})", path.display())]
    NotAFilePath {
        /// The path given.
        path: PathBuf,
    },
    /// Creating, writing or renaming the file failed.
    #[error("could not write PNG: {source} (file: {})", path.display())]
    Write {
        /// Target file (or the temporary file next to it).
        path: PathBuf,
        /// I/O error.
        source: io::Error,
    },
    /// Reading the file failed.
    #[error("could not read PNG: {source} (file: {})", path.display())]
    Read {
        /// File read.
        path: PathBuf,
        /// I/O error.
        source: io::Error,
    },
    /// The file does not start with the PNG signature.
    #[error(
        "could not read PNG metadata: the compressed text chunk '{keyword}' is corrupt or inflates to more than {} KiB, which no generator writes (file: {})",
        MAX_TEXT_BYTES / 1024,
        path.display()
    )]
    TextTooLarge {
        /// The file.
        path: PathBuf,
        /// The chunk's keyword.
        keyword: String,
    },
    /// Not a PNG at all.
    #[error("could not read PNG: the file is not a PNG image (no PNG signature) (file: {})", path.display())]
    NotPng {
        /// File read.
        path: PathBuf,
    },
    /// The PNG is malformed, or a compressed text chunk cannot be inflated.
    #[error("could not read PNG: {source} (file: {})", path.display())]
    Decode {
        /// File read.
        path: PathBuf,
        /// Decoder error.
        source: png::DecodingError,
    },
    /// The file ends before the `IEND` chunk.
    #[error("could not read PNG: the file is truncated (no IEND chunk) (file: {})", path.display())]
    Truncated {
        /// File read.
        path: PathBuf,
    },
}

/// Writes an RGB8 image as PNG with a `parameters` text chunk, atomically (temp file in the same dir + rename).
///
/// The chunk is tEXt when the text is Latin-1 encodable, else uncompressed UTF-8 iTXt, as
/// PIL's `PngInfo.add_text` (used by A1111's `images.save_image_with_geninfo`) does.
///
/// # Errors
/// A pixel buffer whose length is not `width * height * 3`, an encoder error, or an I/O error
/// writing the file; each names the path.
pub fn write_png_with_parameters(
    path: &Path,
    width: u32,
    height: u32,
    rgb: &[u8],
    parameters: &str,
) -> Result<(), PngMetaError> {
    write_png_with_text_chunks(path, width, height, rgb, &[(PARAMETERS_KEYWORD, parameters)])
}

/// Writes an RGB8 image as PNG with the given (keyword, text) chunks in order, atomically.
///
/// Each chunk is tEXt when its text is Latin-1 encodable, else uncompressed UTF-8 iTXt.
/// Keywords must be 1–79 Latin-1 characters.
///
/// # Errors
/// As [`write_png_with_parameters`]; a bad keyword is an encoder error.
pub fn write_png_with_text_chunks(
    path: &Path,
    width: u32,
    height: u32,
    rgb: &[u8],
    chunks: &[(&str, &str)],
) -> Result<(), PngMetaError> {
    let expected = (width as usize)
        .checked_mul(height as usize)
        .and_then(|n| n.checked_mul(3));
    if expected != Some(rgb.len()) {
        return Err(PngMetaError::BadPixelBuffer {
            path: path.to_owned(),
            width,
            height,
            expected: expected.map_or_else(|| "more than usize::MAX".to_owned(), |n| n.to_string()),
            actual: rgb.len(),
        });
    }

    let encode_error = |source| PngMetaError::Encode {
        path: path.to_owned(),
        source,
    };
    let mut bytes = Vec::new();
    let mut encoder = png::Encoder::new(&mut bytes, width, height);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().map_err(encode_error)?;
    // Written one by one after IHDR: the encoder's own lists would group chunks by type.
    for &(keyword, text) in chunks {
        let written = if is_latin1(text) {
            writer.write_text_chunk(&TEXtChunk::new(keyword, text))
        } else {
            writer.write_text_chunk(&ITXtChunk::new(keyword, text))
        };
        written.map_err(encode_error)?;
    }
    writer.write_image_data(rgb).map_err(encode_error)?;
    writer.finish().map_err(encode_error)?;

    write_atomically(path, &bytes)
}

/// All text chunks (tEXt, zTXt, iTXt) of a PNG as (keyword, text), in file order.
///
/// # Errors
/// The file cannot be read, is not a PNG, is malformed or truncated, or has a compressed text
/// chunk that does not inflate; each names the path. Text chunks that the PNG decoder finds
/// corrupt (bad CRC, bad keyword) are skipped, as PNG readers do with bad ancillary chunks.
pub fn read_png_text_chunks(path: &Path) -> Result<Vec<(String, String)>, PngMetaError> {
    let bytes = crate::system::read_regular(path).map_err(|source| PngMetaError::Read {
        path: path.to_owned(),
        source,
    })?;
    text_chunks_of(&bytes, path)
}

/// [`read_png_text_chunks`] on bytes already in memory (dropped or pasted images). Not a PNG → empty.
///
/// # Errors
/// A malformed or truncated PNG.
pub fn read_png_text_chunks_from_bytes(bytes: &[u8]) -> Result<Vec<(String, String)>, PngMetaError> {
    if !bytes.starts_with(&PNG_SIGNATURE) {
        return Ok(Vec::new());
    }
    text_chunks_of(bytes, Path::new("<memory>"))
}

/// The most a compressed text chunk may inflate to: 1 MiB (A1111 infotexts are a few KiB; ComfyUI
/// workflows rarely pass 200 KiB). Larger ones are refused before they are inflated further, so a
/// small file cannot make the reader allocate gigabytes.
pub const MAX_TEXT_BYTES: usize = 1 << 20;

/// The text chunks of a PNG already in memory; `path` names it in errors.
pub(crate) fn text_chunks_of(bytes: &[u8], path: &Path) -> Result<Vec<(String, String)>, PngMetaError> {
    if !bytes.starts_with(&PNG_SIGNATURE) {
        return Err(PngMetaError::NotPng {
            path: path.to_owned(),
        });
    }
    let decode_error = |source| PngMetaError::Decode {
        path: path.to_owned(),
        source,
    };

    // The streaming decoder walks every chunk, before and after IDAT, without inflating the
    // image data (it gets no output buffer). Each text chunk it parses is appended to the
    // matching list in its `Info`, so the newest entry is the chunk just completed.
    let mut decoder = StreamingDecoder::new();
    let mut rest = bytes;
    let mut texts = Vec::new();
    loop {
        let (consumed, event) = decoder.update(rest, None).map_err(decode_error)?;
        rest = &rest[consumed..];
        match event {
            Decoded::ChunkComplete(chunk::IEND) => break,
            Decoded::ChunkComplete(kind) => match completed_text_chunk(&decoder, kind) {
                Ok(Some(text)) => texts.push(text),
                Ok(None) => {}
                Err(TextError::TooLarge(keyword)) => {
                    return Err(PngMetaError::TextTooLarge {
                        path: path.to_owned(),
                        keyword,
                    });
                }
                Err(TextError::Png(e)) => return Err(decode_error(e)),
            },
            Decoded::Nothing if rest.is_empty() => {
                return Err(PngMetaError::Truncated {
                    path: path.to_owned(),
                });
            }
            _ => {}
        }
    }
    Ok(texts)
}

/// Why a completed text chunk could not be read.
enum TextError {
    /// It does not inflate within [`MAX_TEXT_BYTES`] (too large, or corrupt); the keyword.
    TooLarge(String),
    /// The decoder's own error.
    Png(png::DecodingError),
}

/// Inflates a copy of a compressed chunk within [`MAX_TEXT_BYTES`] (the bounded inflate stops at the
/// limit instead of allocating the whole output) and returns its text.
fn bounded<T>(
    keyword: &str,
    mut chunk: T,
    inflate: impl FnOnce(&mut T) -> Result<(), png::DecodingError>,
    text: impl FnOnce(&T) -> Result<String, png::DecodingError>,
) -> Result<(String, String), TextError> {
    inflate(&mut chunk).map_err(|_| TextError::TooLarge(keyword.to_owned()))?;
    Ok((keyword.to_owned(), text(&chunk).map_err(TextError::Png)?))
}

/// The (keyword, text) of the text chunk of type `kind` that the decoder has just completed.
fn completed_text_chunk(
    decoder: &StreamingDecoder,
    kind: ChunkType,
) -> Result<Option<(String, String)>, TextError> {
    let Some(info) = decoder.info() else {
        return Ok(None);
    };
    match kind {
        chunk::tEXt => Ok(info
            .uncompressed_latin1_text
            .last()
            .map(|c| (c.keyword.clone(), utf8_if_valid(&c.text)))),
        chunk::zTXt => info
            .compressed_latin1_text
            .last()
            .map(|c| {
                bounded(
                    &c.keyword,
                    c.clone(),
                    |c| c.decompress_text_with_limit(MAX_TEXT_BYTES),
                    |c| c.get_text().map(|text| utf8_if_valid(&text)),
                )
            })
            .transpose(),
        chunk::iTXt => info
            .utf8_text
            .last()
            .map(|c| {
                bounded(
                    &c.keyword,
                    c.clone(),
                    |c| c.decompress_text_with_limit(MAX_TEXT_BYTES),
                    ITXtChunk::get_text,
                )
            })
            .transpose(),
        _ => Ok(None),
    }
}

/// tEXt and zTXt are Latin-1 by the PNG spec, but some tools (Stability Matrix, NovelAI, ComfyUI
/// savers) write UTF-8 bytes into them. The decoder maps each byte to one character; when those
/// bytes form valid UTF-8 with at least one multi-byte character, that is what was meant (Latin-1
/// text that happens to be valid UTF-8 needs pairs such as "Ã©", which real prompts do not have).
fn utf8_if_valid(latin1: &str) -> String {
    if latin1.is_ascii() {
        return latin1.to_owned();
    }
    let bytes: Option<Vec<u8>> = latin1.chars().map(|c| u8::try_from(u32::from(c)).ok()).collect();
    match bytes.map(String::from_utf8) {
        Some(Ok(text)) => text,
        _ => latin1.to_owned(),
    }
}

fn is_latin1(text: &str) -> bool {
    text.chars().all(|c| u32::from(c) <= 0xff)
}

/// Removes temporary files that an earlier, killed write of `file_name` left in `dir`
/// (`.NAME.<pid>-<n>.tmp`): those of processes that no longer run (on Linux, no `/proc/<pid>`)
/// or, where that cannot be told, older than an hour. Files of this process are left alone.
fn sweep_stale_temps(dir: &Path, file_name: &std::ffi::OsStr) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    let prefix = format!(".{}.", file_name.to_string_lossy());
    let me = std::process::id();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let Some(pid) = name
            .strip_prefix(&prefix)
            .and_then(|rest| rest.strip_suffix(".tmp"))
            .and_then(|rest| rest.split_once('-'))
            .and_then(|(pid, n)| n.parse::<u64>().ok().and(pid.parse::<u32>().ok()))
        else {
            continue;
        };
        if pid == me || !entry.file_type().is_ok_and(|t| t.is_file()) {
            continue;
        }
        let proc_dir = Path::new("/proc");
        let gone = if proc_dir.join("self").exists() {
            !proc_dir.join(pid.to_string()).exists()
        } else {
            entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age.as_secs() > 3600)
        };
        if gone {
            let _ = fs::remove_file(entry.path());
        }
    }
}

/// Writes `bytes` to a new temporary file next to `path`, flushes it to disk and renames it over
/// `path`, so readers see either the old file or the whole new one.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), PngMetaError> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);

    let file_name = path.file_name().ok_or_else(|| PngMetaError::NotAFilePath {
        path: path.to_owned(),
    })?;
    let dir = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };

    sweep_stale_temps(dir, file_name);
    let (tmp_path, mut file) = loop {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let mut tmp_name = std::ffi::OsString::from(".");
        tmp_name.push(file_name);
        tmp_name.push(format!(".{}-{n}.tmp", std::process::id()));
        let tmp_path = dir.join(tmp_name);
        match OpenOptions::new().write(true).create_new(true).open(&tmp_path) {
            Ok(file) => break (tmp_path, file),
            // A stale file from a crashed run: try the next name.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(source) => {
                return Err(PngMetaError::Write {
                    path: tmp_path,
                    source,
                });
            }
        }
    };

    let written = file
        .write_all(bytes)
        .and_then(|()| file.sync_all())
        .and_then(|()| {
            drop(file);
            fs::rename(&tmp_path, path)
        });
    if let Err(source) = written {
        // The write already failed and that error is returned; a temp file we cannot remove
        // is only litter, so its removal error is not reported on top.
        let _ = fs::remove_file(&tmp_path);
        return Err(PngMetaError::Write {
            path: path.to_owned(),
            source,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gradient(width: u32, height: u32) -> Vec<u8> {
        (0..width * height * 3).map(|i| (i % 251) as u8).collect()
    }

    /// Chunk types of a PNG file in order, from its raw bytes.
    fn chunk_types(bytes: &[u8]) -> Vec<String> {
        let mut types = Vec::new();
        let mut pos = PNG_SIGNATURE.len();
        while pos + 8 <= bytes.len() {
            let len = u32::from_be_bytes(bytes[pos..pos + 4].try_into().expect("4 bytes")) as usize;
            types.push(String::from_utf8_lossy(&bytes[pos + 4..pos + 8]).into_owned());
            pos += 12 + len;
        }
        types
    }

    fn decode_pixels(path: &Path) -> (u32, u32, Vec<u8>) {
        let decoder = png::Decoder::new(io::BufReader::new(fs::File::open(path).expect("open")));
        let mut reader = decoder.read_info().expect("png header");
        let mut buf = vec![0; reader.output_buffer_size().expect("size")];
        let info = reader.next_frame(&mut buf).expect("pixels");
        buf.truncate(info.buffer_size());
        (info.width, info.height, buf)
    }

    #[test]
    fn chinese_prompt_round_trips_as_itxt() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("猫.png");
        let text = "一只可爱的猫，坐在窗台上\nNegative prompt: 低质量\nSteps: 20, Sampler: Euler a, \
                    Schedule type: Automatic, CFG scale: 7, Seed: 1, Size: 8x4, Version: easel 0.1.0";
        let rgb = gradient(8, 4);
        write_png_with_parameters(&path, 8, 4, &rgb, text).expect("writes");

        let chunks = read_png_text_chunks(&path).expect("reads");
        assert_eq!(chunks, vec![("parameters".to_owned(), text.to_owned())]);
        let types = chunk_types(&fs::read(&path).expect("bytes"));
        assert_eq!(types, ["IHDR", "iTXt", "IDAT", "IEND"]);
        assert_eq!(decode_pixels(&path), (8, 4, rgb));
    }

    #[test]
    fn latin1_text_round_trips_as_text() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("cafe.png");
        let text = "café au lait, crème brûlée\nSteps: 20, Seed: 1, Size: 2x2";
        write_png_with_parameters(&path, 2, 2, &gradient(2, 2), text).expect("writes");

        assert_eq!(
            read_png_text_chunks(&path).expect("reads"),
            vec![("parameters".to_owned(), text.to_owned())]
        );
        let bytes = fs::read(&path).expect("bytes");
        assert_eq!(chunk_types(&bytes), ["IHDR", "tEXt", "IDAT", "IEND"]);
        // Latin-1 on disk: 'é' is the single byte 0xE9, as PIL writes it.
        assert!(bytes.windows(4).any(|w| w == b"caf\xe9"));
    }

    #[test]
    fn utf8_in_text_chunks_reads_as_utf8_and_latin1_stays_latin1() {
        let mut bytes = Vec::new();
        let mut encoder = png::Encoder::new(&mut bytes, 1, 1);
        encoder.set_color(png::ColorType::Grayscale);
        let mut writer = encoder.write_header().expect("header");
        writer
            .write_chunk(chunk::tEXt, "parameters\0少女, 桜".as_bytes())
            .expect("utf-8 tEXt");
        writer
            .write_chunk(chunk::tEXt, b"Comment\0caf\xe9")
            .expect("latin-1 tEXt");
        let mut ztxt = b"Title\0\0".to_vec();
        ztxt.extend(miniz_oxide::deflate::compress_to_vec_zlib("日本語".as_bytes(), 6));
        writer.write_chunk(chunk::zTXt, &ztxt).expect("utf-8 zTXt");
        writer.write_image_data(&[0]).expect("pixels");
        writer.finish().expect("finish");
        let chunks = read_png_text_chunks_from_bytes(&bytes).expect("reads");
        let expected = [
            ("parameters", "少女, 桜"),
            ("Comment", "café"),
            ("Title", "日本語"),
        ];
        let got: Vec<(&str, &str)> = chunks.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(got, expected);
    }

    #[test]
    fn several_chunks_keep_their_order() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("multi.png");
        let chunks = [("parameters", "a"), ("extras", "ünïcödé ✓"), ("Comment", "plain")];
        write_png_with_text_chunks(&path, 1, 1, &[1, 2, 3], &chunks).expect("writes");
        let read = read_png_text_chunks(&path).expect("reads");
        let read: Vec<(&str, &str)> = read.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(read, chunks);
    }

    #[test]
    fn atomic_write_leaves_only_the_target() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("out.png");
        write_png_with_parameters(&path, 2, 2, &gradient(2, 2), "first").expect("writes");
        write_png_with_parameters(&path, 3, 1, &gradient(3, 1), "second").expect("overwrites");

        let names: Vec<_> = fs::read_dir(dir.path())
            .expect("list")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names, ["out.png"]);
        assert_eq!(
            read_png_text_chunks(&path).expect("reads"),
            vec![("parameters".to_owned(), "second".to_owned())]
        );
        assert_eq!(decode_pixels(&path).0, 3);
    }

    #[test]
    fn failed_write_leaves_no_temp_file_and_keeps_the_old_image() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("keep.png");
        write_png_with_parameters(&path, 1, 1, &[0, 0, 0], "old").expect("writes");

        // A directory in the way makes the final rename fail.
        let blocked = dir.path().join("blocked.png");
        fs::create_dir(&blocked).expect("mkdir");
        fs::write(blocked.join("x"), b"x").expect("fill dir");
        let err = write_png_with_parameters(&blocked, 1, 1, &[0, 0, 0], "new")
            .expect_err("rename onto a directory fails");
        assert!(err.to_string().contains("blocked.png"), "{err}");

        let mut names: Vec<_> = fs::read_dir(dir.path())
            .expect("list")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["blocked.png", "keep.png"]);
        assert_eq!(read_png_text_chunks(&path).expect("reads")[0].1, "old");
    }

    #[test]
    fn wrong_pixel_count_is_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("bad.png");
        let err = write_png_with_parameters(&path, 4, 4, &[0; 10], "x").expect_err("too short");
        let message = err.to_string();
        assert!(message.contains("needs 48 bytes, got 10"), "{message}");
        assert!(message.contains("bad.png"), "{message}");
        assert!(!path.exists());
    }

    #[test]
    fn reading_a_non_png_names_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("notes.txt");
        fs::write(&path, "hello, not an image").expect("write");
        let err = read_png_text_chunks(&path).expect_err("not a PNG");
        assert!(matches!(err, PngMetaError::NotPng { .. }));
        assert_eq!(
            err.to_string(),
            format!(
                "could not read PNG: the file is not a PNG image (no PNG signature) (file: {})",
                path.display()
            )
        );

        let missing = dir.path().join("missing.png");
        let err = read_png_text_chunks(&missing).expect_err("no file");
        assert!(matches!(err, PngMetaError::Read { .. }));
        assert!(err.to_string().contains("missing.png"), "{err}");
    }

    #[test]
    fn truncated_png_is_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("cut.png");
        write_png_with_parameters(&path, 2, 2, &gradient(2, 2), "abc").expect("writes");
        let bytes = fs::read(&path).expect("bytes");
        fs::write(&path, &bytes[..bytes.len() - 12]).expect("truncate");
        let err = read_png_text_chunks(&path).expect_err("no IEND");
        assert!(matches!(err, PngMetaError::Truncated { .. }), "{err}");
        assert!(err.to_string().contains("cut.png"), "{err}");
    }

    /// A PNG whose only text is a zTXt or compressed iTXt `parameters` chunk of `text`.
    fn compressed_text_png(text: &str, itxt: bool) -> Vec<u8> {
        let mut bytes = Vec::new();
        let mut encoder = png::Encoder::new(&mut bytes, 1, 1);
        encoder.set_color(png::ColorType::Grayscale);
        let mut writer = encoder.write_header().expect("header");
        let deflated = miniz_oxide::deflate::compress_to_vec_zlib(text.as_bytes(), 9);
        let (kind, mut data) = if itxt {
            // keyword, NUL, compressed flag, method, empty language tag and translated keyword.
            (chunk::iTXt, b"parameters\0\x01\x00\0\0".to_vec())
        } else {
            (chunk::zTXt, b"parameters\0\x00".to_vec())
        };
        data.extend_from_slice(&deflated);
        writer.write_chunk(kind, &data).expect("text chunk");
        writer.write_image_data(&[0]).expect("pixels");
        writer.finish().expect("finish");
        bytes
    }

    #[test]
    fn compressed_text_bombs_are_refused_without_inflating_them() {
        // 64 MiB of text compresses to about 64 KiB; the reader must stop at its 1 MiB bound.
        let bomb = "a".repeat(64 << 20);
        for itxt in [false, true] {
            let png = compressed_text_png(&bomb, itxt);
            assert!(
                png.len() < 1 << 20,
                "the test file itself stays small: {}",
                png.len()
            );
            let err = read_png_text_chunks_from_bytes(&png).expect_err("refused");
            assert!(matches!(err, PngMetaError::TextTooLarge { .. }), "{err}");
            assert!(err.to_string().contains("'parameters'"), "{err}");
        }
        // Just under the bound still reads.
        let fits = "b".repeat(MAX_TEXT_BYTES - 16);
        for itxt in [false, true] {
            let chunks = read_png_text_chunks_from_bytes(&compressed_text_png(&fits, itxt)).expect("reads");
            assert_eq!(chunks, vec![("parameters".to_owned(), fits.clone())]);
        }
    }

    #[test]
    fn stale_temp_files_of_killed_writes_are_swept() {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = dir.path().join("out.png");
        // A pid far above Linux's pid_max belongs to no process; our own in-flight file stays.
        let stale = dir.path().join(".out.png.4294967290-0.tmp");
        let ours = dir.path().join(format!(".out.png.{}-99.tmp", std::process::id()));
        let other = dir.path().join(".other.png.4294967290-0.tmp");
        for p in [&stale, &ours, &other] {
            fs::write(p, b"partial").expect("write");
        }
        write_png_with_parameters(&out, 2, 2, &gradient(2, 2), "abc").expect("writes");
        assert!(out.exists());
        if Path::new("/proc/self").exists() {
            assert!(!stale.exists(), "the killed write's temp file is gone");
        }
        assert!(
            ours.exists() && other.exists(),
            "only stale temps of this name are removed"
        );
    }
}
