//! The memory store's hash of session ids (also the verified-cookie cache's).

use std::hash::{BuildHasher, Hasher};

/// A fast seeded hash for session ids. Ids are chosen by the server (random, or by the
/// application's `genid`) and a looked-up id must carry a valid signature, so clients
/// cannot aim keys at one bucket: SipHash's flooding resistance buys nothing here, and
/// costs more than the rest of a lookup.
#[derive(Clone, Copy)]
pub(crate) struct IdHash(u64);

impl IdHash {
    /// A hash with a seed from the OS.
    pub(crate) fn new() -> Self {
        let mut seed = [0u8; 8];
        // A fixed seed is still correct, only predictable; the OS RNG rarely fails.
        let _ = getrandom::fill(&mut seed);
        Self(u64::from_le_bytes(seed) | 1)
    }
}

pub(crate) struct IdHasher(u64);

impl Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(w))
                .wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
        }
        let mut w = [0u8; 8];
        let tail = chunks.remainder();
        w[..tail.len()].copy_from_slice(tail);
        self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(w) ^ (bytes.len() as u64))
            .wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }

    fn finish(&self) -> u64 {
        // murmur3's finalizer: spread every input bit over the whole word.
        let mut h = self.0;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^ (h >> 33)
    }
}

impl BuildHasher for IdHash {
    type Hasher = IdHasher;
    fn build_hasher(&self) -> IdHasher {
        IdHasher(self.0)
    }
}
