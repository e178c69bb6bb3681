//! Chunked world snapshots for late joiners.
//!
//! A snapshot at tick S is split into chunks of at most `max_chunk_bytes` encoded bytes
//! (one value alone may exceed it: every chunk holds at least one item). Chunks are
//! independent: each carries index and total and the descriptors of the types it holds,
//! and chunk 0 carries the whole registry, so a receiver may apply them in any order.

use std::borrow::Cow;

use crate::registry::{ComponentDescriptor, ComponentId, Layout};
use crate::wire::{size, BatchRef, ChunkHeader, Encoder};
use crate::world::{Column, EntityId, World};

/// Default bound of an encoded chunk: 16 KiB.
pub const DEFAULT_MAX_CHUNK_BYTES: usize = 16 * 1024;

/// One encoded chunk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotChunk {
    /// Position in the snapshot.
    pub index: u32,
    /// The encoded FlatBuffers message.
    pub bytes: Vec<u8>,
    /// Component values it holds.
    pub components: usize,
    /// Component-less entities it lists.
    pub bare_entities: usize,
}

/// A world's state at one tick, in chunks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    /// The tick it was taken at; deltas for its receiver start here.
    pub tick: u64,
    /// Hash of the sender's registry.
    pub registry_hash: u64,
    /// The chunks, in index order.
    pub chunks: Vec<SnapshotChunk>,
    /// Types whose descriptors the chunks carry.
    pub described: Vec<ComponentId>,
}

impl Snapshot {
    /// Whether the snapshot has no chunk (the world had no entity). A receiver that may
    /// hold older state completes it with `Replica::apply_empty_snapshot(tick)`.
    pub fn is_empty(&self) -> bool {
        self.chunks.is_empty()
    }

    /// Component values over all chunks.
    pub fn total_components(&self) -> usize {
        self.chunks.iter().map(|c| c.components).sum()
    }

    /// Encoded bytes over all chunks.
    pub fn total_bytes(&self) -> usize {
        self.chunks.iter().map(|c| c.bytes.len()).sum()
    }
}

/// A run of consecutive items in one chunk.
#[derive(Clone, Copy, Debug)]
enum Piece {
    /// Bare entities `start..end` of the sorted bare list.
    Bare { start: usize, end: usize },
    /// Rows `start..end`, in entity order, of column `column`.
    Rows {
        column: usize,
        start: usize,
        end: usize,
    },
}

#[derive(Default)]
struct PlannedChunk {
    pieces: Vec<Piece>,
    items: usize,
}

/// Fills chunks greedily under the byte bound, using upper bounds of encoded sizes.
struct Planner {
    max: usize,
    chunks: Vec<PlannedChunk>,
    current: PlannedChunk,
    used: usize,
    described: Vec<usize>,
}

impl Planner {
    fn new(max: usize, registry_bytes: usize) -> Self {
        Planner {
            max,
            chunks: Vec::new(),
            current: PlannedChunk::default(),
            used: size::CHUNK_BASE + registry_bytes,
            described: Vec::new(),
        }
    }

    fn room(&self) -> usize {
        self.max.saturating_sub(self.used)
    }

    fn close(&mut self) {
        if self.current.items > 0 {
            self.chunks.push(std::mem::take(&mut self.current));
        }
        self.used = size::CHUNK_BASE;
        self.described.clear();
    }

    fn push(&mut self, piece: Piece, items: usize, bytes: usize) {
        self.current.pieces.push(piece);
        self.current.items += items;
        self.used += bytes;
    }

    fn plan_bare(&mut self, count: usize) {
        let mut start = 0;
        while start < count {
            let mut fit = self.room() / size::ENTITY;
            if fit == 0 && self.current.items == 0 {
                fit = 1;
            }
            if fit == 0 {
                self.close();
                continue;
            }
            let end = (start + fit).min(count);
            self.push(
                Piece::Bare { start, end },
                end - start,
                (end - start) * size::ENTITY,
            );
            start = end;
            if start < count {
                self.close();
            }
        }
    }

    fn plan_column(
        &mut self,
        at: usize,
        descriptor: &ComponentDescriptor,
        column: &Column,
        order: Option<&[u32]>,
    ) {
        let descriptor_bytes = size::DESCRIPTOR_BASE + descriptor.name.len();
        let rows = order.map_or(column.len(), <[u32]>::len);
        let mut start = 0;
        while start < rows {
            let mut overhead = size::BATCH_BASE;
            // Chunk 0 carries the whole registry; later chunks describe what they hold.
            if !self.chunks.is_empty() && !self.described.contains(&at) {
                overhead += descriptor_bytes;
            }
            let room = self.room().saturating_sub(overhead);
            let (mut end, mut bytes) = (start, 0);
            match descriptor.layout {
                Layout::Fixed(value) => {
                    let per = size::ENTITY + value as usize;
                    let fit = room / per; // per >= 8: an entity id always travels
                    end = (start + fit).min(rows);
                    bytes = (end - start) * per;
                }
                Layout::Variable { .. } => {
                    while end < rows {
                        let row = order.map_or(end, |o| o[end] as usize);
                        let per = size::ENTITY + size::LENGTH + column.value(row).len();
                        if bytes + per > room {
                            break;
                        }
                        bytes += per;
                        end += 1;
                    }
                }
            }
            if end == start {
                if self.current.items > 0 {
                    self.close();
                    continue;
                }
                // An empty chunk takes one value whatever its size.
                end = start + 1;
                let row = order.map_or(start, |o| o[start] as usize);
                bytes = size::ENTITY + size::LENGTH + column.value(row).len();
            }
            self.push(
                Piece::Rows {
                    column: at,
                    start,
                    end,
                },
                end - start,
                overhead + bytes,
            );
            if !self.described.contains(&at) {
                self.described.push(at);
            }
            start = end;
            if start < rows {
                self.close();
            }
        }
    }
}

impl World {
    /// Takes a snapshot of the current tick, which this closes (later writes land in the
    /// next tick, so deltas since the snapshot's tick miss nothing). Each chunk encodes to
    /// at most `max_chunk_bytes` unless a single value alone is larger. A world without
    /// entities gives zero chunks.
    pub fn snapshot(&self, max_chunk_bytes: usize) -> Snapshot {
        self.snapshot_of(max_chunk_bytes, None)
    }

    /// Takes a snapshot of the entities `keep` accepts (all their components), as
    /// [`World::snapshot`] does of all: what a peer that sees only part of the world needs.
    pub fn snapshot_where(
        &self,
        max_chunk_bytes: usize,
        keep: impl Fn(EntityId) -> bool,
    ) -> Snapshot {
        self.snapshot_of(max_chunk_bytes, Some(&keep))
    }

    fn snapshot_of(
        &self,
        max_chunk_bytes: usize,
        keep: Option<&dyn Fn(EntityId) -> bool>,
    ) -> Snapshot {
        let tick = self.seal();
        let registry = self.registry();
        let registry_hash = registry.hash();
        let mut bare = self.bare_entities();
        let columns = self.columns();
        let orders: Vec<Option<Vec<u32>>> = match keep {
            None => columns.iter().map(Column::entity_order).collect(),
            Some(keep) => {
                bare.retain(|&e| keep(e));
                // Rows kept, in entity order.
                columns
                    .iter()
                    .map(|c| {
                        let mut rows: Vec<u32> = c
                            .entity_order()
                            .unwrap_or_else(|| (0..c.len() as u32).collect());
                        rows.retain(|&row| keep(c.entity(row as usize)));
                        Some(rows)
                    })
                    .collect()
            }
        };
        let has_values = columns
            .iter()
            .zip(&orders)
            .any(|(c, o)| o.as_ref().map_or(c.len(), Vec::len) > 0);
        if bare.is_empty() && !has_values {
            return Snapshot {
                tick,
                registry_hash,
                chunks: Vec::new(),
                described: Vec::new(),
            };
        }

        let registry_bytes: usize = registry
            .descriptors()
            .iter()
            .map(|d| size::DESCRIPTOR_BASE + d.name.len())
            .sum();
        let mut planner = Planner::new(max_chunk_bytes, registry_bytes);
        planner.plan_bare(bare.len());
        for (at, (descriptor, column)) in registry.descriptors().iter().zip(columns).enumerate() {
            planner.plan_column(at, descriptor, column, orders[at].as_deref());
        }
        planner.close();

        let total = planner.chunks.len() as u32;
        let mut encoder = Encoder::new();
        let chunks = planner
            .chunks
            .iter()
            .enumerate()
            .map(|(index, plan)| {
                let header = ChunkHeader {
                    tick,
                    index: index as u32,
                    total,
                    registry_hash,
                    max_chunk_bytes: max_chunk_bytes.min(u32::MAX as usize) as u32,
                };
                self.encode_chunk(&mut encoder, header, plan, &bare, &orders)
            })
            .collect();
        Snapshot {
            tick,
            registry_hash,
            chunks,
            described: registry.descriptors().iter().map(|d| d.id).collect(),
        }
    }

    fn encode_chunk(
        &self,
        encoder: &mut Encoder,
        header: ChunkHeader,
        plan: &PlannedChunk,
        bare: &[EntityId],
        orders: &[Option<Vec<u32>>],
    ) -> SnapshotChunk {
        let registry = self.registry();
        let columns = self.columns();
        let mut bare_slice: &[EntityId] = &[];
        let mut descriptors: Vec<&ComponentDescriptor> = Vec::new();
        let mut gathered = Vec::new();
        for piece in &plan.pieces {
            match *piece {
                Piece::Bare { start, end } => bare_slice = &bare[start..end],
                Piece::Rows { column, start, end } => {
                    let descriptor = &registry.descriptors()[column];
                    if header.index != 0 {
                        descriptors.push(descriptor);
                    }
                    gathered.push(gather(
                        descriptor.id,
                        &columns[column],
                        orders[column].as_deref(),
                        start,
                        end,
                    ));
                }
            }
        }
        if header.index == 0 {
            descriptors = registry.descriptors().iter().collect();
        }
        let batches: Vec<BatchRef<'_>> = gathered
            .iter()
            .map(|g| BatchRef {
                component: g.component,
                entities: &g.entities,
                data: &g.data,
                lengths: g.lengths.as_deref(),
                inserted: None,
            })
            .collect();
        let bytes = encoder.snapshot_chunk(header, &descriptors, bare_slice, &batches);
        SnapshotChunk {
            index: header.index,
            bytes,
            components: gathered.iter().map(|g| g.entities.len()).sum(),
            bare_entities: bare_slice.len(),
        }
    }
}

/// Rows of one piece, borrowed straight from the column when it is in entity order and of
/// fixed layout (the common case), else copied in entity order.
struct Gathered<'w> {
    component: ComponentId,
    entities: Cow<'w, [EntityId]>,
    data: Cow<'w, [u8]>,
    lengths: Option<Vec<u32>>,
}

fn gather<'w>(
    component: ComponentId,
    column: &'w Column,
    order: Option<&[u32]>,
    start: usize,
    end: usize,
) -> Gathered<'w> {
    if order.is_none() {
        if let Some(data) = column.fixed_values(start, end) {
            return Gathered {
                component,
                entities: Cow::Borrowed(&column.entities()[start..end]),
                data: Cow::Borrowed(data),
                lengths: None,
            };
        }
    }
    let rows = (start..end).map(|i| order.map_or(i, |o| o[i] as usize));
    let mut entities = Vec::with_capacity(end - start);
    let mut data = Vec::new();
    let mut lengths = Vec::new();
    for row in rows {
        entities.push(column.entity(row));
        let value = column.value(row);
        data.extend_from_slice(value);
        lengths.push(value.len() as u32);
    }
    let variable = column.fixed_values(0, 0).is_none();
    Gathered {
        component,
        entities: Cow::Owned(entities),
        data: Cow::Owned(data),
        lengths: variable.then_some(lengths),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replica::Replica;
    use crate::wire::{self, Message};

    fn chunk_view(bytes: &[u8]) -> crate::wire::fb::SnapshotChunk<'_> {
        match wire::decode(bytes).expect("valid chunk") {
            Message::SnapshotChunk(chunk) => chunk,
            other => panic!("expected a chunk, got {}", other.kind()),
        }
    }

    fn world_with_positions(count: usize) -> (World, ComponentId, Vec<EntityId>) {
        let mut world = World::default();
        let position = world.register("test.Position", Layout::Fixed(12)).unwrap();
        let entities: Vec<EntityId> = (0..count)
            .map(|i| {
                let e = world.spawn().unwrap();
                world.set(e, position, &[i as u8; 12]).unwrap();
                e
            })
            .collect();
        (world, position, entities)
    }

    #[test]
    fn empty_world_produces_empty_snapshot() {
        let mut world = World::default();
        world.register("test.Position", Layout::Fixed(12)).unwrap();
        let snapshot = world.snapshot(DEFAULT_MAX_CHUNK_BYTES);
        assert!(snapshot.is_empty());
        assert_eq!(snapshot.chunks.len(), 0);
        assert_eq!(snapshot.total_components(), 0);
    }

    #[test]
    fn snapshot_single_component_fits_one_chunk() {
        let (world, position, entities) = world_with_positions(1);
        let snapshot = world.snapshot(DEFAULT_MAX_CHUNK_BYTES);
        assert_eq!(snapshot.chunks.len(), 1);
        assert_eq!(snapshot.total_components(), 1);
        let chunk = chunk_view(&snapshot.chunks[0].bytes);
        assert_eq!((chunk.index(), chunk.total()), (0, 1));
        let batch = chunk.batches().unwrap().get(0);
        assert_eq!(batch.component(), position.0);
        assert_eq!(
            crate::wire::EntityList::parse(batch).unwrap().iter().next(),
            Some(entities[0])
        );
        assert_eq!(batch.data().bytes(), &[0u8; 12]);
        let descriptors = chunk.descriptors().unwrap();
        assert_eq!(descriptors.get(0).name(), "test.Position");
    }

    #[test]
    fn snapshot_chunking_respects_limit() {
        let (world, _, _) = world_with_positions(100);
        let limit = 512;
        let snapshot = world.snapshot(limit);
        assert!(
            snapshot.chunks.len() > 1,
            "{} chunks",
            snapshot.chunks.len()
        );
        for (i, chunk) in snapshot.chunks.iter().enumerate() {
            assert!(
                chunk.bytes.len() <= limit,
                "chunk {i} has {} bytes",
                chunk.bytes.len()
            );
            let view = chunk_view(&chunk.bytes);
            assert_eq!(view.index() as usize, i);
            assert_eq!(view.total() as usize, snapshot.chunks.len());
            assert_eq!(view.tick(), snapshot.tick);
        }
        assert_eq!(snapshot.total_components(), 100);
    }

    #[test]
    fn snapshot_handles_multiple_component_types() {
        let mut world = World::default();
        let position = world.register("test.Position", Layout::Fixed(12)).unwrap();
        let name = world
            .register("test.Name", Layout::Variable { max: 64 })
            .unwrap();
        let a = world.spawn().unwrap();
        let b = world.spawn().unwrap();
        world.set(a, position, &[1; 12]).unwrap();
        world.set(a, name, b"alpha").unwrap();
        world.set(b, name, b"").unwrap();
        let snapshot = world.snapshot(DEFAULT_MAX_CHUNK_BYTES);
        assert_eq!(snapshot.total_components(), 3);
        let mut replica = Replica::new();
        for chunk in &snapshot.chunks {
            replica.apply_snapshot_chunk(&chunk.bytes).unwrap();
        }
        assert_eq!(replica.world().get(a, position), Some(&[1u8; 12][..]));
        assert_eq!(replica.world().get(a, name), Some(&b"alpha"[..]));
        assert_eq!(replica.world().get(b, name), Some(&b""[..]));
        assert_eq!(replica.state_hash(), world.state_hash());
    }

    #[test]
    fn a_filtered_snapshot_holds_exactly_the_kept_entities_in_small_chunks() {
        let mut world = World::default();
        let position = world.register("test.Position", Layout::Fixed(12)).unwrap();
        let name = world
            .register("test.Name", Layout::Variable { max: 64 })
            .unwrap();
        let entities: Vec<EntityId> = (0..300u32)
            .map(|i| {
                let e = world.spawn().unwrap();
                if i % 3 != 0 {
                    world.set(e, position, &[i as u8; 12]).unwrap();
                }
                if i % 5 == 0 {
                    world.set(e, name, format!("n{i}").as_bytes()).unwrap();
                }
                e
            })
            .collect();
        // Stored out of entity order, so the filter meets a reordered column too.
        world.remove(entities[1], position).unwrap();
        world.set(entities[1], position, &[9; 12]).unwrap();
        let keep = |e: EntityId| e.0 % 4 == 1;
        let snapshot = world.snapshot_where(512, keep);
        assert!(snapshot.chunks.len() > 1);
        let mut replica = Replica::new();
        for chunk in &snapshot.chunks {
            assert!(chunk.bytes.len() <= 512);
            replica.apply_snapshot_chunk(&chunk.bytes).unwrap();
        }
        assert!(entities
            .iter()
            .all(|&e| replica.world().is_alive(e) == keep(e)));
        assert_eq!(replica.state_hash(), world.state_hash_where(keep));
        assert_ne!(world.state_hash_where(keep), world.state_hash());
        // Nothing kept: zero chunks, as for an empty world.
        assert!(world.snapshot_where(512, |_| false).chunks.is_empty());
    }

    #[test]
    fn chunking_enforces_minimum_one_component_per_chunk() {
        let mut world = World::default();
        let blob = world
            .register("test.Blob", Layout::Variable { max: 4096 })
            .unwrap();
        for _ in 0..3 {
            let e = world.spawn().unwrap();
            world.set(e, blob, &[7; 1000]).unwrap();
        }
        // Each value alone exceeds the limit: one per chunk, no empty chunk, no endless split.
        let snapshot = world.snapshot(80);
        assert_eq!(snapshot.chunks.len(), 3);
        assert!(snapshot.chunks.iter().all(|c| c.components == 1));
    }

    #[test]
    fn bare_entities_travel_in_snapshots() {
        let mut world = World::default();
        world.register("test.Position", Layout::Fixed(12)).unwrap();
        let bare = world.spawn().unwrap();
        let snapshot = world.snapshot(DEFAULT_MAX_CHUNK_BYTES);
        assert_eq!(snapshot.chunks.len(), 1);
        assert_eq!(snapshot.chunks[0].bare_entities, 1);
        let mut replica = Replica::new();
        replica.apply(&snapshot.chunks[0].bytes).unwrap();
        assert!(replica.world().is_alive(bare));
        assert_eq!(replica.state_hash(), world.state_hash());
    }

    #[test]
    fn unsorted_columns_snapshot_in_entity_order() {
        let (mut world, position, entities) = world_with_positions(50);
        // Removing from the middle moves the last row into the hole.
        world.remove(entities[3], position).unwrap();
        world.remove(entities[10], position).unwrap();
        let snapshot = world.snapshot(300);
        let mut previous = 0;
        for chunk in &snapshot.chunks {
            let view = chunk_view(&chunk.bytes);
            for batch in view.batches().into_iter().flatten() {
                for e in crate::wire::EntityList::parse(batch).unwrap().iter() {
                    assert!(e.0 > previous);
                    previous = e.0;
                }
            }
        }
        let mut replica = Replica::new();
        for chunk in snapshot.chunks.iter().rev() {
            replica.apply(&chunk.bytes).unwrap();
        }
        assert_eq!(replica.state_hash(), world.state_hash());
    }
}
