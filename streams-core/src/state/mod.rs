//! Typed state stores over the byte-level stores of `streams-state`.
//!
//! A [`KeyValueStoreHandle<K, V>`] serializes keys and values with its serdes and reads and
//! writes a byte-level [`streams_state::KeyValueStore`]. Keys order by their serialized bytes.
//! DSL aggregations keep a [`ValueAndTimestamp`] per key (Kafka's timestamped store layout:
//! an 8-byte big-endian timestamp, then the value).

/// `Clone` (every field cloned, without `K: Clone` or `V: Clone`) and a `Debug` that shows
/// the store's name, for the typed store handles.
macro_rules! handle_impls {
    ($handle:ident { $($field:ident),* }) => {
        impl<K, V> Clone for $handle<K, V> {
            fn clone(&self) -> Self {
                Self { $($field: self.$field.clone()),* }
            }
        }

        impl<K, V> std::fmt::Debug for $handle<K, V> {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($handle)).field("name", &self.name).finish()
            }
        }
    };
}

mod kv;
mod layers;
mod plumbing;
mod read_only;
mod session;
mod stores;
mod timestamped;
mod window;

use std::sync::{Arc, Mutex, MutexGuard};

use streams_state::{KeyValueStore, StateError};

use crate::window::Windowed;

use crate::error::{Result, StreamsError};
use crate::serde::{SerdeError, SerdeRef};

pub use streams_state::{InMemoryKeyValueStore, StateStore};

pub use kv::{KeyValueStoreBuilder, KeyValueStoreHandle};
pub(crate) use plumbing::{RawStore, StoreBuild, StoreEntry, StoreFactory, StoreMeters};
pub use read_only::{ReadOnlyKeyValueStore, ReadOnlySessionStore, ReadOnlyWindowStore};
pub use session::{SessionStoreBuilder, SessionStoreHandle};
pub use stores::Stores;
pub use timestamped::{TimestampedSerde, ValueAndTimestamp};
pub use window::{WindowStoreBuilder, WindowStoreHandle};

type SharedKv = Arc<Mutex<Box<dyn KeyValueStore>>>;

/// An update that left a record cache: key, new value, old value.
pub(crate) type Flushed<K, V> = (K, Option<V>, Option<V>);

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

/// Decodes the updates that left a record cache: `key` decodes a store key, `value_serde`
/// the new and old values.
fn decode_flushed<K, V: 'static>(
    flushed: Vec<streams_state::FlushedEntry>,
    store: &str,
    value_serde: &SerdeRef<V>,
    key: impl Fn(&[u8]) -> Result<K>,
) -> Result<Vec<Flushed<K, V>>> {
    let value = |b: Option<Vec<u8>>| b.map(|b| decode(value_serde, store, &b)).transpose();
    flushed
        .into_iter()
        .map(|e| Ok((key(&e.key)?, value(e.new)?, value(e.old)?)))
        .collect()
}

fn relock<T: ?Sized>(m: &Mutex<Box<T>>) -> MutexGuard<'_, Box<T>> {
    // A panic elsewhere cannot leave a store half-written (each call is one engine
    // operation), so a poisoned lock is safe to take over.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

type WindowedEntries<K, V> = Vec<(Windowed<K>, V)>;
