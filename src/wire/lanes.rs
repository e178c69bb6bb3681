//! Values of declared fields on the wire (see [`crate::fields`]): a value travels as its
//! lanes, each coded against the same lane of a baseline the receiver holds (or of
//! nothing): a quantity as the zigzag varint of the difference, flags and raw bytes as the
//! bits that changed (flags a varint, a raw byte one byte). A smoothly moving transform is
//! then a few bytes of small numbers, which the datagram codec squeezes further.

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
            LaneKind::Signed => write_varint(out, zigzag(lane.wrapping_sub(b))),
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
                LaneKind::Signed => varint_len(zigzag(lane.wrapping_sub(b))),
                LaneKind::Flags => varint_len((lane ^ b) as u64),
                LaneKind::Byte => 1,
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
                    LaneKind::Signed => b.wrapping_add(unzigzag(x)),
                    _ => b ^ x as i64,
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
