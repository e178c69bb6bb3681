//! The host's side of the protocol: the authoritative world, admission, one [`Link`] per
//! admitted client, its writes under the host's authority, resume, dictionaries, and the
//! relay of poses. Pure: see the module documentation of [`crate::proto`].

mod dictionaries;
mod interest;
mod join;
mod message_calls;
mod owners;
mod writes;

pub use owners::{OwnershipError, MAX_OWNERSHIP_REASON_BYTES};

use std::collections::{BTreeMap, VecDeque};
use std::time::Instant;

use rustc_hash::FxHashMap;

use super::admission::Admission;
use super::compression::{
    control_message, max_stream_message, message_values, split_stream_message, Compression,
    StreamKind,
};
use super::events::{PeerDiagnostics, SessionDiagnostics, SessionEvent};
use super::link::{Link, Outputs};
use super::messages::{self, HostMessages};
use super::outbox::{Key, Outbox, SharedFrames};
use super::ownership::{HostOwnership, PeerOwnership};
use super::poses::PoseHub;
use super::priority::Priorities;
use super::queue::{EventQueue, EventRef};
use super::rng::TokenRng;
use super::token::JoinSecret;
use super::value_coding::ValueCoder;
use super::{is_pose_datagram, Config, ConnId, Output, Path, CLOSE_SHUTDOWN, GOODBYE_DATAGRAM};
use crate::interest::Interest;
use crate::ownership::WHOLE_ENTITY;
use crate::registry::ComponentId;
use crate::wire::codec::MessageKind;
use crate::wire::{self, Encoder, Message};
use crate::world::{Change, EntityId, PeerId, World, WorldError};
use crate::xr::QuantizeError;
use interest::{follow_positions, read_positions};
use writes::ClientWrites;

/// Write rejections reported to a client per frame; more are only counted.
const REJECTIONS_REPORTED: usize = 16;

/// A connected client.
struct PeerLink {
    link: Link,
    /// Per key, the client tick of the newest write of it applied (latest wins, as the
    /// client's datagrams may come in any order).
    client_ticks: FxHashMap<Key, u64>,
    /// Client tick at which each of its entities was despawned: a write from before that
    /// arriving late must not bring the entity back.
    despawned_at: FxHashMap<EntityId, u64>,
    /// Token the client presents to resume this state after a dropped connection.
    resume: [u8; 16],
    ownership: PeerOwnership,
}

impl AsMut<Link> for PeerLink {
    fn as_mut(&mut self) -> &mut Link {
        &mut self.link
    }
}

/// A dropped client's state, kept for it to resume: changes keep being marked in its
/// outbox, so on resume it is sent exactly what it lacks.
struct Parked {
    client: PeerLink,
    since: Instant,
}

/// Why a [`Host`] could not start, with the world it was given.
pub struct HostConfigError {
    /// What is wrong.
    pub error: QuantizeError,
    /// The world, handed back.
    pub world: Box<World>,
}

/// The host's protocol endpoint. See the module documentation.
pub struct Host {
    world: World,
    config: Config,
    host_peer: PeerId,
    admission: Admission,
    /// Longest reliable message an admitted client may send.
    stream_bound: usize,
    peers: BTreeMap<PeerId, PeerLink>,
    /// Which admitted client each connection carries.
    conns: FxHashMap<ConnId, PeerId>,
    /// Changes up to this tick are marked in every outbox.
    marked: u64,
    /// Per client, above the highest entity counter it ever used (across connections).
    next_counters: FxHashMap<PeerId, u64>,
    /// Dropped clients that may resume.
    parked: FxHashMap<PeerId, Parked>,
    /// Join requests refused.
    joins_refused: u64,
    /// Codecs, dictionaries (trained here) and their figures.
    compression: Compression,
    ownership: HostOwnership,
    /// Who sees what, when interest management is on ([`Config::interest_cell`]).
    interest: Option<Interest<PeerId>>,
    /// Whether the interest grid has been filled from the world (at the first tick: what
    /// the engine spawned between hosting and then is in no change since `marked`).
    interest_primed: bool,
    /// The component and byte offset an entity's interest position is read from.
    position_source: Option<(ComponentId, usize)>,
    /// The engine's priority weights.
    priorities: Priorities,
    poses: PoseHub,
    /// Application messages: limits, relay, held messages.
    messages: HostMessages,
    rng: TokenRng,
    encoder: Encoder,
    /// Codes every client's values, once per value and baselines in a tick, and keeps the
    /// values sent that baselines name (see `proto::value_coding`).
    coder: ValueCoder,
    /// The state datagram bodies of this tick, shared by the clients in step.
    shared: SharedFrames,
    events: EventQueue,
    out: Outputs,
}

impl Host {
    /// A host of `world` (the authoritative state) admitting clients whose join tokens
    /// were minted with `secret`. `now` starts the session clock; `seed` makes its resume
    /// tokens (give it 32 unguessable bytes, or a fixed seed to replay a simulation).
    pub fn new(
        world: World,
        secret: JoinSecret,
        config: Config,
        now: Instant,
        seed: [u8; 32],
    ) -> Result<Host, HostConfigError> {
        if let Err(error) = config.poses.volume.validate() {
            return Err(HostConfigError {
                error,
                world: Box::new(world),
            });
        }
        // Decoding is bounded by what this session really sends with this registry.
        let codec = config
            .codec
            .bounded_for(world.registry(), config.max_chunk_bytes);
        let host_peer = world.config().local_peer;
        let interest = match config.interest_cell.map(Interest::new) {
            Some(Ok(mut interest)) => {
                for entity in world.entities() {
                    interest.insert(entity);
                }
                Some(interest)
            }
            Some(Err(_)) => {
                return Err(HostConfigError {
                    error: QuantizeError::InvalidVolume(
                        "the interest cell size must be a positive number",
                    ),
                    world: Box::new(world),
                })
            }
            None => None,
        };
        Ok(Host {
            interest,
            position_source: None,
            priorities: Priorities::default(),
            admission: Admission::new(
                secret,
                world.registry(),
                host_peer,
                config.room.clone(),
                config.max_clients,
            ),
            stream_bound: max_stream_message(&codec),
            marked: world.tick(),
            interest_primed: false,
            compression: Compression::new(
                codec,
                Some((config.train_after_samples, config.dictionary_bytes)),
            ),
            poses: PoseHub::new(config.poses, now),
            ownership: HostOwnership::new(config.ownership_lease, config.ownership_hook),
            messages: HostMessages::new(config.messages),
            world,
            config,
            host_peer,
            peers: BTreeMap::new(),
            conns: FxHashMap::default(),
            next_counters: FxHashMap::default(),
            parked: FxHashMap::default(),
            joins_refused: 0,
            rng: TokenRng::new(seed),
            encoder: Encoder::new(),
            coder: ValueCoder::default(),
            shared: SharedFrames::default(),
            events: EventQueue::default(),
            out: VecDeque::new(),
        })
    }

    /// The host's world, the host ended (a room server saves a closing room's).
    pub fn into_world(self) -> World {
        self.world
    }

    /// The authoritative world.
    pub fn world(&self) -> &World {
        &self.world
    }

    /// The authoritative world, to write (changes go to the clients from the next
    /// [`Host::tick`]).
    pub fn world_mut(&mut self) -> &mut World {
        &mut self.world
    }

    /// This host's peer id.
    pub fn peer(&self) -> PeerId {
        self.host_peer
    }

    fn check_owned(&self, entity: EntityId, component: ComponentId) -> Result<(), WorldError> {
        if self.ownership.owners.owner_of(entity, component) == Some(self.host_peer) {
            Ok(())
        } else {
            Err(WorldError::NotOwner {
                entity,
                peer: self.host_peer,
            })
        }
    }

    /// Creates an entity in the host's id range.
    pub fn spawn(&mut self) -> Result<EntityId, WorldError> {
        self.world.spawn()
    }

    /// Writes a value the host owns; one a client owns (or nobody) is
    /// `WorldError::NotOwner` (see [`Host::set_owner`]).
    pub fn set(
        &mut self,
        entity: EntityId,
        component: ComponentId,
        bytes: &[u8],
    ) -> Result<Change, WorldError> {
        self.check_owned(entity, component)?;
        self.world.set(entity, component, bytes)
    }

    /// Removes a component from an entity the host owns.
    pub fn remove(&mut self, entity: EntityId, component: ComponentId) -> Result<bool, WorldError> {
        self.check_owned(entity, component)?;
        self.world.remove(entity, component)
    }

    /// Destroys an entity the host owns.
    pub fn despawn(&mut self, entity: EntityId) -> Result<(), WorldError> {
        self.check_owned(entity, WHOLE_ENTITY)?;
        self.world.despawn(entity)
    }

    /// The next output for the driver, oldest first.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// The next event for the engine, oldest first.
    pub fn poll_event(&mut self) -> Option<SessionEvent> {
        self.events.pop(None)
    }

    /// Hands up to `max` events, oldest first, to `f`, borrowed until the next poll;
    /// returns how many.
    pub fn poll_events_with(&mut self, max: usize, f: impl FnMut(EventRef<'_>)) -> usize {
        self.events.poll_with(max, None, f)
    }

    /// A message that arrived on `conn`'s unreliable channel at `arrival` (`now` is the
    /// time it is handled). Nothing happens for a connection not admitted.
    pub fn handle_datagram(&mut self, conn: ConnId, arrival: Instant, now: Instant, bytes: &[u8]) {
        let Some(&peer) = self.conns.get(&conn) else {
            return;
        };
        if bytes == GOODBYE_DATAGRAM {
            self.out.push_back(Output::Close {
                conn,
                code: CLOSE_SHUTDOWN,
                reason: CLIENT_LEFT.to_owned(),
            });
            self.handle_closed(conn, now, CLIENT_LEFT.to_owned());
            // It left for good: no resume, what it owned is released now.
            if self.parked.remove(&peer).is_some() {
                self.admission.forget(peer);
                self.depart(peer);
            }
            return;
        }
        if messages::is_message_datagram(bytes) {
            let flooding = self.message_side().receive_datagram(peer, now, bytes);
            return self.disconnect_flooder(peer, now, flooding);
        }
        let Some(client) = self.peers.get_mut(&peer) else {
            return;
        };
        client.ownership.last_heard = Some(now);
        if is_pose_datagram(bytes) {
            client
                .link
                .receive_poses(&mut self.poses, bytes, arrival, now, true, &mut self.out);
            return;
        }
        let Some((header, body)) = client.link.open_datagram(bytes, &mut self.compression) else {
            return;
        };
        if let Some(frame) = client
            .link
            .receive((header, body.as_deref()), now, |_| true)
        {
            let counter = self.next_counters.entry(peer).or_insert(1);
            let mut writes = ClientWrites {
                world: &mut self.world,
                client,
                peer,
                next_counter: counter,
                ownership: &self.ownership,
                max_entities: self.config.max_entities,
                encoder: &mut self.encoder,
                events: &mut self.events,
                out: &mut self.out,
            };
            writes.apply(frame);
        }
    }

    /// A message that arrived on `conn`'s reliable channel, after its join request.
    pub fn handle_stream(&mut self, conn: ConnId, now: Instant, bytes: &[u8]) {
        let Some(&peer) = self.conns.get(&conn) else {
            return;
        };
        let Some(client) = self.peers.get_mut(&peer) else {
            return;
        };
        client.ownership.last_heard = Some(now);
        client.link.diagnostics.payload_bytes_received += bytes.len() as u64;
        let message = match split_stream_message(bytes) {
            Some((StreamKind::Control, frame)) => Compression::decode_control(frame),
            // A value too large for a datagram, in a delta frame.
            Some((StreamKind::DeltaFrame, frame)) => {
                let streams = &mut client.link.streams;
                match self
                    .compression
                    .decode_stream(MessageKind::DeltaFrame, frame, streams)
                {
                    Ok(message) => Ok(message),
                    // Counted by the codec, per kind and cause.
                    Err(e) => {
                        client.link.close_if_stream_broken(frame, &e, &mut self.out);
                        return;
                    }
                }
            }
            // Clients send no snapshots; anything else is not a stream message.
            Some((StreamKind::SnapshotChunk, _)) | None => {
                client.link.diagnostics.malformed += 1;
                return;
            }
        };
        match message.as_deref().map(wire::decode) {
            Ok(Ok(Message::DictionaryAck(ack))) => {
                client.link.dicts.acknowledge(ack.id());
            }
            Ok(Ok(Message::OwnersAck(ack))) => {
                let interest = self.interest.as_ref();
                for (entity, component) in client.ownership.acknowledged(ack.seq()) {
                    // Only what it still sees (what left its interest stays forgotten).
                    if interest.is_none_or(|i| i.is_relevant(peer, entity)) {
                        mark_entity_state(&self.world, &mut client.link.outbox, entity, component);
                    }
                }
            }
            Ok(Ok(Message::OwnershipRequest(request))) => {
                let entity = EntityId(request.entity());
                let component = ComponentId(request.component());
                let (action, policy, flags) = (request.action(), request.policy(), request.flags());
                self.ownership_request(peer, entity, component, action, policy, flags, now);
            }
            Ok(Ok(Message::ClientInterest(message))) => {
                self.client_interest(peer, message);
            }
            Ok(Ok(Message::AppMessage(message))) => {
                let flooding = self.message_side().receive(peer, now, message, true);
                self.disconnect_flooder(peer, now, flooding);
            }
            Ok(Ok(Message::DeltaFrame(frame))) => {
                let counter = self.next_counters.entry(peer).or_insert(1);
                let mut writes = ClientWrites {
                    world: &mut self.world,
                    client,
                    peer,
                    next_counter: counter,
                    ownership: &self.ownership,
                    max_entities: self.config.max_entities,
                    encoder: &mut self.encoder,
                    events: &mut self.events,
                    out: &mut self.out,
                };
                writes.apply(frame);
            }
            _ => client.link.diagnostics.malformed += 1,
        }
    }

    /// `conn` ended (`reason` in words): its client is parked for
    /// [`Config::resume_grace`], may resume in that time, and the others hear it left.
    pub fn handle_closed(&mut self, conn: ConnId, now: Instant, reason: String) {
        let Some(peer) = self.conns.remove(&conn) else {
            return;
        };
        self.poses.forget(peer);
        self.messages.forget(peer);
        if let Some(client) = self.peers.remove(&peer) {
            let notice = control_message(&self.encoder.peer_left(peer, &reason));
            for other in self.peers.values_mut() {
                other.link.send_reliable(notice.clone(), &mut self.out);
            }
            self.events.push(SessionEvent::PeerLeft { peer, reason });
            // Kept for the client to resume within the grace period.
            self.admission.left(peer, client.resume);
            self.parked.insert(peer, Parked { client, since: now });
        }
    }

    /// One tick at `now`: sends every client what changed (within `path`'s and the
    /// configured budget), installs and announces dictionaries, relays poses, forgets the
    /// parked clients whose grace ended, and closes the world's tick.
    pub fn tick(&mut self, now: Instant, mut path: impl FnMut(ConnId) -> Path) {
        self.update_ownership(now);
        self.mark_changes(now);
        self.update_interest();
        self.update_dictionaries(now);
        let budget = self.config.budget_bytes_per_tick;
        let (interest, priorities) = (self.interest.as_ref(), &self.priorities);
        for (&peer, client) in self.peers.iter_mut() {
            let path = path(client.link.conn);
            // Nearer (to this client's volumes) and heavier first, when not all fits.
            let points = |e: EntityId| match interest {
                Some(i) => priorities.points(e, i.distance(peer, e), i.cell()),
                None => priorities.points(e, None, 1.0),
            };
            client.link.send(
                &self.world,
                self.marked,
                now,
                path,
                budget,
                &points,
                (&mut self.coder, &mut self.encoder, Some(&mut self.shared)),
                &mut self.compression,
                &mut self.out,
            );
            client.link.send_poses(
                &mut self.poses,
                self.host_peer,
                now,
                true,
                path,
                &mut self.out,
            );
        }
        self.message_side().tick(now, &mut path);
        let grace = self.config.resume_grace;
        let expired: Vec<PeerId> = self
            .parked
            .iter()
            .filter(|(_, p)| now.saturating_duration_since(p.since) > grace)
            .map(|(&peer, _)| peer)
            .collect();
        for peer in expired {
            self.parked.remove(&peer);
            self.admission.forget(peer);
            self.depart(peer);
        }
        self.world.advance();
    }

    /// When [`Host::tick`] next has work that no input brings, seen at `now` (`path` as
    /// the driver would give it to `tick`): an acknowledgement owed, a value to send or
    /// resend, a parked client's grace ending. `None`: nothing until something arrives or
    /// the engine writes. An engine ticks every frame anyway; a driver without a frame
    /// loop (a server) may sleep until then, or until input. Poses pushed and dictionary
    /// trainings need a tick too.
    pub fn poll_timeout(
        &self,
        now: Instant,
        mut path: impl FnMut(ConnId) -> Path,
    ) -> Option<Instant> {
        let grace = self.config.resume_grace;
        let links = self
            .peers
            .values()
            .filter_map(|p| p.link.next_due(now, path(p.link.conn)));
        let parked = self.parked.values().map(|p| (p.since + grace).max(now));
        // Changes the engine made since the last tick are due now.
        let changed = self.world.journal().since(self.marked).next().map(|_| now);
        let ownership = self.ownership_due(now);
        let messages = self.messages.next_due(now);
        links
            .chain(parked)
            .chain(changed)
            .chain(ownership)
            .chain(messages)
            .min()
    }

    /// Marks what changed since the last tick in every client's outbox (parked ones
    /// too, so that a resume sends exactly what is missing).
    fn mark_changes(&mut self, now: Instant) {
        match self.world.changed_keys_since(self.marked) {
            Ok(keys) => {
                let parked = self
                    .parked
                    .iter_mut()
                    .map(|(peer, p)| (peer, &mut p.client));
                let owners = &self.ownership.owners;
                let interest = self.interest.as_ref();
                for (&peer, client) in self.peers.iter_mut().chain(parked) {
                    // What a client owns is not echoed back to it; what it does not see is
                    // not sent to it (what it owns it always sees).
                    client.link.outbox.mark_changes(&keys, |(c, e)| {
                        let owner = owners.owner_of(e, c);
                        owner == Some(peer)
                            || interest.is_some_and(|i| {
                                !i.is_relevant(peer, e)
                                    && owners.owner_of(e, WHOLE_ENTITY) != Some(peer)
                            })
                    });
                }
                for &entity in &keys.despawns {
                    self.ownership.forget_entity(entity);
                    self.priorities.forget(entity);
                    self.coder.history.forget_entity(entity);
                }
                if let Some(interest) = &mut self.interest {
                    if !self.interest_primed {
                        self.interest_primed = true;
                        for entity in self.world.entities() {
                            interest.insert(entity);
                        }
                        if let Some((component, offset)) = self.position_source {
                            read_positions(interest, &self.world, component, offset);
                        }
                    }
                    for &entity in &keys.spawns {
                        interest.insert(entity);
                    }
                    for &entity in &keys.despawns {
                        interest.remove(entity);
                    }
                    follow_positions(interest, &self.world, self.position_source, &keys);
                }
                self.marked = keys.tick;
            }
            Err(_) => {
                // History lost (the engine did not tick for a long time): every peer gets
                // a fresh snapshot, which also removes what it should no longer hold.
                let snapshot = self.world.snapshot(self.config.max_chunk_bytes);
                let chunks: Vec<_> = snapshot
                    .chunks
                    .iter()
                    .map(|c| (&c.bytes, message_values(&c.bytes)))
                    .collect();
                // What despawned in the lost history is not told apart: start again.
                self.coder.history.clear();
                for client in self.peers.values_mut() {
                    client.link.outbox = Outbox::default();
                    client.link.snapshot_tick = snapshot.tick;
                    for (bytes, values) in &chunks {
                        client.link.queue(
                            MessageKind::SnapshotChunk,
                            bytes,
                            values,
                            &mut self.compression,
                            now,
                            &mut self.out,
                        );
                    }
                }
                if let Some(interest) = &mut self.interest {
                    self.interest_primed = true;
                    // What came and went meanwhile, and where everything is now.
                    let gone: Vec<EntityId> = interest
                        .entities()
                        .filter(|&e| !self.world.is_alive(e))
                        .collect();
                    for entity in gone {
                        interest.remove(entity);
                    }
                    for entity in self.world.entities() {
                        interest.insert(entity);
                    }
                    if let Some((component, offset)) = self.position_source {
                        read_positions(interest, &self.world, component, offset);
                    }
                    for &peer in self.peers.keys() {
                        interest.set_held(peer, self.world.entities());
                    }
                }
                self.marked = snapshot.tick;
            }
        }
    }

    /// Says goodbye to every client on its unreliable channel (see
    /// [`GOODBYE_DATAGRAM`]); a driver that shuts down repeats it until each answered.
    pub fn goodbye(&mut self) {
        for client in self.peers.values_mut() {
            client
                .link
                .send_unreliable(GOODBYE_DATAGRAM.to_vec(), &mut self.out);
        }
    }

    /// Whether no client is connected or parked (waiting to resume).
    pub fn is_idle(&self) -> bool {
        self.peers.is_empty() && self.parked.is_empty()
    }

    /// Whether a resume request of `peer` presenting `token` is this host's to answer.
    pub(crate) fn may_resume(&self, peer: PeerId, token: &[u8]) -> bool {
        self.admission.may_resume(peer, token)
    }

    /// The connections of admitted clients, with their peers.
    pub fn connections(&self) -> impl Iterator<Item = (ConnId, PeerId)> + '_ {
        self.peers.iter().map(|(&peer, p)| (p.link.conn, peer))
    }

    /// The protocol's figures (a driver adds its transport's to each peer's).
    pub fn diagnostics(&self) -> SessionDiagnostics {
        let stats = self.world.stats();
        let (compression, component_wire, unattributed_wire_bytes) =
            self.compression.diagnostics(self.world.registry());
        SessionDiagnostics {
            tick: self.world.tick(),
            entities: stats.entities as u64,
            components: stats.components as u64,
            peers: self.peers.values().map(|p| p.link.diagnostics()).collect(),
            joins_refused: self.joins_refused,
            compression,
            component_wire,
            unattributed_wire_bytes,
            value_history_bytes: self.coder.history.bytes() as u64,
            values_coded: self.coder.stats.coded,
            values_coded_shared: self.coder.stats.shared,
            datagrams_encoded: self.shared.stats.encoded,
            datagrams_shared: self.shared.stats.shared,
            datagram_envelopes_shared: self.compression.envelopes_shared(),
            pose_relay: self.poses.relay_stats(),
            ..SessionDiagnostics::default()
        }
    }

    /// The protocol's figures of one client's connection.
    pub fn peer_diagnostics(&self, peer: PeerId) -> Option<PeerDiagnostics> {
        self.peers.get(&peer).map(|p| p.link.diagnostics())
    }

    /// The session's pose state: this host's devices, and the clients' to render.
    pub fn poses(&self) -> &PoseHub {
        &self.poses
    }

    /// The session's pose state, to push this host's devices and sample the clients'.
    pub fn poses_mut(&mut self) -> &mut PoseHub {
        &mut self.poses
    }
}

/// How the host reports a client that said goodbye.
pub const CLIENT_LEFT: &str = "client left";

/// Marks the state of `(entity, component)` (all of the entity for component 0) in an
/// outbox, to go again as it is now.
fn mark_entity_state(world: &World, outbox: &mut Outbox, entity: EntityId, component: ComponentId) {
    let tick = world.tick();
    outbox.mark((WHOLE_ENTITY, entity), tick);
    for descriptor in world.registry().descriptors() {
        if component == WHOLE_ENTITY || component == descriptor.id {
            outbox.mark((descriptor.id, entity), tick);
        }
    }
}
