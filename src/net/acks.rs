//! Acknowledgement of datagrams by sequence number: the receiver keeps the ranges it got
//! lately and repeats them in every datagram it sends, so one lost ack costs nothing.
//!
//! Reordering by delay variation leaves many short-lived holes: with a few datagrams a
//! tick and jitter of a couple of ticks, a dozen ranges can be open at once, and a range
//! left out of every acknowledgement is a datagram whose keys go again for nothing. So
//! the newest [`ACK_RANGES_SENT`] ranges travel each time, and every sequence number the
//! peer used counts, acknowledgement-only datagrams included (they are recorded without
//! being acknowledged, so they do not punch holes between the ranges that matter).

use std::collections::VecDeque;

/// Ranges repeated in each datagram: enough to cover the holes reordering and loss open
/// within a round trip (16 bytes each on the wire before compression).
pub const ACK_RANGES_SENT: usize = 16;
/// Ranges remembered.
const RANGES_KEPT: usize = 32;

/// The sequence numbers received lately, as disjoint inclusive ranges, newest last.
#[derive(Debug, Default)]
pub struct ReceivedSeqs {
    ranges: VecDeque<(u64, u64)>,
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
        let at = self.ranges.partition_point(|&(first, _)| first <= seq);
        if at > 0 {
            let (first, last) = self.ranges[at - 1];
            if seq <= last && seq >= first {
                return false;
            }
        }
        let joins_left = at > 0 && self.ranges[at - 1].1 + 1 == seq;
        let joins_right = at < self.ranges.len() && seq + 1 == self.ranges[at].0;
        match (joins_left, joins_right) {
            (true, true) => {
                let right = self.ranges.remove(at).map_or(seq, |r| r.1);
                self.ranges[at - 1].1 = right;
            }
            (true, false) => self.ranges[at - 1].1 = seq,
            (false, true) => self.ranges[at].0 = seq,
            (false, false) => self.ranges.insert(at, (seq, seq)),
        }
        while self.ranges.len() > RANGES_KEPT {
            self.ranges.pop_front();
        }
        true
    }

    /// The newest ranges to send, newest first; clears the pending flag.
    pub fn to_send(&mut self) -> Vec<(u64, u64)> {
        self.unacked = false;
        self.ranges
            .iter()
            .rev()
            .take(ACK_RANGES_SENT)
            .copied()
            .collect()
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
        assert_eq!(seqs.to_send()[0], (198, 198));
        assert_eq!(seqs.to_send().len(), ACK_RANGES_SENT);
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
