//! Resume through the C ABI (`theta_session_reconnect`), as a C engine drives it: a host
//! and a client over an in-memory custom transport (in order, lossless), the connection
//! dropped by the test with `theta_session_transport_closed`, the client resumed over a
//! new one without a snapshot; a resume past the host's grace period refused with a
//! `DISCONNECTED` event of cause `REFUSED`; a QUIC client dialling its host again on
//! reconnect (loopback); and every misuse a status. Exported functions only, every wait
//! bounded.

use std::ptr::null;
use std::time::{Duration, Instant};

use theta_net::ffi::*;

mod common;
use common::transport::{events, hash, join_custom, mint, spawn, Event, Net, WAIT};
use common::{fails, ok};

/// A world with the test's component type registered.
fn new_world() -> (ThetaWorld, u32) {
    let mut world = ThetaWorld { id: 0 };
    let mut position = 0;
    // SAFETY: valid out-pointers and names.
    unsafe {
        ok(theta_world_new(null(), &mut world));
        ok(theta_world_register_fixed(
            world,
            b"resume.Position".as_ptr(),
            15,
            12,
            &mut position,
        ));
    }
    (world, position)
}

/// A host over a custom transport keeping a dropped client's state `grace_ms` (0: the
/// default).
fn host_custom(world: ThetaWorld, grace_ms: u32) -> ThetaSession {
    let mut config = ThetaSessionConfig::default();
    // SAFETY: valid out-pointer.
    ok(unsafe { theta_session_config_init(&mut config) });
    config.resume_grace_ms = grace_ms;
    common::transport::host_custom(world, &config, std::ptr::null())
}

fn set(session: ThetaSession, entity: u64, component: u32, value: [u8; 12]) {
    ok(common::transport::set(session, entity, component, &value));
}

fn is(kind: ThetaSessionEventKind) -> impl Fn(&Event) -> bool {
    move |e| e.is(kind)
}

/// The protocol's figures of the session's one connection (a client's to its host, a
/// host's to its one client).
fn link_stats(session: ThetaSession) -> ThetaPeerStats {
    let mut stats = [ThetaPeerStats::default(); 1];
    let mut n = 0;
    // SAFETY: one writable ThetaPeerStats.
    ok(unsafe { theta_session_peer_stats(session, stats.as_mut_ptr(), 1, &mut n) });
    assert_eq!(n, 1, "one connection");
    stats[0]
}

/// Snapshot-chunk frames this session sent and received over its whole life.
fn snapshot_frames(session: ThetaSession) -> (u64, u64) {
    let mut stats = ThetaCompressionStats::default();
    // SAFETY: valid out-pointer.
    ok(unsafe {
        theta_session_compression_stats(session, ThetaMessageKind::SnapshotChunk as u8, &mut stats)
    });
    (stats.frames_sent, stats.frames_received)
}

/// The host and its one client over the test's transport (the host calls the first
/// connection `host_conn`, the client 1; each new one has the next ids).
fn loopback(host: ThetaSession, client: ThetaSession, host_conn: u64) -> Net {
    let mut net = Net::new(host);
    net.add(client, host_conn);
    net
}

/// Rounds until `done` holds of the events of (host, client) seen from now on; returns
/// them.
fn until(
    net: &mut Net,
    what: &str,
    mut done: impl FnMut(&[Event], &[Event]) -> bool,
) -> (Vec<Event>, Vec<Event>) {
    net.forget();
    net.until(what, |seen| done(&seen[0], &seen[1]));
    (net.seen[0].clone(), net.seen[1].clone())
}

#[test]
fn a_dropped_client_resumes_through_the_c_abi_without_a_snapshot() {
    let (world, position) = new_world();
    let (registry, _) = new_world();
    let host = host_custom(world, 0);
    let entities: Vec<u64> = (0..8).map(|_| spawn(host)).collect();
    for (i, &e) in entities.iter().enumerate() {
        set(host, e, position, [i as u8; 12]);
    }
    let client = join_custom(&mint(host, 1), registry);
    ok(theta_world_free(registry));
    let mut net = loopback(host, client, 100);
    let (_, joined) = until(&mut net, "the join", |_, c| {
        c.iter().any(is(ThetaSessionEventKind::Joined))
    });
    assert_eq!(
        joined
            .iter()
            .filter(|e| is(ThetaSessionEventKind::Spawn)(e))
            .count(),
        8
    );
    net.converge();
    // The join brought a snapshot: the figures a resume must leave alone.
    assert!(link_stats(host).snapshot_bytes > 0);
    assert!(link_stats(client).snapshot_bytes > 0);
    let host_snapshots = snapshot_frames(host);
    let client_snapshots = snapshot_frames(client);
    assert!(host_snapshots.0 > 0 && client_snapshots.1 > 0);
    // Connected: nothing to resume.
    let err = fails(theta_session_reconnect(client), ThetaStatus::CannotResume);
    assert!(err.contains("still up"), "{err}");

    // The connection drops: the client hears it (TIMED_OUT, worth resuming), the host
    // parks the client, and changes state meanwhile.
    net.drop_connection(0);
    let dropped = events(client);
    let disconnected = dropped
        .iter()
        .find(|e| is(ThetaSessionEventKind::Disconnected)(e))
        .unwrap_or_else(|| panic!("no DISCONNECTED: {dropped:?}"));
    assert_eq!(
        disconnected.cause,
        ThetaDisconnectCause::TimedOut as u8,
        "{disconnected:?}"
    );
    assert!(events(host).iter().any(is(ThetaSessionEventKind::PeerLeft)));
    set(host, entities[3], position, [0xAB; 12]);
    let spawned = spawn(host);
    set(host, spawned, position, [0xCD; 12]);
    ok(theta_session_tick(host));
    assert_ne!(hash(client), hash(host));

    // Resume: reconnect, then the engine opens a new connection and reports it.
    ok(theta_session_reconnect(client));
    // One resume at a time.
    fails(theta_session_reconnect(client), ThetaStatus::CannotResume);
    net.connect(0);
    let (host_events, client_events) = until(&mut net, "the resume", |_, c| {
        c.iter().any(is(ThetaSessionEventKind::Joined))
    });
    net.converge();
    let joined = client_events
        .iter()
        .find(|e| is(ThetaSessionEventKind::Joined)(e))
        .unwrap();
    assert_eq!(joined.peer, 1, "the same peer");
    assert!(host_events
        .iter()
        .any(|e| is(ThetaSessionEventKind::PeerJoined)(e) && e.peer == 1));
    // What it missed, and only that: the new entity spawns; none of the others again.
    let spawns: Vec<u64> = client_events
        .iter()
        .filter(|e| is(ThetaSessionEventKind::Spawn)(e))
        .map(|e| e.entity)
        .collect();
    assert_eq!(spawns, [spawned]);
    // No snapshot: none on the new connection, none more over the session's life.
    assert_eq!(link_stats(host).snapshot_bytes, 0);
    assert_eq!(link_stats(client).snapshot_bytes, 0);
    assert_eq!(snapshot_frames(host), host_snapshots);
    assert_eq!(snapshot_frames(client), client_snapshots);
    let mut value = [0u8; 12];
    let mut len = 0;
    // SAFETY: 12 writable bytes and an out-pointer.
    ok(unsafe {
        theta_session_get(
            client,
            entities[3],
            position,
            value.as_mut_ptr(),
            12,
            &mut len,
        )
    });
    assert_eq!((len, value), (12, [0xAB; 12]));
    // Connected again: nothing to resume.
    fails(theta_session_reconnect(client), ThetaStatus::CannotResume);

    ok(theta_session_free(client));
    ok(theta_session_free(host));
}

#[test]
fn a_resume_after_the_grace_period_is_refused_with_a_refused_disconnect() {
    let (world, position) = new_world();
    let (registry, _) = new_world();
    // The host keeps a dropped client's state 20 ms.
    let host = host_custom(world, 20);
    let e = spawn(host);
    set(host, e, position, [1; 12]);
    let client = join_custom(&mint(host, 1), registry);
    let mut net = loopback(host, client, 100);
    until(&mut net, "the join", |_, c| {
        c.iter().any(is(ThetaSessionEventKind::Joined))
    });
    net.converge();

    net.drop_connection(0);
    events(client);
    // Past the grace period; the host's tick forgets the client.
    std::thread::sleep(Duration::from_millis(60));
    ok(theta_session_tick(host));
    events(host);

    // The client cannot know: its reconnect is accepted, the host refuses the resume.
    ok(theta_session_reconnect(client));
    net.connect(0);
    let (host_events, client_events) = until(&mut net, "the refusal", |_, c| {
        c.iter().any(is(ThetaSessionEventKind::Disconnected))
    });
    let refused = client_events
        .iter()
        .find(|e| is(ThetaSessionEventKind::Disconnected)(e))
        .unwrap();
    assert_eq!(
        refused.cause,
        ThetaDisconnectCause::Refused as u8,
        "{refused:?}"
    );
    assert!(refused.text.contains("fresh token"), "{refused:?}");
    assert!(!client_events.iter().any(is(ThetaSessionEventKind::Joined)));
    assert!(
        host_events
            .iter()
            .any(is(ThetaSessionEventKind::JoinRefused)),
        "{host_events:?}"
    );
    ok(theta_session_free(client));

    // As the event says: a fresh token joins again (with a snapshot).
    let client = join_custom(&mint(host, 1), registry);
    ok(theta_world_free(registry));
    let mut net = loopback(host, client, 200);
    until(&mut net, "the new join", |_, c| {
        c.iter().any(is(ThetaSessionEventKind::Joined))
    });
    net.converge();
    assert!(link_stats(client).snapshot_bytes > 0);
    ok(theta_session_free(client));
    ok(theta_session_free(host));
}

#[test]
fn reconnect_misuse_is_a_status() {
    let (world, _) = new_world();
    let (registry, _) = new_world();
    // No session: a NULL (0) handle and a forged one.
    for id in [0, 0xDEAD_BEEF] {
        let err = fails(
            theta_session_reconnect(ThetaSession { id }),
            ThetaStatus::InvalidHandle,
        );
        assert!(!err.is_empty());
    }
    // A host.
    let host = host_custom(world, 0);
    let err = fails(theta_session_reconnect(host), ThetaStatus::WrongRole);
    assert!(err.contains("client"), "{err}");
    // Never admitted: before any connection, and after its only one ended unanswered.
    let client = join_custom(&mint(host, 1), registry);
    ok(theta_world_free(registry));
    let err = fails(theta_session_reconnect(client), ThetaStatus::CannotResume);
    assert!(err.contains("never admitted"), "{err}");
    ok(theta_session_transport_connected(client, 1));
    // SAFETY: a valid byte range.
    ok(unsafe { theta_session_transport_closed(client, 1, 0, b"gone".as_ptr(), 4) });
    fails(theta_session_reconnect(client), ThetaStatus::CannotResume);
    // Freed: the handle is gone, and stays gone.
    ok(theta_session_free(client));
    fails(theta_session_reconnect(client), ThetaStatus::InvalidHandle);
    ok(theta_session_free(host));
    fails(theta_session_reconnect(host), ThetaStatus::InvalidHandle);
}

/// Ticks `sessions` until `session` has an event of `kind`; returns it.
fn wait_for(
    sessions: &[ThetaSession],
    session: ThetaSession,
    kind: ThetaSessionEventKind,
) -> Event {
    let deadline = Instant::now() + WAIT;
    loop {
        for &s in sessions {
            ok(theta_session_tick(s));
            let polled = events(s);
            if s.id == session.id {
                if let Some(e) = polled.into_iter().find(|e| is(kind)(e)) {
                    return e;
                }
            }
        }
        assert!(Instant::now() < deadline, "no {kind:?} within {WAIT:?}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn a_quic_client_redials_its_host_on_reconnect() {
    let (world, _) = new_world();
    let (registry, _) = new_world();
    let bind = "127.0.0.1:0";
    let mut host = ThetaSession { id: 0 };
    // SAFETY: valid byte range and out-pointer; NULL secret (generated) and config.
    ok(unsafe {
        theta_session_host(
            bind.as_ptr(),
            bind.len(),
            world,
            null(),
            0,
            null(),
            &mut host,
        )
    });
    let mut port = 0;
    let mut fingerprint = [0u8; THETA_FINGERPRINT_LEN];
    // SAFETY: valid out-pointers.
    unsafe {
        ok(theta_session_local_port(host, &mut port));
        ok(theta_session_fingerprint(host, fingerprint.as_mut_ptr()));
    }
    let token = mint(host, 1);
    let mut config = ThetaSessionConfig::default();
    // SAFETY: valid out-pointer.
    ok(unsafe { theta_session_config_init(&mut config) });
    config.connect_timeout_ms = 500;
    let addr = format!("127.0.0.1:{port}");
    let mut client = ThetaSession { id: 0 };
    // SAFETY: valid byte ranges, config and out-pointer.
    ok(unsafe {
        theta_session_join(
            addr.as_ptr(),
            addr.len(),
            fingerprint.as_ptr(),
            token.as_ptr(),
            token.len(),
            registry,
            &config,
            &mut client,
        )
    });
    ok(theta_world_free(registry));
    wait_for(&[host, client], client, ThetaSessionEventKind::Joined);
    fails(theta_session_reconnect(host), ThetaStatus::WrongRole);
    fails(theta_session_reconnect(client), ThetaStatus::CannotResume);

    // The host goes; the client hears it, then dials the address again on reconnect.
    ok(theta_session_free(host));
    let gone = wait_for(&[client], client, ThetaSessionEventKind::Disconnected);
    assert_eq!(
        gone.cause,
        ThetaDisconnectCause::HostClosed as u8,
        "{gone:?}"
    );
    ok(theta_session_reconnect(client));
    fails(theta_session_reconnect(client), ThetaStatus::CannotResume);
    // Nobody answers there now: the redial ends in its own DISCONNECTED.
    let redial = wait_for(&[client], client, ThetaSessionEventKind::Disconnected);
    assert!(
        [
            ThetaDisconnectCause::Unreachable,
            ThetaDisconnectCause::TimedOut
        ]
        .iter()
        .any(|&c| c as u8 == redial.cause),
        "{redial:?}"
    );
    // Ended: it may try again.
    ok(theta_session_reconnect(client));
    ok(theta_session_free(client));
}
