//! Getting raw metadata text out of files: PNG text chunks (anywhere in the file), JPEG APP1
//! EXIF and COM segments, the WebP `EXIF` chunk, and an A1111 `.txt` sidecar, as the writers put
//! them there (Pillow's `PngImagePlugin`, piexif, AUTOMATIC1111/stable-diffusion-webui
//! `modules/images.py`, mcmonkeyprojects/SwarmUI `src/Utils/Image.cs`).
//!
//! Readers here are lenient: a truncated or odd file yields whatever text came before the damage.

use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use super::MetadataError;
use crate::image_file::{self, ImageFileErrorKind, ImageFormat};

/// Key under which the EXIF UserComment (0x9286) text is stored.
pub const USER_COMMENT: &str = "UserComment";
/// Key under which a JPEG COM segment's text is stored.
pub const JPEG_COMMENT: &str = "jpeg_comment";
/// Key under which the text of the `.txt` file beside the image is stored.
pub const SIDECAR_TXT: &str = "sidecar_txt";
/// Key under which the EXIF Software tag (0x0131) is stored.
pub const EXIF_SOFTWARE: &str = "exif_software";

/// A text chunk or segment bigger than this is not metadata we want to hold in memory.
const MAX_TEXT_BYTES: u32 = 64 << 20;
/// Sidecar files bigger than this are not infotext.
const MAX_SIDECAR_BYTES: u64 = 1 << 20;

/// Every piece of metadata text found in a file, as (key, text) in file order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RawMetadata {
    /// The (key, text) pairs: PNG keywords, or the names given by the constants above.
    pub entries: Vec<(String, String)>,
}

impl RawMetadata {
    /// The first text stored under `key`, so parsers can look up the chunk they know.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// Adds one (key, text) pair, as found.
    pub fn push(&mut self, key: &str, text: &str) {
        self.entries.push((key.to_string(), text.to_string()));
    }
}

/// Reads every piece of metadata text from an image file and its `.txt` sidecar.
pub fn read_raw_metadata(path: &Path) -> Result<RawMetadata, MetadataError> {
    // The guarded open never opens a FIFO (it would block); only regular files carry metadata.
    let file = match image_file::open(path) {
        Ok(file) => file,
        Err(e) if e.kind == ImageFileErrorKind::NotAFile => return Ok(RawMetadata::default()),
        Err(e) => return Err(e.into()),
    };
    let mut raw = raw_metadata_from_reader(path, BufReader::new(file))?;
    if let Some(text) = read_sidecar(path) {
        raw.entries.push((SIDECAR_TXT.to_string(), text));
    }
    Ok(raw)
}

/// Like [`read_raw_metadata`] for a file already read into memory, so a scan reads each file once.
pub fn raw_metadata_from_bytes(path: &Path, bytes: &[u8]) -> Result<RawMetadata, MetadataError> {
    let mut raw = raw_metadata_from_reader(path, std::io::Cursor::new(bytes))?;
    if let Some(text) = read_sidecar(path) {
        raw.entries.push((SIDECAR_TXT.to_string(), text));
    }
    Ok(raw)
}

/// The metadata inside the image itself (no sidecar); `path` only names errors.
fn raw_metadata_from_reader<R: Read + Seek>(path: &Path, mut reader: R) -> Result<RawMetadata, MetadataError> {
    let io_err = |source| MetadataError::Io { path: path.to_path_buf(), source };
    let mut raw = RawMetadata::default();
    let mut magic = [0u8; 12];
    let n = read_up_to(&mut reader, &mut magic).map_err(io_err)?;
    reader.seek(SeekFrom::Start(0)).map_err(io_err)?;
    let found = match ImageFormat::sniff(&magic[..n]) {
        Some(ImageFormat::Png) => png_text_chunks(&mut reader).and_then(|mut entries| {
            // Only a PNG that says nothing in text is searched for a message in its pixels.
            if !carries_generation_text(&entries) {
                reader.seek(SeekFrom::Start(0))?;
                if let Some(text) = super::stealth::png_stealth_text(std::io::BufReader::new(&mut reader)) {
                    push_hidden_text(&text, &mut entries);
                }
            }
            Ok(entries)
        }),
        Some(ImageFormat::Jpeg) => jpeg_metadata(reader),
        Some(ImageFormat::WebP) => webp_metadata(reader),
        None => Ok(Vec::new()),
    };
    raw.entries = found.map_err(io_err)?;
    Ok(raw)
}

/// Text keys that carry generation metadata: a file with none of them may hide it in its pixels.
const GENERATION_KEYS: [&str; 9] = [
    "parameters",
    "prompt",
    "workflow",
    "Comment",
    "Description",
    "invokeai_metadata",
    "sd-metadata",
    "Dream",
    "sui_image_params",
];

/// Whether a file's text entries already carry generation metadata (a generation key, or a
/// non-empty EXIF UserComment): only a file that says nothing is searched for it in its pixels.
fn carries_generation_text(entries: &[(String, String)]) -> bool {
    entries
        .iter()
        .any(|(key, text)| GENERATION_KEYS.contains(&key.as_str()) || (key == USER_COMMENT && !text.trim().is_empty()))
}

/// A stealth message's entries: JSON is unpacked into its keys (NovelAI's chunks, ComfyUI's
/// `prompt`/`workflow`), anything else is A1111 infotext.
fn push_hidden_text(text: &str, out: &mut Vec<(String, String)>) {
    let unpacked = unpack_json_text(text);
    if unpacked.is_empty() {
        out.push(("parameters".to_string(), text.to_string()));
    } else {
        out.extend(unpacked);
    }
}

/// The entries a JSON text stands for, by what its keys say it is: a ComfyUI API graph (nodes
/// with `class_type`, maybe beside other keys, as Civitai writes it) is a `prompt`; an object
/// with `prompt`/`workflow` graphs (as objects or as JSON strings) gives both; NovelAI's chunks
/// (`Comment`, `Description`, `Software`, …) give each as its own entry, leading NULs dropped.
/// Anything else gives nothing (the text stays where it was found).
pub fn unpack_json_text(text: &str) -> Vec<(String, String)> {
    use serde_json::Value;
    let trimmed = text.trim_start_matches('\0').trim_start();
    if !trimmed.starts_with('{') {
        return Vec::new();
    }
    let Some(map) = super::parse_json_object(trimmed) else { return Vec::new() };
    if map.values().any(|v| v.get("class_type").is_some()) {
        return vec![("prompt".to_string(), trimmed.to_string())];
    }
    let as_graph_text = |v: &Value| match v {
        Value::Object(_) => Some(v.to_string()),
        Value::String(s) if s.trim_start().starts_with('{') => Some(s.clone()),
        _ => None,
    };
    let graphs: Vec<(String, String)> = ["prompt", "workflow"]
        .iter()
        .filter_map(|k| map.get(*k).and_then(as_graph_text).map(|t| (k.to_string(), t)))
        .collect();
    if !graphs.is_empty() {
        return graphs;
    }
    let novelai = map.contains_key("Comment") && (map.contains_key("Software") || map.contains_key("Description"));
    if novelai {
        return map
            .iter()
            .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.trim_start_matches('\0').to_string())))
            .collect();
    }
    Vec::new()
}

/// The `.txt` beside the image (A1111 "save text information"), when it is a small regular file.
fn read_sidecar(image: &Path) -> Option<String> {
    let txt = image.with_extension("txt");
    if txt == image {
        return None;
    }
    let meta = std::fs::metadata(&txt).ok()?;
    if !meta.is_file() || meta.len() > MAX_SIDECAR_BYTES {
        return None;
    }
    let bytes = std::fs::read(&txt).ok()?;
    Some(decode_8bit(&bytes))
}

fn read_up_to(reader: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Reads exactly `len` bytes, or `None` when the file ends first.
fn read_exact_or_none(reader: &mut impl Read, len: usize) -> std::io::Result<Option<Vec<u8>>> {
    let mut buf = Vec::new();
    reader.take(len as u64).read_to_end(&mut buf)?;
    Ok((buf.len() == len).then_some(buf))
}

/// All PNG text chunks, before and after the image data, as (keyword, text): tEXt and zTXt
/// decoded as UTF-8 when they are valid UTF-8 (many tools write raw UTF-8 there although the
/// spec says Latin-1), else Latin-1; iTXt as UTF-8. Image data is skipped, not read.
pub fn png_text_chunks<R: Read + Seek>(mut reader: R) -> std::io::Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    reader.seek(SeekFrom::Start(8))?;
    loop {
        let mut head = [0u8; 8];
        if read_up_to(&mut reader, &mut head)? < 8 {
            break;
        }
        let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
        let kind = [head[4], head[5], head[6], head[7]];
        if len > i32::MAX as u32 || &kind == b"IEND" {
            break;
        }
        if matches!(&kind, b"tEXt" | b"zTXt" | b"iTXt") && len <= MAX_TEXT_BYTES {
            let Some(data) = read_exact_or_none(&mut reader, len as usize)? else { break };
            reader.seek(SeekFrom::Current(4))?;
            if let Some(pair) = decode_png_text(&kind, &data) {
                out.push(pair);
            }
        } else {
            reader.seek(SeekFrom::Current(i64::from(len) + 4))?;
        }
    }
    Ok(out)
}

/// One text chunk's (keyword, text); `None` when it is malformed.
fn decode_png_text(kind: &[u8; 4], data: &[u8]) -> Option<(String, String)> {
    let nul = data.iter().position(|&b| b == 0)?;
    let keyword = latin1(&data[..nul]);
    let rest = &data[nul + 1..];
    let text = match kind {
        b"tEXt" => decode_8bit(rest),
        b"zTXt" => decode_8bit(&inflate(rest.get(1..)?)?),
        _ => {
            let (&compressed, rest) = rest.split_first()?;
            let rest = rest.get(1..)?;
            let lang_end = rest.iter().position(|&b| b == 0)?;
            let rest = &rest[lang_end + 1..];
            let translated_end = rest.iter().position(|&b| b == 0)?;
            let body = &rest[translated_end + 1..];
            let bytes = if compressed == 1 { inflate(body)? } else { body.to_vec() };
            String::from_utf8_lossy(&bytes).into_owned()
        }
    };
    Some((keyword, text))
}

/// zlib data, refusing to inflate past the text size limit (a decompression bomb stops there).
fn inflate(data: &[u8]) -> Option<Vec<u8>> {
    miniz_oxide::inflate::decompress_to_vec_zlib_with_limit(data, MAX_TEXT_BYTES as usize).ok()
}

fn latin1(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| char::from(b)).collect()
}

/// Eight-bit text of unknown encoding: UTF-8 when valid, else Latin-1; trailing NULs dropped.
fn decode_8bit(bytes: &[u8]) -> String {
    let end = bytes.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    let bytes = &bytes[..end];
    match std::str::from_utf8(bytes) {
        Ok(s) => s.to_string(),
        Err(_) => latin1(bytes),
    }
}

/// JPEG APP1 EXIF and COM text, read segment by segment up to the image data.
fn jpeg_metadata(mut reader: impl Read) -> std::io::Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    let mut soi = [0u8; 2];
    reader.read_exact(&mut soi)?;
    loop {
        let mut byte = [0u8; 1];
        if read_up_to(&mut reader, &mut byte)? == 0 || byte[0] != 0xFF {
            break;
        }
        let mut marker = 0xFF;
        while marker == 0xFF {
            if read_up_to(&mut reader, &mut byte)? == 0 {
                return Ok(out);
            }
            marker = byte[0];
        }
        match marker {
            0xD9 | 0xDA => break,
            0x01 | 0xD0..=0xD7 => continue,
            _ => {}
        }
        let mut len = [0u8; 2];
        if read_up_to(&mut reader, &mut len)? < 2 {
            break;
        }
        let len = usize::from(u16::from_be_bytes(len)).saturating_sub(2);
        let Some(data) = read_exact_or_none(&mut reader, len)? else { break };
        match marker {
            0xE1 if data.starts_with(b"Exif\0\0") => exif_texts(&data[6..], &mut out),
            0xFE => out.push((JPEG_COMMENT.to_string(), decode_8bit(&data))),
            _ => {}
        }
    }
    Ok(out)
}

/// The WebP `EXIF` chunk's texts (with or without the `Exif\0\0` prefix writers disagree on).
fn webp_metadata<R: Read + Seek>(mut reader: R) -> std::io::Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    let mut lossless = false;
    reader.seek(SeekFrom::Start(12))?;
    loop {
        let mut head = [0u8; 8];
        if read_up_to(&mut reader, &mut head)? < 8 {
            break;
        }
        let len = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
        let padded = i64::from(len) + i64::from(len & 1);
        if &head[..4] == b"EXIF" && len <= MAX_TEXT_BYTES {
            let Some(data) = read_exact_or_none(&mut reader, len as usize)? else { break };
            let tiff = data.strip_prefix(b"Exif\0\0").unwrap_or(&data);
            exif_texts(tiff, &mut out);
            reader.seek(SeekFrom::Current(padded - i64::from(len)))?;
        } else {
            lossless |= &head[..4] == b"VP8L";
            reader.seek(SeekFrom::Current(padded))?;
        }
    }
    // NovelAI hides its metadata in lossless WebPs' pixels too (lossy coding would erase it).
    if lossless && !carries_generation_text(&out) {
        let end = reader.seek(SeekFrom::End(0))?;
        if end <= MAX_WEBP_SEARCH_BYTES {
            reader.seek(SeekFrom::Start(0))?;
            let mut bytes = Vec::with_capacity(end as usize);
            reader.read_to_end(&mut bytes)?;
            if let Some(text) = super::stealth::webp_stealth_text(&bytes) {
                push_hidden_text(&text, &mut out);
            }
        }
    }
    Ok(out)
}

/// Lossless WebPs larger than this are not searched for a stealth message.
const MAX_WEBP_SEARCH_BYTES: u64 = 64 << 20;

/// A TIFF structure's byte order.
#[derive(Clone, Copy)]
struct Tiff<'a> {
    bytes: &'a [u8],
    big_endian: bool,
}

impl Tiff<'_> {
    fn u16_at(&self, at: usize) -> Option<u16> {
        let b: [u8; 2] = self.bytes.get(at..at.checked_add(2)?)?.try_into().ok()?;
        Some(if self.big_endian { u16::from_be_bytes(b) } else { u16::from_le_bytes(b) })
    }

    fn u32_at(&self, at: usize) -> Option<u32> {
        let b: [u8; 4] = self.bytes.get(at..at.checked_add(4)?)?.try_into().ok()?;
        Some(if self.big_endian { u32::from_be_bytes(b) } else { u32::from_le_bytes(b) })
    }

    /// The entries of the IFD at `offset`, as (tag, type, count, value bytes).
    fn ifd(&self, offset: usize) -> Vec<(u16, u16, u32, &[u8])> {
        let mut out = Vec::new();
        let Some(count) = self.u16_at(offset) else { return out };
        for i in 0..usize::from(count) {
            let at = offset + 2 + i * 12;
            let (Some(tag), Some(kind), Some(n)) = (self.u16_at(at), self.u16_at(at + 2), self.u32_at(at + 4)) else {
                break;
            };
            let unit = match kind {
                1 | 2 | 6 | 7 => 1usize,
                3 | 8 => 2,
                4 | 9 | 11 => 4,
                5 | 10 | 12 => 8,
                _ => continue,
            };
            let Some(size) = (n as usize).checked_mul(unit) else { continue };
            let value = if size <= 4 {
                self.bytes.get(at + 8..at + 8 + size)
            } else {
                self.u32_at(at + 8).and_then(|o| self.bytes.get(o as usize..(o as usize).checked_add(size)?))
            };
            if let Some(value) = value {
                out.push((tag, kind, n, value));
            }
        }
        out
    }
}

/// Texts of an EXIF (TIFF) block: UserComment, Software, and ComfyUI's `prompt:`/`workflow:`
/// JSON in Make/Model/ImageDescription/DocumentName.
fn exif_texts(bytes: &[u8], out: &mut Vec<(String, String)>) {
    let big_endian = match bytes.get(..2) {
        Some(b"MM") => true,
        Some(b"II") => false,
        _ => return,
    };
    let tiff = Tiff { bytes, big_endian };
    if tiff.u16_at(2) != Some(42) {
        return;
    }
    let Some(ifd0) = tiff.u32_at(4) else { return };
    let mut exif_ifd = None;
    let mut comments = Vec::new();
    for (tag, kind, _, value) in tiff.ifd(ifd0 as usize) {
        match tag {
            0x8769 if kind == 4 => exif_ifd = Tiff { bytes: value, big_endian }.u32_at(0),
            0x0131 => out.push((EXIF_SOFTWARE.to_string(), decode_8bit(value))),
            0x010D..=0x0110 => {
                let text = decode_8bit(value);
                // ComfyUI and its save nodes write `prompt:JSON`, `Prompt: JSON`, `Workflow:JSON`
                // on whichever of these tags; the label says what it is, in any case.
                if let Some((key, json)) = text.split_once(':')
                    && json.trim_start().starts_with('{')
                    && !key.is_empty()
                    && key.chars().all(|c| c.is_alphanumeric() || c == '_')
                {
                    out.push((key.to_lowercase(), json.trim_start().to_string()));
                }
            }
            // Some save nodes put the UserComment in IFD0 rather than the Exif sub-IFD.
            0x9286 => comments.push(decode_user_comment(value, big_endian)),
            _ => {}
        }
    }
    if let Some(offset) = exif_ifd.filter(|&o| o != ifd0) {
        for (tag, _, _, value) in tiff.ifd(offset as usize) {
            if tag == 0x9286 {
                comments.push(decode_user_comment(value, big_endian));
            }
        }
    }
    for comment in comments {
        let unpacked = unpack_json_text(&comment);
        out.push((USER_COMMENT.to_string(), comment));
        out.extend(unpacked);
    }
}

/// EXIF UserComment (tag 0x9286): an 8-byte charset prefix then the payload. UNICODE is
/// UTF-16 in either byte order whatever the TIFF says (A1111 writes BE, SwarmUI LE), so a BOM
/// or the zero high bytes of ASCII characters decide; the TIFF order breaks ties.
pub fn decode_user_comment(bytes: &[u8], tiff_big_endian: bool) -> String {
    let (prefix, payload) = if bytes.len() >= 8 { bytes.split_at(8) } else { (&[][..], bytes) };
    match prefix {
        b"UNICODE\0" => decode_utf16_guessing_order(payload, tiff_big_endian),
        // JIS (Shift-JIS) has no decoder here; UTF-8/Latin-1 keeps the ASCII part readable.
        b"ASCII\0\0\0" | b"JIS\0\0\0\0\0" | b"\0\0\0\0\0\0\0\0" => decode_8bit(payload),
        // No recognised prefix: newer Fooocus forks write raw UTF-8.
        _ => decode_8bit(bytes),
    }
}

fn decode_utf16_guessing_order(payload: &[u8], tiff_big_endian: bool) -> String {
    let (big_endian, body) = match payload {
        [0xFE, 0xFF, rest @ ..] => (true, rest),
        [0xFF, 0xFE, rest @ ..] => (false, rest),
        _ => {
            let sample = &payload[..payload.len().min(512)];
            let zeros_even = sample.iter().step_by(2).filter(|&&b| b == 0).count();
            let zeros_odd = sample.iter().skip(1).step_by(2).filter(|&&b| b == 0).count();
            let big = match zeros_even.cmp(&zeros_odd) {
                std::cmp::Ordering::Greater => true,
                std::cmp::Ordering::Less => false,
                std::cmp::Ordering::Equal => tiff_big_endian,
            };
            (big, payload)
        }
    };
    let units: Vec<u16> = body
        .chunks_exact(2)
        .map(|c| if big_endian { u16::from_be_bytes([c[0], c[1]]) } else { u16::from_le_bytes([c[0], c[1]]) })
        .collect();
    String::from_utf16_lossy(&units).trim_end_matches('\0').to_string()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::io::Cursor;

    /// A 2×2 RGB PNG with tEXt chunks (iTXt where the text is not Latin-1, as Pillow does).
    pub(crate) fn png_with_text(chunks: &[(&str, &str)]) -> Vec<u8> {
        let mut bytes = Vec::new();
        let mut enc = png::Encoder::new(&mut bytes, 2, 2);
        enc.set_color(png::ColorType::Rgb);
        for (k, v) in chunks {
            if v.chars().all(|c| (c as u32) < 256) {
                enc.add_text_chunk(k.to_string(), v.to_string()).unwrap();
            } else {
                enc.add_itxt_chunk(k.to_string(), v.to_string()).unwrap();
            }
        }
        let mut w = enc.write_header().unwrap();
        w.write_image_data(&[0u8; 12]).unwrap();
        w.finish().unwrap();
        bytes
    }

    fn crc32(bytes: &[u8]) -> u32 {
        let mut crc = !0u32;
        for &b in bytes {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = if crc & 1 == 1 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
            }
        }
        !crc
    }

    /// A TIFF block holding a UserComment (in the Exif IFD) and optional IFD0 ASCII tags.
    pub(crate) fn exif_block(big_endian: bool, user_comment: &[u8], ascii_tags: &[(u16, &str)]) -> Vec<u8> {
        let u16b = |v: u16| if big_endian { v.to_be_bytes() } else { v.to_le_bytes() };
        let u32b = |v: u32| if big_endian { v.to_be_bytes() } else { v.to_le_bytes() };
        let mut t = Vec::new();
        t.extend_from_slice(if big_endian { b"MM" } else { b"II" });
        t.extend_from_slice(&u16b(42));
        t.extend_from_slice(&u32b(8));
        let n0 = ascii_tags.len() as u16 + 1;
        let ifd0_len = 2 + 12 * usize::from(n0) + 4;
        let exif_at = 8 + ifd0_len;
        let exif_len = 2 + 12 + 4;
        let mut data_at = exif_at + exif_len;
        let mut data = Vec::new();
        let mut entries = Vec::new();
        for (tag, text) in ascii_tags {
            let mut v = text.as_bytes().to_vec();
            v.push(0);
            entries.push((*tag, 2u16, v.len() as u32, (data_at + data.len()) as u32));
            data.extend_from_slice(&v);
        }
        entries.push((0x8769, 4, 1, exif_at as u32));
        t.extend_from_slice(&u16b(n0));
        for (tag, kind, n, off) in entries {
            t.extend_from_slice(&u16b(tag));
            t.extend_from_slice(&u16b(kind));
            t.extend_from_slice(&u32b(n));
            t.extend_from_slice(&u32b(off));
        }
        t.extend_from_slice(&u32b(0));
        data_at += data.len();
        t.extend_from_slice(&u16b(1));
        t.extend_from_slice(&u16b(0x9286));
        t.extend_from_slice(&u16b(7));
        t.extend_from_slice(&u32b(user_comment.len() as u32));
        t.extend_from_slice(&u32b(data_at as u32));
        t.extend_from_slice(&u32b(0));
        t.extend_from_slice(&data);
        t.extend_from_slice(user_comment);
        t
    }

    pub(crate) fn unicode_comment(text: &str, big_endian: bool) -> Vec<u8> {
        let mut v = b"UNICODE\0".to_vec();
        for u in text.encode_utf16() {
            v.extend_from_slice(&if big_endian { u.to_be_bytes() } else { u.to_le_bytes() });
        }
        v
    }

    fn tiny_jpeg() -> Vec<u8> {
        let mut out = Vec::new();
        let img = image::RgbImage::new(2, 2);
        image::codecs::jpeg::JpegEncoder::new(&mut out).encode_image(&img).unwrap();
        out
    }

    fn tiny_webp() -> Vec<u8> {
        let mut out = Vec::new();
        let img = image::RgbaImage::new(2, 2);
        image::codecs::webp::WebPEncoder::new_lossless(&mut out)
            .encode(&img, 2, 2, image::ExtendedColorType::Rgba8)
            .unwrap();
        out
    }

    pub(crate) fn jpeg_with_segments(segments: &[(u8, Vec<u8>)]) -> Vec<u8> {
        let jpeg = tiny_jpeg();
        let mut out = jpeg[..2].to_vec();
        for (marker, data) in segments {
            out.extend_from_slice(&[0xFF, *marker]);
            out.extend_from_slice(&((data.len() + 2) as u16).to_be_bytes());
            out.extend_from_slice(data);
        }
        out.extend_from_slice(&jpeg[2..]);
        out
    }

    pub(crate) fn webp_with_exif(exif: &[u8]) -> Vec<u8> {
        let mut out = tiny_webp();
        out.extend_from_slice(b"EXIF");
        out.extend_from_slice(&(exif.len() as u32).to_le_bytes());
        out.extend_from_slice(exif);
        if exif.len() % 2 == 1 {
            out.push(0);
        }
        let riff = (out.len() - 8) as u32;
        out[4..8].copy_from_slice(&riff.to_le_bytes());
        out
    }

    fn read_bytes(name: &str, bytes: &[u8]) -> RawMetadata {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        read_raw_metadata(&path).unwrap()
    }

    #[test]
    fn png_text_is_latin1_and_itxt_utf8() {
        let bytes = png_with_text(&[("parameters", "café"), ("prompt", "テスト 🐱")]);
        let raw = read_bytes("a.png", &bytes);
        assert_eq!(raw.get("parameters"), Some("café"));
        assert_eq!(raw.get("prompt"), Some("テスト 🐱"));
    }

    #[test]
    fn png_ztxt_and_compressed_itxt() {
        let mut bytes = Vec::new();
        let mut enc = png::Encoder::new(&mut bytes, 1, 1);
        enc.add_ztxt_chunk("parameters".into(), "zipped é".into()).unwrap();
        let mut itxt = png::text_metadata::ITXtChunk::new("workflow", "{\"ü\": 1}");
        itxt.compress_text().unwrap();
        enc.add_text_chunk("x".into(), "y".into()).unwrap();
        let mut w = enc.write_header().unwrap();
        w.write_text_chunk(&itxt).unwrap();
        w.write_image_data(&[0u8]).unwrap();
        w.finish().unwrap();
        let raw = read_bytes("z.png", &bytes);
        assert_eq!(raw.get("parameters"), Some("zipped é"));
        assert_eq!(raw.get("workflow"), Some("{\"ü\": 1}"));
    }

    #[test]
    fn raw_utf8_in_a_text_chunk_is_read_as_utf8_and_latin1_stays_latin1() {
        let mut bytes = png_with_text(&[]);
        let iend = bytes.len() - 12;
        for body in [&b"tEXtparameters\0\xe7\x8c\xab, 1girl"[..], &b"tEXtnegative\0caf\xe9"[..]] {
            let mut chunk = Vec::new();
            chunk.extend_from_slice(&((body.len() - 4) as u32).to_be_bytes());
            chunk.extend_from_slice(body);
            chunk.extend_from_slice(&crc32(body).to_be_bytes());
            bytes.splice(iend..iend, chunk);
        }
        let raw = read_bytes("utf8.png", &bytes);
        assert_eq!(raw.get("parameters"), Some("猫, 1girl"), "not mojibake");
        assert_eq!(raw.get("negative"), Some("café"), "Latin-1 as the spec says");
    }

    #[test]
    fn png_text_after_image_data_is_found() {
        let mut bytes = png_with_text(&[]);
        let iend = bytes.len() - 12;
        let mut chunk = Vec::new();
        let body = b"tEXtparameters\0late text";
        chunk.extend_from_slice(&((body.len() - 4) as u32).to_be_bytes());
        chunk.extend_from_slice(body);
        chunk.extend_from_slice(&crc32(body).to_be_bytes());
        bytes.splice(iend..iend, chunk);
        assert!(image::load_from_memory(&bytes).is_ok());
        assert_eq!(read_bytes("late.png", &bytes).get("parameters"), Some("late text"));
    }

    #[test]
    fn truncated_and_garbage_pngs_do_not_fail() {
        let bytes = png_with_text(&[("parameters", "hello")]);
        for cut in [8, 20, 40, bytes.len() - 5] {
            let raw = read_bytes("t.png", &bytes[..cut]);
            assert!(raw.entries.len() <= 1);
        }
        let mut bad = b"\x89PNG\r\n\x1a\n".to_vec();
        bad.extend_from_slice(&[0xFF; 8]);
        assert!(read_bytes("g.png", &bad).entries.is_empty());
        let mut no_nul = b"\x89PNG\r\n\x1a\n\0\0\0\x03tEXtabc\0\0\0\0".to_vec();
        no_nul.extend_from_slice(b"\0\0\0\0IEND");
        assert!(read_bytes("n.png", &no_nul).entries.is_empty());
    }

    #[test]
    fn user_comment_unicode_in_both_byte_orders() {
        for big in [true, false] {
            for tiff_big in [true, false] {
                let c = unicode_comment("photo of a duck テスト", big);
                assert_eq!(decode_user_comment(&c, tiff_big), "photo of a duck テスト");
            }
        }
        let mut bom = b"UNICODE\0\xFF\xFE".to_vec();
        bom.extend_from_slice(&[0x42, 0x30]);
        assert_eq!(decode_user_comment(&bom, true), "\u{3042}");
    }

    #[test]
    fn user_comment_ascii_undefined_and_unprefixed() {
        assert_eq!(decode_user_comment(b"ASCII\0\0\0hello\0", true), "hello");
        assert_eq!(decode_user_comment(b"\0\0\0\0\0\0\0\0hi", false), "hi");
        assert_eq!(decode_user_comment("{\"prompt\": \"é\"}".as_bytes(), false), "{\"prompt\": \"é\"}");
        assert_eq!(decode_user_comment(b"UNI", false), "UNI");
        assert_eq!(decode_user_comment(b"UNICODE\0\x00", false), "");
    }

    #[test]
    fn jpeg_exif_user_comment_and_comment_segment() {
        let mut app1 = b"Exif\0\0".to_vec();
        app1.extend(exif_block(true, &unicode_comment("a duck\nSteps: 1, Seed: 2, Sampler: x", true), &[]));
        let bytes = jpeg_with_segments(&[(0xE1, app1), (0xFE, b"a comment".to_vec())]);
        assert!(image::load_from_memory(&bytes).is_ok());
        let raw = read_bytes("a.jpg", &bytes);
        assert_eq!(raw.get(USER_COMMENT), Some("a duck\nSteps: 1, Seed: 2, Sampler: x"));
        assert_eq!(raw.get(JPEG_COMMENT), Some("a comment"));
    }

    #[test]
    fn webp_exif_with_and_without_prefix_and_comfy_tags() {
        let tiff = exif_block(
            false,
            &unicode_comment("little endian", false),
            &[(0x0110, "prompt:{\"1\": {}}"), (0x010F, "workflow:{}"), (0x0131, "SwarmUI")],
        );
        for prefixed in [false, true] {
            let mut chunk = if prefixed { b"Exif\0\0".to_vec() } else { Vec::new() };
            chunk.extend_from_slice(&tiff);
            let raw = read_bytes("a.webp", &webp_with_exif(&chunk));
            assert_eq!(raw.get(USER_COMMENT), Some("little endian"));
            assert_eq!(raw.get("prompt"), Some("{\"1\": {}}"));
            assert_eq!(raw.get("workflow"), Some("{}"));
            assert_eq!(raw.get(EXIF_SOFTWARE), Some("SwarmUI"));
        }
    }

    #[test]
    fn hostile_exif_does_not_panic() {
        let good = exif_block(true, b"UNICODE\0\0a", &[(0x0110, "prompt:{}")]);
        let mut out = Vec::new();
        for cut in 0..good.len() {
            exif_texts(&good[..cut], &mut out);
        }
        let mut huge_count = good.clone();
        huge_count[8..10].copy_from_slice(&[0xFF, 0xFF]);
        exif_texts(&huge_count, &mut out);
        let mut bad_jpeg = jpeg_with_segments(&[(0xE1, b"Exif\0\0MM\0\x2a\xff\xff\xff\xff".to_vec())]);
        bad_jpeg.truncate(30);
        read_bytes("b.jpg", &bad_jpeg);
        read_bytes("b.webp", b"RIFF\xff\xff\xff\xffWEBPEXIF\xff\xff\xff\x7f");
    }

    #[test]
    fn sidecar_txt_beside_the_image() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("img.png"), png_with_text(&[])).unwrap();
        std::fs::write(dir.path().join("img.txt"), "from the sidecar").unwrap();
        let raw = read_raw_metadata(&dir.path().join("img.png")).unwrap();
        assert_eq!(raw.get(SIDECAR_TXT), Some("from the sidecar"));
        assert_eq!(png_text_chunks(Cursor::new(png_with_text(&[("k", "v")]))).unwrap(), vec![("k".into(), "v".into())]);
    }
}
