//! Foreign-key table-table joins (KIP-213) against maps kept in the test: random updates and
//! deletes of orders (order -> product, quantity) and products (product -> name), with
//! foreign keys that change, on tables with different partition counts (a foreign-key join
//! needs no co-partitioning), record cache on and off. After every input is processed the
//! last result of each order must be the join of the final tables (inner: the order and its
//! product exist; left: the order exists), a downstream `group_by` count per product name
//! must end at the plain count (it needs correct old values), and the result store must
//! hold exactly the expected rows.

// Test helpers outside #[test] functions may unwrap too: a panic fails the test.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use proptest::prelude::*;
use serde::{Deserialize, Serialize};
use streams_core::config::DslStore;
use streams_core::prelude::*;
use streams_tests::driver;

mod join_common;
use join_common::update;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, StreamsSerde)]
#[streams(format = "json")]
struct Order {
    product: String,
    qty: i64,
}

#[derive(Debug, Clone)]
enum Step {
    Order(usize, Option<(usize, i64)>),
    Product(usize, Option<usize>),
}

fn steps() -> impl Strategy<Value = Vec<Step>> {
    proptest::collection::vec(
        prop_oneof![
            (
                0usize..8,
                proptest::option::weighted(0.8, (0usize..4, 1i64..5))
            )
                .prop_map(|(o, v)| Step::Order(o, v)),
            (0usize..4, proptest::option::weighted(0.8, 0usize..3))
                .prop_map(|(p, v)| Step::Product(p, v)),
        ],
        1..60,
    )
}

fn result(order: &Order, name: Option<&String>) -> String {
    format!("{}x{}", order.qty, name.map_or("?", |n| n.as_str()))
}

/// The product name in a [`result`].
fn name_of(result: &str) -> &str {
    &result[result.find('x').unwrap() + 1..]
}

fn run(
    left: bool,
    cache: bool,
    orders_p: u32,
    products_p: u32,
    steps: &[Step],
) -> Result<(), TestCaseError> {
    let builder = StreamsBuilder::new();
    let products = builder.table::<String, String>("products");
    let orders = builder.table::<String, Order>("orders");
    let product = |o: &Order| o.product.clone();
    let name = || Named::as_("lines");
    let store = || Materialized::as_("lines-store").with_value_serde(default_serde::<String>());
    let joined = if left {
        orders.left_join_on_foreign_key_with(&products, product, result, name(), store())
    } else {
        let joiner = |o: &Order, name: &String| result(o, Some(name));
        orders.join_on_foreign_key_with(&products, product, joiner, name(), store())
    };
    joined.to_stream().to("out");
    joined
        .group_by(|_k, v: String| (name_of(&v).to_string(), v))
        .count()
        .to_stream()
        .to("per-name");
    let config = join_common::config("fk", cache, DslStore::default());
    let mut driver = driver::with_partitions(
        builder.build().unwrap(),
        config,
        &[("orders", orders_p), ("products", products_p)],
    );
    let orders_in = driver.input_topic::<String, Option<Order>>("orders");
    let products_in = driver.input_topic::<String, Option<String>>("products");
    let mut o_table: BTreeMap<String, Order> = BTreeMap::new();
    let mut p_table: BTreeMap<String, String> = BTreeMap::new();
    for (i, s) in steps.iter().enumerate() {
        let ts = i as i64;
        match s {
            Step::Order(o, v) => {
                let key = format!("o{o}");
                let value = v.map(|(p, qty)| Order {
                    product: format!("p{p}"),
                    qty,
                });
                orders_in
                    .pipe_input_at(key.clone(), value.clone(), ts)
                    .unwrap();
                update(&mut o_table, key, value);
            }
            Step::Product(p, v) => {
                let key = format!("p{p}");
                let value = v.map(|n| format!("name{n}"));
                products_in
                    .pipe_input_at(key.clone(), value.clone(), ts)
                    .unwrap();
                update(&mut p_table, key, value);
            }
        }
    }
    driver.commit().unwrap();
    let mut want: BTreeMap<String, String> = BTreeMap::new();
    for (k, o) in &o_table {
        let name = p_table.get(&o.product);
        if left || name.is_some() {
            want.insert(k.clone(), result(o, name));
        }
    }
    // The last result of each order (collecting keeps a key's last value).
    let last: BTreeMap<String, Option<String>> = driver
        .output_topic::<String, Option<String>>("out")
        .read_key_values_to_list()
        .unwrap()
        .into_iter()
        .collect();
    let got: BTreeMap<String, String> = last
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k, v)))
        .collect();
    prop_assert_eq!(&got, &want);
    let store = driver
        .key_value_store::<String, String>("lines-store")
        .unwrap();
    let stored: BTreeMap<String, String> = store.all().unwrap().into_iter().collect();
    prop_assert_eq!(&stored, &want);
    // Counts per product name (with "?" for a left join's missing product).
    let mut want_counts: BTreeMap<String, i64> = BTreeMap::new();
    for v in want.values() {
        *want_counts.entry(name_of(v).to_string()).or_default() += 1;
    }
    let mut counts: BTreeMap<String, i64> = driver
        .output_topic::<String, Option<i64>>("per-name")
        .read_key_values_to_list()
        .unwrap()
        .into_iter()
        .map(|(k, v)| (k, v.unwrap_or(0)))
        .collect();
    counts.retain(|_, n| *n != 0);
    prop_assert_eq!(counts, want_counts);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]
    #[test]
    fn foreign_key_joins_match_the_joined_tables(
        left in any::<bool>(),
        cache in any::<bool>(),
        orders_p in 1u32..=3,
        products_p in 1u32..=3,
        steps in steps(),
    ) {
        run(left, cache, orders_p, products_p, &steps)?;
    }
}

/// A stale response (the order changed its product before the answer for the old one
/// arrived) is dropped: only the answer for the current value counts.
#[test]
fn changing_the_foreign_key_retracts_the_old_result() {
    let builder = StreamsBuilder::new();
    let products = builder.table::<String, String>("products");
    builder
        .table::<String, Order>("orders")
        .join_on_foreign_key(
            &products,
            |o| o.product.clone(),
            |o, n| format!("{}x{n}", o.qty),
        )
        .to_stream()
        .to("out");
    let config = StreamsConfig::new("fk").with_cache_max_bytes(0);
    let driver = TopologyTestDriver::new(builder.build().unwrap(), config).unwrap();
    let products = driver.input_topic::<String, Option<String>>("products");
    let orders = driver.input_topic::<String, Option<Order>>("orders");
    let out = driver.output_topic::<String, Option<String>>("out");
    products
        .pipe_input("p1".into(), Some("pen".into()))
        .unwrap();
    let order = |p: &str, qty| {
        Some(Order {
            product: p.into(),
            qty,
        })
    };
    orders.pipe_input("o1".into(), order("p1", 2)).unwrap();
    assert_eq!(
        out.read_values_to_list().unwrap(),
        vec![Some("2xpen".to_string())]
    );
    // Moves to a product that does not exist: the inner join's result disappears.
    orders.pipe_input("o1".into(), order("p9", 2)).unwrap();
    assert_eq!(out.read_values_to_list().unwrap(), vec![None]);
    // The old product changing no longer reaches o1.
    products
        .pipe_input("p1".into(), Some("ink pen".into()))
        .unwrap();
    assert!(out.read_values_to_list().unwrap().is_empty());
    products
        .pipe_input("p9".into(), Some("cup".into()))
        .unwrap();
    assert_eq!(
        out.read_values_to_list().unwrap(),
        vec![Some("2xcup".to_string())]
    );
    orders.pipe_input("o1".into(), None).unwrap();
    assert_eq!(out.read_values_to_list().unwrap(), vec![None]);
}

/// Kafka 3.7+'s subscription instructions for rows that never joined: an inner join sends
/// no tombstone when a non-joining row is updated with the same foreign key; deleting it
/// sends one when the result has no caching store (unnamed, or `with_caching_disabled`:
/// Kafka's `KTableKTableForeignKeyJoinIntegrationTest`), not with one; a row whose foreign
/// key is null
/// is dropped and counted by an inner join and joins nothing in a left join, and deleting
/// it retracts the left join's result.
#[test]
fn rows_that_never_joined_and_null_foreign_keys_follow_kafka() {
    // (left join, result store: none, named and cached, named and not cached)
    let cases = [false, true].into_iter().flat_map(|left| {
        [None, Some(true), Some(false)]
            .into_iter()
            .map(move |store| (left, store))
    });
    for (left, store) in cases {
        let materialized = match store {
            None => Materialized::new(),
            Some(true) => Materialized::as_("result"),
            Some(false) => Materialized::as_("result").with_caching_disabled(),
        }
        .with_value_serde(default_serde());
        let builder = StreamsBuilder::new();
        // Products keyed by an optional id, so that an order's foreign key can be null.
        let products = builder.table::<Option<String>, String>("products");
        let orders = builder.table::<String, Order>("orders");
        let fk = |o: &Order| (!o.product.is_empty()).then(|| o.product.clone());
        let joined = if left {
            orders.left_join_on_foreign_key_with(
                &products,
                fk,
                |o: &Order, n: Option<&String>| {
                    format!("{}x{}", o.qty, n.map_or("?", |n| n.as_str()))
                },
                Named::none(),
                materialized,
            )
        } else {
            orders.join_on_foreign_key_with(
                &products,
                fk,
                |o: &Order, n: &String| format!("{}x{n}", o.qty),
                Named::none(),
                materialized,
            )
        };
        joined.to_stream().to("out");
        let config = StreamsConfig::new("fk").with_cache_max_bytes(0);
        let driver = TopologyTestDriver::new(builder.build().unwrap(), config).unwrap();
        let orders = driver.input_topic::<String, Option<Order>>("orders");
        let out = driver.output_topic::<String, Option<String>>("out");
        let order = |p: &str, qty| {
            Some(Order {
                product: p.into(),
                qty,
            })
        };
        let label = format!("{}, store {store:?}", if left { "left" } else { "inner" });

        // A row whose product does not exist, then updated with the same product.
        orders.pipe_input("o1".into(), order("p1", 1)).unwrap();
        orders.pipe_input("o1".into(), order("p1", 2)).unwrap();
        let want: Vec<Option<String>> = if left {
            vec![Some("1x?".into()), Some("2x?".into())]
        } else {
            vec![]
        };
        assert_eq!(out.read_values_to_list().unwrap(), want, "{label}");
        // Deleted: the left join retracts its result; the inner join cannot know that it
        // sent none unless a caching store tells it, as in Kafka.
        orders.pipe_input("o1".into(), None).unwrap();
        let tombstone = left || store != Some(true);
        let want: Vec<Option<String>> = if tombstone { vec![None] } else { vec![] };
        assert_eq!(out.read_values_to_list().unwrap(), want, "{label}");

        // A null foreign key.
        let dropped = driver.metrics().dropped_records;
        orders.pipe_input("o2".into(), order("", 3)).unwrap();
        if left {
            assert_eq!(
                out.read_values_to_list().unwrap(),
                vec![Some("3x?".to_string())],
                "{label}"
            );
        } else {
            assert!(out.read_values_to_list().unwrap().is_empty(), "{label}");
            assert_eq!(driver.metrics().dropped_records, dropped + 1, "{label}");
        }
        orders.pipe_input("o2".into(), None).unwrap();
        let want: Vec<Option<String>> = if left { vec![None] } else { vec![] };
        assert_eq!(out.read_values_to_list().unwrap(), want, "{label}");
    }
}
