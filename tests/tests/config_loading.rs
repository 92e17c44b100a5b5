//! Loading `StreamsConfig` from properties files and environment variables: every setting
//! parses under its Kafka name, and every kind of wrong configuration is an error that
//! names the setting (and where it came from).
//!
//! Environment tests pass their own `(name, value)` pairs to `from_env_vars`; none of them
//! reads or changes the process environment, so they cannot race each other.

// Test helpers outside #[test] functions may unwrap too: a panic fails the test.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use streams_core::config::{
    ClientPrefix, ConfigError, DeserializationHandler, DslStore, Origin, ProcessingGuarantee,
    ProductionHandler, PropertySource, StreamsConfig, env_var_name, names,
};
use streams_core::prelude::*;
use streams_core::runtime::{KafkaStreams, LogEngine};

/// A properties file with every setting (values other than the defaults).
const FULL: &str = r"# Activity tracking, production settings.
! Java properties comments start with '#' or '!'.

application.id = activity-tracking
bootstrap.servers = broker-1:9092, broker-2:9092
application.server: api-1.internal:7070
state.dir=/var/lib/activity
num.stream.threads   4
commit.interval.ms = 1000
processing.guarantee = exactly_once_v2
statestore.cache.max.bytes = 0
num.standby.replicas = 1
default.dsl.store = in_memory
deserialization.exception.handler = log_and_continue
# Kafka's deprecated name, accepted as an alias.
default.production.exception.handler = continue
errors.dead.letter.queue.topic.name = activity-dlq
default.invalid.timestamp.policy = use_partition_time
max.task.idle.ms = -1
poll.ms = 50
buffered.records.per.partition = 500
replication.factor = 3
state.cleanup.delay.ms = 1000
statestore.memory.bytes = 67108864
default.api.timeout.ms = 5000

consumer.max.poll.records = 500
main.consumer.fetch.min.bytes = 1
restore.consumer.max.poll.records = 2000
producer.linger.ms = 5
producer.compression.type = lz4
admin.retries = 3
";

struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "config-loading-{name}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    fn write(&self, file: &str, text: &str) -> PathBuf {
        let path = self.0.join(file);
        std::fs::write(&path, text).unwrap();
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn file_origin(path: &Path, line: usize) -> Box<Origin> {
    Box::new(Origin::File {
        path: path.to_path_buf(),
        line,
    })
}

/// Asserts the client settings of `c`: each (client, setting, value).
fn assert_client_properties(c: &StreamsConfig, expected: &[(ClientPrefix, &str, &str)]) {
    for &(client, setting, value) in expected {
        assert_eq!(
            c.client_properties(client).get(setting).map(String::as_str),
            Some(value),
            "{client:?} {setting}"
        );
    }
}

#[test]
fn a_full_file_sets_every_setting() {
    let dir = TempDir::new("full");
    let path = dir.write("app.properties", FULL);
    let c = StreamsConfig::from_file(&path).unwrap();
    assert_eq!(c.application_id(), "activity-tracking");
    assert_eq!(c.bootstrap_servers(), ["broker-1:9092", "broker-2:9092"]);
    assert_eq!(c.application_server(), Some("api-1.internal:7070"));
    assert_eq!(c.state_dir(), Some(Path::new("/var/lib/activity")));
    assert_eq!(c.num_stream_threads(), 4);
    assert_eq!(c.commit_interval_ms(), 1000);
    assert_eq!(c.processing_guarantee(), ProcessingGuarantee::ExactlyOnceV2);
    assert_eq!(c.cache_max_bytes(), 0);
    assert_eq!(c.num_standby_replicas(), 1);
    assert_eq!(c.default_dsl_store(), DslStore::InMemory);
    assert_eq!(
        c.deserialization_handler(),
        &DeserializationHandler::DeadLetter {
            topic: "activity-dlq".into()
        }
    );
    assert_eq!(c.production_handler(), ProductionHandler::Continue);
    assert_eq!(
        c.invalid_timestamp_policy(),
        InvalidTimestampPolicy::UsePartitionTime
    );
    assert_eq!(c.max_task_idle_ms(), -1);
    assert_eq!(c.poll_ms(), 50);
    assert_eq!(c.buffered_records_per_partition(), 500);
    assert_eq!(c.replication_factor(), 3);
    assert_eq!(c.state_cleanup_delay_ms(), 1000);
    assert_eq!(c.memory_bytes(), 64 << 20);
    assert_eq!(c.default_api_timeout_ms(), 5000);
    assert_client_properties(
        &c,
        &[
            (ClientPrefix::Consumer, "max.poll.records", "500"),
            (ClientPrefix::MainConsumer, "fetch.min.bytes", "1"),
            (ClientPrefix::RestoreConsumer, "max.poll.records", "2000"),
            (ClientPrefix::Admin, "retries", "3"),
        ],
    );
    assert_eq!(c.client_properties(ClientPrefix::Producer).len(), 2);

    // Written back out, the file's settings come back (plus nothing unexpected).
    let props = c.to_properties();
    let reloaded = StreamsConfig::from_properties(&props).unwrap();
    assert_eq!(reloaded, c);
    for name in names::ALL {
        assert!(props.contains_key(*name), "to_properties lacks {name}");
    }
}

#[test]
fn an_empty_file_lacks_the_application_id() {
    let dir = TempDir::new("empty");
    let path = dir.write("app.properties", "# nothing yet\n\n");
    let err = StreamsConfig::from_file(&path).unwrap_err();
    assert_eq!(
        err,
        ConfigError::Missing {
            setting: "application.id"
        }
    );
    assert_eq!(
        err.to_string(),
        "missing setting `application.id`: it is required and has no default"
    );
}

#[test]
fn a_missing_file_names_the_path() {
    let dir = TempDir::new("missing");
    let path = dir.0.join("nope.properties");
    let err = StreamsConfig::from_file(&path).unwrap_err();
    let ConfigError::Source { origin, .. } = &err else {
        panic!("{err}");
    };
    assert_eq!(origin, &file_origin(&path, 0));
    assert!(err.to_string().contains("nope.properties"), "{err}");
}

#[test]
fn file_errors_name_the_line() {
    let dir = TempDir::new("lines");
    let path = dir.write(
        "app.properties",
        "application.id=a\n# comment\nnum.stream.threads = many\n",
    );
    let err = StreamsConfig::from_file(&path).unwrap_err();
    assert_eq!(
        err,
        ConfigError::BadValue {
            setting: "num.stream.threads".into(),
            value: "many".into(),
            expected: "a whole number, at least 1".into(),
            origin: file_origin(&path, 3),
        }
    );
    assert_eq!(
        err.to_string(),
        format!(
            "invalid value `many` for `num.stream.threads` ({}:3): expected a whole number, at least 1",
            path.display()
        )
    );

    let path = dir.write("typo.properties", "application.id=a\nstate.dirs=/tmp\n");
    let err = StreamsConfig::from_file(&path).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "unknown setting `state.dirs` ({}:2); did you mean `state.dir`?",
            path.display()
        )
    );

    let path = dir.write("nokey.properties", "application.id=a\n = x\n");
    let err = StreamsConfig::from_file(&path).unwrap_err();
    assert!(
        matches!(&err, ConfigError::Source { origin, .. } if **origin == *file_origin(&path, 2)),
        "{err}"
    );
}

#[test]
fn a_setting_twice_in_one_file_is_a_conflict() {
    let dir = TempDir::new("twice");
    let path = dir.write(
        "app.properties",
        "application.id=a\npoll.ms=10\npoll.ms=20\n",
    );
    let err = StreamsConfig::from_file(&path).unwrap_err();
    assert_eq!(
        err,
        ConfigError::Conflict {
            first: "poll.ms".into(),
            first_origin: file_origin(&path, 2),
            second: "poll.ms".into(),
            second_origin: file_origin(&path, 3),
            detail: "a setting may appear once per source".into(),
        }
    );

    // A deprecated alias counts as its setting.
    let path = dir.write(
        "alias.properties",
        "application.id=a\nstatestore.cache.max.bytes=1\ncache.max.bytes.buffering=2\n",
    );
    let err = StreamsConfig::from_file(&path).unwrap_err();
    assert!(
        err.to_string().contains("`statestore.cache.max.bytes`")
            && err.to_string().contains("`cache.max.bytes.buffering`"),
        "{err}"
    );
}

#[test]
fn environment_variables_map_to_settings() {
    let vars = env(&[
        ("STREAMS_APPLICATION_ID", "activity"),
        ("STREAMS_NUM_STREAM_THREADS", "3"),
        ("STREAMS_STATESTORE_CACHE_MAX_BYTES", "1024"),
        ("STREAMS_DEFAULT_DSL_STORE", "in_memory"),
        ("STREAMS_CONSUMER_MAX_POLL_RECORDS", "10"),
        ("STREAMS_MAIN_CONSUMER_FETCH_MAX_WAIT_MS", "5"),
        ("PATH", "/usr/bin"),
        ("STREAMSX_POLL_MS", "1"),
    ]);
    let c = StreamsConfig::from_env_vars("STREAMS", vars).unwrap();
    assert_eq!(c.application_id(), "activity");
    assert_eq!(c.num_stream_threads(), 3);
    assert_eq!(c.cache_max_bytes(), 1024);
    assert_eq!(c.default_dsl_store(), DslStore::InMemory);
    assert_eq!(c.poll_ms(), 100);
    assert_client_properties(
        &c,
        &[
            (ClientPrefix::Consumer, "max.poll.records", "10"),
            (ClientPrefix::MainConsumer, "fetch.max.wait.ms", "5"),
        ],
    );

    // Another prefix, with or without its trailing '_'.
    for prefix in ["MYAPP", "MYAPP_"] {
        let c = StreamsConfig::from_env_vars(
            prefix,
            env(&[
                ("MYAPP_APPLICATION_ID", "mine"),
                ("STREAMS_APPLICATION_ID", "theirs"),
            ]),
        )
        .unwrap();
        assert_eq!(c.application_id(), "mine");
    }
}

#[test]
fn every_setting_has_an_environment_variable() {
    let c = StreamsConfig::from_sources([PropertySource::parse(FULL, "inline").unwrap()]).unwrap();
    let vars: Vec<(String, String)> = c
        .to_properties()
        .into_iter()
        .map(|(k, v)| (env_var_name("STREAMS", &k), v))
        .collect();
    assert_eq!(StreamsConfig::from_env_vars("STREAMS", vars).unwrap(), c);
}

#[test]
fn environment_errors_name_the_variable() {
    let err = StreamsConfig::from_env_vars(
        "STREAMS",
        env(&[("STREAMS_APPLICATION_ID", "a"), ("STREAMS_POLL_MS", "-5")]),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid value `-5` for `poll.ms` (environment variable STREAMS_POLL_MS): expected a whole number of milliseconds (0 or more)"
    );

    let err = StreamsConfig::from_env_vars("STREAMS", env(&[("STREAMS_NUM_STREAM_THREADS", "2")]))
        .unwrap_err();
    assert_eq!(
        err,
        ConfigError::Missing {
            setting: "application.id"
        }
    );

    // A variable under the prefix that is no setting is an error, not silently ignored.
    let err = StreamsConfig::from_env_vars(
        "STREAMS",
        env(&[("STREAMS_APPLICATION_ID", "a"), ("STREAMS_HOME", "/opt")]),
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("unknown setting `home` (environment variable STREAMS_HOME)"),
        "{err}"
    );
}

#[test]
fn the_environment_overrides_the_file() {
    let dir = TempDir::new("layers");
    let path = dir.write(
        "app.properties",
        "application.id=activity\nnum.stream.threads=4\ncache.max.bytes.buffering=100\n\
         deserialization.exception.handler=log_and_continue\n",
    );
    let file = PropertySource::from_file(&path).unwrap();
    let vars = PropertySource::from_env_vars(
        "STREAMS",
        env(&[
            ("STREAMS_NUM_STREAM_THREADS", "2"),
            ("STREAMS_STATESTORE_CACHE_MAX_BYTES", "200"),
            ("STREAMS_ERRORS_DEAD_LETTER_QUEUE_TOPIC_NAME", "dlq"),
        ]),
    )
    .unwrap();
    let c = StreamsConfig::from_sources([file.clone(), vars]).unwrap();
    assert_eq!(c.application_id(), "activity");
    assert_eq!(c.num_stream_threads(), 2);
    assert_eq!(c.cache_max_bytes(), 200);
    assert_eq!(
        c.deserialization_handler(),
        &DeserializationHandler::DeadLetter {
            topic: "dlq".into()
        }
    );

    // The same through the process environment, under a prefix nobody sets (the test
    // changes no variable): the file alone.
    let prefix = format!("CONFIG_LOADING_TEST_{}", std::process::id());
    let c = StreamsConfig::from_file_and_env(&path, &prefix).unwrap();
    assert_eq!(c, StreamsConfig::from_sources([file]).unwrap());
}

#[test]
fn contradictions_across_sources_name_both_settings() {
    let file = PropertySource::parse(
        "application.id=a\ndeserialization.exception.handler=log_and_fail\n",
        "app.properties",
    )
    .unwrap();
    let vars = PropertySource::from_env_vars(
        "STREAMS",
        env(&[("STREAMS_ERRORS_DEAD_LETTER_QUEUE_TOPIC_NAME", "dlq")]),
    )
    .unwrap();
    let err = StreamsConfig::from_sources([file, vars]).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.starts_with(
            "conflicting settings `deserialization.exception.handler` (app.properties:2) and \
             `errors.dead.letter.queue.topic.name` (environment variable \
             STREAMS_ERRORS_DEAD_LETTER_QUEUE_TOPIC_NAME)"
        ),
        "{msg}"
    );
}

#[test]
fn each_bad_value_is_named() {
    // (setting, value, part of the expectation)
    let cases = [
        ("application.id", "my app", "may only contain"),
        ("application.id", "", "may only contain"),
        ("bootstrap.servers", "broker-1", "host:port"),
        ("bootstrap.servers", "", "embedded log engine"),
        ("application.server", "api:0", "host:port"),
        ("state.dir", "", "directory"),
        ("num.stream.threads", "0", "at least 1"),
        ("commit.interval.ms", "30s", "milliseconds"),
        (
            "processing.guarantee",
            "exactly_once_beta",
            "removed in Kafka Streams 4.0",
        ),
        (
            "processing.guarantee",
            "at_most_once",
            "`at_least_once` or `exactly_once_v2`",
        ),
        ("statestore.cache.max.bytes", "10MB", "bytes"),
        ("cache.max.bytes.buffering", "-1", "bytes"),
        ("num.standby.replicas", "one", "whole number"),
        ("default.dsl.store", "memory", "`rocksDB` or `in_memory`"),
        (
            "deserialization.exception.handler",
            "dead_letter",
            "errors.dead.letter.queue.topic.name",
        ),
        ("errors.dead.letter.queue.topic.name", " ", "topic name"),
        (
            "production.exception.handler",
            "retry",
            "`fail` or `continue`",
        ),
        ("default.invalid.timestamp.policy", "drop", "skip_and_count"),
        ("max.task.idle.ms", "-2", "-1"),
        ("poll.ms", "1.5", "milliseconds"),
        ("buffered.records.per.partition", "0", "at least 1"),
        ("replication.factor", "0", "-1"),
        ("replication.factor", "40000", "32767"),
        ("state.cleanup.delay.ms", "soon", "milliseconds"),
        ("statestore.memory.bytes", "4096", "at least"),
        ("default.api.timeout.ms", "-1", "milliseconds"),
        ("processing.exception.handler", "skip", "log_and_continue"),
    ];
    for (setting, value, expected) in cases {
        let pairs = if setting == "application.id" {
            vec![(setting, value)]
        } else {
            vec![("application.id", "a"), (setting, value)]
        };
        let err = StreamsConfig::from_properties(pairs).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.starts_with(&format!(
                "invalid value `{value}` for `{setting}`: expected "
            )),
            "{setting}={value}: {msg}"
        );
        assert!(msg.contains(expected), "{setting}={value}: {msg}");
    }
}

#[test]
fn kafka_settings_decided_by_types_explain_themselves() {
    for (setting, hint) in [
        ("default.key.serde", "DefaultSerde"),
        ("default.value.serde", "Materialized"),
        ("default.timestamp.extractor", "with_timestamp_extractor"),
    ] {
        let err = StreamsConfig::from_properties([
            ("application.id", "a"),
            (
                setting,
                "org.apache.kafka.common.serialization.Serdes$StringSerde",
            ),
        ])
        .unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.starts_with(&format!("`{setting}` cannot be set: ")),
            "{msg}"
        );
        assert!(msg.contains(hint), "{msg}");
    }
}

#[test]
fn unknown_settings_without_a_close_name_point_to_client_prefixes() {
    let err =
        StreamsConfig::from_properties([("application.id", "a"), ("security.protocol", "SSL")])
            .unwrap_err();
    assert_eq!(
        err,
        ConfigError::Unknown {
            setting: "security.protocol".into(),
            origin: Box::new(Origin::Given),
            suggestion: None,
        }
    );
    assert!(err.to_string().contains("`consumer.`"), "{err}");
}

#[test]
fn every_setting_is_documented() {
    let doc =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/CONFIG.md")).unwrap();
    let documented: Vec<&str> = names::ALL
        .iter()
        .chain(names::ALIASES.iter().map(|(alias, _)| alias))
        .chain(names::NOT_SETTABLE.iter())
        .copied()
        .chain(ClientPrefix::ALL.iter().map(|c| c.prefix()))
        .collect();
    for name in documented {
        assert!(
            doc.contains(&format!("`{name}")),
            "docs/CONFIG.md lacks {name}"
        );
    }
}

#[test]
fn the_runtime_refuses_settings_it_cannot_honour() {
    let dir = TempDir::new("runtime");
    let engine = Arc::new(LogEngine::open(&dir.0.join("log")).unwrap());
    let topology = || {
        let builder = StreamsBuilder::new();
        builder.stream::<String, String>("in").to("out");
        builder.build().unwrap()
    };
    let base = || StreamsConfig::new("app").with_state_dir(dir.0.join("state"));
    assert!(KafkaStreams::new(topology(), base(), engine.clone()).is_ok());
    // exactly_once_v2 runs on the embedded engine (issue #17).
    assert!(
        KafkaStreams::new(
            topology(),
            base().with_processing_guarantee(ProcessingGuarantee::ExactlyOnceV2),
            engine.clone()
        )
        .is_ok()
    );
    let err = KafkaStreams::new(
        topology(),
        base().with_bootstrap_servers(["k:9092"]),
        engine.clone(),
    )
    .unwrap_err();
    assert!(
        matches!(&err, StreamsError::Config(ConfigError::Invalid { setting, .. }) if *setting == "bootstrap.servers"),
        "{err}"
    );
}

/// `processing.exception.handler` (KIP-1033) takes the short names and Kafka's class names,
/// and round-trips through the properties the config reports.
#[test]
fn the_processing_handler_takes_names_and_kafka_class_names() {
    use streams_core::config::ProcessingHandler;
    for (value, want) in [
        ("log_and_fail", ProcessingHandler::Fail),
        ("log_and_continue", ProcessingHandler::LogAndContinue),
        (
            "org.apache.kafka.streams.errors.LogAndContinueProcessingExceptionHandler",
            ProcessingHandler::LogAndContinue,
        ),
        (
            "LogAndFailProcessingExceptionHandler",
            ProcessingHandler::Fail,
        ),
    ] {
        let config = StreamsConfig::from_properties([
            ("application.id", "a"),
            ("processing.exception.handler", value),
        ])
        .unwrap();
        assert_eq!(config.processing_handler(), want, "{value}");
    }
    assert_eq!(
        StreamsConfig::new("a").processing_handler(),
        ProcessingHandler::Fail
    );
}
