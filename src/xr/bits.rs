//! A small LSB-first bit writer and a bounds-checked bit reader for bit-packed pose data.

/// Why reading bits failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BitError {
    /// The input ended before the requested bits.
    #[error("truncated input: wanted {wanted} more bits at bit {at}, only {available} left")]
    Truncated {
        /// Bit position of the read.
        at: usize,
        /// Bits requested.
        wanted: u32,
        /// Bits left in the input.
        available: usize,
    },
    /// More than 64 bits were requested in one read.
    #[error("cannot read {0} bits at once (at most 64)")]
    TooWide(u32),
}

/// Appends bit fields, least significant bit first, into a byte vector.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BitWriter {
    bytes: Vec<u8>,
    bit_len: usize,
}

impl BitWriter {
    /// An empty writer.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty writer with room for `bytes` bytes: a packet built to a known bound grows
    /// without reallocating.
    pub fn with_capacity(bytes: usize) -> Self {
        BitWriter {
            bytes: Vec::with_capacity(bytes),
            bit_len: 0,
        }
    }

    /// Writes the low `n` bits of `value` (`n` at most 64; higher bits of `value` are
    /// ignored; wider requests are clamped to 64).
    pub fn write_bits(&mut self, mut value: u64, n: u32) {
        let mut n = n.min(64);
        if n < 64 {
            value &= (1u64 << n) - 1;
        }
        while n > 0 {
            let used = (self.bit_len % 8) as u32;
            if used == 0 {
                self.bytes.push(0);
            }
            let take = (8 - used).min(n);
            let chunk = (value & ((1u64 << take) - 1)) as u8;
            if let Some(last) = self.bytes.last_mut() {
                *last |= chunk << used;
            }
            value >>= take;
            n -= take;
            self.bit_len += take as usize;
        }
    }

    /// Writes one bit.
    pub fn write_bool(&mut self, bit: bool) {
        self.write_bits(u64::from(bit), 1);
    }

    /// Writes a signed value as an `n`-bit two's complement field. The caller ensures the
    /// value fits (`-2^(n-1) ..= 2^(n-1) - 1`); see [`fits_signed`].
    pub fn write_signed(&mut self, value: i64, n: u32) {
        self.write_bits(value as u64, n);
    }

    /// Appends every bit `other` wrote (a relay concatenates sections encoded once for
    /// many packets): whole bytes at a time, shifted when this writer is mid-byte.
    pub fn append(&mut self, other: &BitWriter) {
        if self.bit_len.is_multiple_of(8) {
            self.bytes.extend_from_slice(&other.bytes);
            self.bit_len += other.bit_len;
            return;
        }
        let used = (self.bit_len % 8) as u32;
        let full = other.bit_len / 8;
        self.bytes.reserve(full + 1);
        for &byte in other.bytes.iter().take(full) {
            // The byte's low bits fill this writer's last byte, its high bits start the next.
            if let Some(last) = self.bytes.last_mut() {
                *last |= byte << used;
            }
            self.bytes.push(byte >> (8 - used));
        }
        self.bit_len += full * 8;
        let rest = (other.bit_len % 8) as u32;
        if let Some(&last) = other.bytes.get(full).filter(|_| rest > 0) {
            self.write_bits(u64::from(last), rest);
        }
    }

    /// Empties the writer, keeping its buffer.
    pub fn clear(&mut self) {
        self.bytes.clear();
        self.bit_len = 0;
    }

    /// Bits written so far.
    pub fn bit_len(&self) -> usize {
        self.bit_len
    }

    /// The bytes written so far (the last byte is zero-padded).
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Consumes the writer and returns its bytes (the last byte is zero-padded).
    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }
}

/// Maps signed to unsigned so small magnitudes stay small: `0, −1, 1, −2, …` → `0, 1, 2, 3, …`.
pub(crate) fn zigzag(r: i64) -> u64 {
    ((r << 1) ^ (r >> 63)) as u64
}

/// The inverse of [`zigzag`].
pub(crate) fn unzigzag(u: u64) -> i64 {
    (u >> 1) as i64 ^ -((u & 1) as i64)
}

/// Whether `value` fits an `n`-bit two's complement field (`n` in 1..=64).
pub fn fits_signed(value: i64, n: u32) -> bool {
    if n == 0 {
        return value == 0;
    }
    if n >= 64 {
        return true;
    }
    let half = 1i64 << (n - 1);
    (-half..half).contains(&value)
}

/// Reads bit fields written by [`BitWriter`]; every read is bounds-checked and a read past
/// the end is an error, never a panic.
#[derive(Clone, Debug)]
pub struct BitReader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> BitReader<'a> {
    /// A reader over `bytes`, positioned at bit 0.
    pub fn new(bytes: &'a [u8]) -> Self {
        BitReader { bytes, pos: 0 }
    }

    /// Bits left (including any zero padding of the last byte).
    pub fn remaining(&self) -> usize {
        (self.bytes.len() * 8).saturating_sub(self.pos)
    }

    /// The current bit position.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Reads `n` bits (at most 64). On error the position is unchanged.
    pub fn read_bits(&mut self, n: u32) -> Result<u64, BitError> {
        if n > 64 {
            return Err(BitError::TooWide(n));
        }
        let available = self.remaining();
        if (n as usize) > available {
            return Err(BitError::Truncated {
                at: self.pos,
                wanted: n,
                available,
            });
        }
        let mut value = 0u64;
        let mut got = 0u32;
        while got < n {
            let byte = self
                .bytes
                .get(self.pos / 8)
                .copied()
                .ok_or(BitError::Truncated {
                    at: self.pos,
                    wanted: n - got,
                    available: 0,
                })?;
            let used = (self.pos % 8) as u32;
            let take = (8 - used).min(n - got);
            let chunk = (u64::from(byte) >> used) & ((1u64 << take) - 1);
            value |= chunk << got;
            got += take;
            self.pos += take as usize;
        }
        Ok(value)
    }

    /// Reads one bit.
    pub fn read_bool(&mut self) -> Result<bool, BitError> {
        Ok(self.read_bits(1)? == 1)
    }

    /// Reads an `n`-bit two's complement field and sign-extends it.
    pub fn read_signed(&mut self, n: u32) -> Result<i64, BitError> {
        let raw = self.read_bits(n)?;
        if n == 0 || n >= 64 {
            return Ok(raw as i64);
        }
        let shift = 64 - n;
        Ok(((raw << shift) as i64) >> shift)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_mixed_widths() {
        let fields: Vec<(u64, u32)> = (0..200u64)
            .map(|i| {
                let n = (i % 64) as u32 + 1;
                let v = i.wrapping_mul(0x9E37_79B9_7F4A_7C15);
                (if n == 64 { v } else { v & ((1 << n) - 1) }, n)
            })
            .collect();
        let mut w = BitWriter::new();
        for &(v, n) in &fields {
            w.write_bits(v, n);
        }
        let total: u32 = fields.iter().map(|f| f.1).sum();
        assert_eq!(w.bit_len(), total as usize);
        assert_eq!(w.as_bytes().len(), (total as usize).div_ceil(8));
        let bytes = w.into_bytes();
        let mut r = BitReader::new(&bytes);
        for &(v, n) in &fields {
            assert_eq!(r.read_bits(n), Ok(v));
        }
        assert!(r.remaining() < 8);
    }

    #[test]
    fn signed_fields_sign_extend() {
        let mut w = BitWriter::new();
        for (v, n) in [
            (-1i64, 3u32),
            (3, 3),
            (-4, 3),
            (0, 1),
            (-1, 1),
            (-300, 10),
            (i64::MIN, 64),
        ] {
            assert!(fits_signed(v, n));
            w.write_signed(v, n);
        }
        assert!(!fits_signed(4, 3) && !fits_signed(-5, 3) && fits_signed(0, 0));
        let bytes = w.into_bytes();
        let mut r = BitReader::new(&bytes);
        for (v, n) in [
            (-1i64, 3u32),
            (3, 3),
            (-4, 3),
            (0, 1),
            (-1, 1),
            (-300, 10),
            (i64::MIN, 64),
        ] {
            assert_eq!(r.read_signed(n), Ok(v));
        }
    }

    #[test]
    fn appending_equals_writing_in_place() {
        for head in 0..17u32 {
            for tail in [0u32, 1, 7, 8, 9, 23, 64] {
                let mut other = BitWriter::new();
                other.write_bits(0xDEAD_BEEF_CAFE_F00D, tail);
                let mut joined = BitWriter::new();
                joined.write_bits(0x1_5A5A, head);
                let mut expected = joined.clone();
                joined.append(&other);
                expected.write_bits(0xDEAD_BEEF_CAFE_F00D, tail);
                assert_eq!(joined, expected, "{head} + {tail} bits");
            }
        }
    }

    #[test]
    fn truncated_input_is_an_error() {
        let mut w = BitWriter::new();
        w.write_bits(0x1FF, 9);
        let bytes = w.into_bytes();
        let mut r = BitReader::new(&bytes);
        assert_eq!(r.read_bits(9), Ok(0x1FF));
        assert!(matches!(r.read_bits(8), Err(BitError::Truncated { .. })));
        assert_eq!(r.position(), 9);
        assert_eq!(r.read_bits(7), Ok(0));
        assert!(r.read_bool().is_err());
        assert!(BitReader::new(&[]).read_bits(1).is_err());
        assert_eq!(BitReader::new(&[]).read_bits(0), Ok(0));
        assert_eq!(
            BitReader::new(&[0; 16]).read_bits(65),
            Err(BitError::TooWide(65))
        );
    }
}
