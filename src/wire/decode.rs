//! Reading messages from a peer. Bytes are hostile until proven otherwise: every buffer is
//! verified with limits sized to the schema, every count and length is checked before
//! use, and nothing here allocates more than the message's own size justifies.

use flatbuffers::{ForwardsUOffset, Vector, VerifierOptions};

use super::codec::read_varint;
use super::fb;
use super::{FILE_IDENTIFIER, MAX_MESSAGE_BYTES, WIRE_VERSION};
use crate::registry::{
    ComponentDescriptor, ComponentId, Layout, Registry, RegistryError, MAX_COMPONENT_TYPES,
};
use crate::world::EntityId;

/// Tables one message can hold: the message, its payload, and per component type at most
/// one descriptor, one batch and one remove batch.
const MAX_TABLES: usize = 2 + 3 * MAX_COMPONENT_TYPES;
/// Message → payload → vector → batch → vector.
const MAX_DEPTH: usize = 8;

/// Why bytes from a peer were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// Larger than [`MAX_MESSAGE_BYTES`].
    #[error("message of {len} bytes exceeds the {max}-byte limit")]
    TooLarge {
        /// Bytes received.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Too short, or without the `THTA` file identifier.
    #[error("not a Theta message (no \"THTA\" identifier)")]
    NotTheta,
    /// The FlatBuffers verifier refused the buffer.
    #[error("malformed message: {0}")]
    Malformed(String),
    /// Another wire version.
    #[error("wire version {found} is not supported (this build speaks version {WIRE_VERSION})")]
    Version {
        /// The version carried.
        found: u16,
    },
    /// The payload is of another kind than the call expects, or unknown.
    #[error("expected a {expected}, got {found}")]
    UnexpectedPayload {
        /// What the call accepts.
        expected: &'static str,
        /// What arrived.
        found: &'static str,
    },
    /// A list longer than the schema allows.
    #[error("{what}: {count} entries exceed the limit of {max}")]
    TooMany {
        /// Which list.
        what: &'static str,
        /// Its length.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// A descriptor that is invalid in itself or conflicts with the receiver's registry.
    #[error("descriptor refused: {0}")]
    Descriptor(#[from] RegistryError),
    /// An unknown layout kind in a descriptor.
    #[error("descriptor {name:?} has unknown layout kind {kind}")]
    UnknownLayout {
        /// Descriptor name.
        name: String,
        /// The kind byte.
        kind: u8,
    },
    /// A component id with no descriptor in the message or the receiver's registry.
    #[error("component {0} is not described by this message nor registered here")]
    UnknownComponent(ComponentId),
    /// An entity id that cannot have been issued, or ids out of order in a list.
    #[error("{what}: {reason} at entry {index}")]
    BadEntity {
        /// Which list.
        what: &'static str,
        /// Index in the list.
        index: usize,
        /// What is wrong.
        reason: &'static str,
    },
    /// A batch whose sizes do not add up for its component's layout.
    #[error("batch of component {component}: {reason}")]
    BadBatch {
        /// The component.
        component: ComponentId,
        /// What is wrong.
        reason: String,
    },
    /// Batches or remove lists not in strictly ascending component order.
    #[error("{what} are not in strictly ascending component order")]
    Unordered {
        /// Which list.
        what: &'static str,
    },
}

/// A verified message.
#[derive(Clone, Copy, Debug)]
pub enum Message<'a> {
    /// One chunk of a world snapshot.
    SnapshotChunk(fb::SnapshotChunk<'a>),
    /// A delta frame.
    DeltaFrame(fb::DeltaFrame<'a>),
    /// A client's request to join a session.
    JoinRequest(fb::JoinRequest<'a>),
    /// The host admitted the client.
    JoinAccepted(fb::JoinAccepted<'a>),
    /// The host refused the client.
    JoinRefused(fb::JoinRefused<'a>),
    /// An unreliable state datagram.
    StateDatagram(fb::StateDatagram<'a>),
    /// The host refused a client's write.
    WriteRejected(fb::WriteRejected<'a>),
    /// A compression dictionary from the host.
    Dictionary(fb::Dictionary<'a>),
    /// A client acknowledges a dictionary.
    DictionaryAck(fb::DictionaryAck<'a>),
    /// The host retires dictionaries.
    DictionaryRetire(fb::DictionaryRetire<'a>),
    /// The host tells a client that another client joined.
    PeerJoined(fb::PeerJoined<'a>),
    /// The host tells a client that another client left.
    PeerLeft(fb::PeerLeft<'a>),
    /// The host tells a client of owners.
    Owners(fb::Owners<'a>),
    /// A client asks the host about ownership.
    OwnershipRequest(fb::OwnershipRequest<'a>),
    /// The host refused a client's ownership request.
    OwnershipDenied(fb::OwnershipDenied<'a>),
    /// An application message.
    AppMessage(fb::AppMessage<'a>),
    /// The host did not deliver a client's message.
    MessageRefused(fb::MessageRefused<'a>),
    /// A client applied an ownership message.
    OwnersAck(fb::OwnersAck<'a>),
    /// Entities left a client's interest.
    Left(fb::Left<'a>),
    /// A client says what it is interested in.
    ClientInterest(fb::ClientInterest<'a>),
}

impl Message<'_> {
    /// The payload's kind, for messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Message::SnapshotChunk(_) => "snapshot chunk",
            Message::DeltaFrame(_) => "delta frame",
            Message::JoinRequest(_) => "join request",
            Message::JoinAccepted(_) => "join acceptance",
            Message::JoinRefused(_) => "join refusal",
            Message::StateDatagram(_) => "state datagram",
            Message::WriteRejected(_) => "write rejection",
            Message::Dictionary(_) => "dictionary",
            Message::DictionaryAck(_) => "dictionary acknowledgement",
            Message::DictionaryRetire(_) => "dictionary retirement",
            Message::PeerJoined(_) => "peer joined",
            Message::PeerLeft(_) => "peer left",
            Message::Owners(_) => "owners",
            Message::OwnershipRequest(_) => "ownership request",
            Message::OwnershipDenied(_) => "ownership refusal",
            Message::AppMessage(_) => "application message",
            Message::MessageRefused(_) => "message refusal",
            Message::OwnersAck(_) => "owners acknowledgement",
            Message::Left(_) => "left interest",
            Message::ClientInterest(_) => "client interest",
        }
    }
}

/// Verifies `bytes` as the body of a state datagram (the message after its header, see
/// [`super::datagram_header`]) and returns its frame. The body carries the frame alone:
/// one that sets the sequence number or acknowledgements (which travel in the header), or
/// carries no frame (an acknowledgement alone has no body), is malformed.
pub fn decode_state_datagram(bytes: &[u8]) -> Result<fb::DeltaFrame<'_>, WireError> {
    let datagram = match decode(bytes)? {
        Message::StateDatagram(datagram) => datagram,
        other => {
            return Err(WireError::UnexpectedPayload {
                expected: "state datagram",
                found: other.kind(),
            })
        }
    };
    let vtable = datagram._tab.vtable();
    let set = |field| vtable.get(field) != 0;
    if set(fb::StateDatagram::VT_SEQ) || set(fb::StateDatagram::VT_ACKS) {
        return Err(WireError::Malformed(
            "state datagram body sets its header's fields".into(),
        ));
    }
    datagram
        .frame()
        .ok_or_else(|| WireError::Malformed("state datagram body without a frame".into()))
}

/// Verifies `bytes` as a Theta message of the supported version.
pub fn decode(bytes: &[u8]) -> Result<Message<'_>, WireError> {
    if bytes.len() > MAX_MESSAGE_BYTES {
        return Err(WireError::TooLarge {
            len: bytes.len(),
            max: MAX_MESSAGE_BYTES,
        });
    }
    if bytes.len() < 8 || !flatbuffers::buffer_has_identifier(bytes, FILE_IDENTIFIER, false) {
        return Err(WireError::NotTheta);
    }
    let options = VerifierOptions {
        max_depth: MAX_DEPTH,
        max_tables: MAX_TABLES,
        max_apparent_size: MAX_MESSAGE_BYTES,
        ignore_missing_null_terminator: false,
    };
    let message = fb::root_as_message_with_opts(&options, bytes)
        .map_err(|e| WireError::Malformed(e.to_string()))?;
    if message.version() != WIRE_VERSION {
        return Err(WireError::Version {
            found: message.version(),
        });
    }
    let missing = || WireError::Malformed("payload missing".into());
    match message.payload_type() {
        fb::Payload::SnapshotChunk => Ok(Message::SnapshotChunk(
            message.payload_as_snapshot_chunk().ok_or_else(missing)?,
        )),
        fb::Payload::DeltaFrame => Ok(Message::DeltaFrame(
            message.payload_as_delta_frame().ok_or_else(missing)?,
        )),
        fb::Payload::JoinRequest => Ok(Message::JoinRequest(
            message.payload_as_join_request().ok_or_else(missing)?,
        )),
        fb::Payload::JoinAccepted => Ok(Message::JoinAccepted(
            message.payload_as_join_accepted().ok_or_else(missing)?,
        )),
        fb::Payload::JoinRefused => Ok(Message::JoinRefused(
            message.payload_as_join_refused().ok_or_else(missing)?,
        )),
        fb::Payload::StateDatagram => Ok(Message::StateDatagram(
            message.payload_as_state_datagram().ok_or_else(missing)?,
        )),
        fb::Payload::WriteRejected => Ok(Message::WriteRejected(
            message.payload_as_write_rejected().ok_or_else(missing)?,
        )),
        fb::Payload::Dictionary => Ok(Message::Dictionary(
            message.payload_as_dictionary().ok_or_else(missing)?,
        )),
        fb::Payload::DictionaryAck => Ok(Message::DictionaryAck(
            message.payload_as_dictionary_ack().ok_or_else(missing)?,
        )),
        fb::Payload::DictionaryRetire => Ok(Message::DictionaryRetire(
            message.payload_as_dictionary_retire().ok_or_else(missing)?,
        )),
        fb::Payload::PeerJoined => Ok(Message::PeerJoined(
            message.payload_as_peer_joined().ok_or_else(missing)?,
        )),
        fb::Payload::PeerLeft => Ok(Message::PeerLeft(
            message.payload_as_peer_left().ok_or_else(missing)?,
        )),
        fb::Payload::Owners => Ok(Message::Owners(
            message.payload_as_owners().ok_or_else(missing)?,
        )),
        fb::Payload::OwnershipRequest => Ok(Message::OwnershipRequest(
            message.payload_as_ownership_request().ok_or_else(missing)?,
        )),
        fb::Payload::OwnershipDenied => Ok(Message::OwnershipDenied(
            message.payload_as_ownership_denied().ok_or_else(missing)?,
        )),
        fb::Payload::AppMessage => Ok(Message::AppMessage(
            message.payload_as_app_message().ok_or_else(missing)?,
        )),
        fb::Payload::MessageRefused => Ok(Message::MessageRefused(
            message.payload_as_message_refused().ok_or_else(missing)?,
        )),
        fb::Payload::OwnersAck => Ok(Message::OwnersAck(
            message.payload_as_owners_ack().ok_or_else(missing)?,
        )),
        fb::Payload::Left => Ok(Message::Left(
            message.payload_as_left().ok_or_else(missing)?,
        )),
        fb::Payload::ClientInterest => Ok(Message::ClientInterest(
            message.payload_as_client_interest().ok_or_else(missing)?,
        )),
        _ => Err(WireError::UnexpectedPayload {
            expected: "a known message",
            found: "unknown payload",
        }),
    }
}

/// Reads and validates a descriptor list (each id must be the hash of its name).
pub fn read_descriptors(
    list: Option<Vector<'_, ForwardsUOffset<fb::Descriptor<'_>>>>,
) -> Result<Vec<ComponentDescriptor>, WireError> {
    let Some(list) = list else {
        return Ok(Vec::new());
    };
    check_count("descriptors", list.len(), MAX_COMPONENT_TYPES)?;
    let mut out = Vec::with_capacity(list.len());
    let mut scratch = Registry::new();
    for d in list.iter() {
        let name = d.name().to_owned();
        let layout = match d.layout() {
            fb::LayoutKind::Fixed => Layout::Fixed(d.size()),
            fb::LayoutKind::Variable => Layout::Variable { max: d.size() },
            other => {
                return Err(WireError::UnknownLayout {
                    name,
                    kind: other.0,
                })
            }
        };
        let descriptor = ComponentDescriptor {
            id: ComponentId(d.id()),
            name,
            layout,
        };
        // Validates the descriptor, catches two conflicting descriptors in one message and
        // drops identical repeats (so they count once toward the registry limit).
        if scratch.check(&descriptor)?.is_some() {
            continue;
        }
        scratch.insert(descriptor.clone())?;
        out.push(descriptor);
    }
    Ok(out)
}

/// Reads an entity list: valid ids, strictly ascending (so no duplicates).
pub fn read_entities(
    list: Option<Vector<'_, u64>>,
    what: &'static str,
) -> Result<Vec<EntityId>, WireError> {
    let Some(list) = list else {
        return Ok(Vec::new());
    };
    check_entities(list, what)?;
    Ok(list.iter().map(EntityId).collect())
}

fn check_entities(list: Vector<'_, u64>, what: &'static str) -> Result<(), WireError> {
    let mut previous = 0u64;
    for (index, raw) in list.iter().enumerate() {
        let reason = if !EntityId(raw).is_valid() {
            "invalid entity id"
        } else if raw <= previous {
            "entity ids not strictly ascending"
        } else {
            previous = raw;
            continue;
        };
        return Err(WireError::BadEntity {
            what,
            index,
            reason,
        });
    }
    Ok(())
}

fn check_count(what: &'static str, count: usize, max: usize) -> Result<(), WireError> {
    if count > max {
        return Err(WireError::TooMany { what, count, max });
    }
    Ok(())
}

/// Checks that a list of component-keyed items is strictly ascending by component.
pub(crate) fn check_ascending(
    ids: impl Iterator<Item = u32>,
    count: usize,
    what: &'static str,
) -> Result<(), WireError> {
    check_count(what, count, MAX_COMPONENT_TYPES)?;
    let mut previous: Option<u32> = None;
    for id in ids {
        if previous.is_some_and(|p| p >= id) {
            return Err(WireError::Unordered { what });
        }
        previous = Some(id);
    }
    Ok(())
}

/// A batch's entities: plain ids, or their gaps (`ComponentBatch.entity_gaps`), checked
/// valid and strictly ascending.
#[derive(Clone, Copy, Debug)]
pub enum EntityList<'a> {
    /// `ComponentBatch.entities`.
    Plain(Vector<'a, u64>),
    /// `ComponentBatch.entity_gaps` and how many ids they make.
    Gaps(&'a [u8], usize),
}

impl<'a> EntityList<'a> {
    /// Reads and checks a batch's entities (peer bytes: a malformed varint, an id that
    /// overflows, is 0 or does not ascend is refused; ids and gaps together too).
    pub fn parse(batch: fb::ComponentBatch<'a>) -> Result<Self, WireError> {
        let plain = batch.entities();
        let Some(gaps) = batch.entity_gaps().map(|v| v.bytes()) else {
            check_entities(plain, "batch entities")?;
            return Ok(EntityList::Plain(plain));
        };
        let bad = |index, reason| WireError::BadEntity {
            what: "batch entity gaps",
            index,
            reason,
        };
        if !plain.is_empty() {
            return Err(bad(0, "entity ids and gaps in one batch"));
        }
        let (mut rest, mut previous, mut count) = (gaps, None::<u64>, 0usize);
        while !rest.is_empty() {
            let (gap, after) = read_varint(rest).map_err(|_| bad(count, "malformed gap"))?;
            rest = after;
            let id = match previous {
                None => Some(gap),
                Some(p) => p.checked_add(gap).and_then(|x| x.checked_add(1)),
            }
            .ok_or_else(|| bad(count, "entity id overflows"))?;
            if !EntityId(id).is_valid() {
                return Err(bad(count, "invalid entity id"));
            }
            previous = Some(id);
            count += 1;
        }
        Ok(EntityList::Gaps(gaps, count))
    }

    /// How many entities.
    pub fn len(&self) -> usize {
        match self {
            EntityList::Plain(v) => v.len(),
            EntityList::Gaps(_, count) => *count,
        }
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The entities in order.
    pub fn iter(&self) -> impl Iterator<Item = EntityId> + 'a {
        let this = *self;
        let mut rest: &[u8] = match this {
            EntityList::Gaps(gaps, _) => gaps,
            EntityList::Plain(_) => &[],
        };
        let mut previous: Option<u64> = None;
        (0..this.len()).map(move |i| match this {
            EntityList::Plain(v) => EntityId(v.get(i)),
            EntityList::Gaps(..) => {
                // Checked by `parse`: every varint reads and no id overflows.
                let (gap, after) = read_varint(rest).unwrap_or((0, &[]));
                rest = after;
                let id = previous.map_or(gap, |p| p.wrapping_add(gap).wrapping_add(1));
                previous = Some(id);
                EntityId(id)
            }
        })
    }
}

/// A batch checked against its component's layout.
#[derive(Clone, Copy, Debug)]
pub struct BatchView<'a> {
    component: ComponentId,
    entities: EntityList<'a>,
    data: &'a [u8],
    lengths: Option<Vector<'a, u32>>,
    inserted: Option<&'a [u8]>,
    baseline_ages: Option<&'a [u8]>,
    lanes: Option<&'a [u8]>,
    older_ages: Option<&'a [u8]>,
    size: usize,
}

/// One value of a batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchEntry<'a> {
    /// The entity.
    pub entity: EntityId,
    /// The value bytes.
    pub bytes: &'a [u8],
    /// Whether the sender marked it as an insert.
    pub inserted: bool,
    /// Ticks before the frame's tick of the baseline the bytes are XOR'd with, or the
    /// lanes coded against (0: the bytes are the value; lanes against nothing).
    pub baseline_age: u8,
    /// Lanes: ticks before the frame's tick of the older baseline the prediction is
    /// extrapolated from with the one `baseline_age` names (0: none).
    pub older_age: u8,
}

impl<'a> BatchView<'a> {
    /// Checks a batch: valid ascending entities, and values that add up exactly to the data
    /// for `layout` (fixed: count × size; variable: one length per value, each within the
    /// maximum, summing to the data length).
    pub fn parse(batch: fb::ComponentBatch<'a>, layout: Layout) -> Result<Self, WireError> {
        let component = ComponentId(batch.component());
        let bad = |reason: String| WireError::BadBatch { component, reason };
        let entities = EntityList::parse(batch)?;
        let count = entities.len();
        let data = batch.data().bytes();
        let lengths = batch.lengths();
        let lanes = batch.lanes().map(|v| v.bytes());
        match layout {
            Layout::Fixed(_) if lanes.is_some() => {
                if !data.is_empty() || lengths.is_some() {
                    return Err(bad("lanes and data (or lengths) in one batch".into()));
                }
            }
            Layout::Variable { .. } if lanes.is_some() => {
                return Err(bad("lanes for a variable-size component".into()));
            }
            Layout::Fixed(size) => {
                if lengths.is_some() {
                    return Err(bad("lengths given for a fixed-size component".into()));
                }
                let expected = count as u64 * u64::from(size);
                if data.len() as u64 != expected {
                    return Err(bad(format!(
                        "{} data bytes for {count} values of {size} bytes",
                        data.len()
                    )));
                }
            }
            Layout::Variable { max } => {
                let Some(lengths) = lengths else {
                    return Err(bad("no lengths for a variable-size component".into()));
                };
                if lengths.len() != count {
                    return Err(bad(format!("{} lengths for {count} values", lengths.len())));
                }
                let mut total = 0u64;
                for len in lengths.iter() {
                    if len > max {
                        return Err(bad(format!(
                            "value of {len} bytes exceeds the maximum of {max}"
                        )));
                    }
                    total += u64::from(len);
                }
                if total != data.len() as u64 {
                    return Err(bad(format!(
                        "lengths sum to {total}, data has {} bytes",
                        data.len()
                    )));
                }
            }
        }
        let inserted = batch.inserted().map(|v| v.bytes());
        if let Some(bits) = inserted {
            if bits.len() != count.div_ceil(8) {
                return Err(bad(format!(
                    "insert bitset of {} bytes for {count} values",
                    bits.len()
                )));
            }
        }
        let baseline_ages = batch.baseline_ages().map(|v| v.bytes());
        if let Some(ages) = baseline_ages {
            if lengths.is_some() || ages.len() != count {
                return Err(bad(format!(
                    "{} baseline ages for {count} values (fixed-size values only)",
                    ages.len()
                )));
            }
        }
        let older_ages = batch.older_ages().map(|v| v.bytes());
        if let Some(older) = older_ages {
            if lanes.is_none() || older.len() != count {
                return Err(bad(format!(
                    "{} older baseline ages for {count} values (lanes only)",
                    older.len()
                )));
            }
        }
        Ok(BatchView {
            component,
            entities,
            data,
            lengths,
            inserted,
            baseline_ages,
            lanes,
            older_ages,
            size: layout.max_bytes() as usize,
        })
    }

    /// The component type of every value.
    pub fn component(&self) -> ComponentId {
        self.component
    }

    /// Number of values.
    pub fn len(&self) -> usize {
        self.entities.len()
    }

    /// Whether the batch is empty.
    pub fn is_empty(&self) -> bool {
        self.entities.is_empty()
    }

    /// Whether the component's values are of a fixed size.
    pub fn fixed(&self) -> bool {
        self.lengths.is_none()
    }

    /// The values as lanes (components with declared fields in the host's state
    /// datagrams; the entries' bytes are then empty), unchecked: see [`crate::wire::lanes`].
    pub fn lanes(&self) -> Option<&'a [u8]> {
        self.lanes
    }

    /// Whether any value is coded against a baseline.
    pub fn has_baselines(&self) -> bool {
        self.baseline_ages
            .is_some_and(|ages| ages.iter().any(|&a| a != 0))
    }

    /// The entities, in order.
    pub fn entities(&self) -> EntityList<'a> {
        self.entities
    }

    /// The values in order.
    pub fn iter(&self) -> impl Iterator<Item = BatchEntry<'a>> + 'a {
        let this = *self;
        let mut offset = 0usize;
        this.entities.iter().enumerate().map(move |(i, entity)| {
            let len = match (this.lengths, this.lanes) {
                (_, Some(_)) => 0,
                (Some(lengths), None) => lengths.get(i) as usize,
                (None, None) => this.size,
            };
            let bytes = &this.data[offset..offset + len];
            offset += len;
            BatchEntry {
                entity,
                bytes,
                inserted: this
                    .inserted
                    .is_some_and(|bits| bits[i / 8] & (1 << (i % 8)) != 0),
                baseline_age: this.baseline_ages.map_or(0, |ages| ages[i]),
                older_age: this.older_ages.map_or(0, |ages| ages[i]),
            }
        })
    }
}

/// A remove list checked for valid ascending entities.
#[derive(Clone, Copy, Debug)]
pub struct RemoveView<'a> {
    component: ComponentId,
    entities: Vector<'a, u64>,
}

impl<'a> RemoveView<'a> {
    /// Checks the entity list of a remove batch.
    pub fn parse(batch: fb::RemoveBatch<'a>) -> Result<Self, WireError> {
        check_entities(batch.entities(), "removed entities")?;
        Ok(RemoveView {
            component: ComponentId(batch.component()),
            entities: batch.entities(),
        })
    }

    /// The component removed.
    pub fn component(&self) -> ComponentId {
        self.component
    }

    /// The entities it was removed from.
    pub fn entities(&self) -> impl Iterator<Item = EntityId> + 'a {
        self.entities.iter().map(EntityId)
    }
}
