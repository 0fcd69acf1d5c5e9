//! The scoring worker: one named thread that owns the model and scores what it is asked to,
//! most urgent first, while a pool of decode threads prepares the next images.
//!
//! Callers send [`Command`]s over a bounded channel and drain [`ScoringEvent`]s when they like (a
//! UI each frame), so nothing on their side waits for inference or I/O. Every request gets a
//! [`Ticket`]; a request marked `supersede` makes the user-facing work of older tickets stale, and
//! stale work is dropped where the worker meets it (queued, decoded, about to run), without
//! draining anything. Scores go to the library store keyed by (content hash, model id, prompt),
//! and image tokens to the embedding cache, so nothing is computed twice, across restarts too.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, SyncSender, TrySendError, channel, sync_channel};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::backend::Backend;
use super::embeddings::{EmbeddingCache, ImageEmbedding};
use super::prepare::{Lookup, ModelInput, PrepareInput, Prepared, prepare};
use super::scorer::ModelSpec;
use crate::library::store::Store;
use crate::model::PromptTokens;

/// Commands waiting in the channel before [`ScoringWorker::try_submit`] reports "busy".
pub const COMMAND_QUEUE: usize = 64;

/// Text-only batches (cached image tokens) are this many times the device batch: each image costs
/// about a tenth of a full pass, so a larger batch keeps the GEMMs efficient at the same latency.
const CACHED_BATCH_FACTOR: usize = 2;

/// Images prepared ahead of the model, in device batches.
const LOOKAHEAD_BATCHES: usize = 4;

/// Identifies a request; increases with every submission.
pub type Ticket = u64;

/// How urgent a request is; lower runs first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Priority {
    /// Images on screen now.
    Visible = 0,
    /// The rest of the current view.
    View = 1,
    /// The whole library, in the background (never made stale by `supersede`).
    Library = 2,
}

/// One image to score.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScoreItem {
    /// The file.
    pub path: PathBuf,
    /// Content hash, when known (a library row): a cached image then needs no file read.
    pub content_hash: Option<String>,
    /// The image's own generation prompt, when known; used when the request has no prompt.
    pub own_prompt: Option<String>,
}

impl ScoreItem {
    /// A file known only by its path: it is read, hashed and its own prompt parsed when prepared.
    pub fn file(path: PathBuf) -> Self {
        Self { path, content_hash: None, own_prompt: None }
    }
}

/// Score these images, against one prompt or each against its own.
#[derive(Debug, Clone)]
pub struct ScoreRequest {
    /// The images.
    pub items: Vec<ScoreItem>,
    /// A prompt for all (a rerank); `None` scores each image against its own generation prompt.
    pub prompt: Option<String>,
    /// How urgent.
    pub priority: Priority,
    /// Makes the `Visible`/`View` work of every earlier ticket stale (the user scrolled away or
    /// typed a new prompt).
    pub supersede: bool,
}

/// What the worker is asked to do.
#[derive(Debug)]
enum Command {
    Score(Ticket, ScoreRequest),
    SetModel(ModelSpec),
    Pause,
    Resume,
    Stop,
}

/// Where a score came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScoreSource {
    /// The store had it.
    Stored,
    /// The text part ran on cached image tokens.
    CachedTokens,
    /// The whole model ran.
    Computed,
}

/// One scored image.
#[derive(Debug, Clone, PartialEq)]
pub struct ScoreResult {
    /// The request it answers.
    pub ticket: Ticket,
    /// The file.
    pub path: PathBuf,
    /// Its content hash.
    pub content_hash: String,
    /// The prompt it was scored against.
    pub prompt: String,
    /// The normalised reward.
    pub score: f64,
    /// Where the score came from.
    pub source: ScoreSource,
}

/// The model's state, as the UI shows it.
#[derive(Debug, Clone, PartialEq)]
pub enum ModelState {
    /// Loading from this path.
    Loading {
        /// Model folder or file.
        path: PathBuf,
    },
    /// Ready; what it really runs on.
    Ready {
        /// The id scores are stored under.
        model_id: String,
        /// `cpu`, `cuda` or `metal`.
        device: String,
        /// `f32`, `f16` or `bf16`.
        dtype: String,
        /// Images per forward pass.
        batch: usize,
        /// Why it is not where it was asked to be (a GPU fell back to the CPU), if so.
        note: Option<String>,
    },
    /// No model: why.
    Failed {
        /// The reason, naming the file.
        reason: String,
    },
}

/// Counts over the whole run, for progress bars and the user.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Progress {
    /// Images finished (scored or failed) since the worker was last idle.
    pub done: usize,
    /// Images accepted since the worker was last idle (stale ones leave the count).
    pub total: usize,
    /// Images per second since the worker was last idle.
    pub images_per_sec: f64,
    /// Seconds left at that rate.
    pub eta_secs: f64,
}

/// What the worker tells its owner.
#[derive(Debug, Clone, PartialEq)]
pub enum ScoringEvent {
    /// The model changed state.
    Model(ModelState),
    /// An image was scored.
    Scored(ScoreResult),
    /// An image could not be scored.
    Failed {
        /// The request.
        ticket: Ticket,
        /// The file.
        path: PathBuf,
        /// Why, naming the file.
        reason: String,
    },
    /// Progress, after every batch.
    Progress(Progress),
    /// Every image of a request was scored, failed or dropped as stale.
    Finished {
        /// The request.
        ticket: Ticket,
        /// Images scored.
        scored: usize,
        /// Images that failed.
        failed: usize,
        /// Images dropped because a newer request superseded this one.
        dropped: usize,
    },
    /// Something went wrong that is not one image's fault (the store could not be written).
    Warning {
        /// What happened.
        message: String,
    },
    /// The worker stopped.
    Stopped,
}

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

/// Why a request was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SubmitError {
    /// The command queue is full; try again next frame.
    #[error("the scoring worker is busy; try again")]
    Busy,
    /// The worker has stopped.
    #[error("the scoring worker has stopped")]
    Stopped,
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

/// The handle to a running worker; dropping it stops the worker and waits for it.
pub struct ScoringWorker {
    commands: SyncSender<Command>,
    next_ticket: AtomicU64,
    stale_before: Arc<AtomicU64>,
    stats: Arc<WorkerStats>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for ScoringWorker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScoringWorker").field("running", &self.thread.is_some()).finish()
    }
}

impl ScoringWorker {
    /// Starts the worker; it loads `config.model` first and reports [`ModelState`] events.
    pub fn start(config: WorkerConfig) -> std::io::Result<(Self, Receiver<ScoringEvent>)> {
        let (commands, inbox) = sync_channel(COMMAND_QUEUE);
        let (events, receiver) = channel();
        let stale_before = Arc::new(AtomicU64::new(0));
        let stats = Arc::new(WorkerStats::default());
        let stop = Arc::new(AtomicBool::new(false));
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(config.decode_threads.max(1))
            .thread_name(|i| format!("rewardlens-decode-{i}"))
            .build()
            .map_err(std::io::Error::other)?;
        let state = WorkerState {
            events,
            stale_before: Arc::clone(&stale_before),
            stats: Arc::clone(&stats),
            stop: Arc::clone(&stop),
            config,
            pool,
        };
        let thread =
            std::thread::Builder::new().name("rewardlens-scoring".to_string()).spawn(move || state.run(&inbox))?;
        Ok((
            Self { commands, next_ticket: AtomicU64::new(1), stale_before, stats, stop, thread: Some(thread) },
            receiver,
        ))
    }

    fn ticket_for(&self, request: &ScoreRequest) -> Ticket {
        let ticket = self.next_ticket.fetch_add(1, Ordering::Relaxed);
        if request.supersede {
            // Set here, not on the worker, so queued commands are already stale when it meets them.
            self.stale_before.fetch_max(ticket, Ordering::Relaxed);
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
        self.stale_before.fetch_max(ticket, Ordering::Relaxed);
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
        &self.stats
    }

    /// Stops the worker after the batch in progress and waits for it.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
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

/// One image waiting in a queue.
#[derive(Debug)]
struct Job {
    ticket: Ticket,
    priority: Priority,
    input: PrepareInput,
}

/// A job whose preparation finished.
struct Decoded {
    job: Job,
    /// The model load it was prepared for; stored scores and cached tokens belong to that model.
    epoch: u64,
    result: Result<Prepared, String>,
}

/// Counts per ticket, for `Finished`.
#[derive(Debug, Default)]
struct TicketCounts {
    remaining: usize,
    scored: usize,
    failed: usize,
    dropped: usize,
}

/// A job ready for the model.
struct ReadyJob {
    job: Job,
    content_hash: String,
    prompt: String,
}

/// The loaded model with what goes with it.
struct Loaded {
    scorer: Backend,
    embeddings: Option<Arc<EmbeddingCache>>,
}

/// What the worker thread owns.
struct WorkerState {
    events: Sender<ScoringEvent>,
    stale_before: Arc<AtomicU64>,
    stats: Arc<WorkerStats>,
    stop: Arc<AtomicBool>,
    config: WorkerConfig,
    pool: rayon::ThreadPool,
}

/// The worker's queues and in-flight work.
struct Run {
    queues: [VecDeque<Job>; 3],
    tickets: HashMap<Ticket, TicketCounts>,
    in_flight: usize,
    /// `in_flight` by priority, so a batch waits for more urgent images still being prepared.
    in_flight_by: [usize; 3],
    ready_pixels: VecDeque<(ReadyJob, Vec<f32>)>,
    ready_cached: VecDeque<(ReadyJob, ImageEmbedding)>,
    paused: bool,
    started: Option<Instant>,
    done: usize,
    total: usize,
    tokens: HashMap<String, PromptTokens>,
    /// Counts model loads, so work prepared for an older model is prepared again.
    epoch: u64,
}

impl WorkerState {
    fn emit(&self, event: ScoringEvent) {
        // The owner went away; the work still lands in the store.
        let _ = self.events.send(event);
    }

    fn load(&self, spec: &ModelSpec) -> Option<Loaded> {
        self.emit(ScoringEvent::Model(ModelState::Loading { path: spec.path.clone() }));
        match Backend::load(spec) {
            Ok((scorer, note)) => {
                let embeddings = self.open_embeddings(&scorer);
                self.announce(&scorer, note);
                Some(Loaded { scorer, embeddings })
            }
            Err(e) => {
                self.emit(ScoringEvent::Model(ModelState::Failed { reason: e.to_string() }));
                None
            }
        }
    }

    fn announce(&self, scorer: &Backend, note: Option<String>) {
        self.emit(ScoringEvent::Model(ModelState::Ready {
            model_id: scorer.model_id().to_string(),
            device: scorer.device_name().to_string(),
            dtype: scorer.dtype_name().to_string(),
            batch: scorer.batch(),
            note,
        }));
    }

    fn open_embeddings(&self, scorer: &Backend) -> Option<Arc<EmbeddingCache>> {
        let (root, cap) = self.config.embedding_cache.as_ref()?;
        match EmbeddingCache::open(root, scorer.model_id(), *cap) {
            Ok(cache) => Some(Arc::new(cache)),
            Err(e) => {
                self.emit(ScoringEvent::Warning {
                    message: format!("image-embedding cache {} unusable ({e}); running without it", root.display()),
                });
                None
            }
        }
    }

    fn run(self, inbox: &Receiver<Command>) {
        let store = self.config.db.as_ref().and_then(|db| match Store::open(db) {
            Ok(store) => Some(Arc::new(Mutex::new(store))),
            Err(e) => {
                self.emit(ScoringEvent::Warning { message: format!("scores will not be saved: {e}") });
                None
            }
        });
        let mut loaded = self.load(&self.config.model);
        let mut run = Run {
            queues: [VecDeque::new(), VecDeque::new(), VecDeque::new()],
            tickets: HashMap::new(),
            in_flight: 0,
            in_flight_by: [0; 3],
            ready_pixels: VecDeque::new(),
            ready_cached: VecDeque::new(),
            paused: false,
            started: None,
            done: 0,
            total: 0,
            tokens: HashMap::new(),
            epoch: 0,
        };
        let (decoded_tx, decoded_rx) = channel::<Decoded>();
        loop {
            let idle = run.is_idle() || (run.paused && run.in_flight == 0);
            // Wait for a command only when there is nothing else to do.
            let first = if idle {
                match inbox.recv_timeout(Duration::from_millis(100)) {
                    Ok(c) => Some(c),
                    Err(RecvTimeoutError::Timeout) => None,
                    Err(RecvTimeoutError::Disconnected) => Some(Command::Stop),
                }
            } else {
                inbox.try_recv().ok()
            };
            let mut stop = self.stop.load(Ordering::Relaxed);
            for command in first.into_iter().chain(std::iter::from_fn(|| inbox.try_recv().ok())) {
                match command {
                    Command::Score(ticket, request) => self.accept(&mut run, ticket, request),
                    Command::SetModel(spec) => {
                        // Tokens and scores of the old model do not carry over.
                        run.tokens.clear();
                        run.epoch += 1;
                        self.requeue_ready(&mut run);
                        loaded = self.load(&spec);
                    }
                    Command::Pause => run.paused = true,
                    Command::Resume => run.paused = false,
                    Command::Stop => stop = true,
                }
            }
            if stop {
                break;
            }
            let Some(model) = loaded.as_mut() else {
                // Without a model every job fails at once, so no caller waits forever.
                let reason = "no model is loaded (see the model error)";
                while run.in_flight > 0 {
                    let Ok(decoded) = decoded_rx.recv() else { break };
                    run.in_flight -= 1;
                    run.in_flight_by[decoded.job.priority as usize] -= 1;
                    self.fail(&mut run, &decoded.job, format!("{}: {reason}", decoded.job.input.path.display()));
                }
                self.fail_all(&mut run, reason);
                continue;
            };
            self.feed(&mut run, model, store.as_ref(), &decoded_tx);
            // Collect decoded images; wait briefly for one when a batch cannot be formed yet.
            let batch = model.scorer.batch();
            loop {
                let short = run.ready_pixels.len() < batch && run.ready_cached.len() < CACHED_BATCH_FACTOR * batch;
                let next = if run.in_flight > 0 && !run.paused && (short || run.urgent_in_flight(batch)) {
                    decoded_rx.recv_timeout(Duration::from_millis(20)).ok()
                } else {
                    decoded_rx.try_recv().ok()
                };
                let Some(decoded) = next else { break };
                run.in_flight -= 1;
                run.in_flight_by[decoded.job.priority as usize] -= 1;
                self.take_decoded(&mut run, decoded);
                if !run.urgent_in_flight(batch)
                    && (run.ready_pixels.len() >= batch || run.ready_cached.len() >= CACHED_BATCH_FACTOR * batch)
                {
                    break;
                }
            }
            // Something more urgent than every prepared image is still being prepared: wait for it.
            if run.paused || run.urgent_in_flight(batch) {
                continue;
            }
            let more_coming = run.in_flight > 0 || run.queues.iter().any(|q| !q.is_empty());
            // A queue also runs part-full when it holds the most urgent work prepared and nothing
            // as urgent is still being prepared (no fuller batch of it is coming).
            let (best_cached, best_pixels) = (run.best_ready(&run.ready_cached), run.best_ready(&run.ready_pixels));
            let flying = (0..3).find(|&p| run.in_flight_by[p] > 0).unwrap_or(3);
            let leads = |mine: usize, other: usize| mine <= other && mine < flying;
            let run_cached = !run.ready_cached.is_empty()
                && (run.ready_cached.len() >= CACHED_BATCH_FACTOR * batch
                    || !more_coming
                    || leads(best_cached, best_pixels));
            let run_pixels = !run.ready_pixels.is_empty()
                && (run.ready_pixels.len() >= batch || !more_coming || leads(best_pixels, best_cached));
            // The queue with the more urgent work goes first; cached tokens first on a tie (cheaper).
            if run_pixels && best_pixels < best_cached {
                self.run_pixel_batch(&mut run, model, store.as_ref());
            }
            if run_cached {
                self.run_cached_batch(&mut run, model, store.as_ref());
            }
            if run_pixels && best_pixels >= best_cached {
                self.run_pixel_batch(&mut run, model, store.as_ref());
            }
            if run.is_idle() {
                run.started = None;
                run.done = 0;
                run.total = 0;
            }
        }
        self.emit(ScoringEvent::Stopped);
    }

    fn is_stale(&self, ticket: Ticket, priority: Priority) -> bool {
        priority != Priority::Library && ticket < self.stale_before.load(Ordering::Relaxed)
    }

    fn accept(&self, run: &mut Run, ticket: Ticket, request: ScoreRequest) {
        let counts = run.tickets.entry(ticket).or_default();
        counts.remaining = request.items.len();
        run.total += request.items.len();
        run.started.get_or_insert_with(Instant::now);
        let queue = &mut run.queues[request.priority as usize];
        for item in request.items {
            let prompt = request.prompt.clone().or(item.own_prompt);
            queue.push_back(Job {
                ticket,
                priority: request.priority,
                input: PrepareInput { path: item.path, content_hash: item.content_hash, prompt },
            });
        }
        self.finish_if_done(run, ticket);
    }

    /// Starts preparing queued jobs, most urgent first, keeping a few batches in flight.
    fn feed(&self, run: &mut Run, model: &Loaded, store: Option<&Arc<Mutex<Store>>>, tx: &Sender<Decoded>) {
        if run.paused {
            return;
        }
        let lookahead = LOOKAHEAD_BATCHES * model.scorer.batch();
        while run.in_flight + run.ready_len() < lookahead {
            let Some(job) = run.queues.iter_mut().find_map(VecDeque::pop_front) else { break };
            if self.is_stale(job.ticket, job.priority) {
                self.drop_stale(run, job.ticket);
                continue;
            }
            run.in_flight += 1;
            run.in_flight_by[job.priority as usize] += 1;
            let tx = tx.clone();
            let store = store.cloned();
            let embeddings = model.embeddings.clone();
            let model_id = model.scorer.model_id().to_string();
            let epoch = run.epoch;
            self.pool.spawn(move || {
                let lookup = Lookup { store: store.as_deref(), embeddings: embeddings.as_deref(), model_id: &model_id };
                let result = prepare(&job.input, &lookup);
                let _ = tx.send(Decoded { job, epoch, result });
            });
        }
    }

    fn take_decoded(&self, run: &mut Run, decoded: Decoded) {
        let Decoded { job, epoch, result } = decoded;
        if epoch != run.epoch {
            run.queues[job.priority as usize].push_front(job);
            return;
        }
        if self.is_stale(job.ticket, job.priority) {
            self.drop_stale(run, job.ticket);
            return;
        }
        match result {
            Err(reason) => self.fail(run, &job, reason),
            Ok(Prepared { content_hash, prompt, input }) => {
                let ready = ReadyJob { job, content_hash, prompt };
                match input {
                    ModelInput::Stored(score) => {
                        self.stats.stored_images.fetch_add(1, Ordering::Relaxed);
                        self.scored(run, &ready, score, ScoreSource::Stored);
                    }
                    ModelInput::Cached(embedding) => run.ready_cached.push_back((ready, embedding)),
                    ModelInput::Pixels(pixels) => run.ready_pixels.push_back((ready, pixels)),
                }
            }
        }
    }

    /// Takes up to a batch of fresh jobs from a ready queue, most urgent first, dropping stale ones.
    fn take_batch<T>(
        &self,
        run: &mut Run,
        which: fn(&mut Run) -> &mut VecDeque<(ReadyJob, T)>,
        batch: usize,
    ) -> Vec<(ReadyJob, T)> {
        which(run).make_contiguous().sort_by_key(|(r, _)| r.job.priority);
        let mut out = Vec::with_capacity(batch);
        while out.len() < batch {
            let Some(item) = which(run).pop_front() else { break };
            if self.is_stale(item.0.job.ticket, item.0.job.priority) {
                self.drop_stale(run, item.0.job.ticket);
                continue;
            }
            out.push(item);
        }
        out
    }

    /// Tokens for each job's prompt (tokenised once per prompt); a prompt that cannot be tokenised
    /// fails its jobs.
    fn prompts_for<T>(
        &self,
        run: &mut Run,
        model: &Loaded,
        items: Vec<(ReadyJob, T)>,
    ) -> (Vec<(ReadyJob, T)>, Vec<PromptTokens>) {
        let mut kept = Vec::with_capacity(items.len());
        let mut prompts = Vec::with_capacity(items.len());
        for (ready, payload) in items {
            let tokens = match run.tokens.get(&ready.prompt) {
                Some(t) => t.clone(),
                None => match model.scorer.tokenize(&ready.prompt) {
                    Ok(t) => {
                        if t.truncated {
                            self.emit(ScoringEvent::Warning {
                                message: format!(
                                    "prompt longer than {} tokens, the model reads only the start: {:?}",
                                    crate::model::MAX_TOKENS,
                                    ready.prompt
                                ),
                            });
                        }
                        run.tokens.insert(ready.prompt.clone(), t.clone());
                        t
                    }
                    Err(e) => {
                        self.fail(
                            run,
                            &ready.job,
                            format!("{}: cannot tokenise its prompt: {e}", ready.job.input.path.display()),
                        );
                        continue;
                    }
                },
            };
            prompts.push(tokens);
            kept.push((ready, payload));
        }
        // One prompt for all runs the text part once per image with a shared [1, L] input.
        let same = prompts.windows(2).all(|w| w[0].ids == w[1].ids);
        if same && !prompts.is_empty() {
            prompts.truncate(1);
        }
        (kept, prompts)
    }

    fn run_cached_batch(&self, run: &mut Run, model: &mut Loaded, store: Option<&Arc<Mutex<Store>>>) {
        let batch = CACHED_BATCH_FACTOR * model.scorer.batch();
        let items = self.take_batch(run, |r| &mut r.ready_cached, batch);
        let (items, prompts) = self.prompts_for(run, model, items);
        if items.is_empty() {
            return;
        }
        let embeddings: Vec<&ImageEmbedding> = items.iter().map(|(_, e)| e).collect();
        let result = self.with_fallback(model, |scorer| scorer.score_embeddings(&prompts, &embeddings));
        match result {
            Ok(scores) => {
                self.stats.cached_token_images.fetch_add(items.len() as u64, Ordering::Relaxed);
                self.finish_batch(run, model, store, &items, &scores, ScoreSource::CachedTokens);
            }
            Err(e) => {
                for (ready, _) in &items {
                    self.fail(run, &ready.job, format!("{}: the model failed: {e}", ready.job.input.path.display()));
                }
            }
        }
    }

    fn run_pixel_batch(&self, run: &mut Run, model: &mut Loaded, store: Option<&Arc<Mutex<Store>>>) {
        let batch = model.scorer.batch();
        let items = self.take_batch(run, |r| &mut r.ready_pixels, batch);
        let (items, prompts) = self.prompts_for(run, model, items);
        if items.is_empty() {
            return;
        }
        let pixels: Vec<&[f32]> = items.iter().map(|(_, p)| p.as_slice()).collect();
        let result = self.with_fallback(model, |scorer| scorer.score_pixels(&prompts, &pixels));
        match result {
            Ok((scores, embeddings)) => {
                self.stats.image_tower_images.fetch_add(items.len() as u64, Ordering::Relaxed);
                if let Some(cache) = &model.embeddings {
                    // Staged in memory at once (a rerank right after sees them), written on the
                    // decode pool, so the model goes on with the next batch.
                    let entries: Vec<(String, Arc<ImageEmbedding>)> = items
                        .iter()
                        .map(|(r, _)| r.content_hash.clone())
                        .zip(embeddings.into_iter().map(Arc::new))
                        .collect();
                    for (hash, embedding) in &entries {
                        cache.stage(hash, Arc::clone(embedding));
                    }
                    let cache = Arc::clone(cache);
                    let events = self.events.clone();
                    self.pool.spawn(move || {
                        let mut warned = false;
                        for (hash, embedding) in entries {
                            if let Err(e) = cache.put(&hash, &embedding)
                                && !std::mem::replace(&mut warned, true)
                            {
                                let _ = events
                                    .send(ScoringEvent::Warning { message: format!("cannot cache image tokens: {e}") });
                            }
                        }
                    });
                }
                self.finish_batch(run, model, store, &items, &scores, ScoreSource::Computed);
            }
            Err(e) => {
                for (ready, _) in &items {
                    self.fail(run, &ready.job, format!("{}: the model failed: {e}", ready.job.input.path.display()));
                }
            }
        }
    }

    /// Runs `f`; when it fails on a GPU (or the GPU helper dies), reloads the model in-process on
    /// the CPU, says why, and runs it there.
    fn with_fallback<T>(
        &self,
        model: &mut Loaded,
        mut f: impl FnMut(&mut Backend) -> Result<T, String>,
    ) -> Result<T, String> {
        match f(&mut model.scorer) {
            Ok(v) => Ok(v),
            Err(e) if model.scorer.on_gpu() => {
                let cpu = model.scorer.cpu_fallback().map_err(|e| e.to_string())?;
                let note =
                    format!("the {} failed while scoring ({e}); now scoring on the CPU", model.scorer.device_name());
                self.announce(&cpu, Some(note));
                // Dropping the old backend stops a GPU helper that is still alive.
                model.scorer = cpu;
                f(&mut model.scorer)
            }
            Err(e) => Err(e),
        }
    }

    /// Saves a batch's scores in one transaction and reports them.
    fn finish_batch<T>(
        &self,
        run: &mut Run,
        model: &Loaded,
        store: Option<&Arc<Mutex<Store>>>,
        items: &[(ReadyJob, T)],
        scores: &[f32],
        source: ScoreSource,
    ) {
        if let Some(store) = store {
            let rows: Vec<(&str, &str, f64)> = items
                .iter()
                .zip(scores)
                .map(|((r, _), s)| (r.content_hash.as_str(), r.prompt.as_str(), f64::from(*s)))
                .collect();
            let saved =
                store.lock().unwrap_or_else(PoisonError::into_inner).record_scores(model.scorer.model_id(), &rows);
            if let Err(e) = saved {
                self.emit(ScoringEvent::Warning { message: format!("scores were computed but not saved: {e}") });
            }
        }
        for ((ready, _), score) in items.iter().zip(scores) {
            self.scored(run, ready, f64::from(*score), source);
        }
        let elapsed = run.started.map_or(0.0, |s| s.elapsed().as_secs_f64());
        let rate = if elapsed > 0.0 { run.done as f64 / elapsed } else { 0.0 };
        let left = run.total.saturating_sub(run.done) as f64;
        self.emit(ScoringEvent::Progress(Progress {
            done: run.done,
            total: run.total,
            images_per_sec: rate,
            eta_secs: if rate > 0.0 { left / rate } else { 0.0 },
        }));
    }

    fn scored(&self, run: &mut Run, ready: &ReadyJob, score: f64, source: ScoreSource) {
        run.done += 1;
        self.emit(ScoringEvent::Scored(ScoreResult {
            ticket: ready.job.ticket,
            path: ready.job.input.path.clone(),
            content_hash: ready.content_hash.clone(),
            prompt: ready.prompt.clone(),
            score,
            source,
        }));
        if let Some(c) = run.tickets.get_mut(&ready.job.ticket) {
            c.scored += 1;
            c.remaining = c.remaining.saturating_sub(1);
        }
        self.finish_if_done(run, ready.job.ticket);
    }

    fn fail(&self, run: &mut Run, job: &Job, reason: String) {
        run.done += 1;
        self.emit(ScoringEvent::Failed { ticket: job.ticket, path: job.input.path.clone(), reason });
        if let Some(c) = run.tickets.get_mut(&job.ticket) {
            c.failed += 1;
            c.remaining = c.remaining.saturating_sub(1);
        }
        self.finish_if_done(run, job.ticket);
    }

    fn drop_stale(&self, run: &mut Run, ticket: Ticket) {
        run.total = run.total.saturating_sub(1);
        if let Some(c) = run.tickets.get_mut(&ticket) {
            c.dropped += 1;
            c.remaining = c.remaining.saturating_sub(1);
        }
        self.finish_if_done(run, ticket);
    }

    fn finish_if_done(&self, run: &mut Run, ticket: Ticket) {
        if run.tickets.get(&ticket).is_some_and(|c| c.remaining == 0)
            && let Some(c) = run.tickets.remove(&ticket)
        {
            self.emit(ScoringEvent::Finished { ticket, scored: c.scored, failed: c.failed, dropped: c.dropped });
        }
    }

    /// Fails every queued and prepared job with `reason`.
    fn fail_all(&self, run: &mut Run, reason: &str) {
        let jobs: Vec<Job> = run
            .queues
            .iter_mut()
            .flat_map(|q| q.drain(..))
            .chain(run.ready_pixels.drain(..).map(|(r, _)| r.job))
            .chain(run.ready_cached.drain(..).map(|(r, _)| r.job))
            .collect();
        for job in jobs {
            self.fail(run, &job, format!("{}: {reason}", job.input.path.display()));
        }
    }

    /// After a model change, prepared work goes back to the front of its queue (stored scores and
    /// cached tokens belong to the old model).
    fn requeue_ready(&self, run: &mut Run) {
        let jobs: Vec<Job> = run
            .ready_pixels
            .drain(..)
            .map(|(r, _)| r.job)
            .chain(run.ready_cached.drain(..).map(|(r, _)| r.job))
            .collect();
        for job in jobs.into_iter().rev() {
            run.queues[job.priority as usize].push_front(job);
        }
    }
}

impl Run {
    fn ready_len(&self) -> usize {
        self.ready_pixels.len() + self.ready_cached.len()
    }

    /// Whether a batch now would take less urgent prepared images while more urgent ones, not
    /// enough yet to fill it, are still being prepared.
    fn urgent_in_flight(&self, batch: usize) -> bool {
        let Some(flying) = (0..3).find(|&p| self.in_flight_by[p] > 0) else { return false };
        let ready = self
            .ready_pixels
            .iter()
            .map(|(r, _)| r.job.priority)
            .chain(self.ready_cached.iter().map(|(r, _)| r.job.priority));
        let (mut as_urgent, mut less_urgent) = (0, 0);
        for p in ready {
            if p as usize <= flying {
                as_urgent += 1;
            } else {
                less_urgent += 1;
            }
        }
        less_urgent > 0 && as_urgent < batch
    }

    /// The most urgent priority in a ready queue, 3 when it is empty.
    fn best_ready<T>(&self, queue: &VecDeque<(ReadyJob, T)>) -> usize {
        queue.iter().map(|(r, _)| r.job.priority as usize).min().unwrap_or(3)
    }

    fn is_idle(&self) -> bool {
        self.in_flight == 0 && self.ready_len() == 0 && self.queues.iter().all(VecDeque::is_empty)
    }
}
