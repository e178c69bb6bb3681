//! The host's compression dictionaries: trainings started on demand or when enough samples
//! are recorded, run by the driver off the engine thread, installed, announced to every
//! client, and retired once every client moved on.

use std::time::Instant;

use super::Host;
use crate::proto::compression::{
    control_message, Compression, TrainError, TrainingDone, TrainingJob,
};
use crate::wire::codec::MessageKind;

impl Host {
    /// Starts the dictionary trainings due; announces the dictionaries installed to every
    /// client; retires the old ones every client has moved on from, telling the clients.
    pub(super) fn update_dictionaries(&mut self, now: Instant) {
        self.compression.start_due_trainings();
        let rtt = self
            .peers
            .values()
            .map(|p| p.link.outbox.resend_after(std::time::Duration::ZERO))
            .max()
            .unwrap_or_default();
        let grace = rtt * 3 + std::time::Duration::from_millis(100);
        let retired =
            self.compression
                .retire(self.peers.values().map(|p| &p.link.dicts), now, grace);
        if retired.is_empty() {
            return;
        }
        let message = control_message(&self.encoder.dictionary_retire(&retired));
        for client in self.peers.values_mut() {
            if Compression::forget_in(&mut client.link.dicts, &retired) {
                client.link.send_reliable(message.clone(), &mut self.out);
            }
        }
        for parked in self.parked.values_mut() {
            Compression::forget_in(&mut parked.client.link.dicts, &retired);
        }
    }

    /// Starts training a dictionary for `kind` from the messages of that kind recorded so
    /// far; the work comes out of [`Host::take_training_jobs`]. Returns the id it will
    /// have. Refused for a kind whose codec is not
    /// [`crate::wire::codec::CodecChoice::ZstdDict`], while a training of the kind runs,
    /// or with too few samples.
    pub fn train_dictionary(&mut self, kind: MessageKind) -> Result<u32, TrainError> {
        self.compression.train(kind)
    }

    /// The dictionary trainings started (on demand or automatically), for the driver to
    /// run off the engine thread and hand back to [`Host::finish_training`].
    pub fn take_training_jobs(&mut self) -> Vec<TrainingJob> {
        self.compression.take_training_jobs()
    }

    /// Installs a finished training and sends the dictionary to every client (which uses
    /// it once it acknowledged it).
    pub fn finish_training(&mut self, done: TrainingDone) {
        let Some((kind, id)) = self.compression.finish_training(done) else {
            return;
        };
        if let Some(message) = self.compression.announce(kind, id, &mut self.encoder) {
            for client in self.peers.values_mut() {
                client.link.dicts.mark_sent(id);
                client.link.send_reliable(message.clone(), &mut self.out);
            }
        }
    }
}
