//! A client's ownership calls (request, release, policy) and what it does with the host's
//! ownership messages: the records, the events, the state that comes with a grant, and the
//! acknowledgement the host waits for (see `proto::ownership`).

use std::time::Instant;

use super::{Client, Phase};
use crate::ownership::{Policy, Record, USER_FLAGS, WHOLE_ENTITY};
use crate::proto::compression::{control_message, message_values};
use crate::proto::events::SessionEvent;
use crate::proto::ownership::entity_frame;
use crate::registry::ComponentId;
use crate::wire::codec::MessageKind;
use crate::wire::{self, fb, Message};
use crate::world::EntityId;

/// Why a client's ownership call was refused locally (nothing was sent).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum OwnershipCallError {
    /// It is not admitted (or its connection is down).
    #[error("not joined to a host")]
    NotJoined,
    /// It does not hold what it tries to release or set the policy of, or the entity id is
    /// invalid.
    #[error("this client does not hold entity {entity} (component {component})")]
    NotOwner {
        /// The entity.
        entity: EntityId,
        /// The component, or 0 for the whole entity.
        component: ComponentId,
    },
}

impl Client {
    /// Asks the host for ownership of `(entity, component)` (component 0: the whole
    /// entity), or, holding it, renews its lease. The answer comes as a
    /// [`SessionEvent::OwnershipChanged`] (to every peer) or
    /// [`SessionEvent::OwnershipDenied`] (to this client).
    pub fn request_ownership(
        &mut self,
        entity: EntityId,
        component: ComponentId,
    ) -> Result<(), OwnershipCallError> {
        self.send_ownership(
            entity,
            component,
            fb::OwnershipAction::Request,
            Policy::WhenFree,
            0,
        )
    }

    /// Gives up `(entity, component)` at `now`: this client's current state of it goes to
    /// the host first (reliably, so its last writes are not lost), then nobody owns it.
    /// Refused locally when this client does not hold it.
    pub fn release_ownership(
        &mut self,
        entity: EntityId,
        component: ComponentId,
        now: Instant,
    ) -> Result<(), OwnershipCallError> {
        let own = self.peer.ok_or(OwnershipCallError::NotJoined)?;
        if self.replica.owner_of(entity, component) != Some(own) {
            return Err(OwnershipCallError::NotOwner { entity, component });
        }
        let Some(link) = &mut self.link else {
            return Err(OwnershipCallError::NotJoined);
        };
        if let Some(frame) = entity_frame(
            self.replica.world(),
            entity,
            component,
            link.outbox.owner_seq,
            &mut self.encoder,
        ) {
            let values = message_values(&frame);
            link.queue(
                MessageKind::DeltaFrame,
                &frame,
                &values,
                &mut self.compression,
                now,
                &mut self.out,
            );
        }
        self.send_ownership(
            entity,
            component,
            fb::OwnershipAction::Release,
            Policy::WhenFree,
            0,
        )?;
        // It stops writing now; the host's state of it comes in from here.
        let (_, before) = self.replica.owners().effective(entity, component);
        let record = Record {
            owner: None,
            policy: before.policy,
            flags: before.flags & USER_FLAGS,
        };
        self.replica.set_owner_record(entity, component, record);
        self.forget_unowned_pending();
        Ok(())
    }

    /// Sets the policy and flags of `(entity, component)`, which this client holds.
    pub fn set_ownership_policy(
        &mut self,
        entity: EntityId,
        component: ComponentId,
        policy: Policy,
        flags: u8,
    ) -> Result<(), OwnershipCallError> {
        let own = self.peer.ok_or(OwnershipCallError::NotJoined)?;
        if self.replica.owner_of(entity, component) != Some(own) {
            return Err(OwnershipCallError::NotOwner { entity, component });
        }
        self.send_ownership(
            entity,
            component,
            fb::OwnershipAction::SetPolicy,
            policy,
            flags & USER_FLAGS,
        )
    }

    fn send_ownership(
        &mut self,
        entity: EntityId,
        component: ComponentId,
        action: fb::OwnershipAction,
        policy: Policy,
        flags: u8,
    ) -> Result<(), OwnershipCallError> {
        if !entity.is_valid() {
            return Err(OwnershipCallError::NotOwner { entity, component });
        }
        let (Some(link), Phase::Joined(_)) = (&mut self.link, self.phase) else {
            return Err(OwnershipCallError::NotJoined);
        };
        let request = self.encoder.ownership_request(
            entity.0,
            component.0,
            action,
            fb::OwnershipPolicy(policy as u8),
            flags,
        );
        link.send_reliable(control_message(&request), &mut self.out);
        Ok(())
    }

    /// Drops the pending writes of what this client no longer owns.
    pub(super) fn forget_unowned_pending(&mut self) {
        let (Some(link), Some(own)) = (&mut self.link, self.peer) else {
            return;
        };
        let replica = &self.replica;
        link.outbox
            .forget_keys(|(c, e)| replica.owner_of(e, c) != Some(own));
    }

    /// Takes an ownership message of the host: the records, the events, and the
    /// acknowledgement the host waits for before it resends what this client lost.
    pub(super) fn take_owners(&mut self, owners: fb::Owners<'_>) {
        let records: Vec<(EntityId, ComponentId, Record)> = owners
            .entries()
            .iter()
            .filter_map(Record::from_wire)
            .collect();
        if records.len() != owners.entries().len() {
            if let Some(link) = &mut self.link {
                link.diagnostics.malformed += 1;
            }
        }
        if owners.full() {
            // A resumed client: the host's state of what it holds by a grant it never
            // applied (the message was lost with its connection) replaces its own; what it
            // held all along keeps its writes.
            // So does the state of what it gave up by a release the host never got.
            let applied = self.link.as_ref().map_or(0, |l| l.outbox.owner_seq);
            let (replica, me) = (&self.replica, self.peer);
            self.grant_frames.retain(|(number, frame)| {
                *number > applied
                    || frame_entity(frame).is_some_and(|e| replica.owner_of(e, WHOLE_ENTITY) != me)
            });
            self.apply_grant_frames();
            self.replica.replace_owner_records(&records);
        } else {
            for &(entity, component, record) in &records {
                let gains = record.owner.is_some()
                    && record.owner == self.peer
                    && self.replica.owner_of(entity, component) != self.peer;
                if gains {
                    // It starts from the host's state, not from what it wrote in an
                    // earlier tenure that the host dropped.
                    self.apply_grant_frames();
                }
                self.replica.set_owner_record(entity, component, record);
            }
        }
        self.grant_frames.clear();
        for &(entity, component, record) in &records {
            self.events.push(SessionEvent::OwnershipChanged {
                entity,
                component,
                owner: record.owner,
            });
        }
        self.forget_unowned_pending();
        self.lease = (owners.lease_ms() > 0)
            .then(|| std::time::Duration::from_millis(u64::from(owners.lease_ms())));
        let seq = owners.seq();
        if let Some(link) = &mut self.link {
            link.outbox.owner_seq = link.outbox.owner_seq.max(seq);
            let ack = control_message(&self.encoder.owners_ack(link.outbox.owner_seq));
            link.send_reliable(ack, &mut self.out);
        }
        self.last_ack = None;
    }

    /// Applies the host's state that came with the ownership message being taken (what
    /// this client does not hold yet takes it).
    fn apply_grant_frames(&mut self) {
        for (_, frame) in &self.grant_frames {
            if self.replica.apply_granted(frame).is_err() {
                if let Some(link) = &mut self.link {
                    link.diagnostics.malformed += 1;
                }
            }
        }
    }
}

/// The entity a grant's state is of.
fn frame_entity(message: &[u8]) -> Option<EntityId> {
    match wire::decode(message) {
        Ok(Message::DeltaFrame(frame)) => frame.spawns()?.iter().next().map(EntityId),
        _ => None,
    }
}

/// The number of the ownership message that granted what a host's stream message holds
/// the state of; 0 when it is not such a message.
pub(super) fn grant_number(message: &[u8]) -> u64 {
    match wire::decode(message) {
        Ok(Message::DeltaFrame(frame)) => frame.owner_seq(),
        _ => 0,
    }
}
