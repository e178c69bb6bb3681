//! The demo scene shared by `theta demo` (in-process and over QUIC), `theta host` and
//! `theta join`: objects with a transform and a color, some with a label, of which a
//! percentage moves each tick while a few recolor, leave, arrive and get (un)labelled.
//!
//! The scene keeps its component ids, its objects and its random generator; the world it
//! writes is passed to each call, so it can live inside a host session.
//!
//! The transform declares its fields (position to 1 mm, rotation to 0.1°: see
//! `theta_net::fields`), so it is quantised and travels as small numbers against what
//! each client acknowledged; `theta demo --fields off` sends it as a raw blob instead.
//!
//! Two motions: `smooth` (the default) keeps a persistent set of objects in motion along
//! continuous paths (walking speed, turning, at 60 Hz) while the rest stay at rest, as
//! objects carried or animated in an XR scene move; `teleport` writes a fresh random
//! transform (random floats) for each mover, a stress test and a worst case for compression.

use theta_net::fields::Field;
use theta_net::{ComponentId, EntityId, Layout, Registry, World};

/// SplitMix64: a deterministic scene from a seed, no dependency needed.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    pub fn unit(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32
    }
}

/// Bytes of a transform: position (3 × f32) and rotation quaternion (4 × f32).
const TRANSFORM_BYTES: usize = 28;
/// The transform's fields: what an XR scene needs of a shared object (the pose stream's
/// precision too).
const TRANSFORM_FIELDS: [Field; 2] = [
    Field::Position {
        offset: 0,
        precision_mm: 1.0,
    },
    Field::Rotation {
        offset: 12,
        precision_deg: 0.1,
    },
];
/// Seconds per tick of smooth motion (60 Hz).
const DT: f32 = 1.0 / 60.0;
/// Fastest an object moves in smooth motion, m/s (a brisk walk).
const MAX_SPEED: f32 = 1.5;

/// How the moving objects move (`--motion smooth|teleport`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Motion {
    /// The same objects keep moving along continuous paths; the rest rest.
    Smooth,
    /// Movers get fresh random transforms (a stress test: random floats).
    Teleport,
}

/// The transform's component name.
pub const TRANSFORM: &str = "demo.Transform";
/// The color's component name.
pub const COLOR: &str = "demo.Color";
/// The label's component name.
const LABEL: &str = "demo.Label";

/// Where an object is and how it moves (smooth motion).
#[derive(Clone, Copy, Debug)]
pub struct Body {
    position: [f32; 3],
    yaw: f32,
    velocity: [f32; 2],
    yaw_rate: f32,
}

impl Body {
    /// A body somewhere in the scene's 20 m × 20 m × 3 m, walking in some direction.
    pub fn random(rng: &mut Rng) -> Body {
        let heading = rng.unit() * std::f32::consts::TAU;
        let speed = rng.unit() * MAX_SPEED;
        Body {
            position: [
                rng.unit() * 20.0 - 10.0,
                rng.unit() * 3.0,
                rng.unit() * 20.0 - 10.0,
            ],
            yaw: rng.unit() * std::f32::consts::TAU,
            velocity: [speed * heading.cos(), speed * heading.sin()],
            yaw_rate: (rng.unit() - 0.5) * 1.0,
        }
    }

    /// One step of smooth motion ([`DT`]): accelerates a little at random, keeps under
    /// [`MAX_SPEED`], turns slowly, and bounces off the scene's 20 m × 20 m bounds.
    pub fn advance(&mut self, rng: &mut Rng) {
        let (ax, az) = (rng.unit() - 0.5, rng.unit() - 0.5);
        let turn = (rng.unit() - 0.5) * 0.2;
        self.velocity[0] += ax * 2.0 * DT;
        self.velocity[1] += az * 2.0 * DT;
        let speed = self.velocity[0].hypot(self.velocity[1]);
        if speed > MAX_SPEED {
            self.velocity = self.velocity.map(|v| v * MAX_SPEED / speed);
        }
        self.yaw_rate = (self.yaw_rate + turn * DT).clamp(-1.0, 1.0);
        self.yaw = (self.yaw + self.yaw_rate * DT).rem_euclid(std::f32::consts::TAU);
        for (axis, v) in [(0, 0), (2, 1)] {
            self.position[axis] += self.velocity[v] * DT;
            if self.position[axis].abs() > 10.0 {
                self.velocity[v] = -self.velocity[v];
                self.position[axis] = self.position[axis].clamp(-10.0, 10.0);
            }
        }
    }

    /// The transform's bytes: position, then the rotation about the vertical axis.
    pub fn transform(&self) -> [u8; TRANSFORM_BYTES] {
        let (s, c) = (self.yaw * 0.5).sin_cos();
        let values = [
            self.position[0],
            self.position[1],
            self.position[2],
            0.0,
            s,
            0.0,
            c,
        ];
        let mut out = [0u8; TRANSFORM_BYTES];
        for (slot, v) in out.chunks_exact_mut(4).zip(values) {
            slot.copy_from_slice(&v.to_le_bytes());
        }
        out
    }
}

/// The scene's component types, registered in `world` (the transform's fields declared
/// when `fields`); the same names, layouts and fields on every peer, so a client's
/// registry matches the host's.
fn register(
    world: &mut World,
    fields: bool,
) -> Result<(ComponentId, ComponentId, ComponentId), String> {
    let err = |e: theta_net::RegistryError| e.to_string();
    let transform = world
        .register(TRANSFORM, Layout::Fixed(TRANSFORM_BYTES as u32))
        .map_err(err)?;
    if fields {
        world
            .declare_fields(transform, &TRANSFORM_FIELDS)
            .map_err(|e| e.to_string())?;
    }
    let color = world.register(COLOR, Layout::Fixed(4)).map_err(err)?;
    let label = world
        .register(LABEL, Layout::Variable { max: 64 })
        .map_err(err)?;
    Ok((transform, color, label))
}

/// The registry a peer of the demo scene needs (what `theta join` presents).
pub fn registry() -> Result<Registry, String> {
    let mut world = World::default();
    register(&mut world, true)?;
    Ok(world.registry().clone())
}

/// The scene: objects with a transform (position + rotation, 28 bytes) and a color; some
/// carry a label of variable length.
pub struct Scene {
    pub transform: ComponentId,
    pub color: ComponentId,
    pub label: ComponentId,
    objects: Vec<EntityId>,
    /// Per object (same order): its body, for smooth motion.
    bodies: Vec<Body>,
    motion: Motion,
    rng: Rng,
}

impl Scene {
    /// Registers the scene's types in `world` and spawns `entities` objects there
    /// (smooth motion, the transform's fields declared).
    pub fn new(world: &mut World, entities: usize, seed: u64) -> Result<Self, String> {
        Self::with_motion(world, entities, seed, Motion::Smooth, true)
    }

    /// As [`Scene::new`], with the given motion, the transform's fields declared or not.
    pub fn with_motion(
        world: &mut World,
        entities: usize,
        seed: u64,
        motion: Motion,
        fields: bool,
    ) -> Result<Self, String> {
        let (transform, color, label) = register(world, fields)?;
        let mut scene = Scene {
            transform,
            color,
            label,
            objects: Vec::with_capacity(entities),
            bodies: Vec::with_capacity(entities),
            motion,
            rng: Rng(seed),
        };
        for _ in 0..entities {
            scene.spawn_object(world)?;
        }
        Ok(scene)
    }

    fn transform_bytes(&mut self) -> [u8; TRANSFORM_BYTES] {
        let mut out = [0u8; TRANSFORM_BYTES];
        let values = [
            self.rng.unit() * 20.0 - 10.0,
            self.rng.unit() * 3.0,
            self.rng.unit() * 20.0 - 10.0,
            0.0,
            self.rng.unit(),
            0.0,
            1.0,
        ];
        for (slot, v) in out.chunks_exact_mut(4).zip(values) {
            slot.copy_from_slice(&v.to_le_bytes());
        }
        out
    }

    fn spawn_object(&mut self, world: &mut World) -> Result<(), String> {
        let err = |e: theta_net::WorldError| e.to_string();
        let e = world.spawn().map_err(err)?;
        let body = Body::random(&mut self.rng);
        let transform = match self.motion {
            Motion::Teleport => self.transform_bytes(),
            Motion::Smooth => body.transform(),
        };
        let color = (self.rng.next() as u32).to_le_bytes();
        world.set(e, self.transform, &transform).map_err(err)?;
        world.set(e, self.color, &color).map_err(err)?;
        if self.rng.below(10) == 0 {
            let label = format!("object-{}", e.counter());
            world.set(e, self.label, label.as_bytes()).map_err(err)?;
        }
        self.objects.push(e);
        self.bodies.push(body);
        Ok(())
    }

    /// One tick of smooth motion for the first `moving` objects (a persistent set: the
    /// order only changes by churn); see [`Body::advance`].
    fn move_smoothly(&mut self, moving: usize) -> (Vec<EntityId>, Vec<u8>) {
        let moving = moving.min(self.objects.len());
        let mut movers = Vec::with_capacity(moving);
        let mut values = Vec::with_capacity(moving * TRANSFORM_BYTES);
        for (object, body) in self.objects.iter().zip(&mut self.bodies).take(moving) {
            body.advance(&mut self.rng);
            movers.push(*object);
            values.extend_from_slice(&body.transform());
        }
        // The world wants a batch in any order of distinct entities: they are.
        (movers, values)
    }

    /// One tick of motion and churn: `move_percent` % of the objects get a new transform
    /// (teleport: random objects, anywhere; smooth: the same objects, a small step),
    /// 1 % a new color, and about 0.5 % leave while as many arrive and labels come and go.
    pub fn step(&mut self, world: &mut World, move_percent: f64) -> Result<(), String> {
        let err = |e: theta_net::WorldError| e.to_string();
        let moving = ((self.objects.len() as f64) * move_percent / 100.0).round() as usize;
        let (movers, values) = match self.motion {
            Motion::Smooth => self.move_smoothly(moving),
            Motion::Teleport => {
                let mut movers = Vec::with_capacity(moving);
                let mut values = Vec::with_capacity(moving * TRANSFORM_BYTES);
                for _ in 0..moving {
                    let e = self.objects[self.rng.below(self.objects.len())];
                    if movers.contains(&e) {
                        continue;
                    }
                    movers.push(e);
                    values.extend_from_slice(&self.transform_bytes());
                }
                (movers, values)
            }
        };
        world
            .set_batch(self.transform, &movers, &values, TRANSFORM_BYTES)
            .map_err(err)?;
        let recolor = (self.objects.len() / 100).max(1);
        for _ in 0..recolor {
            let e = self.objects[self.rng.below(self.objects.len())];
            let color = (self.rng.next() as u32).to_le_bytes();
            world.set(e, self.color, &color).map_err(err)?;
        }
        // Churn: about 0.5 % of objects leave and as many arrive; labels come and go.
        let churn = (self.objects.len() / 200).max(1);
        for _ in 0..churn {
            if self.objects.len() > 1 {
                let i = self.rng.below(self.objects.len());
                let gone = self.objects.swap_remove(i);
                self.bodies.swap_remove(i);
                world.despawn(gone).map_err(err)?;
            }
            self.spawn_object(world)?;
            let e = self.objects[self.rng.below(self.objects.len())];
            if world.get(e, self.label).is_some() {
                world.remove(e, self.label).map_err(err)?;
            } else {
                world.set(e, self.label, b"tagged").map_err(err)?;
            }
        }
        Ok(())
    }
}
