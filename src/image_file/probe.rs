//! The header probe: each format's decoder opened on the header only, the declared size checked
//! before any pixel buffer exists. The model's decoder starts from the same checked decoders.

use std::io::Cursor;

use image::ImageDecoder;
use image::codecs::jpeg::JpegDecoder;
use image::codecs::webp::WebPDecoder;

use super::error::ImageFileErrorKind;
use super::format::ImageFormat;
use super::limits::check_dimensions;

/// What an image's header declares, read without decoding a pixel (a scan stores it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Header {
    /// The format, from the magic bytes.
    pub format: ImageFormat,
    /// Declared width in pixels, within the limits.
    pub width: u32,
    /// Declared height in pixels, within the limits.
    pub height: u32,
}

/// Reads format and size from the header and checks them against the limits, without decoding
/// pixels, so a scan learns the dimensions of a large image for the price of its header.
pub fn probe(bytes: &[u8]) -> Result<Header, ImageFileErrorKind> {
    let format = ImageFormat::of(bytes)?;
    let (width, height) = match format {
        ImageFormat::Png => {
            let reader = png_reader(bytes)?;
            (reader.info().width, reader.info().height)
        }
        ImageFormat::Jpeg => jpeg_decoder(bytes)?.dimensions(),
        ImageFormat::WebP => webp_decoder(bytes)?.dimensions(),
    };
    Ok(Header { format, width, height })
}

/// A png-crate reader positioned at the image data, with no transformations (tRNS, gamma and
/// ICC are not applied; text chunks are skipped), its declared size already checked.
pub fn png_reader(bytes: &[u8]) -> Result<png::Reader<Cursor<&[u8]>>, ImageFileErrorKind> {
    // The raw IHDR first, so a bomb is reported as one even when its CRC does not match.
    if let Some((width, height)) = png_ihdr_size(bytes) {
        check_dimensions(width, height)?;
    }
    let mut decoder = png::Decoder::new(Cursor::new(bytes));
    decoder.set_transformations(png::Transformations::IDENTITY);
    decoder.set_ignore_text_chunk(true);
    decoder.set_ignore_iccp_chunk(true);
    let header = decoder.read_header_info().map_err(corrupt_png)?;
    check_dimensions(header.width, header.height)?;
    decoder.read_info().map_err(corrupt_png)
}

/// The image crate's JPEG decoder (zune-jpeg) after the headers, its declared size checked.
pub fn jpeg_decoder(bytes: &[u8]) -> Result<JpegDecoder<Cursor<&[u8]>>, ImageFileErrorKind> {
    let decoder = JpegDecoder::new(Cursor::new(bytes)).map_err(corrupt(ImageFormat::Jpeg))?;
    let (width, height) = decoder.dimensions();
    check_dimensions(width, height)?;
    Ok(decoder)
}

/// The image crate's WebP decoder (image-webp) after the headers, its declared size checked.
pub fn webp_decoder(bytes: &[u8]) -> Result<WebPDecoder<Cursor<&[u8]>>, ImageFileErrorKind> {
    let decoder = WebPDecoder::new(Cursor::new(bytes)).map_err(corrupt(ImageFormat::WebP))?;
    let (width, height) = decoder.dimensions();
    check_dimensions(width, height)?;
    Ok(decoder)
}

/// Width and height of a PNG's IHDR, which must be the first chunk: signature (8), length (4),
/// "IHDR" (4), width (4), height (4).
fn png_ihdr_size(bytes: &[u8]) -> Option<(u32, u32)> {
    if bytes.get(12..16)? != b"IHDR" {
        return None;
    }
    let width = u32::from_be_bytes(bytes.get(16..20)?.try_into().ok()?);
    let height = u32::from_be_bytes(bytes.get(20..24)?.try_into().ok()?);
    Some((width, height))
}

/// Wraps the image crate's error for one format.
fn corrupt(format: ImageFormat) -> impl Fn(image::ImageError) -> ImageFileErrorKind {
    move |e| ImageFileErrorKind::Corrupt { format, message: e.to_string() }
}

/// Wraps the png crate's error.
fn corrupt_png(e: png::DecodingError) -> ImageFileErrorKind {
    ImageFileErrorKind::Corrupt { format: ImageFormat::Png, message: e.to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::ImageEncoder;

    fn encoded(format: ImageFormat, width: u32, height: u32) -> Vec<u8> {
        let pixels = vec![90u8; width as usize * height as usize * 3];
        let mut out = Vec::new();
        let color = image::ExtendedColorType::Rgb8;
        match format {
            ImageFormat::Png => {
                image::codecs::png::PngEncoder::new(&mut out).write_image(&pixels, width, height, color)
            }
            ImageFormat::Jpeg => {
                image::codecs::jpeg::JpegEncoder::new(&mut out).write_image(&pixels, width, height, color)
            }
            ImageFormat::WebP => {
                image::codecs::webp::WebPEncoder::new_lossless(&mut out).write_image(&pixels, width, height, color)
            }
        }
        .unwrap();
        out
    }

    #[test]
    fn probe_reads_format_and_size_of_each_format() {
        for format in ImageFormat::ALL {
            let header = probe(&encoded(format, 37, 21)).unwrap();
            assert_eq!(header, Header { format, width: 37, height: 21 });
        }
    }

    #[test]
    fn probe_refuses_bombs_foreign_and_damaged_headers() {
        let mut bomb = encoded(ImageFormat::Png, 8, 8);
        bomb[16..20].copy_from_slice(&60_000u32.to_be_bytes());
        bomb[20..24].copy_from_slice(&60_000u32.to_be_bytes());
        assert_eq!(probe(&bomb), Err(ImageFileErrorKind::TooLarge { width: 60_000, height: 60_000 }));
        assert_eq!(probe(b""), Err(ImageFileErrorKind::Empty));
        assert_eq!(probe(b"GIF89a......"), Err(ImageFileErrorKind::UnsupportedFormat));
        let png = encoded(ImageFormat::Png, 8, 8);
        assert!(matches!(probe(&png[..20]), Err(ImageFileErrorKind::Corrupt { format: ImageFormat::Png, .. })));
        let jpeg = [0xFF, 0xD8, 0xFF, 0xE0, 0, 16];
        assert!(matches!(probe(&jpeg), Err(ImageFileErrorKind::Corrupt { format: ImageFormat::Jpeg, .. })));
    }
}
