//! State stores for the streams framework.
//!
//! This crate owns everything the framework keeps on behalf of a task:
//! - byte-level store traits: [`KeyValueStore`] (and window and session stores);
//! - engines: [`InMemoryKeyValueStore`] and [`RocksDbKeyValueStore`], the latter sharing one
//!   process-wide memory budget ([`RocksDbResources`]);
//! - the record cache ([`CachingKeyValueStore`], [`ThreadCache`]);
//! - store metrics ([`metrics`]: the metered store layer, the record cache's hit ratio,
//!   RocksDB properties), recorded only at the `DEBUG` recording level;
//! - changelogs ([`ChangelogSink`], [`LoggingKeyValueStore`]), per-task checkpoints
//!   ([`Checkpoint`]), restoration ([`restore_store`]) and snapshots;
//! - the locked state directory ([`StateDirectory`]);
//! - the embedded log engine's partition storage ([`PartitionLog`]: CRC-checked batches in
//!   segment files, torn-tail recovery, retention, delete-records), which the runtime's
//!   embedded broker builds on, and [`LogEngine`] on top of it (topics, group offsets,
//!   time lookup, retention, compaction, Kafka-style transactions with `read_committed`
//!   reads);
//! - Kafka's default partitioner ([`murmur2`], [`partition_for_key`]), shared with
//!   `streams-core` and the `streams` command-line tool;
//! - with the `serve` feature, [`serve`]: the log engine over the Kafka wire protocol, for
//!   Kafka clients and apps in separate processes (`streams serve`).
//!
//! Stores work on raw bytes (keys compare in lexicographic byte order, like RocksDB); typed
//! views with serdes live in `streams-core`, which depends on this crate. This crate must
//! never depend on a Kafka client: changelog writes go through [`ChangelogSink`], which the
//! runtime implements. See docs/ARCHITECTURE.md and docs/STATE.md.

mod cache;
mod changelog;
mod context;
mod delegate;
mod dir;
mod entry;
mod error;
mod kv;
pub mod log;
mod memory;
pub mod metrics;
mod resources;
mod rocks;
mod segments;
#[cfg(feature = "serve")]
pub mod serve;
mod session;
mod stats;
mod sync;
mod window;

pub use cache::{CachingKeyValueStore, CachingSessionStore, CachingWindowStore, ThreadCache};
pub use changelog::{
    ChangelogPartition, ChangelogSink, Checkpoint, CheckpointRead, LoggingKeyValueStore,
    NoopRestoreListener, RestoreListener, RestoreSummary, install_snapshot, latest_snapshot,
    restore_store, snapshot_dir, take_snapshot,
};
pub use context::StoreContext;
pub use dir::{STATE_DIR_VERSION, StateDirectory};
pub use entry::{ChangelogRecord, FlushedEntry};
pub use error::StateError;
pub use kv::{KeyValueBytesStoreSupplier, KeyValueIter, KeyValueStore, StateStore};
/// The damage finder and repairer of the log engine (`streams verify`, `streams repair`),
/// also at [`log::repair`].
pub use log::repair;
pub use log::{
    AppendRecord, CleanupPolicy, CompactionReport, DEFAULT_DELETE_RETENTION_MS, DEFAULT_SEGMENT_MS,
    EngineConfig, FsyncPolicy, Isolation, LogConfig, LogEngine, LogError, LogRecord,
    MaintenanceReport, NewRecord, PartitionLog, PartitionStats, ProducerId, ReadResult,
    RecoveryReport, StoredBatch, TopicConfig, TransactionRecovery, TransactionState,
    TransactionStatus, murmur2, partition_for_key,
};
pub use memory::{InMemoryKeyValueStore, InMemoryKeyValueStoreSupplier};
pub use metrics::{MeteredKeyValueStore, MeteredSessionStore, MeteredWindowStore, StoreMetrics};
pub use resources::{MIN_ROCKSDB_BUDGET, RocksDbResources};
pub use rocks::{RocksDbKeyValueStore, RocksDbKeyValueStoreSupplier};
pub use session::*;
pub use stats::{HitRatioStats, HitRatioWindow, RocksDbProperties};
pub use window::*;

/// A key and a value as raw bytes, as returned by range scans.
pub type KeyValueBytes = (Vec<u8>, Vec<u8>);
