//! The C ABI exercised as a C host would: through the exported functions only.

use std::ptr::{null, null_mut};
use std::sync::Arc;

use theta_net::ffi::*;

mod common;
use common::{last_error, ok};

struct Host {
    world: ThetaWorld,
    position: u32,
    name: u32,
}

fn host() -> Host {
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
    Host {
        world,
        position,
        name,
    }
}

fn spawn(world: ThetaWorld) -> u64 {
    let mut e = 0;
    // SAFETY: valid out-pointer.
    ok(unsafe { theta_world_spawn(world, &mut e) });
    e
}

fn world_hash(world: ThetaWorld) -> u64 {
    let mut hash = 0;
    // SAFETY: valid out-pointer.
    ok(unsafe { theta_world_state_hash(world, &mut hash) });
    hash
}

#[test]
fn versions_match_the_crate() {
    assert_eq!(theta_abi_version(), THETA_ABI_VERSION);
    // SAFETY: theta_version returns a static NUL-terminated string.
    let version = unsafe { std::ffi::CStr::from_ptr(theta_version()) }
        .to_str()
        .unwrap();
    assert_eq!(version, env!("CARGO_PKG_VERSION"));
    let expected = format!("{THETA_VERSION_MAJOR}.{THETA_VERSION_MINOR}.{THETA_VERSION_PATCH}");
    assert_eq!(
        expected,
        env!("CARGO_PKG_VERSION"),
        "THETA_VERSION_* constants must follow Cargo.toml"
    );
}

#[test]
fn snapshot_and_deltas_round_trip_through_the_c_surface() {
    let h = host();
    let entities: Vec<u64> = (0..50).map(|_| spawn(h.world)).collect();
    let values: Vec<u8> = (0..50 * 16).map(|i| i as u8).collect();
    let mut result = ThetaBatchResult::default();
    // SAFETY: 50 entities, values of stride 16 holding 12-byte positions.
    ok(unsafe {
        theta_world_set_batch(
            h.world,
            h.position,
            entities.as_ptr(),
            values.as_ptr(),
            16,
            50,
            &mut result,
        )
    });
    assert_eq!(result.inserted, 50);
    // SAFETY: valid pointers.
    ok(unsafe {
        theta_world_set(
            h.world,
            entities[0],
            h.name,
            b"first".as_ptr(),
            5,
            null_mut(),
        )
    });

    let mut snapshot = ThetaSnapshot { id: 0 };
    let mut replica = ThetaReplica { id: 0 };
    let (mut count, mut tick) = (0usize, 0u64);
    // SAFETY: valid out-pointers; chunk pointers are used while the snapshot lives.
    unsafe {
        ok(theta_world_snapshot(h.world, 256, &mut snapshot));
        ok(theta_snapshot_chunk_count(snapshot, &mut count));
        ok(theta_snapshot_tick(snapshot, &mut tick));
        assert!(count > 1);
        ok(theta_replica_new(&mut replica));
        for i in (0..count).rev() {
            let (mut ptr, mut len) = (null(), 0usize);
            ok(theta_snapshot_chunk(snapshot, i, &mut ptr, &mut len));
            let mut applied = 0u8;
            ok(theta_replica_apply_snapshot_chunk(
                replica,
                ptr,
                len,
                &mut applied,
            ));
            let expected = if i == 0 {
                ThetaApplied::SnapshotComplete
            } else {
                ThetaApplied::SnapshotChunk
            };
            assert_eq!(applied, expected as u8);
        }
    }
    let mut tracker = ThetaTracker { id: 0 };
    // SAFETY: valid out-pointer.
    ok(unsafe { theta_tracker_new_after_snapshot(snapshot, &mut tracker) });
    ok(theta_snapshot_free(snapshot));

    // SAFETY: valid pointers throughout.
    unsafe {
        ok(theta_world_set(
            h.world,
            entities[3],
            h.position,
            [9u8; 12].as_ptr(),
            12,
            null_mut(),
        ));
        ok(theta_world_despawn(h.world, entities[4]));
        let mut removed = 0u8;
        ok(theta_world_remove(
            h.world,
            entities[0],
            h.name,
            &mut removed,
        ));
        assert_eq!(removed, 1);
        let mut delta = ThetaDelta { id: 0 };
        ok(theta_tracker_diff(tracker, h.world, &mut delta));
        let mut info = ThetaDeltaInfo::default();
        ok(theta_delta_info(delta, &mut info));
        assert_eq!(
            (
                info.base_tick,
                info.changes,
                info.removes,
                info.despawns,
                info.empty
            ),
            (tick, 1, 1, 1, 0)
        );
        let (mut ptr, mut len) = (null(), 0usize);
        ok(theta_delta_bytes(delta, &mut ptr, &mut len));
        assert_eq!(len as u64, info.bytes);
        ok(theta_replica_apply(replica, ptr, len, null_mut()));
        ok(theta_delta_free(delta));
    }
    let mut replica_hash = 0;
    // SAFETY: valid out-pointer.
    ok(unsafe { theta_replica_state_hash(replica, &mut replica_hash) });
    assert_eq!(replica_hash, world_hash(h.world));

    // Events: 50 spawns, 51 inserts from the snapshot, then update, remove, despawn.
    let mut events = vec![
        ThetaEvent {
            entity: 0,
            tick: 0,
            data: null(),
            data_len: 0,
            component: 0,
            kind: 0,
            reserved: [0; 3],
        };
        16
    ];
    let mut kinds = Vec::new();
    loop {
        let mut n = 0usize;
        // SAFETY: events has 16 slots.
        ok(unsafe {
            theta_replica_poll_events(replica, events.as_mut_ptr(), events.len(), &mut n)
        });
        if n == 0 {
            break;
        }
        for event in &events[..n] {
            if event.kind == ThetaEventKind::Update as u8 {
                // SAFETY: data is valid until the next poll.
                let data = unsafe { std::slice::from_raw_parts(event.data, event.data_len) };
                assert_eq!(
                    (event.entity, event.component, data),
                    (entities[3], h.position, &[9u8; 12][..])
                );
            }
            kinds.push(event.kind);
        }
    }
    let count_of = |k: ThetaEventKind| kinds.iter().filter(|&&x| x == k as u8).count();
    assert_eq!(count_of(ThetaEventKind::Spawn), 50);
    assert_eq!(count_of(ThetaEventKind::Insert), 51);
    assert_eq!(count_of(ThetaEventKind::Update), 1);
    assert_eq!(count_of(ThetaEventKind::Remove), 1);
    assert_eq!(count_of(ThetaEventKind::Despawn), 1);

    // Lookups on both sides.
    let (mut on_host, mut on_replica) = (0u32, 0u32);
    let mut info = std::mem::MaybeUninit::<ThetaComponentInfo>::uninit();
    // SAFETY: valid pointers; the info name is valid while the replica lives.
    unsafe {
        ok(theta_world_component_id(
            h.world,
            b"test.Name".as_ptr(),
            9,
            &mut on_host,
        ));
        ok(theta_replica_component_id(
            replica,
            b"test.Name".as_ptr(),
            9,
            &mut on_replica,
        ));
        assert_eq!(on_host, on_replica);
        ok(theta_replica_component_info(
            replica,
            h.position,
            info.as_mut_ptr(),
        ));
        let info = info.assume_init();
        assert_eq!((info.size, info.variable), (12, 0));
        assert_eq!(
            std::slice::from_raw_parts(info.name, info.name_len),
            b"test.Position"
        );
        let mut buf = [0u8; 12];
        let mut len = 0usize;
        ok(theta_replica_get(
            replica,
            entities[3],
            h.position,
            buf.as_mut_ptr(),
            12,
            &mut len,
        ));
        assert_eq!((len, buf), (12, [9u8; 12]));
    }
    ok(theta_tracker_free(tracker));
    ok(theta_replica_free(replica));
    ok(theta_world_free(h.world));
}

#[test]
fn bad_arguments_give_a_status_and_a_message_and_change_nothing() {
    let h = host();
    let e = spawn(h.world);
    let before = world_hash(h.world);
    let mut out = 0u32;
    // SAFETY: every pointer is valid or deliberately NULL.
    unsafe {
        assert_eq!(
            theta_world_spawn(h.world, null_mut()),
            ThetaStatus::NullPointer
        );
        assert!(
            last_error().contains("out_entity is NULL"),
            "{}",
            last_error()
        );
        assert_eq!(
            theta_world_set(h.world, e, h.position, null(), 12, null_mut()),
            ThetaStatus::NullPointer
        );
        assert_eq!(
            theta_world_set(h.world, e, 0xdead, [0u8; 12].as_ptr(), 12, null_mut()),
            ThetaStatus::UnknownComponent
        );
        assert!(
            last_error().contains("unknown component"),
            "{}",
            last_error()
        );
        assert_eq!(
            theta_world_set(h.world, e, h.position, [0u8; 11].as_ptr(), 11, null_mut()),
            ThetaStatus::WrongSize
        );
        assert!(last_error().contains("11 bytes"), "{}", last_error());
        assert_eq!(
            theta_world_set(h.world, 0, h.position, [0u8; 12].as_ptr(), 12, null_mut()),
            ThetaStatus::DeadEntity
        );
        assert_eq!(
            theta_world_set(
                h.world,
                e + 1000,
                h.position,
                [0u8; 12].as_ptr(),
                12,
                null_mut()
            ),
            ThetaStatus::DeadEntity
        );
        assert!(last_error().contains("not alive"), "{}", last_error());
        // A batch with one dead entity writes nothing.
        let batch = [e, e + 1000];
        assert_eq!(
            theta_world_set_batch(
                h.world,
                h.position,
                batch.as_ptr(),
                [1u8; 24].as_ptr(),
                12,
                2,
                null_mut()
            ),
            ThetaStatus::DeadEntity
        );
        assert_eq!(
            theta_world_set_batch(
                h.world,
                h.position,
                batch.as_ptr(),
                [1u8; 24].as_ptr(),
                8,
                2,
                null_mut()
            ),
            ThetaStatus::WrongSize
        );
        assert_eq!(
            theta_world_register_fixed(h.world, b"test.Position".as_ptr(), 13, 16, &mut out),
            ThetaStatus::RegistryConflict
        );
        assert_eq!(
            theta_world_register_fixed(h.world, [0xffu8].as_ptr(), 1, 16, &mut out),
            ThetaStatus::InvalidArgument
        );
        assert_eq!(
            theta_world_register_fixed(h.world, null(), 3, 16, &mut out),
            ThetaStatus::NullPointer
        );
        assert_eq!(theta_world_despawn(h.world, 0), ThetaStatus::DeadEntity);
        let mut len = 0usize;
        let mut small = [0u8; 4];
        ok(theta_world_set(
            h.world,
            e,
            h.position,
            [5u8; 12].as_ptr(),
            12,
            null_mut(),
        ));
        assert_eq!(
            theta_world_get(h.world, e, h.position, small.as_mut_ptr(), 4, &mut len),
            ThetaStatus::BufferTooSmall
        );
        assert_eq!(len, 12, "the needed length is reported");
        assert_eq!(
            theta_world_get(h.world, e, h.name, small.as_mut_ptr(), 4, &mut len),
            ThetaStatus::NotFound
        );
        ok(theta_world_remove(h.world, e, h.position, null_mut()));
        let mut delta = ThetaDelta { id: 0 };
        assert_eq!(
            theta_world_delta_since(h.world, u64::MAX, &mut delta),
            ThetaStatus::InvalidArgument
        );
        assert_eq!(delta.id, 0, "no output on failure");
        let mut replica = ThetaReplica { id: 0 };
        ok(theta_replica_new(&mut replica));
        assert_eq!(
            theta_replica_apply(replica, b"garbage!".as_ptr(), 8, null_mut()),
            ThetaStatus::Malformed
        );
        assert!(
            last_error().contains("not a Theta message"),
            "{}",
            last_error()
        );
        assert_eq!(
            theta_replica_apply(replica, null(), 8, null_mut()),
            ThetaStatus::NullPointer
        );
        let mut stats = std::mem::zeroed::<theta_net::ffi::ThetaReplicaStats>();
        ok(theta_replica_stats(replica, &mut stats));
        assert_eq!((stats.rejected, stats.entities), (1, 0));
        assert_eq!(theta_set_log_level(9), ThetaStatus::InvalidArgument);
        ok(theta_replica_free(replica));
    }
    assert_eq!(world_hash(h.world), before);
    ok(theta_world_free(h.world));
}

#[test]
fn freed_and_forged_handles_are_refused() {
    let h = host();
    let mut snapshot = ThetaSnapshot { id: 0 };
    // SAFETY: valid out-pointer.
    ok(unsafe { theta_world_snapshot(h.world, 0, &mut snapshot) });
    ok(theta_world_free(h.world));
    let mut e = 0u64;
    // SAFETY: valid out-pointers; the handles are deliberately stale or forged.
    unsafe {
        assert_eq!(
            theta_world_spawn(h.world, &mut e),
            ThetaStatus::InvalidHandle
        );
        assert!(last_error().contains("not live"), "{}", last_error());
        assert_eq!(
            theta_world_free(h.world),
            ThetaStatus::InvalidHandle,
            "double free"
        );
        assert_eq!(
            theta_world_spawn(
                ThetaWorld {
                    id: 0x0123_4567_89ab_cdef
                },
                &mut e
            ),
            ThetaStatus::InvalidHandle
        );
        assert_eq!(
            theta_world_spawn(ThetaWorld { id: snapshot.id }, &mut e),
            ThetaStatus::InvalidHandle,
            "wrong type"
        );
        let mut tick = 0;
        ok(theta_snapshot_tick(snapshot, &mut tick));
        // A new world does not answer to the old handle.
        let mut fresh = ThetaWorld { id: 0 };
        ok(theta_world_new(null(), &mut fresh));
        assert_ne!(fresh, h.world);
        assert_eq!(
            theta_world_spawn(h.world, &mut e),
            ThetaStatus::InvalidHandle
        );
        ok(theta_world_free(fresh));
    }
    ok(theta_snapshot_free(snapshot));
    // Null handles free as no-ops.
    ok(theta_world_free(ThetaWorld { id: 0 }));
    ok(theta_replica_free(ThetaReplica { id: 0 }));
    ok(theta_snapshot_free(ThetaSnapshot { id: 0 }));
    ok(theta_delta_free(ThetaDelta { id: 0 }));
    ok(theta_tracker_free(ThetaTracker { id: 0 }));
}

#[test]
fn one_world_hammered_from_several_threads() {
    let h = Arc::new(host());
    let threads: Vec<_> = (0..4u8)
        .map(|t| {
            let h = Arc::clone(&h);
            std::thread::spawn(move || {
                let mine: Vec<u64> = (0..50).map(|_| spawn(h.world)).collect();
                for round in 0..100u8 {
                    for &e in &mine {
                        // SAFETY: valid value pointer.
                        ok(unsafe {
                            theta_world_set(
                                h.world,
                                e,
                                h.position,
                                [t ^ round; 12].as_ptr(),
                                12,
                                null_mut(),
                            )
                        });
                    }
                    let mut delta = ThetaDelta { id: 0 };
                    // SAFETY: valid out-pointer.
                    ok(unsafe { theta_world_delta_since(h.world, 0, &mut delta) });
                    ok(theta_delta_free(delta));
                    if round % 10 == 0 {
                        let mut snapshot = ThetaSnapshot { id: 0 };
                        // SAFETY: valid out-pointer.
                        ok(unsafe { theta_world_snapshot(h.world, 0, &mut snapshot) });
                        ok(theta_snapshot_free(snapshot));
                    }
                }
                mine
            })
        })
        .collect();
    let all: Vec<u64> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    assert_eq!(all.len(), 200);
    let mut stats = ThetaWorldStats::default();
    // SAFETY: valid out-pointer.
    ok(unsafe { theta_world_stats(h.world, &mut stats) });
    assert_eq!((stats.entities, stats.components), (200, 200));
    let mut sorted = all.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), 200, "no entity id handed out twice");
    ok(theta_world_free(h.world));
}

#[test]
fn freeing_while_other_threads_call_is_safe() {
    for _ in 0..20 {
        let h = host();
        let world = h.world;
        let callers: Vec<_> = (0..3)
            .map(|_| {
                std::thread::spawn(move || {
                    let mut e = 0;
                    for _ in 0..200 {
                        // SAFETY: valid out-pointer; the handle may die meanwhile.
                        match unsafe { theta_world_spawn(world, &mut e) } {
                            ThetaStatus::Ok | ThetaStatus::InvalidHandle => {}
                            other => panic!("unexpected {other:?}"),
                        }
                    }
                })
            })
            .collect();
        ok(theta_world_free(world));
        for c in callers {
            c.join().unwrap();
        }
    }
}

#[test]
fn log_callback_receives_refused_calls_and_can_be_replaced() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static CALLS: AtomicUsize = AtomicUsize::new(0);
    // Other tests of this binary run meanwhile and may log too: count only our message,
    // and never panic here (a panic cannot unwind out of an extern "C" function).
    unsafe extern "C" fn count(
        user_data: *mut std::ffi::c_void,
        level: u8,
        message: *const u8,
        len: usize,
    ) {
        // SAFETY: the library passes a valid message of len bytes.
        let text = unsafe { std::slice::from_raw_parts(message, len) };
        let ours = text.starts_with(b"theta_world_spawn: world handle 0x000000000000004d");
        if ours && level == ThetaLogLevel::Debug as u8 && user_data as usize == 42 {
            CALLS.fetch_add(1, Ordering::SeqCst);
        }
    }
    ok(theta_set_log_level(ThetaLogLevel::Debug as u8));
    ok(theta_set_log_callback(Some(count), 42 as *mut _));
    let mut e = 0;
    // SAFETY: a deliberately invalid handle with a valid out-pointer.
    let status = unsafe { theta_world_spawn(ThetaWorld { id: 77 }, &mut e) };
    assert_eq!(status, ThetaStatus::InvalidHandle);
    ok(theta_set_log_callback(None, null_mut()));
    // SAFETY: as above.
    let _ = unsafe { theta_world_spawn(ThetaWorld { id: 77 }, &mut e) };
    ok(theta_set_log_level(ThetaLogLevel::Warn as u8));
    assert_eq!(
        CALLS.load(Ordering::SeqCst),
        1,
        "called once, and not after removal"
    );
}

#[test]
fn every_exported_function_runs_inside_the_panic_boundary() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/ffi");
    let mut exported = 0;
    for entry in std::fs::read_dir(&root).unwrap() {
        let path = entry.unwrap().path();
        let source = std::fs::read_to_string(&path).unwrap();
        for (i, _) in source.match_indices("#[no_mangle]") {
            let rest = &source[i..];
            let signature_end = rest.find(") -> ").map(|n| n + 5).unwrap();
            let body = &rest[rest.find('{').unwrap()..];
            let fn_at = rest.find("fn ").unwrap() + 3;
            let name = &rest[fn_at..fn_at + rest[fn_at..].find('(').unwrap()];
            assert!(
                name.starts_with("theta_"),
                "{name} in {} is not theta_*",
                path.display()
            );
            let returns = &rest[signature_end..rest.find('{').unwrap()];
            if returns.trim() != "ThetaStatus" {
                // Infallible accessors (version numbers) have no body that can fail.
                assert!(
                    matches!(name, "theta_version" | "theta_abi_version"),
                    "{name} returns {returns}"
                );
                continue;
            }
            let first = body[1..].trim_start();
            assert!(
                first.starts_with(&format!("boundary(\"{name}\"")),
                "{name} in {} does not start with boundary(\"{name}\", ...)",
                path.display()
            );
            exported += 1;
        }
    }
    assert!(exported > 30, "found only {exported} exported functions");
}

#[test]
fn an_empty_snapshot_is_completed_by_its_tick() {
    let h = host();
    let e = spawn(h.world);
    let mut replica = ThetaReplica { id: 0 };
    let mut snapshot = ThetaSnapshot { id: 0 };
    let (mut count, mut tick, mut applied) = (0usize, 0u64, 0u8);
    // SAFETY: valid out-pointers; chunk pointers used while the snapshot lives.
    unsafe {
        ok(theta_replica_new(&mut replica));
        ok(theta_world_snapshot(h.world, 0, &mut snapshot));
        let (mut ptr, mut len) = (null(), 0usize);
        ok(theta_snapshot_chunk(snapshot, 0, &mut ptr, &mut len));
        ok(theta_replica_apply(replica, ptr, len, null_mut()));
        ok(theta_snapshot_free(snapshot));
        ok(theta_world_despawn(h.world, e));
        ok(theta_world_snapshot(h.world, 0, &mut snapshot));
        ok(theta_snapshot_chunk_count(snapshot, &mut count));
        ok(theta_snapshot_tick(snapshot, &mut tick));
        assert_eq!(count, 0);
        assert_eq!(
            theta_replica_apply_empty_snapshot(replica, 0, null_mut()),
            ThetaStatus::InvalidArgument
        );
        ok(theta_replica_apply_empty_snapshot(
            replica,
            tick,
            &mut applied,
        ));
        assert_eq!(applied, ThetaApplied::SnapshotComplete as u8);
        let mut alive = 1u8;
        ok(theta_replica_is_alive(replica, e, &mut alive));
        assert_eq!(alive, 0);
        ok(theta_snapshot_free(snapshot));
    }
    let mut replica_hash = 0;
    // SAFETY: valid out-pointer.
    ok(unsafe { theta_replica_state_hash(replica, &mut replica_hash) });
    assert_eq!(replica_hash, world_hash(h.world));
    ok(theta_replica_free(replica));
    ok(theta_world_free(h.world));
}

#[test]
fn a_peer_descriptor_that_conflicts_with_a_registered_type_is_malformed() {
    // The peer's world says test.Position is 16 bytes; this engine registered 12.
    let mut peer = ThetaWorld { id: 0 };
    let mut theirs = 0u32;
    let mut replica = ThetaReplica { id: 0 };
    let mut ours = 0u32;
    let mut snapshot = ThetaSnapshot { id: 0 };
    let mut delta = ThetaDelta { id: 0 };
    // SAFETY: valid pointers and names throughout; chunk and delta bytes are used while
    // their handles live.
    unsafe {
        ok(theta_world_new(null(), &mut peer));
        ok(theta_world_register_fixed(
            peer,
            b"test.Position".as_ptr(),
            13,
            16,
            &mut theirs,
        ));
        let e = spawn(peer);
        ok(theta_world_set(
            peer,
            e,
            theirs,
            [3u8; 16].as_ptr(),
            16,
            null_mut(),
        ));
        ok(theta_replica_new(&mut replica));
        ok(theta_replica_register_fixed(
            replica,
            b"test.Position".as_ptr(),
            13,
            12,
            &mut ours,
        ));
        assert_eq!(ours, theirs, "one name, one id");

        ok(theta_world_snapshot(peer, 16 * 1024, &mut snapshot));
        let (mut ptr, mut len) = (null(), 0usize);
        ok(theta_snapshot_chunk(snapshot, 0, &mut ptr, &mut len));
        let mut applied = 0xEEu8;
        assert_eq!(
            theta_replica_apply(replica, ptr, len, &mut applied),
            ThetaStatus::Malformed,
            "{}",
            last_error()
        );
        assert!(last_error().contains("test.Position"), "{}", last_error());
        assert_eq!(applied, 0xEE, "no output on failure");
        assert_eq!(
            theta_replica_apply_snapshot_chunk(replica, ptr, len, null_mut()),
            ThetaStatus::Malformed
        );

        ok(theta_world_delta_since(peer, 0, &mut delta));
        ok(theta_delta_bytes(delta, &mut ptr, &mut len));
        assert_eq!(
            theta_replica_apply_delta(replica, ptr, len, null_mut()),
            ThetaStatus::Malformed,
            "{}",
            last_error()
        );

        // Nothing was applied.
        let mut stats = ThetaReplicaStats::default();
        ok(theta_replica_stats(replica, &mut stats));
        assert_eq!((stats.entities, stats.components), (0, 0));
        assert_eq!(stats.rejected, 3);

        // The engine's own conflicting registration is still a registry conflict.
        assert_eq!(
            theta_replica_register_fixed(replica, b"test.Position".as_ptr(), 13, 16, &mut ours),
            ThetaStatus::RegistryConflict
        );
    }
    ok(theta_delta_free(delta));
    ok(theta_snapshot_free(snapshot));
    ok(theta_replica_free(replica));
    ok(theta_world_free(peer));
}
