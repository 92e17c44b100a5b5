//! Versioned tables (KIP-889/914) and stream-table joins with a grace period (KIP-923),
//! against a step-by-step simulation in this file.
//!
//! Random interleavings of table updates (out of order in time, with tombstones) and stream
//! records (out of order too) on co-partitioned topics. The reference simulates each task:
//! the join holds a stream record until the task's largest stream timestamp is `grace` past
//! it (a record already that late joins at once), then joins it with the version of its key
//! valid at its timestamp among the table updates processed so far; the table's latest value
//! only moves forward in time (an older update enters the history only and is not forwarded).

// Test helpers outside #[test] functions may unwrap too: a panic fails the test.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::time::Duration;

use proptest::prelude::*;
use streams_core::partitioner::partition_for_key;
use streams_core::prelude::*;

const KEYS: [&str; 3] = ["a", "b", "c"];

#[derive(Debug, Clone)]
struct Step {
    table: bool,
    key: usize,
    ts: i64,
    /// For table updates: `None` is a tombstone.
    value: Option<i64>,
}

fn topology(left: bool, grace: i64) -> Topology {
    let builder = StreamsBuilder::new();
    let table = builder.table_with(
        "prices",
        Consumed::<String, i64>::with(default_serde(), default_serde()),
        Materialized::as_versioned("prices", Duration::from_secs(3600)),
    );
    let joined = Joined::new().with_grace_period(Duration::from_millis(grace as u64));
    let stream = builder.stream::<String, i64>("orders");
    let out = if left {
        stream.left_join_table_with(
            &table,
            |q, p| format!("{q}*{}", p.map_or("-".to_string(), |p| p.to_string())),
            joined,
        )
    } else {
        stream.join_table_with(&table, |q, p| format!("{q}*{p}"), joined)
    };
    out.to("out");
    table.to_stream().to("latest");
    builder.build().unwrap()
}

#[derive(Default)]
struct TaskSim {
    observed: i64,
    seq: u64,
    /// (ts, seq) -> (key, qty)
    buffer: BTreeMap<(i64, u64), (String, i64)>,
    /// key -> ts -> value (None: tombstone)
    history: BTreeMap<String, BTreeMap<i64, Option<i64>>>,
    /// key -> (latest ts)
    latest: BTreeMap<String, i64>,
}

fn as_of(sim: &TaskSim, key: &str, ts: i64) -> Option<i64> {
    sim.history
        .get(key)
        .and_then(|h| h.range(..=ts).next_back())
        .and_then(|(_, v)| *v)
}

fn run(left: bool, grace: i64, partitions: u32, steps: &[Step]) -> Result<(), TestCaseError> {
    let driver = TopologyTestDriver::builder(
        topology(left, grace),
        StreamsConfig::new("v").with_cache_max_bytes(0),
    )
    .partitions("prices", partitions)
    .partitions("orders", partitions)
    .build()
    .unwrap();
    let prices = driver.input_topic::<String, Option<i64>>("prices");
    let orders = driver.input_topic::<String, i64>("orders");
    let mut sims: BTreeMap<u32, TaskSim> = BTreeMap::new();
    let mut want: BTreeMap<String, Vec<(String, i64)>> = BTreeMap::new();
    let mut want_latest: BTreeMap<String, Vec<Option<i64>>> = BTreeMap::new();
    for s in steps {
        let key = KEYS[s.key].to_string();
        let sim = sims
            .entry(partition_for_key(key.as_bytes(), partitions))
            .or_insert_with(|| TaskSim {
                observed: i64::MIN,
                ..TaskSim::default()
            });
        if s.table {
            prices.pipe_input_at(key.clone(), s.value, s.ts).unwrap();
            sim.history
                .entry(key.clone())
                .or_default()
                .insert(s.ts, s.value);
            if sim.latest.get(&key).is_none_or(|l| s.ts >= *l) {
                sim.latest.insert(key.clone(), s.ts);
                // A tombstone for a key the table does not hold forwards nothing.
                let had = want_latest
                    .get(&key)
                    .and_then(|v| v.last().copied())
                    .flatten()
                    .is_some();
                if s.value.is_some() || had {
                    want_latest.entry(key.clone()).or_default().push(s.value);
                }
            }
            continue;
        }
        let qty = s.value.unwrap_or(1);
        orders.pipe_input_at(key.clone(), qty, s.ts).unwrap();
        sim.observed = sim.observed.max(s.ts);
        let bound = sim.observed - grace;
        let mut ready = Vec::new();
        if s.ts < bound {
            ready.push((s.ts, key.clone(), qty));
        } else {
            sim.buffer.insert((s.ts, sim.seq), (key.clone(), qty));
            sim.seq += 1;
            let keep = sim.buffer.split_off(&(bound, u64::MAX));
            for ((ts, _), (k, q)) in std::mem::replace(&mut sim.buffer, keep) {
                ready.push((ts, k, q));
            }
        }
        for (ts, k, q) in ready {
            let found = as_of(sim, &k, ts);
            let v = match (found, left) {
                (Some(p), _) => Some(format!("{q}*{p}")),
                (None, true) => Some(format!("{q}*-")),
                (None, false) => None,
            };
            if let Some(v) = v {
                want.entry(k).or_default().push((v, ts));
            }
        }
    }
    let mut got: BTreeMap<String, Vec<(String, i64)>> = BTreeMap::new();
    for r in driver
        .output_topic::<String, String>("out")
        .read_records_to_list()
        .unwrap()
    {
        got.entry(r.key).or_default().push((r.value, r.timestamp));
    }
    prop_assert_eq!(got, want);
    let mut latest: BTreeMap<String, Vec<Option<i64>>> = BTreeMap::new();
    for (k, v) in driver
        .output_topic::<String, Option<i64>>("latest")
        .read_key_values_to_list()
        .unwrap()
    {
        latest.entry(k).or_default().push(v);
    }
    prop_assert_eq!(latest, want_latest);
    Ok(())
}

fn steps() -> impl Strategy<Value = Vec<Step>> {
    proptest::collection::vec(
        (
            any::<bool>(),
            0..KEYS.len(),
            0i64..200,
            proptest::option::weighted(0.85, 1i64..9),
        ),
        1..60,
    )
    .prop_map(|raw| {
        raw.into_iter()
            .map(|(table, key, ts, value)| Step {
                table,
                key,
                ts,
                value,
            })
            .collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
    #[test]
    fn grace_joins_use_the_version_valid_at_each_record(
        left in any::<bool>(),
        grace in 0i64..60,
        partitions in 1u32..=2,
        steps in steps(),
    ) {
        run(left, grace, partitions, &steps)?;
    }
}

#[test]
fn a_grace_period_needs_a_versioned_table() {
    let builder = StreamsBuilder::new();
    let table = builder.table::<String, i64>("prices");
    builder
        .stream::<String, i64>("orders")
        .join_table_with(
            &table,
            |q, p| q * p,
            Joined::new().with_grace_period(Duration::from_secs(1)),
        )
        .to("out");
    let err = builder.build().unwrap_err().to_string();
    assert!(err.contains("versioned"), "{err}");
}
