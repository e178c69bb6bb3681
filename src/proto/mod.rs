//! The session protocol as a pure state machine: admission, acknowledgements, the outbox,
//! authority over client writes, resume, dictionaries and poses, with no sockets, threads,
//! locks or clock reads. Its shape is quinn-proto's: inputs are calls (what a connection
//! delivered, the time, the engine's writes), outputs are polled ([`Host::poll_output`]:
//! bytes to send per connection and channel, connections to open up or close;
//! [`Host::poll_event`]). The QUIC driver (`net`) runs it over quinn; an engine can
//! run it over its own transport; tests run it in a deterministic simulator.
//!
//! A transport carries two channels per connection (see [`Channel`]): reliable and
//! ordered (the join handshake, snapshot chunks, dictionaries, control, values too large for
//! a datagram), and unreliable with a maximum size (state datagrams, poses, goodbyes).

pub mod acks;
pub(crate) mod admission;
mod baselines;
mod client;
pub mod compression;
mod events;
mod host;
pub mod interest;
mod link;
pub mod messages;
pub(crate) mod outbox;
mod ownership;
pub mod poses;
pub mod priority;
mod queue;
mod rng;
pub mod room_id;
pub mod rooms;
pub mod token;
pub(crate) mod value_coding;
mod value_history;

use std::time::Duration;

pub use client::{CannotResume, Client, OwnershipCallError, HOST_SHUT_DOWN};
pub use events::{
    DisconnectCause, OwnershipRefusal, PeerDiagnostics, SessionDiagnostics, SessionEvent,
};
pub use host::{Host, HostConfigError, OwnershipError, CLIENT_LEFT, MAX_OWNERSHIP_REASON_BYTES};
pub use messages::{
    MessageConfig, MessageError, MessageStats, MAX_MESSAGE_BYTES, MAX_UNRELIABLE_MESSAGE_BYTES,
    PEER_ALL, PEER_HOST,
};
pub use queue::EventRef;

use crate::wire::codec::CodecConfig;
use crate::DEFAULT_MAX_CHUNK_BYTES;
use poses::PoseConfig;

/// A transport connection, as its driver names it: never reused while a session lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u64);

/// How bytes travel on a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Channel {
    /// Reliable and ordered: every message arrives once, in the order sent. Each message
    /// is delivered whole (the QUIC driver frames them on one stream).
    Reliable,
    /// Unreliable: each message arrives once, more than once or not at all, in any order,
    /// whole or not at all; at most [`Path::max_datagram`] bytes.
    Unreliable,
}

/// What the protocol asks its driver to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// Send `bytes` on `conn`'s `channel`.
    Send {
        /// The connection.
        conn: ConnId,
        /// The channel.
        channel: Channel,
        /// One message.
        bytes: Vec<u8>,
    },
    /// `conn` passed admission (host) or was admitted (client): read its reliable channel
    /// with messages of at most `read_bound` bytes from now on, pacing what they decompress
    /// to when `paced` (a host's client), and give it the room an admitted peer has.
    Admitted {
        /// The connection.
        conn: ConnId,
        /// Longest reliable message the peer may send; a longer one breaks the protocol.
        read_bound: usize,
        /// Whether what its messages decompress to is paced before it reaches the engine.
        paced: bool,
    },
    /// Close `conn` after what was sent on its reliable channel had a moment to arrive.
    Close {
        /// The connection.
        conn: ConnId,
        /// Why, as a code ([`CLOSE_SHUTDOWN`], [`CLOSE_REFUSED`], [`CLOSE_BROKEN_STREAM`]).
        code: u32,
        /// Why, in words.
        reason: String,
    },
}

/// What the driver knows of a connection's path when the protocol sends on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Path {
    /// Largest unreliable message the path takes now (0 while unknown: nothing goes).
    pub max_datagram: usize,
    /// The transport's smoothed round trip, for the first resend delay (the protocol
    /// measures its own from acknowledgements after that).
    pub rtt: Duration,
    /// Bytes of state datagrams the transport takes this tick (see
    /// [`Config::budget_bytes_per_tick`], which bounds it too).
    pub budget: usize,
}

/// An orderly close: the session shut down, or the peer left.
pub const CLOSE_SHUTDOWN: u32 = 0;
/// The host refused the join.
pub const CLOSE_REFUSED: u32 = 1;
/// The peer broke the protocol (a malformed reliable message, a broken compression stream):
/// every later message of that stream would be lost, so the connection ends rather than
/// diverging silently.
pub const CLOSE_BROKEN_STREAM: u32 = 2;

/// A goodbye on the unreliable channel: one byte no state datagram (0x10, see
/// `wire::datagram_header`) or pose packet (0x80..) starts with. A peer that is leaving repeats it until answered
/// by a close ([`Host::goodbye`], [`Client::goodbye`]); where a lone close can be lost on a
/// lossy path, one of many goodbyes arrives.
pub const GOODBYE_DATAGRAM: [u8; 1] = [0x7F];

/// Longest join request accepted before admission: it carries the client's component
/// types (a room server learns a new room's from it), so room for a few hundred of them;
/// a pending admission holds at most this much, and their number is bounded.
pub const MAX_JOIN_REQUEST: usize = 64 << 10;
/// Longest answer to a join request a client reads: a refusal carrying every component
/// type of the host's registry, at most.
pub const MAX_JOIN_ANSWER: usize = crate::registry::MAX_COMPONENT_TYPES
    * (crate::wire::size::DESCRIPTOR_BASE + crate::registry::MAX_NAME_BYTES)
    + 8192;

/// The protocol's settings (the driver's own, such as timeouts and sockets, are its own).
#[derive(Clone, Debug)]
pub struct Config {
    /// Bytes of state datagrams each peer may receive per tick.
    pub budget_bytes_per_tick: usize,
    /// Snapshot chunk bound for late joiners.
    pub max_chunk_bytes: usize,
    /// How long the host keeps a dropped client's state for it to resume.
    pub resume_grace: Duration,
    /// XR pose streams: volume, send-rate cap, jitter buffers.
    pub poses: PoseConfig,
    /// Codec and decompression bound per message kind (see [`compression`]).
    pub codec: CodecConfig,
    /// Host: samples of a kind (using a dictionary codec) recorded before its first
    /// dictionary is trained automatically; 0 trains only on demand.
    pub train_after_samples: u64,
    /// Host: size asked of the dictionary trainer, in bytes.
    pub dictionary_bytes: usize,
    /// Host: how long a leased grant (see [`crate::ownership`]) outlives its holder's
    /// silence. A client holding one makes sure the host hears from it four times as
    /// often.
    pub ownership_lease: Duration,
    /// Host: ownership requests the policy would grant are put to the engine
    /// ([`SessionEvent::OwnershipRequested`], `Host::decide_ownership`) when set; answered
    /// within this time, else refused. `None`: the policy decides alone.
    pub ownership_hook: Option<Duration>,
    /// Host: interest management over cubic cells of this size (metres); `None` (the
    /// default): every client gets every entity. See [`crate::interest`].
    pub interest_cell: Option<f32>,
    /// Host: each client's own interest messages set what it sees (the default); when
    /// false they are ignored and only the host's engine sets it
    /// (`Host::set_client_interest`), for server-side rules.
    pub interest_from_clients: bool,
    /// Host: values of fixed-size types go in state datagrams coded against the newest
    /// value each client acknowledged (see `proto::baselines`). Default true.
    pub value_baselines: bool,
    /// Host: application messages' limits and filter (see [`messages`]).
    pub messages: MessageConfig,
    /// Host: the room of a room server this host is; its join tokens must name it (see
    /// [`token`]). `None` (the default): a hosted session, whose tokens name no room.
    pub room: Option<room_id::RoomId>,
    /// Host: most clients connected at once; more are refused as the room being full.
    /// `None` (the default): no bound but the peer ids.
    pub max_clients: Option<usize>,
    /// Host: most entities its world holds; a client's write that would spawn more is
    /// refused. `None` (the default): no bound.
    pub max_entities: Option<usize>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            budget_bytes_per_tick: 256 * 1024,
            max_chunk_bytes: DEFAULT_MAX_CHUNK_BYTES,
            resume_grace: Duration::from_secs(30),
            poses: PoseConfig::default(),
            codec: CodecConfig::default(),
            train_after_samples: 512,
            dictionary_bytes: 16 << 10,
            ownership_lease: Duration::from_secs(5),
            ownership_hook: None,
            interest_cell: None,
            interest_from_clients: true,
            value_baselines: true,
            messages: MessageConfig::default(),
            room: None,
            max_clients: None,
            max_entities: None,
        }
    }
}

/// Queues a refused join's answer on `conn`: the encoded refusal, then the close that
/// carries `message`.
fn push_refusal(
    out: &mut std::collections::VecDeque<Output>,
    conn: ConnId,
    refusal: Vec<u8>,
    message: String,
) {
    out.push_back(Output::Send {
        conn,
        channel: Channel::Reliable,
        bytes: refusal,
    });
    out.push_back(Output::Close {
        conn,
        code: CLOSE_REFUSED,
        reason: message,
    });
}

/// Whether an unreliable message belongs to the pose channel (first byte `0x80..=0xFF`,
/// see [`crate::xr::stream`]) rather than to replication.
fn is_pose_datagram(bytes: &[u8]) -> bool {
    bytes
        .first()
        .is_some_and(|b| b & crate::xr::stream::POSE_PACKET_TAG != 0)
}
