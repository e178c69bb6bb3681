//! Targets `snapshot_chunk`, `delta_frame` and `state_datagram`: messages a client's
//! replica applies, the first two as they come off the reliable stream, the third as a
//! state datagram goes through the session (header, codec envelope,
//! `wire::decode_state_datagram`, sequence numbers, `Replica::apply_frame_in`).
//!
//! Header bits 0..=2 choose the replica's state ([`fixture::KNOWS_REGISTRY`],
//! [`fixture::PRIMED`], [`fixture::OWNER`]); each record is one message. After every
//! message the replica's promises are checked ([`apply_checked`]).

use theta_net::net::acks::ReceivedSeqs;
use theta_net::registry::MAX_COMPONENT_TYPES;
use theta_net::replica::MAX_SNAPSHOT_CHUNKS;
use theta_net::wire::codec::{Codec, DictionarySet, FrameFormat, FrameHeader, MAX_DATAGRAM_BYTES};
use theta_net::wire::{self, datagram_header};
use theta_net::{Applied, Event, EventKind, Replica, ReplicaError, ReplicaStats, WorldStats};

use super::{fixture, input, Outcome};

/// `snapshot_chunk` header bit: apply with `Replica::apply` (any message kind) rather than
/// `apply_snapshot_chunk` / `apply_delta`.
pub const ANY_KIND: u8 = 8;
/// `state_datagram` header bit: the client holds the fixture dictionary.
pub const HOLDS_DICTIONARY: u8 = 16;

/// Everything a refused message must leave as it was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Observed {
    hash: u64,
    world: WorldStats,
    tick: u64,
    snapshot_tick: u64,
    progress: Option<(u32, u32)>,
    pending: usize,
    stats: ReplicaStats,
}

fn observe(replica: &Replica) -> Observed {
    Observed {
        hash: replica.state_hash(),
        world: replica.world().stats(),
        tick: replica.tick(),
        snapshot_tick: replica.snapshot_tick(),
        progress: replica.snapshot_progress(),
        pending: replica.pending_events(),
        stats: replica.stats(),
    }
}

/// Applies one message with `apply` and checks what the replica promises:
/// - refused: nothing changed but the `rejected` counter;
/// - a duplicate or stale message: nothing changed but its counter;
/// - applied: every value fits its layout, every event is well-formed, the registry and
///   the snapshot being assembled stay within their bounds.
///
/// Returns the output for the engine (event payload bytes plus one [`Event`] each), `None`
/// when refused.
pub fn apply_checked(
    replica: &mut Replica,
    apply: impl FnOnce(&mut Replica) -> Result<Applied, ReplicaError>,
) -> Option<usize> {
    let before = observe(replica);
    match apply(replica) {
        Err(error) => {
            let expected = Observed {
                stats: ReplicaStats {
                    rejected: before.stats.rejected + 1,
                    ..before.stats
                },
                ..before
            };
            assert_eq!(
                observe(replica),
                expected,
                "a refused message ({error}) changed the replica"
            );
            None
        }
        Ok(applied @ (Applied::DuplicateChunk | Applied::StaleChunk | Applied::StaleFrame)) => {
            let after = observe(replica);
            assert_eq!(
                Observed {
                    stats: after.stats,
                    ..before
                },
                after,
                "{applied:?} changed the replica"
            );
            Some(0)
        }
        Ok(_) => {
            check_state(replica);
            Some(drain_events(replica))
        }
    }
}

/// Every stored value fits its layout; the registry and the snapshot assembly are bounded.
fn check_state(replica: &Replica) {
    let world = replica.world();
    let registry = world.registry();
    assert!(
        registry.len() <= MAX_COMPONENT_TYPES,
        "registry over its bound"
    );
    for descriptor in registry.descriptors() {
        let entries = world
            .component_entries(descriptor.id)
            .expect("a registered type has a column");
        for (entity, value) in entries {
            assert!(entity.is_valid(), "stored an invalid entity id");
            assert!(world.is_alive(entity), "a value of a dead entity");
            assert!(
                descriptor.layout.accepts(value.len()),
                "{} holds a value of {} bytes",
                descriptor.name,
                value.len()
            );
        }
    }
    if let Some((received, total)) = replica.snapshot_progress() {
        assert!(received < total, "a complete snapshot still assembling");
        assert!(
            total <= MAX_SNAPSHOT_CHUNKS,
            "snapshot total over its bound"
        );
    }
    assert!(replica.tick() >= replica.snapshot_tick());
}

/// Polls every event, checks it, and returns the bytes handed to the engine.
fn drain_events(replica: &mut Replica) -> usize {
    let registry = replica.world().registry().clone();
    let events = replica.poll_events(usize::MAX);
    let mut bytes = 0;
    for event in events.iter() {
        assert!(event.entity.is_valid(), "event of an invalid entity");
        match event.kind {
            EventKind::Insert | EventKind::Update => {
                let descriptor = registry
                    .get(event.component)
                    .expect("an event's component is registered");
                assert!(
                    descriptor.layout.accepts(event.data.len()),
                    "event value of {} bytes for {}",
                    event.data.len(),
                    descriptor.name
                );
            }
            EventKind::Remove => assert!(event.data.is_empty()),
            EventKind::Spawn | EventKind::Despawn => {
                assert_eq!(event.component.0, 0);
                assert!(event.data.is_empty());
            }
        }
        bytes += event.data.len() + std::mem::size_of::<Event<'_>>();
    }
    bytes
}

/// Snapshot chunks applied with `Replica::apply_snapshot_chunk` (or `apply` with
/// [`ANY_KIND`]).
pub fn snapshot_chunk(data: &[u8]) -> Outcome {
    stream_messages(data, |replica, bytes| replica.apply_snapshot_chunk(bytes))
}

/// Delta frames applied with `Replica::apply_delta` (or `apply` with [`ANY_KIND`]).
pub fn delta_frame(data: &[u8]) -> Outcome {
    stream_messages(data, |replica, bytes| replica.apply_delta(bytes))
}

fn stream_messages(
    data: &[u8],
    strict: fn(&mut Replica, &[u8]) -> Result<Applied, ReplicaError>,
) -> Outcome {
    let (header, records) = input::split(data);
    let mut replica = fixture::replica(header);
    let mut outcome = Outcome::default();
    for bytes in records {
        let applied = apply_checked(&mut replica, |r| {
            if header & ANY_KIND != 0 {
                r.apply(bytes)
            } else {
                strict(r, bytes)
            }
        });
        match applied {
            Some(output) => outcome.accept(bytes.len(), output),
            None => outcome.refuse(),
        }
    }
    outcome
}

/// Checks a decoded envelope against its header: the declared length, and the body itself
/// for a raw frame.
pub fn check_envelope(frame: &[u8], message: &[u8], max_len: usize) {
    assert!(message.len() <= max_len, "decoded past the kind's bound");
    let header = FrameHeader::parse(frame).expect("a decoded frame has a header");
    assert_eq!(
        message.len() as u64,
        header.declared_len,
        "length not as declared"
    );
    if header.format == FrameFormat::Raw {
        assert_eq!(message, header.body, "a raw frame decoded to other bytes");
    }
}

/// State datagrams as a client receives them: the header (`wire::datagram_header`:
/// sequence number, acknowledgement ranges, read as hostile), then the body's codec
/// envelope (with the fixture dictionary when [`HOLDS_DICTIONARY`]), bounded by
/// [`MAX_DATAGRAM_BYTES`], `wire::decode_state_datagram`, duplicate suppression by sequence
/// number, and the frame applied with `Replica::apply_frame_in`. No envelope is an
/// acknowledgement alone.
pub fn state_datagram(data: &[u8]) -> Outcome {
    let (header, records) = input::split(data);
    let mut replica = fixture::replica(header);
    let empty = DictionarySet::new();
    let dictionaries = if header & HOLDS_DICTIONARY != 0 {
        fixture::dictionary_set()
    } else {
        &empty
    };
    let mut received = ReceivedSeqs::default();
    let mut outcome = Outcome::default();
    for bytes in records {
        // The session routes on the first byte: 0x10 is a state datagram (0x80.. pose
        // packets go to the pose target; anything else is malformed).
        let Ok((head, envelope)) = datagram_header::read(bytes) else {
            outcome.refuse();
            continue;
        };
        let acks = head.acks();
        assert!(
            acks.len() <= datagram_header::MAX_ACK_RANGES,
            "ranges past the bound"
        );
        assert!(
            acks.iter().all(|&(first, last)| first <= last),
            "an inverted range"
        );
        assert!(
            bytes.len() - envelope.len() <= datagram_header::max_len(acks),
            "a header longer than its bound"
        );
        if envelope.is_empty() {
            // An acknowledgement alone: its number joins the ranges, unacknowledged.
            received.insert_silently(head.seq);
            outcome.accept(bytes.len(), 0);
            continue;
        }
        // Envelopes of the independent formats only (0 raw, 1 zstd, 2 dictionary).
        if !matches!(envelope.first(), Some(0..=2)) {
            outcome.refuse();
            continue;
        }
        let Ok(message) = dictionaries.decompress(envelope, MAX_DATAGRAM_BYTES) else {
            outcome.refuse();
            continue;
        };
        check_envelope(envelope, &message, MAX_DATAGRAM_BYTES);
        let Ok(frame) = wire::decode_state_datagram(&message) else {
            outcome.refuse();
            continue;
        };
        if !received.insert(head.seq) {
            // A duplicate: dropped before the replica sees it.
            outcome.accept(bytes.len(), message.len());
            continue;
        }
        match apply_checked(&mut replica, |r| r.apply_frame_in(frame, message.len())) {
            Some(events) => outcome.accept(bytes.len(), message.len() + events),
            None => outcome.refuse(),
        }
    }
    outcome
}
