//! The C ABI: the only surface engines see. Every exported function is
//! `theta_<object>_<verb>`, returns a [`ThetaStatus`] when it can fail, writes outputs to
//! trailing out-parameters only on success, checks every pointer, validates every handle,
//! and runs inside a panic boundary. `include/theta.h` is generated from this module by
//! cbindgen (see `cbindgen.toml`).

mod background;
mod boundary;
mod compression;
mod fields;
mod handles;
mod interest;
mod log;
mod messages;
mod ownership;
mod replica;
mod session;
mod session_config;
mod session_events;
mod session_open;
mod session_state;
mod session_stats;
mod snapshot;
mod transport;
mod world;
mod xr;

use std::ffi::{c_char, c_void};

pub use compression::*;
pub use fields::*;
pub use interest::*;
pub use log::{ThetaLogCallback, ThetaLogLevel};
pub use messages::*;
pub use ownership::*;
pub use replica::*;
pub use session::*;
pub use session_config::*;
pub use session_events::*;
pub use session_open::*;
pub use session_state::*;
pub use session_stats::*;
pub use snapshot::*;
pub use transport::*;
pub use world::*;
pub use xr::*;

use boundary::{boundary, FfiError, FfiResult};

/// Major version of the library (semantic versioning).
pub const THETA_VERSION_MAJOR: u32 = 0;
/// Minor version of the library.
pub const THETA_VERSION_MINOR: u32 = 1;
/// Patch version of the library.
pub const THETA_VERSION_PATCH: u32 = 0;
/// Version of the C ABI: bumped on any incompatible change of a signature or struct.
/// Wrappers compare it with `theta_abi_version()` and refuse to run on a mismatch.
pub const THETA_ABI_VERSION: u32 = 3;

/// Result of every fallible call. On anything but `THETA_STATUS_OK`, no out-parameter was
/// written, nothing changed, and `theta_last_error` describes the failure.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ThetaStatus {
    /// Success.
    Ok = 0,
    /// A required pointer argument was NULL.
    NullPointer = 1,
    /// A handle was freed, never issued, or of another object type.
    InvalidHandle = 2,
    /// An argument is out of range or malformed (a bad name, layout, stride, tick...).
    InvalidArgument = 3,
    /// The component id is not registered.
    UnknownComponent = 4,
    /// A value's size does not fit the component's layout.
    WrongSize = 5,
    /// The entity is not alive (never spawned here, or despawned).
    DeadEntity = 6,
    /// A registration call of the engine's conflicts with a registered type (other layout,
    /// or a hash collision). A conflicting descriptor in a peer's bytes is `MALFORMED`.
    RegistryConflict = 7,
    /// Bytes from a peer failed decoding or validation (a descriptor conflicting with a
    /// registered type included); nothing was applied.
    Malformed = 8,
    /// The delta base is older than the kept history: send a snapshot instead.
    HistoryTruncated = 9,
    /// The caller's buffer is too small; the needed size was written to the length output.
    BufferTooSmall = 10,
    /// This peer has used all its entity ids.
    OutOfIds = 11,
    /// The entity or component asked for is not there; or the peer a message is for, or
    /// the message request decided on.
    NotFound = 12,
    /// The entity belongs to another peer: this peer may not write it.
    NotOwner = 13,
    /// A client joined by host name has no connection yet (the name is being resolved) or
    /// never will (it did not resolve): tick and poll it until `JOINED` or
    /// `DISCONNECTED`.
    NotConnected = 14,
    /// The session's network endpoint could not start: binding the address failed (in
    /// use, or not an address of this machine), or the OS refused a socket or a thread.
    Io = 15,
    /// A certificate, key or CA is unusable: its PEM does not parse, holds no
    /// certificate, the key does not match the leaf, or TLS refuses it.
    Tls = 16,
    /// The call needs the other role: a host's call on a client (minting a token,
    /// training a dictionary) or a client's on a host (reconnecting).
    WrongRole = 17,
    /// A client cannot resume: it was never admitted, its connection is still up, or the
    /// host gave it no resume token.
    CannotResume = 18,
    /// A dictionary training cannot start: the kind is not configured for a dictionary,
    /// one of the kind is being trained, or too few samples are recorded yet.
    TrainingRefused = 19,
    /// A custom-transport call on a session over QUIC, or a QUIC call (fingerprint, local
    /// port) on a session over a custom transport.
    WrongTransport = 20,
    /// The connection id is not open in this session: never reported, or reported closed.
    UnknownConnection = 21,
    /// The connection id is open already, or a client has its connection already.
    ConnectionExists = 22,
    /// A message over its channel's bound (`ThetaTransportConfig::max_unreliable_bytes`,
    /// or the protocol's for reliable messages). A reliable one also ended its connection:
    /// a close is queued. Or an application message over `THETA_MAX_MESSAGE_BYTES`
    /// (reliable) or `THETA_MAX_UNRELIABLE_MESSAGE_BYTES`: nothing was sent.
    MessageTooLarge = 23,
    /// The session left (`theta_session_leave`): only `theta_session_transport_poll`,
    /// `theta_session_transport_closed`, reads and `theta_session_free` remain. Or, a
    /// client over a custom transport whose connection ended was given a new one before
    /// `theta_session_reconnect`.
    SessionClosed = 24,
    /// An interest call on a host that does not manage interest: set
    /// `ThetaSessionConfig::interest_cell` when creating it.
    InterestOff = 25,
    /// A value written to a component with declared fields (`theta_world_declare_fields`)
    /// cannot be quantised: a declared float is NaN or infinite, a scalar is outside its
    /// range, a position is too far from the origin for its precision, or a rotation is
    /// all zeros. Nothing was written (for a batch, none of its values).
    NotQuantisable = 26,
    /// A panic was caught inside the library. The object involved may be unusable: free it.
    Panic = 99,
}

/// The library version as a static NUL-terminated string, e.g. `"0.1.0"`.
#[no_mangle]
pub extern "C" fn theta_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}

/// The C ABI version of the loaded library; compare with `THETA_ABI_VERSION` from the
/// header you compiled against and refuse to run when they differ.
#[no_mangle]
pub extern "C" fn theta_abi_version() -> u32 {
    THETA_ABI_VERSION
}

/// Copies the message of the last failed call on this thread into `buf` (UTF-8,
/// NUL-terminated, truncated to `len - 1` bytes) and writes the full message length
/// (without NUL) to `out_len`. `buf` may be NULL when `len` is 0, to ask for the length.
/// The message stays until the next failure on this thread. Never fails but on NULL
/// `out_len`, or `buf` NULL with `len` > 0.
///
/// # Safety
/// `buf` must point to `len` writable bytes; `out_len` to a writable `size_t`.
#[no_mangle]
pub unsafe extern "C" fn theta_last_error(
    buf: *mut u8,
    len: usize,
    out_len: *mut usize,
) -> ThetaStatus {
    boundary("theta_last_error", || {
        check_out(out_len, "out_len")?;
        if buf.is_null() && len > 0 {
            return Err(FfiError::null("buf"));
        }
        let message = boundary::last_error();
        if len > 0 {
            let n = message.len().min(len - 1);
            // SAFETY: the caller gives `len` writable bytes at `buf` (checked non-NULL); we
            // write `n + 1 <= len` of them.
            unsafe {
                std::ptr::copy_nonoverlapping(message.as_ptr(), buf, n);
                *buf.add(n) = 0;
            }
        }
        // SAFETY: checked non-NULL above; the caller gives a writable size_t.
        unsafe { out_len.write(message.len()) };
        Ok(())
    })
}

/// Sets (or, with NULL, removes) the function that receives log messages, for the whole
/// process (the last call wins). It is called from whichever thread logs, possibly
/// several at once, and must return quickly; it may call `theta_set_log_callback` itself
/// (the change then applies once the callback returns). `user_data` is passed back
/// unchanged.
///
/// When this returns (called from outside the callback), no other thread is running the
/// previous callback, and none will call it again. So before the code of a callback goes
/// away (a Unity domain reload unloads the managed method it points to; a plugin is
/// unloaded), remove it with NULL: the library can then never call into freed code. The
/// callback must not wait for a thread that may be setting the callback.
#[no_mangle]
pub extern "C" fn theta_set_log_callback(
    callback: ThetaLogCallback,
    user_data: *mut c_void,
) -> ThetaStatus {
    boundary("theta_set_log_callback", || {
        log::set_callback(callback, user_data);
        Ok(())
    })
}

/// Sets the most verbose `ThetaLogLevel` passed to the log callback (default
/// `THETA_LOG_LEVEL_WARN`); 0 silences logging.
#[no_mangle]
pub extern "C" fn theta_set_log_level(level: u8) -> ThetaStatus {
    boundary("theta_set_log_level", || {
        if level > ThetaLogLevel::Debug as u8 {
            return Err(FfiError::new(
                ThetaStatus::InvalidArgument,
                format!("log level {level} is not a ThetaLogLevel (0..=4)"),
            ));
        }
        log::set_level(level);
        Ok(())
    })
}

/// Fails with `NullPointer` unless `ptr` is non-NULL.
fn check_out<T>(ptr: *mut T, what: &str) -> FfiResult {
    if ptr.is_null() {
        return Err(FfiError::null(what));
    }
    Ok(())
}

/// Writes an output after [`check_out`] accepted its pointer.
///
/// # Safety
/// `ptr` must be valid for writes of `T` and non-NULL.
unsafe fn write_out<T>(ptr: *mut T, value: T) {
    // SAFETY: guaranteed by the caller.
    unsafe { ptr.write(value) }
}

/// Writes an optional output: nothing when `ptr` is NULL.
///
/// # Safety
/// `ptr` must be NULL or valid for writes of `T`.
unsafe fn write_optional<T>(ptr: *mut T, value: T) {
    if !ptr.is_null() {
        // SAFETY: non-NULL and valid per the caller.
        unsafe { ptr.write(value) }
    }
}

/// Borrows `len` bytes at `ptr`; NULL is accepted only when `len` is 0.
///
/// # Safety
/// `ptr` must be valid for reads of `len` bytes for the duration of the call.
unsafe fn bytes_in<'a>(ptr: *const u8, len: usize, what: &str) -> FfiResult<&'a [u8]> {
    if len == 0 {
        return Ok(&[]);
    }
    if ptr.is_null() {
        return Err(FfiError::null(what));
    }
    if len > isize::MAX as usize {
        return Err(FfiError::new(
            ThetaStatus::InvalidArgument,
            format!("{what}: length {len} is too large"),
        ));
    }
    // SAFETY: non-NULL, length bounded, and readable per the caller.
    Ok(unsafe { std::slice::from_raw_parts(ptr, len) })
}

/// Borrows a UTF-8 name of `len` bytes.
///
/// # Safety
/// As [`bytes_in`].
unsafe fn name_in<'a>(ptr: *const u8, len: usize) -> FfiResult<&'a str> {
    // SAFETY: forwarded contract.
    let bytes = unsafe { bytes_in(ptr, len, "name") }?;
    std::str::from_utf8(bytes).map_err(|e| {
        FfiError::new(
            ThetaStatus::InvalidArgument,
            format!("name is not UTF-8: {e}"),
        )
    })
}
