//! The wire codecs (`theta_net::wire::codec`) on real frames of this crate: snapshot chunks,
//! delta frames and state datagrams round-trip through every codec; malformed, mismatched
//! and oversized frames are errors; and the sizes each codec reaches are measured.

use std::io::Write;

use theta_net::registry::MAX_VALUE_BYTES;
use theta_net::wire::codec::{
    max_output_of, train_dictionary, write_varint, Codec, CodecConfig, CodecError, Dictionary,
    DictionarySet, FrameFormat, FrameHeader, MessageKind, NoCodec, StreamDecoder, StreamEncoder,
    Zstd, ZstdDict, MAX_DATAGRAM_BYTES,
};
use theta_net::wire::Encoder;
use theta_net::{
    ComponentId, Delta, DeltaTracker, EntityId, Layout, Registry, SetBatch, World,
    DEFAULT_MAX_CHUNK_BYTES,
};

/// SplitMix64, for a deterministic scene.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn unit(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32
    }
}

fn floats(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// How objects move each tick.
#[derive(Clone, Copy, Debug)]
enum Motion {
    /// Small steps from where they are (avatars, props being carried).
    Smooth,
    /// A fresh random transform each move, as the `theta demo` scene does.
    Teleport,
}

/// A scene like `theta demo`: objects with a transform (position + rotation) and a color,
/// a tenth with a label; each tick some move, one recolors, and objects come and go.
struct Scene {
    world: World,
    transform: ComponentId,
    color: ComponentId,
    label: ComponentId,
    objects: Vec<(EntityId, [f32; 7])>,
    rng: Rng,
    motion: Motion,
}

impl Scene {
    fn new(entities: usize, seed: u64, motion: Motion) -> Self {
        let mut world = World::default();
        let transform = world.register("demo.Transform", Layout::Fixed(28)).unwrap();
        let color = world.register("demo.Color", Layout::Fixed(4)).unwrap();
        let label = world
            .register("demo.Label", Layout::Variable { max: 64 })
            .unwrap();
        let mut scene = Scene {
            world,
            transform,
            color,
            label,
            objects: Vec::new(),
            rng: Rng(seed),
            motion,
        };
        for _ in 0..entities {
            scene.spawn_object();
        }
        scene
    }

    fn random_transform(&mut self) -> [f32; 7] {
        let angle = self.rng.unit() * std::f32::consts::PI;
        [
            self.rng.unit() * 20.0 - 10.0,
            self.rng.unit() * 3.0,
            self.rng.unit() * 20.0 - 10.0,
            0.0,
            angle.sin(),
            0.0,
            angle.cos(),
        ]
    }

    fn spawn_object(&mut self) {
        let e = self.world.spawn().unwrap();
        let t = self.random_transform();
        self.world.set(e, self.transform, &floats(&t)).unwrap();
        let color = (self.rng.next() as u32).to_le_bytes();
        self.world.set(e, self.color, &color).unwrap();
        if self.rng.below(10) == 0 {
            let label = format!("object-{}", e.counter());
            self.world.set(e, self.label, label.as_bytes()).unwrap();
        }
        self.objects.push((e, t));
    }

    /// One tick: `moving` objects move, one recolors, one in 200 ticks' worth leaves and
    /// another arrives.
    fn step(&mut self, moving: usize) {
        for _ in 0..moving {
            let i = self.rng.below(self.objects.len());
            let t = match self.motion {
                Motion::Teleport => self.random_transform(),
                Motion::Smooth => {
                    let mut t = self.objects[i].1;
                    t[0] += (self.rng.unit() - 0.5) * 0.05;
                    t[2] += (self.rng.unit() - 0.5) * 0.05;
                    t
                }
            };
            self.objects[i].1 = t;
            let e = self.objects[i].0;
            self.world.set(e, self.transform, &floats(&t)).unwrap();
        }
        let (e, _) = self.objects[self.rng.below(self.objects.len())];
        let color = (self.rng.next() as u32).to_le_bytes();
        self.world.set(e, self.color, &color).unwrap();
        if self.rng.below(4) == 0 {
            let i = self.rng.below(self.objects.len());
            let (e, _) = self.objects.swap_remove(i);
            self.world.despawn(e).unwrap();
            self.spawn_object();
        }
    }
}

/// Encoded delta frames of `ticks` ticks of `scene`, after the first (which describes
/// the component types and carries the whole world).
fn delta_frames(scene: &mut Scene, ticks: usize, moving: usize) -> Vec<Vec<u8>> {
    let mut tracker = DeltaTracker::new();
    tracker.diff(&scene.world).unwrap();
    (0..ticks)
        .map(|_| {
            scene.step(moving);
            tracker.diff(&scene.world).unwrap().encode()
        })
        .collect()
}

/// State datagram bodies carrying a few changes each, as the outbox sends them.
fn datagrams(scene: &mut Scene, count: usize) -> Vec<Vec<u8>> {
    let mut tracker = DeltaTracker::new();
    tracker.diff(&scene.world).unwrap();
    let mut encoder = Encoder::new();
    (0..count)
        .map(|_| {
            scene.step(3);
            let delta = tracker.diff(&scene.world).unwrap();
            let bytes = delta.with_parts(|parts| encoder.state_datagram(parts));
            assert!(bytes.len() <= MAX_DATAGRAM_BYTES, "{} bytes", bytes.len());
            bytes
        })
        .collect()
}

/// Frames of every kind, from one scene.
fn frames_by_kind() -> Vec<(MessageKind, Vec<Vec<u8>>)> {
    let mut scene = Scene::new(300, 7, Motion::Smooth);
    let chunks: Vec<Vec<u8>> = scene
        .world
        .snapshot(4096)
        .chunks
        .into_iter()
        .map(|c| c.bytes)
        .collect();
    assert!(chunks.len() > 1);
    let deltas = delta_frames(&mut scene, 40, 30);
    let datagrams = datagrams(&mut scene, 40);
    vec![
        (MessageKind::SnapshotChunk, chunks),
        (MessageKind::DeltaFrame, deltas),
        (MessageKind::Datagram, datagrams),
    ]
}

fn dictionary_from(frames: &[Vec<u8>], id: u32) -> Dictionary {
    let samples: Vec<&[u8]> = frames.iter().map(Vec::as_slice).collect();
    train_dictionary(&samples, 8 * 1024, id).unwrap()
}

fn frame(codec: &dyn Codec, input: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    codec.compress(input, &mut out).unwrap();
    out
}

#[test]
fn every_kind_round_trips_through_every_codec() {
    let kinds = frames_by_kind();
    let training: Vec<Vec<u8>> = kinds.iter().flat_map(|(_, f)| f.clone()).collect();
    let dict = dictionary_from(&training, 1);
    let mut receiver = DictionarySet::new();
    receiver.insert(dict.clone()).unwrap();
    let codecs: Vec<(&str, Box<dyn Codec>)> = vec![
        ("none", Box::new(NoCodec)),
        ("zstd-1", Box::new(Zstd::new(1).unwrap())),
        ("zstd-3", Box::new(Zstd::new(3).unwrap())),
        ("dict-1", Box::new(ZstdDict::new(1, &dict).unwrap())),
        ("dict-3", Box::new(ZstdDict::new(3, &dict).unwrap())),
    ];
    for (i, (kind, frames)) in kinds.iter().enumerate() {
        let max = match kind {
            MessageKind::SnapshotChunk => DEFAULT_MAX_CHUNK_BYTES,
            _ => kind.max_len(),
        };
        // As a session does it: a dictionary of this kind, trained on its own frames.
        // (The few snapshot chunks of this scene are each sampled more than once.)
        let samples: Vec<Vec<u8>> = frames
            .iter()
            .cycle()
            .take(frames.len().max(16))
            .cloned()
            .collect();
        let own = dictionary_from(&samples, 10 + i as u32);
        receiver.insert(own.clone()).unwrap();
        let own_codec: Box<dyn Codec> = Box::new(ZstdDict::new(1, &own).unwrap());
        let all = codecs
            .iter()
            .map(|(name, codec)| (*name, codec))
            .chain([("own-dict-1", &own_codec)]);
        for (name, codec) in all {
            let mut compressed = 0;
            for input in frames {
                let framed = frame(codec.as_ref(), input);
                assert!(framed.len() <= input.len() + 1, "{name} {kind:?} grew");
                let format = FrameHeader::parse(&framed).unwrap().format;
                compressed += usize::from(format != FrameFormat::Raw);
                assert_eq!(&codec.decompress(&framed, max).unwrap(), input, "{name}");
                // The receiving side's set decodes every sender's frames.
                assert_eq!(&receiver.decompress(&framed, max).unwrap(), input, "{name}");
                // Every message is a valid wire message again.
                theta_net::wire::decode(input).unwrap();
            }
            if name != "none" {
                assert!(compressed > 0, "{name} never compressed a {kind:?}");
            }
        }
    }
}

/// The session's control messages (dictionary, acknowledgement, retirement) verify and
/// read back, and travel as raw envelopes.
#[test]
fn dictionary_control_messages_round_trip() {
    use theta_net::net::compression::{control_message, split_stream_message, StreamKind};
    use theta_net::wire::{decode, fb, Message};

    let frames = frames_by_kind().remove(2).1;
    let dict = dictionary_from(&frames, 42);
    let mut encoder = Encoder::new();
    let message = encoder.dictionary(dict.id, fb::CodecKind::Datagram, &dict.bytes);
    let framed = control_message(&message);
    let (kind, envelope) = split_stream_message(&framed).unwrap();
    assert_eq!(kind, StreamKind::Control);
    let raw = NoCodec.decompress(envelope, 1 << 20).unwrap();
    let Ok(Message::Dictionary(d)) = decode(&raw) else {
        panic!("not a dictionary")
    };
    assert_eq!((d.id(), d.kind()), (42, fb::CodecKind::Datagram));
    assert_eq!(d.bytes().bytes(), &dict.bytes[..]);
    let ack = encoder.dictionary_ack(42);
    let Ok(Message::DictionaryAck(a)) = decode(&ack) else {
        panic!("not an acknowledgement")
    };
    assert_eq!(a.id(), 42);
    let retire = encoder.dictionary_retire(&[3, 42]);
    let Ok(Message::DictionaryRetire(r)) = decode(&retire) else {
        panic!("not a retirement")
    };
    assert_eq!(r.ids().iter().collect::<Vec<_>>(), [3, 42]);
    // A truncated dictionary message is refused by the verifier.
    assert!(decode(&message[..message.len() / 2]).is_err());
}

#[test]
fn tiny_frames_never_grow_by_more_than_one_byte() {
    let zstd = Zstd::new(3).unwrap();
    let samples: Vec<Vec<u8>> = frames_by_kind().remove(1).1;
    let dict = ZstdDict::new(1, &dictionary_from(&samples, 9)).unwrap();
    let mut rng = Rng(3);
    for len in 0..200 {
        let random: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        for codec in [&zstd as &dyn Codec, &dict, &NoCodec] {
            let framed = frame(codec, &random);
            assert!(framed.len() <= len + 1, "{len}: {}", framed.len());
            assert_eq!(
                codec.decompress(&framed, MAX_DATAGRAM_BYTES).unwrap(),
                random
            );
        }
    }
    assert_eq!(frame(&zstd, &[]), vec![FrameFormat::Raw as u8]);
}

/// Delta frames of one connection in one compression stream, with a dictionary trained on
/// earlier ones: each round-trips, in order, bounded by the kind's maximum; the stream is
/// smaller than each frame alone with the same dictionary; and an incompressible message
/// costs at most a few bytes more than raw (it still goes into the stream).
#[test]
fn delta_frames_round_trip_through_a_compression_stream() {
    let mut scene = Scene::new(300, 11, Motion::Smooth);
    let frames = delta_frames(&mut scene, 90, 30);
    let (training, measured) = frames.split_at(30);
    let dict = dictionary_from(training, 5);
    let mut receiver = DictionarySet::new();
    receiver.insert(dict.clone()).unwrap();
    let per_frame = ZstdDict::new(1, &dict).unwrap();
    let max = MessageKind::DeltaFrame.max_len();
    let mut encoder = StreamEncoder::new(1).unwrap();
    let mut decoder = StreamDecoder::new().unwrap();
    let (mut streamed, mut alone) = (0, 0);
    for (i, input) in measured.iter().enumerate() {
        let mut framed = Vec::new();
        encoder.compress(input, Some(&dict), &mut framed).unwrap();
        let header = FrameHeader::parse(&framed).unwrap();
        let expected = if i == 0 {
            FrameFormat::StreamStart
        } else {
            FrameFormat::StreamContinue
        };
        assert_eq!(header.format, expected);
        assert_eq!(&decoder.decompress(&framed, max, &receiver).unwrap(), input);
        assert_eq!(decoder.dictionary(), Some(5));
        streamed += framed.len();
        alone += frame(&per_frame, input).len();
    }
    assert!(
        streamed * 10 < alone * 9,
        "stream {streamed} B vs per frame {alone} B"
    );
    let mut rng = Rng(17);
    for len in [1, 2, 10, 100, 1000, 20_000] {
        let random: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        let mut framed = Vec::new();
        let format = encoder.compress(&random, Some(&dict), &mut framed).unwrap();
        assert_eq!(format, FrameFormat::StreamContinue);
        assert!(framed.len() <= len + 8, "{len}: {}", framed.len());
        assert_eq!(decoder.decompress(&framed, max, &receiver).unwrap(), random);
    }
}

#[test]
fn dictionary_mismatch_and_unknown_id_are_errors() {
    let mut smooth = Scene::new(200, 1, Motion::Smooth);
    let a_frames = delta_frames(&mut smooth, 30, 20);
    let mut other = Scene::new(50, 2, Motion::Teleport);
    let b_frames = datagrams(&mut other, 30);
    let a = dictionary_from(&a_frames, 1);
    let b = dictionary_from(&b_frames, 2);
    let with_a = ZstdDict::new(1, &a).unwrap();
    let with_b = ZstdDict::new(1, &b).unwrap();
    let input = &a_frames[20];
    let framed = frame(&with_a, input);
    assert_eq!(
        FrameHeader::parse(&framed).unwrap().format,
        FrameFormat::ZstdDict
    );
    let max = MessageKind::DeltaFrame.max_len();
    assert_eq!(
        with_b.decompress(&framed, max),
        Err(CodecError::UnknownDictionary(1))
    );
    // A plain zstd receiver holds no dictionary.
    assert_eq!(
        Zstd::new(1).unwrap().decompress(&framed, max),
        Err(CodecError::UnknownDictionary(1))
    );
    assert!(matches!(
        NoCodec.decompress(&framed, max),
        Err(CodecError::Unsupported(_))
    ));
    // A receiver with B only: unknown id. After A arrives it decodes.
    let mut set = DictionarySet::new();
    set.insert(b.clone()).unwrap();
    assert_eq!(
        set.decompress(&framed, max),
        Err(CodecError::UnknownDictionary(1))
    );
    set.insert(a.clone()).unwrap();
    assert_eq!(&set.decompress(&framed, max).unwrap(), input);
    // Retired: unknown again.
    assert_eq!(set.remove(1), Some(a));
    assert_eq!(
        set.decompress(&framed, max),
        Err(CodecError::UnknownDictionary(1))
    );
    // The wrong bytes under the right id (a broken sender): never the original message,
    // and here zstd or the length check catches it.
    let mut wrong = DictionarySet::new();
    wrong.insert(Dictionary::new(1, b.bytes.clone())).unwrap();
    let result = wrong.decompress(&framed, max);
    assert_ne!(result.as_ref(), Ok(input));
    eprintln!("frame of dictionary A decoded with B's bytes under A's id: {result:?}");
}

#[test]
fn truncated_and_garbage_frames_are_errors() {
    let frames = frames_by_kind().remove(1).1;
    let dict = dictionary_from(&frames, 5);
    let mut set = DictionarySet::new();
    set.insert(dict.clone()).unwrap();
    let codecs: Vec<Box<dyn Codec>> = vec![
        Box::new(Zstd::new(1).unwrap()),
        Box::new(ZstdDict::new(1, &dict).unwrap()),
    ];
    let max = MessageKind::DeltaFrame.max_len();
    for codec in &codecs {
        let framed = frame(codec.as_ref(), &frames[10]);
        assert_ne!(
            FrameHeader::parse(&framed).unwrap().format,
            FrameFormat::Raw
        );
        for len in 0..framed.len() {
            assert!(
                codec.decompress(&framed[..len], max).is_err(),
                "prefix of {len} of {} bytes decoded",
                framed.len()
            );
            assert!(set.decompress(&framed[..len], max).is_err());
        }
        // Bit flips: an error, or (no checksum) a message of the declared length; never
        // a panic.
        let mut rng = Rng(11);
        for _ in 0..500 {
            let mut flipped = framed.clone();
            let i = rng.below(flipped.len());
            flipped[i] ^= 1 << rng.below(8);
            if let Ok(out) = set.decompress(&flipped, max) {
                let header = FrameHeader::parse(&flipped).unwrap();
                assert!(out.len() <= max);
                assert!(
                    header.format == FrameFormat::Raw || out.len() as u64 == header.declared_len
                );
            }
        }
    }
    // Garbage after a compressed format byte.
    let mut rng = Rng(5);
    for len in 0..300 {
        for format in [1u8, 2, 3, 0xff] {
            let mut garbage = vec![format];
            garbage.extend((0..len).map(|_| rng.next() as u8));
            assert!(set.decompress(&garbage, max).is_err(), "{garbage:?}");
        }
    }
    assert_eq!(set.decompress(&[], max), Err(CodecError::Empty));
}

/// Peak resident memory of this process, in bytes (Linux).
fn peak_rss() -> Option<usize> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: usize = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// The decoding bounds of a session with `registry` and the default snapshot chunk size:
/// snapshot chunk, delta frame and datagram, in [`MessageKind::ALL`] order.
fn session_bounds(registry: &Registry) -> [(MessageKind, usize); 3] {
    let config = CodecConfig::default().bounded_for(registry, DEFAULT_MAX_CHUNK_BYTES);
    MessageKind::ALL.map(|kind| (kind, config.kind(kind).max_len))
}

/// A registry with the largest values a registry may hold: 1 MiB fixed and variable.
fn largest_registry() -> Registry {
    let mut registry = Registry::new();
    registry
        .register(
            "test.Blob",
            Layout::Variable {
                max: MAX_VALUE_BYTES,
            },
        )
        .unwrap();
    registry
        .register("test.Block", Layout::Fixed(MAX_VALUE_BYTES))
        .unwrap();
    registry
}

/// 64 MiB of zeros in a zstd frame of about 2 KiB, sent as frames of every kind with the
/// bounds of a real session (`theta demo`'s registry, then one with 1 MiB values): an
/// honest header is refused before decompressing, lying ones as the body expands past
/// them, and decoding them all does not grow the process's peak memory.
#[test]
fn decompression_bomb_is_refused_without_allocating_it() {
    const BOMB: usize = 64 << 20;
    // 64 MiB of zeros, compressed as a stream: the input is never held whole.
    let mut encoder = zstd::stream::Encoder::new(Vec::new(), 1).unwrap();
    let zeros = vec![0u8; 64 << 10];
    for _ in 0..BOMB / zeros.len() {
        encoder.write_all(&zeros).unwrap();
    }
    let body = encoder.finish().unwrap();
    eprintln!(
        "bomb: {BOMB} bytes of zeros in a {}-byte zstd frame",
        body.len()
    );

    let with_header = |format: FrameFormat, declared: usize| {
        let mut frame = vec![format as u8];
        if format == FrameFormat::StreamStart {
            frame.push(0);
        }
        write_varint(&mut frame, declared as u64);
        frame.extend_from_slice(&body);
        frame
    };
    let before = peak_rss();
    let zstd = Zstd::new(1).unwrap();
    let set = DictionarySet::new();
    let demo = Scene::new(10, 1, Motion::Smooth).world.registry().clone();
    for registry in [demo, largest_registry()] {
        for (kind, bound) in session_bounds(&registry) {
            for codec in [&zstd as &dyn Codec, &set] {
                // Honest header: refused before decompressing.
                assert_eq!(
                    codec.decompress(&with_header(FrameFormat::Zstd, BOMB), bound),
                    Err(CodecError::TooLarge {
                        declared: BOMB as u64,
                        max: bound
                    }),
                    "{kind:?}"
                );
                // Lying headers: the body expands past what they declare.
                for declared in [0, 1000, bound] {
                    assert_eq!(
                        codec.decompress(&with_header(FrameFormat::Zstd, declared), bound),
                        Err(CodecError::ExpandsPast { declared }),
                        "{kind:?}"
                    );
                }
                // A huge declared length in a tiny frame, past any bound.
                let mut huge = vec![FrameFormat::Zstd as u8];
                write_varint(&mut huge, u64::MAX);
                assert!(matches!(
                    codec.decompress(&huge, bound),
                    Err(CodecError::TooLarge { .. })
                ));
            }
            // The same bomb as the start of a compression stream.
            let mut decoder = StreamDecoder::new().unwrap();
            assert!(matches!(
                decoder.decompress(&with_header(FrameFormat::StreamStart, BOMB), bound, &set),
                Err(CodecError::TooLarge { .. })
            ));
            assert!(matches!(
                decoder.decompress(&with_header(FrameFormat::StreamStart, bound), bound, &set),
                Err(CodecError::ExpandsPast { .. } | CodecError::Corrupt(_))
            ));
            // A raw frame above the bound.
            assert!(matches!(
                NoCodec.decompress(&vec![0u8; bound + 2], bound),
                Err(CodecError::TooLarge { .. })
            ));
        }
    }
    // 13 bytes declaring 60 MiB under a bound that would allow it: a body of 10 bytes
    // cannot hold that much, so nothing is reserved for it.
    let mut liar = vec![FrameFormat::Zstd as u8];
    write_varint(&mut liar, 60 << 20);
    liar.extend_from_slice(&body[..13 - liar.len()]);
    assert_eq!(liar.len(), 13);
    assert_eq!(
        zstd.decompress(&liar, 64 << 20),
        Err(CodecError::TooLarge {
            declared: 60 << 20,
            max: max_output_of(liar.len() - 5)
        })
    );
    if let (Some(before), Some(after)) = (before, peak_rss()) {
        let grew = after.saturating_sub(before);
        eprintln!("peak RSS grew by {grew} bytes while decoding the bombs");
        assert!(
            grew < 16 << 20,
            "decoding the bombs grew peak RSS by {grew} bytes"
        );
    }
}

/// The smallest zstd body that decompresses to `len` bytes: a frame header without
/// content size (window 128 KiB) and one RLE block per 128 KiB (RFC 8878).
fn densest_body(len: usize) -> Vec<u8> {
    const BLOCK: usize = 128 << 10;
    // Magic number, frame header descriptor (no checksum, no dictionary id, no content
    // size, not single-segment), window descriptor 2^17.
    let mut body = vec![0x28, 0xb5, 0x2f, 0xfd, 0x00, 0x38];
    let mut left = len;
    loop {
        let size = left.min(BLOCK);
        left -= size;
        let last = u32::from(left == 0);
        // Block header: last-block bit, type 1 (RLE), size; then the byte repeated.
        let header = (size as u32) << 3 | 1 << 1 | last;
        body.extend_from_slice(&header.to_le_bytes()[..3]);
        body.push(0);
        if left == 0 {
            return body;
        }
    }
}

/// Per kind, with a real session's bounds, the largest output per input byte a decoder
/// accepts: the kind's bound over the smallest frame that reaches it (the densest zstd
/// body, in its envelope), checked to decode exactly; one byte more is refused. Printed
/// for `theta demo`'s registry and for one with 1 MiB values.
#[test]
fn largest_output_per_input_byte_of_each_kind() {
    let demo = Scene::new(10, 1, Motion::Smooth).world.registry().clone();
    let set = DictionarySet::new();
    for (name, registry) in [("theta demo", demo), ("1 MiB values", largest_registry())] {
        for (kind, bound) in session_bounds(&registry) {
            let body = densest_body(bound);
            let mut frame = vec![FrameFormat::Zstd as u8];
            write_varint(&mut frame, bound as u64);
            frame.extend_from_slice(&body);
            assert_eq!(set.decompress(&frame, bound).unwrap(), vec![0u8; bound]);
            // As the start of a compression stream too (the stream frames' kind).
            let mut start = vec![FrameFormat::StreamStart as u8, 0];
            write_varint(&mut start, bound as u64);
            start.extend_from_slice(&body);
            let mut decoder = StreamDecoder::new().unwrap();
            assert_eq!(
                decoder.decompress(&start, bound, &set).unwrap().len(),
                bound
            );
            // One byte more than the bound is refused before decompressing.
            let mut over = vec![FrameFormat::Zstd as u8];
            write_varint(&mut over, bound as u64 + 1);
            over.extend_from_slice(&densest_body(bound + 1));
            assert!(matches!(
                set.decompress(&over, bound),
                Err(CodecError::TooLarge { .. })
            ));
            let ratio = bound as f64 / frame.len() as f64;
            eprintln!(
                "{name}: {:>14}: bound {bound:>8} B, smallest frame reaching it {:>3} B: {ratio:>7.0} bytes out per byte in",
                kind.name(),
                frame.len()
            );
            // Never denser than zstd's format allows.
            assert!(bound <= max_output_of(body.len()), "{kind:?}");
            assert!(ratio < 32_768.0, "{kind:?}: {ratio}");
        }
    }
}

/// The bounds hold what a session really sends: every chunk of snapshots with large
/// values and many types, and the delta frame of one value of the largest type (what a
/// session sends on its stream), are within them.
#[test]
fn session_bounds_hold_real_messages() {
    let mut world = World::default();
    let blob = world
        .register("test.Blob", Layout::Variable { max: 200_000 })
        .unwrap();
    let small = world.register("test.Small", Layout::Fixed(12)).unwrap();
    // Many types with long names: chunk 0 carries all their descriptors.
    let names: Vec<String> = (0..300).map(|i| format!("test.{i:0>250}")).collect();
    let many: Vec<ComponentId> = names
        .iter()
        .map(|n| world.register(n, Layout::Fixed(1)).unwrap())
        .collect();
    for i in 0..400u32 {
        let e = world.spawn().unwrap();
        world.set(e, small, &[i as u8; 12]).unwrap();
        world.set(e, many[i as usize % many.len()], &[1]).unwrap();
        if i % 50 == 0 {
            let len = 150_000 + i as usize * 100;
            world.set(e, blob, &vec![i as u8; len]).unwrap();
        }
    }
    let registry = world.registry().clone();
    for chunk_bytes in [1024, DEFAULT_MAX_CHUNK_BYTES, 256 << 10] {
        let config = CodecConfig::default().bounded_for(&registry, chunk_bytes);
        let bound = config.kind(MessageKind::SnapshotChunk).max_len;
        let snapshot = world.snapshot(chunk_bytes);
        let largest = snapshot.chunks.iter().map(|c| c.bytes.len()).max().unwrap();
        assert!(largest <= bound, "chunk of {largest} B over {bound} B");
        eprintln!("chunks cut at {chunk_bytes} B: largest {largest} B, bound {bound} B");
    }
    // A value too large for a datagram, alone in a delta frame: the largest possible.
    let delta_bound = CodecConfig::default()
        .bounded_for(&registry, DEFAULT_MAX_CHUNK_BYTES)
        .kind(MessageKind::DeltaFrame)
        .max_len;
    let frame = Delta {
        base_tick: 0,
        tick: u64::MAX,
        sets: vec![SetBatch {
            component: blob,
            entities: vec![EntityId(u64::MAX >> 1)],
            data: vec![7; 200_000],
            lengths: Some(vec![200_000]),
            inserted: vec![0],
        }],
        ..Delta::default()
    }
    .encode();
    assert!(
        frame.len() <= delta_bound,
        "{} over {delta_bound}",
        frame.len()
    );
    eprintln!(
        "one 200 000-byte value: delta frame {} B, bound {delta_bound} B",
        frame.len()
    );
    // The bounds of the demo registry are those of small messages.
    let demo = Scene::new(10, 1, Motion::Smooth).world.registry().clone();
    let [(_, chunk), (_, delta), (_, datagram)] = session_bounds(&demo);
    assert!(chunk < DEFAULT_MAX_CHUNK_BYTES + 4096, "{chunk}");
    assert!(delta < 4096, "{delta}");
    assert_eq!(datagram, MAX_DATAGRAM_BYTES);
}

#[test]
fn training_refuses_too_few_samples() {
    let frames = frames_by_kind().remove(1).1;
    let few: Vec<&[u8]> = frames.iter().take(3).map(Vec::as_slice).collect();
    assert!(matches!(
        train_dictionary(&few, 4096, 1),
        Err(CodecError::TooFewSamples { got: 3, .. })
    ));
    let err = train_dictionary(&few, 4096, 1).unwrap_err().to_string();
    assert!(err.contains("at least"), "{err}");
}

/// Total framed size of `frames` through `codec`.
fn framed_bytes(codec: &dyn Codec, frames: &[Vec<u8>]) -> usize {
    frames.iter().map(|f| frame(codec, f).len()).sum()
}

fn measure(label: &str, frames: &[Vec<u8>], train: usize) {
    let (training, measured) = frames.split_at(train);
    let raw: usize = measured.iter().map(Vec::len).sum();
    let none = framed_bytes(&NoCodec, measured);
    let z1 = framed_bytes(&Zstd::new(1).unwrap(), measured);
    let z3 = framed_bytes(&Zstd::new(3).unwrap(), measured);
    let pct = |n: usize| 100.0 * n as f64 / raw as f64;
    eprintln!(
        "{label}: {} frames measured (avg {} B), dictionaries trained on the {train} before",
        measured.len(),
        raw / measured.len(),
    );
    eprintln!("  uncompressed          {raw:>8} B  100.0 %");
    eprintln!("  none (framed)         {none:>8} B  {:5.1} %", pct(none));
    eprintln!("  zstd-1                {z1:>8} B  {:5.1} %", pct(z1));
    eprintln!("  zstd-3                {z3:>8} B  {:5.1} %", pct(z3));
    let samples: Vec<&[u8]> = training.iter().map(Vec::as_slice).collect();
    let mut previous = 0;
    for dict_size in [8 << 10, 32 << 10, 110 << 10] {
        let dict = train_dictionary(&samples, dict_size, 1).unwrap();
        if dict.bytes.len() == previous {
            continue; // the training set capped the size
        }
        previous = dict.bytes.len();
        for (level, plain) in [(1, z1), (3, z3)] {
            let d = framed_bytes(&ZstdDict::new(level, &dict).unwrap(), measured);
            eprintln!(
                "  zstd-{level} + dict {:>3} KiB {d:>8} B  {:5.1} %  ({:+.1} % vs zstd-{level})",
                dict.bytes.len() >> 10,
                pct(d),
                100.0 * (d as f64 / plain as f64 - 1.0)
            );
        }
    }
}

/// Sizes on recorded frames: none, zstd 1 and 3, and zstd with a dictionary trained on the
/// first frames of the same run, measured on the later ones. Run with `--nocapture`.
#[test]
fn measured_sizes_on_recorded_frames() {
    for motion in [Motion::Smooth, Motion::Teleport] {
        let mut scene = Scene::new(1000, 42, motion);
        let frames = delta_frames(&mut scene, 300, 50);
        measure(
            &format!("delta frames, {motion:?}, 1000 objects, 50 moving/tick"),
            &frames,
            100,
        );
        let mut scene = Scene::new(1000, 43, motion);
        let frames = datagrams(&mut scene, 300);
        measure(
            &format!("state datagrams, {motion:?}, 3 moving/tick"),
            &frames,
            100,
        );
    }
    let scene = Scene::new(2000, 44, Motion::Smooth);
    let chunks: Vec<Vec<u8>> = scene
        .world
        .snapshot(DEFAULT_MAX_CHUNK_BYTES)
        .chunks
        .into_iter()
        .map(|c| c.bytes)
        .collect();
    let raw: usize = chunks.iter().map(Vec::len).sum();
    let z3 = framed_bytes(&Zstd::new(3).unwrap(), &chunks);
    eprintln!(
        "snapshot chunks, 2000 objects: {} chunks, {raw} B raw, zstd-3 {z3} B ({:.1} %)",
        chunks.len(),
        100.0 * z3 as f64 / raw as f64
    );
}
