//! An engine's transport between a host and its clients, in memory, as the C tests drive
//! it through the exported functions only: sessions made over a custom transport, their
//! outputs drained and carried across in order and without loss, their events polled and
//! copied out, every wait bounded.

use std::collections::VecDeque;
use std::ptr::{null, null_mut};
use std::time::{Duration, Instant};

use theta_net::ffi::*;

use super::ok;

/// The longest any wait of a test may take.
pub const WAIT: Duration = Duration::from_secs(20);

/// A host over a custom transport with `config` and `transport` (NULL: the defaults) and a
/// generated join secret.
pub fn host_custom(
    world: ThetaWorld,
    config: *const ThetaSessionConfig,
    transport: *const ThetaTransportConfig,
) -> ThetaSession {
    let mut host = ThetaSession { id: 0 };
    // SAFETY: valid (or NULL) configs and out-pointer; NULL secret (generated).
    ok(unsafe { theta_session_host_custom(world, null(), 0, config, transport, &mut host) });
    host
}

/// A join token for `peer`, valid a minute.
pub fn mint(host: ThetaSession, peer: u16) -> Vec<u8> {
    let mut buf = vec![0u8; THETA_JOIN_TOKEN_LEN];
    let mut len = 0;
    // SAFETY: buf has its length of writable bytes.
    ok(unsafe { theta_session_mint_token(host, peer, 60, buf.as_mut_ptr(), buf.len(), &mut len) });
    buf.truncate(len);
    buf
}

/// A client over a custom transport joining with `token`; `registry` is only read.
pub fn join_custom(token: &[u8], registry: ThetaWorld) -> ThetaSession {
    let mut client = ThetaSession { id: 0 };
    // SAFETY: valid byte range and out-pointer; NULL configs (defaults).
    ok(unsafe {
        theta_session_join_custom(
            token.as_ptr(),
            token.len(),
            registry,
            null(),
            null(),
            &mut client,
        )
    });
    client
}

/// A new entity of `session`.
pub fn spawn(session: ThetaSession) -> u64 {
    let mut e = 0;
    // SAFETY: valid out-pointer.
    ok(unsafe { theta_session_spawn(session, &mut e) });
    e
}

/// The session's state hash.
pub fn hash(session: ThetaSession) -> u64 {
    let mut h = 0;
    // SAFETY: valid out-pointer.
    ok(unsafe { theta_session_state_hash(session, &mut h) });
    h
}

/// An event with its bytes copied out (they live only until the next poll).
#[derive(Clone, Debug)]
pub struct Event {
    pub kind: u8,
    pub cause: u8,
    pub peer: u16,
    pub entity: u64,
    pub component: u32,
    pub request: u64,
    pub text: String,
}

impl Event {
    pub fn is(&self, kind: ThetaSessionEventKind) -> bool {
        self.kind == kind as u8
    }
}

/// Every event `session` has now.
pub fn events(session: ThetaSession) -> Vec<Event> {
    let mut buf = [ThetaSessionEvent::default(); 16];
    let mut all = Vec::new();
    loop {
        let mut n = 0;
        // SAFETY: 16 writable events.
        ok(unsafe { theta_session_poll_events(session, buf.as_mut_ptr(), 16, &mut n) });
        for e in &buf[..n] {
            let text = if e.data.is_null() {
                String::new()
            } else {
                // SAFETY: the library's bytes, valid until the next poll.
                let bytes = unsafe { std::slice::from_raw_parts(e.data, e.data_len) };
                String::from_utf8_lossy(bytes).into_owned()
            };
            all.push(Event {
                kind: e.kind,
                cause: e.cause,
                peer: e.peer,
                entity: e.entity,
                component: e.component,
                request: e.request,
                text,
            });
        }
        if n < 16 {
            return all;
        }
    }
}

/// Outputs of a session on their way, with their bytes.
pub type Queue = VecDeque<(ThetaTransportOutput, Vec<u8>)>;

/// Every output of `session` (for the host, a client's; per connection, the host's), the
/// buffer growing when it is too small.
pub fn drain(session: ThetaSession) -> Vec<(ThetaTransportOutput, Vec<u8>)> {
    let mut all = Vec::new();
    let mut buf = vec![0u8; 64];
    loop {
        let mut out = ThetaTransportOutput::default();
        // SAFETY: buf has its length of writable bytes.
        let status =
            unsafe { theta_session_transport_poll(session, buf.as_mut_ptr(), buf.len(), &mut out) };
        if status == ThetaStatus::BufferTooSmall {
            assert!(out.len > buf.len(), "{out:?}");
            buf.resize(out.len, 0);
            continue;
        }
        ok(status);
        if out.kind == ThetaTransportOutputKind::None as u8 {
            return all;
        }
        all.push((out, buf[..out.len].to_vec()));
    }
}

/// Hands what is queued to `to` on its connection `conn`: messages and closes. Bytes for
/// a connection this side already closed are dropped.
pub fn deliver(queue: &mut Queue, to: ThetaSession, conn: u64) {
    for (out, bytes) in queue.drain(..) {
        let status = if out.kind == ThetaTransportOutputKind::Close as u8 {
            // SAFETY: a valid byte range.
            unsafe {
                theta_session_transport_closed(to, conn, out.code, bytes.as_ptr(), bytes.len())
            }
        } else {
            // SAFETY: a valid byte range.
            unsafe {
                theta_session_transport_receive(to, conn, out.channel, bytes.as_ptr(), bytes.len())
            }
        };
        if status != ThetaStatus::UnknownConnection {
            ok(status);
        }
    }
}

/// One client's connection: the host calls it `host_conn`, the client `client_conn`;
/// every new connection is a new pair of ids.
pub struct Link {
    pub client: ThetaSession,
    pub host_conn: u64,
    pub client_conn: u64,
    to_host: Queue,
    to_client: Queue,
}

/// The engine's transport between a host and its clients: a queue each way per client,
/// in order and lossless. Every round polls every session's events into `seen` (the
/// host's first, then each client's in the order they were added).
pub struct Net {
    pub host: ThetaSession,
    pub links: Vec<Link>,
    pub seen: Vec<Vec<Event>>,
}

impl Net {
    pub fn new(host: ThetaSession) -> Self {
        Net {
            host,
            links: Vec::new(),
            seen: vec![Vec::new()],
        }
    }

    /// Adds `client` and opens its first connection (`host_conn` on the host, 1 on the
    /// client); its events are `seen[links.len()]`. Nothing is exchanged yet.
    pub fn add(&mut self, client: ThetaSession, host_conn: u64) {
        self.links.push(Link {
            client,
            host_conn,
            client_conn: 1,
            to_host: Queue::new(),
            to_client: Queue::new(),
        });
        self.seen.push(Vec::new());
        self.connect(self.links.len() - 1);
    }

    /// Adds `client` as [`Net::add`] does and rounds until it joined.
    pub fn join(&mut self, client: ThetaSession, host_conn: u64) {
        self.add(client, host_conn);
        let index = self.links.len();
        self.until("the join", |seen| {
            seen[index]
                .iter()
                .any(|e| e.is(ThetaSessionEventKind::Joined))
        });
    }

    /// Opens link `index`'s connection: both ends report it.
    pub fn connect(&mut self, index: usize) {
        let link = &self.links[index];
        ok(theta_session_transport_connected(self.host, link.host_conn));
        ok(theta_session_transport_connected(
            link.client,
            link.client_conn,
        ));
    }

    /// The transport loses link `index`'s connection: both ends hear it (`LOST`), nothing
    /// in flight arrives, and its next connection has new ids.
    pub fn drop_connection(&mut self, index: usize) {
        let lost = ThetaCloseCode::Lost as u32;
        let link = &mut self.links[index];
        for (session, conn) in [(self.host, link.host_conn), (link.client, link.client_conn)] {
            // SAFETY: a valid byte range.
            ok(unsafe { theta_session_transport_closed(session, conn, lost, b"lost".as_ptr(), 4) });
        }
        link.to_host.clear();
        link.to_client.clear();
        link.host_conn += 1;
        link.client_conn += 1;
    }

    /// The host, then every client.
    pub fn sessions(&self) -> Vec<ThetaSession> {
        std::iter::once(self.host)
            .chain(self.links.iter().map(|l| l.client))
            .collect()
    }

    /// One round: every session ticks, outputs cross, events are polled.
    pub fn round(&mut self) {
        ok(theta_session_tick(self.host));
        for (out, bytes) in drain(self.host) {
            if let Some(link) = self.links.iter_mut().find(|l| l.host_conn == out.conn) {
                link.to_client.push_back((out, bytes));
            }
        }
        for link in &mut self.links {
            ok(theta_session_tick(link.client));
            link.to_host.extend(drain(link.client));
        }
        for link in &mut self.links {
            deliver(&mut link.to_host, self.host, link.host_conn);
            deliver(&mut link.to_client, link.client, link.client_conn);
        }
        for (i, session) in self.sessions().into_iter().enumerate() {
            let polled = events(session);
            self.seen[i].extend(polled);
        }
    }

    /// Rounds until `done` holds of the events seen so far (it may ask the sessions too).
    pub fn until(&mut self, what: &str, mut done: impl FnMut(&[Vec<Event>]) -> bool) {
        let deadline = Instant::now() + WAIT;
        loop {
            self.round();
            if done(&self.seen) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: not within {WAIT:?}; seen {:?}",
                self.seen
            );
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Rounds until every client holds the host's state.
    pub fn converge(&mut self) {
        let host = self.host;
        let clients: Vec<ThetaSession> = self.links.iter().map(|l| l.client).collect();
        self.until("convergence", |_| {
            let h = hash(host);
            clients.iter().all(|&c| hash(c) == h)
        });
    }

    /// Forgets the events seen so far.
    pub fn forget(&mut self) {
        for seen in &mut self.seen {
            seen.clear();
        }
    }

    /// Rounds until session `index` (0 the host) saw an event of `kind`; returns it.
    pub fn until_event(&mut self, index: usize, kind: ThetaSessionEventKind) -> Event {
        self.until(&format!("{kind:?}"), |seen| {
            seen[index].iter().any(|e| e.is(kind))
        });
        self.seen[index]
            .iter()
            .find(|e| e.is(kind))
            .unwrap()
            .clone()
    }

    /// Frees every session, clients first.
    pub fn free(self) {
        for link in &self.links {
            ok(theta_session_free(link.client));
        }
        ok(theta_session_free(self.host));
    }
}

/// Writes `value` to `(entity, component)` of `session`; the call's status.
pub fn set(session: ThetaSession, entity: u64, component: u32, value: &[u8]) -> ThetaStatus {
    // SAFETY: a valid byte range; NULL out_change.
    unsafe {
        theta_session_set(
            session,
            entity,
            component,
            value.as_ptr(),
            value.len(),
            null_mut(),
        )
    }
}
