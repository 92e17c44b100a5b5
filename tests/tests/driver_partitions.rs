//! Topologies over several partitions in the test driver (tasks, repartition topics,
//! co-location of keys), topology descriptions (text, DOT, Mermaid), naming, and the errors
//! `StreamsBuilder::build` reports.

use std::collections::{BTreeMap, HashMap};

use streams_core::partitioner::partition_for_key;
use streams_core::prelude::*;
use streams_core::record::TaskId;
use streams_core::topology::NodeType;
use streams_tests::driver;

const APP: &str = "wc";

fn s(x: &str) -> String {
    x.to_string()
}

/// Word count with generated names: sentences -> words -> group_by word -> count.
fn word_count(builder: &StreamsBuilder) {
    builder
        .stream::<String, String>("sentences") // KSTREAM-SOURCE-0000000000
        .flat_map_values(|s: String| {
            s.split_whitespace()
                .map(str::to_lowercase)
                .collect::<Vec<_>>()
        }) // KSTREAM-FLATMAPVALUES-0000000001
        .group_by(|_, w| w.clone()) // KSTREAM-KEY-SELECT-0000000002
        .count() // store 3, KSTREAM-AGGREGATE-0000000004, sink 5, filter 6, source 7
        .to_stream() // KTABLE-TOSTREAM-0000000008
        .to("counts"); // KSTREAM-SINK-0000000009
}

fn four_partitions(topology: Topology) -> Result<TopologyTestDriver, StreamsError> {
    TopologyTestDriver::builder(topology, StreamsConfig::new(APP))
        .partitions("sentences", 4)
        .build()
}

#[test]
fn one_task_per_subtopology_and_partition() {
    let builder = StreamsBuilder::new();
    word_count(&builder);
    let driver = four_partitions(builder.build().unwrap()).unwrap();
    let ids = driver.task_ids();
    let expected: Vec<TaskId> = (0..2)
        .flat_map(|sub| {
            (0..4).map(move |p| TaskId {
                subtopology: sub,
                partition: p,
            })
        })
        .collect();
    assert_eq!(ids, expected);
    let names: Vec<String> = ids.iter().map(ToString::to_string).collect();
    assert_eq!(
        names,
        vec!["0_0", "0_1", "0_2", "0_3", "1_0", "1_1", "1_2", "1_3"]
    );

    // One sub-topology over 3 partitions: 3 tasks.
    let builder = StreamsBuilder::new();
    builder
        .stream::<String, String>("in")
        .filter(|_, _| true)
        .to("out");
    let driver = driver::with_partitions(
        builder.build().unwrap(),
        StreamsConfig::new(APP),
        &[("in", 3)],
    );
    assert_eq!(driver.task_ids().len(), 3);
    assert!(driver.task_ids().iter().all(|t| t.subtopology == 0));
}

#[test]
fn repartition_topics_are_prefixed_with_the_application_id_and_sized_like_their_input() {
    // Generated: the repartition topic is named after the count's store.
    let builder = StreamsBuilder::new();
    word_count(&builder);
    let driver = four_partitions(builder.build().unwrap()).unwrap();
    assert_eq!(
        driver.partition_count("wc-KSTREAM-AGGREGATE-STATE-STORE-0000000003-repartition"),
        4
    );

    // Named by Grouped.
    let builder = StreamsBuilder::new();
    builder
        .stream::<String, String>("sentences")
        .group_by_with(
            |_, w| w.clone(),
            Grouped::with(default_serde(), default_serde()).with_name("by-word"),
        )
        .count()
        .to_stream()
        .to("counts");
    let topology = builder.build().unwrap();
    let driver = driver::with_partitions(
        topology,
        StreamsConfig::new("other-app"),
        &[("sentences", 4)],
    );
    assert_eq!(driver.partition_count("other-app-by-word-repartition"), 4);
    assert_eq!(driver.task_ids().len(), 8);
}

#[test]
fn counts_over_many_keys_are_exact_and_each_key_lives_in_exactly_one_task() {
    let builder = StreamsBuilder::new();
    builder
        .stream::<String, String>("sentences")
        .group_by(|_, w| w.clone())
        .count_with(Materialized::as_("word-counts"))
        .to_stream()
        // Written to a topic named after the partition of the task that counted it.
        .to_dynamic(
            |_, _, ctx| format!("counted-in-{}", ctx.metadata.as_ref().unwrap().partition),
            Produced::new(),
        );
    let driver = four_partitions(builder.build().unwrap()).unwrap();
    // Word w{i} occurs (i % 4) + 1 times, each time from another user (input key).
    let mut records = Vec::new();
    for i in 0..40 {
        for j in 0..(i % 4) + 1 {
            records.push((format!("user-{i}-{j}"), format!("w{i}")));
        }
    }
    assert_eq!(records.len(), 100);
    let input_partitions: std::collections::BTreeSet<u32> = records
        .iter()
        .map(|(k, _)| partition_for_key(k.as_bytes(), 4))
        .collect();
    assert_eq!(input_partitions.len(), 4);
    driver
        .input_topic::<String, String>("sentences")
        .pipe_key_values(records)
        .unwrap();

    let expected = |w: &str| -> i64 { w[1..].parse::<i64>().unwrap() % 4 + 1 };
    // The store: each word exactly once over all tasks, with its exact count.
    let store = driver
        .key_value_store::<String, i64>("word-counts")
        .unwrap();
    let all = store.all().unwrap();
    assert_eq!(all.len(), 40);
    let mut per_word: HashMap<String, i64> = HashMap::new();
    for (w, n) in all {
        assert_eq!(n, expected(&w), "{w}");
        assert!(per_word.insert(w, n).is_none(), "a word is in two tasks");
    }
    // Each word was counted by the task of its partition only, and its last update is exact.
    let mut finals = HashMap::new();
    for p in 0..4u32 {
        let out = driver
            .output_topic::<String, Option<i64>>(&format!("counted-in-{p}"))
            .read_key_values_to_list()
            .unwrap();
        for (w, n) in out {
            assert_eq!(partition_for_key(w.as_bytes(), 4), p, "{w}");
            finals.insert(w, n.unwrap());
        }
    }
    assert_eq!(finals, per_word);
    // Per task metrics: the counting task of partition p processed the records of its words.
    let metrics = driver.task_metrics();
    for p in 0..4u32 {
        let want: i64 = per_word
            .iter()
            .filter(|(w, _)| partition_for_key(w.as_bytes(), 4) == p)
            .map(|(_, n)| n)
            .sum();
        let task = TaskId {
            subtopology: 1,
            partition: p,
        };
        assert_eq!(metrics[&task].processed, want as u64, "task {task}");
    }
    assert_eq!(driver.metrics().processed, 200);
}

#[test]
fn records_with_the_same_key_meet_even_when_they_arrive_on_different_partitions() {
    let builder = StreamsBuilder::new();
    builder
        .stream::<String, String>("sentences")
        .group_by(|_, w| w.clone())
        .count_with(Materialized::as_("c"))
        .to_stream()
        .to("counts");
    let driver = four_partitions(builder.build().unwrap()).unwrap();
    let input = driver.input_topic::<String, String>("sentences");
    // Force "hello" onto every input partition.
    for p in 0..4 {
        input
            .pipe_record_to(p, Record::new(s("any"), s("hello"), i64::from(p)))
            .unwrap();
    }
    assert_eq!(
        driver
            .output_topic::<String, Option<i64>>("counts")
            .read_values_to_list()
            .unwrap(),
        vec![Some(1), Some(2), Some(3), Some(4)]
    );
    let store = driver.key_value_store::<String, i64>("c").unwrap();
    assert_eq!(store.all().unwrap(), vec![(s("hello"), 4)]);
    let metrics = driver.task_metrics();
    for p in 0..4 {
        let source_task = TaskId {
            subtopology: 0,
            partition: p,
        };
        assert_eq!(metrics[&source_task].processed, 1);
    }
    assert!(
        input
            .pipe_record_to(4, Record::new(s("k"), s("v"), 0))
            .is_err()
    );
}

#[test]
fn describe_prints_kafka_streams_format() {
    let builder = StreamsBuilder::new();
    word_count(&builder);
    let desc = builder.build().unwrap().describe();
    let text = desc.to_string();
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let rep = "<application.id>-KSTREAM-AGGREGATE-STATE-STORE-0000000003-repartition";
    let expected = vec![
        "Topologies:".to_string(),
        "Sub-topology: 0".to_string(),
        "Source: KSTREAM-SOURCE-0000000000 (topics: [sentences])".to_string(),
        "--> KSTREAM-FLATMAPVALUES-0000000001".to_string(),
        "Processor: KSTREAM-FLATMAPVALUES-0000000001 (stores: [])".to_string(),
        "--> KSTREAM-KEY-SELECT-0000000002".to_string(),
        "<-- KSTREAM-SOURCE-0000000000".to_string(),
        "Processor: KSTREAM-KEY-SELECT-0000000002 (stores: [])".to_string(),
        "--> KSTREAM-FILTER-0000000006".to_string(),
        "<-- KSTREAM-FLATMAPVALUES-0000000001".to_string(),
        // Drops null keys before the repartition topic, as in Kafka Streams, whose
        // `createRepartitionedSource` names the sink (5) before the filter (6).
        "Processor: KSTREAM-FILTER-0000000006 (stores: [])".to_string(),
        "--> KSTREAM-SINK-0000000005".to_string(),
        "<-- KSTREAM-KEY-SELECT-0000000002".to_string(),
        format!("Sink: KSTREAM-SINK-0000000005 (topic: {rep})"),
        "<-- KSTREAM-FILTER-0000000006".to_string(),
        "Sub-topology: 1".to_string(),
        format!("Source: KSTREAM-SOURCE-0000000007 (topics: [{rep}])"),
        "--> KSTREAM-AGGREGATE-0000000004".to_string(),
        "Processor: KSTREAM-AGGREGATE-0000000004 (stores: [KSTREAM-AGGREGATE-STATE-STORE-0000000003])"
            .to_string(),
        "--> KTABLE-TOSTREAM-0000000008".to_string(),
        "<-- KSTREAM-SOURCE-0000000007".to_string(),
        "Processor: KTABLE-TOSTREAM-0000000008 (stores: [])".to_string(),
        "--> KSTREAM-SINK-0000000009".to_string(),
        "<-- KSTREAM-AGGREGATE-0000000004".to_string(),
        "Sink: KSTREAM-SINK-0000000009 (topic: counts)".to_string(),
        "<-- KTABLE-TOSTREAM-0000000008".to_string(),
    ];
    assert_eq!(lines, expected, "\n{text}");
    // Nodes are indented under their sub-topology, edges under their node.
    assert!(text.starts_with("Topologies:\n   Sub-topology: 0\n    Source: "));
    assert!(text.contains("\n      --> KSTREAM-FLATMAPVALUES-0000000001\n"));
    assert!(text.contains("\n      <-- KSTREAM-SOURCE-0000000000\n"));
    // The structured description says the same.
    assert_eq!(desc.subtopologies.len(), 2);
    assert_eq!(desc.subtopologies[1].id, 1);
    assert_eq!(
        desc.subtopologies[1].nodes[1].kind,
        NodeType::Processor {
            stores: vec![s("KSTREAM-AGGREGATE-STATE-STORE-0000000003")]
        }
    );
}

#[test]
fn a_node_with_several_children_lists_them_all() {
    let builder = StreamsBuilder::new();
    let src = builder.stream_with::<String, String>(
        &["a", "b"],
        Consumed::with(default_serde(), default_serde()).with_name("src"),
    );
    src.filter_named(|_, _| true, Named::as_("left"), false)
        .to_with("l", Produced::as_("to-l"));
    src.filter_named(|_, _| true, Named::as_("right"), false)
        .to_with("r", Produced::as_("to-r"));
    let text = builder.build().unwrap().describe().to_string();
    assert!(
        text.contains("Source: src (topics: [a, b])\n      --> left, right\n"),
        "{text}"
    );
    assert!(
        text.contains("Sink: to-l (topic: l)\n      <-- left\n"),
        "{text}"
    );
}

#[test]
fn dot_and_mermaid_mention_every_node_store_and_topic() {
    let builder = StreamsBuilder::new();
    word_count(&builder);
    let desc = builder.build().unwrap().describe();
    let dot = desc.to_dot();
    let mermaid = desc.to_mermaid();
    assert!(dot.starts_with("digraph"));
    assert!(mermaid.starts_with("flowchart"));
    let mut n = 0;
    for sub in &desc.subtopologies {
        assert!(dot.contains(&format!("Sub-topology {}", sub.id)));
        assert!(mermaid.contains(&format!("Sub-topology {}", sub.id)));
        for node in &sub.nodes {
            n += 1;
            assert!(dot.contains(&format!("\"{}\"", node.name)), "{}", node.name);
            assert!(
                mermaid.contains(&format!("[\"{}\"]", node.name)),
                "{}",
                node.name
            );
            for succ in &node.successors {
                assert!(
                    dot.contains(&format!("\"{}\" -> \"{}\"", node.name, succ)),
                    "{} -> {succ}",
                    node.name
                );
            }
        }
    }
    assert_eq!(n, 9);
    for name in [
        "KSTREAM-AGGREGATE-STATE-STORE-0000000003",
        "sentences",
        "counts",
        "<application.id>-KSTREAM-AGGREGATE-STATE-STORE-0000000003-repartition",
    ] {
        assert!(dot.contains(name), "{name} not in\n{dot}");
        assert!(mermaid.contains(name), "{name} not in\n{mermaid}");
    }
}

#[test]
fn named_operators_name_their_nodes_stores_and_repartition_topics() {
    let builder = StreamsBuilder::new();
    builder
        .stream_with::<String, String>(
            &["sentences"],
            Consumed::with(default_serde(), default_serde()).with_name("read-sentences"),
        )
        .flat_map_values(|s: String| s.split(' ').map(String::from).collect::<Vec<_>>())
        .filter_named(|_, w| !w.is_empty(), Named::as_("non-empty"), false)
        .group_by_with(
            |_, w| w.clone(),
            Grouped::with(default_serde(), default_serde()).with_name("by-word"),
        )
        .count_with(Materialized::as_("word-counts"))
        .to_stream()
        .to_with("counts", Produced::as_("write-counts"));
    let topology = builder.build().unwrap();
    assert_eq!(topology.store_names(), vec!["word-counts"]);
    let desc = topology.describe();
    let by_name: BTreeMap<&str, &NodeType> = desc
        .subtopologies
        .iter()
        .flat_map(|s| s.nodes.iter())
        .map(|n| (n.name.as_str(), &n.kind))
        .collect();
    assert_eq!(
        by_name["read-sentences"],
        &NodeType::Source {
            topics: vec![s("sentences")]
        }
    );
    assert_eq!(
        by_name["non-empty"],
        &NodeType::Processor { stores: vec![] }
    );
    assert_eq!(
        by_name["by-word-repartition-sink"],
        &NodeType::Sink {
            topic: Some(s("<application.id>-by-word-repartition"))
        }
    );
    assert_eq!(
        by_name["by-word-repartition-source"],
        &NodeType::Source {
            topics: vec![s("<application.id>-by-word-repartition")]
        }
    );
    assert_eq!(
        by_name["write-counts"],
        &NodeType::Sink {
            topic: Some(s("counts"))
        }
    );
    let aggregate = desc
        .subtopologies
        .iter()
        .flat_map(|s| s.nodes.iter())
        .find(|n| {
            n.kind
                == NodeType::Processor {
                    stores: vec![s("word-counts")],
                }
        })
        .unwrap();
    assert_eq!(
        aggregate.predecessors,
        vec![s("by-word-repartition-source")]
    );

    let driver = driver::with_partitions(topology, StreamsConfig::new(APP), &[("sentences", 4)]);
    assert_eq!(driver.partition_count("wc-by-word-repartition"), 4);
    let input = driver.input_topic::<String, String>("sentences");
    input.pipe_input(s("s1"), s("a b  a")).unwrap();
    input.pipe_input(s("s2"), s("b a")).unwrap();
    let counts = driver
        .output_topic::<String, Option<i64>>("counts")
        .read_key_values_to_map()
        .unwrap();
    assert_eq!(counts.len(), 2);
    assert_eq!(counts[&s("a")], Some(3));
    assert_eq!(counts[&s("b")], Some(2));
}

#[test]
fn generated_names_are_stable_across_identical_builds() {
    let describe = || {
        let builder = StreamsBuilder::new();
        word_count(&builder);
        builder.build().unwrap().describe()
    };
    let (a, b) = (describe(), describe());
    assert_eq!(a, b);
    assert_eq!(a.to_string(), b.to_string());
    assert_eq!(a.to_dot(), b.to_dot());
    assert_eq!(a.to_mermaid(), b.to_mermaid());

    // Generated names come from one counter: an extra operator upstream renames the store
    // (which is why stateful operators should be named).
    let builder = StreamsBuilder::new();
    word_count(&builder);
    assert_eq!(
        builder.build().unwrap().store_names(),
        vec!["KSTREAM-AGGREGATE-STATE-STORE-0000000003"]
    );
    let builder = StreamsBuilder::new();
    builder
        .stream::<String, String>("sentences")
        .peek(|_, _| {})
        .flat_map_values(|s: String| s.split(' ').map(String::from).collect::<Vec<_>>())
        .group_by(|_, w| w.clone())
        .count()
        .to_stream()
        .to("counts");
    assert_eq!(
        builder.build().unwrap().store_names(),
        vec!["KSTREAM-AGGREGATE-STATE-STORE-0000000004"]
    );
}

#[test]
fn build_reports_a_missing_serde_when_a_repartition_needs_one() {
    // The value type (usize) has no serde, and the key change forces a repartition.
    let builder = StreamsBuilder::new();
    builder
        .stream::<String, String>("in")
        .map_values(|v| v.len())
        .select_key(|_, n| format!("len-{n}"))
        .group_by_key_with(Grouped::new().with_key_serde(default_serde()))
        .count()
        .to_stream()
        .to("out");
    match builder.build() {
        Err(TopologyError::MissingSerde {
            which, type_name, ..
        }) => {
            assert_eq!(which, "value");
            assert_eq!(type_name, "usize");
        }
        other => panic!("expected MissingSerde, got {other:?}"),
    }

    // No serde at all for the new key.
    let builder = StreamsBuilder::new();
    builder
        .stream::<String, String>("in")
        .map(|k, v| (k, v.len()))
        .group_by_key_with(Grouped::new())
        .count();
    let err = builder.build().unwrap_err();
    assert!(
        matches!(err, TopologyError::MissingSerde { which: "key", .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("no key serde"), "{err}");

    // Without a key change nothing is repartitioned, so no value serde is needed.
    let builder = StreamsBuilder::new();
    builder
        .stream::<String, String>("in")
        .map_values(|v| v.len())
        .group_by_key_with(Grouped::new())
        .count();
    builder.build().unwrap();
}

#[test]
fn build_reports_duplicate_names() {
    let builder = StreamsBuilder::new();
    let src = builder.stream::<String, String>("in");
    src.filter_named(|_, _| true, Named::as_("f"), false)
        .to("a");
    src.filter_named(|_, _| false, Named::as_("f"), false)
        .to("b");
    assert_eq!(
        builder.build().unwrap_err(),
        TopologyError::DuplicateName(s("f"))
    );

    let builder = StreamsBuilder::new();
    let src = builder.stream::<String, String>("in");
    src.group_by_key().count_with(Materialized::as_("counts"));
    src.group_by_key().count_with(Materialized::as_("counts"));
    let err = builder.build().unwrap_err();
    assert_eq!(err, TopologyError::DuplicateName(s("counts")));
    assert!(err.to_string().contains("`counts`"));
}

#[test]
fn build_reports_a_topology_without_source() {
    assert_eq!(
        StreamsBuilder::new().build().unwrap_err(),
        TopologyError::NoSource
    );
}

#[test]
fn build_reports_a_topic_read_twice() {
    let builder = StreamsBuilder::new();
    builder.stream::<String, String>("in").to("a");
    builder.stream::<String, String>("in").to("b");
    assert_eq!(
        builder.build().unwrap_err(),
        TopologyError::TopicReadTwice(s("in"))
    );

    let builder = StreamsBuilder::new();
    builder.stream::<String, String>("users").to("a");
    builder.table::<String, String>("users");
    assert_eq!(
        builder.build().unwrap_err(),
        TopologyError::TopicReadTwice(s("users"))
    );
}

#[test]
fn a_task_processes_the_records_of_its_input_partitions_in_timestamp_order() {
    // Two repartition topics feed one sub-topology: its task has two input partitions.
    let builder = StreamsBuilder::new();
    let src = builder.stream::<String, String>("in");
    let a = src.filter(|_, v| v.starts_with('a')).repartition_with(
        Repartitioned::as_("ra")
            .with_key_serde(default_serde())
            .with_value_serde(default_serde()),
    );
    let b = src.filter(|_, v| v.starts_with('b')).repartition_with(
        Repartitioned::as_("rb")
            .with_key_serde(default_serde())
            .with_value_serde(default_serde()),
    );
    a.merge(&b).to("out");
    let driver = driver::partitioned(builder, StreamsConfig::new(APP), 2, &[]);
    // One batch: the downstream task then holds ra = [a1@5, a2@3] and rb = [b1@1, b2@4],
    // and always takes the head with the smallest timestamp (order within a partition kept).
    driver
        .input_topic::<String, String>("in")
        .pipe_records([
            Record::new(s("k"), s("a1"), 5),
            Record::new(s("k"), s("b1"), 1),
            Record::new(s("k"), s("a2"), 3),
            Record::new(s("k"), s("b2"), 4),
        ])
        .unwrap();
    assert_eq!(
        driver
            .output_topic::<String, String>("out")
            .read_values_to_list()
            .unwrap(),
        vec![s("b1"), s("b2"), s("a1"), s("a2")]
    );
}

#[test]
fn a_topic_written_and_read_by_the_same_topology_links_two_subtopologies() {
    let builder = StreamsBuilder::new();
    builder
        .stream::<String, String>("raw")
        .map_values(|v| v.trim().to_string())
        .to("clean");
    builder
        .stream::<String, String>("clean")
        .filter(|_, v| !v.is_empty())
        .to("final");
    let driver = driver::partitioned(
        builder,
        StreamsConfig::new(APP),
        2,
        &[("raw", 2), ("clean", 3)],
    );
    assert_eq!(driver.task_ids().len(), 2 + 3);
    let input = driver.input_topic::<String, String>("raw");
    input.pipe_input(s("a"), s("  x ")).unwrap();
    input.pipe_input(s("b"), s("   ")).unwrap();
    input.pipe_input(s("c"), s("y")).unwrap();
    assert_eq!(
        driver::key_values::<String, String>(&driver, "final"),
        vec![(s("a"), s("x")), (s("c"), s("y"))]
    );
}

/// Adds each record's value to a shared per-key total and forwards the total.
struct Accumulate;

impl Processor<String, i64, String, i64> for Accumulate {
    fn process(
        &mut self,
        r: Record<String, i64>,
        ctx: &mut ProcessorContext<'_, String, i64>,
    ) -> Result<(), StreamsError> {
        let store = ctx.key_value_store::<String, i64>("totals")?;
        let total = store.get(&r.key)?.unwrap_or(0) + r.value;
        store.put(&r.key, &total)?;
        ctx.forward(r.with_value(total))
    }
}

#[test]
fn processors_sharing_a_store_are_in_one_subtopology_and_see_the_same_data() {
    let builder = StreamsBuilder::new();
    driver::add_in_memory_store::<String, i64>(&builder, "totals");
    builder
        .stream::<String, i64>("deposits")
        .process(|| Accumulate, Named::as_("deposit"), &["totals"])
        .to("balances");
    builder
        .stream::<String, i64>("withdrawals")
        .map_values(|v| -v)
        .process(|| Accumulate, Named::as_("withdraw"), &["totals"])
        .to("balances");
    let partitions = [("deposits", 4), ("withdrawals", 4)];
    let driver = driver::partitioned(builder, StreamsConfig::new(APP), 1, &partitions);
    assert_eq!(driver.task_ids().len(), 4);
    let deposits = driver.input_topic::<String, i64>("deposits");
    let withdrawals = driver.input_topic::<String, i64>("withdrawals");
    deposits.pipe_input(s("acct-1"), 100).unwrap();
    deposits.pipe_input(s("acct-2"), 50).unwrap();
    withdrawals.pipe_input(s("acct-1"), 30).unwrap();
    deposits.pipe_input(s("acct-1"), 5).unwrap();
    withdrawals.pipe_input(s("acct-2"), 50).unwrap();
    assert_eq!(
        driver::key_values::<String, i64>(&driver, "balances"),
        vec![
            (s("acct-1"), 100),
            (s("acct-2"), 50),
            (s("acct-1"), 70),
            (s("acct-1"), 75),
            (s("acct-2"), 0),
        ]
    );
}

/// Kafka's WordCount tutorial (`Materialized.as("counts-store")`): the repartition nodes
/// are named after the store, and their generated names still take counter values 4 to 6
/// (`KTABLE-TOSTREAM-0000000007`).
#[test]
fn describe_of_a_count_into_a_named_store_matches_kafkas_word_count() {
    let builder = StreamsBuilder::new();
    builder
        .stream::<String, String>("streams-plaintext-input")
        .flat_map_values(|s: String| {
            s.split_whitespace()
                .map(str::to_lowercase)
                .collect::<Vec<_>>()
        })
        .group_by(|_, w| w.clone())
        .count_with(Materialized::as_("counts-store"))
        .to_stream()
        .to("streams-wordcount-output");
    let text = builder.build().unwrap().describe().to_string();
    let lines = driver::describe_lines(&text);
    let rep = "<application.id>-counts-store-repartition";
    let expected = vec![
        "Topologies:".to_string(),
        "Sub-topology: 0".to_string(),
        "Source: KSTREAM-SOURCE-0000000000 (topics: [streams-plaintext-input])".to_string(),
        "--> KSTREAM-FLATMAPVALUES-0000000001".to_string(),
        "Processor: KSTREAM-FLATMAPVALUES-0000000001 (stores: [])".to_string(),
        "--> KSTREAM-KEY-SELECT-0000000002".to_string(),
        "Processor: KSTREAM-KEY-SELECT-0000000002 (stores: [])".to_string(),
        "--> counts-store-repartition-filter".to_string(),
        "Processor: counts-store-repartition-filter (stores: [])".to_string(),
        "--> counts-store-repartition-sink".to_string(),
        format!("Sink: counts-store-repartition-sink (topic: {rep})"),
        "Sub-topology: 1".to_string(),
        format!("Source: counts-store-repartition-source (topics: [{rep}])"),
        "--> KSTREAM-AGGREGATE-0000000003".to_string(),
        "Processor: KSTREAM-AGGREGATE-0000000003 (stores: [counts-store])".to_string(),
        "--> KTABLE-TOSTREAM-0000000007".to_string(),
        "Processor: KTABLE-TOSTREAM-0000000007 (stores: [])".to_string(),
        "--> KSTREAM-SINK-0000000008".to_string(),
        "Sink: KSTREAM-SINK-0000000008 (topic: streams-wordcount-output)".to_string(),
    ];
    assert_eq!(lines, expected, "\n{text}");
}

/// Kafka's `KStreamImplTest.shouldSupportKeyChangeKTableFromKStream`: `toTable()` after a
/// key change names its node `KSTREAM-TOTABLE-0000000002` (its unused store name takes 3),
/// repartitions through `<node>-repartition` behind a null-key filter, and keeps no store,
/// since nothing reads it; with a store name (`Materialized.as("ItemTable")`) no store name
/// is generated and the node keeps that store.
#[test]
fn describe_of_to_table_after_a_key_change_matches_kafka() {
    for store in [None, Some("ItemTable")] {
        let builder = StreamsBuilder::new();
        let rekeyed = builder
            .stream::<String, String>("input")
            .map(|k: String, v: String| (k.to_uppercase(), v));
        let table = match store {
            None => rekeyed.to_table(),
            Some(name) => rekeyed.to_table_with(
                Named::none(),
                Materialized::as_(name)
                    .with_key_serde(default_serde())
                    .with_value_serde(default_serde()),
            ),
        };
        table.to_stream().to("output");
        let text = builder.build().unwrap().describe().to_string();
        let lines = driver::describe_lines(&text);
        let rep = "<application.id>-KSTREAM-TOTABLE-0000000002-repartition";
        // Without a store name, 3 is the unused store's: the repartition nodes take 4-6.
        let n = |i: u32| format!("{:010}", if store.is_some() { i - 1 } else { i });
        let expected = vec![
            "Topologies:".to_string(),
            "Sub-topology: 0".to_string(),
            "Source: KSTREAM-SOURCE-0000000000 (topics: [input])".to_string(),
            "--> KSTREAM-MAP-0000000001".to_string(),
            "Processor: KSTREAM-MAP-0000000001 (stores: [])".to_string(),
            format!("--> KSTREAM-FILTER-{}", n(5)),
            format!("Processor: KSTREAM-FILTER-{} (stores: [])", n(5)),
            format!("--> KSTREAM-SINK-{}", n(4)),
            format!("Sink: KSTREAM-SINK-{} (topic: {rep})", n(4)),
            "Sub-topology: 1".to_string(),
            format!("Source: KSTREAM-SOURCE-{} (topics: [{rep}])", n(6)),
            "--> KSTREAM-TOTABLE-0000000002".to_string(),
            format!(
                "Processor: KSTREAM-TOTABLE-0000000002 (stores: [{}])",
                store.unwrap_or("")
            ),
            format!("--> KTABLE-TOSTREAM-{}", n(7)),
            format!("Processor: KTABLE-TOSTREAM-{} (stores: [])", n(7)),
            format!("--> KSTREAM-SINK-{}", n(8)),
            format!("Sink: KSTREAM-SINK-{} (topic: output)", n(8)),
        ];
        assert_eq!(lines, expected, "\n{text}");
    }
}
