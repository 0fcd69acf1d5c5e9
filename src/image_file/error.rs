//! One error type for image files: the path once, and what is wrong with the file.

use std::path::{Path, PathBuf};

use super::format::ImageFormat;
use super::limits::{MAX_FILE_BYTES, MAX_PIXELS, MAX_SIDE_PX};

/// Why an image file could not be used, naming the file once, so each bad file is one reported
/// item (ripgrep's `ignore` errors carry their path the same way).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {kind}", path.display())]
pub struct ImageFileError {
    /// The file.
    pub path: PathBuf,
    /// What is wrong with it; also the text a scan stores beside the path.
    pub kind: ImageFileErrorKind,
}

/// What is wrong with an image file or its bytes, without the path, so byte-level checks stay
/// pure and the caller attaches the path once with [`ImageFileErrorKind::at`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImageFileErrorKind {
    /// The file could not be stat'ed, opened or read.
    #[error("cannot read: {message}")]
    Read {
        /// The OS error's kind, for callers that tell "not found" from "permission denied".
        kind: std::io::ErrorKind,
        /// The OS error's message.
        message: String,
    },
    /// The path is a folder, FIFO, socket or device rather than a regular file; a FIFO would
    /// block the reader, so it is never opened.
    #[error("not a regular file")]
    NotAFile,
    /// The file is larger than any image we accept; it is not read.
    #[error("file is {bytes} bytes, over the limit of {MAX_FILE_BYTES} bytes")]
    FileTooLarge {
        /// Its size.
        bytes: u64,
    },
    /// Zero bytes: typically a file a generator has only just created.
    #[error("empty file (0 bytes)")]
    Empty,
    /// The bytes are not PNG, JPEG or WebP (the formats the app reads).
    #[error("not a PNG, JPEG or WebP image")]
    UnsupportedFormat,
    /// The decoder rejected the data (truncated, corrupt, or a variant it cannot read).
    #[error("corrupt or unsupported {format} image: {message}")]
    Corrupt {
        /// The format the bytes claim to be.
        format: ImageFormat,
        /// The decoder's message.
        message: String,
    },
    /// The header declares more pixels than we are willing to allocate (a decompression bomb).
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
    /// The file ends before its format's end marker: it is still being written or was cut short.
    #[error("truncated: the file ends before the image does")]
    Truncated,
}

impl ImageFileErrorKind {
    /// Keeps an OS error's kind and message (an `io::Error` cannot be cloned).
    pub fn read(error: &std::io::Error) -> Self {
        Self::Read { kind: error.kind(), message: error.to_string() }
    }

    /// Names the file the problem belongs to.
    pub fn at(self, path: &Path) -> ImageFileError {
        ImageFileError { path: path.to_path_buf(), kind: self }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_path_is_printed_once_before_the_reason() {
        let err = ImageFileErrorKind::UnsupportedFormat.at(Path::new("a.txt"));
        assert_eq!(err.to_string(), "a.txt: not a PNG, JPEG or WebP image");
        let corrupt = ImageFileErrorKind::Corrupt { format: ImageFormat::WebP, message: "bad chunk".into() };
        assert_eq!(corrupt.at(Path::new("b.webp")).to_string(), "b.webp: corrupt or unsupported WebP image: bad chunk");
        let io = std::io::Error::from(std::io::ErrorKind::NotFound);
        let err = ImageFileErrorKind::read(&io).at(Path::new("c.png"));
        assert!(matches!(err.kind, ImageFileErrorKind::Read { kind: std::io::ErrorKind::NotFound, .. }));
        assert!(err.to_string().starts_with("c.png: cannot read: "), "{err}");
    }
}
