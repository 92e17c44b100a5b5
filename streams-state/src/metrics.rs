//! Store metrics (Kafka Streams' `stream-state-metrics` and the record cache's hit ratio),
//! recorded only when the application's `metrics.recording.level` is `DEBUG` or `TRACE`.
//!
//! The recording is a layer of its own: the runtime wraps a store in a metered store
//! ([`MeteredKeyValueStore`], [`MeteredWindowStore`], [`MeteredSessionStore`]) only at
//! `DEBUG`, and gives a record cache its [`HitRatioStats`](crate::HitRatioStats) only then, so
//! that at `INFO` a store operation pays nothing for metrics (no clock read, no atomic
//! operation). The counters are atomics shared with the stream thread, which reads them when
//! it publishes (each [`OpStats::take`] starts a new window).
//!
//! RocksDB properties ([`RocksDbProperties`]) are not recorded: the thread samples them
//! when it publishes ([`KeyValueStore::rocksdb_properties`]).

pub use crate::stats::{HitRatioStats, HitRatioWindow, RocksDbProperties};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use crate::delegate::delegate;
use crate::kv::{KeyValueIter, KeyValueStore, StateStore};
use crate::{
    ChangelogRecord, FlushedEntry, SessionIter, SessionStore, StateError, WindowIter, WindowStore,
    WindowedKeyValueIter,
};

/// One kind of store operation: how many, and how long they took, since the last
/// [`take`](Self::take).
#[derive(Debug, Default)]
pub struct OpStats {
    total: AtomicU64,
    count: AtomicU64,
    sum_ns: AtomicU64,
    max_ns: AtomicU64,
}

/// What [`OpStats::take`] returns: the operations of one window, and the total so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OpWindow {
    /// Operations since the store opened.
    pub total: u64,
    /// Operations in the window.
    pub count: u64,
    /// Their summed time, ns.
    pub sum_ns: u64,
    /// The longest of them, ns.
    pub max_ns: u64,
}

impl OpStats {
    /// Records one operation that began at `started`.
    #[inline]
    pub fn record_since(&self, started: Instant) {
        let ns = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.record(ns);
    }

    /// Records one operation that took `ns`.
    #[inline]
    pub fn record(&self, ns: u64) {
        self.total.fetch_add(1, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_ns.fetch_add(ns, Ordering::Relaxed);
        self.max_ns.fetch_max(ns, Ordering::Relaxed);
    }

    /// The window so far, and a new window (the total stays).
    pub fn take(&self) -> OpWindow {
        OpWindow {
            total: self.total.load(Ordering::Relaxed),
            count: self.count.swap(0, Ordering::Relaxed),
            sum_ns: self.sum_ns.swap(0, Ordering::Relaxed),
            max_ns: self.max_ns.swap(0, Ordering::Relaxed),
        }
    }
}

/// Operation statistics of one task's store (Kafka's `stream-state-metrics`).
#[derive(Debug)]
pub struct StoreMetrics {
    scope: &'static str,
    /// `put`, `put_if_absent`, `put_all`; window and session `put`.
    pub put: OpStats,
    /// Point reads: `get`, window `fetch`, session `fetch_session`.
    pub get: OpStats,
    /// `delete`; session `remove`.
    pub delete: OpStats,
    /// Range reads, timed from the call until the iterator is dropped: `range`,
    /// `reverse_range`, `all`, `prefix_scan`, window and session fetches of ranges.
    pub range: OpStats,
    /// `flush` (the engine's, which writes the record cache down first).
    pub flush: OpStats,
    /// Restoration batches applied.
    pub restore: OpStats,
}

impl StoreMetrics {
    /// Empty statistics of a store of Kafka's scope `scope` (`rocksdb-state`,
    /// `in-memory-window-state`...).
    pub fn new(scope: &'static str) -> Self {
        Self {
            scope,
            put: OpStats::default(),
            get: OpStats::default(),
            delete: OpStats::default(),
            range: OpStats::default(),
            flush: OpStats::default(),
            restore: OpStats::default(),
        }
    }

    /// Kafka's `[store-scope]` of the store.
    pub fn scope(&self) -> &'static str {
        self.scope
    }

    /// Every operation kind with its name in the metric (`put`, `get`...).
    pub fn ops(&self) -> [(&'static str, &OpStats); 6] {
        [
            ("put", &self.put),
            ("get", &self.get),
            ("delete", &self.delete),
            ("range", &self.range),
            ("flush", &self.flush),
            ("restore", &self.restore),
        ]
    }
}

/// Kafka's `[store-scope]` of a key-value store.
pub fn key_value_scope(persistent: bool) -> &'static str {
    if persistent {
        "rocksdb-state"
    } else {
        "in-memory-state"
    }
}

/// Kafka's `[store-scope]` of a window store.
pub fn window_scope(persistent: bool) -> &'static str {
    if persistent {
        "rocksdb-window-state"
    } else {
        "in-memory-window-state"
    }
}

/// Kafka's `[store-scope]` of a session store.
pub fn session_scope(persistent: bool) -> &'static str {
    if persistent {
        "rocksdb-session-state"
    } else {
        "in-memory-session-state"
    }
}

/// An iterator that records, when dropped, the time since it was created.
struct TimedIter<'a, I> {
    inner: I,
    started: Instant,
    stats: &'a OpStats,
}

impl<I: Iterator> Iterator for TimedIter<'_, I> {
    type Item = I::Item;
    #[inline]
    fn next(&mut self) -> Option<I::Item> {
        self.inner.next()
    }
}

impl<I> Drop for TimedIter<'_, I> {
    fn drop(&mut self) {
        self.stats.record_since(self.started);
    }
}

/// Times `f` into `stats`.
#[inline]
fn timed<T>(stats: &OpStats, f: impl FnOnce() -> T) -> T {
    let started = Instant::now();
    let out = f();
    stats.record_since(started);
    out
}

/// Times a range read from now until its iterator is dropped (an error counts at once).
fn timed_iter<'a, T: 'a>(
    stats: &'a OpStats,
    f: impl FnOnce() -> Result<Box<dyn Iterator<Item = T> + 'a>, StateError>,
) -> Result<Box<dyn Iterator<Item = T> + 'a>, StateError> {
    let started = Instant::now();
    match f() {
        Ok(inner) => Ok(Box::new(TimedIter {
            inner,
            started,
            stats,
        })),
        Err(e) => {
            stats.record_since(started);
            Err(e)
        }
    }
}

/// Declares a metered store of `$store`s: the struct, `new` (statistics of the scope
/// `$scope` gives), `Debug`, `metrics`, the `StateStore` part (flushes are timed, the rest
/// delegated), and the `$store` part: puts and restorations timed, the cache and RocksDB
/// properties passed on, and `$methods`.
macro_rules! metered_store {
    ($(#[$doc:meta])* $name:ident, $store:ident, $scope:ident, { $($methods:tt)* }) => {
        $(#[$doc])*
        pub struct $name {
            inner: Box<dyn $store>,
            metrics: Arc<StoreMetrics>,
        }

        impl $name {
            /// Meters `inner` into fresh statistics of its scope.
            pub fn new(inner: Box<dyn $store>) -> Self {
                let metrics = Arc::new(StoreMetrics::new($scope(inner.persistent())));
                Self { inner, metrics }
            }

            /// The statistics the store records into.
            pub fn metrics(&self) -> &Arc<StoreMetrics> {
                &self.metrics
            }
        }

        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($name))
                    .field("store", &self.inner.name())
                    .field("scope", &self.metrics.scope())
                    .finish()
            }
        }

        impl StateStore for $name {
            delegate!(StateStore to inner: name, persistent, close, is_open);
            delegate!(StateStore to inner via timed(metrics.flush): flush);
        }

        impl $store for $name {
            delegate!($store to inner via timed(metrics.put): put);
            delegate!($store to inner via timed(metrics.restore): restore_batch);
            delegate!($store to inner: flush_cache, take_flushed, rocksdb_properties);
            $($methods)*
        }
    };
}

metered_store!(
    /// A key-value store that records its operations' rates and latencies (Kafka's
    /// `MeteredKeyValueStore`): the outermost layer, above the record cache.
    MeteredKeyValueStore,
    KeyValueStore,
    key_value_scope,
    {
        delegate!(KeyValueStore to inner via timed(metrics.get): get);
        delegate!(KeyValueStore to inner via timed(metrics.put): put_if_absent, put_all);
        delegate!(KeyValueStore to inner via timed(metrics.delete): delete, remove);
        delegate!(KeyValueStore to inner via timed_iter(metrics.range):
            range, reverse_range, all, prefix_scan);
        delegate!(KeyValueStore to inner:
            approximate_num_entries, begin_restore, end_restore, snapshot_to);
    }
);

metered_store!(
    /// A window store that records its operations' rates and latencies.
    MeteredWindowStore,
    WindowStore,
    window_scope,
    {
        delegate!(WindowStore to inner via timed(metrics.get): fetch);
        delegate!(WindowStore to inner via timed_iter(metrics.range):
            fetch_range, backward_fetch_range, fetch_key_range, backward_fetch_key_range,
            fetch_all, backward_fetch_all, all);
        delegate!(WindowStore to inner: retention_period, observed_stream_time);
    }
);

metered_store!(
    /// A session store that records its operations' rates and latencies.
    MeteredSessionStore,
    SessionStore,
    session_scope,
    {
        delegate!(SessionStore to inner via timed(metrics.delete): remove);
        delegate!(SessionStore to inner via timed(metrics.get): fetch_session);
        delegate!(SessionStore to inner via timed_iter(metrics.range):
            find_sessions, backward_find_sessions, find_sessions_in_range,
            backward_find_sessions_in_range, fetch, backward_fetch);
        delegate!(SessionStore to inner: retention_period, observed_stream_time);
    }
);

#[cfg(test)]
mod tests {
    use std::ops::Bound;

    use super::*;
    use crate::InMemoryKeyValueStore;

    #[test]
    fn metered_store_counts_each_operation_kind() {
        let mut s = MeteredKeyValueStore::new(Box::new(InMemoryKeyValueStore::new("s")));
        let m = s.metrics().clone();
        assert_eq!(m.scope(), "in-memory-state");
        for i in 0u8..5 {
            s.put(&[i], b"v").unwrap();
        }
        s.put_if_absent(&[0], b"w").unwrap();
        assert_eq!(s.get(&[1]).unwrap(), Some(b"v".to_vec()));
        assert_eq!(s.get(&[9]).unwrap(), None);
        s.delete(&[2]).unwrap();
        let n = s.range(Bound::Unbounded, Bound::Unbounded).unwrap().count();
        assert_eq!(n, 4);
        // The range counts once its iterator is gone.
        let it = s.all().unwrap();
        assert_eq!(m.range.take().count, 1);
        drop(it);
        s.flush().unwrap();
        s.restore_batch(&[]).unwrap();
        let counts: Vec<(&str, u64)> = m.ops().iter().map(|(n, o)| (*n, o.take().count)).collect();
        assert_eq!(
            counts,
            vec![
                ("put", 6),
                ("get", 2),
                ("delete", 1),
                ("range", 1),
                ("flush", 1),
                ("restore", 1)
            ]
        );
        // A new window; totals stay.
        let again = m.put.take();
        assert_eq!((again.count, again.total, again.max_ns), (0, 6, 0));
    }
}
