//! The seed's JSON full-rescan design (`theta_net::baseline`) on the demo's scene, for
//! the demo's comparison. It runs after the session, on a world of its own driven by the
//! same scene and seed: a full rescan every tick is expensive (it was a seventh of the
//! demo's profile), and on the engine thread it slowed the session it is compared with.

use theta_net::baseline::BaselineTracker;
use theta_net::World;

use crate::cli::DemoArgs;
use crate::scene::Scene;

/// Bytes of the JSON frames the seed's design makes for `ticks` ticks of the scene `o`
/// describes (the objects only: the demo's grabs and avatars are not in it).
pub fn json_bytes(o: &DemoArgs, ticks: u64) -> Result<u64, String> {
    let mut world = World::default();
    let mut scene = Scene::with_motion(&mut world, o.entities, o.seed, o.motion, o.fields)?;
    let mut baseline = BaselineTracker::new();
    baseline.diff(&world);
    let mut bytes = 0u64;
    for _ in 0..ticks {
        scene.step(&mut world, o.move_percent)?;
        bytes += baseline.diff(&world).len() as u64;
        world.advance();
    }
    Ok(bytes)
}
