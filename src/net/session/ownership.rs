//! A session's ownership calls, forwarded to its protocol core (see
//! [`crate::ownership`] and `proto::ownership` for the rules).

use std::time::Instant;

use super::{Core, Session, SessionError};
use crate::ownership::Policy;
use crate::registry::ComponentId;
use crate::world::{EntityId, PeerId};

impl Session {
    /// Who owns `(entity, component)` (component 0: the entity) as far as this peer
    /// knows; `None` is nobody.
    pub fn owner_of(&self, entity: EntityId, component: ComponentId) -> Option<PeerId> {
        match &self.core {
            Core::Host(host) => host.owner_of(entity, component),
            Core::Client(client) => client.owner_of(entity, component),
        }
    }

    /// Client: asks the host for `(entity, component)` (component 0: the whole entity),
    /// or renews a lease held. The answer comes as an event:
    /// [`super::SessionEvent::OwnershipChanged`] or
    /// [`super::SessionEvent::OwnershipDenied`].
    pub fn request_ownership(
        &mut self,
        entity: EntityId,
        component: ComponentId,
    ) -> Result<(), SessionError> {
        match &mut self.core {
            Core::Client(client) => Ok(client.request_ownership(entity, component)?),
            Core::Host(_) => Err(SessionError::WrongRole("client")),
        }
    }

    /// Gives up `(entity, component)`: on a client its current state goes to the host
    /// first, then nobody owns it; on the host nobody owns it from now.
    pub fn release_ownership(
        &mut self,
        entity: EntityId,
        component: ComponentId,
    ) -> Result<(), SessionError> {
        match &mut self.core {
            Core::Client(client) => {
                Ok(client.release_ownership(entity, component, Instant::now())?)
            }
            Core::Host(host) => {
                if host.owner_of(entity, component) != Some(host.peer()) {
                    return Err(SessionError::Ownership(
                        crate::proto::OwnershipError::NotHeld { entity, component },
                    ));
                }
                Ok(host.set_owner(entity, component, None)?)
            }
        }
    }

    /// Sets who may take `(entity, component)` and its flags: on the host for anything,
    /// on a client for what it holds.
    pub fn set_ownership_policy(
        &mut self,
        entity: EntityId,
        component: ComponentId,
        policy: Policy,
        flags: u8,
    ) -> Result<(), SessionError> {
        match &mut self.core {
            Core::Client(client) => {
                Ok(client.set_ownership_policy(entity, component, policy, flags)?)
            }
            Core::Host(host) => Ok(host.set_ownership_policy(entity, component, policy, flags)?),
        }
    }

    /// Host: makes `owner` (the host, a connected client, or nobody) the owner of
    /// `(entity, component)`, whatever its policy.
    pub fn set_owner(
        &mut self,
        entity: EntityId,
        component: ComponentId,
        owner: Option<PeerId>,
    ) -> Result<(), SessionError> {
        match &mut self.core {
            Core::Host(host) => Ok(host.set_owner(entity, component, owner)?),
            Core::Client(_) => Err(SessionError::WrongRole("host")),
        }
    }

    /// Host: answers an [`super::SessionEvent::OwnershipRequested`].
    pub fn decide_ownership(
        &mut self,
        request: u64,
        accept: bool,
        reason: &str,
    ) -> Result<(), SessionError> {
        match &mut self.core {
            Core::Host(host) => Ok(host.decide_ownership(request, accept, reason)?),
            Core::Client(_) => Err(SessionError::WrongRole("host")),
        }
    }
}
