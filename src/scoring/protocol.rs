//! What the scoring worker and its owner say to each other: requests with their tickets and
//! priorities, and typed events, so a UI can tell "mark this cell failed" (an [`ItemFailure`])
//! from "show a toast" (a [`WorkerWarning`]) from "the model is gone" ([`ModelState::Failed`]).

use std::path::PathBuf;
use std::sync::Arc;

use super::settings::ModelSpec;
use crate::image_file::{ContentHash, ImageFileErrorKind};
use crate::library::views::ViewQuery;
use crate::model::{DeviceKind, MAX_TOKENS, ModelError, Precision};

/// Identifies a request; increases with every submission.
pub type Ticket = u64;

/// How urgent a request is; lower runs first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Priority {
    /// Images on screen now.
    Visible,
    /// The rest of the current view.
    View,
    /// The whole library, in the background (never made stale by `supersede`).
    Library,
}

impl Priority {
    /// Every priority, most urgent first.
    pub const ALL: [Self; 3] = [Self::Visible, Self::View, Self::Library];

    /// Whether a superseding request makes this work stale (only user-facing work goes stale).
    pub fn can_go_stale(self) -> bool {
        self != Self::Library
    }
}

/// One value per [`Priority`], indexed by it (no bare `[_; 3]` indexed by a cast).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PerPriority<T>([T; 3]);

impl<T> PerPriority<T> {
    /// The values, most urgent first.
    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.0.iter()
    }

    /// The values, most urgent first, mutably.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut T> {
        self.0.iter_mut()
    }
}

impl<T> std::ops::Index<Priority> for PerPriority<T> {
    type Output = T;

    fn index(&self, priority: Priority) -> &T {
        &self.0[priority as usize]
    }
}

impl<T> std::ops::IndexMut<Priority> for PerPriority<T> {
    fn index_mut(&mut self, priority: Priority) -> &mut T {
        &mut self.0[priority as usize]
    }
}

/// One image to score.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScoreItem {
    /// The file.
    pub path: PathBuf,
    /// Content hash, when known (a library row): a cached image then needs no file read.
    pub content_hash: Option<ContentHash>,
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

/// Score the unscored images of a library view.
#[derive(Debug, Clone)]
pub struct ViewRequest {
    /// The view (its model is the worker's, whatever the query says).
    pub query: ViewQuery,
    /// How urgent.
    pub priority: Priority,
}

/// What the worker is asked to do.
#[derive(Debug)]
pub(crate) enum Command {
    /// Score a request.
    Score(Ticket, ScoreRequest),
    /// Score what a library view lacks.
    ScoreView(Ticket, Box<ViewRequest>),
    /// Load another model (or the same elsewhere).
    SetModel(ModelSpec),
    /// Start no new batch.
    Pause,
    /// Start batches again.
    Resume,
    /// Finish the batch in progress and stop.
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
    pub content_hash: ContentHash,
    /// The prompt it was scored against.
    pub prompt: String,
    /// The normalised reward.
    pub score: f64,
    /// Where the score came from.
    pub source: ScoreSource,
}

/// Why one image could not be scored; the rest of its request goes on.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ItemError {
    /// The file could not be read or decoded.
    #[error(transparent)]
    Image(#[from] ImageFileErrorKind),
    /// No prompt was given and the image's metadata has none.
    #[error("{0}; give a prompt to score it")]
    NoPrompt(NoPrompt),
    /// The prompt could not be tokenised.
    #[error("cannot tokenise its prompt: {0}")]
    Tokenize(String),
    /// The model failed on the batch this image was in (on the CPU too, after a GPU fall-back).
    #[error("the model failed: {0}")]
    Model(String),
    /// No model is loaded (its [`ModelState::Failed`] says why).
    #[error("no model is loaded (see the model error)")]
    NoModel,
}

/// Why an image has no prompt of its own.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoPrompt {
    /// No generation metadata was found at all.
    #[error("no prompt in its metadata")]
    NoMetadata,
    /// Generation metadata was found, without a prompt.
    #[error("its generation metadata has no prompt")]
    NotInMetadata,
    /// The metadata is there but unreadable.
    #[error("unreadable metadata: {0}")]
    Unreadable(String),
}

/// An image that could not be scored: a per-item failure (mark its cell; the run goes on).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{}: {error}", path.display())]
pub struct ItemFailure {
    /// The request.
    pub ticket: Ticket,
    /// The file.
    pub path: PathBuf,
    /// Its content hash, when it was known or read before the failure.
    pub content_hash: Option<ContentHash>,
    /// What went wrong.
    pub error: ItemError,
}

/// Something that went wrong that is not one image's fault and does not stop scoring: a toast.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum WorkerWarning {
    /// The library database could not be opened: scores are not saved this run.
    #[error("scores will not be saved: {message}")]
    StoreUnavailable {
        /// The database's error.
        message: String,
    },
    /// A batch was scored but writing its scores failed.
    #[error("scores were computed but not saved: {message}")]
    ScoresNotSaved {
        /// The database's error.
        message: String,
    },
    /// The image-embedding cache folder cannot be used: reranks run the whole model.
    #[error("image-embedding cache {} unusable ({message}); running without it", path.display())]
    CacheUnusable {
        /// The cache folder.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// Image tokens could not be written to the cache (a full disk); reported once per batch.
    #[error("cannot cache image tokens: {message}")]
    CacheWrite {
        /// Why.
        message: String,
    },
    /// A prompt is longer than the model reads; its tail does not count.
    #[error("prompt longer than {MAX_TOKENS} tokens, the model reads only the start: {prompt:?}")]
    PromptTruncated {
        /// The prompt.
        prompt: String,
    },
}

/// The model's state, as the UI shows it.
#[derive(Debug, Clone)]
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
        /// Where it runs.
        device: DeviceKind,
        /// The precision it runs in.
        dtype: Precision,
        /// Images per forward pass.
        batch: usize,
        /// Why it is not where it was asked to be (a GPU fell back to the CPU), if so.
        note: Option<String>,
    },
    /// No model: every job fails until another is set. Fatal for scoring, not for the app.
    Failed {
        /// The model folder or file asked for.
        path: PathBuf,
        /// What is wrong (a missing file, a bad weight, …), typed so the app can offer a fix.
        error: Arc<ModelError>,
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
#[derive(Debug, Clone)]
pub enum ScoringEvent {
    /// The model changed state.
    Model(ModelState),
    /// Images were scored: one event per batch (or per group of stored scores found together).
    Scored(Vec<ScoreResult>),
    /// An image could not be scored (per item: the run goes on).
    Failed(ItemFailure),
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
    /// Something went wrong that is not one image's fault and does not stop scoring.
    Warning(WorkerWarning),
    /// The worker stopped.
    Stopped,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_name_the_file_once_and_say_what_to_do() {
        let failure = ItemFailure {
            ticket: 1,
            path: PathBuf::from("/a/b.png"),
            content_hash: None,
            error: ItemError::NoPrompt(NoPrompt::NoMetadata),
        };
        assert_eq!(failure.to_string(), "/a/b.png: no prompt in its metadata; give a prompt to score it");
    }

    #[test]
    fn per_priority_is_indexed_by_priority() {
        let mut counts = PerPriority::<usize>::default();
        counts[Priority::Library] += 2;
        counts[Priority::Visible] += 1;
        assert_eq!(counts.iter().copied().collect::<Vec<_>>(), vec![1, 0, 2]);
        assert!(Priority::View.can_go_stale() && !Priority::Library.can_go_stale());
    }
}
