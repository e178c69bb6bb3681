//! XR poses in a session: the local devices' newest samples, per link a pose stream
//! ([`crate::xr::stream`]) with a send-rate cap and per-device acknowledgement, the clock
//! offset to the host, and per remote device a jitter buffer to render from.
//!
//! Topology: each client streams its own devices to the host; the host streams its own and
//! every other client's devices to each client (never a client's own back). All times on
//! the wire are on the host's clock: a client maps its pushes onto it with the offset it
//! estimated, and maps received samples back. A client sends no poses until it has a first
//! estimate (one round trip after joining), so receivers never see a sender's times jump.
//!
//! # Clock offset
//! A client sends a ping with its local time `t0`; the host answers with `t0`, its arrival
//! time `t1` and its send time `t2`; at `t3` the client takes the round trip
//! `(t3 − t0) − (t2 − t1)` and the offset `((t1 − t0) + (t2 − t3)) / 2` (host − client).
//! Of the last [`CLOCK_SAMPLES`] answers the one with the smallest round trip is the
//! estimate (queueing only ever adds delay); the offset in use moves toward it by at most
//! [`CLOCK_SLEW_NS`] per tick, so render times never jump. Pings start with the first
//! pose pushed or received, so a session without XR sends none.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use rustc_hash::{FxHashMap, FxHashSet};

use crate::world::PeerId;
use crate::xr::relay::{RelaySender, RelaySource};
use crate::xr::stream::{
    Ack, PoseReceiver, PoseSender, QuantizedController, Section, StreamError, StreamSample,
    CLOCK_MESSAGE_TAG, HISTORY, TIME_UNIT_NS,
};
use crate::xr::{
    validate_sample, ControllerState, Device, JitterBuffer, JitterConfig, PoseError, PoseSample,
    QuantizeError, Sampled, Volume,
};

mod clock;

use clock::ClockSync;

/// Answers kept for the clock estimate.
pub const CLOCK_SAMPLES: usize = 16;
/// Largest change of the clock offset in use per tick, nanoseconds.
pub const CLOCK_SLEW_NS: i64 = 500_000;
/// Clock pings: every 100 ms until [`CLOCK_SAMPLES`] answers, then every second.
const PING_FAST: Duration = Duration::from_millis(100);
const PING_SLOW: Duration = Duration::from_secs(1);
/// Packets of the pose stream remembered for matching acknowledgements.
const IN_FLIGHT: usize = 64;
/// Send credit a link may save up, in packets (absorbs engine-frame jitter).
const MAX_CREDIT: f64 = 2.0;
/// The default send-rate cap, packets per second.
const DEFAULT_MAX_RATE_HZ: f64 = 90.0;
/// Most of the peer's packets in flight (round trip × rate) for a short acknowledgement.
const SHORT_ACK_IN_FLIGHT: f64 = 32.0;
/// Window over which the peer's packet rate is measured.
const RATE_WINDOW: Duration = Duration::from_secs(1);

const PING: u8 = CLOCK_MESSAGE_TAG;
const PONG: u8 = CLOCK_MESSAGE_TAG | 1;
const PING_LEN: usize = 1 + 8;
const PONG_LEN: usize = 1 + 3 * 8;

/// Settings of a session's pose streams.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PoseConfig {
    /// The volume poses are quantised in (must be equal on every peer).
    pub volume: Volume,
    /// Most pose packets per second to each peer (every push up to this rate).
    pub max_rate_hz: f64,
    /// Jitter buffer settings for remote devices.
    pub jitter: JitterConfig,
}

impl Default for PoseConfig {
    /// The default volume, 90 Hz, the default jitter buffer.
    fn default() -> Self {
        PoseConfig {
            volume: Volume::default(),
            max_rate_hz: DEFAULT_MAX_RATE_HZ,
            jitter: JitterConfig::default(),
        }
    }
}

/// Why a pose or controller push was refused; nothing was stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PosePushError {
    /// NaN, infinite or zero-quaternion input.
    #[error(transparent)]
    Invalid(#[from] PoseError),
    /// The sample's time is before the device's previous sample.
    #[error("sample time {time} ns runs backwards (the device's last sample was at {last} ns)")]
    TimeBackwards {
        /// The refused time.
        time: i64,
        /// The device's newest time.
        last: i64,
    },
    /// The device index is not a device.
    #[error("device {0} does not exist (0 head, 1 left hand, 2 right hand, 3-10 trackers)")]
    NoSuchDevice(u8),
    /// A controller state for a device with no pose pushed yet.
    #[error("controller state for device {0} before any pose of it: push a pose first")]
    NoPose(u8),
}

impl From<QuantizeError> for PosePushError {
    fn from(e: QuantizeError) -> Self {
        match e {
            QuantizeError::InvalidPose(p) => PosePushError::Invalid(p),
            // The volume is validated when the session starts; anything else is a bad pose.
            _ => PosePushError::Invalid(PoseError::NonFinitePosition),
        }
    }
}

/// Pose stream figures of one link.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoseLinkStats {
    /// Pose packets sent (acknowledgements alone included).
    pub packets_sent: u64,
    /// Their bytes (payload of the QUIC datagram).
    pub bytes_sent: u64,
    /// Device samples sent.
    pub samples_sent: u64,
    /// Pose packets received and decoded.
    pub packets_received: u64,
    /// Their bytes.
    pub bytes_received: u64,
    /// Packets refused: malformed, or naming a reference not received.
    pub malformed: u64,
    /// Packets dropped as duplicates or too old to matter.
    pub stale: u64,
    /// Clock messages sent and received.
    pub clock_messages: u64,
}

/// How the host's relaying of poses went (see [`crate::xr::relay`]): each source frame
/// is encoded once per reference set its receivers hold, not once per receiver.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RelayStats {
    /// Frames of relayed sources (the host's own devices and every client's) made.
    pub frames: u64,
    /// Sections encoded: one per frame and reference set it went out against.
    pub sections_encoded: u64,
    /// Sections sent: one per frame and receiver (each a copy of an encoded one).
    pub sections_relayed: u64,
}

/// One remote device as this peer renders it.
struct RemoteDevice {
    buffer: JitterBuffer,
    controller: Option<(i64, QuantizedController)>,
}

/// A source device's newest sample, as relayed and sent.
#[derive(Clone, Copy)]
struct Latest {
    sample: StreamSample,
    pose_version: u64,
    controller: Option<QuantizedController>,
    controller_version: u64,
}

/// A source the host relays: its frames, and the newest of its packets they came from
/// (a client's packets number its frames, see [`PoseHub::relay_frame`]).
struct Relayed {
    frames: RelaySource,
    uplink: Option<i64>,
}

/// A source device and the pose and controller versions a packet carried of it.
type SentVersions = ((PeerId, Device), u64, u64);

/// What this side sends on a link.
enum Outgoing {
    /// A client's own devices, each resent until a packet carrying its newest version is
    /// acknowledged.
    Own {
        sender: PoseSender,
        /// Per device, the pose and controller versions the peer acknowledged.
        acked: FxHashMap<(PeerId, Device), (u64, u64)>,
        in_flight: VecDeque<(u64, Vec<SentVersions>)>,
    },
    /// The host's: the newest frame of every other peer's devices and its own, encoded
    /// once per reference set for all links.
    Relay(RelaySender),
}

/// The pose stream with one peer.
pub(crate) struct PoseLink {
    peer: PeerId,
    outgoing: Outgoing,
    receiver: PoseReceiver,
    credit: f64,
    last_flush: Option<Instant>,
    /// Client side only: the estimate of the host's clock.
    clock: Option<ClockSync>,
    /// The peer's pose packet rate: packets counted since the window's start, and the
    /// rate of the last full window (packets per second).
    rate_window: (Instant, u32),
    peer_rate: f64,
    pub(crate) stats: PoseLinkStats,
}

impl PoseLink {
    /// The stream with `peer`, opened at `now`; `client` when this side is a client (it
    /// syncs its clock).
    pub(crate) fn new(peer: PeerId, volume: Volume, client: bool, now: Instant) -> PoseLink {
        let outgoing = if client {
            Outgoing::Own {
                sender: PoseSender::new(volume),
                acked: FxHashMap::default(),
                in_flight: VecDeque::new(),
            }
        } else {
            Outgoing::Relay(RelaySender::new(volume))
        };
        PoseLink {
            peer,
            outgoing,
            receiver: PoseReceiver::new(volume),
            credit: 1.0,
            last_flush: None,
            clock: client.then(ClockSync::default),
            rate_window: (now, 0),
            peer_rate: 0.0,
            stats: PoseLinkStats::default(),
        }
    }

    /// Counts a pose packet from the peer, for its packet rate.
    fn count_arrival(&mut self, at: Instant) {
        let (start, count) = &mut self.rate_window;
        *count += 1;
        let elapsed = at.saturating_duration_since(*start);
        if elapsed >= RATE_WINDOW {
            self.peer_rate = f64::from(*count) / elapsed.as_secs_f64();
            self.rate_window = (at, 0);
        }
    }

    /// The acknowledgement of the peer's packet `seq`: short (7 bits) when fewer than
    /// [`SHORT_ACK_IN_FLIGHT`] of the peer's packets can be in flight, judged from the
    /// connection's round trip `rtt` and the peer's rate (at least the default cap, so a
    /// rate not measured yet errs long); long otherwise. A short one is exact below 128
    /// (see `xr::stream::Ack`), so this keeps a 4× margin.
    fn ack_for(&self, seq: u64, rtt: Duration) -> Ack {
        let rate = self.peer_rate.max(DEFAULT_MAX_RATE_HZ);
        Ack::new(seq, rtt.as_secs_f64() * rate < SHORT_ACK_IN_FLIGHT)
    }

    /// The offset in use, host clock − local clock (clients; `Some(0)` on the host).
    pub(crate) fn clock_offset(&self) -> Option<i64> {
        match &self.clock {
            None => Some(0),
            Some(c) => c.applied,
        }
    }

    /// The best clock round trip measured (clients).
    pub(crate) fn clock_rtt(&self) -> Option<Duration> {
        let ns = self.clock.as_ref()?.best_rtt_ns?;
        Some(Duration::from_nanos(u64::try_from(ns).unwrap_or(0)))
    }

    fn on_ack(&mut self, ack: Ack) {
        let (sender, acked, in_flight) = match &mut self.outgoing {
            Outgoing::Relay(relay) => {
                relay.on_ack(ack);
                return;
            }
            Outgoing::Own {
                sender,
                acked,
                in_flight,
            } => (sender, acked, in_flight),
        };
        let Some(seq) = sender.on_ack(ack) else {
            return;
        };
        let Some(pos) = in_flight.iter().position(|(s, _)| *s == seq) else {
            return;
        };
        if let Some((_, entries)) = in_flight.get(pos) {
            for &(key, pose, controller) in entries {
                let e = acked.entry(key).or_insert((0, 0));
                e.0 = e.0.max(pose);
                e.1 = e.1.max(controller);
            }
        }
    }
}

/// A datagram of the pose channel, as the session should treat it.
pub(crate) enum Inbound {
    /// Samples of these sources arrived (already in the buffers).
    Samples,
    /// A clock ping to answer (host): the reply to send.
    Reply(Vec<u8>),
    /// Nothing to do (a pong, an acknowledgement alone).
    Nothing,
}

/// All pose state of a session: this peer's devices (pushed by the engine, streamed to
/// the peers) and the other peers' (received, jitter-buffered, sampled for rendering).
pub struct PoseHub {
    config: PoseConfig,
    /// The session clock's origin; local time = elapsed + `xr_offset`.
    epoch: Instant,
    xr_offset: i64,
    /// This peer's own devices' newest samples (times in local time).
    own: FxHashMap<Device, Latest>,
    /// Host: the newest sample of every client device, to relay.
    latest: BTreeMap<(PeerId, Device), Latest>,
    /// Host: the frames of every source it relays (its own devices and each client's).
    relay: BTreeMap<PeerId, Relayed>,
    /// Host: the newest own version in its own newest frame.
    own_frame_version: u64,
    relay_stats: RelayStats,
    /// Own devices' newest pushed time (in local time), for the backwards check.
    pushed: FxHashMap<Device, i64>,
    remote: FxHashMap<(PeerId, Device), RemoteDevice>,
    /// Whether any pose sample arrived (clients start their clock pings then).
    heard: bool,
    next_version: u64,
    /// Peers that left: samples from them still in flight are dropped, so a departed
    /// avatar does not come back to hold its last pose.
    departed: FxHashSet<PeerId>,
}

impl PoseHub {
    /// The pose state of a session started at `now` (the session clock's origin).
    pub(crate) fn new(config: PoseConfig, now: Instant) -> PoseHub {
        PoseHub {
            config,
            epoch: now,
            xr_offset: 0,
            own: FxHashMap::default(),
            latest: BTreeMap::new(),
            relay: BTreeMap::new(),
            own_frame_version: 0,
            relay_stats: RelayStats::default(),
            pushed: FxHashMap::default(),
            remote: FxHashMap::default(),
            heard: false,
            next_version: 1,
            departed: FxHashSet::default(),
        }
    }

    /// Local time in nanoseconds (the engine's `XrTime` once [`PoseHub::set_xr_time`] was
    /// called) at `at`.
    pub fn local_ns(&self, at: Instant) -> i64 {
        let elapsed = at.saturating_duration_since(self.epoch).as_nanos();
        i64::try_from(elapsed)
            .unwrap_or(i64::MAX)
            .saturating_add(self.xr_offset)
    }

    /// Declares that the engine's `XrTime` is `xr_now` at `now`.
    pub fn set_xr_time(&mut self, xr_now: i64, now: Instant) {
        let elapsed =
            i64::try_from(now.saturating_duration_since(self.epoch).as_nanos()).unwrap_or(i64::MAX);
        self.xr_offset = xr_now.saturating_sub(elapsed);
    }

    fn version(&mut self) -> u64 {
        self.next_version += 1;
        self.next_version
    }

    /// Stores a local device's sample (times in local time; the session converts them to
    /// the host's clock when it sends).
    pub fn push(&mut self, device: Device, sample: &PoseSample) -> Result<(), PosePushError> {
        let sample = validate_sample(sample)?;
        if let Some(&last) = self.pushed.get(&device) {
            if sample.time < last {
                return Err(PosePushError::TimeBackwards {
                    time: sample.time,
                    last,
                });
            }
        }
        let (quantized, _) = StreamSample::from_sample(device, &sample, None, &self.config.volume)?;
        self.pushed.insert(device, sample.time);
        let version = self.version();
        let entry = self.own.entry(device).or_insert(Latest {
            sample: quantized,
            pose_version: 0,
            controller: None,
            controller_version: 0,
        });
        entry.sample = quantized;
        entry.pose_version = version;
        Ok(())
    }

    /// Stores a local controller's state.
    pub fn push_controller(
        &mut self,
        device: Device,
        state: &ControllerState,
    ) -> Result<(), PosePushError> {
        let analog = [state.trigger, state.grip, state.thumb_x, state.thumb_y];
        if analog.iter().any(|v| !v.is_finite()) {
            return Err(PoseError::NonFiniteVelocity.into());
        }
        let version = self.version();
        let Some(entry) = self.own.get_mut(&device) else {
            return Err(PosePushError::NoPose(device.index()));
        };
        entry.controller = Some(QuantizedController::new(state));
        entry.controller_version = version;
        Ok(())
    }

    /// Renders a remote device for local display time `display_ns`.
    pub fn sample(&mut self, peer: PeerId, device: Device, display_ns: i64) -> Option<Sampled> {
        self.remote
            .get_mut(&(peer, device))?
            .buffer
            .sample(display_ns)
    }

    /// The newest controller state of a remote device.
    pub fn controller(&self, peer: PeerId, device: Device) -> Option<ControllerState> {
        let (_, c) = self.remote.get(&(peer, device))?.controller?;
        Some(c.state())
    }

    /// Remote devices known, as (peer, device).
    pub fn remote_devices(&self) -> Vec<(PeerId, Device)> {
        let mut v: Vec<_> = self.remote.keys().copied().collect();
        v.sort();
        v
    }

    /// How the host's relaying went so far.
    pub fn relay_stats(&self) -> RelayStats {
        RelayStats {
            sections_encoded: self.relay.values().map(|r| r.frames.encodes()).sum(),
            ..self.relay_stats
        }
    }

    /// Forgets a peer's devices (it left) and drops its samples still in flight.
    pub(crate) fn forget(&mut self, peer: PeerId) {
        self.latest.retain(|k, _| k.0 != peer);
        if let Some(relayed) = self.relay.get_mut(&peer) {
            relayed.frames.retire();
            relayed.uplink = None;
        }
        self.remote.retain(|k, _| k.0 != peer);
        self.departed.insert(peer);
    }

    /// Takes a peer's samples again (it joined or resumed).
    pub(crate) fn welcome(&mut self, peer: PeerId) {
        self.departed.remove(&peer);
    }

    /// Handles a pose-channel datagram from `link.peer`. `relay` is true on the host, which
    /// keeps a client's samples to forward; `arrival` is when the datagram arrived, `now`
    /// when it is handled (a clock reply carries both).
    pub(crate) fn receive(
        &mut self,
        link: &mut PoseLink,
        bytes: &[u8],
        arrival: Instant,
        now: Instant,
        relay: bool,
    ) -> Inbound {
        let replied = self.local_ns(now);
        let now = self.local_ns(arrival);
        match bytes.first() {
            Some(&PING) if bytes.len() == PING_LEN && relay => {
                link.stats.clock_messages += 1;
                let mut reply = Vec::with_capacity(PONG_LEN);
                reply.push(PONG);
                reply.extend_from_slice(&bytes[1..9]);
                reply.extend_from_slice(&now.to_le_bytes());
                reply.extend_from_slice(&replied.to_le_bytes());
                return Inbound::Reply(reply);
            }
            Some(&PONG) if bytes.len() == PONG_LEN => {
                let Some(clock) = link.clock.as_mut() else {
                    link.stats.malformed += 1;
                    return Inbound::Nothing;
                };
                link.stats.clock_messages += 1;
                let field = |i: usize| {
                    let mut b = [0u8; 8];
                    b.copy_from_slice(&bytes[1 + 8 * i..9 + 8 * i]);
                    i64::from_le_bytes(b)
                };
                clock.on_pong(field(0), field(1), field(2), now);
                return Inbound::Nothing;
            }
            Some(&b) if b & CLOCK_MESSAGE_TAG == CLOCK_MESSAGE_TAG => {
                link.stats.malformed += 1;
                return Inbound::Nothing;
            }
            _ => {}
        }
        let decoded = match link.receiver.decode(bytes, !relay, link.peer) {
            Ok(d) => d,
            Err(StreamError::Stale | StreamError::Duplicate) => {
                link.stats.stale += 1;
                return Inbound::Nothing;
            }
            Err(_) => {
                link.stats.malformed += 1;
                return Inbound::Nothing;
            }
        };
        link.stats.packets_received += 1;
        link.stats.bytes_received += bytes.len() as u64;
        link.count_arrival(arrival);
        if let Some(ack) = decoded.ack {
            link.on_ack(ack);
        }
        if decoded.sections.is_empty() {
            return Inbound::Nothing;
        }
        // Host time → local time: minus (host − local). Until a client knows the offset it
        // renders nothing (the first estimate would make render times jump); the samples
        // keep coming, newest first.
        let Some(offset_ns) = link.clock_offset() else {
            self.heard = true;
            link.receiver.skip_ack();
            return Inbound::Nothing;
        };
        self.heard = true;
        for section in decoded.sections {
            if self.departed.contains(&section.source) {
                continue;
            }
            let mut newer = false;
            for s in section.samples {
                newer |= self.take_remote(section.source, s, offset_ns, now, relay);
            }
            if newer {
                self.relay_frame(section.source, decoded.seq);
            }
        }
        Inbound::Samples
    }

    /// Takes in a remote sample; on the host, returns whether it is the device's newest
    /// (to relay).
    fn take_remote(
        &mut self,
        source: PeerId,
        s: StreamSample,
        offset_ns: i64,
        now: i64,
        relay: bool,
    ) -> bool {
        let volume = self.config.volume;
        let jitter = self.config.jitter;
        let remote = self
            .remote
            .entry((source, s.device))
            .or_insert_with(|| RemoteDevice {
                buffer: JitterBuffer::new(jitter),
                controller: None,
            });
        remote.buffer.set_clock_offset(-offset_ns);
        remote.buffer.push(s.to_sample(&volume), now);
        if let Some(c) = s.controller {
            if remote.controller.is_none_or(|(t, _)| s.time >= t) {
                remote.controller = Some((s.time, c));
            }
        }
        if !relay {
            return false;
        }
        let newer = self
            .latest
            .get(&(source, s.device))
            .is_none_or(|l| s.time > l.sample.time);
        if newer {
            let pose_version = self.version();
            let controller_version = if s.controller.is_some() {
                self.version()
            } else {
                0
            };
            let previous = self.latest.get(&(source, s.device)).copied();
            self.latest.insert(
                (source, s.device),
                Latest {
                    sample: StreamSample {
                        controller: None,
                        ..s
                    },
                    pose_version,
                    controller: s.controller.or(previous.and_then(|p| p.controller)),
                    controller_version: if s.controller.is_some() {
                        controller_version
                    } else {
                        previous.map_or(0, |p| p.controller_version)
                    },
                },
            );
        }
        newer
    }

    /// Host: makes a frame of `source`'s newest state (every device it has) to relay,
    /// after its packet `seq` brought something newer. The frame follows the newest by as
    /// many frames as the client's packets did, so frames stay uniform in time for the
    /// predictions (a restarted stream, numbered from 0 again, goes on by one).
    fn relay_frame(&mut self, source: PeerId, seq: i64) {
        let samples = self
            .latest
            .range((source, Device::HEAD)..)
            .take_while(|((s, _), _)| *s == source)
            .map(|(_, l)| StreamSample {
                controller: l.controller,
                ..l.sample
            })
            .collect();
        let relayed = self.relay.entry(source).or_insert_with(|| Relayed {
            frames: RelaySource::new(source),
            uplink: None,
        });
        let advance = match relayed.uplink {
            Some(last) if seq > last => (seq - last).unsigned_abs().min(HISTORY as u64),
            _ => 1,
        };
        relayed.uplink = Some(relayed.uplink.map_or(seq, |last| last.max(seq)));
        relayed.frames.push(samples, advance);
        self.relay_stats.frames += 1;
    }

    /// Host: makes a frame of its own devices when any changed since the last one.
    fn own_frame(&mut self, own: PeerId) {
        let newest = self
            .own
            .values()
            .map(|l| l.pose_version.max(l.controller_version))
            .max();
        let Some(version) = newest.filter(|&v| v > self.own_frame_version) else {
            return;
        };
        self.own_frame_version = version;
        let mut samples: Vec<StreamSample> = self
            .own
            .values()
            .map(|l| StreamSample {
                controller: l.controller,
                ..l.sample
            })
            .collect();
        samples.sort_by_key(|s| s.device);
        self.relay
            .entry(own)
            .or_insert_with(|| Relayed {
                frames: RelaySource::new(own),
                uplink: None,
            })
            .frames
            .push(samples, 1);
        self.relay_stats.frames += 1;
    }

    /// Keeps every remote buffer's clock offset in step with the link's estimate (clients).
    pub(crate) fn apply_clock(&mut self, link: &mut PoseLink) {
        let Some(clock) = link.clock.as_mut() else {
            return;
        };
        if let Some(offset) = clock.slew() {
            for r in self.remote.values_mut() {
                r.buffer.set_clock_offset(-offset);
            }
        }
    }

    /// The datagrams to send on `link` now: a clock ping when due (clients), and a pose
    /// packet when the rate allows and there is something (or an acknowledgement) to send.
    /// `own` is this peer; `relay` is true on the host (it forwards other clients' devices).
    pub(crate) fn flush(
        &mut self,
        link: &mut PoseLink,
        own: PeerId,
        now: Instant,
        relay: bool,
        max_bytes: usize,
        rtt: Duration,
    ) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let local_now = self.local_ns(now);
        // Clocks are synchronised only while poses are in use: a session without XR pays
        // nothing.
        let active = self.heard || !self.own.is_empty();
        if let Some(clock) = link.clock.as_mut().filter(|_| active) {
            if clock.ping_due(now) {
                clock.last_ping = Some(now);
                let mut ping = Vec::with_capacity(PING_LEN);
                ping.push(PING);
                ping.extend_from_slice(&local_now.to_le_bytes());
                link.stats.clock_messages += 1;
                out.push(ping);
            }
        }
        let elapsed = link.last_flush.map_or(1.0, |t| {
            now.duration_since(t).as_secs_f64() * self.config.max_rate_hz
        });
        link.last_flush = Some(now);
        link.credit = (link.credit + elapsed).min(MAX_CREDIT);
        if link.credit < 1.0 || max_bytes == 0 {
            return out;
        }
        let ack = link.receiver.take_ack().map(|seq| link.ack_for(seq, rtt));
        if relay {
            self.own_frame(own);
            return self.flush_relay(link, ack, max_bytes, out);
        }
        // A client without a clock estimate sends no samples yet (only acknowledgements).
        let offset_units = link.clock_offset().map(|o| o / TIME_UNIT_NS);
        let Outgoing::Own {
            sender,
            acked,
            in_flight,
        } = &mut link.outgoing
        else {
            return out;
        };
        let mut section = Section {
            source: own,
            samples: Vec::new(),
        };
        let mut sent = Vec::new();
        if let Some(offset_units) = offset_units {
            let mut devices: Vec<_> = self.own.iter().map(|(&d, l)| (d, *l)).collect();
            devices.sort_by_key(|(d, _)| *d);
            for (device, l) in devices {
                let (pose_acked, controller_acked) =
                    acked.get(&(own, device)).copied().unwrap_or((0, 0));
                let send_controller = l.controller_version > controller_acked;
                if l.pose_version <= pose_acked && !send_controller {
                    continue;
                }
                let mut sample = l.sample;
                // Own pushes are in local time; the wire is on the host's clock.
                sample.time = sample.time.saturating_add(offset_units);
                if send_controller {
                    sample.controller = l.controller;
                }
                section.samples.push(sample);
                sent.push((
                    (own, device),
                    l.pose_version,
                    if send_controller {
                        l.controller_version
                    } else {
                        0
                    },
                ));
            }
        }
        if section.samples.is_empty() && ack.is_none() {
            return out;
        }
        let Ok(encoded) = sender.encode(Some(&section), ack, max_bytes) else {
            return out;
        };
        if encoded.sections == 0 {
            sent.clear();
        }
        link.stats.samples_sent += sent.len() as u64;
        if in_flight.len() == IN_FLIGHT {
            in_flight.pop_front();
        }
        in_flight.push_back((encoded.seq, sent));
        link.credit -= 1.0;
        link.stats.packets_sent += 1;
        link.stats.bytes_sent += encoded.bytes.len() as u64;
        out.push(encoded.bytes);
        out
    }

    /// The host's pose packet on `link`: the newest frame of every source the peer has
    /// not acknowledged yet (never its own), each section encoded once per reference set
    /// for all links (see [`crate::xr::relay`]).
    fn flush_relay(
        &mut self,
        link: &mut PoseLink,
        ack: Option<Ack>,
        max_bytes: usize,
        mut out: Vec<Vec<u8>>,
    ) -> Vec<Vec<u8>> {
        let Outgoing::Relay(sender) = &mut link.outgoing else {
            return out;
        };
        let peer = link.peer;
        let mut sources: Vec<&mut RelaySource> = self
            .relay
            .iter_mut()
            .filter(|(&source, r)| {
                source != peer
                    && r.frames
                        .newest()
                        .is_some_and(|n| sender.acked_frame(source).is_none_or(|a| n > a))
            })
            .map(|(_, r)| &mut r.frames)
            .collect();
        if sources.is_empty() && ack.is_none() {
            return out;
        }
        let Ok(encoded) = sender.encode(&mut sources, ack, max_bytes) else {
            return out;
        };
        self.relay_stats.sections_relayed += encoded.sections as u64;
        link.stats.samples_sent += encoded.samples as u64;
        link.credit -= 1.0;
        link.stats.packets_sent += 1;
        link.stats.bytes_sent += encoded.bytes.len() as u64;
        out.push(encoded.bytes);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A loopback round trip.
    const RTT: Duration = Duration::from_millis(1);
    use crate::xr::{Pose, PoseFlags, Quat, Vec3};

    fn sample(time: i64) -> PoseSample {
        PoseSample {
            pose: Pose::new(Quat::new(0.0, 0.0, 0.0, 2.0), Vec3::new(0.1, 1.6, 0.0)),
            time,
            flags: PoseFlags::ALL,
            linear_velocity: None,
            angular_velocity: None,
        }
    }

    #[test]
    fn pushes_reject_bad_input_and_backwards_time() {
        let mut hub = PoseHub::new(PoseConfig::default(), Instant::now());
        hub.push(Device::HEAD, &sample(1000)).expect("valid");
        hub.push(Device::HEAD, &sample(1000))
            .expect("same time replaces");
        assert_eq!(
            hub.push(Device::HEAD, &sample(999)),
            Err(PosePushError::TimeBackwards {
                time: 999,
                last: 1000
            })
        );
        let mut nan = sample(2000);
        nan.pose.position.x = f32::NAN;
        assert!(matches!(
            hub.push(Device::HEAD, &nan),
            Err(PosePushError::Invalid(PoseError::NonFinitePosition))
        ));
        let mut zero = sample(2000);
        zero.pose.orientation = Quat::new(0.0, 0.0, 0.0, 0.0);
        assert!(hub.push(Device::HEAD, &zero).is_err());
        // Refused pushes stored nothing: the newest time is still 1000.
        assert!(hub.push(Device::HEAD, &sample(1500)).is_ok());
        assert_eq!(hub.pushed.get(&Device::HEAD), Some(&1500));
        let c = ControllerState {
            trigger: f32::NAN,
            ..ControllerState::default()
        };
        assert!(hub.push_controller(Device::LEFT_HAND, &c).is_err());
    }

    #[test]
    fn acknowledgements_are_short_only_while_few_packets_can_be_in_flight() {
        let start = Instant::now();
        let mut link = PoseLink::new(1, Volume::default(), false, start);
        // No rate measured yet: judged at the default cap, 90 packets/s.
        assert!(link.ack_for(300, RTT).short);
        assert!(link.ack_for(300, Duration::from_millis(300)).short);
        assert!(!link.ack_for(300, Duration::from_millis(400)).short);
        // A peer sending 400 packets/s: 100 ms of round trip is 40 in flight, too many.
        for i in 0..=400u64 {
            link.count_arrival(start + Duration::from_micros(i * 2_500));
        }
        assert!(!link.ack_for(300, Duration::from_millis(100)).short);
        assert!(link.ack_for(300, Duration::from_millis(50)).short);
        // Both forms name the same packet.
        assert_eq!(link.ack_for(300, RTT).seq, 300 & 0x7F);
        assert_eq!(link.ack_for(300, Duration::from_secs(1)).seq, 300);
    }

    #[test]
    fn the_rate_cap_limits_packets_and_a_relay_never_echoes() {
        let config = PoseConfig::default();
        let start = Instant::now();
        let mut host = PoseHub::new(config, start);
        let mut link = PoseLink::new(2, config.volume, false, start);
        let mut sent = 0;
        // 240 pushes in 1 s (240 Hz): at most ~90 packets leave.
        for i in 0..240u32 {
            let at = start + Duration::from_micros(u64::from(i) * 4_167);
            host.push(Device::HEAD, &sample(i64::from(i) * 4_167_000))
                .expect("push");
            sent += host.flush(&mut link, 1, at, true, 1200, RTT).len();
        }
        assert!((85..=93).contains(&sent), "{sent}");
        // A relay sends its own devices and other clients', never a client's own back.
        let head = host.own[&Device::HEAD];
        for source in [2, 3] {
            host.latest.insert((source, Device::LEFT_HAND), head);
            host.relay_frame(source, 7);
        }
        let mut back = PoseLink::new(2, config.volume, false, start);
        let later = start + Duration::from_secs(2);
        let packets = host.flush(&mut back, 1, later, true, 1200, RTT);
        assert_eq!(packets.len(), 1);
        let decoded = PoseReceiver::new(config.volume)
            .decode(&packets[0], true, 0)
            .expect("decodes");
        let sources: Vec<PeerId> = decoded.sections.iter().map(|s| s.source).collect();
        assert_eq!(sources, vec![1, 3]);
    }
}
