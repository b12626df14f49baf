//! "Stealth" metadata hidden in pixel low bits, as the `sd-webui-stealth-pnginfo` extension for
//! A1111 (and NovelAI, for its own JSON) writes it: pixels are visited column by column (x outer,
//! y inner); in alpha mode each pixel gives the low bit of its alpha, in RGB mode the low bits of
//! red, green and blue. The bit stream, most significant bit first, is a 15-byte signature
//! (`stealth_pnginfo` / `stealth_pngcomp` in alpha, `stealth_rgbinfo` / `stealth_rgbcomp` in RGB;
//! `comp` means gzip), a 32-bit payload length in bits, then the payload (UTF-8 text).

use super::png_chunks::MAX_TEXT_BYTES;

const SIGNATURE_BITS: usize = 15 * 8;

/// Pixels to read stealth metadata from: row-major RGBA8.
pub struct Pixels<'a> {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// Whether the alpha channel is real (an RGB image converted to RGBA has none to read).
    pub has_alpha: bool,
    /// Row-major RGBA8, `width * height * 4` bytes.
    pub rgba: &'a [u8],
}

/// The hidden text, if the pixels carry a stealth signature and a payload that fits; alpha mode
/// is tried first (when the image has alpha), then RGB mode. Payloads longer than
/// [`MAX_TEXT_BYTES`] (before or after gunzip) are refused.
pub fn read(pixels: &Pixels<'_>) -> Option<String> {
    if pixels.width.checked_mul(pixels.height)?.checked_mul(4)? != pixels.rgba.len() {
        return None;
    }
    if pixels.has_alpha
        && let Some(text) = read_mode(pixels, &[3], b"stealth_pnginfo", b"stealth_pngcomp")
    {
        return Some(text);
    }
    read_mode(pixels, &[0, 1, 2], b"stealth_rgbinfo", b"stealth_rgbcomp")
}

fn read_mode(pixels: &Pixels<'_>, channels: &[usize], plain: &[u8], gzip: &[u8]) -> Option<String> {
    let (w, h) = (pixels.width, pixels.height);
    let mut bits = (0..w)
        .flat_map(move |x| (0..h).map(move |y| (y * w + x) * 4))
        .flat_map(|at| channels.iter().map(move |c| at + c))
        .map(|i| pixels.rgba[i] & 1);
    let mut take_bytes = |n: usize| -> Option<Vec<u8>> {
        (0..n)
            .map(|_| (0..8).try_fold(0u8, |byte, _| Some(byte << 1 | bits.next()?)))
            .collect()
    };
    let signature = take_bytes(SIGNATURE_BITS / 8)?;
    let compressed = if signature == plain {
        false
    } else if signature == gzip {
        true
    } else {
        return None;
    };
    let len_bits = u32::from_be_bytes(take_bytes(4)?.try_into().ok()?) as usize;
    let len = len_bits / 8;
    let available = w * h * channels.len();
    if len > MAX_TEXT_BYTES || len_bits > available {
        return None;
    }
    let payload = take_bytes(len)?;
    let text = if compressed {
        gunzip(&payload, MAX_TEXT_BYTES)?
    } else {
        payload
    };
    let text = String::from_utf8_lossy(&text).into_owned();
    (!text.trim().is_empty()).then_some(text)
}

/// The content of a gzip member (RFC 1952), inflated to at most `limit` bytes.
pub fn gunzip(data: &[u8], limit: usize) -> Option<Vec<u8>> {
    const FHCRC: u8 = 2;
    const FEXTRA: u8 = 4;
    const FNAME: u8 = 8;
    const FCOMMENT: u8 = 16;
    if data.get(..3)? != [0x1f, 0x8b, 8] {
        return None;
    }
    let flags = *data.get(3)?;
    let mut pos = 10;
    if flags & FEXTRA != 0 {
        let len = usize::from(u16::from_le_bytes([*data.get(pos)?, *data.get(pos + 1)?]));
        pos += 2 + len;
    }
    for flag in [FNAME, FCOMMENT] {
        if flags & flag != 0 {
            pos += data.get(pos..)?.iter().position(|&b| b == 0)? + 1;
        }
    }
    if flags & FHCRC != 0 {
        pos += 2;
    }
    miniz_oxide::inflate::decompress_to_vec_with_limit(data.get(pos..)?, limit).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes `text` into the pixels as the extension's `add_data` does (after `putalpha(255)`
    /// in alpha mode), gzip-compressed when `compress`.
    fn embed(width: usize, height: usize, text: &str, alpha: bool, compress: bool) -> Vec<u8> {
        let signature = match (alpha, compress) {
            (true, false) => "stealth_pnginfo",
            (true, true) => "stealth_pngcomp",
            (false, false) => "stealth_rgbinfo",
            (false, true) => "stealth_rgbcomp",
        };
        let payload = if compress {
            gzip(text.as_bytes())
        } else {
            text.as_bytes().to_vec()
        };
        let mut bits = Vec::new();
        let mut push = |bytes: &[u8]| {
            for byte in bytes {
                for i in (0..8).rev() {
                    bits.push(byte >> i & 1);
                }
            }
        };
        push(signature.as_bytes());
        push(&((payload.len() * 8) as u32).to_be_bytes());
        push(&payload);
        let mut rgba: Vec<u8> = (0..width * height * 4).map(|i| (i * 37 % 251) as u8).collect();
        let channels: &[usize] = if alpha { &[3] } else { &[0, 1, 2] };
        if alpha {
            for px in rgba.chunks_exact_mut(4) {
                px[3] = 255;
            }
        }
        let mut next = bits.into_iter();
        'outer: for x in 0..width {
            for y in 0..height {
                for &c in channels {
                    let Some(bit) = next.next() else { break 'outer };
                    let v = &mut rgba[(y * width + x) * 4 + c];
                    *v = (*v & !1) | bit;
                }
            }
        }
        rgba
    }

    /// A gzip member with a stored-or-deflated body, as Python's `gzip.compress` writes.
    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 2, 255];
        out.extend(miniz_oxide::deflate::compress_to_vec(data, 9));
        out.extend([0; 8]); // CRC-32 and size, not checked by the reader
        out
    }

    #[test]
    fn all_four_signatures_read_back() {
        let text = "1girl, 桜\nNegative prompt: lowres\nSteps: 28, Sampler: Euler a, Seed: 7, Size: 64x48";
        for alpha in [true, false] {
            for compress in [false, true] {
                let rgba = embed(64, 48, text, alpha, compress);
                let pixels = Pixels {
                    width: 64,
                    height: 48,
                    has_alpha: alpha,
                    rgba: &rgba,
                };
                assert_eq!(
                    read(&pixels).as_deref(),
                    Some(text),
                    "alpha {alpha} gzip {compress}"
                );
            }
        }
    }

    #[test]
    fn plain_pictures_and_lying_lengths_give_nothing() {
        let rgba: Vec<u8> = (0..32 * 32 * 4).map(|i| (i % 7) as u8).collect();
        let pixels = Pixels {
            width: 32,
            height: 32,
            has_alpha: true,
            rgba: &rgba,
        };
        assert_eq!(read(&pixels), None);
        // A payload that claims more bits than the picture has.
        let mut rgba = embed(16, 16, "x", true, false);
        for y in 0..16 {
            let v = &mut rgba[y * 16 * 4 + 4 * 8 + 3];
            *v |= 1;
        }
        let pixels = Pixels {
            width: 16,
            height: 16,
            has_alpha: true,
            rgba: &rgba,
        };
        let _ = read(&pixels);
        assert_eq!(gunzip(b"\x1f\x8b\x08\x1f", 10), None);
        let bomb = gzip(&vec![b'a'; MAX_TEXT_BYTES * 4]);
        assert_eq!(gunzip(&bomb, MAX_TEXT_BYTES), None);
    }
}
