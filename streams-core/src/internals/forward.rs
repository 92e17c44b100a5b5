//! Forwarding what leaves a table store's cache as table changes: the per-record step of
//! table sources, table aggregations and every other operator that materializes a table.
//! The DSL (`dsl::table_store`) adds the stores and wires these into nodes.

use std::collections::HashMap;

use crate::Data;
use crate::error::Result;
use crate::internals::context::TaskContext;
use crate::internals::node::Children;
use crate::record::{Change, Record};
use crate::serde::SerdeRef;
use crate::state::{KeyValueStoreHandle, ValueAndTimestamp};

/// The store handle type of DSL key-value stores.
pub(crate) type TsHandle<K, V> = KeyValueStoreHandle<K, ValueAndTimestamp<V>>;

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
    mut deleted: Option<&mut HashMap<Vec<u8>, i64>>,
) -> Result<()> {
    for (key, new, old) in store.take_flushed()? {
        let deleted_at = match (&new, deleted.as_deref_mut()) {
            (None, Some(map)) if !map.is_empty() => map.remove(&store.encode_key(&key)?),
            _ => None,
        };
        let deleted_at = deleted_at.unwrap_or(task.current_timestamp);
        if let Some(change) = flushed_change(key, new, old, deleted_at) {
            children.forward(task, change)?;
        }
    }
    Ok(())
}

/// A flushed update as a table change, at the new value's timestamp (a deletion's at
/// `deleted_at`). `None` for an entry written and deleted again within one commit:
/// downstream never saw it (Kafka's caching stores skip these too).
pub(crate) fn flushed_change<K, V>(
    key: K,
    new: Option<ValueAndTimestamp<V>>,
    old: Option<ValueAndTimestamp<V>>,
    deleted_at: i64,
) -> Option<Record<K, Change<V>>> {
    if new.is_none() && old.is_none() {
        return None;
    }
    let ts = new.as_ref().map_or(deleted_at, |v| v.timestamp);
    let change = Change::new(new.map(|v| v.value), old.map(|v| v.value));
    Some(Record::new(key, change, ts))
}

/// Whether `value` is null by `nulls` (no serde: the type has no known null).
pub(crate) fn is_null_value<V: Data>(nulls: Option<&SerdeRef<V>>, value: &V) -> bool {
    nulls.is_some_and(|s| s.is_null(value))
}

/// Whether a stream aggregation drops `value` as null (Kafka's `KStreamAggregate` and
/// `KStreamReduce` skip a record whose value is null, and count it as dropped). `nulls` is
/// the value serde the grouped stream carries, which says what is null (`None` of an
/// `Option`, `()`); without one the type has no known null and nothing is dropped.
pub(crate) fn null_value_dropped<V: Data>(
    nulls: Option<&SerdeRef<V>>,
    value: &V,
    task: &mut TaskContext,
) -> bool {
    dropped_if_null(is_null_value(nulls, value), task)
}

/// Counts a record an aggregation drops as `null` (a null key or value); returns `null`.
pub(crate) fn dropped_if_null(null: bool, task: &mut TaskContext) -> bool {
    if null {
        task.metrics.dropped_records += 1;
    }
    null
}

/// One record folded into its key's aggregate in `store`: `fold` maps the current
/// aggregate (if any) to the new one (`None` deletes). The result keeps the larger of the
/// record's timestamp and the aggregate's. Null keys are dropped and counted. Then the
/// updates that left the cache are forwarded.
pub(crate) fn update_aggregate<K: Data, VA: Data>(
    store: &TsHandle<K, VA>,
    key: K,
    timestamp: i64,
    children: &Children,
    task: &mut TaskContext,
    fold: impl FnOnce(&K, Option<VA>) -> Option<VA>,
) -> Result<()> {
    if dropped_if_null(store.is_null_key(&key), task) {
        return Ok(());
    }
    store.update(&key, |old| {
        let (old_value, ts) = match old {
            Some(o) => (Some(o.value), o.timestamp.max(timestamp)),
            None => (None, timestamp),
        };
        let new = fold(&key, old_value).map(|value| ValueAndTimestamp {
            value,
            timestamp: ts,
        });
        Ok((new, ()))
    })?;
    forward_flushed(store, children, task)
}

/// A DSL store whose cache's flushed updates its operator forwards.
pub(crate) trait ForwardsFlushed {
    /// Writes the cache down (its updates then wait to be forwarded).
    fn flush_cache(&self) -> Result<()>;
    /// Forwards the updates that left the cache.
    fn forward_flushed(&self, children: &Children, task: &mut TaskContext) -> Result<()>;
    /// Drops the updates that left the cache unforwarded.
    fn discard_flushed(&self) -> Result<()>;
}

/// `ForwardsFlushed` for a store handle type, with its forwarding function (the window
/// and session handles get theirs in `window_aggregate`).
macro_rules! forwards_flushed {
    ($handle:ident, $forward:path) => {
        impl<K: $crate::Data, V: $crate::Data> $crate::internals::forward::ForwardsFlushed
            for $handle<K, V>
        {
            fn flush_cache(&self) -> $crate::error::Result<()> {
                $handle::flush_cache(self)
            }
            fn forward_flushed(
                &self,
                children: &$crate::internals::node::Children,
                task: &mut $crate::internals::context::TaskContext,
            ) -> $crate::error::Result<()> {
                $forward(self, children, task)
            }
            fn discard_flushed(&self) -> $crate::error::Result<()> {
                $handle::take_flushed(self).map(drop)
            }
        }
    };
}
pub(crate) use forwards_flushed;
forwards_flushed!(TsHandle, forward_flushed);

/// On commit: writes `store`'s cache down and forwards what left it.
pub(crate) fn flush_and_forward<S: ForwardsFlushed>(
    store: &S,
    children: &Children,
    task: &mut TaskContext,
) -> Result<()> {
    store.flush_cache()?;
    store.forward_flushed(children, task)
}

/// On commit with emit-on-close: writes `store`'s cache down without forwarding what left
/// it (final results are read from the store when their windows close).
pub(crate) fn flush_quietly<S: ForwardsFlushed>(
    store: &S,
    _children: &Children,
    _task: &mut TaskContext,
) -> Result<()> {
    store.flush_cache()?;
    store.discard_flushed()
}
