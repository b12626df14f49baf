//! The metadata texts of image files, as (key, text) pairs whatever the container: PNG text chunks
//! (tEXt, zTXt, iTXt, before or after IDAT), JPEG (EXIF in APP1, XMP in APP1, COM), WebP (RIFF
//! `EXIF` and `XMP ` chunks) and AVIF (its Exif and XMP items, found by their signatures).
//!
//! Keys are the PNG keyword for PNG chunks; EXIF tags by name (`UserComment`, `ImageDescription`,
//! `Make`, `Model`, `Software`, `XPComment`), except that ComfyUI's `prompt:{…}` and
//! `workflow:{…}` EXIF values become `prompt` and `workflow`; `xmp:UserComment`,
//! `xmp:description`, `xmp:parameters` for XMP; `Comment` for a JPEG COM segment.

use std::path::Path;

use super::exif;
use super::png_chunks::{self, MAX_TEXT_BYTES, PngMetaError};

/// The container formats read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageKind {
    /// PNG.
    Png,
    /// JPEG (JFIF or EXIF).
    Jpeg,
    /// WebP (RIFF).
    WebP,
    /// AVIF (ISO-BMFF).
    Avif,
}

impl ImageKind {
    /// The format's name.
    pub fn name(self) -> &'static str {
        match self {
            ImageKind::Png => "PNG",
            ImageKind::Jpeg => "JPEG",
            ImageKind::WebP => "WebP",
            ImageKind::Avif => "AVIF",
        }
    }

    /// The format of `bytes`, from its signature.
    pub fn sniff(bytes: &[u8]) -> Option<Self> {
        if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
            Some(ImageKind::Png)
        } else if bytes.starts_with(&[0xff, 0xd8, 0xff]) {
            Some(ImageKind::Jpeg)
        } else if bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
            Some(ImageKind::WebP)
        } else if bytes.len() >= 12
            && &bytes[4..8] == b"ftyp"
            && matches!(
                &bytes[8..12],
                b"avif" | b"avis" | b"mif1" | b"heic" | b"heix" | b"msf1"
            )
        {
            Some(ImageKind::Avif)
        } else {
            None
        }
    }
}

/// An image's format and its metadata texts as (key, text), in file order.
pub type ImageTexts = (ImageKind, Vec<(String, String)>);

/// Every metadata text of the image in `bytes`, in file order, or `None` when the bytes are not
/// a PNG, JPEG, WebP or AVIF image. `path` only names the file in errors.
///
/// # Errors
/// A PNG that is malformed, truncated, or has a compressed text chunk that inflates past
/// [`MAX_TEXT_BYTES`]. The other containers are read leniently: a damaged segment ends the walk
/// and what was read before it is returned.
pub fn read_texts(bytes: &[u8], path: &Path) -> Result<Option<ImageTexts>, PngMetaError> {
    let Some(kind) = ImageKind::sniff(bytes) else {
        return Ok(None);
    };
    let mut texts = match kind {
        ImageKind::Png => png_chunks::text_chunks_of(bytes, path)?,
        ImageKind::Jpeg => jpeg_texts(bytes),
        ImageKind::WebP => webp_texts(bytes),
        ImageKind::Avif => avif_texts(bytes),
    };
    // A file of many small segments each naming the same large value could otherwise grow the
    // texts far past the file's own size.
    let mut total = 0usize;
    let keep = texts
        .iter()
        .take_while(|(_, text)| {
            total = total.saturating_add(text.len());
            total <= MAX_TOTAL_TEXT_BYTES
        })
        .count()
        .min(MAX_TEXTS);
    texts.truncate(keep);
    for (key, text) in &mut texts {
        if matches!(
            key.as_str(),
            "Make" | "Model" | "ImageDescription" | "UserComment"
        ) {
            for name in ["prompt", "workflow"] {
                if let Some(json) = text.strip_prefix(name).and_then(|t| t.strip_prefix(':'))
                    && json.trim_start().starts_with('{')
                {
                    name.clone_into(key);
                    *text = json.to_owned();
                    break;
                }
            }
        }
    }
    Ok(Some((kind, texts)))
}

const XMP_HEADER: &[u8] = b"http://ns.adobe.com/xap/1.0/\0";

/// Most metadata texts kept from one file (generators write a handful).
const MAX_TEXTS: usize = 4096;
/// Most text kept from one file, in bytes.
const MAX_TOTAL_TEXT_BYTES: usize = 64 << 20;

/// JPEG markers up to the first scan (ITU T.81 B.1.1): APP1 EXIF and XMP, COM.
fn jpeg_texts(bytes: &[u8]) -> Vec<(String, String)> {
    let mut texts = Vec::new();
    let mut pos = 2;
    while pos + 4 <= bytes.len() {
        if bytes[pos] != 0xff {
            break;
        }
        let marker = bytes[pos + 1];
        // Fill bytes, and markers without a length.
        if marker == 0xff {
            pos += 1;
            continue;
        }
        if matches!(marker, 0x01 | 0xd0..=0xd8) {
            pos += 2;
            continue;
        }
        if matches!(marker, 0xd9 | 0xda) {
            break;
        }
        let len = usize::from(u16::from_be_bytes([bytes[pos + 2], bytes[pos + 3]]));
        let Some(body) = len.checked_sub(2).and_then(|n| bytes.get(pos + 4..pos + 4 + n)) else {
            break;
        };
        match marker {
            0xe1 if body.starts_with(exif::EXIF_HEADER) => texts.extend(exif::read_texts(body)),
            0xe1 if body.starts_with(XMP_HEADER) => texts.extend(xmp_texts(&body[XMP_HEADER.len()..])),
            0xfe => {
                let text = exif::utf8_or_latin1(body);
                let text = text.trim_end_matches('\0');
                if !text.is_empty() {
                    texts.push(("Comment".to_owned(), text.to_owned()));
                }
            }
            _ => {}
        }
        pos += 2 + len;
    }
    texts
}

/// WebP RIFF chunks (the WebP container specification): `EXIF` and `XMP `.
fn webp_texts(bytes: &[u8]) -> Vec<(String, String)> {
    let mut texts = Vec::new();
    let mut pos = 12;
    while pos + 8 <= bytes.len() {
        let fourcc = &bytes[pos..pos + 4];
        let len =
            u32::from_le_bytes([bytes[pos + 4], bytes[pos + 5], bytes[pos + 6], bytes[pos + 7]]) as usize;
        let Some(body) = bytes.get(pos + 8..(pos + 8).saturating_add(len)) else {
            break;
        };
        match fourcc {
            b"EXIF" => texts.extend(exif::read_texts(body)),
            b"XMP " => texts.extend(xmp_texts(body)),
            _ => {}
        }
        // Chunks are padded to an even size.
        pos = pos + 8 + len + (len & 1);
    }
    texts
}

/// AVIF: the Exif item's payload starts with a 4-byte offset to the TIFF header, which is
/// normally preceded by `Exif\0\0`; the XMP item is the XML packet itself. Both are found by
/// their signatures rather than through the `iloc` box, which is enough for the files generators
/// write.
fn avif_texts(bytes: &[u8]) -> Vec<(String, String)> {
    let mut texts = Vec::new();
    for signature in [b"Exif\0\0MM\0*".as_slice(), b"Exif\0\0II*\0".as_slice()] {
        if let Some(at) = find(bytes, signature) {
            texts.extend(exif::read_texts(&bytes[at..]));
            break;
        }
    }
    if let Some(at) = find(bytes, b"<x:xmpmeta") {
        let end = find(&bytes[at..], b"</x:xmpmeta>").map_or(bytes.len(), |e| at + e + 12);
        texts.extend(xmp_texts(&bytes[at..end]));
    }
    texts
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The XMP properties generators use for their parameters: `exif:UserComment` (Civitai and
/// A1111 extensions writing XMP), `dc:description`, and a `parameters` property of any
/// namespace, as element content (with the `rdf:Alt`/`rdf:li` wrapping removed) or attribute.
fn xmp_texts(xml: &[u8]) -> Vec<(String, String)> {
    let xml = String::from_utf8_lossy(&xml[..xml.len().min(MAX_TEXT_BYTES)]);
    let mut texts = Vec::new();
    for (property, key) in [
        ("exif:UserComment", "xmp:UserComment"),
        ("dc:description", "xmp:description"),
        ("parameters", "xmp:parameters"),
    ] {
        if let Some(text) = xmp_property(&xml, property) {
            let text = xml_unescape(&text);
            if !text.trim().is_empty() {
                texts.push((key.to_owned(), text));
            }
        }
    }
    texts
}

/// The text of `property` (qualified name, or a local name matched after any prefix).
fn xmp_property(xml: &str, property: &str) -> Option<String> {
    let qualified = property.contains(':');
    let mut search = 0;
    while let Some(found) = xml[search..].find(property) {
        let at = search + found;
        search = at + property.len();
        let before = xml[..at].chars().next_back();
        let after = xml[search..].chars().next();
        let name_starts = if qualified {
            matches!(before, Some('<' | ' ' | '\t' | '\n' | '\r'))
        } else {
            before == Some(':')
        };
        if !name_starts {
            continue;
        }
        // The element or attribute name starts at most a short way back (the namespace prefix).
        let window = at.saturating_sub(256);
        let Some(prefix_start) = xml.as_bytes()[window..at]
            .iter()
            .rposition(|b| matches!(b, b'<' | b' ' | b'\t' | b'\n' | b'\r'))
            .map(|p| window + p)
        else {
            continue;
        };
        let is_element = xml[prefix_start..].starts_with('<');
        match after {
            // Element: <p:name ...>content</p:name>
            Some('>' | ' ' | '\t' | '\n' | '\r') if is_element => {
                let open_end = search + xml[search..].find('>')?;
                if xml[..open_end].ends_with('/') {
                    continue;
                }
                let close = format!("</{}", &xml[prefix_start + 1..search]);
                let content_end = open_end + xml[open_end..].find(&close)?;
                return Some(strip_tags(&xml[open_end + 1..content_end]));
            }
            // Attribute: p:name="value"
            Some('=') if !is_element => {
                let rest = &xml[search + 1..];
                let quote = rest.chars().next().filter(|c| *c == '"' || *c == '\'')?;
                let value = &rest[1..];
                return Some(value[..value.find(quote)?].to_owned());
            }
            _ => {}
        }
    }
    None
}

/// Element content without its tags (the `rdf:Alt`/`rdf:li` wrapping); the first `rdf:li` only.
fn strip_tags(content: &str) -> String {
    let content = match (content.find("<rdf:li"), content.find("</rdf:li>")) {
        (Some(start), Some(end)) if start < end => match content[start..end].find('>') {
            Some(open) => &content[start + open + 1..end],
            None => content,
        },
        _ => content,
    };
    let mut out = String::with_capacity(content.len());
    let mut in_tag = false;
    for c in content.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => in_tag = false,
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out.trim().to_owned()
}

fn xml_unescape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        rest = &rest[amp..];
        // Entities are short; look for the `;` among the next bytes (not chars: found by fuzzing).
        let Some(semi) = rest.bytes().take(12).position(|b| b == b';') else {
            out.push('&');
            rest = &rest[1..];
            continue;
        };
        let entity = &rest[1..semi];
        let decoded = match entity {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ => entity
                .strip_prefix("#x")
                .and_then(|hex| u32::from_str_radix(hex, 16).ok())
                .or_else(|| entity.strip_prefix('#').and_then(|dec| dec.parse().ok()))
                .and_then(char::from_u32),
        };
        if let Some(c) = decoded {
            out.push(c);
            rest = &rest[semi + 1..];
        } else {
            out.push('&');
            rest = &rest[1..];
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(bytes: &[u8]) -> Vec<(String, String)> {
        read_texts(bytes, Path::new("t"))
            .expect("reads")
            .expect("an image")
            .1
    }

    fn segment(marker: u8, body: &[u8]) -> Vec<u8> {
        let mut out = vec![0xff, marker];
        out.extend(((body.len() + 2) as u16).to_be_bytes());
        out.extend_from_slice(body);
        out
    }

    #[test]
    fn jpeg_exif_xmp_and_comment() {
        let mut jpeg = vec![0xff, 0xd8];
        jpeg.extend(segment(0xe0, b"JFIF\0\x01\x01\0\0\x01\0\x01\0\0"));
        let mut app1 = exif::EXIF_HEADER.to_vec();
        app1.extend(exif::user_comment_block(
            "a cat\nSteps: 20, Sampler: Euler, Seed: 1",
        ));
        jpeg.extend(segment(0xe1, &app1));
        let mut xmp = XMP_HEADER.to_vec();
        xmp.extend(
            br#"<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF><rdf:Description xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:description><rdf:Alt><rdf:li xml:lang="x-default">a &amp; b</rdf:li></rdf:Alt></dc:description></rdf:Description></rdf:RDF></x:xmpmeta>"#,
        );
        jpeg.extend(segment(0xe1, &xmp));
        jpeg.extend(segment(0xfe, b"made by hand"));
        jpeg.extend([0xff, 0xda, 0, 2, 1, 2, 3, 0xff, 0xd9]);
        let got = texts(&jpeg);
        assert_eq!(
            got,
            vec![
                (
                    "UserComment".to_owned(),
                    "a cat\nSteps: 20, Sampler: Euler, Seed: 1".to_owned()
                ),
                ("xmp:description".to_owned(), "a & b".to_owned()),
                ("Comment".to_owned(), "made by hand".to_owned()),
            ]
        );
    }

    #[test]
    fn webp_exif_with_and_without_prefix_and_comfyui_tags() {
        let mut chunks = Vec::new();
        let mut add = |fourcc: &[u8; 4], body: &[u8]| {
            chunks.extend_from_slice(fourcc);
            chunks.extend((body.len() as u32).to_le_bytes());
            chunks.extend_from_slice(body);
            if body.len() % 2 == 1 {
                chunks.push(0);
            }
        };
        add(b"VP8X", &[0x08, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        add(b"VP8L", &[0x2f, 0, 0, 0, 0]);
        let block = exif::user_comment_block("prompt:{\"1\": {}}");
        add(b"EXIF", &block);
        let mut prefixed = exif::EXIF_HEADER.to_vec();
        prefixed.extend(exif::user_comment_block("second"));
        add(b"EXIF", &prefixed);
        add(b"XMP ", br#"<rdf:Description exif:UserComment="x &lt; y"/>"#);
        let mut webp = b"RIFF".to_vec();
        webp.extend(((chunks.len() + 4) as u32).to_le_bytes());
        webp.extend(b"WEBP");
        webp.extend(chunks);
        assert_eq!(
            texts(&webp),
            vec![
                ("prompt".to_owned(), "{\"1\": {}}".to_owned()),
                ("UserComment".to_owned(), "second".to_owned()),
                ("xmp:UserComment".to_owned(), "x < y".to_owned()),
            ]
        );
    }

    #[test]
    fn avif_items_are_found_by_signature() {
        let mut avif = b"\0\0\0\x1cftypavif\0\0\0\0avifmif1miaf".to_vec();
        avif.extend(b"\0\0\0\x06");
        avif.extend(exif::EXIF_HEADER);
        avif.extend(exif::user_comment_block("an owl\nSteps: 4, Seed: 2, Size: 8x8"));
        assert_eq!(texts(&avif)[0].1, "an owl\nSteps: 4, Seed: 2, Size: 8x8");
    }

    #[test]
    fn not_images_and_damaged_containers() {
        assert!(read_texts(b"GIF89a", Path::new("x")).expect("no error").is_none());
        let mut jpeg = vec![0xff, 0xd8];
        let mut app1 = exif::EXIF_HEADER.to_vec();
        app1.extend(exif::user_comment_block("x"));
        jpeg.extend(segment(0xe1, &app1));
        for cut in 3..jpeg.len() {
            let _ = texts(&jpeg[..cut]);
        }
        let mut webp = b"RIFF\0\0\0\0WEBPEXIF\xff\xff\xff\xff".to_vec();
        webp.extend([0; 16]);
        assert!(texts(&webp).is_empty());
        assert_eq!(xml_unescape("a &bogus; &#x41;&#66; &"), "a &bogus; AB &");
        assert_eq!(xml_unescape("&1234567890€;"), "&1234567890€;");
    }
}
