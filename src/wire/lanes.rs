//! Values of declared fields on the wire (see [`crate::fields`]): a value travels as its
//! lanes, each coded against the same lane of a baseline the receiver holds (or of
//! nothing): a quantity as the zigzag varint of the difference, flags and raw bytes as the
//! bits that changed (flags a varint, a raw byte one byte). A smoothly moving transform is
//! then a few bytes of small numbers, which the datagram codec squeezes further. With two
//! baselines, the lanes are coded against the straight-line prediction through them
//! ([`predict`], integer arithmetic, so both sides compute the same lanes): an object
//! moving steadily costs next to nothing.

use crate::fields::LaneKind;
use crate::wire::codec::{read_varint, write_varint};

fn zigzag(x: i64) -> u64 {
    ((x << 1) ^ (x >> 63)) as u64
}

fn unzigzag(x: u64) -> i64 {
    ((x >> 1) as i64) ^ -((x & 1) as i64)
}

/// Appends `lanes` coded against `base` (lanes of the same layout) to `out`.
pub fn encode(kinds: &[LaneKind], lanes: &[i64], base: Option<&[i64]>, out: &mut Vec<u8>) {
    for (i, (&kind, &lane)) in kinds.iter().zip(lanes).enumerate() {
        let b = base.map_or(0, |base| base[i]);
        match kind {
            LaneKind::Signed | LaneKind::Index => write_varint(out, zigzag(lane.wrapping_sub(b))),
            LaneKind::Flags => write_varint(out, (lane ^ b) as u64),
            LaneKind::Byte => out.push((lane ^ b) as u8),
        }
    }
}

/// Bytes [`encode`] appends, without writing them.
pub fn encoded_len(kinds: &[LaneKind], lanes: &[i64], base: Option<&[i64]>) -> usize {
    let varint_len = |x: u64| (64 - (x | 1).leading_zeros()).div_ceil(7) as usize;
    kinds
        .iter()
        .zip(lanes)
        .enumerate()
        .map(|(i, (&kind, &lane))| {
            let b = base.map_or(0, |base| base[i]);
            match kind {
                LaneKind::Signed | LaneKind::Index => varint_len(zigzag(lane.wrapping_sub(b))),
                LaneKind::Flags => varint_len((lane ^ b) as u64),
                LaneKind::Byte => 1,
            }
        })
        .sum()
}

/// The lanes expected at tick `t` from `newer` (at `t1`) and `older` (at `t0 < t1 < t`):
/// quantities carried along the line through them (integer arithmetic, truncated toward
/// zero, saturating: the same on every machine); indices, flags, raw bytes, and a
/// rotation whose largest component changed, as in `newer`. Written into `out`.
pub fn predict(
    kinds: &[LaneKind],
    newer: (&[i64], u64),
    older: (&[i64], u64),
    t: u64,
    out: &mut Vec<i64>,
) {
    out.clear();
    let ((newer, t1), (older, t0)) = (newer, older);
    let span = i128::from(t1.saturating_sub(t0).max(1));
    let ahead = i128::from(t.saturating_sub(t1));
    // The same arithmetic in 64 bits where it cannot overflow (always, for lanes of
    // quantised values a few ticks apart): a 128-bit division is a library call.
    let narrow = i64::try_from(span).ok().zip(i64::try_from(ahead).ok());
    let extrapolate = |n: i64, o: i64| -> i64 {
        let fast = narrow.and_then(|(span, ahead)| {
            n.checked_sub(o)?
                .checked_mul(ahead)
                .and_then(|d| n.checked_add(d / span))
        });
        fast.unwrap_or_else(|| {
            let p = i128::from(n) + (i128::from(n) - i128::from(o)) * ahead / span;
            p.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
        })
    };
    // Lanes left of a rotation whose largest component changed.
    let mut hold = 0;
    for (i, &kind) in kinds.iter().enumerate() {
        let (n, o) = (
            newer.get(i).copied().unwrap_or(0),
            older.get(i).copied().unwrap_or(0),
        );
        let lane = match kind {
            LaneKind::Index => {
                hold = if n != o { 3 } else { 0 };
                n
            }
            LaneKind::Signed if hold == 0 => extrapolate(n, o),
            LaneKind::Signed => {
                hold -= 1;
                n
            }
            LaneKind::Flags | LaneKind::Byte => n,
        };
        out.push(lane);
    }
}

/// The significant bits of what [`encode`] writes: smaller numbers cost fewer bits, which
/// the datagram codec turns into fewer bytes even where the varints are as long (a
/// sender choosing between baselines compares these).
pub fn coded_bits(kinds: &[LaneKind], lanes: &[i64], base: Option<&[i64]>) -> u32 {
    let bits = |x: u64| 64 - x.leading_zeros();
    kinds
        .iter()
        .zip(lanes)
        .enumerate()
        .map(|(i, (&kind, &lane))| {
            let b = base.map_or(0, |base| base[i]);
            match kind {
                LaneKind::Signed | LaneKind::Index => bits(zigzag(lane.wrapping_sub(b))),
                LaneKind::Flags | LaneKind::Byte => bits((lane ^ b) as u64),
            }
        })
        .sum()
}

/// Reads one value's lanes from the front of `input` (advanced past them) into `out`,
/// against `base`. Peer bytes: a truncated or overlong varint is refused; the lanes' ranges
/// are for [`crate::fields::FieldLayout::from_lanes`] to check.
pub fn decode(
    kinds: &[LaneKind],
    input: &mut &[u8],
    base: Option<&[i64]>,
    out: &mut Vec<i64>,
) -> Result<(), &'static str> {
    out.clear();
    for (i, &kind) in kinds.iter().enumerate() {
        let b = base.and_then(|base| base.get(i)).copied().unwrap_or(0);
        let lane = match kind {
            LaneKind::Byte => {
                let (&byte, rest) = input.split_first().ok_or("lanes end early")?;
                *input = rest;
                i64::from(byte) ^ b
            }
            signed_or_flags => {
                let (x, rest) = read_varint(input).map_err(|_| "a lane's varint is malformed")?;
                *input = rest;
                match signed_or_flags {
                    LaneKind::Flags => b ^ x as i64,
                    _ => b.wrapping_add(unzigzag(x)),
                }
            }
        };
        out.push(lane);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fields::{Field, FieldLayout};

    #[test]
    fn the_prediction_in_64_bits_is_the_128_bit_one_and_saturates_beyond() {
        let wide = |n: i64, o: i64, ahead: i128, span: i128| {
            let p = i128::from(n) + (i128::from(n) - i128::from(o)) * ahead / span;
            p.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
        };
        let values = [
            0,
            1,
            -1,
            1000,
            -999,
            1 << 40,
            i64::MAX,
            i64::MIN,
            i64::MAX - 3,
        ];
        let mut out = Vec::new();
        for (t0, t1, t) in [(1, 2, 3), (10, 13, 20), (5, 5, 9), (1, 200, 455)] {
            let (span, ahead) = (i128::from((t1 - t0).max(1)), i128::from(t - t1));
            for &n in &values {
                for &o in &values {
                    predict(&[LaneKind::Signed], (&[n], t1), (&[o], t0), t, &mut out);
                    assert_eq!(out, [wide(n, o, ahead, span)], "{n} {o} at {t0} {t1} {t}");
                }
            }
        }
    }

    #[test]
    fn lanes_round_trip_against_a_base_or_none_and_small_changes_are_small() {
        let layout = FieldLayout::new(
            32,
            &[
                Field::Position {
                    offset: 0,
                    precision_mm: 1.0,
                },
                Field::Rotation {
                    offset: 12,
                    precision_deg: 0.1,
                },
                Field::Flags {
                    offset: 28,
                    bytes: 2,
                },
            ],
        )
        .unwrap();
        let kinds = layout.lane_kinds();
        assert_eq!(kinds.len(), 3 + 4 + 1 + 2);
        let base = vec![1000, -2000, 3, 2, 400, -500, 60, 0b1010, 7, 255];
        let moved = vec![1004, -2003, 3, 2, 401, -500, 58, 0b1011, 7, 0];
        for against in [None, Some(&base[..])] {
            let mut out = Vec::new();
            encode(kinds, &moved, against, &mut out);
            assert_eq!(out.len(), encoded_len(kinds, &moved, against));
            let mut input = &out[..];
            let mut back = Vec::new();
            decode(kinds, &mut input, against, &mut back).unwrap();
            assert_eq!((back, input.len()), (moved.clone(), 0));
        }
        let mut small = Vec::new();
        encode(kinds, &moved, Some(&base), &mut small);
        assert_eq!(small.len(), 10, "one byte per lane when little moved");
        // Hostile: truncated, an overlong varint.
        let mut input = &small[..5];
        assert!(decode(kinds, &mut input, Some(&base), &mut Vec::new()).is_err());
        let overlong = [0xffu8; 12];
        let mut input = &overlong[..];
        assert!(decode(kinds, &mut input, None, &mut Vec::new()).is_err());
        for x in [0, 1, -1, i64::MAX, i64::MIN] {
            assert_eq!(unzigzag(zigzag(x)), x);
        }
    }
}
