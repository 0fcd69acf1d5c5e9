//! Whole-file structure checks: does the file end where its format says, so a half-written file
//! is never taken for an image.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use super::error::{ImageFileError, ImageFileErrorKind};
use super::format::ImageFormat;
use super::read::open_regular;

/// Bytes at the start of a file that [`looks_complete`] reads: the magic bytes and the RIFF size.
const HEAD_BYTES: u64 = 16;

/// Bytes at the end of a file that [`looks_complete`] reads: writers may append a little after
/// a JPEG's `EOI`.
const TAIL_BYTES: u64 = 4096;

/// Whether a file ends where its format says (PNG `IEND`, JPEG `EOI`, WebP RIFF length). `head`
/// is the file's start (at least 8 bytes for WebP), `tail` its last bytes (up to 4 KiB) and `len`
/// its length, so a watcher can decide from two small reads.
pub fn ends_whole(format: ImageFormat, head: &[u8], tail: &[u8], len: u64) -> bool {
    match format {
        ImageFormat::Png => tail.ends_with(b"IEND\xAE\x42\x60\x82"),
        // Some writers append bytes after EOI; look at the tail, not only the last two bytes.
        ImageFormat::Jpeg => tail.windows(2).any(|w| w == [0xFF, 0xD9]),
        ImageFormat::WebP => head
            .get(4..8)
            .and_then(|b| b.try_into().ok())
            .is_some_and(|b: [u8; 4]| (u64::from(u32::from_le_bytes(b)) + 8) <= len),
    }
}

/// [`ends_whole`] for a file in memory: `Truncated` when the end marker is missing.
pub fn check_whole(format: ImageFormat, bytes: &[u8]) -> Result<(), ImageFileErrorKind> {
    let tail = &bytes[bytes.len().saturating_sub(TAIL_BYTES as usize)..];
    if ends_whole(format, bytes, tail, bytes.len() as u64) { Ok(()) } else { Err(ImageFileErrorKind::Truncated) }
}

/// Whether the file at `path` looks completely written: a known image format whose end marker is
/// present. Reads the first 16 bytes and the last 4 KiB only, so the watcher can poll a large file
/// being written without reading it again and again. Anything but a regular file, and a non-empty
/// file of another format, has nothing to wait for (`true`): the import reports it.
pub fn looks_complete(path: &Path) -> Result<bool, ImageFileError> {
    looks_complete_kind(path).map_err(|kind| kind.at(path))
}

/// [`looks_complete`] without the path attached.
fn looks_complete_kind(path: &Path) -> Result<bool, ImageFileErrorKind> {
    let read_error = |e: std::io::Error| ImageFileErrorKind::read(&e);
    let mut file = match open_regular(path) {
        Ok(file) => file,
        Err(ImageFileErrorKind::NotAFile) => return Ok(true),
        Err(e) => return Err(e),
    };
    let len = file.metadata().map_err(read_error)?.len();
    let mut head = Vec::with_capacity(HEAD_BYTES as usize);
    (&mut file).take(HEAD_BYTES).read_to_end(&mut head).map_err(read_error)?;
    let Some(format) = ImageFormat::sniff(&head) else {
        return Ok(len > 0);
    };
    let tail_len = len.min(TAIL_BYTES);
    file.seek(SeekFrom::Start(len - tail_len)).map_err(read_error)?;
    let mut tail = Vec::with_capacity(tail_len as usize);
    file.take(tail_len).read_to_end(&mut tail).map_err(read_error)?;
    Ok(ends_whole(format, &head, &tail, len))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png() -> Vec<u8> {
        let mut out = Vec::new();
        let encoder = image::codecs::png::PngEncoder::new(&mut out);
        image::ImageEncoder::write_image(encoder, &[7u8; 10 * 10 * 3], 10, 10, image::ExtendedColorType::Rgb8).unwrap();
        out
    }

    #[test]
    fn end_markers_tell_whole_from_cut() {
        let whole = png();
        assert_eq!(check_whole(ImageFormat::Png, &whole), Ok(()));
        assert_eq!(check_whole(ImageFormat::Png, &whole[..whole.len() - 1]), Err(ImageFileErrorKind::Truncated));
        assert!(ends_whole(ImageFormat::Jpeg, &[], &[0xFF, 0xD9, 0, 0], 4));
        assert!(!ends_whole(ImageFormat::Jpeg, &[], &[0xFF, 0xD8], 2));
        let riff = b"RIFF\x04\0\0\0WEBP";
        assert!(ends_whole(ImageFormat::WebP, riff, riff, 12));
        assert!(!ends_whole(ImageFormat::WebP, riff, riff, 11));
    }

    #[test]
    fn looks_complete_reads_only_the_ends() {
        let dir = tempfile::tempdir().unwrap();
        let whole = png();
        let path = dir.path().join("a.png");
        std::fs::write(&path, &whole).unwrap();
        assert!(looks_complete(&path).unwrap());
        std::fs::write(&path, &whole[..whole.len() / 2]).unwrap();
        assert!(!looks_complete(&path).unwrap());
        std::fs::write(&path, b"").unwrap();
        assert!(!looks_complete(&path).unwrap());
        std::fs::write(&path, b"plain text").unwrap();
        assert!(looks_complete(&path).unwrap());
        assert!(looks_complete(dir.path()).unwrap());
        let missing = looks_complete(&dir.path().join("gone.png")).unwrap_err();
        assert!(missing.to_string().contains("gone.png"), "{missing}");
    }
}
