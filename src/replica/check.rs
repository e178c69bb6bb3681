//! Checking a message whole before anything of it is applied: the validation a replica
//! applies a frame by, shared with whoever else applies one (the host, a client's writes).

use super::ReplicaError;
use crate::registry::{ComponentDescriptor, ComponentId, Layout, Registry, MAX_COMPONENT_TYPES};
use crate::wire::{self, fb, BatchView, RemoveView, WireError};
use crate::world::EntityId;

/// A message checked whole, ready to apply without failing.
pub(crate) struct Checked<'a> {
    pub(crate) tick: u64,
    pub(crate) descriptors: Vec<ComponentDescriptor>,
    pub(crate) spawns: Vec<EntityId>,
    pub(crate) batches: Vec<BatchView<'a>>,
    pub(crate) removes: Vec<RemoveView<'a>>,
    pub(crate) despawns: Vec<EntityId>,
}

/// Checks a delta frame whole against `registry` (its descriptors, every batch against
/// its component's layout, removals and entity lists), without applying anything: the
/// validation a replica applies a frame by, for whoever else applies one (the host, a
/// client's writes).
pub(crate) fn check_frame<'a>(
    registry: &Registry,
    frame: fb::DeltaFrame<'a>,
) -> Result<Checked<'a>, ReplicaError> {
    let (base, tick) = (frame.base_tick(), frame.tick());
    if tick == 0 || tick < base {
        return Err(ReplicaError::BadFrameTicks { base, tick });
    }
    let descriptors = check_descriptors(registry, frame.descriptors())?;
    let batches = check_batches(registry, &descriptors, frame.batches())?;
    let removes = match frame.removes() {
        None => Vec::new(),
        Some(list) => {
            wire::check_ascending(
                list.iter().map(|r| r.component()),
                list.len(),
                "remove batches",
            )?;
            list.iter()
                .map(RemoveView::parse)
                .collect::<Result<_, _>>()?
        }
    };
    Ok(Checked {
        tick,
        descriptors,
        spawns: wire::read_entities(frame.spawns(), "spawns")?,
        batches,
        removes,
        despawns: wire::read_entities(frame.despawns(), "despawns")?,
    })
}

/// Checks `list` against `registry`: no conflict with a registered type, and no more
/// types than a registry holds.
pub(super) fn check_descriptors(
    registry: &Registry,
    list: Option<flatbuffers::Vector<'_, flatbuffers::ForwardsUOffset<fb::Descriptor<'_>>>>,
) -> Result<Vec<ComponentDescriptor>, ReplicaError> {
    let descriptors = wire::read_descriptors(list)?;
    let mut new = 0;
    for descriptor in &descriptors {
        if registry
            .check(descriptor)
            .map_err(WireError::from)?
            .is_none()
        {
            new += 1;
        }
    }
    if registry.len() + new > MAX_COMPONENT_TYPES {
        return Err(WireError::TooMany {
            what: "component types",
            count: registry.len() + new,
            max: MAX_COMPONENT_TYPES,
        }
        .into());
    }
    Ok(descriptors)
}

/// Checks every batch against its component's layout (from the message's descriptors or
/// the registry).
pub(super) fn check_batches<'a>(
    registry: &Registry,
    descriptors: &[ComponentDescriptor],
    list: Option<flatbuffers::Vector<'a, flatbuffers::ForwardsUOffset<fb::ComponentBatch<'a>>>>,
) -> Result<Vec<BatchView<'a>>, ReplicaError> {
    let Some(list) = list else {
        return Ok(Vec::new());
    };
    wire::check_ascending(
        list.iter().map(|b| b.component()),
        list.len(),
        "component batches",
    )?;
    let mut out = Vec::with_capacity(list.len());
    for batch in list.iter() {
        let id = ComponentId(batch.component());
        let layout: Layout = descriptors
            .iter()
            .find(|d| d.id == id)
            .or_else(|| registry.get(id))
            .map(|d| d.layout)
            .ok_or(WireError::UnknownComponent(id))?;
        let view = BatchView::parse(batch, layout)?;
        if view.lanes().is_some() && registry.fields(id).is_none() {
            return Err(WireError::BadBatch {
                component: id,
                reason: "lanes for a component without declared fields".into(),
            }
            .into());
        }
        out.push(view);
    }
    Ok(out)
}
