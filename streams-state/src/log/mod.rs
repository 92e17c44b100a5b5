//! The embedded log engine: the broker the runtime uses when no `bootstrap.servers` is set,
//! topics of N partitions on local disk with durable consumer-group offsets and Kafka's
//! transactions. It is a broker, not a store: the stores of this crate never use it, and
//! `serve` exposes it over the Kafka wire protocol.
//!
//! One concept per file:
//!
//! | module | what it holds |
//! |---|---|
//! | `engine` | [`LogEngine`]: opening the directory, topics, appends and reads |
//! | `topics` | topic settings ([`TopicConfig`]), names, the `topic.meta` file |
//! | `groups` | consumer group offsets |
//! | `transactions` | the engine's transaction API (InitProducerId … EndTxn) |
//! | `coordinator` | transactional ids, epochs and the durable commit decision |
//! | `partition` | [`PartitionLog`]: one partition's appends, reads, retention, recovery |
//! | `segment` | a segment file with its offset and time indexes |
//! | `batch` | the record batch codec |
//! | `compaction` | `cleanup.policy=compact` |
//! | `txn` | producer ids and isolation levels |
//! | `txn_index` | a partition's open and aborted transactions, the last stable offset |
//! | [`repair`] | `streams verify` / `streams repair` of damaged segments |
//! | `partitioner` | Kafka's murmur2 partitioner |
//! | `error` | [`LogError`], the typed refusals |
//! | `files` | atomic and checksummed file writes |
//!
//! Dependencies run one way, from the engine down to the codec: `engine`, `groups` and
//! `transactions` → `topics`, `coordinator`, `partition`; `compaction` → `partition` →
//! `segment` → `batch`, `txn_index` → `txn`; `error`, `files` and `partitioner` are leaves.
//! A test (tests/tests/module_graph.rs) keeps it so.

pub(crate) mod batch;
pub(crate) mod compaction;
pub(crate) mod coordinator;
pub(crate) mod engine;
pub(crate) mod error;
pub(crate) mod files;
pub(crate) mod groups;
pub(crate) mod partition;
pub(crate) mod partitioner;
pub mod repair;
pub(crate) mod segment;
pub(crate) mod topics;
pub(crate) mod transactions;
pub(crate) mod txn;
pub(crate) mod txn_index;

#[cfg(test)]
mod engine_tests;
#[cfg(test)]
mod partition_tests;

pub use batch::{AppendRecord, LogRecord, NewRecord};
pub use compaction::CompactionReport;
pub use coordinator::{TransactionRecovery, TransactionState, TransactionStatus};
pub use engine::{EngineConfig, LogEngine, MaintenanceReport, PartitionStats};
pub use error::LogError;
pub use partition::{
    DEFAULT_SEGMENT_MS, FsyncPolicy, LogConfig, PartitionLog, ReadResult, StoredBatch,
};
pub use partitioner::{murmur2, partition_for_key};
pub use segment::RecoveryReport;
pub use topics::{CleanupPolicy, DEFAULT_DELETE_RETENTION_MS, TopicConfig};
pub use txn::{Isolation, ProducerId};
