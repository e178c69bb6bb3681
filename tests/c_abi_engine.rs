//! What the C ABI gives engines beyond the basic calls, driven as a C host would: a batch
//! set on a session, a close that does not block and a wait for closes to finish, a join by
//! host name resolved off the caller's thread, config structs that carry their size.
//! Loopback 127.0.0.1 only, every wait bounded.

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

/// A world with `test.Position` (12 bytes) and `test.Name` (variable, up to 32).
fn new_world() -> (ThetaWorld, u32, u32) {
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
    (world, position, name)
}

fn host(world: ThetaWorld) -> ThetaSession {
    let bind = b"127.0.0.1:0";
    let mut session = ThetaSession { id: 0 };
    // SAFETY: valid address bytes and out-pointer; NULL secret and config.
    ok(unsafe {
        theta_session_host(
            bind.as_ptr(),
            bind.len(),
            world,
            null(),
            0,
            null(),
            &mut session,
        )
    });
    session
}

fn port(session: ThetaSession) -> u16 {
    let mut port = 0;
    // SAFETY: valid out-pointer.
    ok(unsafe { theta_session_local_port(session, &mut port) });
    port
}

fn fingerprint(session: ThetaSession) -> [u8; THETA_FINGERPRINT_LEN] {
    let mut out = [0u8; THETA_FINGERPRINT_LEN];
    // SAFETY: 32 writable bytes.
    ok(unsafe { theta_session_fingerprint(session, out.as_mut_ptr()) });
    out
}

fn mint(host: ThetaSession, peer: u16) -> Vec<u8> {
    let mut buf = vec![0u8; THETA_JOIN_TOKEN_LEN];
    let mut len = 0;
    // SAFETY: buf has its length of writable bytes.
    ok(unsafe { theta_session_mint_token(host, peer, 60, buf.as_mut_ptr(), buf.len(), &mut len) });
    buf
}

/// Joins `addr` with the host's fingerprint and a token for `peer`.
fn join_at(host: ThetaSession, addr: &str, peer: u16, registry: ThetaWorld) -> ThetaSession {
    let (pin, token) = (fingerprint(host), mint(host, peer));
    let mut session = ThetaSession { id: 0 };
    // SAFETY: valid byte ranges and out-pointer; NULL config.
    ok(unsafe {
        theta_session_join(
            addr.as_ptr(),
            addr.len(),
            pin.as_ptr(),
            token.as_ptr(),
            token.len(),
            registry,
            null(),
            &mut session,
        )
    });
    session
}

/// Kinds and texts of the events polled from `session`.
fn poll(session: ThetaSession) -> Vec<(u8, u8, String)> {
    let zeroed = ThetaSessionEvent::default();
    let mut all = Vec::new();
    loop {
        let mut batch = [zeroed; 8];
        let mut count = 0;
        // SAFETY: 8 writable events; their data is read before the next poll.
        ok(unsafe { theta_session_poll_events(session, batch.as_mut_ptr(), 8, &mut count) });
        for e in &batch[..count] {
            let text = if e.data_len == 0 {
                String::new()
            } else {
                // SAFETY: valid until the next poll.
                let bytes = unsafe { std::slice::from_raw_parts(e.data, e.data_len) };
                String::from_utf8_lossy(bytes).into_owned()
            };
            all.push((e.kind, e.cause, text));
        }
        if count < batch.len() {
            return all;
        }
    }
}

fn hash(session: ThetaSession) -> u64 {
    let mut hash = 0;
    // SAFETY: valid out-pointer.
    ok(unsafe { theta_session_state_hash(session, &mut hash) });
    hash
}

/// Ticks the sessions until `done` holds of the events polled so far, at most `WAIT`.
fn tick_until(
    sessions: &[ThetaSession],
    what: &str,
    mut done: impl FnMut(&[Vec<(u8, u8, String)>]) -> bool,
) -> Vec<Vec<(u8, u8, String)>> {
    let mut events = vec![Vec::new(); sessions.len()];
    let deadline = Instant::now() + WAIT;
    loop {
        for (i, &s) in sessions.iter().enumerate() {
            ok(theta_session_tick(s));
            events[i].extend(poll(s));
        }
        if done(&events) {
            return events;
        }
        assert!(Instant::now() < deadline, "no {what} within {WAIT:?}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn has(events: &[(u8, u8, String)], kind: ThetaSessionEventKind) -> bool {
    events.iter().any(|e| e.0 == kind as u8)
}

fn spawn(session: ThetaSession) -> u64 {
    let mut entity = 0;
    // SAFETY: valid out-pointer.
    ok(unsafe { theta_session_spawn(session, &mut entity) });
    entity
}

fn get(session: ThetaSession, entity: u64, component: u32) -> Option<Vec<u8>> {
    let mut buf = [0u8; 64];
    let mut len = 0;
    // SAFETY: 64 writable bytes and a valid out-pointer.
    let status =
        unsafe { theta_session_get(session, entity, component, buf.as_mut_ptr(), 64, &mut len) };
    (status == ThetaStatus::Ok).then(|| buf[..len].to_vec())
}

/// An engine-side struct holding a position at offset 0 and something else after it.
#[repr(C)]
#[derive(Clone, Copy)]
struct Body {
    position: [u8; 12],
    mass: u32,
}

fn batch(
    session: ThetaSession,
    component: u32,
    entities: &[u64],
    bodies: &[Body],
) -> (ThetaStatus, ThetaBatchResult) {
    assert_eq!(entities.len(), bodies.len());
    let mut result = ThetaBatchResult::default();
    // SAFETY: `count` entities and `count` structs of `stride` bytes; a valid out-pointer.
    let status = unsafe {
        theta_session_set_batch(
            session,
            component,
            entities.as_ptr(),
            bodies.as_ptr().cast(),
            size_of::<Body>(),
            entities.len(),
            &mut result,
        )
    };
    (status, result)
}

fn body(n: u8) -> Body {
    Body {
        position: [n; 12],
        mass: 99,
    }
}

#[test]
fn a_batch_set_on_a_session_writes_every_value_and_reaches_the_client() {
    let (world, position, _) = new_world();
    let (registry, _, _) = new_world();
    let h = host(world);
    let client = join_at(h, &format!("127.0.0.1:{}", port(h)), 1, registry);
    ok(theta_world_free(registry));
    tick_until(&[h, client], "join", |e| {
        has(&e[1], ThetaSessionEventKind::Joined)
    });
    let entities: Vec<u64> = (0..100).map(|_| spawn(h)).collect();
    let bodies: Vec<Body> = (0..100).map(|i| body(i as u8)).collect();
    let (status, result) = batch(h, position, &entities, &bodies);
    ok(status);
    assert_eq!(
        (result.inserted, result.updated, result.unchanged),
        (100, 0, 0)
    );
    assert_eq!(get(h, entities[7], position), Some(vec![7; 12]));
    // Half the values change: the others are identical bytes, not a change.
    let bodies: Vec<Body> = (0..100)
        .map(|i| body(if i % 2 == 0 { i as u8 + 1 } else { i as u8 }))
        .collect();
    let (status, result) = batch(h, position, &entities, &bodies);
    ok(status);
    assert_eq!(
        (result.inserted, result.updated, result.unchanged),
        (0, 50, 50)
    );
    tick_until(&[h, client], "convergence", |_| hash(h) == hash(client));
    assert_eq!(get(client, entities[8], position), Some(vec![9; 12]));
    ok(theta_session_free(client));
    ok(theta_session_free(h));
}

#[test]
fn a_refused_batch_changes_nothing() {
    let (world, position, name) = new_world();
    let (registry, _, _) = new_world();
    let h = host(world);
    let hosts = spawn(h);
    let client = join_at(h, &format!("127.0.0.1:{}", port(h)), 1, registry);
    ok(theta_world_free(registry));
    tick_until(&[h, client], "join and snapshot", |e| {
        has(&e[1], ThetaSessionEventKind::Joined) && hash(h) == hash(client)
    });
    // The client owns two entities, one with a value already.
    let (a, b) = (spawn(client), spawn(client));
    let (status, _) = batch(client, position, &[a], &[body(1)]);
    ok(status);
    let before = hash(client);
    // The host's entity comes last: the writes to a and b are put back.
    let (status, _) = batch(
        client,
        position,
        &[a, b, hosts],
        &[body(5), body(6), body(7)],
    );
    let err = fails(status, ThetaStatus::NotOwner);
    assert!(err.contains("theta_session_set_batch"), "{err}");
    assert_eq!(get(client, a, position), Some(vec![1; 12]), "put back");
    assert_eq!(get(client, b, position), None, "removed again");
    assert_eq!(hash(client), before);
    // Checked before anything is written.
    let (status, _) = batch(client, position, &[a, 0xdead], &[body(5), body(6)]);
    fails(status, ThetaStatus::DeadEntity);
    let (status, _) = batch(client, 12345, &[a], &[body(5)]);
    fails(status, ThetaStatus::UnknownComponent);
    let (status, _) = batch(client, name, &[a], &[body(5)]);
    let err = fails(status, ThetaStatus::InvalidArgument);
    assert!(err.contains("fixed"), "{err}");
    let too_small = [0u8; 24];
    // SAFETY: 24 readable bytes: 2 values at stride 8 would need 20; refused first anyway.
    let status = unsafe {
        theta_session_set_batch(
            client,
            position,
            [a, b].as_ptr(),
            too_small.as_ptr(),
            8,
            2,
            null_mut(),
        )
    };
    fails(status, ThetaStatus::WrongSize);
    // SAFETY: NULL entities with a count: refused before any read.
    let status = unsafe {
        theta_session_set_batch(
            client,
            position,
            null(),
            too_small.as_ptr(),
            12,
            2,
            null_mut(),
        )
    };
    fails(status, ThetaStatus::NullPointer);
    assert_eq!(hash(client), before);
    // SAFETY: an empty batch reads nothing.
    ok(unsafe { theta_session_set_batch(client, position, null(), null(), 0, 0, null_mut()) });
    ok(theta_session_free(client));
    ok(theta_session_free(h));
    let (status, _) = batch(h, position, &[hosts], &[body(1)]);
    fails(status, ThetaStatus::InvalidHandle);
}

#[test]
fn close_frees_the_handle_at_once_and_the_peers_hear_the_goodbye() {
    let (world, _, _) = new_world();
    let (registry, _, _) = new_world();
    let h = host(world);
    let first = join_at(h, &format!("127.0.0.1:{}", port(h)), 1, registry);
    let second = join_at(h, &format!("127.0.0.1:{}", port(h)), 2, registry);
    ok(theta_world_free(registry));
    tick_until(&[h, first, second], "joins", |e| {
        has(&e[1], ThetaSessionEventKind::Joined) && has(&e[2], ThetaSessionEventKind::Joined)
    });
    ok(theta_session_close(first));
    fails(theta_session_tick(first), ThetaStatus::InvalidHandle);
    fails(theta_session_close(first), ThetaStatus::InvalidHandle);
    ok(theta_session_close(ThetaSession { id: 0 }));
    let events = tick_until(&[h], "the first client's goodbye", |e| {
        e[0].iter().any(|(k, _, text)| {
            *k == ThetaSessionEventKind::PeerLeft as u8 && text.contains("left")
        })
    });
    assert!(!events[0].is_empty());
    ok(theta_session_close(h));
    let events = tick_until(&[second], "the host's goodbye", |e| {
        has(&e[0], ThetaSessionEventKind::Disconnected)
    });
    let (_, cause, text) = events[0]
        .iter()
        .find(|e| e.0 == ThetaSessionEventKind::Disconnected as u8)
        .unwrap();
    assert_eq!(*cause, ThetaDisconnectCause::HostClosed as u8, "{text}");
    ok(theta_session_close(second));
    let mut pending = usize::MAX;
    // SAFETY: a valid out-pointer.
    ok(unsafe { theta_session_wait_closed(10_000, &mut pending) });
    assert_eq!(pending, 0, "every close finished within 10 s");
    // SAFETY: NULL is allowed.
    ok(unsafe { theta_session_wait_closed(0, null_mut()) });
}

#[test]
fn a_join_by_host_name_returns_at_once_and_joins_once_resolved() {
    let (world, position, _) = new_world();
    let (registry, _, _) = new_world();
    let h = host(world);
    let e = spawn(h);
    // SAFETY: 12 readable bytes.
    ok(unsafe { theta_session_set(h, e, position, [3u8; 12].as_ptr(), 12, null_mut()) });
    let client = join_at(h, &format!("localhost:{}", port(h)), 1, registry);
    ok(theta_world_free(registry));
    // Usable at once, whether or not the name is resolved yet.
    let mut stats = ThetaSessionStats::default();
    // SAFETY: a valid out-pointer.
    ok(unsafe { theta_session_stats(client, &mut stats) });
    let events = tick_until(&[h, client], "join by name", |e| {
        has(&e[1], ThetaSessionEventKind::Joined) || has(&e[1], ThetaSessionEventKind::Disconnected)
    });
    assert!(
        has(&events[1], ThetaSessionEventKind::Joined),
        "{:?}",
        events[1]
    );
    tick_until(&[h, client], "convergence", |_| hash(h) == hash(client));
    assert_eq!(get(client, e, position), Some(vec![3; 12]));
    ok(theta_session_close(client));
    ok(theta_session_close(h));
    let mut pending = usize::MAX;
    // SAFETY: a valid out-pointer.
    ok(unsafe { theta_session_wait_closed(10_000, &mut pending) });
    assert_eq!(pending, 0);
}

#[test]
fn a_host_name_that_does_not_resolve_ends_in_a_disconnected_event() {
    let (registry, position, _) = new_world();
    // A 64-byte label is no DNS name: the lookup fails on this machine, no query leaves it.
    let addr = format!("{}.invalid:7000", "a".repeat(64));
    let mut session = ThetaSession { id: 0 };
    let token = [b'0'; THETA_JOIN_TOKEN_LEN];
    // SAFETY: valid byte ranges and out-pointer; NULL config.
    ok(unsafe {
        theta_session_join(
            addr.as_ptr(),
            addr.len(),
            [0u8; THETA_FINGERPRINT_LEN].as_ptr(),
            token.as_ptr(),
            token.len(),
            registry,
            null(),
            &mut session,
        )
    });
    ok(theta_world_free(registry));
    let events = tick_until(&[session], "the failed lookup", |e| {
        has(&e[0], ThetaSessionEventKind::Disconnected)
    });
    let (_, cause, text) = &events[0][0];
    assert_eq!(*cause, ThetaDisconnectCause::Unreachable as u8);
    assert!(text.contains("cannot resolve"), "{text}");
    // Inert from now on: calls that need a connection say so, the others work.
    let mut entity = 0;
    // SAFETY: a valid out-pointer.
    let err = fails(
        unsafe { theta_session_spawn(session, &mut entity) },
        ThetaStatus::NotConnected,
    );
    assert!(err.contains("did not resolve"), "{err}");
    // SAFETY: 12 readable bytes.
    fails(
        unsafe {
            theta_session_set(
                session,
                1 << 48,
                position,
                [0u8; 12].as_ptr(),
                12,
                null_mut(),
            )
        },
        ThetaStatus::NotConnected,
    );
    let mut stats = ThetaSessionStats::default();
    // SAFETY: a valid out-pointer.
    ok(unsafe { theta_session_stats(session, &mut stats) });
    assert_eq!(stats.peer_count, 0);
    let mut count = 9;
    // SAFETY: NULL with capacity 0 asks for the count.
    ok(unsafe { theta_session_peer_stats(session, null_mut(), 0, &mut count) });
    assert_eq!(count, 0);
    ok(theta_session_tick(session));
    assert!(poll(session).is_empty(), "the event came once");
    ok(theta_session_free(session));
}

#[test]
fn config_structs_carry_their_size() {
    let mut config = ThetaSessionConfig {
        struct_size: 0,
        idle_timeout_ms: 7,
        ..ThetaSessionConfig::default()
    };
    // SAFETY: a valid out-pointer.
    ok(unsafe { theta_session_config_init(&mut config) });
    assert_eq!(config.struct_size as usize, size_of::<ThetaSessionConfig>());
    assert_eq!(config.idle_timeout_ms, 0, "every other field zeroed");
    let (world, _, _) = new_world();
    let bind = b"127.0.0.1:0";
    let mut session = ThetaSession { id: 0 };
    for (config, expected) in [
        (
            ThetaSessionConfig {
                struct_size: 0,
                ..config
            },
            "struct_size is 0",
        ),
        (
            ThetaSessionConfig {
                struct_size: 8,
                ..config
            },
            "struct_size 8 is not the size",
        ),
        (
            ThetaSessionConfig {
                congestion: 9,
                ..config
            },
            "not a ThetaCongestion",
        ),
    ] {
        // SAFETY: valid address bytes, config and out-pointer.
        let err = fails(
            unsafe {
                theta_session_host(
                    bind.as_ptr(),
                    bind.len(),
                    world,
                    null(),
                    0,
                    &config,
                    &mut session,
                )
            },
            ThetaStatus::InvalidArgument,
        );
        assert!(err.contains(expected), "{err}");
    }
    let cubic = ThetaSessionConfig {
        congestion: ThetaCongestion::Cubic as u8,
        max_pending_admissions: 4,
        admission_timeout_ms: 500,
        ..config
    };
    // SAFETY: as above.
    ok(unsafe {
        theta_session_host(
            bind.as_ptr(),
            bind.len(),
            world,
            null(),
            0,
            &cubic,
            &mut session,
        )
    });
    ok(theta_session_free(session));

    let mut world = ThetaWorld { id: 0 };
    for (config, expected) in [
        (
            ThetaWorldConfig {
                struct_size: 0,
                ..ThetaWorldConfig::default()
            },
            "struct_size is 0",
        ),
        (
            ThetaWorldConfig {
                reserved: 1,
                ..ThetaWorldConfig::default()
            },
            "reserved must be 0",
        ),
    ] {
        // SAFETY: a valid config and out-pointer.
        let err = fails(
            unsafe { theta_world_new(&config, &mut world) },
            ThetaStatus::InvalidArgument,
        );
        assert!(err.contains(expected), "{err}");
    }
    let config = ThetaWorldConfig {
        local_peer: 3,
        ..ThetaWorldConfig::default()
    };
    // SAFETY: a valid config and out-pointers.
    unsafe {
        ok(theta_world_new(&config, &mut world));
        let mut entity = 0;
        ok(theta_world_spawn(world, &mut entity));
        assert_eq!(entity >> 48, 3, "spawned in peer 3's range");
    }
    ok(theta_world_free(world));
}
