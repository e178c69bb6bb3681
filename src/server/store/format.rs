//! The bytes of a room file: a world's registry and snapshot chunks, framed and checksummed.
//!
//! ```text
//! magic "THETAROOM" · format version u32 · room id (u8 length, bytes) · saved at (unix
//! seconds) u64 · snapshot tick u64 · the world's local peer u16 · registry hash u64 ·
//! state hash u64 · component types u32, each: name (u16 length, bytes), layout (u8 kind:
//! 0 fixed, 1 variable; u32 size), declared fields (u8 count, each: u8 kind, u32 offset,
//! three u32 parameters) · chunks u32, each: u32 length, the snapshot chunk as the wire
//! encodes it · XXH3-64 of every byte before it
//! ```
//!
//! Integers are little-endian. The registry is written whole (declared fields are not in
//! snapshot chunks); the values travel as the chunks `World::snapshot` makes, and come back
//! through `Replica::apply_snapshot_chunk`, so the file reuses the wire's verified decoder
//! for everything but its frame. The registry and state hashes are checked after rebuilding.

use crate::hash::hash64;
use crate::registry::Registry;
use crate::replica::{Applied, Replica, MAX_SNAPSHOT_CHUNKS};
use crate::wire::registry_bytes::{decode_registry, encode_registry};
use crate::wire::MAX_MESSAGE_BYTES;
use crate::world::{EntityId, Stamp, World, WorldConfig, MAX_ENTITY_COUNTER};

use super::Defect;
use crate::server::RoomId;

/// The first bytes of every room file.
pub const MAGIC: [u8; 9] = *b"THETAROOM";
/// The format this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;
/// Chunk bound used for files: large chunks, few frames (a chunk holding one large value
/// may exceed it, as on the wire).
const FILE_CHUNK_BYTES: usize = 1 << 20;
/// Seed of the file checksum.
const CHECKSUM_SEED: u64 = 0x7468_6574_6172_6f6f;
/// Bytes before the body: magic and version.
const PREFIX: usize = MAGIC.len() + 4;
/// Bytes of the checksum at the end.
const TRAILER: usize = 8;

/// A world decoded from a room file, with what the file said of it.
pub struct Decoded {
    /// The rebuilt world (at tick 1: see [`super::Restored::tick`]).
    pub world: World,
    /// The tick of the snapshot the file holds.
    pub tick: u64,
    /// When the file was written (unix seconds).
    pub saved_at: u64,
}

/// Encodes `world` as the file of `room`, stamped `saved_at` (unix seconds).
pub fn encode(room: &RoomId, world: &World, saved_at: u64) -> Vec<u8> {
    let snapshot = world.snapshot(FILE_CHUNK_BYTES);
    let registry = world.registry();
    let mut out = Vec::with_capacity(snapshot.total_bytes() + 4096);
    out.extend_from_slice(&MAGIC);
    put_u32(&mut out, FORMAT_VERSION);
    // A RoomId is at most 64 bytes.
    out.push(room.as_str().len() as u8);
    out.extend_from_slice(room.as_str().as_bytes());
    put_u64(&mut out, saved_at);
    put_u64(&mut out, snapshot.tick);
    out.extend_from_slice(&world.config().local_peer.to_le_bytes());
    put_u64(&mut out, registry.hash());
    put_u64(&mut out, world.state_hash());
    encode_registry(registry, &mut out);
    // At most MAX_SNAPSHOT_CHUNKS chunks of at most MAX_MESSAGE_BYTES each.
    put_u32(&mut out, snapshot.chunks.len() as u32);
    for chunk in &snapshot.chunks {
        put_u32(&mut out, chunk.bytes.len() as u32);
        out.extend_from_slice(&chunk.bytes);
    }
    let checksum = checksum(&out);
    put_u64(&mut out, checksum);
    out
}

/// The checksum of a file's bytes before its trailer.
pub(crate) fn checksum(body: &[u8]) -> u64 {
    hash64(CHECKSUM_SEED, body)
}

/// Decodes and rebuilds the file of `room`: magic, version and checksum first, then every
/// length bounded by what is left, then the world rebuilt and its hashes checked. Nothing
/// is returned unless all of it holds.
pub fn decode(room: &RoomId, bytes: &[u8]) -> Result<Decoded, Defect> {
    if bytes.is_empty() {
        return Err(Defect::Empty);
    }
    if bytes.len() < MAGIC.len() || bytes[..MAGIC.len()] != MAGIC {
        return Err(Defect::BadMagic);
    }
    if bytes.len() < PREFIX + TRAILER {
        return Err(Defect::Truncated {
            len: bytes.len(),
            what: "the header",
        });
    }
    let mut version = [0u8; 4];
    version.copy_from_slice(&bytes[MAGIC.len()..PREFIX]);
    let version = u32::from_le_bytes(version);
    if version != FORMAT_VERSION {
        return Err(Defect::Version(version));
    }
    let (body, trailer) = bytes.split_at(bytes.len() - TRAILER);
    let mut stored = [0u8; TRAILER];
    stored.copy_from_slice(trailer);
    let stored = u64::from_le_bytes(stored);
    let computed = checksum(body);
    if stored != computed {
        return Err(Defect::Checksum { stored, computed });
    }

    let mut r = Reader {
        bytes: body,
        at: PREFIX,
    };
    let room_len = usize::from(r.u8("the room id")?);
    let found = r.take(room_len, "the room id")?;
    if found != room.as_str().as_bytes() {
        return Err(Defect::OtherRoom(
            String::from_utf8_lossy(found).chars().take(80).collect(),
        ));
    }
    let saved_at = r.u64("the save time")?;
    let tick = r.u64("the tick")?;
    let local_peer = r.u16("the local peer")?;
    let registry_hash = r.u64("the registry hash")?;
    let state_hash = r.u64("the state hash")?;
    let registry = read_registry(&mut r)?;
    if registry.hash() != registry_hash {
        return Err(Defect::Malformed(format!(
            "the registry read back hashes to {:#018x}, the file says {registry_hash:#018x}",
            registry.hash()
        )));
    }

    let chunk_count = r.u32("the chunk count")?;
    // Each chunk takes at least its 4-byte length: a count past that is a lie.
    if chunk_count > MAX_SNAPSHOT_CHUNKS || chunk_count as usize > r.left() / 4 {
        return Err(Defect::Malformed(format!(
            "{chunk_count} snapshot chunks announced in {} bytes",
            r.left()
        )));
    }
    let mut replica = Replica::with_registry(&registry);
    let mut complete = chunk_count == 0;
    for index in 0..chunk_count {
        let len = r.u32("a chunk length")? as usize;
        if len > MAX_MESSAGE_BYTES {
            return Err(Defect::Malformed(format!(
                "chunk {index} of {len} bytes, more than a message holds ({MAX_MESSAGE_BYTES})"
            )));
        }
        let chunk = r.take(len, "a snapshot chunk")?;
        match replica.apply_snapshot_chunk(chunk) {
            Ok(Applied::SnapshotChunk { complete: done }) => complete = done,
            Ok(other) => {
                return Err(Defect::Malformed(format!(
                    "chunk {index} was not a new chunk of the snapshot ({other:?})"
                )))
            }
            Err(e) => return Err(Defect::Malformed(format!("chunk {index}: {e}"))),
        }
    }
    if r.left() != 0 {
        return Err(Defect::Malformed(format!(
            "{} bytes after the last chunk",
            r.left()
        )));
    }
    if !complete || (chunk_count > 0 && replica.snapshot_tick() != tick) {
        return Err(Defect::Malformed(format!(
            "the chunks do not make one complete snapshot of tick {tick}"
        )));
    }

    let world = rebuild(replica.world(), local_peer)?;
    if world.registry().hash() != registry_hash {
        return Err(Defect::Malformed(
            "the chunks carry component types the registry does not".into(),
        ));
    }
    if world.state_hash() != state_hash {
        return Err(Defect::Malformed(format!(
            "the rebuilt world hashes to {:#018x}, the file says {state_hash:#018x}",
            world.state_hash()
        )));
    }
    Ok(Decoded {
        world,
        tick,
        saved_at,
    })
}

/// A world of `local_peer` holding what `from` holds, as local changes at tick 1 (a
/// restarted server is a new session: every client joins again and receives a snapshot).
fn rebuild(from: &World, local_peer: u16) -> Result<World, Defect> {
    let malformed = |e: &dyn std::fmt::Display| Defect::Malformed(e.to_string());
    let mut world = World::new(WorldConfig {
        local_peer,
        ..WorldConfig::default()
    });
    for descriptor in from.registry().descriptors() {
        let id = world
            .register_descriptor(descriptor.clone())
            .map_err(|e| malformed(&e))?;
        if let Some(layout) = from.registry().fields(id) {
            world
                .declare_layout(id, layout.clone())
                .map_err(|e| malformed(&e))?;
        }
    }
    let mut entities: Vec<EntityId> = from.entities().collect();
    entities.sort_unstable();
    let mut next_counter = 1;
    for &entity in &entities {
        world.spawn_with_id(entity, Stamp::Local);
        if entity.creator() == local_peer {
            next_counter = next_counter.max(entity.counter().saturating_add(1));
        }
    }
    // Past every id of this peer the file holds, so a spawn never walks over them.
    world.set_local_peer(local_peer, next_counter.min(MAX_ENTITY_COUNTER));
    for descriptor in from.registry().descriptors() {
        let entries = from
            .component_entries(descriptor.id)
            .map_err(|e| malformed(&e))?;
        for (entity, value) in entries {
            world
                .set(entity, descriptor.id, value)
                .map_err(|e| malformed(&e))?;
        }
    }
    Ok(world)
}

fn read_registry(r: &mut Reader<'_>) -> Result<Registry, Defect> {
    let (registry, used) = decode_registry(&r.bytes[r.at..]).map_err(Defect::Malformed)?;
    r.at += used;
    Ok(registry)
}

fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn put_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_le_bytes());
}

/// Reads the body front to back; every read is bounded by what is left.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn left(&self) -> usize {
        self.bytes.len() - self.at
    }

    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], Defect> {
        if n > self.left() {
            return Err(Defect::Malformed(format!(
                "{what} runs past the end ({n} bytes wanted, {} left)",
                self.left()
            )));
        }
        let out = &self.bytes[self.at..self.at + n];
        self.at += n;
        Ok(out)
    }

    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], Defect> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N, what)?);
        Ok(out)
    }

    fn u8(&mut self, what: &'static str) -> Result<u8, Defect> {
        Ok(self.array::<1>(what)?[0])
    }

    fn u16(&mut self, what: &'static str) -> Result<u16, Defect> {
        self.array(what).map(u16::from_le_bytes)
    }

    fn u32(&mut self, what: &'static str) -> Result<u32, Defect> {
        self.array(what).map(u32::from_le_bytes)
    }

    fn u64(&mut self, what: &'static str) -> Result<u64, Defect> {
        self.array(what).map(u64::from_le_bytes)
    }
}
