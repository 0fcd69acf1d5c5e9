//! Incremental import of watched folders into the [`Store`].
//!
//! A file whose size and modification time match its row costs one `stat` and no read. A new or
//! changed file is read once: BLAKE3 content hash, dimensions from the header, generation
//! metadata. A new file whose hash matches a row marked missing is that file moved or renamed:
//! it takes over the row (same id), so scores and user data, keyed by hash, follow. Vanished files
//! are marked missing, never deleted. Hashing runs on a bounded pool of named threads; the caller's
//! thread writes batches of rows in short transactions.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, sync_channel};
use std::time::UNIX_EPOCH;

use rayon::prelude::*;
use rusqlite::{OptionalExtension, Transaction, params};

use super::metadata::container::raw_metadata_from_bytes;
use super::metadata::{malformed_metadata, parse_raw, prompt_group_key};
use super::store::{ImageRecord, ImageRow, Store, StoreError, move_image_tx, now_secs, path_text, upsert_image_tx};
use crate::image_file::{self, ContentHash, ImageFileErrorKind, ImageFormat, collect_images, has_image_extension};

/// Rows written per transaction: large enough to amortise the commit, short enough that another
/// process waits milliseconds, not seconds.
pub const WRITE_BATCH_ROWS: usize = 500;

/// How a scan runs.
#[derive(Debug, Clone)]
pub struct ScanOptions {
    /// Threads hashing and parsing files (at least 1).
    pub threads: usize,
}

impl Default for ScanOptions {
    fn default() -> Self {
        Self { threads: std::thread::available_parallelism().map_or(2, |n| n.get()) }
    }
}

/// Progress of a running scan, reported as files are finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScanProgress {
    /// Files finished.
    pub done: usize,
    /// Files found.
    pub total: usize,
}

/// One file (or folder) the scan could not use, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct ScanIssue {
    /// The path.
    pub path: PathBuf,
    /// Why.
    pub reason: String,
}

/// What a scan did, so the user and tests can see it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ScanReport {
    /// Image files found.
    pub seen: usize,
    /// Files skipped because size and mtime matched their row (no read).
    pub unchanged: usize,
    /// New rows.
    pub added: usize,
    /// Rows rewritten because the file changed.
    pub updated: usize,
    /// Rows that followed a moved or renamed file.
    pub moved: usize,
    /// Rows newly marked missing.
    pub missing: usize,
    /// Files that could not be used; their rows (with `error` set) count in `added`/`updated` too.
    pub errors: usize,
    /// Each problem with its path.
    pub issues: Vec<ScanIssue>,
    /// Whether the scan stopped early on request.
    pub cancelled: bool,
}

/// Why a scan could not run at all (a bad file is a [`ScanIssue`], not this).
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The thread pool could not be built.
    #[error("cannot start scan threads: {0}")]
    Pool(#[from] rayon::ThreadPoolBuildError),
    /// A thread could not be started.
    #[error("cannot start scan thread: {0}")]
    Thread(#[from] std::io::Error),
}

/// What the database knows about a path, enough to decide without reading the file.
#[derive(Debug, Clone)]
struct KnownRow {
    size: u64,
    mtime_ns: i64,
    missing: bool,
    error: Option<String>,
}

/// One file to look at.
struct Job {
    folder_id: i64,
    path: PathBuf,
    known: Option<KnownRow>,
}

/// What a worker found about one file.
enum Outcome {
    /// Size and mtime match; `restore` when the row was missing and the file is back.
    Unchanged { path: PathBuf, restore: bool, error: Option<String> },
    /// A file read (or failed to read) and ready to write; `is_new` when it had no row. `notes`
    /// are problems worth reporting that do not make the image unusable (damaged metadata, a
    /// misleading extension).
    Read { record: Box<ImageRecord>, is_new: bool, notes: Vec<String> },
}

/// Scans `folders` (added as watched folders if new) into `store`, calling `progress` as files finish and stopping soon after `cancel`
/// is set. Every transaction is complete, so a cancelled scan leaves a consistent database.
pub fn scan_folders(
    store: &mut Store,
    folders: &[PathBuf],
    options: &ScanOptions,
    progress: impl Fn(ScanProgress),
    cancel: &AtomicBool,
) -> Result<ScanReport, ScanError> {
    let mut report = ScanReport::default();
    let mut jobs = Vec::new();
    let mut scanned_folders = Vec::new();
    for folder in folders {
        let folder_id = store.add_folder(folder)?;
        if !std::fs::metadata(folder).is_ok_and(|m| m.is_dir()) {
            // Unplugged drive or deleted folder: its rows go missing and come back with it.
            report.issues.push(ScanIssue { path: folder.clone(), reason: "folder is absent".to_string() });
            report.missing += store.write(|tx| {
                tx.execute("UPDATE folders SET present = 0 WHERE id = ?1", [folder_id])?;
                tx.execute(
                    "UPDATE images SET missing = 1, updated_at = ?2 WHERE folder_id = ?1 AND missing = 0",
                    params![folder_id, now_secs()],
                )
            })?;
            continue;
        }
        let (files, walk_errors) = collect_images(std::slice::from_ref(folder));
        report.issues.extend(walk_errors.into_iter().map(|e| ScanIssue { path: e.path, reason: e.reason }));
        let mut known = known_rows(store, folder_id)?;
        for path in files {
            let row = known.remove(path_text(&path).as_ref());
            jobs.push(Job { folder_id, path, known: row });
        }
        // Rows left over have no file any more. Marking them missing before importing lets a
        // renamed file find its old row by hash.
        let vanished: Vec<String> = known.into_iter().filter(|(_, row)| !row.missing).map(|(p, _)| p).collect();
        for chunk in vanished.chunks(WRITE_BATCH_ROWS) {
            report.missing += store.write(|tx| {
                let mut stmt = tx.prepare_cached("UPDATE images SET missing = 1, updated_at = ?2 WHERE path = ?1")?;
                let now = now_secs();
                let mut n = 0;
                for path in chunk {
                    n += stmt.execute(params![path, now])?;
                }
                Ok(n)
            })?;
        }
        scanned_folders.push(folder_id);
    }
    report.seen = jobs.len();
    run_jobs(store, &jobs, options, &mut report, &progress, cancel)?;

    report.cancelled = cancel.load(Ordering::Relaxed);
    if !report.cancelled {
        let now = now_secs();
        store.write(|tx| {
            let mut stmt = tx.prepare_cached("UPDATE folders SET present = 1, last_scan_at = ?2 WHERE id = ?1")?;
            for id in &scanned_folders {
                stmt.execute(params![id, now])?;
            }
            Ok(())
        })?;
    }
    Ok(report)
}

/// Reads `jobs` on a bounded pool of named threads while this thread writes their rows in
/// batches; shared by full scans and watched changes.
fn run_jobs(
    store: &mut Store,
    jobs: &[Job],
    options: &ScanOptions,
    report: &mut ScanReport,
    progress: &impl Fn(ScanProgress),
    cancel: &AtomicBool,
) -> Result<(), ScanError> {
    let total = jobs.len();
    progress(ScanProgress { done: 0, total });
    if jobs.is_empty() {
        return Ok(());
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(options.threads.max(1).min(total))
        .thread_name(|i| format!("rewardlens-scan-{i}"))
        .build()?;
    std::thread::scope(|scope| -> Result<(), ScanError> {
        // Bounded, so a slow database holds the readers back instead of buffering the library.
        let (sender, receiver) = sync_channel::<Outcome>(4 * WRITE_BATCH_ROWS);
        let pool = &pool;
        let feeder =
            std::thread::Builder::new().name("rewardlens-scan-feed".to_string()).spawn_scoped(scope, move || {
                pool.install(|| {
                    jobs.par_iter().for_each_with(sender, |sender, job| {
                        if cancel.load(Ordering::Relaxed) {
                            return;
                        }
                        // A send fails only when the writer stopped; then there is nothing to do.
                        let _ = sender.send(examine(job));
                    });
                });
            })?;
        let written = write_outcomes(store, receiver, report, total, progress, cancel);
        // The receiver is dropped, so the feeder finishes promptly even after an error.
        let _ = feeder.join();
        written
    })
}

/// Brings the rows for `paths` up to date without rescanning their folders: what the watcher
/// calls for each settled batch of changes. A path may be a file or a folder, present or gone;
/// a gone path marks its rows (and every row under it, for a folder) missing before present files
/// are read, so a file moved or renamed in the same batch takes over its old row. Paths outside
/// every watched folder are ignored.
pub fn import_paths(
    store: &mut Store,
    paths: &[PathBuf],
    options: &ScanOptions,
    cancel: &AtomicBool,
) -> Result<ScanReport, ScanError> {
    let mut report = ScanReport::default();
    let folders = store.folders()?;
    let folder_of = |path: &Path| {
        folders.iter().filter(|f| path.starts_with(&f.path)).max_by_key(|f| f.path.as_os_str().len()).map(|f| f.id)
    };
    let mut files = Vec::new();
    let mut gone = Vec::new();
    for path in paths {
        if folder_of(path).is_none() {
            continue;
        }
        match std::fs::metadata(path) {
            Ok(meta) if meta.is_dir() => {
                let (found, walk_errors) = collect_images(std::slice::from_ref(path));
                files.extend(found);
                report.issues.extend(walk_errors.into_iter().map(|e| ScanIssue { path: e.path, reason: e.reason }));
            }
            Ok(_) => {
                if has_image_extension(path) {
                    files.push(path.clone());
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => gone.push(path.clone()),
            Err(e) => report.issues.push(ScanIssue { path: path.clone(), reason: format!("cannot stat: {e}") }),
        }
    }
    files.sort();
    files.dedup();
    for chunk in gone.chunks(WRITE_BATCH_ROWS) {
        report.missing += store.write(|tx| {
            // A folder's rows are those whose path starts with the folder and a separator.
            let mut stmt = tx.prepare_cached(
                "UPDATE images SET missing = 1, updated_at = ?3
                 WHERE missing = 0 AND (path = ?1 OR substr(path, 1, length(?2)) = ?2)",
            )?;
            let now = now_secs();
            let mut n = 0;
            for path in chunk {
                let text = path_text(path);
                let prefix = format!("{text}{}", std::path::MAIN_SEPARATOR);
                n += stmt.execute(params![text, prefix, now])?;
            }
            Ok(n)
        })?;
    }
    let mut jobs = Vec::with_capacity(files.len());
    for path in files {
        let Some(folder_id) = folder_of(&path) else { continue };
        let known = known_row(store, &path_text(&path))?;
        jobs.push(Job { folder_id, path, known });
    }
    report.seen = jobs.len();
    run_jobs(store, &jobs, options, &mut report, &|_| {}, cancel)?;
    report.cancelled = cancel.load(Ordering::Relaxed);
    Ok(report)
}

/// The stored row at one path, if any.
fn known_row(store: &Store, path: &str) -> Result<Option<KnownRow>, StoreError> {
    store.read(|conn| {
        conn.prepare_cached("SELECT size, mtime_ns, missing, error FROM images WHERE path = ?1")?
            .query_row([path], |r| {
                Ok(KnownRow {
                    size: u64::try_from(r.get::<_, i64>(0)?).unwrap_or(0),
                    mtime_ns: r.get(1)?,
                    missing: r.get(2)?,
                    error: r.get(3)?,
                })
            })
            .optional()
    })
}

/// The rows already stored under a folder, by path.
fn known_rows(store: &Store, folder_id: i64) -> Result<HashMap<String, KnownRow>, StoreError> {
    store.read(|conn| {
        let mut stmt =
            conn.prepare_cached("SELECT path, size, mtime_ns, missing, error FROM images WHERE folder_id = ?1")?;
        let rows = stmt.query_map([folder_id], |r| {
            Ok((
                r.get(0)?,
                KnownRow {
                    size: u64::try_from(r.get::<_, i64>(1)?).unwrap_or(0),
                    mtime_ns: r.get(2)?,
                    missing: r.get(3)?,
                    error: r.get(4)?,
                },
            ))
        })?;
        rows.collect()
    })
}

/// Receives outcomes on the caller's thread and writes them in batches.
fn write_outcomes(
    store: &mut Store,
    receiver: Receiver<Outcome>,
    report: &mut ScanReport,
    total: usize,
    progress: &impl Fn(ScanProgress),
    cancel: &AtomicBool,
) -> Result<(), ScanError> {
    let mut batch = Vec::with_capacity(WRITE_BATCH_ROWS);
    for (index, outcome) in receiver.iter().enumerate() {
        let done = index + 1;
        match &outcome {
            Outcome::Unchanged { path, restore, error } => {
                report.unchanged += 1;
                if let Some(reason) = error {
                    report.issues.push(ScanIssue { path: path.clone(), reason: reason.clone() });
                }
                if *restore {
                    batch.push(outcome);
                }
            }
            Outcome::Read { record, notes, .. } => {
                if let Some(reason) = &record.error {
                    report.errors += 1;
                    report.issues.push(ScanIssue { path: record.path.clone(), reason: reason.clone() });
                }
                for note in notes {
                    report.issues.push(ScanIssue { path: record.path.clone(), reason: note.clone() });
                }
                batch.push(outcome);
            }
        }
        if batch.len() >= WRITE_BATCH_ROWS {
            write_batch(store, &mut batch, report)?;
        }
        progress(ScanProgress { done, total });
        if cancel.load(Ordering::Relaxed) {
            break;
        }
    }
    write_batch(store, &mut batch, report)?;
    Ok(())
}

/// Writes one batch in one transaction and counts what it did.
fn write_batch(store: &mut Store, batch: &mut Vec<Outcome>, report: &mut ScanReport) -> Result<(), StoreError> {
    if batch.is_empty() {
        return Ok(());
    }
    let (added, updated, moved) = store.write(|tx| {
        let (mut added, mut updated, mut moved) = (0, 0, 0);
        for outcome in batch.iter() {
            match outcome {
                Outcome::Unchanged { path, .. } => {
                    tx.prepare_cached("UPDATE images SET missing = 0, updated_at = ?2 WHERE path = ?1")?
                        .execute(params![path_text(path), now_secs()])?;
                }
                Outcome::Read { record, is_new, .. } => {
                    let path = path_text(&record.path);
                    let path = path.as_ref();
                    // A row at this path under another (overlapping) folder is updated, not moved onto.
                    let takes_over = if *is_new && !row_exists_at(tx, path)? {
                        missing_row_with_hash(tx, record.content_hash.as_ref())?
                    } else {
                        None
                    };
                    if let Some(id) = takes_over {
                        move_image_tx(tx, id, record)?;
                        moved += 1;
                    } else {
                        upsert_image_tx(tx, record)?;
                        if *is_new {
                            added += 1;
                        } else {
                            updated += 1;
                        }
                    }
                }
            }
        }
        Ok((added, updated, moved))
    })?;
    batch.clear();
    report.added += added;
    report.updated += updated;
    report.moved += moved;
    Ok(())
}

/// Whether any row has this path.
fn row_exists_at(tx: &Transaction, path: &str) -> rusqlite::Result<bool> {
    tx.prepare_cached("SELECT 1 FROM images WHERE path = ?1")?
        .query_row([path], |_| Ok(()))
        .optional()
        .map(|o| o.is_some())
}

/// A missing row with this content, which a new file with the same hash takes over.
fn missing_row_with_hash(tx: &Transaction, hash: Option<&ContentHash>) -> rusqlite::Result<Option<i64>> {
    let Some(hash) = hash else { return Ok(None) };
    tx.prepare_cached("SELECT id FROM images WHERE content_hash = ?1 AND missing = 1 ORDER BY id LIMIT 1")?
        .query_row([hash], |r| r.get(0))
        .optional()
}

/// A file's modification time as stored: nanoseconds since the Unix epoch (0 when unknown).
fn mtime_ns(meta: &std::fs::Metadata) -> i64 {
    meta.modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

/// The library's row for `path` when the file is the one it imported: present, readable, and
/// with the size and modification time on record (the scan's own "unchanged" test). Lets the
/// scoring worker reuse the stored content hash and prompt instead of hashing and parsing again.
pub fn unchanged_row(store: &Store, path: &Path) -> Option<ImageRow> {
    let meta = std::fs::metadata(path).ok()?;
    let row = store.image_by_path(path).ok()??;
    let same = meta.is_file() && row.record.size == meta.len() && row.record.mtime_ns == mtime_ns(&meta);
    (same && !row.missing && row.record.error.is_none()).then_some(row)
}

/// Looks at one file on a pool thread: a `stat`, and a read only when it is new or changed.
fn examine(job: &Job) -> Outcome {
    let mut record = ImageRecord { folder_id: Some(job.folder_id), path: job.path.clone(), ..ImageRecord::default() };
    let is_new = job.known.is_none();
    let fail = |mut record: ImageRecord, reason: String| {
        record.error = Some(reason);
        Outcome::Read { record: Box::new(record), is_new, notes: Vec::new() }
    };
    let meta = match std::fs::metadata(&job.path) {
        Ok(m) => m,
        Err(e) => return fail(record, format!("cannot stat: {e}")),
    };
    record.size = meta.len();
    record.mtime_ns = mtime_ns(&meta);
    if let Some(known) = &job.known
        && known.size == record.size
        && known.mtime_ns == record.mtime_ns
    {
        return Outcome::Unchanged { path: job.path.clone(), restore: known.missing, error: known.error.clone() };
    }
    // The guarded read refuses FIFOs (they would block), empty files and files over the limit.
    let bytes = match image_file::read(&job.path) {
        Ok(b) => b,
        Err(e) => return fail(record, e.kind.to_string()),
    };
    record.content_hash = Some(ContentHash::of(&bytes));
    let mut notes = Vec::new();
    let params = raw_metadata_from_bytes(&job.path, &bytes).map(|raw| {
        notes.extend(malformed_metadata(&raw));
        parse_raw(&raw)
    });
    match params {
        Ok(Some(params)) => {
            record.generator.clone_from(&params.generator);
            record.prompt.clone_from(&params.prompt);
            record.negative_prompt.clone_from(&params.negative_prompt);
            record.prompt_key = params.prompt.as_deref().map(prompt_group_key);
            record.checkpoint.clone_from(&params.model);
            record.checkpoint_hash.clone_from(&params.model_hash);
            record.sampler.clone_from(&params.sampler);
            record.seed = params.seed;
            record.params_json = serde_json::to_string(&params).ok();
        }
        Ok(None) => {}
        Err(e) => record.error = Some(format!("metadata unreadable: {e}")),
    }
    let format = match read_header(&bytes, &mut record) {
        Ok(format) => format,
        Err(kind) => return fail(record, kind.to_string()),
    };
    if !format.matches_extension(&job.path) {
        notes.push(format!("the file is a {format} image despite its extension; imported as such"));
    }
    Outcome::Read { record: Box::new(record), is_new, notes }
}

/// Fills format and dimensions from the header (no pixel decode) and checks the file is whole;
/// a refused size is still recorded, so the row shows what the file claims.
fn read_header(bytes: &[u8], record: &mut ImageRecord) -> Result<ImageFormat, ImageFileErrorKind> {
    record.format = ImageFormat::sniff(bytes).map(|f| f.name().to_string());
    let header = image_file::probe(bytes).inspect_err(|e| {
        if let ImageFileErrorKind::TooLarge { width, height } = *e {
            (record.width, record.height) = (Some(width), Some(height));
        }
    })?;
    (record.width, record.height) = (Some(header.width), Some(header.height));
    image_file::check_whole(header.format, bytes)?;
    Ok(header.format)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::library::store::Rating;
    use crate::synthetic::write_synthetic_pngs;

    fn scan(store: &mut Store, dir: &Path) -> ScanReport {
        let cancel = AtomicBool::new(false);
        scan_folders(store, &[dir.to_path_buf()], &ScanOptions { threads: 2 }, |_| {}, &cancel).unwrap()
    }

    fn setup(count: usize) -> (tempfile::TempDir, PathBuf, Store) {
        let tmp = tempfile::tempdir().unwrap();
        let images = tmp.path().join("images");
        std::fs::create_dir(&images).unwrap();
        write_synthetic_pngs(&images, count).unwrap();
        let store = Store::open(&tmp.path().join("lib.sqlite3")).unwrap();
        (tmp, images, store)
    }

    #[test]
    fn first_scan_imports_and_second_scan_reads_nothing() {
        let (_tmp, images, mut store) = setup(20);
        let first = scan(&mut store, &images);
        assert_eq!((first.seen, first.added, first.errors, first.unchanged), (20, 20, 0, 0), "{first:?}");
        let row = store.image_by_path(&images.join("img_000003.png")).unwrap().unwrap();
        assert_eq!((row.record.width, row.record.height), (Some(8), Some(8)));
        assert_eq!(row.record.format.as_deref(), Some("png"));
        assert_eq!(row.record.prompt.as_deref(), Some("synthetic image 3"));
        assert_eq!(row.record.content_hash.as_ref().map(|h| h.as_str().len()), Some(64));
        assert!(store.folders().unwrap()[0].last_scan_at.is_some());

        let second = scan(&mut store, &images);
        assert_eq!(second.unchanged, second.seen, "{second:?}");
        assert_eq!((second.added, second.updated, second.moved, second.missing), (0, 0, 0, 0));
    }

    #[test]
    #[cfg(unix)]
    fn a_file_name_that_is_not_utf8_is_stored_with_its_exact_bytes_and_found_again() {
        use std::os::unix::ffi::OsStrExt;
        let (_tmp, images, mut store) = setup(3);
        let odd = images.join(std::ffi::OsStr::from_bytes(b"caf\xe9 100%25.png"));
        std::fs::rename(images.join("img_000001.png"), &odd).unwrap();
        let first = scan(&mut store, &images);
        assert_eq!((first.seen, first.added, first.errors), (3, 3, 0), "{first:?}");
        let row = store.image_by_path(&odd).unwrap().unwrap();
        assert_eq!(row.record.path, odd, "the exact bytes come back");
        assert_eq!(row.record.prompt.as_deref(), Some("synthetic image 1"));
        let second = scan(&mut store, &images);
        assert_eq!((second.unchanged, second.added, second.missing), (3, 0, 0), "{second:?}");
        // Renamed to another odd name: the row follows it.
        let odder = images.join(std::ffi::OsStr::from_bytes(b"\xff\xfe.png"));
        std::fs::rename(&odd, &odder).unwrap();
        let third = scan(&mut store, &images);
        assert_eq!((third.moved, third.added), (1, 0), "{third:?}");
        assert_eq!(store.image_by_path(&odder).unwrap().unwrap().id, row.id);
    }

    #[test]
    fn a_changed_file_is_updated() {
        let (_tmp, images, mut store) = setup(3);
        scan(&mut store, &images);
        let path = images.join("img_000001.png");
        let before = store.image_by_path(&path).unwrap().unwrap();
        std::fs::copy(images.join("img_000002.png"), &path).unwrap();
        let report = scan(&mut store, &images);
        assert_eq!(report.updated, 1, "{report:?}");
        let after = store.image_by_path(&path).unwrap().unwrap();
        assert_eq!(after.id, before.id);
        assert_ne!(after.record.content_hash, before.record.content_hash);
    }

    #[test]
    fn a_renamed_file_keeps_its_row_and_rating() {
        let (_tmp, images, mut store) = setup(5);
        scan(&mut store, &images);
        let old = images.join("img_000002.png");
        let row = store.image_by_path(&old).unwrap().unwrap();
        let hash = row.record.content_hash.clone().unwrap();
        store.set_rating(&hash, Rating { overall: Some(7), ..Rating::default() }).unwrap();
        std::fs::create_dir(images.join("sub")).unwrap();
        let new = images.join("sub").join("renamed.png");
        std::fs::rename(&old, &new).unwrap();

        let report = scan(&mut store, &images);
        assert_eq!((report.moved, report.added, report.missing), (1, 0, 1), "{report:?}");
        let moved = store.image_by_path(&new).unwrap().unwrap();
        assert_eq!(moved.id, row.id);
        assert!(!moved.missing);
        assert!(store.image_by_path(&old).unwrap().is_none());
        assert_eq!(store.rating(&hash).unwrap().unwrap().overall, Some(7));
    }

    #[test]
    fn a_file_moved_between_watched_folders_keeps_its_row() {
        let (tmp, images, mut store) = setup(3);
        let other = tmp.path().join("other");
        std::fs::create_dir(&other).unwrap();
        let folders = [images.clone(), other.clone()];
        let cancel = AtomicBool::new(false);
        let options = ScanOptions { threads: 2 };
        scan_folders(&mut store, &folders, &options, |_| {}, &cancel).unwrap();
        let old = images.join("img_000001.png");
        let id = store.image_by_path(&old).unwrap().unwrap().id;
        std::fs::rename(&old, other.join("moved.png")).unwrap();
        let report = scan_folders(&mut store, &folders, &options, |_| {}, &cancel).unwrap();
        assert_eq!((report.moved, report.added), (1, 0), "{report:?}");
        let row = store.image_by_path(&other.join("moved.png")).unwrap().unwrap();
        assert_eq!(row.id, id);
        assert_eq!(row.record.folder_id, Some(store.folders().unwrap()[1].id));
    }

    #[test]
    fn overlapping_folders_never_move_a_row_onto_an_existing_path() {
        let (_tmp, images, mut store) = setup(1);
        let sub = images.join("sub");
        std::fs::create_dir(&sub).unwrap();
        std::fs::rename(images.join("img_000000.png"), sub.join("b.png")).unwrap();
        scan(&mut store, &sub);
        std::fs::copy(sub.join("b.png"), images.join("c.png")).unwrap();
        scan(&mut store, &images);
        std::fs::remove_file(images.join("c.png")).unwrap();
        assert_eq!(scan(&mut store, &images).missing, 1);
        // b.png now belongs to the outer folder's rows; the inner scan sees it as new while a
        // missing row with its hash exists.
        let report = scan(&mut store, &sub);
        assert_eq!((report.moved, report.errors), (0, 0), "{report:?}");
        assert!(!store.image_by_path(&sub.join("b.png")).unwrap().unwrap().missing);
    }

    #[test]
    fn a_deleted_file_goes_missing_and_comes_back() {
        let (tmp, images, mut store) = setup(4);
        scan(&mut store, &images);
        let path = images.join("img_000000.png");
        let id = store.image_by_path(&path).unwrap().unwrap().id;
        let aside = tmp.path().join("aside.png");
        std::fs::rename(&path, &aside).unwrap();
        let report = scan(&mut store, &images);
        assert_eq!(report.missing, 1, "{report:?}");
        assert!(store.image_by_path(&path).unwrap().unwrap().missing);

        std::fs::rename(&aside, &path).unwrap();
        let report = scan(&mut store, &images);
        assert_eq!(report.unchanged, 4, "{report:?}");
        let row = store.image_by_path(&path).unwrap().unwrap();
        assert_eq!(row.id, id);
        assert!(!row.missing);
    }

    #[test]
    fn an_absent_folder_marks_its_rows_missing_until_it_returns() {
        let (tmp, images, mut store) = setup(3);
        scan(&mut store, &images);
        let away = tmp.path().join("unplugged");
        std::fs::rename(&images, &away).unwrap();
        let report = scan(&mut store, &images);
        assert_eq!(report.missing, 3, "{report:?}");
        assert_eq!(report.issues.len(), 1);
        assert!(!store.folders().unwrap()[0].present);
        std::fs::rename(&away, &images).unwrap();
        let report = scan(&mut store, &images);
        assert_eq!(report.unchanged, 3, "{report:?}");
        assert!(store.folders().unwrap()[0].present);
        assert!(!store.image_by_path(&images.join("img_000001.png")).unwrap().unwrap().missing);
    }

    #[test]
    fn bad_files_are_reported_one_each_and_the_scan_goes_on() {
        let (_tmp, images, mut store) = setup(2);
        std::fs::write(images.join("empty.png"), b"").unwrap();
        std::fs::write(images.join("text.png"), b"this is not an image at all").unwrap();
        let whole = std::fs::read(images.join("img_000000.png")).unwrap();
        std::fs::write(images.join("truncated.png"), &whole[..whole.len() - 20]).unwrap();
        // A header declaring 60000x60000 pixels: a decompression bomb.
        let mut bomb = whole.clone();
        bomb[16..20].copy_from_slice(&60_000u32.to_be_bytes());
        bomb[20..24].copy_from_slice(&60_000u32.to_be_bytes());
        std::fs::write(images.join("bomb.png"), &bomb).unwrap();

        let report = scan(&mut store, &images);
        assert_eq!(report.seen, 6, "{report:?}");
        assert_eq!(report.errors, 4, "{report:?}");
        for name in ["empty.png", "text.png", "truncated.png", "bomb.png"] {
            let path = images.join(name);
            assert!(report.issues.iter().any(|i| i.path == path), "{name} not reported: {report:?}");
            let row = store.image_by_path(&path).unwrap().unwrap();
            assert!(row.record.error.is_some(), "{name}");
        }
        assert!(store.image_by_path(&images.join("img_000001.png")).unwrap().unwrap().record.error.is_none());
        // Unchanged bad files are not read again but still reported.
        let again = scan(&mut store, &images);
        assert_eq!((again.unchanged, again.issues.len()), (6, 4), "{again:?}");
    }

    #[cfg(unix)]
    #[test]
    fn fifos_link_loops_unreadable_misnamed_and_damaged_metadata_are_each_reported() {
        use std::os::unix::fs::PermissionsExt;
        let (_tmp, images, mut store) = setup(2);
        let fifo = images.join("pipe.png");
        assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
        let self_loop = images.join("loop.png");
        std::os::unix::fs::symlink(&self_loop, &self_loop).unwrap();
        std::os::unix::fs::symlink(&images, images.join("back-up")).unwrap();
        let misnamed = images.join("really_a_png.jpg");
        std::fs::copy(images.join("img_000000.png"), &misnamed).unwrap();
        let damaged = images.join("damaged.png");
        std::fs::write(
            &damaged,
            crate::library::metadata::container::tests::png_with_text(&[("prompt", "{\"3\": {\"class_type\": ")]),
        )
        .unwrap();
        let locked = images.join("locked.png");
        std::fs::copy(images.join("img_000001.png"), &locked).unwrap();
        std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o000)).unwrap();
        // Root reads anything: then this part of the test says nothing.
        let unreadable = std::fs::read(&locked).is_err();

        let report = scan(&mut store, &images);
        let reason =
            |path: &Path| report.issues.iter().find(|i| i.path == path).map(|i| i.reason.clone()).unwrap_or_default();
        assert!(reason(&fifo).contains("not a regular file"), "{report:?}");
        assert!(reason(&self_loop).contains("symbolic link"), "{report:?}");
        assert!(reason(&misnamed).contains("PNG image despite its extension"), "{report:?}");
        assert!(reason(&damaged).contains("malformed `prompt` metadata"), "{report:?}");
        if unreadable {
            assert!(reason(&locked).contains("cannot read"), "{report:?}");
        }
        // The misnamed and the damaged files are still images in the library.
        assert!(store.image_by_path(&misnamed).unwrap().unwrap().record.error.is_none());
        assert!(store.image_by_path(&damaged).unwrap().unwrap().record.error.is_none());
        // The folder loop was reported once (nothing under it: it was not followed).
        assert_eq!(reason(&images.join("back-up")), "symbolic link loop, not followed", "{report:?}");
        assert_eq!(report.issues.iter().filter(|i| i.path.starts_with(images.join("back-up"))).count(), 1);
        assert_eq!(report.seen, 5, "{report:?}");
    }

    #[test]
    fn cancellation_stops_early_and_leaves_a_consistent_store() {
        let (_tmp, images, mut store) = setup(1200);
        let cancel = AtomicBool::new(false);
        let report = scan_folders(
            &mut store,
            std::slice::from_ref(&images),
            &ScanOptions { threads: 2 },
            |p| {
                if p.done >= 10 {
                    cancel.store(true, Ordering::Relaxed);
                }
            },
            &cancel,
        )
        .unwrap();
        assert!(report.cancelled, "{report:?}");
        assert!(report.added < 1200, "{report:?}");
        let stored = store.view(&crate::library::views::ViewQuery::default()).unwrap();
        assert_eq!(stored.len(), report.added);
        assert!(store.folders().unwrap()[0].last_scan_at.is_none());
        // A later scan finishes the job.
        let rest = scan(&mut store, &images);
        assert_eq!(rest.added + rest.unchanged, 1200, "{rest:?}");
    }
}
