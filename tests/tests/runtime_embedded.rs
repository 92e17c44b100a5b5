//! The runtime on the embedded log engine: word count over 4 partitions gives exact counts,
//! a clean restart resumes from committed offsets with its state, and a lost state
//! directory is rebuilt from the changelogs.

// Test helpers outside #[test] functions may unwrap too: a panic fails the test.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use streams_core::client::embedded::EmbeddedClients;
use streams_core::client::{
    Admin, ClientError, ClientResult, ClientSupplier, Consumer, NewTopic, Producer, TopicPartition,
};

use streams_core::prelude::*;
use streams_core::runtime::{KafkaStreams, LogEngine, NewRecord, StreamsState, TopicConfig};

use streams_tests::wordcount::{final_counts, produce};

fn word_count() -> Topology {
    streams_tests::wordcount::topology(true)
}

/// Appends sentences `from..from + n` (adding their words to `expected`), runs the app
/// through them and checks the counts.
fn produce_and_run(
    engine: &Arc<LogEngine>,
    state: &Path,
    from: usize,
    n: usize,
    expected: &mut HashMap<String, i64>,
) {
    produce(engine, from, n, expected);
    run_app(engine, state);
    assert_eq!(&final_counts(engine), expected);
}

fn run_app(engine: &Arc<LogEngine>, state: &Path) {
    let config = StreamsConfig::new("wc")
        .with_state_dir(state)
        .with_commit_interval(Duration::from_millis(50));
    let mut app = KafkaStreams::new(word_count(), config, engine.clone()).unwrap();
    app.start().unwrap();
    app.wait_until_caught_up(Duration::from_secs(30)).unwrap();
    assert_eq!(app.state(), StreamsState::Running);
    app.close().unwrap();
}

#[test]
fn word_count_is_exact_across_restarts_and_a_lost_state_directory() {
    let dir = tempfile::tempdir().unwrap();
    let engine = streams_tests::wordcount::engine(dir.path());
    let state = dir.path().join("state");
    let mut expected = HashMap::new();

    produce_and_run(&engine, &state, 0, 400, &mut expected);
    // Internal topics exist with the right shapes.
    let topics: HashMap<String, TopicConfig> = engine.topics().into_iter().collect();
    assert_eq!(topics["wc-counts-changelog"].partitions, 4);
    assert_eq!(topics["wc-counts-repartition"].partitions, 4);

    // A clean restart resumes from the committed offsets with its RocksDB state.
    produce_and_run(&engine, &state, 400, 300, &mut expected);

    // The state directory is lost: stores are rebuilt from the changelogs.
    std::fs::remove_dir_all(&state).unwrap();
    produce_and_run(&engine, &state, 700, 100, &mut expected);
}

/// A checkpoint past the end of its changelog (the changelog was deleted and created again)
/// does not describe the stores: the task's state is wiped and restored from the new
/// changelog, as Kafka Streams does with a corrupted task, instead of running on with
/// counts the changelog no longer backs.
#[test]
fn a_checkpoint_past_the_changelog_end_wipes_and_restores_the_state() {
    let dir = tempfile::tempdir().unwrap();
    let engine = streams_tests::wordcount::engine(dir.path());
    let state = dir.path().join("state");
    let mut expected = HashMap::new();
    produce_and_run(&engine, &state, 0, 400, &mut expected);

    // The changelog starts over, empty; the checkpoints still name its old end.
    let config = engine.topic_config("wc-counts-changelog").unwrap();
    engine.delete_topic("wc-counts-changelog").unwrap();
    engine.create_topic("wc-counts-changelog", config).unwrap();
    // New sentences: the restored (empty) counts plus these, not the old counts plus these.
    let mut fresh = HashMap::new();
    produce(&engine, 400, 100, &mut fresh);
    run_app(&engine, &state);
    let latest = final_counts(&engine);
    for (w, n) in &fresh {
        assert_eq!(latest.get(w), Some(n), "{w}: counted from the old state");
    }
}

/// Clients whose admin refuses DeleteRecords (as some Kafka-protocol brokers do), counting
/// the attempts.
struct NoPurge {
    inner: EmbeddedClients,
    refused: Arc<AtomicUsize>,
}

struct NoPurgeAdmin {
    inner: Arc<dyn Admin>,
    refused: Arc<AtomicUsize>,
}

impl Admin for NoPurgeAdmin {
    fn create_topic(&self, topic: &NewTopic) -> ClientResult<()> {
        self.inner.create_topic(topic)
    }
    fn topics(&self) -> ClientResult<BTreeMap<String, u32>> {
        self.inner.topics()
    }
    fn delete_topic(&self, topic: &str) -> ClientResult<()> {
        self.inner.delete_topic(topic)
    }
    fn delete_records(&self, _partition: &TopicPartition, _offset: i64) -> ClientResult<()> {
        self.refused.fetch_add(1, Ordering::SeqCst);
        Err(ClientError::Broker {
            operation: "DeleteRecords".into(),
            detail: "the connection was closed".into(),
        })
    }
}

impl ClientSupplier for NoPurge {
    fn consumer(&self, group_id: &str, client_id: &str) -> ClientResult<Box<dyn Consumer>> {
        self.inner.consumer(group_id, client_id)
    }
    fn restore_consumer(&self, client_id: &str) -> ClientResult<Box<dyn Consumer>> {
        self.inner.restore_consumer(client_id)
    }
    fn producer(&self, client_id: &str) -> ClientResult<Box<dyn Producer>> {
        self.inner.producer(client_id)
    }
    fn admin(&self) -> ClientResult<Arc<dyn Admin>> {
        Ok(Arc::new(NoPurgeAdmin {
            inner: self.inner.admin()?,
            refused: self.refused.clone(),
        }))
    }
}

/// A broker that breaks on the repartition purge costs disk, not the app: the thread warns
/// once, stops purging and counts on exactly.
#[test]
fn a_refused_repartition_purge_is_not_fatal() {
    let dir = tempfile::tempdir().unwrap();
    let engine = streams_tests::wordcount::engine(dir.path());
    let mut expected = HashMap::new();
    produce(&engine, 0, 300, &mut expected);
    let refused = Arc::new(AtomicUsize::new(0));
    let clients = Arc::new(NoPurge {
        inner: EmbeddedClients::new(engine.clone()),
        refused: refused.clone(),
    });
    let config = StreamsConfig::new("wc")
        .with_state_dir(dir.path().join("state"))
        .with_commit_interval(Duration::from_millis(20));
    let mut app = KafkaStreams::with_clients(word_count(), config, clients).unwrap();
    app.start().unwrap();
    app.wait_until_caught_up(Duration::from_secs(30)).unwrap();
    produce(&engine, 300, 200, &mut expected);
    app.wait_until_caught_up(Duration::from_secs(30)).unwrap();
    assert_eq!(app.state(), StreamsState::Running);
    app.close().unwrap();
    assert_eq!(final_counts(&engine), expected);
    assert_eq!(
        refused.load(Ordering::SeqCst),
        1,
        "tried once, then no more"
    );
}

/// A record that does not deserialize stops the app under the default handler, and
/// `failure()` says why: the record's place and the setting that would skip it (the last
/// line an app prints), not a bare "Error".
#[test]
fn a_stopped_app_names_the_record_that_stopped_it() {
    let dir = tempfile::tempdir().unwrap();
    let engine = streams_tests::wordcount::engine(dir.path());
    let mut expected = HashMap::new();
    produce(&engine, 0, 10, &mut expected);
    // Not UTF-8: a String value cannot be read from it.
    let bad = NewRecord {
        timestamp: 100,
        key: Some(b"line-bad".to_vec()),
        value: Some(vec![0xff, 0xfe, 0xfd]),
        headers: Vec::new(),
    };
    let offset = engine.offsets("sentences", 2).unwrap().1;
    engine.append("sentences", 2, &[bad]).unwrap();
    let config = StreamsConfig::new("wc")
        .with_state_dir(dir.path().join("state"))
        .with_commit_interval(Duration::from_millis(20));
    let mut app = KafkaStreams::new(word_count(), config, engine).unwrap();
    assert!(app.failure().is_none());
    app.start().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while app.state() != StreamsState::Error {
        assert!(std::time::Instant::now() < deadline, "the app did not stop");
        std::thread::sleep(Duration::from_millis(10));
    }
    let why = app.failure().expect("a failure").to_string();
    assert!(why.contains(&format!("sentences-2@{offset}")), "{why}");
    assert!(why.contains("deserialization.exception.handler"), "{why}");
    assert!(!why.contains("internal error"), "{why}");
    let _ = app.close();
}

#[test]
fn a_missing_source_topic_or_state_dir_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Arc::new(LogEngine::open(&dir.path().join("log")).unwrap());
    let err =
        KafkaStreams::new(word_count(), StreamsConfig::new("wc"), engine.clone()).unwrap_err();
    assert!(err.to_string().contains("state.dir"), "{err}");
    let config = StreamsConfig::new("wc").with_state_dir(dir.path().join("state"));
    let mut app = KafkaStreams::new(word_count(), config, engine).unwrap();
    let err = app.start().unwrap_err();
    assert!(err.to_string().contains("sentences"), "{err}");
    assert!(err.to_string().contains("does not exist"), "{err}");
}

#[test]
fn a_suppression_buffer_survives_a_restart_through_its_changelog() {
    use streams_core::dsl::{BufferConfig, Suppressed};
    use streams_core::window::TimeWindows;

    let topology = || {
        let builder = StreamsBuilder::new();
        builder
            .stream::<String, String>("clicks")
            .group_by_key()
            .windowed_by(TimeWindows::of_size_with_no_grace(Duration::from_secs(10)))
            .count()
            .suppress(Suppressed::until_window_closes(BufferConfig::unbounded()).with_name("final"))
            .to_stream()
            .map(|w, n| (w.to_string(), n.unwrap_or(-1)))
            .to("final-counts");
        builder.build().unwrap()
    };
    let click = |engine: &LogEngine, ts: i64| {
        engine
            .append(
                "clicks",
                0,
                &[NewRecord {
                    timestamp: ts,
                    key: Some(b"u".to_vec()),
                    value: Some(b"x".to_vec()),
                    headers: Vec::new(),
                }],
            )
            .unwrap();
    };
    let run = |engine: &Arc<LogEngine>, state: &Path| {
        let config = StreamsConfig::new("sup")
            .with_state_dir(state)
            .with_default_dsl_store(streams_core::config::DslStore::InMemory);
        let mut app = KafkaStreams::new(topology(), config, engine.clone()).unwrap();
        app.start().unwrap();
        app.wait_until_caught_up(Duration::from_secs(30)).unwrap();
        app.close().unwrap();
    };
    let dir = tempfile::tempdir().unwrap();
    let engine = Arc::new(LogEngine::open(&dir.path().join("log")).unwrap());
    engine.create_topic("clicks", TopicConfig::new(1)).unwrap();
    let state = dir.path().join("state");
    for ts in [1_000, 2_000, 3_000] {
        click(&engine, ts);
    }
    run(&engine, &state);
    let finals = |engine: &LogEngine| -> Vec<(String, i64)> {
        engine
            .read("final-counts", 0, 0, usize::MAX)
            .unwrap_or_default()
            .into_iter()
            .map(|r| {
                (
                    String::from_utf8(r.key.unwrap()).unwrap(),
                    i64::from_be_bytes(r.value.unwrap().try_into().unwrap()),
                )
            })
            .collect()
    };
    assert!(finals(&engine).is_empty(), "the window is still open");
    // In-memory stores and buffer are gone with the process; both come back from their
    // changelogs, and the window closes with all three clicks counted once.
    click(&engine, 10_000);
    run(&engine, &state);
    assert_eq!(finals(&engine), vec![("[u@0/10000]".to_string(), 3)]);
}

/// The last record of `key` in a changelog, with its partition.
fn last_changelog_record(engine: &LogEngine, topic: &str, key: &[u8]) -> Option<(u32, Vec<u8>)> {
    let mut found = None;
    for p in 0..streams_tests::wordcount::PARTITIONS {
        for r in engine.read(topic, p, 0, usize::MAX).unwrap_or_default() {
            if r.key.as_deref() == Some(key) {
                found = Some((p, r.value.unwrap()));
            }
        }
    }
    found
}

/// A store's checkpoint names the changelog offsets its own writes reached, not the log's
/// end: a record another writer appends to the changelog while the app runs (a member that
/// took the task over while this one stalled, and counted on) is applied at the next
/// restore instead of being skipped. Skipping it left counts behind the changelog, so that
/// a count resumed from an old value and results were lost (the zombie test on `streams
/// serve` found it). Under both guarantees; after the restart the store holds what the
/// changelog holds. With the record cache on (10 MiB) and off.
#[test]
fn a_changelog_record_written_by_another_member_is_restored_not_skipped() {
    use streams_core::config::ProcessingGuarantee;

    for (guarantee, cache) in [
        (ProcessingGuarantee::AtLeastOnce, 10 << 20),
        (ProcessingGuarantee::ExactlyOnceV2, 10 << 20),
        (ProcessingGuarantee::AtLeastOnce, 0),
        (ProcessingGuarantee::ExactlyOnceV2, 0),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let engine = streams_tests::wordcount::engine(dir.path());
        let state = dir.path().join("state");
        let config = StreamsConfig::new("wc")
            .with_state_dir(&state)
            .with_processing_guarantee(guarantee)
            .with_cache_max_bytes(cache)
            .with_commit_interval(Duration::from_millis(50));
        let guarantee = (guarantee, cache);
        let mut expected = HashMap::new();
        produce(&engine, 0, 200, &mut expected);
        let mut app = KafkaStreams::new(word_count(), config.clone(), engine.clone()).unwrap();
        app.start().unwrap();
        app.wait_until_caught_up(Duration::from_secs(30)).unwrap();
        assert_eq!(final_counts(&engine), expected, "{guarantee:?}");

        // Another writer counts on for one word, in the changelog only: the same value
        // layout (the count in the last 8 bytes, big-endian), 1000 more.
        let word = "kafka";
        let (partition, value) =
            last_changelog_record(&engine, "wc-counts-changelog", word.as_bytes()).unwrap();
        let (head, count) = value.split_at(value.len() - 8);
        assert_eq!(
            i64::from_be_bytes(count.try_into().unwrap()),
            expected[word],
            "{guarantee:?}: the changelog's value layout changed; adapt the test"
        );
        let mut theirs = head.to_vec();
        theirs.extend_from_slice(&(expected[word] + 1000).to_be_bytes());
        engine
            .append(
                "wc-counts-changelog",
                partition,
                &[NewRecord {
                    timestamp: 0,
                    key: Some(word.as_bytes().to_vec()),
                    value: Some(theirs),
                    headers: Vec::new(),
                }],
            )
            .unwrap();
        app.close().unwrap();

        // Restarted on the same state directory: the store holds the changelog's latest.
        *expected.get_mut(word).unwrap() += 1000;
        produce(&engine, 200, 100, &mut expected);
        let mut app = KafkaStreams::new(word_count(), config, engine.clone()).unwrap();
        app.start().unwrap();
        app.wait_until_caught_up(Duration::from_secs(30)).unwrap();
        app.close().unwrap();
        assert_eq!(final_counts(&engine), expected, "{guarantee:?}");
    }
}
