//! A room server's transport: one QUIC endpoint whose connections go to the rooms their
//! join tokens name ([`crate::proto::rooms::Rooms`]), driven like a session: the server's
//! thread calls [`RoomServer::tick`], which never waits for the network.

use std::net::SocketAddr;
use std::sync::mpsc;
use std::time::Instant;

use super::quic::{unix_now, Driven, QuicDriver};
use super::session::{SessionConfig, SessionError};
use super::tls::HostIdentity;
use crate::proto::compression::TrainingDone;
use crate::proto::room_id::RoomId;
use crate::proto::rooms::Rooms;
use crate::proto::{self, ConnId, DisconnectCause, Output, Path, PeerDiagnostics};

impl Driven for Rooms {
    fn serves(&self) -> bool {
        true
    }

    fn join(&mut self, conn: ConnId, from: SocketAddr, now: Instant, request: &[u8]) {
        self.handle_join(conn, Some(from), now, unix_now(), request);
    }

    fn connected(&mut self, _conn: ConnId) {}

    fn datagram(&mut self, conn: ConnId, at: Instant, now: Instant, bytes: &[u8]) {
        self.handle_datagram(conn, at, now, bytes);
    }

    fn stream(&mut self, conn: ConnId, now: Instant, bytes: &[u8]) {
        self.handle_stream(conn, now, bytes);
    }

    fn closed(&mut self, conn: ConnId, now: Instant, reason: String, _cause: DisconnectCause) {
        self.handle_closed(conn, now, reason);
    }

    fn failed(&mut self, _reason: String, _cause: DisconnectCause) {}

    fn tick(&mut self, now: Instant, path: &mut dyn FnMut(ConnId) -> Path) {
        Rooms::tick(self, now, path);
    }

    fn poll_output(&mut self) -> Option<Output> {
        Rooms::poll_output(self)
    }

    fn client_decode_rate(&self) -> u64 {
        self.client_bytes_per_second()
    }
}

/// Rooms served on one UDP port. See the module documentation.
pub struct RoomServer {
    rooms: Rooms,
    driver: QuicDriver,
    /// Dictionary trainings run on the runtime's blocking pool and come back here, named
    /// by their room.
    trained_tx: mpsc::Sender<(RoomId, TrainingDone)>,
    trained: mpsc::Receiver<(RoomId, TrainingDone)>,
}

impl RoomServer {
    /// Serves `rooms` on `bind` with `identity`'s certificate; of `config`, the QUIC
    /// settings and the admission limits apply (the rooms have their own protocol
    /// settings).
    pub fn bind(
        bind: SocketAddr,
        identity: &HostIdentity,
        config: &SessionConfig,
        rooms: Rooms,
    ) -> Result<RoomServer, SessionError> {
        let driver = QuicDriver::host(bind, identity, config)?;
        driver.accept(config);
        let (trained_tx, trained) = mpsc::channel();
        Ok(RoomServer {
            rooms,
            driver,
            trained_tx,
            trained,
        })
    }

    /// The address the endpoint is bound to.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.driver.local_addr()
    }

    /// One tick of every room: what arrived is handed to them, they tick, what they say
    /// is carried out, and their dictionary trainings go to the blocking pool.
    pub fn tick(&mut self) {
        let now = Instant::now();
        for (room, done) in self.trained.try_iter() {
            if let Some(host) = self.rooms.get_mut(&room) {
                host.finish_training(done);
            }
        }
        self.driver.tick(&mut self.rooms, now);
        let mut jobs = Vec::new();
        for (room, host) in self.rooms.iter_mut() {
            for job in host.take_training_jobs() {
                jobs.push((room.clone(), job));
            }
        }
        for (room, job) in jobs {
            let tx = self.trained_tx.clone();
            self.driver.run_blocking(move || {
                // The server may be gone by now; nobody is left to tell.
                let _ = tx.send((room, job.run()));
            });
        }
    }

    /// The rooms.
    pub fn rooms(&self) -> &Rooms {
        &self.rooms
    }

    /// The rooms, to close idle ones, drain, or read their events.
    pub fn rooms_mut(&mut self) -> &mut Rooms {
        &mut self.rooms
    }

    /// The protocol's figures of a room's peer with its connection's added.
    pub fn fill(&self, p: &mut PeerDiagnostics, conn: ConnId) {
        self.driver.fill(p, conn);
    }

    /// Refuses new joins, says goodbye to every client and waits, bounded, for them to
    /// hear it (see [`Rooms::drain`]); then the endpoint closes and the runtime thread is
    /// joined. The rooms stay, to be saved.
    pub fn shut_down(&mut self) {
        self.rooms.drain();
        self.tick();
        self.driver.shut_down(proto::HOST_SHUT_DOWN);
    }
}
