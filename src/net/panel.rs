//! The text panel of a session's diagnostics: what an engine overlay or a log line shows.

use std::fmt::Write;

use super::session::{PeerDiagnostics, SessionDiagnostics};
use crate::proto::compression::{ComponentWire, KindDiagnostics};
use crate::wire::codec::CodecChoice;

/// Column headings of the per-peer table, and the width of each column.
const COLUMNS: [(&str, usize); 11] = [
    ("peer", 5),
    ("rtt ms", 8),
    ("KB sent", 10),
    ("KB recv", 10),
    ("packets", 17),
    ("lost", 6),
    ("datagrams", 20),
    ("pending", 8),
    ("snapshot B", 11),
    ("rejected", 9),
    ("malformed", 10),
];

/// Column headings and widths of the compression table (one line per message kind).
const KIND_COLUMNS: [(&str, usize); 9] = [
    ("kind", 14),
    ("codec", 11),
    ("frames out", 10),
    ("raw KB", 9),
    ("wire KB", 9),
    ("ratio", 6),
    ("dict hits", 9),
    ("dicts", 8),
    ("in/errors", 16),
];

/// Column headings and widths of the per-component table.
const COMPONENT_COLUMNS: [(&str, usize); 4] = [
    ("component", 24),
    ("value KB", 9),
    ("wire KB", 9),
    ("wire/value", 10),
];

impl SessionDiagnostics {
    /// A multi-line, human-readable panel of these figures: a summary line (tick, entities,
    /// values, peers), then a table with one line per peer: peer id, round-trip time in
    /// milliseconds, kilobytes (1 000 bytes) sent and received on the wire, UDP packets
    /// sent / received, QUIC packets lost, state datagrams sent / acked / lost, keys
    /// waiting for an acknowledgement, snapshot bytes, writes rejected and malformed
    /// messages. When anything was compressed or decoded, a compression table follows, one
    /// line per message kind: the codec, frames sent, their kilobytes before and after the
    /// envelope, the ratio of the two, the share of frames sent with a dictionary, the ids
    /// of the dictionaries held, and the frames received / decode failures (oversized /
    /// unknown dictionary / malformed); then one line per component type: the kilobytes
    /// of its values sent, the wire kilobytes they cost, and the ratio of the two. Every
    /// line ends with `\n`.
    pub fn text_panel(&self) -> String {
        let mut out = String::new();
        let plural =
            |n: u64, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
        let _ = writeln!(
            out,
            "tick {} | {} | {} | {}{}{}",
            self.tick,
            plural(self.entities, "entity", "entities"),
            plural(self.components, "value", "values"),
            plural(self.peers.len() as u64, "peer", "peers"),
            if self.inbound_dropped > 0 {
                format!(" | {} inbound datagrams dropped", self.inbound_dropped)
            } else {
                String::new()
            },
            if self.joins_refused > 0 {
                format!(" | {} refused", plural(self.joins_refused, "join", "joins"))
            } else {
                String::new()
            },
        );
        if self.peers.is_empty() {
            out.push_str("no peer connected\n");
        } else {
            push_row(&mut out, &headings(&COLUMNS), &COLUMNS);
            for peer in &self.peers {
                push_row(&mut out, &peer_row(peer), &COLUMNS);
            }
        }
        let active = |k: &&KindDiagnostics| {
            k.counters.frames_out + k.counters.frames_in + k.counters.decode_failures() > 0
        };
        if self.compression.iter().any(|k| active(&k)) {
            push_row(&mut out, &headings(&KIND_COLUMNS), &KIND_COLUMNS);
            for kind in &self.compression {
                push_row(&mut out, &kind_row(kind), &KIND_COLUMNS);
            }
        }
        if !self.component_wire.is_empty() {
            push_row(&mut out, &headings(&COMPONENT_COLUMNS), &COMPONENT_COLUMNS);
            for component in &self.component_wire {
                push_row(&mut out, &component_row(component), &COMPONENT_COLUMNS);
            }
            if self.unattributed_wire_bytes > 0 {
                let row = vec![
                    "(frames without values)".to_owned(),
                    String::new(),
                    kilobytes(self.unattributed_wire_bytes),
                ];
                push_row(&mut out, &row, &COMPONENT_COLUMNS);
            }
        }
        out
    }
}

fn headings(columns: &[(&str, usize)]) -> Vec<String> {
    columns.iter().map(|(h, _)| (*h).to_owned()).collect()
}

fn codec_name(choice: CodecChoice) -> String {
    match choice {
        CodecChoice::None => "none".to_owned(),
        CodecChoice::Zstd { level } => format!("zstd-{level}"),
        CodecChoice::ZstdDict { level } => format!("zstd-{level}+dict"),
    }
}

fn kind_row(k: &KindDiagnostics) -> Vec<String> {
    let c = &k.counters;
    let dicts = if k.dictionaries.is_empty() {
        "-".to_owned()
    } else {
        k.dictionaries
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(",")
    };
    vec![
        k.kind.name().to_owned(),
        codec_name(k.codec),
        c.frames_out.to_string(),
        kilobytes(c.bytes_in_uncompressed),
        kilobytes(c.bytes_out_framed),
        format!("{:.2}", k.ratio()),
        format!("{:.0}%", 100.0 * k.dictionary_hit_rate()),
        dicts,
        format!(
            "{} {}/{}/{}",
            c.frames_in, c.oversized, c.unknown_dictionary, c.malformed
        ),
    ]
}

fn component_row(c: &ComponentWire) -> Vec<String> {
    let ratio = if c.value_bytes == 0 {
        String::new()
    } else {
        format!("{:.2}", c.wire_bytes as f64 / c.value_bytes as f64)
    };
    vec![
        c.name.clone(),
        kilobytes(c.value_bytes),
        kilobytes(c.wire_bytes),
        ratio,
    ]
}

fn kilobytes(bytes: u64) -> String {
    format!("{:.1}", bytes as f64 / 1000.0)
}

fn peer_row(p: &PeerDiagnostics) -> Vec<String> {
    vec![
        p.peer.to_string(),
        format!("{:.2}", p.rtt.as_secs_f64() * 1000.0),
        kilobytes(p.wire_bytes_sent),
        kilobytes(p.wire_bytes_received),
        format!("{}/{}", p.packets_sent, p.packets_received),
        p.packets_lost.to_string(),
        format!(
            "{}/{}/{}",
            p.outbox.datagrams_sent, p.outbox.datagrams_acked, p.outbox.datagrams_lost
        ),
        p.pending_keys.to_string(),
        p.snapshot_bytes.to_string(),
        p.writes_rejected.to_string(),
        p.malformed.to_string(),
    ]
}

/// Appends one table line: the first column left-aligned, the others right-aligned, each
/// at least its width (a wider cell widens its column on that line only).
fn push_row(out: &mut String, cells: &[String], columns: &[(&str, usize)]) {
    let mut line = String::new();
    for (i, (cell, &(_, width))) in cells.iter().zip(columns).enumerate() {
        if i == 0 {
            let _ = write!(line, "{cell:<width$}");
        } else {
            let _ = write!(line, " {cell:>width$}");
        }
    }
    out.push_str(line.trim_end());
    out.push('\n');
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::proto::outbox::OutboxStats;

    #[test]
    fn the_panel_has_a_summary_and_one_aligned_line_per_peer() {
        let peer = |id, rtt_us| PeerDiagnostics {
            peer: id,
            rtt: Duration::from_micros(rtt_us),
            wire_bytes_sent: 123_456,
            wire_bytes_received: 7_890,
            packets_sent: 321,
            packets_received: 300,
            packets_lost: 4,
            snapshot_bytes: 2048,
            outbox: OutboxStats {
                datagrams_sent: 250,
                datagrams_acked: 240,
                datagrams_lost: 6,
                ..OutboxStats::default()
            },
            pending_keys: 17,
            writes_rejected: 2,
            malformed: 1,
            ..PeerDiagnostics::default()
        };
        let d = SessionDiagnostics {
            tick: 600,
            entities: 1000,
            components: 3000,
            peers: vec![peer(1, 420), peer(12, 15_250)],
            inbound_dropped: 0,
            joins_refused: 0,
            ..SessionDiagnostics::default()
        };
        let panel = d.text_panel();
        let lines: Vec<&str> = panel.lines().collect();
        assert_eq!(lines.len(), 4, "{panel}");
        assert_eq!(lines[0], "tick 600 | 1000 entities | 3000 values | 2 peers");
        assert!(lines[1].starts_with("peer"), "{panel}");
        for heading in ["rtt ms", "KB sent", "KB recv", "datagrams", "malformed"] {
            assert!(lines[1].contains(heading), "{heading}: {panel}");
        }
        let first: Vec<&str> = lines[2].split_whitespace().collect();
        assert_eq!(
            first,
            [
                "1",
                "0.42",
                "123.5",
                "7.9",
                "321/300",
                "4",
                "250/240/6",
                "17",
                "2048",
                "2",
                "1"
            ]
        );
        assert!(lines[3].starts_with("12 "), "{panel}");
        assert!(lines[3].contains("15.25"), "{panel}");
        // Right-aligned columns: both peer lines end at the same column.
        assert_eq!(lines[2].len(), lines[3].len(), "{panel}");
        assert!(panel.ends_with('\n'));
    }

    #[test]
    fn the_panel_shows_compression_per_kind_and_wire_bytes_per_component() {
        use crate::net::compression::{ComponentWire, KindDiagnostics};
        use crate::wire::codec::{CodecCounters, MessageKind};
        use crate::ComponentId;

        let kind = |kind, frames_out, dictionary_out| KindDiagnostics {
            kind,
            codec: CodecChoice::ZstdDict { level: 1 },
            counters: CodecCounters {
                frames_out,
                dictionary_out,
                bytes_in_uncompressed: 10_000,
                bytes_out_framed: 4_000,
                frames_in: 7,
                unknown_dictionary: 2,
                ..CodecCounters::default()
            },
            dictionaries: vec![3, 5],
            samples: 0,
            trained: 0,
            training_failures: 0,
            training: false,
            dictionaries_refused: 0,
        };
        let d = SessionDiagnostics {
            compression: vec![
                kind(MessageKind::SnapshotChunk, 0, 0),
                kind(MessageKind::DeltaFrame, 0, 0),
                kind(MessageKind::Datagram, 40, 30),
            ],
            component_wire: vec![ComponentWire {
                component: ComponentId(7),
                name: "demo.Transform".to_owned(),
                value_bytes: 8_000,
                wire_bytes: 3_000,
            }],
            unattributed_wire_bytes: 1_000,
            ..SessionDiagnostics::default()
        };
        let panel = d.text_panel();
        let lines: Vec<&str> = panel.lines().collect();
        assert_eq!(lines.len(), 2 + 4 + 3, "{panel}");
        assert!(lines[2].starts_with("kind"), "{panel}");
        let datagrams: Vec<&str> = lines[5].split_whitespace().collect();
        assert_eq!(
            datagrams,
            [
                "datagram",
                "zstd-1+dict",
                "40",
                "10.0",
                "4.0",
                "0.40",
                "75%",
                "3,5",
                "7",
                "0/2/0"
            ]
        );
        let transform: Vec<&str> = lines[7].split_whitespace().collect();
        assert_eq!(transform, ["demo.Transform", "8.0", "3.0", "0.38"]);
        assert!(lines[8].starts_with("(frames without values)"), "{panel}");
    }

    #[test]
    fn a_panel_without_peers_says_so_and_counts_drops() {
        let d = SessionDiagnostics {
            tick: 1,
            entities: 1,
            components: 1,
            peers: Vec::new(),
            inbound_dropped: 3,
            joins_refused: 0,
            ..SessionDiagnostics::default()
        };
        assert_eq!(
            d.text_panel(),
            "tick 1 | 1 entity | 1 value | 0 peers | 3 inbound datagrams dropped\nno peer connected\n"
        );
    }
}
