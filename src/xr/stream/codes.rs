//! The small codes of the pose packet: times against their prediction, reference ages and
//! gaps, acknowledgements, source ids and Exp-Golomb codes (see the parent module's
//! packet table).

use super::super::bits::{unzigzag, zigzag, BitReader, BitWriter};
use super::{Ack, StreamError, MAX_REFERENCE_AGE, SEQ_BITS, SHORT_ACK_BITS};

const GAP_BITS: u32 = 3;
pub(crate) const TIME_ABS_BITS: u32 = 48;
/// The largest time residual (in magnitude) coded against the prediction.
const MAX_TIME_RESIDUAL: u128 = 1 << 16;
const SMALL_SOURCE_BITS: u32 = 6;

pub(crate) fn write_time(w: &mut BitWriter, time: i64, predicted: Option<i64>) {
    let Some(p) = predicted else {
        w.write_signed(time, TIME_ABS_BITS);
        return;
    };
    // Prefix code by how often each case occurs at a steady frame rate: the prediction is
    // exact or off by a few units (the frame period rounded to 0.1 ms, times the age).
    match i128::from(time) - i128::from(p) {
        0 => w.write_bool(false),
        residual @ (-1 | 1) => {
            w.write_bits(0b01, 2);
            w.write_bool(residual > 0);
        }
        residual if (2..=MAX_TIME_RESIDUAL).contains(&residual.unsigned_abs()) => {
            w.write_bits(0b011, 3);
            w.write_bool(residual > 0);
            write_exp_golomb0(w, residual.unsigned_abs() as u64 - 2);
        }
        _ => {
            w.write_bits(0b111, 3);
            w.write_signed(time, TIME_ABS_BITS);
        }
    }
}

pub(crate) fn read_time(r: &mut BitReader<'_>, predicted: Option<i64>) -> Result<i64, StreamError> {
    let Some(p) = predicted else {
        return Ok(r.read_signed(TIME_ABS_BITS)?);
    };
    let residual = if !r.read_bool()? {
        0
    } else if !r.read_bool()? {
        if r.read_bool()? {
            1
        } else {
            -1
        }
    } else if !r.read_bool()? {
        let positive = r.read_bool()?;
        let magnitude = read_exp_golomb0(r, MAX_TIME_RESIDUAL as u64 - 2)? as i64 + 2;
        if positive {
            magnitude
        } else {
            -magnitude
        }
    } else {
        return Ok(r.read_signed(TIME_ABS_BITS)?);
    };
    p.checked_add(residual)
        .ok_or(StreamError::Corrupt("time overflows"))
}

/// Writes the references: `age − 1` as an order-1 Exp-Golomb code (2 bits for ages 1–2,
/// 4 for 3–6, …; [`MAX_REFERENCE_AGE`] for none), then `1` for the usual gaps of one
/// packet between the references, else `0`, the gap to the previous reference and, when
/// there is one, the gap from it to the earlier one (each `1` for one, else `0` and 3
/// bits, `0` = none).
pub(crate) fn write_refs(w: &mut BitWriter, age: u64, gap: u64, gap2: u64) {
    if age == 0 {
        write_exp_golomb1(w, MAX_REFERENCE_AGE);
        return;
    }
    write_exp_golomb1(w, age - 1);
    let usual = gap == 1 && gap2 == 1;
    w.write_bool(usual);
    if !usual {
        write_gap(w, gap);
        if gap != 0 {
            write_gap(w, gap2);
        }
    }
}

pub(crate) fn write_gap(w: &mut BitWriter, gap: u64) {
    w.write_bool(gap == 1);
    if gap != 1 {
        w.write_bits(gap, GAP_BITS);
    }
}

pub(crate) fn read_gap(r: &mut BitReader<'_>) -> Result<u64, StreamError> {
    if r.read_bool()? {
        return Ok(1);
    }
    match r.read_bits(GAP_BITS)? {
        1 => Err(StreamError::Corrupt("gap 1 in long form")),
        gap => Ok(gap),
    }
}

/// Reads what [`write_refs`] wrote: `(age, gap, gap2)`, zeros for none.
pub(crate) fn read_refs(r: &mut BitReader<'_>) -> Result<(u64, u64, u64), StreamError> {
    let age = match read_exp_golomb1(r)? {
        MAX_REFERENCE_AGE => return Ok((0, 0, 0)),
        v if v > MAX_REFERENCE_AGE => return Err(StreamError::Corrupt("reference too old")),
        v => v + 1,
    };
    if r.read_bool()? {
        return Ok((age, 1, 1));
    }
    let gap = read_gap(r)?;
    let gap2 = if gap != 0 { read_gap(r)? } else { 0 };
    Ok((age, gap, gap2))
}

/// Order-1 Exp-Golomb code of `value` (small values short; at most 2·6 bits here).
pub(crate) fn write_exp_golomb1(w: &mut BitWriter, value: u64) {
    let shifted = value + 2;
    let width = 64 - shifted.leading_zeros(); // bits of `shifted`, ≥ 2
    w.write_bits(0, width - 2);
    // The leading `1` ends the zero prefix; bits are read back most significant first.
    for bit in (0..width).rev() {
        w.write_bool(shifted >> bit & 1 == 1);
    }
}

pub(crate) fn read_exp_golomb1(r: &mut BitReader<'_>) -> Result<u64, StreamError> {
    let mut zeros = 0;
    while !r.read_bool()? {
        zeros += 1;
        if zeros > 6 {
            return Err(StreamError::Corrupt("reference age code too long"));
        }
    }
    let mut shifted = 1u64;
    for _ in 0..zeros + 1 {
        shifted = shifted << 1 | u64::from(r.read_bool()?);
    }
    Ok(shifted - 2)
}

/// Largest acknowledgement delta ([`write_ack`]) the decoder accepts, in magnitude.
pub(crate) const MAX_ACK_DELTA: u64 = 1 << 12;

/// The acknowledgement's distance from its prediction, `base` = (reference age, the
/// reference packet's acknowledgement): both sides stream at about the same rate, so an
/// acknowledgement moves on by about as many packets as the reference is old.
pub(crate) fn ack_delta(ack: Ack, base: (u64, Ack)) -> Option<i64> {
    let (age, b) = base;
    if ack.short != b.short {
        return None;
    }
    let modulus = 1i64 << ack.bits();
    let d = (i64::from(ack.seq) - i64::from(b.seq) - age as i64).rem_euclid(modulus);
    Some(if d >= modulus / 2 { d - modulus } else { d })
}

/// Writes the acknowledgement (after the sections, see the module docs) against `base`
/// (the base section's reference age and the acknowledgement its packet carried): the
/// predicted form ([`ack_delta`]) when it is no longer than the explicit one.
pub(crate) fn write_ack(w: &mut BitWriter, ack: Option<Ack>, base: Option<(u64, Ack)>) {
    w.write_bool(ack.is_some());
    let Some(a) = ack else {
        return;
    };
    if let Some(base) = base {
        let delta = ack_delta(a, base).map(zigzag);
        match delta {
            Some(z) if exp_golomb0_bits(z) <= 1 + a.bits() => {
                w.write_bool(true);
                write_exp_golomb0(w, z);
                return;
            }
            _ => w.write_bool(false),
        }
    }
    w.write_bool(!a.short);
    w.write_bits(u64::from(a.seq) & ((1 << a.bits()) - 1), a.bits());
}

pub(crate) fn read_ack(
    r: &mut BitReader<'_>,
    base: Option<(u64, Ack)>,
) -> Result<Option<Ack>, StreamError> {
    if !r.read_bool()? {
        return Ok(None);
    }
    if let Some((age, b)) = base {
        if r.read_bool()? {
            let z = read_exp_golomb0(r, MAX_ACK_DELTA)?;
            let d = unzigzag(z);
            let modulus = 1i64 << b.bits();
            let seq = (i64::from(b.seq) + age as i64 + d).rem_euclid(modulus);
            return Ok(Some(Ack {
                seq: seq as u16,
                short: b.short,
            }));
        }
    }
    let short = !r.read_bool()?;
    let bits = if short { SHORT_ACK_BITS } else { SEQ_BITS };
    Ok(Some(Ack {
        seq: r.read_bits(bits)? as u16,
        short,
    }))
}

pub(crate) fn exp_golomb0_bits(value: u64) -> u32 {
    2 * (63 - (value + 1).leading_zeros()) + 1
}

/// Order-0 Exp-Golomb code of `value`.
pub(crate) fn write_exp_golomb0(w: &mut BitWriter, value: u64) {
    let shifted = value + 1;
    let width = 64 - shifted.leading_zeros();
    w.write_bits(0, width - 1);
    for bit in (0..width).rev() {
        w.write_bool(shifted >> bit & 1 == 1);
    }
}

/// Reads an order-0 Exp-Golomb code; values above `max` are an error.
pub(crate) fn read_exp_golomb0(r: &mut BitReader<'_>, max: u64) -> Result<u64, StreamError> {
    let limit = 64 - (max + 1).leading_zeros();
    let mut zeros = 0;
    while !r.read_bool()? {
        zeros += 1;
        if zeros >= limit {
            return Err(StreamError::Corrupt("Exp-Golomb code too long"));
        }
    }
    let mut shifted = 1u64;
    for _ in 0..zeros {
        shifted = shifted << 1 | u64::from(r.read_bool()?);
    }
    match shifted - 1 {
        v if v > max => Err(StreamError::Corrupt("Exp-Golomb value too large")),
        v => Ok(v),
    }
}

pub(crate) fn write_source(w: &mut BitWriter, source: u16) {
    if source < (1 << SMALL_SOURCE_BITS) {
        w.write_bool(true);
        w.write_bits(u64::from(source), SMALL_SOURCE_BITS);
    } else {
        w.write_bool(false);
        w.write_bits(u64::from(source), 16);
    }
}

pub(crate) fn read_source(r: &mut BitReader<'_>) -> Result<u16, StreamError> {
    let bits = if r.read_bool()? {
        SMALL_SOURCE_BITS
    } else {
        16
    };
    Ok(r.read_bits(bits)? as u16)
}

/// Order-`k` Exp-Golomb code of `value`: the order-0 code of `value >> k`, then the low
/// `k` bits.
pub(crate) fn write_exp_golomb(w: &mut BitWriter, value: u64, k: u32) {
    write_exp_golomb0(w, value >> k);
    w.write_bits(value, k);
}

/// Reads an order-`k` Exp-Golomb code; values above `max` are an error.
pub(crate) fn read_exp_golomb(r: &mut BitReader<'_>, k: u32, max: u64) -> Result<u64, StreamError> {
    let high = read_exp_golomb0(r, max >> k)?;
    let value = high << k | r.read_bits(k)?;
    if value > max {
        return Err(StreamError::Corrupt("Exp-Golomb value too large"));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn framing_codes_round_trip_and_refuse_hostile_bits() {
        // Acknowledgements against every kind of base, across the wrap of both forms.
        let bases = [
            None,
            Some((4, Ack::new(126, true))),
            Some((1, Ack::new(5, true))),
            Some((9, Ack::new(4090, false))),
            Some((31, Ack::new(0, false))),
        ];
        for base in bases {
            for seq in [0u64, 1, 3, 126, 127, 128, 130, 4094, 4095, 4096, 4100] {
                for short in [true, false] {
                    for ack in [None, Some(Ack::new(seq, short))] {
                        let mut w = BitWriter::new();
                        write_ack(&mut w, ack, base);
                        let bits = w.bit_len();
                        let bytes = w.into_bytes();
                        let mut r = BitReader::new(&bytes);
                        assert_eq!(read_ack(&mut r, base), Ok(ack), "{base:?} {ack:?}");
                        assert_eq!(r.position(), bits);
                        // Never longer than the explicit form and the "predicted" bit.
                        let explicit = ack.map_or(1, |a| 2 + a.bits() as usize);
                        assert!(bits <= explicit + usize::from(base.is_some()));
                    }
                }
            }
        }
        // The steady state: as many packets on as the reference is old, three bits.
        let base = Some((4, Ack::new(126, true)));
        let mut w = BitWriter::new();
        write_ack(&mut w, Some(Ack::new(130, true)), base);
        assert_eq!(w.bit_len(), 3);
        // Times against predictions: every branch of the code, and the limits.
        let p = 1_000_000i64;
        for residual in [
            0i64,
            1,
            -1,
            2,
            -2,
            3,
            -5,
            1000,
            -65_536,
            65_536,
            65_537,
            -1 << 40,
        ] {
            for predicted in [Some(p), None] {
                let time = p + residual;
                let mut w = BitWriter::new();
                write_time(&mut w, time, predicted);
                let bits = w.bit_len();
                let bytes = w.into_bytes();
                let mut r = BitReader::new(&bytes);
                assert_eq!(read_time(&mut r, predicted), Ok(time));
                assert_eq!(r.position(), bits);
            }
        }
        // Absolute times are 48 bits: the extremes of that range.
        let (lo, hi) = (-(1i64 << 47), (1i64 << 47) - 1);
        let mut w = BitWriter::new();
        write_time(&mut w, hi, Some(lo));
        let bytes = w.into_bytes();
        assert_eq!(read_time(&mut BitReader::new(&bytes), Some(lo)), Ok(hi));
        // References: none, every age, usual and other gaps.
        for age in 0..=MAX_REFERENCE_AGE {
            for (gap, gap2) in [(0, 0), (1, 1), (1, 0), (2, 1), (7, 7), (1, 3)] {
                let (gap, gap2) = if age == 0 { (0, 0) } else { (gap, gap2) };
                let mut w = BitWriter::new();
                write_refs(&mut w, age, gap, gap2);
                let bits = w.bit_len();
                let bytes = w.into_bytes();
                let mut r = BitReader::new(&bytes);
                assert_eq!(read_refs(&mut r), Ok((age, gap, gap2)));
                assert_eq!(r.position(), bits);
            }
        }
        // Hostile: codes too long or out of range are errors, never panics.
        for bytes in [[0u8; 8], [0xFF; 8], [0x55; 8], [0xAA; 8]] {
            let _ = read_refs(&mut BitReader::new(&bytes));
            let _ = read_time(&mut BitReader::new(&bytes), Some(0));
            let _ = read_ack(&mut BitReader::new(&bytes), Some((3, Ack::new(9, true))));
        }
        assert!(read_exp_golomb0(&mut BitReader::new(&[0; 8]), MAX_ACK_DELTA).is_err());
        let mut w = BitWriter::new();
        write_exp_golomb0(&mut w, MAX_ACK_DELTA + 1);
        let bytes = w.into_bytes();
        assert!(read_exp_golomb0(&mut BitReader::new(&bytes), MAX_ACK_DELTA).is_err());
        let mut w = BitWriter::new();
        write_exp_golomb1(&mut w, MAX_REFERENCE_AGE + 1);
        let bytes = w.into_bytes();
        assert_eq!(
            read_refs(&mut BitReader::new(&bytes)),
            Err(StreamError::Corrupt("reference too old"))
        );
    }

    #[test]
    fn exp_golomb_codes_of_any_order_round_trip_and_bound() {
        for k in 0..4 {
            for value in [0u64, 1, 2, 3, 7, 8, 100, 16_383] {
                let mut w = BitWriter::new();
                write_exp_golomb(&mut w, value, k);
                let bits = w.bit_len();
                let bytes = w.into_bytes();
                let mut r = BitReader::new(&bytes);
                assert_eq!(read_exp_golomb(&mut r, k, 16_383), Ok(value));
                assert_eq!(r.position(), bits);
                assert!(
                    read_exp_golomb(&mut BitReader::new(&bytes), k, value.max(1) - 1).is_err()
                        || value == 0
                );
            }
            assert!(read_exp_golomb(&mut BitReader::new(&[0; 8]), k, 16_383).is_err());
        }
    }
}
