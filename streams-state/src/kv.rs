//! The byte-level key-value store interface.

use std::ops::Bound;
use std::path::Path;

use crate::{ChangelogRecord, KeyValueBytes, StateError, StoreContext};

/// An iterator over key-value pairs of a store, borrowing the store: it cannot outlive it.
pub type KeyValueIter<'a> = Box<dyn Iterator<Item = Result<KeyValueBytes, StateError>> + 'a>;

/// What every state store has, whatever its kind.
pub trait StateStore: Send {
    /// The store's name, unique within a topology.
    fn name(&self) -> &str;
    /// Whether the store keeps its data on disk across restarts.
    fn persistent(&self) -> bool;
    /// Makes every write so far durable in the engine (called on commit).
    fn flush(&mut self) -> Result<(), StateError>;
    /// Releases the store's resources; later calls fail with [`StateError::NotOpen`].
    fn close(&mut self) -> Result<(), StateError>;
    /// Whether the store is open.
    fn is_open(&self) -> bool;
}

/// A key-value store over raw bytes. Keys are ordered lexicographically by their bytes.
///
/// Ranges take [`Bound`]s so that inclusive, exclusive and open ends can all be expressed;
/// an iterator borrows the store and so cannot outlive it.
pub trait KeyValueStore: StateStore {
    /// The value stored under `key`, if any.
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StateError>;
    /// Stores `value` under `key`, replacing what was there.
    fn put(&mut self, key: &[u8], value: &[u8]) -> Result<(), StateError>;
    /// Stores `value` only if `key` has no value; returns the existing value otherwise.
    fn put_if_absent(&mut self, key: &[u8], value: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
        match self.get(key)? {
            Some(existing) => Ok(Some(existing)),
            None => {
                self.put(key, value)?;
                Ok(None)
            }
        }
    }
    /// Stores every pair, in order.
    fn put_all(&mut self, entries: &[(&[u8], &[u8])]) -> Result<(), StateError> {
        for (k, v) in entries {
            self.put(k, v)?;
        }
        Ok(())
    }
    /// Removes `key`, returning its old value.
    fn delete(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>, StateError>;
    /// Removes `key` without reading its old value (a blind delete: a store that must read
    /// to return the old value, such as RocksDB, writes a tombstone only). Logged like
    /// [`delete`](Self::delete), whether or not the key was there.
    fn remove(&mut self, key: &[u8]) -> Result<(), StateError> {
        self.delete(key).map(drop)
    }
    /// Pairs whose key lies within the bounds, in ascending key order.
    fn range<'a>(
        &'a self,
        from: Bound<&[u8]>,
        to: Bound<&[u8]>,
    ) -> Result<KeyValueIter<'a>, StateError>;
    /// Pairs whose key lies within the bounds, in descending key order.
    fn reverse_range<'a>(
        &'a self,
        from: Bound<&[u8]>,
        to: Bound<&[u8]>,
    ) -> Result<KeyValueIter<'a>, StateError>;
    /// Every pair, in ascending key order.
    fn all(&self) -> Result<KeyValueIter<'_>, StateError> {
        self.range(Bound::Unbounded, Bound::Unbounded)
    }
    /// Every pair whose key starts with `prefix`, in ascending key order.
    fn prefix_scan<'a>(&'a self, prefix: &[u8]) -> Result<KeyValueIter<'a>, StateError> {
        match prefix_successor(prefix) {
            Some(end) => {
                let iter = self.range(Bound::Included(prefix), Bound::Excluded(&end))?;
                Ok(iter)
            }
            None => self.range(Bound::Included(prefix), Bound::Unbounded),
        }
    }
    /// An estimate of the number of keys (exact for in-memory stores).
    fn approximate_num_entries(&self) -> Result<u64, StateError>;

    /// Applies a batch of changelog records (a `None` value deletes) during restoration.
    /// Engines override this with a bulk write.
    fn restore_batch(&mut self, records: &[ChangelogRecord]) -> Result<(), StateError> {
        for r in records {
            match &r.value {
                Some(v) => self.put(&r.key, v)?,
                None => {
                    self.delete(&r.key)?;
                }
            }
        }
        Ok(())
    }

    /// Called before the first [`restore_batch`](Self::restore_batch): engines switch to
    /// bulk-load settings.
    fn begin_restore(&mut self) -> Result<(), StateError> {
        Ok(())
    }

    /// Called after the last [`restore_batch`](Self::restore_batch).
    fn end_restore(&mut self) -> Result<(), StateError> {
        Ok(())
    }

    /// Writes a record cache's dirty entries to the store below without flushing the engine
    /// (they then appear in [`take_flushed`](Self::take_flushed)). A no-op without a cache.
    fn flush_cache(&mut self) -> Result<(), StateError> {
        Ok(())
    }

    /// Updates that left a record cache since the last call (see
    /// [`CachingKeyValueStore`](crate::CachingKeyValueStore)); always empty for uncached
    /// stores.
    fn take_flushed(&mut self) -> Vec<crate::entry::FlushedEntry> {
        Vec::new()
    }

    /// Writes a consistent on-disk snapshot of the store into `dir` (which must not exist).
    /// Returns false when the engine cannot snapshot (in-memory stores).
    fn snapshot_to(&self, _dir: &Path) -> Result<bool, StateError> {
        Ok(false)
    }

    /// The RocksDB properties of the store's instance, read now (`None`: not a RocksDB
    /// store). Wrapping stores pass the call down. Sampled by the stream thread when it
    /// publishes metrics, never per record.
    fn rocksdb_properties(&self) -> Option<crate::RocksDbProperties> {
        None
    }
}

/// The smallest byte string greater than every string that starts with `prefix`, or `None`
/// when no such string exists (the prefix is empty or all `0xff`).
pub(crate) fn prefix_successor(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// Creates key-value stores: one per task, each named after the supplier.
pub trait KeyValueBytesStoreSupplier: Send + Sync {
    /// The name the created stores carry.
    fn name(&self) -> &str;
    /// Creates (or, for persistent engines, opens) one task's store.
    fn get(&self, ctx: &StoreContext) -> Result<Box<dyn KeyValueStore>, StateError>;
    /// Whether the created stores are persistent.
    fn persistent(&self) -> bool;
}

#[cfg(test)]
mod tests {
    use super::prefix_successor;

    #[test]
    fn prefix_successor_carries_over_max_bytes() {
        assert_eq!(prefix_successor(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(prefix_successor(&[1, 0xff]), Some(vec![2]));
        assert_eq!(prefix_successor(&[0xff, 0xff]), None);
        assert_eq!(prefix_successor(b""), None);
    }
}
