//! Typed session stores: [`SessionStoreHandle`] and its builder.

use std::sync::{Arc, Mutex};

use streams_state::{SessionBytesStoreSupplier, SessionStore};

use crate::window::{Window, Windowed};

use crate::config::DslStore;

use crate::error::Result;
use crate::serde::SerdeRef;

use super::layers::{
    Layers, Supplier, segmented_layers, segmented_store_builder, segmented_supplier,
    windowed_store_spec,
};
use super::*;

/// A typed view of a session store. Cheap to clone.
pub struct SessionStoreHandle<K, V> {
    name: Arc<str>,
    store: Arc<Mutex<Box<dyn SessionStore>>>,
    key_serde: SerdeRef<K>,
    value_serde: SerdeRef<V>,
}

handle_impls!(SessionStoreHandle {
    name,
    store,
    key_serde,
    value_serde
});

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
        decode_flushed(flushed, &self.name, &self.value_serde, |bytes| {
            let sk = streams_state::split_session_changelog_key(bytes)?;
            let key = decode(&self.key_serde, &self.name, &sk.key)?;
            let (start, end) = (sk.start, sk.end);
            Ok(Windowed {
                key,
                window: Window { start, end },
            })
        })
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

    /// The sessions of every key that end in `[from, to)`, ascending by (end, key bytes,
    /// start): the sessions an emit-on-close aggregation emits when its close time moves
    /// from `from` to `to`.
    pub(crate) fn sessions_ending_in(&self, from: i64, to: i64) -> Result<WindowedEntries<K, V>> {
        let store = relock(&self.store);
        let open_too = store.find_sessions_in_range(None, None, from, to.saturating_sub(1))?;
        // Sessions still open (ending at or after `to`) are skipped before decoding.
        let closed = open_too.filter(|r| r.as_ref().map_or(true, |(sk, _)| sk.end < to));
        let mut sessions = self.sessions(Box::new(closed))?;
        // Stable: sessions of one end keep their (key bytes, start) order.
        sessions.sort_by_key(|(w, _)| w.window.end);
        Ok(sessions)
    }

    /// Every live session of `key`, ascending by end.
    pub fn fetch(&self, key: &K) -> Result<WindowedEntries<K, V>> {
        let k = encode_key(&self.key_serde, &self.name, key)?;
        let store = relock(&self.store);
        let iter = store.fetch(&k)?;
        self.sessions(iter)
    }
}

/// Where a session store builder gets its stores.
pub(super) type SessionSupplier = Supplier<dyn SessionBytesStoreSupplier>;

segmented_supplier!(SessionBytesStoreSupplier: RocksDbSessionStoreSupplier, InMemorySessionStoreSupplier, |name, retention, _size| (name, retention));

segmented_store_builder! {
    /// Describes a session store to add to a topology.
    SessionStoreBuilder, SessionSupplier
}

impl<K: Send + 'static, V: Send + 'static> StoreBuilder for SessionStoreBuilder<K, V> {
    fn store_name(&self) -> &str {
        self.supplier.name()
    }
    fn into_spec(self) -> StoreSpecParts {
        let (name, retention) = (self.supplier.name().to_string(), self.supplier.retention());
        let (logging, caching, write_through) = (self.logging, self.caching, self.write_through);
        let (supplier, key_serde, value_serde) = (self.supplier, self.key_serde, self.value_serde);
        windowed_store_spec(
            name,
            logging,
            retention,
            move |b| supplier.resolve(b.config)?.get(b.ctx).map_err(Into::into),
            segmented_layers!(SessionStore: LoggingSessionStore, CachingSessionStore, MeteredSessionStore; caching, write_through),
            move |name, store| SessionStoreHandle {
                name,
                store,
                key_serde: key_serde.clone(),
                value_serde: value_serde.clone(),
            },
        )
    }
}
