//! Ownership decisions on the host: who may take what (the record's policy, then the
//! engine's hook), leases that lapse with their holder's silence, and the fence that keeps
//! a previous owner's writes out after a transfer. The records themselves are a plain table
//! ([`crate::ownership`]).
//!
//! The fence: every ownership message the host sends a client is numbered in that
//! client's stream (`Owners.seq`), and every frame a client writes carries the number it
//! had applied (`DeltaFrame.owner_seq`). A grant to a client is valid from the message
//! that tells it; a write of a key from a frame numbered before that (written in an
//! earlier tenure, or before the writer heard) is stale and dropped, however late it
//! arrives. A client that loses a key ignores the host's state of it until it applied the
//! message saying so; the host resends that state once the client acknowledges it.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rustc_hash::FxHashMap;

use super::events::{OwnershipRefusal, SessionEvent};
use super::queue::EventQueue;
use crate::delta::{Delta, SetBatch};
use crate::ownership::{Owners, Policy, Record, LEASED, USER_FLAGS, WHOLE_ENTITY};
use crate::registry::{ComponentId, Layout};
use crate::wire::{fb, Encoder};
use crate::world::{EntityId, PeerId, World};

/// Requests of one client that may wait for the host's engine at once.
pub(crate) const MAX_PENDING_PER_PEER: usize = 32;
/// Records per ownership message (16 bytes each on the wire).
pub(crate) const RECORDS_PER_MESSAGE: usize = 512;

/// What the host decided about a request.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Give it to the requester.
    Grant,
    /// The requester holds it already: its lease goes on.
    Holds,
    /// Refused.
    Deny(OwnershipRefusal, String),
}

/// What the host does with a client's write of a key.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum WriteCheck {
    /// The writer owns the key and had heard of its grant.
    Apply,
    /// Written before the writer heard that the key changed hands: dropped quietly.
    Stale,
    /// The writer knew it did not own the key: refused and reported.
    Refuse,
}

/// One record changed this tick.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RecordChange {
    pub(crate) entity: EntityId,
    pub(crate) component: ComponentId,
    pub(crate) record: Record,
    /// Who owned it before.
    pub(crate) previous: Option<PeerId>,
}

/// A request put to the host's engine.
#[derive(Clone, Copy, Debug)]
struct Pending {
    peer: PeerId,
    entity: EntityId,
    component: ComponentId,
    deadline: Instant,
}

/// A client's side of ownership on the host (kept while it is parked).
#[derive(Debug, Default)]
pub(crate) struct PeerOwnership {
    /// Ownership messages sent to this client (the number of the last one).
    pub(crate) seq: u64,
    /// Keys it lost, with the number of the message that told it: their state goes again
    /// once it acknowledged that message.
    pub(crate) awaiting: Vec<(u64, EntityId, ComponentId)>,
    /// When the host last heard from it (any message).
    pub(crate) last_heard: Option<Instant>,
    /// Keys it lost, with the number of the message that told it: its writes of them from
    /// before that message are stale, not forbidden. Bounded (see [`Self::lost`]).
    pub(crate) revoked: FxHashMap<(EntityId, ComponentId), u64>,
}

/// Revocations remembered per client; beyond, the oldest are forgotten (a write that late
/// is then reported as refused rather than dropped quietly: never applied either way).
const MAX_REVOKED: usize = 4096;

impl PeerOwnership {
    /// It loses `(entity, component)` by ownership message `seq`: its state goes again once
    /// it acknowledged that message, and its writes from before it are stale.
    pub(crate) fn lost(&mut self, seq: u64, entity: EntityId, component: ComponentId) {
        self.awaiting.push((seq, entity, component));
        if self.revoked.len() >= MAX_REVOKED {
            let mut seqs: Vec<u64> = self.revoked.values().copied().collect();
            seqs.sort_unstable();
            let cut = seqs[seqs.len() / 2];
            self.revoked.retain(|_, &mut at| at > cut);
        }
        self.revoked.insert((entity, component), seq);
    }

    /// The client acknowledged message `seq`: the keys it lost up to it, to resend.
    pub(crate) fn acknowledged(&mut self, seq: u64) -> Vec<(EntityId, ComponentId)> {
        let mut due = Vec::new();
        self.awaiting.retain(|&(s, e, c)| {
            let done = s <= seq;
            if done {
                due.push((e, c));
            }
            !done
        });
        due
    }
}

/// The host's ownership state (see the module documentation).
#[derive(Debug)]
pub(crate) struct HostOwnership {
    pub(crate) owners: Owners,
    /// Per key with a record, the message (in its owner's stream) that granted it.
    granted: FxHashMap<(EntityId, ComponentId), u64>,
    /// This tick's changes, announced at its end.
    pub(crate) changes: Vec<RecordChange>,
    pending: BTreeMap<u64, Pending>,
    next_request: u64,
    pub(crate) lease: Duration,
    hook: Option<Duration>,
}

impl HostOwnership {
    pub(crate) fn new(lease: Duration, hook: Option<Duration>) -> Self {
        HostOwnership {
            owners: Owners::default(),
            granted: FxHashMap::default(),
            changes: Vec::new(),
            pending: BTreeMap::new(),
            next_request: 1,
            lease,
            hook,
        }
    }

    /// Whether `peer` may take `(entity, component)` now.
    pub(crate) fn evaluate(
        &self,
        world: &World,
        peer: PeerId,
        entity: EntityId,
        component: ComponentId,
    ) -> Verdict {
        if !world.is_alive(entity)
            || (component != WHOLE_ENTITY && world.registry().get(component).is_none())
        {
            return Verdict::Deny(
                OwnershipRefusal::UnknownEntity,
                format!("entity {entity} (component {component}) does not exist"),
            );
        }
        let (_, record) = self.owners.effective(entity, component);
        if record.owner == Some(peer) {
            return Verdict::Holds;
        }
        match (record.policy, record.owner) {
            (Policy::HostOnly, _) => Verdict::Deny(
                OwnershipRefusal::HostOnly,
                format!("only the host assigns entity {entity}"),
            ),
            (Policy::Takeover, _) | (_, None) => Verdict::Grant,
            (_, Some(holder)) => Verdict::Deny(
                OwnershipRefusal::Held,
                format!("entity {entity} is held by peer {holder}"),
            ),
        }
    }

    /// Sets the owner of `(entity, component)` (keeping its policy and user flags), leased
    /// or not; `next_seq` is the number of the next ownership message its new owner will
    /// be sent. Records the change and tells the engine.
    pub(crate) fn assign(
        &mut self,
        entity: EntityId,
        component: ComponentId,
        owner: Option<PeerId>,
        leased: bool,
        next_seq: u64,
        events: &mut EventQueue,
    ) {
        let (_, before) = self.owners.effective(entity, component);
        let record = Record {
            owner,
            policy: before.policy,
            flags: (before.flags & USER_FLAGS) | if leased { LEASED } else { 0 },
        };
        self.set(entity, component, record, before.owner, events);
        match owner {
            Some(_) => self.granted.insert((entity, component), next_seq),
            None => self.granted.remove(&(entity, component)),
        };
    }

    /// Sets the policy and user flags of `(entity, component)`, keeping its owner.
    pub(crate) fn set_policy(
        &mut self,
        entity: EntityId,
        component: ComponentId,
        policy: Policy,
        flags: u8,
        events: &mut EventQueue,
    ) {
        let (_, before) = self.owners.effective(entity, component);
        let leased = if policy.leases() {
            before.flags & LEASED
        } else {
            0
        };
        let record = Record {
            owner: before.owner,
            policy,
            flags: (flags & USER_FLAGS) | leased,
        };
        self.set(entity, component, record, before.owner, events);
    }

    fn set(
        &mut self,
        entity: EntityId,
        component: ComponentId,
        record: Record,
        previous: Option<PeerId>,
        events: &mut EventQueue,
    ) {
        self.owners.set(entity, component, record);
        self.changes.push(RecordChange {
            entity,
            component,
            record,
            previous,
        });
        if previous != record.owner {
            events.push(SessionEvent::OwnershipChanged {
                entity,
                component,
                owner: record.owner,
            });
        }
    }

    /// Whether `peer`'s write of `(entity, component)` from a frame written when it had
    /// applied ownership message `frame_seq` may be applied; `peer_state` says what the
    /// peer lost and when.
    pub(crate) fn check_write(
        &self,
        peer: PeerId,
        peer_state: &PeerOwnership,
        frame_seq: u64,
        entity: EntityId,
        component: ComponentId,
    ) -> WriteCheck {
        let (key, record) = self.owners.effective(entity, component);
        if record.owner == Some(peer) {
            let granted = self.granted.get(&(entity, key)).copied().unwrap_or(0);
            if frame_seq >= granted {
                WriteCheck::Apply
            } else {
                WriteCheck::Stale
            }
        } else if peer_state
            .revoked
            .get(&(entity, key))
            .is_some_and(|&at| frame_seq < at)
            || self
                .changes
                .iter()
                .any(|c| c.entity == entity && c.component == key && c.previous == Some(peer))
        {
            // It owned the key until a message it had not applied when it wrote this (or
            // that has yet to go: it lost the key this tick).
            WriteCheck::Stale
        } else {
            WriteCheck::Refuse
        }
    }

    /// The number of the ownership message (in its owner's stream) that granted the
    /// record of `(entity, component)`; 0 when none did.
    pub(crate) fn granted_seq(&self, entity: EntityId, component: ComponentId) -> u64 {
        self.granted.get(&(entity, component)).copied().unwrap_or(0)
    }

    /// Puts a request to the engine; `None` when too many of `peer`'s wait already.
    pub(crate) fn ask(
        &mut self,
        peer: PeerId,
        entity: EntityId,
        component: ComponentId,
        now: Instant,
        events: &mut EventQueue,
    ) -> Option<u64> {
        let timeout = self.hook?;
        let waiting = self.pending.values().filter(|p| p.peer == peer).count();
        if waiting >= MAX_PENDING_PER_PEER {
            return None;
        }
        let request = self.next_request;
        self.next_request += 1;
        self.pending.insert(
            request,
            Pending {
                peer,
                entity,
                component,
                deadline: now + timeout,
            },
        );
        events.push(SessionEvent::OwnershipRequested {
            request,
            peer,
            entity,
            component,
        });
        Some(request)
    }

    /// Whether requests go to the engine.
    pub(crate) fn has_hook(&self) -> bool {
        self.hook.is_some()
    }

    /// The request `request` the engine answers, if it still waits.
    pub(crate) fn take_pending(&mut self, request: u64) -> Option<(PeerId, EntityId, ComponentId)> {
        self.pending
            .remove(&request)
            .map(|p| (p.peer, p.entity, p.component))
    }

    /// The requests whose answer is overdue at `now`.
    pub(crate) fn overdue(&mut self, now: Instant) -> Vec<(PeerId, EntityId, ComponentId)> {
        let late: Vec<u64> = self
            .pending
            .iter()
            .filter(|(_, p)| p.deadline <= now)
            .map(|(&id, _)| id)
            .collect();
        late.into_iter()
            .filter_map(|id| self.take_pending(id))
            .collect()
    }

    /// Forgets the requests of a peer that left.
    pub(crate) fn forget_requests_of(&mut self, peer: PeerId) {
        self.pending.retain(|_, p| p.peer != peer);
    }

    /// The earliest deadline of a request waiting for the engine.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.pending.values().map(|p| p.deadline).min()
    }

    /// The leased records whose holder `silent` says went quiet.
    pub(crate) fn lapsed(
        &self,
        mut silent: impl FnMut(PeerId) -> bool,
    ) -> Vec<(EntityId, ComponentId)> {
        self.owners
            .iter()
            .filter(|(_, _, r)| r.flags & LEASED != 0)
            .filter(|(_, _, r)| r.owner.is_some_and(&mut silent))
            .map(|(e, c, _)| (e, c))
            .collect()
    }

    /// Forgets the records of a despawned entity.
    pub(crate) fn forget_entity(&mut self, entity: EntityId) {
        if self.owners.get(entity, WHOLE_ENTITY).is_some()
            || self.owners.component_records(entity).next().is_some()
        {
            self.granted.retain(|(e, _), _| *e != entity);
        }
        self.owners.forget_entity(entity);
    }

    /// The full table as ownership messages for a client whose messages are numbered from
    /// `next_seq`: the first replaces what it holds, the rest add to it.
    pub(crate) fn full_table(
        &self,
        next_seq: u64,
        lease_ms: u32,
        encoder: &mut Encoder,
    ) -> Vec<Vec<u8>> {
        let mut entries: Vec<fb::OwnerEntry> = self
            .owners
            .iter()
            .map(|(e, c, r)| r.to_wire(e, c))
            .collect();
        entries.sort_unstable_by_key(|e| (e.entity(), e.component()));
        let mut messages = Vec::new();
        let mut chunks = entries.chunks(RECORDS_PER_MESSAGE);
        let first = chunks.next().unwrap_or(&[]);
        messages.push(encoder.owners(next_seq, true, first, lease_ms));
        for (i, chunk) in chunks.enumerate() {
            messages.push(encoder.owners(next_seq + 1 + i as u64, false, chunk, lease_ms));
        }
        messages
    }
}

/// A delta frame of the state `world` holds of `entity` (all of it, or `component`): the
/// entity alive, its values, and the removal of every other type. Sent with a grant (host)
/// or a release (client) on the reliable stream, so that the side taking over starts from
/// the other's state.
pub(crate) fn entity_frame(
    world: &World,
    entity: EntityId,
    component: ComponentId,
    owner_seq: u64,
    encoder: &mut Encoder,
) -> Option<Vec<u8>> {
    if !world.is_alive(entity) {
        return None;
    }
    let mut delta = Delta {
        base_tick: 0,
        tick: world.tick().max(1),
        spawns: vec![entity],
        ..Delta::default()
    };
    let mut absent = Vec::new();
    for descriptor in world.registry().descriptors() {
        if component != WHOLE_ENTITY && descriptor.id != component {
            continue;
        }
        match world.get(entity, descriptor.id) {
            Some(value) => delta.sets.push(SetBatch {
                component: descriptor.id,
                entities: vec![entity],
                data: value.to_vec(),
                lengths: matches!(descriptor.layout, Layout::Variable { .. })
                    .then(|| vec![value.len() as u32]),
                inserted: vec![0],
            }),
            None => absent.push(descriptor.id),
        }
    }
    delta.removes = absent.into_iter().map(|c| (c, vec![entity])).collect();
    Some(delta.with_parts(|parts| {
        encoder.delta_frame(&crate::wire::FrameParts {
            owner_seq,
            ..*parts
        })
    }))
}
