//! The RocksDB engine: key-value stores on disk, sharing one memory budget.
//!
//! Layout: one RocksDB instance per store per task, in `<task dir>/rocksdb/<store name>`.
//! Every instance uses the process-wide [`RocksDbResources`]: one LRU block cache (index and
//! filter blocks included) and one write-buffer manager charged to that cache, so memtables
//! and blocks of all stores share a single bound however many stores and partitions there are.
//! The write-ahead log is off: durability comes from the changelog and the checkpoint file, and
//! a commit flushes memtables before the checkpoint is written (Kafka Streams does the same).

use std::ops::Bound;
use std::path::{Path, PathBuf};

use rocksdb::{DB, DBRawIteratorWithThreadMode, FlushOptions, WriteBatch, WriteOptions};

use crate::kv::{KeyValueBytesStoreSupplier, KeyValueIter, KeyValueStore, StateStore};
use crate::resources::RocksDbResources;
use crate::{ChangelogRecord, StateError, StoreContext};

/// A RocksDB error of store `store` while `action`.
pub(crate) fn engine_err(store: &str, action: &'static str, e: rocksdb::Error) -> StateError {
    StateError::Engine {
        store: store.to_string(),
        action,
        detail: e.into_string(),
    }
}

/// Creates (if needed) the directory of store `name`.
pub(crate) fn create_store_dir(name: &str, dir: &Path) -> Result<(), StateError> {
    std::fs::create_dir_all(dir).map_err(|source| StateError::Io {
        store: name.to_string(),
        action: "creating the store directory",
        source,
    })
}

/// The write options of every store: no write-ahead log (see the module docs).
pub(crate) fn unlogged_writes() -> WriteOptions {
    let mut write = WriteOptions::default();
    write.disable_wal(true);
    write
}

/// A key-value store in its own RocksDB instance.
pub struct RocksDbKeyValueStore {
    name: String,
    path: PathBuf,
    db: Option<DB>,
    write: WriteOptions,
}

impl std::fmt::Debug for RocksDbKeyValueStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RocksDbKeyValueStore")
            .field("name", &self.name)
            .field("path", &self.path)
            .field("open", &self.db.is_some())
            .finish()
    }
}

impl RocksDbKeyValueStore {
    /// Opens (creating if needed) the store `name` in `dir` with `resources`.
    pub fn open(name: &str, dir: &Path, resources: &RocksDbResources) -> Result<Self, StateError> {
        create_store_dir(name, dir)?;
        let db = DB::open(&resources.options(), dir).map_err(|e| engine_err(name, "open", e))?;
        Ok(Self {
            name: name.to_string(),
            path: dir.to_path_buf(),
            db: Some(db),
            write: unlogged_writes(),
        })
    }

    fn db(&self) -> Result<&DB, StateError> {
        self.db.as_ref().ok_or_else(|| StateError::NotOpen {
            store: self.name.clone(),
        })
    }

    /// Where the store lives.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn scan(
        &self,
        from: Bound<&[u8]>,
        to: Bound<&[u8]>,
        reverse: bool,
    ) -> Result<KeyValueIter<'_>, StateError> {
        let it = self.db()?.raw_iterator();
        Ok(Box::new(RangeIter::new(it, &self.name, from, to, reverse)))
    }

    /// Turns automatic compactions off (`"true"`, for a bulk load) or on again.
    fn disable_auto_compactions(&self, disable: &str) -> Result<(), StateError> {
        self.db()?
            .set_options(&[("disable_auto_compactions", disable)])
            .map_err(|e| engine_err(&self.name, "bulk-load tuning", e))
    }
}

/// Iterates over a key range of a RocksDB iterator (of the default or of one column family),
/// in either direction.
pub(crate) struct RangeIter<'a> {
    it: DBRawIteratorWithThreadMode<'a, DB>,
    /// The bound where the iteration ends: `to` going forward, `from` in reverse.
    end: Bound<Vec<u8>>,
    reverse: bool,
    store: &'a str,
    done: bool,
}

impl<'a> RangeIter<'a> {
    /// Iterates over the keys of `it` within `from` and `to`, those of store `store`.
    pub(crate) fn new(
        mut it: DBRawIteratorWithThreadMode<'a, DB>,
        store: &'a str,
        from: Bound<&[u8]>,
        to: Bound<&[u8]>,
        reverse: bool,
    ) -> Self {
        // Seek to the start, then step over an excluded start key: every key up to the end
        // is in the range.
        let (start, end) = if reverse { (to, from) } else { (from, to) };
        match (start, reverse) {
            (Bound::Included(k) | Bound::Excluded(k), false) => it.seek(k),
            (Bound::Included(k) | Bound::Excluded(k), true) => it.seek_for_prev(k),
            (Bound::Unbounded, false) => it.seek_to_first(),
            (Bound::Unbounded, true) => it.seek_to_last(),
        }
        if let Bound::Excluded(k) = start
            && it.key() == Some(k)
        {
            if reverse {
                it.prev();
            } else {
                it.next();
            }
        }
        Self {
            it,
            end: end.map(<[u8]>::to_vec),
            reverse,
            store,
            done: false,
        }
    }

    /// Whether `key` lies past the end of the range, in the iteration direction.
    fn past_end(&self, key: &[u8]) -> bool {
        match (&self.end, self.reverse) {
            (Bound::Included(t), false) => key > t.as_slice(),
            (Bound::Excluded(t), false) => key >= t.as_slice(),
            (Bound::Included(f), true) => key < f.as_slice(),
            (Bound::Excluded(f), true) => key <= f.as_slice(),
            (Bound::Unbounded, _) => false,
        }
    }
}

impl Iterator for RangeIter<'_> {
    type Item = Result<(Vec<u8>, Vec<u8>), StateError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        if !self.it.valid() {
            self.done = true;
            return self
                .it
                .status()
                .err()
                .map(|e| Err(engine_err(self.store, "iterate", e)));
        }
        let (Some(key), Some(value)) = (self.it.key(), self.it.value()) else {
            self.done = true;
            return None;
        };
        if self.past_end(key) {
            self.done = true;
            return None;
        }
        let entry = (key.to_vec(), value.to_vec());
        if self.reverse {
            self.it.prev();
        } else {
            self.it.next();
        }
        Some(Ok(entry))
    }
}

impl StateStore for RocksDbKeyValueStore {
    fn name(&self) -> &str {
        &self.name
    }
    fn persistent(&self) -> bool {
        true
    }
    fn flush(&mut self) -> Result<(), StateError> {
        let mut opts = FlushOptions::default();
        opts.set_wait(true);
        self.db()?
            .flush_opt(&opts)
            .map_err(|e| engine_err(&self.name, "flush", e))
    }
    fn close(&mut self) -> Result<(), StateError> {
        if self.db.is_some() {
            self.flush()?;
        }
        self.db = None;
        Ok(())
    }
    fn is_open(&self) -> bool {
        self.db.is_some()
    }
}

impl KeyValueStore for RocksDbKeyValueStore {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
        Ok(self
            .db()?
            .get_pinned(key)
            .map_err(|e| engine_err(&self.name, "get", e))?
            .map(|v| v.to_vec()))
    }

    fn put(&mut self, key: &[u8], value: &[u8]) -> Result<(), StateError> {
        self.db()?
            .put_opt(key, value, &self.write)
            .map_err(|e| engine_err(&self.name, "put", e))
    }

    fn put_all(&mut self, entries: &[(&[u8], &[u8])]) -> Result<(), StateError> {
        let mut batch = WriteBatch::default();
        for (k, v) in entries {
            batch.put(k, v);
        }
        self.db()?
            .write_opt(batch, &self.write)
            .map_err(|e| engine_err(&self.name, "put_all", e))
    }

    fn delete(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
        let old = self.get(key)?;
        if old.is_some() {
            self.db()?
                .delete_opt(key, &self.write)
                .map_err(|e| engine_err(&self.name, "delete", e))?;
        }
        Ok(old)
    }

    fn remove(&mut self, key: &[u8]) -> Result<(), StateError> {
        self.db()?
            .delete_opt(key, &self.write)
            .map_err(|e| engine_err(&self.name, "delete", e))
    }

    fn range<'a>(
        &'a self,
        from: Bound<&[u8]>,
        to: Bound<&[u8]>,
    ) -> Result<KeyValueIter<'a>, StateError> {
        self.scan(from, to, false)
    }

    fn reverse_range<'a>(
        &'a self,
        from: Bound<&[u8]>,
        to: Bound<&[u8]>,
    ) -> Result<KeyValueIter<'a>, StateError> {
        self.scan(from, to, true)
    }

    fn approximate_num_entries(&self) -> Result<u64, StateError> {
        Ok(self
            .db()?
            .property_int_value("rocksdb.estimate-num-keys")
            .map_err(|e| engine_err(&self.name, "count", e))?
            .unwrap_or(0))
    }

    fn restore_batch(&mut self, records: &[ChangelogRecord]) -> Result<(), StateError> {
        let mut batch = WriteBatch::default();
        for r in records {
            match &r.value {
                Some(v) => batch.put(&r.key, v),
                None => batch.delete(&r.key),
            }
        }
        self.db()?
            .write_opt(batch, &self.write)
            .map_err(|e| engine_err(&self.name, "restore", e))
    }

    fn begin_restore(&mut self) -> Result<(), StateError> {
        self.disable_auto_compactions("true")
    }

    fn end_restore(&mut self) -> Result<(), StateError> {
        self.disable_auto_compactions("false")
    }

    fn rocksdb_properties(&self) -> Option<crate::RocksDbProperties> {
        let db = self.db.as_ref()?;
        let int = |name: &str| db.property_int_value(name).ok().flatten().unwrap_or(0);
        Some(crate::RocksDbProperties {
            size_all_mem_tables: int("rocksdb.cur-size-all-mem-tables"),
            block_cache_usage: int("rocksdb.block-cache-usage"),
            block_cache_capacity: int("rocksdb.block-cache-capacity"),
            estimate_pending_compaction_bytes: int("rocksdb.estimate-pending-compaction-bytes"),
            estimate_num_keys: int("rocksdb.estimate-num-keys"),
        })
    }

    fn snapshot_to(&self, dir: &Path) -> Result<bool, StateError> {
        let db = self.db()?;
        let cp = rocksdb::checkpoint::Checkpoint::new(db)
            .map_err(|e| engine_err(&self.name, "snapshot", e))?;
        cp.create_checkpoint(dir)
            .map_err(|e| engine_err(&self.name, "snapshot", e))?;
        Ok(true)
    }
}

/// Supplies [`RocksDbKeyValueStore`]s, one per task, under the task's state directory.
#[derive(Debug, Clone)]
pub struct RocksDbKeyValueStoreSupplier {
    name: String,
}

impl RocksDbKeyValueStoreSupplier {
    /// A supplier of RocksDB stores called `name`.
    pub fn new(name: impl Into<String>) -> Self {
        Self { name: name.into() }
    }
}

impl KeyValueBytesStoreSupplier for RocksDbKeyValueStoreSupplier {
    fn name(&self) -> &str {
        &self.name
    }
    fn get(&self, ctx: &StoreContext) -> Result<Box<dyn KeyValueStore>, StateError> {
        let dir = ctx.store_dir(&self.name)?;
        Ok(Box::new(RocksDbKeyValueStore::open(
            &self.name,
            &dir,
            ctx.resources(),
        )?))
    }
    fn persistent(&self) -> bool {
        true
    }
}
