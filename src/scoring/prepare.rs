//! Getting one image ready for the model, on a decode thread: what is already known is looked up
//! first (a stored score, cached image tokens), so the file is read only when needed and decoded
//! only when its tokens are not cached.

use std::path::PathBuf;
use std::sync::{Mutex, PoisonError};

use super::embeddings::{EmbeddingCache, ImageEmbedding};
use crate::image_file::{self, ImageFormat};
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
    pub content_hash: Option<String>,
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
    pub content_hash: String,
    /// The prompt it is scored against.
    pub prompt: String,
    /// What the model has to do.
    pub input: ModelInput,
}

fn stored_score(lookup: &Lookup, hash: &str, prompt: &str) -> Option<f64> {
    let store = lookup.store?.lock().unwrap_or_else(PoisonError::into_inner);
    // A failed lookup only means scoring again.
    store.score(hash, lookup.model_id, prompt).ok().flatten()
}

/// Prepares one image; the error is the line to report (it names the file).
pub(crate) fn prepare(input: &PrepareInput, lookup: &Lookup) -> Result<Prepared, String> {
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
    let bytes = image_file::read(path).map_err(|e| e.to_string())?;
    ImageFormat::of(&bytes).map_err(|e| e.at(path).to_string())?;
    let content_hash = blake3::hash(&bytes).to_hex().to_string();
    let no_prompt = |why: String| format!("{}: {why}; give a prompt to score it", path.display());
    let prompt = match &input.prompt {
        Some(p) => p.clone(),
        None => match generation_params_from_bytes(path, &bytes) {
            Ok(Some(params)) => {
                params.prompt.ok_or_else(|| no_prompt("its generation metadata has no prompt".into()))?
            }
            Ok(None) => return Err(no_prompt("no prompt in its metadata".into())),
            Err(e) => return Err(no_prompt(format!("unreadable metadata: {e}"))),
        },
    };
    if let Some(score) = stored_score(lookup, &content_hash, &prompt) {
        return Ok(Prepared { content_hash, prompt, input: ModelInput::Stored(score) });
    }
    if let Some(embedding) = lookup.embeddings.and_then(|c| c.get(&content_hash)) {
        return Ok(Prepared { content_hash, prompt, input: ModelInput::Cached(embedding) });
    }
    let image = preprocess::decode_image(&bytes).map_err(|e| e.at(path).to_string())?;
    drop(bytes);
    Ok(Prepared { content_hash, prompt, input: ModelInput::Pixels(preprocess::preprocess_image(&image)) })
}
