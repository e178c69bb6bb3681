//! The optional log callback. It may be called from any thread and must be fast; it may
//! be replaced at any time, including from inside the callback.

use std::ffi::c_void;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::RwLock;

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
static LEVEL: AtomicU8 = AtomicU8::new(ThetaLogLevel::Warn as u8);

pub(crate) fn set_callback(callback: ThetaLogCallback, user_data: *mut c_void) {
    let sink = callback.map(|callback| Sink {
        callback,
        user_data,
    });
    *SINK.write().unwrap_or_else(|p| p.into_inner()) = sink;
}

pub(crate) fn set_level(level: u8) {
    LEVEL.store(level, Ordering::Relaxed);
}

pub(crate) fn emit(level: ThetaLogLevel, message: &str) {
    if level as u8 > LEVEL.load(Ordering::Relaxed) {
        return;
    }
    // Copied out so the lock is not held during the call (the callback may replace itself).
    let sink = *SINK.read().unwrap_or_else(|p| p.into_inner());
    if let Some(sink) = sink {
        // SAFETY: the host registered this callback for exactly this signature; the message
        // pointer is valid for `len` bytes during the call.
        unsafe { (sink.callback)(sink.user_data, level as u8, message.as_ptr(), message.len()) };
    }
}
