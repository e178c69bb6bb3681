//! Ctrl-C (SIGINT) and SIGTERM as a flag that the run loops of `theta host` and `theta join`
//! poll, so that they stop in order: the session is dropped, which closes its connections
//! with a reason and joins its runtime thread, and the final figures are printed.
//!
//! The C library's `signal` is called directly (the standard C function, in every libc and
//! in the Windows CRT) so that no dependency is needed; the handler only stores an atomic.

use std::sync::atomic::{AtomicBool, Ordering};

static REQUESTED: AtomicBool = AtomicBool::new(false);

#[cfg(any(unix, windows))]
mod imp {
    use std::os::raw::c_int;

    /// SIGINT and SIGTERM have these numbers on Linux, the BSDs, macOS and Windows.
    const SIGINT: c_int = 2;
    const SIGTERM: c_int = 15;

    extern "C" {
        /// C's `signal`; the returned previous handler is not used.
        fn signal(signum: c_int, handler: extern "C" fn(c_int)) -> usize;
    }

    /// Async-signal-safe: stores an atomic and returns.
    extern "C" fn on_signal(_: c_int) {
        super::REQUESTED.store(true, super::Ordering::SeqCst);
    }

    pub fn install() {
        for signum in [SIGINT, SIGTERM] {
            // SAFETY: `signal` is given a valid signal number and a handler that stays
            // valid for the whole program and only touches an atomic, which is
            // async-signal-safe.
            unsafe {
                signal(signum, on_signal);
            }
        }
    }
}

#[cfg(not(any(unix, windows)))]
mod imp {
    pub fn install() {}
}

/// Makes Ctrl-C and SIGTERM set the flag [`requested`] reads instead of killing the process.
pub fn install() {
    imp::install();
}

/// True once Ctrl-C or SIGTERM arrived.
pub fn requested() -> bool {
    REQUESTED.load(Ordering::SeqCst)
}

/// The flag itself, for a run loop that takes one ([`theta_net::server::serve::run`]).
pub fn flag() -> &'static AtomicBool {
    &REQUESTED
}
