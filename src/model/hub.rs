//! Downloading the model from the Hugging Face hub into the hub's own cache layout, so the Python
//! tools and RewardLens share one copy: `blobs/<hash>` (written as `<hash>.incomplete`, resumed with
//! `Range`, hashed while streaming and verified before it gets its name), `snapshots/<commit>/<file>`
//! linking to the blob, and `refs/<revision>` naming the commit.
//!
//! A small blocking client (ureq, rustls on ring) on the caller's thread: no async runtime. The
//! token goes to the hub's own host only, never to the host a redirect leads to.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use sha2::Digest;

use super::locate::{CacheDirs, HUB_REPO};

/// The hub's address unless `HF_ENDPOINT` names another.
pub const DEFAULT_ENDPOINT: &str = "https://huggingface.co";

/// The published model's files: the weights and the text tower's configuration.
pub const MODEL_FILES: &[&str] = &["ImageReward.pt", "med_config.json"];

/// Files fetched when the repository has them (other ImageReward-format repositories carry their own
/// image-tower configuration or vocabulary); their absence is no error.
pub const OPTIONAL_FILES: &[&str] = &["vision_config.json", "vocab.txt"];

/// Room left free on the disk beyond the download itself.
const DISK_MARGIN: u64 = 64 << 20;

/// Why a download did not complete. Each says what the user can do.
#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    /// The hub cannot be reached.
    #[error("cannot reach {host} ({reason}): are you offline? Nothing was changed; run the download again later")]
    Offline {
        /// The host tried.
        host: String,
        /// What the network said.
        reason: String,
    },
    /// 401 or 403: the repository needs a token, or the token given was refused.
    #[error("{url} answered {status}: {}", if *.had_token {
        "the token was refused; check HF_TOKEN or the token file"
    } else {
        "a Hugging Face token is needed: set HF_TOKEN or log in with `huggingface-cli login`"
    })]
    Unauthorized {
        /// The address.
        url: String,
        /// 401 or 403.
        status: u16,
        /// Whether a token was sent.
        had_token: bool,
    },
    /// 404: no such repository, revision or file.
    #[error("{url} answered 404: no such file in the repository (check HF_ENDPOINT and the repository name)")]
    NotFound {
        /// The address.
        url: String,
    },
    /// Another unexpected answer.
    #[error("{url} answered {status}")]
    Http {
        /// The address.
        url: String,
        /// The HTTP status.
        status: u16,
    },
    /// The hub's answer lacks what the cache layout needs.
    #[error("{url}: {what}")]
    BadAnswer {
        /// The address.
        url: String,
        /// What is missing or wrong.
        what: String,
    },
    /// Not enough free space for what is left to fetch.
    #[error("not enough disk space in {}: {} needed, {} free", dir.display(), human_bytes(*need), human_bytes(*free))]
    DiskFull {
        /// The cache folder.
        dir: PathBuf,
        /// Bytes still to fetch (and the margin kept free).
        need: u64,
        /// Bytes available.
        free: u64,
    },
    /// The connection broke off; what arrived is kept and the next run resumes from there.
    #[error("the connection broke off after {} of {} of {file} ({reason}); run the download again to resume", human_bytes(*done), human_bytes(*total))]
    Cut {
        /// The file.
        file: String,
        /// Bytes on disk now.
        done: u64,
        /// The file's size.
        total: u64,
        /// What the network said.
        reason: String,
    },
    /// The file that arrived is not the one published; it was deleted.
    #[error(
        "{file} arrived corrupt (expected {expected}, got {got}); the bad copy was deleted, run the download again"
    )]
    Checksum {
        /// The file.
        file: String,
        /// The published hash.
        expected: String,
        /// The hash of what arrived.
        got: String,
    },
    /// The user cancelled; what arrived is kept for a later resume.
    #[error("download cancelled; what arrived is kept and the next download resumes it")]
    Cancelled,
    /// Writing to the cache failed.
    #[error("cannot write {}: {source}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

impl DownloadError {
    fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Self + '_ {
        move |source| {
            if is_disk_full(&source) {
                let dir = path.parent().unwrap_or(path).to_path_buf();
                let free = free_space(&dir).unwrap_or(0);
                Self::DiskFull { dir, need: 0, free }
            } else {
                Self::Io { path: path.to_path_buf(), source }
            }
        }
    }
}

fn is_disk_full(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::StorageFull || e.kind() == std::io::ErrorKind::QuotaExceeded
}

/// Bytes as a person reads them (`1.7 GB`).
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1000.0 && unit + 1 < UNITS.len() {
        v /= 1000.0;
        unit += 1;
    }
    if unit == 0 { format!("{n} B") } else { format!("{v:.1} {}", UNITS[unit]) }
}

/// Where to download from and with what credentials.
#[derive(Debug, Clone)]
pub struct HubSettings {
    /// `HF_ENDPOINT` or the public hub, without a trailing slash.
    pub endpoint: String,
    /// `HF_TOKEN`, else the token file in the Hugging Face home.
    pub token: Option<String>,
    /// `OWNER/NAME`.
    pub repo: String,
    /// Branch, tag or commit.
    pub revision: String,
    /// The hub cache folder (`…/huggingface/hub`).
    pub cache: PathBuf,
}

impl HubSettings {
    /// Settings from this process's environment, for the published model.
    pub fn from_env() -> Option<Self> {
        Self::from_vars(|n| std::env::var_os(n), &CacheDirs::from_env())
    }

    /// Settings from `var` and `dirs` (tests pass their own); `None` without any cache folder.
    pub fn from_vars(var: impl Fn(&str) -> Option<std::ffi::OsString>, dirs: &CacheDirs) -> Option<Self> {
        let text = |n: &str| var(n).and_then(|v| v.into_string().ok()).map(|s| s.trim().to_string());
        let endpoint = text("HF_ENDPOINT").filter(|s| !s.is_empty()).unwrap_or_else(|| DEFAULT_ENDPOINT.into());
        let token = text("HF_TOKEN").filter(|s| !s.is_empty()).or_else(|| {
            let file = dirs.hf_home()?.join("token");
            std::fs::read_to_string(file).ok().map(|s| s.trim().to_string()).filter(|s| !s.is_empty())
        });
        Some(Self {
            endpoint: endpoint.trim_end_matches('/').to_string(),
            token,
            repo: HUB_REPO.into(),
            revision: "main".into(),
            cache: dirs.hub_cache()?,
        })
    }

    /// The repository's folder in the cache.
    pub fn repo_dir(&self) -> PathBuf {
        self.cache.join(format!("models--{}", self.repo.replace('/', "--")))
    }

    fn resolve_url(&self, file: &str) -> String {
        format!("{}/{}/resolve/{}/{}", self.endpoint, self.repo, self.revision, file)
    }
}

/// How a file's content is checked: LFS files by sha256, small files by their git blob id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlobHash {
    /// `X-Linked-Etag`: the sha256 of an LFS file.
    Sha256(String),
    /// `ETag` of a file kept in git: sha1 of `blob <len>\0<content>`.
    GitSha1(String),
}

impl BlobHash {
    /// The hex digest, which is also the blob's name in the cache.
    pub fn hex(&self) -> &str {
        match self {
            Self::Sha256(h) | Self::GitSha1(h) => h,
        }
    }
}

/// What `HEAD` said about one file.
#[derive(Debug, Clone)]
pub struct RemoteFile {
    /// The file name in the repository.
    pub name: String,
    /// `X-Repo-Commit`: the snapshot the file belongs to.
    pub commit: String,
    /// Its size in bytes.
    pub size: u64,
    /// How to verify it; also its blob name.
    pub hash: BlobHash,
    /// Where the bytes are fetched (the redirect's target, or the hub itself).
    pub url: String,
}

/// Progress of a download, sent about ten times a second.
#[derive(Debug, Clone, PartialEq)]
pub struct Progress {
    /// The file being fetched.
    pub file: String,
    /// Bytes of all files on disk so far.
    pub done: u64,
    /// Bytes of all files.
    pub total: u64,
    /// Bytes per second over the last few seconds.
    pub rate: f64,
    /// Time left at that rate.
    pub eta: Option<Duration>,
    /// Bytes found from an earlier, interrupted download (not fetched again).
    pub resumed: u64,
}

/// What a finished download left.
#[derive(Debug, Clone)]
pub struct Downloaded {
    /// `snapshots/<commit>`: the model folder.
    pub dir: PathBuf,
    /// The commit.
    pub commit: String,
    /// Bytes fetched over the network in this run.
    pub fetched: u64,
    /// Bytes that were already there (whole blobs or a partial one).
    pub reused: u64,
    /// Wall time.
    pub elapsed: Duration,
}

/// The client: one agent that never follows redirects itself (so the token never leaves the hub).
pub struct Hub {
    settings: HubSettings,
    agent: ureq::Agent,
}

impl Hub {
    /// A client for `settings`.
    pub fn new(settings: HubSettings) -> Self {
        let config = ureq::Agent::config_builder()
            .max_redirects(0)
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(15)))
            .timeout_recv_response(Some(Duration::from_secs(60)))
            .timeout_recv_body(None)
            .user_agent(concat!("rewardlens/", env!("CARGO_PKG_VERSION")))
            .build();
        Self { settings, agent: ureq::Agent::new_with_config(config) }
    }

    /// The settings in use.
    pub fn settings(&self) -> &HubSettings {
        &self.settings
    }

    fn host_of(url: &str) -> &str {
        let rest = url.split_once("://").map_or(url, |(_, r)| r);
        rest.split(['/', '?', '#']).next().unwrap_or(rest)
    }

    /// Whether `url` is on the hub's own host (scheme, host and port), the only place the token goes.
    fn is_hub(&self, url: &str) -> bool {
        let scheme = |u: &str| u.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
        scheme(url) == scheme(&self.settings.endpoint)
            && Self::host_of(url).eq_ignore_ascii_case(Self::host_of(&self.settings.endpoint))
    }

    fn request(
        &self,
        method: &str,
        url: &str,
        range_from: u64,
    ) -> Result<ureq::http::Response<ureq::Body>, DownloadError> {
        let mut req = if method == "HEAD" { self.agent.head(url) } else { self.agent.get(url) };
        if let Some(token) = self.settings.token.as_ref().filter(|_| self.is_hub(url)) {
            req = req.header("Authorization", format!("Bearer {token}"));
        }
        if range_from > 0 {
            req = req.header("Range", format!("bytes={range_from}-"));
        }
        req.call().map_err(|e| match e {
            ureq::Error::Io(io)
                if matches!(io.kind(), std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::ConnectionReset) =>
            {
                DownloadError::Cut { file: url.into(), done: range_from, total: 0, reason: io.to_string() }
            }
            other => DownloadError::Offline { host: Self::host_of(url).to_string(), reason: other.to_string() },
        })
    }

    fn status_error(&self, url: &str, status: u16) -> DownloadError {
        match status {
            401 | 403 => DownloadError::Unauthorized {
                url: url.into(),
                status,
                had_token: self.settings.token.is_some() && self.is_hub(url),
            },
            404 => DownloadError::NotFound { url: url.into() },
            _ => DownloadError::Http { url: url.into(), status },
        }
    }

    /// `HEAD` on the file's resolve address: its commit, size, hash and where its bytes are.
    /// Redirects on the hub's own host (a renamed repository) are followed; the first one to another
    /// host is the download address.
    pub fn head(&self, file: &str) -> Result<RemoteFile, DownloadError> {
        let mut url = self.settings.resolve_url(file);
        let mut commit = None;
        let mut linked: Option<(u64, String)> = None;
        for _ in 0..6 {
            let resp = self.request("HEAD", &url, 0)?;
            let header = |name: &str| resp.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
            commit = header("x-repo-commit").or(commit);
            if let (Some(size), Some(etag)) = (header("x-linked-size"), header("x-linked-etag")) {
                let size = size.trim().parse().map_err(|_| DownloadError::BadAnswer {
                    url: url.clone(),
                    what: format!("X-Linked-Size is not a number: {size:?}"),
                })?;
                linked = Some((size, normalize_etag(&etag)));
            }
            let status = resp.status().as_u16();
            match status {
                200 => {
                    let commit = commit.ok_or_else(|| missing(&url, "X-Repo-Commit"))?;
                    if let Some((size, sha)) = linked {
                        return Ok(RemoteFile { name: file.into(), commit, size, hash: BlobHash::Sha256(sha), url });
                    }
                    let etag = header("etag").ok_or_else(|| missing(&url, "ETag"))?;
                    let size = header("content-length")
                        .and_then(|s| s.trim().parse().ok())
                        .ok_or_else(|| missing(&url, "Content-Length"))?;
                    let hash = BlobHash::GitSha1(normalize_etag(&etag));
                    return Ok(RemoteFile { name: file.into(), commit, size, hash, url });
                }
                301 | 302 | 303 | 307 | 308 => {
                    let location = header("location").ok_or_else(|| missing(&url, "Location"))?;
                    let next = absolute(&url, &location);
                    if self.is_hub(&next) && linked.is_none() {
                        url = next;
                        continue;
                    }
                    let commit = commit.ok_or_else(|| missing(&url, "X-Repo-Commit"))?;
                    let (size, sha) = linked.ok_or_else(|| missing(&url, "X-Linked-Size and X-Linked-Etag"))?;
                    return Ok(RemoteFile { name: file.into(), commit, size, hash: BlobHash::Sha256(sha), url: next });
                }
                _ => return Err(self.status_error(&url, status)),
            }
        }
        Err(DownloadError::BadAnswer { url, what: "too many redirects".into() })
    }

    /// Downloads the model's files into the cache (resuming what an earlier run left, skipping what
    /// is complete), checking free space first; `progress` hears about ten times a second and
    /// `cancel` stops it between reads.
    pub fn download(
        &self,
        progress: &mut dyn FnMut(&Progress),
        cancel: &AtomicBool,
    ) -> Result<Downloaded, DownloadError> {
        let started = Instant::now();
        let mut remote = Vec::new();
        for file in MODEL_FILES {
            remote.push(self.head(file)?);
        }
        for file in OPTIONAL_FILES {
            match self.head(file) {
                Ok(r) => remote.push(r),
                Err(DownloadError::NotFound { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        let commit = remote[0].commit.clone();
        let repo_dir = self.settings.repo_dir();
        let blobs = repo_dir.join("blobs");
        std::fs::create_dir_all(&blobs).map_err(DownloadError::io(&blobs))?;

        let on_disk = |r: &RemoteFile| -> u64 {
            let whole = blobs.join(r.hash.hex());
            if std::fs::metadata(&whole).is_ok_and(|m| m.len() == r.size) {
                return r.size;
            }
            std::fs::metadata(partial_path(&blobs, &r.hash)).map_or(0, |m| m.len().min(r.size))
        };
        let total: u64 = remote.iter().map(|r| r.size).sum();
        let have: u64 = remote.iter().map(on_disk).sum();
        if let Some(free) = free_space(&blobs) {
            let need = total - have + DISK_MARGIN;
            if free < need {
                return Err(DownloadError::DiskFull { dir: blobs, need, free });
            }
        }

        let mut meter = Meter::new(total, have);
        let mut fetched = 0;
        for r in &remote {
            fetched += self.fetch_blob(r, &blobs, &mut meter, progress, cancel)?;
        }
        let snapshot = repo_dir.join("snapshots").join(&commit);
        std::fs::create_dir_all(&snapshot).map_err(DownloadError::io(&snapshot))?;
        for r in &remote {
            link_blob(&snapshot.join(&r.name), &blobs.join(r.hash.hex()))?;
        }
        let refs = repo_dir.join("refs");
        std::fs::create_dir_all(&refs).map_err(DownloadError::io(&refs))?;
        if !is_commit_hash(&self.settings.revision) {
            let ref_file = refs.join(&self.settings.revision);
            write_atomically(&ref_file, commit.as_bytes())?;
        }
        Ok(Downloaded { dir: snapshot, commit, fetched, reused: have, elapsed: started.elapsed() })
    }

    /// Brings one blob into the cache; returns the bytes fetched over the network.
    fn fetch_blob(
        &self,
        r: &RemoteFile,
        blobs: &Path,
        meter: &mut Meter,
        progress: &mut dyn FnMut(&Progress),
        cancel: &AtomicBool,
    ) -> Result<u64, DownloadError> {
        let whole = blobs.join(r.hash.hex());
        if std::fs::metadata(&whole).is_ok_and(|m| m.len() == r.size) {
            return Ok(0);
        }
        let partial = partial_path(blobs, &r.hash);
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&partial)
            .map_err(DownloadError::io(&partial))?;
        let mut start = file.metadata().map_err(DownloadError::io(&partial))?.len();
        if start > r.size {
            start = 0;
        }
        // What an earlier run left is hashed from disk, not fetched again.
        let mut hasher = Hasher::new(&r.hash, r.size);
        if start > 0 {
            file.seek(SeekFrom::Start(0)).map_err(DownloadError::io(&partial))?;
            let mut buf = vec![0u8; 1 << 20];
            let mut left = start;
            while left > 0 {
                let n = file.read(&mut buf[..left.min(1 << 20) as usize]).map_err(DownloadError::io(&partial))?;
                if n == 0 {
                    break;
                }
                hasher.update(&buf[..n]);
                left -= n as u64;
            }
        }
        let mut fetched = 0u64;
        if start < r.size {
            let resp = self.request("GET", &r.url, start)?;
            let status = resp.status().as_u16();
            let restart = match status {
                206 => {
                    let from =
                        resp.headers().get("content-range").and_then(|v| v.to_str().ok()).and_then(content_range_start);
                    from != Some(start)
                }
                200 => true,
                _ => return Err(self.status_error(&r.url, status)),
            };
            if restart {
                if status == 206 {
                    return Err(DownloadError::BadAnswer {
                        url: r.url.clone(),
                        what: "the server sent another range than asked".into(),
                    });
                }
                // A server that ignores Range sends the whole file: start over cleanly.
                meter.forget(start);
                start = 0;
                hasher = Hasher::new(&r.hash, r.size);
                file.set_len(0).map_err(DownloadError::io(&partial))?;
            }
            file.seek(SeekFrom::Start(start)).map_err(DownloadError::io(&partial))?;
            let mut body = resp.into_body().into_reader();
            let mut buf = vec![0u8; 256 << 10];
            let mut done = start;
            loop {
                if cancel.load(Ordering::Relaxed) {
                    file.flush().map_err(DownloadError::io(&partial))?;
                    return Err(DownloadError::Cancelled);
                }
                let n = match body.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        let _ = file.sync_data();
                        return Err(DownloadError::Cut {
                            file: r.name.clone(),
                            done,
                            total: r.size,
                            reason: e.to_string(),
                        });
                    }
                };
                let take = n.min((r.size - done) as usize);
                file.write_all(&buf[..take]).map_err(DownloadError::io(&partial))?;
                hasher.update(&buf[..take]);
                done += take as u64;
                fetched += take as u64;
                if let Some(p) = meter.advance(&r.name, take as u64) {
                    progress(&p);
                }
                if take < n {
                    break;
                }
            }
            if done < r.size {
                let _ = file.sync_data();
                return Err(DownloadError::Cut {
                    file: r.name.clone(),
                    done,
                    total: r.size,
                    reason: "the server closed the connection early".into(),
                });
            }
        }
        file.sync_all().map_err(DownloadError::io(&partial))?;
        drop(file);
        let got = hasher.finish();
        if got != r.hash.hex() {
            let _ = std::fs::remove_file(&partial);
            return Err(DownloadError::Checksum { file: r.name.clone(), expected: r.hash.hex().into(), got });
        }
        std::fs::rename(&partial, &whole).map_err(DownloadError::io(&whole))?;
        progress(&meter.snapshot(&r.name));
        Ok(fetched)
    }
}

fn missing(url: &str, what: &str) -> DownloadError {
    DownloadError::BadAnswer {
        url: url.into(),
        what: format!("the answer has no {what} header (is HF_ENDPOINT a hub?)"),
    }
}

/// `W/"abc"` → `abc`.
fn normalize_etag(etag: &str) -> String {
    etag.trim().trim_start_matches("W/").trim_matches('"').to_string()
}

/// Resolves a `Location` against the address it came from.
fn absolute(base: &str, location: &str) -> String {
    if location.contains("://") {
        return location.to_string();
    }
    let (scheme, rest) = base.split_once("://").unwrap_or(("https", base));
    let host = rest.split('/').next().unwrap_or(rest);
    if location.starts_with('/') {
        format!("{scheme}://{host}{location}")
    } else {
        let dir = base.rsplit_once('/').map_or(base, |(d, _)| d);
        format!("{dir}/{location}")
    }
}

/// `bytes 100-199/1000` → 100.
fn content_range_start(v: &str) -> Option<u64> {
    v.trim().strip_prefix("bytes ")?.split('-').next()?.trim().parse().ok()
}

fn is_commit_hash(s: &str) -> bool {
    s.len() == 40 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

fn partial_path(blobs: &Path, hash: &BlobHash) -> PathBuf {
    blobs.join(format!("{}.incomplete", hash.hex()))
}

/// Points `link` at `blob` the way the Python tools do (a relative symbolic link; a copy where
/// links are not available).
fn link_blob(link: &Path, blob: &Path) -> Result<(), DownloadError> {
    let _ = std::fs::remove_file(link);
    #[cfg(unix)]
    {
        let name = blob.file_name().unwrap_or_default();
        let target = Path::new("../../blobs").join(name);
        std::os::unix::fs::symlink(target, link).map_err(DownloadError::io(link))
    }
    #[cfg(not(unix))]
    {
        std::fs::copy(blob, link).map(|_| ()).map_err(DownloadError::io(link))
    }
}

fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), DownloadError> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).map_err(DownloadError::io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(DownloadError::io(path))
}

/// Bytes free for an unprivileged user on the file system holding `dir`.
pub fn free_space(dir: &Path) -> Option<u64> {
    #[cfg(unix)]
    {
        let s = rustix::fs::statvfs(dir).ok()?;
        Some(s.f_bavail.saturating_mul(s.f_frsize))
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        None
    }
}

/// Hashes a blob the way its name says.
enum Hasher {
    Sha256(sha2::Sha256),
    GitSha1(sha1::Sha1),
}

impl Hasher {
    fn new(hash: &BlobHash, size: u64) -> Self {
        match hash {
            BlobHash::Sha256(_) => Self::Sha256(sha2::Sha256::new()),
            BlobHash::GitSha1(_) => {
                let mut h = sha1::Sha1::new();
                h.update(format!("blob {size}\0").as_bytes());
                Self::GitSha1(h)
            }
        }
    }

    fn update(&mut self, bytes: &[u8]) {
        match self {
            Self::Sha256(h) => h.update(bytes),
            Self::GitSha1(h) => h.update(bytes),
        }
    }

    fn finish(self) -> String {
        let digest: Vec<u8> = match self {
            Self::Sha256(h) => h.finalize().to_vec(),
            Self::GitSha1(h) => h.finalize().to_vec(),
        };
        digest.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// Counts bytes and works out the rate over a sliding window.
struct Meter {
    total: u64,
    done: u64,
    resumed: u64,
    window: std::collections::VecDeque<(Instant, u64)>,
    last_sent: Option<Instant>,
}

impl Meter {
    fn new(total: u64, have: u64) -> Self {
        Self { total, done: have, resumed: have, window: std::collections::VecDeque::new(), last_sent: None }
    }

    /// A server that ignored `Range`: the bytes counted as resumed are fetched again.
    fn forget(&mut self, bytes: u64) {
        self.done = self.done.saturating_sub(bytes);
        self.resumed = self.resumed.saturating_sub(bytes);
    }

    fn advance(&mut self, file: &str, bytes: u64) -> Option<Progress> {
        let now = Instant::now();
        self.done += bytes;
        if self.last_sent.is_some_and(|t| now.duration_since(t) < Duration::from_millis(100)) {
            return None;
        }
        self.last_sent = Some(now);
        Some(self.snapshot(file))
    }

    fn snapshot(&mut self, file: &str) -> Progress {
        let now = Instant::now();
        self.window.push_back((now, self.done));
        while self.window.len() > 2 && now.duration_since(self.window[0].0) > Duration::from_secs(5) {
            self.window.pop_front();
        }
        let (t0, d0) = self.window[0];
        let secs = now.duration_since(t0).as_secs_f64();
        let rate = if secs > 0.0 { (self.done - d0) as f64 / secs } else { 0.0 };
        let left = self.total.saturating_sub(self.done);
        let eta = (rate > 0.0).then(|| Duration::from_secs_f64(left as f64 / rate));
        Progress { file: file.into(), done: self.done, total: self.total, rate, eta, resumed: self.resumed }
    }
}

/// A local hub for tests (the integration tests reach it through the test-only feature).
#[cfg(any(test, feature = "fault-injection"))]
pub mod test_hub;

#[cfg(test)]
mod tests {
    use super::test_hub::{Fault, LocalHub};
    use super::*;

    fn settings(hub: &LocalHub, cache: &Path, token: Option<&str>) -> HubSettings {
        HubSettings {
            endpoint: hub.endpoint(),
            token: token.map(str::to_string),
            repo: HUB_REPO.into(),
            revision: "main".into(),
            cache: cache.to_path_buf(),
        }
    }

    fn run(hub: &Hub) -> (Result<Downloaded, DownloadError>, Vec<Progress>) {
        let mut seen = Vec::new();
        let result = hub.download(&mut |p| seen.push(p.clone()), &AtomicBool::new(false));
        (result, seen)
    }

    #[test]
    fn a_full_download_lands_in_the_hub_layout_and_is_found() {
        let hub = LocalHub::start(None);
        let cache = tempfile::tempdir().unwrap();
        let client = Hub::new(settings(&hub, cache.path(), None));
        let (got, seen) = run(&client);
        let got = got.unwrap();
        let repo = cache.path().join("models--THUDM--ImageReward");
        assert_eq!(got.dir, repo.join("snapshots").join(LocalHub::COMMIT));
        assert_eq!(std::fs::read_to_string(repo.join("refs/main")).unwrap(), LocalHub::COMMIT);
        for (name, bytes) in hub.files() {
            let link = got.dir.join(&name);
            assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink(), "{name}");
            assert_eq!(std::fs::read(&link).unwrap(), bytes, "{name}");
        }
        assert_eq!(got.fetched, hub.total_bytes());
        assert_eq!(got.reused, 0);
        let last = seen.last().unwrap();
        assert_eq!((last.done, last.total), (hub.total_bytes(), hub.total_bytes()));
        assert!(
            !std::fs::read_dir(repo.join("blobs"))
                .unwrap()
                .flatten()
                .any(|e| { e.file_name().to_string_lossy().ends_with(".incomplete") })
        );
        let dirs = CacheDirs { hf_hub_cache: Some(cache.path().to_path_buf()), ..CacheDirs::default() };
        let found = super::super::locate::locate(None, &dirs).unwrap();
        assert_eq!(found.path, got.dir);
        // A second run fetches nothing.
        let (again, _) = run(&client);
        assert_eq!(again.unwrap().fetched, 0);
    }

    #[test]
    fn a_cut_connection_resumes_without_fetching_the_same_bytes_again() {
        let hub = LocalHub::start(None);
        let cache = tempfile::tempdir().unwrap();
        let weights = hub.file("ImageReward.pt").len() as u64;
        hub.set_fault(Fault::CutAfter(weights / 2));
        let client = Hub::new(settings(&hub, cache.path(), None));
        let (first, _) = run(&client);
        let err = first.unwrap_err();
        assert!(matches!(err, DownloadError::Cut { .. }), "{err}");
        assert!(err.to_string().contains("run the download again to resume"), "{err}");
        hub.set_fault(Fault::None);
        let before = hub.cdn_bytes_sent();
        let (second, seen) = run(&client);
        let second = second.unwrap();
        let resent = hub.cdn_bytes_sent() - before;
        assert!(resent <= weights - weights / 2 + 1024, "fetched {resent} of {weights} again");
        assert!(second.reused >= weights / 2 - (256 << 10), "{second:?}");
        assert!(seen.iter().all(|p| p.resumed == second.reused));
        assert!(
            hub.cdn_log()
                .iter()
                .any(|r| r.range.as_deref().is_some_and(|r| r.starts_with("bytes=") && r != "bytes=0-"))
        );
        assert_eq!(std::fs::read(second.dir.join("ImageReward.pt")).unwrap(), hub.file("ImageReward.pt"));
    }

    #[test]
    fn a_server_that_ignores_range_restarts_the_file_cleanly() {
        let hub = LocalHub::start(None);
        let cache = tempfile::tempdir().unwrap();
        let weights = hub.file("ImageReward.pt").len() as u64;
        hub.set_fault(Fault::CutAfter(weights / 3));
        let client = Hub::new(settings(&hub, cache.path(), None));
        assert!(run(&client).0.is_err());
        hub.set_fault(Fault::IgnoreRange);
        let done = run(&client).0.unwrap();
        assert_eq!(std::fs::read(done.dir.join("ImageReward.pt")).unwrap(), hub.file("ImageReward.pt"));
    }

    #[test]
    fn a_corrupted_byte_is_reported_and_the_file_removed() {
        let hub = LocalHub::start(None);
        let cache = tempfile::tempdir().unwrap();
        hub.set_fault(Fault::FlipByte(1000));
        let client = Hub::new(settings(&hub, cache.path(), None));
        let err = run(&client).0.unwrap_err();
        assert!(matches!(err, DownloadError::Checksum { .. }), "{err}");
        assert!(err.to_string().contains("the bad copy was deleted"), "{err}");
        let blobs = cache.path().join("models--THUDM--ImageReward/blobs");
        let left: Vec<_> = std::fs::read_dir(&blobs).unwrap().flatten().map(|e| e.file_name()).collect();
        let sha = hub.sha256("ImageReward.pt");
        assert!(!left.iter().any(|n| n.to_string_lossy().starts_with(&sha)), "{left:?}");
        assert!(!cache.path().join("models--THUDM--ImageReward/snapshots").exists());
    }

    #[test]
    fn without_a_token_a_gated_repository_says_one_is_needed() {
        let hub = LocalHub::start(Some("secret"));
        let cache = tempfile::tempdir().unwrap();
        let err = run(&Hub::new(settings(&hub, cache.path(), None))).0.unwrap_err();
        assert!(matches!(err, DownloadError::Unauthorized { status: 401, had_token: false, .. }), "{err}");
        assert!(err.to_string().contains("HF_TOKEN"), "{err}");
        let wrong = run(&Hub::new(settings(&hub, cache.path(), Some("nope")))).0.unwrap_err();
        assert!(wrong.to_string().contains("token was refused"), "{wrong}");
    }

    #[test]
    fn the_token_reaches_the_hub_but_never_the_cdn() {
        let hub = LocalHub::start(Some("secret"));
        let cache = tempfile::tempdir().unwrap();
        run(&Hub::new(settings(&hub, cache.path(), Some("secret")))).0.unwrap();
        assert!(hub.hub_log().iter().all(|r| r.authorization.as_deref() == Some("Bearer secret")));
        assert!(!hub.cdn_log().is_empty());
        assert!(hub.cdn_log().iter().all(|r| r.authorization.is_none()), "{:?}", hub.cdn_log());
    }

    #[test]
    fn missing_files_and_dead_hosts_say_so() {
        let hub = LocalHub::start(None);
        let cache = tempfile::tempdir().unwrap();
        let mut s = settings(&hub, cache.path(), None);
        s.repo = "nobody/nothing".into();
        let err = run(&Hub::new(s.clone())).0.unwrap_err();
        assert!(matches!(err, DownloadError::NotFound { .. }), "{err}");
        // A port nothing listens on.
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        s.endpoint = format!("http://127.0.0.1:{port}");
        let err = run(&Hub::new(s)).0.unwrap_err();
        assert!(matches!(err, DownloadError::Offline { .. }), "{err}");
        assert!(err.to_string().contains("offline"), "{err}");
    }

    #[test]
    fn cancelling_keeps_what_arrived_for_the_next_run() {
        let hub = LocalHub::start(None);
        hub.set_fault(Fault::Slow);
        let cache = tempfile::tempdir().unwrap();
        let client = Hub::new(settings(&hub, cache.path(), None));
        let cancel = AtomicBool::new(false);
        let err = client
            .download(
                &mut |p| {
                    if p.done > 100_000 {
                        cancel.store(true, Ordering::Relaxed)
                    }
                },
                &cancel,
            )
            .unwrap_err();
        assert!(matches!(err, DownloadError::Cancelled), "{err}");
        hub.set_fault(Fault::None);
        let done = run(&client).0.unwrap();
        assert!(done.reused > 100_000, "{done:?}");
    }

    #[test]
    fn too_little_space_is_refused_before_anything_is_fetched() {
        let hub = LocalHub::start(None);
        let cache = tempfile::tempdir().unwrap();
        let free = free_space(cache.path()).unwrap();
        hub.set_advertised_size_extra(free + (1 << 30));
        let err = run(&Hub::new(settings(&hub, cache.path(), None))).0.unwrap_err();
        assert!(matches!(err, DownloadError::DiskFull { .. }), "{err}");
        assert!(err.to_string().contains("not enough disk space"), "{err}");
        assert!(hub.cdn_log().is_empty());
    }

    /// Download speed against the local hub, next to a plain read of the same bytes (no hashing, no
    /// disk): `cargo test --release --lib download_throughput -- --ignored --nocapture`.
    #[test]
    #[ignore = "a benchmark: run by hand"]
    fn download_throughput() {
        let size = 256usize << 20;
        let weights: Vec<u8> = (0..size).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
        let config =
            std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny-pt/med_config.json"));
        let files = vec![("ImageReward.pt".to_string(), weights), ("med_config.json".to_string(), config.unwrap())];
        let hub = LocalHub::serving(files, None);
        let cache = tempfile::tempdir().unwrap();
        let client = Hub::new(settings(&hub, cache.path(), None));
        let remote = client.head("ImageReward.pt").unwrap();
        let started = Instant::now();
        let mut body = ureq::get(&remote.url).call().unwrap().into_body().into_reader();
        let plain = std::io::copy(&mut body, &mut std::io::sink()).unwrap();
        let plain_s = started.elapsed().as_secs_f64();
        let (done, _) = run(&client);
        let done = done.unwrap();
        let ours_s = done.elapsed.as_secs_f64();
        let mb = |b: u64, s: f64| b as f64 / 1e6 / s;
        println!("| read | bytes | seconds | MB/s |\n|---|---|---|---|");
        println!("| plain GET to a sink | {plain} | {plain_s:.2} | {:.0} |", mb(plain, plain_s));
        println!(
            "| `Hub::download` (sha256 + disk + fsync) | {} | {ours_s:.2} | {:.0} |",
            done.fetched,
            mb(done.fetched, ours_s)
        );
        println!("ratio download/plain: {:.2}", mb(done.fetched, ours_s) / mb(plain, plain_s));
    }

    #[test]
    fn helpers_read_the_headers_as_the_hub_writes_them() {
        assert_eq!(normalize_etag("W/\"abc\""), "abc");
        assert_eq!(content_range_start("bytes 100-199/1000"), Some(100));
        assert_eq!(absolute("http://h:1/a/b/c", "/x/y"), "http://h:1/x/y");
        assert_eq!(absolute("http://h:1/a/b/c", "http://cdn/z"), "http://cdn/z");
        assert_eq!(human_bytes(1_700_000_000), "1.7 GB");
        assert!(is_commit_hash(LocalHub::COMMIT));
    }
}
