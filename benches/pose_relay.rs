//! Bench of issue 18, item 4: the host's CPU to relay 3-point avatars, per 90 Hz tick, for
//! N = 8, 16 and 32 clients, each section encoded once per reference set and shared
//! (`theta_net::xr::relay`) against the per-pair encoding it replaced (every sender's
//! section encoded again for every receiver), in the same run.
//!
//! # What a tick does (what the host's pose path does, without sockets)
//! Each client's uplink packet of the tick (head and both hands of the synthetic avatar,
//! each client at its own point of it, with the velocities a runtime reports) is decoded
//! by the host's receiver of that link and becomes the newest frame of that source; then
//! each link's packet is built: the newest frame of every other client, then the
//! acknowledgement of the client's packet; the clients' acknowledgements of those packets
//! come back 1, 2 or 3 ticks later (client `k` after `1 + k % 3`: round trips of 11-33 ms,
//! so three reference sets per frame in steady state). The uplink packets are made before
//! the measured ticks (they are the clients' work).
//!
//! - **shared**: one `RelaySource` per client, shared by all links;
//! - **per pair**: each link holds its own copy of every source (the same code), so every
//!   section is encoded for each receiver: N × (N − 1) encodes a tick, as before.
//!
//! The figures are the fastest of 5 runs of 450 ticks (5 s at 90 Hz) after 90 ticks of
//! warm-up (the fastest: other processes on the machine only ever add time). Run: `cargo bench --bench pose_relay` (about 20 s).

use std::collections::VecDeque;
use std::hint::black_box;
use std::time::{Duration, Instant};

use theta_net::xr::relay::{RelaySender, RelaySource};
use theta_net::xr::stream::{Ack, PoseReceiver, PoseSender, Section, StreamSample};
use theta_net::xr::synthetic::{avatar, velocity_at, RATE_HZ};
use theta_net::xr::{Device, Pose, PoseFlags, PoseSample, Volume};

const WARM_UP: usize = 90;
const MEASURED: usize = 450;
const RUNS: usize = 5;
const FRAME_NS: i64 = 11_111_111;

/// Every client's uplink packet of every tick (by tick, then client), as the host
/// receives them.
fn uplinks(clients: usize, ticks: usize, v: &Volume) -> Vec<Vec<Vec<u8>>> {
    let frames = avatar(ticks + 2 * clients * 37 + 2);
    let tracks: Vec<Vec<(i64, Pose)>> = (0..3)
        .map(|d| {
            frames
                .iter()
                .enumerate()
                .map(|(i, f)| (i as i64 * FRAME_NS, f[d]))
                .collect()
        })
        .collect();
    let by_client: Vec<Vec<Vec<u8>>> = (0..clients)
        .map(|k| {
            let mut tx = PoseSender::new(*v);
            let mut rx = PoseReceiver::new(*v);
            (0..ticks)
                .map(|t| {
                    let i = t + k * 37 + 1;
                    let time = i as i64 * FRAME_NS;
                    let samples = (0..3u8)
                        .map(|d| {
                            let velocity = velocity_at(&tracks[usize::from(d)], time, FRAME_NS);
                            let sample = PoseSample {
                                pose: frames[i][usize::from(d)],
                                time,
                                flags: PoseFlags::ALL,
                                linear_velocity: velocity.map(|v| v.0),
                                angular_velocity: velocity.map(|v| v.1),
                            };
                            let device = Device::from_index(d).expect("device");
                            StreamSample::from_sample(device, &sample, None, v)
                                .expect("valid")
                                .0
                        })
                        .collect();
                    let section = Section {
                        source: k as u16 + 1,
                        samples,
                    };
                    let enc = tx.encode(Some(&section), None, 1200).expect("encode");
                    rx.decode(&enc.bytes, false, section.source)
                        .expect("decode");
                    // The host acknowledges at once (its acknowledgements ride in its
                    // packets of the same tick).
                    if let Some(a) = rx.take_ack() {
                        tx.on_ack(Ack::new(a, true));
                    }
                    enc.bytes
                })
                .collect()
        })
        .collect();
    (0..ticks)
        .map(|t| by_client.iter().map(|c| c[t].clone()).collect())
        .collect()
}

/// One run: the mean tick time over [`MEASURED`] ticks, bytes sent per tick, and
/// sections encoded per tick.
fn run(clients: usize, shared: bool, ups: &[Vec<Vec<u8>>], v: &Volume) -> (Duration, f64, f64) {
    let mut receivers: Vec<PoseReceiver> = (0..clients).map(|_| PoseReceiver::new(*v)).collect();
    let mut senders: Vec<RelaySender> = (0..clients).map(|_| RelaySender::new(*v)).collect();
    // Shared: one copy of each source; per pair: one per receiving link.
    let copies = if shared { 1 } else { clients };
    let mut sources: Vec<Vec<RelaySource>> = (0..copies)
        .map(|_| {
            (0..clients)
                .map(|k| RelaySource::new(k as u16 + 1))
                .collect()
        })
        .collect();
    let mut acks: VecDeque<(usize, usize, u64)> = VecDeque::new();
    let mut times = Vec::with_capacity(MEASURED);
    let (mut bytes, mut encodes_before) = (0usize, 0u64);
    for (tick, packets) in ups.iter().enumerate() {
        if tick == WARM_UP {
            encodes_before = sources.iter().flatten().map(RelaySource::encodes).sum();
        }
        let start = Instant::now();
        for (k, (receiver, packet)) in receivers.iter_mut().zip(packets).enumerate() {
            let d = receiver
                .decode(packet, false, k as u16 + 1)
                .expect("uplink decodes");
            for copy in &mut sources {
                copy[k].push(d.sections[0].samples.clone(), 1);
            }
        }
        while acks.front().is_some_and(|(due, _, _)| *due <= tick) {
            if let Some((_, k, seq)) = acks.pop_front() {
                senders[k].on_ack(Ack::new(seq, true));
            }
        }
        for (k, sender) in senders.iter_mut().enumerate() {
            let copy = if shared { 0 } else { k };
            let mut others: Vec<&mut RelaySource> = sources[copy]
                .iter_mut()
                .enumerate()
                .filter(|(j, _)| *j != k)
                .map(|(_, s)| s)
                .collect();
            let ack = receivers[k].take_ack().map(|a| Ack::new(a, true));
            let enc = sender.encode(&mut others, ack, 1200).expect("encode");
            // (The first, absolute packets may not hold every avatar.)
            assert!(
                tick < WARM_UP || enc.sections == clients - 1,
                "every avatar fits"
            );
            acks.push_back((tick + 1 + k % 3, k, enc.seq));
            if tick >= WARM_UP {
                bytes += enc.bytes.len();
            }
            black_box(enc.bytes);
        }
        if tick >= WARM_UP {
            times.push(start.elapsed());
        }
    }
    let encodes: u64 = sources.iter().flatten().map(RelaySource::encodes).sum();
    let total: Duration = times.iter().sum();
    (
        total / MEASURED as u32,
        bytes as f64 / MEASURED as f64,
        (encodes - encodes_before) as f64 / MEASURED as f64,
    )
}

fn fastest(runs: Vec<(Duration, f64, f64)>) -> (Duration, f64, f64) {
    runs.into_iter()
        .min_by_key(|r| r.0)
        .expect("at least one run")
}

fn main() {
    // `cargo test --benches` runs benches once in test mode: keep that quick.
    let quick = std::env::args().any(|a| a == "--test");
    let v = Volume::default();
    println!(
        "host relay CPU per tick, N clients each pushing a 3-point avatar with velocities at \
         {RATE_HZ} Hz (uplink decode, frames, N downlink packets, acknowledgements); \
         fastest of {RUNS} runs of {MEASURED} ticks"
    );
    println!(
        "{:>3} {:>12} {:>13} {:>14} {:>15} {:>9} {:>14} {:>11} {:>9}",
        "N",
        "shared us",
        "per pair us",
        "shared us/cl",
        "per pair us/cl",
        "ratio",
        "encodes/tick",
        "per pair",
        "B/packet"
    );
    let mut per_client = Vec::new();
    for clients in [8usize, 16, 32] {
        let ups = uplinks(clients, WARM_UP + MEASURED, &v);
        let runs = if quick { 1 } else { RUNS };
        let shared = fastest((0..runs).map(|_| run(clients, true, &ups, &v)).collect());
        let pair = fastest((0..runs).map(|_| run(clients, false, &ups, &v)).collect());
        let us = |d: Duration| d.as_secs_f64() * 1e6;
        per_client.push((
            clients,
            us(shared.0) / clients as f64,
            us(pair.0) / clients as f64,
        ));
        println!(
            "{:>3} {:>12.1} {:>13.1} {:>14.2} {:>15.2} {:>8.1}x {:>14.1} {:>11.1} {:>9.1}",
            clients,
            us(shared.0),
            us(pair.0),
            us(shared.0) / clients as f64,
            us(pair.0) / clients as f64,
            pair.0.as_secs_f64() / shared.0.as_secs_f64(),
            shared.2,
            pair.2,
            shared.1 / clients as f64
        );
        assert!(
            (shared.1 - pair.1).abs() < 1.0,
            "both paths send the same packets"
        );
    }
    if let (Some(first), Some(last)) = (per_client.first(), per_client.last()) {
        println!(
            "per-client cost from N = {} to N = {}: shared x{:.2}, per pair x{:.2} (flat = linear in peers)",
            first.0,
            last.0,
            last.1 / first.1,
            last.2 / first.2
        );
        let cores_for_100 = |us_per_client: f64| 100.0 * us_per_client * RATE_HZ / 1e6;
        println!(
            "at N = {}: {:.3} host cores per 100 clients for avatars alone (shared), {:.3} per pair",
            last.0,
            cores_for_100(last.1),
            cores_for_100(last.2)
        );
    }
}
