//! One source's section of a pose packet: what each side keeps of a sent section to code
//! later ones against ([`Kept`]), the references a section names ([`Refs`]), and the
//! section's code itself ([`write_section`], [`read_section`]; layout in the parent
//! module's docs).

use super::super::bits::{unzigzag, zigzag, BitReader, BitWriter};
use super::super::pose::{Device, PoseFlags};
use super::super::predict::{encode_quantized_predicted, read_quantized_predicted, Reference};
use super::super::quantize::{
    read_quantized, write_quantized, QuantizeError, QuantizedPose, Volume,
};
use super::codes::{
    read_exp_golomb, read_refs, read_time, write_exp_golomb, write_refs, write_time,
};
use super::{
    Ack, QuantizedController, QuantizedVelocity, Section, StreamError, StreamSample, HISTORY,
    MAX_VELOCITY_UNITS,
};

/// Devices of a standard section: head, left and right.
const STANDARD_MASK: u64 = 0b111;
/// Bits of a velocity component sent without a prediction.
const VELOCITY_ABS_BITS: u32 = 14;
/// Exp-Golomb order of a velocity residual against the reference's velocity. Reported
/// velocities are noisy (a runtime differentiates tracked poses), so carrying the
/// references' change on costs more than it predicts: the synthetic avatar's velocities
/// cost 7.8-8.5 B a 3-point packet this way, 10-15 B carried on linearly.
const VELOCITY_ORDER: u32 = 1;
/// Bits of a frame number named without a reference (explicit sources).
pub(crate) const FRAME_BITS: u32 = 12;

/// What either side keeps of a device in a sent section: enough to be a reference.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Kept {
    pub(crate) device: Device,
    pub(crate) pose: QuantizedPose,
    pub(crate) time: i64,
    pub(crate) velocity: Option<QuantizedVelocity>,
    pub(crate) controller: Option<QuantizedController>,
}

impl Kept {
    pub(crate) fn of(sample: &StreamSample) -> Kept {
        Kept {
            device: sample.device,
            pose: sample.pose,
            time: sample.time,
            velocity: sample.velocity,
            controller: sample.controller,
        }
    }

    pub(crate) fn all(samples: &[StreamSample]) -> Vec<Kept> {
        samples.iter().map(Kept::of).collect()
    }
}

/// A packet as its receiver keeps it (implicit sources: a reference by sequence number).
#[derive(Clone, Debug, Default)]
pub(crate) struct Record {
    pub(crate) seq: i64,
    pub(crate) sections: Vec<(u16, Vec<Kept>)>,
    /// The acknowledgement the packet carried.
    pub(crate) ack: Option<Ack>,
}

impl Record {
    pub(crate) fn section(&self, source: u16) -> Option<&[Kept]> {
        self.sections
            .iter()
            .find(|(s, _)| *s == source)
            .map(|(_, k)| k.as_slice())
    }

    pub(crate) fn from_sections(seq: i64, sections: &[Section], ack: Option<Ack>) -> Record {
        Record {
            seq,
            ack,
            sections: sections
                .iter()
                .map(|s| (s.source, Kept::all(&s.samples)))
                .collect(),
        }
    }
}

fn kept(section: Option<&[Kept]>, device: Device) -> Option<Kept> {
    section?.iter().find(|k| k.device == device).copied()
}

/// The references of one section: ages in frames (packets, with implicit sources) and
/// the kept devices of the referenced frames.
pub(crate) struct Refs<'a> {
    pub(crate) age: u64,
    pub(crate) gap: u64,
    pub(crate) gap2: u64,
    /// The acknowledgement the `last` packet carried (implicit sources only).
    pub(crate) last_ack: Option<Ack>,
    pub(crate) last: Option<&'a [Kept]>,
    pub(crate) previous: Option<&'a [Kept]>,
    pub(crate) earlier: Option<&'a [Kept]>,
}

impl Refs<'_> {
    pub(crate) fn none() -> Self {
        Refs {
            age: 0,
            gap: 0,
            gap2: 0,
            last_ack: None,
            last: None,
            previous: None,
            earlier: None,
        }
    }

    pub(crate) fn reference(&self, device: Device) -> Option<Reference> {
        let last = kept(self.last, device)?;
        let previous = kept(self.previous, device);
        let earlier = kept(self.earlier, device).filter(|_| previous.is_some());
        Some(Reference {
            last: last.pose,
            previous: previous.map(|p| p.pose),
            earlier: earlier.map(|e| e.pose),
            frames_between_refs: if previous.is_some() {
                self.gap as u32
            } else {
                0
            },
            frames_before_previous: if earlier.is_some() {
                self.gap2 as u32
            } else {
                0
            },
            frames_since_last: self.age as u32,
            head: device == Device::HEAD,
        })
    }

    /// What an acknowledgement is coded against: the reference's age and the
    /// acknowledgement the reference packet carried.
    pub(crate) fn ack_base(&self) -> Option<(u64, Ack)> {
        Some((self.age, self.last_ack?)).filter(|_| self.age > 0)
    }

    fn predicted_time(&self, device: Device) -> Option<i64> {
        let last = kept(self.last, device)?;
        let Some(prev) = kept(self.previous, device) else {
            return Some(last.time);
        };
        let num = (i128::from(last.time) - i128::from(prev.time)) * i128::from(self.age);
        let g = i128::from(self.gap.max(1));
        let step = (2 * num + g).div_euclid(2 * g);
        Some(
            (i128::from(last.time) + step).clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64,
        )
    }

    /// The velocity predicted for `device`: the last reference's.
    fn predicted_velocity(&self, device: Device) -> Option<[i64; 6]> {
        Some(components(&kept(self.last, device)?.velocity?))
    }

    fn controller(&self, device: Device) -> Option<QuantizedController> {
        kept(self.last, device)?.controller
    }
}

fn components(v: &QuantizedVelocity) -> [i64; 6] {
    let [a, b, c] = v.linear.map(i64::from);
    let [d, e, f] = v.angular.map(i64::from);
    [a, b, c, d, e, f]
}

fn write_velocity(w: &mut BitWriter, v: &QuantizedVelocity, predicted: Option<[i64; 6]>) {
    match predicted {
        Some(p) => {
            for (c, p) in components(v).into_iter().zip(p) {
                write_exp_golomb(w, zigzag(c - p), VELOCITY_ORDER);
            }
        }
        None => {
            for c in components(v) {
                w.write_signed(c, VELOCITY_ABS_BITS);
            }
        }
    }
}

fn read_velocity(
    r: &mut BitReader<'_>,
    predicted: Option<[i64; 6]>,
) -> Result<QuantizedVelocity, StreamError> {
    let max = i64::from(MAX_VELOCITY_UNITS);
    let mut c = [0i16; 6];
    for (i, slot) in c.iter_mut().enumerate() {
        let value = match predicted {
            Some(p) => {
                let residual = unzigzag(read_exp_golomb(r, VELOCITY_ORDER, 4 * max as u64)?);
                p.get(i).copied().unwrap_or(0) + residual
            }
            None => r.read_signed(VELOCITY_ABS_BITS)?,
        };
        if !(-max..=max).contains(&value) {
            return Err(StreamError::Corrupt("velocity out of range"));
        }
        *slot = value as i16;
    }
    Ok(QuantizedVelocity {
        linear: [c[0], c[1], c[2]],
        angular: [c[3], c[4], c[5]],
    })
}

fn write_controller(w: &mut BitWriter, c: &QuantizedController) {
    w.write_bits(u64::from(c.buttons), 32);
    w.write_bits(u64::from(c.trigger), 8);
    w.write_bits(u64::from(c.grip), 8);
    w.write_signed(i64::from(c.thumb_x), 8);
    w.write_signed(i64::from(c.thumb_y), 8);
}

fn read_controller(r: &mut BitReader<'_>) -> Result<QuantizedController, StreamError> {
    Ok(QuantizedController {
        buttons: r.read_bits(32)? as u32,
        trigger: r.read_bits(8)? as u8,
        grip: r.read_bits(8)? as u8,
        thumb_x: r.read_signed(8)? as i8,
        thumb_y: r.read_signed(8)? as i8,
    })
}

/// How a section names itself.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Naming {
    /// The packet's only section, of the sender itself, whose "standard" bit also tells
    /// that the section is there (`1` standard, `01` not); its frame is the packet.
    Implicit,
    /// A relayed section (its source was written before it): frame `frame` of its source,
    /// named after the references.
    Explicit { frame: i64 },
}

/// How a section is read: the counterpart of [`Naming`].
#[derive(Clone, Copy)]
pub(crate) enum ReadNaming<'a> {
    /// Frames are packets: this packet is `seq`; `standard` is the bit already read.
    Implicit { seq: i64, standard: bool },
    /// Frames of the source: `highest` is the newest frame of it this side holds, and
    /// `in_slot` the frame it holds in a slot ([`HISTORY`] of them, frame `n` in slot
    /// `n mod HISTORY`).
    Explicit {
        highest: Option<i64>,
        in_slot: &'a dyn Fn(u64) -> Option<i64>,
    },
}

/// Bits naming the newest reference of an explicit section: its slot.
const SLOT_BITS: u32 = HISTORY.trailing_zeros();

/// Reads an explicit section's frame number. With references, the newest reference is
/// named by its slot: the receiver holds it, and no frame newer in that slot (one would be
/// [`HISTORY`] frames newer, more than any sent yet: references are at most
/// [`super::MAX_REFERENCE_AGE`] old), so the slot holds exactly it, however late this packet
/// is; the frame is `age` after it. Without references, 12 bits, taken nearest the newest
/// frame held.
fn read_frame(
    r: &mut BitReader<'_>,
    age: u64,
    highest: Option<i64>,
    in_slot: &dyn Fn(u64) -> Option<i64>,
) -> Result<i64, StreamError> {
    if age == 0 {
        let wire = r.read_bits(FRAME_BITS)? as i64;
        let Some(h) = highest else {
            return Ok(wire);
        };
        let modulus = 1i64 << FRAME_BITS;
        let base = h - h.rem_euclid(modulus) + wire;
        return Ok([base - modulus, base, base + modulus]
            .into_iter()
            .min_by_key(|c| (c - h).abs())
            .unwrap_or(base));
    }
    let slot = r.read_bits(SLOT_BITS)?;
    let last = in_slot(slot).ok_or(StreamError::MissingReference(-1))?;
    Ok(last + age as i64)
}

/// Writes a section (see [`Naming`] for what comes before it).
pub(crate) fn write_section(
    w: &mut BitWriter,
    section: &Section,
    refs: &Refs<'_>,
    volume: &Volume,
    naming: Naming,
) -> Result<(), StreamError> {
    let mut mask = 0u64;
    for s in &section.samples {
        mask |= 1 << s.device.index();
    }
    if mask == 0
        || section
            .samples
            .windows(2)
            .any(|p| p[0].device >= p[1].device)
    {
        return Err(StreamError::Corrupt("section devices empty or unordered"));
    }
    // The common case of a three-point avatar in one bit: head and both hands, fully
    // tracked, sampled at one time.
    let standard = mask == STANDARD_MASK
        && section
            .samples
            .iter()
            .all(|s| s.flags == PoseFlags::ALL && s.time == section.samples[0].time);
    if matches!(naming, Naming::Implicit) && !standard {
        w.write_bits(0b10, 2);
    } else {
        w.write_bool(standard);
    }
    if !standard {
        w.write_bits(mask & 0b111, 3);
        let trackers = mask >> 3;
        w.write_bool(trackers != 0);
        if trackers != 0 {
            w.write_bits(trackers, u32::from(Device::MAX_TRACKERS));
        }
    }
    write_refs(w, refs.age, refs.gap, refs.gap2);
    if let Naming::Explicit { frame } = naming {
        if refs.age == 0 {
            w.write_bits(frame as u64, FRAME_BITS);
        } else {
            let last = frame - refs.age as i64;
            w.write_bits(last.rem_euclid(HISTORY as i64) as u64, SLOT_BITS);
        }
    }
    let extras = section
        .samples
        .iter()
        .any(|s| s.velocity.is_some() || s.controller.is_some());
    w.write_bool(extras);
    let mut previous_time = None;
    for s in &section.samples {
        match previous_time {
            Some(_) if standard => {}
            Some(t) if t == s.time => w.write_bool(true),
            Some(_) => {
                w.write_bool(false);
                write_time(w, s.time, refs.predicted_time(s.device));
            }
            None => write_time(w, s.time, refs.predicted_time(s.device)),
        }
        previous_time = Some(s.time);
        if !standard {
            let all = s.flags == PoseFlags::ALL;
            w.write_bool(all);
            if !all {
                w.write_bits(u64::from(s.flags.bits()), 4);
            }
        }
        match refs.reference(s.device) {
            Some(reference) => {
                encode_quantized_predicted(&s.pose, &reference, volume, w)?;
            }
            None => {
                if !s.pose.fits(volume) {
                    return Err(QuantizeError::ReferenceOutOfRange.into());
                }
                write_quantized(&s.pose, volume, w);
            }
        }
        if extras {
            w.write_bool(s.velocity.is_some());
            if let Some(v) = s.velocity {
                write_velocity(w, &v, refs.predicted_velocity(s.device));
            }
            w.write_bool(s.controller.is_some());
            if let Some(c) = s.controller {
                // An unchanged controller (the usual case between presses) in one bit.
                if let Some(reference) = refs.controller(s.device) {
                    w.write_bool(reference == c);
                    if reference == c {
                        continue;
                    }
                }
                write_controller(w, &c);
            }
        }
    }
    Ok(())
}

/// A section read: the section, its frame number and what the acknowledgement is coded
/// against.
pub(crate) type ReadSection = (Section, i64, Option<(u64, Ack)>);

/// Reads a section whose frames resolve through `resolve` (a frame number to the kept
/// devices of this source in it and, with implicit sources, the acknowledgement its packet
/// carried). Returns the section, its frame number and what the acknowledgement is coded
/// against.
pub(crate) fn read_section<'a>(
    r: &mut BitReader<'_>,
    source: u16,
    naming: ReadNaming<'_>,
    resolve: impl Fn(i64) -> Result<(&'a [Kept], Option<Ack>), StreamError>,
    volume: &Volume,
) -> Result<ReadSection, StreamError> {
    let standard = match naming {
        ReadNaming::Implicit { standard, .. } => standard,
        ReadNaming::Explicit { .. } => r.read_bool()?,
    };
    let mut mask = STANDARD_MASK;
    if !standard {
        mask = r.read_bits(3)?;
        if r.read_bool()? {
            let trackers = r.read_bits(u32::from(Device::MAX_TRACKERS))?;
            if trackers == 0 {
                return Err(StreamError::Corrupt("empty tracker mask"));
            }
            mask |= trackers << 3;
        }
        if mask == 0 {
            return Err(StreamError::Corrupt("empty device mask"));
        }
    }
    let (age, gap, gap2) = read_refs(r)?;
    let frame = match naming {
        ReadNaming::Implicit { seq, .. } => seq,
        ReadNaming::Explicit { highest, in_slot } => read_frame(r, age, highest, in_slot)?,
    };
    let mut refs = Refs::none();
    if age > 0 {
        let last = frame - age as i64;
        let (kept_last, last_ack) = resolve(last)?;
        refs.age = age;
        refs.gap = gap;
        refs.gap2 = gap2;
        refs.last_ack = last_ack;
        refs.last = Some(kept_last);
        if gap > 0 {
            refs.previous = Some(resolve(last - gap as i64)?.0);
        }
        if gap2 > 0 {
            refs.earlier = Some(resolve(last - gap as i64 - gap2 as i64)?.0);
        }
    }
    let extras = r.read_bool()?;
    let mut samples = Vec::new();
    let mut previous_time: Option<i64> = None;
    for index in 0..Device::COUNT as u8 {
        if mask & (1 << index) == 0 {
            continue;
        }
        let device = Device::from_index(index).ok_or(StreamError::Corrupt("device"))?;
        let time = match previous_time {
            Some(t) if standard => t,
            Some(t) if r.read_bool()? => t,
            _ => read_time(r, refs.predicted_time(device))?,
        };
        previous_time = Some(time);
        let flags = if standard || r.read_bool()? {
            PoseFlags::ALL
        } else {
            PoseFlags::from_bits_truncate(r.read_bits(4)? as u8)
        };
        let pose = match refs.reference(device) {
            Some(reference) => read_quantized_predicted(r, &reference, volume)?,
            None => read_quantized(r, volume)?,
        };
        if !pose.fits(volume) {
            return Err(StreamError::Corrupt("pose outside the volume"));
        }
        let (mut velocity, mut controller) = (None, None);
        if extras {
            if r.read_bool()? {
                velocity = Some(read_velocity(r, refs.predicted_velocity(device))?);
            }
            if r.read_bool()? {
                let reference = refs.controller(device);
                controller = Some(match reference {
                    Some(c) if r.read_bool()? => c,
                    _ => read_controller(r)?,
                });
            }
        }
        samples.push(StreamSample {
            device,
            pose,
            exact: None,
            time,
            flags,
            velocity,
            controller,
        });
    }
    Ok((Section { source, samples }, frame, refs.ack_base()))
}

#[cfg(test)]
mod tests {
    use super::super::MAX_REFERENCE_AGE;
    use super::*;

    #[test]
    fn explicit_frame_numbers_resolve_from_the_slot_of_the_reference() {
        // The receiver holds frames 60-100 (and a late packet may name any of them).
        let held = |slot: u64| (60..=100i64).find(|n| n.rem_euclid(HISTORY as i64) as u64 == slot);
        for last in 70..=100i64 {
            for age in [1u64, 2, 5, MAX_REFERENCE_AGE] {
                let mut w = BitWriter::new();
                w.write_bits(last.rem_euclid(HISTORY as i64) as u64, SLOT_BITS);
                let bytes = w.into_bytes();
                let got = read_frame(&mut BitReader::new(&bytes), age, Some(100), &held);
                assert_eq!(got, Ok(last + age as i64));
            }
        }
        // Without references: 12 bits, nearest the newest held, across the wrap.
        for (frame, h) in [(5i64, None), (4_100, Some(4_090)), (4_090, Some(4_100))] {
            let mut w = BitWriter::new();
            w.write_bits(frame as u64, FRAME_BITS);
            let bytes = w.into_bytes();
            let got = read_frame(&mut BitReader::new(&bytes), 0, h, &held);
            assert_eq!(got, Ok(frame));
        }
        // A reference in an empty slot (or of a source never received) is refused.
        let none = |_: u64| None;
        assert_eq!(
            read_frame(&mut BitReader::new(&[0xFF]), 3, Some(5), &none),
            Err(StreamError::MissingReference(-1))
        );
    }
}
