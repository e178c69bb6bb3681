//! cargo-fuzz target `delta_frame`: see `theta_fuzz::replica::delta_frame` (`fuzz/targets/replica.rs`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    theta_fuzz::replica::delta_frame(data);
});
