//! The seed's integration scenarios, on the FlatBuffers snapshot/delta pipeline: a host
//! world replicated into a replica through encoded chunks and frames.

use theta_net::{
    Applied, ChangeKind, ComponentId, DeltaTracker, EntityId, EventKind, Layout, Replica, World,
    DEFAULT_MAX_CHUNK_BYTES,
};

struct Host {
    world: World,
    position: ComponentId,
    velocity: ComponentId,
}

fn host() -> Host {
    let mut world = World::default();
    let position = world.register("test.Position", Layout::Fixed(12)).unwrap();
    let velocity = world.register("test.Velocity", Layout::Fixed(12)).unwrap();
    Host {
        world,
        position,
        velocity,
    }
}

fn vec3(x: f32, y: f32, z: f32) -> Vec<u8> {
    [x, y, z].iter().flat_map(|v| v.to_le_bytes()).collect()
}

fn drain_events(replica: &mut Replica) -> Vec<(EventKind, EntityId, ComponentId, Vec<u8>)> {
    let events = replica.poll_events(usize::MAX);
    events
        .iter()
        .map(|e| (e.kind, e.entity, e.component, e.data.to_vec()))
        .collect()
}

#[test]
fn full_snapshot_to_delta_convergence() {
    let mut host = host();
    let a = host.world.spawn().unwrap();
    let b = host.world.spawn().unwrap();
    host.world
        .set(a, host.position, &vec3(1.0, 2.0, 3.0))
        .unwrap();
    host.world
        .set(a, host.velocity, &vec3(0.5, 0.0, 0.0))
        .unwrap();
    host.world
        .set(b, host.position, &vec3(-1.0, 0.0, 4.0))
        .unwrap();

    let snapshot = host.world.snapshot(DEFAULT_MAX_CHUNK_BYTES);
    let mut replica = Replica::new();
    for chunk in &snapshot.chunks {
        assert!(matches!(
            replica.apply_snapshot_chunk(&chunk.bytes).unwrap(),
            Applied::SnapshotChunk { .. }
        ));
    }
    assert_eq!(replica.snapshot_tick(), snapshot.tick);
    assert_eq!(replica.state_hash(), host.world.state_hash());
    let events = drain_events(&mut replica);
    assert_eq!(events.iter().filter(|e| e.0 == EventKind::Spawn).count(), 2);
    assert_eq!(
        events.iter().filter(|e| e.0 == EventKind::Insert).count(),
        3
    );

    // A fresh tracker advertises descriptors in its first frame, never again.
    let mut tracker = DeltaTracker::new();
    let first = tracker.diff(&host.world).unwrap();
    assert_eq!(first.descriptors.len(), 2);
    replica.apply_delta(&first.encode()).unwrap();
    assert!(
        drain_events(&mut replica).is_empty(),
        "same state: no events"
    );

    host.world
        .set(a, host.position, &vec3(1.5, 2.0, 3.0))
        .unwrap();
    host.world
        .set(b, host.velocity, &vec3(0.0, 1.0, 0.0))
        .unwrap();
    let second = tracker.diff(&host.world).unwrap();
    assert!(second.descriptors.is_empty());
    replica.apply_delta(&second.encode()).unwrap();
    assert_eq!(replica.state_hash(), host.world.state_hash());
    let events = drain_events(&mut replica);
    assert!(events.contains(&(EventKind::Update, a, host.position, vec3(1.5, 2.0, 3.0))));
    assert!(events.contains(&(EventKind::Insert, b, host.velocity, vec3(0.0, 1.0, 0.0))));

    // A tracker that starts at the snapshot knows its descriptors were sent.
    let mut after_snapshot =
        DeltaTracker::starting_at(snapshot.tick, snapshot.described.iter().copied());
    host.world
        .set(b, host.position, &vec3(9.0, 9.0, 9.0))
        .unwrap();
    let frame = after_snapshot.diff(&host.world).unwrap();
    assert!(frame.descriptors.is_empty());
    assert_eq!(frame.base_tick, snapshot.tick);
}

#[test]
fn large_world_snapshot_chunking() {
    let mut host = host();
    let entities: Vec<EntityId> = (0..100)
        .map(|i| {
            let e = host.world.spawn().unwrap();
            host.world
                .set(e, host.position, &vec3(i as f32, 0.0, 0.0))
                .unwrap();
            e
        })
        .collect();
    let snapshot = host.world.snapshot(512);
    assert!(snapshot.chunks.len() > 1);
    for (i, chunk) in snapshot.chunks.iter().enumerate() {
        assert_eq!(chunk.index as usize, i, "sequential indices");
        assert!(chunk.bytes.len() <= 512);
    }
    assert_eq!(snapshot.total_components(), 100);

    // Delivered back to front: order does not matter, nothing is lost.
    let mut replica = Replica::new();
    for chunk in snapshot.chunks.iter().rev() {
        replica.apply_snapshot_chunk(&chunk.bytes).unwrap();
    }
    assert_eq!(replica.snapshot_progress(), None, "complete");
    for (i, &e) in entities.iter().enumerate() {
        assert_eq!(
            replica.world().get(e, host.position),
            Some(&vec3(i as f32, 0.0, 0.0)[..])
        );
    }
    assert_eq!(replica.state_hash(), host.world.state_hash());
}

#[test]
fn delta_tracker_multi_frame_consistency() {
    let mut host = host();
    let mut tracker = DeltaTracker::new();
    let mut replica = Replica::new();
    let deliver = |host: &Host, tracker: &mut DeltaTracker, replica: &mut Replica| {
        let delta = tracker.diff(&host.world).unwrap();
        replica.apply_delta(&delta.encode()).unwrap();
        assert_eq!(replica.state_hash(), host.world.state_hash());
        delta
    };

    // Frame 1: spawn.
    let e = host.world.spawn().unwrap();
    host.world
        .set(e, host.position, &vec3(0.0, 0.0, 0.0))
        .unwrap();
    let frame = deliver(&host, &mut tracker, &mut replica);
    assert_eq!(frame.spawns, vec![e]);
    assert_eq!(
        frame
            .changes()
            .map(|c| (c.kind, c.component))
            .collect::<Vec<_>>(),
        vec![(ChangeKind::Insert, host.position)]
    );

    // Frame 2: nothing changed.
    host.world.advance();
    let frame = deliver(&host, &mut tracker, &mut replica);
    assert!(frame.is_empty());

    // Frame 3: update.
    host.world
        .set(e, host.position, &vec3(1.0, 0.0, 0.0))
        .unwrap();
    let frame = deliver(&host, &mut tracker, &mut replica);
    assert_eq!(
        frame
            .changes()
            .map(|c| (c.kind, c.component))
            .collect::<Vec<_>>(),
        vec![(ChangeKind::Update, host.position)]
    );

    // Frame 4: add a component.
    host.world
        .set(e, host.velocity, &vec3(0.0, 1.0, 0.0))
        .unwrap();
    let frame = deliver(&host, &mut tracker, &mut replica);
    assert_eq!(
        frame
            .changes()
            .map(|c| (c.kind, c.component))
            .collect::<Vec<_>>(),
        vec![(ChangeKind::Insert, host.velocity)]
    );
    assert_eq!(
        frame.descriptors.len(),
        1,
        "velocity is described on first use"
    );

    // Frame 5: despawn.
    host.world.despawn(e).unwrap();
    let frame = deliver(&host, &mut tracker, &mut replica);
    assert_eq!(frame.despawns, vec![e]);
    assert!(frame.sets.is_empty() && frame.removes.is_empty());
    assert!(!replica.world().is_alive(e));

    let kinds: Vec<EventKind> = drain_events(&mut replica)
        .into_iter()
        .map(|e| e.0)
        .collect();
    assert_eq!(
        kinds,
        vec![
            EventKind::Spawn,
            EventKind::Insert,
            EventKind::Update,
            EventKind::Insert,
            EventKind::Despawn
        ]
    );
}

#[test]
fn variable_size_values_and_removals_replicate() {
    let mut world = World::default();
    let name = world
        .register("test.Name", Layout::Variable { max: 32 })
        .unwrap();
    let tag = world.register("test.Selected", Layout::Fixed(0)).unwrap();
    let e = world.spawn().unwrap();
    world.set(e, name, b"cube").unwrap();
    world.set(e, tag, &[]).unwrap();
    let mut tracker = DeltaTracker::new();
    let mut replica = Replica::new();
    replica
        .apply(&tracker.diff(&world).unwrap().encode())
        .unwrap();
    world.set(e, name, b"a longer name").unwrap();
    world.remove(e, tag).unwrap();
    replica
        .apply(&tracker.diff(&world).unwrap().encode())
        .unwrap();
    assert_eq!(replica.world().get(e, name), Some(&b"a longer name"[..]));
    assert_eq!(replica.world().get(e, tag), None);
    assert_eq!(replica.state_hash(), world.state_hash());
}

#[test]
fn stale_and_duplicate_frames_are_no_ops() {
    let mut host = host();
    let e = host.world.spawn().unwrap();
    host.world
        .set(e, host.position, &vec3(1.0, 0.0, 0.0))
        .unwrap();
    let mut tracker = DeltaTracker::new();
    let old = tracker.diff(&host.world).unwrap().encode();
    host.world
        .set(e, host.position, &vec3(2.0, 0.0, 0.0))
        .unwrap();
    let new = tracker.diff(&host.world).unwrap().encode();

    // The engine registered its types on this side too: the newer frame, which does not
    // repeat the descriptor, is understood even though it arrives first.
    let mut replica = Replica::with_registry(host.world.registry());
    replica.apply_delta(&new).unwrap();
    let hash = replica.state_hash();
    drain_events(&mut replica);
    // Late and duplicated frames change nothing and raise no events.
    replica.apply_delta(&old).unwrap();
    replica.apply_delta(&new).unwrap();
    assert_eq!(replica.state_hash(), hash);
    assert_eq!(replica.state_hash(), host.world.state_hash());
    assert!(drain_events(&mut replica).is_empty());
}

#[test]
fn resync_snapshot_removes_what_the_host_dropped() {
    let mut host = host();
    let keep = host.world.spawn().unwrap();
    let drop = host.world.spawn().unwrap();
    host.world
        .set(keep, host.position, &vec3(1.0, 1.0, 1.0))
        .unwrap();
    host.world
        .set(keep, host.velocity, &vec3(1.0, 1.0, 1.0))
        .unwrap();
    host.world
        .set(drop, host.position, &vec3(2.0, 2.0, 2.0))
        .unwrap();
    let mut replica = Replica::new();
    for chunk in host.world.snapshot(DEFAULT_MAX_CHUNK_BYTES).chunks {
        replica.apply(&chunk.bytes).unwrap();
    }
    drain_events(&mut replica);
    // The replica misses these changes; a later full snapshot must bring it back in line.
    host.world.despawn(drop).unwrap();
    host.world.remove(keep, host.velocity).unwrap();
    let snapshot = host.world.snapshot(DEFAULT_MAX_CHUNK_BYTES);
    for chunk in &snapshot.chunks {
        replica.apply(&chunk.bytes).unwrap();
    }
    assert_eq!(replica.state_hash(), host.world.state_hash());
    let events = drain_events(&mut replica);
    assert!(events.contains(&(EventKind::Despawn, drop, ComponentId(0), vec![])));
    assert!(events.contains(&(EventKind::Remove, keep, host.velocity, vec![])));
}

#[test]
fn an_entity_that_left_is_freed_without_a_despawn_and_only_newer_state_brings_it_back() {
    let mut host = host();
    let a = host.world.spawn().unwrap();
    host.world
        .set(a, host.position, &vec3(1.0, 0.0, 0.0))
        .unwrap();
    let first = host.world.delta_since(0).unwrap();
    host.world
        .set(a, host.position, &vec3(2.0, 0.0, 0.0))
        .unwrap();
    let second = host.world.delta_since(first.tick).unwrap();
    let left_at = second.tick;
    host.world
        .set(a, host.position, &vec3(3.0, 0.0, 0.0))
        .unwrap();
    let third = host.world.delta_since(0).unwrap();

    let mut replica = Replica::new();
    replica.apply_delta(&first.encode()).unwrap();
    drain_events(&mut replica);
    assert!(replica.leave(a, left_at), "it was held");
    assert!(!replica.world().is_alive(a));
    assert!(
        drain_events(&mut replica).is_empty(),
        "leaving is not a despawn"
    );
    // An update from before it left, arriving late, does not bring it back.
    replica.apply_delta(&second.encode()).unwrap();
    assert!(!replica.world().is_alive(a), "no resurrection");
    // It enters again: newer state, whole, brings it back.
    replica.apply_delta(&third.encode()).unwrap();
    assert_eq!(
        replica.world().get(a, host.position),
        Some(&vec3(3.0, 0.0, 0.0)[..])
    );
    let kinds: Vec<EventKind> = drain_events(&mut replica).iter().map(|e| e.0).collect();
    assert_eq!(kinds, [EventKind::Spawn, EventKind::Insert]);
    // A notice that arrives after the state of its return (a reliable message delayed
    // behind a loss, overtaken by a datagram) leaves that newer state alone.
    assert!(!replica.leave(a, left_at), "newer state than the notice");
    assert!(replica.world().is_alive(a));
    // What this peer owns stays in its interest.
    let mut own = Replica::new();
    own.set_owner(5, 1);
    let mine = own.spawn_owned().unwrap();
    assert!(!own.leave(mine, u64::MAX));
    assert!(own.world().is_alive(mine));
}
