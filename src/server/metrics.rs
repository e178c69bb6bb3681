//! The server's health and metrics endpoint: `GET /healthz` (200 `ok` while serving, 503
//! `draining` while draining) and `GET /metrics` (Prometheus text exposition, version
//! 0.0.4), on its own local port, from a [`Metrics`] of atomics the server fills in.
//!
//! Served by hyper's HTTP/1 connection alone, on the caller's tokio runtime. A request's
//! head is bounded (8 KiB, 32 headers, read within 5 s), its body never read, at most 32
//! connections are served at once (more are closed at accept) and each is closed after
//! one response.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::fmt::Write as _;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, ALLOW, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{oneshot, Semaphore};
use tokio::task::JoinHandle;

use crate::server::RoomId;

/// Connections served at once; more are closed as they are accepted.
pub const MAX_CONNECTIONS: usize = 32;
/// Bytes of a request head (request line and headers) read at most.
pub const MAX_REQUEST_HEAD_BYTES: usize = 8 * 1024;
/// Time a client has to send its request head.
const HEAD_TIMEOUT: Duration = Duration::from_secs(5);
/// Time one connection may take in all.
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the server refused a client or a message, as the `reason` label of
/// `theta_refusals_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// A join token that did not verify, expired, or of an old format.
    BadToken,
    /// A token for a room this server will not open.
    UnknownRoom,
    /// A new room while `max_rooms` are open.
    TooManyRooms,
    /// A join to a room with `max_peers` peers.
    RoomFull,
    /// A client whose registry differs from its room's.
    RegistryMismatch,
    /// Over a per-room limit (entities, bytes per value, bytes per second).
    OverLimit,
    /// A join while the server drains.
    Draining,
    /// Bytes that did not decode.
    Malformed,
}

impl Refusal {
    /// Every reason, in label order.
    pub const ALL: [Refusal; 8] = [
        Refusal::BadToken,
        Refusal::UnknownRoom,
        Refusal::TooManyRooms,
        Refusal::RoomFull,
        Refusal::RegistryMismatch,
        Refusal::OverLimit,
        Refusal::Draining,
        Refusal::Malformed,
    ];

    /// The `reason` label.
    pub fn label(self) -> &'static str {
        match self {
            Refusal::BadToken => "bad_token",
            Refusal::UnknownRoom => "unknown_room",
            Refusal::TooManyRooms => "too_many_rooms",
            Refusal::RoomFull => "room_full",
            Refusal::RegistryMismatch => "registry_mismatch",
            Refusal::OverLimit => "over_limit",
            Refusal::Draining => "draining",
            Refusal::Malformed => "malformed",
        }
    }
}

/// Upper bounds of the tick time histogram's buckets, in seconds (a 60 Hz tick is 0.0167).
pub const TICK_BUCKETS: [f64; 10] = [
    0.000_25, 0.000_5, 0.001, 0.002, 0.004, 0.008, 0.016_7, 0.033_3, 0.1, 1.0,
];

/// What one room reports under its own `room` label.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RoomFigures {
    /// Peers connected to it.
    pub peers: u64,
    /// Entities it holds.
    pub entities: u64,
}

/// The server's figures, written by the server from any thread and read by the endpoint.
#[derive(Debug, Default)]
pub struct Metrics {
    rooms: AtomicU64,
    peers: AtomicU64,
    bytes_sent: AtomicU64,
    bytes_received: AtomicU64,
    refusals: [AtomicU64; Refusal::ALL.len()],
    /// Per bucket of [`TICK_BUCKETS`] and one past the last, not cumulative.
    tick_buckets: [AtomicU64; TICK_BUCKETS.len() + 1],
    tick_count: AtomicU64,
    tick_nanos: AtomicU64,
    draining: AtomicBool,
    per_room: Mutex<BTreeMap<RoomId, RoomFigures>>,
}

impl Metrics {
    /// Figures at zero, serving (not draining).
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the number of open rooms.
    pub fn set_rooms(&self, rooms: u64) {
        self.rooms.store(rooms, Relaxed);
    }

    /// Sets the number of connected peers over all rooms.
    pub fn set_peers(&self, peers: u64) {
        self.peers.store(peers, Relaxed);
    }

    /// Counts bytes sent (UDP payloads, all rooms).
    pub fn add_bytes_sent(&self, bytes: u64) {
        self.bytes_sent.fetch_add(bytes, Relaxed);
    }

    /// Counts bytes received (UDP payloads, all rooms).
    pub fn add_bytes_received(&self, bytes: u64) {
        self.bytes_received.fetch_add(bytes, Relaxed);
    }

    /// Counts one refusal.
    pub fn refuse(&self, reason: Refusal) {
        self.refusals[reason as usize].fetch_add(1, Relaxed);
    }

    /// Records how long one tick of a room (or of the server) took.
    pub fn observe_tick(&self, took: Duration) {
        let seconds = took.as_secs_f64();
        let bucket = TICK_BUCKETS
            .iter()
            .position(|&le| seconds <= le)
            .unwrap_or(TICK_BUCKETS.len());
        self.tick_buckets[bucket].fetch_add(1, Relaxed);
        self.tick_count.fetch_add(1, Relaxed);
        let nanos = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        self.tick_nanos.fetch_add(nanos, Relaxed);
    }

    /// Sets or replaces the figures of `room`.
    pub fn set_room(&self, room: &RoomId, figures: RoomFigures) {
        self.rooms_map().insert(room.clone(), figures);
    }

    /// Forgets `room` (closed): its labelled series disappear.
    pub fn remove_room(&self, room: &RoomId) {
        self.rooms_map().remove(room);
    }

    fn rooms_map(&self) -> std::sync::MutexGuard<'_, BTreeMap<RoomId, RoomFigures>> {
        // A panic while holding it cannot leave the map half-changed: insert and remove
        // are single calls.
        self.per_room
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Marks the server as draining: `/healthz` answers 503 from now on.
    pub fn set_draining(&self, draining: bool) {
        self.draining.store(draining, Relaxed);
    }

    /// Whether the server drains.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Relaxed)
    }

    /// The figures in Prometheus text exposition format (version 0.0.4).
    pub fn render(&self) -> String {
        let mut text = String::with_capacity(2048);
        line_family(&mut text, "theta_rooms", "gauge", "Rooms open.");
        let _ = writeln!(text, "theta_rooms {}", self.rooms.load(Relaxed));
        line_family(
            &mut text,
            "theta_peers",
            "gauge",
            "Peers connected, all rooms.",
        );
        let _ = writeln!(text, "theta_peers {}", self.peers.load(Relaxed));
        line_family(
            &mut text,
            "theta_draining",
            "gauge",
            "1 while the server drains (refuses joins, saves, exits).",
        );
        let _ = writeln!(text, "theta_draining {}", u8::from(self.is_draining()));
        line_family(
            &mut text,
            "theta_bytes_sent_total",
            "counter",
            "UDP payload bytes sent, all rooms.",
        );
        let _ = writeln!(
            text,
            "theta_bytes_sent_total {}",
            self.bytes_sent.load(Relaxed)
        );
        line_family(
            &mut text,
            "theta_bytes_received_total",
            "counter",
            "UDP payload bytes received, all rooms.",
        );
        let _ = writeln!(
            text,
            "theta_bytes_received_total {}",
            self.bytes_received.load(Relaxed)
        );
        line_family(
            &mut text,
            "theta_refusals_total",
            "counter",
            "Clients or messages refused, by reason.",
        );
        for reason in Refusal::ALL {
            let _ = writeln!(
                text,
                "theta_refusals_total{{reason=\"{}\"}} {}",
                reason.label(),
                self.refusals[reason as usize].load(Relaxed)
            );
        }
        line_family(
            &mut text,
            "theta_tick_seconds",
            "histogram",
            "Time one room tick took.",
        );
        let mut cumulative = 0;
        for (i, le) in TICK_BUCKETS.iter().enumerate() {
            cumulative += self.tick_buckets[i].load(Relaxed);
            let _ = writeln!(
                text,
                "theta_tick_seconds_bucket{{le=\"{le}\"}} {cumulative}"
            );
        }
        cumulative += self.tick_buckets[TICK_BUCKETS.len()].load(Relaxed);
        let _ = writeln!(
            text,
            "theta_tick_seconds_bucket{{le=\"+Inf\"}} {cumulative}"
        );
        let _ = writeln!(
            text,
            "theta_tick_seconds_sum {}",
            self.tick_nanos.load(Relaxed) as f64 / 1e9
        );
        // The +Inf bucket is the count (read once: the two could differ mid-update).
        let _ = writeln!(text, "theta_tick_seconds_count {cumulative}");
        let rooms = self.rooms_map().clone();
        line_family(
            &mut text,
            "theta_room_peers",
            "gauge",
            "Peers connected to a room.",
        );
        for (room, figures) in &rooms {
            let _ = writeln!(
                text,
                "theta_room_peers{{room=\"{}\"}} {}",
                escape_label(room.as_str()),
                figures.peers
            );
        }
        line_family(
            &mut text,
            "theta_room_entities",
            "gauge",
            "Entities a room holds.",
        );
        for (room, figures) in &rooms {
            let _ = writeln!(
                text,
                "theta_room_entities{{room=\"{}\"}} {}",
                escape_label(room.as_str()),
                figures.entities
            );
        }
        text
    }
}

fn line_family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// A label value as the exposition format quotes it (room ids need none today; a future
/// label might).
fn escape_label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The endpoint, serving until [`MetricsServer::shutdown`] (or until dropped: its task
/// is then stopped with the runtime).
pub struct MetricsServer {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl MetricsServer {
    /// Binds `addr` (the config's `metrics` address; port 0 picks one) and serves
    /// `metrics` on the current tokio runtime.
    pub async fn bind(addr: SocketAddr, metrics: Arc<Metrics>) -> io::Result<MetricsServer> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(accept_loop(listener, metrics, stopped));
        tracing::info!(%addr, "metrics and health endpoint listening");
        Ok(MetricsServer {
            addr,
            stop: Some(stop),
            task: Some(task),
        })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting and waits for the accept loop to end (connections being served
    /// finish on their own, within their timeout).
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

async fn accept_loop(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    mut stopped: oneshot::Receiver<()>,
) {
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let stream = tokio::select! {
            _ = &mut stopped => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of descriptors and the like: pause instead of spinning.
                    tracing::warn!("metrics endpoint: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            drop(stream); // over MAX_CONNECTIONS: closed at once
            continue;
        };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let response = respond(&metrics, &request);
                async move { Ok::<_, Infallible>(response) }
            });
            let mut http = hyper::server::conn::http1::Builder::new();
            http.timer(TokioTimer::new())
                .header_read_timeout(HEAD_TIMEOUT)
                .max_buf_size(MAX_REQUEST_HEAD_BYTES)
                .max_headers(32)
                .keep_alive(false);
            let connection = http.serve_connection(TokioIo::new(stream), service);
            let _ = tokio::time::timeout(CONNECTION_TIMEOUT, connection).await;
            drop(permit);
        });
    }
}

fn respond(metrics: &Metrics, request: &Request<Incoming>) -> Response<Full<Bytes>> {
    let path = request.uri().path();
    let known = matches!(path, "/healthz" | "/metrics");
    if !known {
        return text(StatusCode::NOT_FOUND, "not found\n");
    }
    if request.method() != Method::GET && request.method() != Method::HEAD {
        let mut response = text(StatusCode::METHOD_NOT_ALLOWED, "only GET\n");
        response
            .headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        return response;
    }
    match path {
        "/healthz" if metrics.is_draining() => text(StatusCode::SERVICE_UNAVAILABLE, "draining\n"),
        "/healthz" => text(StatusCode::OK, "ok\n"),
        _ => {
            let mut response = Response::new(Full::new(Bytes::from(metrics.render())));
            response.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            response
        }
    }
}

fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

#[cfg(test)]
mod tests;
