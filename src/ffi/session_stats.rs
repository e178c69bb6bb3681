//! Session figures: counts, per-connection transport figures and the text panel.

use super::boundary::{boundary, FfiError};
use super::session::{with_object, with_session, ThetaSession};
use super::{check_out, write_out, ThetaStatus};
use crate::net::session::PeerDiagnostics;

/// Figures of a session.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct ThetaSessionStats {
    /// The current tick (host) or the newest host tick applied (client).
    pub tick: u64,
    /// Live entities.
    pub entities: u64,
    /// Stored (entity, component) values.
    pub components: u64,
    /// Connections: the host's clients, or 1 on a client connected to its host.
    pub peer_count: u64,
    /// State datagrams dropped because the inbound queue was full.
    pub inbound_dropped: u64,
}

/// Transport figures of one connection of a session. Blittable.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct ThetaPeerStats {
    /// The peer at the other end (on a client: the client's own id).
    pub peer: u16,
    /// Padding; 0.
    pub reserved: [u8; 6],
    /// Smoothed round-trip time, microseconds.
    pub rtt_us: u64,
    /// UDP bytes sent, QUIC headers included.
    pub wire_bytes_sent: u64,
    /// UDP bytes received.
    pub wire_bytes_received: u64,
    /// UDP datagrams sent.
    pub packets_sent: u64,
    /// UDP datagrams received.
    pub packets_received: u64,
    /// QUIC packets the connection counted as lost.
    pub packets_lost: u64,
    /// Payload bytes of state datagrams and stream messages sent.
    pub payload_bytes_sent: u64,
    /// Payload bytes received.
    pub payload_bytes_received: u64,
    /// Encoded snapshot bytes sent (host) or received (client).
    pub snapshot_bytes: u64,
    /// State datagrams sent.
    pub datagrams_sent: u64,
    /// State datagrams the peer acknowledged.
    pub datagrams_acked: u64,
    /// State datagrams never acknowledged (their keys were re-sent as newer state).
    pub datagrams_lost: u64,
    /// Encoded bytes of the state datagrams sent.
    pub datagram_bytes: u64,
    /// Values too large for a datagram, sent on the reliable stream.
    pub stream_frames: u64,
    /// Keys skipped in the last tick because the byte budget was spent.
    pub deferred_keys: u64,
    /// Keys waiting for an acknowledgement.
    pub pending_keys: u64,
    /// Writes of this peer refused (not the owner).
    pub writes_rejected: u64,
    /// State datagrams or frames from this peer that failed validation.
    pub malformed: u64,
}

/// Writes the session's figures.
///
/// # Safety
/// `out_stats` must point to a writable `ThetaSessionStats`.
#[no_mangle]
pub unsafe extern "C" fn theta_session_stats(
    session: ThetaSession,
    out_stats: *mut ThetaSessionStats,
) -> ThetaStatus {
    boundary("theta_session_stats", || {
        check_out(out_stats, "out_stats")?;
        let stats = with_object(session, |o| {
            // A client still resolving its host's name has nothing to count yet.
            let Some(session) = o.ready() else {
                return Ok(ThetaSessionStats::default());
            };
            let d = session.diagnostics();
            Ok(ThetaSessionStats {
                tick: d.tick,
                entities: d.entities,
                components: d.components,
                peer_count: d.peers.len() as u64,
                inbound_dropped: d.inbound_dropped,
            })
        })?;
        // SAFETY: checked non-NULL.
        unsafe { write_out(out_stats, stats) };
        Ok(())
    })
}

fn peer_stats(p: &PeerDiagnostics) -> ThetaPeerStats {
    ThetaPeerStats {
        peer: p.peer,
        reserved: [0; 6],
        rtt_us: u64::try_from(p.rtt.as_micros()).unwrap_or(u64::MAX),
        wire_bytes_sent: p.wire_bytes_sent,
        wire_bytes_received: p.wire_bytes_received,
        packets_sent: p.packets_sent,
        packets_received: p.packets_received,
        packets_lost: p.packets_lost,
        payload_bytes_sent: p.payload_bytes_sent,
        payload_bytes_received: p.payload_bytes_received,
        snapshot_bytes: p.snapshot_bytes,
        datagrams_sent: p.outbox.datagrams_sent,
        datagrams_acked: p.outbox.datagrams_acked,
        datagrams_lost: p.outbox.datagrams_lost,
        datagram_bytes: p.outbox.datagram_bytes,
        stream_frames: p.outbox.stream_frames,
        deferred_keys: p.outbox.deferred_keys,
        pending_keys: p.pending_keys,
        writes_rejected: p.writes_rejected,
        malformed: p.malformed,
    }
}

/// Writes the figures of each connection (the host's clients in peer order; a client's
/// one connection to its host, once joined) to `out_stats` and their number to
/// `out_count`. When `capacity` is too small, returns `THETA_STATUS_BUFFER_TOO_SMALL` with
/// the number of connections in `out_count` (the one output written on that status):
/// pass NULL and 0 to ask for it.
///
/// # Safety
/// `out_stats` must point to `capacity` writable `ThetaPeerStats` (may be NULL when
/// `capacity` is 0); `out_count` to a writable `size_t`.
#[no_mangle]
pub unsafe extern "C" fn theta_session_peer_stats(
    session: ThetaSession,
    out_stats: *mut ThetaPeerStats,
    capacity: usize,
    out_count: *mut usize,
) -> ThetaStatus {
    boundary("theta_session_peer_stats", || {
        check_out(out_count, "out_count")?;
        if capacity > 0 && out_stats.is_null() {
            return Err(FfiError::null("out_stats"));
        }
        let peers = with_object(session, |o| {
            Ok(o.ready().map(|s| s.diagnostics().peers).unwrap_or_default())
        })?;
        // SAFETY: checked non-NULL.
        unsafe { write_out(out_count, peers.len()) };
        if peers.len() > capacity {
            return Err(FfiError::new(
                ThetaStatus::BufferTooSmall,
                format!("{} connections, room for {capacity}", peers.len()),
            ));
        }
        for (i, peer) in peers.iter().enumerate() {
            // SAFETY: `i < peers.len() <= capacity` and the caller gives `capacity`
            // writable structs (non-NULL since capacity > 0 here).
            unsafe { out_stats.add(i).write(peer_stats(peer)) };
        }
        Ok(())
    })
}

/// Copies a human-readable panel of the session's figures (a summary line, then one line
/// per connection: peer, RTT, wire KB sent and received, packets, losses, datagrams sent /
/// acked / lost, pending keys, snapshot bytes, writes rejected, malformed; then, once
/// anything was compressed, one line per message kind: codec, frames, KB before and after
/// compression, ratio, dictionary hit rate, dictionaries held, frames received and decode
/// failures; and one line per component type: value KB sent and the wire KB they cost) into `buf`
/// (UTF-8, lines ending in `\n`, NUL-terminated, truncated to `len - 1` bytes) and writes
/// the full length (without NUL) to `out_len`. `buf` may be NULL when `len` is 0, to ask
/// for the length; the panel may grow between two calls.
///
/// # Safety
/// `buf` must point to `len` writable bytes; `out_len` to a writable `size_t`.
#[no_mangle]
pub unsafe extern "C" fn theta_session_diagnostics_text(
    session: ThetaSession,
    buf: *mut u8,
    len: usize,
    out_len: *mut usize,
) -> ThetaStatus {
    boundary("theta_session_diagnostics_text", || {
        check_out(out_len, "out_len")?;
        if buf.is_null() && len > 0 {
            return Err(FfiError::null("buf"));
        }
        let panel = with_session(session, |s| Ok(s.diagnostics().text_panel()))?;
        if len > 0 {
            let n = panel.len().min(len - 1);
            // SAFETY: the caller gives `len` writable bytes at `buf` (checked non-NULL); we
            // write `n + 1 <= len` of them.
            unsafe {
                std::ptr::copy_nonoverlapping(panel.as_ptr(), buf, n);
                *buf.add(n) = 0;
            }
        }
        // SAFETY: checked non-NULL.
        unsafe { write_out(out_len, panel.len()) };
        Ok(())
    })
}
