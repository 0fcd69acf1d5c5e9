//! The library as a service for the app: one named thread (`rewardlens-library`) with its own
//! store connection answers views, rows, groups and parameters, applies the user's edits, and
//! says when the library changed, so screens refresh without polling the database themselves.
//!
//! Every read carries a [`Generation`], counted per kind of read: the handle bumps the count as it
//! submits, so the thread skips a read that is already superseded when it meets it (it is never
//! computed) and drops an answer superseded while it was being computed. Edits (ratings,
//! favorites) are never dropped, and are applied before any read queued with or after them, so
//! the next answer shows them.
//!
//! Nothing on the caller's side waits: requests go over an unbounded channel, and answers come
//! back as [`LibraryEvent`]s, each sent before the [`Waker`] is called (a UI asks for a repaint
//! there). Edits never wait long behind another connection's write transaction (the scoring
//! worker's batch of scores, the watcher's import) either: each attempt waits [`EDIT_BUSY_WAIT`]
//! for the write lock, then the edit stays queued while reads go on, and is tried again every
//! [`EDIT_RETRY`], so it lands within about a frame of that transaction's end. An edit that cannot
//! get the lock within the store's [`BUSY_TIMEOUT`] is reported as failed, never silently lost.
//!
//! Commits by other connections are seen through SQLite's `PRAGMA data_version`, checked every
//! [`CHANGE_POLL`]: one [`LibraryEvent::Changed`] per check that saw any, however many there were.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rusqlite::ErrorCode;

use super::groups::{GroupBy, Leaderboard, PromptGroup};
use super::metadata::GenerationParams;
use super::store::{BUSY_TIMEOUT, Rating, Store, StoreError};
use super::views::{SlimRow, View, ViewQuery};
use crate::image_file::ContentHash;

/// The service thread's name, as debuggers and profilers show it.
pub const THREAD_NAME: &str = "rewardlens-library";

/// How often the thread looks for commits by other connections; also the most `Changed` events
/// a burst of commits (an import, a scoring run) can cause: one per check.
pub const CHANGE_POLL: Duration = Duration::from_millis(200);

/// How long one attempt at an edit waits for another connection's write lock before the edit goes
/// back to the queue, so reads are not held up behind the scoring worker's transactions.
pub const EDIT_BUSY_WAIT: Duration = Duration::from_millis(5);

/// How soon an edit that found the write lock taken is tried again: well within a frame.
pub const EDIT_RETRY: Duration = Duration::from_millis(10);

/// The most a dropped handle waits for the thread to end; after that it ends on its own.
pub const DROP_WAIT: Duration = Duration::from_millis(100);

/// Numbers the reads of one kind in the order they were asked for: an answer whose generation is
/// below the latest of its kind is stale, and the service never sends it.
pub type Generation = u64;

pub use crate::wake::Waker;

/// The kinds of read; each has its own [`Generation`] count, so a new view does not make the
/// rows on screen stale. Queued reads of several kinds are answered in the order declared here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReadKind {
    /// A whole view ([`LibraryService::view`]).
    View,
    /// Rows for the cells on screen ([`LibraryService::rows`]).
    Rows,
    /// Prompt groups ([`LibraryService::groups`] by prompt).
    Groups,
    /// The checkpoint leaderboard ([`LibraryService::groups`] by checkpoint), counted apart from
    /// the prompt groups so asking for both at once answers both.
    Leaderboard,
    /// One image's generation parameters ([`LibraryService::params`]).
    Params,
}

impl ReadKind {
    /// Where its count and queued read are kept; queued reads are answered in this order.
    fn index(self) -> usize {
        self as usize
    }
}

/// A change the user makes to their library data; answered by [`LibraryEvent::Edited`] once it
/// is stored, or [`LibraryEvent::Failed`].
#[derive(Debug, Clone, PartialEq)]
pub enum Edit {
    /// Set the ratings of the image with this content.
    Rating {
        /// The image content.
        content_hash: ContentHash,
        /// The new ratings (each 1..7 or unset).
        rating: Rating,
    },
    /// Set only the overall rating of the image with this content (the others are kept).
    Overall {
        /// The image content.
        content_hash: ContentHash,
        /// The new overall rating (1..7), or `None` to clear it.
        overall: Option<u8>,
    },
    /// Mark or unmark the image with this content as a favorite.
    Favorite {
        /// The image content.
        content_hash: ContentHash,
        /// Whether it is a favorite now.
        favorite: bool,
    },
}

/// What a groups request answers, by its [`GroupBy`].
#[derive(Debug, Clone, PartialEq)]
pub enum GroupsAnswer {
    /// Prompt groups, best reward first.
    Prompt(Vec<PromptGroup>),
    /// The checkpoint leaderboard.
    Checkpoint(Leaderboard),
}

/// What failed, so the app can tell the user which of their actions did not happen.
#[derive(Debug, Clone, PartialEq)]
pub enum Operation {
    /// Opening the library database when the service started; each later request tries again.
    Open,
    /// A read; its answer will not come.
    Read {
        /// Which kind.
        kind: ReadKind,
        /// The generation it was asked with.
        generation: Generation,
    },
    /// An edit; it was not stored.
    Edit(Edit),
    /// Looking for changes by other connections (reported once until it works again).
    ChangeCheck,
}

impl std::fmt::Display for Operation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Operation::Open => write!(f, "opening the library"),
            Operation::Read { kind, generation } => {
                let what = match kind {
                    ReadKind::View => "view",
                    ReadKind::Rows => "rows on screen",
                    ReadKind::Groups => "prompt groups",
                    ReadKind::Leaderboard => "checkpoint leaderboard",
                    ReadKind::Params => "image's parameters",
                };
                write!(f, "reading the {what} (request {generation})")
            }
            Operation::Edit(Edit::Rating { .. } | Edit::Overall { .. }) => write!(f, "setting a rating"),
            Operation::Edit(Edit::Favorite { favorite: true, .. }) => write!(f, "adding a favorite"),
            Operation::Edit(Edit::Favorite { favorite: false, .. }) => write!(f, "removing a favorite"),
            Operation::ChangeCheck => write!(f, "looking for library changes"),
        }
    }
}

/// What the service tells its owner.
#[derive(Debug, Clone)]
pub enum LibraryEvent {
    /// The answer to [`LibraryService::view`].
    View {
        /// The request's generation.
        generation: Generation,
        /// The view (shared, so screens can hold it without copying 24 bytes per image).
        view: Arc<View>,
    },
    /// The answer to [`LibraryService::rows`]: the rows found, in the order asked.
    Rows {
        /// The request's generation.
        generation: Generation,
        /// The rows.
        rows: Vec<SlimRow>,
    },
    /// The answer to [`LibraryService::groups`].
    Groups {
        /// The request's generation.
        generation: Generation,
        /// The groups.
        groups: GroupsAnswer,
    },
    /// The answer to [`LibraryService::params`].
    Params {
        /// The request's generation.
        generation: Generation,
        /// The image asked about.
        image_id: i64,
        /// Its parameters; `None` when it has none (or no such image).
        params: Option<Box<GenerationParams>>,
    },
    /// An edit is stored (a [`LibraryEvent::Changed`] follows).
    Edited(Edit),
    /// The library changed (another connection committed, or an edit here was stored): views
    /// on screen should be asked for again.
    Changed,
    /// A request could not be answered or an edit not stored; the service goes on.
    Failed {
        /// What failed.
        what: Operation,
        /// Why (shared, so the event can be cloned).
        error: Arc<StoreError>,
    },
    /// The service thread ended; later requests go unanswered.
    Stopped,
}

/// Counts of reads, readable at any time without a message round trip.
#[derive(Debug, Default)]
pub struct ServiceStats {
    /// Reads answered (or failed).
    pub answered: AtomicU64,
    /// Reads superseded before they were computed, so never computed.
    pub skipped: AtomicU64,
    /// Reads computed but superseded by the time the answer was ready, so not sent.
    pub dropped: AtomicU64,
}

/// What the handle and the thread share without messages.
#[derive(Debug, Default)]
struct Shared {
    /// The newest generation submitted, per [`ReadKind`] (set at submit time, so queued reads are
    /// already stale when the thread meets them).
    latest: [AtomicU64; 5],
    /// Set to stop after the read in progress.
    stop: AtomicBool,
    /// Read counters.
    stats: ServiceStats,
}

impl Shared {
    fn is_stale(&self, kind: ReadKind, generation: Generation) -> bool {
        generation < self.latest[kind.index()].load(Ordering::Relaxed)
    }
}

/// A read as the thread receives it.
#[derive(Debug)]
enum ReadRequest {
    /// A view, and the rows of the positions `head` in it (empty: none).
    View {
        query: ViewQuery,
        head: std::ops::Range<usize>,
    },
    Rows {
        ids: Vec<i64>,
        query: ViewQuery,
    },
    Groups {
        by: GroupBy,
        query: ViewQuery,
    },
    Params {
        image_id: i64,
    },
}

impl ReadRequest {
    fn kind(&self) -> ReadKind {
        match self {
            ReadRequest::View { .. } => ReadKind::View,
            ReadRequest::Rows { .. } => ReadKind::Rows,
            ReadRequest::Groups { by: GroupBy::Prompt, .. } => ReadKind::Groups,
            ReadRequest::Groups { by: GroupBy::Checkpoint, .. } => ReadKind::Leaderboard,
            ReadRequest::Params { .. } => ReadKind::Params,
        }
    }
}

/// What arrives on the thread's inbox.
enum Command {
    Read {
        generation: Generation,
        /// Boxed: a view query is ten times the size of an edit.
        request: Box<ReadRequest>,
    },
    Edit(Edit),
    Stop,
    /// Holds the thread until the sender sends or is dropped (tests make queues deterministic).
    #[cfg(test)]
    Pause(Receiver<()>),
}

/// The handle to the running service: cheap, non-blocking requests from any thread. Dropping it
/// stops the service without waiting more than [`DROP_WAIT`]; queued edits are still stored.
pub struct LibraryService {
    commands: Sender<Command>,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for LibraryService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LibraryService").field("running", &self.thread.is_some()).finish()
    }
}

impl LibraryService {
    /// Starts the service on the database at `db` (opened by the thread; a failure arrives as
    /// [`LibraryEvent::Failed`] with [`Operation::Open`]). `waker` is called after every event.
    pub fn start(db: &Path, waker: Option<Waker>) -> std::io::Result<(Self, Receiver<LibraryEvent>)> {
        let (commands, inbox) = channel();
        let (events, receiver) = channel();
        let shared = Arc::new(Shared::default());
        let service = ServiceThread {
            db: db.to_path_buf(),
            store: None,
            events,
            waker,
            shared: Arc::clone(&shared),
            edits: VecDeque::new(),
            reads: Default::default(),
            data_version: None,
            next_check: Instant::now() + CHANGE_POLL,
            check_failing: false,
            running: false,
        };
        let thread = std::thread::Builder::new().name(THREAD_NAME.to_string()).spawn(move || {
            crate::priority::set_current_thread_priority(crate::priority::Priority::Service);
            service.run(&inbox);
        })?;
        Ok((Self { commands, shared, thread: Some(thread) }, receiver))
    }

    fn read(&self, request: ReadRequest) -> Generation {
        // Bumped here, not on the thread, so older queued reads are stale before it meets them.
        let generation = self.shared.latest[request.kind().index()].fetch_add(1, Ordering::Relaxed) + 1;
        // Fails only after the thread ended, which its `Stopped` event reported.
        let _ = self.commands.send(Command::Read { generation, request: Box::new(request) });
        generation
    }

    fn edit(&self, edit: Edit) {
        // Fails only after the thread ended, which its `Stopped` event reported.
        let _ = self.commands.send(Command::Edit(edit));
    }

    /// Asks for a view; answered by [`LibraryEvent::View`] unless a newer view is asked for first.
    pub fn view(&self, query: ViewQuery) -> Generation {
        self.read(ReadRequest::View { query, head: 0..0 })
    }

    /// Asks for a view as [`LibraryService::view`] does, and for the rows of its positions `head`
    /// right after it (a [`LibraryEvent::Rows`] following the view): the screen the view lands on
    /// gets its cells without another round trip.
    pub fn view_with_rows(&self, query: ViewQuery, head: std::ops::Range<usize>) -> Generation {
        self.read(ReadRequest::View { query, head })
    }

    /// Asks for the rows of these images (the cells on screen), with the rewards `query` shows;
    /// answered by [`LibraryEvent::Rows`] unless newer rows are asked for first.
    pub fn rows(&self, ids: Vec<i64>, query: ViewQuery) -> Generation {
        self.read(ReadRequest::Rows { ids, query })
    }

    /// Asks for the view's prompt groups or checkpoint leaderboard; answered by
    /// [`LibraryEvent::Groups`] unless newer groups are asked for first.
    pub fn groups(&self, by: GroupBy, query: ViewQuery) -> Generation {
        self.read(ReadRequest::Groups { by, query })
    }

    /// Asks for one image's generation parameters (the viewer's info panel); answered by
    /// [`LibraryEvent::Params`] unless another image's are asked for first.
    pub fn params(&self, image_id: i64) -> Generation {
        self.read(ReadRequest::Params { image_id })
    }

    /// Sets the user's ratings of the image with this content (never dropped).
    pub fn set_rating(&self, content_hash: ContentHash, rating: Rating) {
        self.edit(Edit::Rating { content_hash, rating });
    }

    /// Sets only the overall rating of the image with this content, or clears it (never dropped).
    pub fn set_overall_rating(&self, content_hash: ContentHash, overall: Option<u8>) {
        self.edit(Edit::Overall { content_hash, overall });
    }

    /// Marks or unmarks the image with this content as a favorite (never dropped).
    pub fn set_favorite(&self, content_hash: ContentHash, favorite: bool) {
        self.edit(Edit::Favorite { content_hash, favorite });
    }

    /// The newest generation asked for of this kind, so a screen can tell whether it waits.
    pub fn latest(&self, kind: ReadKind) -> Generation {
        self.shared.latest[kind.index()].load(Ordering::Relaxed)
    }

    /// Read counters.
    pub fn stats(&self) -> &ServiceStats {
        &self.shared.stats
    }

    /// Stops the service and waits for it: queued edits are stored first (each waiting out the
    /// busy timeout if it must), so nothing the user did is lost at exit.
    pub fn stop(mut self) {
        self.shutdown(None);
    }

    #[cfg(test)]
    fn pause(&self) -> Sender<()> {
        let (resume, until) = channel();
        let _ = self.commands.send(Command::Pause(until));
        resume
    }

    fn shutdown(&mut self, limit: Option<Duration>) {
        self.shared.stop.store(true, Ordering::Relaxed);
        let _ = self.commands.send(Command::Stop);
        let Some(thread) = self.thread.take() else { return };
        if let Some(limit) = limit {
            let deadline = Instant::now() + limit;
            while !thread.is_finished() {
                if Instant::now() >= deadline {
                    // Left to end on its own: it stores the queued edits, says `Stopped` and ends.
                    return;
                }
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        let _ = thread.join();
    }
}

impl Drop for LibraryService {
    fn drop(&mut self) {
        self.shutdown(Some(DROP_WAIT));
    }
}

/// An edit waiting for the write lock.
struct PendingEdit {
    edit: Edit,
    /// When waiting stops and the edit is reported failed.
    give_up_at: Instant,
}

/// Everything the service thread owns.
struct ServiceThread {
    db: PathBuf,
    /// `None` until opened; a failed open is tried again by the next request.
    store: Option<Store>,
    events: Sender<LibraryEvent>,
    waker: Option<Waker>,
    shared: Arc<Shared>,
    /// Edits in the order asked; the first blocks the rest, so two edits of one image land in order.
    edits: VecDeque<PendingEdit>,
    /// The newest read of each kind not answered yet, by [`ReadKind::index`].
    reads: [Option<(Generation, Box<ReadRequest>)>; 5],
    /// `PRAGMA data_version` at the last check.
    data_version: Option<i64>,
    next_check: Instant,
    /// The change check failed and said so; it says so again only after working once.
    check_failing: bool,
    /// Set once the thread runs, so `Stopped` is sent only by a thread that started.
    running: bool,
}

impl ServiceThread {
    /// The thread's body: until stopped, take every queued command, store edits, look for
    /// changes, then answer the most urgent read, so an edit asked for meanwhile goes first.
    fn run(mut self, inbox: &Receiver<Command>) {
        self.running = true;
        match self.open() {
            Ok(store) => self.store = Some(store),
            Err(error) => self.emit(LibraryEvent::Failed { what: Operation::Open, error: Arc::new(error) }),
        }
        loop {
            let mut stop = false;
            let first = match inbox.recv_timeout(self.wait(Instant::now())) {
                Ok(command) => Some(command),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => {
                    stop = true;
                    None
                }
            };
            for command in first.into_iter().chain(std::iter::from_fn(|| inbox.try_recv().ok())) {
                match command {
                    Command::Read { generation, request } => self.queue_read(generation, request),
                    Command::Edit(edit) => {
                        self.edits.push_back(PendingEdit { edit, give_up_at: Instant::now() + BUSY_TIMEOUT });
                    }
                    Command::Stop => stop = true,
                    #[cfg(test)]
                    Command::Pause(until) => {
                        let _ = until.recv();
                    }
                }
            }
            if stop || self.shared.stop.load(Ordering::Relaxed) {
                break;
            }
            self.store_edits(false);
            self.check_for_changes();
            self.answer_next_read();
        }
        self.store_edits(true);
    }

    /// How long to wait for a command: not at all with reads queued, until the next retry with
    /// edits waiting, else until the next change check.
    fn wait(&self, now: Instant) -> Duration {
        if self.reads.iter().any(Option::is_some) {
            return Duration::ZERO;
        }
        let until_check = self.next_check.saturating_duration_since(now);
        if self.edits.is_empty() { until_check } else { until_check.min(EDIT_RETRY) }
    }

    fn open(&mut self) -> Result<Store, StoreError> {
        let store = Store::open(&self.db)?;
        // Commits before this are in every answer from now on: not a change.
        self.data_version = data_version(&store).ok();
        Ok(store)
    }

    /// The open store, opening it if the last try failed.
    fn store(&mut self) -> Result<&mut Store, StoreError> {
        let store = match self.store.take() {
            Some(store) => store,
            None => self.open()?,
        };
        Ok(self.store.insert(store))
    }

    fn emit(&self, event: LibraryEvent) {
        // Fails only when no one listens any more; edits are stored all the same.
        let _ = self.events.send(event);
        crate::wake::wake(self.waker.as_ref());
    }

    /// Keeps the newest read of its kind; an older one is skipped without being computed.
    fn queue_read(&mut self, generation: Generation, request: Box<ReadRequest>) {
        let slot = &mut self.reads[request.kind().index()];
        if slot.as_ref().is_some_and(|(queued, _)| *queued > generation) {
            self.shared.stats.skipped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        if slot.replace((generation, request)).is_some() {
            self.shared.stats.skipped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Stores queued edits in order, stopping at one that finds the write lock taken (it is
    /// tried again in [`EDIT_RETRY`]); `last_call` waits out each edit's remaining time instead.
    fn store_edits(&mut self, last_call: bool) {
        let mut stored = false;
        while let Some(pending) = self.edits.front() {
            let now = Instant::now();
            let give_up = last_call || now >= pending.give_up_at;
            let wait = if last_call { pending.give_up_at.saturating_duration_since(now) } else { EDIT_BUSY_WAIT };
            let edit = pending.edit.clone();
            let outcome = self.store().and_then(|store| store_edit(store, &edit, wait));
            if outcome.as_ref().is_err_and(|error| is_busy(error) && !give_up) {
                break;
            }
            self.edits.pop_front();
            match outcome {
                Ok(()) => {
                    stored = true;
                    self.emit(LibraryEvent::Edited(edit));
                }
                Err(error) => self.emit(LibraryEvent::Failed { what: Operation::Edit(edit), error: Arc::new(error) }),
            }
        }
        if stored {
            self.emit(LibraryEvent::Changed);
        }
    }

    /// Says `Changed` when another connection committed since the last check, once per check.
    fn check_for_changes(&mut self) {
        let now = Instant::now();
        if now < self.next_check {
            return;
        }
        self.next_check = now + CHANGE_POLL;
        let Some(store) = &self.store else { return };
        match data_version(store) {
            Ok(version) => {
                self.check_failing = false;
                if self.data_version.replace(version).is_some_and(|seen| seen != version) {
                    self.emit(LibraryEvent::Changed);
                }
            }
            Err(error) => {
                if !std::mem::replace(&mut self.check_failing, true) {
                    self.emit(LibraryEvent::Failed { what: Operation::ChangeCheck, error: Arc::new(error) });
                }
            }
        }
    }

    /// Answers the most urgent queued read, unless it is stale before or after computing.
    fn answer_next_read(&mut self) {
        let Some((generation, request)) = self.reads.iter_mut().find_map(Option::take) else { return };
        let kind = request.kind();
        let stats = &self.shared.stats;
        if self.shared.is_stale(kind, generation) {
            stats.skipped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let answer = self.answer(generation, request);
        let stats = &self.shared.stats;
        if self.shared.is_stale(kind, generation) {
            stats.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        stats.answered.fetch_add(1, Ordering::Relaxed);
        match answer {
            Ok((event, follow_up)) => {
                self.emit(event);
                if let Some(rows) = follow_up {
                    self.emit(rows);
                }
            }
            Err(error) => {
                self.emit(LibraryEvent::Failed { what: Operation::Read { kind, generation }, error: Arc::new(error) })
            }
        }
    }

    /// The answer to a read, and the rows that follow a view asked with them
    /// ([`LibraryService::view_with_rows`]).
    fn answer(
        &mut self,
        generation: Generation,
        request: Box<ReadRequest>,
    ) -> Result<(LibraryEvent, Option<LibraryEvent>), StoreError> {
        let rows_generation = self.shared.latest[ReadKind::Rows.index()].load(Ordering::Relaxed);
        let mut follow_up = None;
        let store = self.store()?;
        let event = match *request {
            ReadRequest::View { query, head } => {
                let view = store.view(&query)?;
                let end = head.end.min(view.len());
                if head.start < end {
                    let ids: Vec<i64> = view.entries[head.start..end].iter().map(|e| e.image_id).collect();
                    follow_up =
                        Some(LibraryEvent::Rows { generation: rows_generation, rows: store.slim_rows(&ids, &query)? });
                }
                LibraryEvent::View { generation, view: Arc::new(view) }
            }
            ReadRequest::Rows { ids, query } => LibraryEvent::Rows { generation, rows: store.slim_rows(&ids, &query)? },
            ReadRequest::Groups { by: GroupBy::Prompt, query } => {
                LibraryEvent::Groups { generation, groups: GroupsAnswer::Prompt(store.prompt_groups(&query)?) }
            }
            ReadRequest::Groups { by: GroupBy::Checkpoint, query } => LibraryEvent::Groups {
                generation,
                groups: GroupsAnswer::Checkpoint(store.checkpoint_leaderboard(&query)?),
            },
            ReadRequest::Params { image_id } => {
                LibraryEvent::Params { generation, image_id, params: store.image_params(image_id)?.map(Box::new) }
            }
        };
        Ok((event, follow_up))
    }
}

impl Drop for ServiceThread {
    fn drop(&mut self) {
        // Here rather than at the end of `run`, so a panic says `Stopped` too.
        if self.running {
            self.emit(LibraryEvent::Stopped);
        }
    }
}

/// Stores one edit, waiting at most `wait` for another connection's write lock.
fn store_edit(store: &mut Store, edit: &Edit, wait: Duration) -> Result<(), StoreError> {
    store.read(|c| c.busy_timeout(wait))?;
    let stored = match edit {
        Edit::Rating { content_hash, rating } => store.set_rating(content_hash, *rating),
        Edit::Overall { content_hash, overall } => store.set_overall_rating(content_hash, *overall),
        Edit::Favorite { content_hash, favorite: true } => store.add_favorite(content_hash),
        Edit::Favorite { content_hash, favorite: false } => store.remove_favorite(content_hash).map(|_| ()),
    };
    // Opening and reading wait the usual time again. Setting a busy timeout cannot fail on an open
    // connection, and the edit's own outcome is what to report.
    let _ = store.read(|c| c.busy_timeout(BUSY_TIMEOUT));
    stored
}

/// Whether the error is another connection holding the write lock (worth trying again).
fn is_busy(error: &StoreError) -> bool {
    matches!(error, StoreError::Sqlite { source, .. } if source.sqlite_error_code() == Some(ErrorCode::DatabaseBusy))
}

/// SQLite's count that moves when another connection commits (`PRAGMA data_version`).
fn data_version(store: &Store) -> Result<i64, StoreError> {
    store.read(|c| c.query_row("PRAGMA data_version", [], |r| r.get(0)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::library::store::{ImageRecord, ScoreRow};
    use crate::library::views::ViewFilter;
    use std::sync::Mutex;

    /// Long enough for any answer on a loaded CI machine; the tests never wait it out on success.
    const PATIENCE: Duration = Duration::from_secs(10);

    const MODEL: &str = "ir-test";

    fn h(seed: &str) -> ContentHash {
        ContentHash::of(seed.as_bytes())
    }

    fn put_score(store: &mut Store, hash: &ContentHash, prompt: &str, value: f64) {
        let t = crate::model::PromptTokenizer::bundled().unwrap().encode(prompt).unwrap();
        let row = ScoreRow { content_hash: hash, prompt, tokens: t.key(), truncated: t.truncated, value };
        store.record_scores(MODEL, &[row]).unwrap();
    }

    fn image(name: &str, prompt: &str, checkpoint: &str) -> ImageRecord {
        let params = GenerationParams {
            prompt: Some(prompt.to_string()),
            model: Some(checkpoint.to_string()),
            seed: Some(7),
            ..GenerationParams::default()
        };
        ImageRecord {
            path: PathBuf::from(format!("/lib/{name}.png")),
            content_hash: Some(h(name)),
            size: 10,
            mtime_ns: 1,
            prompt: Some(prompt.to_string()),
            prompt_key: Some(crate::library::metadata::prompt_group_key(prompt)),
            params_json: Some(serde_json::to_string(&params).unwrap()),
            checkpoint: Some(checkpoint.to_string()),
            ..ImageRecord::default()
        }
    }

    /// A library of three scored images, two prompts and two checkpoints; returns the image ids
    /// in reward order (best first).
    fn library(dir: &tempfile::TempDir) -> (PathBuf, Vec<i64>) {
        let db = dir.path().join("lib.sqlite3");
        let mut store = Store::open(&db).unwrap();
        let mut ids = Vec::new();
        for (name, prompt, checkpoint, reward) in
            [("a", "a cat", "ckpt-a", 2.0), ("b", "a cat", "ckpt-b", 1.0), ("c", "a dog", "ckpt-a", -0.5)]
        {
            ids.push(store.upsert_image(&image(name, prompt, checkpoint)).unwrap());
            put_score(&mut store, &h(name), prompt, reward);
        }
        (db, ids)
    }

    fn query() -> ViewQuery {
        ViewQuery { model_id: Some(MODEL.to_string()), ..ViewQuery::default() }
    }

    /// The next event that `pick` accepts (others are skipped), or a panic after [`PATIENCE`].
    fn wait_for<T>(events: &Receiver<LibraryEvent>, mut pick: impl FnMut(LibraryEvent) -> Option<T>) -> T {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let event = events.recv_timeout(left).unwrap_or_else(|e| panic!("no awaited event: {e}"));
            if let Some(found) = pick(event) {
                return found;
            }
        }
    }

    fn view_answer(events: &Receiver<LibraryEvent>) -> (Generation, Arc<View>) {
        wait_for(events, |e| match e {
            LibraryEvent::View { generation, view } => Some((generation, view)),
            LibraryEvent::Failed { what, error } => panic!("{what}: {error}"),
            _ => None,
        })
    }

    fn rows_answer(events: &Receiver<LibraryEvent>) -> Vec<SlimRow> {
        wait_for(events, |e| match e {
            LibraryEvent::Rows { rows, .. } => Some(rows),
            LibraryEvent::Failed { what, error } => panic!("{what}: {error}"),
            _ => None,
        })
    }

    fn changed(events: &Receiver<LibraryEvent>) {
        wait_for(events, |e| matches!(e, LibraryEvent::Changed).then_some(()));
    }

    /// Everything already sent, without waiting.
    fn drain(events: &Receiver<LibraryEvent>) -> Vec<LibraryEvent> {
        events.try_iter().collect()
    }

    #[test]
    fn a_view_answer_arrives_with_its_generation() {
        let dir = tempfile::tempdir().unwrap();
        let (db, ids) = library(&dir);
        let (service, events) = LibraryService::start(&db, None).unwrap();
        let asked = service.view(query());
        assert_eq!(asked, 1);
        let (generation, view) = view_answer(&events);
        assert_eq!(generation, asked);
        assert_eq!(view.entries.iter().map(|e| e.image_id).collect::<Vec<_>>(), ids);
        assert_eq!(view.scored, 3);
        assert_eq!(view.entries[0].reward, Some(2.0));
        assert_eq!(service.latest(ReadKind::View), 1);
        // Each kind counts its own generations.
        assert_eq!(service.rows(vec![ids[2]], query()), 1);
        assert_eq!(rows_answer(&events)[0].reward, Some(-0.5));
        service.stop();
        assert!(matches!(drain(&events).last(), Some(LibraryEvent::Stopped)));
    }

    #[test]
    fn a_view_with_rows_sends_the_rows_of_its_head_right_after_it() {
        let dir = tempfile::tempdir().unwrap();
        let (db, ids) = library(&dir);
        let (service, events) = LibraryService::start(&db, None).unwrap();
        // Positions past the end are cut to the view.
        service.view_with_rows(query(), 1..10);
        let (_, view) = view_answer(&events);
        assert_eq!(view.len(), 3);
        let next = events.recv_timeout(PATIENCE).unwrap();
        let LibraryEvent::Rows { rows, .. } = next else { panic!("rows do not follow the view: {next:?}") };
        assert_eq!(rows.iter().map(|r| r.image_id).collect::<Vec<_>>(), ids[1..].to_vec());
        assert_eq!(rows[0].reward, Some(1.0), "the rows carry the view's rewards");
        // A plain view brings no rows.
        service.view(query());
        view_answer(&events);
        service.stop();
        assert!(drain(&events).iter().all(|e| !matches!(e, LibraryEvent::Rows { .. })));
    }

    #[test]
    fn reads_queued_behind_a_newer_one_are_skipped_without_being_computed() {
        let dir = tempfile::tempdir().unwrap();
        let (db, _) = library(&dir);
        let (service, events) = LibraryService::start(&db, None).unwrap();
        let resume = service.pause();
        let mut last = 0;
        for n in 0..20 {
            let filter = ViewFilter { text: Some(format!("cat{n}")), ..ViewFilter::default() };
            last = service.view(ViewQuery { filter, ..query() });
        }
        let newest = service.view(query());
        let rows = service.rows(vec![1], query());
        assert_eq!((last, newest, rows), (20, 21, 1));
        drop(resume);
        let (generation, view) = view_answer(&events);
        assert_eq!((generation, view.len()), (21, 3), "only the newest view is answered");
        assert_eq!(rows_answer(&events).len(), 1, "another kind's read is not made stale by a view");
        service.stop();
        assert!(drain(&events).iter().all(|e| !matches!(e, LibraryEvent::View { .. })), "no older view follows");
    }

    #[test]
    fn rapid_views_answer_in_order_end_with_the_newest_and_account_for_every_request() {
        let dir = tempfile::tempdir().unwrap();
        let (db, _) = library(&dir);
        let (service, events) = LibraryService::start(&db, None).unwrap();
        const N: u64 = 200;
        for _ in 0..N {
            service.view(query());
        }
        let mut answered = Vec::new();
        while answered.last() != Some(&N) {
            answered.push(view_answer(&events).0);
        }
        assert!(answered.windows(2).all(|w| w[0] < w[1]), "an older answer came after a newer one: {answered:?}");
        let stats = service.stats();
        let (a, s, d) = (
            stats.answered.load(Ordering::Relaxed),
            stats.skipped.load(Ordering::Relaxed),
            stats.dropped.load(Ordering::Relaxed),
        );
        assert_eq!(a, answered.len() as u64);
        assert_eq!(a + s + d, N, "answered {a}, skipped {s}, dropped {d}");
    }

    #[test]
    fn a_write_from_another_connection_reaches_subscribers_as_changed() {
        let dir = tempfile::tempdir().unwrap();
        let (db, _) = library(&dir);
        let (service, events) = LibraryService::start(&db, None).unwrap();
        service.view(query());
        view_answer(&events);
        assert!(!drain(&events).iter().any(|e| matches!(e, LibraryEvent::Changed)), "nothing changed yet");

        let mut other = Store::open(&db).unwrap();
        let started = Instant::now();
        other.upsert_image(&image("d", "a bird", "ckpt-b")).unwrap();
        changed(&events);
        assert!(started.elapsed() < Duration::from_secs(1), "took {:?}", started.elapsed());
        service.view(query());
        assert_eq!(view_answer(&events).1.len(), 4, "the new image shows in the next view");

        // A burst of commits: each check reports it once, not once per commit.
        drain(&events);
        let started = Instant::now();
        for i in 0..30 {
            put_score(&mut other, &h("d"), "a bird", f64::from(i));
        }
        changed(&events);
        std::thread::sleep(CHANGE_POLL * 2);
        let checks = started.elapsed().as_millis() / CHANGE_POLL.as_millis() + 1;
        let seen = 1 + drain(&events).iter().filter(|e| matches!(e, LibraryEvent::Changed)).count() as u128;
        assert!(seen <= checks, "{seen} Changed for {checks} checks");
    }

    #[test]
    fn edits_are_stored_show_in_the_next_answers_and_say_changed() {
        let dir = tempfile::tempdir().unwrap();
        let (db, ids) = library(&dir);
        let (service, events) = LibraryService::start(&db, None).unwrap();
        let rating = Rating { overall: Some(6), alignment: Some(5), fidelity: None };
        service.set_rating(h("c"), rating);
        service.set_favorite(h("c"), true);
        // Asked right after the edits: the answers show them.
        let favorites = ViewQuery { filter: ViewFilter { favorites: true, ..ViewFilter::default() }, ..query() };
        service.view(favorites.clone());
        service.rows(vec![ids[2]], query());
        let mut edited = Vec::new();
        let (_, view) = wait_for(&events, |e| match e {
            LibraryEvent::Edited(edit) => {
                edited.push(edit);
                None
            }
            LibraryEvent::View { generation, view } => Some((generation, view)),
            _ => None,
        });
        assert_eq!(edited.len(), 2, "edits are stored before the reads queued after them");
        assert_eq!(edited[0], Edit::Rating { content_hash: h("c"), rating });
        assert_eq!(view.entries.iter().map(|e| e.image_id).collect::<Vec<_>>(), vec![ids[2]]);
        let row = rows_answer(&events).remove(0);
        assert_eq!((row.rating, row.favorite), (Some(6), true));

        drain(&events);
        service.set_favorite(h("c"), false);
        assert_eq!(
            wait_for(&events, |e| match e {
                LibraryEvent::Edited(edit) => Some(edit),
                _ => None,
            }),
            Edit::Favorite { content_hash: h("c"), favorite: false }
        );
        changed(&events);
        service.view(favorites);
        assert!(view_answer(&events).1.is_empty());
        service.stop();
        let store = Store::open(&db).unwrap();
        assert_eq!(store.rating(&h("c")).unwrap(), Some(rating));
        assert!(!store.is_favorite(&h("c")).unwrap());
    }

    #[test]
    fn an_edit_waits_for_another_writer_without_holding_up_reads() {
        let dir = tempfile::tempdir().unwrap();
        let (db, ids) = library(&dir);
        let (service, events) = LibraryService::start(&db, None).unwrap();
        service.view(query());
        view_answer(&events);
        // Another connection (the scoring worker, say) holds the write lock.
        let writer = rusqlite::Connection::open(&db).unwrap();
        writer.execute_batch("BEGIN IMMEDIATE; DELETE FROM meta;").unwrap();
        service.set_favorite(h("a"), true);
        let asked = Instant::now();
        service.rows(vec![ids[0]], query());
        let row = rows_answer(&events).remove(0);
        assert!(asked.elapsed() < Duration::from_secs(1), "a read waited {:?} behind a writer", asked.elapsed());
        assert!(!row.favorite, "the edit is not stored while the lock is held");
        assert!(!drain(&events).iter().any(|e| matches!(e, LibraryEvent::Edited(_) | LibraryEvent::Failed { .. })));

        std::thread::sleep(Duration::from_millis(100));
        let released = Instant::now();
        writer.execute_batch("COMMIT").unwrap();
        let edit = wait_for(&events, |e| match e {
            LibraryEvent::Edited(edit) => Some(edit),
            LibraryEvent::Failed { what, error } => panic!("{what}: {error}"),
            _ => None,
        });
        assert_eq!(edit, Edit::Favorite { content_hash: h("a"), favorite: true });
        assert!(released.elapsed() < Duration::from_millis(500), "landed {:?} after the lock", released.elapsed());
        changed(&events);
        service.rows(vec![ids[0]], query());
        assert!(rows_answer(&events)[0].favorite);
    }

    #[test]
    fn groups_are_answered_by_prompt_and_by_checkpoint_and_params_by_image() {
        let dir = tempfile::tempdir().unwrap();
        let (db, ids) = library(&dir);
        let (service, events) = LibraryService::start(&db, None).unwrap();
        let groups = |by| {
            let asked = service.groups(by, query());
            let (generation, groups) = wait_for(&events, |e| match e {
                LibraryEvent::Groups { generation, groups } => Some((generation, groups)),
                LibraryEvent::Failed { what, error } => panic!("{what}: {error}"),
                _ => None,
            });
            assert_eq!(generation, asked);
            groups
        };
        let GroupsAnswer::Prompt(prompts) = groups(GroupBy::Prompt) else { panic!("prompt groups expected") };
        assert_eq!(
            prompts.iter().map(|g| (g.prompt.as_str(), g.images)).collect::<Vec<_>>(),
            [("a cat", 2), ("a dog", 1)]
        );
        assert_eq!(prompts[0].best_image_id, Some(ids[0]));
        let GroupsAnswer::Checkpoint(board) = groups(GroupBy::Checkpoint) else { panic!("leaderboard expected") };
        let names: Vec<_> = board.checkpoints.iter().map(|c| (c.checkpoint.as_str(), c.images)).collect();
        assert_eq!(names, [("ckpt-b", 1), ("ckpt-a", 2)]);

        for (image_id, expected) in [(ids[1], Some("ckpt-b")), (9999, None)] {
            let asked = service.params(image_id);
            let (generation, id, params) = wait_for(&events, |e| match e {
                LibraryEvent::Params { generation, image_id, params } => Some((generation, image_id, params)),
                _ => None,
            });
            assert_eq!((generation, id), (asked, image_id));
            assert_eq!(params.and_then(|p| p.model).as_deref(), expected);
        }
    }

    #[test]
    fn the_waker_is_called_after_each_event_is_sent() {
        let dir = tempfile::tempdir().unwrap();
        let (db, ids) = library(&dir);
        let slot: Arc<Mutex<Option<Receiver<LibraryEvent>>>> = Arc::default();
        let seen: Arc<Mutex<(Vec<LibraryEvent>, usize)>> = Arc::default();
        let early_wakes = Arc::new(AtomicU64::new(0));
        let waker: Waker = {
            let (slot, seen, early_wakes) = (Arc::clone(&slot), Arc::clone(&seen), Arc::clone(&early_wakes));
            Waker::new(move || {
                let slot = slot.lock().unwrap();
                let mut seen = seen.lock().unwrap();
                if let Some(events) = slot.as_ref() {
                    seen.0.extend(events.try_iter());
                }
                seen.1 += 1;
                // Each wake follows its event, so there are at least as many events as wakes.
                if seen.0.len() < seen.1 {
                    early_wakes.fetch_add(1, Ordering::Relaxed);
                }
            })
        };
        let (service, events) = LibraryService::start(&db, Some(waker)).unwrap();
        *slot.lock().unwrap() = Some(events);
        // Queued together, so the order of the answers is fixed: edits first, then reads by kind.
        let resume = service.pause();
        service.rows(vec![ids[0]], query());
        service.view(query());
        service.set_rating(h("a"), Rating { overall: Some(7), ..Rating::default() });
        drop(resume);
        let deadline = Instant::now() + PATIENCE;
        loop {
            let kinds: Vec<&'static str> = seen
                .lock()
                .unwrap()
                .0
                .iter()
                .map(|e| match e {
                    LibraryEvent::Edited(_) => "edited",
                    LibraryEvent::Changed => "changed",
                    LibraryEvent::View { .. } => "view",
                    LibraryEvent::Rows { .. } => "rows",
                    _ => "other",
                })
                .collect();
            if kinds == ["edited", "changed", "view", "rows"] {
                break;
            }
            assert!(Instant::now() < deadline, "events seen by the waker: {kinds:?}");
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(early_wakes.load(Ordering::Relaxed), 0, "a wake came before its event");
        service.stop();
    }

    #[test]
    fn a_library_that_cannot_be_opened_fails_each_request_with_a_typed_error() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("not-a-folder");
        std::fs::write(&file, b"x").unwrap();
        let (service, events) = LibraryService::start(&file.join("lib.sqlite3"), None).unwrap();
        let failure = || {
            wait_for(&events, |e| match e {
                LibraryEvent::Failed { what, error } => Some((what, error)),
                other => panic!("unexpected {other:?}"),
            })
        };
        let (what, error) = failure();
        assert_eq!(what, Operation::Open);
        assert!(matches!(*error, StoreError::CreateDir { .. }), "{error}");
        let generation = service.view(query());
        let (what, error) = failure();
        assert_eq!(what, Operation::Read { kind: ReadKind::View, generation });
        assert!(error.to_string().contains("not-a-folder"), "{error}");
        assert_eq!(Operation::Read { kind: ReadKind::View, generation }.to_string(), "reading the view (request 1)");
        service.set_favorite(h("a"), true);
        assert_eq!(failure().0, Operation::Edit(Edit::Favorite { content_hash: h("a"), favorite: true }));
        assert_eq!(
            Operation::Edit(Edit::Favorite { content_hash: h("a"), favorite: true }).to_string(),
            "adding a favorite"
        );
        service.stop();
        assert!(matches!(events.recv_timeout(PATIENCE), Ok(LibraryEvent::Stopped)));
    }

    #[test]
    fn an_invalid_edit_fails_typed_and_the_service_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let (db, _) = library(&dir);
        let (service, events) = LibraryService::start(&db, None).unwrap();
        let bad = Rating { overall: Some(9), ..Rating::default() };
        service.set_rating(h("a"), bad);
        let (what, error) = wait_for(&events, |e| match e {
            LibraryEvent::Failed { what, error } => Some((what, error)),
            _ => None,
        });
        assert_eq!(what, Operation::Edit(Edit::Rating { content_hash: h("a"), rating: bad }));
        assert!(matches!(*error, StoreError::Sqlite { .. }), "{error}");
        service.view(query());
        assert_eq!(view_answer(&events).1.len(), 3);
    }

    #[test]
    fn dropping_the_handle_returns_promptly_and_queued_edits_still_land() {
        let dir = tempfile::tempdir().unwrap();
        let (db, _) = library(&dir);
        let (service, events) = LibraryService::start(&db, None).unwrap();
        service.view(query());
        view_answer(&events);
        let writer = rusqlite::Connection::open(&db).unwrap();
        writer.execute_batch("BEGIN IMMEDIATE; DELETE FROM meta;").unwrap();
        service.set_favorite(h("b"), true);
        std::thread::sleep(EDIT_RETRY * 3);
        let dropping = Instant::now();
        drop(service);
        let took = dropping.elapsed();
        assert!(took < DROP_WAIT * 2, "drop took {took:?}");
        writer.execute_batch("COMMIT").unwrap();
        let edit = wait_for(&events, |e| match e {
            LibraryEvent::Edited(edit) => Some(edit),
            LibraryEvent::Failed { what, error } => panic!("{what}: {error}"),
            _ => None,
        });
        assert_eq!(edit, Edit::Favorite { content_hash: h("b"), favorite: true });
        wait_for(&events, |e| matches!(e, LibraryEvent::Stopped).then_some(()));
        assert!(Store::open(&db).unwrap().is_favorite(&h("b")).unwrap());
    }

    #[test]
    fn dropping_an_idle_service_ends_its_thread_within_the_drop_wait() {
        let dir = tempfile::tempdir().unwrap();
        let (db, _) = library(&dir);
        let (service, events) = LibraryService::start(&db, None).unwrap();
        service.view(query());
        view_answer(&events);
        let dropping = Instant::now();
        drop(service);
        assert!(dropping.elapsed() < DROP_WAIT * 2, "drop took {:?}", dropping.elapsed());
        wait_for(&events, |e| matches!(e, LibraryEvent::Stopped).then_some(()));
    }
}
