//! A session's interest and priority calls, forwarded to its protocol core (see
//! [`crate::interest`] and `proto::host::interest` for the rules).

use super::{Core, Session, SessionError};
use crate::interest::Volume;
use crate::registry::ComponentId;
use crate::world::{EntityId, PeerId};

impl Session {
    fn host_core(&mut self) -> Result<&mut crate::proto::Host, SessionError> {
        match &mut self.core {
            Core::Host(host) => Ok(host),
            Core::Client(_) => Err(SessionError::WrongRole("host")),
        }
    }

    /// Host: places `entity` for interest management (`None`: no position; with no scope
    /// either, every client sees it). Needs [`super::SessionConfig::interest_cell`].
    pub fn set_interest_position(
        &mut self,
        entity: EntityId,
        position: Option<[f32; 3]>,
    ) -> Result<(), SessionError> {
        Ok(self.host_core()?.set_interest_position(entity, position)?)
    }

    /// Host: reads every entity's interest position from `component`'s value (three
    /// little-endian `f32` at byte `offset`) from now on, as values change.
    pub fn set_interest_source(
        &mut self,
        component: ComponentId,
        offset: usize,
    ) -> Result<(), SessionError> {
        Ok(self.host_core()?.set_interest_source(component, offset)?)
    }

    /// Host: sets the scopes `entity` belongs to (a room, a tool, a team): clients
    /// subscribed to one of them see it wherever it is.
    pub fn set_interest_scopes(
        &mut self,
        entity: EntityId,
        scopes: &[u32],
    ) -> Result<(), SessionError> {
        Ok(self.host_core()?.set_interest_scopes(entity, scopes)?)
    }

    /// Host: sets what client `peer` sees (volumes and subscribed scopes), for rules the
    /// host's engine decides.
    pub fn set_client_interest(
        &mut self,
        peer: PeerId,
        volumes: &[Volume],
        scopes: &[u32],
    ) -> Result<(), SessionError> {
        Ok(self
            .host_core()?
            .set_client_interest(peer, volumes, scopes)?)
    }

    /// Client: says what this client wants to see (volumes, usually around the head and
    /// updated every frame, and subscribed scopes); sent to the host at a bounded rate.
    pub fn set_interest(&mut self, volumes: &[Volume], scopes: &[u32]) -> Result<(), SessionError> {
        match &mut self.core {
            Core::Client(client) => Ok(client.set_interest(volumes, scopes)?),
            Core::Host(_) => Err(SessionError::WrongRole("client")),
        }
    }

    /// Sets `entity`'s priority weight (default 1, from 0.01 to 100) among what this peer
    /// sends: when a tick's byte budget does not fit everything, heavier and (on the
    /// host) nearer entities go first.
    pub fn set_priority(&mut self, entity: EntityId, weight: f32) -> Result<(), SessionError> {
        match &mut self.core {
            Core::Host(host) => Ok(host.set_priority(entity, weight)?),
            Core::Client(client) => Ok(client.set_priority(entity, weight)?),
        }
    }

    /// Host: whether client `peer` sees `entity` now (always, without interest
    /// management).
    pub fn sees(&self, peer: PeerId, entity: EntityId) -> bool {
        match &self.core {
            Core::Host(host) => host.sees(peer, entity),
            Core::Client(_) => false,
        }
    }

    /// Host: the state hash client `peer` holds once the network delivers (the hash of
    /// what it sees); compare with the client's [`crate::World::state_hash`].
    pub fn interest_hash(&self, peer: PeerId) -> Option<u64> {
        match &self.core {
            Core::Host(host) => Some(host.interest_hash(peer)),
            Core::Client(_) => None,
        }
    }
}
