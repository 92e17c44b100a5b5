//! Sliding-window aggregations: window creation as Kafka Streams does it (left and right
//! windows, early records, out-of-order records), late drops, emit-on-close and the
//! retention rule, on both store implementations.

// Test helpers outside #[test] functions may unwrap too: a panic fails the test.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::time::Duration;

use streams_core::config::DslStore;
use streams_core::dsl::EmitStrategy;
use streams_core::prelude::*;
use streams_core::window::SlidingWindows;
use streams_tests::driver;

fn s(x: &str) -> String {
    x.to_string()
}

const STORES: [DslStore; 2] = [DslStore::RocksDb, DslStore::InMemory];

fn config(store: DslStore) -> StreamsConfig {
    StreamsConfig::new("sliding").with_default_dsl_store(store)
}

/// Counts per key over sliding windows, written as `[key@start/end]` -> count.
fn counting(windows: SlidingWindows, emit: EmitStrategy) -> Topology {
    let builder = StreamsBuilder::new();
    builder
        .stream::<String, String>("in")
        .group_by_key()
        .windowed_by_sliding(windows)
        .emit_strategy(emit)
        .late_records_to("late", Produced::new())
        .count_with(Materialized::as_("counts"))
        .to_stream()
        .map(|w, n| (w.to_string(), n.unwrap_or(-1)))
        .to("out");
    builder.build().unwrap()
}

fn run(
    windows: SlidingWindows,
    emit: EmitStrategy,
    store: DslStore,
    records: &[(&str, i64)],
) -> (Vec<(String, i64)>, TopologyTestDriver) {
    driver::count_keys_at(counting(windows, emit), config(store), records)
}

/// Runs `records` through [`counting`] on each of [`STORES`] and checks that the output is
/// `want`.
fn check(
    windows: SlidingWindows,
    emit: EmitStrategy,
    records: &[(&str, i64)],
    want: &[(&str, i64)],
) {
    let want: Vec<(String, i64)> = want.iter().map(|(w, n)| (s(w), *n)).collect();
    for store in STORES {
        let (out, _) = run(windows, emit, store, records);
        assert_eq!(out, want, "{store:?}");
    }
}

fn no_grace(ms: u64) -> SlidingWindows {
    SlidingWindows::of_time_difference_with_no_grace(Duration::from_millis(ms))
}

fn with_grace(ms: u64, grace_ms: u64) -> SlidingWindows {
    SlidingWindows::of_time_difference_and_grace(
        Duration::from_millis(ms),
        Duration::from_millis(grace_ms),
    )
}

#[test]
fn a_record_creates_its_left_window_and_the_previous_records_right_window() {
    check(
        no_grace(5_000),
        EmitStrategy::OnWindowUpdate,
        &[("a", 8_000), ("a", 12_000), ("a", 20_000)],
        &[
            ("[a@3000/8000]", 1),
            // 12000 falls into 8000's right window and gets a left window holding both.
            ("[a@8001/13001]", 1),
            ("[a@7000/12000]", 2),
            // 20000 is more than 5 s after 12000: a left window of its own, and
            // 12000's right window stays empty and is never created.
            ("[a@15000/20000]", 1),
        ],
    );
}

#[test]
fn both_window_ends_are_inclusive() {
    // 13000 is exactly 5 s after 8000: in 8000's right window? [8001, 13001] yes, and
    // 8000 is in 13000's left window [8000, 13000] because the start is inclusive.
    check(
        no_grace(5_000),
        EmitStrategy::OnWindowUpdate,
        &[("a", 8_000), ("a", 13_000)],
        &[
            ("[a@3000/8000]", 1),
            ("[a@8001/13001]", 1),
            ("[a@8000/13000]", 2),
        ],
    );
}

#[test]
fn early_records_share_the_window_starting_at_zero() {
    check(
        no_grace(5_000),
        EmitStrategy::OnWindowUpdate,
        &[("a", 1_000), ("a", 3_000)],
        &[("[a@0/5000]", 1), ("[a@1001/6001]", 1), ("[a@0/5000]", 2)],
    );
}

#[test]
fn an_out_of_order_record_updates_the_windows_it_falls_into_and_gets_a_right_window() {
    check(
        with_grace(10, 1_000),
        EmitStrategy::OnWindowUpdate,
        &[("a", 100), ("a", 105), ("a", 103)],
        &[
            ("[a@90/100]", 1),
            ("[a@101/111]", 1),
            ("[a@95/105]", 2),
            // 103 arrives late: into [95, 105] and [101, 111], then its own left
            // window [93, 103] (100 and 103) and right window [104, 114] (105).
            ("[a@95/105]", 3),
            ("[a@101/111]", 2),
            ("[a@93/103]", 2),
            ("[a@104/114]", 1),
        ],
    );
}

/// The sliding windows of `timestamps` with difference `d`, computed from the definition:
/// every record's left window `[t - d, t]` (`[0, d]` for early records) and, when it is not
/// empty, its right window `[t + 1, t + 1 + d]`, each with the number of records inside.
fn expected_windows(timestamps: &[i64], d: i64) -> BTreeMap<i64, i64> {
    let count = |start: i64| {
        timestamps
            .iter()
            .filter(|t| **t >= start && **t <= start + d)
            .count() as i64
    };
    let mut windows = BTreeMap::new();
    for &t in timestamps {
        let left = (t - d).max(0);
        windows.insert(left, count(left));
        let right = count(t + 1);
        if right > 0 {
            windows.insert(t + 1, right);
        }
    }
    windows
}

/// The last value of every window in `out`, by window start.
fn final_windows(out: &[(String, i64)], key: &str) -> BTreeMap<i64, i64> {
    let prefix = format!("[{key}@");
    out.iter()
        .filter_map(|(w, n)| {
            let rest = w.strip_prefix(&prefix)?;
            let start = rest.split('/').next()?.parse::<i64>().ok()?;
            Some((start, *n))
        })
        .collect()
}

/// A small deterministic generator, so failures are reproducible by seed.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, bound: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % bound
    }
}

#[test]
fn final_windows_match_the_definition_for_random_in_order_and_shuffled_input() {
    let d = 50;
    for store in STORES {
        for seed in 0..40u64 {
            let mut rng = Lcg(seed);
            let n = 2 + rng.next(25) as usize;
            let mut timestamps: Vec<i64> = (0..n).map(|_| rng.next(400) as i64).collect();
            if seed % 2 == 0 {
                timestamps.sort_unstable();
            }
            // A grace longer than the whole input: nothing is late.
            let w = with_grace(d as u64, 10_000);
            let records: Vec<(&str, i64)> = timestamps.iter().map(|t| ("k", *t)).collect();
            let (out, _) = run(w, EmitStrategy::OnWindowUpdate, store, &records);
            assert_eq!(
                final_windows(&out, "k"),
                expected_windows(&timestamps, d),
                "{store:?}, seed {seed}, input {timestamps:?}"
            );
        }
    }
}

#[test]
fn records_whose_windows_all_closed_are_dropped_counted_and_sent_to_the_side_output() {
    for store in STORES {
        let (out, driver) = run(
            no_grace(5_000),
            EmitStrategy::OnWindowUpdate,
            store,
            // Stream time 20000: a record at 14000 could only be in windows ending by
            // 19001 at the latest, so all of them are closed.
            &[("a", 20_000), ("a", 14_000)],
        );
        assert_eq!(out, vec![(s("[a@15000/20000]"), 1)], "{store:?}");
        assert_eq!(driver.metrics().dropped_records, 1);
        let late = driver
            .output_topic::<String, String>("late")
            .read_records_to_list()
            .unwrap();
        assert_eq!(late.len(), 1);
        assert_eq!(late[0].timestamp, 14_000);
    }
}

#[test]
fn emit_on_close_gives_one_final_result_per_window_after_end_plus_grace() {
    check(
        with_grace(5_000, 1_000),
        EmitStrategy::OnWindowClose,
        &[
            ("a", 8_000),
            ("a", 12_000),
            // Stream time 14000: windows ending by 13000 close: [3000, 8000] and
            // [7000, 12000], but not [8001, 13001].
            ("b", 14_000),
            // Stream time 19001: [8001, 13001] closes, and b's [9000, 14000].
            ("b", 19_001),
        ],
        &[
            ("[a@3000/8000]", 1),
            ("[a@7000/12000]", 2),
            ("[a@8001/13001]", 1),
            ("[b@9000/14000]", 1),
        ],
    );
}

#[test]
fn a_retention_shorter_than_twice_the_difference_plus_grace_is_rejected() {
    let builder = StreamsBuilder::new();
    builder
        .stream::<String, String>("in")
        .group_by_key()
        .windowed_by_sliding(no_grace(5_000))
        .count_with(Materialized::as_("counts").with_retention(Duration::from_secs(9)));
    let err = builder.build().unwrap_err().to_string();
    assert!(
        err.contains("retention") && err.contains("10000"),
        "unexpected error: {err}"
    );
}
