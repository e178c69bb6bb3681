//! Bring your own transport: the driver of a [`super::session::Session`] whose bytes travel
//! over the engine's own transport (Steam Networking Sockets, EOS P2P, Unity Transport,
//! WebRTC data channels...) instead of QUIC. The engine reports connections that open and
//! close under its own ids, feeds in what each one received per channel, and drains what
//! to send per connection and channel, and which connections to close. No socket, no
//! runtime: everything runs on the calling thread, but dictionary trainings, which run on
//! a thread of their own.
//!
//! What the engine's transport must provide, per connection, is what
//! [`crate::proto::Channel`] states: a reliable channel that delivers every message once,
//! whole and in order, and an unreliable one of messages of at most
//! [`CustomTransport::max_unreliable`] bytes, each delivered whole or not at all, in any
//! order, maybe twice. What this driver adds to the core is the transport's part of
//! admission (how long a connection may take to present its join request, how many may
//! wait at once, the read bound of each channel), and a queue per session of what to send.
//!
//! Every input is checked: a connection id that is not open, a message over its channel's
//! bound, a call after the session left, are [`TransportError`]s and change nothing (but a
//! reliable message over its bound, which leaves a hole in an ordered stream: that ends
//! the connection, as QUIC's driver does). As over QUIC, what an admitted client's
//! reliable messages may make the host decompress is paced ([`super::pacing`]): messages
//! beyond the rate wait here, in order, for later ticks, and a client whose waiting
//! messages pass [`MAX_HELD_BYTES`] is disconnected (QUIC's flow control would have
//! stopped it).

use std::collections::VecDeque;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rustc_hash::FxHashMap;

use super::pacing::decode_cost;
use super::quic::{unix_now, CLIENT_DECODE_BURST, CLIENT_DECODE_RATE};
use super::session::{Core, SessionConfig};
use crate::proto::compression::{TrainingDone, TrainingJob};
use crate::proto::{
    self, Channel, ConnId, DisconnectCause, Output, Path, PeerDiagnostics, CLOSE_BROKEN_STREAM,
    CLOSE_REFUSED, CLOSE_SHUTDOWN, MAX_JOIN_ANSWER, MAX_JOIN_REQUEST,
};

/// The close code an engine reports ([`super::session::Session::transport_closed`]) when
/// its transport lost the connection (a timeout, a network problem) or cannot tell why it
/// ended; any code that is not one of [`CLOSE_SHUTDOWN`], [`CLOSE_REFUSED`] or
/// [`CLOSE_BROKEN_STREAM`] is taken as this one. (65535: no code the session sends, and
/// within a C enum's range.)
pub const CLOSE_LOST: u32 = 0xFFFF;
/// The least [`CustomTransport::max_unreliable`] accepted.
pub const MIN_UNRELIABLE: usize = 256;
/// The most [`CustomTransport::max_unreliable`] accepted: larger unreliable messages are
/// not made by the session, and not worth accepting from a peer.
pub const MAX_UNRELIABLE: usize = 64 << 10;
/// How long a client waits for the answer to its join request (as over QUIC).
const JOIN_TIMEOUT: Duration = Duration::from_secs(5);
/// Unreliable bytes one connection may have queued, not yet polled by the engine: past
/// them, its unreliable messages are dropped (newer state replaces them). Below it, the
/// state datagrams of a tick are budgeted by what is still queued, so an engine that polls
/// late gets fewer, not staler, datagrams.
const MAX_QUEUED_UNRELIABLE: usize = 1 << 20;
/// Bytes of a client's reliable messages a host holds back for pacing: past them the
/// client sends faster than its messages may be decoded, and is disconnected.
pub const MAX_HELD_BYTES: usize = CLIENT_DECODE_BURST as usize;

/// What the engine's transport provides (see the module documentation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CustomTransport {
    /// Largest unreliable message the transport carries, in bytes (its MTU for an
    /// unfragmented message; default 1200). Between [`MIN_UNRELIABLE`] and
    /// [`MAX_UNRELIABLE`]; state datagrams stay within 1472 bytes whatever it says.
    pub max_unreliable: usize,
    /// The round trip assumed for a connection until the engine reports one
    /// ([`super::session::Session::transport_set_rtt`]); the protocol measures its own
    /// from acknowledgements after its first resends. Default 100 ms.
    pub initial_rtt: Duration,
}

impl Default for CustomTransport {
    fn default() -> Self {
        CustomTransport {
            max_unreliable: 1200,
            initial_rtt: Duration::from_millis(100),
        }
    }
}

impl CustomTransport {
    /// Why these settings are unusable, if they are.
    pub fn validate(&self) -> Result<(), String> {
        if !(MIN_UNRELIABLE..=MAX_UNRELIABLE).contains(&self.max_unreliable) {
            return Err(format!(
                "max_unreliable {} is outside {MIN_UNRELIABLE}..={MAX_UNRELIABLE} bytes",
                self.max_unreliable
            ));
        }
        Ok(())
    }
}

/// What the session asks the engine's transport to do, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TransportOutput {
    /// Send `bytes`, one message, on `conn`'s `channel`.
    Send {
        /// The engine's connection id.
        conn: u64,
        /// The channel.
        channel: Channel,
        /// The message.
        bytes: Vec<u8>,
    },
    /// Close `conn` once what was sent on its reliable channel went out (an orderly close
    /// of the transport, which delivers it), telling the peer `code` and `reason` if the
    /// transport can carry them: the peer's engine reports them to its session.
    Close {
        /// The engine's connection id.
        conn: u64,
        /// [`CLOSE_SHUTDOWN`], [`CLOSE_REFUSED`] or [`CLOSE_BROKEN_STREAM`].
        code: u32,
        /// Why, in words.
        reason: String,
    },
}

impl TransportOutput {
    /// The engine's connection id the output is for.
    pub fn conn(&self) -> u64 {
        match self {
            TransportOutput::Send { conn, .. } | TransportOutput::Close { conn, .. } => *conn,
        }
    }
}

/// Why a custom-transport call was refused. Nothing changed, but where it says otherwise.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TransportError {
    /// A custom-transport call on a session over QUIC, or a QUIC call on a session over a
    /// custom transport.
    #[error("this call needs a session over {0}")]
    WrongTransport(&'static str),
    /// The connection id is not open: never reported, or reported closed.
    #[error("connection {0} is not open in this session (never reported, or reported closed)")]
    UnknownConnection(u64),
    /// The connection id is open already, or a client has its connection already.
    #[error("connection {0} is open already (a client has one connection at a time)")]
    ConnectionExists(u64),
    /// A message over its channel's bound. A reliable one ended its connection (the
    /// ordered stream it belonged to lost a message): the session asks to close it.
    #[error("a {len}-byte {channel} message on connection {conn}, over the bound of {max} bytes")]
    TooLarge {
        /// The connection.
        conn: u64,
        /// "reliable" or "unreliable".
        channel: &'static str,
        /// The message's length.
        len: usize,
        /// The bound.
        max: usize,
    },
    /// The session left ([`super::session::Session::leave`]), or this client's
    /// connection ended and [`super::session::Session::reconnect`] was not called.
    #[error("{0}")]
    Closed(&'static str),
}

/// Where a connection is, as this driver reads it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Host: open, its join request awaited.
    Opening,
    /// Host: the join request was presented; client: sent, its answer awaited.
    Requested,
    /// The core admitted it: its reliable messages are bounded by `read_bound`.
    Admitted { read_bound: usize },
    /// The session closed it; what still arrives on it is dropped.
    Closing,
}

/// One connection of the engine's.
#[derive(Debug)]
struct Conn {
    core: ConnId,
    phase: Phase,
    opened: Instant,
    rtt: Duration,
    /// Unreliable bytes queued for it, not yet polled.
    queued_unreliable: usize,
    bytes_sent: u64,
    bytes_received: u64,
    messages_sent: u64,
    messages_received: u64,
    /// Host: the pacing of an admitted client's reliable messages.
    pacing: Option<Pacing>,
}

/// What an admitted client's reliable messages may make the host decompress: a token
/// bucket of declared output ([`decode_cost`]), and the messages waiting for it, in order.
#[derive(Debug)]
struct Pacing {
    tokens: f64,
    at: Instant,
    burst: f64,
    held: VecDeque<(Vec<u8>, usize)>,
    held_bytes: usize,
}

impl Pacing {
    fn new(read_bound: usize, now: Instant) -> Pacing {
        let burst = CLIENT_DECODE_BURST.max(2 * read_bound as u64) as f64;
        Pacing {
            tokens: burst,
            at: now,
            burst,
            held: VecDeque::new(),
            held_bytes: 0,
        }
    }

    /// Takes `cost` if the bucket holds it now (a cost above the burst needs a full one).
    fn take(&mut self, cost: usize, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.at = now;
        self.tokens = (self.tokens + elapsed * CLIENT_DECODE_RATE as f64).min(self.burst);
        let need = (cost as f64).min(self.burst);
        if self.tokens < need {
            return false;
        }
        self.tokens -= need;
        true
    }
}

impl Conn {
    /// The longest reliable message accepted now.
    fn read_bound(&self, host: bool) -> usize {
        match self.phase {
            Phase::Admitted { read_bound } => read_bound,
            _ if host => MAX_JOIN_REQUEST,
            _ => MAX_JOIN_ANSWER,
        }
    }
}

/// The custom-transport side of a session. See the module documentation.
pub(super) struct CustomDriver {
    transport: CustomTransport,
    /// Bytes of state datagrams per connection and tick, as configured.
    budget: usize,
    max_pending: usize,
    admission_timeout: Duration,
    /// By the engine's id.
    conns: FxHashMap<u64, Conn>,
    /// The engine's id of each connection the core knows.
    engine_ids: FxHashMap<ConnId, u64>,
    next_conn: u64,
    out: VecDeque<TransportOutput>,
    left: bool,
    trainings: Vec<JoinHandle<()>>,
}

/// How a client reads a close its own side decided, by code.
fn local_cause(code: u32) -> DisconnectCause {
    match code {
        CLOSE_BROKEN_STREAM => DisconnectCause::Protocol,
        CLOSE_REFUSED => DisconnectCause::Refused,
        _ => DisconnectCause::Local,
    }
}

/// How a client reads its host's close, by the code the engine reports.
fn peer_cause(code: u32) -> DisconnectCause {
    match code {
        CLOSE_SHUTDOWN => DisconnectCause::HostClosed,
        CLOSE_REFUSED => DisconnectCause::Refused,
        CLOSE_BROKEN_STREAM => DisconnectCause::Protocol,
        _ => DisconnectCause::TimedOut,
    }
}

fn channel_name(channel: Channel) -> &'static str {
    match channel {
        Channel::Reliable => "reliable",
        Channel::Unreliable => "unreliable",
    }
}

impl CustomDriver {
    pub(super) fn new(transport: CustomTransport, config: &SessionConfig) -> CustomDriver {
        CustomDriver {
            transport,
            budget: config.budget_bytes_per_tick,
            max_pending: config.max_pending_admissions.max(1),
            admission_timeout: config.admission_timeout,
            conns: FxHashMap::default(),
            engine_ids: FxHashMap::default(),
            next_conn: 1,
            out: VecDeque::new(),
            left: false,
            trainings: Vec::new(),
        }
    }

    fn check_open(&self) -> Result<(), TransportError> {
        if self.left {
            return Err(TransportError::Closed("the session left"));
        }
        Ok(())
    }

    /// The engine opened connection `id`: on a host, a peer connected (its first reliable
    /// message is its join request); on a client, the connection to the host is up (the
    /// join request goes now).
    pub(super) fn connected(
        &mut self,
        core: &mut Core,
        id: u64,
        now: Instant,
    ) -> Result<(), TransportError> {
        self.check_open()?;
        if let Some(conn) = self.conns.get(&id) {
            if conn.phase != Phase::Closing {
                return Err(TransportError::ConnectionExists(id));
            }
            // The session closed it and the engine reuses its id: that one ended.
            self.forget(id);
        }
        if let Core::Client(client) = core {
            if let Some(open) = client.connection() {
                let open = self.engine_ids.get(&open).copied().unwrap_or(id);
                return Err(TransportError::ConnectionExists(open));
            }
            if client.is_closed() {
                return Err(TransportError::Closed(
                    "this client's connection ended: call reconnect() before reporting a new one",
                ));
            }
        }
        let conn = ConnId(self.next_conn);
        self.next_conn += 1;
        let pending = self
            .conns
            .values()
            .filter(|c| c.phase == Phase::Opening)
            .count();
        let phase = match core {
            Core::Host(_) => Phase::Opening,
            Core::Client(_) => Phase::Requested,
        };
        self.conns.insert(
            id,
            Conn {
                core: conn,
                phase,
                opened: now,
                rtt: self.transport.initial_rtt,
                queued_unreliable: 0,
                bytes_sent: 0,
                bytes_received: 0,
                messages_sent: 0,
                messages_received: 0,
                pacing: None,
            },
        );
        self.engine_ids.insert(conn, id);
        match core {
            Core::Host(_) if pending >= self.max_pending => {
                let reason = "too many connections await admission: try again".to_owned();
                self.close(core, id, CLOSE_REFUSED, reason, now);
            }
            Core::Host(_) => {}
            Core::Client(client) => client.connected(conn),
        }
        self.pump(core, now);
        Ok(())
    }

    /// Connection `id` received `bytes` on `channel`.
    pub(super) fn receive(
        &mut self,
        core: &mut Core,
        id: u64,
        channel: Channel,
        bytes: &[u8],
        now: Instant,
    ) -> Result<(), TransportError> {
        self.check_open()?;
        let host = matches!(core, Core::Host(_));
        let conn = self
            .conns
            .get(&id)
            .ok_or(TransportError::UnknownConnection(id))?;
        if conn.phase == Phase::Closing {
            return Ok(());
        }
        let max = match channel {
            Channel::Reliable => conn.read_bound(host),
            Channel::Unreliable => self.transport.max_unreliable,
        };
        if bytes.len() > max {
            let too_large = TransportError::TooLarge {
                conn: id,
                channel: channel_name(channel),
                len: bytes.len(),
                max,
            };
            if channel == Channel::Reliable {
                let reason = format!("stream broken: {too_large}");
                self.close(core, id, CLOSE_BROKEN_STREAM, reason, now);
                self.pump(core, now);
            }
            return Err(too_large);
        }
        let Some(conn) = self.conns.get_mut(&id) else {
            return Err(TransportError::UnknownConnection(id));
        };
        conn.bytes_received += bytes.len() as u64;
        conn.messages_received += 1;
        let (cid, phase) = (conn.core, conn.phase);
        if let (Some(pacing), Channel::Reliable) = (&mut conn.pacing, channel) {
            let cost = decode_cost(bytes, max);
            if !pacing.held.is_empty() || !pacing.take(cost, now) {
                pacing.held_bytes += bytes.len();
                if pacing.held_bytes > MAX_HELD_BYTES {
                    let reason = format!(
                        "stream broken: over {MAX_HELD_BYTES} bytes of messages wait to be \
                         decoded (sent faster than {CLIENT_DECODE_RATE} bytes a second)"
                    );
                    self.close(core, id, CLOSE_BROKEN_STREAM, reason, now);
                    self.pump(core, now);
                } else {
                    pacing.held.push_back((bytes.to_vec(), cost));
                }
                return Ok(());
            }
        }
        match (&mut *core, channel) {
            (Core::Host(host), Channel::Reliable) if phase == Phase::Opening => {
                conn.phase = Phase::Requested;
                host.handle_join(cid, None, now, unix_now(), bytes);
            }
            (Core::Host(host), Channel::Reliable) => host.handle_stream(cid, now, bytes),
            (Core::Client(client), Channel::Reliable) => client.handle_stream(cid, now, bytes),
            // Nothing is owed to a peer before admission.
            (Core::Host(_), Channel::Unreliable) if !matches!(phase, Phase::Admitted { .. }) => {}
            (Core::Host(host), Channel::Unreliable) => host.handle_datagram(cid, now, now, bytes),
            (Core::Client(client), Channel::Unreliable) => {
                client.handle_datagram(cid, now, now, bytes)
            }
        }
        self.pump(core, now);
        Ok(())
    }

    /// Connection `id` ended, the peer having closed it with `code` (or [`CLOSE_LOST`])
    /// and `reason`. What was queued for it goes. Accepted after the session left too: it
    /// is how the engine reports the closes the session asked for.
    pub(super) fn closed(
        &mut self,
        core: &mut Core,
        id: u64,
        code: u32,
        reason: &str,
        now: Instant,
    ) -> Result<(), TransportError> {
        let conn = self
            .conns
            .get(&id)
            .ok_or(TransportError::UnknownConnection(id))?;
        let (cid, phase) = (conn.core, conn.phase);
        self.forget(id);
        if phase != Phase::Closing {
            match core {
                Core::Host(host) => host.handle_closed(cid, now, reason.to_owned()),
                Core::Client(client) => {
                    client.handle_closed(cid, reason.to_owned(), peer_cause(code))
                }
            }
            self.pump(core, now);
        }
        Ok(())
    }

    /// The engine's round-trip estimate of connection `id`.
    pub(super) fn set_rtt(&mut self, id: u64, rtt: Duration) -> Result<(), TransportError> {
        self.check_open()?;
        let conn = self
            .conns
            .get_mut(&id)
            .ok_or(TransportError::UnknownConnection(id))?;
        conn.rtt = rtt;
        Ok(())
    }

    /// The next output, without taking it.
    pub(super) fn peek(&self) -> Option<&TransportOutput> {
        self.out.front()
    }

    /// Takes the next output.
    pub(super) fn poll(&mut self) -> Option<TransportOutput> {
        let output = self.out.pop_front()?;
        if let TransportOutput::Send {
            conn,
            channel,
            bytes,
        } = &output
        {
            if let Some(c) = self.conns.get_mut(conn) {
                if *channel == Channel::Unreliable {
                    c.queued_unreliable = c.queued_unreliable.saturating_sub(bytes.len());
                }
                c.bytes_sent += bytes.len() as u64;
                c.messages_sent += 1;
            }
        }
        Some(output)
    }

    /// One tick at `now`: closes connections past their admission's time, ticks the core
    /// within what each connection has room for, and queues its outputs.
    pub(super) fn tick(&mut self, core: &mut Core, now: Instant) {
        self.trainings.retain(|t| !t.is_finished());
        if self.left {
            return;
        }
        let late: Vec<(u64, Phase)> = self
            .conns
            .iter()
            .filter(|(_, c)| match (c.phase, &*core) {
                (Phase::Opening, _) => now.duration_since(c.opened) > self.admission_timeout,
                (Phase::Requested, Core::Client(_)) => now.duration_since(c.opened) > JOIN_TIMEOUT,
                _ => false,
            })
            .map(|(&id, c)| (id, c.phase))
            .collect();
        for (id, phase) in late {
            let (code, reason) = match phase {
                Phase::Opening => (CLOSE_REFUSED, "no join request in time"),
                _ => (CLOSE_SHUTDOWN, "the host did not answer the join request"),
            };
            if let (Core::Client(client), Some(c)) = (&mut *core, self.conns.get(&id)) {
                // The client reads it as a timeout (before the close says "local").
                client.handle_closed(c.core, reason.to_owned(), DisconnectCause::TimedOut);
            }
            self.close(core, id, code, reason.to_owned(), now);
        }
        self.release_held(core, now);
        let budget = self.budget;
        let (conns, engine_ids) = (&self.conns, &self.engine_ids);
        let max_unreliable = self.transport.max_unreliable;
        let path = |id: ConnId| {
            let conn = engine_ids.get(&id).and_then(|e| conns.get(e));
            conn.map_or(
                Path {
                    max_datagram: 0,
                    rtt: Duration::ZERO,
                    budget: 0,
                },
                |c| Path {
                    max_datagram: max_unreliable,
                    rtt: c.rtt,
                    budget: budget.saturating_sub(c.queued_unreliable),
                },
            )
        };
        match core {
            Core::Host(host) => host.tick(now, path),
            Core::Client(client) => {
                if let Some(id) = client.connection() {
                    client.tick(now, path(id));
                }
            }
        }
        self.pump(core, now);
    }

    /// Hands the host the held messages of each client that its pacing lets through now.
    fn release_held(&mut self, core: &mut Core, now: Instant) {
        let Core::Host(host) = core else { return };
        for conn in self.conns.values_mut() {
            let Some(pacing) = conn
                .pacing
                .as_mut()
                .filter(|_| conn.phase != Phase::Closing)
            else {
                continue;
            };
            while let Some(&(_, cost)) = pacing.held.front() {
                if !pacing.take(cost, now) {
                    break;
                }
                let Some((bytes, _)) = pacing.held.pop_front() else {
                    break;
                };
                pacing.held_bytes -= bytes.len();
                host.handle_stream(conn.core, now, &bytes);
            }
        }
        self.pump(core, now);
    }

    /// Runs a dictionary training on a thread of its own; its result goes to `tx`. Should
    /// no thread start, it runs here: late is better than never.
    pub(super) fn train(&mut self, job: TrainingJob, tx: std::sync::mpsc::Sender<TrainingDone>) {
        let (give, take) = std::sync::mpsc::channel::<TrainingJob>();
        let here = tx.clone();
        let started = std::thread::Builder::new()
            .name("theta-train".to_owned())
            .spawn(move || {
                if let Ok(job) = take.recv() {
                    // The session may be gone by now; nobody is left to tell.
                    let _ = tx.send(job.run());
                }
            });
        match started {
            Ok(handle) => {
                let _ = give.send(job);
                self.trainings.push(handle);
            }
            Err(_) => {
                // The receiver lives in the session, which called this.
                let _ = here.send(job.run());
            }
        }
    }

    /// Says goodbye: [`proto::GOODBYE_DATAGRAM`] to every admitted peer, then a close of
    /// every open connection. Only [`CustomDriver::poll`] works after it.
    pub(super) fn leave(&mut self, core: &mut Core, now: Instant) {
        if self.left {
            return;
        }
        match core {
            Core::Host(host) => host.goodbye(),
            Core::Client(client) => client.goodbye(),
        }
        self.pump(core, now);
        let reason = match core {
            Core::Host(_) => proto::HOST_SHUT_DOWN,
            Core::Client(_) => proto::CLIENT_LEFT,
        };
        let mut open: Vec<(u64, ConnId)> = self
            .conns
            .iter()
            .filter(|(_, c)| c.phase != Phase::Closing)
            .map(|(&id, c)| (id, c.core))
            .collect();
        open.sort_unstable_by_key(|&(_, conn)| conn);
        for (id, _) in open {
            if let Some(c) = self.conns.get_mut(&id) {
                c.phase = Phase::Closing;
            }
            self.out.push_back(TransportOutput::Close {
                conn: id,
                code: CLOSE_SHUTDOWN,
                reason: reason.to_owned(),
            });
        }
        self.left = true;
    }

    /// Whether the session left.
    pub(super) fn has_left(&self) -> bool {
        self.left
    }

    /// Closes connection `id` from this side: the engine is asked to, and the core hears
    /// it ended.
    fn close(&mut self, core: &mut Core, id: u64, code: u32, reason: String, now: Instant) {
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        if conn.phase == Phase::Closing {
            return;
        }
        conn.phase = Phase::Closing;
        let cid = conn.core;
        self.out.push_back(TransportOutput::Close {
            conn: id,
            code,
            reason: reason.clone(),
        });
        match core {
            Core::Host(host) => host.handle_closed(cid, now, reason),
            Core::Client(client) => client.handle_closed(cid, reason, local_cause(code)),
        }
    }

    /// Forgets connection `id` and what was queued for it.
    fn forget(&mut self, id: u64) {
        if let Some(conn) = self.conns.remove(&id) {
            self.engine_ids.remove(&conn.core);
        }
        self.out.retain(|o| o.conn() != id);
    }

    /// Queues what the core asked, in order, under the engine's ids; admissions set read
    /// bounds, closes end connections here at once.
    fn pump(&mut self, core: &mut Core, now: Instant) {
        while let Some(output) = core.poll_output() {
            match output {
                Output::Send {
                    conn,
                    channel,
                    bytes,
                } => {
                    let Some(&id) = self.engine_ids.get(&conn) else {
                        continue;
                    };
                    let Some(c) = self.conns.get_mut(&id) else {
                        continue;
                    };
                    if c.phase == Phase::Closing {
                        continue;
                    }
                    if channel == Channel::Unreliable {
                        if c.queued_unreliable + bytes.len() > MAX_QUEUED_UNRELIABLE {
                            continue;
                        }
                        c.queued_unreliable += bytes.len();
                    }
                    self.out.push_back(TransportOutput::Send {
                        conn: id,
                        channel,
                        bytes,
                    });
                }
                Output::Admitted {
                    conn,
                    read_bound,
                    paced,
                } => {
                    let c = self
                        .engine_ids
                        .get(&conn)
                        .and_then(|e| self.conns.get_mut(e));
                    if let Some(c) = c.filter(|c| c.phase != Phase::Closing) {
                        c.phase = Phase::Admitted { read_bound };
                        c.pacing = paced.then(|| Pacing::new(read_bound, now));
                    }
                }
                Output::Close { conn, code, reason } => {
                    if let Some(&id) = self.engine_ids.get(&conn) {
                        self.close(core, id, code, reason, now);
                    }
                }
            }
        }
    }

    /// Adds the transport's figures of the peer on `conn`: bytes and messages handed to
    /// the engine and taken from it, the round trip it reported.
    pub(super) fn fill(&self, p: &mut PeerDiagnostics, conn: ConnId) {
        let Some(c) = self.engine_ids.get(&conn).and_then(|e| self.conns.get(e)) else {
            return;
        };
        p.rtt = c.rtt;
        p.wire_bytes_sent = c.bytes_sent;
        p.wire_bytes_received = c.bytes_received;
        p.packets_sent = c.messages_sent;
        p.packets_received = c.messages_received;
    }
}

impl Drop for CustomDriver {
    /// Joins the training threads: nothing the session started outlives it.
    fn drop(&mut self) {
        for training in self.trainings.drain(..) {
            let _ = training.join();
        }
    }
}
