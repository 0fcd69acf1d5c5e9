//! Getting one image ready for the model, on a decode thread: what is already known is looked up
//! first (a stored score, cached image tokens), so the file is read only when needed and decoded
//! only when its tokens are not cached.

use std::path::PathBuf;
use std::sync::{Mutex, PoisonError};

use super::embeddings::{EmbeddingCache, ImageEmbedding};
use super::protocol::{ItemError, NoPrompt};
use crate::library::ContentHash;
use crate::library::metadata::generation_params_from_bytes;
use crate::library::store::Store;
use crate::model::preprocess;

/// What a decode thread needs to look things up.
pub(crate) struct Lookup<'a> {
    /// Stored scores; `None` when the worker runs without a library.
    pub store: Option<&'a Mutex<Store>>,
    /// Cached image tokens of the current model.
    pub embeddings: Option<&'a EmbeddingCache>,
    /// The current model's id.
    pub model_id: &'a str,
}

/// One image to prepare.
#[derive(Debug, Clone)]
pub(crate) struct PrepareInput {
    /// The file.
    pub path: PathBuf,
    /// Its content hash, when the library knows it (lets a cached image skip the file entirely).
    pub content_hash: Option<ContentHash>,
    /// The prompt to score against; `None` reads the image's own generation prompt.
    pub prompt: Option<String>,
}

/// What the model has to do for one image.
#[derive(Debug)]
pub(crate) enum ModelInput {
    /// Nothing: the score is in the store.
    Stored(f64),
    /// The text part only, on cached image tokens.
    Cached(ImageEmbedding),
    /// Everything, from preprocessed pixels.
    Pixels(Vec<f32>),
}

/// A prepared image.
#[derive(Debug)]
pub(crate) struct Prepared {
    /// Its content hash (computed here when it was not known).
    pub content_hash: ContentHash,
    /// The prompt it is scored against.
    pub prompt: String,
    /// What the model has to do.
    pub input: ModelInput,
}

/// Why an image could not be prepared, with its content hash when it was read that far.
#[derive(Debug)]
pub(crate) struct PrepareError {
    /// The content hash, when known.
    pub content_hash: Option<ContentHash>,
    /// What went wrong.
    pub error: ItemError,
}

impl PrepareError {
    fn new(content_hash: Option<&ContentHash>, error: ItemError) -> Self {
        Self { content_hash: content_hash.cloned(), error }
    }
}

fn stored_score(lookup: &Lookup, hash: &ContentHash, prompt: &str) -> Option<f64> {
    let store = lookup.store?.lock().unwrap_or_else(PoisonError::into_inner);
    // A failed lookup only means scoring again.
    store.score(hash.as_str(), lookup.model_id, prompt).ok().flatten()
}

/// Prepares one image.
pub(crate) fn prepare(input: &PrepareInput, lookup: &Lookup) -> Result<Prepared, PrepareError> {
    let path = &input.path;
    // Known content and prompt: the store or the cache may answer without touching the file.
    if let (Some(hash), Some(prompt)) = (&input.content_hash, &input.prompt) {
        if let Some(score) = stored_score(lookup, hash, prompt) {
            return Ok(Prepared {
                content_hash: hash.clone(),
                prompt: prompt.clone(),
                input: ModelInput::Stored(score),
            });
        }
        if let Some(embedding) = lookup.embeddings.and_then(|c| c.get(hash)) {
            return Ok(Prepared {
                content_hash: hash.clone(),
                prompt: prompt.clone(),
                input: ModelInput::Cached(embedding),
            });
        }
    }
    let unreadable = |hash: Option<&ContentHash>, message: String| PrepareError::new(hash, ItemError::Image(message));
    let bytes =
        preprocess::read_image_file(path).map_err(|e| unreadable(input.content_hash.as_ref(), e.to_string()))?;
    preprocess::check_format(&bytes).map_err(|e| unreadable(input.content_hash.as_ref(), e.to_string()))?;
    let content_hash = ContentHash::of(&bytes);
    let no_prompt = |why: NoPrompt| PrepareError::new(Some(&content_hash), ItemError::NoPrompt(why));
    let prompt = match &input.prompt {
        Some(p) => p.clone(),
        None => match generation_params_from_bytes(path, &bytes) {
            Ok(Some(params)) => params.prompt.ok_or_else(|| no_prompt(NoPrompt::NotInMetadata))?,
            Ok(None) => return Err(no_prompt(NoPrompt::NoMetadata)),
            Err(e) => return Err(no_prompt(NoPrompt::Unreadable(e.to_string()))),
        },
    };
    if let Some(score) = stored_score(lookup, &content_hash, &prompt) {
        return Ok(Prepared { content_hash, prompt, input: ModelInput::Stored(score) });
    }
    if let Some(embedding) = lookup.embeddings.and_then(|c| c.get(&content_hash)) {
        return Ok(Prepared { content_hash, prompt, input: ModelInput::Cached(embedding) });
    }
    let image = preprocess::decode_image(&bytes).map_err(|e| unreadable(Some(&content_hash), e.to_string()))?;
    drop(bytes);
    Ok(Prepared { content_hash, prompt, input: ModelInput::Pixels(preprocess::preprocess_image(&image)) })
}
