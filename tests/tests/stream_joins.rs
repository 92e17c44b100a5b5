//! Stream-stream joins against a nested-loop reference written in this file.
//!
//! Random inputs on two co-partitioned topics (random partition counts, keys with many
//! collisions, timestamps with ties and duplicates, asymmetric windows, grace, record cache
//! on and off, both store engines) are piped in an order whose disorder stays within what
//! the windows tolerate (at most `min(before, after, grace)` behind the largest timestamp so
//! far), so no record is late and no window closes before its partners arrive. Then the
//! result must be exactly what a nested loop gives: every pair of a left and a right record
//! with the same key and `right.ts` in `[left.ts - before, left.ts + after]`, with the larger
//! timestamp; for left and outer joins, every record without a partner once, with `None`
//! and its own timestamp. And no `None` result may appear before its record's window
//! closed: stream time (the task's largest timestamp) must be past `ts + after + grace`
//! (`ts + before + grace` for a right record) when it is emitted.
//!
//! Late records (more than `before + after + grace` behind) follow Kafka's
//! `KStreamKStreamJoin` (KAFKA-16123): they are joined with the other side's buffered
//! records, not buffered themselves, and counted as dropped.

// Test helpers outside #[test] functions may unwrap too: a panic fails the test.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::time::Duration;

use proptest::prelude::*;
use streams_core::config::DslStore;
use streams_core::partitioner::partition_for_key;
use streams_core::prelude::*;
use streams_tests::JoinKind;
use streams_tests::driver;

mod join_common;

const KEYS: [&str; 4] = ["a", "b", "c", "d"];

#[derive(Debug, Clone)]
struct Input {
    left: bool,
    key: &'static str,
    ts: i64,
    id: usize,
}

#[derive(Debug, Clone)]
struct Case {
    kind: JoinKind,
    partitions: u32,
    before: i64,
    after: i64,
    grace: i64,
    cache: bool,
    in_memory: bool,
    inputs: Vec<Input>,
}

fn value(i: &Input) -> String {
    format!("{}{}", if i.left { "L" } else { "R" }, i.id)
}

fn topology(c: &Case) -> Topology {
    let builder = StreamsBuilder::new();
    let left = builder.stream::<String, String>("left");
    let right = builder.stream::<String, String>("right");
    let w = JoinWindows::of_time_difference_and_grace(
        Duration::ZERO,
        Duration::from_millis(c.grace as u64),
    )
    .before(Duration::from_millis(c.before as u64))
    .after(Duration::from_millis(c.after as u64));
    let show = |v: Option<&String>| v.cloned().unwrap_or_else(|| "-".into());
    let joined = match c.kind {
        JoinKind::Inner => left.join(&right, move |l, r| format!("{l}|{r}"), w),
        JoinKind::Left => left.left_join(&right, move |l, r| format!("{l}|{}", show(r)), w),
        JoinKind::Outer => {
            left.outer_join(&right, move |l, r| format!("{}|{}", show(l), show(r)), w)
        }
    };
    joined.to("out");
    builder.build().unwrap()
}

/// The nested loop: `(key, "left|right", ts)` of every expected result, sorted.
fn reference(c: &Case) -> Vec<(String, String, i64)> {
    let mut out = Vec::new();
    let (lefts, rights): (Vec<&Input>, Vec<&Input>) = c.inputs.iter().partition(|i| i.left);
    let matches =
        |l: &Input, r: &Input| l.key == r.key && r.ts >= l.ts - c.before && r.ts <= l.ts + c.after;
    for l in &lefts {
        let mut any = false;
        for r in &rights {
            if matches(l, r) {
                any = true;
                out.push((
                    l.key.to_string(),
                    format!("{}|{}", value(l), value(r)),
                    l.ts.max(r.ts),
                ));
            }
        }
        if !any && c.kind != JoinKind::Inner {
            out.push((l.key.to_string(), format!("{}|-", value(l)), l.ts));
        }
    }
    if c.kind == JoinKind::Outer {
        for r in &rights {
            if !lefts.iter().any(|l| matches(l, r)) {
                out.push((r.key.to_string(), format!("-|{}", value(r)), r.ts));
            }
        }
    }
    out.sort();
    out
}

fn config(c: &Case) -> StreamsConfig {
    let store = if c.in_memory {
        DslStore::InMemory
    } else {
        DslStore::RocksDb
    };
    join_common::config("joins", c.cache, store)
}

fn run(c: &Case) -> Result<(), TestCaseError> {
    let driver = driver::with_partitions(
        topology(c),
        config(c),
        &[("left", c.partitions), ("right", c.partitions)],
    );
    let left = driver.input_topic::<String, String>("left");
    let right = driver.input_topic::<String, String>("right");
    let out = driver.output_topic::<String, String>("out");
    let task_of = |key: &str| partition_for_key(key.as_bytes(), c.partitions);
    // Per task: the largest timestamp so far (the join's stream time).
    let mut stream_time: BTreeMap<u32, i64> = BTreeMap::new();
    let ts_of: BTreeMap<String, i64> = c.inputs.iter().map(|i| (value(i), i.ts)).collect();
    let mut got = Vec::new();
    let check = |got: &mut Vec<(String, String, i64)>,
                 stream_time: &BTreeMap<u32, i64>|
     -> Result<(), TestCaseError> {
        for r in out.read_records_to_list().unwrap() {
            let (l, rv) = r.value.split_once('|').unwrap();
            // A `None` result only after its record's window closed.
            let (own, lookback) = match (l, rv) {
                ("-", own) => (own, c.before),
                (own, "-") => (own, c.after),
                _ => ("", 0),
            };
            if !own.is_empty() {
                let st = stream_time[&task_of(&r.key)];
                prop_assert!(
                    st > ts_of[own] + lookback + c.grace,
                    "{own} emitted unmatched at stream time {st}, before its window closed"
                );
            }
            got.push((r.key, r.value, r.timestamp));
        }
        Ok(())
    };
    for i in &c.inputs {
        let topic = if i.left { &left } else { &right };
        topic
            .pipe_input_at(i.key.to_string(), value(i), i.ts)
            .unwrap();
        let st = stream_time.entry(task_of(i.key)).or_insert(i64::MIN);
        *st = (*st).max(i.ts);
        check(&mut got, &stream_time)?;
    }
    // Close every window: one record per key far in the future (never emitted itself).
    let end = c.inputs.iter().map(|i| i.ts).max().unwrap_or(0) + c.before + c.after + c.grace + 10;
    let keys: std::collections::BTreeSet<&str> = c.inputs.iter().map(|i| i.key).collect();
    for key in keys {
        left.pipe_input_at(key.to_string(), "flush".into(), end)
            .unwrap();
        let st = stream_time.entry(task_of(key)).or_insert(i64::MIN);
        *st = (*st).max(end);
        check(&mut got, &stream_time)?;
    }
    got.sort();
    prop_assert_eq!(got, reference(c));
    prop_assert_eq!(driver.metrics().dropped_records, 0);
    Ok(())
}

fn case() -> impl Strategy<Value = Case> {
    (
        prop_oneof![
            Just(JoinKind::Inner),
            Just(JoinKind::Left),
            Just(JoinKind::Outer)
        ],
        1u32..=3,
        0i64..=40,
        0i64..=40,
        0i64..=30,
        any::<bool>(),
        any::<bool>(),
        proptest::collection::vec(
            (any::<bool>(), 0usize..KEYS.len(), 0i64..=150, 0u8..=100),
            1..60,
        ),
    )
        .prop_map(
            |(kind, partitions, before, after, grace, cache, in_memory, raw)| {
                // Disorder at most min(before, after, grace) behind the largest timestamp.
                let slack = before.min(after).min(grace);
                let mut max = 0i64;
                let inputs = raw
                    .into_iter()
                    .enumerate()
                    .map(|(id, (left, k, step, back))| {
                        max += step % 20;
                        let behind = if slack == 0 {
                            0
                        } else {
                            i64::from(back) % (slack + 1)
                        };
                        Input {
                            left,
                            key: KEYS[k],
                            ts: (max - behind).max(0),
                            id,
                        }
                    })
                    .collect();
                Case {
                    kind,
                    partitions,
                    before,
                    after,
                    grace,
                    cache,
                    in_memory,
                    inputs,
                }
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]
    #[test]
    fn stream_stream_joins_match_a_nested_loop(c in case()) {
        run(&c)?;
    }
}

/// Thousands of keys over a time span many windows long, so that each key comes back long
/// after its records expired: the join's in-memory index of the keys each side buffered
/// forgets expired keys as it grows, and what it forgets must not hide a partner.
#[test]
fn many_keys_coming_back_after_their_windows_match_a_nested_loop() {
    let keys: Vec<&'static str> = (0..2_500)
        .map(|k| &*Box::leak(format!("user-{k}").into_boxed_str()))
        .collect();
    for (n, kind) in [JoinKind::Inner, JoinKind::Left, JoinKind::Outer]
        .into_iter()
        .enumerate()
    {
        for (cache, in_memory) in [(true, false), (false, false), (false, true)] {
            let inputs = (0..6_000usize)
                .map(|id| Input {
                    // A left and a right record of each key, a few steps apart.
                    left: id % 2 == 0,
                    key: keys[(id / 2 * 7_919 + (id % 2) * 3 * n) % keys.len()],
                    // Disorder within the slack of 10: never late.
                    ts: ((id as i64) - (id as i64 * 37 % 11)).max(0),
                    id,
                })
                .collect();
            let c = Case {
                kind,
                partitions: 2,
                before: 50,
                after: 30,
                grace: 10,
                cache,
                in_memory,
                inputs,
            };
            run(&c).unwrap();
        }
    }
}

/// KAFKA-16123: a record more than `before + after + grace` behind is not buffered (a later
/// partner does not join it) and counts as dropped, yet still joins the other side's
/// buffered records; in a left join an unmatched late record gets its `None` result at once.
#[test]
fn late_records_join_but_are_not_buffered() {
    for kind in [JoinKind::Inner, JoinKind::Left] {
        let c = Case {
            kind,
            partitions: 1,
            before: 10,
            after: 10,
            grace: 0,
            cache: true,
            in_memory: false,
            inputs: Vec::new(),
        };
        let driver = TopologyTestDriver::new(topology(&c), config(&c)).unwrap();
        let left = driver.input_topic::<String, String>("left");
        let right = driver.input_topic::<String, String>("right");
        let out = driver.output_topic::<String, String>("out");
        right.pipe_input_at("k".into(), "R0".into(), 5).unwrap();
        right.pipe_input_at("x".into(), "R1".into(), 100).unwrap();
        left.pipe_input_at("x".into(), "L1".into(), 100).unwrap(); // both stores at 100
        assert_eq!(out.read_values_to_list().unwrap(), vec!["L1|R1"]);
        // 95 behind, more than before + after + grace (20): late, not buffered. Its
        // partner R0 is more than 20 behind the right store's time: expired, no join.
        left.pipe_input_at("k".into(), "L2".into(), 5).unwrap();
        left.pipe_input_at("z".into(), "L3".into(), 6).unwrap();
        let values = out.read_values_to_list().unwrap();
        match kind {
            // No partner and a window long closed: the None result comes at once.
            JoinKind::Left => assert_eq!(values, vec!["L2|-", "L3|-"]),
            _ => assert!(values.is_empty(), "{values:?}"),
        }
        // A late right record at 8 finds nothing: L2 and L3 were not buffered.
        right.pipe_input_at("k".into(), "R4".into(), 8).unwrap();
        assert!(out.read_values_to_list().unwrap().is_empty());
        assert_eq!(
            driver.metrics().dropped_records,
            3,
            "{:?}",
            driver.metrics()
        );
        // A late left record still joins a buffered right record in its window.
        right.pipe_input_at("m".into(), "R5".into(), 88).unwrap();
        left.pipe_input_at("m".into(), "L6".into(), 79).unwrap(); // 21 behind: late
        let values = out.read_values_to_list().unwrap();
        assert_eq!(values, vec!["L6|R5"]);
    }
}

/// Co-partitioning: joining topics with different partition counts fails at start with an
/// error naming both; a re-keyed side is repartitioned to the other side's count.
#[test]
fn joined_topics_must_be_copartitioned() {
    let build = |rekey: bool| {
        let builder = StreamsBuilder::new();
        let left = builder.stream::<String, String>("left");
        let mut right = builder.stream::<String, String>("right");
        if rekey {
            right = right.select_key(|k, _| k.clone());
        }
        left.join(
            &right,
            |l, r| format!("{l}|{r}"),
            JoinWindows::of_time_difference_with_no_grace(Duration::from_millis(10)),
        )
        .to("out");
        builder.build().unwrap()
    };
    let err = TopologyTestDriver::builder(build(false), StreamsConfig::new("j"))
        .partitions("left", 2)
        .partitions("right", 3)
        .build()
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("left (2 partitions)") && err.contains("right (3 partitions)"),
        "{err}"
    );

    let driver = TopologyTestDriver::builder(build(true), StreamsConfig::new("j"))
        .partitions("left", 2)
        .partitions("right", 3)
        .build()
        .unwrap();
    let left = driver.input_topic::<String, String>("left");
    let right = driver.input_topic::<String, String>("right");
    for (i, key) in KEYS.iter().enumerate() {
        left.pipe_input_at(key.to_string(), format!("L{i}"), 10)
            .unwrap();
        right
            .pipe_input_at(key.to_string(), format!("R{i}"), 12)
            .unwrap();
    }
    let mut got: Vec<(String, String)> = driver::key_values::<String, String>(&driver, "out");
    got.sort();
    let want: Vec<(String, String)> = KEYS
        .iter()
        .enumerate()
        .map(|(i, k)| (k.to_string(), format!("L{i}|R{i}")))
        .collect();
    assert_eq!(got, want);
}

/// `describe()` and its DOT/Mermaid renderings show the join nodes with their stores, named
/// as Kafka Streams names them, and global stores with their topics.
#[test]
fn describe_shows_join_nodes_and_stores() {
    let builder = StreamsBuilder::new();
    let left = builder.stream::<String, String>("left");
    let right = builder.stream::<String, String>("right");
    let pages = builder.global_table::<String, String>("pages");
    left.left_join(
        &right,
        |l, r| format!("{l}|{}", r.map_or("-", |r| r.as_str())),
        JoinWindows::of_time_difference_with_no_grace(Duration::from_millis(10)),
    )
    .join_global(&pages, |_, v| v.clone(), |v, p| format!("{v}@{p}"))
    .to("out");
    let d = builder.build().unwrap().describe();
    let text = d.to_string();
    for want in [
        "Processor: KSTREAM-JOINTHIS-0000000007 (stores: [])",
        "Processor: KSTREAM-OUTEROTHER-0000000008 (stores: [])",
        "Processor: KSTREAM-MERGE-0000000009 (stores: [KSTREAM-JOINTHIS-0000000007-store, \
         KSTREAM-OUTEROTHER-0000000008-store, KSTREAM-OUTERSHARED-0000000007-store])",
        "Global store: GLOBALKTABLE-STATE-STORE-0000000002 (topic: pages",
    ] {
        assert!(text.contains(want), "missing `{want}` in\n{text}");
    }
    let dot = d.to_dot();
    assert!(
        dot.contains("\"store:KSTREAM-OUTERSHARED-0000000007-store\""),
        "{dot}"
    );
    assert!(
        dot.contains("\"topic:pages\" -> \"store:GLOBALKTABLE-STATE-STORE-0000000002\""),
        "{dot}"
    );
    let mermaid = d.to_mermaid();
    assert!(mermaid.contains("KSTREAM-MERGE-0000000009"), "{mermaid}");
}

/// Kafka's `KStreamImpl#doJoin`: an unnamed join repartitions a re-keyed input through
/// `<upstream node>-repartition` behind a filter that drops null keys, so a left join
/// never sees (nor joins) a record whose new key is null.
#[test]
fn an_unnamed_join_repartitions_through_the_upstream_node_and_drops_null_keys() {
    let builder = StreamsBuilder::new();
    let views = builder.stream::<String, String>("views");
    let clicks = builder.stream::<Option<String>, String>("clicks");
    // KSTREAM-KEY-SELECT-0000000002: the page, or no key for an empty one.
    let by_page = views.select_key(|_, page: &String| (!page.is_empty()).then(|| page.clone()));
    by_page
        .left_join(
            &clicks,
            |v: &String, c: Option<&String>| format!("{v}|{}", c.map_or("-", |c| c.as_str())),
            JoinWindows::of_time_difference_with_no_grace(Duration::from_millis(10)),
        )
        .to("out");
    let topology = builder.build().unwrap();
    assert_eq!(
        topology.repartition_topics("app"),
        vec!["app-KSTREAM-KEY-SELECT-0000000002-repartition".to_string()]
    );
    let driver = TopologyTestDriver::new(topology, StreamsConfig::new("app")).unwrap();
    let views_in = driver.input_topic::<String, String>("views");
    let clicks_in = driver.input_topic::<Option<String>, String>("clicks");
    clicks_in
        .pipe_input_at(Some("/a".into()), "c1".into(), 5)
        .unwrap();
    views_in.pipe_input_at("u1".into(), "/a".into(), 6).unwrap();
    views_in
        .pipe_input_at("u2".into(), String::new(), 7)
        .unwrap(); // no key: dropped
    let out = driver.output_topic::<Option<String>, String>("out");
    assert_eq!(
        out.read_key_values_to_list().unwrap(),
        vec![(Some("/a".to_string()), "/a|c1".to_string())]
    );
    assert_eq!(driver.metrics().dropped_records, 1);
}
