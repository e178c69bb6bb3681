//! Hostile bytes at every decoder entry point: `wire::decode`, `Replica::apply`,
//! `Replica::apply_snapshot_chunk`, `Replica::apply_delta` and the wire helpers
//! (`read_descriptors`, `read_entities`, `BatchView::parse`, `RemoveView::parse`).
//!
//! Every refusal must name the right problem and leave the replica exactly as it was
//! (state hash, world stats, ticks, snapshot progress, pending events), counting one more
//! rejected message. Malformed messages are built with the generated FlatBuffers builders
//! (`theta_net::wire::fb`) so that each breaks exactly one rule.

use std::collections::{BTreeMap, BTreeSet};

use flatbuffers::{FlatBufferBuilder, ForwardsUOffset, UnionWIPOffset, Vector, WIPOffset};
use proptest::prelude::*;
use theta_net::registry::{MAX_COMPONENT_TYPES, MAX_NAME_BYTES, MAX_VALUE_BYTES};
use theta_net::replica::MAX_SNAPSHOT_CHUNKS;
use theta_net::wire::{
    self, fb, BatchView, Message, RemoveView, WireError, FILE_IDENTIFIER, MAX_MESSAGE_BYTES,
    WIRE_VERSION,
};
use theta_net::{
    Applied, ComponentId, DeltaTracker, EntityId, EventKind, Layout, Registry, RegistryError,
    Replica, ReplicaError, ReplicaStats, World, WorldStats, DEFAULT_MAX_CHUNK_BYTES,
};

const POSE: &str = "test.Pose";
const NAME: &str = "test.Name";
const TAG: &str = "test.Selected";

fn pose() -> ComponentId {
    ComponentId::of_name(POSE)
}

fn name() -> ComponentId {
    ComponentId::of_name(NAME)
}

fn tag() -> ComponentId {
    ComponentId::of_name(TAG)
}

// ---------------------------------------------------------------------------------------
// Raw messages: every field under the test's control.

#[derive(Clone, Debug)]
struct RawDescriptor {
    id: u32,
    name: String,
    kind: u8,
    size: u32,
}

impl RawDescriptor {
    fn of(name: &str, layout: Layout) -> Self {
        let (kind, size) = match layout {
            Layout::Fixed(size) => (0, size),
            Layout::Variable { max } => (1, max),
        };
        RawDescriptor {
            id: ComponentId::of_name(name).0,
            name: name.to_owned(),
            kind,
            size,
        }
    }
}

#[derive(Clone, Debug, Default)]
struct RawBatch {
    component: u32,
    /// Required by the schema; `None` leaves it out.
    entities: Option<Vec<u64>>,
    /// Required by the schema; `None` leaves it out.
    data: Option<Vec<u8>>,
    lengths: Option<Vec<u32>>,
    inserted: Option<Vec<u8>>,
}

impl RawBatch {
    fn new(component: ComponentId, entities: &[u64], data: &[u8]) -> Self {
        RawBatch {
            component: component.0,
            entities: Some(entities.to_vec()),
            data: Some(data.to_vec()),
            lengths: None,
            inserted: None,
        }
    }

    fn lengths(mut self, lengths: &[u32]) -> Self {
        self.lengths = Some(lengths.to_vec());
        self
    }

    fn inserted(mut self, bits: &[u8]) -> Self {
        self.inserted = Some(bits.to_vec());
        self
    }
}

#[derive(Clone, Debug, Default)]
struct RawFrame {
    base: u64,
    tick: u64,
    descriptors: Option<Vec<RawDescriptor>>,
    spawns: Option<Vec<u64>>,
    batches: Option<Vec<RawBatch>>,
    /// (component, entities); `None` entities leaves out the required vector.
    removes: Option<Vec<(u32, Option<Vec<u64>>)>>,
    despawns: Option<Vec<u64>>,
}

#[derive(Clone, Debug, Default)]
struct RawChunk {
    tick: u64,
    index: u32,
    total: u32,
    registry_hash: u64,
    descriptors: Option<Vec<RawDescriptor>>,
    entities: Option<Vec<u64>>,
    batches: Option<Vec<RawBatch>>,
}

/// The `Message` around a payload.
#[derive(Clone, Copy, Debug)]
struct Envelope {
    version: u16,
    identifier: Option<&'static str>,
    /// Overrides the payload type the builder would write.
    payload_type: Option<fb::Payload>,
    /// Writes fields equal to their default too (so `Payload::NONE` is written).
    force_defaults: bool,
    /// Leaves the (required) payload out.
    omit_payload: bool,
}

impl Default for Envelope {
    fn default() -> Self {
        Envelope {
            version: WIRE_VERSION,
            identifier: Some(FILE_IDENTIFIER),
            payload_type: None,
            force_defaults: false,
            omit_payload: false,
        }
    }
}

type DescriptorList<'a> = WIPOffset<Vector<'a, ForwardsUOffset<fb::Descriptor<'a>>>>;
type BatchList<'a> = WIPOffset<Vector<'a, ForwardsUOffset<fb::ComponentBatch<'a>>>>;

fn build_descriptors<'a>(
    fbb: &mut FlatBufferBuilder<'a>,
    list: &Option<Vec<RawDescriptor>>,
) -> Option<DescriptorList<'a>> {
    let list = list.as_ref()?;
    let offsets: Vec<_> = list
        .iter()
        .map(|d| {
            let name = fbb.create_string(&d.name);
            fb::Descriptor::create(
                fbb,
                &fb::DescriptorArgs {
                    id: d.id,
                    name: Some(name),
                    layout: fb::LayoutKind(d.kind),
                    size: d.size,
                },
            )
        })
        .collect();
    Some(fbb.create_vector(&offsets))
}

fn build_batches<'a>(
    fbb: &mut FlatBufferBuilder<'a>,
    list: &Option<Vec<RawBatch>>,
) -> Option<BatchList<'a>> {
    let list = list.as_ref()?;
    let offsets: Vec<_> = list
        .iter()
        .map(|b| {
            let entities = b.entities.as_ref().map(|e| fbb.create_vector(e));
            let data = b.data.as_ref().map(|d| fbb.create_vector(d));
            let lengths = b.lengths.as_ref().map(|l| fbb.create_vector(l));
            let inserted = b.inserted.as_ref().map(|i| fbb.create_vector(i));
            // Built by hand: the generated builder panics on a missing required field.
            let start = fbb.start_table();
            fbb.push_slot::<u32>(fb::ComponentBatch::VT_COMPONENT, b.component, 0);
            if let Some(x) = entities {
                fbb.push_slot_always(fb::ComponentBatch::VT_ENTITIES, x);
            }
            if let Some(x) = data {
                fbb.push_slot_always(fb::ComponentBatch::VT_DATA, x);
            }
            if let Some(x) = lengths {
                fbb.push_slot_always(fb::ComponentBatch::VT_LENGTHS, x);
            }
            if let Some(x) = inserted {
                fbb.push_slot_always(fb::ComponentBatch::VT_INSERTED, x);
            }
            let end = fbb.end_table(start);
            WIPOffset::<fb::ComponentBatch>::new(end.value())
        })
        .collect();
    Some(fbb.create_vector(&offsets))
}

fn finish(
    mut fbb: FlatBufferBuilder<'_>,
    kind: fb::Payload,
    payload: WIPOffset<UnionWIPOffset>,
    envelope: Envelope,
) -> Vec<u8> {
    fbb.force_defaults(envelope.force_defaults);
    let start = fbb.start_table();
    fbb.push_slot::<u16>(fb::Message::VT_VERSION, envelope.version, 0);
    fbb.push_slot(
        fb::Message::VT_PAYLOAD_TYPE,
        envelope.payload_type.unwrap_or(kind),
        fb::Payload::NONE,
    );
    if !envelope.omit_payload {
        fbb.push_slot_always(fb::Message::VT_PAYLOAD, payload);
    }
    let end = fbb.end_table(start);
    fbb.finish(
        WIPOffset::<fb::Message>::new(end.value()),
        envelope.identifier,
    );
    fbb.finished_data().to_vec()
}

impl RawFrame {
    fn encode(&self) -> Vec<u8> {
        self.encode_in(Envelope::default())
    }

    fn encode_in(&self, envelope: Envelope) -> Vec<u8> {
        let mut fbb = FlatBufferBuilder::new();
        let descriptors = build_descriptors(&mut fbb, &self.descriptors);
        let spawns = self.spawns.as_ref().map(|s| fbb.create_vector(s));
        let batches = build_batches(&mut fbb, &self.batches);
        let removes = self.removes.as_ref().map(|list| {
            let offsets: Vec<_> = list
                .iter()
                .map(|(component, entities)| {
                    let entities = entities.as_ref().map(|e| fbb.create_vector(e));
                    let start = fbb.start_table();
                    fbb.push_slot::<u32>(fb::RemoveBatch::VT_COMPONENT, *component, 0);
                    if let Some(x) = entities {
                        fbb.push_slot_always(fb::RemoveBatch::VT_ENTITIES, x);
                    }
                    let end = fbb.end_table(start);
                    WIPOffset::<fb::RemoveBatch>::new(end.value())
                })
                .collect();
            fbb.create_vector(&offsets)
        });
        let despawns = self.despawns.as_ref().map(|d| fbb.create_vector(d));
        let frame = fb::DeltaFrame::create(
            &mut fbb,
            &fb::DeltaFrameArgs {
                base_tick: self.base,
                tick: self.tick,
                descriptors,
                spawns,
                batches,
                removes,
                despawns,
                owner_seq: 0,
            },
        );
        finish(
            fbb,
            fb::Payload::DeltaFrame,
            frame.as_union_value(),
            envelope,
        )
    }
}

impl RawChunk {
    fn encode(&self) -> Vec<u8> {
        self.encode_in(Envelope::default())
    }

    fn encode_in(&self, envelope: Envelope) -> Vec<u8> {
        let mut fbb = FlatBufferBuilder::new();
        let descriptors = build_descriptors(&mut fbb, &self.descriptors);
        let entities = self.entities.as_ref().map(|e| fbb.create_vector(e));
        let batches = build_batches(&mut fbb, &self.batches);
        let chunk = fb::SnapshotChunk::create(
            &mut fbb,
            &fb::SnapshotChunkArgs {
                tick: self.tick,
                index: self.index,
                total: self.total,
                registry_hash: self.registry_hash,
                descriptors,
                entities,
                batches,
                max_chunk_bytes: 0,
            },
        );
        finish(
            fbb,
            fb::Payload::SnapshotChunk,
            chunk.as_union_value(),
            envelope,
        )
    }
}

// ---------------------------------------------------------------------------------------
// The replica under attack, and the "nothing changed" check.

struct Fixture {
    host: World,
    replica: Replica,
    /// Entities alive on both sides: `a` holds pose, name and tag; `b` pose; `c` is bare.
    a: EntityId,
    b: EntityId,
    c: EntityId,
    /// Tick of the frame the replica applied last.
    tick: u64,
}

fn registry() -> Registry {
    let mut registry = Registry::new();
    registry.register(POSE, Layout::Fixed(12)).unwrap();
    registry
        .register(NAME, Layout::Variable { max: 16 })
        .unwrap();
    registry.register(TAG, Layout::Fixed(0)).unwrap();
    registry
}

/// A host and a replica that applied its snapshot and one frame, events left pending.
fn fixture() -> Fixture {
    let mut host = World::default();
    for d in registry().descriptors() {
        host.register(&d.name, d.layout).unwrap();
    }
    let a = host.spawn().unwrap();
    let b = host.spawn().unwrap();
    let c = host.spawn().unwrap();
    host.set(a, pose(), &[1; 12]).unwrap();
    host.set(a, name(), b"alpha").unwrap();
    host.set(b, pose(), &[2; 12]).unwrap();
    let snapshot = host.snapshot(DEFAULT_MAX_CHUNK_BYTES);
    let mut replica = Replica::new();
    for chunk in &snapshot.chunks {
        replica.apply_snapshot_chunk(&chunk.bytes).unwrap();
    }
    let mut tracker = DeltaTracker::starting_at(snapshot.tick, snapshot.described.clone());
    host.advance();
    host.set(a, pose(), &[3; 12]).unwrap();
    host.set(a, tag(), &[]).unwrap();
    let frame = tracker.diff(&host).unwrap();
    assert_eq!(
        replica.apply_delta(&frame.encode()),
        Ok(Applied::DeltaFrame)
    );
    assert_eq!(replica.state_hash(), host.state_hash());
    assert!(replica.pending_events() > 0);
    Fixture {
        tick: frame.tick,
        host,
        replica,
        a,
        b,
        c,
    }
}

/// Everything a refused message must leave as it was.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Observed {
    hash: u64,
    world: WorldStats,
    tick: u64,
    snapshot_tick: u64,
    progress: Option<(u32, u32)>,
    pending: usize,
    stats: ReplicaStats,
    types: usize,
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
        types: replica.world().registry().len(),
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Entry {
    Apply,
    Chunk,
    Delta,
}

fn call(replica: &mut Replica, entry: Entry, bytes: &[u8]) -> Result<Applied, ReplicaError> {
    match entry {
        Entry::Apply => replica.apply(bytes),
        Entry::Chunk => replica.apply_snapshot_chunk(bytes),
        Entry::Delta => replica.apply_delta(bytes),
    }
}

/// Asserts that `entry` refuses `bytes` with an error `check` accepts and leaves the
/// replica as it was, with one more rejected message.
#[track_caller]
fn refuse(
    replica: &mut Replica,
    entry: Entry,
    bytes: &[u8],
    what: &str,
    check: &dyn Fn(&ReplicaError) -> bool,
) -> ReplicaError {
    let before = observe(replica);
    let err = match call(replica, entry, bytes) {
        Ok(applied) => panic!("{what} via {entry:?}: accepted as {applied:?}"),
        Err(err) => err,
    };
    assert!(
        check(&err),
        "{what} via {entry:?}: unexpected error {err:?}"
    );
    let mut expected = before;
    expected.stats.rejected += 1;
    assert_eq!(
        observe(replica),
        expected,
        "{what} via {entry:?}: the replica changed"
    );
    err
}

/// A message refused the same way by `apply` and by the entry point for its kind (and by
/// the other one: either it is the wrong kind or the same error).
#[track_caller]
fn refuse_everywhere(
    replica: &mut Replica,
    bytes: &[u8],
    what: &str,
    check: &dyn Fn(&ReplicaError) -> bool,
) -> ReplicaError {
    let err = refuse(replica, Entry::Apply, bytes, what, check);
    let kind = wire::decode(bytes).ok().map(|m| m.kind());
    for entry in [Entry::Chunk, Entry::Delta] {
        let expected = match entry {
            Entry::Chunk => "snapshot chunk",
            _ => "delta frame",
        };
        match kind {
            Some(kind) if kind != expected => {
                refuse(replica, entry, bytes, what, &|e| {
                    *e == ReplicaError::Wire(WireError::UnexpectedPayload {
                        expected,
                        found: kind,
                    })
                });
            }
            _ => {
                let again = refuse(replica, entry, bytes, what, check);
                assert_eq!(again, err, "{what}: entry points disagree");
            }
        }
    }
    err
}

fn wire_err(expected: WireError) -> impl Fn(&ReplicaError) -> bool {
    move |e| *e == ReplicaError::Wire(expected.clone())
}

fn is_wire(check: impl Fn(&WireError) -> bool) -> impl Fn(&ReplicaError) -> bool {
    move |e| matches!(e, ReplicaError::Wire(w) if check(w))
}

fn bad_batch(component: ComponentId, reason: &'static str) -> impl Fn(&ReplicaError) -> bool {
    move |e| {
        matches!(e, ReplicaError::Wire(WireError::BadBatch { component: c, reason: r })
            if *c == component && r.contains(reason))
    }
}

fn bad_entity(what: &'static str, index: usize, reason: &'static str) -> WireError {
    WireError::BadEntity {
        what,
        index,
        reason,
    }
}

fn descriptor_err(check: impl Fn(&RegistryError) -> bool) -> impl Fn(&ReplicaError) -> bool {
    move |e| matches!(e, ReplicaError::Wire(WireError::Descriptor(d)) if check(d))
}

/// A valid frame newer than anything the fixture replica holds.
fn valid_frame(f: &Fixture) -> RawFrame {
    RawFrame {
        base: f.tick,
        tick: f.tick + 1,
        descriptors: None,
        spawns: Some(vec![f.c.0 + 100]),
        batches: Some(vec![
            RawBatch::new(pose(), &[f.b.0], &[9; 12]).inserted(&[0])
        ]),
        removes: Some(vec![(name().0, Some(vec![f.a.0]))]),
        despawns: Some(vec![f.c.0]),
    }
}

/// A valid first chunk of a two-chunk snapshot newer than the fixture's.
fn valid_chunk(f: &Fixture) -> RawChunk {
    RawChunk {
        tick: f.tick + 5,
        index: 0,
        total: 2,
        registry_hash: registry().hash(),
        descriptors: Some(
            registry()
                .descriptors()
                .iter()
                .map(|d| RawDescriptor::of(&d.name, d.layout))
                .collect(),
        ),
        entities: Some(vec![f.c.0]),
        batches: Some(vec![RawBatch::new(pose(), &[f.a.0, f.b.0], &[7; 24])]),
    }
}

fn frame_with(f: &Fixture, edit: impl FnOnce(&mut RawFrame)) -> Vec<u8> {
    let mut frame = valid_frame(f);
    edit(&mut frame);
    frame.encode()
}

fn chunk_with(f: &Fixture, edit: impl FnOnce(&mut RawChunk)) -> Vec<u8> {
    let mut chunk = valid_chunk(f);
    edit(&mut chunk);
    chunk.encode()
}

// ---------------------------------------------------------------------------------------
// The builders themselves produce what the replica accepts.

#[test]
fn raw_builders_produce_valid_messages() {
    let mut f = fixture();
    let frame = valid_frame(&f).encode();
    assert!(matches!(wire::decode(&frame), Ok(Message::DeltaFrame(_))));
    assert_eq!(f.replica.apply_delta(&frame), Ok(Applied::DeltaFrame));
    assert_eq!(f.replica.world().get(f.b, pose()), Some(&[9u8; 12][..]));
    assert_eq!(f.replica.world().get(f.a, name()), None);
    assert!(!f.replica.world().is_alive(f.c));
    assert!(f.replica.world().is_alive(EntityId(f.c.0 + 100)));

    let mut f = fixture();
    let chunk = valid_chunk(&f).encode();
    assert!(matches!(
        wire::decode(&chunk),
        Ok(Message::SnapshotChunk(_))
    ));
    assert_eq!(
        f.replica.apply_snapshot_chunk(&chunk),
        Ok(Applied::SnapshotChunk { complete: false })
    );
    assert_eq!(f.replica.snapshot_progress(), Some((1, 2)));

    // The library's own encoding and the raw builder agree on what a frame means.
    let delta = f.host.delta_since(0).unwrap();
    let mut replica = Replica::new();
    replica.apply(&delta.encode()).unwrap();
    assert_eq!(replica.state_hash(), f.host.state_hash());
}

// ---------------------------------------------------------------------------------------
// Framing: size, identifier, version, payload kind.

#[test]
fn empty_and_short_input_is_not_theta() {
    let mut f = fixture();
    for len in 0..8 {
        let bytes = &b"\x0c\0\0\0THTA"[..len];
        assert_eq!(wire::decode(bytes).unwrap_err(), WireError::NotTheta);
        refuse_everywhere(
            &mut f.replica,
            bytes,
            "short input",
            &wire_err(WireError::NotTheta),
        );
    }
}

#[test]
fn message_larger_than_the_limit_is_refused_before_parsing() {
    let mut f = fixture();
    // A valid frame padded past the limit: refused on size alone.
    let mut bytes = valid_frame(&f).encode();
    bytes.resize(MAX_MESSAGE_BYTES + 1, 0);
    let expected = WireError::TooLarge {
        len: MAX_MESSAGE_BYTES + 1,
        max: MAX_MESSAGE_BYTES,
    };
    assert_eq!(wire::decode(&bytes).unwrap_err(), expected);
    refuse_everywhere(
        &mut f.replica,
        &bytes,
        "oversized message",
        &wire_err(expected),
    );
    // At the limit exactly, the same bytes are only trailing padding: accepted.
    bytes.truncate(MAX_MESSAGE_BYTES);
    assert!(wire::decode(&bytes).is_ok());
}

#[test]
fn wrong_or_missing_file_identifier_is_not_theta() {
    let mut f = fixture();
    for identifier in [Some("THTB"), Some("thta"), Some("\0\0\0\0"), None] {
        let envelope = Envelope {
            identifier,
            ..Envelope::default()
        };
        for bytes in [
            valid_frame(&f).encode_in(envelope),
            valid_chunk(&f).encode_in(envelope),
        ] {
            assert_eq!(wire::decode(&bytes).unwrap_err(), WireError::NotTheta);
            refuse_everywhere(
                &mut f.replica,
                &bytes,
                &format!("identifier {identifier:?}"),
                &wire_err(WireError::NotTheta),
            );
        }
    }
}

#[test]
fn other_wire_versions_are_refused() {
    let mut f = fixture();
    for version in [0, 2, WIRE_VERSION + 1, u16::MAX] {
        let envelope = Envelope {
            version,
            ..Envelope::default()
        };
        for bytes in [
            valid_frame(&f).encode_in(envelope),
            valid_chunk(&f).encode_in(envelope),
        ] {
            let expected = WireError::Version { found: version };
            assert_eq!(wire::decode(&bytes).unwrap_err(), expected);
            refuse_everywhere(
                &mut f.replica,
                &bytes,
                &format!("version {version}"),
                &wire_err(expected),
            );
            assert!(wire::decode(&bytes)
                .unwrap_err()
                .to_string()
                .contains(&version.to_string()));
        }
    }
}

#[test]
fn unknown_or_missing_payload_is_refused() {
    let mut f = fixture();
    let unknown = WireError::UnexpectedPayload {
        expected: "a known message",
        found: "unknown payload",
    };
    // A payload type this build does not know (a future kind), and NONE written
    // explicitly next to a payload table.
    for (payload_type, force_defaults) in [(fb::Payload(99), false), (fb::Payload(200), false)]
        .into_iter()
        .chain([(fb::Payload::NONE, true)])
    {
        let bytes = valid_frame(&f).encode_in(Envelope {
            payload_type: Some(payload_type),
            force_defaults,
            ..Envelope::default()
        });
        assert_eq!(wire::decode(&bytes).unwrap_err(), unknown);
        refuse_everywhere(
            &mut f.replica,
            &bytes,
            "unknown payload",
            &wire_err(unknown.clone()),
        );
    }
    // NONE left implicit next to a payload: an inconsistent union.
    let bytes = valid_frame(&f).encode_in(Envelope {
        payload_type: Some(fb::Payload::NONE),
        ..Envelope::default()
    });
    assert!(matches!(wire::decode(&bytes), Err(WireError::Malformed(_))));
    refuse_everywhere(
        &mut f.replica,
        &bytes,
        "payload without type",
        &is_wire(|w| matches!(w, WireError::Malformed(_))),
    );
    // The required payload left out.
    let bytes = valid_frame(&f).encode_in(Envelope {
        omit_payload: true,
        ..Envelope::default()
    });
    let err = wire::decode(&bytes).unwrap_err();
    assert!(
        matches!(err, WireError::Malformed(ref m) if m.contains("payload")),
        "{err}"
    );
    refuse_everywhere(
        &mut f.replica,
        &bytes,
        "missing payload",
        &is_wire(|w| matches!(w, WireError::Malformed(_))),
    );
}

#[test]
fn payload_of_the_wrong_kind_is_refused_by_the_specific_entry_points() {
    let mut f = fixture();
    let chunk = valid_chunk(&f).encode();
    let frame = valid_frame(&f).encode();
    let err = refuse(
        &mut f.replica,
        Entry::Delta,
        &chunk,
        "chunk as delta",
        &|_| true,
    );
    assert_eq!(
        err,
        ReplicaError::Wire(WireError::UnexpectedPayload {
            expected: "delta frame",
            found: "snapshot chunk"
        })
    );
    assert!(err
        .to_string()
        .contains("expected a delta frame, got snapshot chunk"));
    let err = refuse(
        &mut f.replica,
        Entry::Chunk,
        &frame,
        "delta as chunk",
        &|_| true,
    );
    assert_eq!(
        err,
        ReplicaError::Wire(WireError::UnexpectedPayload {
            expected: "snapshot chunk",
            found: "delta frame"
        })
    );
    // A payload type that claims one kind over a table of the other is not accepted as
    // that kind (the verifier or the content checks refuse it).
    for (bytes, kind) in [
        (
            valid_frame(&f).encode_in(Envelope {
                payload_type: Some(fb::Payload::SnapshotChunk),
                ..Envelope::default()
            }),
            "frame table typed as chunk",
        ),
        (
            valid_chunk(&f).encode_in(Envelope {
                payload_type: Some(fb::Payload::DeltaFrame),
                ..Envelope::default()
            }),
            "chunk table typed as frame",
        ),
    ] {
        refuse(&mut f.replica, Entry::Apply, &bytes, kind, &|_| true);
    }
}

// ---------------------------------------------------------------------------------------
// Truncation and garbage.

/// Every strict prefix of `bytes` is refused, through every entry point.
fn refuse_every_prefix(f: &mut Fixture, bytes: &[u8], what: &str) {
    for len in 0..bytes.len() {
        let prefix = &bytes[..len];
        let what = format!("{what} truncated to {len} of {} bytes", bytes.len());
        assert!(wire::decode(prefix).is_err(), "{what}: decoded");
        refuse_everywhere(&mut f.replica, prefix, &what, &|e| {
            matches!(
                e,
                ReplicaError::Wire(WireError::NotTheta | WireError::Malformed(_))
            )
        });
    }
}

#[test]
fn truncated_snapshot_chunks_are_refused_at_every_length() {
    let mut f = fixture();
    f.host.advance();
    f.host.set(f.b, name(), b"a longer name").unwrap();
    let snapshot = f.host.snapshot(DEFAULT_MAX_CHUNK_BYTES);
    assert_eq!(snapshot.chunks.len(), 1);
    let bytes = snapshot.chunks[0].bytes.clone();
    refuse_every_prefix(&mut f, &bytes, "snapshot chunk");
    // The whole chunk still applies afterwards.
    assert_eq!(
        f.replica.apply_snapshot_chunk(&bytes),
        Ok(Applied::SnapshotChunk { complete: true })
    );
    assert_eq!(f.replica.state_hash(), f.host.state_hash());
}

#[test]
fn truncated_delta_frames_are_refused_at_every_length() {
    let mut f = fixture();
    let mut tracker =
        DeltaTracker::starting_at(f.tick, f.host.registry().descriptors().iter().map(|d| d.id));
    f.host.advance();
    let d = f.host.spawn().unwrap();
    f.host.set(d, name(), b"delta").unwrap();
    f.host.set(f.b, pose(), &[5; 12]).unwrap();
    f.host.remove(f.a, tag()).unwrap();
    f.host.despawn(f.c).unwrap();
    let delta = tracker.diff(&f.host).unwrap();
    let bytes = delta.encode();
    refuse_every_prefix(&mut f, &bytes, "delta frame");
    let bytes = valid_frame(&f).encode();
    refuse_every_prefix(&mut f, &bytes, "raw delta frame");
    assert_eq!(
        f.replica.apply_delta(&delta.encode()),
        Ok(Applied::DeltaFrame)
    );
    assert_eq!(f.replica.state_hash(), f.host.state_hash());
}

#[test]
fn random_garbage_is_refused() {
    let mut f = fixture();
    let mut state = 0x1234_5678_9abc_def0u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for round in 0..500 {
        let len = (next() % 300) as usize;
        let mut bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        if round % 2 == 0 && len >= 8 {
            // Past the identifier check, into the verifier.
            bytes[4..8].copy_from_slice(FILE_IDENTIFIER.as_bytes());
            bytes[0..4].copy_from_slice(&((next() % (len as u64)) as u32).to_le_bytes());
        }
        refuse_everywhere(&mut f.replica, &bytes, &format!("garbage {round}"), &|e| {
            matches!(e, ReplicaError::Wire(_))
        });
    }
}

// ---------------------------------------------------------------------------------------
// Snapshot chunk headers.

#[test]
fn chunk_headers_out_of_range_are_refused() {
    let mut f = fixture();
    let tick = f.tick + 5;
    let cases = [
        (tick, 0, 0, "total 0"),
        (tick, 2, 2, "index = total"),
        (tick, 7, 2, "index > total"),
        (tick, u32::MAX, 1, "index u32::MAX"),
        (0, 0, 1, "tick 0"),
        (tick, 0, MAX_SNAPSHOT_CHUNKS + 1, "too many chunks"),
        (tick, 0, u32::MAX, "total u32::MAX"),
    ];
    for (tick, index, total, what) in cases {
        let bytes = chunk_with(&f, |c| {
            c.tick = tick;
            c.index = index;
            c.total = total;
        });
        refuse_everywhere(&mut f.replica, &bytes, what, &|e| {
            *e == ReplicaError::BadChunkHeader { index, total, tick }
        });
    }
}

#[test]
fn chunks_of_one_snapshot_must_agree() {
    let mut f = fixture();
    let first = valid_chunk(&f);
    assert_eq!(
        f.replica.apply_snapshot_chunk(&first.encode()),
        Ok(Applied::SnapshotChunk { complete: false })
    );
    let tick = first.tick;
    let second = RawChunk {
        index: 1,
        descriptors: None,
        entities: None,
        batches: Some(vec![RawBatch::new(name(), &[f.a.0], b"x").lengths(&[1])]),
        ..first.clone()
    };
    let bytes = RawChunk {
        total: 3,
        ..second.clone()
    }
    .encode();
    refuse_everywhere(&mut f.replica, &bytes, "other total", &|e| {
        *e == ReplicaError::InconsistentSnapshot {
            tick,
            index: 1,
            what: "chunk total",
            expected: 2,
            found: 3,
        }
    });
    let bytes = RawChunk {
        registry_hash: first.registry_hash ^ 1,
        ..second.clone()
    }
    .encode();
    refuse_everywhere(&mut f.replica, &bytes, "other registry hash", &|e| {
        *e == ReplicaError::InconsistentSnapshot {
            tick,
            index: 1,
            what: "registry hash",
            expected: first.registry_hash,
            found: first.registry_hash ^ 1,
        }
    });
    // The consistent second chunk completes the snapshot.
    assert_eq!(
        f.replica.apply_snapshot_chunk(&second.encode()),
        Ok(Applied::SnapshotChunk { complete: true })
    );
    assert_eq!(f.replica.snapshot_tick(), tick);
}

#[test]
fn delta_frame_ticks_out_of_order_are_refused() {
    let mut f = fixture();
    for (base, tick) in [(10, 9), (u64::MAX, 0), (0, 0), (f.tick + 2, f.tick + 1)] {
        let bytes = frame_with(&f, |fr| {
            fr.base = base;
            fr.tick = tick;
        });
        refuse_everywhere(
            &mut f.replica,
            &bytes,
            &format!("base {base} tick {tick}"),
            &|e| *e == ReplicaError::BadFrameTicks { base, tick },
        );
    }
}

// ---------------------------------------------------------------------------------------
// Descriptors.

/// Runs a descriptor list through a frame and a chunk (both refused with `check`) and
/// straight through `wire::read_descriptors`.
fn refuse_descriptors(
    f: &mut Fixture,
    list: Vec<RawDescriptor>,
    what: &str,
    check: &dyn Fn(&ReplicaError) -> bool,
) {
    let frame = frame_with(f, |fr| fr.descriptors = Some(list.clone()));
    refuse_everywhere(&mut f.replica, &frame, &format!("frame: {what}"), check);
    let chunk = chunk_with(f, |c| c.descriptors = Some(list.clone()));
    refuse_everywhere(&mut f.replica, &chunk, &format!("chunk: {what}"), check);
}

#[test]
fn descriptor_id_must_be_the_fnv1a_of_its_name() {
    let mut f = fixture();
    let mut wrong = RawDescriptor::of("test.Other", Layout::Fixed(4));
    wrong.id ^= 1;
    let expected_id = ComponentId::of_name("test.Other");
    refuse_descriptors(
        &mut f,
        vec![wrong.clone()],
        "wrong id",
        &descriptor_err(|d| {
            *d == RegistryError::IdMismatch {
                id: ComponentId(expected_id.0 ^ 1),
                name: "test.Other".into(),
                expected: expected_id,
            }
        }),
    );
    // The id of a registered type under another name.
    let mut stolen = RawDescriptor::of("test.Thief", Layout::Fixed(12));
    stolen.id = pose().0;
    refuse_descriptors(
        &mut f,
        vec![stolen],
        "registered id, other name",
        &descriptor_err(|d| matches!(d, RegistryError::IdMismatch { .. })),
    );
}

#[test]
fn descriptor_conflicting_with_the_registry_is_refused() {
    let mut f = fixture();
    for layout in [
        Layout::Fixed(16),
        Layout::Fixed(0),
        Layout::Variable { max: 12 },
    ] {
        refuse_descriptors(
            &mut f,
            vec![RawDescriptor::of(POSE, layout)],
            &format!("pose as {layout}"),
            &descriptor_err(|d| {
                *d == RegistryError::LayoutConflict {
                    name: POSE.into(),
                    registered: Layout::Fixed(12),
                    requested: layout,
                }
            }),
        );
    }
    // A replica built with the engine's registry refuses a conflict before it learned
    // anything from the wire.
    let mut engine = Replica::with_registry(&registry());
    let bytes = RawFrame {
        tick: 1,
        descriptors: Some(vec![RawDescriptor::of(NAME, Layout::Variable { max: 17 })]),
        ..RawFrame::default()
    }
    .encode();
    refuse_everywhere(
        &mut engine,
        &bytes,
        "conflict with the engine registry",
        &descriptor_err(|d| matches!(d, RegistryError::LayoutConflict { .. })),
    );
}

#[test]
fn descriptors_conflicting_within_one_message_are_refused() {
    let mut f = fixture();
    refuse_descriptors(
        &mut f,
        vec![
            RawDescriptor::of("test.New", Layout::Fixed(4)),
            RawDescriptor::of("test.New", Layout::Fixed(8)),
        ],
        "same name, two layouts",
        &descriptor_err(
            |d| matches!(d, RegistryError::LayoutConflict { name, .. } if name == "test.New"),
        ),
    );
    // "costarring" and "liquid" collide under FNV-1a-32.
    assert_eq!(
        ComponentId::of_name("costarring"),
        ComponentId::of_name("liquid")
    );
    refuse_descriptors(
        &mut f,
        vec![
            RawDescriptor::of("costarring", Layout::Fixed(4)),
            RawDescriptor::of("liquid", Layout::Fixed(4)),
        ],
        "two names, one id",
        &descriptor_err(|d| matches!(d, RegistryError::HashCollision { .. })),
    );
    // A duplicate of the same descriptor is harmless.
    let bytes = frame_with(&f, |fr| {
        fr.descriptors = Some(vec![
            RawDescriptor::of("test.New", Layout::Fixed(4)),
            RawDescriptor::of("test.New", Layout::Fixed(4)),
        ])
    });
    assert_eq!(f.replica.apply(&bytes), Ok(Applied::DeltaFrame));
}

#[test]
fn invalid_descriptors_are_refused() {
    let mut f = fixture();
    let long = "x".repeat(MAX_NAME_BYTES + 1);
    type Check = Box<dyn Fn(&RegistryError) -> bool>;
    let cases: Vec<(RawDescriptor, &str, Check)> = vec![
        (
            RawDescriptor::of("", Layout::Fixed(4)),
            "empty name",
            Box::new(
                |d| matches!(d, RegistryError::InvalidName { reason, .. } if reason.contains("empty")),
            ),
        ),
        (
            RawDescriptor::of(&long, Layout::Fixed(4)),
            "long name",
            Box::new(|d| matches!(d, RegistryError::InvalidName { .. })),
        ),
        (
            RawDescriptor::of("test.Var0", Layout::Variable { max: 0 }),
            "variable max 0",
            Box::new(|d| matches!(d, RegistryError::InvalidLayout { .. })),
        ),
        (
            RawDescriptor::of("test.Huge", Layout::Fixed(MAX_VALUE_BYTES + 1)),
            "fixed size over 1 MiB",
            Box::new(|d| matches!(d, RegistryError::InvalidLayout { .. })),
        ),
        (
            RawDescriptor::of("test.HugeVar", Layout::Variable { max: u32::MAX }),
            "variable max over 1 MiB",
            Box::new(|d| matches!(d, RegistryError::InvalidLayout { .. })),
        ),
    ];
    for (descriptor, what, check) in cases {
        refuse_descriptors(&mut f, vec![descriptor], what, &descriptor_err(check));
    }
    for kind in [2u8, 7, 255] {
        let mut descriptor = RawDescriptor::of("test.Kind", Layout::Fixed(4));
        descriptor.kind = kind;
        refuse_descriptors(
            &mut f,
            vec![descriptor],
            &format!("layout kind {kind}"),
            &wire_err(WireError::UnknownLayout {
                name: "test.Kind".into(),
                kind,
            }),
        );
    }
}

#[test]
fn too_many_descriptors_are_refused() {
    let mut f = fixture();
    // One over the limit, checked before any descriptor is looked at.
    let list: Vec<RawDescriptor> = (0..=MAX_COMPONENT_TYPES)
        .map(|i| RawDescriptor::of(&format!("t{i}"), Layout::Fixed(1)))
        .collect();
    refuse_descriptors(
        &mut f,
        list,
        "4097 descriptors",
        &wire_err(WireError::TooMany {
            what: "descriptors",
            count: MAX_COMPONENT_TYPES + 1,
            max: MAX_COMPONENT_TYPES,
        }),
    );
    // More tables than the verifier allows for one message.
    let list: Vec<RawDescriptor> = (0..3 * MAX_COMPONENT_TYPES + 10)
        .map(|_| RawDescriptor::of("t", Layout::Fixed(1)))
        .collect();
    let bytes = frame_with(&f, |fr| fr.descriptors = Some(list));
    refuse_everywhere(
        &mut f.replica,
        &bytes,
        "more tables than the verifier allows",
        &is_wire(|w| matches!(w, WireError::Malformed(_))),
    );
}

#[test]
fn descriptors_that_would_overflow_the_registry_are_refused() {
    let mut registry = registry();
    let mut i = 0;
    while registry.len() < MAX_COMPONENT_TYPES - 2 {
        let _ = registry.register(&format!("fill.{i}"), Layout::Fixed(1));
        i += 1;
    }
    let mut replica = Replica::with_registry(&registry);
    let new: Vec<RawDescriptor> = (0..3)
        .map(|i| RawDescriptor::of(&format!("more.{i}"), Layout::Fixed(1)))
        .collect();
    let bytes = RawFrame {
        tick: 1,
        descriptors: Some(new.clone()),
        ..RawFrame::default()
    }
    .encode();
    refuse_everywhere(
        &mut replica,
        &bytes,
        "registry overflow",
        &wire_err(WireError::TooMany {
            what: "component types",
            count: MAX_COMPONENT_TYPES + 1,
            max: MAX_COMPONENT_TYPES,
        }),
    );
    // Two fit.
    let bytes = RawFrame {
        tick: 1,
        descriptors: Some(new[..2].to_vec()),
        ..RawFrame::default()
    }
    .encode();
    assert_eq!(replica.apply(&bytes), Ok(Applied::DeltaFrame));
    assert_eq!(replica.world().registry().len(), MAX_COMPONENT_TYPES);
}

/// One message may repeat a descriptor (read_descriptors accepts identical duplicates);
/// the type must count once toward the registry limit.
#[test]
fn duplicate_descriptors_count_once_toward_the_registry_limit() {
    let mut registry = registry();
    let mut i = 0;
    while registry.len() < MAX_COMPONENT_TYPES - 1 {
        let _ = registry.register(&format!("fill.{i}"), Layout::Fixed(1));
        i += 1;
    }
    let mut replica = Replica::with_registry(&registry);
    let last = RawDescriptor::of("more.last", Layout::Fixed(1));
    let bytes = RawFrame {
        tick: 1,
        descriptors: Some(vec![last.clone(), last]),
        ..RawFrame::default()
    }
    .encode();
    assert_eq!(replica.apply(&bytes), Ok(Applied::DeltaFrame));
    assert_eq!(replica.world().registry().len(), MAX_COMPONENT_TYPES);
}

// ---------------------------------------------------------------------------------------
// Batches.

/// Runs one batch through a frame and a chunk, both refused with `check`.
fn refuse_batch(
    f: &mut Fixture,
    batch: RawBatch,
    what: &str,
    check: &dyn Fn(&ReplicaError) -> bool,
) {
    let mut in_frame = batch.clone();
    if in_frame.inserted.is_none() {
        let count = in_frame.entities.as_ref().map_or(0, Vec::len);
        in_frame.inserted = Some(vec![0; count.div_ceil(8)]);
    }
    let frame = frame_with(f, |fr| fr.batches = Some(vec![in_frame]));
    refuse_everywhere(&mut f.replica, &frame, &format!("frame: {what}"), check);
    let chunk = chunk_with(f, |c| c.batches = Some(vec![batch]));
    refuse_everywhere(&mut f.replica, &chunk, &format!("chunk: {what}"), check);
}

#[test]
fn batch_of_an_unknown_component_is_refused() {
    let mut f = fixture();
    let unknown = ComponentId::of_name("test.Unknown");
    let a = f.a.0;
    refuse_batch(
        &mut f,
        RawBatch::new(unknown, &[a], &[1, 2, 3, 4]),
        "unknown component",
        &wire_err(WireError::UnknownComponent(unknown)),
    );
    // Described by the same message: accepted.
    let bytes = frame_with(&f, |fr| {
        fr.descriptors = Some(vec![RawDescriptor::of("test.Unknown", Layout::Fixed(4))]);
        fr.batches = Some(vec![
            RawBatch::new(unknown, &[f.a.0], &[1, 2, 3, 4]).inserted(&[1])
        ]);
    });
    assert_eq!(f.replica.apply(&bytes), Ok(Applied::DeltaFrame));
    assert_eq!(
        f.replica.world().get(f.a, unknown),
        Some(&[1u8, 2, 3, 4][..])
    );
}

#[test]
fn fixed_size_batch_data_must_be_count_times_size() {
    let mut f = fixture();
    let (a, b) = (f.a.0, f.b.0);
    for (data_len, what) in [
        (23, "one byte short"),
        (25, "one byte long"),
        (0, "no data"),
        (12, "one value for two"),
    ] {
        refuse_batch(
            &mut f,
            RawBatch::new(pose(), &[a, b], &vec![1; data_len]),
            what,
            &bad_batch(pose(), "data bytes"),
        );
    }
    refuse_batch(
        &mut f,
        RawBatch::new(tag(), &[a], &[0]),
        "tag with a byte",
        &bad_batch(tag(), "data bytes"),
    );
    refuse_batch(
        &mut f,
        RawBatch::new(pose(), &[a], &[1; 12]).lengths(&[12]),
        "lengths for a fixed layout",
        &bad_batch(pose(), "lengths given"),
    );
}

#[test]
fn variable_size_batch_lengths_must_add_up() {
    let mut f = fixture();
    let (a, b) = (f.a.0, f.b.0);
    let cases: Vec<(RawBatch, &str, &str)> = vec![
        (
            RawBatch::new(name(), &[a, b], b"abcd"),
            "no lengths",
            "no lengths",
        ),
        (
            RawBatch::new(name(), &[a, b], b"abcd").lengths(&[4]),
            "one length for two",
            "lengths for",
        ),
        (
            RawBatch::new(name(), &[a, b], b"abcd").lengths(&[1, 1, 2]),
            "three lengths for two",
            "lengths for",
        ),
        (
            RawBatch::new(name(), &[a, b], &[7; 34]).lengths(&[17, 17]),
            "length over max",
            "exceeds the maximum",
        ),
        (
            RawBatch::new(name(), &[a, b], b"abcd").lengths(&[1, 2]),
            "lengths short of data",
            "lengths sum",
        ),
        (
            RawBatch::new(name(), &[a, b], b"abcd").lengths(&[3, 2]),
            "lengths past data",
            "lengths sum",
        ),
        (
            RawBatch::new(name(), &[a, b], b"abcd").lengths(&[u32::MAX, 5]),
            "huge length",
            "exceeds the maximum",
        ),
    ];
    for (batch, what, reason) in cases {
        refuse_batch(&mut f, batch, what, &bad_batch(name(), reason));
    }
}

#[test]
fn insert_bitset_must_match_the_value_count() {
    let mut f = fixture();
    let (a, b) = (f.a.0, f.b.0);
    for bits in [&[][..], &[0, 0][..], &[0xff; 9][..]] {
        let bytes = frame_with(&f, |fr| {
            fr.batches = Some(vec![RawBatch::new(pose(), &[a, b], &[4; 24]).inserted(bits)])
        });
        refuse_everywhere(
            &mut f.replica,
            &bytes,
            &format!("{} bitset bytes for 2 values", bits.len()),
            &bad_batch(pose(), "insert bitset"),
        );
    }
}

#[test]
fn duplicate_or_unordered_batches_are_refused() {
    let mut f = fixture();
    let (a, b) = (f.a.0, f.b.0);
    let p = RawBatch::new(pose(), &[a], &[1; 12]);
    let n = RawBatch::new(name(), &[b], b"n").lengths(&[1]);
    let (low, high) = if pose() < name() { (p, n) } else { (n, p) };
    let unordered = WireError::Unordered {
        what: "component batches",
    };
    for (list, what) in [
        (vec![low.clone(), low.clone()], "same component twice"),
        (vec![high.clone(), low.clone()], "descending components"),
        (
            vec![low.clone(), high.clone(), low.clone()],
            "repeated after another",
        ),
    ] {
        let with_bits: Vec<RawBatch> = list.iter().cloned().map(|b| b.inserted(&[0])).collect();
        let frame = frame_with(&f, |fr| fr.batches = Some(with_bits));
        refuse_everywhere(&mut f.replica, &frame, what, &wire_err(unordered.clone()));
        let chunk = chunk_with(&f, |c| c.batches = Some(list));
        refuse_everywhere(&mut f.replica, &chunk, what, &wire_err(unordered.clone()));
    }
    let unordered = WireError::Unordered {
        what: "remove batches",
    };
    let (lo, hi) = (pose().0.min(name().0), pose().0.max(name().0));
    for (list, what) in [
        (
            vec![(lo, Some(vec![a])), (lo, Some(vec![b]))],
            "same remove twice",
        ),
        (
            vec![(hi, Some(vec![a])), (lo, Some(vec![a]))],
            "descending removes",
        ),
    ] {
        let frame = frame_with(&f, |fr| fr.removes = Some(list));
        refuse_everywhere(&mut f.replica, &frame, what, &wire_err(unordered.clone()));
    }
}

#[test]
fn too_many_batches_are_refused() {
    let mut f = fixture();
    let count = MAX_COMPONENT_TYPES + 1;
    let batches: Vec<RawBatch> = (0..count as u32)
        .map(|i| RawBatch::new(ComponentId(i + 1), &[], &[]))
        .collect();
    let frame = frame_with(&f, |fr| fr.batches = Some(batches.clone()));
    refuse_everywhere(
        &mut f.replica,
        &frame,
        "4097 batches",
        &wire_err(WireError::TooMany {
            what: "component batches",
            count,
            max: MAX_COMPONENT_TYPES,
        }),
    );
    let chunk = chunk_with(&f, |c| c.batches = Some(batches));
    refuse_everywhere(
        &mut f.replica,
        &chunk,
        "4097 chunk batches",
        &wire_err(WireError::TooMany {
            what: "component batches",
            count,
            max: MAX_COMPONENT_TYPES,
        }),
    );
    let removes: Vec<(u32, Option<Vec<u64>>)> =
        (0..count as u32).map(|i| (i + 1, Some(vec![]))).collect();
    let frame = frame_with(&f, |fr| fr.removes = Some(removes));
    refuse_everywhere(
        &mut f.replica,
        &frame,
        "4097 remove batches",
        &wire_err(WireError::TooMany {
            what: "remove batches",
            count,
            max: MAX_COMPONENT_TYPES,
        }),
    );
}

#[test]
fn missing_required_vectors_are_malformed() {
    let mut f = fixture();
    let a = f.a.0;
    let malformed = is_wire(|w| matches!(w, WireError::Malformed(_)));
    let mut no_entities = RawBatch::new(pose(), &[a], &[1; 12]);
    no_entities.entities = None;
    let mut no_data = RawBatch::new(pose(), &[a], &[1; 12]);
    no_data.data = None;
    for (batch, what) in [
        (no_entities, "batch without entities"),
        (no_data, "batch without data"),
    ] {
        refuse_batch(&mut f, batch, what, &malformed);
    }
    let frame = frame_with(&f, |fr| fr.removes = Some(vec![(pose().0, None)]));
    refuse_everywhere(
        &mut f.replica,
        &frame,
        "remove without entities",
        &malformed,
    );
}

// ---------------------------------------------------------------------------------------
// Entity lists.

#[test]
fn invalid_entity_ids_are_refused_in_every_list() {
    let mut f = fixture();
    let (a, b) = (f.a.0, f.b.0);
    // Id 0, and a non-zero id whose counter is 0 (peer 5, counter 0).
    for bad in [0u64, 5 << 48] {
        let invalid = "invalid entity id";
        let cases: Vec<(Vec<u8>, WireError)> = vec![
            (
                frame_with(&f, |fr| fr.spawns = Some(vec![bad])),
                bad_entity("spawns", 0, invalid),
            ),
            (
                frame_with(&f, |fr| fr.despawns = Some(vec![a, bad])),
                bad_entity("despawns", 1, invalid),
            ),
            (
                frame_with(&f, |fr| {
                    fr.batches = Some(vec![RawBatch::new(pose(), &[bad], &[1; 12]).inserted(&[0])])
                }),
                bad_entity("batch entities", 0, invalid),
            ),
            (
                frame_with(&f, |fr| {
                    fr.removes = Some(vec![(pose().0, Some(vec![bad]))])
                }),
                bad_entity("removed entities", 0, invalid),
            ),
            (
                chunk_with(&f, |c| c.entities = Some(vec![bad])),
                bad_entity("snapshot entities", 0, invalid),
            ),
            (
                chunk_with(&f, |c| {
                    c.batches = Some(vec![RawBatch::new(pose(), &[bad, b], &[1; 24])])
                }),
                bad_entity("batch entities", 0, invalid),
            ),
        ];
        for (bytes, expected) in cases {
            refuse_everywhere(
                &mut f.replica,
                &bytes,
                &format!("entity {bad:#x}: {expected}"),
                &wire_err(expected.clone()),
            );
        }
    }
}

#[test]
fn entity_lists_must_be_strictly_ascending() {
    let mut f = fixture();
    let (a, b) = (f.a.0, f.b.0);
    let not_ascending = "entity ids not strictly ascending";
    let cases: Vec<(Vec<u8>, WireError)> = vec![
        (
            frame_with(&f, |fr| fr.spawns = Some(vec![b + 10, b + 9])),
            bad_entity("spawns", 1, not_ascending),
        ),
        (
            frame_with(&f, |fr| fr.spawns = Some(vec![b + 10, b + 10])),
            bad_entity("spawns", 1, not_ascending),
        ),
        (
            frame_with(&f, |fr| fr.despawns = Some(vec![b, a])),
            bad_entity("despawns", 1, not_ascending),
        ),
        (
            frame_with(&f, |fr| {
                fr.batches = Some(vec![RawBatch::new(pose(), &[b, a], &[1; 24]).inserted(&[0])])
            }),
            bad_entity("batch entities", 1, not_ascending),
        ),
        (
            frame_with(&f, |fr| {
                fr.batches = Some(vec![RawBatch::new(name(), &[a, a], b"xy")
                    .lengths(&[1, 1])
                    .inserted(&[0])])
            }),
            bad_entity("batch entities", 1, not_ascending),
        ),
        (
            frame_with(&f, |fr| {
                fr.removes = Some(vec![(pose().0, Some(vec![a, b, b]))])
            }),
            bad_entity("removed entities", 2, not_ascending),
        ),
        (
            chunk_with(&f, |c| c.entities = Some(vec![b, a])),
            bad_entity("snapshot entities", 1, not_ascending),
        ),
    ];
    for (bytes, expected) in cases {
        refuse_everywhere(
            &mut f.replica,
            &bytes,
            &expected.to_string(),
            &wire_err(expected.clone()),
        );
    }
}

/// Refusals carry messages that name the problem (they reach engine logs through the C ABI).
#[test]
fn error_messages_name_the_problem() {
    let mut f = fixture();
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (vec![], "not a Theta message"),
        (
            valid_frame(&f).encode_in(Envelope {
                version: 2,
                ..Envelope::default()
            }),
            "wire version 2 is not supported",
        ),
        (
            chunk_with(&f, |c| c.total = 0),
            "invalid snapshot chunk header: index 0 of 0",
        ),
        (
            frame_with(&f, |fr| fr.spawns = Some(vec![0])),
            "spawns: invalid entity id at entry 0",
        ),
        (
            frame_with(&f, |fr| {
                fr.batches = Some(vec![
                    RawBatch::new(pose(), &[f.a.0], &[1; 11]).inserted(&[0])
                ])
            }),
            "11 data bytes for 1 values of 12 bytes",
        ),
        (
            frame_with(&f, |fr| {
                fr.base = 9;
                fr.tick = 8;
            }),
            "invalid delta frame ticks: base 9, tick 8",
        ),
    ];
    for (bytes, message) in cases {
        let err = f.replica.apply(&bytes).unwrap_err();
        assert!(err.to_string().contains(message), "{err} lacks {message:?}");
    }
}

// ---------------------------------------------------------------------------------------
// Stale and duplicate messages.

/// A frame no newer than the last snapshot is checked whole before it is found stale;
/// chunks of the last complete snapshot, or older than the one being assembled, must be
/// checked the same way: malformed content is refused (and counted), not "ignored".
#[test]
fn stale_or_duplicate_chunks_are_checked_like_frames() {
    let mut f = fixture();
    let done = f.replica.snapshot_tick();
    assert!(done > 0);
    let bad = bad_entity("snapshot entities", 0, "invalid entity id");
    // The reference: a stale frame with a bad id is refused.
    let frame = RawFrame {
        tick: done,
        spawns: Some(vec![0]),
        ..RawFrame::default()
    }
    .encode();
    refuse_everywhere(
        &mut f.replica,
        &frame,
        "stale frame with entity 0",
        &wire_err(bad_entity("spawns", 0, "invalid entity id")),
    );
    // A chunk of the snapshot already complete.
    let chunk = chunk_with(&f, |c| {
        c.tick = done;
        c.entities = Some(vec![0]);
    });
    refuse_everywhere(
        &mut f.replica,
        &chunk,
        "duplicate chunk with entity 0",
        &wire_err(bad.clone()),
    );
    // A chunk older than the snapshot being assembled.
    let newer = valid_chunk(&f);
    assert_eq!(
        f.replica.apply_snapshot_chunk(&newer.encode()),
        Ok(Applied::SnapshotChunk { complete: false })
    );
    let chunk = chunk_with(&f, |c| {
        c.tick = newer.tick - 1;
        c.entities = Some(vec![0]);
    });
    refuse_everywhere(
        &mut f.replica,
        &chunk,
        "stale chunk with entity 0",
        &wire_err(bad.clone()),
    );
    // A chunk index already received of the snapshot being assembled.
    let chunk = chunk_with(&f, |c| c.entities = Some(vec![0]));
    refuse_everywhere(
        &mut f.replica,
        &chunk,
        "repeated chunk index with entity 0",
        &wire_err(bad),
    );
}

// ---------------------------------------------------------------------------------------
// The wire helpers on their own.

fn frame_view(bytes: &[u8]) -> fb::DeltaFrame<'_> {
    match wire::decode(bytes).unwrap() {
        Message::DeltaFrame(frame) => frame,
        other => panic!("expected a frame, got {}", other.kind()),
    }
}

#[test]
fn wire_helpers_check_what_they_read() {
    let f = fixture();
    let (a, b) = (f.a.0, f.b.0);

    // read_descriptors
    let bytes = frame_with(&f, |fr| {
        fr.descriptors = Some(vec![
            RawDescriptor::of(POSE, Layout::Fixed(12)),
            RawDescriptor::of(NAME, Layout::Variable { max: 16 }),
        ])
    });
    let read = wire::read_descriptors(frame_view(&bytes).descriptors()).unwrap();
    assert_eq!(read.len(), 2);
    assert_eq!(read[0].name, POSE);
    assert_eq!(read[1].layout, Layout::Variable { max: 16 });
    assert!(wire::read_descriptors(None).unwrap().is_empty());
    let mut wrong = RawDescriptor::of(POSE, Layout::Fixed(12));
    wrong.id += 1;
    let bytes = frame_with(&f, |fr| fr.descriptors = Some(vec![wrong]));
    assert!(matches!(
        wire::read_descriptors(frame_view(&bytes).descriptors()),
        Err(WireError::Descriptor(RegistryError::IdMismatch { .. }))
    ));

    // read_entities
    let bytes = frame_with(&f, |fr| fr.spawns = Some(vec![a, b]));
    assert_eq!(
        wire::read_entities(frame_view(&bytes).spawns(), "spawns").unwrap(),
        vec![f.a, f.b]
    );
    let bytes = frame_with(&f, |fr| fr.spawns = Some(vec![b, a]));
    assert_eq!(
        wire::read_entities(frame_view(&bytes).spawns(), "spawns").unwrap_err(),
        bad_entity("spawns", 1, "entity ids not strictly ascending")
    );

    // BatchView::parse, against the layout the caller says.
    let bytes = frame_with(&f, |fr| {
        fr.batches = Some(vec![RawBatch::new(name(), &[a, b], b"abcd")
            .lengths(&[1, 3])
            .inserted(&[0b10])])
    });
    let frame = frame_view(&bytes);
    let batch = frame.batches().unwrap().get(0);
    let view = BatchView::parse(batch, Layout::Variable { max: 16 }).unwrap();
    assert_eq!(view.component(), name());
    assert_eq!(view.len(), 2);
    let values: Vec<(EntityId, Vec<u8>, bool)> = view
        .iter()
        .map(|e| (e.entity, e.bytes.to_vec(), e.inserted))
        .collect();
    assert_eq!(
        values,
        vec![(f.a, b"a".to_vec(), false), (f.b, b"bcd".to_vec(), true)]
    );
    for (layout, reason) in [
        (Layout::Variable { max: 2 }, "exceeds the maximum"),
        (Layout::Fixed(2), "lengths given"),
    ] {
        let err = BatchView::parse(batch, layout).unwrap_err();
        assert!(
            matches!(&err, WireError::BadBatch { component, reason: r } if *component == name() && r.contains(reason)),
            "{layout}: {err}"
        );
    }
    let bytes = frame_with(&f, |fr| {
        fr.batches = Some(vec![RawBatch::new(pose(), &[a, b], &[1; 24])])
    });
    let frame = frame_view(&bytes);
    let batch = frame.batches().unwrap().get(0);
    assert_eq!(BatchView::parse(batch, Layout::Fixed(12)).unwrap().len(), 2);
    assert!(BatchView::parse(batch, Layout::Fixed(8)).is_err());
    assert!(BatchView::parse(batch, Layout::Variable { max: 64 }).is_err());

    // RemoveView::parse
    let bytes = frame_with(&f, |fr| {
        fr.removes = Some(vec![(pose().0, Some(vec![a, b]))])
    });
    let frame = frame_view(&bytes);
    let view = RemoveView::parse(frame.removes().unwrap().get(0)).unwrap();
    assert_eq!(view.component(), pose());
    assert_eq!(view.entities().collect::<Vec<_>>(), vec![f.a, f.b]);
    let bytes = frame_with(&f, |fr| {
        fr.removes = Some(vec![(pose().0, Some(vec![a, 0]))])
    });
    let frame = frame_view(&bytes);
    assert_eq!(
        RemoveView::parse(frame.removes().unwrap().get(0)).unwrap_err(),
        bad_entity("removed entities", 1, "invalid entity id")
    );
}

#[test]
fn a_refused_message_does_not_block_later_valid_ones() {
    let mut f = fixture();
    let good = valid_frame(&f).encode();
    let mut bad = good.clone();
    let last = bad.len() - 1;
    bad.truncate(last);
    refuse_everywhere(&mut f.replica, &bad, "truncated", &|_| true);
    assert_eq!(f.replica.apply_delta(&good), Ok(Applied::DeltaFrame));
    assert_eq!(f.replica.stats().rejected, 3);
    assert_eq!(f.replica.stats().delta_frames, 2);
    assert!(!f.replica.world().is_alive(f.c));
}

// ---------------------------------------------------------------------------------------
// Never panics.

/// Replays a replica's events into a plain model and checks each against it.
#[derive(Default)]
struct EventModel {
    live: BTreeSet<EntityId>,
    values: BTreeMap<(ComponentId, EntityId), Vec<u8>>,
}

impl EventModel {
    fn replay(&mut self, replica: &mut Replica) {
        let events = replica.poll_events(usize::MAX);
        for event in events.iter() {
            let key = (event.component, event.entity);
            match event.kind {
                EventKind::Spawn => assert!(self.live.insert(event.entity), "{event:?}"),
                EventKind::Insert => {
                    assert!(self.live.contains(&event.entity), "{event:?}");
                    assert!(
                        self.values.insert(key, event.data.to_vec()).is_none(),
                        "{event:?}"
                    );
                }
                EventKind::Update => {
                    let old = self
                        .values
                        .get_mut(&key)
                        .expect("update of a value not held");
                    assert_ne!(old.as_slice(), event.data, "{event:?}");
                    *old = event.data.to_vec();
                }
                EventKind::Remove => assert!(self.values.remove(&key).is_some(), "{event:?}"),
                EventKind::Despawn => {
                    assert!(self.live.remove(&event.entity), "{event:?}");
                    self.values.retain(|k, _| k.1 != event.entity);
                }
            }
        }
    }

    fn assert_matches(&mut self, replica: &mut Replica) {
        self.replay(replica);
        let world = replica.world();
        assert_eq!(self.live, world.entities().collect::<BTreeSet<_>>());
        let mut held = BTreeMap::new();
        for d in world.registry().descriptors() {
            for (e, v) in world.component_entries(d.id).unwrap() {
                held.insert((d.id, e), v.to_vec());
            }
        }
        assert_eq!(self.values, held);
    }
}

#[derive(Clone, Debug)]
enum Mutation {
    Flip {
        at: usize,
        bit: u8,
    },
    Overwrite {
        at: usize,
        byte: u8,
    },
    /// A little-endian u32 written over four bytes (offsets, lengths, counts).
    Word {
        at: usize,
        word: u32,
    },
    Truncate {
        len: usize,
    },
    Insert {
        at: usize,
        bytes: Vec<u8>,
    },
    Delete {
        at: usize,
        len: usize,
    },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let word = prop_oneof![
        Just(0u32),
        Just(1),
        Just(u32::MAX),
        Just(0x7fff_ffff),
        Just(0x8000_0000),
        Just(4096),
        Just(4097),
        any::<u32>(),
        0u32..64,
    ];
    prop_oneof![
        4 => (any::<usize>(), 0u8..8).prop_map(|(at, bit)| Mutation::Flip { at, bit }),
        3 => (any::<usize>(), any::<u8>()).prop_map(|(at, byte)| Mutation::Overwrite { at, byte }),
        3 => (any::<usize>(), word).prop_map(|(at, word)| Mutation::Word { at, word }),
        1 => any::<usize>().prop_map(|len| Mutation::Truncate { len }),
        1 => (any::<usize>(), prop::collection::vec(any::<u8>(), 1..9))
            .prop_map(|(at, bytes)| Mutation::Insert { at, bytes }),
        1 => (any::<usize>(), 1usize..9).prop_map(|(at, len)| Mutation::Delete { at, len }),
    ]
}

fn mutate(bytes: &mut Vec<u8>, mutation: &Mutation) {
    if bytes.is_empty() {
        return;
    }
    let n = bytes.len();
    match mutation {
        Mutation::Flip { at, bit } => bytes[at % n] ^= 1 << bit,
        Mutation::Overwrite { at, byte } => bytes[at % n] = *byte,
        Mutation::Word { at, word } => {
            let at = at % n;
            for (i, b) in word.to_le_bytes().iter().enumerate() {
                if at + i < n {
                    bytes[at + i] = *b;
                }
            }
        }
        Mutation::Truncate { len } => bytes.truncate(len % n),
        Mutation::Insert { at, bytes: extra } => {
            let at = at % (n + 1);
            bytes.splice(at..at, extra.iter().copied());
        }
        Mutation::Delete { at, len } => {
            let at = at % n;
            let end = (at + len).min(n);
            bytes.drain(at..end);
        }
    }
}

/// Valid messages to mutate: chunks of a small and of a multi-chunk snapshot, tracker
/// frames with every kind of change, and the raw builders' frame and chunk.
fn corpus(f: &mut Fixture) -> Vec<Vec<u8>> {
    let mut out = vec![valid_frame(f).encode(), valid_chunk(f).encode()];
    let mut tracker =
        DeltaTracker::starting_at(f.tick, f.host.registry().descriptors().iter().map(|d| d.id));
    f.host.advance();
    let d = f.host.spawn().unwrap();
    f.host.set(d, name(), b"delta").unwrap();
    f.host.set(f.b, pose(), &[5; 12]).unwrap();
    f.host.set(f.b, tag(), &[]).unwrap();
    f.host.remove(f.a, name()).unwrap();
    f.host.despawn(f.c).unwrap();
    out.push(tracker.diff(&f.host).unwrap().encode());
    f.host
        .register("test.Late", Layout::Variable { max: 40 })
        .unwrap();
    f.host
        .set(d, ComponentId::of_name("test.Late"), b"late")
        .unwrap();
    out.push(tracker.diff(&f.host).unwrap().encode());
    out.push(f.host.delta_since(0).unwrap().encode());
    for limit in [DEFAULT_MAX_CHUNK_BYTES, 200] {
        out.extend(f.host.snapshot(limit).chunks.into_iter().map(|c| c.bytes));
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Mutated valid messages never panic any entry point; a refusal leaves the replica
    /// exactly as it was, and whatever is accepted keeps the event stream consistent.
    #[test]
    fn mutated_messages_never_panic_and_refusals_change_nothing(
        picks in prop::collection::vec(
            (any::<usize>(), prop::collection::vec(mutation(), 1..6), 0u8..4),
            1..5,
        ),
    ) {
        let mut f = fixture();
        let corpus = corpus(&mut f);
        let mut model = EventModel::default();
        for (pick, mutations, entry) in picks {
            let mut bytes = corpus[pick % corpus.len()].clone();
            for m in &mutations {
                mutate(&mut bytes, m);
            }
            let _ = wire::decode(&bytes);
            let entry = match entry {
                0 => Entry::Chunk,
                1 => Entry::Delta,
                _ => Entry::Apply,
            };
            let before = observe(&f.replica);
            match call(&mut f.replica, entry, &bytes) {
                Err(_) => {
                    let mut expected = before;
                    expected.stats.rejected += 1;
                    prop_assert_eq!(observe(&f.replica), expected);
                }
                Ok(_) => prop_assert_eq!(f.replica.stats().rejected, before.stats.rejected),
            }
        }
        model.assert_matches(&mut f.replica);
    }

    /// Structurally valid FlatBuffers with random content (ids, entity lists, lengths,
    /// bitsets, ticks) are either applied or refused without a trace; never a panic.
    #[test]
    fn random_structured_messages_never_panic(
        messages in prop::collection::vec(raw_message(), 1..6),
    ) {
        let mut f = fixture();
        let mut model = EventModel::default();
        for message in messages {
            let bytes = match &message {
                Raw::Frame(frame) => frame.encode(),
                Raw::Chunk(chunk) => chunk.encode(),
            };
            let before = observe(&f.replica);
            match f.replica.apply(&bytes) {
                Err(_) => {
                    let mut expected = before;
                    expected.stats.rejected += 1;
                    prop_assert_eq!(observe(&f.replica), expected);
                }
                Ok(_) => prop_assert_eq!(f.replica.stats().rejected, before.stats.rejected),
            }
        }
        model.assert_matches(&mut f.replica);
    }
}

#[derive(Clone, Debug)]
enum Raw {
    Frame(RawFrame),
    Chunk(RawChunk),
}

fn raw_entities() -> impl Strategy<Value = Vec<u64>> {
    // Mostly valid ascending ids near the fixture's, sometimes anything.
    prop_oneof![
        4 => prop::collection::btree_set(1u64..8, 0..5).prop_map(|s| s.into_iter().collect()),
        1 => prop::collection::vec(prop_oneof![Just(0u64), 1u64..8, Just(1 << 48), any::<u64>()], 0..4),
    ]
}

fn raw_component() -> impl Strategy<Value = u32> {
    prop_oneof![
        Just(pose().0),
        Just(name().0),
        Just(tag().0),
        Just(ComponentId::of_name("test.Extra").0),
        any::<u32>(),
    ]
}

fn raw_batch() -> impl Strategy<Value = RawBatch> {
    (
        raw_component(),
        raw_entities(),
        prop::collection::vec(any::<u8>(), 0..40),
        prop::option::of(prop::collection::vec(0u32..20, 0..5)),
        prop::option::of(prop::collection::vec(any::<u8>(), 0..2)),
        any::<bool>(),
    )
        .prop_map(|(component, entities, mut data, lengths, inserted, fit)| {
            // Half the time, make sizes add up for the component's layout.
            let count = entities.len();
            let mut lengths = lengths;
            let mut inserted = inserted;
            if fit {
                if component == pose().0 {
                    data.resize(count * 12, 1);
                    lengths = None;
                } else if component == tag().0 {
                    data.clear();
                    lengths = None;
                } else if component == name().0 {
                    let l: Vec<u32> = (0..count as u32).map(|i| i % 5).collect();
                    data.resize(l.iter().sum::<u32>() as usize, 2);
                    lengths = Some(l);
                }
                inserted = inserted.map(|_| vec![0x55; count.div_ceil(8)]);
            }
            RawBatch {
                component,
                entities: Some(entities),
                data: Some(data),
                lengths,
                inserted,
            }
        })
}

fn raw_descriptors() -> impl Strategy<Value = Option<Vec<RawDescriptor>>> {
    prop::option::of(prop::collection::vec(
        prop_oneof![
            Just(RawDescriptor::of("test.Extra", Layout::Fixed(4))),
            Just(RawDescriptor::of("test.Extra", Layout::Fixed(5))),
            Just(RawDescriptor::of(POSE, Layout::Fixed(12))),
            Just(RawDescriptor::of(NAME, Layout::Variable { max: 16 })),
            (0u8..3, 0u32..20).prop_map(|(kind, size)| RawDescriptor {
                id: ComponentId::of_name("test.Rand").0,
                name: "test.Rand".into(),
                kind,
                size,
            }),
        ],
        0..3,
    ))
}

fn raw_batches() -> impl Strategy<Value = Option<Vec<RawBatch>>> {
    prop::option::of(prop::collection::vec(raw_batch(), 0..3)).prop_map(|b| {
        b.map(|mut b| {
            b.sort_by_key(|x| x.component);
            b
        })
    })
}

fn raw_message() -> impl Strategy<Value = Raw> {
    // Mostly plausible ticks (tick >= base), sometimes anything.
    let ticks = prop_oneof![
        4 => (0u64..10, 0u64..4).prop_map(|(base, extra)| (base, base + extra)),
        1 => (0u64..12, 0u64..12),
    ];
    let frame = (
        ticks,
        raw_descriptors(),
        prop::option::of(raw_entities()),
        raw_batches(),
        prop::option::of(prop::collection::vec(
            (raw_component(), raw_entities()),
            0..3,
        )),
        prop::option::of(raw_entities()),
    )
        .prop_map(
            |((base, tick), descriptors, spawns, batches, removes, despawns)| {
                Raw::Frame(RawFrame {
                    base,
                    tick,
                    descriptors,
                    spawns,
                    batches,
                    removes: removes.map(|mut r| {
                        r.sort_by_key(|x| x.0);
                        r.into_iter().map(|(c, e)| (c, Some(e))).collect()
                    }),
                    despawns,
                })
            },
        );
    // Mostly plausible headers (index < total), sometimes anything.
    let header = prop_oneof![
        4 => (1u32..4).prop_flat_map(|total| (0..total, Just(total))),
        1 => (0u32..4, 0u32..4),
    ];
    let chunk = (
        0u64..12,
        header,
        prop_oneof![Just(registry().hash()), any::<u64>()],
        raw_descriptors(),
        prop::option::of(raw_entities()),
        raw_batches(),
    )
        .prop_map(
            |(tick, (index, total), registry_hash, descriptors, entities, batches)| {
                Raw::Chunk(RawChunk {
                    tick,
                    index,
                    total,
                    registry_hash,
                    descriptors,
                    entities,
                    batches,
                })
            },
        );
    prop_oneof![frame, chunk]
}

#[test]
fn session_messages_are_not_replica_messages() {
    let mut replica = Replica::new();
    let request = theta_net::wire::Encoder::new().join_request("token", 7);
    let err = replica.apply(&request).unwrap_err();
    assert_eq!(
        err,
        ReplicaError::Wire(WireError::UnexpectedPayload {
            expected: "snapshot chunk or delta frame",
            found: "join request",
        })
    );
    assert_eq!(replica.stats().rejected, 1);
    let datagram = theta_net::Delta::default()
        .with_parts(|parts| theta_net::wire::Encoder::new().state_datagram(parts));
    assert!(replica.apply(&datagram).is_err());
}
