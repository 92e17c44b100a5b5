//! The clients on Kafka: librdkafka through the `rdkafka` crate (librdkafka built from its
//! vendored source and linked statically), behind the [client interface](super).
//!
//! [`KafkaClients::new`] reads `bootstrap.servers`, `application.id`,
//! `default.api.timeout.ms`, `replication.factor`, `processing.guarantee` and the
//! pass-through client settings (`consumer.`, `main.consumer.`, `restore.consumer.`,
//! `producer.`, `admin.`) from a [`StreamsConfig`], and checks within
//! `default.api.timeout.ms` that the cluster answers, so that an app on a wrong address
//! fails at once with a [`ClientError::Timeout`] naming `bootstrap.servers`.
//!
//! # The rebalance bridge
//!
//! librdkafka runs a consumer's rebalances inside its poll, on the polling thread, through
//! the rebalance callback of the consumer's context — but our [`RebalanceListener`] is
//! only lent to [`Consumer::poll`] as a `&mut dyn RebalanceListener`, which a long-lived
//! (`'static`) context cannot hold without `unsafe`. So the bridge *defers* librdkafka's
//! assignment change, which librdkafka allows: an application may call `assign`/`unassign`
//! after its rebalance callback returned, and the group waits for that call (its join
//! state is "wait assign/unassign call"; heartbeats go on).
//!
//! 1. The context's [`rebalance`](rdkafka::consumer::ConsumerContext::rebalance) callback
//!    only records the event (revoke with the partitions and whether the assignment was
//!    lost, or assign with the new partitions) in a queue shared with the consumer. It does
//!    not call `assign`/`unassign`, so the partitions stay assigned and the group stays in
//!    the rebalance.
//! 2. Right after each librdkafka poll, [`Consumer::poll`] takes the recorded events and
//!    handles them with the listener it was lent:
//!    - **revoke**: records of the revoked partitions not returned yet are dropped (the
//!      next owner reads them from the committed offsets), the listener's
//!      `on_partitions_revoked` returns the offsets to commit, they are committed
//!      *synchronously* (retrying retriable errors up to `default.api.timeout.ms`), and
//!      only then `unassign` lets librdkafka complete the revocation.
//!    - A **lost** assignment (librdkafka says so, or the group refused a commit with
//!      unknown member / illegal generation: the session expired, e.g. during an outage):
//!      the listener's `on_partitions_lost` runs instead, nothing is committed (it would
//!      be refused; the partitions may already be elsewhere), and the listener then gets
//!      an empty `on_partitions_assigned`, so that it closes what it kept for those
//!      partitions. A revocation whose commit the group refuses that way ends the same. Their records since the last commit are processed again
//!      (at-least-once, as Kafka Streams' "task migrated"), and the app goes on.
//!    - A commit refused with *rebalance in progress* (librdkafka's mock cluster refuses
//!      commits while members rejoin; Kafka takes them) keeps the offsets for the next
//!      assignment: a partition that comes back starts there and they are committed
//!      then (with the eager protocol nobody else can have owned it in between).
//!    - **assign**: the committed offset of every new partition is read, a partition
//!      without one starts at its low watermark (`auto.offset.reset=earliest`), and one
//!      below the low watermark at the low watermark; `assign` is called with these
//!      explicit offsets, and only then the listener's `on_partitions_assigned` gets the
//!      whole new assignment, with [`Consumer::position`] answering for every partition.
//! 3. While a consumer closes (or is dropped) no listener exists: the context then applies
//!    revocations itself at once, so librdkafka's close completes.
//!
//! The assignment strategy is always librdkafka's eager `range` assignor: partition *i* of
//! every co-partitioned topic goes to the same member, which is what tasks need, and the
//! eager protocol revokes everything before any reassignment, so a partition never has two
//! owners (cooperative protocols are refused for that reason).
//!
//! # Differences from the embedded clients
//!
//! - [`Consumer::group_members`] describes the group (`DescribeGroups`) and decodes each
//!   member's assignment from the consumer protocol's bytes ([`decode_assignment`]). A
//!   broker without that API (librdkafka's mock cluster) gets a view of this member only,
//!   with a warning: standby placement then sees one instance. [`Consumer::member_id`] is
//!   the id of the member whose client id is this consumer's, as of the last
//!   [`Consumer::group_members`] call (librdkafka's member id is not exposed safely).
//! - [`Admin::delete_records`] on a broker without `DeleteRecords` (the mock cluster) logs
//!   a warning once and does nothing more: the records then go by retention.
//! - [`Consumer::watermarks`] asks the broker (`ListOffsets`). The group consumer keeps the
//!   answers for a short while (lag is asked for every partition on every loop), and asks
//!   again as soon as an answer would say that the consumer reached the end.
//! - The producer is idempotent (`enable.idempotence=true`) and sends to the explicit
//!   partition the runtime chose with murmur2; librdkafka's own partitioner is not used.
//!
//! # Transactions
//!
//! [`KafkaClients::transactional_producer`] (one per stream thread under
//! `exactly_once_v2`) is the same producer with `transactional.id` and
//! `enable.idempotence=true` (neither overridable) and, unless
//! `producer.transaction.timeout.ms` says otherwise, Kafka Streams' exactly-once
//! `transaction.timeout.ms=10000`. Its calls are librdkafka's:
//!
//! - [`Producer::init_transactions`] registers the id: on Kafka it fences any earlier
//!   producer with that id and aborts its open transaction.
//! - [`Producer::send`] only inside a transaction (else a [`ClientError::Broker`] saying
//!   so); once the transaction failed, librdkafka takes no more records and the send fails
//!   with [`ClientError::TransactionAborted`].
//! - [`Producer::send_offsets_to_transaction`] needs metadata from
//!   [`Consumer::group_metadata`] of these clients (librdkafka's own copy goes to the
//!   broker; metadata made otherwise is refused). It carries the member's generation and
//!   member id, so Kafka refuses the offsets of a member the group moved on from.
//! - [`Producer::commit_transaction`] first delivers every record (a flush): a delivery
//!   that failed fails the commit with [`ClientError::TransactionAborted`] naming the
//!   partitions and the cause, before librdkafka's commit is asked.
//! - [`Producer::abort_transaction`] runs in attempts of 100 ms with the delivery reports
//!   taken in between: librdkafka's abort purges the queued records and waits until their
//!   reports are taken, which the rdkafka crate's producer only does in its poll, so one
//!   call would wait out its whole timeout. Purged records are not delivery failures.
//!
//! A failed call is classified from librdkafka's error (`rd_kafka_error_t`: its code,
//! `is_fatal`, `is_retriable`, `txn_requires_abort`), in this order:
//!
//! | librdkafka reports | error | what the caller does |
//! |---|---|---|
//! | a fencing code: `_FENCED` (librdkafka's for the broker's `PRODUCER_FENCED` and `INVALID_PRODUCER_EPOCH`), those two, or the group's `ILLEGAL_GENERATION`, `UNKNOWN_MEMBER_ID`, `FENCED_INSTANCE_ID` (KIP-447: offsets of a zombie) | [`ClientError::ProducerFenced`] | abort if it can, drop the producer for a new one, close the tasks dirty, rejoin |
//! | `txn_requires_abort` (a request of the transaction was refused), or a failed delivery | [`ClientError::TransactionAborted`] | [`abort_transaction`](Producer::abort_transaction); the producer goes on |
//! | any other fatal error | [`ClientError::Fatal`] | the producer cannot be used any more |
//! | `is_retriable` (the call timed out: coordinator or cluster unreachable), or the commit's flush did not finish | [`ClientError::Timeout`] | repeat the same call (librdkafka resumes it) or abort |
//! | anything else: a call out of place (begin twice, before `init_transactions`) | [`ClientError::Broker`] | a bug of the caller; nothing changed |
//!
//! A producer fenced by its id is fatal in librdkafka (every later call fails with
//! [`ClientError::ProducerFenced`]); a zombie group member's offsets only make the
//! transaction abortable, so that producer can still abort and go on, but making a new one
//! is harmless. Under `exactly_once_v2` every consumer (main, restore, global) reads
//! `isolation.level=read_committed`, not overridable.

mod admin;
mod consumer;
mod errors;
mod partitions;
mod producer;
mod settings;
#[cfg(test)]
mod txn_tests;
#[cfg(test)]
mod unit_tests;

use std::sync::Arc;
use std::time::Duration;

use super::{
    Admin, ClientError, ClientResult, ClientStatistics, ClientSupplier, ConsumedRecord, Consumer,
    GroupMember, GroupMetadata, NewTopic, OutgoingRecord, Producer, RebalanceListener,
    TopicPartition,
};
use crate::config::{ClientPrefix, StreamsConfig};

use admin::KafkaAdmin;
use consumer::KafkaConsumer;
pub use consumer::decode_assignment;
use producer::KafkaProducer;
use settings::Settings;

/// The clients of an app instance on a Kafka cluster (see the [module docs](self)).
///
/// ```no_run
/// use std::sync::Arc;
/// use streams_core::client::kafka::KafkaClients;
/// use streams_core::prelude::*;
/// use streams_core::runtime::KafkaStreams;
///
/// let builder = StreamsBuilder::new();
/// builder.stream::<String, String>("in").to("out");
/// let config = StreamsConfig::new("app")
///     .with_bootstrap_servers(["localhost:9092"])
///     .with_state_dir("/tmp/app-state");
/// let clients = KafkaClients::new(&config)?;
/// let mut app = KafkaStreams::with_clients(builder.build()?, config, Arc::new(clients))?;
/// app.start()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct KafkaClients {
    settings: Arc<Settings>,
    admin: Arc<KafkaAdmin>,
}

impl std::fmt::Debug for KafkaClients {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaClients")
            .field("bootstrap_servers", &self.settings.bootstrap)
            .field("application_id", &self.settings.application_id)
            .finish_non_exhaustive()
    }
}

impl KafkaClients {
    /// Clients for the cluster at `config`'s `bootstrap.servers`. Fails within
    /// `default.api.timeout.ms` with [`ClientError::Timeout`] when the cluster does not
    /// answer, and with [`ClientError::Broker`] on a setting librdkafka refuses.
    pub fn new(config: &StreamsConfig) -> ClientResult<Self> {
        let settings = Arc::new(Settings::from_config(config)?);
        let admin = Arc::new(KafkaAdmin::new(settings.clone())?);
        // Connectivity: the cluster's metadata, within the bound.
        admin.metadata("connecting to the Kafka cluster")?;
        Ok(Self { settings, admin })
    }

    /// The brokers these clients bootstrap from.
    pub fn bootstrap_servers(&self) -> &str {
        &self.settings.bootstrap
    }
}

impl ClientSupplier for KafkaClients {
    fn group_view_is_partial(&self) -> bool {
        // The mock cluster cannot describe groups, tansu 0.6 breaks on it, and a secured
        // cluster may refuse it: announcements work on every one of them.
        true
    }

    fn consumer(&self, group_id: &str, client_id: &str) -> ClientResult<Box<dyn Consumer>> {
        Ok(Box::new(KafkaConsumer::new(
            self.settings.clone(),
            ClientPrefix::MainConsumer,
            group_id,
            client_id,
            true,
        )?))
    }

    fn restore_consumer(&self, client_id: &str) -> ClientResult<Box<dyn Consumer>> {
        // librdkafka's manual assignment needs a group id; this consumer never joins the
        // group (it never subscribes) and never commits.
        let group = format!("{}-restore", self.settings.application_id);
        Ok(Box::new(KafkaConsumer::new(
            self.settings.clone(),
            ClientPrefix::RestoreConsumer,
            &group,
            client_id,
            false,
        )?))
    }

    fn producer(&self, client_id: &str) -> ClientResult<Box<dyn Producer>> {
        Ok(Box::new(KafkaProducer::new(
            self.settings.clone(),
            client_id,
            None,
        )?))
    }

    fn transactional_producer(
        &self,
        client_id: &str,
        transactional_id: &str,
    ) -> ClientResult<Box<dyn Producer>> {
        Ok(Box::new(KafkaProducer::new(
            self.settings.clone(),
            client_id,
            Some(transactional_id),
        )?))
    }

    fn admin(&self) -> ClientResult<Arc<dyn Admin>> {
        Ok(self.admin.clone())
    }
}

/// The figures the runtime keeps from librdkafka's statistics: the mean broker round-trip
/// time (over brokers that measured one) and the consumer lag summed over the partitions
/// that have one.
pub(super) fn summarize(statistics: &rdkafka::Statistics) -> ClientStatistics {
    let rtts: Vec<i64> = statistics
        .brokers
        .values()
        .filter_map(|b| b.rtt.as_ref())
        .map(|w| w.avg)
        .filter(|avg| *avg > 0)
        .collect();
    let request_latency_avg = (!rtts.is_empty()).then(|| {
        let mean = rtts.iter().sum::<i64>() / rtts.len() as i64;
        Duration::from_micros(u64::try_from(mean).unwrap_or(0))
    });
    let lags: Vec<i64> = statistics
        .topics
        .values()
        .flat_map(|t| t.partitions.iter())
        .filter(|(p, part)| **p >= 0 && part.consumer_lag >= 0)
        .map(|(_, part)| part.consumer_lag)
        .collect();
    ClientStatistics {
        request_latency_avg,
        lag: (!lags.is_empty()).then(|| lags.iter().sum()),
    }
}
