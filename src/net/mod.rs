//! The drivers of the protocol core ([`crate::proto`]): QUIC (quinn on tokio: the
//! endpoint, TLS, admission limits, the runtime and the tasks that move bytes between
//! connections and the core, and fault injection for tests), and the engine's own
//! transport ([`custom`]). [`session::Session`] is the engine's handle on either.

mod admission;
mod conn;
pub mod custom;
pub mod faults;
pub mod framing;
pub mod pacing;
mod panel;
mod quic;
pub mod rooms;
pub mod session;
pub mod tls;

// The protocol's modules, by the names the driver's users have always used.
pub use crate::proto::{acks, compression, poses, token};
