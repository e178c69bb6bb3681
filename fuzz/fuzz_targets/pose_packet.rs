//! cargo-fuzz target `pose_packet`: see `theta_fuzz::pose::pose_packet` (`fuzz/targets/pose.rs`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    theta_fuzz::pose::pose_packet(data);
});
