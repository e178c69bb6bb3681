//! Values of declared fields as lanes (`ComponentBatch.lanes`) from a hostile or broken
//! host: lanes for a type without declared fields, truncated or overlong varints, bytes
//! left over, lanes out of their fields' ranges, lanes beside data, a baseline the
//! replica does not hold or one from the future. Each is refused (or skipped and counted)
//! and nothing of the message is applied.

use theta_net::fields::Field;
use theta_net::wire::{self, BatchRef, Encoder, FrameParts, LaneBatch, Message};
use theta_net::{ComponentId, EntityId, Layout, Replica, World};

struct Fixture {
    replica: Replica,
    pos: ComponentId,
    raw: ComponentId,
    e: EntityId,
}

fn fixture() -> Fixture {
    let mut world = World::default();
    let pos = world.register("h.Pos", Layout::Fixed(12)).unwrap();
    let raw = world.register("h.Raw", Layout::Fixed(12)).unwrap();
    world
        .declare_fields(
            pos,
            &[Field::Position {
                offset: 0,
                precision_mm: 1.0,
            }],
        )
        .unwrap();
    Fixture {
        replica: Replica::with_registry(world.registry()),
        pos,
        raw,
        e: EntityId::new(0, 1).unwrap(),
    }
}

/// A state datagram's body at `tick` carrying one value of `component` for `e` as `lanes`
/// (with `data` beside them when given), on a baseline `age` ticks old.
fn datagram(
    tick: u64,
    component: ComponentId,
    e: EntityId,
    lanes: &[u8],
    data: &[u8],
    age: u8,
) -> Vec<u8> {
    predicted(tick, component, e, lanes, data, (age, 0))
}

/// [`datagram`], on the prediction through baselines `ages.0` and `ages.1` ticks old.
fn predicted(
    tick: u64,
    component: ComponentId,
    e: EntityId,
    lanes: &[u8],
    data: &[u8],
    (age, older_age): (u8, u8),
) -> Vec<u8> {
    let entities = [e];
    let batches = [BatchRef {
        component,
        entities: &entities,
        data,
        lengths: None,
        inserted: None,
    }];
    let ages: [&[u8]; 1] = [&[age]];
    let lanes = [LaneBatch {
        lanes,
        older_ages: &[older_age],
    }];
    Encoder::new().state_datagram(&FrameParts {
        base_tick: 0,
        tick,
        descriptors: &[],
        spawns: &entities,
        batches: &batches,
        removes: &[],
        despawns: &[],
        owner_seq: 0,
        baseline_ages: &ages,
        lanes: &lanes,
    })
}

/// Applies `bytes` as the session does; `Err` when refused.
fn apply(replica: &mut Replica, bytes: &[u8]) -> Result<(), String> {
    let frame = wire::decode_state_datagram(bytes).map_err(|e| e.to_string())?;
    replica
        .apply_frame_in(frame, bytes.len())
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Zigzag varints of three position lanes (2 mm steps).
fn lanes_of(steps: [i64; 3]) -> Vec<u8> {
    let mut out = Vec::new();
    for s in steps {
        let mut z = ((s << 1) ^ (s >> 63)) as u64;
        while z >= 0x80 {
            out.push(z as u8 | 0x80);
            z >>= 7;
        }
        out.push(z as u8);
    }
    out
}

fn floats(xs: [f32; 3]) -> Vec<u8> {
    xs.iter().flat_map(|x| x.to_le_bytes()).collect()
}

#[test]
fn good_lanes_apply_and_a_later_value_decodes_on_its_baseline() {
    let mut f = fixture();
    apply(
        &mut f.replica,
        &datagram(5, f.pos, f.e, &lanes_of([500, -3, 0]), &[], 0),
    )
    .unwrap();
    assert_eq!(
        f.replica.world().get(f.e, f.pos),
        Some(&floats([1.0, -0.006, 0.0])[..])
    );
    // Two ticks later, on the value of tick 5: one step along x.
    apply(
        &mut f.replica,
        &datagram(7, f.pos, f.e, &lanes_of([1, 0, 0]), &[], 2),
    )
    .unwrap();
    assert_eq!(
        f.replica.world().get(f.e, f.pos),
        Some(&floats([1.002, -0.006, 0.0])[..])
    );
}

#[test]
fn hostile_lanes_are_refused_and_change_nothing() {
    let mut f = fixture();
    apply(
        &mut f.replica,
        &datagram(5, f.pos, f.e, &lanes_of([500, 0, 0]), &[], 0),
    )
    .unwrap();
    let before = f.replica.state_hash();
    let good = lanes_of([1, 2, 3]);
    let mut left_over = good.clone();
    left_over.push(0);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "lanes for a type without declared fields",
            datagram(6, f.raw, f.e, &good, &[], 0),
        ),
        ("truncated", datagram(6, f.pos, f.e, &good[..2], &[], 0)),
        ("left over", datagram(6, f.pos, f.e, &left_over, &[], 0)),
        (
            "an overlong varint",
            datagram(6, f.pos, f.e, &[0xff; 12], &[], 0),
        ),
        (
            "a position beyond its range",
            datagram(6, f.pos, f.e, &lanes_of([1 << 30, 0, 0]), &[], 0),
        ),
        (
            "lanes beside data",
            datagram(6, f.pos, f.e, &good, &[0; 12], 0),
        ),
        (
            "an older baseline newer than the baseline",
            predicted(6, f.pos, f.e, &good, &[], (1, 1)),
        ),
    ];
    for (what, bytes) in cases {
        assert!(apply(&mut f.replica, &bytes).is_err(), "{what} was applied");
        assert_eq!(f.replica.state_hash(), before, "{what} changed the state");
    }
    // A baseline the replica never received, or one from before tick 0: the value is
    // skipped and counted, and the datagram is not to be acknowledged.
    for (tick, ages) in [(9, (3, 0)), (6, (200, 0)), (6, (1, 4))] {
        let (age, _) = ages;
        let bytes = predicted(tick, f.pos, f.e, &good, &[], ages);
        let Ok(Message::StateDatagram(d)) = wire::decode(&bytes) else {
            panic!("a datagram")
        };
        assert!(!f.replica.holds_baselines(d.frame().unwrap()));
        let missing = f.replica.stats().missing_baselines;
        apply(&mut f.replica, &bytes).unwrap();
        assert_eq!(f.replica.stats().missing_baselines, missing + 1);
        assert_eq!(
            f.replica.state_hash(),
            before,
            "age {age} changed the state"
        );
    }
}
