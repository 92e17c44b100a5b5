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
//!      the listener's `on_partitions_revoked` still runs, the commit is skipped (it would
//!      be refused; the partitions may already be elsewhere), and the listener then gets
//!      an empty `on_partitions_assigned`, so that it closes what it kept for those
//!      partitions. Their records since the last commit are processed again
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

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use rdkafka::ClientContext;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic as RdNewTopic, TopicReplication};
use rdkafka::config::{ClientConfig, FromClientConfigAndContext, RDKafkaLogLevel};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer as RdConsumer, ConsumerContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, Headers as _, Message as _, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer as _, ProducerContext};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::types::RDKafkaRespErr;

use super::{
    Admin, ClientError, ClientResult, ClientStatistics, ClientSupplier, ConsumedRecord, Consumer,
    GroupMember, GroupMetadata, NewTopic, OutgoingRecord, Producer, RebalanceListener,
    TopicPartition,
};
use crate::config::{ClientPrefix, ProcessingGuarantee, StreamsConfig};
use crate::record::{Headers, RawRecord};

use crate::sync::lock;

/// Settings the runtime interprets itself: they are not given to librdkafka.
const OWN_CONSUMER_SETTINGS: &[&str] = &["max.poll.records"];
/// How many records one [`Consumer::poll`] returns at most (Kafka's `max.poll.records`
/// default; settable as `consumer.max.poll.records`).
const DEFAULT_MAX_POLL_RECORDS: usize = 500;
/// How long the group consumer keeps a watermark answer that shows lag.
const WATERMARK_TTL: Duration = Duration::from_secs(1);
/// How long it keeps one that shows none (asked again soon: more may have arrived).
const WATERMARK_TTL_AT_END: Duration = Duration::from_millis(50);
/// How long the first attempt to describe the group may take.
const DESCRIBE_FIRST_TRY: Duration = Duration::from_secs(5);
/// Pause between retries of a retriable failure.
const RETRY_BACKOFF: Duration = Duration::from_millis(100);
/// A transactional producer's `transaction.timeout.ms` unless configured: Kafka Streams'
/// exactly-once default, so that a crashed thread's open transaction stops holding back
/// `read_committed` readers after 10 s (librdkafka's own default is 60 s).
const DEFAULT_TRANSACTION_TIMEOUT_MS: &str = "10000";
/// How long one attempt of `abort_transaction` may wait before the delivery reports of the
/// records it purged are served (see [`KafkaProducer`]'s `abort_transaction`).
const ABORT_SLICE: Duration = Duration::from_millis(100);

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

/// What every client is made from.
struct Settings {
    bootstrap: String,
    application_id: String,
    timeout: Duration,
    replication_factor: i16,
    read_committed: bool,
    clients: BTreeMap<ClientPrefix, BTreeMap<String, String>>,
}

impl Settings {
    fn from_config(config: &StreamsConfig) -> ClientResult<Self> {
        if config.bootstrap_servers().is_empty() {
            return Err(ClientError::Broker {
                operation: "creating the Kafka clients".into(),
                detail: "bootstrap.servers is not set".into(),
            });
        }
        Ok(Self {
            bootstrap: config.bootstrap_servers().join(","),
            application_id: config.application_id().to_string(),
            timeout: Duration::from_millis(config.default_api_timeout_ms().max(1)),
            replication_factor: config.replication_factor(),
            read_committed: config.processing_guarantee() == ProcessingGuarantee::ExactlyOnceV2,
            clients: ClientPrefix::ALL
                .iter()
                .map(|c| (*c, config.client_properties(*c).clone()))
                .collect(),
        })
    }

    fn props(&self, client: ClientPrefix) -> impl Iterator<Item = (&String, &String)> {
        self.clients.get(&client).into_iter().flatten()
    }

    /// The setting `key` of a consumer (its specific prefix over `consumer.`).
    fn consumer_setting(&self, specific: ClientPrefix, key: &str) -> Option<&String> {
        self.clients
            .get(&specific)
            .and_then(|m| m.get(key))
            .or_else(|| self.clients.get(&ClientPrefix::Consumer)?.get(key))
    }

    fn base(&self, client_id: &str) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.bootstrap);
        c.set("client.id", client_id);
        c.set_log_level(RDKafkaLogLevel::Warning);
        c
    }

    /// A consumer's configuration: ours, then the pass-through settings, then the ones the
    /// runtime depends on (overriding them is refused with a warning).
    fn consumer_config(
        &self,
        specific: ClientPrefix,
        group_id: &str,
        client_id: &str,
    ) -> ClientConfig {
        let mut c = self.base(client_id);
        c.set("auto.offset.reset", "earliest");
        c.set("enable.partition.eof", "false");
        // Statistics feed the thread metrics (request latency, lag by fetch responses);
        // `consumer.statistics.interval.ms` changes the interval (0: off).
        c.set("statistics.interval.ms", "5000");
        c.set(
            "isolation.level",
            if self.read_committed {
                "read_committed"
            } else {
                "read_uncommitted"
            },
        );
        for (k, v) in self
            .props(ClientPrefix::Consumer)
            .chain(self.props(specific))
        {
            if !OWN_CONSUMER_SETTINGS.contains(&k.as_str()) {
                c.set(k, v);
            }
        }
        let mut forced = vec![
            ("group.id", group_id),
            ("enable.auto.commit", "false"),
            ("enable.auto.offset.store", "false"),
            ("partition.assignment.strategy", "range"),
            ("group.protocol", "classic"),
        ];
        // Under exactly_once_v2 every consumer (main, restore, global) must not see records
        // of open or aborted transactions: not overridable, as in Kafka Streams.
        if self.read_committed {
            forced.push(("isolation.level", "read_committed"));
        }
        // Static membership (`consumer.group.instance.id`, Kafka's KIP-345): each group
        // consumer needs its own id, so the configured one gets the stream thread's number,
        // as in Kafka Streams (`<id>-<n>`); consumers outside the group get none.
        if let Some(base) = c.get("group.instance.id").map(str::to_string) {
            if specific == ClientPrefix::MainConsumer {
                c.set("group.instance.id", static_member_id(&base, client_id));
            } else {
                c.remove("group.instance.id");
            }
        }
        for (k, v) in forced {
            force_setting(&mut c, "consumer", k, v);
        }
        c
    }

    fn producer_config(&self, client_id: &str) -> ClientConfig {
        let mut c = self.base(client_id);
        c.set("enable.idempotence", "true");
        for (k, v) in self.props(ClientPrefix::Producer) {
            c.set(k, v);
        }
        c
    }

    /// A transactional producer's configuration: [`producer_config`](Self::producer_config)
    /// with Kafka Streams' `transaction.timeout.ms` default (overridable), then
    /// `transactional.id` and idempotence, which are not.
    fn transactional_producer_config(
        &self,
        client_id: &str,
        transactional_id: &str,
    ) -> ClientConfig {
        let mut c = self.base(client_id);
        c.set("enable.idempotence", "true");
        c.set("transaction.timeout.ms", DEFAULT_TRANSACTION_TIMEOUT_MS);
        for (k, v) in self.props(ClientPrefix::Producer) {
            c.set(k, v);
        }
        force_setting(&mut c, "producer", "transactional.id", transactional_id);
        force_setting(&mut c, "producer", "enable.idempotence", "true");
        c
    }

    fn admin_config(&self) -> ClientConfig {
        let mut c = self.base(&format!("{}-admin", self.application_id));
        for (k, v) in self.props(ClientPrefix::Admin) {
            c.set(k, v);
        }
        c
    }

    fn max_poll_records(&self, specific: ClientPrefix) -> ClientResult<usize> {
        match self.consumer_setting(specific, "max.poll.records") {
            None => Ok(DEFAULT_MAX_POLL_RECORDS),
            Some(v) => match v.trim().parse::<usize>() {
                Ok(n) if n > 0 => Ok(n),
                _ => Err(ClientError::Broker {
                    operation: "configuring the consumer".into(),
                    detail: format!("max.poll.records `{v}` is not a positive number"),
                }),
            },
        }
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

// ---------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------

/// What librdkafka last reported about a client's connections (for error details).
#[derive(Default)]
struct Diagnostics {
    last_error: Mutex<Option<String>>,
}

impl Diagnostics {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        match level {
            RDKafkaLogLevel::Emerg
            | RDKafkaLogLevel::Alert
            | RDKafkaLogLevel::Critical
            | RDKafkaLogLevel::Error => tracing::error!(target: "librdkafka", "{fac}: {message}"),
            RDKafkaLogLevel::Warning => tracing::warn!(target: "librdkafka", "{fac}: {message}"),
            RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
                tracing::info!(target: "librdkafka", "{fac}: {message}")
            }
            RDKafkaLogLevel::Debug => tracing::debug!(target: "librdkafka", "{fac}: {message}"),
        }
    }

    fn error(&self, error: &KafkaError, reason: &str) {
        tracing::debug!(target: "librdkafka", error = %error, "{reason}");
        *lock(&self.last_error) = Some(reason.to_string());
    }

    fn last(&self) -> Option<String> {
        lock(&self.last_error).clone()
    }
}

fn code_of(e: &KafkaError) -> Option<RDKafkaErrorCode> {
    match e {
        KafkaError::AdminOp(c) => Some(*c),
        e => e.rdkafka_error_code(),
    }
}

/// Failures worth trying again until the deadline: the cluster or the coordinator is
/// (momentarily) unreachable or moving.
fn retriable(code: Option<RDKafkaErrorCode>) -> bool {
    use RDKafkaErrorCode as C;
    matches!(
        code,
        Some(
            C::OperationTimedOut
                | C::RequestTimedOut
                | C::AllBrokersDown
                | C::BrokerTransportFailure
                | C::CoordinatorNotAvailable
                | C::NotCoordinator
                | C::CoordinatorLoadInProgress
                | C::NetworkException
                | C::WaitingForCoordinator
                | C::LeaderNotAvailable
                | C::NotLeaderForPartition
                | C::Resolve
        )
    )
}

/// The group refused a member's request: it is rebalancing, or the member is fenced.
fn membership_error(code: Option<RDKafkaErrorCode>) -> bool {
    use RDKafkaErrorCode as C;
    matches!(
        code,
        Some(
            C::RebalanceInProgress
                | C::IllegalGeneration
                | C::UnknownMemberId
                | C::FencedInstanceId
        )
    )
}

/// Runs `f` (given the time left) until it succeeds, fails for good, or `timeout` passed.
fn retry<T>(
    timeout: Duration,
    operation: &str,
    mut f: impl FnMut(Duration) -> Result<T, KafkaError>,
) -> Result<T, KafkaError> {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match f(left.max(Duration::from_millis(1))) {
            Err(e) if retriable(code_of(&e)) && Instant::now() + RETRY_BACKOFF < deadline => {
                tracing::debug!(operation, error = %e, "retrying");
                std::thread::sleep(RETRY_BACKOFF);
            }
            result => return result,
        }
    }
}

fn timed_out(code: Option<RDKafkaErrorCode>) -> bool {
    use RDKafkaErrorCode as C;
    matches!(
        code,
        Some(C::OperationTimedOut | C::RequestTimedOut | C::AllBrokersDown | C::MessageTimedOut)
    )
}

fn unsupported(code: Option<RDKafkaErrorCode>) -> bool {
    use RDKafkaErrorCode as C;
    matches!(
        code,
        Some(C::UnsupportedFeature | C::UnsupportedVersion | C::NotImplemented)
    )
}

/// The error of `operation` failing with `e`: a [`ClientError::Timeout`] naming the
/// cluster when it did not answer, else a [`ClientError::Broker`].
fn client_error(
    operation: &str,
    e: &KafkaError,
    after: Duration,
    bootstrap: &str,
    diagnostics: &Diagnostics,
) -> ClientError {
    let code = code_of(e);
    if timed_out(code) || retriable(code) {
        let mut detail =
            format!("no answer from the Kafka cluster at bootstrap.servers={bootstrap} ({e})");
        if let Some(last) = diagnostics.last() {
            detail.push_str(&format!("; last client error: {last}"));
        }
        return ClientError::Timeout {
            operation: operation.to_string(),
            after,
            detail,
        };
    }
    ClientError::Broker {
        operation: operation.to_string(),
        detail: e.to_string(),
    }
}

/// Codes saying that someone else took over: another producer registered the same
/// transactional id (librdkafka's `_FENCED`, to which it maps the broker's
/// `PRODUCER_FENCED` and `INVALID_PRODUCER_EPOCH`), or the consumer group moved on from
/// the member whose metadata the offsets were sent with (KIP-447's zombie fencing:
/// `ILLEGAL_GENERATION`, `UNKNOWN_MEMBER_ID`, `FENCED_INSTANCE_ID`).
fn fencing(code: Option<RDKafkaErrorCode>) -> bool {
    use RDKafkaErrorCode as C;
    matches!(
        code,
        Some(
            C::Fenced
                | C::ProducerFenced
                | C::InvalidProducerEpoch
                | C::FencedInstanceId
                | C::IllegalGeneration
                | C::UnknownMemberId
        )
    )
}

/// What a failed transactional call says about itself: librdkafka's flags on a
/// transactional error (`rd_kafka_error_t`), or what the code alone tells for the other
/// failures (a flush that did not finish, a refused send).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct TxnFailure {
    code: Option<RDKafkaErrorCode>,
    fatal: bool,
    retriable: bool,
    abortable: bool,
}

impl TxnFailure {
    fn of(e: &KafkaError) -> Self {
        match e {
            KafkaError::Transaction(t) => Self {
                code: Some(t.code()),
                fatal: t.is_fatal(),
                retriable: t.is_retriable(),
                abortable: t.txn_requires_abort(),
            },
            e => {
                let code = code_of(e);
                Self {
                    code,
                    fatal: code == Some(RDKafkaErrorCode::Fatal),
                    retriable: timed_out(code) || retriable(code),
                    abortable: false,
                }
            }
        }
    }
}

/// How the caller must react to a failed transactional call (the mapping of the
/// [module docs](self#transactions)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TxnReaction {
    /// [`ClientError::ProducerFenced`]: a new producer, tasks closed dirty, rejoin.
    Fenced,
    /// [`ClientError::TransactionAborted`]: abort; the producer stays usable.
    Abort,
    /// [`ClientError::Timeout`]: the same call may be repeated (librdkafka resumes it),
    /// or the transaction aborted.
    Retry,
    /// [`ClientError::Fatal`]: the producer cannot be used any more.
    Fatal,
    /// [`ClientError::Broker`]: refused as such (a call in the wrong state, a bad
    /// argument); nothing changed.
    Refused,
}

fn txn_reaction(f: TxnFailure) -> TxnReaction {
    if fencing(f.code) {
        TxnReaction::Fenced
    } else if f.abortable {
        TxnReaction::Abort
    } else if f.fatal {
        TxnReaction::Fatal
    } else if f.retriable {
        TxnReaction::Retry
    } else {
        TxnReaction::Refused
    }
}

/// The client error of a failed transactional call.
fn transaction_error(
    operation: &str,
    detail: String,
    failure: TxnFailure,
    after: Duration,
    bootstrap: &str,
) -> ClientError {
    let operation = operation.to_string();
    match txn_reaction(failure) {
        TxnReaction::Fenced => ClientError::ProducerFenced { operation, detail },
        TxnReaction::Abort => ClientError::TransactionAborted { operation, detail },
        TxnReaction::Retry => ClientError::Timeout {
            operation,
            after,
            detail: format!(
                "{detail}; the Kafka cluster at bootstrap.servers={bootstrap} did not answer \
                 in time (the call may be repeated, or the transaction aborted)"
            ),
        },
        TxnReaction::Fatal => ClientError::Fatal { operation, detail },
        TxnReaction::Refused => ClientError::Broker { operation, detail },
    }
}

fn config_error(what: &str, e: &KafkaError) -> ClientError {
    ClientError::Broker {
        operation: format!("creating the Kafka {what}"),
        detail: e.to_string(),
    }
}

fn partition_i32(tp: &TopicPartition) -> ClientResult<i32> {
    i32::try_from(tp.partition).map_err(|_| ClientError::Broker {
        operation: "addressing a partition".into(),
        detail: format!("partition {tp} is out of range"),
    })
}

fn tpl_of(partitions: &[TopicPartition]) -> ClientResult<TopicPartitionList> {
    let mut tpl = TopicPartitionList::with_capacity(partitions.len());
    for tp in partitions {
        tpl.add_partition(&tp.topic, partition_i32(tp)?);
    }
    Ok(tpl)
}

fn tpl_with_offsets(offsets: &[(TopicPartition, i64)]) -> ClientResult<TopicPartitionList> {
    let mut tpl = TopicPartitionList::with_capacity(offsets.len());
    for (tp, o) in offsets {
        tpl.add_partition_offset(&tp.topic, partition_i32(tp)?, Offset::Offset(*o))
            .map_err(|e| ClientError::Broker {
                operation: "addressing a partition".into(),
                detail: e.to_string(),
            })?;
    }
    Ok(tpl)
}

fn partitions_of(tpl: &TopicPartitionList) -> Vec<TopicPartition> {
    tpl.elements()
        .iter()
        .filter_map(|e| {
            u32::try_from(e.partition())
                .ok()
                .map(|p| TopicPartition::new(e.topic(), p))
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// Consumer
// ---------------------------------------------------------------------------------------

/// A rebalance librdkafka announced, waiting for the next [`Consumer::poll`].
#[derive(Debug)]
enum RebalanceEvent {
    Assign(Vec<TopicPartition>),
    Revoke {
        partitions: Vec<TopicPartition>,
        lost: bool,
    },
    Error(String),
}

/// The consumer's librdkafka context: records rebalances for the bridge (see the
/// [module docs](self)) and keeps diagnostics.
#[derive(Default)]
struct ConsumerCtx {
    diagnostics: Diagnostics,
    pending: Mutex<Vec<RebalanceEvent>>,
    /// No listener will come (closing): revocations are applied at once.
    closing: AtomicBool,
    /// The latest statistics librdkafka reported.
    statistics: Mutex<Option<ClientStatistics>>,
}

impl ClientContext for ConsumerCtx {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        self.diagnostics.log(level, fac, log_message);
    }

    fn stats(&self, statistics: rdkafka::Statistics) {
        *lock(&self.statistics) = Some(summarize(&statistics));
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.diagnostics.error(&error, reason);
    }
}

impl ConsumerContext for ConsumerCtx {
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        let partitions = partitions_of(tpl);
        let closing = self.closing.load(Ordering::SeqCst);
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS if !closing => {
                lock(&self.pending).push(RebalanceEvent::Assign(partitions));
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS if !closing => {
                lock(&self.pending).push(RebalanceEvent::Revoke {
                    partitions,
                    lost: consumer.assignment_lost(),
                });
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS
            | RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                // Closing: nobody is left to listen; let librdkafka complete at once.
                if let Err(e) = consumer.unassign() {
                    tracing::warn!(error = %e, "unassign while closing failed");
                }
            }
            other => {
                let code: RDKafkaErrorCode = other.into();
                if closing {
                    let _ = consumer.unassign();
                } else {
                    lock(&self.pending).push(RebalanceEvent::Error(code.to_string()));
                }
            }
        }
    }
}

/// A consumer on librdkafka: a group member (the main consumer) or a client with manual
/// assignment (the restore consumer).
struct KafkaConsumer {
    consumer: BaseConsumer<ConsumerCtx>,
    settings: Arc<Settings>,
    /// A group member (subscribes and commits), not the restore consumer.
    member: bool,
    group_id: String,
    client_id: String,
    max_records: usize,
    /// The next offset to read of every assigned partition.
    positions: BTreeMap<TopicPartition, i64>,
    paused: BTreeSet<TopicPartition>,
    /// Records librdkafka had already fetched for a partition when it was paused: handed
    /// out after it resumes, ahead of anything fetched later (re-seeking instead would
    /// purge librdkafka's prefetched data and cost a fetch round trip per pause).
    held: BTreeMap<TopicPartition, Vec<RawRecord>>,
    /// The member id, as the last group description showed it.
    member_id: Mutex<String>,
    /// Watermark answers of the group consumer: (low, high, when asked).
    watermark_cache: Mutex<HashMap<TopicPartition, (i64, i64, Instant)>>,
    /// Offsets of revoked partitions whose commit the group refused, for the next
    /// assignment.
    uncommitted: BTreeMap<TopicPartition, i64>,
    /// A commit was refused as from a fenced member: the next revocation is a lost one.
    fenced: bool,
    /// Told once that the broker cannot describe groups.
    describe_unsupported: AtomicBool,
    closed: bool,
}

impl KafkaConsumer {
    fn new(
        settings: Arc<Settings>,
        specific: ClientPrefix,
        group_id: &str,
        client_id: &str,
        member: bool,
    ) -> ClientResult<Self> {
        let config = settings.consumer_config(specific, group_id, client_id);
        let consumer = BaseConsumer::from_config_and_context(&config, ConsumerCtx::default())
            .map_err(|e| config_error("consumer", &e))?;
        Ok(Self {
            consumer,
            max_records: settings.max_poll_records(specific)?,
            settings,
            member,
            group_id: group_id.to_string(),
            client_id: client_id.to_string(),
            positions: BTreeMap::new(),
            paused: BTreeSet::new(),
            held: BTreeMap::new(),
            member_id: Mutex::new(String::new()),
            watermark_cache: Mutex::new(HashMap::new()),
            uncommitted: BTreeMap::new(),
            fenced: false,
            describe_unsupported: AtomicBool::new(false),
            closed: false,
        })
    }

    fn timeout(&self) -> Duration {
        self.settings.timeout
    }

    fn error(&self, operation: &str, e: &KafkaError) -> ClientError {
        client_error(
            operation,
            e,
            self.timeout(),
            &self.settings.bootstrap,
            &self.consumer.context().diagnostics,
        )
    }

    fn no_group(&self, operation: &str) -> ClientError {
        ClientError::Broker {
            operation: operation.into(),
            detail: "this consumer has no group".into(),
        }
    }

    fn check_open(&self) -> ClientResult<()> {
        if self.closed {
            Err(ClientError::Closed)
        } else {
            Ok(())
        }
    }

    /// Runs `f` until it succeeds, fails for good, or the API timeout passed.
    fn retrying<T>(
        &self,
        operation: &str,
        f: impl FnMut(Duration) -> Result<T, KafkaError>,
    ) -> ClientResult<T> {
        retry(self.timeout(), operation, f).map_err(|e| self.error(operation, &e))
    }

    /// Commits `offsets`; the outer error is ours (no group, bad partition), the inner one
    /// the cluster's.
    fn try_commit(
        &self,
        offsets: &[(TopicPartition, i64)],
    ) -> ClientResult<Result<(), KafkaError>> {
        if offsets.is_empty() {
            return Ok(Ok(()));
        }
        if !self.member {
            return Err(self.no_group("commit"));
        }
        let tpl = tpl_with_offsets(offsets)?;
        Ok(retry(self.timeout(), "committing offsets", |_| {
            self.consumer.commit(&tpl, CommitMode::Sync)
        }))
    }

    fn fetch_watermarks(&self, tp: &TopicPartition) -> ClientResult<(i64, i64)> {
        let p = partition_i32(tp)?;
        let operation = format!("reading the watermarks of {tp}");
        let (low, high) = self.retrying(&operation, |left| {
            self.consumer.fetch_watermarks(&tp.topic, p, left)
        })?;
        if self.member {
            lock(&self.watermark_cache).insert(tp.clone(), (low, high, Instant::now()));
        }
        Ok((low, high))
    }

    /// Handles the rebalances librdkafka announced (see the [module docs](self)). Returns
    /// whether there was any.
    fn run_rebalances(
        &mut self,
        listener: &mut dyn RebalanceListener,
        out: &mut Vec<ConsumedRecord>,
    ) -> crate::error::Result<bool> {
        let events = std::mem::take(&mut *lock(&self.consumer.context().pending));
        let any = !events.is_empty();
        for event in events {
            tracing::debug!(client = %self.client_id, ?event, "rebalance");
            match event {
                RebalanceEvent::Revoke { partitions, lost } => {
                    self.revoke(&partitions, lost, listener, out)?;
                }
                RebalanceEvent::Assign(partitions) => self.take_assignment(partitions, listener)?,
                RebalanceEvent::Error(detail) => {
                    tracing::warn!(client = %self.client_id, %detail, "rebalance error; giving up the assignment");
                    self.revoke(&self.assignment(), true, listener, out)?;
                }
            }
        }
        Ok(any)
    }

    fn revoke(
        &mut self,
        partitions: &[TopicPartition],
        lost: bool,
        listener: &mut dyn RebalanceListener,
        out: &mut Vec<ConsumedRecord>,
    ) -> crate::error::Result<()> {
        out.retain(|r| !partitions.contains(&r.partition));
        let mine: Vec<TopicPartition> = partitions
            .iter()
            .filter(|tp| self.positions.contains_key(tp))
            .cloned()
            .collect();
        let lost = lost || std::mem::take(&mut self.fenced);
        if !mine.is_empty() {
            let offsets = listener.on_partitions_revoked(&mine)?;
            let mut fenced = lost;
            if !lost {
                match self.try_commit(&offsets)? {
                    Ok(()) => {}
                    Err(e) if code_of(&e) == Some(RDKafkaErrorCode::RebalanceInProgress) => {
                        // The group takes no commits while members rejoin (librdkafka's
                        // mock; real brokers take them from members of the current
                        // generation). Kept for the next assignment: partitions that come
                        // back start there and are committed then; no one else can have
                        // owned them in between (eager protocol).
                        tracing::warn!(
                            client = %self.client_id,
                            error = %e,
                            "offsets of revoked partitions not committed; kept for the next assignment"
                        );
                        self.uncommitted.extend(offsets);
                    }
                    Err(e) if membership_error(code_of(&e)) => fenced = true,
                    Err(e) => return Err(self.error("committing offsets", &e).into()),
                }
            }
            if fenced {
                tracing::warn!(
                    client = %self.client_id,
                    partitions = mine.len(),
                    "the assignment was lost (fenced by the group): offsets are not committed, \
                     the records since the last commit will be processed again"
                );
                // The partitions may have been processed elsewhere since: an empty
                // assignment makes the listener close what it kept for them.
                listener.on_partitions_assigned(&[])?;
            }
        }
        self.consumer
            .unassign()
            .map_err(|e| self.error("unassign", &e))?;
        self.positions.clear();
        self.paused.clear();
        self.held.clear();
        lock(&self.watermark_cache).clear();
        Ok(())
    }

    fn take_assignment(
        &mut self,
        partitions: Vec<TopicPartition>,
        listener: &mut dyn RebalanceListener,
    ) -> crate::error::Result<()> {
        let committed = self.committed(&partitions)?;
        let kept = std::mem::take(&mut self.uncommitted);
        let mut positions = Vec::with_capacity(partitions.len());
        let mut late = Vec::new();
        for (tp, c) in partitions.iter().zip(committed) {
            let (low, _) = self.fetch_watermarks(tp)?;
            let mut start = c.unwrap_or(low).max(low);
            if let Some(&k) = kept.get(tp)
                && k > start
            {
                start = k;
                late.push((tp.clone(), k));
            }
            positions.push((tp.clone(), start));
        }
        let tpl = tpl_with_offsets(&positions)?;
        self.consumer
            .assign(&tpl)
            .map_err(|e| self.error("assign", &e))?;
        match self.try_commit(&late)? {
            Ok(()) => {}
            // The group is rebalancing again already: keep them for the next assignment
            // (positions start there either way), as when a revocation's commit is refused.
            Err(e) if membership_error(code_of(&e)) => {
                tracing::debug!(client = %self.client_id, error = %e, "kept offsets not committed yet");
                self.uncommitted.extend(late.iter().cloned());
            }
            Err(e) => return Err(self.error("committing offsets", &e).into()),
        }
        self.positions = positions.into_iter().collect();
        self.paused.clear();
        self.held.clear();
        listener.on_partitions_assigned(&partitions)?;
        Ok(())
    }

    /// Takes a record librdkafka returned: dropped when its partition is no longer
    /// assigned, or paused (then read again from its position on resume).
    fn take_record(&mut self, tp: TopicPartition, record: RawRecord) -> Option<ConsumedRecord> {
        if !self.positions.contains_key(&tp) {
            return None;
        }
        if self.paused.contains(&tp) {
            self.held.entry(tp).or_default().push(record);
            return None;
        }
        let next = record.offset + 1;
        self.positions.insert(tp.clone(), next);
        if self.member
            && let Some(entry) = lock(&self.watermark_cache).get_mut(&tp)
        {
            entry.1 = entry.1.max(next);
        }
        Some(ConsumedRecord {
            partition: tp,
            record,
        })
    }

    /// Moves positions past what librdkafka consumed without handing out a record:
    /// transaction markers. Its application position (`rd_kafka_position`) moves past
    /// them, and is reset by assign and seek, so it is never behind a seek; partitions
    /// paused here keep theirs (their records may be held). Called after a poll that
    /// returned nothing, so that a partition whose last offset is a marker is at its end
    /// (restoration completes, lag reaches 0) without a query per poll.
    fn move_past_markers(&mut self) {
        if self.positions.is_empty() {
            return;
        }
        let Ok(list) = self.consumer.position() else {
            return;
        };
        for e in list.elements() {
            let (Offset::Offset(at), Ok(partition)) = (e.offset(), u32::try_from(e.partition()))
            else {
                continue;
            };
            let tp = TopicPartition::new(e.topic(), partition);
            if self.paused.contains(&tp) || self.held.contains_key(&tp) {
                continue;
            }
            if let Some(pos) = self.positions.get_mut(&tp)
                && at > *pos
            {
                *pos = at;
            }
        }
    }

    /// Gives up the assignment and leaves the group, within the API timeout.
    fn shut_down(&mut self) {
        if self.closed {
            return;
        }
        self.closed = true;
        self.consumer
            .context()
            .closing
            .store(true, Ordering::SeqCst);
        if !self.positions.is_empty() || !lock(&self.consumer.context().pending).is_empty() {
            let _ = self.consumer.unassign();
        }
        self.positions.clear();
        if !self.member {
            return;
        }
        if let Err(e) = self.consumer.close_queue() {
            tracing::warn!(client = %self.client_id, error = %e, "closing the consumer failed");
            return;
        }
        let deadline = Instant::now() + self.timeout();
        while !self.consumer.closed() && Instant::now() < deadline {
            let _ = self.consumer.poll(Duration::from_millis(50));
        }
    }
}

/// The high watermark librdkafka last saw for `tp` in a fetch response (its
/// `rd_kafka_get_watermark_offsets`: a local lookup, no request). `None` before the first
/// fetch response of the partition.
fn cached_high_watermark(consumer: &BaseConsumer<ConsumerCtx>, tp: &TopicPartition) -> Option<i64> {
    let partition = i32::try_from(tp.partition).ok()?;
    let topic = std::ffi::CString::new(tp.topic.as_bytes()).ok()?;
    let (mut low, mut high) = (-1_i64, -1_i64);
    // SAFETY: the client handle is alive for as long as `consumer` is borrowed; `topic` is a
    // NUL-terminated string that outlives the call; `low` and `high` are valid for writes.
    // The function only reads librdkafka's cached partition state under its own lock (the
    // rdkafka crate wraps the querying variant, `fetch_watermarks`, but not this one).
    #[allow(unsafe_code)]
    let err = unsafe {
        rdkafka::bindings::rd_kafka_get_watermark_offsets(
            consumer.client().native_ptr(),
            topic.as_ptr(),
            partition,
            &mut low,
            &mut high,
        )
    };
    (err == RDKafkaRespErr::RD_KAFKA_RESP_ERR_NO_ERROR && high >= 0).then_some(high)
}

/// The group id, generation and member id of librdkafka's consumer group metadata
/// (`rd_kafka_consumer_group_metadata_*`; the rdkafka crate keeps them opaque). `None`
/// when the consumer has none (no `group.id`).
fn group_metadata_fields(consumer: &BaseConsumer<ConsumerCtx>) -> Option<(String, i64, String)> {
    use rdkafka::bindings as rd;
    /// A string librdkafka lent (`NULL`: empty).
    ///
    /// # Safety
    /// `p` is `NULL` or a NUL-terminated string alive for the call.
    #[allow(unsafe_code)]
    unsafe fn text(p: *const std::ffi::c_char) -> String {
        if p.is_null() {
            String::new()
        } else {
            // SAFETY: non-null, and NUL-terminated and alive by the caller's promise.
            unsafe { std::ffi::CStr::from_ptr(p) }
                .to_string_lossy()
                .into_owned()
        }
    }
    // SAFETY: the client handle is alive while `consumer` is borrowed. The function returns
    // a new object owned by the caller (or NULL), which is only read below (its getters
    // return strings it owns) and destroyed exactly once, after the last read.
    #[allow(unsafe_code)]
    unsafe {
        let metadata = rd::rd_kafka_consumer_group_metadata(consumer.client().native_ptr());
        if metadata.is_null() {
            return None;
        }
        let group_id = text(rd::rd_kafka_consumer_group_metadata_group_id(metadata));
        let member_id = text(rd::rd_kafka_consumer_group_metadata_member_id(metadata));
        let generation = rd::rd_kafka_consumer_group_metadata_generation_id(metadata);
        rd::rd_kafka_consumer_group_metadata_destroy(metadata);
        Some((group_id, i64::from(generation), member_id))
    }
}

/// A record librdkafka returned, copied out of its buffer.
fn owned_record(m: &rdkafka::message::BorrowedMessage<'_>) -> Option<(TopicPartition, RawRecord)> {
    let tp = TopicPartition::new(m.topic(), u32::try_from(m.partition()).ok()?);
    let mut headers = Headers::new();
    if let Some(h) = m.headers() {
        for Header { key, value } in h.iter() {
            headers.add(key, value.map(<[u8]>::to_vec));
        }
    }
    Some((
        tp,
        RawRecord {
            offset: m.offset(),
            timestamp: m.timestamp().to_millis().unwrap_or(-1),
            key: m.key().map(<[u8]>::to_vec),
            value: m.payload().map(<[u8]>::to_vec),
            headers,
        },
    ))
}

impl Drop for KafkaConsumer {
    fn drop(&mut self) {
        self.shut_down();
    }
}

impl Consumer for KafkaConsumer {
    fn statistics(&self) -> Option<ClientStatistics> {
        *lock(&self.consumer.context().statistics)
    }

    fn subscribe(&mut self, topics: &[String]) -> ClientResult<()> {
        self.check_open()?;
        if !self.member {
            return Err(ClientError::Broker {
                operation: "subscribe".into(),
                detail: "a consumer without group id cannot subscribe".into(),
            });
        }
        let names: Vec<&str> = topics.iter().map(String::as_str).collect();
        self.consumer
            .subscribe(&names)
            .map_err(|e| self.error("subscribe", &e))
    }

    fn assign(&mut self, partitions: &[(TopicPartition, i64)]) -> ClientResult<()> {
        self.check_open()?;
        let tpl = tpl_with_offsets(partitions)?;
        self.consumer
            .assign(&tpl)
            .map_err(|e| self.error("assign", &e))?;
        self.positions = partitions.iter().cloned().collect();
        self.paused.retain(|tp| self.positions.contains_key(tp));
        self.held.clear();
        if !self.paused.is_empty() {
            let paused: Vec<TopicPartition> = self.paused.iter().cloned().collect();
            self.consumer
                .pause(&tpl_of(&paused)?)
                .map_err(|e| self.error("pause", &e))?;
        }
        Ok(())
    }

    fn poll(
        &mut self,
        timeout: Duration,
        listener: &mut dyn RebalanceListener,
    ) -> crate::error::Result<Vec<ConsumedRecord>> {
        self.check_open()?;
        let deadline = Instant::now() + timeout;
        let mut out = Vec::new();
        if self.run_rebalances(listener, &mut out)? {
            return Ok(out);
        }
        // Records held while their partition was paused come first, in order.
        let resumed: Vec<TopicPartition> = self
            .held
            .keys()
            .filter(|tp| !self.paused.contains(*tp))
            .cloned()
            .collect();
        for tp in resumed {
            for record in self.held.remove(&tp).unwrap_or_default() {
                if let Some(r) = self.take_record(tp.clone(), record) {
                    out.push(r);
                }
            }
        }
        loop {
            let wait = if out.is_empty() {
                deadline.saturating_duration_since(Instant::now())
            } else {
                Duration::ZERO
            };
            let got = match self.consumer.poll(wait) {
                Some(Ok(m)) => {
                    let owned = owned_record(&m);
                    drop(m);
                    if let Some((tp, record)) = owned
                        && let Some(r) = self.take_record(tp, record)
                    {
                        out.push(r);
                    }
                    true
                }
                Some(Err(KafkaError::PartitionEOF(_))) => true,
                Some(Err(e @ KafkaError::MessageConsumptionFatal(_))) => {
                    return Err(self.error("consuming", &e).into());
                }
                Some(Err(e)) => {
                    // Transient (a broker went away, a topic is not there yet):
                    // librdkafka retries by itself.
                    tracing::debug!(client = %self.client_id, error = %e, "consumer error");
                    true
                }
                None => false,
            };
            if self.run_rebalances(listener, &mut out)? {
                return Ok(out);
            }
            if out.len() >= self.max_records {
                return Ok(out);
            }
            // Records keep coming without waiting: taken up to `max.poll.records` even
            // past the deadline (a zero timeout would otherwise take one record per poll).
            let past = Instant::now() >= deadline;
            if (!got && (past || !out.is_empty())) || (past && out.is_empty()) {
                if out.is_empty() {
                    self.move_past_markers();
                }
                return Ok(out);
            }
        }
    }

    fn pause(&mut self, partitions: &[TopicPartition]) -> ClientResult<()> {
        self.check_open()?;
        for tp in partitions {
            if !self.positions.contains_key(tp) {
                return Err(ClientError::NotAssigned(tp.clone()));
            }
        }
        self.consumer
            .pause(&tpl_of(partitions)?)
            .map_err(|e| self.error("pause", &e))?;
        self.paused.extend(partitions.iter().cloned());
        Ok(())
    }

    fn resume(&mut self, partitions: &[TopicPartition]) -> ClientResult<()> {
        self.check_open()?;
        let assigned: Vec<TopicPartition> = partitions
            .iter()
            .filter(|tp| self.positions.contains_key(tp))
            .cloned()
            .collect();
        for tp in partitions {
            self.paused.remove(tp);
        }
        if assigned.is_empty() {
            return Ok(());
        }
        self.consumer
            .resume(&tpl_of(&assigned)?)
            .map_err(|e| self.error("resume", &e))?;
        Ok(())
    }

    fn seek(&mut self, partition: &TopicPartition, offset: i64) -> ClientResult<()> {
        self.check_open()?;
        if !self.positions.contains_key(partition) {
            return Err(ClientError::NotAssigned(partition.clone()));
        }
        let p = partition_i32(partition)?;
        let operation = format!("seeking {partition} to {offset}");
        self.retrying(&operation, |left| {
            self.consumer
                .seek(&partition.topic, p, Offset::Offset(offset), left)
        })?;
        self.positions.insert(partition.clone(), offset);
        self.held.remove(partition);
        Ok(())
    }

    fn position(&self, partition: &TopicPartition) -> Option<i64> {
        self.positions.get(partition).copied()
    }

    fn commit(&mut self, offsets: &[(TopicPartition, i64)]) -> ClientResult<()> {
        self.check_open()?;
        match self.try_commit(offsets)? {
            Ok(()) => Ok(()),
            Err(e) if code_of(&e) == Some(RDKafkaErrorCode::RebalanceInProgress) => {
                // A rebalance started (the revocation comes in a next poll): kept for the
                // next assignment, as when a revocation's commit is refused the same way.
                tracing::debug!(client = %self.client_id, "commit refused during a rebalance; kept");
                self.uncommitted.extend(offsets.iter().cloned());
                Ok(())
            }
            Err(e) if membership_error(code_of(&e)) => {
                // Fenced (the session expired, e.g. during an outage) or the group is
                // rebalancing: the partitions are revoked as lost in a next poll and the
                // records since the last commit processed again (Kafka Streams' "task
                // migrated": not a failure of the app).
                tracing::warn!(
                    client = %self.client_id,
                    error = %e,
                    "the group refused the commit; the assignment will be given up as lost"
                );
                self.fenced = true;
                Ok(())
            }
            Err(e) => Err(self.error("committing offsets", &e)),
        }
    }

    fn committed(&self, partitions: &[TopicPartition]) -> ClientResult<Vec<Option<i64>>> {
        self.check_open()?;
        if !self.member {
            return Err(self.no_group("committed"));
        }
        if partitions.is_empty() {
            return Ok(Vec::new());
        }
        let tpl = tpl_of(partitions)?;
        let got = self.retrying("reading committed offsets", |left| {
            self.consumer.committed_offsets(tpl.clone(), left)
        })?;
        let mut by_tp: HashMap<(String, i32), Option<i64>> = HashMap::new();
        for e in got.elements() {
            let offset = match e.offset() {
                Offset::Offset(o) if o >= 0 => Some(o),
                _ => None,
            };
            by_tp.insert((e.topic().to_string(), e.partition()), offset);
        }
        Ok(partitions
            .iter()
            .map(|tp| {
                by_tp
                    .get(&(tp.topic.to_string(), tp.partition as i32))
                    .copied()
                    .flatten()
            })
            .collect())
    }

    fn watermarks(&self, partition: &TopicPartition) -> ClientResult<(i64, i64)> {
        self.check_open()?;
        if self.member
            && let Some(&(low, high, at)) = lock(&self.watermark_cache).get(partition)
        {
            let age = at.elapsed();
            let behind = self.positions.get(partition).is_some_and(|p| *p < high);
            if age < WATERMARK_TTL_AT_END || (behind && age < WATERMARK_TTL) {
                return Ok((low, high));
            }
        }
        self.fetch_watermarks(partition)
    }

    fn high_watermark_hint(&self, partition: &TopicPartition) -> Option<i64> {
        let from_fetches = cached_high_watermark(&self.consumer, partition);
        // The records handed out prove the end is at least past them.
        let position = self.positions.get(partition).copied();
        match (from_fetches, position) {
            (Some(h), Some(p)) => Some(h.max(p)),
            (h, _) => h,
        }
    }

    fn assignment(&self) -> Vec<TopicPartition> {
        self.positions.keys().cloned().collect()
    }

    fn member_id(&self) -> String {
        lock(&self.member_id).clone()
    }

    fn group_metadata(&self) -> Option<GroupMetadata> {
        if !self.member || self.closed {
            return None;
        }
        // librdkafka's copy is what the producer sends; the fields are read from a second
        // copy taken around it, again when a rebalance changed them in between.
        for _ in 0..3 {
            let before = group_metadata_fields(&self.consumer);
            let kafka = self.consumer.group_metadata()?;
            let after = group_metadata_fields(&self.consumer);
            if before == after {
                let (group_id, generation, member_id) =
                    after.unwrap_or_else(|| (self.group_id.clone(), -1, String::new()));
                return Some(GroupMetadata {
                    group_id,
                    generation,
                    member_id,
                    kafka: Some(Arc::new(kafka)),
                });
            }
        }
        // Rebalancing right now: the next poll completes it, and the offsets of a member
        // whose generation is over are refused (fenced) anyway.
        let kafka = self.consumer.group_metadata()?;
        Some(GroupMetadata {
            group_id: self.group_id.clone(),
            generation: -1,
            member_id: String::new(),
            kafka: Some(Arc::new(kafka)),
        })
    }

    fn group_members(&self) -> ClientResult<Vec<GroupMember>> {
        self.check_open()?;
        if !self.member {
            return Ok(Vec::new());
        }
        let me = || {
            let id = self.client_id.clone();
            *lock(&self.member_id) = id.clone();
            vec![GroupMember {
                member_id: id,
                client_id: self.client_id.clone(),
                assignment: self.assignment(),
            }]
        };
        if self.describe_unsupported.load(Ordering::Relaxed) {
            return Ok(me());
        }
        let operation = "describing the consumer group";
        // The group just assigned this member, so the broker is reachable: a broker that
        // drops the connection on the request (tansu 0.6) cannot describe groups either.
        let first = self
            .consumer
            .fetch_group_list(Some(&self.group_id), self.timeout().min(DESCRIBE_FIRST_TRY));
        let described = match first {
            Err(e) if code_of(&e) == Some(RDKafkaErrorCode::BrokerTransportFailure) => Err(e),
            Err(_) => retry(self.timeout(), operation, |left| {
                self.consumer.fetch_group_list(Some(&self.group_id), left)
            }),
            ok => ok,
        };
        let list = match described {
            Ok(list) => list,
            Err(e)
                if unsupported(code_of(&e))
                    || code_of(&e) == Some(RDKafkaErrorCode::BrokerTransportFailure) =>
            {
                tracing::warn!(
                    group = %self.group_id,
                    error = %e,
                    "the broker cannot describe consumer groups: each member sees only \
                     itself (standby placement and interactive-query metadata use the \
                     assignment announcements instead)"
                );
                self.describe_unsupported.store(true, Ordering::Relaxed);
                return Ok(me());
            }
            Err(e) => return Err(self.error(operation, &e)),
        };
        let mut members = Vec::new();
        for g in list.groups().iter().filter(|g| g.name() == self.group_id) {
            for m in g.members() {
                let assignment = match m.assignment() {
                    Some(bytes) if !bytes.is_empty() => decode_assignment(bytes)?,
                    _ => Vec::new(),
                };
                if m.client_id() == self.client_id {
                    *lock(&self.member_id) = m.id().to_string();
                }
                members.push(GroupMember {
                    member_id: m.id().to_string(),
                    client_id: m.client_id().to_string(),
                    assignment,
                });
            }
        }
        members.sort_by(|a, b| a.member_id.cmp(&b.member_id));
        Ok(members)
    }

    fn close(&mut self) -> ClientResult<()> {
        self.shut_down();
        Ok(())
    }
}

/// Decodes a member's assignment as the consumer protocol (`ConsumerProtocolAssignment`,
/// every version) writes it: version (i16), then an array (i32 count) of topics, each a
/// string (i16 length, UTF-8) and an array of i32 partitions, then user data (i32 length,
/// -1 for null) and nothing else we need. Integers are big-endian.
///
/// ```
/// use streams_core::client::TopicPartition;
/// use streams_core::client::kafka::decode_assignment;
///
/// let mut bytes = vec![0, 1, 0, 0, 0, 1, 0, 1, b'a', 0, 0, 0, 2];
/// bytes.extend([0, 0, 0, 0, 0, 0, 0, 3, 0xff, 0xff, 0xff, 0xff]);
/// assert_eq!(
///     decode_assignment(&bytes).unwrap(),
///     vec![TopicPartition::new("a", 0), TopicPartition::new("a", 3)]
/// );
/// ```
pub fn decode_assignment(bytes: &[u8]) -> ClientResult<Vec<TopicPartition>> {
    struct Reader<'a>(&'a [u8]);
    impl Reader<'_> {
        fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
            let (head, rest) = self.0.split_first_chunk::<N>()?;
            self.0 = rest;
            Some(*head)
        }
        fn i16(&mut self) -> Option<i16> {
            self.take::<2>().map(i16::from_be_bytes)
        }
        fn i32(&mut self) -> Option<i32> {
            self.take::<4>().map(i32::from_be_bytes)
        }
        fn string(&mut self) -> Option<String> {
            let len = usize::try_from(self.i16()?).ok()?;
            let (s, rest) = self.0.split_at_checked(len)?;
            self.0 = rest;
            String::from_utf8(s.to_vec()).ok()
        }
    }
    let bad = || ClientError::Broker {
        operation: "decoding a group member's assignment".into(),
        detail: format!(
            "malformed consumer protocol assignment ({} bytes)",
            bytes.len()
        ),
    };
    let mut r = Reader(bytes);
    let _version = r.i16().ok_or_else(bad)?;
    let topics = r.i32().ok_or_else(bad)?;
    let mut out = Vec::new();
    for _ in 0..topics.max(0) {
        let topic: Arc<str> = Arc::from(r.string().ok_or_else(bad)?);
        let n = r.i32().ok_or_else(bad)?;
        for _ in 0..n.max(0) {
            let p = r.i32().ok_or_else(bad)?;
            let p = u32::try_from(p).map_err(|_| bad())?;
            out.push(TopicPartition::new(topic.clone(), p));
        }
    }
    // User data follows (ignored).
    Ok(out)
}

// ---------------------------------------------------------------------------------------
// Producer
// ---------------------------------------------------------------------------------------

/// The producer's librdkafka context: collects delivery failures.
#[derive(Default)]
struct ProducerCtx {
    diagnostics: Diagnostics,
    failures: Mutex<Vec<String>>,
    /// Failed deliveries since the last report.
    failed: std::sync::atomic::AtomicU64,
}

impl ClientContext for ProducerCtx {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        self.diagnostics.log(level, fac, log_message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.diagnostics.error(&error, reason);
    }
}

impl ProducerContext for ProducerCtx {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _opaque: ()) {
        if let Err((e, m)) = result {
            // Records withdrawn on purpose (an aborted transaction's queued records, or a
            // producer dropped with records queued) were not refused by anyone.
            if matches!(
                code_of(e),
                Some(RDKafkaErrorCode::PurgeQueue | RDKafkaErrorCode::PurgeInflight)
            ) {
                return;
            }
            self.failed
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let mut failures = lock(&self.failures);
            // One is enough to fail the commit; keep a few for the message.
            if failures.len() < 3 {
                failures.push(format!("{}-{}: {e}", m.topic(), m.partition()));
            } else if failures.len() == 3 {
                failures.push("...".into());
            }
        }
    }
}

/// A transactional producer's own state.
#[derive(Debug)]
struct TxnState {
    /// Its `transactional.id`.
    id: String,
    /// A transaction was begun and not committed or aborted yet.
    open: bool,
}

/// A producer on librdkafka: idempotent, and transactional when made by
/// [`ClientSupplier::transactional_producer`] (see the [module docs](self#transactions)).
struct KafkaProducer {
    producer: BaseProducer<ProducerCtx>,
    settings: Arc<Settings>,
    /// Set for a transactional producer.
    txn: Option<TxnState>,
}

impl KafkaProducer {
    fn new(
        settings: Arc<Settings>,
        client_id: &str,
        transactional_id: Option<&str>,
    ) -> ClientResult<Self> {
        let config = match transactional_id {
            None => settings.producer_config(client_id),
            Some("") => {
                return Err(ClientError::Broker {
                    operation: "creating the Kafka transactional producer".into(),
                    detail: "the transactional id is empty".into(),
                });
            }
            Some(id) => settings.transactional_producer_config(client_id, id),
        };
        let producer = BaseProducer::from_config_and_context(&config, ProducerCtx::default())
            .map_err(|e| config_error("producer", &e))?;
        Ok(Self {
            producer,
            settings,
            txn: transactional_id.map(|id| TxnState {
                id: id.to_string(),
                open: false,
            }),
        })
    }

    fn error(&self, operation: &str, e: &KafkaError, after: Duration) -> ClientError {
        client_error(
            operation,
            e,
            after,
            &self.settings.bootstrap,
            &self.producer.context().diagnostics,
        )
    }

    /// The error of a transactional call (see [`TxnReaction`]). A refusal because of an
    /// earlier fatal error is classified by that error.
    fn txn_error(&self, operation: &str, e: &KafkaError, after: Duration) -> ClientError {
        let mut failure = TxnFailure::of(e);
        if failure.code == Some(RDKafkaErrorCode::Fatal)
            && let Some((code, _)) = self.producer.client().fatal_error()
        {
            failure.code = Some(code);
            failure.fatal = true;
        }
        let detail = match &self.txn {
            Some(t) => format!("{e} (transactional.id `{}`)", t.id),
            None => e.to_string(),
        };
        transaction_error(operation, detail, failure, after, &self.settings.bootstrap)
    }

    /// The producer's fatal error, if librdkafka raised one: fenced (a transactional
    /// producer whose id or epoch another producer took over) or fatal.
    fn fatal(&self, operation: &str) -> Option<ClientError> {
        let (code, reason) = self.producer.client().fatal_error()?;
        let operation = operation.to_string();
        let detail = format!("fatal producer error {code}: {reason}");
        Some(if self.txn.is_some() && fencing(Some(code)) {
            ClientError::ProducerFenced { operation, detail }
        } else {
            ClientError::Fatal { operation, detail }
        })
    }

    /// The delivery failures since the last call: how many, and the first few.
    fn take_failures(&self) -> Option<(u64, String)> {
        let ctx = self.producer.context();
        let failures = std::mem::take(&mut *lock(&ctx.failures));
        let failed = ctx.failed.swap(0, std::sync::atomic::Ordering::Relaxed);
        (!failures.is_empty()).then(|| (failed.max(1), failures.join("; ")))
    }

    fn failures(&self) -> ClientResult<()> {
        if self.txn.is_some()
            && let Some(e) = self.fatal("producing")
        {
            // Fenced: the failed deliveries are a consequence.
            self.take_failures();
            return Err(e);
        }
        if let Some((failed, detail)) = self.take_failures() {
            return Err(ClientError::Delivery { failed, detail });
        }
        self.fatal("producing").map_or(Ok(()), Err)
    }

    /// This producer's transactional state, or the error of `operation` on a producer
    /// that is not transactional.
    fn require_txn(&mut self, operation: &str) -> ClientResult<&mut TxnState> {
        self.txn
            .as_mut()
            .ok_or_else(|| super::not_transactional(operation))
    }

    fn set_open(&mut self, open: bool) {
        if let Some(t) = self.txn.as_mut() {
            t.open = open;
        }
    }

    /// The error of a refused send.
    fn send_error(&self, tp: &TopicPartition, e: &KafkaError, timeout: Duration) -> ClientError {
        let operation = format!("sending to {tp}");
        match code_of(e) {
            Some(RDKafkaErrorCode::UnknownPartition) => ClientError::Broker {
                operation,
                detail: "the partition does not exist".into(),
            },
            Some(RDKafkaErrorCode::UnknownTopic) => ClientError::UnknownTopic(tp.topic.to_string()),
            Some(RDKafkaErrorCode::QueueFull) => ClientError::Timeout {
                operation,
                after: timeout,
                detail: format!(
                    "the producer's queue stayed full: the Kafka cluster at \
                     bootstrap.servers={} does not take the records",
                    self.settings.bootstrap
                ),
            },
            Some(RDKafkaErrorCode::Fatal) => self
                .fatal(&operation)
                .unwrap_or_else(|| self.error(&operation, e, timeout)),
            // librdkafka takes records of a transactional producer only inside a healthy
            // transaction.
            Some(RDKafkaErrorCode::State) if self.txn.as_ref().is_some_and(|t| t.open) => {
                ClientError::TransactionAborted {
                    operation,
                    detail: "librdkafka takes no more records into this transaction: a \
                             delivery or request of it failed, and it must be aborted"
                        .into(),
                }
            }
            Some(RDKafkaErrorCode::State) if self.txn.is_some() => ClientError::Broker {
                operation,
                detail: "a transactional producer sends only inside a transaction \
                         (begin_transaction first)"
                    .into(),
            },
            _ => self.error(&operation, e, timeout),
        }
    }
}

impl Producer for KafkaProducer {
    fn send(&mut self, record: OutgoingRecord) -> ClientResult<()> {
        let partition = partition_i32(&record.partition)?;
        let mut headers = OwnedHeaders::new_with_capacity(record.headers.len());
        for (k, v) in &record.headers {
            headers = headers.insert(Header {
                key: k,
                value: v.as_deref(),
            });
        }
        let mut rec: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(&record.partition.topic)
            .partition(partition)
            .timestamp(record.timestamp)
            .headers(headers);
        if let Some(k) = &record.key {
            rec = rec.key(k.as_slice());
        }
        if let Some(v) = &record.value {
            rec = rec.payload(v.as_slice());
        }
        let timeout = self.settings.timeout;
        let deadline = Instant::now() + timeout;
        loop {
            match self.producer.send(rec) {
                Ok(()) => return Ok(()),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back))
                    if Instant::now() < deadline =>
                {
                    // The local queue is full: let deliveries complete, then try again.
                    rec = back;
                    self.producer.poll(Duration::from_millis(10));
                }
                Err((e, _)) => return Err(self.send_error(&record.partition, &e, timeout)),
            }
        }
    }

    fn poll(&mut self) -> ClientResult<()> {
        self.producer.poll(Duration::ZERO);
        self.failures()
    }

    fn flush(&mut self, timeout: Duration) -> ClientResult<()> {
        let flushed = self.producer.flush(timeout);
        let failures = self.failures();
        // Failed deliveries say what went wrong, unless the flush itself did not finish
        // (then records are still in flight and the app must not go on) and the producer
        // is still usable.
        if flushed.is_ok()
            || matches!(
                failures,
                Err(ClientError::Fatal { .. } | ClientError::ProducerFenced { .. })
            )
        {
            failures?;
        }
        flushed.map_err(|e| {
            let mut err = self.error("flushing the producer", &e, timeout);
            if let ClientError::Broker { .. } = err
                && timed_out(code_of(&e))
            {
                err = ClientError::Timeout {
                    operation: "flushing the producer".into(),
                    after: timeout,
                    detail: e.to_string(),
                };
            }
            err
        })
    }

    fn is_transactional(&self) -> bool {
        self.txn.is_some()
    }

    fn init_transactions(&mut self, timeout: Duration) -> ClientResult<()> {
        let operation = "init_transactions";
        self.require_txn(operation)?;
        self.producer
            .init_transactions(timeout)
            .map_err(|e| self.txn_error(operation, &e, timeout))?;
        self.set_open(false);
        Ok(())
    }

    fn begin_transaction(&mut self) -> ClientResult<()> {
        let operation = "begin_transaction";
        self.require_txn(operation)?;
        self.producer
            .begin_transaction()
            .map_err(|e| self.txn_error(operation, &e, Duration::ZERO))?;
        self.set_open(true);
        Ok(())
    }

    fn send_offsets_to_transaction(
        &mut self,
        offsets: &[(TopicPartition, i64)],
        group: &GroupMetadata,
        timeout: Duration,
    ) -> ClientResult<()> {
        let operation = "send_offsets_to_transaction";
        self.require_txn(operation)?;
        let Some(metadata) = group.kafka.as_deref() else {
            return Err(ClientError::Broker {
                operation: operation.into(),
                detail: format!(
                    "the metadata of group `{}` was not taken from a consumer of these \
                     clients (Consumer::group_metadata)",
                    group.group_id
                ),
            });
        };
        if offsets.is_empty() {
            return Ok(());
        }
        let tpl = tpl_with_offsets(offsets)?;
        self.producer
            .send_offsets_to_transaction(&tpl, metadata, timeout)
            .map_err(|e| self.txn_error(operation, &e, timeout))
    }

    fn commit_transaction(&mut self, timeout: Duration) -> ClientResult<()> {
        let operation = "commit_transaction";
        self.require_txn(operation)?;
        let deadline = Instant::now() + timeout;
        // Every record of the transaction is delivered (or failed) first: a failed delivery
        // fails the commit with its cause, and the transaction must be aborted (librdkafka
        // would refuse the commit too, naming only the first failed request).
        let flushed = self.producer.flush(timeout);
        if let Some(e) = self.fatal(operation) {
            self.take_failures();
            return Err(e);
        }
        if let Some((failed, detail)) = self.take_failures() {
            return Err(ClientError::TransactionAborted {
                operation: operation.into(),
                detail: format!(
                    "{failed} record(s) of the transaction could not be delivered: {detail}"
                ),
            });
        }
        if let Err(e) = flushed {
            return Err(self.txn_error(operation, &e, timeout));
        }
        let left = deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(1));
        self.producer
            .commit_transaction(left)
            .map_err(|e| self.txn_error(operation, &e, timeout))?;
        self.set_open(false);
        Ok(())
    }

    fn abort_transaction(&mut self, timeout: Duration) -> ClientResult<()> {
        let operation = "abort_transaction";
        self.require_txn(operation)?;
        let deadline = Instant::now() + timeout;
        // librdkafka's abort purges the queued records and then waits until their delivery
        // reports are taken; the rdkafka crate's producer receives them as events that only
        // its poll takes. So abort in short attempts (an unfinished abort resumes where it
        // stopped) and take the reports in between.
        let result = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let attempt = self
                .producer
                .abort_transaction(left.min(ABORT_SLICE).max(Duration::from_millis(1)));
            match attempt {
                Err(KafkaError::Transaction(e))
                    if e.is_retriable() && Instant::now() < deadline =>
                {
                    self.producer.poll(Duration::from_millis(10));
                }
                other => break other,
            }
        };
        // Whatever failed belonged to the aborted transaction.
        self.producer.poll(Duration::from_millis(1));
        self.take_failures();
        result.map_err(|e| self.txn_error(operation, &e, timeout))?;
        self.set_open(false);
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------
// Admin
// ---------------------------------------------------------------------------------------

/// The admin client's librdkafka context.
#[derive(Default)]
struct AdminCtx {
    diagnostics: Diagnostics,
}

impl ClientContext for AdminCtx {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        self.diagnostics.log(level, fac, log_message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.diagnostics.error(&error, reason);
    }
}

/// Topic administration and metadata on librdkafka's admin client.
struct KafkaAdmin {
    admin: AdminClient<AdminCtx>,
    settings: Arc<Settings>,
    /// Told once that the broker cannot delete records.
    delete_records_unsupported: AtomicBool,
}

impl KafkaAdmin {
    fn new(settings: Arc<Settings>) -> ClientResult<Self> {
        let admin =
            AdminClient::from_config_and_context(&settings.admin_config(), AdminCtx::default())
                .map_err(|e| config_error("admin client", &e))?;
        Ok(Self {
            admin,
            settings,
            delete_records_unsupported: AtomicBool::new(false),
        })
    }

    fn error(&self, operation: &str, e: &KafkaError) -> ClientError {
        client_error(
            operation,
            e,
            self.settings.timeout,
            &self.settings.bootstrap,
            &self.admin.inner().context().diagnostics,
        )
    }

    fn options(&self) -> AdminOptions {
        AdminOptions::new()
            .request_timeout(Some(self.settings.timeout))
            .operation_timeout(Some(self.settings.timeout))
    }

    /// Every topic with its partition count.
    fn metadata(&self, operation: &str) -> ClientResult<BTreeMap<String, u32>> {
        let deadline = Instant::now() + self.settings.timeout;
        let metadata = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self
                .admin
                .inner()
                .fetch_metadata(None, left.max(Duration::from_millis(1)))
            {
                Ok(m) => break m,
                Err(e) if retriable(code_of(&e)) && Instant::now() + RETRY_BACKOFF < deadline => {
                    std::thread::sleep(RETRY_BACKOFF);
                }
                Err(e) => return Err(self.error(operation, &e)),
            }
        };
        Ok(metadata
            .topics()
            .iter()
            .filter(|t| !t.partitions().is_empty())
            .map(|t| (t.name().to_string(), t.partitions().len() as u32))
            .collect())
    }
}

impl Admin for KafkaAdmin {
    fn create_topic(&self, topic: &NewTopic) -> ClientResult<()> {
        let partitions = i32::try_from(topic.partitions).map_err(|_| ClientError::Broker {
            operation: format!("creating topic `{}`", topic.name),
            detail: "too many partitions".into(),
        })?;
        let replication = topic
            .replication_factor
            .unwrap_or(self.settings.replication_factor);
        let retention = topic.retention_ms.map(|r| r.to_string());
        let mut new = RdNewTopic::new(
            &topic.name,
            partitions,
            TopicReplication::Fixed(i32::from(replication)),
        );
        if topic.compact {
            // A compacted topic with a time retention (window and session changelogs) is
            // also cleaned by time, as in Kafka Streams.
            let policy = if topic.retention_ms.is_some_and(|r| r > 0) {
                "compact,delete"
            } else {
                "compact"
            };
            new = new.set("cleanup.policy", policy);
        }
        if let Some(r) = &retention {
            new = new.set("retention.ms", r);
        }
        let operation = format!("creating topic `{}`", topic.name);
        let results = block_on(self.admin.create_topics([&new], &self.options()))
            .map_err(|e| self.error(&operation, &e))?;
        for r in results {
            match r {
                Ok(_) => {}
                Err((name, RDKafkaErrorCode::TopicAlreadyExists)) => {
                    return Err(ClientError::TopicExists(name));
                }
                Err((_, code)) => {
                    return Err(self.error(&operation, &KafkaError::AdminOp(code)));
                }
            }
        }
        // Wait (within the bound) until the metadata shows it, so that what follows sees it.
        let deadline = Instant::now() + self.settings.timeout;
        while Instant::now() < deadline {
            if self.metadata(&operation)?.get(&topic.name) == Some(&topic.partitions) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        tracing::warn!(topic = %topic.name, "created, but not in the metadata yet");
        Ok(())
    }

    fn topics(&self) -> ClientResult<BTreeMap<String, u32>> {
        self.metadata("reading the topics' metadata")
    }

    fn delete_topic(&self, topic: &str) -> ClientResult<()> {
        let operation = format!("deleting topic `{topic}`");
        let results = block_on(self.admin.delete_topics(&[topic], &self.options()))
            .map_err(|e| self.error(&operation, &e))?;
        for r in results {
            match r {
                Ok(_) => {}
                Err((name, RDKafkaErrorCode::UnknownTopicOrPartition)) => {
                    return Err(ClientError::UnknownTopic(name));
                }
                Err((_, code)) => return Err(self.error(&operation, &KafkaError::AdminOp(code))),
            }
        }
        Ok(())
    }

    fn delete_records(&self, partition: &TopicPartition, offset: i64) -> ClientResult<()> {
        if self.delete_records_unsupported.load(Ordering::Relaxed) {
            return Ok(());
        }
        let operation = format!("deleting the records of {partition} before offset {offset}");
        let tpl = tpl_with_offsets(&[(partition.clone(), offset)])?;
        let result = block_on(self.admin.delete_records(&tpl, &self.options())).and_then(|tpl| {
            match tpl.elements().first().map(|e| e.error()) {
                Some(Err(e)) => Err(e),
                _ => Ok(()),
            }
        });
        match result {
            Ok(()) => Ok(()),
            Err(e) if unsupported(code_of(&e)) => {
                tracing::warn!(
                    error = %e,
                    "the broker cannot delete records: repartition topics keep their records \
                     until retention removes them"
                );
                self.delete_records_unsupported
                    .store(true, Ordering::Relaxed);
                Ok(())
            }
            Err(e) => Err(self.error(&operation, &e)),
        }
    }
}

/// Runs a future to completion on this thread. The admin client's futures are completed by
/// its own polling thread and carry librdkafka's request timeout, so this never waits
/// unbounded; unlike a tokio runtime it also works inside async code.
fn block_on<F: std::future::Future>(future: F) -> F::Output {
    struct ThreadWaker(std::thread::Thread);
    impl Wake for ThreadWaker {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(ThreadWaker(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        if let Poll::Ready(v) = future.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::park();
    }
}

/// The figures the runtime keeps from librdkafka's statistics: the mean broker round-trip
/// time (over brokers that measured one) and the consumer lag summed over the partitions
/// that have one.
fn summarize(statistics: &rdkafka::Statistics) -> ClientStatistics {
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

/// Sets `key` to the `value` the runtime depends on, warning when the configuration said
/// otherwise (the configured value is ignored).
fn force_setting(c: &mut ClientConfig, client: &str, key: &str, value: &str) {
    if let Some(old) = c.get(key)
        && old != value
    {
        tracing::warn!(
            client,
            setting = key,
            value = old,
            used = value,
            "the runtime needs this client setting; the configured value is ignored"
        );
    }
    c.set(key, value);
}

/// The `group.instance.id` of one group consumer: the configured id and the stream thread's
/// number from the consumer's client id (`...-StreamThread-<n>-consumer`), else the whole
/// client id.
fn static_member_id(base: &str, client_id: &str) -> String {
    let thread = client_id
        .rsplit_once("-StreamThread-")
        .map(|(_, rest)| rest.trim_end_matches("-consumer"))
        .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
    match thread {
        Some(n) => format!("{base}-{n}"),
        None => format!("{base}-{client_id}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(version: i16, topics: &[(&str, &[i32])], user_data: Option<&[u8]>) -> Vec<u8> {
        let mut b = version.to_be_bytes().to_vec();
        b.extend((topics.len() as i32).to_be_bytes());
        for (t, ps) in topics {
            b.extend((t.len() as i16).to_be_bytes());
            b.extend(t.as_bytes());
            b.extend((ps.len() as i32).to_be_bytes());
            for p in *ps {
                b.extend(p.to_be_bytes());
            }
        }
        match user_data {
            Some(d) => {
                b.extend((d.len() as i32).to_be_bytes());
                b.extend(d);
            }
            None => b.extend((-1i32).to_be_bytes()),
        }
        b
    }

    #[test]
    fn static_member_ids_are_per_stream_thread() {
        assert_eq!(
            static_member_id("web-1", "app-1a2b-srv-h_80-StreamThread-2-consumer"),
            "web-1-2"
        );
        assert_eq!(static_member_id("web-1", "tool"), "web-1-tool");
    }

    #[test]
    fn assignments_decode_from_the_consumer_protocol() {
        let bytes = encode(3, &[("words", &[0, 2]), ("counts", &[1])], Some(b"xyz"));
        assert_eq!(
            decode_assignment(&bytes).unwrap(),
            vec![
                TopicPartition::new("words", 0),
                TopicPartition::new("words", 2),
                TopicPartition::new("counts", 1),
            ]
        );
        let empty = encode(0, &[], None);
        assert!(decode_assignment(&empty).unwrap().is_empty());
        // Truncated: an error, not a panic.
        for cut in 1..bytes.len() - 7 {
            assert!(decode_assignment(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        assert!(decode_assignment(&encode(0, &[("t", &[-1])], None)).is_err());
    }

    #[test]
    fn settings_keep_what_the_runtime_needs() {
        let config = StreamsConfig::new("app")
            .with_bootstrap_servers(["127.0.0.1:9092"])
            .with_client_property(ClientPrefix::Consumer, "enable.auto.commit", "true")
            .with_client_property(ClientPrefix::Consumer, "fetch.min.bytes", "10")
            .with_client_property(ClientPrefix::MainConsumer, "fetch.min.bytes", "20")
            .with_client_property(ClientPrefix::Consumer, "max.poll.records", "7")
            .with_client_property(ClientPrefix::Producer, "linger.ms", "50");
        let s = Settings::from_config(&config).unwrap();
        let main = s.consumer_config(ClientPrefix::MainConsumer, "app", "c");
        assert_eq!(main.get("enable.auto.commit"), Some("false"));
        assert_eq!(main.get("group.id"), Some("app"));
        assert_eq!(main.get("partition.assignment.strategy"), Some("range"));
        assert_eq!(main.get("fetch.min.bytes"), Some("20"));
        assert_eq!(main.get("max.poll.records"), None);
        let restore = s.consumer_config(ClientPrefix::RestoreConsumer, "app-restore", "r");
        assert_eq!(restore.get("fetch.min.bytes"), Some("10"));
        assert_eq!(s.max_poll_records(ClientPrefix::MainConsumer).unwrap(), 7);
        let producer = s.producer_config("p");
        assert_eq!(producer.get("enable.idempotence"), Some("true"));
        assert_eq!(producer.get("linger.ms"), Some("50"));
        assert!(Settings::from_config(&StreamsConfig::new("app")).is_err());
    }

    /// TLS and SASL settings reach librdkafka, which this build supports (OpenSSL): the
    /// clients are made (librdkafka refuses `SASL_SSL` at creation when built without
    /// it), and the password never shows in the config's Debug output.
    #[test]
    fn tls_and_sasl_settings_pass_through_and_the_build_supports_them() {
        use rdkafka::consumer::BaseConsumer;
        use rdkafka::producer::BaseProducer;
        let secret = "s3cr3t-pw";
        let mut config = StreamsConfig::new("app").with_bootstrap_servers(["127.0.0.1:9093"]);
        for prefix in [ClientPrefix::Consumer, ClientPrefix::Producer] {
            for (k, v) in [
                ("security.protocol", "SASL_SSL"),
                ("sasl.mechanisms", "SCRAM-SHA-512"),
                ("sasl.username", "app"),
                ("sasl.password", secret),
                ("ssl.endpoint.identification.algorithm", "https"),
            ] {
                config = config.with_client_property(prefix, k, v);
            }
        }
        assert!(!format!("{config:?}").contains(secret));
        let s = Settings::from_config(&config).unwrap();
        let consumer = s.consumer_config(ClientPrefix::MainConsumer, "app", "c");
        assert_eq!(consumer.get("security.protocol"), Some("SASL_SSL"));
        assert_eq!(consumer.get("sasl.password"), Some(secret));
        consumer.create::<BaseConsumer>().unwrap();
        let producer = s.producer_config("p");
        assert_eq!(producer.get("sasl.mechanisms"), Some("SCRAM-SHA-512"));
        producer.create::<BaseProducer>().unwrap();
        // Mutual TLS settings are accepted too.
        let mut tls = s.producer_config("p");
        tls.set("security.protocol", "SSL");
        tls.set("ssl.certificate.location", "/nonexistent/cert.pem");
        let refused = tls.create::<BaseProducer>().err().map(|e| e.to_string());
        // librdkafka reads the file at creation: the error names it, not a missing feature.
        assert!(
            refused
                .as_deref()
                .is_some_and(|e| e.contains("cert.pem") || e.contains("certificate")),
            "{refused:?}"
        );
    }
}

/// Transactions on librdkafka's mock cluster, or on the Kafka cluster named by
/// `STREAMS_TEST_KAFKA` (then the assertions the mock cannot meet are made instead of its
/// documented gaps, and the fault-injection tests are skipped).
#[cfg(test)]
mod txn_tests {
    use super::*;
    use crate::client::NoRebalanceListener;
    use rdkafka::mocking::MockCluster;
    use rdkafka::producer::DefaultProducerContext;
    use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};

    const T: Duration = Duration::from_secs(20);

    struct Fixture {
        mock: Option<MockCluster<'static, DefaultProducerContext>>,
        bootstrap: String,
        suffix: String,
    }

    impl Fixture {
        fn new() -> Self {
            match std::env::var("STREAMS_TEST_KAFKA") {
                Ok(bootstrap) if !bootstrap.is_empty() => {
                    let nanos = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .unwrap()
                        .as_nanos();
                    Self {
                        mock: None,
                        bootstrap,
                        suffix: format!("-{}-{nanos:x}", std::process::id()),
                    }
                }
                _ => {
                    let mock = MockCluster::new(1).unwrap();
                    Self {
                        bootstrap: mock.bootstrap_servers(),
                        mock: Some(mock),
                        suffix: String::new(),
                    }
                }
            }
        }

        fn is_mock(&self) -> bool {
            self.mock.is_some()
        }

        fn name(&self, base: &str) -> String {
            format!("{base}{}", self.suffix)
        }

        /// An exactly-once configuration (read_committed consumers) with test timings.
        fn config(&self, app: &str) -> StreamsConfig {
            StreamsConfig::new(self.name(app))
                .with_bootstrap_servers(self.bootstrap.split(','))
                .with_processing_guarantee(ProcessingGuarantee::ExactlyOnceV2)
                .with_default_api_timeout(T)
                .with_client_property(ClientPrefix::Consumer, "session.timeout.ms", "6000")
                .with_client_property(ClientPrefix::Consumer, "heartbeat.interval.ms", "300")
                .with_client_property(ClientPrefix::Consumer, "fetch.wait.max.ms", "50")
        }

        fn clients(&self, config: &StreamsConfig) -> KafkaClients {
            KafkaClients::new(config).unwrap()
        }

        fn topic(&self, clients: &KafkaClients, base: &str, partitions: u32) -> String {
            let name = self.name(base);
            match &self.mock {
                Some(m) => m.create_topic(&name, partitions as i32, 1).unwrap(),
                None => clients
                    .admin()
                    .unwrap()
                    .create_topic(&NewTopic::new(&name, partitions))
                    .unwrap(),
            }
            name
        }

        fn mock(&self) -> &MockCluster<'static, DefaultProducerContext> {
            self.mock.as_ref().unwrap()
        }
    }

    fn record(topic: &str, partition: u32, value: &str) -> OutgoingRecord {
        OutgoingRecord {
            partition: TopicPartition::new(topic, partition),
            timestamp: 1_700_000_000_000,
            key: Some(value.as_bytes().to_vec()),
            value: Some(value.as_bytes().to_vec()),
            headers: Vec::new(),
        }
    }

    /// The values in each partition of `topic`, read from the beginning until `expect`
    /// records came (and half a second more, to see any extra one), or `T` passed.
    fn read_back(
        clients: &KafkaClients,
        topic: &str,
        partitions: u32,
        expect: usize,
    ) -> BTreeMap<u32, Vec<String>> {
        let mut c = clients.restore_consumer("reader").unwrap();
        let assignment: Vec<(TopicPartition, i64)> = (0..partitions)
            .map(|p| (TopicPartition::new(topic, p), 0))
            .collect();
        c.assign(&assignment).unwrap();
        let mut out: BTreeMap<u32, Vec<String>> = BTreeMap::new();
        let mut n = 0;
        let deadline = Instant::now() + T;
        let mut settle: Option<Instant> = None;
        while Instant::now() < deadline && settle.is_none_or(|s| Instant::now() < s) {
            for r in c
                .poll(Duration::from_millis(100), &mut NoRebalanceListener)
                .unwrap()
            {
                let value = String::from_utf8(r.record.value.unwrap()).unwrap();
                out.entry(r.partition.partition).or_default().push(value);
                n += 1;
            }
            if n >= expect && settle.is_none() {
                settle = Some(Instant::now() + Duration::from_millis(500));
            }
        }
        out
    }

    fn expected(values: &[(u32, &str)]) -> BTreeMap<u32, Vec<String>> {
        let mut m: BTreeMap<u32, Vec<String>> = BTreeMap::new();
        for (p, v) in values {
            m.entry(*p).or_default().push((*v).to_string());
        }
        m
    }

    /// A group consumer of `topic` that joined its group (the mock waits 3 s before a new
    /// group's first rebalance).
    fn joined_consumer(
        clients: &KafkaClients,
        group: &str,
        topic: &str,
        partitions: usize,
    ) -> Box<dyn Consumer> {
        let mut c = clients.consumer(group, "member").unwrap();
        c.subscribe(&[topic.to_string()]).unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        while c.assignment().len() < partitions {
            assert!(Instant::now() < deadline, "the group never formed");
            c.poll(Duration::from_millis(100), &mut NoRebalanceListener)
                .unwrap();
        }
        c
    }

    fn txn_producer(clients: &KafkaClients, id: &str) -> Box<dyn Producer> {
        let mut p = clients.transactional_producer("producer", id).unwrap();
        assert!(p.is_transactional());
        p.init_transactions(T).unwrap();
        p
    }

    #[test]
    fn exactly_once_configs_force_read_committed_and_the_transactional_id() {
        let base = StreamsConfig::new("app")
            .with_bootstrap_servers(["127.0.0.1:9092"])
            .with_client_property(
                ClientPrefix::Consumer,
                "isolation.level",
                "read_uncommitted",
            )
            .with_client_property(ClientPrefix::Producer, "transactional.id", "mine")
            .with_client_property(ClientPrefix::Producer, "enable.idempotence", "false");
        let eos = Settings::from_config(
            &base
                .clone()
                .with_processing_guarantee(ProcessingGuarantee::ExactlyOnceV2),
        )
        .unwrap();
        // Main, restore and (through the restore consumer) global consumers.
        for (client, group) in [
            (ClientPrefix::MainConsumer, "app"),
            (ClientPrefix::RestoreConsumer, "app-restore"),
        ] {
            let c = eos.consumer_config(client, group, "c");
            assert_eq!(
                c.get("isolation.level"),
                Some("read_committed"),
                "{client:?}"
            );
        }
        let alo = Settings::from_config(&base).unwrap();
        let c = alo.consumer_config(ClientPrefix::MainConsumer, "app", "c");
        assert_eq!(c.get("isolation.level"), Some("read_uncommitted"));
        let p = eos.transactional_producer_config("p", "app-StreamThread-1");
        assert_eq!(p.get("transactional.id"), Some("app-StreamThread-1"));
        assert_eq!(p.get("enable.idempotence"), Some("true"));
        assert_eq!(p.get("transaction.timeout.ms"), Some("10000"));
        let longer = Settings::from_config(&base.with_client_property(
            ClientPrefix::Producer,
            "transaction.timeout.ms",
            "30000",
        ))
        .unwrap();
        assert_eq!(
            longer
                .transactional_producer_config("p", "t")
                .get("transaction.timeout.ms"),
            Some("30000")
        );
    }

    #[test]
    fn transactional_failures_map_to_the_reaction_the_runtime_needs() {
        use RDKafkaErrorCode as C;
        let f = |code: C, fatal: bool, retriable: bool, abortable: bool| TxnFailure {
            code: Some(code),
            fatal,
            retriable,
            abortable,
        };
        let cases = [
            // librdkafka's fatal "fenced by a newer instance", and the broker's codes.
            (f(C::Fenced, true, false, false), TxnReaction::Fenced),
            (
                f(C::ProducerFenced, true, false, false),
                TxnReaction::Fenced,
            ),
            (
                f(C::InvalidProducerEpoch, false, false, true),
                TxnReaction::Fenced,
            ),
            // KIP-447: offsets of a member the group moved on from (abortable in librdkafka).
            (
                f(C::IllegalGeneration, false, false, true),
                TxnReaction::Fenced,
            ),
            (
                f(C::UnknownMemberId, false, false, true),
                TxnReaction::Fenced,
            ),
            (
                f(C::FencedInstanceId, false, false, true),
                TxnReaction::Fenced,
            ),
            (
                f(C::TopicAuthorizationFailed, false, false, true),
                TxnReaction::Abort,
            ),
            (
                f(C::MessageSizeTooLarge, false, false, true),
                TxnReaction::Abort,
            ),
            (
                f(C::OperationTimedOut, false, true, false),
                TxnReaction::Retry,
            ),
            (
                f(C::CoordinatorNotAvailable, false, true, false),
                TxnReaction::Retry,
            ),
            (
                f(C::InvalidTransactionalState, true, false, false),
                TxnReaction::Fatal,
            ),
            (f(C::State, false, false, false), TxnReaction::Refused),
        ];
        for (failure, reaction) in cases {
            assert_eq!(txn_reaction(failure), reaction, "{failure:?}");
        }
        // Failures without librdkafka's flags: a flush that did not finish, a send refused
        // after a fatal error.
        let flush = TxnFailure::of(&KafkaError::Flush(C::OperationTimedOut));
        assert_eq!(txn_reaction(flush), TxnReaction::Retry);
        let fatal = TxnFailure::of(&KafkaError::MessageProduction(C::Fatal));
        assert_eq!(txn_reaction(fatal), TxnReaction::Fatal);
        let e = transaction_error("commit_transaction", "x".into(), flush, T, "b:9092");
        assert!(e.is_retriable() && !e.is_task_migrated(), "{e}");
        let e = transaction_error(
            "commit_transaction",
            "x".into(),
            f(C::Fenced, true, false, false),
            T,
            "b:9092",
        );
        assert!(matches!(e, ClientError::ProducerFenced { .. }) && e.is_task_migrated());
    }

    #[test]
    fn a_committed_transaction_delivers_its_records_and_offsets_and_an_abort_does_not() {
        let fx = Fixture::new();
        let config = fx.config("txn-commit");
        let clients = fx.clients(&config);
        let input = fx.topic(&clients, "in", 2);
        let output = fx.topic(&clients, "out", 2);
        let group = config.application_id().to_string();
        let consumer = joined_consumer(&clients, &group, &input, 2);
        let metadata = consumer.group_metadata().unwrap();
        assert_eq!(metadata.group_id, group);
        assert!(metadata.generation >= 1, "{metadata:?}");
        assert!(!metadata.member_id.is_empty(), "{metadata:?}");
        assert!(metadata.kafka.is_some());
        // A consumer without group has no metadata.
        assert!(
            clients
                .restore_consumer("r")
                .unwrap()
                .group_metadata()
                .is_none()
        );

        let in0 = TopicPartition::new(input.as_str(), 0);
        let in1 = TopicPartition::new(input.as_str(), 1);
        let mut p = txn_producer(&clients, &fx.name("txn-commit-1"));
        p.begin_transaction().unwrap();
        let sent = [(0, "a"), (1, "b"), (0, "c")];
        for (partition, v) in sent {
            p.send(record(&output, partition, v)).unwrap();
        }
        p.send_offsets_to_transaction(&[(in0.clone(), 3), (in1.clone(), 1)], &metadata, T)
            .unwrap();
        p.commit_transaction(T).unwrap();
        assert_eq!(read_back(&clients, &output, 2, sent.len()), expected(&sent));
        let committed = consumer.committed(&[in0.clone(), in1.clone()]).unwrap();
        if fx.is_mock() {
            // The mock's TxnOffsetCommit answers without storing the offsets.
            assert_eq!(committed, vec![None, None]);
        } else {
            assert_eq!(committed, vec![Some(3), Some(1)]);
        }

        // Aborted: neither its offsets nor (for read_committed readers) its records count.
        p.begin_transaction().unwrap();
        p.send(record(&output, 1, "aborted")).unwrap();
        p.send_offsets_to_transaction(&[(in0.clone(), 9)], &metadata, T)
            .unwrap();
        p.abort_transaction(T).unwrap();
        p.poll().unwrap();
        let after = consumer.committed(&[in0.clone(), in1.clone()]).unwrap();
        assert_eq!(after, committed);

        // The producer goes on with the next transaction.
        p.begin_transaction().unwrap();
        p.send(record(&output, 1, "d")).unwrap();
        p.send_offsets_to_transaction(&[(in1.clone(), 2)], &metadata, T)
            .unwrap();
        p.commit_transaction(T).unwrap();
        if !fx.is_mock() {
            assert_eq!(
                consumer.committed(&[in0, in1]).unwrap(),
                vec![Some(3), Some(2)]
            );
        }
    }

    #[test]
    fn an_abort_withdraws_queued_records_without_reporting_them_as_failed() {
        let fx = Fixture::new();
        // Records stay queued (5 s linger; librdkafka wants it below `message.timeout.ms`,
        // which follows `transaction.timeout.ms`) until the abort purges them.
        let config = fx.config("txn-abort").with_client_property(
            ClientPrefix::Producer,
            "linger.ms",
            "5000",
        );
        let clients = fx.clients(&config);
        let output = fx.topic(&clients, "out", 2);
        let mut p = txn_producer(&clients, &fx.name("txn-abort-1"));
        p.begin_transaction().unwrap();
        for i in 0..5 {
            p.send(record(&output, i % 2, &format!("withdrawn-{i}")))
                .unwrap();
        }
        p.poll().unwrap();
        let t0 = Instant::now();
        p.abort_transaction(T).unwrap();
        // Without taking the purged records' reports, librdkafka's abort waits out its
        // whole timeout.
        assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
        p.poll().unwrap();
        p.flush(T).unwrap();
        // A commit delivers at once, whatever the linger.
        p.begin_transaction().unwrap();
        let sent = [(0, "kept-1"), (1, "kept-2")];
        for (partition, v) in sent {
            p.send(record(&output, partition, v)).unwrap();
        }
        p.commit_transaction(T).unwrap();
        assert_eq!(read_back(&clients, &output, 2, sent.len()), expected(&sent));
    }

    #[test]
    fn a_second_producer_with_the_same_transactional_id() {
        let fx = Fixture::new();
        let config = fx.config("txn-twice");
        let clients = fx.clients(&config);
        let output = fx.topic(&clients, "out", 1);
        let id = fx.name("txn-twice-1");
        let mut first = txn_producer(&clients, &id);
        first.begin_transaction().unwrap();
        first.send(record(&output, 0, "zombie")).unwrap();
        first.flush(T).unwrap();
        let mut second = txn_producer(&clients, &id);
        let committed = first.commit_transaction(T);
        if fx.is_mock() {
            // The mock gives every InitProducerId a new producer id instead of bumping the
            // epoch of the id's producer: nobody is fenced.
            committed.unwrap();
        } else {
            let e = committed.unwrap_err();
            assert!(matches!(e, ClientError::ProducerFenced { .. }), "{e}");
            let e = first.send(record(&output, 0, "late")).unwrap_err();
            assert!(matches!(e, ClientError::ProducerFenced { .. }), "{e}");
        }
        second.begin_transaction().unwrap();
        second.send(record(&output, 0, "new")).unwrap();
        second.commit_transaction(T).unwrap();
    }

    /// A transactional producer whose group metadata comes from a consumer that never
    /// joined (generation -1: offsets are taken without zombie checks).
    fn unjoined_metadata(
        clients: &KafkaClients,
        group: &str,
    ) -> (Box<dyn Consumer>, GroupMetadata) {
        let c = clients.consumer(group, "member").unwrap();
        let m = c.group_metadata().unwrap();
        assert_eq!((m.group_id.as_str(), m.generation), (group, -1));
        (c, m)
    }

    #[test]
    fn fencing_answers_of_the_broker_surface_as_producer_fenced() {
        let fx = Fixture::new();
        if !fx.is_mock() {
            return; // fault injection needs the mock
        }
        let config = fx.config("txn-fenced");
        let clients = fx.clients(&config);
        let output = fx.topic(&clients, "out", 1);
        let (_c, metadata) = unjoined_metadata(&clients, "txn-fenced");
        let offsets = [(TopicPartition::new(output.as_str(), 0), 1)];

        // The coordinator fences the commit: the producer is done for.
        let mut p = txn_producer(&clients, "fenced-1");
        p.begin_transaction().unwrap();
        p.send(record(&output, 0, "x")).unwrap();
        fx.mock().request_errors(
            RDKafkaApiKey::EndTxn,
            &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_PRODUCER_FENCED],
        );
        let e = p.commit_transaction(T).unwrap_err();
        assert!(matches!(e, ClientError::ProducerFenced { .. }), "{e}");
        assert!(e.is_task_migrated() && !e.is_fatal());
        let e = p.send(record(&output, 0, "y")).unwrap_err();
        assert!(matches!(e, ClientError::ProducerFenced { .. }), "{e}");
        let e = p.begin_transaction().unwrap_err();
        assert!(matches!(e, ClientError::ProducerFenced { .. }), "{e}");
        // A new producer with the same id takes over.
        let mut p = txn_producer(&clients, "fenced-1");
        p.begin_transaction().unwrap();
        p.send(record(&output, 0, "z")).unwrap();
        p.commit_transaction(T).unwrap();

        // A produce request refused for an old epoch (a zombie's write).
        let mut p = txn_producer(&clients, "fenced-2");
        p.begin_transaction().unwrap();
        fx.mock().request_errors(
            RDKafkaApiKey::Produce,
            &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_INVALID_PRODUCER_EPOCH],
        );
        p.send(record(&output, 0, "x")).unwrap();
        let e = p.commit_transaction(T).unwrap_err();
        assert!(matches!(e, ClientError::ProducerFenced { .. }), "{e}");

        // Offsets of a member the group moved on from (KIP-447): fenced as a zombie, but
        // the producer itself can abort and go on.
        let mut p = txn_producer(&clients, "fenced-3");
        p.begin_transaction().unwrap();
        p.send(record(&output, 0, "x")).unwrap();
        fx.mock().request_errors(
            RDKafkaApiKey::TxnOffsetCommit,
            &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_ILLEGAL_GENERATION],
        );
        let e = p
            .send_offsets_to_transaction(&offsets, &metadata, T)
            .unwrap_err();
        assert!(matches!(e, ClientError::ProducerFenced { .. }), "{e}");
        p.abort_transaction(T).unwrap();
        p.begin_transaction().unwrap();
        p.send(record(&output, 0, "after")).unwrap();
        p.send_offsets_to_transaction(&offsets, &metadata, T)
            .unwrap();
        p.commit_transaction(T).unwrap();
    }

    #[test]
    fn a_failed_delivery_fails_the_commit_and_the_producer_goes_on_after_an_abort() {
        let fx = Fixture::new();
        if !fx.is_mock() {
            return; // fault injection needs the mock
        }
        let config = fx.config("txn-abortable");
        let clients = fx.clients(&config);
        let output = fx.topic(&clients, "out", 2);
        let (_c, metadata) = unjoined_metadata(&clients, "txn-abortable");
        let refuse_next_produce = || {
            fx.mock().request_errors(
                RDKafkaApiKey::Produce,
                &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE],
            )
        };
        let mut p = txn_producer(&clients, "abortable-1");

        // The commit delivers, sees the failure and names it.
        p.begin_transaction().unwrap();
        refuse_next_produce();
        p.send(record(&output, 1, "refused-1")).unwrap();
        let e = p.commit_transaction(T).unwrap_err();
        let ClientError::TransactionAborted { detail, .. } = &e else {
            panic!("{e}");
        };
        assert!(detail.contains("could not be delivered"), "{detail}");
        assert!(detail.contains(&format!("{output}-1")), "{detail}");
        assert!(e.is_task_migrated() && !e.is_fatal());
        p.abort_transaction(T).unwrap();

        // The runtime's poll reports the failure first (to the production handler): the
        // transaction still cannot commit, and takes no more records.
        p.begin_transaction().unwrap();
        refuse_next_produce();
        p.send(record(&output, 1, "refused-2")).unwrap();
        let deadline = Instant::now() + T;
        let polled = loop {
            match p.poll() {
                Ok(()) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                other => break other,
            }
        };
        assert!(
            matches!(polled, Err(ClientError::Delivery { failed: 1, .. })),
            "{polled:?}"
        );
        let e = p.send(record(&output, 0, "more")).unwrap_err();
        assert!(matches!(e, ClientError::TransactionAborted { .. }), "{e}");
        let e = p.commit_transaction(T).unwrap_err();
        assert!(matches!(e, ClientError::TransactionAborted { .. }), "{e}");
        p.abort_transaction(T).unwrap();

        // Offsets the group coordinator refuses.
        p.begin_transaction().unwrap();
        fx.mock().request_errors(
            RDKafkaApiKey::TxnOffsetCommit,
            &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED],
        );
        let offsets = [(TopicPartition::new(output.as_str(), 0), 1)];
        let e = p
            .send_offsets_to_transaction(&offsets, &metadata, T)
            .unwrap_err();
        assert!(matches!(e, ClientError::TransactionAborted { .. }), "{e}");
        p.abort_transaction(T).unwrap();

        // The producer is still good; only what it committed was written.
        p.begin_transaction().unwrap();
        p.send(record(&output, 0, "good")).unwrap();
        p.send_offsets_to_transaction(&offsets, &metadata, T)
            .unwrap();
        p.commit_transaction(T).unwrap();
        assert_eq!(read_back(&clients, &output, 2, 1), expected(&[(0, "good")]));
    }

    #[test]
    fn a_commit_that_times_out_can_be_repeated() {
        let fx = Fixture::new();
        if !fx.is_mock() {
            return; // fault injection needs the mock
        }
        let config = fx.config("txn-timeout");
        let clients = fx.clients(&config);
        let output = fx.topic(&clients, "out", 1);
        let mut p = txn_producer(&clients, "timeout-1");
        p.begin_transaction().unwrap();
        p.send(record(&output, 0, "late")).unwrap();
        fx.mock().request_errors(
            RDKafkaApiKey::EndTxn,
            &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE; 100],
        );
        let e = p.commit_transaction(Duration::from_secs(1)).unwrap_err();
        assert!(
            matches!(e, ClientError::Timeout { .. }) && e.is_retriable(),
            "{e}"
        );
        fx.mock().clear_request_errors(RDKafkaApiKey::EndTxn);
        p.commit_transaction(T).unwrap();
        assert_eq!(read_back(&clients, &output, 1, 1), expected(&[(0, "late")]));
    }

    #[test]
    fn transaction_calls_out_of_place_are_refused_with_a_clear_error() {
        let fx = Fixture::new();
        let config = fx.config("txn-refused");
        let clients = fx.clients(&config);
        let output = fx.topic(&clients, "out", 1);
        let metadata = GroupMetadata::new("g", 1, "m");

        let mut plain = clients.producer("plain").unwrap();
        assert!(!plain.is_transactional());
        let not_transactional = |r: ClientResult<()>| match r {
            Err(ClientError::Broker { detail, .. }) => {
                assert!(detail.contains("not transactional"), "{detail}")
            }
            other => panic!("{other:?}"),
        };
        not_transactional(plain.init_transactions(T));
        not_transactional(plain.begin_transaction());
        not_transactional(plain.send_offsets_to_transaction(&[], &metadata, T));
        not_transactional(plain.commit_transaction(T));
        not_transactional(plain.abort_transaction(T));
        plain.send(record(&output, 0, "plain")).unwrap();
        plain.flush(T).unwrap();

        assert!(matches!(
            clients.transactional_producer("p", ""),
            Err(ClientError::Broker { .. })
        ));
        let mut p = clients.transactional_producer("p", "refused-1").unwrap();
        // Before init_transactions: refused by librdkafka's state machine, nothing broken.
        let e = p.begin_transaction().unwrap_err();
        assert!(matches!(e, ClientError::Broker { .. }), "{e}");
        p.init_transactions(T).unwrap();
        let e = p.send(record(&output, 0, "outside")).unwrap_err();
        let ClientError::Broker { detail, .. } = &e else {
            panic!("{e}");
        };
        assert!(detail.contains("begin_transaction first"), "{detail}");
        p.begin_transaction().unwrap();
        // Metadata not made by a Kafka consumer cannot go to librdkafka.
        let e = p
            .send_offsets_to_transaction(
                &[(TopicPartition::new(output.as_str(), 0), 1)],
                &metadata,
                T,
            )
            .unwrap_err();
        let ClientError::Broker { detail, .. } = &e else {
            panic!("{e}");
        };
        assert!(detail.contains("`g`"), "{detail}");
        p.commit_transaction(T).unwrap();
    }
}
