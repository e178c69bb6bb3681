//! `theta host`, `theta join` and `theta token`: a session across two processes or two
//! machines. The host serves the demo scene; a client joins with the host's certificate
//! fingerprint pinned and a join token minted with the host's secret.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use theta_net::net::session::{PeerDiagnostics, Session, SessionConfig, SessionEvent};
use theta_net::net::tls::{Fingerprint, HostIdentity, ServerTrust};
use theta_net::net::token::{try_mint, JoinSecret, JoinToken};
use theta_net::{PeerId, World};

use crate::interrupt;
use crate::netutil::{self, Pacer};
use crate::scene::{self, Scene};

const TOKEN_USAGE: &str = "\
usage: theta token --secret HEX --peer N [--ttl SECONDS]

Prints a join token for peer N, signed with the host's secret (64 hex digits, as
`theta host` prints it).

  --secret HEX     the host's join secret
  --peer N         the peer id the token admits, 1..=65535 (the host is peer 0)
  --ttl SECONDS    how long the token stays valid (default 3600)";

const HOST_USAGE: &str = "\
usage: theta host --bind ADDR [--secret HEX] [--entities M] [--rate HZ] [--ticks T]
                  [--move-percent P] [--seed S] [--linger SECONDS] [--ttl SECONDS]

Hosts the demo scene on ADDR (e.g. 0.0.0.0:4433, or 127.0.0.1:0 for any free port) with
a fresh self-signed certificate; prints its fingerprint, the join secret and a ready
`theta join` command line with a token for peer 1, then ticks the scene until Ctrl-C,
printing a stats line every second.

  --bind ADDR         address and UDP port to listen on
  --secret HEX        join secret (64 hex digits); a random one when not given
  --entities M        objects in the scene (default 1000)
  --rate HZ           engine ticks per second (default 60)
  --ticks T           stop after T ticks of changes (default: run until Ctrl-C)
  --move-percent P    percent of objects that move each tick (default 10)
  --seed S            scene seed (default 1)
  --linger SECONDS    with --ticks: keep serving, without changes, this long after the last
                      tick so that clients catch up, before shutting down (default 1)
  --ttl SECONDS       validity of the printed token (default 3600)";

const JOIN_USAGE: &str = "\
usage: theta join ADDR --fingerprint HEX --token TOKEN [--ticks T] [--rate HZ]

Joins the host at ADDR (host:port), trusting only the certificate with this SHA-256
fingerprint, and replicates its scene until Ctrl-C, --ticks, or the host shuts down;
prints a stats line every second and the final state hash.

  --fingerprint HEX   the host certificate's SHA-256 (64 hex digits, `:` pairs accepted)
  --token TOKEN       a join token from `theta host` or `theta token`
  --ticks T           leave after T ticks once joined (default: until Ctrl-C)
  --rate HZ           ticks per second (default 60)";

/// How long joining may take before the client gives up (the session reports most
/// failures sooner, e.g. a refusal or a wrong fingerprint).
const JOIN_BOUND: Duration = Duration::from_secs(20);

fn parse_secret(hex: &str) -> Result<JoinSecret, String> {
    JoinSecret::from_hex(hex).map_err(|e| format!("--secret: {e}"))
}

fn mint_token(secret: &JoinSecret, peer: PeerId, ttl: u64) -> Result<JoinToken, String> {
    let expires = netutil::unix_now().saturating_add(ttl);
    try_mint(secret, peer, expires, None).map_err(|e| e.to_string())
}

/// `theta token`.
pub fn token(args: &[String]) -> Result<(), String> {
    let mut secret = None;
    let mut peer: Option<u32> = None;
    let mut ttl = 3600u64;
    for (name, value) in crate::parse_options(args, &["secret", "peer", "ttl"], TOKEN_USAGE)? {
        match name {
            "secret" => secret = Some(parse_secret(value)?),
            "peer" => peer = Some(crate::parse_value(name, value)?),
            _ => ttl = crate::parse_value(name, value)?,
        }
    }
    let secret = secret.ok_or_else(|| format!("--secret is required\n\n{TOKEN_USAGE}"))?;
    let peer = peer.ok_or_else(|| format!("--peer is required\n\n{TOKEN_USAGE}"))?;
    let peer = PeerId::try_from(peer)
        .ok()
        .filter(|&p| p != 0)
        .ok_or_else(|| format!("--peer {peer} is not within 1..=65535 (0 is the host)"))?;
    if ttl == 0 {
        return Err("--ttl must be at least 1 second".into());
    }
    let token = mint_token(&secret, peer, ttl)?;
    println!("{}", token.to_text());
    eprintln!(
        "token for peer {peer}, valid for {ttl} s (until Unix time {}); each token admits one join",
        token.expires()
    );
    Ok(())
}

/// Sums of per-connection counters across the stats interval, tolerant of peers coming and
/// going (a departed peer's counters simply stop contributing).
#[derive(Default)]
struct Rates {
    last: HashMap<PeerId, (u64, u64)>,
    at: Option<Instant>,
}

impl Rates {
    /// Bytes per second sent and received since the previous call.
    fn update(&mut self, peers: &[PeerDiagnostics]) -> (f64, f64) {
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

struct HostOptions {
    bind: Option<String>,
    secret: Option<JoinSecret>,
    entities: usize,
    rate: f64,
    ticks: Option<u64>,
    move_percent: f64,
    seed: u64,
    linger: f64,
    ttl: u64,
}

fn host_options(args: &[String]) -> Result<HostOptions, String> {
    let mut o = HostOptions {
        bind: None,
        secret: None,
        entities: 1000,
        rate: 60.0,
        ticks: None,
        move_percent: 10.0,
        seed: 1,
        linger: 1.0,
        ttl: 3600,
    };
    let spec = [
        "bind",
        "secret",
        "entities",
        "rate",
        "ticks",
        "move-percent",
        "seed",
        "linger",
        "ttl",
    ];
    for (name, value) in crate::parse_options(args, &spec, HOST_USAGE)? {
        match name {
            "bind" => o.bind = Some(value.to_owned()),
            "secret" => o.secret = Some(parse_secret(value)?),
            "entities" => o.entities = crate::parse_value(name, value)?,
            "rate" => o.rate = crate::parse_value(name, value)?,
            "ticks" => o.ticks = Some(crate::parse_value(name, value)?),
            "move-percent" => o.move_percent = crate::parse_value(name, value)?,
            "seed" => o.seed = crate::parse_value(name, value)?,
            "linger" => o.linger = crate::parse_value(name, value)?,
            _ => o.ttl = crate::parse_value(name, value)?,
        }
    }
    netutil::check_rate(o.rate)?;
    if o.entities == 0 {
        return Err("--entities must be at least 1".into());
    }
    if !(0.0..=100.0).contains(&o.move_percent) {
        return Err(format!(
            "--move-percent {} is not within 0..=100",
            o.move_percent
        ));
    }
    if !(o.linger.is_finite() && (0.0..=3600.0).contains(&o.linger)) {
        return Err(format!("--linger {} is not within 0..=3600", o.linger));
    }
    if o.ttl == 0 {
        return Err("--ttl must be at least 1 second".into());
    }
    Ok(o)
}

/// `theta host`.
pub fn host(args: &[String]) -> Result<(), String> {
    let o = host_options(args)?;
    let bind = o
        .bind
        .as_deref()
        .ok_or_else(|| format!("--bind is required\n\n{HOST_USAGE}"))?;
    let bind = netutil::resolve(bind)?;
    let generated = o.secret.is_none();
    let secret = match o.secret {
        Some(s) => s,
        None => JoinSecret::try_generate().map_err(|e| e.to_string())?,
    };
    let mut world = World::default();
    let mut scene = Scene::new(&mut world, o.entities, o.seed)?;
    let identity = HostIdentity::self_signed(&["localhost".to_owned()])
        .map_err(|e| format!("cannot make the host certificate: {e}"))?;
    interrupt::install();
    let mut session = Session::host(
        bind,
        world,
        &identity,
        secret.clone(),
        SessionConfig::default(),
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
        "theta host: listening on {local} (QUIC, ALPN theta/1), {} objects, {} Hz",
        o.entities, o.rate
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
    let started = Instant::now();
    let mut next_stats = started + Duration::from_secs(1);
    let mut ticks = 0u64;
    let mut linger_until: Option<Instant> = None;
    loop {
        if interrupt::requested() {
            println!("interrupted");
            break;
        }
        let changing = o.ticks.is_none_or(|t| ticks < t);
        if changing {
            scene.step(
                session.host_world().map_err(|e| e.to_string())?,
                o.move_percent,
            )?;
            ticks += 1;
        } else {
            let until = *linger_until
                .get_or_insert_with(|| Instant::now() + Duration::from_secs_f64(o.linger));
            if Instant::now() >= until {
                break;
            }
        }
        session.tick();
        for event in session.poll_events(usize::MAX) {
            match event {
                SessionEvent::PeerJoined { peer } => println!("peer {peer} joined"),
                SessionEvent::PeerLeft { peer, reason } => println!("peer {peer} left: {reason}"),
                SessionEvent::JoinRefused { from, reason } => {
                    println!("refused a join from {from}: {reason}")
                }
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
            println!(
                "[{:>4.0} s] tick {} | {} entities, {} components | {} peers | out {} in {} | RTT ms {} | hash {:016x}",
                started.elapsed().as_secs_f64(),
                d.tick,
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

struct JoinOptions {
    addr: String,
    fingerprint: Fingerprint,
    token: String,
    ticks: Option<u64>,
    rate: f64,
}

fn join_options(args: &[String]) -> Result<JoinOptions, String> {
    let (addr, rest) = match args.split_first() {
        Some((first, rest)) if !first.starts_with("--") => (first.clone(), rest),
        _ => {
            if args.iter().any(|a| a == "-h" || a == "--help") {
                return Err(JOIN_USAGE.to_owned());
            }
            return Err(format!("the host's ADDR comes first\n\n{JOIN_USAGE}"));
        }
    };
    let mut fingerprint = None;
    let mut token = None;
    let mut ticks = None;
    let mut rate = 60.0;
    for (name, value) in
        crate::parse_options(rest, &["fingerprint", "token", "ticks", "rate"], JOIN_USAGE)?
    {
        match name {
            "fingerprint" => {
                fingerprint =
                    Some(Fingerprint::from_hex(value).map_err(|e| format!("--fingerprint: {e}"))?)
            }
            "token" => {
                // Checked for form here; the host checks the signature and the expiry.
                JoinToken::from_text(value).map_err(|e| format!("--token: {e}"))?;
                token = Some(value.trim().to_owned());
            }
            "ticks" => ticks = Some(crate::parse_value(name, value)?),
            _ => rate = crate::parse_value(name, value)?,
        }
    }
    netutil::check_rate(rate)?;
    Ok(JoinOptions {
        addr,
        fingerprint: fingerprint
            .ok_or_else(|| format!("--fingerprint is required\n\n{JOIN_USAGE}"))?,
        token: token.ok_or_else(|| format!("--token is required\n\n{JOIN_USAGE}"))?,
        ticks,
        rate,
    })
}

/// `theta join`.
pub fn join(args: &[String]) -> Result<(), String> {
    let o = join_options(args)?;
    let addr = netutil::resolve(&o.addr)?;
    let registry = scene::registry()?;
    interrupt::install();
    let mut session = Session::join(
        addr,
        &ServerTrust::Fingerprint(o.fingerprint),
        &o.token,
        &registry,
        SessionConfig::default(),
    )
    .map_err(|e| format!("cannot start the client: {e}"))?;
    println!(
        "theta join: connecting to {addr} (pinned fingerprint {})",
        o.fingerprint
    );

    let mut pacer = Pacer::new(o.rate);
    let started = Instant::now();
    let mut joined: Option<(PeerId, Instant)> = None;
    let mut ended: Option<String> = None;
    let mut ticks = 0u64;
    let mut rates = Rates::default();
    let mut next_stats = Instant::now() + Duration::from_secs(1);
    let mut updates = 0u64;
    loop {
        if interrupt::requested() {
            println!("interrupted");
            break;
        }
        session.tick();
        for event in session.poll_events(usize::MAX) {
            match event {
                SessionEvent::Joined { peer } => {
                    println!(
                        "joined as peer {peer} after {}",
                        netutil::ms(started.elapsed())
                    );
                    joined = Some((peer, Instant::now()));
                }
                SessionEvent::Disconnected { reason, .. } => {
                    ended.get_or_insert(reason);
                }
                SessionEvent::Replica { .. } => updates += 1,
                _ => {}
            }
        }
        if let Some(reason) = &ended {
            if joined.is_none() {
                // Refused, wrong fingerprint, no host: nothing was replicated.
                return Err(if reason.starts_with("join refused") {
                    reason.clone()
                } else {
                    format!("could not join {addr}: {reason}")
                });
            }
            println!("disconnected: {reason}");
            break;
        }
        if joined.is_none() && started.elapsed() > JOIN_BOUND {
            return Err(format!(
                "could not join {addr}: no answer within {JOIN_BOUND:?}"
            ));
        }
        if joined.is_some() {
            ticks += 1;
            if o.ticks.is_some_and(|t| ticks >= t) {
                break;
            }
        }
        if joined.is_some() && Instant::now() >= next_stats {
            next_stats += Duration::from_secs(1);
            let d = session.diagnostics();
            let (up, down) = rates.update(&d.peers);
            let link = d.peers.first().copied().unwrap_or_default();
            println!(
                "[{:>4.0} s] host tick {} | {} entities, {} components | down {} up {} | RTT {} | lost {} | {} events | hash {:016x}",
                started.elapsed().as_secs_f64(),
                d.tick,
                d.entities,
                d.components,
                netutil::rate(down),
                netutil::rate(up),
                netutil::ms(link.rtt),
                link.packets_lost,
                updates,
                session.state_hash()
            );
        }
        pacer.wait();
    }
    let d = session.diagnostics();
    let link = d.peers.first().copied().unwrap_or_default();
    println!(
        "final state hash {:016x} (host tick {}, {} entities, {} components; {} bytes down, {} up on the wire, snapshot {} bytes)",
        session.state_hash(),
        d.tick,
        d.entities,
        d.components,
        link.wire_bytes_received,
        link.wire_bytes_sent,
        link.snapshot_bytes
    );
    drop(session);
    match ended {
        // The host ending the session in order is a normal end for a client.
        Some(reason) if !reason.contains("host shut down") => {
            Err(format!("the connection ended: {reason}"))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn join_options_check_address_position_fingerprint_and_token() {
        let fp = "ab".repeat(32);
        let secret = JoinSecret::from_bytes([7; 32]);
        let token = mint_token(&secret, 3, 60).unwrap().to_text();
        let o = join_options(&args(&[
            "127.0.0.1:4433",
            "--fingerprint",
            &fp,
            "--token",
            &token,
            "--ticks",
            "5",
        ]))
        .unwrap();
        assert_eq!(o.fingerprint.to_hex(), fp);
        assert_eq!(o.ticks, Some(5));
        let err = join_options(&args(&["--fingerprint", &fp, "--token", &token]))
            .err()
            .unwrap();
        assert!(err.contains("ADDR"), "{err}");
        let err = join_options(&args(&["h:1", "--fingerprint", "xyz", "--token", &token]))
            .err()
            .unwrap();
        assert!(err.contains("--fingerprint"), "{err}");
        let err = join_options(&args(&["h:1", "--fingerprint", &fp, "--token", "00"]))
            .err()
            .unwrap();
        assert!(err.contains("--token"), "{err}");
        assert!(netutil::resolve("127.0.0.1:notaport").is_err());
    }

    #[test]
    fn token_options_refuse_bad_secret_peer_and_ttl() {
        let secret = "11".repeat(32);
        assert!(token(&args(&["--secret", "zz", "--peer", "1"])).is_err());
        assert!(token(&args(&["--secret", &secret, "--peer", "0"])).is_err());
        assert!(token(&args(&["--secret", &secret, "--peer", "70000"])).is_err());
        assert!(token(&args(&["--secret", &secret, "--peer", "1", "--ttl", "0"])).is_err());
        assert!(token(&args(&["--secret", &secret])).is_err());
        token(&args(&["--secret", &secret, "--peer", "2"])).unwrap();
    }
}
