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
            Field::Position { precision_mm, .. } if precision_mm < MIN_POSITION_MM => Err(
                FieldError::Invalid("a position's precision is at least 0.001 mm"),
            ),
            Field::Rotation { precision_deg, .. }
                if !positive(precision_deg)
                    || !(MIN_ROTATION_DEG..=90.0).contains(&precision_deg) =>
            {
                Err(FieldError::Invalid(
                    "a rotation's precision must be a number of degrees in [0.001, 90]",
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
            Field::Scalar {
                min,
                max,
                precision,
                ..
            } if f64::from(min.abs().max(max.abs())) / scalar_grid(min, max, precision).0
                >= MAX_STEPS =>
            {
                Err(FieldError::Invalid(
                    "a scalar's precision is too fine for an f32 of its range",
                ))
            }
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

/// How a lane compares with the baseline's lane of the same key (what the wire codes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LaneKind {
    /// A quantity (a position axis, a rotation component or its index, a scalar, an
    /// integer): the difference.
    Signed,
    /// Bit flags: the bits that changed.
    Flags,
    /// A raw byte: the bits that changed, in one byte.
    Byte,
}

/// Why a layout, a value or lanes were refused (nothing changed).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
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
    /// What each lane is, in lane order.
    kinds: Vec<LaneKind>,
}

/// Largest quantised magnitude in steps (2^22). An `f32` of up to 2^23 steps is within
/// half a step of its grid point, so quantising a quantised value gives the same lanes:
/// what a peer rebuilds from lanes is bit-for-bit what the writer holds. At 1 mm that is
/// 8.4 km from the origin.
const MAX_STEPS: f64 = (1u64 << 22) as f64;
/// Finest position precision, in millimetres.
const MIN_POSITION_MM: f32 = 0.001;
/// Finest rotation precision, in degrees (a small component then spans 1.4 × 10^5 steps,
/// far inside what an `f32` resolves).
const MIN_ROTATION_DEG: f32 = 0.001;
/// How much larger than every other component a quantised rotation's largest one is
/// kept, so that choosing the largest again (from `f32`s, 6 × 10^-8 apart near 0.7)
/// picks the same one; well under a step at the finest precision (4 × 10^-6).
const LARGEST_MARGIN: f64 = 4e-7;

/// A scalar's step and its number of steps: the range is a whole number of steps no
/// larger than twice the precision, so its ends are grid points (a value at `max` comes
/// back as `max`, and quantising it again gives the same lane).
fn scalar_grid(min: f32, max: f32, precision: f32) -> (f64, i64) {
    let range = f64::from(max) - f64::from(min);
    if range == 0.0 {
        return (1.0, 0);
    }
    let steps = (range / (2.0 * f64::from(precision))).ceil().max(1.0);
    (range / steps, steps as i64)
}

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
        let mut kinds = Vec::new();
        let mut at = 0;
        for f in &sorted {
            kinds.extend((at..f.offset()).map(|_| LaneKind::Byte));
            let kind = match f {
                Field::Flags { .. } => LaneKind::Flags,
                _ => LaneKind::Signed,
            };
            kinds.extend((0..f.lanes()).map(|_| kind));
            at = f.offset() + f.width();
        }
        kinds.extend((at..size).map(|_| LaneKind::Byte));
        Ok(FieldLayout {
            size,
            fields: sorted,
            kinds,
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
        self.kinds.len()
    }

    /// What each lane is, in lane order.
    pub fn lane_kinds(&self) -> &[LaneKind] {
        &self.kinds
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
        let mut lanes = Vec::with_capacity(self.kinds.len());
        self.lanes_into(value, &mut lanes)?;
        Ok(lanes)
    }

    /// [`FieldLayout::to_lanes`] into `lanes` (cleared first; unchanged content on error
    /// is not promised).
    pub fn lanes_into(&self, value: &[u8], lanes: &mut Vec<i64>) -> Result<(), FieldError> {
        lanes.clear();
        if value.len() != self.size as usize {
            return Err(FieldError::WrongSize {
                given: value.len(),
                size: self.size,
            });
        }
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
                    let (step, steps) = scalar_grid(min, max, precision);
                    let q = ((f64::from(x) - f64::from(min)) / step).round() as i64;
                    lanes.push(q.clamp(0, steps));
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
        Ok(())
    }

    /// The value lanes stand for; lanes from a peer are checked (count, ranges).
    pub fn from_lanes(&self, lanes: &[i64]) -> Result<Vec<u8>, FieldError> {
        let mut value = Vec::with_capacity(self.size as usize);
        self.value_into(lanes, &mut value)?;
        Ok(value)
    }

    /// Quantises `value` in place to what a peer rebuilds from its lanes (a fixed point:
    /// quantising it again changes nothing). NaN, infinities, a scalar out of its range
    /// or a position too far for its precision are refused, and `value` is unchanged.
    pub fn quantise(&self, value: &mut [u8], scratch: &mut Scratch) -> Result<(), FieldError> {
        self.lanes_into(value, &mut scratch.lanes)?;
        self.value_into(&scratch.lanes, &mut scratch.bytes)?;
        value.copy_from_slice(&scratch.bytes);
        Ok(())
    }

    /// [`FieldLayout::from_lanes`] into `value` (cleared first).
    pub fn value_into(&self, lanes: &[i64], value: &mut Vec<u8>) -> Result<(), FieldError> {
        value.clear();
        if lanes.len() != self.kinds.len() {
            return Err(FieldError::BadLanes("another count than the layout's"));
        }
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
                    let (step, steps) = scalar_grid(min, max, precision);
                    let q = next()?;
                    if !(0..=steps).contains(&q) {
                        return Err(FieldError::BadLanes("a scalar out of its range"));
                    }
                    let x = if q == steps {
                        max
                    } else {
                        (f64::from(min) + q as f64 * step).min(f64::from(max)) as f32
                    };
                    value.extend_from_slice(&x.to_le_bytes());
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
        Ok(())
    }
}

/// Buffers [`FieldLayout::quantise`] reuses, so writes allocate nothing.
#[derive(Debug, Default)]
pub struct Scratch {
    lanes: Vec<i64>,
    bytes: Vec<u8>,
}

/// The step of a rotation's three smaller components for `precision_deg`. Rounding puts
/// each within half a step (one of them, near a tie of the two largest, within a step:
/// see `rotation_lanes`), and the largest, rebuilt from them, moves less than that (it is
/// at least 1/2). The angle is twice the quaternion's error, so a step of a quarter of
/// the precision (in radians) keeps within it; the fixed-point test checks near ties.
fn rotation_steps(precision_deg: f32) -> f64 {
    f64::from(precision_deg).to_radians() / 4.0
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
    // Near a tie, rounding can leave a smaller component above the largest rebuilt from
    // them, and quantising the result again would choose another largest (another value):
    // pull the biggest small one a step toward zero until the largest stands clear.
    loop {
        let small: [f64; 3] = std::array::from_fn(|k| lanes[k + 1] as f64 * step);
        let rest = 1.0 - small.iter().map(|c| c * c).sum::<f64>();
        let biggest = (1..4).max_by_key(|&k| lanes[k].abs())?;
        if rest > 0.0 && rest.sqrt() > small[biggest - 1].abs() + LARGEST_MARGIN {
            return Some(lanes);
        }
        lanes[biggest] -= lanes[biggest].signum();
    }
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

    /// The angle between two rotations, from the distance of the quaternions (acos of the
    /// dot product is too coarse near 1 to check hundredths of a degree).
    fn angle_between(a: [f32; 4], b: [f32; 4]) -> f64 {
        let dot: f64 = (0..4).map(|i| f64::from(a[i]) * f64::from(b[i])).sum();
        let sign = if dot < 0.0 { -1.0 } else { 1.0 };
        let dist = (0..4)
            .map(|i| (f64::from(a[i]) - sign * f64::from(b[i])).powi(2))
            .sum::<f64>()
            .sqrt();
        4.0 * (dist / 2.0).min(1.0).asin().to_degrees()
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

    /// Quaternions near ties (two, three or four components of equal size), where the
    /// choice of the largest is fragile, and random ones.
    fn hard_quaternions(rnd: &mut impl FnMut() -> f64) -> Vec<[f32; 4]> {
        let mut out = Vec::new();
        for _ in 0..3000 {
            let tied = 2 + (rnd() * 3.0) as usize;
            let mut q: [f64; 4] = std::array::from_fn(|i| {
                let base = if i < tied { 1.0 } else { rnd() };
                let sign = if rnd() < 0.5 { -1.0 } else { 1.0 };
                sign * (base + (rnd() - 0.5) * 1e-4)
            });
            q.swap(0, (rnd() * 4.0) as usize % 4);
            let n = q.iter().map(|c| c * c).sum::<f64>().sqrt();
            out.push(q.map(|c| (c / n) as f32));
        }
        out
    }

    #[test]
    fn quantised_values_are_fixed_points_within_their_precisions() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut rnd = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed >> 11) as f64 / (1u64 << 53) as f64
        };
        let quats = hard_quaternions(&mut rnd);
        for (precision_mm, precision_deg, (min, max, precision)) in [
            (1.0, 0.1, (0.0, 1.0, 0.001)),
            (0.001, 0.001, (-3.0, 7.0, 0.3)),
            (10.0, 1.0, (5.0, 5.0, 0.1)),
            (0.5, 90.0, (-1.0e3, 1.0e3, 0.01)),
        ] {
            let layout = FieldLayout::new(
                32,
                &[
                    Field::Position {
                        offset: 0,
                        precision_mm,
                    },
                    Field::Rotation {
                        offset: 12,
                        precision_deg,
                    },
                    Field::Scalar {
                        offset: 28,
                        min,
                        max,
                        precision,
                    },
                ],
            )
            .unwrap();
            let reach = (MAX_STEPS - 1.0) * 2.0 * f64::from(precision_mm) / 1000.0;
            let mut scratch = Scratch::default();
            for (i, q) in quats.iter().enumerate() {
                let p: [f32; 3] = std::array::from_fn(|axis| match (i + axis) % 5 {
                    0 => reach as f32,
                    1 => -reach as f32,
                    _ => ((rnd() * 2.0 - 1.0) * reach) as f32,
                });
                let x = match i % 4 {
                    0 => min,
                    1 => max,
                    _ => min + (rnd() as f32) * (max - min),
                };
                let mut v = Vec::new();
                for c in p.iter().chain(q).chain(&[x.clamp(min, max)]) {
                    v.extend_from_slice(&c.to_le_bytes());
                }
                let mut c = v.clone();
                layout.quantise(&mut c, &mut scratch).unwrap();
                let mut again = c.clone();
                layout.quantise(&mut again, &mut scratch).unwrap();
                assert_eq!(again, c, "a fixed point: {q:?} at {precision_deg}°");
                for (axis, want) in p.iter().enumerate() {
                    let err = f64::from((f32_at(&c, 4 * axis) - want).abs());
                    // Within the precision, plus the f32 spacing far from the origin.
                    let slack = f64::from(want.abs()) * 1.2e-7;
                    assert!(err <= f64::from(precision_mm) / 1000.0 + slack, "{err}");
                }
                let got: [f32; 4] = std::array::from_fn(|k| f32_at(&c, 12 + 4 * k));
                let angle = angle_between(got, *q);
                assert!(
                    angle <= f64::from(precision_deg) + 2e-5,
                    "{angle}° for {q:?} at {precision_deg}°"
                );
                let s = f32_at(&c, 28);
                assert!((min..=max).contains(&s), "{s} in {min}..={max}");
                assert!(f64::from((s - x.clamp(min, max)).abs()) <= f64::from(precision) + 1e-4);
            }
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
