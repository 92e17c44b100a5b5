//! Windowed aggregations with time windows: boundaries, hopping fan-out, grace and late
//! drops, Kafka's windowed key layout, stores and a restart mid-window.

// Test helpers outside #[test] functions may unwrap too: a panic fails the test.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use streams_core::partitioner::partition_for_key;
use streams_core::prelude::*;
use streams_core::window::{SessionWindows, TimeWindowedSerde, TimeWindows};
use streams_tests::driver;

fn s(x: &str) -> String {
    x.to_string()
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// Writes the window counts of `table` to `topic` as `[key@start/end]` -> count (-1 for a
/// tombstone).
fn counts_to(table: KTable<Windowed<String>, i64>, topic: &str) {
    table
        .to_stream()
        .map(|w, n| (w.to_string(), n.unwrap_or(-1)))
        .to(topic);
}

/// "in" grouped by key and counted per window by `count`, the counts written to "out" (see
/// [`counts_to`]).
fn counting_with(
    count: impl FnOnce(KGroupedStream<String, String>) -> KTable<Windowed<String>, i64>,
) -> Topology {
    let builder = StreamsBuilder::new();
    counts_to(count(builder.stream("in").group_by_key()), "out");
    builder.build().unwrap()
}

/// Counts per key in `windows` (store "counts"), written as `[key@start/end]` -> count.
fn counting(windows: TimeWindows) -> Topology {
    counting_with(|g| {
        g.windowed_by(windows)
            .count_with(Materialized::as_("counts"))
    })
}

#[test]
fn tumbling_windows_are_aligned_to_the_epoch_and_end_exclusive() {
    let (out, _) = driver::count_keys_at(
        counting(TimeWindows::of_size_with_no_grace(secs(10))),
        StreamsConfig::new("w"),
        &[("a", 0), ("a", 9_999), ("a", 10_000), ("b", 15_000)],
    );
    assert_eq!(
        out,
        vec![
            (s("[a@0/10000]"), 1),
            (s("[a@0/10000]"), 2),
            (s("[a@10000/20000]"), 1), // exactly at the end: the next window
            (s("[b@10000/20000]"), 1),
        ]
    );
}

#[test]
fn hopping_windows_fan_a_record_out_to_every_window_containing_it() {
    let windows = TimeWindows::of_size_with_no_grace(secs(10)).advance_by(secs(5));
    let (out, _) = driver::count_keys_at(
        counting(windows),
        StreamsConfig::new("w"),
        &[("a", 7_000), ("a", 12_000)],
    );
    assert_eq!(
        out,
        vec![
            (s("[a@0/10000]"), 1),
            (s("[a@5000/15000]"), 1),
            (s("[a@5000/15000]"), 2),
            (s("[a@10000/20000]"), 1),
        ]
    );
}

#[test]
fn late_records_for_closed_windows_are_dropped_and_counted() {
    // Size 10 s, grace 2 s: [0, 10) closes when stream time reaches 12 s.
    let windows = TimeWindows::of_size_and_grace(secs(10), secs(2));
    let (out, driver) = driver::count_keys_at(
        counting(windows),
        StreamsConfig::new("w"),
        &[
            ("a", 1_000),
            ("a", 11_999), // stream time 11.999 s: [0, 10) still open
            ("a", 9_000),  // late but within grace: counted
            ("a", 12_000), // stream time 12 s: [0, 10) closes (end + grace <= stream time)
            ("a", 9_500),  // dropped
        ],
    );
    assert_eq!(
        out,
        vec![
            (s("[a@0/10000]"), 1),
            (s("[a@10000/20000]"), 1),
            (s("[a@0/10000]"), 2),
            (s("[a@10000/20000]"), 2),
        ]
    );
    assert_eq!(driver.metrics().dropped_records, 1);
    let store = driver.window_store::<String, i64>("counts").unwrap();
    assert_eq!(
        store.fetch_range(&s("a"), 0, 20_000).unwrap(),
        vec![(0, 2), (10_000, 2)]
    );
}

#[test]
fn windowed_keys_use_kafkas_byte_layout_and_aggregations_keep_the_max_timestamp() {
    let builder = StreamsBuilder::new();
    builder
        .stream::<String, i64>("in")
        .group_by_key()
        .windowed_by(TimeWindows::of_size_with_no_grace(secs(60)))
        .reduce(|a, b| a + b)
        .to_stream()
        .to("sums");
    let driver =
        TopologyTestDriver::new(builder.build().unwrap(), StreamsConfig::new("w")).unwrap();
    let input = driver.input_topic::<String, i64>("in");
    input.pipe_input_at(s("k"), 5, 2_000).unwrap();
    input.pipe_input_at(s("k"), 7, 1_000).unwrap();
    let raw = driver
        .output_topic::<Option<Vec<u8>>, Option<i64>>("sums")
        .read_records_to_list()
        .unwrap();
    let mut key = b"k".to_vec();
    key.extend_from_slice(&0i64.to_be_bytes());
    assert_eq!(raw.len(), 2);
    assert_eq!(raw[1].key.as_deref(), Some(key.as_slice()));
    assert_eq!((raw[1].value, raw[1].timestamp), (Some(12), 2_000));
    // Read back with the window size, the end is known; without it, it is open.
    let typed = driver.output_topic_with::<Windowed<String>, Option<i64>>(
        "sums",
        Arc::new(TimeWindowedSerde::new(default_serde(), Some(60_000))),
        default_serde(),
    );
    let first = typed.read_key_value().unwrap().unwrap();
    assert_eq!((first.0.to_string(), first.1), (s("[k@0/60000]"), Some(5)));
    let untyped = driver.output_topic::<Windowed<String>, Option<i64>>("sums");
    assert_eq!(
        untyped.read_key_value().unwrap().unwrap().0.window.end,
        i64::MAX
    );
}

#[test]
fn aggregate_into_another_type_per_window() {
    let builder = StreamsBuilder::new();
    builder
        .stream::<String, String>("in")
        .group_by_key()
        .windowed_by(TimeWindows::of_size_with_no_grace(secs(10)))
        .aggregate(String::new, |_, v, acc: String| acc + &v)
        .to_stream()
        .map(|w, v| (w.to_string(), v.unwrap_or_default()))
        .to("out");
    let driver =
        TopologyTestDriver::new(builder.build().unwrap(), StreamsConfig::new("w")).unwrap();
    let input = driver.input_topic::<String, String>("in");
    for (v, ts) in [("a", 1_000), ("b", 2_000), ("c", 11_000)] {
        input.pipe_input_at(s("k"), s(v), ts).unwrap();
    }
    assert_eq!(
        driver::key_values::<String, String>(&driver, "out"),
        vec![
            (s("[k@0/10000]"), s("a")),
            (s("[k@0/10000]"), s("ab")),
            (s("[k@10000/20000]"), s("c"))
        ]
    );
}

#[test]
fn invalid_windows_are_a_build_error() {
    let builder = StreamsBuilder::new();
    builder
        .stream::<String, String>("in")
        .group_by_key()
        .windowed_by(TimeWindows::of_size_with_no_grace(secs(10)).advance_by(secs(20)))
        .count();
    let err = builder.build().unwrap_err();
    assert!(matches!(err, TopologyError::InvalidOption { .. }), "{err}");
    assert!(err.to_string().contains("advance"), "{err}");
}

#[test]
fn rocksdb_window_counts_survive_a_restart_mid_window() {
    let dir = tempfile::tempdir().unwrap();
    let config = StreamsConfig::new("restart").with_state_dir(dir.path());
    let windows = TimeWindows::of_size_and_grace(secs(60), secs(5));
    {
        let driver = TopologyTestDriver::new(counting(windows), config.clone()).unwrap();
        let input = driver.input_topic::<String, String>("in");
        for ts in [1_000, 2_000, 61_000] {
            input.pipe_input_at(s("u"), s("x"), ts).unwrap();
        }
        driver.close().unwrap();
    }
    let driver = TopologyTestDriver::new(counting(windows), config).unwrap();
    let input = driver.input_topic::<String, String>("in");
    for ts in [3_000, 62_000] {
        input.pipe_input_at(s("u"), s("x"), ts).unwrap();
    }
    let out = driver::key_values::<String, i64>(&driver, "out");
    assert_eq!(out, vec![(s("[u@0/60000]"), 3), (s("[u@60000/120000]"), 2)]);
    let store = driver.window_store::<String, i64>("counts").unwrap();
    assert_eq!(
        store.fetch_range(&s("u"), 0, 60_000).unwrap(),
        vec![(0, 3), (60_000, 2)]
    );
}

/// Counts per key in sessions with an inactivity gap and a grace of `gap` and `grace`
/// seconds (store "sessions"), written as `[key@start/end]` -> count.
fn session_counting(gap: u64, grace: u64) -> Topology {
    let windows = SessionWindows::of_inactivity_gap_and_grace(secs(gap), secs(grace));
    counting_with(|g| {
        g.windowed_by_session(windows)
            .count_with(Materialized::as_("sessions"))
    })
}

#[test]
fn a_record_bridging_two_sessions_merges_them_with_tombstones_for_both() {
    // A grace of 20 s keeps the out-of-order records below on time.
    let (out, driver) = driver::count_keys_at(
        session_counting(10, 20),
        StreamsConfig::new("s"),
        &[("u", 0), ("u", 25_000), ("u", 12_000)],
    );
    assert_eq!(
        out,
        vec![
            (s("[u@0/0]"), 1),
            (s("[u@25000/25000]"), 1), // 25 s after the first: its own session
            // 12 s is within 10 s of neither... 12 - 0 = 12 > 10, 25 - 12 = 13 > 10: alone
            (s("[u@12000/12000]"), 1),
        ]
    );
    driver
        .input_topic::<String, String>("in")
        .pipe_input_at(s("u"), s("x"), 5_000)
        .unwrap();
    // 5 s joins [0,0] (5 <= 10) and [12,12] (7 <= 10): both replaced by [0, 12 s].
    assert_eq!(
        driver::key_values::<String, i64>(&driver, "out")[3..],
        [
            (s("[u@0/0]"), -1),
            (s("[u@12000/12000]"), -1),
            (s("[u@0/12000]"), 3),
        ]
    );
    let sessions = driver.session_store::<String, i64>("sessions").unwrap();
    let got: Vec<_> = sessions
        .fetch(&s("u"))
        .unwrap()
        .into_iter()
        .map(|(w, n)| (w.window.start, w.window.end, n))
        .collect();
    assert_eq!(got, vec![(0, 12_000, 3), (25_000, 25_000, 1)]);
}

#[test]
fn late_records_for_closed_sessions_are_dropped() {
    // gap 10 s, grace 5 s: a session ending at e closes once stream time > e + 15 s.
    let (out, driver) = driver::count_keys_at(
        session_counting(10, 5),
        StreamsConfig::new("s"),
        &[
            ("u", 0),
            ("v", 15_000),
            ("u", 1_000),
            ("v", 16_000),
            ("u", 500),
        ],
    );
    // At stream time 15 s, [u@0/0] is still open (0 + 15 s is not before 15 s): the record at
    // 1 s merges. At 16 s, u's session [0, 1 s] closes at 16 s: 1 s + 15 s is not < 16 s,
    // still open. So 500 ms merges too.
    assert_eq!(driver.metrics().dropped_records, 0);
    assert_eq!(out.last().unwrap(), &(s("[u@0/1000]"), 3));
    let input = driver.input_topic::<String, String>("in");
    input.pipe_input_at(s("v"), s("x"), 40_000).unwrap(); // stream time 40 s
    input.pipe_input_at(s("u"), s("x"), 2_000).unwrap(); // merges into [0, 2 s]: 2 + 15 < 40
    assert_eq!(driver.metrics().dropped_records, 1);
}

/// Session reduce and aggregate against a plain recount: with a grace that keeps every
/// record on time, a key's sessions are the runs of its sorted timestamps whose neighbours
/// are at most `gap` apart, whatever the arrival order; a commutative reducer's value is the
/// sum of the run. Cache on and off, one and three partitions.
#[test]
fn session_reduce_and_aggregate_match_a_recount_of_the_sessions() {
    const GAP: i64 = 5_000;
    // A fixed pseudo-random arrival order: 3 keys, timestamps over 100 s, out of order.
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move |n: u64| {
        seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        (seed >> 33) % n
    };
    let input: Vec<(String, i64, i64)> = (0..300)
        .map(|_| {
            let key = format!("k{}", next(3));
            let ts = next(100_000) as i64;
            let amount = next(50) as i64 + 1;
            (key, ts, amount)
        })
        .collect();
    let mut expected: std::collections::BTreeMap<String, Vec<(i64, i64, i64)>> =
        std::collections::BTreeMap::new();
    let mut by_key: std::collections::BTreeMap<&str, Vec<(i64, i64)>> = Default::default();
    for (k, ts, amount) in &input {
        by_key.entry(k).or_default().push((*ts, *amount));
    }
    for (k, mut records) in by_key {
        records.sort();
        let sessions = expected.entry(k.to_string()).or_default();
        for (ts, amount) in records {
            match sessions.last_mut() {
                Some((_, end, sum)) if ts - *end <= GAP => {
                    *end = ts;
                    *sum += amount;
                }
                _ => sessions.push((ts, ts, amount)),
            }
        }
    }
    for (cache, partitions) in [(0, 1), (10 * 1024 * 1024, 1), (0, 3), (10 * 1024 * 1024, 3)] {
        let builder = StreamsBuilder::new();
        let sessions = builder
            .stream::<String, i64>("in")
            .group_by_key()
            .windowed_by_session(SessionWindows::of_inactivity_gap_and_grace(
                Duration::from_millis(GAP as u64),
                secs(1_000),
            ));
        sessions.reduce_with(|a, b| a + b, Materialized::as_("reduced"));
        sessions.aggregate_with(
            || 0,
            |_, v, sum: i64| sum + v,
            |_, a, b| a + b,
            Materialized::as_("aggregated").with_value_serde(default_serde()),
        );
        let driver = driver::with_partitions(
            builder.build().unwrap(),
            StreamsConfig::new("sessions").with_cache_max_bytes(cache),
            &[("in", partitions)],
        );
        let topic = driver.input_topic::<String, i64>("in");
        for (k, ts, amount) in &input {
            topic.pipe_input_at(k.clone(), *amount, *ts).unwrap();
        }
        assert_eq!(driver.metrics().dropped_records, 0);
        for store in ["reduced", "aggregated"] {
            let got: std::collections::BTreeMap<String, Vec<(i64, i64, i64)>> = expected
                .keys()
                .map(|k| {
                    let sessions = driver.session_store::<String, i64>(store).unwrap();
                    let found = sessions
                        .fetch(k)
                        .unwrap()
                        .into_iter()
                        .map(|(w, v)| (w.window.start, w.window.end, v))
                        .collect();
                    (k.clone(), found)
                })
                .collect();
            assert_eq!(
                got, expected,
                "store {store}, cache {cache}, {partitions} partitions"
            );
        }
    }
}

#[test]
fn session_reduce_combines_merged_sessions_in_order_and_names_its_nodes_like_kafka() {
    let builder = StreamsBuilder::new();
    builder
        .stream::<String, String>("in")
        .group_by_key()
        // A grace that keeps the first session in the store (retention: gap + grace) when
        // the out-of-order record bridges it.
        .windowed_by_session(SessionWindows::of_inactivity_gap_and_grace(
            secs(10),
            secs(30),
        ))
        .reduce(|a, b| format!("{a}+{b}"))
        .to_stream()
        .map(|w, v| (w.to_string(), v.unwrap_or_else(|| s("-"))))
        .to("out");
    let topology = builder.build().unwrap();
    let names: Vec<String> = topology.describe().subtopologies[0]
        .nodes
        .iter()
        .map(|n| n.name.clone())
        .collect();
    assert!(names.contains(&s("KSTREAM-REDUCE-0000000002")), "{names:?}");
    let driver = TopologyTestDriver::new(topology, StreamsConfig::new("r")).unwrap();
    let input = driver.input_topic::<String, String>("in");
    input.pipe_input_at(s("u"), s("a"), 0).unwrap();
    input.pipe_input_at(s("u"), s("c"), 20_000).unwrap();
    input.pipe_input_at(s("u"), s("b"), 10_000).unwrap(); // bridges both sessions
    assert_eq!(
        driver::key_values::<String, String>(&driver, "out"),
        vec![
            (s("[u@0/0]"), s("a")),
            (s("[u@20000/20000]"), s("c")),
            (s("[u@0/0]"), s("-")),
            (s("[u@20000/20000]"), s("-")),
            // Kafka's order: the merged sessions' values (earliest first), then the record.
            (s("[u@0/20000]"), s("a+c+b")),
        ]
    );
}

/// Kafka Streams 3.x's window store retention: by default window size plus grace; asking
/// for less is a
/// build error that names the minimum; asking for more keeps windows for queries.
#[test]
fn window_and_session_stores_keep_size_plus_grace_by_default_and_refuse_less() {
    let topology = counting(TimeWindows::of_size_and_grace(secs(10), secs(5)));
    // Cache off: a window still in the record cache is served from it, as in Kafka.
    let config = StreamsConfig::new("r").with_cache_max_bytes(0);
    let driver = TopologyTestDriver::new(topology, config).unwrap();
    let input = driver.input_topic::<String, String>("in");
    input.pipe_input_at(s("a"), s("x"), 1_000).unwrap();
    input.pipe_input_at(s("b"), s("x"), 14_999).unwrap();
    let store = driver.window_store::<String, i64>("counts").unwrap();
    assert_eq!(store.fetch(&s("a"), 0).unwrap(), Some(1));
    // The store's time is the latest window start it holds (Kafka's segment timestamp):
    // at 20 s, windows starting at or before 20 s - 15 s are gone.
    input.pipe_input_at(s("b"), s("x"), 15_000).unwrap();
    assert_eq!(store.fetch(&s("a"), 0).unwrap(), Some(1));
    input.pipe_input_at(s("b"), s("x"), 20_000).unwrap();
    assert_eq!(store.fetch(&s("a"), 0).unwrap(), None);

    let kept = counting_with(|g| {
        g.windowed_by(TimeWindows::of_size_and_grace(secs(10), secs(5)))
            .count_with(Materialized::as_("counts").with_retention(secs(3_600)))
    });
    let driver = TopologyTestDriver::new(kept, StreamsConfig::new("r")).unwrap();
    let input = driver.input_topic::<String, String>("in");
    input.pipe_input_at(s("a"), s("x"), 1_000).unwrap();
    input.pipe_input_at(s("b"), s("x"), 600_000).unwrap();
    let store = driver.window_store::<String, i64>("counts").unwrap();
    assert_eq!(store.fetch(&s("a"), 0).unwrap(), Some(1));

    let too_short = || Materialized::as_("counts").with_retention(secs(14));
    let err = build_error(|g| {
        g.windowed_by(TimeWindows::of_size_and_grace(secs(10), secs(5)))
            .count_with(too_short());
    });
    assert!(
        err.contains("window size plus the grace period (15000 ms)"),
        "{err}"
    );
    let err = build_error(|g| {
        g.windowed_by_session(SessionWindows::of_inactivity_gap_and_grace(
            secs(10),
            secs(5),
        ))
        .count_with(too_short());
    });
    assert!(
        err.contains("inactivity gap plus the grace period (15000 ms)"),
        "{err}"
    );
}

/// The error of building "in" grouped by key and aggregated by `aggregate`.
fn build_error(aggregate: impl FnOnce(KGroupedStream<String, String>)) -> String {
    let builder = StreamsBuilder::new();
    aggregate(builder.stream("in").group_by_key());
    builder.build().unwrap_err().to_string()
}

/// A windowed aggregation judges lateness by the records that reach it (Kafka's
/// per-processor observed stream time): a record that a filter drops, or a null key the
/// aggregation drops, closes no window, however far ahead its timestamp.
#[test]
fn records_dropped_before_a_windowed_aggregation_close_no_window() {
    for sessions in [false, true] {
        let builder = StreamsBuilder::new();
        let grouped = builder
            .stream::<String, String>("in")
            .filter(|_, v| v != "skip")
            .group_by_key();
        let table = if sessions {
            grouped
                .windowed_by_session(SessionWindows::of_inactivity_gap_with_no_grace(secs(5)))
                .count()
        } else {
            grouped
                .windowed_by(TimeWindows::of_size_with_no_grace(secs(10)))
                .count()
        };
        counts_to(table, "out");
        let config = StreamsConfig::new("w").with_cache_max_bytes(0);
        let driver = TopologyTestDriver::new(builder.build().unwrap(), config).unwrap();
        let input = driver.input_topic::<String, String>("in");
        input.pipe_input_at(s("a"), s("x"), 1_000).unwrap();
        input.pipe_input_at(s("a"), s("skip"), 50_000).unwrap();
        input.pipe_input_at(s("a"), s("x"), 2_000).unwrap();
        assert_eq!(driver.metrics().dropped_records, 0, "sessions: {sessions}");
        let out = driver::key_values::<String, i64>(&driver, "out");
        let last = if sessions {
            "[a@1000/2000]"
        } else {
            "[a@0/10000]"
        };
        assert_eq!(out.last(), Some(&(s(last), 2)), "sessions: {sessions}");
        // A record that reaches the aggregation does move its time on.
        input.pipe_input_at(s("b"), s("x"), 50_000).unwrap();
        input.pipe_input_at(s("a"), s("x"), 3_000).unwrap();
        assert_eq!(driver.metrics().dropped_records, 1, "sessions: {sessions}");
    }
}

/// A session that ends exactly `gap + grace` behind the aggregation's time is still open
/// (it closes once it ends strictly before): a record within the gap merges into it, with
/// the store's default retention (gap + grace), cache on and off.
#[test]
fn a_session_at_the_edge_of_its_retention_still_merges() {
    for cache in [0, 1 << 20] {
        let topology = counting_with(|g| {
            g.windowed_by_session(SessionWindows::of_inactivity_gap_with_no_grace(secs(10)))
                .count()
        });
        let config = StreamsConfig::new("s").with_cache_max_bytes(cache);
        let (out, driver) =
            driver::count_keys_at(topology, config, &[("a", 0), ("b", 10_000), ("a", 5_000)]);
        assert_eq!(driver.metrics().dropped_records, 0, "cache {cache}");
        assert_eq!(out.last(), Some(&(s("[a@0/5000]"), 2)), "cache {cache}");
    }
}

/// Session emit-on-close against a recount: every session of random out-of-order records
/// (less out of order than the grace, so no closed session is joined again) comes out
/// exactly once, with its final count, at its end, once a later record closes it; cache
/// on and off, one and three partitions.
#[test]
fn session_emit_on_close_forwards_each_final_session_once() {
    use streams_core::dsl::EmitStrategy;
    const GAP: i64 = 5_000;
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move |n: u64| {
        seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        (seed >> 33) % n
    };
    let input: Vec<(String, i64)> = (0..400i64)
        .map(|i| (format!("k{}", next(3)), i * 700 + next(10_000) as i64))
        .collect();
    let mut by_key: std::collections::BTreeMap<&str, Vec<i64>> = Default::default();
    for (k, ts) in &input {
        by_key.entry(k).or_default().push(*ts);
    }
    // (end, key, start, count): every session, all closed by the last record below.
    let mut expected: Vec<(i64, String, i64, i64)> = Vec::new();
    for (k, mut times) in by_key {
        times.sort();
        let mut run: Option<(i64, i64, i64)> = None;
        for ts in times {
            run = match run {
                Some((start, end, n)) if ts - end <= GAP => Some((start, ts, n + 1)),
                Some((start, end, n)) => {
                    expected.push((end, k.to_string(), start, n));
                    Some((ts, ts, 1))
                }
                None => Some((ts, ts, 1)),
            };
        }
        if let Some((start, end, n)) = run {
            expected.push((end, k.to_string(), start, n));
        }
    }
    expected.sort();
    for (cache, partitions) in [(0, 1), (1 << 20, 1), (0, 3), (1 << 20, 3)] {
        let builder = StreamsBuilder::new();
        builder
            .stream::<String, String>("in")
            .group_by_key()
            .windowed_by_session(SessionWindows::of_inactivity_gap_and_grace(
                Duration::from_millis(GAP as u64),
                secs(20),
            ))
            .emit_strategy(EmitStrategy::OnWindowClose)
            .count()
            .to_stream()
            .map(|w, n| (format!("{} {}", w.key, w.window.start), n.unwrap_or(-1)))
            .to("out");
        let config = StreamsConfig::new("e").with_cache_max_bytes(cache);
        let driver =
            driver::with_partitions(builder.build().unwrap(), config, &[("in", partitions)]);
        let topic = driver.input_topic::<String, String>("in");
        for (k, ts) in &input {
            topic.pipe_input_at(k.clone(), s("x"), *ts).unwrap();
        }
        // A record far ahead in every partition closes every session of the input.
        let mut closed = std::collections::BTreeSet::new();
        for i in 0.. {
            let key = format!("zz{i}");
            if closed.insert(partition_for_key(key.as_bytes(), partitions)) {
                topic.pipe_input_at(key, s("x"), 1_000_000).unwrap();
            }
            if closed.len() == partitions as usize {
                break;
            }
        }
        let label = format!("cache {cache}, {partitions} partitions");
        assert_eq!(driver.metrics().dropped_records, 0, "{label}");
        let mut got: Vec<(i64, String, i64, i64)> = driver
            .output_topic::<String, i64>("out")
            .read_records_to_list()
            .unwrap()
            .into_iter()
            .map(|r| {
                let (key, start) = r.key.split_once(' ').unwrap();
                // A final session is stamped with its end.
                (
                    r.timestamp,
                    key.to_string(),
                    start.parse().unwrap(),
                    r.value,
                )
            })
            .collect();
        // Each task emits by end; tasks interleave.
        if partitions > 1 {
            got.sort();
        }
        assert_eq!(got, expected, "{label}");
    }
}

mod suppression {
    use super::*;
    use streams_core::dsl::{BufferConfig, Suppressed};

    fn final_counts(suppressed: Suppressed) -> Topology {
        let windows = TimeWindows::of_size_and_grace(secs(10), secs(5));
        counting_with(|g| g.windowed_by(windows).count().suppress(suppressed))
    }

    #[test]
    fn until_window_closes_emits_exactly_one_final_result_per_window() {
        let (out, driver) = driver::count_keys_at(
            final_counts(Suppressed::until_window_closes(BufferConfig::unbounded())),
            StreamsConfig::new("f"),
            &[
                ("a", 1_000),
                ("b", 2_000),
                ("a", 3_000),
                ("a", 12_000), // [10, 20) for a
                ("b", 14_999), // stream time 14.999 s: [0, 10) closes at 15 s
            ],
        );
        assert!(out.is_empty(), "{out:?}");
        let input = driver.input_topic::<String, String>("in");
        input.pipe_input_at(s("a"), s("x"), 15_000).unwrap();
        let out = driver.output_topic::<String, i64>("out");
        assert_eq!(
            out.read_key_values_to_list().unwrap(),
            vec![(s("[a@0/10000]"), 2), (s("[b@0/10000]"), 1)]
        );
        input.pipe_input_at(s("a"), s("x"), 24_999).unwrap();
        assert!(out.is_empty());
        input.pipe_input_at(s("b"), s("x"), 25_000).unwrap();
        assert_eq!(
            out.read_key_values_to_list().unwrap(),
            // a: 12 s and 15 s (24.999 s falls in [20, 30)); b: 14.999 s.
            vec![(s("[a@10000/20000]"), 2), (s("[b@10000/20000]"), 1)]
        );
    }

    #[test]
    fn a_full_buffer_emits_early_or_stops_the_app() {
        let (out, _) = driver::count_keys_at(
            final_counts(Suppressed::until_window_closes(BufferConfig::max_records(
                1,
            ))),
            StreamsConfig::new("f"),
            &[("a", 1_000), ("b", 2_000)],
        );
        // Two keys, room for one: a's window is emitted early.
        assert_eq!(out, vec![(s("[a@0/10000]"), 1)]);
        let driver = TopologyTestDriver::new(
            final_counts(Suppressed::until_window_closes(
                BufferConfig::max_records(1).shut_down_when_full(),
            )),
            StreamsConfig::new("f"),
        )
        .unwrap();
        let input = driver.input_topic::<String, String>("in");
        input.pipe_input_at(s("a"), s("x"), 1_000).unwrap();
        let err = input.pipe_input_at(s("b"), s("x"), 2_000).unwrap_err();
        assert!(
            err.to_string().contains("buffer exceeded its max capacity"),
            "{err}"
        );
    }

    #[test]
    fn until_time_limit_emits_the_latest_value_once_per_limit() {
        let builder = StreamsBuilder::new();
        builder
            .stream::<String, i64>("in")
            .to_table()
            .suppress_until_time_limit(
                secs(10),
                BufferConfig::unbounded(),
                Named::as_("rate-limit"),
            )
            .to_stream()
            .to("out");
        let driver =
            TopologyTestDriver::new(builder.build().unwrap(), StreamsConfig::new("t")).unwrap();
        let input = driver.input_topic::<String, i64>("in");
        let out = driver.output_topic::<String, Option<i64>>("out");
        input.pipe_input_at(s("k"), 1, 0).unwrap();
        input.pipe_input_at(s("k"), 2, 4_000).unwrap();
        input.pipe_input_at(s("k"), 3, 9_999).unwrap();
        assert!(out.is_empty());
        input.pipe_input_at(s("other"), 0, 10_000).unwrap(); // first update of k + 10 s
        assert_eq!(
            out.read_key_values_to_list().unwrap(),
            vec![(s("k"), Some(3))]
        );
        assert!(driver.task_ids().len() == 1);
    }

    #[test]
    fn suppress_until_time_limit_works_on_any_table() {
        let builder = StreamsBuilder::new();
        builder
            .stream::<String, String>("in")
            .group_by_key()
            .count()
            .suppress(Suppressed::until_time_limit(
                secs(10),
                BufferConfig::unbounded(),
            ))
            .to_stream()
            .to("out");
        let driver =
            TopologyTestDriver::new(builder.build().unwrap(), StreamsConfig::new("t")).unwrap();
        let input = driver.input_topic::<String, String>("in");
        let out = driver.output_topic::<String, Option<i64>>("out");
        for ts in [0, 3_000, 9_999] {
            input.pipe_input_at(s("k"), s("x"), ts).unwrap();
        }
        assert!(out.is_empty());
        input.pipe_input_at(s("j"), s("x"), 10_000).unwrap();
        assert_eq!(
            out.read_key_values_to_list().unwrap(),
            vec![(s("k"), Some(3))]
        );
    }

    #[test]
    fn until_window_closes_after_a_filter_of_a_windowed_count() {
        let builder = StreamsBuilder::new();
        builder
            .stream::<String, String>("in")
            .group_by_key()
            .windowed_by(TimeWindows::of_size_and_grace(secs(10), secs(5)))
            .count()
            .filter(|w, _| w.key != "hidden")
            .suppress(Suppressed::until_window_closes(BufferConfig::unbounded()))
            .to_stream()
            .map(|w, n| (w.to_string(), n.unwrap_or(-1)))
            .to("out");
        let driver =
            TopologyTestDriver::new(builder.build().unwrap(), StreamsConfig::new("t")).unwrap();
        let input = driver.input_topic::<String, String>("in");
        for (k, ts) in [("a", 1_000), ("hidden", 2_000), ("a", 9_000), ("b", 14_999)] {
            input.pipe_input_at(s(k), s("x"), ts).unwrap();
        }
        let out = driver.output_topic::<String, i64>("out");
        assert!(out.is_empty());
        input.pipe_input_at(s("b"), s("x"), 15_000).unwrap(); // [0, 10 s) closes at 15 s
        assert_eq!(
            out.read_key_values_to_list().unwrap(),
            vec![(s("[a@0/10000]"), 2)]
        );
    }

    #[test]
    fn until_window_closes_on_a_table_without_windows_is_a_build_error() {
        let err = build_error(|g| {
            g.count()
                .suppress(Suppressed::until_window_closes(BufferConfig::unbounded()));
        });
        assert!(err.contains("windowed aggregation"), "{err}");
    }

    #[test]
    fn until_window_closes_needs_a_windowed_aggregation() {
        let builder = StreamsBuilder::new();
        builder
            .stream::<Windowed<String>, i64>("in")
            .to_table()
            .suppress(Suppressed::until_window_closes(BufferConfig::unbounded()))
            .to_stream()
            .to("out");
        let err = builder.build().unwrap_err();
        assert!(err.to_string().contains("windowed aggregation"), "{err}");
    }
}

#[test]
fn emit_on_window_close_forwards_each_window_once_after_end_plus_grace() {
    use streams_core::dsl::EmitStrategy;
    let windows = TimeWindows::of_size_and_grace(secs(10), secs(2)).advance_by(secs(5));
    let topology = counting_with(|g| {
        g.windowed_by(windows)
            .emit_strategy(EmitStrategy::OnWindowClose)
            .count()
    });
    let (out, driver) = driver::count_keys_at(
        topology,
        StreamsConfig::new("e"),
        &[("a", 1_000), ("b", 6_000), ("a", 11_999)],
    );
    // Stream time 11.999 s: [0, 10) closes at 12 s. Nothing yet.
    assert!(out.is_empty(), "{out:?}");
    let input = driver.input_topic::<String, String>("in");
    input.pipe_input_at(s("a"), s("x"), 12_000).unwrap();
    let out = driver.output_topic::<String, i64>("out");
    // b at 6 s is in [0, 10) and [5, 15) (hopping by 5 s).
    assert_eq!(
        out.read_key_values_to_list().unwrap(),
        vec![(s("[a@0/10000]"), 1), (s("[b@0/10000]"), 1)]
    );
    input.pipe_input_at(s("a"), s("x"), 17_000).unwrap(); // [5, 15) closes at 17 s
    // a: 11.999 s and 12 s; its 1 s record is only in [0, 10) (no negative starts).
    assert_eq!(
        out.read_key_values_to_list().unwrap(),
        vec![(s("[a@5000/15000]"), 2), (s("[b@5000/15000]"), 1)]
    );
    input.pipe_input_at(s("a"), s("x"), 17_500).unwrap(); // no new window closed
    assert!(out.is_empty());
}

/// Emit-on-close with the default retention (size + grace): a window that a record
/// closes is still emitted when that record opens a window far enough ahead to take the
/// closed one out of the store's retention, cache on and off.
#[test]
fn emit_on_window_close_with_the_default_retention_emits_the_window_closed_last() {
    use streams_core::dsl::EmitStrategy;
    for cache in [0, 1 << 20] {
        let topology = counting_with(|g| {
            g.windowed_by(TimeWindows::of_size_with_no_grace(secs(10)))
                .emit_strategy(EmitStrategy::OnWindowClose)
                .count()
        });
        let config = StreamsConfig::new("e").with_cache_max_bytes(cache);
        let (out, _) = driver::count_keys_at(
            topology,
            config,
            &[
                ("a", 1_000),
                ("a", 2_000),
                ("b", 10_000),
                ("b", 20_000),
                ("c", 21_000),
                ("d", 60_000), // a jump: [20 s, 30 s) closes as the store's time passes it
            ],
        );
        assert_eq!(
            out,
            vec![
                (s("[a@0/10000]"), 2),
                (s("[b@10000/20000]"), 1),
                (s("[b@20000/30000]"), 1),
                (s("[c@20000/30000]"), 1),
            ],
            "cache {cache}"
        );
    }
}

#[test]
fn window_updates_are_coalesced_by_the_record_cache_and_carry_old_values() {
    let build = || {
        counting_with(|g| {
            g.windowed_by(TimeWindows::of_size_with_no_grace(secs(10)))
                .count()
        })
    };
    let batch = [
        (s("a"), s("x")),
        (s("a"), s("x")),
        (s("b"), s("x")),
        (s("a"), s("x")),
    ];
    for (label, config, want) in [
        // Cache on (default): one batch is one commit, so each window leaves the cache once.
        (
            "cache on",
            StreamsConfig::new("c"),
            vec![(s("[b@0/10000]"), 1), (s("[a@0/10000]"), 3)],
        ),
        // Cache off: every update.
        (
            "cache off",
            StreamsConfig::new("c").with_cache_max_bytes(0),
            vec![
                (s("[a@0/10000]"), 1),
                (s("[a@0/10000]"), 2),
                (s("[b@0/10000]"), 1),
                (s("[a@0/10000]"), 3),
            ],
        ),
    ] {
        let driver = TopologyTestDriver::new(build(), config).unwrap();
        let input = driver.input_topic::<String, String>("in");
        input.pipe_key_values(batch.clone()).unwrap();
        let out = driver::key_values::<String, i64>(&driver, "out");
        assert_eq!(out, want, "{label}");
    }
}

mod idle_advance {
    use super::*;
    use streams_core::dsl::{BufferConfig, EmitStrategy, Suppressed};

    /// Final counts per 10 s window, two ways: through suppression, and emit-on-close.
    fn finals() -> Topology {
        let builder = StreamsBuilder::new();
        let grouped = builder.stream::<String, String>("in").group_by_key();
        let windows = TimeWindows::of_size_and_grace(secs(10), secs(2));
        let suppressed = grouped
            .windowed_by(windows)
            .count_with(Materialized::as_("suppressed-counts"))
            .suppress(Suppressed::until_window_closes(BufferConfig::unbounded()));
        counts_to(suppressed, "suppressed");
        let closed = grouped
            .windowed_by(windows)
            .emit_strategy(EmitStrategy::OnWindowClose)
            .count_with(Materialized::as_("closed-counts"));
        counts_to(closed, "closed");
        builder.build().unwrap()
    }

    fn read(topic: &TestOutputTopic<String, i64>) -> Vec<(String, i64)> {
        topic.read_key_values_to_list().unwrap()
    }

    /// A driver of [`finals`] with `config` after two records of "a" (at 1 s and 3 s), and its
    /// outputs "suppressed" and "closed".
    fn after_two_records(
        config: StreamsConfig,
    ) -> (TopologyTestDriver, [TestOutputTopic<String, i64>; 2]) {
        let driver = TopologyTestDriver::new(finals(), config).unwrap();
        let input = driver.input_topic::<String, String>("in");
        input.pipe_input_at(s("a"), s("x"), 1_000).unwrap();
        input.pipe_input_at(s("a"), s("x"), 3_000).unwrap();
        let outputs = [
            driver.output_topic("suppressed"),
            driver.output_topic("closed"),
        ];
        (driver, outputs)
    }

    #[test]
    fn off_by_default_a_quiet_partition_never_closes_its_windows() {
        let (mut driver, [suppressed, closed]) = after_two_records(StreamsConfig::new("idle"));
        driver.advance_wall_clock_time(secs(3_600)).unwrap();
        assert!(read(&suppressed).is_empty());
        assert!(read(&closed).is_empty());
        assert_eq!(driver.metrics().idle_advances, 0);
    }

    #[test]
    fn when_on_stream_time_follows_the_wall_clock_after_the_idle_threshold() {
        let config = StreamsConfig::new("idle").with_idle_advance(secs(5));
        let (mut driver, [suppressed, closed]) = after_two_records(config);
        // Quiet for 4 s: below the threshold, stream time stays at 3000.
        driver.advance_wall_clock_time(secs(4)).unwrap();
        assert_eq!(driver.metrics().idle_advances, 0);
        // Quiet for 8 s: stream time is 3000 + 8000 = 11000, before end + grace (12000).
        driver.advance_wall_clock_time(secs(4)).unwrap();
        assert!(read(&suppressed).is_empty());
        assert!(read(&closed).is_empty());
        // Quiet for 9 s: stream time 12000 closes [0, 10000) and both final results appear.
        driver.advance_wall_clock_time(secs(1)).unwrap();
        assert_eq!(read(&suppressed), vec![(s("[a@0/10000]"), 2)]);
        assert_eq!(read(&closed), vec![(s("[a@0/10000]"), 2)]);
        // A record for the closed window is now late against the advanced stream time.
        let dropped = driver.metrics().dropped_records;
        let input = driver.input_topic::<String, String>("in");
        input.pipe_input_at(s("a"), s("x"), 9_000).unwrap();
        assert!(driver.metrics().dropped_records > dropped);
        assert_eq!(read(&suppressed), vec![]);
    }
}

/// Kafka's `SuppressTopologyTest` (`ANONYMOUS_INTERMEDIATE_TOPOLOGY`): an unnamed suppress
/// keeps its buffer in a generated `KTABLE-SUPPRESS-STATE-STORE-n`, which takes the next
/// number after the node's; a named one in `<name>-store`.
#[test]
fn an_unnamed_suppress_numbers_its_store_as_kafka_does() {
    use streams_core::dsl::{BufferConfig, Suppressed};
    let builder = StreamsBuilder::new();
    builder
        .stream::<String, String>("input")
        .group_by_key()
        .count()
        .suppress(Suppressed::until_time_limit(
            secs(1),
            BufferConfig::unbounded(),
        ))
        .to_stream()
        .to("output");
    let text = builder.build().unwrap().describe().to_string();
    let lines = driver::describe_lines(&text);
    assert_eq!(
        lines,
        vec![
            "Topologies:",
            "Sub-topology: 0",
            "Source: KSTREAM-SOURCE-0000000000 (topics: [input])",
            "--> KSTREAM-AGGREGATE-0000000002",
            "Processor: KSTREAM-AGGREGATE-0000000002 (stores: [KSTREAM-AGGREGATE-STATE-STORE-0000000001])",
            "--> KTABLE-SUPPRESS-0000000003",
            "Processor: KTABLE-SUPPRESS-0000000003 (stores: [KTABLE-SUPPRESS-STATE-STORE-0000000004])",
            "--> KTABLE-TOSTREAM-0000000005",
            "Processor: KTABLE-TOSTREAM-0000000005 (stores: [])",
            "--> KSTREAM-SINK-0000000006",
            "Sink: KSTREAM-SINK-0000000006 (topic: output)",
        ],
        "\n{text}"
    );
}

/// Emit-on-close forwards the windows one record closes in window-start order (then by
/// key), as Kafka's time-ordered store of such aggregations gives them: B's earlier window
/// before A's, though A sorts first. Cache on and off, RocksDB and in-memory stores.
#[test]
fn emit_on_window_close_forwards_closed_windows_in_start_order() {
    use streams_core::config::DslStore;
    use streams_core::dsl::EmitStrategy;
    for cache in [0, 1 << 20] {
        for store in [DslStore::RocksDb, DslStore::InMemory] {
            let topology = counting_with(|g| {
                g.windowed_by(TimeWindows::of_size_and_grace(
                    Duration::from_millis(10),
                    Duration::from_millis(10),
                ))
                .emit_strategy(EmitStrategy::OnWindowClose)
                .count()
            });
            let config = StreamsConfig::new("e")
                .with_cache_max_bytes(cache)
                .with_default_dsl_store(store);
            let (out, _) =
                driver::count_keys_at(topology, config, &[("B", 1), ("A", 12), ("C", 30)]);
            assert_eq!(
                out,
                vec![(s("[B@0/10]"), 1), (s("[A@10/20]"), 1)],
                "cache {cache}, {store:?}"
            );
        }
    }
}

/// Kafka's `SuppressScenarioTest.shouldSuppressIntermediateEventsWithBytesLimit`: a buffer of
/// 200 bytes holds one entry of "a little over 100 bytes" (Kafka counts the record's topic
/// and context too), so the second key evicts the oldest early.
#[test]
fn suppress_counts_entry_bytes_as_kafka_does() {
    use streams_core::dsl::{BufferConfig, Suppressed};
    let builder = StreamsBuilder::new();
    let counts = builder
        .table_with(
            "input",
            Consumed::with(default_serde::<String>(), default_serde::<String>()),
            Materialized::new()
                .with_caching_disabled()
                .with_logging_disabled(),
        )
        .group_by(|k: String, v: String| (v, k))
        .count();
    counts
        .suppress(Suppressed::until_time_limit(
            Duration::from_millis(i64::MAX as u64),
            BufferConfig::max_bytes(200).emit_early_when_full(),
        ))
        .to_stream()
        .to("output-suppressed");
    counts.to_stream().to("output-raw");
    let driver = TopologyTestDriver::new(
        builder.build().unwrap(),
        StreamsConfig::new("suppressscenariotest"),
    )
    .unwrap();
    let input = driver.input_topic::<String, String>("input");
    input.pipe_input_at(s("k1"), s("v1"), 0).unwrap();
    input.pipe_input_at(s("k1"), s("v2"), 1).unwrap();
    input.pipe_input_at(s("k2"), s("v1"), 2).unwrap();
    let raw_topic = driver.output_topic::<String, Option<i64>>("output-raw");
    let suppressed_topic = driver.output_topic::<String, Option<i64>>("output-suppressed");
    let raw = |_: &TopologyTestDriver| driver::records(&raw_topic);
    let suppressed = |_: &TopologyTestDriver| driver::records(&suppressed_topic);
    assert_eq!(
        raw(&driver),
        vec![
            (s("v1"), Some(1), 0),
            (s("v1"), Some(0), 1),
            (s("v2"), Some(1), 1),
            (s("v1"), Some(1), 2)
        ]
    );
    // Consecutive updates to v1 are suppressed into the latter; the last update waits.
    assert_eq!(
        suppressed(&driver),
        vec![(s("v1"), Some(0), 1), (s("v2"), Some(1), 1)]
    );
    input.pipe_input_at(s("x"), s("x"), 3).unwrap();
    assert_eq!(raw(&driver), vec![(s("x"), Some(1), 3)]);
    assert_eq!(suppressed(&driver), vec![(s("v1"), Some(1), 2)]);
}
