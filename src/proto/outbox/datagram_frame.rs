//! A state datagram's frame as the outbox assembles it: flat lists, each batch a range of
//! them, kept from one datagram to the next with the lists of borrowed slices the encoder
//! takes. Once they have grown to a datagram's size, assembling and encoding a datagram
//! allocates nothing (issue 18: "buffers are reused").

use std::ops::Range;

use super::ValueBytes;
use crate::proto::value_coding::Coded;
use crate::registry::ComponentId;
use crate::wire::{BatchRef, Encoder, FrameParts, LaneBatch};
use crate::world::EntityId;

/// One component type's values in the frame, as ranges of [`DatagramFrame`]'s lists.
#[derive(Clone, Debug)]
struct Batch {
    component: ComponentId,
    /// A variable layout: the values carry their lengths.
    variable: bool,
    /// Raw bytes of its values (the per-component wire figures).
    raw_bytes: usize,
    /// Its entities, and their baseline ages (one of each per value).
    entities: Range<usize>,
    data: Range<usize>,
    lengths: Range<usize>,
    inserted: Range<usize>,
    lanes: Range<usize>,
    older_ages: Range<usize>,
}

/// The frame of the datagram being assembled (see the module's text).
#[derive(Debug, Default)]
pub(super) struct DatagramFrame {
    spawns: Vec<EntityId>,
    despawns: Vec<EntityId>,
    /// Per component type, the range of `removed` holding its entities.
    removes: Vec<(ComponentId, Range<usize>)>,
    removed: Vec<EntityId>,
    batches: Vec<Batch>,
    entities: Vec<EntityId>,
    /// Per value, the age of the baseline it is coded against (see `proto::baselines`).
    ages: Vec<u8>,
    data: Vec<u8>,
    lengths: Vec<u32>,
    /// Insert bitsets (all clear: a state datagram's values are updates).
    inserted: Vec<u8>,
    lanes: Vec<u8>,
    older_ages: Vec<u8>,
    /// The encoder's lists of slices of the above, kept empty between datagrams (see
    /// [`recycle`]).
    batch_refs: Vec<BatchRef<'static>>,
    remove_refs: Vec<(ComponentId, &'static [EntityId])>,
    age_refs: Vec<&'static [u8]>,
    lane_refs: Vec<LaneBatch<'static>>,
}

impl DatagramFrame {
    /// Empties the frame for the next datagram (its buffers stay).
    pub(super) fn clear(&mut self) {
        self.spawns.clear();
        self.despawns.clear();
        self.removes.clear();
        self.removed.clear();
        self.batches.clear();
        self.entities.clear();
        self.ages.clear();
        self.data.clear();
        self.lengths.clear();
        self.inserted.clear();
        self.lanes.clear();
        self.older_ages.clear();
    }

    pub(super) fn spawn(&mut self, entity: EntityId) {
        self.spawns.push(entity);
    }

    pub(super) fn despawn(&mut self, entity: EntityId) {
        self.despawns.push(entity);
    }

    /// Adds the removal of `component` from `entity` (entries come in key order).
    pub(super) fn remove(&mut self, component: ComponentId, entity: EntityId) {
        let at = self.removed.len();
        self.removed.push(entity);
        match self.removes.last_mut() {
            Some((c, range)) if *c == component => range.end = at + 1,
            _ => self.removes.push((component, at..at + 1)),
        }
    }

    /// Adds the value of `(component, entity)`, coded as `bytes` (`coded` says how), of
    /// `len` raw bytes, to its component's batch: a new batch when the last one is of
    /// another type (entries come in key order), whose layout `variable` tells. Returns
    /// whether the batch's values are of a fixed size.
    pub(super) fn set(
        &mut self,
        (component, entity): (ComponentId, EntityId),
        variable: impl FnOnce() -> bool,
        coded: &Coded,
        bytes: &[u8],
        len: usize,
    ) -> bool {
        if self.batches.last().is_none_or(|b| b.component != component) {
            let (e, d, l) = (self.entities.len(), self.data.len(), self.lengths.len());
            let (i, n, o) = (self.inserted.len(), self.lanes.len(), self.older_ages.len());
            self.batches.push(Batch {
                component,
                variable: variable(),
                raw_bytes: 0,
                entities: e..e,
                data: d..d,
                lengths: l..l,
                inserted: i..i,
                lanes: n..n,
                older_ages: o..o,
            });
        }
        let last = self.batches.len() - 1;
        let batch = &mut self.batches[last];
        let index = batch.entities.len();
        self.entities.push(entity);
        self.ages.push(coded.age);
        batch.entities.end += 1;
        if coded.lanes {
            self.lanes.extend_from_slice(bytes);
            batch.lanes.end += bytes.len();
            self.older_ages.push(coded.older_age);
            batch.older_ages.end += 1;
        } else {
            self.data.extend_from_slice(bytes);
            batch.data.end += bytes.len();
        }
        batch.raw_bytes += len;
        if batch.variable {
            self.lengths.push(len as u32);
            batch.lengths.end += 1;
        }
        if index.is_multiple_of(8) {
            self.inserted.push(0);
            batch.inserted.end += 1;
        }
        !batch.variable
    }

    /// The raw value bytes per component type, into `out` (emptied first).
    pub(super) fn values(&self, out: &mut ValueBytes) {
        out.clear();
        out.extend(self.batches.iter().map(|b| (b.component, b.raw_bytes)));
    }

    /// Encodes the frame at `tick` as a state datagram's body, borrowed from `encoder`
    /// until its next message.
    pub(super) fn encode<'e>(
        &mut self,
        encoder: &'e mut Encoder,
        tick: u64,
        owner_seq: u64,
    ) -> &'e [u8] {
        let mut batches = recycle(std::mem::take(&mut self.batch_refs));
        let mut ages = recycle(std::mem::take(&mut self.age_refs));
        let mut lanes = recycle(std::mem::take(&mut self.lane_refs));
        let mut removes = recycle(std::mem::take(&mut self.remove_refs));
        for b in &self.batches {
            batches.push(BatchRef {
                component: b.component,
                entities: &self.entities[b.entities.clone()],
                data: &self.data[b.data.clone()],
                lengths: b.variable.then(|| &self.lengths[b.lengths.clone()]),
                inserted: Some(&self.inserted[b.inserted.clone()]),
            });
            ages.push(&self.ages[b.entities.clone()]);
            lanes.push(LaneBatch {
                lanes: &self.lanes[b.lanes.clone()],
                older_ages: &self.older_ages[b.older_ages.clone()],
            });
        }
        for (component, range) in &self.removes {
            removes.push((*component, &self.removed[range.clone()]));
        }
        let frame = FrameParts {
            base_tick: 0,
            tick,
            descriptors: &[],
            spawns: &self.spawns,
            batches: &batches,
            removes: &removes,
            despawns: &self.despawns,
            owner_seq,
            baseline_ages: &ages,
            lanes: &lanes,
        };
        let bytes = encoder.state_datagram_in_place(&frame);
        self.batch_refs = recycle(batches);
        self.age_refs = recycle(ages);
        self.lane_refs = recycle(lanes);
        self.remove_refs = recycle(removes);
        bytes
    }
}

/// `list` emptied, as a list of `U`. For `U` the type of `T` with borrows of another
/// lifetime the allocation is kept (the standard library collects a vector's own
/// iterator in place when the element layouts match), so a list of borrowed slices is
/// reused from one datagram to the next rather than made for each.
fn recycle<T, U>(mut list: Vec<T>) -> Vec<U> {
    list.clear();
    list.into_iter().filter_map(|_| None).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recycled_list_keeps_its_allocation() {
        let data = [1u8, 2, 3];
        let mut list: Vec<&[u8]> = Vec::with_capacity(16);
        list.push(&data[..]);
        let at = list.as_ptr() as usize;
        let kept: Vec<&'static [u8]> = recycle(list);
        assert!(kept.is_empty());
        assert_eq!(kept.capacity(), 16);
        assert_eq!(kept.as_ptr() as usize, at);
    }
}
