//! The per-thread cache of verified session cookies.
//!
//! HMAC-SHA256 verification is the largest fixed cost of a request that carries a
//! session (about 7,000 instructions in software, 140 ns with the CPU's SHA extensions),
//! and a browser sends the same cookie value on every request. So each thread keeps the
//! last values it verified with the default [`HmacSigner`], and a value seen again
//! verifies with one constant-time comparison instead of an HMAC.
//!
//! - **Size.** 512 direct-mapped slots of 128 bytes: 64 KiB per thread that has verified
//!   a cookie, allocated on its first verification. Values longer than 117 bytes (ids of
//!   a custom `genid` over about 60 characters) are never cached.
//! - **Key.** The exact bytes the request sent (still URL-encoded) and the [`Secrets`]
//!   list they verified under. A new list (a rotation, another layer) matches nothing
//!   stored under the old one.
//! - **Why it is safe.** Only values that verified are stored, so a forged value never
//!   matches one. The slot is chosen by a hash keyed with a per-process random seed, and
//!   the comparison looks at every byte of the whole value whatever differs, so timing
//!   reveals nothing about a stored value; a client aiming values at one slot can only
//!   evict entries, which costs it an HMAC, never a match. An id is remembered only
//!   where its bytes appear as they are in the value, so the cached answer is exactly
//!   what decoding and verifying would give.
//! - **Opting out.** [`crate::SessionLayer::remember_verified_cookies`]`(false)` verifies
//!   every request; a custom [`crate::Signer`] is never cached.
//!
//! The comparison is written by hand rather than with `subtle`: `subtle`'s slice
//! comparison works a byte at a time behind an optimisation barrier per byte. Measured
//! with `bench/instructions.sh`, `subtle::ConstantTimeEq` in its place made a read-only
//! request cost about 15,930 instructions instead of 14,900 (+6.9 %), and a changed one
//! 17,940 instead of 16,990 (+5.6 %): far over the 1 % that justifies hand-written code.
//! The hand-written one compares eight bytes at a time and hides the result from the
//! optimiser once, at the end; a unit test checks it sees a difference in any bit.

use crate::signing::{HmacSigner, Secrets, Signer};

/// The session id of a session cookie value, exactly as the request sent it (`raw`,
/// still URL-encoded), that this thread verified before under `secrets`.
///
/// HMAC verification is the largest fixed cost of a request with a session, and a browser
/// sends the same cookie value on every request. Each thread keeps the last values it
/// verified (512 direct-mapped slots of at most 117 bytes, 64 KiB per thread): a value
/// that is byte-for-byte equal to one that verified under the same `Secrets` verifies
/// again without the HMAC, and without decoding, as the place of its id was noted. Only
/// values that verified are ever stored, so a forged value can never match; slots are
/// picked by a hash keyed with a per-process random seed, and the comparison runs in
/// constant time over the whole value, so the cache reveals no part of a stored value.
/// Rotating secrets means a new `Secrets`, which matches nothing stored under the old one.
pub(crate) fn remembered_id(secrets: &Secrets, raw: &[u8]) -> Option<String> {
    let (start, len) = slots::lookup(secrets.id, raw)?;
    let id = raw.get(usize::from(start)..usize::from(start) + usize::from(len))?;
    std::str::from_utf8(id).ok().map(str::to_owned)
}

/// Verifies `signed` (the decoded cookie value without its `s:`) with [`HmacSigner`]
/// against every secret of `secrets`. When it verifies and its id appears as is in `raw`
/// (the value as sent; ids of the default generator always do), `raw` is remembered for
/// [`remembered_id`]. Ids that needed URL-encoding are verified on every request.
pub(crate) fn unsign_remembering<'a>(
    secrets: &Secrets,
    raw: &[u8],
    signed: &'a str,
) -> Option<&'a str> {
    let id = secrets
        .iter()
        .find_map(|secret| HmacSigner.unsign(signed, secret))?;
    // `raw` decodes to "s:" + `signed`; where the "s:" is written as is or as "s%3A"
    // and the id has no '%', the id's bytes follow it unchanged.
    let prefix = if raw.starts_with(b"s%3A") || raw.starts_with(b"s%3a") {
        4
    } else if raw.starts_with(b"s:") {
        2
    } else {
        return Some(id);
    };
    let verbatim =
        raw.get(prefix..prefix + id.len()) == Some(id.as_bytes()) && !id.as_bytes().contains(&b'%');
    if let (true, Ok(start), Ok(len)) = (verbatim, u8::try_from(prefix), u8::try_from(id.len())) {
        slots::insert(secrets.id, raw, (start, len));
    }
    Some(id)
}

mod slots {
    use std::cell::RefCell;
    use std::hash::BuildHasher;
    use std::sync::OnceLock;

    use crate::store::memory::IdHash;

    const SLOTS: usize = 512;
    /// Slots of 128 bytes.
    const MAX_LEN: usize = 117;

    #[derive(Clone, Copy)]
    struct Slot {
        /// The `Secrets::id` the value verified under; 0 marks an empty slot.
        owner: u64,
        len: u8,
        /// Where the id is in the value: start and length.
        id: (u8, u8),
        bytes: [u8; MAX_LEN],
    }

    const EMPTY: Slot = Slot {
        owner: 0,
        len: 0,
        id: (0, 0),
        bytes: [0; MAX_LEN],
    };

    thread_local! {
        static SLOTS_OF_THREAD: RefCell<Vec<Slot>> = const { RefCell::new(Vec::new()) };
    }

    fn slot_of(owner: u64, value: &[u8]) -> usize {
        // The store's seeded id hash, with its own seed. Without OS randomness the slots
        // are predictable, which only lets a client evict entries (costing an HMAC),
        // never match one.
        static HASH: OnceLock<IdHash> = OnceLock::new();
        let h = HASH.get_or_init(IdHash::new).hash_one(value);
        ((h ^ owner.wrapping_mul(0x9e37_79b9_7f4a_7c15)) as usize) % SLOTS
    }

    /// Equal lengths and equal bytes, looking at every byte whatever differs (eight at a
    /// time).
    fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
        if a.len() != b.len() {
            return false;
        }
        let (wa, wb) = (a.chunks_exact(8), b.chunks_exact(8));
        let (ra, rb) = (wa.remainder(), wb.remainder());
        let word = |c: &[u8]| u64::from_ne_bytes(c.try_into().unwrap_or([0; 8]));
        let mut diff = wa
            .zip(wb)
            .fold(0u64, |acc, (x, y)| acc | (word(x) ^ word(y)));
        diff |= ra
            .iter()
            .zip(rb)
            .fold(0u64, |acc, (x, y)| acc | u64::from(x ^ y));
        std::hint::black_box(diff) == 0
    }

    /// Where the id is in `value`, if `value` verified under `owner` before.
    pub(super) fn lookup(owner: u64, value: &[u8]) -> Option<(u8, u8)> {
        if value.len() > MAX_LEN {
            return None;
        }
        let at = slot_of(owner, value);
        SLOTS_OF_THREAD.with(|slots| {
            let slots = slots.borrow();
            let s = slots.get(at)?;
            (s.owner == owner && constant_time_eq(&s.bytes[..usize::from(s.len)], value))
                .then_some(s.id)
        })
    }

    pub(super) fn insert(owner: u64, value: &[u8], id: (u8, u8)) {
        let Ok(len) = u8::try_from(value.len()) else {
            return;
        };
        if value.len() > MAX_LEN {
            return;
        }
        let at = slot_of(owner, value);
        SLOTS_OF_THREAD.with(|slots| {
            let mut slots = slots.borrow_mut();
            if slots.is_empty() {
                slots.resize(SLOTS, EMPTY);
            }
            let slot = &mut slots[at];
            slot.owner = owner;
            slot.len = len;
            slot.id = id;
            slot.bytes[..value.len()].copy_from_slice(value);
        });
    }

    #[cfg(test)]
    mod tests {
        use super::constant_time_eq;

        #[test]
        fn constant_time_eq_sees_a_difference_in_any_byte_of_any_length() {
            for len in 0..40usize {
                let a: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
                assert!(constant_time_eq(&a, &a.clone()));
                for at in 0..len {
                    for bit in [0x01u8, 0x80] {
                        let mut b = a.clone();
                        b[at] ^= bit;
                        assert!(!constant_time_eq(&a, &b), "len {len}, byte {at}");
                    }
                }
                assert!(!constant_time_eq(&a, &[a.as_slice(), &[0]].concat()));
            }
        }
    }
}
