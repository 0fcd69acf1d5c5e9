//! Background scoring: one worker thread owns the model and scores the library most urgent first,
//! with image tokens cached on disk so a new prompt reranks with the text part alone. No GUI
//! dependency; the CLI and the app share this code path.

pub(crate) mod backend;
pub mod embeddings;
pub(crate) mod prepare;
pub mod remote;
pub mod scorer;
pub mod worker;

pub use embeddings::{EmbeddingCache, ImageEmbedding};
pub use scorer::{ModelSpec, Scorer, model_id};
pub use worker::{
    ModelState, Priority, Progress, ScoreItem, ScoreRequest, ScoreResult, ScoreSource, ScoringEvent, ScoringWorker,
    SubmitError, Ticket, WorkerConfig, WorkerStats,
};
