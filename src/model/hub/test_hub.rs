//! A local stand-in for the Hugging Face hub and its CDN, on 127.0.0.1, for the download tests:
//! the hub answers resolve addresses the way huggingface.co does (a relative redirect for the
//! renamed repository, then a 302 with `X-Repo-Commit`, `X-Linked-Size` and `X-Linked-Etag` for LFS
//! files, or the file itself with its git blob id as `ETag`), the CDN serves blobs with `Range`
//! support, and both log what they were sent. Faults on demand: a cut connection, a flipped byte,
//! a server that ignores `Range`, a slow line, a size larger than any disk.

// Test support only (never in a release build): a failure here is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use sha2::Digest;

/// What the CDN does wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Nothing.
    None,
    /// Closes the connection once this many bytes of the blob (counted from its start) are sent.
    CutAfter(u64),
    /// Flips the byte at this offset.
    FlipByte(u64),
    /// Answers 200 with the whole file whatever the `Range`.
    IgnoreRange,
    /// Sends slowly, in small pieces.
    Slow,
}

/// One request as a server saw it.
#[derive(Debug, Clone)]
pub struct Logged {
    /// `HEAD /…`.
    pub line: String,
    /// The `Range` header.
    pub range: Option<String>,
    /// The `Authorization` header.
    pub authorization: Option<String>,
}

struct State {
    files: Vec<(String, Vec<u8>)>,
    token: Option<String>,
    cdn: String,
    fault: Mutex<Fault>,
    extra_size: AtomicU64,
    hub_log: Mutex<Vec<Logged>>,
    cdn_log: Mutex<Vec<Logged>>,
    cdn_sent: AtomicU64,
}

/// The two servers; they stop with the test process.
pub struct LocalHub {
    state: Arc<State>,
    endpoint: String,
}

const LFS: &[&str] = &["ImageReward.pt"];

impl LocalHub {
    /// The commit every answer names.
    pub const COMMIT: &'static str = "5fb8b2e5a0c4e6f1d2a3b4c5d6e7f8091a2b3c4d";

    /// Starts a hub serving the tiny fixture model; with `token`, every hub request needs it.
    pub fn start(token: Option<&str>) -> Self {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny-pt");
        let files = ["ImageReward.pt", "med_config.json", "vision_config.json"]
            .iter()
            .map(|f| (f.to_string(), std::fs::read(dir.join(f)).unwrap()))
            .collect();
        Self::serving(files, token)
    }

    /// Starts a hub serving these files (`ImageReward.pt` as an LFS file, the rest from git).
    pub fn serving(files: Vec<(String, Vec<u8>)>, token: Option<&str>) -> Self {
        let cdn_listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let hub_listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let state = Arc::new(State {
            files,
            token: token.map(str::to_string),
            cdn: format!("http://{}", cdn_listener.local_addr().unwrap()),
            fault: Mutex::new(Fault::None),
            extra_size: AtomicU64::new(0),
            hub_log: Mutex::new(Vec::new()),
            cdn_log: Mutex::new(Vec::new()),
            cdn_sent: AtomicU64::new(0),
        });
        let endpoint = format!("http://{}", hub_listener.local_addr().unwrap());
        serve(hub_listener, state.clone(), hub);
        serve(cdn_listener, state.clone(), cdn);
        Self { state, endpoint }
    }

    /// `http://127.0.0.1:PORT`, for `HF_ENDPOINT`.
    pub fn endpoint(&self) -> String {
        self.endpoint.clone()
    }

    /// The files served, by name.
    pub fn files(&self) -> Vec<(String, Vec<u8>)> {
        self.state.files.clone()
    }

    /// One file's bytes.
    pub fn file(&self, name: &str) -> Vec<u8> {
        self.state.files.iter().find(|(n, _)| n == name).map(|(_, b)| b.clone()).unwrap()
    }

    /// All files' bytes together.
    pub fn total_bytes(&self) -> u64 {
        self.state.files.iter().map(|(_, b)| b.len() as u64).sum()
    }

    /// A file's sha256, as hex.
    pub fn sha256(&self, name: &str) -> String {
        hex(&sha2::Sha256::digest(self.file(name)))
    }

    /// Sets the CDN's misbehaviour.
    pub fn set_fault(&self, fault: Fault) {
        *self.state.fault.lock().unwrap() = fault;
    }

    /// Makes the hub claim the weights are this much larger.
    pub fn set_advertised_size_extra(&self, extra: u64) {
        self.state.extra_size.store(extra, Ordering::Relaxed);
    }

    /// Requests the hub saw.
    pub fn hub_log(&self) -> Vec<Logged> {
        self.state.hub_log.lock().unwrap().clone()
    }

    /// Requests the CDN saw.
    pub fn cdn_log(&self) -> Vec<Logged> {
        self.state.cdn_log.lock().unwrap().clone()
    }

    /// Body bytes the CDN has written.
    pub fn cdn_bytes_sent(&self) -> u64 {
        self.state.cdn_sent.load(Ordering::Relaxed)
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn git_sha1(bytes: &[u8]) -> String {
    let mut h = sha1::Sha1::new();
    h.update(format!("blob {}\0", bytes.len()).as_bytes());
    h.update(bytes);
    hex(&h.finalize())
}

type Handler = fn(&State, &Logged, &mut TcpStream);

fn serve(listener: TcpListener, state: Arc<State>, handler: Handler) {
    std::thread::Builder::new()
        .name("test-hub".into())
        .spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let state = state.clone();
                let _ = std::thread::Builder::new().name("test-hub-conn".into()).spawn(move || {
                    let _ = handle(stream, &state, handler);
                });
            }
        })
        .unwrap();
}

fn handle(mut stream: TcpStream, state: &State, handler: Handler) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut logged = Logged { line: line.trim().to_string(), range: None, authorization: None };
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header)? == 0 || header.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = header.split_once(':') {
            match k.trim().to_ascii_lowercase().as_str() {
                "range" => logged.range = Some(v.trim().to_string()),
                "authorization" => logged.authorization = Some(v.trim().to_string()),
                _ => {}
            }
        }
    }
    handler(state, &logged, &mut stream);
    stream.flush()
}

fn respond(stream: &mut TcpStream, status: &str, headers: &[(String, String)]) {
    let mut head = format!("HTTP/1.1 {status}\r\nConnection: close\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    if !headers.iter().any(|(k, _)| k == "Content-Length") {
        head.push_str("Content-Length: 0\r\n");
    }
    head.push_str("\r\n");
    let _ = stream.write_all(head.as_bytes());
}

fn hub(state: &State, req: &Logged, stream: &mut TcpStream) {
    state.hub_log.lock().unwrap().push(req.clone());
    let mut parts = req.line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    if let Some(token) = &state.token
        && req.authorization.as_deref() != Some(&format!("Bearer {token}"))
    {
        respond(stream, "401 Unauthorized", &[("X-Error-Code".into(), "GatedRepo".into())]);
        return;
    }
    // The repository was renamed: the old name answers with a relative redirect, as the hub does.
    if let Some(rest) = path.strip_prefix("/THUDM/ImageReward/") {
        respond(stream, "307 Temporary Redirect", &[("Location".into(), format!("/zai-org/ImageReward/{rest}"))]);
        return;
    }
    let Some(file) = path.strip_prefix("/zai-org/ImageReward/resolve/main/") else {
        respond(stream, "404 Not Found", &[("X-Error-Code".into(), "RepoNotFound".into())]);
        return;
    };
    let Some((name, bytes)) = state.files.iter().find(|(n, _)| n == file) else {
        respond(stream, "404 Not Found", &[("X-Error-Code".into(), "EntryNotFound".into())]);
        return;
    };
    let commit = ("X-Repo-Commit".to_string(), LocalHub::COMMIT.to_string());
    if LFS.contains(&name.as_str()) {
        let sha = hex(&sha2::Sha256::digest(bytes));
        let size = bytes.len() as u64 + state.extra_size.load(Ordering::Relaxed);
        respond(
            stream,
            "302 Found",
            &[
                commit,
                ("X-Linked-Size".into(), size.to_string()),
                ("X-Linked-Etag".into(), format!("\"{sha}\"")),
                ("Location".into(), format!("{}/blobs/{sha}?signature=xyz", state.cdn)),
            ],
        );
        return;
    }
    let headers = [
        commit,
        ("ETag".into(), format!("\"{}\"", git_sha1(bytes))),
        ("Content-Length".into(), bytes.len().to_string()),
    ];
    respond(stream, "200 OK", &headers);
    if method == "GET" {
        let _ = stream.write_all(bytes);
    }
}

fn cdn(state: &State, req: &Logged, stream: &mut TcpStream) {
    state.cdn_log.lock().unwrap().push(req.clone());
    let path = req.line.split_whitespace().nth(1).unwrap_or("");
    let sha = path.strip_prefix("/blobs/").and_then(|p| p.split('?').next()).unwrap_or("");
    let Some((_, bytes)) = state.files.iter().find(|(_, b)| hex(&sha2::Sha256::digest(b)) == sha) else {
        respond(stream, "404 Not Found", &[]);
        return;
    };
    let fault = *state.fault.lock().unwrap();
    let len = bytes.len() as u64;
    let start = match (&req.range, fault) {
        (_, Fault::IgnoreRange) | (None, _) => None,
        (Some(r), _) => r.strip_prefix("bytes=").and_then(|r| r.trim_end_matches('-').parse::<u64>().ok()),
    };
    let from = start.unwrap_or(0).min(len);
    let mut headers = vec![("Content-Length".to_string(), (len - from).to_string())];
    if start.is_some() {
        headers.push(("Content-Range".into(), format!("bytes {from}-{}/{len}", len.saturating_sub(1))));
        respond(stream, "206 Partial Content", &headers);
    } else {
        respond(stream, "200 OK", &headers);
    }
    let mut body = bytes[from as usize..].to_vec();
    let mut end = len;
    match fault {
        Fault::CutAfter(n) if n > from => end = n,
        Fault::FlipByte(i) if i >= from && i < len => body[(i - from) as usize] ^= 0x55,
        _ => {}
    }
    let body = &body[..(end - from) as usize];
    let piece = if fault == Fault::Slow { 16 << 10 } else { 1 << 20 };
    for chunk in body.chunks(piece) {
        if stream.write_all(chunk).is_err() {
            return;
        }
        state.cdn_sent.fetch_add(chunk.len() as u64, Ordering::Relaxed);
        if fault == Fault::Slow {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }
    if end < len {
        let _ = stream.flush();
        let _ = stream.shutdown(std::net::Shutdown::Both);
    }
}
