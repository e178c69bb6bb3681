//! `theta host` and `theta token`: a session across two processes or two machines. The
//! host serves the demo scene; a client (`theta join`, in `join.rs`) joins with the host's
//! certificate fingerprint pinned and a join token minted with the host's secret.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use theta_net::net::session::{PeerDiagnostics, Session, SessionConfig, SessionEvent};
use theta_net::net::tls::HostIdentity;
use theta_net::net::token::{try_mint, try_mint_for_room, JoinSecret, JoinToken};
use theta_net::{PeerId, World};

use crate::cli::{HostArgs, TokenArgs};
use crate::control::{self, Control, Marks};
use crate::interrupt;
use crate::netutil::{self, Pacer, TickRate};
use crate::scene::Scene;

fn mint_token(secret: &JoinSecret, peer: PeerId, ttl: u64) -> Result<JoinToken, String> {
    let expires = netutil::unix_now().saturating_add(ttl);
    try_mint(secret, peer, expires, None).map_err(|e| e.to_string())
}

/// `theta token`.
pub fn token(args: &TokenArgs) -> Result<(), String> {
    let (peer, ttl) = (args.peer, args.ttl);
    let token = match &args.room {
        Some(room) => {
            let expires = netutil::unix_now().saturating_add(ttl);
            try_mint_for_room(&args.secret, room, peer, expires, None).map_err(|e| e.to_string())?
        }
        None => mint_token(&args.secret, peer, ttl)?,
    };
    println!("{}", token.to_text());
    let room = match &args.room {
        Some(room) => format!(" in room {room}"),
        None => String::new(),
    };
    eprintln!(
        "token for peer {peer}{room}, valid for {ttl} s (until Unix time {}); each token admits one join",
        token.expires()
    );
    Ok(())
}

/// Sums of per-connection counters across the stats interval, tolerant of peers coming and
/// going (a departed peer's counters simply stop contributing).
#[derive(Default)]
pub struct Rates {
    last: HashMap<PeerId, (u64, u64)>,
    at: Option<Instant>,
}

impl Rates {
    /// Bytes per second sent and received since the previous call.
    pub fn update(&mut self, peers: &[PeerDiagnostics]) -> (f64, f64) {
        let secs = self.at.map_or(1.0, |t| t.elapsed().as_secs_f64().max(1e-9));
        let (mut sent, mut received) = (0, 0);
        let mut next = HashMap::with_capacity(peers.len());
        for p in peers {
            let (s0, r0) = self.last.get(&p.peer).copied().unwrap_or_default();
            sent += p.wire_bytes_sent.saturating_sub(s0);
            received += p.wire_bytes_received.saturating_sub(r0);
            next.insert(p.peer, (p.wire_bytes_sent, p.wire_bytes_received));
        }
        self.last = next;
        self.at = Some(Instant::now());
        (sent as f64 / secs, received as f64 / secs)
    }
}

/// The achieved tick rate for a stats line, with a warning when it is below the requested
/// rate (the per-second figures beside it are then at this rate).
pub fn rate_note(tick_rate: &TickRate, achieved: f64) -> String {
    match tick_rate.warning(achieved) {
        Some(warning) => format!("{warning}, cannot keep --rate"),
        None => format!("{achieved:.1} ticks/s"),
    }
}

/// Which engine ticks step the scene when it steps less often than the session ticks
/// (`--scene-rate` below `--rate`): evenly spread, e.g. 2 ticks of every 3 for 60 of 90 Hz.
struct SceneSteps {
    /// Scene steps per tick, at most 1.
    per_tick: f64,
    owed: f64,
}

impl SceneSteps {
    fn new(per_tick: f64) -> Self {
        SceneSteps {
            per_tick,
            owed: 0.0,
        }
    }

    /// Whether this tick steps the scene.
    fn due(&mut self) -> bool {
        self.owed += self.per_tick;
        // A little slack so that 3 × (60/90) makes 2 steps despite rounding.
        if self.owed >= 1.0 - 1e-9 {
            self.owed -= 1.0;
            true
        } else {
            false
        }
    }
}

/// `theta host`.
pub fn host(o: &HostArgs) -> Result<(), String> {
    let bind = o.bind;
    let scene_rate = o.scene_rate.unwrap_or(o.rate);
    if scene_rate > o.rate {
        return Err(format!(
            "--scene-rate {scene_rate} exceeds --rate {}: the scene steps at most once a tick",
            o.rate
        ));
    }
    let generated = o.secret.is_none();
    let secret = match &o.secret {
        Some(s) => s.clone(),
        None => JoinSecret::try_generate().map_err(|e| e.to_string())?,
    };
    let mut world = World::default();
    let mut scene = Scene::new(&mut world, o.entities, o.seed)?;
    let identity = HostIdentity::self_signed(&["localhost".to_owned()])
        .map_err(|e| format!("cannot make the host certificate: {e}"))?;
    interrupt::install();
    // Read from the start: a controller that is gone already ends the changes at once.
    let mut control = o.control_stdin.then(Control::from_stdin);
    let mut session = Session::host(
        bind,
        world,
        &identity,
        secret.clone(),
        SessionConfig {
            admission_timeout: Duration::from_secs_f64(o.admission_timeout),
            ..SessionConfig::default()
        },
    )
    .map_err(|e| format!("cannot host on {bind}: {e}"))?;
    let local = session.local_addr().map_err(|e| e.to_string())?;
    // A wildcard bind is reachable on loopback here; other machines use this one's address.
    let mut reachable = local;
    if local.ip().is_unspecified() {
        reachable.set_ip(match local {
            std::net::SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            std::net::SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    let fingerprint = identity.fingerprint().to_hex();
    let token = mint_token(&secret, 1, o.ttl)?;
    println!(
        "theta host: listening on {local} (QUIC, ALPN theta/1), {} objects, {} Hz{}",
        o.entities,
        o.rate,
        if scene_rate < o.rate {
            format!(" (the scene steps at {scene_rate} Hz)")
        } else {
            String::new()
        }
    );
    println!("fingerprint {fingerprint}");
    println!(
        "secret      {}{}",
        secret.to_hex(),
        if generated {
            "  (generated; pass --secret to keep it)"
        } else {
            ""
        }
    );
    println!("join with (token for peer 1, valid {} s, one use):", o.ttl);
    println!(
        "  theta join {reachable} --fingerprint {fingerprint} --token {}",
        token.to_text()
    );
    if local.ip().is_unspecified() {
        println!(
            "  (from another machine, use this machine's address instead of {})",
            reachable.ip()
        );
    }
    println!(
        "more tokens: theta token --secret {} --peer N",
        secret.to_hex()
    );

    let mut pacer = Pacer::new(o.rate);
    let mut rates = Rates::default();
    let mut tick_rate = TickRate::new(o.rate);
    let started = Instant::now();
    let mut next_stats = started + Duration::from_secs(1);
    let mut ticks = 0u64;
    let mut linger_until: Option<Instant> = None;
    let mut steps = SceneSteps::new(scene_rate / o.rate);
    let mut marks = Marks::new();
    let mut stopped = false;
    loop {
        if interrupt::requested() {
            println!("interrupted");
            break;
        }
        while let Some(command) = control.as_mut().and_then(Control::poll) {
            match command {
                control::Command::Mark => println!("{}", marks.take(&session.diagnostics().peers)),
                control::Command::End => stopped = true,
            }
        }
        let changing = !stopped && o.ticks.is_none_or(|t| ticks < t);
        if changing {
            if steps.due() {
                scene.step(
                    session.host_world().map_err(|e| e.to_string())?,
                    o.move_percent,
                )?;
            }
            ticks += 1;
        } else {
            let until = *linger_until
                .get_or_insert_with(|| Instant::now() + Duration::from_secs_f64(o.linger));
            if Instant::now() >= until {
                break;
            }
        }
        let tick_started = Instant::now();
        session.tick();
        marks.tick(tick_started.elapsed());
        tick_rate.tick();
        for event in session.poll_events(usize::MAX) {
            match event {
                SessionEvent::PeerJoined { peer } => println!("peer {peer} joined"),
                SessionEvent::PeerLeft { peer, reason } => println!("peer {peer} left: {reason}"),
                SessionEvent::JoinRefused { from, reason } => match from {
                    Some(from) => println!("refused a join from {from}: {reason}"),
                    None => println!("refused a join: {reason}"),
                },
                _ => {}
            }
        }
        if Instant::now() >= next_stats {
            next_stats += Duration::from_secs(1);
            let d = session.diagnostics();
            let (out, inb) = rates.update(&d.peers);
            let rtts: Vec<String> = d
                .peers
                .iter()
                .map(|p| format!("{}:{:.1}", p.peer, p.rtt.as_secs_f64() * 1e3))
                .collect();
            let achieved = tick_rate.take();
            println!(
                "[{:>4.0} s] tick {} | {} | {} entities, {} components | {} peers | out {} in {} | RTT ms {} | hash {:016x}",
                started.elapsed().as_secs_f64(),
                d.tick,
                rate_note(&tick_rate, achieved),
                d.entities,
                d.components,
                d.peers.len(),
                netutil::rate(out),
                netutil::rate(inb),
                if rtts.is_empty() { "-".into() } else { rtts.join(" ") },
                session.state_hash()
            );
        }
        pacer.wait();
    }
    let d = session.diagnostics();
    println!(
        "final state hash {:016x} (tick {}, {} entities, {} components); shutting down",
        session.state_hash(),
        d.tick,
        d.entities,
        d.components
    );
    drop(session);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scene_at_60_hz_steps_on_two_of_every_three_ticks_at_90() {
        let mut steps = SceneSteps::new(60.0 / 90.0);
        let due: Vec<bool> = (0..9).map(|_| steps.due()).collect();
        assert_eq!(due.iter().filter(|&&d| d).count(), 6, "{due:?}");
        assert!(due.chunks(3).all(|c| c.iter().filter(|&&d| d).count() == 2));
        let mut every = SceneSteps::new(1.0);
        assert!((0..100).all(|_| every.due()));
    }

    #[test]
    fn a_minted_token_reads_back_with_its_peer() {
        let secret = JoinSecret::from_bytes([7; 32]);
        let token = mint_token(&secret, 3, 60).unwrap();
        let read = JoinToken::from_text(&token.to_text()).unwrap();
        assert_eq!(read.peer(), 3);
        assert!(read.expires() >= netutil::unix_now() + 59);
    }
}
