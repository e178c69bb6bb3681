//! Helpers shared by the tests that drive the C ABI as a C host would.

// Each test binary uses its own part of these helpers.
#![allow(dead_code)]

pub mod c_build;
pub mod transport;

use std::ptr::null_mut;

use theta_net::ffi::{theta_last_error, ThetaStatus};

/// The message of the last failure on this thread, through `theta_last_error`.
pub fn last_error() -> String {
    let mut len = 0usize;
    // SAFETY: asking for the length with a NULL buffer of length 0.
    assert_eq!(
        unsafe { theta_last_error(null_mut(), 0, &mut len) },
        ThetaStatus::Ok
    );
    let mut buf = vec![0u8; len + 1];
    // SAFETY: buf has len + 1 bytes.
    assert_eq!(
        unsafe { theta_last_error(buf.as_mut_ptr(), buf.len(), &mut len) },
        ThetaStatus::Ok
    );
    String::from_utf8(buf[..len].to_vec()).unwrap()
}

/// Asserts a call succeeded, showing the library's message when it did not.
#[track_caller]
pub fn ok(status: ThetaStatus) {
    assert_eq!(status, ThetaStatus::Ok, "{}", last_error());
}

/// Asserts a call failed with `expected`; returns the library's message.
#[track_caller]
pub fn fails(status: ThetaStatus, expected: ThetaStatus) -> String {
    assert_eq!(status, expected, "{}", last_error());
    last_error()
}
