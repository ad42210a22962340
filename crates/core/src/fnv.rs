//! 64-bit FNV-1a, written once: fixed by its definition (draft-eastlake-fnv), the same on every
//! machine and in every release, which the standard library's hasher is not. Used where a hash must
//! be stable (the nightly job's shards and buckets, the ruleset version) and as the fast hasher of
//! the knowledge indexes (small maps keyed by short trusted strings, looked up for every word of every
//! product text, where SipHash's DoS resistance buys nothing and costs most of a lookup).

use std::hash::Hasher;

const OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
const PRIME: u64 = 0x0100_0000_01b3;

/// The running hash; also a [`Hasher`] for `HashMap`s (`BuildHasherDefault<Fnv1a>`).
#[derive(Debug, Clone, Copy)]
pub struct Fnv1a(u64);

impl Default for Fnv1a {
    fn default() -> Self {
        Fnv1a(OFFSET_BASIS)
    }
}

impl Fnv1a {
    pub fn update(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(PRIME);
        }
    }

    pub fn value(&self) -> u64 {
        self.0
    }
}

impl Hasher for Fnv1a {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        self.update(bytes);
    }
}

/// The FNV-1a hash of a text's UTF-8 bytes.
pub fn hash(text: &str) -> u64 {
    let mut h = Fnv1a::default();
    h.update(text.as_bytes());
    h.value()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_is_the_published_fnv1a() {
        // Test vectors of FNV-1a 64 (draft-eastlake-fnv).
        assert_eq!(hash(""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(hash("a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(hash("foobar"), 0x8594_4171_f739_67e8);
    }
}
