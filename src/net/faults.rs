//! Deterministic fault injection at the UDP socket, for loopback tests and `theta demo --loss P`.
//!
//! [`FaultySocket`] wraps a quinn [`AsyncUdpSocket`] and applies faults to every **outgoing**
//! datagram in [`AsyncUdpSocket::try_send`]: loss, duplication, corruption (a few flipped bits,
//! never a changed length), reordering (a datagram is held back behind the next few) and delay
//! (`delay` ± `jitter`). Incoming datagrams pass through untouched; put a fault socket on each
//! side whose outgoing traffic should suffer.
//!
//! Decisions come from a small SplitMix64 generator seeded with [`FaultConfig::seed`], so the
//! same seed and the same sequence of datagrams give the same decisions (what QUIC sends, and
//! when, still depends on timing; the decisions per datagram do not).
//!
//! Held-back datagrams live in a queue owned by the socket and are sent either inline by a
//! later `try_send` (reordering: "behind the next N datagrams") or by a tokio task that sleeps
//! until the earliest due time, so they go out even when no further traffic occurs.
//!
//! A [`FaultControl`] is a cheap, cloneable handle shared with the sockets: tests run with
//! faults for a while, then [`FaultControl::clear`] them and check convergence; the handle
//! also exposes [`FaultStats`] counters.

use std::{
    borrow::Cow,
    fmt,
    future::poll_fn,
    io::{self, IoSliceMut},
    net::{IpAddr, SocketAddr},
    pin::Pin,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex, MutexGuard, PoisonError,
    },
    task::{Context, Poll},
    time::Duration,
};

use quinn::udp::{EcnCodepoint, RecvMeta, Transmit};
use quinn::{AsyncUdpSocket, EndpointConfig, Runtime, TokioRuntime, UdpPoller};
use tokio::{sync::Notify, time::Instant};

/// Largest accepted [`FaultConfig::delay`] and [`FaultConfig::jitter`].
pub const MAX_FAULT_DELAY: Duration = Duration::from_secs(60);

/// A reordered datagram is held back behind 1..=`REORDER_MAX_BEHIND` later datagrams.
const REORDER_MAX_BEHIND: u64 = 3;

/// A reordered datagram is sent after this long (on top of its delay) even when fewer than
/// its count of later datagrams went out, so that it is never stuck when traffic stops.
const REORDER_FALLBACK: Duration = Duration::from_millis(20);

/// A corrupted datagram gets 1..=`MAX_CORRUPT_BITS` distinct bits flipped.
const MAX_CORRUPT_BITS: u64 = 3;

/// What to do to outgoing datagrams. `Default` is "no faults".
///
/// Probabilities are per datagram and independent; they must lie in `0.0..=1.0`. When a
/// datagram is both reordered and delayed, it waits for its delay and for its turn behind
/// later datagrams.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FaultConfig {
    /// Seed of the decision generator; the same seed and datagram sequence give the same faults.
    pub seed: u64,
    /// Probability that a datagram is dropped.
    pub loss: f64,
    /// Probability that a datagram is sent twice.
    pub duplicate: f64,
    /// Probability that a datagram is held back behind the next 1 to 3 datagrams.
    pub reorder: f64,
    /// Probability that 1 to 3 bits of a datagram's payload are flipped (its length never changes).
    pub corrupt: f64,
    /// Base delay applied to every datagram (zero: no delay).
    pub delay: Duration,
    /// Each datagram's delay is drawn uniformly from `delay - jitter ..= delay + jitter`
    /// (clamped at zero); a jitter larger than the gap between datagrams reorders them.
    pub jitter: Duration,
}

impl Default for FaultConfig {
    fn default() -> Self {
        FaultConfig {
            seed: 0,
            loss: 0.0,
            duplicate: 0.0,
            reorder: 0.0,
            corrupt: 0.0,
            delay: Duration::ZERO,
            jitter: Duration::ZERO,
        }
    }
}

impl FaultConfig {
    /// Loss only, with probability `loss` (the `theta demo --loss P` configuration).
    pub fn with_loss(seed: u64, loss: f64) -> Self {
        FaultConfig {
            seed,
            loss,
            ..FaultConfig::default()
        }
    }

    /// Checks that every probability is a finite number in `0.0..=1.0` and that `delay` and
    /// `jitter` are at most [`MAX_FAULT_DELAY`]; the error names the offending field.
    pub fn validate(&self) -> Result<(), String> {
        for (name, p) in [
            ("loss", self.loss),
            ("duplicate", self.duplicate),
            ("reorder", self.reorder),
            ("corrupt", self.corrupt),
        ] {
            if !(0.0..=1.0).contains(&p) {
                return Err(format!(
                    "fault probability `{name}` must be within 0..=1, got {p}"
                ));
            }
        }
        for (name, d) in [("delay", self.delay), ("jitter", self.jitter)] {
            if d > MAX_FAULT_DELAY {
                return Err(format!(
                    "fault `{name}` must be at most {MAX_FAULT_DELAY:?}, got {d:?}"
                ));
            }
        }
        Ok(())
    }

    /// True when this configuration changes nothing (all probabilities, delay and jitter zero).
    pub fn is_noop(&self) -> bool {
        self.loss == 0.0
            && self.duplicate == 0.0
            && self.reorder == 0.0
            && self.corrupt == 0.0
            && self.delay.is_zero()
            && self.jitter.is_zero()
    }
}

/// Counters of what the fault sockets sharing one [`FaultControl`] did, summed over sockets.
///
/// Every field but `pending` counts since creation or [`FaultControl::reset_stats`]. When no
/// send failed (`errors == 0`): `sent + pending == offered - dropped + duplicated`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FaultStats {
    /// Datagrams quinn handed to the sockets (a GSO transmit counts once per segment).
    pub offered: u64,
    /// Datagrams written to the underlying sockets, duplicates and late ones included.
    pub sent: u64,
    /// Datagrams dropped on purpose (loss).
    pub dropped: u64,
    /// Datagrams sent an extra time.
    pub duplicated: u64,
    /// Datagrams whose payload had bits flipped.
    pub corrupted: u64,
    /// Datagrams held back for `delay` ± `jitter` (not counting reordered ones).
    pub delayed: u64,
    /// Datagrams held back behind later ones (reordering).
    pub reordered: u64,
    /// Datagrams the underlying socket refused with an error other than `WouldBlock`, or that
    /// were still waiting when their socket was dropped; they are lost.
    pub errors: u64,
    /// Gauge, not a counter: datagrams currently held back and not yet written.
    pub pending: u64,
}

#[derive(Debug, Default)]
struct Counters {
    offered: AtomicU64,
    sent: AtomicU64,
    dropped: AtomicU64,
    duplicated: AtomicU64,
    corrupted: AtomicU64,
    delayed: AtomicU64,
    reordered: AtomicU64,
    errors: AtomicU64,
    pending: AtomicU64,
}

fn bump(counter: &AtomicU64, by: u64) {
    counter.fetch_add(by, Ordering::Relaxed);
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[derive(Debug, Default)]
struct ControlState {
    config: Option<FaultConfig>,
    /// Bumped by every `set`/`clear`, so that sockets reseed their generator.
    generation: u64,
}

#[derive(Debug, Default)]
struct ControlInner {
    state: Mutex<ControlState>,
    counters: Counters,
    /// Index handed to the next socket attached to this control (decorrelates their streams).
    next_stream: AtomicU64,
}

/// Shared, thread-safe switch for the fault sockets built with it: change the configuration
/// at run time, turn faults off, read the counters. Cloning gives another handle to the same
/// switch.
///
/// Each socket attached to a control draws from its own generator: the first socket's stream
/// is seeded with [`FaultConfig::seed`] itself, the k-th with a mix of the seed and k, and every
/// [`set`](Self::set) restarts all of them from the (new) seed.
#[derive(Debug, Clone, Default)]
pub struct FaultControl {
    inner: Arc<ControlInner>,
}

impl FaultControl {
    /// A control with faults off.
    pub fn new() -> Self {
        FaultControl::default()
    }

    /// A control starting with `config`, or the [`FaultConfig::validate`] error.
    pub fn with_config(config: FaultConfig) -> Result<Self, String> {
        let control = FaultControl::new();
        control.set(config)?;
        Ok(control)
    }

    /// Replaces the configuration (after validating it) and reseeds every attached socket's
    /// generator from `config.seed`. Datagrams already held back keep their schedule.
    pub fn set(&self, config: FaultConfig) -> Result<(), String> {
        config.validate()?;
        let mut state = lock(&self.inner.state);
        state.config = Some(config);
        state.generation += 1;
        Ok(())
    }

    /// Turns faults off. Datagrams already held back are still sent on their schedule.
    pub fn clear(&self) {
        let mut state = lock(&self.inner.state);
        state.config = None;
        state.generation += 1;
    }

    /// The current configuration, `None` when faults are off.
    pub fn config(&self) -> Option<FaultConfig> {
        lock(&self.inner.state).config
    }

    /// True when a configuration that changes something is set.
    pub fn is_active(&self) -> bool {
        self.config().is_some_and(|c| !c.is_noop())
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> FaultStats {
        let c = &self.inner.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        FaultStats {
            offered: get(&c.offered),
            sent: get(&c.sent),
            dropped: get(&c.dropped),
            duplicated: get(&c.duplicated),
            corrupted: get(&c.corrupted),
            delayed: get(&c.delayed),
            reordered: get(&c.reordered),
            errors: get(&c.errors),
            pending: get(&c.pending),
        }
    }

    /// Sets every counter back to zero, except the `pending` gauge.
    pub fn reset_stats(&self) {
        let c = &self.inner.counters;
        for a in [
            &c.offered,
            &c.sent,
            &c.dropped,
            &c.duplicated,
            &c.corrupted,
            &c.delayed,
            &c.reordered,
            &c.errors,
        ] {
            a.store(0, Ordering::Relaxed);
        }
    }

    fn snapshot(&self) -> (Option<FaultConfig>, u64) {
        let state = lock(&self.inner.state);
        (state.config, state.generation)
    }

    fn counters(&self) -> &Counters {
        &self.inner.counters
    }
}

/// SplitMix64: tiny, fast, good enough for fault decisions, and fully determined by its seed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// A generator seeded with `seed`.
    pub(crate) fn new(seed: u64) -> Self {
        SplitMix64 { state: seed }
    }

    /// The generator of the `stream`-th socket for `seed` (stream 0 is `new(seed)`).
    fn for_stream(seed: u64, stream: u64) -> Self {
        SplitMix64::new(seed ^ stream.wrapping_mul(0xD1B5_4A32_D192_ED03))
    }

    fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in `0..n` (`n > 0`), by multiply-high.
    fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }
}

/// What happens to one outgoing datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FaultDecision {
    /// Drop it (the other fields are then empty).
    pub(crate) drop: bool,
    /// Send it twice.
    pub(crate) duplicate: bool,
    /// Distinct bit indices to flip (`index / 8` is the byte, `index % 8` the bit).
    pub(crate) corrupt_bits: Vec<usize>,
    /// Hold it back behind this many later datagrams (0: not reordered).
    pub(crate) reorder_behind: u32,
    /// Hold it back this long (zero: no delay).
    pub(crate) delay: Duration,
}

/// Decides the fate of one datagram of `len` bytes. Pure: the result depends only on the
/// generator state, `config` and `len`; the generator advances by a fixed number of draws
/// plus one per corrupted bit.
pub(crate) fn decide(rng: &mut SplitMix64, config: &FaultConfig, len: usize) -> FaultDecision {
    let u_loss = rng.next_f64();
    let u_duplicate = rng.next_f64();
    let u_corrupt = rng.next_f64();
    let u_reorder = rng.next_f64();
    let behind = rng.below(REORDER_MAX_BEHIND) + 1;
    let jitter_nanos = u64::try_from(config.jitter.as_nanos()).unwrap_or(u64::MAX / 4);
    let jitter_draw = rng.below(jitter_nanos.saturating_mul(2).saturating_add(1));

    if u_loss < config.loss {
        return FaultDecision {
            drop: true,
            duplicate: false,
            corrupt_bits: Vec::new(),
            reorder_behind: 0,
            delay: Duration::ZERO,
        };
    }

    let mut corrupt_bits = Vec::new();
    if u_corrupt < config.corrupt && len > 0 {
        let bits = len.saturating_mul(8);
        let count = (rng.below(MAX_CORRUPT_BITS) + 1).min(bits as u64) as usize;
        while corrupt_bits.len() < count {
            let bit = rng.below(bits as u64) as usize;
            if !corrupt_bits.contains(&bit) {
                corrupt_bits.push(bit);
            }
        }
    }

    // delay - jitter + draw, with draw uniform in 0..=2*jitter, clamped at zero.
    let base = u64::try_from(config.delay.as_nanos()).unwrap_or(u64::MAX / 4);
    let delay_nanos = (base.saturating_add(jitter_draw)).saturating_sub(jitter_nanos);

    FaultDecision {
        drop: false,
        duplicate: u_duplicate < config.duplicate,
        corrupt_bits,
        reorder_behind: if u_reorder < config.reorder {
            behind as u32
        } else {
            0
        },
        delay: Duration::from_nanos(delay_nanos),
    }
}

/// The decisions for a sequence of datagrams of the given lengths, from `config.seed`
/// (what the first socket attached to a control decides after `set(config)`).
#[cfg_attr(not(test), allow(dead_code))] // for tests and tools that replay a seed
pub(crate) fn fault_decisions(config: &FaultConfig, lens: &[usize]) -> Vec<FaultDecision> {
    let mut rng = SplitMix64::new(config.seed);
    lens.iter()
        .map(|&len| decide(&mut rng, config, len))
        .collect()
}

/// Flips the given bits of `payload` (bit indices beyond its end are ignored).
fn flip_bits(payload: &mut [u8], bits: &[usize]) {
    for &bit in bits {
        if let Some(byte) = payload.get_mut(bit / 8) {
            *byte ^= 1 << (bit % 8);
        }
    }
}

/// A datagram held back by the fault socket.
#[derive(Debug)]
struct Held {
    /// Sent by the background task at this instant at the latest.
    due: Instant,
    /// `Some(n)`: reordered, released inline once `n` more datagrams went out.
    behind: Option<u32>,
    /// Whether it was held for reordering (its own sending does not count down others).
    reordered: bool,
    destination: SocketAddr,
    ecn: Option<EcnCodepoint>,
    src_ip: Option<IpAddr>,
    payload: Vec<u8>,
}

#[derive(Debug)]
struct SocketState {
    rng: SplitMix64,
    /// Control generation the generator was seeded for.
    generation: Option<u64>,
    held: Vec<Held>,
    /// Set when the socket is dropped: the task flushes what it can and exits.
    closed: bool,
}

#[derive(Debug)]
struct Shared {
    inner: Arc<dyn AsyncUdpSocket>,
    control: FaultControl,
    stream: u64,
    state: Mutex<SocketState>,
    /// Wakes the sender task when the queue changed or the socket was dropped.
    wake: Notify,
}

/// Sends one datagram on `inner`.
fn send_one(
    inner: &dyn AsyncUdpSocket,
    destination: SocketAddr,
    ecn: Option<EcnCodepoint>,
    src_ip: Option<IpAddr>,
    payload: &[u8],
) -> io::Result<()> {
    inner.try_send(&Transmit {
        destination,
        ecn,
        contents: payload,
        segment_size: None,
        src_ip,
    })
}

fn is_would_block(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::WouldBlock
}

impl Shared {
    /// Accounts for a datagram leaving the held queue (sent, failed or abandoned).
    fn release(&self) {
        self.control
            .counters()
            .pending
            .fetch_sub(1, Ordering::Relaxed);
    }

    /// Queues a datagram; the caller wakes the task.
    fn hold(&self, st: &mut SocketState, held: Held) {
        bump(&self.control.counters().pending, 1);
        st.held.push(held);
    }

    /// Called after a datagram that was not itself reordered went out: counts down the
    /// reordered datagrams and sends those whose turn came. Returns whether the task must
    /// be woken (a release hit `WouldBlock` and was handed to the task).
    fn count_down(&self, st: &mut SocketState) -> bool {
        let counters = self.control.counters();
        let mut wake = false;
        let mut i = 0;
        while i < st.held.len() {
            let ready = match &mut st.held[i].behind {
                Some(n) => {
                    *n = n.saturating_sub(1);
                    *n == 0
                }
                None => false,
            };
            if !ready {
                i += 1;
                continue;
            }
            let h = &mut st.held[i];
            match send_one(&*self.inner, h.destination, h.ecn, h.src_ip, &h.payload) {
                Err(e) if is_would_block(&e) => {
                    // Let the task retry once the socket is writable.
                    h.behind = None;
                    h.due = Instant::now();
                    wake = true;
                    i += 1;
                }
                result => {
                    if result.is_ok() {
                        bump(&counters.sent, 1);
                    } else {
                        bump(&counters.errors, 1);
                    }
                    st.held.remove(i);
                    self.release();
                }
            }
        }
        wake
    }

    /// The `try_send` of the wrapper, for one datagram (one GSO segment).
    ///
    /// Returns `Err(WouldBlock)` only when nothing was done for this datagram (no counter,
    /// no generator draw kept), so quinn can retry it.
    fn send_datagram(
        &self,
        st: &mut SocketState,
        config: Option<&FaultConfig>,
        transmit: &Transmit<'_>,
        payload: &[u8],
        first: bool,
        wake: &mut bool,
    ) -> io::Result<()> {
        let counters = self.control.counters();
        let (dest, ecn, src) = (transmit.destination, transmit.ecn, transmit.src_ip);
        let now = Instant::now();

        let Some(config) = config else {
            match send_one(&*self.inner, dest, ecn, src, payload) {
                Ok(()) => {
                    bump(&counters.sent, 1);
                    *wake |= self.count_down(st);
                }
                Err(e) if first => return Err(e),
                Err(e) if is_would_block(&e) => {
                    let held = Held {
                        due: now,
                        behind: None,
                        reordered: false,
                        destination: dest,
                        ecn,
                        src_ip: src,
                        payload: payload.to_vec(),
                    };
                    self.hold(st, held);
                    *wake = true;
                }
                Err(_) => bump(&counters.errors, 1),
            }
            bump(&counters.offered, 1);
            return Ok(());
        };

        let rng_before = st.rng;
        let decision = decide(&mut st.rng, config, payload.len());
        if decision.drop {
            bump(&counters.offered, 1);
            bump(&counters.dropped, 1);
            return Ok(());
        }
        let payload: Cow<'_, [u8]> = if decision.corrupt_bits.is_empty() {
            Cow::Borrowed(payload)
        } else {
            let mut copy = payload.to_vec();
            flip_bits(&mut copy, &decision.corrupt_bits);
            Cow::Owned(copy)
        };
        let copies = if decision.duplicate { 2 } else { 1 };

        if decision.reorder_behind > 0 || !decision.delay.is_zero() {
            let reordered = decision.reorder_behind > 0;
            let mut due = now + decision.delay;
            if reordered {
                due += REORDER_FALLBACK;
                bump(&counters.reordered, 1);
            } else {
                bump(&counters.delayed, 1);
            }
            for _ in 0..copies {
                let held = Held {
                    due,
                    behind: reordered.then_some(decision.reorder_behind),
                    reordered,
                    destination: dest,
                    ecn,
                    src_ip: src,
                    payload: payload.to_vec(),
                };
                self.hold(st, held);
            }
            *wake = true;
        } else {
            for copy in 0..copies {
                match send_one(&*self.inner, dest, ecn, src, &payload) {
                    Ok(()) => {
                        bump(&counters.sent, 1);
                        *wake |= self.count_down(st);
                    }
                    Err(e) if first && copy == 0 => {
                        // Nothing happened for this datagram: undo the draws so that the
                        // retry makes the same decision.
                        st.rng = rng_before;
                        return Err(e);
                    }
                    Err(e) if is_would_block(&e) => {
                        let held = Held {
                            due: now,
                            behind: None,
                            reordered: false,
                            destination: dest,
                            ecn,
                            src_ip: src,
                            payload: payload.to_vec(),
                        };
                        self.hold(st, held);
                        *wake = true;
                    }
                    Err(_) => bump(&counters.errors, 1),
                }
            }
        }
        bump(&counters.offered, 1);
        if decision.duplicate {
            bump(&counters.duplicated, 1);
        }
        if !decision.corrupt_bits.is_empty() {
            bump(&counters.corrupted, 1);
        }
        Ok(())
    }
}

/// Sends held datagrams when they are due; exits when the socket is dropped (after a last
/// best-effort flush of everything still held).
async fn run_sender(shared: Arc<Shared>) {
    let mut poller = shared.inner.clone().create_io_poller();
    let counters = shared.control.counters();
    loop {
        let mut blocked = false;
        let next_due = {
            let mut st = lock(&shared.state);
            let now = Instant::now();
            let closed = st.closed;
            loop {
                // The earliest due datagram (all of them once closed).
                let next = st
                    .held
                    .iter()
                    .enumerate()
                    .filter(|(_, h)| closed || h.due <= now)
                    .min_by_key(|(_, h)| h.due)
                    .map(|(i, _)| i);
                let Some(i) = next else { break };
                let h = &st.held[i];
                match send_one(&*shared.inner, h.destination, h.ecn, h.src_ip, &h.payload) {
                    Err(e) if is_would_block(&e) && !closed => {
                        blocked = true;
                        break;
                    }
                    result => {
                        if result.is_ok() {
                            bump(&counters.sent, 1);
                        } else {
                            bump(&counters.errors, 1);
                        }
                        let h = st.held.remove(i);
                        shared.release();
                        if result.is_ok() && !h.reordered {
                            // A released reordered datagram that would block is re-queued as
                            // due now, and this loop picks it up.
                            shared.count_down(&mut st);
                        }
                    }
                }
            }
            if closed {
                return;
            }
            st.held.iter().map(|h| h.due).min()
        };

        if blocked {
            if poll_fn(|cx| poller.as_mut().poll_writable(cx))
                .await
                .is_err()
            {
                // The socket reports an error; avoid spinning and try again shortly.
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            continue;
        }
        match next_due {
            Some(due) => {
                tokio::select! {
                    () = tokio::time::sleep_until(due) => {}
                    () = shared.wake.notified() => {}
                }
            }
            None => shared.wake.notified().await,
        }
    }
}

/// An [`AsyncUdpSocket`] that injects faults, driven by a [`FaultControl`], into the outgoing
/// datagrams of another one. It reports one datagram per transmit (no GSO) and splits any
/// transmit that still carries a `segment_size`.
#[derive(Debug)]
pub struct FaultySocket {
    shared: Arc<Shared>,
}

impl FaultySocket {
    /// Wraps `inner` and starts the task that sends held-back datagrams. Must be called inside
    /// a tokio runtime (else an error of kind `Other`).
    pub fn new(inner: Arc<dyn AsyncUdpSocket>, control: FaultControl) -> io::Result<Self> {
        let runtime = tokio::runtime::Handle::try_current().map_err(io::Error::other)?;
        let stream = control.inner.next_stream.fetch_add(1, Ordering::Relaxed);
        let shared = Arc::new(Shared {
            inner,
            control,
            stream,
            state: Mutex::new(SocketState {
                rng: SplitMix64::new(0),
                generation: None,
                held: Vec::new(),
                closed: false,
            }),
            wake: Notify::new(),
        });
        runtime.spawn(run_sender(shared.clone()));
        Ok(FaultySocket { shared })
    }

    /// The control driving this socket.
    pub fn control(&self) -> &FaultControl {
        &self.shared.control
    }
}

impl Drop for FaultySocket {
    fn drop(&mut self) {
        lock(&self.shared.state).closed = true;
        self.shared.wake.notify_one();
    }
}

impl AsyncUdpSocket for FaultySocket {
    fn create_io_poller(self: Arc<Self>) -> Pin<Box<dyn UdpPoller>> {
        self.shared.inner.clone().create_io_poller()
    }

    fn try_send(&self, transmit: &Transmit<'_>) -> io::Result<()> {
        let shared = &*self.shared;
        let (config, generation) = shared.control.snapshot();
        let config = config.filter(|c| !c.is_noop());

        let contents = transmit.contents;
        let segment = match transmit.segment_size {
            Some(size) if size > 0 && size < contents.len() => size,
            _ => contents.len().max(1),
        };

        let mut st = lock(&shared.state);
        if let Some(config) = &config {
            if st.generation != Some(generation) {
                st.rng = SplitMix64::for_stream(config.seed, shared.stream);
                st.generation = Some(generation);
            }
        }
        let mut wake = false;
        let mut result = Ok(());
        let mut chunks: Vec<&[u8]> = contents.chunks(segment).collect();
        if chunks.is_empty() {
            chunks.push(&[]);
        }
        for (i, chunk) in chunks.into_iter().enumerate() {
            if let Err(e) =
                shared.send_datagram(&mut st, config.as_ref(), transmit, chunk, i == 0, &mut wake)
            {
                result = Err(e);
                break;
            }
        }
        drop(st);
        if wake {
            shared.wake.notify_one();
        }
        result
    }

    fn poll_recv(
        &self,
        cx: &mut Context<'_>,
        bufs: &mut [IoSliceMut<'_>],
        meta: &mut [RecvMeta],
    ) -> Poll<io::Result<usize>> {
        self.shared.inner.poll_recv(cx, bufs, meta)
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.shared.inner.local_addr()
    }

    fn max_transmit_segments(&self) -> usize {
        1
    }

    fn max_receive_segments(&self) -> usize {
        self.shared.inner.max_receive_segments()
    }

    fn may_fragment(&self) -> bool {
        self.shared.inner.may_fragment()
    }
}

impl fmt::Display for FaultStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "offered {} sent {} dropped {} duplicated {} corrupted {} delayed {} reordered {} errors {} pending {}",
            self.offered,
            self.sent,
            self.dropped,
            self.duplicated,
            self.corrupted,
            self.delayed,
            self.reordered,
            self.errors,
            self.pending
        )
    }
}

/// Wraps a bound UDP `socket` with quinn's tokio runtime and then in a [`FaultySocket`]
/// driven by `control`, and builds a quinn endpoint on it (a server when `server_config`
/// is given; set a default client config to connect from it).
///
/// Must be called inside a tokio runtime; outside one it returns an error of kind `Other`
/// (rather than letting tokio panic).
pub fn faulty_endpoint(
    socket: std::net::UdpSocket,
    server_config: Option<quinn::ServerConfig>,
    control: FaultControl,
) -> io::Result<quinn::Endpoint> {
    tokio::runtime::Handle::try_current().map_err(io::Error::other)?;
    let runtime = Arc::new(TokioRuntime);
    let inner = runtime.wrap_udp_socket(socket)?;
    let faulty = FaultySocket::new(inner, control)?;
    quinn::Endpoint::new_with_abstract_socket(
        EndpointConfig::default(),
        server_config,
        Arc::new(faulty),
        runtime,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use quinn::{ClientConfig, Connection, Endpoint, ServerConfig, TransportConfig};
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
    use std::net::{Ipv4Addr, UdpSocket as StdUdpSocket};
    use tokio::time::timeout;

    const LOOPBACK: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0);
    /// Big enough that a QUIC packet carries exactly one of them.
    const DATAGRAM_LEN: usize = 1000;
    /// Datagrams sent between pauses (far below what a default receive buffer holds).
    const PACE_BURST: u32 = 16;

    fn transport() -> Arc<TransportConfig> {
        let mut t = TransportConfig::default();
        t.datagram_receive_buffer_size(Some(4 << 20));
        t.datagram_send_buffer_size(4 << 20);
        Arc::new(t)
    }

    fn tls_configs() -> (ServerConfig, ClientConfig) {
        let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_string()])
            .expect("self-signed certificate");
        let cert: CertificateDer<'static> = certified.cert.der().clone();
        let key: PrivateKeyDer<'static> =
            PrivatePkcs8KeyDer::from(certified.key_pair.serialize_der()).into();
        let provider = Arc::new(rustls::crypto::ring::default_provider());

        let mut server_crypto = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .expect("TLS 1.3")
            .with_no_client_auth()
            .with_single_cert(vec![cert.clone()], key)
            .expect("server certificate");
        server_crypto.alpn_protocols = vec![b"test".to_vec()];
        let mut server = ServerConfig::with_crypto(Arc::new(
            quinn::crypto::rustls::QuicServerConfig::try_from(server_crypto)
                .expect("QUIC server crypto"),
        ));
        server.transport_config(transport());

        let mut roots = rustls::RootCertStore::empty();
        roots.add(cert).expect("trust anchor");
        let mut client_crypto = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .expect("TLS 1.3")
            .with_root_certificates(roots)
            .with_no_client_auth();
        client_crypto.alpn_protocols = vec![b"test".to_vec()];
        let mut client = ClientConfig::new(Arc::new(
            quinn::crypto::rustls::QuicClientConfig::try_from(client_crypto)
                .expect("QUIC client crypto"),
        ));
        client.transport_config(transport());
        (server, client)
    }

    struct Pair {
        server: Endpoint,
        client: Endpoint,
        /// The client's side of the connection (the sender in these tests).
        to_server: Connection,
        /// The server's side of the connection (the receiver).
        to_client: Connection,
    }

    impl Pair {
        async fn close(self) {
            self.to_server.close(0u32.into(), b"done");
            self.client.close(0u32.into(), b"done");
            self.server.close(0u32.into(), b"done");
            self.client.wait_idle().await;
            self.server.wait_idle().await;
        }
    }

    /// A UDP socket on a free loopback port.
    fn bound() -> StdUdpSocket {
        StdUdpSocket::bind(LOOPBACK).expect("bind")
    }

    /// A server and a client endpoint on loopback, each on its own fault socket, connected.
    async fn connect(server_faults: FaultControl, client_faults: FaultControl) -> Pair {
        let (server_config, client_config) = tls_configs();
        let server =
            faulty_endpoint(bound(), Some(server_config), server_faults).expect("server endpoint");
        let mut client = faulty_endpoint(bound(), None, client_faults).expect("client endpoint");
        client.set_default_client_config(client_config);
        let server_addr = server.local_addr().expect("server address");
        let connecting = client
            .connect(server_addr, "localhost")
            .expect("connect call");
        let (to_server, to_client) = tokio::join!(connecting, async {
            server.accept().await.expect("incoming connection").await
        });
        Pair {
            to_server: to_server.expect("client handshake"),
            to_client: to_client.expect("server handshake"),
            server,
            client,
        }
    }

    fn datagram(seq: u32) -> Vec<u8> {
        let mut d = vec![0xA5; DATAGRAM_LEN];
        d[..4].copy_from_slice(&seq.to_be_bytes());
        d
    }

    /// Sends `n` sequence-numbered datagrams, waits until quinn has put them all in packets
    /// and the fault socket holds nothing back, then tells the receiver on a reliable stream.
    async fn send_all(conn: &Connection, control: &FaultControl, n: u32) {
        assert!(conn.max_datagram_size().expect("datagrams enabled") >= DATAGRAM_LEN);
        let before = conn.stats().frame_tx.datagram;
        for seq in 0..n {
            conn.send_datagram_wait(datagram(seq).into())
                .await
                .expect("datagram queued");
            if seq % PACE_BURST == PACE_BURST - 1 {
                // Let the receiver drain its socket: a kernel receive-buffer overflow
                // (RcvbufErrors) would be real loss on top of the injected one.
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
        while conn.stats().frame_tx.datagram < before + u64::from(n) || control.stats().pending > 0
        {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let mut done = conn.open_uni().await.expect("uni stream");
        done.write_all(b"done").await.expect("done written");
        done.finish().expect("done finished");
    }

    /// Collects the sequence numbers of arriving datagrams until the sender's "done" came and
    /// then no datagram arrived for a while, or the connection closed.
    async fn receive_all(conn: &Connection) -> Vec<u32> {
        let mut got = Vec::new();
        let mut push = |d: &[u8]| {
            let seq: [u8; 4] = d[..4].try_into().expect("sequence number");
            got.push(u32::from_be_bytes(seq));
        };
        loop {
            tokio::select! {
                d = conn.read_datagram() => match d {
                    Ok(d) => push(&d),
                    Err(_) => return got,
                },
                s = conn.accept_uni() => {
                    if let Ok(mut s) = s {
                        let _ = s.read_to_end(16).await;
                    }
                    break;
                }
            }
        }
        while let Ok(Ok(d)) = timeout(Duration::from_millis(300), conn.read_datagram()).await {
            push(&d);
        }
        got
    }

    /// Sends `n` datagrams from client to server and returns what the server received.
    async fn exchange(pair: &Pair, client_faults: &FaultControl, n: u32) -> Vec<u32> {
        let (_, got) = tokio::join!(
            send_all(&pair.to_server, client_faults, n),
            receive_all(&pair.to_client)
        );
        got
    }

    fn assert_balanced(stats: FaultStats) {
        assert_eq!(stats.errors, 0, "{stats}");
        assert_eq!(
            stats.sent + stats.pending,
            stats.offered - stats.dropped + stats.duplicated,
            "{stats}"
        );
    }

    const LIMIT: Duration = Duration::from_secs(20);

    #[tokio::test]
    async fn no_faults_every_datagram_arrives() {
        timeout(LIMIT, async {
            let client_faults = FaultControl::new();
            let pair = connect(FaultControl::new(), client_faults.clone()).await;
            let got = exchange(&pair, &client_faults, 300).await;
            assert_eq!(got, (0..300).collect::<Vec<_>>());
            let stats = client_faults.stats();
            assert!(stats.offered > 300, "{stats}");
            assert_eq!(stats.sent, stats.offered, "{stats}");
            assert_eq!(stats.dropped + stats.duplicated + stats.corrupted, 0);
            assert_balanced(stats);
            pair.close().await;
        })
        .await
        .expect("test timed out");
    }

    #[tokio::test]
    async fn loss_after_handshake_drops_about_that_share() {
        timeout(LIMIT, async {
            let client_faults = FaultControl::new();
            let pair = connect(FaultControl::new(), client_faults.clone()).await;
            client_faults.reset_stats();
            client_faults
                .set(FaultConfig::with_loss(7, 0.3))
                .expect("valid config");
            let got = exchange(&pair, &client_faults, 1000).await;
            let stats = client_faults.stats();
            client_faults.clear();

            let lost = 1000 - got.len() as u64;
            let lost_share = lost as f64 / 1000.0;
            assert!((0.15..=0.45).contains(&lost_share), "lost {lost}, {stats}");
            let dropped_share = stats.dropped as f64 / stats.offered as f64;
            assert!((0.15..=0.45).contains(&dropped_share), "{stats}");
            // One datagram per packet: each lost datagram was in a dropped packet.
            assert!(lost <= stats.dropped, "lost {lost}, {stats}");
            assert_eq!(stats.duplicated + stats.corrupted + stats.reordered, 0);
            assert_balanced(stats);

            // Faults off: everything arrives again.
            let got = exchange(&pair, &client_faults, 50).await;
            assert_eq!(got.len(), 50);
            pair.close().await;
        })
        .await
        .expect("test timed out");
    }

    #[tokio::test]
    async fn corruption_is_discarded_without_panic() {
        timeout(LIMIT, async {
            let client_faults = FaultControl::new();
            let pair = connect(FaultControl::new(), client_faults.clone()).await;
            client_faults.reset_stats();
            client_faults
                .set(FaultConfig {
                    seed: 11,
                    corrupt: 0.3,
                    ..FaultConfig::default()
                })
                .expect("valid config");
            let got = exchange(&pair, &client_faults, 300).await;
            let stats = client_faults.stats();
            client_faults.clear();

            assert!(stats.corrupted > 0, "{stats}");
            assert!(got.len() < 300, "received {} of 300, {stats}", got.len());
            // QUIC's AEAD rejects every corrupted packet, so no corrupted payload surfaces.
            assert!(got.iter().all(|&seq| seq < 300));
            assert_balanced(stats);

            // The connection stays usable (a corrupted packet is silently discarded); if it
            // had closed, it would be with an error, never a panic.
            match pair.to_server.close_reason() {
                None => {
                    let got = exchange(&pair, &client_faults, 20).await;
                    assert_eq!(got.len(), 20);
                }
                Some(reason) => eprintln!("connection closed under corruption: {reason}"),
            }
            pair.close().await;
        })
        .await
        .expect("test timed out");
    }

    #[tokio::test]
    async fn reorder_and_duplicate() {
        timeout(LIMIT, async {
            let client_faults = FaultControl::new();
            let pair = connect(FaultControl::new(), client_faults.clone()).await;
            client_faults.reset_stats();
            client_faults
                .set(FaultConfig {
                    seed: 3,
                    reorder: 0.3,
                    duplicate: 0.3,
                    ..FaultConfig::default()
                })
                .expect("valid config");
            let got = exchange(&pair, &client_faults, 200).await;
            let stats = client_faults.stats();
            client_faults.clear();

            assert!(
                got.windows(2).any(|w| w[0] > w[1]),
                "arrival order equals send order: {got:?}"
            );
            // Held datagrams are all eventually sent, and QUIC drops the duplicates.
            let mut unique = got.clone();
            unique.sort_unstable();
            unique.dedup();
            assert_eq!(unique.len(), got.len(), "duplicate datagram surfaced");
            assert_eq!(unique, (0..200).collect::<Vec<_>>());
            assert!(stats.reordered > 0 && stats.duplicated > 0, "{stats}");
            assert!(stats.sent > stats.offered, "{stats}");
            assert_eq!(stats.pending, 0, "{stats}");
            assert_balanced(stats);
            pair.close().await;
        })
        .await
        .expect("test timed out");
    }

    #[test]
    fn decisions_are_deterministic() {
        let config = FaultConfig {
            seed: 0xDEC1DE,
            loss: 0.2,
            duplicate: 0.1,
            reorder: 0.1,
            corrupt: 0.1,
            delay: Duration::from_millis(5),
            jitter: Duration::from_millis(3),
        };
        let lens: Vec<usize> = (0..2000).map(|i| 40 + (i * 37) % 1200).collect();
        let a = fault_decisions(&config, &lens);
        let b = fault_decisions(&config, &lens);
        assert_eq!(a, b);

        let other = fault_decisions(&FaultConfig { seed: 1, ..config }, &lens);
        assert_ne!(a, other);

        let dropped = a.iter().filter(|d| d.drop).count();
        assert!((300..=500).contains(&dropped), "dropped {dropped} of 2000");
        for (d, &len) in a.iter().zip(&lens) {
            assert!(d.corrupt_bits.len() <= 3 && d.corrupt_bits.iter().all(|&b| b < len * 8));
            assert!(d.reorder_behind <= 3);
            assert!(
                d.drop || (Duration::from_millis(2)..=Duration::from_millis(8)).contains(&d.delay)
            );
        }
        // The socket's first stream is exactly the pure helper's stream.
        let mut rng = SplitMix64::for_stream(config.seed, 0);
        assert_eq!(decide(&mut rng, &config, lens[0]), a[0]);
    }

    #[test]
    fn validation_rejects_out_of_range() {
        assert!(FaultConfig::default().validate().is_ok());
        assert!(FaultConfig::default().is_noop());
        assert!(FaultConfig::with_loss(1, 1.0).validate().is_ok());
        for bad in [
            FaultConfig::with_loss(1, 1.5),
            FaultConfig::with_loss(1, -0.1),
            FaultConfig::with_loss(1, f64::NAN),
            FaultConfig {
                corrupt: f64::INFINITY,
                ..FaultConfig::default()
            },
            FaultConfig {
                delay: Duration::from_secs(3600),
                ..FaultConfig::default()
            },
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
            assert!(FaultControl::with_config(bad).is_err());
        }
        let control = FaultControl::new();
        assert!(control.set(FaultConfig::with_loss(1, 2.0)).is_err());
        assert_eq!(control.config(), None);
        control.set(FaultConfig::with_loss(1, 0.5)).expect("valid");
        assert!(control.is_active());
        control.clear();
        assert!(!control.is_active());
    }

    #[test]
    fn endpoint_outside_a_runtime_is_an_error() {
        let err = faulty_endpoint(bound(), None, FaultControl::new()).expect_err("no runtime");
        assert_eq!(err.kind(), io::ErrorKind::Other);
    }

    #[test]
    fn flipping_bits_keeps_the_length() {
        let mut p = vec![0u8; 4];
        flip_bits(&mut p, &[0, 9, 31, 1000]);
        assert_eq!(p, vec![0x01, 0x02, 0x00, 0x80]);
    }

    /// A fault socket on a raw loopback socket, and a plain receiver.
    fn raw_pair(control: FaultControl) -> (FaultySocket, tokio::net::UdpSocket) {
        let socket = StdUdpSocket::bind(LOOPBACK).expect("bind sender");
        let inner = TokioRuntime.wrap_udp_socket(socket).expect("wrap sender");
        let faulty = FaultySocket::new(inner, control).expect("fault socket");
        let receiver = StdUdpSocket::bind(LOOPBACK).expect("bind receiver");
        receiver.set_nonblocking(true).expect("nonblocking");
        let receiver = tokio::net::UdpSocket::from_std(receiver).expect("tokio receiver");
        (faulty, receiver)
    }

    async fn recv_n(receiver: &tokio::net::UdpSocket, n: usize) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut buf = [0u8; 2048];
        while out.len() < n {
            let len = receiver.recv(&mut buf).await.expect("recv");
            out.push(buf[..len].to_vec());
        }
        out
    }

    #[tokio::test]
    async fn delayed_datagrams_go_out_without_further_traffic() {
        timeout(LIMIT, async {
            let control = FaultControl::with_config(FaultConfig {
                seed: 5,
                delay: Duration::from_millis(40),
                jitter: Duration::from_millis(10),
                ..FaultConfig::default()
            })
            .expect("valid config");
            let (faulty, receiver) = raw_pair(control.clone());
            assert_eq!(faulty.max_transmit_segments(), 1);
            let dest = receiver.local_addr().expect("receiver address");

            // One GSO-style transmit of three 100-byte segments (the last one short).
            let contents: Vec<u8> = (0..280u32).map(|i| (i / 100) as u8).collect();
            let start = Instant::now();
            faulty
                .try_send(&Transmit {
                    destination: dest,
                    ecn: None,
                    contents: &contents,
                    segment_size: Some(100),
                    src_ip: None,
                })
                .expect("try_send");
            assert_eq!(control.stats().pending, 3);
            let mut got = recv_n(&receiver, 3).await;
            assert!(start.elapsed() >= Duration::from_millis(30));
            got.sort();
            assert_eq!(got, vec![vec![0u8; 100], vec![1u8; 100], vec![2u8; 80]]);
            let stats = control.stats();
            assert_eq!(
                (stats.offered, stats.sent, stats.delayed),
                (3, 3, 3),
                "{stats}"
            );
            assert_balanced(stats);

            // A reordered datagram with nothing behind it still goes out (fallback timer).
            control
                .set(FaultConfig {
                    seed: 5,
                    reorder: 1.0,
                    ..FaultConfig::default()
                })
                .expect("valid config");
            faulty
                .try_send(&Transmit {
                    destination: dest,
                    ecn: None,
                    contents: b"late",
                    segment_size: None,
                    src_ip: None,
                })
                .expect("try_send");
            assert_eq!(recv_n(&receiver, 1).await, vec![b"late".to_vec()]);
            assert_eq!(control.stats().reordered, 1);

            // With reordering, a held datagram is overtaken by the next ones.
            control
                .set(FaultConfig {
                    seed: 9,
                    reorder: 0.5,
                    ..FaultConfig::default()
                })
                .expect("valid config");
            for seq in 0..40u8 {
                faulty
                    .try_send(&Transmit {
                        destination: dest,
                        ecn: None,
                        contents: &[seq],
                        segment_size: None,
                        src_ip: None,
                    })
                    .expect("try_send");
            }
            let got: Vec<u8> = recv_n(&receiver, 40)
                .await
                .into_iter()
                .map(|d| d[0])
                .collect();
            assert!(got.windows(2).any(|w| w[0] > w[1]), "{got:?}");
            let mut sorted = got.clone();
            sorted.sort_unstable();
            assert_eq!(sorted, (0..40).collect::<Vec<u8>>());
            drop(faulty);
        })
        .await
        .expect("test timed out");
    }
}
