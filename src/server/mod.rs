//! Building blocks of `theta serve`, the dedicated room server (issue 19): its config
//! file ([`config`]), room ids ([`room_id`]), rooms' saved state ([`store`]), the health and
//! metrics endpoint ([`metrics`]) and its logs ([`init_logging`]).
//!
//! Layer: beside the tools, above the protocol. It uses the model and replication
//! (`World`, `Registry`, `Snapshot`, `Replica`); nothing below it imports it.

pub mod config;
pub mod metrics;
pub mod room_id;
pub mod store;

pub use config::{ConfigError, Limits, ServerConfig};
pub use metrics::{Metrics, MetricsServer, Refusal, RoomFigures};
pub use room_id::{RoomId, RoomIdError};
pub use store::{Restored, Saved, StoreError};
