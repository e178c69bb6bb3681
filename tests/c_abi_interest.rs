//! Interest management through the C ABI, as a C engine drives it: a host managing
//! interest and two clients over the in-memory transport of `tests/common/transport.rs`.
//! The host reads positions from a component; one client looks at a corner through a
//! sphere, the other subscribes a scope; each holds exactly what the host says it sees,
//! hash for hash; the sphere moves away and what it left goes as `LEFT` events, out of
//! that client's world but alive on the host. A host that decides alone
//! (`interest_host_only`) places entities itself and sets a client's box. Every misuse of
//! every new call is a status that changes nothing. The same scenario in C
//! (`tests/c/interest.c`), built with warnings as errors and run under valgrind, closes
//! the file. Exported functions only, every wait bounded.

use std::ptr::{null, null_mut};

use theta_net::ffi::*;

mod common;
use common::c_build::{build, run_checked};
use common::transport::{hash, host_custom, join_custom, mint, set, spawn, Event, Net};
use common::{fails, ok};

/// The corner client (A), the scope client (B).
const A: u16 = 1;
const B: u16 = 2;
/// The scope some entities carry.
const SCOPE: u32 = 7;
/// Grid of entities: `SIDE` x `SIDE`, `SPACING` metres apart on the ground plane.
const SIDE: usize = 8;
const SPACING: f32 = 5.0;

/// A world with the test's component types: (world, position, tag).
fn new_world() -> (ThetaWorld, u32, u32) {
    let mut world = ThetaWorld { id: 0 };
    let (mut position, mut tag) = (0, 0);
    // SAFETY: valid out-pointers and names.
    unsafe {
        ok(theta_world_new(null(), &mut world));
        ok(theta_world_register_fixed(
            world,
            b"interest.Position".as_ptr(),
            17,
            12,
            &mut position,
        ));
        ok(theta_world_register_fixed(
            world,
            b"interest.Tag".as_ptr(),
            12,
            4,
            &mut tag,
        ));
    }
    (world, position, tag)
}

/// A session config managing interest over `cell`-metre cells (0: off).
fn config(cell: f32, host_only: u8) -> ThetaSessionConfig {
    let mut config = ThetaSessionConfig::default();
    // SAFETY: valid out-pointer.
    ok(unsafe { theta_session_config_init(&mut config) });
    assert_eq!(config.struct_size as usize, size_of::<ThetaSessionConfig>());
    config.interest_cell = cell;
    config.interest_host_only = host_only;
    config
}

/// A client of `host` joining as `peer` (not connected yet).
fn client_of(host: ThetaSession, peer: u16) -> ThetaSession {
    let (registry, _, _) = new_world();
    let client = join_custom(&mint(host, peer), registry);
    ok(theta_world_free(registry));
    client
}

/// Three little-endian floats, as a position component holds them.
fn position_bytes(p: [f32; 3]) -> Vec<u8> {
    p.iter().flat_map(|c| c.to_le_bytes()).collect()
}

fn sphere(center: [f32; 3], radius: f32, outer: f32) -> ThetaInterestVolume {
    ThetaInterestVolume {
        kind: THETA_INTEREST_VOLUME_SPHERE,
        a: center,
        b: [0.0; 3],
        inner: radius,
        outer,
    }
}

fn aabb(min: [f32; 3], max: [f32; 3], margin: f32) -> ThetaInterestVolume {
    ThetaInterestVolume {
        kind: THETA_INTEREST_VOLUME_BOX,
        a: min,
        b: max,
        inner: 0.0,
        outer: margin,
    }
}

fn set_interest(
    client: ThetaSession,
    volumes: &[ThetaInterestVolume],
    scopes: &[u32],
) -> ThetaStatus {
    // SAFETY: valid arrays of their lengths.
    unsafe {
        theta_session_set_interest(
            client,
            volumes.as_ptr(),
            volumes.len(),
            scopes.as_ptr(),
            scopes.len(),
        )
    }
}

fn set_client_interest(
    host: ThetaSession,
    peer: u16,
    volumes: &[ThetaInterestVolume],
    scopes: &[u32],
) -> ThetaStatus {
    // SAFETY: valid arrays of their lengths.
    unsafe {
        theta_session_set_client_interest(
            host,
            peer,
            volumes.as_ptr(),
            volumes.len(),
            scopes.as_ptr(),
            scopes.len(),
        )
    }
}

fn set_scopes(host: ThetaSession, entity: u64, scopes: &[u32]) -> ThetaStatus {
    // SAFETY: a valid array of its length.
    unsafe { theta_session_set_interest_scopes(host, entity, scopes.as_ptr(), scopes.len()) }
}

fn set_position(host: ThetaSession, entity: u64, position: Option<[f32; 3]>) -> ThetaStatus {
    let p = position.as_ref().map_or(null(), |p| p.as_ptr());
    // SAFETY: NULL or 3 readable floats.
    unsafe { theta_session_set_interest_position(host, entity, p) }
}

fn sees(host: ThetaSession, peer: u16, entity: u64) -> bool {
    let mut out = 7u8;
    // SAFETY: valid out-pointer.
    ok(unsafe { theta_session_sees(host, peer, entity, &mut out) });
    assert!(out <= 1, "{out}");
    out == 1
}

fn interest_hash(host: ThetaSession, peer: u16) -> u64 {
    let mut h = 0;
    // SAFETY: valid out-pointer.
    ok(unsafe { theta_session_interest_hash(host, peer, &mut h) });
    h
}

fn alive(session: ThetaSession, entity: u64) -> bool {
    let mut out = 0u8;
    // SAFETY: valid out-pointer.
    ok(unsafe { theta_session_is_alive(session, entity, &mut out) });
    out == 1
}

/// Rounds until the host's view is `ready` (it took the latest wish) and `client` (peer
/// `peer`) holds what the host says it sees, then a few more to show it stays so.
fn until_holds(
    net: &mut Net,
    client: ThetaSession,
    peer: u16,
    what: &str,
    ready: impl Fn() -> bool,
) {
    let host = net.host;
    net.until(what, |_| {
        ready() && hash(client) == interest_hash(host, peer)
    });
    for _ in 0..5 {
        net.round();
    }
    assert_eq!(
        hash(client),
        interest_hash(host, peer),
        "{what}: not stable"
    );
}

/// Checks both ways that `client` holds exactly the entities the host says `peer` sees;
/// returns those.
fn check_holds(host: ThetaSession, client: ThetaSession, peer: u16, entities: &[u64]) -> Vec<u64> {
    let mut seen = Vec::new();
    for &e in entities {
        let (sees, holds) = (sees(host, peer, e), alive(client, e));
        assert_eq!(
            sees, holds,
            "peer {peer}, entity {e:#x}: sees {sees}, holds {holds}"
        );
        if sees {
            seen.push(e);
        }
    }
    seen
}

/// The scene: a grid of `SIDE` x `SIDE` entities with positions, some in `SCOPE`, and
/// one global entity (a tag, no position, no scope). Returns (grid, scoped, global).
fn scene(host: ThetaSession, position: u32, tag: u32) -> (Vec<[u64; 2]>, Vec<u64>, u64) {
    let mut grid = Vec::new();
    let mut scoped = Vec::new();
    for i in 0..SIDE {
        for j in 0..SIDE {
            let e = spawn(host);
            let p = [i as f32 * SPACING, 0.0, j as f32 * SPACING];
            ok(set(host, e, position, &position_bytes(p)));
            ok(set(host, e, tag, &[i as u8, j as u8, 0, 0]));
            // A diagonal band, crossing the grid far from the corner A looks at.
            if i + j == SIDE - 1 {
                ok(set_scopes(host, e, &[SCOPE, 99]));
                scoped.push(e);
            }
            grid.push([e, (i * SIDE + j) as u64]);
        }
    }
    let global = spawn(host);
    ok(set(host, global, tag, &[0xFF; 4]));
    (grid, scoped, global)
}

/// Entities of `grid` within `radius` of `center` (on the ground plane).
fn within(grid: &[[u64; 2]], center: [f32; 3], radius: f32) -> Vec<u64> {
    grid.iter()
        .filter(|[_, n]| {
            let (i, j) = ((*n as usize / SIDE) as f32, (*n as usize % SIDE) as f32);
            let d2 = (i * SPACING - center[0]).powi(2) + (j * SPACING - center[2]).powi(2);
            d2 <= radius * radius
        })
        .map(|[e, _]| *e)
        .collect()
}

#[test]
fn each_client_holds_what_the_host_says_it_sees_and_what_leaves_goes_as_left_events() {
    let (world, position, tag) = new_world();
    let host = host_custom(world, &config(10.0, 0), null());
    let (grid, scoped, global) = scene(host, position, tag);
    let entities: Vec<u64> = grid.iter().map(|[e, _]| *e).chain([global]).collect();
    assert_eq!(entities.len(), SIDE * SIDE + 1);
    // Positions are read from the component from now on.
    ok(theta_session_set_interest_source(host, position, 0));
    let mut net = Net::new(host);

    // A looks at the corner at the origin before it joins; B subscribes the scope after.
    let corner = sphere([0.0; 3], 12.0, 14.0);
    let a = client_of(host, A);
    ok(set_interest(a, &[corner], &[]));
    net.join(a, 100 + u64::from(A));
    let b = client_of(host, B);
    net.join(b, 100 + u64::from(B));
    ok(set_interest(b, &[], &[SCOPE]));
    let near = within(&grid, [0.0; 3], 12.0);
    until_holds(&mut net, a, A, "A holds its corner", || {
        sees(host, A, near[0])
    });
    until_holds(&mut net, b, B, "B holds its scope", || {
        sees(host, B, scoped[0])
    });

    // Both ways, every entity: what the host says each sees is what each holds.
    assert_eq!(near.len(), 8, "the corner's sphere holds 8 of the grid");
    let mut expected_a: Vec<u64> = near.iter().copied().chain([global]).collect();
    expected_a.sort_unstable();
    assert_eq!(check_holds(host, a, A, &entities), expected_a);
    let mut expected_b: Vec<u64> = scoped.iter().copied().chain([global]).collect();
    expected_b.sort_unstable();
    assert_eq!(check_holds(host, b, B, &entities), expected_b);
    assert_ne!(hash(a), hash(host), "A does not hold the whole world");
    assert_ne!(hash(a), hash(b));
    // A seen entity arrived whole: its values are the host's.
    let mut value = [0u8; 12];
    let mut len = 0;
    // SAFETY: 12 writable bytes and an out-pointer.
    ok(unsafe { theta_session_get(a, near[0], position, value.as_mut_ptr(), 12, &mut len) });
    assert_eq!(&value[..len], &position_bytes([0.0; 3])[..]);

    // A moves its sphere to the far corner: what it saw leaves (LEFT events, gone from its
    // world, alive on the host), what is there enters.
    net.forget();
    let far = [
        (SIDE - 1) as f32 * SPACING,
        0.0,
        (SIDE - 1) as f32 * SPACING,
    ];
    ok(set_interest(a, &[sphere(far, 12.0, 14.0)], &[]));
    let index_a = 1;
    net.until("A hears every entity of the corner leave", |seen| {
        near.iter().all(|&e| {
            seen[index_a]
                .iter()
                .any(|ev| ev.is(ThetaSessionEventKind::Left) && ev.entity == e)
        })
    });
    let there = within(&grid, far, 12.0);
    until_holds(&mut net, a, A, "A holds the far corner", || {
        sees(host, A, there[0])
    });
    let left: Vec<&Event> = net.seen[index_a]
        .iter()
        .filter(|e| e.is(ThetaSessionEventKind::Left))
        .collect();
    assert!(left.iter().all(|e| e.kind == 25), "LEFT is event kind 25");
    let mut left_entities: Vec<u64> = left.iter().map(|e| e.entity).collect();
    left_entities.sort_unstable();
    let mut near_sorted = near.clone();
    near_sorted.sort_unstable();
    assert_eq!(left_entities, near_sorted, "exactly what it no longer sees");
    for &e in &near {
        assert!(!alive(a, e), "left A's world");
        assert!(alive(host, e), "still alive on the host");
        assert!(!sees(host, A, e));
    }
    assert!(
        !net.seen[index_a]
            .iter()
            .any(|e| e.is(ThetaSessionEventKind::Despawn)),
        "leaving is not a despawn"
    );
    let mut expected_a: Vec<u64> = there.iter().copied().chain([global]).collect();
    expected_a.sort_unstable();
    assert_eq!(check_holds(host, a, A, &entities), expected_a);
    // B saw none of it.
    assert_eq!(check_holds(host, b, B, &entities), expected_b);

    // The host's engine adds a box to B (server-side rule): B gets the row x = 0 too,
    // until B wishes otherwise.
    let row = aabb([-1.0, -1.0, -1.0], [1.0, 1.0, 40.0], 2.0);
    ok(set_client_interest(host, B, &[row], &[SCOPE]));
    let in_row = grid[1][0];
    until_holds(&mut net, b, B, "B holds the host's box", || {
        sees(host, B, in_row)
    });
    // The row x = 0 is the first SIDE entities of the grid.
    let mut expected_b2: Vec<u64> = grid[..SIDE]
        .iter()
        .map(|[e, _]| *e)
        .chain(scoped.iter().copied())
        .chain([global])
        .collect();
    expected_b2.sort_unstable();
    expected_b2.dedup();
    assert_eq!(check_holds(host, b, B, &entities), expected_b2);
    // (A wish equal to the last one is no change: B says something new.)
    ok(set_interest(b, &[], &[SCOPE, 42]));
    until_holds(&mut net, b, B, "B's own wish again", || {
        !sees(host, B, in_row)
    });
    assert_eq!(check_holds(host, b, B, &entities), expected_b);

    // Priorities: the host weighs one of its entities, a client one of its own.
    ok(theta_session_set_priority(host, grid[0][0], 50.0));
    let own = spawn(a);
    ok(set(a, own, tag, &[1, 2, 3, 4]));
    ok(theta_session_set_priority(a, own, 0.5));
    // What a client owns stays in its interest, wherever it is.
    ok(set(
        a,
        own,
        position,
        &position_bytes([-500.0, 0.0, -500.0]),
    ));
    until_holds(&mut net, a, A, "A holds its own entity", || {
        alive(host, own)
    });
    assert!(sees(host, A, own));
    assert!(!sees(host, B, own));
    net.free();
}

#[test]
fn a_host_that_decides_alone_places_entities_and_sets_what_a_client_sees() {
    let (world, _, tag) = new_world();
    let host = host_custom(world, &config(10.0, 1), null());
    // Ten entities without a position component, placed by the engine along x.
    let row: Vec<u64> = (0..10)
        .map(|i| {
            let e = spawn(host);
            ok(set(host, e, tag, &[i, 0, 0, 0]));
            ok(set_position(host, e, Some([i as f32 * 10.0, 0.0, 0.0])));
            e
        })
        .collect();
    let mut net = Net::new(host);
    let client = client_of(host, A);
    net.join(client, 101);
    // The client's wish is ignored: the host decides.
    ok(set_interest(
        client,
        &[sphere([0.0; 3], 1000.0, 1000.0)],
        &[],
    ));
    until_holds(
        &mut net,
        client,
        A,
        "nothing: the host has not decided",
        || true,
    );
    assert!(check_holds(host, client, A, &row).is_empty());

    // The host's box: x from 0 to 25 holds the first three.
    ok(set_client_interest(
        host,
        A,
        &[aabb([0.0, -1.0, -1.0], [25.0, 1.0, 1.0], 1.0)],
        &[3],
    ));
    until_holds(&mut net, client, A, "the host's box", || {
        sees(host, A, row[0])
    });
    assert_eq!(check_holds(host, client, A, &row), row[..3]);
    // Unplaced, an entity without scope is global: seen wherever it was.
    ok(set_position(host, row[9], None));
    // In a subscribed scope, one is seen wherever it is.
    ok(set_scopes(host, row[8], &[3]));
    // Moved out of the box, one leaves.
    ok(set_position(host, row[0], Some([-50.0, 0.0, 0.0])));
    until_holds(&mut net, client, A, "placed, scoped and global", || {
        !sees(host, A, row[0]) && sees(host, A, row[8]) && sees(host, A, row[9])
    });
    assert_eq!(
        check_holds(host, client, A, &row),
        [row[1], row[2], row[8], row[9]]
    );
    net.free();
}

/// Every call taking a session, on `session` with `entity`: the status each gives.
fn every_call(session: ThetaSession, entity: u64, component: u32) -> [ThetaStatus; 8] {
    let (mut out_sees, mut out_hash) = (0u8, 0u64);
    let volumes = [sphere([0.0; 3], 1.0, 2.0)];
    [
        set_position(session, entity, Some([1.0, 2.0, 3.0])),
        theta_session_set_interest_source(session, component, 0),
        set_scopes(session, entity, &[1]),
        set_client_interest(session, A, &volumes, &[1]),
        set_interest(session, &volumes, &[1]),
        theta_session_set_priority(session, entity, 2.0),
        // SAFETY: valid out-pointers.
        unsafe { theta_session_sees(session, A, entity, &mut out_sees) },
        // SAFETY: valid out-pointers.
        unsafe { theta_session_interest_hash(session, A, &mut out_hash) },
    ]
}

#[test]
fn misuse_of_every_interest_call_is_a_status_that_changes_nothing() {
    use ThetaStatus::*;
    let (world, position, tag) = new_world();

    // Configs: a cell that is no size, an unknown flag, reserved bytes set: refused.
    for (bad, what) in [
        (config(-1.0, 0), "interest_cell -1"),
        (config(f32::NAN, 0), "interest_cell NaN"),
        (config(10.0, 2), "interest_host_only is 2"),
        (
            ThetaSessionConfig {
                reserved_interest: [0, 0, 1],
                ..config(10.0, 0)
            },
            "reserved_interest",
        ),
    ] {
        let mut none = ThetaSession { id: 0 };
        // SAFETY: a valid config and out-pointer.
        let status =
            unsafe { theta_session_host_custom(world, null(), 0, &bad, null(), &mut none) };
        let err = fails(status, InvalidArgument);
        assert!(err.contains(what), "{err}");
        assert_eq!(none.id, 0);
    }
    // A caller of the ownership layout (72 bytes): the bytes past it are not its own, so
    // the interest cell there is not read: a host without interest.
    let mut old = config(10.0, 0);
    old.struct_size = 72;
    let plain = host_custom(world, &old, null());
    let e = spawn(plain);
    for (status, name) in every_call(plain, e, position)[..4].iter().zip([
        "position",
        "source",
        "scopes",
        "client interest",
    ]) {
        assert_eq!(*status, InterestOff, "{name}: {}", common::last_error());
    }
    let err = fails(set_scopes(plain, e, &[1]), InterestOff);
    assert!(
        err.contains("interest_cell") || err.contains("interest cell"),
        "{err}"
    );
    // Without interest every client sees everything: sees and the hash say so.
    assert!(sees(plain, A, e));
    assert_eq!(interest_hash(plain, A), hash(plain));
    ok(theta_session_set_priority(plain, e, 3.0));
    ok(theta_session_free(plain));

    // A host with interest and client A holding its corner.
    let (world, position2, tag2) = new_world();
    assert_eq!((position2, tag2), (position, tag));
    let host = host_custom(world, &config(10.0, 0), null());
    let (grid, _, global) = scene(host, position, tag);
    let entities: Vec<u64> = grid.iter().map(|[e, _]| *e).chain([global]).collect();
    ok(theta_session_set_interest_source(host, position, 0));
    let mut net = Net::new(host);
    let a = client_of(host, A);
    net.join(a, 101);
    ok(set_interest(a, &[sphere([0.0; 3], 12.0, 14.0)], &[]));
    let corner_entity = grid[0][0];
    until_holds(&mut net, a, A, "A holds its corner", || {
        sees(host, A, corner_entity)
    });
    let before = check_holds(host, a, A, &entities);
    let hash_before = hash(a);
    let target = grid[0][0];

    // Freed, forged and null handles.
    let freed = client_of(host, 5);
    ok(theta_session_free(freed));
    for session in [
        freed,
        ThetaSession { id: 0 },
        ThetaSession { id: 0xDEAD_BEEF },
    ] {
        assert_eq!(every_call(session, target, position), [InvalidHandle; 8]);
    }
    // NULL pointers with a count, NULL out-pointers.
    let err = fails(
        // SAFETY: NULL is what is tested.
        unsafe { theta_session_set_interest_scopes(host, target, null(), 2) },
        NullPointer,
    );
    assert!(err.contains("scopes"), "{err}");
    let err = fails(
        // SAFETY: NULL is what is tested.
        unsafe { theta_session_set_client_interest(host, A, null(), 1, null(), 0) },
        NullPointer,
    );
    assert!(err.contains("volumes"), "{err}");
    fails(
        // SAFETY: NULL is what is tested.
        unsafe { theta_session_set_interest(a, null(), 0, null(), 3) },
        NullPointer,
    );
    fails(
        // SAFETY: NULL is what is tested.
        unsafe { theta_session_sees(host, A, target, null_mut()) },
        NullPointer,
    );
    fails(
        // SAFETY: NULL is what is tested.
        unsafe { theta_session_interest_hash(host, A, null_mut()) },
        NullPointer,
    );
    // NULL arrays with a count of 0 are fine: no scopes (here, the ones it had).
    // SAFETY: NULL with a count of 0.
    ok(unsafe { theta_session_set_interest_scopes(host, global, null(), 0) });

    // Bad numbers: a NaN position, bad volumes (each named), too many of them.
    let err = fails(
        set_position(host, target, Some([f32::NAN, 0.0, 0.0])),
        InvalidArgument,
    );
    assert!(err.contains("finite"), "{err}");
    let origin = [0.0; 3];
    let bad_volumes = [
        (sphere(origin, -1.0, 1.0), "radius"),
        (sphere(origin, 5.0, 4.0), "outer"),
        (sphere([f32::INFINITY, 0.0, 0.0], 1.0, 1.0), "finite"),
        (aabb([1.0, 0.0, 0.0], [0.0, 1.0, 1.0], 0.0), "min <= max"),
        (aabb(origin, [1.0; 3], -1.0), "margin"),
        (
            ThetaInterestVolume {
                kind: 2,
                ..sphere(origin, 1.0, 1.0)
            },
            "kind 2",
        ),
    ];
    for (volume, what) in bad_volumes {
        let volumes = [sphere(origin, 1.0, 1.0), volume];
        for status in [
            set_interest(a, &volumes, &[]),
            set_client_interest(host, A, &volumes, &[]),
        ] {
            let err = fails(status, InvalidArgument);
            assert!(err.contains("volumes[1]") && err.contains(what), "{err}");
        }
    }
    let nine = [sphere(origin, 1.0, 1.0); THETA_MAX_INTEREST_VOLUMES + 1];
    let err = fails(set_interest(a, &nine, &[]), InvalidArgument);
    assert!(err.contains("9 given, at most 8"), "{err}");
    fails(set_client_interest(host, A, &nine, &[]), InvalidArgument);
    let many: Vec<u32> = (0..THETA_MAX_INTEREST_SCOPES as u32 + 1).collect();
    let err = fails(set_scopes(host, target, &many), InvalidArgument);
    assert!(err.contains("65 given, at most 64"), "{err}");
    fails(set_interest(a, &[], &many), InvalidArgument);
    fails(set_client_interest(host, A, &[], &many), InvalidArgument);
    // The position source: 12 bytes at offset 4 do not fit a 12-byte component; an
    // unregistered component.
    let err = fails(
        theta_session_set_interest_source(host, position, 4),
        InvalidArgument,
    );
    assert!(err.contains("offset 4"), "{err}");
    fails(
        theta_session_set_interest_source(host, tag, 0),
        InvalidArgument,
    );
    let err = fails(
        theta_session_set_interest_source(host, 0xBAD, 0),
        UnknownComponent,
    );
    assert!(err.contains("not registered"), "{err}");
    // Priority weights out of range.
    for weight in [0.0, f32::NAN, 1000.0, -1.0] {
        let err = fails(
            theta_session_set_priority(host, target, weight),
            InvalidArgument,
        );
        assert!(err.contains("priority weight"), "{err}");
    }
    // Dead entities (never spawned, or 0).
    for entity in [target + 100_000, 0] {
        let mut out = 0;
        for status in [
            set_position(host, entity, Some([0.0; 3])),
            set_scopes(host, entity, &[1]),
            theta_session_set_priority(host, entity, 2.0),
            theta_session_set_priority(a, entity, 2.0),
            // SAFETY: valid out-pointer.
            unsafe { theta_session_sees(host, A, entity, &mut out) },
        ] {
            let err = fails(status, DeadEntity);
            assert!(
                err.contains("not alive") || err.contains("no live"),
                "{err}"
            );
        }
    }
    // Wrong roles: a client's host calls, the host's client call; the host's own peer.
    let (mut out, mut out_hash) = (0u8, 0u64);
    for status in [
        set_position(a, target, Some([1.0, 2.0, 3.0])),
        theta_session_set_interest_source(a, position, 0),
        set_scopes(a, target, &[1]),
        set_client_interest(a, B, &[sphere(origin, 1.0, 2.0)], &[1]),
        // SAFETY: valid out-pointers.
        unsafe { theta_session_sees(a, B, target, &mut out) },
        // SAFETY: valid out-pointers.
        unsafe { theta_session_interest_hash(a, B, &mut out_hash) },
    ] {
        let err = fails(status, WrongRole);
        assert!(err.contains("host"), "{err}");
    }
    let err = fails(set_interest(host, &[], &[]), WrongRole);
    assert!(err.contains("client"), "{err}");
    for status in [
        set_client_interest(host, 0, &[], &[]),
        // SAFETY: valid out-pointers.
        unsafe { theta_session_sees(host, 0, target, &mut out) },
        // SAFETY: valid out-pointers.
        unsafe { theta_session_interest_hash(host, 0, &mut out_hash) },
    ] {
        let err = fails(status, InvalidArgument);
        assert!(err.contains("host's own"), "{err}");
    }
    assert_eq!((out, out_hash), (0, 0), "nothing written on failure");

    // None of it changed anything: A holds what it held, the host agrees.
    for _ in 0..10 {
        net.round();
    }
    assert_eq!(hash(a), hash_before);
    assert_eq!(interest_hash(host, A), hash_before);
    assert_eq!(check_holds(host, a, A, &entities), before);
    net.free();
}

#[test]
fn the_c_interest_test_builds_with_warnings_as_errors_and_passes_under_valgrind() {
    let binary = build(
        "cc",
        &["-std=c11"],
        "tests/c/interest.c",
        "theta-interest-c",
    );
    let stdout = run_checked(&binary, &[]);
    assert!(
        stdout.contains("A holds its corner: 9 entities"),
        "{stdout}"
    );
    assert!(stdout.contains("B holds its scope: 9 entities"), "{stdout}");
    assert!(stdout.contains("A left 8 entities"), "{stdout}");
    assert!(
        stdout.contains("misuse: every status as expected"),
        "{stdout}"
    );
}
