//! `exactly_once_v2` on the Kafka clients: a stateful app (word count: repartition topic,
//! changelog, output) whose every commit is one librdkafka transaction, on librdkafka's
//! mock cluster, or on the cluster named by `STREAMS_TEST_KAFKA`.
//!
//! The mock runs the transaction protocol but writes no commit/abort markers and stores no
//! offsets sent with a transaction (see `docs/KAFKA.md`, "Transactions"): this test checks
//! one uninterrupted run, whose output must hold each word's exact count, not restarts
//! (after a restart the mock's group has no committed offsets and the app reads its input
//! again). The client-level transaction tests are unit tests of
//! `streams-core/src/client/kafka/txn_tests.rs`.

// Test helpers outside #[test] functions may unwrap too: a panic fails the test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod kafka_common;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use kafka_common::{read_topic, send_sentences, word_count, word_counts};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;
use streams_core::client::kafka::KafkaClients;
use streams_core::client::{ClientSupplier, NewTopic};
use streams_core::config::ProcessingGuarantee;
use streams_core::prelude::*;
use streams_core::runtime::{KafkaStreams, StreamsState};

const PARTITIONS: u32 = 2;
const WORDS: [&str; 7] = [
    "kafka", "stream", "table", "join", "window", "store", "topic",
];

/// The mock (kept alive while the test runs), or a real cluster's address.
struct Cluster {
    mock: Option<MockCluster<'static, DefaultProducerContext>>,
    bootstrap: String,
    suffix: String,
}

impl Cluster {
    fn new() -> Self {
        match std::env::var("STREAMS_TEST_KAFKA") {
            Ok(bootstrap) if !bootstrap.is_empty() => Self {
                mock: None,
                bootstrap,
                suffix: kafka_common::unique_suffix(),
            },
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

    fn config(&self, app: &str, state: &std::path::Path) -> StreamsConfig {
        kafka_common::test_config(app, &self.bootstrap)
            .with_processing_guarantee(ProcessingGuarantee::ExactlyOnceV2)
            .with_state_dir(state)
            .with_commit_interval(Duration::from_millis(100))
    }

    fn create_topic(&self, clients: &KafkaClients, name: &str) {
        match &self.mock {
            Some(m) => m.create_topic(name, PARTITIONS as i32, 1).unwrap(),
            None => clients
                .admin()
                .unwrap()
                .create_topic(&NewTopic::new(name, PARTITIONS))
                .unwrap(),
        }
    }
}

/// The latest count per word in `output`, read to its end (past the commit markers).
fn final_counts(clients: &KafkaClients, output: &str) -> HashMap<String, i64> {
    word_counts(read_topic(
        clients,
        "output-reader",
        (output, PARTITIONS),
        true,
    ))
}

#[test]
fn an_exactly_once_word_count_on_kafka_counts_every_word_once() {
    run_word_count(&Cluster::new(), 1);
}

/// On `streams serve` (the embedded engine over the Kafka protocol, started here), which
/// writes markers and stores the offsets sent with a transaction: three runs of the app
/// over three parts of the input, each closed and started again, count every word exactly
/// once. The app's position moves past the commit markers that end its input partitions
/// and changelogs (librdkafka consumes them without handing out a record), so it catches
/// up and its restoration completes.
#[test]
fn on_streams_serve_exactly_once_counts_survive_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Arc::new(streams_state::LogEngine::open(dir.path()).unwrap());
    let server = streams_state::serve::Server::start(engine, "127.0.0.1:0").unwrap();
    let cluster = Cluster {
        mock: None,
        bootstrap: server.bootstrap_servers(),
        suffix: "-serve".into(),
    };
    run_word_count(&cluster, 3);
}

/// Writes 60 sentences in `runs` parts; after each part an app instance (a new one each
/// time, same state directory) runs until caught up and is closed. Then the output must
/// hold each word's count computed here.
fn run_word_count(cluster: &Cluster, runs: usize) {
    let app = format!("eos-wc{}", cluster.suffix);
    let input = format!("{app}-sentences");
    let output = format!("{app}-word-counts");
    let dir = tempfile::tempdir().unwrap();
    let config = cluster.config(&app, &dir.path().join("state"));
    let clients = KafkaClients::new(&config).unwrap();
    let mut topics = vec![input.clone(), output.clone()];
    if cluster.mock.is_some() {
        // The mock cannot create topics: the app finds its internal ones.
        topics.push(format!("{app}-counts-repartition"));
        topics.push(format!("{app}-counts-changelog"));
    }
    for t in &topics {
        cluster.create_topic(&clients, t);
    }

    // The input, and the counts computed here from it.
    let mut expected: HashMap<String, i64> = HashMap::new();
    let per_run = 60usize.div_ceil(runs);
    for run in 0..runs {
        send_sentences(
            &clients,
            (&input, PARTITIONS),
            (&WORDS, 5),
            run * per_run..((run + 1) * per_run).min(60),
            &mut expected,
        );

        let mut streams = KafkaStreams::with_clients(
            word_count(&input, &output),
            config.clone(),
            Arc::new(clients.clone()),
        )
        .unwrap();
        streams.start().unwrap();
        streams
            .wait_until_caught_up(Duration::from_secs(90))
            .unwrap();
        assert_eq!(streams.state(), StreamsState::Running);
        streams.close().unwrap();
    }

    assert_eq!(final_counts(&clients, &output), expected);
}
