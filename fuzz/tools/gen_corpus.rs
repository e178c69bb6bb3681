//! Writes the seed corpora of every fuzz target to `fuzz/corpus/<target>/seed-*`: valid
//! messages made by theta-net's own encoders from the fixture scene, plus a few truncated,
//! mutated, duplicated, reordered and oversized ones. Files not named `seed-*` (what a fuzz
//! run found, crash regressions) are left alone; old seeds are replaced.
//!
//! ```sh
//! cargo run --manifest-path fuzz/Cargo.toml --bin gen-corpus            # the seeds
//! cargo run --manifest-path fuzz/Cargo.toml --bin gen-corpus -- --train # the dictionary
//! ```
//!
//! `--train` retrains `fuzz/targets/fixture.dict` on the scene's messages instead; the
//! seeds compressed with it must then be regenerated (build again, run without `--train`).

use std::fs;
use std::path::{Path, PathBuf};

use theta_fuzz::codec::{APPLY, BOUNDS, DICTIONARY, PRIME};
use theta_fuzz::control::HOLDS_DICTIONARY as CONTROL_DICTIONARY;
use theta_fuzz::fixture::{
    self, Scene, CLIENT_PEER, KNOWS_REGISTRY, LEVEL, NOW_UNIX, OWNER, PRIMED, RESUME, RESUME_PEER,
    SECRET,
};
use theta_fuzz::input::join;
use theta_fuzz::pose::{avatar_sections, EXPLICIT_SOURCES};
use theta_fuzz::replica::{ANY_KIND, HOLDS_DICTIONARY};
use theta_net::fields::FieldLayout;
use theta_net::net::compression::{control_message, StreamKind};
use theta_net::net::token::{mint, mint_for_room, JoinSecret};
use theta_net::server::RoomId;
use theta_net::wire::codec::{
    train_dictionary, Codec, Dictionary, FrameFormat, NoCodec, StreamEncoder, Zstd, ZstdDict,
    MAX_DATAGRAM_BYTES,
};
use theta_net::wire::registry_bytes::encode_registry;
use theta_net::wire::{
    datagram_header, fb, lanes, Acceptance, BatchRef, ChunkHeader, Encoder, FrameParts, LaneBatch,
    MAX_MESSAGE_BYTES,
};
use theta_net::xr::relay::{RelaySender, RelaySource};
use theta_net::xr::stream::{
    Ack, PoseReceiver, PoseSender, QuantizedController, QuantizedVelocity, Section,
};
use theta_net::xr::{ControllerState, Device, Vec3, Volume};
use theta_net::{ComponentDescriptor, ComponentId, DeltaTracker, EntityId, Layout};

/// Where the corpora live: `fuzz/corpus`, next to this package's manifest.
fn corpus_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus")
}

/// The seeds of one target.
struct Seeds {
    target: &'static str,
    files: Vec<(String, Vec<u8>)>,
}

impl Seeds {
    fn new(target: &'static str) -> Seeds {
        Seeds {
            target,
            files: Vec::new(),
        }
    }

    /// A seed of `records` after `header`.
    fn add<R: AsRef<[u8]>>(&mut self, name: &str, header: u8, records: &[R]) {
        self.files.push((name.to_owned(), join(header, records)));
    }

    /// Replaces the target's `seed-*` files with these.
    fn write(self) -> (usize, usize) {
        let dir = corpus_root().join(self.target);
        fs::create_dir_all(&dir).expect("create the corpus directory");
        for entry in fs::read_dir(&dir).expect("list the corpus directory") {
            let path = entry.expect("a directory entry").path();
            let is_seed = path
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("seed-"));
            if is_seed {
                fs::remove_file(&path).expect("remove an old seed");
            }
        }
        let mut bytes = 0;
        for (name, data) in &self.files {
            bytes += data.len();
            fs::write(dir.join(format!("seed-{name}")), data).expect("write a seed");
        }
        (self.files.len(), bytes)
    }
}

/// `bytes` with the byte at `at` (modulo the length) inverted.
fn flip(bytes: &[u8], at: usize) -> Vec<u8> {
    let mut out = bytes.to_vec();
    if !out.is_empty() {
        let i = at % out.len();
        out[i] ^= 0xff;
    }
    out
}

/// The first half of `bytes`.
fn half(bytes: &[u8]) -> Vec<u8> {
    bytes[..bytes.len() / 2].to_vec()
}

fn frame_with(codec: &dyn Codec, message: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    codec.compress(message, &mut out).expect("compress");
    out
}

fn raw(message: &[u8]) -> Vec<u8> {
    frame_with(&NoCodec, message)
}

/// A stream message: its kind byte, then the frame.
fn on_stream(kind: StreamKind, frame: &[u8]) -> Vec<u8> {
    let mut out = vec![kind as u8];
    out.extend_from_slice(frame);
    out
}

fn descriptor(name: &str, layout: Layout) -> ComponentDescriptor {
    ComponentDescriptor {
        id: ComponentId::of_name(name),
        name: name.to_owned(),
        layout,
    }
}

fn client_entity(counter: u64) -> EntityId {
    EntityId::new(CLIENT_PEER, counter).expect("valid counter")
}

fn host_entity(counter: u64) -> EntityId {
    EntityId::new(0, counter).expect("valid counter")
}

/// The scene after the prime, its next `n` delta frames, and the deltas' parts kept for
/// re-encoding (datagrams).
fn next_deltas(n: usize) -> (Scene, DeltaTracker, Vec<theta_net::Delta>) {
    let (mut scene, mut tracker, _) = fixture::primed_scene();
    let mut deltas = Vec::new();
    for _ in 0..n {
        scene.step();
        deltas.push(tracker.diff(&scene.world).expect("in history"));
    }
    (scene, tracker, deltas)
}

/// A delta frame spawning `count` entities (after the host's own) each with a tag: 8 bytes
/// of entity id per spawn and insert event, the most events per byte a frame can carry.
fn tag_flood(tick: u64, count: u64) -> Vec<u8> {
    let tag = descriptor(fixture::TAG.0, fixture::TAG.1);
    let entities: Vec<EntityId> = (0..count).map(|i| host_entity(1000 + i)).collect();
    let inserted = vec![0xffu8; entities.len().div_ceil(8)];
    let batch = BatchRef {
        component: tag.id,
        entities: &entities,
        data: &[],
        lengths: None,
        inserted: Some(&inserted),
    };
    Encoder::new().delta_frame(&FrameParts {
        base_tick: tick - 1,
        tick,
        descriptors: &[&tag],
        spawns: &entities,
        batches: &[batch],
        removes: &[],
        despawns: &[],
        owner_seq: 0,
        baseline_ages: &[],
        lanes: &[],
    })
}

fn snapshot_chunk_seeds() -> Seeds {
    let mut s = Seeds::new("snapshot_chunk");
    let prime = fixture::prime();
    let chunks = &prime.chunks;
    assert!(chunks.len() >= 2, "the fixture snapshot has several chunks");
    s.add("learn-all-chunks", 0, chunks);
    let mut reversed: Vec<Vec<u8>> = chunks.iter().rev().cloned().collect();
    reversed.push(chunks[0].clone());
    s.add("reversed-and-duplicate", KNOWS_REGISTRY, &reversed);
    // A later snapshot over the primed replica, then the old one's chunk (stale).
    let (mut scene, _, _) = fixture::primed_scene();
    for _ in 0..3 {
        scene.step();
    }
    let later: Vec<Vec<u8>> = scene
        .world
        .snapshot(fixture::CHUNK_BYTES)
        .chunks
        .into_iter()
        .map(|c| c.bytes)
        .collect();
    let mut records = later.clone();
    records.push(chunks[0].clone());
    s.add(
        "later-snapshot-then-stale",
        PRIMED | KNOWS_REGISTRY,
        &records,
    );
    s.add("later-snapshot-owner", PRIMED | OWNER, &later);
    // The same scene cut with another bound: chunks of one tick that disagree.
    let recut: Vec<Vec<u8>> = scene
        .world
        .snapshot(4 * fixture::CHUNK_BYTES)
        .chunks
        .into_iter()
        .map(|c| c.bytes)
        .collect();
    s.add("two-cuttings", KNOWS_REGISTRY, &[&later[0], &recut[0]]);
    // A chunk carrying the client's own entities: a rejoining client adopts them.
    let color = descriptor(fixture::COLOR.0, fixture::COLOR.1);
    let mine = [client_entity(1), client_entity(5)];
    let colors = [1u8, 2, 3, 4, 5, 6, 7, 8];
    let adopted = Encoder::new().snapshot_chunk(
        ChunkHeader {
            tick: prime.snapshot_tick + 50,
            index: 0,
            total: 2,
            registry_hash: prime.registry.hash(),
            max_chunk_bytes: 1024,
        },
        &[&color],
        &[client_entity(9)],
        &[BatchRef {
            component: color.id,
            entities: &mine,
            data: &colors,
            lengths: None,
            inserted: None,
        }],
    );
    s.add("adopt-own-entities", PRIMED | OWNER, &[&adopted]);
    // Header edge cases: the largest total, and an index past it.
    let header = |index, total| ChunkHeader {
        tick: prime.snapshot_tick + 60,
        index,
        total,
        registry_hash: prime.registry.hash(),
        max_chunk_bytes: 1024,
    };
    let huge = Encoder::new().snapshot_chunk(header(7, 1 << 20), &[], &[host_entity(3)], &[]);
    let past = Encoder::new().snapshot_chunk(header(9, 9), &[], &[host_entity(3)], &[]);
    s.add("huge-total-and-index-past", PRIMED, &[huge, past]);
    s.add(
        "truncated-and-flipped",
        KNOWS_REGISTRY,
        &[half(&chunks[0]), flip(&chunks[1], 40), flip(&chunks[0], 7)],
    );
    s.add(
        "any-kind-chunks-and-deltas",
        KNOWS_REGISTRY | ANY_KIND,
        &[&chunks[0], &prime.deltas[0], &chunks[1]],
    );
    // Many tags in one chunk: the most events per input byte.
    let tag = descriptor(fixture::TAG.0, fixture::TAG.1);
    let entities: Vec<EntityId> = (0..2000).map(|i| host_entity(5000 + i)).collect();
    let flood = Encoder::new().snapshot_chunk(
        ChunkHeader {
            tick: prime.snapshot_tick + 70,
            index: 0,
            total: 1,
            registry_hash: prime.registry.hash(),
            max_chunk_bytes: 1 << 20,
        },
        &[&tag],
        &[],
        &[BatchRef {
            component: tag.id,
            entities: &entities,
            data: &[],
            lengths: None,
            inserted: None,
        }],
    );
    s.add("tag-flood", 0, &[flood]);
    s
}

fn delta_frame_seeds() -> Seeds {
    let mut s = Seeds::new("delta_frame");
    let prime = fixture::prime();
    let (mut scene, _, deltas) = next_deltas(6);
    let frames: Vec<Vec<u8>> = deltas.iter().map(|d| d.encode()).collect();
    s.add("next-six", PRIMED | KNOWS_REGISTRY, &frames);
    let shuffled = [
        &frames[2],
        &frames[0],
        &frames[0],
        &frames[5],
        &frames[1],
        &prime.deltas[0],
    ];
    s.add("reordered-duplicated-stale", PRIMED, &shuffled);
    s.add("owner", PRIMED | OWNER, &frames);
    // The whole world as one frame, for a replica that starts empty.
    let whole = DeltaTracker::new()
        .diff(&scene.world)
        .expect("whole world")
        .encode();
    s.add("whole-world-from-scratch", 0, &[&whole]);
    // A type registered mid-session: its descriptor comes with its first values.
    let late = scene
        .world
        .register("fuzz.Late", Layout::Variable { max: 1024 })
        .expect("a new type");
    let mut tracker = DeltaTracker::starting_at(
        scene.world.tick(),
        prime.registry.descriptors().iter().map(|d| d.id),
    );
    let _ = tracker.diff(&scene.world);
    let live = scene.live().to_vec();
    for (i, &e) in live.iter().take(5).enumerate() {
        scene
            .world
            .set(e, late, &vec![i as u8; 100 * i])
            .expect("fits");
    }
    scene.world.despawn(live[6]).expect("alive");
    let with_late = tracker.diff(&scene.world).expect("in history").encode();
    s.add(
        "new-type-mid-session",
        PRIMED | KNOWS_REGISTRY,
        &[&frames[0], &with_late],
    );
    // The client's own entities in a host frame: spawns, values, a removal, a despawn.
    let color = descriptor(fixture::COLOR.0, fixture::COLOR.1);
    let mine = [client_entity(1), client_entity(2)];
    let base = prime.snapshot_tick + 40;
    let own = Encoder::new().delta_frame(&FrameParts {
        base_tick: base,
        tick: base + 1,
        descriptors: &[&color],
        spawns: &mine,
        batches: &[BatchRef {
            component: color.id,
            entities: &mine,
            data: &[9u8; 8],
            lengths: None,
            inserted: Some(&[3]),
        }],
        removes: &[(color.id, &mine[..1])],
        despawns: &[host_entity(2), client_entity(3)],
        owner_seq: 0,
        baseline_ages: &[],
        lanes: &[],
    });
    s.add("own-entities", PRIMED | OWNER, &[&own]);
    s.add("own-entities-not-owner", PRIMED | KNOWS_REGISTRY, &[&own]);
    s.add(
        "truncated-and-flipped",
        PRIMED | KNOWS_REGISTRY,
        &[half(&frames[0]), flip(&frames[1], 33), flip(&frames[2], 90)],
    );
    s.add("tag-flood", KNOWS_REGISTRY, &[tag_flood(base + 10, 2000)]);
    s
}

/// The body of a state datagram carrying `delta` (the message its envelope wraps).
fn datagram_body(delta: &theta_net::Delta) -> Vec<u8> {
    delta.with_parts(|parts| Encoder::new().state_datagram(parts))
}

/// A state datagram: the header of `seq` with `acks`, then `envelope` (empty: an
/// acknowledgement alone).
fn with_header(seq: u64, acks: &[(u64, u64)], envelope: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    datagram_header::write(seq, acks, &mut out);
    out.extend_from_slice(envelope);
    out
}

/// Headers no sender makes, each with a raw envelope of `body` after it.
fn damaged_headers(body: &[u8]) -> Vec<Vec<u8>> {
    let after = |mut header: Vec<u8>| {
        header.extend_from_slice(&raw(body));
        header
    };
    let tag = datagram_header::STATE_DATAGRAM_TAG;
    vec![
        // Truncated inside the sequence number, inside a range.
        vec![tag, 0x80],
        vec![tag, 7, 2, 1],
        // An overlong sequence number, range count, and first.
        after(vec![tag, 0x87, 0x00, 0]),
        after(vec![tag, 7, 0x80, 0x00]),
        after(vec![tag, 7, 1, 0x81, 0x80, 0x00, 0]),
        // A sequence number past 64 bits.
        after([&[tag][..], &[0xff; 9], &[0x02, 0]].concat()),
        // Seventeen ranges, and a count past any bound, with nothing after.
        after([&[tag, 7, 17][..], &[1u8, 0].repeat(17)].concat()),
        vec![tag, 7, 0xff, 0xff, 0xff, 0xff, 0x0f],
        // A last past u64::MAX.
        after([&[tag, 7, 1, 0xfe][..], &[0xff; 8], &[0x01, 0x02]].concat()),
        // The form before protocol revision 2: the envelope without a header.
        raw(body),
        // Another first byte.
        after(vec![0x11, 7, 0]),
        // A stream envelope after a good header.
        with_header(9, &[], &[FrameFormat::StreamContinue as u8, 1, 2, 3]),
    ]
}

fn state_datagram_seeds() -> Seeds {
    let mut s = Seeds::new("state_datagram");
    let (_, _, deltas) = next_deltas(6);
    let messages: Vec<Vec<u8>> = deltas.iter().map(datagram_body).collect();
    for m in &messages {
        assert!(m.len() < MAX_DATAGRAM_BYTES, "a fixture datagram fits");
    }
    let zstd = Zstd::new(LEVEL).expect("zstd");
    let dict = ZstdDict::new(LEVEL, &fixture::dictionary()).expect("zstd");
    let all = PRIMED | KNOWS_REGISTRY | HOLDS_DICTIONARY;
    // Datagram i + 1 acknowledges the peer's 1..=i.
    let framed = |codec: &dyn Codec| -> Vec<Vec<u8>> {
        messages
            .iter()
            .enumerate()
            .map(|(i, m)| with_header(i as u64 + 1, &[(1, i as u64)], &frame_with(codec, m)))
            .collect()
    };
    let raw_frames = framed(&NoCodec);
    let zstd_frames = framed(&zstd);
    let dict_frames = framed(&dict);
    assert!(
        dict_frames
            .iter()
            .any(|f| f.get(5) == Some(&(FrameFormat::ZstdDict as u8))),
        "the fixture dictionary compresses datagrams"
    );
    s.add("raw", PRIMED | KNOWS_REGISTRY, &raw_frames);
    s.add("zstd", PRIMED | KNOWS_REGISTRY, &zstd_frames);
    s.add("dictionary", all, &dict_frames);
    s.add("dictionary-not-held", PRIMED | KNOWS_REGISTRY, &dict_frames);
    s.add("owner", all | OWNER, &dict_frames);
    let mut mixed = vec![
        with_header(50, &[(1, 9), (12, 20), (28, 30)], &[]),
        dict_frames[1].clone(),
        dict_frames[1].clone(),
        zstd_frames[0].clone(),
        vec![0x80, 1, 2, 3],
        vec![0x07, 0],
        half(&dict_frames[2]),
        flip(&dict_frames[3], 9),
        flip(&zstd_frames[4], 6),
        flip(&raw_frames[5], 2),
    ];
    mixed.push(with_header(51, &[], &[]));
    let outcome = theta_fuzz::replica::state_datagram(&join(all, &mixed));
    assert!(
        outcome.accepted >= 5 && outcome.refused >= 3,
        "acknowledgements alone, a duplicate and damage: {outcome:?}"
    );
    s.add("acks-duplicates-and-damage", all, &mixed);
    // An acknowledgement alone, with every range a sender sends.
    let most: Vec<(u64, u64)> = (0..datagram_header::MAX_ACK_RANGES as u64)
        .map(|i| (u64::MAX - 20 * i - 9, u64::MAX - 20 * i))
        .collect();
    s.add(
        "ack-only",
        all,
        &[
            with_header(u64::MAX - 1, &most, &[]),
            with_header(3, &[(0, 0)], &[]),
        ],
    );
    let damaged = damaged_headers(&messages[0]);
    let outcome = theta_fuzz::replica::state_datagram(&join(all, &damaged));
    assert_eq!(
        (outcome.accepted, outcome.refused),
        (0, damaged.len()),
        "every damaged header is refused"
    );
    s.add("damaged-header", all, &damaged);
    // Labels of one repeated byte on every object: the most a datagram decompresses per
    // byte received.
    let label = descriptor(fixture::LABEL.0, fixture::LABEL.1);
    let entities: Vec<EntityId> = (1..=16).map(host_entity).collect();
    let data = vec![b'a'; 64 * entities.len()];
    let lengths = vec![64u32; entities.len()];
    let inserted = vec![0u8; 2];
    let tick = fixture::prime().snapshot_tick + 30;
    let labels = Encoder::new().state_datagram(&FrameParts {
        base_tick: tick - 1,
        tick,
        descriptors: &[],
        spawns: &[],
        batches: &[BatchRef {
            component: label.id,
            entities: &entities,
            data: &data,
            lengths: Some(&lengths),
            inserted: Some(&inserted),
        }],
        removes: &[],
        despawns: &[],
        owner_seq: 0,
        baseline_ages: &[],
        lanes: &[],
    });
    assert!(labels.len() <= MAX_DATAGRAM_BYTES);
    s.add(
        "repeated-labels",
        all,
        &[
            with_header(99, &[], &frame_with(&zstd, &labels)),
            with_header(100, &[], &frame_with(&dict, &labels)),
        ],
    );
    let poses: Vec<Vec<u8>> = pose_lanes(tick + 10)
        .iter()
        .enumerate()
        .map(|(i, m)| with_header(200 + i as u64, &[], &raw(m)))
        .collect();
    let outcome = theta_fuzz::replica::state_datagram(&join(all, &poses));
    assert_eq!(
        (outcome.accepted, outcome.refused),
        (3, 0),
        "the pose lanes (alone, on a baseline, on a prediction) apply"
    );
    s.add("pose-lanes", all, &poses);
    s.add(
        "pose-lanes-damaged",
        all,
        &[
            poses[0].clone(),
            poses[1].clone(),
            flip(&poses[2], 60),
            half(&poses[2]),
        ],
    );
    s
}

/// Three state datagrams carrying poses (declared fields) of four host entities as
/// lanes: against nothing at `tick`, on the baseline of `tick` one tick later, and on the
/// prediction through both one tick after that.
fn pose_lanes(tick: u64) -> Vec<Vec<u8>> {
    let pose = ComponentId::of_name(fixture::POSE.0);
    let layout = FieldLayout::new(28, &fixture::POSE_FIELDS).expect("fixture fields");
    let entities: Vec<EntityId> = (1..=4).map(host_entity).collect();
    let value = |step: u64, i: usize| -> Vec<i64> {
        let yaw = (step as f32 * 0.1 + i as f32).sin_cos();
        let floats = [i as f32, 1.5, step as f32 * 0.01, 0.0, yaw.0, 0.0, yaw.1];
        let bytes: Vec<u8> = floats.iter().flat_map(|x| x.to_le_bytes()).collect();
        layout.to_lanes(&bytes).expect("a fixture pose quantises")
    };
    let mut out = Vec::new();
    for step in 0..3u64 {
        let (mut coded, mut ages, mut older) = (Vec::new(), Vec::new(), Vec::new());
        let mut predicted = Vec::new();
        for i in 0..entities.len() {
            let now = value(step, i);
            match step {
                0 => lanes::encode(layout.lane_kinds(), &now, None, &mut coded),
                1 => lanes::encode(layout.lane_kinds(), &now, Some(&value(0, i)), &mut coded),
                _ => {
                    lanes::predict(
                        layout.lane_kinds(),
                        (&value(1, i), tick + 1),
                        (&value(0, i), tick),
                        tick + 2,
                        &mut predicted,
                    );
                    lanes::encode(layout.lane_kinds(), &now, Some(&predicted), &mut coded);
                }
            }
            ages.push(step.min(1) as u8);
            older.push(if step == 2 { 2 } else { 0 });
        }
        let age_refs: [&[u8]; 1] = [&ages];
        let lane_batches = [LaneBatch {
            lanes: &coded,
            older_ages: &older,
        }];
        out.push(Encoder::new().state_datagram(&FrameParts {
            base_tick: tick + step - 1,
            tick: tick + step,
            descriptors: &[],
            spawns: &entities,
            batches: &[BatchRef {
                component: pose,
                entities: &entities,
                data: &[],
                lengths: None,
                inserted: None,
            }],
            removes: &[],
            despawns: &[],
            owner_seq: 0,
            baseline_ages: &age_refs,
            lanes: &lane_batches,
        }));
    }
    out
}

fn codec_frame_seeds() -> Seeds {
    let mut s = Seeds::new("codec_frame");
    let prime = fixture::prime();
    let (_, _, deltas) = next_deltas(3);
    let mut messages: Vec<Vec<u8>> = deltas.iter().map(|d| d.encode()).collect();
    messages.push(datagram_body(&deltas[0]));
    messages.push(prime.chunks[0].clone());
    let zstd = Zstd::new(LEVEL).expect("zstd");
    let dict = ZstdDict::new(LEVEL, &fixture::dictionary()).expect("zstd");
    let codecs: [(&str, &dyn Codec, u8); 4] = [
        ("none", &NoCodec, 0),
        ("zstd", &zstd, 1),
        ("dictionary", &dict, 2),
        ("set", &dict, 3),
    ];
    // Bound index 1: MAX_MESSAGE_BYTES, the stream's.
    let stream_bound = 1 << 2;
    assert_eq!(BOUNDS[1], MAX_MESSAGE_BYTES);
    for (name, codec, index) in codecs {
        let frames: Vec<Vec<u8>> = messages.iter().map(|m| frame_with(codec, m)).collect();
        s.add(&format!("{name}-messages"), index | stream_bound, &frames);
        s.add(&format!("{name}-datagram-bound"), index, &frames);
        s.add(&format!("{name}-small-bound"), index | (3 << 2), &frames);
    }
    // Envelope edge cases, each for every codec.
    let zeros = vec![0u8; 4 << 20];
    let mut big = Vec::new();
    zstd.compress(&zeros, &mut big).expect("compress");
    let mut declared_huge = vec![FrameFormat::Zstd as u8];
    theta_net::wire::codec::write_varint(&mut declared_huge, MAX_MESSAGE_BYTES as u64);
    declared_huge.extend_from_slice(&[0x28, 0xb5, 0x2f, 0xfd, 0, 0]);
    let edge = vec![
        Vec::new(),
        vec![9, 1, 2],
        vec![FrameFormat::Zstd as u8, 0x80, 0x80],
        vec![FrameFormat::Zstd as u8; 12],
        vec![FrameFormat::ZstdDict as u8, 7, 3, 1, 2, 3],
        vec![FrameFormat::StreamStart as u8, 0, 1, 0],
        declared_huge,
        half(&frame_with(&zstd, &messages[0])),
        flip(&frame_with(&dict, &messages[1]), 9),
    ];
    for (name, _, index) in codecs {
        s.add(&format!("{name}-edges"), index | stream_bound, &edge);
    }
    // 4 MiB of zeros in a few hundred bytes: zstd's largest expansion.
    s.add("zstd-zeros", 1 | stream_bound, &[&big]);
    s.add("set-zeros", 3 | stream_bound, &[&big]);
    s.add("zstd-zeros-datagram-bound", 1, &[&big]);
    s
}

fn codec_stream_seeds() -> Seeds {
    let mut s = Seeds::new("codec_stream");
    let (_, _, deltas) = next_deltas(7);
    // The first of these is the prime's message (see fixture::stream_prime_message).
    let messages: Vec<Vec<u8>> = deltas.iter().map(|d| d.encode()).collect();
    assert_eq!(messages[0], fixture::stream_prime_message());
    let bound = 1 << 2;
    for with_dictionary in [true, false] {
        let dictionary = with_dictionary.then(fixture::dictionary);
        let flag = if with_dictionary { DICTIONARY } else { 0 };
        let name = if with_dictionary {
            "dictionary"
        } else {
            "plain"
        };
        let (mut encoder, start) = fixture::stream_primed_encoder(with_dictionary);
        let mut continuations = Vec::new();
        for m in &messages[1..] {
            let mut frame = Vec::new();
            encoder
                .compress(m, dictionary.as_ref(), &mut frame)
                .expect("compress");
            assert_eq!(frame[0], FrameFormat::StreamContinue as u8);
            continuations.push(frame);
        }
        s.add(
            &format!("{name}-primed"),
            PRIME | flag | bound | APPLY,
            &continuations,
        );
        s.add(
            &format!("{name}-primed-no-replica"),
            PRIME | flag | bound,
            &continuations,
        );
        let mut whole = vec![start.clone()];
        whole.extend(continuations.iter().cloned());
        s.add(&format!("{name}-whole"), flag | bound | APPLY, &whole);
        // Damage in the middle: the decoder is poisoned until the next start.
        let mut fresh = StreamEncoder::new(LEVEL).expect("zstd");
        let mut restart = Vec::new();
        fresh
            .compress(&messages[0], dictionary.as_ref(), &mut restart)
            .expect("compress");
        let damaged = vec![
            continuations[0].clone(),
            flip(&continuations[1], 6),
            continuations[2].clone(),
            raw(&messages[3]),
            restart,
            half(&continuations[3]),
        ];
        s.add(
            &format!("{name}-damaged"),
            PRIME | flag | bound | APPLY,
            &damaged,
        );
        s.add(
            &format!("{name}-small-bounds"),
            PRIME | flag | (2 << 2),
            &continuations,
        );
    }
    // A stream whose dictionary changes: each change starts a new stream.
    let dictionary = fixture::dictionary();
    let mut encoder = StreamEncoder::new(LEVEL).expect("zstd");
    let mut frames = Vec::new();
    for (i, m) in messages.iter().enumerate() {
        let mut frame = Vec::new();
        let with = (i / 2) % 2 == 0;
        encoder
            .compress(m, with.then_some(&dictionary), &mut frame)
            .expect("compress");
        frames.push(frame);
    }
    frames.push(frame_with(&Zstd::new(LEVEL).expect("zstd"), &messages[0]));
    frames.push(Vec::new());
    frames.push(vec![FrameFormat::StreamContinue as u8, 5, 1, 2]);
    s.add("dictionary-changes", DICTIONARY | bound | APPLY, &frames);
    s.add(
        "prime-too-large",
        PRIME | DICTIONARY | (3 << 2),
        &frames[1..3],
    );
    // 4 MiB of zeros as one stream message: zstd's largest expansion, within the bound.
    let mut zeros = Vec::new();
    StreamEncoder::new(LEVEL)
        .expect("zstd")
        .compress(&vec![0u8; 4 << 20], None, &mut zeros)
        .expect("compress");
    s.add("zeros", bound, &[&zeros]);
    s.add("zeros-datagram-bound", 0, &[&zeros]);
    s
}

fn control_message_seeds() -> Seeds {
    let mut s = Seeds::new("control_message");
    let prime = fixture::prime();
    let dictionary = fixture::dictionary();
    let mut encoder = Encoder::new();
    let offer = |encoder: &mut Encoder, id, kind, bytes: &[u8]| {
        control_message(&encoder.dictionary(id, kind, bytes))
    };
    // The host sends a dictionary for delta frames, then delta frames in a stream with it,
    // then retires it.
    let (_, _, deltas) = next_deltas(4);
    let messages: Vec<Vec<u8>> = deltas.iter().map(|d| d.encode()).collect();
    let streamed = Dictionary::new(2, dictionary.bytes.clone());
    let mut stream = StreamEncoder::new(LEVEL).expect("zstd");
    let mut records = vec![offer(
        &mut encoder,
        2,
        fb::CodecKind::DeltaFrame,
        &dictionary.bytes,
    )];
    for m in &messages {
        let mut frame = Vec::new();
        stream
            .compress(m, Some(&streamed), &mut frame)
            .expect("compress");
        records.push(on_stream(StreamKind::DeltaFrame, &frame));
    }
    records.insert(3, control_message(&encoder.dictionary_retire(&[2])));
    s.add("dictionary-then-stream", PRIMED | KNOWS_REGISTRY, &records);
    // Snapshot chunks with a per-frame dictionary, for a replica that starts empty.
    let chunk_dict =
        ZstdDict::new(LEVEL, &Dictionary::new(3, dictionary.bytes.clone())).expect("zstd");
    let mut records = vec![offer(
        &mut encoder,
        3,
        fb::CodecKind::SnapshotChunk,
        &dictionary.bytes,
    )];
    for chunk in &prime.chunks {
        records.push(on_stream(
            StreamKind::SnapshotChunk,
            &frame_with(&chunk_dict, chunk),
        ));
    }
    s.add("snapshot-with-dictionary", 0, &records);
    // Every other control message, and a held dictionary used per frame.
    let fixture_dict = ZstdDict::new(LEVEL, &dictionary).expect("zstd");
    let notices = vec![
        control_message(&encoder.write_rejected(client_entity(4).0, 77, "not yours")),
        control_message(&encoder.peer_joined(5)),
        control_message(&encoder.peer_left(5, "timed out")),
        control_message(&encoder.dictionary_ack(1)),
        control_message(&encoder.left(40, &[3, 4], false)),
        control_message(&encoder.left(41, &[5], true)),
        control_message(&encoder.client_interest(
            &[fb::InterestVolume::new(
                0,
                &fb::Vec3::new(1.0, 2.0, 3.0),
                &fb::Vec3::new(0.0, 0.0, 0.0),
                5.0,
                6.0,
            )],
            &[7, 8],
        )),
        on_stream(
            StreamKind::DeltaFrame,
            &frame_with(&fixture_dict, &messages[0]),
        ),
        on_stream(
            StreamKind::SnapshotChunk,
            &frame_with(&fixture_dict, &prime.chunks[0]),
        ),
    ];
    s.add("notices", PRIMED | CONTROL_DICTIONARY, &notices);
    // Dictionaries refused (id 0, empty, unknown kind), evicted (six of one kind), and
    // garbage bytes that zstd must load or refuse.
    let mut records = vec![
        offer(&mut encoder, 0, fb::CodecKind::Datagram, &dictionary.bytes),
        offer(&mut encoder, 9, fb::CodecKind::Datagram, &[]),
        offer(&mut encoder, 10, fb::CodecKind(9), &dictionary.bytes),
        offer(
            &mut encoder,
            11,
            fb::CodecKind::Datagram,
            &[0x37, 0xa4, 0x30, 0xec, 1, 2, 3],
        ),
        offer(
            &mut encoder,
            12,
            fb::CodecKind::Datagram,
            &flip(&dictionary.bytes, 20),
        ),
    ];
    for id in 20..26 {
        records.push(offer(
            &mut encoder,
            id,
            fb::CodecKind::SnapshotChunk,
            &dictionary.bytes[..512],
        ));
    }
    records.push(control_message(&encoder.dictionary_retire(&[21, 22, 99])));
    s.add("dictionaries-refused-and-evicted", 0, &records);
    // Damage: a compressed control envelope, an unknown kind byte, an empty message.
    let mut compressed_control = vec![StreamKind::Control as u8];
    compressed_control.extend(frame_with(&fixture_dict, &encoder.peer_joined(6)));
    let damaged = vec![
        compressed_control,
        vec![7, 0, 1],
        Vec::new(),
        half(&notices[0]),
        flip(&notices[7], 3),
        on_stream(
            StreamKind::DeltaFrame,
            &[FrameFormat::StreamContinue as u8, 4, 0],
        ),
    ];
    s.add("damaged", PRIMED | CONTROL_DICTIONARY, &damaged);
    s
}

/// Packets of the fixture avatar to a receiver that acknowledges at once: what the
/// receiver sees, in order, minus the `lost` ones. With `explicit` sources they come from
/// the host's relay (each section's source a `RelaySource` of its own), else from a
/// client's own sender (the first section only).
fn pose_stream(
    sections: impl Fn(usize) -> Vec<Section>,
    count: usize,
    explicit: bool,
    lost: &[usize],
) -> Vec<Vec<u8>> {
    let volume = Volume::default();
    let mut sender = PoseSender::new(volume);
    let mut relay = RelaySender::new(volume);
    let mut sources: Vec<RelaySource> = Vec::new();
    let mut receiver = PoseReceiver::new(volume);
    let mut packets = Vec::new();
    for i in 0..count {
        let ack = (i % 5 == 4).then(|| Ack::new(i as u64 / 2, i % 10 == 4));
        let bytes = if explicit {
            for section in sections(i) {
                let at = match sources.iter().position(|s| s.source() == section.source) {
                    Some(at) => at,
                    None => {
                        sources.push(RelaySource::new(section.source));
                        sources.len() - 1
                    }
                };
                sources[at].push(section.samples, 1);
            }
            let mut all: Vec<&mut RelaySource> = sources.iter_mut().collect();
            relay
                .encode(&mut all, ack, 1200)
                .expect("the avatar encodes")
                .bytes
        } else {
            sender
                .encode(sections(i).first(), ack, 1200)
                .expect("the avatar encodes")
                .bytes
        };
        if lost.contains(&i) {
            continue;
        }
        receiver
            .decode(&bytes, explicit, CLIENT_PEER)
            .expect("the receiver decodes the sender's packets");
        if let Some(seq) = receiver.take_ack() {
            // Acknowledged at once: the next packets code against this one.
            let ack = Ack::new(seq, i > 8);
            if explicit {
                relay.on_ack(ack);
            } else {
                sender.on_ack(ack);
            }
        }
        packets.push(bytes);
    }
    packets
}

fn pose_packet_seeds() -> Seeds {
    let mut s = Seeds::new("pose_packet");
    let implicit = (CLIENT_PEER as u8) << 1;
    let own = avatar_sections(40, CLIENT_PEER);
    let packets = pose_stream(|i| vec![own[i].clone()], 40, false, &[]);
    s.add("client-avatar", implicit, &packets);
    let lossy = pose_stream(|i| vec![own[i].clone()], 40, false, &[3, 4, 10, 17, 18, 19]);
    s.add("client-avatar-lossy", implicit, &lossy);
    // Late and repeated deliveries (stale or duplicate), and a clock ping between.
    let mut shuffled = lossy.clone();
    shuffled.insert(9, lossy[5].clone());
    shuffled.insert(12, lossy[11].clone());
    shuffled.insert(2, vec![0xc0, 1, 2, 3, 4, 5, 6, 7, 8]);
    s.add("late-duplicated-clock", implicit, &shuffled);
    s.add("wrong-source-naming", EXPLICIT_SOURCES, &packets[..10]);
    // The host relaying three peers, with trackers, velocities and controllers.
    let others = [1u16, 3, 70];
    let avatars: Vec<Vec<Section>> = others
        .iter()
        .map(|&peer| avatar_sections(30, peer))
        .collect();
    let relay = |i: usize| {
        avatars
            .iter()
            .map(|a| {
                let mut section = a[i].clone();
                if section.source == 3 {
                    let mut tracker = section.samples[0];
                    tracker.device = Device::tracker(2).expect("tracker");
                    section.samples.push(tracker);
                    section.samples[1].velocity = Some(QuantizedVelocity::new(
                        Vec3::new(0.5, -0.25, 1.0),
                        Vec3::new(0.0, 3.0, -1.0),
                    ));
                    section.samples[2].controller =
                        Some(QuantizedController::new(&ControllerState {
                            buttons: 5,
                            trigger: 0.5,
                            grip: 1.0,
                            thumb_x: -0.3,
                            thumb_y: 0.9,
                        }));
                }
                section
            })
            .collect()
    };
    let relayed = pose_stream(relay, 30, true, &[6]);
    s.add("host-relay", EXPLICIT_SOURCES, &relayed);
    s.add(
        "damaged",
        EXPLICIT_SOURCES,
        &[
            relayed[0].clone(),
            half(&relayed[1]),
            flip(&relayed[2], 3),
            relayed[3].clone(),
            vec![0x80],
            Vec::new(),
        ],
    );
    s
}

fn join_request_seeds() -> Seeds {
    let mut s = Seeds::new("join_request");
    let secret = JoinSecret::from_bytes(SECRET);
    let hash = fixture::prime().registry.hash();
    let token = |peer, expires, nonce| mint(&secret, peer, expires, Some(nonce)).to_text();
    let mut e = Encoder::new();
    let valid = token(5, NOW_UNIX + 600, 1);
    let forged = mint(&JoinSecret::from_bytes([1; 32]), 5, NOW_UNIX + 600, Some(2)).to_text();
    let records = vec![
        e.join_request(&valid, hash),
        e.join_request(&valid, hash),
        e.join_request(&token(6, NOW_UNIX - 1, 3), hash),
        e.join_request(&forged, hash),
        e.join_request(&token(7, NOW_UNIX + 600, 4), hash ^ 1),
        e.join_request(&token(0, NOW_UNIX + 600, 5), hash),
        e.join_request("not a token", hash),
        e.resume_request(RESUME_PEER, &RESUME, hash, 1),
        e.resume_request(RESUME_PEER, &RESUME, hash, 1),
        e.resume_request(4, &RESUME, hash, 1),
    ];
    s.add("host-admission", 1, &records);
    s.add("host-no-resume", 0, &records[7..]);
    let accepted = e.join_accepted(&Acceptance {
        peer: 5,
        host_peer: 0,
        tick: 42,
        snapshot_chunks: 3,
        next_counter: 1,
        resume: &RESUME,
        resumed: false,
        max_chunk_bytes: 16 << 10,
        partial: false,
    });
    let refused = e.join_refused(fb::RefuseReason::TokenExpired, "join token expired");
    s.add(
        "client-answers",
        0,
        &[
            accepted.clone(),
            refused,
            half(&accepted),
            flip(&accepted, 12),
        ],
    );
    // The longest record a fuzz input holds (u16 lengths) is within the host's bound: a
    // long token text, refused by its length before it is decoded.
    s.add(
        "long-token",
        0,
        &[e.join_request(&"a".repeat(65_000), hash)],
    );
    // As clients send them: with their component types (a room server learns a room's
    // from them), and room tokens, which a hosted session refuses.
    let mut types = Vec::new();
    encode_registry(&fixture::prime().registry, &mut types);
    let room = RoomId::new("lobby").expect("a room id");
    let room_token = mint_for_room(&secret, &room, 8, NOW_UNIX + 600, Some(6)).to_text();
    s.add(
        "with-types",
        0,
        &[
            e.request(
                &token(9, NOW_UNIX + 600, 7),
                (hash, &types),
                (0, &[], 0),
                None,
            ),
            e.request(&room_token, (hash, &types), (0, &[], 0), None),
            e.request(
                &token(10, NOW_UNIX + 600, 8),
                (hash, &types[..types.len() / 2]),
                (0, &[], 0),
                None,
            ),
        ],
    );
    s
}

fn join_token_seeds() -> Seeds {
    let mut s = Seeds::new("join_token");
    let secret = JoinSecret::from_bytes(SECRET);
    let token = |peer, expires, nonce| mint(&secret, peer, expires, Some(nonce)).to_text();
    let record = |minutes: u8, text: &str| {
        let mut r = vec![minutes];
        r.extend_from_slice(text.as_bytes());
        r
    };
    let valid = token(5, NOW_UNIX + 600, 1);
    s.add(
        "valid-replayed-expired",
        0,
        &[
            record(0, &valid),
            record(0, &valid),
            record(11, &token(6, NOW_UNIX + 600, 2)),
        ],
    );
    let mut many = Vec::new();
    for nonce in 0..6 {
        many.push(record(1, &token(8, NOW_UNIX + 3600, 100 + nonce)));
    }
    many.push(record(255, &token(8, NOW_UNIX + 3600, 200)));
    s.add("replay-cache-full-then-pruned", 0, &many);
    let forged = mint(&JoinSecret::from_bytes([1; 32]), 5, NOW_UNIX + 600, Some(2)).to_text();
    let mut version_two = valid.clone();
    version_two.replace_range(0..2, "02");
    s.add(
        "texts",
        0,
        &[
            record(0, &valid.to_uppercase()),
            record(0, &format!("  {}\n", token(9, NOW_UNIX + 60, 3))),
            record(0, &forged),
            record(0, &version_two),
            record(0, &valid[..100]),
            record(0, &format!("{}zz", &valid[..100])),
            record(0, &secret.to_hex()),
            record(0, &"é".repeat(51)),
            vec![0, 0xff, 0xfe],
        ],
    );
    s
}

/// Trains the fixture dictionary on the scene's delta frames, datagrams and chunks.
fn train() {
    let (_, _, deltas) = next_deltas(300);
    let mut samples: Vec<Vec<u8>> = Vec::new();
    for d in &deltas {
        samples.push(d.encode());
        samples.push(datagram_body(d));
    }
    samples.extend(fixture::prime().chunks.iter().cloned());
    let refs: Vec<&[u8]> = samples.iter().map(Vec::as_slice).collect();
    let dictionary = train_dictionary(&refs, 16 << 10, fixture::DICTIONARY_ID).expect("training");
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("targets/fixture.dict");
    fs::write(&path, &dictionary.bytes).expect("write the dictionary");
    println!(
        "wrote {} ({} bytes); rebuild and run gen-corpus again to regenerate the seeds",
        path.display(),
        dictionary.bytes.len()
    );
}

fn main() {
    if std::env::args().any(|a| a == "--train") {
        train();
        return;
    }
    assert!(
        !fixture::dictionary().bytes.is_empty(),
        "no fixture dictionary: run with --train first"
    );
    let all = [
        snapshot_chunk_seeds(),
        delta_frame_seeds(),
        state_datagram_seeds(),
        codec_frame_seeds(),
        codec_stream_seeds(),
        control_message_seeds(),
        pose_packet_seeds(),
        join_request_seeds(),
        join_token_seeds(),
    ];
    let mut total = 0;
    for seeds in all {
        let target = seeds.target;
        let (files, bytes) = seeds.write();
        total += bytes;
        println!("{target:16} {files:3} seeds {bytes:8} bytes");
    }
    println!("total {total} bytes in {}", corpus_root().display());
}
