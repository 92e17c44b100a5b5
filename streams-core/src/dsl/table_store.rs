//! The timestamped key-value stores of DSL tables and aggregations, and forwarding what
//! leaves their caches as table changes: shared by the builder and every table operator.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

use crate::Data;
use crate::error::Result;
use crate::internals::node::Children;
use crate::internals::task::TaskContext;
use crate::record::{Change, Record};
use crate::serde::SerdeRef;
use crate::state::{StoreBuilder, Stores, TimestampedSerde, ValueAndTimestamp};
use crate::topology::InternalBuilder;

use super::options::Materialized;

/// The topology being built, shared by the DSL objects that add to it.
pub(crate) type Shared = Rc<RefCell<InternalBuilder>>;

/// The store handle type of DSL key-value stores.
pub(crate) type TsHandle<K, V> = crate::state::KeyValueStoreHandle<K, ValueAndTimestamp<V>>;

/// Adds a timestamped key-value store for a DSL operator (cached and logged as
/// `materialized` says); returns its name.
pub(crate) fn add_ts_store<K: Data, V: Data>(
    b: &Shared,
    name: String,
    materialized: &Materialized<K, V>,
    ks: SerdeRef<K>,
    vs: SerdeRef<V>,
) -> String {
    let ts_serde: SerdeRef<ValueAndTimestamp<V>> = Arc::new(TimestampedSerde::new(vs));
    let builder =
        Stores::default_key_value_store_builder(&name, materialized.supplier.clone(), ks, ts_serde)
            .with_caching_enabled(materialized.caching)
            .forwarding_changes()
            .with_logging_enabled(materialized.logging);
    let parts = builder.into_spec();
    let store_name = parts.name.clone();
    b.borrow_mut().add_store(parts);
    store_name
}

/// Forwards the updates that left `store`'s cache as table changes. The timestamp is the
/// value's (for a deletion: the current record's).
pub(crate) fn forward_flushed<K: Data, V: Data>(
    store: &TsHandle<K, V>,
    children: &Children,
    task: &mut TaskContext,
) -> Result<()> {
    forward_flushed_at(store, children, task, None)
}

/// [`forward_flushed`], with the timestamps of deletions by key bytes (a derived table's
/// tombstone carries the time of the change that deleted it, which may not be the current
/// record's); used entries are removed.
pub(crate) fn forward_flushed_at<K: Data, V: Data>(
    store: &TsHandle<K, V>,
    children: &Children,
    task: &mut TaskContext,
    mut deleted: Option<&mut std::collections::HashMap<Vec<u8>, i64>>,
) -> Result<()> {
    for (key, new, old) in store.take_flushed()? {
        let deleted_at = match (&new, deleted.as_deref_mut()) {
            (None, Some(map)) if !map.is_empty() => map.remove(&store.encode_key(&key)?),
            _ => None,
        };
        // Written and deleted again within one commit: downstream never saw it (Kafka's
        // caching stores skip these too).
        if new.is_none() && old.is_none() {
            continue;
        }
        let ts = new
            .as_ref()
            .map_or(deleted_at.unwrap_or(task.current_timestamp), |v| {
                v.timestamp
            });
        children.forward(
            task,
            Record::new(
                key,
                Change::new(new.map(|v| v.value), old.map(|v| v.value)),
                ts,
            ),
        )?;
    }
    Ok(())
}

/// On commit: writes `store`'s cache down and forwards what left it.
pub(crate) fn flush_and_forward<K: Data, V: Data>(
    store: &TsHandle<K, V>,
    children: &Children,
    task: &mut TaskContext,
) -> Result<()> {
    store.flush_cache()?;
    forward_flushed(store, children, task)
}
