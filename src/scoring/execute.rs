//! The scoring worker's thread: it owns the model, the store connection and the embedding cache,
//! and does what [`Scheduler`] decides: hands jobs to the decode pool, runs batches, writes scores
//! in one transaction per batch, writes image tokens behind the model, and reports events.

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::backend::{Backend, BackendError};
use super::embeddings::{EmbeddingCache, ImageEmbedding};
use super::prepare::{Lookup, ModelInput, PrepareError, PrepareInput, Prepared, prepare};
use super::protocol::{
    Command, ItemError, ItemFailure, ModelState, Progress, ScoreItem, ScoreRequest, ScoreResult, ScoreSource,
    ScoringEvent, Ticket, ViewRequest, WorkerWarning,
};
use super::schedule::{Job, Lane, Scheduler};
use super::settings::ModelSpec;
use super::worker::{Shared, WorkerConfig};
use crate::image_file::ContentHash;
use crate::library::store::{ScoreRow, Store};
use crate::library::views::ScoreStatus;
use crate::model::{PromptTokenizer, PromptTokens};
use crate::wake::wake;

/// How long the idle loop waits for a command before looking at the stop flag again.
const IDLE_POLL: Duration = Duration::from_millis(100);

/// How long the loop waits for a preparation to land when a batch cannot be formed yet.
const PREPARED_POLL: Duration = Duration::from_millis(20);

/// What a prepared image carries into its batch.
struct Ready<T> {
    content_hash: ContentHash,
    prompt: String,
    tokens: PromptTokens,
    payload: T,
}

/// The scheduler as the executor uses it.
type Schedule = Scheduler<PrepareInput, Ready<Vec<f32>>, Ready<ImageEmbedding>>;

/// Prepared images of one lane, each with its job.
type Batch<T> = Vec<(Job<PrepareInput>, Ready<T>)>;

/// A job whose preparation finished on the decode pool.
struct Landed {
    job: Job<PrepareInput>,
    /// The model load it was prepared for; stored scores and cached tokens belong to that model.
    epoch: u64,
    result: Result<Prepared, PrepareError>,
}

/// The loaded model with what goes with it.
struct Loaded {
    backend: Backend,
    embeddings: Option<Arc<EmbeddingCache>>,
    /// The backend's tokenizer, shared with the decode threads.
    tokenizer: Arc<PromptTokenizer>,
}

/// What the worker thread owns.
pub(crate) struct Executor {
    events: Sender<ScoringEvent>,
    shared: Arc<Shared>,
    config: WorkerConfig,
    pool: rayon::ThreadPool,
}

/// The loop's state besides the scheduler.
struct RunState {
    schedule: Schedule,
    /// Truncated prompts already reported, so each is reported once.
    warned_truncated: HashSet<String>,
    /// Scores not yet sent: sent as one event per batch, before any `Finished` they complete.
    pending_scored: Vec<ScoreResult>,
    /// Counts model loads, so work prepared for an older model is prepared again.
    epoch: u64,
    /// When the current busy spell started, for the rate.
    started: Option<Instant>,
}

impl Executor {
    /// Sets up the decode pool; the model is loaded on the worker thread by [`Executor::run`].
    pub fn new(config: WorkerConfig, events: Sender<ScoringEvent>, shared: Arc<Shared>) -> std::io::Result<Self> {
        let background = config.background;
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(config.decode_threads.max(1))
            .thread_name(|i| format!("rewardlens-decode-{i}"))
            .start_handler(move |_| {
                if background {
                    crate::priority::set_current_thread_priority(crate::priority::Priority::Background);
                }
            })
            .build()
            .map_err(std::io::Error::other)?;
        Ok(Self { events, shared, config, pool })
    }

    fn emit(&self, event: ScoringEvent) {
        // The owner went away; the work still lands in the store.
        let _ = self.events.send(event);
        wake(self.config.waker.as_ref());
    }

    fn warn(&self, warning: WorkerWarning) {
        self.emit(ScoringEvent::Warning(warning));
    }

    fn load(&self, spec: &ModelSpec) -> Option<Loaded> {
        self.emit(ScoringEvent::Model(ModelState::Loading { path: spec.path.clone() }));
        match Backend::load(spec) {
            Ok((backend, note)) => {
                let embeddings = self.open_embeddings(&backend);
                let tokenizer = Arc::new(backend.tokenizer().clone());
                self.announce(&backend, note);
                Some(Loaded { backend, embeddings, tokenizer })
            }
            Err(e) => {
                self.emit(ScoringEvent::Model(ModelState::Failed { path: spec.path.clone(), error: Arc::new(e) }));
                None
            }
        }
    }

    fn announce(&self, backend: &Backend, note: Option<String>) {
        self.emit(ScoringEvent::Model(ModelState::Ready {
            model_id: backend.model_id().to_string(),
            device: backend.device(),
            dtype: backend.precision(),
            batch: backend.batch(),
            note,
        }));
    }

    fn open_embeddings(&self, backend: &Backend) -> Option<Arc<EmbeddingCache>> {
        let (root, cap) = self.config.embedding_cache.as_ref()?;
        match EmbeddingCache::open(root, backend.model_id(), *cap) {
            Ok(cache) => Some(Arc::new(cache)),
            Err(e) => {
                self.warn(WorkerWarning::CacheUnusable { path: root.clone(), message: e.to_string() });
                None
            }
        }
    }

    /// The worker thread's body: until stopped, take commands, feed the decode pool, collect
    /// prepared images and run the batches the scheduler plans.
    pub fn run(self, inbox: &Receiver<Command>) {
        let store = self.config.db.as_ref().and_then(|db| match Store::open_background(db) {
            Ok(store) => Some(Arc::new(Mutex::new(store))),
            Err(e) => {
                self.warn(WorkerWarning::StoreUnavailable { message: e.to_string() });
                None
            }
        });
        let mut loaded = self.load(&self.config.model);
        if let (Some(model), Some(store)) = (&loaded, &store) {
            self.sync_library(model, store);
        }
        let batch = loaded.as_ref().map_or(1, |l| l.backend.batch());
        let mut state = RunState {
            schedule: Scheduler::new(batch),
            warned_truncated: HashSet::new(),
            pending_scored: Vec::new(),
            epoch: 0,
            started: None,
        };
        let (landed_tx, landed_rx) = channel::<Landed>();
        loop {
            let s = &mut state.schedule;
            let idle = s.is_idle() || (s.is_paused() && s.in_flight_count() == 0);
            // Wait for a command only when there is nothing else to do.
            let first = if idle {
                match inbox.recv_timeout(IDLE_POLL) {
                    Ok(c) => Some(c),
                    Err(RecvTimeoutError::Timeout) => None,
                    Err(RecvTimeoutError::Disconnected) => Some(Command::Stop),
                }
            } else {
                inbox.try_recv().ok()
            };
            let mut stop = self.shared.stop.load(Ordering::Relaxed);
            for command in first.into_iter().chain(std::iter::from_fn(|| inbox.try_recv().ok())) {
                if matches!(command, Command::Score(..) | Command::ScoreView(..)) {
                    self.shared.queued.fetch_sub(1, Ordering::Relaxed);
                }
                match command {
                    Command::Score(ticket, request) => self.accept(&mut state, ticket, request),
                    Command::ScoreView(ticket, request)
                        if request.priority.can_go_stale()
                            && ticket < self.shared.stale_before.load(Ordering::Relaxed) =>
                    {
                        // Superseded before it was listed (the user scrolled on): listing a large
                        // view only to drop every item would hold up the work that replaced it.
                        self.accept(
                            &mut state,
                            ticket,
                            ScoreRequest {
                                items: Vec::new(),
                                prompt: None,
                                priority: request.priority,
                                supersede: false,
                            },
                        );
                    }
                    Command::ScoreView(ticket, request) => {
                        let model_id = loaded.as_ref().map(|l| l.backend.model_id().to_string());
                        let request = self.view_request(store.as_deref(), model_id, *request);
                        self.accept(&mut state, ticket, request);
                    }
                    Command::SetModel(spec) => {
                        // Tokens and scores of the old model do not carry over.
                        state.epoch += 1;
                        state.schedule.requeue_prepared();
                        loaded = self.load(&spec);
                        if let Some(l) = &loaded {
                            state.schedule.set_batch(l.backend.batch());
                            if let Some(store) = &store {
                                self.sync_library(l, store);
                            }
                        }
                    }
                    Command::Pause => state.schedule.pause(),
                    Command::Resume => state.schedule.resume(),
                    Command::Stop => stop = true,
                }
            }
            if stop {
                break;
            }
            state.schedule.supersede_before(self.shared.stale_before.load(Ordering::Relaxed));
            let Some(model) = loaded.as_mut() else {
                self.fail_everything(&mut state, &landed_rx);
                continue;
            };
            self.feed(&mut state, model, store.as_ref(), &landed_tx);
            // Collect prepared images; wait briefly for one when a batch cannot be formed yet.
            loop {
                let next = if state.schedule.should_wait_for_prepared() {
                    landed_rx.recv_timeout(PREPARED_POLL).ok()
                } else {
                    landed_rx.try_recv().ok()
                };
                let Some(landed) = next else { break };
                self.file_landed(&mut state, landed);
                if state.schedule.has_full_batch() {
                    break;
                }
            }
            for lane in state.schedule.plan() {
                match lane {
                    Lane::Pixels => self.run_pixel_batch(&mut state, model, store.as_ref()),
                    Lane::Cached => self.run_cached_batch(&mut state, model, store.as_ref()),
                }
            }
            self.report_finished(&mut state);
            if state.schedule.is_idle() {
                state.started = None;
                state.schedule.reset_progress_if_idle();
            }
        }
        self.flush_scored(&mut state);
        self.emit(ScoringEvent::Stopped);
    }

    /// After a model loads: remember it as the library's current model, re-key the scores it
    /// stored before schema v2, and tokenise the library's prompts it has not seen, so views can
    /// join own prompts to scores and flag truncated prompts. Chunked, so a large library costs
    /// short transactions; a failure is a warning (scoring works without it).
    fn sync_library(&self, model: &Loaded, store: &Mutex<Store>) {
        const CHUNK: usize = 1000;
        let model_id = model.backend.model_id();
        let encode = |prompt: &str| model.tokenizer.encode(prompt).ok().map(|t| (t.key(), t.truncated));
        let result = (|| -> Result<(), crate::library::store::StoreError> {
            let mut store = store.lock().unwrap_or_else(PoisonError::into_inner);
            store.set_last_model_id(model_id)?;
            loop {
                let legacy = store.legacy_scores(model_id, CHUNK)?;
                if legacy.is_empty() {
                    break;
                }
                let rows: Vec<_> = legacy
                    .into_iter()
                    .filter_map(|l| encode(&l.prompt).map(|(key, truncated)| (l, key, truncated)))
                    .collect();
                if rows.is_empty() {
                    break;
                }
                store.rekey_legacy_scores(model_id, &rows)?;
            }
            loop {
                let prompts = store.prompts_without_tokens(model_id, CHUNK)?;
                let rows: Vec<(&str, _, bool)> = prompts
                    .iter()
                    .filter_map(|p| encode(p).map(|(key, truncated)| (p.as_str(), key, truncated)))
                    .collect();
                if rows.is_empty() {
                    break;
                }
                store.record_prompt_tokens(model_id, &rows)?;
                if prompts.len() < CHUNK {
                    break;
                }
            }
            Ok(())
        })();
        if let Err(e) = result {
            self.warn(WorkerWarning::ScoresNotSaved {
                message: format!("cannot prepare the library for the model: {e}"),
            });
        }
    }

    /// The score request a view asks for: its images without a reward from this model, each
    /// with what the library knows (content hash, own prompt), in the view's order. Without a
    /// library or a model it is empty (and says why).
    fn view_request(
        &self,
        store: Option<&Mutex<Store>>,
        model_id: Option<String>,
        request: ViewRequest,
    ) -> ScoreRequest {
        let ViewRequest { mut query, priority } = request;
        let prompt = query.reward_prompt().map(str::to_string);
        let empty = ScoreRequest { items: Vec::new(), prompt: prompt.clone(), priority, supersede: false };
        let (Some(store), Some(model_id)) = (store, model_id) else {
            self.warn(WorkerWarning::StoreUnavailable {
                message: "a view can be scored only with a library and a loaded model".to_string(),
            });
            return empty;
        };
        query.model_id = Some(model_id);
        query.filter.status = Some(ScoreStatus::Unscored);
        let items = store.lock().unwrap_or_else(PoisonError::into_inner).view_items(&query);
        match items {
            Ok(items) => ScoreRequest {
                items: items
                    .into_iter()
                    // Against its own prompt, an image without one cannot be scored.
                    .filter(|item| prompt.is_some() || item.prompt.is_some())
                    .map(|item| ScoreItem { path: item.path, content_hash: item.content_hash, own_prompt: item.prompt })
                    .collect(),
                ..empty
            },
            Err(e) => {
                self.warn(WorkerWarning::StoreUnavailable { message: e.to_string() });
                empty
            }
        }
    }

    fn accept(&self, state: &mut RunState, ticket: Ticket, request: ScoreRequest) {
        state.started.get_or_insert_with(Instant::now);
        let prompt = request.prompt;
        let inputs = request.items.into_iter().map(|item| PrepareInput {
            prompt: prompt.clone().or(item.own_prompt),
            path: item.path,
            content_hash: item.content_hash,
        });
        state.schedule.accept(ticket, request.priority, inputs);
        self.report_finished(state);
    }

    /// Without a model every job fails at once, so no caller waits forever.
    fn fail_everything(&self, state: &mut RunState, landed_rx: &Receiver<Landed>) {
        while state.schedule.in_flight_count() > 0 {
            let Ok(landed) = landed_rx.recv() else { break };
            if let Some(job) = state.schedule.landed(landed.job, true) {
                self.fail(state, &job, None, ItemError::NoModel);
            }
        }
        for job in state.schedule.drain_waiting() {
            self.fail(state, &job, None, ItemError::NoModel);
        }
        self.report_finished(state);
    }

    /// Starts preparing what the scheduler picks, on the decode pool.
    fn feed(&self, state: &mut RunState, model: &Loaded, store: Option<&Arc<Mutex<Store>>>, tx: &Sender<Landed>) {
        while let Some(job) = state.schedule.next_to_prepare() {
            let tx = tx.clone();
            let store = store.cloned();
            let embeddings = model.embeddings.clone();
            let tokenizer = Arc::clone(&model.tokenizer);
            let model_id = model.backend.model_id().to_string();
            let epoch = state.epoch;
            self.pool.spawn(move || {
                let lookup = Lookup {
                    store: store.as_deref(),
                    embeddings: embeddings.as_deref(),
                    model_id: &model_id,
                    tokenizer: &tokenizer,
                };
                let result = prepare(&job.input, &lookup);
                let _ = tx.send(Landed { job, epoch, result });
            });
        }
        self.report_finished(state);
    }

    /// Files a landed preparation: answered from the store, failed, or into a ready lane.
    fn file_landed(&self, state: &mut RunState, landed: Landed) {
        let Landed { job, epoch, result } = landed;
        let Some(job) = state.schedule.landed(job, epoch == state.epoch) else { return };
        match result {
            Err(PrepareError { content_hash, error }) => self.fail(state, &job, content_hash, error),
            Ok(Prepared { content_hash, prompt, tokens, input }) => match input {
                ModelInput::Stored(score) => {
                    self.shared.stats.stored_images.fetch_add(1, Ordering::Relaxed);
                    self.scored(state, &job, content_hash, prompt, score, ScoreSource::Stored);
                }
                ModelInput::Cached(payload) => {
                    state.schedule.push_cached(job, Ready { content_hash, prompt, tokens, payload });
                }
                ModelInput::Pixels(payload) => {
                    state.schedule.push_pixels(job, Ready { content_hash, prompt, tokens, payload });
                }
            },
        }
    }

    /// The batch's prompts as the model reads them (one shared `[1, L]` input when all are the
    /// same); a prompt cut at 35 tokens is reported once.
    fn prompts_for<T>(&self, state: &mut RunState, items: &Batch<T>) -> Vec<PromptTokens> {
        let mut prompts: Vec<PromptTokens> = Vec::with_capacity(items.len());
        for (_, ready) in items {
            if ready.tokens.truncated && state.warned_truncated.insert(ready.prompt.clone()) {
                self.warn(WorkerWarning::PromptTruncated { prompt: ready.prompt.clone() });
            }
            prompts.push(ready.tokens.clone());
        }
        if prompts.windows(2).all(|w| w[0].ids == w[1].ids) {
            prompts.truncate(1);
        }
        prompts
    }

    fn run_cached_batch(&self, state: &mut RunState, model: &mut Loaded, store: Option<&Arc<Mutex<Store>>>) {
        let items = state.schedule.take_cached();
        let prompts = self.prompts_for(state, &items);
        if items.is_empty() {
            return;
        }
        let embeddings: Vec<&ImageEmbedding> = items.iter().map(|(_, r)| &r.payload).collect();
        let (result, fell_back) = model.backend.run(|b| b.score_embeddings(&prompts, &embeddings));
        self.after_fallback(model, fell_back);
        match result {
            Ok(scores) => {
                self.shared.stats.cached_token_images.fetch_add(items.len() as u64, Ordering::Relaxed);
                self.finish_batch(state, model, store, items, &scores, ScoreSource::CachedTokens);
            }
            Err(e) => self.fail_batch(state, items, &e),
        }
    }

    fn run_pixel_batch(&self, state: &mut RunState, model: &mut Loaded, store: Option<&Arc<Mutex<Store>>>) {
        let items = state.schedule.take_pixels();
        let prompts = self.prompts_for(state, &items);
        if items.is_empty() {
            return;
        }
        let pixels: Vec<&[f32]> = items.iter().map(|(_, r)| r.payload.as_slice()).collect();
        let (result, fell_back) = model.backend.run(|b| b.score_pixels(&prompts, &pixels));
        self.after_fallback(model, fell_back);
        match result {
            Ok((scores, embeddings)) => {
                self.shared.stats.image_tower_images.fetch_add(items.len() as u64, Ordering::Relaxed);
                if let Some(cache) = &model.embeddings {
                    let hashes = items.iter().map(|(_, r)| r.content_hash.clone());
                    self.cache_behind(cache, hashes.zip(embeddings.into_iter().map(Arc::new)).collect());
                }
                self.finish_batch(state, model, store, items, &scores, ScoreSource::Computed);
            }
            Err(e) => self.fail_batch(state, items, &e),
        }
    }

    /// After a GPU gave way to the CPU mid-run: say where the model runs now, and why.
    fn after_fallback(&self, model: &Loaded, fell_back: Option<String>) {
        if let Some(note) = fell_back {
            self.announce(&model.backend, Some(note));
        }
    }

    /// Stages fresh image tokens in memory at once (a rerank right after sees them) and writes
    /// them on the decode pool, so the model goes on with the next batch.
    fn cache_behind(&self, cache: &Arc<EmbeddingCache>, entries: Vec<(ContentHash, Arc<ImageEmbedding>)>) {
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
                    let _ = events.send(ScoringEvent::Warning(WorkerWarning::CacheWrite { message: e.to_string() }));
                }
            }
        });
    }

    fn fail_batch<T>(&self, state: &mut RunState, items: Batch<T>, error: &BackendError) {
        for (job, ready) in items {
            self.fail(state, &job, Some(ready.content_hash), ItemError::Model(error.to_string()));
        }
        self.report_finished(state);
    }

    /// Saves a batch's scores in one transaction and reports them.
    fn finish_batch<T>(
        &self,
        state: &mut RunState,
        model: &Loaded,
        store: Option<&Arc<Mutex<Store>>>,
        items: Batch<T>,
        scores: &[f32],
        source: ScoreSource,
    ) {
        if let Some(store) = store {
            let rows: Vec<ScoreRow> = items
                .iter()
                .zip(scores)
                .map(|((_, r), s)| ScoreRow {
                    content_hash: &r.content_hash,
                    prompt: &r.prompt,
                    tokens: r.tokens.key(),
                    truncated: r.tokens.truncated,
                    value: f64::from(*s),
                })
                .collect();
            let saved =
                store.lock().unwrap_or_else(PoisonError::into_inner).record_scores(model.backend.model_id(), &rows);
            if let Err(e) = saved {
                self.warn(WorkerWarning::ScoresNotSaved { message: e.to_string() });
            }
        }
        for ((job, ready), score) in items.into_iter().zip(scores) {
            self.scored(state, &job, ready.content_hash, ready.prompt, f64::from(*score), source);
        }
        let (done, total) = state.schedule.progress();
        let elapsed = state.started.map_or(0.0, |s| s.elapsed().as_secs_f64());
        let rate = if elapsed > 0.0 { done as f64 / elapsed } else { 0.0 };
        let left = total.saturating_sub(done) as f64;
        self.emit(ScoringEvent::Progress(Progress {
            done,
            total,
            images_per_sec: rate,
            eta_secs: if rate > 0.0 { left / rate } else { 0.0 },
        }));
        self.report_finished(state);
    }

    fn scored(
        &self,
        state: &mut RunState,
        job: &Job<PrepareInput>,
        content_hash: ContentHash,
        prompt: String,
        score: f64,
        source: ScoreSource,
    ) {
        state.schedule.scored(job.ticket);
        state.pending_scored.push(ScoreResult {
            ticket: job.ticket,
            path: job.input.path.clone(),
            content_hash,
            prompt,
            score,
            source,
        });
    }

    /// Sends the scores gathered since the last call as one event.
    fn flush_scored(&self, state: &mut RunState) {
        if !state.pending_scored.is_empty() {
            self.emit(ScoringEvent::Scored(std::mem::take(&mut state.pending_scored)));
        }
    }

    fn fail(&self, state: &mut RunState, job: &Job<PrepareInput>, content_hash: Option<ContentHash>, error: ItemError) {
        // Scores gathered before this failure go first, in order.
        self.flush_scored(state);
        state.schedule.failed(job.ticket);
        let content_hash = content_hash.or_else(|| job.input.content_hash.clone());
        self.emit(ScoringEvent::Failed(ItemFailure {
            ticket: job.ticket,
            path: job.input.path.clone(),
            content_hash,
            error,
        }));
        self.report_finished(state);
    }

    /// Sends the pending scores, then `Finished` for every request the scheduler has closed (so a
    /// request's last score always comes before its `Finished`).
    fn report_finished(&self, state: &mut RunState) {
        self.flush_scored(state);
        for f in state.schedule.take_finished() {
            self.emit(ScoringEvent::Finished {
                ticket: f.ticket,
                scored: f.scored,
                failed: f.failed,
                dropped: f.dropped,
            });
        }
    }
}
