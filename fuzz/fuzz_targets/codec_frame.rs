//! cargo-fuzz target `codec_frame`: see `theta_fuzz::codec::codec_frame` (`fuzz/targets/codec.rs`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    theta_fuzz::codec::codec_frame(data);
});
