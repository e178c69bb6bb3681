//! The pose stream of one direction of one link: bit-packed packets of quantised device
//! samples, each coded against what the receiver acknowledged.
//!
//! A client's [`PoseSender`] turns the newest sample of each of its devices into a packet;
//! the host relays every peer's devices to every other with a [`super::relay`] sender per
//! link; a [`PoseReceiver`] decodes either and tells the sender, through acknowledgements
//! carried by the packets of the other direction, which packet it received last. A section
//! (one source's devices) is coded against the receiver's copy of those devices in the
//! newest acknowledged *frame* of that source (and, for velocity and acceleration, the two
//! acknowledged before it) with [`super::predict`]; whatever the receiver did not
//! acknowledge is never referenced, so loss, duplication and reordering cannot
//! desynchronise the two. A client's frames are its packets. A relayed source's frames are
//! numbered by the host, the same for every receiver, so a section coded against one
//! reference is the same bits for every receiver holding it: the host encodes each source
//! once per reference set, not once per receiver.
//!
//! # Packet (bits least significant first, see [`super::bits`])
//! | field | bits | meaning |
//! |---|---|---|
//! | seq low | 6 | the packet's sequence number, low bits |
//! | kind | 1 | `0`: a pose packet (`1` is reserved for clock messages) |
//! | tag | 1 | always `1`: the first byte is ≥ `0x80`, telling pose packets from state datagrams |
//! | long | 1 | `1`: the sequence number is long ([`SEQ_BITS`] = 12 bits in all), `0`: short ([`SHORT_SEQ_BITS`] = 7) |
//! | seq high | 6 or 1 | the sequence number's other bits |
//! | explicit sources | 1 | `0`: at most one section, of the sender itself; `1`: sections name their source |
//! | sections | … | see below |
//! | ack | 1, 2 + … or 3 + 7 or 3 + 12 | the sequence number of the last packet received from the other side (see [`Ack`] and below) |
//!
//! Sections: with implicit sources `1` for a standard section (below), `01` for another
//! section, `00` for none (an acknowledgement alone); with explicit sources, before each
//! section a `1` bit and the source peer id (`1` + 6 bits below 64, else `0` + 16 bits),
//! and a final `0` bit.
//!
//! Section: a "standard" bit (`1`: head and both hands, all fully tracked, one time; with
//! implicit sources it is the bit above), else a device mask (3 bits head / left / right,
//! 1 bit "trackers", then 8 tracker bits if set; never empty); the references (the age in
//! frames minus one as an order-1 Exp-Golomb code, [`MAX_REFERENCE_AGE`] for none; then
//! `1` when the previous and the earlier reference are each one frame before the next,
//! else `0` and the gap to the previous reference, and when there is one the gap from it
//! to the earlier one, each `1` for one frame, else `0` and 3 bits, `0` = none); with
//! explicit sources the section's frame number: with references the newest reference's
//! low 6 bits (its slot among the [`HISTORY`] frames of the source the receiver keeps,
//! which holds exactly it: see `section::read_frame`) and the frame is `age` after it,
//! else the frame's low 12 bits; an "extras" bit, then per device in index order:
//! - time, in [`TIME_UNIT_NS`] units: in a standard section only for the first device;
//!   otherwise after the first device a bit "same as the device before". A time is a
//!   prefix code against the time predicted from the device's last two references (`0`
//!   exact, `10` and a sign bit for ±1 unit, `110`, a sign bit and an order-0 Exp-Golomb
//!   code of the magnitude minus 2 up to 2¹⁶, `111` and the 48-bit absolute time), or the
//!   48-bit absolute time when the device has no reference;
//! - flags (not in a standard section): `1` = all four `XrSpaceLocationFlags` bits, else
//!   `0` and the 4 bits;
//! - the pose: [`super::predict::encode_quantized_predicted`] against the references when
//!   the reference frame holds this device, else absolute
//!   ([`super::quantize::write_quantized`]);
//! - with extras: a velocity bit and, when set, six components in [`VELOCITY_UNIT`] steps
//!   (linear x y z, angular x y z): when the last reference holds this device's velocity,
//!   order-1 Exp-Golomb codes of the zigzag of the change from it, else 14 bits each; then
//!   a controller bit and, when set and the last reference holds this device's
//!   controller, a bit "unchanged", else 32 + 4 × 8 bits.
//!
//! Acknowledgement: `0` for none, else `1`; then, with implicit sources and when the
//! section has references whose newest packet carried an acknowledgement, a bit: `1` and
//! an order-0 Exp-Golomb code of the zigzag of the distance from that acknowledgement plus
//! the reference's age (same form only; both directions stream at about the same rate, so
//! this is mostly `1` bit), or `0`; unless so predicted, the explicit form follows: `0` and
//! 7 bits (short) or `1` and 12 bits (long). It comes last because it is coded against the
//! reference the section names; the reference packet is needed to decode the packet
//! anyway, so this costs no robustness. (Relayed sections are the same bits on every link,
//! so with explicit sources the acknowledgement is always in the explicit form.)
//!
//! # Sequence and frame numbers
//! Numbers are 12 bits on the wire (long form). The receiver expands each to the value
//! nearest the highest it has seen and drops packets more than [`MAX_REFERENCE_AGE`] older
//! than that, so it stays exact while fewer than 2048 packets in a row are lost (about 22 s
//! at 90 Hz, beyond any idle timeout). The sender switches to 7 bits (short form) while
//! it holds an acknowledgement of a packet at most [`SHORT_SEQ_LEAD`] (16) before the
//! current one: the receiver's highest number is then at most 16 below it, and it refuses
//! a short number expanding to more than 16 above its highest, so a short number is
//! misread only if a datagram arrives 112 or more packets (over a second at 90 Hz) after
//! a newer one. The sender references only acknowledged frames: the newest at most
//! [`MAX_REFERENCE_AGE`] old, the two before it each at most [`MAX_PREVIOUS_GAP`] earlier;
//! both sides keep [`HISTORY`] packets, and a receiver [`HISTORY`] frames of each of at
//! most [`MAX_SOURCES`] relayed sources (the least recently heard one is forgotten past
//! that; a sender's reference to it is then refused until it ages out).

use std::collections::{BTreeMap, VecDeque};

use super::bits::{BitError, BitReader, BitWriter};
use super::quantize::{QuantizeError, Volume};

mod codes;
mod sample;
mod section;

pub use sample::{time_to_units, ExactPose, QuantizedController, QuantizedVelocity, StreamSample};

use codes::{read_ack, read_source};
pub(crate) use codes::{write_ack, write_source};
use section::{read_section, ReadNaming, Record};
pub(crate) use section::{write_section, Kept, Naming, Refs};

/// Nanoseconds per unit of time on the wire (0.1 ms).
pub const TIME_UNIT_NS: i64 = 100_000;
/// Bits of a sequence number on the wire (long form).
pub const SEQ_BITS: u32 = 12;
/// Bits of a sequence number in the short form.
pub const SHORT_SEQ_BITS: u32 = 7;
/// The short form is used at most this many packets past the newest acknowledged one.
pub const SHORT_SEQ_LEAD: u64 = 16;
/// Bits of a short acknowledgement.
pub const SHORT_ACK_BITS: u32 = 7;

/// An acknowledgement as a packet carries it: the low bits of the sequence number of the
/// last packet received from the other side, 12 (long) or [`SHORT_ACK_BITS`] (short).
///
/// The sender matches it against the [`HISTORY`] packets it remembers, so a short one is
/// exact while fewer than 128 of the sender's packets are in flight; the side that
/// acknowledges chooses the short form only when the round trip makes that certain with a
/// margin (`net::poses`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ack {
    /// The low bits of the acknowledged sequence number.
    pub seq: u16,
    /// Whether only [`SHORT_ACK_BITS`] bits are sent.
    pub short: bool,
}

impl Ack {
    /// The acknowledgement of full sequence number `seq`, in the long or short form.
    pub fn new(seq: u64, short: bool) -> Ack {
        let bits = if short { SHORT_ACK_BITS } else { SEQ_BITS };
        Ack {
            seq: (seq & ((1 << bits) - 1)) as u16,
            short,
        }
    }

    pub(crate) fn bits(self) -> u32 {
        if self.short {
            SHORT_ACK_BITS
        } else {
            SEQ_BITS
        }
    }
}

/// Oldest reference a packet may name, in packets.
pub const MAX_REFERENCE_AGE: u64 = 31;
/// Largest gap between consecutive references of a device, in packets.
pub const MAX_PREVIOUS_GAP: u64 = 7;
/// Packets the sender remembers and receiver slots.
pub const HISTORY: usize = 64;
/// Most sections a packet may hold.
pub const MAX_SECTIONS: usize = 256;
/// Value of the first byte's top two bits for a pose packet (`10`) and a clock message (`11`).
pub const POSE_PACKET_TAG: u8 = 0b1000_0000;
/// See [`POSE_PACKET_TAG`].
pub const CLOCK_MESSAGE_TAG: u8 = 0b1100_0000;

/// Relayed sources a receiver keeps frames of.
pub const MAX_SOURCES: usize = 512;
/// One step of a quantised velocity: 8 mm/s (linear) and 8 mrad/s (angular). Carried over
/// the jitter buffer's delay (at most 100 ms of extrapolation), half a step is at most
/// 0.4 mm and 0.02° (0.1-0.2 mm at the usual 20-60 ms).
pub const VELOCITY_UNIT: f64 = 0.008;
/// The largest velocity component in [`VELOCITY_UNIT`] steps (65.528 m/s or rad/s).
pub const MAX_VELOCITY_UNITS: i16 = 8191;

/// Why a packet could not be built or decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StreamError {
    /// The packet ended early or a field was malformed.
    #[error("pose packet: {0}")]
    Bits(#[from] BitError),
    /// A pose field is corrupt, or a pose does not fit the volume.
    #[error("pose packet: {0}")]
    Pose(#[from] QuantizeError),
    /// The bytes are not a pose packet (wrong tag or kind).
    #[error("not a pose packet")]
    NotAPosePacket,
    /// The packet is structurally impossible.
    #[error("corrupt pose packet: {0}")]
    Corrupt(&'static str),
    /// The packet names a reference the receiver does not hold: a packet (a client's
    /// section) or a frame of the source (a relayed one; `-1` for a source never
    /// received).
    #[error("pose packet names reference {0}, which was not received")]
    MissingReference(i64),
    /// The packet was received before.
    #[error("duplicate pose packet")]
    Duplicate,
    /// The packet is older than any packet the sender may still reference.
    #[error("stale pose packet")]
    Stale,
}

/// The samples of one source in a packet, in device order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Section {
    /// The source peer.
    pub source: u16,
    /// At most one sample per device, in ascending device order.
    pub samples: Vec<StreamSample>,
}
#[derive(Clone, Debug)]
struct Sent {
    seq: u64,
    acked: bool,
    record: Record,
}

/// A packet built by [`PoseSender::encode`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Encoded {
    /// The packet.
    pub bytes: Vec<u8>,
    /// Its full sequence number (for matching acknowledgements).
    pub seq: u64,
    /// How many of the given sections it holds (the first ones; the rest did not fit).
    pub sections: usize,
    /// Those sections as they went out: what the receiver decodes (poses quantised toward
    /// its predictions, no exact poses).
    pub sent: Vec<Section>,
}

/// The sending side of a pose stream (see the module docs).
#[derive(Clone, Debug)]
pub struct PoseSender {
    volume: Volume,
    next_seq: u64,
    history: VecDeque<Sent>,
}

impl PoseSender {
    /// A sender for poses inside `volume` (which both sides must share).
    pub fn new(volume: Volume) -> Self {
        PoseSender {
            volume,
            next_seq: 0,
            history: VecDeque::with_capacity(HISTORY),
        }
    }

    /// Takes in an acknowledgement from the other side (the last packet it received).
    /// Returns that packet's full sequence number when it is one this sender remembers.
    pub fn on_ack(&mut self, ack: Ack) -> Option<u64> {
        let mask = (1u64 << ack.bits()) - 1;
        let sent = self
            .history
            .iter_mut()
            .rev()
            .find(|s| s.seq & mask == u64::from(ack.seq) & mask)?;
        sent.acked = true;
        Some(sent.seq)
    }

    /// Chooses the references for `source`: the newest acknowledged packet holding it at
    /// most [`MAX_REFERENCE_AGE`] old, the newest acknowledged one before that at most
    /// [`MAX_PREVIOUS_GAP`] earlier, and the newest before that one likewise.
    fn refs(&self, seq: u64, source: u16) -> Refs<'_> {
        let mut holding = self
            .history
            .iter()
            .rev()
            .filter(|s| s.acked && seq - s.seq <= MAX_REFERENCE_AGE + 2 * MAX_PREVIOUS_GAP)
            .filter_map(|s| s.record.section(source).map(|k| (s.seq, k)));
        let Some((last_seq, last)) = holding.next().filter(|(s, _)| seq - s <= MAX_REFERENCE_AGE)
        else {
            return Refs::none();
        };
        let last_ack = self
            .history
            .iter()
            .rev()
            .find(|s| s.seq == last_seq)
            .and_then(|s| s.record.ack);
        let previous = holding
            .next()
            .filter(|(s, _)| last_seq - s <= MAX_PREVIOUS_GAP);
        let earlier = previous.and_then(|(previous_seq, _)| {
            holding
                .next()
                .filter(|(s, _)| previous_seq - s <= MAX_PREVIOUS_GAP)
        });
        Refs {
            age: seq - last_seq,
            gap: previous.map_or(0, |(s, _)| last_seq - s),
            gap2: match (previous, earlier) {
                (Some((p, _)), Some((e, _))) => p - e,
                _ => 0,
            },
            last_ack,
            last: Some(last),
            previous: previous.map(|(_, k)| k),
            earlier: earlier.map(|(_, k)| k),
        }
    }

    /// Builds the next packet: `ack` for the other direction and, when there is one with
    /// samples and it fits in `max_bytes`, this sender's own section (its source is
    /// implied: the receiver knows whose link this is).
    pub fn encode(
        &mut self,
        section: Option<&Section>,
        ack: Option<Ack>,
        max_bytes: usize,
    ) -> Result<Encoded, StreamError> {
        let seq = self.next_seq;
        let mut w = BitWriter::new();
        // The short form is safe once the receiver acknowledged a packet at most
        // SHORT_SEQ_LEAD before this one: its highest number is then close enough for 7 bits.
        let short = self
            .history
            .iter()
            .rev()
            .any(|s| s.acked && seq - s.seq <= SHORT_SEQ_LEAD);
        write_header(&mut w, seq, short, false);
        let mut included = None;
        if let Some(section) = section.filter(|s| !s.samples.is_empty()) {
            let refs = self.refs(seq, section.source);
            let sent = Section {
                source: section.source,
                samples: section
                    .samples
                    .iter()
                    .map(|s| s.as_sent(refs.reference(s.device), &self.volume))
                    .collect::<Result<_, _>>()?,
            };
            let mut candidate = w.clone();
            write_section(&mut candidate, &sent, &refs, &self.volume, Naming::Implicit)?;
            let base = refs.ack_base();
            let mut whole = candidate.clone();
            write_ack(&mut whole, ack, base);
            if whole.bit_len().div_ceil(8) <= max_bytes {
                w = whole;
                included = Some(sent);
            }
        }
        if included.is_none() {
            w.write_bits(0, 2);
            write_ack(&mut w, ack, None);
        }
        self.next_seq += 1;
        if self.history.len() == HISTORY {
            self.history.pop_front();
        }
        let sent: Vec<Section> = included.into_iter().collect();
        self.history.push_back(Sent {
            seq,
            acked: false,
            record: Record::from_sections(seq as i64, &sent, ack),
        });
        Ok(Encoded {
            bytes: w.into_bytes(),
            seq,
            sections: sent.len(),
            sent,
        })
    }
}

/// Writes a packet's first bits: the sequence number (short or long form), the tag and
/// whether sections name their source.
pub(crate) fn write_header(w: &mut BitWriter, seq: u64, short: bool, explicit_sources: bool) {
    w.write_bits(seq & 0b11_1111, 6);
    w.write_bool(false);
    w.write_bool(true);
    w.write_bool(!short);
    let bits = if short { SHORT_SEQ_BITS } else { SEQ_BITS };
    w.write_bits((seq & ((1 << bits) - 1)) >> 6, bits - 6);
    w.write_bool(explicit_sources);
}

/// A decoded pose packet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decoded {
    /// The packet's sequence number as this receiver numbers it.
    pub seq: i64,
    /// The acknowledgement it carries for this side's own sender.
    pub ack: Option<Ack>,
    /// Its sections (none for an acknowledgement alone).
    pub sections: Vec<Section>,
}

/// The frames of one relayed source a receiver holds.
#[derive(Clone, Debug)]
struct SourceFrames {
    /// The newest frame number received.
    highest: i64,
    /// The newest packet that carried this source (the least recently heard source is
    /// forgotten first).
    heard: i64,
    /// Frame `n` in slot `n mod HISTORY`.
    slots: Vec<Option<(i64, Vec<Kept>)>>,
}

impl SourceFrames {
    fn new(frame: i64, heard: i64) -> Self {
        SourceFrames {
            highest: frame,
            heard,
            slots: vec![None; HISTORY],
        }
    }

    fn get(&self, frame: i64) -> Option<&[Kept]> {
        let slot = self.slots.get(frame.rem_euclid(HISTORY as i64) as usize)?;
        slot.as_ref()
            .filter(|(n, _)| *n == frame)
            .map(|(_, k)| k.as_slice())
    }

    /// Keeps `frame` unless its slot holds a newer one (a late packet never evicts what
    /// a sender may still reference).
    fn insert(&mut self, frame: i64, kept: Vec<Kept>, heard: i64) {
        if let Some(slot) = self
            .slots
            .get_mut(frame.rem_euclid(HISTORY as i64) as usize)
        {
            if slot.as_ref().is_none_or(|(n, _)| *n < frame) {
                *slot = Some((frame, kept));
            }
        }
        self.highest = self.highest.max(frame);
        self.heard = self.heard.max(heard);
    }
}

/// The receiving side of a pose stream (see the module docs).
#[derive(Clone, Debug)]
pub struct PoseReceiver {
    volume: Volume,
    slots: Vec<Option<Record>>,
    highest: Option<i64>,
    /// The last packet with samples received, and whether it was acknowledged yet.
    last_received: Option<(i64, bool)>,
    /// Relayed sources' frames (explicit sources).
    sources: BTreeMap<u16, SourceFrames>,
}

impl PoseReceiver {
    /// A receiver for poses inside `volume` (which both sides must share).
    pub fn new(volume: Volume) -> Self {
        PoseReceiver {
            volume,
            slots: vec![None; HISTORY],
            highest: None,
            last_received: None,
            sources: BTreeMap::new(),
        }
    }

    /// The full number nearest the highest seen whose low `bits` bits are `wire`.
    fn expand(&self, wire: u64, bits: u32) -> i64 {
        let Some(h) = self.highest else {
            return wire as i64;
        };
        let modulus = 1i64 << bits;
        let base = h - h.rem_euclid(modulus) + wire as i64;
        [base - modulus, base, base + modulus]
            .into_iter()
            .min_by_key(|c| (c - h).abs())
            .unwrap_or(base)
    }

    /// Decodes a packet. `explicit_sources` says whether this side accepts sections naming
    /// their source (a client receiving from the host) or only the sender's own
    /// (`implicit_source`, the host receiving from a client). Nothing is kept unless the
    /// whole packet decodes.
    pub fn decode(
        &mut self,
        bytes: &[u8],
        explicit_sources: bool,
        implicit_source: u16,
    ) -> Result<Decoded, StreamError> {
        let first = *bytes.first().ok_or(StreamError::NotAPosePacket)?;
        if first & CLOCK_MESSAGE_TAG != POSE_PACKET_TAG {
            return Err(StreamError::NotAPosePacket);
        }
        let mut r = BitReader::new(bytes);
        let low = r.read_bits(6)?;
        r.read_bits(2)?;
        let long = r.read_bool()?;
        let bits = if long { SEQ_BITS } else { SHORT_SEQ_BITS };
        let high = r.read_bits(bits - 6)?;
        let seq = match (long, self.highest) {
            (true, _) => self.expand(low | (high << 6), SEQ_BITS),
            (false, Some(h)) => {
                let seq = self.expand(low | (high << 6), SHORT_SEQ_BITS);
                // A sender uses the short form only up to SHORT_SEQ_LEAD past a packet
                // this side acknowledged (so received, so at most `h`).
                if seq > h + SHORT_SEQ_LEAD as i64 {
                    return Err(StreamError::Corrupt("short sequence number too far ahead"));
                }
                seq
            }
            (false, None) => {
                return Err(StreamError::Corrupt(
                    "short sequence number before any packet",
                ))
            }
        };
        if self
            .highest
            .is_some_and(|h| seq < h - MAX_REFERENCE_AGE as i64)
        {
            return Err(StreamError::Stale);
        }
        if r.read_bool()? != explicit_sources {
            return Err(StreamError::Corrupt("unexpected source naming"));
        }
        let mut sections: Vec<Section> = Vec::new();
        // Explicit sources: each section's frame number.
        let mut frames: Vec<i64> = Vec::new();
        let mut ack_base = None;
        if explicit_sources {
            while r.read_bool()? {
                if sections.len() == MAX_SECTIONS {
                    return Err(StreamError::Corrupt("too many sections"));
                }
                let source = read_source(&mut r)?;
                if sections.iter().any(|s| s.source == source) {
                    return Err(StreamError::Corrupt("a source appears twice"));
                }
                let store = self.sources.get(&source);
                let in_slot = |slot: u64| store?.slots.get(slot as usize)?.as_ref().map(|f| f.0);
                let naming = ReadNaming::Explicit {
                    highest: store.map(|s| s.highest),
                    in_slot: &in_slot,
                };
                let resolve = |n: i64| {
                    store
                        .and_then(|s| s.get(n))
                        .map(|k| (k, None))
                        .ok_or(StreamError::MissingReference(n))
                };
                let (section, frame, _) =
                    read_section(&mut r, source, naming, resolve, &self.volume)?;
                sections.push(section);
                frames.push(frame);
            }
        } else {
            // `1`: a standard section, `01`: another section, `00`: none.
            let standard = if r.read_bool()? {
                Some(true)
            } else {
                r.read_bool()?.then_some(false)
            };
            if let Some(standard) = standard {
                let slots = &self.slots;
                let resolve = |n: i64| {
                    slots
                        .get(n.rem_euclid(HISTORY as i64) as usize)
                        .and_then(Option::as_ref)
                        .filter(|rec| rec.seq == n)
                        .map(|rec| (rec.section(implicit_source).unwrap_or(&[]), rec.ack))
                        .ok_or(StreamError::MissingReference(n))
                };
                let naming = ReadNaming::Implicit { seq, standard };
                let (section, _, base) =
                    read_section(&mut r, implicit_source, naming, resolve, &self.volume)?;
                ack_base = base;
                sections.push(section);
            }
        }
        let ack = read_ack(&mut r, ack_base)?;
        // Only zero padding may follow.
        if r.remaining() >= 8 || r.read_bits(r.remaining() as u32)? != 0 {
            return Err(StreamError::Corrupt("trailing bits"));
        }
        if !sections.is_empty() {
            let index = seq.rem_euclid(HISTORY as i64) as usize;
            if let Some(slot) = self.slots.get_mut(index) {
                if slot.as_ref().is_some_and(|rec| rec.seq == seq) {
                    return Err(StreamError::Duplicate);
                }
                // Relayed sections are kept per source, by frame, below.
                let kept: &[Section] = if explicit_sources { &[] } else { &sections };
                *slot = Some(Record::from_sections(seq, kept, ack));
            }
            self.last_received = Some((seq, false));
            for (section, &frame) in sections.iter().zip(&frames) {
                let kept = Kept::all(&section.samples);
                self.sources
                    .entry(section.source)
                    .or_insert_with(|| SourceFrames::new(frame, seq))
                    .insert(frame, kept, seq);
            }
            while self.sources.len() > MAX_SOURCES {
                let Some(oldest) = self
                    .sources
                    .iter()
                    .min_by_key(|(_, s)| s.heard)
                    .map(|(&source, _)| source)
                else {
                    break;
                };
                self.sources.remove(&oldest);
            }
        }
        self.highest = Some(self.highest.map_or(seq, |h| h.max(seq)));
        Ok(Decoded { seq, ack, sections })
    }

    /// The acknowledgement to send: the last packet with samples received, once per such
    /// packet (an acknowledgement alone is never acknowledged).
    pub fn take_ack(&mut self) -> Option<u64> {
        let (seq, acked) = self.last_received.as_mut()?;
        if *acked {
            return None;
        }
        *acked = true;
        Some(*seq as u64)
    }

    /// Leaves the last packet unacknowledged (its samples were not used), so the sender
    /// keeps sending them.
    pub fn skip_ack(&mut self) {
        if let Some((_, acked)) = self.last_received.as_mut() {
            *acked = true;
        }
    }

    /// Whether a packet with samples arrived that was not acknowledged yet.
    pub fn has_unacked(&self) -> bool {
        self.last_received.is_some_and(|(_, acked)| !acked)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xr::quantize::{MAX_ANGLE_ERROR_DEG, MAX_POSITION_ERROR_M};
    use crate::xr::synthetic::{avatar, Rng};
    use crate::xr::{ControllerState, Device, PoseFlags, PoseSample, Vec3};

    fn volume() -> Volume {
        Volume::default()
    }

    /// Frame `i` of the synthetic avatar as one section of `source`.
    fn section(frames: &[[crate::xr::Pose; 3]], i: usize, source: u16) -> Section {
        let v = volume();
        let time_ns = 1_000_000_000 + i as i64 * 11_111_111;
        Section {
            source,
            samples: (0..3u8)
                .map(|d| {
                    let device = Device::from_index(d).expect("device");
                    let sample = PoseSample {
                        pose: frames[i][d as usize],
                        time: time_ns,
                        flags: PoseFlags::ALL,
                        linear_velocity: None,
                        angular_velocity: None,
                    };
                    StreamSample::from_sample(device, &sample, None, &v)
                        .expect("valid")
                        .0
                })
                .collect(),
        }
    }

    /// A lossy, reordering, duplicating channel in both directions: every sample the
    /// receiver decodes equals what was sent, and only stale or duplicate packets fail.
    #[test]
    fn lossy_channel_decodes_exactly_what_was_sent() {
        let frames = avatar(900);
        let mut rng = Rng(0x5EED_0001);
        let mut tx = PoseSender::new(volume());
        let mut rx = PoseReceiver::new(volume());
        let mut in_flight: Vec<(u64, Vec<u8>, Section)> = Vec::new();
        let mut acks_in_flight: Vec<(u64, Ack)> = Vec::new();
        let (mut decoded, mut stale_or_dup, mut referenced) = (0, 0, 0);
        for i in 0..frames.len() {
            let s = section(&frames, i, 7);
            let enc = tx.encode(Some(&s), None, 1200).expect("encode");
            assert_eq!(enc.sections, 1);
            referenced += usize::from(enc.bytes.len() < 20);
            // What goes out may be quantised toward the prediction, within the bounds.
            let sent = enc.sent[0].clone();
            for (out, input) in sent.samples.iter().zip(&s.samples) {
                let exact = input.exact.expect("pushed poses are exact").pose();
                let got = out.pose.to_pose(&volume());
                assert!(got.position.distance(exact.position) <= MAX_POSITION_ERROR_M);
                assert!(got.orientation.angle_deg(exact.orientation) <= MAX_ANGLE_ERROR_DEG);
            }
            // 20 % loss, 10 % duplicated, delivered 0-3 steps late.
            if rng.unit() > -0.6 {
                let delay = (rng.next_u64() % 4) + i as u64;
                in_flight.push((delay, enc.bytes.clone(), sent.clone()));
                if rng.unit() > 0.8 {
                    in_flight.push((delay + 2, enc.bytes, sent));
                }
            }
            let (due, later): (Vec<_>, Vec<_>) =
                in_flight.drain(..).partition(|(t, _, _)| *t <= i as u64);
            in_flight = later;
            for (_, bytes, sent) in due {
                match rx.decode(&bytes, false, 7) {
                    Ok(d) => {
                        assert_eq!(d.sections, vec![sent]);
                        decoded += 1;
                    }
                    Err(StreamError::Stale | StreamError::Duplicate) => stale_or_dup += 1,
                    Err(e) => panic!("packet {i}: {e}"),
                }
            }
            // Acknowledgements come back 2 steps later, 20 % lost.
            if let Some(a) = rx.take_ack() {
                if rng.unit() > -0.6 {
                    // Both forms: short and long acknowledgements resolve alike.
                    acks_in_flight.push((i as u64 + 2, Ack::new(a, i % 2 == 0)));
                }
            }
            let (due, later): (Vec<_>, Vec<_>) =
                acks_in_flight.drain(..).partition(|(t, _)| *t <= i as u64);
            acks_in_flight = later;
            for (_, a) in due {
                tx.on_ack(a);
            }
        }
        assert!(decoded > 600, "{decoded}");
        assert!(stale_or_dup > 0);
        assert!(
            referenced > 600,
            "most packets are coded against references"
        );
    }

    #[test]
    fn a_relay_names_its_sources_and_stops_at_the_size_limit() {
        use crate::xr::relay::{RelaySender, RelaySource};
        let frames = avatar(10);
        let v = volume();
        let mut tx = RelaySender::new(v);
        let mut rx = PoseReceiver::new(v);
        let mut sources: Vec<RelaySource> = [3u16, 70, 1000]
            .iter()
            .map(|&p| {
                let mut source = RelaySource::new(p);
                source.push(section(&frames, 5, p).samples, 1);
                source
            })
            .collect();
        let mut all: Vec<&mut RelaySource> = sources.iter_mut().collect();
        let enc = tx
            .encode(&mut all, Some(Ack::new(42, false)), 1200)
            .expect("encode");
        assert_eq!(enc.sections, 3);
        let d = rx.decode(&enc.bytes, true, 0).expect("decode");
        assert_eq!(d.ack, Some(Ack::new(42, false)));
        let got: Vec<u16> = d.sections.iter().map(|s| s.source).collect();
        assert_eq!(got, vec![3, 70, 1000]);
        // Explicit-source packets are refused where sources are implied, and back.
        assert!(rx.clone().decode(&enc.bytes, false, 0).is_err());
        let one = PoseSender::new(v)
            .encode(Some(&section(&frames, 5, 3)), None, 1200)
            .expect("encode");
        assert_eq!(one.sections, 1);
        assert!(matches!(
            rx.decode(&one.bytes, true, 0),
            Err(StreamError::Corrupt(_))
        ));
        // A tight limit keeps what fits: absolute 3-point sections take ~32 bytes.
        let mut all: Vec<&mut RelaySource> = sources.iter_mut().collect();
        let small = tx.encode(&mut all, None, 50).expect("encode");
        assert_eq!(small.sections, 1);
        assert!(small.bytes.len() <= 50);
    }

    #[test]
    fn extras_and_times_round_trip() {
        let v = volume();
        let mut tx = PoseSender::new(v);
        let mut rx = PoseReceiver::new(v);
        let controller = ControllerState {
            buttons: 0xDEAD_BEEF,
            trigger: 0.5,
            grip: 1.0,
            thumb_x: -1.0,
            thumb_y: 0.25,
        };
        for k in 0..40i64 {
            let sample = |time: i64, vel: bool| PoseSample {
                pose: crate::xr::Pose::IDENTITY,
                time,
                flags: if k % 3 == 0 {
                    PoseFlags::ORIENTATION_VALID
                } else {
                    PoseFlags::ALL
                },
                linear_velocity: vel.then(|| Vec3::new(1.5, -80.0, 0.001)),
                angular_velocity: None,
            };
            // Irregular times, one device with its own time, a tracker.
            let t = k * 11_000_000 + (k * k % 7) * 300_000;
            let samples = vec![
                StreamSample::from_sample(Device::HEAD, &sample(t, false), None, &v)
                    .expect("ok")
                    .0,
                StreamSample::from_sample(
                    Device::LEFT_HAND,
                    &sample(t + 1_000_000, true),
                    Some(&controller),
                    &v,
                )
                .expect("ok")
                .0,
                StreamSample::from_sample(
                    Device::tracker(5).expect("tracker"),
                    &sample(t + 1_000_000, false),
                    None,
                    &v,
                )
                .expect("ok")
                .0,
            ];
            let s = Section { source: 1, samples };
            let enc = tx.encode(Some(&s), None, 1200).expect("encode");
            let d = rx.decode(&enc.bytes, false, 1).expect("decode");
            assert_eq!(d.sections, enc.sent);
            if let Some(a) = rx.take_ack() {
                tx.on_ack(Ack::new(a, true));
            }
            let got = d.sections[0].samples[1];
            let c = got.controller.expect("controller").state();
            assert_eq!(c.buttons, 0xDEAD_BEEF);
            assert!((c.trigger - 0.5).abs() < 0.003 && c.thumb_x == -1.0);
            let lv = got.to_sample(&v).linear_velocity.expect("velocity");
            assert!((lv.x - 1.5).abs() <= 0.0041 && (lv.y + 65.528).abs() < 1e-3);
        }
    }

    #[test]
    fn hostile_bytes_are_errors_and_change_nothing() {
        let frames = avatar(60);
        let v = volume();
        let mut tx = PoseSender::new(v);
        let mut rx = PoseReceiver::new(v);
        let mut rng = Rng(0xBAD);
        let mut packets = Vec::new();
        for i in 0..60 {
            let enc = tx
                .encode(Some(&section(&frames, i, 2)), None, 1200)
                .expect("encode");
            packets.push(enc.bytes);
        }
        // Deliver the first half (acknowledged), then attack.
        for (i, p) in packets.iter().take(30).enumerate() {
            rx.decode(p, false, 2).expect("valid");
            if let Some(a) = rx.take_ack() {
                assert_eq!(tx.on_ack(Ack::new(a, i % 2 == 1)), Some(i as u64));
            }
        }
        let before = format!("{rx:?}");
        for p in &packets[30..] {
            for cut in 0..p.len() {
                let _ = rx.clone().decode(&p[..cut], false, 2);
            }
        }
        for _ in 0..20_000 {
            let mut p = packets[30 + (rng.next_u64() % 30) as usize].clone();
            let n = p.len();
            let at = (rng.next_u64() as usize) % n;
            p[at] ^= 1 << (rng.next_u64() % 8);
            let mut probe = rx.clone();
            if probe.decode(&p, false, 2).is_err() {
                assert_eq!(
                    format!("{probe:?}"),
                    before,
                    "a refused packet changed state"
                );
            }
        }
        for len in 0..40 {
            let junk: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8 | 0x80).collect();
            let mut probe = rx.clone();
            if probe.decode(&junk, true, 2).is_err() {
                assert_eq!(format!("{probe:?}"), before);
            }
        }
        assert_eq!(
            rx.decode(&[0x10, 0, 0], false, 2),
            Err(StreamError::NotAPosePacket)
        );
        assert_eq!(rx.decode(&[], false, 2), Err(StreamError::NotAPosePacket));
        // The real stream carries on.
        for p in &packets[30..] {
            rx.decode(p, false, 2).expect("still decodes");
        }
    }

    #[test]
    fn references_are_only_acknowledged_packets() {
        let frames = avatar(20);
        let v = volume();
        let mut tx = PoseSender::new(v);
        let mut rx = PoseReceiver::new(v);
        let first = tx
            .encode(Some(&section(&frames, 0, 1)), None, 1200)
            .expect("encode");
        // Not acknowledged: the next packet is absolute again.
        let second = tx
            .encode(Some(&section(&frames, 1, 1)), None, 1200)
            .expect("encode");
        assert!(second.bytes.len() >= first.bytes.len() - 1);
        rx.decode(&second.bytes, false, 1)
            .expect("absolute decodes alone");
        let a = rx.take_ack().expect("ack");
        assert_eq!(rx.take_ack(), None, "acknowledged once");
        assert_eq!(tx.on_ack(Ack::new(a, true)), Some(1));
        let third = tx
            .encode(Some(&section(&frames, 2, 1)), None, 1200)
            .expect("encode");
        assert!(third.bytes.len() < second.bytes.len() / 2);
        // A receiver that lost the reference refuses the packet instead of guessing.
        let mut lost = PoseReceiver::new(v);
        lost.decode(&first.bytes, false, 1).expect("first decodes");
        assert_eq!(
            lost.decode(&third.bytes, false, 1),
            Err(StreamError::MissingReference(1))
        );
        // One that received nothing cannot place a short sequence number at all.
        assert_eq!(
            PoseReceiver::new(v).decode(&third.bytes, false, 1),
            Err(StreamError::Corrupt(
                "short sequence number before any packet"
            ))
        );
        rx.decode(&third.bytes, false, 1).expect("decodes");
        assert_eq!(
            tx.on_ack(Ack::new(0xFFF, false)),
            None,
            "unknown acknowledgements are ignored"
        );
    }

    /// The synthetic avatar with the velocities an OpenXR runtime reports, acknowledged
    /// `lag` packets later: the mean packet size, and the velocities decoded exactly.
    fn velocity_packets(lag: usize, with_velocity: bool) -> f64 {
        let frames = avatar(2000);
        let v = volume();
        let tracks: Vec<Vec<(i64, crate::xr::Pose)>> = (0..3)
            .map(|d| {
                frames
                    .iter()
                    .enumerate()
                    .map(|(i, f)| (i as i64 * 11_111_111, f[d]))
                    .collect()
            })
            .collect();
        let mut tx = PoseSender::new(v);
        let mut rx = PoseReceiver::new(v);
        let mut acks = VecDeque::new();
        let mut total = 0;
        let range = 1..frames.len() - 1;
        for i in range.clone() {
            while acks.front().is_some_and(|(due, _)| *due <= i) {
                if let Some((_, a)) = acks.pop_front() {
                    tx.on_ack(Ack::new(a, true));
                }
            }
            let time = i as i64 * 11_111_111;
            let samples = (0..3u8)
                .map(|d| {
                    let velocity = crate::xr::synthetic::velocity_at(
                        &tracks[usize::from(d)],
                        time,
                        11_111_111,
                    )
                    .filter(|_| with_velocity);
                    let sample = PoseSample {
                        pose: frames[i][usize::from(d)],
                        time,
                        flags: PoseFlags::ALL,
                        linear_velocity: velocity.map(|v| v.0),
                        angular_velocity: velocity.map(|v| v.1),
                    };
                    let device = Device::from_index(d).expect("device");
                    StreamSample::from_sample(device, &sample, None, &v)
                        .expect("valid")
                        .0
                })
                .collect();
            let section = Section { source: 1, samples };
            let enc = tx
                .encode(Some(&section), Some(Ack::new(i as u64, true)), 1200)
                .expect("encode");
            let d = rx.decode(&enc.bytes, false, 1).expect("decode");
            assert_eq!(d.sections, enc.sent);
            if let Some(a) = rx.take_ack() {
                acks.push_back((i + lag, a));
            }
            total += enc.bytes.len();
        }
        total as f64 / range.len() as f64
    }

    /// Velocities cost a few bytes a 3-point packet, not the 36 of six raw 16-bit
    /// components per device.
    #[test]
    fn velocities_are_coded_against_the_references() {
        for lag in [1, 2, 4] {
            let without = velocity_packets(lag, false);
            let with = velocity_packets(lag, true);
            eprintln!(
                "ack after {lag} packets: {without:.1} B without velocities, {with:.1} B with"
            );
            assert!(with - without < 10.0, "{with} against {without}");
        }
    }
}
