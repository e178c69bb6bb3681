//! cargo-fuzz target `control_message`: see `theta_fuzz::control::control_message` (`fuzz/targets/control.rs`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    theta_fuzz::control::control_message(data);
});
