//! Driver tests of aggregations and tables: grouped streams (count, reduce, aggregate),
//! re-keying before grouping, KTables with tombstones, table operators, and table
//! re-grouping with the adder/subtractor rule.

use streams_core::partitioner::partition_for_key;
use streams_core::prelude::*;
use streams_core::topology::NodeType;
use streams_tests::driver;

const APP: &str = "aggs";

fn s(x: &str) -> String {
    x.to_string()
}

fn driver(builder: StreamsBuilder) -> Result<TopologyTestDriver, StreamsError> {
    TopologyTestDriver::new(builder.build()?, StreamsConfig::new(APP))
}

/// A driver of `topology` whose topic `topic` has `partitions` partitions.
fn partitioned(topology: Topology, topic: &str, partitions: u32) -> TopologyTestDriver {
    driver::with_partitions(topology, StreamsConfig::new(APP), &[(topic, partitions)])
}

/// (key, value, timestamp) of every record of the table updates in `topic`.
fn updates<V: DefaultSerde>(
    driver: &TopologyTestDriver,
    topic: &str,
) -> Vec<(String, Option<V>, i64)> {
    driver::records(&driver.output_topic::<String, Option<V>>(topic))
}

/// The content of the key-value store `store`, sorted by key.
#[allow(clippy::unwrap_used)] // a panic fails the test
fn store_content<V: 'static>(driver: &TopologyTestDriver, store: &str) -> Vec<(String, V)> {
    let store = driver.key_value_store::<String, V>(store).unwrap();
    let mut all = store.all().unwrap();
    all.sort_by(|a, b| a.0.cmp(&b.0));
    all
}

#[test]
fn group_by_key_count_emits_one_update_per_record_with_max_timestamp() {
    let builder = StreamsBuilder::new();
    builder
        .stream::<String, String>("clicks")
        .group_by_key()
        .count_with(Materialized::as_("clicks-per-user"))
        .to_stream()
        .to("counts");
    let topology = builder.build().unwrap();
    // No key change: no repartition topic, one sub-topology.
    assert_eq!(topology.describe().subtopologies.len(), 1);
    assert_eq!(topology.store_names(), vec!["clicks-per-user"]);
    let driver = TopologyTestDriver::new(topology, StreamsConfig::new(APP)).unwrap();
    let input = driver.input_topic::<String, String>("clicks");
    input.pipe_input_at(s("alice"), s("/a"), 5_000).unwrap();
    input.pipe_input_at(s("alice"), s("/b"), 3_000).unwrap(); // out of order
    input.pipe_input_at(s("bob"), s("/a"), 1_000).unwrap();
    input.pipe_input_at(s("alice"), s("/c"), 9_000).unwrap();
    assert_eq!(
        updates::<i64>(&driver, "counts"),
        vec![
            (s("alice"), Some(1), 5_000),
            (s("alice"), Some(2), 5_000), // max(5000, 3000)
            (s("bob"), Some(1), 1_000),
            (s("alice"), Some(3), 9_000),
        ]
    );
    let store = driver
        .key_value_store::<String, i64>("clicks-per-user")
        .unwrap();
    assert_eq!(store.get(&s("alice")).unwrap(), Some(3));
    assert_eq!(store.get(&s("bob")).unwrap(), Some(1));
    assert_eq!(store.get(&s("carol")).unwrap(), None);
    // RocksDB's key count is an estimate (overwrites may count until compaction).
    assert!(store.approximate_num_entries().unwrap() >= 2);
    assert_eq!(store.all().unwrap().len(), 2);
}

#[test]
fn group_by_key_reduce_combines_values_in_arrival_order() {
    let builder = StreamsBuilder::new();
    builder
        .stream::<String, String>("words")
        .group_by_key()
        .reduce_with(|a, b| format!("{a}+{b}"), Materialized::as_("joined"))
        .to_stream()
        .to("out");
    let driver = driver(builder).unwrap();
    let input = driver.input_topic::<String, String>("words");
    input.pipe_input_at(s("k"), s("a"), 10).unwrap();
    input.pipe_input_at(s("j"), s("x"), 30).unwrap();
    input.pipe_input_at(s("k"), s("b"), 20).unwrap();
    input.pipe_input_at(s("k"), s("c"), 40).unwrap();
    assert_eq!(
        updates::<String>(&driver, "out"),
        vec![
            (s("k"), Some(s("a")), 10), // the first value is kept as is
            (s("j"), Some(s("x")), 30),
            (s("k"), Some(s("a+b")), 20),
            (s("k"), Some(s("a+b+c")), 40),
        ]
    );
    assert_eq!(
        store_content::<String>(&driver, "joined"),
        vec![(s("j"), s("x")), (s("k"), s("a+b+c"))]
    );
}

/// "orders" (customer -> item) folded into each customer's total of letters (store
/// "letters", written to "totals") with `config`, after one batch of four orders.
#[allow(clippy::unwrap_used)] // a panic fails the test
fn letters_after_one_batch(config: StreamsConfig) -> TopologyTestDriver {
    let builder = StreamsBuilder::new();
    builder
        .stream::<String, String>("orders")
        .group_by_key()
        .aggregate_with(
            || 0i64,
            |_, item: String, total| total + item.len() as i64,
            Materialized::as_("letters").with_value_serde(default_serde()),
        )
        .to_stream()
        .to("totals");
    let driver = TopologyTestDriver::new(builder.build().unwrap(), config).unwrap();
    driver
        .input_topic::<String, String>("orders")
        .pipe_key_values([
            (s("c1"), s("tea")),
            (s("c2"), s("milk")),
            (s("c1"), s("bread")),
            (s("c1"), s("")),
        ])
        .unwrap();
    driver
}

#[test]
fn group_by_key_aggregate_folds_into_another_type() {
    let driver = letters_after_one_batch(StreamsConfig::new(APP));
    // The batch is committed once: the record cache coalesces c1's three updates into one
    // (Kafka Streams' cadence with caching on); updates leave the cache in write order.
    assert_eq!(
        driver::key_values::<String, Option<i64>>(&driver, "totals"),
        vec![(s("c2"), Some(4)), (s("c1"), Some(8))]
    );
    let store = driver.key_value_store::<String, i64>("letters").unwrap();
    assert_eq!(store.get(&s("c1")).unwrap(), Some(8));
    assert_eq!(store.get(&s("c2")).unwrap(), Some(4));
}

#[test]
fn with_the_cache_off_every_update_of_a_batch_is_forwarded() {
    let driver = letters_after_one_batch(StreamsConfig::new(APP).with_cache_max_bytes(0));
    assert_eq!(
        driver::key_values::<String, Option<i64>>(&driver, "totals"),
        vec![
            (s("c1"), Some(3)),
            (s("c2"), Some(4)),
            (s("c1"), Some(8)),
            (s("c1"), Some(8)),
        ]
    );
}

#[test]
fn group_by_repartitions_and_counts_by_the_new_key() {
    let builder = StreamsBuilder::new();
    builder
        .stream::<String, String>("views") // user -> page
        .group_by_with(
            |_, page| page.clone(),
            Grouped::with(default_serde(), default_serde()).with_name("by-page"),
        )
        .count_with(Materialized::as_("views-per-page"))
        .to_stream()
        .to("counts");
    let topology = builder.build().unwrap();
    let desc = topology.describe();
    assert_eq!(desc.subtopologies.len(), 2);
    let text = desc.to_string();
    assert!(
        text.contains(
            "Sink: by-page-repartition-sink (topic: <application.id>-by-page-repartition)"
        ),
        "{text}"
    );
    let driver = partitioned(topology, "views", 4);
    assert_eq!(
        driver.partition_count(&format!("{APP}-by-page-repartition")),
        4
    );
    let input = driver.input_topic::<String, String>("views");
    let views = [
        ("u1", "/home"),
        ("u2", "/home"),
        ("u3", "/cart"),
        ("u4", "/home"),
        ("u1", "/cart"),
        ("u5", "/about"),
        ("u6", "/home"),
    ];
    for (i, (u, p)) in views.iter().enumerate() {
        input.pipe_input_at(s(u), s(p), 1_000 * i as i64).unwrap();
    }
    // pipe_input processes each record completely: updates arrive in input order.
    assert_eq!(
        updates::<i64>(&driver, "counts"),
        vec![
            (s("/home"), Some(1), 0),
            (s("/home"), Some(2), 1_000),
            (s("/cart"), Some(1), 2_000),
            (s("/home"), Some(3), 3_000),
            (s("/cart"), Some(2), 4_000),
            (s("/about"), Some(1), 5_000),
            (s("/home"), Some(4), 6_000),
        ]
    );
    assert_eq!(
        store_content::<i64>(&driver, "views-per-page"),
        vec![(s("/about"), 1), (s("/cart"), 2), (s("/home"), 4)]
    );
}

#[test]
fn group_by_key_after_a_key_change_repartitions_so_each_key_lives_in_one_task() {
    let builder = StreamsBuilder::new();
    builder
        .stream::<String, String>("in")
        .map(|_, v| (v, 1i64))
        .group_by_key()
        .reduce_with(|a, b| a + b, Materialized::as_("sums"))
        .to_stream()
        .to("out");
    let driver = driver::partitioned(builder, StreamsConfig::new(APP), 2, &[("in", 4)]);
    let input = driver.input_topic::<String, String>("in");
    // 30 records, keys spread over the input partitions, 3 distinct new keys.
    input
        .pipe_key_values((0..30).map(|i| (format!("src-{i}"), format!("g{}", i % 3))))
        .unwrap();
    let all = store_content::<i64>(&driver, "sums");
    assert_eq!(all, vec![(s("g0"), 10), (s("g1"), 10), (s("g2"), 10)]);
    let finals = driver
        .output_topic::<String, Option<i64>>("out")
        .read_key_values_to_map()
        .unwrap();
    for g in ["g0", "g1", "g2"] {
        assert_eq!(finals[&s(g)], Some(10));
    }
}

#[test]
fn to_table_keeps_the_latest_value_per_key() {
    let builder = StreamsBuilder::new();
    let table = builder
        .stream::<String, i64>("in")
        .to_table_with(Named::none(), Materialized::as_("latest"));
    let store = table.queryable_store_name().unwrap().to_string();
    table.filter(|_, v| *v > 0).to_stream().to("positive");
    let driver = driver(builder).unwrap();
    let input = driver.input_topic::<String, i64>("in");
    input.pipe_input_at(s("a"), 1, 100).unwrap();
    input.pipe_input_at(s("b"), 5, 200).unwrap();
    input.pipe_input_at(s("a"), -1, 300).unwrap();
    input.pipe_input_at(s("a"), 7, 400).unwrap();
    assert_eq!(
        updates::<i64>(&driver, "positive"),
        vec![
            (s("a"), Some(1), 100),
            (s("b"), Some(5), 200),
            (s("a"), None, 300),
            (s("a"), Some(7), 400),
        ]
    );
    let content = store_content::<i64>(&driver, &store);
    assert_eq!(content, vec![(s("a"), 7), (s("b"), 5)]);
}

#[test]

fn to_table_after_a_key_change_repartitions_first() {
    let builder = StreamsBuilder::new();
    builder
        .stream::<String, String>("events") // event id -> user
        .select_key(|_, user| user.clone())
        .to_table_with(
            Named::none(),
            Materialized::as_("latest-by-user")
                .with_key_serde(default_serde())
                .with_value_serde(default_serde()),
        );
    let topology = builder.build().unwrap();
    // Kafka Streams' toTable() inserts a repartition topic after a key change.
    let subtopologies = topology.describe().subtopologies.len();
    let driver = partitioned(topology, "events", 4);
    let input = driver.input_topic::<String, String>("events");
    // Event ids spread over all 4 partitions, all for the same user.
    let ids: Vec<String> = (0..8).map(|i| format!("evt-{i}")).collect();
    let parts: std::collections::BTreeSet<u32> = ids
        .iter()
        .map(|id| partition_for_key(id.as_bytes(), 4))
        .collect();
    assert!(parts.len() > 1);
    for id in &ids {
        input.pipe_input(id.clone(), s("alice")).unwrap();
    }
    let store = driver
        .key_value_store::<String, String>("latest-by-user")
        .unwrap();
    assert_eq!(store.all().unwrap(), vec![(s("alice"), s("alice"))]);
    assert_eq!(subtopologies, 2);
}

#[test]
fn ktable_source_applies_upserts_and_tombstones() {
    let builder = StreamsBuilder::new();
    builder
        .table_with(
            "users",
            Consumed::with(default_serde(), default_serde()),
            Materialized::<String, String>::as_("users-store"),
        )
        .to_stream()
        .to("changes");
    let driver = driver(builder).unwrap();
    let input = driver.input_topic::<String, Option<String>>("users");
    input.pipe_input_at(s("u1"), Some(s("eu")), 1).unwrap();
    input.pipe_input_at(s("u2"), Some(s("us")), 2).unwrap();
    input.pipe_input_at(s("u1"), Some(s("apac")), 3).unwrap();
    input.pipe_input_at(s("u2"), None, 4).unwrap(); // tombstone
    let store = driver
        .key_value_store::<String, String>("users-store")
        .unwrap();
    assert_eq!(store.get(&s("u1")).unwrap(), Some(s("apac")));
    assert_eq!(store.get(&s("u2")).unwrap(), None);
    assert_eq!(store.all().unwrap(), vec![(s("u1"), s("apac"))]);
    assert_eq!(
        updates::<String>(&driver, "changes"),
        vec![
            (s("u1"), Some(s("eu")), 1),
            (s("u2"), Some(s("us")), 2),
            (s("u1"), Some(s("apac")), 3),
            (s("u2"), None, 4),
        ]
    );
    // A key can come back after its deletion.
    input.pipe_input_at(s("u2"), Some(s("eu")), 5).unwrap();
    assert_eq!(store.get(&s("u2")).unwrap(), Some(s("eu")));
}

#[test]
fn ktable_filter_forwards_a_tombstone_for_a_key_that_fails_the_predicate() {
    let builder = StreamsBuilder::new();
    let table = builder.table_with(
        "scores",
        Consumed::with(default_serde(), default_serde()),
        Materialized::<String, i64>::as_("scores-store"),
    );
    table.filter(|_, v| *v >= 10).to_stream().to("high");
    table.filter_not(|_, v| *v >= 10).to_stream().to("low");
    let driver = driver(builder).unwrap();
    let input = driver.input_topic::<String, Option<i64>>("scores");
    input.pipe_input_at(s("a"), Some(12), 1).unwrap();
    input.pipe_input_at(s("b"), Some(3), 2).unwrap();
    input.pipe_input_at(s("a"), Some(4), 3).unwrap(); // a leaves "high", enters "low"
    input.pipe_input_at(s("b"), None, 4).unwrap(); // deleted from the source
    assert_eq!(
        updates::<i64>(&driver, "high"),
        vec![
            (s("a"), Some(12), 1),
            (s("b"), None, 2),
            (s("a"), None, 3),
            (s("b"), None, 4),
        ]
    );
    assert_eq!(
        updates::<i64>(&driver, "low"),
        vec![
            (s("a"), None, 1),
            (s("b"), Some(3), 2),
            (s("a"), Some(4), 3),
            (s("b"), None, 4),
        ]
    );
    // The source table is not affected by the filters.
    let store = driver
        .key_value_store::<String, i64>("scores-store")
        .unwrap();
    assert_eq!(store.all().unwrap(), vec![(s("a"), 4)]);
}

#[test]
fn ktable_map_values_maps_updates_and_passes_tombstones() {
    let builder = StreamsBuilder::new();
    builder
        .table::<String, String>("names")
        .map_values(|v| v.len() as i64)
        .to_stream()
        .to("lengths");
    let driver = driver(builder).unwrap();
    let input = driver.input_topic::<String, Option<String>>("names");
    input.pipe_input_at(s("a"), Some(s("abc")), 10).unwrap();
    input.pipe_input_at(s("a"), Some(s("abcdef")), 20).unwrap();
    input.pipe_input_at(s("a"), None, 30).unwrap();
    assert_eq!(
        updates::<i64>(&driver, "lengths"),
        vec![
            (s("a"), Some(3), 10),
            (s("a"), Some(6), 20),
            (s("a"), None, 30)
        ]
    );
}

/// user -> region updates used by the table re-grouping tests, with their timestamps.
fn region_updates(input: &TestInputTopic<String, Option<String>>) -> Result<(), StreamsError> {
    input.pipe_input_at(s("alice"), Some(s("eu")), 1_000)?;
    input.pipe_input_at(s("bob"), Some(s("eu")), 2_000)?;
    input.pipe_input_at(s("alice"), Some(s("us")), 3_000)?; // moves eu -> us
    input.pipe_input_at(s("bob"), Some(s("eu")), 4_000)?; // same group
    input.pipe_input_at(s("alice"), None, 5_000)?; // tombstone
    input.pipe_input_at(s("carol"), None, 6_000)?; // tombstone of nothing
    Ok(())
}

/// The table "user-regions" (user -> region) re-grouped by region and counted (store
/// "users-per-region", written to "counts").
fn users_per_region() -> StreamsBuilder {
    let builder = StreamsBuilder::new();
    builder
        .table::<String, String>("user-regions")
        .group_by(|_user, region| (region, 1i64))
        .count_with(Materialized::as_("users-per-region"))
        .to_stream()
        .to("counts");
    builder
}

#[test]
fn ktable_group_by_count_subtracts_from_the_old_group_and_adds_to_the_new() {
    let driver = driver(users_per_region()).unwrap();
    region_updates(&driver.input_topic::<String, Option<String>>("user-regions")).unwrap();
    assert_eq!(
        updates::<i64>(&driver, "counts"),
        vec![
            (s("eu"), Some(1), 1_000),
            (s("eu"), Some(2), 2_000),
            // alice moves: the old group first, then the new one.
            (s("eu"), Some(1), 3_000),
            (s("us"), Some(1), 3_000),
            // bob's update stays in eu: one combined update.
            (s("eu"), Some(1), 4_000),
            // alice deleted: only subtracts.
            (s("us"), Some(0), 5_000),
        ]
    );
    let store = driver
        .key_value_store::<String, i64>("users-per-region")
        .unwrap();
    assert_eq!(store.get(&s("eu")).unwrap(), Some(1));
    assert_eq!(store.get(&s("us")).unwrap(), Some(0));
}

#[test]
fn ktable_group_by_reduce_applies_adder_and_subtractor() {
    let builder = StreamsBuilder::new();
    builder
        .table::<String, i64>("balances") // account -> balance; bank = first letter
        .group_by(|account: String, balance| (account[..1].to_string(), balance))
        .reduce_with(|a, b| a + b, |a, b| a - b, Materialized::as_("bank-totals"))
        .to_stream()
        .to("totals");
    let driver = driver(builder).unwrap();
    let input = driver.input_topic::<String, Option<i64>>("balances");
    input.pipe_input_at(s("a1"), Some(10), 1).unwrap();
    input.pipe_input_at(s("a2"), Some(5), 2).unwrap();
    input.pipe_input_at(s("b1"), Some(100), 3).unwrap();
    input.pipe_input_at(s("a1"), Some(7), 4).unwrap(); // same group: 15 - 10 + 7
    input.pipe_input_at(s("a2"), None, 5).unwrap(); // 12 - 5
    assert_eq!(
        updates::<i64>(&driver, "totals"),
        vec![
            (s("a"), Some(10), 1),
            (s("a"), Some(15), 2),
            (s("b"), Some(100), 3),
            (s("a"), Some(12), 4),
            (s("a"), Some(7), 5),
        ]
    );
    assert_eq!(
        store_content::<i64>(&driver, "bank-totals"),
        vec![(s("a"), 7), (s("b"), 100)]
    );
}

#[test]
fn ktable_group_by_aggregate_moves_rows_between_groups() {
    fn add(list: String, user: &str) -> String {
        let mut users: Vec<&str> = list.split(',').filter(|u| !u.is_empty()).collect();
        users.push(user);
        users.sort();
        users.join(",")
    }
    fn remove(list: String, user: &str) -> String {
        list.split(',')
            .filter(|u| !u.is_empty() && *u != user)
            .collect::<Vec<_>>()
            .join(",")
    }
    let builder = StreamsBuilder::new();
    builder
        .table::<String, String>("user-regions")
        .group_by(|user: String, region| (region, user))
        .aggregate_with(
            String::new,
            |_, user: String, agg| add(agg, &user),
            |_, user: String, agg| remove(agg, &user),
            Materialized::as_("members").with_value_serde(default_serde()),
        )
        .to_stream()
        .to("members");
    let driver = driver(builder).unwrap();
    region_updates(&driver.input_topic::<String, Option<String>>("user-regions")).unwrap();
    assert_eq!(
        updates::<String>(&driver, "members"),
        vec![
            (s("eu"), Some(s("alice")), 1_000),
            (s("eu"), Some(s("alice,bob")), 2_000),
            (s("eu"), Some(s("bob")), 3_000),
            (s("us"), Some(s("alice")), 3_000),
            (s("eu"), Some(s("bob")), 4_000),
            (s("us"), Some(s("")), 5_000),
        ]
    );
    assert_eq!(
        store_content::<String>(&driver, "members"),
        vec![(s("eu"), s("bob")), (s("us"), s(""))]
    );
}

#[test]
fn ktable_group_by_output_timestamp_is_the_max_of_contributing_inputs() {
    let builder = StreamsBuilder::new();
    builder
        .table::<String, String>("user-regions")
        .group_by(|_user, region| (region, 1i64))
        .count()
        .to_stream()
        .to("counts");
    let driver = driver(builder).unwrap();
    let input = driver.input_topic::<String, Option<String>>("user-regions");
    input.pipe_input_at(s("u1"), Some(s("eu")), 9_000).unwrap();
    input.pipe_input_at(s("u2"), Some(s("eu")), 2_000).unwrap();
    input.pipe_input_at(s("u3"), Some(s("us")), 1_000).unwrap();
    input.pipe_input_at(s("u1"), Some(s("us")), 500).unwrap();
    assert_eq!(
        updates::<i64>(&driver, "counts"),
        vec![
            (s("eu"), Some(1), 9_000),
            (s("eu"), Some(2), 9_000),
            (s("us"), Some(1), 1_000),
            (s("eu"), Some(1), 9_000),
            (s("us"), Some(2), 1_000),
        ]
    );
}

#[test]
fn ktable_filter_then_group_by_ignores_rows_that_never_passed() {
    let builder = StreamsBuilder::new();
    builder
        .table::<String, i64>("ages")
        .filter(|_, age| *age >= 18)
        .group_by(|_, age| (if age >= 65 { s("senior") } else { s("adult") }, age))
        .count()
        .to_stream()
        .to("counts");
    let driver = driver(builder).unwrap();
    let input = driver.input_topic::<String, Option<i64>>("ages");
    input.pipe_input(s("kid"), Some(10)).unwrap(); // filtered out: nothing to count
    input.pipe_input(s("ann"), Some(30)).unwrap();
    input.pipe_input(s("ann"), Some(70)).unwrap(); // adult -> senior
    input.pipe_input(s("ann"), Some(12)).unwrap(); // leaves the filtered table
    assert_eq!(
        driver::key_values::<String, Option<i64>>(&driver, "counts"),
        vec![
            (s("adult"), Some(1)),
            (s("adult"), Some(0)),
            (s("senior"), Some(1)),
            (s("senior"), Some(0)),
        ]
    );
}

#[test]

fn a_table_source_uses_the_timestamp_extractor_it_is_given() {
    use streams_core::time::FnExtractor;
    let builder = StreamsBuilder::new();
    builder
        .table_with(
            "prices",
            Consumed::with(default_serde(), default_serde()).with_timestamp_extractor(
                // Event time in seconds, carried in the value.
                FnExtractor(|r: &Record<String, String>| {
                    r.value.parse::<i64>().map_or(-1, |secs| secs * 1_000)
                }),
            ),
            Materialized::<String, String>::as_("prices-store"),
        )
        .to_stream()
        .to("price-changes");
    let driver = driver(builder).unwrap();
    let input = driver.input_topic::<String, Option<String>>("prices");
    input.pipe_input_at(s("p1"), Some(s("42")), 1).unwrap();
    assert_eq!(
        updates::<String>(&driver, "price-changes"),
        vec![(s("p1"), Some(s("42")), 42_000)]
    );
}

#[test]
fn ktable_group_by_over_four_partitions_ends_with_exact_counts() {
    let driver = partitioned(users_per_region().build().unwrap(), "user-regions", 4);
    let input = driver.input_topic::<String, Option<String>>("user-regions");
    let regions = ["eu", "us", "apac"];
    // 30 users; user i starts in regions[i % 3], then users divisible by 5 move to the next
    // region, and users divisible by 7 are deleted.
    for i in 0..30 {
        input
            .pipe_input(format!("user-{i}"), Some(s(regions[i % 3])))
            .unwrap();
    }
    for i in (0..30).filter(|i| i % 5 == 0) {
        input
            .pipe_input(format!("user-{i}"), Some(s(regions[(i + 1) % 3])))
            .unwrap();
    }
    for i in (0..30).filter(|i| i % 7 == 0) {
        input.pipe_input(format!("user-{i}"), None).unwrap();
    }
    // Computed by hand. Start: eu 0,3,..,27; us 1,4,..,28; apac 2,5,..,29 (10 each).
    // Moves: 0 eu->us, 5 apac->eu, 10 us->apac, 15 eu->us, 20 apac->eu, 25 us->apac
    // (eu 10, us 10, apac 10 again). Deletes: 0 (us), 7 (us), 14 (apac), 21 (eu), 28 (us).
    // Final: eu 9, us 7, apac 9.
    assert_eq!(
        store_content::<i64>(&driver, "users-per-region"),
        vec![(s("apac"), 9), (s("eu"), 9), (s("us"), 7)]
    );
    let finals = driver
        .output_topic::<String, Option<i64>>("counts")
        .read_key_values_to_map()
        .unwrap();
    assert_eq!(finals[&s("eu")], Some(9));
    assert_eq!(finals[&s("us")], Some(7));
    assert_eq!(finals[&s("apac")], Some(9));
}

#[test]

fn records_with_a_none_grouping_key_are_dropped_by_aggregations() {
    let builder = StreamsBuilder::new();
    builder
        .stream::<String, String>("visits") // user -> referrer ("" when unknown)
        .group_by(|_, referrer| (!referrer.is_empty()).then(|| referrer.clone()))
        .count_with(Materialized::as_("visits-per-referrer"))
        .to_stream()
        .to("counts");
    let driver = partitioned(builder.build().unwrap(), "visits", 4);
    let input = driver.input_topic::<String, String>("visits");
    for i in 0..8 {
        input.pipe_input(format!("u{i}"), s("")).unwrap();
    }
    input.pipe_input(s("u1"), s("search")).unwrap();
    let store = driver
        .key_value_store::<Option<String>, i64>("visits-per-referrer")
        .unwrap();
    assert_eq!(store.all().unwrap(), vec![(Some(s("search")), 1)]);
    assert_eq!(
        driver::key_values::<Option<String>, Option<i64>>(&driver, "counts"),
        vec![(Some(s("search")), Some(1))]
    );
    assert_eq!(driver.metrics().dropped_records, 8);
}

/// `Materialized::with_caching_disabled` turns the cache off for one store: every update is
/// forwarded at once, while the application's cache stays on for the others (a table whose
/// store was not cached once forwarded nothing at all).
#[test]
fn materialized_with_caching_disabled_forwards_every_update() -> Result<(), StreamsError> {
    use std::time::Duration;
    use streams_core::window::TimeWindows;
    let builder = StreamsBuilder::new();
    builder
        .table_with(
            "regions",
            Consumed::with(default_serde::<String>(), default_serde::<String>()),
            Materialized::as_("regions-store").with_caching_disabled(),
        )
        .to_stream()
        .to("region-changes");
    let views = builder.stream::<String, String>("views");
    views
        .group_by_key()
        .count_with(Materialized::as_("view-counts").with_caching_disabled())
        .to_stream()
        .to("counts");
    views
        .group_by_key()
        .windowed_by(TimeWindows::of_size_with_no_grace(Duration::from_secs(60)))
        .count_with(Materialized::as_("windowed-counts").with_caching_disabled())
        .to_stream()
        .map(|k, v| (k.key, v))
        .to("windowed");
    let driver = driver(builder)?;
    let regions = driver.input_topic::<String, Option<String>>("regions");
    regions.pipe_input(s("u1"), Some(s("eu")))?;
    regions.pipe_input(s("u1"), Some(s("us")))?;
    regions.pipe_input(s("u1"), None)?;
    let changes = driver.output_topic::<String, Option<String>>("region-changes");
    assert_eq!(
        changes.read_values_to_list()?,
        vec![Some(s("eu")), Some(s("us")), None]
    );
    let input = driver.input_topic::<String, String>("views");
    for t in [1_000, 2_000, 3_000] {
        input.pipe_input_at(s("p"), s("/"), t)?;
    }
    let counts = driver.output_topic::<String, Option<i64>>("counts");
    assert_eq!(
        counts.read_values_to_list()?,
        vec![Some(1), Some(2), Some(3)]
    );
    let windowed = driver.output_topic::<String, Option<i64>>("windowed");
    assert_eq!(
        windowed.read_values_to_list()?,
        vec![Some(1), Some(2), Some(3)]
    );
    Ok(())
}

/// The aggregations of a stream with null values (`None` of an `Option` value), as Kafka
/// Streams runs them: `KStreamAggregate` and `KStreamReduce` (count, reduce, aggregate,
/// before and after a repartition) and `KStreamSlidingWindowAggregate` skip a record whose
/// value is null and count it as dropped; `KStreamWindowAggregate` (time windows) hands it
/// to the aggregator, so a windowed count counts it. Recounted with a HashMap, cache on and
/// off, one and three partitions.
#[test]
fn stream_aggregations_drop_null_values_as_kafka_does() {
    use std::collections::HashMap;
    use std::time::Duration;
    use streams_core::window::{SlidingWindows, TimeWindows};
    // 60 records over 5 keys; every third value is null. Timestamps only grow, so no
    // window is ever late.
    let input: Vec<(String, Option<String>, i64)> = (0..60i64)
        .map(|i| {
            let key = format!("k{}", (i * 7) % 5);
            let value = (i % 3 != 0).then(|| format!("v{i}"));
            (key, value, 1_000 * i)
        })
        .collect();
    let nulls = input.iter().filter(|(_, v, _)| v.is_none()).count() as u64;
    let mut counts: HashMap<String, i64> = HashMap::new();
    let mut joined: HashMap<String, String> = HashMap::new();
    let mut by_group: HashMap<String, i64> = HashMap::new();
    let mut windowed: HashMap<String, i64> = HashMap::new();
    for (k, v, ts) in &input {
        // Time windows of 10 s count every record, null or not.
        *windowed
            .entry(format!("{k}@{}", ts / 10_000 * 10_000))
            .or_default() += 1;
        let Some(v) = v else { continue };
        *counts.entry(k.clone()).or_default() += 1;
        joined
            .entry(k.clone())
            .and_modify(|a| *a = format!("{a},{v}"))
            .or_insert_with(|| v.clone());
        *by_group
            .entry(k[1..].parse::<i64>().unwrap_or(0).rem_euclid(2).to_string())
            .or_default() += 1;
    }
    // Sliding windows of 5 s: the final count of each record's left window [t - 5 s, t]
    // counts the non-null records of the key in it.
    let mut sliding: HashMap<String, i64> = HashMap::new();
    for (k, v, t) in &input {
        if v.is_none() {
            continue;
        }
        let n = input
            .iter()
            .filter(|(k2, v2, t2)| k2 == k && v2.is_some() && *t2 >= t - 5_000 && t2 <= t)
            .count() as i64;
        sliding.insert(format!("{k}@{}", (t - 5_000).max(0)), n);
    }
    for partitions in [1, 3] {
        for (label, config) in [
            ("cache on", StreamsConfig::new(APP)),
            ("cache off", StreamsConfig::new(APP).with_cache_max_bytes(0)),
        ] {
            let builder = StreamsBuilder::new();
            let views = builder.stream::<String, Option<String>>("in");
            let grouped = views.group_by_key();
            grouped.count().to_stream().to("counts");
            grouped
                .reduce(|a: Option<String>, b: Option<String>| {
                    Some(format!(
                        "{},{}",
                        a.unwrap_or_default(),
                        b.unwrap_or_default()
                    ))
                })
                .to_stream()
                .to("joined");
            views
                .group_by(|k, _| (k[1..].parse::<i64>().unwrap_or(0) % 2).to_string())
                .aggregate(|| 0i64, |_, _v, n| n + 1)
                .to_stream()
                .to("by-group");
            let window_key =
                |k: Windowed<String>, v: Option<i64>| (format!("{}@{}", k.key, k.window.start), v);
            grouped
                .windowed_by(TimeWindows::of_size_with_no_grace(Duration::from_secs(10)))
                .count()
                .to_stream()
                .map(window_key)
                .to("windowed");
            grouped
                .windowed_by_sliding(SlidingWindows::of_time_difference_and_grace(
                    Duration::from_secs(5),
                    Duration::from_secs(3600),
                ))
                .count()
                .to_stream()
                .map(window_key)
                .to("sliding");
            let topology = builder.build().unwrap();
            let driver = driver::with_partitions(topology, config, &[("in", partitions)]);
            let topic = driver.input_topic::<String, Option<String>>("in");
            for (k, v, ts) in &input {
                topic.pipe_input_at(k.clone(), v.clone(), *ts).unwrap();
            }
            let last = |t: &str| -> HashMap<String, Option<i64>> {
                driver::key_values::<String, Option<i64>>(&driver, t)
                    .into_iter()
                    .collect()
            };
            let wrap = |m: &HashMap<String, i64>| -> HashMap<String, Option<i64>> {
                m.iter().map(|(k, v)| (k.clone(), Some(*v))).collect()
            };
            let run = format!("{label}, {partitions} partitions");
            assert_eq!(last("counts"), wrap(&counts), "count, {run}");
            assert_eq!(
                last("by-group"),
                wrap(&by_group),
                "aggregate after group_by, {run}"
            );
            assert_eq!(
                last("windowed"),
                wrap(&windowed),
                "time-windowed count, {run}"
            );
            // Sliding windows also include right windows; their left windows must match.
            let sliding_out = last("sliding");
            for (w, n) in &sliding {
                assert_eq!(
                    sliding_out.get(w),
                    Some(&Some(*n)),
                    "sliding window {w}, {run}"
                );
            }
            let reduced: HashMap<String, Option<String>> =
                driver::key_values::<String, Option<Option<String>>>(&driver, "joined")
                    .into_iter()
                    .map(|(k, v)| (k, v.flatten()))
                    .collect();
            let expected: HashMap<String, Option<String>> = joined
                .iter()
                .map(|(k, v)| (k.clone(), Some(v.clone())))
                .collect();
            assert_eq!(reduced, expected, "reduce, {run}");
            // Dropped by count, reduce, the aggregation after group_by and the sliding
            // windows; not by the time windows.
            assert_eq!(
                driver.metrics().dropped_records,
                4 * nulls,
                "dropped, {run}"
            );
        }
    }
}

#[test]
fn an_unnamed_table_store_is_named_after_its_topic_as_in_kafka() {
    // Kafka's `builder.table("users")`: store name `users-STATE-STORE-0000000000`, then the
    // source `KSTREAM-SOURCE-0000000001` and the table source `KTABLE-SOURCE-0000000002`.
    // The store exists only once an operator reads the table (here a join); until then
    // the table is not materialized (Kafka's `stores: []`) nor queryable.
    for joined in [false, true] {
        let builder = StreamsBuilder::new();
        let users = builder.table::<String, String>("users");
        users.to_stream().to("out");
        if joined {
            builder
                .stream::<String, String>("views")
                .join_table(&users, |v: &String, u: &String| format!("{v}{u}"))
                .to("joined");
        }
        assert_eq!(users.queryable_store_name(), None);
        let topology = builder.build().unwrap();
        let nodes: Vec<(String, NodeType)> = topology.describe().subtopologies[0]
            .nodes
            .iter()
            .map(|n| (n.name.clone(), n.kind.clone()))
            .collect();
        let store = s("users-STATE-STORE-0000000000");
        let stores = if joined { vec![store.clone()] } else { vec![] };
        assert_eq!(nodes[0].0, "KSTREAM-SOURCE-0000000001");
        assert_eq!(
            nodes[1],
            (
                s("KTABLE-SOURCE-0000000002"),
                NodeType::Processor {
                    stores: stores.clone()
                }
            )
        );
        let names: Vec<String> = topology
            .store_names()
            .iter()
            .map(|n| n.to_string())
            .collect();
        assert_eq!(names, stores);
        let driver = driver_for(topology);
        driver
            .input_topic::<String, String>("users")
            .pipe_input(s("u1"), s("eu"))
            .unwrap();
        let users = driver.key_value_store::<String, String>(&store);
        if joined {
            assert_eq!(users.unwrap().get(&s("u1")).unwrap(), Some(s("eu")));
        } else {
            assert!(users.is_err());
        }
    }
}

#[allow(clippy::unwrap_used)] // a panic fails the test
fn driver_for(topology: Topology) -> TopologyTestDriver {
    TopologyTestDriver::new(topology, StreamsConfig::new(APP)).unwrap()
}

#[test]
fn a_named_grouping_names_its_key_selector_and_repartition_as_in_kafka() {
    // Kafka's `groupBy(selector, Grouped.as("by-page"))`: the key selector is the node
    // `by-page`, followed by `by-page-repartition-filter` and `-sink`; the topic is
    // `<application.id>-by-page-repartition`.
    let builder = StreamsBuilder::new();
    builder
        .stream::<String, String>("views")
        .group_by_with(
            |_user, page: &String| page.clone(),
            Grouped::with(default_serde(), default_serde()).with_name("by-page"),
        )
        .count()
        .to_stream()
        .to("out");
    let topology = builder.build().unwrap();
    let description = topology.describe();
    let names = |i: usize| -> Vec<String> {
        description.subtopologies[i]
            .nodes
            .iter()
            .map(|n| n.name.clone())
            .collect()
    };
    assert_eq!(
        names(0),
        vec![
            "KSTREAM-SOURCE-0000000000",
            "by-page",
            "by-page-repartition-filter",
            "by-page-repartition-sink"
        ]
    );
    assert_eq!(names(1)[0], "by-page-repartition-source");
    assert_eq!(
        topology.repartition_topics(APP),
        vec![format!("{APP}-by-page-repartition")]
    );
    let driver = driver_for(topology);
    let views = driver.input_topic::<String, String>("views");
    for (user, page) in [("u1", "/a"), ("u2", "/a"), ("u1", "/b")] {
        views.pipe_input(s(user), s(page)).unwrap();
    }
    let counts: std::collections::HashMap<String, Option<i64>> =
        driver::key_values(&driver, "out").into_iter().collect();
    assert_eq!(counts[&s("/a")], Some(2));
    assert_eq!(counts[&s("/b")], Some(1));
}

/// Kafka's `KTableSource`: an unnamed `builder.table(topic)` that no operator reads is not
/// materialized, so it forwards every record as it comes (no cache), a delete of a key it
/// never held included; once a join (or a re-grouping, or suppression) reads it, Kafka
/// materializes it with a cache, which coalesces a commit's updates and drops the deletes
/// of absent keys. Cache on and off, one batch (one commit) and one record per commit.
#[test]
fn an_unnamed_table_forwards_every_record_until_an_operator_reads_it() {
    let updates_in: Vec<(String, Option<String>)> = vec![
        (s("u1"), Some(s("eu"))),
        (s("u2"), None), // never held
        (s("u1"), Some(s("us"))),
        (s("u1"), None),
        (s("u1"), None), // no longer held
    ];
    let every_update: Vec<(String, Option<String>)> = updates_in.clone();
    // What a table store forwards: the changes of keys it held (u2's and u1's second
    // delete change nothing).
    let held_changes: Vec<(String, Option<String>)> = vec![
        (s("u1"), Some(s("eu"))),
        (s("u1"), Some(s("us"))),
        (s("u1"), None),
    ];
    for cache_bytes in [0, 10 << 20] {
        for read_by_join in [false, true] {
            for batch in [false, true] {
                let builder = StreamsBuilder::new();
                let regions = builder.table::<String, String>("regions");
                regions.to_stream().to("region-changes");
                if read_by_join {
                    builder
                        .stream::<String, String>("views")
                        .join_table(&regions, |page: &String, region: &String| {
                            format!("{page}@{region}")
                        })
                        .to("enriched");
                }
                let config = StreamsConfig::new(APP).with_cache_max_bytes(cache_bytes);
                let driver = TopologyTestDriver::new(builder.build().unwrap(), config).unwrap();
                let input = driver.input_topic::<String, Option<String>>("regions");
                if batch {
                    input.pipe_key_values(updates_in.clone()).unwrap();
                } else {
                    for (k, v) in &updates_in {
                        input.pipe_input(k.clone(), v.clone()).unwrap();
                    }
                }
                let expected = match (read_by_join, cache_bytes > 0 && batch) {
                    (false, _) => every_update.clone(),
                    // One commit: the cache holds u1 -> deleted, a key the store never had.
                    (true, true) => Vec::new(),
                    (true, false) => held_changes.clone(),
                };
                assert_eq!(
                    driver::key_values::<String, Option<String>>(&driver, "region-changes"),
                    expected,
                    "cache {cache_bytes}, read by a join {read_by_join}, batch {batch}"
                );
            }
        }
    }
}

/// Kafka's `KTableRepartitionMap`: a table re-grouping skips a selected pair whose key or
/// value is null (here `None` of an `Option`), for the new and the old value alike, so the
/// aggregation neither adds nor subtracts it. Recounted by hand: users per region, where a
/// user without a known region is left out.
#[test]
fn a_table_regrouping_skips_pairs_with_a_null_key_or_value() {
    let builder = StreamsBuilder::new();
    builder
        .table::<String, String>("user-regions")
        .group_by(|user: String, region: String| {
            // No region key for "?"; no value for users marked as hidden.
            let key = (region != "?").then(|| region.clone());
            let value = (!user.starts_with("hidden")).then_some(user);
            (key, value)
        })
        .count()
        .to_stream()
        .to("per-region");
    let driver = driver(builder).unwrap();
    let input = driver.input_topic::<String, Option<String>>("user-regions");
    input.pipe_input(s("alice"), Some(s("eu"))).unwrap();
    input.pipe_input(s("bob"), Some(s("?"))).unwrap(); // null key: skipped
    input.pipe_input(s("hidden-carol"), Some(s("eu"))).unwrap(); // null value: skipped
    input.pipe_input(s("bob"), Some(s("eu"))).unwrap(); // old pair null: only the add
    input.pipe_input(s("alice"), Some(s("?"))).unwrap(); // new pair null: only the subtract
    let counts = driver::key_values::<Option<String>, Option<i64>>(&driver, "per-region");
    assert_eq!(
        counts,
        vec![
            (Some(s("eu")), Some(1)),
            (Some(s("eu")), Some(2)),
            (Some(s("eu")), Some(1)),
        ]
    );
    assert_eq!(driver.metrics().dropped_records, 0);
}

/// Kafka's `KTableSource` drops (and counts) a record with a null key, whether or not the
/// table is materialized: neither the table nor a join reading it sees it.
#[test]
fn a_table_source_drops_null_keys_materialized_or_not() {
    for joined in [false, true] {
        let builder = StreamsBuilder::new();
        let users = builder.table::<Option<String>, String>("users");
        users.to_stream().to("changes");
        if joined {
            builder
                .stream::<Option<String>, String>("views")
                .join_table(&users, |v: &String, u: &String| format!("{v}@{u}"))
                .to("joined");
        }
        let driver = driver(builder).unwrap();
        let input = driver.input_topic::<Option<String>, String>("users");
        input.pipe_input(None, s("nowhere")).unwrap();
        input.pipe_input(Some(s("u1")), s("eu")).unwrap();
        assert_eq!(
            driver::key_values::<Option<String>, Option<String>>(&driver, "changes"),
            vec![(Some(s("u1")), Some(s("eu")))],
            "joined: {joined}"
        );
        assert_eq!(driver.metrics().dropped_records, 1, "joined: {joined}");
    }
}
