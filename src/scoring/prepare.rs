//! Getting one image ready for the model, on a decode thread: what is already known is looked up
//! first (a stored score, cached image tokens, the library's row for an unchanged file), so the
//! file is read only when needed, hashed and parsed only when the library has not done it, and
//! decoded only when its tokens are not cached.

use std::path::PathBuf;
use std::sync::{Mutex, PoisonError};

use super::embeddings::{EmbeddingCache, ImageEmbedding};
use super::protocol::{ItemError, NoPrompt};
use crate::image_file::{self, ContentHash, ImageFormat};
use crate::library::metadata::generation_params_from_bytes;
use crate::library::scan::unchanged_row;
use crate::library::store::Store;
use crate::model::{PromptTokenizer, PromptTokens, preprocess};

/// What a decode thread needs to look things up.
pub(crate) struct Lookup<'a> {
    /// Stored scores and library rows; `None` when the worker runs without a library.
    pub store: Option<&'a Mutex<Store>>,
    /// Cached image tokens of the current model.
    pub embeddings: Option<&'a EmbeddingCache>,
    /// The current model's id.
    pub model_id: &'a str,
    /// The current model's tokenizer: scores are keyed by what the model sees of a prompt.
    pub tokenizer: &'a PromptTokenizer,
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
    /// The prompt as the model reads it.
    pub tokens: PromptTokens,
    /// What the model has to do.
    pub input: ModelInput,
}

/// Why an image could not be prepared, with its content hash when it was known or read.
#[derive(Debug)]
pub(crate) struct PrepareError {
    /// The content hash, when known.
    pub content_hash: Option<ContentHash>,
    /// What went wrong.
    pub error: ItemError,
}

impl PrepareError {
    fn new(content_hash: Option<&ContentHash>, error: impl Into<ItemError>) -> Self {
        Self { content_hash: content_hash.cloned(), error: error.into() }
    }
}

impl Lookup<'_> {
    fn store(&self) -> Option<std::sync::MutexGuard<'_, Store>> {
        Some(self.store?.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// The stored score, if any (a failed lookup only means scoring again).
    fn stored_score(&self, hash: &ContentHash, tokens: &PromptTokens) -> Option<f64> {
        self.store()?.score(hash, self.model_id, tokens.key()).ok().flatten()
    }

    /// What is known without running the image tower: a stored score or cached tokens.
    fn known(&self, hash: &ContentHash, tokens: &PromptTokens) -> Option<ModelInput> {
        if let Some(score) = self.stored_score(hash, tokens) {
            return Some(ModelInput::Stored(score));
        }
        self.embeddings.and_then(|c| c.get(hash)).map(ModelInput::Cached)
    }

    /// The library's content hash and own prompt for a file it imported and that has not changed
    /// since (one `stat` and one indexed read instead of a hash and a metadata parse).
    fn library_facts(&self, input: &PrepareInput) -> Option<(ContentHash, Option<String>)> {
        let row = unchanged_row(&*self.store()?, &input.path)?;
        Some((row.record.content_hash?, row.record.prompt))
    }
}

/// Prepares one image.
pub(crate) fn prepare(input: &PrepareInput, lookup: &Lookup) -> Result<Prepared, PrepareError> {
    let path = &input.path;
    let (mut hash, mut prompt) = (input.content_hash.clone(), input.prompt.clone());
    if hash.is_none()
        && let Some((known_hash, own_prompt)) = lookup.library_facts(input)
    {
        hash = Some(known_hash);
        prompt = prompt.or(own_prompt);
    }
    let tokenize = |hash: Option<&ContentHash>, prompt: &str| {
        lookup.tokenizer.encode(prompt).map_err(|e| PrepareError::new(hash, ItemError::Tokenize(e.to_string())))
    };
    // Known content and prompt: the store or the cache may answer without touching the file.
    if let (Some(hash), Some(prompt)) = (&hash, &prompt) {
        let tokens = tokenize(Some(hash), prompt)?;
        if let Some(known) = lookup.known(hash, &tokens) {
            return Ok(Prepared { content_hash: hash.clone(), prompt: prompt.clone(), tokens, input: known });
        }
    }
    let bytes = image_file::read(path).map_err(|e| PrepareError::new(hash.as_ref(), e.kind))?;
    // A half-written or cut file says so, rather than "no prompt" or a decoder's message.
    ImageFormat::of(&bytes)
        .and_then(|format| image_file::check_whole(format, &bytes))
        .map_err(|kind| PrepareError::new(hash.as_ref(), kind))?;
    let content_hash = hash.unwrap_or_else(|| ContentHash::of(&bytes));
    let prompt = match prompt {
        Some(p) => p,
        None => {
            let no_prompt = |why| PrepareError::new(Some(&content_hash), ItemError::NoPrompt(why));
            match generation_params_from_bytes(path, &bytes) {
                Ok(Some(params)) => params.prompt.ok_or_else(|| no_prompt(NoPrompt::NotInMetadata))?,
                Ok(None) => return Err(no_prompt(NoPrompt::NoMetadata)),
                Err(e) => return Err(no_prompt(NoPrompt::Unreadable(e.to_string()))),
            }
        }
    };
    let tokens = tokenize(Some(&content_hash), &prompt)?;
    if let Some(known) = lookup.known(&content_hash, &tokens) {
        return Ok(Prepared { content_hash, prompt, tokens, input: known });
    }
    let image = preprocess::decode_image(&bytes).map_err(|kind| PrepareError::new(Some(&content_hash), kind))?;
    drop(bytes);
    Ok(Prepared { content_hash, prompt, tokens, input: ModelInput::Pixels(preprocess::preprocess_image(&image)) })
}
