//! The worker that gets the app a model without a question: on a named thread it looks for one
//! the user already has (`~/.cache/ImageReward`, the Hugging Face hub cache) and, when asked,
//! downloads the published one into the hub cache with progress, cancel and resume. It owns the
//! network; the UI only sends it requests and reads its events.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};

use crate::model::hub::{Hub, HubSettings, Progress};
use crate::model::locate::{CacheDirs, ModelOrigin, locate};
use crate::wake::Waker;

/// What the worker reports.
#[derive(Debug, Clone)]
pub enum FetchEvent {
    /// A model the user already has, where it is and why it is the one; or what every place
    /// looked at holds.
    Located(Result<(PathBuf, ModelOrigin), String>),
    /// Download progress.
    Progress(Progress),
    /// The download finished: the model folder; or why not (what arrived is kept for a resume).
    Downloaded(Result<PathBuf, String>),
    /// The user cancelled the download; what arrived is kept.
    Cancelled,
}

enum Request {
    Locate,
    Download,
}

/// The handle; dropping it ends the thread (a download in progress stops at its next read).
pub struct ModelFetch {
    requests: Sender<Request>,
    cancel: Arc<AtomicBool>,
    can_download: bool,
}

impl std::fmt::Debug for ModelFetch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModelFetch").finish_non_exhaustive()
    }
}

impl ModelFetch {
    /// Starts the worker: it looks in `dirs` and downloads with `hub` (no download without one).
    pub fn start(
        dirs: CacheDirs,
        hub: Option<HubSettings>,
        waker: Option<Waker>,
    ) -> std::io::Result<(Self, Receiver<FetchEvent>)> {
        let (requests, inbox) = channel();
        let (events, outbox) = channel();
        let cancel = Arc::new(AtomicBool::new(false));
        let can_download = hub.is_some();
        let flag = cancel.clone();
        std::thread::Builder::new().name("rewardlens-model-fetch".into()).spawn(move || {
            crate::priority::set_current_thread_priority(crate::priority::Priority::Background);
            let send = |e: FetchEvent| {
                let _ = events.send(e);
                if let Some(w) = &waker {
                    w.wake();
                }
            };
            while let Ok(request) = inbox.recv() {
                match request {
                    Request::Locate => {
                        let found = locate(None, &dirs).map(|c| (c.path, c.origin)).map_err(|e| e.to_string());
                        send(FetchEvent::Located(found));
                    }
                    Request::Download => {
                        let Some(settings) = hub.clone() else { continue };
                        flag.store(false, Ordering::Relaxed);
                        let result = Hub::new(settings).download(&mut |p| send(FetchEvent::Progress(p.clone())), &flag);
                        send(match result {
                            Ok(done) => FetchEvent::Downloaded(Ok(done.dir)),
                            Err(crate::model::hub::DownloadError::Cancelled) => FetchEvent::Cancelled,
                            Err(e) => FetchEvent::Downloaded(Err(e.to_string())),
                        });
                    }
                }
            }
        })?;
        Ok((Self { requests, cancel, can_download }, outbox))
    }

    /// Looks for a model the user already has.
    pub fn locate(&self) {
        let _ = self.requests.send(Request::Locate);
    }

    /// Whether this app can download (it knows a cache folder).
    pub fn can_download(&self) -> bool {
        self.can_download
    }

    /// Downloads (or resumes) the published model.
    pub fn download(&self) {
        self.cancel.store(false, Ordering::Relaxed);
        let _ = self.requests.send(Request::Download);
    }

    /// Stops a download at its next read.
    pub fn cancel(&self) {
        self.cancel.store(true, Ordering::Relaxed);
    }
}

impl Drop for ModelFetch {
    fn drop(&mut self) {
        self.cancel.store(true, Ordering::Relaxed);
    }
}
