//! cargo-fuzz target `snapshot_chunk`: see `theta_fuzz::replica::snapshot_chunk` (`fuzz/targets/replica.rs`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    theta_fuzz::replica::snapshot_chunk(data);
});
