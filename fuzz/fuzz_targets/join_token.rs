//! cargo-fuzz target `join_token`: see `theta_fuzz::join::join_token` (`fuzz/targets/join.rs`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    theta_fuzz::join::join_token(data);
});
