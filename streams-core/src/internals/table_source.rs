//! The source node of a (non-versioned) table: upserts and deletes each record into the
//! table's store and forwards what leaves the store's cache as changes (or, for a table
//! without a store, forwards each record as a change). The DSL
//! (`StreamsBuilder::table`, the results of table joins) adds the store and the node.

use std::collections::HashMap;
use std::sync::Arc;

use crate::Data;
use crate::error::{Result, StreamsError};
use crate::internals::context::TaskContext;
use crate::internals::forward::{TsHandle, forward_flushed_at};
use crate::internals::node::{Children, Input, NodeOps};
use crate::record::{Change, Record};
use crate::serde::SerdeRef;
use crate::state::ValueAndTimestamp;

/// A table's source node: upserts and deletes into its store, forwards what leaves the
/// store's cache as changes.
pub(crate) struct TableSource<K, VIn, V> {
    store_name: Arc<str>,
    store: Option<TsHandle<K, V>>,
    to_opt: fn(VIn) -> Option<V>,
    nulls: SerdeRef<V>,
    /// The key serde, which says what key is null: such a record is dropped and counted.
    key_nulls: Option<SerdeRef<K>>,
    /// When each deleted key was deleted (by key bytes), until its tombstone is forwarded.
    deleted: HashMap<Vec<u8>, i64>,
    /// Whether a deletion of a key the table does not hold is forwarded: asked for, and the
    /// store is not cached (Kafka's `KTableSource` forwards it; only a caching store drops
    /// it). Settled at `init`.
    absent_deletes: bool,
    /// Whether the table has a store; without one (a table Kafka does not materialize)
    /// each record is forwarded as it comes, as a change with no old value.
    has_store: bool,
    children: Children,
}

impl<K, VIn, V> TableSource<K, VIn, V> {
    /// A source of the table stored in `store_name`; `to_opt` turns the input value into
    /// the new table value (`None`, or a value `nulls` calls null, deletes).
    pub(crate) fn new(
        store_name: Arc<str>,
        to_opt: fn(VIn) -> Option<V>,
        nulls: SerdeRef<V>,
        children: Children,
    ) -> Self {
        Self {
            store_name,
            store: None,
            to_opt,
            nulls,
            key_nulls: None,
            deleted: HashMap::new(),
            absent_deletes: false,
            has_store: true,
            children,
        }
    }

    /// Drops (and counts) a record whose key `keys` calls null, as Kafka's `KTableSource`
    /// does, materialized or not.
    pub(crate) fn dropping_null_keys(mut self, keys: SerdeRef<K>) -> Self {
        self.key_nulls = Some(keys);
        self
    }

    /// A source with a store (`true`, the default) or without one (`false`: Kafka's
    /// unmaterialized `KTableSource`, forwarding each record as it comes).
    pub(crate) fn with_store(mut self, has_store: bool) -> Self {
        self.has_store = has_store;
        self
    }

    /// Forwards the deletion of a key the table does not hold when the store is not cached,
    /// as Kafka's `KTableSource` does (its caching store drops such a deletion).
    pub(crate) fn forwarding_absent_deletes(mut self, on: bool) -> Self {
        self.absent_deletes = on;
        self
    }
}

impl<K: Data, VIn: Data, V: Data> NodeOps for TableSource<K, VIn, V> {
    fn init(&mut self, task: &mut TaskContext) -> Result<()> {
        if !self.has_store {
            return Ok(());
        }
        let store: TsHandle<K, V> = task.typed_store(&self.store_name, "table")?;
        // Only an uncached store forwards these: decided once, not per record.
        self.absent_deletes &= !store.is_cached();
        self.store = Some(store);
        Ok(())
    }
    fn flush(&mut self, task: &mut TaskContext) -> Result<()> {
        let Some(store) = &self.store else {
            return Ok(());
        };
        store.flush_cache()?;
        forward_flushed_at(store, &self.children, task, Some(&mut self.deleted))
    }
}

impl<K: Data, VIn: Data, V: Data> Input<K, VIn> for TableSource<K, VIn, V> {
    fn process(&mut self, r: Record<K, VIn>, task: &mut TaskContext) -> Result<()> {
        if self.key_nulls.as_ref().is_some_and(|s| s.is_null(&r.key)) {
            task.metrics.dropped_records += 1;
            return Ok(());
        }
        let Some(store) = &self.store else {
            if !self.has_store {
                // Kafka's unmaterialized `KTableSource`: `Change(value, null)`.
                let Record {
                    key,
                    value,
                    timestamp,
                    headers,
                } = r;
                let new = (self.to_opt)(value).filter(|v| !self.nulls.is_null(v));
                let change = Record {
                    key,
                    value: Change::new(new, None),
                    timestamp,
                    headers,
                };
                return self.children.forward(task, change);
            }
            return Err(StreamsError::Internal(format!(
                "table store `{}` used before init",
                self.store_name
            )));
        };
        // A null value (`None` of an `Option` value type) deletes the key, as Kafka's null
        // does.
        match (self.to_opt)(r.value).filter(|v| !self.nulls.is_null(v)) {
            Some(v) => {
                if !self.deleted.is_empty() {
                    self.deleted.remove(&store.encode_key(&r.key)?);
                }
                store.put(
                    &r.key,
                    &ValueAndTimestamp {
                        value: v,
                        timestamp: r.timestamp,
                    },
                )?
            }
            None => {
                if r.timestamp != task.current_timestamp {
                    self.deleted.insert(store.encode_key(&r.key)?, r.timestamp);
                }
                if store.delete(&r.key)?.is_none() && self.absent_deletes {
                    forward_flushed_at(store, &self.children, task, Some(&mut self.deleted))?;
                    let change: Change<V> = Change::new(None, None);
                    let tombstone = Record::new(r.key, change, r.timestamp);
                    return self.children.forward(task, tombstone);
                }
            }
        }
        forward_flushed_at(store, &self.children, task, Some(&mut self.deleted))
    }
}
