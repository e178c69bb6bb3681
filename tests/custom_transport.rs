//! Sessions over a custom transport (`Session::host_custom` / `join_custom`), driven by an
//! in-memory transport written here as an engine would write its own: seeded loss,
//! duplication and reordering of unreliable messages, reliable messages late but in
//! order. Every wait is bounded; nothing binds a socket.
//!
//! What is held: host and clients converge (state hashes equal) under loss, duplication
//! and reordering; a dropped client resumes over a new connection; the goodbye is heard
//! both ways; a host trains its dictionary off the engine thread; and every bad input of
//! the transport calls is an error that changes nothing (or, a reliable message over its
//! bound, ends its connection).

use std::time::{Duration, Instant};

use theta_net::net::custom::{CustomTransport, TransportError, TransportOutput, CLOSE_LOST};
use theta_net::net::session::{
    DisconnectCause, Session, SessionConfig, SessionError, SessionEvent,
};
use theta_net::net::tls::{HostIdentity, ServerTrust};
use theta_net::proto::token::{mint, JoinSecret};
use theta_net::proto::{Channel, CLOSE_BROKEN_STREAM, CLOSE_REFUSED, CLOSE_SHUTDOWN};
use theta_net::wire::codec::MessageKind;
use theta_net::{ComponentId, EntityId, Layout, Registry, World};

/// Longest wall-clock wait for anything in these tests.
const WAIT: Duration = Duration::from_secs(30);

/// SplitMix64: the transport's only source of chance.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && (self.next() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }
}

/// What the in-memory network does to unreliable messages.
#[derive(Clone, Copy)]
struct Faults {
    loss: f64,
    duplicate: f64,
    /// Each message is delivered after 0..=`spread` rounds: later ones overtake.
    spread: u64,
}

const CLEAN: Faults = Faults {
    loss: 0.0,
    duplicate: 0.0,
    spread: 0,
};

/// Which session an end of a link belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum End {
    Host,
    Client(usize),
}

/// A message on its way.
enum Payload {
    Bytes(Channel, Vec<u8>),
    Closed(u32, String),
}

struct InFlight {
    due: u64,
    to: End,
    /// The receiving end's connection id.
    conn: u64,
    payload: Payload,
}

/// One connection: the host's id for it, the client's, and whether it is up.
struct Link {
    client: usize,
    host_conn: u64,
    client_conn: u64,
    open: bool,
    /// The latest round a reliable message is due each way (to host, to client): a later
    /// one never arrives sooner.
    reliable_due: [u64; 2],
}

/// A host and its clients over the in-memory transport.
struct Net {
    rng: Rng,
    faults: Faults,
    round: u64,
    host: Session,
    host_events: Vec<SessionEvent>,
    clients: Vec<Session>,
    client_events: Vec<Vec<SessionEvent>>,
    links: Vec<Link>,
    in_flight: Vec<InFlight>,
    next_id: u64,
    secret: JoinSecret,
    registry: Registry,
}

struct Types {
    position: ComponentId,
    name: ComponentId,
}

fn registry_world() -> (World, Types) {
    let mut world = World::default();
    let position = world.register("byo.Position", Layout::Fixed(12)).unwrap();
    let name = world
        .register("byo.Name", Layout::Variable { max: 48 })
        .unwrap();
    (world, Types { position, name })
}

fn value(rng: &mut Rng) -> [u8; 12] {
    let mut v = [0u8; 12];
    for chunk in v.chunks_mut(8) {
        chunk.copy_from_slice(&rng.next().to_le_bytes()[..chunk.len()]);
    }
    v
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

impl Net {
    /// A host of `world` over a network with `faults`.
    fn new(world: World, config: SessionConfig, faults: Faults, seed: u64) -> Net {
        let registry = world.registry().clone();
        let secret = JoinSecret::from_bytes([9; 32]);
        let host = Session::host_custom(world, secret.clone(), config, CustomTransport::default())
            .expect("host");
        Net {
            rng: Rng(seed),
            faults,
            round: 0,
            host,
            host_events: Vec::new(),
            clients: Vec::new(),
            client_events: Vec::new(),
            links: Vec::new(),
            in_flight: Vec::new(),
            next_id: 100,
            secret,
            registry,
        }
    }

    fn token(&mut self, peer: u16) -> String {
        mint(&self.secret, peer, unix_now() + 600, Some(self.rng.next())).to_text()
    }

    /// A new client, peer `peer`, connected now. Returns its index.
    fn join(&mut self, peer: u16) -> usize {
        let token = self.token(peer);
        let client = Session::join_custom(
            &self.registry,
            &token,
            SessionConfig::default(),
            CustomTransport::default(),
        )
        .expect("join");
        self.clients.push(client);
        self.client_events.push(Vec::new());
        let index = self.clients.len() - 1;
        self.connect(index);
        index
    }

    /// Opens a connection for client `index`: both engines report it.
    fn connect(&mut self, index: usize) {
        let (host_conn, client_conn) = (self.next_id, self.next_id + 1);
        self.next_id += 2;
        self.links.push(Link {
            client: index,
            host_conn,
            client_conn,
            open: true,
            reliable_due: [0; 2],
        });
        self.host.transport_connected(host_conn).expect("host side");
        self.clients[index]
            .transport_connected(client_conn)
            .expect("client side");
    }

    fn link_of(&self, from: End, conn: u64) -> Option<usize> {
        self.links.iter().position(|l| match from {
            End::Host => l.host_conn == conn,
            End::Client(i) => l.client == i && l.client_conn == conn,
        })
    }

    fn session(&mut self, end: End) -> &mut Session {
        match end {
            End::Host => &mut self.host,
            End::Client(i) => &mut self.clients[i],
        }
    }

    /// Carries out what `from` asks of its transport.
    fn drain(&mut self, from: End) {
        while let Some(output) = self.session(from).transport_poll().expect("poll") {
            let Some(l) = self.link_of(from, output.conn()) else {
                panic!("{from:?} sent on a connection it was never given: {output:?}");
            };
            if !self.links[l].open {
                continue;
            }
            let (to, conn, way) = match from {
                End::Host => (
                    End::Client(self.links[l].client),
                    self.links[l].client_conn,
                    1,
                ),
                End::Client(_) => (End::Host, self.links[l].host_conn, 0),
            };
            match output {
                TransportOutput::Send {
                    channel: Channel::Unreliable,
                    bytes,
                    ..
                } => {
                    if self.rng.chance(self.faults.loss) {
                        continue;
                    }
                    let copies = if self.rng.chance(self.faults.duplicate) {
                        2
                    } else {
                        1
                    };
                    for _ in 0..copies {
                        let due = self.round + self.rng.below(self.faults.spread + 1);
                        self.in_flight.push(InFlight {
                            due,
                            to,
                            conn,
                            payload: Payload::Bytes(Channel::Unreliable, bytes.clone()),
                        });
                    }
                }
                TransportOutput::Send {
                    channel: Channel::Reliable,
                    bytes,
                    ..
                } => {
                    // Late by retransmissions, never out of order.
                    let late = if self.rng.chance(self.faults.loss) {
                        2 * self.faults.spread
                    } else {
                        0
                    };
                    let due = (self.round + late).max(self.links[l].reliable_due[way]);
                    self.links[l].reliable_due[way] = due;
                    self.in_flight.push(InFlight {
                        due,
                        to,
                        conn,
                        payload: Payload::Bytes(Channel::Reliable, bytes),
                    });
                }
                TransportOutput::Close { code, reason, .. } => {
                    // An orderly close: after what was sent reliably.
                    self.links[l].open = false;
                    let due = self.round.max(self.links[l].reliable_due[way]);
                    self.in_flight.push(InFlight {
                        due,
                        to,
                        conn,
                        payload: Payload::Closed(code, reason),
                    });
                }
            }
        }
    }

    /// Delivers what is due.
    fn deliver(&mut self) {
        let round = self.round;
        let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.in_flight)
            .into_iter()
            .partition(|m| m.due <= round);
        self.in_flight = later;
        for m in due {
            let result = match m.payload {
                Payload::Bytes(channel, bytes) => self
                    .session(m.to)
                    .transport_receive(m.conn, channel, &bytes),
                Payload::Closed(code, reason) => {
                    self.session(m.to).transport_closed(m.conn, code, &reason)
                }
            };
            match result {
                Ok(()) => {}
                // The receiving end closed it already.
                Err(TransportError::UnknownConnection(_)) => {}
                // The receiving end left: what still arrives (an acknowledgement of the
                // owners of a departed client's entities, say) is refused, harmlessly.
                Err(TransportError::Closed(_)) if self.session(m.to).has_left() => {}
                Err(e) => panic!("{:?}: {e}", m.to),
            }
        }
    }

    /// One round: every session ticks, outputs go on the network, what is due arrives.
    fn step(&mut self) {
        self.host.tick();
        self.drain(End::Host);
        for i in 0..self.clients.len() {
            self.clients[i].tick();
            self.drain(End::Client(i));
        }
        self.deliver();
        self.drain(End::Host);
        for i in 0..self.clients.len() {
            self.drain(End::Client(i));
        }
        self.host_events.extend(self.host.poll_events(usize::MAX));
        for i in 0..self.clients.len() {
            let events = self.clients[i].poll_events(usize::MAX);
            self.client_events[i].extend(events);
        }
        self.round += 1;
        // Let the clocks move as a frame would.
        std::thread::sleep(Duration::from_millis(1));
    }

    fn converged(&self) -> bool {
        let hash = self.host.state_hash();
        self.clients
            .iter()
            .all(|c| c.peer().is_some() && c.state_hash() == hash)
    }

    /// Steps until `done`, at most [`WAIT`]; panics with `what` otherwise.
    fn until(&mut self, what: &str, done: impl Fn(&Net) -> bool) {
        let deadline = Instant::now() + WAIT;
        while !done(self) {
            assert!(Instant::now() < deadline, "{what}: not within {WAIT:?}");
            self.step();
        }
    }
}

fn joined(events: &[SessionEvent]) -> bool {
    events
        .iter()
        .any(|e| matches!(e, SessionEvent::Joined { .. }))
}

/// A host of 40 entities and two clients over a network with `faults`: everybody writes
/// for a while (the clients their own entities), then stops; every client must reach the
/// host's state.
fn converge_under(faults: Faults, seed: u64) -> Net {
    let (mut world, types) = registry_world();
    let mut rng = Rng(seed ^ 0x5eed);
    let mut entities = Vec::new();
    for _ in 0..40 {
        let e = world.spawn().unwrap();
        world.set(e, types.position, &value(&mut rng)).unwrap();
        entities.push(e);
    }
    let mut net = Net::new(world, SessionConfig::default(), faults, seed);
    net.join(1);
    net.join(2);
    net.until("both clients join", |n| {
        n.client_events.iter().all(|e| joined(e))
    });
    let mut own: Vec<Vec<EntityId>> = vec![Vec::new(); 2];
    for round in 0..120u64 {
        for e in entities.iter().step_by(3) {
            net.host
                .set(*e, types.position, &value(&mut rng))
                .expect("host write");
        }
        if round % 40 == 7 {
            let gone = entities.remove(rng.below(entities.len() as u64) as usize);
            net.host.despawn(gone).expect("despawn");
        }
        for (i, mine) in own.iter_mut().enumerate() {
            if round % 20 == 0 {
                mine.push(net.clients[i].spawn().expect("client spawn"));
            }
            for e in mine.iter() {
                net.clients[i]
                    .set(*e, types.position, &value(&mut rng))
                    .expect("client write");
            }
            if round == 50 {
                let label = format!("client {i} seed {seed}");
                net.clients[i]
                    .set(mine[0], types.name, label.as_bytes())
                    .expect("client label");
            }
        }
        net.step();
    }
    net.until(&format!("seed {seed}: converge"), Net::converged);
    for (i, mine) in own.iter().enumerate() {
        for e in mine {
            assert!(
                net.host.world().is_alive(*e),
                "client {i}'s {e:?} on the host"
            );
        }
    }
    net
}

#[test]
fn custom_sessions_converge_under_loss_duplication_and_reordering() {
    let faults = Faults {
        loss: 0.2,
        duplicate: 0.1,
        spread: 3,
    };
    for seed in [1, 2, 3] {
        let net = converge_under(faults, seed);
        let d = net.host.diagnostics();
        assert_eq!(d.peers.len(), 2, "{d:?}");
        for p in &d.peers {
            // The transport's figures are the bytes and messages the engine moved.
            assert!(p.wire_bytes_sent > 0 && p.packets_received > 0, "{p:?}");
            assert!(
                p.outbox.keys_resent > 0,
                "seed {seed}: 20 % loss, nothing resent? {p:?}"
            );
        }
    }
}

#[test]
fn custom_sessions_converge_on_a_clean_transport_and_say_goodbye_both_ways() {
    let mut net = converge_under(CLEAN, 7);
    // A client leaves: the host hears "client left" (from the goodbye or the close).
    net.clients[1].leave().expect("leave");
    assert!(net.clients[1].has_left());
    let mut outputs = Vec::new();
    while let Some(o) = net.clients[1].transport_peek().expect("peek").cloned() {
        assert_eq!(
            net.clients[1].transport_poll().expect("poll"),
            Some(o.clone())
        );
        outputs.push(o);
    }
    assert!(
        matches!(&outputs[..], [
            TransportOutput::Send { channel: Channel::Unreliable, bytes, .. },
            TransportOutput::Close { code: CLOSE_SHUTDOWN, reason, .. },
        ] if bytes[..] == theta_net::proto::GOODBYE_DATAGRAM && reason == "client left"),
        "{outputs:?}"
    );
    // Carried out, as the engine would (the goodbye datagram first).
    let link = net.link_of(End::Client(1), outputs[0].conn()).unwrap();
    let host_conn = net.links[link].host_conn;
    let TransportOutput::Send { bytes: goodbye, .. } = &outputs[0] else {
        unreachable!("matched above")
    };
    net.host
        .transport_receive(host_conn, Channel::Unreliable, goodbye)
        .expect("goodbye in");
    net.links[link].open = false;
    net.until("the host hears client 2 left", |n| {
        n.host_events.iter().any(
            |e| matches!(e, SessionEvent::PeerLeft { peer: 2, reason } if reason == "client left"),
        )
    });
    // Only the drain and close reports work after leaving.
    assert!(matches!(
        net.clients[1].transport_receive(outputs[0].conn(), Channel::Reliable, b"x"),
        Err(TransportError::Closed(_))
    ));
    assert!(matches!(
        net.clients[1].transport_connected(12345),
        Err(TransportError::Closed(_))
    ));
    net.clients[1]
        .transport_closed(outputs[0].conn(), CLOSE_SHUTDOWN, "closed here")
        .expect("the engine reports the close it made");
    net.clients[1].leave().expect("a second leave does nothing");
    assert_eq!(net.clients[1].transport_poll().unwrap(), None);
    // The host leaves: client 1 hears the host shut down.
    net.host.leave().expect("host leaves");
    net.until("client 1 hears the host shut down", |n| {
        n.client_events[0].iter().any(|e| {
            matches!(
                e,
                SessionEvent::Disconnected {
                    cause: DisconnectCause::HostClosed,
                    ..
                }
            )
        })
    });
}

#[test]
fn a_custom_client_resumes_over_a_new_connection() {
    let faults = Faults {
        loss: 0.1,
        duplicate: 0.05,
        spread: 2,
    };
    let (mut world, types) = registry_world();
    let mut rng = Rng(99);
    let entities: Vec<EntityId> = (0..20)
        .map(|_| {
            let e = world.spawn().unwrap();
            world.set(e, types.position, &value(&mut rng)).unwrap();
            e
        })
        .collect();
    let mut net = Net::new(world, SessionConfig::default(), faults, 5);
    net.join(1);
    net.until("join", |n| joined(&n.client_events[0]) && n.converged());
    // The connection is lost: both engines report it so.
    let link = net.links.len() - 1;
    net.links[link].open = false;
    let (host_conn, client_conn) = (net.links[link].host_conn, net.links[link].client_conn);
    net.host
        .transport_closed(host_conn, CLOSE_LOST, "timed out")
        .unwrap();
    net.clients[0]
        .transport_closed(client_conn, CLOSE_LOST, "timed out")
        .unwrap();
    let events = net.clients[0].poll_events(usize::MAX);
    assert!(
        events.iter().any(|e| matches!(
            e,
            SessionEvent::Disconnected { cause: DisconnectCause::TimedOut, reason } if reason == "timed out"
        )),
        "{events:?}"
    );
    // Stale ids are refused, and a new connection needs reconnect() first.
    assert_eq!(
        net.clients[0].transport_receive(client_conn, Channel::Reliable, b"late"),
        Err(TransportError::UnknownConnection(client_conn))
    );
    assert_eq!(
        net.host
            .transport_receive(host_conn, Channel::Unreliable, b"late"),
        Err(TransportError::UnknownConnection(host_conn))
    );
    assert!(matches!(
        net.clients[0].transport_connected(client_conn),
        Err(TransportError::Closed(_))
    ));
    // The host changes things meanwhile.
    for e in entities.iter().take(10) {
        net.host.set(*e, types.position, &value(&mut rng)).unwrap();
    }
    net.host.despawn(entities[15]).unwrap();
    for _ in 0..5 {
        net.step();
    }
    assert_ne!(net.clients[0].state_hash(), net.host.state_hash());
    net.clients[0].reconnect().expect("reconnect");
    assert!(
        net.host.diagnostics().peers.is_empty(),
        "the host parked the client"
    );
    net.connect(0);
    net.until("resume", |n| {
        n.client_events[0]
            .iter()
            .filter(|e| matches!(e, SessionEvent::Joined { .. }))
            .count()
            == 2
            && n.converged()
    });
    let peer = net.host.diagnostics().peers[0];
    assert_eq!(
        peer.snapshot_bytes, 0,
        "resumed without a snapshot: {peer:?}"
    );
}

#[test]
fn a_custom_host_trains_its_dictionary_off_the_engine_thread() {
    let (mut world, types) = registry_world();
    let mut rng = Rng(3);
    let entities: Vec<EntityId> = (0..30)
        .map(|_| {
            let e = world.spawn().unwrap();
            world.set(e, types.position, &value(&mut rng)).unwrap();
            e
        })
        .collect();
    let config = SessionConfig {
        train_after_samples: 0,
        ..SessionConfig::default()
    };
    let mut net = Net::new(world, config, CLEAN, 11);
    net.join(1);
    net.until("join", |n| joined(&n.client_events[0]));
    let newest = |s: &Session| {
        s.diagnostics()
            .compression
            .iter()
            .find(|k| k.kind == MessageKind::Datagram)
            .and_then(|k| k.newest_dictionary())
    };
    let mut id = None;
    let deadline = Instant::now() + WAIT;
    while id.is_none() {
        assert!(Instant::now() < deadline, "no training started");
        for e in &entities {
            net.host.set(*e, types.position, &value(&mut rng)).unwrap();
        }
        net.step();
        id = net.host.train_dictionary(MessageKind::Datagram).ok();
    }
    net.until("the client holds the dictionary", |n| {
        newest(&n.clients[0]) == id && n.converged()
    });
    assert_eq!(newest(&net.host), id);
}

/// A host with nothing connected, and one admitted client on a clean transport.
fn one_client() -> (Net, Types) {
    let (world, types) = registry_world();
    let mut net = Net::new(world, SessionConfig::default(), CLEAN, 21);
    net.join(1);
    net.until("join", |n| joined(&n.client_events[0]));
    (net, types)
}

#[test]
fn unknown_stale_and_duplicate_connection_ids_are_errors() {
    let (mut net, _) = one_client();
    let host_conn = net.links[0].host_conn;
    let client_conn = net.links[0].client_conn;
    assert_eq!(
        net.host.transport_receive(5, Channel::Reliable, b"x"),
        Err(TransportError::UnknownConnection(5))
    );
    assert_eq!(
        net.host.transport_closed(5, CLOSE_SHUTDOWN, ""),
        Err(TransportError::UnknownConnection(5))
    );
    assert_eq!(
        net.host.transport_set_rtt(5, Duration::from_millis(20)),
        Err(TransportError::UnknownConnection(5))
    );
    net.host
        .transport_set_rtt(host_conn, Duration::from_millis(20))
        .unwrap();
    assert_eq!(
        net.host.transport_connected(host_conn),
        Err(TransportError::ConnectionExists(host_conn))
    );
    // A client has one connection at a time.
    assert_eq!(
        net.clients[0].transport_connected(client_conn + 50),
        Err(TransportError::ConnectionExists(client_conn))
    );
    // Nothing of this disturbed the session.
    net.until("still converged", Net::converged);
    assert!(net
        .host_events
        .iter()
        .all(|e| !matches!(e, SessionEvent::PeerLeft { .. })));
}

#[test]
fn messages_over_their_bound_are_errors_and_a_reliable_one_ends_its_connection() {
    let (mut net, _) = one_client();
    let host_conn = net.links[0].host_conn;
    // Unreliable over the transport's maximum: refused, the connection stays.
    let big = vec![0u8; CustomTransport::default().max_unreliable + 1];
    assert!(matches!(
        net.host
            .transport_receive(host_conn, Channel::Unreliable, &big),
        Err(TransportError::TooLarge {
            channel: "unreliable",
            len: 1201,
            max: 1200,
            ..
        })
    ));
    assert_eq!(net.host.transport_peek().unwrap(), None, "nothing closed");
    // A stranger's join request over its bound: refused, and its connection closes.
    net.host.transport_connected(7).unwrap();
    let request = vec![0u8; theta_net::proto::MAX_JOIN_REQUEST + 1];
    assert!(matches!(
        net.host.transport_receive(7, Channel::Reliable, &request),
        Err(TransportError::TooLarge {
            conn: 7,
            channel: "reliable",
            ..
        })
    ));
    assert!(matches!(
        net.host.transport_poll().unwrap(),
        Some(TransportOutput::Close {
            conn: 7,
            code: CLOSE_BROKEN_STREAM,
            ..
        })
    ));
    // What still arrives on it is dropped; its end may be reported, then the id is free.
    net.host
        .transport_receive(7, Channel::Reliable, b"more")
        .unwrap();
    net.host.transport_closed(7, CLOSE_LOST, "gone").unwrap();
    assert_eq!(
        net.host.transport_receive(7, Channel::Reliable, b"x"),
        Err(TransportError::UnknownConnection(7))
    );
    // An admitted client's reliable message over the core's read bound ends it.
    let huge = vec![0u8; 64 << 20];
    assert!(matches!(
        net.host
            .transport_receive(host_conn, Channel::Reliable, &huge),
        Err(TransportError::TooLarge {
            channel: "reliable",
            ..
        })
    ));
    assert!(matches!(
        net.host.transport_poll().unwrap(),
        Some(TransportOutput::Close { code: CLOSE_BROKEN_STREAM, conn, .. }) if conn == host_conn
    ));
    let events = net.host.poll_events(usize::MAX);
    assert!(
        events
            .iter()
            .any(|e| matches!(e, SessionEvent::PeerLeft { peer: 1, .. })),
        "{events:?}"
    );
    // The client's end: over the answer's bound before admission.
    let token = net.token(3);
    let registry = net.registry.clone();
    let mut client = Session::join_custom(
        &registry,
        &token,
        SessionConfig::default(),
        CustomTransport::default(),
    )
    .unwrap();
    client.transport_connected(1).unwrap();
    assert!(matches!(
        client.transport_poll().unwrap(),
        Some(TransportOutput::Send {
            conn: 1,
            channel: Channel::Reliable,
            ..
        })
    ));
    let answer = vec![0u8; theta_net::proto::MAX_JOIN_ANSWER + 1];
    assert!(matches!(
        client.transport_receive(1, Channel::Reliable, &answer),
        Err(TransportError::TooLarge { .. })
    ));
    assert!(matches!(
        client.transport_poll().unwrap(),
        Some(TransportOutput::Close {
            conn: 1,
            code: CLOSE_BROKEN_STREAM,
            ..
        })
    ));
    let events = client.poll_events(usize::MAX);
    assert!(
        events.iter().any(|e| matches!(
            e,
            SessionEvent::Disconnected {
                cause: DisconnectCause::Protocol,
                ..
            }
        )),
        "{events:?}"
    );
}

#[test]
fn a_host_refuses_bad_joins_late_joins_and_too_many_at_once() {
    let (world, _) = registry_world();
    let config = SessionConfig {
        max_pending_admissions: 2,
        admission_timeout: Duration::from_millis(200),
        ..SessionConfig::default()
    };
    let mut host = Session::host_custom(
        world,
        JoinSecret::from_bytes([1; 32]),
        config,
        CustomTransport::default(),
    )
    .unwrap();
    // Garbage for a join request: refused with a reason, closed.
    host.transport_connected(1).unwrap();
    host.transport_receive(1, Channel::Reliable, b"not a join request")
        .unwrap();
    let mut outputs = Vec::new();
    while let Some(o) = host.transport_poll().unwrap() {
        outputs.push(o);
    }
    assert!(
        matches!(
            &outputs[..],
            [
                TransportOutput::Send {
                    conn: 1,
                    channel: Channel::Reliable,
                    ..
                },
                TransportOutput::Close {
                    conn: 1,
                    code: CLOSE_REFUSED,
                    ..
                },
            ]
        ),
        "{outputs:?}"
    );
    assert!(host
        .poll_events(10)
        .iter()
        .any(|e| matches!(e, SessionEvent::JoinRefused { from: None, .. })));
    // Two may wait for admission; a third is closed at once.
    host.transport_connected(2).unwrap();
    host.transport_connected(3).unwrap();
    host.transport_connected(4).unwrap();
    assert!(matches!(
        host.transport_poll().unwrap(),
        Some(TransportOutput::Close {
            conn: 4,
            code: CLOSE_REFUSED,
            ..
        })
    ));
    assert_eq!(host.transport_poll().unwrap(), None);
    // Datagrams before admission are dropped, not errors.
    host.transport_receive(2, Channel::Unreliable, &[1, 2, 3])
        .unwrap();
    // Past the admission timeout, the silent ones are closed by a tick.
    std::thread::sleep(Duration::from_millis(250));
    host.tick();
    let mut closed: Vec<u64> = Vec::new();
    while let Some(o) = host.transport_poll().unwrap() {
        match o {
            TransportOutput::Close {
                conn,
                code: CLOSE_REFUSED,
                ..
            } => closed.push(conn),
            other => panic!("{other:?}"),
        }
    }
    closed.sort_unstable();
    assert_eq!(closed, vec![2, 3]);
}

#[test]
fn custom_and_quic_calls_are_refused_on_the_other_transport() {
    let (world, _) = registry_world();
    let registry = world.registry().clone();
    let identity = HostIdentity::self_signed(&[]).unwrap();
    let mut quic = Session::host(
        "127.0.0.1:0".parse().unwrap(),
        world,
        &identity,
        JoinSecret::from_bytes([2; 32]),
        SessionConfig::default(),
    )
    .unwrap();
    let wrong = Err(TransportError::WrongTransport("a custom transport"));
    assert_eq!(quic.transport_connected(1), wrong);
    assert_eq!(quic.transport_receive(1, Channel::Reliable, b"x"), wrong);
    assert_eq!(quic.transport_closed(1, 0, ""), wrong);
    assert_eq!(quic.transport_set_rtt(1, Duration::ZERO), wrong);
    assert_eq!(quic.transport_poll(), wrong.clone().map(|()| None));
    assert_eq!(quic.leave(), wrong);
    assert!(!quic.is_custom() && !quic.has_left());
    drop(quic);
    let token = "not even a token";
    let custom = Session::join_custom(
        &registry,
        token,
        SessionConfig::default(),
        CustomTransport::default(),
    )
    .unwrap();
    assert!(custom.is_custom());
    let err = custom.local_addr().unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::Unsupported);
    let _ = ServerTrust::Fingerprint(identity.fingerprint());
    // Unusable transport settings are refused, and the world comes back.
    let (world, _) = registry_world();
    let bad = CustomTransport {
        max_unreliable: 10,
        ..CustomTransport::default()
    };
    let err = Session::host_custom(
        world,
        JoinSecret::from_bytes([3; 32]),
        SessionConfig::default(),
        bad,
    )
    .err()
    .expect("refused");
    assert!(matches!(err.error, SessionError::Transport(_)), "{err}");
    assert_eq!(err.world.registry().len(), 2);
    assert!(matches!(
        Session::join_custom(&registry, token, SessionConfig::default(), bad),
        Err(SessionError::Transport(_))
    ));
}

#[test]
fn a_custom_host_paces_a_clients_reliable_messages_and_drops_a_flood() {
    use theta_net::net::compression::control_message;
    let (mut net, _) = one_client();
    let host_conn = net.links[0].host_conn;
    // 8 KiB messages the host decodes (and counts malformed): 1 500 of them are 12 MiB,
    // past the 8 MiB burst: the rest waits for later ticks, then all are decoded.
    let message = control_message(&[0xAB; 8 << 10]);
    let malformed = |s: &Session| s.diagnostics().peers[0].malformed;
    let start = Instant::now();
    for _ in 0..1500 {
        net.host
            .transport_receive(host_conn, Channel::Reliable, &message)
            .unwrap();
    }
    // The burst, and what 64 MiB/s refilled meanwhile; no more (a bound, not a speed).
    let refilled = start.elapsed().as_secs_f64() * f64::from(64 << 20) / message.len() as f64;
    let burst = (8 << 20) / message.len() as u64;
    let at_once = malformed(&net.host);
    assert!(at_once >= burst, "the burst went at once: {at_once}");
    assert!(
        at_once as f64 <= burst as f64 + refilled + 1.0,
        "{at_once} decoded at once: not paced"
    );
    net.until("the held messages are decoded", |n| {
        malformed(&n.host) == 1500
    });
    // A flood: more than 8 MiB waiting ends the connection.
    let mut sent = 0;
    while net.host.transport_peek().unwrap().is_none() {
        assert!(sent < 10_000, "no close after {sent} messages");
        net.host
            .transport_receive(host_conn, Channel::Reliable, &message)
            .unwrap();
        sent += 1;
    }
    // Not before 8 MiB waited.
    let held = theta_net::net::custom::MAX_HELD_BYTES / message.len();
    assert!(sent > held, "closed after {sent} messages");
    assert!(matches!(
        net.host.transport_poll().unwrap(),
        Some(TransportOutput::Close { code: CLOSE_BROKEN_STREAM, reason, .. }) if reason.contains("wait to be decoded")
    ));
}
