//! The host's values as they were sent, shared by every client: per key, the last few
//! versions with the tick each began to be sent at. A client's baselines
//! (`proto::baselines`) are ticks only; the bytes and lanes behind a tick are looked up
//! here. Every client is sent the same value of a key at a tick (the world does not
//! change while the host builds a tick's datagrams), so one copy serves all of them,
//! and acknowledging a value costs a tick, not a copy of it (Quake 3's snapshot ring,
//! kept per key rather than per tick so that a key that stops changing costs nothing).

use std::collections::VecDeque;

use rustc_hash::FxHashMap;

use crate::fields::FieldLayout;
use crate::registry::ComponentId;
use crate::world::EntityId;

/// Versions kept per key. A client's baseline is among the last
/// [`crate::replica::baselines::HISTORY`] sends to it, so 16 versions cover a client
/// whose acknowledgements lag by up to 16 changes of a key (about 180 ms of a key
/// changing every tick at 90 Hz); one lagging further codes that key raw until it
/// catches up.
pub(crate) const VERSIONS: usize = 16;

/// Ticks after which a version stops serving as a baseline (ages travel in a byte).
const MAX_AGE: u64 = 255;

/// One version of a key's value.
#[derive(Debug, Default)]
pub(crate) struct Version {
    /// The first tick it was sent at; it stands for every tick until the next version's.
    pub tick: u64,
    /// Its bytes.
    pub bytes: Vec<u8>,
    /// Its lanes when its type declares fields (empty otherwise), kept so that coding
    /// against it does not quantise it again for every client.
    pub lanes: Vec<i64>,
}

/// A key's versions, oldest first (buffers of dropped versions are reused), and the
/// first tick a version may stand for.
#[derive(Debug, Default)]
struct Versions {
    /// Raised past a tick at which two values were recorded: no tick up to it resolves,
    /// and nothing is recorded at it again.
    floor: u64,
    list: VecDeque<Version>,
}

/// Per entity, per component: the versions sent (see the module's text).
#[derive(Debug, Default)]
pub(crate) struct ValueHistory {
    entities: FxHashMap<EntityId, Vec<(ComponentId, Versions)>>,
    /// Bytes of values and lanes held.
    bytes: usize,
}

fn version_bytes(v: &Version) -> usize {
    v.bytes.len() + v.lanes.len() * std::mem::size_of::<i64>()
}

impl ValueHistory {
    fn versions(&self, (component, entity): (ComponentId, EntityId)) -> Option<&Versions> {
        let keys = self.entities.get(&entity)?;
        keys.iter().find(|(c, _)| *c == component).map(|(_, v)| v)
    }

    /// Notes that `value` of `key` is sent at `tick` (`tick` never less than any before
    /// for the key); a new version when it differs from the newest. Returns the tick of
    /// the version that holds it, or `None` when another value was recorded at the same
    /// tick (the world changed while a tick was being sent, which the host never does):
    /// then the key's history is dropped and no tick up to this one resolves or is
    /// recorded again, so no client's baseline can resolve to the wrong one of the
    /// values. `fields` gives the lanes kept with it.
    pub(crate) fn record(
        &mut self,
        key: (ComponentId, EntityId),
        tick: u64,
        value: &[u8],
        fields: Option<&FieldLayout>,
    ) -> Option<u64> {
        let (component, entity) = key;
        let keys = self.entities.entry(entity).or_default();
        let at = match keys.iter().position(|(c, _)| *c == component) {
            Some(at) => at,
            None => {
                keys.push((component, Versions::default()));
                keys.len() - 1
            }
        };
        let Versions {
            floor,
            list: versions,
        } = &mut keys[at].1;
        if tick < *floor {
            return None;
        }
        match versions.back() {
            Some(newest) if newest.bytes == value => return Some(newest.tick),
            Some(newest) if newest.tick >= tick => {
                self.bytes -= versions.iter().map(version_bytes).sum::<usize>();
                versions.clear();
                *floor = tick + 1;
                return None;
            }
            _ => {}
        }
        // A version is dead once the next one began more than MAX_AGE ticks ago: no tick
        // it stands for can be a baseline any more.
        let floor = tick.saturating_sub(MAX_AGE);
        let mut reuse = None;
        while versions.len() >= VERSIONS || versions.get(1).is_some_and(|next| next.tick <= floor) {
            let Some(old) = versions.pop_front() else {
                break;
            };
            self.bytes -= version_bytes(&old);
            reuse = Some(old);
        }
        let mut version = reuse.unwrap_or_default();
        version.tick = tick;
        version.bytes.clear();
        version.bytes.extend_from_slice(value);
        version.lanes.clear();
        if let Some(layout) = fields {
            if layout.lanes_into(value, &mut version.lanes).is_err() {
                // Not quantisable (the world refuses such writes): kept without lanes,
                // and coded raw.
                version.lanes.clear();
            }
        }
        self.bytes += version_bytes(&version);
        versions.push_back(version);
        Some(tick)
    }

    /// The value of `key` sent at `tick`: the newest version that began at or before it,
    /// `None` when the history no longer reaches back to `tick`.
    pub(crate) fn at(&self, key: (ComponentId, EntityId), tick: u64) -> Option<&Version> {
        let versions = self.versions(key).filter(|v| tick >= v.floor)?;
        versions.list.iter().rev().find(|v| v.tick <= tick)
    }

    /// Forgets the versions of `entity` (despawned: ids are never reused).
    pub(crate) fn forget_entity(&mut self, entity: EntityId) {
        if let Some(keys) = self.entities.remove(&entity) {
            self.bytes -= keys
                .iter()
                .flat_map(|(_, v)| v.list.iter())
                .map(version_bytes)
                .sum::<usize>();
        }
    }

    /// Forgets every version.
    pub(crate) fn clear(&mut self) {
        self.entities.clear();
        self.bytes = 0;
    }

    /// Bytes of values and lanes held.
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: (ComponentId, EntityId) = (ComponentId(3), EntityId(9));

    #[test]
    fn a_tick_resolves_to_the_value_sent_then_while_it_is_held() {
        let mut h = ValueHistory::default();
        assert!(h.at(KEY, 5).is_none());
        assert_eq!(h.record(KEY, 10, &[1, 2], None), Some(10));
        assert_eq!(
            h.record(KEY, 11, &[1, 2], None),
            Some(10),
            "unchanged: no new version"
        );
        assert_eq!(h.record(KEY, 14, &[3, 4], None), Some(14));
        assert!(h.at(KEY, 9).is_none(), "before the first version");
        assert_eq!(h.at(KEY, 10).map(|v| &v.bytes[..]), Some(&[1, 2][..]));
        assert_eq!(h.at(KEY, 13).map(|v| &v.bytes[..]), Some(&[1, 2][..]));
        assert_eq!(h.at(KEY, 14).map(|v| &v.bytes[..]), Some(&[3, 4][..]));
        assert_eq!(h.at(KEY, 400).map(|v| v.tick), Some(14));
        assert_eq!(h.bytes(), 4);
        // Past VERSIONS versions, the oldest go: their ticks resolve to nothing, not to a
        // later value.
        for tick in 15..15 + VERSIONS as u64 {
            assert!(h.record(KEY, tick, &[tick as u8, 0], None).is_some());
        }
        assert!(h.at(KEY, 14).is_none());
        assert_eq!(h.bytes(), 2 * VERSIONS);
        // A version whose successor began more than 255 ticks ago goes too: only the
        // newest of those can still be the value of a usable tick.
        assert!(h.record(KEY, 1000, &[9, 9], None).is_some());
        assert_eq!(h.at(KEY, 999).map(|v| v.tick), Some(14 + VERSIONS as u64));
        assert_eq!(h.bytes(), 2 * 2);
        // Another value at a tick already recorded: the key's history is dropped, and
        // that tick is never recorded or resolved again.
        assert_eq!(h.record(KEY, 1000, &[7, 7], None), None);
        assert!(h.at(KEY, 1000).is_none());
        assert_eq!(h.bytes(), 0);
        assert_eq!(h.record(KEY, 1000, &[8, 8], None), None);
        assert!(h.at(KEY, 1000).is_none());
        assert!(h.record(KEY, 1001, &[7, 7], None).is_some());
        h.forget_entity(KEY.1);
        assert!(h.at(KEY, 1001).is_none());
        assert_eq!(h.bytes(), 0);
    }
}
