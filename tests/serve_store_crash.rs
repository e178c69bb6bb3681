//! A room's file survives its writer being killed with SIGKILL at any moment: the test
//! runs this same binary as a child that saves a room in a loop, kills it after a few
//! saves (at staggered moments, so some kills land mid-save), and loads the room: it must
//! load, and hold exactly one of the states the child saved whole.
//!
//! Built without the libtest harness (`harness = false` in Cargo.toml) so that the child is
//! this binary's `main` in another mode, not a test that does nothing when run alone.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use theta_net::server::{store, RoomId};
use theta_net::{ComponentId, EntityId, Layout, World};

/// Set in the child: the state directory it saves into.
const CHILD_DIR: &str = "THETA_STORE_CRASH_DIR";
/// Set in the child: the first version it saves.
const CHILD_START: &str = "THETA_STORE_CRASH_START";
const ENTITIES: u32 = 20_000;
const ROUNDS: u64 = 8;
/// Longest wait for the child to report its saves.
const WAIT: Duration = Duration::from_secs(120);

fn room() -> RoomId {
    RoomId::new("crash").unwrap()
}

/// The room at `version`: `ENTITIES` entities with a 64-byte value and a name, the
/// first of which holds the version.
fn world_at(version: u64) -> World {
    let mut world = World::default();
    let value = world.register("test.Value", Layout::Fixed(64)).unwrap();
    let name = world
        .register("test.Name", Layout::Variable { max: 32 })
        .unwrap();
    for i in 0..ENTITIES {
        let e = world.spawn().unwrap();
        let mut bytes = [0u8; 64];
        bytes[..4].copy_from_slice(&i.to_le_bytes());
        world.set(e, value, &bytes).unwrap();
        if i % 4 == 0 {
            world
                .set(e, name, format!("entity {i}").as_bytes())
                .unwrap();
        }
    }
    set_version(&mut world, version);
    world
}

fn set_version(world: &mut World, version: u64) {
    let first = EntityId::new(0, 1).unwrap();
    let mut bytes = [0u8; 64];
    bytes[8..16].copy_from_slice(&version.to_le_bytes());
    world
        .set(first, ComponentId::of_name("test.Value"), &bytes)
        .unwrap();
}

fn version_of(world: &World) -> u64 {
    let first = EntityId::new(0, 1).unwrap();
    let bytes = world
        .get(first, ComponentId::of_name("test.Value"))
        .unwrap();
    let mut v = [0u8; 8];
    v.copy_from_slice(&bytes[8..16]);
    u64::from_le_bytes(v)
}

/// The child: saves versions `start, start + 1, ...` until killed (as `store::save`
/// does: encode, then write), printing `w <version>` before a write starts and
/// `s <version>` once it is saved, so the parent can aim its kill at the write.
fn child(dir: &Path, start: u64) -> ! {
    let mut world = world_at(start);
    let mut out = std::io::stdout().lock();
    for version in start.. {
        set_version(&mut world, version);
        let bytes = store::format::encode(&room(), &world, 0);
        writeln!(out, "w {version}").unwrap();
        out.flush().unwrap();
        store::write(dir, &room(), &bytes).unwrap();
        writeln!(out, "s {version}").unwrap();
        out.flush().unwrap();
    }
    unreachable!("saved u64::MAX versions")
}

fn main() {
    if let Ok(dir) = std::env::var(CHILD_DIR) {
        let start = std::env::var(CHILD_START).unwrap().parse().unwrap();
        child(Path::new(&dir), start);
    }
    // `cargo test -- --list` and filters: this binary has one test.
    if std::env::args().any(|a| a == "--list") {
        println!("sigkill_mid_save_never_leaves_a_torn_file: test");
        return;
    }
    sigkill_mid_save_never_leaves_a_torn_file();
    println!("test sigkill_mid_save_never_leaves_a_torn_file ... ok");
}

fn sigkill_mid_save_never_leaves_a_torn_file() {
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut start = 1;
    let mut killed_mid_save = 0;
    for round in 0..ROUNDS {
        let mut child = Command::new(&exe)
            .env(CHILD_DIR, dir.path())
            .env(CHILD_START, start.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let (kind, version) = line.split_once(' ').unwrap();
                if tx
                    .send((kind == "s", version.parse::<u64>().unwrap()))
                    .is_err()
                {
                    break;
                }
            }
        });
        // Two whole saves, then a kill when a write starts, a little later each round.
        let mut last = 0;
        let mut saves = 0;
        loop {
            let (saved, version) = rx.recv_timeout(WAIT).expect("the child reports");
            if saved {
                last = version;
                saves += 1;
            } else if saves >= 2 {
                break;
            }
        }
        std::thread::sleep(Duration::from_micros(round * 250));
        child.kill().unwrap(); // SIGKILL on Unix
        child.wait().unwrap();
        reader.join().unwrap();
        while let Ok((saved, version)) = rx.try_recv() {
            if saved {
                last = last.max(version);
            }
        }
        if dir.path().join("crash.theta.tmp").exists() {
            killed_mid_save += 1;
        }

        let restored = store::restore(dir.path(), &room())
            .unwrap_or_else(|e| panic!("round {round}: the room did not load: {e}"));
        let version = version_of(&restored.world);
        // The save after the last one reported may have finished before the kill.
        assert!(
            version == last || version == last + 1,
            "round {round}: loaded version {version}, the child reported {last}"
        );
        assert_eq!(
            restored.world.state_hash(),
            world_at(version).state_hash(),
            "round {round}: version {version} is whole"
        );
        assert!(
            !dir.path().join("crash.theta.tmp").exists(),
            "the load removed the .tmp"
        );
        start = version + 1;
    }
    let corrupt = std::fs::read_dir(dir.path())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .contains("corrupt")
        })
        .count();
    assert_eq!(corrupt, 0, "no file was ever refused");
    println!("{ROUNDS} kills, {killed_mid_save} of them left a .tmp behind (killed mid-save)");
}
