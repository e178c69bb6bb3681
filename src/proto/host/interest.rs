//! The host's interest management (see [`crate::interest`]): the engine places entities
//! (directly, or by naming the component their position is read from) and scopes; each
//! client's volumes and subscriptions come from the client itself or from the host's
//! engine. Each tick, an entity that enters a client's interest goes to it whole, and one
//! that leaves goes as a `Left` notice (the client forgets it without a despawn). What a
//! client owns stays in its interest.

use super::{mark_entity_state, Host};
use crate::delta::ChangedKeys;
use crate::interest::{Interest, InterestError, Volume};
use crate::ownership::WHOLE_ENTITY;
use crate::proto::compression::control_message;
use crate::proto::interest;
use crate::proto::priority::PriorityError;
use crate::registry::ComponentId;
use crate::wire::fb;
use crate::world::{EntityId, PeerId, World};

/// Bytes of a position: three little-endian `f32`.
const POSITION_BYTES: usize = 12;

impl Host {
    /// Places `entity` at `position` for interest (`None`: no position; with no scope
    /// either, every client sees it). Refused when interest management is off or the
    /// entity is not alive.
    pub fn set_interest_position(
        &mut self,
        entity: EntityId,
        position: Option<[f32; 3]>,
    ) -> Result<(), InterestError> {
        let alive = self.world.is_alive(entity);
        let interest = self.interest_mut()?;
        if !alive {
            return Err(InterestError::UnknownEntity(entity));
        }
        // Checked before the entity is filed, so a refusal changes nothing.
        if position.is_some_and(|p| !p.iter().all(|c| c.is_finite())) {
            return Err(InterestError::NotFinite("a position"));
        }
        interest.insert(entity);
        interest.set_position(entity, position)
    }

    /// Reads every entity's interest position from `component`'s value: three
    /// little-endian `f32` at byte `offset`, followed as the value changes (an entity
    /// without the component, or with a value too short or not finite there, keeps the
    /// position it had). Replaces any earlier source.
    pub fn set_interest_source(
        &mut self,
        component: ComponentId,
        offset: usize,
    ) -> Result<(), InterestError> {
        let size = self
            .world
            .registry()
            .get(component)
            .map_or(0, |d| d.layout.max_bytes() as usize);
        let interest = self.interest.as_mut().ok_or(InterestError::Off)?;
        if offset
            .checked_add(POSITION_BYTES)
            .is_none_or(|end| end > size)
        {
            return Err(InterestError::OutsideComponent {
                component: component.0,
                offset,
                size,
            });
        }
        self.position_source = Some((component, offset));
        read_positions(interest, &self.world, component, offset);
        Ok(())
    }

    /// Sets the scopes `entity` belongs to (a room, a tool, a team).
    pub fn set_interest_scopes(
        &mut self,
        entity: EntityId,
        scopes: &[u32],
    ) -> Result<(), InterestError> {
        let alive = self.world.is_alive(entity);
        let interest = self.interest_mut()?;
        if !alive {
            return Err(InterestError::UnknownEntity(entity));
        }
        // Checked before the entity is filed, so a refusal changes nothing.
        crate::interest::validate_client(&[], scopes)?;
        interest.insert(entity);
        interest.set_scopes(entity, scopes)
    }

    /// Sets what client `peer` is interested in: volumes and subscribed scopes (until the
    /// client says otherwise, if [`crate::proto::Config::interest_from_clients`]).
    pub fn set_client_interest(
        &mut self,
        peer: PeerId,
        volumes: &[Volume],
        scopes: &[u32],
    ) -> Result<(), InterestError> {
        self.interest_mut()?.set_client(peer, volumes, scopes)
    }

    /// Sets the priority weight of `entity` (1 by default): when a tick's byte budget
    /// does not fit every change, heavier (and nearer) entities go first.
    pub fn set_priority(&mut self, entity: EntityId, weight: f32) -> Result<(), PriorityError> {
        self.priorities.set(entity, weight)
    }

    /// Whether client `peer` sees `entity` now (always, with interest management off).
    pub fn sees(&self, peer: PeerId, entity: EntityId) -> bool {
        self.interest
            .as_ref()
            .is_none_or(|i| i.is_relevant(peer, entity))
            || self.ownership.owners.owner_of(entity, WHOLE_ENTITY) == Some(peer)
    }

    /// The hash of what client `peer` should hold once the network delivers: the host's
    /// [`World::state_hash_where`] of what it sees.
    pub fn interest_hash(&self, peer: PeerId) -> u64 {
        self.world.state_hash_where(|e| self.sees(peer, e))
    }

    fn interest_mut(&mut self) -> Result<&mut Interest<PeerId>, InterestError> {
        self.interest.as_mut().ok_or(InterestError::Off)
    }

    /// A client says what it is interested in. Malformed or out-of-bounds wishes are
    /// counted and change nothing; with interest off, or when the host's engine decides
    /// (`interest_from_clients` false), the wish is ignored.
    pub(super) fn client_interest(&mut self, peer: PeerId, message: fb::ClientInterest<'_>) {
        if !self.config.interest_from_clients {
            return;
        }
        let Some(grid) = &mut self.interest else {
            return;
        };
        let result = interest::decode(message)
            .and_then(|(volumes, scopes)| grid.set_client(peer, &volumes, &scopes));
        if result.is_err() {
            if let Some(client) = self.peers.get_mut(&peer) {
                client.link.diagnostics.malformed += 1;
            }
        }
    }

    /// A join or resume request's interest (checked by admission already as to who
    /// sends it): taken before the snapshot is built, so that it holds just that. A bad
    /// one is ignored (the client checks its own wish; only a hostile one sends it).
    pub(super) fn join_interest(&mut self, peer: PeerId, request: &[u8]) {
        let wish = match crate::wire::decode(request) {
            Ok(crate::wire::Message::JoinRequest(r)) => r.interest(),
            _ => None,
        };
        if let (Some(wish), true) = (wish, self.config.interest_from_clients) {
            if let Some(grid) = &mut self.interest {
                if let Ok((volumes, scopes)) = interest::decode(wish) {
                    let _ = grid.set_client(peer, &volumes, &scopes);
                }
            }
        }
    }

    /// Brings what each client sees up to date: entered entities are marked whole in its
    /// outbox, left ones go as a `Left` notice and leave its outbox.
    pub(super) fn update_interest(&mut self) {
        let Some(interest) = &mut self.interest else {
            return;
        };
        let tick = self.world.tick();
        let (peers, parked, world, owners, encoder, out) = (
            &mut self.peers,
            &mut self.parked,
            &self.world,
            &self.ownership.owners,
            &mut self.encoder,
            &mut self.out,
        );
        let mut kept = Vec::new();
        interest.update(|peer, changes| {
            let (client, connected) = match peers.get_mut(&peer) {
                Some(client) => (client, true),
                None => match parked.get_mut(&peer) {
                    Some(parked) => (&mut parked.client, false),
                    None => return,
                },
            };
            for &entity in &changes.entered {
                mark_entity_state(world, &mut client.link.outbox, entity, WHOLE_ENTITY);
            }
            let (owned, left): (Vec<EntityId>, Vec<EntityId>) = changes
                .left
                .iter()
                .partition(|&&e| owners.owner_of(e, WHOLE_ENTITY) == Some(peer));
            kept.extend(owned.into_iter().map(|e| (peer, e)));
            let left: Vec<u64> = left.into_iter().map(|e| e.0).collect();
            if left.is_empty() {
                return;
            }
            // Sorted (as `Changes` are): a search per pending key, not a scan.
            client
                .link
                .outbox
                .forget_keys(|(_, e)| left.binary_search(&e.0).is_ok());
            if connected {
                let notice = control_message(&encoder.left(tick, &left, false));
                client.link.send_reliable(notice, out);
            }
        });
        // What a client owns stays relevant to it, wherever it is.
        for (peer, entity) in kept {
            interest.keep(peer, entity);
        }
    }
}

/// The position in `value` at `offset`, if the value holds one there and it is finite.
fn position_at(value: &[u8], offset: usize) -> Option<[f32; 3]> {
    let bytes = value.get(offset..offset.checked_add(POSITION_BYTES)?)?;
    let mut p = [0f32; 3];
    for (i, c) in bytes.chunks_exact(4).enumerate() {
        p[i] = f32::from_le_bytes(c.try_into().ok()?);
    }
    p.iter().all(|c| c.is_finite()).then_some(p)
}

/// Reads the position of every entity holding `component` (a new source).
pub(super) fn read_positions(
    interest: &mut Interest<PeerId>,
    world: &World,
    component: ComponentId,
    offset: usize,
) {
    let Ok(entries) = world.component_entries(component) else {
        return;
    };
    for (entity, value) in entries {
        if let Some(p) = position_at(value, offset) {
            // Finite: cannot be refused.
            let _ = interest.set_position(entity, Some(p));
        }
    }
}

/// Follows the position source through one tick's changes.
pub(super) fn follow_positions(
    interest: &mut Interest<PeerId>,
    world: &World,
    source: Option<(ComponentId, usize)>,
    keys: &ChangedKeys,
) {
    let Some((component, offset)) = source else {
        return;
    };
    for &(c, entity) in &keys.sets {
        if c == component {
            if let Some(p) = world.get(entity, c).and_then(|v| position_at(v, offset)) {
                let _ = interest.set_position(entity, Some(p));
            }
        }
    }
}
