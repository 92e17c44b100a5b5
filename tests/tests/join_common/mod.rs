//! What the join tests share: the configurations their scenarios run in (record cache on or
//! off, store engine, partitions per input topic), the drivers started in them and the
//! scenarios' view of one ([`Run`]), the check that a joiner got the record's key, and the
//! tables a test keeps as its reference ([`update`], and the table-table joins' reference,
//! [`TableJoinModel`]).

// Test helpers may unwrap: a panic fails the test. Each test crate uses part of them.
#![allow(clippy::unwrap_used, dead_code)]

use std::collections::BTreeMap;
use std::fmt::Debug;

use streams_core::config::DslStore;
use streams_core::prelude::*;
use streams_tests::{JoinKind, driver};

/// The left input topic of a [`Run`].
pub(crate) const LEFT: &str = "left";
/// The right input topic of a [`Run`].
pub(crate) const RIGHT: &str = "right";
/// The output topic of a [`Run`].
pub(crate) const OUT: &str = "out";

/// One configuration a scenario runs in.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Setup {
    pub(crate) cache: bool,
    pub(crate) store: DslStore,
    pub(crate) partitions: u32,
}

impl Setup {
    /// Every setup: the record cache off and on, RocksDB and in-memory stores
    /// (`default.dsl.store`), each of `partitions` per input topic.
    pub(crate) fn all(partitions: &[u32]) -> Vec<Setup> {
        let mut out = Vec::new();
        for cache in [false, true] {
            for store in [DslStore::RocksDb, DslStore::InMemory] {
                for &partitions in partitions {
                    out.push(Setup {
                        cache,
                        store,
                        partitions,
                    });
                }
            }
        }
        out
    }

    /// A driver of application `app` on `topology` in this setup, each of `inputs` with
    /// its partitions.
    pub(crate) fn driver(
        self,
        app: &str,
        topology: Topology,
        inputs: &[&str],
    ) -> TopologyTestDriver {
        let partitions: Vec<(&str, u32)> = inputs.iter().map(|t| (*t, self.partitions)).collect();
        driver::with_partitions(topology, config(app, self.cache, self.store), &partitions)
    }
}

/// The configuration of application `app`: the record cache on or off, `store` as
/// `default.dsl.store`.
pub(crate) fn config(app: &str, cache: bool, store: DslStore) -> StreamsConfig {
    let config = StreamsConfig::new(app).with_default_dsl_store(store);
    if cache {
        config
    } else {
        config.with_cache_max_bytes(0)
    }
}

/// Which input a record goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    Left,
    Right,
}

/// The keys and output values of a [`Run`]: its checks compare and show them.
pub(crate) trait Checked: DefaultSerde + PartialEq + Debug + 'static {}
impl<T: DefaultSerde + PartialEq + Debug + 'static> Checked for T {}

/// The input values of a [`Run`].
pub(crate) trait Input: DefaultSerde + 'static {}
impl<T: DefaultSerde + 'static> Input for T {}

/// A driver running one join topology in one [`Setup`]: left input [`LEFT`] (`K` -> `L`),
/// right input [`RIGHT`] (`K` -> `R`), output [`OUT`] (`K` -> `O`).
pub(crate) struct Run<K, L, R, O> {
    pub(crate) setup: Setup,
    pub(crate) driver: TopologyTestDriver,
    pub(crate) left_in: TestInputTopic<K, L>,
    pub(crate) right_in: TestInputTopic<K, R>,
    pub(crate) out: TestOutputTopic<K, O>,
}

impl<K: Checked, L: Input, R: Input, O: Checked> Run<K, L, R, O> {
    /// Starts `topology` of application `app` in `setup`.
    pub(crate) fn new(app: &str, topology: Topology, setup: Setup) -> Self {
        let driver = setup.driver(app, topology, &[LEFT, RIGHT]);
        let left_in = driver.input_topic::<K, L>(LEFT);
        let right_in = driver.input_topic::<K, R>(RIGHT);
        let out = driver.output_topic::<K, O>(OUT);
        Self {
            setup,
            driver,
            left_in,
            right_in,
            out,
        }
    }

    pub(crate) fn left(&self, key: K, value: L, ts: i64) {
        self.left_in.pipe_input_at(key, value, ts).unwrap();
    }

    pub(crate) fn right(&self, key: K, value: R, ts: i64) {
        self.right_in.pipe_input_at(key, value, ts).unwrap();
    }

    /// Everything emitted since the last read, as (key, value, timestamp).
    pub(crate) fn output(&self) -> Vec<(K, O, i64)> {
        driver::records(&self.out)
    }

    /// Checks that everything emitted since the last read is `expected`, as (key, value,
    /// timestamp); `step` says after what.
    #[track_caller]
    pub(crate) fn check(&self, step: &str, expected: Vec<(K, O, i64)>) {
        assert_eq!(self.output(), expected, "{:?}, after: {step}", self.setup);
    }
}

/// Runs `scenario` once in each of `setups`, on a fresh `topology` of application `app`.
pub(crate) fn each_setup<K: Checked, L: Input, R: Input, O: Checked>(
    app: &str,
    setups: &[Setup],
    topology: impl Fn() -> Topology,
    scenario: impl Fn(&Run<K, L, R, O>),
) {
    for &setup in setups {
        scenario(&Run::new(app, topology(), setup));
    }
}

/// In the scenarios that pass the key to the joiner, every value ends with its key (`A0`,
/// `XX3`, ...): checks that the joiner got the record's key.
pub(crate) fn check_key(key: i32, value: &str) {
    assert!(
        value.ends_with(&key.to_string()),
        "the joiner got key {key} with value {value}"
    );
}

/// Applies an update to a table a test keeps: `Some` value puts it, `None` (a tombstone)
/// removes the key.
pub(crate) fn update<K: Ord, V>(table: &mut BTreeMap<K, V>, key: K, value: Option<V>) {
    match value {
        Some(v) => table.insert(key, v),
        None => table.remove(&key),
    };
}

/// A change a table-table join forwards: the key's new result and its old one (`None`: none,
/// a tombstone), and the change's timestamp.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Change {
    pub(crate) new: Option<String>,
    pub(crate) old: Option<String>,
    pub(crate) ts: i64,
}

/// Kafka's table-table joins (`KTableKTableInnerJoin`, `KTableKTableLeftJoin`,
/// `KTableKTableOuterJoin`) as a reference computation: the two tables' values and
/// timestamps per key, and what each update makes the join forward.
pub(crate) struct TableJoinModel<K> {
    kind: JoinKind,
    joiner: fn(Option<&str>, Option<&str>) -> String,
    tables: [BTreeMap<K, (String, i64)>; 2],
}

impl<K: Ord + Clone> TableJoinModel<K> {
    /// A join of `kind` of two empty tables; `joiner` renders a result from its left and
    /// right values (`None`: that side has none).
    pub(crate) fn new(kind: JoinKind, joiner: fn(Option<&str>, Option<&str>) -> String) -> Self {
        Self {
            kind,
            joiner,
            tables: [BTreeMap::new(), BTreeMap::new()],
        }
    }

    /// The join's result for `key` now, if it has one: an inner join's where both tables
    /// hold the key, a left join's where the left one does, an outer join's where either does.
    pub(crate) fn result(&self, key: &K) -> Option<String> {
        let [l, r] = self
            .tables
            .each_ref()
            .map(|table| table.get(key).map(|(v, _)| v.as_str()));
        let joined = match self.kind {
            JoinKind::Inner => l.is_some() && r.is_some(),
            JoinKind::Left => l.is_some(),
            JoinKind::Outer => l.is_some() || r.is_some(),
        };
        joined.then(|| (self.joiner)(l, r))
    }

    /// Updates the table of `side` with `value` for `key` (`None`: a tombstone) at `ts`, and
    /// returns the change the join forwards, if any, at the later of `ts` and the other
    /// side's timestamp for the key. A tombstone for a key the table does not hold changes
    /// nothing and forwards nothing (docs/SEMANTICS.md, "Joins"); an inner join forwards only
    /// where the other side holds the key, and a left join an update of its right side only
    /// where the left side holds it.
    pub(crate) fn update(
        &mut self,
        side: Side,
        key: K,
        value: Option<String>,
        ts: i64,
    ) -> Option<Change> {
        let (this, other) = match side {
            Side::Left => (0, 1),
            Side::Right => (1, 0),
        };
        if value.is_none() && !self.tables[this].contains_key(&key) {
            return None;
        }
        let other_ts = self.tables[other].get(&key).map(|(_, t)| *t);
        let forwards = match (self.kind, side) {
            (JoinKind::Inner, _) | (JoinKind::Left, Side::Right) => other_ts.is_some(),
            _ => true,
        };
        let old = self.result(&key);
        update(&mut self.tables[this], key.clone(), value.map(|v| (v, ts)));
        forwards.then(|| Change {
            new: self.result(&key),
            old,
            ts: other_ts.map_or(ts, |t| t.max(ts)),
        })
    }
}
