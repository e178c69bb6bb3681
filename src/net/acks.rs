//! Acknowledgement of datagrams by sequence number: the receiver keeps the ranges it got
//! lately and repeats them in every datagram it sends, so one lost ack costs nothing.

use std::collections::VecDeque;

/// Ranges repeated in each datagram: enough to cover a burst of reordering and loss.
pub const ACK_RANGES_SENT: usize = 4;
/// Ranges remembered.
const RANGES_KEPT: usize = 16;

/// The sequence numbers received lately, as disjoint inclusive ranges, newest last.
#[derive(Debug, Default)]
pub struct ReceivedSeqs {
    ranges: VecDeque<(u64, u64)>,
    /// Whether something arrived since the ranges were last sent.
    unacked: bool,
}

impl ReceivedSeqs {
    /// Notes `seq` as received; false when it was known already (a duplicate).
    pub fn insert(&mut self, seq: u64) -> bool {
        // Usually `seq` extends the newest range or starts a new one.
        let at = self.ranges.partition_point(|&(first, _)| first <= seq);
        if at > 0 {
            let (first, last) = self.ranges[at - 1];
            if seq <= last && seq >= first {
                return false;
            }
        }
        self.unacked = true;
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
    }
}
