//! The QUIC transport (quinn on tokio): TLS and admission, sessions, acked-baseline
//! replication over datagrams, and fault injection for tests.

pub mod acks;
mod admission;
pub mod compression;
pub mod faults;
pub mod framing;
mod hex;
pub(crate) mod outbox;
pub mod pacing;
mod panel;
pub mod poses;
pub mod session;
pub mod tls;
pub mod token;
