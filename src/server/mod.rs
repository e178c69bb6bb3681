//! `theta serve`, the dedicated room server: its run loop ([`serve`]), config file
//! ([`config`]), room ids ([`room_id`]), lasting keys ([`keys`]), rooms' saved state
//! ([`store`]), the health and metrics endpoint ([`metrics`]) and its logs
//! ([`init_logging`]). The rooms themselves are the protocol's ([`crate::proto::rooms`])
//! on the QUIC driver's ([`crate::net::rooms`]).
//!
//! Layer: beside the tools, above net and the protocol (it drives the rooms over QUIC and
//! keeps their worlds on disk); nothing below it imports it.

use std::io::IsTerminal;

use tracing_subscriber::filter::EnvFilter;

pub mod config;
pub mod keys;
pub mod metrics;
pub mod serve;
pub mod store;

pub use crate::proto::room_id::{self, RoomId, RoomIdError};
pub use config::{ConfigError, Limits, ServerConfig};
pub use metrics::{Metrics, MetricsServer, Refusal, RoomFigures};
pub use store::{Restored, Saved, StoreError};

/// Levels [`init_logging`] takes as a single word.
pub const LOG_LEVELS: [&str; 6] = ["off", "error", "warn", "info", "debug", "trace"];

/// The filter of a `--log-level` value: one of [`LOG_LEVELS`], or `tracing` filter
/// directives with a target or several parts (`info,theta_net::server=debug`). A single
/// word that is not a level is refused (as a directive it would mean a target name, which
/// is never what a mistyped level wants).
pub fn log_filter(level: &str) -> Result<EnvFilter, String> {
    let level = level.trim();
    let directives = level.contains('=') || level.contains(',');
    if !directives && !LOG_LEVELS.contains(&level.to_ascii_lowercase().as_str()) {
        return Err(format!(
            "invalid log level {level:?}: use one of {} or filter directives like \"info,theta_net=debug\"",
            LOG_LEVELS.join(", ")
        ));
    }
    EnvFilter::try_new(level).map_err(|e| format!("invalid log filter {level:?}: {e}"))
}

/// Sends this process's `tracing` events at `level` (see [`log_filter`]) to stderr, where
/// systemd's journal and container runtimes collect them; colours only on a terminal.
/// Fails when the level is invalid or a subscriber is set already (call it once, at start).
pub fn init_logging(level: &str) -> Result<(), String> {
    let filter = log_filter(level)?;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init()
        .map_err(|e| format!("logging is set up already: {e}"))
}

#[cfg(test)]
mod tests {
    use tracing_subscriber::filter::LevelFilter;

    use super::*;

    #[test]
    fn levels_and_directives_make_filters() {
        for (level, max) in [
            ("off", LevelFilter::OFF),
            ("error", LevelFilter::ERROR),
            ("WARN", LevelFilter::WARN),
            (" info ", LevelFilter::INFO),
            ("debug", LevelFilter::DEBUG),
            ("trace", LevelFilter::TRACE),
            ("warn,theta_net::server=trace", LevelFilter::TRACE),
            ("theta_net=debug", LevelFilter::DEBUG),
        ] {
            let filter = log_filter(level).unwrap_or_else(|e| panic!("{level}: {e}"));
            assert_eq!(filter.max_level_hint(), Some(max), "{level}");
        }
    }

    #[test]
    fn a_mistyped_level_is_refused_by_name() {
        for level in ["verbose", "", "infoo", "debug!"] {
            let err = log_filter(level).unwrap_err();
            assert!(err.contains("invalid log level"), "{level}: {err}");
            assert!(err.contains("error, warn, info, debug, trace"), "{err}");
        }
        let err = log_filter("info,theta_net=loud").unwrap_err();
        assert!(err.contains("invalid log filter"), "{err}");
    }
}
