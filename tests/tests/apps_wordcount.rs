//! Whole applications in the driver: word count and page views by region, over four
//! partitions, with exact expected results.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use streams_core::prelude::*;
use streams_tests::driver;

fn s(x: &str) -> String {
    x.to_string()
}

/// Every count update written to `topic`, as (key, count, timestamp).
fn count_updates(driver: &TopologyTestDriver, topic: &str) -> Vec<(String, Option<i64>, i64)> {
    driver::records(&driver.output_topic::<String, Option<i64>>(topic))
}

/// The (count, timestamp) updates of `key` among `updates`, in order.
fn updates_of(updates: &[(String, Option<i64>, i64)], key: &str) -> Vec<(Option<i64>, i64)> {
    updates
        .iter()
        .filter(|(k, _, _)| k == key)
        .map(|&(_, n, ts)| (n, ts))
        .collect()
}

fn word_count_topology() -> Result<Topology, TopologyError> {
    let builder = StreamsBuilder::new();
    builder
        .stream::<String, String>("sentences")
        .flat_map_values(|line: String| {
            line.split(|c: char| !c.is_alphanumeric())
                .filter(|w| !w.is_empty())
                .map(str::to_lowercase)
                .collect::<Vec<_>>()
        })
        .group_by_with(
            |_, word| word.clone(),
            Grouped::with(default_serde(), default_serde()).with_name("words"),
        )
        .count_with(Materialized::as_("word-counts"))
        .to_stream()
        .to("word-counts");
    builder.build()
}

const SENTENCES: [&str; 4] = [
    "the quick brown fox",
    "the lazy dog",
    "The fox jumps over the dog!",
    "a quick, quick test",
];

fn expected_word_counts() -> HashMap<String, Option<i64>> {
    [
        ("the", 4),
        ("quick", 3),
        ("brown", 1),
        ("fox", 2),
        ("lazy", 1),
        ("dog", 2),
        ("jumps", 1),
        ("over", 1),
        ("a", 1),
        ("test", 1),
    ]
    .into_iter()
    .map(|(w, n)| (s(w), Some(n)))
    .collect()
}

#[test]
fn word_count_over_four_partitions_gives_exact_counts() {
    let driver = driver::with_partitions(
        word_count_topology().unwrap(),
        StreamsConfig::new("wordcount"),
        &[("sentences", 4)],
    );
    assert_eq!(driver.task_ids().len(), 8);
    assert_eq!(driver.partition_count("wordcount-words-repartition"), 4);
    let input = driver.input_topic::<String, String>("sentences");
    // One batch, keyed by line number so the lines spread over the partitions.
    input
        .pipe_key_values(
            SENTENCES
                .iter()
                .enumerate()
                .map(|(i, line)| (format!("line-{i}"), s(line))),
        )
        .unwrap();
    let out = driver.output_topic::<String, Option<i64>>("word-counts");
    assert_eq!(
        out.read_key_values_to_map().unwrap(),
        expected_word_counts()
    );
    let store = driver
        .key_value_store::<String, i64>("word-counts")
        .unwrap();
    let mut all = store.all().unwrap();
    all.sort();
    let mut expected: Vec<(String, i64)> = expected_word_counts()
        .into_iter()
        .map(|(w, n)| (w, n.unwrap()))
        .collect();
    expected.sort();
    assert_eq!(all, expected);
    assert_eq!(driver.metrics().processed, 4 + 17);
}

#[test]
fn word_count_emits_one_update_per_word_occurrence() {
    // With the record cache off (size 0), every count update is forwarded; with it on, two
    // occurrences of a word within one sentence would leave as one update.
    let config = StreamsConfig::new("wordcount").with_cache_max_bytes(0);
    let driver =
        driver::with_partitions(word_count_topology().unwrap(), config, &[("sentences", 4)]);
    let input = driver.input_topic::<String, String>("sentences");
    for (i, line) in SENTENCES.iter().enumerate() {
        input
            .pipe_input_at(format!("line-{i}"), s(line), 1_000 * (i as i64 + 1))
            .unwrap();
    }
    let updates = count_updates(&driver, "word-counts");
    assert_eq!(updates.len(), 17);
    assert_eq!(
        updates_of(&updates, "the"),
        vec![
            (Some(1), 1_000),
            (Some(2), 2_000),
            (Some(3), 3_000),
            (Some(4), 3_000),
        ]
    );
    let quick: Vec<Option<i64>> = updates_of(&updates, "quick")
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert_eq!(quick, vec![Some(1), Some(2), Some(3)]);
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, StreamsSerde)]
struct PageView {
    user: String,
    page: String,
}

fn view(user: &str, page: &str) -> PageView {
    PageView {
        user: s(user),
        page: s(page),
    }
}

/// Page views keyed by user -> region of the user (from a fixed map) -> count per region.
fn page_views_by_region() -> Result<Topology, TopologyError> {
    let regions: HashMap<String, String> = [
        ("alice", "eu"),
        ("bob", "us"),
        ("carol", "eu"),
        ("dave", "apac"),
        ("erin", "us"),
    ]
    .into_iter()
    .map(|(u, r)| (s(u), s(r)))
    .collect();
    let builder = StreamsBuilder::new();
    builder
        .stream::<String, PageView>("page-views")
        .map(move |user, view| {
            let region = regions.get(&user).cloned().unwrap_or_else(|| s("unknown"));
            (region, view)
        })
        .group_by_key()
        .count_with(Materialized::as_("views-per-region"))
        .to_stream()
        .to("views-by-region");
    builder.build()
}

#[test]
fn page_views_are_counted_per_region() {
    let topology = page_views_by_region().unwrap();
    assert_eq!(topology.describe().subtopologies.len(), 2);
    let driver = driver::with_partitions(
        topology,
        StreamsConfig::new("pageviews"),
        &[("page-views", 4)],
    );
    let input = driver.input_topic::<String, PageView>("page-views");
    let views = [
        ("alice", "/home"),   // eu 1
        ("bob", "/home"),     // us 1
        ("carol", "/cart"),   // eu 2
        ("alice", "/cart"),   // eu 3
        ("dave", "/home"),    // apac 1
        ("erin", "/about"),   // us 2
        ("bob", "/cart"),     // us 3
        ("carol", "/home"),   // eu 4
        ("mallory", "/home"), // unknown 1
    ];
    for (i, (user, page)) in views.iter().enumerate() {
        input
            .pipe_input_at(s(user), view(user, page), 1_000 * (i as i64 + 1))
            .unwrap();
    }
    // A view written as plain JSON by another client.
    input
        .pipe_raw(
            Some(b"erin".to_vec()),
            Some(br#"{"user":"erin","page":"/home"}"#.to_vec()),
            10_000,
        )
        .unwrap();

    let updates = count_updates(&driver, "views-by-region");
    assert_eq!(
        updates_of(&updates, "eu"),
        vec![
            (Some(1), 1_000),
            (Some(2), 3_000),
            (Some(3), 4_000),
            (Some(4), 8_000),
        ]
    );
    let finals: HashMap<String, Option<i64>> =
        updates.into_iter().map(|(k, n, _)| (k, n)).collect();
    let expected: HashMap<String, Option<i64>> =
        [("eu", 4), ("us", 4), ("apac", 1), ("unknown", 1)]
            .into_iter()
            .map(|(r, n)| (s(r), Some(n)))
            .collect();
    assert_eq!(finals, expected);

    let store = driver
        .key_value_store::<String, i64>("views-per-region")
        .unwrap();
    let mut all = store.all().unwrap();
    all.sort();
    assert_eq!(
        all,
        vec![
            (s("apac"), 1),
            (s("eu"), 4),
            (s("unknown"), 1),
            (s("us"), 4),
        ]
    );
}
