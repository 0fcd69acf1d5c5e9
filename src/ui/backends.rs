//! The app's workers, each owning its resource on a named thread: the library service (reads and
//! edits), the watcher (folders), the scoring worker (the model), the thumbnailer, the viewer's
//! decoder and the errand runner. The UI holds their handles and drains their events each frame;
//! each wakes the UI with a repaint when it sends.

use std::path::PathBuf;
use std::sync::mpsc::Receiver;

use crate::library::query::{LibraryEvent, LibraryService};
use crate::library::thumbnails::{ThumbnailEvent, Thumbnailer};
use crate::library::watch::{LibraryWatcher, WatchEvent, WatchOptions};
use crate::scoring::{ModelSpec, ScoringEvent, ScoringWorker, WorkerConfig};
use crate::wake::Waker;

use super::full_images::{FullImageEvent, FullImages};
use super::jobs::{JobEvent, Jobs};
use super::model_fetch::{FetchEvent, ModelFetch};
use crate::model::hub::HubSettings;
use crate::model::locate::CacheDirs;

/// Where the app keeps its files, and how its workers are set up; tests point all of it at a
/// temporary folder.
#[derive(Debug, Clone)]
pub struct AppConfig {
    /// The library database.
    pub db: PathBuf,
    /// A model folder given on the command line (it wins over the settings' one for this run).
    pub model: Option<PathBuf>,
    /// Folders given on the command line: added to the library and watched.
    pub folders: Vec<PathBuf>,
    /// The settings file; `None` keeps settings in memory only.
    pub settings_path: Option<PathBuf>,
    /// The thumbnail cache folder.
    pub thumb_cache_dir: PathBuf,
    /// The image-embedding cache folder; `None` runs without one.
    pub embedding_cache_dir: Option<PathBuf>,
    /// The watcher's timings.
    pub watch: WatchOptions,
    /// Threads making thumbnails.
    pub thumb_threads: usize,
    /// Run as the app benchmark (`rewardlens bench --app`).
    pub bench: Option<super::bench::BenchConfig>,
    /// Where to look for a model the user already has and where a download goes (the Python
    /// tools' cache folders); `None` neither looks nor downloads (tests that set their own).
    pub model_search: Option<CacheDirs>,
    /// The hub to download from (`HF_ENDPOINT`, the token); `None` offers no download.
    pub hub: Option<HubSettings>,
}

impl AppConfig {
    /// The platform's folders (data, cache, config) for everything, with `db` and `model` and
    /// `folders` from the command line.
    pub fn platform(db: Option<PathBuf>, model: Option<PathBuf>, folders: Vec<PathBuf>) -> anyhow::Result<Self> {
        use anyhow::Context as _;
        let dirs = directories::ProjectDirs::from("", "", "rewardlens")
            .context("no home folder: cannot place the library, caches and settings")?;
        let db = match db {
            Some(db) => db,
            None => crate::library::store::Store::default_path()?,
        };
        Ok(Self {
            db,
            model,
            folders,
            settings_path: super::settings::default_path(),
            thumb_cache_dir: dirs.cache_dir().join("thumbnails"),
            embedding_cache_dir: Some(dirs.cache_dir().join("embeddings")),
            watch: WatchOptions::default(),
            thumb_threads: std::thread::available_parallelism().map_or(2, |n| n.get().clamp(1, 4)),
            bench: None,
            model_search: Some(CacheDirs::from_env()),
            hub: HubSettings::from_env(),
        })
    }
}

/// The running workers and their event queues.
pub struct Backends {
    /// Reads and edits of the library.
    pub library: LibraryService,
    /// Its answers.
    pub library_events: Receiver<LibraryEvent>,
    /// The folder watcher (absent when it could not start; the log says why).
    pub watcher: Option<LibraryWatcher>,
    /// Its events.
    pub watch_events: Option<Receiver<WatchEvent>>,
    /// The scoring worker, once a model is set.
    pub scoring: Option<ScoringWorker>,
    /// Its events.
    pub scoring_events: Option<Receiver<ScoringEvent>>,
    /// Thumbnail makers (absent when the cache folder is unusable).
    pub thumbs: Option<Thumbnailer>,
    /// Their results.
    pub thumb_events: Option<Receiver<ThumbnailEvent>>,
    /// The viewer's decoder.
    pub full: Option<FullImages>,
    /// Its results.
    pub full_events: Option<Receiver<FullImageEvent>>,
    /// Finding or downloading a model (absent when the app may not look, as in tests).
    pub fetch: Option<ModelFetch>,
    /// Its events.
    pub fetch_events: Option<Receiver<FetchEvent>>,
    /// Errands.
    pub jobs: Jobs,
    /// Their results.
    pub job_events: Receiver<JobEvent>,
    waker: Waker,
    config: AppConfig,
}

impl std::fmt::Debug for Backends {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backends").field("scoring", &self.scoring.is_some()).finish_non_exhaustive()
    }
}

impl Backends {
    /// Starts every worker but the scoring one; problems that leave the app usable come back as
    /// messages for the log.
    pub fn start(
        config: &AppConfig,
        folders: Vec<PathBuf>,
        thumb_cache_bytes: u64,
        waker: Waker,
    ) -> anyhow::Result<(Self, Vec<String>)> {
        use anyhow::Context as _;
        let mut problems = Vec::new();
        let (library, library_events) =
            LibraryService::start(&config.db, Some(waker.clone())).context("starting the library thread")?;
        let options = WatchOptions { resume_known: true, waker: Some(waker.clone()), ..config.watch.clone() };
        let (watcher, watch_events) = match LibraryWatcher::start(&config.db, folders, options) {
            Ok((w, e)) => (Some(w), Some(e)),
            Err(e) => {
                problems.push(format!("folders are not watched: {e}"));
                (None, None)
            }
        };
        let (thumbs, thumb_events) = match Thumbnailer::start_opening(
            config.thumb_cache_dir.clone(),
            thumb_cache_bytes,
            config.thumb_threads,
            Some(waker.clone()),
        ) {
            Ok((t, e)) => (Some(t), Some(e)),
            Err(e) => {
                problems.push(format!("thumbnails are unavailable: {e}"));
                (None, None)
            }
        };
        let (full, full_events) = match FullImages::start(Some(waker.clone())) {
            Ok((f, e)) => (Some(f), Some(e)),
            Err(e) => {
                problems.push(format!("the viewer cannot decode images: {e}"));
                (None, None)
            }
        };
        let (fetch, fetch_events) = match &config.model_search {
            Some(dirs) => match ModelFetch::start(dirs.clone(), config.hub.clone(), Some(waker.clone())) {
                Ok((f, e)) => (Some(f), Some(e)),
                Err(e) => {
                    problems.push(format!("cannot look for a model: {e}"));
                    (None, None)
                }
            },
            None => (None, None),
        };
        let (jobs, job_events) =
            Jobs::start(config.db.clone(), Some(waker.clone())).context("starting the errand thread")?;
        let backends = Self {
            library,
            library_events,
            watcher,
            watch_events,
            scoring: None,
            scoring_events: None,
            thumbs,
            thumb_events,
            full,
            full_events,
            fetch,
            fetch_events,
            jobs,
            job_events,
            waker,
            config: config.clone(),
        };
        Ok((backends, problems))
    }

    /// Starts (or restarts) the scoring worker on this model; the old one, if any, stops after its
    /// batch in progress without the UI waiting for it.
    pub fn set_model(&mut self, spec: ModelSpec, embedding_cache_bytes: u64) -> std::io::Result<()> {
        self.scoring = None;
        self.scoring_events = None;
        let config = WorkerConfig {
            model: spec,
            db: Some(self.config.db.clone()),
            embedding_cache: self.config.embedding_cache_dir.clone().map(|dir| (dir, embedding_cache_bytes)),
            decode_threads: 2,
            waker: Some(self.waker.clone()),
            background: true,
        };
        let (worker, events) = ScoringWorker::start(config)?;
        self.scoring = Some(worker);
        self.scoring_events = Some(events);
        Ok(())
    }
}
