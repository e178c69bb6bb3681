use std::path::{Path, PathBuf};
use std::time::Instant;

use super::format::{self, FORMAT_VERSION, MAGIC};
use super::*;
use crate::fields::Field;
use crate::registry::{ComponentId, Layout};
use crate::world::{EntityId, Stamp, World, WorldConfig};

fn room(id: &str) -> RoomId {
    RoomId::new(id).unwrap()
}

/// A world of the host (peer 0) with `n` entities: a transform with declared fields
/// (position and rotation), a variable-size name, a plain fixed health, a zero-size tag,
/// some bare entities, some created by a client (peer 5), some removed and despawned.
fn world(n: u32) -> World {
    let mut world = World::new(WorldConfig::default());
    let transform = world.register("test.Transform", Layout::Fixed(28)).unwrap();
    world
        .declare_fields(
            transform,
            &[
                Field::Position {
                    offset: 0,
                    precision_mm: 1.0,
                },
                Field::Rotation {
                    offset: 12,
                    precision_deg: 0.1,
                },
            ],
        )
        .unwrap();
    let name = world
        .register("test.Name", Layout::Variable { max: 64 })
        .unwrap();
    let health = world.register("test.Health", Layout::Fixed(4)).unwrap();
    let tag = world.register("test.Tag", Layout::Fixed(0)).unwrap();
    for i in 0..n {
        let e = if i % 13 == 5 {
            let id = EntityId::new(5, u64::from(i) + 1).unwrap();
            world.spawn_with_id(id, Stamp::Local);
            id
        } else {
            world.spawn().unwrap()
        };
        if i % 11 == 3 {
            continue; // bare
        }
        let f = i as f32;
        let angle = f * 0.01;
        let mut value = Vec::with_capacity(28);
        for x in [f * 0.25, -f * 0.5, 1.5 + f * 0.001] {
            value.extend_from_slice(&x.to_le_bytes());
        }
        for x in [0.0f32, 0.0, angle.sin(), angle.cos()] {
            value.extend_from_slice(&x.to_le_bytes());
        }
        world.set(e, transform, &value).unwrap();
        if i % 3 == 0 {
            let label = format!("object number {i}");
            world.set(e, name, label.as_bytes()).unwrap();
        }
        if i % 2 == 0 {
            world.set(e, health, &(i * 7).to_le_bytes()).unwrap();
        }
        if i % 7 == 0 {
            world.set(e, tag, &[]).unwrap();
        }
        if i % 17 == 0 {
            world.advance();
        }
    }
    // Changes after the fact: a removal and a despawn leave nothing behind in the file.
    let entities: Vec<EntityId> = {
        let mut all: Vec<EntityId> = world.entities().collect();
        all.sort();
        all
    };
    if let Some(&e) = entities.get(4) {
        let _ = world.remove(e, transform);
    }
    if let Some(&e) = entities.get(6) {
        world.despawn(e).unwrap();
    }
    world
}

fn corrupt_files(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().contains(".theta.corrupt-"))
        .collect();
    out.sort();
    out
}

/// Writes `bytes` as the file of `room`, loads it, and checks that it is refused for the
/// reason `why` names, named in the message, and moved aside with its bytes intact.
fn assert_refused(dir: &Path, room: &RoomId, bytes: &[u8], why: &str) {
    let path = room_path(dir, room);
    fs::write(&path, bytes).unwrap();
    let before = corrupt_files(dir).len();
    let err = match load(dir, room) {
        Err(e) => e,
        Ok(_) => panic!("a damaged file ({why}) loaded"),
    };
    let message = err.to_string();
    let StoreError::Refused { defect, moved, .. } = err else {
        panic!("{message}");
    };
    assert!(
        message.contains(&path.display().to_string()),
        "names the file: {message}"
    );
    assert!(
        message.contains(why),
        "{why:?} not in {message:?} ({defect:?})"
    );
    let moved = moved.unwrap();
    assert!(!path.exists(), "the file is gone from its place");
    assert_eq!(fs::read(&moved).unwrap(), bytes, "moved whole");
    assert!(message.contains(&format!("moved aside to {}", moved.display())));
    assert_eq!(corrupt_files(dir).len(), before + 1);
    assert!(matches!(load(dir, room), Err(StoreError::NotFound { .. })));
}

#[test]
fn a_world_of_ten_thousand_entities_comes_back_identical() {
    let dir = tempfile::tempdir().unwrap();
    let lobby = room("lobby");
    let original = world(10_000);
    let saved = save(dir.path(), &lobby, &original).unwrap();
    assert_eq!(saved.path, dir.path().join("lobby.theta"));
    assert_eq!(
        fs::metadata(&saved.path).unwrap().len() as usize,
        saved.bytes
    );
    assert!(!dir.path().join("lobby.theta.tmp").exists());

    let restored = restore(dir.path(), &lobby).unwrap();
    let world = &restored.world;
    assert_eq!(world.state_hash(), original.state_hash());
    assert_eq!(world.registry().hash(), original.registry().hash());
    assert_eq!(world.stats().entities, original.stats().entities);
    assert_eq!(world.stats().components, original.stats().components);
    assert_eq!(restored.tick, saved.tick);
    assert!(restored.saved_at > 1_600_000_000, "{}", restored.saved_at);
    let transform = ComponentId::of_name("test.Transform");
    assert!(world.registry().fields(transform).is_some(), "fields kept");
    let mut entities: Vec<EntityId> = original.entities().collect();
    entities.sort();
    for &e in entities.iter().step_by(97) {
        for d in original.registry().descriptors() {
            assert_eq!(world.get(e, d.id), original.get(e, d.id), "{e} {}", d.name);
        }
    }
    assert!(
        entities.iter().any(|e| e.creator() == 5),
        "holds client-created entities"
    );
    // The restored world spawns past every id it holds.
    let mut world = restored.world;
    let fresh = world.spawn().unwrap();
    assert!(!original.is_alive(fresh), "{fresh} was in use");
    let last_host_counter = entities
        .iter()
        .filter(|e| e.creator() == 0)
        .map(|e| e.counter())
        .max()
        .unwrap();
    assert_eq!(fresh, EntityId::new(0, last_host_counter + 1).unwrap());
}

#[test]
fn empty_and_bare_worlds_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    // Types and no entity: a snapshot of zero chunks.
    let mut empty = World::default();
    empty
        .register("test.Only", Layout::Variable { max: 9 })
        .unwrap();
    save(dir.path(), &room("empty"), &empty).unwrap();
    let back = load(dir.path(), &room("empty")).unwrap();
    assert_eq!(back.registry().hash(), empty.registry().hash());
    assert_eq!(back.stats().entities, 0);
    // Entities without components.
    let mut bare = World::default();
    for _ in 0..5 {
        bare.spawn().unwrap();
    }
    save(dir.path(), &room("bare"), &bare).unwrap();
    let back = load(dir.path(), &room("bare")).unwrap();
    assert_eq!(back.state_hash(), bare.state_hash());
    assert_eq!(back.stats().entities, 5);
    // A second save replaces the first.
    bare.spawn().unwrap();
    save(dir.path(), &room("bare"), &bare).unwrap();
    assert_eq!(load(dir.path(), &room("bare")).unwrap().stats().entities, 6);
}

#[test]
fn a_room_never_saved_is_not_found_and_nothing_moves() {
    let dir = tempfile::tempdir().unwrap();
    let err = load(dir.path(), &room("nobody")).err().unwrap();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err}");
    assert!(
        err.to_string().contains("nobody.theta does not exist"),
        "{err}"
    );
    assert!(corrupt_files(dir.path()).is_empty());
}

#[test]
fn a_file_truncated_anywhere_is_refused_and_moved_aside() {
    let dir = tempfile::tempdir().unwrap();
    let r = room("cut");
    let bytes = format::encode(&r, &world(300), 1_700_000_000);
    let mut offsets: Vec<usize> = (1..bytes.len()).step_by(bytes.len() / 40).collect();
    offsets.extend([1, 8, 9, 12, 13, 20, 21, bytes.len() - 8, bytes.len() - 1]);
    offsets.sort_unstable();
    offsets.dedup();
    for at in offsets {
        let why = match at {
            ..9 => "wrong magic",
            9..21 => "truncated",
            _ => "checksum does not match",
        };
        assert_refused(dir.path(), &r, &bytes[..at], why);
    }
    assert_refused(dir.path(), &r, &[], "the file is empty");
}

#[test]
fn one_flipped_bit_anywhere_is_refused_and_moved_aside() {
    let dir = tempfile::tempdir().unwrap();
    let r = room("flip");
    let bytes = format::encode(&r, &world(300), 1_700_000_000);
    let step = (bytes.len() / 120).max(1);
    let mut positions: Vec<usize> = (0..bytes.len()).step_by(step).collect();
    positions.extend([9, 10, 12, bytes.len() - 1]);
    for (i, at) in positions.into_iter().enumerate() {
        let mut damaged = bytes.clone();
        damaged[at] ^= 1 << (i % 8);
        let why = match at {
            ..9 => "wrong magic",
            9..13 => "format version",
            _ => "checksum does not match",
        };
        assert_refused(dir.path(), &r, &damaged, why);
    }
}

/// `bytes` with its checksum made right again, as a buggy writer's file would have.
fn resealed(mut bytes: Vec<u8>) -> Vec<u8> {
    let body = bytes.len() - 8;
    let sum = format::checksum(&bytes[..body]);
    bytes[body..].copy_from_slice(&sum.to_le_bytes());
    bytes
}

#[test]
fn other_versions_magic_and_rooms_are_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let r = room("kinds");
    let bytes = format::encode(&r, &world(50), 1_700_000_000);
    let mut newer = bytes.clone();
    newer[MAGIC.len()..MAGIC.len() + 4].copy_from_slice(&(FORMAT_VERSION + 1).to_le_bytes());
    assert_refused(
        dir.path(),
        &r,
        &resealed(newer),
        "format version 2; this build reads version 1",
    );
    let mut other = bytes.clone();
    other[..4].copy_from_slice(b"GIF8");
    assert_refused(dir.path(), &r, &other, "not a Theta room file");
    assert_refused(dir.path(), &r, b"{\"json\": true}", "not a Theta room file");
    // The file of another room, copied under this name.
    let elsewhere = format::encode(&room("elsewhere"), &world(5), 0);
    assert_refused(dir.path(), &r, &elsewhere, "it holds room \"elsewhere\"");
}

#[test]
fn checksummed_lies_are_bounded_and_refused() {
    let dir = tempfile::tempdir().unwrap();
    let r = room("lies");
    // A header, no types, then four billion chunks announced in four bytes.
    let mut body = MAGIC.to_vec();
    body.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    body.push(4);
    body.extend_from_slice(b"lies");
    body.extend_from_slice(&[0; 8 + 8 + 2]);
    body.extend_from_slice(&crate::registry::Registry::new().hash().to_le_bytes());
    body.extend_from_slice(&World::default().state_hash().to_le_bytes());
    body.extend_from_slice(&0u32.to_le_bytes());
    let mut huge = body.clone();
    huge.extend_from_slice(&u32::MAX.to_le_bytes());
    huge.extend_from_slice(&[0; 8]);
    assert_refused(dir.path(), &r, &resealed(huge), "snapshot chunks announced");
    // One chunk longer than any message, and one whose length runs past the end.
    let mut long = body.clone();
    long.extend_from_slice(&1u32.to_le_bytes());
    long.extend_from_slice(&u32::MAX.to_le_bytes());
    long.extend_from_slice(&[0; 8]);
    assert_refused(dir.path(), &r, &resealed(long), "more than a message holds");
    let mut past = body.clone();
    past.extend_from_slice(&1u32.to_le_bytes());
    past.extend_from_slice(&1000u32.to_le_bytes());
    past.extend_from_slice(&[0; 8]);
    assert_refused(dir.path(), &r, &resealed(past), "runs past the end");
    // One chunk of garbage: the wire's verifier refuses it.
    let mut garbage = body.clone();
    garbage.extend_from_slice(&1u32.to_le_bytes());
    garbage.extend_from_slice(&16u32.to_le_bytes());
    garbage.extend_from_slice(&[0xAB; 16]);
    garbage.extend_from_slice(&[0; 8]);
    assert_refused(dir.path(), &r, &resealed(garbage), "chunk 0:");
    // A registry of a billion types.
    let mut types = body.clone();
    let at = types.len() - 4;
    types[at..].copy_from_slice(&1_000_000_000u32.to_le_bytes());
    types.extend_from_slice(&[0; 8]);
    assert_refused(dir.path(), &r, &resealed(types), "component types, at most");
    // The empty world it describes is fine once the count is right.
    let mut fine = body;
    fine.extend_from_slice(&0u32.to_le_bytes());
    fine.extend_from_slice(&[0; 8]);
    fs::write(room_path(dir.path(), &r), resealed(fine)).unwrap();
    assert_eq!(load(dir.path(), &r).unwrap().stats().entities, 0);
}

#[test]
fn a_state_hash_that_disagrees_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let r = room("hash");
    let mut bytes = format::encode(&r, &world(20), 0);
    // The state hash sits after magic, version, room id, time, tick, peer, registry hash.
    let at = MAGIC.len() + 4 + 1 + 4 + 8 + 8 + 2 + 8;
    bytes[at] ^= 0x40;
    assert_refused(
        dir.path(),
        &r,
        &resealed(bytes),
        "the rebuilt world hashes to",
    );
}

#[test]
fn a_stale_tmp_is_removed_and_the_last_good_file_loads() {
    let dir = tempfile::tempdir().unwrap();
    let r = room("crashed");
    let good = world(40);
    save(dir.path(), &r, &good).unwrap();
    let tmp = dir.path().join("crashed.theta.tmp");
    // What a save killed half way leaves: the first half of a newer file.
    let newer = format::encode(&r, &world(80), 0);
    fs::write(&tmp, &newer[..newer.len() / 2]).unwrap();
    let back = load(dir.path(), &r).unwrap();
    assert_eq!(back.state_hash(), good.state_hash());
    assert!(!tmp.exists());
    assert!(corrupt_files(dir.path()).is_empty());
}

#[test]
fn two_refusals_in_one_second_keep_both_files() {
    let dir = tempfile::tempdir().unwrap();
    let r = room("twice");
    assert_refused(dir.path(), &r, b"one", "wrong magic");
    assert_refused(dir.path(), &r, b"two", "wrong magic");
    let kept: Vec<Vec<u8>> = corrupt_files(dir.path())
        .iter()
        .map(|p| fs::read(p).unwrap())
        .collect();
    assert!(kept.contains(&b"one".to_vec()) && kept.contains(&b"two".to_vec()));
}

/// Prints the time to save and to load a room of 10 000 objects. Run with
/// `cargo test --release --lib server::store::tests::save_and_load_figures -- --ignored --nocapture`.
#[test]
#[ignore = "prints figures; run by hand in release"]
fn save_and_load_figures() {
    let dir = tempfile::tempdir().unwrap();
    let r = room("figures");
    let world = world(10_000);
    let runs = 5;
    let (mut encode, mut write_s, mut load_s, mut bytes) = (0.0, 0.0, 0.0, 0);
    for _ in 0..runs {
        let t = Instant::now();
        let encoded = format::encode(&r, &world, 0);
        encode += t.elapsed().as_secs_f64();
        let t = Instant::now();
        super::write(dir.path(), &r, &encoded).unwrap();
        write_s += t.elapsed().as_secs_f64();
        bytes = encoded.len();
        let t = Instant::now();
        let back = load(dir.path(), &r).unwrap();
        load_s += t.elapsed().as_secs_f64();
        assert_eq!(back.state_hash(), world.state_hash());
    }
    let ms = |s: f64| s / f64::from(runs) * 1e3;
    println!(
        "room of {} entities, {} values, file {bytes} bytes: save {:.2} ms (encode {:.2} ms + write and fsync {:.2} ms), load {:.2} ms (mean of {runs})",
        world.stats().entities,
        world.stats().components,
        ms(encode + write_s),
        ms(encode),
        ms(write_s),
        ms(load_s),
    );
}
