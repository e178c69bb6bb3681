//! The dictionaries: those one peer holds, as the other side tracks them, and those this
//! side holds per message kind with their encoders.

use std::collections::BTreeMap;
use std::time::Instant;

use rustc_hash::FxHashSet;

use crate::wire::codec::{CodecError, Dictionary, DictionarySet, ZstdDict};

/// The dictionaries one peer holds, as the other side tracks them.
#[derive(Debug, Default)]
pub(crate) struct PeerDicts {
    /// Host: dictionaries queued to this client on its stream.
    pub(super) sent: FxHashSet<u32>,
    /// Host: dictionaries this client acknowledged.
    pub(super) acked: FxHashSet<u32>,
    /// Client side of a link: every dictionary held is usable (the host made them all).
    pub(super) all: bool,
}

impl PeerDicts {
    /// The link of a client to its host.
    pub(crate) fn to_host() -> Self {
        PeerDicts {
            all: true,
            ..PeerDicts::default()
        }
    }

    /// Whether stream messages to this peer may use dictionary `id`.
    pub(super) fn stream_usable(&self, id: u32) -> bool {
        self.all || self.sent.contains(&id)
    }

    /// Whether datagrams to this peer may use dictionary `id`.
    pub(super) fn datagram_usable(&self, id: u32) -> bool {
        self.all || self.acked.contains(&id)
    }

    /// Host: dictionary `id` was queued to this client.
    pub(crate) fn mark_sent(&mut self, id: u32) {
        self.sent.insert(id);
    }

    /// The client acknowledged `id`.
    pub(crate) fn acknowledge(&mut self, id: u32) {
        if self.sent.contains(&id) {
            self.acked.insert(id);
        }
    }

    /// Whether this peer acknowledged `id`.
    pub(super) fn has_acked(&self, id: u32) -> bool {
        self.all || self.acked.contains(&id)
    }

    /// Forgets `id`; returns whether the peer had been sent it.
    pub(super) fn forget(&mut self, id: u32) -> bool {
        self.acked.remove(&id);
        self.sent.remove(&id)
    }
}

/// One dictionary held: its encoder (built on first use) and when it was last used.
pub(super) struct Held {
    pub(super) dictionary: Dictionary,
    pub(super) encoder: Option<ZstdDict>,
    pub(super) last_used: Option<Instant>,
}

/// The dictionaries of one kind.
#[derive(Default)]
pub(super) struct KindStore {
    pub(super) decode: DictionarySet,
    pub(super) held: BTreeMap<u32, Held>,
}

impl KindStore {
    pub(super) fn insert(&mut self, dictionary: Dictionary) -> Result<(), CodecError> {
        self.decode.insert(dictionary.clone())?;
        self.held.insert(
            dictionary.id,
            Held {
                dictionary,
                encoder: None,
                last_used: None,
            },
        );
        Ok(())
    }

    pub(super) fn remove(&mut self, id: u32) -> bool {
        self.decode.remove(id);
        self.held.remove(&id).is_some()
    }

    pub(super) fn newest(&self, usable: impl Fn(u32) -> bool) -> Option<u32> {
        self.held.keys().rev().copied().find(|&id| usable(id))
    }
}
