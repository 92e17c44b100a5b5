//! Interactive queries: read an app's state stores directly, while it runs.
//!
//! The app sums purchases per customer into a store named `spend-per-customer`. It runs for
//! real: `KafkaStreams` (stream threads, RocksDB stores, changelogs) on the embedded log
//! engine in a temporary directory, no broker needed. Once it has processed its input, the
//! example asks the store for single keys and for every entry, and asks the app which
//! partition holds a key. With several instances, each one answers for its own partitions.
//!
//! Run it with `cargo run -p streams-examples --example interactive_query`.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use streams_core::partitioner::partition_for_key;
use streams_core::prelude::*;
use streams_core::runtime::{KafkaStreams, LogEngine, NewRecord, TopicConfig};

const PURCHASES: &str = "purchases";
const STORE: &str = "spend-per-customer";
const PARTITIONS: u32 = 3;

/// `(customer, amount)`, in the order they are written.
const INPUT: [(&str, i64); 7] = [
    ("alice", 30),
    ("bob", 12),
    ("alice", 8),
    ("carol", 50),
    ("bob", 5),
    ("alice", 2),
    ("dave", 99),
];

fn topology() -> Result<Topology, TopologyError> {
    let builder = StreamsBuilder::new();
    builder
        .stream::<String, i64>(PURCHASES)
        .group_by_key()
        // The store's name makes it queryable.
        .reduce_with(|total, amount| total + amount, Materialized::as_(STORE));
    builder.build()
}

/// What the example learned from the running app.
struct Answers {
    /// Per customer of the input, and one who never bought anything: the store's answer to
    /// `get`, and the partition that holds the key.
    lookups: BTreeMap<String, (Option<i64>, u32)>,
    /// Every entry of the store.
    all: BTreeMap<String, i64>,
}

/// Writes `input` to an engine in `dir`, runs the app until it caught up and queries it.
fn run(dir: &Path, input: &[(&str, i64)]) -> Result<Answers, Box<dyn std::error::Error>> {
    // The engine stands in for Kafka: create the topic and write the purchases into it,
    // each to the partition a Kafka producer would pick for its key.
    let engine = Arc::new(LogEngine::open(&dir.join("log"))?);
    engine.create_topic(PURCHASES, TopicConfig::new(PARTITIONS))?;
    let (keys, values) = (default_serde::<String>(), default_serde::<i64>());
    for (customer, amount) in input {
        let key = keys.serialize(&customer.to_string())?;
        let partition = partition_for_key(&key, PARTITIONS);
        let record = NewRecord {
            timestamp: 0,
            key: Some(key),
            value: Some(values.serialize(amount)?),
            headers: Vec::new(),
        };
        engine.append(PURCHASES, partition, &[record])?;
    }

    let config = StreamsConfig::new("interactive-query").with_state_dir(dir.join("state"));
    let mut app = KafkaStreams::new(topology()?, config, engine)?;
    app.start()?;
    app.wait_until_caught_up(Duration::from_secs(30))?;

    // A read-only view of the store over the tasks running on this instance (all of them).
    let store = app.key_value_store::<String, i64>(STORE)?;
    let mut lookups = BTreeMap::new();
    for customer in input
        .iter()
        .map(|(c, _)| c.to_string())
        .chain(["zoe".into()])
    {
        let total = store.get(&customer)?;
        // Where the key lives: with several instances, the one to ask.
        let partition = app
            .query_metadata_for_key(STORE, &customer, &*keys)?
            .partition;
        lookups.insert(customer, (total, partition));
    }
    let all = store.all()?.into_iter().collect();
    app.close()?;
    Ok(Answers { lookups, all })
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let answers = run(dir.path(), &INPUT)?;
    println!("store.get(customer):");
    for (customer, (total, partition)) in &answers.lookups {
        println!("  {customer:<6} -> {total:?} (partition {partition})");
    }
    println!("store.all(): {:?}", answers.all);
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    #[test]
    fn the_store_answers_with_the_sum_of_each_customers_purchases() {
        let mut expected: BTreeMap<String, i64> = BTreeMap::new();
        for (customer, amount) in super::INPUT {
            *expected.entry(customer.to_string()).or_default() += amount;
        }
        let dir = tempfile::tempdir().unwrap();
        let answers = super::run(dir.path(), &super::INPUT).unwrap();
        assert_eq!(answers.all, expected);
        assert_eq!(answers.lookups.len(), expected.len() + 1); // and "zoe"
        for (customer, (total, partition)) in &answers.lookups {
            assert_eq!(*total, expected.get(customer).copied(), "{customer}");
            assert!(*partition < super::PARTITIONS);
        }
        assert_eq!(answers.lookups["zoe"].0, None);
    }
}
