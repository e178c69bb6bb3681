//! A session's application-message calls, forwarded to its protocol core (see
//! [`crate::proto::messages`]).

use std::time::Instant;

use super::{Core, Session, SessionError};
use crate::proto::messages::{MessageConfig, MessageError};
use crate::world::PeerId;

#[cfg(doc)]
use super::SessionEvent;

impl Session {
    /// Sends an application message (see [`crate::proto::messages`]): from a client to the
    /// host ([`crate::proto::PEER_HOST`]), one peer or every other one
    /// ([`crate::proto::PEER_ALL`]); from the host to one client or all. Reliable ones go
    /// at once, unreliable ones at the next tick.
    pub fn send_message(
        &mut self,
        to: PeerId,
        channel: u32,
        reliable: bool,
        body: &[u8],
    ) -> Result<(), MessageError> {
        match &mut self.core {
            Core::Host(host) => host.send_message(to, channel, reliable, body, Instant::now()),
            Core::Client(client) => client.send_message(to, channel, reliable, body),
        }
    }

    /// Host: answers a [`SessionEvent::MessageRequested`] (accept, or refuse with
    /// `reason`).
    pub fn decide_message(
        &mut self,
        request: u64,
        accept: bool,
        reason: &str,
    ) -> Result<(), MessageError> {
        match &mut self.core {
            Core::Host(host) => host.decide_message(request, accept, reason, Instant::now()),
            Core::Client(_) => Err(MessageError::NotHost),
        }
    }

    /// Host: the application messages' settings in force.
    pub fn message_config(&self) -> Result<MessageConfig, SessionError> {
        match &self.core {
            Core::Host(host) => Ok(*host.message_config()),
            Core::Client(_) => Err(SessionError::WrongRole("host")),
        }
    }

    /// Host: changes the application messages' settings (see
    /// [`crate::proto::Host::set_message_config`]).
    pub fn set_message_config(&mut self, config: MessageConfig) -> Result<(), SessionError> {
        match &mut self.core {
            Core::Host(host) => {
                host.set_message_config(config);
                Ok(())
            }
            Core::Client(_) => Err(SessionError::WrongRole("host")),
        }
    }
}
