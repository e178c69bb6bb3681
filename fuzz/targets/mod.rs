//! The bodies of Theta's fuzz targets, one per decoder family that sees peer bytes.
//!
//! This file is the root of the fuzz package's library (`theta_fuzz`), which the cargo-fuzz
//! targets in `fuzz/fuzz_targets/` call, and it is also included by the root crate's
//! `tests/fuzz_corpora.rs` (`#[path = "../fuzz/targets/mod.rs"]`), which replays every
//! committed corpus file through the same code on stable. So it depends on nothing but
//! `theta_net` and `std`.
//!
//! Each target takes the raw fuzz input, drives it through the public API the peer's bytes
//! reach (a replica already holding state, a compression stream after its start frame...),
//! and panics when a decoder breaks one of its own promises: a refused message changes
//! nothing, decoded sizes stay within the kind's bound, an accepted pose fits the volume.
//! A target returns an [`Outcome`] so that the replay test and the `measure` tool can tell
//! what was accepted and how many bytes it produced.

pub mod codec;
pub mod control;
pub mod fixture;
pub mod input;
pub mod join;
pub mod pose;
pub mod replica;

/// What one run of a target did with its input.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Messages (records) the decoders accepted.
    pub accepted: usize,
    /// Messages they refused.
    pub refused: usize,
    /// The largest output one accepted message produced for the caller, in bytes
    /// (decompressed bytes, event payload, decoded samples...): see each target.
    pub max_output: usize,
    /// That message's own size, in bytes.
    pub max_output_input: usize,
}

impl Outcome {
    /// Counts a refused message.
    pub fn refuse(&mut self) {
        self.refused += 1;
    }

    /// Counts an accepted message of `input` bytes that produced `output` bytes; keeps the
    /// highest output per input byte.
    pub fn accept(&mut self, input: usize, output: usize) {
        self.accepted += 1;
        let better = (output as u128) * (self.max_output_input.max(1) as u128)
            > (self.max_output as u128) * (input.max(1) as u128);
        if self.max_output == 0 || better {
            self.max_output = output;
            self.max_output_input = input;
        }
    }

    /// Output bytes per input byte of the best message, 0 when none was accepted.
    pub fn ratio(&self) -> f64 {
        if self.accepted == 0 {
            return 0.0;
        }
        self.max_output as f64 / self.max_output_input.max(1) as f64
    }
}

/// A target: its name (also its `fuzz/corpus/` directory) and its body.
pub type Target = (&'static str, fn(&[u8]) -> Outcome);

/// Every target, in the order of `fuzz/README.md`.
pub const TARGETS: [Target; 9] = [
    ("snapshot_chunk", replica::snapshot_chunk),
    ("delta_frame", replica::delta_frame),
    ("state_datagram", replica::state_datagram),
    ("codec_frame", codec::codec_frame),
    ("codec_stream", codec::codec_stream),
    ("control_message", control::control_message),
    ("pose_packet", pose::pose_packet),
    ("join_request", join::join_request),
    ("join_token", join::join_token),
];
