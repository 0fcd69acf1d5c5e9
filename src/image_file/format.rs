//! The image formats the app reads, told apart by their magic bytes.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::error::ImageFileErrorKind;

/// PNG's eight-byte signature.
const PNG_SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";

/// JPEG's start-of-image marker and the first byte of the next marker (Pillow's `_accept`).
const JPEG_SOI: &[u8] = &[0xFF, 0xD8, 0xFF];

/// One of the formats the app reads; serialised (and stored in `images.format`) by [`name`](Self::name).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ImageFormat {
    /// PNG.
    Png,
    /// JPEG (JFIF or EXIF).
    Jpeg,
    /// WebP, lossy or lossless.
    WebP,
}

impl ImageFormat {
    /// Every format, so callers can list or test them all.
    pub const ALL: [Self; 3] = [Self::Png, Self::Jpeg, Self::WebP];

    /// The format the bytes start like, from magic bytes alone (the extension is never trusted).
    pub fn sniff(bytes: &[u8]) -> Option<Self> {
        if bytes.starts_with(PNG_SIGNATURE) {
            Some(Self::Png)
        } else if bytes.starts_with(JPEG_SOI) {
            Some(Self::Jpeg)
        } else if bytes.len() >= 12 && bytes.starts_with(b"RIFF") && &bytes[8..12] == b"WEBP" {
            Some(Self::WebP)
        } else {
            None
        }
    }

    /// Like [`sniff`](Self::sniff), but says why there is no format: empty bytes or a format we
    /// do not read, so a non-image is reported as such before anything else is looked at.
    pub fn of(bytes: &[u8]) -> Result<Self, ImageFileErrorKind> {
        if bytes.is_empty() {
            return Err(ImageFileErrorKind::Empty);
        }
        Self::sniff(bytes).ok_or(ImageFileErrorKind::UnsupportedFormat)
    }

    /// The one spelling stored in the database column `images.format` and used in JSON.
    pub fn name(self) -> &'static str {
        match self {
            Self::Png => "png",
            Self::Jpeg => "jpeg",
            Self::WebP => "webp",
        }
    }

    /// The format named by [`name`](Self::name), to read the database column back.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.name() == name)
    }

    /// The name people know the format by, for messages ("PNG", "JPEG", "WebP").
    pub fn display_name(self) -> &'static str {
        match self {
            Self::Png => "PNG",
            Self::Jpeg => "JPEG",
            Self::WebP => "WebP",
        }
    }

    /// The file extensions (lowercase, without the dot) that name this format.
    pub fn extensions(self) -> &'static [&'static str] {
        match self {
            Self::Png => &["png"],
            Self::Jpeg => &["jpg", "jpeg"],
            Self::WebP => &["webp"],
        }
    }

    /// The format a file's extension names, if any (case-insensitive).
    pub fn from_extension(path: &Path) -> Option<Self> {
        let ext = path.extension()?.to_str()?;
        Self::ALL.into_iter().find(|f| f.extensions().iter().any(|x| x.eq_ignore_ascii_case(ext)))
    }

    /// Whether the file's extension names this format, so a misnamed image can be reported.
    pub fn matches_extension(self, path: &Path) -> bool {
        Self::from_extension(path) == Some(self)
    }
}

impl std::fmt::Display for ImageFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.display_name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn magic_bytes_decide_the_format() {
        assert_eq!(ImageFormat::sniff(b"\x89PNG\r\n\x1a\n...."), Some(ImageFormat::Png));
        assert_eq!(ImageFormat::sniff(&[0xFF, 0xD8, 0xFF, 0xE0]), Some(ImageFormat::Jpeg));
        assert_eq!(ImageFormat::sniff(b"RIFF\0\0\0\0WEBPVP8 "), Some(ImageFormat::WebP));
        assert_eq!(ImageFormat::sniff(b"RIFF\0\0\0\0WAVE"), None);
        assert_eq!(ImageFormat::sniff(b"GIF89a"), None);
        assert_eq!(ImageFormat::of(b""), Err(ImageFileErrorKind::Empty));
        assert_eq!(ImageFormat::of(b"hello"), Err(ImageFileErrorKind::UnsupportedFormat));
    }

    #[test]
    fn stored_names_round_trip_and_match_serde() {
        for format in ImageFormat::ALL {
            assert_eq!(ImageFormat::from_name(format.name()), Some(format));
            assert_eq!(serde_json::to_string(&format).unwrap(), format!("\"{}\"", format.name()));
        }
        // Existing databases hold exactly these spellings.
        let names: Vec<_> = ImageFormat::ALL.iter().map(|f| f.name()).collect();
        assert_eq!(names, ["png", "jpeg", "webp"]);
        assert_eq!(ImageFormat::WebP.to_string(), "WebP");
    }

    #[test]
    fn extensions_are_matched_case_insensitively() {
        assert!(ImageFormat::Jpeg.matches_extension(Path::new("a/b.JPG")));
        assert!(ImageFormat::Jpeg.matches_extension(Path::new("b.jpeg")));
        assert!(!ImageFormat::Png.matches_extension(Path::new("really_a_png.jpg")));
        assert!(!ImageFormat::WebP.matches_extension(Path::new("noext")));
        assert_eq!(ImageFormat::from_extension(Path::new("x.WebP")), Some(ImageFormat::WebP));
        assert_eq!(ImageFormat::from_extension(Path::new("x.txt")), None);
    }
}
