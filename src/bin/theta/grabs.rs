//! `theta demo --grab N`: the clients pass N shared objects between them. The host spawns
//! them free (nobody owns them; every other one may be taken from its holder); each tick a
//! client that holds one moves it and now and then lets it go, and a client that holds
//! none asks for a random one. The host's world is watched every tick: a value written by
//! a peer that had lost the object a tick before would be a write of a previous owner
//! applied after its transfer.

use theta_net::net::session::Session;
use theta_net::ownership::{Policy, WHOLE_ENTITY};
use theta_net::{ComponentId, EntityId, PeerId};

use crate::scene::Rng;

/// The scene's transform type, which the objects carry.
const TRANSFORM: &str = "demo.Transform";
/// Bytes of a transform value.
const TRANSFORM_BYTES: usize = 28;
/// Per tick, the chance that a client holding an object lets it go, and that a client
/// holding none asks for one.
const RELEASE_CHANCE: f32 = 1.0 / 90.0;
const REQUEST_CHANCE: f32 = 1.0 / 20.0;

/// The objects, the host's view of them a tick ago, and the counts.
pub struct Grabs {
    objects: Vec<EntityId>,
    transform: ComponentId,
    rng: Rng,
    /// Per object: owner and value at the last look.
    last: Vec<(Option<PeerId>, Vec<u8>)>,
    /// Changes of owner the host's world went through, seen tick by tick.
    pub owner_changes: u64,
    /// Requests the clients sent.
    pub requests: u64,
    /// Values the host took from a peer that did not own the object a tick before and
    /// does not own it now.
    pub late_writes_applied: u64,
}

/// A transform that names its writer and when it wrote it: at x = writer, y = tick
/// (whole metres, within the 8 km a declared 1 mm position reaches; exact through its
/// quantisation), unrotated.
fn value(writer: PeerId, tick: u64) -> [u8; TRANSFORM_BYTES] {
    let mut v = [0u8; TRANSFORM_BYTES];
    let floats = [
        f32::from(writer),
        (tick % 8000) as f32,
        0.0,
        0.0,
        0.0,
        0.0,
        1.0,
    ];
    for (slot, x) in v.chunks_exact_mut(4).zip(floats) {
        slot.copy_from_slice(&x.to_le_bytes());
    }
    v
}

fn writer(value: &[u8]) -> Option<PeerId> {
    let x = f32::from_le_bytes(value.get(..4)?.try_into().ok()?);
    Some(x.round() as PeerId)
}

impl Grabs {
    /// Spawns `n` free objects in the host's world.
    pub fn new(host: &mut Session, n: usize, seed: u64) -> Result<Self, String> {
        let transform = ComponentId::of_name(TRANSFORM);
        let mut objects = Vec::with_capacity(n);
        for i in 0..n {
            let e = host.spawn().map_err(|e| e.to_string())?;
            host.set(e, transform, &value(0, 0))
                .map_err(|e| e.to_string())?;
            let policy = if i % 2 == 0 {
                Policy::WhenFree
            } else {
                Policy::Takeover
            };
            host.set_ownership_policy(e, WHOLE_ENTITY, policy, 0)
                .map_err(|e| e.to_string())?;
            host.set_owner(e, WHOLE_ENTITY, None)
                .map_err(|e| e.to_string())?;
            objects.push(e);
        }
        Ok(Grabs {
            last: objects
                .iter()
                .map(|_| (None, value(0, 0).to_vec()))
                .collect(),
            objects,
            transform,
            rng: Rng(seed ^ 0x6772_6162),
            owner_changes: 0,
            requests: 0,
            late_writes_applied: 0,
        })
    }

    /// Tick `t`: every client moves what it holds, lets go now and then, or asks for an
    /// object. With `settling` (the last second of changes) nobody asks or lets go, so that
    /// every transfer has landed before the demo's quiet window: a transfer still in flight
    /// then would move state while the window expects none to move.
    pub fn act<'a>(
        &mut self,
        t: u64,
        settling: bool,
        clients: impl Iterator<Item = (PeerId, &'a mut Session)>,
    ) {
        for (peer, session) in clients {
            let held: Vec<EntityId> = self
                .objects
                .iter()
                .copied()
                .filter(|&e| session.owner_of(e, WHOLE_ENTITY) == Some(peer))
                .collect();
            for &e in &held {
                if !settling && self.rng.unit() < RELEASE_CHANCE {
                    let _ = session.release_ownership(e, WHOLE_ENTITY);
                } else {
                    // Refused only if it lost the object this very tick.
                    let _ = session.set(e, self.transform, &value(peer, t));
                }
            }
            if !settling && held.is_empty() && self.rng.unit() < REQUEST_CHANCE {
                let e = self.objects[self.rng.below(self.objects.len())];
                if session.request_ownership(e, WHOLE_ENTITY).is_ok() {
                    self.requests += 1;
                }
            }
        }
    }

    /// Looks at the host's world after a tick.
    pub fn observe(&mut self, host: &Session) {
        for (i, &e) in self.objects.iter().enumerate() {
            let owner = host.owner_of(e, WHOLE_ENTITY);
            let Some(now) = host.world().get(e, self.transform) else {
                continue;
            };
            let (before_owner, before_value) = &self.last[i];
            if owner != *before_owner {
                self.owner_changes += 1;
            }
            if now != before_value.as_slice() {
                let w = writer(now);
                if w != *before_owner && w != owner {
                    self.late_writes_applied += 1;
                }
            }
            self.last[i] = (owner, now.to_vec());
        }
    }

    /// The summary lines.
    pub fn report(&self, host: &Session, secs: f64) {
        let peers = host.diagnostics().peers;
        let sum = |f: fn(&theta_net::net::session::PeerDiagnostics) -> u64| -> u64 {
            peers.iter().map(f).sum()
        };
        println!();
        println!(
            "grab: {} objects passed between the clients (half of them may be taken from their holder)",
            self.objects.len()
        );
        println!(
            "  ownership changes {} ({:.1}/s), requests {}, granted {}, denied {}",
            self.owner_changes,
            self.owner_changes as f64 / secs.max(1e-9),
            self.requests,
            sum(|p| p.ownership_granted),
            sum(|p| p.ownership_denied),
        );
        println!(
            "  writes in flight at a transfer, dropped: {}; writes refused (not the owner): {}; writes of a previous owner applied after its transfer: {}",
            sum(|p| p.stale_writes),
            sum(|p| p.writes_rejected),
            self.late_writes_applied
        );
    }
}
