//! Ctrl-C for long commands: the first press asks the running work to stop cleanly (finished
//! database transactions stay, partial results are printed); a second press quits at once.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

/// Exit code of a run stopped by Ctrl-C (128 + SIGINT), as shells expect.
pub const INTERRUPTED_EXIT: u8 = 130;

static STOP: AtomicBool = AtomicBool::new(false);
static INSTALLED: OnceLock<()> = OnceLock::new();

/// The flag the first Ctrl-C sets, with the handler installed on first use; long loops poll it.
pub fn stop_flag() -> &'static AtomicBool {
    INSTALLED.get_or_init(|| {
        let installed = ctrlc::set_handler(|| {
            if STOP.swap(true, Ordering::SeqCst) {
                eprintln!("\nrewardlens: interrupted");
                std::process::exit(i32::from(INTERRUPTED_EXIT));
            }
            eprintln!("\nrewardlens: stopping after the current work (Ctrl-C again to quit now)");
        });
        // Without a handler Ctrl-C still ends the process, as it would have anyway.
        if let Err(e) = installed {
            eprintln!("rewardlens: cannot catch Ctrl-C ({e}); it will end the run at once");
        }
    });
    &STOP
}

/// Whether Ctrl-C was pressed.
pub fn stopped() -> bool {
    STOP.load(Ordering::Relaxed)
}
