//! The image-embedding cache: the image tower's output per (model, content hash), in f16, on disk.
//!
//! The image tower is ~95 % of a full score; with its tokens cached, scoring against a new prompt
//! runs only the text part. An entry holds a small header (magic, token count, width, BLAKE3 of
//! the payload) and the tokens as little-endian f16. Entries are checked on read, so a damaged one
//! is dropped and recomputed, and written through [`DiskCache`], so a crash mid-write leaves no
//! entry under a real name.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

use half::f16;

use crate::disk_cache::DiskCache;
use crate::image_file::ContentHash;

/// First bytes of an entry; the digit is the layout version.
const MAGIC: &[u8; 8] = b"RLEMB01\0";

/// Header: magic, tokens (u32), width (u32), BLAKE3 of the payload.
const HEADER_LEN: usize = 8 + 4 + 4 + 32;

/// Default cap: about 10,000 ViT-L images (197 × 1024 f16 ≈ 0.4 MB each).
pub const DEFAULT_CAP_BYTES: u64 = 4 << 30;

/// One image's tokens as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageEmbedding {
    /// Tokens (class token + patches).
    pub tokens: usize,
    /// Width of each token.
    pub width: usize,
    /// `tokens × width` values, row-major.
    pub values: Vec<f16>,
}

/// The cache for one model (entries of different models never mix: each has its own folder).
#[derive(Debug)]
pub struct EmbeddingCache {
    files: DiskCache,
    /// Entries handed to [`EmbeddingCache::stage`] and not yet on disk: served from memory, so a
    /// rerank right after scoring never misses tokens that are still being written.
    staged: Mutex<HashMap<ContentHash, Arc<ImageEmbedding>>>,
}

impl EmbeddingCache {
    /// Opens the cache of `model_id` under `root` with a size cap.
    pub fn open(root: &Path, model_id: &str, cap_bytes: u64) -> std::io::Result<Self> {
        Ok(Self { files: DiskCache::open(&root.join(model_id), cap_bytes)?, staged: Mutex::new(HashMap::new()) })
    }

    /// Where the platform keeps caches (`…/RewardLens/embeddings`), if it has such a place.
    pub fn default_root() -> Option<std::path::PathBuf> {
        directories::ProjectDirs::from("", "", "RewardLens").map(|d| d.cache_dir().join("embeddings"))
    }

    /// Whether an entry exists for this content (not verified; [`EmbeddingCache::get`] verifies).
    pub fn contains(&self, content_hash: &ContentHash) -> bool {
        self.staged.lock().unwrap_or_else(PoisonError::into_inner).contains_key(content_hash)
            || self.files.contains(&entry_name(content_hash))
    }

    /// Makes tokens available at once, before a background [`EmbeddingCache::put`] writes them.
    pub fn stage(&self, content_hash: &ContentHash, embedding: Arc<ImageEmbedding>) {
        self.staged.lock().unwrap_or_else(PoisonError::into_inner).insert(content_hash.clone(), embedding);
    }

    /// The cached tokens of this content, if present and intact; a damaged entry is removed.
    pub fn get(&self, content_hash: &ContentHash) -> Option<ImageEmbedding> {
        if let Some(staged) = self.staged.lock().unwrap_or_else(PoisonError::into_inner).get(content_hash) {
            return Some(ImageEmbedding::clone(staged));
        }
        let name = entry_name(content_hash);
        let bytes = self.files.read(&name)?;
        let parsed = parse(&bytes);
        if parsed.is_none() {
            self.files.remove(&name);
        }
        parsed
    }

    /// Stores the tokens of this content (and ends its staging, written or not).
    pub fn put(&self, content_hash: &ContentHash, embedding: &ImageEmbedding) -> std::io::Result<()> {
        let written = self.write(content_hash, embedding);
        self.staged.lock().unwrap_or_else(PoisonError::into_inner).remove(content_hash);
        written
    }

    fn write(&self, content_hash: &ContentHash, embedding: &ImageEmbedding) -> std::io::Result<()> {
        let payload: Vec<u8> = embedding.values.iter().flat_map(|v| v.to_le_bytes()).collect();
        let payload = payload.as_slice();
        let mut bytes = Vec::with_capacity(HEADER_LEN + payload.len());
        bytes.extend_from_slice(MAGIC);
        bytes.extend_from_slice(&u32::try_from(embedding.tokens).unwrap_or(u32::MAX).to_le_bytes());
        bytes.extend_from_slice(&u32::try_from(embedding.width).unwrap_or(u32::MAX).to_le_bytes());
        bytes.extend_from_slice(blake3::hash(payload).as_bytes());
        bytes.extend_from_slice(payload);
        self.files.write(&entry_name(content_hash), &bytes)
    }

    /// Bytes on disk, as far as this process knows.
    pub fn size_bytes(&self) -> u64 {
        self.files.size_bytes()
    }
}

fn entry_name(content_hash: &ContentHash) -> String {
    format!("{}.emb", content_hash.as_str())
}

/// Checks and decodes one entry.
fn parse(bytes: &[u8]) -> Option<ImageEmbedding> {
    let (header, payload) = bytes.split_at_checked(HEADER_LEN)?;
    if &header[..8] != MAGIC {
        return None;
    }
    let tokens = u32::from_le_bytes(header[8..12].try_into().ok()?) as usize;
    let width = u32::from_le_bytes(header[12..16].try_into().ok()?) as usize;
    if payload.len() != tokens.checked_mul(width)?.checked_mul(2)? || blake3::hash(payload).as_bytes() != &header[16..]
    {
        return None;
    }
    let values = payload.chunks_exact(2).map(|b| f16::from_le_bytes([b[0], b[1]])).collect();
    Some(ImageEmbedding { tokens, width, values })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash(seed: &str) -> ContentHash {
        ContentHash::of(seed.as_bytes())
    }

    fn sample() -> ImageEmbedding {
        ImageEmbedding { tokens: 3, width: 4, values: (0..12).map(|i| f16::from_f32(i as f32 * 0.25 - 1.0)).collect() }
    }

    #[test]
    fn entries_round_trip_per_model() {
        let tmp = tempfile::tempdir().unwrap();
        let a = EmbeddingCache::open(tmp.path(), "model-a", 1 << 20).unwrap();
        let b = EmbeddingCache::open(tmp.path(), "model-b", 1 << 20).unwrap();
        a.put(&hash("ff00"), &sample()).unwrap();
        assert_eq!(a.get(&hash("ff00")), Some(sample()));
        assert!(a.contains(&hash("ff00")));
        assert_eq!(b.get(&hash("ff00")), None, "another model's tokens are never used");
    }

    #[test]
    fn damaged_entries_are_dropped() {
        let tmp = tempfile::tempdir().unwrap();
        let cache = EmbeddingCache::open(tmp.path(), "m", 1 << 20).unwrap();
        let key = hash("ab01");
        cache.put(&key, &sample()).unwrap();
        let hex = key.as_str();
        let path = tmp.path().join("m").join(&hex[..2]).join(format!("{hex}.emb"));
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0x40;
        std::fs::write(&path, &bytes).unwrap();
        assert_eq!(cache.get(&hash("ab01")), None);
        assert!(!path.exists(), "the damaged entry was removed");
        std::fs::write(&path, &bytes[..20]).unwrap();
        assert_eq!(cache.get(&hash("ab01")), None, "a truncated entry is refused");
    }
}
