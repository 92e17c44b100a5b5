//! Window stores: values keyed by (key, window start), kept for a retention period.
//!
//! Data is split by window start into time segments (Kafka's rule: interval =
//! `max(retention / 2, 60 s)`, segment id = `start.div_euclid(interval)`); retention drops
//! whole segments. Within a segment, keys are laid out as the escaped key followed by the
//! window start (order-preserving), so all windows of a key are contiguous and sorted by
//! start, and key ranges scan sequentially. Engines: [`InMemoryWindowStore`] and
//! [`RocksDbWindowStore`] (one RocksDB instance per store, one column family per segment).
//! [`LoggingWindowStore`] sends every write to a changelog, keyed by
//! [`window_changelog_key`].

use std::path::Path;

use crate::changelog::logging_store;
use crate::delegate::delegate;
use crate::kv::StateStore;
use crate::resources::RocksDbResources;
use crate::segments::{
    MemSegments, RawIter, RocksSegments, SegmentEngine, Segmented, TimedWrite, decode_key,
    escape_key, key_upper_bound, push_time, segment_interval, segmented_stores,
};
use crate::{ChangelogRecord, RocksDbProperties, StateError, StoreContext};

/// A windowed key: the record key and the start of its window.
///
/// Ordered by key bytes, then window start: the order in which key-range scans return them.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct WindowedKeyBytes {
    /// The record key.
    pub key: Vec<u8>,
    /// The window's start (ms, inclusive).
    pub window_start: i64,
}

/// Windows of one key: (window start, value), borrowing the store.
pub type WindowIter<'a> = Box<dyn Iterator<Item = Result<(i64, Vec<u8>), StateError>> + 'a>;

/// Windows of several keys: (windowed key, value), borrowing the store.
pub type WindowedKeyValueIter<'a> =
    Box<dyn Iterator<Item = Result<(WindowedKeyBytes, Vec<u8>), StateError>> + 'a>;

/// A window store over raw bytes (Kafka's `WindowStore<Bytes, byte[]>`).
///
/// Each value belongs to a key and a window start. The store keeps windows for
/// [`retention_period`](Self::retention_period) ms of *observed stream time* (the largest
/// window start written so far): a window whose start is `<= stream time - retention` is
/// expired: writes of it are ignored and reads never return it. Time bounds of every fetch are
/// inclusive; an inverted time or key range is empty.
pub trait WindowStore: StateStore {
    /// The RocksDB properties of the store's instance, read now, summed over its segments
    /// (`None`: not a RocksDB store). Wrapping stores pass the call down; sampled when a
    /// thread publishes metrics, never per record.
    fn rocksdb_properties(&self) -> Option<crate::RocksDbProperties> {
        None
    }
    /// Stores `value` for `key` in the window starting at `window_start` (`None` deletes).
    ///
    /// Advances the observed stream time to `window_start` if it is larger; a window that
    /// is expired (its segment has been dropped, or its start is `<= stream time -
    /// retention`) is silently ignored.
    fn put(
        &mut self,
        key: &[u8],
        value: Option<&[u8]>,
        window_start: i64,
    ) -> Result<(), StateError>;

    /// The value of `key` in the window starting at `window_start`, if any (and not
    /// expired).
    fn fetch(&self, key: &[u8], window_start: i64) -> Result<Option<Vec<u8>>, StateError>;

    /// Windows of `key` whose start is in `[time_from, time_to]`, by ascending start.
    fn fetch_range(
        &self,
        key: &[u8],
        time_from: i64,
        time_to: i64,
    ) -> Result<WindowIter<'_>, StateError>;

    /// Windows of `key` whose start is in `[time_from, time_to]`, by descending start.
    fn backward_fetch_range(
        &self,
        key: &[u8],
        time_from: i64,
        time_to: i64,
    ) -> Result<WindowIter<'_>, StateError>;

    /// Windows whose key is in `[key_from, key_to]` (`None`: open end) and whose start is in
    /// `[time_from, time_to]`, ascending by (key bytes, start).
    fn fetch_key_range(
        &self,
        key_from: Option<&[u8]>,
        key_to: Option<&[u8]>,
        time_from: i64,
        time_to: i64,
    ) -> Result<WindowedKeyValueIter<'_>, StateError>;

    /// Like [`fetch_key_range`](Self::fetch_key_range), descending by (key bytes, start).
    fn backward_fetch_key_range(
        &self,
        key_from: Option<&[u8]>,
        key_to: Option<&[u8]>,
        time_from: i64,
        time_to: i64,
    ) -> Result<WindowedKeyValueIter<'_>, StateError>;

    /// Windows of every key whose start is in `[time_from, time_to]`, ascending by
    /// (key bytes, start).
    fn fetch_all(
        &self,
        time_from: i64,
        time_to: i64,
    ) -> Result<WindowedKeyValueIter<'_>, StateError>;

    /// Like [`fetch_all`](Self::fetch_all), descending by (key bytes, start).
    fn backward_fetch_all(
        &self,
        time_from: i64,
        time_to: i64,
    ) -> Result<WindowedKeyValueIter<'_>, StateError>;

    /// Every live window, ascending by (key bytes, start).
    fn all(&self) -> Result<WindowedKeyValueIter<'_>, StateError>;

    /// How long (ms of stream time) windows are kept.
    fn retention_period(&self) -> i64;

    /// The largest window start written so far (restoration included), or -1 (Kafka's "no
    /// timestamp") before any write.
    fn observed_stream_time(&self) -> i64;

    /// Applies changelog records during restoration: keys in the
    /// [`window_changelog_key`] layout, a `None` value deletes. Expiry rules are those of
    /// [`put`](Self::put). Not logged again by [`LoggingWindowStore`].
    fn restore_batch(&mut self, records: &[ChangelogRecord]) -> Result<(), StateError>;

    /// Writes a record cache's dirty windows down without flushing the engine (they then
    /// appear in [`take_flushed`](Self::take_flushed)). A no-op without a cache.
    fn flush_cache(&mut self) -> Result<(), StateError> {
        Ok(())
    }

    /// Window updates that left a record cache since the last call, keyed in the
    /// [`window_changelog_key`] layout; always empty for uncached stores.
    fn take_flushed(&mut self) -> Vec<crate::FlushedEntry> {
        Vec::new()
    }
}

/// The changelog key of a window: the raw key bytes followed by the window start as 8
/// big-endian bytes (Kafka's `WindowKeySchema` layout, without its duplicate sequence
/// number: this store does not retain duplicates).
pub fn window_changelog_key(key: &[u8], window_start: i64) -> Vec<u8> {
    let mut out = Vec::with_capacity(key.len() + 8);
    out.extend_from_slice(key);
    out.extend_from_slice(&window_start.to_be_bytes());
    out
}

/// Splits a [`window_changelog_key`] into the key and the window start.
pub fn split_window_changelog_key(bytes: &[u8]) -> Result<(Vec<u8>, i64), StateError> {
    split_window_changelog_key_of("<window changelog>", bytes)
}

fn split_window_changelog_key_of(store: &str, bytes: &[u8]) -> Result<(Vec<u8>, i64), StateError> {
    let split = bytes
        .len()
        .checked_sub(8)
        .ok_or_else(|| StateError::Corrupt {
            store: store.to_string(),
            detail: format!(
                "window changelog key of {} bytes is shorter than its 8-byte window start",
                bytes.len()
            ),
        })?;
    let (key, start) = bytes.split_at(split);
    let start: [u8; 8] = start.try_into().map_err(|_| StateError::Corrupt {
        store: store.to_string(),
        detail: "window changelog key has no 8-byte window start".to_string(),
    })?;
    Ok((key.to_vec(), i64::from_be_bytes(start)))
}

/// The encoded store key of a window.
fn store_key(key: &[u8], window_start: i64) -> Vec<u8> {
    let mut out = escape_key(key);
    push_time(&mut out, window_start);
    out
}

fn corrupt_key(store: &str, encoded: &[u8]) -> StateError {
    StateError::Corrupt {
        store: store.to_string(),
        detail: format!("malformed window store key {encoded:02x?}"),
    }
}

/// The engine-independent window store logic.
#[derive(Debug)]
struct WindowCore<E> {
    seg: Segmented<E>,
}

impl<E: SegmentEngine> WindowCore<E> {
    fn put(
        &mut self,
        key: &[u8],
        value: Option<&[u8]>,
        window_start: i64,
    ) -> Result<(), StateError> {
        self.seg.write([TimedWrite {
            time: window_start,
            key: store_key(key, window_start),
            value: value.map(<[u8]>::to_vec),
        }])
    }

    fn fetch(&self, key: &[u8], window_start: i64) -> Result<Option<Vec<u8>>, StateError> {
        self.seg.get(window_start, &store_key(key, window_start))
    }

    fn scan_range(
        &self,
        key: &[u8],
        time_from: i64,
        time_to: i64,
        reverse: bool,
    ) -> Result<WindowIter<'_>, StateError> {
        let lo = store_key(key, time_from);
        let hi = store_key(key, time_to);
        let raw = self
            .seg
            .scan(time_from, time_to, Some(&lo), Some(&hi), reverse)?;
        let iter = self.decode(raw, time_from, time_to);
        Ok(Box::new(iter.map(|r| r.map(|(k, v)| (k.window_start, v)))))
    }

    fn scan_key_range(
        &self,
        key_from: Option<&[u8]>,
        key_to: Option<&[u8]>,
        time_from: i64,
        time_to: i64,
        reverse: bool,
    ) -> Result<WindowedKeyValueIter<'_>, StateError> {
        self.seg.check_open()?;
        if let (Some(f), Some(t)) = (key_from, key_to)
            && f > t
        {
            return Ok(Box::new(std::iter::empty()));
        }
        let lo = key_from.map(|k| store_key(k, time_from));
        let hi = key_to.map(|k| key_upper_bound(k, 1));
        let raw = self
            .seg
            .scan(time_from, time_to, lo.as_deref(), hi.as_deref(), reverse)?;
        Ok(Box::new(self.decode(raw, time_from, time_to)))
    }

    /// Decodes raw entries, keeping live windows whose start is in `[time_from, time_to]`.
    fn decode<'a>(
        &'a self,
        raw: RawIter<'a>,
        time_from: i64,
        time_to: i64,
    ) -> impl Iterator<Item = Result<(WindowedKeyBytes, Vec<u8>), StateError>> + 'a {
        let from = time_from.max(self.seg.min_live_time());
        let name = self.seg.name();
        raw.filter_map(move |r| match r {
            Err(e) => Some(Err(e)),
            Ok((k, v)) => match decode_key::<1>(&k) {
                None => Some(Err(corrupt_key(name, &k))),
                Some((key, [start])) => (start >= from && start <= time_to).then_some(Ok((
                    WindowedKeyBytes {
                        key,
                        window_start: start,
                    },
                    v,
                ))),
            },
        })
    }

    fn restore_batch(&mut self, records: &[ChangelogRecord]) -> Result<(), StateError> {
        let name = self.seg.name().to_string();
        let writes = records
            .iter()
            .map(|r| {
                let (key, start) = split_window_changelog_key_of(&name, &r.key)?;
                Ok(TimedWrite {
                    time: start,
                    key: store_key(&key, start),
                    value: r.value.clone(),
                })
            })
            .collect::<Result<Vec<_>, StateError>>()?;
        self.seg.write(writes)
    }
}

segmented_stores!(
    /// A window store held in memory: one ordered map per time segment. Not persistent: after a
    /// restart it is rebuilt from its changelog.
    InMemoryWindowStore,
    /// A window store in its own RocksDB instance, one column family (`segment-<id>`) per time
    /// segment. Expired segments are dropped whole (`drop_cf`); the observed stream time and the
    /// segment interval are kept in the default column family, so a reopened store carries on
    /// where it stopped.
    RocksDbWindowStore,
    WindowCore,
    "windows",
    impl WindowStore {
        delegate!(WindowStore to core: put, fetch, restore_batch);
        delegate!(WindowStore to core as scans:
            fetch_range, backward_fetch_range, fetch_key_range, backward_fetch_key_range,
            fetch_all, backward_fetch_all, all);
    }
);

fn validate_retention(name: &str, retention_ms: i64) -> Result<(), StateError> {
    if retention_ms <= 0 {
        return Err(StateError::InvalidArgument {
            store: name.to_string(),
            detail: format!("retention period must be positive, got {retention_ms} ms"),
        });
    }
    Ok(())
}

fn validate_window(name: &str, retention_ms: i64, window_size_ms: i64) -> Result<(), StateError> {
    validate_retention(name, retention_ms)?;
    if window_size_ms <= 0 {
        return Err(StateError::InvalidArgument {
            store: name.to_string(),
            detail: format!("window size must be positive, got {window_size_ms} ms"),
        });
    }
    if retention_ms < window_size_ms {
        return Err(StateError::InvalidArgument {
            store: name.to_string(),
            detail: format!(
                "retention period ({retention_ms} ms) must be at least the window size \
                 ({window_size_ms} ms), and at least window size + grace for windowed \
                 aggregations"
            ),
        });
    }
    Ok(())
}

/// Creates window stores: one per task, each named after the supplier.
pub trait WindowBytesStoreSupplier: Send + Sync {
    /// The name the created stores carry.
    fn name(&self) -> &str;
    /// Creates (or, for persistent engines, opens) one task's store.
    fn get(&self, ctx: &StoreContext) -> Result<Box<dyn WindowStore>, StateError>;
    /// Whether the created stores are persistent.
    fn persistent(&self) -> bool;
    /// How long (ms of stream time) the stores keep windows.
    fn retention_period(&self) -> i64;
    /// The size of the windows stored (ms).
    fn window_size(&self) -> i64;
    /// The time span of one segment (ms): `max(retention / 2, 60 000)`.
    fn segment_interval(&self) -> i64;
}

/// Declares a supplier of `$store`s: the struct, `new` and its [`WindowBytesStoreSupplier`]
/// implementation.
macro_rules! window_store_supplier {
    ($(#[$doc:meta])* $name:ident, $store:ident, $what:literal, persistent: $persistent:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone)]
        pub struct $name {
            name: String,
            retention_ms: i64,
            window_size_ms: i64,
        }

        impl $name {
            #[doc = concat!("A supplier of ", $what, " window stores called `name`, keeping windows of")]
            /// `window_size_ms` for `retention_ms`. Fails unless `0 < window_size_ms <=
            /// retention_ms`.
            pub fn new(
                name: impl Into<String>,
                retention_ms: i64,
                window_size_ms: i64,
            ) -> Result<Self, StateError> {
                let name = name.into();
                validate_window(&name, retention_ms, window_size_ms)?;
                Ok(Self {
                    name,
                    retention_ms,
                    window_size_ms,
                })
            }
        }

        impl WindowBytesStoreSupplier for $name {
            fn name(&self) -> &str {
                &self.name
            }
            fn get(&self, ctx: &StoreContext) -> Result<Box<dyn WindowStore>, StateError> {
                Ok(Box::new($store::for_task(&self.name, ctx, self.retention_ms)?))
            }
            fn persistent(&self) -> bool {
                $persistent
            }
            fn retention_period(&self) -> i64 {
                self.retention_ms
            }
            fn window_size(&self) -> i64 {
                self.window_size_ms
            }
            fn segment_interval(&self) -> i64 {
                segment_interval(self.retention_ms)
            }
        }
    };
}

window_store_supplier!(
    /// Supplies [`InMemoryWindowStore`]s.
    InMemoryWindowStoreSupplier,
    InMemoryWindowStore,
    "in-memory",
    persistent: false
);

window_store_supplier!(
    /// Supplies [`RocksDbWindowStore`]s, one per task, under the task's state directory.
    RocksDbWindowStoreSupplier,
    RocksDbWindowStore,
    "RocksDB",
    persistent: true
);

logging_store!(
    /// A window store that logs every write to a changelog, keyed by
    /// [`window_changelog_key`] (a `None` value is sent as a tombstone).
    LoggingWindowStore,
    WindowStore
);

impl WindowStore for LoggingWindowStore {
    // Reads pass through. Restoration writes what the changelog already holds: it is not
    // logged again.
    delegate!(WindowStore to inner:
        rocksdb_properties, fetch, fetch_range, backward_fetch_range, fetch_key_range,
        backward_fetch_key_range, fetch_all, backward_fetch_all, all, retention_period,
        observed_stream_time, restore_batch);
    // Like Kafka's change-logging layer, every write is logged, even one the inner store
    // ignores as expired.
    fn put(
        &mut self,
        key: &[u8],
        value: Option<&[u8]>,
        window_start: i64,
    ) -> Result<(), StateError> {
        self.inner.put(key, value, window_start)?;
        self.sink
            .send(&window_changelog_key(key, window_start), value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changelog_key_is_key_then_big_endian_start() {
        let k = window_changelog_key(b"ab", 0x0102);
        assert_eq!(k, vec![b'a', b'b', 0, 0, 0, 0, 0, 0, 1, 2]);
        assert_eq!(
            split_window_changelog_key(&k).unwrap(),
            (b"ab".to_vec(), 0x0102)
        );
        let neg = window_changelog_key(b"", -1);
        assert_eq!(neg, vec![0xFF; 8]);
        assert_eq!(split_window_changelog_key(&neg).unwrap(), (Vec::new(), -1));
        assert!(matches!(
            split_window_changelog_key(&[1, 2, 3]),
            Err(StateError::Corrupt { .. })
        ));
    }

    struct NoSink;

    impl crate::ChangelogSink for NoSink {
        fn send(&mut self, _key: &[u8], _value: Option<&[u8]>) -> Result<(), StateError> {
            Ok(())
        }
    }

    /// The properties sum over the segments and pass through the caching, logging and
    /// metering layers; an in-memory store has none.
    #[test]
    fn rocksdb_properties_cover_every_segment_and_pass_through_wrappers() {
        let dir = tempfile::tempdir().unwrap();
        let resources = RocksDbResources::with_budget(16 << 20);
        let mut store =
            RocksDbWindowStore::open("w", &dir.path().join("w"), &resources, 600_000).unwrap();
        // Windows over several segments (interval 60 s at this retention): 3 keys each.
        let starts = [0i64, 70_000, 140_000, 210_000];
        for start in starts {
            for k in [b"a", b"b", b"c"] {
                store.put(k, Some(b"v"), start).unwrap();
            }
        }
        let props = store.rocksdb_properties().unwrap();
        assert_eq!(props.estimate_num_keys, (starts.len() * 3) as u64);
        assert!(props.size_all_mem_tables > 0);
        assert_eq!(props.block_cache_capacity, resources.budget() as u64);
        let cached =
            crate::CachingWindowStore::new(Box::new(store), crate::ThreadCache::new(1 << 20));
        let logged = LoggingWindowStore::new(Box::new(cached), Box::new(NoSink));
        let outer = crate::metrics::MeteredWindowStore::new(Box::new(logged));
        assert_eq!(
            outer.rocksdb_properties().map(|p| p.estimate_num_keys),
            Some((starts.len() * 3) as u64)
        );
        assert!(
            InMemoryWindowStore::new("m", 120_000)
                .unwrap()
                .rocksdb_properties()
                .is_none()
        );
    }

    #[test]
    fn supplier_validates_retention_against_window_size() {
        let err = InMemoryWindowStoreSupplier::new("counts", 999, 1000).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("counts") && msg.contains("999") && msg.contains("1000"),
            "{msg}"
        );
        assert!(RocksDbWindowStoreSupplier::new("w", 0, 0).is_err());
        assert!(RocksDbWindowStoreSupplier::new("w", 10, -1).is_err());
        let ok = RocksDbWindowStoreSupplier::new("w", 1000, 1000).unwrap();
        assert_eq!(ok.segment_interval(), 60_000);
        assert_eq!(ok.window_size(), 1000);
        assert!(ok.persistent());
        let big = InMemoryWindowStoreSupplier::new("w", 86_400_000, 60_000).unwrap();
        assert_eq!(big.segment_interval(), 43_200_000);
    }

    #[test]
    fn in_memory_put_fetch_and_expiry() {
        let mut s = InMemoryWindowStore::new("w", 120_000).unwrap();
        assert_eq!(s.observed_stream_time(), -1);
        s.put(b"k", Some(b"v0"), 0).unwrap();
        s.put(b"k", Some(b"v1"), 60_000).unwrap();
        assert_eq!(s.fetch(b"k", 0).unwrap(), Some(b"v0".to_vec()));
        s.put(b"k", Some(b"v2"), 120_000).unwrap();
        // T - retention = 0: the window at 0 has expired although segment 0 still exists.
        assert_eq!(s.segment_ids(), vec![0, 1, 2]);
        assert_eq!(s.fetch(b"k", 0).unwrap(), None);
        let got: Vec<_> = s
            .fetch_range(b"k", 0, 200_000)
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(
            got,
            vec![(60_000, b"v1".to_vec()), (120_000, b"v2".to_vec())]
        );
        s.put(b"k", Some(b"v3"), 180_000).unwrap();
        assert_eq!(s.segment_ids(), vec![1, 2, 3]);
        s.close().unwrap();
        assert!(matches!(s.fetch(b"k", 0), Err(StateError::NotOpen { .. })));
    }
}
