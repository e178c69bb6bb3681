//! Admission on the host: a join or resume request admits its peer (acceptance,
//! dictionaries, the snapshot of what it sees, who owns what, who is here) or refuses it.

use std::net::SocketAddr;
use std::time::Instant;

use rustc_hash::FxHashMap;

use super::{Host, PeerLink};
use crate::ownership::WHOLE_ENTITY;
use crate::proto::admission::Admitted;
use crate::proto::compression::{control_message, message_values};
use crate::proto::events::SessionEvent;
use crate::proto::link::Link;
use crate::proto::ownership::{entity_frame, PeerOwnership};
use crate::proto::poses::PoseLink;
use crate::proto::{ConnId, Output};
use crate::registry::ComponentId;
use crate::wire::codec::MessageKind;
use crate::wire::{fb, Acceptance};
use crate::world::EntityId;

impl Host {
    /// The first reliable message of a new connection, `request` (at most
    /// [`super::MAX_JOIN_REQUEST`] bytes), arrived from `from` at `now` (`unix_now` in
    /// seconds, for the token's expiry): admits the peer or refuses it. Admitted: an
    /// [`Output::Admitted`], then the acceptance, the current dictionaries and the snapshot
    /// (or, resumed, what the client lacks). Refused: the refusal, then an
    /// [`Output::Close`], and a [`SessionEvent::JoinRefused`]; nothing is kept of it.
    pub fn handle_join(
        &mut self,
        conn: ConnId,
        from: Option<SocketAddr>,
        now: Instant,
        unix_now: u64,
        request: &[u8],
    ) {
        match self.admission.check(request, unix_now) {
            Ok(admitted) => {
                self.join_interest(admitted.peer, request);
                self.admit(conn, admitted, now);
            }
            Err((reason, message)) => {
                self.joins_refused += 1;
                // Only a peer whose token checked out gets this far with a registry
                // mismatch: it is told the host's types, to name what differs.
                let types = match reason {
                    fb::RefuseReason::RegistryMismatch => &self.admission.types[..],
                    _ => &[],
                };
                let refusal = self
                    .encoder
                    .join_refused_with_types(reason, &message, types);
                crate::proto::push_refusal(&mut self.out, conn, refusal, message.clone());
                self.events.push(SessionEvent::JoinRefused {
                    from,
                    reason: message,
                });
            }
        }
    }

    fn admit(&mut self, conn: ConnId, admitted: Admitted, now: Instant) {
        let Admitted {
            peer,
            resumed,
            needs_snapshot,
        } = admitted;
        self.out.push_back(Output::Admitted {
            conn,
            read_bound: self.stream_bound,
            paced: true,
        });
        let volume = self.config.poses.volume;
        let mut link = Link::new(conn, peer, PoseLink::new(peer, volume, false, now));
        let resume = self.rng.token();
        let next_counter = self.next_counters.get(&peer).copied().unwrap_or(1);
        let mut client = match self.parked.remove(&peer) {
            // Resumed: the parked outbox holds exactly what the client lacks since its
            // snapshot (its sequence numbers go on: the client remembers the old ones).
            Some(parked) if resumed => {
                let mut client = parked.client;
                client.link.outbox.forget_in_flight();
                link.outbox = std::mem::take(&mut client.link.outbox);
                link.received = std::mem::take(&mut client.link.received);
                client.link = link;
                client
            }
            _ => PeerLink {
                link,
                client_ticks: FxHashMap::default(),
                despawned_at: FxHashMap::default(),
                resume,
                ownership: PeerOwnership::default(),
            },
        };
        client.ownership.last_heard = Some(now);
        client.link.outbox.lanes = true;
        if self.config.value_baselines {
            client.link.outbox.baselines = true;
        }
        // A new client, or one that lost its connection before its snapshot arrived whole,
        // gets one now.
        let max_chunk = self.config.max_chunk_bytes;
        let snapshot = match &mut self.interest {
            None => needs_snapshot.then(|| self.world.snapshot(max_chunk)),
            Some(interest) => {
                needs_snapshot.then(|| {
                    // Only what it sees (and owns), evaluated now.
                    let owners = &self.ownership.owners;
                    let relevant = interest.admit(peer);
                    let sees = |e: EntityId| {
                        relevant.contains(&e) || owners.owner_of(e, WHOLE_ENTITY) == Some(peer)
                    };
                    // A resumed client's outbox may hold what it no longer sees.
                    client.link.outbox.forget_keys(|(_, e)| !sees(e));
                    self.world.snapshot_where(max_chunk, sees)
                })
            }
        };
        // The acceptance (bare), the newest dictionary of each kind, then the snapshot
        // chunks (which may use them: the channel keeps the order).
        let link = &mut client.link;
        let accepted = self.encoder.join_accepted(&Acceptance {
            peer,
            host_peer: self.host_peer,
            tick: snapshot.as_ref().map_or(self.world.tick(), |s| s.tick),
            snapshot_chunks: snapshot.as_ref().map_or(0, |s| s.chunks.len() as u32),
            next_counter,
            resume: &resume,
            resumed,
            max_chunk_bytes: u32::try_from(self.config.max_chunk_bytes).unwrap_or(u32::MAX),
            partial: self.interest.is_some(),
        });
        link.send_reliable(accepted, &mut self.out);
        for message in self.compression.welcome(&mut link.dicts, &mut self.encoder) {
            link.send_reliable(message, &mut self.out);
        }
        if let Some(snapshot) = &snapshot {
            link.snapshot_tick = snapshot.tick;
        }
        for chunk in snapshot.map(|s| s.chunks).unwrap_or_default() {
            link.diagnostics.snapshot_bytes += chunk.bytes.len() as u64;
            let values = message_values(&chunk.bytes);
            link.queue(
                MessageKind::SnapshotChunk,
                &chunk.bytes,
                &values,
                &mut self.compression,
                now,
                &mut self.out,
            );
        }
        // Then who owns what (after the state, in the same order as later changes). A
        // resumed client may have missed a grant or a release it sent may have been lost
        // with its connection: the host's state of what it holds goes first, for it to
        // take as it takes those records.
        let lease_ms = u32::try_from(self.ownership.lease.as_millis()).unwrap_or(u32::MAX);
        let first = client.ownership.seq + 1;
        if resumed {
            // Each numbered by the message that granted it: the client knows which it
            // applied.
            let held: Vec<(EntityId, ComponentId, u64)> = self
                .ownership
                .owners
                .iter()
                .filter(|(_, _, r)| r.owner == Some(peer))
                .map(|(e, c, _)| (e, c, self.ownership.granted_seq(e, c)))
                .filter(|&(_, _, granted)| granted > 0)
                .collect();
            for (entity, component, granted) in held {
                let frame =
                    entity_frame(&self.world, entity, component, granted, &mut self.encoder);
                if let Some(frame) = frame {
                    client
                        .link
                        .queue_frame(&frame, &mut self.compression, now, &mut self.out);
                }
            }
        }
        let table = self
            .ownership
            .full_table(first, lease_ms, &mut self.encoder);
        client.ownership.seq += table.len() as u64;
        for message in table {
            client
                .link
                .send_reliable(control_message(&message), &mut self.out);
        }
        // Resumed: notices of what left its interest may have been lost with the old
        // connection, and more left while it was away. It is told all it sees (as of the
        // last tick sent, so that what enters at the coming tick is not held back), after
        // who owns what (it may not hold what it thought it held).
        if let (Some(interest), true) = (&self.interest, resumed) {
            let owners = &self.ownership.owners;
            let mut seen: Vec<u64> = interest.relevant(peer).map(|e| e.0).collect();
            seen.extend(
                owners
                    .iter()
                    .filter(|&(_, c, r)| c == WHOLE_ENTITY && r.owner == Some(peer))
                    .map(|(e, _, _)| e.0),
            );
            seen.sort_unstable();
            seen.dedup();
            let notice = control_message(&self.encoder.left(self.marked, &seen, true));
            client.link.send_reliable(notice, &mut self.out);
        }
        client.resume = resume;
        // The newcomer learns who is here; the others learn of it.
        let joined = control_message(&self.encoder.peer_joined(peer));
        for (&other, connected) in &mut self.peers {
            connected.link.send_reliable(joined.clone(), &mut self.out);
            let present = control_message(&self.encoder.peer_joined(other));
            client.link.send_reliable(present, &mut self.out);
        }
        self.poses.welcome(peer);
        self.conns.insert(conn, peer);
        self.peers.insert(peer, client);
        self.events.push(SessionEvent::PeerJoined { peer });
    }
}
