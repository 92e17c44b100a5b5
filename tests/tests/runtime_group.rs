//! The runtime with several stream threads and several instances in one process sharing an
//! embedded engine: tasks are split by the group, move when an instance leaves (state
//! restored, or promoted from a standby), state changes reach the listener, and a failed
//! thread is replaced or stops the instance as the handler says.

// Test helpers outside #[test] functions may unwrap too: a panic fails the test.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use streams_core::prelude::*;
use streams_core::runtime::{
    KafkaStreams, LogEngine, NewRecord, StreamsState, TaskState, ThreadFailureResponse,
};

use streams_tests::wordcount::{engine, final_counts, produce};

fn word_count() -> Topology {
    streams_tests::wordcount::topology(true)
}

fn config(state: &Path) -> StreamsConfig {
    StreamsConfig::new("wc")
        .with_state_dir(state)
        .with_commit_interval(Duration::from_millis(100))
}

fn active_tasks(app: &KafkaStreams) -> usize {
    app.metrics()
        .tasks()
        .filter(|t| t.state == TaskState::Running)
        .count()
}

const WAIT: Duration = Duration::from_secs(60);

/// A temporary directory with an engine in it holding `n` sentences, and their words'
/// expected counts.
fn with_sentences(n: usize) -> (tempfile::TempDir, Arc<LogEngine>, HashMap<String, i64>) {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(dir.path());
    let mut expected = HashMap::new();
    produce(&engine, 0, n, &mut expected);
    (dir, engine, expected)
}

/// Two word-count instances on `engine`, "a" and "b" (each configured by `config`), started
/// and caught up.
fn two_instances(
    engine: &Arc<LogEngine>,
    config: impl Fn(&str) -> StreamsConfig,
) -> (KafkaStreams, KafkaStreams) {
    let mut a = KafkaStreams::new(word_count(), config("a"), engine.clone()).unwrap();
    let mut b = KafkaStreams::new(word_count(), config("b"), engine.clone()).unwrap();
    a.start().unwrap();
    b.start().unwrap();
    a.wait_until_caught_up(WAIT).unwrap();
    b.wait_until_caught_up(WAIT).unwrap();
    (a, b)
}

#[test]
fn two_stream_threads_split_the_tasks_and_count_exactly() {
    let (dir, engine, mut expected) = with_sentences(3_000);
    let mut app = KafkaStreams::new(
        word_count(),
        config(&dir.path().join("state")).with_num_stream_threads(2),
        engine.clone(),
    )
    .unwrap();
    app.start().unwrap();
    app.wait_until_caught_up(WAIT).unwrap();
    let metrics = app.metrics();
    assert_eq!(metrics.threads.len(), 2);
    // 2 sub-topologies x 4 partitions, split over both threads.
    let per_thread: Vec<usize> = metrics.threads.iter().map(|t| t.tasks.len()).collect();
    assert_eq!(per_thread.iter().sum::<usize>(), 8, "{per_thread:?}");
    assert!(per_thread.iter().all(|n| *n > 0), "{per_thread:?}");
    // Every sentence and every word processed once, whichever thread had the task.
    let processed: u64 = metrics.threads.iter().map(|t| t.processed).sum();
    assert_eq!(processed, 3_000 + 9_000);
    produce(&engine, 3_000, 500, &mut expected);
    app.wait_until_caught_up(WAIT).unwrap();
    app.close().unwrap();
    assert_eq!(final_counts(&engine), expected);
}

#[test]
fn two_instances_split_the_tasks_and_the_survivor_takes_over_with_the_state() {
    let (dir, engine, mut expected) = with_sentences(2_000);
    let (a, b) = two_instances(&engine, |p| config(&dir.path().join(p)));
    let (ta, tb) = (active_tasks(&a), active_tasks(&b));
    assert_eq!(ta + tb, 8);
    assert!(ta > 0 && tb > 0, "{ta} / {tb}");

    // A leaves: its tasks move to B, which restores their counts from the changelogs.
    a.close().unwrap();
    produce(&engine, 2_000, 1_000, &mut expected);
    b.wait_until_caught_up(WAIT).unwrap();
    assert_eq!(active_tasks(&b), 8);
    let restored: u64 = b.metrics().tasks().map(|t| t.restored).sum();
    assert!(restored > 0, "the moved tasks restored nothing");
    b.close().unwrap();
    // Handed over with a commit: every input counted exactly once.
    assert_eq!(final_counts(&engine), expected);
}

#[test]
fn standby_replicas_keep_warm_copies_that_take_over_without_a_full_restore() {
    let (dir, engine, mut expected) = with_sentences(2_000);
    let standby = |p: &str| config(&dir.path().join(p)).with_num_standby_replicas(1);
    let (a, b) = two_instances(&engine, standby);
    // The counting sub-topology has a store: each of its 4 tasks has a standby on the
    // instance that does not run it.
    let standbys = |app: &KafkaStreams| {
        app.metrics()
            .tasks()
            .filter(|t| t.state == TaskState::Standby)
            .map(|t| t.id)
            .collect::<Vec<_>>()
    };
    let mut all: Vec<_> = standbys(&a).into_iter().chain(standbys(&b)).collect();
    all.sort();
    assert_eq!(all.len(), 4, "{all:?}");
    assert!(all.iter().all(|id| id.subtopology == 1), "{all:?}");
    // Standbys follow the changelog while the active tasks count.
    produce(&engine, 2_000, 500, &mut expected);
    a.wait_until_caught_up(WAIT).unwrap();
    b.wait_until_caught_up(WAIT).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let changelog_records: i64 = (0..4)
        .map(|p| engine.offsets("wc-counts-changelog", p).unwrap().1)
        .sum();

    a.close().unwrap();
    b.wait_until_caught_up(WAIT).unwrap();
    // B's tasks that were standbys restored only what they had not applied yet.
    let restored_by_new_actives: u64 = b
        .metrics()
        .tasks()
        .filter(|t| t.state == TaskState::Running && t.id.subtopology == 1)
        .map(|t| t.restore_total)
        .sum();
    assert!(
        (restored_by_new_actives as i64) < changelog_records / 4,
        "restored {restored_by_new_actives} of {changelog_records} changelog records"
    );
    produce(&engine, 2_500, 300, &mut expected);
    b.wait_until_caught_up(WAIT).unwrap();
    b.close().unwrap();
    assert_eq!(final_counts(&engine), expected);
}

#[test]
fn the_state_listener_sees_the_lifecycle() {
    let (dir, engine, _) = with_sentences(100);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let mut app =
        KafkaStreams::new(word_count(), config(&dir.path().join("s")), engine.clone()).unwrap();
    let log = seen.clone();
    app.set_state_listener(move |new, old| log.lock().unwrap().push((old, new)));
    assert_eq!(app.state(), StreamsState::Created);
    app.start().unwrap();
    app.wait_until_caught_up(WAIT).unwrap();
    app.close().unwrap();
    let seen = seen.lock().unwrap().clone();
    use StreamsState::*;
    assert_eq!(seen.first(), Some(&(Created, Rebalancing)));
    assert!(seen.contains(&(Rebalancing, Running)), "{seen:?}");
    assert_eq!(
        &seen[seen.len() - 2..],
        &[(Running, PendingShutdown), (PendingShutdown, NotRunning)]
    );
}

/// Fails on the first record whose value is "poison" (once per process), then passes
/// everything through.
struct FailOnce {
    failed: Arc<AtomicBool>,
}

impl Processor<String, String, String, String> for FailOnce {
    fn process(
        &mut self,
        r: Record<String, String>,
        ctx: &mut ProcessorContext<'_, String, String>,
    ) -> Result<(), StreamsError> {
        if r.value == "poison" && !self.failed.swap(true, Ordering::SeqCst) {
            return Err(StreamsError::processor(ctx.name(), "poisoned"));
        }
        ctx.forward(r)
    }
}

fn failing_app(dir: &Path, engine: &Arc<LogEngine>, failed: Arc<AtomicBool>) -> KafkaStreams {
    let builder = StreamsBuilder::new();
    builder
        .stream::<String, String>("sentences")
        .process(
            move || FailOnce {
                failed: failed.clone(),
            },
            Named::as_("fail-once"),
            &[],
        )
        .to("passed");
    KafkaStreams::new(builder.build().unwrap(), config(dir), engine.clone()).unwrap()
}

/// Makes an app in a state directory under `dir` on `engine`, failing once per process
/// (the flag says whether it did).
type Build = fn(&Path, &Arc<LogEngine>, Arc<AtomicBool>) -> KafkaStreams;

/// `build`'s app on a new engine (in a new temporary directory) whose input is one
/// poisoned sentence.
fn poisoned_app(build: Build) -> (tempfile::TempDir, Arc<LogEngine>, KafkaStreams) {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(dir.path());
    poison(&engine);
    let app = build(
        &dir.path().join("r"),
        &engine,
        Arc::new(AtomicBool::new(false)),
    );
    (dir, engine, app)
}

fn poison(engine: &LogEngine) {
    engine
        .append(
            "sentences",
            0,
            &[NewRecord {
                timestamp: 1,
                key: Some(b"k".to_vec()),
                value: Some(b"poison".to_vec()),
                headers: Vec::new(),
            }],
        )
        .unwrap();
}

/// Runs `app` to the end of its input with failed threads replaced; returns each failure
/// the handler saw (`{:?} / {}`).
fn run_replacing_threads(mut app: KafkaStreams) -> Vec<String> {
    let failures = Arc::new(Mutex::new(Vec::new()));
    let f = failures.clone();
    app.set_uncaught_error_handler(move |e| {
        f.lock().unwrap().push(format!("{e:?} / {e}"));
        ThreadFailureResponse::ReplaceThread
    });
    app.start().unwrap();
    app.wait_until_caught_up(WAIT).unwrap();
    assert_eq!(app.state(), StreamsState::Running);
    app.close().unwrap();
    failures.lock().unwrap().clone()
}

#[test]
fn a_replaced_thread_resumes_from_the_last_commit() {
    let (_dir, engine, app) = poisoned_app(failing_app);
    let failures = run_replacing_threads(app);
    assert_eq!(failures.len(), 1);
    assert!(failures[0].contains("poisoned"));
    // The replacement read the record again and passed it on.
    let passed = engine.read("passed", 0, 0, usize::MAX).unwrap();
    assert_eq!(passed.len(), 1);
}

/// Starts `app` (its input poisoned) with the default uncaught-error handler: the instance
/// stops in `Error`, and both the wait and the close return the failure's own text
/// (`cause`), not "a bug in the framework".
fn assert_stops_with(mut app: KafkaStreams, cause: &str) {
    app.start().unwrap();
    let err = app.wait_until_caught_up(WAIT).unwrap_err();
    assert!(matches!(err, StreamsError::Stopped { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains(cause), "{text}");
    assert!(!text.contains("bug in the framework"), "{text}");
    assert_eq!(app.state(), StreamsState::Error);
    let err = app.close().unwrap_err();
    assert!(matches!(err, StreamsError::Stopped { .. }), "{err:?}");
    assert!(err.to_string().contains(cause), "{err}");
}

#[test]
fn interactive_queries_read_local_stores_and_say_which_instance_has_a_key() {
    use streams_core::query::HostInfo;
    use streams_core::serde::StringSerde;
    let (dir, engine, expected) = with_sentences(1_000);
    // "a" serves on port 7001, "b" on 7002.
    let server = |p: &str| {
        let port = if p == "a" { 7001 } else { 7002 };
        config(&dir.path().join(p)).with_application_server(format!("localhost:{port}"))
    };
    let (a, b) = two_instances(&engine, server);
    let host = |port| {
        Some(HostInfo {
            host: "localhost".into(),
            port,
        })
    };
    let (va, vb) = (
        a.key_value_store::<String, i64>("counts").unwrap(),
        b.key_value_store::<String, i64>("counts").unwrap(),
    );
    for (word, n) in &expected {
        let (in_a, in_b) = (va.get(word).unwrap(), vb.get(word).unwrap());
        // Exactly one instance holds each word, with its count.
        assert!(
            in_a.is_some() != in_b.is_some(),
            "{word}: {in_a:?} / {in_b:?}"
        );
        assert_eq!(in_a.or(in_b), Some(*n));
        // Both instances agree on where it lives, and it is where it was found.
        let ma = a
            .query_metadata_for_key("counts", word, &StringSerde)
            .unwrap();
        let mb = b
            .query_metadata_for_key("counts", word, &StringSerde)
            .unwrap();
        assert_eq!(ma, mb);
        let owner = if in_a.is_some() { 7001 } else { 7002 };
        assert_eq!(ma.active_host, host(owner), "{word}");
    }
    // Between them the instances hold every word once (RocksDB's entry count is only an
    // estimate: count the entries themselves).
    assert_eq!(
        va.all().unwrap().len() + vb.all().unwrap().len(),
        expected.len()
    );
    let all = a.metadata_for_all_clients().unwrap();
    let mut hosts: Vec<_> = all.iter().map(|m| m.host.clone()).collect();
    hosts.sort();
    assert_eq!(hosts, vec![host(7001), host(7002)]);
    assert!(
        all.iter()
            .all(|m| m.state_stores.contains(&"counts".to_string()))
    );
    a.close().unwrap();
    b.close().unwrap();
}

/// Word count behind a step that panics on the first "poison" sentence of the process
/// (as user code with an `unwrap` on bad input would), exactly once, RocksDB counts.
fn panicking_app(dir: &Path, engine: &Arc<LogEngine>, panicked: Arc<AtomicBool>) -> KafkaStreams {
    panicking_app_with_cache(dir, engine, panicked, 10 << 20)
}

/// [`panicking_app`] with a record cache of `cache` bytes (0: off).
fn panicking_app_with_cache(
    dir: &Path,
    engine: &Arc<LogEngine>,
    panicked: Arc<AtomicBool>,
    cache: usize,
) -> KafkaStreams {
    let builder = StreamsBuilder::new();
    builder
        .stream::<String, String>("sentences")
        .map_values(move |s: String| {
            if s == "poison" && !panicked.swap(true, Ordering::SeqCst) {
                panic!("cannot count a poisoned sentence");
            }
            s
        })
        .flat_map_values(|s: String| s.split(' ').map(str::to_string).collect::<Vec<_>>())
        .group_by(|_, w| w.clone())
        .count_with(Materialized::as_("counts"))
        .to_stream()
        .to(streams_tests::wordcount::COUNTS);
    let config = config(dir)
        .with_cache_max_bytes(cache)
        .with_processing_guarantee(streams_core::config::ProcessingGuarantee::ExactlyOnceV2);
    KafkaStreams::new(builder.build().unwrap(), config, engine.clone()).unwrap()
}

/// The latest committed count of each word.
fn committed_counts(engine: &LogEngine) -> HashMap<String, i64> {
    streams_tests::wordcount::counts(engine, streams_core::runtime::Isolation::ReadCommitted)
        .into_iter()
        .filter_map(|(w, c)| Some((w, *c.last()?)))
        .collect()
}

/// A panic in user code reaches the uncaught-error handler as `StreamsError::Panicked`;
/// the replacement thread reopens the stores the panicked one held (RocksDB locks them per
/// process: the panicked thread must have released them) and counts exactly.
#[test]
fn a_panicked_thread_is_replaced_and_counts_stay_exact() {
    for cache in [10 << 20, 0] {
        let (dir, engine, mut expected) = with_sentences(200);
        poison(&engine);
        *expected.entry("poison".to_string()).or_default() += 1;
        produce(&engine, 200, 200, &mut expected);
        let app = panicking_app_with_cache(
            &dir.path().join("p"),
            &engine,
            Arc::new(AtomicBool::new(false)),
            cache,
        );
        let failures = run_replacing_threads(app);
        assert_eq!(failures.len(), 1, "cache {cache}: {failures:?}");
        assert!(failures[0].starts_with("Panicked"), "{failures:?}");
        assert!(
            failures[0].contains("cannot count a poisoned sentence"),
            "{failures:?}"
        );
        assert_eq!(committed_counts(&engine), expected, "cache {cache}");
    }
}

/// By default a failed thread stops the instance with the failure's own text: a
/// processor's error, or a panic's message.
#[test]
fn by_default_a_failed_or_panicked_thread_stops_the_instance_with_its_cause() {
    for (build, cause) in [
        (failing_app as Build, "poisoned"),
        (panicking_app, "cannot count a poisoned sentence"),
    ] {
        let (_dir, _engine, app) = poisoned_app(build);
        assert_stops_with(app, cause);
    }
}
