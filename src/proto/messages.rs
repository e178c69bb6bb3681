//! Application messages: opaque bytes a peer sends to the host, to one peer or to every
//! peer, on a channel id the application chooses, reliable-ordered (on the reliable
//! channel, as a control message) or unreliable (in a datagram of its own, first byte
//! [`MESSAGE_DATAGRAM_TAG`], then a FlatBuffers `AppMessage`).
//!
//! Clients never talk to each other directly: the host relays. On the way it checks
//! each message's size, charges the sender's token buckets (messages and bytes per
//! second: over them a message is refused as [`THROTTLED`]; far over them, see
//! [`MessageConfig::flood_factor`], the sender is disconnected), refuses unknown
//! destinations, and, when [`MessageConfig::filter`] is on, holds client-to-client
//! messages until the host's engine decides on them ([`SessionEvent::MessageRequested`],
//! `Host::decide_message`). A refused message is answered with a `MessageRefused` notice,
//! which the sender sees as [`SessionEvent::MessageRefused`].
//!
//! Guarantees: reliable messages arrive exactly once, in order per (sender, receiver):
//! the reliable channel gives that on each hop, and the host relays (or, filtering,
//! releases) each sender's messages in the order they came. Unreliable ones arrive at
//! most once: every sender numbers them, and every receiver (the host before relaying
//! too) drops a number it saw, or one too old to tell, per connection. Relayed ones
//! carry the host's own numbering per destination; `from` names the original sender.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use rustc_hash::FxHashMap;

use super::compression::control_message;
use super::events::SessionEvent;
use super::link::{Link, Outputs};
use super::queue::EventQueue;
use super::{ConnId, Path};
use crate::wire::{self, fb, Encoder, Message};
use crate::world::PeerId;

/// Largest body of a reliable message, in bytes.
pub const MAX_MESSAGE_BYTES: usize = 64 << 10;
/// Largest body of an unreliable message, in bytes: with its header the datagram stays
/// within what a 1200-byte QUIC packet carries.
pub const MAX_UNRELIABLE_MESSAGE_BYTES: usize = 1024;
/// The destination that names the host.
pub const PEER_HOST: PeerId = 0xFFFE;
/// The destination that names every peer but the sender (the host included).
pub const PEER_ALL: PeerId = 0xFFFF;
/// First byte of an unreliable message's datagram: no state datagram (codec formats
/// 0..=2), goodbye (0x7F) or pose packet (0x80..) starts with it.
pub const MESSAGE_DATAGRAM_TAG: u8 = 0x7E;
/// Close code of a peer disconnected for flooding the host with messages: a refusal
/// ([`super::CLOSE_REFUSED`]), as every driver reads it, since the peer may not resume
/// and only a fresh join lets it back.
pub const CLOSE_FLOODING: u32 = super::CLOSE_REFUSED;
/// Why a message over its sender's rate was refused.
pub const THROTTLED: &str = "throttled";
/// Why a held message was refused when the host's engine did not decide in time.
pub const NO_ANSWER: &str = "the host did not answer";

/// Unreliable messages queued per connection before the oldest is dropped.
const MAX_QUEUED_DATAGRAMS: usize = 256;
/// Refusal notices sent to one peer per second (and at once); more are only counted, so a
/// flood of refused datagrams cannot make the host flood the reliable channel back.
const NOTICES_PER_SECOND: f64 = 64.0;
/// Unreliable sequence numbers a receiver remembers behind the newest.
const WINDOW: u64 = 1024;

/// Settings of application messages (the host's; a client uses none of them).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MessageConfig {
    /// Hold client-to-client (and client-to-all) messages for the host's engine to
    /// accept or refuse ([`SessionEvent::MessageRequested`]). Default off.
    pub filter: bool,
    /// How long a held message waits for a decision before it is refused with
    /// [`NO_ANSWER`]. Default 1 s.
    pub decision_timeout: Duration,
    /// Held messages at most (all senders); more are refused. Default 256.
    pub max_pending: usize,
    /// Bytes of held messages at most; more are refused. Default 4 MiB.
    pub max_pending_bytes: usize,
    /// Messages per second each client may send (its token bucket's rate). Default 120.
    pub messages_per_second: u32,
    /// Messages a client may send at once (the bucket's depth). Default 240.
    pub burst_messages: u32,
    /// Body bytes per second each client may send. Default 256 KiB.
    pub bytes_per_second: u32,
    /// Body bytes a client may send at once; a message larger than this is always
    /// throttled. Default 512 KiB.
    pub burst_bytes: u32,
    /// A client whose messages, refused ones included, exceed this many times its rates
    /// by more than this many times its bursts (a token bucket of rate × factor and depth
    /// × factor runs dry) is flooding: it is disconnected ([`CLOSE_FLOODING`]) and may not
    /// resume, not just throttled. Default 4.
    pub flood_factor: u32,
}

impl Default for MessageConfig {
    fn default() -> Self {
        MessageConfig {
            filter: false,
            decision_timeout: Duration::from_secs(1),
            max_pending: 256,
            max_pending_bytes: 4 << 20,
            messages_per_second: 120,
            burst_messages: 240,
            bytes_per_second: 256 << 10,
            burst_bytes: 512 << 10,
            flood_factor: 4,
        }
    }
}

/// Message figures of one connection (see [`super::PeerDiagnostics::messages`]).
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

/// Why a message could not be sent or a decision taken.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    /// The body is over its channel's bound.
    #[error("a message of {len} bytes exceeds the {max}-byte limit of its channel")]
    TooLarge {
        /// Bytes of the body.
        len: usize,
        /// The bound ([`MAX_MESSAGE_BYTES`] or [`MAX_UNRELIABLE_MESSAGE_BYTES`]).
        max: usize,
    },
    /// A client not (or no longer) admitted.
    #[error("this client is not connected to its host")]
    NotConnected,
    /// The destination is not a connected peer.
    #[error("peer {0} is not connected")]
    UnknownPeer(PeerId),
    /// The destination is the sender.
    #[error("a peer cannot send a message to itself")]
    ToSelf,
    /// No held message has this request id (decided already, timed out, or never).
    #[error("no message request {0} awaits a decision")]
    UnknownRequest(u64),
    /// A decision asked of a client: only a host holds messages.
    #[error("only a host decides on messages")]
    NotHost,
}

/// A token bucket: `rate` tokens a second, at most `depth` at once.
#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: f64,
    rate: f64,
    depth: f64,
    at: Instant,
}

impl Bucket {
    fn new(rate: f64, depth: f64, now: Instant) -> Bucket {
        Bucket {
            tokens: depth,
            rate,
            depth,
            at: now,
        }
    }

    /// Takes `amount` tokens at `now` if there are that many.
    fn take(&mut self, amount: f64, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.at = self.at.max(now);
        self.tokens = (self.tokens + elapsed * self.rate).min(self.depth);
        if self.tokens >= amount {
            self.tokens -= amount;
            true
        } else {
            false
        }
    }
}

/// The unreliable sequence numbers seen lately, to drop duplicates: the newest, and a
/// bitmap of the [`WINDOW`] before it. Anything older is taken for a duplicate.
#[derive(Clone, Debug, Default)]
pub(crate) struct SeqWindow {
    newest: u64,
    seen: [u64; (WINDOW / 64) as usize],
}

impl SeqWindow {
    fn bit(&mut self, seq: u64) -> (&mut u64, u64) {
        let i = seq % WINDOW;
        (&mut self.seen[(i / 64) as usize], 1 << (i % 64))
    }

    /// Records `seq` (non-zero); false when seen before or too old to tell.
    pub(crate) fn insert(&mut self, seq: u64) -> bool {
        if seq > self.newest {
            if seq - self.newest >= WINDOW {
                self.seen = Default::default();
            } else {
                for s in self.newest + 1..seq {
                    let (word, bit) = self.bit(s);
                    *word &= !bit;
                }
            }
            self.newest = seq;
            let (word, bit) = self.bit(seq);
            *word |= bit;
            return true;
        }
        if self.newest - seq >= WINDOW {
            return false;
        }
        let (word, bit) = self.bit(seq);
        let new = *word & bit == 0;
        *word |= bit;
        new
    }
}

/// Checks a body's size for its channel.
fn check_size(reliable: bool, len: usize) -> Result<(), MessageError> {
    let max = if reliable {
        MAX_MESSAGE_BYTES
    } else {
        MAX_UNRELIABLE_MESSAGE_BYTES
    };
    if len > max {
        return Err(MessageError::TooLarge { len, max });
    }
    Ok(())
}

/// An unreliable message's datagram: the tag, then the encoded message.
fn datagram(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + 1);
    out.push(MESSAGE_DATAGRAM_TAG);
    out.extend_from_slice(message);
    out
}

/// Whether an unreliable message is an application message's datagram.
pub(crate) fn is_message_datagram(bytes: &[u8]) -> bool {
    bytes.first() == Some(&MESSAGE_DATAGRAM_TAG)
}

/// Verifies a message datagram (bounded by [`wire::decode`]); `None` when malformed.
pub(crate) fn open_datagram(bytes: &[u8]) -> Option<fb::AppMessage<'_>> {
    match bytes.split_first() {
        Some((&MESSAGE_DATAGRAM_TAG, rest)) => match wire::decode(rest) {
            Ok(Message::AppMessage(message)) => Some(message),
            _ => None,
        },
        _ => None,
    }
}

/// Sends `datagrams` on `link` as far as `path` takes them; the rest are dropped and
/// counted (each reported to `refused` with its channel and destination).
fn flush(
    link: &mut Link,
    queue: &mut VecDeque<Queued>,
    path: Path,
    out: &mut Outputs,
    mut refused: impl FnMut(&Queued),
) {
    for queued in queue.drain(..) {
        if queued.bytes.len() > path.max_datagram {
            link.diagnostics.messages.dropped += 1;
            refused(&queued);
            continue;
        }
        link.diagnostics.messages.sent += 1;
        link.send_unreliable(queued.bytes, out);
    }
}

/// An unreliable message waiting for the next tick (when the path's datagram size is
/// known).
#[derive(Debug)]
struct Queued {
    channel: u32,
    to: PeerId,
    bytes: Vec<u8>,
}

/// Queues `queued`, dropping (and counting) the oldest when the queue is full.
fn enqueue(link: &mut Link, queue: &mut VecDeque<Queued>, queued: Queued) {
    if queue.len() >= MAX_QUEUED_DATAGRAMS {
        queue.pop_front();
        link.diagnostics.messages.dropped += 1;
    }
    queue.push_back(queued);
}

/// What the host keeps per client connection.
struct PeerState {
    conn: ConnId,
    messages: Bucket,
    bytes: Bucket,
    flood_messages: Bucket,
    flood_bytes: Bucket,
    notices: Bucket,
    /// Its unreliable messages seen.
    window: SeqWindow,
    /// The host's numbering of the unreliable messages it sends this client.
    next_seq: u64,
    outgoing: VecDeque<Queued>,
}

impl PeerState {
    fn new(conn: ConnId, config: &MessageConfig, now: Instant) -> PeerState {
        let messages = f64::from(config.messages_per_second);
        let bytes = f64::from(config.bytes_per_second);
        let burst_messages = f64::from(config.burst_messages);
        let burst_bytes = f64::from(config.burst_bytes);
        let flood = f64::from(config.flood_factor.max(1));
        PeerState {
            conn,
            messages: Bucket::new(messages, burst_messages, now),
            bytes: Bucket::new(bytes, burst_bytes, now),
            flood_messages: Bucket::new(messages * flood, burst_messages * flood, now),
            flood_bytes: Bucket::new(bytes * flood, burst_bytes * flood, now),
            notices: Bucket::new(NOTICES_PER_SECOND, NOTICES_PER_SECOND, now),
            window: SeqWindow::default(),
            next_seq: 1,
            outgoing: VecDeque::new(),
        }
    }
}

/// A client's message the host holds: for the engine's decision, or behind an earlier
/// one of the same sender that awaits it (order per sender is kept).
#[derive(Debug)]
struct Held {
    /// The id the engine answers with; 0 for a message that needs no decision.
    request: u64,
    to: PeerId,
    channel: u32,
    reliable: bool,
    body: Vec<u8>,
    deadline: Instant,
    /// `None` while undecided; the refusal's reason when refused.
    verdict: Option<Result<(), String>>,
}

/// The host's message state: per-client limits, windows and queues, and the held messages.
#[derive(Default)]
pub(crate) struct HostMessages {
    config: MessageConfig,
    peers: FxHashMap<PeerId, PeerState>,
    /// Per sender, its held messages in the order they came.
    held: BTreeMap<PeerId, VecDeque<Held>>,
    held_count: usize,
    held_bytes: usize,
    /// Which sender each undecided request belongs to.
    requests: FxHashMap<u64, PeerId>,
    next_request: u64,
}

impl HostMessages {
    pub(crate) fn new(config: MessageConfig) -> HostMessages {
        HostMessages {
            config,
            next_request: 1,
            ..HostMessages::default()
        }
    }

    /// The settings in force.
    pub(crate) fn config(&self) -> &MessageConfig {
        &self.config
    }

    /// New settings: limits apply to clients from their next connection; the filter and
    /// the timeout at once.
    pub(crate) fn set_config(&mut self, config: MessageConfig) {
        self.config = config;
    }

    /// The state of `peer`'s connection `conn` (fresh for a new one).
    fn peer_state(&mut self, peer: PeerId, conn: ConnId, now: Instant) -> &mut PeerState {
        let config = self.config;
        let state = self
            .peers
            .entry(peer)
            .or_insert_with(|| PeerState::new(conn, &config, now));
        if state.conn != conn {
            *state = PeerState::new(conn, &config, now);
        }
        state
    }

    /// Forgets what was kept for `peer`'s connection (it ended).
    pub(crate) fn forget(&mut self, peer: PeerId) {
        self.peers.remove(&peer);
    }

    /// When held messages next time out, or now when datagrams wait for a tick.
    pub(crate) fn next_due(&self, now: Instant) -> Option<Instant> {
        let queued = self
            .peers
            .values()
            .any(|p| !p.outgoing.is_empty())
            .then_some(now);
        let deadline = self
            .held
            .values()
            .flat_map(|q| q.iter())
            .filter(|h| h.verdict.is_none())
            .map(|h| h.deadline.max(now))
            .min();
        queued.into_iter().chain(deadline).min()
    }
}

/// The host's message state with what it acts on: the clients' links (`L` is the host's
/// per-client record), the encoder, and the event and output queues.
pub(crate) struct HostSide<'a, L> {
    pub(crate) state: &'a mut HostMessages,
    pub(crate) peers: &'a mut BTreeMap<PeerId, L>,
    pub(crate) encoder: &'a mut Encoder,
    pub(crate) events: &'a mut EventQueue,
    pub(crate) out: &'a mut Outputs,
}

impl<L: AsMut<Link>> HostSide<'_, L> {
    /// The state of `peer`'s current connection (fresh for a new one).
    fn peer_state(&mut self, peer: PeerId, now: Instant) -> Option<&mut PeerState> {
        let conn = self.peers.get_mut(&peer)?.as_mut().conn;
        Some(self.state.peer_state(peer, conn, now))
    }

    /// An unreliable message datagram from `from` at `now`. Returns a reason to
    /// disconnect the sender when it floods.
    pub(crate) fn receive_datagram(
        &mut self,
        from: PeerId,
        now: Instant,
        bytes: &[u8],
    ) -> Option<String> {
        let link = self.peers.get_mut(&from)?.as_mut();
        link.diagnostics.payload_bytes_received += bytes.len() as u64;
        let Some(message) = open_datagram(bytes) else {
            link.diagnostics.malformed += 1;
            return None;
        };
        self.receive(from, now, message, false)
    }

    /// A message from `from` at `now` (`reliable`: it came on the reliable channel).
    /// Returns a reason to disconnect the sender when it floods.
    pub(crate) fn receive(
        &mut self,
        from: PeerId,
        now: Instant,
        message: fb::AppMessage<'_>,
        reliable: bool,
    ) -> Option<String> {
        let body = message.body().bytes();
        let (to, channel) = (message.to(), message.channel());
        let link = self.peers.get_mut(&from)?.as_mut();
        let state = self.state.peer_state(from, link.conn, now);
        if !reliable {
            let fresh = message.seq() != 0 && state.window.insert(message.seq());
            if !fresh {
                if message.seq() == 0 {
                    link.diagnostics.malformed += 1;
                } else {
                    link.diagnostics.messages.duplicates += 1;
                }
                return None;
            }
        }
        // Every message counts against flooding, refused or not.
        let len = body.len() as f64;
        let messages_ok = state.flood_messages.take(1.0, now);
        let bytes_ok = state.flood_bytes.take(len, now);
        if !(messages_ok && bytes_ok) {
            let factor = self.state.config.flood_factor;
            return Some(format!(
                "flooding: sent messages at more than {factor} times its rate"
            ));
        }
        if let Err(e) = check_size(reliable, body.len()) {
            self.refuse(from, to, channel, &e.to_string(), now);
            return None;
        }
        let messages_ok = state.messages.take(1.0, now);
        let bytes_ok = state.bytes.take(len, now);
        if !(messages_ok && bytes_ok) {
            link.diagnostics.messages.throttled += 1;
            self.refuse(from, to, channel, THROTTLED, now);
            return None;
        }
        if to == from {
            self.refuse(from, to, channel, &MessageError::ToSelf.to_string(), now);
            return None;
        }
        if to != PEER_HOST && to != PEER_ALL && !self.peers.contains_key(&to) {
            let reason = MessageError::UnknownPeer(to).to_string();
            self.refuse(from, to, channel, &reason, now);
            return None;
        }
        if let Some(link) = self.peers.get_mut(&from) {
            link.as_mut().diagnostics.messages.received += 1;
        }
        let filtered = self.state.config.filter && to != PEER_HOST;
        let waiting = self.state.held.get(&from).is_some_and(|q| !q.is_empty());
        if !filtered && !waiting {
            self.deliver(from, to, channel, reliable, body, now);
            return None;
        }
        let config = self.state.config;
        if self.state.held_count >= config.max_pending
            || self.state.held_bytes + body.len() > config.max_pending_bytes
        {
            let reason = "too many messages await the host's decision";
            self.refuse(from, to, channel, reason, now);
            return None;
        }
        let request = if filtered {
            let request = self.state.next_request;
            self.state.next_request += 1;
            self.state.requests.insert(request, from);
            self.events.push(SessionEvent::MessageRequested {
                request,
                from,
                to,
                channel,
                reliable,
                body: body.to_vec(),
            });
            request
        } else {
            0
        };
        self.state.held_count += 1;
        self.state.held_bytes += body.len();
        self.state.held.entry(from).or_default().push_back(Held {
            request,
            to,
            channel,
            reliable,
            body: body.to_vec(),
            deadline: now + config.decision_timeout,
            // A message that needs no decision only waits for those before it.
            verdict: (!filtered).then_some(Ok(())),
        });
        None
    }

    /// Tells `from` (counted, and within its notice rate) that its message was refused.
    fn refuse(&mut self, from: PeerId, to: PeerId, channel: u32, reason: &str, now: Instant) {
        let Some(link) = self.peers.get_mut(&from) else {
            return;
        };
        link.as_mut().diagnostics.messages.refused += 1;
        let notify = self
            .peer_state(from, now)
            .is_some_and(|s| s.notices.take(1.0, now));
        if notify {
            let notice = control_message(&self.encoder.message_refused(channel, to, reason));
            if let Some(link) = self.peers.get_mut(&from) {
                link.as_mut().send_reliable(notice, self.out);
            }
        }
    }

    /// Delivers a message of `from` (a client, or [`PEER_HOST`]) to `to`: the host's
    /// engine, one client, or every peer but the sender. A single destination that left
    /// meanwhile is a refusal.
    fn deliver(
        &mut self,
        from: PeerId,
        to: PeerId,
        channel: u32,
        reliable: bool,
        body: &[u8],
        now: Instant,
    ) {
        if to == PEER_HOST || (to == PEER_ALL && from != PEER_HOST) {
            self.events.push(SessionEvent::Message {
                from,
                channel,
                reliable,
                body: body.to_vec(),
            });
        }
        let targets: Vec<PeerId> = match to {
            PEER_HOST => Vec::new(),
            PEER_ALL => self.peers.keys().copied().filter(|&p| p != from).collect(),
            peer if self.peers.contains_key(&peer) => vec![peer],
            peer => {
                let reason = MessageError::UnknownPeer(peer).to_string();
                self.refuse(from, to, channel, &reason, now);
                return;
            }
        };
        if reliable {
            let message = self.encoder.app_message(channel, from, to, 0, body);
            let message = control_message(&message);
            for target in targets {
                if let Some(link) = self.peers.get_mut(&target) {
                    let link = link.as_mut();
                    link.diagnostics.messages.sent += 1;
                    link.send_reliable(message.clone(), self.out);
                }
            }
            return;
        }
        for target in targets {
            let Some(link) = self.peers.get_mut(&target) else {
                continue;
            };
            let link = link.as_mut();
            let state = self.state.peer_state(target, link.conn, now);
            let seq = state.next_seq;
            state.next_seq += 1;
            let bytes = datagram(&self.encoder.app_message(channel, from, to, seq, body));
            let queued = Queued { channel, to, bytes };
            enqueue(link, &mut state.outgoing, queued);
        }
    }

    /// The host's own message to one client or all ([`PEER_ALL`]).
    pub(crate) fn send(
        &mut self,
        to: PeerId,
        channel: u32,
        reliable: bool,
        body: &[u8],
        now: Instant,
    ) -> Result<(), MessageError> {
        check_size(reliable, body.len())?;
        match to {
            PEER_HOST => return Err(MessageError::ToSelf),
            PEER_ALL => {}
            peer if !self.peers.contains_key(&peer) => return Err(MessageError::UnknownPeer(peer)),
            _ => {}
        }
        self.deliver(PEER_HOST, to, channel, reliable, body, now);
        Ok(())
    }

    /// The engine's decision on held message `request`.
    pub(crate) fn decide(
        &mut self,
        request: u64,
        accept: bool,
        reason: &str,
        now: Instant,
    ) -> Result<(), MessageError> {
        let sender = self
            .state
            .requests
            .remove(&request)
            .ok_or(MessageError::UnknownRequest(request))?;
        let verdict = if accept {
            Ok(())
        } else if reason.is_empty() {
            Err("refused by the host".to_owned())
        } else {
            Err(reason.to_owned())
        };
        if let Some(held) = self
            .state
            .held
            .get_mut(&sender)
            .and_then(|q| q.iter_mut().find(|h| h.request == request))
        {
            held.verdict = Some(verdict);
        }
        self.release(sender, now);
        Ok(())
    }

    /// Delivers or refuses `sender`'s decided messages at the front of its queue.
    fn release(&mut self, sender: PeerId, now: Instant) {
        loop {
            let Some(queue) = self.state.held.get_mut(&sender) else {
                return;
            };
            if queue.front().is_none_or(|h| h.verdict.is_none()) {
                if queue.is_empty() {
                    self.state.held.remove(&sender);
                }
                return;
            }
            let Some(held) = queue.pop_front() else {
                return;
            };
            self.state.held_count -= 1;
            self.state.held_bytes -= held.body.len();
            match held.verdict {
                Some(Ok(())) => {
                    let Held {
                        to,
                        channel,
                        reliable,
                        body,
                        ..
                    } = held;
                    self.deliver(sender, to, channel, reliable, &body, now);
                }
                Some(Err(reason)) => self.refuse(sender, held.to, held.channel, &reason, now),
                None => {}
            }
        }
    }

    /// One tick at `now`: refuses the held messages whose decision timed out, and sends
    /// the queued datagrams (`path` per connection).
    pub(crate) fn tick(&mut self, now: Instant, mut path: impl FnMut(ConnId) -> Path) {
        let mut expired = Vec::new();
        for (&sender, queue) in &mut self.state.held {
            for held in queue.iter_mut() {
                if held.verdict.is_none() && held.deadline <= now {
                    held.verdict = Some(Err(NO_ANSWER.to_owned()));
                    self.state.requests.remove(&held.request);
                    expired.push(sender);
                }
            }
        }
        expired.dedup();
        for sender in expired {
            self.release(sender, now);
        }
        for (peer, record) in self.peers.iter_mut() {
            let link = record.as_mut();
            let Some(state) = self.state.peers.get_mut(peer) else {
                continue;
            };
            if state.conn != link.conn || state.outgoing.is_empty() {
                continue;
            }
            let path = path(link.conn);
            // A relayed datagram too large for this client's path is lost, as any
            // unreliable message may be; the sender is not told.
            flush(link, &mut state.outgoing, path, self.out, |_| {});
        }
    }
}

/// A client's message state.
#[derive(Default)]
pub(crate) struct ClientMessages {
    /// The connection `window` belongs to (the host numbers anew per connection).
    conn: Option<ConnId>,
    window: SeqWindow,
    next_seq: u64,
    outgoing: VecDeque<Queued>,
}

impl ClientMessages {
    /// Sends a message from `own` to `to` on `link` (`None`: not admitted).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn send(
        &mut self,
        link: Option<&mut Link>,
        own: Option<PeerId>,
        to: PeerId,
        channel: u32,
        reliable: bool,
        body: &[u8],
        encoder: &mut Encoder,
        out: &mut Outputs,
    ) -> Result<(), MessageError> {
        check_size(reliable, body.len())?;
        let (Some(link), Some(own)) = (link, own) else {
            return Err(MessageError::NotConnected);
        };
        if to == own {
            return Err(MessageError::ToSelf);
        }
        if reliable {
            let message = control_message(&encoder.app_message(channel, own, to, 0, body));
            link.diagnostics.messages.sent += 1;
            link.send_reliable(message, out);
        } else {
            self.next_seq += 1;
            let message = encoder.app_message(channel, own, to, self.next_seq, body);
            let queued = Queued {
                channel,
                to,
                bytes: datagram(&message),
            };
            enqueue(link, &mut self.outgoing, queued);
        }
        Ok(())
    }

    /// A message from the host (relayed or its own), on the reliable channel or not.
    pub(crate) fn receive(
        &mut self,
        link: &mut Link,
        message: fb::AppMessage<'_>,
        reliable: bool,
        events: &mut EventQueue,
    ) {
        let body = message.body().bytes();
        if check_size(reliable, body.len()).is_err() {
            link.diagnostics.malformed += 1;
            return;
        }
        if !reliable {
            if self.conn != Some(link.conn) {
                self.conn = Some(link.conn);
                self.window = SeqWindow::default();
            }
            if message.seq() == 0 {
                link.diagnostics.malformed += 1;
                return;
            }
            if !self.window.insert(message.seq()) {
                link.diagnostics.messages.duplicates += 1;
                return;
            }
        }
        link.diagnostics.messages.received += 1;
        events.push(SessionEvent::Message {
            from: message.from(),
            channel: message.channel(),
            reliable,
            body: body.to_vec(),
        });
    }

    /// An unreliable message datagram from the host.
    pub(crate) fn receive_datagram(
        &mut self,
        link: &mut Link,
        bytes: &[u8],
        events: &mut EventQueue,
    ) {
        link.diagnostics.payload_bytes_received += bytes.len() as u64;
        match open_datagram(bytes) {
            Some(message) => self.receive(link, message, false, events),
            None => link.diagnostics.malformed += 1,
        }
    }

    /// The host refused a message of this client.
    pub(crate) fn refused(
        link: &mut Link,
        refused: fb::MessageRefused<'_>,
        events: &mut EventQueue,
    ) {
        link.diagnostics.messages.refused += 1;
        events.push(SessionEvent::MessageRefused {
            to: refused.to(),
            channel: refused.channel(),
            reason: refused.reason().unwrap_or("refused").to_owned(),
        });
    }

    /// Sends the queued unreliable messages as far as `path` takes them; a datagram
    /// larger is refused here (an event says so).
    pub(crate) fn tick(
        &mut self,
        link: &mut Link,
        path: Path,
        events: &mut EventQueue,
        out: &mut Outputs,
    ) {
        let max = path.max_datagram;
        flush(link, &mut self.outgoing, path, out, |q| {
            events.push(SessionEvent::MessageRefused {
                to: q.to,
                channel: q.channel,
                reason: format!(
                    "its datagram of {} bytes is larger than the {max} bytes the path takes",
                    q.bytes.len()
                ),
            })
        });
    }

    /// Whether unreliable messages wait for a tick.
    pub(crate) fn has_queued(&self) -> bool {
        !self.outgoing.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_drops_duplicates_and_what_is_too_old_to_tell() {
        let mut w = SeqWindow::default();
        assert!(w.insert(1));
        assert!(w.insert(3));
        assert!(!w.insert(3));
        assert!(w.insert(2));
        assert!(!w.insert(1));
        assert!(w.insert(2000));
        // 3 is more than a window behind 2000: refused, as a possible duplicate.
        assert!(!w.insert(3));
        assert!(w.insert(1999));
        assert!(!w.insert(1999));
        assert!(w.insert(2000 - WINDOW + 1));
        assert!(!w.insert(2000 - WINDOW));
        // A jump clears the bits it skips, which stood for older numbers.
        assert!(w.insert(2000 + 10));
        assert!(w.insert(2000 + 5));
    }

    #[test]
    fn a_bucket_refills_at_its_rate_up_to_its_depth() {
        let t0 = Instant::now();
        let mut b = Bucket::new(10.0, 2.0, t0);
        assert!(b.take(1.0, t0));
        assert!(b.take(1.0, t0));
        assert!(!b.take(1.0, t0));
        assert!(b.take(1.0, t0 + Duration::from_millis(100)));
        assert!(!b.take(1.0, t0 + Duration::from_millis(100)));
        // Long idle: no more than the depth.
        let later = t0 + Duration::from_secs(60);
        assert!(b.take(2.0, later));
        assert!(!b.take(1.0, later));
    }

    #[test]
    fn the_largest_unreliable_message_fits_a_quic_datagram_of_a_1200_byte_packet() {
        let mut encoder = Encoder::new();
        let body = vec![0xAB; MAX_UNRELIABLE_MESSAGE_BYTES];
        let bytes = datagram(&encoder.app_message(u32::MAX, 7, PEER_ALL, u64::MAX, &body));
        // 1200 bytes less a short header with a 20-byte connection id, a 4-byte packet
        // number, the AEAD tag and the DATAGRAM frame's type and length.
        assert!(bytes.len() <= 1200 - 1 - 20 - 4 - 16 - 3, "{}", bytes.len());
        let message = open_datagram(&bytes).expect("decodes");
        assert_eq!(message.body().bytes(), &body[..]);
        assert_eq!(message.seq(), u64::MAX);
    }

    #[test]
    fn malformed_datagrams_do_not_open() {
        assert!(open_datagram(&[]).is_none());
        assert!(open_datagram(&[MESSAGE_DATAGRAM_TAG]).is_none());
        assert!(open_datagram(&[MESSAGE_DATAGRAM_TAG, 1, 2, 3, 4, 5, 6, 7, 8, 9]).is_none());
        let mut encoder = Encoder::new();
        let other = encoder.peer_joined(3);
        assert!(open_datagram(&datagram(&other)).is_none());
        let good = datagram(&encoder.app_message(1, 2, 3, 4, b"x"));
        assert!(open_datagram(&good).is_some());
        assert!(open_datagram(&good[..good.len() / 2]).is_none());
        assert!(open_datagram(&good[1..]).is_none());
    }
}
