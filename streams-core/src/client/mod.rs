//! The broker behind a small client interface: a [`Consumer`], a [`Producer`] and an
//! [`Admin`], made by a [`ClientSupplier`] (Kafka Streams' `KafkaClientSupplier`).
//!
//! The runtime is written once against these traits. Two implementations exist: the
//! embedded one on the framework's own [`LogEngine`](streams_state::LogEngine)
//! ([`embedded`]), and the Kafka one on librdkafka (`kafka`). The traits are modelled on
//! what librdkafka really offers, so the Kafka implementation stays thin:
//!
//! - Rebalances are eager and run inside [`Consumer::poll`] on the polling thread, as
//!   librdkafka's rebalance callback does: the [`RebalanceListener`] is told about revoked
//!   partitions *before* they go (it returns the offsets to commit first) and about
//!   assigned ones after the group agreed on them.
//! - The assignment is librdkafka's `range` assignor: for each topic, partitions are split
//!   into contiguous ranges over the subscribed members sorted by member id. With equal
//!   partition counts, partition *i* of every co-partitioned topic goes to the same member,
//!   which is what tasks need.
//! - The producer takes an explicit partition: the runtime chooses it with Kafka's murmur2
//!   partitioner (librdkafka's default partitioner differs), from partition counts the
//!   admin client reports.
//! - Sends are buffered; [`Producer::poll`] lets buffered batches go and
//!   [`Producer::flush`] waits until everything sent is durable, reporting a failure.

pub mod embedded;
pub(crate) mod error;
#[cfg(feature = "kafka")]
pub mod kafka;
pub(crate) mod partition;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

pub use error::ClientError;
pub use partition::TopicPartition;

use crate::record::RawRecord;

/// A record as a consumer returns it: where it came from, and its bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct ConsumedRecord {
    /// The partition it was read from.
    pub partition: TopicPartition,
    /// Offset, timestamp, key, value and headers.
    pub record: RawRecord,
}

/// A record to produce to an explicit partition.
#[derive(Debug, Clone, PartialEq)]
pub struct OutgoingRecord {
    /// Where it goes.
    pub partition: TopicPartition,
    /// Timestamp (ms since the epoch).
    pub timestamp: i64,
    /// Key bytes; `None` is null.
    pub key: Option<Vec<u8>>,
    /// Value bytes; `None` is null (a tombstone).
    pub value: Option<Vec<u8>>,
    /// Headers as (key, value) pairs.
    pub headers: Vec<(String, Option<Vec<u8>>)>,
}

/// Settings of a topic to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTopic {
    /// The topic name.
    pub name: String,
    /// The number of partitions.
    pub partitions: u32,
    /// `cleanup.policy=compact` (changelogs) rather than `delete`.
    pub compact: bool,
    /// `retention.ms`, if not the broker's default (-1: never by time). On a compacted
    /// topic a positive retention means `cleanup.policy=compact,delete` (window and session
    /// changelogs). The embedded engine keeps such topics by compaction only.
    pub retention_ms: Option<i64>,
    /// The replication factor (`None`: the broker's default; the embedded engine has one
    /// copy).
    pub replication_factor: Option<i16>,
}

impl NewTopic {
    /// A topic with `partitions` partitions and the broker's defaults.
    pub fn new(name: impl Into<String>, partitions: u32) -> Self {
        Self {
            name: name.into(),
            partitions,
            compact: false,
            retention_ms: None,
            replication_factor: None,
        }
    }

    /// Compacted (`cleanup.policy=compact`).
    pub fn compacted(mut self) -> Self {
        self.compact = true;
        self
    }
}

/// One member of a consumer group and its current assignment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMember {
    /// The member id the coordinator gave it.
    pub member_id: String,
    /// Its client id.
    pub client_id: String,
    /// The partitions assigned to it in the current generation.
    pub assignment: Vec<TopicPartition>,
}

/// How a consumer reads transactional records (Kafka's `isolation.level`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IsolationLevel {
    /// Every record, aborted ones and those of open transactions included.
    #[default]
    ReadUncommitted,
    /// Only up to the last stable offset (no open transaction before it), and never a
    /// record of an aborted transaction. Every consumer reads this way under
    /// `exactly_once_v2`.
    ReadCommitted,
}

/// A group member's identity for a transaction's offset commit (Kafka's
/// `ConsumerGroupMetadata`): the broker refuses the offsets when the member's generation
/// is no longer the group's (KIP-447 fences zombies that way).
#[derive(Clone)]
pub struct GroupMetadata {
    /// The group id.
    pub group_id: String,
    /// The member's generation when the metadata was taken (`-1`: unknown).
    pub generation: i64,
    /// The member id.
    pub member_id: String,
    /// librdkafka's own copy, which its `send_offsets_to_transaction` needs.
    #[cfg(feature = "kafka")]
    pub(crate) kafka: Option<Arc<rdkafka::consumer::ConsumerGroupMetadata>>,
}

impl std::fmt::Debug for GroupMetadata {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupMetadata")
            .field("group_id", &self.group_id)
            .field("generation", &self.generation)
            .field("member_id", &self.member_id)
            .finish()
    }
}

impl GroupMetadata {
    /// The metadata of member `member_id` of `group_id` in `generation`.
    pub fn new(group_id: impl Into<String>, generation: i64, member_id: impl Into<String>) -> Self {
        Self {
            group_id: group_id.into(),
            generation,
            member_id: member_id.into(),
            #[cfg(feature = "kafka")]
            kafka: None,
        }
    }
}

/// Result of client operations.
pub type ClientResult<T> = std::result::Result<T, ClientError>;

/// What a client library reports about its own work (librdkafka's statistics, every
/// `statistics.interval.ms`).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ClientStatistics {
    /// The mean round-trip time of requests to the brokers over the last interval.
    pub request_latency_avg: Option<Duration>,
    /// Records between the consumer's position and the end of its assigned partitions,
    /// as the latest fetch responses tell (right even where a broker's ListOffsets is not).
    pub lag: Option<i64>,
}

/// Told about rebalances, from inside [`Consumer::poll`] on the polling thread.
pub trait RebalanceListener {
    /// `partitions` are about to be taken away. Returns the offsets to commit for them
    /// before they go (the next offset to read for each); the consumer commits them
    /// synchronously. An error aborts the poll.
    fn on_partitions_revoked(
        &mut self,
        partitions: &[TopicPartition],
    ) -> crate::error::Result<Vec<(TopicPartition, i64)>>;

    /// `partitions` were assigned (the whole new assignment). The consumer positioned each
    /// at its committed offset, or at the beginning when there is none (Kafka Streams'
    /// `auto.offset.reset=earliest`).
    fn on_partitions_assigned(&mut self, partitions: &[TopicPartition])
    -> crate::error::Result<()>;

    /// `partitions` were lost: the group went on without this member (its session
    /// expired, or the group refused its commit as a fenced member's), so another member
    /// may own them already. Nothing is committed for them; the consumer then calls
    /// [`on_partitions_assigned`](Self::on_partitions_assigned) with no partitions, so
    /// that what was kept for them is closed. Kafka's `onPartitionsLost`; the default, as
    /// Kafka's, is [`on_partitions_revoked`](Self::on_partitions_revoked) with its offsets
    /// dropped.
    fn on_partitions_lost(&mut self, partitions: &[TopicPartition]) -> crate::error::Result<()> {
        self.on_partitions_revoked(partitions).map(drop)
    }
}

/// A rebalance listener that keeps nothing and commits nothing (for consumers with manual
/// assignment, whose polls never rebalance).
#[derive(Debug, Default, Clone, Copy)]
pub struct NoRebalanceListener;

impl RebalanceListener for NoRebalanceListener {
    fn on_partitions_revoked(
        &mut self,
        _partitions: &[TopicPartition],
    ) -> crate::error::Result<Vec<(TopicPartition, i64)>> {
        Ok(Vec::new())
    }

    fn on_partitions_assigned(
        &mut self,
        _partitions: &[TopicPartition],
    ) -> crate::error::Result<()> {
        Ok(())
    }
}

/// A consumer: a group member with subscribed topics, or a client with manual assignment.
pub trait Consumer: Send {
    /// Joins the group with a subscription to `topics`; the assignment arrives in a later
    /// [`poll`](Self::poll).
    fn subscribe(&mut self, topics: &[String]) -> ClientResult<()>;

    /// Manual assignment without a group: reads `partitions` from the given offsets.
    /// Replaces any earlier manual assignment.
    fn assign(&mut self, partitions: &[(TopicPartition, i64)]) -> ClientResult<()>;

    /// Reads the next records of the assigned, unpaused partitions, waiting up to
    /// `timeout` when there are none. Runs rebalances, calling `listener`.
    fn poll(
        &mut self,
        timeout: Duration,
        listener: &mut dyn RebalanceListener,
    ) -> crate::error::Result<Vec<ConsumedRecord>>;

    /// Stops returning records of `partitions` until resumed (back-pressure, restoration).
    fn pause(&mut self, partitions: &[TopicPartition]) -> ClientResult<()>;

    /// Returns records of `partitions` again.
    fn resume(&mut self, partitions: &[TopicPartition]) -> ClientResult<()>;

    /// Moves the next read of `partition` to `offset`.
    fn seek(&mut self, partition: &TopicPartition, offset: i64) -> ClientResult<()>;

    /// The next offset to read of an assigned partition.
    fn position(&self, partition: &TopicPartition) -> Option<i64>;

    /// Commits `offsets` (the next offset to read per partition) for the group,
    /// synchronously.
    fn commit(&mut self, offsets: &[(TopicPartition, i64)]) -> ClientResult<()>;

    /// Whether the group refused this member's last commit as a fenced member's (its
    /// session expired, or it was expelled): the assignment is given up as lost at a next
    /// poll. The runtime writes at-least-once checkpoints only after a commit the group
    /// took, so that a member that may have been replaced never checkpoints. Default:
    /// never (a consumer whose group never expels members).
    fn commit_refused(&self) -> bool {
        false
    }

    /// The group's committed offsets of `partitions`.
    fn committed(&self, partitions: &[TopicPartition]) -> ClientResult<Vec<Option<i64>>>;

    /// The low and high watermarks (first offset, next offset to be written) of a
    /// partition.
    fn watermarks(&self, partition: &TopicPartition) -> ClientResult<(i64, i64)>;

    /// The high watermark of an assigned partition as the client last saw it, without
    /// asking the broker (`None`: not known yet). For metrics on the hot path: a broker
    /// answers a watermark query only after the fetch in flight on the same connection,
    /// up to `fetch.wait.max.ms` later. The default asks [`watermarks`](Self::watermarks).
    fn high_watermark_hint(&self, partition: &TopicPartition) -> Option<i64> {
        self.watermarks(partition).ok().map(|(_, high)| high)
    }

    /// The current assignment.
    fn assignment(&self) -> Vec<TopicPartition>;

    /// This consumer's member id in its group (empty before it joined, or without group).
    fn member_id(&self) -> String;

    /// Every member of the group with its assignment in the current generation (what
    /// standby placement is derived from).
    fn group_members(&self) -> ClientResult<Vec<GroupMember>>;

    /// The client library's latest statistics, if it keeps any (the embedded consumer
    /// does not: its lag is exact).
    fn statistics(&self) -> Option<ClientStatistics> {
        None
    }

    /// This member's group metadata for [`Producer::send_offsets_to_transaction`]
    /// (`None` without a group).
    fn group_metadata(&self) -> Option<GroupMetadata> {
        None
    }

    /// Leaves the group (its partitions move to the others at once) and closes.
    fn close(&mut self) -> ClientResult<()>;
}

/// A producer: buffered sends to explicit partitions.
pub trait Producer: Send {
    /// Queues `record`. Fails at once only when the partition is unknown; delivery
    /// failures are reported by [`poll`](Self::poll) or [`flush`](Self::flush).
    fn send(&mut self, record: OutgoingRecord) -> ClientResult<()>;

    /// Lets full or lingering batches go; reports a delivery failure since the last call.
    fn poll(&mut self) -> ClientResult<()>;

    /// Delivers everything queued and makes it durable, within `timeout`.
    fn flush(&mut self, timeout: Duration) -> ClientResult<()>;

    /// Where this producer's own writes reached: for every partition a record was
    /// delivered to since the last call, the offset after the last one. Taken: the next
    /// call reports only later deliveries.
    ///
    /// The runtime checkpoints a store at the changelog offsets its own writes reached
    /// (as Kafka Streams does with its producer's offsets), never at the log's end, which
    /// another writer (a member that took the task over while this one stalled) may have
    /// moved. The default knows nothing: checkpoints then stay at the offsets restoration
    /// reached, and restarts replay more of the changelogs.
    fn take_delivered(&mut self) -> Vec<(TopicPartition, i64)> {
        Vec::new()
    }

    /// Whether this is a transactional producer (made by
    /// [`ClientSupplier::transactional_producer`]): its sends belong to the current
    /// transaction and become visible to `read_committed` consumers when it commits.
    fn is_transactional(&self) -> bool {
        false
    }

    /// Registers the producer's transactional id, fencing any earlier producer with the
    /// same id and aborting its open transaction. Called once, before the first
    /// [`begin_transaction`](Self::begin_transaction).
    fn init_transactions(&mut self, _timeout: Duration) -> ClientResult<()> {
        Err(not_transactional("init_transactions"))
    }

    /// Starts a transaction: every send until the commit or abort belongs to it.
    fn begin_transaction(&mut self) -> ClientResult<()> {
        Err(not_transactional("begin_transaction"))
    }

    /// Adds a consumer group's offsets (the next offset to read per partition) to the
    /// current transaction: they are committed if and only if the transaction is.
    fn send_offsets_to_transaction(
        &mut self,
        _offsets: &[(TopicPartition, i64)],
        _group: &GroupMetadata,
        _timeout: Duration,
    ) -> ClientResult<()> {
        Err(not_transactional("send_offsets_to_transaction"))
    }

    /// Delivers what the transaction sent and commits it (its records become visible to
    /// `read_committed` consumers, its offsets are committed), within `timeout`.
    fn commit_transaction(&mut self, _timeout: Duration) -> ClientResult<()> {
        Err(not_transactional("commit_transaction"))
    }

    /// Aborts the current transaction: its records are never visible to `read_committed`
    /// consumers, its offsets are not committed.
    fn abort_transaction(&mut self, _timeout: Duration) -> ClientResult<()> {
        Err(not_transactional("abort_transaction"))
    }
}

fn not_transactional(operation: &str) -> ClientError {
    ClientError::Broker {
        operation: operation.into(),
        detail: "this producer is not transactional".into(),
    }
}

/// Topic administration and metadata.
pub trait Admin: Send + Sync {
    /// Creates a topic; [`ClientError::TopicExists`] when it exists.
    fn create_topic(&self, topic: &NewTopic) -> ClientResult<()>;

    /// Every topic with its partition count (metadata).
    fn topics(&self) -> ClientResult<BTreeMap<String, u32>>;

    /// Deletes a topic.
    fn delete_topic(&self, topic: &str) -> ClientResult<()>;

    /// Deletes the records of `partition` before `offset` (repartition topics, after
    /// commit).
    fn delete_records(&self, partition: &TopicPartition, offset: i64) -> ClientResult<()>;
}

/// Makes the clients of an app instance (Kafka Streams' `KafkaClientSupplier`).
pub trait ClientSupplier: Send + Sync {
    /// Whether [`Consumer::group_members`] may show less than the whole group (a broker
    /// without DescribeGroups, or without the rights to use it). The runtime then has the
    /// stream threads announce their assignments themselves, for interactive-query
    /// metadata and standby placement (see `docs/KAFKA.md`). The embedded engine's view
    /// is exact.
    fn group_view_is_partial(&self) -> bool {
        false
    }

    /// The size and offsets of every partition of the broker's logs, where the broker is
    /// in this process (the embedded engine); `None` for a remote cluster, whose brokers
    /// export their own metrics.
    fn log_stats(&self) -> Option<Vec<streams_state::PartitionStats>> {
        None
    }

    /// A consumer that will join `group_id` as `client_id`.
    fn consumer(&self, group_id: &str, client_id: &str) -> ClientResult<Box<dyn Consumer>>;

    /// A consumer without group, for manual assignment (restoring changelogs, standbys).
    fn restore_consumer(&self, client_id: &str) -> ClientResult<Box<dyn Consumer>>;

    /// A producer.
    fn producer(&self, client_id: &str) -> ClientResult<Box<dyn Producer>>;

    /// A transactional producer with `transactional_id` (one per stream thread under
    /// `exactly_once_v2`). Suppliers without transactions refuse.
    fn transactional_producer(
        &self,
        client_id: &str,
        transactional_id: &str,
    ) -> ClientResult<Box<dyn Producer>> {
        let _ = client_id;
        Err(ClientError::Broker {
            operation: format!("creating transactional producer `{transactional_id}`"),
            detail: "these clients do not support transactions".into(),
        })
    }

    /// The admin client.
    fn admin(&self) -> ClientResult<Arc<dyn Admin>>;
}
