//! Metadata hidden in the pixels ("stealth pnginfo"), as the AUTOMATIC1111 extension
//! ashen-sensored/sd_webui_stealth_pnginfo, Forge's `modules/stealth_infotext.py`, NovelAI and a
//! ComfyUI port write it into PNGs that may carry no text chunk at all.
//!
//! The message is a bit stream: a 15-byte signature, a 32-bit big-endian length counted in bits,
//! then the payload, each byte most significant bit first. Bits walk the pixels column by column
//! (x outer, y inner). In alpha mode (`stealth_pnginfo`, `stealth_pngcomp`) each pixel gives the
//! lowest bit of its alpha; in RGB mode (`stealth_rgbinfo`, `stealth_rgbcomp`) the lowest bits of
//! red, green and blue, in that order. `comp` payloads are gzip. The payload is A1111 infotext,
//! or JSON (NovelAI's chunks; ComfyUI's `prompt`/`workflow`).

use std::io::{BufRead, Seek};

/// Signature bits.
const SIGNATURE_BITS: usize = 15 * 8;
/// Signature and length bits.
const HEADER_BITS: usize = SIGNATURE_BITS + 32;
/// A payload bigger than this (compressed or not) is not metadata.
const MAX_PAYLOAD_BYTES: usize = 16 << 20;
/// Images with more pixels than this are not searched (a stealth message is read whole).
const MAX_PIXELS: u64 = 64 << 20;

/// Where the bits are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Carrier {
    Alpha,
    Rgb,
}

/// Pixels in memory, 8 bits per channel, row-major, 3 (RGB) or 4 (RGBA) channels.
#[derive(Debug, Clone, Copy)]
pub struct Pixels<'a> {
    /// The samples.
    pub data: &'a [u8],
    /// Width in pixels.
    pub width: usize,
    /// Rows present in `data` (the image may have more).
    pub rows: usize,
    /// The image's full height: the column order depends on it.
    pub height: usize,
    /// 3 or 4.
    pub channels: usize,
}

impl Pixels<'_> {
    /// Bit `index` of the stream, `None` past the rows present.
    fn bit(&self, carrier: Carrier, index: usize) -> Option<u8> {
        let (pixel, channel) = match carrier {
            Carrier::Alpha => (index, 3),
            Carrier::Rgb => (index / 3, index % 3),
        };
        let (x, y) = (pixel / self.height, pixel % self.height);
        if x >= self.width || y >= self.rows {
            return None;
        }
        self.data.get((y * self.width + x) * self.channels + channel).map(|b| b & 1)
    }

    /// `count` bytes of the stream from bit `start`, `None` when they run past the rows present.
    fn bytes(&self, carrier: Carrier, start: usize, count: usize) -> Option<Vec<u8>> {
        (0..count)
            .map(|i| (0..8).try_fold(0u8, |byte, b| Some(byte << 1 | self.bit(carrier, start + i * 8 + b)?)))
            .collect()
    }

    /// The carrier and compression its signature announces, if any.
    fn signature(&self) -> Option<(Carrier, bool)> {
        let carriers: &[Carrier] = if self.channels == 4 { &[Carrier::Alpha, Carrier::Rgb] } else { &[Carrier::Rgb] };
        carriers.iter().find_map(|&carrier| {
            let sig = self.bytes(carrier, 0, SIGNATURE_BITS / 8)?;
            let names: [&[u8]; 2] = match carrier {
                Carrier::Alpha => [b"stealth_pnginfo", b"stealth_pngcomp"],
                Carrier::Rgb => [b"stealth_rgbinfo", b"stealth_rgbcomp"],
            };
            names.iter().position(|n| *n == sig.as_slice()).map(|i| (carrier, i == 1))
        })
    }

    /// Bits a full message needs, once the header is readable: `None` without a signature.
    fn message_bits(&self) -> Option<(Carrier, bool, usize)> {
        let (carrier, compressed) = self.signature()?;
        let len = self.bytes(carrier, SIGNATURE_BITS, 4)?;
        let len_bits = u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize;
        (len_bits / 8 <= MAX_PAYLOAD_BYTES).then_some((carrier, compressed, len_bits))
    }
}

/// The hidden text of these pixels, if they carry a stealth message that decodes.
pub fn stealth_text(pixels: &Pixels<'_>) -> Option<String> {
    if !matches!(pixels.channels, 3 | 4) || pixels.width == 0 || pixels.height == 0 {
        return None;
    }
    let (carrier, compressed, len_bits) = pixels.message_bits()?;
    let payload = pixels.bytes(carrier, HEADER_BITS, len_bits / 8)?;
    if compressed {
        String::from_utf8(gunzip(&payload)?).ok()
    } else {
        Some(String::from_utf8_lossy(&payload).into_owned())
    }
}

/// The hidden text of a PNG, decoding only the rows needed to find there is none: the header
/// sits in the first 152 rows of column 0 (or across all rows of a shorter image). Interlaced and
/// grey images carry none that writers make.
pub fn png_stealth_text(reader: impl BufRead + Seek) -> Option<String> {
    let mut decoder = png::Decoder::new(reader);
    decoder.set_transformations(png::Transformations::normalize_to_color8());
    let mut reader = decoder.read_info().ok()?;
    let info = reader.info();
    let (width, height) = (info.width as usize, info.height as usize);
    if info.interlaced || u64::from(info.width) * u64::from(info.height) > MAX_PIXELS {
        return None;
    }
    let channels = match reader.output_color_type().0 {
        png::ColorType::Rgb => 3,
        png::ColorType::Rgba => 4,
        _ => return None,
    };
    let mut data = Vec::new();
    let mut rows = 0;
    let header_rows = HEADER_BITS.min(height);
    while rows < height {
        let Ok(Some(row)) = reader.next_row() else { break };
        data.extend_from_slice(row.data());
        rows += 1;
        if rows == header_rows
            && height > header_rows
            && (Pixels { data: &data, width, rows, height, channels }).message_bits().is_none()
        {
            return None;
        }
    }
    stealth_text(&Pixels { data: &data, width, rows, height, channels })
}

/// The hidden text of a lossless WebP (decoded whole: WebP has no row-by-row reading here).
pub fn webp_stealth_text(bytes: &[u8]) -> Option<String> {
    use image::ImageDecoder as _;
    let decoder = image::codecs::webp::WebPDecoder::new(std::io::Cursor::new(bytes)).ok()?;
    let (width, height) = decoder.dimensions();
    if u64::from(width) * u64::from(height) > MAX_PIXELS {
        return None;
    }
    let rgba = image::DynamicImage::from_decoder(decoder).ok()?.into_rgba8();
    let (width, height) = (width as usize, height as usize);
    stealth_text(&Pixels { data: rgba.as_raw(), width, rows: height, height, channels: 4 })
}

/// A gzip member's contents (RFC 1952), refusing to inflate past [`MAX_PAYLOAD_BYTES`].
fn gunzip(data: &[u8]) -> Option<Vec<u8>> {
    const FHCRC: u8 = 2;
    const FEXTRA: u8 = 4;
    const FNAME: u8 = 8;
    const FCOMMENT: u8 = 16;
    if data.get(..3)? != [0x1f, 0x8b, 8] {
        return None;
    }
    let flags = *data.get(3)?;
    let mut at = 10;
    if flags & FEXTRA != 0 {
        let len = usize::from(u16::from_le_bytes([*data.get(at)?, *data.get(at + 1)?]));
        at += 2 + len;
    }
    for flag in [FNAME, FCOMMENT] {
        if flags & flag != 0 {
            at += data.get(at..)?.iter().position(|&b| b == 0)? + 1;
        }
    }
    if flags & FHCRC != 0 {
        at += 2;
    }
    miniz_oxide::inflate::decompress_to_vec_with_limit(data.get(at..)?, MAX_PAYLOAD_BYTES).ok()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Hides `payload` under `signature` in `pixels` (RGB or RGBA, row-major), as the writers do.
    pub(crate) fn hide(
        pixels: &mut [u8],
        width: usize,
        height: usize,
        channels: usize,
        signature: &str,
        payload: &[u8],
    ) {
        let rgb = signature.starts_with("stealth_rgb");
        let mut stream = signature.as_bytes().to_vec();
        stream.extend_from_slice(&((payload.len() * 8) as u32).to_be_bytes());
        stream.extend_from_slice(payload);
        let bits = stream.iter().flat_map(|byte| (0..8).rev().map(move |b| (byte >> b) & 1));
        for (i, bit) in bits.enumerate() {
            let (pixel, channel) = if rgb { (i / 3, i % 3) } else { (i, 3) };
            let (x, y) = (pixel / height, pixel % height);
            assert!(x < width, "the image is too small for the message");
            let at = (y * width + x) * channels + channel;
            pixels[at] = (pixels[at] & !1) | bit;
        }
    }

    /// Gzip of `data` with a minimal header, as Python's `gzip.compress` writes it.
    pub(crate) fn gzip(data: &[u8]) -> Vec<u8> {
        let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 2, 0xff];
        out.extend(miniz_oxide::deflate::compress_to_vec(data, 6));
        let crc = 0u32; // Not checked by readers here.
        out.extend_from_slice(&crc.to_le_bytes());
        out.extend_from_slice(&(data.len() as u32).to_le_bytes());
        out
    }

    /// An encoded PNG of these pixels.
    pub(crate) fn png(pixels: &[u8], width: usize, height: usize, channels: usize) -> Vec<u8> {
        let mut out = Vec::new();
        let mut encoder = png::Encoder::new(&mut out, width as u32, height as u32);
        encoder.set_color(if channels == 4 { png::ColorType::Rgba } else { png::ColorType::Rgb });
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder.write_header().unwrap();
        writer.write_image_data(pixels).unwrap();
        writer.finish().unwrap();
        out
    }

    fn noise(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7919 % 251) as u8).collect()
    }

    #[test]
    fn the_tiny_vector_reads_back_and_its_first_alphas_match_the_writers() {
        let mut pixels = vec![255u8; 16 * 16 * 4];
        hide(&mut pixels, 16, 16, 4, "stealth_pnginfo", b"hi");
        // 's' = 0111 0011 down column 0.
        let alphas: Vec<u8> = (0..8).map(|y| pixels[y * 16 * 4 + 3]).collect();
        assert_eq!(alphas, [254, 255, 255, 255, 254, 254, 255, 255]);
        let read = stealth_text(&Pixels { data: &pixels, width: 16, rows: 16, height: 16, channels: 4 });
        assert_eq!(read.as_deref(), Some("hi"));
    }

    #[test]
    fn every_variant_round_trips_through_a_png() {
        let text =
            "a cat テスト\nNegative prompt: blurry\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: 5, Size: 64x200";
        for (signature, channels) in [
            ("stealth_pnginfo", 4),
            ("stealth_pngcomp", 4),
            ("stealth_rgbinfo", 3),
            ("stealth_rgbcomp", 3),
            ("stealth_rgbcomp", 4),
        ] {
            let (width, height) = (64, 200);
            let mut pixels = noise(width * height * channels);
            let payload = if signature.ends_with("comp") { gzip(text.as_bytes()) } else { text.as_bytes().to_vec() };
            hide(&mut pixels, width, height, channels, signature, &payload);
            let file = png(&pixels, width, height, channels);
            let read = png_stealth_text(std::io::Cursor::new(&file));
            assert_eq!(read.as_deref(), Some(text), "{signature} in {channels} channels");
        }
    }

    #[test]
    fn damaged_messages_and_random_pixels_never_panic() {
        // A message, then thousands of random flips of its bits and random shapes over it.
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut pixels = vec![255u8; 48 * 48 * 4];
        hide(&mut pixels, 48, 48, 4, "stealth_pngcomp", &gzip(b"Steps: 20, Seed: 1"));
        for _ in 0..3000 {
            let mut damaged = pixels.clone();
            for _ in 0..(next() % 8) {
                let at = (next() as usize) % damaged.len();
                damaged[at] ^= 1 << (next() % 8);
            }
            let width = 1 + (next() as usize) % 64;
            let channels = 3 + (next() as usize) % 2;
            let rows = damaged.len() / (width * channels);
            let height = rows.max(1 + (next() as usize) % 200);
            let data = &damaged[..rows * width * channels];
            let _ = stealth_text(&Pixels { data, width, rows, height, channels });
            let cut = (next() as usize) % damaged.len();
            let _ = gunzip(&damaged[..cut]);
        }
    }

    #[test]
    fn a_lossless_webp_carries_a_message_too() {
        let text = "a lighthouse\nSteps: 20, Sampler: Euler, CFG scale: 7, Seed: 5, Size: 64x64";
        let mut pixels = vec![255u8; 64 * 64 * 4];
        hide(&mut pixels, 64, 64, 4, "stealth_pngcomp", &gzip(text.as_bytes()));
        let mut webp = Vec::new();
        image::codecs::webp::WebPEncoder::new_lossless(&mut webp)
            .encode(&pixels, 64, 64, image::ExtendedColorType::Rgba8)
            .unwrap();
        assert_eq!(webp_stealth_text(&webp).as_deref(), Some(text));
        assert_eq!(webp_stealth_text(b"RIFF\0\0\0\0WEBPVP8L"), None);
    }

    #[test]
    fn plain_images_and_damaged_messages_give_nothing() {
        let (width, height) = (40, 300);
        let pixels = noise(width * height * 4);
        assert_eq!(png_stealth_text(std::io::Cursor::new(png(&pixels, width, height, 4))), None);
        // An empty message is empty; a length past any payload limit gives nothing.
        let mut short = vec![255u8; 16 * 16 * 4];
        hide(&mut short, 16, 16, 4, "stealth_pnginfo", b"");
        let read = stealth_text(&Pixels { data: &short, width: 16, rows: 16, height: 16, channels: 4 });
        assert_eq!(read.as_deref(), Some(""));
        let mut stream = b"stealth_pnginfo".to_vec();
        stream.extend_from_slice(&u32::MAX.to_be_bytes());
        for (i, bit) in stream.iter().flat_map(|b| (0..8).rev().map(move |s| (b >> s) & 1)).enumerate() {
            let (x, y) = (i / 16, i % 16);
            short[(y * 16 + x) * 4 + 3] = 254 | bit;
        }
        assert_eq!(stealth_text(&Pixels { data: &short, width: 16, rows: 16, height: 16, channels: 4 }), None);
        // Compressed bits that are not gzip.
        let mut bad = vec![255u8; 32 * 32 * 4];
        hide(&mut bad, 32, 32, 4, "stealth_pngcomp", b"not gzip at all");
        assert_eq!(stealth_text(&Pixels { data: &bad, width: 32, rows: 32, height: 32, channels: 4 }), None);
        // Garbage never panics.
        assert_eq!(png_stealth_text(std::io::Cursor::new(b"\x89PNG\r\n\x1a\n garbage".to_vec())), None);
    }
}
