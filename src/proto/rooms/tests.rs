//! Rooms over a small in-process network: every message is delivered, in order, at the
//! next pump (the network behaviour itself is the simulator's and `tests/serve_rooms.rs`'s
//! business; here it is routing, isolation, limits and refusals).

use std::collections::HashSet;
use std::time::{Duration, Instant};

use super::*;
use crate::proto::token::{mint, mint_for_room};
use crate::proto::{Channel, Client, SessionEvent};
use crate::registry::Layout;
use crate::world::WorldConfig;

const UNIX: u64 = 1_800_000_000;

fn secret() -> JoinSecret {
    JoinSecret::from_bytes([9; 32])
}

fn registry(extra: bool) -> Registry {
    let mut registry = Registry::new();
    registry.register("test.Blob", Layout::Fixed(8)).unwrap();
    if extra {
        registry
            .register("test.Label", Layout::Variable { max: 1 << 20 })
            .unwrap();
    }
    registry
}

/// Opens every room empty, with the first client's types; or fails for rooms named so;
/// rooms named `saved-*` come with an entity peer 1 created, as a restored room does.
struct Empty;

impl RoomOpener for Empty {
    fn open(&mut self, room: &RoomId, registry: &Registry) -> Result<World, String> {
        if room.as_str().starts_with("broken") {
            return Err("its saved state cannot be read".into());
        }
        let mut world = World::new(WorldConfig::default());
        for d in registry.descriptors() {
            world
                .register(&d.name, d.layout)
                .map_err(|e| e.to_string())?;
        }
        if room.as_str().starts_with("saved") {
            let entity = saved_entity();
            world.spawn_with_id(entity, crate::world::Stamp::Local);
            let blob = registry.descriptors()[0].id;
            world
                .set(entity, blob, &9u64.to_le_bytes())
                .map_err(|e| e.to_string())?;
        }
        Ok(world)
    }
}

/// The entity of a `saved-*` room: peer 1's first.
fn saved_entity() -> crate::world::EntityId {
    crate::world::EntityId::new(1, 1).unwrap()
}

struct Peer {
    client: Client,
    conn: ConnId,
    joined: bool,
    events: Vec<SessionEvent>,
}

struct Net {
    rooms: Rooms,
    peers: Vec<Peer>,
    now: Instant,
    next_conn: u64,
}

fn path() -> Path {
    Path {
        max_datagram: 1200,
        rtt: Duration::from_millis(10),
        budget: usize::MAX,
    }
}

impl Net {
    fn new(config: RoomsConfig) -> Net {
        Net {
            rooms: Rooms::new(secret(), config, Box::new(Empty), [3; 32]),
            peers: Vec::new(),
            now: Instant::now(),
            next_conn: 1,
        }
    }

    fn join_with(&mut self, token: &str, registry: &Registry) -> usize {
        let mut client = Client::new(registry, token, Config::default(), self.now).unwrap();
        let conn = ConnId(self.next_conn);
        self.next_conn += 1;
        client.connected(conn);
        self.peers.push(Peer {
            client,
            conn,
            joined: false,
            events: Vec::new(),
        });
        self.pump();
        self.peers.len() - 1
    }

    fn join(&mut self, room: &str, peer: u16) -> usize {
        let room = RoomId::new(room).unwrap();
        let token = mint_for_room(&secret(), &room, peer, UNIX + 60, None).to_text();
        self.join_with(&token, &registry(false))
    }

    fn pump(&mut self) {
        loop {
            let mut moved = false;
            while let Some(output) = self.rooms.poll_output() {
                moved = true;
                let Some(peer) = self.peers.iter_mut().find(|p| match &output {
                    Output::Send { conn, .. }
                    | Output::Admitted { conn, .. }
                    | Output::Close { conn, .. } => *conn == p.conn,
                }) else {
                    continue;
                };
                match output {
                    Output::Send {
                        conn,
                        channel: Channel::Reliable,
                        bytes,
                    } => peer.client.handle_stream(conn, self.now, &bytes),
                    Output::Send { conn, bytes, .. } => peer
                        .client
                        .handle_datagram(conn, self.now, self.now, &bytes),
                    Output::Close { conn, reason, .. } => peer.client.handle_closed(
                        conn,
                        reason,
                        crate::proto::DisconnectCause::HostClosed,
                    ),
                    Output::Admitted { .. } => {}
                }
            }
            for peer in &mut self.peers {
                while let Some(output) = peer.client.poll_output() {
                    moved = true;
                    match output {
                        Output::Send {
                            conn,
                            channel: Channel::Reliable,
                            bytes,
                        } if !peer.joined => {
                            peer.joined = true;
                            self.rooms.handle_join(conn, None, self.now, UNIX, &bytes);
                        }
                        Output::Send {
                            conn,
                            channel: Channel::Reliable,
                            bytes,
                        } => self.rooms.handle_stream(conn, self.now, &bytes),
                        Output::Send { conn, bytes, .. } => {
                            self.rooms.handle_datagram(conn, self.now, self.now, &bytes)
                        }
                        Output::Close { conn, reason, .. } => {
                            self.rooms.handle_closed(conn, self.now, reason)
                        }
                        Output::Admitted { .. } => {}
                    }
                }
                while let Some(event) = peer.client.poll_event() {
                    peer.events.push(event);
                }
            }
            if !moved {
                break;
            }
        }
    }

    fn step(&mut self, ticks: usize) {
        for _ in 0..ticks {
            self.rooms.tick(self.now, |_| path());
            for peer in &mut self.peers {
                peer.client.tick(self.now, path());
            }
            self.pump();
            self.now += Duration::from_millis(16);
        }
    }

    /// Client `index` spawns an entity holding `value` in the test's blob type.
    fn spawn_blob(&mut self, index: usize, value: u64) -> crate::world::EntityId {
        let blob = registry(false).descriptors()[0].id;
        let client = &mut self.peers[index].client;
        let entity = client.spawn().unwrap();
        client.set(entity, blob, &value.to_le_bytes()).unwrap();
        entity
    }

    fn disconnect_reason(&self, index: usize) -> Option<&str> {
        self.peers[index].events.iter().find_map(|e| match e {
            SessionEvent::Disconnected { reason, .. } => Some(reason.as_str()),
            _ => None,
        })
    }

    fn room_hash(&self, room: &str) -> u64 {
        let room = RoomId::new(room).unwrap();
        let host = self.rooms.get(&room).unwrap();
        host.world().state_hash()
    }
}

#[test]
fn two_rooms_on_one_door_stay_apart_and_each_converges() {
    let mut net = Net::new(RoomsConfig::default());
    let a1 = net.join("alpha", 1);
    let a2 = net.join("alpha", 2);
    let b1 = net.join("beta", 1);
    net.step(5);
    assert_eq!(net.rooms.len(), 2);
    assert_eq!(net.rooms.stats().rooms_opened, 2);
    for i in [a1, a2, b1] {
        assert!(net.peers[i].client.peer().is_some(), "client {i} joined");
    }
    // Each writes its own entities; peer 1 of beta is another peer than peer 1 of alpha.
    let spawned: Vec<_> = [(a1, 1u64), (a2, 2), (b1, 3)]
        .into_iter()
        .map(|(i, value)| net.spawn_blob(i, value))
        .collect();
    net.step(20);
    let (alpha, beta) = (net.room_hash("alpha"), net.room_hash("beta"));
    assert_ne!(alpha, beta);
    for i in [a1, a2] {
        assert_eq!(
            net.peers[i].client.world().state_hash(),
            alpha,
            "alpha client {i}"
        );
        assert_eq!(net.peers[i].client.world().entity_count(), 2);
    }
    assert_eq!(net.peers[b1].client.world().state_hash(), beta);
    assert_eq!(
        net.peers[b1].client.world().entity_count(),
        1,
        "nothing of alpha"
    );
    // A late joiner of beta gets beta's state only.
    let b2 = net.join("beta", 2);
    net.step(20);
    assert_eq!(net.peers[b2].client.world().state_hash(), beta);
    let seen: HashSet<_> = net.peers[b2].client.world().entities().collect();
    assert_eq!(seen, HashSet::from([spawned[2]]));
}

#[test]
fn a_room_keeps_a_leavers_entities_and_closes_when_idle_handing_its_world_back() {
    let mut net = Net::new(RoomsConfig {
        idle_close: Duration::from_millis(500),
        host: Config {
            resume_grace: Duration::from_millis(100),
            ..Config::default()
        },
        ..RoomsConfig::default()
    });
    let a = net.join("lobby", 1);
    net.step(3);
    let blob = registry(false).descriptors()[0].id;
    let e = net.spawn_blob(a, 7u64);
    net.step(10);
    net.peers[a].client.goodbye();
    net.pump();
    net.step(5);
    assert!(
        net.rooms.close_idle(net.now).is_none(),
        "not idle long enough"
    );
    net.step(40);
    let (room, world) = net.rooms.close_idle(net.now).expect("closed");
    assert_eq!(room.as_str(), "lobby");
    assert!(world.is_alive(e), "the leaver's entity stays with the room");
    assert_eq!(world.get(e, blob), Some(&7u64.to_le_bytes()[..]));
    assert!(net.rooms.is_empty());
    assert_eq!(net.rooms.stats().rooms_closed, 1);
}

#[test]
fn joins_the_door_refuses_name_what_was_wrong_and_touch_no_room() {
    let mut net = Net::new(RoomsConfig {
        max_rooms: 2,
        max_value_bytes: 1024,
        host: Config {
            max_clients: Some(1),
            ..Config::default()
        },
        ..RoomsConfig::default()
    });
    let first = net.join("alpha", 1);
    net.step(3);
    let hash = net.room_hash("alpha");
    let cases: Vec<(String, Registry, &str)> = vec![
        (
            mint(&secret(), 5, UNIX + 60, None).to_text(),
            registry(false),
            "join token names no room (a version-1 token",
        ),
        (
            mint_for_room(
                &JoinSecret::from_bytes([1; 32]),
                &RoomId::new("alpha").unwrap(),
                5,
                UNIX + 60,
                None,
            )
            .to_text(),
            registry(false),
            "forged",
        ),
        (
            mint_for_room(&secret(), &RoomId::new("alpha").unwrap(), 5, UNIX - 1, None).to_text(),
            registry(false),
            "expired",
        ),
        (
            mint_for_room(
                &secret(),
                &RoomId::new("alpha").unwrap(),
                5,
                UNIX + 60,
                None,
            )
            .to_text(),
            registry(true),
            "component registry mismatch",
        ),
        (
            mint_for_room(
                &secret(),
                &RoomId::new("alpha").unwrap(),
                5,
                UNIX + 60,
                None,
            )
            .to_text(),
            registry(false),
            "room alpha is full: 1 peers",
        ),
        (
            mint_for_room(&secret(), &RoomId::new("big").unwrap(), 5, UNIX + 60, None).to_text(),
            registry(true),
            "\"test.Label\" holds values of up to 1048576 bytes; rooms here hold at most 1024",
        ),
        (
            mint_for_room(
                &secret(),
                &RoomId::new("broken-1").unwrap(),
                5,
                UNIX + 60,
                None,
            )
            .to_text(),
            registry(false),
            "room broken-1 cannot open: its saved state cannot be read",
        ),
        (
            "not a token".to_owned(),
            registry(false),
            "malformed join token",
        ),
    ];
    for (token, types, why) in &cases {
        let i = net.join_with(token, types);
        let reason = net.disconnect_reason(i).unwrap_or_default().to_owned();
        assert!(reason.contains(why), "{why}: {reason}");
    }
    // The registry mismatch came with the room's types: the client named the difference.
    let mismatch = net.disconnect_reason(4).unwrap_or_default().to_owned();
    assert!(mismatch.contains("test.Label"), "{mismatch}");
    assert_eq!(net.rooms.stats().joins_refused, cases.len() as u64);
    let refusals: Vec<DoorRefusal> = net.rooms.take_refusals().collect();
    assert_eq!(refusals.len(), cases.len());
    assert_eq!(refusals[4].reason, fb::RefuseReason::RoomFull);
    // Only alpha is open, untouched, its client still in it.
    assert_eq!(net.rooms.len(), 1);
    assert_eq!(net.room_hash("alpha"), hash);
    net.step(3);
    assert!(net.peers[first].client.peer().is_some());
    assert!(net.disconnect_reason(first).is_none());

    // The room limit: beta opens (2 of 2), gamma does not.
    let b = net.join("beta", 1);
    assert!(net.disconnect_reason(b).is_none());
    let c = net.join("gamma", 1);
    let reason = net.disconnect_reason(c).unwrap_or_default();
    assert!(
        reason.contains("room gamma cannot open: the server holds 2 rooms, its limit"),
        "{reason}"
    );

    // Draining refuses everyone, even for an open room, and says goodbye to the clients.
    net.rooms.drain();
    net.pump();
    let d = net.join("beta", 2);
    let reason = net.disconnect_reason(d).unwrap_or_default();
    assert!(reason.contains("the server is shutting down"), "{reason}");
}

#[test]
fn a_client_over_its_byte_rate_loses_datagrams_not_the_room() {
    let mut net = Net::new(RoomsConfig {
        client_bytes_per_second: 2_000,
        ..RoomsConfig::default()
    });
    let a = net.join("alpha", 1);
    net.step(3);
    let conn = net.peers[a].conn;
    for _ in 0..10 {
        net.rooms
            .handle_datagram(conn, net.now, net.now, &[0u8; 1000]);
    }
    assert!(
        net.rooms.stats().datagrams_over_rate >= 8,
        "{:?}",
        net.rooms.stats()
    );
    net.step(3);
    assert!(net.disconnect_reason(a).is_none(), "still in its room");
}

#[test]
fn an_entity_handed_to_the_room_is_nobodys_and_another_client_takes_it() {
    let mut net = Net::new(RoomsConfig::default());
    let a = net.join("lobby", 1);
    let b = net.join("lobby", 2);
    net.step(3);
    let blob = registry(false).descriptors()[0].id;
    let e = net.spawn_blob(a, 1u64);
    net.step(10);
    let whole = crate::ownership::WHOLE_ENTITY;
    net.peers[a]
        .client
        .release_ownership(e, whole, net.now)
        .unwrap();
    net.step(10);
    let room = RoomId::new("lobby").unwrap();
    let owner = |net: &mut Net| {
        net.rooms
            .get_mut(&room)
            .and_then(|host| host.owner_of(e, whole))
    };
    assert_eq!(owner(&mut net), None, "handed to the room: nobody owns it");
    // Its creator leaves; it stays, and the other client takes it and writes it.
    net.peers[a].client.goodbye();
    net.step(10);
    net.peers[b].client.request_ownership(e, whole).unwrap();
    net.step(10);
    assert_eq!(owner(&mut net), Some(2));
    net.peers[b]
        .client
        .set(e, blob, &2u64.to_le_bytes())
        .unwrap();
    net.step(10);
    let host = net.rooms.get_mut(&room).unwrap();
    assert_eq!(host.world().get(e, blob), Some(&2u64.to_le_bytes()[..]));
}

#[test]
fn a_room_at_its_entity_limit_refuses_a_spawn_and_says_so() {
    let mut net = Net::new(RoomsConfig {
        host: Config {
            max_entities: Some(3),
            ..Config::default()
        },
        ..RoomsConfig::default()
    });
    let a = net.join("lobby", 1);
    net.step(3);
    for i in 0..4u64 {
        net.spawn_blob(a, i);
    }
    net.step(20);
    let room = RoomId::new("lobby").unwrap();
    assert_eq!(net.rooms.get_mut(&room).unwrap().world().entity_count(), 3);
    let rejected = net.peers[a].events.iter().find_map(|e| match e {
        SessionEvent::WriteRejected { reason, .. } => Some(reason.clone()),
        _ => None,
    });
    let reason = rejected.expect("the client was told");
    assert!(
        reason.contains("the room holds 3 entities, its limit"),
        "{reason}"
    );
    assert!(net.disconnect_reason(a).is_none(), "still in its room");
}

#[test]
fn a_dropped_client_resumes_into_its_own_room() {
    let mut net = Net::new(RoomsConfig::default());
    let a = net.join("alpha", 1);
    let b = net.join("beta", 1);
    net.step(5);
    let blob = registry(false).descriptors()[0].id;
    let e = net.spawn_blob(b, 5u64);
    net.step(10);
    // b's connection drops (a headset taken off); both sides hear of it.
    let old = net.peers[b].conn;
    net.rooms.handle_closed(old, net.now, "timed out".into());
    net.peers[b].client.handle_closed(
        old,
        "timed out".into(),
        crate::proto::DisconnectCause::TimedOut,
    );
    net.step(2);
    // Meanwhile beta changes? Its only client is away: the room keeps its state.
    net.peers[b].client.reconnect().unwrap();
    let conn = ConnId(net.next_conn);
    net.next_conn += 1;
    net.peers[b].conn = conn;
    net.peers[b].joined = false;
    net.peers[b].client.connected(conn);
    net.pump();
    net.step(10);
    assert_eq!(net.peers[b].client.peer(), Some(1));
    assert_eq!(
        net.rooms.stats().joins_refused,
        0,
        "the resume found its room"
    );
    assert_eq!(
        net.room_hash("beta"),
        net.peers[b].client.world().state_hash()
    );
    assert_eq!(
        net.peers[b].client.world().get(e, blob),
        Some(&5u64.to_le_bytes()[..])
    );
    // Alpha's peer 1 was never touched.
    assert!(net.disconnect_reason(a).is_none());
    // A resume token no room holds is refused at the door, by name.
    let forged = Encoder::new().resume_request(1, &[7; 16], 0, 1);
    net.rooms
        .handle_join(ConnId(999), None, net.now, UNIX, &forged);
    let refusals: Vec<DoorRefusal> = net.rooms.take_refusals().collect();
    assert_eq!(refusals.len(), 1);
    assert_eq!(refusals[0].reason, fb::RefuseReason::ResumeUnknown);
    assert!(
        refusals[0]
            .message
            .contains("resume token of peer 1 unknown"),
        "{:?}",
        refusals[0]
    );
}

#[test]
fn a_restored_rooms_entities_are_nobodys_until_a_client_takes_them() {
    let mut net = Net::new(RoomsConfig::default());
    // Peer 2 joins a room restored with an entity peer 1 created; peer 1 is not here.
    let b = net.join("saved-1", 2);
    net.step(5);
    let entity = saved_entity();
    let whole = crate::ownership::WHOLE_ENTITY;
    let room = RoomId::new("saved-1").unwrap();
    assert_eq!(
        net.rooms.get_mut(&room).unwrap().owner_of(entity, whole),
        None
    );
    assert!(net.peers[b].client.world().is_alive(entity));
    net.peers[b]
        .client
        .request_ownership(entity, whole)
        .unwrap();
    net.step(10);
    assert_eq!(
        net.rooms.get_mut(&room).unwrap().owner_of(entity, whole),
        Some(2)
    );
}

/// A join request of another protocol revision opens no room and is refused by name.
#[test]
fn a_join_of_another_protocol_revision_opens_no_room() {
    let mut net = Net::new(RoomsConfig::default());
    let token = mint_for_room(&secret(), &RoomId::new("old").unwrap(), 5, UNIX + 60, None);
    let mut fbb = flatbuffers::FlatBufferBuilder::new();
    let text = fbb.create_string(&token.to_text());
    let request = fb::JoinRequest::create(
        &mut fbb,
        &fb::JoinRequestArgs {
            token: Some(text),
            registry_hash: registry(false).hash(),
            revision: crate::wire::PROTOCOL_REVISION - 1,
            ..Default::default()
        },
    );
    let message = fb::Message::create(
        &mut fbb,
        &fb::MessageArgs {
            version: crate::wire::WIRE_VERSION,
            payload_type: fb::Payload::JoinRequest,
            payload: Some(request.as_union_value()),
        },
    );
    fbb.finish(message, Some(crate::wire::FILE_IDENTIFIER));
    net.rooms
        .handle_join(ConnId(900), None, net.now, UNIX, fbb.finished_data());
    assert!(net.rooms.is_empty(), "a room was opened");
    let refusals: Vec<DoorRefusal> = net.rooms.take_refusals().collect();
    assert_eq!(refusals.len(), 1);
    assert_eq!(refusals[0].reason, fb::RefuseReason::ProtocolRevision);
    assert!(
        refusals[0].message.contains("protocol revision 1"),
        "{}",
        refusals[0].message
    );
}
