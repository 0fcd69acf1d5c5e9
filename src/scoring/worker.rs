//! The scoring worker's handle: one named thread ([`super::execute`]) owns the model and scores
//! what it is asked to, most urgent first, while a pool of decode threads prepares the next images.
//!
//! Callers send requests over a bounded channel and drain [`ScoringEvent`]s when they like (a UI
//! each frame), so nothing on their side waits for inference or I/O. Every request gets a
//! [`Ticket`]; a request marked `supersede` makes the user-facing work of older tickets stale.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::thread::JoinHandle;

use super::execute::Executor;
use super::protocol::{Command, Priority, ScoreRequest, ScoringEvent, SubmitError, Ticket, ViewRequest};
use super::settings::ModelSpec;
use crate::library::views::ViewQuery;
use crate::wake::Waker;

/// Score requests waiting for the worker before [`ScoringWorker::try_submit`] reports "busy".
pub const COMMAND_QUEUE: usize = 64;

/// How the worker is set up.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// The model to load at start.
    pub model: ModelSpec,
    /// Library database for scores; `None` keeps scores in memory only.
    pub db: Option<PathBuf>,
    /// Folder of the image-embedding cache and its cap in bytes; `None` disables it.
    pub embedding_cache: Option<(PathBuf, u64)>,
    /// Threads decoding and preprocessing images.
    pub decode_threads: usize,
    /// Run after events are sent (a UI repaints instead of polling).
    pub waker: Option<Waker>,
    /// Run every thread of the worker (model, decoding, the model's own parallel work) at the
    /// lowest CPU priority, so an interactive process stays fluid while it scores; a command-line
    /// run leaves it off and gets its full share.
    pub background: bool,
}

/// Work counters, readable at any time without a message round trip.
#[derive(Debug, Default)]
pub struct WorkerStats {
    /// Images that went through the image tower.
    pub image_tower_images: AtomicU64,
    /// Images scored by the text part on cached tokens.
    pub cached_token_images: AtomicU64,
    /// Images answered from the store.
    pub stored_images: AtomicU64,
}

/// What the handle and the worker thread share without messages.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    /// Work of tickets below this is stale (set at submit time, so queued work is already stale
    /// when the worker meets it).
    pub stale_before: AtomicU64,
    /// Set to stop after the batch in progress.
    pub stop: AtomicBool,
    /// Score requests sent and not yet taken by the worker (the "busy" bound of `try_submit`).
    pub queued: AtomicUsize,
    /// Work counters.
    pub stats: WorkerStats,
}

/// The handle to a running worker. No call on it blocks: commands go over an unbounded channel
/// (score requests are bounded by a count, see [`ScoringWorker::try_submit`]), and dropping it
/// tells the worker to stop after the batch in progress without waiting for it.
pub struct ScoringWorker {
    commands: Sender<Command>,
    next_ticket: AtomicU64,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for ScoringWorker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScoringWorker").field("running", &self.thread.is_some()).finish()
    }
}

impl ScoringWorker {
    /// Starts the worker; it loads `config.model` first and reports [`super::ModelState`] events.
    pub fn start(config: WorkerConfig) -> std::io::Result<(Self, Receiver<ScoringEvent>)> {
        let (commands, inbox) = channel();
        let (events, receiver) = channel();
        let shared = Arc::new(Shared::default());
        let background = config.background;
        let executor = Executor::new(config, events, Arc::clone(&shared))?;
        let thread = if background {
            // The model's parallel work runs on rayon; in a pool of our own, built at the lowest
            // priority, it cannot land on threads shared with anything else.
            let pool = rayon::ThreadPoolBuilder::new()
                .thread_name(|i| format!("rewardlens-model-{i}"))
                .start_handler(|_| crate::priority::set_current_thread_priority(crate::priority::Priority::Background))
                .build()
                .map_err(std::io::Error::other)?;
            std::thread::Builder::new().name("rewardlens-scoring".to_string()).spawn(move || {
                crate::priority::set_current_thread_priority(crate::priority::Priority::Background);
                pool.install(move || executor.run(&inbox));
            })?
        } else {
            std::thread::Builder::new().name("rewardlens-scoring".to_string()).spawn(move || executor.run(&inbox))?
        };
        Ok((Self { commands, next_ticket: AtomicU64::new(1), shared, thread: Some(thread) }, receiver))
    }

    fn ticket_for(&self, supersede: bool) -> Ticket {
        let ticket = self.next_ticket.fetch_add(1, Ordering::Relaxed);
        if supersede {
            // Set here, not on the worker, so queued commands are already stale when it meets them.
            self.shared.stale_before.fetch_max(ticket, Ordering::Relaxed);
        }
        ticket
    }

    /// Queues a request, refusing with [`SubmitError::Busy`] while [`COMMAND_QUEUE`] requests
    /// wait for the worker (a UI retries next frame instead of piling up work).
    pub fn try_submit(&self, request: ScoreRequest) -> Result<Ticket, SubmitError> {
        if self.shared.queued.load(Ordering::Relaxed) >= COMMAND_QUEUE {
            return Err(SubmitError::Busy);
        }
        self.submit(request)
    }

    /// Queues a request whatever the queue's length (for the CLI and other threads); never blocks.
    pub fn submit(&self, request: ScoreRequest) -> Result<Ticket, SubmitError> {
        let ticket = self.ticket_for(request.supersede);
        self.send_request(Command::Score(ticket, request))?;
        Ok(ticket)
    }

    /// Scores every image of a library view that has no reward yet, against each image's own
    /// prompt or the view's prompt: the worker enumerates the view itself (the caller never builds
    /// 100,000 items). Images without a prompt of their own are left out of an own-prompt view.
    pub fn score_view(&self, query: ViewQuery, priority: Priority, supersede: bool) -> Result<Ticket, SubmitError> {
        let ticket = self.ticket_for(supersede);
        self.send_request(Command::ScoreView(ticket, Box::new(ViewRequest { query, priority })))?;
        Ok(ticket)
    }

    fn send_request(&self, command: Command) -> Result<(), SubmitError> {
        self.shared.queued.fetch_add(1, Ordering::Relaxed);
        self.commands.send(command).map_err(|_| {
            self.shared.queued.fetch_sub(1, Ordering::Relaxed);
            SubmitError::Stopped
        })
    }

    /// Makes the `Visible`/`View` work of tickets before `ticket` stale.
    pub fn supersede_before(&self, ticket: Ticket) {
        self.shared.stale_before.fetch_max(ticket, Ordering::Relaxed);
    }

    /// Loads another model, or the same on another device or dtype; queued work stays queued.
    /// Never blocks.
    pub fn set_model(&self, spec: ModelSpec) -> Result<(), SubmitError> {
        self.commands.send(Command::SetModel(spec)).map_err(|_| SubmitError::Stopped)
    }

    /// Stops starting new batches (the running one finishes). Never blocks.
    pub fn pause(&self) -> Result<(), SubmitError> {
        self.commands.send(Command::Pause).map_err(|_| SubmitError::Stopped)
    }

    /// Resumes after [`ScoringWorker::pause`]. Never blocks.
    pub fn resume(&self) -> Result<(), SubmitError> {
        self.commands.send(Command::Resume).map_err(|_| SubmitError::Stopped)
    }

    /// Work counters.
    pub fn stats(&self) -> &WorkerStats {
        &self.shared.stats
    }

    /// Stops the worker after the batch in progress and waits for it (its last scores saved).
    pub fn stop(mut self) {
        self.signal_stop();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }

    fn signal_stop(&self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        let _ = self.commands.send(Command::Stop);
    }
}

impl Drop for ScoringWorker {
    /// Tells the worker to stop after the batch in progress and returns at once: a window closing
    /// never waits for a CPU batch. The batch's scores are still saved; `Stopped` follows.
    fn drop(&mut self) {
        self.signal_stop();
    }
}
