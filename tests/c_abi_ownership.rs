//! Ownership through the C ABI, as a C engine drives it: a host and two clients over an
//! in-memory custom transport (in order, lossless) driven by the test. A host object set
//! to nobody is grabbed by one client while the other is denied; the owner's writes reach
//! everyone; a release leaves the last write and nobody as the owner; one component
//! changes hands alone; the host's hook puts requests to the engine, which accepts or
//! refuses them with a reason; and every misuse of every new call is a status. Exported
//! functions only, every wait bounded.

use std::ptr::{null, null_mut};

use theta_net::ffi::*;

mod common;
use common::transport::{events, host_custom, join_custom, mint, set, spawn, Event, Net};
use common::{fails, ok};

const WHOLE: u32 = 0;
const NOBODY: u16 = THETA_OWNER_NOBODY;

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

/// A client of `host` joining as `peer` (not connected yet).
fn client_of(host: ThetaSession, peer: u16) -> ThetaSession {
    let (registry, _, _) = new_world();
    let client = join_custom(&mint(host, peer), registry);
    ok(theta_world_free(registry));
    client
}

/// Client `peer` joins over the test's transport (the host calls its connection
/// `100 + peer`) and catches up with the host.
fn join(net: &mut Net, peer: u16) -> ThetaSession {
    let client = client_of(net.host, peer);
    net.join(client, 100 + u64::from(peer));
    net.converge();
    client
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

/// Rounds until every session saw `OWNERSHIP_CHANGED` of `(entity, component)` naming
/// `owner`.
fn until_owner(net: &mut Net, entity: u64, component: u32, owner: u16) {
    let changed = |e: &Event| {
        e.is(ThetaSessionEventKind::OwnershipChanged)
            && (e.entity, e.component, e.peer) == (entity, component, owner)
    };
    net.until("OWNERSHIP_CHANGED on every peer", |seen| {
        seen.iter().all(|s| s.iter().any(changed))
    });
}

#[test]
fn a_host_object_set_free_is_grabbed_written_denied_to_the_other_and_released() {
    let (world, position, color) = new_world();
    let host = host_custom(world, null(), null());
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
    let (alice, bob) = (join(&mut net, 1), join(&mut net, 2));
    assert_eq!(owner(alice, ball, WHOLE), NOBODY);
    assert_eq!(owner(bob, ball, position), NOBODY);
    // Before a grant a client may not write it.
    fails(set(alice, ball, position, &[2; 12]), ThetaStatus::NotOwner);

    // Alice grabs it: every peer hears she owns it.
    net.forget();
    ok(theta_session_request_ownership(alice, ball, WHOLE));
    until_owner(&mut net, ball, WHOLE, 1);
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
    until_owner(&mut net, ball, WHOLE, NOBODY);
    net.converge();
    for session in net.sessions() {
        assert_eq!(owner(session, ball, WHOLE), NOBODY);
        assert_eq!(get(session, ball, position), [9; 12]);
    }
    fails(set(alice, ball, position, &[4; 12]), ThetaStatus::NotOwner);
    // Released, it is free for Bob.
    ok(theta_session_request_ownership(bob, ball, WHOLE));
    until_owner(&mut net, ball, WHOLE, 2);
    net.free();
}

#[test]
fn one_component_changes_hands_and_policies_decide_requests() {
    let (world, position, color) = new_world();
    let host = host_custom(world, null(), null());
    let mut net = Net::new(host);
    let lamp = spawn(host);
    ok(set(host, lamp, position, &[1; 12]));
    ok(set(host, lamp, color, &[1; 4]));
    ok(theta_session_set_owner(host, lamp, color, NOBODY));
    let (alice, bob) = (join(&mut net, 1), join(&mut net, 2));

    // Alice takes the lamp's color only; the host keeps the rest.
    ok(theta_session_request_ownership(alice, lamp, color));
    until_owner(&mut net, lamp, color, 1);
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
    until_owner(&mut net, lamp, color, 2);
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
    until_owner(&mut net, lamp, WHOLE, 1);
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
    let host = host_custom(world, &config, null());
    let mut net = Net::new(host);
    let (cup, plate) = (spawn(host), spawn(host));
    for e in [cup, plate] {
        ok(set(host, e, position, &[1; 12]));
        ok(theta_session_set_owner(host, e, WHOLE, NOBODY));
    }
    let (alice, bob) = (join(&mut net, 1), join(&mut net, 2));

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
    until_owner(&mut net, cup, WHOLE, 1);
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
    let host = host_custom(world, &config, null());
    let mut net = Net::new(host);
    let ball = spawn(host);
    ok(set(host, ball, position, &[1; 12]));

    // A client not joined: NOT_CONNECTED for each of its calls (set_owner: not a host's).
    let lonely = client_of(host, 9);
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
    let alice = join(&mut net, 1);

    // Freed, forged and null handles.
    let freed = client_of(host, 5);
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
    until_owner(&mut net, ball, WHOLE, 1);
    assert!(!net.seen[0]
        .iter()
        .any(|e| e.is(ThetaSessionEventKind::OwnershipRequested)));
    net.free();
}
