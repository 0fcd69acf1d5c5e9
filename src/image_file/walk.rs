//! Turning command-line paths and watched folders into the image files to work on.

use std::path::{Path, PathBuf};

use super::format::ImageFormat;

/// Extensions picked up when walking folders (a file named explicitly is always tried): those of
/// every [`ImageFormat`].
pub const IMAGE_EXTENSIONS: &[&str] = &["png", "jpg", "jpeg", "webp"];

/// A path that could not be listed, reported and skipped.
#[derive(Debug)]
pub struct WalkError {
    /// The path.
    pub path: PathBuf,
    /// Why.
    pub reason: String,
}

/// Whether a file name has one of the image extensions, so a walk skips sidecars and notes.
pub fn has_image_extension(path: &Path) -> bool {
    ImageFormat::from_extension(path).is_some()
}

/// Why a FIFO, socket or device named like an image is skipped.
const NOT_A_FILE: &str = "not a regular file (a FIFO, socket or device); skipped";

/// Expands files and folders (recursively, not following symlinked folders so loops cannot
/// trap us) into a sorted list of image files, with one error per unlistable path.
pub fn collect_images(paths: &[PathBuf]) -> (Vec<PathBuf>, Vec<WalkError>) {
    let mut files = Vec::new();
    let mut errors = Vec::new();
    for path in paths {
        match std::fs::metadata(path) {
            Ok(meta) if meta.is_dir() => walk(path, &mut files, &mut errors),
            Ok(_) => files.push(path.clone()),
            Err(e) => errors.push(WalkError { path: path.clone(), reason: e.to_string() }),
        }
    }
    files.sort();
    files.dedup();
    (files, errors)
}

fn walk(dir: &Path, files: &mut Vec<PathBuf>, errors: &mut Vec<WalkError>) {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            errors.push(WalkError { path: dir.to_path_buf(), reason: e.to_string() });
            return;
        }
    };
    for entry in entries {
        let entry = match entry {
            Ok(e) => e,
            Err(e) => {
                errors.push(WalkError { path: dir.to_path_buf(), reason: e.to_string() });
                continue;
            }
        };
        let path = entry.path();
        match entry.file_type() {
            Ok(t) if t.is_dir() => walk(&path, files, errors),
            // A link to its own folder or to one above it would walk forever: said once, not followed.
            Ok(t) if t.is_symlink() && links_to_an_ancestor(dir, &path) => {
                errors.push(WalkError { path, reason: "symbolic link loop, not followed".to_string() });
            }
            // Follow links to files, never links to folders (a loop could trap us).
            Ok(t) if t.is_symlink() && has_image_extension(&path) => match std::fs::metadata(&path) {
                Ok(m) if m.is_file() => files.push(path),
                Ok(m) if m.is_dir() => {}
                Ok(_) => errors.push(WalkError { path, reason: NOT_A_FILE.to_string() }),
                Err(e) => errors.push(WalkError { path, reason: format!("broken or looping symbolic link: {e}") }),
            },
            Ok(t) if t.is_file() && has_image_extension(&path) => files.push(path),
            // Regular files only: a FIFO named like an image would block the first reader.
            Ok(t) if !t.is_dir() && !t.is_symlink() && !t.is_file() && has_image_extension(&path) => {
                errors.push(WalkError { path, reason: NOT_A_FILE.to_string() });
            }
            Ok(_) => {}
            Err(e) => errors.push(WalkError { path, reason: e.to_string() }),
        }
    }
}

/// Whether the symbolic link `link` in `dir` leads to `dir` itself or a folder above it.
fn links_to_an_ancestor(dir: &Path, link: &Path) -> bool {
    match (std::fs::canonicalize(dir), std::fs::canonicalize(link)) {
        (Ok(here), Ok(target)) => here.starts_with(target),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_extensions_are_those_of_the_formats() {
        let of_formats: Vec<&str> = ImageFormat::ALL.iter().flat_map(|f| f.extensions()).copied().collect();
        assert_eq!(IMAGE_EXTENSIONS, of_formats);
    }

    #[test]
    fn walks_recursively_and_filters_extensions() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("a/b")).unwrap();
        for f in ["x.png", "a/y.JPG", "a/b/z.webp", "a/notes.txt"] {
            std::fs::write(dir.path().join(f), b"").unwrap();
        }
        let (files, errors) = collect_images(&[dir.path().to_path_buf(), dir.path().join("missing.png")]);
        let names: Vec<_> = files.iter().map(|p| p.strip_prefix(dir.path()).unwrap().to_path_buf()).collect();
        assert_eq!(names, vec![PathBuf::from("a/b/z.webp"), PathBuf::from("a/y.JPG"), PathBuf::from("x.png")]);
        assert_eq!(errors.len(), 1);
        assert!(errors[0].path.ends_with("missing.png"));
    }

    #[cfg(unix)]
    #[test]
    fn symlink_loops_are_reported_once_and_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("a/b")).unwrap();
        std::os::unix::fs::symlink(dir.path(), dir.path().join("loop")).unwrap();
        std::os::unix::fs::symlink(dir.path().join("a"), dir.path().join("a/b/up")).unwrap();
        // A link to a folder elsewhere is no loop: not followed, and nothing to report.
        let elsewhere = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(elsewhere.path(), dir.path().join("other")).unwrap();
        std::fs::write(dir.path().join("x.png"), b"").unwrap();
        let (files, errors) = collect_images(&[dir.path().to_path_buf()]);
        assert_eq!(files.len(), 1);
        let mut reported: Vec<_> = errors.iter().map(|e| (e.path.clone(), e.reason.as_str())).collect();
        reported.sort();
        assert_eq!(
            reported,
            vec![
                (dir.path().join("a/b/up"), "symbolic link loop, not followed"),
                (dir.path().join("loop"), "symbolic link loop, not followed"),
            ]
        );
    }
}
