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
    CachingKeyValueStore, ChangelogSink, InMemoryKeyValueStoreSupplier, KeyValueBytesStoreSupplier,
    KeyValueStore, LoggingKeyValueStore, RocksDbKeyValueStoreSupplier, StateError, StoreContext,
    ThreadCache,
};

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

/// One task's instance of a store: the raw store (for flush/close) and its typed handle.
pub(crate) struct StoreEntry {
    name: Arc<str>,
    raw: SharedKv,
    typed: Box<dyn Any + Send + Sync>,
}

impl StoreEntry {
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

    fn lock(&self) -> MutexGuard<'_, Box<dyn KeyValueStore>> {
        self.raw.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Writes cached updates down (not forwarded: that is the owning node's job).
    pub(crate) fn flush_cache(&self) -> Result<()> {
        let mut s = self.lock();
        s.flush_cache()?;
        s.take_flushed();
        Ok(())
    }

    /// Flushes the engine: after this, the store reflects every logged change.
    pub(crate) fn flush(&self) -> Result<()> {
        Ok(self.lock().flush()?)
    }

    pub(crate) fn close(&self) -> Result<()> {
        Ok(self.lock().close()?)
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
            let mut store = supplier.get(b.ctx)?;
            if let Some(sink) = b.changelog {
                store = Box::new(LoggingKeyValueStore::new(store, sink));
            }
            if self.caching {
                store = Box::new(CachingKeyValueStore::new(store, b.cache.clone()));
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
                typed: Box::new(handle),
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
        }
    }
}
