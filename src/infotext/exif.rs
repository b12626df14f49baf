//! EXIF blocks (TIFF structure, TIFF 6.0 §2 and EXIF 2.32 §4.6): reads the text tags that image
//! generators fill (UserComment, ImageDescription, Make, Model, Software, XPComment) and writes
//! the UserComment block A1111 puts in its JPEG and WebP files.

/// `Exif\0\0`, the APP1 identifier in JPEG; older Pillow also kept it in WebP `EXIF` chunks.
pub const EXIF_HEADER: &[u8; 6] = b"Exif\0\0";

const TAG_IMAGE_DESCRIPTION: u16 = 0x010e;
const TAG_MAKE: u16 = 0x010f;
const TAG_MODEL: u16 = 0x0110;
const TAG_SOFTWARE: u16 = 0x0131;
const TAG_EXIF_IFD: u16 = 0x8769;
const TAG_USER_COMMENT: u16 = 0x9286;
const TAG_XP_COMMENT: u16 = 0x9c9c;

/// UserComment character-code prefixes (EXIF 2.32 table 9).
const UNICODE_PREFIX: &[u8; 8] = b"UNICODE\0";
const ASCII_PREFIX: &[u8; 8] = b"ASCII\0\0\0";
const JIS_PREFIX: &[u8; 8] = b"JIS\0\0\0\0\0";
const UNDEFINED_PREFIX: &[u8; 8] = &[0; 8];

/// Most entries read from one IFD; real files have a few dozen.
const MAX_ENTRIES: usize = 1024;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Order {
    Little,
    Big,
}

struct Tiff<'a> {
    bytes: &'a [u8],
    order: Order,
}

impl Tiff<'_> {
    fn u16_at(&self, at: usize) -> Option<u16> {
        let b: [u8; 2] = self.bytes.get(at..at.checked_add(2)?)?.try_into().ok()?;
        Some(match self.order {
            Order::Little => u16::from_le_bytes(b),
            Order::Big => u16::from_be_bytes(b),
        })
    }

    fn u32_at(&self, at: usize) -> Option<u32> {
        let b: [u8; 4] = self.bytes.get(at..at.checked_add(4)?)?.try_into().ok()?;
        Some(match self.order {
            Order::Little => u32::from_le_bytes(b),
            Order::Big => u32::from_be_bytes(b),
        })
    }

    /// (tag, type, value bytes) of each entry of the IFD at `offset` whose value lies in the block.
    fn entries(&self, offset: usize) -> Vec<(u16, u16, &[u8])> {
        let Some(count) = self.u16_at(offset) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for i in 0..usize::from(count).min(MAX_ENTRIES) {
            let at = offset + 2 + i * 12;
            let (Some(tag), Some(kind), Some(n)) =
                (self.u16_at(at), self.u16_at(at + 2), self.u32_at(at + 4))
            else {
                break;
            };
            let unit: usize = match kind {
                1 | 2 | 6 | 7 => 1,
                3 | 8 => 2,
                4 | 9 | 11 => 4,
                5 | 10 | 12 => 8,
                _ => continue,
            };
            let Some(len) = (n as usize).checked_mul(unit) else {
                continue;
            };
            let value = if len <= 4 {
                self.bytes.get(at + 8..at + 8 + len)
            } else {
                self.u32_at(at + 8)
                    .and_then(|start| self.bytes.get(start as usize..(start as usize).checked_add(len)?))
            };
            if let Some(value) = value {
                out.push((tag, kind, value));
            }
        }
        out
    }
}

/// The text tags of an EXIF block as (name, text), IFD0 first, then the Exif IFD. The block is
/// the TIFF structure, with or without the `Exif\0\0` prefix. A malformed block gives what could
/// be read before the damage; never an error.
pub fn read_texts(block: &[u8]) -> Vec<(String, String)> {
    let bytes = block.strip_prefix(EXIF_HEADER.as_slice()).unwrap_or(block);
    let order = match bytes.get(..4) {
        Some(b"II*\0") => Order::Little,
        Some(b"MM\0*") => Order::Big,
        _ => return Vec::new(),
    };
    let tiff = Tiff { bytes, order };
    let Some(ifd0) = tiff.u32_at(4) else {
        return Vec::new();
    };
    let mut texts = Vec::new();
    let mut exif_ifd = None;
    let mut seen = Vec::new();
    for (tag, kind, value) in tiff.entries(ifd0 as usize) {
        // One value per tag: a block repeating a tag cannot multiply the text read from it.
        if seen.contains(&tag) {
            continue;
        }
        seen.push(tag);
        match tag {
            TAG_EXIF_IFD if kind == 4 || kind == 13 => exif_ifd = Some(value),
            TAG_IMAGE_DESCRIPTION => texts.push(("ImageDescription".to_owned(), ascii_text(value))),
            TAG_MAKE => texts.push(("Make".to_owned(), ascii_text(value))),
            TAG_MODEL => texts.push(("Model".to_owned(), ascii_text(value))),
            TAG_SOFTWARE => texts.push(("Software".to_owned(), ascii_text(value))),
            TAG_USER_COMMENT => texts.push(("UserComment".to_owned(), user_comment(value, order))),
            TAG_XP_COMMENT => texts.push(("XPComment".to_owned(), utf16(value, Order::Little))),
            _ => {}
        }
    }
    if let Some(pointer) = exif_ifd
        .and_then(|v| Tiff { bytes: v, order }.u32_at(0))
        .filter(|&p| p != ifd0)
        && let Some((_, _, value)) = tiff
            .entries(pointer as usize)
            .into_iter()
            .find(|(tag, _, _)| *tag == TAG_USER_COMMENT)
    {
        texts.push(("UserComment".to_owned(), user_comment(value, order)));
    }
    texts.retain(|(_, text)| !text.is_empty());
    texts
}

/// An ASCII tag: UTF-8 when it is valid UTF-8 (Pillow writes UTF-8), Latin-1 otherwise; up to
/// the first NUL.
fn ascii_text(value: &[u8]) -> String {
    let end = value.iter().position(|&b| b == 0).unwrap_or(value.len());
    utf8_or_latin1(&value[..end])
}

/// UTF-8 text when the bytes are valid UTF-8, else each byte as its Latin-1 character.
pub fn utf8_or_latin1(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(text) => text.to_owned(),
        Err(_) => bytes.iter().map(|&b| char::from(b)).collect(),
    }
}

/// A UserComment: 8 bytes naming the character code, then the text. `UNICODE` is UTF-16 in the
/// byte order of a BOM when there is one, else the order whose high bytes are zero more often
/// (A1111's piexif writes big-endian, other tools little-endian), ties going to the block's own
/// byte order. Trailing NULs and spaces are dropped.
fn user_comment(value: &[u8], order: Order) -> String {
    let (prefix, body) = value.split_at(value.len().min(8));
    let text = if prefix == UNICODE_PREFIX {
        let order = match body.get(..2) {
            Some([0xfe, 0xff]) => Order::Big,
            Some([0xff, 0xfe]) => Order::Little,
            _ => {
                let zeros = |parity: usize| body.iter().skip(parity).step_by(2).filter(|&&b| b == 0).count();
                match zeros(0).cmp(&zeros(1)) {
                    std::cmp::Ordering::Greater => Order::Big,
                    std::cmp::Ordering::Less => Order::Little,
                    std::cmp::Ordering::Equal => order,
                }
            }
        };
        let body = match body.get(..2) {
            Some([0xfe, 0xff] | [0xff, 0xfe]) => &body[2..],
            _ => body,
        };
        utf16(body, order)
    } else if prefix == ASCII_PREFIX || prefix == UNDEFINED_PREFIX || prefix == JIS_PREFIX {
        utf8_or_latin1(body)
    } else {
        // No prefix at all: some tools write the text alone.
        utf8_or_latin1(value)
    };
    text.trim_end_matches(['\0', ' ']).to_owned()
}

fn utf16(bytes: &[u8], order: Order) -> String {
    let units = bytes.chunks_exact(2).map(|pair| match order {
        Order::Little => u16::from_le_bytes([pair[0], pair[1]]),
        Order::Big => u16::from_be_bytes([pair[0], pair[1]]),
    });
    char::decode_utf16(units)
        .map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER))
        .collect::<String>()
        .trim_end_matches('\0')
        .to_owned()
}

/// The EXIF block (TIFF structure, no `Exif\0\0` prefix) A1111 writes for JPEG and WebP:
/// `piexif.dump({"Exif": {UserComment: UserComment.dump(text, encoding="unicode")}})`, that is a
/// big-endian TIFF whose IFD0 points at an Exif IFD holding UserComment = `UNICODE\0` + the text
/// in UTF-16 BE.
pub fn user_comment_block(text: &str) -> Vec<u8> {
    let mut comment = UNICODE_PREFIX.to_vec();
    comment.extend(text.encode_utf16().flat_map(u16::to_be_bytes));
    // Header (8) + IFD0 with one entry (2 + 12 + 4) + Exif IFD with one entry (2 + 12 + 4).
    let exif_ifd: u32 = 8 + 18;
    let data: u32 = exif_ifd + 18;
    let mut out = Vec::with_capacity(data as usize + comment.len());
    out.extend_from_slice(b"MM\0*");
    out.extend_from_slice(&8u32.to_be_bytes());
    // IFD0: ExifIFD pointer (LONG, 1).
    out.extend_from_slice(&1u16.to_be_bytes());
    out.extend_from_slice(&TAG_EXIF_IFD.to_be_bytes());
    out.extend_from_slice(&4u16.to_be_bytes());
    out.extend_from_slice(&1u32.to_be_bytes());
    out.extend_from_slice(&exif_ifd.to_be_bytes());
    out.extend_from_slice(&0u32.to_be_bytes());
    // Exif IFD: UserComment (UNDEFINED, n bytes at `data`).
    out.extend_from_slice(&1u16.to_be_bytes());
    out.extend_from_slice(&TAG_USER_COMMENT.to_be_bytes());
    out.extend_from_slice(&7u16.to_be_bytes());
    out.extend_from_slice(&(comment.len() as u32).to_be_bytes());
    out.extend_from_slice(&data.to_be_bytes());
    out.extend_from_slice(&0u32.to_be_bytes());
    out.extend_from_slice(&comment);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A little-endian TIFF with IFD0 holding `ifd0` ASCII tags and an Exif IFD holding a
    /// UserComment of `comment` bytes, laid out as Windows and many phone tools write it.
    fn little_endian_block(ifd0: &[(u16, &str)], comment: &[u8]) -> Vec<u8> {
        let entries = ifd0.len() + 1;
        let ifd0_len = 2 + 12 * entries + 4;
        let exif_at = 8 + ifd0_len;
        let data_at = exif_at + 18;
        let mut data = Vec::new();
        let mut out = b"II*\0".to_vec();
        out.extend(8u32.to_le_bytes());
        out.extend((entries as u16).to_le_bytes());
        for (tag, text) in ifd0 {
            let mut value = text.as_bytes().to_vec();
            value.push(0);
            out.extend(tag.to_le_bytes());
            out.extend(2u16.to_le_bytes());
            out.extend((value.len() as u32).to_le_bytes());
            out.extend(((data_at + data.len()) as u32).to_le_bytes());
            data.extend(value);
        }
        out.extend(TAG_EXIF_IFD.to_le_bytes());
        out.extend(4u16.to_le_bytes());
        out.extend(1u32.to_le_bytes());
        out.extend((exif_at as u32).to_le_bytes());
        out.extend(0u32.to_le_bytes());
        out.extend(1u16.to_le_bytes());
        out.extend(TAG_USER_COMMENT.to_le_bytes());
        out.extend(7u16.to_le_bytes());
        out.extend((comment.len() as u32).to_le_bytes());
        out.extend(((data_at + data.len()) as u32).to_le_bytes());
        out.extend(0u32.to_le_bytes());
        data.extend_from_slice(comment);
        out.extend(data);
        out
    }

    #[test]
    fn a1111_block_round_trips() {
        let text = "猫, (masterpiece:1.2)\nNegative prompt: 低质量\nSteps: 20, Sampler: Euler a, Seed: 1";
        let block = user_comment_block(text);
        assert!(block.starts_with(b"MM\0*"));
        assert_eq!(
            read_texts(&block),
            vec![("UserComment".to_owned(), text.to_owned())]
        );
        let mut prefixed = EXIF_HEADER.to_vec();
        prefixed.extend(&block);
        assert_eq!(read_texts(&prefixed)[0].1, text);
    }

    #[test]
    fn unicode_comments_in_either_byte_order_and_ascii_comments() {
        let text = "a cat, Steps: 20";
        for (le, bom) in [(true, false), (false, false), (true, true), (false, true)] {
            let mut comment = UNICODE_PREFIX.to_vec();
            if bom {
                comment.extend(if le { [0xff, 0xfe] } else { [0xfe, 0xff] });
            }
            for unit in text.encode_utf16() {
                comment.extend(if le {
                    unit.to_le_bytes()
                } else {
                    unit.to_be_bytes()
                });
            }
            let texts = read_texts(&little_endian_block(&[], &comment));
            assert_eq!(
                texts,
                vec![("UserComment".to_owned(), text.to_owned())],
                "le {le} bom {bom}"
            );
        }
        let mut ascii = ASCII_PREFIX.to_vec();
        ascii.extend(b"plain text\0\0");
        assert_eq!(read_texts(&little_endian_block(&[], &ascii))[0].1, "plain text");
        let utf8 = [UNDEFINED_PREFIX.as_slice(), "café".as_bytes()].concat();
        assert_eq!(read_texts(&little_endian_block(&[], &utf8))[0].1, "café");
    }

    #[test]
    fn ifd0_text_tags_as_comfyui_webp_writes_them() {
        let block = little_endian_block(
            &[(TAG_MODEL, "prompt:{\"3\":{}}"), (TAG_MAKE, "workflow:{}")],
            b"",
        );
        let texts = read_texts(&block);
        assert_eq!(texts[0], ("Model".to_owned(), "prompt:{\"3\":{}}".to_owned()));
        assert_eq!(texts[1], ("Make".to_owned(), "workflow:{}".to_owned()));
    }

    #[test]
    fn damaged_blocks_give_what_they_can() {
        let block = user_comment_block("hello");
        for cut in 0..block.len() {
            let _ = read_texts(&block[..cut]);
        }
        // An IFD pointing at itself, offsets past the end, absurd counts.
        let mut looped = b"MM\0*\0\0\0\x08\xff\xff".to_vec();
        looped.extend([0x87, 0x69, 0, 4, 0, 0, 0, 1, 0, 0, 0, 8]);
        assert!(read_texts(&looped).is_empty());
    }
}
