//! `theta bench interest`: the figures of issue 17 (item 7). A proto `Host` and N proto
//! `Client`s run in this process through a small pump (every message delivered at once,
//! in order; no sockets; a virtual clock of 60 ticks per second), on one scene and seed
//! twice: with interest management and without. After the joins and snapshots settle, it
//! measures the host's CPU per tick, the bytes the host sends each client and the share of
//! the world each client sees, and prints the ratios beside the goals of the issue.
//!
//! Host CPU is the wall time of the host's own calls in a tick: handling what the clients
//! sent, then `Host::tick` (which updates interest, marks changes and encodes what goes to
//! each client). The engine's writes, the clients' work and the pump are not counted.
//! Dictionary trainings run on the spot, outside the timing (a driver runs them on another
//! thread).

use std::time::{Duration, Instant};

use theta_net::interest::Volume;
use theta_net::proto::token::{mint, JoinSecret};
use theta_net::proto::{Channel, Client, Config, ConnId, Host, Output, Path};
use theta_net::wire::codec::MessageKind;
use theta_net::{ComponentId, EntityId, Layout, World};

use crate::bench_scene::XorShift;
use crate::cli::InterestArgs;

/// The virtual clock's step: 60 ticks per second.
const TICK: Duration = Duration::from_nanos(16_666_667);
/// Largest datagram the path takes (as the simulator's).
const MAX_DATAGRAM: usize = 1200;
/// Share of the world one sphere should hold; the cube's side follows from it.
const SHARE: f64 = 0.1;
/// A sphere's outer radius (hysteresis) over its radius.
const OUTER: f32 = 1.1;
/// Ticks after every client joined before the settled check starts (snapshots, the
/// leaves that follow them, dictionary training).
const WARMUP_TICKS: u64 = 120;
/// Longest the warm-up waits, in ticks after the joins, for the host's automatic training
/// of its datagram dictionary (a one-time cost of a session: a dictionary to every client),
/// so that it is not measured; a scene that sends too few datagrams goes on without.
const DICTIONARY_WAIT: u64 = 60 * 20;
/// Bound on the warm-up, in ticks, before the run is called unsettled.
const SETTLE_BOUND: u64 = 60 * 40;
/// The share seen is sampled every this many measured ticks (it looks at every entity
/// for every client).
const SHARE_EVERY: usize = 6;
/// Unix time of the virtual clock's start (join tokens expire by it).
const UNIX_START: u64 = 1_800_000_000;
/// Size of the static component each object also carries (goes with an entering object).
const LOOK_BYTES: usize = 16;
/// The goals of issue 17.
const GOAL_BYTES: f64 = 1.5;
const GOAL_CPU: f64 = 1.0;

/// A float uniform in `0..1`.
fn unit(rng: &mut XorShift) -> f32 {
    (rng.next() >> 40) as f32 / (1u64 << 24) as f32
}

fn position_bytes(p: [f32; 3]) -> [u8; 12] {
    let mut out = [0u8; 12];
    for (chunk, c) in out.chunks_exact_mut(4).zip(p) {
        chunk.copy_from_slice(&c.to_le_bytes());
    }
    out
}

/// The side of the cube in which a sphere of `radius` holds [`SHARE`] of the volume:
/// (4/3)·π·r³ = SHARE · side³.
fn cube_side(radius: f32) -> f32 {
    radius * (4.0 * std::f64::consts::PI / (3.0 * SHARE)).cbrt() as f32
}

/// Reflects `x` back into `lo..=hi` (a step past a wall bounces off it).
fn reflect(x: f32, lo: f32, hi: f32) -> f32 {
    let x = if x < lo { 2.0 * lo - x } else { x };
    let x = if x > hi { 2.0 * hi - x } else { x };
    x.clamp(lo, hi)
}

/// The objects: positions in a cube, a few moving each tick. Built the same from the same
/// arguments, so both cases see the same scene and the same moves.
struct Scene {
    side: f32,
    /// Largest step of a moving object per axis.
    step: f32,
    pos: ComponentId,
    objects: Vec<EntityId>,
    positions: Vec<[f32; 3]>,
    /// A permutation of the objects' indices; each tick's movers are drawn from it.
    order: Vec<usize>,
    movers: usize,
    rng: XorShift,
}

impl Scene {
    fn new(args: &InterestArgs) -> Result<(Scene, World), String> {
        let radius = args.radius;
        let side = cube_side(radius);
        let mut rng = XorShift(0x1e7e_5700_0000_0001 ^ args.seed.wrapping_mul(0x9e37_79b9));
        let mut world = World::default();
        let bad = |e: &dyn std::fmt::Display| e.to_string();
        let pos = world
            .register("bench.Position", Layout::Fixed(12))
            .map_err(|e| bad(&e))?;
        let look = world
            .register("bench.Look", Layout::Fixed(LOOK_BYTES as u32))
            .map_err(|e| bad(&e))?;
        let mut objects = Vec::with_capacity(args.objects);
        let mut positions = Vec::with_capacity(args.objects);
        let mut bytes = [0u8; LOOK_BYTES];
        for _ in 0..args.objects {
            let e = world.spawn().map_err(|e| bad(&e))?;
            let p = [(); 3].map(|_| unit(&mut rng) * side);
            world.set(e, pos, &position_bytes(p)).map_err(|e| bad(&e))?;
            rng.fill(&mut bytes);
            world.set(e, look, &bytes).map_err(|e| bad(&e))?;
            objects.push(e);
            positions.push(p);
        }
        let movers = ((args.objects as f64 * args.moving_percent / 100.0).round() as usize)
            .min(args.objects);
        let scene = Scene {
            side,
            step: radius / 50.0,
            pos,
            order: (0..objects.len()).collect(),
            objects,
            positions,
            movers,
            rng,
        };
        Ok((scene, world))
    }

    /// Moves this tick's movers (distinct objects) by a small step each, writing their
    /// position component and, with interest on, their interest position.
    fn move_some(&mut self, host: &mut Host, interest: bool) -> Result<(), String> {
        let n = self.order.len();
        for i in 0..self.movers {
            let j = i + self.rng.below(n - i);
            self.order.swap(i, j);
            let k = self.order[i];
            let (step, side) = (self.step, self.side);
            let p = &mut self.positions[k];
            for c in p.iter_mut() {
                *c = reflect(*c + (unit(&mut self.rng) * 2.0 - 1.0) * step, 0.0, side);
            }
            let (e, p) = (self.objects[k], *p);
            host.set(e, self.pos, &position_bytes(p))
                .map_err(|e| format!("moving an object: {e}"))?;
            if interest {
                host.set_interest_position(e, Some(p))
                    .map_err(|e| format!("placing an object: {e}"))?;
            }
        }
        Ok(())
    }
}

/// One client: its core, its connection, its sphere and what the host sent it.
struct Viewer {
    core: Client,
    conn: ConnId,
    peer: u16,
    center: [f32; 3],
    /// Walking direction (a unit vector).
    dir: [f32; 3],
    inbox: Vec<(Channel, Vec<u8>)>,
    datagram_bytes: u64,
    stream_bytes: u64,
}

/// The host, its clients and the messages between them.
struct Pump {
    host: Host,
    viewers: Vec<Viewer>,
    /// Messages for the host: from which client, on which channel.
    host_inbox: Vec<(usize, Channel, Vec<u8>)>,
    /// Whether the host has had each client's join request.
    joined: Vec<bool>,
    base: Instant,
    elapsed: Duration,
    interest: bool,
    radius: f32,
    /// Metres walked per tick.
    stride: f32,
    /// Where a sphere's centre may go: it stays inside the cube.
    bounds: (f32, f32),
    /// Dictionary trainings run.
    trainings: u64,
}

impl Pump {
    fn new(
        world: World,
        scene: &Scene,
        args: &InterestArgs,
        interest: bool,
    ) -> Result<Pump, String> {
        let radius = args.radius;
        let config = Config {
            interest_cell: interest.then_some(radius),
            ..Config::default()
        };
        let registry = world.registry().clone();
        let secret = JoinSecret::from_bytes([7; 32]);
        let base = Instant::now();
        let mut host = Host::new(world, secret.clone(), config.clone(), base, [5; 32])
            .map_err(|e| format!("host: {}", e.error))?;
        if interest {
            for (&e, &p) in scene.objects.iter().zip(&scene.positions) {
                host.set_interest_position(e, Some(p))
                    .map_err(|e| format!("placing an object: {e}"))?;
            }
        }
        // Distinct spots: cells of a lattice inside the cube, in a seeded order.
        let bounds = (radius, (scene.side - radius).max(radius));
        let per_axis = (1..).find(|k| k * k * k >= args.clients).unwrap_or(1);
        let mut rng = XorShift(0x5107_0000_0000_0001 ^ args.seed);
        let mut slots: Vec<usize> = (0..per_axis * per_axis * per_axis).collect();
        for i in 0..args.clients {
            let j = i + rng.below(slots.len() - i);
            slots.swap(i, j);
        }
        let at = |index: usize| {
            let t = (index as f32 + 0.5) / per_axis as f32;
            bounds.0 + t * (bounds.1 - bounds.0)
        };
        let mut pump = Pump {
            host,
            viewers: Vec::with_capacity(args.clients),
            host_inbox: Vec::new(),
            joined: vec![false; args.clients],
            base,
            elapsed: Duration::ZERO,
            interest,
            radius,
            stride: args.walk * TICK.as_secs_f32(),
            bounds,
            trainings: 0,
        };
        for (i, &slot) in slots.iter().take(args.clients).enumerate() {
            let peer = u16::try_from(i + 1).map_err(|_| "too many clients".to_owned())?;
            let token = mint(&secret, peer, UNIX_START + 86_400, Some(i as u64)).to_text();
            let mut core = Client::new(&registry, &token, config.clone(), base)
                .map_err(|e| format!("client: {e}"))?;
            let conn = ConnId(i as u64 + 1);
            core.connected(conn);
            let center = [
                at(slot % per_axis),
                at(slot / per_axis % per_axis),
                at(slot / (per_axis * per_axis)),
            ];
            let d = [(); 3].map(|_| unit(&mut rng) * 2.0 - 1.0);
            let len = d.iter().map(|c| c * c).sum::<f32>().sqrt().max(1e-6);
            pump.viewers.push(Viewer {
                core,
                conn,
                peer,
                center,
                dir: d.map(|c| c / len),
                inbox: Vec::new(),
                datagram_bytes: 0,
                stream_bytes: 0,
            });
            pump.drain_client(i)?;
            pump.set_interest(i)?;
        }
        Ok(pump)
    }

    fn path(&self) -> Path {
        Path {
            max_datagram: MAX_DATAGRAM,
            // Everything is delivered within the tick, acknowledged at the next.
            rtt: TICK,
            budget: usize::MAX,
        }
    }

    fn sphere(&self, center: [f32; 3]) -> Volume {
        Volume::Sphere {
            center,
            radius: self.radius,
            outer: self.radius * OUTER,
        }
    }

    fn set_interest(&mut self, i: usize) -> Result<(), String> {
        if !self.interest {
            return Ok(());
        }
        let v = &self.viewers[i];
        let volume = self.sphere(v.center);
        self.host
            .set_client_interest(v.peer, &[volume], &[])
            .map_err(|e| format!("a client's interest: {e}"))
    }

    /// The clients walk a stride, bouncing off the walls, and the host hears of it (as
    /// an engine updates a client's volume from its head pose every frame).
    fn walk(&mut self) -> Result<(), String> {
        if !self.interest || self.stride == 0.0 {
            return Ok(());
        }
        let (lo, hi) = self.bounds;
        for i in 0..self.viewers.len() {
            let v = &mut self.viewers[i];
            for axis in 0..3 {
                let c = v.center[axis] + v.dir[axis] * self.stride;
                if !(lo..=hi).contains(&c) {
                    v.dir[axis] = -v.dir[axis];
                }
                v.center[axis] = reflect(c, lo, hi);
            }
            self.set_interest(i)?;
        }
        Ok(())
    }

    /// Takes what client `i` sent, for the host's next turn.
    fn drain_client(&mut self, i: usize) -> Result<(), String> {
        let core = &mut self.viewers[i].core;
        core.poll_events_with(usize::MAX, |_| {});
        while let Some(output) = core.poll_output() {
            match output {
                Output::Send { channel, bytes, .. } => self.host_inbox.push((i, channel, bytes)),
                Output::Admitted { .. } => {}
                Output::Close { reason, .. } => {
                    return Err(format!("client {} closed its connection: {reason}", i + 1))
                }
            }
        }
        Ok(())
    }

    /// One tick: the engine's writes, the host's turn (timed: the clients' messages, then
    /// its tick), then every client's turn. Returns the host's time.
    fn step(&mut self, scene: &mut Scene) -> Result<Duration, String> {
        let now = self.base + self.elapsed;
        let unix = UNIX_START + self.elapsed.as_secs();
        let path = self.path();
        scene.move_some(&mut self.host, self.interest)?;
        self.walk()?;
        let inbox = std::mem::take(&mut self.host_inbox);
        let started = Instant::now();
        for (i, channel, bytes) in &inbox {
            let conn = self.viewers[*i].conn;
            match channel {
                Channel::Reliable if !self.joined[*i] => {
                    self.joined[*i] = true;
                    self.host.handle_join(conn, None, now, unix, bytes);
                }
                Channel::Reliable => self.host.handle_stream(conn, now, bytes),
                Channel::Unreliable => self.host.handle_datagram(conn, now, now, bytes),
            }
        }
        self.host.tick(now, |_| path);
        let host_time = started.elapsed();
        for job in self.host.take_training_jobs() {
            self.host.finish_training(job.run());
            self.trainings += 1;
        }
        self.host.poll_events_with(usize::MAX, |_| {});
        while let Some(output) = self.host.poll_output() {
            match output {
                Output::Send {
                    conn,
                    channel,
                    bytes,
                } => {
                    let v = usize::try_from(conn.0)
                        .ok()
                        .and_then(|c| self.viewers.get_mut(c.wrapping_sub(1)))
                        .ok_or_else(|| format!("the host sent on unknown {conn:?}"))?;
                    match channel {
                        Channel::Reliable => v.stream_bytes += bytes.len() as u64,
                        Channel::Unreliable => v.datagram_bytes += bytes.len() as u64,
                    }
                    v.inbox.push((channel, bytes));
                }
                Output::Admitted { .. } => {}
                Output::Close { conn, reason, .. } => {
                    return Err(format!("the host closed {conn:?}: {reason}"))
                }
            }
        }
        for i in 0..self.viewers.len() {
            let v = &mut self.viewers[i];
            for (channel, bytes) in std::mem::take(&mut v.inbox) {
                match channel {
                    Channel::Reliable => v.core.handle_stream(v.conn, now, &bytes),
                    Channel::Unreliable => v.core.handle_datagram(v.conn, now, now, &bytes),
                }
            }
            v.core.tick(now, path);
            self.drain_client(i)?;
        }
        self.elapsed += TICK;
        Ok(host_time)
    }

    fn all_joined(&self) -> bool {
        self.viewers.iter().all(|v| v.core.peer().is_some())
            && self.host.connections().count() == self.viewers.len()
    }

    /// Whether every client holds exactly the entities the host says it sees.
    fn holds_what_it_sees(&self) -> bool {
        let host = self.host.world();
        self.viewers.iter().all(|v| {
            let mine = v.core.world();
            let mut seen = 0usize;
            let exact = host.entities().all(|e| {
                let sees = self.host.sees(v.peer, e);
                seen += usize::from(sees);
                sees == mine.is_alive(e)
            });
            exact && mine.entities().count() == seen
        })
    }

    /// Whether the host trained its datagram dictionary (it does once, after enough
    /// samples).
    fn datagram_dictionary_trained(&self) -> bool {
        self.host
            .diagnostics()
            .compression
            .iter()
            .any(|k| k.kind == MessageKind::Datagram && k.trained > 0)
    }

    /// The mean share of the world the clients see now.
    fn share_seen(&self) -> f64 {
        let host = self.host.world();
        let total = host.stats().entities.max(1) as f64;
        let sum: f64 = self
            .viewers
            .iter()
            .map(|v| {
                host.entities()
                    .filter(|&e| self.host.sees(v.peer, e))
                    .count() as f64
                    / total
            })
            .sum();
        sum / self.viewers.len().max(1) as f64
    }

    /// Bytes sent to all clients so far: datagrams, stream messages.
    fn bytes_down(&self) -> (u64, u64) {
        self.viewers.iter().fold((0, 0), |(d, s), v| {
            (d + v.datagram_bytes, s + v.stream_bytes)
        })
    }
}

/// The figures of one case.
struct Figures {
    warmup_ticks: u64,
    cpu: Vec<Duration>,
    /// Per client per second, down.
    datagram_rate: f64,
    stream_rate: f64,
    share: f64,
    holds: bool,
    trainings: u64,
}

impl Figures {
    fn bytes_rate(&self) -> f64 {
        self.datagram_rate + self.stream_rate
    }

    fn median(&self) -> Duration {
        let mut sorted = self.cpu.clone();
        sorted.sort_unstable();
        sorted.get(sorted.len() / 2).copied().unwrap_or_default()
    }

    fn mean(&self) -> Duration {
        let total: Duration = self.cpu.iter().sum();
        total / u32::try_from(self.cpu.len().max(1)).unwrap_or(u32::MAX)
    }
}

fn run_case(args: &InterestArgs, interest: bool) -> Result<Figures, String> {
    let (mut scene, world) = Scene::new(args)?;
    let mut pump = Pump::new(world, &scene, args, interest)?;
    // Warm-up: the joins, the snapshots (and with interest, the leaves that follow them)
    // and the datagram dictionary, until every client holds exactly what it sees.
    let (mut ticks, mut since_joined) = (0u64, 0u64);
    loop {
        pump.step(&mut scene)?;
        ticks += 1;
        if pump.all_joined() {
            since_joined += 1;
        }
        if since_joined >= WARMUP_TICKS
            && (since_joined >= DICTIONARY_WAIT || pump.datagram_dictionary_trained())
            && pump.holds_what_it_sees()
        {
            break;
        }
        if ticks > SETTLE_BOUND {
            return Err(format!(
                "{}: the clients did not settle in {} s",
                case_name(interest),
                SETTLE_BOUND / 60
            ));
        }
    }
    let trainings = pump.trainings;
    let measured = ((args.seconds / TICK.as_secs_f64()).round() as usize).max(1);
    let (d0, s0) = pump.bytes_down();
    let mut cpu = Vec::with_capacity(measured);
    let mut shares = Vec::new();
    for t in 0..measured {
        cpu.push(pump.step(&mut scene)?);
        if t % SHARE_EVERY == 0 {
            shares.push(pump.share_seen());
        }
    }
    let (d1, s1) = pump.bytes_down();
    let per_client_second = (measured as f64 * TICK.as_secs_f64()) * args.clients as f64;
    Ok(Figures {
        warmup_ticks: ticks,
        cpu,
        datagram_rate: (d1 - d0) as f64 / per_client_second,
        stream_rate: (s1 - s0) as f64 / per_client_second,
        share: shares.iter().sum::<f64>() / shares.len().max(1) as f64,
        holds: pump.holds_what_it_sees(),
        trainings: pump.trainings - trainings,
    })
}

fn case_name(interest: bool) -> &'static str {
    if interest {
        "with interest"
    } else {
        "without"
    }
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// Runs `theta bench interest`.
pub fn run(args: &InterestArgs) -> Result<(), String> {
    let started = Instant::now();
    let side = cube_side(args.radius);
    let movers = (args.objects as f64 * args.moving_percent / 100.0).round() as usize;
    println!(
        "theta bench interest: interest management against none, same scene and seed, one process"
    );
    println!(
        "scene: {} objects uniform in a cube of side {side:.1} m, {} % ({movers}) moving per tick by up to {:.2} m per axis",
        args.objects,
        args.moving_percent,
        args.radius / 50.0
    );
    println!(
        "clients: {}, each a sphere of radius {} m (outer {:.1} m) at its own spot, walking at {} m/s; interest cells of {} m",
        args.clients,
        args.radius,
        args.radius * OUTER,
        args.walk,
        args.radius
    );
    println!(
        "pump: in memory, every message delivered at once, in order; virtual clock at 60 ticks/s; \
         {:.1} s ({} ticks) measured after the joins settle",
        args.seconds,
        ((args.seconds / TICK.as_secs_f64()).round() as usize).max(1)
    );
    println!("host CPU = wall time of handling the clients' messages + Host::tick, per tick (not the clients' work)");
    if cfg!(debug_assertions) {
        println!("WARNING: debug build; run `cargo run --release -- bench interest` for meaningful figures");
    }
    let with = run_case(args, true)?;
    let without = run_case(args, false)?;

    println!();
    println!(
        "{:<14} {:>10} {:>10} {:>14} {:>13} {:>13} {:>7} {:>7} {:>6}",
        "case",
        "CPU med µs",
        "mean µs",
        "B/client/s",
        "datagrams",
        "stream",
        "seen",
        "warm-up",
        "holds"
    );
    for (interest, f) in [(true, &with), (false, &without)] {
        println!(
            "{:<14} {:>10.1} {:>10.1} {:>14.0} {:>13.0} {:>13.0} {:>6.1}% {:>7} {:>6}",
            case_name(interest),
            us(f.median()),
            us(f.mean()),
            f.bytes_rate(),
            f.datagram_rate,
            f.stream_rate,
            f.share * 100.0,
            f.warmup_ticks,
            if f.holds { "yes" } else { "NO" }
        );
    }
    let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { f64::INFINITY };
    let cpu_median = ratio(us(with.median()), us(without.median()));
    let cpu_mean = ratio(us(with.mean()), us(without.mean()));
    let bytes = ratio(with.bytes_rate(), without.bytes_rate());
    println!(
        "{:<14} {:>10.3} {:>10.3} {:>14.3}",
        "with/without", cpu_median, cpu_mean, bytes
    );
    for (interest, f) in [(true, &with), (false, &without)] {
        if f.trainings > 0 {
            println!(
                "note: {}: {} dictionary training(s) ran while measuring",
                case_name(interest),
                f.trainings
            );
        }
    }

    println!();
    println!("goals (issue 17)");
    let verdict = |pass: bool| if pass { "PASS" } else { "FAIL" };
    let share_bytes = ratio(with.bytes_rate(), with.share * without.bytes_rate());
    println!(
        "  {:<62} {:>8.3}  {}",
        format!(
            "bytes per client ÷ (share seen {:.1} % × no-interest bytes) <= {GOAL_BYTES}",
            with.share * 100.0
        ),
        share_bytes,
        verdict(share_bytes <= GOAL_BYTES)
    );
    println!(
        "  {:<62} {:>8.3}  {}",
        format!("host CPU per tick with ÷ without, median < {GOAL_CPU}"),
        cpu_median,
        verdict(cpu_median < GOAL_CPU)
    );
    println!(
        "  {:<62} {:>8.3}  {}",
        format!("host CPU per tick with ÷ without, mean < {GOAL_CPU}"),
        cpu_mean,
        verdict(cpu_mean < GOAL_CPU)
    );
    println!();
    println!("done in {:.1} s", started.elapsed().as_secs_f64());
    if with.holds && without.holds {
        Ok(())
    } else {
        Err("a client does not hold exactly what the host says it sees".to_owned())
    }
}
