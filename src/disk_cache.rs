//! A size-capped folder of files, least recently used first out, that survives crashes: what the
//! thumbnail and image-embedding caches are built on.
//!
//! Entries are written to a temporary name and renamed, so a crash leaves either the old entry,
//! the new one, or a temporary file that the next open deletes; never a half-written entry under
//! its real name. Use is recorded in the file's mtime (refreshed at most hourly, to save syscalls),
//! and when the cap is passed the oldest entries go until the cache is at 90 % of it.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, SystemTime};

/// An entry used within this long is not touched again.
const TOUCH_AFTER: Duration = Duration::from_secs(3600);

/// Eviction deletes down to this share of the cap, so it does not run on every insert.
const EVICT_TO_PERCENT: u64 = 90;

/// Marks temporary files (in the extension), so an open can tell them from entries.
const TEMP_PREFIX: &str = "tmp-";

/// One cache folder with a size cap.
#[derive(Debug)]
pub struct DiskCache {
    dir: PathBuf,
    cap_bytes: u64,
    /// Bytes on disk as far as this process knows; recounted at each eviction.
    total_bytes: Mutex<u64>,
    temp_counter: AtomicU64,
}

impl DiskCache {
    /// Opens (creating) the cache folder `dir` holding at most about `cap_bytes`; leftovers of an
    /// interrupted write are removed.
    pub fn open(dir: &Path, cap_bytes: u64) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let mut total = 0;
        for (path, meta) in entries(dir) {
            if is_temp_name(&path) {
                let _ = std::fs::remove_file(&path);
            } else {
                total += meta.len();
            }
        }
        Ok(Self { dir: dir.to_path_buf(), cap_bytes, total_bytes: Mutex::new(total), temp_counter: AtomicU64::new(0) })
    }

    /// Where the entry `name` lives: sharded by its first two characters, so no folder holds
    /// hundreds of thousands of files.
    pub fn path_of(&self, name: &str) -> PathBuf {
        let shard = name.get(..2).unwrap_or("00");
        self.dir.join(shard).join(name)
    }

    /// Whether an entry exists (without reading or touching it).
    pub fn contains(&self, name: &str) -> bool {
        self.path_of(name).is_file()
    }

    /// The entry's bytes, marking it used; `None` when absent or unreadable.
    pub fn read(&self, name: &str) -> Option<Vec<u8>> {
        let path = self.path_of(name);
        let bytes = std::fs::read(&path).ok()?;
        touch(&path);
        Some(bytes)
    }

    /// Removes an entry (a damaged one, typically).
    pub fn remove(&self, name: &str) {
        let path = self.path_of(name);
        if let Ok(meta) = std::fs::metadata(&path)
            && std::fs::remove_file(&path).is_ok()
        {
            let mut total = self.total_bytes.lock().unwrap_or_else(PoisonError::into_inner);
            *total = total.saturating_sub(meta.len());
        }
    }

    /// Stores an entry atomically (replacing any older one) and evicts if the cap is passed.
    pub fn write(&self, name: &str, bytes: &[u8]) -> std::io::Result<()> {
        let path = self.path_of(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let n = self.temp_counter.fetch_add(1, Ordering::Relaxed);
        let temp = path.with_extension(format!("{TEMP_PREFIX}{}-{n}", std::process::id()));
        let replaced = std::fs::metadata(&path).map_or(0, |m| m.len());
        if let Err(e) = std::fs::write(&temp, bytes).and_then(|()| std::fs::rename(&temp, &path)) {
            let _ = std::fs::remove_file(&temp);
            return Err(e);
        }
        let over = {
            let mut total = self.total_bytes.lock().unwrap_or_else(PoisonError::into_inner);
            *total = total.saturating_sub(replaced) + bytes.len() as u64;
            *total > self.cap_bytes
        };
        if over {
            self.evict();
        }
        Ok(())
    }

    /// Bytes the cache holds on disk, as far as this process knows.
    pub fn size_bytes(&self) -> u64 {
        *self.total_bytes.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Deletes least recently used entries until the cache is under [`EVICT_TO_PERCENT`] of the cap.
    fn evict(&self) {
        let mut total = self.total_bytes.lock().unwrap_or_else(PoisonError::into_inner);
        let mut files: Vec<(SystemTime, u64, PathBuf)> = entries(&self.dir)
            .into_iter()
            .filter(|(path, _)| !is_temp_name(path))
            .map(|(path, meta)| (meta.modified().unwrap_or(SystemTime::UNIX_EPOCH), meta.len(), path))
            .collect();
        files.sort();
        let mut size: u64 = files.iter().map(|f| f.1).sum();
        let target = self.cap_bytes / 100 * EVICT_TO_PERCENT;
        for (_, len, path) in files {
            if size <= target {
                break;
            }
            if std::fs::remove_file(&path).is_ok() {
                size -= len;
            }
        }
        *total = size;
    }
}

/// Every file one shard level under the cache folder, with its metadata.
fn entries(dir: &Path) -> Vec<(PathBuf, std::fs::Metadata)> {
    let mut out = Vec::new();
    let Ok(shards) = std::fs::read_dir(dir) else { return out };
    for shard in shards.flatten() {
        let Ok(files) = std::fs::read_dir(shard.path()) else { continue };
        for entry in files.flatten() {
            if let Ok(meta) = entry.metadata()
                && meta.is_file()
            {
                out.push((entry.path(), meta));
            }
        }
    }
    out
}

fn is_temp_name(path: &Path) -> bool {
    path.extension().and_then(|e| e.to_str()).is_some_and(|e| e.starts_with(TEMP_PREFIX))
}

/// Marks an entry as used now, unless it was marked recently.
fn touch(path: &Path) {
    let now = SystemTime::now();
    let Ok(file) = std::fs::File::options().write(true).open(path) else { return };
    let recent = file
        .metadata()
        .and_then(|m| m.modified())
        .is_ok_and(|t| now.duration_since(t).is_ok_and(|age| age < TOUCH_AFTER));
    if !recent {
        let _ = file.set_modified(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_and_survive_reopening() {
        let tmp = tempfile::tempdir().unwrap();
        let cache = DiskCache::open(tmp.path(), 1 << 20).unwrap();
        assert!(!cache.contains("abcd.bin"));
        cache.write("abcd.bin", b"hello").unwrap();
        cache.write("abcd.bin", b"hello!").unwrap();
        assert_eq!(cache.read("abcd.bin").unwrap(), b"hello!");
        assert_eq!(cache.size_bytes(), 6, "a replaced entry is counted once");
        drop(cache);
        let cache = DiskCache::open(tmp.path(), 1 << 20).unwrap();
        assert_eq!(cache.size_bytes(), 6);
        cache.remove("abcd.bin");
        assert_eq!((cache.size_bytes(), cache.read("abcd.bin")), (0, None));
    }

    #[test]
    fn the_cap_evicts_the_least_recently_used() {
        let tmp = tempfile::tempdir().unwrap();
        let cache = DiskCache::open(tmp.path(), 350).unwrap();
        for i in 0..5 {
            cache.write(&format!("{i:02}.bin"), &[0u8; 100]).unwrap();
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(cache.size_bytes() <= 350);
        assert!(cache.contains("04.bin"));
        assert!(!cache.contains("00.bin"));
    }

    #[test]
    fn temporary_leftovers_are_removed_on_open() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(tmp.path().join("ab")).unwrap();
        std::fs::write(tmp.path().join("ab").join("abcd.tmp-1-0"), b"half").unwrap();
        let cache = DiskCache::open(tmp.path(), 1 << 20).unwrap();
        assert_eq!(cache.size_bytes(), 0);
        assert!(!tmp.path().join("ab").join("abcd.tmp-1-0").exists());
    }
}
