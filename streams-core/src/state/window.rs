//! Typed window stores: [`WindowStoreHandle`] and its builder.

use std::sync::{Arc, Mutex};

use streams_state::{StateError, WindowBytesStoreSupplier, WindowStore};

use crate::window::{Window, Windowed};

use crate::config::DslStore;

use crate::error::Result;
use crate::serde::SerdeRef;

use super::layers::{
    Layers, Supplier, segmented_layers, segmented_store_builder, segmented_supplier,
    windowed_store_spec,
};
use super::*;

/// A typed view of a window store: values per (key, window start). Cheap to clone.
pub struct WindowStoreHandle<K, V> {
    name: Arc<str>,
    store: Arc<Mutex<Box<dyn WindowStore>>>,
    window_size: i64,
    key_serde: SerdeRef<K>,
    value_serde: SerdeRef<V>,
}

handle_impls!(WindowStoreHandle {
    name,
    store,
    window_size,
    key_serde,
    value_serde
});

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
        decode_flushed(flushed, &self.name, &self.value_serde, |bytes| {
            let (kb, start) = streams_state::split_window_changelog_key(bytes)?;
            let key = decode(&self.key_serde, &self.name, &kb)?;
            let end = start.saturating_add(self.window_size);
            Ok(Windowed {
                key,
                window: Window { start, end },
            })
        })
    }

    /// Writes the record cache's dirty windows down (they then appear in
    /// [`take_flushed`](Self::take_flushed)).
    pub(crate) fn flush_cache(&self) -> Result<()> {
        Ok(relock(&self.store).flush_cache()?)
    }

    /// Stores `value` for `key` in the window starting at `window_start`; `None` deletes.
    pub fn put(&self, key: &K, value: Option<&V>, window_start: i64) -> Result<()> {
        self.put_encoded(&self.encode_key(key)?, value, window_start)
    }

    /// `key`'s bytes as the store keys them, for callers that make several calls with one
    /// key (the `_encoded` methods take them).
    pub(crate) fn encode_key(&self, key: &K) -> Result<Vec<u8>> {
        encode_key(&self.key_serde, &self.name, key)
    }

    /// [`put`](Self::put) of a key encoded by [`encode_key`](Self::encode_key).
    pub(crate) fn put_encoded(&self, k: &[u8], value: Option<&V>, window_start: i64) -> Result<()> {
        let v = value
            .map(|v| self.value_serde.serialize(v))
            .transpose()
            .map_err(|e| ser_err(&self.name, "value", e))?;
        relock(&self.store).put(k, v.as_deref(), window_start)?;
        Ok(())
    }

    /// The value of `key` in the window starting at `window_start`.
    pub fn fetch(&self, key: &K, window_start: i64) -> Result<Option<V>> {
        self.fetch_encoded(&self.encode_key(key)?, window_start)
    }

    /// [`fetch`](Self::fetch) of a key encoded by [`encode_key`](Self::encode_key).
    pub(crate) fn fetch_encoded(&self, k: &[u8], window_start: i64) -> Result<Option<V>> {
        let v = relock(&self.store).fetch(k, window_start)?;
        v.map(|b| decode(&self.value_serde, &self.name, &b))
            .transpose()
    }

    /// `(window start, value)` of `key` for starts in `[from, to]`, ascending.
    pub fn fetch_range(&self, key: &K, from: i64, to: i64) -> Result<Vec<(i64, V)>> {
        self.range_of(&self.encode_key(key)?, from, to, false)
    }

    /// Like [`fetch_range`](Self::fetch_range), descending.
    pub fn backward_fetch_range(&self, key: &K, from: i64, to: i64) -> Result<Vec<(i64, V)>> {
        self.range_of(&self.encode_key(key)?, from, to, true)
    }

    /// [`fetch_range`](Self::fetch_range) of a key encoded by
    /// [`encode_key`](Self::encode_key).
    pub(crate) fn fetch_range_encoded(
        &self,
        k: &[u8],
        from: i64,
        to: i64,
    ) -> Result<Vec<(i64, V)>> {
        self.range_of(k, from, to, false)
    }

    fn range_of(&self, k: &[u8], from: i64, to: i64, backward: bool) -> Result<Vec<(i64, V)>> {
        let store = relock(&self.store);
        let iter = if backward {
            store.backward_fetch_range(k, from, to)?
        } else {
            store.fetch_range(k, from, to)?
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

/// Where a window store builder gets its stores.
pub(super) type WindowSupplier = Supplier<dyn WindowBytesStoreSupplier>;

segmented_supplier!(WindowBytesStoreSupplier: RocksDbWindowStoreSupplier, InMemoryWindowStoreSupplier, |name, retention, size| (name, retention, size));

impl WindowSupplier {
    fn size(&self) -> i64 {
        match self {
            Supplier::Given(s) => s.window_size(),
            Supplier::Default { size, .. } => *size,
        }
    }
}

segmented_store_builder! {
    /// Describes a window store to add to a topology.
    WindowStoreBuilder, WindowSupplier
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
        let (logging, caching, write_through) = (self.logging, self.caching, self.write_through);
        let (supplier, key_serde, value_serde) = (self.supplier, self.key_serde, self.value_serde);
        windowed_store_spec(
            name,
            logging,
            retention,
            move |b| supplier.resolve(b.config)?.get(b.ctx).map_err(Into::into),
            segmented_layers!(WindowStore: LoggingWindowStore, CachingWindowStore, MeteredWindowStore; caching, write_through),
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
