//! A room's saved state: one file per room, `<dir>/<room>.theta`, written so that a crash
//! never leaves a torn file and read so that a damaged one is never loaded, not even half.
//!
//! Saving writes `<room>.theta.tmp`, fsyncs it, renames it over `<room>.theta` and fsyncs
//! the directory: at every instant the room's file is a complete old or a complete new
//! one. Loading removes a `.tmp` a crash left, checks the file whole (see [`format`]) and
//! rebuilds the world; a file that fails any check is refused with what was wrong and
//! moved aside to `<room>.theta.corrupt-<unix time>`, so the room starts empty and the
//! file is kept for a person to look at.
//!
//! One process owns a state directory (`theta serve` holds its lock, see
//! [`crate::server::keys::lock_dir`]): two writers of one room would share its `.tmp`.

pub mod format;

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::server::RoomId;
use crate::world::World;

pub use format::{FORMAT_VERSION, MAGIC};

/// The extension of a room's file.
pub const EXTENSION: &str = "theta";
/// Largest room file read, in bytes (4 GiB): read whole into memory, so bounded first.
pub const MAX_ROOM_FILE_BYTES: u64 = 4 << 30;

/// What was wrong with a room file's bytes.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Defect {
    /// Zero bytes.
    #[error("the file is empty")]
    Empty,
    /// Not a room file at all.
    #[error("it is not a Theta room file (wrong magic bytes)")]
    BadMagic,
    /// Shorter than any room file.
    #[error("it is truncated: {len} bytes end inside {what}")]
    Truncated {
        /// Bytes in the file.
        len: usize,
        /// The part they end in.
        what: &'static str,
    },
    /// Written by a build of another format.
    #[error("it is of format version {0}; this build reads version {FORMAT_VERSION}")]
    Version(u32),
    /// The bytes are not the ones written.
    #[error(
        "its checksum does not match (stored {stored:#018x}, computed {computed:#018x}): \
         the file is truncated or damaged"
    )]
    Checksum {
        /// The checksum in the file.
        stored: u64,
        /// The checksum of its bytes.
        computed: u64,
    },
    /// The file of another room.
    #[error("it holds room {0:?}")]
    OtherRoom(String),
    /// A checksummed file whose contents do not hold together (another writer's bug).
    #[error("its contents are malformed: {0}")]
    Malformed(String),
    /// Larger than [`MAX_ROOM_FILE_BYTES`].
    #[error("it is {0} bytes, more than a room file may be ({MAX_ROOM_FILE_BYTES})")]
    TooLarge(u64),
}

/// Why a room could not be saved or loaded.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The room has no saved file (a room that was never saved: it starts empty).
    #[error("room {room} has no saved state ({} does not exist)", path.display())]
    NotFound {
        /// The room.
        room: RoomId,
        /// The file looked for.
        path: PathBuf,
    },
    /// The file was refused and nothing was loaded.
    #[error("room file {} refused: {defect}; {}", path.display(), MovedAside(moved))]
    Refused {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        defect: Defect,
        /// Where it was moved, or why it could not be.
        moved: Result<PathBuf, String>,
    },
    /// Reading or writing failed (permissions, a full disk): the file, if any, is untouched.
    #[error("{what} {}: {source}", path.display())]
    Io {
        /// What was being done.
        what: &'static str,
        /// The path.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
}

struct MovedAside<'a>(&'a Result<PathBuf, String>);

impl fmt::Display for MovedAside<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Ok(to) => write!(f, "moved aside to {}", to.display()),
            Err(e) => write!(f, "it could not be moved aside: {e}"),
        }
    }
}

/// What a save wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Saved {
    /// The room's file.
    pub path: PathBuf,
    /// Its size in bytes.
    pub bytes: usize,
    /// The world's tick its snapshot was taken at.
    pub tick: u64,
}

/// A room loaded from its file.
pub struct Restored {
    /// The world, holding every entity, value and component type of the file. Its tick
    /// starts again at 1: a restarted server is a new session whose clients all join anew.
    pub world: World,
    /// The tick the saved snapshot was taken at (for logs; the world does not resume it).
    pub tick: u64,
    /// When the file was written, in unix seconds.
    pub saved_at: u64,
    /// The file.
    pub path: PathBuf,
}

/// The file of `room` in `dir`.
pub fn room_path(dir: &Path, room: &RoomId) -> PathBuf {
    dir.join(format!("{room}.{EXTENSION}"))
}

fn tmp_path(dir: &Path, room: &RoomId) -> PathBuf {
    dir.join(format!("{room}.{EXTENSION}.tmp"))
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn io_error<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> StoreError + 'a {
    move |source| StoreError::Io {
        what,
        path: path.to_owned(),
        source,
    }
}

/// Saves `world` as the state of `room` in `dir` (created if missing), atomically: see
/// the module documentation. Takes a snapshot of `world` (which closes its current tick).
pub fn save(dir: &Path, room: &RoomId, world: &World) -> Result<Saved, StoreError> {
    let bytes = format::encode(room, world, unix_now());
    let path = write(dir, room, &bytes)?;
    Ok(Saved {
        path,
        bytes: bytes.len(),
        tick: world.tick(),
    })
}

/// Writes `bytes` (from [`format::encode`]) as the file of `room` in `dir`, atomically. A
/// server may encode on its tick thread and call this on another.
pub fn write(dir: &Path, room: &RoomId, bytes: &[u8]) -> Result<PathBuf, StoreError> {
    fs::create_dir_all(dir).map_err(io_error("cannot create the state directory", dir))?;
    let tmp = tmp_path(dir, room);
    let path = room_path(dir, room);
    let written = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)?;
        file.write_all(bytes)?;
        // The bytes are on disk before the name points at them.
        file.sync_all()
    })();
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(io_error("cannot write", &tmp)(e));
    }
    if let Err(e) = fs::rename(&tmp, &path) {
        let _ = fs::remove_file(&tmp);
        return Err(io_error("cannot rename the saved file to", &path)(e));
    }
    // The rename itself is on disk once the directory is.
    sync_dir(dir).map_err(io_error("cannot sync the state directory", dir))?;
    Ok(path)
}

#[cfg(unix)]
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> io::Result<()> {
    // Windows cannot open a directory as a file; its rename is durable with the file.
    Ok(())
}

/// Loads the world of `room` from `dir` (see [`restore`]).
pub fn load(dir: &Path, room: &RoomId) -> Result<World, StoreError> {
    restore(dir, room).map(|restored| restored.world)
}

/// Loads the state of `room` from `dir`: removes a `.tmp` a crashed save left, reads the
/// file (bounded by [`MAX_ROOM_FILE_BYTES`]), checks it whole and rebuilds its world. A
/// defective file is refused and moved aside (see the module documentation); nothing is
/// loaded from it.
pub fn restore(dir: &Path, room: &RoomId) -> Result<Restored, StoreError> {
    let tmp = tmp_path(dir, room);
    match fs::remove_file(&tmp) {
        Ok(()) => tracing::warn!(
            room = %room,
            file = %tmp.display(),
            "removed the temporary file of a save that did not finish"
        ),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_error("cannot remove", &tmp)(e)),
    }
    let path = room_path(dir, room);
    let bytes = match read_bounded(&path) {
        Ok(bytes) => bytes,
        Err(ReadError::Io(e)) if e.kind() == io::ErrorKind::NotFound => {
            return Err(StoreError::NotFound {
                room: room.clone(),
                path,
            })
        }
        Err(ReadError::Io(e)) => return Err(io_error("cannot read", &path)(e)),
        Err(ReadError::TooLarge(len)) => return Err(refuse(&path, Defect::TooLarge(len))),
    };
    match format::decode(room, &bytes) {
        Ok(decoded) => Ok(Restored {
            world: decoded.world,
            tick: decoded.tick,
            saved_at: decoded.saved_at,
            path,
        }),
        Err(defect) => Err(refuse(&path, defect)),
    }
}

enum ReadError {
    Io(io::Error),
    TooLarge(u64),
}

fn read_bounded(path: &Path) -> Result<Vec<u8>, ReadError> {
    let file = File::open(path).map_err(ReadError::Io)?;
    let len = file.metadata().map_err(ReadError::Io)?.len();
    if len > MAX_ROOM_FILE_BYTES {
        return Err(ReadError::TooLarge(len));
    }
    // Bounded again while reading: the file may grow after the metadata was read.
    let mut bytes = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
    file.take(MAX_ROOM_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(ReadError::Io)?;
    if bytes.len() as u64 > MAX_ROOM_FILE_BYTES {
        return Err(ReadError::TooLarge(bytes.len() as u64));
    }
    Ok(bytes)
}

/// Moves a defective file aside and makes the error that says so.
fn refuse(path: &Path, defect: Defect) -> StoreError {
    let moved = move_aside(path);
    let error = StoreError::Refused {
        path: path.to_owned(),
        defect,
        moved,
    };
    tracing::error!("{error}");
    error
}

/// Renames `path` to `<path>.corrupt-<unix time>` (`-2`, `-3`... if taken).
fn move_aside(path: &Path) -> Result<PathBuf, String> {
    let stamp = unix_now();
    // Built on the OS string: a lossy display of a non-UTF-8 path would name another file.
    let named = |suffix: String| {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        PathBuf::from(name)
    };
    let mut to = named(format!(".corrupt-{stamp}"));
    let mut n = 1;
    while to.exists() {
        n += 1;
        if n > 1000 {
            return Err(format!(
                "{} and 999 more names like it are taken",
                to.display()
            ));
        }
        to = named(format!(".corrupt-{stamp}-{n}"));
    }
    fs::rename(path, &to).map_err(|e| e.to_string())?;
    if let Some(dir) = path.parent() {
        let _ = sync_dir(dir);
    }
    Ok(to)
}

#[cfg(test)]
mod tests;
