//! Relaying avatars with work linear in peers: each source's section is encoded once per
//! *reference set* and the same bits go to every receiver holding that set.
//!
//! A [`RelaySource`] numbers the frames of one source (a peer whose devices the host
//! relays) the same for every receiver and keeps the last [`HISTORY`] of them as they
//! went out. A [`RelaySender`] is one link's sending side: it remembers which frames of
//! which source each of its packets carried and which of those the receiver acknowledged,
//! names for a source the newest acknowledged frames as references (as a client's
//! [`super::stream::PoseSender`] does with packets), and asks the source for the section
//! coded against them. The source codes each reference set once per frame and keeps the
//! bits; in steady state the receivers acknowledge the same few frames, so a tick costs a
//! few encodes per source plus, per receiver, a header, the concatenation of the sections
//! and an acknowledgement.
//!
//! A frame holds every device of its source (devices unchanged since the frame before
//! cost a few bits), so whichever frame a receiver acknowledged last it holds the
//! source's newest state as of then, and a receiver that acknowledged the newest frame
//! needs nothing more. Its exact poses (the host's own devices) are quantised toward the
//! prediction of the first reference set it is coded against, and from then on it is
//! that quantised frame for every receiver.

use std::collections::{BTreeMap, VecDeque};

use super::bits::BitWriter;
use super::quantize::Volume;
use super::stream::{
    write_ack, write_header, write_section, write_source, Ack, Kept, Naming, Refs, Section,
    StreamError, StreamSample, HISTORY, MAX_PREVIOUS_GAP, MAX_REFERENCE_AGE, MAX_SECTIONS,
    SHORT_SEQ_LEAD,
};

/// The references of a section by age: frames from the section's frame back to the
/// newest reference, from it to the previous and from that to the earlier one (zeros
/// for none). Sections of one frame coded against equal keys are equal bits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct RefKey {
    /// Frames from the newest reference to the section's frame (0: none).
    pub age: u64,
    /// Frames from the previous reference to the newest (0: none).
    pub gap: u64,
    /// Frames from the earlier reference to the previous (0: none).
    pub gap2: u64,
}

/// How many frames older than its own best references a receiver takes a reference set
/// already encoded for others: a frame or two of prediction costs a few bits, a set of
/// its own a whole encode.
pub const SHARE_SLACK: u64 = 2;

/// Most bytes reserved up front for a relay packet (a path's datagrams are about 1200
/// bytes; a larger bound than that grows as needed).
const MAX_PACKET_CAPACITY: usize = 1500;

#[derive(Clone, Debug)]
struct Frame {
    number: i64,
    samples: Vec<StreamSample>,
    kept: Vec<Kept>,
    /// Whether `samples` are as they go out (no exact poses left to quantise).
    canonical: bool,
}

/// The frames of one relayed source and the sections of its newest frame encoded so far
/// (see the module docs).
#[derive(Clone, Debug)]
pub struct RelaySource {
    source: u16,
    /// Frame `n` in slot `n mod HISTORY`.
    slots: Vec<Option<Frame>>,
    newest: Option<i64>,
    /// The number the next frame gets when it follows the newest directly.
    next: i64,
    /// The newest frame's sections, by reference set: the source id and the section.
    cache: Vec<(RefKey, BitWriter)>,
    /// Writers of earlier frames' sections, cleared, for the next ones (no allocation per
    /// section in the steady state).
    spare: Vec<BitWriter>,
    encodes: u64,
}

impl RelaySource {
    /// A source with no frames yet.
    pub fn new(source: u16) -> Self {
        RelaySource {
            source,
            slots: vec![None; HISTORY],
            newest: None,
            next: 0,
            cache: Vec::new(),
            spare: Vec::new(),
            encodes: 0,
        }
    }

    /// The source's peer id.
    pub fn source(&self) -> u16 {
        self.source
    }

    /// The newest frame's number.
    pub fn newest(&self) -> Option<i64> {
        self.newest
    }

    /// Sections encoded so far (one per frame and reference set it went out against).
    pub fn encodes(&self) -> u64 {
        self.encodes
    }

    /// Adds the source's state now as a new frame `advance` (at least 1) frames after the
    /// newest: the sender's own frame step, so that predictions in frames stay uniform in
    /// time. `samples` hold at most one sample per device, in device order. Returns its
    /// number.
    pub fn push(&mut self, samples: Vec<StreamSample>, advance: u64) -> i64 {
        let advance = advance.clamp(1, HISTORY as u64) as i64;
        let number = self.next + advance - 1;
        self.next = number + 1;
        self.newest = Some(number);
        self.recycle_sections();
        let kept = Kept::all(&samples);
        let canonical = samples.iter().all(|s| s.exact.is_none());
        if let Some(slot) = self
            .slots
            .get_mut(number.rem_euclid(HISTORY as i64) as usize)
        {
            *slot = Some(Frame {
                number,
                samples,
                kept,
                canonical,
            });
        }
        number
    }

    /// Forgets every frame (the source left); numbering goes on past every reference, so
    /// a receiver's acknowledgements of old frames are never used again.
    pub fn retire(&mut self) {
        self.slots.iter_mut().for_each(|s| *s = None);
        self.recycle_sections();
        self.newest = None;
        self.next += HISTORY as i64;
    }

    fn frame(&self, number: i64) -> Option<&Frame> {
        self.slots
            .get(number.rem_euclid(HISTORY as i64) as usize)?
            .as_ref()
            .filter(|f| f.number == number)
    }

    /// Whether frame `number` is held.
    pub fn holds(&self, number: i64) -> bool {
        self.frame(number).is_some()
    }

    fn refs(&self, newest: i64, key: RefKey) -> Refs<'_> {
        if key.age == 0 {
            return Refs::none();
        }
        let kept = |n: i64| self.frame(n).map(|f| f.kept.as_slice());
        let last = newest - key.age as i64;
        let previous = last - key.gap as i64;
        Refs {
            age: key.age,
            gap: key.gap,
            gap2: key.gap2,
            last_ack: None,
            last: kept(last),
            previous: kept(previous).filter(|_| key.gap > 0),
            earlier: kept(previous - key.gap2 as i64).filter(|_| key.gap2 > 0),
        }
    }

    /// The newest frame's section against `key` (whose frames must be held): `1`, the
    /// source and the section, encoded on the first request for this key and kept.
    pub fn section(&mut self, key: RefKey, volume: &Volume) -> Result<&BitWriter, StreamError> {
        if let Some(i) = self.cache.iter().position(|(k, _)| *k == key) {
            return Ok(&self.cache[i].1);
        }
        let newest = self
            .newest
            .ok_or(StreamError::Corrupt("no frame to send"))?;
        let mut w = self.spare.pop().unwrap_or_default();
        let frame = self
            .frame(newest)
            .ok_or(StreamError::Corrupt("no frame to send"))?;
        let refs = self.refs(newest, key);
        let canonical = if frame.canonical {
            None
        } else {
            Some(
                frame
                    .samples
                    .iter()
                    .map(|s| s.as_sent(refs.reference(s.device), volume))
                    .collect::<Result<Vec<_>, _>>()?,
            )
        };
        let section = Section {
            source: self.source,
            samples: canonical.clone().unwrap_or_else(|| frame.samples.clone()),
        };
        w.write_bool(true);
        write_source(&mut w, self.source);
        write_section(
            &mut w,
            &section,
            &refs,
            volume,
            Naming::Explicit { frame: newest },
        )?;
        if let Some(samples) = canonical {
            let slot = newest.rem_euclid(HISTORY as i64) as usize;
            if let Some(Some(frame)) = self.slots.get_mut(slot) {
                frame.kept = Kept::all(&samples);
                frame.samples = samples;
                frame.canonical = true;
            }
        }
        self.encodes += 1;
        self.cache.push((key, w));
        Ok(&self.cache[self.cache.len() - 1].1)
    }

    /// Moves the newest frame's sections to the spare writers, cleared.
    fn recycle_sections(&mut self) {
        for (_, mut w) in self.cache.drain(..) {
            w.clear();
            self.spare.push(w);
        }
    }

    /// A reference set already encoded for the newest frame that `usable` accepts and
    /// that is at most [`SHARE_SLACK`] frames older than `best` (and has a previous
    /// reference when `best` has): the youngest such, or `best`.
    fn shared(&self, best: RefKey, usable: impl Fn(RefKey) -> bool) -> RefKey {
        self.cache
            .iter()
            .map(|(k, _)| *k)
            .filter(|k| {
                *k == best
                    || (k.age > 0
                        && k.age <= best.age + SHARE_SLACK
                        && (k.gap > 0 || best.gap == 0)
                        && usable(*k))
            })
            .min_by_key(|k| (k.age, *k != best))
            .unwrap_or(best)
    }

    fn samples(&self) -> usize {
        self.newest
            .and_then(|n| self.frame(n))
            .map_or(0, |f| f.samples.len())
    }
}

/// The frames of one source a receiver acknowledged: the newest, and a bit per frame for
/// the [`HISTORY`] before it.
#[derive(Clone, Copy, Debug, Default)]
struct Acked {
    newest: i64,
    /// Bit `i`: frame `newest − i` acknowledged.
    mask: u64,
}

impl Acked {
    fn add(&mut self, frame: i64) {
        if self.mask == 0 || frame > self.newest {
            let shift = if self.mask == 0 {
                64
            } else {
                frame - self.newest
            };
            self.mask = if shift >= 64 { 0 } else { self.mask << shift };
            self.newest = frame;
        }
        let back = self.newest - frame;
        if back < 64 {
            self.mask |= 1 << back;
        }
    }

    /// The acknowledged frames before `before`, newest first.
    fn before(&self, before: i64) -> impl Iterator<Item = i64> + '_ {
        let mut mask = self.mask;
        std::iter::from_fn(move || loop {
            if mask == 0 {
                return None;
            }
            let back = mask.trailing_zeros();
            mask &= mask - 1;
            let frame = self.newest - i64::from(back);
            if frame < before {
                return Some(frame);
            }
        })
    }

    fn has(&self, frame: i64) -> bool {
        let back = self.newest - frame;
        (0..64).contains(&back) && self.mask >> back & 1 == 1
    }
}

#[derive(Clone, Debug)]
struct Sent {
    seq: u64,
    acked: bool,
    /// The frames the packet carried, by source.
    frames: Vec<(u16, i64)>,
}

/// A packet built by [`RelaySender::encode`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RelayEncoded {
    /// The packet.
    pub bytes: Vec<u8>,
    /// Its full sequence number.
    pub seq: u64,
    /// How many of the given sources it holds (the first ones; the rest did not fit).
    pub sections: usize,
    /// Device samples in those sections.
    pub samples: usize,
}

/// One link's sending side of relayed poses (see the module docs): packets with
/// explicit sources, sections from [`RelaySource`]s.
#[derive(Clone, Debug)]
pub struct RelaySender {
    volume: Volume,
    next_seq: u64,
    history: VecDeque<Sent>,
    acked: BTreeMap<u16, Acked>,
}

impl RelaySender {
    /// A sender for poses inside `volume` (which both sides must share).
    pub fn new(volume: Volume) -> Self {
        RelaySender {
            volume,
            next_seq: 0,
            history: VecDeque::with_capacity(HISTORY),
            acked: BTreeMap::new(),
        }
    }

    /// Takes in an acknowledgement from the other side (the last packet it received):
    /// every frame that packet carried is the receiver's now. Returns the packet's full
    /// sequence number when it is one this sender remembers.
    pub fn on_ack(&mut self, ack: Ack) -> Option<u64> {
        let mask = (1u64 << ack.bits()) - 1;
        let sent = self
            .history
            .iter_mut()
            .rev()
            .find(|s| s.seq & mask == u64::from(ack.seq) & mask)?;
        sent.acked = true;
        for &(source, frame) in &sent.frames {
            self.acked.entry(source).or_default().add(frame);
        }
        Some(sent.seq)
    }

    /// The newest frame of `source` the receiver acknowledged.
    pub fn acked_frame(&self, source: u16) -> Option<i64> {
        self.acked
            .get(&source)
            .filter(|a| a.mask != 0)
            .map(|a| a.newest)
    }

    /// The references for `source`'s newest frame: the newest acknowledged frame the
    /// source still holds at most [`MAX_REFERENCE_AGE`] old, the newest such one before
    /// it at most [`MAX_PREVIOUS_GAP`] earlier, and the newest before that one likewise.
    pub fn refs(&self, source: &RelaySource) -> RefKey {
        let (Some(newest), Some(acked)) = (source.newest(), self.acked.get(&source.source)) else {
            return RefKey::default();
        };
        let reach = (MAX_REFERENCE_AGE + 2 * MAX_PREVIOUS_GAP) as i64;
        let mut holding = acked
            .before(newest)
            .take_while(|&n| n >= newest - reach)
            .filter(|&n| source.holds(n));
        let Some(last) = holding
            .next()
            .filter(|&n| newest - n <= MAX_REFERENCE_AGE as i64)
        else {
            return RefKey::default();
        };
        let previous = holding
            .next()
            .filter(|&n| last - n <= MAX_PREVIOUS_GAP as i64);
        let earlier =
            previous.and_then(|p| holding.next().filter(|&n| p - n <= MAX_PREVIOUS_GAP as i64));
        RefKey {
            age: (newest - last) as u64,
            gap: previous.map_or(0, |p| (last - p) as u64),
            gap2: match (previous, earlier) {
                (Some(p), Some(e)) => (p - e) as u64,
                _ => 0,
            },
        }
    }

    /// Builds the next packet: the newest frame of each of `sources` (in order, as many
    /// as fit in `max_bytes`, sources without frames skipped), then `ack` for the other
    /// direction.
    pub fn encode(
        &mut self,
        sources: &mut [&mut RelaySource],
        ack: Option<Ack>,
        max_bytes: usize,
    ) -> Result<RelayEncoded, StreamError> {
        let seq = self.next_seq;
        // The short form is safe once the receiver acknowledged a packet at most
        // SHORT_SEQ_LEAD before this one (see `PoseSender::encode`).
        let short = self
            .history
            .iter()
            .rev()
            .any(|s| s.acked && seq - s.seq <= SHORT_SEQ_LEAD);
        // The packet's one allocation: it is handed over whole.
        let mut w = BitWriter::with_capacity(max_bytes.min(MAX_PACKET_CAPACITY));
        write_header(&mut w, seq, short, true);
        // The end of the section list and the acknowledgement (explicit form).
        let tail = 1 + ack.map_or(1, |a| 2 + a.bits() as usize);
        // The oldest record's list is reused once the history is full.
        let mut frames = match self.history.len() == HISTORY {
            true => self
                .history
                .pop_front()
                .map(|s| s.frames)
                .unwrap_or_default(),
            false => Vec::new(),
        };
        frames.clear();
        let mut samples = 0;
        for source in sources.iter_mut() {
            let Some(newest) = source.newest() else {
                continue;
            };
            if frames.len() == MAX_SECTIONS {
                break;
            }
            let key = match self.acked.get(&source.source()) {
                Some(acked) => source.shared(self.refs(source), |k| {
                    let last = newest - k.age as i64;
                    let previous = last - k.gap as i64;
                    let held = |n: i64| acked.has(n) && source.holds(n);
                    held(last)
                        && (k.gap == 0 || held(previous))
                        && (k.gap2 == 0 || held(previous - k.gap2 as i64))
                }),
                None => RefKey::default(),
            };
            let count = source.samples();
            let bits = source.section(key, &self.volume)?;
            if (w.bit_len() + bits.bit_len() + tail).div_ceil(8) > max_bytes {
                break;
            }
            w.append(bits);
            frames.push((source.source(), newest));
            samples += count;
        }
        w.write_bool(false);
        write_ack(&mut w, ack, None);
        self.next_seq += 1;
        let sections = frames.len();
        self.history.push_back(Sent {
            seq,
            acked: false,
            frames,
        });
        Ok(RelayEncoded {
            bytes: w.into_bytes(),
            seq,
            sections,
            samples,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xr::quantize::{MAX_ANGLE_ERROR_DEG, MAX_POSITION_ERROR_M};
    use crate::xr::stream::PoseReceiver;
    use crate::xr::synthetic::{avatar, Rng};
    use crate::xr::{Device, PoseFlags, PoseSample};

    fn samples(frames: &[[crate::xr::Pose; 3]], i: usize, exact: bool) -> Vec<StreamSample> {
        let v = Volume::default();
        (0..3u8)
            .map(|d| {
                let sample = PoseSample {
                    pose: frames[i][usize::from(d)],
                    time: 1_000_000_000 + i as i64 * 11_111_111,
                    flags: PoseFlags::ALL,
                    linear_velocity: None,
                    angular_velocity: None,
                };
                let device = Device::from_index(d).expect("device");
                let mut s = StreamSample::from_sample(device, &sample, None, &v)
                    .expect("valid")
                    .0;
                if !exact {
                    s.exact = None;
                }
                s
            })
            .collect()
    }

    #[test]
    fn acked_frames_track_a_window() {
        let mut a = Acked::default();
        assert!(!a.has(0));
        a.add(10);
        a.add(8);
        a.add(12);
        assert!(a.has(10) && a.has(8) && a.has(12) && !a.has(11) && !a.has(9));
        a.add(100);
        assert!(a.has(100) && !a.has(12));
        a.add(30);
        assert!(!a.has(30), "more than the window back");
        assert_eq!(a.newest, 100);
    }

    /// Receivers acknowledging at different delays, over loss, duplication and
    /// reordering: every receiver decodes exactly the source's canonical frames, each
    /// source frame is encoded once per reference set, not once per receiver.
    #[test]
    fn receivers_share_sections_and_decode_exactly() {
        let frames = avatar(400);
        let v = Volume::default();
        let mut sources = [RelaySource::new(1), RelaySource::new(9)];
        let receivers = 12;
        let mut senders: Vec<RelaySender> = (0..receivers).map(|_| RelaySender::new(v)).collect();
        let mut rxs: Vec<PoseReceiver> = (0..receivers).map(|_| PoseReceiver::new(v)).collect();
        let mut rng = Rng(0x5EED_0FAB);
        // (due step, receiver, bytes) and (due step, receiver, ack).
        let mut packets: Vec<(usize, usize, Vec<u8>)> = Vec::new();
        let mut acks: Vec<(usize, usize, u64)> = Vec::new();
        let (mut decoded, mut relayed) = (0usize, 0usize);
        for i in 0..frames.len() {
            // Source 1 is the host's own (exact poses), source 9 a client relayed.
            sources[0].push(samples(&frames, i, true), 1);
            sources[1].push(samples(&frames, (i + 50) % frames.len(), false), 1);
            for (r, sender) in senders.iter_mut().enumerate() {
                let mut chosen: Vec<&mut RelaySource> = sources.iter_mut().collect();
                let enc = sender.encode(&mut chosen, None, 1200).expect("encode");
                assert_eq!(enc.sections, 2);
                relayed += enc.sections;
                // Receivers 0-3 clean, the rest lossy, duplicating, late.
                if r < 4 {
                    packets.push((i, r, enc.bytes));
                } else if rng.unit() > -0.6 {
                    let due = i + (rng.next_u64() % 3) as usize;
                    if rng.unit() > 0.8 {
                        packets.push((due + 1, r, enc.bytes.clone()));
                    }
                    packets.push((due, r, enc.bytes));
                }
            }
            let (due, later): (Vec<_>, Vec<_>) = packets.drain(..).partition(|(t, _, _)| *t <= i);
            packets = later;
            for (_, r, bytes) in due {
                match rxs[r].decode(&bytes, true, 0) {
                    Ok(d) => {
                        decoded += 1;
                        for (section, source) in d.sections.iter().zip(&sources) {
                            // What arrives is the source's frame as it went out, the
                            // same for every receiver.
                            let time = section.samples[0].time;
                            let frame = source
                                .slots
                                .iter()
                                .flatten()
                                .find(|f| f.samples[0].time == time)
                                .expect("a frame of the source");
                            assert_eq!(frame.samples, section.samples);
                        }
                        if let Some(a) = rxs[r].take_ack() {
                            // Receiver r's acknowledgements take r % 4 steps back.
                            acks.push((i + r % 4, r, a));
                        }
                    }
                    Err(StreamError::Stale | StreamError::Duplicate) => {}
                    Err(e) => panic!("receiver {r}, step {i}: {e}"),
                }
            }
            let (due, later): (Vec<_>, Vec<_>) = acks.drain(..).partition(|(t, _, _)| *t <= i);
            acks = later;
            for (_, r, a) in due {
                senders[r].on_ack(Ack::new(a, true));
            }
        }
        assert!(decoded > 3000, "{decoded}");
        // Canonical frames are within the error bounds of the truth.
        let n = frames.len() - 1;
        let last = sources[0].frame(n as i64).expect("newest");
        for (s, truth) in last.samples.iter().zip(&frames[n]) {
            let got = s.pose.to_pose(&v);
            assert!(got.position.distance(truth.position) <= MAX_POSITION_ERROR_M);
            assert!(got.orientation.angle_deg(truth.orientation) <= MAX_ANGLE_ERROR_DEG);
        }
        // Lossy receivers acknowledge sets of their own, but the four clean ones (and the
        // lossy ones whenever they hold a set already encoded) share: fewer encodes than
        // sections sent.
        let encodes: u64 = sources.iter().map(RelaySource::encodes).sum();
        assert!(
            (encodes as f64) < relayed as f64 * 0.75,
            "{encodes} encodes for {relayed} sections"
        );
    }

    /// Receivers in three groups, each group acknowledging alike (a round trip of one,
    /// two and five frames): each frame of each source is encoded three times, whatever
    /// the number of receivers, and every receiver decodes it.
    #[test]
    fn a_section_is_encoded_once_per_reference_set() {
        let frames = avatar(120);
        let v = Volume::default();
        for receivers in [3usize, 12, 30] {
            let mut sources = [RelaySource::new(4), RelaySource::new(5)];
            let mut senders: Vec<RelaySender> =
                (0..receivers).map(|_| RelaySender::new(v)).collect();
            let mut rxs: Vec<PoseReceiver> = (0..receivers).map(|_| PoseReceiver::new(v)).collect();
            let delay = |r: usize| [1usize, 2, 5][r % 3];
            let mut acks: Vec<(usize, usize, u64)> = Vec::new();
            let mut before = 0;
            for i in 0..frames.len() {
                for source in &mut sources {
                    source.push(samples(&frames, i, false), 1);
                }
                let (due, later): (Vec<_>, Vec<_>) = acks.drain(..).partition(|(t, _, _)| *t <= i);
                acks = later;
                for (_, r, a) in due {
                    senders[r].on_ack(Ack::new(a, true));
                }
                for r in 0..receivers {
                    let mut chosen: Vec<&mut RelaySource> = sources.iter_mut().collect();
                    let enc = senders[r].encode(&mut chosen, None, 1200).expect("encode");
                    let d = rxs[r].decode(&enc.bytes, true, 0).expect("decodes");
                    assert_eq!(d.sections.len(), 2);
                    if let Some(a) = rxs[r].take_ack() {
                        acks.push((i + delay(r), r, a));
                    }
                }
                let encodes: u64 = sources.iter().map(RelaySource::encodes).sum();
                // Once every group acknowledges (after the slowest round trip), one
                // encode per group and source; before, the absolute one is shared too.
                let expected = if i > 6 {
                    3 * 2
                } else {
                    (encodes - before) as usize
                };
                assert_eq!(
                    (encodes - before) as usize,
                    expected,
                    "{receivers} receivers, frame {i}"
                );
                assert!(encodes - before <= 6);
                before = encodes;
            }
        }
    }

    /// Relayed packets cut short or with a bit flipped are refused and change nothing;
    /// the real stream carries on.
    #[test]
    fn hostile_relayed_packets_change_nothing() {
        let frames = avatar(60);
        let v = Volume::default();
        let mut sources = [RelaySource::new(2), RelaySource::new(300)];
        let mut tx = RelaySender::new(v);
        let mut rx = PoseReceiver::new(v);
        let mut packets = Vec::new();
        for i in 0..60 {
            sources[0].push(samples(&frames, i, true), 1);
            sources[1].push(samples(&frames, 59 - i, false), 2);
            let mut all: Vec<&mut RelaySource> = sources.iter_mut().collect();
            let enc = tx.encode(&mut all, None, 1200).expect("encode");
            if i < 30 {
                rx.decode(&enc.bytes, true, 0).expect("valid");
                if let Some(a) = rx.take_ack() {
                    tx.on_ack(Ack::new(a, false));
                }
            }
            packets.push(enc.bytes);
        }
        let before = format!("{rx:?}");
        let mut rng = Rng(0xBAD_5EED);
        for p in &packets[30..] {
            for cut in 0..p.len() {
                let mut probe = rx.clone();
                if probe.decode(&p[..cut], true, 0).is_err() {
                    assert_eq!(
                        format!("{probe:?}"),
                        before,
                        "a refused packet changed state"
                    );
                }
            }
        }
        for _ in 0..5_000 {
            let mut p = packets[30 + (rng.next_u64() % 30) as usize].clone();
            let at = (rng.next_u64() as usize) % p.len();
            p[at] ^= 1 << (rng.next_u64() % 8);
            let mut probe = rx.clone();
            if probe.decode(&p, true, 0).is_err() {
                assert_eq!(
                    format!("{probe:?}"),
                    before,
                    "a refused packet changed state"
                );
            }
        }
        for p in &packets[30..] {
            rx.decode(p, true, 0).expect("still decodes");
        }
    }
}
