//! Building messages. Entity ids and fixed-size values are written as flat vectors, so a
//! batch costs two copies however many values it holds.

use flatbuffers::{FlatBufferBuilder, WIPOffset};

use super::fb;
use super::{FILE_IDENTIFIER, PROTOCOL_REVISION, WIRE_VERSION};
use crate::registry::{ComponentDescriptor, ComponentId};
use crate::world::EntityId;

mod frames;

/// Values of one component type to encode.
#[derive(Clone, Copy, Debug)]
pub struct BatchRef<'a> {
    /// The component type.
    pub component: ComponentId,
    /// Entities, ascending, one per value.
    pub entities: &'a [EntityId],
    /// Values concatenated in entity order.
    pub data: &'a [u8],
    /// Byte length of each value, for variable layouts only.
    pub lengths: Option<&'a [u32]>,
    /// Insert bitset (bit i, LSB first: value i is an insert), for delta frames only.
    pub inserted: Option<&'a [u8]>,
}

/// Values of one component type read where they are stored, for
/// [`Encoder::delta_frame_from`]: each value is copied once, straight into the message.
pub trait BatchSource {
    /// The component type.
    fn component(&self) -> ComponentId;
    /// Number of values.
    fn count(&self) -> usize;
    /// The entity of value `i`; ascending in `i`.
    fn entity(&self, i: usize) -> EntityId;
    /// Value `i`.
    fn value(&self, i: usize) -> &[u8];
    /// Whether value `i` is new to the receiver (an insert) rather than an update.
    fn inserted(&self, i: usize) -> bool;
    /// Whether the values carry their lengths (a variable layout).
    fn variable(&self) -> bool;
}

/// The parts of a delta frame covering the ticks `(base_tick, tick]`, in frame order.
#[derive(Clone, Copy, Debug)]
pub struct FrameParts<'a> {
    /// The tick the receiver is assumed to hold.
    pub base_tick: u64,
    /// The tick the frame brings the receiver to.
    pub tick: u64,
    /// Descriptors the receiver may not know.
    pub descriptors: &'a [&'a ComponentDescriptor],
    /// Entities created, ascending.
    pub spawns: &'a [EntityId],
    /// New values, one batch per component type, ascending.
    pub batches: &'a [BatchRef<'a>],
    /// Components removed, per component type, ascending.
    pub removes: &'a [(ComponentId, &'a [EntityId])],
    /// Entities destroyed, ascending.
    pub despawns: &'a [EntityId],
    /// Client frames: ownership messages applied when written (`DeltaFrame.owner_seq`).
    pub owner_seq: u64,
    /// Per batch (in `batches` order, or empty for none): per value, the age of the
    /// baseline it is XOR'd with (`ComponentBatch.baseline_ages`; 0: the value itself).
    pub baseline_ages: &'a [&'a [u8]],
    /// Per batch (in `batches` order, or empty for none): its values as lanes, or none.
    pub lanes: &'a [LaneBatch<'a>],
}

/// A batch's values as lanes (components with declared fields; see
/// [`crate::wire::lanes`]).
#[derive(Clone, Copy, Debug, Default)]
pub struct LaneBatch<'a> {
    /// `ComponentBatch.lanes` (empty: the batch's values are bytes in its data).
    pub lanes: &'a [u8],
    /// `ComponentBatch.older_ages`: per value, the age of the older baseline the
    /// prediction is extrapolated from (empty or all 0: none).
    pub older_ages: &'a [u8],
}

/// The host's acceptance of a client.
#[derive(Clone, Copy, Debug)]
pub struct Acceptance<'a> {
    /// The client's peer id.
    pub peer: u16,
    /// The host's peer id.
    pub host_peer: u16,
    /// Tick of the snapshot that follows (or of the host, when resumed).
    pub tick: u64,
    /// Chunks of that snapshot.
    pub snapshot_chunks: u32,
    /// First entity counter the client may use.
    pub next_counter: u64,
    /// Token for resuming this connection's state later.
    pub resume: &'a [u8],
    /// Whether this join resumed earlier state (no snapshot follows).
    pub resumed: bool,
    /// The bound the host cuts snapshot chunks at (0: unsaid).
    pub max_chunk_bytes: u32,
    /// The snapshot holds only what the client sees.
    pub partial: bool,
}

/// Encodes messages, reusing its buffers from one message to the next.
pub struct Encoder {
    fbb: FlatBufferBuilder<'static>,
    ids: Vec<u64>,
    /// Scratch of a batch's entity gaps (`ComponentBatch.entity_gaps`).
    gaps: Vec<u8>,
    /// Scratch of [`Encoder::delta_frame_from`]: insert bitset, value lengths.
    bits: Vec<u8>,
    lengths: Vec<u32>,
    /// Zeros that reserve the values' place in the builder (never written).
    zeros: Vec<u8>,
    /// Reserved value vectors: (distance of the length prefix from the buffer's end,
    /// batch, bytes), filled when the message is copied out.
    holes: Vec<(usize, usize, usize)>,
    /// Scratch of a frame's tables before their vector is built: batches, removals.
    batch_tables: Vec<Offset<fb::ComponentBatch<'static>>>,
    remove_tables: Vec<Offset<fb::RemoveBatch<'static>>>,
}

impl Default for Encoder {
    fn default() -> Self {
        Encoder::with_capacity(16 * 1024)
    }
}

/// Header fields of a snapshot chunk.
#[derive(Clone, Copy, Debug)]
pub struct ChunkHeader {
    /// Tick the snapshot was taken at.
    pub tick: u64,
    /// Position of this chunk.
    pub index: u32,
    /// Number of chunks in the snapshot.
    pub total: u32,
    /// Hash of the sender's registry.
    pub registry_hash: u64,
    /// The chunk bound the snapshot was cut with.
    pub max_chunk_bytes: u32,
}

pub(super) type Offset<T> = WIPOffset<T>;
/// A built vector of tables.
pub(super) type Tables<T> = Offset<flatbuffers::Vector<'static, flatbuffers::ForwardsUOffset<T>>>;
/// A built vector of entity ids.
pub(super) type Ids = Offset<flatbuffers::Vector<'static, u64>>;

impl Encoder {
    /// An encoder with empty buffers.
    pub fn new() -> Self {
        Self::default()
    }

    /// An encoder whose buffer holds `bytes` without growing: growing a FlatBuffers
    /// builder copies everything written so far, which dominates encoding a large frame.
    pub fn with_capacity(bytes: usize) -> Self {
        Encoder {
            fbb: FlatBufferBuilder::with_capacity(bytes.min(super::MAX_MESSAGE_BYTES)),
            ids: Vec::new(),
            gaps: Vec::new(),
            bits: Vec::new(),
            lengths: Vec::new(),
            zeros: Vec::new(),
            holes: Vec::new(),
            batch_tables: Vec::new(),
            remove_tables: Vec::new(),
        }
    }

    /// Encodes one snapshot chunk.
    pub fn snapshot_chunk(
        &mut self,
        header: ChunkHeader,
        descriptors: &[&ComponentDescriptor],
        bare_entities: &[EntityId],
        batches: &[BatchRef<'_>],
    ) -> Vec<u8> {
        self.fbb.reset();
        let batches = self.batches(batches, &[], &[]);
        let entities = (!bare_entities.is_empty()).then(|| self.entity_vector(bare_entities));
        let descriptors = self.descriptors(descriptors);
        let chunk = fb::SnapshotChunk::create(
            &mut self.fbb,
            &fb::SnapshotChunkArgs {
                tick: header.tick,
                index: header.index,
                total: header.total,
                registry_hash: header.registry_hash,
                descriptors,
                entities,
                batches,
                max_chunk_bytes: header.max_chunk_bytes,
            },
        );
        self.finish(fb::Payload::SnapshotChunk, chunk.as_union_value())
    }

    /// Encodes one delta frame.
    pub fn delta_frame(&mut self, frame: &FrameParts<'_>) -> Vec<u8> {
        self.fbb.reset();
        let frame = self.build_frame(frame);
        self.finish(fb::Payload::DeltaFrame, frame.as_union_value())
    }

    /// Encodes the body of a state datagram: its frame. The sequence number and
    /// acknowledgements travel in the datagram's header ([`super::datagram_header`]),
    /// outside the body, so that one body serves every peer sent the same state.
    pub fn state_datagram(&mut self, frame: &FrameParts<'_>) -> Vec<u8> {
        self.state_datagram_in_place(frame).to_vec()
    }

    /// [`Encoder::state_datagram`], its bytes borrowed from the encoder until its next
    /// message: a datagram framed at once (compressed into the buffer the transport
    /// takes) is not copied on the way.
    pub fn state_datagram_in_place(&mut self, frame: &FrameParts<'_>) -> &[u8] {
        self.fbb.reset();
        let frame = Some(self.build_frame(frame));
        let datagram = fb::StateDatagram::create(
            &mut self.fbb,
            &fb::StateDatagramArgs {
                frame,
                ..Default::default()
            },
        );
        self.finish_message(fb::Payload::StateDatagram, datagram.as_union_value());
        self.fbb.finished_data()
    }

    /// Encodes a client's join request.
    pub fn join_request(&mut self, token: &str, registry_hash: u64) -> Vec<u8> {
        self.request(token, (registry_hash, &[]), (0, &[], 0), None)
    }

    /// Encodes a client's request to resume its dropped connection as `peer`.
    /// `snapshot_tick` is the tick of the newest snapshot the client completed (0: none).
    pub fn resume_request(
        &mut self,
        peer: u16,
        resume: &[u8],
        registry_hash: u64,
        snapshot_tick: u64,
    ) -> Vec<u8> {
        self.request(
            "",
            (registry_hash, &[]),
            (peer, resume, snapshot_tick),
            None,
        )
    }

    /// Encodes a join request (`token` not empty) or a resume request (`resume` not
    /// empty), carrying the client's registry hash and types (`wire::registry_bytes`;
    /// empty to leave them out) and what it wants to see (volumes, scopes) when it has
    /// said.
    pub fn request(
        &mut self,
        token: &str,
        (registry_hash, registry): (u64, &[u8]),
        (peer, resume, snapshot_tick): (u16, &[u8], u64),
        interest: Option<(&[fb::InterestVolume], &[u32])>,
    ) -> Vec<u8> {
        self.fbb.reset();
        let token = self.fbb.create_string(token);
        let registry = (!registry.is_empty()).then(|| self.fbb.create_vector(registry));
        let resume = (!resume.is_empty()).then(|| self.fbb.create_vector(resume));
        let interest = interest.map(|(volumes, scopes)| {
            let volumes = self.fbb.create_vector(volumes);
            let scopes = self.fbb.create_vector(scopes);
            fb::ClientInterest::create(
                &mut self.fbb,
                &fb::ClientInterestArgs {
                    volumes: Some(volumes),
                    scopes: Some(scopes),
                },
            )
        });
        let request = fb::JoinRequest::create(
            &mut self.fbb,
            &fb::JoinRequestArgs {
                token: Some(token),
                registry_hash,
                peer,
                resume,
                snapshot_tick,
                interest,
                registry,
                revision: PROTOCOL_REVISION,
            },
        );
        self.finish(fb::Payload::JoinRequest, request.as_union_value())
    }

    /// Encodes the host's acceptance of a client.
    pub fn join_accepted(&mut self, a: &Acceptance<'_>) -> Vec<u8> {
        self.fbb.reset();
        let resume = (!a.resume.is_empty()).then(|| self.fbb.create_vector(a.resume));
        let accepted = fb::JoinAccepted::create(
            &mut self.fbb,
            &fb::JoinAcceptedArgs {
                peer: a.peer,
                host_peer: a.host_peer,
                tick: a.tick,
                snapshot_chunks: a.snapshot_chunks,
                next_counter: a.next_counter,
                resume,
                resumed: a.resumed,
                max_chunk_bytes: a.max_chunk_bytes,
                partial: a.partial,
                revision: PROTOCOL_REVISION,
            },
        );
        self.finish(fb::Payload::JoinAccepted, accepted.as_union_value())
    }

    /// Encodes the host's refusal of a client.
    pub fn join_refused(&mut self, reason: fb::RefuseReason, message: &str) -> Vec<u8> {
        self.join_refused_with_types(reason, message, &[])
    }

    /// Encodes the host's refusal of a client with the host's component types (a registry
    /// mismatch: the client names what differs).
    pub fn join_refused_with_types(
        &mut self,
        reason: fb::RefuseReason,
        message: &str,
        host_types: &[ComponentDescriptor],
    ) -> Vec<u8> {
        self.fbb.reset();
        let message = self.fbb.create_string(message);
        let types: Vec<&ComponentDescriptor> = host_types.iter().collect();
        let host_types = self.descriptors(&types);
        let refused = fb::JoinRefused::create(
            &mut self.fbb,
            &fb::JoinRefusedArgs {
                reason,
                message: Some(message),
                host_types,
            },
        );
        self.finish(fb::Payload::JoinRefused, refused.as_union_value())
    }

    /// Encodes the host's refusal of a client's write.
    pub fn write_rejected(&mut self, entity: u64, component: u32, reason: &str) -> Vec<u8> {
        self.fbb.reset();
        let reason = self.fbb.create_string(reason);
        let rejected = fb::WriteRejected::create(
            &mut self.fbb,
            &fb::WriteRejectedArgs {
                entity,
                component,
                reason: Some(reason),
            },
        );
        self.finish(fb::Payload::WriteRejected, rejected.as_union_value())
    }

    /// Encodes a compression dictionary the host sends a client: its id, the message
    /// kind it serves, and the dictionary bytes.
    pub fn dictionary(&mut self, id: u32, kind: fb::CodecKind, bytes: &[u8]) -> Vec<u8> {
        self.fbb.reset();
        let bytes = self.fbb.create_vector(bytes);
        let dictionary = fb::Dictionary::create(
            &mut self.fbb,
            &fb::DictionaryArgs {
                id,
                kind,
                bytes: Some(bytes),
            },
        );
        self.finish(fb::Payload::Dictionary, dictionary.as_union_value())
    }

    /// Encodes a client's acknowledgement of dictionary `id`.
    pub fn dictionary_ack(&mut self, id: u32) -> Vec<u8> {
        self.fbb.reset();
        let ack = fb::DictionaryAck::create(&mut self.fbb, &fb::DictionaryAckArgs { id });
        self.finish(fb::Payload::DictionaryAck, ack.as_union_value())
    }

    /// Encodes the host's retirement of the dictionaries `ids`.
    pub fn dictionary_retire(&mut self, ids: &[u32]) -> Vec<u8> {
        self.fbb.reset();
        let ids = self.fbb.create_vector(ids);
        let retire = fb::DictionaryRetire::create(
            &mut self.fbb,
            &fb::DictionaryRetireArgs { ids: Some(ids) },
        );
        self.finish(fb::Payload::DictionaryRetire, retire.as_union_value())
    }

    /// Encodes the host's notice to a client that peer `peer` joined (or resumed).
    pub fn peer_joined(&mut self, peer: u16) -> Vec<u8> {
        self.fbb.reset();
        let joined = fb::PeerJoined::create(&mut self.fbb, &fb::PeerJoinedArgs { peer });
        self.finish(fb::Payload::PeerJoined, joined.as_union_value())
    }

    /// Encodes the host's notice to a client that peer `peer` left, and why.
    pub fn peer_left(&mut self, peer: u16, reason: &str) -> Vec<u8> {
        self.fbb.reset();
        let reason = self.fbb.create_string(reason);
        let left = fb::PeerLeft::create(
            &mut self.fbb,
            &fb::PeerLeftArgs {
                peer,
                reason: Some(reason),
            },
        );
        self.finish(fb::Payload::PeerLeft, left.as_union_value())
    }

    /// Encodes the host's ownership message number `seq` to a client: changed records, or
    /// with `full` every record that differs from the default.
    /// `lease_ms` is the host's lease (see the schema).
    pub fn owners(
        &mut self,
        seq: u64,
        full: bool,
        entries: &[fb::OwnerEntry],
        lease_ms: u32,
    ) -> Vec<u8> {
        self.fbb.reset();
        let entries = self.fbb.create_vector(entries);
        let owners = fb::Owners::create(
            &mut self.fbb,
            &fb::OwnersArgs {
                seq,
                full,
                entries: Some(entries),
                lease_ms,
            },
        );
        self.finish(fb::Payload::Owners, owners.as_union_value())
    }

    /// Encodes the host's notice that `entities` left a client's interest at `tick` (with
    /// `only`: that the client sees `entities` and nothing else).
    pub fn left(&mut self, tick: u64, entities: &[u64], only: bool) -> Vec<u8> {
        self.fbb.reset();
        let entities = self.fbb.create_vector(entities);
        let left = fb::Left::create(
            &mut self.fbb,
            &fb::LeftArgs {
                tick,
                entities: Some(entities),
                only,
            },
        );
        self.finish(fb::Payload::Left, left.as_union_value())
    }

    /// Encodes what a client is interested in: volumes and subscribed scopes.
    pub fn client_interest(&mut self, volumes: &[fb::InterestVolume], scopes: &[u32]) -> Vec<u8> {
        self.fbb.reset();
        let volumes = self.fbb.create_vector(volumes);
        let scopes = self.fbb.create_vector(scopes);
        let interest = fb::ClientInterest::create(
            &mut self.fbb,
            &fb::ClientInterestArgs {
                volumes: Some(volumes),
                scopes: Some(scopes),
            },
        );
        self.finish(fb::Payload::ClientInterest, interest.as_union_value())
    }

    /// Encodes a client's acknowledgement of ownership message `seq`.
    pub fn owners_ack(&mut self, seq: u64) -> Vec<u8> {
        self.fbb.reset();
        let ack = fb::OwnersAck::create(&mut self.fbb, &fb::OwnersAckArgs { seq });
        self.finish(fb::Payload::OwnersAck, ack.as_union_value())
    }

    /// Encodes a client's ownership request (take or renew, release, set policy).
    pub fn ownership_request(
        &mut self,
        entity: u64,
        component: u32,
        action: fb::OwnershipAction,
        policy: fb::OwnershipPolicy,
        flags: u8,
    ) -> Vec<u8> {
        self.fbb.reset();
        let request = fb::OwnershipRequest::create(
            &mut self.fbb,
            &fb::OwnershipRequestArgs {
                entity,
                component,
                action,
                policy,
                flags,
            },
        );
        self.finish(fb::Payload::OwnershipRequest, request.as_union_value())
    }

    /// Encodes the host's refusal of a client's ownership request.
    pub fn ownership_denied(
        &mut self,
        entity: u64,
        component: u32,
        reason: fb::OwnershipRefusal,
        message: &str,
    ) -> Vec<u8> {
        self.fbb.reset();
        let message = self.fbb.create_string(message);
        let denied = fb::OwnershipDenied::create(
            &mut self.fbb,
            &fb::OwnershipDeniedArgs {
                entity,
                component,
                reason,
                message: Some(message),
            },
        );
        self.finish(fb::Payload::OwnershipDenied, denied.as_union_value())
    }

    /// Encodes an application message on `channel` from `from` to `to` (see
    /// `AppMessage` in the schema); `seq` numbers unreliable ones.
    pub fn app_message(
        &mut self,
        channel: u32,
        from: u16,
        to: u16,
        seq: u64,
        body: &[u8],
    ) -> Vec<u8> {
        self.fbb.reset();
        let body = self.fbb.create_vector(body);
        let message = fb::AppMessage::create(
            &mut self.fbb,
            &fb::AppMessageArgs {
                channel,
                from,
                to,
                seq,
                body: Some(body),
            },
        );
        self.finish(fb::Payload::AppMessage, message.as_union_value())
    }

    /// Encodes the host's notice that a client's message to `to` was not delivered.
    pub fn message_refused(&mut self, channel: u32, to: u16, reason: &str) -> Vec<u8> {
        self.fbb.reset();
        let reason = self.fbb.create_string(reason);
        let refused = fb::MessageRefused::create(
            &mut self.fbb,
            &fb::MessageRefusedArgs {
                channel,
                to,
                reason: Some(reason),
            },
        );
        self.finish(fb::Payload::MessageRefused, refused.as_union_value())
    }

    fn finish(
        &mut self,
        kind: fb::Payload,
        payload: Offset<flatbuffers::UnionWIPOffset>,
    ) -> Vec<u8> {
        self.finish_message(kind, payload);
        self.fbb.finished_data().to_vec()
    }

    fn finish_message(&mut self, kind: fb::Payload, payload: Offset<flatbuffers::UnionWIPOffset>) {
        let message = fb::Message::create(
            &mut self.fbb,
            &fb::MessageArgs {
                version: WIRE_VERSION,
                payload_type: kind,
                payload: Some(payload),
            },
        );
        self.fbb.finish(message, Some(FILE_IDENTIFIER));
    }
}

/// Upper bounds of encoded sizes, for planning snapshot chunks under a byte limit.
/// They over-count alignment padding and vtables; `tests` check they are bounds.
pub(crate) mod size {
    /// Buffer header, `Message`, `SnapshotChunk` and its three vector headers.
    pub const CHUNK_BASE: usize = 176;
    /// One descriptor: table, vtable, offset in its vector, string header and padding.
    pub const DESCRIPTOR_BASE: usize = 56;
    /// One batch without its entries: table, vtable, offset, vector headers and padding.
    pub const BATCH_BASE: usize = 104;
    /// One entity id.
    pub const ENTITY: usize = 8;
    /// Length prefix of a variable-size value.
    pub const LENGTH: usize = 4;
}
