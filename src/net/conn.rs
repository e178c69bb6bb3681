//! The driver's connections: the tasks that accept, admit and dial them and move their
//! bytes (on the session's runtime), and what the engine thread holds of each
//! ([`ConnHandle`]). No protocol rule lives here: every decision is the core's
//! ([`crate::proto`]); these tasks read bounded messages, hand them over, and do what the
//! core's outputs say.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::admission::{Gate, Ticket, Verdict};
use super::framing::{read_message, write_message, FramingError};
use super::pacing::{decode_cost, DecodePacer};
use super::tls;
use crate::proto::{
    ConnId, DisconnectCause, Path, CLOSE_BROKEN_STREAM, CLOSE_REFUSED, CLOSE_SHUTDOWN,
    MAX_JOIN_ANSWER, MAX_JOIN_REQUEST,
};

/// How long a client waits for the answer to its join request, and the host for its
/// engine thread to decide on a request it read.
const JOIN_TIMEOUT: Duration = Duration::from_secs(5);
/// How long what was sent on a connection's stream gets to arrive before the connection
/// closes (a refusal, a goodbye).
const CLOSE_GRACE: Duration = Duration::from_secs(1);
/// Messages queued from the engine thread to one peer's stream writer.
const STREAM_QUEUE: usize = 1024;

/// What the network tasks hand to the engine thread.
pub(super) enum NetEvent {
    /// Host: a connection presented its join request.
    Join {
        id: ConnId,
        handle: ConnHandle,
        from: SocketAddr,
        bytes: Vec<u8>,
    },
    /// Client: connected to the host; the request goes out on the handle's stream and the
    /// answer comes as the connection's first stream message.
    Connected {
        id: ConnId,
        handle: ConnHandle,
    },
    Datagram {
        id: ConnId,
        bytes: Bytes,
        at: Instant,
    },
    Stream {
        id: ConnId,
        bytes: Vec<u8>,
    },
    Closed {
        id: ConnId,
        reason: String,
        cause: DisconnectCause,
    },
    /// Client: dialing the host gave no connection.
    Failed {
        reason: String,
        cause: DisconnectCause,
    },
}

/// How one side reads its peer's connection once the core admitted it.
pub(super) struct PeerRules {
    /// Longest stream message the peer may send: a longer one breaks the stream and ends
    /// the connection.
    pub(super) max_message: usize,
    /// With a pacer, what the messages would decompress to is paced before they reach the
    /// engine thread (host: a client's stream).
    pub(super) pacer: Option<DecodePacer>,
    /// What the peer's goodbye (its stream finished cleanly) means here.
    pub(super) goodbye: Goodbye,
}

/// What a peer's goodbye means to this side: it is leaving, on purpose.
#[derive(Clone, Copy)]
pub(super) struct Goodbye {
    pub(super) reason: &'static str,
    pub(super) cause: DisconnectCause,
}

/// What the engine thread holds of a connection: its stream writer (and what waits for
/// room in it), the pacing of its datagrams, and until the core decides, the way to tell
/// the connection's task.
pub(super) struct ConnHandle {
    pub(super) conn: quinn::Connection,
    stream: Option<mpsc::Sender<Vec<u8>>>,
    writer: Option<JoinHandle<()>>,
    /// Stream messages waiting for room in the writer's queue.
    backlog: VecDeque<Vec<u8>>,
    pacer: DatagramPacer,
    verdict: Option<oneshot::Sender<PeerRules>>,
    /// Host: the connection's place among those awaiting admission.
    ticket: Option<Ticket>,
}

impl ConnHandle {
    /// Must run on the session's runtime (it starts the stream's writer).
    fn new(
        conn: quinn::Connection,
        send: quinn::SendStream,
        verdict: oneshot::Sender<PeerRules>,
        ticket: Option<Ticket>,
    ) -> Self {
        let (stream, rx) = mpsc::channel(STREAM_QUEUE);
        ConnHandle {
            conn,
            stream: Some(stream),
            writer: Some(tokio::spawn(write_stream(send, rx))),
            backlog: VecDeque::new(),
            pacer: DatagramPacer::default(),
            verdict: Some(verdict),
            ticket,
        }
    }

    pub(super) fn send_reliable(&mut self, bytes: Vec<u8>) {
        self.backlog.push_back(bytes);
    }

    /// Adds a datagram to this tick's `batch` (see [`send_batch`]).
    pub(super) fn send_unreliable(&mut self, bytes: Vec<u8>, batch: &mut DatagramBatch) {
        self.pacer.handed(bytes.len());
        batch.push((self.conn.clone(), Bytes::from(bytes)));
    }

    /// Hands queued stream messages to the writer, as far as its queue has room.
    pub(super) fn flush(&mut self) {
        let Some(stream) = &self.stream else { return };
        while let Some(message) = self.backlog.pop_front() {
            match stream.try_send(message) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(message)) => {
                    self.backlog.push_front(message);
                    break;
                }
                Err(mpsc::error::TrySendError::Closed(_)) => break,
            }
        }
    }

    /// The core admitted the connection: its task reads by `rules` from now on.
    pub(super) fn admit(&mut self, rules: PeerRules) {
        self.ticket = None;
        if let Some(verdict) = self.verdict.take() {
            let _ = verdict.send(rules);
        }
    }

    /// Finishes this side's stream after what is queued on it (the writer flushes, then
    /// finishes).
    pub(super) fn finish(&mut self) {
        self.flush();
        self.stream = None;
    }

    /// Closes the connection once what was queued on its stream had [`CLOSE_GRACE`] to
    /// arrive.
    pub(super) fn close(mut self, code: u32, reason: String, runtime: &tokio::runtime::Handle) {
        self.finish();
        let (conn, writer) = (self.conn, self.writer.take());
        runtime.spawn(async move {
            if let Some(writer) = writer {
                let _ = tokio::time::timeout(CLOSE_GRACE, writer).await;
            }
            conn.close(code.into(), reason.as_bytes());
        });
    }

    /// What the path takes this tick (see [`DatagramPacer`]).
    pub(super) fn path(&mut self) -> Path {
        Path {
            max_datagram: self.conn.max_datagram_size().unwrap_or(0),
            rtt: self.conn.rtt(),
            budget: self
                .pacer
                .budget(self.conn.datagram_send_buffer_space(), usize::MAX),
        }
    }

    /// Ends this tick's sending (see [`DatagramPacer::sent`]).
    pub(super) fn sent(&mut self) {
        self.pacer.sent();
    }
}

/// Datagrams of one tick, with the connections they go on.
pub(super) type DatagramBatch = Vec<(quinn::Connection, Bytes)>;

/// Hands a tick's datagrams to the network runtime in one task. Sent one by one from the
/// engine thread, each datagram woke its connection's driver on the network thread, which
/// often ran before the next was queued: a packet and a system call per datagram, and a
/// thread wake-up per datagram. In one task the runtime wakes once, and since its one
/// worker runs the task to the end before any driver, every connection's datagrams are
/// queued when its driver runs and leave in as few packets as they fit.
pub(super) fn send_batch(runtime: &tokio::runtime::Runtime, batch: DatagramBatch) {
    runtime.spawn(async move {
        for (conn, bytes) in batch {
            // A full send buffer drops the oldest: the outbox sends newer state, poses
            // follow.
            let _ = conn.send_datagram(bytes);
        }
    });
}

/// Keeps quinn's datagram queue short. Congestion control may let less out than the
/// outbox would send; what waits in the queue goes stale and adds latency, and a full
/// queue drops its oldest datagrams silently. So while the queue did not empty between
/// two ticks, a tick adds about what the path drained in one tick, and keys that do not
/// fit stay pending in the outbox, where newer state replaces them.
#[derive(Debug, Default)]
struct DatagramPacer {
    /// The queue's capacity: the most free space ever seen.
    capacity: usize,
    /// Bytes queued when this tick's budget was read.
    queued_at_budget: usize,
    /// Bytes handed to the queue since.
    handed: usize,
    /// Bytes queued right after the previous tick's sending.
    queued_after_send: usize,
    /// Smoothed bytes the queue drained per tick while it was not empty.
    drained_per_tick: usize,
}

impl DatagramPacer {
    /// The bytes this tick may queue, given the queue's free `space` and the configured
    /// per-tick `budget`.
    fn budget(&mut self, space: usize, budget: usize) -> usize {
        self.capacity = self.capacity.max(space);
        let queued = self.capacity - space;
        self.queued_at_budget = queued;
        self.handed = 0;
        if queued == 0 {
            // Everything went out: the path is not the limit.
            return budget.min(space);
        }
        let drained = self.queued_after_send.saturating_sub(queued);
        self.drained_per_tick = (self.drained_per_tick * 3 + drained) / 4;
        budget
            .min(space)
            .min((self.drained_per_tick * 2).saturating_sub(queued))
    }

    /// Notes `bytes` handed to the queue this tick.
    fn handed(&mut self, bytes: usize) {
        self.handed += bytes;
    }

    /// Notes what the queue holds after this tick's sending: what it held at the budget and
    /// what the tick handed to it (the datagrams reach it on the network thread, after
    /// this call).
    fn sent(&mut self) {
        self.queued_after_send = (self.queued_at_budget + self.handed).min(self.capacity);
    }
}

/// Writes the engine's stream messages in order; once the engine drops its end, finishes
/// the stream and gives the peer a moment to take what was written.
async fn write_stream(mut send: quinn::SendStream, mut rx: mpsc::Receiver<Vec<u8>>) {
    while let Some(message) = rx.recv().await {
        if write_message(&mut send, &message).await.is_err() {
            return;
        }
    }
    let _ = send.finish();
    let _ = tokio::time::timeout(CLOSE_GRACE, send.stopped()).await;
}

/// What the accept loop shares with every connection task.
#[derive(Clone)]
pub(super) struct Accepting {
    pub(super) tx: mpsc::Sender<NetEvent>,
    pub(super) dropped: Arc<AtomicU64>,
    pub(super) next_conn: Arc<AtomicU64>,
    pub(super) admission_timeout: Duration,
}

/// Host: accepts connections and reads each one's join request, at most as many at once
/// as `gate` allows (see [`super::admission`]), each within the admission timeout from its
/// first packet to its join request.
pub(super) async fn accept_loop(endpoint: quinn::Endpoint, gate: Arc<Gate>, shared: Accepting) {
    while let Some(incoming) = endpoint.accept().await {
        let from = incoming.remote_address();
        let ticket = match gate.enter(from.ip(), incoming.remote_address_validated()) {
            Verdict::Admit(ticket) => ticket,
            Verdict::Retry => {
                // A retry holds nothing here; the client comes back with its address
                // validated (or not at all). Refused when quinn cannot ask for one.
                if let Err(e) = incoming.retry() {
                    e.into_incoming().refuse();
                }
                continue;
            }
            Verdict::Refuse => {
                incoming.refuse();
                continue;
            }
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            let deadline = tokio::time::Instant::now() + shared.admission_timeout;
            // Handshake failures (wrong ALPN, TLS errors) and handshakes past the deadline
            // end here; nothing was allocated for the peer.
            let Ok(Ok(conn)) = tokio::time::timeout_at(deadline, incoming).await else {
                return;
            };
            admit(conn, shared, deadline, ticket).await;
        });
    }
}

/// Reads the join request (by `deadline`) and hands it to the engine thread, whose core
/// decides; `ticket` holds the connection's place among those awaiting admission until
/// then. Until admitted, the connection may hold at most
/// [`tls::ADMISSION_RECEIVE_WINDOW`] of stream data, and its datagrams are dropped as they
/// come; an admitted peer's window is widened to [`tls::ADMITTED_RECEIVE_WINDOW`].
async fn admit(
    conn: quinn::Connection,
    shared: Accepting,
    deadline: tokio::time::Instant,
    ticket: Ticket,
) {
    let request = async {
        let (send, mut recv) = conn.accept_bi().await.ok()?;
        let bytes = read_message(&mut recv, MAX_JOIN_REQUEST).await.ok()?;
        Some((send, recv, bytes))
    };
    // Nothing is owed to a peer before admission: its datagrams are read and dropped, so
    // that they do not pile up in quinn's buffer (nor pin its receive buffers).
    let drain = || async { while conn.read_datagram().await.is_ok() {} };
    let request = tokio::time::timeout_at(deadline, async {
        tokio::select! {
            request = request => request,
            () = drain() => None,
        }
    })
    .await;
    let Ok(Some((send, recv, bytes))) = request else {
        conn.close(CLOSE_REFUSED.into(), b"no join request");
        return;
    };
    let id = ConnId(shared.next_conn.fetch_add(1, Ordering::Relaxed));
    let (verdict, decided) = oneshot::channel();
    let handle = ConnHandle::new(conn.clone(), send, verdict, Some(ticket));
    let from = conn.remote_address();
    let event = NetEvent::Join {
        id,
        handle,
        from,
        bytes,
    };
    if shared.tx.send(event).await.is_err() {
        return;
    }
    let decided = tokio::time::timeout(JOIN_TIMEOUT, async {
        tokio::select! {
            rules = decided => rules.ok(),
            () = drain() => None,
        }
    })
    .await;
    // Refused (the engine closes the connection), gone, or not decided in time.
    let Ok(Some(rules)) = decided else {
        return;
    };
    conn.set_receive_window(tls::ADMITTED_RECEIVE_WINDOW.into());
    run_connection(conn, id, recv, shared.tx, shared.dropped, rules).await;
}

/// Where and how a client dials its host.
pub(super) struct Dial {
    pub(super) id: ConnId,
    pub(super) addr: SocketAddr,
    pub(super) server_name: String,
    pub(super) connect_timeout: Duration,
}

/// Client: connects, opens the stream, hands the connection to the engine thread (whose
/// core sends the join request), reads the answer, and once the core admitted the
/// connection, runs it.
pub(super) async fn connect(
    endpoint: quinn::Endpoint,
    dial: Dial,
    tx: mpsc::Sender<NetEvent>,
    dropped: Arc<AtomicU64>,
) {
    let Dial { id, addr, .. } = dial;
    let failed = |reason: String, cause: DisconnectCause| NetEvent::Failed { reason, cause };
    let conn = match endpoint.connect(addr, &dial.server_name) {
        Ok(connecting) => match tokio::time::timeout(dial.connect_timeout, connecting).await {
            Ok(Ok(conn)) => conn,
            Ok(Err(e)) => {
                let _ = tx.send(failed(describe(&e), cause_of(&e))).await;
                return;
            }
            Err(_) => {
                let reason = format!(
                    "no answer from {addr} within {} ms: is a host running there?",
                    dial.connect_timeout.as_millis()
                );
                let _ = tx.send(failed(reason, DisconnectCause::Unreachable)).await;
                return;
            }
        },
        Err(e) => {
            let reason = format!("cannot connect to {addr}: {e}");
            let _ = tx.send(failed(reason, DisconnectCause::Unreachable)).await;
            return;
        }
    };
    let closed = |reason: String, cause: DisconnectCause| NetEvent::Closed { id, reason, cause };
    let (send, mut recv) = match conn.open_bi().await {
        Ok(streams) => streams,
        Err(e) => {
            let _ = tx.send(failed(describe(&e), cause_of(&e))).await;
            return;
        }
    };
    let (verdict, decided) = oneshot::channel();
    let handle = ConnHandle::new(conn.clone(), send, verdict, None);
    if tx.send(NetEvent::Connected { id, handle }).await.is_err() {
        return;
    }
    match tokio::time::timeout(JOIN_TIMEOUT, read_message(&mut recv, MAX_JOIN_ANSWER)).await {
        Ok(Ok(bytes)) => {
            if tx.send(NetEvent::Stream { id, bytes }).await.is_err() {
                return;
            }
        }
        Ok(Err(_)) => {
            let (reason, cause) = conn.close_reason().map_or_else(
                || {
                    (
                        "the host closed the join stream".to_owned(),
                        DisconnectCause::Protocol,
                    )
                },
                |e| (describe(&e), cause_of(&e)),
            );
            let _ = tx.send(closed(reason, cause)).await;
            return;
        }
        Err(_) => {
            conn.close(CLOSE_SHUTDOWN.into(), b"no answer to the join request");
            let reason = "the host did not answer the join request".to_owned();
            let _ = tx.send(closed(reason, DisconnectCause::TimedOut)).await;
            return;
        }
    }
    // Refused, or a malformed answer: the engine closes the connection.
    let Ok(rules) = decided.await else {
        return;
    };
    run_connection(conn, id, recv, tx, dropped, rules).await;
}

/// Reads datagrams and stream messages of an admitted connection until it closes, by
/// `rules`.
async fn run_connection(
    conn: quinn::Connection,
    id: ConnId,
    mut recv: quinn::RecvStream,
    tx: mpsc::Sender<NetEvent>,
    dropped: Arc<AtomicU64>,
    rules: PeerRules,
) {
    let PeerRules {
        max_message,
        mut pacer,
        goodbye,
    } = rules;
    let stream_tx = tx.clone();
    let stream_conn = conn.clone();
    // Ends true when the peer finished its stream cleanly: its goodbye.
    let mut reader = tokio::spawn(async move {
        loop {
            let bytes = match read_message(&mut recv, max_message).await {
                Ok(bytes) => bytes,
                Err(FramingError::Finished) => return true,
                Err(e @ FramingError::TooLarge { .. }) => {
                    let reason = format!("stream broken: {e}");
                    stream_conn.close(CLOSE_BROKEN_STREAM.into(), reason.as_bytes());
                    return false;
                }
                Err(_) => return false,
            };
            if let Some(pacer) = &mut pacer {
                pacer.take(decode_cost(&bytes, max_message)).await;
            }
            if stream_tx
                .send(NetEvent::Stream { id, bytes })
                .await
                .is_err()
            {
                return false;
            }
        }
    });
    let mut reading = true;
    let (reason, cause) = loop {
        tokio::select! {
            datagram = conn.read_datagram() => match datagram {
                Ok(bytes) => {
                    // Datagrams are droppable by design; a full queue drops, and counts.
                    let at = Instant::now();
                    if tx.try_send(NetEvent::Datagram { id, bytes, at }).is_err() {
                        dropped.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Err(e) => break (describe(&e), cause_of(&e)),
            },
            finished = &mut reader, if reading => {
                reading = false;
                if matches!(finished, Ok(true)) {
                    // Every message before the goodbye has reached the engine queue.
                    // Closing answers it: the peer stops waiting (see `Session::drop`).
                    conn.close(CLOSE_SHUTDOWN.into(), goodbye.reason.as_bytes());
                    break (goodbye.reason.to_owned(), goodbye.cause);
                }
            }
        }
    };
    reader.abort();
    let _ = tx.send(NetEvent::Closed { id, reason, cause }).await;
}

/// The cause of a connection error, as a kind an engine can act on.
pub(super) fn cause_of(error: &quinn::ConnectionError) -> DisconnectCause {
    use quinn::ConnectionError as E;
    match error {
        E::ApplicationClosed(close) => match u32::try_from(u64::from(close.error_code)) {
            Ok(CLOSE_REFUSED) => DisconnectCause::Refused,
            Ok(CLOSE_BROKEN_STREAM) => DisconnectCause::Protocol,
            _ => DisconnectCause::HostClosed,
        },
        E::TimedOut => DisconnectCause::TimedOut,
        E::ConnectionClosed(close)
            if close.error_code == quinn::TransportErrorCode::CONNECTION_REFUSED =>
        {
            DisconnectCause::TimedOut
        }
        E::LocallyClosed | E::CidsExhausted => DisconnectCause::Local,
        // TLS alerts travel as crypto errors (0x100 + alert): the handshake failed.
        E::TransportError(e) if (0x100..0x200).contains(&u64::from(e.code)) => {
            DisconnectCause::Certificate
        }
        E::ConnectionClosed(close) if (0x100..0x200).contains(&u64::from(close.error_code)) => {
            DisconnectCause::Certificate
        }
        E::Reset => DisconnectCause::HostClosed,
        E::TransportError(_) | E::ConnectionClosed(_) | E::VersionMismatch => {
            DisconnectCause::Protocol
        }
    }
}

/// A connection error in words, with the host's reason when it gave one.
fn describe(error: &quinn::ConnectionError) -> String {
    match error {
        quinn::ConnectionError::ApplicationClosed(close) => {
            let reason = String::from_utf8_lossy(&close.reason);
            if u64::from(close.error_code) == u64::from(CLOSE_REFUSED) {
                format!("join refused: {reason}")
            } else {
                format!("closed by the peer: {reason}")
            }
        }
        quinn::ConnectionError::ConnectionClosed(close)
            if close.error_code == quinn::TransportErrorCode::CONNECTION_REFUSED =>
        {
            "the host refused the connection: it is admitting too many at once, try again"
                .to_owned()
        }
        quinn::ConnectionError::TimedOut => "connection timed out (idle)".to_owned(),
        quinn::ConnectionError::LocallyClosed => "closed locally".to_owned(),
        other => other.to_string(),
    }
}
