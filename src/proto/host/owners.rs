//! The host's ownership calls and duties: requests from clients, the engine's own
//! assignments and its answers to the hook, leases, the announcement of changes, and what
//! happens to a departed client's entities. Decisions are [`super::super::ownership`]'s.

use std::time::Instant;

use super::{Host, PeerLink};
use crate::ownership::{Policy, Record, DESPAWN_WITH_OWNER, LEASED, WHOLE_ENTITY};
use crate::proto::compression::control_message;
use crate::proto::events::OwnershipRefusal;
#[cfg(doc)]
use crate::proto::events::SessionEvent;
use crate::proto::ownership::{entity_frame, Verdict};
use crate::registry::ComponentId;
use crate::wire::fb;
use crate::world::{EntityId, PeerId};

/// Why the host's own ownership call was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum OwnershipError {
    /// The entity is not alive, or the component type is not registered.
    #[error("entity {entity} (component {component}) does not exist")]
    Unknown {
        /// The entity.
        entity: EntityId,
        /// The component, or 0 for the whole entity.
        component: ComponentId,
    },
    /// The new owner is neither the host nor a connected client.
    #[error("peer {0} is not connected")]
    NotConnected(PeerId),
    /// No request of that id waits for an answer (answered, timed out, or its requester
    /// left).
    #[error("no ownership request {0} waits for an answer")]
    UnknownRequest(u64),
    /// A refusal's reason is longer than [`MAX_OWNERSHIP_REASON_BYTES`].
    #[error("the reason has {0} bytes, at most {MAX_OWNERSHIP_REASON_BYTES}")]
    ReasonTooLong(usize),
    /// The host does not hold what it tries to release.
    #[error("the host does not hold entity {entity} (component {component})")]
    NotHeld {
        /// The entity.
        entity: EntityId,
        /// The component, or 0 for the whole entity.
        component: ComponentId,
    },
}

/// Longest reason a host gives for refusing an ownership request (it travels to the
/// client in a control message).
pub const MAX_OWNERSHIP_REASON_BYTES: usize = 1024;

impl Host {
    /// Who owns `(entity, component)` (component 0: the entity); `None` is nobody.
    pub fn owner_of(&self, entity: EntityId, component: ComponentId) -> Option<PeerId> {
        self.ownership.owners.owner_of(entity, component)
    }

    /// The owner records that differ from "the creator owns it".
    pub fn owners(&self) -> &crate::ownership::Owners {
        &self.ownership.owners
    }

    /// Makes `owner` (the host, a connected client, or nobody) the owner of `(entity,
    /// component)`, whatever its policy. The host's own assignment is not leased. Every
    /// client hears of it at the end of the tick.
    pub fn set_owner(
        &mut self,
        entity: EntityId,
        component: ComponentId,
        owner: Option<PeerId>,
    ) -> Result<(), OwnershipError> {
        self.check_exists(entity, component)?;
        if let Some(peer) = owner {
            if peer != self.host_peer && !self.peers.contains_key(&peer) {
                return Err(OwnershipError::NotConnected(peer));
            }
        }
        let next_seq = self.next_seq_of(owner);
        self.ownership
            .assign(entity, component, owner, false, next_seq, &mut self.events);
        Ok(())
    }

    /// Sets who may take `(entity, component)` and its flags
    /// ([`crate::ownership::DESPAWN_WITH_OWNER`]), keeping its owner.
    pub fn set_ownership_policy(
        &mut self,
        entity: EntityId,
        component: ComponentId,
        policy: Policy,
        flags: u8,
    ) -> Result<(), OwnershipError> {
        self.check_exists(entity, component)?;
        self.ownership
            .set_policy(entity, component, policy, flags, &mut self.events);
        Ok(())
    }

    /// Answers the engine's hook ([`SessionEvent::OwnershipRequested`]): `accept` grants
    /// the request if the policy still allows it then; a refusal tells the requester
    /// `reason`.
    pub fn decide_ownership(
        &mut self,
        request: u64,
        accept: bool,
        reason: &str,
    ) -> Result<(), OwnershipError> {
        if reason.len() > MAX_OWNERSHIP_REASON_BYTES {
            return Err(OwnershipError::ReasonTooLong(reason.len()));
        }
        let (peer, entity, component) = self
            .ownership
            .take_pending(request)
            .ok_or(OwnershipError::UnknownRequest(request))?;
        if !self.peers.contains_key(&peer) {
            return Ok(());
        }
        if !accept {
            let reason = if reason.is_empty() {
                "the host refused it"
            } else {
                reason
            };
            self.deny(peer, entity, component, OwnershipRefusal::Refused, reason);
            return Ok(());
        }
        match self
            .ownership
            .evaluate(&self.world, peer, entity, component)
        {
            Verdict::Grant => self.grant(peer, entity, component),
            Verdict::Holds => {}
            Verdict::Deny(refusal, reason) => self.deny(peer, entity, component, refusal, &reason),
        }
        Ok(())
    }

    fn check_exists(&self, entity: EntityId, component: ComponentId) -> Result<(), OwnershipError> {
        let known = component == WHOLE_ENTITY || self.world.registry().get(component).is_some();
        if self.world.is_alive(entity) && known {
            Ok(())
        } else {
            Err(OwnershipError::Unknown { entity, component })
        }
    }

    /// The number of the next ownership message `owner` will be sent (0 for the host or
    /// nobody).
    fn next_seq_of(&self, owner: Option<PeerId>) -> u64 {
        owner
            .and_then(|p| self.peers.get(&p))
            .map_or(0, |client| client.ownership.seq + 1)
    }

    /// A client's ownership request (take or renew, release, set policy).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn ownership_request(
        &mut self,
        peer: PeerId,
        entity: EntityId,
        component: ComponentId,
        action: fb::OwnershipAction,
        policy: fb::OwnershipPolicy,
        flags: u8,
        now: Instant,
    ) {
        let holds = self.ownership.owners.owner_of(entity, component) == Some(peer);
        match action {
            fb::OwnershipAction::Request => {
                match self
                    .ownership
                    .evaluate(&self.world, peer, entity, component)
                {
                    Verdict::Holds => {}
                    Verdict::Grant if self.ownership.has_hook() => {
                        let asked =
                            self.ownership
                                .ask(peer, entity, component, now, &mut self.events);
                        if asked.is_none() {
                            let reason = "too many requests wait for the host";
                            self.deny(peer, entity, component, OwnershipRefusal::Throttled, reason);
                        }
                    }
                    Verdict::Grant => self.grant(peer, entity, component),
                    Verdict::Deny(refusal, reason) => {
                        self.deny(peer, entity, component, refusal, &reason)
                    }
                }
            }
            fb::OwnershipAction::Release if holds => {
                self.ownership
                    .assign(entity, component, None, false, 0, &mut self.events);
            }
            fb::OwnershipAction::SetPolicy if holds => match Policy::from_u8(policy.0) {
                Some(policy) => {
                    self.ownership
                        .set_policy(entity, component, policy, flags, &mut self.events)
                }
                None => {
                    let reason = format!("unknown policy {}", policy.0);
                    self.deny(peer, entity, component, OwnershipRefusal::Refused, &reason)
                }
            },
            fb::OwnershipAction::Release | fb::OwnershipAction::SetPolicy => {
                let reason = format!("peer {peer} does not hold entity {entity}");
                self.deny(peer, entity, component, OwnershipRefusal::NotOwner, &reason);
            }
            _ => {
                if let Some(client) = self.peers.get_mut(&peer) {
                    client.link.diagnostics.malformed += 1;
                }
            }
        }
    }

    fn grant(&mut self, peer: PeerId, entity: EntityId, component: ComponentId) {
        let leased = self
            .ownership
            .owners
            .effective(entity, component)
            .1
            .policy
            .leases();
        let next_seq = self.next_seq_of(Some(peer));
        self.ownership.assign(
            entity,
            component,
            Some(peer),
            leased,
            next_seq,
            &mut self.events,
        );
        if let Some(client) = self.peers.get_mut(&peer) {
            client.link.diagnostics.ownership_granted += 1;
        }
    }

    fn deny(
        &mut self,
        peer: PeerId,
        entity: EntityId,
        component: ComponentId,
        refusal: OwnershipRefusal,
        reason: &str,
    ) {
        let Some(client) = self.peers.get_mut(&peer) else {
            return;
        };
        client.link.diagnostics.ownership_denied += 1;
        let notice = self.encoder.ownership_denied(
            entity.0,
            component.0,
            fb::OwnershipRefusal(refusal as u8),
            reason,
        );
        client
            .link
            .send_reliable(control_message(&notice), &mut self.out);
    }

    /// Ownership duties of a tick: leases of silent holders lapse, unanswered requests are
    /// refused, and this tick's changes go to every client (a new owner gets the state it
    /// takes over first; a previous one gets it again once it acknowledged the change).
    pub(super) fn update_ownership(&mut self, now: Instant) {
        let lease = self.ownership.lease;
        let peers = &self.peers;
        let parked = &self.parked;
        let lapsed = self.ownership.lapsed(|holder| {
            let heard = peers
                .get(&holder)
                .map(|p| p.ownership.last_heard)
                .or_else(|| parked.get(&holder).map(|p| p.client.ownership.last_heard));
            match heard {
                Some(Some(at)) => now.saturating_duration_since(at) > lease,
                // The host itself, or a peer that departed: not leased by a client.
                _ => false,
            }
        });
        for (entity, component) in lapsed {
            self.ownership
                .assign(entity, component, None, false, 0, &mut self.events);
        }
        for (peer, entity, component) in self.ownership.overdue(now) {
            let reason = "the host did not answer in time";
            self.deny(peer, entity, component, OwnershipRefusal::Refused, reason);
        }
        self.announce_ownership(now);
    }

    fn announce_ownership(&mut self, now: Instant) {
        let changes = std::mem::take(&mut self.ownership.changes);
        if changes.is_empty() {
            return;
        }
        if let Some(interest) = &mut self.interest {
            // What a client owns stays in its interest; what it lost is looked at again.
            for change in changes.iter().filter(|c| c.component == WHOLE_ENTITY) {
                if let Some(owner) = change.record.owner {
                    interest.keep(owner, change.entity);
                }
                interest.touch(change.entity);
            }
        }
        let entries: Vec<fb::OwnerEntry> = changes
            .iter()
            .map(|c| c.record.to_wire(c.entity, c.component))
            .collect();
        let lease_ms = u32::try_from(self.ownership.lease.as_millis()).unwrap_or(u32::MAX);
        for (&peer, client) in &mut self.peers {
            let seq = client.ownership.seq + 1;
            for change in &changes {
                let (gains, loses) = (
                    change.record.owner == Some(peer) && change.previous != Some(peer),
                    change.previous == Some(peer) && change.record.owner != Some(peer),
                );
                if gains {
                    // The state it takes over, before the grant (the channel keeps order),
                    // numbered like the message it precedes: the client applies it as it
                    // takes the grant (it may think it holds the key until then).
                    if let Some(frame) = entity_frame(
                        &self.world,
                        change.entity,
                        change.component,
                        seq,
                        &mut self.encoder,
                    ) {
                        client
                            .link
                            .queue_frame(&frame, &mut self.compression, now, &mut self.out);
                    }
                }
                if loses {
                    client.ownership.lost(seq, change.entity, change.component);
                }
            }
            let message = self.encoder.owners(seq, false, &entries, lease_ms);
            client.ownership.seq = seq;
            client
                .link
                .send_reliable(control_message(&message), &mut self.out);
        }
        // A parked client learns it all from the table it gets when it resumes.
        for (&peer, parked) in &mut self.parked {
            let seq = parked.client.ownership.seq + 1;
            for change in changes.iter().filter(|c| c.previous == Some(peer)) {
                parked
                    .client
                    .ownership
                    .lost(seq, change.entity, change.component);
            }
        }
    }

    /// When ownership next needs a tick: an answer overdue, a lease lapsing.
    pub(super) fn ownership_due(&self, now: Instant) -> Option<Instant> {
        let lease = self.ownership.lease;
        let pending = !self.ownership.changes.is_empty();
        let heard = |peer: PeerId| -> Option<Instant> {
            let client: Option<&PeerLink> = self
                .peers
                .get(&peer)
                .or_else(|| self.parked.get(&peer).map(|p| &p.client));
            client.and_then(|c| c.ownership.last_heard)
        };
        let leases = self
            .ownership
            .owners
            .iter()
            .filter(|(_, _, r)| r.flags & LEASED != 0)
            .filter_map(|(_, _, r)| heard(r.owner?))
            .map(|at| (at + lease).max(now))
            .min();
        [
            pending.then_some(now),
            self.ownership.next_deadline().map(|d| d.max(now)),
            leases,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// `peer` left for good (its grace ended, or it said goodbye): what it owned is
    /// released, or despawned when flagged so; its waiting requests and its interest are
    /// forgotten.
    pub(super) fn depart(&mut self, peer: PeerId) {
        self.ownership.forget_requests_of(peer);
        if let Some(interest) = &mut self.interest {
            interest.remove_client(peer);
        }
        let mut held: Vec<(EntityId, ComponentId, Record)> = self
            .ownership
            .owners
            .iter()
            .filter(|(_, _, r)| r.owner == Some(peer))
            .collect();
        // Its own entities without a record are its by default.
        held.extend(
            self.world
                .entities()
                .filter(|e| e.creator() == peer)
                .filter(|&e| self.ownership.owners.get(e, WHOLE_ENTITY).is_none())
                .map(|e| (e, WHOLE_ENTITY, Record::default_for(e))),
        );
        held.sort_unstable_by_key(|&(e, c, _)| (e, c));
        for (entity, component, record) in held {
            if !self.world.is_alive(entity) {
                continue;
            }
            if component == WHOLE_ENTITY && record.flags & DESPAWN_WITH_OWNER != 0 {
                let _ = self.world.despawn(entity);
            } else {
                self.ownership
                    .assign(entity, component, None, false, 0, &mut self.events);
            }
        }
    }
}
