//! Ownership under the deterministic simulator (`tests/sim/`): grabs that race, leases that
//! lapse, hand-overs with writes in flight under loss, duplication and delay jitter,
//! owners that leave, late joiners, and requests that must be refused. Each test runs
//! several seeds; a failure names its seed.

mod sim;

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use sim::{Faults, Sim};
use theta_net::ownership::{Policy, DESPAWN_WITH_OWNER, WHOLE_ENTITY};
use theta_net::proto::compression::control_message;
use theta_net::proto::{Channel, Config, OwnershipRefusal, SessionEvent};
use theta_net::wire::{fb, BatchRef, Encoder, FrameParts};
use theta_net::{ComponentId, EntityId, Layout, World};

/// What the host's world held, step by step: (owner then, value).
type HostLog = Rc<RefCell<Vec<(Option<u16>, [u8; 8])>>>;

/// A value: who wrote it (peer id) and that writer's counter.
fn value(writer: u16, counter: u32) -> [u8; 8] {
    let mut v = [0u8; 8];
    v[..2].copy_from_slice(&writer.to_le_bytes());
    v[2..6].copy_from_slice(&counter.to_le_bytes());
    v
}

fn writer_of(bytes: &[u8]) -> u16 {
    u16::from_le_bytes([bytes[0], bytes[1]])
}

/// A world with one component type and `n` host entities nobody owns yet.
fn scene(n: usize) -> (World, ComponentId, Vec<EntityId>) {
    let mut world = World::default();
    let pos = world.register("own.Pos", Layout::Fixed(8)).unwrap();
    let entities = (0..n)
        .map(|_| {
            let e = world.spawn().unwrap();
            world.set(e, pos, &value(0, 0)).unwrap();
            e
        })
        .collect();
    (world, pos, entities)
}

/// Jitter of half the delay, `loss` and 10 % duplication.
fn rough(loss: f64) -> Faults {
    Faults {
        latency: Duration::from_millis(30),
        jitter: Duration::from_millis(15),
        loss,
        duplicate: 0.1,
        bandwidth: None,
    }
}

fn steps(sim: &mut Sim, n: usize) {
    for _ in 0..n {
        sim.step();
    }
}

/// The clean path the tests heal to before asking for convergence (the delay and jitter
/// stay).
fn healed() -> Faults {
    Faults {
        loss: 0.0,
        duplicate: 0.0,
        ..rough(0.0)
    }
}

fn sim_with_clients(world: World, config: Config, faults: Faults, seed: u64, n: u16) -> Sim {
    let mut sim = Sim::new(world, config, faults, seed);
    for peer in 1..=n {
        sim.join(peer);
    }
    // Joins under loss take a few round trips each (10 s of virtual time at most).
    for _ in 0..600 {
        if sim.clients.iter().all(|c| c.core.peer().is_some()) {
            break;
        }
        sim.step();
    }
    assert!(
        sim.clients.iter().all(|c| c.core.peer().is_some()),
        "seed {seed}: every client joined"
    );
    steps(&mut sim, 30);
    sim
}

/// Steps until every client holds the host's state and names the host's owner of
/// `entity`, at most `bound` of virtual time.
fn settle(sim: &mut Sim, entity: EntityId, bound: Duration) -> bool {
    let start = sim.elapsed;
    while sim.elapsed - start <= bound {
        if sim.converged() && owners_agree(sim, entity) {
            return true;
        }
        sim.step();
    }
    false
}

/// Every peer names the same owner of `entity`.
fn owners_agree(sim: &Sim, entity: EntityId) -> bool {
    let host = sim.host.owner_of(entity, WHOLE_ENTITY);
    sim.clients
        .iter()
        .all(|c| c.core.owner_of(entity, WHOLE_ENTITY) == host)
}

fn seeds() -> std::ops::Range<u64> {
    let runs = std::env::var("SIM_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    0..runs
}

#[test]
fn two_clients_grab_the_same_object_in_the_same_tick_and_exactly_one_wins() {
    for seed in seeds() {
        let (world, _, entities) = scene(3);
        let mut sim = sim_with_clients(world, Config::default(), rough(0.3), seed, 2);
        let cup = entities[1];
        sim.host.set_owner(cup, WHOLE_ENTITY, None).unwrap();
        steps(&mut sim, 30);
        sim.faults = rough(0.3);
        for i in 0..2 {
            sim.clients[i].events.clear();
            sim.clients[i]
                .core
                .request_ownership(cup, WHOLE_ENTITY)
                .unwrap();
        }
        sim.faults = healed();
        steps(&mut sim, 120);
        let owner = sim.host.owner_of(cup, WHOLE_ENTITY);
        assert!(
            owner == Some(1) || owner == Some(2),
            "seed {seed}: one of them owns it, not {owner:?}"
        );
        assert!(owners_agree(&sim, cup), "seed {seed}: every peer agrees");
        let loser = if owner == Some(1) { 1 } else { 0 };
        let denied = sim.clients[loser].events.iter().any(|e| {
            matches!(e, SessionEvent::OwnershipDenied { entity, refusal: OwnershipRefusal::Held, .. } if *entity == cup)
        });
        assert!(denied, "seed {seed}: the other is told it is held");
        let granted: usize = sim
            .host_events
            .iter()
            .filter(|e| {
                matches!(e, SessionEvent::OwnershipChanged { entity, owner: Some(_), .. } if *entity == cup)
            })
            .count();
        assert_eq!(granted, 1, "seed {seed}: granted exactly once");
    }
}

#[test]
fn a_lease_lapses_while_its_holder_is_silent_and_another_peer_takes_it() {
    for seed in seeds() {
        let (world, pos, entities) = scene(2);
        let config = Config {
            ownership_lease: Duration::from_secs(2),
            ..Config::default()
        };
        let mut sim = sim_with_clients(world, config, rough(0.2), seed, 2);
        let ball = entities[0];
        sim.host.set_owner(ball, WHOLE_ENTITY, None).unwrap();
        steps(&mut sim, 20);
        sim.clients[0]
            .core
            .request_ownership(ball, WHOLE_ENTITY)
            .unwrap();
        steps(&mut sim, 60);
        assert_eq!(
            sim.host.owner_of(ball, WHOLE_ENTITY),
            Some(1),
            "seed {seed}"
        );
        // Holding it, quietly: the client's own heartbeat keeps the lease (2 leases long).
        steps(&mut sim, 240);
        assert_eq!(
            sim.host.owner_of(ball, WHOLE_ENTITY),
            Some(1),
            "seed {seed}: a holder that is heard keeps its lease"
        );
        // Silent (cut off): the lease lapses, and the other client takes it.
        sim.partition(0, Duration::from_secs(5));
        steps(&mut sim, 180);
        assert_eq!(sim.host.owner_of(ball, WHOLE_ENTITY), None, "seed {seed}");
        sim.clients[1]
            .core
            .request_ownership(ball, WHOLE_ENTITY)
            .unwrap();
        steps(&mut sim, 60);
        assert_eq!(
            sim.host.owner_of(ball, WHOLE_ENTITY),
            Some(2),
            "seed {seed}"
        );
        sim.clients[1].core.set(ball, pos, &value(2, 1)).unwrap();
        // The first holder comes back, still believing it holds it, and writes: refused.
        let _ = sim.clients[0].core.set(ball, pos, &value(1, 99));
        sim.faults = healed();
        steps(&mut sim, 200);
        assert!(owners_agree(&sim, ball), "seed {seed}: every peer agrees");
        assert_eq!(
            sim.host.world().get(ball, pos),
            Some(&value(2, 1)[..]),
            "seed {seed}: the new holder's write stands"
        );
        assert!(
            sim.converge(Duration::from_secs(3)).is_some(),
            "seed {seed}: converged"
        );
    }
}

#[test]
fn a_hand_over_with_writes_in_flight_applies_no_write_of_the_previous_owner_after_the_grant() {
    let mut stale_seen = 0;
    for seed in seeds() {
        let (world, pos, entities) = scene(2);
        let mut sim = sim_with_clients(world, Config::default(), rough(0.3), seed, 3);
        let bat = entities[0];
        sim.host.set_owner(bat, WHOLE_ENTITY, None).unwrap();
        sim.host
            .set_ownership_policy(bat, WHOLE_ENTITY, Policy::Takeover, 0)
            .unwrap();
        steps(&mut sim, 20);
        sim.clients[0]
            .core
            .request_ownership(bat, WHOLE_ENTITY)
            .unwrap();
        steps(&mut sim, 60);
        assert_eq!(sim.host.owner_of(bat, WHOLE_ENTITY), Some(1), "seed {seed}");

        // The host's log: every value the authoritative world takes, with its owner then.
        let log: HostLog = Rc::default();
        let watch = Rc::clone(&log);
        sim.host_observer = Some(Box::new(move |host| {
            let held: [u8; 8] = host.world().get(bat, pos).unwrap().try_into().unwrap();
            let mut log = watch.borrow_mut();
            if log.last().map(|(_, v)| *v) != Some(held) {
                log.push((host.owner_of(bat, WHOLE_ENTITY), held));
            }
        }));
        // Peer 1 writes every tick; mid-way peer 2 takes over and writes every tick too;
        // each goes on until it finds it is not the owner.
        let mut counters = [0u32; 2];
        for tick in 0..240 {
            if tick == 80 {
                sim.clients[1]
                    .core
                    .request_ownership(bat, WHOLE_ENTITY)
                    .unwrap();
            }
            for (i, counter) in counters.iter_mut().enumerate() {
                *counter += 1;
                let v = value(i as u16 + 1, *counter);
                let _ = sim.clients[i].core.set(bat, pos, &v);
            }
            sim.step();
        }
        sim.host_observer = None;
        sim.faults = healed();
        assert!(
            settle(&mut sim, bat, Duration::from_secs(3)),
            "seed {seed}: converged, owners agree"
        );
        assert_eq!(sim.host.owner_of(bat, WHOLE_ENTITY), Some(2), "seed {seed}");
        let log = log.borrow();
        let granted = log
            .iter()
            .position(|(owner, _)| *owner == Some(2))
            .unwrap_or_else(|| panic!("seed {seed}: the host saw the hand-over"));
        for (owner, v) in &log[granted..] {
            assert_eq!(*owner, Some(2), "seed {seed}: ownership stayed");
            assert_ne!(
                writer_of(v),
                1,
                "seed {seed}: a write of the previous owner applied after the grant"
            );
        }
        let final_value = sim.host.world().get(bat, pos).unwrap();
        assert_eq!(writer_of(final_value), 2, "seed {seed}");
        stale_seen += sim
            .host
            .peer_diagnostics(1)
            .map_or(0, |d| d.stale_writes + d.writes_rejected);
    }
    // Writes were in flight at the hand-overs (else the test proved nothing).
    assert!(stale_seen > 0, "some previous owner's writes arrived late");
}

#[test]
fn an_owner_that_leaves_for_good_releases_or_despawns_what_it_held() {
    for seed in seeds().take(8) {
        let (world, pos, entities) = scene(2);
        let config = Config {
            resume_grace: Duration::from_secs(2),
            ..Config::default()
        };
        let mut sim = sim_with_clients(world, config, rough(0.2), seed, 2);
        let kept = entities[0];
        sim.host.set_owner(kept, WHOLE_ENTITY, None).unwrap();
        steps(&mut sim, 10);
        sim.clients[0]
            .core
            .request_ownership(kept, WHOLE_ENTITY)
            .unwrap();
        let avatar = sim.clients[0].core.spawn().unwrap();
        sim.clients[0].core.set(avatar, pos, &value(1, 1)).unwrap();
        steps(&mut sim, 60);
        sim.clients[0]
            .core
            .set_ownership_policy(avatar, WHOLE_ENTITY, Policy::WhenFree, DESPAWN_WITH_OWNER)
            .unwrap();
        steps(&mut sim, 60);
        assert_eq!(
            sim.host.owner_of(kept, WHOLE_ENTITY),
            Some(1),
            "seed {seed}"
        );
        assert!(sim.host.world().is_alive(avatar), "seed {seed}");
        sim.drop_connection(0, Duration::from_millis(300));
        steps(&mut sim, 60);
        // Within the grace period nothing moves (it may resume).
        assert_eq!(
            sim.host.owner_of(kept, WHOLE_ENTITY),
            Some(1),
            "seed {seed}"
        );
        steps(&mut sim, 150);
        assert_eq!(sim.host.owner_of(kept, WHOLE_ENTITY), None, "seed {seed}");
        assert!(!sim.host.world().is_alive(avatar), "seed {seed}: despawned");
        sim.faults = healed();
        steps(&mut sim, 100);
        let other = &sim.clients[1];
        assert_eq!(other.core.owner_of(kept, WHOLE_ENTITY), None, "seed {seed}");
        assert!(!other.core.world().is_alive(avatar), "seed {seed}");
        assert!(other.events.iter().any(|e| matches!(e,
            SessionEvent::OwnershipChanged { entity, owner: None, .. } if *entity == kept)));
    }
}

#[test]
fn a_late_joiner_knows_the_current_owners() {
    for seed in seeds().take(8) {
        let (world, _, entities) = scene(4);
        let mut sim = sim_with_clients(world, Config::default(), rough(0.3), seed, 1);
        sim.host.set_owner(entities[0], WHOLE_ENTITY, None).unwrap();
        sim.host
            .set_owner(entities[1], WHOLE_ENTITY, Some(1))
            .unwrap();
        sim.host
            .set_ownership_policy(entities[2], WHOLE_ENTITY, Policy::HostOnly, 0)
            .unwrap();
        steps(&mut sim, 30);
        let late = sim.join(2);
        steps(&mut sim, 120);
        let client = &sim.clients[late];
        assert_eq!(client.core.owner_of(entities[0], WHOLE_ENTITY), None);
        assert_eq!(client.core.owner_of(entities[1], WHOLE_ENTITY), Some(1));
        assert_eq!(client.core.owner_of(entities[3], WHOLE_ENTITY), Some(0));
        assert!(client.events.iter().any(|e| matches!(e,
            SessionEvent::OwnershipChanged { entity, owner: Some(1), .. } if *entity == entities[1])));
        // The host-only policy travels too: a request is refused with its reason.
        sim.clients[late].events.clear();
        sim.clients[late]
            .core
            .request_ownership(entities[2], WHOLE_ENTITY)
            .unwrap();
        steps(&mut sim, 80);
        assert!(
            sim.clients[late].events.iter().any(|e| matches!(
                e,
                SessionEvent::OwnershipDenied {
                    refusal: OwnershipRefusal::HostOnly,
                    ..
                }
            )),
            "seed {seed}"
        );
    }
}

#[test]
fn one_component_can_change_hands_while_the_entity_stays_with_its_owner() {
    let (mut world, pos, entities) = scene(1);
    let color = world.register("own.Color", Layout::Fixed(4)).unwrap();
    let lamp = entities[0];
    world.set(lamp, color, &[1, 1, 1, 1]).unwrap();
    let mut sim = sim_with_clients(world, Config::default(), rough(0.2), 7, 1);
    sim.host.set_owner(lamp, color, None).unwrap();
    steps(&mut sim, 20);
    sim.clients[0].core.request_ownership(lamp, color).unwrap();
    steps(&mut sim, 60);
    assert_eq!(sim.host.owner_of(lamp, color), Some(1));
    assert_eq!(sim.host.owner_of(lamp, pos), Some(0));
    sim.clients[0].core.set(lamp, color, &[9, 9, 9, 9]).unwrap();
    assert!(sim.clients[0].core.set(lamp, pos, &value(1, 1)).is_err());
    sim.host.set(lamp, pos, &value(0, 5)).unwrap();
    assert!(sim.host.set(lamp, color, &[0, 0, 0, 0]).is_err());
    sim.faults = healed();
    assert!(sim.converge(Duration::from_secs(3)).is_some());
    assert_eq!(sim.host.world().get(lamp, color), Some(&[9u8, 9, 9, 9][..]));
    assert_eq!(sim.host.world().get(lamp, pos), Some(&value(0, 5)[..]));
}

#[test]
fn the_hook_lets_the_host_engine_accept_refuse_or_time_out_requests() {
    let (world, _, entities) = scene(3);
    let config = Config {
        ownership_hook: Some(Duration::from_secs(2)),
        ..Config::default()
    };
    let mut sim = sim_with_clients(world, config, rough(0.1), 3, 1);
    for &e in &entities {
        sim.host.set_owner(e, WHOLE_ENTITY, None).unwrap();
    }
    steps(&mut sim, 20);
    for &e in &entities {
        sim.clients[0]
            .core
            .request_ownership(e, WHOLE_ENTITY)
            .unwrap();
    }
    steps(&mut sim, 40);
    let asked: Vec<(u64, EntityId)> = sim
        .host_events
        .iter()
        .filter_map(|e| match e {
            SessionEvent::OwnershipRequested {
                request, entity, ..
            } => Some((*request, *entity)),
            _ => None,
        })
        .collect();
    assert_eq!(asked.len(), 3, "every request went to the engine");
    sim.host.decide_ownership(asked[0].0, true, "").unwrap();
    sim.host
        .decide_ownership(asked[1].0, false, "not in this level")
        .unwrap();
    // The third is never answered.
    steps(&mut sim, 150);
    assert_eq!(sim.host.owner_of(asked[0].1, WHOLE_ENTITY), Some(1));
    assert_eq!(sim.host.owner_of(asked[1].1, WHOLE_ENTITY), None);
    assert_eq!(sim.host.owner_of(asked[2].1, WHOLE_ENTITY), None);
    let reasons: Vec<String> = sim.clients[0]
        .events
        .iter()
        .filter_map(|e| match e {
            SessionEvent::OwnershipDenied {
                refusal: OwnershipRefusal::Refused,
                reason,
                ..
            } => Some(reason.clone()),
            _ => None,
        })
        .collect();
    assert!(
        reasons.iter().any(|r| r == "not in this level"),
        "{reasons:?}"
    );
    assert!(
        reasons.iter().any(|r| r.contains("did not answer")),
        "{reasons:?}"
    );
    // An answer to an unknown (or answered) request is an error, harmlessly, and so is a
    // reason too long to send.
    assert!(sim.host.decide_ownership(asked[0].0, true, "").is_err());
    let long = "x".repeat(theta_net::proto::MAX_OWNERSHIP_REASON_BYTES + 1);
    assert!(matches!(
        sim.host.decide_ownership(asked[2].0, false, &long),
        Err(theta_net::proto::OwnershipError::ReasonTooLong(_))
    ));
}

#[test]
fn hostile_ownership_requests_are_refused_counted_and_change_nothing() {
    let (world, pos, entities) = scene(2);
    let mut sim = sim_with_clients(world, Config::default(), rough(0.1), 11, 2);
    let held = entities[0];
    sim.host.set_owner(held, WHOLE_ENTITY, Some(2)).unwrap();
    steps(&mut sim, 30);
    let mut encoder = Encoder::new();
    let forged = |encoder: &mut Encoder, entity: u64, action| {
        control_message(&encoder.ownership_request(entity, 0, action, fb::OwnershipPolicy(0), 0))
    };
    // A release and a policy change of what another holds; a request for no entity; an
    // unknown action.
    let bad = [
        forged(&mut encoder, held.0, fb::OwnershipAction::Release),
        forged(&mut encoder, held.0, fb::OwnershipAction::SetPolicy),
        forged(
            &mut encoder,
            0xFFFF_0000_0000_0001,
            fb::OwnershipAction::Request,
        ),
        forged(&mut encoder, held.0, fb::OwnershipAction(77)),
    ];
    for message in bad {
        sim.inject(0, Channel::Reliable, message);
    }
    // A forged owner: a write of the held entity in a frame claiming every ownership
    // message there will ever be.
    let entities = [held];
    let forged_value = value(1, 666);
    let batches = [BatchRef {
        component: pos,
        entities: &entities,
        data: &forged_value,
        lengths: None,
        inserted: None,
    }];
    let parts = FrameParts {
        base_tick: 0,
        tick: 1 << 40,
        descriptors: &[],
        spawns: &[],
        batches: &batches,
        removes: &[],
        despawns: &[],
        owner_seq: u64::MAX,
        baseline_ages: &[],
        lanes: &[],
    };
    let mut datagram = Vec::new();
    theta_net::wire::datagram_header::write(1 << 50, &[], &mut datagram);
    datagram.push(0);
    datagram.extend_from_slice(&encoder.state_datagram(&parts));
    for _ in 0..3 {
        sim.inject(0, Channel::Unreliable, datagram.clone());
    }
    sim.clients[0].events.clear();
    steps(&mut sim, 60);
    assert_eq!(sim.host.owner_of(held, WHOLE_ENTITY), Some(2));
    let refusals: Vec<OwnershipRefusal> = sim.clients[0]
        .events
        .iter()
        .filter_map(|e| match e {
            SessionEvent::OwnershipDenied { refusal, .. } => Some(*refusal),
            _ => None,
        })
        .collect();
    assert_eq!(
        refusals,
        [
            OwnershipRefusal::NotOwner,
            OwnershipRefusal::NotOwner,
            OwnershipRefusal::UnknownEntity
        ]
    );
    let d = sim.host.peer_diagnostics(1).unwrap();
    assert_eq!(d.ownership_denied, 3);
    assert!(
        d.writes_rejected >= 1,
        "the forged write is refused and reported"
    );
    assert_ne!(sim.host.world().get(held, pos), Some(&forged_value[..]));
    assert_eq!(d.malformed, 1, "the unknown action is counted as malformed");
    // Client-side misuse is refused before anything is sent.
    let now = sim.now();
    assert!(sim.clients[0]
        .core
        .release_ownership(held, WHOLE_ENTITY, now)
        .is_err());
    assert!(sim.clients[0].core.set(held, pos, &value(1, 1)).is_err());
    sim.faults = healed();
    assert!(sim.converge(Duration::from_secs(3)).is_some());
}

#[test]
fn a_release_delivers_the_holders_last_writes_before_the_object_is_free() {
    for seed in seeds().take(10) {
        let (world, pos, entities) = scene(1);
        let mut sim = sim_with_clients(world, Config::default(), rough(0.3), seed, 2);
        let ball = entities[0];
        sim.host.set_owner(ball, WHOLE_ENTITY, None).unwrap();
        steps(&mut sim, 10);
        sim.clients[0]
            .core
            .request_ownership(ball, WHOLE_ENTITY)
            .unwrap();
        steps(&mut sim, 60);
        // A throw: the last write and the release in the same tick.
        sim.clients[0].core.set(ball, pos, &value(1, 42)).unwrap();
        let now = sim.now();
        sim.clients[0]
            .core
            .release_ownership(ball, WHOLE_ENTITY, now)
            .unwrap();
        steps(&mut sim, 60);
        assert_eq!(sim.host.owner_of(ball, WHOLE_ENTITY), None, "seed {seed}");
        assert_eq!(
            sim.host.world().get(ball, pos),
            Some(&value(1, 42)[..]),
            "seed {seed}: the last write landed"
        );
        sim.clients[1]
            .core
            .request_ownership(ball, WHOLE_ENTITY)
            .unwrap();
        steps(&mut sim, 60);
        sim.clients[1].core.set(ball, pos, &value(2, 1)).unwrap();
        sim.faults = healed();
        assert!(
            sim.converge(Duration::from_secs(3)).is_some(),
            "seed {seed}: converged"
        );
        assert_eq!(sim.host.world().get(ball, pos), Some(&value(2, 1)[..]));
    }
}

#[test]
fn ownership_passed_back_and_forth_never_applies_a_write_from_an_earlier_tenure() {
    let mut late = 0;
    for seed in seeds() {
        let (world, pos, entities) = scene(1);
        let mut sim = sim_with_clients(world, Config::default(), rough(0.3), seed, 2);
        let bat = entities[0];
        sim.host.set_owner(bat, WHOLE_ENTITY, None).unwrap();
        sim.host
            .set_ownership_policy(bat, WHOLE_ENTITY, Policy::Takeover, 0)
            .unwrap();
        steps(&mut sim, 20);
        // The host's log: every (owner, value) the authoritative world passes through.
        let log: HostLog = Rc::default();
        let watch = Rc::clone(&log);
        sim.host_observer = Some(Box::new(move |host| {
            let held: [u8; 8] = host.world().get(bat, pos).unwrap().try_into().unwrap();
            let entry = (host.owner_of(bat, WHOLE_ENTITY), held);
            let mut log = watch.borrow_mut();
            if log.last() != Some(&entry) {
                log.push(entry);
            }
        }));
        // Per client, the counter of its last write when it heard of each of its grants:
        // a write of a tenure has a larger counter.
        let mut tenure_starts: [Vec<u32>; 2] = [Vec::new(), Vec::new()];
        let mut believed = [None::<u16>; 2];
        let mut counters = [0u32; 2];
        for tick in 0..400u32 {
            // Both grab now and then (Takeover), often before hearing of the other's grab.
            for (i, counter) in counters.iter_mut().enumerate() {
                if (tick + 7 * i as u32).is_multiple_of(23) {
                    let _ = sim.clients[i].core.request_ownership(bat, WHOLE_ENTITY);
                }
                *counter += 1;
                let _ = sim.clients[i]
                    .core
                    .set(bat, pos, &value(i as u16 + 1, *counter));
            }
            sim.step();
            for i in 0..2 {
                let me = i as u16 + 1;
                for event in sim.clients[i].events.drain(..) {
                    if let SessionEvent::OwnershipChanged {
                        entity,
                        component: WHOLE_ENTITY,
                        owner,
                    } = event
                    {
                        if entity == bat && owner != believed[i] {
                            if owner == Some(me) {
                                tenure_starts[i].push(counters[i]);
                            }
                            believed[i] = owner;
                        }
                    }
                }
            }
        }
        sim.host_observer = None;
        sim.faults = healed();
        assert!(
            settle(&mut sim, bat, Duration::from_secs(3)),
            "seed {seed}: converged, owners agree: host {:?} {:?}, clients {:?}",
            sim.host.owner_of(bat, WHOLE_ENTITY),
            sim.host.world().get(bat, pos),
            sim.clients
                .iter()
                .map(|c| (
                    c.core.owner_of(bat, WHOLE_ENTITY),
                    c.core.world().get(bat, pos)
                ))
                .collect::<Vec<_>>()
        );
        // Walk the host's log: each value change is the owner's, written in its current
        // tenure (the owner's k-th grant at the host is the k-th it heard of).
        let log = log.borrow();
        let mut tenures = [0usize; 2];
        let mut owner_before = None;
        let mut value_before = log.first().map(|(_, v)| *v);
        for &(owner, v) in log.iter() {
            if owner != owner_before {
                if let Some(o @ 1..=2) = owner {
                    tenures[usize::from(o - 1)] += 1;
                }
                owner_before = owner;
            }
            if Some(v) == value_before {
                continue;
            }
            value_before = Some(v);
            let writer = writer_of(&v);
            assert_eq!(Some(writer), owner, "seed {seed}: a write by a non-owner");
            let i = usize::from(writer - 1);
            let counter = u32::from_le_bytes(v[2..6].try_into().unwrap());
            let tenure = tenures[i];
            let start = tenure_starts[i][tenure - 1];
            assert!(
                counter > start,
                "seed {seed}: peer {writer}'s write {counter} applied in its tenure {tenure}, \
                 which it heard of after write {start}"
            );
        }
        late += (1..=2)
            .filter_map(|p| sim.host.peer_diagnostics(p))
            .map(|d| d.stale_writes)
            .sum::<u64>();
    }
    assert!(late > 0, "writes of earlier tenures did arrive late");
}
