//! Sessions over a custom transport through the C ABI, as a C engine would drive them:
//! exported functions only, an in-memory transport with seeded loss, duplication and
//! reordering of unreliable messages, every wait bounded. Then every bad input of the
//! transport calls, and the status of each session error.

use std::ptr::{null, null_mut};
use std::time::{Duration, Instant};

use theta_net::ffi::*;

mod common;
use common::transport::{drain, events, hash, join_custom, mint};
use common::{fails, ok};

const WAIT: Duration = Duration::from_secs(30);

/// A world with the test's component type registered.
fn new_world() -> (ThetaWorld, u32) {
    let mut world = ThetaWorld { id: 0 };
    let mut position = 0;
    // SAFETY: valid out-pointers and names.
    unsafe {
        ok(theta_world_new(null(), &mut world));
        ok(theta_world_register_fixed(
            world,
            b"c.Position".as_ptr(),
            10,
            12,
            &mut position,
        ));
    }
    (world, position)
}

fn host_custom(world: ThetaWorld, transport: *const ThetaTransportConfig) -> ThetaSession {
    common::transport::host_custom(world, null(), transport)
}

fn receive(session: ThetaSession, conn: u64, channel: u8, bytes: &[u8]) -> ThetaStatus {
    // SAFETY: a valid byte range.
    unsafe { theta_session_transport_receive(session, conn, channel, bytes.as_ptr(), bytes.len()) }
}

/// The kinds of every event `session` has now.
fn kinds(session: ThetaSession) -> Vec<u8> {
    events(session).iter().map(|e| e.kind).collect()
}

/// SplitMix64.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// A message on its way: to the host (`client` None) or a client, due at a round.
struct Message {
    due: u64,
    client: Option<usize>,
    conn: u64,
    channel: u8,
    bytes: Vec<u8>,
}

#[test]
fn a_host_and_two_clients_converge_over_a_lossy_transport_through_the_c_abi() {
    let (world, position) = new_world();
    let (registry, _) = new_world();
    let mut config = ThetaTransportConfig::default();
    // SAFETY: valid out-pointer.
    ok(unsafe { theta_transport_config_init(&mut config) });
    assert_eq!(
        config.struct_size as usize,
        size_of::<ThetaTransportConfig>()
    );
    config.max_unreliable_bytes = 1000;
    let host = host_custom(world, &config);
    let clients: Vec<ThetaSession> = (1..=2)
        .map(|peer| join_custom(&mint(host, peer), registry))
        .collect();
    ok(theta_world_free(registry));
    // Client i's connection: 100 + i on the host, 7 on the client.
    for (i, &client) in clients.iter().enumerate() {
        ok(theta_session_transport_connected(host, 100 + i as u64));
        ok(theta_session_transport_connected(client, 7));
        ok(theta_session_transport_set_rtt(client, 7, 20_000));
    }
    let mut entities = Vec::new();
    for _ in 0..20 {
        let mut e = 0;
        // SAFETY: valid out-pointer.
        ok(unsafe { theta_session_spawn(host, &mut e) });
        entities.push(e);
    }
    let mut rng = Rng(42);
    let mut in_flight: Vec<Message> = Vec::new();
    let mut reliable_due = [[0u64; 2]; 2];
    let (reliable, unreliable) = (ThetaChannel::Reliable as u8, ThetaChannel::Unreliable as u8);
    let deadline = Instant::now() + WAIT;
    let mut round = 0u64;
    let mut joined = [false; 2];
    let mut writes_stop = None;
    loop {
        assert!(Instant::now() < deadline, "no convergence within {WAIT:?}");
        if joined.iter().all(|&j| j) && writes_stop.is_none() {
            writes_stop = Some(round + 60);
        }
        if writes_stop.is_some_and(|stop| round < stop) {
            for &e in entities.iter().step_by(2) {
                let v = rng.next().to_le_bytes();
                let value = [v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7], 1, 2, 3, 4];
                // SAFETY: 12 readable bytes.
                ok(unsafe { theta_session_set(host, e, position, value.as_ptr(), 12, null_mut()) });
            }
        }
        if writes_stop.is_some_and(|stop| round > stop)
            && clients.iter().all(|&c| hash(c) == hash(host))
        {
            break;
        }
        // Every session ticks; its outputs go on the network.
        ok(theta_session_tick(host));
        for &client in &clients {
            ok(theta_session_tick(client));
        }
        let sessions: Vec<(ThetaSession, Option<usize>)> = std::iter::once((host, None))
            .chain(clients.iter().enumerate().map(|(i, &c)| (c, Some(i))))
            .collect();
        for &(session, from) in &sessions {
            for (out, bytes) in drain(session) {
                assert_eq!(out.kind, ThetaTransportOutputKind::Send as u8, "{out:?}");
                let (client, conn, i) = match from {
                    None => (
                        Some((out.conn - 100) as usize),
                        7,
                        (out.conn - 100) as usize,
                    ),
                    Some(i) => (None, 100 + i as u64, i),
                };
                let way = usize::from(from.is_none());
                if out.channel == unreliable {
                    assert!(bytes.len() <= 1000, "over the stated maximum");
                    if rng.next().is_multiple_of(5) {
                        continue; // 20 % lost
                    }
                    let copies = if rng.next().is_multiple_of(10) { 2 } else { 1 };
                    for _ in 0..copies {
                        in_flight.push(Message {
                            due: round + rng.next() % 4,
                            client,
                            conn,
                            channel: unreliable,
                            bytes: bytes.clone(),
                        });
                    }
                } else {
                    let due = (round + rng.next() % 3).max(reliable_due[i][way]);
                    reliable_due[i][way] = due;
                    in_flight.push(Message {
                        due,
                        client,
                        conn,
                        channel: reliable,
                        bytes,
                    });
                }
            }
        }
        // Deliver what is due, in the order it was scheduled (reliable stays in order).
        let (due, later): (Vec<Message>, Vec<Message>) =
            in_flight.into_iter().partition(|m| m.due <= round);
        in_flight = later;
        for m in due {
            let to = m.client.map_or(host, |i| clients[i]);
            ok(receive(to, m.conn, m.channel, &m.bytes));
        }
        for (i, &client) in clients.iter().enumerate() {
            if kinds(client).contains(&(ThetaSessionEventKind::Joined as u8)) {
                joined[i] = true;
            }
        }
        kinds(host);
        round += 1;
        std::thread::sleep(Duration::from_millis(1));
    }
    let mut stats = ThetaSessionStats::default();
    // SAFETY: valid out-pointer.
    ok(unsafe { theta_session_stats(host, &mut stats) });
    assert_eq!(stats.peer_count, 2);
    // Goodbye: the host leaves; its outputs are the goodbyes, then the closes.
    ok(theta_session_leave(host));
    let outputs = drain(host);
    let sends: Vec<_> = outputs
        .iter()
        .filter(|(o, _)| o.kind == ThetaTransportOutputKind::Send as u8)
        .collect();
    let closes: Vec<_> = outputs
        .iter()
        .filter(|(o, _)| o.kind == ThetaTransportOutputKind::Close as u8)
        .collect();
    assert_eq!((sends.len(), closes.len()), (2, 2), "{outputs:?}");
    for (close, reason) in closes {
        assert_eq!(close.code, ThetaCloseCode::Shutdown as u32);
        assert_eq!(reason, b"host shut down");
    }
    fails(theta_session_tick(host), ThetaStatus::SessionClosed);
    // The goodbye datagram reaches client 1: it hears the host closed.
    let (goodbye, bytes) = sends[0];
    let to = clients[(goodbye.conn - 100) as usize];
    ok(receive(to, 7, unreliable, bytes));
    let mut events = [ThetaSessionEvent::default(); 8];
    let mut n = 0;
    // SAFETY: 8 writable events.
    ok(unsafe { theta_session_poll_events(to, events.as_mut_ptr(), 8, &mut n) });
    assert!(
        events[..n]
            .iter()
            .any(|e| e.kind == ThetaSessionEventKind::Disconnected as u8
                && e.cause == ThetaDisconnectCause::HostClosed as u8),
        "{:?}",
        &events[..n]
    );
    for session in [host, clients[0], clients[1]] {
        ok(theta_session_free(session));
    }
}

#[test]
fn transport_calls_with_bad_input_are_statuses() {
    let (world, _) = new_world();
    let (registry, _) = new_world();
    let host = host_custom(world, null());
    let (reliable, unreliable) = (ThetaChannel::Reliable as u8, ThetaChannel::Unreliable as u8);
    // Unknown connections.
    fails(
        receive(host, 9, reliable, b"x"),
        ThetaStatus::UnknownConnection,
    );
    fails(
        // SAFETY: a valid byte range.
        unsafe { theta_session_transport_closed(host, 9, 0, b"bye".as_ptr(), 3) },
        ThetaStatus::UnknownConnection,
    );
    fails(
        theta_session_transport_set_rtt(host, 9, 1000),
        ThetaStatus::UnknownConnection,
    );
    ok(theta_session_transport_connected(host, 9));
    fails(
        theta_session_transport_connected(host, 9),
        ThetaStatus::ConnectionExists,
    );
    // Bad arguments.
    fails(receive(host, 9, 0, b"x"), ThetaStatus::InvalidArgument);
    fails(receive(host, 9, 3, b"x"), ThetaStatus::InvalidArgument);
    fails(
        // SAFETY: NULL data with a length is refused before it is read.
        unsafe { theta_session_transport_receive(host, 9, reliable, null(), 4) },
        ThetaStatus::NullPointer,
    );
    fails(
        // SAFETY: a valid byte range.
        unsafe { theta_session_transport_closed(host, 9, 0, [0xFFu8, 0xFE].as_ptr(), 2) },
        ThetaStatus::InvalidArgument,
    );
    let mut out = ThetaTransportOutput::default();
    fails(
        // SAFETY: NULL buffer with a capacity is refused.
        unsafe { theta_session_transport_poll(host, null_mut(), 8, &mut out) },
        ThetaStatus::NullPointer,
    );
    fails(
        // SAFETY: NULL out-pointer is refused.
        unsafe { theta_session_transport_poll(host, null_mut(), 0, null_mut()) },
        ThetaStatus::NullPointer,
    );
    // Over the bounds: unreliable refused, the connection stays; reliable ends it.
    fails(
        receive(host, 9, unreliable, &[0; 1201]),
        ThetaStatus::MessageTooLarge,
    );
    ok(receive(host, 9, unreliable, &[0; 1200]));
    let too_long = vec![0; theta_net::proto::MAX_JOIN_REQUEST + 1];
    let err = fails(
        receive(host, 9, reliable, &too_long),
        ThetaStatus::MessageTooLarge,
    );
    assert!(err.contains(&too_long.len().to_string()), "{err}");
    // The close is queued; a buffer too small keeps it for the next call.
    let mut small = [0u8; 4];
    fails(
        // SAFETY: 4 writable bytes.
        unsafe { theta_session_transport_poll(host, small.as_mut_ptr(), 4, &mut out) },
        ThetaStatus::BufferTooSmall,
    );
    assert_eq!(out.kind, ThetaTransportOutputKind::Close as u8);
    assert_eq!(
        (out.conn, out.code),
        (9, ThetaCloseCode::BrokenStream as u32)
    );
    let needed = out.len;
    let outputs = drain(host);
    assert_eq!(outputs.len(), 1, "kept, then taken once");
    assert_eq!(outputs[0].0.len, needed);
    assert!(String::from_utf8_lossy(&outputs[0].1).contains("stream broken"));
    // Bytes still arriving on it are dropped; its end may be reported; then it is gone.
    ok(receive(host, 9, reliable, b"late"));
    // SAFETY: NULL reason of length 0.
    ok(unsafe { theta_session_transport_closed(host, 9, ThetaCloseCode::Lost as u32, null(), 0) });
    fails(
        receive(host, 9, reliable, b"x"),
        ThetaStatus::UnknownConnection,
    );
    // A client: one connection at a time; after it ended, reconnect first.
    let token = mint(host, 1);
    let client = join_custom(&token, registry);
    fails(theta_session_reconnect(client), ThetaStatus::CannotResume);
    ok(theta_session_transport_connected(client, 1));
    fails(
        theta_session_transport_connected(client, 2),
        ThetaStatus::ConnectionExists,
    );
    // SAFETY: a valid byte range.
    ok(unsafe { theta_session_transport_closed(client, 1, 0, b"gone".as_ptr(), 4) });
    assert!(kinds(client).contains(&(ThetaSessionEventKind::Disconnected as u8)));
    fails(
        theta_session_transport_connected(client, 2),
        ThetaStatus::SessionClosed,
    );
    fails(theta_session_reconnect(client), ThetaStatus::CannotResume);
    // After leaving: statuses, but the drain and the close reports.
    ok(theta_session_transport_connected(host, 10));
    ok(theta_session_leave(host));
    ok(theta_session_leave(host));
    fails(
        theta_session_transport_connected(host, 11),
        ThetaStatus::SessionClosed,
    );
    fails(
        receive(host, 10, reliable, b"x"),
        ThetaStatus::SessionClosed,
    );
    fails(theta_session_tick(host), ThetaStatus::SessionClosed);
    let outputs = drain(host);
    assert_eq!(outputs.len(), 1, "{outputs:?}");
    assert_eq!(outputs[0].0.kind, ThetaTransportOutputKind::Close as u8);
    // SAFETY: NULL reason of length 0.
    ok(unsafe { theta_session_transport_closed(host, 10, 0, null(), 0) });
    // Freed: the handle is gone.
    ok(theta_session_free(host));
    fails(
        receive(host, 10, reliable, b"x"),
        ThetaStatus::InvalidHandle,
    );
    ok(theta_session_free(client));
    ok(theta_world_free(registry));
}

#[test]
fn unusable_transport_configs_are_refused_and_leave_the_world() {
    let (world, _) = new_world();
    let mut out = ThetaSession { id: 0 };
    for (config, expected) in [
        (
            ThetaTransportConfig {
                max_unreliable_bytes: 100,
                ..ThetaTransportConfig::default()
            },
            "max_unreliable",
        ),
        (
            ThetaTransportConfig {
                reserved: 1,
                ..ThetaTransportConfig::default()
            },
            "reserved",
        ),
        (
            ThetaTransportConfig {
                struct_size: 4,
                ..ThetaTransportConfig::default()
            },
            "struct_size",
        ),
    ] {
        let err = fails(
            // SAFETY: valid pointers.
            unsafe { theta_session_host_custom(world, null(), 0, null(), &config, &mut out) },
            ThetaStatus::InvalidArgument,
        );
        assert!(err.contains(expected), "{err}");
        assert_eq!(out.id, 0, "nothing written on failure");
    }
    fails(
        // SAFETY: NULL out-pointer is refused.
        unsafe { theta_session_host_custom(world, null(), 0, null(), null(), null_mut()) },
        ThetaStatus::NullPointer,
    );
    let mut alive = 0u8;
    // SAFETY: valid out-pointer: the world is still the caller's.
    ok(unsafe { theta_world_is_alive(world, 1, &mut alive) });
    ok(theta_world_free(world));
}

#[test]
fn each_session_error_has_its_own_status() {
    // QUIC calls on a custom session, and the reverse.
    let (world, _) = new_world();
    let (registry, _) = new_world();
    let custom = host_custom(world, null());
    let mut port = 0u16;
    let mut fingerprint = [0u8; THETA_FINGERPRINT_LEN];
    // SAFETY: valid out-pointers.
    unsafe {
        fails(
            theta_session_local_port(custom, &mut port),
            ThetaStatus::WrongTransport,
        );
        fails(
            theta_session_fingerprint(custom, fingerprint.as_mut_ptr()),
            ThetaStatus::WrongTransport,
        );
    }
    let (world, _) = new_world();
    let mut quic = ThetaSession { id: 0 };
    let bind = "127.0.0.1:0";
    // SAFETY: valid byte range and out-pointer.
    ok(unsafe {
        theta_session_host(
            bind.as_ptr(),
            bind.len(),
            world,
            null(),
            0,
            null(),
            &mut quic,
        )
    });
    fails(
        theta_session_transport_connected(quic, 1),
        ThetaStatus::WrongTransport,
    );
    fails(
        receive(quic, 1, ThetaChannel::Reliable as u8, b"x"),
        ThetaStatus::WrongTransport,
    );
    let mut out = ThetaTransportOutput::default();
    fails(
        // SAFETY: valid out-pointer.
        unsafe { theta_session_transport_poll(quic, null_mut(), 0, &mut out) },
        ThetaStatus::WrongTransport,
    );
    fails(theta_session_leave(quic), ThetaStatus::WrongTransport);
    // Roles: reconnect on a host, mint and train on a client.
    fails(theta_session_reconnect(custom), ThetaStatus::WrongRole);
    let client = join_custom(&mint(custom, 1), registry);
    let mut buf = [0u8; THETA_JOIN_TOKEN_LEN];
    let mut len = 0;
    fails(
        // SAFETY: valid buffer and out-pointer.
        unsafe { theta_session_mint_token(client, 2, 60, buf.as_mut_ptr(), buf.len(), &mut len) },
        ThetaStatus::WrongRole,
    );
    fails(
        // SAFETY: NULL out_id is allowed.
        unsafe {
            theta_session_train_dictionary(client, ThetaMessageKind::Datagram as u8, null_mut())
        },
        ThetaStatus::WrongRole,
    );
    // A training refused: too few samples; a kind without a dictionary codec.
    for kind in [ThetaMessageKind::Datagram, ThetaMessageKind::SnapshotChunk] {
        fails(
            // SAFETY: NULL out_id is allowed.
            unsafe { theta_session_train_dictionary(custom, kind as u8, null_mut()) },
            ThetaStatus::TrainingRefused,
        );
    }
    // Resume refused: never admitted.
    fails(theta_session_reconnect(client), ThetaStatus::CannotResume);
    // A busy address: IO; an unusable certificate: TLS.
    let (world, _) = new_world();
    let busy = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = busy.local_addr().unwrap().to_string();
    let mut session = ThetaSession { id: 0 };
    let err = fails(
        // SAFETY: valid byte range and out-pointer.
        unsafe {
            theta_session_host(
                addr.as_ptr(),
                addr.len(),
                world,
                null(),
                0,
                null(),
                &mut session,
            )
        },
        ThetaStatus::Io,
    );
    assert!(err.contains("cannot start the endpoint"), "{err}");
    let key = b"-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----\n";
    fails(
        // SAFETY: valid byte ranges and out-pointer.
        unsafe {
            theta_session_host_pem(
                bind.as_ptr(),
                bind.len(),
                world,
                b"nope".as_ptr(),
                4,
                key.as_ptr(),
                key.len(),
                null(),
                0,
                null(),
                &mut session,
            )
        },
        ThetaStatus::Tls,
    );
    assert_eq!(session.id, 0, "nothing written on failure");
    for s in [custom, quic, client] {
        ok(theta_session_free(s));
    }
    ok(theta_world_free(world));
    ok(theta_world_free(registry));
}
