//! Who sees what: the data the host's interest management works on, as plain structures
//! (the decisions are the protocol's). Entities have an optional position and any number
//! of scopes; clients have interest volumes and subscribed scopes. An entity is relevant
//! to a client when it is global (no position, no scope), in a subscribed scope, or inside
//! one of the client's volumes; it stays relevant until it leaves the volume's outer bound
//! (hysteresis, so an entity at the edge does not flap).
//!
//! Positions live in a hash grid of cubic cells, so the work of a tick is proportional to
//! the entities that moved and the clients whose volumes moved, times the entities near
//! them: never a scan of the world per client.

use rustc_hash::{FxHashMap, FxHashSet};

use crate::world::EntityId;

/// Most volumes per client.
pub const MAX_VOLUMES: usize = 8;
/// Most scopes per entity, and subscriptions per client.
pub const MAX_SCOPES: usize = 64;

/// A region a client is interested in. Entities inside `inner` become relevant; they stay
/// so until they leave `outer` (at least as large).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Volume {
    /// A sphere around `center` (a view position, usually the head).
    Sphere {
        /// The centre.
        center: [f32; 3],
        /// Entities within this distance become relevant.
        radius: f32,
        /// Relevant entities stay so within this distance (>= `radius`).
        outer: f32,
    },
    /// An axis-aligned box.
    Box {
        /// The lowest corner.
        min: [f32; 3],
        /// The highest corner.
        max: [f32; 3],
        /// Relevant entities stay so within this margin around the box (>= 0).
        margin: f32,
    },
}

/// Why a volume, scope list or cell size was refused (nothing changed).
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum InterestError {
    /// A coordinate or size is not a finite number.
    #[error("{0} is not a finite number")]
    NotFinite(&'static str),
    /// A radius, margin or cell size is negative (or zero, for a cell), or an outer bound
    /// is smaller than its inner one, or a box's corners are swapped.
    #[error("{0}")]
    Invalid(&'static str),
    /// The host does not manage interest (no cell size configured).
    #[error("interest management is off (set the interest cell size)")]
    Off,
    /// No such live entity.
    #[error("no live entity {0}")]
    UnknownEntity(EntityId),
    /// A position source that does not fit its component type (or no such type).
    #[error("a position of 12 bytes at offset {offset} does not fit component type {component:#010x} ({size} bytes at most)")]
    OutsideComponent {
        /// The component type.
        component: u32,
        /// The byte offset given.
        offset: usize,
        /// The type's size (largest, for a variable layout; 0 when it is not registered).
        size: usize,
    },
    /// Over [`MAX_VOLUMES`] or [`MAX_SCOPES`].
    #[error("{what}: {given} given, at most {max}")]
    TooMany {
        /// Volumes or scopes.
        what: &'static str,
        /// How many were given.
        given: usize,
        /// The bound.
        max: usize,
    },
}

impl Volume {
    /// Checks the volume's numbers.
    pub fn validate(&self) -> Result<(), InterestError> {
        let finite = |v: &[f32]| v.iter().all(|x| x.is_finite());
        match *self {
            Volume::Sphere {
                center,
                radius,
                outer,
            } => {
                if !finite(&center) || !radius.is_finite() || !outer.is_finite() {
                    return Err(InterestError::NotFinite("a sphere's centre or radius"));
                }
                if radius < 0.0 || outer < radius {
                    return Err(InterestError::Invalid(
                        "a sphere needs 0 <= radius <= outer radius",
                    ));
                }
            }
            Volume::Box { min, max, margin } => {
                if !finite(&min) || !finite(&max) || !margin.is_finite() {
                    return Err(InterestError::NotFinite("a box's corners or margin"));
                }
                if margin < 0.0 || (0..3).any(|i| min[i] > max[i]) {
                    return Err(InterestError::Invalid(
                        "a box needs min <= max on every axis and a margin >= 0",
                    ));
                }
            }
        }
        Ok(())
    }

    /// Whether `p` is inside (`outer` false) or inside the outer bound (`outer` true).
    fn contains(&self, p: [f32; 3], outer: bool) -> bool {
        match *self {
            Volume::Sphere {
                center,
                radius,
                outer: far,
            } => {
                let r = if outer { far } else { radius };
                let d2: f32 = (0..3).map(|i| (p[i] - center[i]).powi(2)).sum();
                d2 <= r * r
            }
            Volume::Box { min, max, margin } => {
                let m = if outer { margin } else { 0.0 };
                (0..3).all(|i| p[i] >= min[i] - m && p[i] <= max[i] + m)
            }
        }
    }

    /// Whether `self` is within half its hysteresis of `other`, of the same kind and size:
    /// a client that moved this little keeps what it was last evaluated with (no sweep),
    /// and what it holds is still within the outer bound of where it is now.
    fn near(&self, other: &Volume) -> bool {
        let dist = |a: [f32; 3], b: [f32; 3]| -> f32 {
            (0..3).map(|i| (a[i] - b[i]).powi(2)).sum::<f32>().sqrt()
        };
        match (*self, *other) {
            (
                Volume::Sphere {
                    center,
                    radius,
                    outer,
                },
                Volume::Sphere {
                    center: c,
                    radius: r,
                    outer: o,
                },
            ) => radius == r && outer == o && dist(center, c) < (outer - radius) / 2.0,
            (
                Volume::Box { min, max, margin },
                Volume::Box {
                    min: lo,
                    max: hi,
                    margin: m,
                },
            ) => {
                let slack = margin / 2.0;
                margin == m
                    && (0..3)
                        .all(|i| (min[i] - lo[i]).abs() < slack && (max[i] - hi[i]).abs() < slack)
            }
            _ => false,
        }
    }

    /// How far `p` is from the volume (0 inside a box; from the centre for a sphere).
    fn distance(&self, p: [f32; 3]) -> f32 {
        let d2: f32 = match *self {
            Volume::Sphere { center, .. } => (0..3).map(|i| (p[i] - center[i]).powi(2)).sum(),
            Volume::Box { min, max, .. } => (0..3)
                .map(|i| (min[i] - p[i]).max(p[i] - max[i]).max(0.0).powi(2))
                .sum(),
        };
        d2.sqrt()
    }

    /// The lowest and highest corners of the outer bound.
    fn outer_bounds(&self) -> ([f32; 3], [f32; 3]) {
        match *self {
            Volume::Sphere { center, outer, .. } => {
                (center.map(|c| c - outer), center.map(|c| c + outer))
            }
            Volume::Box { min, max, margin } => (min.map(|c| c - margin), max.map(|c| c + margin)),
        }
    }
}

/// Checks what a client says it is interested in: at most [`MAX_VOLUMES`] volumes, each
/// valid, and at most [`MAX_SCOPES`] scopes.
pub fn validate_client(volumes: &[Volume], scopes: &[u32]) -> Result<(), InterestError> {
    check_counts(volumes.len(), scopes.len())?;
    volumes.iter().try_for_each(Volume::validate)
}

/// Checks how many volumes and scopes a client gives (before anything is allocated for
/// them, when they come from a peer).
pub fn check_counts(volumes: usize, scopes: usize) -> Result<(), InterestError> {
    let over = |what, given, max| {
        (given > max)
            .then_some(InterestError::TooMany { what, given, max })
            .map_or(Ok(()), Err)
    };
    over("volumes", volumes, MAX_VOLUMES)?;
    over("scopes", scopes, MAX_SCOPES)
}

type Cell = [i32; 3];

/// An entity's interest data.
#[derive(Clone, Debug, Default)]
struct EntityData {
    position: Option<([f32; 3], Cell)>,
    scopes: Vec<u32>,
}

impl EntityData {
    fn global(&self) -> bool {
        self.position.is_none() && self.scopes.is_empty()
    }
}

/// A client's interest: its volumes, subscriptions, and what is relevant to it now.
#[derive(Clone, Debug, Default)]
struct ClientData {
    volumes: Vec<Volume>,
    /// The volumes of the last sweep (see [`Volume::near`]).
    swept: Vec<Volume>,
    scopes: FxHashSet<u32>,
    relevant: FxHashSet<EntityId>,
}

impl ClientData {
    /// Whether `e` is relevant to this client, `held` saying whether it was already (then
    /// the outer bounds count).
    fn wants(&self, e: &EntityData, held: bool) -> bool {
        e.global()
            || e.scopes.iter().any(|s| self.scopes.contains(s))
            || e.position
                .is_some_and(|(p, _)| self.volumes.iter().any(|v| v.contains(p, held)))
    }
}

/// What became relevant to a client, and what stopped being so, since the last update.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Changes {
    /// Entities that entered (send them whole).
    pub entered: Vec<EntityId>,
    /// Entities that left (not despawned: the client forgets them).
    pub left: Vec<EntityId>,
}

/// The interest data of a session and, per client, what is relevant to it (see the module
/// documentation).
#[derive(Clone, Debug)]
pub struct Interest<C: Copy + Eq + std::hash::Hash> {
    cell: f32,
    cells: FxHashMap<Cell, FxHashSet<EntityId>>,
    by_scope: FxHashMap<u32, FxHashSet<EntityId>>,
    /// Entities with neither a position nor a scope.
    globals: FxHashSet<EntityId>,
    entities: FxHashMap<EntityId, EntityData>,
    clients: FxHashMap<C, ClientData>,
    /// Entities whose data changed since the last update.
    dirty: FxHashSet<EntityId>,
    /// Clients whose interest changed since the last update.
    dirty_clients: FxHashSet<C>,
    /// Entities examined by updates so far (a measure of the work done).
    pub visits: u64,
}

impl<C: Copy + Eq + std::hash::Hash> Interest<C> {
    /// Interest over cubic cells of `cell` metres (a client's radius or so).
    pub fn new(cell: f32) -> Result<Self, InterestError> {
        if !cell.is_finite() {
            return Err(InterestError::NotFinite("the cell size"));
        }
        if cell <= 0.0 {
            return Err(InterestError::Invalid("the cell size must be positive"));
        }
        Ok(Interest {
            cell,
            cells: FxHashMap::default(),
            by_scope: FxHashMap::default(),
            globals: FxHashSet::default(),
            entities: FxHashMap::default(),
            clients: FxHashMap::default(),
            dirty: FxHashSet::default(),
            dirty_clients: FxHashSet::default(),
            visits: 0,
        })
    }

    fn cell_of(&self, p: [f32; 3]) -> Cell {
        p.map(|c| {
            (c / self.cell)
                .floor()
                .clamp(i32::MIN as f32, i32::MAX as f32) as i32
        })
    }

    /// Adds an entity (global until given a position or scopes).
    pub fn insert(&mut self, entity: EntityId) {
        let data = self.entities.entry(entity).or_default();
        if data.global() {
            self.globals.insert(entity);
        }
        self.dirty.insert(entity);
    }

    /// Keeps [`Interest::globals`] in step with an entity's data.
    fn refile_global(&mut self, entity: EntityId) {
        match self.entities.get(&entity) {
            Some(data) if data.global() => self.globals.insert(entity),
            _ => self.globals.remove(&entity),
        };
    }

    /// Removes an entity (despawned): no client holds it any more, without a `left`.
    pub fn remove(&mut self, entity: EntityId) {
        if let Some(data) = self.entities.remove(&entity) {
            if let Some((_, cell)) = data.position {
                self.unfile(cell, entity);
            }
            for scope in data.scopes {
                if let Some(set) = self.by_scope.get_mut(&scope) {
                    set.remove(&entity);
                }
            }
        }
        self.globals.remove(&entity);
        for client in self.clients.values_mut() {
            client.relevant.remove(&entity);
        }
        self.dirty.remove(&entity);
    }

    fn unfile(&mut self, cell: Cell, entity: EntityId) {
        if let Some(set) = self.cells.get_mut(&cell) {
            set.remove(&entity);
            if set.is_empty() {
                self.cells.remove(&cell);
            }
        }
    }

    /// Sets (or clears) an entity's position; it must have been inserted.
    pub fn set_position(
        &mut self,
        entity: EntityId,
        position: Option<[f32; 3]>,
    ) -> Result<(), InterestError> {
        if position.is_some_and(|p| !p.iter().all(|c| c.is_finite())) {
            return Err(InterestError::NotFinite("a position"));
        }
        let cell = position.map(|p| self.cell_of(p));
        let Some(data) = self.entities.get_mut(&entity) else {
            return Ok(());
        };
        let old = data.position.map(|(_, c)| c);
        data.position = position.zip(cell);
        if old != cell {
            if let Some(old) = old {
                self.unfile(old, entity);
            }
            if let Some(cell) = cell {
                self.cells.entry(cell).or_default().insert(entity);
            }
        }
        self.refile_global(entity);
        self.dirty.insert(entity);
        Ok(())
    }

    /// Sets an entity's scopes (at most [`MAX_SCOPES`]).
    pub fn set_scopes(&mut self, entity: EntityId, scopes: &[u32]) -> Result<(), InterestError> {
        if scopes.len() > MAX_SCOPES {
            return Err(InterestError::TooMany {
                what: "scopes",
                given: scopes.len(),
                max: MAX_SCOPES,
            });
        }
        let Some(data) = self.entities.get_mut(&entity) else {
            return Ok(());
        };
        for scope in std::mem::take(&mut data.scopes) {
            if let Some(set) = self.by_scope.get_mut(&scope) {
                set.remove(&entity);
            }
        }
        let mut scopes = scopes.to_vec();
        scopes.sort_unstable();
        scopes.dedup();
        for &scope in &scopes {
            self.by_scope.entry(scope).or_default().insert(entity);
        }
        data.scopes = scopes;
        self.refile_global(entity);
        self.dirty.insert(entity);
        Ok(())
    }

    /// Sets a client's volumes (at most [`MAX_VOLUMES`]) and subscribed scopes (at most
    /// [`MAX_SCOPES`]); a client not seen before is added.
    pub fn set_client(
        &mut self,
        client: C,
        volumes: &[Volume],
        scopes: &[u32],
    ) -> Result<(), InterestError> {
        validate_client(volumes, scopes)?;
        let new = !self.clients.contains_key(&client);
        let data = self.clients.entry(client).or_default();
        let scopes: FxHashSet<u32> = scopes.iter().copied().collect();
        // A small move keeps the last sweep (each entity's own changes still meet the
        // volumes as they are now).
        let moved = data.swept.len() != volumes.len()
            || volumes.iter().zip(&data.swept).any(|(v, s)| !v.near(s));
        if new || moved || data.scopes != scopes {
            self.dirty_clients.insert(client);
        }
        data.volumes = volumes.to_vec();
        data.scopes = scopes;
        Ok(())
    }

    /// Takes `entities` as what `client` holds now (a client that just received the whole
    /// world): the next update tells it which of them left.
    pub fn set_held(&mut self, client: C, entities: impl IntoIterator<Item = EntityId>) {
        let data = self.clients.entry(client).or_default();
        data.relevant = entities.into_iter().collect();
        self.dirty_clients.insert(client);
    }

    /// Keeps `entity` relevant to `client` whatever its volumes say (what the client
    /// owns), until the next update that finds it should not be (see
    /// [`Interest::touch`]). Nothing for a client not known here.
    pub fn keep(&mut self, client: C, entity: EntityId) {
        if let (Some(data), true) = (
            self.clients.get_mut(&client),
            self.entities.contains_key(&entity),
        ) {
            data.relevant.insert(entity);
        }
    }

    /// Has the next update look at `entity` again for every client (its owner changed).
    pub fn touch(&mut self, entity: EntityId) {
        if self.entities.contains_key(&entity) {
            self.dirty.insert(entity);
        }
    }

    /// Forgets a client.
    pub fn remove_client(&mut self, client: C) {
        self.clients.remove(&client);
        self.dirty_clients.remove(&client);
    }

    /// Whether `entity` is relevant to `client` as of the last update.
    pub fn is_relevant(&self, client: C, entity: EntityId) -> bool {
        self.clients
            .get(&client)
            .is_some_and(|c| c.relevant.contains(&entity))
    }

    /// The cell size, in metres.
    pub fn cell(&self) -> f32 {
        self.cell
    }

    /// How far `entity` is from the nearest of `client`'s volumes; `None` when either has
    /// no place (no position, no volume).
    pub fn distance(&self, client: C, entity: EntityId) -> Option<f32> {
        let (p, _) = self.entities.get(&entity)?.position?;
        self.clients
            .get(&client)?
            .volumes
            .iter()
            .map(|v| v.distance(p))
            .min_by(f32::total_cmp)
    }

    /// Every entity this knows of.
    pub fn entities(&self) -> impl Iterator<Item = EntityId> + '_ {
        self.entities.keys().copied()
    }

    /// What is relevant to `client` as of the last update.
    pub fn relevant(&self, client: C) -> impl Iterator<Item = EntityId> + '_ {
        self.clients
            .get(&client)
            .into_iter()
            .flat_map(|c| c.relevant.iter().copied())
    }

    /// Brings every client's relevant set up to date with what changed since the last
    /// update; calls `f` with each client's changes (only for clients with some).
    pub fn update(&mut self, mut f: impl FnMut(C, &Changes)) {
        let dirty: Vec<EntityId> = self.dirty.drain().collect();
        let dirty_clients: Vec<C> = self.dirty_clients.drain().collect();
        let mut changes: FxHashMap<C, Changes> = FxHashMap::default();
        // Clients whose interest changed: every entity near or subscribed, and what they
        // held.
        for &client in &dirty_clients {
            let Some(data) = self.clients.get(&client) else {
                continue;
            };
            let mut candidates: FxHashSet<EntityId> = data.relevant.clone();
            self.candidates(data, &mut candidates);
            self.visits += candidates.len() as u64;
            let entry = changes.entry(client).or_default();
            for id in candidates {
                let Some(e) = self.entities.get(&id) else {
                    continue;
                };
                let held = data.relevant.contains(&id);
                match (held, data.wants(e, held)) {
                    (false, true) => entry.entered.push(id),
                    (true, false) => entry.left.push(id),
                    _ => {}
                }
            }
        }
        for &client in &dirty_clients {
            if let Some(data) = self.clients.get_mut(&client) {
                data.swept.clone_from(&data.volumes);
            }
        }
        // Entities whose data changed: against every other client.
        for id in dirty {
            let Some(e) = self.entities.get(&id) else {
                continue;
            };
            for (&client, data) in &self.clients {
                if dirty_clients.contains(&client) {
                    continue;
                }
                self.visits += 1;
                let held = data.relevant.contains(&id);
                match (held, data.wants(e, held)) {
                    (false, true) => changes.entry(client).or_default().entered.push(id),
                    (true, false) => changes.entry(client).or_default().left.push(id),
                    _ => {}
                }
            }
        }
        for (client, mut c) in changes {
            let Some(data) = self.clients.get_mut(&client) else {
                continue;
            };
            for id in &c.entered {
                data.relevant.insert(*id);
            }
            for id in &c.left {
                data.relevant.remove(id);
            }
            if c.entered.is_empty() && c.left.is_empty() {
                continue;
            }
            c.entered.sort_unstable();
            c.left.sort_unstable();
            f(client, &c);
        }
    }

    /// Adds to `out` every entity that may be relevant to `data`: in a cell its volumes
    /// reach, in a subscribed scope, or global.
    fn candidates(&self, data: &ClientData, out: &mut FxHashSet<EntityId>) {
        for v in &data.volumes {
            let (lo, hi) = v.outer_bounds();
            let (lo, hi) = (self.cell_of(lo), self.cell_of(hi));
            let span: i64 = (0..3)
                .map(|i| i64::from(hi[i]) - i64::from(lo[i]) + 1)
                .product();
            if span > self.cells.len() as i64 {
                // A volume wider than the occupied cells: walk those instead.
                for (cell, set) in &self.cells {
                    if (0..3).all(|i| cell[i] >= lo[i] && cell[i] <= hi[i]) {
                        out.extend(set.iter().copied());
                    }
                }
            } else {
                for x in lo[0]..=hi[0] {
                    for y in lo[1]..=hi[1] {
                        for z in lo[2]..=hi[2] {
                            if let Some(set) = self.cells.get(&[x, y, z]) {
                                out.extend(set.iter().copied());
                            }
                        }
                    }
                }
            }
        }
        for scope in &data.scopes {
            if let Some(set) = self.by_scope.get(scope) {
                out.extend(set.iter().copied());
            }
        }
        out.extend(self.globals.iter().copied());
    }

    /// Evaluates `client`'s interest from scratch and takes the result as what it holds,
    /// reporting no change: for a client about to be sent exactly that (a filtered
    /// snapshot). A client not seen before is added (seeing the global entities).
    pub fn admit(&mut self, client: C) -> &FxHashSet<EntityId> {
        let data = self.clients.remove(&client).unwrap_or_default();
        let mut candidates = FxHashSet::default();
        self.candidates(&data, &mut candidates);
        self.visits += candidates.len() as u64;
        let relevant = candidates
            .into_iter()
            .filter(|id| self.entities.get(id).is_some_and(|e| data.wants(e, false)))
            .collect();
        let data = self.clients.entry(client).or_insert(ClientData {
            swept: data.volumes.clone(),
            relevant,
            ..data
        });
        self.dirty_clients.remove(&client);
        &data.relevant
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(n: u64) -> EntityId {
        EntityId::new(0, n).unwrap()
    }

    fn sphere(center: [f32; 3], radius: f32, outer: f32) -> Volume {
        Volume::Sphere {
            center,
            radius,
            outer,
        }
    }

    /// The relevant set computed from scratch, for comparison.
    fn brute(interest: &Interest<u16>, client: u16) -> Vec<EntityId> {
        let data = &interest.clients[&client];
        let mut out: Vec<EntityId> = interest
            .entities
            .iter()
            .filter(|(id, e)| data.wants(e, data.relevant.contains(id)))
            .map(|(&id, _)| id)
            .collect();
        out.sort_unstable();
        out
    }

    fn sorted(interest: &Interest<u16>, client: u16) -> Vec<EntityId> {
        let mut v: Vec<EntityId> = interest.relevant(client).collect();
        v.sort_unstable();
        v
    }

    #[test]
    fn global_scoped_and_nearby_entities_are_relevant_and_leaving_is_reported() {
        let mut interest = Interest::new(10.0).unwrap();
        for n in 1..=4 {
            interest.insert(e(n));
        }
        interest.set_position(e(2), Some([5.0, 0.0, 0.0])).unwrap();
        interest.set_position(e(3), Some([50.0, 0.0, 0.0])).unwrap();
        interest.set_scopes(e(4), &[7]).unwrap();
        interest
            .set_client(1u16, &[sphere([0.0; 3], 10.0, 12.0)], &[])
            .unwrap();
        let mut seen = Vec::new();
        interest.update(|c, ch| seen.push((c, ch.clone())));
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].1.entered, vec![e(1), e(2)], "global and near");
        // Subscribing brings the scoped one; walking away from e2 leaves it past the
        // outer radius only.
        interest
            .set_client(1, &[sphere([-6.0, 0.0, 0.0], 10.0, 12.0)], &[7])
            .unwrap();
        seen.clear();
        interest.update(|c, ch| seen.push((c, ch.clone())));
        assert_eq!(seen[0].1.entered, vec![e(4)]);
        assert!(
            seen[0].1.left.is_empty(),
            "11 m away: inside the outer radius"
        );
        interest
            .set_client(1, &[sphere([-8.0, 0.0, 0.0], 10.0, 12.0)], &[7])
            .unwrap();
        seen.clear();
        interest.update(|c, ch| seen.push((c, ch.clone())));
        assert_eq!(seen[0].1.left, vec![e(2)]);
        // The far one walks in.
        interest.set_position(e(3), Some([-1.0, 0.0, 0.0])).unwrap();
        seen.clear();
        interest.update(|c, ch| seen.push((c, ch.clone())));
        assert_eq!(seen[0].1.entered, vec![e(3)]);
        assert_eq!(sorted(&interest, 1), brute(&interest, 1));
    }

    #[test]
    fn small_moves_keep_the_last_sweep_and_a_larger_one_catches_up() {
        let mut interest = Interest::new(10.0).unwrap();
        for n in 1..=200 {
            interest.insert(e(n));
            interest
                .set_position(e(n), Some([n as f32, 0.0, 0.0]))
                .unwrap();
        }
        interest
            .set_client(1u16, &[sphere([0.0; 3], 50.0, 60.0)], &[])
            .unwrap();
        interest.update(|_, _| {});
        assert_eq!(sorted(&interest, 1), (1..=50).map(e).collect::<Vec<_>>());
        // Under half the hysteresis (5 m): no sweep, nothing looked at, nothing changes.
        let before = interest.visits;
        interest
            .set_client(1, &[sphere([4.0, 0.0, 0.0], 50.0, 60.0)], &[])
            .unwrap();
        interest.update(|_, _| panic!("no change expected"));
        assert_eq!(interest.visits, before);
        // An entity that moves is still met with the volume as it is now.
        interest
            .set_position(e(120), Some([53.0, 0.0, 0.0]))
            .unwrap();
        let mut entered = Vec::new();
        interest.update(|_, c| entered.extend(c.entered.iter().copied()));
        assert_eq!(entered, vec![e(120)]);
        // Past the slack: a sweep, and the set is what a fresh evaluation gives.
        interest
            .set_client(1, &[sphere([30.0, 0.0, 0.0], 50.0, 60.0)], &[])
            .unwrap();
        interest.update(|_, _| {});
        assert_eq!(sorted(&interest, 1), brute(&interest, 1));
        assert!(interest.is_relevant(1, e(80)));
        // A change of radius or of subscriptions always sweeps.
        interest
            .set_client(1, &[sphere([30.0, 0.0, 0.0], 20.0, 20.0)], &[])
            .unwrap();
        interest.update(|_, _| {});
        assert_eq!(sorted(&interest, 1), brute(&interest, 1));
        assert!(!interest.is_relevant(1, e(80)));
    }

    #[test]
    fn admitting_a_client_evaluates_it_at_once_and_globals_are_not_a_world_scan() {
        let mut interest = Interest::new(10.0).unwrap();
        for n in 1..=1000 {
            interest.insert(e(n));
            if n > 3 {
                interest
                    .set_position(e(n), Some([n as f32, 0.0, 0.0]))
                    .unwrap();
            }
        }
        interest.update(|_, _| {});
        interest
            .set_client(7u16, &[sphere([100.0, 0.0, 0.0], 10.0, 12.0)], &[])
            .unwrap();
        let before = interest.visits;
        let mut held: Vec<EntityId> = interest.admit(7).iter().copied().collect();
        held.sort_unstable();
        let mut want: Vec<EntityId> = (1..=3).map(e).collect();
        want.extend((90..=110).map(e));
        assert_eq!(held, want, "the globals and the 21 within 10 m");
        assert!(interest.visits - before < 100, "a local evaluation");
        // Admitted: the next update reports nothing for it.
        interest.update(|c, _| assert_ne!(c, 7));
        // A client never described sees the globals only.
        assert_eq!(interest.admit(8).len(), 3);
    }

    #[test]
    fn bad_volumes_scope_lists_and_cells_are_refused_and_change_nothing() {
        assert!(Interest::<u16>::new(0.0).is_err());
        assert!(Interest::<u16>::new(f32::NAN).is_err());
        let mut interest = Interest::new(4.0).unwrap();
        interest.set_client(1u16, &[], &[]).unwrap();
        let bad = [
            sphere([f32::NAN, 0.0, 0.0], 1.0, 1.0),
            sphere([0.0; 3], -1.0, 1.0),
            sphere([0.0; 3], 2.0, 1.0),
            Volume::Box {
                min: [1.0, 0.0, 0.0],
                max: [0.0, 1.0, 1.0],
                margin: 0.0,
            },
            Volume::Box {
                min: [0.0; 3],
                max: [1.0; 3],
                margin: f32::INFINITY,
            },
        ];
        for v in bad {
            assert!(interest.set_client(1, &[v], &[]).is_err(), "{v:?}");
        }
        let too_many = vec![1u32; MAX_SCOPES + 1];
        assert!(interest.set_client(1, &[], &too_many).is_err());
        interest.insert(e(1));
        assert!(interest.set_scopes(e(1), &too_many).is_err());
        assert!(interest
            .set_position(e(1), Some([0.0, f32::NAN, 0.0]))
            .is_err());
        assert_eq!(interest.clients[&1].volumes, vec![]);
    }

    #[test]
    fn a_client_walking_through_ten_thousand_objects_holds_exactly_its_share_and_work_stays_local()
    {
        let mut rng = 0x1234_5678_u64;
        let mut next = || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            (rng >> 11) as f32 / (1u64 << 53) as f32
        };
        let mut interest = Interest::new(20.0).unwrap();
        // 10 000 objects on a 1 km square; 1 % move each tick.
        let mut positions = Vec::new();
        for n in 1..=10_000 {
            interest.insert(e(n));
            let p = [next() * 1000.0, 0.0, next() * 1000.0];
            positions.push(p);
            interest.set_position(e(n), Some(p)).unwrap();
        }
        interest.update(|_, _| {});
        let mut head = [0.0f32, 1.6, 500.0];
        interest
            .set_client(1u16, &[sphere(head, 60.0, 70.0)], &[])
            .unwrap();
        interest.update(|_, _| {});
        let mut per_tick = Vec::new();
        for tick in 0..200 {
            head[0] += 5.0;
            let before = interest.visits;
            interest
                .set_client(1, &[sphere(head, 60.0, 70.0)], &[])
                .unwrap();
            for _ in 0..100 {
                let i = (next() * 10_000.0) as usize % 10_000;
                positions[i][0] += next() * 2.0 - 1.0;
                interest
                    .set_position(e(i as u64 + 1), Some(positions[i]))
                    .unwrap();
            }
            interest.update(|_, _| {});
            per_tick.push(interest.visits - before);
            if tick % 20 == 0 {
                assert_eq!(sorted(&interest, 1), brute(&interest, 1), "tick {tick}");
            }
        }
        assert_eq!(sorted(&interest, 1), brute(&interest, 1));
        // Per tick: the movers, and the objects near the client; never the world.
        let most = per_tick.iter().copied().max().unwrap();
        assert!(most < 2_000, "at most {most} entities looked at in a tick");
    }
}
