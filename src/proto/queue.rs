//! The events of a session, in order: the protocol's own, and the replica's, whose bytes
//! stay in the replica's event arena until polled (a client's changes are not copied into
//! an event of their own; a borrowing poll hands them out where they lie).

use std::collections::VecDeque;

use super::events::SessionEvent;
use crate::replica::{Event, Replica};

/// An event of a borrowing poll ([`super::Client::poll_events_with`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventRef<'a> {
    /// A change to the replicated state (clients); its bytes are the replica's own.
    Replica(Event<'a>),
    /// Anything else.
    Session(&'a SessionEvent),
}

#[derive(Debug)]
enum Queued {
    Session(SessionEvent),
    /// The replica's next pending event.
    Replica,
}

/// A session's pending events, and those its last borrowing poll handed out.
#[derive(Debug, Default)]
pub(crate) struct EventQueue {
    queue: VecDeque<Queued>,
    /// How many of `queue` stand for replica events (as many as the replica holds).
    replica_markers: usize,
    /// The session events of the last borrowing poll, held until the next poll.
    polled: Vec<SessionEvent>,
}

impl EventQueue {
    pub(crate) fn push(&mut self, event: SessionEvent) {
        self.queue.push_back(Queued::Session(event));
    }

    /// Notes that `count` new events wait in the replica's queue, after those pushed so far.
    pub(crate) fn replica_events(&mut self, count: usize) {
        self.queue
            .extend(std::iter::repeat_with(|| Queued::Replica).take(count));
        self.replica_markers += count;
    }

    /// Replica events noted and not yet polled.
    pub(crate) fn replica_markers(&self) -> usize {
        self.replica_markers
    }

    /// The oldest event, owned (a replica event's bytes copied).
    pub(crate) fn pop(&mut self, replica: Option<&mut Replica>) -> Option<SessionEvent> {
        match self.queue.pop_front()? {
            Queued::Session(event) => Some(event),
            Queued::Replica => {
                self.replica_markers -= 1;
                let replica = replica?;
                let polled = replica.poll_events(1);
                let e = polled.iter().next()?;
                Some(SessionEvent::Replica {
                    kind: e.kind,
                    entity: e.entity,
                    component: e.component,
                    tick: e.tick,
                    data: e.data.to_vec(),
                })
            }
        }
    }

    /// Hands up to `max` events, oldest first, to `f`, borrowed: replica events from the
    /// replica's arena, the others from this queue. Both stay where they are until the next
    /// poll of either kind.
    pub(crate) fn poll_with(
        &mut self,
        max: usize,
        replica: Option<&mut Replica>,
        mut f: impl FnMut(EventRef<'_>),
    ) -> usize {
        self.polled.clear();
        let n = max.min(self.queue.len());
        let mut order = Vec::with_capacity(n);
        let mut from_replica = 0;
        for queued in self.queue.drain(..n) {
            match queued {
                Queued::Session(event) => {
                    order.push(false);
                    self.polled.push(event);
                }
                Queued::Replica => {
                    order.push(true);
                    from_replica += 1;
                }
            }
        }
        self.replica_markers -= from_replica;
        let batch = replica.map(|r| r.poll_events(from_replica));
        let mut replica_events = batch.iter().flat_map(|b| b.iter());
        let mut session_events = self.polled.iter();
        for is_replica in order {
            let event = if is_replica {
                replica_events.next().map(EventRef::Replica)
            } else {
                session_events.next().map(EventRef::Session)
            };
            if let Some(event) = event {
                f(event);
            }
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Layout;
    use crate::replica::EventKind;
    use crate::world::World;

    /// A replica holding `n` entities' spawn and insert events (2 n events).
    fn replica_with_events(n: usize) -> Replica {
        let mut world = World::default();
        let c = world
            .register("q.Value", Layout::Fixed(4))
            .expect("register");
        for i in 0..n {
            let e = world.spawn().expect("spawn");
            world.set(e, c, &[i as u8; 4]).expect("set");
        }
        let mut replica = Replica::new();
        let delta = world.delta_since(0).expect("delta");
        replica.apply_delta(&delta.encode()).expect("applies");
        replica
    }

    #[test]
    fn borrowed_and_owned_polls_keep_the_order_of_both_kinds() {
        let mut replica = replica_with_events(2);
        let mut queue = EventQueue::default();
        queue.push(SessionEvent::Joined { peer: 3 });
        queue.replica_events(replica.pending_events());
        queue.push(SessionEvent::PeerJoined { peer: 4 });
        assert_eq!(queue.replica_markers(), 4);
        // Borrowed: the session event, then three of the replica's, in order.
        let mut seen = Vec::new();
        let n = queue.poll_with(4, Some(&mut replica), |e| {
            seen.push(match e {
                EventRef::Session(SessionEvent::Joined { .. }) => "joined".to_owned(),
                EventRef::Session(other) => format!("{other:?}"),
                EventRef::Replica(r) => format!("{:?} {}", r.kind, r.data.len()),
            })
        });
        assert_eq!(n, 4);
        assert_eq!(seen[0], "joined");
        assert_eq!(seen.len(), 4);
        assert!(seen[1..]
            .iter()
            .all(|s| s.starts_with("Spawn") || s.starts_with("Insert")));
        // Owned: the last replica event (copied), then the peer's arrival.
        let last = queue.pop(Some(&mut replica));
        assert!(matches!(
            last,
            Some(SessionEvent::Replica {
                kind: EventKind::Insert | EventKind::Spawn,
                ..
            })
        ));
        assert_eq!(
            queue.pop(Some(&mut replica)),
            Some(SessionEvent::PeerJoined { peer: 4 })
        );
        assert_eq!(queue.pop(Some(&mut replica)), None);
        assert_eq!(queue.replica_markers(), 0);
        assert_eq!(replica.pending_events(), 0);
    }
}
