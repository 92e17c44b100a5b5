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

mod clients;
mod env;
mod error;
mod handlers;
mod load;
mod properties;
mod suggest;

pub use clients::ClientPrefix;
pub use env::{DEFAULT_ENV_PREFIX, env_var_name, setting_for_env_var};
pub use error::{ConfigError, Origin};
pub use handlers::{DeserializationHandler, ProcessingHandler, ProductionHandler, dlq_headers};
pub use properties::PropertySource;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::time::InvalidTimestampPolicy;
use clients::is_secret;

/// The names of the settings, as they appear in properties files (Kafka Streams' names
/// unless the doc says "ours").
pub mod names;

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

/// Which metrics are recorded (property `metrics.recording.level`, as in Kafka Streams):
/// each metric has a level, and only those at or below the configured one are recorded.
///
/// `INFO` (the default) records the thread and task metrics and the end-to-end latency of
/// source and terminal nodes; `DEBUG` adds the metrics Kafka records only at `DEBUG`
/// (state store operations, the record cache's hit ratio, the suppression buffer, record
/// lateness, per-node process counts). At `INFO` the `DEBUG` metrics cost nothing: their
/// recording layers are not even built. `TRACE` records the same as `DEBUG` here. See
/// docs/OPERATIONS.md.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub enum RecordingLevel {
    /// `INFO`: the metrics an operator always needs.
    #[default]
    Info,
    /// `DEBUG`: also the per-store, per-cache and per-node metrics.
    Debug,
    /// `TRACE`: Kafka's finest level (no metric of ours needs it: as `DEBUG`).
    Trace,
}

impl RecordingLevel {
    /// The property value: `INFO`, `DEBUG` or `TRACE`.
    pub fn as_str(self) -> &'static str {
        match self {
            RecordingLevel::Info => "INFO",
            RecordingLevel::Debug => "DEBUG",
            RecordingLevel::Trace => "TRACE",
        }
    }

    /// Whether metrics of level `DEBUG` are recorded.
    pub fn records_debug(self) -> bool {
        self >= RecordingLevel::Debug
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
    processing_handler: ProcessingHandler,
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
    thread_alignment: bool,
    metrics_recording_level: RecordingLevel,
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
            processing_handler: ProcessingHandler::default(),
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
            thread_alignment: false,
            metrics_recording_level: RecordingLevel::Info,
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

    /// Beyond Kafka Streams (property `streams.thread.alignment`, default `false`): whether
    /// the tasks of this instance's stream threads stay within a second of event time of
    /// each other. Catching up a backlog, a faster thread then waits for a slower one
    /// instead of getting minutes ahead, so that the tasks behind a repartition topic fed
    /// by both receive their records nearly in timestamp order and a grace of seconds
    /// drops nothing (docs/SEMANTICS.md, "Time"). Off, each thread runs at its own pace, as
    /// in Kafka Streams; a thread always processes its own tasks oldest record first.
    ///
    /// ```
    /// use streams_core::config::StreamsConfig;
    /// let config = StreamsConfig::new("app").with_thread_alignment(true);
    /// assert!(config.thread_alignment());
    /// assert!(!StreamsConfig::new("app").thread_alignment());
    /// ```
    pub fn with_thread_alignment(mut self, aligned: bool) -> Self {
        self.thread_alignment = aligned;
        self
    }

    /// Whether the instance's threads are aligned in event time.
    pub fn thread_alignment(&self) -> bool {
        self.thread_alignment
    }

    /// Sets which metrics are recorded (property `metrics.recording.level`, default
    /// `INFO`); see [`RecordingLevel`].
    pub fn with_metrics_recording_level(mut self, level: RecordingLevel) -> Self {
        self.metrics_recording_level = level;
        self
    }

    /// Which metrics are recorded.
    pub fn metrics_recording_level(&self) -> RecordingLevel {
        self.metrics_recording_level
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

    /// Sets what happens when a processor fails on a record (property
    /// `processing.exception.handler`). Default: [`ProcessingHandler::Fail`].
    ///
    /// ```
    /// use streams_core::config::{ProcessingHandler, StreamsConfig};
    /// let config = StreamsConfig::new("app").with_processing_handler(ProcessingHandler::LogAndContinue);
    /// assert_eq!(config.processing_handler(), ProcessingHandler::LogAndContinue);
    /// ```
    pub fn with_processing_handler(mut self, handler: ProcessingHandler) -> Self {
        self.processing_handler = handler;
        self
    }

    /// The processing handler.
    pub fn processing_handler(&self) -> ProcessingHandler {
        self.processing_handler
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
            PROCESSING_EXCEPTION_HANDLER,
            match self.processing_handler {
                ProcessingHandler::Fail => "log_and_fail",
                ProcessingHandler::LogAndContinue => "log_and_continue",
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
        put(STREAMS_THREAD_ALIGNMENT, self.thread_alignment.to_string());
        put(
            METRICS_RECORDING_LEVEL,
            self.metrics_recording_level.as_str().into(),
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
        // Nothing is refused today (exactly_once_v2 was, until transactions existed).
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Loads pairs given in code (shared by the tests of every file of `config`).
    pub(super) fn load(pairs: &[(&str, &str)]) -> Result<StreamsConfig, ConfigError> {
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
        assert_eq!(c.metrics_recording_level(), RecordingLevel::Info);
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
    fn metrics_recording_level_parses_kafkas_values_and_round_trips() {
        for (value, level) in [
            ("INFO", RecordingLevel::Info),
            ("debug", RecordingLevel::Debug),
            ("Trace", RecordingLevel::Trace),
        ] {
            let c = load(&[("application.id", "a"), ("metrics.recording.level", value)]).unwrap();
            assert_eq!(c.metrics_recording_level(), level);
            assert_eq!(level.records_debug(), level != RecordingLevel::Info);
            let props = c.to_properties();
            assert_eq!(props["metrics.recording.level"], value.to_ascii_uppercase());
        }
        let c = StreamsConfig::new("a").with_metrics_recording_level(RecordingLevel::Debug);
        assert_eq!(c.metrics_recording_level(), RecordingLevel::Debug);
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
        assert!(
            StreamsConfig::new("a")
                .with_processing_guarantee(ProcessingGuarantee::ExactlyOnceV2)
                .check_embedded_runtime()
                .is_ok()
        );
        let c = StreamsConfig::new("a").with_bootstrap_servers(["k:9092"]);
        assert!(c.check_embedded_runtime().is_err(), "{c:?}");
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
