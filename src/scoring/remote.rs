//! The GPU helper: the model in a child process, so the app itself never links the CUDA driver.
//!
//! A binary built with candle's CUDA support names `libcuda.so.1` as a load-time dependency and
//! does not start at all on a machine without the NVIDIA driver. So the app is built without it,
//! and a second build of the same crate with `--features cuda`, installed next to it as
//! `rewardlens-gpu`, serves the model over its stdin/stdout (`rewardlens-gpu gpu-serve`). The
//! worker starts the helper when a GPU is wanted; if it cannot start (no driver: the loader
//! refuses it), cannot use the GPU, or dies mid-run (a GPU crash never takes the app down), the
//! worker scores in-process on the CPU and says why.
//!
//! Messages both ways: `u32` LE header length, a JSON header, `u64` LE payload length, payload.
//! Pixels travel as f32 LE, image tokens as f16 LE, so the parent keeps the embedding cache.

use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::{Arc, Mutex, PoisonError};

use half::f16;
use serde::{Deserialize, Serialize};

use super::embeddings::ImageEmbedding;
use super::scorer::Scorer;
use super::settings::ModelSpec;
use crate::model::{DeviceKind, ModelError, ModelFiles, Precision, PromptTokenizer, PromptTokens, select_device};

/// File name of the helper next to the app's executable.
pub const HELPER_NAME: &str = "rewardlens-gpu";

/// Environment variable naming the helper explicitly (tests, unusual installs).
pub const HELPER_ENV: &str = "REWARDLENS_GPU_HELPER";

/// Fault injection, compiled only into test builds (the `fault-injection` feature): the helper
/// aborts, like a crashed GPU process, after serving this many scoring requests.
#[cfg(feature = "fault-injection")]
pub const CRASH_AFTER_ENV: &str = "REWARDLENS_GPU_SERVE_CRASH_AFTER";

/// Fault injection, compiled only into test builds: the helper serves on this device (`cpu`)
/// whatever the app asks for, so the helper path runs on machines without a GPU.
#[cfg(feature = "fault-injection")]
pub const DEVICE_OVERRIDE_ENV: &str = "REWARDLENS_GPU_SERVE_DEVICE";

/// Why the GPU helper could not serve; the worker then scores on the CPU and shows this.
#[derive(Debug, thiserror::Error)]
pub enum HelperError {
    /// The helper's executable could not be started.
    #[error("cannot start the GPU helper {path}: {source}")]
    Start {
        /// The helper executable.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The child started without the pipes we asked for.
    #[error("the GPU helper's pipes could not be opened")]
    Pipes,
    /// The model's tokenizer could not be loaded here (the helper tokenises nothing itself).
    #[error(transparent)]
    Tokenizer(#[from] ModelError),
    /// The helper died or its pipe broke; `said` is its last stderr output (the loader's
    /// "libcuda.so.1: cannot open shared object file", a GPU fault).
    #[error("the GPU helper stopped{}", if said.is_empty() { format!(" ({io})") } else { format!(": {said}") })]
    Stopped {
        /// The pipe error.
        io: String,
        /// What the helper last printed.
        said: String,
    },
    /// The helper answered with an error (it cannot use the GPU, the model failed).
    #[error("{0}")]
    Refused(String),
    /// The helper's answer does not fit the question.
    #[error("the GPU helper answered with the wrong number of results")]
    BadReply,
}

/// Largest header accepted, so a corrupt stream cannot ask for gigabytes.
const MAX_HEADER_BYTES: u32 = 16 << 20;

/// Largest payload accepted (a batch of 4096 images of f32 pixels is 2.5 GB).
const MAX_PAYLOAD_BYTES: u64 = 8 << 30;

/// The helper to start, if one is installed.
pub fn helper_path() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os(HELPER_ENV) {
        return Some(PathBuf::from(path)).filter(|p| !p.as_os_str().is_empty());
    }
    let exe = std::env::current_exe().ok()?;
    Some(exe.parent()?.join(HELPER_NAME)).filter(|p| p.is_file())
}

/// A prompt as it travels.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct WirePrompt {
    ids: Vec<u32>,
    mask: Vec<u32>,
    len: usize,
}

impl From<&PromptTokens> for WirePrompt {
    fn from(p: &PromptTokens) -> Self {
        Self { ids: p.ids.clone(), mask: p.mask.clone(), len: p.len }
    }
}

impl From<WirePrompt> for PromptTokens {
    fn from(p: WirePrompt) -> Self {
        Self { ids: p.ids, mask: p.mask, len: p.len, truncated: false }
    }
}

/// What the parent asks.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
enum Request {
    Load {
        path: PathBuf,
        device: DeviceKind,
        dtype: Option<Precision>,
        batch: Option<usize>,
    },
    /// Payload: `n` preprocessed images, f32.
    Full {
        prompts: Vec<WirePrompt>,
        n: usize,
    },
    /// Payload: `n` embeddings of `tokens × width`, f16.
    Cached {
        prompts: Vec<WirePrompt>,
        n: usize,
        tokens: usize,
        width: usize,
    },
    Quit,
}

/// What the helper answers.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Reply {
    error: Option<String>,
    model_id: Option<String>,
    device: Option<DeviceKind>,
    dtype: Option<Precision>,
    batch: Option<usize>,
    scores: Vec<f32>,
    /// With `Full`: the shape of each embedding in the f16 payload.
    tokens: usize,
    width: usize,
}

fn write_message(w: &mut impl Write, header: &impl Serialize, payload: &[u8]) -> std::io::Result<()> {
    let header = serde_json::to_vec(header).map_err(std::io::Error::other)?;
    let len = u32::try_from(header.len()).map_err(std::io::Error::other)?;
    w.write_all(&len.to_le_bytes())?;
    w.write_all(&header)?;
    w.write_all(&(payload.len() as u64).to_le_bytes())?;
    w.write_all(payload)?;
    w.flush()
}

fn read_message<T: for<'de> Deserialize<'de>>(r: &mut impl Read) -> std::io::Result<(T, Vec<u8>)> {
    let mut len = [0u8; 4];
    r.read_exact(&mut len)?;
    let len = u32::from_le_bytes(len);
    if len > MAX_HEADER_BYTES {
        return Err(std::io::Error::other(format!("message header of {len} bytes")));
    }
    let mut header = vec![0u8; len as usize];
    r.read_exact(&mut header)?;
    let mut payload_len = [0u8; 8];
    r.read_exact(&mut payload_len)?;
    let payload_len = u64::from_le_bytes(payload_len);
    if payload_len > MAX_PAYLOAD_BYTES {
        return Err(std::io::Error::other(format!("message payload of {payload_len} bytes")));
    }
    let mut payload = vec![0u8; usize::try_from(payload_len).map_err(std::io::Error::other)?];
    r.read_exact(&mut payload)?;
    let header = serde_json::from_slice(&header).map_err(std::io::Error::other)?;
    Ok((header, payload))
}

fn f16_bytes(values: &[f16]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

fn f16_values(bytes: &[u8]) -> Vec<f16> {
    bytes.chunks_exact(2).map(|b| f16::from_le_bytes([b[0], b[1]])).collect()
}

/// A running helper with its model loaded.
pub struct GpuHelper {
    child: Child,
    stdin: BufWriter<ChildStdin>,
    stdout: BufReader<ChildStdout>,
    stderr: Arc<Mutex<String>>,
    tokenizer: PromptTokenizer,
    model_id: String,
    device: DeviceKind,
    dtype: Precision,
    batch: usize,
}

impl std::fmt::Debug for GpuHelper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpuHelper").field("device", &self.device).field("dtype", &self.dtype).finish()
    }
}

impl GpuHelper {
    /// Starts `helper` and loads `spec` in it; the error says why (the helper's own stderr when it
    /// could not start, e.g. the loader's "libcuda.so.1: cannot open shared object file").
    pub fn start(helper: &Path, spec: &ModelSpec) -> Result<Self, HelperError> {
        // The tokenizer runs here, so prompts are tokenised once however many batches use them.
        let tokenizer = ModelFiles::discover(&spec.path).and_then(|f| f.tokenizer())?;
        let mut child = Command::new(helper)
            .arg("gpu-serve")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| HelperError::Start { path: helper.to_path_buf(), source })?;
        let (Some(stdin), Some(stdout), Some(mut stderr_pipe)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            let _ = child.kill();
            return Err(HelperError::Pipes);
        };
        let stderr = Arc::new(Mutex::new(String::new()));
        let sink = Arc::clone(&stderr);
        // Keeps the helper's last messages for error reports; ends with the helper.
        let _ = std::thread::Builder::new().name("rewardlens-gpu-stderr".to_string()).spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stderr_pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                let mut text = sink.lock().unwrap_or_else(PoisonError::into_inner);
                text.push_str(&String::from_utf8_lossy(&buf[..n]));
                let excess = text.len().saturating_sub(8192);
                if excess > 0 {
                    let cut = (excess..text.len()).find(|i| text.is_char_boundary(*i)).unwrap_or(text.len());
                    text.drain(..cut);
                }
            }
        });
        let mut helper = Self {
            child,
            stdin: BufWriter::new(stdin),
            stdout: BufReader::new(stdout),
            stderr,
            tokenizer,
            model_id: String::new(),
            device: DeviceKind::Cuda,
            dtype: Precision::F16,
            batch: 0,
        };
        let load = Request::Load {
            path: spec.path.clone(),
            device: if spec.device == DeviceKind::Auto { DeviceKind::Cuda } else { spec.device },
            dtype: spec.dtype,
            batch: spec.batch,
        };
        let (reply, _) = helper.call(&load, &[])?;
        helper.model_id = reply.model_id.unwrap_or_default();
        helper.device = reply.device.ok_or(HelperError::BadReply)?;
        helper.dtype = reply.dtype.ok_or(HelperError::BadReply)?;
        helper.batch = reply.batch.unwrap_or(1).max(1);
        Ok(helper)
    }

    /// One request and its reply; a dead helper's error includes what it last printed.
    fn call(&mut self, request: &Request, payload: &[u8]) -> Result<(Reply, Vec<u8>), HelperError> {
        let result =
            write_message(&mut self.stdin, request, payload).and_then(|()| read_message::<Reply>(&mut self.stdout));
        match result {
            Ok((reply, payload)) => match reply.error {
                Some(e) => Err(HelperError::Refused(e)),
                None => Ok((reply, payload)),
            },
            Err(e) => {
                // Give the stderr reader a moment to collect the last words.
                let _ = self.child.try_wait();
                std::thread::sleep(std::time::Duration::from_millis(100));
                let said = self.stderr.lock().unwrap_or_else(PoisonError::into_inner).trim().to_string();
                Err(HelperError::Stopped { io: e.to_string(), said })
            }
        }
    }

    /// The id scores are stored under (the same as the in-process model's).
    pub fn model_id(&self) -> &str {
        &self.model_id
    }

    /// The device the helper runs on.
    pub fn device(&self) -> DeviceKind {
        self.device
    }

    /// The precision the helper runs in.
    pub fn precision(&self) -> Precision {
        self.dtype
    }

    /// Images per forward pass.
    pub fn batch(&self) -> usize {
        self.batch
    }

    /// The model's tokenizer: prompts are tokenised here, not in the helper.
    pub fn tokenizer(&self) -> &PromptTokenizer {
        &self.tokenizer
    }

    /// Scores preprocessed images; returns the rewards and the image tokens for the cache.
    pub fn score_pixels(
        &mut self,
        prompts: &[PromptTokens],
        pixels: &[&[f32]],
    ) -> Result<(Vec<f32>, Vec<ImageEmbedding>), HelperError> {
        let mut payload = Vec::with_capacity(pixels.iter().map(|p| p.len() * 4).sum());
        for image in pixels {
            payload.extend_from_slice(bytemuck::cast_slice(image));
        }
        let request = Request::Full { prompts: prompts.iter().map(WirePrompt::from).collect(), n: pixels.len() };
        let (reply, embeddings) = self.call(&request, &payload)?;
        let per = reply.tokens * reply.width;
        let values = f16_values(&embeddings);
        if reply.scores.len() != pixels.len() || values.len() != per * pixels.len() {
            return Err(HelperError::BadReply);
        }
        let embeddings = values
            .chunks_exact(per.max(1))
            .map(|c| ImageEmbedding { tokens: reply.tokens, width: reply.width, values: c.to_vec() })
            .collect();
        Ok((reply.scores, embeddings))
    }

    /// Scores cached image tokens against prompts.
    pub fn score_embeddings(
        &mut self,
        prompts: &[PromptTokens],
        embeddings: &[&ImageEmbedding],
    ) -> Result<Vec<f32>, HelperError> {
        let (tokens, width) = embeddings.first().map_or((0, 0), |e| (e.tokens, e.width));
        let mut payload = Vec::new();
        for e in embeddings {
            payload.extend_from_slice(&f16_bytes(&e.values));
        }
        let request = Request::Cached {
            prompts: prompts.iter().map(WirePrompt::from).collect(),
            n: embeddings.len(),
            tokens,
            width,
        };
        let (reply, _) = self.call(&request, &payload)?;
        if reply.scores.len() != embeddings.len() {
            return Err(HelperError::BadReply);
        }
        Ok(reply.scores)
    }
}

impl Drop for GpuHelper {
    fn drop(&mut self) {
        let _ = write_message(&mut self.stdin, &Request::Quit, &[]);
        // A helper that does not quit promptly is stopped.
        for _ in 0..20 {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(25));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The helper's side: serves requests on stdin/stdout until `Quit` or end of input. The model is
/// loaded strictly on the device asked for: a helper that cannot use the GPU says so and the app
/// scores in-process instead.
pub fn serve(input: &mut impl Read, output: &mut impl Write) -> std::io::Result<()> {
    let mut scorer: Option<Scorer> = None;
    #[cfg(feature = "fault-injection")]
    let crash_after: Option<usize> = std::env::var(CRASH_AFTER_ENV).ok().and_then(|v| v.parse().ok());
    #[cfg(feature = "fault-injection")]
    let mut served = 0usize;
    loop {
        let (request, payload) = match read_message::<Request>(input) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(e),
        };
        #[cfg(feature = "fault-injection")]
        if matches!(request, Request::Full { .. } | Request::Cached { .. }) {
            if crash_after.is_some_and(|n| served >= n) {
                eprintln!("simulated GPU crash ({CRASH_AFTER_ENV})");
                std::process::abort();
            }
            served += 1;
        }
        let reply = match request {
            Request::Quit => return Ok(()),
            Request::Load { path, device, dtype, batch } => {
                #[cfg(feature = "fault-injection")]
                let device = std::env::var(DEVICE_OVERRIDE_ENV).ok().and_then(|d| d.parse().ok()).unwrap_or(device);
                let spec = ModelSpec { path, device, dtype, batch };
                // Strictly the device asked for: falling back is the app's decision, not ours.
                match select_device(spec.device).and_then(|d| Scorer::load_on(&spec, &d)) {
                    Ok(s) if s.on_gpu() || spec.device == DeviceKind::Cpu => {
                        let reply = Reply {
                            model_id: Some(s.model_id().to_string()),
                            device: Some(s.device()),
                            dtype: Some(s.precision()),
                            batch: Some(s.batch()),
                            ..Reply::default()
                        };
                        scorer = Some(s);
                        reply
                    }
                    Ok(_) => Reply { error: Some("no usable GPU found".to_string()), ..Reply::default() },
                    Err(e) => Reply { error: Some(e.to_string()), ..Reply::default() },
                }
            }
            Request::Full { prompts, n } => match &scorer {
                None => Reply { error: Some("no model loaded".to_string()), ..Reply::default() },
                Some(s) => {
                    let pixels: Vec<f32> =
                        payload.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
                    let per = pixels.len() / n.max(1);
                    let images: Vec<&[f32]> = pixels.chunks_exact(per.max(1)).collect();
                    let prompts: Vec<PromptTokens> = prompts.into_iter().map(PromptTokens::from).collect();
                    let result = s.image_tokens(&images).and_then(|tokens| {
                        let scores = s.score_tokens(&prompts, &tokens)?;
                        Ok((scores, s.to_embeddings(&tokens)?))
                    });
                    match result {
                        Ok((scores, embeddings)) => {
                            let (tokens, width) = embeddings.first().map_or((0, 0), |e| (e.tokens, e.width));
                            let bytes: Vec<u8> = embeddings.iter().flat_map(|e| f16_bytes(&e.values)).collect();
                            write_message(output, &Reply { scores, tokens, width, ..Reply::default() }, &bytes)?;
                            continue;
                        }
                        Err(e) => Reply { error: Some(e.to_string()), ..Reply::default() },
                    }
                }
            },
            Request::Cached { prompts, n, tokens, width } => match &scorer {
                None => Reply { error: Some("no model loaded".to_string()), ..Reply::default() },
                Some(s) => {
                    let values = f16_values(&payload);
                    let per = tokens * width;
                    let embeddings: Vec<ImageEmbedding> = values
                        .chunks_exact(per.max(1))
                        .take(n)
                        .map(|c| ImageEmbedding { tokens, width, values: c.to_vec() })
                        .collect();
                    let refs: Vec<&ImageEmbedding> = embeddings.iter().collect();
                    let prompts: Vec<PromptTokens> = prompts.into_iter().map(PromptTokens::from).collect();
                    match s.from_embeddings(&refs).and_then(|t| s.score_tokens(&prompts, &t)) {
                        Ok(scores) => Reply { scores, ..Reply::default() },
                        Err(e) => Reply { error: Some(e.to_string()), ..Reply::default() },
                    }
                }
            },
        };
        write_message(output, &reply, &[])?;
    }
}
