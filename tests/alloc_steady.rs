//! The host's steady state allocates no buffer per state datagram but the one it hands
//! over (issue 18, item 3: "buffers are reused"). A counting global allocator wraps the
//! system's; the deterministic simulator (`tests/sim/`) runs a host and eight clients
//! over a demo-like scene (1 000 objects with a transform of declared fields and a raw
//! blob, a tenth of them changing each tick). After a warm-up (dictionaries trained,
//! histories and buffers filled), the allocations made inside the host's `tick` and
//! `poll_output` are counted over 200 ticks: at most one per datagram sent (the
//! `Output::Send` bytes the transport takes) plus a few per tick (the world's list of
//! the tick's changes).
//!
//! The same session with every client pushing a 3-point avatar, which the host relays,
//! is measured too and only printed: the pose relay (`xr::relay`) still builds its
//! packets in buffers of their own.
//!
//! `cargo test --test alloc_steady -- --nocapture` prints the figures.

mod sim;

use std::alloc::{GlobalAlloc, Layout as AllocLayout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use sim::{Faults, Sim};
use theta_net::proto::Config;
use theta_net::wire::codec::MessageKind;
use theta_net::xr::{Device, PoseSample, Vec3};
use theta_net::{EntityId, Layout, World};

/// Allocations and reallocations counted while the measuring thread is inside the host.
static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// Whether this thread counts its allocations now: the test switches it on for the
    /// host's calls of the measured ticks only.
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    /// Whether the measured section runs (the meter counts only then).
    static MEASURING: Cell<bool> = const { Cell::new(false) };
}

/// The system allocator, counting allocation calls (alloc, zeroed alloc, realloc) made by
/// a thread while its `COUNTING` is on.
struct CountingAllocator;

fn count() {
    // `try_with`: a thread's locals may be gone while it frees its last buffers.
    if COUNTING.try_with(Cell::get).unwrap_or(false) {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
    }
}

// SAFETY: every call is forwarded unchanged to `System`, which upholds `GlobalAlloc`'s
// contract; counting touches only an atomic and a `const`-initialised thread local, which
// never allocate.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: AllocLayout) -> *mut u8 {
        count();
        // SAFETY: the caller's layout, as `GlobalAlloc::alloc` requires.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: AllocLayout) -> *mut u8 {
        count();
        // SAFETY: as above.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: AllocLayout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: `ptr` was allocated by `System` (every allocation goes through it) with
        // `layout`, as the caller guarantees.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: AllocLayout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

/// The simulator's bracket around the host's calls: counting is on inside them during
/// the measured section.
fn meter(inside: bool) {
    let on = inside && MEASURING.with(Cell::get);
    COUNTING.with(|c| c.set(on));
}

const OBJECTS: usize = 1000;
const CLIENTS: u16 = 8;
const WARM_UP_TICKS: usize = 300;
const MEASURED_TICKS: usize = 200;

/// Client `peer`'s device `device` at `s` seconds: a slow walk, hands beside the head.
fn avatar(peer: u16, device: Device, s: f64) -> PoseSample {
    let side = match device.index() {
        1 => -0.3,
        2 => 0.3,
        _ => 0.0,
    };
    let position = Vec3::new(
        (f64::from(peer) + side) as f32,
        (1.6 + 0.02 * (6.0 * s).sin()) as f32,
        (-0.5 * s) as f32,
    );
    let velocity = Vec3::new(0.0, (0.12 * (6.0 * s).cos()) as f32, -0.5);
    sim::walking_sample(s, position, velocity)
}

/// The scene: a host world of `OBJECTS` objects, each with a transform of declared fields
/// and a 16-byte raw blob.
struct Scene {
    transform: theta_net::ComponentId,
    blob: theta_net::ComponentId,
    objects: Vec<(EntityId, [f32; 3], f32)>,
}

impl Scene {
    fn new() -> (Scene, World) {
        let mut world = World::default();
        let transform = world
            .register("alloc.Transform", Layout::Fixed(28))
            .expect("register");
        let fields = sim::transform_fields();
        world
            .declare_fields(transform, &fields)
            .expect("declare fields");
        let blob = world
            .register("alloc.Blob", Layout::Fixed(16))
            .expect("register");
        let objects = (0..OBJECTS)
            .map(|i| {
                let e = world.spawn().expect("spawn");
                let p = [(i % 40) as f32, 1.0, (i / 40) as f32];
                world
                    .set(e, transform, &sim::transform(p, 0.0))
                    .expect("set");
                world.set(e, blob, &blob_of(i, 0)).expect("set");
                (e, p, 0.0)
            })
            .collect();
        (
            Scene {
                transform,
                blob,
                objects,
            },
            world,
        )
    }

    /// Tick `tick`'s changes: the same tenth of the objects walk (as carried or animated
    /// objects do), and another tenth, a different one each tick, rewrite their blob.
    fn step(&mut self, sim: &mut Sim, tick: usize) {
        for (i, (e, p, yaw)) in self.objects.iter_mut().enumerate() {
            if i % 10 == 0 {
                p[0] += 0.01;
                p[2] += 0.005;
                *yaw += 0.01;
                sim.host
                    .set(*e, self.transform, &sim::transform(*p, *yaw))
                    .expect("set");
            }
            if i % 10 == tick % 10 {
                sim.host.set(*e, self.blob, &blob_of(i, tick)).expect("set");
            }
        }
    }
}

/// A blob: a few counters and constant bytes, as an engine's opaque state looks.
fn blob_of(i: usize, tick: usize) -> [u8; 16] {
    let mut out = [0u8; 16];
    out[..4].copy_from_slice(&(i as u32).to_le_bytes());
    out[4..8].copy_from_slice(&(tick as u32).to_le_bytes());
    out[8] = (tick % 7) as u8;
    out
}

/// Pushes every client's avatar for now.
fn push_avatars(sim: &mut Sim) {
    let now = sim.now();
    let s = sim.elapsed.as_secs_f64();
    for client in &mut sim.clients {
        let peer = client.peer;
        let local = client.core.poses().local_ns(now);
        for device in [Device::HEAD, Device::LEFT_HAND, Device::RIGHT_HAND] {
            let sample = PoseSample {
                time: local,
                ..avatar(peer, device, s)
            };
            client.core.poses_mut().push(device, &sample).expect("push");
        }
    }
}

/// Datagrams the host sent so far: state datagrams (acknowledgements alone included)
/// and pose packets.
fn datagrams_sent(sim: &Sim) -> u64 {
    let d = sim.host.diagnostics();
    let state = d
        .compression
        .iter()
        .find(|k| k.kind == MessageKind::Datagram)
        .map_or(0, |k| k.counters.frames_out);
    let poses: u64 = d.peers.iter().map(|p| p.poses.packets_sent).sum();
    state + poses
}

/// Allocations and datagrams of the host's calls over the measured ticks of a session,
/// with avatars or without.
fn run(avatars: bool) -> (u64, u64) {
    let (mut scene, world) = Scene::new();
    let faults = Faults {
        latency: Duration::from_millis(15),
        jitter: Duration::from_millis(5),
        loss: 0.02,
        duplicate: 0.0,
        bandwidth: None,
    };
    let mut sim = Sim::new(world, Config::default(), faults, 18);
    for peer in 1..=CLIENTS {
        sim.join(peer);
    }
    assert!(
        sim.converge(Duration::from_secs(10)).is_some(),
        "the clients joined"
    );
    sim.host_meter = Some(meter);
    let mut tick = 0;
    for _ in 0..WARM_UP_TICKS {
        scene.step(&mut sim, tick);
        if avatars {
            push_avatars(&mut sim);
        }
        sim.step();
        tick += 1;
    }
    let trained = sim
        .host
        .diagnostics()
        .compression
        .iter()
        .find(|k| k.kind == MessageKind::Datagram)
        .is_some_and(|k| k.trained > 0);
    assert!(trained, "the datagram dictionary is trained in the warm-up");

    let datagrams_before = datagrams_sent(&sim);
    ALLOCATIONS.store(0, Ordering::Relaxed);
    for _ in 0..MEASURED_TICKS {
        scene.step(&mut sim, tick);
        if avatars {
            push_avatars(&mut sim);
        }
        MEASURING.with(|m| m.set(true));
        sim.step();
        MEASURING.with(|m| m.set(false));
        tick += 1;
    }
    let allocations = ALLOCATIONS.load(Ordering::Relaxed);
    let datagrams = datagrams_sent(&sim) - datagrams_before;
    let ticks = MEASURED_TICKS as u64;
    eprintln!(
        "{}: host tick + poll_output over {ticks} ticks, {CLIENTS} clients: {allocations} \
         allocations, {datagrams} datagrams sent: {:.3} allocations per datagram, {:.1} per tick",
        if avatars {
            "with avatars"
        } else {
            "state only"
        },
        allocations as f64 / datagrams as f64,
        allocations as f64 / ticks as f64,
    );
    // The session still works: every client converges once the changes stop.
    assert!(
        sim.converge(Duration::from_secs(5)).is_some(),
        "the clients converged"
    );
    assert!(
        datagrams > ticks * u64::from(CLIENTS),
        "{datagrams} datagrams"
    );
    (allocations, datagrams)
}

#[test]
fn the_host_allocates_no_buffer_per_datagram_but_the_one_it_hands_over() {
    let (allocations, datagrams) = run(false);
    // One buffer per datagram (the bytes handed to the transport), and a few per tick
    // for the tick's own lists (the world's changed keys).
    let ticks = MEASURED_TICKS as u64;
    let per_tick = 16;
    assert!(
        allocations <= datagrams + per_tick * ticks,
        "{allocations} allocations for {datagrams} datagrams in {ticks} ticks"
    );
    // Measured, not bounded: the pose relay's packets (see the module's text).
    run(true);
}
