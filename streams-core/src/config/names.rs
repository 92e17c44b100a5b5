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
/// `processing.exception.handler`: `log_and_fail` or `log_and_continue`, for a processor
/// that fails on a record (KIP-1033).
pub const PROCESSING_EXCEPTION_HANDLER: &str = "processing.exception.handler";
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
/// `streams.thread.alignment` (ours): keep the tasks of an instance's threads within a
/// second of event time of each other (`true`) or let each thread run at its own pace
/// (`false`, the default, as Kafka Streams does).
pub const STREAMS_THREAD_ALIGNMENT: &str = "streams.thread.alignment";
/// `metrics.recording.level`: `INFO`, `DEBUG` or `TRACE`, which metrics are recorded.
pub const METRICS_RECORDING_LEVEL: &str = "metrics.recording.level";

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
    PROCESSING_EXCEPTION_HANDLER,
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
    STREAMS_THREAD_ALIGNMENT,
    METRICS_RECORDING_LEVEL,
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
