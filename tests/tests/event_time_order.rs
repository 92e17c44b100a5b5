//! Event-time correctness: a task processes its partitions in timestamp order as
//! `max.task.idle.ms` defines it (KIP-695), final-results suppression emits each window once
//! with its final value whatever the record cache does, and null values behave as Kafka's
//! nulls. Every expectation is written out from Kafka Streams' documented behaviour or
//! computed by plain code here, never taken from the framework's output.

// Test helpers outside #[test] functions may unwrap too: a panic fails the test.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use streams_core::config::ClientPrefix;
use streams_core::dsl::{BufferConfig, Suppressed};
use streams_core::partitioner::partition_for_key;
use streams_core::prelude::*;
use streams_core::runtime::{KafkaStreams, LogEngine, NewRecord, TopicConfig};
use streams_core::window::{SessionWindows, TimeWindows};

fn s(x: &str) -> String {
    x.to_string()
}

/// Counts per key in 10 s tumbling windows with no grace, suppressed until the window
/// closes, written as `[key@start/end]` -> count.
fn suppressed_counts() -> Topology {
    let builder = StreamsBuilder::new();
    builder
        .stream::<String, String>("in")
        .group_by_key()
        .windowed_by(TimeWindows::of_size_with_no_grace(Duration::from_secs(10)))
        .count()
        .suppress(Suppressed::until_window_closes(BufferConfig::unbounded()))
        .to_stream()
        .map(|w, n| (w.to_string(), n))
        .to("out");
    builder.build().unwrap()
}

/// The reproduction: 10 keys at 1 s (committed), then 2 s and 12 s for every key in
/// one batch, so that the cache holds both windows of every key when it is flushed. Kafka
/// emits `[k@0/10000]=2` once per key.
#[test]
fn suppression_emits_each_window_once_with_its_final_value_cache_on_and_off() {
    for cache in [10 * 1024 * 1024, 0] {
        for partitions in [1, 3] {
            let driver = TopologyTestDriver::builder(
                suppressed_counts(),
                StreamsConfig::new("sup").with_cache_max_bytes(cache),
            )
            .partitions("in", partitions)
            .build()
            .unwrap();
            let input = driver.input_topic::<String, String>("in");
            let keys: Vec<String> = (0..10).map(|i| format!("k{i}")).collect();
            input
                .pipe_records(keys.iter().map(|k| Record::new(k.clone(), s("v"), 1_000)))
                .unwrap();
            input
                .pipe_records(
                    keys.iter()
                        .map(|k| Record::new(k.clone(), s("v"), 2_000))
                        .chain(keys.iter().map(|k| Record::new(k.clone(), s("v"), 12_000))),
                )
                .unwrap();
            let out = driver
                .output_topic::<String, Option<i64>>("out")
                .read_key_values_to_list()
                .unwrap();
            let mut expected: Vec<(String, Option<i64>)> = keys
                .iter()
                .map(|k| (format!("[{k}@0/10000]"), Some(2)))
                .collect();
            let mut got = out.clone();
            got.sort();
            expected.sort();
            assert_eq!(
                got, expected,
                "cache {cache}, {partitions} partitions: {out:?}"
            );
        }
    }
}

/// Commits at every record, and at no record: the result is the same single final value.
#[test]
fn suppression_is_the_same_whatever_the_commit_points() {
    let records: Vec<(String, i64)> = (0..200)
        .map(|i| (format!("k{}", i % 7), (i as i64) * 137 % 40_000))
        .collect();
    // Reference: a single timestamp-ordered pass per partition is what the driver does
    // within a batch; with one batch of everything, stream time at the end is the largest
    // timestamp and nothing is late when sorted.
    let mut sorted = records.clone();
    sorted.sort_by_key(|(_, t)| *t);
    let max_ts = sorted.last().unwrap().1;
    let mut expected: BTreeMap<String, i64> = BTreeMap::new();
    for (k, t) in &sorted {
        let start = t - t % 10_000;
        if start + 10_000 <= max_ts {
            *expected
                .entry(format!("[{k}@{start}/{}]", start + 10_000))
                .or_default() += 1;
        }
    }
    for cache in [10 * 1024 * 1024, 0] {
        let driver = TopologyTestDriver::new(
            suppressed_counts(),
            StreamsConfig::new("sup").with_cache_max_bytes(cache),
        )
        .unwrap();
        let input = driver.input_topic::<String, String>("in");
        input
            .pipe_records(
                sorted
                    .iter()
                    .map(|(k, t)| Record::new(k.clone(), s("v"), *t)),
            )
            .unwrap();
        let out = driver
            .output_topic::<String, Option<i64>>("out")
            .read_key_values_to_list()
            .unwrap();
        let mut seen: BTreeMap<String, i64> = BTreeMap::new();
        for (w, n) in out {
            assert!(
                seen.insert(w.clone(), n.unwrap()).is_none(),
                "window {w} emitted twice"
            );
        }
        assert_eq!(seen, expected, "cache {cache}");
    }
}

/// Kafka's final-results suppression drops buffered tombstones: a session merged into a
/// later one produces no output.
#[test]
fn final_results_of_sessions_drop_merged_sessions() {
    for cache in [10 * 1024 * 1024, 0] {
        let builder = StreamsBuilder::new();
        builder
            .stream::<String, String>("in")
            .group_by_key()
            .windowed_by_session(SessionWindows::of_inactivity_gap_with_no_grace(
                Duration::from_secs(5),
            ))
            .count()
            .suppress(Suppressed::until_window_closes(BufferConfig::unbounded()))
            .to_stream()
            .map(|w, n| (w.to_string(), n))
            .to("out");
        let driver = TopologyTestDriver::new(
            builder.build().unwrap(),
            StreamsConfig::new("sess").with_cache_max_bytes(cache),
        )
        .unwrap();
        let input = driver.input_topic::<String, String>("in");
        for t in [0, 3_000, 10_000] {
            input.pipe_input_at(s("a"), s("v"), t).unwrap();
        }
        let out = driver
            .output_topic::<String, Option<i64>>("out")
            .read_key_values_to_list()
            .unwrap();
        assert_eq!(out, vec![(s("[a@0/3000]"), Some(2))], "cache {cache}");
    }
}

/// A null value in a stream turned into a table deletes the key and forwards the delete.
#[test]
fn a_null_value_turned_into_a_table_deletes_the_key() {
    for cache in [10 * 1024 * 1024, 0] {
        let builder = StreamsBuilder::new();
        builder
            .stream::<String, Option<i64>>("updates")
            .to_table_with(Named::none(), Materialized::as_("copy"))
            .to_stream()
            .to("out");
        let driver = TopologyTestDriver::new(
            builder.build().unwrap(),
            StreamsConfig::new("tbl").with_cache_max_bytes(cache),
        )
        .unwrap();
        let input = driver.input_topic::<String, Option<i64>>("updates");
        input.pipe_input_at(s("a"), Some(1), 1_000).unwrap();
        input.pipe_input_at(s("b"), Some(2), 2_000).unwrap();
        input.pipe_input_at(s("a"), None, 3_000).unwrap();
        let store = driver
            .key_value_store::<String, Option<i64>>("copy")
            .unwrap();
        assert_eq!(store.get(&s("a")).unwrap(), None);
        input.pipe_input_at(s("a"), Some(3), 4_000).unwrap();
        let out = driver
            .output_topic::<String, Option<i64>>("out")
            .read_key_values_to_list()
            .unwrap();
        assert_eq!(
            out,
            vec![
                (s("a"), Some(1)),
                (s("b"), Some(2)),
                (s("a"), None),
                (s("a"), Some(3)),
            ],
            "cache {cache}"
        );
        let store = driver
            .key_value_store::<String, Option<i64>>("copy")
            .unwrap();
        assert_eq!(store.get(&s("a")).unwrap(), Some(Some(3)));
        assert_eq!(store.get(&s("b")).unwrap(), Some(Some(2)));
    }
}

/// Two co-partitioned topics merged into one output, values being the timestamps.
fn merged() -> Topology {
    let builder = StreamsBuilder::new();
    let left = builder.stream::<String, i64>("left");
    let right = builder.stream::<String, i64>("right");
    left.merge(&right).to("out");
    builder.build().unwrap()
}

fn driver_with_idle(idle_ms: i64) -> TopologyTestDriver {
    TopologyTestDriver::builder(
        merged(),
        StreamsConfig::new("idle").with_max_task_idle_ms(idle_ms),
    )
    .build()
    .unwrap()
}

fn pipe(driver: &TopologyTestDriver, topic: &str, ts: &[i64]) {
    driver
        .input_topic::<String, i64>(topic)
        .pipe_records(ts.iter().map(|t| Record::new(s("k"), *t, *t)))
        .unwrap();
}

fn read_out(out: &TestOutputTopic<String, i64>) -> Vec<i64> {
    out.read_values_to_list().unwrap()
}

/// `max.task.idle.ms = 0` (default): every partition of the driver is caught up, so an
/// empty one is not waited for; each such record counts as enforced processing.
#[test]
fn idle_zero_processes_at_once_and_counts_enforced_processing() {
    let driver = driver_with_idle(0);
    let out = driver.output_topic::<String, i64>("out");
    pipe(&driver, "left", &[5, 7]);
    assert_eq!(read_out(&out), vec![5, 7]);
    assert_eq!(driver.metrics().enforced_processing, 2);
    pipe(&driver, "right", &[6]);
    assert_eq!(read_out(&out), vec![6]);
    assert_eq!(driver.metrics().enforced_processing, 3);
}

/// `max.task.idle.ms > 0`: records of one partition wait for the other until the wall clock
/// passes the deadline; once both have records, the smaller timestamp goes first.
#[test]
fn idle_above_zero_waits_for_the_empty_partition_then_orders_by_timestamp() {
    let mut driver = driver_with_idle(100);
    let out = driver.output_topic::<String, i64>("out");
    pipe(&driver, "left", &[1, 4]);
    assert!(read_out(&out).is_empty(), "left waits for right");
    pipe(&driver, "right", &[2, 3]);
    // 1, 2, 3 in timestamp order; 4 waits again for right (now empty).
    assert_eq!(read_out(&out), vec![1, 2, 3]);
    assert_eq!(driver.metrics().enforced_processing, 0);
    driver
        .advance_wall_clock_time(Duration::from_millis(99))
        .unwrap();
    assert!(read_out(&out).is_empty(), "deadline not reached");
    driver
        .advance_wall_clock_time(Duration::from_millis(1))
        .unwrap();
    assert_eq!(read_out(&out), vec![4]);
    assert_eq!(driver.metrics().enforced_processing, 1);
}

/// `max.task.idle.ms = -1`: never waits and counts nothing.
#[test]
fn idle_minus_one_never_waits() {
    let driver = driver_with_idle(-1);
    let out = driver.output_topic::<String, i64>("out");
    pipe(&driver, "left", &[5]);
    assert_eq!(read_out(&out), vec![5]);
    assert_eq!(driver.metrics().enforced_processing, 0);
}

/// Through the runtime on the embedded engine: two topics fully written before the app
/// starts (one with even, one with odd timestamps, in 2 partitions) come out of a merge in
/// timestamp order per partition, whatever the poll sizes, because a task waits for a
/// partition that still has records in the log. A windowed count with no grace then drops
/// nothing and counts exactly.
#[test]
fn the_runtime_processes_data_in_the_log_in_timestamp_order() {
    const N: i64 = 20_000;
    const PARTITIONS: u32 = 2;
    let dir = tempfile::tempdir().unwrap();
    let engine = Arc::new(LogEngine::open(&dir.path().join("log")).unwrap());
    for t in ["left", "right"] {
        engine
            .create_topic(t, TopicConfig::new(PARTITIONS))
            .unwrap();
    }
    let keys = ["a", "b", "c", "d", "e"];
    // Left gets every even timestamp, right one in ten of the odd ones, each in order: a
    // fetch of as many records from each reaches ten times further in time on the right.
    let input: Vec<(&str, i64, &str)> = (0..N)
        .filter_map(|t| match t % 20 {
            1 => Some(("right", t)),
            x if x % 2 == 0 => Some(("left", t)),
            _ => None,
        })
        .map(|(topic, t)| (topic, t, keys[(t as usize / 2) % keys.len()]))
        .collect();
    // Values of 2 KB: a fetch (1 MiB per partition) holds ~500 records of each topic.
    let padding = vec![b'x'; 2048];
    for (topic, t, key) in &input {
        engine
            .append(
                topic,
                partition_for_key(key.as_bytes(), PARTITIONS),
                &[NewRecord {
                    timestamp: *t,
                    key: Some(key.as_bytes().to_vec()),
                    value: Some(padding.clone()),
                    headers: Vec::new(),
                }],
            )
            .unwrap();
    }
    // Default fetches (1 MiB per partition), and polls of at most 40 records.
    for (run, max_poll) in [(0, None), (1, Some("40"))] {
        let builder = StreamsBuilder::new();
        let merged = builder
            .stream::<String, String>("left")
            .merge(&builder.stream::<String, String>("right"));
        let out = format!("out-{run}");
        merged.to(&out);
        merged
            .group_by_key()
            .windowed_by(TimeWindows::of_size_with_no_grace(Duration::from_millis(
                500,
            )))
            .count_with(Materialized::as_("counts"))
            .to_stream()
            .map(|w, n| (w.to_string(), n.unwrap_or(-1)))
            .to(&format!("counts-out-{run}"));
        let mut config = StreamsConfig::new(format!("order-{run}"))
            .with_state_dir(dir.path().join("state"))
            .with_buffered_records_per_partition(100)
            .with_commit_interval(Duration::from_millis(50));
        if let Some(n) = max_poll {
            config = config.with_client_property(ClientPrefix::Consumer, "max.poll.records", n);
        }
        let mut app = KafkaStreams::new(builder.build().unwrap(), config, engine.clone()).unwrap();
        app.start().unwrap();
        app.wait_until_caught_up(Duration::from_secs(60)).unwrap();
        let metrics = app.metrics().total();
        app.close().unwrap();

        // Per partition, the merged output is sorted by timestamp.
        let mut total = 0;
        for p in 0..PARTITIONS {
            let ts: Vec<i64> = engine
                .read(&out, p, 0, usize::MAX)
                .unwrap()
                .into_iter()
                .map(|r| r.timestamp)
                .collect();
            let mut sorted = ts.clone();
            sorted.sort_unstable();
            assert_eq!(
                ts, sorted,
                "run {run}: partition {p} out of timestamp order"
            );
            total += ts.len();
        }
        assert_eq!(total, input.len());
        assert_eq!(metrics.dropped_records, 0, "run {run}: no record is late");
        check_counts(&engine, run, &input);
    }
}

/// The last count per window of run `run` equals a plain count of `input`.
fn check_counts(engine: &LogEngine, run: usize, input: &[(&str, i64, &str)]) {
    const PARTITIONS: u32 = 2;
    // The last count per window equals a plain count.
    let mut expected: BTreeMap<String, i64> = BTreeMap::new();
    for (_, t, key) in input {
        let start = t - t % 500;
        *expected
            .entry(format!("[{key}@{start}/{}]", start + 500))
            .or_default() += 1;
    }
    let mut got: BTreeMap<String, i64> = BTreeMap::new();
    for p in 0..PARTITIONS {
        for r in engine
            .read(&format!("counts-out-{run}"), p, 0, usize::MAX)
            .unwrap()
        {
            let w = String::from_utf8(r.key.unwrap()).unwrap();
            let n = i64::from_be_bytes(r.value.unwrap().try_into().unwrap());
            got.insert(w, n);
        }
    }
    assert_eq!(got, expected, "run {run}");
}
