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

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;
use streams_core::client::kafka::KafkaClients;
use streams_core::client::{
    ClientSupplier, NewTopic, NoRebalanceListener, OutgoingRecord, TopicPartition,
};
use streams_core::config::{ClientPrefix, ProcessingGuarantee};
use streams_core::partitioner::partition_for_key;
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

    fn config(&self, app: &str, state: &std::path::Path) -> StreamsConfig {
        StreamsConfig::new(app)
            .with_bootstrap_servers(self.bootstrap.split(','))
            .with_processing_guarantee(ProcessingGuarantee::ExactlyOnceV2)
            .with_state_dir(state)
            .with_commit_interval(Duration::from_millis(100))
            .with_default_api_timeout(Duration::from_secs(20))
            .with_client_property(ClientPrefix::Consumer, "session.timeout.ms", "6000")
            .with_client_property(ClientPrefix::Consumer, "heartbeat.interval.ms", "300")
            .with_client_property(ClientPrefix::Consumer, "fetch.wait.max.ms", "50")
            .with_client_property(ClientPrefix::Producer, "linger.ms", "1")
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

fn word_count(input: &str, output: &str) -> Topology {
    let builder = StreamsBuilder::new();
    builder
        .stream::<String, String>(input)
        .flat_map_values(|s: String| s.split(' ').map(str::to_string).collect::<Vec<_>>())
        .group_by(|_, w| w.clone())
        .count_with(Materialized::as_("counts"))
        .to_stream()
        .to(output);
    builder.build().unwrap()
}

/// The latest count per word in `output`, read to its end.
fn final_counts(clients: &KafkaClients, output: &str) -> HashMap<String, i64> {
    let mut r = clients.restore_consumer("output-reader").unwrap();
    let tps: Vec<TopicPartition> = (0..PARTITIONS)
        .map(|p| TopicPartition::new(output, p))
        .collect();
    let ends: Vec<i64> = tps.iter().map(|tp| r.watermarks(tp).unwrap().1).collect();
    r.assign(&tps.iter().map(|tp| (tp.clone(), 0)).collect::<Vec<_>>())
        .unwrap();
    let mut counts = HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    // A transaction's commit marker takes an offset without being a record: reading ends
    // when the next record would be at or past the end.
    while tps
        .iter()
        .zip(&ends)
        .any(|(tp, end)| r.position(tp).unwrap() < *end - 1)
    {
        assert!(Instant::now() < deadline, "output not read to its end");
        for c in r
            .poll(Duration::from_millis(100), &mut NoRebalanceListener)
            .unwrap()
        {
            let w = String::from_utf8(c.record.key.unwrap()).unwrap();
            let n = i64::from_be_bytes(c.record.value.unwrap().try_into().unwrap());
            counts.insert(w, n);
        }
    }
    // Whatever else is there (the last offset may be a record, not a marker).
    for c in r
        .poll(Duration::from_millis(500), &mut NoRebalanceListener)
        .unwrap()
    {
        let w = String::from_utf8(c.record.key.unwrap()).unwrap();
        let n = i64::from_be_bytes(c.record.value.unwrap().try_into().unwrap());
        counts.insert(w, n);
    }
    counts
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
    let mut p = clients.producer("input-producer").unwrap();
    let per_run = 60usize.div_ceil(runs);
    for run in 0..runs {
        for i in run * per_run..((run + 1) * per_run).min(60) {
            let sentence: Vec<&str> = (0..3)
                .map(|j| WORDS[(i * 3 + j * j + i / 5) % WORDS.len()])
                .collect();
            for w in &sentence {
                *expected.entry(w.to_string()).or_default() += 1;
            }
            let key = format!("line-{i}");
            p.send(OutgoingRecord {
                partition: TopicPartition::new(
                    input.as_str(),
                    partition_for_key(key.as_bytes(), PARTITIONS),
                ),
                timestamp: i as i64,
                key: Some(key.into_bytes()),
                value: Some(sentence.join(" ").into_bytes()),
                headers: vec![],
            })
            .unwrap();
        }
        p.flush(Duration::from_secs(30)).unwrap();

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
