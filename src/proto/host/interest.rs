//! The host's interest management (see [`crate::interest`]): the engine places entities
//! and scopes and sets each client's volumes; each tick, an entity that enters a client's
//! interest goes to it whole, and one that leaves goes as a `Left` notice (the client
//! forgets it without a despawn). What a client owns stays in its interest.

use super::{mark_entity_state, Host};
use crate::interest::{InterestError, Volume};
use crate::ownership::WHOLE_ENTITY;
use crate::proto::compression::control_message;
use crate::world::{EntityId, PeerId};

impl Host {
    /// Places `entity` at `position` for interest (`None`: no position; with no scope
    /// either, every client sees it). Refused when interest management is off.
    pub fn set_interest_position(
        &mut self,
        entity: EntityId,
        position: Option<[f32; 3]>,
    ) -> Result<(), InterestError> {
        self.interest_mut()?.set_position(entity, position)
    }

    /// Sets the scopes `entity` belongs to (a room, a tool, a team).
    pub fn set_interest_scopes(
        &mut self,
        entity: EntityId,
        scopes: &[u32],
    ) -> Result<(), InterestError> {
        self.interest_mut()?.set_scopes(entity, scopes)
    }

    /// Sets what client `peer` is interested in: volumes and subscribed scopes.
    pub fn set_client_interest(
        &mut self,
        peer: PeerId,
        volumes: &[Volume],
        scopes: &[u32],
    ) -> Result<(), InterestError> {
        self.interest_mut()?.set_client(peer, volumes, scopes)
    }

    /// Whether client `peer` sees `entity` now (always, with interest management off).
    pub fn sees(&self, peer: PeerId, entity: EntityId) -> bool {
        self.interest
            .as_ref()
            .is_none_or(|i| i.is_relevant(peer, entity))
            || self.ownership.owners.owner_of(entity, WHOLE_ENTITY) == Some(peer)
    }

    fn interest_mut(&mut self) -> Result<&mut crate::interest::Interest<PeerId>, InterestError> {
        self.interest.as_mut().ok_or(InterestError::Invalid(
            "interest management is off (Config::interest_cell)",
        ))
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
            let left: Vec<u64> = changes
                .left
                .iter()
                .filter(|&&e| owners.owner_of(e, WHOLE_ENTITY) != Some(peer))
                .map(|e| e.0)
                .collect();
            if left.is_empty() {
                return;
            }
            client.link.outbox.forget_keys(|(_, e)| left.contains(&e.0));
            if connected {
                let notice = control_message(&encoder.left(tick, &left));
                client.link.send_reliable(notice, out);
            }
        });
    }
}
