//! The host's application-message calls (see [`crate::proto::messages`]).

use std::time::Instant;

use super::{Host, PeerLink};
use crate::proto::messages::{HostSide, MessageConfig, MessageError, CLOSE_FLOODING};
use crate::proto::Output;
use crate::world::PeerId;

impl Host {
    /// Sends an application message (see [`crate::proto::messages`]) to client `to`, or to every client
    /// ([`messages::PEER_ALL`]), reliable-ordered or unreliable (sent at the next tick).
    pub fn send_message(
        &mut self,
        to: PeerId,
        channel: u32,
        reliable: bool,
        body: &[u8],
        now: Instant,
    ) -> Result<(), MessageError> {
        self.message_side().send(to, channel, reliable, body, now)
    }

    /// Answers [`SessionEvent::MessageRequested`] `request`: delivered when `accept`, else
    /// refused to its sender with `reason`.
    pub fn decide_message(
        &mut self,
        request: u64,
        accept: bool,
        reason: &str,
        now: Instant,
    ) -> Result<(), MessageError> {
        self.message_side().decide(request, accept, reason, now)
    }

    /// The application messages' settings in force.
    pub fn message_config(&self) -> &MessageConfig {
        self.messages.config()
    }

    /// Changes the application messages' settings: the filter and its timeout apply at
    /// once, the limits to each client's next connection.
    pub fn set_message_config(&mut self, config: MessageConfig) {
        self.messages.set_config(config);
    }

    pub(super) fn message_side(&mut self) -> HostSide<'_, PeerLink> {
        HostSide {
            state: &mut self.messages,
            peers: &mut self.peers,
            encoder: &mut self.encoder,
            events: &mut self.events,
            out: &mut self.out,
        }
    }

    /// Disconnects `peer` for flooding when `reason` says so; it may not resume.
    pub(super) fn disconnect_flooder(
        &mut self,
        peer: PeerId,
        now: Instant,
        reason: Option<String>,
    ) {
        let (Some(reason), Some(client)) = (reason, self.peers.get(&peer)) else {
            return;
        };
        let conn = client.link.conn;
        self.out.push_back(Output::Close {
            conn,
            code: CLOSE_FLOODING,
            reason: reason.clone(),
        });
        self.handle_closed(conn, now, reason);
        self.parked.remove(&peer);
        self.admission.forget(peer);
        // Gone for good: what it owned is released (or despawned) now.
        self.depart(peer);
    }
}
