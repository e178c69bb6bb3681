//! Threads the C ABI starts so that the caller's thread does not wait: a session closed
//! by `theta_session_close` says goodbye and joins its runtime on one, a join by host name
//! resolves it on another. They are counted, so an engine that must leave nothing running
//! (an editor domain reload, a play-mode exit, quitting) can wait for them, bounded, with
//! `theta_session_wait_closed`.

use std::sync::{Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

struct State {
    /// Threads started and not yet past their work.
    running: usize,
    /// Their handles, joined once finished.
    handles: Vec<JoinHandle<()>>,
}

static STATE: Mutex<State> = Mutex::new(State {
    running: 0,
    handles: Vec::new(),
});
static FINISHED: Condvar = Condvar::new();

fn state() -> MutexGuard<'static, State> {
    // Only counters and handles live here, updated by code that does not panic.
    STATE.lock().unwrap_or_else(|p| p.into_inner())
}

/// Counts a thread out when its work ends, panic included.
struct Finish;

impl Drop for Finish {
    fn drop(&mut self) {
        state().running -= 1;
        FINISHED.notify_all();
    }
}

/// Runs `work` on a new counted thread named `name`. When no thread can be started, `work`
/// is dropped unrun, here: what it owns is released on the caller's thread (a session to
/// close is then closed here, blocking), and a channel it would have answered on is
/// closed.
pub(super) fn spawn(name: &str, work: impl FnOnce() + Send + 'static) {
    let mut state = state();
    reap(&mut state);
    state.running += 1;
    let started = std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || {
            let _finish = Finish;
            work();
        });
    match started {
        Ok(handle) => state.handles.push(handle),
        Err(_) => {
            state.running -= 1;
            // The closure was dropped inside the failed spawn, under this module's lock:
            // dropping it never takes that lock, so at worst other threads' counting out
            // waits for it.
        }
    }
}

/// Joins the handles of threads that have ended.
fn reap(state: &mut State) {
    let (done, live): (Vec<_>, Vec<_>) = state.handles.drain(..).partition(|h| h.is_finished());
    state.handles = live;
    for handle in done {
        // A panic inside was already counted out by `Finish`; nothing more to report.
        let _ = handle.join();
    }
}

/// Waits up to `timeout` for every counted thread to end and returns how many still run.
pub(super) fn wait(timeout: Duration) -> usize {
    let deadline = Instant::now() + timeout;
    let mut state = state();
    while state.running > 0 {
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        state = FINISHED
            .wait_timeout(state, deadline - now)
            .map(|(guard, _)| guard)
            .unwrap_or_else(|p| p.into_inner().0);
    }
    if state.running == 0 {
        // Every thread is past its work: joining only waits for its exit.
        for handle in state.handles.drain(..) {
            let _ = handle.join();
        }
    } else {
        reap(&mut state);
    }
    state.running
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    #[test]
    fn wait_returns_once_the_threads_are_done_and_counts_those_still_running() {
        let (release, held) = mpsc::channel::<()>();
        spawn("theta-test", move || {
            let _ = held.recv();
        });
        assert!(wait(Duration::from_millis(20)) >= 1, "held open");
        drop(release);
        assert_eq!(wait(Duration::from_secs(10)), 0);
        spawn("theta-test", || panic!("counted out all the same"));
        assert_eq!(wait(Duration::from_secs(10)), 0);
    }
}
