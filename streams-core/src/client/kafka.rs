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
    GroupMember, NewTopic, OutgoingRecord, Producer, RebalanceListener, TopicPartition,
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
        let forced = [
            ("group.id", group_id),
            ("enable.auto.commit", "false"),
            ("enable.auto.offset.store", "false"),
            ("partition.assignment.strategy", "range"),
            ("group.protocol", "classic"),
        ];
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
            if let Some(old) = c.get(k)
                && old != v
            {
                tracing::warn!(
                    setting = k,
                    value = old,
                    used = v,
                    "the runtime needs this consumer setting; the configured value is ignored"
                );
            }
            c.set(k, v);
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
            let now = Instant::now();
            if (!got && !out.is_empty()) || now >= deadline {
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

/// A producer on librdkafka (idempotent by default).
struct KafkaProducer {
    producer: BaseProducer<ProducerCtx>,
    settings: Arc<Settings>,
}

impl KafkaProducer {
    fn new(settings: Arc<Settings>, client_id: &str) -> ClientResult<Self> {
        let config = settings.producer_config(client_id);
        let producer = BaseProducer::from_config_and_context(&config, ProducerCtx::default())
            .map_err(|e| config_error("producer", &e))?;
        Ok(Self { producer, settings })
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

    fn failures(&self) -> ClientResult<()> {
        let ctx = self.producer.context();
        let failures = std::mem::take(&mut *lock(&ctx.failures));
        let failed = ctx.failed.swap(0, std::sync::atomic::Ordering::Relaxed);
        if failures.is_empty() {
            if let Some((code, reason)) = self.producer.client().fatal_error() {
                return Err(ClientError::Fatal {
                    operation: "producing".into(),
                    detail: format!("fatal producer error {code}: {reason}"),
                });
            }
            return Ok(());
        }
        Err(ClientError::Delivery {
            failed: failed.max(1),
            detail: failures.join("; "),
        })
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
                Err((e, _)) => {
                    return Err(match code_of(&e) {
                        Some(RDKafkaErrorCode::UnknownPartition) => ClientError::Broker {
                            operation: format!("sending to {}", record.partition),
                            detail: "the partition does not exist".into(),
                        },
                        Some(RDKafkaErrorCode::UnknownTopic) => {
                            ClientError::UnknownTopic(record.partition.topic.to_string())
                        }
                        Some(RDKafkaErrorCode::QueueFull) => ClientError::Timeout {
                            operation: format!("sending to {}", record.partition),
                            after: timeout,
                            detail: format!(
                                "the producer's queue stayed full: the Kafka cluster at \
                                 bootstrap.servers={} does not take the records",
                                self.settings.bootstrap
                            ),
                        },
                        _ => self.error(&format!("sending to {}", record.partition), &e, timeout),
                    });
                }
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
        // (then records are still in flight and the app must not go on).
        if flushed.is_ok() || matches!(failures, Err(ClientError::Broker { .. })) {
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
}
