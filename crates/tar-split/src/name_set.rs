//! The set of entry names a stream has had, in constant memory per name.
//!
//! Docker refuses a layer whose tar names one path twice, so every name must be remembered until
//! the end of the stream. A layer may have millions of entries: keeping the names themselves
//! costs their length plus an allocation each (tens of MiB at 200,000 entries). Each name is kept
//! as a 128-bit fingerprint instead: two SipHash-1-3 values under keys drawn at random for the
//! process (std's `RandomState`), so that no archive can be built to collide. Two different
//! names share a fingerprint with probability about n²/2¹²⁹ (below 10⁻²⁴ at ten million names).
//! The fingerprints are spread over 256 tables by their top byte, so that growing one table
//! never holds two copies of the whole set.

use std::collections::HashSet;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};

/// Fingerprints are already uniformly random: the tables use them as their own hash.
#[derive(Default)]
struct Identity(u64);

impl Hasher for Identity {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u128` is used; fold anything else in for completeness.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u128(&mut self, value: u128) {
        self.0 = value as u64;
    }
}

type Table = HashSet<u128, BuildHasherDefault<Identity>>;

const N_TABLES: usize = 256;

pub struct NameSet {
    keys: [std::collections::hash_map::RandomState; 2],
    tables: Vec<Table>,
}

impl Default for NameSet {
    fn default() -> NameSet {
        NameSet::new()
    }
}

impl NameSet {
    pub fn new() -> NameSet {
        NameSet {
            keys: [Default::default(), Default::default()],
            tables: (0..N_TABLES).map(|_| Table::default()).collect(),
        }
    }

    fn fingerprint(&self, name: &[u8]) -> u128 {
        let [high, low] = self.keys.each_ref().map(|key| key.hash_one(name));
        (u128::from(high) << 64) | u128::from(low)
    }

    /// Adds `name`; false if it was there already.
    pub fn insert(&mut self, name: &[u8]) -> bool {
        let fingerprint = self.fingerprint(name);
        self.tables[(fingerprint >> 120) as usize].insert(fingerprint)
    }

    /// Whether `name` is in the set.
    pub fn contains(&self, name: &[u8]) -> bool {
        let fingerprint = self.fingerprint(name);
        self.tables[(fingerprint >> 120) as usize].contains(&fingerprint)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_names_and_tells_them_apart() {
        let mut set = NameSet::new();
        for idx in 0..50_000u32 {
            assert!(set.insert(format!("dir/{idx}").as_bytes()));
        }
        for idx in 0..50_000u32 {
            assert!(set.contains(format!("dir/{idx}").as_bytes()));
            assert!(!set.insert(format!("dir/{idx}").as_bytes()));
            assert!(!set.contains(format!("dir/{idx}x").as_bytes()));
        }
        assert!(set.insert(b""));
        assert!(!set.insert(b""));
    }
}
