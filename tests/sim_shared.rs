//! State datagrams built and compressed once per tick and shared by the clients in step
//! (issue 18, item 3), under the deterministic simulator: clients that acknowledged the
//! same sends get byte-identical bodies after their own headers, the host counts the
//! bodies and envelopes it shared, a client out of step gets bodies of its own, and
//! everything converges bit for bit. And the datagram's form: a body that carries the
//! header's fields, or a datagram of the form before protocol revision 2, is refused and
//! counted.

mod sim;

use std::collections::BTreeMap;
use std::time::Duration;

use sim::{Faults, Rng, Sim};
use theta_net::proto::{Channel, Config};
use theta_net::wire::{datagram_header, fb, FILE_IDENTIFIER, WIRE_VERSION};
use theta_net::{ComponentId, EntityId, Layout, World};

const OBJECTS: usize = 300;

/// The objects of a scene: entity, position, yaw.
type Objects = Vec<(EntityId, [f32; 3], f32)>;

/// A host of 300 objects with a transform of declared fields (lanes on baselines), and
/// `clients` clients joined and converged, on a clean path of 20 ms each way.
fn session(seed: u64, clients: u16) -> (Sim, ComponentId, Objects) {
    session_on(seed, clients, Faults::clean(Duration::from_millis(20)))
}

/// [`session`] on paths with `faults`.
fn session_on(seed: u64, clients: u16, faults: Faults) -> (Sim, ComponentId, Objects) {
    let mut rng = Rng::new(seed);
    let mut world = World::default();
    let t = world.register("s.Transform", Layout::Fixed(28)).unwrap();
    let fields = sim::transform_fields();
    world.declare_fields(t, &fields).unwrap();
    let objects = (0..OBJECTS)
        .map(|_| {
            let e = world.spawn().unwrap();
            let p = [rng.below(20) as f32, 1.0, rng.below(20) as f32];
            world.set(e, t, &sim::transform(p, 0.0)).unwrap();
            (e, p, 0.0)
        })
        .collect();
    let config = Config {
        value_baselines: true,
        ..Config::default()
    };
    let mut sim = Sim::new(world, config, faults, seed);
    for peer in 1..=clients {
        sim.join(peer);
    }
    assert!(sim.converge(Duration::from_secs(5)).is_some(), "joined");
    (sim, t, objects)
}

/// One tick of motion: a tenth of the objects (and the first 30) move, then the session
/// steps.
fn move_and_step(sim: &mut Sim, t: ComponentId, objects: &mut Objects, tick: usize) {
    for (i, (e, p, yaw)) in objects.iter_mut().enumerate() {
        if i % 10 == tick % 10 || i < 30 {
            p[0] += 0.02;
            *yaw += 0.01;
            sim.host.set(*e, t, &sim::transform(*p, *yaw)).unwrap();
        }
    }
    sim.step();
}

/// The host's state datagrams of each tick, per client: the bodies after the headers
/// (empty for an acknowledgement alone), in the order sent.
fn bodies_by_tick(kept: &[(Duration, usize, Vec<u8>)]) -> BTreeMap<Duration, Vec<Vec<&[u8]>>> {
    let mut ticks: BTreeMap<Duration, Vec<Vec<&[u8]>>> = BTreeMap::new();
    for (at, client, bytes) in kept {
        // Pose packets and other unreliable messages are not state datagrams.
        let Ok((_, body)) = datagram_header::read(bytes) else {
            continue;
        };
        let clients = ticks.entry(*at).or_default();
        if clients.len() <= *client {
            clients.resize(*client + 1, Vec::new());
        }
        clients[*client].push(body);
    }
    ticks
}

/// (state datagrams the host sent, bodies encoded, bodies shared, envelopes shared).
fn figures(sim: &Sim) -> (u64, u64, u64, u64) {
    let d = sim.host.diagnostics();
    let sent = d.peers.iter().map(|p| p.outbox.datagrams_sent).sum();
    (
        sent,
        d.datagrams_encoded,
        d.datagrams_shared,
        d.datagram_envelopes_shared,
    )
}

#[test]
fn clients_in_step_share_one_body_and_one_compression_per_datagram() {
    let (mut sim, t, mut objects) = session(11, 4);
    // Warm-up: dictionaries trained, baselines acknowledged by all.
    for tick in 0..120 {
        move_and_step(&mut sim, t, &mut objects, tick);
    }
    let before = figures(&sim);
    sim.host_datagrams = Some(Vec::new());
    for tick in 120..180 {
        move_and_step(&mut sim, t, &mut objects, tick);
    }
    let kept = sim.host_datagrams.take().unwrap();
    let after = figures(&sim);

    let ticks = bodies_by_tick(&kept);
    let mut compared = 0;
    for (at, clients) in &ticks {
        assert_eq!(clients.len(), 4, "at {at:?}: datagrams for every client");
        for (i, bodies) in clients.iter().enumerate().skip(1) {
            assert_eq!(
                bodies, &clients[0],
                "at {at:?}: client {i}'s bodies differ from client 0's"
            );
        }
        compared += clients[0].iter().filter(|b| !b.is_empty()).count();
    }
    assert!(compared >= 60, "{compared} bodies compared");

    let (sent, encoded, shared, envelopes) = (
        after.0 - before.0,
        after.1 - before.1,
        after.2 - before.2,
        after.3 - before.3,
    );
    // In step, one body in four is encoded and compressed; three are shared.
    assert!(sent > 0);
    assert!(encoded * 2 <= sent, "{encoded} encoded of {sent} sent");
    assert_eq!(
        encoded + shared,
        sent,
        "every datagram's body is counted once"
    );
    assert_eq!(
        encoded * 3,
        shared,
        "in step, three clients share each body"
    );
    assert!(
        envelopes * 2 >= sent,
        "{envelopes} envelopes shared of {sent}"
    );

    // Everything converges, bit for bit.
    assert!(sim.converge(Duration::from_secs(3)).is_some(), "converged");
    assert_eq!(sim.oversized, 0);
}

#[test]
fn bodies_shared_under_jitter_loss_and_duplication_converge_bit_exact() {
    for seed in [21, 22, 23] {
        // Reordering by delay variation, loss and duplicates on every client's path:
        // clients fall in and out of step, acknowledge different sends and share what
        // they still have in common.
        let faults = Faults {
            latency: Duration::from_millis(20),
            jitter: Duration::from_millis(15),
            loss: 0.1,
            duplicate: 0.02,
            bandwidth: None,
        };
        let (mut sim, t, mut objects) = session_on(seed, 4, faults);
        let before = figures(&sim);
        for tick in 0..240 {
            move_and_step(&mut sim, t, &mut objects, tick);
        }
        let after = figures(&sim);
        let (sent, encoded, shared) = (after.0 - before.0, after.1 - before.1, after.2 - before.2);
        assert_eq!(
            encoded + shared,
            sent,
            "seed {seed}: each body counted once"
        );
        assert!(shared > 0, "seed {seed}: nothing shared of {sent}");
        assert!(
            encoded > sent / 4,
            "seed {seed}: {encoded} encoded of {sent}: out of step, some bodies are a client's own"
        );
        assert!(
            sim.converge(Duration::from_secs(5)).is_some(),
            "seed {seed}: converged bit-exact"
        );
    }
}

#[test]
fn a_client_out_of_step_gets_bodies_of_its_own_and_converges() {
    let (mut sim, t, mut objects) = session(12, 4);
    for tick in 0..60 {
        move_and_step(&mut sim, t, &mut objects, tick);
    }
    // Client 3's path loses everything for a quarter second: its acknowledgements stop,
    // its keys wait on older baselines and go again.
    sim.partition(3, Duration::from_millis(250));
    sim.host_datagrams = Some(Vec::new());
    for tick in 60..120 {
        move_and_step(&mut sim, t, &mut objects, tick);
    }
    let kept = sim.host_datagrams.take().unwrap();
    let ticks = bodies_by_tick(&kept);
    let mut own = 0;
    for clients in ticks.values() {
        assert_eq!(clients.len(), 4);
        // The three in step still share everything.
        assert_eq!(clients[1], clients[0]);
        assert_eq!(clients[2], clients[0]);
        own += clients[3]
            .iter()
            .filter(|b| !b.is_empty() && !clients[0].contains(b))
            .count();
    }
    assert!(own > 0, "client 3 got no body of its own");
    let d = sim.host.diagnostics();
    assert!(d.datagrams_shared > 0);

    assert!(
        sim.converge(Duration::from_secs(3)).is_some(),
        "client 3 converged again"
    );
}

/// A state datagram body as a hostile peer could make it: a frame at `tick`, with the
/// header's fields set inside the body when asked.
fn body(tick: u64, seq: u64, acks: bool) -> Vec<u8> {
    let mut fbb = flatbuffers::FlatBufferBuilder::new();
    let frame = fb::DeltaFrame::create(
        &mut fbb,
        &fb::DeltaFrameArgs {
            tick,
            ..Default::default()
        },
    );
    let acks = acks.then(|| fbb.create_vector(&[fb::AckRange::new(0, 3)]));
    let datagram = fb::StateDatagram::create(
        &mut fbb,
        &fb::StateDatagramArgs {
            seq,
            acks,
            frame: Some(frame),
        },
    );
    let message = fb::Message::create(
        &mut fbb,
        &fb::MessageArgs {
            version: WIRE_VERSION,
            payload_type: fb::Payload::StateDatagram,
            payload: Some(datagram.as_union_value()),
        },
    );
    fbb.finish(message, Some(FILE_IDENTIFIER));
    fbb.finished_data().to_vec()
}

/// `body` after the header of datagram `seq`, in a raw envelope.
fn datagram(seq: u64, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    datagram_header::write(seq, &[], &mut out);
    out.push(0);
    out.extend_from_slice(body);
    out
}

/// Whether the host acknowledged datagram `seq` of the client in one it sent.
fn acknowledged(kept: &[(Duration, usize, Vec<u8>)], seq: u64) -> bool {
    kept.iter().any(|(_, _, bytes)| {
        datagram_header::read(bytes)
            .is_ok_and(|(h, _)| h.acks().iter().any(|&(f, l)| (f..=l).contains(&seq)))
    })
}

#[test]
fn a_body_with_the_headers_fields_or_a_datagram_of_the_old_form_is_refused_and_counted() {
    let (mut sim, _, _) = session(13, 1);
    let malformed = |sim: &Sim| sim.host.peer_diagnostics(1).unwrap().malformed;
    let start = malformed(&sim);
    let seq = 1 << 40;
    // A well-formed one is taken (acknowledged) and not counted.
    sim.host_datagrams = Some(Vec::new());
    sim.inject(0, Channel::Unreliable, datagram(seq, &body(1, 0, false)));
    for _ in 0..4 {
        sim.step();
    }
    assert_eq!(malformed(&sim), start, "a well-formed datagram was counted");
    assert!(acknowledged(sim.host_datagrams.as_ref().unwrap(), seq));
    let hostile = [
        // The sequence number in the body too.
        datagram(seq + 1, &body(2, 5, false)),
        // Acknowledgements in the body.
        datagram(seq + 2, &body(3, 0, true)),
        // Both.
        datagram(seq + 3, &body(4, 5, true)),
        // The old form, each envelope format: no header, the body with its fields.
        [&[0u8][..], &body(5, seq + 4, true)].concat(),
        [&[1u8][..], &body(6, seq + 5, false)].concat(),
        vec![2u8, 1, 2, 3],
        // Anything else.
        vec![0x11, 0, 0],
    ];
    for bytes in &hostile {
        sim.inject(0, Channel::Unreliable, bytes.clone());
    }
    for _ in 0..4 {
        sim.step();
    }
    assert_eq!(malformed(&sim) - start, hostile.len() as u64);
    let kept = sim.host_datagrams.take().unwrap();
    for refused in seq + 1..=seq + 5 {
        assert!(!acknowledged(&kept, refused), "{refused} acknowledged");
    }
    // The client carries on.
    assert!(sim.converge(Duration::from_secs(2)).is_some());
}
