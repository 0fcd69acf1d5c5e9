//! The scoring worker's handle: one named thread ([`super::execute`]) owns the model and scores
//! what it is asked to, most urgent first, while a pool of decode threads prepares the next images.
//!
//! Callers send requests over a bounded channel and drain [`ScoringEvent`]s when they like (a UI
//! each frame), so nothing on their side waits for inference or I/O. Every request gets a
//! [`Ticket`]; a request marked `supersede` makes the user-facing work of older tickets stale.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, channel, sync_channel};
use std::thread::JoinHandle;

use super::execute::Executor;
use super::protocol::{Command, ScoreRequest, ScoringEvent, SubmitError, Ticket};
use super::settings::ModelSpec;

/// Commands waiting in the channel before [`ScoringWorker::try_submit`] reports "busy".
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
    /// Work counters.
    pub stats: WorkerStats,
}

/// The handle to a running worker; dropping it stops the worker and waits for it.
pub struct ScoringWorker {
    commands: SyncSender<Command>,
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
        let (commands, inbox) = sync_channel(COMMAND_QUEUE);
        let (events, receiver) = channel();
        let shared = Arc::new(Shared::default());
        let executor = Executor::new(config, events, Arc::clone(&shared))?;
        let thread =
            std::thread::Builder::new().name("rewardlens-scoring".to_string()).spawn(move || executor.run(&inbox))?;
        Ok((Self { commands, next_ticket: AtomicU64::new(1), shared, thread: Some(thread) }, receiver))
    }

    fn ticket_for(&self, request: &ScoreRequest) -> Ticket {
        let ticket = self.next_ticket.fetch_add(1, Ordering::Relaxed);
        if request.supersede {
            // Set here, not on the worker, so queued commands are already stale when it meets them.
            self.shared.stale_before.fetch_max(ticket, Ordering::Relaxed);
        }
        ticket
    }

    /// Queues a request without ever blocking (for a UI thread): [`SubmitError::Busy`] when the
    /// command queue is full.
    pub fn try_submit(&self, request: ScoreRequest) -> Result<Ticket, SubmitError> {
        let ticket = self.ticket_for(&request);
        match self.commands.try_send(Command::Score(ticket, request)) {
            Ok(()) => Ok(ticket),
            Err(TrySendError::Full(_)) => Err(SubmitError::Busy),
            Err(TrySendError::Disconnected(_)) => Err(SubmitError::Stopped),
        }
    }

    /// Queues a request, waiting for room in the command queue (for the CLI and other threads).
    pub fn submit(&self, request: ScoreRequest) -> Result<Ticket, SubmitError> {
        let ticket = self.ticket_for(&request);
        self.commands.send(Command::Score(ticket, request)).map_err(|_| SubmitError::Stopped)?;
        Ok(ticket)
    }

    /// Makes the `Visible`/`View` work of tickets before `ticket` stale.
    pub fn supersede_before(&self, ticket: Ticket) {
        self.shared.stale_before.fetch_max(ticket, Ordering::Relaxed);
    }

    /// Loads another model, or the same on another device or dtype; queued work stays queued.
    pub fn set_model(&self, spec: ModelSpec) -> Result<(), SubmitError> {
        self.commands.send(Command::SetModel(spec)).map_err(|_| SubmitError::Stopped)
    }

    /// Stops starting new batches (the running one finishes).
    pub fn pause(&self) -> Result<(), SubmitError> {
        self.commands.send(Command::Pause).map_err(|_| SubmitError::Stopped)
    }

    /// Resumes after [`ScoringWorker::pause`].
    pub fn resume(&self) -> Result<(), SubmitError> {
        self.commands.send(Command::Resume).map_err(|_| SubmitError::Stopped)
    }

    /// Work counters.
    pub fn stats(&self) -> &WorkerStats {
        &self.shared.stats
    }

    /// Stops the worker after the batch in progress and waits for it.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        let _ = self.commands.try_send(Command::Stop);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for ScoringWorker {
    fn drop(&mut self) {
        self.shutdown();
    }
}
