//! The FlatBuffers wire format (`schemas/theta.fbs`): encoding of snapshot chunks and
//! delta frames, and verified, bounded decoding of bytes from a peer.
//!
//! This layer knows component layouts and entity ids (the model) but nothing of worlds,
//! replicas or sockets; the replication layer builds on it.

mod decode;
mod encode;

/// The flatc output, included rather than declared as a module file so that cbindgen,
/// which does not expand `include!`, keeps it out of the C header.
#[allow(
    clippy::all,
    clippy::undocumented_unsafe_blocks,
    clippy::pedantic,
    unused_imports,
    dead_code,
    non_camel_case_types,
    non_snake_case,
    missing_docs,
    deprecated,
    unsafe_op_in_unsafe_fn,
    mismatched_lifetime_syntaxes
)]
#[rustfmt::skip]
mod theta_generated {
    include!("theta_generated.rs");
}

pub(crate) use decode::check_ascending;
pub use decode::{
    decode, read_descriptors, read_entities, BatchEntry, BatchView, Message, RemoveView, WireError,
};
pub(crate) use encode::size;
pub use encode::{Acceptance, BatchRef, ChunkHeader, Encoder, FrameParts};

/// The generated FlatBuffers accessors (namespace `theta.wire.fb`).
pub use theta_generated::theta::wire::fb;

/// Wire format version carried in every message; a receiver refuses any other.
pub const WIRE_VERSION: u16 = 1;
/// FlatBuffers file identifier of every message.
pub const FILE_IDENTIFIER: &str = "THTA";
/// Largest message accepted from a peer.
pub const MAX_MESSAGE_BYTES: usize = 64 << 20;
