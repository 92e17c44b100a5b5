//! What a task holds for each of its stores, whatever its kind: committing, closing,
//! restoring, metrics.

use std::any::Any;
use std::fmt;
use std::sync::{Arc, Mutex};

use streams_state::{
    ChangelogSink, HitRatioStats, KeyValueStore, RocksDbProperties, SessionStore, StoreContext,
    StoreMetrics, ThreadCache, WindowStore,
};

use crate::config::StreamsConfig;

use crate::error::{Result, StreamsError};

use super::*;

/// What a task does with any store on commit and close.
pub(crate) trait RawStore: Send + Sync {
    /// Whether the store keeps its data across restarts (only those are checkpointed).
    fn persistent(&self) -> bool;
    /// Applies changelog records (restoration; not logged again).
    fn restore(&self, records: &[streams_state::ChangelogRecord]) -> Result<()>;
    /// Writes a record cache's dirty entries down (a no-op without cache).
    fn flush_cache(&self) -> Result<()>;
    /// Flushes the engine.
    fn flush(&self) -> Result<()>;
    /// Closes the store.
    fn close(&self) -> Result<()>;
    /// The RocksDB properties of the store's instance, if it is a RocksDB key-value store.
    fn rocksdb_properties(&self) -> Option<RocksDbProperties>;
}

/// The same `RawStore` for every kind of store; `$restore` applies a restoration batch to
/// the locked store `$s`.
macro_rules! raw_store {
    ($kind:ty, |$s:ident, $records:ident| $restore:expr, |$p:ident| $props:expr) => {
        impl RawStore for Mutex<Box<$kind>> {
            fn persistent(&self) -> bool {
                relock(self).persistent()
            }
            fn restore(&self, $records: &[streams_state::ChangelogRecord]) -> Result<()> {
                let mut $s = relock(self);
                $restore
            }
            fn flush_cache(&self) -> Result<()> {
                let mut s = relock(self);
                s.flush_cache()?;
                s.take_flushed();
                Ok(())
            }
            fn flush(&self) -> Result<()> {
                Ok(relock(self).flush()?)
            }
            fn close(&self) -> Result<()> {
                Ok(relock(self).close()?)
            }
            fn rocksdb_properties(&self) -> Option<RocksDbProperties> {
                let $p = relock(self);
                $props
            }
        }
    };
}

raw_store!(
    dyn KeyValueStore,
    |s, records| {
        s.begin_restore()?;
        s.restore_batch(records)?;
        Ok(s.end_restore()?)
    },
    |s| s.rocksdb_properties()
);
raw_store!(
    dyn WindowStore,
    |s, records| Ok(s.restore_batch(records)?),
    |s| s.rocksdb_properties()
);
raw_store!(
    dyn SessionStore,
    |s, records| Ok(s.restore_batch(records)?),
    |s| s.rocksdb_properties()
);

/// A store's metrics recorders, present only at the `DEBUG` recording level.
#[derive(Clone, Default)]
pub(crate) struct StoreMeters {
    /// Operation rates and latencies (the metered layer).
    pub(crate) ops: Option<Arc<StoreMetrics>>,
    /// The record cache's hit ratio (cached stores only).
    pub(crate) hit_ratio: Option<Arc<HitRatioStats>>,
}

/// One task's instance of a store: the raw store (for commit and close) and its typed
/// handle.
#[derive(Clone)]
pub(crate) struct StoreEntry {
    pub(super) name: Arc<str>,
    pub(super) raw: Arc<dyn RawStore>,
    pub(super) typed: Arc<dyn Any + Send + Sync>,
    pub(super) meters: StoreMeters,
}

impl fmt::Debug for StoreEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreEntry")
            .field("name", &self.name)
            .finish()
    }
}

impl StoreEntry {
    /// The store's name.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

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

    /// Writes cached updates down (not forwarded: that is the owning node's job).
    pub(crate) fn flush_cache(&self) -> Result<()> {
        self.raw.flush_cache()
    }

    /// Whether the store keeps its data across restarts.
    pub(crate) fn persistent(&self) -> bool {
        self.raw.persistent()
    }

    /// Applies a batch of changelog records.
    pub(crate) fn restore(&self, records: &[streams_state::ChangelogRecord]) -> Result<()> {
        self.raw.restore(records)
    }

    /// Flushes the engine: after this, the store reflects every logged change.
    pub(crate) fn flush(&self) -> Result<()> {
        self.raw.flush()
    }

    pub(crate) fn close(&self) -> Result<()> {
        self.raw.close()
    }

    /// The store's metrics recorders (none at the `INFO` recording level).
    pub(crate) fn meters(&self) -> &StoreMeters {
        &self.meters
    }

    /// The RocksDB properties of the store, read now (RocksDB key-value stores only).
    pub(crate) fn rocksdb_properties(&self) -> Option<RocksDbProperties> {
        self.raw.rocksdb_properties()
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
