//! The per-peer header of a state datagram, outside its compressed body:
//!
//! `0x10` · `seq` (LEB128 u64) · `n` ack ranges (LEB128, at most [`MAX_ACK_RANGES`]) ·
//! per range `first` (LEB128), `last - first` (LEB128) · the codec envelope of the body
//! (a FlatBuffers `Message { StateDatagram { frame } }`), or nothing for an
//! acknowledgement alone.
//!
//! Only this header differs between the peers that are sent the same state in a tick, so
//! the host encodes and compresses a body once and shares it (see
//! `proto::outbox::shared_frames`). Every value has one form: a varint longer than it
//! needs, a range whose `last` overflows, more ranges than a sender ever sends, or a
//! header cut short is refused, before anything is allocated.

use thiserror::Error;

/// First byte of every state datagram (pose packets are `0x80..=0xFF`; goodbye and
/// message datagrams have tags of their own).
pub const STATE_DATAGRAM_TAG: u8 = 0x10;
/// Most acknowledgement ranges a header carries (a sender sends at most this many).
pub const MAX_ACK_RANGES: usize = 16;
/// Longest LEB128 encoding of a `u64`.
const MAX_VARINT_LEN: usize = 10;
/// Longest header: tag, sequence number, range count and every range at its longest.
pub const MAX_HEADER_BYTES: usize = 1 + MAX_VARINT_LEN + 1 + MAX_ACK_RANGES * 2 * MAX_VARINT_LEN;

/// Why a header was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum HeaderError {
    /// The first byte is not [`STATE_DATAGRAM_TAG`].
    #[error("not a state datagram (first byte {0:#04x})")]
    NotStateDatagram(u8),
    /// The bytes end inside the header.
    #[error("state datagram header truncated")]
    Truncated,
    /// A varint is longer than its value needs, or than a `u64` allows.
    #[error("malformed varint in state datagram header")]
    BadVarint,
    /// More acknowledgement ranges than a sender sends.
    #[error("{0} acknowledgement ranges, above the maximum of {MAX_ACK_RANGES}")]
    TooManyRanges(u64),
    /// A range whose last sequence number is past `u64::MAX`.
    #[error("acknowledgement range overflows")]
    RangeOverflow,
}

/// A state datagram's header, read: its sequence number and acknowledgement ranges
/// (held inline: reading allocates nothing).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DatagramHeader {
    /// The sender's sequence number of this datagram.
    pub seq: u64,
    ranges: [(u64, u64); MAX_ACK_RANGES],
    len: u8,
}

impl DatagramHeader {
    /// The acknowledgement ranges, `(first, last)` inclusive, as sent.
    pub fn acks(&self) -> &[(u64, u64)] {
        &self.ranges[..usize::from(self.len)]
    }
}

/// Bytes of `value` as LEB128.
pub fn varint_len(value: u64) -> usize {
    // At least one byte; one more per 7 significant bits past the first 7.
    let bits = 64 - value.max(1).leading_zeros() as usize;
    bits.div_ceil(7)
}

fn write_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        // Truncation on purpose: the low 7 bits, with the continuation bit.
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Reads a canonical LEB128 `u64` from the front of `bytes`: returns it and the rest.
fn read_varint(bytes: &[u8]) -> Result<(u64, &[u8]), HeaderError> {
    let mut value = 0u64;
    for (i, &byte) in bytes.iter().enumerate().take(MAX_VARINT_LEN) {
        let bits = u64::from(byte & 0x7f);
        // The tenth byte holds bit 63 alone.
        if i == MAX_VARINT_LEN - 1 && bits > 1 {
            return Err(HeaderError::BadVarint);
        }
        value |= bits << (7 * i);
        if byte & 0x80 == 0 {
            // A last byte of zero after others is an overlong form of a shorter value.
            if i > 0 && byte == 0 {
                return Err(HeaderError::BadVarint);
            }
            return Ok((value, &bytes[i + 1..]));
        }
    }
    if bytes.len() >= MAX_VARINT_LEN {
        Err(HeaderError::BadVarint)
    } else {
        Err(HeaderError::Truncated)
    }
}

/// Bytes of the header of a datagram carrying `acks`, for any sequence number: the
/// sequence number counted at its longest.
pub fn max_len(acks: &[(u64, u64)]) -> usize {
    let ranges: usize = acks
        .iter()
        .map(|&(first, last)| varint_len(first) + varint_len(last.saturating_sub(first)))
        .sum();
    1 + MAX_VARINT_LEN + varint_len(acks.len() as u64) + ranges
}

/// Appends the header of datagram `seq` carrying `acks` (at most [`MAX_ACK_RANGES`]
/// well-formed ranges: `first <= last`; the sender's own, so a broken one is a bug, and
/// extra ranges are left out rather than sent).
pub fn write(seq: u64, acks: &[(u64, u64)], out: &mut Vec<u8>) {
    debug_assert!(acks.len() <= MAX_ACK_RANGES, "{} ranges", acks.len());
    let acks = &acks[..acks.len().min(MAX_ACK_RANGES)];
    out.push(STATE_DATAGRAM_TAG);
    write_varint(out, seq);
    write_varint(out, acks.len() as u64);
    for &(first, last) in acks {
        debug_assert!(first <= last, "range {first}..={last}");
        write_varint(out, first);
        write_varint(out, last.saturating_sub(first));
    }
}

/// Reads the header at the front of `bytes` (from a peer: hostile); returns it and what
/// follows (the body's codec envelope; empty for an acknowledgement alone).
pub fn read(bytes: &[u8]) -> Result<(DatagramHeader, &[u8]), HeaderError> {
    let (&tag, rest) = bytes.split_first().ok_or(HeaderError::Truncated)?;
    if tag != STATE_DATAGRAM_TAG {
        return Err(HeaderError::NotStateDatagram(tag));
    }
    let (seq, rest) = read_varint(rest)?;
    let (count, mut rest) = read_varint(rest)?;
    if count > MAX_ACK_RANGES as u64 {
        return Err(HeaderError::TooManyRanges(count));
    }
    let mut header = DatagramHeader {
        seq,
        ranges: [(0, 0); MAX_ACK_RANGES],
        // Bounded by MAX_ACK_RANGES just above.
        len: count as u8,
    };
    for range in header.ranges.iter_mut().take(count as usize) {
        let (first, after) = read_varint(rest)?;
        let (span, after) = read_varint(after)?;
        let last = first.checked_add(span).ok_or(HeaderError::RangeOverflow)?;
        *range = (first, last);
        rest = after;
    }
    Ok((header, rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(seq: u64, acks: &[(u64, u64)]) -> Vec<u8> {
        let mut out = Vec::new();
        write(seq, acks, &mut out);
        out
    }

    #[test]
    fn round_trip_with_the_body_after_it() {
        let cases: [(u64, &[(u64, u64)]); 4] = [
            (0, &[]),
            (1, &[(0, 0)]),
            (300, &[(0, 127), (128, 128), (1 << 40, (1 << 40) + 5)]),
            (u64::MAX, &[(u64::MAX - 3, u64::MAX), (0, u64::MAX)]),
        ];
        for (seq, acks) in cases {
            let mut bytes = header(seq, acks);
            assert!(bytes.len() <= max_len(acks), "{seq} {acks:?}");
            assert!(bytes.len() <= MAX_HEADER_BYTES);
            bytes.extend_from_slice(&[0, 9, 9]);
            let (read_back, body) = read(&bytes).expect("reads");
            assert_eq!(read_back.seq, seq);
            assert_eq!(read_back.acks(), acks);
            assert_eq!(body, &[0, 9, 9]);
        }
        let full: Vec<(u64, u64)> = (0..MAX_ACK_RANGES as u64)
            .map(|i| (u64::MAX - 2 * i - 1, u64::MAX - 2 * i))
            .collect();
        let bytes = header(u64::MAX, &full);
        assert_eq!(
            bytes.len(),
            max_len(&full),
            "the bound is exact at its longest"
        );
        assert_eq!(read(&bytes).expect("reads").0.acks(), &full[..]);
    }

    #[test]
    fn varint_lengths() {
        for (value, len) in [(0, 1), (127, 1), (128, 2), (16383, 2), (16384, 3)] {
            assert_eq!(varint_len(value), len, "{value}");
        }
        assert_eq!(varint_len(u64::MAX), MAX_VARINT_LEN);
        for value in [0, 1, 127, 128, 1 << 35, u64::MAX] {
            let mut out = Vec::new();
            write_varint(&mut out, value);
            assert_eq!(out.len(), varint_len(value));
        }
    }

    #[test]
    fn every_truncation_is_refused() {
        let bytes = header(1 << 20, &[(5, 9), (1 << 33, (1 << 33) + 300)]);
        for cut in 0..bytes.len() {
            assert_eq!(
                read(&bytes[..cut]),
                Err(HeaderError::Truncated),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn another_first_byte_is_refused() {
        for tag in [0u8, 1, 2, 0x11, 0x7F, 0x80] {
            let mut bytes = header(1, &[]);
            bytes[0] = tag;
            assert_eq!(read(&bytes), Err(HeaderError::NotStateDatagram(tag)));
        }
    }

    #[test]
    fn overlong_and_overflowing_varints_are_refused() {
        // Zero as two bytes; one as two bytes.
        for seq in [&[0x80u8, 0x00][..], &[0x81, 0x00]] {
            let mut bytes = vec![STATE_DATAGRAM_TAG];
            bytes.extend_from_slice(seq);
            bytes.push(0);
            assert_eq!(read(&bytes), Err(HeaderError::BadVarint), "{seq:?}");
        }
        // Past 64 bits: a tenth byte above 1, and an eleventh byte.
        let mut bytes = vec![STATE_DATAGRAM_TAG];
        bytes.extend_from_slice(&[0xff; 9]);
        bytes.push(0x02);
        bytes.push(0);
        assert_eq!(read(&bytes), Err(HeaderError::BadVarint));
        let mut bytes = vec![STATE_DATAGRAM_TAG];
        bytes.extend_from_slice(&[0x80; 11]);
        assert_eq!(read(&bytes), Err(HeaderError::BadVarint));
        // The range count overlong too.
        assert_eq!(
            read(&[STATE_DATAGRAM_TAG, 1, 0x80, 0x00]),
            Err(HeaderError::BadVarint)
        );
    }

    #[test]
    fn too_many_ranges_are_refused_before_reading_them() {
        // The count alone, no ranges after it: refused for the count, not as truncated.
        let mut bytes = vec![STATE_DATAGRAM_TAG, 7];
        write_varint(&mut bytes, MAX_ACK_RANGES as u64 + 1);
        assert_eq!(
            read(&bytes),
            Err(HeaderError::TooManyRanges(MAX_ACK_RANGES as u64 + 1))
        );
        let mut bytes = vec![STATE_DATAGRAM_TAG, 7];
        write_varint(&mut bytes, u64::MAX);
        assert_eq!(read(&bytes), Err(HeaderError::TooManyRanges(u64::MAX)));
        // The most a sender sends is read.
        let most: Vec<(u64, u64)> = (0..MAX_ACK_RANGES as u64).map(|i| (i * 3, i * 3)).collect();
        assert_eq!(read(&header(7, &most)).expect("reads").0.acks(), &most[..]);
    }

    #[test]
    fn an_overflowing_last_is_refused() {
        let mut bytes = vec![STATE_DATAGRAM_TAG, 0, 1];
        write_varint(&mut bytes, u64::MAX - 1);
        write_varint(&mut bytes, 2);
        assert_eq!(read(&bytes), Err(HeaderError::RangeOverflow));
        // Exactly u64::MAX is a range.
        let mut bytes = vec![STATE_DATAGRAM_TAG, 0, 1];
        write_varint(&mut bytes, u64::MAX - 1);
        write_varint(&mut bytes, 1);
        assert_eq!(
            read(&bytes).expect("reads").0.acks(),
            &[(u64::MAX - 1, u64::MAX)]
        );
    }
}
