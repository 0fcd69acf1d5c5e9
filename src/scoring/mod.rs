//! Background scoring: one worker thread owns the model and scores the library most urgent first,
//! with image tokens cached on disk so a new prompt reranks with the text part alone. No GUI
//! dependency; the CLI and the app share this code path.
//!
//! - [`protocol`]: requests, tickets, priorities and typed events (what the owner sees).
//! - [`settings`]: the model choice (path, device, precision, batch), persistable.
//! - [`schedule`]: the pure policy (what is prepared next, when a batch runs, what is stale).
//! - `execute`: the worker thread doing what the schedule says; [`worker`]: its handle.
//! - `backend`: in-process or GPU-helper model, and the one GPU→CPU fall-back policy.
//! - [`embeddings`]: the image-token cache; `prepare`: one image made ready on a decode thread.

pub(crate) mod backend;
pub mod embeddings;
pub(crate) mod execute;
pub(crate) mod prepare;
pub mod protocol;
pub mod remote;
pub(crate) mod schedule;
pub mod scorer;
pub mod settings;
pub mod worker;

pub use backend::BackendError;
pub use embeddings::{EmbeddingCache, ImageEmbedding};
pub use protocol::{
    ItemError, ItemFailure, ModelState, NoPrompt, Priority, Progress, ScoreItem, ScoreRequest, ScoreResult,
    ScoreSource, ScoringEvent, SubmitError, Ticket, ViewRequest, WorkerWarning,
};
pub use scorer::{Scorer, model_id};
pub use settings::{DeviceKind, ModelSpec, Precision};
pub use worker::{ScoringWorker, WorkerConfig, WorkerStats};
