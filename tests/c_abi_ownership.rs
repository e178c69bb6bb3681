//! Ownership through the C ABI, as a C engine drives it: a host and two clients over an
//! in-memory custom transport (in order, lossless) driven by the test. A host object set
//! to nobody is grabbed by one client while the other is denied; the owner's writes reach
//! everyone; a release leaves the last write and nobody as the owner; one component
//! changes hands alone; the host's hook puts requests to the engine, which accepts or
//! refuses them with a reason; and every misuse of every new call is a status. Exported
//! functions only, every wait bounded.

use std::collections::VecDeque;
use std::ptr::{null, null_mut};
use std::time::{Duration, Instant};

use theta_net::ffi::*;

mod common;
use common::{last_error, ok};

const WAIT: Duration = Duration::from_secs(20);
const WHOLE: u32 = 0;
const NOBODY: u16 = THETA_OWNER_NOBODY;

#[track_caller]
fn fails(status: ThetaStatus, expected: ThetaStatus) -> String {
    assert_eq!(status, expected, "{}", last_error());
    last_error()
}

/// A world with the test's two component types: (world, position, color).
fn new_world() -> (ThetaWorld, u32, u32) {
    let mut world = ThetaWorld { id: 0 };
    let (mut position, mut color) = (0, 0);
    // SAFETY: valid out-pointers and names.
    unsafe {
        ok(theta_world_new(null(), &mut world));
        ok(theta_world_register_fixed(
            world,
            b"own.Position".as_ptr(),
            12,
            12,
            &mut position,
        ));
        ok(theta_world_register_fixed(
            world,
            b"own.Color".as_ptr(),
            9,
            4,
            &mut color,
        ));
    }
    (world, position, color)
}

/// A host over a custom transport with `config` (NULL: the defaults).
fn host_custom(world: ThetaWorld, config: *const ThetaSessionConfig) -> ThetaSession {
    let mut host = ThetaSession { id: 0 };
    // SAFETY: a valid (or NULL) config and out-pointer; NULL secret (generated) and
    // transport.
    ok(unsafe { theta_session_host_custom(world, null(), 0, config, null(), &mut host) });
    host
}

fn join_custom(host: ThetaSession, peer: u16) -> ThetaSession {
    let mut token = vec![0u8; THETA_JOIN_TOKEN_LEN];
    let mut len = 0;
    // SAFETY: token has its length of writable bytes.
    ok(unsafe {
        theta_session_mint_token(host, peer, 60, token.as_mut_ptr(), token.len(), &mut len)
    });
    let (registry, _, _) = new_world();
    let mut client = ThetaSession { id: 0 };
    // SAFETY: valid byte range and out-pointer; NULL configs (defaults).
    ok(unsafe {
        theta_session_join_custom(token.as_ptr(), len, registry, null(), null(), &mut client)
    });
    ok(theta_world_free(registry));
    client
}

fn spawn(session: ThetaSession) -> u64 {
    let mut e = 0;
    // SAFETY: valid out-pointer.
    ok(unsafe { theta_session_spawn(session, &mut e) });
    e
}

fn set(session: ThetaSession, entity: u64, component: u32, value: &[u8]) -> ThetaStatus {
    // SAFETY: a valid byte range; NULL out_change.
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

fn get(session: ThetaSession, entity: u64, component: u32) -> Vec<u8> {
    let mut value = [0u8; 64];
    let mut len = 0;
    // SAFETY: 64 writable bytes and an out-pointer.
    ok(unsafe { theta_session_get(session, entity, component, value.as_mut_ptr(), 64, &mut len) });
    value[..len].to_vec()
}

fn owner(session: ThetaSession, entity: u64, component: u32) -> u16 {
    let mut owner = 0;
    // SAFETY: valid out-pointer.
    ok(unsafe { theta_session_owner(session, entity, component, &mut owner) });
    owner
}

fn decide(host: ThetaSession, request: u64, accept: u8, reason: &str) -> ThetaStatus {
    // SAFETY: a valid byte range.
    unsafe { theta_session_decide_ownership(host, request, accept, reason.as_ptr(), reason.len()) }
}

fn hash(session: ThetaSession) -> u64 {
    let mut h = 0;
    // SAFETY: valid out-pointer.
    ok(unsafe { theta_session_state_hash(session, &mut h) });
    h
}

/// An event with its bytes copied out (they live only until the next poll).
#[derive(Clone, Debug)]
struct Event {
    kind: u8,
    cause: u8,
    peer: u16,
    entity: u64,
    component: u32,
    request: u64,
    text: String,
}

impl Event {
    fn is(&self, kind: ThetaSessionEventKind) -> bool {
        self.kind == kind as u8
    }
}

fn events(session: ThetaSession) -> Vec<Event> {
    let mut buf = [ThetaSessionEvent::default(); 16];
    let mut all = Vec::new();
    loop {
        let mut n = 0;
        // SAFETY: 16 writable events.
        ok(unsafe { theta_session_poll_events(session, buf.as_mut_ptr(), 16, &mut n) });
        for e in &buf[..n] {
            let text = if e.data.is_null() {
                String::new()
            } else {
                // SAFETY: the library's bytes, valid until the next poll.
                let bytes = unsafe { std::slice::from_raw_parts(e.data, e.data_len) };
                String::from_utf8_lossy(bytes).into_owned()
            };
            all.push(Event {
                kind: e.kind,
                cause: e.cause,
                peer: e.peer,
                entity: e.entity,
                component: e.component,
                request: e.request,
                text,
            });
        }
        if n < 16 {
            return all;
        }
    }
}

type Queue = VecDeque<(ThetaTransportOutput, Vec<u8>)>;

/// One client on the engine's transport: the host calls its connection `100 + peer`, the
/// client calls it 1.
struct Link {
    client: ThetaSession,
    host_conn: u64,
    to_host: Queue,
    to_client: Queue,
}

/// The engine's transport between a host and its clients: a queue each way per client,
/// in order and lossless. Events polled are kept per session (host first).
struct Net {
    host: ThetaSession,
    links: Vec<Link>,
    seen: Vec<Vec<Event>>,
}

impl Net {
    fn new(host: ThetaSession) -> Self {
        Net {
            host,
            links: Vec::new(),
            seen: vec![Vec::new()],
        }
    }

    /// Joins client `peer` and opens its connection; its events are `seen[peer]`.
    fn join(&mut self, peer: u16) -> ThetaSession {
        let client = join_custom(self.host, peer);
        let host_conn = 100 + u64::from(peer);
        ok(theta_session_transport_connected(self.host, host_conn));
        ok(theta_session_transport_connected(client, 1));
        self.links.push(Link {
            client,
            host_conn,
            to_host: Queue::new(),
            to_client: Queue::new(),
        });
        self.seen.push(Vec::new());
        self.until("the join", |seen| {
            seen.last()
                .unwrap()
                .iter()
                .any(|e| e.is(ThetaSessionEventKind::Joined))
        });
        self.converge();
        client
    }

    fn sessions(&self) -> Vec<ThetaSession> {
        std::iter::once(self.host)
            .chain(self.links.iter().map(|l| l.client))
            .collect()
    }

    /// Every output of `session`, the buffer growing when too small; those for the host
    /// (a client's) or per connection (the host's).
    fn drain(session: ThetaSession) -> Vec<(ThetaTransportOutput, Vec<u8>)> {
        let mut all = Vec::new();
        let mut buf = vec![0u8; 256];
        loop {
            let mut out = ThetaTransportOutput::default();
            // SAFETY: buf has its length of writable bytes.
            let status = unsafe {
                theta_session_transport_poll(session, buf.as_mut_ptr(), buf.len(), &mut out)
            };
            if status == ThetaStatus::BufferTooSmall {
                buf.resize(out.len, 0);
                continue;
            }
            ok(status);
            if out.kind == ThetaTransportOutputKind::None as u8 {
                return all;
            }
            all.push((out, buf[..out.len].to_vec()));
        }
    }

    fn deliver(queue: &mut Queue, to: ThetaSession, conn: u64) {
        for (out, bytes) in queue.drain(..) {
            let status = if out.kind == ThetaTransportOutputKind::Close as u8 {
                // SAFETY: a valid byte range.
                unsafe {
                    theta_session_transport_closed(to, conn, out.code, bytes.as_ptr(), bytes.len())
                }
            } else {
                // SAFETY: a valid byte range.
                unsafe {
                    theta_session_transport_receive(
                        to,
                        conn,
                        out.channel,
                        bytes.as_ptr(),
                        bytes.len(),
                    )
                }
            };
            if status != ThetaStatus::UnknownConnection {
                ok(status);
            }
        }
    }

    /// One round: every session ticks, outputs cross, events are polled.
    fn round(&mut self) {
        ok(theta_session_tick(self.host));
        for (out, bytes) in Self::drain(self.host) {
            if let Some(link) = self.links.iter_mut().find(|l| l.host_conn == out.conn) {
                link.to_client.push_back((out, bytes));
            }
        }
        for link in &mut self.links {
            ok(theta_session_tick(link.client));
            link.to_host.extend(Self::drain(link.client));
        }
        for link in &mut self.links {
            Self::deliver(&mut link.to_host, self.host, link.host_conn);
            Self::deliver(&mut link.to_client, link.client, 1);
        }
        for (i, session) in self.sessions().into_iter().enumerate() {
            let polled = events(session);
            self.seen[i].extend(polled);
        }
    }

    /// Rounds until `done` holds of the events seen so far.
    fn until(&mut self, what: &str, mut done: impl FnMut(&[Vec<Event>]) -> bool) {
        let deadline = Instant::now() + WAIT;
        loop {
            self.round();
            if done(&self.seen) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: not within {WAIT:?}; seen {:?}",
                self.seen
            );
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Rounds until every client holds the host's state.
    fn converge(&mut self) {
        let deadline = Instant::now() + WAIT;
        loop {
            self.round();
            let h = hash(self.host);
            if self.links.iter().all(|l| hash(l.client) == h) {
                return;
            }
            assert!(Instant::now() < deadline, "no convergence within {WAIT:?}");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Forgets the events seen so far.
    fn forget(&mut self) {
        for seen in &mut self.seen {
            seen.clear();
        }
    }

    /// Rounds until every session saw `OWNERSHIP_CHANGED` of `(entity, component)` naming
    /// `owner`.
    fn until_owner(&mut self, entity: u64, component: u32, owner: u16) {
        let changed = |e: &Event| {
            e.is(ThetaSessionEventKind::OwnershipChanged)
                && (e.entity, e.component, e.peer) == (entity, component, owner)
        };
        self.until("OWNERSHIP_CHANGED on every peer", |seen| {
            seen.iter().all(|s| s.iter().any(changed))
        });
    }

    /// Rounds until session `index` saw an event of `kind`; returns it.
    fn until_event(&mut self, index: usize, kind: ThetaSessionEventKind) -> Event {
        self.until(&format!("{kind:?}"), |seen| {
            seen[index].iter().any(|e| e.is(kind))
        });
        self.seen[index]
            .iter()
            .find(|e| e.is(kind))
            .unwrap()
            .clone()
    }

    fn free(self) {
        for link in &self.links {
            ok(theta_session_free(link.client));
        }
        ok(theta_session_free(self.host));
    }
}

#[test]
fn a_host_object_set_free_is_grabbed_written_denied_to_the_other_and_released() {
    let (world, position, color) = new_world();
    let host = host_custom(world, null());
    let mut net = Net::new(host);
    let ball = spawn(host);
    ok(set(host, ball, position, &[1; 12]));
    ok(set(host, ball, color, &[1; 4]));
    // The host frees its object: it hears of it at once.
    ok(theta_session_set_owner(host, ball, WHOLE, NOBODY));
    assert_eq!(owner(host, ball, WHOLE), NOBODY);
    assert!(events(host).iter().any(|e| {
        e.is(ThetaSessionEventKind::OwnershipChanged) && e.entity == ball && e.peer == NOBODY
    }));
    // Clients joining later know the current owner from their snapshot.
    let (alice, bob) = (net.join(1), net.join(2));
    assert_eq!(owner(alice, ball, WHOLE), NOBODY);
    assert_eq!(owner(bob, ball, position), NOBODY);
    // Before a grant a client may not write it.
    fails(set(alice, ball, position, &[2; 12]), ThetaStatus::NotOwner);

    // Alice grabs it: every peer hears she owns it.
    net.forget();
    ok(theta_session_request_ownership(alice, ball, WHOLE));
    net.until_owner(ball, WHOLE, 1);
    for session in net.sessions() {
        assert_eq!(owner(session, ball, WHOLE), 1);
        assert_eq!(
            owner(session, ball, color),
            1,
            "a component follows its entity"
        );
    }
    // Bob's request is denied: Alice holds it.
    ok(theta_session_request_ownership(bob, ball, WHOLE));
    let denied = net.until_event(2, ThetaSessionEventKind::OwnershipDenied);
    assert_eq!(
        denied.cause,
        ThetaOwnershipRefusal::Held as u8,
        "{denied:?}"
    );
    assert_eq!((denied.entity, denied.component), (ball, WHOLE));
    assert!(denied.text.contains("held by peer 1"), "{denied:?}");
    assert_eq!(owner(bob, ball, WHOLE), 1);
    // Neither Bob nor the host may write it now; Alice's writes reach everyone.
    fails(set(bob, ball, position, &[3; 12]), ThetaStatus::NotOwner);
    fails(set(host, ball, position, &[3; 12]), ThetaStatus::NotOwner);
    ok(set(alice, ball, position, &[7; 12]));
    net.converge();
    assert_eq!(get(host, ball, position), [7; 12]);
    assert_eq!(get(bob, ball, position), [7; 12]);

    // Alice writes once more and lets go in the same frame: the write is kept, nobody
    // owns it, every peer hears so.
    net.forget();
    ok(set(alice, ball, position, &[9; 12]));
    ok(theta_session_release_ownership(alice, ball, WHOLE));
    net.until_owner(ball, WHOLE, NOBODY);
    net.converge();
    for session in net.sessions() {
        assert_eq!(owner(session, ball, WHOLE), NOBODY);
        assert_eq!(get(session, ball, position), [9; 12]);
    }
    fails(set(alice, ball, position, &[4; 12]), ThetaStatus::NotOwner);
    // Released, it is free for Bob.
    ok(theta_session_request_ownership(bob, ball, WHOLE));
    net.until_owner(ball, WHOLE, 2);
    net.free();
}

#[test]
fn one_component_changes_hands_and_policies_decide_requests() {
    let (world, position, color) = new_world();
    let host = host_custom(world, null());
    let mut net = Net::new(host);
    let lamp = spawn(host);
    ok(set(host, lamp, position, &[1; 12]));
    ok(set(host, lamp, color, &[1; 4]));
    ok(theta_session_set_owner(host, lamp, color, NOBODY));
    let (alice, bob) = (net.join(1), net.join(2));

    // Alice takes the lamp's color only; the host keeps the rest.
    ok(theta_session_request_ownership(alice, lamp, color));
    net.until_owner(lamp, color, 1);
    assert_eq!(owner(host, lamp, WHOLE), 0);
    assert_eq!(owner(host, lamp, position), 0);
    ok(set(alice, lamp, color, &[5; 4]));
    fails(set(alice, lamp, position, &[5; 12]), ThetaStatus::NotOwner);
    ok(set(host, lamp, position, &[6; 12]));
    fails(set(host, lamp, color, &[6; 4]), ThetaStatus::NotOwner);
    net.converge();
    assert_eq!(get(bob, lamp, color), [5; 4]);
    assert_eq!(get(bob, lamp, position), [6; 12]);

    // The holder lets anyone take it over: Bob does.
    ok(theta_session_set_ownership_policy(
        alice,
        lamp,
        color,
        ThetaOwnershipPolicy::Takeover as u8,
        0,
    ));
    net.converge();
    net.forget();
    ok(theta_session_request_ownership(bob, lamp, color));
    net.until_owner(lamp, color, 2);
    // Alice is no longer the owner: her policy change is refused at once.
    fails(
        theta_session_set_ownership_policy(alice, lamp, color, 0, 0),
        ThetaStatus::NotOwner,
    );

    // The host reserves the entity: requests for it are refused as HOST_ONLY.
    ok(theta_session_set_ownership_policy(
        host,
        lamp,
        WHOLE,
        ThetaOwnershipPolicy::HostOnly as u8,
        THETA_OWNERSHIP_DESPAWN_WITH_OWNER,
    ));
    net.converge();
    net.forget();
    ok(theta_session_request_ownership(alice, lamp, WHOLE));
    let denied = net.until_event(1, ThetaSessionEventKind::OwnershipDenied);
    assert_eq!(
        denied.cause,
        ThetaOwnershipRefusal::HostOnly as u8,
        "{denied:?}"
    );
    // The host assigns it, whatever the policy.
    ok(theta_session_set_owner(host, lamp, WHOLE, 1));
    net.until_owner(lamp, WHOLE, 1);
    // The host no longer holds it: its release is refused.
    fails(
        theta_session_release_ownership(host, lamp, WHOLE),
        ThetaStatus::NotOwner,
    );
    net.free();
}

#[test]
fn the_hook_puts_requests_to_the_host_engine_which_accepts_or_refuses_them() {
    let (world, position, _) = new_world();
    let mut config = ThetaSessionConfig::default();
    // SAFETY: valid out-pointer.
    ok(unsafe { theta_session_config_init(&mut config) });
    config.ownership_hook_ms = 10_000;
    let host = host_custom(world, &config);
    let mut net = Net::new(host);
    let (cup, plate) = (spawn(host), spawn(host));
    for e in [cup, plate] {
        ok(set(host, e, position, &[1; 12]));
        ok(theta_session_set_owner(host, e, WHOLE, NOBODY));
    }
    let (alice, bob) = (net.join(1), net.join(2));

    // Alice asks for the cup: the host's engine is asked, and accepts.
    net.forget();
    ok(theta_session_request_ownership(alice, cup, WHOLE));
    let asked = net.until_event(0, ThetaSessionEventKind::OwnershipRequested);
    assert_eq!((asked.peer, asked.entity, asked.component), (1, cup, WHOLE));
    assert_ne!(asked.request, 0);
    assert_eq!(
        owner(host, cup, WHOLE),
        NOBODY,
        "not granted before the answer"
    );
    ok(decide(host, asked.request, 1, ""));
    net.until_owner(cup, WHOLE, 1);
    // Answered: the request is gone.
    let err = fails(decide(host, asked.request, 1, ""), ThetaStatus::NotFound);
    assert!(err.contains(&asked.request.to_string()), "{err}");

    // Bob asks for the plate: the engine refuses, with its reason.
    net.forget();
    ok(theta_session_request_ownership(bob, plate, WHOLE));
    let asked = net.until_event(0, ThetaSessionEventKind::OwnershipRequested);
    assert_eq!((asked.peer, asked.entity), (2, plate));
    ok(decide(host, asked.request, 0, "not in this level"));
    let denied = net.until_event(2, ThetaSessionEventKind::OwnershipDenied);
    assert_eq!(
        denied.cause,
        ThetaOwnershipRefusal::Refused as u8,
        "{denied:?}"
    );
    assert_eq!(denied.text, "not in this level");
    assert_eq!(denied.entity, plate);
    assert_eq!(owner(host, plate, WHOLE), NOBODY);
    // A refusal without a reason gets a generic one (and a NULL reason is fine).
    net.forget();
    ok(theta_session_request_ownership(bob, plate, WHOLE));
    let asked = net.until_event(0, ThetaSessionEventKind::OwnershipRequested);
    // SAFETY: NULL with length 0.
    ok(unsafe { theta_session_decide_ownership(host, asked.request, 0, null(), 0) });
    let denied = net.until_event(2, ThetaSessionEventKind::OwnershipDenied);
    assert_eq!(denied.cause, ThetaOwnershipRefusal::Refused as u8);
    assert!(!denied.text.is_empty());
    // A request the policy refuses never reaches the engine: Bob asks for Alice's cup.
    net.forget();
    ok(theta_session_request_ownership(bob, cup, WHOLE));
    let denied = net.until_event(2, ThetaSessionEventKind::OwnershipDenied);
    assert_eq!(denied.cause, ThetaOwnershipRefusal::Held as u8);
    assert!(!net.seen[0]
        .iter()
        .any(|e| e.is(ThetaSessionEventKind::OwnershipRequested)));
    net.free();
}

/// Every new call on `session` with `entity`: the status each gives.
fn every_call(session: ThetaSession, entity: u64, component: u32) -> [ThetaStatus; 5] {
    let mut out = 0;
    [
        theta_session_request_ownership(session, entity, component),
        theta_session_release_ownership(session, entity, component),
        theta_session_set_ownership_policy(session, entity, component, 0, 0),
        theta_session_set_owner(session, entity, component, NOBODY),
        // SAFETY: valid out-pointer.
        unsafe { theta_session_owner(session, entity, component, &mut out) },
    ]
}

#[test]
fn misuse_of_every_ownership_call_is_a_status() {
    use ThetaStatus::*;
    let (world, position, _) = new_world();
    // A host whose config is the first, 64-byte layout (no ownership fields): accepted;
    // one shorter than any layout is refused.
    let mut config = ThetaSessionConfig::default();
    // SAFETY: valid out-pointer.
    ok(unsafe { theta_session_config_init(&mut config) });
    assert_eq!(config.struct_size, 80);
    config.struct_size = 64;
    let mut refused = config;
    refused.struct_size = 60;
    let mut none = ThetaSession { id: 0 };
    // SAFETY: a valid config (of 60 readable bytes at least) and out-pointer.
    let status =
        unsafe { theta_session_host_custom(world, null(), 0, &refused, null(), &mut none) };
    fails(status, InvalidArgument);
    let host = host_custom(world, &config);
    let mut net = Net::new(host);
    let ball = spawn(host);
    ok(set(host, ball, position, &[1; 12]));

    // A client not joined: NOT_CONNECTED for each of its calls (set_owner: not a host's).
    let lonely = join_custom(host, 9);
    assert_eq!(
        every_call(lonely, ball, WHOLE),
        [
            NotConnected,
            NotConnected,
            NotConnected,
            WrongRole,
            NotConnected
        ]
    );
    ok(theta_session_free(lonely));
    let alice = net.join(1);

    // Freed, forged and null handles.
    let freed = join_custom(host, 5);
    ok(theta_session_free(freed));
    for session in [
        freed,
        ThetaSession { id: 0 },
        ThetaSession { id: 0xDEAD_BEEF },
    ] {
        assert_eq!(every_call(session, ball, WHOLE), [InvalidHandle; 5]);
        fails(decide(session, 1, 1, ""), InvalidHandle);
    }
    // NULL out-pointer, NULL reason with a length.
    fails(
        // SAFETY: NULL is what is tested.
        unsafe { theta_session_owner(host, ball, WHOLE, null_mut()) },
        NullPointer,
    );
    fails(
        // SAFETY: NULL is what is tested.
        unsafe { theta_session_decide_ownership(host, 1, 0, null(), 3) },
        NullPointer,
    );
    // Unknown entities (never spawned, or 0) and unregistered components.
    let ghost = ball + 1000;
    for entity in [ghost, 0] {
        let [_, release, policy, set_owner, query] = every_call(host, entity, WHOLE);
        assert_eq!([release, policy, set_owner, query], [DeadEntity; 4]);
        let [request, release, policy, _, query] = every_call(alice, entity, WHOLE);
        assert_eq!([request, release, policy, query], [DeadEntity; 4]);
    }
    let err = fails(
        theta_session_set_owner(host, ball, 0xBAD, NOBODY),
        UnknownComponent,
    );
    assert!(err.contains("not registered"), "{err}");
    fails(
        theta_session_request_ownership(alice, ball, 0xBAD),
        UnknownComponent,
    );
    // Wrong roles.
    let err = fails(
        theta_session_request_ownership(host, ball, WHOLE),
        WrongRole,
    );
    assert!(err.contains("client"), "{err}");
    fails(theta_session_set_owner(alice, ball, WHOLE, 1), WrongRole);
    fails(decide(alice, 1, 1, ""), WrongRole);
    // Not the owner: a client's release or policy of the host's entity; the host's of a
    // client's.
    fails(
        theta_session_release_ownership(alice, ball, WHOLE),
        NotOwner,
    );
    fails(
        theta_session_set_ownership_policy(alice, ball, WHOLE, 1, 0),
        NotOwner,
    );
    let own = spawn(alice);
    net.converge();
    fails(theta_session_release_ownership(host, own, WHOLE), NotOwner);
    // No request of that id waits.
    let err = fails(decide(host, 77, 1, ""), NotFound);
    assert!(err.contains("77"), "{err}");
    // Bad values: a policy, a flag the engine may not set, a peer not connected, an
    // accept other than 0/1, a reason not UTF-8 or too long.
    let err = fails(
        theta_session_set_ownership_policy(host, ball, WHOLE, 4, 0),
        InvalidArgument,
    );
    assert!(err.contains("ThetaOwnershipPolicy"), "{err}");
    fails(
        theta_session_set_ownership_policy(host, ball, WHOLE, 0, 0x80),
        InvalidArgument,
    );
    let err = fails(
        theta_session_set_owner(host, ball, WHOLE, 7),
        InvalidArgument,
    );
    assert!(err.contains("not connected"), "{err}");
    fails(decide(host, 1, 2, ""), InvalidArgument);
    // SAFETY: a valid byte range.
    let status = unsafe { theta_session_decide_ownership(host, 1, 0, [0xFF, 0xFE].as_ptr(), 2) };
    fails(status, InvalidArgument);
    let long = "x".repeat(THETA_MAX_OWNERSHIP_REASON_BYTES + 1);
    fails(decide(host, 1, 0, &long), InvalidArgument);

    // None of it changed anything: the host still owns its entity, Alice hers.
    assert_eq!(owner(host, ball, WHOLE), 0);
    assert_eq!(owner(alice, own, WHOLE), 1);
    assert_eq!(owner(host, own, position), 1);
    // The 64-byte config left the ownership defaults: no hook, so a request of a free
    // object is granted without asking the engine.
    ok(theta_session_set_owner(host, ball, WHOLE, NOBODY));
    net.forget();
    ok(theta_session_request_ownership(alice, ball, WHOLE));
    net.until_owner(ball, WHOLE, 1);
    assert!(!net.seen[0]
        .iter()
        .any(|e| e.is(ThetaSessionEventKind::OwnershipRequested)));
    net.free();
}
