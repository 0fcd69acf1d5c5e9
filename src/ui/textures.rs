//! The bounded texture cache: decoded thumbnails and viewer images become GPU textures a few per
//! frame (an upload budget, newest first), and the least recently drawn are freed once the cache
//! holds more than its cap in bytes. egui_extras' loaders keep every texture forever at full size,
//! which a 100,000-image library cannot afford.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use egui::{ColorImage, TextureHandle, TextureOptions};

use crate::image_file::ContentHash;
use crate::library::thumbnails::Thumbnail;

/// What a texture shows.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum TextureKey {
    /// A thumbnail of this content at this longest side.
    Thumb(ContentHash, u32),
    /// The image for the viewer (at most the GPU's texture side).
    Full(ContentHash),
}

/// The most time one frame spends uploading textures.
pub const UPLOAD_BUDGET: Duration = Duration::from_millis(4);

/// Uploads waiting beyond this many drop the oldest (the user scrolled past them).
const MAX_PENDING: usize = 512;

/// Pixels waiting to be uploaded.
enum Pixels {
    /// Straight from a decoder (thumbnails: small, converted at upload).
    Rgba(Arc<Thumbnail>),
    /// Already converted off the UI thread (viewer images: large).
    Color(Arc<ColorImage>),
}

impl Pixels {
    fn bytes(&self) -> usize {
        match self {
            Pixels::Rgba(t) => t.rgba.len(),
            Pixels::Color(c) => c.pixels.len() * 4,
        }
    }
}

struct Entry {
    texture: TextureHandle,
    bytes: usize,
    last_used: u64,
}

/// Textures by key, capped by bytes.
pub struct TextureCache {
    entries: HashMap<TextureKey, Entry>,
    pending: VecDeque<(TextureKey, Pixels)>,
    bytes: usize,
    cap_bytes: usize,
    frame: u64,
}

impl std::fmt::Debug for TextureCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TextureCache").field("textures", &self.entries.len()).field("bytes", &self.bytes).finish()
    }
}

impl TextureCache {
    /// An empty cache holding at most `cap_bytes` of pixels (what is drawn this frame always stays).
    pub fn new(cap_bytes: usize) -> Self {
        Self { entries: HashMap::new(), pending: VecDeque::new(), bytes: 0, cap_bytes, frame: 0 }
    }

    /// Changes the cap; the next upload frees down to it.
    pub fn set_cap(&mut self, cap_bytes: usize) {
        self.cap_bytes = cap_bytes;
    }

    /// Starts a frame: textures used from now on count as drawn in it.
    pub fn begin_frame(&mut self) {
        self.frame += 1;
    }

    /// The texture for `key`, if uploaded; marks it drawn this frame.
    pub fn get(&mut self, key: &TextureKey) -> Option<TextureHandle> {
        let frame = self.frame;
        self.entries.get_mut(key).map(|entry| {
            entry.last_used = frame;
            entry.texture.clone()
        })
    }

    /// Whether `key` is uploaded or waiting to be.
    pub fn has(&self, key: &TextureKey) -> bool {
        self.entries.contains_key(key) || self.pending.iter().any(|(k, _)| k == key)
    }

    /// Queues pixels to become the texture for `key` (replacing any waiting for the same key).
    pub fn queue(&mut self, key: TextureKey, pixels: Arc<Thumbnail>) {
        self.push(key, Pixels::Rgba(pixels));
    }

    /// Queues an image already converted for upload (large ones are converted off the UI thread).
    pub fn queue_image(&mut self, key: TextureKey, image: Arc<ColorImage>) {
        self.push(key, Pixels::Color(image));
    }

    fn push(&mut self, key: TextureKey, pixels: Pixels) {
        self.pending.retain(|(k, _)| k != &key);
        self.pending.push_back((key, pixels));
        while self.pending.len() > MAX_PENDING {
            self.pending.pop_front();
        }
    }

    /// Forgets every texture of one content (a file trashed or changed).
    pub fn forget(&mut self, content_hash: &ContentHash) {
        let gone: Vec<TextureKey> = self
            .entries
            .keys()
            .filter(|k| matches!(k, TextureKey::Thumb(h, _) | TextureKey::Full(h) if h == content_hash))
            .cloned()
            .collect();
        for key in gone {
            if let Some(entry) = self.entries.remove(&key) {
                self.bytes -= entry.bytes;
            }
        }
    }

    /// Uploads waiting pixels, newest first, until `budget` is spent; then frees the least
    /// recently drawn textures above the cap. Returns whether uploads are still waiting.
    pub fn upload(&mut self, ctx: &egui::Context, budget: Duration) -> bool {
        let start = Instant::now();
        while let Some((key, pixels)) = self.pending.pop_back() {
            let bytes = pixels.bytes();
            let image: egui::ImageData = match pixels {
                Pixels::Rgba(t) => {
                    let size = [t.width as usize, t.height as usize];
                    if t.rgba.len() != size[0] * size[1] * 4 {
                        continue;
                    }
                    ColorImage::from_rgba_unmultiplied(size, &t.rgba).into()
                }
                Pixels::Color(c) => egui::ImageData::Color(c),
            };
            let name = match &key {
                TextureKey::Thumb(hash, side) => format!("thumb-{}-{side}", hash.as_str()),
                TextureKey::Full(hash) => format!("full-{}", hash.as_str()),
            };
            let texture = ctx.load_texture(name, image, TextureOptions::LINEAR);
            if let Some(old) = self.entries.insert(key, Entry { texture, bytes, last_used: self.frame }) {
                self.bytes -= old.bytes;
            }
            self.bytes += bytes;
            if start.elapsed() >= budget {
                break;
            }
        }
        self.evict();
        !self.pending.is_empty()
    }

    fn evict(&mut self) {
        if self.bytes <= self.cap_bytes {
            return;
        }
        let mut by_age: Vec<(u64, TextureKey)> = self
            .entries
            .iter()
            .filter(|(_, e)| e.last_used < self.frame)
            .map(|(k, e)| (e.last_used, k.clone()))
            .collect();
        by_age.sort_unstable_by_key(|(used, _)| *used);
        for (_, key) in by_age {
            if self.bytes <= self.cap_bytes {
                break;
            }
            if let Some(entry) = self.entries.remove(&key) {
                self.bytes -= entry.bytes;
            }
        }
    }

    /// Bytes of pixels held as textures.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Textures held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no texture is held.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pixels(side: u32) -> Arc<Thumbnail> {
        Arc::new(Thumbnail { width: side, height: side, rgba: vec![128; (side * side * 4) as usize] })
    }

    fn hash(i: u8) -> ContentHash {
        ContentHash::of(&[i])
    }

    #[test]
    fn the_cache_stays_under_its_cap_keeping_what_was_drawn_last() {
        let ctx = egui::Context::default();
        // Room for two 16×16 textures (1 KiB each).
        let mut cache = TextureCache::new(2 * 1024);
        for i in 0..3 {
            cache.begin_frame();
            cache.queue(TextureKey::Thumb(hash(i), 16), pixels(16));
            cache.upload(&ctx, Duration::from_secs(1));
            assert!(cache.get(&TextureKey::Thumb(hash(i), 16)).is_some());
        }
        assert_eq!(cache.len(), 2);
        assert!(cache.bytes() <= 2 * 1024);
        assert!(cache.get(&TextureKey::Thumb(hash(0), 16)).is_none(), "the least recently drawn went");
        assert!(cache.get(&TextureKey::Thumb(hash(2), 16)).is_some());
        cache.forget(&hash(2));
        assert!(!cache.has(&TextureKey::Thumb(hash(2), 16)));
    }

    #[test]
    fn textures_drawn_this_frame_are_never_freed_and_uploads_go_newest_first() {
        let ctx = egui::Context::default();
        let mut cache = TextureCache::new(0);
        cache.begin_frame();
        cache.queue(TextureKey::Thumb(hash(1), 16), pixels(16));
        cache.queue(TextureKey::Thumb(hash(2), 16), pixels(16));
        // A zero budget uploads exactly one: the newest.
        assert!(cache.upload(&ctx, Duration::ZERO));
        assert!(cache.get(&TextureKey::Thumb(hash(2), 16)).is_some());
        assert!(!cache.upload(&ctx, Duration::ZERO));
        assert_eq!(cache.len(), 2, "both were drawn this frame, over the cap or not");
        cache.begin_frame();
        cache.upload(&ctx, Duration::ZERO);
        assert_eq!(cache.len(), 0);
    }
}
