//! The host's dictionary training: samples of each message kind as sent, and the
//! trainings handed to the driver to run off the engine thread.

use std::collections::VecDeque;

use super::{SAMPLES_PER_KIND, SAMPLE_BYTES_PER_KIND, SAMPLE_MAX_BYTES};
use crate::wire::codec::{train_dictionary, CodecError, Dictionary, MessageKind};

/// Recorded uncompressed messages of one kind, bounded.
#[derive(Default)]
pub(super) struct Samples {
    pub(super) ring: VecDeque<Vec<u8>>,
    pub(super) bytes: usize,
    /// Recorded since the kind's last training started (or the session started).
    pub(super) since_training: u64,
}

impl Samples {
    pub(super) fn record(&mut self, message: &[u8]) {
        // A full ring hands its oldest sample's buffer to the new one (the oldest goes
        // first anyway): recording allocates nothing once the ring is full.
        let mut sample = if self.ring.len() >= SAMPLES_PER_KIND {
            self.ring.pop_front().unwrap_or_default()
        } else {
            Vec::new()
        };
        self.bytes -= sample.len();
        sample.clear();
        sample.extend_from_slice(&message[..message.len().min(SAMPLE_MAX_BYTES)]);
        self.bytes += sample.len();
        self.ring.push_back(sample);
        while self.ring.len() > SAMPLES_PER_KIND || self.bytes > SAMPLE_BYTES_PER_KIND {
            match self.ring.pop_front() {
                Some(old) => self.bytes -= old.len(),
                None => break,
            }
        }
        self.since_training += 1;
    }

    /// Counts a message sent again (a datagram body shared by another client) towards the
    /// next training without keeping it twice: a kind trains after as many sends as
    /// before, on samples that are all different.
    pub(super) fn count_again(&mut self) {
        self.since_training += 1;
    }
}

/// A dictionary training to run: CPU work (tens of milliseconds to seconds) that the
/// protocol hands to whoever drives it, to run off the engine thread and give back with
/// [`TrainingJob::run`]'s result.
pub struct TrainingJob {
    pub(super) kind: usize,
    pub(super) id: u32,
    pub(super) samples: Vec<Vec<u8>>,
    pub(super) size: usize,
}

impl TrainingJob {
    /// Trains the dictionary (pure; blocking).
    pub fn run(self) -> TrainingDone {
        let refs: Vec<&[u8]> = self.samples.iter().map(Vec::as_slice).collect();
        TrainingDone {
            kind: self.kind,
            result: train_dictionary(&refs, self.size, self.id),
        }
    }
}

impl std::fmt::Debug for TrainingJob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrainingJob")
            .field("kind", &MessageKind::ALL[self.kind].name())
            .field("id", &self.id)
            .field("samples", &self.samples.len())
            .finish()
    }
}

/// A finished [`TrainingJob`]: the dictionary or why not.
#[derive(Debug)]
pub struct TrainingDone {
    pub(super) kind: usize,
    pub(super) result: Result<Dictionary, CodecError>,
}

/// The host's dictionary training: samples, and the trainings handed out to run.
pub(super) struct Trainer {
    pub(super) samples: [Samples; 3],
    pub(super) train_after: u64,
    pub(super) dictionary_bytes: usize,
    pub(super) next_id: u32,
    pub(super) running: [Option<u32>; 3],
    pub(super) trained: [u64; 3],
    pub(super) failed: [u64; 3],
    /// Trainings started and not yet taken by the driver.
    pub(super) jobs: Vec<TrainingJob>,
}

/// Why a training could not start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrainError {
    /// Only the host trains dictionaries.
    #[error("only the host trains dictionaries")]
    NotHost,
    /// The kind's codec does not use a dictionary.
    #[error("{0}s are not configured for a dictionary (CodecChoice::ZstdDict)")]
    NoDictionaryCodec(&'static str),
    /// A training of this kind is running.
    #[error("a {0} dictionary is being trained already")]
    Running(&'static str),
    /// Too few samples recorded yet.
    #[error("{got} {kind} samples recorded, training needs at least {need}")]
    TooFewSamples {
        /// The kind.
        kind: &'static str,
        /// Samples held.
        got: usize,
        /// Fewest accepted.
        need: usize,
    },
}
