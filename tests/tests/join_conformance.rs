//! Conformance of the stream-stream joins (`KStream::join`, `left_join`, `outer_join` and
//! their `_with` / `_with_key` forms) with Kafka Streams: scenarios transcribed from Kafka
//! Streams' own unit tests of `KStreamKStreamJoin` (apache/kafka,
//! `streams/src/test/java/org/apache/kafka/streams/kstream/internals/`):
//!
//! - `KStreamKStreamJoinTest`: `testJoin`, `testOuterJoin`, `testWindowing`,
//!   `testAsymmetricWindowingAfter`, `testAsymmetricWindowingBefore`;
//! - `KStreamKStreamLeftJoinTest`: `testLeftJoinDuplicates`,
//!   `testLeftExpiredNonJoinedRecordsAreEmittedByTheLeftProcessor` / `...ByTheRightProcessor`,
//!   `testRightNonJoinedRecordsAreNeverEmittedByTheLeftProcessor` / `...ByTheRightProcessor`,
//!   `testLeftJoinedRecordsWithZeroAfterAreEmitted`, `testLeftJoinWithDefaultSuppliers` and
//!   `testLeftJoinWithInMemoryCustomSuppliers` (`runLeftJoin`), `testOrdering`,
//!   `testGracePeriod`, `testWindowing` (with `testUpperWindowBound` and
//!   `testLowerWindowBound`), `shouldNotEmitLeftJoinResultForAsymmetricWindow`;
//! - `KStreamKStreamOuterJoinTest`: `testOuterJoinDuplicates`,
//!   `testLeftExpiredNonJoinedRecordsAreEmittedByTheLeftProcessor` / `...ByTheRightProcessor`,
//!   `testRightExpiredNonJoinedRecordsAreEmittedByTheLeftProcessor` / `...ByTheRightProcessor`,
//!   `testOrdering`, `testGracePeriod`, `testEmitAllNonJoinedResultsForAsymmetricWindow`,
//!   `testOuterJoinWithDefaultSuppliers` and `testOuterJoinWithInMemoryCustomSuppliers`
//!   (`runOuterJoin`), `testWindowing` (with its upper and lower window bound steps),
//!   `testShouldNotEmitLeftJoinResultForAsymmetricBeforeWindow` / `...AfterWindow`,
//!   `testShouldForwardCurrentHeaders`.
//!
//! The inputs and the expected outputs (key, value, timestamp, in order) are Kafka's, step by
//! step; only the code around them is ours. As in those tests, keys are integers, the left
//! values strings and the right values strings or (outer join tests) longs, and the joiner
//! renders a result as Kafka's `MockValueJoiner.TOSTRING_JOINER` does: `left+right`, `null`
//! for a missing side. Kafka's `TopologyTestDriver` sets the emit interval of non-joined
//! results to 0, so that a left/outer result with no partner is emitted by the first record
//! processed once stream time passes its window's close, as ours (which has no throttle)
//! always does. The late-record scenarios follow Kafka's behaviour in those tests: a record
//! behind the join's retention is still joined with the other side's buffered records, and,
//! in a left or outer join, an unmatched one gets its null result at once.
//!
//! Every scenario runs four times: with the record cache on and off, on RocksDB and on
//! in-memory stores (`default.dsl.store`).

// Test helpers outside #[test] functions may unwrap too: a panic fails the test.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use streams_core::config::DslStore;
use streams_core::prelude::*;
use streams_tests::driver;

const LEFT: &str = "topic1";
const RIGHT: &str = "topic2";
const OUT: &str = "out";

/// One configuration a scenario runs in.
#[derive(Debug, Clone, Copy)]
struct Setup {
    cache: bool,
    store: DslStore,
}

const SETUPS: [Setup; 4] = [
    Setup {
        cache: true,
        store: DslStore::RocksDb,
    },
    Setup {
        cache: false,
        store: DslStore::RocksDb,
    },
    Setup {
        cache: true,
        store: DslStore::InMemory,
    },
    Setup {
        cache: false,
        store: DslStore::InMemory,
    },
];

impl Setup {
    fn config(self) -> StreamsConfig {
        let config = StreamsConfig::new("join-conformance").with_default_dsl_store(self.store);
        if self.cache {
            config
        } else {
            config.with_cache_max_bytes(0)
        }
    }
}

/// A driver running one join topology: left input `topic1` (`i32` -> `String`), right input
/// `topic2` (`i32` -> `R`), joined output `out` (`i32` -> `String`).
struct Run<R> {
    setup: Setup,
    _driver: TopologyTestDriver,
    left_in: TestInputTopic<i32, String>,
    right_in: TestInputTopic<i32, R>,
    out: TestOutputTopic<i32, String>,
}

impl<R: DefaultSerde + 'static> Run<R> {
    fn new(topology: Topology, setup: Setup) -> Self {
        let driver = TopologyTestDriver::new(topology, setup.config()).unwrap();
        let left_in = driver.input_topic::<i32, String>(LEFT);
        let right_in = driver.input_topic::<i32, R>(RIGHT);
        let out = driver.output_topic::<i32, String>(OUT);
        Self {
            setup,
            _driver: driver,
            left_in,
            right_in,
            out,
        }
    }

    fn left(&self, key: i32, value: &str, ts: i64) {
        self.left_in
            .pipe_input_at(key, value.to_string(), ts)
            .unwrap();
    }

    fn right(&self, key: i32, value: R, ts: i64) {
        self.right_in.pipe_input_at(key, value, ts).unwrap();
    }

    /// Kafka's loops over the keys `0..n` of the left stream: value `<prefix><key>` at
    /// `ts(key)`.
    fn lefts(&self, n: i32, prefix: &str, ts: impl Fn(i64) -> i64) {
        for k in 0..n {
            self.left(k, &format!("{prefix}{k}"), ts(i64::from(k)));
        }
    }

    /// Kafka's loops over the keys `0..n` of the right stream: `value(key)` at `ts(key)`.
    fn rights(&self, n: i32, value: impl Fn(i32) -> R, ts: impl Fn(i64) -> i64) {
        for k in 0..n {
            self.right(k, value(k), ts(i64::from(k)));
        }
    }

    /// Everything emitted since the last check, as (key, value, timestamp).
    #[track_caller]
    fn expect(&self, step: &str, expected: &[(i32, &str, i64)]) {
        let actual = driver::records(&self.out);
        let expected: Vec<(i32, String, i64)> = expected
            .iter()
            .map(|(k, v, t)| (*k, (*v).to_string(), *t))
            .collect();
        assert_eq!(actual, expected, "{:?}, after: {step}", self.setup);
    }
}

/// Runs `scenario` once in every [`Setup`] on a fresh topology.
fn each_setup<R: DefaultSerde + 'static>(
    topology: impl Fn() -> Topology,
    scenario: impl Fn(&Run<R>),
) {
    for setup in SETUPS {
        scenario(&Run::new(topology(), setup));
    }
}

/// `topic1` joined with `topic2` by `join`, written to `out`.
fn topology<R: Data + DefaultSerde>(
    join: impl FnOnce(&KStream<i32, String>, &KStream<i32, R>) -> KStream<i32, String>,
) -> Topology {
    let builder = StreamsBuilder::new();
    let left = builder.stream::<i32, String>(LEFT);
    let right = builder.stream::<i32, R>(RIGHT);
    join(&left, &right).to(OUT);
    builder.build().unwrap()
}

/// Kafka's `StreamJoined.with(Serdes.Integer(), Serdes.String(), <right serde>)`.
fn joined<R: DefaultSerde>() -> StreamJoined<i32, String, R> {
    StreamJoined::with(default_serde(), default_serde(), default_serde())
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// `JoinWindows.ofTimeDifferenceWithNoGrace(ofMillis(difference))`.
fn no_grace(difference: u64) -> JoinWindows {
    JoinWindows::of_time_difference_with_no_grace(ms(difference))
}

/// `JoinWindows.ofTimeDifferenceAndGrace(ofMillis(difference), ofMillis(grace))`.
fn with_grace(difference: u64, grace: u64) -> JoinWindows {
    JoinWindows::of_time_difference_and_grace(ms(difference), ms(grace))
}

// Joiners rendering results as Kafka's `MockValueJoiner.TOSTRING_JOINER`.

fn inner(l: &String, r: &String) -> String {
    format!("{l}+{r}")
}

fn left_joiner(l: &String, r: Option<&String>) -> String {
    format!("{l}+{}", r.map_or("null", String::as_str))
}

fn outer_str(l: Option<&String>, r: Option<&String>) -> String {
    format!(
        "{}+{}",
        l.map_or("null", String::as_str),
        r.map_or("null", String::as_str)
    )
}

fn outer_long(l: Option<&String>, r: Option<&i64>) -> String {
    format!(
        "{}+{}",
        l.map_or("null", String::as_str),
        r.map_or_else(|| "null".to_string(), i64::to_string)
    )
}

/// In the scenarios that pass the key to the joiner, every value ends with its key
/// (`A0`, `b3`, ...): checks that the joiner got the record's key.
fn check_key(key: i32, value: &str) {
    assert!(
        value.ends_with(&key.to_string()),
        "the joiner got key {key} with value {value}"
    );
}

fn letter(prefix: &'static str) -> impl Fn(i32) -> String {
    move |k| format!("{prefix}{k}")
}

/// The start of Kafka's `testLeftExpiredNonJoinedRecordsAreEmittedBy...` scenarios of the
/// left and outer joins: left records `A0` at 1, `A1` at 2 and `A0-0` at 3, then a right
/// record `right` (shown as `label`) for key 1 at 3, joining `A1` as `joined`.
fn unmatched_lefts_then_a1<R: DefaultSerde + 'static>(
    run: &Run<R>,
    right: R,
    label: &str,
    joined: &str,
) {
    run.left(0, "A0", 1);
    run.left(1, "A1", 2);
    run.left(0, "A0-0", 3);
    run.expect("A0 at 1, A1 at 2, A0-0 at 3", &[]);
    run.right(1, right, 3);
    run.expect(label, &[(1, joined, 3)]);
}

/// The start of the left join's `testRightNonJoinedRecordsAreNeverEmittedBy...` scenarios
/// and of the outer join's `testRightExpiredNonJoinedRecordsAreEmittedBy...` ones: three
/// right records for keys 0, 1, 0 at 1, 2, 3, then a left record `left` for key 1 at 3,
/// joining the second of them as `joined`; `labels` name the two steps.
fn unmatched_rights_then_left<R: DefaultSerde + 'static>(
    run: &Run<R>,
    [r0, r1, r2]: [R; 3],
    labels: [&str; 2],
    left: &str,
    joined: &str,
) {
    run.right(0, r0, 1);
    run.right(1, r1, 2);
    run.right(0, r2, 3);
    run.expect(labels[0], &[]);
    run.left(1, left, 3);
    run.expect(labels[1], &[(1, joined, 3)]);
}

// ---------------------------------------------------------------------------------------
// Inner join (KStreamKStreamJoinTest)
// ---------------------------------------------------------------------------------------

/// The steps of `KStreamKStreamJoinTest.testJoin`, which its `testOuterJoin` runs again
/// through an outer join: everything at time 0, so the results are the same.
fn test_join_steps(run: &Run<String>) {
    run.lefts(2, "A", |_| 0);
    run.expect("A0, A1", &[]);
    run.rights(2, letter("a"), |_| 0);
    run.expect("a0, a1", &[(0, "A0+a0", 0), (1, "A1+a1", 0)]);
    run.lefts(4, "B", |_| 0);
    run.expect("B0..B3", &[(0, "B0+a0", 0), (1, "B1+a1", 0)]);
    run.rights(4, letter("b"), |_| 0);
    run.expect(
        "b0..b3",
        &[
            (0, "A0+b0", 0),
            (0, "B0+b0", 0),
            (1, "A1+b1", 0),
            (1, "B1+b1", 0),
            (2, "B2+b2", 0),
            (3, "B3+b3", 0),
        ],
    );
    run.lefts(4, "C", |_| 0);
    run.expect(
        "C0..C3",
        &[
            (0, "C0+a0", 0),
            (0, "C0+b0", 0),
            (1, "C1+a1", 0),
            (1, "C1+b1", 0),
            (2, "C2+b2", 0),
            (3, "C3+b3", 0),
        ],
    );
    run.rights(2, letter("c"), |_| 0);
    run.expect(
        "c0, c1",
        &[
            (0, "A0+c0", 0),
            (0, "B0+c0", 0),
            (0, "C0+c0", 0),
            (1, "A1+c1", 0),
            (1, "B1+c1", 0),
            (1, "C1+c1", 0),
        ],
    );
}

/// `KStreamKStreamJoinTest.testJoin`: everything at time 0; duplicates of a key at one
/// timestamp are all kept and all joined, in arrival order.
#[test]
fn inner_join_test_join() {
    each_setup(
        || topology(|l, r: &KStream<i32, String>| l.join(r, inner, no_grace(100))),
        test_join_steps,
    );
}

/// `KStreamKStreamJoinTest.testOuterJoin`: the same input through an outer join with a
/// 24 h grace period; stream time stays at 0, so no window closes and no null result.
#[test]
fn outer_join_test_outer_join_of_join_test() {
    each_setup(
        || {
            topology(|l, r: &KStream<i32, String>| {
                l.outer_join_with_key(
                    r,
                    |k, lv: Option<&String>, rv: Option<&String>| {
                        lv.into_iter().chain(rv).for_each(|v| check_key(*k, v));
                        outer_str(lv, rv)
                    },
                    with_grace(100, 24 * 3_600_000),
                    joined(),
                )
            })
        },
        test_join_steps,
    );
}

/// `KStreamKStreamJoinTest.testWindowing`: symmetric 100 ms window, both bounds inclusive,
/// for records of either side; records behind the retention (right g..k at 899..903 after
/// stream time 1104, left H..L at 1899..1903 after 2104) still join the buffered records of
/// the other side.
#[test]
fn inner_join_test_windowing() {
    each_setup(
        || {
            topology(|l, r: &KStream<i32, String>| {
                l.join_with_key(
                    r,
                    |k, lv: &String, rv: &String| {
                        check_key(*k, lv);
                        check_key(*k, rv);
                        inner(lv, rv)
                    },
                    no_grace(100),
                    joined(),
                )
            })
        },
        |run: &Run<String>| {
            run.lefts(2, "A", |_| 0);
            run.expect("A0, A1 at 0", &[]);
            run.rights(2, letter("a"), |_| 0);
            run.expect("a0, a1 at 0", &[(0, "A0+a0", 0), (1, "A1+a1", 0)]);
            run.lefts(4, "B", |k| 1000 + k);
            run.expect("B0..B3 at 1000..1003", &[]);
            run.rights(4, letter("b"), |_| 1100);
            run.expect(
                "b at 1100",
                &[
                    (0, "B0+b0", 1100),
                    (1, "B1+b1", 1100),
                    (2, "B2+b2", 1100),
                    (3, "B3+b3", 1100),
                ],
            );
            run.rights(4, letter("c"), |_| 1101);
            run.expect(
                "c at 1101",
                &[(1, "B1+c1", 1101), (2, "B2+c2", 1101), (3, "B3+c3", 1101)],
            );
            run.rights(4, letter("d"), |_| 1102);
            run.expect("d at 1102", &[(2, "B2+d2", 1102), (3, "B3+d3", 1102)]);
            run.rights(4, letter("e"), |_| 1103);
            run.expect("e at 1103", &[(3, "B3+e3", 1103)]);
            run.rights(4, letter("f"), |_| 1104);
            run.expect("f at 1104", &[]);
            run.rights(4, letter("g"), |_| 899);
            run.expect("g at 899", &[]);
            run.rights(4, letter("h"), |_| 900);
            run.expect("h at 900", &[(0, "B0+h0", 1000)]);
            run.rights(4, letter("i"), |_| 901);
            run.expect("i at 901", &[(0, "B0+i0", 1000), (1, "B1+i1", 1001)]);
            run.rights(4, letter("j"), |_| 902);
            run.expect(
                "j at 902",
                &[(0, "B0+j0", 1000), (1, "B1+j1", 1001), (2, "B2+j2", 1002)],
            );
            run.rights(4, letter("k"), |_| 903);
            run.expect(
                "k at 903",
                &[
                    (0, "B0+k0", 1000),
                    (1, "B1+k1", 1001),
                    (2, "B2+k2", 1002),
                    (3, "B3+k3", 1003),
                ],
            );
            run.rights(4, letter("l"), |k| 2000 + k);
            run.expect("l at 2000..2003", &[]);
            run.lefts(4, "C", |_| 2100);
            run.expect(
                "C at 2100",
                &[
                    (0, "C0+l0", 2100),
                    (1, "C1+l1", 2100),
                    (2, "C2+l2", 2100),
                    (3, "C3+l3", 2100),
                ],
            );
            run.lefts(4, "D", |_| 2101);
            run.expect(
                "D at 2101",
                &[(1, "D1+l1", 2101), (2, "D2+l2", 2101), (3, "D3+l3", 2101)],
            );
            run.lefts(4, "E", |_| 2102);
            run.expect("E at 2102", &[(2, "E2+l2", 2102), (3, "E3+l3", 2102)]);
            run.lefts(4, "F", |_| 2103);
            run.expect("F at 2103", &[(3, "F3+l3", 2103)]);
            run.lefts(4, "G", |_| 2104);
            run.expect("G at 2104", &[]);
            run.lefts(4, "H", |_| 1899);
            run.expect("H at 1899", &[]);
            run.lefts(4, "I", |_| 1900);
            run.expect("I at 1900", &[(0, "I0+l0", 2000)]);
            run.lefts(4, "J", |_| 1901);
            run.expect("J at 1901", &[(0, "J0+l0", 2000), (1, "J1+l1", 2001)]);
            run.lefts(4, "K", |_| 1902);
            run.expect(
                "K at 1902",
                &[(0, "K0+l0", 2000), (1, "K1+l1", 2001), (2, "K2+l2", 2002)],
            );
            run.lefts(4, "L", |_| 1903);
            run.expect(
                "L at 1903",
                &[
                    (0, "L0+l0", 2000),
                    (1, "L1+l1", 2001),
                    (2, "L2+l2", 2002),
                    (3, "L3+l3", 2003),
                ],
            );
        },
    );
}

/// `KStreamKStreamJoinTest.testAsymmetricWindowingAfter`: `before = 0`, `after = 100`: a
/// left record at `t` joins right records in `[t, t + 100]`.
#[test]
fn inner_join_test_asymmetric_windowing_after() {
    each_setup(
        || {
            topology(|l, r: &KStream<i32, String>| {
                l.join_with(r, inner, no_grace(0).after(ms(100)), joined())
            })
        },
        |run: &Run<String>| {
            run.lefts(4, "A", |k| 1000 + k);
            run.expect("A at 1000..1003", &[]);
            run.rights(4, letter("a"), |_| 999);
            run.expect("a at 999", &[]);
            run.rights(4, letter("b"), |_| 1000);
            run.expect("b at 1000", &[(0, "A0+b0", 1000)]);
            run.rights(4, letter("c"), |_| 1001);
            run.expect("c at 1001", &[(0, "A0+c0", 1001), (1, "A1+c1", 1001)]);
            run.rights(4, letter("d"), |_| 1002);
            run.expect(
                "d at 1002",
                &[(0, "A0+d0", 1002), (1, "A1+d1", 1002), (2, "A2+d2", 1002)],
            );
            run.rights(4, letter("e"), |_| 1003);
            run.expect(
                "e at 1003",
                &[
                    (0, "A0+e0", 1003),
                    (1, "A1+e1", 1003),
                    (2, "A2+e2", 1003),
                    (3, "A3+e3", 1003),
                ],
            );
            run.rights(4, letter("f"), |_| 1100);
            run.expect(
                "f at 1100",
                &[
                    (0, "A0+f0", 1100),
                    (1, "A1+f1", 1100),
                    (2, "A2+f2", 1100),
                    (3, "A3+f3", 1100),
                ],
            );
            run.rights(4, letter("g"), |_| 1101);
            run.expect(
                "g at 1101",
                &[(1, "A1+g1", 1101), (2, "A2+g2", 1101), (3, "A3+g3", 1101)],
            );
            run.rights(4, letter("h"), |_| 1102);
            run.expect("h at 1102", &[(2, "A2+h2", 1102), (3, "A3+h3", 1102)]);
            run.rights(4, letter("i"), |_| 1103);
            run.expect("i at 1103", &[(3, "A3+i3", 1103)]);
            run.rights(4, letter("j"), |_| 1104);
            run.expect("j at 1104", &[]);
        },
    );
}

/// `KStreamKStreamJoinTest.testAsymmetricWindowingBefore`: `before = 100`, `after = 0`: a
/// left record at `t` joins right records in `[t - 100, t]`.
#[test]
fn inner_join_test_asymmetric_windowing_before() {
    each_setup(
        || {
            topology(|l, r: &KStream<i32, String>| {
                l.join_with(r, inner, no_grace(0).before(ms(100)), joined())
            })
        },
        |run: &Run<String>| {
            run.lefts(4, "A", |k| 1000 + k);
            run.expect("A at 1000..1003", &[]);
            run.rights(4, letter("a"), |_| 899);
            run.expect("a at 899", &[]);
            run.rights(4, letter("b"), |_| 900);
            run.expect("b at 900", &[(0, "A0+b0", 1000)]);
            run.rights(4, letter("c"), |_| 901);
            run.expect("c at 901", &[(0, "A0+c0", 1000), (1, "A1+c1", 1001)]);
            run.rights(4, letter("d"), |_| 902);
            run.expect(
                "d at 902",
                &[(0, "A0+d0", 1000), (1, "A1+d1", 1001), (2, "A2+d2", 1002)],
            );
            run.rights(4, letter("e"), |_| 903);
            run.expect(
                "e at 903",
                &[
                    (0, "A0+e0", 1000),
                    (1, "A1+e1", 1001),
                    (2, "A2+e2", 1002),
                    (3, "A3+e3", 1003),
                ],
            );
            run.rights(4, letter("f"), |_| 1000);
            run.expect(
                "f at 1000",
                &[
                    (0, "A0+f0", 1000),
                    (1, "A1+f1", 1001),
                    (2, "A2+f2", 1002),
                    (3, "A3+f3", 1003),
                ],
            );
            run.rights(4, letter("g"), |_| 1001);
            run.expect(
                "g at 1001",
                &[(1, "A1+g1", 1001), (2, "A2+g2", 1002), (3, "A3+g3", 1003)],
            );
            run.rights(4, letter("h"), |_| 1002);
            run.expect("h at 1002", &[(2, "A2+h2", 1002), (3, "A3+h3", 1003)]);
            run.rights(4, letter("i"), |_| 1003);
            run.expect("i at 1003", &[(3, "A3+i3", 1003)]);
            run.rights(4, letter("j"), |_| 1004);
            run.expect("j at 1004", &[]);
        },
    );
}

// ---------------------------------------------------------------------------------------
// Left join (KStreamKStreamLeftJoinTest)
// ---------------------------------------------------------------------------------------

fn left_topology(windows: JoinWindows) -> Topology {
    topology(|l, r: &KStream<i32, String>| l.left_join_with(r, left_joiner, windows, joined()))
}

/// `KStreamKStreamLeftJoinTest.testLeftJoinDuplicates`: unmatched duplicates (same key and
/// timestamp) each get a null result once the window closes; matched duplicates each join;
/// a late record does not emit the already joined ones again.
#[test]
fn left_join_test_left_join_duplicates() {
    each_setup(
        || topology(|l, r: &KStream<i32, String>| l.left_join(r, left_joiner, with_grace(100, 10))),
        |run: &Run<String>| {
            run.left(0, "A0", 0);
            run.left(0, "A0-0", 0);
            run.right(1, "a0".into(), 111);
            run.right(2, "dummy".into(), 500);
            run.expect(
                "A0, A0-0 at 0; a0 at 111; dummy at 500",
                &[(0, "A0+null", 0), (0, "A0-0+null", 0)],
            );
            run.left(2, "A2", 1000);
            run.left(2, "A2-0", 1000);
            run.right(2, "a2".into(), 1001);
            run.expect(
                "A2, A2-0 at 1000; a2 at 1001",
                &[(2, "A2+a2", 1001), (2, "A2-0+a2", 1001)],
            );
            run.right(3, "a3".into(), 315);
            run.expect("a3 at 315", &[]);
        },
    );
}

/// `KStreamKStreamLeftJoinTest.testLeftExpiredNonJoinedRecordsAreEmittedByTheLeftProcessor`:
/// no eager null results; a left record advancing stream time emits them.
#[test]
fn left_join_test_left_expired_non_joined_records_are_emitted_by_the_left_processor() {
    each_setup(
        || left_topology(with_grace(100, 0)),
        |run: &Run<String>| {
            unmatched_lefts_then_a1(run, "a1".into(), "a1 at 3", "A1+a1");
            run.left(2, "dummy", 401);
            run.expect(
                "left dummy at 401",
                &[(0, "A0+null", 1), (0, "A0-0+null", 3)],
            );
            run.right(2, "dummy".into(), 401);
            run.expect("right dummy at 401", &[(2, "dummy+dummy", 401)]);
        },
    );
}

/// `KStreamKStreamLeftJoinTest.testLeftExpiredNonJoinedRecordsAreEmittedByTheRightProcessor`:
/// a right record advancing stream time emits the left null results too.
#[test]
fn left_join_test_left_expired_non_joined_records_are_emitted_by_the_right_processor() {
    each_setup(
        || left_topology(with_grace(100, 0)),
        |run: &Run<String>| {
            unmatched_lefts_then_a1(run, "a1".into(), "a1 at 3", "A1+a1");
            run.right(2, "dummy".into(), 401);
            run.expect(
                "right dummy at 401",
                &[(0, "A0+null", 1), (0, "A0-0+null", 3)],
            );
            run.left(2, "dummy", 402);
            run.expect("left dummy at 402", &[(2, "dummy+dummy", 402)]);
        },
    );
}

/// `KStreamKStreamLeftJoinTest.testRightNonJoinedRecordsAreNeverEmittedByTheLeftProcessor`.
#[test]
fn left_join_test_right_non_joined_records_are_never_emitted_by_the_left_processor() {
    each_setup(
        || left_topology(with_grace(100, 0)),
        |run: &Run<String>| {
            unmatched_rights_then_left(
                run,
                ["A0".into(), "A1".into(), "A0-0".into()],
                ["right A0 at 1, A1 at 2, A0-0 at 3", "left a1 at 3"],
                "a1",
                "a1+A1",
            );
            run.left(2, "dummy", 401);
            run.expect("left dummy at 401", &[]);
            run.right(2, "dummy".into(), 402);
            run.expect("right dummy at 402", &[(2, "dummy+dummy", 402)]);
        },
    );
}

/// `KStreamKStreamLeftJoinTest.testRightNonJoinedRecordsAreNeverEmittedByTheRightProcessor`.
#[test]
fn left_join_test_right_non_joined_records_are_never_emitted_by_the_right_processor() {
    each_setup(
        || left_topology(no_grace(100)),
        |run: &Run<String>| {
            unmatched_rights_then_left(
                run,
                ["A0".into(), "A1".into(), "A0-0".into()],
                ["right A0 at 1, A1 at 2, A0-0 at 3", "left a1 at 3"],
                "a1",
                "a1+A1",
            );
            run.right(2, "dummy".into(), 401);
            run.expect("right dummy at 401", &[]);
            run.left(2, "dummy", 402);
            run.expect("left dummy at 402", &[(2, "dummy+dummy", 402)]);
        },
    );
}

/// `KStreamKStreamLeftJoinTest.testLeftJoinedRecordsWithZeroAfterAreEmitted`: `after = 0`,
/// so a left record's window closes as soon as stream time passes it; a right record
/// arriving later still joins it (its null result was already emitted).
#[test]
fn left_join_test_left_joined_records_with_zero_after_are_emitted() {
    each_setup(
        || {
            topology(|l, r: &KStream<i32, String>| {
                l.left_join_with_key(
                    r,
                    |k, lv: &String, rv: Option<&String>| {
                        check_key(*k, lv);
                        rv.into_iter().for_each(|v| check_key(*k, v));
                        left_joiner(lv, rv)
                    },
                    no_grace(100).after(Duration::ZERO),
                    joined(),
                )
            })
        },
        |run: &Run<String>| {
            run.lefts(4, "A", |k| 1000 + k);
            run.expect(
                "A at 1000..1003",
                &[
                    (0, "A0+null", 1000),
                    (1, "A1+null", 1001),
                    (2, "A2+null", 1002),
                ],
            );
            run.rights(4, letter("a"), |_| 999);
            run.expect(
                "a at 999",
                &[
                    (0, "A0+a0", 1000),
                    (1, "A1+a1", 1001),
                    (2, "A2+a2", 1002),
                    (3, "A3+a3", 1003),
                ],
            );
            run.rights(4, letter("b"), |_| 1000);
            run.expect(
                "b at 1000",
                &[
                    (0, "A0+b0", 1000),
                    (1, "A1+b1", 1001),
                    (2, "A2+b2", 1002),
                    (3, "A3+b3", 1003),
                ],
            );
            run.rights(4, letter("c"), |_| 1001);
            run.expect(
                "c at 1001",
                &[(1, "A1+c1", 1001), (2, "A2+c2", 1002), (3, "A3+c3", 1003)],
            );
            run.rights(4, letter("d"), |_| 1002);
            run.expect("d at 1002", &[(2, "A2+d2", 1002), (3, "A3+d3", 1003)]);
            run.rights(4, letter("e"), |_| 1003);
            run.expect("e at 1003", &[(3, "A3+e3", 1003)]);
            run.rights(4, letter("f"), |_| 1100);
            run.expect("f at 1100", &[]);
        },
    );
}

/// `KStreamKStreamLeftJoinTest.runLeftJoin`, as run by `testLeftJoinWithDefaultSuppliers`
/// (no grace, default stores) and `testLeftJoinWithInMemoryCustomSuppliers` (grace 0,
/// in-memory join stores chosen in `StreamJoined`).
#[test]
fn left_join_test_run_left_join_default_and_in_memory_stores() {
    let variants: [(JoinWindows, Option<DslStore>); 2] = [
        (no_grace(100), None),
        (with_grace(100, 0), Some(DslStore::InMemory)),
    ];
    for (windows, store) in variants {
        each_setup(
            || {
                topology(|l, r: &KStream<i32, String>| {
                    let options = match store {
                        Some(s) => joined().with_store_type(s),
                        None => joined(),
                    };
                    l.left_join_with(r, left_joiner, windows, options)
                })
            },
            |run: &Run<String>| {
                run.lefts(2, "A", |_| 0);
                run.expect("A0, A1", &[]);
                run.rights(2, letter("a"), |_| 0);
                run.expect("a0, a1", &[(0, "A0+a0", 0), (1, "A1+a1", 0)]);
                run.lefts(3, "B", |_| 0);
                run.expect("B0..B2", &[(0, "B0+a0", 0), (1, "B1+a1", 0)]);
                run.rights(4, letter("b"), |_| 0);
                run.expect(
                    "b0..b3",
                    &[
                        (0, "A0+b0", 0),
                        (0, "B0+b0", 0),
                        (1, "A1+b1", 0),
                        (1, "B1+b1", 0),
                        (2, "B2+b2", 0),
                    ],
                );
                run.lefts(4, "C", |_| 0);
                run.expect(
                    "C0..C3",
                    &[
                        (0, "C0+a0", 0),
                        (0, "C0+b0", 0),
                        (1, "C1+a1", 0),
                        (1, "C1+b1", 0),
                        (2, "C2+b2", 0),
                        (3, "C3+b3", 0),
                    ],
                );
                run.left(0, "dummy", 1000);
                run.expect("dummy at 1000: every record was joined", &[]);
            },
        );
    }
}

/// `KStreamKStreamLeftJoinTest.testOrdering`: the null result of a closed window comes
/// before the join result of the record that closed it.
#[test]
fn left_join_test_ordering() {
    each_setup(
        || topology(|l, r: &KStream<i32, String>| l.left_join(r, left_joiner, no_grace(100))),
        |run: &Run<String>| {
            run.left(0, "A0", 0);
            run.left(1, "A1", 100);
            run.expect("A0 at 0, A1 at 100", &[]);
            run.right(1, "a1".into(), 110);
            run.expect("a1 at 110", &[(0, "A0+null", 0), (1, "A1+a1", 110)]);
        },
    );
}

/// `KStreamKStreamLeftJoinTest.testGracePeriod`: a window that has ended but is within
/// its grace period emits nothing; once closed, its null results come out.
#[test]
fn left_join_test_grace_period() {
    each_setup(
        || left_topology(with_grace(100, 10)),
        |run: &Run<String>| {
            run.lefts(2, "A", |_| 0);
            run.expect("A0, A1 at 0", &[]);
            run.rights(4, letter("a"), |_| 101);
            run.expect("a at 101", &[]);
            run.right(0, "dummy".into(), 1201);
            run.expect("dummy at 1201", &[(0, "A0+null", 0), (1, "A1+null", 0)]);
        },
    );
}

/// `KStreamKStreamLeftJoinTest.testWindowing` with `testUpperWindowBound` and
/// `testLowerWindowBound`: null results only once a window closes, emitted in timestamp
/// then key order; late left records (behind stream time by more than the window) join
/// what they can and get their null result at once.
#[test]
fn left_join_test_windowing_upper_and_lower_window_bound() {
    each_setup(
        || topology(|l, r: &KStream<i32, String>| l.left_join(r, left_joiner, no_grace(100))),
        |run: &Run<String>| {
            run.lefts(2, "A", |_| 0);
            run.expect("A0, A1 at 0", &[]);
            run.rights(4, letter("a"), |_| 0);
            run.expect("a at 0", &[(0, "A0+a0", 0), (1, "A1+a1", 0)]);

            // testUpperWindowBound
            run.rights(4, letter("b"), |k| 1000 + k);
            run.expect("b at 1000..1003", &[]);
            run.lefts(4, "B", |_| 1100);
            run.expect(
                "B at 1100",
                &[
                    (0, "B0+b0", 1100),
                    (1, "B1+b1", 1100),
                    (2, "B2+b2", 1100),
                    (3, "B3+b3", 1100),
                ],
            );
            run.lefts(4, "C", |_| 1101);
            run.expect(
                "C at 1101",
                &[(1, "C1+b1", 1101), (2, "C2+b2", 1101), (3, "C3+b3", 1101)],
            );
            run.lefts(4, "D", |_| 1102);
            run.expect("D at 1102", &[(2, "D2+b2", 1102), (3, "D3+b3", 1102)]);
            run.lefts(4, "E", |_| 1103);
            run.expect("E at 1103", &[(3, "E3+b3", 1103)]);
            run.lefts(4, "F", |_| 1104);
            run.expect("F at 1104", &[]);
            run.left(0, "dummy", 1405);
            run.expect(
                "dummy at 1405",
                &[
                    (0, "C0+null", 1101),
                    (0, "D0+null", 1102),
                    (1, "D1+null", 1102),
                    (0, "E0+null", 1103),
                    (1, "E1+null", 1103),
                    (2, "E2+null", 1103),
                    (0, "F0+null", 1104),
                    (1, "F1+null", 1104),
                    (2, "F2+null", 1104),
                    (3, "F3+null", 1104),
                ],
            );

            // testLowerWindowBound
            run.lefts(4, "G", |_| 899);
            run.expect(
                "G at 899",
                &[
                    (0, "G0+null", 899),
                    (1, "G1+null", 899),
                    (2, "G2+null", 899),
                    (3, "G3+null", 899),
                ],
            );
            run.lefts(4, "H", |_| 900);
            run.expect(
                "H at 900",
                &[
                    (0, "H0+b0", 1000),
                    (1, "H1+null", 900),
                    (2, "H2+null", 900),
                    (3, "H3+null", 900),
                ],
            );
            run.lefts(4, "I", |_| 901);
            run.expect(
                "I at 901",
                &[
                    (0, "I0+b0", 1000),
                    (1, "I1+b1", 1001),
                    (2, "I2+null", 901),
                    (3, "I3+null", 901),
                ],
            );
            run.lefts(4, "J", |_| 902);
            run.expect(
                "J at 902",
                &[
                    (0, "J0+b0", 1000),
                    (1, "J1+b1", 1001),
                    (2, "J2+b2", 1002),
                    (3, "J3+null", 902),
                ],
            );
            run.lefts(4, "K", |_| 903);
            run.expect(
                "K at 903",
                &[
                    (0, "K0+b0", 1000),
                    (1, "K1+b1", 1001),
                    (2, "K2+b2", 1002),
                    (3, "K3+b3", 1003),
                ],
            );
            run.left(0, "dummy", 1203);
            run.expect("late dummy at 1203", &[(0, "dummy+null", 1203)]);
        },
    );
}

/// `KStreamKStreamLeftJoinTest.shouldNotEmitLeftJoinResultForAsymmetricWindow`:
/// `before = 0`, `after = 100`: a left record's window closes at `t + 100`.
#[test]
fn left_join_should_not_emit_left_join_result_for_asymmetric_window() {
    each_setup(
        || left_topology(no_grace(100).before(Duration::ZERO)),
        |run: &Run<String>| {
            run.lefts(2, "A", |k| k);
            run.expect("A0 at 0, A1 at 1", &[]);
            run.right(0, "a0".into(), 100);
            run.expect("a0 at 100", &[(0, "A0+a0", 100)]);
            run.right(1, "a1".into(), 102);
            run.expect("a1 at 102", &[(1, "A1+null", 1)]);
        },
    );
}

// ---------------------------------------------------------------------------------------
// Outer join (KStreamKStreamOuterJoinTest; right values are longs)
// ---------------------------------------------------------------------------------------

fn outer_topology(windows: JoinWindows) -> Topology {
    topology(|l, r: &KStream<i32, i64>| l.outer_join_with(r, outer_long, windows, joined()))
}

/// `KStreamKStreamOuterJoinTest.testOuterJoinDuplicates`: unmatched duplicates of both
/// sides each get their null result, right before left at one timestamp; matched
/// duplicates each join.
#[test]
fn outer_join_test_outer_join_duplicates() {
    each_setup(
        || topology(|l, r: &KStream<i32, i64>| l.outer_join(r, outer_long, with_grace(100, 10))),
        |run: &Run<i64>| {
            run.left(0, "A0", 0);
            run.left(0, "A0-0", 0);
            run.right(1, 11, 0);
            run.right(1, 12, 0);
            run.right(1, 10, 111);
            run.right(3, 100, 211);
            run.expect(
                "A0, A0-0, 11, 12 at 0; 10 at 111; 100 at 211",
                &[
                    (1, "null+11", 0),
                    (1, "null+12", 0),
                    (0, "A0+null", 0),
                    (0, "A0-0+null", 0),
                ],
            );
            run.left(2, "A2", 200);
            run.left(2, "A2-0", 200);
            run.right(2, 13, 201);
            run.right(2, 14, 201);
            run.expect(
                "A2, A2-0 at 200; 13, 14 at 201",
                &[
                    (2, "A2+13", 201),
                    (2, "A2-0+13", 201),
                    (2, "A2+14", 201),
                    (2, "A2-0+14", 201),
                ],
            );
            run.right(3, 100, 1500);
            run.expect("100 at 1500", &[(1, "null+10", 111), (3, "null+100", 211)]);
        },
    );
}

/// `KStreamKStreamOuterJoinTest.testLeftExpiredNonJoinedRecordsAreEmittedByTheLeftProcessor`.
#[test]
fn outer_join_test_left_expired_non_joined_records_are_emitted_by_the_left_processor() {
    each_setup(
        || outer_topology(no_grace(100)),
        |run: &Run<i64>| {
            unmatched_lefts_then_a1(run, 11, "11 at 3", "A1+11");
            run.left(2, "dummy", 401);
            run.expect(
                "left dummy at 401",
                &[(0, "A0+null", 1), (0, "A0-0+null", 3)],
            );
            run.right(2, 100, 401);
            run.expect("right 100 at 401", &[(2, "dummy+100", 401)]);
        },
    );
}

/// `KStreamKStreamOuterJoinTest.testLeftExpiredNonJoinedRecordsAreEmittedByTheRightProcessor`.
#[test]
fn outer_join_test_left_expired_non_joined_records_are_emitted_by_the_right_processor() {
    each_setup(
        || outer_topology(with_grace(100, 0)),
        |run: &Run<i64>| {
            unmatched_lefts_then_a1(run, 11, "11 at 3", "A1+11");
            run.right(2, 100, 401);
            run.expect(
                "right 100 at 401",
                &[(0, "A0+null", 1), (0, "A0-0+null", 3)],
            );
            run.left(2, "dummy", 402);
            run.expect("left dummy at 402", &[(2, "dummy+100", 402)]);
        },
    );
}

/// `KStreamKStreamOuterJoinTest.testRightExpiredNonJoinedRecordsAreEmittedByTheLeftProcessor`.
#[test]
fn outer_join_test_right_expired_non_joined_records_are_emitted_by_the_left_processor() {
    each_setup(
        || outer_topology(no_grace(100)),
        |run: &Run<i64>| {
            unmatched_rights_then_left(
                run,
                [10, 11, 12],
                ["10 at 1, 11 at 2, 12 at 3", "A1 at 3"],
                "A1",
                "A1+11",
            );
            run.left(2, "dummy", 401);
            run.expect("left dummy at 401", &[(0, "null+10", 1), (0, "null+12", 3)]);
            run.right(2, 100, 402);
            run.expect("right 100 at 402", &[(2, "dummy+100", 402)]);
        },
    );
}

/// `KStreamKStreamOuterJoinTest.testRightExpiredNonJoinedRecordsAreEmittedByTheRightProcessor`.
#[test]
fn outer_join_test_right_expired_non_joined_records_are_emitted_by_the_right_processor() {
    each_setup(
        || outer_topology(with_grace(100, 0)),
        |run: &Run<i64>| {
            unmatched_rights_then_left(
                run,
                [10, 11, 12],
                ["10 at 1, 11 at 2, 12 at 3", "A1 at 3"],
                "A1",
                "A1+11",
            );
            run.right(2, 100, 401);
            run.expect("right 100 at 401", &[(0, "null+10", 1), (0, "null+12", 3)]);
            run.left(2, "dummy", 402);
            run.expect("left dummy at 402", &[(2, "dummy+100", 402)]);
        },
    );
}

/// `KStreamKStreamOuterJoinTest.testOrdering`.
#[test]
fn outer_join_test_ordering() {
    each_setup(
        || outer_topology(no_grace(100)),
        |run: &Run<i64>| {
            run.left(0, "A0", 0);
            run.left(1, "A1", 100);
            run.expect("A0 at 0, A1 at 100", &[]);
            run.right(1, 11, 110);
            run.expect("11 at 110", &[(0, "A0+null", 0), (1, "A1+11", 110)]);
        },
    );
}

/// `KStreamKStreamOuterJoinTest.testGracePeriod`: both sides' null results wait for the
/// grace period; at one timestamp the right side's come first.
#[test]
fn outer_join_test_grace_period() {
    each_setup(
        || outer_topology(with_grace(100, 10)),
        |run: &Run<i64>| {
            run.left(0, "A0", 0);
            run.right(1, 11, 0);
            run.expect("A0, 11 at 0", &[]);
            run.left(1, "A1", 101);
            run.right(0, 10, 101);
            run.expect("A1, 10 at 101 (windows ended, not closed)", &[]);
            run.right(0, 100, 112);
            run.expect("100 at 112", &[(1, "null+11", 0), (0, "A0+null", 0)]);
        },
    );
}

/// `KStreamKStreamOuterJoinTest.testEmitAllNonJoinedResultsForAsymmetricWindow`:
/// `before = 5`, `after = 20`: a left record's window closes at `t + 20`, a right
/// record's at `t + 5`.
#[test]
fn outer_join_test_emit_all_non_joined_results_for_asymmetric_window() {
    each_setup(
        || outer_topology(no_grace(5).after(ms(20))),
        |run: &Run<i64>| {
            run.left(0, "A0", 29);
            run.expect("A0 at 29", &[]);
            run.left(1, "A1", 30);
            run.expect("A1 at 30", &[]);
            run.right(2, 12, 31);
            run.expect("12 at 31", &[]);
            run.right(3, 13, 36);
            run.expect("13 at 36", &[]);
            run.right(4, 14, 37);
            run.expect("14 at 37", &[(2, "null+12", 31)]);
            run.right(5, 15, 50);
            run.expect(
                "15 at 50",
                &[(0, "A0+null", 29), (3, "null+13", 36), (4, "null+14", 37)],
            );
        },
    );
}

/// `KStreamKStreamOuterJoinTest.runOuterJoin`, as run by `testOuterJoinWithDefaultSuppliers`
/// and `testOuterJoinWithInMemoryCustomSuppliers` (in-memory join stores chosen in
/// `StreamJoined`).
#[test]
fn outer_join_test_run_outer_join_default_and_in_memory_stores() {
    for store in [None, Some(DslStore::InMemory)] {
        each_setup(
            || {
                topology(|l, r: &KStream<i32, i64>| {
                    let options = match store {
                        Some(s) => joined().with_store_type(s),
                        None => joined(),
                    };
                    l.outer_join_with(r, outer_long, no_grace(100), options)
                })
            },
            |run: &Run<i64>| {
                run.lefts(2, "A", |_| 0);
                run.expect("A0, A1", &[]);
                run.rights(2, |k| i64::from(k) + 10, |_| 0);
                run.expect("10, 11", &[(0, "A0+10", 0), (1, "A1+11", 0)]);
                run.lefts(3, "B", |_| 0);
                run.expect("B0..B2", &[(0, "B0+10", 0), (1, "B1+11", 0)]);
                run.rights(4, |k| i64::from(k) + 20, |_| 0);
                run.expect(
                    "20..23",
                    &[
                        (0, "A0+20", 0),
                        (0, "B0+20", 0),
                        (1, "A1+21", 0),
                        (1, "B1+21", 0),
                        (2, "B2+22", 0),
                    ],
                );
                run.lefts(4, "C", |_| 0);
                run.expect(
                    "C0..C3",
                    &[
                        (0, "C0+10", 0),
                        (0, "C0+20", 0),
                        (1, "C1+11", 0),
                        (1, "C1+21", 0),
                        (2, "C2+22", 0),
                        (3, "C3+23", 0),
                    ],
                );
                run.left(0, "dummy", 400);
                run.expect("dummy at 400: every record was joined", &[]);
            },
        );
    }
}

/// `KStreamKStreamOuterJoinTest.testWindowing` with its `testUpperWindowBound` and
/// `testLowerWindowBound`.
#[test]
fn outer_join_test_windowing_upper_and_lower_window_bound() {
    each_setup(
        || outer_topology(no_grace(100)),
        |run: &Run<i64>| {
            run.lefts(2, "A", |_| 0);
            run.expect("A0, A1 at 0", &[]);
            run.rights(4, |k| i64::from(k) + 10, |_| 0);
            run.expect("10..13 at 0", &[(0, "A0+10", 0), (1, "A1+11", 0)]);

            // testUpperWindowBound
            run.rights(4, |k| i64::from(k) + 20, |k| 1000 + k);
            run.expect(
                "20..23 at 1000..1003",
                &[(2, "null+12", 0), (3, "null+13", 0)],
            );
            run.lefts(4, "B", |_| 1100);
            run.expect(
                "B at 1100",
                &[
                    (0, "B0+20", 1100),
                    (1, "B1+21", 1100),
                    (2, "B2+22", 1100),
                    (3, "B3+23", 1100),
                ],
            );
            run.lefts(4, "C", |_| 1101);
            run.expect(
                "C at 1101",
                &[(1, "C1+21", 1101), (2, "C2+22", 1101), (3, "C3+23", 1101)],
            );
            run.lefts(4, "D", |_| 1102);
            run.expect("D at 1102", &[(2, "D2+22", 1102), (3, "D3+23", 1102)]);
            run.lefts(4, "E", |_| 1103);
            run.expect("E at 1103", &[(3, "E3+23", 1103)]);
            run.lefts(4, "F", |_| 1104);
            run.expect("F at 1104", &[]);
            run.left(0, "dummy", 1405);
            run.expect(
                "dummy at 1405",
                &[
                    (0, "C0+null", 1101),
                    (0, "D0+null", 1102),
                    (1, "D1+null", 1102),
                    (0, "E0+null", 1103),
                    (1, "E1+null", 1103),
                    (2, "E2+null", 1103),
                    (0, "F0+null", 1104),
                    (1, "F1+null", 1104),
                    (2, "F2+null", 1104),
                    (3, "F3+null", 1104),
                ],
            );

            // testLowerWindowBound
            run.lefts(4, "G", |_| 899);
            run.expect(
                "G at 899",
                &[
                    (0, "G0+null", 899),
                    (1, "G1+null", 899),
                    (2, "G2+null", 899),
                    (3, "G3+null", 899),
                ],
            );
            run.lefts(4, "H", |_| 900);
            run.expect(
                "H at 900",
                &[
                    (0, "H0+20", 1000),
                    (1, "H1+null", 900),
                    (2, "H2+null", 900),
                    (3, "H3+null", 900),
                ],
            );
            run.lefts(4, "I", |_| 901);
            run.expect(
                "I at 901",
                &[
                    (0, "I0+20", 1000),
                    (1, "I1+21", 1001),
                    (2, "I2+null", 901),
                    (3, "I3+null", 901),
                ],
            );
            run.lefts(4, "J", |_| 902);
            run.expect(
                "J at 902",
                &[
                    (0, "J0+20", 1000),
                    (1, "J1+21", 1001),
                    (2, "J2+22", 1002),
                    (3, "J3+null", 902),
                ],
            );
            run.lefts(4, "K", |_| 903);
            run.expect(
                "K at 903",
                &[
                    (0, "K0+20", 1000),
                    (1, "K1+21", 1001),
                    (2, "K2+22", 1002),
                    (3, "K3+23", 1003),
                ],
            );
            run.left(0, "dummy", 1103);
            run.expect("late dummy at 1103", &[(0, "dummy+null", 1103)]);
        },
    );
}

/// `KStreamKStreamOuterJoinTest.testShouldNotEmitLeftJoinResultForAsymmetricBeforeWindow`:
/// `before = 0`, `after = 100`.
#[test]
fn outer_join_test_should_not_emit_left_join_result_for_asymmetric_before_window() {
    each_setup(
        || outer_topology(no_grace(100).before(Duration::ZERO)),
        |run: &Run<i64>| {
            run.lefts(2, "A", |k| k);
            run.expect("A0 at 0, A1 at 1", &[]);
            run.right(0, 10, 100);
            run.expect("10 at 100", &[(0, "A0+10", 100)]);
            run.right(1, 11, 102);
            run.expect("11 at 102", &[(1, "A1+null", 1)]);
            run.right(2, 12, 103);
            run.expect("12 at 103", &[(1, "null+11", 102)]);
            run.left(2, "A2", 103);
            run.expect("A2 at 103", &[(2, "A2+12", 103)]);
        },
    );
}

/// `KStreamKStreamOuterJoinTest.testShouldNotEmitLeftJoinResultForAsymmetricAfterWindow`:
/// `before = 100`, `after = 0`.
#[test]
fn outer_join_test_should_not_emit_left_join_result_for_asymmetric_after_window() {
    each_setup(
        || outer_topology(no_grace(100).after(Duration::ZERO)),
        |run: &Run<i64>| {
            run.lefts(2, "A", |k| k);
            run.expect("A0 at 0, A1 at 1", &[(0, "A0+null", 0)]);
            run.right(1, 11, 1);
            run.expect("11 at 1", &[(1, "A1+11", 1)]);
            run.right(2, 12, 101);
            run.expect("12 at 101", &[]);
            run.right(3, 13, 101);
            run.expect("13 at 101", &[]);
            run.left(2, "A2", 201);
            run.expect("A2 at 201", &[(2, "A2+12", 201)]);
        },
    );
}

/// `KStreamKStreamOuterJoinTest.testShouldForwardCurrentHeaders`: null results carry the
/// headers of the record whose arrival emitted them, join results those of the arriving
/// record (Kafka calls this undefined but observed behaviour).
#[test]
fn outer_join_test_should_forward_current_headers() {
    fn h(byte: u8) -> Headers {
        let mut headers = Headers::new();
        headers.add("h", Some(vec![byte]));
        headers
    }
    each_setup(
        || {
            topology(|l, r: &KStream<i32, i64>| {
                l.outer_join_with_key(
                    r,
                    |_, lv: Option<&String>, rv: Option<&i64>| outer_long(lv, rv),
                    with_grace(100, 10),
                    joined(),
                )
            })
        },
        |run: &Run<i64>| {
            let got = || -> Vec<(i32, String, i64, Headers)> {
                run.out
                    .read_records_to_list()
                    .unwrap()
                    .into_iter()
                    .map(|r| (r.key, r.value, r.timestamp, r.headers))
                    .collect()
            };
            run.left_in
                .pipe_record(Record::new(0, "A0".to_string(), 0).with_headers(h(1)))
                .unwrap();
            run.right_in
                .pipe_record(Record::new(1, 10, 0).with_headers(h(2)))
                .unwrap();
            run.right_in
                .pipe_record(Record::new(3, 100, 211).with_headers(h(3)))
                .unwrap();
            assert_eq!(
                got(),
                vec![
                    (1, "null+10".to_string(), 0, h(3)),
                    (0, "A0+null".to_string(), 0, h(3)),
                ],
                "{:?}",
                run.setup
            );
            run.left_in
                .pipe_record(Record::new(2, "A2".to_string(), 200).with_headers(h(4)))
                .unwrap();
            run.right_in
                .pipe_record(Record::new(2, 12, 200).with_headers(h(5)))
                .unwrap();
            assert_eq!(
                got(),
                vec![(2, "A2+12".to_string(), 200, h(5))],
                "{:?}",
                run.setup
            );
        },
    );
}
