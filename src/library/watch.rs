//! Watching folders while generators write into them.
//!
//! One named thread owns its own [`Store`] connection and a debounced OS watcher. A changed path
//! waits until it has settled (size and mtime unchanged for [`WatchOptions::settle`]) and looks
//! whole (the format's end marker is there), so a generator writing a large PNG never yields a
//! half-decoded row; a file renamed from a temporary name is whole at once. Settled paths are
//! imported together with [`import_paths`], so a bulk copy of thousands of files costs one read
//! per file in a few batches, never a rescan per file. Watched folders are polled for presence:
//! one that disappears (an unplugged or network drive) is reported and its rows marked missing;
//! when it returns it is watched and rescanned. The caller drains [`WatchEvent`]s when it likes
//! (a UI each frame) and never waits on the watcher.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use notify::event::{AccessKind, AccessMode};
use notify::{EventKind, RecursiveMode};
use notify_debouncer_full::{DebounceEventResult, Debouncer, RecommendedCache, new_debouncer};

use super::scan::{ScanOptions, ScanProgress, ScanReport, import_paths, scan_folders};
use crate::wake::{Waker, wake};

/// How often a running full scan reports progress.
const PROGRESS_EVERY: Duration = Duration::from_millis(250);
use super::store::{Store, StoreError};
use crate::image_file::{has_image_extension, looks_complete};

/// Timings of the watcher; the defaults suit generators writing to a local disk.
#[derive(Debug, Clone)]
pub struct WatchOptions {
    /// How long the OS watcher coalesces events for one path.
    pub debounce: Duration,
    /// How long a file's size and mtime must stay unchanged before it is read.
    pub settle: Duration,
    /// How long a settled file may lack its end marker before it is imported anyway (and reported
    /// as truncated); a writer that died mid-file must not keep it out of the library forever.
    pub give_up_after: Duration,
    /// How often watched folders are checked for disappearing or returning.
    pub folder_poll: Duration,
    /// How imports read files.
    pub scan: ScanOptions,
    /// Also watch (and rescan) every folder the library already has, so an app opens on the
    /// library as the last run left it.
    pub resume_known: bool,
    /// Run after each event is sent (a UI repaints instead of polling).
    pub waker: Option<Waker>,
}

impl Default for WatchOptions {
    fn default() -> Self {
        Self {
            debounce: Duration::from_millis(400),
            settle: Duration::from_millis(500),
            give_up_after: Duration::from_secs(30),
            folder_poll: Duration::from_secs(2),
            scan: ScanOptions::default(),
            resume_known: false,
            waker: None,
        }
    }
}

/// One watched folder as a sidebar shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FolderStatus {
    /// The folder.
    pub path: PathBuf,
    /// Whether it is there (an unplugged drive is not).
    pub present: bool,
    /// Whether the OS watch on it is in place.
    pub watching: bool,
}

/// What the watcher tells its owner.
#[derive(Debug, Clone)]
pub enum WatchEvent {
    /// A watched folder was scanned in full: at start, when added, when it came back, or after the
    /// OS dropped events.
    Scanned {
        /// The folder.
        folder: PathBuf,
        /// What the scan did.
        report: ScanReport,
    },
    /// A full scan is under way: files finished of those found, so far.
    ScanProgress {
        /// The folder.
        folder: PathBuf,
        /// Files finished.
        done: usize,
        /// Files found.
        total: usize,
    },
    /// A batch of settled changes was written to the store.
    Updated {
        /// What the import did.
        report: ScanReport,
        /// The changed paths as the OS reported them (files or folders, present or gone).
        paths: Vec<PathBuf>,
    },
    /// A watched folder disappeared; its rows are marked missing until it returns.
    FolderGone {
        /// The folder.
        folder: PathBuf,
    },
    /// A watched folder that had disappeared is back; a [`WatchEvent::Scanned`] follows.
    FolderBack {
        /// The folder.
        folder: PathBuf,
    },
    /// The watched folders changed (added, removed, gone, back): every one, as it is now.
    Folders(Vec<FolderStatus>),
    /// A folder was removed from the library (its files untouched; its image rows forgotten,
    /// ratings, favorites and scores kept by content hash).
    Removed {
        /// The folder.
        folder: PathBuf,
    },
    /// A problem that is not one file's: the OS watch failed, or the store could not be written.
    Error {
        /// What went wrong, with the path where there is one.
        message: String,
    },
}

/// Why the watcher could not start.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    /// The store could not be opened.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The OS file watcher could not be created.
    #[error("cannot start the file watcher: {0}")]
    Notify(#[from] notify::Error),
    /// The watcher thread could not be started.
    #[error("cannot start the watcher thread: {0}")]
    Thread(#[from] std::io::Error),
}

/// What arrives on the watcher thread's inbox.
enum Input {
    Fs(DebounceEventResult),
    AddFolder(PathBuf),
    RemoveFolder(PathBuf),
    Stop,
}

/// A running watcher; dropping it stops the thread (promptly, even mid-scan) and waits for it.
pub struct LibraryWatcher {
    inbox: Sender<Input>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for LibraryWatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LibraryWatcher").field("running", &self.thread.is_some()).finish()
    }
}

impl LibraryWatcher {
    /// Opens the store at `db`, adds and scans `folders`, and watches them until stopped. Events go
    /// to the returned receiver.
    pub fn start(
        db: &Path,
        folders: Vec<PathBuf>,
        options: WatchOptions,
    ) -> Result<(Self, Receiver<WatchEvent>), WatchError> {
        let store = Store::open_background(db)?;
        let (inbox, inputs) = channel();
        let fs_inbox = inbox.clone();
        let debouncer = new_debouncer(options.debounce, None, move |result: DebounceEventResult| {
            // Fails only after the watcher thread ended; nothing is left to tell.
            let _ = fs_inbox.send(Input::Fs(result));
        })?;
        let (events, receiver) = channel();
        let stop = Arc::new(AtomicBool::new(false));
        let state = WatchState {
            store,
            debouncer,
            options,
            folders: Vec::new(),
            pending: HashMap::new(),
            events,
            stop: Arc::clone(&stop),
            poll_now: false,
        };
        let thread = std::thread::Builder::new().name("rewardlens-watch".to_string()).spawn(move || {
            // Scans and rescans are background work: the UI (and its first frame) comes first.
            crate::priority::set_current_thread_priority(crate::priority::Priority::Background);
            state.run(&inputs, folders);
        })?;
        Ok((Self { inbox, stop, thread: Some(thread) }, receiver))
    }

    /// Adds a folder to the library; it is scanned and then watched.
    pub fn add_folder(&self, folder: PathBuf) {
        // Fails only when the thread has ended, which `stop` reports.
        let _ = self.inbox.send(Input::AddFolder(folder));
    }

    /// Removes a folder from the library: it is no longer watched and its image rows go; the
    /// files themselves are never touched.
    pub fn remove_folder(&self, folder: PathBuf) {
        // Fails only when the thread has ended, which `stop` reports.
        let _ = self.inbox.send(Input::RemoveFolder(folder));
    }

    /// Stops the watcher and waits for its thread; a scan in progress ends at its next file.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.inbox.send(Input::Stop);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for LibraryWatcher {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// A watched folder and whether the OS watch on it is in place.
struct Watched {
    path: PathBuf,
    present: bool,
    watching: bool,
    /// The folder itself was removed under a live watch; when it is seen again it is rescanned.
    lost: bool,
}

/// A changed path waiting to settle.
struct Pending {
    last_change: Instant,
    last_stat: Option<(u64, Option<SystemTime>)>,
}

/// Everything the watcher thread owns.
struct WatchState {
    store: Store,
    debouncer: Debouncer<notify::RecommendedWatcher, RecommendedCache>,
    options: WatchOptions,
    folders: Vec<Watched>,
    pending: HashMap<PathBuf, Pending>,
    events: Sender<WatchEvent>,
    stop: Arc<AtomicBool>,
    poll_now: bool,
}

/// Size and mtime, the "has it changed" test.
fn stat_parts(meta: &std::fs::Metadata) -> (u64, Option<SystemTime>) {
    (meta.len(), meta.modified().ok())
}

/// [`stat_parts`] of a path; `None` when the path is gone.
fn stat_of(path: &Path) -> Option<(u64, Option<SystemTime>)> {
    std::fs::metadata(path).ok().map(|m| stat_parts(&m))
}

impl WatchState {
    fn run(mut self, inputs: &Receiver<Input>, mut folders: Vec<PathBuf>) {
        if self.options.resume_known {
            match self.store.folders() {
                Ok(known) => {
                    for folder in known {
                        if !folders.contains(&folder.path) {
                            folders.push(folder.path);
                        }
                    }
                }
                Err(e) => self.emit(WatchEvent::Error { message: format!("reading the library's folders: {e}") }),
            }
        }
        // Every folder is listed (and watched) before the first full scan, so a sidebar shows
        // them all at once.
        for folder in &folders {
            self.watch_folder(folder.clone());
        }
        self.emit_folders();
        for folder in folders {
            self.full_scan(&folder);
        }
        let tick = (self.options.settle / 2).clamp(Duration::from_millis(20), Duration::from_millis(250));
        let mut last_poll = Instant::now();
        while !self.stop.load(Ordering::Relaxed) {
            match inputs.recv_timeout(tick) {
                Ok(Input::Stop) | Err(RecvTimeoutError::Disconnected) => break,
                Ok(Input::AddFolder(folder)) => self.add_folder(folder),
                Ok(Input::RemoveFolder(folder)) => self.remove_folder(&folder),
                Ok(Input::Fs(result)) => self.note_events(result),
                Err(RecvTimeoutError::Timeout) => {}
            }
            self.import_settled();
            if self.poll_now || last_poll.elapsed() >= self.options.folder_poll {
                last_poll = Instant::now();
                self.poll_now = false;
                self.poll_folders();
            }
        }
    }

    fn emit(&self, event: WatchEvent) {
        // The owner dropped the receiver: it no longer cares; keep the store current regardless.
        let _ = self.events.send(event);
        wake(self.options.waker.as_ref());
    }

    fn add_folder(&mut self, path: PathBuf) {
        if self.watch_folder(path.clone()) {
            self.emit_folders();
            self.full_scan(&path);
        }
    }

    /// Starts watching a folder (before it is scanned, so a file written during the scan is not
    /// missed); `false` when it was watched already.
    fn watch_folder(&mut self, path: PathBuf) -> bool {
        if self.folders.iter().any(|f| f.path == path) {
            return false;
        }
        let present = path.is_dir();
        self.folders.push(Watched { path, present, watching: false, lost: false });
        if present {
            self.start_watching(self.folders.len() - 1);
        }
        true
    }

    fn remove_folder(&mut self, path: &Path) {
        if let Some(index) = self.folders.iter().position(|f| f.path == path) {
            let folder = self.folders.remove(index);
            if folder.watching {
                // Unwatching a folder the OS already dropped fails; nothing is left to undo.
                let _ = self.debouncer.unwatch(&folder.path);
            }
        }
        self.pending.retain(|p, _| !p.starts_with(path));
        match self.store.remove_folder(path) {
            Ok(_) => self.emit(WatchEvent::Removed { folder: path.to_path_buf() }),
            Err(e) => self.emit(WatchEvent::Error { message: format!("removing {}: {e}", path.display()) }),
        }
        self.emit_folders();
    }

    fn emit_folders(&self) {
        let folders = self
            .folders
            .iter()
            .map(|f| FolderStatus { path: f.path.clone(), present: f.present, watching: f.watching })
            .collect();
        self.emit(WatchEvent::Folders(folders));
    }

    fn start_watching(&mut self, index: usize) {
        let path = self.folders[index].path.clone();
        match self.debouncer.watch(&path, RecursiveMode::Recursive) {
            Ok(()) => self.folders[index].watching = true,
            Err(e) => self.emit(WatchEvent::Error { message: format!("cannot watch {}: {e}", path.display()) }),
        }
    }

    fn full_scan(&mut self, folder: &Path) {
        let options = self.options.scan.clone();
        // Progress at most every PROGRESS_EVERY, and at the end: a 100k-file scan is a few events.
        let last = std::cell::Cell::new(None::<Instant>);
        let (events, waker) = (&self.events, self.options.waker.as_ref());
        let progress = |p: ScanProgress| {
            let due = last.get().is_none_or(|t| t.elapsed() >= PROGRESS_EVERY) || p.done == p.total;
            if due {
                last.set(Some(Instant::now()));
                let _ = events.send(WatchEvent::ScanProgress {
                    folder: folder.to_path_buf(),
                    done: p.done,
                    total: p.total,
                });
                wake(waker);
            }
        };
        match scan_folders(&mut self.store, &[folder.to_path_buf()], &options, progress, &self.stop) {
            Ok(report) => self.emit(WatchEvent::Scanned { folder: folder.to_path_buf(), report }),
            Err(e) => self.emit(WatchEvent::Error { message: format!("scanning {}: {e}", folder.display()) }),
        }
    }

    fn note_events(&mut self, result: DebounceEventResult) {
        match result {
            Ok(events) => {
                let now = Instant::now();
                let mut rescan = Vec::new();
                for event in events {
                    // Opening and reading (ours included: checking a file opens it) changes
                    // nothing; closing a file written to does.
                    if let EventKind::Access(kind) = event.kind
                        && kind != AccessKind::Close(AccessMode::Write)
                    {
                        continue;
                    }
                    if event.need_rescan() {
                        // The OS dropped events (a huge burst): only a full scan is sure.
                        rescan.extend(self.folders.iter().filter(|f| f.present).map(|f| f.path.clone()));
                        continue;
                    }
                    for path in &event.paths {
                        if !self.folders.iter().any(|f| path.starts_with(&f.path)) {
                            continue;
                        }
                        if let Some(folder) = self.folders.iter_mut().find(|f| &f.path == path) {
                            // The folder itself moved or went: the OS watch died with it.
                            if !path.is_dir() {
                                folder.watching = false;
                                folder.lost = true;
                                self.poll_now = true;
                            }
                            continue;
                        }
                        let entry =
                            self.pending.entry(path.clone()).or_insert(Pending { last_change: now, last_stat: None });
                        entry.last_change = now;
                        entry.last_stat = stat_of(path);
                    }
                }
                rescan.sort();
                rescan.dedup();
                for folder in rescan {
                    self.full_scan(&folder);
                }
            }
            Err(errors) => {
                for e in errors {
                    self.emit(WatchEvent::Error { message: format!("file watcher: {e}") });
                }
            }
        }
    }

    /// Imports every pending path that has settled and looks whole.
    fn import_settled(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let now = Instant::now();
        let mut ready = Vec::new();
        let options = &self.options;
        self.pending.retain(|path, pending| {
            if now.duration_since(pending.last_change) < options.settle {
                return true;
            }
            // Gone (its rows go missing) or a folder (walked on import): nothing to wait for.
            let meta = match std::fs::metadata(path) {
                Ok(meta) if !meta.is_dir() => meta,
                _ => {
                    ready.push(path.clone());
                    return false;
                }
            };
            if !has_image_extension(path) {
                // A temporary name or a sidecar; the rename to the final name brings its own event.
                return false;
            }
            let stat = Some(stat_parts(&meta));
            if stat != pending.last_stat {
                pending.last_stat = stat;
                pending.last_change = now;
                return true;
            }
            let whole = looks_complete(path).unwrap_or(true);
            if whole || now.duration_since(pending.last_change) >= options.give_up_after {
                ready.push(path.clone());
                return false;
            }
            true
        });
        if ready.is_empty() {
            return;
        }
        ready.sort();
        let scan = self.options.scan.clone();
        match import_paths(&mut self.store, &ready, &scan, &self.stop) {
            Ok(report) => self.emit(WatchEvent::Updated { report, paths: ready }),
            Err(e) => self.emit(WatchEvent::Error { message: format!("importing changes: {e}") }),
        }
    }

    /// Notices folders that disappeared or came back.
    fn poll_folders(&mut self) {
        for index in 0..self.folders.len() {
            let path = self.folders[index].path.clone();
            let present = path.is_dir();
            let was = self.folders[index].present;
            self.folders[index].present = present;
            match (was, present) {
                (true, false) => {
                    if self.folders[index].watching {
                        // The OS dropped the watch with the folder; forget ours (an error here is
                        // that same fact).
                        let _ = self.debouncer.unwatch(&path);
                        self.folders[index].watching = false;
                    }
                    self.pending.retain(|p, _| !p.starts_with(&path));
                    self.emit(WatchEvent::FolderGone { folder: path.clone() });
                    self.emit_folders();
                    self.full_scan(&path);
                }
                (false, true) => {
                    self.folders[index].lost = false;
                    self.emit(WatchEvent::FolderBack { folder: path.clone() });
                    self.start_watching(index);
                    self.emit_folders();
                    self.full_scan(&path);
                }
                (true, true) if !self.folders[index].watching => {
                    self.start_watching(index);
                    // Removed and recreated between two polls: what it holds now is unknown.
                    if std::mem::take(&mut self.folders[index].lost) {
                        self.full_scan(&path);
                    }
                }
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::library::scan::ScanIssue;
    use crate::library::store::Rating;
    use crate::synthetic::write_synthetic_pngs;
    use std::io::Write;

    /// Fast timings so tests take well under a second per change.
    fn quick() -> WatchOptions {
        WatchOptions {
            debounce: Duration::from_millis(50),
            settle: Duration::from_millis(150),
            give_up_after: Duration::from_millis(1500),
            folder_poll: Duration::from_millis(200),
            scan: ScanOptions { threads: 2 },
            resume_known: false,
            waker: None,
        }
    }

    struct Fixture {
        _tmp: tempfile::TempDir,
        root: PathBuf,
        source: PathBuf,
        db: PathBuf,
    }

    /// A watched root (empty) and a folder of 20 ready-made PNGs outside it to copy from.
    fn fixture() -> Fixture {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("watched");
        let source = tmp.path().join("source");
        std::fs::create_dir_all(&root).unwrap();
        std::fs::create_dir_all(&source).unwrap();
        write_synthetic_pngs(&source, 20).unwrap();
        let db = tmp.path().join("lib.sqlite3");
        Fixture { root, source, db, _tmp: tmp }
    }

    fn png(fx: &Fixture, i: usize) -> Vec<u8> {
        std::fs::read(fx.source.join(format!("img_{i:06}.png"))).unwrap()
    }

    /// Polls `check` against a fresh store connection until it holds or 15 s pass.
    fn wait_for(db: &Path, what: &str, check: impl Fn(&Store) -> bool) {
        let store = Store::open(db).unwrap();
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(15) {
            if check(&store) {
                return;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("timed out waiting for: {what}");
    }

    fn row(store: &Store, path: &Path) -> Option<crate::library::store::ImageRow> {
        store.image_by_path(path).unwrap()
    }

    fn start(fx: &Fixture) -> (LibraryWatcher, Receiver<WatchEvent>) {
        let (watcher, events) = LibraryWatcher::start(&fx.db, vec![fx.root.clone()], quick()).unwrap();
        // The start-up scan of the (empty) folder comes first, after its progress.
        loop {
            match events.recv_timeout(Duration::from_secs(10)).unwrap() {
                WatchEvent::ScanProgress { .. } | WatchEvent::Folders(_) => {}
                WatchEvent::Scanned { folder, .. } => {
                    assert_eq!(folder, fx.root);
                    break;
                }
                other => panic!("expected the start-up scan, got {other:?}"),
            }
        }
        (watcher, events)
    }

    #[test]
    fn the_start_up_scan_reports_progress_and_every_event_wakes_the_owner() {
        let fx = fixture();
        for i in 0..20 {
            std::fs::write(fx.root.join(format!("{i}.png")), png(&fx, i)).unwrap();
        }
        let wakes = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = Arc::clone(&wakes);
        let options = WatchOptions {
            waker: Some(Waker::new(move || {
                counter.fetch_add(1, Ordering::SeqCst);
            })),
            ..quick()
        };
        let (_watcher, events) = LibraryWatcher::start(&fx.db, vec![fx.root.clone()], options).unwrap();
        let mut progress = Vec::new();
        let mut received = 0;
        loop {
            let event = events.recv_timeout(Duration::from_secs(10)).unwrap();
            received += 1;
            match event {
                WatchEvent::ScanProgress { done, total, .. } => progress.push((done, total)),
                WatchEvent::Folders(folders) => assert_eq!(folders.len(), 1),
                WatchEvent::Scanned { report, .. } => {
                    assert_eq!(report.added, 20);
                    break;
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(progress.first(), Some(&(0, 20)), "{progress:?}");
        assert_eq!(progress.last(), Some(&(20, 20)), "{progress:?}");
        assert!(progress.windows(2).all(|w| w[0].0 <= w[1].0), "{progress:?}");
        // The wake follows the send: give the last one a moment.
        let deadline = Instant::now() + Duration::from_secs(2);
        while wakes.load(Ordering::SeqCst) < received && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(wakes.load(Ordering::SeqCst) >= received, "woken after each event");
    }

    #[test]
    fn a_half_written_png_is_imported_only_once_complete() {
        let fx = fixture();
        let (_watcher, events) = start(&fx);
        let bytes = png(&fx, 1);
        let path = fx.root.join("slow.png");
        let mut file = std::fs::File::create(&path).unwrap();
        file.write_all(&bytes[..bytes.len() / 2]).unwrap();
        file.flush().unwrap();
        // Well past debounce + settle, the file is still not a row: it lacks IEND.
        std::thread::sleep(Duration::from_millis(700));
        assert!(row(&Store::open(&fx.db).unwrap(), &path).is_none(), "half a PNG was imported");
        file.write_all(&bytes[bytes.len() / 2..]).unwrap();
        drop(file);
        wait_for(&fx.db, "the completed file", |s| {
            row(s, &path).is_some_and(|r| r.record.error.is_none() && r.record.width == Some(8))
        });
        // Once settled the watcher is quiet: its own reads of the file raise no new imports.
        std::thread::sleep(Duration::from_millis(300));
        let _ = events.try_iter().count();
        std::thread::sleep(Duration::from_millis(800));
        let late: Vec<WatchEvent> = events.try_iter().collect();
        assert!(late.is_empty(), "an idle watcher keeps importing: {late:?}");
    }

    #[test]
    fn renames_moves_and_deletes_update_the_store_and_keep_ratings() {
        let fx = fixture();
        let (_watcher, _events) = start(&fx);
        // Written under a temporary name, then renamed, as generators do.
        let temp = fx.root.join("out.png.part");
        let final_path = fx.root.join("out.png");
        std::fs::write(&temp, png(&fx, 2)).unwrap();
        std::fs::rename(&temp, &final_path).unwrap();
        wait_for(&fx.db, "the renamed-in file", |s| row(s, &final_path).is_some());
        let mut store = Store::open(&fx.db).unwrap();
        let first = row(&store, &final_path).unwrap();
        assert!(row(&store, &temp).is_none(), "the temporary name must not become a row");
        let hash = first.record.content_hash.clone().unwrap();
        store.set_rating(&hash, Rating { overall: Some(6), ..Rating::default() }).unwrap();

        // A subfolder renamed with the rated file inside.
        let sub = fx.root.join("keep");
        std::fs::create_dir(&sub).unwrap();
        let in_sub = sub.join("out.png");
        std::fs::rename(&final_path, &in_sub).unwrap();
        wait_for(&fx.db, "the move into a subfolder", |s| row(s, &in_sub).is_some_and(|r| !r.missing));
        let renamed_sub = fx.root.join("kept");
        std::fs::rename(&sub, &renamed_sub).unwrap();
        let moved = renamed_sub.join("out.png");
        wait_for(&fx.db, "the folder rename", |s| row(s, &moved).is_some_and(|r| !r.missing));
        let after = row(&store, &moved).unwrap();
        assert_eq!(after.id, first.id, "the row followed the file");
        assert_eq!(store.rating(&hash).unwrap().unwrap().overall, Some(6));
        assert!(row(&store, &in_sub).is_none(), "the old path's row was taken over");

        std::fs::remove_file(&moved).unwrap();
        wait_for(&fx.db, "the deletion", |s| row(s, &moved).is_some_and(|r| r.missing));
        assert_eq!(store.rating(&hash).unwrap().unwrap().overall, Some(6), "a deletion keeps the rating");
    }

    #[test]
    fn a_bulk_copy_reads_each_file_once_in_a_few_batches() {
        let fx = fixture();
        let bulk = fx._tmp.path().join("bulk");
        std::fs::create_dir(&bulk).unwrap();
        write_synthetic_pngs(&bulk, 1000).unwrap();
        let (_watcher, events) = start(&fx);
        for entry in std::fs::read_dir(&bulk).unwrap() {
            let entry = entry.unwrap();
            std::fs::copy(entry.path(), fx.root.join(entry.file_name())).unwrap();
        }
        let (mut batches, mut read, mut added, mut rescans) = (0, 0, 0, 0);
        let start = Instant::now();
        while added < 1000 && start.elapsed() < Duration::from_secs(30) {
            match events.recv_timeout(Duration::from_millis(200)) {
                Ok(WatchEvent::Updated { report, .. }) => {
                    batches += 1;
                    read += report.seen - report.unchanged;
                    added += report.added;
                }
                Ok(WatchEvent::Scanned { .. }) => rescans += 1,
                _ => {}
            }
        }
        assert_eq!(added, 1000);
        assert_eq!(read, 1000, "each copied file is read exactly once");
        assert_eq!(rescans, 0, "no folder rescan");
        // Imports follow the settle tick, so their number depends on how long the copy takes;
        // on average each one takes many files.
        assert!(batches <= 100, "{batches} imports for one bulk copy");
    }

    #[test]
    fn a_vanishing_folder_is_reported_and_picked_up_again() {
        let fx = fixture();
        std::fs::copy(fx.source.join("img_000003.png"), fx.root.join("a.png")).unwrap();
        let (_watcher, events) = start(&fx);
        let path = fx.root.join("a.png");
        assert!(row(&Store::open(&fx.db).unwrap(), &path).is_some_and(|r| !r.missing));
        let away = fx._tmp.path().join("unplugged");
        std::fs::rename(&fx.root, &away).unwrap();
        wait_for(&fx.db, "rows marked missing", |s| row(s, &path).is_some_and(|r| r.missing));
        std::fs::rename(&away, &fx.root).unwrap();
        wait_for(&fx.db, "rows back", |s| row(s, &path).is_some_and(|r| !r.missing));
        let mut seen: Vec<WatchEvent> = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        let both = |seen: &[WatchEvent]| {
            seen.iter().any(|e| matches!(e, WatchEvent::FolderGone { .. }))
                && seen.iter().any(|e| matches!(e, WatchEvent::FolderBack { .. }))
        };
        while !both(&seen) && Instant::now() < deadline {
            seen.extend(events.recv_timeout(Duration::from_millis(100)));
        }
        assert!(seen.iter().any(|e| matches!(e, WatchEvent::FolderGone { .. })), "{seen:?}");
        assert!(seen.iter().any(|e| matches!(e, WatchEvent::FolderBack { .. })), "{seen:?}");
        // Watching resumed: a new file after the return is imported.
        let new = fx.root.join("b.png");
        std::fs::copy(fx.source.join("img_000004.png"), &new).unwrap();
        wait_for(&fx.db, "a file added after the return", |s| row(s, &new).is_some());
    }

    #[test]
    fn hostile_files_are_reported_and_watching_goes_on() {
        let fx = fixture();
        let (_watcher, events) = start(&fx);
        let zero = fx.root.join("zero.png");
        let text = fx.root.join("text.png");
        let cut = fx.root.join("cut.png");
        std::fs::write(&zero, b"").unwrap();
        std::fs::write(&text, b"this is not an image at all").unwrap();
        let bytes = png(&fx, 5);
        std::fs::write(&cut, &bytes[..bytes.len() - 40]).unwrap();
        #[cfg(unix)]
        let fifo = {
            let fifo = fx.root.join("pipe.png");
            let status = std::process::Command::new("mkfifo").arg(&fifo).status().unwrap();
            assert!(status.success());
            fifo
        };
        let good = fx.root.join("good.png");
        std::fs::write(&good, png(&fx, 6)).unwrap();
        wait_for(&fx.db, "the good file", |s| row(s, &good).is_some_and(|r| r.record.error.is_none()));
        // The truncated file is imported with an error once the writer is given up on.
        wait_for(&fx.db, "the truncated file's error", |s| {
            row(s, &cut).is_some_and(|r| r.record.error.as_deref().is_some_and(|e| e.contains("truncated")))
        });
        let store = Store::open(&fx.db).unwrap();
        let zero_row = row(&store, &zero).unwrap();
        assert!(zero_row.record.error.as_deref().unwrap().contains("empty"), "{zero_row:?}");
        assert!(row(&store, &text).unwrap().record.error.is_some());
        #[cfg(unix)]
        assert!(row(&store, &fifo).unwrap().record.error.as_deref().unwrap().contains("not a regular file"));
        // The event follows the commit the rows came with: wait for it rather than race it.
        let mut issues: Vec<ScanIssue> = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        let reported = |issues: &[ScanIssue]| [&zero, &text, &cut].iter().all(|p| issues.iter().any(|i| &i.path == *p));
        while !reported(&issues) && Instant::now() < deadline {
            if let Ok(WatchEvent::Updated { report, .. }) = events.recv_timeout(Duration::from_millis(100)) {
                issues.extend(report.issues);
            }
        }
        for path in [&zero, &text, &cut] {
            assert!(issues.iter().any(|i| &i.path == path), "{} not reported: {issues:?}", path.display());
        }
    }

    #[test]
    fn a_folder_added_while_running_is_scanned_and_watched() {
        let fx = fixture();
        let (watcher, events) = start(&fx);
        let other = fx._tmp.path().join("other");
        std::fs::create_dir(&other).unwrap();
        std::fs::copy(fx.source.join("img_000007.png"), other.join("x.png")).unwrap();
        watcher.add_folder(other.clone());
        loop {
            match events.recv_timeout(Duration::from_secs(10)).unwrap() {
                WatchEvent::ScanProgress { folder, .. } => assert_eq!(folder, other),
                WatchEvent::Folders(folders) => assert_eq!(folders.len(), 2),
                WatchEvent::Scanned { folder, report } => {
                    assert_eq!(folder, other);
                    assert_eq!(report.added, 1);
                    break;
                }
                e => panic!("unexpected {e:?}"),
            }
        }
        std::fs::copy(fx.source.join("img_000008.png"), other.join("y.png")).unwrap();
        wait_for(&fx.db, "a new file in the added folder", |s| row(s, &other.join("y.png")).is_some());
        watcher.stop();
    }

    #[test]
    fn a_removed_folder_leaves_its_files_and_the_next_start_resumes_the_rest() {
        let fx = fixture();
        std::fs::copy(fx.source.join("img_000001.png"), fx.root.join("kept.png")).unwrap();
        let other = fx._tmp.path().join("other");
        std::fs::create_dir(&other).unwrap();
        std::fs::copy(fx.source.join("img_000002.png"), other.join("gone-from-library.png")).unwrap();
        let (watcher, events) = LibraryWatcher::start(&fx.db, vec![fx.root.clone(), other.clone()], quick()).unwrap();
        wait_for(&fx.db, "both folders imported", |s| row(s, &other.join("gone-from-library.png")).is_some());
        watcher.remove_folder(other.clone());
        loop {
            if let WatchEvent::Removed { folder } = events.recv_timeout(Duration::from_secs(10)).unwrap() {
                assert_eq!(folder, other);
                break;
            }
        }
        // The folder list that follows the removal has one folder left.
        let folders = loop {
            if let WatchEvent::Folders(f) = events.recv_timeout(Duration::from_secs(10)).unwrap() {
                break f;
            }
        };
        assert_eq!(folders.len(), 1);
        assert!(other.join("gone-from-library.png").exists(), "the file itself is never touched");
        watcher.stop();
        let store = Store::open(&fx.db).unwrap();
        assert!(row(&store, &other.join("gone-from-library.png")).is_none());
        assert_eq!(store.folders().unwrap().len(), 1);
        drop(store);

        // A start with no folders named and `resume_known` watches what the library has.
        let options = WatchOptions { resume_known: true, ..quick() };
        let (watcher, events) = LibraryWatcher::start(&fx.db, Vec::new(), options).unwrap();
        let folders = loop {
            if let WatchEvent::Folders(f) = events.recv_timeout(Duration::from_secs(10)).unwrap() {
                break f;
            }
        };
        assert_eq!(folders, vec![FolderStatus { path: fx.root.clone(), present: true, watching: true }]);
        std::fs::copy(fx.source.join("img_000003.png"), fx.root.join("new.png")).unwrap();
        wait_for(&fx.db, "a new file in the resumed folder", |s| row(s, &fx.root.join("new.png")).is_some());
        watcher.stop();
    }
}
