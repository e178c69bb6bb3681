//! The optional log callback. It may be called from any thread and must be fast; it may
//! be replaced at any time, including from inside the callback.
//!
//! Replacing it waits until no other thread is inside the previous one: a caller that
//! removes its callback before the code behind it goes away (a Unity domain reload, a
//! plugin unload) is never called into freed code. Each call holds a read lock for its
//! duration; setting takes the write lock. A callback that sets the callback (it holds
//! the read lock) defers the change to when its outermost call returns.

use std::cell::Cell;
use std::ffi::c_void;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Mutex, RwLock};

/// Severity of a log message.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum ThetaLogLevel {
    /// Failures that lose the host's work (a panic caught at the boundary).
    Error = 1,
    /// Problems the library recovered from.
    Warn = 2,
    /// Lifecycle of objects.
    Info = 3,
    /// Every refused call, with its message.
    Debug = 4,
}

/// Receives log messages: `level` is a `ThetaLogLevel`, `message` is UTF-8 of `len` bytes
/// (not NUL-terminated), valid only during the call.
pub type ThetaLogCallback =
    Option<unsafe extern "C" fn(user_data: *mut c_void, level: u8, message: *const u8, len: usize)>;

#[derive(Clone, Copy)]
struct Sink {
    callback: unsafe extern "C" fn(*mut c_void, u8, *const u8, usize),
    user_data: *mut c_void,
}

// SAFETY: the host promises (header docs) that the callback and its user data may be used
// from any thread.
unsafe impl Send for Sink {}
// SAFETY: as above; the sink is only copied, never mutated through a shared reference.
unsafe impl Sync for Sink {}

static SINK: RwLock<Option<Sink>> = RwLock::new(None);
/// A change asked for from inside the callback, applied when that call returns.
static DEFERRED: Mutex<Option<Option<Sink>>> = Mutex::new(None);
static LEVEL: AtomicU8 = AtomicU8::new(ThetaLogLevel::Warn as u8);

thread_local! {
    /// Whether this thread is inside the callback (it then holds `SINK`'s read lock).
    static CALLING: Cell<bool> = const { Cell::new(false) };
}

pub(crate) fn set_callback(callback: ThetaLogCallback, user_data: *mut c_void) {
    let sink = callback.map(|callback| Sink {
        callback,
        user_data,
    });
    if CALLING.with(Cell::get) {
        // This thread holds the read lock up the stack: taking the write lock would
        // deadlock.
        *DEFERRED.lock().unwrap_or_else(|p| p.into_inner()) = Some(sink);
        return;
    }
    // Waits for every call of the previous callback on other threads to return.
    let mut current = SINK.write().unwrap_or_else(|p| p.into_inner());
    *current = sink;
    // This explicit change is newer than any deferred one.
    DEFERRED.lock().unwrap_or_else(|p| p.into_inner()).take();
}

pub(crate) fn set_level(level: u8) {
    LEVEL.store(level, Ordering::Relaxed);
}

pub(crate) fn emit(level: ThetaLogLevel, message: &str) {
    if level as u8 > LEVEL.load(Ordering::Relaxed) {
        return;
    }
    if CALLING.with(Cell::get) {
        // A message raised by the callback itself (it called a failing function): not
        // passed on, or a callback that logs would recurse without end. This thread holds
        // the read lock already and must not take it twice anyway.
        return;
    }
    {
        let current = SINK.read().unwrap_or_else(|p| p.into_inner());
        let Some(sink) = *current else {
            return;
        };
        CALLING.with(|c| c.set(true));
        call(sink, level, message);
        CALLING.with(|c| c.set(false));
    }
    let deferred = DEFERRED.lock().unwrap_or_else(|p| p.into_inner()).take();
    if let Some(sink) = deferred {
        *SINK.write().unwrap_or_else(|p| p.into_inner()) = sink;
    }
}

fn call(sink: Sink, level: ThetaLogLevel, message: &str) {
    // SAFETY: the host registered this callback for exactly this signature; the message
    // pointer is valid for `len` bytes during the call.
    unsafe { (sink.callback)(sink.user_data, level as u8, message.as_ptr(), message.len()) };
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, AtomicUsize};
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    static ENTERED: AtomicBool = AtomicBool::new(false);
    static RELEASE: AtomicBool = AtomicBool::new(false);
    static CALLS: AtomicUsize = AtomicUsize::new(0);
    /// Serialises the tests of this module: they share the process-wide sink.
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

    fn text<'a>(message: *const u8, len: usize) -> &'a [u8] {
        // SAFETY: the library passes `len` readable bytes.
        unsafe { std::slice::from_raw_parts(message, len) }
    }

    unsafe extern "C" fn slow(_: *mut c_void, _: u8, message: *const u8, len: usize) {
        if text(message, len) == b"slow" {
            ENTERED.store(true, Ordering::SeqCst);
            let deadline = Instant::now() + Duration::from_secs(10);
            while !RELEASE.load(Ordering::SeqCst) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        CALLS.fetch_add(1, Ordering::SeqCst);
    }

    unsafe extern "C" fn removes_itself(_: *mut c_void, _: u8, _: *const u8, _: usize) {
        CALLS.fetch_add(1, Ordering::SeqCst);
        set_callback(None, std::ptr::null_mut());
        // A message raised from inside the callback is dropped: no recursion, no deadlock.
        emit(ThetaLogLevel::Error, "nested");
    }

    #[test]
    fn removing_the_callback_waits_for_calls_running_on_other_threads() {
        let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
        set_callback(Some(slow), std::ptr::null_mut());
        let logger = std::thread::spawn(|| emit(ThetaLogLevel::Error, "slow"));
        let deadline = Instant::now() + Duration::from_secs(10);
        while !ENTERED.load(Ordering::SeqCst) {
            assert!(Instant::now() < deadline, "the callback never ran");
            std::thread::yield_now();
        }
        let removed = Arc::new(AtomicBool::new(false));
        let remover = {
            let removed = Arc::clone(&removed);
            std::thread::spawn(move || {
                set_callback(None, std::ptr::null_mut());
                removed.store(true, Ordering::SeqCst);
            })
        };
        std::thread::sleep(Duration::from_millis(100));
        assert!(
            !removed.load(Ordering::SeqCst),
            "set_callback(NULL) returned while another thread was inside the callback"
        );
        RELEASE.store(true, Ordering::SeqCst);
        logger.join().unwrap();
        remover.join().unwrap();
        assert!(removed.load(Ordering::SeqCst));
        let calls = CALLS.load(Ordering::SeqCst);
        emit(ThetaLogLevel::Error, "after");
        assert_eq!(
            CALLS.load(Ordering::SeqCst),
            calls,
            "never called once removed"
        );
    }

    #[test]
    fn a_callback_may_remove_itself() {
        let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
        set_callback(Some(removes_itself), std::ptr::null_mut());
        let before = CALLS.load(Ordering::SeqCst);
        emit(ThetaLogLevel::Error, "first");
        assert_eq!(
            CALLS.load(Ordering::SeqCst),
            before + 1,
            "once, nested message dropped"
        );
        emit(ThetaLogLevel::Error, "second");
        assert_eq!(CALLS.load(Ordering::SeqCst), before + 1, "removed");
        assert!(SINK.read().unwrap().is_none());
    }
}
