//! The protocol's randomness, from a seed its driver gives: resume tokens must be
//! unguessable, and a simulation must replay exactly. HMAC-SHA256 of a counter under the
//! seed is both (a deterministic generator in the manner of NIST's HMAC_DRBG, without
//! reseeding: a session draws a few tokens, not gigabytes).

use ring::hmac;

/// Unguessable bytes from a 32-byte seed.
pub(crate) struct TokenRng {
    key: hmac::Key,
    counter: u64,
}

impl TokenRng {
    pub(crate) fn new(seed: [u8; 32]) -> Self {
        TokenRng {
            key: hmac::Key::new(hmac::HMAC_SHA256, &seed),
            counter: 0,
        }
    }

    /// The next 16 bytes, never all zero (an all-zero resume token is never accepted).
    pub(crate) fn token(&mut self) -> [u8; 16] {
        loop {
            self.counter += 1;
            let tag = hmac::sign(&self.key, &self.counter.to_le_bytes());
            let mut token = [0u8; 16];
            token.copy_from_slice(&tag.as_ref()[..16]);
            if token.iter().any(|&b| b != 0) {
                return token;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_repeat_per_seed_and_differ_between_seeds_and_draws() {
        let (mut a, mut b, mut c) = (
            TokenRng::new([1; 32]),
            TokenRng::new([1; 32]),
            TokenRng::new([2; 32]),
        );
        let first = a.token();
        assert_eq!(first, b.token());
        assert_ne!(first, c.token());
        assert_ne!(first, a.token());
    }
}
