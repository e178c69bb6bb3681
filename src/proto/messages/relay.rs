//! The host's side of application messages: per-client limits, dedupe windows and
//! outgoing queues, the relay, and the messages held for the engine's decision (see
//! [`super`]).

use std::collections::{BTreeMap, VecDeque};
use std::time::Instant;

use rustc_hash::FxHashMap;

use super::{
    check_size, datagram, enqueue, flush, open_datagram, Bucket, MessageConfig, MessageError,
    Queued, SeqWindow, NOTICES_PER_SECOND, NO_ANSWER, PEER_ALL, PEER_HOST, THROTTLED,
};
use crate::proto::compression::control_message;
use crate::proto::events::SessionEvent;
use crate::proto::link::{Link, Outputs};
use crate::proto::queue::EventQueue;
use crate::proto::{ConnId, Path};
use crate::wire::{fb, Encoder};
use crate::world::PeerId;

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
