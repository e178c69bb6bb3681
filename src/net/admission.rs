//! Admission before a peer is known: how many connections may wait for it at once (the
//! protocol's own checks, in [`crate::proto`], come once the join request is read).
//!
//! Until a connection's join request has been read and checked, the host knows nothing of
//! the peer, so whatever that connection costs, anyone can make it cost many times over.
//! The transport limits of such a connection are small (see
//! [`super::tls::host_transport_config`]); this module bounds how many there are. A
//! connection attempt takes a [`Ticket`] from the [`Gate`] and holds it until the host
//! admits or refuses the peer (or its deadline passes). When the gate is full, an attempt
//! whose address QUIC has not validated yet is asked to retry with address validation (a
//! stateless round trip that proves the address, which a flood of forged source addresses
//! cannot), and one already validated is refused. One address (an IPv6 /64) may hold at
//! most half the tickets, so a flood from one place leaves room for everyone else.

use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use rustc_hash::FxHashMap;

/// What the host does with a connection attempt.
pub(crate) enum Verdict {
    /// Go ahead: handshake and join request, holding the ticket until admission ends.
    Admit(Ticket),
    /// Full: ask the client to retry with address validation.
    Retry,
    /// Full, and the address was validated already: refuse.
    Refuse,
}

/// Bounds the connections awaiting admission, in all and per address.
pub(crate) struct Gate {
    limit: usize,
    per_address: usize,
    state: Mutex<GateState>,
}

#[derive(Default)]
struct GateState {
    total: usize,
    by_address: FxHashMap<IpAddr, usize>,
}

/// A place among the connections awaiting admission, given back when dropped.
pub(crate) struct Ticket {
    gate: Arc<Gate>,
    address: IpAddr,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut state = self.gate.lock();
        state.total = state.total.saturating_sub(1);
        if let Some(n) = state.by_address.get_mut(&self.address) {
            *n -= 1;
            if *n == 0 {
                state.by_address.remove(&self.address);
            }
        }
    }
}

/// The address a flood is counted by: IPv4 as is (an IPv4-mapped IPv6 address as its
/// IPv4 address), IPv6 by its /64, which one subscriber usually holds whole.
fn source(address: IpAddr) -> IpAddr {
    match address.to_canonical() {
        IpAddr::V6(v6) => {
            let prefix = u128::from(v6) & !u128::from(u64::MAX);
            IpAddr::V6(prefix.into())
        }
        v4 => v4,
    }
}

impl Gate {
    /// A gate for at most `limit` connections awaiting admission (at least 1), at most
    /// half of them (at least 1) from one address.
    pub(crate) fn new(limit: usize) -> Arc<Gate> {
        let limit = limit.max(1);
        Arc::new(Gate {
            limit,
            per_address: (limit / 2).max(1),
            state: Mutex::new(GateState::default()),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, GateState> {
        // The counts stay consistent whatever panicked: each update is one statement.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Decides on a connection attempt from `address`; `validated` says whether QUIC has
    /// validated that address (a retry came back).
    pub(crate) fn enter(self: &Arc<Self>, address: IpAddr, validated: bool) -> Verdict {
        let address = source(address);
        let mut state = self.lock();
        let from_there = state.by_address.get(&address).copied().unwrap_or(0);
        if state.total < self.limit && from_there < self.per_address {
            state.total += 1;
            *state.by_address.entry(address).or_insert(0) += 1;
            return Verdict::Admit(Ticket {
                gate: Arc::clone(self),
                address,
            });
        }
        if validated {
            Verdict::Refuse
        } else {
            Verdict::Retry
        }
    }

    /// Connections awaiting admission now.
    #[cfg(test)]
    fn pending(&self) -> usize {
        self.lock().total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("address")
    }

    #[test]
    fn the_gate_bounds_pending_connections_in_all_and_per_address() {
        let gate = Gate::new(4);
        let admit = |address: &str, validated: bool| match gate.enter(ip(address), validated) {
            Verdict::Admit(ticket) => Some(ticket),
            _ => None,
        };
        // Half the places per address: the third from 10.0.0.1 is asked to retry, then
        // refused once its address is validated.
        let a1 = admit("10.0.0.1", false).expect("first");
        let a2 = admit("10.0.0.1", false).expect("second");
        assert!(matches!(gate.enter(ip("10.0.0.1"), false), Verdict::Retry));
        assert!(matches!(gate.enter(ip("10.0.0.1"), true), Verdict::Refuse));
        // Another address still gets in, up to the total.
        let b1 = admit("10.0.0.2", true).expect("other address");
        let b2 = admit("::ffff:10.0.0.3", false).expect("mapped address");
        assert_eq!(gate.pending(), 4);
        assert!(matches!(gate.enter(ip("10.0.0.4"), false), Verdict::Retry));
        assert!(matches!(gate.enter(ip("10.0.0.4"), true), Verdict::Refuse));
        // Tickets come back when dropped.
        drop(a1);
        assert_eq!(gate.pending(), 3);
        let a3 = admit("10.0.0.1", true).expect("a place came back");
        drop((a2, a3, b1, b2));
        assert_eq!(gate.pending(), 0);
        assert!(gate.lock().by_address.is_empty());
    }

    #[test]
    fn ipv6_addresses_count_by_their_64_bit_prefix() {
        let gate = Gate::new(4);
        let hold: Vec<Ticket> = ["2001:db8::1", "2001:db8::ffff:2"]
            .iter()
            .filter_map(|a| match gate.enter(ip(a), false) {
                Verdict::Admit(t) => Some(t),
                _ => None,
            })
            .collect();
        assert_eq!(hold.len(), 2);
        // A third address of the same /64 is one place too many; another /64 is not.
        assert!(matches!(
            gate.enter(ip("2001:db8::3"), false),
            Verdict::Retry
        ));
        assert!(matches!(
            gate.enter(ip("2001:db8:0:1::1"), false),
            Verdict::Admit(_)
        ));
        assert_eq!(source(ip("::ffff:192.0.2.7")), ip("192.0.2.7"));
    }

    #[test]
    fn a_gate_of_one_still_admits() {
        let gate = Gate::new(0);
        let ticket = gate.enter(ip("127.0.0.1"), false);
        assert!(matches!(ticket, Verdict::Admit(_)));
        assert!(matches!(gate.enter(ip("127.0.0.1"), true), Verdict::Refuse));
    }
}
