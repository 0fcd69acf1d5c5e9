//! Guarded reads: a FIFO is never opened (it would block), an empty or huge file is never read.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use super::error::{ImageFileError, ImageFileErrorKind};
use super::limits::MAX_FILE_BYTES;

/// Opens a file after checking it is a regular file, for readers that stream it (metadata)
/// instead of holding it whole; opening a FIFO would block until a writer appears.
pub fn open(path: &Path) -> Result<File, ImageFileError> {
    open_regular(path).map_err(|kind| kind.at(path))
}

/// Reads an image file's bytes: refuses what is not a regular file, is empty or is over
/// [`MAX_FILE_BYTES`], so callers that need the bytes twice (hash, metadata, pixels) read once.
pub fn read(path: &Path) -> Result<Vec<u8>, ImageFileError> {
    read_guarded(path).map_err(|kind| kind.at(path))
}

/// [`open`] without the path attached.
pub(super) fn open_regular(path: &Path) -> Result<File, ImageFileErrorKind> {
    let meta = std::fs::metadata(path).map_err(|e| ImageFileErrorKind::read(&e))?;
    if !meta.is_file() {
        return Err(ImageFileErrorKind::NotAFile);
    }
    File::open(path).map_err(|e| ImageFileErrorKind::read(&e))
}

/// [`read`] without the path attached.
fn read_guarded(path: &Path) -> Result<Vec<u8>, ImageFileErrorKind> {
    let mut file = open_regular(path)?;
    let bytes = file.metadata().map_err(|e| ImageFileErrorKind::read(&e))?.len();
    if bytes == 0 {
        return Err(ImageFileErrorKind::Empty);
    }
    if bytes > MAX_FILE_BYTES {
        return Err(ImageFileErrorKind::FileTooLarge { bytes });
    }
    let mut out = Vec::with_capacity(usize::try_from(bytes).unwrap_or(0));
    file.read_to_end(&mut out).map_err(|e| ImageFileErrorKind::read(&e))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_empty_and_folders_are_refused_with_their_path() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.png");
        let err = read(&missing).unwrap_err();
        assert_eq!(err.path, missing);
        assert!(matches!(err.kind, ImageFileErrorKind::Read { kind: std::io::ErrorKind::NotFound, .. }));
        assert!(err.to_string().contains("missing.png: cannot read"), "{err}");

        let empty = dir.path().join("empty.png");
        std::fs::write(&empty, b"").unwrap();
        assert_eq!(read(&empty).unwrap_err().kind, ImageFileErrorKind::Empty);
        assert_eq!(read(dir.path()).unwrap_err().kind, ImageFileErrorKind::NotAFile);
        assert_eq!(open(dir.path()).unwrap_err().kind, ImageFileErrorKind::NotAFile);

        let some = dir.path().join("some.png");
        std::fs::write(&some, b"abc").unwrap();
        assert_eq!(read(&some).unwrap(), b"abc");
    }

    #[cfg(unix)]
    #[test]
    fn a_fifo_is_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("pipe.png");
        assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
        let err = read(&fifo).unwrap_err();
        assert_eq!(err.kind, ImageFileErrorKind::NotAFile);
        assert!(err.to_string().ends_with("pipe.png: not a regular file"), "{err}");
    }
}
