//! Sessions through the C ABI, as a C host would use them: exported functions only,
//! loopback 127.0.0.1, every wait bounded by a deadline.

use std::ptr::{null, null_mut};
use std::time::{Duration, Instant};

use theta_net::ffi::*;

mod common;
use common::{last_error, ok};

const WAIT: Duration = Duration::from_secs(10);

#[track_caller]
fn fails(status: ThetaStatus, expected: ThetaStatus) -> String {
    assert_eq!(status, expected, "{}", last_error());
    last_error()
}

struct Components {
    position: u32,
    name: u32,
}

/// A world with the test's component types registered.
fn new_world() -> (ThetaWorld, Components) {
    let mut world = ThetaWorld { id: 0 };
    let (mut position, mut name) = (0, 0);
    // SAFETY: valid out-pointers and names.
    unsafe {
        ok(theta_world_new(null(), &mut world));
        ok(theta_world_register_fixed(
            world,
            b"test.Position".as_ptr(),
            13,
            12,
            &mut position,
        ));
        ok(theta_world_register_variable(
            world,
            b"test.Name".as_ptr(),
            9,
            32,
            &mut name,
        ));
    }
    (world, Components { position, name })
}

fn host_session(world: ThetaWorld) -> ThetaSession {
    host_with_config(world, null())
}

fn fingerprint(session: ThetaSession) -> [u8; THETA_FINGERPRINT_LEN] {
    let mut out = [0u8; THETA_FINGERPRINT_LEN];
    // SAFETY: 32 writable bytes.
    ok(unsafe { theta_session_fingerprint(session, out.as_mut_ptr()) });
    out
}

fn port(session: ThetaSession) -> u16 {
    let mut port = 0;
    // SAFETY: valid out-pointer.
    ok(unsafe { theta_session_local_port(session, &mut port) });
    port
}

fn mint(host: ThetaSession, peer: u16) -> String {
    let mut len = 0usize;
    // SAFETY: asking for the length with a NULL buffer of capacity 0.
    fails(
        unsafe { theta_session_mint_token(host, peer, 60, null_mut(), 0, &mut len) },
        ThetaStatus::BufferTooSmall,
    );
    assert_eq!(len, THETA_JOIN_TOKEN_LEN);
    let mut buf = vec![0u8; len];
    // SAFETY: buf has len writable bytes.
    ok(unsafe { theta_session_mint_token(host, peer, 60, buf.as_mut_ptr(), buf.len(), &mut len) });
    assert_eq!(len, THETA_JOIN_TOKEN_LEN);
    String::from_utf8(buf).unwrap()
}

fn join(
    port: u16,
    fingerprint: &[u8; THETA_FINGERPRINT_LEN],
    token: &str,
    registry: ThetaWorld,
) -> ThetaSession {
    let addr = format!("127.0.0.1:{port}");
    let mut session = ThetaSession { id: 0 };
    // SAFETY: valid byte ranges and out-pointer; NULL config.
    ok(unsafe {
        theta_session_join(
            addr.as_ptr(),
            addr.len(),
            fingerprint.as_ptr(),
            token.as_ptr(),
            token.len(),
            registry,
            null(),
            &mut session,
        )
    });
    session
}

/// An event copied out of the C struct.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Event {
    kind: u8,
    entity: u64,
    component: u32,
    peer: u16,
    tick: u64,
    data: Vec<u8>,
    cause: u8,
}

impl Event {
    fn text(&self) -> String {
        String::from_utf8(self.data.clone()).unwrap()
    }
}

/// Drains a session's events, in small batches to exercise the capacity.
fn poll(session: ThetaSession) -> Vec<Event> {
    let mut all = Vec::new();
    loop {
        let zeroed = ThetaSessionEvent::default();
        let mut batch = [zeroed; 4];
        let mut count = 0usize;
        // SAFETY: batch has 4 writable events; data is copied before the next poll.
        unsafe {
            ok(theta_session_poll_events(
                session,
                batch.as_mut_ptr(),
                batch.len(),
                &mut count,
            ));
            for e in &batch[..count] {
                let data = if e.data_len == 0 {
                    assert!(e.data.is_null());
                    Vec::new()
                } else {
                    std::slice::from_raw_parts(e.data, e.data_len).to_vec()
                };
                if e.kind != ThetaSessionEventKind::Disconnected as u8 {
                    assert_eq!(e.cause, 0);
                }
                all.push(Event {
                    cause: e.cause,
                    kind: e.kind,
                    entity: e.entity,
                    component: e.component,
                    peer: e.peer,
                    tick: e.tick,
                    data,
                });
            }
        }
        if count < batch.len() {
            return all;
        }
    }
}

fn tick(sessions: &[ThetaSession]) {
    for &s in sessions {
        ok(theta_session_tick(s));
    }
    std::thread::sleep(Duration::from_millis(2));
}

fn hash(session: ThetaSession) -> u64 {
    let mut hash = 0;
    // SAFETY: valid out-pointer.
    ok(unsafe { theta_session_state_hash(session, &mut hash) });
    hash
}

fn spawn(session: ThetaSession) -> u64 {
    let mut entity = 0;
    // SAFETY: valid out-pointer.
    ok(unsafe { theta_session_spawn(session, &mut entity) });
    entity
}

fn set(session: ThetaSession, entity: u64, component: u32, value: &[u8]) -> ThetaStatus {
    // SAFETY: value is readable; NULL out_change.
    unsafe {
        theta_session_set(
            session,
            entity,
            component,
            value.as_ptr(),
            value.len(),
            null_mut(),
        )
    }
}

fn get(session: ThetaSession, entity: u64, component: u32) -> Option<Vec<u8>> {
    let mut buf = [0u8; 64];
    let mut len = 0usize;
    // SAFETY: buf has 64 writable bytes.
    let status =
        unsafe { theta_session_get(session, entity, component, buf.as_mut_ptr(), 64, &mut len) };
    (status == ThetaStatus::Ok).then(|| buf[..len].to_vec())
}

/// Ticks host and client, collecting their events, until `done` or the deadline.
fn tick_until(
    host: ThetaSession,
    client: ThetaSession,
    events: &mut (Vec<Event>, Vec<Event>),
    what: &str,
    mut done: impl FnMut(&(Vec<Event>, Vec<Event>)) -> bool,
) -> Duration {
    let start = Instant::now();
    loop {
        tick(&[host, client]);
        events.0.extend(poll(host));
        events.1.extend(poll(client));
        if let Some(e) = events
            .1
            .iter()
            .find(|e| e.kind == ThetaSessionEventKind::Disconnected as u8)
        {
            panic!("client disconnected while waiting for {what}: {}", e.text());
        }
        if done(events) {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < WAIT,
            "{what} not within {WAIT:?}; events {events:?}"
        );
    }
}

fn text_panel(session: ThetaSession) -> String {
    let mut len = 0usize;
    // SAFETY: asking for the length with a NULL buffer of length 0.
    ok(unsafe { theta_session_diagnostics_text(session, null_mut(), 0, &mut len) });
    let mut buf = vec![0u8; len + 64];
    // SAFETY: buf has buf.len() writable bytes.
    ok(unsafe { theta_session_diagnostics_text(session, buf.as_mut_ptr(), buf.len(), &mut len) });
    assert_eq!(buf[len], 0, "NUL-terminated");
    String::from_utf8(buf[..len].to_vec()).unwrap()
}

#[test]
fn host_and_client_replicate_both_ways_through_the_c_api() {
    let (world, c) = new_world();
    let (registry, _) = new_world();
    // Before the session: an entity the late joiner gets in the snapshot.
    let mut first = 0;
    // SAFETY: valid out-pointer and value.
    unsafe {
        ok(theta_world_spawn(world, &mut first));
        ok(theta_world_set(
            world,
            first,
            c.position,
            [1u8; 12].as_ptr(),
            12,
            null_mut(),
        ));
    }
    let host = host_session(world);
    // The world moved into the session.
    let mut e = 0;
    // SAFETY: valid out-pointer.
    fails(
        unsafe { theta_world_spawn(world, &mut e) },
        ThetaStatus::InvalidHandle,
    );
    let mut peer = u16::MAX;
    // SAFETY: valid out-pointer.
    ok(unsafe { theta_session_peer(host, &mut peer) });
    assert_eq!(peer, 0, "the host is peer 0");
    assert!(
        get(host, first, c.position).is_some(),
        "the session holds the world"
    );

    let fp = fingerprint(host);
    assert_ne!(fp, [0; 32]);
    let token = mint(host, 1);
    let client = join(port(host), &fp, &token, registry);
    // The registry world is not consumed.
    ok(theta_world_free(registry));
    assert_eq!(
        fingerprint(client),
        fp,
        "a client reports the fingerprint it pins"
    );

    let mut events = (Vec::new(), Vec::new());
    let took = tick_until(host, client, &mut events, "join", |(h, c)| {
        c.iter()
            .any(|e| e.kind == ThetaSessionEventKind::Joined as u8)
            && h.iter()
                .any(|e| e.kind == ThetaSessionEventKind::PeerJoined as u8)
    });
    eprintln!("joined in {took:?}");
    let joined = events
        .1
        .iter()
        .find(|e| e.kind == ThetaSessionEventKind::Joined as u8)
        .unwrap();
    assert_eq!(joined.peer, 1);
    assert!(joined.data.is_empty());
    let peer_joined = events
        .0
        .iter()
        .find(|e| e.kind == ThetaSessionEventKind::PeerJoined as u8)
        .unwrap();
    assert_eq!(peer_joined.peer, 1);
    // SAFETY: valid out-pointer.
    ok(unsafe { theta_session_peer(client, &mut peer) });
    assert_eq!(peer, 1);

    // Host writes after the join travel as deltas.
    let second = spawn(host);
    let position = [7u8; 12];
    let mut change = 0u8;
    // SAFETY: valid value and out-pointer.
    ok(unsafe { theta_session_set(host, second, c.position, position.as_ptr(), 12, &mut change) });
    assert_eq!(change, ThetaChange::Inserted as u8);
    ok(set(host, second, c.name, b"crate"));
    tick_until(host, client, &mut events, "convergence", |_| {
        hash(client) == hash(host)
    });
    assert_eq!(get(client, second, c.name).as_deref(), Some(&b"crate"[..]));

    // The replica's events, through the C struct, with their data.
    let inserts = |entity: u64, component: u32| {
        events
            .1
            .iter()
            .filter(|e| {
                e.kind == ThetaSessionEventKind::Insert as u8
                    && e.entity == entity
                    && e.component == component
            })
            .cloned()
            .collect::<Vec<_>>()
    };
    assert_eq!(
        ThetaSessionEventKind::Insert as u8,
        ThetaEventKind::Insert as u8
    );
    let snapshot_insert = inserts(first, c.position);
    assert_eq!(snapshot_insert.len(), 1, "{events:?}");
    assert_eq!(snapshot_insert[0].data, [1u8; 12]);
    assert_eq!(snapshot_insert[0].peer, 0, "the host's entity");
    let delta_insert = inserts(second, c.position);
    assert_eq!(delta_insert.len(), 1, "{events:?}");
    assert_eq!(delta_insert[0].data, position);
    assert!(delta_insert[0].tick > 0);
    assert_eq!(inserts(second, c.name)[0].data, b"crate");
    assert!(events
        .1
        .iter()
        .any(|e| e.kind == ThetaSessionEventKind::Spawn as u8 && e.entity == second));

    // A client writes its own entity; the host applies it.
    let own = spawn(client);
    assert_eq!(own >> 48, 1, "in the client's id range");
    ok(set(client, own, c.position, &[3; 12]));
    tick_until(
        host,
        client,
        &mut events,
        "the client's entity on the host",
        |_| get(host, own, c.position).as_deref() == Some(&[3u8; 12][..]),
    );
    let mut alive = 0;
    // SAFETY: valid out-pointer.
    ok(unsafe { theta_session_is_alive(host, own, &mut alive) });
    assert_eq!(alive, 1);
    tick_until(host, client, &mut events, "convergence", |_| {
        hash(client) == hash(host)
    });

    // Neither side may write the other's entities.
    let message = fails(
        set(client, second, c.position, &[9; 12]),
        ThetaStatus::NotOwner,
    );
    assert!(message.starts_with("theta_session_set: "), "{message}");
    fails(theta_session_despawn(client, second), ThetaStatus::NotOwner);
    // SAFETY: NULL out_removed.
    fails(
        unsafe { theta_session_remove(client, first, c.position, null_mut()) },
        ThetaStatus::NotOwner,
    );
    fails(set(host, own, c.position, &[9; 12]), ThetaStatus::NotOwner);
    assert_eq!(
        get(client, second, c.position).as_deref(),
        Some(&position[..])
    );
    // Removes and despawns of one's own entities replicate.
    let mut removed = 0;
    // SAFETY: valid out-pointer.
    ok(unsafe { theta_session_remove(host, second, c.name, &mut removed) });
    assert_eq!(removed, 1);
    ok(theta_session_despawn(client, own));
    tick_until(host, client, &mut events, "removal and despawn", |_| {
        hash(client) == hash(host) && get(client, second, c.name).is_none()
    });
    // SAFETY: valid out-pointer.
    ok(unsafe { theta_session_is_alive(host, own, &mut alive) });
    assert_eq!(alive, 0);
    assert!(events
        .1
        .iter()
        .any(|e| e.kind == ThetaSessionEventKind::Remove as u8 && e.entity == second));

    // Figures.
    for (session, entities) in [(host, 2), (client, 2)] {
        let mut stats = ThetaSessionStats::default();
        // SAFETY: valid out-pointer.
        ok(unsafe { theta_session_stats(session, &mut stats) });
        assert_eq!(stats.entities, entities);
        assert!(stats.components >= 1);
        assert!(stats.tick > 0);
        assert_eq!(stats.peer_count, 1);

        let mut count = 0usize;
        // SAFETY: asking for the count with NULL and 0.
        fails(
            unsafe { theta_session_peer_stats(session, null_mut(), 0, &mut count) },
            ThetaStatus::BufferTooSmall,
        );
        assert_eq!(count, 1);
        let mut peers = [ThetaPeerStats::default(); 2];
        // SAFETY: room for 2.
        ok(unsafe { theta_session_peer_stats(session, peers.as_mut_ptr(), 2, &mut count) });
        assert_eq!(count, 1);
        let p = peers[0];
        assert_eq!(p.peer, 1);
        assert!(p.rtt_us > 0, "{p:?}");
        assert!(p.wire_bytes_sent > 0 && p.wire_bytes_received > 0, "{p:?}");
        assert!(p.packets_sent > 0 && p.packets_received > 0, "{p:?}");
        assert!(
            p.payload_bytes_sent > 0 && p.payload_bytes_received > 0,
            "{p:?}"
        );
        assert!(p.snapshot_bytes > 0, "{p:?}");
        assert!(p.datagrams_sent > 0 && p.datagram_bytes > 0, "{p:?}");
        assert!(p.datagrams_acked > 0, "{p:?}");

        let panel = text_panel(session);
        assert!(panel.starts_with("tick "), "{panel}");
        assert!(
            panel
                .lines()
                .any(|l| l.split_whitespace().next() == Some("1")),
            "no line for peer 1:\n{panel}"
        );
        // Truncated to the buffer, NUL-terminated, full length reported.
        let mut small = [0xffu8; 8];
        let mut len = 0usize;
        // SAFETY: small has 8 writable bytes.
        ok(unsafe { theta_session_diagnostics_text(session, small.as_mut_ptr(), 8, &mut len) });
        assert!(len > 8);
        assert_eq!(small[7], 0);
        assert_eq!(&small[..5], b"tick ");
    }

    // An orderly leave: the host hears of it with the reason.
    ok(theta_session_free(client));
    let deadline = Instant::now() + WAIT;
    let left = loop {
        tick(&[host]);
        if let Some(e) = poll(host)
            .into_iter()
            .find(|e| e.kind == ThetaSessionEventKind::PeerLeft as u8)
        {
            break e;
        }
        assert!(Instant::now() < deadline, "no PEER_LEFT");
    };
    assert_eq!(left.peer, 1);
    assert!(left.text().contains("client left"), "{}", left.text());
    ok(theta_session_free(host));
}

#[test]
fn null_pointers_bad_arguments_and_freed_handles_give_their_statuses() {
    let (world, c) = new_world();
    let bind = b"127.0.0.1:0";
    let mut session = ThetaSession { id: 0 };
    // SAFETY: every pointer is valid or deliberately NULL.
    unsafe {
        let message = fails(
            theta_session_host(bind.as_ptr(), 2, world, null(), 0, null(), null_mut()),
            ThetaStatus::NullPointer,
        );
        assert_eq!(message, "theta_session_host: out_session is NULL");
        fails(
            theta_session_host(null(), 5, world, null(), 0, null(), &mut session),
            ThetaStatus::NullPointer,
        );
        let message = fails(
            theta_session_host(
                b"nonsense".as_ptr(),
                8,
                world,
                null(),
                0,
                null(),
                &mut session,
            ),
            ThetaStatus::InvalidArgument,
        );
        assert!(message.contains("not an address"), "{message}");
        let message = fails(
            theta_session_host(
                bind.as_ptr(),
                bind.len(),
                world,
                b"abc".as_ptr(),
                3,
                null(),
                &mut session,
            ),
            ThetaStatus::InvalidArgument,
        );
        assert!(message.contains("secret"), "{message}");
        // A busy port: the session does not start and the world goes back to its handle.
        let busy = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = busy.local_addr().unwrap().to_string();
        let message = fails(
            theta_session_host(
                addr.as_ptr(),
                addr.len(),
                world,
                null(),
                0,
                null(),
                &mut session,
            ),
            ThetaStatus::Io,
        );
        assert!(message.contains("cannot start the endpoint"), "{message}");
        let mut alive = 0u8;
        ok(theta_world_is_alive(world, 1, &mut alive));
        drop(busy);
        fails(
            theta_session_host(
                bind.as_ptr(),
                bind.len(),
                ThetaWorld { id: 0 },
                null(),
                0,
                null(),
                &mut session,
            ),
            ThetaStatus::InvalidHandle,
        );
        assert_eq!(session.id, 0, "nothing written on failure");
        // The world survived every failure.
        let mut stats = ThetaWorldStats::default();
        ok(theta_world_stats(world, &mut stats));
        let secret = "00".repeat(32);
        let config = ThetaSessionConfig {
            idle_timeout_ms: 3000,
            keep_alive_ms: 500,
            budget_bytes_per_tick: 0,
            max_chunk_bytes: 4096,
            connect_timeout_ms: 0,
            resume_grace_ms: 0,
            ..ThetaSessionConfig::default()
        };
        ok(theta_session_host(
            bind.as_ptr(),
            bind.len(),
            world,
            secret.as_ptr(),
            secret.len(),
            &config,
            &mut session,
        ));
    }
    let host = session;
    let fp = fingerprint(host);
    let mut len = 0usize;
    let mut buf = [0u8; THETA_JOIN_TOKEN_LEN];
    // SAFETY: every pointer is valid or deliberately NULL.
    unsafe {
        fails(
            theta_session_fingerprint(host, null_mut()),
            ThetaStatus::NullPointer,
        );
        fails(
            theta_session_local_port(host, null_mut()),
            ThetaStatus::NullPointer,
        );
        fails(
            theta_session_peer(host, null_mut()),
            ThetaStatus::NullPointer,
        );
        fails(
            theta_session_state_hash(host, null_mut()),
            ThetaStatus::NullPointer,
        );
        fails(
            theta_session_spawn(host, null_mut()),
            ThetaStatus::NullPointer,
        );
        fails(
            theta_session_is_alive(host, 1, null_mut()),
            ThetaStatus::NullPointer,
        );
        fails(
            theta_session_stats(host, null_mut()),
            ThetaStatus::NullPointer,
        );
        fails(
            theta_session_poll_events(host, null_mut(), 0, null_mut()),
            ThetaStatus::NullPointer,
        );
        fails(
            theta_session_poll_events(host, null_mut(), 4, &mut len),
            ThetaStatus::NullPointer,
        );
        fails(
            theta_session_peer_stats(host, null_mut(), 1, &mut len),
            ThetaStatus::NullPointer,
        );
        fails(
            theta_session_diagnostics_text(host, null_mut(), 4, &mut len),
            ThetaStatus::NullPointer,
        );
        fails(
            theta_session_set(host, 1, c.position, null(), 12, null_mut()),
            ThetaStatus::NullPointer,
        );
        fails(
            theta_session_mint_token(host, 1, 60, buf.as_mut_ptr(), buf.len(), null_mut()),
            ThetaStatus::NullPointer,
        );
        // Mint: ttl 0, the host's own id, a small buffer.
        fails(
            theta_session_mint_token(host, 1, 0, buf.as_mut_ptr(), buf.len(), &mut len),
            ThetaStatus::InvalidArgument,
        );
        fails(
            theta_session_mint_token(host, 0, 60, buf.as_mut_ptr(), buf.len(), &mut len),
            ThetaStatus::InvalidArgument,
        );
        len = 0;
        fails(
            theta_session_mint_token(host, 1, 60, buf.as_mut_ptr(), 10, &mut len),
            ThetaStatus::BufferTooSmall,
        );
        assert_eq!(len, THETA_JOIN_TOKEN_LEN);
        // Writes: unknown component, wrong size, dead entity.
        let e = spawn(host);
        fails(
            set(host, e, 0xdead, &[0; 12]),
            ThetaStatus::UnknownComponent,
        );
        fails(set(host, e, c.position, &[0; 3]), ThetaStatus::WrongSize);
        fails(theta_session_despawn(host, e + 1), ThetaStatus::DeadEntity);
        let mut out = [0u8; 4];
        fails(
            theta_session_get(host, e, c.position, out.as_mut_ptr(), 4, &mut len),
            ThetaStatus::NotFound,
        );
    }

    // A client that has not joined: no peer id, no spawn, no minting.
    let (registry, _) = new_world();
    let addr = format!("127.0.0.1:{}", port(host));
    let token = "0".repeat(THETA_JOIN_TOKEN_LEN);
    let mut client = ThetaSession { id: 0 };
    // SAFETY: every pointer is valid or deliberately NULL.
    unsafe {
        fails(
            theta_session_join(
                addr.as_ptr(),
                addr.len(),
                null(),
                token.as_ptr(),
                token.len(),
                registry,
                null(),
                &mut client,
            ),
            ThetaStatus::NullPointer,
        );
        fails(
            theta_session_join(
                addr.as_ptr(),
                addr.len(),
                fp.as_ptr(),
                token.as_ptr(),
                token.len(),
                ThetaWorld { id: 0 },
                null(),
                &mut client,
            ),
            ThetaStatus::InvalidHandle,
        );
        fails(
            theta_session_join(
                b"127.0.0.1".as_ptr(),
                9,
                fp.as_ptr(),
                token.as_ptr(),
                token.len(),
                registry,
                null(),
                &mut client,
            ),
            ThetaStatus::InvalidArgument,
        );
        assert_eq!(client.id, 0);
    }
    let client = join(port(host), &fp, &token, registry);
    let mut peer = 0;
    let mut entity = 0;
    // SAFETY: valid out-pointers.
    unsafe {
        fails(theta_session_peer(client, &mut peer), ThetaStatus::NotFound);
        fails(
            theta_session_spawn(client, &mut entity),
            ThetaStatus::NotOwner,
        );
        fails(
            theta_session_mint_token(client, 2, 60, buf.as_mut_ptr(), buf.len(), &mut len),
            ThetaStatus::WrongRole,
        );
    }
    let mut count = 7usize;
    // SAFETY: asking for the count with NULL and 0.
    ok(unsafe { theta_session_peer_stats(client, null_mut(), 0, &mut count) });
    assert_eq!(count, 0, "no connection before joining");

    // Handles: null, freed, of another type.
    ok(theta_session_free(ThetaSession { id: 0 }));
    ok(theta_session_free(client));
    fails(theta_session_free(client), ThetaStatus::InvalidHandle);
    fails(theta_session_tick(client), ThetaStatus::InvalidHandle);
    fails(
        theta_session_tick(ThetaSession { id: 0 }),
        ThetaStatus::InvalidHandle,
    );
    fails(
        theta_session_tick(ThetaSession { id: registry.id }),
        ThetaStatus::InvalidHandle,
    );
    fails(
        theta_session_tick(ThetaSession {
            id: host.id ^ (1 << 40),
        }),
        ThetaStatus::InvalidHandle,
    );
    let mut hash = 0;
    // SAFETY: valid out-pointer.
    fails(
        unsafe { theta_session_state_hash(client, &mut hash) },
        ThetaStatus::InvalidHandle,
    );
    ok(theta_session_free(host));
    // SAFETY: valid out-pointer.
    let message = fails(
        unsafe { theta_session_state_hash(host, &mut hash) },
        ThetaStatus::InvalidHandle,
    );
    assert!(message.contains("session handle"), "{message}");
    fails(
        theta_world_free(ThetaWorld { id: host.id }),
        ThetaStatus::InvalidHandle,
    );
    ok(theta_world_free(registry));
}

/// Waits for the client's DISCONNECTED event and returns its reason and cause.
fn refusal(host: ThetaSession, client: ThetaSession) -> (String, u8) {
    let deadline = Instant::now() + WAIT;
    loop {
        tick(&[host, client]);
        for e in poll(client) {
            assert_ne!(
                e.kind,
                ThetaSessionEventKind::Joined as u8,
                "joined although it should be refused"
            );
            if e.kind == ThetaSessionEventKind::Disconnected as u8 {
                assert_eq!(e.peer, 0);
                return (e.text(), e.cause);
            }
        }
        assert!(Instant::now() < deadline, "no DISCONNECTED event");
    }
}

#[test]
fn a_refused_join_gives_a_disconnected_event_saying_why() {
    let (world, _) = new_world();
    let (registry, _) = new_world();
    let host = host_session(world);
    let fp = fingerprint(host);

    let client = join(port(host), &fp, "not-a-token", registry);
    let (reason, cause) = refusal(host, client);
    assert!(reason.contains("token"), "{reason}");
    assert_eq!(cause, ThetaDisconnectCause::Refused as u8);
    ok(theta_session_free(client));

    let wrong = [7u8; THETA_FINGERPRINT_LEN];
    let token = mint(host, 2);
    let client = join(port(host), &wrong, &token, registry);
    let (reason, cause) = refusal(host, client);
    assert!(reason.contains("fingerprint"), "{reason}");
    assert_eq!(cause, ThetaDisconnectCause::Certificate as u8);
    ok(theta_session_free(client));

    // The host never admitted either.
    tick(&[host]);
    assert!(poll(host)
        .iter()
        .all(|e| e.kind != ThetaSessionEventKind::PeerJoined as u8));
    ok(theta_session_free(host));
    ok(theta_world_free(registry));
}

/// A CA and a leaf for `name` signed by it: (ca_pem, chain_pem, key_pem).
fn ca_and_leaf(name: &str) -> (String, String, String) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "Theta Test CA");
    ca_params.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign];
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let leaf = rcgen::CertificateParams::new(vec![name.to_owned()])
        .unwrap()
        .signed_by(&leaf_key, &ca, &ca_key)
        .unwrap();
    (
        ca.pem(),
        format!("{}{}", leaf.pem(), ca.pem()),
        leaf_key.serialize_pem(),
    )
}

fn join_ca(port: u16, ca: &str, name: &str, token: &str, registry: ThetaWorld) -> ThetaSession {
    let addr = format!("127.0.0.1:{port}");
    let mut session = ThetaSession { id: 0 };
    // SAFETY: valid byte ranges and out-pointer; NULL config.
    ok(unsafe {
        theta_session_join_ca(
            addr.as_ptr(),
            addr.len(),
            ca.as_ptr(),
            ca.len(),
            name.as_ptr(),
            name.len(),
            token.as_ptr(),
            token.len(),
            registry,
            null(),
            &mut session,
        )
    });
    session
}

/// A host given its own certificate (PEM) and clients verifying it against a CA by name:
/// the right name joins, another name is refused during the handshake.
#[test]
fn a_host_certificate_verified_against_a_ca() {
    let (ca, chain, key) = ca_and_leaf("theta.test");
    let (world, _) = new_world();
    let (registry, _) = new_world();
    let bind = b"127.0.0.1:0";
    let mut host = ThetaSession { id: 0 };
    // SAFETY: valid byte ranges and out-pointer; NULL secret and config.
    ok(unsafe {
        theta_session_host_pem(
            bind.as_ptr(),
            bind.len(),
            world,
            chain.as_ptr(),
            chain.len(),
            key.as_ptr(),
            key.len(),
            null(),
            0,
            null(),
            &mut host,
        )
    });
    let client = join_ca(port(host), &ca, "theta.test", &mint(host, 1), registry);
    let mut events = (Vec::new(), Vec::new());
    tick_until(host, client, &mut events, "JOINED", |e| {
        e.1.iter()
            .any(|e| e.kind == ThetaSessionEventKind::Joined as u8)
    });
    let stranger = join_ca(port(host), &ca, "other.test", &mint(host, 2), registry);
    let (reason, cause) = refusal(host, stranger);
    assert!(reason.contains("not valid for name"), "{reason}");
    assert_eq!(cause, ThetaDisconnectCause::Certificate as u8);
    // Bad PEM is refused before anything is taken.
    let (kept, _) = new_world();
    let mut out = ThetaSession { id: 0 };
    // SAFETY: valid byte ranges and out-pointer.
    let status = unsafe {
        theta_session_host_pem(
            bind.as_ptr(),
            bind.len(),
            kept,
            b"nope".as_ptr(),
            4,
            key.as_ptr(),
            key.len(),
            null(),
            0,
            null(),
            &mut out,
        )
    };
    assert_eq!(status, ThetaStatus::Tls);
    let mut alive = 0u8;
    // SAFETY: valid out-pointer; the world was not taken.
    ok(unsafe { theta_world_is_alive(kept, 1, &mut alive) });
    for session in [client, stranger, host] {
        ok(theta_session_free(session));
    }
    ok(theta_world_free(kept));
    ok(theta_world_free(registry));
}

/// XR poses through the C ABI: the host pushes its head (an `XrPosef`-shaped struct) and a
/// controller, the client samples them; bad input is refused and stores nothing.
#[test]
fn poses_and_controllers_cross_the_c_abi() {
    let (world, _) = new_world();
    let host = host_session(world);
    let (registry, _) = new_world();
    let token = mint(host, 1);
    let client = join(port(host), &fingerprint(host), &token, registry);
    ok(theta_world_free(registry));
    let mut events = (Vec::new(), Vec::new());
    tick_until(host, client, &mut events, "the join", |e| {
        e.1.iter()
            .any(|e| e.kind == ThetaSessionEventKind::Joined as u8)
    });
    let pose = |x: f32| ThetaPosef {
        orientation: ThetaQuaternionf {
            x: 0.0,
            y: 0.0,
            z: 0.0,
            w: 2.0,
        },
        position: ThetaVector3f { x, y: 1.6, z: 0.0 },
    };
    let all_flags = 0xF;
    let mut now = 0i64;
    // SAFETY: valid out-pointer.
    ok(unsafe { theta_session_now(host, &mut now) });
    ok(theta_session_set_xr_time(host, 1_000_000_000_000));
    // SAFETY: valid pointers below.
    unsafe {
        ok(theta_session_push_pose(
            host,
            0,
            &pose(0.5),
            1_000_000_000_000,
            all_flags,
        ));
        let mut nan = pose(0.5);
        nan.position.y = f32::NAN;
        fails(
            theta_session_push_pose(host, 0, &nan, 1_000_000_000_001, all_flags),
            ThetaStatus::InvalidArgument,
        );
        fails(
            theta_session_push_pose(host, 0, &pose(0.5), 999, all_flags),
            ThetaStatus::InvalidArgument,
        );
        fails(
            theta_session_push_pose(host, 11, &pose(0.5), 1_000_000_000_001, all_flags),
            ThetaStatus::InvalidArgument,
        );
        fails(
            theta_session_push_pose(host, 0, null(), 1_000_000_000_001, all_flags),
            ThetaStatus::NullPointer,
        );
        fails(
            theta_session_push_controller(host, 1, &ThetaControllerState::default()),
            ThetaStatus::NotFound,
        );
        ok(theta_session_push_pose_velocity(
            host,
            1,
            &pose(0.2),
            1_000_000_000_000,
            all_flags,
            &ThetaVector3f {
                x: 1.0,
                y: 0.0,
                z: 0.0,
            },
            null(),
        ));
        ok(theta_session_push_controller(
            host,
            1,
            &ThetaControllerState {
                buttons: 5,
                trigger: 1.0,
                ..ThetaControllerState::default()
            },
        ));
    }
    let (mut out, mut flags, mut state) =
        (ThetaPosef::default(), 0u64, ThetaControllerState::default());
    let start = Instant::now();
    loop {
        tick(&[host, client]);
        let mut display = 0i64;
        // SAFETY: valid out-pointers.
        let status = unsafe {
            ok(theta_session_now(client, &mut display));
            theta_session_sample_pose(client, 0, 0, display, &mut out, &mut flags)
        };
        // SAFETY: valid out-pointer.
        let controller = unsafe { theta_session_sample_controller(client, 0, 1, &mut state) };
        if status == ThetaStatus::Ok && controller == ThetaStatus::Ok {
            break;
        }
        assert_eq!(status, ThetaStatus::NotFound, "{}", last_error());
        assert!(start.elapsed() < WAIT, "no pose within {WAIT:?}");
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!((out.position.x - 0.5).abs() < 0.001 && (out.orientation.w - 1.0).abs() < 1e-4);
    assert_eq!(flags, all_flags);
    assert_eq!((state.buttons, state.trigger), (5, 1.0));
    // SAFETY: valid out-pointers; NULL ones are refused.
    unsafe {
        fails(
            theta_session_sample_pose(client, 9, 0, 0, &mut out, &mut flags),
            ThetaStatus::NotFound,
        );
        fails(
            theta_session_sample_pose(client, 0, 0, 0, null_mut(), &mut flags),
            ThetaStatus::NullPointer,
        );
    }
    ok(theta_session_free(client));
    ok(theta_session_free(host));
}

fn compression(session: ThetaSession, kind: ThetaMessageKind) -> ThetaCompressionStats {
    let mut stats = ThetaCompressionStats::default();
    // SAFETY: valid out-pointer.
    ok(unsafe { theta_session_compression_stats(session, kind as u8, &mut stats) });
    stats
}

/// Training a dictionary on demand through the C ABI: refused with a reason until there
/// are samples, on a client and for a bad kind; then trained off the engine thread,
/// installed, acknowledged and used by both sides, which still converge; the figures per
/// kind and per component come out through the C structs.
#[test]
fn a_dictionary_trained_on_demand_through_the_c_api_is_used() {
    let (world, c) = new_world();
    let (registry, _) = new_world();
    let host = host_session(world);
    let client = join(port(host), &fingerprint(host), &mint(host, 1), registry);
    ok(theta_world_free(registry));
    let mut events = (Vec::new(), Vec::new());
    tick_until(host, client, &mut events, "join", |(_, c)| {
        c.iter()
            .any(|e| e.kind == ThetaSessionEventKind::Joined as u8)
    });
    let datagram = ThetaMessageKind::Datagram as u8;
    let mut id = 0u32;
    // SAFETY (every call below): valid out-pointers or NULL where allowed.
    let err = fails(
        unsafe { theta_session_train_dictionary(host, datagram, &mut id) },
        ThetaStatus::TrainingRefused,
    );
    assert!(err.contains("samples"), "{err}");
    let err = fails(
        unsafe { theta_session_train_dictionary(client, datagram, &mut id) },
        ThetaStatus::WrongRole,
    );
    assert!(err.contains("host"), "{err}");
    let err = fails(
        unsafe { theta_session_train_dictionary(host, 7, &mut id) },
        ThetaStatus::InvalidArgument,
    );
    assert!(err.contains("ThetaMessageKind"), "{err}");
    let err = fails(
        unsafe {
            theta_session_train_dictionary(host, ThetaMessageKind::SnapshotChunk as u8, null_mut())
        },
        ThetaStatus::TrainingRefused,
    );
    assert!(err.contains("not configured"), "{err}");
    let mut stats = ThetaCompressionStats::default();
    fails(
        unsafe { theta_session_compression_stats(host, 3, &mut stats) },
        ThetaStatus::InvalidArgument,
    );
    fails(
        unsafe { theta_session_compression_stats(host, datagram, null_mut()) },
        ThetaStatus::NullPointer,
    );
    assert_eq!(id, 0, "nothing written on failure");

    // Changes on both sides: datagrams to record.
    let mine: Vec<u64> = (0..20).map(|_| spawn(host)).collect();
    let theirs = spawn(client);
    for t in 0..60u32 {
        for (i, &e) in mine.iter().enumerate() {
            if (i as u32 + t).is_multiple_of(3) {
                let mut value = [0u8; 12];
                value[..4].copy_from_slice(&(t * 10 + i as u32).to_le_bytes());
                ok(set(host, e, c.position, &value));
            }
        }
        ok(set(client, theirs, c.position, &[t as u8; 12]));
        tick(&[host, client]);
    }
    ok(unsafe { theta_session_train_dictionary(host, datagram, &mut id) });
    assert!(id > 0);
    tick_until(
        host,
        client,
        &mut events,
        "the dictionary reaches the client",
        |_| {
            compression(host, ThetaMessageKind::Datagram).newest_dictionary == id
                && compression(client, ThetaMessageKind::Datagram).newest_dictionary == id
        },
    );
    for t in 0..40u32 {
        for &e in &mine[..5] {
            ok(set(host, e, c.position, &[(t % 7) as u8; 12]));
        }
        tick(&[host, client]);
    }
    tick_until(host, client, &mut events, "convergence", |_| {
        hash(host) == hash(client)
    });
    let h = compression(host, ThetaMessageKind::Datagram);
    let cl = compression(client, ThetaMessageKind::Datagram);
    assert_eq!(h.kind, datagram);
    assert_eq!((h.dictionaries_held, h.dictionaries_trained), (1, 1));
    assert!(h.samples >= 8);
    assert!(h.frames_with_dictionary > 0, "{h:?}");
    assert!(
        h.bytes_framed <= h.bytes_uncompressed + h.frames_sent,
        "{h:?}"
    );
    assert!(cl.frames_received_with_dictionary > 0, "{cl:?}");
    assert_eq!(
        cl.decode_oversized + cl.decode_unknown_dictionary + cl.decode_malformed,
        0
    );
    // Per component: the position values cost wire bytes.
    let mut count = 0usize;
    fails(
        unsafe { theta_session_component_stats(host, null_mut(), 0, &mut count) },
        ThetaStatus::BufferTooSmall,
    );
    assert!(count >= 1);
    let mut components = vec![ThetaComponentWireStats::default(); count];
    ok(unsafe {
        theta_session_component_stats(host, components.as_mut_ptr(), components.len(), &mut count)
    });
    let position = components
        .iter()
        .find(|s| s.component == c.position)
        .expect("position figures");
    assert!(
        position.value_bytes > 0 && position.wire_bytes > 0,
        "{position:?}"
    );
    let panel = text_panel(host);
    assert!(panel.contains("zstd-1+dict"), "{panel}");
    assert!(panel.contains("test.Position"), "{panel}");

    ok(theta_session_free(client));
    ok(theta_session_free(host));
    fails(
        unsafe { theta_session_train_dictionary(host, datagram, null_mut()) },
        ThetaStatus::InvalidHandle,
    );
}

/// Hosts `world` on a free loopback port with `config` (NULL: the defaults).
fn host_with_config(world: ThetaWorld, config: *const ThetaSessionConfig) -> ThetaSession {
    let bind = b"127.0.0.1:0";
    let mut session = ThetaSession { id: 0 };
    // SAFETY: valid address bytes, NULL or a valid config, NULL secret, valid out-pointer.
    ok(unsafe {
        theta_session_host(
            bind.as_ptr(),
            bind.len(),
            world,
            null(),
            0,
            config,
            &mut session,
        )
    });
    session
}

#[test]
fn a_host_with_uncompressed_datagrams_sends_raw_frames() {
    let (world, c) = new_world();
    let (registry, _) = new_world();
    let config = ThetaSessionConfig {
        datagram_codec: ThetaCodec::None as u8,
        // Would train a datagram dictionary quickly, were datagrams using one.
        train_after_samples: 8,
        delta_frame_codec: ThetaCodec::Zstd as u8,
        delta_frame_level: 19,
        ..ThetaSessionConfig::default()
    };
    let host = host_with_config(world, &config);
    let client = join(port(host), &fingerprint(host), &mint(host, 1), registry);
    ok(theta_world_free(registry));
    let mut events = (Vec::new(), Vec::new());
    tick_until(host, client, &mut events, "join", |(_, c)| {
        c.iter()
            .any(|e| e.kind == ThetaSessionEventKind::Joined as u8)
    });
    let mine: Vec<u64> = (0..20).map(|_| spawn(host)).collect();
    for t in 0..40u32 {
        for (i, &e) in mine.iter().enumerate() {
            if (i as u32 + t).is_multiple_of(3) {
                let mut value = [0u8; 12];
                value[..4].copy_from_slice(&(t * 10 + i as u32).to_le_bytes());
                ok(set(host, e, c.position, &value));
            }
        }
        tick(&[host, client]);
    }
    tick_until(host, client, &mut events, "convergence", |_| {
        hash(host) == hash(client)
    });
    let h = compression(host, ThetaMessageKind::Datagram);
    assert!(h.frames_sent > 0, "{h:?}");
    assert_eq!(
        (
            h.frames_compressed,
            h.frames_with_dictionary,
            h.samples,
            h.dictionaries_trained,
            h.dictionaries_held
        ),
        (0, 0, 0, 0, 0),
        "{h:?}"
    );
    // A raw frame is the message and one envelope byte.
    assert_eq!(
        h.bytes_framed,
        h.bytes_uncompressed + h.frames_sent,
        "{h:?}"
    );
    let cl = compression(client, ThetaMessageKind::Datagram);
    assert!(cl.frames_received > 0, "{cl:?}");
    assert_eq!(cl.frames_received_with_dictionary, 0, "{cl:?}");
    assert_eq!(
        cl.bytes_received_framed,
        cl.bytes_received_uncompressed + cl.frames_received,
        "{cl:?}"
    );
    let err = fails(
        // SAFETY: NULL out_id is allowed.
        unsafe {
            theta_session_train_dictionary(host, ThetaMessageKind::Datagram as u8, null_mut())
        },
        ThetaStatus::TrainingRefused,
    );
    assert!(err.contains("not configured"), "{err}");
    let panel = text_panel(host);
    let codec = |kind: &str| {
        let line = panel
            .lines()
            .find(|l| l.trim_start().starts_with(kind))
            .unwrap_or_else(|| panic!("no {kind} line in {panel}"));
        line.trim_start()[kind.len()..]
            .split_whitespace()
            .next()
            .unwrap()
            .to_owned()
    };
    assert_eq!(codec("datagram"), "none", "{panel}");
    assert_eq!(codec("delta frame"), "zstd-19", "{panel}");
    // Snapshot chunks kept their default codec.
    assert_eq!(codec("snapshot chunk"), "zstd-3", "{panel}");
    ok(theta_session_free(client));
    ok(theta_session_free(host));
}

#[test]
fn an_unknown_codec_or_a_level_out_of_range_is_refused_and_nothing_is_created() {
    let (world, _) = new_world();
    let bind = b"127.0.0.1:0";
    let defaults = ThetaSessionConfig::default();
    let refused = [
        (
            ThetaSessionConfig {
                datagram_codec: 4,
                ..defaults
            },
            "datagram codec 4 is not a ThetaCodec",
        ),
        (
            ThetaSessionConfig {
                delta_frame_codec: 255,
                ..defaults
            },
            "delta frame codec 255 is not a ThetaCodec",
        ),
        (
            ThetaSessionConfig {
                snapshot_chunk_codec: ThetaCodec::Zstd as u8,
                snapshot_chunk_level: 23,
                ..defaults
            },
            "snapshot chunk level 23 is outside zstd's range",
        ),
        (
            ThetaSessionConfig {
                datagram_level: i32::MIN,
                ..defaults
            },
            "datagram level -2147483648 is outside zstd's range",
        ),
        (
            ThetaSessionConfig {
                delta_frame_codec: ThetaCodec::None as u8,
                delta_frame_level: 1000,
                ..defaults
            },
            "delta frame level 1000 is outside zstd's range",
        ),
        (
            ThetaSessionConfig {
                reserved: 1,
                ..defaults
            },
            "reserved must be 0",
        ),
    ];
    for (config, expected) in &refused {
        let mut session = ThetaSession { id: 0 };
        // SAFETY: valid address bytes, config and out-pointer; NULL secret.
        let err = fails(
            unsafe {
                theta_session_host(
                    bind.as_ptr(),
                    bind.len(),
                    world,
                    null(),
                    0,
                    config,
                    &mut session,
                )
            },
            ThetaStatus::InvalidArgument,
        );
        assert!(err.contains(expected), "{err}");
        assert_eq!(session.id, 0, "nothing written on failure");
        // SAFETY: valid byte ranges and out-pointer; the token is never checked.
        let err = fails(
            unsafe {
                theta_session_join(
                    b"127.0.0.1:9".as_ptr(),
                    11,
                    [0u8; THETA_FINGERPRINT_LEN].as_ptr(),
                    b"token".as_ptr(),
                    5,
                    world,
                    config,
                    &mut session,
                )
            },
            ThetaStatus::InvalidArgument,
        );
        assert!(err.contains(expected), "{err}");
        assert_eq!(session.id, 0, "nothing written on failure");
    }
    // The world survived every refusal: it still hosts, with valid codec settings.
    let config = ThetaSessionConfig {
        snapshot_chunk_codec: ThetaCodec::ZstdDict as u8,
        snapshot_chunk_level: -5,
        datagram_codec: ThetaCodec::Zstd as u8,
        datagram_level: 22,
        train_after_samples: THETA_TRAIN_ON_DEMAND_ONLY,
        dictionary_bytes: u32::MAX,
        ..defaults
    };
    let host = host_with_config(world, &config);
    let panel = text_panel(host);
    ok(theta_session_free(host));
    assert!(!panel.is_empty());
}
