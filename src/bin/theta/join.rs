//! `theta join`: one client of a host's session, or several in this process (one per
//! `--token`, as a load generator does), each pinning the host's certificate fingerprint.
//! With `--avatar`, every client pushes a synthetic 3-point avatar each tick, as an XR
//! engine pushes its tracked devices each frame.
//!
//! With `--own-objects M`, the first client of each room in this process spawns M objects
//! of the demo scene's types once joined and moves a share of them each object step (60
//! Hz by default), so that a room holds objects that change (`theta bench rooms`).
//!
//! With several clients, every line a client prints starts with `[peer N]` (a room's
//! tokens: `[room R peer N]`, peer ids being per room).

use std::time::{Duration, Instant};

use theta_net::net::session::{DisconnectCause, Session, SessionConfig, SessionEvent};
use theta_net::net::tls::ServerTrust;
use theta_net::net::token::JoinToken;
use theta_net::xr::synthetic::avatar;
use theta_net::xr::{Device, Pose, PoseFlags, PoseSample};
use theta_net::{ComponentId, EntityId, PeerId, Registry};

use crate::cli::JoinArgs;
use crate::host_join::{rate_note, Rates};
use crate::interrupt;
use crate::netutil::{self, Pacer, TickRate};
use crate::scene;

/// How long joining may take before the client gives up (the session reports most
/// failures sooner, e.g. a refusal or a wrong fingerprint).
const JOIN_BOUND: Duration = Duration::from_secs(20);
/// The avatar's devices, in the synthetic frame's order.
const DEVICES: [Device; 3] = [Device::HEAD, Device::LEFT_HAND, Device::RIGHT_HAND];
/// Frames of the synthetic avatar track (60 s at 90 Hz); the clients loop over it.
const TRACK_FRAMES: usize = 5400;
/// Frames between two peers' places in the track, so that avatars differ.
const PEER_OFFSET: usize = 700;

/// Clients of this process connecting at once, at most (a host admits 16 connections at
/// once from one address by default).
const CONNECTING: usize = 8;

/// One client of this process.
struct Joiner {
    /// The peer its token admits.
    peer: PeerId,
    /// `[peer N] ` when this process runs several clients, else nothing.
    prefix: String,
    session: Session,
    /// When its session started.
    started: Instant,
    joined: Option<Instant>,
    ended: Option<(String, DisconnectCause)>,
    /// Ticks since it joined.
    ticks: u64,
    /// Replica events received.
    updates: u64,
    rates: Rates,
    /// Left (after --ticks or a disconnect): no longer ticked.
    done: bool,
    /// The objects this client spawns and moves (`--own-objects`), once joined.
    objects: Option<Objects>,
}

impl Joiner {
    /// Starts the client of `token`.
    fn start(
        addr: std::net::SocketAddr,
        trust: &ServerTrust,
        token: &str,
        registry: &Registry,
        several: bool,
        objects: Option<Objects>,
    ) -> Result<Joiner, String> {
        // Checked for form while parsing the command line.
        let parsed = JoinToken::from_text(token).map_err(|e| e.to_string())?;
        let peer = parsed.peer();
        // Peer ids are per room: with a room's tokens the prefix names the room too.
        let prefix = match (several, parsed.room()) {
            (false, _) => String::new(),
            (true, None) => format!("[peer {peer}] "),
            (true, Some(room)) => format!("[room {room} peer {peer}] "),
        };
        let session = Session::join(addr, trust, token, registry, SessionConfig::default())
            .map_err(|e| format!("cannot start the client for peer {peer}: {e}"))?;
        Ok(Joiner {
            peer,
            prefix,
            session,
            started: Instant::now(),
            joined: None,
            ended: None,
            ticks: 0,
            updates: 0,
            rates: Rates::default(),
            done: false,
            objects,
        })
    }
}

/// `theta join`.
pub fn join(o: &JoinArgs) -> Result<(), String> {
    let addr = o.addr;
    let registry = scene::registry()?;
    interrupt::install();
    let several = o.tokens.len() > 1;
    let trust = ServerTrust::Fingerprint(o.fingerprint);
    let mut waiting = o.tokens.iter();
    // The rooms whose first client of this process was started (`None`: a hosted
    // session's); that client owns the objects of `--own-objects`.
    let mut owned_rooms: Vec<Option<String>> = Vec::new();
    let mut clients: Vec<Joiner> = Vec::with_capacity(o.tokens.len());
    println!(
        "theta join: connecting to {addr} (pinned fingerprint {}){}",
        o.fingerprint,
        if several {
            format!(", {} clients in this process", o.tokens.len())
        } else {
            String::new()
        }
    );
    let track: Vec<[Pose; 3]> = if o.avatar {
        avatar(TRACK_FRAMES)
    } else {
        Vec::new()
    };

    let mut pacer = Pacer::new(o.rate);
    let started = Instant::now();
    let mut tick_rate = TickRate::new(o.rate);
    let mut next_stats = Instant::now() + Duration::from_secs(1);
    let mut frame = 0usize;
    loop {
        if interrupt::requested() {
            println!("interrupted");
            break;
        }
        // Clients connect a few at a time: a host admits a bounded number at once from
        // one address.
        while clients.iter().filter(|c| c.joined.is_none()).count() < CONNECTING {
            let Some(token) = waiting.next() else { break };
            let objects = match o.own_objects {
                Some(count) => {
                    let room = JoinToken::from_text(token)
                        .map_err(|e| e.to_string())?
                        .room()
                        .map(str::to_owned);
                    if owned_rooms.contains(&room) {
                        None
                    } else {
                        owned_rooms.push(room);
                        Some(Objects::new(
                            count,
                            o.move_percent,
                            o.object_rate,
                            owned_rooms.len() as u64,
                        ))
                    }
                }
                None => None,
            };
            clients.push(Joiner::start(
                addr, &trust, token, &registry, several, objects,
            )?);
        }
        for c in clients.iter_mut().filter(|c| !c.done) {
            step(c, &track, frame)?;
            if c.joined.is_some() && o.ticks.is_some_and(|t| c.ticks >= t) {
                c.done = true;
            }
        }
        frame += 1;
        tick_rate.tick();
        if clients.len() == o.tokens.len() && clients.iter().all(|c| c.done) {
            break;
        }
        if Instant::now() >= next_stats {
            next_stats += Duration::from_secs(1);
            let achieved = tick_rate.take();
            for c in clients.iter_mut().filter(|c| c.joined.is_some() && !c.done) {
                stats_line(c, &tick_rate, achieved, o.avatar, started);
            }
        }
        pacer.wait();
    }
    let mut failed = Vec::new();
    for c in clients {
        let d = c.session.diagnostics();
        let link = d.peers.first().copied().unwrap_or_default();
        println!(
            "{}final state hash {:016x} (host tick {}, {} entities, {} components; {} bytes down, {} up on the wire, snapshot {} bytes)",
            c.prefix,
            c.session.state_hash(),
            d.tick,
            d.entities,
            d.components,
            link.wire_bytes_received,
            link.wire_bytes_sent,
            link.snapshot_bytes
        );
        drop(c.session);
        match c.ended {
            // The host ending the session in order is a normal end for a client.
            Some((reason, cause)) if cause != DisconnectCause::HostClosed => {
                failed.push(format!("{}the connection ended: {reason}", c.prefix))
            }
            _ => {}
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(failed.join("; "))
    }
}

/// One tick of one client: its session, its events, its avatar. An error when it could
/// not join at all (nothing was replicated).
fn step(c: &mut Joiner, track: &[[Pose; 3]], frame: usize) -> Result<(), String> {
    c.session.tick();
    for event in c.session.poll_events(usize::MAX) {
        match event {
            SessionEvent::Joined { peer } => {
                println!(
                    "{}joined as peer {peer} after {}",
                    c.prefix,
                    netutil::ms(c.started.elapsed())
                );
                c.joined = Some(Instant::now());
            }
            SessionEvent::Disconnected { reason, cause } => {
                c.ended.get_or_insert((reason, cause));
            }
            SessionEvent::Replica { .. } => c.updates += 1,
            _ => {}
        }
    }
    if let Some((reason, _)) = &c.ended {
        if c.joined.is_none() {
            // Refused, wrong fingerprint, no host: nothing was replicated.
            return Err(if reason.starts_with("join refused") {
                format!("{}{reason}", c.prefix)
            } else {
                format!("{}could not join: {reason}", c.prefix)
            });
        }
        println!("{}disconnected: {reason}", c.prefix);
        c.done = true;
        return Ok(());
    }
    if c.joined.is_none() {
        if c.started.elapsed() > JOIN_BOUND {
            return Err(format!(
                "{}could not join: no answer within {JOIN_BOUND:?}",
                c.prefix
            ));
        }
        return Ok(());
    }
    c.ticks += 1;
    if let Some(objects) = &mut c.objects {
        objects
            .step(&mut c.session)
            .map_err(|e| format!("{}{e}", c.prefix))?;
        if objects.announce {
            objects.announce = false;
            println!(
                "{}spawned {} objects, moving {}% of them {} times a second",
                c.prefix,
                objects.entities.len(),
                objects.move_percent,
                objects.rate
            );
        }
    }
    if !track.is_empty() {
        let poses = track[(frame + c.peer as usize * PEER_OFFSET) % track.len()];
        let time = c.session.now();
        for (device, pose) in DEVICES.into_iter().zip(poses) {
            let sample = PoseSample {
                pose,
                time,
                flags: PoseFlags::ALL,
                linear_velocity: None,
                angular_velocity: None,
            };
            c.session
                .push_pose(device, &sample)
                .map_err(|e| format!("{}pose push refused: {e}", c.prefix))?;
        }
    }
    Ok(())
}

/// The client's stats line of the second that ended.
fn stats_line(c: &mut Joiner, tick_rate: &TickRate, achieved: f64, avatar: bool, started: Instant) {
    let d = c.session.diagnostics();
    let (up, down) = c.rates.update(&d.peers);
    let link = d.peers.first().copied().unwrap_or_default();
    let avatars = if avatar {
        format!(
            " | avatars: {} remote devices",
            c.session.remote_devices().len()
        )
    } else {
        String::new()
    };
    println!(
        "{}[{:>4.0} s] host tick {} | {} | {} entities, {} components | down {} up {} | RTT {} | lost {} | {} events{avatars} | hash {:016x}",
        c.prefix,
        started.elapsed().as_secs_f64(),
        d.tick,
        rate_note(tick_rate, achieved),
        d.entities,
        d.components,
        netutil::rate(down),
        netutil::rate(up),
        netutil::ms(link.rtt),
        link.packets_lost,
        c.updates,
        c.session.state_hash()
    );
}

/// The objects one client spawns, owns and moves (`--own-objects`): the demo scene's
/// transform and color, in smooth motion (the scene's bodies), written through the
/// session as an engine writes what it owns.
struct Objects {
    /// How many to spawn at the first tick after the join.
    count: usize,
    move_percent: f64,
    /// Object steps per second.
    rate: f64,
    transform: ComponentId,
    color: ComponentId,
    entities: Vec<EntityId>,
    bodies: Vec<scene::Body>,
    rng: scene::Rng,
    /// When the objects were spawned, and the object steps taken since.
    since: Option<Instant>,
    steps: u64,
    /// A line to print: the objects were just spawned.
    announce: bool,
}

impl Objects {
    fn new(count: usize, move_percent: f64, rate: f64, seed: u64) -> Objects {
        Objects {
            count,
            move_percent,
            rate,
            transform: ComponentId::of_name(scene::TRANSFORM),
            color: ComponentId::of_name(scene::COLOR),
            entities: Vec::with_capacity(count),
            bodies: Vec::with_capacity(count),
            rng: scene::Rng(seed),
            since: None,
            steps: 0,
            announce: false,
        }
    }

    /// Spawns the objects at the first call, then moves the moving share of them when an
    /// object step is due: at most one a tick, never catching up on steps a slow tick
    /// missed (an engine moves its objects by the time elapsed).
    fn step(&mut self, session: &mut Session) -> Result<(), String> {
        let Some(since) = self.since else {
            for _ in 0..self.count {
                let e = session
                    .spawn()
                    .map_err(|e| format!("cannot spawn an object: {e}"))?;
                let body = scene::Body::random(&mut self.rng);
                let color = (self.rng.next() as u32).to_le_bytes();
                write(session, e, self.transform, &body.transform())?;
                write(session, e, self.color, &color)?;
                self.entities.push(e);
                self.bodies.push(body);
            }
            self.since = Some(Instant::now());
            self.announce = true;
            return Ok(());
        };
        let due = (since.elapsed().as_secs_f64() * self.rate) as u64;
        if self.steps >= due {
            return Ok(());
        }
        self.steps = self.steps.max(due - 1) + 1;
        let moving = ((self.entities.len() as f64) * self.move_percent / 100.0).round() as usize;
        for (e, body) in self.entities.iter().zip(&mut self.bodies).take(moving) {
            body.advance(&mut self.rng);
            write(session, *e, self.transform, &body.transform())?;
        }
        Ok(())
    }
}

/// Writes one value of an owned object.
fn write(session: &mut Session, e: EntityId, c: ComponentId, bytes: &[u8]) -> Result<(), String> {
    session
        .set(e, c, bytes)
        .map(|_| ())
        .map_err(|err| format!("cannot write object {e:?}: {err}"))
}
