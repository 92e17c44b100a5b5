//! What a running instance reports about its threads and tasks
//! ([`KafkaStreams::metrics`](crate::runtime::KafkaStreams::metrics)): plain data, shared by
//! the runtime that fills it and the metrics exporter that publishes it; the public names
//! are in [`crate::runtime`].

use std::time::Duration;

use crate::metrics::TaskMetrics;
use crate::record::TaskId;

/// The state of one task, as in Kafka Streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskState {
    /// Assigned, waiting for its state directory (another thread is releasing it).
    Created,
    /// Restoring its stores from their changelogs; it processes nothing yet.
    Restoring,
    /// Processing.
    Running,
    /// Its partitions were revoked; kept open in case they come back.
    Suspended,
    /// A standby replica: its stores follow the changelogs of a task active elsewhere.
    Standby,
}

/// A snapshot of one task's metrics.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskSnapshot {
    /// The task.
    pub id: TaskId,
    /// Its state.
    pub state: TaskState,
    /// Records processed, skipped, dropped...
    pub metrics: TaskMetrics,
    /// Input records not processed yet: behind the consumer's position plus those queued.
    pub lag: i64,
    /// Changelog records restored so far (for a standby: applied).
    pub restored: u64,
    /// Changelog records to restore before it runs (0 when nothing to restore).
    pub restore_total: u64,
    /// Wall-clock time minus the timestamp of the last record processed, in ms (Kafka's
    /// `record-e2e-latency`), if any was processed.
    pub e2e_latency_ms: Option<i64>,
}

/// A snapshot of one stream thread's metrics.
#[derive(Debug, Clone, PartialEq)]
pub struct ThreadSnapshot {
    /// The thread's name.
    pub name: String,
    /// Polls done.
    pub polls: u64,
    /// Mean time a poll took.
    pub poll_latency_avg: Duration,
    /// Records processed.
    pub processed: u64,
    /// Records processed per second since the thread started.
    pub process_rate: f64,
    /// Mean time to process a record.
    pub process_latency_avg: Duration,
    /// Commits done.
    pub commits: u64,
    /// Mean time a commit took.
    pub commit_latency_avg: Duration,
    /// Output records the producer could not deliver and the production handler
    /// (`continue`) skipped.
    pub production_errors_skipped: u64,
    /// What the thread's consumer library last reported about itself (on Kafka:
    /// librdkafka's statistics every `consumer.statistics.interval.ms`, default 5 s: the
    /// mean broker round-trip time and the lag seen in fetch responses); `None` on the
    /// embedded engine.
    pub consumer_statistics: Option<crate::client::ClientStatistics>,
    /// Its tasks (active and standby).
    pub tasks: Vec<TaskSnapshot>,
}
