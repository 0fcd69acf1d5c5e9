//! Threads yield the CPU by importance: the UI thread first, then the threads answering it (the
//! library's reads, thumbnails, the viewer's decodes), then background work (scoring, folder
//! scans). On a machine with few cores the UI thread still gets a core when it needs one.

/// How much CPU a thread may claim against the others.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Priority {
    /// Answers the UI: below it, above background work (nice 5 on Linux).
    Service,
    /// Background work that may wait (nice 19 on Linux).
    Background,
}

/// Puts the calling thread at `priority` (threads it starts afterwards inherit it). Lowering needs
/// no privilege; where the platform refuses, the thread keeps its priority.
pub fn set_current_thread_priority(priority: Priority) {
    use thread_priority::{ThreadPriority, ThreadPriorityValue};
    let value = match priority {
        // 0..=99 maps onto nice 19..=-20 (truncating): 35 is nice 5.
        Priority::Service => {
            ThreadPriorityValue::try_from(35u8).map_or(ThreadPriority::Min, ThreadPriority::Crossplatform)
        }
        Priority::Background => ThreadPriority::Min,
    };
    let _ = thread_priority::set_current_thread_priority(value);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The calling thread's nice value, from `/proc`.
    #[cfg(target_os = "linux")]
    fn nice() -> i32 {
        let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
        // Field 19 (nice) is the 17th after the command name's closing parenthesis.
        let rest = &stat[stat.rfind(')').unwrap() + 2..];
        rest.split(' ').nth(16).unwrap().parse().unwrap()
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn threads_run_at_the_nice_value_of_their_priority() {
        let own = nice();
        let lowered = |priority| {
            std::thread::Builder::new()
                .name("rewardlens-priority-test".into())
                .spawn(move || {
                    set_current_thread_priority(priority);
                    nice()
                })
                .unwrap()
                .join()
                .unwrap()
        };
        assert_eq!(lowered(Priority::Background), 19);
        assert_eq!(lowered(Priority::Service), own.max(5));
        // The calling thread keeps its own priority.
        assert_eq!(nice(), own);
    }
}
