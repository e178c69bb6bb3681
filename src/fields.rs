//! Field layouts: what the bytes of a fixed-size component mean, declared by the engine
//! when it wants fewer bytes on the wire than raw blobs (issue 18). A layout names, at byte
//! offsets, positions (3 × f32, to a precision in millimetres), rotations (a quaternion,
//! 4 × f32, to a precision in degrees), bounded scalars (f32 within a range, to a
//! precision), integers and flags (little-endian, 1 to 8 bytes) and raw bytes; bytes no
//! field names are raw. Declared fields are quantised to their precision (lossy within
//! the stated bound); everything else stays bit-exact.
//!
//! A value becomes *lanes*: one integer per coded unit (a position gives three, a rotation
//! four: the index of its largest component and the other three, a scalar or an integer
//! one, a raw byte one). Lanes are what a coder compares with a baseline the peer holds:
//! small differences, small numbers. The layout is part of the registry hash, so peers
//! with other layouts never replicate together.

use crate::hash::hash64;

/// Most fields one layout declares.
pub const MAX_FIELDS: usize = 64;

/// One field of a component value, at a byte offset.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Field {
    /// Three little-endian `f32` (metres), each within `precision_mm` millimetres.
    Position {
        /// Byte offset.
        offset: u32,
        /// Largest error per axis, in millimetres.
        precision_mm: f32,
    },
    /// A quaternion of four little-endian `f32` (x, y, z, w) within `precision_deg`
    /// degrees of rotation (decoded as the same rotation, largest component positive).
    Rotation {
        /// Byte offset.
        offset: u32,
        /// Largest rotation error, in degrees.
        precision_deg: f32,
    },
    /// One little-endian `f32` in `min..=max`, within `precision`.
    Scalar {
        /// Byte offset.
        offset: u32,
        /// Smallest value.
        min: f32,
        /// Largest value.
        max: f32,
        /// Largest error.
        precision: f32,
    },
    /// A little-endian integer of `bytes` bytes (1, 2, 4 or 8), bit-exact.
    Int {
        /// Byte offset.
        offset: u32,
        /// Its width.
        bytes: u8,
    },
    /// Bit flags of `bytes` bytes (1, 2, 4 or 8), bit-exact.
    Flags {
        /// Byte offset.
        offset: u32,
        /// Its width.
        bytes: u8,
    },
}

impl Field {
    fn offset(&self) -> u32 {
        match *self {
            Field::Position { offset, .. }
            | Field::Rotation { offset, .. }
            | Field::Scalar { offset, .. }
            | Field::Int { offset, .. }
            | Field::Flags { offset, .. } => offset,
        }
    }

    fn width(&self) -> u32 {
        match *self {
            Field::Position { .. } => 12,
            Field::Rotation { .. } => 16,
            Field::Scalar { .. } => 4,
            Field::Int { bytes, .. } | Field::Flags { bytes, .. } => u32::from(bytes),
        }
    }

    fn lanes(&self) -> usize {
        match self {
            Field::Position { .. } => 3,
            Field::Rotation { .. } => 4,
            Field::Scalar { .. } | Field::Int { .. } | Field::Flags { .. } => 1,
        }
    }

    fn check(&self) -> Result<(), FieldError> {
        let positive = |x: f32| x.is_finite() && x > 0.0;
        match *self {
            Field::Position { precision_mm, .. } if !positive(precision_mm) => Err(
                FieldError::Invalid("a position's precision must be a positive number"),
            ),
            Field::Rotation { precision_deg, .. }
                if !positive(precision_deg) || precision_deg > 90.0 =>
            {
                Err(FieldError::Invalid(
                    "a rotation's precision must be a number of degrees in (0, 90]",
                ))
            }
            Field::Scalar {
                min,
                max,
                precision,
                ..
            } if !(min.is_finite() && max.is_finite() && min <= max && positive(precision)) => Err(
                FieldError::Invalid("a scalar needs finite min <= max and a positive precision"),
            ),
            Field::Int { bytes, .. } | Field::Flags { bytes, .. }
                if !matches!(bytes, 1 | 2 | 4 | 8) =>
            {
                Err(FieldError::Invalid(
                    "integers and flags are 1, 2, 4 or 8 bytes",
                ))
            }
            _ => Ok(()),
        }
    }

    /// The field's identity for the registry hash.
    fn canonical(&self, out: &mut Vec<u8>) {
        let (kind, a, b, c) = match *self {
            Field::Position { precision_mm, .. } => (0u8, precision_mm.to_bits(), 0, 0),
            Field::Rotation { precision_deg, .. } => (1, precision_deg.to_bits(), 0, 0),
            Field::Scalar {
                min,
                max,
                precision,
                ..
            } => (2, min.to_bits(), max.to_bits(), precision.to_bits()),
            Field::Int { bytes, .. } => (3, u32::from(bytes), 0, 0),
            Field::Flags { bytes, .. } => (4, u32::from(bytes), 0, 0),
        };
        out.push(kind);
        for v in [self.offset(), a, b, c] {
            out.extend_from_slice(&v.to_le_bytes());
        }
    }
}

/// Why a layout, a value or lanes were refused (nothing changed).
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum FieldError {
    /// A field's parameters are out of range.
    #[error("{0}")]
    Invalid(&'static str),
    /// Fields overlap, or one does not fit the component.
    #[error("field at byte {offset} ({width} bytes) {reason} (component of {size} bytes)")]
    DoesNotFit {
        /// Its offset.
        offset: u32,
        /// Its width.
        width: u32,
        /// The component's size.
        size: u32,
        /// Overlaps or overruns.
        reason: &'static str,
    },
    /// More than [`MAX_FIELDS`].
    #[error("{0} fields, at most {MAX_FIELDS}")]
    TooMany(usize),
    /// A value of another size than the layout's.
    #[error("a value of {given} bytes for a layout of {size}")]
    WrongSize {
        /// Bytes given.
        given: usize,
        /// The layout's size.
        size: u32,
    },
    /// A quantised field holds NaN or infinity, or a scalar is out of its range, or a
    /// position is too far for its precision.
    #[error("the field at byte {offset} cannot be quantised: {reason}")]
    NotQuantisable {
        /// Its offset.
        offset: u32,
        /// Why.
        reason: &'static str,
    },
    /// Lanes of another count than the layout's, or out of range (a hostile peer).
    #[error("lanes do not decode: {0}")]
    BadLanes(&'static str),
}

/// The fields of a fixed-size component, sorted by offset, checked to fit.
#[derive(Clone, Debug, PartialEq)]
pub struct FieldLayout {
    size: u32,
    fields: Vec<Field>,
    /// Per byte of the value: the field covering it, or none (raw).
    lane_count: usize,
}

/// Largest quantised position magnitude in steps (2^40): far beyond any scene at any
/// sane precision, small enough that lanes never overflow when differenced.
const MAX_STEPS: f64 = (1u64 << 40) as f64;

fn f32_at(value: &[u8], at: usize) -> f32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&value[at..at + 4]);
    f32::from_le_bytes(b)
}

impl FieldLayout {
    /// A layout of `fields` for a component of `size` bytes.
    pub fn new(size: u32, fields: &[Field]) -> Result<Self, FieldError> {
        if fields.len() > MAX_FIELDS {
            return Err(FieldError::TooMany(fields.len()));
        }
        let mut sorted = fields.to_vec();
        sorted.sort_by_key(Field::offset);
        let mut end = 0u32;
        for f in &sorted {
            f.check()?;
            let fits = |reason| FieldError::DoesNotFit {
                offset: f.offset(),
                width: f.width(),
                size,
                reason,
            };
            if f.offset() < end {
                return Err(fits("overlaps the field before it"));
            }
            end = f
                .offset()
                .checked_add(f.width())
                .filter(|&e| e <= size)
                .ok_or_else(|| fits("runs past the end"))?;
        }
        let covered: u32 = sorted.iter().map(Field::width).sum();
        let lane_count = sorted.iter().map(Field::lanes).sum::<usize>() + (size - covered) as usize;
        Ok(FieldLayout {
            size,
            fields: sorted,
            lane_count,
        })
    }

    /// The component size this layout is for.
    pub fn size(&self) -> u32 {
        self.size
    }

    /// The fields, by offset.
    pub fn fields(&self) -> &[Field] {
        &self.fields
    }

    /// How many lanes a value makes.
    pub fn lane_count(&self) -> usize {
        self.lane_count
    }

    /// A hash of the layout, for the registry hash.
    pub fn hash(&self) -> u64 {
        let mut canonical = self.size.to_le_bytes().to_vec();
        for f in &self.fields {
            f.canonical(&mut canonical);
        }
        hash64(0x6669_656c_6473, &canonical)
    }

    /// Quantises a value into lanes (see the module documentation).
    pub fn to_lanes(&self, value: &[u8]) -> Result<Vec<i64>, FieldError> {
        if value.len() != self.size as usize {
            return Err(FieldError::WrongSize {
                given: value.len(),
                size: self.size,
            });
        }
        let mut lanes = Vec::with_capacity(self.lane_count);
        let mut at = 0usize;
        for f in &self.fields {
            let offset = f.offset() as usize;
            lanes.extend(value[at..offset].iter().map(|&b| i64::from(b)));
            let bad = |reason| FieldError::NotQuantisable {
                offset: f.offset(),
                reason,
            };
            match *f {
                Field::Position { precision_mm, .. } => {
                    let step = 2.0 * f64::from(precision_mm) / 1000.0;
                    for axis in 0..3 {
                        let x = f64::from(f32_at(value, offset + 4 * axis));
                        if !x.is_finite() {
                            return Err(bad("not a finite number"));
                        }
                        let q = (x / step).round();
                        if q.abs() > MAX_STEPS {
                            return Err(bad("too far for its precision"));
                        }
                        lanes.push(q as i64);
                    }
                }
                Field::Rotation { precision_deg, .. } => {
                    let q: [f64; 4] =
                        std::array::from_fn(|i| f64::from(f32_at(value, offset + 4 * i)));
                    lanes.extend(
                        rotation_lanes(q, precision_deg)
                            .ok_or_else(|| bad("not a finite, non-zero quaternion"))?,
                    );
                }
                Field::Scalar {
                    min,
                    max,
                    precision,
                    ..
                } => {
                    let x = f32_at(value, offset);
                    if !x.is_finite() {
                        return Err(bad("not a finite number"));
                    }
                    if x < min || x > max {
                        return Err(bad("outside its range"));
                    }
                    let step = 2.0 * f64::from(precision);
                    lanes.push(((f64::from(x) - f64::from(min)) / step).round() as i64);
                }
                Field::Int { bytes, .. } | Field::Flags { bytes, .. } => {
                    let mut b = [0u8; 8];
                    b[..bytes as usize].copy_from_slice(&value[offset..offset + bytes as usize]);
                    lanes.push(i64::from_le_bytes(b));
                }
            }
            at = offset + f.width() as usize;
        }
        lanes.extend(value[at..].iter().map(|&b| i64::from(b)));
        Ok(lanes)
    }

    /// The value lanes stand for; lanes from a peer are checked (count, ranges).
    pub fn from_lanes(&self, lanes: &[i64]) -> Result<Vec<u8>, FieldError> {
        if lanes.len() != self.lane_count {
            return Err(FieldError::BadLanes("another count than the layout's"));
        }
        let mut value = Vec::with_capacity(self.size as usize);
        let mut lanes = lanes.iter().copied();
        let mut next = || lanes.next().ok_or(FieldError::BadLanes("too few"));
        let byte = |l: i64| u8::try_from(l).map_err(|_| FieldError::BadLanes("a raw byte"));
        for f in &self.fields {
            while value.len() < f.offset() as usize {
                value.push(byte(next()?)?);
            }
            match *f {
                Field::Position { precision_mm, .. } => {
                    let step = 2.0 * f64::from(precision_mm) / 1000.0;
                    for _ in 0..3 {
                        let q = next()?;
                        if (q as f64).abs() > MAX_STEPS {
                            return Err(FieldError::BadLanes("a position out of range"));
                        }
                        value.extend_from_slice(&((q as f64 * step) as f32).to_le_bytes());
                    }
                }
                Field::Rotation { precision_deg, .. } => {
                    let l = [next()?, next()?, next()?, next()?];
                    let q = rotation_from_lanes(l, precision_deg)
                        .ok_or(FieldError::BadLanes("a rotation out of range"))?;
                    for c in q {
                        value.extend_from_slice(&(c as f32).to_le_bytes());
                    }
                }
                Field::Scalar {
                    min,
                    max,
                    precision,
                    ..
                } => {
                    let step = 2.0 * f64::from(precision);
                    let x = f64::from(min) + next()? as f64 * step;
                    if !(f64::from(min)..=f64::from(max) + step).contains(&x) {
                        return Err(FieldError::BadLanes("a scalar out of its range"));
                    }
                    value.extend_from_slice(&(x.min(f64::from(max)) as f32).to_le_bytes());
                }
                Field::Int { bytes, .. } | Field::Flags { bytes, .. } => {
                    let l = next()?;
                    let b = l.to_le_bytes();
                    if b[bytes as usize..].iter().any(|&x| x != 0) {
                        return Err(FieldError::BadLanes("an integer wider than its field"));
                    }
                    value.extend_from_slice(&b[..bytes as usize]);
                }
            }
        }
        while value.len() < self.size as usize {
            value.push(byte(next()?)?);
        }
        Ok(value)
    }
}

/// The step of a rotation's three smaller components for `precision_deg`. Rounding puts
/// each within half a step, and the largest, rebuilt from them, moves as much again at
/// most (it is at least 1/2): the quaternion is off by at most √3 · step / 2 · 2, and the
/// angle by twice that, so a step of precision / (2√3) keeps within the precision.
fn rotation_steps(precision_deg: f32) -> f64 {
    f64::from(precision_deg).to_radians() / (2.0 * 3f64.sqrt())
}

fn rotation_lanes(q: [f64; 4], precision_deg: f32) -> Option<[i64; 4]> {
    let norm = q.iter().map(|c| c * c).sum::<f64>().sqrt();
    if !norm.is_finite() || norm < 1e-6 {
        return None;
    }
    let largest = (0..4).max_by(|&a, &b| q[a].abs().total_cmp(&q[b].abs()))?;
    // q and -q are one rotation: the largest component goes positive.
    let sign = if q[largest] < 0.0 { -1.0 } else { 1.0 };
    let step = rotation_steps(precision_deg);
    let mut lanes = [largest as i64, 0, 0, 0];
    let mut k = 1;
    for (i, c) in q.iter().enumerate() {
        if i != largest {
            lanes[k] = (sign * c / norm / step).round() as i64;
            k += 1;
        }
    }
    Some(lanes)
}

fn rotation_from_lanes(l: [i64; 4], precision_deg: f32) -> Option<[f64; 4]> {
    let largest = usize::try_from(l[0]).ok().filter(|&i| i < 4)?;
    let step = rotation_steps(precision_deg);
    // Each smaller component is at most 1/√2 in magnitude.
    let bound = (std::f64::consts::FRAC_1_SQRT_2 / step).ceil() as i64 + 1;
    if l[1..].iter().any(|&x| x.abs() > bound) {
        return None;
    }
    let small: Vec<f64> = l[1..].iter().map(|&x| x as f64 * step).collect();
    let rest = 1.0 - small.iter().map(|c| c * c).sum::<f64>();
    let mut q = [0.0; 4];
    q[largest] = rest.max(0.0).sqrt();
    let mut k = 0;
    for (i, c) in q.iter_mut().enumerate() {
        if i != largest {
            *c = small[k];
            k += 1;
        }
    }
    let norm = q.iter().map(|c| c * c).sum::<f64>().sqrt();
    Some(q.map(|c| c / norm))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn transform() -> FieldLayout {
        // Position, rotation, a 0..1 scalar, a u16 and 3 raw bytes: 37 bytes.
        FieldLayout::new(
            37,
            &[
                Field::Rotation {
                    offset: 12,
                    precision_deg: 0.1,
                },
                Field::Position {
                    offset: 0,
                    precision_mm: 1.0,
                },
                Field::Scalar {
                    offset: 28,
                    min: 0.0,
                    max: 1.0,
                    precision: 0.001,
                },
                Field::Int {
                    offset: 32,
                    bytes: 2,
                },
            ],
        )
        .unwrap()
    }

    fn value(p: [f32; 3], q: [f32; 4], s: f32, n: u16, raw: [u8; 3]) -> Vec<u8> {
        let mut v = Vec::new();
        for x in p.iter().chain(&q).chain(&[s]) {
            v.extend_from_slice(&x.to_le_bytes());
        }
        v.extend_from_slice(&n.to_le_bytes());
        v.extend_from_slice(&raw);
        v
    }

    fn angle_between(a: [f32; 4], b: [f32; 4]) -> f64 {
        let dot: f64 = (0..4).map(|i| f64::from(a[i]) * f64::from(b[i])).sum();
        2.0 * dot.abs().min(1.0).acos().to_degrees()
    }

    #[test]
    fn values_round_trip_within_their_precisions_and_the_rest_bit_exact() {
        let layout = transform();
        assert_eq!(layout.lane_count(), 3 + 4 + 1 + 1 + 3);
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut rnd = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed >> 11) as f64 / (1u64 << 53) as f64
        };
        for _ in 0..2000 {
            let p = [
                (rnd() * 200.0 - 100.0) as f32,
                (rnd() * 3.0) as f32,
                (rnd() * 200.0 - 100.0) as f32,
            ];
            let q: [f64; 4] = std::array::from_fn(|_| rnd() * 2.0 - 1.0);
            let n = q.iter().map(|c| c * c).sum::<f64>().sqrt();
            let q = q.map(|c| (c / n) as f32);
            let s = rnd() as f32;
            let v = value(p, q, s, 0xBEEF, [1, 2, 3]);
            let lanes = layout.to_lanes(&v).unwrap();
            let back = layout.from_lanes(&lanes).unwrap();
            assert_eq!(back.len(), 37);
            for (axis, want) in p.iter().enumerate() {
                let got = f32_at(&back, 4 * axis);
                assert!((got - want).abs() <= 0.001 + 1e-5, "{got} vs {want}");
            }
            let got_q: [f32; 4] = std::array::from_fn(|i| f32_at(&back, 12 + 4 * i));
            assert!(
                angle_between(got_q, q) <= 0.1,
                "{}",
                angle_between(got_q, q)
            );
            assert!((f32_at(&back, 28) - s).abs() <= 0.001 + 1e-6);
            assert_eq!(&back[32..], &v[32..], "integer and raw bytes are exact");
            // Quantising again moves nothing but (at a tie of two largest components) the
            // rotation's choice of which one is implied, to the same rotation.
            let again = layout.to_lanes(&back).unwrap();
            assert_eq!(again[..3], lanes[..3]);
            assert_eq!(again[7..], lanes[7..]);
            let twice = layout.from_lanes(&again).unwrap();
            let twice_q: [f32; 4] = std::array::from_fn(|i| f32_at(&twice, 12 + 4 * i));
            assert!(angle_between(twice_q, got_q) <= 0.1);
        }
    }

    #[test]
    fn bad_layouts_values_and_lanes_are_refused() {
        let pos = |offset| Field::Position {
            offset,
            precision_mm: 1.0,
        };
        assert!(matches!(
            FieldLayout::new(20, &[pos(0), pos(8)]),
            Err(FieldError::DoesNotFit { .. })
        ));
        assert!(matches!(
            FieldLayout::new(10, &[pos(0)]),
            Err(FieldError::DoesNotFit { .. })
        ));
        assert!(matches!(
            FieldLayout::new(12, &[pos(u32::MAX)]),
            Err(FieldError::DoesNotFit { .. })
        ));
        for bad in [
            Field::Position {
                offset: 0,
                precision_mm: f32::NAN,
            },
            Field::Rotation {
                offset: 0,
                precision_deg: 0.0,
            },
            Field::Scalar {
                offset: 0,
                min: 1.0,
                max: 0.0,
                precision: 0.1,
            },
            Field::Int {
                offset: 0,
                bytes: 3,
            },
        ] {
            assert!(matches!(
                FieldLayout::new(16, &[bad]),
                Err(FieldError::Invalid(_))
            ));
        }
        assert!(FieldLayout::new(64, &[pos(0); MAX_FIELDS + 1]).is_err());
        let layout = transform();
        let ok = value([1.0; 3], [0.0, 0.0, 0.0, 1.0], 0.5, 7, [0; 3]);
        let nan = value([f32::NAN, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0], 0.5, 7, [0; 3]);
        let zero_q = value([0.0; 3], [0.0; 4], 0.5, 7, [0; 3]);
        let out_of_range = value([0.0; 3], [0.0, 0.0, 0.0, 1.0], 2.0, 7, [0; 3]);
        for v in [&nan, &zero_q, &out_of_range] {
            assert!(matches!(
                layout.to_lanes(v),
                Err(FieldError::NotQuantisable { .. })
            ));
        }
        assert!(layout.to_lanes(&ok[..36]).is_err());
        let lanes = layout.to_lanes(&ok).unwrap();
        // Hostile lanes: another count, a raw byte of 300, a rotation index of 9, a
        // scalar far out of range, an integer wider than its two bytes.
        assert!(layout.from_lanes(&lanes[1..]).is_err());
        for (at, bad) in [
            (11, 300),
            (3, 9),
            (7, i64::MAX / 2),
            (8, 1 << 20),
            (0, i64::MAX),
        ] {
            let mut hostile = lanes.clone();
            hostile[at] = bad;
            assert!(layout.from_lanes(&hostile).is_err(), "lane {at} = {bad}");
        }
    }

    #[test]
    fn the_hash_tells_layouts_apart() {
        let a = transform();
        let b = FieldLayout::new(
            37,
            &[Field::Position {
                offset: 0,
                precision_mm: 2.0,
            }],
        )
        .unwrap();
        assert_ne!(a.hash(), b.hash());
        assert_eq!(a.hash(), transform().hash());
    }
}
