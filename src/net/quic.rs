//! The QUIC driver of a [`super::session::Session`]: the endpoint, TLS, the tokio runtime
//! and the connection tasks ([`super::conn`]). It moves bytes, times and dictionary
//! trainings between them and the protocol core; every protocol decision is the core's.
//!
//! The session's own tokio runtime (one worker thread) runs the endpoint, admission and the
//! readers, and meets the engine thread through a bounded queue. [`QuicDriver::tick`]
//! never waits for the network: it drains what arrived, hands it to the core, carries out
//! what the core says, and returns. [`QuicDriver::shut_down`] says goodbye to the peers
//! (bounded) and joins the runtime thread.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use rustc_hash::FxHashMap;
use tokio::sync::mpsc;

use super::admission::Gate;
use super::conn::{
    accept_loop, connect, send_batch, Accepting, ConnHandle, DatagramBatch, Dial, Goodbye,
    NetEvent, PeerRules,
};
use super::faults::{faulty_endpoint, FaultControl};
use super::pacing::DecodePacer;
use super::session::{Core, SessionConfig, SessionError};
use super::tls::{self, HostIdentity, ServerTrust};
use crate::proto::compression::{TrainingDone, TrainingJob};
use crate::proto::{
    self, ConnId, DisconnectCause, Output, Path, PeerDiagnostics, CLOSE_SHUTDOWN, GOODBYE_DATAGRAM,
};

/// What one admitted client's stream messages may make the host decompress, in bytes a
/// second ([`DecodePacer`]): a 1 MiB value every 16 ms, far above what an engine writes.
pub(super) const CLIENT_DECODE_RATE: u64 = 64 << 20;
/// ... and at once (at least two of the largest messages its stream may carry).
pub(super) const CLIENT_DECODE_BURST: u64 = 8 << 20;
/// Messages queued from the network to the engine thread.
const INBOUND_QUEUE: usize = 8192;
/// Longest wait, when a session is dropped, for its peers to answer its goodbye.
const GOODBYE_WAIT_MAX: Duration = Duration::from_secs(1);

/// A client's goodbye (its stream finished), as the host reports it.
const CLIENT_GOODBYE: Goodbye = Goodbye {
    reason: proto::CLIENT_LEFT,
    cause: DisconnectCause::Local,
};
/// The host's goodbye, as a client reports it.
const HOST_GOODBYE: Goodbye = Goodbye {
    reason: proto::HOST_SHUT_DOWN,
    cause: DisconnectCause::HostClosed,
};

/// Socket buffer size asked for each way: a host's burst of state datagrams to several
/// clients, or a snapshot's packets, must not overflow the OS default (64 KiB on Windows,
/// where Unity and Unreal mostly run; about 200 KiB on Linux).
pub const SOCKET_BUFFER_BYTES: usize = 2 << 20;

/// The QUIC side of a session. See the module documentation.
pub(super) struct QuicDriver {
    runtime: Option<tokio::runtime::Runtime>,
    endpoint: quinn::Endpoint,
    inbound: mpsc::Receiver<NetEvent>,
    /// Where connection tasks report (kept to start another on reconnect).
    tx: mpsc::Sender<NetEvent>,
    conns: FxHashMap<ConnId, ConnHandle>,
    /// Datagrams the core asked for since the last hand-over to the runtime.
    datagrams: DatagramBatch,
    next_conn: Arc<AtomicU64>,
    inbound_dropped: Arc<AtomicU64>,
    /// Client: the host, to reconnect to, and how to dial it.
    dial: Option<(SocketAddr, String, Duration)>,
}

fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("theta-net")
        .enable_all()
        .build()
}

pub(super) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn endpoint(
    addr: SocketAddr,
    server: Option<quinn::ServerConfig>,
    faults: Option<&FaultControl>,
) -> std::io::Result<quinn::Endpoint> {
    let socket = bind_udp(addr)?;
    match faults {
        Some(control) => faulty_endpoint(socket, server, control.clone()),
        None => quinn::Endpoint::new(
            quinn::EndpointConfig::default(),
            server,
            socket,
            Arc::new(quinn::TokioRuntime),
        ),
    }
}

/// A UDP socket bound to `addr` with [`SOCKET_BUFFER_BYTES`] asked for each way. The OS may
/// grant less (Linux caps at `net.core.rmem_max`); that is not an error.
pub(crate) fn bind_udp(addr: SocketAddr) -> std::io::Result<std::net::UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        // Both families on a wildcard address, as std's bind would not promise either.
        let _ = socket.set_only_v6(false);
    }
    let _ = socket.set_recv_buffer_size(SOCKET_BUFFER_BYTES);
    let _ = socket.set_send_buffer_size(SOCKET_BUFFER_BYTES);
    socket.bind(&addr.into())?;
    Ok(socket.into())
}

/// What a [`QuicDriver`] drives: a session's core (a host or a client), or a room
/// server's rooms. The driver hands it what the connections delivered and carries out
/// its outputs.
pub(super) trait Driven {
    /// Whether it accepts connections (a host, rooms) rather than dials one (a client).
    fn serves(&self) -> bool;
    /// A new connection's first reliable message, its join request.
    fn join(&mut self, conn: ConnId, from: SocketAddr, now: Instant, request: &[u8]);
    /// A client's connection to its host is up.
    fn connected(&mut self, conn: ConnId);
    /// A message on `conn`'s unreliable channel, arrived at `at`.
    fn datagram(&mut self, conn: ConnId, at: Instant, now: Instant, bytes: &[u8]);
    /// A message on `conn`'s reliable channel.
    fn stream(&mut self, conn: ConnId, now: Instant, bytes: &[u8]);
    /// `conn` ended.
    fn closed(&mut self, conn: ConnId, now: Instant, reason: String, cause: DisconnectCause);
    /// A client's connection attempt failed.
    fn failed(&mut self, reason: String, cause: DisconnectCause);
    /// One tick at `now`; `path` gives each connection's path.
    fn tick(&mut self, now: Instant, path: &mut dyn FnMut(ConnId) -> Path);
    /// The next output to carry out.
    fn poll_output(&mut self) -> Option<Output>;
    /// Bytes a second one admitted client's stream messages may make it decompress.
    fn client_decode_rate(&self) -> u64 {
        CLIENT_DECODE_RATE
    }
}

impl Driven for Core {
    fn serves(&self) -> bool {
        matches!(self, Core::Host(_))
    }

    fn join(&mut self, conn: ConnId, from: SocketAddr, now: Instant, request: &[u8]) {
        if let Core::Host(host) = self {
            host.handle_join(conn, Some(from), now, unix_now(), request);
        }
    }

    fn connected(&mut self, conn: ConnId) {
        if let Core::Client(client) = self {
            client.connected(conn);
        }
    }

    fn datagram(&mut self, conn: ConnId, at: Instant, now: Instant, bytes: &[u8]) {
        match self {
            Core::Host(host) => host.handle_datagram(conn, at, now, bytes),
            Core::Client(client) => client.handle_datagram(conn, at, now, bytes),
        }
    }

    fn stream(&mut self, conn: ConnId, now: Instant, bytes: &[u8]) {
        match self {
            Core::Host(host) => host.handle_stream(conn, now, bytes),
            Core::Client(client) => client.handle_stream(conn, now, bytes),
        }
    }

    fn closed(&mut self, conn: ConnId, now: Instant, reason: String, cause: DisconnectCause) {
        match self {
            Core::Host(host) => host.handle_closed(conn, now, reason),
            Core::Client(client) => client.handle_closed(conn, reason, cause),
        }
    }

    fn failed(&mut self, reason: String, cause: DisconnectCause) {
        if let Core::Client(client) = self {
            client.handle_connect_failed(reason, cause);
        }
    }

    fn tick(&mut self, now: Instant, path: &mut dyn FnMut(ConnId) -> Path) {
        match self {
            Core::Host(host) => host.tick(now, path),
            Core::Client(client) => {
                if let Some(id) = client.connection() {
                    let path = path(id);
                    client.tick(now, path);
                }
            }
        }
    }

    fn poll_output(&mut self) -> Option<Output> {
        Core::poll_output(self)
    }
}

impl QuicDriver {
    fn new(runtime: tokio::runtime::Runtime, endpoint: quinn::Endpoint) -> QuicDriver {
        let (tx, inbound) = mpsc::channel(INBOUND_QUEUE);
        QuicDriver {
            runtime: Some(runtime),
            endpoint,
            inbound,
            tx,
            conns: FxHashMap::default(),
            datagrams: DatagramBatch::new(),
            next_conn: Arc::new(AtomicU64::new(1)),
            inbound_dropped: Arc::new(AtomicU64::new(0)),
            dial: None,
        }
    }

    /// A host's endpoint on `bind`, not accepting yet ([`QuicDriver::accept`]).
    pub(super) fn host(
        bind: SocketAddr,
        identity: &HostIdentity,
        config: &SessionConfig,
    ) -> Result<QuicDriver, SessionError> {
        let runtime = runtime()?;
        let mut transport = tls::host_transport_config(config.idle_timeout, config.keep_alive);
        config.congestion.apply(&mut transport);
        let server = tls::server_config(identity, Arc::new(transport))?;
        let endpoint = {
            let _guard = runtime.enter();
            endpoint(bind, Some(server), config.faults.as_ref())?
        };
        Ok(QuicDriver::new(runtime, endpoint))
    }

    /// Host: starts accepting connections.
    pub(super) fn accept(&self, config: &SessionConfig) {
        let Some(runtime) = &self.runtime else { return };
        runtime.spawn(accept_loop(
            self.endpoint.clone(),
            Gate::new(config.max_pending_admissions),
            Accepting {
                tx: self.tx.clone(),
                dropped: Arc::clone(&self.inbound_dropped),
                next_conn: Arc::clone(&self.next_conn),
                admission_timeout: config.admission_timeout,
            },
        ));
    }

    /// A client's endpoint, dialing the host at `addr`.
    pub(super) fn join(
        addr: SocketAddr,
        trust: &ServerTrust,
        config: &SessionConfig,
    ) -> Result<QuicDriver, SessionError> {
        let runtime = runtime()?;
        let mut transport = tls::client_transport_config(config.idle_timeout, config.keep_alive);
        config.congestion.apply(&mut transport);
        let client_config = tls::client_config(trust, Arc::new(transport))?;
        let local: SocketAddr = match addr.ip() {
            IpAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
            IpAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
        };
        let mut endpoint = {
            let _guard = runtime.enter();
            endpoint(local, None, config.faults.as_ref())?
        };
        endpoint.set_default_client_config(client_config);
        let mut driver = QuicDriver::new(runtime, endpoint);
        driver.dial = Some((addr, config.server_name.clone(), config.connect_timeout));
        driver.redial();
        Ok(driver)
    }

    /// Client: starts a connection task to the host.
    pub(super) fn redial(&mut self) {
        let (Some((addr, server_name, connect_timeout)), Some(runtime)) =
            (&self.dial, &self.runtime)
        else {
            return;
        };
        let dial = Dial {
            id: ConnId(self.next_conn.fetch_add(1, Ordering::Relaxed)),
            addr: *addr,
            server_name: server_name.clone(),
            connect_timeout: *connect_timeout,
        };
        runtime.spawn(connect(
            self.endpoint.clone(),
            dial,
            self.tx.clone(),
            Arc::clone(&self.inbound_dropped),
        ));
    }

    /// The address the endpoint is bound to.
    pub(super) fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.endpoint.local_addr()
    }

    /// One tick at `now`: hands what arrived to the core, ticks it, carries out its
    /// outputs.
    pub(super) fn tick(&mut self, core: &mut impl Driven, now: Instant) {
        while let Ok(event) = self.inbound.try_recv() {
            self.handle(core, event, now);
        }
        let conns = &mut self.conns;
        let mut path = |id: ConnId| {
            conns.get_mut(&id).map_or(
                Path {
                    max_datagram: 0,
                    rtt: Duration::ZERO,
                    budget: 0,
                },
                ConnHandle::path,
            )
        };
        core.tick(now, &mut path);
        self.carry_out(core);
        for conn in self.conns.values_mut() {
            conn.sent();
        }
    }

    /// Runs a dictionary training on the runtime's blocking pool; its result goes to `tx`.
    pub(super) fn train(&self, job: TrainingJob, tx: std::sync::mpsc::Sender<TrainingDone>) {
        self.run_blocking(move || {
            // The session may be gone by now; nobody is left to tell.
            let _ = tx.send(job.run());
        });
    }

    /// Runs `work` on the runtime's blocking pool.
    pub(super) fn run_blocking(&self, work: impl FnOnce() + Send + 'static) {
        if let Some(runtime) = &self.runtime {
            runtime.spawn_blocking(work);
        }
    }

    /// Hands one thing the network tasks reported to the core.
    fn handle(&mut self, core: &mut impl Driven, event: NetEvent, now: Instant) {
        match event {
            NetEvent::Join {
                id,
                handle,
                from,
                bytes,
            } if core.serves() => {
                self.conns.insert(id, handle);
                core.join(id, from, now, &bytes);
                // Admitted or refused now, not a tick later.
                self.carry_out(core);
            }
            NetEvent::Connected { id, handle } if !core.serves() => {
                self.conns.insert(id, handle);
                core.connected(id);
                self.carry_out(core);
            }
            NetEvent::Datagram { id, bytes, at } => core.datagram(id, at, now, &bytes),
            NetEvent::Stream { id, bytes } => {
                core.stream(id, now, &bytes);
                if !core.serves() {
                    // An admission must reach the connection's task now: it waits for it.
                    self.carry_out(core);
                }
            }
            NetEvent::Closed { id, reason, cause } => {
                self.conns.remove(&id);
                core.closed(id, now, reason, cause);
            }
            NetEvent::Failed { reason, cause } => core.failed(reason, cause),
            // A role's events never come to the other role.
            _ => {}
        }
    }

    /// Does what the core asked: bytes onto connections, admissions, closes.
    fn carry_out(&mut self, core: &mut impl Driven) {
        while let Some(output) = core.poll_output() {
            match output {
                Output::Send {
                    conn,
                    channel,
                    bytes,
                } => {
                    if let Some(handle) = self.conns.get_mut(&conn) {
                        match channel {
                            proto::Channel::Reliable => handle.send_reliable(bytes),
                            proto::Channel::Unreliable => {
                                handle.send_unreliable(bytes, &mut self.datagrams)
                            }
                        }
                    }
                }
                Output::Admitted {
                    conn,
                    read_bound,
                    paced,
                } => {
                    let (pacer, goodbye) = if core.serves() {
                        let burst = CLIENT_DECODE_BURST.max(2 * read_bound as u64);
                        let pacer = DecodePacer::new(core.client_decode_rate(), burst);
                        (paced.then_some(pacer), CLIENT_GOODBYE)
                    } else {
                        (None, HOST_GOODBYE)
                    };
                    if let Some(handle) = self.conns.get_mut(&conn) {
                        handle.admit(PeerRules {
                            max_message: read_bound,
                            pacer,
                            goodbye,
                        });
                    }
                }
                Output::Close { conn, code, reason } => {
                    if let (Some(handle), Some(runtime)) = (self.conns.remove(&conn), &self.runtime)
                    {
                        handle.close(code, reason, runtime.handle());
                    }
                }
            }
        }
        for handle in self.conns.values_mut() {
            handle.flush();
        }
        if !self.datagrams.is_empty() {
            let batch = std::mem::take(&mut self.datagrams);
            if let Some(runtime) = &self.runtime {
                send_batch(runtime, batch);
            }
        }
    }

    /// Adds the QUIC connection's figures to the protocol's of the peer on `conn`.
    pub(super) fn fill(&self, p: &mut PeerDiagnostics, conn: ConnId) {
        let Some(handle) = self.conns.get(&conn) else {
            return;
        };
        let stats = handle.conn.stats();
        p.rtt = handle.conn.rtt();
        p.wire_bytes_sent = stats.udp_tx.bytes;
        p.wire_bytes_received = stats.udp_rx.bytes;
        p.packets_sent = stats.udp_tx.datagrams;
        p.packets_received = stats.udp_rx.datagrams;
        p.packets_lost = stats.path.lost_packets;
    }

    /// Datagrams dropped because the queue to the engine thread was full.
    pub(super) fn inbound_dropped(&self) -> u64 {
        self.inbound_dropped.load(Ordering::Relaxed)
    }

    /// Says goodbye to every peer and waits, bounded, for them to hear it: each
    /// connection's stream is finished after what was queued on it, and
    /// [`GOODBYE_DATAGRAM`] goes every quarter round trip (5 to 50 ms) until the peer
    /// answers by closing the connection. The wait is 4 round trips of the slowest peer
    /// plus 50 ms, at most [`GOODBYE_WAIT_MAX`], and ends as soon as every peer answered.
    /// Then the endpoint closes (with `reason`) and the runtime thread is joined.
    pub(super) fn shut_down(&mut self, reason: &'static str) {
        let reason = reason.as_bytes();
        let mut conns = Vec::with_capacity(self.conns.len());
        let mut rtt = Duration::ZERO;
        for handle in self.conns.values_mut() {
            handle.finish();
            rtt = rtt.max(handle.conn.rtt());
            conns.push(handle.conn.clone());
        }
        let wait = (rtt * 4 + Duration::from_millis(50)).min(GOODBYE_WAIT_MAX);
        let every = (rtt / 4).clamp(Duration::from_millis(5), Duration::from_millis(50));
        let Some(runtime) = self.runtime.take() else {
            self.endpoint.close(CLOSE_SHUTDOWN.into(), reason);
            return;
        };
        let endpoint = self.endpoint.clone();
        runtime.block_on(async move {
            let answered = async {
                for conn in &conns {
                    conn.closed().await;
                }
            };
            let repeat = async {
                let mut ticks = tokio::time::interval(every);
                loop {
                    ticks.tick().await;
                    for conn in &conns {
                        let _ = conn.send_datagram(Bytes::from_static(&GOODBYE_DATAGRAM));
                    }
                }
            };
            let all_answered = tokio::select! {
                () = answered => true,
                () = repeat => false,
                () = tokio::time::sleep(wait) => false,
            };
            endpoint.close(CLOSE_SHUTDOWN.into(), reason);
            if !all_answered {
                // Peers that did not answer get a QUIC close; let it go out.
                let _ =
                    tokio::time::timeout(Duration::from_millis(100), endpoint.wait_idle()).await;
            }
        });
        runtime.shutdown_timeout(Duration::from_secs(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sockets_ask_for_larger_buffers_and_work() {
        let plain = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        let sized = bind_udp("127.0.0.1:0".parse().expect("addr")).expect("bind");
        let size = |s: &std::net::UdpSocket| {
            socket2::SockRef::from(s)
                .recv_buffer_size()
                .expect("SO_RCVBUF")
        };
        // The OS may cap what was asked, never give less than its default.
        assert!(
            size(&sized) >= size(&plain),
            "{} < {}",
            size(&sized),
            size(&plain)
        );
        eprintln!(
            "SO_RCVBUF: default {}, asked {SOCKET_BUFFER_BYTES}, got {}",
            size(&plain),
            size(&sized)
        );
        plain
            .send_to(b"ping", sized.local_addr().expect("addr"))
            .expect("send");
        let mut buf = [0u8; 8];
        sized
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let (n, _) = sized.recv_from(&mut buf).expect("recv");
        assert_eq!(&buf[..n], b"ping");
    }
}
