//! Decodes images for the viewer on one named thread (`rewardlens-viewer`): the image shown
//! first, then its neighbours in the current order, so stepping through is instant. A new wish
//! list replaces the old one at once; an image no longer wished for is not decoded.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, Sender, TryRecvError, channel};
use std::thread::JoinHandle;

use crate::image_file::ContentHash;
use crate::library::thumbnails::decode_for_display;
use crate::wake::{Waker, wake};

/// The longest side decoded for the viewer: what GPUs (and wgpu's default limits) take as one
/// texture; larger images are shown scaled down to it.
pub const MAX_SIDE: u32 = 8192;

/// One image the viewer wants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wanted {
    /// Its content (the texture key).
    pub content_hash: ContentHash,
    /// The file.
    pub path: PathBuf,
}

/// A decoded image, or why not.
#[derive(Debug, Clone)]
pub enum FullImageEvent {
    /// Ready to upload.
    Ready {
        /// Its content.
        content_hash: ContentHash,
        /// The image, converted for upload on the decoding thread (longest side at most [`MAX_SIDE`]).
        image: Arc<egui::ColorImage>,
    },
    /// It could not be decoded; the viewer says why.
    Failed {
        /// Its content.
        content_hash: ContentHash,
        /// Why, naming the file.
        reason: String,
    },
}

/// The handle; dropping it ends the thread after the decode in progress.
pub struct FullImages {
    wishes: Option<Sender<Vec<Wanted>>>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for FullImages {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FullImages").finish_non_exhaustive()
    }
}

impl FullImages {
    /// Starts the decoding thread.
    pub fn start(waker: Option<Waker>) -> std::io::Result<(Self, Receiver<FullImageEvent>)> {
        let (wishes, inbox) = channel::<Vec<Wanted>>();
        let (events, receiver) = channel();
        let thread = std::thread::Builder::new().name("rewardlens-viewer".into()).spawn(move || {
            crate::priority::set_current_thread_priority(crate::priority::Priority::Service);
            decode_loop(&inbox, &events, waker.as_ref());
        })?;
        Ok((Self { wishes: Some(wishes), thread: Some(thread) }, receiver))
    }

    /// Replaces the wish list: the first is decoded first, then the rest in order.
    pub fn want(&self, wanted: Vec<Wanted>) {
        if let Some(wishes) = &self.wishes {
            // Fails only after the thread ended; the viewer then shows thumbnails.
            let _ = wishes.send(wanted);
        }
    }
}

impl Drop for FullImages {
    fn drop(&mut self) {
        self.wishes = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn decode_loop(inbox: &Receiver<Vec<Wanted>>, events: &Sender<FullImageEvent>, waker: Option<&Waker>) {
    let mut queue: Vec<Wanted> = Vec::new();
    loop {
        if queue.is_empty() {
            match inbox.recv() {
                Ok(list) => queue = list,
                Err(_) => return,
            }
        }
        // Only the newest wish list counts.
        loop {
            match inbox.try_recv() {
                Ok(list) => queue = list,
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => return,
            }
        }
        if queue.is_empty() {
            continue;
        }
        let next = queue.remove(0);
        let event = match decode_for_display(&next.path, MAX_SIDE) {
            Ok(pixels) => {
                let size = [pixels.width as usize, pixels.height as usize];
                let image = egui::ColorImage::from_rgba_unmultiplied(size, &pixels.rgba);
                FullImageEvent::Ready { content_hash: next.content_hash, image: Arc::new(image) }
            }
            Err(e) => FullImageEvent::Failed { content_hash: next.content_hash, reason: e.to_string() },
        };
        if events.send(event).is_err() {
            return;
        }
        wake(waker);
    }
}
