//! Application configuration.
//!
//! [`StreamsConfig`] carries the settings that topologies and the test driver need today,
//! under Kafka Streams' property names (`application.id`, the error handlers). Each setter's
//! doc names its property and default.

use std::path::{Path, PathBuf};

use crate::time::InvalidTimestampPolicy;

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

/// What a source does with a record whose key or value does not deserialize.
///
/// Property: `default.deserialization.exception.handler` (`fail`, `log-and-continue`) and
/// `errors.dead.letter.queue.topic.name` for [`DeserializationHandler::DeadLetter`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum DeserializationHandler {
    /// Stop processing with an error naming topic, partition and offset (Kafka's default).
    #[default]
    Fail,
    /// Log the record, count it in the `skipped-records` metric, and go on.
    LogAndContinue,
    /// Send the original key and value bytes to a dead-letter topic, with the error in
    /// headers (`__streams.errors.*`), count it, and go on.
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

/// The configuration of a streams application.
///
/// ```
/// use streams_core::config::{StreamsConfig, DeserializationHandler};
/// let config = StreamsConfig::new("activity")
///     .with_deserialization_handler(DeserializationHandler::LogAndContinue);
/// assert_eq!(config.application_id(), "activity");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamsConfig {
    application_id: String,
    deserialization_handler: DeserializationHandler,
    invalid_timestamp_policy: InvalidTimestampPolicy,
    state_dir: Option<PathBuf>,
    cache_max_bytes: usize,
    memory_bytes: usize,
    default_dsl_store: DslStore,
    commit_interval_ms: u64,
    idle_advance_ms: Option<i64>,
}

/// Default of `statestore.cache.max.bytes`: 10 MiB, as in Kafka Streams.
pub const DEFAULT_CACHE_MAX_BYTES: usize = 10 << 20;
/// Default of `statestore.memory.bytes`: 256 MiB for RocksDB (block cache and memtables of
/// every store together).
pub const DEFAULT_MEMORY_BYTES: usize = 256 << 20;

impl StreamsConfig {
    /// A configuration for the application `application_id` (property `application.id`: it
    /// prefixes internal topics and names the consumer group and state directory).
    pub fn new(application_id: impl Into<String>) -> Self {
        Self {
            application_id: application_id.into(),
            deserialization_handler: DeserializationHandler::default(),
            invalid_timestamp_policy: InvalidTimestampPolicy::default(),
            state_dir: None,
            cache_max_bytes: DEFAULT_CACHE_MAX_BYTES,
            memory_bytes: DEFAULT_MEMORY_BYTES,
            default_dsl_store: DslStore::default(),
            commit_interval_ms: 30_000,
            idle_advance_ms: None,
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

    /// The idle-advance threshold in ms, if idle advance is on; see
    /// [`with_idle_advance`](Self::with_idle_advance).
    pub fn idle_advance_ms(&self) -> Option<i64> {
        self.idle_advance_ms
    }

    /// Sets how often the runtime commits (property `commit.interval.ms`): flushes caches
    /// and stores, writes checkpoints and commits consumed offsets. Default: 30 s.
    pub fn with_commit_interval(mut self, interval: std::time::Duration) -> Self {
        self.commit_interval_ms = u64::try_from(interval.as_millis()).unwrap_or(u64::MAX);
        self
    }

    /// The commit interval in ms.
    pub fn commit_interval_ms(&self) -> u64 {
        self.commit_interval_ms
    }

    /// Sets the state directory (property `state.dir`): stores live in
    /// `<state.dir>/<application.id>/<task id>/`. Default: none, which the test driver
    /// replaces with a fresh temporary directory.
    pub fn with_state_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.state_dir = Some(dir.into());
        self
    }

    /// The state directory, if set.
    pub fn state_dir(&self) -> Option<&Path> {
        self.state_dir.as_deref()
    }

    /// Sets the record cache budget shared by the stores of one stream thread (property
    /// `statestore.cache.max.bytes`). 0 turns caching off: every update is forwarded.
    /// Default: 10 MiB.
    pub fn with_cache_max_bytes(mut self, bytes: usize) -> Self {
        self.cache_max_bytes = bytes;
        self
    }

    /// The record cache budget.
    pub fn cache_max_bytes(&self) -> usize {
        self.cache_max_bytes
    }

    /// Sets the process-wide RocksDB memory budget (property `statestore.memory.bytes`):
    /// block cache and memtables of every store, however many stores and partitions.
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

    /// The application id.
    pub fn application_id(&self) -> &str {
        &self.application_id
    }

    /// Sets the deserialization handler. Default: [`DeserializationHandler::Fail`].
    pub fn with_deserialization_handler(mut self, handler: DeserializationHandler) -> Self {
        self.deserialization_handler = handler;
        self
    }

    /// The deserialization handler.
    pub fn deserialization_handler(&self) -> &DeserializationHandler {
        &self.deserialization_handler
    }

    /// Sets what sources without their own policy do with invalid (negative) timestamps.
    /// Default: [`InvalidTimestampPolicy::Fail`] (Kafka's `FailOnInvalidTimestamp`).
    pub fn with_invalid_timestamp_policy(mut self, policy: InvalidTimestampPolicy) -> Self {
        self.invalid_timestamp_policy = policy;
        self
    }

    /// The default invalid-timestamp policy.
    pub fn invalid_timestamp_policy(&self) -> InvalidTimestampPolicy {
        self.invalid_timestamp_policy
    }

    /// Checks the configuration, naming the setting that is wrong.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.application_id.is_empty() {
            return Err(ConfigError::Invalid {
                setting: "application.id",
                detail: "must not be empty".into(),
            });
        }
        if !self
            .application_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        {
            return Err(ConfigError::Invalid {
                setting: "application.id",
                detail: format!(
                    "`{}` may only contain ASCII letters, digits, '.', '_' and '-' (it names topics and directories)",
                    self.application_id
                ),
            });
        }
        if self.memory_bytes < streams_state::MIN_ROCKSDB_BUDGET {
            return Err(ConfigError::Invalid {
                setting: "statestore.memory.bytes",
                detail: format!(
                    "{} is below the minimum of {} bytes",
                    self.memory_bytes,
                    streams_state::MIN_ROCKSDB_BUDGET
                ),
            });
        }
        if let DeserializationHandler::DeadLetter { topic } = &self.deserialization_handler
            && topic.is_empty()
        {
            return Err(ConfigError::Invalid {
                setting: "errors.dead.letter.queue.topic.name",
                detail: "must not be empty".into(),
            });
        }
        Ok(())
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_application_ids_name_the_setting() {
        let err = StreamsConfig::new("").validate().unwrap_err();
        assert!(err.to_string().contains("application.id"));
        let err = StreamsConfig::new("a b").validate().unwrap_err();
        assert!(err.to_string().contains("may only contain"));
        StreamsConfig::new("my-app_1.0").validate().unwrap();
    }
}
