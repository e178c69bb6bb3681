//! Admission: whether a join (or resume) request lets its connection in, decided before
//! anything is allocated for the peer. The token is checked first, so nothing (not even
//! the host's component types) is told to a peer without a valid one.

use std::collections::HashSet;
use std::fmt::Write as _;

use rustc_hash::FxHashMap;

use super::room_id::RoomId;
use super::token::{JoinSecret, TokenError, TokenVerifier};
use crate::registry::{ComponentDescriptor, Registry};
use crate::wire::{self, fb, Message, PROTOCOL_REVISION};
use crate::world::PeerId;

/// Why a request was refused: the reason on the wire, and in words.
pub(crate) type Refusal = (fb::RefuseReason, String);

/// What admission knows: the join secret (and its replay cache), the host's registry, who
/// is connected, and the resume tokens of the clients that may come back.
pub(crate) struct Admission {
    verifier: TokenVerifier,
    /// Most clients connected at once (`None`: no bound but the peer ids).
    max_clients: Option<usize>,
    registry_hash: u64,
    /// The host's component types, told to a client with a valid token whose registry
    /// differs.
    pub(crate) types: Vec<ComponentDescriptor>,
    host_peer: PeerId,
    connected: HashSet<PeerId>,
    resumable: FxHashMap<PeerId, [u8; 16]>,
}

/// A request that passed: the peer, whether it resumes a parked state, and whether it
/// needs a snapshot (a new client, or one whose connection dropped before its snapshot
/// arrived whole).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Admitted {
    pub(crate) peer: PeerId,
    pub(crate) resumed: bool,
    pub(crate) needs_snapshot: bool,
}

/// Why a peer (`peer`: "client" or "host") of protocol revision `revision` is refused by
/// this side (`this`), in words that say which one to update.
pub(crate) fn revision_refusal(peer: &str, revision: u16, this: &str) -> String {
    let update = if revision < PROTOCOL_REVISION {
        peer
    } else {
        this
    };
    format!(
        "the {peer} speaks protocol revision {revision}, this {this} revision \
         {PROTOCOL_REVISION}: update the {update}"
    )
}

impl Admission {
    /// Admission to a host of `registry` as `host_peer`: join tokens minted with
    /// `secret`, naming `room` if the host is a room's (see [`TokenVerifier::for_room`]),
    /// at most `max_clients` at once.
    pub(crate) fn new(
        secret: JoinSecret,
        registry: &Registry,
        host_peer: PeerId,
        room: Option<RoomId>,
        max_clients: Option<usize>,
    ) -> Self {
        Admission {
            verifier: match room {
                Some(room) => TokenVerifier::for_room(secret, room),
                None => TokenVerifier::new(secret),
            },
            max_clients,
            registry_hash: registry.hash(),
            types: registry.descriptors().to_vec(),
            host_peer,
            connected: HashSet::new(),
            resumable: FxHashMap::default(),
        }
    }

    /// Decides on `request` (the first message of a connection) at `unix_now` seconds.
    pub(crate) fn check(&mut self, request: &[u8], unix_now: u64) -> Result<Admitted, Refusal> {
        match wire::decode(request) {
            // Before the token: another revision is refused whatever it presents, by name.
            Ok(Message::JoinRequest(request)) if request.revision() != PROTOCOL_REVISION => Err((
                fb::RefuseReason::ProtocolRevision,
                revision_refusal("client", request.revision(), "host"),
            )),
            Ok(Message::JoinRequest(request)) => match request.resume() {
                Some(resume) => self
                    .check_resume(request.peer(), resume.bytes(), request.registry_hash())
                    .map(|peer| Admitted {
                        peer,
                        resumed: true,
                        needs_snapshot: request.snapshot_tick() == 0,
                    }),
                None => self
                    .check_join(request.token(), request.registry_hash(), unix_now)
                    .map(|peer| Admitted {
                        peer,
                        resumed: false,
                        needs_snapshot: true,
                    }),
            },
            _ => Err((
                fb::RefuseReason::Malformed,
                "malformed join request".to_owned(),
            )),
        }
    }

    /// `peer` left: it may resume with `token` (until [`Admission::forget`]).
    pub(crate) fn left(&mut self, peer: PeerId, token: [u8; 16]) {
        self.connected.remove(&peer);
        self.resumable.insert(peer, token);
    }

    /// Whether `peer` may resume with `token` here (a room server asks each room, to
    /// route a resume request, which names no room).
    pub(crate) fn may_resume(&self, peer: PeerId, token: &[u8]) -> bool {
        self.resumable
            .get(&peer)
            .is_some_and(|expected| expected[..] == *token)
    }

    /// `peer` can no longer resume (its grace period ended).
    pub(crate) fn forget(&mut self, peer: PeerId) {
        self.resumable.remove(&peer);
    }

    /// Checks a resume request: the token the host gave `peer` for its parked state, in
    /// constant time, then the registry.
    fn check_resume(
        &mut self,
        peer: PeerId,
        presented: &[u8],
        registry_hash: u64,
    ) -> Result<PeerId, Refusal> {
        let unknown = || {
            (
                fb::RefuseReason::ResumeUnknown,
                format!("resume token of peer {peer} unknown or expired: join with a fresh token"),
            )
        };
        let Some(expected) = self.resumable.get(&peer) else {
            return Err(unknown());
        };
        let differs = presented.len() != expected.len()
            || presented
                .iter()
                .zip(expected)
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                != 0
            || expected.iter().all(|&b| b == 0);
        if differs {
            return Err(unknown());
        }
        if registry_hash != self.registry_hash {
            return Err(self.registry_mismatch(registry_hash));
        }
        if !self.connected.insert(peer) {
            return Err((
                fb::RefuseReason::PeerInUse,
                format!("peer {peer} is connected already"),
            ));
        }
        // One use: the token is spent, a new one comes with the acceptance.
        self.resumable.remove(&peer);
        Ok(peer)
    }

    fn check_join(
        &mut self,
        token: &str,
        registry_hash: u64,
        unix_now: u64,
    ) -> Result<PeerId, Refusal> {
        let claims = self.verifier.verify(token, unix_now).map_err(|e| {
            let reason = match e {
                TokenError::Malformed(_) => fb::RefuseReason::TokenMalformed,
                TokenError::Forged => fb::RefuseReason::TokenForged,
                TokenError::Expired { .. } => fb::RefuseReason::TokenExpired,
                TokenError::WrongRoom { .. } => fb::RefuseReason::WrongRoom,
                _ => fb::RefuseReason::TokenReplayed,
            };
            (reason, e.to_string())
        })?;
        if registry_hash != self.registry_hash {
            return Err(self.registry_mismatch(registry_hash));
        }
        let peer = claims.peer();
        // The top two ids name "the host" and "every peer" (as a message destination) and
        // "nobody" (as an owner): no client may have them.
        if peer >= crate::ownership::NOBODY - 1 {
            return Err((
                fb::RefuseReason::PeerInUse,
                format!("peer {peer} is reserved (ids 65534 and 65535 name no client)"),
            ));
        }
        if let Some(max) = self.max_clients.filter(|&max| self.connected.len() >= max) {
            return Err((
                fb::RefuseReason::RoomFull,
                format!("the room is full: {max} peers, its limit"),
            ));
        }
        if peer == self.host_peer || !self.connected.insert(peer) {
            return Err((
                fb::RefuseReason::PeerInUse,
                format!("peer {peer} is connected already"),
            ));
        }
        Ok(peer)
    }

    /// The refusal of a client whose registry hash differs from the host's; the client
    /// names the differing types from the host's list that comes with it.
    fn registry_mismatch(&self, registry_hash: u64) -> Refusal {
        (
            fb::RefuseReason::RegistryMismatch,
            format!(
                "component registry mismatch: client {registry_hash:#018x}, host {:#018x} (the client was sent the host's {} component types)",
                self.registry_hash,
                self.types.len()
            ),
        )
    }
}

/// Most differences a registry mismatch names; more are counted.
const DIFFERENCES_NAMED: usize = 8;

/// Why `local` (this client's registry) and the host's component types `host` differ, in
/// words: each type missing on one side, or registered with another layout, by name.
pub(crate) fn registry_differences(local: &Registry, host: &[ComponentDescriptor]) -> String {
    let mut differences = Vec::new();
    for theirs in host {
        match local.get(theirs.id) {
            None => differences.push(format!(
                "{:?} ({}) is missing here",
                theirs.name, theirs.layout
            )),
            Some(ours) if ours.name != theirs.name => differences.push(format!(
                "id {} is {:?} here and {:?} on the host",
                theirs.id, ours.name, theirs.name
            )),
            Some(ours) if ours.layout != theirs.layout => differences.push(format!(
                "{:?} is {} here and {} on the host",
                ours.name, ours.layout, theirs.layout
            )),
            Some(_) => {}
        }
    }
    for ours in local.descriptors() {
        if !host.iter().any(|d| d.id == ours.id) {
            differences.push(format!(
                "{:?} ({}) is missing on the host",
                ours.name, ours.layout
            ));
        }
    }
    let mut text = String::from("component registry mismatch: ");
    if differences.is_empty() {
        text.push_str("the host sent the same component types as this client's");
        return text;
    }
    text.push_str(&differences[..differences.len().min(DIFFERENCES_NAMED)].join("; "));
    if differences.len() > DIFFERENCES_NAMED {
        let _ = write!(text, "; and {} more", differences.len() - DIFFERENCES_NAMED);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Layout;

    fn registry(types: &[(&str, Layout)]) -> Registry {
        let mut r = Registry::new();
        for (name, layout) in types {
            r.register(name, *layout).expect("register");
        }
        r
    }

    #[test]
    fn registry_differences_name_each_type_that_differs() {
        let local = registry(&[
            ("acme.Transform", Layout::Fixed(28)),
            ("acme.Color", Layout::Fixed(4)),
            ("acme.Label", Layout::Variable { max: 64 }),
        ]);
        let host = registry(&[
            ("acme.Transform", Layout::Fixed(32)),
            ("acme.Color", Layout::Fixed(4)),
            ("acme.Health", Layout::Fixed(2)),
        ]);
        let text = registry_differences(&local, host.descriptors());
        assert!(text.starts_with("component registry mismatch: "), "{text}");
        assert!(
            text.contains(
                "\"acme.Transform\" is fixed 28 bytes here and fixed 32 bytes on the host"
            ),
            "{text}"
        );
        assert!(
            text.contains("\"acme.Health\" (fixed 2 bytes) is missing here"),
            "{text}"
        );
        assert!(
            text.contains("\"acme.Label\" (variable up to 64 bytes) is missing on the host"),
            "{text}"
        );
        assert!(!text.contains("acme.Color"), "{text}");
        assert!(!text.contains("0x"), "names, not hashes: {text}");
    }

    #[test]
    fn many_differences_are_counted_past_the_first_few() {
        let names: Vec<String> = (0..20).map(|i| format!("t{i}")).collect();
        let types: Vec<(&str, Layout)> = names
            .iter()
            .map(|n| (n.as_str(), Layout::Fixed(1)))
            .collect();
        let text = registry_differences(&registry(&types), &[]);
        assert_eq!(
            text.matches("is missing on the host").count(),
            DIFFERENCES_NAMED
        );
        assert!(text.ends_with("; and 12 more"), "{text}");
        let same = registry_differences(&registry(&types), registry(&types).descriptors());
        assert!(same.contains("same component types"), "{same}");
    }
}
