//! Stream-table and table-table joins against reference code (maps updated step by step;
//! the table-table rules are `join_common`'s), over random interleavings of updates,
//! tombstones and stream records on co-partitioned topics (1 to 3 partitions), with the
//! record cache on and off.
//!
//! - Stream-table (inner, left): each stream record joins the table value its key has at
//!   that moment in the input order; table updates emit nothing; the result keeps the stream
//!   record's timestamp.
//! - Table-table (inner, left, outer): the last result per key equals the join of the two
//!   tables' final values (a tombstone when the key has no result); with the cache off,
//!   every update emits what Kafka's `KTableKTable*Join` processors emit (the reference,
//!   `join_common::TableJoinModel`, states those rules independently); and a downstream
//!   `group_by(...).count()` over the joined table ends at the counts of the final results,
//!   which needs correct old values.

// Test helpers outside #[test] functions may unwrap too: a panic fails the test.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use proptest::prelude::*;
use streams_core::config::DslStore;
use streams_core::prelude::*;
use streams_tests::JoinKind;
use streams_tests::driver;

mod join_common;
use join_common::{Side, TableJoinModel, update};

const KEYS: [&str; 5] = ["a", "b", "c", "d", "e"];

/// One input step: which topic, the key, and the value (`None`: a tombstone).
#[derive(Debug, Clone)]
struct Step {
    topic: usize,
    key: &'static str,
    value: Option<String>,
}

fn steps(topics: usize) -> impl Strategy<Value = Vec<Step>> {
    proptest::collection::vec((0..topics, 0..KEYS.len(), 0u8..10), 1..80).prop_map(|raw| {
        raw.into_iter()
            .enumerate()
            .map(|(i, (topic, k, v))| Step {
                topic,
                key: KEYS[k],
                // About one in five table updates is a tombstone.
                value: (v >= 2).then(|| format!("{}{i}", ["S", "L", "R"][topic])),
            })
            .collect()
    })
}

fn config(cache: bool) -> StreamsConfig {
    join_common::config("table-joins", cache, DslStore::default())
}

fn per_key<V: Clone>(records: &[(String, V)]) -> BTreeMap<String, Vec<V>> {
    let mut out: BTreeMap<String, Vec<V>> = BTreeMap::new();
    for (k, v) in records {
        out.entry(k.clone()).or_default().push(v.clone());
    }
    out
}

/// Stream-table join: topic 0 is the stream (`views`), topic 1 the table (`users`).
fn stream_table(
    left: bool,
    partitions: u32,
    cache: bool,
    steps: &[Step],
) -> Result<(), TestCaseError> {
    let builder = StreamsBuilder::new();
    let users = builder.table::<String, String>("users");
    let views = builder.stream::<String, String>("views");
    let joined = if left {
        views.left_join_table(&users, |v, u| {
            format!("{v}+{}", u.map_or("-", |u| u.as_str()))
        })
    } else {
        views.join_table(&users, |v, u| format!("{v}+{u}"))
    };
    joined.to("out");
    let mut driver = driver::with_partitions(
        builder.build().unwrap(),
        config(cache),
        &[("views", partitions), ("users", partitions)],
    );
    let views_in = driver.input_topic::<String, String>("views");
    let users_in = driver.input_topic::<String, Option<String>>("users");
    let mut table: BTreeMap<&str, String> = BTreeMap::new();
    let mut want: Vec<(String, (String, i64))> = Vec::new();
    for (i, s) in steps.iter().enumerate() {
        let ts = i as i64 * 10;
        if s.topic == 0 {
            let v = s.value.clone().unwrap_or_else(|| format!("S{i}"));
            views_in
                .pipe_input_at(s.key.to_string(), v.clone(), ts)
                .unwrap();
            match (table.get(s.key), left) {
                (Some(u), _) => want.push((s.key.to_string(), (format!("{v}+{u}"), ts))),
                (None, true) => want.push((s.key.to_string(), (format!("{v}+-"), ts))),
                (None, false) => {}
            }
        } else {
            users_in
                .pipe_input_at(s.key.to_string(), s.value.clone(), ts)
                .unwrap();
            update(&mut table, s.key, s.value.clone());
        }
    }
    driver.commit().unwrap();
    let got: Vec<(String, (String, i64))> = driver
        .output_topic::<String, String>("out")
        .read_records_to_list()
        .unwrap()
        .into_iter()
        .map(|r| (r.key, (r.value, r.timestamp)))
        .collect();
    prop_assert_eq!(per_key(&got), per_key(&want));
    Ok(())
}

/// The reference's rendering of a table-table result, as the joiners of [`table_table`].
fn joined_value(l: Option<&str>, r: Option<&str>) -> String {
    format!("{}|{}", l.unwrap_or("-"), r.unwrap_or("-"))
}

/// Table-table join: topic 1 is the left table, topic 2 the right one (topic 0 unused).
fn table_table(
    kind: JoinKind,
    partitions: u32,
    cache: bool,
    steps: &[Step],
) -> Result<(), TestCaseError> {
    let builder = StreamsBuilder::new();
    let left = builder.table::<String, String>("left");
    let right = builder.table::<String, String>("right");
    let show = |v: Option<&String>| v.cloned().unwrap_or_else(|| "-".into());
    let joined = match kind {
        JoinKind::Inner => left.join(&right, |l, r| format!("{l}|{r}")),
        JoinKind::Left => left.left_join(&right, move |l, r| format!("{l}|{}", show(r))),
        JoinKind::Outer => left.outer_join(&right, move |l, r| format!("{}|{}", show(l), show(r))),
    };
    joined.to_stream().to("out");
    // Results counted by the number of the left record ("L12|R3" -> "L", "-|R3" -> "-"):
    // moving a key between groups subtracts through the old value.
    joined
        .group_by(|_k, v: String| (v[..1].to_string(), v))
        .count()
        .to_stream()
        .to("counts");
    let mut driver = driver::with_partitions(
        builder.build().unwrap(),
        config(cache),
        &[("left", partitions), ("right", partitions)],
    );
    let inputs = [
        driver.input_topic::<String, Option<String>>("left"),
        driver.input_topic::<String, Option<String>>("right"),
    ];
    let mut model = TableJoinModel::new(kind, joined_value);
    // With the cache off: what each update emits, per Kafka's processors.
    let mut want_updates: Vec<(String, Option<String>)> = Vec::new();
    for (i, s) in steps.iter().enumerate() {
        let side = s.topic.max(1) - 1;
        let value = s
            .value
            .clone()
            .map(|v| format!("{}{}", ["L", "R"][side], &v[1..]));
        let ts = i as i64 * 10;
        inputs[side]
            .pipe_input_at(s.key.to_string(), value.clone(), ts)
            .unwrap();
        let side = [Side::Left, Side::Right][side];
        if let Some(change) = model.update(side, s.key, value, ts) {
            want_updates.push((s.key.to_string(), change.new));
        }
    }
    driver.commit().unwrap();
    let got: Vec<(String, Option<String>)> = driver
        .output_topic::<String, Option<String>>("out")
        .read_key_values_to_list()
        .unwrap();
    // The last result per key is the join of the final tables (a key whose last emitted
    // result is a tombstone, or that never got one, has none). Collecting keeps each key's
    // last value.
    let last: BTreeMap<String, Option<String>> = got.iter().cloned().collect();
    let mut want_final: BTreeMap<String, Option<String>> = BTreeMap::new();
    for key in KEYS {
        let j = model.result(&key);
        if j.is_some() || last.contains_key(key) {
            want_final.insert(key.to_string(), j);
        }
    }
    prop_assert_eq!(&last, &want_final);
    if !cache {
        prop_assert_eq!(per_key(&got), per_key(&want_updates));
    }
    // Counts per group end at the counts of the final results.
    let counts: BTreeMap<String, Option<i64>> = driver
        .output_topic::<String, Option<i64>>("counts")
        .read_key_values_to_list()
        .unwrap()
        .into_iter()
        .collect();
    let mut want_counts: BTreeMap<String, i64> = BTreeMap::new();
    for v in want_final.values().flatten() {
        *want_counts.entry(v[..1].to_string()).or_default() += 1;
    }
    for (group, n) in &counts {
        prop_assert_eq!(
            n.unwrap_or(0),
            want_counts.get(group).copied().unwrap_or(0),
            "group {}",
            group
        );
    }
    for (group, n) in &want_counts {
        prop_assert_eq!(
            counts.get(group).copied().flatten(),
            Some(*n),
            "group {}",
            group
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, ..ProptestConfig::default() })]

    #[test]
    fn stream_table_joins_look_up_the_current_value(
        left in any::<bool>(), partitions in 1u32..=3, cache in any::<bool>(), steps in steps(2),
    ) {
        stream_table(left, partitions, cache, &steps)?;
    }

    #[test]
    fn table_table_joins_match_the_joined_tables(
        kind in prop_oneof![Just(JoinKind::Inner), Just(JoinKind::Left), Just(JoinKind::Outer)],
        partitions in 1u32..=3,
        cache in any::<bool>(),
        steps in steps(3),
    ) {
        table_table(kind, partitions, cache, &steps)?;
    }
}

/// A table derived without a store (here by `filter`) is materialized for the join.
#[test]
fn joins_with_filtered_tables() {
    let builder = StreamsBuilder::new();
    let users = builder
        .table::<String, String>("users")
        .filter(|_, country| country != "xx");
    builder
        .stream::<String, String>("views")
        .join_table(&users, |v, c| format!("{v}@{c}"))
        .to("out");
    let driver = TopologyTestDriver::new(builder.build().unwrap(), config(true)).unwrap();
    let users_in = driver.input_topic::<String, Option<String>>("users");
    let views = driver.input_topic::<String, String>("views");
    users_in.pipe_input("u1".into(), Some("fr".into())).unwrap();
    users_in.pipe_input("u2".into(), Some("xx".into())).unwrap();
    views.pipe_input("u1".into(), "/a".into()).unwrap();
    views.pipe_input("u2".into(), "/b".into()).unwrap();
    users_in.pipe_input("u1".into(), Some("xx".into())).unwrap(); // filtered out: deleted
    views.pipe_input("u1".into(), "/c".into()).unwrap();
    assert_eq!(
        driver
            .output_topic::<String, String>("out")
            .read_values_to_list()
            .unwrap(),
        vec!["/a@fr"]
    );
}

/// Kafka's `KTableImpl#doJoin` names: the merge node first, then `KTABLE-JOINTHIS-` and
/// `KTABLE-JOINOTHER-` for every kind of join (the left and outer prefixes are unused).
#[test]
fn table_table_join_nodes_are_named_as_in_kafka() {
    for kind in ["inner", "left", "outer"] {
        let builder = StreamsBuilder::new();
        let a = builder.table::<String, String>("a");
        let b = builder.table::<String, String>("b");
        let joined = match kind {
            "inner" => a.join(&b, |x: &String, y: &String| format!("{x}{y}")),
            "left" => a.left_join(&b, |x: &String, y: Option<&String>| {
                format!("{x}{}", y.map_or("", |y| y.as_str()))
            }),
            _ => a.outer_join(&b, |x: Option<&String>, y: Option<&String>| {
                format!(
                    "{}{}",
                    x.map_or("", |x| x.as_str()),
                    y.map_or("", |y| y.as_str())
                )
            }),
        };
        joined.to_stream().to("out");
        let topology = builder.build().unwrap();
        let names: Vec<String> = topology.describe().subtopologies[0]
            .nodes
            .iter()
            .map(|n| n.name.clone())
            .filter(|n| n.starts_with("KTABLE-") && !n.starts_with("KTABLE-SOURCE"))
            .collect();
        let mut names = names;
        names.sort();
        // Stores 0 and 3, sources 1-2 and 4-5; then merge 6, this 7, other 8.
        assert_eq!(
            names,
            vec![
                "KTABLE-JOINOTHER-0000000008",
                "KTABLE-JOINTHIS-0000000007",
                "KTABLE-MERGE-0000000006",
                "KTABLE-TOSTREAM-0000000009"
            ],
            "{kind}"
        );
    }
}

/// Kafka's `KStreamImpl#join(KTable, joiner, Joined)`: a re-keyed stream repartitions
/// through `<name>-repartition` when the join is named (a stream-stream join adds
/// `-left` / `-right`), and through `<upstream node>-repartition` when it is not; the
/// null-key filter in front drops a record whose new key is null.
#[test]
fn a_stream_table_join_repartitions_through_its_name() {
    for named in [true, false] {
        let builder = StreamsBuilder::new();
        let users = builder.table::<Option<String>, String>("users");
        // KSTREAM-SOURCE-3 (the table took 0-2), then KSTREAM-KEY-SELECT-0000000004.
        let by_user = builder
            .stream::<String, String>("views")
            .select_key(|_, user: &String| (!user.is_empty()).then(|| user.clone()));
        let joiner = |page: &String, country: &String| format!("{page}@{country}");
        let joined = if named {
            by_user.join_table_with(&users, joiner, Joined::new().with_name("enrich"))
        } else {
            by_user.join_table(&users, joiner)
        };
        joined.to("out");
        let topology = builder.build().unwrap();
        let expected = if named {
            "app-enrich-repartition"
        } else {
            "app-KSTREAM-KEY-SELECT-0000000004-repartition"
        };
        assert_eq!(
            topology.repartition_topics("app"),
            vec![expected.to_string()]
        );
        let driver = TopologyTestDriver::new(topology, StreamsConfig::new("app")).unwrap();
        let users_in = driver.input_topic::<Option<String>, String>("users");
        let views_in = driver.input_topic::<String, String>("views");
        users_in
            .pipe_input_at(Some("u1".into()), "nz".into(), 1)
            .unwrap();
        views_in.pipe_input_at("v1".into(), "u1".into(), 2).unwrap();
        views_in
            .pipe_input_at("v2".into(), String::new(), 3)
            .unwrap(); // no key: dropped
        let out = driver.output_topic::<Option<String>, String>("out");
        assert_eq!(
            out.read_key_values_to_list().unwrap(),
            vec![(Some("u1".to_string()), "u1@nz".to_string())],
            "named: {named}"
        );
        assert_eq!(driver.metrics().dropped_records, 1, "named: {named}");
    }
}
