//! The room server's config file (TOML): where it listens, where it keeps rooms, how
//! often it saves, and the limits every room is held to. Every key has a default, so an
//! empty file is a working config; an unknown key, a value of the wrong type or out of
//! its range is refused with the file, line, column and key named.
//!
//! ```toml
//! listen = "0.0.0.0:7777"        # the one UDP port of every room
//! metrics = "127.0.0.1:9100"     # health and Prometheus metrics; "off" for none
//! state_dir = "/var/lib/theta"   # one <room>.theta file per room
//! save_interval_secs = 10
//! drain_timeout_secs = 5
//!
//! [limits]                       # per room, except max_rooms
//! max_rooms = 1000
//! max_peers = 16
//! max_entities = 100000
//! max_value_bytes = 65536
//! max_bytes_per_second = 1000000 # per peer
//! ```

use std::fmt;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{de, Deserialize, Deserializer};
use toml::de::{DeTable, DeValue};

use crate::registry::MAX_VALUE_BYTES;

/// Largest config file read, in bytes: a config is a few hundred bytes.
pub const MAX_CONFIG_BYTES: u64 = 1 << 20;

/// The server's settings.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// The UDP address every room is served on.
    #[serde(deserialize_with = "address")]
    pub listen: SocketAddr,
    /// The address of the health and metrics endpoint; `None` (`"off"`) for none.
    #[serde(deserialize_with = "address_or_off")]
    pub metrics: Option<SocketAddr>,
    /// The directory of the rooms' saved files.
    pub state_dir: PathBuf,
    /// Seconds between two saves of a room that changed (1 to 86 400).
    #[serde(deserialize_with = "in_range::<_, 1, 86_400>")]
    pub save_interval_secs: u64,
    /// Seconds a drain may take before the server exits anyway (1 to 600).
    #[serde(deserialize_with = "in_range::<_, 1, 600>")]
    pub drain_timeout_secs: u64,
    /// The limits of each room.
    pub limits: Limits,
}

/// What each room (and the server) accepts at most.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Rooms open at once in this server (1 to 100 000).
    #[serde(deserialize_with = "in_range::<_, 1, 100_000>")]
    pub max_rooms: u64,
    /// Peers in one room (1 to 4096).
    #[serde(deserialize_with = "in_range::<_, 1, 4096>")]
    pub max_peers: u64,
    /// Entities in one room (1 to 10 000 000).
    #[serde(deserialize_with = "in_range::<_, 1, 10_000_000>")]
    pub max_entities: u64,
    /// Bytes of one component value (1 to the protocol's 1 MiB, `MAX_VALUE_BYTES`).
    #[serde(deserialize_with = "in_range::<_, 1, { MAX_VALUE_BYTES as u64 }>")]
    pub max_value_bytes: u64,
    /// Bytes per second one peer may send (1 000 to 1 000 000 000).
    #[serde(deserialize_with = "in_range::<_, 1_000, 1_000_000_000>")]
    pub max_bytes_per_second: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 7777)),
            metrics: Some(SocketAddr::from(([127, 0, 0, 1], 9100))),
            state_dir: PathBuf::from("theta-state"),
            save_interval_secs: 10,
            drain_timeout_secs: 5,
            limits: Limits::default(),
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_rooms: 1000,
            max_peers: 16,
            max_entities: 100_000,
            max_value_bytes: 64 * 1024,
            max_bytes_per_second: 1_000_000,
        }
    }
}

impl ServerConfig {
    /// Reads and checks the config file at `path`.
    pub fn from_file(path: &Path) -> Result<ServerConfig, ConfigError> {
        let io = |e: std::io::Error| ConfigError {
            file: path.to_owned(),
            at: None,
            key: None,
            message: format!("cannot read it: {e}"),
        };
        let len = std::fs::metadata(path).map_err(io)?.len();
        if len > MAX_CONFIG_BYTES {
            return Err(ConfigError {
                file: path.to_owned(),
                at: None,
                key: None,
                message: format!("{len} bytes, more than a config file holds ({MAX_CONFIG_BYTES})"),
            });
        }
        let text = std::fs::read_to_string(path).map_err(io)?;
        ServerConfig::parse(&text, path)
    }

    /// Parses a config from `text`; `file` names it in errors.
    pub fn parse(text: &str, file: &Path) -> Result<ServerConfig, ConfigError> {
        toml::from_str(text).map_err(|e| {
            let span = e.span();
            ConfigError {
                file: file.to_owned(),
                at: span.as_ref().map(|s| line_column(text, s.start)),
                key: span.and_then(|s| key_at(text, s)),
                message: e.message().trim_end().to_owned(),
            }
        })
    }

    /// [`ServerConfig::save_interval_secs`] as a duration.
    pub fn save_interval(&self) -> Duration {
        Duration::from_secs(self.save_interval_secs)
    }

    /// [`ServerConfig::drain_timeout_secs`] as a duration.
    pub fn drain_timeout(&self) -> Duration {
        Duration::from_secs(self.drain_timeout_secs)
    }
}

/// Why a config file was refused: the file, where in it, the key and what was wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// The file.
    pub file: PathBuf,
    /// Line and column (from 1) of the offending text, when known.
    pub at: Option<(usize, usize)>,
    /// The dotted key the offending text belongs to, when known (`limits.max_peers`).
    pub key: Option<String>,
    /// What was wrong.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "config {}", self.file.display())?;
        if let Some((line, column)) = self.at {
            write!(f, ", line {line}, column {column}")?;
        }
        if let Some(key) = &self.key {
            write!(f, ", key `{key}`")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for ConfigError {}

/// Line and column (from 1, in characters) of byte `at` of `text`.
fn line_column(text: &str, at: usize) -> (usize, usize) {
    let at = at.min(text.len());
    // A span ends on a char boundary, but clamp to one anyway: this is peer-ish input.
    let at = (0..=at)
        .rev()
        .find(|&i| text.is_char_boundary(i))
        .unwrap_or(0);
    let before = &text[..at];
    let line = before.matches('\n').count() + 1;
    let column = before
        .rsplit('\n')
        .next()
        .map_or(0, |last| last.chars().count())
        + 1;
    (line, column)
}

/// The dotted key whose key or value holds `span` (the deepest one), if the text parses.
fn key_at(text: &str, span: Range<usize>) -> Option<String> {
    let table = DeTable::parse(text).ok()?;
    let mut path = Vec::new();
    find_key(table.get_ref(), span.start, &mut path).then(|| path.join("."))
}

fn find_key(table: &DeTable<'_>, at: usize, path: &mut Vec<String>) -> bool {
    for (key, value) in table {
        path.push(key.get_ref().to_string());
        if let DeValue::Table(inner) = value.get_ref() {
            if find_key(inner, at, path) {
                return true;
            }
        }
        if key.span().contains(&at) || value.span().contains(&at) {
            return true;
        }
        path.pop();
    }
    false
}

/// An integer in `LO..=HI`; anything else is refused naming the range.
fn in_range<'de, D: Deserializer<'de>, const LO: u64, const HI: u64>(
    d: D,
) -> Result<u64, D::Error> {
    d.deserialize_i64(InRange::<LO, HI>)
}

struct InRange<const LO: u64, const HI: u64>;

impl<const LO: u64, const HI: u64> de::Visitor<'_> for InRange<LO, HI> {
    type Value = u64;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "an integer from {LO} to {HI}")
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<u64, E> {
        match u64::try_from(value) {
            Ok(v) => self.visit_u64(v),
            Err(_) => Err(E::custom(format!("{value} is out of range: {LO} to {HI}"))),
        }
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<u64, E> {
        if (LO..=HI).contains(&value) {
            Ok(value)
        } else {
            Err(E::custom(format!("{value} is out of range: {LO} to {HI}")))
        }
    }
}

fn address<'de, D: Deserializer<'de>>(d: D) -> Result<SocketAddr, D::Error> {
    let text = String::deserialize(d)?;
    text.parse().map_err(|_| {
        de::Error::custom(format!(
            "{text:?} is not an address (an IP and a port, e.g. \"127.0.0.1:7777\" or \"[::1]:7777\")"
        ))
    })
}

fn address_or_off<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SocketAddr>, D::Error> {
    let text = String::deserialize(d)?;
    if text == "off" {
        return Ok(None);
    }
    text.parse().map(Some).map_err(|_| {
        de::Error::custom(format!(
            "{text:?} is neither \"off\" nor an address (an IP and a port, e.g. \"127.0.0.1:9100\")"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<ServerConfig, ConfigError> {
        ServerConfig::parse(text, Path::new("/etc/theta/serve.toml"))
    }

    fn refused(text: &str) -> String {
        parse(text).unwrap_err().to_string()
    }

    #[test]
    fn an_empty_file_gives_the_defaults() {
        let config = parse("").unwrap();
        assert_eq!(config, ServerConfig::default());
        assert_eq!(config.listen, "127.0.0.1:7777".parse().unwrap());
        assert_eq!(config.metrics, Some("127.0.0.1:9100".parse().unwrap()));
        assert_eq!(config.save_interval(), Duration::from_secs(10));
        assert_eq!(config.drain_timeout(), Duration::from_secs(5));
        let limits = &config.limits;
        assert_eq!(
            (
                limits.max_peers,
                limits.max_entities,
                limits.max_value_bytes,
                limits.max_bytes_per_second,
                limits.max_rooms
            ),
            (16, 100_000, 65_536, 1_000_000, 1000)
        );
        // Only comments: still the defaults.
        assert_eq!(parse("# nothing set\n\n").unwrap(), config);
    }

    #[test]
    fn a_full_file_sets_every_key() {
        let config = parse(
            r#"
listen = "[::1]:7000"
metrics = "off"
state_dir = "/var/lib/theta"
save_interval_secs = 30
drain_timeout_secs = 12

[limits]
max_rooms = 50
max_peers = 8
max_entities = 2000
max_value_bytes = 1048576
max_bytes_per_second = 250000
"#,
        )
        .unwrap();
        assert_eq!(
            config,
            ServerConfig {
                listen: "[::1]:7000".parse().unwrap(),
                metrics: None,
                state_dir: PathBuf::from("/var/lib/theta"),
                save_interval_secs: 30,
                drain_timeout_secs: 12,
                limits: Limits {
                    max_rooms: 50,
                    max_peers: 8,
                    max_entities: 2000,
                    max_value_bytes: 1 << 20,
                    max_bytes_per_second: 250_000,
                },
            }
        );
        // A table set in part keeps the other defaults.
        let config = parse("[limits]\nmax_peers = 4\n").unwrap();
        assert_eq!(config.limits.max_peers, 4);
        assert_eq!(config.limits.max_entities, 100_000);
    }

    #[test]
    fn bad_toml_names_the_line() {
        let err = parse("listen = \"127.0.0.1:7777\"\nmetrics = \n").unwrap_err();
        assert_eq!(err.at.map(|a| a.0), Some(2), "{err}");
        let text = err.to_string();
        assert!(
            text.starts_with("config /etc/theta/serve.toml, line 2"),
            "{text}"
        );
        let err = refused("[limits\nmax_peers = 3\n");
        assert!(err.contains("line 1"), "{err}");
    }

    #[test]
    fn an_unknown_key_is_refused_with_its_name_and_line() {
        let err = parse("listen = \"127.0.0.1:1\"\nmax_peers = 3\n").unwrap_err();
        assert_eq!(err.at.map(|a| a.0), Some(2), "{err}");
        assert!(err.message.contains("unknown field `max_peers`"), "{err}");
        let err = parse("[limits]\nmax_peers = 3\nmax_peer = 4\n").unwrap_err();
        assert_eq!(err.at.map(|a| a.0), Some(3), "{err}");
        assert!(err.message.contains("unknown field `max_peer`"), "{err}");
        let err = refused("[limit]\nmax_peers = 3\n");
        assert!(
            err.contains("line 1") && err.contains("unknown field `limit`"),
            "{err}"
        );
    }

    #[test]
    fn a_wrong_type_names_the_key_and_line() {
        let err = parse("drain_timeout_secs = 5\n\n[limits]\nmax_peers = \"many\"\n").unwrap_err();
        assert_eq!(err.at.map(|a| a.0), Some(4), "{err}");
        assert_eq!(err.key.as_deref(), Some("limits.max_peers"), "{err}");
        assert!(
            err.message
                .contains("invalid type: string \"many\", expected an integer from 1 to 4096"),
            "{err}"
        );
        let err = parse("save_interval_secs = 2.5\n").unwrap_err();
        assert_eq!(err.key.as_deref(), Some("save_interval_secs"), "{err}");
        let err = parse("state_dir = 3\n").unwrap_err();
        assert_eq!(err.key.as_deref(), Some("state_dir"), "{err}");
        let err = refused("listen = 7777\n");
        assert!(err.contains("key `listen`"), "{err}");
        let err = refused("listen = \"localhost\"\n");
        assert!(
            err.contains("key `listen`") && err.contains("is not an address"),
            "{err}"
        );
        let err = refused("metrics = \"on\"\n");
        assert!(
            err.contains("key `metrics`") && err.contains("neither \"off\""),
            "{err}"
        );
    }

    #[test]
    fn out_of_range_values_are_refused_naming_the_range() {
        let cases = [
            (
                "[limits]\nmax_peers = 0\n",
                "limits.max_peers",
                "0 is out of range: 1 to 4096",
            ),
            (
                "[limits]\nmax_peers = -3\n",
                "limits.max_peers",
                "-3 is out of range",
            ),
            (
                "[limits]\nmax_value_bytes = 1048577\n",
                "limits.max_value_bytes",
                "out of range: 1 to 1048576",
            ),
            (
                "[limits]\nmax_bytes_per_second = 10\n",
                "limits.max_bytes_per_second",
                "1000 to 1000000000",
            ),
            (
                "[limits]\nmax_rooms = 100001\n",
                "limits.max_rooms",
                "1 to 100000",
            ),
            (
                "[limits]\nmax_entities = 0\n",
                "limits.max_entities",
                "1 to 10000000",
            ),
            (
                "save_interval_secs = 0\n",
                "save_interval_secs",
                "1 to 86400",
            ),
            (
                "drain_timeout_secs = 601\n",
                "drain_timeout_secs",
                "1 to 600",
            ),
        ];
        for (text, key, why) in cases {
            let err = parse(text).unwrap_err();
            assert_eq!(err.key.as_deref(), Some(key), "{text}: {err}");
            assert!(err.at.is_some(), "{text}: {err}");
            assert!(err.message.contains(why), "{text}: {err}");
        }
    }

    #[test]
    fn from_file_reads_and_names_the_file() {
        let dir = std::env::temp_dir().join(format!("theta-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("serve.toml");
        std::fs::write(&path, "[limits]\nmax_peers = 5\n").unwrap();
        assert_eq!(ServerConfig::from_file(&path).unwrap().limits.max_peers, 5);
        std::fs::write(&path, "[limits]\nmax_peers = 5000\n").unwrap();
        let err = ServerConfig::from_file(&path).unwrap_err().to_string();
        assert!(
            err.contains("serve.toml, line 2") && err.contains("key `limits.max_peers`"),
            "{err}"
        );
        let missing = dir.join("absent.toml");
        let err = ServerConfig::from_file(&missing).unwrap_err().to_string();
        assert!(err.contains("absent.toml: cannot read it"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
