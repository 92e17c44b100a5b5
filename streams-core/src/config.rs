//! Application configuration.
//!
//! [`StreamsConfig`] carries every setting of a streams application under Kafka Streams'
//! property names and defaults (`application.id`, `num.stream.threads`,
//! `commit.interval.ms`...), plus a few of our own (see the table in `docs/CONFIG.md`).
//!
//! Build it in code with [`StreamsConfig::new`] and the `with_*` setters, or load it from
//! Java-style properties: [`StreamsConfig::from_properties`] (key/value pairs),
//! [`StreamsConfig::from_file`] (a `.properties` file), [`StreamsConfig::from_env`]
//! (environment variables, see [`env_var_name`] for the mapping), or several of these
//! layered with [`StreamsConfig::from_sources`] (later sources override earlier ones).
//! A wrong setting is a [`ConfigError`] that names it: an unknown name (with the closest
//! known name), a value that does not parse (with what was expected), a missing
//! `application.id`, or two settings that contradict each other.
//!
//! ```
//! use streams_core::config::{ProcessingGuarantee, StreamsConfig};
//!
//! let config = StreamsConfig::from_properties([
//!     ("application.id", "activity"),
//!     ("processing.guarantee", "exactly_once_v2"),
//!     ("consumer.max.poll.records", "500"),
//! ])?;
//! assert_eq!(config.processing_guarantee(), ProcessingGuarantee::ExactlyOnceV2);
//! assert_eq!(config.commit_interval_ms(), 100); // Kafka's default under exactly-once
//!
//! let err = StreamsConfig::from_properties([("application.id", "a"), ("num.stream.thread", "2")])
//!     .unwrap_err();
//! assert_eq!(
//!     err.to_string(),
//!     "unknown setting `num.stream.thread`; did you mean `num.stream.threads`?"
//! );
//! # Ok::<(), streams_core::config::ConfigError>(())
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::time::InvalidTimestampPolicy;

/// The names of the settings, as they appear in properties files (Kafka Streams' names
/// unless the doc says "ours").
pub mod names {
    /// `application.id` (required): prefixes internal topics, names the consumer group and
    /// the state directory.
    pub const APPLICATION_ID: &str = "application.id";
    /// `bootstrap.servers`: the Kafka brokers, `host:port` separated by commas. Unset: the
    /// embedded log engine.
    pub const BOOTSTRAP_SERVERS: &str = "bootstrap.servers";
    /// `application.server`: this instance's `host:port` for interactive queries.
    pub const APPLICATION_SERVER: &str = "application.server";
    /// `state.dir`: the directory of state stores.
    pub const STATE_DIR: &str = "state.dir";
    /// `num.stream.threads`: stream threads per instance.
    pub const NUM_STREAM_THREADS: &str = "num.stream.threads";
    /// `commit.interval.ms`: how often to commit.
    pub const COMMIT_INTERVAL_MS: &str = "commit.interval.ms";
    /// `processing.guarantee`: `at_least_once` or `exactly_once_v2`.
    pub const PROCESSING_GUARANTEE: &str = "processing.guarantee";
    /// `statestore.cache.max.bytes`: the record cache budget.
    pub const STATESTORE_CACHE_MAX_BYTES: &str = "statestore.cache.max.bytes";
    /// `cache.max.bytes.buffering`: Kafka's deprecated name of
    /// [`STATESTORE_CACHE_MAX_BYTES`], accepted as an alias.
    pub const CACHE_MAX_BYTES_BUFFERING: &str = "cache.max.bytes.buffering";
    /// `num.standby.replicas`: standby replicas per stateful task.
    pub const NUM_STANDBY_REPLICAS: &str = "num.standby.replicas";
    /// `default.dsl.store`: `rocksDB` or `in_memory`.
    pub const DEFAULT_DSL_STORE: &str = "default.dsl.store";
    /// `default.key.serde`: not settable (serdes are types in Rust).
    pub const DEFAULT_KEY_SERDE: &str = "default.key.serde";
    /// `default.value.serde`: not settable (serdes are types in Rust).
    pub const DEFAULT_VALUE_SERDE: &str = "default.value.serde";
    /// `deserialization.exception.handler`: `log_and_fail` or `log_and_continue`.
    pub const DESERIALIZATION_EXCEPTION_HANDLER: &str = "deserialization.exception.handler";
    /// `default.deserialization.exception.handler`: Kafka's deprecated name of
    /// [`DESERIALIZATION_EXCEPTION_HANDLER`], accepted as an alias.
    pub const DEFAULT_DESERIALIZATION_EXCEPTION_HANDLER: &str =
        "default.deserialization.exception.handler";
    /// `production.exception.handler`: `fail` or `continue`, for records the producer
    /// cannot deliver.
    pub const PRODUCTION_EXCEPTION_HANDLER: &str = "production.exception.handler";
    /// `default.production.exception.handler`: Kafka's deprecated name of
    /// [`PRODUCTION_EXCEPTION_HANDLER`], accepted as an alias.
    pub const DEFAULT_PRODUCTION_EXCEPTION_HANDLER: &str = "default.production.exception.handler";
    /// `errors.dead.letter.queue.topic.name`: the dead-letter topic (KIP-1034).
    pub const ERRORS_DEAD_LETTER_QUEUE_TOPIC_NAME: &str = "errors.dead.letter.queue.topic.name";
    /// `default.timestamp.extractor`: not settable (extractors are types in Rust).
    pub const DEFAULT_TIMESTAMP_EXTRACTOR: &str = "default.timestamp.extractor";
    /// `default.invalid.timestamp.policy` (ours): what sources do with negative timestamps.
    pub const DEFAULT_INVALID_TIMESTAMP_POLICY: &str = "default.invalid.timestamp.policy";
    /// `max.task.idle.ms`: how long a task waits for data on an empty input partition.
    pub const MAX_TASK_IDLE_MS: &str = "max.task.idle.ms";
    /// `poll.ms`: how long a poll blocks waiting for input.
    pub const POLL_MS: &str = "poll.ms";
    /// `buffered.records.per.partition`: records buffered per input partition.
    pub const BUFFERED_RECORDS_PER_PARTITION: &str = "buffered.records.per.partition";
    /// `replication.factor`: replication of internal topics (-1: the broker's default).
    pub const REPLICATION_FACTOR: &str = "replication.factor";
    /// `state.cleanup.delay.ms`: how long an unowned task directory is kept.
    pub const STATE_CLEANUP_DELAY_MS: &str = "state.cleanup.delay.ms";
    /// `statestore.memory.bytes` (ours): the process-wide RocksDB memory budget.
    pub const STATESTORE_MEMORY_BYTES: &str = "statestore.memory.bytes";
    /// `default.api.timeout.ms`: the bound on client calls to the brokers.
    pub const DEFAULT_API_TIMEOUT_MS: &str = "default.api.timeout.ms";
    /// `streams.idle.advance.ms` (ours): wall-clock idle time after which a task's stream
    /// time follows the wall clock (-1: off).
    pub const STREAMS_IDLE_ADVANCE_MS: &str = "streams.idle.advance.ms";
    /// `streams.repartition.purge` (ours): delete committed records of repartition topics
    /// after each commit (`true`, as Kafka Streams always does) or leave them to retention.
    pub const STREAMS_REPARTITION_PURGE: &str = "streams.repartition.purge";

    /// Every setting that [`StreamsConfig::to_properties`](super::StreamsConfig::to_properties)
    /// can write (the canonical names; client settings go under the prefixes of
    /// [`ClientPrefix`](super::ClientPrefix)).
    pub const ALL: &[&str] = &[
        APPLICATION_ID,
        BOOTSTRAP_SERVERS,
        APPLICATION_SERVER,
        STATE_DIR,
        NUM_STREAM_THREADS,
        COMMIT_INTERVAL_MS,
        PROCESSING_GUARANTEE,
        STATESTORE_CACHE_MAX_BYTES,
        NUM_STANDBY_REPLICAS,
        DEFAULT_DSL_STORE,
        DESERIALIZATION_EXCEPTION_HANDLER,
        ERRORS_DEAD_LETTER_QUEUE_TOPIC_NAME,
        PRODUCTION_EXCEPTION_HANDLER,
        DEFAULT_INVALID_TIMESTAMP_POLICY,
        MAX_TASK_IDLE_MS,
        POLL_MS,
        BUFFERED_RECORDS_PER_PARTITION,
        REPLICATION_FACTOR,
        STATE_CLEANUP_DELAY_MS,
        STATESTORE_MEMORY_BYTES,
        DEFAULT_API_TIMEOUT_MS,
        STREAMS_IDLE_ADVANCE_MS,
        STREAMS_REPARTITION_PURGE,
    ];

    /// Deprecated Kafka names accepted in place of the canonical ones: (alias, canonical).
    pub const ALIASES: &[(&str, &str)] = &[
        (CACHE_MAX_BYTES_BUFFERING, STATESTORE_CACHE_MAX_BYTES),
        (
            DEFAULT_DESERIALIZATION_EXCEPTION_HANDLER,
            DESERIALIZATION_EXCEPTION_HANDLER,
        ),
        (
            DEFAULT_PRODUCTION_EXCEPTION_HANDLER,
            PRODUCTION_EXCEPTION_HANDLER,
        ),
    ];

    /// Kafka Streams settings that cannot be set here because Rust's types already decide
    /// them; setting one is [`ConfigError::Unsupported`](super::ConfigError::Unsupported).
    pub const NOT_SETTABLE: &[&str] = &[
        DEFAULT_KEY_SERDE,
        DEFAULT_VALUE_SERDE,
        DEFAULT_TIMESTAMP_EXTRACTOR,
    ];
}

/// Which engine DSL stores use when `Materialized` names no store supplier.
///
/// Property: `default.dsl.store` (`rocksDB` or `in_memory`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DslStore {
    /// RocksDB on disk under the state directory (Kafka's default).
    #[default]
    RocksDb,
    /// Ordered maps in memory, rebuilt from the changelog after a restart.
    InMemory,
}

impl DslStore {
    /// The property value: `rocksDB` or `in_memory` (Kafka's spelling).
    pub fn as_str(self) -> &'static str {
        match self {
            DslStore::RocksDb => "rocksDB",
            DslStore::InMemory => "in_memory",
        }
    }
}

/// The processing guarantee (property `processing.guarantee`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProcessingGuarantee {
    /// `at_least_once` (Kafka's default): after a crash, records since the last commit are
    /// processed again.
    #[default]
    AtLeastOnce,
    /// `exactly_once_v2`: transactions make each record's effects visible exactly once.
    /// Lowers the default `commit.interval.ms` to 100, as in Kafka Streams.
    ExactlyOnceV2,
}

impl ProcessingGuarantee {
    /// The property value: `at_least_once` or `exactly_once_v2`.
    pub fn as_str(self) -> &'static str {
        match self {
            ProcessingGuarantee::AtLeastOnce => "at_least_once",
            ProcessingGuarantee::ExactlyOnceV2 => "exactly_once_v2",
        }
    }
}

/// What the app does with an output record the producer cannot deliver (after the
/// producer's own retries, which `producer.delivery.timeout.ms` / `message.timeout.ms`
/// bound). Property `production.exception.handler`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProductionHandler {
    /// Fail the stream thread with an error naming the topic, partition and cause (Kafka's
    /// `DefaultProductionExceptionHandler`; property value `fail`). The records since the
    /// last commit are processed again after a restart (at-least-once).
    #[default]
    Fail,
    /// Log the failure, count the record in the thread's `production_errors_skipped`
    /// metric, and go on (property value `continue`): the record is lost.
    Continue,
}

/// What a source does with a record whose key or value does not deserialize.
///
/// Properties: `deserialization.exception.handler` (`log_and_fail`, `log_and_continue`) and
/// `errors.dead.letter.queue.topic.name` for [`DeserializationHandler::DeadLetter`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum DeserializationHandler {
    /// Stop processing with an error naming topic, partition and offset (Kafka's default,
    /// `log_and_fail`).
    #[default]
    Fail,
    /// Log the record, count it in the `skipped-records` metric, and go on
    /// (`log_and_continue`).
    LogAndContinue,
    /// Send the original key and value bytes to a dead-letter topic, with the error in
    /// headers (`__streams.errors.*`), count it, and go on (`log_and_continue` with
    /// `errors.dead.letter.queue.topic.name`).
    DeadLetter {
        /// The dead-letter topic.
        topic: String,
    },
}

/// Header names on dead-lettered records (the names of Kafka's KIP-1034).
pub mod dlq_headers {
    /// The error's kind.
    pub const EXCEPTION: &str = "__streams.errors.exception";
    /// The error's message.
    pub const MESSAGE: &str = "__streams.errors.message";
    /// The source topic.
    pub const TOPIC: &str = "__streams.errors.topic";
    /// The source partition (decimal text).
    pub const PARTITION: &str = "__streams.errors.partition";
    /// The source offset (decimal text).
    pub const OFFSET: &str = "__streams.errors.offset";
}

/// The Kafka clients whose own settings pass through under a prefix: `consumer.`,
/// `producer.`, `admin.`, `main.consumer.`, `restore.consumer.`.
///
/// The settings are stored verbatim (without the prefix) and checked by the client that
/// uses them, not here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ClientPrefix {
    /// `consumer.`: every consumer (main and restore).
    Consumer,
    /// `producer.`: the producers.
    Producer,
    /// `admin.`: the admin client.
    Admin,
    /// `main.consumer.`: the consumer that reads input topics (overrides `consumer.`).
    MainConsumer,
    /// `restore.consumer.`: the consumer that restores state (overrides `consumer.`).
    RestoreConsumer,
}

impl ClientPrefix {
    /// Every prefix.
    pub const ALL: [ClientPrefix; 5] = [
        ClientPrefix::Consumer,
        ClientPrefix::Producer,
        ClientPrefix::Admin,
        ClientPrefix::MainConsumer,
        ClientPrefix::RestoreConsumer,
    ];

    /// The prefix, with its final dot.
    pub fn prefix(self) -> &'static str {
        match self {
            ClientPrefix::Consumer => "consumer.",
            ClientPrefix::Producer => "producer.",
            ClientPrefix::Admin => "admin.",
            ClientPrefix::MainConsumer => "main.consumer.",
            ClientPrefix::RestoreConsumer => "restore.consumer.",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// The configuration of a streams application.
///
/// Build it with [`new`](Self::new) and the `with_*` setters (each names its property and
/// default), or load it with [`from_properties`](Self::from_properties),
/// [`from_file`](Self::from_file), [`from_env`](Self::from_env) or
/// [`from_sources`](Self::from_sources). The setters do not check values;
/// [`validate`](Self::validate) does, and so do the runtime and the test driver.
///
/// ```
/// use std::time::Duration;
/// use streams_core::config::{DeserializationHandler, DslStore, StreamsConfig};
///
/// let config = StreamsConfig::new("activity")
///     .with_num_stream_threads(1)
///     .with_commit_interval(Duration::from_secs(5))
///     .with_default_dsl_store(DslStore::InMemory)
///     .with_deserialization_handler(DeserializationHandler::LogAndContinue);
/// config.validate()?;
/// assert_eq!(config.application_id(), "activity");
/// assert_eq!(config.to_properties()["commit.interval.ms"], "5000");
/// # Ok::<(), streams_core::config::ConfigError>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct StreamsConfig {
    application_id: String,
    bootstrap_servers: Vec<String>,
    application_server: Option<String>,
    deserialization_handler: DeserializationHandler,
    production_handler: ProductionHandler,
    invalid_timestamp_policy: InvalidTimestampPolicy,
    state_dir: Option<PathBuf>,
    num_stream_threads: usize,
    processing_guarantee: ProcessingGuarantee,
    cache_max_bytes: usize,
    num_standby_replicas: usize,
    memory_bytes: usize,
    default_dsl_store: DslStore,
    /// `None`: the default, which depends on the processing guarantee.
    commit_interval_ms: Option<u64>,
    max_task_idle_ms: i64,
    poll_ms: u64,
    buffered_records_per_partition: usize,
    replication_factor: i16,
    state_cleanup_delay_ms: u64,
    default_api_timeout_ms: u64,
    clients: [BTreeMap<String, String>; 5],
    idle_advance_ms: Option<i64>,
    repartition_purge: bool,
}

/// Prints every setting as [`StreamsConfig::to_properties`] gives it: secrets of client
/// settings (passwords, JAAS configs, tokens, private keys) as `[hidden]`, so a config can be
/// logged.
impl std::fmt::Debug for StreamsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamsConfig")
            .field("properties", &self.to_properties())
            .finish()
    }
}

/// Default of `statestore.cache.max.bytes`: 10 MiB, as in Kafka Streams.
pub const DEFAULT_CACHE_MAX_BYTES: usize = 10 << 20;
/// Default of `statestore.memory.bytes`: 256 MiB for RocksDB (block cache and memtables of
/// every store together).
pub const DEFAULT_MEMORY_BYTES: usize = 256 << 20;
/// Default of `commit.interval.ms` under at-least-once: 30 s, as in Kafka Streams.
pub const DEFAULT_COMMIT_INTERVAL_MS: u64 = 30_000;
/// Default of `commit.interval.ms` under `exactly_once_v2`: 100 ms, as in Kafka Streams.
pub const DEFAULT_EOS_COMMIT_INTERVAL_MS: u64 = 100;
/// Default of `poll.ms`, as in Kafka Streams.
pub const DEFAULT_POLL_MS: u64 = 100;
/// Default of `buffered.records.per.partition`, as in Kafka Streams.
pub const DEFAULT_BUFFERED_RECORDS_PER_PARTITION: usize = 1000;
/// Default of `state.cleanup.delay.ms`: 10 minutes, as in Kafka Streams.
pub const DEFAULT_STATE_CLEANUP_DELAY_MS: u64 = 600_000;
/// Default of `default.api.timeout.ms`: 60 s, as in Kafka's clients.
pub const DEFAULT_API_TIMEOUT_MS: u64 = 60_000;
/// The environment variable prefix of [`StreamsConfig::from_env`].
pub const DEFAULT_ENV_PREFIX: &str = "STREAMS";

impl StreamsConfig {
    /// A configuration for the application `application_id` (property `application.id`: it
    /// prefixes internal topics and names the consumer group and state directory), with
    /// every other setting at its default.
    pub fn new(application_id: impl Into<String>) -> Self {
        Self {
            application_id: application_id.into(),
            bootstrap_servers: Vec::new(),
            application_server: None,
            deserialization_handler: DeserializationHandler::default(),
            production_handler: ProductionHandler::default(),
            invalid_timestamp_policy: InvalidTimestampPolicy::default(),
            state_dir: None,
            num_stream_threads: 1,
            processing_guarantee: ProcessingGuarantee::default(),
            cache_max_bytes: DEFAULT_CACHE_MAX_BYTES,
            num_standby_replicas: 0,
            memory_bytes: DEFAULT_MEMORY_BYTES,
            default_dsl_store: DslStore::default(),
            commit_interval_ms: None,
            max_task_idle_ms: 0,
            poll_ms: DEFAULT_POLL_MS,
            buffered_records_per_partition: DEFAULT_BUFFERED_RECORDS_PER_PARTITION,
            replication_factor: -1,
            state_cleanup_delay_ms: DEFAULT_STATE_CLEANUP_DELAY_MS,
            default_api_timeout_ms: DEFAULT_API_TIMEOUT_MS,
            clients: Default::default(),
            idle_advance_ms: None,
            repartition_purge: true,
        }
    }

    /// Beyond Kafka Streams (property `streams.idle.advance.ms`, off by default): once a
    /// task has had no input for `after` of wall-clock time, its stream time follows the
    /// wall clock from its last record on, so windows close, suppressed final results and
    /// emit-on-close results appear, and stream-time punctuators fire even when a partition
    /// goes quiet. Records that arrive later are on time or late against the advanced stream
    /// time. Off, results depend only on the data, exactly as in Kafka Streams.
    pub fn with_idle_advance(mut self, after: std::time::Duration) -> Self {
        self.idle_advance_ms = Some(i64::try_from(after.as_millis()).unwrap_or(i64::MAX));
        self
    }

    /// Beyond Kafka Streams (property `streams.repartition.purge`, default `true`): whether
    /// committed records of repartition topics are deleted after each commit (Kafka
    /// Streams always does). Turn it off only on a broker whose DeleteRecords is broken
    /// (tansu 0.6's sqlite engine panics on it); the records then go by the topics'
    /// retention, which the runtime creates as infinite: set `retention.ms` on them.
    pub fn with_repartition_purge(mut self, purge: bool) -> Self {
        self.repartition_purge = purge;
        self
    }

    /// Whether committed repartition records are deleted after each commit.
    pub fn repartition_purge(&self) -> bool {
        self.repartition_purge
    }

    /// The idle-advance threshold in ms, if idle advance is on; see
    /// [`with_idle_advance`](Self::with_idle_advance).
    pub fn idle_advance_ms(&self) -> Option<i64> {
        self.idle_advance_ms
    }

    /// The application id.
    pub fn application_id(&self) -> &str {
        &self.application_id
    }

    /// Sets the Kafka brokers to bootstrap from (property `bootstrap.servers`, `host:port`
    /// entries). Default: none, which means the embedded log engine.
    pub fn with_bootstrap_servers<I, S>(mut self, servers: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.bootstrap_servers = servers.into_iter().map(Into::into).collect();
        self
    }

    /// The Kafka brokers; empty for the embedded log engine.
    pub fn bootstrap_servers(&self) -> &[String] {
        &self.bootstrap_servers
    }

    /// Sets this instance's endpoint for interactive queries (property
    /// `application.server`, `host:port`). Default: none.
    pub fn with_application_server(mut self, endpoint: impl Into<String>) -> Self {
        self.application_server = Some(endpoint.into());
        self
    }

    /// This instance's interactive-query endpoint, if set.
    pub fn application_server(&self) -> Option<&str> {
        self.application_server.as_deref()
    }

    /// Sets how often the runtime commits (property `commit.interval.ms`): flushes caches
    /// and stores, writes checkpoints and commits consumed offsets. Default: 30 s, or 100 ms
    /// under [`ProcessingGuarantee::ExactlyOnceV2`].
    pub fn with_commit_interval(mut self, interval: Duration) -> Self {
        self.commit_interval_ms = Some(u64::try_from(interval.as_millis()).unwrap_or(u64::MAX));
        self
    }

    /// The commit interval in ms (the default follows the processing guarantee unless the
    /// interval was set).
    pub fn commit_interval_ms(&self) -> u64 {
        self.commit_interval_ms
            .unwrap_or(match self.processing_guarantee {
                ProcessingGuarantee::AtLeastOnce => DEFAULT_COMMIT_INTERVAL_MS,
                ProcessingGuarantee::ExactlyOnceV2 => DEFAULT_EOS_COMMIT_INTERVAL_MS,
            })
    }

    /// Sets the state directory (property `state.dir`): stores live in
    /// `<state.dir>/<application.id>/<task id>/`. Default: none, which the test driver
    /// replaces with a fresh temporary directory (the runtime requires one).
    pub fn with_state_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.state_dir = Some(dir.into());
        self
    }

    /// The state directory, if set.
    pub fn state_dir(&self) -> Option<&Path> {
        self.state_dir.as_deref()
    }

    /// Sets the number of stream threads (property `num.stream.threads`, at least 1).
    /// Default: 1.
    pub fn with_num_stream_threads(mut self, threads: usize) -> Self {
        self.num_stream_threads = threads;
        self
    }

    /// The number of stream threads.
    pub fn num_stream_threads(&self) -> usize {
        self.num_stream_threads
    }

    /// Sets the processing guarantee (property `processing.guarantee`). Default:
    /// [`ProcessingGuarantee::AtLeastOnce`].
    pub fn with_processing_guarantee(mut self, guarantee: ProcessingGuarantee) -> Self {
        self.processing_guarantee = guarantee;
        self
    }

    /// The processing guarantee.
    pub fn processing_guarantee(&self) -> ProcessingGuarantee {
        self.processing_guarantee
    }

    /// Sets the record cache budget shared by the stores of one stream thread (property
    /// `statestore.cache.max.bytes`, alias `cache.max.bytes.buffering`). 0 turns caching
    /// off: every update is forwarded. Default: 10 MiB.
    pub fn with_cache_max_bytes(mut self, bytes: usize) -> Self {
        self.cache_max_bytes = bytes;
        self
    }

    /// The record cache budget.
    pub fn cache_max_bytes(&self) -> usize {
        self.cache_max_bytes
    }

    /// Sets the number of standby replicas of each stateful task (property
    /// `num.standby.replicas`). Default: 0.
    pub fn with_num_standby_replicas(mut self, replicas: usize) -> Self {
        self.num_standby_replicas = replicas;
        self
    }

    /// The number of standby replicas.
    pub fn num_standby_replicas(&self) -> usize {
        self.num_standby_replicas
    }

    /// Sets the process-wide RocksDB memory budget (property `statestore.memory.bytes`,
    /// ours): block cache and memtables of every store, however many stores and partitions.
    /// Default: 256 MiB; at least 8 MiB.
    pub fn with_memory_bytes(mut self, bytes: usize) -> Self {
        self.memory_bytes = bytes;
        self
    }

    /// The RocksDB memory budget.
    pub fn memory_bytes(&self) -> usize {
        self.memory_bytes
    }

    /// Sets the engine of DSL stores without an explicit supplier (property
    /// `default.dsl.store`). Default: RocksDB.
    pub fn with_default_dsl_store(mut self, store: DslStore) -> Self {
        self.default_dsl_store = store;
        self
    }

    /// The engine of DSL stores without an explicit supplier.
    pub fn default_dsl_store(&self) -> DslStore {
        self.default_dsl_store
    }

    /// Sets what happens to output records the producer cannot deliver (property
    /// `production.exception.handler`). Default: [`ProductionHandler::Fail`].
    pub fn with_production_handler(mut self, handler: ProductionHandler) -> Self {
        self.production_handler = handler;
        self
    }

    /// The production handler.
    pub fn production_handler(&self) -> ProductionHandler {
        self.production_handler
    }

    /// Sets the deserialization handler (properties `deserialization.exception.handler`
    /// and `errors.dead.letter.queue.topic.name`). Default: [`DeserializationHandler::Fail`].
    pub fn with_deserialization_handler(mut self, handler: DeserializationHandler) -> Self {
        self.deserialization_handler = handler;
        self
    }

    /// The deserialization handler.
    pub fn deserialization_handler(&self) -> &DeserializationHandler {
        &self.deserialization_handler
    }

    /// Sets what sources without their own policy do with invalid (negative) timestamps
    /// (property `default.invalid.timestamp.policy`, ours: `fail`, `skip_and_count`,
    /// `use_partition_time`). Default: [`InvalidTimestampPolicy::Fail`] (Kafka's
    /// `FailOnInvalidTimestamp`).
    pub fn with_invalid_timestamp_policy(mut self, policy: InvalidTimestampPolicy) -> Self {
        self.invalid_timestamp_policy = policy;
        self
    }

    /// The default invalid-timestamp policy.
    pub fn invalid_timestamp_policy(&self) -> InvalidTimestampPolicy {
        self.invalid_timestamp_policy
    }

    /// Sets how long a task with an empty input partition waits for data there before it
    /// processes its other partitions (property `max.task.idle.ms`, Kafka's KIP-695
    /// meaning). A task always processes the queued record with the smallest timestamp
    /// across its partitions. With 0 (default) it waits while an empty partition is not
    /// known to be caught up (its lag unknown or above 0), so records already in the log
    /// are processed in timestamp order, but it does not wait for producers; above 0 it
    /// also waits that long for new records once the partition is caught up; -1: never
    /// wait (whatever is queued is processed, possibly out of timestamp order).
    pub fn with_max_task_idle_ms(mut self, ms: i64) -> Self {
        self.max_task_idle_ms = ms;
        self
    }

    /// The maximum task idle time in ms (-1: never wait).
    pub fn max_task_idle_ms(&self) -> i64 {
        self.max_task_idle_ms
    }

    /// Sets how long a poll of the input blocks waiting for records (property `poll.ms`).
    /// Default: 100 ms.
    pub fn with_poll(mut self, timeout: Duration) -> Self {
        self.poll_ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
        self
    }

    /// The poll timeout in ms.
    pub fn poll_ms(&self) -> u64 {
        self.poll_ms
    }

    /// Sets how many records are buffered per input partition before fetching pauses
    /// (property `buffered.records.per.partition`, at least 1). Default: 1000.
    pub fn with_buffered_records_per_partition(mut self, records: usize) -> Self {
        self.buffered_records_per_partition = records;
        self
    }

    /// The records buffered per input partition.
    pub fn buffered_records_per_partition(&self) -> usize {
        self.buffered_records_per_partition
    }

    /// Sets the replication factor of internal topics (property `replication.factor`; -1:
    /// the broker's default). Default: -1.
    pub fn with_replication_factor(mut self, factor: i16) -> Self {
        self.replication_factor = factor;
        self
    }

    /// The replication factor of internal topics (-1: the broker's default).
    pub fn replication_factor(&self) -> i16 {
        self.replication_factor
    }

    /// Sets how long a task directory no longer owned by this instance is kept before it is
    /// deleted (property `state.cleanup.delay.ms`). Default: 10 minutes.
    pub fn with_state_cleanup_delay(mut self, delay: Duration) -> Self {
        self.state_cleanup_delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
        self
    }

    /// The state cleanup delay in ms.
    pub fn state_cleanup_delay_ms(&self) -> u64 {
        self.state_cleanup_delay_ms
    }

    /// Sets the bound on client calls to the brokers (property `default.api.timeout.ms`):
    /// a call that keeps failing on connection errors gives up after it. Default: 60 s.
    pub fn with_default_api_timeout(mut self, timeout: Duration) -> Self {
        self.default_api_timeout_ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
        self
    }

    /// The client call timeout in ms.
    pub fn default_api_timeout_ms(&self) -> u64 {
        self.default_api_timeout_ms
    }

    /// Sets a Kafka client setting that passes through verbatim (property
    /// `<prefix><key>`, e.g. `consumer.max.poll.records`): `key` is the client's own name,
    /// without the prefix.
    pub fn with_client_property(
        mut self,
        client: ClientPrefix,
        key: impl Into<String>,
        value: impl Into<String>,
    ) -> Self {
        self.clients[client.index()].insert(key.into(), value.into());
        self
    }

    /// The pass-through settings of one client, keyed without the prefix.
    pub fn client_properties(&self, client: ClientPrefix) -> &BTreeMap<String, String> {
        &self.clients[client.index()]
    }

    /// Every setting under its property name, defaults included, for display and logging:
    /// the effective `commit.interval.ms`, a dead-letter handler as `log_and_continue` plus
    /// its topic, and the client settings under their prefixes. Values of client settings
    /// whose name suggests a secret (`password`, `secret`, `jaas`, `credentials`, `token`,
    /// private keys) are replaced by `[hidden]`. Unset optional settings are left out.
    ///
    /// Loading the result with [`from_properties`](Self::from_properties) gives an
    /// equivalent configuration (same getters), secrets aside.
    pub fn to_properties(&self) -> BTreeMap<String, String> {
        use names::*;
        let mut out = BTreeMap::new();
        let mut put = |k: &str, v: String| {
            out.insert(k.to_string(), v);
        };
        put(APPLICATION_ID, self.application_id.clone());
        if !self.bootstrap_servers.is_empty() {
            put(BOOTSTRAP_SERVERS, self.bootstrap_servers.join(","));
        }
        if let Some(s) = &self.application_server {
            put(APPLICATION_SERVER, s.clone());
        }
        if let Some(d) = &self.state_dir {
            put(STATE_DIR, d.to_string_lossy().into_owned());
        }
        put(NUM_STREAM_THREADS, self.num_stream_threads.to_string());
        put(COMMIT_INTERVAL_MS, self.commit_interval_ms().to_string());
        put(
            PROCESSING_GUARANTEE,
            self.processing_guarantee.as_str().into(),
        );
        put(STATESTORE_CACHE_MAX_BYTES, self.cache_max_bytes.to_string());
        put(NUM_STANDBY_REPLICAS, self.num_standby_replicas.to_string());
        put(DEFAULT_DSL_STORE, self.default_dsl_store.as_str().into());
        let handler = match &self.deserialization_handler {
            DeserializationHandler::Fail => "log_and_fail",
            DeserializationHandler::LogAndContinue => "log_and_continue",
            DeserializationHandler::DeadLetter { topic } => {
                put(ERRORS_DEAD_LETTER_QUEUE_TOPIC_NAME, topic.clone());
                "log_and_continue"
            }
        };
        put(DESERIALIZATION_EXCEPTION_HANDLER, handler.into());
        put(
            PRODUCTION_EXCEPTION_HANDLER,
            match self.production_handler {
                ProductionHandler::Fail => "fail",
                ProductionHandler::Continue => "continue",
            }
            .into(),
        );
        put(
            DEFAULT_INVALID_TIMESTAMP_POLICY,
            policy_name(self.invalid_timestamp_policy).into(),
        );
        put(MAX_TASK_IDLE_MS, self.max_task_idle_ms.to_string());
        put(
            STREAMS_IDLE_ADVANCE_MS,
            self.idle_advance_ms.unwrap_or(-1).to_string(),
        );
        put(
            STREAMS_REPARTITION_PURGE,
            self.repartition_purge.to_string(),
        );
        put(POLL_MS, self.poll_ms.to_string());
        put(
            BUFFERED_RECORDS_PER_PARTITION,
            self.buffered_records_per_partition.to_string(),
        );
        put(REPLICATION_FACTOR, self.replication_factor.to_string());
        put(
            STATE_CLEANUP_DELAY_MS,
            self.state_cleanup_delay_ms.to_string(),
        );
        put(STATESTORE_MEMORY_BYTES, self.memory_bytes.to_string());
        put(
            DEFAULT_API_TIMEOUT_MS,
            self.default_api_timeout_ms.to_string(),
        );
        for client in ClientPrefix::ALL {
            for (k, v) in &self.clients[client.index()] {
                let v = if is_secret(k) {
                    "[hidden]".to_string()
                } else {
                    v.clone()
                };
                put(&format!("{}{k}", client.prefix()), v);
            }
        }
        out
    }

    /// Checks the configuration, naming the setting that is wrong.
    pub fn validate(&self) -> Result<(), ConfigError> {
        use names::*;
        let invalid =
            |setting: &'static str, detail: String| ConfigError::Invalid { setting, detail };
        if self.application_id.is_empty() {
            return Err(invalid(APPLICATION_ID, "must not be empty".into()));
        }
        if let Err(expected) = check_application_id(&self.application_id) {
            return Err(invalid(
                APPLICATION_ID,
                format!("`{}` {expected}", self.application_id),
            ));
        }
        for server in &self.bootstrap_servers {
            if let Err(e) = check_host_port(server) {
                return Err(invalid(BOOTSTRAP_SERVERS, format!("`{server}`: {e}")));
            }
        }
        if let Some(server) = &self.application_server
            && let Err(e) = check_host_port(server)
        {
            return Err(invalid(APPLICATION_SERVER, format!("`{server}`: {e}")));
        }
        if self.num_stream_threads == 0 {
            return Err(invalid(NUM_STREAM_THREADS, "must be at least 1".into()));
        }
        if self.memory_bytes < streams_state::MIN_ROCKSDB_BUDGET {
            return Err(invalid(
                STATESTORE_MEMORY_BYTES,
                format!(
                    "{} is below the minimum of {} bytes",
                    self.memory_bytes,
                    streams_state::MIN_ROCKSDB_BUDGET
                ),
            ));
        }
        if let DeserializationHandler::DeadLetter { topic } = &self.deserialization_handler
            && topic.is_empty()
        {
            return Err(invalid(
                ERRORS_DEAD_LETTER_QUEUE_TOPIC_NAME,
                "must not be empty".into(),
            ));
        }
        if self.max_task_idle_ms < -1 {
            return Err(invalid(
                MAX_TASK_IDLE_MS,
                format!("{} is below -1", self.max_task_idle_ms),
            ));
        }
        if self.buffered_records_per_partition == 0 {
            return Err(invalid(
                BUFFERED_RECORDS_PER_PARTITION,
                "must be at least 1".into(),
            ));
        }
        if self.replication_factor == 0 || self.replication_factor < -1 {
            return Err(invalid(
                REPLICATION_FACTOR,
                format!(
                    "{} is neither -1 (the broker's default) nor at least 1",
                    self.replication_factor
                ),
            ));
        }
        for client in ClientPrefix::ALL {
            if self.clients[client.index()].keys().any(String::is_empty) {
                return Err(ConfigError::Invalid {
                    setting: client.prefix(),
                    detail: "a client setting needs a name after the prefix".into(),
                });
            }
        }
        Ok(())
    }

    /// Checks the settings that the runtime cannot honour yet (on any broker), so that they
    /// fail at start instead of being silently ignored.
    pub(crate) fn check_runtime(&self) -> Result<(), ConfigError> {
        use names::*;
        let unsupported = |setting: &'static str, detail: &str| -> Result<(), ConfigError> {
            Err(ConfigError::Invalid {
                setting,
                detail: format!("{detail} (see docs/CONFIG.md)"),
            })
        };
        if self.processing_guarantee == ProcessingGuarantee::ExactlyOnceV2 {
            return unsupported(
                PROCESSING_GUARANTEE,
                "exactly_once_v2 is not implemented yet; the runtime is at_least_once",
            );
        }
        Ok(())
    }

    /// Checks a configuration for the runtime on an embedded log engine: as
    /// [`check_runtime`](Self::check_runtime), and `bootstrap.servers` must be unset (it
    /// names a Kafka cluster, which an app given an embedded engine would not use).
    pub(crate) fn check_embedded_runtime(&self) -> Result<(), ConfigError> {
        if !self.bootstrap_servers.is_empty() {
            return Err(ConfigError::Invalid {
                setting: names::BOOTSTRAP_SERVERS,
                detail: "it names a Kafka cluster, but the app was given an embedded log engine: \
                         leave it unset, or run on Kafka with KafkaStreams::from_config or \
                         KafkaStreams::with_clients and KafkaClients (see docs/KAFKA.md)"
                    .into(),
            });
        }
        self.check_runtime()
    }

    /// Loads a configuration from key/value pairs under the property names (see
    /// `docs/CONFIG.md`). `application.id` is required; every other setting has a default.
    /// Each setting may appear once (an alias counts as its setting); names under a client
    /// prefix (`consumer.`...) pass through verbatim.
    ///
    /// ```
    /// use streams_core::config::{ClientPrefix, DslStore, StreamsConfig};
    ///
    /// let config = StreamsConfig::from_properties([
    ///     ("application.id", "activity"),
    ///     ("default.dsl.store", "in_memory"),
    ///     ("cache.max.bytes.buffering", "0"), // Kafka's deprecated name still works
    ///     ("producer.linger.ms", "5"),
    /// ])?;
    /// assert_eq!(config.default_dsl_store(), DslStore::InMemory);
    /// assert_eq!(config.cache_max_bytes(), 0);
    /// assert_eq!(config.client_properties(ClientPrefix::Producer)["linger.ms"], "5");
    ///
    /// let err = StreamsConfig::from_properties([("application.id", "a"), ("poll.ms", "soon")])
    ///     .unwrap_err();
    /// assert_eq!(
    ///     err.to_string(),
    ///     "invalid value `soon` for `poll.ms`: expected a whole number of milliseconds (0 or more)"
    /// );
    /// # Ok::<(), streams_core::config::ConfigError>(())
    /// ```
    pub fn from_properties<I, K, V>(pairs: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<str>,
    {
        Self::from_sources([PropertySource::from_pairs(pairs)])
    }

    /// Loads a configuration from a Java properties file (`key=value` or `key: value` or
    /// `key value` lines, `#` and `!` comments; see [`PropertySource::parse`]). Errors name
    /// the file and line of the wrong setting.
    ///
    /// ```
    /// use streams_core::config::StreamsConfig;
    ///
    /// let path = std::env::temp_dir().join(format!("doc-config-{}.properties", std::process::id()));
    /// std::fs::write(&path, "# activity tracking\napplication.id = activity\nnum.standby.replicas: 1\n")?;
    /// let config = StreamsConfig::from_file(&path)?;
    /// assert_eq!(config.num_standby_replicas(), 1);
    /// # std::fs::remove_file(&path)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        Self::from_sources([PropertySource::from_file(path)?])
    }

    /// Loads a configuration from the environment variables that start with `STREAMS_`
    /// (see [`env_var_name`] for the mapping: `STREAMS_NUM_STREAM_THREADS` is
    /// `num.stream.threads`). Every such variable must be a setting.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_env_prefixed(DEFAULT_ENV_PREFIX)
    }

    /// Loads a configuration from the environment variables that start with `<prefix>_`
    /// (see [`env_var_name`]).
    pub fn from_env_prefixed(prefix: &str) -> Result<Self, ConfigError> {
        Self::from_sources([PropertySource::from_env(prefix)?])
    }

    /// Loads a configuration from `(name, value)` pairs of environment variables, reading
    /// those that start with `<prefix>_` (the others are ignored). [`from_env`](Self::from_env)
    /// passes the process environment; tests pass their own pairs.
    ///
    /// ```
    /// use streams_core::config::StreamsConfig;
    ///
    /// let vars = [
    ///     ("STREAMS_APPLICATION_ID".to_string(), "activity".to_string()),
    ///     ("STREAMS_NUM_STANDBY_REPLICAS".to_string(), "2".to_string()),
    ///     ("HOME".to_string(), "/root".to_string()), // no prefix: ignored
    /// ];
    /// let config = StreamsConfig::from_env_vars("STREAMS", vars)?;
    /// assert_eq!(config.num_standby_replicas(), 2);
    /// # Ok::<(), streams_core::config::ConfigError>(())
    /// ```
    pub fn from_env_vars<I>(prefix: &str, vars: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = (String, String)>,
    {
        Self::from_sources([PropertySource::from_env_vars(prefix, vars)?])
    }

    /// Loads a configuration from a properties file, then lets the environment variables
    /// under `<prefix>_` override it (the usual deployment: a file in the image, overrides
    /// from the orchestrator).
    pub fn from_file_and_env(path: impl AsRef<Path>, prefix: &str) -> Result<Self, ConfigError> {
        Self::from_sources([
            PropertySource::from_file(path)?,
            PropertySource::from_env(prefix)?,
        ])
    }

    /// Loads a configuration from layered sources: a setting in a later source overrides
    /// the same setting (or its alias) in an earlier one. Within one source a setting may
    /// appear once. After merging, `application.id` is required, every value is parsed,
    /// contradictions are reported, and [`validate`](Self::validate) runs.
    ///
    /// ```
    /// use streams_core::config::{PropertySource, StreamsConfig};
    ///
    /// let file = PropertySource::parse("application.id=activity\nnum.stream.threads=4\n", "app.properties")?;
    /// let env = PropertySource::from_env_vars(
    ///     "STREAMS",
    ///     [("STREAMS_NUM_STREAM_THREADS".to_string(), "2".to_string())],
    /// )?;
    /// let config = StreamsConfig::from_sources([file, env])?;
    /// assert_eq!(config.num_stream_threads(), 2);
    /// # Ok::<(), streams_core::config::ConfigError>(())
    /// ```
    pub fn from_sources<I>(sources: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = PropertySource>,
    {
        let mut settings: BTreeMap<&'static str, Entry> = BTreeMap::new();
        let mut clients: [BTreeMap<String, Entry>; 5] = Default::default();
        for source in sources {
            let mut seen: BTreeMap<String, Entry> = BTreeMap::new();
            for (key, value, origin) in source.entries {
                let entry = Entry {
                    written: key.clone(),
                    value,
                    origin,
                };
                let (slot_key, target) = match resolve(&key, &entry.origin)? {
                    Resolved::Setting(canonical) => {
                        (canonical.to_string(), Target::Setting(canonical))
                    }
                    Resolved::Client(client, rest) => {
                        (key.clone(), Target::Client(client, rest.to_string()))
                    }
                };
                if let Some(first) = seen.get(&slot_key) {
                    return Err(ConfigError::Conflict {
                        first: first.written.clone(),
                        first_origin: Box::new(first.origin.clone()),
                        second: entry.written.clone(),
                        second_origin: Box::new(entry.origin.clone()),
                        detail: "a setting may appear once per source".into(),
                    });
                }
                seen.insert(slot_key, entry.clone());
                match target {
                    Target::Setting(canonical) => {
                        settings.insert(canonical, entry);
                    }
                    Target::Client(client, rest) => {
                        clients[client.index()].insert(rest, entry);
                    }
                }
            }
        }
        let Some(app) = settings.remove(names::APPLICATION_ID) else {
            return Err(ConfigError::Missing {
                setting: names::APPLICATION_ID,
            });
        };
        if let Err(expected) = check_application_id(app.value.trim()) {
            return Err(app.bad_value(expected));
        }
        let mut config = StreamsConfig::new(app.value.trim());
        let handler = settings.remove(names::DESERIALIZATION_EXCEPTION_HANDLER);
        let dlq = settings.remove(names::ERRORS_DEAD_LETTER_QUEUE_TOPIC_NAME);
        for (canonical, entry) in &settings {
            config.apply(canonical, entry)?;
        }
        config.deserialization_handler = resolve_handler(handler.as_ref(), dlq.as_ref())?;
        for (i, map) in clients.into_iter().enumerate() {
            config.clients[i] = map.into_iter().map(|(k, e)| (k, e.value)).collect();
        }
        config.validate()?;
        Ok(config)
    }

    /// Parses one known setting (not `application.id` nor the deserialization handler's
    /// two settings, which are resolved together).
    fn apply(&mut self, canonical: &str, e: &Entry) -> Result<(), ConfigError> {
        use names::*;
        const MS: &str = "a whole number of milliseconds (0 or more)";
        let v = e.value.trim();
        match canonical {
            BOOTSTRAP_SERVERS => {
                let servers: Vec<String> = v.split(',').map(|s| s.trim().to_string()).collect();
                for s in &servers {
                    if check_host_port(s).is_err() {
                        return Err(e.bad_value(
                            "a comma-separated list of host:port (leave the setting out to use the embedded log engine)",
                        ));
                    }
                }
                self.bootstrap_servers = servers;
            }
            APPLICATION_SERVER => {
                if v.is_empty() {
                    self.application_server = None; // Kafka's default is the empty string
                } else if check_host_port(v).is_err() {
                    return Err(e.bad_value("host:port"));
                } else {
                    self.application_server = Some(v.to_string());
                }
            }
            STATE_DIR => {
                if v.is_empty() {
                    return Err(e.bad_value("a directory path"));
                }
                self.state_dir = Some(PathBuf::from(v));
            }
            NUM_STREAM_THREADS => {
                self.num_stream_threads = e.parse_int(1usize, "a whole number, at least 1")?
            }
            COMMIT_INTERVAL_MS => self.commit_interval_ms = Some(e.parse_int(0u64, MS)?),
            PROCESSING_GUARANTEE => {
                self.processing_guarantee = match v.to_ascii_lowercase().as_str() {
                    "at_least_once" => ProcessingGuarantee::AtLeastOnce,
                    "exactly_once_v2" => ProcessingGuarantee::ExactlyOnceV2,
                    "exactly_once" | "exactly_once_beta" => {
                        return Err(e.bad_value(
                            "`at_least_once` or `exactly_once_v2` (`exactly_once` and `exactly_once_beta` were removed in Kafka Streams 4.0; use `exactly_once_v2`)",
                        ));
                    }
                    _ => return Err(e.bad_value("`at_least_once` or `exactly_once_v2`")),
                }
            }
            STATESTORE_CACHE_MAX_BYTES => {
                self.cache_max_bytes = e.parse_int(0usize, "a number of bytes (0 or more)")?
            }
            NUM_STANDBY_REPLICAS => {
                self.num_standby_replicas = e.parse_int(0usize, "a whole number (0 or more)")?
            }
            DEFAULT_DSL_STORE => {
                self.default_dsl_store = match v.to_ascii_lowercase().as_str() {
                    "rocksdb" => DslStore::RocksDb,
                    "in_memory" => DslStore::InMemory,
                    _ => return Err(e.bad_value("`rocksDB` or `in_memory`")),
                }
            }
            PRODUCTION_EXCEPTION_HANDLER => {
                self.production_handler = match v.to_ascii_lowercase().as_str() {
                    "fail"
                    | "defaultproductionexceptionhandler"
                    | "org.apache.kafka.streams.errors.defaultproductionexceptionhandler" => {
                        ProductionHandler::Fail
                    }
                    "continue" => ProductionHandler::Continue,
                    _ => return Err(e.bad_value("`fail` or `continue`")),
                }
            }
            DEFAULT_INVALID_TIMESTAMP_POLICY => {
                self.invalid_timestamp_policy = match v.to_ascii_lowercase().as_str() {
                    "fail" => InvalidTimestampPolicy::Fail,
                    "skip_and_count" => InvalidTimestampPolicy::SkipAndCount,
                    "use_partition_time" => InvalidTimestampPolicy::UsePartitionTime,
                    _ => {
                        return Err(e.bad_value("`fail`, `skip_and_count` or `use_partition_time`"));
                    }
                }
            }
            MAX_TASK_IDLE_MS => {
                self.max_task_idle_ms =
                    e.parse_int(-1i64, "a whole number of milliseconds, or -1 (never wait)")?
            }
            POLL_MS => self.poll_ms = e.parse_int(0u64, MS)?,
            STREAMS_REPARTITION_PURGE => {
                self.repartition_purge = match v.to_ascii_lowercase().as_str() {
                    "true" => true,
                    "false" => false,
                    _ => return Err(e.bad_value("`true` or `false`")),
                }
            }
            STREAMS_IDLE_ADVANCE_MS => {
                let ms = e.parse_int(-1i64, "a whole number of milliseconds, or -1 (off)")?;
                self.idle_advance_ms = (ms >= 0).then_some(ms);
            }
            BUFFERED_RECORDS_PER_PARTITION => {
                self.buffered_records_per_partition =
                    e.parse_int(1usize, "a whole number, at least 1")?
            }
            REPLICATION_FACTOR => {
                let factor = e.parse_int(-1i16, "-1 (the broker's default) or 1 to 32767")?;
                if factor == 0 {
                    return Err(e.bad_value("-1 (the broker's default) or 1 to 32767"));
                }
                self.replication_factor = factor;
            }
            STATE_CLEANUP_DELAY_MS => self.state_cleanup_delay_ms = e.parse_int(0u64, MS)?,
            STATESTORE_MEMORY_BYTES => {
                self.memory_bytes = e.parse_int(
                    streams_state::MIN_ROCKSDB_BUDGET,
                    &format!(
                        "a number of bytes, at least {}",
                        streams_state::MIN_ROCKSDB_BUDGET
                    ),
                )?
            }
            DEFAULT_API_TIMEOUT_MS => self.default_api_timeout_ms = e.parse_int(0u64, MS)?,
            other => {
                return Err(ConfigError::Unknown {
                    setting: other.to_string(),
                    origin: Box::new(e.origin.clone()),
                    suggestion: None,
                });
            }
        }
        Ok(())
    }
}

/// Where a setting came from, for error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Origin {
    /// Passed in code ([`StreamsConfig::from_properties`], [`PropertySource::from_pairs`]).
    Given,
    /// A line of a properties file.
    File {
        /// The file.
        path: PathBuf,
        /// The 1-based line (the first line of a continued line); 0 for the whole file.
        line: usize,
    },
    /// An environment variable.
    Env {
        /// The variable's name.
        var: String,
        /// The prefix it was read under, without the final `_`.
        prefix: String,
    },
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Given => f.write_str("given in code"),
            Origin::File { path, line: 0 } => write!(f, "{}", path.display()),
            Origin::File { path, line } => write!(f, "{}:{line}", path.display()),
            Origin::Env { var, .. } => write!(f, "environment variable {var}"),
        }
    }
}

/// ` (origin)`, or nothing for settings given in code.
fn suffix(origin: &Origin) -> String {
    match origin {
        Origin::Given => String::new(),
        o => format!(" ({o})"),
    }
}

fn unknown_hint(origin: &Origin, suggestion: &Option<&'static str>) -> String {
    match (suggestion, origin) {
        (Some(s), Origin::Env { prefix, .. }) => {
            format!("; did you mean `{s}` ({})?", env_var_name(prefix, s))
        }
        (Some(s), _) => format!("; did you mean `{s}`?"),
        (None, _) => "; Kafka client settings take a prefix: `consumer.`, `producer.`, `admin.`, `main.consumer.` or `restore.consumer.` (settings: docs/CONFIG.md)".into(),
    }
}

/// A configuration error, naming the setting.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigError {
    /// A setting has a value that cannot work.
    #[error("invalid `{setting}`: {detail}")]
    Invalid {
        /// The property name.
        setting: &'static str,
        /// What is wrong.
        detail: String,
    },
    /// A required setting is missing.
    #[error("missing setting `{setting}`: it is required and has no default")]
    Missing {
        /// The property name.
        setting: &'static str,
    },
    /// A name that is no setting.
    #[error("unknown setting `{setting}`{}{}", suffix(.origin), unknown_hint(.origin, .suggestion))]
    Unknown {
        /// The name as written.
        setting: String,
        /// Where it came from.
        origin: Box<Origin>,
        /// The closest known name, if one is close.
        suggestion: Option<&'static str>,
    },
    /// A value that does not parse or is out of range.
    #[error("invalid value `{value}` for `{setting}`{}: expected {expected}", suffix(.origin))]
    BadValue {
        /// The name as written.
        setting: String,
        /// The value as written.
        value: String,
        /// What the setting takes.
        expected: String,
        /// Where it came from.
        origin: Box<Origin>,
    },
    /// A Kafka Streams setting that Rust's types decide instead.
    #[error("`{setting}`{} cannot be set: {reason}", suffix(.origin))]
    Unsupported {
        /// The name as written.
        setting: String,
        /// Where it came from.
        origin: Box<Origin>,
        /// Why, and what to do instead.
        reason: String,
    },
    /// Two settings contradict each other (or one appears twice in a source).
    #[error("conflicting settings `{first}`{} and `{second}`{}: {detail}", suffix(.first_origin), suffix(.second_origin))]
    Conflict {
        /// The first setting as written.
        first: String,
        /// Where it came from.
        first_origin: Box<Origin>,
        /// The second setting as written.
        second: String,
        /// Where it came from.
        second_origin: Box<Origin>,
        /// Why they cannot go together.
        detail: String,
    },
    /// A source that cannot be read or parsed (a missing file, a line with no key...).
    #[error("cannot read the configuration{}: {detail}", suffix(.origin))]
    Source {
        /// The file, line or variable.
        origin: Box<Origin>,
        /// What is wrong.
        detail: String,
    },
}

/// One source of settings: a properties file, the environment, or pairs given in code.
/// Combine several with [`StreamsConfig::from_sources`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PropertySource {
    entries: Vec<(String, String, Origin)>,
}

impl PropertySource {
    /// Settings given in code, as `(name, value)` pairs.
    pub fn from_pairs<I, K, V>(pairs: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<str>,
    {
        Self {
            entries: pairs
                .into_iter()
                .map(|(k, v)| {
                    (
                        k.as_ref().trim().to_string(),
                        v.as_ref().to_string(),
                        Origin::Given,
                    )
                })
                .collect(),
        }
    }

    /// Reads a Java properties file (UTF-8; see [`parse`](Self::parse)).
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Source {
            origin: Box::new(Origin::File {
                path: path.to_path_buf(),
                line: 0,
            }),
            detail: e.to_string(),
        })?;
        Self::parse(&text, path)
    }

    /// Parses Java properties text; `path` names it in errors. Lines are `key=value`,
    /// `key: value` or `key value`; keys and values are trimmed; blank lines and lines
    /// starting with `#` or `!` are skipped; a line ending in an odd number of `\`
    /// continues on the next; `\=`, `\:`, `\ `, `\\`, `\t`, `\n`, `\r` and `\uXXXX` are
    /// escapes as in Java.
    pub fn parse(text: &str, path: impl Into<PathBuf>) -> Result<Self, ConfigError> {
        let path = path.into();
        let mut entries = Vec::new();
        let mut lines = text.lines().enumerate();
        while let Some((i, line)) = lines.next() {
            let origin = Origin::File {
                path: path.clone(),
                line: i + 1,
            };
            let mut logical = line.trim_start().to_string();
            if logical.is_empty() || logical.starts_with('#') || logical.starts_with('!') {
                continue;
            }
            while ends_with_continuation(&logical) {
                logical.pop();
                match lines.next() {
                    Some((_, next)) => logical.push_str(next.trim_start()),
                    None => break,
                }
            }
            let (key, value) = split_property(&logical).map_err(|detail| ConfigError::Source {
                origin: Box::new(origin.clone()),
                detail,
            })?;
            if key.is_empty() {
                return Err(ConfigError::Source {
                    origin: Box::new(origin),
                    detail: format!("`{}` has no setting name", logical.trim()),
                });
            }
            entries.push((key, value, origin));
        }
        Ok(Self { entries })
    }

    /// Reads the process environment's variables that start with `<prefix>_` (see
    /// [`from_env_vars`](Self::from_env_vars)).
    pub fn from_env(prefix: &str) -> Result<Self, ConfigError> {
        let mut vars = Vec::new();
        for (k, v) in std::env::vars_os() {
            let name = k.to_string_lossy().into_owned();
            if !name.starts_with(&env_prefix(prefix)) {
                continue;
            }
            match v.into_string() {
                Ok(v) => vars.push((name, v)),
                Err(_) => {
                    return Err(ConfigError::Source {
                        origin: Box::new(Origin::Env {
                            var: name,
                            prefix: prefix.trim_end_matches('_').to_string(),
                        }),
                        detail: "the value is not UTF-8".into(),
                    });
                }
            }
        }
        Self::from_env_vars(prefix, vars)
    }

    /// Takes the variables of `vars` that start with `<prefix>_` (a trailing `_` on
    /// `prefix` is optional) and maps each name to a setting with [`setting_for_env_var`].
    /// An empty prefix is an error: every variable of the environment would be a setting.
    pub fn from_env_vars<I>(prefix: &str, vars: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = (String, String)>,
    {
        let bare = prefix.trim_end_matches('_');
        if bare.is_empty() {
            return Err(ConfigError::Source {
                origin: Box::new(Origin::Given),
                detail: "the environment prefix must not be empty".into(),
            });
        }
        let mut entries: Vec<(String, String, Origin)> = vars
            .into_iter()
            .filter_map(|(var, value)| {
                let key = setting_for_env_var(bare, &var)?;
                Some((
                    key,
                    value,
                    Origin::Env {
                        var,
                        prefix: bare.to_string(),
                    },
                ))
            })
            .collect();
        // The environment has no order; sort so that errors are deterministic.
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(Self { entries })
    }

    /// The settings, as `(name, value, origin)`.
    pub fn entries(&self) -> impl Iterator<Item = (&str, &str, &Origin)> {
        self.entries
            .iter()
            .map(|(k, v, o)| (k.as_str(), v.as_str(), o))
    }
}

fn env_prefix(prefix: &str) -> String {
    format!("{}_", prefix.trim_end_matches('_'))
}

/// The environment variable of `setting` under `prefix`: the prefix, `_`, then the name in
/// upper case with each `_` doubled and each `.` turned into `_`.
///
/// The mapping round-trips every setting: [`setting_for_env_var`] reverses it. A `-` or any
/// other character is kept as it is.
///
/// ```
/// use streams_core::config::{env_var_name, setting_for_env_var};
///
/// assert_eq!(env_var_name("STREAMS", "num.stream.threads"), "STREAMS_NUM_STREAM_THREADS");
/// assert_eq!(env_var_name("STREAMS", "consumer.max.poll.records"), "STREAMS_CONSUMER_MAX_POLL_RECORDS");
/// assert_eq!(env_var_name("STREAMS", "producer.some_name"), "STREAMS_PRODUCER_SOME__NAME");
/// assert_eq!(
///     setting_for_env_var("STREAMS", "STREAMS_PRODUCER_SOME__NAME").as_deref(),
///     Some("producer.some_name")
/// );
/// ```
pub fn env_var_name(prefix: &str, setting: &str) -> String {
    let mut out = env_prefix(prefix);
    for c in setting.chars() {
        match c {
            '.' => out.push('_'),
            '_' => out.push_str("__"),
            c => out.extend(c.to_uppercase()),
        }
    }
    out
}

/// The setting named by environment variable `var` under `prefix` (`None` when `var` does
/// not start with `<prefix>_`): the rest of the name in lower case, with `__` read as `_`
/// and a single `_` as `.`. The inverse of [`env_var_name`].
pub fn setting_for_env_var(prefix: &str, var: &str) -> Option<String> {
    let rest = var.strip_prefix(&env_prefix(prefix))?;
    let mut out = String::with_capacity(rest.len());
    let mut chars = rest.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '_' {
            if chars.peek() == Some(&'_') {
                chars.next();
                out.push('_');
            } else {
                out.push('.');
            }
        } else {
            out.extend(c.to_lowercase());
        }
    }
    Some(out)
}

/// One setting as written in a source.
#[derive(Debug, Clone)]
struct Entry {
    written: String,
    value: String,
    origin: Origin,
}

impl Entry {
    fn bad_value(&self, expected: impl Into<String>) -> ConfigError {
        ConfigError::BadValue {
            setting: self.written.clone(),
            value: self.value.clone(),
            expected: expected.into(),
            origin: Box::new(self.origin.clone()),
        }
    }

    /// Parses an integer of at least `min`.
    fn parse_int<T>(&self, min: T, expected: &str) -> Result<T, ConfigError>
    where
        T: std::str::FromStr + PartialOrd,
    {
        match self.value.trim().parse::<T>() {
            Ok(n) if n >= min => Ok(n),
            _ => Err(self.bad_value(expected)),
        }
    }
}

enum Resolved<'a> {
    Setting(&'static str),
    Client(ClientPrefix, &'a str),
}

enum Target {
    Setting(&'static str),
    Client(ClientPrefix, String),
}

/// Maps a name to its canonical setting or client prefix, or explains why it is none.
fn resolve<'a>(key: &'a str, origin: &Origin) -> Result<Resolved<'a>, ConfigError> {
    if let Some(canonical) = names::ALL.iter().find(|n| **n == key) {
        return Ok(Resolved::Setting(canonical));
    }
    if let Some((_, canonical)) = names::ALIASES.iter().find(|(alias, _)| *alias == key) {
        return Ok(Resolved::Setting(canonical));
    }
    for client in ClientPrefix::ALL {
        if let Some(rest) = key.strip_prefix(client.prefix()) {
            if rest.is_empty() {
                return Err(ConfigError::Unknown {
                    setting: key.to_string(),
                    origin: Box::new(origin.clone()),
                    suggestion: None,
                });
            }
            return Ok(Resolved::Client(client, rest));
        }
    }
    if names::NOT_SETTABLE.contains(&key) {
        let reason = if key == names::DEFAULT_TIMESTAMP_EXTRACTOR {
            "timestamp extractors are Rust types, not class names: pass one per source with \
             `Consumed::with_timestamp_extractor` (records default to their own timestamps); \
             what happens to negative timestamps is `default.invalid.timestamp.policy` \
             (`fail`, `skip_and_count`, `use_partition_time`)"
        } else {
            "serdes are Rust types, not class names, and are checked at compile time: pass \
             them in `Consumed`, `Produced`, `Grouped` or `Materialized`, or implement \
             `DefaultSerde` for your key and value types (docs/SEMANTICS.md, Serdes)"
        };
        return Err(ConfigError::Unsupported {
            setting: key.to_string(),
            origin: Box::new(origin.clone()),
            reason: reason.into(),
        });
    }
    Err(ConfigError::Unknown {
        setting: key.to_string(),
        origin: Box::new(origin.clone()),
        suggestion: closest_name(key),
    })
}

/// Combines `deserialization.exception.handler` and `errors.dead.letter.queue.topic.name`.
///
/// A dead-letter topic with `log_and_continue` (or with no handler) dead-letters and goes
/// on; with `log_and_fail` it is a conflict, since failing after dead-lettering (Kafka's
/// KIP-1034 behaviour) is not implemented.
fn resolve_handler(
    handler: Option<&Entry>,
    dlq: Option<&Entry>,
) -> Result<DeserializationHandler, ConfigError> {
    let fail = match handler {
        None => None,
        Some(h) => Some(match h.value.trim().to_ascii_lowercase().as_str() {
            "log_and_fail"
            | "logandfailexceptionhandler"
            | "org.apache.kafka.streams.errors.logandfailexceptionhandler" => true,
            "log_and_continue"
            | "logandcontinueexceptionhandler"
            | "org.apache.kafka.streams.errors.logandcontinueexceptionhandler" => false,
            _ => {
                return Err(h.bad_value(
                        "`log_and_fail` or `log_and_continue` (to dead-letter, also set `errors.dead.letter.queue.topic.name`)",
                    ));
            }
        }),
    };
    match (dlq, fail) {
        (Some(d), Some(true)) => {
            let h = handler.unwrap_or(d);
            Err(ConfigError::Conflict {
                first: h.written.clone(),
                first_origin: Box::new(h.origin.clone()),
                second: d.written.clone(),
                second_origin: Box::new(d.origin.clone()),
                detail: "`log_and_fail` stops at the first bad record and does not write to a \
                         dead-letter topic; set the handler to `log_and_continue` (or leave it \
                         out) to dead-letter and go on, or remove the topic"
                    .into(),
            })
        }
        (Some(d), _) => {
            let topic = d.value.trim();
            if topic.is_empty() {
                return Err(d.bad_value("a topic name"));
            }
            Ok(DeserializationHandler::DeadLetter {
                topic: topic.to_string(),
            })
        }
        (None, Some(false)) => Ok(DeserializationHandler::LogAndContinue),
        (None, _) => Ok(DeserializationHandler::Fail),
    }
}

fn policy_name(policy: InvalidTimestampPolicy) -> &'static str {
    match policy {
        InvalidTimestampPolicy::Fail => "fail",
        InvalidTimestampPolicy::SkipAndCount => "skip_and_count",
        InvalidTimestampPolicy::UsePartitionTime => "use_partition_time",
    }
}

/// `Err(what is expected)` unless `id` is a usable application id.
fn check_application_id(id: &str) -> Result<(), &'static str> {
    if !id.is_empty()
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    {
        Ok(())
    } else {
        Err(
            "may only contain ASCII letters, digits, '.', '_' and '-' (it names topics and directories)",
        )
    }
}

/// `host:port` with a non-empty host and a port from 1 to 65535 (`[v6]:port` too).
fn check_host_port(s: &str) -> Result<(), &'static str> {
    let Some((host, port)) = s.rsplit_once(':') else {
        return Err("expected host:port");
    };
    if host.is_empty() || host.contains(char::is_whitespace) {
        return Err("expected host:port with a host name");
    }
    match port.parse::<u16>() {
        Ok(p) if p > 0 => Ok(()),
        _ => Err("expected host:port with a port from 1 to 65535"),
    }
}

/// Whether a client setting's value should not be logged.
fn is_secret(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    ["password", "secret", "jaas", "credentials", "token"]
        .iter()
        .any(|w| k.contains(w))
        || k.ends_with("keystore.key")
        || k.ends_with("key.pem")
}

/// The known name closest to `key`, if it is close (a typo, other case, `_` for `.`).
fn closest_name(key: &str) -> Option<&'static str> {
    let lower = key.to_ascii_lowercase();
    let candidates = names::ALL
        .iter()
        .chain(names::ALIASES.iter().map(|(alias, _)| alias))
        .chain(names::NOT_SETTABLE.iter());
    let (best, distance) = candidates
        .map(|c| (*c, edit_distance(&lower, c)))
        .min_by_key(|(_, d)| *d)?;
    (distance <= (key.chars().count() / 5).max(2)).then_some(best)
}

/// Levenshtein distance over chars, with `_` and `.` as the same character.
fn edit_distance(a: &str, b: &str) -> usize {
    let norm = |c: char| if c == '_' { '.' } else { c };
    let a: Vec<char> = a.chars().map(norm).collect();
    let b: Vec<char> = b.chars().map(norm).collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.iter().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitute = prev[j] + usize::from(ca != cb);
            cur[j + 1] = substitute.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// Whether a properties line continues on the next: it ends in an odd number of `\`.
fn ends_with_continuation(line: &str) -> bool {
    line.chars().rev().take_while(|c| *c == '\\').count() % 2 == 1
}

/// Splits a logical properties line into its unescaped, trimmed key and value.
fn split_property(line: &str) -> Result<(String, String), String> {
    let mut key = String::new();
    let mut chars = line.chars().peekable();
    // The key ends at the first unescaped '=', ':' or whitespace.
    let mut separator_seen = false;
    while let Some(c) = chars.next() {
        match c {
            '\\' => key.push(unescape(&mut chars)?),
            '=' | ':' => {
                separator_seen = true;
                break;
            }
            c if c.is_whitespace() => break,
            c => key.push(c),
        }
    }
    // Whitespace, then at most one '=' or ':' (if none ended the key), then whitespace.
    while chars.peek().is_some_and(|c| c.is_whitespace()) {
        chars.next();
    }
    if !separator_seen && matches!(chars.peek(), Some('=') | Some(':')) {
        chars.next();
    }
    let mut value = String::new();
    while let Some(c) = chars.next() {
        match c {
            '\\' => value.push(unescape(&mut chars)?),
            c => value.push(c),
        }
    }
    Ok((key.trim().to_string(), value.trim().to_string()))
}

/// The character an escape stands for (the `\` already read).
fn unescape(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> Result<char, String> {
    Ok(match chars.next() {
        Some('t') => '\t',
        Some('n') => '\n',
        Some('r') => '\r',
        Some('f') => '\u{c}',
        Some('u') => {
            let hex: String = chars.by_ref().take(4).collect();
            u32::from_str_radix(&hex, 16)
                .ok()
                .filter(|_| hex.len() == 4)
                .and_then(char::from_u32)
                .ok_or_else(|| format!("`\\u{hex}` is not a \\uXXXX escape"))?
        }
        Some(c) => c,
        None => '\\',
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(pairs: &[(&str, &str)]) -> Result<StreamsConfig, ConfigError> {
        StreamsConfig::from_properties(pairs.iter().copied())
    }

    #[test]
    fn bad_application_ids_name_the_setting() {
        let err = StreamsConfig::new("").validate().unwrap_err();
        assert!(err.to_string().contains("application.id"));
        let err = StreamsConfig::new("a b").validate().unwrap_err();
        assert!(err.to_string().contains("may only contain"));
        StreamsConfig::new("my-app_1.0").validate().unwrap();
    }

    #[test]
    fn defaults_are_kafkas() {
        let c = StreamsConfig::new("app");
        assert_eq!(c.num_stream_threads(), 1);
        assert_eq!(c.commit_interval_ms(), 30_000);
        assert_eq!(c.processing_guarantee(), ProcessingGuarantee::AtLeastOnce);
        assert_eq!(c.cache_max_bytes(), 10_485_760);
        assert_eq!(c.num_standby_replicas(), 0);
        assert_eq!(c.default_dsl_store(), DslStore::RocksDb);
        assert_eq!(c.deserialization_handler(), &DeserializationHandler::Fail);
        assert_eq!(c.max_task_idle_ms(), 0);
        assert_eq!(c.poll_ms(), 100);
        assert_eq!(c.buffered_records_per_partition(), 1000);
        assert_eq!(c.replication_factor(), -1);
        assert_eq!(c.state_cleanup_delay_ms(), 600_000);
        assert_eq!(c.default_api_timeout_ms(), 60_000);
        assert!(c.bootstrap_servers().is_empty());
        assert_eq!(c.application_server(), None);
        assert_eq!(c.state_dir(), None);
        c.validate().unwrap();
        assert_eq!(load(&[("application.id", "app")]).unwrap(), c);
    }

    #[test]
    fn exactly_once_lowers_the_default_commit_interval_only() {
        let eos =
            StreamsConfig::new("a").with_processing_guarantee(ProcessingGuarantee::ExactlyOnceV2);
        assert_eq!(eos.commit_interval_ms(), 100);
        let set = eos.with_commit_interval(Duration::from_secs(2));
        assert_eq!(set.commit_interval_ms(), 2000);
        let c = load(&[
            ("application.id", "a"),
            ("commit.interval.ms", "250"),
            ("processing.guarantee", "exactly_once_v2"),
        ])
        .unwrap();
        assert_eq!(c.commit_interval_ms(), 250);
    }

    #[test]
    fn unknown_names_suggest_the_closest() {
        for (typo, expected) in [
            ("num.stream.thread", Some("num.stream.threads")),
            ("APPLICATION.ID", Some("application.id")),
            ("num_stream_threads", Some("num.stream.threads")),
            ("commit.interval", Some("commit.interval.ms")),
            (
                "cache.max.bytes.bufering",
                Some("cache.max.bytes.buffering"),
            ),
            ("linger.ms", None),
        ] {
            let err = load(&[("application.id", "a"), (typo, "1")]).unwrap_err();
            match err {
                ConfigError::Unknown {
                    setting,
                    suggestion,
                    ..
                } => {
                    assert_eq!(setting, typo);
                    assert_eq!(suggestion, expected, "{typo}");
                }
                other => panic!("{typo}: {other}"),
            }
        }
    }

    #[test]
    fn bad_values_name_setting_value_and_expectation() {
        let cases = [
            ("num.stream.threads", "0", "at least 1"),
            ("num.stream.threads", "-1", "at least 1"),
            ("commit.interval.ms", "1s", "milliseconds"),
            ("processing.guarantee", "exactly_once", "exactly_once_v2"),
            ("default.dsl.store", "lmdb", "`rocksDB` or `in_memory`"),
            ("replication.factor", "0", "-1"),
            ("max.task.idle.ms", "-2", "-1"),
            ("statestore.memory.bytes", "1024", "at least 8388608"),
            ("bootstrap.servers", "localhost", "host:port"),
            ("application.server", "host:99999", "host:port"),
            (
                "deserialization.exception.handler",
                "ignore",
                "log_and_continue",
            ),
            ("default.invalid.timestamp.policy", "skip", "skip_and_count"),
            ("state.dir", " ", "directory"),
        ];
        for (setting, value, expected) in cases {
            let err = load(&[("application.id", "a"), (setting, value)]).unwrap_err();
            let ConfigError::BadValue {
                setting: s,
                value: v,
                expected: e,
                ..
            } = &err
            else {
                panic!("{setting}={value}: {err}");
            };
            assert_eq!((s.as_str(), v.as_str()), (setting, value));
            assert!(e.contains(expected), "{setting}: {err}");
        }
    }

    #[test]
    fn aliases_count_as_their_setting() {
        let c = load(&[("application.id", "a"), ("cache.max.bytes.buffering", "7")]).unwrap();
        assert_eq!(c.cache_max_bytes(), 7);
        let err = load(&[
            ("application.id", "a"),
            ("cache.max.bytes.buffering", "7"),
            ("statestore.cache.max.bytes", "8"),
        ])
        .unwrap_err();
        assert!(matches!(err, ConfigError::Conflict { .. }), "{err}");
    }

    #[test]
    fn handler_and_dead_letter_topic_combine() {
        let dl = |pairs: &[(&str, &str)]| {
            let mut all = vec![("application.id", "a")];
            all.extend_from_slice(pairs);
            load(&all).map(|c| c.deserialization_handler().clone())
        };
        let topic = DeserializationHandler::DeadLetter {
            topic: "dlq".into(),
        };
        assert_eq!(
            dl(&[("errors.dead.letter.queue.topic.name", "dlq")]).unwrap(),
            topic
        );
        assert_eq!(
            dl(&[
                ("deserialization.exception.handler", "log_and_continue"),
                ("errors.dead.letter.queue.topic.name", "dlq")
            ])
            .unwrap(),
            topic
        );
        assert_eq!(
            dl(&[(
                "default.deserialization.exception.handler",
                "org.apache.kafka.streams.errors.LogAndContinueExceptionHandler"
            )])
            .unwrap(),
            DeserializationHandler::LogAndContinue
        );
        let err = dl(&[
            ("deserialization.exception.handler", "log_and_fail"),
            ("errors.dead.letter.queue.topic.name", "dlq"),
        ])
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("does not write to a dead-letter topic"),
            "{err}"
        );
    }

    #[test]
    fn serdes_and_extractors_are_not_settable() {
        for name in [
            "default.key.serde",
            "default.value.serde",
            "default.timestamp.extractor",
        ] {
            let err = load(&[("application.id", "a"), (name, "x")]).unwrap_err();
            assert!(
                matches!(&err, ConfigError::Unsupported { setting, .. } if setting == name),
                "{err}"
            );
            assert!(err.to_string().contains("Rust types"), "{err}");
        }
    }

    #[test]
    fn client_settings_pass_through_verbatim() {
        let c = load(&[
            ("application.id", "a"),
            ("consumer.max.poll.records", "500"),
            ("main.consumer.fetch.min.bytes", "1"),
            ("restore.consumer.max.poll.records", "2000"),
            ("producer.linger.ms", " 5"),
            ("admin.sasl.jaas.config", "secret stuff"),
        ])
        .unwrap();
        assert_eq!(
            c.client_properties(ClientPrefix::Consumer)["max.poll.records"],
            "500"
        );
        assert_eq!(
            c.client_properties(ClientPrefix::MainConsumer)["fetch.min.bytes"],
            "1"
        );
        assert_eq!(
            c.client_properties(ClientPrefix::RestoreConsumer)["max.poll.records"],
            "2000"
        );
        assert_eq!(
            c.client_properties(ClientPrefix::Producer)["linger.ms"],
            " 5"
        );
        let props = c.to_properties();
        assert_eq!(props["admin.sasl.jaas.config"], "[hidden]");
        // Debug output (what logs and error messages print) hides them too.
        let printed = format!("{c:?}");
        assert!(
            printed.contains("[hidden]") && !printed.contains("secret stuff"),
            "{printed}"
        );
        assert_eq!(props["main.consumer.fetch.min.bytes"], "1");
        let err = load(&[("application.id", "a"), ("consumer.", "1")]).unwrap_err();
        assert!(matches!(err, ConfigError::Unknown { .. }), "{err}");
    }

    #[test]
    fn to_properties_round_trips() {
        let c = StreamsConfig::new("app")
            .with_bootstrap_servers(["b1:9092", "b2:9092"])
            .with_application_server("localhost:8080")
            .with_state_dir("/var/lib/streams")
            .with_num_stream_threads(3)
            .with_processing_guarantee(ProcessingGuarantee::ExactlyOnceV2)
            .with_cache_max_bytes(0)
            .with_num_standby_replicas(1)
            .with_default_dsl_store(DslStore::InMemory)
            .with_deserialization_handler(DeserializationHandler::DeadLetter {
                topic: "dlq".into(),
            })
            .with_invalid_timestamp_policy(InvalidTimestampPolicy::UsePartitionTime)
            .with_max_task_idle_ms(-1)
            .with_poll(Duration::from_millis(50))
            .with_buffered_records_per_partition(10)
            .with_replication_factor(3)
            .with_state_cleanup_delay(Duration::from_secs(1))
            .with_memory_bytes(64 << 20)
            .with_default_api_timeout(Duration::from_secs(5))
            .with_client_property(ClientPrefix::Consumer, "max.poll.records", "10");
        let props = c.to_properties();
        for name in names::ALL {
            assert!(props.contains_key(*name), "{name}");
        }
        let back = StreamsConfig::from_properties(&props).unwrap();
        assert_eq!(back.to_properties(), props);
        assert_eq!(back.commit_interval_ms(), 100);
    }

    #[test]
    fn properties_text_parses_like_java() {
        let text = "# comment\n! also a comment\n\n  application.id = app  \nnum.stream.threads:2\n\
                    state.dir /tmp/a\\ b\nconsumer.client.id=a\\=b\\u0041\nproducer.acks = \\\n    all\n\
                    admin.empty=\n";
        let src = PropertySource::parse(text, "t.properties").unwrap();
        let got: Vec<(&str, &str)> = src.entries().map(|(k, v, _)| (k, v)).collect();
        assert_eq!(
            got,
            [
                ("application.id", "app"),
                ("num.stream.threads", "2"),
                ("state.dir", "/tmp/a b"),
                ("consumer.client.id", "a=bA"),
                ("producer.acks", "all"),
                ("admin.empty", ""),
            ]
        );
        let (_, _, origin) = src.entries().nth(4).unwrap();
        assert_eq!(
            origin,
            &Origin::File {
                path: "t.properties".into(),
                line: 8
            }
        );
        let err = PropertySource::parse("=x\n", "t").unwrap_err();
        assert!(err.to_string().contains("t:1"), "{err}");
        let err = PropertySource::parse("a=\\u12\n", "t").unwrap_err();
        assert!(err.to_string().contains("\\uXXXX"), "{err}");
    }

    #[test]
    fn env_names_round_trip_for_every_setting() {
        let all = names::ALL
            .iter()
            .chain(names::ALIASES.iter().map(|(a, _)| a))
            .copied()
            .chain(["consumer.max.poll.records", "producer.odd_name.x"]);
        for name in all {
            let var = env_var_name("STREAMS", name);
            assert!(var.starts_with("STREAMS_"), "{var}");
            assert_eq!(setting_for_env_var("STREAMS_", &var).as_deref(), Some(name));
        }
        assert_eq!(setting_for_env_var("STREAMS", "STREAMSX_A"), None);
    }

    #[test]
    fn env_errors_name_the_variable() {
        let vars = [
            ("STREAMS_APPLICATION_ID".to_string(), "a".to_string()),
            ("STREAMS_NUM_STREAM_THREAD".to_string(), "2".to_string()),
        ];
        let err = StreamsConfig::from_env_vars("STREAMS", vars).unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown setting `num.stream.thread` (environment variable STREAMS_NUM_STREAM_THREAD); \
             did you mean `num.stream.threads` (STREAMS_NUM_STREAM_THREADS)?"
        );
        let err = StreamsConfig::from_env_vars("", Vec::new()).unwrap_err();
        assert!(matches!(err, ConfigError::Source { .. }), "{err}");
    }

    #[test]
    fn later_sources_override_earlier_ones() {
        let file = PropertySource::parse(
            "application.id=a\ncache.max.bytes.buffering=1\npoll.ms=5\n",
            "f",
        )
        .unwrap();
        let env = PropertySource::from_pairs([("statestore.cache.max.bytes", "2")]);
        let c = StreamsConfig::from_sources([file, env]).unwrap();
        assert_eq!((c.cache_max_bytes(), c.poll_ms()), (2, 5));
    }

    #[test]
    fn missing_application_id() {
        let err = load(&[("poll.ms", "1")]).unwrap_err();
        assert_eq!(
            err,
            ConfigError::Missing {
                setting: "application.id"
            }
        );
    }

    #[test]
    fn validate_checks_code_built_configs() {
        let bad = [
            StreamsConfig::new("a").with_num_stream_threads(0),
            StreamsConfig::new("a").with_buffered_records_per_partition(0),
            StreamsConfig::new("a").with_replication_factor(0),
            StreamsConfig::new("a").with_max_task_idle_ms(-5),
            StreamsConfig::new("a").with_application_server("nohost"),
            StreamsConfig::new("a").with_bootstrap_servers([":9092"]),
            StreamsConfig::new("a").with_client_property(ClientPrefix::Admin, "", "x"),
            StreamsConfig::new("a").with_memory_bytes(1),
        ];
        for c in bad {
            assert!(c.validate().is_err(), "{c:?}");
        }
    }

    #[test]
    fn the_runtime_refuses_what_it_cannot_honour() {
        assert!(StreamsConfig::new("a").check_embedded_runtime().is_ok());
        for c in [
            StreamsConfig::new("a").with_bootstrap_servers(["k:9092"]),
            StreamsConfig::new("a").with_processing_guarantee(ProcessingGuarantee::ExactlyOnceV2),
        ] {
            assert!(c.check_embedded_runtime().is_err(), "{c:?}");
        }
        // On Kafka, bootstrap.servers is what it needs.
        let kafka = StreamsConfig::new("a").with_bootstrap_servers(["k:9092"]);
        assert!(kafka.check_runtime().is_ok());
        assert!(
            StreamsConfig::new("a")
                .with_max_task_idle_ms(10)
                .check_runtime()
                .is_ok()
        );
    }
}
