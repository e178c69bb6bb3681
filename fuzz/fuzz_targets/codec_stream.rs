//! cargo-fuzz target `codec_stream`: see `theta_fuzz::codec::codec_stream` (`fuzz/targets/codec.rs`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    theta_fuzz::codec::codec_stream(data);
});
