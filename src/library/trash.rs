//! Moving the user's images to the system trash: never a hard delete, so every removal can be
//! undone from the desktop's trash, and the library row is marked missing at once (its ratings,
//! favorites and scores stay, keyed by content, should the file come back).

use std::path::{Path, PathBuf};

use super::store::{Store, StoreError};

/// Why one file was not moved to the trash (it is then untouched).
#[derive(Debug, thiserror::Error)]
pub enum TrashError {
    /// The desktop trash refused it (no trash on that drive, no permission, gone already).
    #[error("cannot move {} to the trash: {message}", path.display())]
    Trash {
        /// The file.
        path: PathBuf,
        /// The trash's complaint.
        message: String,
    },
    /// The file is in the trash but its library row could not be marked missing (the next scan
    /// will).
    #[error("moved {} to the trash, but the library was not updated: {source}", path.display())]
    Store {
        /// The file.
        path: PathBuf,
        /// The database's error.
        source: StoreError,
    },
}

/// Moves one file to the system trash and marks its library row missing.
pub fn move_to_trash(store: &mut Store, path: &Path) -> Result<(), TrashError> {
    if !path.is_file() {
        return Err(TrashError::Trash { path: path.to_path_buf(), message: "no such file".into() });
    }
    trash::delete(path).map_err(|e| TrashError::Trash { path: path.to_path_buf(), message: e.to_string() })?;
    store.mark_missing(path).map_err(|source| TrashError::Store { path: path.to_path_buf(), source })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::library::scan::{ScanOptions, scan_folders};
    use crate::synthetic::write_synthetic_pngs;

    /// Set in the child process that runs the test body with its own `XDG_DATA_HOME`.
    const CHILD: &str = "REWARDLENS_TRASH_TEST_ROOT";

    #[test]
    fn a_trashed_file_lands_in_the_trash_and_its_row_goes_missing() {
        let Some(root) = std::env::var_os(CHILD).map(PathBuf::from) else {
            // The trash follows the XDG spec: run the body in a child process whose private data
            // home keeps the user's own trash out of it (no environment change in this process).
            let tmp = tempfile::tempdir().unwrap();
            let data_home = tmp.path().join("data");
            std::fs::create_dir(&data_home).unwrap();
            let status = std::process::Command::new(std::env::current_exe().unwrap())
                .args(["library::trash::tests::a_trashed_file_lands_in_the_trash_and_its_row_goes_missing", "--exact"])
                .env(CHILD, tmp.path())
                .env("XDG_DATA_HOME", &data_home)
                .status()
                .unwrap();
            assert!(status.success());
            return;
        };
        let images = root.join("images");
        std::fs::create_dir(&images).unwrap();
        write_synthetic_pngs(&images, 2).unwrap();
        let mut store = Store::open(&root.join("lib.sqlite3")).unwrap();
        let stop = std::sync::atomic::AtomicBool::new(false);
        scan_folders(&mut store, std::slice::from_ref(&images), &ScanOptions::default(), |_| {}, &stop).unwrap();
        let victim = images.join("img_000001.png");
        move_to_trash(&mut store, &victim).unwrap();
        assert!(!victim.exists());
        let trashed = root.join("data").join("Trash").join("files").join("img_000001.png");
        assert!(trashed.exists(), "the file is in the trash, not deleted");
        assert!(store.image_by_path(&victim).unwrap().unwrap().missing);
        let again = move_to_trash(&mut store, &victim);
        assert!(matches!(again, Err(TrashError::Trash { .. })), "{again:?}");
    }
}
