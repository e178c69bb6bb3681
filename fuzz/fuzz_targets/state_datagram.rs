//! cargo-fuzz target `state_datagram`: see `theta_fuzz::replica::state_datagram` (`fuzz/targets/replica.rs`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    theta_fuzz::replica::state_datagram(data);
});
