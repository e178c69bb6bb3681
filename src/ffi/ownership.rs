//! Ownership through the C ABI: requests, releases, policies, the host's assignments and
//! its answers to the ownership hook, and who owns what (see `net::session::ownership`;
//! the rules are the protocol's).
//!
//! Every call names an `(entity, component)` key, component 0 meaning the whole entity.
//! The key is checked here first (a joined client, a live entity, a registered component),
//! so a misuse is a status at once rather than a refusal from the host a round trip later.

use super::boundary::{boundary, FfiError, FfiResult};
use super::session::{text_in, with_session, ThetaSession};
use super::{check_out, write_out, ThetaStatus};
use crate::net::session::{Session, SessionError};
use crate::ownership::{Policy, DESPAWN_WITH_OWNER, NOBODY, USER_FLAGS, WHOLE_ENTITY};
use crate::registry::ComponentId;
use crate::world::EntityId;

/// The owner of a record nobody holds: what `theta_session_owner` writes for it, what
/// `theta_session_set_owner` takes to release it, and the `peer` of an
/// `OWNERSHIP_CHANGED` event when nobody owns it now.
pub const THETA_OWNER_NOBODY: u16 = 65535;
/// Ownership flag of `theta_session_set_ownership_policy`: when the owner leaves for good
/// (its resume grace period over), the entity is despawned rather than released.
pub const THETA_OWNERSHIP_DESPAWN_WITH_OWNER: u8 = 1;
/// Most bytes of the reason `theta_session_decide_ownership` sends with a refusal.
pub const THETA_MAX_OWNERSHIP_REASON_BYTES: usize = 1024;
const _: () = assert!(THETA_MAX_OWNERSHIP_REASON_BYTES == crate::proto::MAX_OWNERSHIP_REASON_BYTES);

const _: () = assert!(THETA_OWNER_NOBODY == NOBODY);
const _: () = assert!(THETA_OWNERSHIP_DESPAWN_WITH_OWNER == DESPAWN_WITH_OWNER);
const _: () = assert!(USER_FLAGS == DESPAWN_WITH_OWNER);

/// Who may take an entity (or one component of it) from whom: the `policy` of
/// `theta_session_set_ownership_policy` (a `uint8_t`). An entity starts owned by its
/// creator under `WHEN_FREE`.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ThetaOwnershipPolicy {
    /// A request is granted when nobody owns it (never owned, released, or its holder's
    /// lease lapsed). The grant is leased: it lapses when its holder goes silent.
    WhenFree = 0,
    /// A request is always granted: the requester takes it from its holder (leased).
    Takeover = 1,
    /// Granted only when nobody owns it; the grant holds until released (no lease).
    OwnerReleases = 2,
    /// Requests are refused: only the host assigns owners (`theta_session_set_owner`).
    HostOnly = 3,
}

const _: () = {
    assert!(ThetaOwnershipPolicy::WhenFree as u8 == Policy::WhenFree as u8);
    assert!(ThetaOwnershipPolicy::Takeover as u8 == Policy::Takeover as u8);
    assert!(ThetaOwnershipPolicy::OwnerReleases as u8 == Policy::OwnerReleases as u8);
    assert!(ThetaOwnershipPolicy::HostOnly as u8 == Policy::HostOnly as u8);
};

fn invalid(message: impl Into<String>) -> FfiError {
    FfiError::new(ThetaStatus::InvalidArgument, message)
}

/// Whether `session` is a host. (Only a host has a world to write.)
fn is_host(session: &mut Session) -> bool {
    session.host_world().is_ok()
}

/// Fails with `WRONG_ROLE` unless `session` is a host (`host` true) or a client.
pub(super) fn need_role(session: &mut Session, host: bool) -> FfiResult {
    if is_host(session) == host {
        return Ok(());
    }
    Err(SessionError::WrongRole(if host { "host" } else { "client" }).into())
}

/// The key `(entity, component)` once checked: a client has joined, the entity is alive
/// here and the component (unless 0, the whole entity) is registered.
fn key_in(session: &Session, entity: u64, component: u32) -> FfiResult<(EntityId, ComponentId)> {
    if session.peer().is_none() {
        return Err(FfiError::new(
            ThetaStatus::NotConnected,
            "this client has not joined (yet): wait for JOINED",
        ));
    }
    let (entity, component) = (EntityId(entity), ComponentId(component));
    if component != WHOLE_ENTITY && session.world().registry().get(component).is_none() {
        return Err(FfiError::new(
            ThetaStatus::UnknownComponent,
            format!("component {component} is not registered"),
        ));
    }
    if !session.world().is_alive(entity) {
        return Err(FfiError::new(
            ThetaStatus::DeadEntity,
            format!("entity {entity} is not alive here"),
        ));
    }
    Ok((entity, component))
}

/// Client: asks the host for `(entity, component)` (component 0: the whole entity), or
/// renews the lease of one it holds (a ticking client renews its leases by itself; one
/// silent past the host's `ownership_lease_ms` loses them). The answer comes as an event:
/// `OWNERSHIP_CHANGED` naming this client (on every peer), after which its writes go out
/// with no round trip (before it, they are `THETA_STATUS_NOT_OWNER`); or
/// `OWNERSHIP_DENIED` with a `ThetaOwnershipRefusal` cause and a reason. Nothing comes
/// when it already holds it. `THETA_STATUS_WRONG_ROLE` on a host;
/// `THETA_STATUS_NOT_CONNECTED` on a client not joined (or disconnected);
/// `THETA_STATUS_DEAD_ENTITY` for an entity not alive here; `THETA_STATUS_UNKNOWN_COMPONENT`
/// for an unregistered component.
#[no_mangle]
pub extern "C" fn theta_session_request_ownership(
    session: ThetaSession,
    entity: u64,
    component: u32,
) -> ThetaStatus {
    boundary("theta_session_request_ownership", || {
        with_session(session, |s| {
            need_role(s, false)?;
            let (entity, component) = key_in(s, entity, component)?;
            Ok(s.request_ownership(entity, component)?)
        })
    })
}

/// Gives up `(entity, component)` (component 0: the whole entity), which this peer holds:
/// on a client its current state of it goes to the host first (its last writes are kept),
/// then nobody owns it; on the host nobody owns it from now. Every peer sees
/// `OWNERSHIP_CHANGED` with peer `THETA_OWNER_NOBODY`. `THETA_STATUS_NOT_OWNER` when this
/// peer does not hold it; `THETA_STATUS_NOT_CONNECTED`, `THETA_STATUS_DEAD_ENTITY` and
/// `THETA_STATUS_UNKNOWN_COMPONENT` as for `theta_session_request_ownership`.
#[no_mangle]
pub extern "C" fn theta_session_release_ownership(
    session: ThetaSession,
    entity: u64,
    component: u32,
) -> ThetaStatus {
    boundary("theta_session_release_ownership", || {
        with_session(session, |s| {
            let (entity, component) = key_in(s, entity, component)?;
            Ok(s.release_ownership(entity, component)?)
        })
    })
}

/// Sets who may take `(entity, component)` (component 0: the whole entity), a
/// `ThetaOwnershipPolicy`, and its `flags` (`THETA_OWNERSHIP_DESPAWN_WITH_OWNER` or 0),
/// keeping its owner: the host for anything, a client for what it holds (the host applies
/// it; a refusal comes as `OWNERSHIP_DENIED`). A record for one component overrides the
/// entity's for that component. An unknown policy or flag is
/// `THETA_STATUS_INVALID_ARGUMENT`; a client that does not hold it gets
/// `THETA_STATUS_NOT_OWNER`; otherwise as `theta_session_request_ownership`.
#[no_mangle]
pub extern "C" fn theta_session_set_ownership_policy(
    session: ThetaSession,
    entity: u64,
    component: u32,
    policy: u8,
    flags: u8,
) -> ThetaStatus {
    boundary("theta_session_set_ownership_policy", || {
        let Some(policy) = Policy::from_u8(policy) else {
            return Err(invalid(format!(
                "policy {policy} is not a ThetaOwnershipPolicy (0..=3)"
            )));
        };
        if flags & !USER_FLAGS != 0 {
            return Err(invalid(format!(
                "flags {flags:#x}: only THETA_OWNERSHIP_DESPAWN_WITH_OWNER ({DESPAWN_WITH_OWNER}) \
                 may be set"
            )));
        }
        with_session(session, |s| {
            let (entity, component) = key_in(s, entity, component)?;
            Ok(s.set_ownership_policy(entity, component, policy, flags)?)
        })
    })
}

/// Host: makes `owner` (the host's own peer id, a connected client's, or
/// `THETA_OWNER_NOBODY`) the owner of `(entity, component)` (component 0: the whole
/// entity), whatever its policy; the host's assignment is not leased. Every peer sees
/// `OWNERSHIP_CHANGED` (the host at once, the clients after the next tick).
/// `THETA_STATUS_WRONG_ROLE` on a client; `THETA_STATUS_INVALID_ARGUMENT` when `owner` is
/// no connected peer; `THETA_STATUS_DEAD_ENTITY`, `THETA_STATUS_UNKNOWN_COMPONENT` as for
/// `theta_session_request_ownership`.
#[no_mangle]
pub extern "C" fn theta_session_set_owner(
    session: ThetaSession,
    entity: u64,
    component: u32,
    owner: u16,
) -> ThetaStatus {
    boundary("theta_session_set_owner", || {
        with_session(session, |s| {
            need_role(s, true)?;
            let (entity, component) = key_in(s, entity, component)?;
            let owner = (owner != THETA_OWNER_NOBODY).then_some(owner);
            Ok(s.set_owner(entity, component, owner)?)
        })
    })
}

/// Host: answers an `OWNERSHIP_REQUESTED` event (its `request` id), which a host whose
/// config sets `ownership_hook_ms` gets for every request its policy would grant. `accept`
/// 1 grants it if the policy still allows it now (`OWNERSHIP_CHANGED` follows, or
/// `OWNERSHIP_DENIED` when someone took it meanwhile); 0 refuses it: the requester gets
/// `OWNERSHIP_DENIED` with cause `THETA_OWNERSHIP_REFUSAL_REFUSED` and `reason` (UTF-8, at
/// most `THETA_MAX_OWNERSHIP_REASON_BYTES`; empty for a generic one; ignored on accept).
/// A request not answered within `ownership_hook_ms` is refused. `THETA_STATUS_NOT_FOUND`
/// when no request of that id waits (answered, timed out, or its requester left);
/// `THETA_STATUS_WRONG_ROLE` on a client; `THETA_STATUS_INVALID_ARGUMENT` for an `accept`
/// other than 0 or 1, or a reason not UTF-8 or too long.
///
/// # Safety
/// `reason` must point to `reason_len` readable bytes (may be NULL when `reason_len` is
/// 0).
#[no_mangle]
pub unsafe extern "C" fn theta_session_decide_ownership(
    session: ThetaSession,
    request: u64,
    accept: u8,
    reason: *const u8,
    reason_len: usize,
) -> ThetaStatus {
    boundary("theta_session_decide_ownership", || {
        let accept = match accept {
            0 => false,
            1 => true,
            other => return Err(invalid(format!("accept is {other}: 0 refuses, 1 accepts"))),
        };
        if reason_len > THETA_MAX_OWNERSHIP_REASON_BYTES {
            return Err(invalid(format!(
                "the reason has {reason_len} bytes, at most {THETA_MAX_OWNERSHIP_REASON_BYTES}"
            )));
        }
        // SAFETY: per the contract.
        let reason = unsafe { text_in(reason, reason_len, "reason") }?;
        with_session(session, |s| {
            need_role(s, true)?;
            Ok(s.decide_ownership(request, accept, reason)?)
        })
    })
}

/// Writes who owns `(entity, component)` (component 0: the whole entity) as far as this
/// peer knows to `out_owner`: a peer id, or `THETA_OWNER_NOBODY`. Without a record of its
/// own a component belongs to its entity's owner, and an entity to its creator.
/// `THETA_STATUS_NOT_CONNECTED`, `THETA_STATUS_DEAD_ENTITY` and
/// `THETA_STATUS_UNKNOWN_COMPONENT` as for `theta_session_request_ownership`.
///
/// # Safety
/// `out_owner` must point to a writable `uint16_t`.
#[no_mangle]
pub unsafe extern "C" fn theta_session_owner(
    session: ThetaSession,
    entity: u64,
    component: u32,
    out_owner: *mut u16,
) -> ThetaStatus {
    boundary("theta_session_owner", || {
        check_out(out_owner, "out_owner")?;
        let owner = with_session(session, |s| {
            let (entity, component) = key_in(s, entity, component)?;
            Ok(s.owner_of(entity, component).unwrap_or(THETA_OWNER_NOBODY))
        })?;
        // SAFETY: checked non-NULL; writable per the contract.
        unsafe { write_out(out_owner, owner) };
        Ok(())
    })
}
