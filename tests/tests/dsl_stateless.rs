//! Driver tests of the stateless DSL operators: filtering, mapping, branching, merging,
//! sinks, repartitioning, and what every stateless operator keeps (timestamps, headers).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use streams_core::partitioner::partition_for_key;
use streams_core::prelude::*;
use streams_tests::driver;

const APP: &str = "stateless";

fn s(x: &str) -> String {
    x.to_string()
}

fn driver(builder: StreamsBuilder) -> Result<TopologyTestDriver, StreamsError> {
    TopologyTestDriver::new(builder.build()?, StreamsConfig::new(APP))
}

/// Runs `builder`'s topology, pipes the (key, value) `inputs` into "in" in order, and
/// returns every (key, value) written to "out". Panics (failing the test) on any error.
#[allow(clippy::unwrap_used)]
fn in_to_out<V: DefaultSerde + 'static, VIn: ToOwned<Owned: DefaultSerde> + ?Sized>(
    builder: StreamsBuilder,
    inputs: &[(&str, &VIn)],
) -> Vec<(String, V)> {
    let driver = driver(builder).unwrap();
    let input = driver.input_topic::<String, VIn::Owned>("in");
    for (k, v) in inputs {
        input.pipe_input(s(k), (*v).to_owned()).unwrap();
    }
    driver::key_values(&driver, "out")
}

/// Builds `builder`'s topology, checks that its description contains each of `parts`, and
/// starts a driver on it, each (topic, n) of `partitions` with n partitions.
#[allow(clippy::unwrap_used)] // a panic fails the test
fn described_driver(
    builder: StreamsBuilder,
    parts: &[&str],
    partitions: &[(&str, u32)],
) -> TopologyTestDriver {
    let topology = builder.build().unwrap();
    let text = topology.describe().to_string();
    for part in parts {
        assert!(text.contains(part), "`{part}` missing from:\n{text}");
    }
    driver::with_partitions(topology, StreamsConfig::new(APP), partitions)
}

#[test]
fn filter_keeps_matching_records_in_input_order() {
    let builder = StreamsBuilder::new();
    builder
        .stream::<String, i64>("in")
        .filter(|_, v| *v > 10)
        .to("out");
    let inputs = [
        ("a", &5i64),
        ("b", &50),
        ("c", &11),
        ("d", &10),
        ("e", &100),
    ];
    assert_eq!(
        in_to_out::<i64, _>(builder, &inputs),
        vec![(s("b"), 50), (s("c"), 11), (s("e"), 100)]
    );
}

#[test]
fn filter_not_keeps_the_records_the_predicate_rejects() {
    let builder = StreamsBuilder::new();
    builder
        .stream::<String, i64>("in")
        .filter_not(|k, v| k.starts_with('x') || *v < 0)
        .to("out");
    let inputs = [("xa", &1i64), ("b", &-1), ("c", &3), ("d", &0)];
    assert_eq!(
        in_to_out::<i64, _>(builder, &inputs),
        vec![(s("c"), 3), (s("d"), 0)]
    );
}

#[test]
fn filter_named_with_negate_behaves_like_filter_not() {
    let builder = StreamsBuilder::new();
    let src = builder.stream::<String, i64>("in");
    src.filter_named(|_, v| v % 2 == 0, Named::as_("evens"), false)
        .to("evens");
    src.filter_named(|_, v| v % 2 == 0, Named::as_("odds"), true)
        .to("odds");
    let parts = [
        "Processor: evens (stores: [])",
        "Processor: odds (stores: [])",
    ];
    let driver = described_driver(builder, &parts, &[]);
    let input = driver.input_topic::<String, i64>("in");
    input
        .pipe_key_values((1..=6).map(|i| (format!("k{i}"), i)))
        .unwrap();
    for (topic, want) in [("evens", [2, 4, 6]), ("odds", [1, 3, 5])] {
        let got = driver
            .output_topic::<String, i64>(topic)
            .read_values_to_list();
        assert_eq!(got.unwrap(), want, "{topic}");
    }
}

#[test]
fn map_replaces_key_and_value() {
    let builder = StreamsBuilder::new();
    builder
        .stream::<String, String>("in")
        .map(|k, v| (v.to_uppercase(), k.len() as i64))
        .to("out");
    assert_eq!(
        in_to_out::<i64, _>(builder, &[("abc", "eu"), ("a", "us")]),
        vec![(s("EU"), 3), (s("US"), 1)]
    );
}

#[test]
fn map_values_keeps_the_key() {
    let builder = StreamsBuilder::new();
    builder
        .stream::<String, String>("in")
        .map_values(|v| v.len() as i64 * 10)
        .to("out");
    assert_eq!(
        in_to_out::<i64, _>(builder, &[("k1", "hello"), ("k2", "")]),
        vec![(s("k1"), 50), (s("k2"), 0)]
    );
}

#[test]
fn map_values_with_key_sees_the_key_and_keeps_it() {
    let builder = StreamsBuilder::new();
    builder
        .stream::<String, String>("in")
        .map_values_with_key(|k, v| format!("{k}:{v}"), Named::as_("tag"))
        .to("out");
    let driver = described_driver(builder, &["Processor: tag (stores: [])"], &[]);
    let input = driver.input_topic::<String, String>("in");
    input.pipe_input(s("u1"), s("click")).unwrap();
    assert_eq!(
        driver
            .output_topic::<String, String>("out")
            .read_key_value()
            .unwrap(),
        Some((s("u1"), s("u1:click")))
    );
}

#[test]
fn flat_map_emits_zero_or_more_records_with_new_keys() {
    let builder = StreamsBuilder::new();
    builder
        .stream::<String, String>("in")
        .flat_map(|k, v| {
            v.split(',')
                .filter(|p| !p.is_empty())
                .map(|p| (p.to_string(), k.clone()))
                .collect::<Vec<_>>()
        })
        .to("out");
    assert_eq!(
        in_to_out::<String, _>(builder, &[("k1", "a,b,c"), ("k2", ""), ("k3", "d")]),
        vec![
            (s("a"), s("k1")),
            (s("b"), s("k1")),
            (s("c"), s("k1")),
            (s("d"), s("k3")),
        ]
    );
}

#[test]
fn flat_map_values_keeps_the_key_for_every_output() {
    let builder = StreamsBuilder::new();
    builder
        .stream::<String, String>("in")
        .flat_map_values(|v| v.split_whitespace().map(String::from).collect::<Vec<_>>())
        .to("out");
    assert_eq!(
        in_to_out::<String, _>(
            builder,
            &[("s1", "the quick fox"), ("s2", "   "), ("s3", "jumps")]
        ),
        vec![
            (s("s1"), s("the")),
            (s("s1"), s("quick")),
            (s("s1"), s("fox")),
            (s("s3"), s("jumps")),
        ]
    );
}

#[test]
fn select_key_sets_a_key_computed_from_key_and_value() {
    let builder = StreamsBuilder::new();
    builder
        .stream::<String, String>("in")
        .select_key(|k, v| format!("{v}/{k}"))
        .to("out");
    assert_eq!(
        in_to_out::<String, _>(builder, &[("u1", "eu"), ("u2", "us")]),
        vec![(s("eu/u1"), s("eu")), (s("us/u2"), s("us"))]
    );
}

#[test]
fn peek_sees_every_record_and_passes_it_on_unchanged() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    let builder = StreamsBuilder::new();
    builder
        .stream::<String, i64>("in")
        .peek(move |k, v| sink.lock().unwrap().push((k.clone(), *v)))
        .filter(|_, v| *v > 1)
        .to("out");
    let driver = driver(builder).unwrap();
    let input = driver.input_topic::<String, i64>("in");
    input
        .pipe_key_values([(s("a"), 1), (s("b"), 2), (s("c"), 3)])
        .unwrap();
    assert_eq!(
        *seen.lock().unwrap(),
        vec![(s("a"), 1), (s("b"), 2), (s("c"), 3)]
    );
    assert_eq!(
        driver::key_values::<String, i64>(&driver, "out"),
        vec![(s("b"), 2), (s("c"), 3)]
    );
}

#[test]
fn foreach_is_terminal_and_sees_every_record() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    let builder = StreamsBuilder::new();
    let src = builder.stream::<String, i64>("in");
    src.foreach(move |k, v| sink.lock().unwrap().push(format!("{k}={v}")));
    src.to("copy");
    let topology = builder.build().unwrap();
    // The foreach node has no successors.
    let desc = topology.describe();
    let foreach = desc.subtopologies[0]
        .nodes
        .iter()
        .find(|n| n.name.starts_with("KSTREAM-FOREACH-"))
        .unwrap();
    assert!(foreach.successors.is_empty());
    let driver = TopologyTestDriver::new(topology, StreamsConfig::new(APP)).unwrap();
    let input = driver.input_topic::<String, i64>("in");
    input.pipe_input(s("a"), 1).unwrap();
    input.pipe_input(s("b"), 2).unwrap();
    assert_eq!(*seen.lock().unwrap(), vec![s("a=1"), s("b=2")]);
    assert_eq!(
        driver
            .output_topic::<String, i64>("copy")
            .read_values_to_list()
            .unwrap(),
        vec![1, 2]
    );
}

#[test]
fn split_sends_a_record_to_the_first_matching_branch_only() {
    let builder = StreamsBuilder::new();
    let mut branches = builder
        .stream::<String, i64>("in")
        .split(Named::as_("size-"))
        .branch(|_, v| *v > 100, Branched::as_("big"))
        .branch(|_, v| *v > 10, Branched::as_("medium"))
        .default_branch(Branched::as_("small"));
    assert_eq!(
        branches.names(),
        vec!["size-big", "size-medium", "size-small"]
    );
    branches.take("size-big").unwrap().to("big");
    branches.take("size-medium").unwrap().to("medium");
    branches.take("size-small").unwrap().to("small");
    assert!(branches.take("size-big").is_none());
    let driver = driver(builder).unwrap();
    let input = driver.input_topic::<String, i64>("in");
    // 500 matches both "big" and "medium": it goes to "big" only.
    for (k, v) in [
        ("a", 500),
        ("b", 50),
        ("c", 5),
        ("d", 101),
        ("e", 11),
        ("f", 10),
    ] {
        input.pipe_input(s(k), v).unwrap();
    }
    let read = |t: &str| driver::key_values::<String, i64>(&driver, t);
    assert_eq!(read("big"), vec![(s("a"), 500), (s("d"), 101)]);
    assert_eq!(read("medium"), vec![(s("b"), 50), (s("e"), 11)]);
    assert_eq!(read("small"), vec![(s("c"), 5), (s("f"), 10)]);
}

#[test]
fn split_without_default_branch_drops_unmatched_records() {
    let builder = StreamsBuilder::new();
    let mut branches = builder
        .stream::<String, String>("in")
        .split(Named::as_("lang-"))
        .branch(|_, v| v.starts_with("en"), Branched::as_("en"))
        .branch(|_, v| v.starts_with("fr"), Branched::as_("fr"))
        .no_default_branch();
    assert_eq!(branches.names(), vec!["lang-en", "lang-fr"]);
    let en = branches.take("lang-en").unwrap();
    let fr = branches.take("lang-fr").unwrap();
    en.to("en");
    fr.to("fr");
    let driver = driver(builder).unwrap();
    let input = driver.input_topic::<String, String>("in");
    for v in ["en-hello", "de-hallo", "fr-salut", "es-hola", "en-bye"] {
        input.pipe_input(s("k"), s(v)).unwrap();
    }
    assert_eq!(
        driver
            .output_topic::<String, String>("en")
            .read_values_to_list()
            .unwrap(),
        vec![s("en-hello"), s("en-bye")]
    );
    assert_eq!(
        driver
            .output_topic::<String, String>("fr")
            .read_values_to_list()
            .unwrap(),
        vec![s("fr-salut")]
    );
    assert_eq!(driver.metrics().processed, 5);
}

#[test]
fn split_generates_branch_names_from_split_name_and_position() {
    // Unnamed split: the generated split name is the prefix; unnamed branches are numbered
    // from 1 in order, the unnamed default branch is "0".
    let builder = StreamsBuilder::new();
    let branches = builder
        .stream::<String, i64>("in") // KSTREAM-SOURCE-0000000000
        .split(Named::none()) // KSTREAM-BRANCH-0000000001
        .branch(|_, v| *v > 0, Branched::default())
        .branch(|_, v| *v < 0, Branched::default())
        .default_branch(Branched::default());
    assert_eq!(
        branches.names(),
        vec![
            "KSTREAM-BRANCH-00000000010",
            "KSTREAM-BRANCH-00000000011",
            "KSTREAM-BRANCH-00000000012",
        ]
    );

    // Named split, mixing named and unnamed branches: the position counts every branch.
    let builder = StreamsBuilder::new();
    let mut branches = builder
        .stream::<String, i64>("in")
        .split(Named::as_("sign-"))
        .branch(|_, v| *v > 0, Branched::as_("pos"))
        .branch(|_, v| *v < 0, Branched::default())
        .default_branch(Branched::default());
    assert_eq!(branches.names(), vec!["sign-0", "sign-2", "sign-pos"]);
    branches.take("sign-pos").unwrap().to("pos");
    branches.take("sign-2").unwrap().to("neg");
    branches.take("sign-0").unwrap().to("zero");
    let parts =
        ["sign-", "sign-pos", "sign-2", "sign-0"].map(|n| format!("Processor: {n} (stores: [])"));
    let driver = described_driver(builder, &parts.each_ref().map(String::as_str), &[]);
    let input = driver.input_topic::<String, i64>("in");
    for v in [3, -3, 0] {
        input.pipe_input(s("k"), v).unwrap();
    }
    for (topic, expected) in [("pos", 3), ("neg", -3), ("zero", 0)] {
        assert_eq!(
            driver
                .output_topic::<String, i64>(topic)
                .read_values_to_list()
                .unwrap(),
            vec![expected],
            "{topic}"
        );
    }
}

#[test]
fn merge_is_the_union_of_both_inputs() {
    let builder = StreamsBuilder::new();
    let a = builder.stream::<String, String>("a");
    let b = builder.stream::<String, String>("b");
    a.merge(&b).map_values(|v| v.to_uppercase()).to("out");
    let driver = driver(builder).unwrap();
    let ia = driver.input_topic::<String, String>("a");
    let ib = driver.input_topic::<String, String>("b");
    ia.pipe_input(s("k1"), s("a1")).unwrap();
    ib.pipe_input(s("k2"), s("b1")).unwrap();
    ia.pipe_input(s("k3"), s("a2")).unwrap();
    ib.pipe_input(s("k4"), s("b2")).unwrap();
    assert_eq!(
        driver::key_values::<String, String>(&driver, "out"),
        vec![
            (s("k1"), s("A1")),
            (s("k2"), s("B1")),
            (s("k3"), s("A2")),
            (s("k4"), s("B2")),
        ]
    );
}

#[test]
fn merge_with_a_rekeyed_stream_is_repartitioned_before_grouping() {
    let builder = StreamsBuilder::new();
    // "a" carries (user, page); re-keyed by page. "b" is already keyed by page.
    let a = builder
        .stream::<String, String>("a")
        .select_key(|_, page| page.clone());
    let b = builder.stream::<String, String>("b");
    a.merge(&b)
        .group_by_key()
        .count_with(Materialized::as_("views"))
        .to_stream()
        .to("out");
    let driver = driver::partitioned(builder, StreamsConfig::new(APP), 2, &[("a", 4), ("b", 4)]);
    let ia = driver.input_topic::<String, String>("a");
    let ib = driver.input_topic::<String, String>("b");
    for user in ["u1", "u2", "u3", "u4", "u5"] {
        ia.pipe_input(s(user), s("/home")).unwrap();
    }
    ia.pipe_input(s("u1"), s("/cart")).unwrap();
    ib.pipe_input(s("/home"), s("x")).unwrap();
    ib.pipe_input(s("/cart"), s("y")).unwrap();
    let counts = driver
        .output_topic::<String, Option<i64>>("out")
        .read_key_values_to_map()
        .unwrap();
    assert_eq!(counts[&s("/home")], Some(6));
    assert_eq!(counts[&s("/cart")], Some(2));
    let store = driver.key_value_store::<String, i64>("views").unwrap();
    let mut all = store.all().unwrap();
    all.sort();
    assert_eq!(all, vec![(s("/cart"), 2), (s("/home"), 6)]);
}

#[test]
fn to_writes_to_several_fixed_topics_with_explicit_serdes() {
    use streams_core::serde::JsonSerde;
    let builder = StreamsBuilder::new();
    let src = builder.stream::<String, i64>("in");
    src.to("plain");
    src.to_with(
        "json",
        Produced::with(default_serde(), Arc::new(JsonSerde::<i64>::new())).with_name("json-sink"),
    );
    let driver = described_driver(builder, &["Sink: json-sink (topic: json)"], &[]);
    let input = driver.input_topic::<String, i64>("in");
    input.pipe_input_at(s("k"), 42, 1_234).unwrap();
    let plain = driver
        .output_topic::<String, i64>("plain")
        .read_record()
        .unwrap()
        .unwrap();
    assert_eq!(
        (plain.key.as_str(), plain.value, plain.timestamp),
        ("k", 42, 1_234)
    );
    // Bytes on the wire: big-endian i64 for the default serde, text for JSON.
    let raw = driver
        .output_topic::<String, Vec<u8>>("plain")
        .read_value()
        .unwrap()
        .unwrap();
    assert_eq!(raw, 42i64.to_be_bytes().to_vec());
    assert_eq!(
        driver
            .output_topic::<String, String>("json")
            .read_value()
            .unwrap(),
        Some(s("42"))
    );
}

#[test]
fn to_dynamic_chooses_a_topic_per_record() {
    let builder = StreamsBuilder::new();
    builder.stream::<String, String>("events").to_dynamic(
        |k, v, ctx| {
            let from = ctx
                .metadata
                .as_ref()
                .map(|m| m.topic.clone())
                .unwrap_or_default();
            format!("{from}-{v}-{}", k.len())
        },
        Produced::new(),
    );
    let driver = described_driver(builder, &["(extractor)"], &[]);
    let input = driver.input_topic::<String, String>("events");
    input.pipe_input(s("a"), s("eu")).unwrap();
    input.pipe_input(s("bb"), s("us")).unwrap();
    input.pipe_input(s("c"), s("eu")).unwrap();
    assert_eq!(
        driver::key_values::<String, String>(&driver, "events-eu-1"),
        vec![(s("a"), s("eu")), (s("c"), s("eu"))]
    );
    assert_eq!(
        driver::key_values::<String, String>(&driver, "events-us-2"),
        vec![(s("bb"), s("us"))]
    );
}

/// Keys whose partitions (of 4) cover every partition.
fn keys_over_partitions(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("key-{i}")).collect()
}

/// Routes each record of `stream` to "seen-in-<p>", p being the partition of the task that
/// processed it.
#[allow(clippy::unwrap_used)] // every record processed has metadata: a panic fails the test
fn to_seen_in_partition(stream: &KStream<String, String>) {
    stream.to_dynamic(
        |_, _, ctx| format!("seen-in-{}", ctx.metadata.as_ref().unwrap().partition),
        Produced::new(),
    );
}

/// The keys routed to "seen-in-<p>" for each of the `N` partitions, each checked to be a key
/// of partition p.
#[allow(clippy::unwrap_used)] // a panic fails the test
fn keys_seen_per_partition<const N: usize>(driver: &TopologyTestDriver) -> [Vec<String>; N] {
    std::array::from_fn(|p| {
        let keys = driver
            .output_topic::<String, String>(&format!("seen-in-{p}"))
            .read_keys_to_list()
            .unwrap();
        for k in &keys {
            assert_eq!(partition_for_key(k.as_bytes(), N as u32) as usize, p, "{k}");
        }
        keys
    })
}

#[test]
fn repartition_with_puts_each_record_in_the_partition_of_its_key() {
    let builder = StreamsBuilder::new();
    let rekeyed = builder
        .stream::<String, String>("in")
        .select_key(|_, v| v.clone())
        .repartition_with(
            Repartitioned::as_("by-value")
                .with_number_of_partitions(4)
                .with_key_serde(default_serde())
                .with_value_serde(default_serde()),
        );
    to_seen_in_partition(&rekeyed);
    rekeyed.to("out");
    let parts = [
        "Sink: by-value-repartition-sink (topic: <application.id>-by-value-repartition)",
        "Source: by-value-repartition-source (topics: [<application.id>-by-value-repartition])",
    ];
    // The input has 1 partition; the repartition topic has the 4 we asked for.
    let driver = described_driver(builder, &parts, &[("out", 4)]);
    assert_eq!(
        driver.partition_count(&format!("{APP}-by-value-repartition")),
        4
    );
    assert_eq!(driver.task_ids().len(), 1 + 4);

    let values = keys_over_partitions(40);
    let input = driver.input_topic::<String, String>("in");
    for (i, v) in values.iter().enumerate() {
        input.pipe_input(format!("orig-{i}"), v.clone()).unwrap();
    }
    let expected_partition = |k: &str| partition_for_key(k.as_bytes(), 4);
    let out = driver.output_topic::<String, String>("out");
    let mut used = [0usize; 4];
    for v in &values {
        let r = out.read_test_record().unwrap().unwrap();
        assert_eq!(&r.record.key, v);
        assert_eq!(r.partition, expected_partition(v), "{v}");
        used[r.partition as usize] += 1;
    }
    assert!(out.is_empty());
    assert!(used.iter().all(|&n| n > 0), "{used:?}");
    // Each record was processed by the task of its key's partition.
    let seen = keys_seen_per_partition::<4>(&driver);
    assert_eq!(seen.map(|keys| keys.len()), used);
}

#[test]
fn repartition_defaults_to_a_generated_name_and_the_upstream_partition_count() {
    let builder = StreamsBuilder::new();
    let rekeyed = builder
        .stream::<String, String>("in") // 0
        .select_key(|_, v| v.clone()) // 1
        .repartition(); // 2, sink 3, source 4
    to_seen_in_partition(&rekeyed); // 5
    let parts = [
        "Sink: KSTREAM-SINK-0000000003 (topic: <application.id>-KSTREAM-REPARTITION-0000000002-repartition)",
    ];
    let driver = described_driver(builder, &parts, &[("in", 3)]);
    let topic = format!("{APP}-KSTREAM-REPARTITION-0000000002-repartition");
    assert_eq!(driver.partition_count(&topic), 3);
    assert_eq!(driver.task_ids().len(), 3 + 3);
    let input = driver.input_topic::<String, String>("in");
    let values = keys_over_partitions(20);
    input
        .pipe_key_values(values.iter().map(|v| (format!("o-{v}"), v.clone())))
        .unwrap();
    let mut seen: Vec<String> = keys_seen_per_partition::<3>(&driver).concat();
    seen.sort();
    let mut expected = values.clone();
    expected.sort();
    assert_eq!(seen, expected);
}

#[test]
fn stateless_operators_keep_timestamps_and_headers() {
    let builder = StreamsBuilder::new();
    builder
        .stream::<String, String>("in")
        .filter(|_, v| !v.is_empty())
        .map_values(|v| v.to_uppercase())
        .flat_map_values(|v| v.split(' ').map(String::from).collect::<Vec<_>>())
        .select_key(|_, v| v.to_lowercase())
        .map(|k, v| (k, format!("{v}!")))
        .peek(|_, _| {})
        .repartition_with(
            Repartitioned::as_("keep")
                .with_key_serde(default_serde())
                .with_value_serde(default_serde()),
        )
        .flat_map(|k, v| vec![(k.clone(), v.clone()), (k + "2", v)])
        .to("out");
    let driver = driver(builder).unwrap();
    let input = driver.input_topic::<String, String>("in");
    let mut headers = Headers::new();
    headers
        .add("trace-id", Some(b"t-1".to_vec()))
        .add("nullable", None);
    input
        .pipe_record(Record::new(s("k"), s("a b"), 7_000).with_headers(headers.clone()))
        .unwrap();
    input
        .pipe_record(Record::new(s("k"), s(""), 8_000).with_headers(headers.clone()))
        .unwrap();
    let out = driver
        .output_topic::<String, String>("out")
        .read_records_to_list()
        .unwrap();
    let kvs: Vec<(String, String)> = out
        .iter()
        .map(|r| (r.key.clone(), r.value.clone()))
        .collect();
    assert_eq!(
        kvs,
        vec![
            (s("a"), s("A!")),
            (s("a2"), s("A!")),
            (s("b"), s("B!")),
            (s("b2"), s("B!")),
        ]
    );
    for r in &out {
        assert_eq!(r.timestamp, 7_000);
        assert_eq!(r.headers, headers);
    }
}

#[test]
fn a_record_fanned_out_to_several_children_reaches_each_of_them() {
    let builder = StreamsBuilder::new();
    let src = builder.stream::<String, i64>("in");
    src.map_values(|v| v + 1).to("plus");
    src.map_values(|v| v * 10).to("times");
    src.filter(|_, v| *v > 1).to("big");
    let driver = driver(builder).unwrap();
    let input = driver.input_topic::<String, i64>("in");
    input.pipe_key_values([(s("a"), 1), (s("b"), 2)]).unwrap();
    let read = |t: &str| driver::key_values::<String, i64>(&driver, t);
    assert_eq!(read("plus"), vec![(s("a"), 2), (s("b"), 3)]);
    assert_eq!(read("times"), vec![(s("a"), 10), (s("b"), 20)]);
    assert_eq!(read("big"), vec![(s("b"), 2)]);
}

#[test]
fn a_source_may_read_several_topics() {
    let builder = StreamsBuilder::new();
    builder
        .stream_with::<String, String>(
            &["t1", "t2"],
            Consumed::with(default_serde(), default_serde()),
        )
        .to_dynamic(
            |_, v, ctx| format!("{}-{v}", ctx.metadata.as_ref().unwrap().topic),
            Produced::new(),
        );
    let driver = driver(builder).unwrap();
    driver
        .input_topic::<String, String>("t1")
        .pipe_input(s("k"), s("x"))
        .unwrap();
    driver
        .input_topic::<String, String>("t2")
        .pipe_input(s("k"), s("y"))
        .unwrap();
    let mut got = HashMap::new();
    for t in ["t1-x", "t2-y", "t1-y", "t2-x"] {
        got.insert(
            t,
            driver
                .output_topic::<String, String>(t)
                .read_values_to_list()
                .unwrap()
                .len(),
        );
    }
    assert_eq!(got["t1-x"], 1);
    assert_eq!(got["t2-y"], 1);
    assert_eq!(got["t1-y"], 0);
    assert_eq!(got["t2-x"], 0);
}

#[test]
fn every_operator_can_be_named() {
    let builder = StreamsBuilder::new();
    let a = builder.stream_with::<String, String>(
        &["a"],
        Consumed::with(default_serde(), default_serde()).with_name("source-a"),
    );
    let b = builder.stream_with::<String, String>(
        &["b"],
        Consumed::with(default_serde(), default_serde()).with_name("source-b"),
    );
    let merged = a.merge_named(&b, Named::as_("merge"));
    merged
        .filter_named(|_, v| !v.is_empty(), Named::as_("non-empty"), false)
        .map_named(|k, v| (v, k), Named::as_("swap"))
        .map_values_with_key(|_, v| v, Named::as_("same"))
        .flat_map_named(|k, v| vec![(k, v)], Named::as_("one-to-one"))
        .flat_map_values_named(|v| vec![v], Named::as_("values-one-to-one"))
        .select_key_named(|k, _| k.clone(), Named::as_("rekey"))
        .peek_named(|_, _| {}, Named::as_("look"))
        .to_table_with(
            Named::as_("as-table"),
            Materialized::as_("table-store")
                .with_key_serde(default_serde())
                .with_value_serde(default_serde()),
        )
        .filter_named(|_, _| true, Named::as_("table-filter"), false)
        .map_values_named(|v| v.len() as i64, Named::as_("lengths"))
        .to_stream_named(Named::as_("changes"))
        .to_with(
            "out",
            Produced::with(default_serde(), default_serde()).with_name("sink"),
        );
    merged.foreach_named(|_, _| {}, Named::as_("each"));
    let text = builder.build().unwrap().describe().to_string();
    for name in [
        "source-a",
        "source-b",
        "merge",
        "non-empty",
        "swap",
        "same",
        "one-to-one",
        "values-one-to-one",
        "rekey",
        "look",
        "as-table",
        "table-store",
        "table-filter",
        "lengths",
        "changes",
        "sink",
        "each",
    ] {
        assert!(text.contains(name), "`{name}` missing from:\n{text}");
    }
    // A named to_table after a key change repartitions through `<name>-repartition` (the
    // node's name, not the store's, as Kafka's `toTable` names it).
    assert!(text.contains("as-table-repartition"), "{text}");
    assert!(!text.contains("table-store-repartition"), "{text}");
}
