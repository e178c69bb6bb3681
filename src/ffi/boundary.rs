//! The panic boundary and error model of every exported function: each body runs inside
//! `catch_unwind`, failures become a `ThetaStatus` plus a per-thread message.

use std::cell::RefCell;
use std::panic::{catch_unwind, AssertUnwindSafe};

use super::log::{self, ThetaLogLevel};
use super::ThetaStatus;

thread_local! {
    static LAST_ERROR: RefCell<String> = const { RefCell::new(String::new()) };
}

/// A failure to report through the C ABI.
#[derive(Debug)]
pub(crate) struct FfiError {
    pub status: ThetaStatus,
    pub message: String,
}

impl FfiError {
    pub(crate) fn new(status: ThetaStatus, message: impl Into<String>) -> Self {
        FfiError {
            status,
            message: message.into(),
        }
    }

    pub(crate) fn null(what: &str) -> Self {
        FfiError::new(ThetaStatus::NullPointer, format!("{what} is NULL"))
    }

    pub(crate) fn handle(kind: &str, handle: u64) -> Self {
        FfiError::new(
            ThetaStatus::InvalidHandle,
            format!("{kind} handle {handle:#018x} is not live (freed, never created, or of another type)"),
        )
    }
}

pub(crate) type FfiResult<T = ()> = Result<T, FfiError>;

/// Runs `body` for exported function `name`: its error or panic becomes a status and the
/// thread's last error message.
pub(crate) fn boundary(name: &str, body: impl FnOnce() -> FfiResult) -> ThetaStatus {
    let error = match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => return ThetaStatus::Ok,
        Ok(Err(error)) => error,
        Err(payload) => {
            let what = payload
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_owned());
            FfiError::new(ThetaStatus::Panic, format!("internal panic: {what}"))
        }
    };
    let message = format!("{name}: {}", error.message);
    let level = if error.status == ThetaStatus::Panic {
        ThetaLogLevel::Error
    } else {
        ThetaLogLevel::Debug
    };
    log::emit(level, &message);
    LAST_ERROR.with(|last| *last.borrow_mut() = message);
    error.status
}

/// Copies the thread's last error message, for `theta_last_error`.
pub(crate) fn last_error() -> String {
    LAST_ERROR.with(|last| last.borrow().clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panics_become_a_status_and_a_message() {
        let status = boundary("theta_test_call", || panic!("boom {}", 7));
        assert_eq!(status, ThetaStatus::Panic);
        assert_eq!(last_error(), "theta_test_call: internal panic: boom 7");
        let status = boundary("theta_test_call", || Err(FfiError::null("out_x")));
        assert_eq!(status, ThetaStatus::NullPointer);
        assert_eq!(last_error(), "theta_test_call: out_x is NULL");
        assert_eq!(boundary("theta_test_call", || Ok(())), ThetaStatus::Ok);
    }
}
