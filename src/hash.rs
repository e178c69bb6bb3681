//! Hash functions that must give the same answer on every peer and platform.

/// FNV-1a, 32-bit: the component id of a registered name (DESIGN.md "Identities").
pub fn fnv1a_32(bytes: &[u8]) -> u32 {
    let mut hash: u32 = 0x811c_9dc5;
    for &byte in bytes {
        hash ^= u32::from(byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash
}

/// 64-bit hash of `bytes` keyed by `seed` (XXH3), stable across platforms and releases.
pub fn hash64(seed: u64, bytes: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64_with_seed(bytes, seed)
}

/// Finaliser of SplitMix64: spreads a 64-bit key over all bits, for combining hashes.
pub fn mix64(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_32_matches_reference_vectors() {
        // Reference values from the FNV specification's test suite.
        assert_eq!(fnv1a_32(b""), 0x811c_9dc5);
        assert_eq!(fnv1a_32(b"a"), 0xe40c_292c);
        assert_eq!(fnv1a_32(b"foobar"), 0xbf9c_f968);
    }

    #[test]
    fn hash64_depends_on_seed_and_bytes() {
        assert_ne!(hash64(1, b"abc"), hash64(2, b"abc"));
        assert_ne!(hash64(1, b"abc"), hash64(1, b"abd"));
        assert_eq!(hash64(7, b"abc"), hash64(7, b"abc"));
    }
}
