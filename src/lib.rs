//! Theta: state replication for collaborative XR.
//!
//! Layers (see `DESIGN.md`): the model ([`registry`], [`world`]) holds component types,
//! entities and change-ticked values; the wire format ([`wire`]) encodes and verifies
//! FlatBuffers messages; replication ([`snapshot`], [`delta`], [`replica`]) turns a world
//! into chunked snapshots and deltas and applies them on the receiving side.

#![warn(missing_docs)]
#![warn(clippy::undocumented_unsafe_blocks, unsafe_op_in_unsafe_fn)]

pub mod baseline;
pub mod delta;
pub mod ffi;
pub mod fields;
pub mod hash;
mod hex;
pub mod interest;
pub mod net;
pub mod ownership;
pub mod proto;
pub mod registry;
pub mod replica;
pub mod server;
pub mod snapshot;
pub mod wire;
pub mod world;
pub mod xr;

pub use delta::{
    ChangeKind, ChangedKeys, ComponentChange, Delta, DeltaError, DeltaTracker, SetBatch,
};
pub use registry::{ComponentDescriptor, ComponentId, Layout, Registry, RegistryError};
pub use replica::{Applied, Event, EventKind, Events, Replica, ReplicaError, ReplicaStats};
pub use snapshot::{Snapshot, SnapshotChunk, DEFAULT_MAX_CHUNK_BYTES};
pub use wire::WireError;
pub use world::{
    BatchOutcome, Change, EntityId, PeerId, World, WorldConfig, WorldError, WorldStats,
};

/// The README's examples, compiled and run as doc tests so they stay true.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
