//! Which keys a stream-stream join's window store may hold, kept in memory beside the store,
//! so that a record whose key the other side never stored in its window (most page views
//! have no click) skips the store's range scan: on RocksDB an iterator created, seeked and
//! dropped per record.
//!
//! The index maps a 64-bit hash of the serialized key to the smallest and largest
//! timestamp put under it. It answers "may hold a record in `[from, to]`" conservatively:
//! a hash collision or a stale range only costs the scan it would have done anyway. It
//! knows nothing of what the store held before this instance opened it (restored state),
//! nor of keys it has forgotten, so it answers only for ranges that start after both.

use std::collections::HashMap;
use std::hash::BuildHasher;

/// Keys indexed per store before the index gives up (about 32 bytes each): past that the
/// store's own scans answer every lookup, as without the index.
pub(crate) const MAX_KEYS: usize = 1 << 18;

/// The in-memory index of one join window store's keys.
pub(crate) struct Presence {
    /// Key hash -> (smallest, largest) timestamp stored under it.
    keys: HashMap<u64, (i64, i64), foldhash::fast::FixedState>,
    /// Lookups of ranges starting at or after this are answered from `keys`; earlier
    /// ranges may reach records the index does not know (restored, or forgotten).
    trusted_from: i64,
    /// The size at which the next sweep of expired keys runs.
    next_sweep: usize,
    /// Gave up: the store held more keys than [`MAX_KEYS`] within its retention.
    disabled: bool,
    hasher: foldhash::fast::FixedState,
}

impl Presence {
    /// An index of a store whose newest record so far is at `observed` (-1: empty): it
    /// answers for ranges starting after that.
    pub(crate) fn new(observed: i64) -> Self {
        Self {
            keys: HashMap::default(),
            trusted_from: observed.saturating_add(1),
            next_sweep: 1024,
            disabled: false,
            hasher: foldhash::fast::FixedState::with_seed(0x6a6f_696e),
        }
    }

    /// The hash the index keeps of a serialized key.
    pub(crate) fn hash(&self, key: &[u8]) -> u64 {
        self.hasher.hash_one(key)
    }

    /// Whether the store may hold a record of the key with hash `h` at a timestamp within
    /// `[from, to]` (`false` only when it certainly does not).
    pub(crate) fn may_hold(&self, h: u64, from: i64, to: i64) -> bool {
        if self.disabled || from < self.trusted_from {
            return true;
        }
        self.keys
            .get(&h)
            .is_some_and(|&(min, max)| min <= to && max >= from)
    }

    /// Notes a record of the key with hash `h` put at `ts`. `expired_before` is the
    /// timestamp below which the store no longer keeps records (its stream time minus its
    /// retention): keys with nothing newer are forgotten when the index grows.
    pub(crate) fn put(&mut self, h: u64, ts: i64, expired_before: i64) {
        if self.disabled {
            return;
        }
        let e = self.keys.entry(h).or_insert((ts, ts));
        e.0 = e.0.min(ts);
        e.1 = e.1.max(ts);
        if self.keys.len() >= self.next_sweep {
            self.sweep(expired_before);
        }
    }

    fn sweep(&mut self, expired_before: i64) {
        self.keys.retain(|_, &mut (_, max)| max >= expired_before);
        // A forgotten key may still have records below the cutoff, in segments not yet
        // dropped: ranges reaching there go to the store.
        self.trusted_from = self.trusted_from.max(expired_before);
        if self.keys.len() > MAX_KEYS {
            self.disabled = true;
            self.keys = HashMap::default();
        }
        self.next_sweep = (self.keys.len() * 2).max(1024);
    }

    /// Keys indexed (for tests).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.keys.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_for_what_it_saw_and_defers_to_the_store_for_the_rest() {
        let mut p = Presence::new(99);
        let a = p.hash(b"a");
        let b = p.hash(b"b");
        p.put(a, 150, 0);
        // Before the restored stream time: the store may hold anything.
        assert!(p.may_hold(b, 50, 200));
        // After it: only what was put.
        assert!(!p.may_hold(b, 100, 200));
        assert!(p.may_hold(a, 100, 200));
        assert!(p.may_hold(a, 150, 150));
        assert!(!p.may_hold(a, 151, 300));
        assert!(!p.may_hold(a, 100, 149));
        p.put(a, 120, 0);
        assert!(p.may_hold(a, 100, 130));
    }

    #[test]
    fn a_sweep_forgets_expired_keys_and_stops_answering_below_its_cutoff() {
        let mut p = Presence::new(-1);
        for i in 0..1024u32 {
            let h = p.hash(&i.to_be_bytes());
            p.put(h, i64::from(i), 512);
        }
        assert_eq!(p.len(), 512);
        let old = p.hash(&3u32.to_be_bytes());
        let new = p.hash(&1000u32.to_be_bytes());
        // Key 3 was forgotten, but its record may still be in the store.
        assert!(p.may_hold(old, 0, 10));
        assert!(p.may_hold(new, 1000, 1000));
        assert!(!p.may_hold(new, 1001, 2000));
        assert!(!p.may_hold(old, 600, 700));
    }

    #[test]
    fn too_many_live_keys_turn_it_off() {
        let mut p = Presence::new(-1);
        for i in 0..=MAX_KEYS as u64 * 2 {
            p.put(i, 10, 0);
        }
        assert!(p.may_hold(p.hash(b"never"), 100, 200));
        assert_eq!(p.len(), 0);
    }
}
