//! Rooms: many hosts behind one set of connections, as a room server runs them. Each room
//! is a [`Host`] of its own world; a connection belongs to the room its join token names
//! (a version-2 token, see [`super::token`]). A room opens at its first join, from its
//! saved state or empty with the first client's component types (its join request carries
//! them), and closes once nobody has been in it for a while, its world handed back to be
//! saved. Like the host it is a pure state machine: calls in, outputs polled.
//!
//! Refused here, before any room is touched: a request that does not parse, a token that
//! names no room, a token that does not check out (so no one can open rooms without a
//! valid token), a room past the server's room limit or while it drains, component types
//! that break the limits. Each refusal names what was wrong, and nothing else is affected.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rustc_hash::FxHashMap;

use super::events::SessionEvent;
use super::rng::TokenRng;
use super::room_id::RoomId;
use super::token::{JoinSecret, JoinToken, TokenError, TokenVerifier};
use super::{Config, ConnId, Host, Output, Path};
use crate::ownership::WHOLE_ENTITY;
use crate::registry::Registry;
use crate::wire::registry_bytes::decode_registry;
use crate::wire::{self, fb, Encoder, Message};
use crate::world::{EntityId, World};

/// Where a room's world comes from when it opens: its saved state, or a new world.
pub trait RoomOpener {
    /// The world of `room`, opening for a first client whose component types are
    /// `registry`: the room's saved state if it has one (its own types: a client whose
    /// types differ is then refused by the room, naming them), else a new world of those
    /// types. An error, in words, refuses the join.
    fn open(&mut self, room: &RoomId, registry: &Registry) -> Result<World, String>;
}

/// A room server's settings.
#[derive(Clone, Debug)]
pub struct RoomsConfig {
    /// Each room's host settings; `max_clients` and `max_entities` are the per-room
    /// limits. Its `room` is set per room.
    pub host: Config,
    /// Most rooms open at once; a join for another room is refused.
    pub max_rooms: usize,
    /// Largest value a room's component type may hold, in bytes; a first client whose
    /// types allow more is refused.
    pub max_value_bytes: u32,
    /// A room nobody has been in (connected or waiting to resume) for this long closes.
    pub idle_close: Duration,
    /// Bytes a second one client may send (a second's worth at once): datagrams past it
    /// are dropped and counted, and a driver paces its stream by it
    /// ([`Rooms::client_bytes_per_second`]).
    pub client_bytes_per_second: u64,
}

impl Default for RoomsConfig {
    fn default() -> Self {
        RoomsConfig {
            host: Config::default(),
            max_rooms: 1000,
            max_value_bytes: 64 << 10,
            idle_close: Duration::from_secs(60),
            client_bytes_per_second: 1_000_000,
        }
    }
}

/// Figures of a room server's front door.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RoomsStats {
    /// Rooms opened (from saved state or new).
    pub rooms_opened: u64,
    /// Rooms closed after standing empty.
    pub rooms_closed: u64,
    /// Joins refused before reaching a room (each room counts its own refusals too).
    pub joins_refused: u64,
    /// Datagrams dropped because their client sent faster than
    /// [`RoomsConfig::client_bytes_per_second`].
    pub datagrams_over_rate: u64,
}

/// A connection's allowance of bytes (a token bucket holding at most a second's worth).
#[derive(Clone, Copy, Debug)]
struct Allowance {
    bytes: f64,
    at: Instant,
}

/// A join refused before it reached a room.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DoorRefusal {
    /// Where the connection came from, when the driver knows.
    pub from: Option<SocketAddr>,
    /// The reason on the wire.
    pub reason: fb::RefuseReason,
    /// The reason in words, as the client was told.
    pub message: String,
}

/// An open room.
struct Room {
    host: Host,
    /// Since when nobody is in it (`None` while someone is).
    idle_since: Option<Instant>,
}

/// The rooms of a room server. See the module documentation.
pub struct Rooms {
    secret: JoinSecret,
    config: RoomsConfig,
    opener: Box<dyn RoomOpener + Send>,
    rooms: BTreeMap<RoomId, Room>,
    /// Which room each routed connection is in, and what it may still send.
    conns: FxHashMap<ConnId, (RoomId, Allowance)>,
    rng: TokenRng,
    encoder: Encoder,
    draining: bool,
    stats: RoomsStats,
    /// Refusals at the door, for the server's log and metrics.
    refusals: VecDeque<DoorRefusal>,
    out: VecDeque<Output>,
}

/// Most refusals kept for the log between two polls; more are only counted.
const REFUSALS_KEPT: usize = 256;

impl Rooms {
    /// Rooms whose tokens are minted with `secret`, opened through `opener`; `seed` makes
    /// the rooms' resume tokens (32 unguessable bytes, or fixed to replay a simulation).
    pub fn new(
        secret: JoinSecret,
        config: RoomsConfig,
        opener: Box<dyn RoomOpener + Send>,
        seed: [u8; 32],
    ) -> Rooms {
        Rooms {
            secret,
            config,
            opener,
            rooms: BTreeMap::new(),
            conns: FxHashMap::default(),
            rng: TokenRng::new(seed),
            encoder: Encoder::new(),
            draining: false,
            stats: RoomsStats::default(),
            refusals: VecDeque::new(),
            out: VecDeque::new(),
        }
    }

    /// The first reliable message of a new connection: routed to the room its token
    /// names (opening it if need be), or refused with a reason.
    pub fn handle_join(
        &mut self,
        conn: ConnId,
        from: Option<SocketAddr>,
        now: Instant,
        unix_now: u64,
        request: &[u8],
    ) {
        match self.route(request, now, unix_now) {
            Ok(room) => {
                let Some(open) = self.rooms.get_mut(&room) else {
                    return;
                };
                open.host.handle_join(conn, from, now, unix_now, request);
                open.idle_since = None;
                move_outputs(&mut open.host, &mut self.out);
                let allowance = Allowance {
                    bytes: self.config.client_bytes_per_second as f64,
                    at: now,
                };
                self.conns.insert(conn, (room, allowance));
            }
            Err((reason, message)) => {
                self.stats.joins_refused += 1;
                // A registry mismatch is told the room's types, to name what differs.
                let types = match (reason, self.token_room(request)) {
                    (fb::RefuseReason::RegistryMismatch, Some(room)) => self
                        .rooms
                        .get(&room)
                        .map(|open| open.host.world().registry().descriptors().to_vec()),
                    _ => None,
                };
                let refusal = self.encoder.join_refused_with_types(
                    reason,
                    &message,
                    types.as_deref().unwrap_or(&[]),
                );
                super::push_refusal(&mut self.out, conn, refusal, message.clone());
                if self.refusals.len() < REFUSALS_KEPT {
                    self.refusals.push_back(DoorRefusal {
                        from,
                        reason,
                        message,
                    });
                }
            }
        }
    }

    /// The room a join request's token names, if it parses.
    fn token_room(&self, request: &[u8]) -> Option<RoomId> {
        let Ok(Message::JoinRequest(request)) = wire::decode(request) else {
            return None;
        };
        let token = JoinToken::from_text(request.token()).ok()?;
        RoomId::new(token.room()?).ok()
    }

    /// The room a join request goes to, opened if it was not.
    fn route(
        &mut self,
        request: &[u8],
        now: Instant,
        unix_now: u64,
    ) -> Result<RoomId, (fb::RefuseReason, String)> {
        let malformed = || {
            (
                fb::RefuseReason::Malformed,
                "malformed join request".to_owned(),
            )
        };
        let Ok(Message::JoinRequest(request)) = wire::decode(request) else {
            return Err(malformed());
        };
        // Another protocol revision opens no room (its room's host would refuse it too).
        if request.revision() != wire::PROTOCOL_REVISION {
            return Err((
                fb::RefuseReason::ProtocolRevision,
                super::admission::revision_refusal("client", request.revision(), "host"),
            ));
        }
        if self.draining {
            return Err((
                fb::RefuseReason::RoomUnavailable,
                "the server is shutting down".to_owned(),
            ));
        }
        // A resume request names no room: it belongs to the room that parked its peer.
        if let Some(resume) = request.resume() {
            let peer = request.peer();
            return self
                .rooms
                .iter()
                .find(|(_, r)| r.host.may_resume(peer, resume.bytes()))
                .map(|(room, _)| room.clone())
                .ok_or_else(|| {
                    (
                        fb::RefuseReason::ResumeUnknown,
                        format!("resume token of peer {peer} unknown or expired: join with a fresh token"),
                    )
                });
        }
        let token = JoinToken::from_text(request.token())
            .map_err(|e| (fb::RefuseReason::TokenMalformed, e.to_string()))?;
        let Some(room) = token.room().and_then(|r| RoomId::new(r).ok()) else {
            return Err((
                fb::RefuseReason::WrongRoom,
                "join token names no room (a version-1 token, for a hosted session); this is a room server: mint a token for a room".to_owned(),
            ));
        };
        // Checked at the door, before a room is opened or touched (the room checks it
        // again, and records its use against replay).
        TokenVerifier::for_room(self.secret.clone(), room.clone())
            .verify(request.token(), unix_now)
            .map_err(|e| {
                let reason = match e {
                    TokenError::Forged => fb::RefuseReason::TokenForged,
                    TokenError::Expired { .. } => fb::RefuseReason::TokenExpired,
                    _ => fb::RefuseReason::TokenMalformed,
                };
                (reason, e.to_string())
            })?;
        if let Some(open) = self.rooms.get(&room) {
            let registry = open.host.world().registry();
            if request.registry_hash() != registry.hash() {
                return Err((
                    fb::RefuseReason::RegistryMismatch,
                    format!(
                        "component registry mismatch: client {:#018x}, room {room} {:#018x} (the client was sent the room's {} component types)",
                        request.registry_hash(),
                        registry.hash(),
                        registry.len()
                    ),
                ));
            }
            let max = self.config.host.max_clients.unwrap_or(usize::MAX);
            if open.host.connections().count() >= max {
                return Err((
                    fb::RefuseReason::RoomFull,
                    format!("room {room} is full: {max} peers, its limit"),
                ));
            }
            return Ok(room);
        }
        if self.rooms.len() >= self.config.max_rooms {
            return Err((
                fb::RefuseReason::RoomUnavailable,
                format!(
                    "room {room} cannot open: the server holds {} rooms, its limit",
                    self.config.max_rooms
                ),
            ));
        }
        let types = request.registry().map_or(&[][..], |v| v.bytes());
        let (registry, _) = decode_registry(types).map_err(|e| {
            (
                fb::RefuseReason::Malformed,
                format!("the join request's component types: {e}"),
            )
        })?;
        if let Some(big) = registry
            .descriptors()
            .iter()
            .find(|d| d.layout.max_bytes() > self.config.max_value_bytes)
        {
            return Err((
                fb::RefuseReason::OverLimit,
                format!(
                    "component type {:?} holds values of up to {} bytes; rooms here hold at most {}",
                    big.name,
                    big.layout.max_bytes(),
                    self.config.max_value_bytes
                ),
            ));
        }
        let unavailable = |why: String| {
            (
                fb::RefuseReason::RoomUnavailable,
                format!("room {room} cannot open: {why}"),
            )
        };
        let world = self.opener.open(&room, &registry).map_err(unavailable)?;
        let mut config = self.config.host.clone();
        config.room = Some(room.clone());
        let mut seed = [0u8; 32];
        seed[..16].copy_from_slice(&self.rng.token());
        seed[16..].copy_from_slice(&self.rng.token());
        let mut host = Host::new(world, self.secret.clone(), config, now, seed)
            .map_err(|e| unavailable(e.error.to_string()))?;
        // A restored room's entities were its clients'; none is here to hold them now, so
        // the room holds them, for any client to take (else each would wait for a creator
        // who may never come back).
        let host_peer = host.peer();
        let held: Vec<EntityId> = host
            .world()
            .entities()
            .filter(|e| e.creator() != host_peer)
            .collect();
        for entity in held {
            // Alive (just listed) and nobody is a valid owner: this cannot fail.
            let _ = host.set_owner(entity, WHOLE_ENTITY, None);
        }
        self.rooms.insert(
            room.clone(),
            Room {
                host,
                idle_since: None,
            },
        );
        self.stats.rooms_opened += 1;
        Ok(room)
    }

    /// A message that arrived on `conn`'s unreliable channel; dropped (and counted) when
    /// its client sends faster than its allowance.
    pub fn handle_datagram(&mut self, conn: ConnId, arrival: Instant, now: Instant, bytes: &[u8]) {
        let rate = self.config.client_bytes_per_second as f64;
        if let Some((room, allowance)) = self.conns.get_mut(&conn) {
            let refill = now.saturating_duration_since(allowance.at).as_secs_f64() * rate;
            allowance.bytes = (allowance.bytes + refill).min(rate);
            allowance.at = now;
            if bytes.len() as f64 > allowance.bytes {
                self.stats.datagrams_over_rate += 1;
                return;
            }
            allowance.bytes -= bytes.len() as f64;
            if let Some(open) = self.rooms.get_mut(room) {
                open.host.handle_datagram(conn, arrival, now, bytes);
                move_outputs(&mut open.host, &mut self.out);
            }
        }
    }

    /// A message that arrived on `conn`'s reliable channel, after its join request.
    pub fn handle_stream(&mut self, conn: ConnId, now: Instant, bytes: &[u8]) {
        if let Some((room, _)) = self.conns.get(&conn) {
            if let Some(open) = self.rooms.get_mut(room) {
                open.host.handle_stream(conn, now, bytes);
                move_outputs(&mut open.host, &mut self.out);
            }
        }
    }

    /// `conn` ended.
    pub fn handle_closed(&mut self, conn: ConnId, now: Instant, reason: String) {
        if let Some((room, _)) = self.conns.remove(&conn) {
            if let Some(open) = self.rooms.get_mut(&room) {
                open.host.handle_closed(conn, now, reason);
                move_outputs(&mut open.host, &mut self.out);
            }
        }
    }

    /// One tick of every room at `now` (see [`Host::tick`]).
    pub fn tick(&mut self, now: Instant, mut path: impl FnMut(ConnId) -> Path) {
        for open in self.rooms.values_mut() {
            open.host.tick(now, &mut path);
            move_outputs(&mut open.host, &mut self.out);
            if open.host.is_idle() {
                open.idle_since.get_or_insert(now);
            } else {
                open.idle_since = None;
            }
        }
    }

    /// A room nobody has been in for [`RoomsConfig::idle_close`] at `now`, closed: its
    /// world comes back, to be saved. `None` when no room is due.
    pub fn close_idle(&mut self, now: Instant) -> Option<(RoomId, World)> {
        let after = self.config.idle_close;
        let room = self
            .rooms
            .iter()
            .find(|(_, r)| {
                r.idle_since
                    .is_some_and(|since| now.saturating_duration_since(since) >= after)
            })
            .map(|(room, _)| room.clone())?;
        let open = self.rooms.remove(&room)?;
        // Nobody is in it, but a connection closing right now may still be routed to it.
        self.conns.retain(|_, (r, _)| *r != room);
        self.stats.rooms_closed += 1;
        Some((room, open.host.into_world()))
    }

    /// Refuses every join from now on, and says goodbye to every client (a driver that
    /// shuts down repeats it until each answered).
    pub fn drain(&mut self) {
        self.draining = true;
        for open in self.rooms.values_mut() {
            open.host.goodbye();
            move_outputs(&mut open.host, &mut self.out);
        }
    }

    /// Whether [`Rooms::drain`] was called.
    pub fn is_draining(&self) -> bool {
        self.draining
    }

    /// The next output for the driver, oldest first.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// Hands every room's pending events to `f`, with the room's id.
    pub fn for_each_event(&mut self, mut f: impl FnMut(&RoomId, SessionEvent)) {
        for (room, open) in &mut self.rooms {
            while let Some(event) = open.host.poll_event() {
                f(room, event);
            }
        }
    }

    /// The joins refused at the door since the last call (at most a few hundred are kept
    /// between two calls; [`RoomsStats::joins_refused`] counts them all).
    pub fn take_refusals(&mut self) -> impl Iterator<Item = DoorRefusal> + '_ {
        self.refusals.drain(..)
    }

    /// The open rooms and their hosts.
    pub fn iter(&self) -> impl Iterator<Item = (&RoomId, &Host)> + '_ {
        self.rooms.iter().map(|(room, open)| (room, &open.host))
    }

    /// The open rooms and their hosts, mutably (dictionary trainings come back this way).
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (&RoomId, &mut Host)> + '_ {
        self.rooms
            .iter_mut()
            .map(|(room, open)| (room, &mut open.host))
    }

    /// The host of `room`, if it is open.
    pub fn get(&self, room: &RoomId) -> Option<&Host> {
        self.rooms.get(room).map(|open| &open.host)
    }

    /// The host of `room`, if it is open, mutably.
    pub fn get_mut(&mut self, room: &RoomId) -> Option<&mut Host> {
        self.rooms.get_mut(room).map(|open| &mut open.host)
    }

    /// How many rooms are open.
    pub fn len(&self) -> usize {
        self.rooms.len()
    }

    /// Whether no room is open.
    pub fn is_empty(&self) -> bool {
        self.rooms.is_empty()
    }

    /// Bytes a second one client may send (see [`RoomsConfig::client_bytes_per_second`]).
    pub fn client_bytes_per_second(&self) -> u64 {
        self.config.client_bytes_per_second
    }

    /// The front door's figures.
    pub fn stats(&self) -> RoomsStats {
        self.stats
    }
}

/// Moves a room's outputs to the driver's queue.
fn move_outputs(host: &mut Host, out: &mut VecDeque<Output>) {
    while let Some(output) = host.poll_output() {
        out.push_back(output);
    }
}

impl std::fmt::Debug for Rooms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rooms")
            .field("rooms", &self.rooms.len())
            .field("connections", &self.conns.len())
            .field("draining", &self.draining)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests;
