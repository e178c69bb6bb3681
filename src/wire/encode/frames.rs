//! Building delta frames (alone, or inside state datagrams) and their batches: the
//! part of the encoder that writes values, entity ids (as gaps where that is smaller),
//! lanes and baseline ages.

use super::{BatchRef, BatchSource, Encoder, FrameParts, Ids, LaneBatch, Offset, Tables};
use crate::registry::{ComponentDescriptor, Layout};
use crate::wire::codec::write_varint;
use crate::wire::fb;
use crate::world::EntityId;

impl Encoder {
    /// Encodes one delta frame whose values are read from `batches` (`frame.batches` is
    /// not used): the same bytes as [`Encoder::delta_frame`] with those batches, but each
    /// value is copied once, from where it is stored into the finished message. The
    /// builder only reserves the values' place (FlatBuffers builds back to front, so the
    /// message cannot be written in order).
    pub fn delta_frame_from<S: BatchSource>(
        &mut self,
        frame: &FrameParts<'_>,
        batches: &[S],
    ) -> Vec<u8> {
        self.fbb.reset();
        self.holes.clear();
        let (despawns, removes) = self.frame_removals(frame);
        let offsets = self.reserved_batches(batches);
        let frame = self.frame_table(frame, despawns, removes, offsets);
        self.finish_message(fb::Payload::DeltaFrame, frame.as_union_value());
        let buf = self.fbb.finished_data();
        let mut out = Vec::with_capacity(buf.len());
        // Holes in message order: the builder wrote later batches nearer the front.
        self.holes
            .sort_unstable_by_key(|&(from_end, _, _)| std::cmp::Reverse(from_end));
        let mut copied = 0;
        for &(from_end, b, bytes) in &self.holes {
            // The offset points at the vector's u32 length prefix; the values follow it.
            let start = buf.len() - from_end + 4;
            debug_assert_eq!(buf[start - 4..start], (bytes as u32).to_le_bytes());
            out.extend_from_slice(&buf[copied..start]);
            let batch = &batches[b];
            for i in 0..batch.count() {
                out.extend_from_slice(batch.value(i));
            }
            copied = start + bytes;
        }
        out.extend_from_slice(&buf[copied..]);
        debug_assert_eq!(out.len(), buf.len());
        out
    }

    /// The batches of [`Encoder::delta_frame_from`], their values' place reserved and
    /// noted in `holes`; built in the order [`Encoder::batches`] builds them, so both
    /// give the same bytes.
    fn reserved_batches<S: BatchSource>(
        &mut self,
        batches: &[S],
    ) -> Option<Tables<fb::ComponentBatch<'static>>> {
        if batches.is_empty() {
            return None;
        }
        let mut offsets = Vec::with_capacity(batches.len());
        for (b, batch) in batches.iter().enumerate() {
            let n = batch.count();
            self.bits.clear();
            self.bits.resize(n.div_ceil(8), 0);
            for i in (0..n).filter(|&i| batch.inserted(i)) {
                self.bits[i / 8] |= 1 << (i % 8);
            }
            let inserted = self.fbb.create_vector(&self.bits);
            let lengths = batch.variable().then(|| {
                self.lengths.clear();
                self.lengths
                    .extend((0..n).map(|i| batch.value(i).len() as u32));
                self.fbb.create_vector(&self.lengths)
            });
            let bytes: usize = (0..n).map(|i| batch.value(i).len()).sum();
            if self.zeros.len() < bytes {
                self.zeros.resize(bytes, 0);
            }
            let data = self.fbb.create_vector(&self.zeros[..bytes]);
            self.holes.push((data.value() as usize, b, bytes));
            self.ids.clear();
            self.ids.extend((0..n).map(|i| batch.entity(i).0));
            let (entities, entity_gaps) = self.batch_entities();
            offsets.push(fb::ComponentBatch::create(
                &mut self.fbb,
                &fb::ComponentBatchArgs {
                    component: batch.component().0,
                    entities: Some(entities),
                    data: Some(data),
                    lengths,
                    inserted: Some(inserted),
                    baseline_ages: None,
                    lanes: None,
                    entity_gaps,
                    older_ages: None,
                },
            ));
        }
        Some(self.fbb.create_vector(&offsets))
    }

    pub(super) fn build_frame(&mut self, f: &FrameParts<'_>) -> Offset<fb::DeltaFrame<'static>> {
        let (despawns, removes) = self.frame_removals(f);
        let batches = self.batches(f.batches, f.baseline_ages, f.lanes);
        self.frame_table(f, despawns, removes, batches)
    }

    /// A frame's despawns and removes, built first (the builder works back to front).
    fn frame_removals(
        &mut self,
        f: &FrameParts<'_>,
    ) -> (Option<Ids>, Option<Tables<fb::RemoveBatch<'static>>>) {
        let despawns = (!f.despawns.is_empty()).then(|| self.entity_vector(f.despawns));
        let removes = (!f.removes.is_empty()).then(|| {
            let mut offsets = std::mem::take(&mut self.remove_tables);
            offsets.clear();
            for &(component, entities) in f.removes {
                let entities = self.entity_vector(entities);
                offsets.push(fb::RemoveBatch::create(
                    &mut self.fbb,
                    &fb::RemoveBatchArgs {
                        component: component.0,
                        entities: Some(entities),
                    },
                ));
            }
            let removes = self.fbb.create_vector(&offsets);
            self.remove_tables = offsets;
            removes
        });
        (despawns, removes)
    }

    /// The rest of a frame around its built removals and batches.
    fn frame_table(
        &mut self,
        f: &FrameParts<'_>,
        despawns: Option<Ids>,
        removes: Option<Tables<fb::RemoveBatch<'static>>>,
        batches: Option<Tables<fb::ComponentBatch<'static>>>,
    ) -> Offset<fb::DeltaFrame<'static>> {
        let spawns = (!f.spawns.is_empty()).then(|| self.entity_vector(f.spawns));
        let descriptors = self.descriptors(f.descriptors);
        fb::DeltaFrame::create(
            &mut self.fbb,
            &fb::DeltaFrameArgs {
                base_tick: f.base_tick,
                tick: f.tick,
                descriptors,
                spawns,
                batches,
                removes,
                despawns,
                owner_seq: f.owner_seq,
            },
        )
    }

    pub(super) fn entity_vector(
        &mut self,
        entities: &[EntityId],
    ) -> Offset<flatbuffers::Vector<'static, u64>> {
        self.ids.clear();
        self.ids.extend(entities.iter().map(|e| e.0));
        self.fbb.create_vector(&self.ids)
    }

    /// A batch's entities (in `self.ids`, ascending) as gaps, a byte each when ids are
    /// dense (`ComponentBatch.entity_gaps`), with an empty `entities`; as plain ids when a
    /// gap would take more than the 8 bytes an id does (ids of far-apart peers), so that
    /// [`size::ENTITY`] stays a bound.
    fn batch_entities(
        &mut self,
    ) -> (
        Offset<flatbuffers::Vector<'static, u64>>,
        Option<Offset<flatbuffers::Vector<'static, u8>>>,
    ) {
        self.gaps.clear();
        let mut previous = 0u64;
        let mut dense = true;
        for (i, &id) in self.ids.iter().enumerate() {
            let gap = if i == 0 { id } else { id - previous - 1 };
            previous = id;
            if gap >= 1 << 56 {
                dense = false;
                break;
            }
            write_varint(&mut self.gaps, gap);
        }
        if dense {
            let gaps = self.fbb.create_vector(&self.gaps);
            (self.fbb.create_vector::<u64>(&[]), Some(gaps))
        } else {
            (self.fbb.create_vector(&self.ids), None)
        }
    }

    pub(super) fn descriptors(
        &mut self,
        descriptors: &[&ComponentDescriptor],
    ) -> Option<
        Offset<flatbuffers::Vector<'static, flatbuffers::ForwardsUOffset<fb::Descriptor<'static>>>>,
    > {
        if descriptors.is_empty() {
            return None;
        }
        let offsets: Vec<_> = descriptors
            .iter()
            .map(|d| {
                let name = self.fbb.create_string(&d.name);
                let (layout, size) = match d.layout {
                    Layout::Fixed(size) => (fb::LayoutKind::Fixed, size),
                    Layout::Variable { max } => (fb::LayoutKind::Variable, max),
                };
                fb::Descriptor::create(
                    &mut self.fbb,
                    &fb::DescriptorArgs {
                        id: d.id.0,
                        name: Some(name),
                        layout,
                        size,
                    },
                )
            })
            .collect();
        Some(self.fbb.create_vector(&offsets))
    }

    pub(super) fn batches(
        &mut self,
        batches: &[BatchRef<'_>],
        baseline_ages: &[&[u8]],
        lanes: &[LaneBatch<'_>],
    ) -> Option<
        Offset<
            flatbuffers::Vector<'static, flatbuffers::ForwardsUOffset<fb::ComponentBatch<'static>>>,
        >,
    > {
        if batches.is_empty() {
            return None;
        }
        // The tables' offsets, in a vector kept from one frame to the next.
        let mut offsets = std::mem::take(&mut self.batch_tables);
        offsets.clear();
        for (i, batch) in batches.iter().enumerate() {
            let table = {
                let ages = baseline_ages
                    .get(i)
                    .filter(|ages| ages.iter().any(|&a| a != 0))
                    .map(|ages| self.fbb.create_vector(ages));
                let lane_batch = lanes.get(i).copied().unwrap_or_default();
                let older_ages = (lane_batch.older_ages.iter().any(|&a| a != 0))
                    .then(|| self.fbb.create_vector(lane_batch.older_ages));
                let lanes = (!lane_batch.lanes.is_empty())
                    .then(|| self.fbb.create_vector(lane_batch.lanes));
                let inserted = batch.inserted.map(|bits| self.fbb.create_vector(bits));
                let lengths = batch.lengths.map(|lengths| self.fbb.create_vector(lengths));
                let data = self.fbb.create_vector(batch.data);
                self.ids.clear();
                self.ids.extend(batch.entities.iter().map(|e| e.0));
                let (entities, entity_gaps) = self.batch_entities();
                fb::ComponentBatch::create(
                    &mut self.fbb,
                    &fb::ComponentBatchArgs {
                        component: batch.component.0,
                        entities: Some(entities),
                        data: Some(data),
                        lengths,
                        inserted,
                        baseline_ages: ages,
                        lanes,
                        entity_gaps,
                        older_ages,
                    },
                )
            };
            offsets.push(table);
        }
        let tables = self.fbb.create_vector(&offsets);
        self.batch_tables = offsets;
        Some(tables)
    }
}
