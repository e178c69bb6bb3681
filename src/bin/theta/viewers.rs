//! `theta demo --interest RADIUS`: the host manages interest (cells of RADIUS metres,
//! positions read from the scene's transform), and each client looks at the scene from
//! its own spot: a sphere of RADIUS around a head walking slowly round the room, sent by
//! the client itself. Each client then holds just its share of the scene; the report
//! gives the share each sees, the bytes it costs, and the host's time per tick.

use std::time::Duration;

use theta_net::interest::Volume;
use theta_net::net::session::Session;
use theta_net::{ComponentId, PeerId};

/// The scene's transform type: its first 12 bytes are the position.
const TRANSFORM: &str = "demo.Transform";
/// Radius of the circle the heads walk round (the scene is a 20 m square).
const WALK_RADIUS: f32 = 6.0;
/// Walking speed, m/s.
const WALK_SPEED: f32 = 0.5;

/// The clients' heads and their view radius.
pub struct Viewers {
    radius: f32,
    /// Per client: its angle on the circle.
    angles: Vec<f32>,
}

impl Viewers {
    /// Heads spread round the circle; the host reads positions from the transform.
    pub fn new(host: &mut Session, clients: usize, radius: f32) -> Result<Self, String> {
        host.set_interest_source(ComponentId::of_name(TRANSFORM), 0)
            .map_err(|e| format!("interest: {e}"))?;
        Ok(Viewers {
            radius,
            angles: (0..clients)
                .map(|i| i as f32 * std::f32::consts::TAU / clients as f32)
                .collect(),
        })
    }

    fn volume(&self, angle: f32) -> Volume {
        let (s, c) = angle.sin_cos();
        Volume::Sphere {
            center: [WALK_RADIUS * c, 1.6, WALK_RADIUS * s],
            radius: self.radius,
            // Hysteresis: a tenth of the radius, at least half a metre.
            outer: self.radius + (self.radius * 0.1).max(0.5),
        }
    }

    /// Each client's head moves on by one tick of `dt` seconds (it stands still while
    /// `settling`, so that what it sees stops changing with the scene) and says so.
    pub fn act<'a>(
        &mut self,
        dt: f32,
        settling: bool,
        clients: impl Iterator<Item = &'a mut Session>,
    ) -> Result<(), String> {
        for (i, session) in clients.enumerate() {
            if !settling {
                self.angles[i] += WALK_SPEED / WALK_RADIUS * dt;
            }
            let volume = self.volume(self.angles[i]);
            session
                .set_interest(&[volume], &[])
                .map_err(|e| format!("interest: {e}"))?;
        }
        Ok(())
    }

    /// Prints each client's share and what it cost. `down` is the mean bytes per second
    /// the clients received while the scene changed, `host_tick` the host's mean tick.
    pub fn report(
        &self,
        host: &Session,
        clients: &[(PeerId, &Session)],
        down: f64,
        host_tick: Duration,
    ) {
        let total = host.world().stats().entities.max(1);
        println!();
        println!(
            "interest: a {} m sphere round each client's head (hysteresis to {} m), cells of {} m; positions read from {TRANSFORM}",
            self.radius,
            match self.volume(0.0) {
                Volume::Sphere { outer, .. } => outer,
                Volume::Box { .. } => self.radius,
            },
            self.radius
        );
        let mut shares = Vec::new();
        for (peer, session) in clients {
            let held = session.world().stats().entities;
            let seen = host
                .world()
                .entities()
                .filter(|&e| host.sees(*peer, e))
                .count();
            shares.push(held as f64 / total as f64);
            println!(
                "  c{peer}: holds {held} of the host's {total} entities ({:.1}%), the host says it sees {seen}",
                100.0 * held as f64 / total as f64
            );
        }
        let share = shares.iter().sum::<f64>() / shares.len().max(1) as f64;
        println!(
            "  mean share seen {:.1}%; down {} per client; the host's tick call {:.1} µs mean (compare: the same demo without --interest)",
            100.0 * share,
            crate::netutil::rate(down),
            host_tick.as_secs_f64() * 1e6
        );
    }
}
