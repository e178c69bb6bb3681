//! Application messages under the deterministic simulator (`tests/sim/`): delivery
//! guarantees under jitter, loss and duplication, size and rate limits, a flooding peer,
//! unknown destinations, the host's hook, and hostile message bytes.
//! `SIM_SEED=N cargo test --test sim_messages -- --nocapture` replays one seed.

mod sim;

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use sim::{Faults, Sim};
use theta_net::proto::messages::{
    MessageConfig, MessageError, CLOSE_FLOODING, MAX_MESSAGE_BYTES, MAX_UNRELIABLE_MESSAGE_BYTES,
    MESSAGE_DATAGRAM_TAG, NO_ANSWER, PEER_ALL, PEER_HOST, THROTTLED,
};
use theta_net::proto::{Channel, Config, DisconnectCause, SessionEvent};
use theta_net::wire::Encoder;
use theta_net::{Layout, World};

/// A lossy, jittery path that duplicates: 30 % loss, 10 % duplicates, 30 ± 25 ms.
fn rough() -> Faults {
    Faults {
        latency: Duration::from_millis(30),
        jitter: Duration::from_millis(25),
        loss: 0.3,
        duplicate: 0.1,
        bandwidth: None,
    }
}

fn world() -> World {
    let mut world = World::default();
    world.register("msg.Value", Layout::Fixed(4)).unwrap();
    world
}

/// A host and `clients` clients (peers 1..) on `faults`, every client admitted.
fn session(config: Config, faults: Faults, seed: u64, clients: u16) -> Sim {
    let mut sim = Sim::new(world(), config, faults, seed);
    for peer in 1..=clients {
        sim.join(peer);
    }
    for _ in 0..2000 {
        if sim.clients.iter().all(|c| c.core.peer().is_some()) {
            // Every client has also heard of the others.
            let heard = sim.clients.iter().all(|c| {
                c.events
                    .iter()
                    .filter(|e| matches!(e, SessionEvent::PeerJoined { .. }))
                    .count()
                    == usize::from(clients) - 1
            });
            if heard {
                return sim;
            }
        }
        sim.step();
    }
    panic!("seed {seed}: the clients did not all join");
}

fn steps(sim: &mut Sim, n: usize) {
    for _ in 0..n {
        sim.step();
    }
}

/// The messages an event list holds, as (from, channel, reliable, body).
fn messages(events: &[SessionEvent]) -> Vec<(u16, u32, bool, Vec<u8>)> {
    events
        .iter()
        .filter_map(|e| match e {
            SessionEvent::Message {
                from,
                channel,
                reliable,
                body,
            } => Some((*from, *channel, *reliable, body.clone())),
            _ => None,
        })
        .collect()
}

/// The refusals an event list holds, as (to, channel, reason).
fn refusals(events: &[SessionEvent]) -> Vec<(u16, u32, String)> {
    events
        .iter()
        .filter_map(|e| match e {
            SessionEvent::MessageRefused {
                to,
                channel,
                reason,
            } => Some((*to, *channel, reason.clone())),
            _ => None,
        })
        .collect()
}

fn seeds() -> Vec<u64> {
    match std::env::var("SIM_SEED") {
        Ok(seed) => vec![seed.parse().expect("SIM_SEED is a number")],
        Err(_) => (1..=12).collect(),
    }
}

/// Per (sender, channel), the numbers of the bodies received, in arrival order.
fn sequences(received: &[(u16, u32, bool, Vec<u8>)]) -> BTreeMap<(u16, u32), Vec<u32>> {
    let mut out: BTreeMap<(u16, u32), Vec<u32>> = BTreeMap::new();
    for (from, channel, _, body) in received {
        let n = u32::from_le_bytes(body[..4].try_into().unwrap());
        out.entry((*from, *channel)).or_default().push(n);
    }
    out
}

#[test]
fn sim_reliable_messages_arrive_exactly_once_in_order_under_loss_jitter_and_duplication() {
    const N: u32 = 150;
    for seed in seeds() {
        let mut sim = session(Config::default(), rough(), seed, 3);
        for i in 0..N {
            let body = |tag: u8| {
                let mut b = i.to_le_bytes().to_vec();
                b.extend(std::iter::repeat_n(tag, (i as usize * 7) % 300));
                b
            };
            let c = &mut sim.clients;
            c[0].core.send_message(2, 10, true, &body(1)).unwrap();
            c[0].core
                .send_message(PEER_HOST, 11, true, &body(2))
                .unwrap();
            c[2].core
                .send_message(PEER_ALL, 12, true, &body(3))
                .unwrap();
            let now = sim.now();
            sim.host
                .send_message(PEER_ALL, 13, true, &body(4), now)
                .unwrap();
            sim.step();
        }
        steps(&mut sim, 600);
        let expect: Vec<u32> = (0..N).collect();
        let at_host = sequences(&messages(&sim.host_events));
        assert_eq!(
            at_host.get(&(1, 11)),
            Some(&expect),
            "seed {seed}: 1 → host"
        );
        assert_eq!(at_host.get(&(3, 12)), Some(&expect), "seed {seed}: 3 → all");
        assert_eq!(at_host.len(), 2, "seed {seed}: {:?}", at_host.keys());
        let at = |i: usize| sequences(&messages(&sim.clients[i].events));
        let (one, two, three) = (at(0), at(1), at(2));
        assert_eq!(two.get(&(1, 10)), Some(&expect), "seed {seed}: 1 → 2");
        for (name, got) in [("1", &one), ("2", &two)] {
            assert_eq!(got.get(&(3, 12)), Some(&expect), "seed {seed}: 3 → {name}");
        }
        for (name, got) in [("1", &one), ("2", &two), ("3", &three)] {
            assert_eq!(
                got.get(&(PEER_HOST, 13)),
                Some(&expect),
                "seed {seed}: host → {name}"
            );
        }
        // Nobody hears its own broadcast or another's private message.
        assert_eq!(one.len(), 2, "seed {seed}: {:?}", one.keys());
        assert_eq!(three.len(), 1, "seed {seed}: {:?}", three.keys());
        assert!(messages(&sim.clients[1].events).iter().all(|m| m.2));
        for c in &sim.clients {
            assert!(refusals(&c.events).is_empty(), "seed {seed}");
        }
        let d = sim.host.peer_diagnostics(1).unwrap().messages;
        assert_eq!((d.received, d.refused), (2 * u64::from(N), 0));
    }
}

#[test]
fn sim_unreliable_messages_are_never_delivered_twice() {
    for seed in seeds() {
        let mut faults = rough();
        faults.duplicate = 0.5;
        let mut sim = session(Config::default(), faults, seed, 3);
        let mut sent = 0u32;
        for i in 0..300u32 {
            let c = &mut sim.clients;
            c[0].core
                .send_message(PEER_ALL, 1, false, &i.to_le_bytes())
                .unwrap();
            c[1].core
                .send_message(3, 2, false, &i.to_le_bytes())
                .unwrap();
            let now = sim.now();
            sim.host
                .send_message(PEER_ALL, 3, false, &i.to_le_bytes(), now)
                .unwrap();
            sent += 1;
            sim.step();
        }
        steps(&mut sim, 100);
        let mut lists = vec![("host", messages(&sim.host_events))];
        for (i, c) in sim.clients.iter().enumerate() {
            lists.push((["1", "2", "3"][i], messages(&c.events)));
        }
        let mut duplicates_dropped = 0;
        for (name, list) in &lists {
            let mut seen = HashSet::new();
            for m in list {
                assert!(!m.2, "seed {seed}: unreliable");
                assert!(
                    seen.insert(m.clone()),
                    "seed {seed}: {name} got {m:?} twice"
                );
            }
            // Every stream it should hear, it heard in part (30 % loss, relayed: ~50 %).
            for (from, channel) in sequences(list).keys() {
                let got = sequences(list)[&(*from, *channel)].len() as u32;
                assert!(got > sent / 5 && got <= sent, "seed {seed}: {name} {got}");
            }
        }
        assert_eq!(
            sequences(&lists[0].1).len(),
            1,
            "seed {seed}: host hears 1 only"
        );
        assert_eq!(
            sequences(&lists[1].1).len(),
            1,
            "seed {seed}: 1 hears the host"
        );
        assert_eq!(
            sequences(&lists[2].1).len(),
            2,
            "seed {seed}: 2 hears 1 and host"
        );
        assert_eq!(sequences(&lists[3].1).len(), 3, "seed {seed}: 3 hears all");
        for c in &sim.clients {
            duplicates_dropped += c.core.peer_diagnostics().unwrap().messages.duplicates;
        }
        for peer in 1..=3 {
            duplicates_dropped += sim.host.peer_diagnostics(peer).unwrap().messages.duplicates;
        }
        assert!(duplicates_dropped > 50, "seed {seed}: {duplicates_dropped}");
        assert_eq!(sim.oversized, 0);
    }
}

#[test]
fn oversized_messages_are_refused_when_sent() {
    let mut sim = session(
        Config::default(),
        Faults::clean(Duration::from_millis(5)),
        1,
        2,
    );
    let big = vec![1u8; MAX_MESSAGE_BYTES + 1];
    let now = sim.now();
    let too_large = |len, max| Err(MessageError::TooLarge { len, max });
    let c = &mut sim.clients[0].core;
    assert_eq!(
        c.send_message(2, 1, true, &big),
        too_large(MAX_MESSAGE_BYTES + 1, MAX_MESSAGE_BYTES)
    );
    let unreliable = &big[..MAX_UNRELIABLE_MESSAGE_BYTES + 1];
    assert_eq!(
        c.send_message(2, 1, false, unreliable),
        too_large(unreliable.len(), MAX_UNRELIABLE_MESSAGE_BYTES)
    );
    assert_eq!(
        sim.host.send_message(1, 1, true, &big, now),
        too_large(big.len(), MAX_MESSAGE_BYTES)
    );
    // The largest of each goes through.
    let c = &mut sim.clients[0].core;
    c.send_message(2, 1, true, &big[..MAX_MESSAGE_BYTES])
        .unwrap();
    c.send_message(2, 1, false, &big[..MAX_UNRELIABLE_MESSAGE_BYTES])
        .unwrap();
    assert_eq!(c.send_message(1, 1, true, b"me"), Err(MessageError::ToSelf));
    steps(&mut sim, 30);
    let got = messages(&sim.clients[1].events);
    let lens: Vec<usize> = got.iter().map(|m| m.3.len()).collect();
    assert_eq!(lens, [MAX_MESSAGE_BYTES, MAX_UNRELIABLE_MESSAGE_BYTES]);
    assert_eq!(sim.oversized, 0);
}

/// A reliable message as a (hostile) client would put it on its stream.
fn raw_reliable(from: u16, to: u16, channel: u32, body: &[u8]) -> Vec<u8> {
    let message = Encoder::new().app_message(channel, from, to, 0, body);
    theta_net::proto::compression::control_message(&message)
}

fn raw_datagram(from: u16, to: u16, channel: u32, seq: u64, body: &[u8]) -> Vec<u8> {
    let mut out = vec![MESSAGE_DATAGRAM_TAG];
    out.extend(Encoder::new().app_message(channel, from, to, seq, body));
    out
}

#[test]
fn an_oversized_message_from_a_hostile_client_is_refused_and_counted() {
    let mut sim = session(
        Config::default(),
        Faults::clean(Duration::from_millis(5)),
        2,
        2,
    );
    let big = vec![9u8; MAX_MESSAGE_BYTES + 100];
    sim.inject(0, Channel::Reliable, raw_reliable(1, 2, 5, &big));
    let dgram = raw_datagram(1, 2, 6, 1, &big[..MAX_UNRELIABLE_MESSAGE_BYTES + 1]);
    sim.inject(0, Channel::Unreliable, dgram);
    steps(&mut sim, 20);
    assert!(messages(&sim.clients[1].events).is_empty());
    let refused = refusals(&sim.clients[0].events);
    assert_eq!(refused.len(), 2, "{refused:?}");
    assert!(refused.iter().all(|r| r.0 == 2 && r.2.contains("exceeds")));
    let d = sim.host.peer_diagnostics(1).unwrap().messages;
    assert_eq!((d.received, d.refused), (0, 2));
    // The session goes on.
    sim.clients[0].core.send_message(2, 7, true, b"ok").unwrap();
    steps(&mut sim, 20);
    assert_eq!(
        messages(&sim.clients[1].events),
        [(1, 7, true, b"ok".to_vec())]
    );
}

fn limited(rate: u32, burst: u32, flood_factor: u32) -> Config {
    Config {
        messages: MessageConfig {
            messages_per_second: rate,
            burst_messages: burst,
            flood_factor,
            ..MessageConfig::default()
        },
        ..Config::default()
    }
}

#[test]
fn messages_over_the_rate_are_refused_as_throttled() {
    let clean = Faults::clean(Duration::from_millis(5));
    let mut sim = session(limited(10, 5, 100), clean, 3, 2);
    for i in 0..20u32 {
        sim.clients[0]
            .core
            .send_message(2, 1, true, &i.to_le_bytes())
            .unwrap();
    }
    steps(&mut sim, 20);
    let got = sequences(&messages(&sim.clients[1].events));
    assert_eq!(got[&(1, 1)], (0..5).collect::<Vec<_>>());
    let refused = refusals(&sim.clients[0].events);
    assert_eq!(refused.len(), 15);
    assert!(refused.iter().all(|r| r == &(2, 1, THROTTLED.to_owned())));
    let d = sim.host.peer_diagnostics(1).unwrap().messages;
    assert_eq!((d.received, d.refused, d.throttled), (5, 15, 15));
    assert_eq!(
        sim.clients[0]
            .core
            .peer_diagnostics()
            .unwrap()
            .messages
            .refused,
        15
    );
    // The bucket refills: a second later the client may send again.
    steps(&mut sim, 60);
    sim.clients[0]
        .core
        .send_message(2, 1, true, &99u32.to_le_bytes())
        .unwrap();
    steps(&mut sim, 10);
    let got = sequences(&messages(&sim.clients[1].events));
    assert_eq!(got[&(1, 1)].last(), Some(&99));
    assert!(sim.clients[0].conn.is_some());
}

#[test]
fn a_flooding_client_is_disconnected_with_a_reason() {
    let clean = Faults::clean(Duration::from_millis(5));
    let mut sim = session(limited(10, 5, 2), clean, 4, 2);
    for tick in 0..20 {
        for _ in 0..20 {
            // Unreliable too: duplicates aside, each counts.
            let _ = sim.clients[0]
                .core
                .send_message(PEER_ALL, 1, false, b"spam");
            let _ = sim.clients[0].core.send_message(2, 1, true, b"spam");
        }
        sim.step();
        if sim.clients[0].conn.is_none() {
            assert!(tick < 5, "disconnected late: tick {tick}");
            break;
        }
    }
    steps(&mut sim, 10);
    let left = sim.host_events.iter().find_map(|e| match e {
        SessionEvent::PeerLeft { peer: 1, reason } => Some(reason.clone()),
        _ => None,
    });
    let left = left.expect("the host reports the flooder gone");
    assert!(left.contains("flooding"), "{left}");
    assert!(sim.clients[0].events.iter().any(
        |e| matches!(e, SessionEvent::Disconnected { reason, .. } if reason.contains("flooding"))
    ));
    assert!(sim.clients[1]
        .events
        .iter()
        .any(|e| matches!(e, SessionEvent::PeerLeft { peer: 1, .. })));
    // At most a burst got through to the other client, and it stays connected.
    assert!(messages(&sim.clients[1].events).len() <= 10);
    assert!(sim.clients[1].conn.is_some());
    // A flooder may not resume.
    assert!(sim.host.peer_diagnostics(1).is_none());
    // Told as a refusal: only a fresh join lets it back.
    assert!(sim.clients[0].events.iter().any(|e| matches!(
        e,
        SessionEvent::Disconnected {
            cause: DisconnectCause::HostClosed | DisconnectCause::Refused,
            ..
        }
    )));
    assert_eq!(CLOSE_FLOODING, theta_net::proto::CLOSE_REFUSED);
    sim.clients[0].core.reconnect().unwrap();
    sim.connect(0);
    steps(&mut sim, 20);
    assert!(sim.clients[0].conn.is_none(), "the resume was refused");
}

#[test]
fn a_message_to_an_unknown_peer_is_refused() {
    let mut sim = session(
        Config::default(),
        Faults::clean(Duration::from_millis(5)),
        5,
        2,
    );
    sim.clients[0]
        .core
        .send_message(77, 4, true, b"hi")
        .unwrap();
    sim.clients[0]
        .core
        .send_message(77, 4, false, b"hi")
        .unwrap();
    steps(&mut sim, 20);
    let refused = refusals(&sim.clients[0].events);
    assert_eq!(refused.len(), 2);
    assert!(refused
        .iter()
        .all(|r| r.0 == 77 && r.1 == 4 && r.2.contains("not connected")));
    assert_eq!(sim.host.peer_diagnostics(1).unwrap().messages.refused, 2);
    let now = sim.now();
    assert_eq!(
        sim.host.send_message(77, 1, true, b"x", now),
        Err(MessageError::UnknownPeer(77))
    );
    assert_eq!(
        sim.host.send_message(PEER_HOST, 1, true, b"x", now),
        Err(MessageError::ToSelf)
    );
    assert!(messages(&sim.clients[1].events).is_empty());
    assert!(messages(&sim.host_events).is_empty());
}

/// The requests the host's events hold, as (request, from, to, body).
fn requests(sim: &Sim) -> Vec<(u64, u16, u16, Vec<u8>)> {
    sim.host_events
        .iter()
        .filter_map(|e| match e {
            SessionEvent::MessageRequested {
                request,
                from,
                to,
                body,
                ..
            } => Some((*request, *from, *to, body.clone())),
            _ => None,
        })
        .collect()
}

#[test]
fn the_host_hook_accepts_refuses_and_times_out_keeping_each_senders_order() {
    let config = Config {
        messages: MessageConfig {
            filter: true,
            decision_timeout: Duration::from_secs(2),
            ..MessageConfig::default()
        },
        ..Config::default()
    };
    let faults = Faults {
        latency: Duration::from_millis(20),
        jitter: Duration::from_millis(10),
        ..rough()
    };
    let mut sim = session(config, faults, 6, 3);
    for body in [b"a", b"b", b"c"] {
        sim.clients[0].core.send_message(2, 1, true, body).unwrap();
    }
    sim.clients[0]
        .core
        .send_message(PEER_HOST, 2, true, b"h")
        .unwrap();
    sim.clients[1]
        .core
        .send_message(PEER_ALL, 3, true, b"all")
        .unwrap();
    steps(&mut sim, 40);
    let asked = requests(&sim);
    assert_eq!(asked.len(), 4, "{asked:?}");
    let id = |body: &[u8]| asked.iter().find(|r| r.3 == body).unwrap().0;
    // Held: nothing delivered yet; the message to the host waits behind client 1's held
    // ones (its order to the host is kept), and is never asked about.
    assert!(messages(&sim.clients[1].events).is_empty());
    assert!(messages(&sim.host_events).is_empty());
    let now = sim.now();
    // "b" is accepted before "a" is decided: it waits for "a".
    sim.host.decide_message(id(b"b"), true, "", now).unwrap();
    sim.host.decide_message(id(b"all"), true, "", now).unwrap();
    steps(&mut sim, 40);
    assert!(messages(&sim.clients[1].events).is_empty());
    // "all" reached the host and client 3, not its sender.
    assert_eq!(messages(&sim.host_events), [(2, 3, true, b"all".to_vec())]);
    assert_eq!(
        messages(&sim.clients[2].events),
        [(2, 3, true, b"all".to_vec())]
    );
    let now = sim.now();
    sim.host.decide_message(id(b"a"), true, "", now).unwrap();
    sim.host
        .decide_message(id(b"c"), false, "not allowed", now)
        .unwrap();
    assert_eq!(
        sim.host.decide_message(id(b"c"), true, "", now),
        Err(MessageError::UnknownRequest(id(b"c")))
    );
    steps(&mut sim, 60);
    let got: Vec<Vec<u8>> = messages(&sim.clients[1].events)
        .into_iter()
        .map(|m| m.3)
        .collect();
    assert_eq!(got, [b"a".to_vec(), b"b".to_vec()]);
    assert_eq!(
        refusals(&sim.clients[0].events),
        [(2, 1, "not allowed".to_owned())]
    );
    let host_got = messages(&sim.host_events);
    assert_eq!(host_got.last(), Some(&(1, 2, true, b"h".to_vec())));
    // Unanswered: refused once the timeout passes.
    sim.clients[0]
        .core
        .send_message(3, 9, true, b"late")
        .unwrap();
    steps(&mut sim, 10);
    let late = requests(&sim).last().unwrap().0;
    steps(&mut sim, 100);
    assert!(refusals(&sim.clients[0].events).len() == 1, "not yet");
    steps(&mut sim, 50);
    assert_eq!(
        refusals(&sim.clients[0].events).last().unwrap().2,
        NO_ANSWER
    );
    let now = sim.now();
    assert_eq!(
        sim.host.decide_message(late, true, "", now),
        Err(MessageError::UnknownRequest(late))
    );
    assert!(messages(&sim.clients[2].events)
        .iter()
        .all(|m| m.3 != b"late".to_vec()));
}

#[test]
fn hostile_message_bytes_are_counted_and_harm_nothing() {
    let mut sim = session(
        Config::default(),
        Faults::clean(Duration::from_millis(5)),
        7,
        2,
    );
    let malformed_before = sim.host.peer_diagnostics(1).unwrap().malformed;
    // Garbage behind the tag, a truncated message, sequence number 0, a garbage control
    // message.
    sim.inject(
        0,
        Channel::Unreliable,
        vec![MESSAGE_DATAGRAM_TAG, 0xFF, 0, 1, 2],
    );
    let good = raw_datagram(1, 2, 1, 5, b"fine");
    sim.inject(0, Channel::Unreliable, good[..good.len() / 2].to_vec());
    sim.inject(0, Channel::Unreliable, raw_datagram(1, 2, 1, 0, b"zero"));
    let mut broken = raw_reliable(1, 2, 1, b"x");
    let n = broken.len();
    broken.truncate(n - 10);
    sim.inject(0, Channel::Reliable, broken);
    steps(&mut sim, 20);
    let d = sim.host.peer_diagnostics(1).unwrap();
    assert_eq!(d.malformed - malformed_before, 4);
    assert_eq!(d.messages.received, 0);
    assert!(messages(&sim.clients[1].events).is_empty());
    // A forged sender is ignored: the host names the connection's peer.
    sim.inject(0, Channel::Reliable, raw_reliable(2, 2, 8, b"forged"));
    sim.inject(0, Channel::Unreliable, raw_datagram(2, 2, 8, 1, b"forged"));
    steps(&mut sim, 20);
    let got = messages(&sim.clients[1].events);
    assert_eq!(got.len(), 2);
    assert!(got.iter().all(|m| m.0 == 1), "{got:?}");
    // And the session goes on: the client still converges and talks.
    sim.clients[0]
        .core
        .send_message(2, 9, true, b"after")
        .unwrap();
    steps(&mut sim, 20);
    assert_eq!(messages(&sim.clients[1].events).last().unwrap().3, b"after");
    assert!(sim.converged());
}

#[test]
fn poll_timeout_says_when_messages_need_a_tick() {
    let config = Config {
        messages: MessageConfig {
            filter: true,
            decision_timeout: Duration::from_millis(300),
            ..MessageConfig::default()
        },
        ..Config::default()
    };
    let mut sim = session(config, Faults::clean(Duration::from_millis(5)), 8, 2);
    steps(&mut sim, 30);
    let path = theta_net::proto::Path {
        max_datagram: sim.max_datagram,
        rtt: Duration::from_millis(10),
        budget: usize::MAX,
    };
    let now = sim.now();
    assert_eq!(sim.clients[0].core.poll_timeout(now, path), None);
    // An unreliable message waits for the client's next tick.
    sim.clients[0].core.send_message(2, 1, false, b"u").unwrap();
    assert_eq!(sim.clients[0].core.poll_timeout(now, path), Some(now));
    // Held on the host: due when its decision times out.
    sim.clients[0].core.send_message(2, 1, true, b"r").unwrap();
    sim.step();
    sim.step();
    assert_eq!(requests(&sim).len(), 2);
    let now = sim.now();
    let due = sim
        .host
        .poll_timeout(now, |_| path)
        .expect("a decision is due");
    assert!(
        due > now && due <= now + Duration::from_millis(300),
        "{due:?}"
    );
}
