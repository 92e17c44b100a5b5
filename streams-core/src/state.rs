//! Typed state stores over the byte-level stores of `streams-state`.
//!
//! A [`KeyValueStoreHandle<K, V>`] serializes keys and values with its serdes and reads and
//! writes a byte-level [`streams_state::KeyValueStore`]. Keys order by their serialized bytes.
//! DSL aggregations keep a [`ValueAndTimestamp`] per key (Kafka's timestamped store layout:
//! an 8-byte big-endian timestamp, then the value).

use std::any::Any;
use std::fmt;
use std::ops::Bound;
use std::sync::{Arc, Mutex, MutexGuard};

use streams_state::{
    CachingKeyValueStore, ChangelogSink, HitRatioStats, InMemoryKeyValueStoreSupplier,
    KeyValueBytesStoreSupplier, KeyValueStore, LoggingKeyValueStore, MeteredKeyValueStore,
    RocksDbKeyValueStoreSupplier, RocksDbProperties, SessionBytesStoreSupplier, SessionStore,
    StateError, StoreContext, StoreMetrics, ThreadCache, WindowBytesStoreSupplier, WindowStore,
};

use crate::window::{Window, Windowed};

use crate::config::{DslStore, StreamsConfig};

use crate::error::{Result, StreamsError};
use crate::serde::{Serde, SerdeError, SerdeRef};

pub use streams_state::{InMemoryKeyValueStore, StateStore};

type SharedKv = Arc<Mutex<Box<dyn KeyValueStore>>>;

/// An update that left a record cache: key, new value, old value.
pub(crate) type Flushed<K, V> = (K, Option<V>, Option<V>);

/// A typed view of a key-value store. Cheap to clone; clones share the store.
pub struct KeyValueStoreHandle<K, V> {
    name: Arc<str>,
    store: SharedKv,
    key_serde: SerdeRef<K>,
    value_serde: SerdeRef<V>,
}

impl<K, V> Clone for KeyValueStoreHandle<K, V> {
    fn clone(&self) -> Self {
        Self {
            name: self.name.clone(),
            store: self.store.clone(),
            key_serde: self.key_serde.clone(),
            value_serde: self.value_serde.clone(),
        }
    }
}

impl<K, V> fmt::Debug for KeyValueStoreHandle<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyValueStoreHandle")
            .field("name", &self.name)
            .finish()
    }
}

fn ser_err(store: &str, which: &'static str, source: SerdeError) -> StreamsError {
    StreamsError::Serialization {
        which,
        target: format!("store {store}"),
        source,
    }
}

fn de_err(store: &str, source: SerdeError) -> StreamsError {
    StreamsError::State(StateError::Corrupt {
        store: store.to_string(),
        detail: source.to_string(),
    })
}

impl<K: 'static, V: 'static> KeyValueStoreHandle<K, V> {
    fn lock(&self) -> MutexGuard<'_, Box<dyn KeyValueStore>> {
        // A panic elsewhere cannot leave the store half-written (each call is one engine
        // operation), so a poisoned lock is safe to take over.
        self.store.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn key_bytes(&self, key: &K) -> Result<Vec<u8>> {
        match self.key_serde.serialize_nullable(key) {
            Ok(Some(k)) => Ok(k),
            Ok(None) => Err(ser_err(
                &self.name,
                "key",
                SerdeError::UnexpectedNull {
                    type_name: std::any::type_name::<K>(),
                },
            )),
            Err(e) => Err(ser_err(&self.name, "key", e)),
        }
    }

    /// Whether `key` is null (Kafka's null key): such keys cannot be stored.
    pub(crate) fn is_null_key(&self, key: &K) -> bool {
        self.key_serde.is_null(key)
    }

    /// The bytes `key` is stored under.
    pub(crate) fn encode_key(&self, key: &K) -> Result<Vec<u8>> {
        self.key_bytes(key)
    }

    fn decode(&self, kv: (Vec<u8>, Vec<u8>)) -> Result<(K, V)> {
        let k = self
            .key_serde
            .deserialize(&kv.0)
            .map_err(|e| de_err(&self.name, e))?;
        let v = self
            .value_serde
            .deserialize(&kv.1)
            .map_err(|e| de_err(&self.name, e))?;
        Ok((k, v))
    }

    /// The store's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The value for `key`.
    pub fn get(&self, key: &K) -> Result<Option<V>> {
        let k = self.key_bytes(key)?;
        let bytes = self.lock().get(&k)?;
        bytes
            .map(|b| self.value_serde.deserialize(&b))
            .transpose()
            .map_err(|e| de_err(&self.name, e))
    }

    /// Stores `value` under `key`.
    pub fn put(&self, key: &K, value: &V) -> Result<()> {
        let k = self.key_bytes(key)?;
        let v = self
            .value_serde
            .serialize(value)
            .map_err(|e| ser_err(&self.name, "value", e))?;
        self.lock().put(&k, &v)?;
        Ok(())
    }

    /// Stores `value` only if `key` has none; returns the existing value otherwise.
    pub fn put_if_absent(&self, key: &K, value: &V) -> Result<Option<V>> {
        let k = self.key_bytes(key)?;
        let v = self
            .value_serde
            .serialize(value)
            .map_err(|e| ser_err(&self.name, "value", e))?;
        let old = self.lock().put_if_absent(&k, &v)?;
        old.map(|b| self.value_serde.deserialize(&b))
            .transpose()
            .map_err(|e| de_err(&self.name, e))
    }

    /// Removes `key`, returning its old value.
    pub fn delete(&self, key: &K) -> Result<Option<V>> {
        let k = self.key_bytes(key)?;
        let old = self.lock().delete(&k)?;
        old.map(|b| self.value_serde.deserialize(&b))
            .transpose()
            .map_err(|e| de_err(&self.name, e))
    }

    /// Reads `key`, computes its new value with `f` (`None` deletes it) and writes it, with
    /// one key serialization and one lock: the hot path of aggregations.
    pub(crate) fn update<R>(
        &self,
        key: &K,
        f: impl FnOnce(Option<V>) -> Result<(Option<V>, R)>,
    ) -> Result<R> {
        let k = self.key_bytes(key)?;
        let mut store = self.lock();
        let old = store
            .get(&k)?
            .map(|b| self.value_serde.deserialize(&b))
            .transpose()
            .map_err(|e| de_err(&self.name, e))?;
        let (new, out) = f(old)?;
        match new {
            Some(v) => {
                let bytes = self
                    .value_serde
                    .serialize(&v)
                    .map_err(|e| ser_err(&self.name, "value", e))?;
                store.put(&k, &bytes)?;
            }
            None => {
                store.delete(&k)?;
            }
        }
        Ok(out)
    }

    /// Updates that left the store's record cache since the last call, decoded:
    /// `(key, new value, old value)`. Empty for uncached stores.
    pub(crate) fn take_flushed(&self) -> Result<Vec<Flushed<K, V>>> {
        let flushed = self.lock().take_flushed();
        flushed
            .into_iter()
            .map(|e| {
                let k = self
                    .key_serde
                    .deserialize(&e.key)
                    .map_err(|x| de_err(&self.name, x))?;
                let dec = |b: Option<Vec<u8>>| {
                    b.map(|b| self.value_serde.deserialize(&b))
                        .transpose()
                        .map_err(|x| de_err(&self.name, x))
                };
                Ok((k, dec(e.new)?, dec(e.old)?))
            })
            .collect()
    }

    /// Writes the record cache's dirty entries to the store below (they then appear in
    /// [`take_flushed`](Self::take_flushed)), without flushing the engine.
    pub(crate) fn flush_cache(&self) -> Result<()> {
        Ok(self.lock().flush_cache()?)
    }

    /// Pairs with `from <= key <= to` (by serialized bytes), ascending; `None` is open.
    pub fn range(&self, from: Option<&K>, to: Option<&K>) -> Result<Vec<(K, V)>> {
        self.scan(from, to, false)
    }

    /// Pairs with `from <= key <= to`, descending.
    pub fn reverse_range(&self, from: Option<&K>, to: Option<&K>) -> Result<Vec<(K, V)>> {
        self.scan(from, to, true)
    }

    fn scan(&self, from: Option<&K>, to: Option<&K>, reverse: bool) -> Result<Vec<(K, V)>> {
        let from = from.map(|k| self.key_bytes(k)).transpose()?;
        let to = to.map(|k| self.key_bytes(k)).transpose()?;
        let lo = from.as_deref().map_or(Bound::Unbounded, Bound::Included);
        let hi = to.as_deref().map_or(Bound::Unbounded, Bound::Included);
        let store = self.lock();
        let iter = if reverse {
            store.reverse_range(lo, hi)?
        } else {
            store.range(lo, hi)?
        };
        iter.map(|kv| self.decode(kv?)).collect()
    }

    /// The first pair with a key `>= from` (by serialized bytes), without reading further.
    pub(crate) fn first_from(&self, from: &K) -> Result<Option<(K, V)>> {
        let lo = self.key_bytes(from)?;
        let store = self.lock();
        let mut iter = store.range(Bound::Included(&lo), Bound::Unbounded)?;
        iter.next().map(|kv| self.decode(kv?)).transpose()
    }

    /// The key that sorts last, without reading the others.
    pub(crate) fn last_key(&self) -> Result<Option<K>> {
        let store = self.lock();
        let mut iter = store.reverse_range(Bound::Unbounded, Bound::Unbounded)?;
        iter.next()
            .map(|kv| {
                let (k, _) = kv?;
                self.key_serde
                    .deserialize(&k)
                    .map_err(|e| de_err(&self.name, e))
            })
            .transpose()
    }

    /// Every pair, ascending by serialized key.
    pub fn all(&self) -> Result<Vec<(K, V)>> {
        self.scan(None, None, false)
    }

    /// Pairs whose serialized key starts with `prefix`.
    pub fn prefix_scan(&self, prefix: &[u8]) -> Result<Vec<(K, V)>> {
        let store = self.lock();
        let iter = store.prefix_scan(prefix)?;
        iter.map(|kv| self.decode(kv?)).collect()
    }

    /// An estimate of the number of keys.
    pub fn approximate_num_entries(&self) -> Result<u64> {
        Ok(self.lock().approximate_num_entries()?)
    }
}

/// A value with the timestamp of the record that last changed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValueAndTimestamp<V> {
    /// The value.
    pub value: V,
    /// Its timestamp (ms).
    pub timestamp: i64,
}

/// Kafka's timestamped-value layout: 8-byte big-endian timestamp, then the value's bytes.
pub struct TimestampedSerde<V> {
    inner: SerdeRef<V>,
}

impl<V> TimestampedSerde<V> {
    /// Wraps the value serde.
    pub fn new(inner: SerdeRef<V>) -> Self {
        Self { inner }
    }
}

impl<V> fmt::Debug for TimestampedSerde<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TimestampedSerde")
    }
}

impl<V: 'static> Serde<ValueAndTimestamp<V>> for TimestampedSerde<V> {
    fn serialize_into(
        &self,
        value: &ValueAndTimestamp<V>,
        out: &mut Vec<u8>,
    ) -> std::result::Result<(), SerdeError> {
        out.extend_from_slice(&value.timestamp.to_be_bytes());
        self.inner.serialize_into(&value.value, out)
    }
    fn deserialize(&self, bytes: &[u8]) -> std::result::Result<ValueAndTimestamp<V>, SerdeError> {
        if bytes.len() < 8 {
            return Err(SerdeError::WrongSize {
                type_name: "ValueAndTimestamp",
                expected: 8,
                actual: bytes.len(),
            });
        }
        let (ts, rest) = bytes.split_at(8);
        let mut arr = [0u8; 8];
        arr.copy_from_slice(ts);
        Ok(ValueAndTimestamp {
            value: self.inner.deserialize(rest)?,
            timestamp: i64::from_be_bytes(arr),
        })
    }
}

/// What a task does with any store on commit and close.
pub(crate) trait RawStore: Send + Sync {
    /// Whether the store keeps its data across restarts (only those are checkpointed).
    fn persistent(&self) -> bool;
    /// Applies changelog records (restoration; not logged again).
    fn restore(&self, records: &[streams_state::ChangelogRecord]) -> Result<()>;
    /// Writes a record cache's dirty entries down (a no-op without cache).
    fn flush_cache(&self) -> Result<()>;
    /// Flushes the engine.
    fn flush(&self) -> Result<()>;
    /// Closes the store.
    fn close(&self) -> Result<()>;
    /// The RocksDB properties of the store's instance, if it is a RocksDB key-value store.
    fn rocksdb_properties(&self) -> Option<RocksDbProperties>;
}

fn relock<T: ?Sized>(m: &Mutex<Box<T>>) -> MutexGuard<'_, Box<T>> {
    // A panic elsewhere cannot leave a store half-written (each call is one engine
    // operation), so a poisoned lock is safe to take over.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The same `RawStore` for every kind of store; `$restore` applies a restoration batch to
/// the locked store `$s`.
macro_rules! raw_store {
    ($kind:ty, |$s:ident, $records:ident| $restore:expr, |$p:ident| $props:expr) => {
        impl RawStore for Mutex<Box<$kind>> {
            fn persistent(&self) -> bool {
                relock(self).persistent()
            }
            fn restore(&self, $records: &[streams_state::ChangelogRecord]) -> Result<()> {
                let mut $s = relock(self);
                $restore
            }
            fn flush_cache(&self) -> Result<()> {
                let mut s = relock(self);
                s.flush_cache()?;
                s.take_flushed();
                Ok(())
            }
            fn flush(&self) -> Result<()> {
                Ok(relock(self).flush()?)
            }
            fn close(&self) -> Result<()> {
                Ok(relock(self).close()?)
            }
            fn rocksdb_properties(&self) -> Option<RocksDbProperties> {
                let $p = relock(self);
                $props
            }
        }
    };
}

raw_store!(
    dyn KeyValueStore,
    |s, records| {
        s.begin_restore()?;
        s.restore_batch(records)?;
        Ok(s.end_restore()?)
    },
    |s| s.rocksdb_properties()
);
raw_store!(
    dyn WindowStore,
    |s, records| Ok(s.restore_batch(records)?),
    |s| s.rocksdb_properties()
);
raw_store!(
    dyn SessionStore,
    |s, records| Ok(s.restore_batch(records)?),
    |s| s.rocksdb_properties()
);

/// A store's metrics recorders, present only at the `DEBUG` recording level.
#[derive(Clone, Default)]
pub(crate) struct StoreMeters {
    /// Operation rates and latencies (the metered layer).
    pub(crate) ops: Option<Arc<StoreMetrics>>,
    /// The record cache's hit ratio (cached stores only).
    pub(crate) hit_ratio: Option<Arc<HitRatioStats>>,
}

/// One task's instance of a store: the raw store (for commit and close) and its typed
/// handle.
#[derive(Clone)]
pub(crate) struct StoreEntry {
    name: Arc<str>,
    raw: Arc<dyn RawStore>,
    typed: Arc<dyn Any + Send + Sync>,
    meters: StoreMeters,
}

impl fmt::Debug for StoreEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreEntry")
            .field("name", &self.name)
            .finish()
    }
}

impl StoreEntry {
    /// The store's name.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    pub(crate) fn typed<H: Clone + 'static>(&self) -> Result<H> {
        self.typed
            .downcast_ref::<H>()
            .cloned()
            .ok_or_else(|| StreamsError::StoreAccess {
                store: self.name.to_string(),
                detail: format!(
                    "the store does not hold the requested types ({})",
                    std::any::type_name::<H>()
                ),
            })
    }

    pub(crate) fn typed_any(&self) -> &(dyn Any + Send + Sync) {
        self.typed.as_ref()
    }

    /// Writes cached updates down (not forwarded: that is the owning node's job).
    pub(crate) fn flush_cache(&self) -> Result<()> {
        self.raw.flush_cache()
    }

    /// Whether the store keeps its data across restarts.
    pub(crate) fn persistent(&self) -> bool {
        self.raw.persistent()
    }

    /// Applies a batch of changelog records.
    pub(crate) fn restore(&self, records: &[streams_state::ChangelogRecord]) -> Result<()> {
        self.raw.restore(records)
    }

    /// Flushes the engine: after this, the store reflects every logged change.
    pub(crate) fn flush(&self) -> Result<()> {
        self.raw.flush()
    }

    pub(crate) fn close(&self) -> Result<()> {
        self.raw.close()
    }

    /// The store's metrics recorders (none at the `INFO` recording level).
    pub(crate) fn meters(&self) -> &StoreMeters {
        &self.meters
    }

    /// The RocksDB properties of the store, read now (RocksDB key-value stores only).
    pub(crate) fn rocksdb_properties(&self) -> Option<RocksDbProperties> {
        self.raw.rocksdb_properties()
    }
}

/// What a store factory gets to create one task's store.
pub(crate) struct StoreBuild<'a> {
    pub(crate) ctx: &'a StoreContext,
    pub(crate) cache: &'a ThreadCache,
    pub(crate) config: &'a StreamsConfig,
    /// Where a logged store sends its changes.
    pub(crate) changelog: Option<Box<dyn ChangelogSink>>,
}

/// Creates one task's instance of a store.
pub(crate) type StoreFactory = Arc<dyn Fn(StoreBuild<'_>) -> Result<StoreEntry> + Send + Sync>;

/// Describes a key-value store to add to a topology: its engine, serdes, and whether it is
/// logged to a changelog (default: yes) and cached (default: no, as in Kafka Streams'
/// `StoreBuilder`).
pub struct KeyValueStoreBuilder<K, V> {
    name: String,
    supplier: Option<Arc<dyn KeyValueBytesStoreSupplier>>,
    key_serde: SerdeRef<K>,
    value_serde: SerdeRef<V>,
    logging: bool,
    caching: bool,
    /// DSL stores with the cache off still report each write as it happens (a cache with
    /// no budget), so their operator forwards it.
    write_through: bool,
}

impl<K, V> fmt::Debug for KeyValueStoreBuilder<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyValueStoreBuilder")
            .field("name", &self.name)
            .field("logging", &self.logging)
            .field("caching", &self.caching)
            .finish()
    }
}

impl<K: Send + 'static, V: Send + 'static> KeyValueStoreBuilder<K, V> {
    /// The store's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Logs changes to `<application.id>-<name>-changelog` (default) or not.
    pub fn with_logging_enabled(mut self, enabled: bool) -> Self {
        self.logging = enabled;
        self
    }

    /// Puts a record cache in front of the store. Default: off.
    pub fn with_caching_enabled(mut self, enabled: bool) -> Self {
        self.caching = enabled;
        self
    }

    /// Makes every write visible to the DSL operator that owns the store even with the
    /// cache off (as a cache with no budget does).
    pub(crate) fn forwarding_changes(mut self) -> Self {
        self.write_through = true;
        self
    }

    pub(crate) fn into_factory(self) -> (String, bool, StoreFactory) {
        let name = self.name.clone();
        let logged = self.logging;
        let shared_name: Arc<str> = Arc::from(name.as_str());
        let factory: StoreFactory = Arc::new(move |b: StoreBuild<'_>| {
            let supplier: Arc<dyn KeyValueBytesStoreSupplier> = match &self.supplier {
                Some(s) => s.clone(),
                None => match b.config.default_dsl_store() {
                    DslStore::RocksDb => {
                        Arc::new(RocksDbKeyValueStoreSupplier::new(self.name.clone()))
                    }
                    DslStore::InMemory => {
                        Arc::new(InMemoryKeyValueStoreSupplier::new(self.name.clone()))
                    }
                },
            };
            let debug = b.config.metrics_recording_level().records_debug();
            let mut meters = StoreMeters::default();
            let mut store = supplier.get(b.ctx)?;
            if let Some(sink) = b.changelog {
                store = Box::new(LoggingKeyValueStore::new(store, sink));
            }
            if self.caching {
                let mut cached = CachingKeyValueStore::new(store, b.cache.clone());
                if debug {
                    let stats = Arc::new(HitRatioStats::default());
                    meters.hit_ratio = Some(stats.clone());
                    cached = cached.with_hit_ratio(stats);
                }
                store = Box::new(cached);
            } else if self.write_through {
                store = Box::new(CachingKeyValueStore::new(store, ThreadCache::new(0)));
            }
            if debug {
                let metered = MeteredKeyValueStore::new(store);
                meters.ops = Some(metered.metrics().clone());
                store = Box::new(metered);
            }
            let raw: SharedKv = Arc::new(Mutex::new(store));
            let handle = KeyValueStoreHandle {
                name: shared_name.clone(),
                store: raw.clone(),
                key_serde: self.key_serde.clone(),
                value_serde: self.value_serde.clone(),
            };
            Ok(StoreEntry {
                name: shared_name.clone(),
                raw,
                typed: Arc::new(handle),
                meters,
            })
        });
        (name, logged, factory)
    }
}

/// Factories for store suppliers and builders.
#[derive(Debug)]
pub struct Stores;

impl Stores {
    /// A supplier of in-memory key-value stores called `name`.
    pub fn in_memory_key_value_store(name: &str) -> Arc<dyn KeyValueBytesStoreSupplier> {
        Arc::new(InMemoryKeyValueStoreSupplier::new(name))
    }

    /// A supplier of RocksDB key-value stores called `name` (under the state directory).
    pub fn persistent_key_value_store(name: &str) -> Arc<dyn KeyValueBytesStoreSupplier> {
        Arc::new(RocksDbKeyValueStoreSupplier::new(name))
    }

    /// A builder for a key-value store with typed keys and values, on `supplier`'s engine.
    pub fn key_value_store_builder<K, V>(
        supplier: Arc<dyn KeyValueBytesStoreSupplier>,
        key_serde: SerdeRef<K>,
        value_serde: SerdeRef<V>,
    ) -> KeyValueStoreBuilder<K, V> {
        KeyValueStoreBuilder {
            name: supplier.name().to_string(),
            supplier: Some(supplier),
            key_serde,
            value_serde,
            logging: true,
            caching: false,
            write_through: false,
        }
    }

    /// A builder for a store called `name` on the application's default engine
    /// (`default.dsl.store`).
    pub(crate) fn default_key_value_store_builder<K, V>(
        name: &str,
        supplier: Option<Arc<dyn KeyValueBytesStoreSupplier>>,
        key_serde: SerdeRef<K>,
        value_serde: SerdeRef<V>,
    ) -> KeyValueStoreBuilder<K, V> {
        KeyValueStoreBuilder {
            name: name.to_string(),
            supplier,
            key_serde,
            value_serde,
            logging: true,
            caching: false,
            write_through: false,
        }
    }
}

/// Anything [`StreamsBuilder::add_state_store`](crate::dsl::StreamsBuilder::add_state_store)
/// accepts: key-value, window and session store builders.
pub trait StoreBuilder: Send + 'static {
    /// The store's name.
    fn store_name(&self) -> &str;
    #[doc(hidden)]
    fn into_spec(self) -> StoreSpecParts;
}

/// The parts of a store's definition (internal).
#[doc(hidden)]
#[allow(missing_debug_implementations)]
pub struct StoreSpecParts {
    pub(crate) name: String,
    pub(crate) logged: bool,
    pub(crate) changelog: ChangelogKind,
    pub(crate) factory: StoreFactory,
}

/// How a store's changelog topic is cleaned up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangelogKind {
    /// `cleanup.policy=compact`: key-value stores.
    Compact,
    /// `cleanup.policy=compact,delete` with `retention.ms`: window and session stores.
    CompactDelete {
        /// The topic's retention (the store's retention plus a day, as Kafka Streams does).
        retention_ms: i64,
    },
}

impl<K: Send + 'static, V: Send + 'static> StoreBuilder for KeyValueStoreBuilder<K, V> {
    fn store_name(&self) -> &str {
        &self.name
    }
    fn into_spec(self) -> StoreSpecParts {
        let (name, logged, factory) = self.into_factory();
        StoreSpecParts {
            name,
            logged,
            changelog: ChangelogKind::Compact,
            factory,
        }
    }
}

const DAY_MS: i64 = 24 * 60 * 60 * 1000;

fn decode<T: 'static>(serde: &SerdeRef<T>, store: &str, bytes: &[u8]) -> Result<T> {
    serde.deserialize(bytes).map_err(|e| de_err(store, e))
}

fn encode_key<T: 'static>(serde: &SerdeRef<T>, store: &str, key: &T) -> Result<Vec<u8>> {
    match serde.serialize_nullable(key) {
        Ok(Some(k)) => Ok(k),
        Ok(None) => Err(ser_err(
            store,
            "key",
            SerdeError::UnexpectedNull {
                type_name: std::any::type_name::<T>(),
            },
        )),
        Err(e) => Err(ser_err(store, "key", e)),
    }
}

/// A typed view of a window store: values per (key, window start). Cheap to clone.
pub struct WindowStoreHandle<K, V> {
    name: Arc<str>,
    store: Arc<Mutex<Box<dyn WindowStore>>>,
    window_size: i64,
    key_serde: SerdeRef<K>,
    value_serde: SerdeRef<V>,
}

impl<K, V> Clone for WindowStoreHandle<K, V> {
    fn clone(&self) -> Self {
        Self {
            name: self.name.clone(),
            store: self.store.clone(),
            window_size: self.window_size,
            key_serde: self.key_serde.clone(),
            value_serde: self.value_serde.clone(),
        }
    }
}

impl<K, V> fmt::Debug for WindowStoreHandle<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WindowStoreHandle")
            .field("name", &self.name)
            .finish()
    }
}

type WindowedEntries<K, V> = Vec<(Windowed<K>, V)>;

impl<K: 'static, V: 'static> WindowStoreHandle<K, V> {
    /// The store's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The windows' size (their end is start + size).
    pub fn window_size(&self) -> i64 {
        self.window_size
    }

    /// Whether `key` is null (Kafka's null key): such keys cannot be stored.
    pub(crate) fn is_null_key(&self, key: &K) -> bool {
        self.key_serde.is_null(key)
    }

    /// The largest window start written so far (restoration included), or -1.
    pub(crate) fn observed_stream_time(&self) -> i64 {
        relock(&self.store).observed_stream_time()
    }

    /// Window updates that left the store's record cache since the last call, decoded:
    /// `(windowed key, new value, old value)`. Empty for uncached stores.
    pub(crate) fn take_flushed(&self) -> Result<Vec<Flushed<Windowed<K>, V>>> {
        let flushed = relock(&self.store).take_flushed();
        flushed
            .into_iter()
            .map(|e| {
                let (kb, start) = streams_state::split_window_changelog_key(&e.key)?;
                let key = Windowed {
                    key: decode(&self.key_serde, &self.name, &kb)?,
                    window: Window {
                        start,
                        end: start.saturating_add(self.window_size),
                    },
                };
                let dec = |b: Option<Vec<u8>>| {
                    b.map(|b| decode(&self.value_serde, &self.name, &b))
                        .transpose()
                };
                Ok((key, dec(e.new)?, dec(e.old)?))
            })
            .collect()
    }

    /// Writes the record cache's dirty windows down (they then appear in
    /// [`take_flushed`](Self::take_flushed)).
    pub(crate) fn flush_cache(&self) -> Result<()> {
        Ok(relock(&self.store).flush_cache()?)
    }

    /// Stores `value` for `key` in the window starting at `window_start`; `None` deletes.
    pub fn put(&self, key: &K, value: Option<&V>, window_start: i64) -> Result<()> {
        let k = encode_key(&self.key_serde, &self.name, key)?;
        let v = value
            .map(|v| self.value_serde.serialize(v))
            .transpose()
            .map_err(|e| ser_err(&self.name, "value", e))?;
        relock(&self.store).put(&k, v.as_deref(), window_start)?;
        Ok(())
    }

    /// The value of `key` in the window starting at `window_start`.
    pub fn fetch(&self, key: &K, window_start: i64) -> Result<Option<V>> {
        let k = encode_key(&self.key_serde, &self.name, key)?;
        let v = relock(&self.store).fetch(&k, window_start)?;
        v.map(|b| decode(&self.value_serde, &self.name, &b))
            .transpose()
    }

    /// `(window start, value)` of `key` for starts in `[from, to]`, ascending.
    pub fn fetch_range(&self, key: &K, from: i64, to: i64) -> Result<Vec<(i64, V)>> {
        self.range_of(key, from, to, false)
    }

    /// Like [`fetch_range`](Self::fetch_range), descending.
    pub fn backward_fetch_range(&self, key: &K, from: i64, to: i64) -> Result<Vec<(i64, V)>> {
        self.range_of(key, from, to, true)
    }

    fn range_of(&self, key: &K, from: i64, to: i64, backward: bool) -> Result<Vec<(i64, V)>> {
        let k = encode_key(&self.key_serde, &self.name, key)?;
        let store = relock(&self.store);
        let iter = if backward {
            store.backward_fetch_range(&k, from, to)?
        } else {
            store.fetch_range(&k, from, to)?
        };
        iter.map(|r| {
            let (start, v) = r?;
            Ok((start, decode(&self.value_serde, &self.name, &v)?))
        })
        .collect()
    }

    fn windowed(
        &self,
        r: std::result::Result<(streams_state::WindowedKeyBytes, Vec<u8>), StateError>,
    ) -> Result<(Windowed<K>, V)> {
        let (wk, v) = r?;
        Ok((
            Windowed {
                key: decode(&self.key_serde, &self.name, &wk.key)?,
                window: Window {
                    start: wk.window_start,
                    end: wk.window_start.saturating_add(self.window_size),
                },
            },
            decode(&self.value_serde, &self.name, &v)?,
        ))
    }

    /// Windows of keys in `[key_from, key_to]` (by serialized bytes; `None` is open) with
    /// starts in `[from, to]`, ascending by (key, start).
    pub fn fetch_key_range(
        &self,
        key_from: Option<&K>,
        key_to: Option<&K>,
        from: i64,
        to: i64,
    ) -> Result<WindowedEntries<K, V>> {
        let lo = key_from
            .map(|k| encode_key(&self.key_serde, &self.name, k))
            .transpose()?;
        let hi = key_to
            .map(|k| encode_key(&self.key_serde, &self.name, k))
            .transpose()?;
        let store = relock(&self.store);
        let iter = store.fetch_key_range(lo.as_deref(), hi.as_deref(), from, to)?;
        iter.map(|r| self.windowed(r)).collect()
    }

    /// Every window with a start in `[from, to]`, ascending by (key, start).
    pub fn fetch_all(&self, from: i64, to: i64) -> Result<WindowedEntries<K, V>> {
        let store = relock(&self.store);
        let iter = store.fetch_all(from, to)?;
        iter.map(|r| self.windowed(r)).collect()
    }

    /// Every live window.
    pub fn all(&self) -> Result<WindowedEntries<K, V>> {
        let store = relock(&self.store);
        let iter = store.all()?;
        iter.map(|r| self.windowed(r)).collect()
    }
}

/// A typed view of a session store. Cheap to clone.
pub struct SessionStoreHandle<K, V> {
    name: Arc<str>,
    store: Arc<Mutex<Box<dyn SessionStore>>>,
    key_serde: SerdeRef<K>,
    value_serde: SerdeRef<V>,
}

impl<K, V> Clone for SessionStoreHandle<K, V> {
    fn clone(&self) -> Self {
        Self {
            name: self.name.clone(),
            store: self.store.clone(),
            key_serde: self.key_serde.clone(),
            value_serde: self.value_serde.clone(),
        }
    }
}

impl<K, V> fmt::Debug for SessionStoreHandle<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionStoreHandle")
            .field("name", &self.name)
            .finish()
    }
}

impl<K: 'static, V: 'static> SessionStoreHandle<K, V> {
    /// Whether `key` is null (Kafka's null key): such keys cannot be stored.
    pub(crate) fn is_null_key(&self, key: &K) -> bool {
        self.key_serde.is_null(key)
    }

    /// The store's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Session updates that left the store's record cache since the last call, decoded:
    /// `(session key, new value, old value)`. Empty for uncached stores.
    pub(crate) fn take_flushed(&self) -> Result<Vec<Flushed<Windowed<K>, V>>> {
        let flushed = relock(&self.store).take_flushed();
        flushed
            .into_iter()
            .map(|e| {
                let sk = streams_state::split_session_changelog_key(&e.key)?;
                let key = Windowed {
                    key: decode(&self.key_serde, &self.name, &sk.key)?,
                    window: Window {
                        start: sk.start,
                        end: sk.end,
                    },
                };
                let dec = |b: Option<Vec<u8>>| {
                    b.map(|b| decode(&self.value_serde, &self.name, &b))
                        .transpose()
                };
                Ok((key, dec(e.new)?, dec(e.old)?))
            })
            .collect()
    }

    /// Writes the record cache's dirty sessions down (they then appear in
    /// [`take_flushed`](Self::take_flushed)).
    pub(crate) fn flush_cache(&self) -> Result<()> {
        Ok(relock(&self.store).flush_cache()?)
    }

    /// Stores `value` for the session `key.window` (both ends inclusive).
    pub fn put(&self, key: &Windowed<K>, value: &V) -> Result<()> {
        let k = encode_key(&self.key_serde, &self.name, &key.key)?;
        let v = self
            .value_serde
            .serialize(value)
            .map_err(|e| ser_err(&self.name, "value", e))?;
        relock(&self.store).put(&k, key.window.start, key.window.end, &v)?;
        Ok(())
    }

    /// Removes the session `key.window`.
    pub fn remove(&self, key: &Windowed<K>) -> Result<()> {
        let k = encode_key(&self.key_serde, &self.name, &key.key)?;
        relock(&self.store).remove(&k, key.window.start, key.window.end)?;
        Ok(())
    }

    /// The value of the session `key.window`, if any.
    pub fn fetch_session(&self, key: &Windowed<K>) -> Result<Option<V>> {
        let k = encode_key(&self.key_serde, &self.name, &key.key)?;
        let v = relock(&self.store).fetch_session(&k, key.window.start, key.window.end)?;
        v.map(|b| decode(&self.value_serde, &self.name, &b))
            .transpose()
    }

    fn sessions(&self, iter: streams_state::SessionIter<'_>) -> Result<WindowedEntries<K, V>> {
        iter.map(|r| {
            let (sk, v) = r?;
            Ok((
                Windowed {
                    key: decode(&self.key_serde, &self.name, &sk.key)?,
                    window: Window {
                        start: sk.start,
                        end: sk.end,
                    },
                },
                decode(&self.value_serde, &self.name, &v)?,
            ))
        })
        .collect()
    }

    /// Sessions of `key` with `end >= earliest_end` and `start <= latest_start`, ascending by
    /// end: the sessions a record at time t merges with are
    /// `find_sessions(key, t - gap, t + gap)`.
    pub fn find_sessions(
        &self,
        key: &K,
        earliest_end: i64,
        latest_start: i64,
    ) -> Result<WindowedEntries<K, V>> {
        let k = encode_key(&self.key_serde, &self.name, key)?;
        let store = relock(&self.store);
        let iter = store.find_sessions(&k, earliest_end, latest_start)?;
        self.sessions(iter)
    }

    /// Every live session of `key`, ascending by end.
    pub fn fetch(&self, key: &K) -> Result<WindowedEntries<K, V>> {
        let k = encode_key(&self.key_serde, &self.name, key)?;
        let store = relock(&self.store);
        let iter = store.fetch(&k)?;
        self.sessions(iter)
    }
}

/// Where a window store builder gets its stores: a given supplier, or the application's
/// default engine (`default.dsl.store`) with a name, retention and window size.
#[derive(Clone)]
enum WindowSupplier {
    Given(Arc<dyn WindowBytesStoreSupplier>),
    Default {
        name: String,
        retention: i64,
        size: i64,
    },
}

impl WindowSupplier {
    fn name(&self) -> &str {
        match self {
            WindowSupplier::Given(s) => s.name(),
            WindowSupplier::Default { name, .. } => name,
        }
    }
    fn retention(&self) -> i64 {
        match self {
            WindowSupplier::Given(s) => s.retention_period(),
            WindowSupplier::Default { retention, .. } => *retention,
        }
    }
    fn size(&self) -> i64 {
        match self {
            WindowSupplier::Given(s) => s.window_size(),
            WindowSupplier::Default { size, .. } => *size,
        }
    }
    fn resolve(&self, config: &StreamsConfig) -> Result<Arc<dyn WindowBytesStoreSupplier>> {
        Ok(match self {
            WindowSupplier::Given(s) => s.clone(),
            WindowSupplier::Default {
                name,
                retention,
                size,
            } => match config.default_dsl_store() {
                DslStore::RocksDb => Arc::new(streams_state::RocksDbWindowStoreSupplier::new(
                    name.clone(),
                    *retention,
                    *size,
                )?),
                DslStore::InMemory => Arc::new(streams_state::InMemoryWindowStoreSupplier::new(
                    name.clone(),
                    *retention,
                    *size,
                )?),
            },
        })
    }
}

/// Wraps a store in another layer (change logging).
type Wrap<S, A> = fn(Box<S>, A) -> Box<S>;
/// Wraps a store in a record cache with a budget, recording its hit ratio if given stats.
type WrapCache<S> = fn(Box<S>, ThreadCache, Option<Arc<HitRatioStats>>) -> Box<S>;
/// Wraps a store in the metered layer; returns it with its statistics.
type Meter<S> = fn(Box<S>) -> (Box<S>, Arc<StoreMetrics>);

/// The layers a window or session store may get around its engine, innermost first.
struct Layers<S: ?Sized> {
    /// Change logging, when the task gives a changelog.
    log: Wrap<S, Box<dyn ChangelogSink>>,
    /// A record cache, and whether it has the thread's budget (else it writes through).
    cache: Option<(WrapCache<S>, bool)>,
    /// The metered layer (`DEBUG` recording level only).
    meter: Meter<S>,
}

/// The spec of a logged window or session store: open the engine, wrap it in change logging
/// if the task gave a changelog, share it, and build its typed handle.
fn windowed_store_spec<S, H>(
    name: String,
    logged: bool,
    retention: i64,
    open: impl Fn(&StoreBuild<'_>) -> Result<Box<S>> + Send + Sync + 'static,
    layers: Layers<S>,
    handle: impl Fn(Arc<str>, Arc<Mutex<Box<S>>>) -> H + Send + Sync + 'static,
) -> StoreSpecParts
where
    S: ?Sized + Send + 'static,
    H: Send + Sync + 'static,
    Mutex<Box<S>>: RawStore,
{
    let shared_name: Arc<str> = Arc::from(name.as_str());
    let factory: StoreFactory = Arc::new(move |mut b: StoreBuild<'_>| {
        let debug = b.config.metrics_recording_level().records_debug();
        let mut meters = StoreMeters::default();
        let Layers { log, cache, meter } = &layers;
        let mut store = open(&b)?;
        if let Some(sink) = b.changelog.take() {
            store = log(store, sink);
        }
        if let Some((cache, budgeted)) = *cache {
            let budget = if budgeted {
                b.cache.clone()
            } else {
                ThreadCache::new(0)
            };
            // A write-through cache (no budget) is no cache: no hit ratio.
            let stats = (debug && budgeted).then(|| Arc::new(HitRatioStats::default()));
            meters.hit_ratio = stats.clone();
            store = cache(store, budget, stats);
        }
        if debug {
            let (metered, ops) = meter(store);
            meters.ops = Some(ops);
            store = metered;
        }
        let raw = Arc::new(Mutex::new(store));
        Ok(StoreEntry {
            name: shared_name.clone(),
            raw: raw.clone(),
            typed: Arc::new(handle(shared_name.clone(), raw)),
            meters,
        })
    });
    StoreSpecParts {
        name,
        logged,
        changelog: ChangelogKind::CompactDelete {
            retention_ms: retention.saturating_add(DAY_MS),
        },
        factory,
    }
}

/// Describes a window store to add to a topology.
pub struct WindowStoreBuilder<K, V> {
    supplier: WindowSupplier,
    key_serde: SerdeRef<K>,
    value_serde: SerdeRef<V>,
    logging: bool,
    caching: bool,
    /// DSL stores with the cache off still report each write as it happens (a cache with
    /// no budget), so their operator forwards it.
    write_through: bool,
}

impl<K, V> fmt::Debug for WindowStoreBuilder<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WindowStoreBuilder")
            .field("name", &self.supplier.name())
            .finish()
    }
}

impl<K, V> WindowStoreBuilder<K, V> {
    /// Logs changes to `<application.id>-<name>-changelog` (default) or not.
    pub fn with_logging_enabled(mut self, enabled: bool) -> Self {
        self.logging = enabled;
        self
    }

    /// Puts a record cache in front of the store. Default: off.
    pub fn with_caching_enabled(mut self, enabled: bool) -> Self {
        self.caching = enabled;
        self
    }

    /// Makes every write visible to the DSL operator that owns the store even with the
    /// cache off (as a cache with no budget does).
    pub(crate) fn forwarding_changes(mut self) -> Self {
        self.write_through = true;
        self
    }
}

impl<K: Send + 'static, V: Send + 'static> StoreBuilder for WindowStoreBuilder<K, V> {
    fn store_name(&self) -> &str {
        self.supplier.name()
    }
    fn into_spec(self) -> StoreSpecParts {
        let (name, retention, size) = (
            self.supplier.name().to_string(),
            self.supplier.retention(),
            self.supplier.size(),
        );
        let Self {
            supplier,
            key_serde,
            value_serde,
            logging,
            caching,
            write_through,
        } = self;
        windowed_store_spec(
            name,
            logging,
            retention,
            move |b| supplier.resolve(b.config)?.get(b.ctx).map_err(Into::into),
            Layers {
                log: |store, sink| Box::new(streams_state::LoggingWindowStore::new(store, sink)),
                cache: (caching || write_through).then_some((
                    |store, cache, stats| {
                        let mut cached = streams_state::CachingWindowStore::new(store, cache);
                        if let Some(stats) = stats {
                            cached = cached.with_hit_ratio(stats);
                        }
                        Box::new(cached) as Box<dyn WindowStore>
                    },
                    caching,
                )),
                meter: |store| {
                    let metered = streams_state::MeteredWindowStore::new(store);
                    let ops = metered.metrics().clone();
                    (Box::new(metered) as Box<dyn WindowStore>, ops)
                },
            },
            move |name, store| WindowStoreHandle {
                name,
                store,
                window_size: size,
                key_serde: key_serde.clone(),
                value_serde: value_serde.clone(),
            },
        )
    }
}

/// Where a session store builder gets its stores: a given supplier, or the application's
/// default engine with a name and retention.
#[derive(Clone)]
enum SessionSupplier {
    Given(Arc<dyn SessionBytesStoreSupplier>),
    Default { name: String, retention: i64 },
}

impl SessionSupplier {
    fn name(&self) -> &str {
        match self {
            SessionSupplier::Given(s) => s.name(),
            SessionSupplier::Default { name, .. } => name,
        }
    }
    fn retention(&self) -> i64 {
        match self {
            SessionSupplier::Given(s) => s.retention_period(),
            SessionSupplier::Default { retention, .. } => *retention,
        }
    }
    fn resolve(&self, config: &StreamsConfig) -> Result<Arc<dyn SessionBytesStoreSupplier>> {
        Ok(match self {
            SessionSupplier::Given(s) => s.clone(),
            SessionSupplier::Default { name, retention } => match config.default_dsl_store() {
                DslStore::RocksDb => Arc::new(streams_state::RocksDbSessionStoreSupplier::new(
                    name.clone(),
                    *retention,
                )?),
                DslStore::InMemory => Arc::new(streams_state::InMemorySessionStoreSupplier::new(
                    name.clone(),
                    *retention,
                )?),
            },
        })
    }
}

/// Describes a session store to add to a topology.
pub struct SessionStoreBuilder<K, V> {
    supplier: SessionSupplier,
    key_serde: SerdeRef<K>,
    value_serde: SerdeRef<V>,
    logging: bool,
    caching: bool,
    /// DSL stores with the cache off still report each write as it happens (a cache with
    /// no budget), so their operator forwards it.
    write_through: bool,
}

impl<K, V> fmt::Debug for SessionStoreBuilder<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionStoreBuilder")
            .field("name", &self.supplier.name())
            .finish()
    }
}

impl<K, V> SessionStoreBuilder<K, V> {
    /// Logs changes to `<application.id>-<name>-changelog` (default) or not.
    pub fn with_logging_enabled(mut self, enabled: bool) -> Self {
        self.logging = enabled;
        self
    }

    /// Puts a record cache in front of the store. Default: off.
    pub fn with_caching_enabled(mut self, enabled: bool) -> Self {
        self.caching = enabled;
        self
    }

    /// Makes every write visible to the DSL operator that owns the store even with the
    /// cache off (as a cache with no budget does).
    pub(crate) fn forwarding_changes(mut self) -> Self {
        self.write_through = true;
        self
    }
}

impl<K: Send + 'static, V: Send + 'static> StoreBuilder for SessionStoreBuilder<K, V> {
    fn store_name(&self) -> &str {
        self.supplier.name()
    }
    fn into_spec(self) -> StoreSpecParts {
        let (name, retention) = (self.supplier.name().to_string(), self.supplier.retention());
        let Self {
            supplier,
            key_serde,
            value_serde,
            logging,
            caching,
            write_through,
        } = self;
        windowed_store_spec(
            name,
            logging,
            retention,
            move |b| supplier.resolve(b.config)?.get(b.ctx).map_err(Into::into),
            Layers {
                log: |store, sink| Box::new(streams_state::LoggingSessionStore::new(store, sink)),
                cache: (caching || write_through).then_some((
                    |store, cache, stats| {
                        let mut cached = streams_state::CachingSessionStore::new(store, cache);
                        if let Some(stats) = stats {
                            cached = cached.with_hit_ratio(stats);
                        }
                        Box::new(cached) as Box<dyn SessionStore>
                    },
                    caching,
                )),
                meter: |store| {
                    let metered = streams_state::MeteredSessionStore::new(store);
                    let ops = metered.metrics().clone();
                    (Box::new(metered) as Box<dyn SessionStore>, ops)
                },
            },
            move |name, store| SessionStoreHandle {
                name,
                store,
                key_serde: key_serde.clone(),
                value_serde: value_serde.clone(),
            },
        )
    }
}

impl Stores {
    /// A supplier of in-memory window stores: windows of `window_size_ms` kept for
    /// `retention_ms` of stream time (which must be at least the window size).
    pub fn in_memory_window_store(
        name: &str,
        retention_ms: i64,
        window_size_ms: i64,
    ) -> Result<Arc<dyn WindowBytesStoreSupplier>> {
        Ok(Arc::new(streams_state::InMemoryWindowStoreSupplier::new(
            name,
            retention_ms,
            window_size_ms,
        )?))
    }

    /// A supplier of RocksDB window stores (one column family per time segment).
    pub fn persistent_window_store(
        name: &str,
        retention_ms: i64,
        window_size_ms: i64,
    ) -> Result<Arc<dyn WindowBytesStoreSupplier>> {
        Ok(Arc::new(streams_state::RocksDbWindowStoreSupplier::new(
            name,
            retention_ms,
            window_size_ms,
        )?))
    }

    /// A supplier of in-memory session stores keeping sessions for `retention_ms`.
    pub fn in_memory_session_store(
        name: &str,
        retention_ms: i64,
    ) -> Result<Arc<dyn SessionBytesStoreSupplier>> {
        Ok(Arc::new(streams_state::InMemorySessionStoreSupplier::new(
            name,
            retention_ms,
        )?))
    }

    /// A supplier of RocksDB session stores.
    pub fn persistent_session_store(
        name: &str,
        retention_ms: i64,
    ) -> Result<Arc<dyn SessionBytesStoreSupplier>> {
        Ok(Arc::new(streams_state::RocksDbSessionStoreSupplier::new(
            name,
            retention_ms,
        )?))
    }

    /// A builder for a window store with typed keys and values (logged by default).
    pub fn window_store_builder<K, V>(
        supplier: Arc<dyn WindowBytesStoreSupplier>,
        key_serde: SerdeRef<K>,
        value_serde: SerdeRef<V>,
    ) -> WindowStoreBuilder<K, V> {
        WindowStoreBuilder {
            supplier: WindowSupplier::Given(supplier),
            key_serde,
            value_serde,
            logging: true,
            caching: false,
            write_through: false,
        }
    }

    /// A window store builder on the application's default engine.
    pub(crate) fn default_window_store_builder<K, V>(
        name: &str,
        retention: i64,
        size: i64,
        key_serde: SerdeRef<K>,
        value_serde: SerdeRef<V>,
    ) -> WindowStoreBuilder<K, V> {
        WindowStoreBuilder {
            supplier: WindowSupplier::Default {
                name: name.to_string(),
                retention,
                size,
            },
            key_serde,
            value_serde,
            logging: true,
            caching: false,
            write_through: false,
        }
    }

    /// A builder for a session store with typed keys and values (logged by default).
    pub fn session_store_builder<K, V>(
        supplier: Arc<dyn SessionBytesStoreSupplier>,
        key_serde: SerdeRef<K>,
        value_serde: SerdeRef<V>,
    ) -> SessionStoreBuilder<K, V> {
        SessionStoreBuilder {
            supplier: SessionSupplier::Given(supplier),
            key_serde,
            value_serde,
            logging: true,
            caching: false,
            write_through: false,
        }
    }

    /// A session store builder on the application's default engine.
    pub(crate) fn default_session_store_builder<K, V>(
        name: &str,
        retention: i64,
        key_serde: SerdeRef<K>,
        value_serde: SerdeRef<V>,
    ) -> SessionStoreBuilder<K, V> {
        SessionStoreBuilder {
            supplier: SessionSupplier::Default {
                name: name.to_string(),
                retention,
            },
            key_serde,
            value_serde,
            logging: true,
            caching: false,
            write_through: false,
        }
    }
}

/// Read-only access to a key-value store (one task's handle, or a view across tasks), for
/// interactive queries.
pub trait ReadOnlyKeyValueStore<K, V> {
    /// The value for `key`.
    fn get(&self, key: &K) -> Result<Option<V>>;
    /// Pairs with `from <= key <= to` by serialized key bytes (`None` is open).
    fn range(&self, from: Option<&K>, to: Option<&K>) -> Result<Vec<(K, V)>>;
    /// Every pair.
    fn all(&self) -> Result<Vec<(K, V)>>;
    /// An estimate of the number of keys.
    fn approximate_num_entries(&self) -> Result<u64>;
}

/// Read-only access to a window store, for interactive queries.
pub trait ReadOnlyWindowStore<K, V> {
    /// The value of `key` in the window starting at `window_start`.
    fn fetch(&self, key: &K, window_start: i64) -> Result<Option<V>>;
    /// `(window start, value)` of `key` for starts in `[from, to]`, ascending.
    fn fetch_range(&self, key: &K, from: i64, to: i64) -> Result<Vec<(i64, V)>>;
    /// Every window with a start in `[from, to]`.
    fn fetch_all(&self, from: i64, to: i64) -> Result<Vec<(Windowed<K>, V)>>;
}

/// Read-only access to a session store, for interactive queries.
pub trait ReadOnlySessionStore<K, V> {
    /// Every live session of `key`, ascending by end.
    fn fetch(&self, key: &K) -> Result<Vec<(Windowed<K>, V)>>;
    /// Sessions of `key` with `end >= earliest_end` and `start <= latest_start`.
    fn find_sessions(
        &self,
        key: &K,
        earliest_end: i64,
        latest_start: i64,
    ) -> Result<Vec<(Windowed<K>, V)>>;
}

impl<K: 'static, V: 'static> ReadOnlyKeyValueStore<K, V> for KeyValueStoreHandle<K, V> {
    fn get(&self, key: &K) -> Result<Option<V>> {
        KeyValueStoreHandle::get(self, key)
    }
    fn range(&self, from: Option<&K>, to: Option<&K>) -> Result<Vec<(K, V)>> {
        KeyValueStoreHandle::range(self, from, to)
    }
    fn all(&self) -> Result<Vec<(K, V)>> {
        KeyValueStoreHandle::all(self)
    }
    fn approximate_num_entries(&self) -> Result<u64> {
        KeyValueStoreHandle::approximate_num_entries(self)
    }
}

impl<K: 'static, V: 'static> ReadOnlyWindowStore<K, V> for WindowStoreHandle<K, V> {
    fn fetch(&self, key: &K, window_start: i64) -> Result<Option<V>> {
        WindowStoreHandle::fetch(self, key, window_start)
    }
    fn fetch_range(&self, key: &K, from: i64, to: i64) -> Result<Vec<(i64, V)>> {
        WindowStoreHandle::fetch_range(self, key, from, to)
    }
    fn fetch_all(&self, from: i64, to: i64) -> Result<Vec<(Windowed<K>, V)>> {
        WindowStoreHandle::fetch_all(self, from, to)
    }
}

impl<K: 'static, V: 'static> ReadOnlySessionStore<K, V> for SessionStoreHandle<K, V> {
    fn fetch(&self, key: &K) -> Result<Vec<(Windowed<K>, V)>> {
        SessionStoreHandle::fetch(self, key)
    }
    fn find_sessions(
        &self,
        key: &K,
        earliest_end: i64,
        latest_start: i64,
    ) -> Result<Vec<(Windowed<K>, V)>> {
        SessionStoreHandle::find_sessions(self, key, earliest_end, latest_start)
    }
}
