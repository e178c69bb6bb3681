//! The session protocol as a pure state machine: admission, acknowledgements, the outbox,
//! authority over client writes, resume, dictionaries and poses, with no sockets, threads,
//! locks or clock reads. Inputs are calls (bytes a peer sent, the time, the engine's
//! writes); outputs are polled (bytes to send per connection and channel, events). The
//! QUIC driver in [`crate::net`] runs it over quinn; an engine can run it over its own
//! transport; tests run it in a deterministic simulator.

pub mod acks;
pub mod compression;
pub(crate) mod outbox;
pub mod poses;
pub mod token;
