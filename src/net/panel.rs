//! The text panel of a session's diagnostics: what an engine overlay or a log line shows.

use std::fmt::Write;

use super::session::{PeerDiagnostics, SessionDiagnostics};

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

impl SessionDiagnostics {
    /// A multi-line, human-readable panel of these figures: a summary line (tick, entities,
    /// values, peers), then a table with one line per peer: peer id, round-trip time in
    /// milliseconds, kilobytes (1 000 bytes) sent and received on the wire, UDP packets
    /// sent / received, QUIC packets lost, state datagrams sent / acked / lost, keys
    /// waiting for an acknowledgement, snapshot bytes, writes rejected and malformed
    /// messages. Every line ends with `\n`.
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
            return out;
        }
        let header: Vec<String> = COLUMNS.iter().map(|(h, _)| (*h).to_owned()).collect();
        push_row(&mut out, &header);
        for peer in &self.peers {
            push_row(&mut out, &peer_row(peer));
        }
        out
    }
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
fn push_row(out: &mut String, cells: &[String]) {
    let mut line = String::new();
    for (i, (cell, (_, width))) in cells.iter().zip(COLUMNS).enumerate() {
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
    use crate::net::outbox::OutboxStats;

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
    fn a_panel_without_peers_says_so_and_counts_drops() {
        let d = SessionDiagnostics {
            tick: 1,
            entities: 1,
            components: 1,
            peers: Vec::new(),
            inbound_dropped: 3,
            joins_refused: 0,
        };
        assert_eq!(
            d.text_panel(),
            "tick 1 | 1 entity | 1 value | 0 peers | 3 inbound datagrams dropped\nno peer connected\n"
        );
    }
}
