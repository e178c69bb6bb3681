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

pub use super::events::MessageStats;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

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
/// First byte of an unreliable message's datagram: no state datagram (0x10, see
/// `wire::datagram_header`), goodbye (0x7F) or pose packet (0x80..) starts with it.
pub const MESSAGE_DATAGRAM_TAG: u8 = 0x7E;
/// Close code of a peer disconnected for flooding the host with messages: a refusal
/// ([`super::CLOSE_REFUSED`]), as every driver reads it, since the peer may not resume
/// and only a fresh join lets it back.
pub const CLOSE_FLOODING: u32 = super::CLOSE_REFUSED;
/// Why a message over its sender's rate was refused.
pub const THROTTLED: &str = "throttled";
/// Why a held message was refused when the host's engine did not decide in time.
pub const NO_ANSWER: &str = "the host did not answer";

mod relay;

pub(crate) use relay::{HostMessages, HostSide};

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
