//! [`Stores`]: the factory of store suppliers and builders, as Kafka Streams' `Stores`.

use std::sync::Arc;

use streams_state::{
    InMemoryKeyValueStoreSupplier, KeyValueBytesStoreSupplier, RocksDbKeyValueStoreSupplier,
    SessionBytesStoreSupplier, WindowBytesStoreSupplier,
};

use crate::error::Result;
use crate::serde::SerdeRef;

use super::session::SessionSupplier;
use super::window::WindowSupplier;
use super::*;

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
        WindowStoreBuilder::new(WindowSupplier::Given(supplier), key_serde, value_serde)
    }

    /// A window store builder on the application's default engine.
    pub(crate) fn default_window_store_builder<K, V>(
        name: &str,
        retention: i64,
        size: i64,
        key_serde: SerdeRef<K>,
        value_serde: SerdeRef<V>,
    ) -> WindowStoreBuilder<K, V> {
        WindowStoreBuilder::new(
            WindowSupplier::Default {
                name: name.to_string(),
                retention,
                size,
            },
            key_serde,
            value_serde,
        )
    }

    /// A builder for a session store with typed keys and values (logged by default).
    pub fn session_store_builder<K, V>(
        supplier: Arc<dyn SessionBytesStoreSupplier>,
        key_serde: SerdeRef<K>,
        value_serde: SerdeRef<V>,
    ) -> SessionStoreBuilder<K, V> {
        SessionStoreBuilder::new(SessionSupplier::Given(supplier), key_serde, value_serde)
    }

    /// A session store builder on the application's default engine.
    pub(crate) fn default_session_store_builder<K, V>(
        name: &str,
        retention: i64,
        key_serde: SerdeRef<K>,
        value_serde: SerdeRef<V>,
    ) -> SessionStoreBuilder<K, V> {
        SessionStoreBuilder::new(
            SessionSupplier::Default {
                name: name.to_string(),
                retention,
                size: 0,
            },
            key_serde,
            value_serde,
        )
    }
}
