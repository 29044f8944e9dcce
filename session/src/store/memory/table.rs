//! The table of one `MemoryStore` shard: open addressing with linear probing over slots
//! that keep their entry's hash.
//!
//! In a store of millions of sessions every table is far larger than the caches, so what
//! an insert or a lookup costs is the cache lines it touches. Here that is the entry's
//! home slot and, now and then, the next one, which lies beside it. (hashbrown keeps its
//! control bytes apart from its slots: two lines far apart per insert, and two more per
//! entry each time a table doubles.) The load stays at most 5/8, so probe runs are short.

/// What the table needs to know of an entry.
pub(crate) trait Hashed {
    /// The entry's hash, computed once when it was made.
    fn hash(&self) -> u64;
}

/// A set of entries found by their hash and an equality test.
pub(crate) struct Table<T> {
    /// A power of two long, or empty.
    slots: Vec<Option<T>>,
    len: usize,
}

impl<T: Hashed> Table<T> {
    pub(crate) const fn new() -> Self {
        Self {
            slots: Vec::new(),
            len: 0,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// How many slots the table holds (its memory, with the entries' own).
    pub(crate) fn slots(&self) -> usize {
        self.slots.len()
    }

    /// The size for `len` entries after a shrink: a load of at most 5/16, half the most
    /// the table takes, so that it does not grow again at once; none for no entries.
    fn size_for(len: usize) -> usize {
        if len == 0 {
            return 0;
        }
        (len * 16 / 5 + 1).next_power_of_two().max(16)
    }

    /// Whether the table is mostly empty (a load under 1/8) and worth rebuilding smaller.
    fn sparse(&self) -> bool {
        self.slots.len() > 16 && self.len * 8 < self.slots.len()
            || self.len == 0 && !self.slots.is_empty()
    }

    /// Rebuilds the table at the size for its entries.
    fn shrink(&mut self) {
        let size = Self::size_for(self.len);
        let old = std::mem::replace(&mut self.slots, Self::empty_slots(size));
        for entry in old.into_iter().flatten() {
            self.place(entry);
        }
    }

    fn mask(&self) -> usize {
        self.slots.len().wrapping_sub(1)
    }

    fn home(&self, hash: u64) -> usize {
        // The low bits: the store picks the shard from bits 32 and up.
        (hash as usize) & self.mask()
    }

    /// The slot of the entry with `hash` for which `eq` holds.
    pub(crate) fn find(&self, hash: u64, eq: impl Fn(&T) -> bool) -> Option<usize> {
        if self.slots.is_empty() {
            return None;
        }
        let mut i = self.home(hash);
        loop {
            let entry = self.slots.get(i)?.as_ref()?;
            if entry.hash() == hash && eq(entry) {
                return Some(i);
            }
            i = (i + 1) & self.mask();
        }
    }

    pub(crate) fn get(&self, slot: usize) -> Option<&T> {
        self.slots.get(slot)?.as_ref()
    }

    pub(crate) fn get_mut(&mut self, slot: usize) -> Option<&mut T> {
        self.slots.get_mut(slot)?.as_mut()
    }

    /// Adds an entry that is not in the table (the caller looked).
    pub(crate) fn insert_new(&mut self, entry: T) {
        if (self.len + 1) * 8 > self.slots.len() * 5 {
            self.grow();
        }
        self.place(entry);
        self.len += 1;
    }

    /// Puts `entry` in the first free slot from its home (there is one: the load is
    /// kept under 5/8).
    fn place(&mut self, entry: T) {
        let mask = self.mask();
        let mut i = self.home(entry.hash());
        while let Some(Some(_)) = self.slots.get(i) {
            i = (i + 1) & mask;
        }
        if let Some(slot) = self.slots.get_mut(i) {
            *slot = Some(entry);
        }
    }

    fn grow(&mut self) {
        let size = (self.slots.len() * 2).max(16);
        let old = std::mem::replace(&mut self.slots, Self::empty_slots(size));
        for entry in old.into_iter().flatten() {
            self.place(entry);
        }
    }

    fn empty_slots(size: usize) -> Vec<Option<T>> {
        let mut slots = Vec::with_capacity(size);
        slots.resize_with(size, || None);
        slots
    }

    /// Removes the entry in `slot`, moving back the entries of its probe run that
    /// would otherwise no longer be found (no tombstones).
    pub(crate) fn remove(&mut self, slot: usize) -> Option<T> {
        let removed = self.slots.get_mut(slot)?.take()?;
        self.len -= 1;
        let mask = self.mask();
        let mut hole = slot;
        let mut i = (slot + 1) & mask;
        while let Some(Some(entry)) = self.slots.get(i) {
            let home = self.home(entry.hash());
            // The entry may fill the hole if the hole lies on its way from its home,
            // cyclically: home ≤ hole < i.
            if (i.wrapping_sub(home) & mask) >= (i.wrapping_sub(hole) & mask) {
                self.slots.swap(hole, i);
                hole = i;
            }
            i = (i + 1) & mask;
        }
        if self.sparse() {
            self.shrink();
        }
        Some(removed)
    }

    /// Keeps the entries for which `keep` holds.
    /// Keeps the entries for which `keep` holds, in a table shrunk to them when they
    /// leave it mostly empty.
    pub(crate) fn retain(&mut self, mut keep: impl FnMut(&T) -> bool) {
        if self.slots.iter().flatten().all(&mut keep) {
            return;
        }
        let old_size = self.slots.len();
        let kept: Vec<T> = std::mem::take(&mut self.slots)
            .into_iter()
            .flatten()
            .filter(|e| keep(e))
            .collect();
        self.len = kept.len();
        // The old size, unless the survivors leave it mostly empty.
        let size = if kept.len() * 8 < old_size {
            Self::size_for(kept.len())
        } else {
            old_size
        };
        self.slots = Self::empty_slots(size);
        for entry in kept {
            self.place(entry);
        }
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &T> {
        self.slots.iter().flatten()
    }

    pub(crate) fn clear(&mut self) {
        self.slots = Vec::new();
        self.len = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[derive(Debug, PartialEq)]
    struct E(u64, u32);

    impl Hashed for E {
        fn hash(&self) -> u64 {
            self.0
        }
    }

    /// A small deterministic generator.
    fn next(x: &mut u64) -> u64 {
        *x ^= *x << 13;
        *x ^= *x >> 7;
        *x ^= *x << 17;
        *x
    }

    #[test]
    fn the_table_agrees_with_a_hash_map_through_inserts_removals_and_sweeps() {
        let mut t = Table::new();
        let mut m: HashMap<u32, u64> = HashMap::new();
        let mut x = 0x2545_f491_4f6c_dd1d;
        for step in 0..40_000u32 {
            // Few distinct hashes on purpose: long probe runs and shared hashes.
            let key = (next(&mut x) % 3000) as u32;
            let hash = u64::from(key % 700) * 0x9e37_79b9;
            match next(&mut x) % 4 {
                0 | 1 => {
                    if t.find(hash, |e: &E| e.1 == key).is_none() {
                        t.insert_new(E(hash, key));
                        m.insert(key, hash);
                    }
                }
                2 => {
                    let found = t.find(hash, |e: &E| e.1 == key);
                    assert_eq!(found.is_some(), m.contains_key(&key), "step {step}");
                    if let Some(slot) = found {
                        assert_eq!(t.remove(slot), Some(E(hash, key)));
                        m.remove(&key);
                    }
                }
                _ => {
                    let found = t.find(hash, |e: &E| e.1 == key);
                    assert_eq!(
                        found.and_then(|s| t.get(s)).map(|e| e.1),
                        m.contains_key(&key).then_some(key)
                    );
                }
            }
            if step % 10_000 == 9_999 {
                t.retain(|e| e.1 % 3 != 0);
                m.retain(|k, _| k % 3 != 0);
            }
            assert_eq!(t.len(), m.len());
        }
        for (&key, &hash) in &m {
            assert!(t.find(hash, |e: &E| e.1 == key).is_some());
        }
        assert_eq!(t.iter().count(), m.len());
        t.clear();
        assert_eq!(t.len(), 0);
        assert_eq!(t.find(0, |_: &E| true), None);
    }

    #[test]
    fn a_table_emptied_by_removals_or_a_sweep_shrinks() {
        let mut t = Table::new();
        for k in 0..10_000u32 {
            t.insert_new(E(u64::from(k).wrapping_mul(0x9e37_79b9_7f4a_7c15), k));
        }
        let full = t.slots();
        assert!(full >= 16_384, "{full}");
        t.retain(|e| e.1 < 100);
        assert_eq!(t.len(), 100);
        assert!(t.slots() <= 512, "{}", t.slots());
        for k in 0..100u32 {
            let hash = u64::from(k).wrapping_mul(0x9e37_79b9_7f4a_7c15);
            let slot = t.find(hash, |e| e.1 == k).unwrap();
            t.remove(slot);
        }
        assert_eq!((t.len(), t.slots()), (0, 0));
    }
}
