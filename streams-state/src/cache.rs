//! The record cache: a bounded byte cache in front of a store that coalesces updates per key
//! and passes them on (to the store, its changelog and downstream) only on flush (commit) or
//! eviction — Kafka Streams' record cache.
//!
//! All caches of one stream thread share one byte budget ([`ThreadCache`]). As in Kafka, a
//! write that pushes the thread over its budget evicts from the cache written to (oldest
//! entry first), so evicted records are always forwarded in the context of their own store.
//! A budget of 0 turns caching off: every write goes straight through.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::ops::Bound;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::delegate::delegate;
use crate::entry::{ChangelogRecord, FlushedEntry};
use crate::kv::{KeyValueIter, KeyValueStore, StateStore};
use crate::stats::RocksDbProperties;
use crate::{SessionIter, StateError, WindowIter, WindowedKeyValueIter};

/// A thread's cache budget, shared by the caches of its tasks' stores. Cheap to clone.
#[derive(Debug, Clone)]
pub struct ThreadCache {
    used: Arc<AtomicUsize>,
    max: usize,
}

impl ThreadCache {
    /// A budget of `max_bytes` (0 disables caching).
    pub fn new(max_bytes: usize) -> Self {
        Self {
            used: Arc::new(AtomicUsize::new(0)),
            max: max_bytes,
        }
    }
    /// Bytes in use by every cache of the thread.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }
    /// The budget.
    pub fn max(&self) -> usize {
        self.max
    }
}

#[derive(Debug)]
struct Entry {
    /// The key, shared with the map and the write-order queue.
    key: Arc<[u8]>,
    value: Option<Vec<u8>>,
    dirty: bool,
    seq: u64,
    /// The store below is known to hold no value for the key (it was looked up and found
    /// absent, or a deletion was written down), so writing the entry down needs no read of
    /// the old value.
    absent_below: bool,
}

/// A write that takes the thread over a budget of at least [`BATCHED_EVICTION_MIN`]
/// evicts down to this fraction below it (1/64: 160 KiB of a 10 MiB cache), so that
/// evictions come in batches the store below writes in key order, not one scattered write
/// per record. Smaller budgets evict only what takes them back within the budget.
const EVICT_SLACK_DIVISOR: usize = 64;
const BATCHED_EVICTION_MIN: usize = 1 << 20;

/// Writes `entries` down with `write` (which returns the old value the store below held),
/// in key order, and remembers them as flushed updates in their own (write) order. Keys of
/// one batch are distinct, so the order of the store's writes changes nothing but their
/// speed: RocksDB's memtable inserts a run of sorted keys far faster than scattered ones.
fn write_down_sorted(
    entries: Vec<WriteDown>,
    flushed: &mut Vec<FlushedEntry>,
    mut write: impl FnMut(&[u8], Option<&[u8]>, bool) -> Result<Option<Vec<u8>>, StateError>,
) -> Result<(), StateError> {
    let mut order: Vec<usize> = (0..entries.len()).collect();
    if entries.len() > 1 {
        order.sort_unstable_by(|&a, &b| entries[a].0.cmp(&entries[b].0));
    }
    let mut olds: Vec<Option<Vec<u8>>> = vec![None; entries.len()];
    for i in order {
        let (key, value, absent) = &entries[i];
        olds[i] = write(key, value.as_deref(), *absent)?;
    }
    flushed.extend(
        entries
            .into_iter()
            .zip(olds)
            .map(|((key, new, _), old)| FlushedEntry { key, new, old }),
    );
    Ok(())
}

/// Bytes an entry is charged for: key, value and bookkeeping.
fn entry_size(key: &[u8], value: &Option<Vec<u8>>) -> usize {
    2 * key.len() + value.as_ref().map_or(0, Vec::len) + 64
}

/// The cache proper, shared by the key-value and window caches: entries by key bytes, a
/// write-order queue for eviction, and the thread budget's accounting.
pub(crate) struct CacheCore {
    budget: ThreadCache,
    /// foldhash rather than std's SipHash: a lookup per record, on keys the cache already
    /// holds in full (profiles of the activity app had SipHash at 4 % of a stream thread).
    entries: HashMap<Arc<[u8]>, Entry, foldhash::fast::RandomState>,
    /// The keys of each record key in order, kept only by window and session caches, which
    /// look up one key's entries by range (a key-value cache needs only point lookups).
    ordered: Option<KeyIndex>,
    /// Writes in order, least recent first; an element is stale when its entry has been
    /// written again since (its sequence number no longer matches) or removed. Compacted
    /// when stale elements dominate.
    lru: VecDeque<(u64, Arc<[u8]>)>,
    next_seq: u64,
    bytes: usize,
    /// The hit ratio's statistics, kept only at the `DEBUG` recording level.
    hit_ratio: Option<Arc<crate::HitRatioStats>>,
    /// The last key that missed the cache and was found absent in the store below (whether
    /// it is set, and its bytes; the buffer is reused): the usual read-then-write of a new
    /// key then writes it down without reading the store again.
    absent: RefCell<(bool, Vec<u8>)>,
    /// The largest session end written through a session cache (`i64::MIN` before the
    /// first): every cached session ends at or before it, which bounds one key's range
    /// of sessions (see [`CachingSessionStore`]).
    max_session_end: i64,
}

/// The cached keys of a window or session cache grouped by record key: a composite key is
/// the record key's bytes followed by a fixed-size suffix (a window's start, a session's end
/// and start), and one record key's composite keys are kept sorted. Looking up one key's
/// windows then costs a hash lookup and a walk of a short list, where one ordered set of
/// every composite key cost a tree search of long keys on every write (7 % of W3).
struct KeyIndex {
    suffix: usize,
    keys: HashMap<Box<[u8]>, SortedKeys, foldhash::fast::RandomState>,
}

/// One record key's composite keys, ascending.
type SortedKeys = Vec<Arc<[u8]>>;

impl KeyIndex {
    fn new(suffix: usize) -> Self {
        Self {
            suffix,
            keys: HashMap::default(),
        }
    }

    fn prefix<'a>(&self, composite: &'a [u8]) -> &'a [u8] {
        &composite[..composite.len().saturating_sub(self.suffix)]
    }

    fn insert(&mut self, composite: Arc<[u8]>) {
        let prefix = self.prefix(&composite);
        let list = match self.keys.get_mut(prefix) {
            Some(list) => list,
            None => self.keys.entry(prefix.into()).or_default(),
        };
        if let Err(at) = list.binary_search_by(|k| (**k).cmp(&*composite)) {
            list.insert(at, composite);
        }
    }

    fn remove(&mut self, composite: &[u8]) {
        let prefix = self.prefix(composite);
        if let Some(list) = self.keys.get_mut(prefix) {
            if let Ok(at) = list.binary_search_by(|k| (**k).cmp(composite)) {
                list.remove(at);
            }
            if list.is_empty() {
                self.keys.remove(prefix);
            }
        }
    }
}

/// Cached keys and values (a `None` value is a cached deletion).
pub(crate) type CachedIter<'a> = Box<dyn Iterator<Item = (&'a [u8], &'a Option<Vec<u8>>)> + 'a>;

/// A dirty entry that must be written to the store below: key, new value, and whether the
/// store below is known to hold no value for the key (then its old value is `None` without
/// a read).
pub(crate) type WriteDown = (Vec<u8>, Option<Vec<u8>>, bool);

impl CacheCore {
    pub(crate) fn new(budget: ThreadCache) -> Self {
        Self {
            budget,
            entries: HashMap::default(),
            ordered: None,
            lru: VecDeque::new(),
            next_seq: 0,
            bytes: 0,
            hit_ratio: None,
            absent: RefCell::new((false, Vec::new())),
            max_session_end: i64::MIN,
        }
    }

    fn charge(&mut self, delta: isize) {
        if delta >= 0 {
            self.bytes += delta as usize;
            self.budget
                .used
                .fetch_add(delta as usize, Ordering::Relaxed);
        } else {
            let d = (-delta) as usize;
            self.bytes = self.bytes.saturating_sub(d);
            self.budget
                .used
                .fetch_sub(d.min(self.budget.used()), Ordering::Relaxed);
        }
    }

    /// A cache that also keeps each record key's composite keys (the key's bytes, then a
    /// suffix of `suffix` bytes) in order, for [`range`](Self::range).
    pub(crate) fn ordered(budget: ThreadCache, suffix: usize) -> Self {
        let mut core = Self::new(budget);
        core.ordered = Some(KeyIndex::new(suffix));
        core
    }

    /// The cached value of `key`: `Some(None)` is a cached deletion, `None` a miss.
    /// Counted in the hit ratio, if kept.
    #[inline]
    pub(crate) fn get(&self, key: &[u8]) -> Option<&Option<Vec<u8>>> {
        let found = self.entries.get(key).map(|e| &e.value);
        if let Some(stats) = &self.hit_ratio {
            stats.record(found.is_some());
        }
        found
    }

    /// Remembers that `key` missed the cache and the store below has no value for it.
    pub(crate) fn note_absent(&self, key: &[u8]) {
        let mut absent = self.absent.borrow_mut();
        absent.0 = true;
        absent.1.clear();
        absent.1.extend_from_slice(key);
    }

    /// Whether `key` is the one last found absent below; forgets it either way (the caller
    /// is about to write it).
    fn take_absent(&self, key: &[u8]) -> bool {
        let mut absent = self.absent.borrow_mut();
        let hit = absent.0 && absent.1 == key;
        absent.0 = false;
        hit
    }

    /// Caches a write. Returns what must be written down now: the write itself when the
    /// budget is 0, else the dirty entries evicted to stay within the thread's budget.
    pub(crate) fn put(&mut self, key: &[u8], value: Option<Vec<u8>>) -> Vec<WriteDown> {
        let absent = self.take_absent(key);
        if self.budget.max == 0 {
            return vec![(key.to_vec(), value, absent)];
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        let new_size = entry_size(key, &value) as isize;
        let shared = match self.entries.get_mut(key) {
            Some(e) => {
                // Overwrite in place: the key is not copied again. A clean entry holds what
                // the store below holds.
                let old_size = entry_size(key, &e.value) as isize;
                if !e.dirty {
                    e.absent_below = e.value.is_none();
                }
                e.value = value;
                e.dirty = true;
                e.seq = seq;
                let k = e.key.clone();
                self.charge(new_size - old_size);
                k
            }
            None => {
                let k: Arc<[u8]> = Arc::from(key);
                if let Some(ordered) = &mut self.ordered {
                    ordered.insert(k.clone());
                }
                self.entries.insert(
                    k.clone(),
                    Entry {
                        key: k.clone(),
                        value,
                        dirty: true,
                        seq,
                        absent_below: absent,
                    },
                );
                self.charge(new_size);
                k
            }
        };
        self.lru.push_back((seq, shared));
        if self.lru.len() > 2 * self.entries.len() + 64 {
            let entries = &self.entries;
            self.lru
                .retain(|(seq, k)| entries.get(k).is_some_and(|e| e.seq == *seq));
        }
        let mut out = Vec::new();
        let target =
            if self.budget.used() > self.budget.max && self.budget.max >= BATCHED_EVICTION_MIN {
                self.budget.max - self.budget.max / EVICT_SLACK_DIVISOR
            } else {
                self.budget.max
            };
        while self.budget.used() > target {
            let Some((seq, key)) = self.lru.pop_front() else {
                break;
            };
            if self.entries.get(&key).is_none_or(|e| e.seq != seq) {
                continue; // stale: written again later, or already gone
            }
            let Some(entry) = self.entries.remove(&key) else {
                continue;
            };
            if let Some(ordered) = &mut self.ordered {
                ordered.remove(&key);
            }
            self.charge(-(entry_size(&key, &entry.value) as isize));
            if entry.dirty {
                out.push((key.to_vec(), entry.value, entry.absent_below));
            }
        }
        out
    }

    /// Every dirty entry in write order, now marked clean.
    pub(crate) fn take_dirty(&mut self) -> Vec<WriteDown> {
        self.absent.borrow_mut().0 = false;
        let mut dirty: Vec<(u64, Arc<[u8]>)> = self
            .entries
            .iter()
            .filter(|(_, e)| e.dirty)
            .map(|(k, e)| (e.seq, k.clone()))
            .collect();
        dirty.sort_unstable_by_key(|(seq, _)| *seq);
        dirty
            .into_iter()
            .filter_map(|(_, key)| {
                let e = self.entries.get_mut(&key)?;
                e.dirty = false;
                Some((key.to_vec(), e.value.clone(), e.absent_below))
            })
            .collect()
    }

    /// Forgets `key` (restoration overwrites it below).
    pub(crate) fn remove(&mut self, key: &[u8]) {
        self.take_absent(key);
        if let Some(ordered) = &mut self.ordered {
            ordered.remove(key);
        }
        if let Some(e) = self.entries.remove(key) {
            self.charge(-(entry_size(key, &e.value) as isize));
        }
    }

    /// Every cached key and value, in no particular order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&[u8], &Option<Vec<u8>>)> {
        self.entries.iter().map(|(k, e)| (&**k, &e.value))
    }

    /// Cached keys and values with `lo <= key <= hi`, ascending (all of them, unordered,
    /// for a cache that does not keep its keys in order).
    pub(crate) fn range<'a>(&'a self, lo: &[u8], hi: &[u8]) -> CachedIter<'a> {
        let Some(ordered) = &self.ordered else {
            return Box::new(self.iter());
        };
        if lo > hi {
            return Box::new(std::iter::empty());
        }
        let inside = |k: &&Arc<[u8]>| (***k) >= *lo && (***k) <= *hi;
        let prefix = ordered.prefix(lo);
        let keys: Vec<&Arc<[u8]>> = if prefix == ordered.prefix(hi) {
            let keys = ordered.keys.get(prefix).map_or(&[][..], Vec::as_slice);
            keys.iter().filter(inside).collect()
        } else {
            // Bounds of different record keys: every cached key between them, sorted.
            let mut keys: Vec<&Arc<[u8]>> = self.entries.keys().filter(inside).collect();
            keys.sort_unstable();
            keys
        };
        Box::new(
            keys.into_iter()
                .filter_map(|k| self.entries.get(k).map(|e| (&**k, &e.value))),
        )
    }

    /// Number of cached entries.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// New keys not yet in the store below (dirty and present).
    pub(crate) fn dirty_present(&self) -> usize {
        self.entries
            .values()
            .filter(|e| e.dirty && e.value.is_some())
            .count()
    }
}

impl Drop for CacheCore {
    fn drop(&mut self) {
        self.charge(-(self.bytes as isize));
    }
}

/// Declares a store behind the record cache: the struct, `Debug`, `new` (its `CacheCore` made
/// by `$make_cache` from the budget) and its `StateStore` implementation (flushing writes
/// the cache down first). Declared before the stores that use it.
macro_rules! cached_store {
    ($(#[$doc:meta])* $name:ident, $inner:path, $make_cache:expr) => {
        $(#[$doc])*
        pub struct $name {
            inner: Box<dyn $inner>,
            cache: CacheCore,
            evicted: Vec<FlushedEntry>,
        }

        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($name))
                    .field("store", &self.inner.name())
                    .field("entries", &self.cache.len())
                    .finish()
            }
        }

        impl $name {
            /// Caches `inner` within the thread budget `budget`.
            pub fn new(inner: Box<dyn $inner>, budget: ThreadCache) -> Self {
                Self {
                    inner,
                    cache: $make_cache(budget),
                    evicted: Vec::new(),
                }
            }

            /// Records the cache's hit ratio (Kafka's `hit-ratio`, a `DEBUG` metric) into
            /// `stats`.
            pub fn with_hit_ratio(mut self, stats: Arc<crate::HitRatioStats>) -> Self {
                self.cache.hit_ratio = Some(stats);
                self
            }
        }

        impl StateStore for $name {
            delegate!(StateStore to inner: name, persistent, is_open);
            /// Writes dirty entries to the store below (they become available through
            /// `take_flushed`) and flushes it.
            fn flush(&mut self) -> Result<(), StateError> {
                <Self as $inner>::flush_cache(self)?;
                self.inner.flush()
            }
            fn close(&mut self) -> Result<(), StateError> {
                self.flush()?;
                self.inner.close()
            }
        }
    };
}

/// The methods the caching stores' store traits share: restoration drops the cached entries
/// of the keys restored before it writes the store below, flushing the cache writes its dirty
/// entries down, and what left the cache is taken once.
macro_rules! cache_layer_methods {
    () => {
        fn restore_batch(&mut self, records: &[ChangelogRecord]) -> Result<(), StateError> {
            for r in records {
                self.cache.remove(&r.key);
            }
            self.inner.restore_batch(records)
        }

        fn flush_cache(&mut self) -> Result<(), StateError> {
            let dirty = self.cache.take_dirty();
            self.write_down(dirty)
        }

        fn take_flushed(&mut self) -> Vec<FlushedEntry> {
            std::mem::take(&mut self.evicted)
        }
    };
}

cached_store!(
    /// A cached key-value store: writes are coalesced per key in the thread's record cache and
    /// passed on to the inner store, its changelog and downstream on flush or eviction.
    CachingKeyValueStore,
    KeyValueStore,
    CacheCore::new
);

impl CachingKeyValueStore {
    /// Writes entries down to the store below, remembering them as flushed updates.
    fn write_down(&mut self, entries: Vec<WriteDown>) -> Result<(), StateError> {
        let inner = &mut self.inner;
        write_down_sorted(entries, &mut self.evicted, |key, value, absent| {
            let old = if absent { None } else { inner.get(key)? };
            match value {
                Some(v) => inner.put(key, v)?,
                None => inner.remove(key)?,
            }
            Ok(old)
        })
    }

    fn insert(&mut self, key: &[u8], value: Option<Vec<u8>>) -> Result<(), StateError> {
        let down = self.cache.put(key, value);
        self.write_down(down)
    }

    /// Number of cached entries.
    pub fn cached_entries(&self) -> usize {
        self.cache.len()
    }
}

impl KeyValueStore for CachingKeyValueStore {
    delegate!(KeyValueStore to inner: begin_restore, end_restore, snapshot_to, rocksdb_properties);

    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
        match self.cache.get(key) {
            Some(v) => Ok(v.clone()),
            None => {
                let below = self.inner.get(key)?;
                if below.is_none() {
                    self.cache.note_absent(key);
                }
                Ok(below)
            }
        }
    }

    fn put(&mut self, key: &[u8], value: &[u8]) -> Result<(), StateError> {
        self.insert(key, Some(value.to_vec()))
    }

    fn delete(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
        let old = self.get(key)?;
        self.insert(key, None)?;
        Ok(old)
    }

    fn remove(&mut self, key: &[u8]) -> Result<(), StateError> {
        self.insert(key, None)
    }

    /// Merges the cache's entries over the store's range (cached tombstones hide keys).
    fn range<'a>(
        &'a self,
        from: Bound<&[u8]>,
        to: Bound<&[u8]>,
    ) -> Result<KeyValueIter<'a>, StateError> {
        Ok(boxed_ok(self.merged(from, to)?.into_iter(), false))
    }

    fn reverse_range<'a>(
        &'a self,
        from: Bound<&[u8]>,
        to: Bound<&[u8]>,
    ) -> Result<KeyValueIter<'a>, StateError> {
        Ok(boxed_ok(self.merged(from, to)?.into_iter(), true))
    }

    fn approximate_num_entries(&self) -> Result<u64, StateError> {
        Ok(self.inner.approximate_num_entries()? + self.cache.dirty_present() as u64)
    }

    cache_layer_methods!();
}

impl CachingKeyValueStore {
    fn merged(
        &self,
        from: Bound<&[u8]>,
        to: Bound<&[u8]>,
    ) -> Result<Vec<crate::KeyValueBytes>, StateError> {
        let mut map: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
        for kv in self.inner.range(from, to)? {
            let (k, v) = kv?;
            map.insert(k, v);
        }
        let inside = |k: &[u8]| {
            (match from {
                Bound::Included(f) => k >= f,
                Bound::Excluded(f) => k > f,
                Bound::Unbounded => true,
            }) && (match to {
                Bound::Included(t) => k <= t,
                Bound::Excluded(t) => k < t,
                Bound::Unbounded => true,
            })
        };
        for (k, value) in self.cache.iter() {
            if inside(k) {
                match value {
                    Some(v) => {
                        map.insert(k.to_vec(), v.clone());
                    }
                    None => {
                        map.remove(k);
                    }
                }
            }
        }
        Ok(map.into_iter().collect())
    }
}

cached_store!(
    /// A window store behind the record cache: windows are cached under their changelog key
    /// (key bytes, 8-byte start) and leave the cache, as [`FlushedEntry`]s with that key, on
    /// commit or eviction.
    CachingWindowStore,
    crate::WindowStore,
    |budget| CacheCore::ordered(budget, 8)
);

impl CachingWindowStore {
    fn write_down(&mut self, entries: Vec<WriteDown>) -> Result<(), StateError> {
        let inner = &mut self.inner;
        write_down_sorted(entries, &mut self.evicted, |composite, value, absent| {
            let (key, start) = crate::split_window_changelog_key(composite)?;
            let old = if absent {
                None
            } else {
                inner.fetch(&key, start)?
            };
            inner.put(&key, value, start)?;
            Ok(old)
        })
    }

    /// The cached windows of keys in `[from, to]` (open when `None`) with starts in
    /// `[t_from, t_to]`, decoded.
    fn cached(
        &self,
        key_from: Option<&[u8]>,
        key_to: Option<&[u8]>,
        t_from: i64,
        t_to: i64,
    ) -> Vec<(crate::WindowedKeyBytes, Option<Vec<u8>>)> {
        // One key: its entries are contiguous (key bytes, then the big-endian start). Window
        // starts are never negative (records with negative timestamps are refused), so the
        // range starts at 0 at the lowest. Key ranges scan the cache.
        let entries = match (key_from, key_to) {
            (Some(f), Some(t)) if f == t && t_to >= 0 => self.cache.range(
                &crate::window_changelog_key(f, t_from.max(0)),
                &crate::window_changelog_key(f, t_to),
            ),
            _ => Box::new(self.cache.iter()),
        };
        entries
            .filter_map(|(composite, v)| {
                let (key, start) = crate::split_window_changelog_key(composite).ok()?;
                let inside = start >= t_from
                    && start <= t_to
                    && key_from.is_none_or(|f| key.as_slice() >= f)
                    && key_to.is_none_or(|t| key.as_slice() <= t);
                inside.then(|| {
                    (
                        crate::WindowedKeyBytes {
                            key,
                            window_start: start,
                        },
                        v.clone(),
                    )
                })
            })
            .collect()
    }

    /// The store's windows in range with the cache laid over them, ascending.
    fn merged(
        &self,
        below: WindowedKeyValueIter<'_>,
        cached: Vec<(crate::WindowedKeyBytes, Option<Vec<u8>>)>,
    ) -> Result<Vec<(crate::WindowedKeyBytes, Vec<u8>)>, StateError> {
        let mut map = BTreeMap::new();
        for r in below {
            let (k, v) = r?;
            map.insert(k, v);
        }
        for (k, v) in cached {
            match v {
                Some(v) => {
                    map.insert(k, v);
                }
                None => {
                    map.remove(&k);
                }
            }
        }
        Ok(map.into_iter().collect())
    }
}

type WindowEntries = Vec<(crate::WindowedKeyBytes, Vec<u8>)>;

impl CachingWindowStore {
    fn key_range(
        &self,
        key_from: Option<&[u8]>,
        key_to: Option<&[u8]>,
        from: i64,
        to: i64,
    ) -> Result<WindowEntries, StateError> {
        let below = self.inner.fetch_key_range(key_from, key_to, from, to)?;
        let cached = self.cached(key_from, key_to, from, to);
        self.merged(below, cached)
    }

    /// The windows of `key` with starts in `[from, to]`, by start, descending if `reverse`.
    fn scan_range(
        &self,
        key: &[u8],
        from: i64,
        to: i64,
        reverse: bool,
    ) -> Result<WindowIter<'_>, StateError> {
        let merged = self.key_range(Some(key), Some(key), from, to)?;
        let windows = merged.into_iter().map(|(k, v)| (k.window_start, v));
        Ok(boxed_ok(windows, reverse))
    }

    /// The windows of keys in `[key_from, key_to]` with starts in `[from, to]`, by (key,
    /// start), descending if `reverse`.
    fn scan_key_range(
        &self,
        key_from: Option<&[u8]>,
        key_to: Option<&[u8]>,
        from: i64,
        to: i64,
        reverse: bool,
    ) -> Result<WindowedKeyValueIter<'_>, StateError> {
        let merged = self.key_range(key_from, key_to, from, to)?;
        Ok(boxed_ok(merged.into_iter(), reverse))
    }
}

/// `entries` as a boxed iterator of results, backwards if `reverse`.
fn boxed_ok<'a, T: 'a>(
    entries: impl DoubleEndedIterator<Item = T> + 'a,
    reverse: bool,
) -> Box<dyn Iterator<Item = Result<T, StateError>> + 'a> {
    if reverse {
        Box::new(entries.rev().map(Ok))
    } else {
        Box::new(entries.map(Ok))
    }
}

impl crate::WindowStore for CachingWindowStore {
    delegate!(WindowStore to inner: rocksdb_properties, retention_period, observed_stream_time);

    fn put(
        &mut self,
        key: &[u8],
        value: Option<&[u8]>,
        window_start: i64,
    ) -> Result<(), StateError> {
        let composite = crate::window_changelog_key(key, window_start);
        let down = self.cache.put(&composite, value.map(<[u8]>::to_vec));
        self.write_down(down)
    }

    fn fetch(&self, key: &[u8], window_start: i64) -> Result<Option<Vec<u8>>, StateError> {
        let composite = crate::window_changelog_key(key, window_start);
        match self.cache.get(&composite) {
            Some(v) => Ok(v.clone()),
            None => {
                let below = self.inner.fetch(key, window_start)?;
                if below.is_none() {
                    self.cache.note_absent(&composite);
                }
                Ok(below)
            }
        }
    }

    delegate!(WindowStore to self as scans:
        fetch_range, backward_fetch_range, fetch_key_range, backward_fetch_key_range, fetch_all,
        backward_fetch_all, all);

    cache_layer_methods!();
}

cached_store!(
    /// A session store behind the record cache: sessions are cached under their changelog key
    /// (key bytes, 8-byte end, 8-byte start) and leave the cache, as [`FlushedEntry`]s with that
    /// key, on commit or eviction.
    CachingSessionStore,
    crate::SessionStore,
    |budget| CacheCore::ordered(budget, 16)
);

type SessionEntries = Vec<(crate::SessionKeyBytes, Vec<u8>)>;

impl CachingSessionStore {
    fn write_down(&mut self, entries: Vec<WriteDown>) -> Result<(), StateError> {
        let inner = &mut self.inner;
        write_down_sorted(entries, &mut self.evicted, |composite, value, absent| {
            let k = crate::split_session_changelog_key(composite)?;
            let old = if absent {
                None
            } else {
                inner.fetch_session(&k.key, k.start, k.end)?
            };
            match value {
                Some(v) => inner.put(&k.key, k.start, k.end, v)?,
                None => inner.remove(&k.key, k.start, k.end)?,
            }
            Ok(old)
        })
    }

    /// The store's sessions of keys in `[key_from, key_to]` with `end >= earliest_end` and
    /// `start <= latest_start`, with the cache laid over them, ascending by (key, end, start).
    fn merged(
        &self,
        key_from: Option<&[u8]>,
        key_to: Option<&[u8]>,
        earliest_end: i64,
        latest_start: i64,
    ) -> Result<SessionEntries, StateError> {
        let mut map = BTreeMap::new();
        for r in self
            .inner
            .find_sessions_in_range(key_from, key_to, earliest_end, latest_start)?
        {
            let (k, v) = r?;
            map.insert((k.key, k.end, k.start), v);
        }
        // One key: its sessions are contiguous (key bytes, then the big-endian end and
        // start). Session times are never negative (records with negative timestamps are
        // refused), so the range starts at end 0 at the lowest, and it ends at the largest
        // end cached: ending it at end i64::MAX instead would also walk the sessions of
        // every key that extends this one (`user-1` → `user-10`, `user-123`, ...), whose
        // next byte sorts below 0x7f. Key ranges scan the cache.
        let entries = match (key_from, key_to) {
            (Some(f), Some(t)) if f == t => self.cache.range(
                &crate::session_changelog_key(f, 0, earliest_end.max(0)),
                &crate::session_changelog_key(f, i64::MAX, self.cache.max_session_end),
            ),
            _ => Box::new(self.cache.iter()),
        };
        for (composite, v) in entries {
            let Ok(k) = crate::split_session_changelog_key(composite) else {
                continue;
            };
            let inside = k.end >= earliest_end
                && k.start <= latest_start
                && key_from.is_none_or(|f| k.key.as_slice() >= f)
                && key_to.is_none_or(|t| k.key.as_slice() <= t);
            if !inside {
                continue;
            }
            match v {
                Some(v) => {
                    map.insert((k.key, k.end, k.start), v.clone());
                }
                None => {
                    map.remove(&(k.key, k.end, k.start));
                }
            }
        }
        Ok(map
            .into_iter()
            .map(|((key, end, start), v)| (crate::SessionKeyBytes { key, start, end }, v))
            .collect())
    }

    /// [`merged`](Self::merged), descending if `reverse`.
    fn find(
        &self,
        key_from: Option<&[u8]>,
        key_to: Option<&[u8]>,
        earliest_end: i64,
        latest_start: i64,
        reverse: bool,
    ) -> Result<SessionIter<'_>, StateError> {
        let merged = self.merged(key_from, key_to, earliest_end, latest_start)?;
        Ok(boxed_ok(merged.into_iter(), reverse))
    }
}

impl crate::SessionStore for CachingSessionStore {
    delegate!(SessionStore to inner: rocksdb_properties, retention_period, observed_stream_time);

    fn put(&mut self, key: &[u8], start: i64, end: i64, value: &[u8]) -> Result<(), StateError> {
        if start > end {
            // Let the store below report the error.
            return self.inner.put(key, start, end, value);
        }
        let composite = crate::session_changelog_key(key, start, end);
        self.cache.max_session_end = self.cache.max_session_end.max(end);
        let down = self.cache.put(&composite, Some(value.to_vec()));
        self.write_down(down)
    }

    fn remove(&mut self, key: &[u8], start: i64, end: i64) -> Result<(), StateError> {
        let composite = crate::session_changelog_key(key, start, end);
        self.cache.max_session_end = self.cache.max_session_end.max(end);
        let down = self.cache.put(&composite, None);
        self.write_down(down)
    }

    fn fetch_session(
        &self,
        key: &[u8],
        start: i64,
        end: i64,
    ) -> Result<Option<Vec<u8>>, StateError> {
        match self
            .cache
            .get(&crate::session_changelog_key(key, start, end))
        {
            Some(v) => Ok(v.clone()),
            None => self.inner.fetch_session(key, start, end),
        }
    }

    delegate!(SessionStore to self as scans:
        find_sessions, backward_find_sessions, find_sessions_in_range,
        backward_find_sessions_in_range);

    cache_layer_methods!();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::InMemoryKeyValueStore;

    fn cached(max: usize) -> CachingKeyValueStore {
        CachingKeyValueStore::new(
            Box::new(InMemoryKeyValueStore::new("s")),
            ThreadCache::new(max),
        )
    }

    #[test]
    fn reads_count_hits_and_misses_of_the_cache_only() {
        let stats = Arc::new(crate::HitRatioStats::default());
        let mut s = cached(1 << 20).with_hit_ratio(stats.clone());
        // get a (miss), put a, get a (hit), delete a (reads it: hit), get b (miss).
        assert_eq!(s.get(b"a").unwrap(), None);
        s.put(b"a", b"1").unwrap();
        assert_eq!(s.get(b"a").unwrap(), Some(b"1".to_vec()));
        s.delete(b"a").unwrap();
        assert_eq!(s.get(b"b").unwrap(), None);
        // Running ratios: 0/1, 1/2, 2/3, 2/4.
        let ratios = [0.0, 0.5, 2.0 / 3.0, 0.5];
        let w = stats.take().unwrap();
        assert!(
            (w.avg - ratios.iter().sum::<f64>() / 4.0).abs() < 1e-5,
            "{w:?}"
        );
        assert_eq!(w.min, 0.0);
        assert!((w.max - 2.0 / 3.0).abs() < 1e-5, "{w:?}");
        // Without stats nothing is kept (the default).
        let plain = cached(1 << 20);
        assert!(plain.cache.hit_ratio.is_none());
    }

    #[test]
    fn coalesces_updates_until_flush() {
        let mut s = cached(1 << 20);
        s.put(b"a", b"1").unwrap();
        s.put(b"a", b"2").unwrap();
        s.put(b"b", b"x").unwrap();
        assert!(s.take_flushed().is_empty());
        assert_eq!(s.get(b"a").unwrap(), Some(b"2".to_vec()));
        s.flush().unwrap();
        let f = s.take_flushed();
        assert_eq!(
            f,
            vec![
                FlushedEntry {
                    key: b"a".to_vec(),
                    new: Some(b"2".to_vec()),
                    old: None
                },
                FlushedEntry {
                    key: b"b".to_vec(),
                    new: Some(b"x".to_vec()),
                    old: None
                },
            ]
        );
        s.put(b"a", b"3").unwrap();
        s.flush().unwrap();
        assert_eq!(s.take_flushed()[0].old, Some(b"2".to_vec()));
    }

    #[test]
    fn size_zero_writes_through() {
        let mut s = cached(0);
        s.put(b"a", b"1").unwrap();
        s.put(b"a", b"2").unwrap();
        let f = s.take_flushed();
        assert_eq!(f.len(), 2);
        assert_eq!(f[1].old, Some(b"1".to_vec()));
    }

    #[test]
    fn evicts_oldest_first_when_the_thread_budget_is_exceeded() {
        let budget = ThreadCache::new(3 * entry_size(b"k1", &Some(b"v".to_vec())));
        let mut s =
            CachingKeyValueStore::new(Box::new(InMemoryKeyValueStore::new("s")), budget.clone());
        for k in [b"k1", b"k2", b"k3"] {
            s.put(k, b"v").unwrap();
        }
        assert!(s.take_flushed().is_empty());
        s.get(b"k1").unwrap();
        s.put(b"k4", b"v").unwrap();
        let f = s.take_flushed();
        assert_eq!(f.len(), 1);
        assert_eq!(
            f[0].key,
            b"k1".to_vec(),
            "least recently written goes first"
        );
        assert!(budget.used() <= budget.max());
        drop(s);
        assert_eq!(budget.used(), 0);
    }

    #[test]
    fn a_large_cache_evicts_a_batch_written_in_key_order_and_flushed_oldest_first() {
        let budget = ThreadCache::new(BATCHED_EVICTION_MIN);
        let below = Probe::new();
        let writes = below.writes.clone();
        let mut s = CachingKeyValueStore::new(Box::new(below), budget.clone());
        // Keys written in descending order, each entry about 1 KiB.
        let value = vec![7u8; 1000];
        let mut n = 0u32;
        let flushed = loop {
            s.put(&(u32::MAX - n).to_be_bytes(), &value).unwrap();
            n += 1;
            let f = s.take_flushed();
            if !f.is_empty() {
                break f;
            }
        };
        // The eviction was one batch, taking the thread well under its budget ...
        assert!(budget.used() <= budget.max() - budget.max() / EVICT_SLACK_DIVISOR);
        let written = writes.lock().unwrap().clone();
        assert!(written.len() > 10, "{} evicted", written.len());
        // ... written below in key order (ascending, the reverse of the write order) ...
        let mut sorted = written.clone();
        sorted.sort();
        assert_eq!(written, sorted);
        // ... while what left the cache is reported oldest first: the first writes.
        assert_eq!(flushed.len(), written.len());
        for (i, f) in flushed.iter().enumerate() {
            assert_eq!(f.key, (u32::MAX - i as u32).to_be_bytes().to_vec());
        }
        drop(s);
        assert_eq!(budget.used(), 0);
    }

    #[test]
    fn deletes_and_ranges_see_the_cache() {
        let mut s = cached(1 << 20);
        s.put(b"a", b"1").unwrap();
        s.flush().unwrap();
        s.take_flushed();
        s.put(b"b", b"2").unwrap();
        assert_eq!(s.delete(b"a").unwrap(), Some(b"1".to_vec()));
        let all: Vec<_> = s.all().unwrap().map(|r| r.unwrap().0).collect();
        assert_eq!(all, vec![b"b".to_vec()]);
        s.flush().unwrap();
        let f = s.take_flushed();
        assert!(
            f.iter()
                .any(|e| e.key == b"a" && e.new.is_none() && e.old == Some(b"1".to_vec()))
        );
    }

    /// A key-value store that counts its point reads (to show which write-downs read) and
    /// records the keys put into it, in order.
    struct Probe {
        inner: InMemoryKeyValueStore,
        gets: Arc<AtomicUsize>,
        writes: Arc<std::sync::Mutex<Vec<Vec<u8>>>>,
    }

    impl Probe {
        fn new() -> Self {
            Self {
                inner: InMemoryKeyValueStore::new("s"),
                gets: Arc::default(),
                writes: Arc::default(),
            }
        }
    }

    impl StateStore for Probe {
        delegate!(StateStore to inner: name, persistent, is_open, flush, close);
    }

    impl KeyValueStore for Probe {
        delegate!(KeyValueStore to inner: delete, range, reverse_range,
            approximate_num_entries, restore_batch, begin_restore, end_restore, snapshot_to,
            rocksdb_properties);
        fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
            self.gets.fetch_add(1, Ordering::Relaxed);
            self.inner.get(key)
        }
        fn put(&mut self, key: &[u8], value: &[u8]) -> Result<(), StateError> {
            if let Ok(mut w) = self.writes.lock() {
                w.push(key.to_vec());
            }
            self.inner.put(key, value)
        }
    }

    #[test]
    fn a_new_key_read_then_written_is_written_down_without_a_second_read() {
        for budget in [0, 1 << 20] {
            let inner = Probe::new();
            let gets = inner.gets.clone();
            let mut s = CachingKeyValueStore::new(Box::new(inner), ThreadCache::new(budget));
            // The aggregation pattern: read (absent below), write, flush.
            assert_eq!(s.get(b"a").unwrap(), None);
            s.put(b"a", b"1").unwrap();
            s.flush().unwrap();
            assert_eq!(gets.load(Ordering::Relaxed), 1, "budget {budget}");
            let f = s.take_flushed();
            assert_eq!(f.len(), 1);
            assert_eq!(f[0].old, None);
            // A key written without a read first is read at write-down (its old value).
            s.put(b"b", b"2").unwrap();
            s.flush().unwrap();
            assert_eq!(gets.load(Ordering::Relaxed), 2, "budget {budget}");
        }
    }

    proptest::proptest! {
        /// The old value of every update leaving the cache is what the store below held
        /// just before, whatever the reads, writes, flushes and restorations in between.
        #[test]
        fn flushed_old_values_are_what_the_store_below_held(
            budget in 0usize..600,
            ops in proptest::collection::vec((0u8..5, 0u8..6, 0u8..4), 0..80),
        ) {
            let mut s = cached(budget);
            let mut below: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
            let mut offset = 0;
            for (op, k, v) in ops {
                let key = vec![b'k', k];
                match op {
                    0 => s.put(&key, &[v]).unwrap(),
                    1 => { s.delete(&key).unwrap(); }
                    2 => s.flush().unwrap(),
                    3 => { s.get(&key).unwrap(); }
                    _ => {
                        // A restored record overwrites the key below.
                        offset += 1;
                        let value = (v > 0).then(|| vec![v]);
                        s.restore_batch(&[ChangelogRecord { offset, key: key.clone(), value: value.clone() }]).unwrap();
                        match value { Some(x) => { below.insert(key.clone(), x); } None => { below.remove(&key); } }
                    }
                }
                for e in s.take_flushed() {
                    proptest::prop_assert_eq!(&e.old, &below.get(&e.key).cloned(), "key {:?}", e.key);
                    match e.new { Some(x) => { below.insert(e.key, x); } None => { below.remove(&e.key); } }
                }
            }
        }
    }

    proptest::proptest! {
        /// Whatever the budget, reads see the latest write, and what leaves the cache,
        /// applied in order, rebuilds exactly the latest state.
        #[test]
        fn cache_behaves_like_a_map(
            budget in 0usize..600,
            ops in proptest::collection::vec((0u8..3, 0u8..8, 0u8..4), 0..80),
        ) {
            let mut s = cached(budget);
            let mut model = BTreeMap::new();
            let mut downstream = BTreeMap::new();
            for (op, k, v) in ops {
                let key = vec![b'k', k];
                match op {
                    0 => { s.put(&key, &[v]).unwrap(); model.insert(key.clone(), vec![v]); }
                    1 => { s.delete(&key).unwrap(); model.remove(&key); }
                    _ => { s.flush().unwrap(); }
                }
                proptest::prop_assert_eq!(s.get(&key).unwrap(), model.get(&key).cloned());
                for e in s.take_flushed() {
                    match e.new { Some(v) => { downstream.insert(e.key, v); } None => { downstream.remove(&e.key); } }
                }
            }
            s.flush().unwrap();
            for e in s.take_flushed() {
                match e.new { Some(v) => { downstream.insert(e.key, v); } None => { downstream.remove(&e.key); } }
            }
            proptest::prop_assert_eq!(&downstream, &model);
            let all: BTreeMap<Vec<u8>, Vec<u8>> = s.all().unwrap().map(|r| r.unwrap()).collect();
            proptest::prop_assert_eq!(all, model);
        }
    }
}
