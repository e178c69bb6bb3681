//! Application messages through the C ABI, as a C engine would use them: exported
//! functions only, sessions over an in-memory custom transport (no sockets, no threads),
//! every call's misuse checked for its status.

use std::ptr::null;

use theta_net::ffi::*;

mod common;
use common::{last_error, ok};

#[track_caller]
fn fails(status: ThetaStatus, expected: ThetaStatus) -> String {
    assert_eq!(status, expected, "{}", last_error());
    last_error()
}

fn new_world() -> ThetaWorld {
    let mut world = ThetaWorld { id: 0 };
    let mut position = 0;
    // SAFETY: valid out-pointers and names.
    unsafe {
        ok(theta_world_new(null(), &mut world));
        ok(theta_world_register_fixed(
            world,
            b"m.Position".as_ptr(),
            10,
            12,
            &mut position,
        ));
    }
    world
}

/// An event, copied out of the poll.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Event {
    kind: u8,
    peer: u16,
    entity: u64,
    channel: u32,
    request: u64,
    cause: u8,
    data: Vec<u8>,
}

fn poll(session: ThetaSession) -> Vec<Event> {
    let zero = ThetaSessionEvent::default();
    let mut events = [zero; 8];
    let mut all = Vec::new();
    loop {
        let mut n = 0;
        // SAFETY: 8 writable events.
        ok(unsafe { theta_session_poll_events(session, events.as_mut_ptr(), 8, &mut n) });
        for e in &events[..n] {
            let data = if e.data.is_null() {
                Vec::new()
            } else {
                // SAFETY: the library lends data_len bytes until the next poll.
                unsafe { std::slice::from_raw_parts(e.data, e.data_len) }.to_vec()
            };
            all.push(Event {
                kind: e.kind,
                peer: e.peer,
                entity: e.entity,
                channel: e.channel,
                request: e.request,
                cause: e.cause,
                data,
            });
        }
        if n < 8 {
            return all;
        }
    }
}

/// A host and clients over a lossless in-memory transport: client `i` is connection
/// `100 + i` on the host and `7` on the client.
struct Net {
    host: ThetaSession,
    clients: Vec<ThetaSession>,
    host_events: Vec<Event>,
    client_events: Vec<Vec<Event>>,
}

impl Net {
    /// A host with `clients` clients (peers 1..), all joined; `setup` runs on the host
    /// before anyone connects.
    fn new(clients: u16, setup: impl FnOnce(ThetaSession)) -> Net {
        let world = new_world();
        let registry = new_world();
        let mut host = ThetaSession { id: 0 };
        // SAFETY: valid out-pointer; NULL secret (generated), configs (defaults).
        ok(unsafe { theta_session_host_custom(world, null(), 0, null(), null(), &mut host) });
        setup(host);
        let mut sessions = Vec::new();
        for peer in 1..=clients {
            let mut token = vec![0u8; THETA_JOIN_TOKEN_LEN];
            let mut len = 0;
            // SAFETY: token has its length of writable bytes.
            ok(unsafe {
                theta_session_mint_token(host, peer, 60, token.as_mut_ptr(), token.len(), &mut len)
            });
            let mut client = ThetaSession { id: 0 };
            // SAFETY: valid byte range and out-pointer.
            ok(unsafe {
                theta_session_join_custom(
                    token.as_ptr(),
                    len,
                    registry,
                    null(),
                    null(),
                    &mut client,
                )
            });
            sessions.push(client);
        }
        ok(theta_world_free(registry));
        let mut net = Net {
            host,
            client_events: vec![Vec::new(); sessions.len()],
            clients: sessions,
            host_events: Vec::new(),
        };
        for i in 0..net.clients.len() {
            ok(theta_session_transport_connected(host, 100 + i as u64));
            ok(theta_session_transport_connected(net.clients[i], 7));
        }
        net.pump(10);
        for (i, events) in net.client_events.iter().enumerate() {
            let joined = ThetaSessionEventKind::Joined as u8;
            assert!(events.iter().any(|e| e.kind == joined), "client {i}");
        }
        net
    }

    /// Takes every output of `session`.
    fn drain(session: ThetaSession) -> Vec<(ThetaTransportOutput, Vec<u8>)> {
        let mut all = Vec::new();
        let mut buf = vec![0u8; 1 << 17];
        loop {
            let mut out = ThetaTransportOutput::default();
            // SAFETY: buf has its length of writable bytes.
            ok(unsafe {
                theta_session_transport_poll(session, buf.as_mut_ptr(), buf.len(), &mut out)
            });
            if out.kind == ThetaTransportOutputKind::None as u8 {
                return all;
            }
            all.push((out, buf[..out.len].to_vec()));
        }
    }

    /// `rounds` rounds: every session ticks, its outputs are delivered at once, events
    /// are collected.
    fn pump(&mut self, rounds: usize) {
        for _ in 0..rounds {
            ok(theta_session_tick(self.host));
            for &c in &self.clients {
                ok(theta_session_tick(c));
            }
            for (out, bytes) in Net::drain(self.host) {
                let i = (out.conn - 100) as usize;
                if out.kind == ThetaTransportOutputKind::Close as u8 {
                    // SAFETY: NULL reason of length 0.
                    let _ = unsafe {
                        theta_session_transport_closed(self.clients[i], 7, out.code, null(), 0)
                    };
                    continue;
                }
                // SAFETY: a valid byte range.
                let status = unsafe {
                    theta_session_transport_receive(
                        self.clients[i],
                        7,
                        out.channel,
                        bytes.as_ptr(),
                        bytes.len(),
                    )
                };
                assert!(matches!(
                    status,
                    ThetaStatus::Ok | ThetaStatus::UnknownConnection
                ));
            }
            for (i, &c) in self.clients.iter().enumerate() {
                for (out, bytes) in Net::drain(c) {
                    if out.kind != ThetaTransportOutputKind::Send as u8 {
                        continue;
                    }
                    // SAFETY: a valid byte range.
                    let status = unsafe {
                        theta_session_transport_receive(
                            self.host,
                            100 + i as u64,
                            out.channel,
                            bytes.as_ptr(),
                            bytes.len(),
                        )
                    };
                    assert!(matches!(
                        status,
                        ThetaStatus::Ok | ThetaStatus::UnknownConnection
                    ));
                }
            }
            self.host_events.extend(poll(self.host));
            for (i, &c) in self.clients.iter().enumerate() {
                self.client_events[i].extend(poll(c));
            }
        }
    }

    fn of_kind(events: &[Event], kind: ThetaSessionEventKind) -> Vec<Event> {
        events
            .iter()
            .filter(|e| e.kind == kind as u8)
            .cloned()
            .collect()
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for &c in &self.clients {
            ok(theta_session_free(c));
        }
        ok(theta_session_free(self.host));
    }
}

/// Sends `body` through the C ABI.
fn send(session: ThetaSession, to: u16, channel: u32, flags: u32, body: &[u8]) -> ThetaStatus {
    // SAFETY: a valid byte range.
    unsafe { theta_session_send_message(session, to, channel, flags, body.as_ptr(), body.len()) }
}

fn decide(session: ThetaSession, request: u64, accept: bool, reason: &[u8]) -> ThetaStatus {
    // SAFETY: a valid byte range.
    unsafe {
        theta_session_decide_message(
            session,
            request,
            u8::from(accept),
            reason.as_ptr(),
            reason.len(),
        )
    }
}

#[test]
fn messages_travel_between_peers_through_the_c_abi() {
    assert_eq!(THETA_ABI_VERSION, 3);
    assert_eq!(theta_abi_version(), 3);
    let mut net = Net::new(2, |_| {});
    let (host, one, two) = (net.host, net.clients[0], net.clients[1]);
    ok(send(one, 2, 40, THETA_MESSAGE_RELIABLE, b"to two"));
    ok(send(one, THETA_PEER_HOST, 41, 0, b"to host"));
    ok(send(
        host,
        THETA_PEER_ALL,
        42,
        THETA_MESSAGE_RELIABLE,
        b"to all",
    ));
    ok(send(two, 1, 43, 0, &[])); // an empty body is a message too
    ok(send(one, 77, 44, THETA_MESSAGE_RELIABLE, b"to nobody"));
    net.pump(5);
    let message = |peer, channel, cause, data: &[u8]| Event {
        kind: ThetaSessionEventKind::Message as u8,
        peer,
        entity: 0,
        channel,
        request: 0,
        cause,
        data: data.to_vec(),
    };
    let reliable = THETA_MESSAGE_RELIABLE as u8;
    assert_eq!(
        Net::of_kind(&net.host_events, ThetaSessionEventKind::Message),
        [message(1, 41, 0, b"to host")]
    );
    // Order holds per sender; the host's own message may pass the one it relays.
    let mut at_two = Net::of_kind(&net.client_events[1], ThetaSessionEventKind::Message);
    at_two.sort_by_key(|e| e.channel);
    assert_eq!(
        at_two,
        [
            message(1, 40, reliable, b"to two"),
            message(THETA_PEER_HOST, 42, reliable, b"to all")
        ]
    );
    let mut at_one = Net::of_kind(&net.client_events[0], ThetaSessionEventKind::Message);
    at_one.sort_by_key(|e| e.channel);
    assert_eq!(
        at_one,
        [
            message(THETA_PEER_HOST, 42, reliable, b"to all"),
            message(2, 43, 0, b"")
        ]
    );
    let refused = Net::of_kind(&net.client_events[0], ThetaSessionEventKind::MessageRefused);
    assert_eq!(refused.len(), 1);
    assert_eq!((refused[0].peer, refused[0].channel), (77, 44));
    assert_eq!(refused[0].data, b"peer 77 is not connected");
    let mut stats = ThetaSessionStats::default();
    // SAFETY: valid out-pointer.
    ok(unsafe { theta_session_stats(host, &mut stats) });
    assert_eq!(stats.peer_count, 2);
}

#[test]
fn the_host_decides_held_messages_through_the_c_abi() {
    let mut net = Net::new(2, |host| ok(theta_session_set_message_filter(host, 1, 0)));
    let (host, one, two) = (net.host, net.clients[0], net.clients[1]);
    ok(send(one, 2, 5, THETA_MESSAGE_RELIABLE, b"first"));
    ok(send(
        one,
        THETA_PEER_ALL,
        6,
        THETA_MESSAGE_RELIABLE,
        b"second",
    ));
    net.pump(3);
    let asked = Net::of_kind(&net.host_events, ThetaSessionEventKind::MessageRequested);
    assert_eq!(asked.len(), 2, "{asked:?}");
    assert_eq!(
        (asked[0].peer, asked[0].entity, asked[0].channel),
        (1, 2, 5)
    );
    assert_eq!(asked[0].data, b"first");
    assert_eq!(asked[0].cause, THETA_MESSAGE_RELIABLE as u8);
    assert_eq!(asked[1].entity, u64::from(THETA_PEER_ALL));
    assert!(asked[0].request != 0 && asked[0].request != asked[1].request);
    assert!(Net::of_kind(&net.client_events[1], ThetaSessionEventKind::Message).is_empty());
    ok(decide(host, asked[0].request, true, b""));
    ok(decide(host, asked[1].request, false, b"not now"));
    net.pump(3);
    let got = Net::of_kind(&net.client_events[1], ThetaSessionEventKind::Message);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].data, b"first");
    let refused = Net::of_kind(&net.client_events[0], ThetaSessionEventKind::MessageRefused);
    assert_eq!(refused.len(), 1);
    assert_eq!(
        (
            refused[0].peer,
            refused[0].channel,
            refused[0].data.as_slice()
        ),
        (THETA_PEER_ALL, 6, b"not now".as_slice())
    );
    // Answered already.
    let e = fails(
        decide(host, asked[0].request, true, b""),
        ThetaStatus::NotFound,
    );
    assert!(e.contains("no message request"), "{e}");
    // Misuse: a client decides, a NULL or non-UTF-8 reason.
    fails(decide(two, 1, true, b""), ThetaStatus::WrongRole);
    // SAFETY: NULL with a length, refused before any read.
    let status = unsafe { theta_session_decide_message(host, 1, 0, null(), 3) };
    fails(status, ThetaStatus::NullPointer);
    fails(
        decide(host, 1, false, &[0xFF, 0xFE]),
        ThetaStatus::InvalidArgument,
    );
    fails(
        theta_session_set_message_filter(one, 1, 0),
        ThetaStatus::WrongRole,
    );
    fails(
        theta_session_set_message_limits(one, 1, 1, 1, 1, 1),
        ThetaStatus::WrongRole,
    );
    // Filtering off again: messages flow without a request.
    ok(theta_session_set_message_filter(host, 0, 0));
    ok(send(one, 2, 7, THETA_MESSAGE_RELIABLE, b"free"));
    net.pump(3);
    let got = Net::of_kind(&net.client_events[1], ThetaSessionEventKind::Message);
    assert_eq!(
        got.last().map(|e| e.data.as_slice()),
        Some(b"free".as_slice())
    );
}

#[test]
fn messages_over_the_rate_are_throttled_through_the_c_abi() {
    let mut net = Net::new(2, |host| {
        ok(theta_session_set_message_limits(host, 10, 3, 0, 0, 100))
    });
    let one = net.clients[0];
    for i in 0..8u8 {
        ok(send(one, 2, 1, THETA_MESSAGE_RELIABLE, &[i]));
    }
    net.pump(3);
    let got = Net::of_kind(&net.client_events[1], ThetaSessionEventKind::Message);
    assert_eq!(got.len(), 3);
    let refused = Net::of_kind(&net.client_events[0], ThetaSessionEventKind::MessageRefused);
    assert_eq!(refused.len(), 5);
    assert!(refused.iter().all(|r| r.data == b"throttled"));
}

#[test]
fn every_misuse_of_the_message_calls_is_a_status() {
    let net = Net::new(1, |_| {});
    let (host, one) = (net.host, net.clients[0]);
    let big = vec![0u8; THETA_MAX_MESSAGE_BYTES as usize + 1];
    let e = fails(
        send(one, 2, 1, THETA_MESSAGE_RELIABLE, &big),
        ThetaStatus::MessageTooLarge,
    );
    assert!(e.contains("65537"), "{e}");
    let unreliable = &big[..THETA_MAX_UNRELIABLE_MESSAGE_BYTES as usize + 1];
    fails(send(one, 2, 1, 0, unreliable), ThetaStatus::MessageTooLarge);
    fails(
        send(host, 1, 1, THETA_MESSAGE_RELIABLE, &big),
        ThetaStatus::MessageTooLarge,
    );
    ok(send(
        one,
        2,
        1,
        THETA_MESSAGE_RELIABLE,
        &big[..THETA_MAX_MESSAGE_BYTES as usize],
    ));
    fails(send(one, 2, 1, 0x80, b"x"), ThetaStatus::InvalidArgument);
    fails(send(one, 1, 1, 0, b"x"), ThetaStatus::InvalidArgument);
    fails(
        send(host, THETA_PEER_HOST, 1, 0, b"x"),
        ThetaStatus::InvalidArgument,
    );
    let e = fails(send(host, 9, 1, 0, b"x"), ThetaStatus::NotFound);
    assert!(e.contains("peer 9"), "{e}");
    // SAFETY: NULL with a length, refused before any read.
    let status = unsafe { theta_session_send_message(one, 2, 1, 0, null(), 4) };
    fails(status, ThetaStatus::NullPointer);
    // SAFETY: NULL with length 0 is an empty body.
    ok(unsafe { theta_session_send_message(one, THETA_PEER_HOST, 1, 0, null(), 0) });
    // Handles: null, forged, freed.
    let null_session = ThetaSession { id: 0 };
    fails(
        send(null_session, 2, 1, 0, b"x"),
        ThetaStatus::InvalidHandle,
    );
    fails(
        decide(null_session, 1, true, b""),
        ThetaStatus::InvalidHandle,
    );
    fails(
        theta_session_set_message_filter(ThetaSession { id: 0xDEAD_BEEF }, 1, 0),
        ThetaStatus::InvalidHandle,
    );
    fails(
        theta_session_set_message_limits(null_session, 0, 0, 0, 0, 0),
        ThetaStatus::InvalidHandle,
    );
    // A client not connected yet cannot send; once freed, its handle is stale.
    let registry = new_world();
    let mut token = vec![0u8; THETA_JOIN_TOKEN_LEN];
    let mut len = 0;
    // SAFETY: token has its length of writable bytes.
    ok(unsafe { theta_session_mint_token(host, 5, 60, token.as_mut_ptr(), token.len(), &mut len) });
    let mut lonely = ThetaSession { id: 0 };
    // SAFETY: valid byte range and out-pointer.
    ok(unsafe {
        theta_session_join_custom(token.as_ptr(), len, registry, null(), null(), &mut lonely)
    });
    ok(theta_world_free(registry));
    fails(
        send(lonely, THETA_PEER_HOST, 1, 0, b"x"),
        ThetaStatus::NotConnected,
    );
    ok(theta_session_free(lonely));
    fails(
        send(lonely, THETA_PEER_HOST, 1, 0, b"x"),
        ThetaStatus::InvalidHandle,
    );
    fails(decide(lonely, 1, true, b""), ThetaStatus::InvalidHandle);
}

#[test]
fn a_flooding_client_is_disconnected_as_refused_through_the_c_abi() {
    let mut net = Net::new(2, |host| {
        ok(theta_session_set_message_limits(host, 10, 3, 0, 0, 1))
    });
    let one = net.clients[0];
    for i in 0..6u8 {
        ok(send(one, 2, 1, THETA_MESSAGE_RELIABLE, &[i]));
    }
    net.pump(3);
    let left = Net::of_kind(&net.host_events, ThetaSessionEventKind::PeerLeft);
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].peer, 1);
    assert!(String::from_utf8_lossy(&left[0].data).contains("flooding"));
    let gone = Net::of_kind(&net.client_events[0], ThetaSessionEventKind::Disconnected);
    assert_eq!(gone.len(), 1);
    assert_eq!(gone[0].cause, ThetaDisconnectCause::Refused as u8);
    // The other client stays, and heard it leave.
    let left = Net::of_kind(&net.client_events[1], ThetaSessionEventKind::PeerLeft);
    assert_eq!(left.iter().map(|e| e.peer).collect::<Vec<_>>(), [1]);
}
