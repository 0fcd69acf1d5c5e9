//! Thumbnails: decoded and downscaled off the UI thread, cached on disk by content hash.
//!
//! [`ThumbnailCache`] keeps one small JPEG (PNG when the image has transparency) per content hash
//! and size in the platform cache directory, so an image is decoded once, ever: a moved or renamed
//! file, or a restart, finds its thumbnail again. Storage, the size cap and crash safety come from
//! [`DiskCache`].
//! [`Thumbnailer`] runs requests on a few named threads, newest first, drops requests made stale
//! by a newer generation (the user scrolled away), and sends results back over a channel the UI
//! drains each frame.

use std::collections::{HashSet, VecDeque};
use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Condvar, Mutex, OnceLock, PoisonError};
use std::thread::JoinHandle;

use image::{ImageEncoder, RgbaImage};

use crate::disk_cache::DiskCache;
use crate::image_file::{self, ContentHash, ImageFileError};
use crate::model::preprocess::{PillowPixels, SourceImage, decode_image};
use crate::wake::Waker;

/// Default longest side of a grid thumbnail, in pixels.
pub const DEFAULT_SIDE_PX: u32 = 256;

/// Default cap on the cache's size on disk.
pub const DEFAULT_CAP_BYTES: u64 = 2 << 30;

/// Subfolder holding this layout of the cache, so a future layout can live beside it.
const LAYOUT: &str = "v1";

/// JPEG quality of stored thumbnails.
const JPEG_QUALITY: u8 = 85;

/// A decoded thumbnail, ready to upload as a texture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Thumbnail {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// RGBA8 pixels, row-major.
    pub rgba: Vec<u8>,
}

/// Why a thumbnail could not be made; names the file.
#[derive(Debug, thiserror::Error)]
pub enum ThumbnailError {
    /// The source image could not be read or decoded.
    #[error(transparent)]
    Source(#[from] ImageFileError),
    /// The cache folder could not be written.
    #[error("thumbnail cache {path}: {source}")]
    Cache {
        /// The cache file or folder.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// Encoding the thumbnail failed.
    #[error("cannot encode thumbnail of {path}: {message}")]
    Encode {
        /// The source image.
        path: PathBuf,
        /// The encoder's message.
        message: String,
    },
    /// No platform cache directory could be determined.
    #[error("no cache directory for RewardLens on this platform")]
    NoCacheDir,
}

/// The on-disk thumbnail cache.
#[derive(Debug)]
pub struct ThumbnailCache {
    files: DiskCache,
    decodes: AtomicU64,
}

impl ThumbnailCache {
    /// Opens (creating) a cache in `dir` holding at most about `cap_bytes`; leftovers of an
    /// interrupted write are removed.
    pub fn open(dir: &Path, cap_bytes: u64) -> Result<Self, ThumbnailError> {
        let dir = dir.join(LAYOUT);
        let files = DiskCache::open(&dir, cap_bytes).map_err(|source| ThumbnailError::Cache { path: dir, source })?;
        Ok(Self { files, decodes: AtomicU64::new(0) })
    }

    /// Opens the cache in the platform cache directory (`…/RewardLens/thumbnails`).
    pub fn open_default(cap_bytes: u64) -> Result<Self, ThumbnailError> {
        let dirs = directories::ProjectDirs::from("", "", "RewardLens").ok_or(ThumbnailError::NoCacheDir)?;
        Self::open(&dirs.cache_dir().join("thumbnails"), cap_bytes)
    }

    /// How many source images this cache has decoded since it was opened (for tests and stats).
    pub fn decodes(&self) -> u64 {
        self.decodes.load(Ordering::Relaxed)
    }

    /// Bytes the cache holds on disk, as far as this process knows.
    pub fn size_bytes(&self) -> u64 {
        self.files.size_bytes()
    }

    /// The cached thumbnail for this content and size, if there is a readable one.
    pub fn get(&self, content_hash: &ContentHash, side: u32) -> Option<Thumbnail> {
        for ext in ["jpg", "png"] {
            let name = entry_name(content_hash, side, ext);
            let Some(bytes) = self.files.read(&name) else { continue };
            match image::load_from_memory(&bytes) {
                Ok(img) => {
                    let rgba = img.to_rgba8();
                    return Some(Thumbnail { width: rgba.width(), height: rgba.height(), rgba: rgba.into_raw() });
                }
                // Damaged on disk: drop it so it is made again.
                Err(_) => self.files.remove(&name),
            }
        }
        None
    }

    /// The thumbnail of `source` (whose content hash is `content_hash`) with its longest side at
    /// most `side` pixels: from the cache, or decoded once and stored.
    pub fn get_or_create(
        &self,
        content_hash: &ContentHash,
        source: &Path,
        side: u32,
    ) -> Result<Thumbnail, ThumbnailError> {
        if let Some(thumb) = self.get(content_hash, side) {
            return Ok(thumb);
        }
        self.decodes.fetch_add(1, Ordering::Relaxed);
        let small = decode_fitted(source, side)?;
        let (w, h) = small.dimensions();
        let opaque = small.pixels().all(|p| p.0[3] == 255);
        let encoded = encode(&small, opaque)
            .map_err(|e| ThumbnailError::Encode { path: source.to_path_buf(), message: e.to_string() })?;
        let name = entry_name(content_hash, side, if opaque { "jpg" } else { "png" });
        self.files
            .write(&name, &encoded)
            .map_err(|source| ThumbnailError::Cache { path: self.files.path_of(&name), source })?;
        Ok(Thumbnail { width: w, height: h, rgba: small.into_raw() })
    }
}

/// The image at `source` decoded for display, scaled down (never up) to fit `side`×`side`: what a
/// viewer shows, read with the same guards as a thumbnail.
pub fn decode_for_display(source: &Path, side: u32) -> Result<Thumbnail, ThumbnailError> {
    let image = decode_fitted(source, side)?;
    Ok(Thumbnail { width: image.width(), height: image.height(), rgba: image.into_raw() })
}

/// Reads and decodes `source` with the file guards, then fits it within `side`.
fn decode_fitted(source: &Path, side: u32) -> Result<RgbaImage, ThumbnailError> {
    let bytes = image_file::read(source)?;
    let decoded = decode_image(&bytes).map_err(|kind| kind.at(source))?;
    drop(bytes);
    let (width, height) = (decoded.width(), decoded.height());
    let full = RgbaImage::from_raw(width, height, display_rgba8(&decoded))
        .ok_or_else(|| ThumbnailError::Encode { path: source.to_path_buf(), message: "bad buffer".into() })?;
    drop(decoded);
    let (w, h) = fit_within(width, height, side.max(1));
    Ok(if (w, h) == (width, height) { full } else { image::imageops::thumbnail(&full, w, h) })
}

/// The decoded pixels as 8-bit RGBA for display; 16-bit grey keeps its high byte, unlike the
/// model's input, which follows the reference's clip.
fn display_rgba8(image: &SourceImage) -> Vec<u8> {
    let gray = |v: u8| [v, v, v, 255];
    match image.pixels() {
        PillowPixels::Bilevel(v) | PillowPixels::L(v) => v.iter().flat_map(|&g| gray(g)).collect(),
        PillowPixels::La(v) => v.chunks_exact(2).flat_map(|p| [p[0], p[0], p[0], p[1]]).collect(),
        PillowPixels::Rgb(v) => v.chunks_exact(3).flat_map(|p| [p[0], p[1], p[2], 255]).collect(),
        PillowPixels::Rgba(v) => v.clone(),
        PillowPixels::Palette { indices, palette } => indices
            .iter()
            .flat_map(|&i| {
                let [r, g, b] = palette[usize::from(i)];
                [r, g, b, 255]
            })
            .collect(),
        PillowPixels::I16(v) => v.iter().flat_map(|&g| gray(g.to_be_bytes()[0])).collect(),
    }
}

/// The cache entry of one content hash at one size.
fn entry_name(content_hash: &ContentHash, side: u32, ext: &str) -> String {
    format!("{}-{side}.{ext}", content_hash.as_str())
}

/// The size of a `width`×`height` image scaled to fit in `side`×`side`, never enlarged.
pub fn fit_within(width: u32, height: u32, side: u32) -> (u32, u32) {
    if width <= side && height <= side {
        return (width, height);
    }
    let scale = f64::from(side) / f64::from(width.max(height));
    let fit = |v: u32| ((f64::from(v) * scale).round() as u32).clamp(1, side);
    (fit(width), fit(height))
}

fn encode(img: &RgbaImage, opaque: bool) -> image::ImageResult<Vec<u8>> {
    let mut out = Vec::new();
    if opaque {
        let rgb = image::DynamicImage::ImageRgba8(img.clone()).to_rgb8();
        image::codecs::jpeg::JpegEncoder::new_with_quality(Cursor::new(&mut out), JPEG_QUALITY).write_image(
            rgb.as_raw(),
            rgb.width(),
            rgb.height(),
            image::ExtendedColorType::Rgb8,
        )?;
    } else {
        image::codecs::png::PngEncoder::new(Cursor::new(&mut out)).write_image(
            img.as_raw(),
            img.width(),
            img.height(),
            image::ExtendedColorType::Rgba8,
        )?;
    }
    Ok(out)
}

/// Requests waiting at most; beyond it the oldest are dropped (the newest run first anyway).
pub const MAX_QUEUED: usize = 1024;

/// One thumbnail to make.
#[derive(Debug, Clone)]
pub struct ThumbnailRequest {
    /// Content hash of the image (the cache key).
    pub content_hash: ContentHash,
    /// Where the image is now.
    pub path: PathBuf,
    /// Longest side wanted.
    pub side: u32,
    /// The view generation that asked; requests older than the current one are dropped.
    pub generation: u64,
}

/// A finished request.
#[derive(Debug, Clone)]
pub enum ThumbnailEvent {
    /// The thumbnail is ready.
    Ready {
        /// Content hash it belongs to.
        content_hash: ContentHash,
        /// Longest side requested.
        side: u32,
        /// The pixels.
        thumbnail: Arc<Thumbnail>,
    },
    /// The image could not be thumbnailed; shown as a broken cell with this reason.
    Failed {
        /// Content hash it belongs to.
        content_hash: ContentHash,
        /// The file.
        path: PathBuf,
        /// Why, naming the file.
        reason: String,
    },
    /// The cache folder could not be opened ([`Thumbnailer::start_opening`]): no thumbnails this
    /// session; says why once.
    Unavailable(String),
}

/// Where the workers get their cache: given, or opened by the first worker to need it.
enum CacheSource {
    Ready(Arc<ThumbnailCache>),
    Open {
        dir: PathBuf,
        cap_bytes: u64,
        opened: OnceLock<Result<Arc<ThumbnailCache>, String>>,
        /// Set by the worker that reported a failed open.
        reported: AtomicBool,
    },
}

impl CacheSource {
    /// The cache, opening it on first use (other workers wait for that open); `None`, reported
    /// once, when it cannot be opened.
    fn get(&self, sender: &Sender<ThumbnailEvent>, waker: Option<&Waker>) -> Option<Arc<ThumbnailCache>> {
        let (dir, cap_bytes, opened, reported) = match self {
            Self::Ready(cache) => return Some(Arc::clone(cache)),
            Self::Open { dir, cap_bytes, opened, reported } => (dir, *cap_bytes, opened, reported),
        };
        match opened.get_or_init(|| ThumbnailCache::open(dir, cap_bytes).map(Arc::new).map_err(|e| e.to_string())) {
            Ok(cache) => Some(Arc::clone(cache)),
            Err(e) => {
                if !reported.swap(true, Ordering::Relaxed) {
                    let _ = sender.send(ThumbnailEvent::Unavailable(format!("thumbnails are unavailable: {e}")));
                    if let Some(waker) = waker {
                        waker.wake();
                    }
                }
                None
            }
        }
    }
}

/// Work shared between the [`Thumbnailer`] handle and its threads.
struct Queue {
    requests: VecDeque<ThumbnailRequest>,
    in_flight: HashSet<(ContentHash, u32)>,
    generation: u64,
    stopping: bool,
}

/// Makes thumbnails on a few named threads so the UI never decodes an image.
pub struct Thumbnailer {
    shared: Arc<(Mutex<Queue>, Condvar)>,
    threads: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for Thumbnailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Thumbnailer").field("threads", &self.threads.len()).finish()
    }
}

impl Thumbnailer {
    /// Starts `threads` workers on `cache`; results arrive on the returned receiver, and `waker`
    /// runs after each one is sent.
    pub fn start(
        cache: Arc<ThumbnailCache>,
        threads: usize,
        waker: Option<Waker>,
    ) -> Result<(Self, Receiver<ThumbnailEvent>), std::io::Error> {
        Self::start_with(Arc::new(CacheSource::Ready(cache)), threads, waker)
    }

    fn start_with(
        source: Arc<CacheSource>,
        threads: usize,
        waker: Option<Waker>,
    ) -> Result<(Self, Receiver<ThumbnailEvent>), std::io::Error> {
        let (sender, receiver) = channel();
        let shared = Arc::new((
            Mutex::new(Queue { requests: VecDeque::new(), in_flight: HashSet::new(), generation: 0, stopping: false }),
            Condvar::new(),
        ));
        let mut handles = Vec::new();
        for i in 0..threads.max(1) {
            let shared = Arc::clone(&shared);
            let source = Arc::clone(&source);
            let sender: Sender<ThumbnailEvent> = sender.clone();
            let waker = waker.clone();
            handles.push(std::thread::Builder::new().name(format!("rewardlens-thumb-{i}")).spawn(move || {
                crate::priority::set_current_thread_priority(crate::priority::Priority::Service);
                if let Some(cache) = source.get(&sender, waker.as_ref()) {
                    work(&shared, &cache, &sender, waker.as_ref());
                }
            })?);
        }
        Ok((Self { shared, threads: handles }, receiver))
    }

    /// Starts `threads` workers that open the cache at `dir` themselves (counting an existing
    /// cache's size walks every entry: never on the caller's, the UI's, thread). A cache that
    /// cannot be opened is reported once as [`ThumbnailEvent::Unavailable`].
    pub fn start_opening(
        dir: PathBuf,
        cap_bytes: u64,
        threads: usize,
        waker: Option<Waker>,
    ) -> Result<(Self, Receiver<ThumbnailEvent>), std::io::Error> {
        let source = CacheSource::Open { dir, cap_bytes, opened: OnceLock::new(), reported: AtomicBool::new(false) };
        Self::start_with(Arc::new(source), threads, waker)
    }

    /// Asks for a thumbnail; the newest requests run first. A request already queued or running for
    /// the same image and size is not repeated.
    pub fn request(&self, request: ThumbnailRequest) {
        let (lock, wake) = &*self.shared;
        let mut queue = lock.lock().unwrap_or_else(PoisonError::into_inner);
        let key = (request.content_hash.clone(), request.side);
        if queue.in_flight.contains(&key) {
            return;
        }
        queue.requests.retain(|r| (&r.content_hash, r.side) != (&key.0, key.1));
        queue.requests.push_back(request);
        // A fast scroll asks for more than can be made: the oldest asks (scrolled past) go.
        while queue.requests.len() > MAX_QUEUED {
            queue.requests.pop_front();
        }
        wake.notify_one();
    }

    /// Starts a new view generation: queued requests from older generations are dropped unread.
    pub fn set_generation(&self, generation: u64) {
        let (lock, _) = &*self.shared;
        let mut queue = lock.lock().unwrap_or_else(PoisonError::into_inner);
        queue.generation = generation;
        queue.requests.retain(|r| r.generation >= generation);
    }

    /// Requests waiting to run.
    pub fn queued(&self) -> usize {
        let (lock, _) = &*self.shared;
        lock.lock().unwrap_or_else(PoisonError::into_inner).requests.len()
    }
}

impl Drop for Thumbnailer {
    fn drop(&mut self) {
        let (lock, wake) = &*self.shared;
        lock.lock().unwrap_or_else(PoisonError::into_inner).stopping = true;
        wake.notify_all();
        for handle in self.threads.drain(..) {
            let _ = handle.join();
        }
    }
}

fn work(
    shared: &(Mutex<Queue>, Condvar),
    cache: &ThumbnailCache,
    sender: &Sender<ThumbnailEvent>,
    waker: Option<&Waker>,
) {
    let (lock, wake) = shared;
    loop {
        let request = {
            let mut queue = lock.lock().unwrap_or_else(PoisonError::into_inner);
            loop {
                if queue.stopping {
                    return;
                }
                if let Some(request) = queue.requests.pop_back() {
                    if request.generation < queue.generation {
                        continue;
                    }
                    queue.in_flight.insert((request.content_hash.clone(), request.side));
                    break request;
                }
                queue = wake.wait(queue).unwrap_or_else(PoisonError::into_inner);
            }
        };
        let event = match cache.get_or_create(&request.content_hash, &request.path, request.side) {
            Ok(thumb) => ThumbnailEvent::Ready {
                content_hash: request.content_hash.clone(),
                side: request.side,
                thumbnail: Arc::new(thumb),
            },
            Err(e) => ThumbnailEvent::Failed {
                content_hash: request.content_hash.clone(),
                path: request.path.clone(),
                reason: e.to_string(),
            },
        };
        lock.lock().unwrap_or_else(PoisonError::into_inner).in_flight.remove(&(request.content_hash, request.side));
        if sender.send(event).is_err() {
            return;
        }
        crate::wake::wake(waker);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// A content hash made of `tag` repeated (its first two digits pick the shard).
    fn h(tag: &str) -> ContentHash {
        let mut hex = tag.repeat(64 / tag.len() + 1);
        hex.truncate(64);
        ContentHash::parse(&hex).unwrap()
    }

    /// A `side`×`side` RGB PNG of noise (thumbnails of it cost real decode work), or RGBA with a
    /// transparent corner.
    fn write_png(path: &Path, side: u32, alpha: bool) {
        let channels = if alpha { 4 } else { 3 };
        let mut pixels = crate::synthetic::noise_bytes(0x2545_F491_4F6C_DD1D, side as usize * side as usize * channels);
        if alpha {
            pixels[3] = 0;
        }
        let color = if alpha { image::ExtendedColorType::Rgba8 } else { image::ExtendedColorType::Rgb8 };
        image::save_buffer(path, &pixels, side, side, color).unwrap();
    }

    #[test]
    fn a_large_png_is_decoded_once_ever() {
        let tmp = tempfile::tempdir().unwrap();
        let source = tmp.path().join("big.png");
        write_png(&source, 1024, false);
        let cache_dir = tmp.path().join("cache");
        let cache = ThumbnailCache::open(&cache_dir, DEFAULT_CAP_BYTES).unwrap();
        let first = cache.get_or_create(&h("ab12"), &source, 256).unwrap();
        assert_eq!((first.width, first.height), (256, 256));
        assert_eq!(first.rgba.len(), 256 * 256 * 4);
        let again = cache.get_or_create(&h("ab12"), &source, 256).unwrap();
        assert_eq!((again.width, again.height), (256, 256));
        assert_eq!(cache.decodes(), 1);
        // After a restart, and with the source gone (moved), the cache still answers.
        drop(cache);
        std::fs::remove_file(&source).unwrap();
        let reopened = ThumbnailCache::open(&cache_dir, DEFAULT_CAP_BYTES).unwrap();
        assert!(reopened.size_bytes() > 0);
        let cached = reopened.get_or_create(&h("ab12"), &source, 256).unwrap();
        assert_eq!((cached.width, cached.height), (256, 256));
        assert_eq!(reopened.decodes(), 0);
    }

    #[test]
    fn transparency_is_kept_and_aspect_ratio_respected() {
        let tmp = tempfile::tempdir().unwrap();
        let source = tmp.path().join("alpha.png");
        write_png(&source, 64, true);
        let cache = ThumbnailCache::open(&tmp.path().join("c"), DEFAULT_CAP_BYTES).unwrap();
        let thumb = cache.get_or_create(&h("cd34"), &source, 32).unwrap();
        let stored = cache.get(&h("cd34"), 32).unwrap();
        assert_eq!(stored, thumb, "PNG storage is lossless");
        assert!(thumb.rgba.chunks(4).any(|p| p[3] < 255));
        assert_eq!(fit_within(1000, 60, 256), (256, 15));
        assert_eq!(fit_within(90, 700, 256), (33, 256));
        assert_eq!(fit_within(100, 50, 256), (100, 50), "never enlarged");
        assert_eq!(fit_within(100_000, 1, 256), (256, 1));
    }

    #[test]
    fn the_cap_evicts_least_recently_used_thumbnails() {
        let tmp = tempfile::tempdir().unwrap();
        let source = tmp.path().join("s.png");
        write_png(&source, 128, false);
        let one = {
            let probe = ThumbnailCache::open(&tmp.path().join("probe"), DEFAULT_CAP_BYTES).unwrap();
            probe.get_or_create(&h("00aa"), &source, 128).unwrap();
            probe.size_bytes()
        };
        // Room for about three thumbnails.
        let cache = ThumbnailCache::open(&tmp.path().join("c"), one * 3 + one / 2).unwrap();
        for i in 0..6 {
            cache.get_or_create(&h(&format!("{i:02}ff")), &source, 128).unwrap();
            // Distinct mtimes, so "least recently used" is well defined on coarse clocks.
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(cache.size_bytes() <= one * 3 + one / 2, "{} > cap", cache.size_bytes());
        assert!(cache.get(&h("05ff"), 128).is_some(), "the newest stays");
        assert!(cache.get(&h("00ff"), 128).is_none(), "the oldest went");
    }

    #[test]
    fn leftover_temporary_files_and_damaged_entries_are_cleaned_up() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("c");
        let source = tmp.path().join("s.png");
        write_png(&source, 40, false);
        {
            let cache = ThumbnailCache::open(&dir, DEFAULT_CAP_BYTES).unwrap();
            cache.get_or_create(&h("ee11"), &source, 256).unwrap();
        }
        let shard = dir.join(LAYOUT).join("ee");
        let stem = format!("{}-256", h("ee11"));
        std::fs::write(shard.join(format!("{stem}.tmp-99-0")), b"half").unwrap();
        std::fs::write(shard.join(format!("{stem}.jpg")), b"garbage").unwrap();
        let cache = ThumbnailCache::open(&dir, DEFAULT_CAP_BYTES).unwrap();
        assert!(!shard.join(format!("{stem}.tmp-99-0")).exists());
        let thumb = cache.get_or_create(&h("ee11"), &source, 256).unwrap();
        assert_eq!((thumb.width, thumb.height), (40, 40));
        assert_eq!(cache.decodes(), 1, "the damaged entry was made again");
    }

    #[test]
    fn workers_open_the_cache_themselves_and_a_cache_that_cannot_open_is_said_once() {
        let tmp = tempfile::tempdir().unwrap();
        let good = tmp.path().join("g.png");
        write_png(&good, 100, false);
        let request = ThumbnailRequest { content_hash: h("1111"), path: good.clone(), side: 32, generation: 0 };
        let (thumbs, events) = Thumbnailer::start_opening(tmp.path().join("c"), DEFAULT_CAP_BYTES, 2, None).unwrap();
        thumbs.request(request.clone());
        let event = events.recv_timeout(Duration::from_secs(10)).unwrap();
        assert!(matches!(event, ThumbnailEvent::Ready { thumbnail, .. } if thumbnail.width == 32));
        drop(thumbs);
        assert!(tmp.path().join("c").is_dir(), "the workers opened (created) the cache");

        // A file where the folder should be: every worker fails to open, one says so.
        let blocked = tmp.path().join("blocked");
        std::fs::write(&blocked, b"").unwrap();
        let (thumbs, events) = Thumbnailer::start_opening(blocked, DEFAULT_CAP_BYTES, 3, None).unwrap();
        thumbs.request(request);
        let event = events.recv_timeout(Duration::from_secs(10)).unwrap();
        assert!(matches!(&event, ThumbnailEvent::Unavailable(reason) if reason.contains("blocked")), "{event:?}");
        drop(thumbs);
        assert!(events.try_iter().next().is_none(), "said once, and nothing else came");
    }

    #[test]
    fn the_thumbnailer_reports_results_and_failures_and_drops_stale_requests() {
        let tmp = tempfile::tempdir().unwrap();
        let good = tmp.path().join("g.png");
        write_png(&good, 300, false);
        let bad = tmp.path().join("bad.png");
        std::fs::write(&bad, b"\x89PNG\r\n\x1a\nnope").unwrap();
        let cache = Arc::new(ThumbnailCache::open(&tmp.path().join("c"), DEFAULT_CAP_BYTES).unwrap());
        let wakes = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&wakes);
        let waker = Waker::new(move || {
            counter.fetch_add(1, Ordering::SeqCst);
        });
        let (thumbs, events) = Thumbnailer::start(Arc::clone(&cache), 1, Some(waker)).unwrap();
        let request = |hash: &str, path: &Path, generation| ThumbnailRequest {
            content_hash: h(hash),
            path: path.to_path_buf(),
            side: 64,
            generation,
        };
        thumbs.request(request("1111", &good, 0));
        thumbs.request(request("2222", &bad, 0));
        let mut got = Vec::new();
        for _ in 0..2 {
            got.push(events.recv_timeout(Duration::from_secs(10)).unwrap());
        }
        assert!(got.iter().any(|e| matches!(e, ThumbnailEvent::Ready { content_hash, thumbnail, .. }
            if *content_hash == h("1111") && thumbnail.width == 64)));
        assert!(got.iter().any(|e| matches!(e, ThumbnailEvent::Failed { reason, .. } if reason.contains("bad.png"))));
        // The wake follows the send: give the last one a moment.
        let deadline = std::time::Instant::now() + Duration::from_secs(2);
        while wakes.load(Ordering::SeqCst) < 2 && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(wakes.load(Ordering::SeqCst) >= 2, "the owner is woken after each result");

        // Queue many old-generation requests behind a slow-ish one, then move on: they are dropped.
        let stale: Vec<PathBuf> = (0..50)
            .map(|i| {
                let p = tmp.path().join(format!("s{i}.png"));
                std::fs::copy(&good, &p).unwrap();
                p
            })
            .collect();
        for (i, p) in stale.iter().enumerate() {
            thumbs.request(request(&format!("{i:04}aa"), p, 1));
        }
        thumbs.set_generation(2);
        assert_eq!(thumbs.queued(), 0);
        // Stale requests already started (the decode counter counts starts; two were the first
        // requests) may finish; none starts after the change.
        let stale_started = cache.decodes().saturating_sub(2) as usize;
        thumbs.request(request("3333", &good, 2));
        let mut ready = Vec::new();
        while let Ok(ThumbnailEvent::Ready { content_hash, .. }) = events.recv_timeout(Duration::from_secs(5)) {
            let done = content_hash == h("3333");
            ready.push(content_hash);
            if done {
                break;
            }
        }
        assert_eq!(ready.last(), Some(&h("3333")));
        let stale_done = ready.len() - 1;
        assert!(stale_done <= stale_started + 1, "{stale_done} stale results, {stale_started} started: {ready:?}");
        assert!(stale_done < 50, "nothing was dropped");
    }
}
