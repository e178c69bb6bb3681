//! What the protocol tells its driver and the engine: events, the figures of a session,
//! and the outputs a driver carries out (bytes to send, connections to open up or close).

use std::net::SocketAddr;
use std::time::Duration;

use super::compression::{ComponentWire, KindDiagnostics};
use super::outbox::OutboxStats;
use super::poses::{PoseLinkStats, RelayStats};
use crate::registry::ComponentId;
use crate::replica::EventKind;
use crate::world::{EntityId, PeerId};

#[cfg(doc)]
use super::{Client, Host};
#[cfg(doc)]
use crate::wire::codec::MessageKind;

/// Why a client's connection to its host ended, as a kind an engine can act on (the
/// event's text says more).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum DisconnectCause {
    /// The host refused the join (token expired, forged or used, registry mismatch, ...):
    /// joining again needs a fresh token or another build.
    Refused = 1,
    /// Nothing answered at the address, or the address is unusable.
    Unreachable = 2,
    /// The host's certificate did not match the pinned fingerprint or the CA roots.
    Certificate = 3,
    /// The connection went silent past the idle timeout, the host did not answer the
    /// join request in time, or it was too busy admitting other connections to take this
    /// one: worth resuming (or joining again).
    TimedOut = 4,
    /// The host closed the connection (it shut down).
    HostClosed = 5,
    /// The host broke the protocol (a malformed answer, a broken compression stream).
    Protocol = 6,
    /// This side closed it.
    Local = 7,
}

/// Something the engine should know (`Session::poll_events`, [`Host::poll_event`],
/// [`Client::poll_event`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SessionEvent {
    /// A change to the replicated state (clients).
    Replica {
        /// What happened.
        kind: EventKind,
        /// The entity.
        entity: EntityId,
        /// The component, for inserts, updates and removes.
        component: ComponentId,
        /// Host tick of the change.
        tick: u64,
        /// The value, for inserts and updates.
        data: Vec<u8>,
    },
    /// The host admitted this client as `peer`.
    Joined {
        /// This client's peer id.
        peer: PeerId,
    },
    /// A client joined or resumed: on the host, one of its clients; on a client, another
    /// client of the same host (a newly admitted client hears of every client already
    /// there).
    PeerJoined {
        /// Its peer id.
        peer: PeerId,
    },
    /// The host refused a connection's join request (host); nothing was allocated for it.
    JoinRefused {
        /// Where the request came from, when the transport knows.
        from: Option<SocketAddr>,
        /// Which check failed.
        reason: String,
    },
    /// A client left or was lost: on the host, one of its clients; on a client, another
    /// client of the same host (its avatar's devices are forgotten).
    PeerLeft {
        /// Its peer id.
        peer: PeerId,
        /// Why.
        reason: String,
    },
    /// The connection to the host ended or was refused (client).
    Disconnected {
        /// Why, in words: a refusal names the failed check.
        reason: String,
        /// Why, as a kind an engine can act on.
        cause: DisconnectCause,
    },
    /// A write to an entity the writer does not own was refused and not applied: on the
    /// host, `peer` is the offending client; on that client, its own id.
    WriteRejected {
        /// The writer.
        peer: PeerId,
        /// The entity.
        entity: EntityId,
        /// The component (0 for a spawn or despawn).
        component: ComponentId,
        /// Why.
        reason: String,
    },
    /// The owner of an entity (`component` 0) or of one of its components changed (every
    /// peer; a joining client hears one for every record that differs from "its creator
    /// owns it").
    OwnershipChanged {
        /// The entity.
        entity: EntityId,
        /// The component, or 0 for the whole entity.
        component: ComponentId,
        /// The new owner; `None` is nobody.
        owner: Option<PeerId>,
    },
    /// The host refused this client's ownership request, release or policy change
    /// (client).
    OwnershipDenied {
        /// The entity.
        entity: EntityId,
        /// The component, or 0 for the whole entity.
        component: ComponentId,
        /// Why, as a kind.
        refusal: OwnershipRefusal,
        /// Why, in words.
        reason: String,
    },
    /// A client asks for ownership the policy would grant, and the host consults its
    /// engine (host, with [`super::Config::ownership_hook`]): answer with
    /// `Host::decide_ownership(request, ..)`.
    OwnershipRequested {
        /// The id to answer with.
        request: u64,
        /// The requester.
        peer: PeerId,
        /// The entity.
        entity: EntityId,
        /// The component, or 0 for the whole entity.
        component: ComponentId,
    },
    /// An entity left this client's interest (client): it still exists, but this client
    /// no longer holds it nor hears of it until it enters again (as a spawn).
    Left {
        /// The entity.
        entity: EntityId,
    },
    /// An application message arrived (see [`crate::proto::messages`]).
    Message {
        /// The sender: a client's peer id, or [`crate::proto::PEER_HOST`].
        from: PeerId,
        /// The application's channel id.
        channel: u32,
        /// Whether it came reliable-ordered.
        reliable: bool,
        /// The body.
        body: Vec<u8>,
    },
    /// A message this peer sent was not delivered (client; also a client's own unreliable
    /// message too large for its path).
    MessageRefused {
        /// Its destination, as sent.
        to: PeerId,
        /// Its channel.
        channel: u32,
        /// Why.
        reason: String,
    },
    /// Host, with [`crate::proto::MessageConfig::filter`] on: a client's message to
    /// another client (or to all) waits for [`Host::decide_message`] with `request`.
    MessageRequested {
        /// The id to answer with.
        request: u64,
        /// The sender.
        from: PeerId,
        /// Its destination: a peer id or [`crate::proto::PEER_ALL`].
        to: PeerId,
        /// The application's channel id.
        channel: u32,
        /// Whether it is reliable-ordered.
        reliable: bool,
        /// The body.
        body: Vec<u8>,
    },
}

/// Why the host refused an ownership request (the wire's `OwnershipRefusal`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum OwnershipRefusal {
    /// No such live entity (or component type).
    UnknownEntity = 0,
    /// Another peer holds it and the policy does not let it be taken.
    Held = 1,
    /// Its policy lets only the host assign it.
    HostOnly = 2,
    /// The host's engine refused it, or did not answer in time.
    Refused = 3,
    /// A release or policy change by a peer that does not hold it.
    NotOwner = 4,
    /// Too many requests wait for the host's engine.
    Throttled = 5,
}

impl OwnershipRefusal {
    /// The refusal of a wire value (an unknown one reads as `Refused`).
    pub fn from_u8(value: u8) -> OwnershipRefusal {
        match value {
            0 => Self::UnknownEntity,
            1 => Self::Held,
            2 => Self::HostOnly,
            4 => Self::NotOwner,
            5 => Self::Throttled,
            _ => Self::Refused,
        }
    }
}

/// Figures of one connection: the protocol's, and the transport's where a driver fills
/// them in (round trip, wire bytes and packets; zero without one).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct PeerDiagnostics {
    /// The peer.
    pub peer: PeerId,
    /// Smoothed round-trip time.
    pub rtt: Duration,
    /// UDP bytes sent, headers of QUIC included.
    pub wire_bytes_sent: u64,
    /// UDP bytes received.
    pub wire_bytes_received: u64,
    /// UDP datagrams sent.
    pub packets_sent: u64,
    /// UDP datagrams received.
    pub packets_received: u64,
    /// QUIC packets the connection counted as lost.
    pub packets_lost: u64,
    /// Payload bytes of state datagrams and stream messages sent.
    pub payload_bytes_sent: u64,
    /// Payload bytes received.
    pub payload_bytes_received: u64,
    /// Bytes of the headers of the state datagrams received (sequence numbers and
    /// acknowledgements, before the codec envelope: not in the codec's counters).
    pub datagram_header_bytes_received: u64,
    /// Encoded snapshot bytes sent (host) or received (client).
    pub snapshot_bytes: u64,
    /// State datagram counters (host side).
    pub outbox: OutboxStats,
    /// Keys waiting for an acknowledgement (host side).
    pub pending_keys: u64,
    /// Writes of this peer refused (not the owner).
    pub writes_rejected: u64,
    /// Writes of this peer dropped because it wrote before it heard that what it wrote
    /// had changed hands (host side): in flight at a transfer, never applied, not
    /// reported as refused.
    pub stale_writes: u64,
    /// Ownership requests of this peer granted (host side).
    pub ownership_granted: u64,
    /// Ownership requests, releases and policy changes of this peer refused (host side).
    pub ownership_denied: u64,
    /// State datagrams or frames from this peer that failed validation.
    pub malformed: u64,
    /// Values of this peer refused (host side) because they do not quantise to their
    /// component's declared fields (NaN or infinity, a scalar out of its range, a position
    /// too far for its precision); the rest of the frame is applied.
    pub values_refused: u64,
    /// Client: bytes of the values it keeps for the host to code later ones against
    /// (host: see `SessionDiagnostics::value_history_bytes`), bounded by 8 values of at most 256 bytes per
    /// key.
    pub baseline_history_bytes: u64,
    /// Client: state datagrams left unacknowledged because a baseline they were coded
    /// against was no longer held (overtaken by more later values than are kept; they
    /// come again), and values skipped for that reason (only from a host misbehaving).
    pub missing_baselines: u64,
    /// The XR pose stream with this peer.
    pub poses: PoseLinkStats,
    /// Client: the host's clock minus this one's, as applied to pose times (0 on the host).
    pub clock_offset_ns: i64,
    /// Client: the fastest clock round trip measured.
    pub clock_rtt: Duration,
    /// Application messages on this connection.
    pub messages: MessageStats,
}

/// Figures of a session.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SessionDiagnostics {
    /// The current tick (host) or newest host tick applied (client).
    pub tick: u64,
    /// Live entities.
    pub entities: u64,
    /// Stored values.
    pub components: u64,
    /// One entry per connection.
    pub peers: Vec<PeerDiagnostics>,
    /// State datagrams dropped because the inbound queue was full.
    pub inbound_dropped: u64,
    /// Join requests the host refused.
    pub joins_refused: u64,
    /// Compression per message kind, in [`MessageKind::ALL`] order.
    pub compression: Vec<KindDiagnostics>,
    /// Per component type, the value bytes this side sent and the wire bytes they cost,
    /// in registry order (see `net::compression` for the method).
    pub component_wire: Vec<ComponentWire>,
    /// Wire bytes of frames without values (acknowledgements, spawns, despawns, removals).
    pub unattributed_wire_bytes: u64,
    /// Host: bytes of the values sent that clients' baselines name, kept once for every
    /// client (at most 16 versions of each key; see `outbox.baseline_bytes` for each
    /// client's own records).
    pub value_history_bytes: u64,
    /// Host: values coded for state datagrams.
    pub values_coded: u64,
    /// Host: values whose coding for one client was reused for another in the same tick
    /// (they had acknowledged the same sends): the work of building a tick once.
    pub values_coded_shared: u64,
    /// Host: state datagram bodies encoded (FlatBuffer frames).
    pub datagrams_encoded: u64,
    /// Host: state datagram bodies reused from another client's datagram of the same tick
    /// (equal entries): sends that cost no encoding.
    pub datagrams_shared: u64,
    /// Host: state datagram envelopes reused for another client that holds the same
    /// dictionary (or none): sends that cost no compression.
    pub datagram_envelopes_shared: u64,
    /// Host: how relaying the avatars went (sections encoded once per reference set and
    /// copied to each receiver).
    pub pose_relay: RelayStats,
}

/// Message figures of one connection (see [`PeerDiagnostics::messages`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MessageStats {
    /// Messages this side sent on the connection (a host: its own and relayed ones).
    pub sent: u64,
    /// Messages taken in from the peer (a host: passed its checks; a client: delivered).
    pub received: u64,
    /// Host: the peer's messages refused, for any reason; client: refusals it was told of.
    pub refused: u64,
    /// Host: of those refused, how many for the peer's rate.
    pub throttled: u64,
    /// Unreliable messages dropped as already seen (or too old to tell).
    pub duplicates: u64,
    /// Unreliable messages dropped before sending: the queue was full or the path's
    /// datagrams too small.
    pub dropped: u64,
}
