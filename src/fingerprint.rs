//! Stable 64-bit FNV-1a hashes. They are written to the store (request fingerprints of runs)
//! and decide placement (a key's owner shard), so they must never change between builds.

const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const PRIME: u64 = 0x0100_0000_01b3;

/// FNV-1a of `bytes`.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .fold(OFFSET, |h, b| (h ^ u64::from(*b)).wrapping_mul(PRIME))
}

/// A request's content for idempotency checks: its parts, each followed by a 0xff separator
/// (a byte UTF-8 never contains), so `["ab", "c"]` and `["a", "bc"]` differ.
pub fn fingerprint(parts: &[&str]) -> u64 {
    let mut h = OFFSET;
    for p in parts {
        for b in p.bytes().chain(std::iter::once(0xff)) {
            h = (h ^ u64::from(b)).wrapping_mul(PRIME);
        }
    }
    h
}
