//! What one peer's reliable stream may cost this side: how fast what its messages
//! decompress to reaches the engine thread ([`DecodePacer`], by [`decode_cost`]; the
//! longest message is the protocol's [`crate::proto::compression::max_stream_message`]). The engine thread decompresses
//! stream messages as it takes them; pacing them before they reach it bounds that work per
//! tick, whatever a peer sends.

use crate::wire::codec::FrameHeader;

use crate::proto::compression::split_stream_message;

/// What decoding a stream message would produce, at most, before it is decoded: the
/// length its envelope declares (within `max`), or its own length when it has none.
pub fn decode_cost(message: &[u8], max: usize) -> usize {
    let declared = split_stream_message(message)
        .and_then(|(_, frame)| FrameHeader::parse(frame).ok())
        .map_or(0, |h| usize::try_from(h.declared_len).unwrap_or(usize::MAX));
    declared.min(max).max(message.len())
}

/// Paces what one peer's stream messages may make this side decompress: a token bucket
/// of `rate` bytes a second (declared output, see [`decode_cost`]) holding at most `burst`.
/// The reader of a peer's stream waits on it before handing a message to the engine
/// thread, so a peer sending small frames that expand to their kind's bound cannot keep
/// that thread decompressing: it stalls, QUIC flow control stops its sending, and each
/// tick decodes at most about `rate` / tick rate bytes from it.
#[derive(Debug)]
pub struct DecodePacer {
    rate: f64,
    burst: f64,
    tokens: f64,
    at: tokio::time::Instant,
}

impl DecodePacer {
    /// A pacer of `rate` bytes a second, at most `burst` at once (at least one message of
    /// the largest `cost` it will be given should fit: a larger one waits for a full bucket).
    pub fn new(rate: u64, burst: u64) -> Self {
        DecodePacer {
            rate: rate.max(1) as f64,
            burst: burst.max(1) as f64,
            tokens: burst.max(1) as f64,
            at: tokio::time::Instant::now(),
        }
    }

    /// How long a message costing `cost` must wait now (zero: it may go), without taking.
    fn wait_for(&mut self, cost: usize) -> std::time::Duration {
        let now = tokio::time::Instant::now();
        let elapsed = now.duration_since(self.at).as_secs_f64();
        self.at = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        let need = (cost as f64).min(self.burst);
        if self.tokens >= need {
            std::time::Duration::ZERO
        } else {
            std::time::Duration::from_secs_f64((need - self.tokens) / self.rate)
        }
    }

    /// Waits until a message costing `cost` may go, and takes its cost.
    pub async fn take(&mut self, cost: usize) {
        loop {
            let wait = self.wait_for(cost);
            if wait.is_zero() {
                break;
            }
            tokio::time::sleep(wait).await;
        }
        self.tokens -= (cost as f64).min(self.burst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::compression::{control_message, StreamKind};
    use crate::wire::codec::FrameFormat;

    #[test]
    fn the_decode_pacer_lets_a_burst_through_then_paces() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("runtime");
        runtime.block_on(async {
            let ms = |d: std::time::Duration| d.as_secs_f64() * 1e3;
            let mut pacer = DecodePacer::new(1 << 20, 256 << 10);
            // A full bucket: the burst goes at once.
            assert!(pacer.wait_for(256 << 10).is_zero());
            pacer.take(256 << 10).await;
            // Then 128 KiB waits about 125 ms at 1 MiB/s; a cost above the burst waits
            // for a full bucket (250 ms), not forever.
            let half = ms(pacer.wait_for(128 << 10));
            assert!((100.0..=125.1).contains(&half), "{half} ms");
            let over = ms(pacer.wait_for(10 << 20));
            assert!((225.0..=250.1).contains(&over), "{over} ms");
            let start = tokio::time::Instant::now();
            pacer.take(128 << 10).await;
            assert!(start.elapsed() >= std::time::Duration::from_millis(100));
        });
    }

    #[test]
    fn a_message_costs_what_it_declares_within_the_bound() {
        // A frame's cost is what it declares (within the bound), or its length.
        let mut frame = vec![StreamKind::DeltaFrame as u8, FrameFormat::Zstd as u8];
        crate::wire::codec::write_varint(&mut frame, 50_000);
        frame.extend_from_slice(&[0; 20]);
        assert_eq!(decode_cost(&frame, 1 << 20), 50_000);
        assert_eq!(decode_cost(&frame, 4096), 4096);
        assert_eq!(decode_cost(&control_message(&[1; 300]), 4096), 302);
        assert_eq!(decode_cost(&[9, 9, 9], 4096), 3);
    }
}
