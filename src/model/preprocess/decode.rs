//! Image bytes → pixels in the Pillow mode the reference would see after `Image.open`, since
//! resizing depends on the mode: Pillow 13.0.0's `src/PIL/PngImagePlugin.py` (which mode each PNG
//! opens as) and its unpackers, re-implemented; JPEG and WebP through the image crate. Format and
//! declared size come from [`crate::image_file`], which refuses foreign bytes and decompression
//! bombs before any pixel buffer is allocated.

use crate::image_file::{ImageFileErrorKind, ImageFormat, jpeg_decoder, png_reader, webp_decoder};

/// Decoded pixels in the Pillow mode the reference would see, since resizing depends on it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PillowPixels {
    /// Mode "1" (1-bit grey PNG): one byte per pixel, 0 or 255; resized with NEAREST.
    Bilevel(Vec<u8>),
    /// Mode "L" (grey; 2- and 4-bit PNG grey scaled by 0x55 / 0x11).
    L(Vec<u8>),
    /// Mode "LA" (grey + alpha, interleaved); resized premultiplied.
    La(Vec<u8>),
    /// Mode "RGB" (also 16-bit RGB PNG, high bytes, as Pillow's `RGB;16B` unpacker).
    Rgb(Vec<u8>),
    /// Mode "RGBA" (also 16-bit RGBA / grey-alpha PNG, high bytes); resized premultiplied.
    Rgba(Vec<u8>),
    /// Mode "P": palette indices and the 256-entry RGB palette (entries PLTE lacks are black);
    /// resized with NEAREST on the indices.
    Palette {
        /// One index per pixel.
        indices: Vec<u8>,
        /// RGB of each index.
        palette: Box<[[u8; 3]; 256]>,
    },
    /// Mode "I;16" (16-bit grey PNG); resized in double precision, then clamped to 255 by
    /// `convert("RGB")`.
    I16(Vec<u16>),
}

impl PillowPixels {
    /// Values per pixel, to check a buffer against the image size.
    fn samples_per_pixel(&self) -> usize {
        match self {
            Self::Bilevel(_) | Self::L(_) | Self::Palette { .. } | Self::I16(_) => 1,
            Self::La(_) => 2,
            Self::Rgb(_) => 3,
            Self::Rgba(_) => 4,
        }
    }

    /// Number of stored values, to check a buffer against the image size.
    fn len(&self) -> usize {
        match self {
            Self::Bilevel(v) | Self::L(v) | Self::La(v) | Self::Rgb(v) | Self::Rgba(v) => v.len(),
            Self::Palette { indices, .. } => indices.len(),
            Self::I16(v) => v.len(),
        }
    }
}

/// A decoded image as Pillow would hold it after `Image.open`, ready for `resize_crop_rgb`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceImage {
    width: u32,
    height: u32,
    pixels: PillowPixels,
}

impl SourceImage {
    /// Wraps pixels of a known mode; `None` if the size is zero or the buffer length is wrong.
    pub fn new(width: u32, height: u32, pixels: PillowPixels) -> Option<Self> {
        let expected = (width as usize).checked_mul(height as usize)?.checked_mul(pixels.samples_per_pixel())?;
        (width > 0 && height > 0 && pixels.len() == expected).then_some(Self { width, height, pixels })
    }

    /// Width in pixels, for reporting and for callers that keep the original size.
    pub fn width(&self) -> u32 {
        self.width
    }

    /// Height in pixels, for reporting and for callers that keep the original size.
    pub fn height(&self) -> u32 {
        self.height
    }

    /// The pixels in their Pillow mode, for tests and diagnostics.
    pub fn pixels(&self) -> &PillowPixels {
        &self.pixels
    }

    /// Pillow's name for the mode ("1", "L", "LA", "RGB", "RGBA", "P", "I;16"), to compare with
    /// `Image.open(path).mode` in parity tests.
    pub fn pillow_mode(&self) -> &'static str {
        match self.pixels {
            PillowPixels::Bilevel(_) => "1",
            PillowPixels::L(_) => "L",
            PillowPixels::La(_) => "LA",
            PillowPixels::Rgb(_) => "RGB",
            PillowPixels::Rgba(_) => "RGBA",
            PillowPixels::Palette { .. } => "P",
            PillowPixels::I16(_) => "I;16",
        }
    }
}

/// Decodes PNG, JPEG or WebP bytes (format sniffed from the content, not the extension) into the
/// Pillow mode the reference would see; the declared size is checked before any pixel buffer is
/// allocated.
pub fn decode_image(bytes: &[u8]) -> Result<SourceImage, ImageFileErrorKind> {
    match ImageFormat::of(bytes)? {
        ImageFormat::Png => decode_png(bytes),
        ImageFormat::Jpeg => decode_with(jpeg_decoder(bytes)?, ImageFormat::Jpeg),
        ImageFormat::WebP => decode_with(webp_decoder(bytes)?, ImageFormat::WebP),
    }
}

/// Builds a `SourceImage` from a buffer the decoder sized itself.
fn source(
    width: u32,
    height: u32,
    pixels: PillowPixels,
    format: ImageFormat,
) -> Result<SourceImage, ImageFileErrorKind> {
    SourceImage::new(width, height, pixels)
        .ok_or_else(|| corrupt(format, "decoded buffer does not match the declared size"))
}

/// A decoder complaint of our own about one format.
fn corrupt(format: ImageFormat, message: impl Into<String>) -> ImageFileErrorKind {
    ImageFileErrorKind::Corrupt { format, message: message.into() }
}

/// PNG through the png crate with no transformations, unpacked as Pillow's `_MODES` table says:
/// tRNS, gamma and ICC are ignored (they change no pixel in the reference).
fn decode_png(bytes: &[u8]) -> Result<SourceImage, ImageFileErrorKind> {
    let mut reader = png_reader(bytes)?;

    let info = reader.info();
    let (width, height, interlaced) = (info.width, info.height, info.interlaced);
    let (color, depth) = (info.color_type, info.bit_depth);
    let palette = info.palette.as_ref().map(|p| p.to_vec());
    let (w, h) = (width as usize, height as usize);
    let too_large = || ImageFileErrorKind::TooLarge { width, height };
    let line = reader.output_line_size(width).ok_or_else(too_large)?;
    let mut raw = vec![0u8; line.checked_mul(h).ok_or_else(too_large)?];
    let bits_per_pixel = color.samples() as u8 * depth as u8;
    // Read exactly the image's rows and stop: asking for one more would look for IEND, which
    // Pillow does not need either.
    let mut y = 0;
    for _ in 0..png_row_count(width, height, interlaced) {
        let row = reader
            .next_interlaced_row()
            .map_err(|e| corrupt(ImageFormat::Png, e.to_string()))?
            .ok_or_else(|| corrupt(ImageFormat::Png, "image data ends early"))?;
        match row.interlace() {
            png::InterlaceInfo::Adam7(pass) => {
                png::expand_interlaced_row(&mut raw, line, row.data(), pass, bits_per_pixel);
            }
            png::InterlaceInfo::Null(_) => {
                let dst = raw.get_mut(y * line..(y + 1) * line).unwrap_or_default();
                for (d, s) in dst.iter_mut().zip(row.data()) {
                    *d = *s;
                }
                y += 1;
            }
        }
    }
    let rows = || raw.chunks_exact(line);

    use png::{BitDepth as D, ColorType as C};
    let pixels = match (color, depth) {
        (C::Grayscale, D::One) => PillowPixels::Bilevel(unpack_bits(rows(), w, 1, 255)),
        (C::Grayscale, D::Two) => PillowPixels::L(unpack_bits(rows(), w, 2, 0x55)),
        (C::Grayscale, D::Four) => PillowPixels::L(unpack_bits(rows(), w, 4, 0x11)),
        (C::Grayscale, D::Eight) => PillowPixels::L(raw),
        (C::Grayscale, D::Sixteen) => {
            PillowPixels::I16(raw.chunks_exact(2).map(|b| u16::from_be_bytes([b[0], b[1]])).collect())
        }
        (C::Rgb, D::Eight) => PillowPixels::Rgb(raw),
        (C::Rgb, D::Sixteen) => PillowPixels::Rgb(raw.iter().step_by(2).copied().collect()),
        (C::GrayscaleAlpha, D::Eight) => PillowPixels::La(raw),
        // Pillow opens 16-bit grey+alpha as "RGBA" through its "LA;16B" unpacker.
        (C::GrayscaleAlpha, D::Sixteen) => {
            PillowPixels::Rgba(raw.chunks_exact(4).flat_map(|p| [p[0], p[0], p[0], p[2]]).collect())
        }
        (C::Rgba, D::Eight) => PillowPixels::Rgba(raw),
        (C::Rgba, D::Sixteen) => PillowPixels::Rgba(raw.iter().step_by(2).copied().collect()),
        (C::Indexed, depth) => {
            let bits = match depth {
                D::One => 1,
                D::Two => 2,
                D::Four => 4,
                _ => 8,
            };
            let Some(plte) = palette else {
                return Err(corrupt(ImageFormat::Png, "indexed image without PLTE"));
            };
            // Pillow's palette starts all black; PLTE fills the first entries.
            let mut table = Box::new([[0u8; 3]; 256]);
            for (entry, rgb) in table.iter_mut().zip(plte.chunks_exact(3)) {
                entry.copy_from_slice(rgb);
            }
            let indices = if bits == 8 { raw } else { unpack_bits(rows(), w, bits, 1) };
            PillowPixels::Palette { indices, palette: table }
        }
        (color, depth) => {
            return Err(corrupt(ImageFormat::Png, format!("unsupported colour type {color:?} at {depth:?}")));
        }
    };
    source(width, height, pixels, ImageFormat::Png)
}

/// Rows a PNG's image data holds: the height, or for Adam7 the rows of every non-empty pass.
fn png_row_count(width: u32, height: u32, interlaced: bool) -> usize {
    if !interlaced {
        return height as usize;
    }
    // (x offset, y offset, x step, y step) of the seven passes.
    const PASSES: [(u32, u32, u32, u32); 7] =
        [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)];
    PASSES
        .iter()
        .filter(|&&(x0, y0, _, _)| width > x0 && height > y0)
        .map(|&(_, y0, _, dy)| (height - y0).div_ceil(dy) as usize)
        .sum()
}

/// Unpacks MSB-first packed samples of `bits` bits, multiplying each by `scale` (Pillow's
/// `unpack1`, `unpackL2`, `unpackL4`, `unpackP1/2/4`).
fn unpack_bits<'a>(rows: impl Iterator<Item = &'a [u8]>, width: usize, bits: usize, scale: u8) -> Vec<u8> {
    let mask = (1u16 << bits) - 1;
    let per_byte = 8 / bits;
    let mut out = Vec::new();
    for row in rows {
        out.extend((0..width).map(|x| {
            let byte = u16::from(row.get(x / per_byte).copied().unwrap_or(0));
            let shift = 8 - bits * (x % per_byte + 1);
            // Scales (255 for 1 bit, 0x55, 0x11, or 1 for indices) keep the result in range.
            ((byte >> shift) & mask) as u8 * scale
        }));
    }
    out
}

/// JPEG through the image crate (zune-jpeg); Pillow uses libjpeg-turbo, so pixels may differ by
/// a few LSB. CMYK files come back converted to RGB by the decoder (Pillow would resize in CMYK).
/// WebP through the image crate (image-webp): "RGBA" when the file has alpha, else "RGB", as
/// Pillow's WebP plugin; the first frame of an animation. Either decoder arrives with its declared
/// size checked; this decodes straight into a buffer of the decoder's colour type.
fn decode_with(decoder: impl image::ImageDecoder, format: ImageFormat) -> Result<SourceImage, ImageFileErrorKind> {
    let (width, height) = decoder.dimensions();
    let color = decoder.color_type();
    let size = usize::try_from(decoder.total_bytes()).map_err(|_| ImageFileErrorKind::TooLarge { width, height })?;
    let mut buf = vec![0u8; size];
    decoder.read_image(&mut buf).map_err(|e| corrupt(format, e.to_string()))?;
    let pixels = match color {
        image::ColorType::L8 => PillowPixels::L(buf),
        image::ColorType::La8 => PillowPixels::La(buf),
        image::ColorType::Rgb8 => PillowPixels::Rgb(buf),
        image::ColorType::Rgba8 => PillowPixels::Rgba(buf),
        other => {
            return Err(corrupt(format, format!("unexpected decoded colour type {other:?}")));
        }
    };
    source(width, height, pixels, format)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests may unwrap (house style rule 11).
mod tests {
    use super::*;
    use crate::model::preprocess::tests::pattern;
    use std::time::{Duration, Instant};

    fn encode_png(
        width: u32,
        height: u32,
        color: png::ColorType,
        depth: png::BitDepth,
        data: &[u8],
        palette: Option<&[u8]>,
        trns: Option<&[u8]>,
    ) -> Vec<u8> {
        let mut out = Vec::new();
        let mut encoder = png::Encoder::new(&mut out, width, height);
        encoder.set_color(color);
        encoder.set_depth(depth);
        if let Some(p) = palette {
            encoder.set_palette(p.to_vec());
        }
        if let Some(t) = trns {
            encoder.set_trns(t.to_vec());
        }
        let mut writer = encoder.write_header().unwrap();
        writer.write_image_data(data).unwrap();
        writer.finish().unwrap();
        out
    }

    fn crc32(bytes: &[u8]) -> u32 {
        let mut crc = 0xFFFF_FFFFu32;
        for &b in bytes {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = if crc & 1 != 0 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
            }
        }
        !crc
    }

    /// A PNG that is only a signature and a valid IHDR declaring `width`×`height` RGB.
    fn png_header_only(width: u32, height: u32) -> Vec<u8> {
        let mut body = b"IHDR".to_vec();
        body.extend(width.to_be_bytes());
        body.extend(height.to_be_bytes());
        body.extend([8, 2, 0, 0, 0]);
        let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
        out.extend(13u32.to_be_bytes());
        out.extend(&body);
        out.extend(crc32(&body).to_be_bytes());
        out
    }

    #[test]
    fn empty_and_foreign_bytes_are_refused() {
        assert!(matches!(decode_image(&[]), Err(ImageFileErrorKind::Empty)));
        assert!(matches!(decode_image(b"GIF89a......"), Err(ImageFileErrorKind::UnsupportedFormat)));
        assert!(matches!(decode_image(b"hello"), Err(ImageFileErrorKind::UnsupportedFormat)));
    }

    #[test]
    fn truncated_files_are_corrupt() {
        let png = encode_png(64, 64, png::ColorType::Rgb, png::BitDepth::Eight, &pattern(64, 64, 3), None, None);
        for cut in [9, 30, png.len() / 2] {
            assert!(matches!(decode_image(&png[..cut]), Err(ImageFileErrorKind::Corrupt { .. })), "cut {cut}");
        }
        // Without IEND, as Pillow, the image still decodes.
        let no_iend = &png[..png.len() - 12];
        assert_eq!(decode_image(no_iend).unwrap().pillow_mode(), "RGB");
        assert!(matches!(decode_image(&[0xFF, 0xD8, 0xFF, 0xE0, 0, 16]), Err(ImageFileErrorKind::Corrupt { .. })));
        assert!(matches!(decode_image(b"RIFF\0\0\0\0WEBPVP8 "), Err(ImageFileErrorKind::Corrupt { .. })));
    }

    #[test]
    fn png_bomb_header_is_refused_before_allocating() {
        for (w, h) in [(70_000, 10), (60_000, 60_000), (1 << 30, 1 << 30)] {
            let start = Instant::now();
            let err = decode_image(&png_header_only(w, h)).unwrap_err();
            assert!(matches!(err, ImageFileErrorKind::TooLarge { width, height } if width == w && height == h));
            assert!(start.elapsed() < Duration::from_millis(200));
        }
        assert!(matches!(decode_image(&png_header_only(0, 5)), Err(ImageFileErrorKind::ZeroSize { .. })));
    }

    #[test]
    fn jpeg_and_webp_bomb_headers_are_refused() {
        let mut jpeg = Vec::new();
        image::codecs::jpeg::JpegEncoder::new(&mut jpeg)
            .encode(&pattern(16, 16, 3), 16, 16, image::ExtendedColorType::Rgb8)
            .unwrap();
        let sof = jpeg.windows(2).position(|m| m == [0xFF, 0xC0]).unwrap();
        jpeg[sof + 5..sof + 9].copy_from_slice(&[0xEA, 0x60, 0xEA, 0x60]); // 60000 × 60000
        let start = Instant::now();
        assert!(matches!(decode_image(&jpeg), Err(ImageFileErrorKind::TooLarge { width: 60_000, height: 60_000 })));
        assert!(start.elapsed() < Duration::from_millis(500));

        let mut webp = Vec::new();
        image::codecs::webp::WebPEncoder::new_lossless(&mut webp)
            .encode(&pattern(16, 16, 3), 16, 16, image::ExtendedColorType::Rgb8)
            .unwrap();
        assert_eq!(&webp[12..16], b"VP8L");
        let bits = u32::from_le_bytes(webp[21..25].try_into().unwrap());
        let huge = (bits & !0x0FFF_FFFF) | 16_382 | (16_382 << 14); // 16383 × 16383
        webp[21..25].copy_from_slice(&huge.to_le_bytes());
        let start = Instant::now();
        let result = decode_image(&webp);
        assert!(matches!(result, Err(ImageFileErrorKind::TooLarge { width: 16_383, height: 16_383 })), "{result:?}");
        assert!(start.elapsed() < Duration::from_millis(500));
    }

    #[test]
    fn png_modes_follow_pillow() {
        use png::{BitDepth as D, ColorType as C};
        let open = |bytes: Vec<u8>| decode_image(&bytes).unwrap();

        let bilevel = open(encode_png(9, 1, C::Grayscale, D::One, &[0b1010_0000, 0b1000_0000], None, None));
        assert_eq!(bilevel.pixels(), &PillowPixels::Bilevel(vec![255, 0, 255, 0, 0, 0, 0, 0, 255]));

        let grey2 = open(encode_png(4, 1, C::Grayscale, D::Two, &[0b0001_1011], None, None));
        assert_eq!(grey2.pixels(), &PillowPixels::L(vec![0, 85, 170, 255]));

        let grey16 = open(encode_png(2, 1, C::Grayscale, D::Sixteen, &[0x01, 0x2C, 0xFF, 0xFF], None, None));
        assert_eq!(grey16.pixels(), &PillowPixels::I16(vec![300, 65535]));

        let rgb16 = open(encode_png(1, 1, C::Rgb, D::Sixteen, &[1, 2, 3, 4, 5, 6], None, None));
        assert_eq!(rgb16.pixels(), &PillowPixels::Rgb(vec![1, 3, 5]));

        let la16 = open(encode_png(1, 1, C::GrayscaleAlpha, D::Sixteen, &[7, 8, 9, 10], None, None));
        assert_eq!(la16.pixels(), &PillowPixels::Rgba(vec![7, 7, 7, 9]));

        let grey_trns = open(encode_png(2, 1, C::Grayscale, D::Eight, &[5, 6], None, Some(&[0, 5])));
        assert_eq!(grey_trns.pillow_mode(), "L");

        let indexed = open(encode_png(3, 1, C::Indexed, D::Eight, &[0, 1, 7], Some(&[1, 2, 3, 4, 5, 6]), None));
        let PillowPixels::Palette { indices, palette } = indexed.pixels() else {
            panic!("expected P, got {}", indexed.pillow_mode());
        };
        assert_eq!(indices, &[0, 1, 7]);
        assert_eq!((palette[0], palette[1], palette[7]), ([1, 2, 3], [4, 5, 6], [0, 0, 0]));
    }
}
