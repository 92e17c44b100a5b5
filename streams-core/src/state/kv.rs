//! Typed key-value stores: [`KeyValueStoreHandle`] and its builder.

use std::fmt;
use std::ops::Bound;
use std::sync::{Arc, Mutex, MutexGuard};

use streams_state::{
    CachingKeyValueStore, HitRatioStats, InMemoryKeyValueStoreSupplier, KeyValueBytesStoreSupplier,
    KeyValueStore, LoggingKeyValueStore, MeteredKeyValueStore, RocksDbKeyValueStoreSupplier,
    ThreadCache,
};

use crate::config::DslStore;

use crate::error::Result;
use crate::serde::{SerdeError, SerdeRef};

use super::*;

/// A typed view of a key-value store. Cheap to clone; clones share the store.
pub struct KeyValueStoreHandle<K, V> {
    name: Arc<str>,
    store: SharedKv,
    key_serde: SerdeRef<K>,
    value_serde: SerdeRef<V>,
    /// The store has a caching layer (even with no budget, where writes go through it at
    /// once: like Kafka's caching store, it drops the deletion of a key that is nowhere).
    cached: bool,
}

handle_impls!(KeyValueStoreHandle {
    name,
    store,
    key_serde,
    value_serde,
    cached
});

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

    /// Whether the store has a caching layer (see the field).
    pub(crate) fn is_cached(&self) -> bool {
        self.cached
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

    /// Removes `key` without reading its old value: on RocksDB a tombstone only, where
    /// [`delete`](Self::delete) reads first. Logged whether or not the key was there.
    pub(crate) fn remove(&self, key: &K) -> Result<()> {
        let k = self.key_bytes(key)?;
        Ok(self.lock().remove(&k)?)
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
        decode_flushed(flushed, &self.name, &self.value_serde, |bytes| {
            decode(&self.key_serde, &self.name, bytes)
        })
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

    /// The last pair with a key in `[from, to]` (by serialized bytes), without reading the
    /// others.
    pub(crate) fn last_in(&self, from: &K, to: &K) -> Result<Option<(K, V)>> {
        let (lo, hi) = (self.key_bytes(from)?, self.key_bytes(to)?);
        let store = self.lock();
        let mut iter = store.reverse_range(Bound::Included(&lo), Bound::Included(&hi))?;
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

/// Describes a key-value store to add to a topology: its engine, serdes, and whether it is
/// logged to a changelog (default: yes) and cached (default: no, as in Kafka Streams'
/// `StoreBuilder`).
pub struct KeyValueStoreBuilder<K, V> {
    pub(super) name: String,
    pub(super) supplier: Option<Arc<dyn KeyValueBytesStoreSupplier>>,
    pub(super) key_serde: SerdeRef<K>,
    pub(super) value_serde: SerdeRef<V>,
    pub(super) logging: bool,
    pub(super) caching: bool,
    /// DSL stores with the cache off still report each write as it happens (a cache with
    /// no budget), so their operator forwards it.
    pub(super) write_through: bool,
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

super::layers::store_builder_setters!(KeyValueStoreBuilder);

impl<K: Send + 'static, V: Send + 'static> KeyValueStoreBuilder<K, V> {
    /// The store's name.
    pub fn name(&self) -> &str {
        &self.name
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
            let cached = self.caching;
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
                cached,
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
