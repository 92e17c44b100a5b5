//! Driver tests of cogroup (Kafka Streams' KIP-150: `KGroupedStream::cogroup`,
//! `CogroupedKStream`, its time, sliding and session windowed forms).
//!
//! Results are compared with reference computations written in this file (maps folded step
//! by step, windows and sessions from their definitions), never with the framework's own
//! output: two and three inputs of different value types, the record cache on and off, 1
//! and 3 partitions, re-keyed inputs (repartitioned), windows with grace and late records,
//! sessions. The last part transcribes scenarios of Kafka Streams' own unit tests
//! (apache/kafka, `streams/src/test/java/org/apache/kafka/streams/kstream/internals/`
//! `CogroupedKStreamImplTest` and `TimeWindowedCogroupedKStreamImplTest`): their inputs and
//! expected outputs, with `MockAggregator.TOSTRING_ADDER` (`agg + "+" + v`),
//! `TOSTRING_REMOVER` (`agg + "-" + v`) and `MockInitializer.STRING_INIT` (`"0"`).

// Test helpers outside #[test] functions may unwrap too: a panic fails the test.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use streams_core::partitioner::partition_for_key;
use streams_core::prelude::*;
use streams_core::topology::NodeType;
use streams_core::window::{SessionWindows, SlidingWindows, TimeWindows};
use streams_tests::driver;

const APP: &str = "app";

fn s(x: &str) -> String {
    x.to_string()
}

/// The record cache on (the default 10 MiB) and off.
fn configs() -> [(&'static str, StreamsConfig); 2] {
    [
        ("cache on", StreamsConfig::new(APP)),
        ("cache off", StreamsConfig::new(APP).with_cache_max_bytes(0)),
    ]
}

/// One run of a randomized test: the record cache on or off, 1 or 3 partitions.
struct Run {
    label: String,
    cache: bool,
    config: StreamsConfig,
    partitions: u32,
}

/// Each of [`configs`] with 1 and with 3 partitions.
fn runs() -> Vec<Run> {
    [1, 3]
        .into_iter()
        .flat_map(|partitions| {
            configs().into_iter().map(move |(label, config)| Run {
                label: format!("{label}, {partitions} partitions"),
                cache: label == "cache on",
                config,
                partitions,
            })
        })
        .collect()
}

impl Run {
    /// A driver of `topology` with this run's config, `topics` with its partition count.
    fn driver(&self, topology: Topology, topics: &[&str]) -> TopologyTestDriver {
        driver(topology, self.config.clone(), topics, self.partitions)
    }

    /// Checks the updates written to "out" against `want` (see [`check_updates`]).
    fn check_out<V>(&self, driver: &TopologyTestDriver, want: &[(String, Option<V>, i64)])
    where
        V: DefaultSerde + PartialEq + std::fmt::Debug + Clone,
    {
        let got = driver::records(&driver.output_topic::<String, Option<V>>("out"));
        check_updates(&self.label, self.cache, by_key(got), by_key(want.to_vec()));
    }
}

/// A store `name` with the default value serde (for aggregates of another type than the
/// input values).
fn store<V: DefaultSerde>(name: &str) -> Materialized<String, V> {
    Materialized::as_(name).with_value_serde(default_serde())
}

/// A driver whose `topics` have `partitions` partitions each.
fn driver(
    topology: Topology,
    config: StreamsConfig,
    topics: &[&str],
    partitions: u32,
) -> TopologyTestDriver {
    let partitions: Vec<(&str, u32)> = topics.iter().map(|t| (*t, partitions)).collect();
    driver::with_partitions(topology, config, &partitions)
}

/// The (value, timestamp) sequence of each key, in order (records of one key share a
/// partition, so their order is kept whatever the partition count).
fn by_key<K: Ord, V>(records: Vec<(K, V, i64)>) -> BTreeMap<K, Vec<(V, i64)>> {
    let mut m: BTreeMap<K, Vec<(V, i64)>> = BTreeMap::new();
    for (k, v, ts) in records {
        m.entry(k).or_default().push((v, ts));
    }
    m
}

/// A small deterministic generator (xorshift64*).
struct Gen(u64);

impl Gen {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n
    }
}

/// A keyed aggregation computed step by step: each record folds into its key's aggregate
/// (starting at `init`), and the result's timestamp is the largest so far.
struct Reference<VA> {
    init: VA,
    state: HashMap<String, (VA, i64)>,
    /// Every update, in processing order.
    updates: Vec<(String, Option<VA>, i64)>,
}

impl<VA: Clone> Reference<VA> {
    fn new(init: VA) -> Self {
        Self {
            init,
            state: HashMap::new(),
            updates: Vec::new(),
        }
    }

    fn apply(&mut self, key: &str, ts: i64, f: impl FnOnce(VA) -> VA) {
        let (agg, old_ts) = self
            .state
            .remove(key)
            .unwrap_or_else(|| (self.init.clone(), i64::MIN));
        let new = (f(agg), old_ts.max(ts));
        self.updates.push((s(key), Some(new.0.clone()), new.1));
        self.state.insert(s(key), new);
    }

    /// Checks that the key-value store `store` holds the final aggregates.
    fn check_store(&self, label: &str, driver: &TopologyTestDriver, store: &str)
    where
        VA: PartialEq + std::fmt::Debug + 'static,
    {
        let content: BTreeMap<String, VA> = driver
            .key_value_store::<String, VA>(store)
            .unwrap()
            .all()
            .unwrap()
            .into_iter()
            .collect();
        let finals: BTreeMap<String, VA> = self
            .state
            .iter()
            .map(|(k, (v, _))| (k.clone(), v.clone()))
            .collect();
        assert_eq!(content, finals, "{label}: store");
    }
}

/// Checks a key's emitted updates against the reference: all of them with the cache off;
/// with the cache on, a subsequence (updates within one commit may be coalesced) that ends
/// with the final value.
fn check_updates<V: PartialEq + std::fmt::Debug + Clone>(
    label: &str,
    cache: bool,
    got: BTreeMap<String, Vec<(V, i64)>>,
    want: BTreeMap<String, Vec<(V, i64)>>,
) {
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>(),
        "{label}: keys"
    );
    for (k, want) in &want {
        let got = &got[k];
        if !cache {
            assert_eq!(got, want, "{label}: updates of {k}");
            continue;
        }
        assert_eq!(got.last(), want.last(), "{label}: last update of {k}");
        let mut rest = want.iter();
        for g in got {
            assert!(
                rest.any(|w| w == g),
                "{label}: {k}: {g:?} is not a later state of {want:?}"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------
// Key-value cogroups against reference folds
// ---------------------------------------------------------------------------------------

#[test]
fn two_inputs_of_different_value_types_fold_into_one_store() {
    for run in runs() {
        let builder = StreamsBuilder::new();
        let views = builder.stream::<String, String>("views").group_by_key();
        let buys = builder.stream::<String, i64>("buys").group_by_key();
        views
            .cogroup(|_, page: String, log: String| format!("{log}v{page};"))
            .cogroup(&buys, |_, amount: i64, log: String| {
                format!("{log}b{amount};")
            })
            .aggregate_with(String::new, Named::none(), store("activity"))
            .to_stream()
            .to("out");
        let topology = builder.build().unwrap();
        // One store, one sub-topology: both inputs update the same store directly.
        assert_eq!(topology.store_names(), vec!["activity"]);
        assert_eq!(topology.describe().subtopologies.len(), 1);
        assert!(topology.repartition_topics(APP).is_empty());
        let driver = run.driver(topology, &["views", "buys"]);
        let views_in = driver.input_topic::<String, String>("views");
        let buys_in = driver.input_topic::<String, i64>("buys");
        let mut reference = Reference::new(String::new());
        let mut g = Gen(7);
        for i in 0..200i64 {
            let key = format!("k{}", g.below(7));
            // Mostly increasing timestamps, some out of order.
            let ts = 1_000 + i * 10 - g.below(3) as i64 * 40;
            if g.below(2) == 0 {
                let page = format!("/p{}", g.below(5));
                views_in
                    .pipe_input_at(key.clone(), page.clone(), ts)
                    .unwrap();
                reference.apply(&key, ts, |log| format!("{log}v{page};"));
            } else {
                let amount = g.below(100) as i64;
                buys_in.pipe_input_at(key.clone(), amount, ts).unwrap();
                reference.apply(&key, ts, |log| format!("{log}b{amount};"));
            }
        }
        run.check_out(&driver, &reference.updates);
        reference.check_store(&run.label, &driver, "activity");
    }
}

#[test]
fn three_inputs_of_three_value_types() {
    for run in runs() {
        let builder = StreamsBuilder::new();
        let a = builder.stream::<String, String>("a").group_by_key();
        let b = builder.stream::<String, i64>("b").group_by_key();
        let c = builder.stream::<String, f64>("c").group_by_key();
        a.cogroup(|_, v: String, log: String| format!("{log}a{v}"))
            .cogroup(&b, |_, v: i64, log: String| format!("{log}b{v}"))
            .cogroup(&c, |_, v: f64, log: String| format!("{log}c{v:.1}"))
            .aggregate(|| s(">"))
            .to_stream()
            .to("out");
        let topology = builder.build().unwrap();
        let processors = topology.describe().subtopologies[0]
            .nodes
            .iter()
            .filter(|n| n.name.starts_with("COGROUPKSTREAM-AGGREGATE-"))
            .count();
        assert_eq!(processors, 3, "one aggregation node per input");
        let driver = run.driver(topology, &["a", "b", "c"]);
        let a_in = driver.input_topic::<String, String>("a");
        let b_in = driver.input_topic::<String, i64>("b");
        let c_in = driver.input_topic::<String, f64>("c");
        let mut reference = Reference::new(s(">"));
        let mut g = Gen(42);
        for i in 0..150i64 {
            let key = format!("k{}", g.below(5));
            let ts = 500 + i * 7;
            match g.below(3) {
                0 => {
                    let v = format!("{}", g.below(9));
                    a_in.pipe_input_at(key.clone(), v.clone(), ts).unwrap();
                    reference.apply(&key, ts, |log| format!("{log}a{v}"));
                }
                1 => {
                    let v = g.below(50) as i64 - 25;
                    b_in.pipe_input_at(key.clone(), v, ts).unwrap();
                    reference.apply(&key, ts, |log| format!("{log}b{v}"));
                }
                _ => {
                    let v = g.below(100) as f64 / 4.0;
                    c_in.pipe_input_at(key.clone(), v, ts).unwrap();
                    reference.apply(&key, ts, |log| format!("{log}c{v:.1}"));
                }
            }
        }
        run.check_out(&driver, &reference.updates);
    }
}

#[test]
fn batches_are_coalesced_by_the_cache_and_end_at_the_reference() {
    for run in runs() {
        let builder = StreamsBuilder::new();
        let adds = builder.stream::<String, i64>("adds").group_by_key();
        let subs = builder.stream::<String, String>("subs").group_by_key();
        adds.cogroup(|_, v: i64, sum: i64| sum + v)
            .cogroup(&subs, |_, v: String, sum: i64| sum - v.len() as i64)
            .aggregate_with(|| 0, Named::as_("sums"), store("sums-store"))
            .to_stream()
            .to("out");
        let driver = run.driver(builder.build().unwrap(), &["adds", "subs"]);
        let mut reference = Reference::new(0i64);
        let mut g = Gen(3);
        let mut ts = 0;
        for round in 0..6 {
            let mut add_batch = Vec::new();
            for _ in 0..30 {
                ts += 5;
                let key = format!("k{}", g.below(4));
                let v = g.below(10) as i64;
                reference.apply(&key, ts, |sum| sum + v);
                add_batch.push(Record::new(key, v, ts));
            }
            driver
                .input_topic::<String, i64>("adds")
                .pipe_records(add_batch)
                .unwrap();
            let mut sub_batch = Vec::new();
            for _ in 0..20 {
                ts += 5;
                let key = format!("k{}", g.below(4));
                let v = "x".repeat(g.below(4) as usize + round);
                let len = v.len() as i64;
                reference.apply(&key, ts, |sum| sum - len);
                sub_batch.push(Record::new(key, v, ts));
            }
            driver
                .input_topic::<String, String>("subs")
                .pipe_records(sub_batch)
                .unwrap();
        }
        let got = by_key(driver::records(
            &driver.output_topic::<String, Option<i64>>("out"),
        ));
        let emitted: usize = got.values().map(Vec::len).sum();
        let label = &run.label;
        if run.cache {
            // At most one update per key and batch (12 batches, 4 keys).
            assert!(emitted <= 12 * 4, "{label}: {emitted} updates");
        } else {
            assert_eq!(emitted, 6 * 50, "{label}: one update per record");
        }
        check_updates(label, run.cache, got, by_key(reference.updates.clone()));
        reference.check_store(label, &driver, "sums-store");
    }
}

#[test]
fn a_rekeyed_input_goes_through_its_own_repartition_topic() {
    for run in runs() {
        let builder = StreamsBuilder::new();
        // order id -> "customer:amount", re-keyed by customer.
        let orders = builder
            .stream::<String, String>("orders")
            .group_by(|_, v: &String| v.split(':').next().unwrap().to_string());
        // customer -> amount paid.
        let payments = builder.stream::<String, i64>("payments").group_by_key();
        orders
            .cogroup(|_, order: String, due: i64| {
                due + order.split(':').nth(1).unwrap().parse::<i64>().unwrap()
            })
            .cogroup(&payments, |_, paid: i64, due: i64| due - paid)
            .aggregate_with(|| 0, Named::none(), store("due"))
            .to_stream()
            .to("out");
        let topology = builder.build().unwrap();
        assert_eq!(
            topology.repartition_topics(APP),
            vec![format!("{APP}-due-repartition")]
        );
        assert_eq!(topology.describe().subtopologies.len(), 2);
        let driver = run.driver(topology, &["orders", "payments"]);
        let orders_in = driver.input_topic::<String, String>("orders");
        let payments_in = driver.input_topic::<String, i64>("payments");
        let mut reference = Reference::new(0i64);
        let mut g = Gen(99);
        for i in 0..160i64 {
            let customer = format!("c{}", g.below(6));
            let ts = 10_000 + i * 100 - g.below(2) as i64 * 250;
            let amount = g.below(90) as i64 + 1;
            if g.below(3) > 0 {
                let order_id = format!("o{i}");
                orders_in
                    .pipe_input_at(order_id, format!("{customer}:{amount}"), ts)
                    .unwrap();
                reference.apply(&customer, ts, |due| due + amount);
            } else {
                payments_in
                    .pipe_input_at(customer.clone(), amount, ts)
                    .unwrap();
                reference.apply(&customer, ts, |due| due - amount);
            }
        }
        run.check_out(&driver, &reference.updates);
        reference.check_store(&run.label, &driver, "due");
        // The repartition topic has the inputs' partition count (co-partitioned).
        assert_eq!(
            driver.partition_count(&format!("{APP}-due-repartition")),
            run.partitions
        );
    }
}

#[test]
fn a_named_grouping_names_the_repartition_topic_and_both_inputs_may_be_rekeyed() {
    let builder = StreamsBuilder::new();
    let a = builder
        .stream::<String, i64>("a")
        .select_key(|_, v| format!("k{}", v % 3))
        .group_by_key_with(Grouped::as_("by-mod-a"));
    let b = builder.stream::<String, i64>("b").group_by_with(
        |_, v: &i64| format!("k{}", v % 3),
        Grouped::as_("by-mod-b").with_key_serde(default_serde()),
    );
    a.cogroup(|_, v: i64, sum: i64| sum + v)
        .cogroup(&b, |_, v: i64, sum: i64| sum + 100 * v)
        .aggregate(|| 0)
        .to_stream()
        .to("out");
    let topology = builder.build().unwrap();
    let mut topics = topology.repartition_topics(APP);
    topics.sort();
    assert_eq!(
        topics,
        vec![
            format!("{APP}-by-mod-a-repartition"),
            format!("{APP}-by-mod-b-repartition")
        ]
    );
    let driver = driver(topology, StreamsConfig::new(APP), &["a", "b"], 3);
    let mut reference = Reference::new(0i64);
    for (i, v) in [4i64, 7, 9, 2, 5, 6, 1].into_iter().enumerate() {
        let ts = i as i64 * 10;
        let key = format!("k{}", v % 3);
        if i % 2 == 0 {
            driver
                .input_topic::<String, i64>("a")
                .pipe_input_at(s("x"), v, ts)
                .unwrap();
            reference.apply(&key, ts, |sum| sum + v);
        } else {
            driver
                .input_topic::<String, i64>("b")
                .pipe_input_at(s("y"), v, ts)
                .unwrap();
            reference.apply(&key, ts, |sum| sum + 100 * v);
        }
    }
    assert_eq!(
        by_key(driver::records(
            &driver.output_topic::<String, Option<i64>>("out")
        )),
        by_key(reference.updates)
    );
}

#[test]
fn two_unnamed_rekeyed_inputs_are_refused_like_in_kafka() {
    let builder = StreamsBuilder::new();
    let a = builder
        .stream::<String, i64>("a")
        .group_by(|_, v: &i64| v.to_string());
    let b = builder
        .stream::<String, i64>("b")
        .group_by(|_, v: &i64| v.to_string());
    a.cogroup(|_, v: i64, sum: i64| sum + v)
        .cogroup(&b, |_, v: i64, sum: i64| sum + v)
        .aggregate(|| 0);
    let err = builder.build().unwrap_err().to_string();
    assert!(err.contains("two inputs would be repartitioned"), "{err}");
}

#[test]
fn inputs_must_be_copartitioned() {
    let builder = StreamsBuilder::new();
    let a = builder.stream::<String, i64>("a").group_by_key();
    let b = builder.stream::<String, i64>("b").group_by_key();
    a.cogroup(|_, v: i64, sum: i64| sum + v)
        .cogroup(&b, |_, v: i64, sum: i64| sum + v)
        .aggregate(|| 0);
    let err = TopologyTestDriver::builder(builder.build().unwrap(), StreamsConfig::new(APP))
        .partitions("a", 1)
        .partitions("b", 3)
        .build()
        .unwrap_err()
        .to_string();
    assert!(err.contains("not co-partitioned"), "{err}");
}

#[test]
fn cogrouping_the_same_grouped_stream_again_replaces_its_aggregator() {
    let builder = StreamsBuilder::new();
    let a = builder.stream::<String, i64>("a").group_by_key();
    a.cogroup(|_, v: i64, sum: i64| sum + v)
        .cogroup(&a, |_, v: i64, sum: i64| sum + 10 * v)
        .aggregate(|| 0)
        .to_stream()
        .to("out");
    let topology = builder.build().unwrap();
    let aggregators = topology.describe().subtopologies[0]
        .nodes
        .iter()
        .filter(|n| n.name.starts_with("COGROUPKSTREAM-AGGREGATE-"))
        .count();
    assert_eq!(aggregators, 1);
    let driver = driver(topology, StreamsConfig::new(APP), &["a"], 1);
    driver
        .input_topic::<String, i64>("a")
        .pipe_input(s("k"), 2)
        .unwrap();
    assert_eq!(
        driver
            .output_topic::<String, Option<i64>>("out")
            .read_values_to_list()
            .unwrap(),
        vec![Some(20)]
    );
}

#[test]
fn null_keys_are_dropped_and_counted() {
    for (label, config) in configs() {
        let builder = StreamsBuilder::new();
        let a = builder.stream::<Option<String>, i64>("a").group_by_key();
        let b = builder.stream::<Option<String>, String>("b").group_by_key();
        // A re-keyed input whose selector gives no key: dropped before the repartition.
        let c = builder
            .stream::<String, i64>("c")
            .group_by(|k: &String, _| (!k.is_empty()).then(|| k.clone()));
        a.cogroup(|_, v: i64, n: i64| n + v)
            .cogroup(&b, |_, v: String, n: i64| n + v.len() as i64)
            .cogroup(&c, |_, v: i64, n: i64| n + 1000 * v)
            .aggregate(|| 0)
            .to_stream()
            .to("out");
        let driver = driver(builder.build().unwrap(), config, &["a", "b", "c"], 1);
        let a_in = driver.input_topic::<Option<String>, i64>("a");
        let b_in = driver.input_topic::<Option<String>, String>("b");
        let c_in = driver.input_topic::<String, i64>("c");
        a_in.pipe_input(Some(s("k")), 1).unwrap();
        a_in.pipe_input(None, 5).unwrap();
        b_in.pipe_input(None, s("xyz")).unwrap();
        b_in.pipe_input(Some(s("k")), s("ab")).unwrap();
        c_in.pipe_input(s(""), 7).unwrap();
        c_in.pipe_input(s("k"), 1).unwrap();
        assert_eq!(
            driver
                .output_topic::<Option<String>, Option<i64>>("out")
                .read_key_values_to_list()
                .unwrap(),
            vec![
                (Some(s("k")), Some(1)),
                (Some(s("k")), Some(3)),
                (Some(s("k")), Some(1003))
            ],
            "{label}"
        );
        assert_eq!(driver.metrics().dropped_records, 3, "{label}");
    }
}

#[test]
fn aggregating_a_cogroup_twice_reuses_the_repartition_topic() {
    // Kafka: shouldInsertRepartitionsTopicForCogroupsUsedTwice.
    let builder = StreamsBuilder::new();
    let one = one_swapped(&builder, Some("foo"))
        .cogroup(|_, v: String, agg: String| format!("{agg}+{v}"));
    one.aggregate(|| s("0")).to_stream().to("out1");
    one.aggregate(|| s("1")).to_stream().to("out2");
    let topology = builder.build().unwrap();
    assert_eq!(
        topology.repartition_topics(APP),
        vec![format!("{APP}-foo-repartition")]
    );
    assert_eq!(topology.store_names().len(), 2);
    let description = topology.describe();
    let source = description
        .subtopologies
        .iter()
        .flat_map(|s| &s.nodes)
        .find(|n| n.name == "foo-repartition-source")
        .unwrap();
    assert_eq!(source.successors.len(), 2);
    let driver = driver(topology, StreamsConfig::new(APP), &["one"], 1);
    driver
        .input_topic::<String, String>("one")
        .pipe_input(s("a"), s("k"))
        .unwrap();
    let read = |t: &str| {
        driver
            .output_topic::<String, Option<String>>(t)
            .read_key_values_to_list()
            .unwrap()
    };
    assert_eq!(read("out1"), vec![(s("k"), Some(s("0+a")))]);
    assert_eq!(read("out2"), vec![(s("k"), Some(s("1+a")))]);
}

// ---------------------------------------------------------------------------------------
// Windowed cogroups against windows computed from their definition
// ---------------------------------------------------------------------------------------

/// "a" (numbers) and "b" (strings) cogrouped into a sum: a number adds itself, a string
/// `weight` times its length.
fn sum_of_a_and_b(builder: &StreamsBuilder, weight: i64) -> CogroupedKStream<String, i64> {
    let a = builder.stream::<String, i64>("a").group_by_key();
    let b = builder.stream::<String, String>("b").group_by_key();
    a.cogroup(|_, v: i64, sum: i64| sum + v)
        .cogroup(&b, move |_, v: String, sum: i64| {
            sum + weight * v.len() as i64
        })
}

/// Hopping windows of `size` advancing by `advance` with `grace`, computed per record: a
/// window is updated unless it closed (`end + grace <= stream time`, stream time being the
/// largest timestamp processed so far by the record's task, i.e. its partition), in which
/// case it counts as one dropped record.
struct WindowReference {
    size: i64,
    advance: i64,
    grace: i64,
    partitions: u32,
    /// The time each input's aggregation node observed, per partition: Kafka's window
    /// aggregation processors each keep their own (one input's records close no window for
    /// another).
    stream_time: HashMap<(u32, &'static str), i64>,
    /// (key, window start) -> (sum, largest timestamp).
    windows: BTreeMap<(String, i64), (i64, i64)>,
    updates: Vec<(String, Option<i64>, i64)>,
    dropped: u64,
}

impl WindowReference {
    fn apply(&mut self, input: &'static str, key: &str, ts: i64, delta: i64) {
        let p = partition_for_key(key.as_bytes(), self.partitions);
        let st = self.stream_time.entry((p, input)).or_insert(i64::MIN);
        *st = (*st).max(ts);
        let close = *st - self.grace;
        let mut start = (ts / self.advance) * self.advance;
        let mut starts = Vec::new();
        while start > ts - self.size && start >= 0 {
            starts.push(start);
            start -= self.advance;
        }
        starts.reverse();
        for start in starts {
            if start + self.size <= close {
                self.dropped += 1;
                continue;
            }
            let w = self.windows.entry((s(key), start)).or_insert((0, i64::MIN));
            w.0 += delta;
            w.1 = w.1.max(ts);
            self.updates
                .push((format!("{key}@{start}"), Some(w.0), w.1));
        }
    }
}

#[test]
fn time_windowed_cogroup_with_grace_drops_late_records() {
    let (size, advance, grace) = (10_000, 5_000, 2_000);
    for run in runs() {
        let builder = StreamsBuilder::new();
        sum_of_a_and_b(&builder, -1)
            .windowed_by(
                TimeWindows::of_size_and_grace(
                    Duration::from_millis(size as u64),
                    Duration::from_millis(grace as u64),
                )
                .advance_by(Duration::from_millis(advance as u64)),
            )
            // Kept for the whole run (by default only size + grace): every window is
            // queried at the end.
            .aggregate_with(
                || 0,
                Named::none(),
                store("windows").with_retention(Duration::from_secs(3_600)),
            )
            .to_stream()
            .map(|w, v| (format!("{}@{}", w.key, w.window.start), v))
            .to("out");
        let driver = run.driver(builder.build().unwrap(), &["a", "b"]);
        let a_in = driver.input_topic::<String, i64>("a");
        let b_in = driver.input_topic::<String, String>("b");
        let mut reference = WindowReference {
            size,
            advance,
            grace,
            partitions: run.partitions,
            stream_time: HashMap::new(),
            windows: BTreeMap::new(),
            updates: Vec::new(),
            dropped: 0,
        };
        let mut g = Gen(11);
        for i in 0..200i64 {
            let key = format!("k{}", g.below(4));
            // One record in six is up to 8 s behind: late for some windows.
            let ts = (i * 300 - if g.below(6) == 0 { 8_000 } else { 0 }).max(0);
            if g.below(2) == 0 {
                let v = g.below(20) as i64;
                a_in.pipe_input_at(key.clone(), v, ts).unwrap();
                reference.apply("a", &key, ts, v);
            } else {
                let v = "y".repeat(g.below(5) as usize);
                b_in.pipe_input_at(key.clone(), v.clone(), ts).unwrap();
                reference.apply("b", &key, ts, -(v.len() as i64));
            }
        }
        assert!(reference.dropped > 0, "the scenario has late records");
        run.check_out(&driver, &reference.updates);
        let label = &run.label;
        assert_eq!(
            driver.metrics().dropped_records,
            reference.dropped,
            "{label}: dropped"
        );
        let store = driver.window_store::<String, i64>("windows").unwrap();
        for ((key, start), (sum, _)) in &reference.windows {
            assert_eq!(
                store.fetch(key, *start).unwrap(),
                Some(*sum),
                "{label}: {key}@{start}"
            );
        }
    }
}

#[test]
fn a_late_record_is_dropped_for_its_closed_window_only() {
    for (label, config) in configs() {
        let builder = StreamsBuilder::new();
        let a = builder.stream::<String, String>("a").group_by_key();
        let b = builder.stream::<String, i64>("b").group_by_key();
        a.cogroup(|_, v: String, agg: String| format!("{agg}{v}"))
            .cogroup(&b, |_, v: i64, agg: String| format!("{agg}{v}"))
            .windowed_by(TimeWindows::of_size_and_grace(
                Duration::from_secs(10),
                Duration::from_secs(5),
            ))
            .aggregate(String::new)
            .to_stream()
            .map(|w, v| (w.to_string(), v))
            .to("out");
        let driver = driver(builder.build().unwrap(), config, &["a", "b"], 1);
        let a_in = driver.input_topic::<String, String>("a");
        let b_in = driver.input_topic::<String, i64>("b");
        a_in.pipe_input_at(s("k"), s("x"), 1_000).unwrap();
        b_in.pipe_input_at(s("k"), 1, 12_000).unwrap();
        // Input a's time is 1000 (each input's node keeps its own, as in Kafka):
        // [0, 10000) is open until 15000 (end + grace).
        a_in.pipe_input_at(s("k"), s("y"), 9_000).unwrap();
        a_in.pipe_input_at(s("k"), s("w"), 15_000).unwrap();
        // Input a's time is 15000: [0, 10000) has closed for a; this record is late.
        a_in.pipe_input_at(s("k"), s("z"), 9_500).unwrap();
        // Input b's time is still 12000: the window is open for b's records.
        b_in.pipe_input_at(s("k"), 2, 9_800).unwrap();
        // ... and one for the open window is taken.
        b_in.pipe_input_at(s("k"), 3, 10_000).unwrap();
        let out = driver::records(&driver.output_topic::<String, Option<String>>("out"));
        assert_eq!(
            out,
            vec![
                (s("[k@0/10000]"), Some(s("x")), 1_000),
                (s("[k@10000/20000]"), Some(s("1")), 12_000),
                (s("[k@0/10000]"), Some(s("xy")), 9_000),
                (s("[k@10000/20000]"), Some(s("1w")), 15_000),
                (s("[k@0/10000]"), Some(s("xy2")), 9_800),
                (s("[k@10000/20000]"), Some(s("1w3")), 15_000),
            ],
            "{label}"
        );
        assert_eq!(driver.metrics().dropped_records, 1, "{label}");
    }
}

/// Pipes a random record of `key` at `ts` into "a" (a number from 1 to 9) or "b" (`letter`
/// repeated 1 to `max_len` times); returns what it adds to the test's sum: the number, or
/// `weight` times the string's length.
fn pipe_a_or_b(
    driver: &TopologyTestDriver,
    g: &mut Gen,
    key: &str,
    ts: i64,
    (letter, max_len, weight): (&str, u64, i64),
) -> i64 {
    if g.below(2) == 0 {
        let v = g.below(9) as i64 + 1;
        pipe(driver, "a", v, &[(key, ts)]);
        v
    } else {
        let v = letter.repeat(g.below(max_len) as usize + 1);
        pipe(driver, "b", v.clone(), &[(key, ts)]);
        weight * v.len() as i64
    }
}

#[test]
fn sliding_windowed_cogroup_holds_the_records_of_each_window() {
    let d = 1_000;
    for (label, config) in configs() {
        let builder = StreamsBuilder::new();
        sum_of_a_and_b(&builder, 100)
            .windowed_by_sliding(SlidingWindows::of_time_difference_and_grace(
                Duration::from_millis(d as u64),
                Duration::from_secs(60),
            ))
            .aggregate_with(|| 0, Named::none(), store("sliding"));
        let driver = driver(builder.build().unwrap(), config, &["a", "b"], 1);
        let mut records: Vec<(i64, i64)> = Vec::new(); // (timestamp, contribution)
        let mut g = Gen(5);
        for i in 0..60i64 {
            // Distinct timestamps, slightly shuffled.
            let ts = 2_000 + i * 97 + if i % 5 == 0 { -250 } else { 0 };
            records.push((ts, pipe_a_or_b(&driver, &mut g, "k", ts, ("z", 3, 100))));
        }
        let sum_in = |from: i64, to: i64| -> i64 {
            records
                .iter()
                .filter(|(t, _)| (from..=to).contains(t))
                .map(|(_, v)| v)
                .sum()
        };
        let store = driver.window_store::<String, i64>("sliding").unwrap();
        for &(t, _) in &records {
            // Every record's left window [t - d, t] holds the records in it...
            assert_eq!(
                store.fetch(&s("k"), t - d).unwrap(),
                Some(sum_in(t - d, t)),
                "{label}: left window of {t}"
            );
            // ...and its right window [t + 1, t + 1 + d] exists when it is not empty.
            let right = sum_in(t + 1, t + 1 + d);
            let has_later = records.iter().any(|(u, _)| (t + 1..=t + 1 + d).contains(u));
            if has_later {
                assert_eq!(
                    store.fetch(&s("k"), t + 1).unwrap(),
                    Some(right),
                    "{label}: right window of {t}"
                );
            }
        }
    }
}

#[test]
fn session_windowed_cogroup_ends_with_the_sessions_of_the_definition() {
    let gap = 100;
    for run in runs() {
        let label = &run.label;
        let builder = StreamsBuilder::new();
        sum_of_a_and_b(&builder, 1000)
            .windowed_by_session(SessionWindows::of_inactivity_gap_and_grace(
                Duration::from_millis(gap as u64),
                Duration::from_secs(60),
            ))
            .aggregate_with(
                || 0,
                |_, x, y| x + y,
                Named::as_("sessions"),
                store("sessions-store"),
            )
            .to_stream()
            .map(|w, v| (format!("{}@{}/{}", w.key, w.window.start, w.window.end), v))
            .to("out");
        let driver = run.driver(builder.build().unwrap(), &["a", "b"]);
        let mut records: HashMap<String, Vec<(i64, i64)>> = HashMap::new();
        let mut g = Gen(21);
        for _ in 0..120 {
            let key = format!("k{}", g.below(3));
            // Random times, in any order: records bridge and merge sessions.
            let ts = g.below(3_000) as i64;
            let contribution = pipe_a_or_b(&driver, &mut g, &key, ts, ("s", 2, 1000));
            records.entry(key).or_default().push((ts, contribution));
        }
        let store = driver
            .session_store::<String, i64>("sessions-store")
            .unwrap();
        // The final output of each session (its last update) must be the store's.
        let mut last: BTreeMap<String, Option<i64>> = BTreeMap::new();
        for (k, v, _) in driver::records(&driver.output_topic::<String, Option<i64>>("out")) {
            last.insert(k, v);
        }
        for (key, mut recs) in records {
            recs.sort();
            // Sessions by definition: consecutive records at most `gap` apart.
            let mut want: Vec<(i64, i64, i64)> = Vec::new();
            for (t, v) in recs {
                match want.last_mut() {
                    Some(w) if t - w.1 <= gap => {
                        w.1 = t;
                        w.2 += v;
                    }
                    _ => want.push((t, t, v)),
                }
            }
            let got: Vec<(i64, i64, i64)> = store
                .fetch(&key)
                .unwrap()
                .into_iter()
                .map(|(w, v)| (w.window.start, w.window.end, v))
                .collect();
            assert_eq!(got, want, "{label}: sessions of {key}");
            for (start, end, sum) in &want {
                assert_eq!(
                    last.get(&format!("{key}@{start}/{end}")),
                    Some(&Some(*sum)),
                    "{label}: last update of {key}@{start}/{end}"
                );
            }
        }
        // Replaced sessions ended with a tombstone.
        let live = last.values().filter(|v| v.is_some()).count();
        let sessions: usize = ["k0", "k1", "k2"]
            .iter()
            .map(|k| store.fetch(&s(k)).unwrap().len())
            .sum();
        assert_eq!(live, sessions, "{label}: live sessions in the output");
    }
}

// ---------------------------------------------------------------------------------------
// Scenarios transcribed from Kafka Streams' CogroupedKStreamImplTest
// ---------------------------------------------------------------------------------------

fn adder(_: &String, v: String, agg: String) -> String {
    format!("{agg}+{v}")
}

fn remover(_: &String, v: String, agg: String) -> String {
    format!("{agg}-{v}")
}

fn concat(_: &String, v: String, agg: String) -> String {
    agg + &v
}

fn parse_sum(_: &String, v: String, agg: i32) -> i32 {
    agg + v.parse::<i32>().unwrap()
}

/// Kafka's `assertOutputKeyValueTimestamp` sequence.
fn expect<V: PartialEq + std::fmt::Debug + Clone>(
    label: &str,
    out: Vec<(String, Option<V>, i64)>,
    want: &[(&str, V, i64)],
) {
    let want: Vec<(String, Option<V>, i64)> = want
        .iter()
        .map(|(k, v, ts)| (s(k), Some(v.clone()), *ts))
        .collect();
    assert_eq!(out, want, "{label}");
}

/// Expected records with string values.
fn strs(rows: &[(&'static str, &str, i64)]) -> Vec<(&'static str, String, i64)> {
    rows.iter().map(|&(k, v, ts)| (k, s(v), ts)).collect()
}

/// Pipes `value` into `topic` once for each (key, timestamp) of `records`, in order.
fn pipe<V: DefaultSerde + Clone + 'static>(
    driver: &TopologyTestDriver,
    topic: &str,
    value: V,
    records: &[(&str, i64)],
) {
    let input = driver.input_topic::<String, V>(topic);
    for (k, ts) in records {
        input.pipe_input_at(s(k), value.clone(), *ts).unwrap();
    }
}

/// Pipes the (key, value, timestamp) `records` into `topic`, in order.
fn pipe_kv(driver: &TopologyTestDriver, topic: &str, records: &[(&str, &str, i64)]) {
    let input = driver.input_topic::<String, String>(topic);
    for (k, v, ts) in records {
        input.pipe_input_at(s(k), s(v), *ts).unwrap();
    }
}

/// Everything in Kafka's "output" topic.
fn output<V: DefaultSerde + 'static>(driver: &TopologyTestDriver) -> Vec<(String, Option<V>, i64)> {
    driver::records(&driver.output_topic::<String, Option<V>>("output"))
}

/// Kafka's usual setup: "one" cogrouped with `first`, "two" with `second`.
fn one_and_two<V: Data>(
    builder: &StreamsBuilder,
    first: impl Fn(&String, String, V) -> V + Send + Sync + 'static,
    second: impl Fn(&String, String, V) -> V + Send + Sync + 'static,
) -> CogroupedKStream<String, V> {
    let g1 = builder.stream::<String, String>("one").group_by_key();
    let g2 = builder.stream::<String, String>("two").group_by_key();
    g1.cogroup(first).cogroup(&g2, second)
}

/// Kafka's re-keyed input: "one" with keys and values swapped, grouped by the new key
/// (the grouping named `name` when given, with the default serdes).
fn one_swapped(builder: &StreamsBuilder, name: Option<&str>) -> KGroupedStream<String, String> {
    let swapped = builder.stream::<String, String>("one").map(|k, v| (v, k));
    match name {
        Some(name) => swapped.group_by_key_with(
            Grouped::as_(name)
                .with_key_serde(default_serde())
                .with_value_serde(default_serde()),
        ),
        None => swapped.group_by_key(),
    }
}

/// How much of the output Kafka's test asserts.
#[derive(Clone, Copy, PartialEq)]
enum Asserts {
    /// Every record.
    All,
    /// The first records, as many as expected.
    First,
}

/// Runs Kafka's cogroup scenario in each of [`configs`]: `build` writes its topology to
/// "output", the `topics` get one partition each, `pipe_inputs` pipes the input; checks
/// that the output (or its first records) is `want`.
fn kafka_scenario<V: DefaultSerde + PartialEq + std::fmt::Debug + Clone>(
    build: impl Fn(&StreamsBuilder),
    topics: &[&str],
    pipe_inputs: impl Fn(&TopologyTestDriver),
    asserts: Asserts,
    want: &[(&str, V, i64)],
) {
    for (label, config) in configs() {
        let builder = StreamsBuilder::new();
        build(&builder);
        let driver = driver(builder.build().unwrap(), config, topics, 1);
        pipe_inputs(&driver);
        let mut out = output::<V>(&driver);
        if asserts == Asserts::First {
            out.truncate(want.len());
        }
        expect(label, out, want);
    }
}

#[test]
fn kafka_should_cogroup_and_aggregate_single_kstreams() {
    kafka_scenario(
        |builder| {
            builder
                .stream::<String, String>("one")
                .group_by_key()
                .cogroup(concat)
                .aggregate(String::new)
                .to_stream()
                .to("output");
        },
        &["one"],
        |driver| {
            let a = [
                ("k1", "A", 0),
                ("k2", "B", 0),
                ("k2", "B", 0),
                ("k1", "A", 0),
            ];
            pipe_kv(driver, "one", &a);
        },
        Asserts::All,
        &strs(&[
            ("k1", "A", 0),
            ("k2", "B", 0),
            ("k2", "BB", 0),
            ("k1", "AA", 0),
        ]),
    );
}

/// Kafka's two-stream concatenation: "one" and "two" cogrouped with `concat` into "output".
fn concat_one_and_two(builder: &StreamsBuilder) {
    one_and_two(builder, concat, concat)
        .aggregate(String::new)
        .to_stream()
        .to("output");
}

#[test]
fn kafka_should_cogroup_and_aggregate_two_kstreams_with_distinct_keys() {
    let inputs = |driver: &TopologyTestDriver| {
        let a = [0, 1, 10, 100].map(|ts| ("k1", ts));
        pipe(driver, "one", s("A"), &a);
        let b = [100, 200, 1, 500, 500, 100].map(|ts| ("k2", ts));
        pipe(driver, "two", s("B"), &b);
    };
    kafka_scenario(
        concat_one_and_two,
        &["one", "two"],
        inputs,
        Asserts::All,
        &strs(&[
            ("k1", "A", 0),
            ("k1", "AA", 1),
            ("k1", "AAA", 10),
            ("k1", "AAAA", 100),
            ("k2", "B", 100),
            ("k2", "BB", 200),
            ("k2", "BBB", 200),
            ("k2", "BBBB", 500),
            ("k2", "BBBBB", 500),
            ("k2", "BBBBBB", 500),
        ]),
    );
}

/// Kafka's input of "one" in the shared-key scenarios: `value` for k1, k2, k1, k2 at 0, 1,
/// 10, 100.
fn pipe_one(driver: &TopologyTestDriver, value: &str) {
    pipe(
        driver,
        "one",
        s(value),
        &[("k1", 0), ("k2", 1), ("k1", 10), ("k2", 100)],
    );
}

/// The keys and timestamps of the other inputs in Kafka's shared-key scenarios.
const SHARED_KEYS: [(&str, i64); 8] = [
    ("k2", 100),
    ("k2", 200),
    ("k1", 1),
    ("k2", 500),
    ("k1", 500),
    ("k2", 500),
    ("k3", 500),
    ("k2", 100),
];

/// The first ten records Kafka expects in the shared-key scenarios when "A" ([`pipe_one`])
/// and then "B" at [`SHARED_KEYS`] are concatenated.
fn shared_keys_concatenated() -> Vec<(&'static str, String, i64)> {
    strs(&[
        ("k1", "A", 0),
        ("k2", "A", 1),
        ("k1", "AA", 10),
        ("k2", "AA", 100),
        ("k2", "AAB", 100),
        ("k2", "AABB", 200),
        ("k1", "AAB", 10),
        ("k2", "AABBB", 500),
        ("k1", "AABB", 500),
        ("k2", "AABBBB", 500),
    ])
}

#[test]
fn kafka_should_cogroup_and_aggregate_two_kstreams_with_shared_keys() {
    let inputs = |driver: &TopologyTestDriver| {
        pipe_one(driver, "A");
        pipe(driver, "two", s("B"), &SHARED_KEYS);
    };
    // Kafka asserts the first ten records.
    let want = shared_keys_concatenated();
    kafka_scenario(
        concat_one_and_two,
        &["one", "two"],
        inputs,
        Asserts::First,
        &want,
    );
}

#[test]
fn kafka_should_allow_different_output_type_and_input_types_in_cogroup() {
    // shouldAllowDifferentOutputTypeInCoGroup and shouldCoGroupStreamsWithDifferentInputTypes.
    let build = |builder: &StreamsBuilder| {
        let g1 = builder.stream::<String, String>("one").group_by_key();
        let g2 = builder.stream::<String, i32>("two").group_by_key();
        g1.cogroup(parse_sum)
            .cogroup(&g2, |_, v: i32, agg: i32| agg + v)
            .aggregate_with(|| 0, Named::none(), store("store1"))
            .to_stream()
            .to("output");
    };
    let inputs = |driver: &TopologyTestDriver| {
        pipe_one(driver, "1");
        let two = driver.input_topic::<String, i32>("two");
        for ((k, ts), v) in SHARED_KEYS.into_iter().zip([2, 2, 2, 2, 2, 3, 2, 2]) {
            two.pipe_input_at(s(k), v, ts).unwrap();
        }
    };
    kafka_scenario(
        build,
        &["one", "two"],
        inputs,
        Asserts::First,
        &[
            ("k1", 1, 0),
            ("k2", 1, 1),
            ("k1", 2, 10),
            ("k2", 2, 100),
            ("k2", 4, 100),
            ("k2", 6, 200),
            ("k1", 4, 10),
            ("k2", 8, 500),
            ("k1", 6, 500),
            ("k2", 11, 500),
            ("k3", 2, 500),
        ],
    );
}

#[test]
fn kafka_cogroup_key_mixed_aggregators() {
    let build = |builder: &StreamsBuilder| {
        one_and_two(builder, remover, adder)
            .aggregate_with(|| s("0"), Named::none(), store("store1"))
            .to_stream()
            .to("output");
    };
    let inputs = |driver: &TopologyTestDriver| {
        pipe_one(driver, "1");
        let two = [("k1", 500), ("k2", 500), ("k1", 500), ("k2", 100)];
        pipe(driver, "two", s("2"), &two);
    };
    kafka_scenario(
        build,
        &["one", "two"],
        inputs,
        Asserts::All,
        &strs(&[
            ("k1", "0-1", 0),
            ("k2", "0-1", 1),
            ("k1", "0-1-1", 10),
            ("k2", "0-1-1", 100),
            ("k1", "0-1-1+2", 500),
            ("k2", "0-1-1+2", 500),
            ("k1", "0-1-1+2+2", 500),
            ("k2", "0-1-1+2+2", 500),
        ]),
    );
}

#[test]
fn kafka_cogroup_with_three_grouped_streams() {
    let build = |builder: &StreamsBuilder| {
        let g3 = builder.stream::<String, String>("three").group_by_key();
        one_and_two(builder, concat, concat)
            .cogroup(&g3, concat)
            .aggregate(String::new)
            .to_stream()
            .to("output");
    };
    // The records of the shared-key scenario, "B"s split between "two" and "three".
    let inputs = |driver: &TopologyTestDriver| {
        pipe_one(driver, "A");
        pipe(driver, "two", s("B"), &SHARED_KEYS[..4]);
        pipe(driver, "three", s("B"), &SHARED_KEYS[4..]);
    };
    // Kafka asserts the first eleven records.
    let mut want = shared_keys_concatenated();
    want.push(("k3", s("B"), 500));
    let topics = ["one", "two", "three"];
    kafka_scenario(build, &topics, inputs, Asserts::First, &want);
}

#[test]
fn kafka_cogroup_with_ktable_ktable_inner_join() {
    for (label, config) in configs() {
        let builder = StreamsBuilder::new();
        let table1 = one_and_two(&builder, concat, concat).aggregate_with(
            String::new,
            Named::as_("name"),
            store("store"),
        );
        let table2 = builder.table::<String, String>("three");
        table1
            .join(&table2, |a: &String, b: &String| format!("{a}+{b}"))
            .to_stream()
            .to("output");
        let topics = ["one", "two", "three"];
        let driver = driver(builder.build().unwrap(), config, &topics, 1);
        pipe(&driver, "one", s("A"), &[("k1", 5)]);
        pipe(&driver, "two", s("B"), &[("k2", 6)]);
        let out = driver.output_topic::<String, Option<String>>("output");
        assert!(out.is_empty(), "{label}");
        pipe_kv(&driver, "three", &[("k1", "C", 0), ("k2", "D", 10)]);
        let want = strs(&[("k1", "A+C", 5), ("k2", "B+D", 10)]);
        expect(label, driver::records(&out), &want);
    }
}

#[test]
fn kafka_should_name_processors_and_store_based_on_named_parameter() {
    let builder = StreamsBuilder::new();
    one_and_two(&builder, concat, concat)
        .aggregate_with(String::new, Named::as_("test"), store("store"))
        .to_stream()
        .to("output");
    let description = builder.build().unwrap().describe();
    assert_eq!(description.subtopologies.len(), 1);
    let nodes: HashMap<&str, _> = description.subtopologies[0]
        .nodes
        .iter()
        .map(|n| (n.name.as_str(), n))
        .collect();
    for (i, topic) in ["one", "two"].into_iter().enumerate() {
        let agg = nodes[format!("test-cogroup-agg-{i}").as_str()];
        assert_eq!(
            agg.kind,
            NodeType::Processor {
                stores: vec![s("store")]
            }
        );
        assert_eq!(agg.successors, vec![s("test-cogroup-merge")]);
        let parent = nodes[agg.predecessors[0].as_str()];
        assert_eq!(
            parent.kind,
            NodeType::Source {
                topics: vec![s(topic)]
            }
        );
    }
    let merge = nodes["test-cogroup-merge"];
    assert_eq!(merge.kind, NodeType::Processor { stores: vec![] });
    assert_eq!(
        merge.predecessors,
        vec![s("test-cogroup-agg-0"), s("test-cogroup-agg-1")]
    );
}

#[test]
fn kafka_should_name_repartition_topic_and_insert_one_for_key_changes() {
    // shouldNameRepartitionTopic: the grouping's name names the topic.
    let builder = StreamsBuilder::new();
    let g1 = one_swapped(&builder, Some("repartition-test"));
    let g2 = builder.stream::<String, String>("two").group_by_key();
    g1.cogroup(concat)
        .cogroup(&g2, concat)
        .aggregate(String::new)
        .to_stream()
        .to("output");
    let topology = builder.build().unwrap();
    assert_eq!(
        topology.repartition_topics(APP),
        vec![format!("{APP}-repartition-test-repartition")]
    );
    let description = topology.describe();
    assert_eq!(description.subtopologies.len(), 2);
    let names: Vec<&str> = description
        .subtopologies
        .iter()
        .flat_map(|s| s.nodes.iter().map(|n| n.name.as_str()))
        .collect();
    for name in [
        "repartition-test-repartition-filter",
        "repartition-test-repartition-sink",
        "repartition-test-repartition-source",
    ] {
        assert!(names.contains(&name), "{name} in {names:?}");
    }
    assert_eq!(
        names
            .iter()
            .filter(|n| n.starts_with("COGROUPKSTREAM-AGGREGATE-"))
            .count(),
        2
    );
    assert!(names.iter().any(|n| n.starts_with("COGROUPKSTREAM-MERGE-")));
    assert!(
        topology.store_names()[0].starts_with("COGROUPKSTREAM-AGGREGATE-STATE-STORE-"),
        "{:?}",
        topology.store_names()
    );

    // shouldInsertRepartitionsTopicForUpstreamKeyModification: unnamed, the store names it.
    let builder = StreamsBuilder::new();
    let g1 = one_swapped(&builder, None);
    let g2 = builder.stream::<String, String>("two").group_by_key();
    g1.cogroup(concat)
        .cogroup(&g2, concat)
        .aggregate_with(String::new, Named::as_("test"), store("store"))
        .to_stream()
        .to("output");
    let topology = builder.build().unwrap();
    assert_eq!(
        topology.repartition_topics(APP),
        vec![format!("{APP}-store-repartition")]
    );

    // ...WithGroupedReusedInSameCogroups: two cogroups of the same re-keyed grouping, each
    // with its own repartition topic.
    let builder = StreamsBuilder::new();
    let g1 = one_swapped(&builder, None);
    let g2 = builder.stream::<String, String>("two").group_by_key();
    let aggregate = || {
        g1.cogroup(concat)
            .cogroup(&g2, concat)
            .aggregate(String::new)
    };
    let t1 = aggregate();
    let t2 = aggregate();
    t2.to_stream().to("output");
    t1.to_stream().to("OUTPUT2");
    let topology = builder.build().unwrap();
    assert_eq!(topology.repartition_topics(APP).len(), 2);
    assert_eq!(topology.store_names().len(), 2);
}

// ---------------------------------------------------------------------------------------
// Scenarios transcribed from Kafka Streams' TimeWindowedCogroupedKStreamImplTest
// ---------------------------------------------------------------------------------------

/// Kafka's setup: "topic" cogrouped with TOSTRING_ADDER, "topic2" with TOSTRING_REMOVER,
/// 500 ms tumbling windows without grace (or `windows` when given, "topic" alone).
fn kafka_windowed(config: StreamsConfig, windows: Option<TimeWindows>) -> TopologyTestDriver {
    let builder = StreamsBuilder::new();
    let g1 = builder.stream::<String, String>("topic").group_by_key();
    let g2 = builder.stream::<String, String>("topic2").group_by_key();
    let cogrouped =
        match windows {
            None => g1.cogroup(adder).cogroup(&g2, remover).windowed_by(
                TimeWindows::of_size_with_no_grace(Duration::from_millis(500)),
            ),
            Some(w) => g1.cogroup(adder).windowed_by(w),
        };
    cogrouped
        .aggregate(|| s("0"))
        .to_stream()
        .map(|w, v| (w.key, v))
        .to("output");
    driver(builder.build().unwrap(), config, &["topic", "topic2"], 1)
}

#[test]
fn kafka_time_window_aggregate_and_mix_aggregators() {
    for (label, config) in configs() {
        // timeWindowAggregateTestStreamsTest ("B" into "topic" as well), then
        // timeWindowMixAggregatorsTest and timeWindowMixAggregatorsManyWindowsTest.
        for (b_topic, late_ts, tail) in [
            (
                "topic",
                4,
                [
                    ("k1", "0+A+A+B", 3),
                    ("k2", "0+A+A+B", 3),
                    ("k2", "0+A+A+B+B", 4),
                    ("k1", "0+A+A+B+B", 4),
                ],
            ),
            (
                "topic2",
                4,
                [
                    ("k1", "0+A+A-B", 3),
                    ("k2", "0+A+A-B", 3),
                    ("k2", "0+A+A-B-B", 4),
                    ("k1", "0+A+A-B-B", 4),
                ],
            ),
            (
                "topic2",
                501,
                [
                    ("k1", "0+A+A-B", 3),
                    ("k2", "0+A+A-B", 3),
                    ("k2", "0-B", 501),
                    ("k1", "0-B", 501),
                ],
            ),
        ] {
            let driver = kafka_windowed(config.clone(), None);
            let a = [("k1", 0), ("k2", 0), ("k2", 1), ("k1", 2)];
            pipe(&driver, "topic", s("A"), &a);
            let b = [("k1", 3), ("k2", 3), ("k2", late_ts), ("k1", late_ts)];
            pipe(&driver, b_topic, s("B"), &b);
            let mut want = strs(&[
                ("k1", "0+A", 0),
                ("k2", "0+A", 0),
                ("k2", "0+A+A", 1),
                ("k1", "0+A+A", 2),
            ]);
            want.extend(strs(&tail));
            let label = format!("{label}, B into {b_topic} up to {late_ts}");
            expect(&label, output(&driver), &want);
        }
    }
}

#[test]
fn kafka_time_window_aggregate_many_and_overlapping_windows() {
    let tumbling = TimeWindows::of_size_with_no_grace(Duration::from_millis(500));
    let hopping = tumbling.advance_by(Duration::from_millis(200));
    for (label, config) in configs() {
        // timeWindowAggregateManyWindowsTest
        let driver = kafka_windowed(config.clone(), Some(tumbling));
        let a = [("k1", 0), ("k2", 499), ("k2", 500), ("k1", 500)];
        pipe(&driver, "topic", s("A"), &a);
        let want = a.map(|(k, ts)| (k, s("0+A"), ts));
        expect(label, output(&driver), &want);
        drop(driver);

        // timeWindowAggregateOverlappingWindowsTest
        let driver = kafka_windowed(config.clone(), Some(hopping));
        pipe_kv(
            &driver,
            "topic",
            &[
                ("k1", "A", 0),
                ("k2", "A", 0),
                ("k1", "B", 250),
                ("k2", "B", 250),
                ("k2", "A", 500),
                ("k1", "A", 500),
            ],
        );
        let want = strs(&[
            ("k1", "0+A", 0),
            ("k2", "0+A", 0),
            ("k1", "0+A+B", 250),
            ("k1", "0+B", 250),
            ("k2", "0+A+B", 250),
            ("k2", "0+B", 250),
            ("k2", "0+B+A", 500),
            ("k2", "0+A", 500),
            ("k1", "0+B+A", 500),
            ("k1", "0+A", 500),
        ]);
        expect(label, output(&driver), &want);
    }
}

#[test]
fn kafka_named_param_should_set_name_of_windowed_cogroup() {
    let builder = StreamsBuilder::new();
    builder
        .stream::<String, String>("topic")
        .group_by_key()
        .cogroup(adder)
        .windowed_by(TimeWindows::of_size_with_no_grace(Duration::from_millis(
            500,
        )))
        .aggregate_with(
            || s("0"),
            Named::as_("foo"),
            Materialized::new().with_value_serde(default_serde()),
        );
    let description = builder.build().unwrap().describe();
    let nodes = &description.subtopologies[0].nodes;
    let agg = nodes
        .iter()
        .find(|n| n.name == "foo-cogroup-agg-0")
        .unwrap();
    match &agg.kind {
        NodeType::Processor { stores } => {
            assert_eq!(stores.len(), 1);
            assert!(stores[0].starts_with("COGROUPKSTREAM-AGGREGATE-STATE-STORE-"));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(agg.successors, vec![s("foo-cogroup-merge")]);
    assert!(nodes.iter().any(|n| n.name == "foo-cogroup-merge"));
}

#[test]
fn null_values_are_dropped_by_the_aggregation_but_reach_time_windows() {
    // Kafka's cogroup runs each input through `KStreamAggregate` (null values skipped and
    // counted) or, windowed, `KStreamWindowAggregate` (null values aggregated).
    for (label, config) in configs() {
        let builder = StreamsBuilder::new();
        let a = builder.stream::<String, Option<String>>("a").group_by_key();
        let b = builder.stream::<String, i64>("b").group_by_key();
        let add_a = |_: &String, v: Option<String>, n: i64| n + v.map_or(100, |v| v.len() as i64);
        a.cogroup(add_a)
            .cogroup(&b, |_, v: i64, n: i64| n + v)
            .aggregate(|| 0)
            .to_stream()
            .to("out");
        a.cogroup(add_a)
            .windowed_by(TimeWindows::of_size_with_no_grace(Duration::from_secs(60)))
            .aggregate(|| 0)
            .to_stream()
            .map(|k: Windowed<String>, v: Option<i64>| (k.key, v))
            .to("windowed");
        let driver = driver(builder.build().unwrap(), config, &["a", "b"], 1);
        let a_in = driver.input_topic::<String, Option<String>>("a");
        let b_in = driver.input_topic::<String, i64>("b");
        a_in.pipe_input_at(s("k"), Some(s("abc")), 1).unwrap();
        a_in.pipe_input_at(s("k"), None, 2).unwrap();
        b_in.pipe_input_at(s("k"), 10, 3).unwrap();
        a_in.pipe_input_at(s("k"), None, 4).unwrap();
        let last = |t: &str| driver::key_values::<String, Option<i64>>(&driver, t).pop();
        assert_eq!(last("out"), Some((s("k"), Some(13))), "{label}");
        assert_eq!(last("windowed"), Some((s("k"), Some(203))), "{label}");
        assert_eq!(driver.metrics().dropped_records, 2, "{label}");
    }
}

#[test]
fn an_unnamed_cogroup_repartition_is_named_after_its_store_as_in_kafka() {
    // Kafka: shouldInsertRepartitionsTopicForUpstreamKeyModificationWithGroupedReused. A
    // cogroup's store name is not a `KSTREAM…` one, so its repartition nodes carry it; a
    // plain aggregation's are generated (sink before filter).
    let builder = StreamsBuilder::new();
    let one = builder.stream::<String, String>("one");
    let two = builder.stream::<String, String>("two");
    let grouped_one = one.map(|k, v| (v, k)).group_by_key();
    let grouped_two = two.group_by_key();
    let adder = |_: &String, v: String, agg: String| agg + &v;
    grouped_one
        .cogroup(adder)
        .cogroup(&grouped_two, adder)
        .aggregate(|| s(""));
    grouped_one.aggregate(|| s(""), adder);
    let description = builder.build().unwrap().describe();
    let mut edges: Vec<(String, Vec<String>)> = description
        .subtopologies
        .iter()
        .flat_map(|s| &s.nodes)
        .map(|n| {
            let mut next = n.successors.clone();
            next.sort();
            (n.name.clone(), next)
        })
        .collect();
    edges.sort();
    let cg = "COGROUPKSTREAM-AGGREGATE-STATE-STORE-0000000003-repartition";
    let mut expected: Vec<(String, Vec<String>)> = [
        ("KSTREAM-SOURCE-0000000000", vec!["KSTREAM-MAP-0000000002"]),
        (
            "KSTREAM-SOURCE-0000000001",
            vec!["COGROUPKSTREAM-AGGREGATE-0000000008"],
        ),
        (
            "KSTREAM-MAP-0000000002",
            vec![&format!("{cg}-filter") as &str, "KSTREAM-FILTER-0000000013"],
        ),
        (&format!("{cg}-filter"), vec![&format!("{cg}-sink") as &str]),
        (&format!("{cg}-sink"), vec![]),
        ("KSTREAM-FILTER-0000000013", vec!["KSTREAM-SINK-0000000012"]),
        ("KSTREAM-SINK-0000000012", vec![]),
        (
            &format!("{cg}-source"),
            vec!["COGROUPKSTREAM-AGGREGATE-0000000007"],
        ),
        (
            "COGROUPKSTREAM-AGGREGATE-0000000007",
            vec!["COGROUPKSTREAM-MERGE-0000000009"],
        ),
        (
            "COGROUPKSTREAM-AGGREGATE-0000000008",
            vec!["COGROUPKSTREAM-MERGE-0000000009"],
        ),
        ("COGROUPKSTREAM-MERGE-0000000009", vec![]),
        (
            "KSTREAM-SOURCE-0000000014",
            vec!["KSTREAM-AGGREGATE-0000000011"],
        ),
        ("KSTREAM-AGGREGATE-0000000011", vec![]),
    ]
    .into_iter()
    .map(|(n, next)| {
        let mut next: Vec<String> = next.into_iter().map(String::from).collect();
        next.sort();
        (n.to_string(), next)
    })
    .collect();
    expected.sort();
    assert_eq!(edges, expected, "\n{description}");
}
