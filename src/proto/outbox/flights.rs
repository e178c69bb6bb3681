//! The datagrams an outbox sent and that are not yet acknowledged.

use std::collections::VecDeque;
use std::ops::Range;
use std::time::Instant;

use super::Key;
use crate::proto::baselines::Send;

/// A key a datagram carried: the key, its place in the pending list when it was sent, and
/// its send when the value is on record to become a baseline.
pub(super) type FlightKey = (Key, u32, Option<Send>);

/// A datagram sent and not yet acknowledged.
#[derive(Debug)]
pub(super) struct InFlight {
    pub(super) seq: u64,
    pub(super) tick: u64,
    pub(super) sent_at: Instant,
    /// Its keys: where they begin among every key [`Flights`] recorded, and how many.
    pub(super) first_key: u64,
    pub(super) keys: usize,
    /// Acknowledged (out of order): a hole until the datagrams before it go.
    pub(super) acked: bool,
}

/// The datagrams sent and not yet acknowledged, by sequence number, with their keys (and
/// the send of those whose values they carried on record in the shared `ValueHistory`,
/// to become baselines when acknowledged). Two queues rather than a map of lists, so
/// that recording a datagram allocates nothing once they have grown: a datagram
/// acknowledged out of order stays as a hole until those before it go.
#[derive(Debug, Default)]
pub(super) struct Flights {
    /// Sequence numbers ascending; the first is never a hole.
    pub(super) list: VecDeque<InFlight>,
    /// The keys of the datagrams in `list`, in the same order, each with its place in the
    /// outbox's pending list when it was sent (a hint: see `Outbox::on_acks`).
    pub(super) keys: VecDeque<FlightKey>,
    /// Keys dropped from the front of `keys` so far (numbers `InFlight::first_key`).
    pub(super) keys_dropped: u64,
    /// Datagrams in `list` not acknowledged.
    pub(super) live: usize,
}

impl Flights {
    /// Datagrams not acknowledged.
    pub(super) fn len(&self) -> usize {
        self.live
    }

    /// Records datagram `seq` (above every one recorded) with its keys.
    pub(super) fn push(
        &mut self,
        (seq, tick, sent_at): (u64, u64, Instant),
        keys: impl Iterator<Item = FlightKey>,
    ) {
        let before = self.keys.len();
        let first_key = self.keys_dropped + before as u64;
        self.keys.extend(keys);
        self.list.push_back(InFlight {
            seq,
            tick,
            sent_at,
            first_key,
            keys: self.keys.len() - before,
            acked: false,
        });
        self.live += 1;
    }

    /// When the oldest datagram not acknowledged was sent.
    pub(super) fn oldest_sent_at(&self) -> Option<Instant> {
        self.list.front().map(|f| f.sent_at)
    }

    /// Forgets the oldest datagram not acknowledged; false when there is none.
    pub(super) fn drop_oldest(&mut self) -> bool {
        match self.list.front_mut() {
            Some(oldest) => {
                oldest.acked = true;
                self.live -= 1;
                self.trim();
                true
            }
            None => false,
        }
    }

    /// Positions in `list` of the datagrams `first..=last` (holes included).
    pub(super) fn positions(&self, first: u64, last: u64) -> Range<usize> {
        let start = self.list.partition_point(|f| f.seq < first);
        let end = self.list.partition_point(|f| f.seq <= last);
        start..end.max(start)
    }

    /// Marks the datagram at `position` acknowledged; returns its sequence number, tick,
    /// sending time and the positions of its keys in `keys`, or `None` when it was
    /// acknowledged already. Call [`Flights::trim`] once done.
    pub(super) fn ack(&mut self, position: usize) -> Option<(u64, u64, Instant, Range<usize>)> {
        let flight = self.list.get_mut(position).filter(|f| !f.acked)?;
        flight.acked = true;
        self.live -= 1;
        let start = (flight.first_key - self.keys_dropped) as usize;
        Some((
            flight.seq,
            flight.tick,
            flight.sent_at,
            start..start + flight.keys,
        ))
    }

    /// Drops the acknowledged datagrams at the front, and their keys.
    pub(super) fn trim(&mut self) {
        while let Some(front) = self.list.front().filter(|f| f.acked) {
            let keys = front.keys;
            self.keys.drain(..keys);
            self.keys_dropped += keys as u64;
            self.list.pop_front();
        }
    }

    pub(super) fn clear(&mut self) {
        self.keys_dropped += self.keys.len() as u64;
        self.list.clear();
        self.keys.clear();
        self.live = 0;
    }
}
