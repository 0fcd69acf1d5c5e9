//! Image file → model input, bit for bit as ImageReward's reference preprocessing.
//!
//! Reference: THUDM/ImageReward `c1392c6`, `ImageReward/ImageReward.py` `_transform(224)` (copied
//! from openai/CLIP): `Resize(224, BICUBIC)` → `CenterCrop(224)` → `convert("RGB")` → `ToTensor()`
//! → `Normalize(MEAN, STD)`, run by torchvision 0.26 on an image opened by Pillow 13.0.0.
//!
//! The pixels depend on Pillow's own behaviour, re-implemented here from its source
//! (python-pillow/Pillow, 13.0.0): `src/PIL/PngImagePlugin.py` (which mode each PNG opens as),
//! `src/PIL/Image.py` `Image.resize` (no-op when the size is unchanged, NEAREST for "1"/"P",
//! premultiplied alpha for "LA"/"RGBA"), `src/libImaging/Resample.c` (separable bicubic, a = −0.5,
//! support scaled by the downscale factor, 22-bit fixed point for 8-bit images, double precision
//! for "I;16"), `src/libImaging/Geometry.c` `ImagingScaleAffine` (NEAREST) and
//! `src/libImaging/Convert.c` (premultiply, unpremultiply, every mode → RGB).
//!
//! Only the 224×224 crop window of the resized image is computed: each output pixel depends only
//! on its own source window, so the result is identical to resizing in full and then cropping,
//! and a 1×20000 image costs kilobytes instead of the gigabytes of a full resize.

use std::io::Cursor;
use std::path::{Path, PathBuf};

/// Side of the square model input in pixels (`_transform(224)`, `config.yaml` `image_size`).
pub const IMAGE_SIZE: usize = 224;

/// Per-channel mean of `Normalize` (CLIP's), quoted from the reference; torch rounds it to f32.
pub const MEAN: [f64; 3] = [0.48145466, 0.4578275, 0.40821073];

/// Per-channel standard deviation of `Normalize` (CLIP's), quoted; torch rounds it to f32.
pub const STD: [f64; 3] = [0.26862954, 0.26130258, 0.27577711];

/// Largest accepted width or height, checked before decoding (JPEG's own maximum).
pub const MAX_SIDE_PX: u32 = 65_535;

/// Largest accepted pixel count (128 Mi px), checked before decoding so a decompression bomb
/// never allocates its declared size (Pillow refuses above 179 Mpx; we stop a little earlier).
pub const MAX_PIXELS: u64 = 128 * 1024 * 1024;

/// Largest file read into memory for decoding (no real PNG/JPEG/WebP within the pixel limit is larger).
pub const MAX_FILE_BYTES: u64 = 1 << 30;

/// Fractional bits of Pillow's 8-bit resampling coefficients (`PRECISION_BITS` = 32 − 8 − 2).
const PRECISION_BITS: u32 = 22;

/// Rounding offset Pillow starts every 8-bit accumulator with.
const ROUND_HALF: i32 = 1 << (PRECISION_BITS - 1);

/// Bicubic support radius of Pillow's `BICUBIC` filter before scaling.
const BICUBIC_SUPPORT: f64 = 2.0;

/// Why an image in memory could not be turned into pixels.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// Zero bytes: typically a file a generator has only just created.
    #[error("empty file (0 bytes)")]
    Empty,
    /// The bytes are not PNG, JPEG or WebP (the formats the app reads).
    #[error("not a PNG, JPEG or WebP image")]
    UnsupportedFormat,
    /// The decoder rejected the data (truncated, corrupt, or a variant it cannot read).
    #[error("corrupt or unsupported {format} image: {message}")]
    Corrupt {
        /// "PNG", "JPEG" or "WebP".
        format: &'static str,
        /// The decoder's message.
        message: String,
    },
    /// The header declares more pixels than we are willing to allocate.
    #[error("image is {width}×{height} px, over the limit of {MAX_SIDE_PX} px a side and {MAX_PIXELS} px")]
    TooLarge {
        /// Declared width.
        width: u32,
        /// Declared height.
        height: u32,
    },
    /// The header declares an empty image.
    #[error("image has zero size ({width}×{height} px)")]
    ZeroSize {
        /// Declared width.
        width: u32,
        /// Declared height.
        height: u32,
    },
}

impl DecodeError {
    /// Names the file the bytes came from, so a bad file is one reported item.
    pub fn at(self, path: &Path) -> PreprocessError {
        let path = path.to_path_buf();
        match self {
            Self::Empty => PreprocessError::Empty { path },
            Self::UnsupportedFormat => PreprocessError::UnsupportedFormat { path },
            Self::Corrupt { format, message } => PreprocessError::Corrupt { path, format, message },
            Self::TooLarge { width, height } => PreprocessError::TooLarge { path, width, height },
            Self::ZeroSize { width, height } => PreprocessError::ZeroSize { path, width, height },
        }
    }
}

/// Why an image file could not be turned into model input; every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum PreprocessError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The path is a folder, FIFO, socket or device rather than a regular file.
    #[error("{path}: not a regular file")]
    NotAFile {
        /// The path.
        path: PathBuf,
    },
    /// The file is larger than any image we accept; it is not read.
    #[error("{path}: file is {bytes} bytes, over the limit of {MAX_FILE_BYTES} bytes")]
    FileTooLarge {
        /// The file.
        path: PathBuf,
        /// Its size.
        bytes: u64,
    },
    /// The file has zero bytes.
    #[error("{path}: empty file (0 bytes)")]
    Empty {
        /// The file.
        path: PathBuf,
    },
    /// The file is not PNG, JPEG or WebP.
    #[error("{path}: not a PNG, JPEG or WebP image")]
    UnsupportedFormat {
        /// The file.
        path: PathBuf,
    },
    /// The decoder rejected the file.
    #[error("{path}: corrupt or unsupported {format} image: {message}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// "PNG", "JPEG" or "WebP".
        format: &'static str,
        /// The decoder's message.
        message: String,
    },
    /// The header declares more pixels than we are willing to allocate.
    #[error("{path}: image is {width}×{height} px, over the limit of {MAX_SIDE_PX} px a side and {MAX_PIXELS} px")]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Declared width.
        width: u32,
        /// Declared height.
        height: u32,
    },
    /// The header declares an empty image.
    #[error("{path}: image has zero size ({width}×{height} px)")]
    ZeroSize {
        /// The file.
        path: PathBuf,
        /// Declared width.
        width: u32,
        /// Declared height.
        height: u32,
    },
}

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

    /// The pixels as 8-bit RGBA for display (thumbnails, the viewer); 16-bit grey keeps its high
    /// byte, unlike the model's input, which follows the reference's clip.
    pub fn to_rgba8(&self) -> Vec<u8> {
        let gray = |v: u8| [v, v, v, 255];
        match &self.pixels {
            PillowPixels::Bilevel(v) | PillowPixels::L(v) => v.iter().flat_map(|&g| gray(g)).collect(),
            PillowPixels::La(v) => v.chunks_exact(2).flat_map(|p| [p[0], p[0], p[0], p[1]]).collect(),
            PillowPixels::Rgb(v) => v.chunks_exact(3).flat_map(|p| [p[0], p[1], p[2], 255]).collect(),
            PillowPixels::Rgba(v) => v.clone(),
            PillowPixels::Palette { indices, palette } => indices
                .iter()
                .flat_map(|&i| {
                    let [r, g, b] = palette[usize::from(i)];
                    [r, g, b, 255]
                })
                .collect(),
            PillowPixels::I16(v) => v.iter().flat_map(|&g| gray(g.to_be_bytes()[0])).collect(),
        }
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

// ---------------------------------------------------------------------------------------------
// Decoding
// ---------------------------------------------------------------------------------------------

/// Reads and decodes an image file (format sniffed from its content, not its extension).
pub fn load_image(path: &Path) -> Result<SourceImage, PreprocessError> {
    decode_image(&read_image_file(path)?).map_err(|e| e.at(path))
}

/// Reads an image file's bytes, refusing what is not a regular file (a FIFO would block) or is
/// over [`MAX_FILE_BYTES`], so callers that also need the bytes (metadata) read the file once.
pub fn read_image_file(path: &Path) -> Result<Vec<u8>, PreprocessError> {
    let read_error = |source| PreprocessError::Read { path: path.to_path_buf(), source };
    let meta = std::fs::metadata(path).map_err(read_error)?;
    // A FIFO or device would block or never end; a file over the limit is not read into memory.
    if !meta.is_file() {
        return Err(PreprocessError::NotAFile { path: path.to_path_buf() });
    }
    if meta.len() > MAX_FILE_BYTES {
        return Err(PreprocessError::FileTooLarge { path: path.to_path_buf(), bytes: meta.len() });
    }
    std::fs::read(path).map_err(read_error)
}

/// Checks, without decoding, that the bytes are not empty and start like a PNG, JPEG or WebP
/// image, so a non-image is reported as such before anything else is looked at.
pub fn check_format(bytes: &[u8]) -> Result<(), DecodeError> {
    if bytes.is_empty() {
        Err(DecodeError::Empty)
    } else if bytes.starts_with(b"\x89PNG\r\n\x1a\n")
        || bytes.starts_with(&[0xFF, 0xD8, 0xFF])
        || (bytes.len() >= 12 && bytes.starts_with(b"RIFF") && &bytes[8..12] == b"WEBP")
    {
        Ok(())
    } else {
        Err(DecodeError::UnsupportedFormat)
    }
}

/// Decodes PNG, JPEG or WebP bytes into the Pillow mode the reference would see; the declared
/// size is checked before any pixel buffer is allocated.
pub fn decode_image(bytes: &[u8]) -> Result<SourceImage, DecodeError> {
    check_format(bytes)?;
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        decode_png(bytes)
    } else if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        decode_jpeg(bytes)
    } else {
        decode_webp(bytes)
    }
}

/// Refuses empty and oversized images before anything is allocated for their pixels.
fn check_dimensions(width: u32, height: u32) -> Result<(), DecodeError> {
    if width == 0 || height == 0 {
        return Err(DecodeError::ZeroSize { width, height });
    }
    if width > MAX_SIDE_PX || height > MAX_SIDE_PX || u64::from(width) * u64::from(height) > MAX_PIXELS {
        return Err(DecodeError::TooLarge { width, height });
    }
    Ok(())
}

/// Wraps the image crate's error for one format.
fn corrupt(format: &'static str) -> impl Fn(image::ImageError) -> DecodeError {
    move |e| DecodeError::Corrupt { format, message: e.to_string() }
}

/// Wraps the png crate's error.
fn corrupt_png(e: png::DecodingError) -> DecodeError {
    DecodeError::Corrupt { format: "PNG", message: e.to_string() }
}

/// Builds a `SourceImage` from a buffer the decoder sized itself.
fn source(width: u32, height: u32, pixels: PillowPixels, format: &'static str) -> Result<SourceImage, DecodeError> {
    SourceImage::new(width, height, pixels)
        .ok_or(DecodeError::Corrupt { format, message: "decoded buffer does not match the declared size".to_owned() })
}

/// PNG through the png crate with no transformations, unpacked as Pillow's `_MODES` table says:
/// tRNS, gamma and ICC are ignored (they change no pixel in the reference).
fn decode_png(bytes: &[u8]) -> Result<SourceImage, DecodeError> {
    // IHDR must be the first chunk: signature (8), length (4), "IHDR" (4), width (4), height (4).
    if let (Some(b"IHDR"), Some(w), Some(h)) = (
        bytes.get(12..16),
        bytes.get(16..20).and_then(|b| <[u8; 4]>::try_from(b).ok()),
        bytes.get(20..24).and_then(|b| <[u8; 4]>::try_from(b).ok()),
    ) {
        check_dimensions(u32::from_be_bytes(w), u32::from_be_bytes(h))?;
    }

    let mut decoder = png::Decoder::new(Cursor::new(bytes));
    decoder.set_transformations(png::Transformations::IDENTITY);
    decoder.set_ignore_text_chunk(true);
    decoder.set_ignore_iccp_chunk(true);
    let header = decoder.read_header_info().map_err(corrupt_png)?;
    check_dimensions(header.width, header.height)?;
    let mut reader = decoder.read_info().map_err(corrupt_png)?;

    let info = reader.info();
    let (width, height, interlaced) = (info.width, info.height, info.interlaced);
    let (color, depth) = (info.color_type, info.bit_depth);
    let palette = info.palette.as_ref().map(|p| p.to_vec());
    let (w, h) = (width as usize, height as usize);
    let too_large = || DecodeError::TooLarge { width, height };
    let line = reader.output_line_size(width).ok_or_else(too_large)?;
    let mut raw = vec![0u8; line.checked_mul(h).ok_or_else(too_large)?];
    let bits_per_pixel = color.samples() as u8 * depth as u8;
    // Read exactly the image's rows and stop: asking for one more would look for IEND, which
    // Pillow does not need either.
    let mut y = 0;
    for _ in 0..png_row_count(width, height, interlaced) {
        let row = reader
            .next_interlaced_row()
            .map_err(corrupt_png)?
            .ok_or_else(|| DecodeError::Corrupt { format: "PNG", message: "image data ends early".to_owned() })?;
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
                return Err(DecodeError::Corrupt { format: "PNG", message: "indexed image without PLTE".to_owned() });
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
            return Err(DecodeError::Corrupt {
                format: "PNG",
                message: format!("unsupported colour type {color:?} at {depth:?}"),
            });
        }
    };
    source(width, height, pixels, "PNG")
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
fn decode_jpeg(bytes: &[u8]) -> Result<SourceImage, DecodeError> {
    let decoder = image::codecs::jpeg::JpegDecoder::new(Cursor::new(bytes)).map_err(corrupt("JPEG"))?;
    decode_with(decoder, "JPEG")
}

/// WebP through the image crate (image-webp): "RGBA" when the file has alpha, else "RGB", as
/// Pillow's WebP plugin; the first frame of an animation.
fn decode_webp(bytes: &[u8]) -> Result<SourceImage, DecodeError> {
    let decoder = image::codecs::webp::WebPDecoder::new(Cursor::new(bytes)).map_err(corrupt("WebP"))?;
    decode_with(decoder, "WebP")
}

/// Checks the declared size, then decodes straight into a buffer of the decoder's colour type.
fn decode_with(decoder: impl image::ImageDecoder, format: &'static str) -> Result<SourceImage, DecodeError> {
    let (width, height) = decoder.dimensions();
    check_dimensions(width, height)?;
    let color = decoder.color_type();
    let size = usize::try_from(decoder.total_bytes()).map_err(|_| DecodeError::TooLarge { width, height })?;
    let mut buf = vec![0u8; size];
    decoder.read_image(&mut buf).map_err(corrupt(format))?;
    let pixels = match color {
        image::ColorType::L8 => PillowPixels::L(buf),
        image::ColorType::La8 => PillowPixels::La(buf),
        image::ColorType::Rgb8 => PillowPixels::Rgb(buf),
        image::ColorType::Rgba8 => PillowPixels::Rgba(buf),
        other => {
            return Err(DecodeError::Corrupt { format, message: format!("unexpected decoded colour type {other:?}") });
        }
    };
    source(width, height, pixels, format)
}

// ---------------------------------------------------------------------------------------------
// Resize + centre crop
// ---------------------------------------------------------------------------------------------

/// torchvision `Resize(224)` output size `(width, height)`: shorter side → 224, longer →
/// `int(224 * long / short)` (Python true division, then truncation).
pub fn resized_size(width: usize, height: usize) -> (usize, usize) {
    let (short, long) = if width <= height { (width, height) } else { (height, width) };
    // `224 * long` is exact in f64 and the division is correctly rounded, as Python's int / int.
    let new_long = ((IMAGE_SIZE * long) as f64 / short as f64) as usize;
    if width <= height { (IMAGE_SIZE, new_long) } else { (new_long, IMAGE_SIZE) }
}

/// torchvision `CenterCrop(224)` offset on one axis: `int(round((size - 224) / 2.0))`, where
/// Python's `round` sends halves to the even neighbour.
pub fn center_crop_offset(size: usize) -> usize {
    let excess = size.saturating_sub(IMAGE_SIZE);
    let half = excess / 2;
    if excess % 2 == 1 && half % 2 == 1 { half + 1 } else { half }
}

/// Where the crop lies in the resized image, and whether there is a resize at all.
#[derive(Clone, Copy, Debug)]
struct CropPlan {
    width: usize,
    height: usize,
    new_width: usize,
    new_height: usize,
    left: usize,
    top: usize,
}

impl CropPlan {
    fn new(width: usize, height: usize) -> Self {
        let (new_width, new_height) = resized_size(width, height);
        Self {
            width,
            height,
            new_width,
            new_height,
            left: center_crop_offset(new_width),
            top: center_crop_offset(new_height),
        }
    }

    /// Pillow returns a plain copy when the size is unchanged (no premultiply round trip).
    fn is_resize(&self) -> bool {
        self.new_width != self.width || self.new_height != self.height
    }
}

/// The 224×224×3 RGB crop (HWC, u8), identical to
/// `np.array(CenterCrop(224)(Resize(224, BICUBIC)(img)).convert("RGB"))`.
pub fn resize_crop_rgb(img: &SourceImage) -> Vec<u8> {
    let plan = CropPlan::new(img.width as usize, img.height as usize);
    match &img.pixels {
        PillowPixels::Bilevel(v) => gray_to_rgb(&nearest_crop(v, &plan)),
        PillowPixels::L(v) => gray_to_rgb(&bicubic_crop::<1>(v, &plan, false)),
        PillowPixels::La(v) => {
            let premultiplied = plan.is_resize();
            let crop = bicubic_crop::<2>(v, &plan, premultiplied);
            crop.chunks_exact(2)
                .flat_map(|p| {
                    let l = if premultiplied { unpremultiply(p[0], p[1]) } else { p[0] };
                    [l, l, l]
                })
                .collect()
        }
        PillowPixels::Rgb(v) => bicubic_crop::<3>(v, &plan, false),
        PillowPixels::Rgba(v) => {
            let premultiplied = plan.is_resize();
            let crop = bicubic_crop::<4>(v, &plan, premultiplied);
            crop.chunks_exact(4)
                .flat_map(|p| {
                    if premultiplied {
                        [unpremultiply(p[0], p[3]), unpremultiply(p[1], p[3]), unpremultiply(p[2], p[3])]
                    } else {
                        [p[0], p[1], p[2]]
                    }
                })
                .collect()
        }
        PillowPixels::Palette { indices, palette } => {
            nearest_crop(indices, &plan).iter().flat_map(|&i| palette[usize::from(i)]).collect()
        }
        // Convert.c `I16_RGB`: values above 255 saturate.
        PillowPixels::I16(v) => bicubic_crop_i16(v, &plan)
            .iter()
            .flat_map(|&x| {
                let g = x.min(255) as u8;
                [g, g, g]
            })
            .collect(),
    }
}

/// Grey → RGB by repetition (Convert.c `l2rgb`, `bit2rgb`).
fn gray_to_rgb(gray: &[u8]) -> Vec<u8> {
    gray.iter().flat_map(|&g| [g, g, g]).collect()
}

/// The crop of an image that is not resized: rows `top..`, columns `left..` (`Image.crop`).
fn plain_crop<T: Copy>(data: &[T], plan: &CropPlan, channels: usize) -> Vec<T> {
    let row_len = IMAGE_SIZE * channels;
    let mut out = Vec::with_capacity(IMAGE_SIZE * row_len);
    for y in plan.top..plan.top + IMAGE_SIZE {
        let start = (y * plan.width + plan.left) * channels;
        out.extend_from_slice(&data[start..start + row_len]);
    }
    out
}

/// Pillow's `MULDIV255(a, b)`: `a * b / 255` rounded, in integers.
fn muldiv255(a: u8, b: u8) -> u8 {
    let t = u32::from(a) * u32::from(b) + 128;
    (((t >> 8) + t) >> 8) as u8
}

/// Convert.c `rgba2rgbA` / `la2lA` on one channel: undo premultiplication, truncating.
fn unpremultiply(c: u8, alpha: u8) -> u8 {
    if alpha == 255 || alpha == 0 { c } else { ((255 * u32::from(c)) / u32::from(alpha)).min(255) as u8 }
}

/// Convert.c `rgbA2rgba` / `lA2la` on a row of interleaved pixels whose last channel is alpha.
fn premultiply_row<const C: usize>(src: &[u8], dst: &mut [u8]) {
    for (s, d) in src.chunks_exact(C).zip(dst.chunks_exact_mut(C)) {
        let alpha = s[C - 1];
        for c in 0..C - 1 {
            d[c] = muldiv255(s[c], alpha);
        }
        d[C - 1] = alpha;
    }
}

/// Pillow's bicubic kernel with a = −0.5 (Resample.c `bicubic_filter`), same operation order.
fn bicubic(x: f64) -> f64 {
    let x = if x < 0.0 { -x } else { x };
    if x < 1.0 {
        (1.5 * x - 2.5) * x * x + 1.0
    } else if x < 2.0 {
        (((x - 5.0) * x + 8.0) * x - 4.0) * -0.5
    } else {
        0.0
    }
}

/// One output pixel's source window on one axis.
#[derive(Clone, Copy, Debug)]
struct Window {
    start: usize,
    len: usize,
}

/// Resample.c `precompute_coeffs` for the outputs `first..first + count` of an axis resized from
/// `in_size` to `out_size`: windows and normalised f64 weights, `ksize` weights per output.
#[derive(Debug)]
struct Weights {
    windows: Vec<Window>,
    ksize: usize,
    weights: Vec<f64>,
}

impl Weights {
    fn bicubic(in_size: usize, out_size: usize, first: usize, count: usize) -> Self {
        // The box is (0, in_size) in f32, exact for any size we accept.
        let scale = in_size as f64 / out_size as f64;
        let filterscale = if scale < 1.0 { 1.0 } else { scale };
        let support = BICUBIC_SUPPORT * filterscale;
        let ksize = support.ceil() as usize * 2 + 1;
        let inv_filterscale = 1.0 / filterscale;
        let mut windows = Vec::with_capacity(count);
        let mut weights = vec![0.0f64; count * ksize];
        for (i, k) in weights.chunks_exact_mut(ksize).enumerate() {
            let center = ((first + i) as f64 + 0.5) * scale;
            // C casts truncate toward zero.
            let xmin = ((center - support + 0.5) as i64).max(0);
            let xmax = ((center + support + 0.5) as i64).min(in_size as i64);
            let len = (xmax - xmin).clamp(0, ksize as i64) as usize;
            let xmin = xmin as usize;
            let mut sum = 0.0;
            for (x, w) in k[..len].iter_mut().enumerate() {
                *w = bicubic(((x + xmin) as f64 - center + 0.5) * inv_filterscale);
                sum += *w;
            }
            if sum != 0.0 {
                for w in &mut k[..len] {
                    *w /= sum;
                }
            }
            windows.push(Window { start: xmin, len });
        }
        Self { windows, ksize, weights }
    }

    /// One output's weights.
    fn of(&self, i: usize) -> &[f64] {
        &self.weights[i * self.ksize..][..self.windows[i].len]
    }
}

/// Resample.c `normalize_coeffs_8bpc`: weights in 22-bit fixed point, rounded away from zero.
#[derive(Debug)]
struct FixedWeights {
    windows: Vec<Window>,
    ksize: usize,
    coeffs: Vec<i32>,
}

impl FixedWeights {
    fn from_weights(w: &Weights) -> Self {
        let scale = f64::from(1u32 << PRECISION_BITS);
        let coeffs = w
            .weights
            .iter()
            .map(|&k| if k < 0.0 { (-0.5 + k * scale) as i32 } else { (0.5 + k * scale) as i32 })
            .collect();
        Self { windows: w.windows.clone(), ksize: w.ksize, coeffs }
    }

    fn of(&self, i: usize) -> &[i32] {
        &self.coeffs[i * self.ksize..][..self.windows[i].len]
    }
}

/// Resample.c `clip8`: drop the fraction, clamp to 0..=255.
fn clip8(acc: i32) -> u8 {
    (acc >> PRECISION_BITS).clamp(0, 255) as u8
}

/// Resample.c `ROUND_UP` then `CLIP16`, for the "I;16" passes.
fn round_clip16(ss: f64) -> u16 {
    let v = if ss >= 0.0 { (ss + 0.5) as i32 } else { (ss - 0.5) as i32 };
    v.clamp(0, 65535) as u16
}

/// Horizontal 8-bit pass over one source row slice that starts at column `col0`.
fn horizontal_row_u8<const C: usize>(src: &[u8], col0: usize, taps: &FixedWeights, out: &mut [u8]) {
    for (i, px) in out.chunks_exact_mut(C).enumerate() {
        let start = taps.windows[i].start - col0;
        let k = taps.of(i);
        let mut acc = [ROUND_HALF; C];
        for (s, &kv) in src[start * C..].chunks_exact(C).zip(k) {
            for c in 0..C {
                acc[c] = acc[c].wrapping_add(i32::from(s[c]).wrapping_mul(kv));
            }
        }
        for c in 0..C {
            px[c] = clip8(acc[c]);
        }
    }
}

/// Vertical 8-bit pass over rows (each `row_len` long) that start at source row `row0`.
fn vertical_u8(tmp: &[u8], row0: usize, row_len: usize, taps: &FixedWeights) -> Vec<u8> {
    let mut out = vec![0u8; taps.windows.len() * row_len];
    let mut acc = vec![0i32; row_len];
    for (i, out_row) in out.chunks_exact_mut(row_len).enumerate() {
        acc.fill(ROUND_HALF);
        let start = taps.windows[i].start - row0;
        for (row, &kv) in tmp[start * row_len..].chunks_exact(row_len).zip(taps.of(i)) {
            for (a, &v) in acc.iter_mut().zip(row) {
                *a = a.wrapping_add(i32::from(v).wrapping_mul(kv));
            }
        }
        for (o, &a) in out_row.iter_mut().zip(&acc) {
            *o = clip8(a);
        }
    }
    out
}

/// Pillow's bicubic resize of an 8-bit image with `C` interleaved channels, restricted to the
/// crop (Resample.c `ImagingResampleInner`: horizontal pass first, each pass only where the
/// size changes). With `premultiply`, alpha is premultiplied first as `Image.resize` does for
/// "LA"/"RGBA"; the result stays premultiplied.
fn bicubic_crop<const C: usize>(data: &[u8], plan: &CropPlan, premultiply: bool) -> Vec<u8> {
    if !plan.is_resize() {
        return plain_crop(data, plan, C);
    }
    let (w, h) = (plan.width, plan.height);
    let horizontal = (plan.new_width != w)
        .then(|| FixedWeights::from_weights(&Weights::bicubic(w, plan.new_width, plan.left, IMAGE_SIZE)));
    let vertical = (plan.new_height != h)
        .then(|| FixedWeights::from_weights(&Weights::bicubic(h, plan.new_height, plan.top, IMAGE_SIZE)));
    let (col0, col1) = horizontal.as_ref().map_or((plan.left, plan.left + IMAGE_SIZE), |t| source_range(&t.windows));
    let (row0, row1) = vertical.as_ref().map_or((plan.top, plan.top + IMAGE_SIZE), |t| source_range(&t.windows));

    let row_len = IMAGE_SIZE * C;
    let mut tmp = vec![0u8; (row1 - row0) * row_len];
    let mut scratch = vec![0u8; (col1 - col0) * C];
    for (y, out_row) in (row0..row1).zip(tmp.chunks_exact_mut(row_len)) {
        let src = &data[(y * w + col0) * C..(y * w + col1) * C];
        let src = if premultiply {
            premultiply_row::<C>(src, &mut scratch);
            &scratch[..]
        } else {
            src
        };
        match &horizontal {
            Some(taps) => horizontal_row_u8::<C>(src, col0, taps, out_row),
            None => out_row.copy_from_slice(src),
        }
    }
    match &vertical {
        Some(taps) => vertical_u8(&tmp, row0, row_len, taps),
        None => tmp,
    }
}

/// The source range `lo..hi` that a set of windows reads together.
fn source_range(windows: &[Window]) -> (usize, usize) {
    let lo = windows.iter().map(|w| w.start).min().unwrap_or(0);
    let hi = windows.iter().map(|w| w.start + w.len).max().unwrap_or(0);
    (lo, hi.max(lo))
}

/// Pillow's bicubic resize of an "I;16" image restricted to the crop (Resample.c
/// `_ImagingResample{Horizontal,Vertical}_16bpc`: f64 sums in window order, rounded and
/// clamped to 16 bits after each pass).
fn bicubic_crop_i16(data: &[u16], plan: &CropPlan) -> Vec<u16> {
    if !plan.is_resize() {
        return plain_crop(data, plan, 1);
    }
    let (w, h) = (plan.width, plan.height);
    let horizontal = (plan.new_width != w).then(|| Weights::bicubic(w, plan.new_width, plan.left, IMAGE_SIZE));
    let vertical = (plan.new_height != h).then(|| Weights::bicubic(h, plan.new_height, plan.top, IMAGE_SIZE));
    let (col0, col1) = horizontal.as_ref().map_or((plan.left, plan.left + IMAGE_SIZE), |t| source_range(&t.windows));
    let (row0, row1) = vertical.as_ref().map_or((plan.top, plan.top + IMAGE_SIZE), |t| source_range(&t.windows));

    let mut tmp = vec![0u16; (row1 - row0) * IMAGE_SIZE];
    for (y, out_row) in (row0..row1).zip(tmp.chunks_exact_mut(IMAGE_SIZE)) {
        let src = &data[y * w + col0..y * w + col1];
        match &horizontal {
            Some(taps) => {
                for (i, o) in out_row.iter_mut().enumerate() {
                    let start = taps.windows[i].start - col0;
                    let mut ss = 0.0f64;
                    for (&v, &k) in src[start..].iter().zip(taps.of(i)) {
                        ss += f64::from(v) * k;
                    }
                    *o = round_clip16(ss);
                }
            }
            None => out_row.copy_from_slice(src),
        }
    }
    let Some(taps) = vertical else {
        return tmp;
    };
    let mut out = vec![0u16; IMAGE_SIZE * IMAGE_SIZE];
    let mut acc = vec![0.0f64; IMAGE_SIZE];
    for (i, out_row) in out.chunks_exact_mut(IMAGE_SIZE).enumerate() {
        acc.fill(0.0);
        let start = taps.windows[i].start - row0;
        for (row, &k) in tmp[start * IMAGE_SIZE..].chunks_exact(IMAGE_SIZE).zip(taps.of(i)) {
            for (a, &v) in acc.iter_mut().zip(row) {
                *a += f64::from(v) * k;
            }
        }
        for (o, &a) in out_row.iter_mut().zip(&acc) {
            *o = round_clip16(a);
        }
    }
    out
}

/// Geometry.c `ImagingScaleAffine` source index of the outputs `first..first + count` on one
/// axis: the position starts at half a step and accumulates one step per output (in f64, as
/// Pillow does), then truncates; `None` outside the source, where Pillow leaves the fill (0).
fn nearest_indices(in_size: usize, out_size: usize, first: usize, count: usize) -> Vec<Option<usize>> {
    let step = in_size as f64 / out_size as f64;
    let mut pos = step * 0.5;
    let mut table = Vec::with_capacity(count);
    for x in 0..first + count {
        if x >= first {
            // COORD: negative → −1, else truncate.
            let index = if pos < 0.0 { None } else { Some(pos as usize) };
            table.push(index.filter(|&i| i < in_size));
        }
        pos += step;
    }
    table
}

/// NEAREST resize of a one-byte-per-pixel image ("1", "P"), restricted to the crop.
fn nearest_crop(data: &[u8], plan: &CropPlan) -> Vec<u8> {
    if !plan.is_resize() {
        return plain_crop(data, plan, 1);
    }
    let cols = nearest_indices(plan.width, plan.new_width, plan.left, IMAGE_SIZE);
    let rows = nearest_indices(plan.height, plan.new_height, plan.top, IMAGE_SIZE);
    let mut out = vec![0u8; IMAGE_SIZE * IMAGE_SIZE];
    for (row, out_row) in rows.iter().zip(out.chunks_exact_mut(IMAGE_SIZE)) {
        let Some(y) = *row else { continue };
        let src = &data[y * plan.width..(y + 1) * plan.width];
        for (col, o) in cols.iter().zip(out_row.iter_mut()) {
            if let Some(x) = *col {
                *o = src[x];
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Tensor
// ---------------------------------------------------------------------------------------------

/// `ToTensor()` + `Normalize(MEAN, STD)` of an HWC RGB u8 crop into CHW f32, with torch's
/// arithmetic: `x as f32 / 255`, then `(x - mean_f32) / std_f32`.
pub fn normalize_chw(rgb: &[u8]) -> Vec<f32> {
    let pixels = rgb.len() / 3;
    let mut out = vec![0.0f32; 3 * pixels];
    for (c, plane) in out.chunks_exact_mut(pixels.max(1)).enumerate().take(3) {
        let mean = MEAN[c] as f32;
        let std = STD[c] as f32;
        for (o, px) in plane.iter_mut().zip(rgb.chunks_exact(3)) {
            *o = (f32::from(px[c]) / 255.0 - mean) / std;
        }
    }
    out
}

/// The model input `[3, 224, 224]` for a decoded image.
pub fn preprocess_image(img: &SourceImage) -> Vec<f32> {
    normalize_chw(&resize_crop_rgb(img))
}

/// The model input `[3, 224, 224]` for an image file, exactly as the reference computes it.
pub fn preprocess_path(path: &Path) -> Result<Vec<f32>, PreprocessError> {
    Ok(preprocess_image(&load_image(path)?))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests may unwrap (house style rule 11).
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    /// FNV-1a 64, to pin whole crops against values recorded from Pillow 13.0.0.
    fn fnv1a(bytes: &[u8]) -> u64 {
        bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3))
    }

    /// The golden test pattern: channel c of pixel (x, y).
    fn pattern(width: usize, height: usize, channels: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(width * height * channels);
        for y in 0..height {
            for x in 0..width {
                let all = [(x * 31 + y * 17) % 256, (x * x + y * 3) % 256, (x ^ y) % 256, (x * y + 5) % 256];
                out.extend(all[..channels].iter().map(|&v| v as u8));
            }
        }
        out
    }

    fn image(width: u32, height: u32, pixels: PillowPixels) -> SourceImage {
        SourceImage::new(width, height, pixels).unwrap()
    }

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
    fn bicubic_kernel_has_pillows_values() {
        assert_eq!(bicubic(0.0), 1.0);
        assert_eq!(bicubic(1.0), 0.0);
        assert_eq!(bicubic(2.0), 0.0);
        assert_eq!(bicubic(0.5), 0.5625);
        assert_eq!(bicubic(-1.5), -0.0625);
    }

    #[test]
    fn weights_are_normalised_and_fixed_point_sums_stay_near_one() {
        for (in_size, out_size, first) in [
            (1024, 224, 0),
            (64, 358, 67),
            (1, 224, 0),
            (1, 67_200, 33_488),
            (20_000, 224, 0),
            (225, 224, 0),
            (300, 224, 0),
        ] {
            let w = Weights::bicubic(in_size, out_size, first, IMAGE_SIZE);
            let fixed = FixedWeights::from_weights(&w);
            for (i, win) in w.windows.iter().enumerate() {
                assert!(win.len >= 1 && win.len <= w.ksize);
                assert!(win.start + win.len <= in_size);
                let sum: f64 = w.of(i).iter().sum();
                assert!((sum - 1.0).abs() < 1e-12, "{in_size}->{out_size} #{i}: {sum}");
                let fixed_sum: i64 = fixed.of(i).iter().map(|&k| i64::from(k)).sum();
                assert!((fixed_sum - (1 << PRECISION_BITS)).abs() <= win.len as i64);
            }
        }
    }

    #[test]
    fn resized_size_matches_torchvision() {
        assert_eq!(resized_size(64, 40), (358, 224));
        assert_eq!(resized_size(40, 64), (224, 358));
        assert_eq!(resized_size(224, 500), (224, 500));
        assert_eq!(resized_size(1, 300), (224, 67_200));
        assert_eq!(resized_size(1000, 60), (3733, 224));
        assert_eq!(resized_size(225, 301), (224, 299));
        assert_eq!(resized_size(256, 256), (224, 224));
    }

    #[test]
    fn center_crop_offset_rounds_halves_to_even() {
        let cases = [(224, 0), (225, 0), (226, 1), (227, 2), (228, 2), (229, 2), (231, 4), (233, 4)];
        for (size, offset) in cases {
            assert_eq!(center_crop_offset(size), offset, "size {size}");
        }
    }

    #[test]
    fn premultiply_helpers_match_convert_c() {
        for x in 0..=255u8 {
            assert_eq!(muldiv255(x, 255), x);
            assert_eq!(muldiv255(x, 0), 0);
        }
        assert_eq!(muldiv255(128, 128), 64);
        assert_eq!(unpremultiply(64, 128), 127);
        assert_eq!(unpremultiply(200, 100), 255);
        assert_eq!(unpremultiply(37, 0), 37);
    }

    #[test]
    fn crops_match_pillow_golden_hashes() {
        // Values from Pillow 13.0.0 (resize BICUBIC / NEAREST, crop, convert("RGB")) on the same
        // patterns; the fixture script next to the integration tests regenerates them.
        let rgb = image(300, 257, PillowPixels::Rgb(pattern(300, 257, 3)));
        assert_eq!(fnv1a(&resize_crop_rgb(&rgb)), 0xca67_44ba_5456_dfb9);
        let rgba = image(301, 225, PillowPixels::Rgba(pattern(301, 225, 4)));
        assert_eq!(fnv1a(&resize_crop_rgb(&rgba)), 0xcb43_8ecb_dbe8_f0d7);
        let l = image(64, 40, PillowPixels::L(pattern(64, 40, 1)));
        assert_eq!(fnv1a(&resize_crop_rgb(&l)), 0x3501_c7d9_5602_2267);
        let i16: Vec<u16> = (0..230u16)
            .flat_map(|y| (0..250u16).map(move |x| ((u32::from(x) * 97 + u32::from(y) * 131) % 1000) as u16))
            .collect();
        let i16 = image(250, 230, PillowPixels::I16(i16));
        assert_eq!(fnv1a(&resize_crop_rgb(&i16)), 0x2b08_39b5_476d_9733);
        let mut palette = Box::new([[0u8; 3]; 256]);
        for (i, entry) in palette.iter_mut().enumerate().take(16) {
            *entry = [(i * 16) as u8, (255 - i * 16) as u8, ((i * 37) % 256) as u8];
        }
        let indices = (0..300).flat_map(|y| (0..40).map(move |x| ((x * 3 + y * 5) % 16) as u8)).collect();
        let p = image(40, 300, PillowPixels::Palette { indices, palette });
        assert_eq!(fnv1a(&resize_crop_rgb(&p)), 0xcc6d_e27f_e800_2ae5);
    }

    #[test]
    fn uniform_image_stays_uniform() {
        let px = [13u8, 200, 77];
        let img = image(300, 257, PillowPixels::Rgb(px.repeat(300 * 257)));
        let crop = resize_crop_rgb(&img);
        assert_eq!(crop.len(), IMAGE_SIZE * IMAGE_SIZE * 3);
        assert!(crop.chunks_exact(3).all(|p| p == px));
    }

    #[test]
    fn alpha_is_dropped_without_premultiply_only_when_size_is_unchanged() {
        let transparent = [200u8, 100, 50, 0];
        let same = image(224, 224, PillowPixels::Rgba(transparent.repeat(224 * 224)));
        assert!(resize_crop_rgb(&same).chunks_exact(3).all(|p| p == [200, 100, 50]));
        // Resized: premultiplied to black, and alpha 0 cannot bring the colour back.
        let resized = image(300, 300, PillowPixels::Rgba(transparent.repeat(300 * 300)));
        assert!(resize_crop_rgb(&resized).iter().all(|&v| v == 0));
    }

    #[test]
    fn sixteen_bit_grey_saturates_at_255() {
        let bright = image(224, 224, PillowPixels::I16(vec![1000; 224 * 224]));
        assert!(resize_crop_rgb(&bright).iter().all(|&v| v == 255));
        let dark = image(300, 300, PillowPixels::I16(vec![100; 300 * 300]));
        assert!(resize_crop_rgb(&dark).iter().all(|&v| v == 100));
    }

    #[test]
    fn palette_is_resized_by_index_with_nearest() {
        let mut palette = Box::new([[0u8; 3]; 256]);
        palette[0] = [255, 0, 0];
        palette[1] = [0, 0, 255];
        let img = image(2, 1, PillowPixels::Palette { indices: vec![0, 1], palette });
        let crop = resize_crop_rgb(&img);
        // 2×1 → 448×224, crop columns 112..336: left half index 0, right half index 1.
        for row in crop.chunks_exact(IMAGE_SIZE * 3) {
            assert!(row[..112 * 3].chunks_exact(3).all(|p| p == [255, 0, 0]));
            assert!(row[112 * 3..].chunks_exact(3).all(|p| p == [0, 0, 255]));
        }
    }

    #[test]
    fn tall_thin_image_is_cheap() {
        // Resizing in full would make 224 × 4,480,000 pixels (4 GB in Pillow); we touch a few rows.
        let gray: Vec<u8> = (0..20_000u32).map(|i| (i % 251) as u8).collect();
        let img = image(1, 20_000, PillowPixels::L(gray));
        let start = Instant::now();
        let crop = resize_crop_rgb(&img);
        assert_eq!(crop.len(), IMAGE_SIZE * IMAGE_SIZE * 3);
        assert!(start.elapsed() < Duration::from_secs(2));
        let bilevel = image(1, 20_000, PillowPixels::Bilevel(vec![255; 20_000]));
        assert!(resize_crop_rgb(&bilevel).iter().all(|&v| v == 255));
    }

    #[test]
    fn normalize_follows_torch_arithmetic() {
        let rgb = [0u8, 255, 128].repeat(IMAGE_SIZE * IMAGE_SIZE);
        let t = normalize_chw(&rgb);
        let n = IMAGE_SIZE * IMAGE_SIZE;
        assert_eq!(t.len(), 3 * n);
        assert_eq!(t[0], (0.0 - MEAN[0] as f32) / STD[0] as f32);
        assert_eq!(t[n], (1.0 - MEAN[1] as f32) / STD[1] as f32);
        assert_eq!(t[2 * n + 5], (128.0f32 / 255.0 - MEAN[2] as f32) / STD[2] as f32);
    }

    #[test]
    fn empty_and_foreign_bytes_are_refused() {
        assert!(matches!(decode_image(&[]), Err(DecodeError::Empty)));
        assert!(matches!(decode_image(b"GIF89a......"), Err(DecodeError::UnsupportedFormat)));
        assert!(matches!(decode_image(b"hello"), Err(DecodeError::UnsupportedFormat)));
    }

    #[test]
    fn truncated_files_are_corrupt() {
        let png = encode_png(64, 64, png::ColorType::Rgb, png::BitDepth::Eight, &pattern(64, 64, 3), None, None);
        for cut in [9, 30, png.len() / 2] {
            assert!(matches!(decode_image(&png[..cut]), Err(DecodeError::Corrupt { .. })), "cut {cut}");
        }
        // Without IEND, as Pillow, the image still decodes.
        let no_iend = &png[..png.len() - 12];
        assert_eq!(decode_image(no_iend).unwrap().pillow_mode(), "RGB");
        assert!(matches!(decode_image(&[0xFF, 0xD8, 0xFF, 0xE0, 0, 16]), Err(DecodeError::Corrupt { .. })));
        assert!(matches!(decode_image(b"RIFF\0\0\0\0WEBPVP8 "), Err(DecodeError::Corrupt { .. })));
    }

    #[test]
    fn png_bomb_header_is_refused_before_allocating() {
        for (w, h) in [(70_000, 10), (60_000, 60_000), (1 << 30, 1 << 30)] {
            let start = Instant::now();
            let err = decode_image(&png_header_only(w, h)).unwrap_err();
            assert!(matches!(err, DecodeError::TooLarge { width, height } if width == w && height == h));
            assert!(start.elapsed() < Duration::from_millis(200));
        }
        assert!(matches!(decode_image(&png_header_only(0, 5)), Err(DecodeError::ZeroSize { .. })));
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
        assert!(matches!(decode_image(&jpeg), Err(DecodeError::TooLarge { width: 60_000, height: 60_000 })));
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
        assert!(matches!(result, Err(DecodeError::TooLarge { width: 16_383, height: 16_383 })), "{result:?}");
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

    #[test]
    fn load_image_names_the_file() {
        let path = Path::new("/nonexistent/rewardlens/missing.png");
        let err = load_image(path).unwrap_err();
        assert!(matches!(&err, PreprocessError::Read { path: p, .. } if p == path));
        assert!(err.to_string().contains("missing.png"));
        let err = DecodeError::UnsupportedFormat.at(Path::new("a.txt"));
        assert_eq!(err.to_string(), "a.txt: not a PNG, JPEG or WebP image");
    }
}
