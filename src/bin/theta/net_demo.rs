//! `theta demo`: a host and N clients in one process over loopback QUIC (127.0.0.1 only).
//!
//! The host's world holds the demo scene; each client joins with a token minted for its
//! peer id and the host's certificate fingerprint pinned. Every tick (the engine loop, paced
//! to `--rate`): the scene steps, the host ticks (sends what changed), every client ticks
//! (applies what arrived, sends its acks). With `--loss P` every endpoint drops that share
//! of its outgoing UDP datagrams (and reorders and duplicates some) from the first tick to
//! the last. Afterwards the sessions keep ticking, without changes and faults, until every
//! client's state hash equals the host's (bounded), and a table says what crossed the wire,
//! beside what the seed's JSON design would have sent for the same scene.

use std::time::{Duration, Instant};

use theta_net::baseline::{snapshot_json, BaselineTracker};
use theta_net::net::faults::{FaultConfig, FaultControl};
use theta_net::net::session::{PeerDiagnostics, Session, SessionConfig, SessionEvent};
use theta_net::net::tls::{HostIdentity, ServerTrust};
use theta_net::net::token::{mint, JoinSecret};
use theta_net::{PeerId, World, DEFAULT_MAX_CHUNK_BYTES};

use crate::avatars::Avatars;
use crate::netutil::{self, Pacer, Status};
use crate::scene::{Motion, Scene};

const USAGE: &str = "\
usage: theta demo [--clients N] [--entities M] [--ticks T] [--rate HZ] [--loss P]
                  [--move-percent P] [--motion smooth|teleport] [--seed S]
       theta demo --in-process [options of `theta demo --in-process --help`]

A host and N clients in this process over loopback QUIC (127.0.0.1), the host's world
holding a scene of moving, recoloring, arriving and leaving objects.

  --clients N        clients joining the host (default 2)
  --entities M       objects in the scene (default 1000)
  --ticks T          engine ticks with changes (default 600)
  --rate HZ          engine ticks per second (default 60)
  --loss P           share of UDP datagrams each endpoint drops while the ticks run, with
                     some reordering and duplication too (default 0; e.g. 0.1)
  --move-percent P   percent of objects that move each tick (default 10)
  --motion M         smooth: the same objects keep moving along continuous paths, the
                     rest rest (default); teleport: movers get random transforms (a
                     stress test: random floats)
  --seed S           scene and fault seed (default 1)
  --in-process       the replication core alone, no network (issue 2's demo)

Exits non-zero when a client did not converge or was disconnected.";

/// How long joining (admission and the snapshot) may take.
const JOIN_BOUND: Duration = Duration::from_secs(10);
/// How long the sessions may take to converge once changes and faults stop.
const CONVERGE_BOUND: Duration = Duration::from_secs(5);

struct Options {
    clients: usize,
    entities: usize,
    ticks: u64,
    rate: f64,
    loss: f64,
    move_percent: f64,
    motion: Motion,
    seed: u64,
}

fn options(args: &[String]) -> Result<Options, String> {
    let mut o = Options {
        clients: 2,
        entities: 1000,
        ticks: 600,
        rate: 60.0,
        loss: 0.0,
        move_percent: 10.0,
        motion: Motion::Smooth,
        seed: 1,
    };
    for (name, value) in crate::parse_options(
        args,
        &[
            "clients",
            "entities",
            "ticks",
            "rate",
            "loss",
            "move-percent",
            "motion",
            "seed",
        ],
        USAGE,
    )? {
        match name {
            "clients" => o.clients = crate::parse_value(name, value)?,
            "entities" => o.entities = crate::parse_value(name, value)?,
            "ticks" => o.ticks = crate::parse_value(name, value)?,
            "rate" => o.rate = crate::parse_value(name, value)?,
            "loss" => o.loss = crate::parse_value(name, value)?,
            "move-percent" => o.move_percent = crate::parse_value(name, value)?,
            "motion" => o.motion = crate::parse_value(name, value)?,
            _ => o.seed = crate::parse_value(name, value)?,
        }
    }
    if !(1..=64).contains(&o.clients) {
        return Err(format!("--clients {} is not within 1..=64", o.clients));
    }
    if o.entities == 0 {
        return Err("--entities must be at least 1".into());
    }
    netutil::check_rate(o.rate)?;
    if !(0.0..1.0).contains(&o.loss) {
        return Err(format!(
            "--loss {} is not within 0..1 (a share of datagrams, e.g. 0.1)",
            o.loss
        ));
    }
    if !(0.0..=100.0).contains(&o.move_percent) {
        return Err(format!(
            "--move-percent {} is not within 0..=100",
            o.move_percent
        ));
    }
    Ok(o)
}

/// One client of the demo and what happened to it.
struct Client {
    peer: PeerId,
    session: Session,
    faults: Option<FaultControl>,
    joined: bool,
    disconnected: Option<String>,
    /// Replica events received (spawns, inserts, updates, removes, despawns).
    events: u64,
}

/// Counters of one client at a moment, to take differences over the run.
#[derive(Clone, Copy, Default)]
struct Sample {
    /// The client's own view of its connection.
    client: PeerDiagnostics,
    /// The host's view of the connection to this client.
    host: PeerDiagnostics,
}

fn sample(host: &Session, clients: &[Client]) -> Vec<Sample> {
    let host_peers = host.diagnostics().peers;
    clients
        .iter()
        .map(|c| Sample {
            client: c
                .session
                .diagnostics()
                .peers
                .first()
                .copied()
                .unwrap_or_default(),
            host: host_peers
                .iter()
                .find(|p| p.peer == c.peer)
                .copied()
                .unwrap_or_default(),
        })
        .collect()
}

/// Ticks the host and every client once, and takes their events.
fn tick_all(host: &mut Session, clients: &mut [Client]) {
    host.tick();
    for c in clients.iter_mut() {
        c.session.tick();
    }
    for event in host.poll_events(usize::MAX) {
        if let SessionEvent::PeerLeft { peer, reason } = event {
            if let Some(c) = clients.iter_mut().find(|c| c.peer == peer) {
                c.disconnected
                    .get_or_insert_with(|| format!("the host lost it: {reason}"));
            }
        }
    }
    for c in clients.iter_mut() {
        for event in c.session.poll_events(usize::MAX) {
            match event {
                SessionEvent::Joined { .. } => c.joined = true,
                SessionEvent::Disconnected { reason, .. } => {
                    c.disconnected.get_or_insert(reason);
                }
                SessionEvent::Replica { .. } => c.events += 1,
                _ => {}
            }
        }
    }
}

fn converged(host: &Session, clients: &[Client]) -> bool {
    let hash = host.state_hash();
    clients.iter().all(|c| c.session.state_hash() == hash)
}

fn first_disconnect(clients: &[Client]) -> Option<String> {
    clients.iter().find_map(|c| {
        c.disconnected
            .as_ref()
            .map(|r| format!("client {} disconnected: {r}", c.peer))
    })
}

pub fn run(args: &[String]) -> Result<(), String> {
    let o = options(args)?;
    let faulty = o.loss > 0.0;
    let config = |faults: &Option<FaultControl>| SessionConfig {
        faults: faults.clone(),
        ..SessionConfig::default()
    };
    println!(
        "theta demo: host + {} clients over loopback QUIC, {} objects, {} ticks at {} Hz, {}% moving per tick ({:?} motion), loss {}",
        o.clients,
        o.entities,
        o.ticks,
        o.rate,
        o.move_percent,
        o.motion,
        if faulty {
            format!("{}% (+ reordering and duplication)", o.loss * 100.0)
        } else {
            "0%".into()
        }
    );

    // The host: the scene in its world, a self-signed certificate, a fresh secret.
    let mut world = World::default();
    let mut scene = Scene::with_motion(&mut world, o.entities, o.seed, o.motion)?;
    let registry = world.registry().clone();
    let json_snapshot: usize = snapshot_json(&world, DEFAULT_MAX_CHUNK_BYTES)
        .iter()
        .map(Vec::len)
        .sum();
    let identity = HostIdentity::self_signed(&["localhost".to_owned()])
        .map_err(|e| format!("cannot make the host certificate: {e}"))?;
    let secret = JoinSecret::try_generate().map_err(|e| e.to_string())?;
    let host_faults = faulty.then(FaultControl::new);
    let mut host = Session::host(
        "127.0.0.1:0".parse().expect("a valid address"),
        world,
        &identity,
        secret.clone(),
        config(&host_faults),
    )
    .map_err(|e| format!("cannot host: {e}"))?;
    let addr = host.local_addr().map_err(|e| e.to_string())?;
    let trust = ServerTrust::Fingerprint(identity.fingerprint());

    // The clients: peers 1..=N, each with its own token.
    let started = Instant::now();
    let mut clients = Vec::with_capacity(o.clients);
    for peer in 1..=o.clients as PeerId {
        let token = mint(&secret, peer, netutil::unix_now() + 60, None).to_text();
        let faults = faulty.then(FaultControl::new);
        let session = Session::join(addr, &trust, &token, &registry, config(&faults))
            .map_err(|e| format!("client {peer} cannot start: {e}"))?;
        clients.push(Client {
            peer,
            session,
            faults,
            joined: false,
            disconnected: None,
            events: 0,
        });
    }
    // Admission, then the snapshot: every client holds the host's state.
    while !(clients.iter().all(|c| c.joined) && converged(&host, &clients)) {
        if let Some(reason) = first_disconnect(&clients) {
            return Err(reason);
        }
        if started.elapsed() > JOIN_BOUND {
            return Err(format!(
                "the clients did not join and receive the snapshot within {JOIN_BOUND:?}"
            ));
        }
        tick_all(&mut host, &mut clients);
        std::thread::sleep(Duration::from_millis(1));
    }
    let join_time = started.elapsed();
    let joined = sample(&host, &clients);
    let snapshot_bytes = joined.iter().map(|s| s.client.snapshot_bytes).max();
    println!(
        "joined: {} clients admitted and holding the snapshot after {} ({} bytes of snapshot each; the seed's JSON snapshot: {} bytes)",
        clients.len(),
        netutil::ms(join_time),
        snapshot_bytes.unwrap_or(0),
        json_snapshot
    );

    // Faults from the first tick to the last.
    if faulty {
        let all = host_faults
            .iter()
            .chain(clients.iter().flat_map(|c| &c.faults));
        for (i, control) in all.enumerate() {
            control.set(FaultConfig {
                duplicate: 0.05,
                reorder: 0.1,
                ..FaultConfig::with_loss(o.seed.wrapping_mul(1000).wrapping_add(i as u64), o.loss)
            })?;
        }
    }

    // The engine loop.
    let mut baseline = BaselineTracker::new();
    baseline.diff(host.world());
    let mut json_bytes = 0u64;
    let mut status = Status::new();
    let every = (o.ticks / 10).max(1);
    let mut pacer = Pacer::new(o.rate);
    let run_started = Instant::now();
    let before = sample(&host, &clients);
    let mut last = (run_started, before.clone());
    let mut avatars = Avatars::new(clients.len(), o.ticks);
    for t in 1..=o.ticks {
        scene.step(
            host.host_world().map_err(|e| e.to_string())?,
            o.move_percent,
        )?;
        json_bytes += baseline.diff(host.world()).len() as u64;
        avatars.push(t, &mut host, clients.iter_mut().map(|c| &mut c.session))?;
        tick_all(&mut host, &mut clients);
        avatars.observe(clients.iter_mut().map(|c| &mut c.session));
        if (status.is_live() && status.due()) || (!status.is_live() && t % every == 0) {
            let now = sample(&host, &clients);
            let secs = last.0.elapsed().as_secs_f64().max(1e-9);
            let down: u64 = now
                .iter()
                .zip(&last.1)
                .map(|(n, l)| n.client.wire_bytes_received - l.client.wire_bytes_received)
                .sum();
            let host_tick = host.diagnostics().tick;
            let hash = host.state_hash();
            let per_client: Vec<String> = clients
                .iter()
                .map(|c| {
                    if c.session.state_hash() == hash {
                        format!("c{} =", c.peer)
                    } else {
                        // Not the host's state yet: at least the newest tick is missing.
                        let applied = c.session.diagnostics().tick;
                        let behind = host_tick.saturating_sub(applied + 1).max(1);
                        format!("c{} -{behind}", c.peer)
                    }
                })
                .collect();
            status.show(&format!(
                "tick {t:>5}/{}  host {} entities  clients (= host state, -n ticks behind): {}  down {} per client",
                o.ticks,
                host.world().stats().entities,
                per_client.join(" "),
                netutil::rate(down as f64 / secs / clients.len() as f64),
            ));
            last = (Instant::now(), now);
        }
        if let Some(reason) = first_disconnect(&clients) {
            status.finish();
            return Err(reason);
        }
        pacer.wait();
    }
    let run_time = run_started.elapsed();
    let after = sample(&host, &clients);
    status.finish();

    // No more changes, no more faults: tick until every client holds the host's state.
    for control in host_faults
        .iter()
        .chain(clients.iter().flat_map(|c| &c.faults))
    {
        control.clear();
    }
    let fault_stats: Vec<(String, String)> = host_faults
        .iter()
        .map(|f| ("host".to_owned(), f.stats().to_string()))
        .chain(clients.iter().filter_map(|c| {
            c.faults
                .as_ref()
                .map(|f| (format!("c{}", c.peer), f.stats().to_string()))
        }))
        .collect();
    let converge_started = Instant::now();
    let mut tail = Pacer::new(o.rate.max(60.0));
    let mut extra_ticks = 0u64;
    let converged_after = loop {
        if converged(&host, &clients) {
            break Some(extra_ticks);
        }
        if converge_started.elapsed() > CONVERGE_BOUND || first_disconnect(&clients).is_some() {
            break None;
        }
        tick_all(&mut host, &mut clients);
        extra_ticks += 1;
        tail.wait();
    };
    let converge_time = converge_started.elapsed();

    // The report.
    let stats = host.world().stats();
    let secs = run_time.as_secs_f64();
    println!(
        "run: {} ticks in {:.2} s ({:.1} ticks/s); host world at the end: {} entities, {} components, tick {}",
        o.ticks,
        secs,
        o.ticks as f64 / secs,
        stats.entities,
        stats.components,
        host.diagnostics().tick
    );
    match converged_after {
        Some(ticks) => println!(
            "converged: yes, every client's state hash equals the host's ({:016x}) {ticks} tick{} ({}) after the last change",
            host.state_hash(),
            if ticks == 1 { "" } else { "s" },
            netutil::ms(converge_time)
        ),
        None => println!(
            "converged: NO, not within {CONVERGE_BOUND:?} ({extra_ticks} ticks) after the last change"
        ),
    }
    for (who, stats) in &fault_stats {
        println!("faults injected at {who}: {stats}");
    }
    let json_rate = json_bytes as f64 / secs;
    println!();
    println!(
        "per client, over the {} ticks ({:.2} s); wire = UDP payload bytes (QUIC headers, TLS, acks included)",
        o.ticks, secs
    );
    println!(
        "{:<6} {:>10} {:>10} {:>9} {:>9} {:>8} {:>9} {:>9} {:>11} {:>10} {:>10} {:>16}",
        "client",
        "down B/s",
        "up B/s",
        "pkts down",
        "pkts up",
        "RTT ms",
        "lost down",
        "lost up",
        "dgrams lost",
        "snapshot B",
        "JSON B/s",
        "ours/JSON (down)"
    );
    let mut failed = Vec::new();
    for (i, c) in clients.iter().enumerate() {
        let (b, a) = (&before[i], &after[i]);
        let down = (a.client.wire_bytes_received - b.client.wire_bytes_received) as f64 / secs;
        let up = (a.client.wire_bytes_sent - b.client.wire_bytes_sent) as f64 / secs;
        let ratio = down / json_rate.max(1e-9);
        println!(
            "{:<6} {:>10.0} {:>10.0} {:>9} {:>9} {:>8.2} {:>9} {:>9} {:>11} {:>10} {:>10.0} {:>16}",
            format!("c{}", c.peer),
            down,
            up,
            a.client.packets_received - b.client.packets_received,
            a.client.packets_sent - b.client.packets_sent,
            a.client.rtt.as_secs_f64() * 1e3,
            a.host.packets_lost - b.host.packets_lost,
            a.client.packets_lost - b.client.packets_lost,
            a.host.outbox.datagrams_lost - b.host.outbox.datagrams_lost,
            joined[i].client.snapshot_bytes,
            json_rate,
            format!("{:.1}% ({:.1}x less)", ratio * 100.0, 1.0 / ratio.max(1e-9)),
        );
        if let Some(reason) = &c.disconnected {
            failed.push(format!("client {} disconnected: {reason}", c.peer));
        }
    }
    println!(
        "JSON B/s: the frames the seed's JSON full-rescan design makes for the same scene (BaselineTracker::diff each tick), payload only, per client"
    );
    let events: Vec<String> = clients
        .iter()
        .map(|c| format!("c{} {}", c.peer, c.events))
        .collect();
    println!("replica events received: {}", events.join(", "));
    println!();
    println!(
        "avatars: every peer pushes a 3-point avatar (head, hands) each tick; pose packets are bit-packed datagrams beside the state datagrams"
    );
    println!(
        "{:<6} {:>11} {:>11} {:>12} {:>12} {:>8} {:>13} {:>12} {:>12} {:>13}",
        "client",
        "pkts down",
        "B/pkt down",
        "pose B/s dn",
        "pose B/s up",
        "renders",
        "host head mm",
        "p95 mm",
        "max mm",
        "extrapolated"
    );
    for (i, c) in clients.iter().enumerate() {
        let (b, a) = (&before[i].client.poses, &after[i].client.poses);
        let packets = a.packets_received - b.packets_received;
        let down = a.bytes_received - b.bytes_received;
        let up = a.bytes_sent - b.bytes_sent;
        let errors = avatars.summary(i);
        let mm = |f: fn(&crate::avatars::ErrorSummary) -> f64| {
            errors
                .as_ref()
                .map_or("-".into(), |e| format!("{:.1}", f(e)))
        };
        println!(
            "{:<6} {:>11} {:>11.1} {:>12.0} {:>12.0} {:>8} {:>13} {:>12} {:>12} {:>13}",
            format!("c{}", c.peer),
            packets,
            down as f64 / packets.max(1) as f64,
            down as f64 / secs,
            up as f64 / secs,
            errors.as_ref().map_or(0, |e| e.renders),
            mm(|e| e.mean_mm),
            mm(|e| e.p95_mm),
            mm(|e| e.max_mm),
            errors.as_ref().map_or(0, |e| e.extrapolated),
        );
    }
    println!(
        "host head mm: mean distance between the host's head as this client renders it and the truth at the render time (jitter buffer delay included)"
    );
    println!();
    println!(
        "host diagnostics (compression: KB of messages before and after the codec envelope; per component: value KB sent and the wire KB they cost):"
    );
    print!("{}", host.diagnostics().text_panel());
    if converged_after.is_none() {
        failed.push("not every client converged".into());
    }
    for (i, c) in clients.iter().enumerate() {
        if avatars.summary(i).is_none() {
            failed.push(format!(
                "client {} never rendered the host's avatar",
                c.peer
            ));
        }
    }
    // Clients first, then the host: each drop closes its connection in order.
    drop(clients);
    drop(host);
    if failed.is_empty() {
        Ok(())
    } else {
        Err(failed.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_small_demo_converges_with_and_without_loss() {
        let small = [
            "--clients",
            "2",
            "--entities",
            "60",
            "--ticks",
            "40",
            "--rate",
            "200",
        ];
        run(&args(&small)).unwrap();
        let mut lossy = args(&small);
        lossy.extend(args(&["--loss", "0.2", "--seed", "3"]));
        run(&lossy).unwrap();
    }

    #[test]
    fn bad_options_are_refused_with_the_option_named() {
        for (bad, named) in [
            (&["--clients", "0"][..], "--clients"),
            (&["--loss", "1"][..], "--loss"),
            (&["--rate", "0"][..], "--rate"),
            (&["--ticks", "x"][..], "--ticks"),
            (&["--bogus", "1"][..], "--bogus"),
            (&["--motion", "wobbly"][..], "--motion"),
        ] {
            let err = options(&args(bad)).err().unwrap();
            assert!(err.contains(named), "{err}");
        }
    }
}
