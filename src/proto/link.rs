//! One connection as the protocol sees it: what the peer still needs (the outbox), what it
//! sent (sequence numbers to acknowledge), its pose stream, the dictionaries it holds, the
//! compression streams each way, and the figures.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::acks::{ReceivedSeqs, ACK_RANGES_SENT};
use super::compression::{is_stream_frame, message_values, Compression, LinkStreams, PeerDicts};
use super::events::PeerDiagnostics;
use super::outbox::{Built, Encoded, Outbox, SendLimits, SharedFrames};
use super::poses::{Inbound, PoseHub, PoseLink};
use super::value_coding::ValueCoder;
use super::{Channel, ConnId, Output, Path, CLOSE_BROKEN_STREAM};
use crate::registry::ComponentId;
use crate::wire::codec::{CodecError, MessageKind};
use crate::wire::datagram_header::{self, DatagramHeader, MAX_ACK_RANGES};
use crate::wire::{self, fb, Encoder};
use crate::world::{EntityId, PeerId, World};

/// What the protocol hands its driver, in order.
pub(crate) type Outputs = VecDeque<Output>;

// A receiver refuses a header with more ranges than the wire allows.
const _: () = assert!(ACK_RANGES_SENT <= MAX_ACK_RANGES);

/// The largest body of a state datagram that keeps it within `max_datagram` bytes with
/// its header carrying `acks` (the sequence number counted at its longest) and the
/// envelope's format byte (a compressed body is never larger than the raw one).
pub(crate) fn max_body(max_datagram: usize, acks: &[(u64, u64)]) -> usize {
    max_datagram.saturating_sub(datagram_header::max_len(acks) + 1)
}

/// A state datagram opened: its header, and its body's message unless it is an
/// acknowledgement alone.
pub(crate) type Opened<'a> = (DatagramHeader, Option<Cow<'a, [u8]>>);

/// One end of a connection, as the protocol sees it.
pub(crate) struct Link {
    pub(crate) conn: ConnId,
    pub(crate) outbox: Outbox,
    /// The other side's datagrams received, to acknowledge.
    pub(crate) received: ReceivedSeqs,
    pub(crate) diagnostics: PeerDiagnostics,
    pub(crate) poses: PoseLink,
    /// The dictionaries the other side holds.
    pub(crate) dicts: PeerDicts,
    /// The delta-frame compression streams of this connection, each way.
    pub(crate) streams: LinkStreams,
    /// The tick of the snapshot sent on this connection: the other side drops frames
    /// no newer, so state waits for the next tick rather than go in one.
    pub(crate) snapshot_tick: u64,
    /// The acknowledgement ranges of this tick's datagrams (a buffer kept: see
    /// `Outbox::build`).
    acks: Vec<(u64, u64)>,
}

impl Link {
    pub(crate) fn new(conn: ConnId, peer: PeerId, poses: PoseLink) -> Link {
        Link {
            conn,
            poses,
            outbox: Outbox::default(),
            received: ReceivedSeqs::default(),
            diagnostics: PeerDiagnostics {
                peer,
                ..PeerDiagnostics::default()
            },
            dicts: PeerDicts::default(),
            streams: LinkStreams::default(),
            snapshot_tick: 0,
            acks: Vec::new(),
        }
    }

    /// When this link next has something to send without new input, seen at `now`: an
    /// acknowledgement owed, or a key due (see [`Outbox::next_due`]).
    pub(crate) fn next_due(&self, now: Instant, path: Path) -> Option<Instant> {
        if self.received.has_unacked() {
            return Some(now);
        }
        self.outbox
            .next_due(now, path.rtt.mul_f32(1.5) + Duration::from_millis(20))
    }

    /// Takes in a pose-channel datagram that arrived at `arrival`, answering a clock ping
    /// (host).
    pub(crate) fn receive_poses(
        &mut self,
        hub: &mut PoseHub,
        bytes: &[u8],
        arrival: Instant,
        now: Instant,
        relay: bool,
        out: &mut Outputs,
    ) {
        self.diagnostics.payload_bytes_received += bytes.len() as u64;
        if let Inbound::Reply(reply) = hub.receive(&mut self.poses, bytes, arrival, now, relay) {
            self.send_unreliable(reply, out);
        }
    }

    /// Sends this tick's pose datagrams (rate-capped by the hub).
    pub(crate) fn send_poses(
        &mut self,
        hub: &mut PoseHub,
        own: PeerId,
        now: Instant,
        relay: bool,
        path: Path,
        out: &mut Outputs,
    ) {
        for datagram in hub.flush(
            &mut self.poses,
            own,
            now,
            relay,
            path.max_datagram,
            path.rtt,
        ) {
            self.send_unreliable(datagram, out);
        }
    }

    /// Ends the connection when `frame`, which failed to decode with `error`, belonged to
    /// the peer's compression stream: the stream cannot recover (see
    /// [`CLOSE_BROKEN_STREAM`]). Other frames are independent; their failures are only
    /// counted.
    pub(crate) fn close_if_stream_broken(
        &mut self,
        frame: &[u8],
        error: &CodecError,
        out: &mut Outputs,
    ) {
        if is_stream_frame(frame) {
            out.push_back(Output::Close {
                conn: self.conn,
                code: CLOSE_BROKEN_STREAM,
                reason: format!("compression stream broken: {error}"),
            });
        }
    }

    pub(crate) fn send_unreliable(&mut self, bytes: Vec<u8>, out: &mut Outputs) {
        self.diagnostics.payload_bytes_sent += bytes.len() as u64;
        out.push_back(Output::Send {
            conn: self.conn,
            channel: Channel::Unreliable,
            bytes,
        });
    }

    pub(crate) fn send_reliable(&mut self, bytes: Vec<u8>, out: &mut Outputs) {
        self.diagnostics.payload_bytes_sent += bytes.len() as u64;
        out.push_back(Output::Send {
            conn: self.conn,
            channel: Channel::Reliable,
            bytes,
        });
    }

    /// The protocol's figures of this connection (a driver adds its transport's).
    pub(crate) fn diagnostics(&self) -> PeerDiagnostics {
        let mut p = self.diagnostics;
        p.outbox = self.outbox.stats;
        p.pending_keys = self.outbox.pending() as u64;
        p.poses = self.poses.stats;
        p.clock_offset_ns = self.poses.clock_offset().unwrap_or(0);
        p.clock_rtt = self.poses.clock_rtt().unwrap_or_default();
        p
    }

    /// Opens a state datagram: its header (`wire::datagram_header`), then its body's
    /// codec envelope (bounded), if any. A header that does not read, an envelope of
    /// another format, or one that does not open is counted (the envelope's failures per
    /// cause by `compression`) and the datagram dropped.
    pub(crate) fn open_datagram<'a>(
        &mut self,
        bytes: &'a [u8],
        compression: &mut Compression,
    ) -> Option<Opened<'a>> {
        self.diagnostics.payload_bytes_received += bytes.len() as u64;
        // (0x80..=0xFF, pose packets, never reach here: see `is_pose_datagram`.)
        let Ok((header, envelope)) = datagram_header::read(bytes) else {
            self.diagnostics.malformed += 1;
            return None;
        };
        self.diagnostics.datagram_header_bytes_received += (bytes.len() - envelope.len()) as u64;
        match envelope.first() {
            None => Some((header, None)),
            // Codec envelope of the body: 0 raw, 1 zstd, 2 zstd + dictionary.
            Some(0..=2) => {
                let body = compression.decode(MessageKind::Datagram, envelope).ok()?;
                Some((header, Some(body)))
            }
            Some(_) => {
                self.diagnostics.malformed += 1;
                None
            }
        }
    }

    /// Takes a state datagram in (see [`Link::open_datagram`]): its acknowledgements (at
    /// `now`), and its frame when the body verifies, the datagram is new (not a
    /// duplicate) and `accept` takes it (a frame refused is not acknowledged: its values
    /// come again).
    pub(crate) fn receive<'a>(
        &mut self,
        (header, body): (DatagramHeader, Option<&'a [u8]>),
        now: Instant,
        accept: impl FnOnce(fb::DeltaFrame<'a>) -> bool,
    ) -> Option<fb::DeltaFrame<'a>> {
        let Some(body) = body else {
            self.outbox.on_acks(header.acks().iter().copied(), now);
            // An acknowledgement alone carries nothing to acknowledge: answering it would
            // make two idle peers acknowledge each other's acknowledgements forever. Its
            // sequence number still closes the gap between the ranges around it.
            self.received.insert_silently(header.seq);
            return None;
        };
        // A body that does not verify drops the whole datagram, counted: it changes
        // nothing, its acknowledgements included.
        let Ok(frame) = wire::decode_state_datagram(body) else {
            self.diagnostics.malformed += 1;
            return None;
        };
        self.outbox.on_acks(header.acks().iter().copied(), now);
        if !accept(frame) || !self.received.insert(header.seq) {
            return None;
        }
        Some(frame)
    }

    /// Sends a snapshot chunk or delta frame on the reliable channel, in its codec
    /// envelope.
    pub(crate) fn queue(
        &mut self,
        kind: MessageKind,
        message: &[u8],
        values: &[(ComponentId, usize)],
        compression: &mut Compression,
        now: Instant,
        out: &mut Outputs,
    ) {
        let framed = compression.stream(kind, message, values, &self.dicts, &mut self.streams, now);
        self.send_reliable(framed, out);
    }

    /// Sends a delta frame on the reliable channel (a value with an ownership message, or
    /// too large for a datagram), counting its value bytes per component type.
    pub(crate) fn queue_frame(
        &mut self,
        frame: &[u8],
        compression: &mut Compression,
        now: Instant,
        out: &mut Outputs,
    ) {
        let values = message_values(frame);
        self.queue(
            MessageKind::DeltaFrame,
            frame,
            &values,
            compression,
            now,
            out,
        );
    }

    /// Sends this tick's datagrams of the outbox (or an acknowledgement alone), each its
    /// header and its body's codec envelope, within `budget` bytes and what `path` takes;
    /// `points` orders what waits when not everything fits (see `proto::priority`).
    /// `shared` (host) keeps the bodies of this tick for the other clients to share.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn send(
        &mut self,
        world: &World,
        tick: u64,
        now: Instant,
        path: Path,
        budget: usize,
        points: &dyn Fn(EntityId) -> u32,
        (coder, encoder, shared): (&mut ValueCoder, &mut Encoder, Option<&mut SharedFrames>),
        compression: &mut Compression,
        out: &mut Outputs,
    ) {
        // Nothing goes while the path's size is unknown.
        let max_datagram = path.max_datagram.min(compression.max_datagram());
        if max_datagram == 0 {
            return;
        }
        let unacked = self.received.has_unacked();
        let mut acks = std::mem::take(&mut self.acks);
        self.received.to_send_into(&mut acks);
        let limits = SendLimits {
            max_datagram: max_body(max_datagram, &acks),
            budget: budget.min(path.budget),
            initial_resend: path.rtt.mul_f32(1.5) + Duration::from_millis(20),
        };
        if limits.max_datagram == 0 {
            self.acks = acks;
            return;
        }
        // Each datagram is framed as it is encoded, into the one buffer the driver takes:
        // its header, then its body's envelope (shared with other clients' datagrams when
        // the body is).
        let (conn, dicts, diagnostics) = (self.conn, &self.dicts, &mut self.diagnostics);
        let header_len = datagram_header::max_len(&acks);
        let mut sink = |d: Encoded<'_>| {
            let mut bytes = Vec::with_capacity(header_len + 1 + d.body.len());
            datagram_header::write(d.seq, &acks, &mut bytes);
            compression.datagram(d.body, d.shared, d.values, dicts, now, &mut bytes);
            diagnostics.payload_bytes_sent += bytes.len() as u64;
            out.push_back(Output::Send {
                conn,
                channel: Channel::Unreliable,
                bytes,
            });
        };
        // A frame no newer than the snapshot would be dropped unseen (and acknowledged):
        // what entered this client's interest since the snapshot goes next tick.
        let built = if tick > self.snapshot_tick {
            let tools = (coder, &mut *encoder, shared);
            self.outbox
                .build(world, tick, now, limits, points, tools, &mut sink)
        } else {
            Built::default()
        };
        if built.datagrams == 0 && unacked {
            // A header alone.
            let mut bytes = Vec::with_capacity(header_len);
            datagram_header::write(self.outbox.ack_only(), &acks, &mut bytes);
            self.send_unreliable(bytes, out);
        }
        self.acks = acks;
        for (frame, values) in built.stream_frames {
            self.queue(
                MessageKind::DeltaFrame,
                &frame,
                &values,
                compression,
                now,
                out,
            );
        }
    }
}
