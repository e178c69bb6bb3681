//! Acknowledgement of datagrams by sequence number: the receiver keeps the ranges it got
//! lately and repeats them in the datagrams it sends, so one lost ack costs nothing.
//!
//! Reordering by delay variation leaves many short-lived holes: with a few datagrams a
//! tick and jitter of a couple of ticks, a dozen ranges can be open at once, and a range
//! left out of every acknowledgement is a datagram whose keys go again for nothing. So up
//! to [`ACK_RANGES_SENT`] ranges travel each time, and every sequence number the peer
//! used counts, acknowledgement-only datagrams included (they are recorded without being
//! acknowledged, so they do not punch holes between the ranges that matter).
//!
//! A range that has not changed goes in [`ACK_REPEATS`] acknowledgements, then rests:
//! loss leaves holes that never close, and repeating every old range in every datagram
//! cost 10 % more bytes at 10 % loss. Should all its repeats be lost, the sender resends
//! the keys of the datagrams it names, once.

use std::collections::VecDeque;

/// Most ranges in one acknowledgement: enough for the holes reordering and loss open
/// within a round trip (16 bytes each on the wire before compression).
pub const ACK_RANGES_SENT: usize = 16;
/// Acknowledgements a range goes in after its last change.
pub const ACK_REPEATS: u8 = 4;
/// Ranges remembered.
const RANGES_KEPT: usize = 32;

/// Sequence numbers `first..=last`, received; sent in `repeats` acknowledgements since
/// they last grew.
#[derive(Clone, Copy, Debug)]
struct Range {
    first: u64,
    last: u64,
    repeats: u8,
}

/// The sequence numbers received lately, as disjoint inclusive ranges, newest last.
#[derive(Debug, Default)]
pub struct ReceivedSeqs {
    ranges: VecDeque<Range>,
    /// Whether something arrived since the ranges were last sent.
    unacked: bool,
}

impl ReceivedSeqs {
    /// Notes `seq` as received and to be acknowledged; false when it was known already
    /// (a duplicate).
    pub fn insert(&mut self, seq: u64) -> bool {
        let new = self.record(seq);
        self.unacked |= new;
        new
    }

    /// Notes `seq` as used by the peer without asking for an acknowledgement (an
    /// acknowledgement-only datagram: acknowledging it would make two idle peers
    /// acknowledge each other forever). It joins the ranges around it.
    pub fn insert_silently(&mut self, seq: u64) {
        self.record(seq);
    }

    fn record(&mut self, seq: u64) -> bool {
        // Usually `seq` extends the newest range or starts a new one.
        let at = self.ranges.partition_point(|r| r.first <= seq);
        if at > 0 && seq <= self.ranges[at - 1].last {
            return false;
        }
        // Sequence numbers come from the peer: no arithmetic may overflow.
        let joins_left = at > 0 && self.ranges[at - 1].last.checked_add(1) == Some(seq);
        let joins_right =
            at < self.ranges.len() && seq.checked_add(1) == Some(self.ranges[at].first);
        match (joins_left, joins_right) {
            (true, true) => {
                let right = self.ranges.remove(at).map_or(seq, |r| r.last);
                self.ranges[at - 1].last = right;
                self.ranges[at - 1].repeats = 0;
            }
            (true, false) => {
                self.ranges[at - 1].last = seq;
                self.ranges[at - 1].repeats = 0;
            }
            (false, true) => {
                self.ranges[at].first = seq;
                self.ranges[at].repeats = 0;
            }
            (false, false) => self.ranges.insert(
                at,
                Range {
                    first: seq,
                    last: seq,
                    repeats: 0,
                },
            ),
        }
        while self.ranges.len() > RANGES_KEPT {
            self.ranges.pop_front();
        }
        true
    }

    /// The ranges to send, newest first: those sent fewer than [`ACK_REPEATS`] times
    /// since they last grew, at most [`ACK_RANGES_SENT`]. Clears the pending flag.
    pub fn to_send(&mut self) -> Vec<(u64, u64)> {
        let mut out = Vec::new();
        self.to_send_into(&mut out);
        out
    }

    /// [`ReceivedSeqs::to_send`] into `out` (emptied first), a buffer the caller keeps.
    pub fn to_send_into(&mut self, out: &mut Vec<(u64, u64)>) {
        self.unacked = false;
        out.clear();
        for range in self.ranges.iter_mut().rev() {
            if out.len() == ACK_RANGES_SENT {
                break;
            }
            if range.repeats < ACK_REPEATS {
                range.repeats += 1;
                out.push((range.first, range.last));
            }
        }
    }

    /// Whether something arrived that was not acknowledged yet.
    pub fn has_unacked(&self) -> bool {
        self.unacked
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merges_ranges_and_spots_duplicates() {
        let mut seqs = ReceivedSeqs::default();
        for seq in [1, 2, 3, 5, 7, 6, 10] {
            assert!(seqs.insert(seq));
        }
        assert!(!seqs.insert(2));
        assert!(!seqs.insert(6));
        assert!(seqs.has_unacked());
        assert_eq!(seqs.to_send(), vec![(10, 10), (5, 7), (1, 3)]);
        assert!(!seqs.has_unacked());
        assert!(seqs.insert(4));
        assert_eq!(seqs.to_send(), vec![(10, 10), (1, 7)]);
    }

    #[test]
    fn keeps_a_bounded_number_of_ranges() {
        let mut seqs = ReceivedSeqs::default();
        for seq in (0..100).map(|i| i * 2) {
            seqs.insert(seq);
        }
        assert_eq!(seqs.ranges.len(), RANGES_KEPT);
        let sent = seqs.to_send();
        assert_eq!(sent[0], (198, 198));
        assert_eq!(sent.len(), ACK_RANGES_SENT);
    }

    #[test]
    fn a_range_rests_after_its_repeats_until_it_grows() {
        let mut seqs = ReceivedSeqs::default();
        seqs.insert(1);
        seqs.insert(5);
        for _ in 0..ACK_REPEATS {
            assert_eq!(seqs.to_send(), vec![(5, 5), (1, 1)]);
        }
        assert!(
            seqs.to_send().is_empty(),
            "every range went {ACK_REPEATS} times"
        );
        // A range that grows goes again; the other keeps resting.
        seqs.insert(6);
        assert_eq!(seqs.to_send(), vec![(5, 6)]);
        seqs.insert(2);
        assert_eq!(seqs.to_send(), vec![(5, 6), (1, 2)]);
    }

    #[test]
    fn extreme_sequence_numbers_neither_overflow_nor_merge_wrongly() {
        let mut seqs = ReceivedSeqs::default();
        assert!(seqs.insert(u64::MAX));
        assert!(seqs.insert(0));
        assert!(seqs.insert(u64::MAX - 1));
        assert!(!seqs.insert(u64::MAX));
        assert_eq!(seqs.to_send(), vec![(u64::MAX - 1, u64::MAX), (0, 0)]);
    }

    #[test]
    fn silent_sequence_numbers_join_ranges_without_asking_for_an_ack() {
        let mut seqs = ReceivedSeqs::default();
        seqs.insert(1);
        seqs.to_send();
        seqs.insert_silently(2);
        assert!(!seqs.has_unacked(), "an ack-only datagram asks for no ack");
        seqs.insert(3);
        assert_eq!(seqs.to_send(), vec![(1, 3)]);
        assert!(!seqs.insert(2), "a silent one is still a duplicate");
    }
}
