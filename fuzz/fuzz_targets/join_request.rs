//! cargo-fuzz target `join_request`: see `theta_fuzz::join::join_request` (`fuzz/targets/join.rs`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    theta_fuzz::join::join_request(data);
});
