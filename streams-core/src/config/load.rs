//! Loading a configuration from property sources: resolving each name to its setting (or
//! client prefix), parsing the values, and combining the settings that go together.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::suggest::closest_name;
use super::{
    ClientPrefix, ConfigError, DEFAULT_ENV_PREFIX, DeserializationHandler, DslStore, Origin,
    ProcessingGuarantee, ProcessingHandler, ProductionHandler, PropertySource, RecordingLevel,
    StreamsConfig, check_application_id, check_host_port, names,
};
use crate::time::InvalidTimestampPolicy;

impl StreamsConfig {
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
    /// (see [`env_var_name`](super::env_var_name) for the mapping:
    /// `STREAMS_NUM_STREAM_THREADS` is `num.stream.threads`). Every such variable must be a
    /// setting.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_env_prefixed(DEFAULT_ENV_PREFIX)
    }

    /// Loads a configuration from the environment variables that start with `<prefix>_`
    /// (see [`env_var_name`](super::env_var_name)).
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
            PROCESSING_EXCEPTION_HANDLER => {
                self.processing_handler = match v.to_ascii_lowercase().as_str() {
                    "log_and_fail"
                    | "logandfailprocessingexceptionhandler"
                    | "org.apache.kafka.streams.errors.logandfailprocessingexceptionhandler" => {
                        ProcessingHandler::Fail
                    }
                    "log_and_continue"
                    | "logandcontinueprocessingexceptionhandler"
                    | "org.apache.kafka.streams.errors.logandcontinueprocessingexceptionhandler" => {
                        ProcessingHandler::LogAndContinue
                    }
                    _ => return Err(e.bad_value("`log_and_fail` or `log_and_continue`")),
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
            METRICS_RECORDING_LEVEL => {
                self.metrics_recording_level = match v.to_ascii_uppercase().as_str() {
                    "INFO" => RecordingLevel::Info,
                    "DEBUG" => RecordingLevel::Debug,
                    "TRACE" => RecordingLevel::Trace,
                    _ => return Err(e.bad_value("`INFO`, `DEBUG` or `TRACE`")),
                }
            }
            STREAMS_REPARTITION_PURGE => {
                self.repartition_purge = match v.to_ascii_lowercase().as_str() {
                    "true" => true,
                    "false" => false,
                    _ => return Err(e.bad_value("`true` or `false`")),
                }
            }
            STREAMS_THREAD_ALIGNMENT => {
                self.thread_alignment = match v.to_ascii_lowercase().as_str() {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::load;

    #[test]
    fn bad_values_name_setting_value_and_expectation() {
        let cases = [
            ("num.stream.threads", "0", "at least 1"),
            ("num.stream.threads", "-1", "at least 1"),
            ("commit.interval.ms", "1s", "milliseconds"),
            ("processing.guarantee", "exactly_once", "exactly_once_v2"),
            ("default.dsl.store", "lmdb", "`rocksDB` or `in_memory`"),
            (
                "metrics.recording.level",
                "verbose",
                "`INFO`, `DEBUG` or `TRACE`",
            ),
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
}
