//! How a background worker wakes whoever drains its events (a UI calls `request_repaint`), so
//! nobody polls: the worker sends its events, releases its locks, then wakes.

use std::sync::Arc;

/// A callback run after events are sent; cheap and callable from any thread.
#[derive(Clone)]
pub struct Waker(Arc<dyn Fn() + Send + Sync>);

impl Waker {
    /// Wraps a callback (for egui: `move || ctx.request_repaint()`).
    pub fn new(wake: impl Fn() + Send + Sync + 'static) -> Self {
        Self(Arc::new(wake))
    }

    /// Runs the callback.
    pub fn wake(&self) {
        (self.0)();
    }
}

impl std::fmt::Debug for Waker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Waker")
    }
}

/// Runs `waker`, if there is one: what every worker does after sending events.
pub fn wake(waker: Option<&Waker>) {
    if let Some(w) = waker {
        w.wake();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[test]
    fn a_waker_runs_its_callback_from_any_clone() {
        let count = Arc::new(AtomicUsize::new(0));
        let seen = Arc::clone(&count);
        let waker = Waker::new(move || {
            seen.fetch_add(1, Ordering::Relaxed);
        });
        let other = waker.clone();
        wake(Some(&waker));
        std::thread::Builder::new().name("wake-test".into()).spawn(move || other.wake()).unwrap().join().unwrap();
        wake(None);
        assert_eq!(count.load(Ordering::Relaxed), 2);
    }
}
