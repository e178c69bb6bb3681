//! A client's side of the protocol: the join (or resume) handshake, the replica of the
//! host's world, this client's own entities and their writes, dictionaries, and poses.
//! Pure: see the module documentation of [`crate::proto`].

mod owners;

use owners::grant_number;
pub use owners::OwnershipCallError;

use std::collections::VecDeque;
use std::time::Instant;

use super::admission::{registry_differences, revision_refusal};
use super::compression::{
    control_message, max_stream_message, split_stream_message, Compression, PeerDicts, StreamKind,
};
use super::events::{
    DisconnectCause, OwnershipRefusal, PeerDiagnostics, SessionDiagnostics, SessionEvent,
};
use super::interest::ClientInterest;
use super::link::{Link, Outputs};
use super::messages::{self, ClientMessages, MessageError};
use super::poses::{PoseHub, PoseLink};
use super::priority::{Priorities, PriorityError};
use super::queue::{EventQueue, EventRef};
use super::value_coding::ValueCoder;
use super::{
    is_pose_datagram, Channel, Config, ConnId, Output, Path, CLOSE_BROKEN_STREAM, CLOSE_SHUTDOWN,
    GOODBYE_DATAGRAM,
};
use crate::interest::{InterestError, Volume};
use crate::ownership::LEASED;
use crate::registry::{ComponentId, Registry};
use crate::replica::Replica;
use crate::wire::codec::MessageKind;
use crate::wire::registry_bytes::encode_registry;
use crate::wire::{self, fb, Encoder, Message, PROTOCOL_REVISION};
use crate::world::{Change, EntityId, PeerId, World, WorldError};
use crate::xr::QuantizeError;

/// How a client reports its host's goodbye.
pub const HOST_SHUT_DOWN: &str = "host shut down";

/// Where a client is with its host.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// No connection: before the first, or between a drop and a reconnect.
    Idle,
    /// Connected; the join (or resume) request went, the answer is awaited.
    Joining(ConnId),
    /// Admitted on this connection.
    Joined(ConnId),
}

/// Why a client cannot resume.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CannotResume {
    /// It was never admitted.
    #[error("this client was never admitted")]
    NeverAdmitted,
    /// Its connection is up (or being made).
    #[error("the connection is still up")]
    StillConnected,
    /// The host gave it no resume token.
    #[error("the host gave no resume token")]
    NoToken,
}

/// A client's protocol endpoint. See the module documentation.
pub struct Client {
    replica: Replica,
    /// This client's component types, to name what differs when the host refuses them.
    registry: Registry,
    config: Config,
    peer: Option<PeerId>,
    link: Option<Link>,
    phase: Phase,
    /// Whether the connection ended and the engine was told.
    closed: bool,
    /// This client's own changes up to this (client) tick are in the outbox.
    marked: u64,
    /// The request to present on the next connection: the join, or a resume.
    request: Request,
    /// Token the host gave for resuming after a dropped connection.
    resume: Vec<u8>,
    /// Codecs, the host's dictionaries, and their figures.
    compression: Compression,
    /// The host's lease (from its ownership messages), and when this client last told
    /// the host it is here while holding a leased grant.
    lease: Option<std::time::Duration>,
    last_ack: Option<Instant>,
    /// The host's state of what its next ownership message grants this client, with the
    /// number of the message that granted it: applied as each grant is taken (this client
    /// may think it holds the key until then).
    grant_frames: Vec<(u64, Vec<u8>)>,
    poses: PoseHub,
    /// What this client's engine wants to see, sent to the host.
    interest: ClientInterest,
    /// The engine's priority weights for this client's own writes.
    priorities: Priorities,
    /// Application messages: unreliable ones queued, the host's seen.
    messages: ClientMessages,
    encoder: Encoder,
    /// Codes the values of this client's state datagrams.
    coder: ValueCoder,
    events: EventQueue,
    out: Outputs,
}

/// What a client presents on its next connection.
#[derive(Debug)]
enum Request {
    /// A join, with this token.
    Join(String),
    /// A resume of `peer`'s dropped connection (with the host's resume token), having
    /// completed the snapshot of `snapshot_tick` (0: none).
    Resume { peer: PeerId, snapshot_tick: u64 },
}

impl Client {
    /// A client that will join with `token`; `registry` is the engine's component types
    /// (they must equal the host's). `now` starts the session clock. Nothing happens until
    /// the driver reports a connection ([`Client::connected`]).
    pub fn new(
        registry: &Registry,
        token: &str,
        config: Config,
        now: Instant,
    ) -> Result<Client, QuantizeError> {
        config.poses.volume.validate()?;
        let encoder = Encoder::new();
        let request = Request::Join(token.to_owned());
        Ok(Client {
            replica: Replica::with_registry(registry),
            registry: registry.clone(),
            compression: Compression::new(config.codec, None),
            poses: PoseHub::new(config.poses, now),
            config,
            peer: None,
            link: None,
            phase: Phase::Idle,
            closed: false,
            marked: 0,
            request,
            resume: Vec::new(),
            lease: None,
            last_ack: None,
            grant_frames: Vec::new(),
            messages: ClientMessages::default(),
            interest: ClientInterest::default(),
            priorities: Priorities::default(),
            encoder,
            coder: ValueCoder::default(),
            events: EventQueue::default(),
            out: VecDeque::new(),
        })
    }

    /// The replicated state: this client's copy of the host's world.
    pub fn world(&self) -> &World {
        self.replica.world()
    }

    /// This client's peer id, once admitted.
    pub fn peer(&self) -> Option<PeerId> {
        self.peer
    }

    /// The connection to the host, while there is one.
    pub fn connection(&self) -> Option<ConnId> {
        match self.phase {
            Phase::Idle => None,
            Phase::Joining(conn) | Phase::Joined(conn) => Some(conn),
        }
    }

    /// Creates an entity owned by this client (once admitted), in its id range.
    pub fn spawn(&mut self) -> Result<EntityId, WorldError> {
        self.replica.spawn_owned()
    }

    /// Who owns `(entity, component)` as far as this client knows (component 0: the
    /// entity); `None` is nobody.
    pub fn owner_of(&self, entity: EntityId, component: ComponentId) -> Option<PeerId> {
        self.replica.owner_of(entity, component)
    }

    /// Writes a value of an entity this client owns.
    pub fn set(
        &mut self,
        entity: EntityId,
        component: ComponentId,
        bytes: &[u8],
    ) -> Result<Change, WorldError> {
        self.replica.set_owned(entity, component, bytes)
    }

    /// Removes a component from an entity this client owns.
    pub fn remove(&mut self, entity: EntityId, component: ComponentId) -> Result<bool, WorldError> {
        self.replica.remove_owned(entity, component)
    }

    /// Destroys an entity this client owns.
    pub fn despawn(&mut self, entity: EntityId) -> Result<(), WorldError> {
        self.replica.despawn_owned(entity)
    }

    /// The session's pose state: this client's devices, and the other peers' to render.
    pub fn poses(&self) -> &PoseHub {
        &self.poses
    }

    /// The session's pose state, to push this client's devices and sample the others'.
    pub fn poses_mut(&mut self) -> &mut PoseHub {
        &mut self.poses
    }

    /// The next output for the driver, oldest first.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// The next event for the engine, oldest first (a replica event's bytes copied into
    /// it; [`Client::poll_events_with`] lends them instead).
    pub fn poll_event(&mut self) -> Option<SessionEvent> {
        self.events.pop(Some(&mut self.replica))
    }

    /// Hands up to `max` events, oldest first, to `f`, borrowed: a replica event's bytes
    /// are the replica's own, not copied. They stay where they are until the next poll.
    /// Returns how many were handed.
    pub fn poll_events_with(&mut self, max: usize, f: impl FnMut(EventRef<'_>)) -> usize {
        self.events.poll_with(max, Some(&mut self.replica), f)
    }

    /// The driver connected to the host as `conn`: the join (or resume) request goes.
    pub fn connected(&mut self, conn: ConnId) {
        self.phase = Phase::Joining(conn);
        self.closed = false;
        let wish = self.interest.for_request();
        let wish = wish.as_ref().map(|(v, s)| (&v[..], &s[..]));
        let hash = self.registry.hash();
        let bytes = match &self.request {
            Request::Join(token) => {
                // A room server learns a new room's types from its first client.
                let mut types = Vec::new();
                encode_registry(&self.registry, &mut types);
                self.encoder
                    .request(token, (hash, &types), (0, &[], 0), wish)
            }
            &Request::Resume {
                peer,
                snapshot_tick,
            } => self
                .encoder
                .request("", (hash, &[]), (peer, &self.resume, snapshot_tick), wish),
        };
        self.out.push_back(Output::Send {
            conn,
            channel: Channel::Reliable,
            bytes,
        });
    }

    /// Asks to resume after a dropped connection: the next connection presents the resume
    /// token the host gave (the host sends what changed since, no snapshot, while it keeps
    /// this client's state). The driver connects again and calls [`Client::connected`].
    pub fn reconnect(&mut self) -> Result<(), CannotResume> {
        let Some(peer) = self.peer else {
            return Err(CannotResume::NeverAdmitted);
        };
        if !self.closed || self.phase != Phase::Idle {
            return Err(CannotResume::StillConnected);
        }
        if self.resume.is_empty() {
            return Err(CannotResume::NoToken);
        }
        self.request = Request::Resume {
            peer,
            snapshot_tick: self.replica.snapshot_tick(),
        };
        // Dialing: a second reconnect is refused until this one ends.
        self.closed = false;
        Ok(())
    }

    /// A message that arrived on `conn`'s reliable channel: the answer to the request,
    /// then the host's stream.
    pub fn handle_stream(&mut self, conn: ConnId, now: Instant, bytes: &[u8]) {
        match self.phase {
            Phase::Joining(c) if c == conn => self.answer(conn, now, bytes),
            Phase::Joined(c) if c == conn => self.stream_message(bytes),
            _ => {}
        }
        self.take_replica_events();
    }

    /// The answer to the join (or resume) request.
    fn answer(&mut self, conn: ConnId, now: Instant, bytes: &[u8]) {
        match wire::decode(bytes) {
            Ok(Message::JoinAccepted(accepted)) if accepted.revision() != PROTOCOL_REVISION => {
                let reason = revision_refusal("host", accepted.revision(), "client");
                self.end(conn, CLOSE_SHUTDOWN, reason, DisconnectCause::Refused);
            }
            Ok(Message::JoinAccepted(accepted)) => {
                let chunk_bytes = match accepted.max_chunk_bytes() {
                    0 => self.config.max_chunk_bytes,
                    bytes => bytes as usize,
                };
                let bounds = self.config.codec.bounded_for(&self.registry, chunk_bytes);
                self.compression.set_bounds(&bounds);
                self.out.push_back(Output::Admitted {
                    conn,
                    read_bound: max_stream_message(&bounds),
                    // The host is trusted (its certificate is checked): not paced.
                    paced: false,
                });
                let peer = accepted.peer();
                let poses = PoseLink::new(peer, self.config.poses.volume, true, now);
                let mut link = Link::new(conn, peer, poses);
                link.dicts = PeerDicts::to_host();
                // The host sends its dictionaries again on every connection.
                self.compression.clear_dictionaries();
                self.resume = accepted
                    .resume()
                    .map(|r| r.bytes().to_vec())
                    .unwrap_or_default();
                self.replica.set_partial_snapshots(accepted.partial());
                // A new connection: the host codes nothing against what came before.
                self.replica.clear_baselines();
                match self.link.take() {
                    // Resumed: the replica and this client's own pending writes carry on.
                    Some(old) if accepted.resumed() => {
                        let mut outbox = old.outbox;
                        outbox.forget_in_flight();
                        link.outbox = outbox;
                        link.received = old.received;
                        // Without a complete snapshot it asked for one: none comes for an
                        // empty world.
                        if self.replica.snapshot_tick() == 0 && accepted.snapshot_chunks() == 0 {
                            self.replica.apply_empty_snapshot(accepted.tick());
                        }
                    }
                    _ => {
                        self.peer = Some(peer);
                        self.replica.set_owner(peer, accepted.next_counter());
                        // Own changes count from here (this also closes the replica's
                        // tick).
                        self.marked = self
                            .replica
                            .owned_keys_since(self.replica.world().tick())
                            .map_or(self.marked, |keys| keys.tick);
                        if accepted.snapshot_chunks() == 0 {
                            self.replica.apply_empty_snapshot(accepted.tick());
                        }
                    }
                }
                self.link = Some(link);
                self.phase = Phase::Joined(conn);
                self.events.push(SessionEvent::Joined { peer });
            }
            Ok(Message::JoinRefused(refused)) => {
                let reason = match (refused.reason(), refused.host_types()) {
                    // The host's types: name what differs rather than two hashes.
                    (fb::RefuseReason::RegistryMismatch, Some(types)) => {
                        match wire::read_descriptors(Some(types)) {
                            Ok(types) => registry_differences(&self.registry, &types),
                            Err(_) => refused.message().unwrap_or("refused").to_owned(),
                        }
                    }
                    _ => refused.message().unwrap_or("refused").to_owned(),
                };
                let reason = format!("join refused: {reason}");
                self.end(conn, CLOSE_SHUTDOWN, reason, DisconnectCause::Refused);
            }
            _ => {
                let reason = "malformed answer to the join request".to_owned();
                self.end(conn, CLOSE_BROKEN_STREAM, reason, DisconnectCause::Protocol);
            }
        }
    }

    /// Closes `conn` and reports why, once.
    fn end(&mut self, conn: ConnId, code: u32, reason: String, cause: DisconnectCause) {
        self.out.push_back(Output::Close {
            conn,
            code,
            reason: reason.clone(),
        });
        self.handle_closed(conn, reason, cause);
    }

    /// A message of the host's stream after admission.
    fn stream_message(&mut self, bytes: &[u8]) {
        let Some(link) = &mut self.link else { return };
        link.diagnostics.payload_bytes_received += bytes.len() as u64;
        match split_stream_message(bytes) {
            Some((StreamKind::Control, frame)) => {
                let message = Compression::decode_control(frame);
                match message.as_deref().map(wire::decode) {
                    Ok(Ok(Message::WriteRejected(rejected))) => {
                        self.events.push(SessionEvent::WriteRejected {
                            peer: self.peer.unwrap_or_default(),
                            entity: EntityId(rejected.entity()),
                            component: ComponentId(rejected.component()),
                            reason: rejected.reason().unwrap_or("refused").to_owned(),
                        })
                    }
                    Ok(Ok(Message::Dictionary(dictionary))) => {
                        if let Some(id) = self.compression.accept(dictionary) {
                            let ack = control_message(&self.encoder.dictionary_ack(id));
                            link.send_reliable(ack, &mut self.out);
                        }
                    }
                    Ok(Ok(Message::PeerJoined(joined))) => {
                        self.poses.welcome(joined.peer());
                        self.events.push(SessionEvent::PeerJoined {
                            peer: joined.peer(),
                        });
                    }
                    Ok(Ok(Message::PeerLeft(left))) => {
                        self.poses.forget(left.peer());
                        self.events.push(SessionEvent::PeerLeft {
                            peer: left.peer(),
                            reason: left.reason().unwrap_or("left").to_owned(),
                        });
                    }
                    Ok(Ok(Message::DictionaryRetire(retire))) => {
                        self.compression.drop_dictionaries(retire.ids().iter());
                    }
                    Ok(Ok(Message::Owners(owners))) => self.take_owners(owners),
                    Ok(Ok(Message::Left(left))) => {
                        let listed = left.entities().iter().map(EntityId);
                        let gone: Vec<EntityId> = if left.only() {
                            // Everything it sees: the rest goes.
                            let seen: rustc_hash::FxHashSet<EntityId> = listed.collect();
                            self.replica
                                .world()
                                .entities()
                                .filter(|e| !seen.contains(e))
                                .collect()
                        } else {
                            listed.collect()
                        };
                        for entity in gone {
                            if self.replica.leave(entity, left.tick()) {
                                self.events.push(SessionEvent::Left { entity });
                            }
                        }
                    }
                    Ok(Ok(Message::OwnershipDenied(denied))) => {
                        self.events.push(SessionEvent::OwnershipDenied {
                            entity: EntityId(denied.entity()),
                            component: ComponentId(denied.component()),
                            refusal: OwnershipRefusal::from_u8(denied.reason().0),
                            reason: denied.message().unwrap_or("refused").to_owned(),
                        })
                    }
                    Ok(Ok(Message::AppMessage(message))) => {
                        self.messages.receive(link, message, true, &mut self.events)
                    }
                    Ok(Ok(Message::MessageRefused(refused))) => {
                        ClientMessages::refused(link, refused, &mut self.events)
                    }
                    _ => link.diagnostics.malformed += 1,
                }
            }
            Some((kind, frame)) => {
                let kind = kind.message_kind().unwrap_or(MessageKind::DeltaFrame);
                // A decode failure is counted by the codec, per kind and cause.
                let streams = &mut link.streams;
                let decoded = self.compression.decode_stream(kind, frame, streams);
                // Only a delta frame can be the state of a grant (snapshot chunks are not
                // decoded twice for it).
                let grant = match (&decoded, kind) {
                    (Ok(message), MessageKind::DeltaFrame) => grant_number(message),
                    _ => 0,
                };
                match decoded {
                    Ok(message) if grant > 0 => {
                        self.grant_frames.push((grant, message.into_owned()));
                    }
                    Ok(message) => match self.replica.apply(&message) {
                        Ok(crate::Applied::SnapshotChunk { .. }) => {
                            link.diagnostics.snapshot_bytes += message.len() as u64;
                        }
                        Ok(_) => {}
                        Err(_) => link.diagnostics.malformed += 1,
                    },
                    Err(e) => link.close_if_stream_broken(frame, &e, &mut self.out),
                }
            }
            None => link.diagnostics.malformed += 1,
        }
    }

    /// A message that arrived on `conn`'s unreliable channel at `arrival` (`now` is the
    /// time it is handled).
    pub fn handle_datagram(&mut self, conn: ConnId, arrival: Instant, now: Instant, bytes: &[u8]) {
        if self.phase != Phase::Joined(conn) {
            return;
        }
        if bytes == GOODBYE_DATAGRAM {
            let reason = HOST_SHUT_DOWN.to_owned();
            self.end(conn, CLOSE_SHUTDOWN, reason, DisconnectCause::HostClosed);
            return;
        }
        let Some(link) = &mut self.link else { return };
        if messages::is_message_datagram(bytes) {
            return self
                .messages
                .receive_datagram(link, bytes, &mut self.events);
        }
        if is_pose_datagram(bytes) {
            link.receive_poses(&mut self.poses, bytes, arrival, now, false, &mut self.out);
            return;
        }
        let Some((header, body)) = link.open_datagram(bytes, &mut self.compression) else {
            return;
        };
        let body_len = body.as_ref().map_or(0, |b| b.len());
        let replica = &self.replica;
        let mut held = true;
        let frame = link.receive((header, body.as_deref()), now, |frame| {
            held = replica.holds_baselines(frame);
            held
        });
        if !held {
            link.diagnostics.missing_baselines += 1;
        }
        if let Some(frame) = frame {
            // A refused frame changes nothing; the host sends newer state.
            if self.replica.apply_frame_in(frame, body_len).is_err() {
                link.diagnostics.malformed += 1;
            }
        }
        self.take_replica_events();
    }

    /// `conn` ended: `reason` in words, `cause` as a kind. Reported once; the replica
    /// and this client's pending writes stay, for [`Client::reconnect`].
    pub fn handle_closed(&mut self, conn: ConnId, reason: String, cause: DisconnectCause) {
        if self.connection() != Some(conn) {
            return;
        }
        self.phase = Phase::Idle;
        if !self.closed {
            self.closed = true;
            self.events
                .push(SessionEvent::Disconnected { reason, cause });
        }
    }

    /// Connecting to the host failed before there was a connection: reported once.
    pub fn handle_connect_failed(&mut self, reason: String, cause: DisconnectCause) {
        if self.phase == Phase::Idle && !self.closed {
            self.closed = true;
            self.events
                .push(SessionEvent::Disconnected { reason, cause });
        }
    }

    /// Whether the connection ended (or never came) and the engine was told.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// One tick at `now`: sends the host this client's own changes and acknowledgements
    /// (within `path`), and this client's poses.
    pub fn tick(&mut self, now: Instant, path: Path) {
        let (Some(link), Some(own)) = (&mut self.link, self.peer) else {
            return;
        };
        if !matches!(self.phase, Phase::Joined(_)) {
            return;
        }
        if let Ok(keys) = self.replica.owned_keys_since(self.marked) {
            let replica = &self.replica;
            link.outbox
                .mark_changes(&keys, |(c, e)| replica.owner_of(e, c) != Some(own));
            self.marked = keys.tick;
        }
        // Holding a leased grant: the host hears from this client well within the lease.
        if let Some(lease) = self.lease {
            let due = self
                .last_ack
                .is_none_or(|at| now.saturating_duration_since(at) >= lease / 4);
            if due
                && self
                    .replica
                    .owners()
                    .iter()
                    .any(|(_, _, r)| r.owner == Some(own) && r.flags & LEASED != 0)
            {
                let ack = control_message(&self.encoder.owners_ack(link.outbox.owner_seq));
                link.send_reliable(ack, &mut self.out);
                self.last_ack = Some(now);
            }
        }
        if let Some(wish) = self.interest.poll(now, &mut self.encoder) {
            link.send_reliable(control_message(&wish), &mut self.out);
        }
        let priorities = &self.priorities;
        link.send(
            self.replica.world(),
            self.marked,
            now,
            path,
            self.config.budget_bytes_per_tick,
            &|e| priorities.points(e, None, 1.0),
            (&mut self.coder, &mut self.encoder, None),
            &mut self.compression,
            &mut self.out,
        );
        self.poses.apply_clock(&mut link.poses);
        link.send_poses(&mut self.poses, own, now, false, path, &mut self.out);
        self.messages
            .tick(link, path, &mut self.events, &mut self.out);
    }

    /// Sends an application message (see [`messages`]) to `to`: the host
    /// ([`messages::PEER_HOST`]), one peer, or every other peer ([`messages::PEER_ALL`]);
    /// reliable-ordered now, or unreliable at the next tick. The host may refuse it later
    /// ([`SessionEvent::MessageRefused`]).
    pub fn send_message(
        &mut self,
        to: PeerId,
        channel: u32,
        reliable: bool,
        body: &[u8],
    ) -> Result<(), MessageError> {
        let link = match self.phase {
            Phase::Joined(_) => self.link.as_mut(),
            _ => None,
        };
        self.messages.send(
            link,
            self.peer,
            to,
            channel,
            reliable,
            body,
            &mut self.encoder,
            &mut self.out,
        )
    }

    /// When [`Client::tick`] next has work that no input brings, seen at `now` (`path` as
    /// the driver would give it to `tick`): an acknowledgement owed, or this client's own
    /// value to send or resend. `None`: nothing until something arrives or the engine
    /// writes (see [`Host::poll_timeout`](super::Host::poll_timeout)).
    pub fn poll_timeout(&self, now: Instant, path: Path) -> Option<Instant> {
        let link = self.link.as_ref()?;
        if !matches!(self.phase, Phase::Joined(_)) {
            return None;
        }
        if self.messages.has_queued() {
            return Some(now);
        }
        link.next_due(now, path)
            .into_iter()
            .chain(self.interest.next_due(now))
            .min()
    }

    /// Says what this client wants to see: interest volumes (usually around the head,
    /// updated every frame) and subscribed scopes. Sent to the host at most every
    /// [`INTEREST_INTERVAL`](crate::proto::interest::INTEREST_INTERVAL), and again after a
    /// reconnection. Has an effect when the host manages interest. Refused (nothing
    /// changed) when a volume is not valid or there are too many.
    pub fn set_interest(
        &mut self,
        volumes: &[Volume],
        scopes: &[u32],
    ) -> Result<(), InterestError> {
        self.interest.set(volumes, scopes)
    }

    /// Sets the priority weight of `entity` among this client's own writes (1 by
    /// default): when a tick's byte budget does not fit them all, heavier ones go first.
    pub fn set_priority(&mut self, entity: EntityId, weight: f32) -> Result<(), PriorityError> {
        self.priorities.set(entity, weight)
    }

    /// Says goodbye to the host on the unreliable channel (see [`GOODBYE_DATAGRAM`]); a
    /// driver that leaves repeats it until answered.
    pub fn goodbye(&mut self) {
        if let (Some(link), Phase::Joined(_)) = (&mut self.link, self.phase) {
            link.send_unreliable(GOODBYE_DATAGRAM.to_vec(), &mut self.out);
        }
    }

    /// Notes the replica's new events in the session's order (their bytes stay in the
    /// replica's arena).
    fn take_replica_events(&mut self) {
        let new = self.replica.pending_events() - self.events.replica_markers();
        self.events.replica_events(new);
        for entity in self.replica.take_swept_left() {
            self.events.push(SessionEvent::Left { entity });
        }
    }

    /// The protocol's figures (a driver adds its transport's to the peer's).
    pub fn diagnostics(&self) -> SessionDiagnostics {
        let stats = self.world().stats();
        let (compression, component_wire, unattributed_wire_bytes) =
            self.compression.diagnostics(self.world().registry());
        SessionDiagnostics {
            tick: self.replica.tick(),
            entities: stats.entities as u64,
            components: stats.components as u64,
            peers: self.peer_diagnostics().into_iter().collect(),
            compression,
            component_wire,
            unattributed_wire_bytes,
            ..SessionDiagnostics::default()
        }
    }

    /// The protocol's figures of the connection to the host.
    pub fn peer_diagnostics(&self) -> Option<PeerDiagnostics> {
        self.link.as_ref().map(|link| PeerDiagnostics {
            baseline_history_bytes: self.replica.baseline_bytes() as u64,
            missing_baselines: link.diagnostics.missing_baselines
                + self.replica.stats().missing_baselines,
            ..link.diagnostics()
        })
    }
}
