//! The QUIC driver (quinn on tokio): the endpoint, TLS, admission limits, the runtime and
//! the tasks that move bytes between connections and the protocol core
//! ([`crate::proto`]), and fault injection for tests.

mod admission;
mod conn;
pub mod faults;
pub mod framing;
pub mod pacing;
mod panel;
pub mod session;
pub mod tls;

// The protocol's modules, by the names the driver's users have always used.
pub use crate::proto::{acks, compression, poses, token};
