//! A deterministic network simulator for the protocol core (`theta_net::proto`): a host and
//! clients over a seeded virtual network (latency, jitter, loss, duplication, reordering
//! by delay variation, a bandwidth cap, partitions that heal), on a virtual clock, with no
//! threads, sockets or sleeps. The same seed gives the same run, bit for bit.
//!
//! Both channels of a connection are modelled as a transport provides them (see
//! `theta_net::proto::Channel`): an unreliable message is lost, duplicated or delayed on
//! its own and dropped when larger than the path's maximum; a reliable one is never lost,
//! only late (a lost transmission costs a retransmission delay), and never overtakes an
//! earlier one of its connection.

#![allow(dead_code)]

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::time::{Duration, Instant};

use theta_net::fields::Field;
use theta_net::proto::token::{mint, JoinSecret};
use theta_net::proto::{
    Channel, Client, Config, ConnId, DisconnectCause, Host, Output, Path, SessionEvent,
};
use theta_net::xr::{Pose, PoseFlags, PoseSample, Quat, Vec3};
use theta_net::{Registry, World};

/// The fields of the scenes' 28-byte transform: a position at 1 mm and a rotation at
/// 0.1°, as the demo declares them.
pub fn transform_fields() -> [Field; 2] {
    [
        Field::Position {
            offset: 0,
            precision_mm: 1.0,
        },
        Field::Rotation {
            offset: 12,
            precision_deg: 0.1,
        },
    ]
}

/// A transform's 28 bytes (position, then a rotation of `yaw` about y as x, y, z, w).
pub fn transform(p: [f32; 3], yaw: f32) -> Vec<u8> {
    let (s, c) = (yaw * 0.5).sin_cos();
    [p[0], p[1], p[2], 0.0, s, 0.0, c]
        .iter()
        .flat_map(|x| x.to_le_bytes())
        .collect()
}

/// A walker's device at `s` seconds at `position`, moving at `velocity`, its yaw
/// 0.3 sin(0.5 s) (the head looks around while walking) with its exact rate.
pub fn walking_sample(s: f64, position: Vec3, velocity: Vec3) -> PoseSample {
    let yaw = 0.3 * (0.5 * s).sin();
    let yaw_rate = 0.15 * (0.5 * s).cos();
    PoseSample {
        pose: Pose::new(
            Quat::new(0.0, (yaw / 2.0).sin() as f32, 0.0, (yaw / 2.0).cos() as f32),
            position,
        ),
        time: 0,
        flags: PoseFlags::ALL,
        linear_velocity: Some(velocity),
        angular_velocity: Some(Vec3::new(0.0, yaw_rate as f32, 0.0)),
    }
}

/// A small, seeded generator (SplitMix64): the simulator's only source of chance.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed ^ 0x9e37_79b9_7f4a_7c15)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64 <= p && p > 0.0
    }

    /// Uniform in `-spread..=spread`.
    pub fn spread(&mut self, spread: Duration) -> i64 {
        let nanos = spread.as_nanos() as i64;
        if nanos == 0 {
            return 0;
        }
        self.below(2 * nanos as u64 + 1) as i64 - nanos
    }
}

/// What the virtual network does to each message.
#[derive(Clone, Copy, Debug)]
pub struct Faults {
    /// One-way delay.
    pub latency: Duration,
    /// Each message's delay is uniform in `latency ± jitter` (at least 0): messages
    /// overtake each other by delay variation.
    pub jitter: Duration,
    /// Share of unreliable messages lost (and of reliable transmissions repeated).
    pub loss: f64,
    /// Share of unreliable messages delivered twice.
    pub duplicate: f64,
    /// Bytes per second each way per connection (`None`: no cap). Messages queue behind
    /// each other; what would wait longer than a second is dropped (unreliable).
    pub bandwidth: Option<u64>,
}

impl Faults {
    /// A clean path of `latency` each way.
    pub fn clean(latency: Duration) -> Self {
        Faults {
            latency,
            jitter: Duration::ZERO,
            loss: 0.0,
            duplicate: 0.0,
            bandwidth: None,
        }
    }
}

/// Where a message goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum To {
    Host,
    Client(usize),
}

#[derive(Debug)]
enum Payload {
    Bytes(Channel, Vec<u8>),
    /// The other side closed the connection.
    Closed(String),
}

/// A message on its way.
#[derive(Debug)]
struct Packet {
    at: Duration,
    /// Tie-break: the order of sending.
    seq: u64,
    to: To,
    conn: u64,
    payload: Payload,
}

/// One connection's state in the network.
#[derive(Debug, Default)]
struct Link {
    /// Which client it belongs to.
    client: usize,
    /// Whether the host has had its first reliable message (the join request).
    joined: bool,
    closed: bool,
    /// The latest delivery time of a reliable message each way (host-bound, client-bound):
    /// a later one never arrives sooner.
    reliable_at: [Duration; 2],
    /// When each way's bandwidth is free again.
    busy_until: [Duration; 2],
}

/// A client of the simulation: its core, and whether it is still in the session.
pub struct SimClient {
    pub core: Client,
    pub peer: u16,
    pub conn: Option<u64>,
    /// Cut off from the network until this virtual time.
    pub partitioned_until: Duration,
    /// Events it emitted, oldest first, kept for the test's checks.
    pub events: Vec<SessionEvent>,
}

/// A test's watch over the host (see [`Sim::host_observer`]).
pub type HostObserver = Box<dyn FnMut(&Host)>;

/// The simulation: a host, its clients, the virtual network and clock.
pub struct Sim {
    base: Instant,
    /// Virtual time since the start.
    pub elapsed: Duration,
    pub tick: Duration,
    pub faults: Faults,
    /// Largest unreliable message the path takes.
    pub max_datagram: usize,
    pub rng: Rng,
    pub host: Host,
    pub host_events: Vec<SessionEvent>,
    pub clients: Vec<SimClient>,
    secret: JoinSecret,
    registry: Registry,
    config: Config,
    links: BTreeMap<u64, Link>,
    next_conn: u64,
    in_flight: BinaryHeap<Reverse<(Duration, u64, usize)>>,
    packets: BTreeMap<usize, Packet>,
    next_packet: usize,
    seq: u64,
    /// Unreliable messages the protocol sent larger than the path takes (never allowed).
    pub oversized: u64,
    /// Messages delivered, and bytes.
    pub delivered: u64,
    pub delivered_bytes: u64,
    /// Called with the host after each input it handles and each of its ticks: a test
    /// watches the authoritative state change one step at a time.
    pub host_observer: Option<HostObserver>,
    /// Called with `true` just before each host call that makes output on its own (its
    /// tick, each poll of its output) and with `false` just after: a test measures what
    /// those calls alone do (`tests/alloc_steady.rs` counts their heap allocations).
    pub host_meter: Option<fn(bool)>,
    /// When set, every unreliable message the host sends is kept here: the virtual time,
    /// the client's index, the bytes (`tests/sim_shared.rs` compares them).
    pub host_datagrams: Option<Vec<(Duration, usize, Vec<u8>)>>,
}

/// A virtual epoch: never before the process's own clock, so `Instant` arithmetic holds.
fn epoch() -> Instant {
    Instant::now()
}

impl Sim {
    /// A host of `world` on a network with `faults`, ticking every `tick`.
    pub fn new(world: World, config: Config, faults: Faults, seed: u64) -> Sim {
        let base = epoch();
        let registry = world.registry().clone();
        let secret = JoinSecret::from_bytes([7; 32]);
        let mut rng = Rng::new(seed);
        let mut host_seed = [0u8; 32];
        for chunk in host_seed.chunks_mut(8) {
            chunk.copy_from_slice(&rng.next_u64().to_le_bytes());
        }
        let host = match Host::new(world, secret.clone(), config.clone(), base, host_seed) {
            Ok(host) => host,
            Err(e) => panic!("host: {}", e.error),
        };
        Sim {
            base,
            elapsed: Duration::ZERO,
            tick: Duration::from_micros(16_667),
            faults,
            max_datagram: 1200,
            rng,
            host,
            host_events: Vec::new(),
            clients: Vec::new(),
            secret,
            registry,
            config,
            links: BTreeMap::new(),
            next_conn: 1,
            in_flight: BinaryHeap::new(),
            packets: BTreeMap::new(),
            next_packet: 0,
            seq: 0,
            oversized: 0,
            delivered: 0,
            delivered_bytes: 0,
            host_observer: None,
            host_meter: None,
            host_datagrams: None,
        }
    }

    /// The virtual clock now.
    pub fn now(&self) -> Instant {
        self.base + self.elapsed
    }

    /// Unix time at the virtual clock (tokens expire by it).
    fn unix_now(&self) -> u64 {
        1_800_000_000 + self.elapsed.as_secs()
    }

    /// A new client, peer `peer`, connecting now with a fresh token. Returns its index.
    pub fn join(&mut self, peer: u16) -> usize {
        let index = self.add_client(peer);
        self.connect(index);
        index
    }

    /// A new client, peer `peer`, with a fresh token, not connected yet (a test sets it up
    /// first, then calls [`Sim::connect`]). Returns its index.
    pub fn add_client(&mut self, peer: u16) -> usize {
        let nonce = self.rng.next_u64();
        let token = mint(&self.secret, peer, self.unix_now() + 600, Some(nonce)).to_text();
        let core = match Client::new(&self.registry, &token, self.config.clone(), self.now()) {
            Ok(core) => core,
            Err(e) => panic!("client: {e}"),
        };
        self.clients.push(SimClient {
            core,
            peer,
            conn: None,
            partitioned_until: Duration::ZERO,
            events: Vec::new(),
        });
        self.clients.len() - 1
    }

    /// Opens a new connection for client `index` (a first join, or a reconnect).
    pub fn connect(&mut self, index: usize) {
        let conn = self.next_conn;
        self.next_conn += 1;
        self.links.insert(
            conn,
            Link {
                client: index,
                ..Link::default()
            },
        );
        self.clients[index].conn = Some(conn);
        self.clients[index].core.connected(ConnId(conn));
        self.drain_client(index);
    }

    /// Client `index` loses its connection silently (a headset taken off): both sides
    /// hear of it only by timeouts, which the simulation models as a close after `after`.
    pub fn drop_connection(&mut self, index: usize, after: Duration) {
        let Some(conn) = self.clients[index].conn.take() else {
            return;
        };
        if let Some(link) = self.links.get_mut(&conn) {
            link.closed = true;
        }
        let at = self.elapsed + after;
        self.schedule(at, To::Host, conn, Payload::Closed("timed out".into()));
        self.schedule(
            at,
            To::Client(index),
            conn,
            Payload::Closed("timed out".into()),
        );
    }

    /// Cuts client `index` off the network for `span` (both ways): unreliable messages
    /// are lost, reliable ones wait for the partition to heal.
    pub fn partition(&mut self, index: usize, span: Duration) {
        self.clients[index].partitioned_until = self.elapsed + span;
    }

    fn schedule(&mut self, at: Duration, to: To, conn: u64, payload: Payload) {
        self.seq += 1;
        let id = self.next_packet;
        self.next_packet += 1;
        self.packets.insert(
            id,
            Packet {
                at,
                seq: self.seq,
                to,
                conn,
                payload,
            },
        );
        self.in_flight.push(Reverse((at, self.seq, id)));
    }

    /// Puts a message on the network from the side opposite `to`.
    fn send(&mut self, to: To, conn: u64, channel: Channel, bytes: Vec<u8>) {
        let Some(link) = self.links.get(&conn) else {
            return;
        };
        if link.closed {
            return;
        }
        let client = link.client;
        let way = usize::from(to == To::Host);
        let cut_until = self.clients[client].partitioned_until;
        let f = self.faults;
        let delay = |rng: &mut Rng| {
            let nanos = f.latency.as_nanos() as i64 + rng.spread(f.jitter);
            Duration::from_nanos(nanos.max(0) as u64)
        };
        // Serialisation behind earlier messages, when the bandwidth is capped.
        let mut start = self.elapsed;
        if let Some(bandwidth) = f.bandwidth {
            let link = self.links.get_mut(&conn).expect("looked up");
            let begin = link.busy_until[way].max(self.elapsed);
            let wire = Duration::from_nanos(bytes.len() as u64 * 1_000_000_000 / bandwidth.max(1));
            if channel == Channel::Unreliable && begin > self.elapsed + Duration::from_secs(1) {
                return;
            }
            link.busy_until[way] = begin + wire;
            start = begin + wire;
        }
        match channel {
            Channel::Unreliable => {
                if bytes.len() > self.max_datagram {
                    self.oversized += 1;
                    return;
                }
                if self.elapsed < cut_until || self.rng.chance(f.loss) {
                    return;
                }
                let copies = if self.rng.chance(f.duplicate) { 2 } else { 1 };
                for _ in 0..copies {
                    let at = start + delay(&mut self.rng);
                    self.schedule(at, to, conn, Payload::Bytes(channel, bytes.clone()));
                }
            }
            Channel::Reliable => {
                // Each lost transmission is found lost and sent again about one and a half
                // round trips later (QUIC's time threshold: the connection keeps sending,
                // so later packets are acknowledged); a partition holds it until it heals.
                let again = f.latency * 3 + f.jitter * 2 + Duration::from_millis(5);
                let mut at = start.max(cut_until) + delay(&mut self.rng);
                let mut tries = 0;
                while tries < 16 && self.rng.chance(f.loss) {
                    at += again;
                    tries += 1;
                }
                let link = self.links.get_mut(&conn).expect("looked up");
                at = at.max(link.reliable_at[way]);
                link.reliable_at[way] = at;
                self.schedule(at, to, conn, Payload::Bytes(channel, bytes));
            }
        }
    }

    /// Sends `bytes` on client `index`'s connection as if its core had (a hostile client).
    pub fn inject(&mut self, index: usize, channel: Channel, bytes: Vec<u8>) {
        if let Some(conn) = self.clients[index].conn {
            self.send(To::Host, conn, channel, bytes);
        }
    }

    fn close(&mut self, conn: u64, reason: String, from_host: bool) {
        let Some(link) = self.links.get_mut(&conn) else {
            return;
        };
        if link.closed {
            return;
        }
        link.closed = true;
        let client = link.client;
        // The close arrives (QUIC repeats it to a peer that keeps sending).
        let at = self.elapsed + self.faults.latency;
        let to = if from_host {
            To::Client(client)
        } else {
            To::Host
        };
        self.schedule(at, to, conn, Payload::Closed(reason.clone()));
        // This side is done with it at once.
        if from_host {
            self.host.handle_closed(ConnId(conn), self.now(), reason);
        } else if self.clients[client].conn == Some(conn) {
            self.clients[client].conn = None;
        }
    }

    /// `call` on the host, within [`Sim::host_meter`]'s bracket.
    fn host_metered<R>(&mut self, call: impl FnOnce(&mut Host) -> R) -> R {
        if let Some(meter) = self.host_meter {
            meter(true);
        }
        let result = call(&mut self.host);
        if let Some(meter) = self.host_meter {
            meter(false);
        }
        result
    }

    fn drain_host(&mut self) {
        if let Some(observe) = &mut self.host_observer {
            observe(&self.host);
        }
        while let Some(output) = self.host_metered(Host::poll_output) {
            match output {
                Output::Send {
                    conn,
                    channel,
                    bytes,
                } => {
                    if let Some(link) = self.links.get(&conn.0) {
                        let client = link.client;
                        if let Some(kept) = &mut self.host_datagrams {
                            if channel == Channel::Unreliable {
                                kept.push((self.elapsed, client, bytes.clone()));
                            }
                        }
                        self.send(To::Client(client), conn.0, channel, bytes);
                    }
                }
                Output::Admitted { .. } => {}
                Output::Close { conn, reason, .. } => self.close(conn.0, reason, true),
            }
        }
        while let Some(event) = self.host.poll_event() {
            self.host_events.push(event);
        }
    }

    fn drain_client(&mut self, index: usize) {
        while let Some(output) = self.clients[index].core.poll_output() {
            match output {
                Output::Send {
                    conn,
                    channel,
                    bytes,
                } => self.send(To::Host, conn.0, channel, bytes),
                Output::Admitted { .. } => {}
                Output::Close { conn, reason, .. } => self.close(conn.0, reason, false),
            }
        }
        while let Some(event) = self.clients[index].core.poll_event() {
            self.clients[index].events.push(event);
        }
    }

    /// Delivers every message due by now.
    fn deliver(&mut self) {
        let now = self.now();
        while let Some(&Reverse((at, _, id))) = self.in_flight.peek() {
            if at > self.elapsed {
                break;
            }
            self.in_flight.pop();
            let Some(packet) = self.packets.remove(&id) else {
                continue;
            };
            let arrival = self.base + packet.at;
            match (packet.to, packet.payload) {
                (To::Host, Payload::Bytes(channel, bytes)) => {
                    self.delivered += 1;
                    self.delivered_bytes += bytes.len() as u64;
                    let conn = ConnId(packet.conn);
                    let Some(link) = self.links.get_mut(&packet.conn) else {
                        continue;
                    };
                    match channel {
                        Channel::Reliable if !link.joined => {
                            link.joined = true;
                            let unix = self.unix_now();
                            self.host.handle_join(conn, None, now, unix, &bytes);
                        }
                        Channel::Reliable => self.host.handle_stream(conn, now, &bytes),
                        Channel::Unreliable => {
                            self.host.handle_datagram(conn, arrival, now, &bytes)
                        }
                    }
                    self.drain_host();
                }
                (To::Host, Payload::Closed(reason)) => {
                    self.host.handle_closed(ConnId(packet.conn), now, reason);
                    self.drain_host();
                }
                (To::Client(i), Payload::Bytes(channel, bytes)) => {
                    self.delivered += 1;
                    self.delivered_bytes += bytes.len() as u64;
                    let conn = ConnId(packet.conn);
                    let core = &mut self.clients[i].core;
                    match channel {
                        Channel::Reliable => core.handle_stream(conn, now, &bytes),
                        Channel::Unreliable => core.handle_datagram(conn, arrival, now, &bytes),
                    }
                    self.drain_client(i);
                }
                (To::Client(i), Payload::Closed(reason)) => {
                    let cause = if reason == "timed out" {
                        DisconnectCause::TimedOut
                    } else {
                        DisconnectCause::HostClosed
                    };
                    self.clients[i]
                        .core
                        .handle_closed(ConnId(packet.conn), reason, cause);
                    if self.clients[i].conn == Some(packet.conn) {
                        self.clients[i].conn = None;
                    }
                    self.drain_client(i);
                }
            }
        }
    }

    fn path(&self) -> Path {
        // A capped path takes about a tick's worth of its bandwidth each tick, as the QUIC
        // driver's pacer lets the transport take what its congestion controller allows.
        let budget = self
            .faults
            .bandwidth
            .map_or(usize::MAX, |bytes_per_second| {
                (bytes_per_second as f64 * self.tick.as_secs_f64()) as usize
            });
        Path {
            max_datagram: self.max_datagram,
            rtt: self.faults.latency * 2,
            budget,
        }
    }

    /// One engine tick of every peer, then the clock moves on by a tick. Dictionary
    /// trainings run at once (their result is installed on the spot).
    pub fn step(&mut self) {
        self.deliver();
        let now = self.now();
        let path = self.path();
        self.host_metered(|host| host.tick(now, |_| path));
        for job in self.host.take_training_jobs() {
            self.host.finish_training(job.run());
        }
        self.drain_host();
        for i in 0..self.clients.len() {
            self.clients[i].core.tick(now, path);
            self.drain_client(i);
        }
        self.elapsed += self.tick;
    }

    /// Whether every client still in the session holds the host's state (of what it
    /// sees, with interest management).
    pub fn converged(&self) -> bool {
        self.clients.iter().filter(|c| c.conn.is_some()).all(|c| {
            c.core
                .peer()
                .is_some_and(|peer| c.core.world().state_hash() == self.host.interest_hash(peer))
        })
    }

    /// Steps until [`Sim::converged`], at most `bound` of virtual time; returns the time
    /// it took, or `None`.
    pub fn converge(&mut self, bound: Duration) -> Option<Duration> {
        let start = self.elapsed;
        while self.elapsed - start <= bound {
            if self.converged() {
                return Some(self.elapsed - start);
            }
            self.step();
        }
        None
    }
}
