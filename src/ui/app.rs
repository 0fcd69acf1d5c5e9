//! The one [`App`]: its persisted [`Settings`], the handles of its workers, and what the screens
//! show. Each frame it drains the workers' events within a budget, draws the panels (which read
//! this state and queue [`Command`]s), then applies the commands. Nothing here touches the disk,
//! the database or the model: every slow thing is a message to a worker.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use egui::{Key, Modifiers};

use crate::image_file::{ContentHash, has_image_extension};
use crate::library::groups::{GroupBy, Leaderboard, PromptGroup};
use crate::library::metadata::{GenerationParams, prompt_group_key};
use crate::library::query::{GroupsAnswer, LibraryEvent, Operation, ReadKind};
use crate::library::thumbnails::{ThumbnailEvent, ThumbnailRequest};
use crate::library::views::{SlimRow, View, ViewFilter, ViewOrder, ViewQuery};
use crate::library::watch::{FolderStatus, WatchEvent};
use crate::model::hub::Progress as DownloadProgress;
use crate::model::locate::ModelOrigin;
use crate::scoring::{ModelState, Priority, Progress, ScoreItem, ScoreRequest, ScoringEvent, Ticket, WorkerWarning};
use crate::wake::Waker;

use super::backends::{AppConfig, Backends};
use super::cull_dialog::CullDialog;
use super::export_dialog::ExportDialog;
use super::full_images::{FullImageEvent, Wanted};
use super::jobs::{DialogPurpose, JobEvent, PromptSource, SelectionAction, TrashItem};
use super::model_fetch::FetchEvent;
use super::settings::{self, Settings, SortKey, Theme};
use super::textures::{TextureCache, TextureKey, UPLOAD_BUDGET};

/// The most time one frame spends draining worker events.
pub const EVENT_BUDGET: Duration = Duration::from_millis(8);

/// Messages kept for the log panel; the oldest tenth goes when it is full.
pub const MAX_MESSAGES: usize = 10_000;

/// Prompt groups whose best image's thumbnail the sidebar shows.
pub const SIDEBAR_GROUP_THUMBS: usize = 60;

/// Rows held before the far ones are dropped (a row is a few hundred bytes).
const MAX_ROWS: usize = 20_000;

/// How long a toast stays.
pub const TOAST_SECS: f32 = 6.0;

/// How often scrolling may re-aim the scoring of what is on screen.
const VISIBLE_RESCORE: Duration = Duration::from_millis(150);

/// Rows asked for with the first view, before the grid knows how many cells fit.
const FIRST_SCREEN_ROWS: usize = 128;

/// The shortest time between two view refreshes that follow library changes (a scoring run
/// changes the library five times a second; each refresh re-reads the whole view).
const VIEW_REFRESH: Duration = Duration::from_millis(500);

/// The shortest time between two requests for prompt groups and the leaderboard.
const GROUPS_REFRESH: Duration = Duration::from_millis(1500);

/// How long a thumbnail ask stands before it is repeated.
const THUMB_RETRY: Duration = Duration::from_secs(3);

/// How long settings changes wait before they are written (a drag of the size slider is one save).
const SETTINGS_SAVE_DELAY: Duration = Duration::from_secs(1);

/// Which screen fills the window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Screen {
    /// The thumbnail grid (with the sidebar and details panel).
    Grid,
    /// One image, large.
    Viewer,
    /// The checkpoint leaderboard.
    Leaderboard,
}

/// How bad a message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// Something happened (a folder added, files trashed).
    Info,
    /// Something did not happen as asked, but the app goes on.
    Warning,
    /// Something failed.
    Error,
}

/// One line of the session's log (and a toast while it is fresh).
#[derive(Debug, Clone)]
pub struct Message {
    /// How bad.
    pub level: Level,
    /// What, naming the file where there is one.
    pub text: String,
    /// Wall-clock time, `HH:MM:SS` UTC.
    pub clock: String,
    /// When, for the toast's lifetime; `None` for messages that are not toasted.
    pub at: Option<Instant>,
}

/// The model as the app sees it.
#[derive(Debug, Clone)]
pub enum ModelStatus {
    /// No model folder set: everything but scores works.
    Missing,
    /// Loading.
    Loading(PathBuf),
    /// Ready.
    Ready {
        /// The id its scores are stored under.
        model_id: String,
        /// Where it runs, in words (`"CPU f32, batch 8"`).
        runs_on: String,
        /// Why it is not where it was asked to be, if so.
        note: Option<String>,
    },
    /// It failed to load; scores are off until another is set.
    Failed {
        /// The folder asked for.
        path: PathBuf,
        /// Why, in words.
        error: String,
    },
}

/// Finding or downloading a model, as the banner shows it.
#[derive(Debug, Clone, Default)]
pub enum FetchState {
    /// Nothing asked, or a model is set.
    #[default]
    Idle,
    /// Looking in the Python tools' cache folders.
    Locating,
    /// None found; what each place holds.
    NotFound(String),
    /// Downloading; the latest progress.
    Downloading(Option<DownloadProgress>),
    /// Cancelled by the user; what arrived is kept.
    Paused(Option<DownloadProgress>),
    /// Stopped on an error; what arrived is kept unless it was corrupt.
    Failed(String),
}

/// A rerank by a prompt, under way or done.
#[derive(Debug, Clone)]
pub struct Rerank {
    /// The prompt.
    pub prompt: String,
}

/// Something a panel asked for, applied after the frame is drawn.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// Ask for the view again (the filter, order or model changed).
    RefreshView,
    /// Open this screen.
    Show(Screen),
    /// Move the cursor to this position of the view (and select it alone unless extending).
    MoveCursor {
        /// The position.
        index: usize,
        /// Shift held: extend the selection from the anchor.
        extend: bool,
        /// Ctrl held: toggle this one in the selection.
        toggle: bool,
    },
    /// Rerank the view by this prompt.
    Rerank(String),
    /// Back to each image's own prompt; a rerank under way stops.
    ClearRerank,
    /// Toggle favorite on the selection.
    ToggleFavorite,
    /// Set (or clear, with `None`) the overall rating of the selection.
    Rate(Option<u8>),
    /// Ask before moving the selection to the trash.
    AskTrash,
    /// Move these files to the trash (the user said yes).
    Trash(Vec<TrashItem>),
    /// Put the selected files on the clipboard.
    CopyFiles,
    /// Put the cursor image's prompt on the clipboard.
    CopyPrompt,
    /// Show one prompt group (by key), or all images.
    PromptGroup(Option<String>),
    /// Open the folder dialog.
    PickFolder(DialogPurpose),
    /// Add a folder to the library.
    AddFolder(PathBuf),
    /// Remove a folder from the library (files untouched).
    RemoveFolder(PathBuf),
    /// Load the model the settings now name.
    ApplyModel,
    /// Download (or resume downloading) the published model into the hub cache.
    DownloadModel,
    /// Stop the download; what arrived is kept.
    CancelDownload,
    /// Start the export the export dialog describes.
    Export,
    /// Show the images the cull dialog's rule takes, for review.
    CullReview,
    /// Leave the cull review: the view as it was.
    EndCullReview,
    /// Read a rerank prompt from somewhere.
    ReadPrompt(PromptSource),
    /// Change the thumbnail size by this many points.
    ThumbSize(f32),
}

/// The one app.
pub struct App {
    // Persisted.
    pub(super) settings: Settings,
    saved_settings: Settings,
    settings_dirty_since: Option<Instant>,
    config: AppConfig,
    // Workers.
    pub(super) backends: Backends,
    // What is shown.
    pub(super) screen: Screen,
    pub(super) query: ViewQuery,
    pub(super) view: Arc<View>,
    pub(super) view_pending: bool,
    pub(super) view_received: bool,
    /// The query of the view on screen (a new one may be awaited).
    shown_query: Option<ViewQuery>,
    /// The viewer's last wish list, so it is sent only when it changes.
    full_asked: Vec<ContentHash>,
    /// The library changed since the view was last asked for (throttled while scoring).
    view_due: bool,
    view_asked_at: Option<Instant>,
    /// Prompt groups and the leaderboard are due to be asked for again (throttled while scoring).
    groups_due: bool,
    groups_asked_at: Option<Instant>,
    pub(super) rows: HashMap<i64, (u64, SlimRow)>,
    pub(super) rows_epoch: u64,
    rows_asked: Vec<i64>,
    /// Rewards against each image's own prompt, kept while a rerank shows another.
    pub(super) own_rewards: HashMap<i64, f64>,
    pub(super) cursor: usize,
    /// Whether the user put the cursor where it is (then it follows its image through reorders).
    cursor_placed: bool,
    pub(super) anchor: usize,
    pub(super) selected: BTreeSet<i64>,
    pub(super) scroll_to_cursor: bool,
    pub(super) grid_columns: usize,
    pub(super) grid_rows_visible: usize,
    pub(super) visible: std::ops::Range<usize>,
    pub(super) groups: Vec<PromptGroup>,
    pub(super) leaderboard: Leaderboard,
    pub(super) params: Option<(i64, Option<Box<GenerationParams>>)>,
    params_asked: Option<i64>,
    pub(super) folders: Vec<FolderStatus>,
    pub(super) scans: HashMap<PathBuf, (usize, usize)>,
    pub(super) model: ModelStatus,
    /// Finding or downloading a model.
    pub(super) fetch: FetchState,
    /// The export dialog and the export under way.
    pub(super) export: ExportDialog,
    /// The cull dialog and its review.
    pub(super) cull: CullDialog,
    /// A model found in a cache folder (or downloaded), used when none is set.
    pub(super) found_model: Option<(PathBuf, ModelOrigin)>,
    pub(super) progress: Option<Progress>,
    pub(super) scoring_failures: HashMap<ContentHash, String>,
    pub(super) thumb_failures: HashMap<ContentHash, String>,
    pub(super) full_failures: HashMap<ContentHash, String>,
    /// Thumbnails asked for, and when: asked again after [`THUMB_RETRY`] if still missing (the
    /// thumbnailer drops the oldest asks when a fast scroll outruns it).
    thumbs_asked: HashMap<(ContentHash, u32), Instant>,
    thumb_generation: u64,
    pub(super) textures: TextureCache,
    pub(super) messages: Vec<Message>,
    pub(super) log_open: bool,
    pub(super) help_open: bool,
    pub(super) settings_open: bool,
    pub(super) confirm_trash: Option<Vec<TrashItem>>,
    pub(super) prompt_input: String,
    pub(super) rerank: Option<Rerank>,
    pub(super) filter_text: String,
    pub(super) jump_input: String,
    pub(super) model_input: String,
    pub(super) prompt_box_rect: Option<egui::Rect>,
    pub(super) focus_filter: bool,
    pub(super) focus_rerank: bool,
    pub(super) prompt_box_focused: bool,
    pub(super) viewer_zoom: Option<f32>,
    pub(super) viewer_pan: egui::Vec2,
    visible_scored_asked: Option<(Vec<i64>, Instant)>,
    /// Scoring requests sent and not yet finished; none left means the worker is idle.
    tickets: HashSet<Ticket>,
    /// The model folder given on the command line: used for this run, not saved.
    pub(super) model_override: Option<PathBuf>,
    /// The benchmark, when the app runs as one.
    pub(super) bench: Option<super::bench::BenchState>,
    /// The grid's largest scroll offset, for the benchmark's scroll.
    pub(super) grid_max_offset: f32,
    /// The app's own time in the last frame, ms.
    last_app_ms: f64,
    library_scoring_asked: bool,
    pub(super) commands: Vec<Command>,
    pub(super) frame_times: Vec<f32>,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App").field("screen", &self.screen).field("images", &self.view.len()).finish_non_exhaustive()
    }
}

impl App {
    /// Builds the app: loads the settings (a damaged file is reported, never fatal), starts the
    /// workers, and asks for the first view.
    pub fn new(cc: &eframe::CreationContext<'_>, config: AppConfig) -> anyhow::Result<Self> {
        let ctx = cc.egui_ctx.clone();
        let loaded = match &config.settings_path {
            Some(path) => settings::load(path),
            None => settings::Loaded { settings: Settings::default(), problem: None },
        };
        let mut settings = loaded.settings;
        for folder in &config.folders {
            if !settings.folders.contains(folder) {
                settings.folders.push(folder.clone());
            }
        }
        let repaint = ctx.clone();
        let waker = Waker::new(move || repaint.request_repaint());
        let mut folders = settings.folders.clone();
        folders.retain(|f| !config.folders.contains(f));
        folders.extend(config.folders.iter().cloned());
        let (backends, problems) = Backends::start(&config, folders, settings.thumb_cache_mib * 1024 * 1024, waker)?;
        ctx.options_mut(|o| o.zoom_with_keyboard = false);
        let texture_cap = settings.texture_cache_mib as usize * 1024 * 1024;
        let model_override = config.model.clone();
        let bench = config.bench.clone().map(super::bench::BenchState::new);
        let mut app = Self {
            saved_settings: settings.clone(),
            settings_dirty_since: None,
            model_input: config
                .model
                .as_ref()
                .or(settings.model_dir.as_ref())
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
            settings,
            config,
            backends,
            screen: Screen::Grid,
            query: ViewQuery::default(),
            view: Arc::new(View::default()),
            view_pending: false,
            view_received: false,
            shown_query: None,
            full_asked: Vec::new(),
            view_due: false,
            view_asked_at: None,
            groups_due: true,
            groups_asked_at: None,
            rows: HashMap::new(),
            rows_epoch: 0,
            rows_asked: Vec::new(),
            own_rewards: HashMap::new(),
            cursor: 0,
            cursor_placed: false,
            anchor: 0,
            selected: BTreeSet::new(),
            scroll_to_cursor: false,
            grid_columns: 1,
            grid_rows_visible: 1,
            visible: 0..0,
            groups: Vec::new(),
            leaderboard: Leaderboard::default(),
            params: None,
            params_asked: None,
            folders: Vec::new(),
            scans: HashMap::new(),
            model: ModelStatus::Missing,
            fetch: FetchState::Idle,
            export: ExportDialog::default(),
            cull: CullDialog::default(),
            found_model: None,
            progress: None,
            scoring_failures: HashMap::new(),
            thumb_failures: HashMap::new(),
            full_failures: HashMap::new(),
            thumbs_asked: HashMap::new(),
            thumb_generation: 0,
            textures: TextureCache::new(texture_cap),
            messages: Vec::new(),
            log_open: false,
            help_open: false,
            settings_open: false,
            confirm_trash: None,
            prompt_input: String::new(),
            rerank: None,
            filter_text: String::new(),
            jump_input: String::new(),
            prompt_box_rect: None,
            focus_filter: false,
            focus_rerank: false,
            prompt_box_focused: false,
            viewer_zoom: None,
            viewer_pan: egui::Vec2::ZERO,
            visible_scored_asked: None,
            tickets: HashSet::new(),
            model_override: None,
            bench: None,
            grid_max_offset: 0.0,
            last_app_ms: 0.0,
            library_scoring_asked: false,
            commands: Vec::new(),
            frame_times: Vec::new(),
        };
        app.model_override = model_override;
        app.bench = bench;
        if let Some(problem) = loaded.problem {
            app.log(Level::Warning, problem);
        }
        for problem in problems {
            app.log(Level::Warning, problem);
        }
        app.apply_theme(&ctx);
        if app.model_override.is_some() || app.settings.model_dir.is_some() {
            app.start_model();
        } else if let Some(fetch) = &app.backends.fetch {
            // No model set: look where the Python tools keep it (off this thread).
            fetch.locate();
            app.fetch = FetchState::Locating;
        }
        app.refresh_view();
        app.refresh_groups();
        Ok(app)
    }

    /// The settings as they are now (tests and the bench read them).
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The current view (tests read it).
    pub fn view(&self) -> &View {
        &self.view
    }

    /// Whether the first view has arrived and none is awaited.
    pub fn view_settled(&self) -> bool {
        self.view_received && !self.view_pending
    }

    /// The row of an image, when fetched (tests read it).
    pub fn row(&self, image_id: i64) -> Option<&SlimRow> {
        self.rows.get(&image_id).map(|(_, row)| row)
    }

    /// The last export's counts (exported, already there, failed), or its error (tests read it).
    pub fn export_outcome(&self) -> Option<Result<(usize, usize, usize), String>> {
        self.export
            .last
            .as_ref()
            .map(|r| r.as_ref().map(|r| (r.exported, r.skipped, r.failed.len())).map_err(Clone::clone))
    }

    /// Finding or downloading a model (tests read it).
    pub fn fetch_state(&self) -> &FetchState {
        &self.fetch
    }

    /// The screen shown.
    pub fn screen(&self) -> Screen {
        self.screen
    }

    /// The cursor's position in the view.
    pub fn cursor(&self) -> usize {
        self.cursor
    }

    /// Selected images (by id).
    pub fn selected(&self) -> &BTreeSet<i64> {
        &self.selected
    }

    /// The model's state.
    pub fn model_status(&self) -> &ModelStatus {
        &self.model
    }

    /// The rerank, when one is set.
    pub fn rerank(&self) -> Option<&Rerank> {
        self.rerank.as_ref()
    }

    /// A rerank under way: images of the view scored against its prompt, of all.
    pub fn rerank_progress(&self) -> Option<(usize, usize)> {
        let reranking = self.rerank.is_some() && self.query.reward_prompt().is_some();
        let scorable = matches!(self.model, ModelStatus::Ready { .. });
        // Unreadable images never get a score: the rerank is over when the worker has nothing left.
        let working = !self.tickets.is_empty();
        (reranking && scorable && working && self.view.scored < self.view.len())
            .then_some((self.view.scored, self.view.len()))
    }

    /// The session's messages.
    pub fn messages(&self) -> &[Message] {
        &self.messages
    }

    /// The watched folders.
    pub fn folders(&self) -> &[FolderStatus] {
        &self.folders
    }

    /// The prompt groups shown in the sidebar.
    pub fn prompt_groups(&self) -> &[PromptGroup] {
        &self.groups
    }

    /// The checkpoint leaderboard.
    pub fn leaderboard(&self) -> &Leaderboard {
        &self.leaderboard
    }

    /// Scoring progress, when scoring.
    pub fn progress(&self) -> Option<Progress> {
        self.progress
    }

    /// Textures held by the bounded cache, and their bytes.
    pub fn texture_stats(&self) -> (usize, usize) {
        (self.textures.len(), self.textures.bytes())
    }

    /// Frame durations measured so far, in milliseconds (the bench reads them).
    pub fn frame_times(&self) -> &[f32] {
        &self.frame_times
    }

    /// Images the thumbnailer has yet to make (the bench waits on it).
    pub fn thumbnails_queued(&self) -> usize {
        self.backends.thumbs.as_ref().map_or(0, |t| t.queued())
    }

    /// Queues a command, as a panel does (tests use it for actions that have no widget of their own).
    pub fn command(&mut self, command: Command) {
        self.commands.push(command);
    }

    // ---- messages ----

    pub(super) fn log(&mut self, level: Level, text: impl Into<String>) {
        self.push_message(Message { level, text: text.into(), clock: clock_now(), at: Some(Instant::now()) });
    }

    fn push_message(&mut self, message: Message) {
        if self.messages.len() >= MAX_MESSAGES {
            self.messages.drain(..MAX_MESSAGES / 10);
        }
        self.messages.push(message);
    }

    /// Logs without a toast: for what the screen already shows.
    pub(super) fn log_quiet(&mut self, level: Level, text: impl Into<String>) {
        self.push_message(Message { level, text: text.into(), clock: clock_now(), at: None });
    }

    // ---- settings ----

    fn settings_changed(&mut self) {
        if self.settings != self.saved_settings && self.settings_dirty_since.is_none() {
            self.settings_dirty_since = Some(Instant::now());
        }
    }

    fn save_settings_if_due(&mut self, now: bool) {
        let due = self.settings_dirty_since.is_some_and(|t| now || t.elapsed() >= SETTINGS_SAVE_DELAY);
        if !due {
            return;
        }
        self.settings_dirty_since = None;
        if self.settings == self.saved_settings {
            return;
        }
        self.saved_settings = self.settings.clone();
        if let Some(path) = &self.config.settings_path {
            self.backends.jobs.save_settings(path.clone(), self.settings.clone());
        }
    }

    pub(super) fn apply_theme(&self, ctx: &egui::Context) {
        ctx.set_theme(match self.settings.theme {
            Theme::System => egui::ThemePreference::System,
            Theme::Dark => egui::ThemePreference::Dark,
            Theme::Light => egui::ThemePreference::Light,
        });
    }

    // ---- the view ----

    /// The model whose rewards are shown.
    pub(super) fn model_id(&self) -> Option<String> {
        match &self.model {
            ModelStatus::Ready { model_id, .. } => Some(model_id.clone()),
            _ => None,
        }
    }

    fn build_query(&self) -> ViewQuery {
        let mut filter = self.query.filter.clone();
        filter.text = Some(self.filter_text.trim().to_string()).filter(|t| !t.is_empty());
        let model_id = self.model_id();
        let in_group = filter.prompt_group.is_some();
        let order = match (&self.rerank, self.settings.sort) {
            (Some(rerank), _) if model_id.is_some() => ViewOrder::RewardFor(rerank.prompt.clone()),
            // A prompt group is there to be ranked.
            _ if in_group && model_id.is_some() => ViewOrder::Reward,
            (_, SortKey::Reward) if model_id.is_some() => ViewOrder::Reward,
            // No model: rewards cannot order anything, so newest first.
            (_, SortKey::Reward | SortKey::Date) => ViewOrder::Date,
            (_, SortKey::Name) => ViewOrder::Name,
            (_, SortKey::Rating) => ViewOrder::Rating,
        };
        ViewQuery { filter, order, reverse: self.settings.reverse, model_id }
    }

    pub(super) fn refresh_view(&mut self) {
        let query = self.build_query();
        if query != self.query {
            // Another view: thumbnails queued for the old one are no longer wanted first.
            self.new_thumbnail_generation();
        }
        self.query = query;
        // The rows of the screen the view lands on come with it (a guess until the grid has been
        // laid out once: the top).
        let head = if self.visible.is_empty() { 0..FIRST_SCREEN_ROWS } else { self.visible.clone() };
        self.backends.library.view_with_rows(self.query.clone(), head);
        self.view_pending = true;
        self.view_due = false;
        self.view_asked_at = Some(Instant::now());
    }

    /// Refreshes the view after library changes, at most every [`VIEW_REFRESH`], and never over
    /// a view still computing (a newer request would make its answer stale: at start, while the
    /// watcher's rescan commits, the first view would never arrive).
    fn refresh_view_if_due(&mut self, ctx: &egui::Context) {
        if !self.view_due || self.view_pending {
            return;
        }
        if let Some(at) = self.view_asked_at
            && at.elapsed() < VIEW_REFRESH
        {
            ctx.request_repaint_after(VIEW_REFRESH - at.elapsed());
            return;
        }
        self.refresh_view();
    }

    fn refresh_groups(&mut self) {
        self.groups_due = true;
    }

    /// Asks for the prompt groups and the leaderboard when due, at most every
    /// [`GROUPS_REFRESH`] (a scoring run changes the library five times a second).
    fn ask_groups_if_due(&mut self, ctx: &egui::Context) {
        if !self.groups_due {
            return;
        }
        if let Some(at) = self.groups_asked_at
            && at.elapsed() < GROUPS_REFRESH
        {
            ctx.request_repaint_after(GROUPS_REFRESH - at.elapsed());
            return;
        }
        self.groups_due = false;
        self.groups_asked_at = Some(Instant::now());
        let query = ViewQuery {
            filter: ViewFilter::default(),
            order: ViewOrder::Reward,
            reverse: false,
            model_id: self.model_id(),
        };
        self.backends.library.groups(GroupBy::Prompt, query.clone());
        self.backends.library.groups(GroupBy::Checkpoint, query);
    }

    /// The view's image id at a position.
    pub(super) fn image_at(&self, index: usize) -> Option<i64> {
        self.view.entries.get(index).map(|e| e.image_id)
    }

    /// The row at the cursor, when fetched.
    pub(super) fn cursor_row(&self) -> Option<&SlimRow> {
        self.image_at(self.cursor).and_then(|id| self.row(id))
    }

    /// Does `action` on the selection (the cursor's image when nothing is selected): at once
    /// when the app holds every selected row, else once the errand thread has read them (a
    /// Shift+End selection can cover more images than the app keeps rows for).
    fn on_selection(&mut self, action: SelectionAction) {
        let ids: Vec<i64> = if self.selected.is_empty() {
            self.image_at(self.cursor).into_iter().collect()
        } else {
            self.selected.iter().copied().collect()
        };
        let rows: Vec<SlimRow> = ids.iter().filter_map(|id| self.row(*id).cloned()).collect();
        if rows.len() == ids.len() {
            self.do_on_rows(action, rows);
        } else {
            self.log(Level::Info, format!("reading {} selected images…", ids.len()));
            self.backends.jobs.resolve_selection(action, ids, self.query.clone());
        }
    }

    /// Does `action` on these rows.
    fn do_on_rows(&mut self, action: SelectionAction, rows: Vec<SlimRow>) {
        match action {
            SelectionAction::ToggleFavorite => {
                let make = !rows.iter().all(|r| r.favorite);
                for row in rows {
                    if let Some(hash) = row.content_hash {
                        self.backends.library.set_favorite(hash, make);
                    }
                }
            }
            SelectionAction::Rate(overall) => {
                for row in rows {
                    if let Some(hash) = row.content_hash {
                        self.backends.library.set_overall_rating(hash, overall);
                    }
                }
            }
            SelectionAction::AskTrash => {
                let items: Vec<TrashItem> = rows
                    .into_iter()
                    .filter(|r| !r.missing)
                    .map(|r| TrashItem { path: r.path, content_hash: r.content_hash })
                    .collect();
                if !items.is_empty() {
                    self.confirm_trash = Some(items);
                }
            }
            SelectionAction::CopyFiles => {
                let paths: Vec<PathBuf> = rows.into_iter().map(|r| r.path).collect();
                if !paths.is_empty() {
                    self.backends.jobs.copy_files(paths);
                }
            }
        }
    }

    /// Asks for rows the screen needs that are missing or older than the last change.
    pub(super) fn want_rows(&mut self, range: std::ops::Range<usize>) {
        let end = range.end.min(self.view.len());
        if self.rows.len() > MAX_ROWS {
            // A long scroll has fetched rows far behind: keep those near the screen and the
            // selection, so memory stays bounded however far the user scrolls.
            let keep_from = range.start.min(end).saturating_sub(MAX_ROWS / 4);
            let keep_to = (end + MAX_ROWS / 4).min(self.view.len());
            let near: HashSet<i64> = self.view.entries[keep_from..keep_to].iter().map(|e| e.image_id).collect();
            let selected = &self.selected;
            self.rows.retain(|id, _| near.contains(id) || selected.contains(id));
        }
        // The best image of each prompt group listed in the sidebar rides along (its thumbnail).
        let group_bests = self.groups.iter().take(SIDEBAR_GROUP_THUMBS).filter_map(|g| g.best_image_id);
        let ids: Vec<i64> = self.view.entries[range.start.min(end)..end]
            .iter()
            .map(|e| e.image_id)
            .chain(group_bests)
            .filter(|id| self.rows.get(id).is_none_or(|(epoch, _)| *epoch < self.rows_epoch))
            .collect();
        if ids.is_empty() || ids == self.rows_asked {
            return;
        }
        self.rows_asked = ids.clone();
        self.backends.library.rows(ids, self.query.clone());
    }

    /// Asks for thumbnails of these rows, the last ones first (the thumbnailer runs the newest
    /// request first, so callers pass the prefetch before what is on screen).
    pub(super) fn want_thumbnails(&mut self, ids: &[i64], side: u32) {
        let Some(thumbs) = &self.backends.thumbs else { return };
        for id in ids {
            let Some((_, row)) = self.rows.get(id) else { continue };
            let Some(hash) = &row.content_hash else { continue };
            if row.missing || row.error.is_some() || self.thumb_failures.contains_key(hash) {
                continue;
            }
            let key = (hash.clone(), side);
            let recently = self.thumbs_asked.get(&key).is_some_and(|at| at.elapsed() < THUMB_RETRY);
            if recently || self.textures.has(&TextureKey::Thumb(hash.clone(), side)) {
                continue;
            }
            if self.thumbs_asked.len() > 50_000 {
                self.thumbs_asked.retain(|_, at| at.elapsed() < THUMB_RETRY);
            }
            self.thumbs_asked.insert(key, Instant::now());
            thumbs.request(ThumbnailRequest {
                content_hash: hash.clone(),
                path: row.path.clone(),
                side,
                generation: self.thumb_generation,
            });
        }
    }

    /// Scores what is on screen first: unscored visible images go to the worker at the highest
    /// priority (making older on-screen work stale), then the rest of the view behind them.
    pub(super) fn score_visible(&mut self) {
        let Some(worker) = &self.backends.scoring else { return };
        if self.model_id().is_none() {
            return;
        }
        let end = self.visible.end.min(self.view.len());
        let unscored: Vec<i64> = self.view.entries[self.visible.start.min(end)..end]
            .iter()
            .filter(|e| e.reward.is_none())
            .map(|e| e.image_id)
            .collect();
        if unscored.is_empty() {
            return;
        }
        if let Some((asked, at)) = &self.visible_scored_asked
            && (asked == &unscored || at.elapsed() < VISIBLE_RESCORE)
        {
            return;
        }
        let items: Vec<ScoreItem> = unscored
            .iter()
            .filter_map(|id| self.rows.get(id))
            .filter(|(_, row)| !row.missing && row.error.is_none())
            .filter(|(_, row)| row.content_hash.as_ref().is_none_or(|h| !self.scoring_failures.contains_key(h)))
            .map(|(_, row)| ScoreItem {
                path: row.path.clone(),
                content_hash: row.content_hash.clone(),
                own_prompt: row.prompt.clone(),
            })
            .collect();
        if items.is_empty() {
            return;
        }
        self.visible_scored_asked = Some((unscored, Instant::now()));
        let prompt = self.rerank.as_ref().map(|r| r.prompt.clone());
        let request = ScoreRequest { items, prompt, priority: Priority::Visible, supersede: true };
        if let Ok(visible) = worker.try_submit(request) {
            let rest = worker.score_view(self.query.clone(), Priority::View, false);
            self.tickets.insert(visible);
            if let Ok(ticket) = rest {
                self.tickets.insert(ticket);
            }
        }
    }

    fn score_library(&mut self) {
        let Some(worker) = &self.backends.scoring else { return };
        let Some(model_id) = self.model_id() else { return };
        let library = ViewQuery { model_id: Some(model_id), ..ViewQuery::default() };
        let tickets = [
            worker.score_view(self.query.clone(), Priority::View, true),
            worker.score_view(library, Priority::Library, false),
        ];
        self.tickets.extend(tickets.into_iter().flatten());
        self.library_scoring_asked = true;
    }

    pub(super) fn start_model(&mut self) {
        let mut settings = self.settings.clone();
        if let Some(path) = &self.model_override {
            settings.model_dir = Some(path.clone());
        } else if settings.model_dir.is_none() {
            settings.model_dir = self.found_model.as_ref().map(|(path, _)| path.clone());
        }
        let Some(spec) = settings.model_spec() else {
            self.model = ModelStatus::Missing;
            return;
        };
        self.tickets.clear();
        self.own_rewards.clear();
        let cache_bytes = (self.settings.embedding_cache_gib * 1024.0 * 1024.0 * 1024.0) as u64;
        self.model = ModelStatus::Loading(spec.path.clone());
        self.progress = None;
        self.scoring_failures.clear();
        if let Err(e) = self.backends.set_model(spec.clone(), cache_bytes) {
            self.model =
                ModelStatus::Failed { path: spec.path, error: format!("cannot start the scoring thread: {e}") };
        }
        self.refresh_view();
    }

    // ---- events ----

    /// Drains every worker's events, stopping when the frame's budget is spent (the rest waits
    /// for the next frame, which is requested).
    pub(super) fn drain_events(&mut self, ctx: &egui::Context) {
        let start = Instant::now();
        let mut more = false;
        loop {
            // One event from each worker per round, so none starves the others.
            let mut any = false;
            if let Ok(event) = self.backends.library_events.try_recv() {
                self.on_library(event);
                any = true;
            }
            if let Some(event) = next(&self.backends.watch_events) {
                self.on_watch(event);
                any = true;
            }
            if let Some(event) = next(&self.backends.scoring_events) {
                self.on_scoring(event);
                any = true;
            }
            if let Some(event) = next(&self.backends.thumb_events) {
                self.on_thumbnail(event);
                any = true;
            }
            if let Some(event) = next(&self.backends.full_events) {
                self.on_full_image(event);
                any = true;
            }
            if let Ok(event) = self.backends.job_events.try_recv() {
                self.on_job(event);
                any = true;
            }
            if let Some(event) = next(&self.backends.fetch_events) {
                self.on_fetch(event);
                any = true;
            }
            if !any {
                break;
            }
            if start.elapsed() >= EVENT_BUDGET {
                more = true;
                break;
            }
        }
        if more {
            ctx.request_repaint();
        }
    }

    fn on_library(&mut self, event: LibraryEvent) {
        match event {
            LibraryEvent::View { generation, view } => {
                if generation < self.backends.library.latest(ReadKind::View) {
                    return;
                }
                if let Some(bench) = &mut self.bench {
                    bench.milestone("view arrived");
                }
                self.view_pending = false;
                self.view_received = true;
                let cursor_image = self.image_at(self.cursor);
                let same_query = self.shown_query.as_ref() == Some(&self.query);
                self.view = view;
                self.shown_query = Some(self.query.clone());
                self.rows_epoch += 1;
                self.rows_asked.clear();
                // Once the user has moved it, the cursor stays on its image while scores reorder
                // the view around it; until then it stays at the top (the best).
                if same_query
                    && self.cursor_placed
                    && let Some(id) = cursor_image
                    && let Some(index) = self.view.entries.iter().position(|e| e.image_id == id)
                {
                    if index != self.cursor {
                        self.anchor = index;
                    }
                    self.cursor = index;
                } else if !same_query {
                    self.scroll_to_cursor = true;
                    self.cursor_placed = false;
                }
                let last = self.view.len().saturating_sub(1);
                self.cursor = self.cursor.min(last);
                self.anchor = self.anchor.min(last);
                if !self.selected.is_empty() {
                    let present: HashSet<i64> = self.view.entries.iter().map(|e| e.image_id).collect();
                    self.selected.retain(|id| present.contains(id));
                }
                self.visible_scored_asked = None;
            }
            LibraryEvent::Rows { generation, rows } => {
                if let Some(bench) = &mut self.bench {
                    bench.milestone("rows arrived");
                }
                let latest = generation >= self.backends.library.latest(ReadKind::Rows);
                for row in rows {
                    if self.rerank.is_none()
                        && let Some(reward) = row.reward
                    {
                        self.own_rewards.insert(row.image_id, reward);
                    }
                    self.rows.insert(row.image_id, (self.rows_epoch, row));
                }
                if latest {
                    // Ids asked for and not answered are gone from the library; a new view follows.
                    self.rows_asked.clear();
                }
            }
            LibraryEvent::Groups { groups, .. } => match groups {
                GroupsAnswer::Prompt(groups) => self.groups = groups,
                GroupsAnswer::Checkpoint(board) => self.leaderboard = board,
            },
            LibraryEvent::Params { image_id, params, .. } => {
                self.params = Some((image_id, params));
            }
            LibraryEvent::Edited(_) => {}
            LibraryEvent::Changed => {
                self.view_due = true;
                self.refresh_groups();
            }
            LibraryEvent::Failed { what, error } => {
                if let Operation::Read { kind: ReadKind::View, generation } = &what
                    && *generation >= self.backends.library.latest(ReadKind::View)
                {
                    // Its answer will not come; the next refresh may ask again.
                    self.view_pending = false;
                }
                self.log(Level::Error, format!("{what}: {error}"));
            }
            LibraryEvent::Stopped => self.log(Level::Error, "the library thread stopped; restart RewardLens"),
        }
    }

    fn on_watch(&mut self, event: WatchEvent) {
        match event {
            WatchEvent::Folders(folders) => self.folders = folders,
            WatchEvent::ScanProgress { folder, done, total } => {
                self.scans.insert(folder, (done, total));
            }
            WatchEvent::Scanned { folder, report } => {
                self.scans.remove(&folder);
                for issue in &report.issues {
                    self.log(Level::Warning, format!("{}: {}", issue.path.display(), issue.reason));
                }
                if report.added > 0 {
                    self.log(Level::Info, format!("{}: {} new images", folder.display(), report.added));
                }
                self.score_library();
            }
            WatchEvent::Updated { report, .. } => {
                for issue in &report.issues {
                    self.log(Level::Warning, format!("{}: {}", issue.path.display(), issue.reason));
                }
                self.score_library();
            }
            WatchEvent::FolderGone { folder } => self.log(
                Level::Warning,
                format!("{} is gone (unplugged?); its images show again when it returns", folder.display()),
            ),
            WatchEvent::FolderBack { folder } => self.log(Level::Info, format!("{} is back", folder.display())),
            WatchEvent::Removed { folder } => self
                .log(Level::Info, format!("{} removed from the library (its files are untouched)", folder.display())),
            WatchEvent::Error { message } => self.log(Level::Error, message),
        }
    }

    fn on_scoring(&mut self, event: ScoringEvent) {
        match event {
            ScoringEvent::Model(ModelState::Loading { path }) => self.model = ModelStatus::Loading(path),
            ScoringEvent::Model(ModelState::Ready { model_id, device, dtype, batch, note }) => {
                let runs_on = format!("{} {dtype}, batch {batch}", device.to_string().to_uppercase());
                if let Some(note) = &note {
                    self.log(Level::Warning, format!("the model runs on the CPU: {note}"));
                }
                self.model = ModelStatus::Ready { model_id, runs_on, note };
                self.refresh_view();
                self.score_library();
            }
            ScoringEvent::Model(ModelState::Failed { path, error }) => {
                let error = error.to_string();
                self.log(Level::Error, format!("the model at {} failed to load: {error}", path.display()));
                self.model = ModelStatus::Failed { path, error };
                self.progress = None;
                self.refresh_view();
            }
            ScoringEvent::Scored(_) => {}
            ScoringEvent::Failed(failure) => {
                let text = failure.error.to_string();
                if let Some(hash) = &failure.content_hash {
                    self.scoring_failures.insert(hash.clone(), text);
                }
                self.log(Level::Warning, failure.to_string());
            }
            ScoringEvent::Progress(progress) => self.progress = Some(progress),
            ScoringEvent::Finished { ticket, .. } => {
                self.tickets.remove(&ticket);
                if self.tickets.is_empty() {
                    // Nothing asked is left: the worker is idle.
                    self.progress = None;
                }
            }
            // A long prompt is marked on its cells ("35+"); the log keeps the details, no toast.
            ScoringEvent::Warning(warning @ WorkerWarning::PromptTruncated { .. }) => {
                self.log_quiet(Level::Info, warning.to_string());
            }
            ScoringEvent::Warning(warning) => self.log(Level::Warning, warning.to_string()),
            ScoringEvent::Stopped => {
                self.tickets.clear();
                self.progress = None;
                if matches!(self.model, ModelStatus::Ready { .. } | ModelStatus::Loading(_)) {
                    let path = self.model_override.clone().or(self.settings.model_dir.clone()).unwrap_or_default();
                    self.model = ModelStatus::Failed { path, error: "the scoring worker stopped".into() };
                    self.log(Level::Error, "the scoring worker stopped; apply the model settings to start it again");
                }
            }
        }
    }

    fn on_fetch(&mut self, event: FetchEvent) {
        match event {
            FetchEvent::Located(Ok((path, origin))) => {
                self.fetch = FetchState::Idle;
                self.log(Level::Info, format!("using the ImageReward model from {origin}: {}", path.display()));
                self.found_model = Some((path, origin));
                if self.model_override.is_none() && self.settings.model_dir.is_none() {
                    self.start_model();
                }
            }
            FetchEvent::Located(Err(looked)) => {
                self.log_quiet(Level::Info, looked.clone());
                self.fetch = FetchState::NotFound(looked);
            }
            FetchEvent::Progress(p) => self.fetch = FetchState::Downloading(Some(p)),
            FetchEvent::Downloaded(Ok(dir)) => {
                self.fetch = FetchState::Idle;
                self.log(Level::Info, format!("downloaded the ImageReward model into {}", dir.display()));
                self.found_model = Some((dir, ModelOrigin::HubCache { revision: String::new() }));
                if self.model_override.is_none() && self.settings.model_dir.is_none() {
                    self.start_model();
                }
            }
            FetchEvent::Downloaded(Err(error)) => {
                self.log(Level::Error, format!("the model download stopped: {error}"));
                self.fetch = FetchState::Failed(error);
            }
            FetchEvent::Cancelled => {
                let last = match &self.fetch {
                    FetchState::Downloading(p) => p.clone(),
                    _ => None,
                };
                self.log(Level::Info, "model download paused; what arrived is kept for Resume");
                self.fetch = FetchState::Paused(last);
            }
        }
    }

    fn on_thumbnail(&mut self, event: ThumbnailEvent) {
        match event {
            ThumbnailEvent::Ready { content_hash, side, thumbnail } => {
                if let Some(bench) = &mut self.bench {
                    bench.milestone("first thumbnail arrived");
                }
                self.thumbs_asked.remove(&(content_hash.clone(), side));
                self.textures.queue(TextureKey::Thumb(content_hash, side), thumbnail);
            }
            ThumbnailEvent::Unavailable(reason) => {
                self.log(Level::Error, reason);
                self.backends.thumbs = None;
            }
            ThumbnailEvent::Failed { content_hash, path: _, reason } => {
                self.thumb_failures.insert(content_hash, reason);
            }
        }
    }

    fn on_full_image(&mut self, event: FullImageEvent) {
        match event {
            FullImageEvent::Ready { content_hash, image } => {
                self.textures.queue_image(TextureKey::Full(content_hash), image);
            }
            FullImageEvent::Failed { content_hash, reason } => {
                self.log(Level::Warning, reason.clone());
                self.full_failures.insert(content_hash, reason);
            }
        }
    }

    fn on_job(&mut self, event: JobEvent) {
        match event {
            JobEvent::SettingsNotSaved(message) => self.log(Level::Error, message),
            JobEvent::Prompt { from, result } => match result {
                Ok(prompt) => {
                    self.log(Level::Info, format!("reranking by the prompt from {from}"));
                    self.commands.push(Command::Rerank(prompt));
                }
                Err(e) => self.log(Level::Warning, e),
            },
            JobEvent::Trashed { moved, failed } => {
                for item in &moved {
                    if let Some(hash) = &item.content_hash {
                        self.textures.forget(hash);
                    }
                }
                if !moved.is_empty() {
                    self.log(Level::Info, format!("moved {} file(s) to the trash", moved.len()));
                }
                for (_, why) in failed {
                    self.log(Level::Error, why);
                }
                self.refresh_view();
            }
            JobEvent::SelectionResolved { action, rows } => match rows {
                Ok(rows) => self.do_on_rows(action, rows),
                Err(e) => self.log(Level::Error, format!("cannot read the selected images: {e}")),
            },
            JobEvent::Copied(Ok(n)) => self.log(Level::Info, format!("copied {n} file(s) to the clipboard")),
            JobEvent::Copied(Err(e)) => self.log(Level::Warning, e),
            JobEvent::Picked { purpose, folder: Some(folder) } => match purpose {
                DialogPurpose::AddFolder => self.commands.push(Command::AddFolder(folder)),
                DialogPurpose::ModelFolder => {
                    self.model_input = folder.display().to_string();
                    self.settings.model_dir = Some(folder);
                    self.commands.push(Command::ApplyModel);
                }
                DialogPurpose::ExportFolder => self.export.to = folder.display().to_string(),
            },
            JobEvent::ExportProgress(p) => {
                if let Some(run) = &mut self.export.running {
                    run.progress = p;
                }
            }
            JobEvent::Exported(result) => self.on_exported(result),
            JobEvent::Picked { folder: None, .. } => {}
        }
    }

    // ---- commands ----

    fn apply_commands(&mut self, ctx: &egui::Context) {
        let mut refresh = false;
        while !self.commands.is_empty() {
            let commands = std::mem::take(&mut self.commands);
            for command in commands {
                refresh |= self.apply(command, ctx);
            }
        }
        if refresh {
            self.refresh_view();
            self.refresh_groups();
        }
    }

    /// Applies one command; returns whether the view must be asked for again.
    fn apply(&mut self, command: Command, ctx: &egui::Context) -> bool {
        match command {
            Command::RefreshView => return true,
            Command::Show(screen) => {
                if screen == Screen::Viewer {
                    self.viewer_zoom = None;
                    self.viewer_pan = egui::Vec2::ZERO;
                }
                if self.screen == Screen::Viewer && screen == Screen::Grid {
                    self.scroll_to_cursor = true;
                }
                self.screen = screen;
                if screen == Screen::Leaderboard {
                    return true;
                }
            }
            Command::MoveCursor { index, extend, toggle } => self.move_cursor(index, extend, toggle),
            Command::Rerank(prompt) => {
                let prompt = prompt.trim().to_string();
                if prompt.is_empty() {
                    return self.apply(Command::ClearRerank, ctx);
                }
                self.prompt_input = prompt.clone();
                if self.model_id().is_none() {
                    self.log(Level::Warning, "reranking needs the model: set the model folder in Settings first");
                    return false;
                }
                self.rerank = Some(Rerank { prompt });
                self.cursor = 0;
                self.scroll_to_cursor = true;
                self.refresh_view();
                self.refresh_groups();
                if let Some(worker) = &self.backends.scoring {
                    match worker.score_view(self.query.clone(), Priority::View, true) {
                        Ok(ticket) => {
                            self.tickets.insert(ticket);
                        }
                        Err(e) => self.log(Level::Error, format!("cannot rerank: {e}")),
                    }
                }
            }
            Command::ClearRerank => {
                let running = self.rerank_progress().is_some();
                if self.rerank.take().is_some()
                    && running
                    && let (Some(last), Some(worker)) = (self.tickets.iter().max(), &self.backends.scoring)
                {
                    // Everything asked so far for the view goes stale; the library's own
                    // background scoring is asked for again below.
                    worker.supersede_before(last + 1);
                    self.log(Level::Info, "rerank stopped");
                }
                self.prompt_input.clear();
                self.library_scoring_asked = false;
                self.score_library();
                return true;
            }
            Command::ToggleFavorite => self.on_selection(SelectionAction::ToggleFavorite),
            Command::Rate(overall) => self.on_selection(SelectionAction::Rate(overall)),
            Command::AskTrash => self.on_selection(SelectionAction::AskTrash),
            Command::Trash(items) => {
                self.confirm_trash = None;
                self.backends.jobs.trash(items);
            }
            Command::CopyFiles => self.on_selection(SelectionAction::CopyFiles),
            Command::CopyPrompt => match self.cursor_row().and_then(|r| r.prompt.clone()) {
                Some(prompt) => {
                    ctx.copy_text(prompt);
                    self.log(Level::Info, "prompt copied");
                }
                None => self.log(Level::Warning, "this image has no prompt to copy"),
            },
            Command::PromptGroup(key) => {
                self.query.filter.prompt_group = key;
                self.cursor = 0;
                self.selected.clear();
                self.scroll_to_cursor = true;
                self.screen = Screen::Grid;
                return true;
            }
            Command::PickFolder(purpose) => {
                if !self.backends.jobs.pick_folder(purpose) {
                    self.log(Level::Info, "a folder dialog is already open");
                }
            }
            Command::AddFolder(folder) => {
                if !folder.is_absolute() {
                    self.log(Level::Warning, format!("{} is not an absolute path", folder.display()));
                    return false;
                }
                if !self.settings.folders.contains(&folder) {
                    self.settings.folders.push(folder.clone());
                }
                match &self.backends.watcher {
                    Some(watcher) => {
                        watcher.add_folder(folder.clone());
                        self.log(Level::Info, format!("adding {}", folder.display()));
                    }
                    None => self.log(Level::Error, "folders cannot be added: the watcher did not start"),
                }
            }
            Command::RemoveFolder(folder) => {
                self.settings.folders.retain(|f| f != &folder);
                if let Some(watcher) = &self.backends.watcher {
                    watcher.remove_folder(folder);
                }
            }
            Command::ApplyModel => {
                // The user chose in the app: the command line's folder no longer applies.
                self.model_override = None;
                self.model_input =
                    self.settings.model_dir.as_ref().map(|p| p.display().to_string()).unwrap_or_default();
                self.start_model();
            }
            Command::DownloadModel => {
                if let Some(fetch) = &self.backends.fetch
                    && fetch.can_download()
                {
                    fetch.download();
                    let last = match &self.fetch {
                        FetchState::Paused(p) => p.clone(),
                        _ => None,
                    };
                    self.fetch = FetchState::Downloading(last);
                }
            }
            Command::Export => self.start_export(),
            Command::CullReview => self.start_cull_review(),
            Command::EndCullReview => self.end_cull_review(),
            Command::CancelDownload => {
                if let Some(fetch) = &self.backends.fetch {
                    fetch.cancel();
                }
            }
            Command::ReadPrompt(source) => self.backends.jobs.read_prompt(source),
            Command::ThumbSize(delta) => {
                let (lo, hi) = (*settings::THUMB_RANGE.start(), *settings::THUMB_RANGE.end());
                self.settings.thumb_px = (self.settings.thumb_px + delta).clamp(lo, hi);
                self.scroll_to_cursor = true;
            }
        }
        false
    }

    fn move_cursor(&mut self, index: usize, extend: bool, toggle: bool) {
        if self.view.is_empty() {
            return;
        }
        let index = index.min(self.view.len() - 1);
        let Some(id) = self.image_at(index) else { return };
        if extend {
            let anchor = self.anchor.min(self.view.len() - 1);
            let (lo, hi) = (anchor.min(index), anchor.max(index));
            self.selected = self.view.entries[lo..=hi].iter().map(|e| e.image_id).collect();
        } else if toggle {
            if !self.selected.remove(&id) {
                self.selected.insert(id);
            }
            self.anchor = index;
        } else {
            self.selected.clear();
            self.selected.insert(id);
            self.anchor = index;
        }
        self.cursor = index;
        self.cursor_placed = true;
        self.scroll_to_cursor = true;
    }

    // ---- input ----

    /// Handles dropped files: folders (and images dropped outside the prompt box) are added to
    /// the library; a `.txt` or an image dropped on the prompt box reranks by its prompt.
    fn handle_drops(&mut self, ctx: &egui::Context) {
        let (dropped, pointer) = ctx.input(|i| (i.raw.dropped_files.clone(), i.pointer.latest_pos()));
        if dropped.is_empty() {
            return;
        }
        // Where a file drop lands is not always known (winit reports no pointer during a drag),
        // so an image also reranks when the rerank box has the focus or the image is already in
        // the library (adding it would do nothing).
        let on_prompt_box = match (pointer, self.prompt_box_rect) {
            (Some(pos), Some(rect)) => rect.expand(8.0).contains(pos),
            _ => false,
        } || self.prompt_box_focused;
        for file in dropped {
            let path = file.path().to_path_buf();
            if path.as_os_str().is_empty() {
                self.log(Level::Warning, "only files and folders can be dropped (dropped text does not arrive)");
                continue;
            }
            let is_txt = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("txt"));
            if is_txt {
                self.commands.push(Command::ReadPrompt(PromptSource::TextFile(path)));
            } else if has_image_extension(&path)
                && (on_prompt_box || self.folders.iter().any(|f| path.starts_with(&f.path)))
            {
                self.commands.push(Command::ReadPrompt(PromptSource::Image(path)));
            } else if has_image_extension(&path) {
                if let Some(parent) = path.parent() {
                    self.commands.push(Command::AddFolder(parent.to_path_buf()));
                }
            } else {
                // A folder (or something the watcher will judge): added, and reported if unusable.
                self.commands.push(Command::AddFolder(path));
            }
        }
    }

    /// Keys that act everywhere, and the grid's and viewer's keys when no text field has focus.
    fn handle_keys(&mut self, ctx: &egui::Context) {
        let typing = ctx.egui_wants_keyboard_input();
        let consume = |key: Key, mods: Modifiers| ctx.input_mut(|i| i.consume_key(mods, key));
        if consume(Key::Escape, Modifiers::NONE) {
            if self.confirm_trash.is_some() {
                self.confirm_trash = None;
            } else if self.help_open {
                self.help_open = false;
            } else if self.export.open {
                self.export.open = false;
            } else if self.cull.open {
                self.cull.open = false;
            } else if self.rerank_progress().is_some() {
                self.commands.push(Command::ClearRerank);
            } else if typing {
                ctx.memory_mut(|m| {
                    if let Some(id) = m.focused() {
                        m.surrender_focus(id);
                    }
                });
            } else if self.screen != Screen::Grid {
                self.commands.push(Command::Show(Screen::Grid));
            } else if self.cull.review.is_some() {
                self.commands.push(Command::EndCullReview);
            } else if self.query.filter.prompt_group.is_some() {
                self.commands.push(Command::PromptGroup(None));
            } else {
                self.selected.clear();
            }
        }
        if self.confirm_trash.is_some() || typing {
            return;
        }
        let shift = Modifiers::SHIFT;
        let len = self.view.len();
        let cols = if self.screen == Screen::Grid { self.grid_columns.max(1) } else { 1 };
        let page = cols * self.grid_rows_visible.max(1);
        let c = self.cursor;
        // Shift first: a plain-key pattern also matches the key with Shift held.
        for (mods, extend) in [(shift, true), (Modifiers::NONE, false)] {
            let target = if consume(Key::ArrowRight, mods) {
                Some((c + 1).min(len.saturating_sub(1)))
            } else if consume(Key::ArrowLeft, mods) {
                Some(c.saturating_sub(1))
            } else if self.screen == Screen::Grid && consume(Key::ArrowDown, mods) {
                Some(if c + cols < len { c + cols } else { c })
            } else if self.screen == Screen::Grid && consume(Key::ArrowUp, mods) {
                Some(if c >= cols { c - cols } else { c })
            } else if consume(Key::Home, mods) {
                Some(0)
            } else if consume(Key::End, mods) {
                Some(len.saturating_sub(1))
            } else if consume(Key::PageDown, mods) {
                Some((c + page).min(len.saturating_sub(1)))
            } else if consume(Key::PageUp, mods) {
                Some(c.saturating_sub(page))
            } else {
                None
            };
            if let Some(index) = target {
                self.commands.push(Command::MoveCursor { index, extend, toggle: false });
            }
        }
        if self.screen == Screen::Grid
            && !self.cull.open
            && !self.export.open
            && consume(Key::Enter, Modifiers::NONE)
            && len > 0
        {
            self.commands.push(Command::Show(Screen::Viewer));
        }
        if consume(Key::F, Modifiers::NONE) {
            self.commands.push(Command::ToggleFavorite);
        }
        let digits = [Key::Num0, Key::Num1, Key::Num2, Key::Num3, Key::Num4, Key::Num5];
        for (n, key) in digits.into_iter().enumerate() {
            if consume(key, Modifiers::NONE) {
                self.commands.push(Command::Rate(u8::try_from(n).ok().filter(|n| *n > 0)));
            }
        }
        if consume(Key::Delete, Modifiers::NONE) {
            self.commands.push(Command::AskTrash);
        }
        // The windowing layer turns Ctrl+C into a copy event (no key event); tests send the key.
        let copy_event = ctx.input(|i| i.events.iter().any(|e| matches!(e, egui::Event::Copy)));
        let shift_held = ctx.input(|i| i.modifiers.shift);
        if consume(Key::C, Modifiers::COMMAND | Modifiers::SHIFT) || (copy_event && shift_held) {
            self.commands.push(Command::CopyPrompt);
        } else if consume(Key::C, Modifiers::COMMAND) || copy_event {
            self.commands.push(Command::CopyFiles);
        }
        if consume(Key::Slash, Modifiers::NONE) {
            self.focus_filter = true;
        }
        if consume(Key::R, Modifiers::NONE) {
            self.focus_rerank = true;
        }
        if consume(Key::G, Modifiers::NONE) {
            let group = self.cursor_row().and_then(|r| r.prompt.as_deref()).map(prompt_group_key);
            match group {
                Some(key) if self.query.filter.prompt_group.as_deref() != Some(key.as_str()) => {
                    self.commands.push(Command::PromptGroup(Some(key)));
                }
                Some(_) => self.commands.push(Command::PromptGroup(None)),
                None => self.log(Level::Info, "this image has no prompt, so no prompt group"),
            }
        }
        if consume(Key::Questionmark, Modifiers::NONE) || consume(Key::Questionmark, shift) {
            self.help_open = !self.help_open;
        }
        if consume(Key::I, Modifiers::NONE) {
            self.settings.details_panel = !self.settings.details_panel;
        }
        if consume(Key::P, Modifiers::NONE) {
            self.screen = Screen::Grid;
        }
        if consume(Key::E, Modifiers::NONE) {
            self.export.open = !self.export.open;
        }
        if consume(Key::X, Modifiers::NONE) {
            self.cull.open = !self.cull.open;
        }
        if consume(Key::L, Modifiers::NONE) {
            let next = if self.screen == Screen::Leaderboard { Screen::Grid } else { Screen::Leaderboard };
            self.commands.push(Command::Show(next));
        }
        if self.screen == Screen::Grid {
            if consume(Key::Plus, Modifiers::COMMAND) || consume(Key::Equals, Modifiers::COMMAND) {
                self.commands.push(Command::ThumbSize(16.0));
            }
            if consume(Key::Minus, Modifiers::COMMAND) {
                self.commands.push(Command::ThumbSize(-16.0));
            }
        }
        // Pasting with nothing focused reranks by the pasted text.
        let pasted = ctx.input(|i| {
            i.events.iter().find_map(|e| match e {
                egui::Event::Paste(text) => Some(text.clone()),
                _ => None,
            })
        });
        if let Some(text) = pasted {
            self.commands.push(Command::Rerank(text));
        }
    }
}

impl eframe::App for App {
    fn ui(&mut self, ui: &mut egui::Ui, frame: &mut eframe::Frame) {
        let frame_start = Instant::now();
        let ctx = ui.ctx().clone();
        if self.bench.is_some() {
            // The previous frame's CPU time: this code and the rendering, without vsync waits.
            let cpu_ms = frame.info().cpu_usage.map_or(self.last_app_ms, |s| f64::from(s) * 1000.0);
            self.bench_frame(&ctx, self.grid_max_offset, self.last_app_ms, cpu_ms);
        }
        self.textures.begin_frame();
        self.drain_events(&ctx);
        // Uploaded before the layout, so a thumbnail that arrived is drawn this frame, not next.
        if self.textures.upload(&ctx, UPLOAD_BUDGET) {
            ctx.request_repaint();
        }
        self.handle_drops(&ctx);
        self.handle_keys(&ctx);
        self.remember_window(&ctx);
        self.top_bar_ui(ui);
        self.status_bar_ui(ui);
        if self.log_open {
            self.log_panel_ui(ui);
        }
        match self.screen {
            Screen::Grid => {
                self.sidebar_ui(ui);
                if self.settings.details_panel {
                    self.details_ui(ui);
                }
                self.grid_screen_ui(ui);
            }
            Screen::Viewer => self.viewer_ui(ui),
            Screen::Leaderboard => {
                self.sidebar_ui(ui);
                self.leaderboard_ui(ui);
            }
        }
        self.help_ui(&ctx);
        self.settings_window_ui(&ctx);
        self.export_window_ui(&ctx);
        self.cull_window_ui(&ctx);
        self.confirm_trash_ui(&ctx);
        self.toasts_ui(&ctx);
        self.apply_commands(&ctx);
        self.refresh_view_if_due(&ctx);
        self.ask_groups_if_due(&ctx);
        self.want_params();
        self.settings_changed();
        self.save_settings_if_due(false);
        if self.settings_dirty_since.is_some() {
            ctx.request_repaint_after(SETTINGS_SAVE_DELAY);
        }
        self.last_app_ms = frame_start.elapsed().as_secs_f64() * 1000.0;
        self.frame_times.push(self.last_app_ms as f32);
        if self.frame_times.len() > 100_000 {
            self.frame_times.drain(..50_000);
        }
    }

    fn on_exit(&mut self) {
        self.save_settings_if_due(true);
    }
}

impl App {
    /// Asks for the parameters of the image at the cursor, when a panel shows them.
    fn want_params(&mut self) {
        let shown = self.screen == Screen::Viewer || self.settings.details_panel;
        let Some(id) = self.image_at(self.cursor).filter(|_| shown) else { return };
        if self.params_asked != Some(id) {
            self.params_asked = Some(id);
            self.backends.library.params(id);
        }
    }

    /// Wishes for the viewer: the image at the cursor, then its neighbours.
    pub(super) fn want_full_images(&mut self) {
        let Some(full) = &self.backends.full else { return };
        let order = [self.cursor, self.cursor + 1, self.cursor.wrapping_sub(1), self.cursor + 2];
        let wanted: Vec<Wanted> = order
            .iter()
            .filter_map(|i| self.image_at(*i))
            .filter_map(|id| self.row(id))
            .filter_map(|row| row.content_hash.clone().map(|hash| (hash, row.path.clone())))
            .filter(|(hash, _)| {
                !self.textures.has(&TextureKey::Full(hash.clone())) && !self.full_failures.contains_key(hash)
            })
            .map(|(content_hash, path)| Wanted { content_hash, path })
            .collect();
        let hashes: Vec<ContentHash> = wanted.iter().map(|w| w.content_hash.clone()).collect();
        if !wanted.is_empty() && hashes != self.full_asked {
            self.full_asked = hashes;
            full.want(wanted);
        }
    }

    fn remember_window(&mut self, ctx: &egui::Context) {
        let geometry = ctx.input(|i| {
            let viewport = i.viewport();
            match (viewport.outer_rect, viewport.inner_rect) {
                (Some(outer), Some(inner)) => Some(settings::WindowGeometry {
                    x: outer.min.x,
                    y: outer.min.y,
                    width: inner.width(),
                    height: inner.height(),
                }),
                _ => None,
            }
        });
        if geometry.is_some() && geometry != self.settings.window {
            self.settings.window = geometry;
        }
    }

    /// A new thumbnail generation: queued requests of the old view are dropped.
    pub(super) fn new_thumbnail_generation(&mut self) {
        self.thumb_generation += 1;
        self.thumbs_asked.clear();
        if let Some(thumbs) = &self.backends.thumbs {
            thumbs.set_generation(self.thumb_generation);
        }
    }
}

/// The next waiting event of a worker that may not have started.
fn next<T>(events: &Option<std::sync::mpsc::Receiver<T>>) -> Option<T> {
    events.as_ref().and_then(|r| r.try_recv().ok())
}

/// The time of day, `HH:MM:SS` (UTC: no time-zone database needed).
fn clock_now() -> String {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let day = secs % 86_400;
    format!("{:02}:{:02}:{:02}", day / 3600, day % 3600 / 60, day % 60)
}
