//! Target `pose_packet`: the pose channel's datagrams (first byte `0x80..=0xBF`) through
//! one `PoseReceiver`, in order, as a session's pose link takes them: the acknowledgement
//! goes to this side's `PoseSender`, every decoded sample into the jitter buffer of its
//! (source, device), which is then rendered. (Clock messages, `0xC0..`, are parsed by the
//! crate-private `net::poses` hub: two fixed-length layouts, not fuzzed here.)
//!
//! Header bit 0: sections name their source (a client receiving from the host); otherwise
//! they are the sender's own, peer `header >> 1` (the host receiving from a client).

use std::collections::BTreeMap;
use std::sync::OnceLock;

use theta_net::xr::stream::{
    PoseReceiver, PoseSender, Section, StreamError, StreamSample, CLOCK_MESSAGE_TAG, MAX_SECTIONS,
    POSE_PACKET_TAG,
};
use theta_net::xr::{Device, JitterBuffer, JitterConfig, PoseFlags, PoseSample, Volume};

use super::{fixture, input, Outcome};

/// Header bit: sections name their source.
pub const EXPLICIT_SOURCES: u8 = 1;
/// Time between two records' arrivals, nanoseconds (a 90 Hz stream).
pub const ARRIVAL_STEP_NS: i64 = 11_111_111;
/// The time of the first arrival, nanoseconds.
pub const START_NS: i64 = 1_000_000_000;

/// The fixture avatar's first `count` packets' samples for `source`: head and both hands,
/// one packet every [`ARRIVAL_STEP_NS`].
pub fn avatar_sections(count: usize, source: u16) -> Vec<Section> {
    let volume = Volume::default();
    let frames = theta_net::xr::synthetic::avatar(count);
    frames
        .iter()
        .enumerate()
        .map(|(i, frame)| Section {
            source,
            samples: (0..3u8)
                .map(|d| {
                    let device = Device::from_index(d).expect("head and hands");
                    let sample = PoseSample {
                        pose: frame[usize::from(d)],
                        time: START_NS + i as i64 * ARRIVAL_STEP_NS,
                        flags: PoseFlags::ALL,
                        linear_velocity: None,
                        angular_velocity: None,
                    };
                    StreamSample::from_sample(device, &sample, None, &volume)
                        .expect("the avatar is valid")
                        .0
                })
                .collect(),
        })
        .collect()
}

/// This side's sender, after sending three packets (so acknowledgements can match).
fn sender() -> PoseSender {
    static SENDER: OnceLock<PoseSender> = OnceLock::new();
    SENDER
        .get_or_init(|| {
            let mut sender = PoseSender::new(Volume::default());
            for section in avatar_sections(3, fixture::CLIENT_PEER) {
                sender
                    .encode(Some(&section), None, 1200)
                    .expect("the avatar encodes");
            }
            sender
        })
        .clone()
}

/// Checks a decoded packet's sections against the receiver's promises.
fn check_sections(sections: &[Section], explicit: bool, implicit: u16, volume: &Volume) {
    assert!(sections.len() <= if explicit { MAX_SECTIONS } else { 1 });
    for (i, section) in sections.iter().enumerate() {
        assert!(
            sections[..i].iter().all(|s| s.source != section.source),
            "a source twice"
        );
        if !explicit {
            assert_eq!(
                section.source, implicit,
                "an implicit section of another peer"
            );
        }
        assert!(section.samples.len() <= Device::COUNT);
        for (j, sample) in section.samples.iter().enumerate() {
            if j > 0 {
                assert!(
                    section.samples[j - 1].device < sample.device,
                    "devices out of order"
                );
            }
            assert!(sample.pose.fits(volume), "a pose outside the volume");
            assert!(
                sample.exact.is_none(),
                "a decoded sample with an exact pose"
            );
        }
    }
}

/// Pose packets through one receiver (see the module docs).
pub fn pose_packet(data: &[u8]) -> Outcome {
    let (header, records) = input::split(data);
    let explicit = header & EXPLICIT_SOURCES != 0;
    let implicit = u16::from(header >> 1);
    let volume = Volume::default();
    let mut receiver = PoseReceiver::new(volume);
    let mut sender = sender();
    let mut buffers: BTreeMap<(u16, Device), JitterBuffer> = BTreeMap::new();
    let mut outcome = Outcome::default();
    for (i, packet) in records.enumerate() {
        let now = START_NS + i as i64 * ARRIVAL_STEP_NS;
        if packet
            .first()
            .is_none_or(|&b| b & CLOCK_MESSAGE_TAG != POSE_PACKET_TAG)
        {
            // Not the pose stream's (a clock message, or not the pose channel at all).
            outcome.refuse();
            continue;
        }
        let saved = receiver.clone();
        let decoded = match receiver.decode(packet, explicit, implicit) {
            Ok(decoded) => decoded,
            Err(error) => {
                assert_eq!(
                    format!("{saved:?}"),
                    format!("{receiver:?}"),
                    "a refused packet ({error}) changed the receiver"
                );
                outcome.refuse();
                continue;
            }
        };
        check_sections(&decoded.sections, explicit, implicit, &volume);
        if !decoded.sections.is_empty() {
            let kept = receiver.clone();
            assert_eq!(
                receiver.decode(packet, explicit, implicit),
                Err(StreamError::Duplicate),
                "a packet decoded twice"
            );
            assert_eq!(format!("{kept:?}"), format!("{receiver:?}"));
        }
        if let Some(ack) = decoded.ack {
            sender.on_ack(ack);
        }
        let mut samples = 0;
        for section in &decoded.sections {
            for sample in &section.samples {
                samples += 1;
                let buffer = buffers
                    .entry((section.source, sample.device))
                    .or_insert_with(|| JitterBuffer::new(JitterConfig::default()));
                buffer.push(sample.to_sample(&volume), now);
                if let Some(rendered) = buffer.sample(now) {
                    let pose = rendered.pose;
                    assert!(pose.position.is_finite() && pose.orientation.is_finite());
                    assert!(
                        (pose.orientation.norm() - 1.0).abs() < 1e-3,
                        "rendered a non-unit orientation"
                    );
                }
            }
        }
        outcome.accept(packet.len(), samples * std::mem::size_of::<StreamSample>());
    }
    outcome
}
