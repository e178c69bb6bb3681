//! Sessions over loopback QUIC: a host and clients in one process, 127.0.0.1 only, every
//! wait bounded. Convergence is checked by state hash once changes (and faults) stop.
//! What does not need real QUIC (loss, reordering, joins mid-run, resumes, forbidden
//! writes over thousands of seeds) is the simulator's (`tests/sim_props.rs`); these tests
//! keep what only a real connection shows: admission, TLS, timeouts, streams, close.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use theta_net::net::compression::{split_stream_message, KindDiagnostics, StreamKind};
use theta_net::net::faults::{FaultConfig, FaultControl};
use theta_net::net::session::{DisconnectCause, Session, SessionConfig, SessionEvent};
use theta_net::net::tls::{CongestionControl, Fingerprint, HostIdentity, ServerTrust};
use theta_net::net::token::{mint, JoinSecret};
use theta_net::wire::codec::{Codec, DictionarySet, FrameFormat, MessageKind};
use theta_net::{ComponentId, EntityId, Layout, Registry, World};

/// Ticks a session may need, after changes stop, to converge: with faults off, a few
/// round trips on loopback.
const CONVERGE_TICKS: usize = 300;

struct Scene {
    position: ComponentId,
    color: ComponentId,
    tag: ComponentId,
    registry: Registry,
}

fn scene_world() -> (World, Scene) {
    let mut world = World::default();
    let position = world.register("test.Position", Layout::Fixed(12)).unwrap();
    let color = world.register("test.Color", Layout::Fixed(4)).unwrap();
    let tag = world
        .register("test.Name", Layout::Variable { max: 32 })
        .unwrap();
    let registry = world.registry().clone();
    (
        world,
        Scene {
            position,
            color,
            tag,
            registry,
        },
    )
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

struct Net {
    host: Session,
    secret: JoinSecret,
    fingerprint: Fingerprint,
    scene: Scene,
}

fn host(config: SessionConfig) -> Net {
    let (world, scene) = scene_world();
    let identity = HostIdentity::self_signed(&["localhost".to_owned()]).unwrap();
    let secret = JoinSecret::generate();
    let host = Session::host(
        "127.0.0.1:0".parse().unwrap(),
        world,
        &identity,
        secret.clone(),
        config,
    )
    .unwrap();
    Net {
        host,
        secret,
        fingerprint: identity.fingerprint(),
        scene,
    }
}

impl Net {
    fn join(&self, peer: u16, config: SessionConfig) -> Session {
        let token = mint(&self.secret, peer, now() + 60, None).to_text();
        let addr = self.host.local_addr().unwrap();
        Session::join(
            addr,
            &ServerTrust::Fingerprint(self.fingerprint),
            &token,
            &self.scene.registry,
            config,
        )
        .unwrap()
    }
}

/// Ticks every session once and lets packets fly.
fn tick_all(host: &mut Session, clients: &mut [Session]) {
    host.tick();
    for c in clients.iter_mut() {
        c.tick();
    }
    std::thread::sleep(Duration::from_millis(2));
}

fn wait_joined(host: &mut Session, clients: &mut [Session]) {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut joined = vec![false; clients.len()];
    while !joined.iter().all(|&j| j) {
        assert!(Instant::now() < deadline, "clients did not join in time");
        tick_all(host, clients);
        for (i, c) in clients.iter_mut().enumerate() {
            for event in c.poll_events(usize::MAX) {
                match event {
                    SessionEvent::Joined { .. } => joined[i] = true,
                    SessionEvent::Disconnected { reason, .. } => {
                        panic!("client {i} disconnected: {reason}")
                    }
                    _ => {}
                }
            }
        }
    }
}

/// Ticks until every client's hash equals the host's; returns the ticks it took.
fn converge(host: &mut Session, clients: &mut [Session], bound: usize) -> usize {
    for t in 0..bound {
        tick_all(host, clients);
        if clients.iter().all(|c| c.state_hash() == host.state_hash()) {
            return t;
        }
    }
    let d = host.diagnostics();
    panic!(
        "no convergence within {bound} ticks: host {} entities / {} values, clients {:?}; host peers {:?}",
        d.entities,
        d.components,
        clients.iter().map(|c| (c.world().stats().entities, c.world().stats().components)).collect::<Vec<_>>(),
        d.peers
    );
}

/// 120 ticks of spawns, despawns, updates, inserts and removes on the host.
fn run_changes(
    net: &mut Net,
    clients: &mut Vec<Session>,
    ticks: u64,
    mut on_tick: impl FnMut(u64, &mut Net, &mut Vec<Session>),
) {
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut live: Vec<EntityId> = Vec::new();
    // Each client's own entities (created once it has joined).
    let mut owned: Vec<Vec<EntityId>> = Vec::new();
    for t in 0..ticks {
        let position = net.scene.position;
        owned.resize(clients.len(), Vec::new());
        for (client, mine) in clients.iter_mut().zip(owned.iter_mut()) {
            if client.peer().is_none() {
                continue;
            }
            if mine.len() < 4 {
                mine.push(client.spawn().unwrap());
            }
            let e = mine[(next() % mine.len() as u64) as usize];
            client
                .set(e, position, &(next() as u128).to_le_bytes()[..12])
                .unwrap();
            if t % 10 == 9 {
                let gone = mine.swap_remove(0);
                client.despawn(gone).unwrap();
            }
            // Writing what it does not own is refused locally.
            if let Some(&theirs) = live.first() {
                assert!(client.set(theirs, position, &[0; 12]).is_err());
            }
        }
        {
            let s = &net.scene;
            let (position, color, tag) = (s.position, s.color, s.tag);
            let world = net.host.host_world().unwrap();
            for _ in 0..3 {
                let e = world.spawn().unwrap();
                world.set(e, position, &[t as u8; 12]).unwrap();
                live.push(e);
            }
            for _ in 0..8 {
                let e = live[(next() % live.len() as u64) as usize];
                world
                    .set(e, position, &(next() as u128).to_le_bytes()[..12])
                    .unwrap();
            }
            let e = live[(next() % live.len() as u64) as usize];
            if world.get(e, color).is_some() {
                world.remove(e, color).unwrap();
            } else {
                world.set(e, color, &(next() as u32).to_le_bytes()).unwrap();
            }
            let e = live[(next() % live.len() as u64) as usize];
            world
                .set(e, tag, format!("n{}", next() % 1000).as_bytes())
                .unwrap();
            if t % 4 == 3 {
                let gone = live.swap_remove((next() % live.len() as u64) as usize);
                world.despawn(gone).unwrap();
            }
        }
        tick_all(&mut net.host, clients);
        on_tick(t, net, clients);
    }
}

/// A session config whose socket faults the test switches on and off.
fn faulty() -> (SessionConfig, FaultControl) {
    let control = FaultControl::new();
    let config = SessionConfig {
        faults: Some(control.clone()),
        ..SessionConfig::default()
    };
    (config, control)
}

fn converges_under(loss: f64, seed: u64) {
    converges_with(loss, seed, CongestionControl::default());
}

/// Changes under `loss` (with duplication, reordering, corruption) and delay jitter of
/// ± the delay, so that datagrams also overtake each other as on Wi-Fi; then
/// convergence once the faults stop.
fn converges_with(loss: f64, seed: u64, congestion: CongestionControl) {
    let config = || {
        let (config, faults) = faulty();
        (
            SessionConfig {
                congestion,
                ..config
            },
            faults,
        )
    };
    let (host_config, host_faults) = config();
    let mut net = host(host_config);
    let (c1, f1) = config();
    let (c2, f2) = config();
    let mut clients = vec![net.join(1, c1), net.join(2, c2)];
    wait_joined(&mut net.host, &mut clients);
    let faults = FaultConfig {
        loss,
        duplicate: if loss > 0.0 { 0.05 } else { 0.0 },
        reorder: if loss > 0.0 { 0.1 } else { 0.0 },
        corrupt: if loss > 0.0 { 0.02 } else { 0.0 },
        delay: Duration::from_millis(5),
        jitter: Duration::from_millis(5),
        ..FaultConfig::default()
    };
    for (i, control) in [&host_faults, &f1, &f2].into_iter().enumerate() {
        control
            .set(FaultConfig {
                seed: seed * 10 + i as u64,
                ..faults
            })
            .unwrap();
    }
    run_changes(&mut net, &mut clients, 120, |_, _, _| {});
    for control in [&host_faults, &f1, &f2] {
        control.clear();
    }
    let ticks = converge(&mut net.host, &mut clients, CONVERGE_TICKS);
    assert!(net.host.world().stats().entities > 200);
    // The clients' own entities reached the host and, through it, the other client.
    for peer in [1u16, 2] {
        assert!(
            net.host.world().entities().any(|e| e.creator() == peer),
            "no entity of peer {peer} on the host"
        );
    }
    assert!(clients[0].world().entities().any(|e| e.creator() == 2));
    eprintln!(
        "loss {loss}: converged {ticks} ticks after the faults stopped; {:?}",
        net.host.diagnostics().peers
    );
}

#[test]
fn two_clients_converge_without_loss() {
    converges_under(0.0, 1);
}

/// Once nothing changes, nothing is sent but QUIC's own keep-alives: acknowledgements are
/// not acknowledged.
#[test]
fn an_idle_session_goes_quiet() {
    let mut net = host(SessionConfig::default());
    let mut clients = vec![net.join(1, SessionConfig::default())];
    wait_joined(&mut net.host, &mut clients);
    run_changes(&mut net, &mut clients, 20, |_, _, _| {});
    converge(&mut net.host, &mut clients, CONVERGE_TICKS);
    // Let the last acknowledgements settle.
    for _ in 0..20 {
        tick_all(&mut net.host, &mut clients);
    }
    let sent = |host: &Session, client: &Session| {
        (
            host.diagnostics().peers[0].payload_bytes_sent,
            client.diagnostics().peers[0].payload_bytes_sent,
        )
    };
    let before = sent(&net.host, &clients[0]);
    for _ in 0..50 {
        tick_all(&mut net.host, &mut clients);
    }
    assert_eq!(
        sent(&net.host, &clients[0]),
        before,
        "datagrams sent while idle"
    );
}

/// BBR is the default; Cubic, the alternative, replicates the same.
#[test]
fn two_clients_converge_with_cubic_congestion_control() {
    converges_with(0.10, 5, CongestionControl::Cubic);
}

fn refused(net: &mut Net, mut client: Session) -> (String, DisconnectCause) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        assert!(Instant::now() < deadline, "no refusal in time");
        net.host.tick();
        client.tick();
        for event in client.poll_events(usize::MAX) {
            match event {
                SessionEvent::Disconnected { reason, cause } => return (reason, cause),
                SessionEvent::Joined { .. } => panic!("joined although it should be refused"),
                _ => {}
            }
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn each_refused_admission_says_why() {
    let mut net = host(SessionConfig::default());
    let addr = net.host.local_addr().unwrap();
    let pin = ServerTrust::Fingerprint(net.fingerprint);
    let registry = net.scene.registry.clone();
    let join = |trust: &ServerTrust, token: &str, registry: &Registry| {
        Session::join(addr, trust, token, registry, SessionConfig::default()).unwrap()
    };

    let expired = mint(&net.secret, 5, now() - 10, None).to_text();
    let (reason, cause) = refused(&mut net, join(&pin, &expired, &registry));
    assert!(reason.contains("expired"), "{reason}");
    assert_eq!(cause, DisconnectCause::Refused);

    let forged = mint(&JoinSecret::generate(), 5, now() + 60, None).to_text();
    let (reason, cause) = refused(&mut net, join(&pin, &forged, &registry));
    assert!(reason.contains("forged"), "{reason}");
    assert_eq!(cause, DisconnectCause::Refused);

    let token = mint(&net.secret, 6, now() + 60, None).to_text();
    let mut first = vec![join(&pin, &token, &registry)];
    wait_joined(&mut net.host, &mut first);
    let (reason, cause) = refused(&mut net, join(&pin, &token, &registry));
    assert!(reason.contains("already used"), "{reason}");
    assert_eq!(cause, DisconnectCause::Refused);

    let mut other = Registry::new();
    other.register("test.Other", Layout::Fixed(1)).unwrap();
    let fresh = mint(&net.secret, 7, now() + 60, None).to_text();
    let (reason, cause) = refused(&mut net, join(&pin, &fresh, &other));
    assert!(reason.contains("registry"), "{reason}");
    assert_eq!(cause, DisconnectCause::Refused);

    let wrong_pin = ServerTrust::Fingerprint(Fingerprint([7; 32]));
    let fresh = mint(&net.secret, 8, now() + 60, None).to_text();
    let (reason, cause) = refused(&mut net, join(&wrong_pin, &fresh, &registry));
    assert!(reason.contains("fingerprint"), "{reason}");
    assert_eq!(cause, DisconnectCause::Certificate);

    // The host saw the four refusals it made (the wrong pin failed in the client's TLS
    // handshake, before any join request).
    let on_host: Vec<String> = net
        .host
        .poll_events(usize::MAX)
        .into_iter()
        .filter_map(|e| match e {
            SessionEvent::JoinRefused { reason, .. } => Some(reason),
            _ => None,
        })
        .collect();
    assert_eq!(on_host.len(), 4, "{on_host:?}");
    assert!(
        on_host[0].contains("expired") && on_host[3].contains("registry"),
        "{on_host:?}"
    );
    assert_eq!(net.host.diagnostics().joins_refused, 4);
}

#[test]
fn host_shutdown_disconnects_clients_with_a_reason() {
    let mut net = host(SessionConfig::default());
    let mut clients = vec![net.join(1, SessionConfig::default())];
    wait_joined(&mut net.host, &mut clients);
    drop(net.host);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        assert!(Instant::now() < deadline, "no disconnect event");
        clients[0].tick();
        let events = clients[0].poll_events(usize::MAX);
        if let Some(reason) = events.iter().find_map(|e| match e {
            SessionEvent::Disconnected { reason, cause } => Some((reason.clone(), *cause)),
            _ => None,
        }) {
            let (reason, cause) = reason;
            assert!(reason.contains("host shut down"), "{reason}");
            assert_eq!(cause, DisconnectCause::HostClosed);
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A hostile client: joins properly, then sends a state datagram writing an entity of
/// the host. The host refuses it, counts it, reports it to that client on the stream, and
/// neither applies nor forwards it.
#[test]
fn a_write_to_an_entity_the_client_does_not_own_is_rejected() {
    use theta_net::net::framing::read_message;
    use theta_net::wire::{decode, BatchRef, Encoder, FrameParts, Message};

    let mut net = host(SessionConfig::default());
    let position = net.scene.position;
    let victim = {
        let world = net.host.host_world().unwrap();
        let e = world.spawn().unwrap();
        world.set(e, position, &[1; 12]).unwrap();
        e
    };
    let mut observer = vec![net.join(2, SessionConfig::default())];
    wait_joined(&mut net.host, &mut observer);
    converge(&mut net.host, &mut observer, CONVERGE_TICKS);
    let before = net.host.state_hash();

    // `send` is kept in `raw`: the stream stays open for the host's answers.
    let mut raw = RawClient::join(&net, 9);
    // Let the host admit it and send the snapshot.
    for _ in 0..20 {
        tick_all(&mut net.host, &mut observer);
    }
    let entities = [victim];
    let value = [9u8; 12];
    let batches = [BatchRef {
        component: position,
        entities: &entities,
        data: &value,
        lengths: None,
        inserted: None,
    }];
    let parts = FrameParts {
        base_tick: 0,
        tick: 1_000,
        descriptors: &[],
        spawns: &[],
        batches: &batches,
        removes: &[],
        despawns: &entities,
        owner_seq: 0,
        baseline_ages: &[],
        lanes: &[],
    };
    // Garbage and a truncated datagram first: dropped, counted, harmless.
    raw.conn
        .send_datagram(b"not a theta datagram".to_vec().into())
        .unwrap();
    // A state datagram is its header, then its body in the codec envelope: format byte 0
    // is a raw frame.
    let forged = with_header(0, &raw_envelope(&Encoder::new().state_datagram(&parts)));
    raw.conn
        .send_datagram(forged[..forged.len() / 2].to_vec().into())
        .unwrap();
    raw.conn.send_datagram(forged.into()).unwrap();
    let mut host_saw = None;
    for _ in 0..200 {
        tick_all(&mut net.host, &mut observer);
        for event in net.host.poll_events(usize::MAX) {
            if let SessionEvent::WriteRejected { peer, entity, .. } = event {
                host_saw = Some((peer, entity));
            }
        }
        if host_saw.is_some() {
            break;
        }
    }
    assert_eq!(
        host_saw,
        Some((9, victim)),
        "the host reports the refused write"
    );
    // Reported to the offender: its stream carries the acceptance, the snapshot chunks,
    // then the rejection.
    let rejection = raw.runtime.block_on(async {
        tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                let bytes = read_message(&mut raw.recv, 1 << 20).await.unwrap();
                // After admission a rejection is a control message: kind byte, raw envelope.
                let Some((StreamKind::Control, frame)) = split_stream_message(&bytes) else {
                    continue;
                };
                let Ok(message) = DictionarySet::new().decompress(frame, 1 << 20) else {
                    continue;
                };
                if let Ok(Message::WriteRejected(r)) = decode(&message) {
                    return (r.entity(), r.reason().unwrap_or("").to_owned());
                }
            }
        })
        .await
        .unwrap()
    });
    assert_eq!(rejection.0, victim.0);
    assert!(rejection.1.contains("belongs to peer 0"), "{}", rejection.1);
    // Not applied, not forwarded.
    converge(&mut net.host, &mut observer, CONVERGE_TICKS);
    assert_eq!(net.host.state_hash(), before);
    assert!(net.host.world().is_alive(victim));
    assert_eq!(net.host.world().get(victim, position), Some(&[1u8; 12][..]));
    let rejected: u64 = net
        .host
        .diagnostics()
        .peers
        .iter()
        .map(|p| p.writes_rejected)
        .sum();
    assert_eq!(rejected, 2, "the value and the despawn");
    let malformed: u64 = net
        .host
        .diagnostics()
        .peers
        .iter()
        .map(|p| p.malformed)
        .sum();
    assert_eq!(malformed, 2, "the garbage and the truncated datagram");
    raw.close();
}

/// A hand-driven client (peer `peer`): a raw QUIC connection that sent its join request on
/// the stream, for tests of what a hostile peer can do. The runtime and endpoint must
/// outlive the connection.
struct RawClient {
    runtime: tokio::runtime::Runtime,
    conn: quinn::Connection,
    send: quinn::SendStream,
    recv: quinn::RecvStream,
    endpoint: quinn::Endpoint,
}

impl RawClient {
    fn join(net: &Net, peer: u16) -> RawClient {
        use theta_net::net::framing::write_message;
        use theta_net::net::tls::{client_config, transport_config};
        use theta_net::wire::Encoder;
        let addr = net.host.local_addr().unwrap();
        let token = mint(&net.secret, peer, now() + 60, None).to_text();
        let request = Encoder::new().join_request(&token, net.scene.registry.hash());
        let trust = ServerTrust::Fingerprint(net.fingerprint);
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let (conn, send, recv, endpoint) = runtime.block_on(async {
            let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
            let transport = std::sync::Arc::new(transport_config(
                Duration::from_secs(5),
                Duration::from_secs(1),
            ));
            endpoint.set_default_client_config(client_config(&trust, transport).unwrap());
            let conn = endpoint.connect(addr, "localhost").unwrap().await.unwrap();
            let (mut send, recv) = conn.open_bi().await.unwrap();
            write_message(&mut send, &request).await.unwrap();
            (conn, send, recv, endpoint)
        });
        RawClient {
            runtime,
            conn,
            send,
            recv,
            endpoint,
        }
    }

    /// Closes the connection and waits for the endpoint to be idle.
    fn close(self) {
        self.conn.close(0u32.into(), b"done");
        self.runtime.block_on(self.endpoint.wait_idle());
    }
}

/// `message` in a raw codec envelope.
fn raw_envelope(message: &[u8]) -> Vec<u8> {
    let mut out = vec![FrameFormat::Raw as u8];
    out.extend_from_slice(message);
    out
}

/// A state datagram: the header of datagram `seq` (no acknowledgements), then `envelope`.
fn with_header(seq: u64, envelope: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    theta_net::wire::datagram_header::write(seq, &[], &mut out);
    out.extend_from_slice(envelope);
    out
}

/// A client dropped and rejoined (fresh session, fresh token, same peer id) converges: it
/// adopts the entities it had created, and its new ones never reuse an old id.
#[test]
fn a_client_dropped_and_reconnected_converges() {
    let mut net = host(SessionConfig::default());
    let position = net.scene.position;
    let mut clients = vec![
        net.join(1, SessionConfig::default()),
        net.join(2, SessionConfig::default()),
    ];
    wait_joined(&mut net.host, &mut clients);
    let first: Vec<EntityId> = (0..3).map(|_| clients[0].spawn().unwrap()).collect();
    for &e in &first {
        clients[0].set(e, position, &[5; 12]).unwrap();
    }
    converge(&mut net.host, &mut clients, CONVERGE_TICKS);
    drop(clients.remove(0));
    run_changes(&mut net, &mut clients, 20, |_, _, _| {});
    clients.insert(0, net.join(1, SessionConfig::default()));
    wait_joined(&mut net.host, &mut clients[..1]);
    converge(&mut net.host, &mut clients, CONVERGE_TICKS);
    // Its old entities are its own again: it writes them, and new ones get new ids.
    clients[0].set(first[0], position, &[6; 12]).unwrap();
    let fresh = clients[0].spawn().unwrap();
    assert!(!first.contains(&fresh), "id {fresh} reused");
    clients[0].set(fresh, position, &[7; 12]).unwrap();
    converge(&mut net.host, &mut clients, CONVERGE_TICKS);
    assert_eq!(
        net.host.world().get(first[0], position),
        Some(&[6u8; 12][..])
    );
    assert_eq!(
        clients[1].world().get(fresh, position),
        Some(&[7u8; 12][..])
    );
}

/// A value too large for any datagram travels on the reliable stream.
#[test]
fn values_too_large_for_a_datagram_go_on_the_stream() {
    let (mut world, scene) = scene_world();
    let blob = world
        .register("test.Blob", Layout::Variable { max: 64 * 1024 })
        .unwrap();
    let identity = HostIdentity::self_signed(&[]).unwrap();
    let secret = JoinSecret::generate();
    let mut registry = scene.registry.clone();
    registry
        .register("test.Blob", Layout::Variable { max: 64 * 1024 })
        .unwrap();
    let mut hosted = Session::host(
        "127.0.0.1:0".parse().unwrap(),
        world,
        &identity,
        secret.clone(),
        SessionConfig::default(),
    )
    .unwrap();
    let token = mint(&secret, 1, now() + 60, None).to_text();
    let trust = ServerTrust::Fingerprint(identity.fingerprint());
    let mut clients = vec![Session::join(
        hosted.local_addr().unwrap(),
        &trust,
        &token,
        &registry,
        SessionConfig::default(),
    )
    .unwrap()];
    wait_joined(&mut hosted, &mut clients);
    let e = hosted.spawn().unwrap();
    let big: Vec<u8> = (0..20_000u32).map(|i| i as u8).collect();
    hosted.set(e, blob, &big).unwrap();
    converge(&mut hosted, &mut clients, CONVERGE_TICKS);
    assert_eq!(clients[0].world().get(e, blob), Some(&big[..]));
    // And from a client to the host (its stream's delta frames are applied there too).
    let mine = clients[0].spawn().unwrap();
    let other: Vec<u8> = (0..30_000u32).map(|i| (i / 7) as u8).collect();
    clients[0].set(mine, blob, &other).unwrap();
    converge(&mut hosted, &mut clients, CONVERGE_TICKS);
    assert_eq!(hosted.world().get(mine, blob), Some(&other[..]));
    let streamed: u64 = hosted
        .diagnostics()
        .peers
        .iter()
        .map(|p| p.outbox.stream_frames)
        .sum();
    assert!(streamed >= 1);
}

/// Delta frames on the stream share one compression stream per connection and direction:
/// each frame is coded against the ones before it (a large value changed a little each tick
/// costs a few bytes, which plain zstd of one frame could not do on random bytes); the
/// stream restarts with a delta-frame dictionary once one is trained (dictionary hits both
/// ways) and on a new connection (a resume); nothing fails to decode and all converge.
#[test]
fn delta_frames_on_the_stream_share_a_compression_stream_per_connection() {
    let (mut world, scene) = scene_world();
    let layout = Layout::Variable { max: 64 * 1024 };
    let blob = world.register("test.Blob", layout).unwrap();
    let mut registry = scene.registry.clone();
    registry.register("test.Blob", layout).unwrap();
    let identity = HostIdentity::self_signed(&[]).unwrap();
    let secret = JoinSecret::generate();
    let config = |faults| SessionConfig {
        train_after_samples: 0,
        ..quick_timeouts(faults, Duration::from_secs(30))
    };
    let mut hosted = Session::host(
        "127.0.0.1:0".parse().unwrap(),
        world,
        &identity,
        secret.clone(),
        config(None),
    )
    .unwrap();
    let control = FaultControl::new();
    let token = mint(&secret, 1, now() + 60, None).to_text();
    let trust = ServerTrust::Fingerprint(identity.fingerprint());
    let mut clients = vec![Session::join(
        hosted.local_addr().unwrap(),
        &trust,
        &token,
        &registry,
        config(Some(control.clone())),
    )
    .unwrap()];
    wait_joined(&mut hosted, &mut clients);
    let theirs = hosted.spawn().unwrap();
    let mine = clients[0].spawn().unwrap();
    // Random bytes (plain zstd cannot shrink them), far too large for a datagram.
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut value: Vec<u8> = (0..6000)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    let mut t = 0u32;
    let mut change = |hosted: &mut Session, clients: &mut Vec<Session>, ticks: u32| {
        for _ in 0..ticks {
            t += 1;
            let at = (t as usize * 4) % (value.len() - 4);
            value[at..at + 4].copy_from_slice(&t.to_le_bytes());
            hosted.set(theirs, blob, &value).unwrap();
            value.reverse();
            clients[0].set(mine, blob, &value).unwrap();
            value.reverse();
            tick_all(hosted, clients);
        }
        converge(hosted, clients, CONVERGE_TICKS);
        assert_eq!(clients[0].world().get(theirs, blob), Some(&value[..]));
        value.reverse();
        assert_eq!(hosted.world().get(mine, blob), Some(&value[..]));
        value.reverse();
    };
    let deltas = |s: &Session| kind_stats(s, MessageKind::DeltaFrame);
    let no_failures = |hosted: &Session, clients: &[Session]| {
        for s in std::iter::once(hosted).chain(clients) {
            assert_eq!(deltas(s).counters.decode_failures(), 0, "{:?}", deltas(s));
        }
    };

    // Without a dictionary: every frame after the first is coded against the ones before.
    change(&mut hosted, &mut clients, 30);
    for s in [&hosted, &clients[0]] {
        let d = deltas(s);
        assert!(d.counters.frames_out >= 10, "{d:?}");
        assert!(d.counters.frames_in >= 10, "{d:?}");
        assert!(d.ratio() < 0.5, "{d:?}");
        assert_eq!(d.counters.dictionary_out, 0, "{d:?}");
    }
    no_failures(&hosted, &clients);

    // A delta-frame dictionary: both streams restart with it.
    let id = hosted.train_dictionary(MessageKind::DeltaFrame).unwrap();
    tick_until(
        &mut hosted,
        &mut clients,
        TRAIN_TICKS,
        "the client holds the delta-frame dictionary",
        |_, clients| deltas(&clients[0]).dictionaries == [id],
    );
    change(&mut hosted, &mut clients, 20);
    for s in [&hosted, &clients[0]] {
        let d = deltas(s);
        assert!(d.counters.dictionary_out > 0, "{d:?}");
        assert!(d.counters.dictionary_in > 0, "{d:?}");
    }
    no_failures(&hosted, &clients);

    // A new connection (resumed) starts new streams on both sides.
    control.set(FaultConfig::with_loss(3, 1.0)).unwrap();
    wait_dropped(&mut hosted, &mut clients[0]);
    control.clear();
    clients[0].reconnect().unwrap();
    wait_joined(&mut hosted, &mut clients);
    change(&mut hosted, &mut clients, 20);
    no_failures(&hosted, &clients);
    let host = deltas(&hosted);
    assert!(host.ratio() < 0.5, "{host:?}");
}

/// With a per-tick byte budget far below what changed, the priority accumulator spreads
/// the backlog over ticks: keys wait, none starves, and the clients converge.
#[test]
fn a_small_byte_budget_defers_but_delivers_everything() {
    let config = SessionConfig {
        budget_bytes_per_tick: 600,
        ..SessionConfig::default()
    };
    let mut net = host(config);
    let mut clients = vec![net.join(1, SessionConfig::default())];
    wait_joined(&mut net.host, &mut clients);
    run_changes(&mut net, &mut clients, 40, |_, _, _| {});
    converge(&mut net.host, &mut clients, 3 * CONVERGE_TICKS);
    let deferred: u64 = net
        .host
        .diagnostics()
        .peers
        .iter()
        .map(|p| p.outbox.deferred_keys)
        .sum();
    assert!(deferred > 0, "the budget never bound");
}

/// A peer that goes silent (every packet lost) is dropped after the idle timeout, with a
/// reason, on both sides.
#[test]
fn a_silent_peer_times_out() {
    let quick = |faults: Option<FaultControl>| SessionConfig {
        idle_timeout: Duration::from_millis(800),
        keep_alive: Duration::from_millis(200),
        faults,
        ..SessionConfig::default()
    };
    let mut net = host(quick(None));
    let control = FaultControl::new();
    let mut clients = vec![net.join(1, quick(Some(control.clone())))];
    wait_joined(&mut net.host, &mut clients);
    control.set(FaultConfig::with_loss(1, 1.0)).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let (mut client_reason, mut host_reason) = (None, None);
    while client_reason.is_none() || host_reason.is_none() {
        assert!(
            Instant::now() < deadline,
            "no timeout: {client_reason:?} {host_reason:?}"
        );
        tick_all(&mut net.host, &mut clients);
        for event in clients[0].poll_events(usize::MAX) {
            if let SessionEvent::Disconnected { reason, .. } = event {
                client_reason = Some(reason);
            }
        }
        for event in net.host.poll_events(usize::MAX) {
            if let SessionEvent::PeerLeft { peer: 1, reason } = event {
                host_reason = Some(reason);
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(client_reason.unwrap().contains("timed out"));
    assert!(host_reason.unwrap().contains("timed out"));
}

/// Waits for the client's disconnect and the host's matching PeerLeft.
fn wait_dropped(host: &mut Session, client: &mut Session) {
    let deadline = Instant::now() + Duration::from_secs(10);
    let (mut client_saw, mut host_saw) = (false, false);
    while !(client_saw && host_saw) {
        assert!(Instant::now() < deadline, "connection did not drop");
        host.tick();
        client.tick();
        client_saw |= client
            .poll_events(usize::MAX)
            .iter()
            .any(|e| matches!(e, SessionEvent::Disconnected { .. }));
        host_saw |= host
            .poll_events(usize::MAX)
            .iter()
            .any(|e| matches!(e, SessionEvent::PeerLeft { .. }));
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn quick_timeouts(faults: Option<FaultControl>, resume_grace: Duration) -> SessionConfig {
    SessionConfig {
        idle_timeout: Duration::from_millis(800),
        keep_alive: Duration::from_millis(200),
        faults,
        resume_grace,
        ..SessionConfig::default()
    }
}

/// A client whose connection drops resumes with its resume token: no snapshot, the host
/// sends what it missed (marked while it was away), its own pending writes go on.
#[test]
fn a_dropped_connection_resumes_without_a_snapshot() {
    let mut net = host(quick_timeouts(None, Duration::from_secs(30)));
    let position = net.scene.position;
    let control = FaultControl::new();
    let mut clients = vec![net.join(
        1,
        quick_timeouts(Some(control.clone()), Duration::from_secs(30)),
    )];
    wait_joined(&mut net.host, &mut clients);
    let mine = clients[0].spawn().unwrap();
    clients[0].set(mine, position, &[1; 12]).unwrap();
    run_changes(&mut net, &mut clients, 10, |_, _, _| {});
    converge(&mut net.host, &mut clients, CONVERGE_TICKS);

    control.set(FaultConfig::with_loss(3, 1.0)).unwrap();
    wait_dropped(&mut net.host, &mut clients[0]);
    // Changes on both sides while apart.
    clients[0].set(mine, position, &[2; 12]).unwrap();
    run_changes(&mut net, &mut Vec::new(), 15, |_, _, _| {});
    control.clear();
    clients[0].reconnect().unwrap();
    assert!(clients[0].reconnect().is_err(), "already reconnecting");
    wait_joined(&mut net.host, &mut clients);
    converge(&mut net.host, &mut clients, CONVERGE_TICKS);
    assert_eq!(net.host.world().get(mine, position), Some(&[2u8; 12][..]));
    let link = &net.host.diagnostics().peers[0];
    assert_eq!(link.snapshot_bytes, 0, "resumed without a snapshot");
    assert!(net.host.world().stats().entities > 30);
}

/// After the grace period the host has let the state go: resuming is refused, saying why.
#[test]
fn resuming_after_the_grace_period_is_refused() {
    let mut net = host(quick_timeouts(None, Duration::from_millis(100)));
    let control = FaultControl::new();
    let mut client = net.join(
        1,
        quick_timeouts(Some(control.clone()), Duration::from_secs(30)),
    );
    wait_joined(&mut net.host, std::slice::from_mut(&mut client));
    control.set(FaultConfig::with_loss(4, 1.0)).unwrap();
    wait_dropped(&mut net.host, &mut client);
    for _ in 0..30 {
        net.host.tick();
        std::thread::sleep(Duration::from_millis(10));
    }
    control.clear();
    client.reconnect().unwrap();
    let (reason, cause) = refused(&mut net, client);
    assert!(
        reason.contains("resume token") && reason.contains("expired"),
        "{reason}"
    );
    assert_eq!(cause, DisconnectCause::Refused);
}

/// Joining an address where no host answers fails after the connect timeout, saying so,
/// instead of waiting for the idle timeout.
#[test]
fn joining_nobody_times_out_quickly_with_a_reason() {
    let (_, scene) = scene_world();
    // A port that was free a moment ago: nothing answers there.
    let addr = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let config = SessionConfig {
        connect_timeout: Duration::from_millis(300),
        ..SessionConfig::default()
    };
    let token = mint(&JoinSecret::generate(), 1, now() + 60, None).to_text();
    let trust = ServerTrust::Fingerprint(Fingerprint([1; 32]));
    let mut client = Session::join(addr, &trust, &token, &scene.registry, config).unwrap();
    let started = Instant::now();
    let reason = loop {
        assert!(started.elapsed() < Duration::from_secs(5), "no disconnect");
        client.tick();
        if let Some(reason) = client
            .poll_events(usize::MAX)
            .into_iter()
            .find_map(|e| match e {
                SessionEvent::Disconnected { reason, cause } => Some((reason, cause)),
                _ => None,
            })
        {
            break reason;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let (reason, cause) = reason;
    // Only the connect timeout says this (the idle timeout says "timed out (idle)").
    assert!(reason.contains("no answer"), "{reason}");
    assert_eq!(cause, DisconnectCause::Unreachable);
}

/// Ticks a dictionary training (on the host's blocking pool) may take to be installed.
const TRAIN_TICKS: usize = 2000;

/// Compression figures of `kind` on `session`.
fn kind_stats(session: &Session, kind: MessageKind) -> KindDiagnostics {
    session.diagnostics().compression[kind.index()].clone()
}

/// Ticks (with no changes) until `done` holds; panics after `bound` ticks.
fn tick_until(
    host: &mut Session,
    clients: &mut [Session],
    bound: usize,
    what: &str,
    mut done: impl FnMut(&Session, &[Session]) -> bool,
) {
    for _ in 0..bound {
        if done(host, clients) {
            return;
        }
        tick_all(host, clients);
    }
    panic!(
        "{what}: not within {bound} ticks; host {:?}; clients {:?}",
        kind_stats(host, MessageKind::Datagram),
        clients
            .iter()
            .map(|c| kind_stats(c, MessageKind::Datagram))
            .collect::<Vec<_>>()
    );
}

/// A dictionary trained automatically after N samples, then one trained on demand: each is
/// sent, acknowledged and used (the host's datagrams hit a dictionary, the clients'
/// upstream too), the first retires on both sides once the clients hold the second, no
/// frame ever names a dictionary its receiver lacks, and the clients converge.
#[test]
fn dictionaries_trained_after_n_samples_and_on_demand_are_used_then_retired() {
    let config = || SessionConfig {
        train_after_samples: 64,
        ..SessionConfig::default()
    };
    let mut net = host(config());
    let mut clients = vec![net.join(1, config()), net.join(2, config())];
    wait_joined(&mut net.host, &mut clients);
    // Too few delta frames on the stream to train on.
    assert!(net.host.train_dictionary(MessageKind::DeltaFrame).is_err());
    // Snapshot chunks use plain zstd by default: no dictionary to train.
    assert!(net
        .host
        .train_dictionary(MessageKind::SnapshotChunk)
        .is_err());
    assert!(clients[0].train_dictionary(MessageKind::Datagram).is_err());

    // Automatic: after 64 datagrams recorded.
    let mut first = None;
    run_changes(&mut net, &mut clients, 120, |_, net, _| {
        if first.is_none() {
            first = kind_stats(&net.host, MessageKind::Datagram).newest_dictionary();
        }
    });
    if first.is_none() {
        // Training runs on its own thread: give a loaded machine time.
        tick_until(
            &mut net.host,
            &mut clients,
            TRAIN_TICKS,
            "the automatic training finishes",
            |host, _| {
                kind_stats(host, MessageKind::Datagram)
                    .newest_dictionary()
                    .is_some()
            },
        );
        first = kind_stats(&net.host, MessageKind::Datagram).newest_dictionary();
    }
    let first = first.unwrap();
    let host_stats = kind_stats(&net.host, MessageKind::Datagram);
    assert_eq!(host_stats.trained, 1);
    assert!(host_stats.samples >= 64);
    tick_until(
        &mut net.host,
        &mut clients,
        CONVERGE_TICKS,
        "clients hold the first dictionary",
        |_, clients| {
            clients
                .iter()
                .all(|c| kind_stats(c, MessageKind::Datagram).dictionaries == [first])
        },
    );
    run_changes(&mut net, &mut clients, 30, |_, _, _| {});
    converge(&mut net.host, &mut clients, CONVERGE_TICKS);
    let host_stats = kind_stats(&net.host, MessageKind::Datagram);
    assert!(
        host_stats.dictionary_hit_rate() > 0.0,
        "host datagrams never used the dictionary: {host_stats:?}"
    );
    assert!(
        host_stats.counters.dictionary_in > 0,
        "the clients' upstream never used it"
    );
    for c in &clients {
        let s = kind_stats(c, MessageKind::Datagram);
        assert!(s.counters.dictionary_in > 0, "{s:?}");
        assert!(s.dictionary_hit_rate() > 0.0, "{s:?}");
    }

    // On demand: a second dictionary; the first retires everywhere.
    let second = net.host.train_dictionary(MessageKind::Datagram).unwrap();
    assert!(second > first, "ids increase");
    tick_until(
        &mut net.host,
        &mut clients,
        TRAIN_TICKS,
        "the first dictionary retires on both sides",
        |host, clients| {
            kind_stats(host, MessageKind::Datagram).dictionaries == [second]
                && clients
                    .iter()
                    .all(|c| kind_stats(c, MessageKind::Datagram).dictionaries == [second])
        },
    );
    let used_before = kind_stats(&net.host, MessageKind::Datagram)
        .counters
        .dictionary_out;
    run_changes(&mut net, &mut clients, 30, |_, _, _| {});
    converge(&mut net.host, &mut clients, CONVERGE_TICKS);
    let host_stats = kind_stats(&net.host, MessageKind::Datagram);
    assert_eq!(host_stats.trained, 2);
    assert!(host_stats.counters.dictionary_out > used_before);
    for s in std::iter::once(host_stats)
        .chain(clients.iter().map(|c| kind_stats(c, MessageKind::Datagram)))
    {
        assert_eq!(s.counters.decode_failures(), 0, "{s:?}");
    }
    eprintln!("{}", net.host.diagnostics().text_panel());
}

/// A client joining after a dictionary was trained receives it on the stream before its
/// snapshot, acknowledges it, decodes datagrams made with it, and converges.
#[test]
fn a_late_joiner_receives_the_current_dictionary_and_converges() {
    let config = || SessionConfig {
        train_after_samples: 0,
        ..SessionConfig::default()
    };
    let mut net = host(config());
    let mut clients = vec![net.join(1, config())];
    wait_joined(&mut net.host, &mut clients);
    run_changes(&mut net, &mut clients, 60, |_, _, _| {});
    let id = net.host.train_dictionary(MessageKind::Datagram).unwrap();
    tick_until(
        &mut net.host,
        &mut clients,
        TRAIN_TICKS,
        "the dictionary is installed",
        |host, _| kind_stats(host, MessageKind::Datagram).dictionaries == [id],
    );
    clients.push(net.join(2, config()));
    wait_joined(&mut net.host, &mut clients[1..]);
    // The dictionary came with the join, before any change after it.
    tick_until(
        &mut net.host,
        &mut clients,
        CONVERGE_TICKS,
        "the late joiner holds the dictionary",
        |_, clients| kind_stats(&clients[1], MessageKind::Datagram).dictionaries == [id],
    );
    run_changes(&mut net, &mut clients, 40, |_, _, _| {});
    converge(&mut net.host, &mut clients, CONVERGE_TICKS);
    let late = kind_stats(&clients[1], MessageKind::Datagram);
    assert!(late.counters.dictionary_in > 0, "{late:?}");
    assert_eq!(late.counters.decode_failures(), 0, "{late:?}");
    // Its snapshot came compressed (zstd-3 by default) and decoded.
    let chunks = kind_stats(&clients[1], MessageKind::SnapshotChunk);
    assert!(chunks.counters.frames_in > 0, "{chunks:?}");
    assert!(
        chunks.counters.bytes_received_framed < chunks.counters.bytes_received_uncompressed,
        "{chunks:?}"
    );
}

/// A hostile client sends datagrams that name an unknown dictionary, a decompression
/// bomb (honest and lying headers), a truncated frame and a byte reserved for XR poses:
/// each is counted by cause, the state does not change, nothing panics, and the honest
/// client still converges.
#[test]
fn hostile_compressed_datagrams_are_counted_and_change_nothing() {
    use std::io::Write;
    use theta_net::wire::codec::{write_varint, Zstd};
    use theta_net::wire::{BatchRef, Encoder, FrameParts};

    let mut net = host(SessionConfig::default());
    let position = net.scene.position;
    let mut observer = vec![net.join(2, SessionConfig::default())];
    wait_joined(&mut net.host, &mut observer);
    run_changes(&mut net, &mut observer, 20, |_, _, _| {});
    converge(&mut net.host, &mut observer, CONVERGE_TICKS);
    let before = net.host.state_hash();
    let stats_before = kind_stats(&net.host, MessageKind::Datagram).counters;

    let raw = RawClient::join(&net, 9);
    for _ in 0..20 {
        tick_all(&mut net.host, &mut observer);
    }
    // A valid state datagram of the hostile peer's own entity, to compress.
    let own = EntityId((9u64 << 48) | 1);
    let entities = [own];
    let value = [3u8; 12];
    let batches = [BatchRef {
        component: position,
        entities: &entities,
        data: &value,
        lengths: None,
        inserted: None,
    }];
    let parts = FrameParts {
        base_tick: 0,
        tick: 5,
        descriptors: &[],
        spawns: &entities,
        batches: &batches,
        removes: &[],
        despawns: &[],
        owner_seq: 0,
        baseline_ages: &[],
        lanes: &[],
    };
    let message = Encoder::new().state_datagram(&parts);
    // 1. Named dictionary 99, which the host never trained.
    let mut unknown = vec![FrameFormat::ZstdDict as u8];
    write_varint(&mut unknown, 99);
    write_varint(&mut unknown, message.len() as u64);
    unknown.extend_from_slice(&message);
    // 2. A bomb: 16 MiB of zeros in a few hundred bytes, with an honest header (refused
    // before decompressing) and with a lying one (refused when it expands past it).
    let mut bomb_body = zstd::stream::Encoder::new(Vec::new(), 3).unwrap();
    let zeros = vec![0u8; 1 << 16];
    for _ in 0..256 {
        bomb_body.write_all(&zeros).unwrap();
    }
    let bomb_body = bomb_body.finish().unwrap();
    assert!(bomb_body.len() < 1000, "{}", bomb_body.len());
    let bomb = |declared: u64| {
        let mut frame = vec![FrameFormat::Zstd as u8];
        write_varint(&mut frame, declared);
        frame.extend_from_slice(&bomb_body);
        frame
    };
    // 3. A truncated zstd frame of the valid message.
    let mut zstd_frame = Vec::new();
    Zstd::new(1)
        .unwrap()
        .compress(&message.repeat(1), &mut zstd_frame)
        .unwrap();
    let truncated = if zstd_frame[0] == FrameFormat::Zstd as u8 {
        zstd_frame[..zstd_frame.len() - 4].to_vec()
    } else {
        // Too small to compress: a hand-made truncated header instead.
        vec![FrameFormat::Zstd as u8, 0x80]
    };
    let hostile: Vec<Vec<u8>> = vec![
        with_header(1, &unknown),
        with_header(2, &bomb(16 << 20)),
        with_header(3, &bomb(1000)),
        with_header(4, &truncated),
        // After the header, an envelope of a stream format (datagrams are independent):
        // the connection counts it.
        with_header(5, &[0x03, 1, 2, 3]),
        // The form before protocol revision 2 (an envelope without a header): the
        // connection counts it.
        raw_envelope(&message),
        // A pose packet's tag with junk after it: the pose channel refuses it.
        vec![0x80, 1, 2, 3],
    ];
    for datagram in &hostile {
        raw.conn.send_datagram(datagram.clone().into()).unwrap();
    }
    let expected = (1, 2, 1);
    let counts = |host: &Session| {
        let c = kind_stats(host, MessageKind::Datagram).counters;
        (
            c.unknown_dictionary - stats_before.unknown_dictionary,
            c.oversized - stats_before.oversized,
            c.malformed - stats_before.malformed,
        )
    };
    for _ in 0..200 {
        tick_all(&mut net.host, &mut observer);
        if counts(&net.host) == expected {
            break;
        }
    }
    assert_eq!(
        counts(&net.host),
        expected,
        "unknown dictionary, oversized, malformed"
    );
    // The stream format and the headerless datagram are counted on the connection, the
    // junk pose packet by the pose channel; none reaches the codec.
    let peers = net.host.diagnostics().peers;
    assert_eq!(peers.iter().map(|p| p.malformed).sum::<u64>(), 2);
    assert_eq!(peers.iter().map(|p| p.poses.malformed).sum::<u64>(), 1);
    assert_eq!(net.host.state_hash(), before);
    assert!(!net.host.world().is_alive(own));
    // The honest client is unaffected.
    run_changes(&mut net, &mut observer, 10, |_, _, _| {});
    converge(&mut net.host, &mut observer, CONVERGE_TICKS);
    raw.close();
}

/// A peer whose compression stream cannot be decoded (a continuation with no stream
/// started, as a desynchronised or hostile sender would send) is disconnected with the
/// reason, instead of losing every later delta frame of that stream; the other clients
/// carry on.
#[test]
fn a_broken_compression_stream_ends_the_connection() {
    use theta_net::net::framing::write_message;
    use theta_net::wire::codec::write_varint;

    let mut net = host(SessionConfig::default());
    let mut observer = vec![net.join(2, SessionConfig::default())];
    wait_joined(&mut net.host, &mut observer);
    let mut raw = RawClient::join(&net, 9);
    let mut joined = false;
    for _ in 0..200 {
        tick_all(&mut net.host, &mut observer);
        joined |= net
            .host
            .poll_events(usize::MAX)
            .iter()
            .any(|e| matches!(e, SessionEvent::PeerJoined { peer: 9 }));
        if joined {
            break;
        }
    }
    assert!(joined, "the raw client was not admitted");
    let errors_before = kind_stats(&net.host, MessageKind::DeltaFrame).counters;
    // A delta frame (kind byte 1) in a stream continuation (format 4) of 16 junk bytes.
    let mut message = vec![
        StreamKind::DeltaFrame as u8,
        FrameFormat::StreamContinue as u8,
    ];
    write_varint(&mut message, 16);
    message.extend_from_slice(&[0xA5; 16]);
    raw.runtime
        .block_on(write_message(&mut raw.send, &message))
        .unwrap();
    let mut left = None;
    for _ in 0..400 {
        tick_all(&mut net.host, &mut observer);
        for e in net.host.poll_events(usize::MAX) {
            if let SessionEvent::PeerLeft { peer: 9, reason } = e {
                left = Some(reason);
            }
        }
        if left.is_some() {
            break;
        }
    }
    assert!(
        left.is_some(),
        "the host kept the broken stream's connection"
    );
    let closed = raw.runtime.block_on(async {
        tokio::time::timeout(Duration::from_secs(5), raw.conn.closed())
            .await
            .expect("closed in time")
    });
    match closed {
        quinn::ConnectionError::ApplicationClosed(close) => {
            assert_eq!(close.error_code, 2u32.into());
            let reason = String::from_utf8_lossy(&close.reason);
            assert!(reason.contains("compression stream broken"), "{reason}");
        }
        other => panic!("closed otherwise: {other}"),
    }
    let errors = kind_stats(&net.host, MessageKind::DeltaFrame).counters;
    assert!(errors.malformed > errors_before.malformed, "{errors:?}");
    // The honest client is unaffected.
    run_changes(&mut net, &mut observer, 10, |_, _, _| {});
    converge(&mut net.host, &mut observer, CONVERGE_TICKS);
    raw.close();
}

/// A host that cannot start (a busy port) hands the world back unchanged.
#[test]
fn a_host_that_cannot_start_returns_the_world() {
    let (mut world, scene) = scene_world();
    let e = world.spawn().unwrap();
    world.set(e, scene.position, &[7u8; 12]).unwrap();
    let hash = world.state_hash();
    let busy = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let identity = HostIdentity::self_signed(&["localhost".to_owned()]).unwrap();
    let Err(error) = Session::host(
        busy.local_addr().unwrap(),
        world,
        &identity,
        JoinSecret::generate(),
        SessionConfig::default(),
    ) else {
        panic!("hosted on a taken port");
    };
    assert!(
        error.to_string().contains("cannot start the endpoint"),
        "{error}"
    );
    assert_eq!(error.world.state_hash(), hash);
    assert_eq!(error.world.get(e, scene.position), Some(&[7u8; 12][..]));
}
