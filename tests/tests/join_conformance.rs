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
//! The inputs and the expected outputs (key, value, timestamp, in order) are Kafka's, step by step;
//! only the code around them is ours. Where Kafka's expected lists follow a plain rule over a batch
//! of records (its steps at time 0: every earlier record of the other side with the key; its
//! window-bound sweeps: the other side's record for the key if in the window), the test computes
//! them by that rule (`at_time_zero`, `Run::sweep`). As in those tests, keys are integers, the left
//! values strings and the right values strings or (outer join tests) longs, and the joiner renders
//! a result as Kafka's `MockValueJoiner.TOSTRING_JOINER` does: `left+right`, `null` for a missing
//! side. Kafka's `TopologyTestDriver` sets the emit interval of non-joined results to 0, so that a
//! left/outer result with no partner is emitted by the first record processed once stream time
//! passes its window's close, as ours (which has no throttle) always does. The late-record
//! scenarios follow Kafka's behaviour in those tests: a record behind the join's retention is still
//! joined with the other side's buffered records, and, in a left or outer join, an unmatched one
//! gets its null result at once.
//!
//! Every scenario runs four times: with the record cache on and off, on RocksDB and on
//! in-memory stores (`default.dsl.store`).

// Test helpers outside #[test] functions may unwrap too: a panic fails the test.
#![allow(clippy::unwrap_used)]

use std::fmt::{Debug, Display};
use std::str::FromStr;
use std::time::Duration;

use streams_core::config::DslStore;
use streams_core::prelude::*;

mod join_common;
use join_common::{LEFT, OUT, RIGHT, Setup, Side, check_key};

/// The right values of the scenarios: strings, or the longs of the outer join tests, which
/// the scenarios write and show as text.
trait RightValue: DefaultSerde + FromStr<Err: Debug> + Display + 'static {}
impl<T: DefaultSerde + FromStr<Err: Debug> + Display + 'static> RightValue for T {}

/// A driver running one join topology: left input `left` (Kafka's `topic1`, `i32` ->
/// `String`), right input `right` (`topic2`, `i32` -> `R`), joined output `out` (`i32` ->
/// `String`).
type Run<R> = join_common::Run<i32, String, R, String>;

impl<R: RightValue> Run<R> {
    /// Kafka's loops over the keys `0..n` of the left stream: value `<prefix><key>` at
    /// `ts(key)`.
    fn lefts(&self, n: i32, prefix: &str, ts: impl Fn(i64) -> i64) {
        for k in 0..n {
            self.left(k, format!("{prefix}{k}"), ts(i64::from(k)));
        }
    }

    /// Kafka's loops over the keys `0..n` of the right stream: value `<prefix><key>` (as `R`
    /// reads it: the longs of the outer join tests have the prefix `1` for 10, 11, ...) at
    /// `ts(key)`.
    fn rights(&self, n: i32, prefix: &str, ts: impl Fn(i64) -> i64) {
        for k in 0..n {
            let value = format!("{prefix}{k}").parse().unwrap();
            self.right(k, value, ts(i64::from(k)));
        }
    }

    /// Kafka's loops over the keys `0..n` of one side.
    fn batch(&self, side: Side, n: i32, prefix: &str, ts: impl Fn(i64) -> i64) {
        match side {
            Side::Left => self.lefts(n, prefix, ts),
            Side::Right => self.rights(n, prefix, ts),
        }
    }

    /// Everything emitted since the last check, as (key, value, timestamp).
    #[track_caller]
    fn expect(&self, step: &str, expected: &[(i32, &str, i64)]) {
        let expected = expected
            .iter()
            .map(|(k, v, t)| (*k, (*v).to_string(), *t))
            .collect();
        self.check(step, expected);
    }

    /// Kafka's window-bound sweeps (`testWindowing`, `testAsymmetricWindowing...`): for each
    /// letter of `letters`, the n-th at `first + n`, records `<letter><k>` for the keys
    /// `0..4` into `side`. Kafka's expected results follow the window: in key order, each
    /// record joins its [`Partners`] record if that is in the window, at the later of the
    /// two timestamps; with `late` (only left records), any other gets its null result at
    /// once, its window having closed long ago.
    #[track_caller]
    fn sweep(&self, side: Side, letters: &str, first: i64, partners: &Partners, late: bool) {
        for (n, letter) in (0..).zip(letters.chars()) {
            let ts = first + n;
            self.batch(side, 4, &letter.to_string(), |_| ts);
            let expected = (0..4)
                .filter_map(|k| {
                    let own = format!("{letter}{k}");
                    let other = format!("{}{k}", partners.prefix);
                    let other_ts = partners.first + i64::from(k);
                    let ((l, lt), (r, rt)) = match side {
                        Side::Left => ((&own, ts), (other, other_ts)),
                        Side::Right => ((&other, other_ts), (own.clone(), ts)),
                    };
                    if (lt - partners.before..=lt + partners.after).contains(&rt) {
                        Some((k, format!("{l}+{r}"), lt.max(rt)))
                    } else {
                        late.then(|| (k, format!("{own}+null"), ts))
                    }
                })
                .collect();
            self.check(&format!("{letter} at {ts}"), expected);
        }
    }
}

/// The other side of a [`Run::sweep`]: one record per key `k` in `0..4`, `<prefix><k>` at
/// `first + k`; and the join window: a left record at `t` joins the right records in
/// `[t - before, t + after]`.
struct Partners {
    prefix: &'static str,
    first: i64,
    before: i64,
    after: i64,
}

/// Kafka's steps at time 0 (`testJoin`, `runLeftJoin`, `runOuterJoin`): for each
/// `(side, prefix, n)` of `batches`, records `<prefix><k>` for the keys `0..n` into `side`,
/// all at 0. Kafka's expected results are a nested loop: in key order, each record joins
/// every record of the other side with its key received so far, in the order they came.
#[track_caller]
fn at_time_zero<R: RightValue>(run: &Run<R>, batches: &[(Side, &str, i32)]) {
    let mut received: Vec<(Side, i32, String)> = Vec::new();
    for &(side, prefix, n) in batches {
        run.batch(side, n, prefix, |_| 0);
        let mut expected = Vec::new();
        for k in 0..n {
            let own = format!("{prefix}{k}");
            for (_, _, other) in received
                .iter()
                .filter(|(s, key, _)| *s != side && *key == k)
            {
                let value = match side {
                    Side::Left => format!("{own}+{other}"),
                    Side::Right => format!("{other}+{own}"),
                };
                expected.push((k, value, 0));
            }
        }
        received.extend((0..n).map(|k| (side, k, format!("{prefix}{k}"))));
        run.check(&format!("{prefix}0..{prefix}{}", n - 1), expected);
    }
}

/// Runs `scenario` once in every [`Setup`] on a fresh topology.
fn each_setup<R: RightValue>(topology: impl Fn() -> Topology, scenario: impl Fn(&Run<R>)) {
    join_common::each_setup("join-conformance", &Setup::all(&[1]), topology, scenario);
}

/// `left` joined with `right` by `join`, written to `out`.
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

/// The start of Kafka's `testLeftExpiredNonJoinedRecordsAreEmittedBy...` scenarios of the
/// left and outer joins: left records `A0` at 1, `A1` at 2 and `A0-0` at 3, then a right
/// record `a1` for key 1 at 3, joining `A1`.
fn unmatched_lefts_then_a1<R: RightValue>(run: &Run<R>, a1: R) {
    run.left(0, "A0".into(), 1);
    run.left(1, "A1".into(), 2);
    run.left(0, "A0-0".into(), 3);
    run.expect("A0 at 1, A1 at 2, A0-0 at 3", &[]);
    let (step, joined) = (format!("{a1} at 3"), format!("A1+{a1}"));
    run.right(1, a1, 3);
    run.expect(&step, &[(1, &joined, 3)]);
}

/// The start of the left join's `testRightNonJoinedRecordsAreNeverEmittedBy...` scenarios
/// and of the outer join's `testRightExpiredNonJoinedRecordsAreEmittedBy...` ones: three
/// right records for keys 0, 1, 0 at 1, 2, 3, then a left record `left` for key 1 at 3,
/// joining the second of them.
fn unmatched_rights_then_left<R: RightValue>(run: &Run<R>, [r0, r1, r2]: [R; 3], left: &str) {
    let step = format!("right {r0} at 1, {r1} at 2, {r2} at 3");
    let joined = format!("{left}+{r1}");
    run.right(0, r0, 1);
    run.right(1, r1, 2);
    run.right(0, r2, 3);
    run.expect(&step, &[]);
    run.left(1, left.into(), 3);
    run.expect(&format!("left {left} at 3"), &[(1, &joined, 3)]);
}

/// The end of Kafka's `...EmittedByTheLeftProcessor` / `...ByTheRightProcessor` scenarios: a
/// record for key 2 at 401 into the `by` side (`dummy` on the left, `right` on the right)
/// moves stream time past the windows and emits `emitted`; then one for key 2 at `ts` into
/// the other side joins it.
#[track_caller]
fn stream_time_moved_by<R: RightValue>(
    run: &Run<R>,
    by: Side,
    right: R,
    emitted: &[(i32, &str, i64)],
    ts: i64,
) {
    let joined = format!("dummy+{right}");
    let right_step = format!("right {right}");
    match by {
        Side::Left => {
            run.left(2, "dummy".into(), 401);
            run.expect("left dummy at 401", emitted);
            run.right(2, right, ts);
            run.expect(&format!("{right_step} at {ts}"), &[(2, &joined, ts)]);
        }
        Side::Right => {
            run.right(2, right, 401);
            run.expect(&format!("{right_step} at 401"), emitted);
            run.left(2, "dummy".into(), ts);
            run.expect(&format!("left dummy at {ts}"), &[(2, &joined, ts)]);
        }
    }
}

// ---------------------------------------------------------------------------------------
// Inner join (KStreamKStreamJoinTest)
// ---------------------------------------------------------------------------------------

/// The steps of `KStreamKStreamJoinTest.testJoin`, which its `testOuterJoin` runs again
/// through an outer join: everything at time 0, so the results are the same.
fn test_join_steps(run: &Run<String>) {
    use Side::{Left, Right};
    at_time_zero(
        run,
        &[
            (Left, "A", 2),
            (Right, "a", 2),
            (Left, "B", 4),
            (Right, "b", 4),
            (Left, "C", 4),
            (Right, "c", 2),
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
            run.rights(2, "a", |_| 0);
            run.expect("a0, a1 at 0", &[(0, "A0+a0", 0), (1, "A1+a1", 0)]);
            run.lefts(4, "B", |k| 1000 + k);
            run.expect("B0..B3 at 1000..1003", &[]);
            let partners = |prefix, first| Partners {
                prefix,
                first,
                before: 100,
                after: 100,
            };
            let b = partners("B", 1000);
            run.sweep(Side::Right, "bcdef", 1100, &b, false);
            run.sweep(Side::Right, "ghijk", 899, &b, false);
            run.rights(4, "l", |k| 2000 + k);
            run.expect("l at 2000..2003", &[]);
            let l = partners("l", 2000);
            run.sweep(Side::Left, "CDEFG", 2100, &l, false);
            run.sweep(Side::Left, "HIJKL", 1899, &l, false);
        },
    );
}

/// Kafka's `testAsymmetricWindowing...` on a window of `before` and `after`: left records
/// `A<k>` at `1000 + k`, then right records in a [`Run::sweep`] of each `(letters, first)`.
#[track_caller]
fn asymmetric_windowing(run: &Run<String>, before: i64, after: i64, sweeps: [(&str, i64); 2]) {
    run.lefts(4, "A", |k| 1000 + k);
    run.expect("A at 1000..1003", &[]);
    let a = Partners {
        prefix: "A",
        first: 1000,
        before,
        after,
    };
    for (letters, first) in sweeps {
        run.sweep(Side::Right, letters, first, &a, false);
    }
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
        |run: &Run<String>| asymmetric_windowing(run, 0, 100, [("abcde", 999), ("fghij", 1100)]),
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
        |run: &Run<String>| asymmetric_windowing(run, 100, 0, [("abcde", 899), ("fghij", 1000)]),
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
            run.left(0, "A0".into(), 0);
            run.left(0, "A0-0".into(), 0);
            run.right(1, "a0".into(), 111);
            run.right(2, "dummy".into(), 500);
            run.expect(
                "A0, A0-0 at 0; a0 at 111; dummy at 500",
                &[(0, "A0+null", 0), (0, "A0-0+null", 0)],
            );
            run.left(2, "A2".into(), 1000);
            run.left(2, "A2-0".into(), 1000);
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
            unmatched_lefts_then_a1(run, "a1".into());
            let nulls = [(0, "A0+null", 1), (0, "A0-0+null", 3)];
            stream_time_moved_by(run, Side::Left, "dummy".into(), &nulls, 401);
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
            unmatched_lefts_then_a1(run, "a1".into());
            let nulls = [(0, "A0+null", 1), (0, "A0-0+null", 3)];
            stream_time_moved_by(run, Side::Right, "dummy".into(), &nulls, 402);
        },
    );
}

/// `KStreamKStreamLeftJoinTest.testRightNonJoinedRecordsAreNeverEmittedByTheLeftProcessor`.
#[test]
fn left_join_test_right_non_joined_records_are_never_emitted_by_the_left_processor() {
    each_setup(
        || left_topology(with_grace(100, 0)),
        |run: &Run<String>| {
            unmatched_rights_then_left(run, ["A0".into(), "A1".into(), "A0-0".into()], "a1");
            stream_time_moved_by(run, Side::Left, "dummy".into(), &[], 402);
        },
    );
}

/// `KStreamKStreamLeftJoinTest.testRightNonJoinedRecordsAreNeverEmittedByTheRightProcessor`.
#[test]
fn left_join_test_right_non_joined_records_are_never_emitted_by_the_right_processor() {
    each_setup(
        || left_topology(no_grace(100)),
        |run: &Run<String>| {
            unmatched_rights_then_left(run, ["A0".into(), "A1".into(), "A0-0".into()], "a1");
            stream_time_moved_by(run, Side::Right, "dummy".into(), &[], 402);
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
            let a = Partners {
                prefix: "A",
                first: 1000,
                before: 100,
                after: 0,
            };
            run.sweep(Side::Right, "abcde", 999, &a, false);
            run.sweep(Side::Right, "f", 1100, &a, false);
        },
    );
}

/// The steps of Kafka's `runLeftJoin` and `runOuterJoin` before their last record: the
/// right records of the two batches are `<prefixes[0]><k>` and `<prefixes[1]><k>`.
fn run_join_steps<R: RightValue>(run: &Run<R>, prefixes: [&str; 2]) {
    use Side::{Left, Right};
    at_time_zero(
        run,
        &[
            (Left, "A", 2),
            (Right, prefixes[0], 2),
            (Left, "B", 3),
            (Right, prefixes[1], 4),
            (Left, "C", 4),
        ],
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
                run_join_steps(run, ["a", "b"]);
                run.left(0, "dummy".into(), 1000);
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
            run.left(0, "A0".into(), 0);
            run.left(1, "A1".into(), 100);
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
            run.rights(4, "a", |_| 101);
            run.expect("a at 101", &[]);
            run.right(0, "dummy".into(), 1201);
            run.expect("dummy at 1201", &[(0, "A0+null", 0), (1, "A1+null", 0)]);
        },
    );
}

/// Kafka's `testWindowing` of the left and outer joins, with its `testUpperWindowBound` and
/// `testLowerWindowBound`, on a 100 ms window: the right records of its two batches are
/// `<prefixes[0]><k>` (at 0) and `<prefixes[1]><k>` (at `1000 + k`), the second of which
/// emits `unmatched`; the last left record, late, comes at `late`.
#[track_caller]
fn left_or_outer_windowing<R: RightValue>(
    run: &Run<R>,
    prefixes: [&'static str; 2],
    unmatched: &[(i32, &str, i64)],
    late: i64,
) {
    at_time_zero(run, &[(Side::Left, "A", 2), (Side::Right, prefixes[0], 4)]);

    // testUpperWindowBound
    run.rights(4, prefixes[1], |k| 1000 + k);
    run.expect(&format!("{} at 1000..1003", prefixes[1]), unmatched);
    let partners = Partners {
        prefix: prefixes[1],
        first: 1000,
        before: 100,
        after: 100,
    };
    run.sweep(Side::Left, "BCDEF", 1100, &partners, false);
    run.left(0, "dummy".into(), 1405);
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
    run.sweep(Side::Left, "GHIJK", 899, &partners, true);
    run.left(0, "dummy".into(), late);
    run.expect(&format!("late dummy at {late}"), &[(0, "dummy+null", late)]);
}

/// `KStreamKStreamLeftJoinTest.testWindowing` with `testUpperWindowBound` and
/// `testLowerWindowBound`: null results only once a window closes, emitted in timestamp
/// then key order; late left records (behind stream time by more than the window) join
/// what they can and get their null result at once.
#[test]
fn left_join_test_windowing_upper_and_lower_window_bound() {
    each_setup(
        || topology(|l, r: &KStream<i32, String>| l.left_join(r, left_joiner, no_grace(100))),
        |run: &Run<String>| left_or_outer_windowing(run, ["a", "b"], &[], 1203),
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
            run.left(0, "A0".into(), 0);
            run.left(0, "A0-0".into(), 0);
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
            run.left(2, "A2".into(), 200);
            run.left(2, "A2-0".into(), 200);
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
            unmatched_lefts_then_a1(run, 11);
            let nulls = [(0, "A0+null", 1), (0, "A0-0+null", 3)];
            stream_time_moved_by(run, Side::Left, 100, &nulls, 401);
        },
    );
}

/// `KStreamKStreamOuterJoinTest.testLeftExpiredNonJoinedRecordsAreEmittedByTheRightProcessor`.
#[test]
fn outer_join_test_left_expired_non_joined_records_are_emitted_by_the_right_processor() {
    each_setup(
        || outer_topology(with_grace(100, 0)),
        |run: &Run<i64>| {
            unmatched_lefts_then_a1(run, 11);
            let nulls = [(0, "A0+null", 1), (0, "A0-0+null", 3)];
            stream_time_moved_by(run, Side::Right, 100, &nulls, 402);
        },
    );
}

/// `KStreamKStreamOuterJoinTest.testRightExpiredNonJoinedRecordsAreEmittedByTheLeftProcessor`.
#[test]
fn outer_join_test_right_expired_non_joined_records_are_emitted_by_the_left_processor() {
    each_setup(
        || outer_topology(no_grace(100)),
        |run: &Run<i64>| {
            unmatched_rights_then_left(run, [10, 11, 12], "A1");
            let nulls = [(0, "null+10", 1), (0, "null+12", 3)];
            stream_time_moved_by(run, Side::Left, 100, &nulls, 402);
        },
    );
}

/// `KStreamKStreamOuterJoinTest.testRightExpiredNonJoinedRecordsAreEmittedByTheRightProcessor`.
#[test]
fn outer_join_test_right_expired_non_joined_records_are_emitted_by_the_right_processor() {
    each_setup(
        || outer_topology(with_grace(100, 0)),
        |run: &Run<i64>| {
            unmatched_rights_then_left(run, [10, 11, 12], "A1");
            let nulls = [(0, "null+10", 1), (0, "null+12", 3)];
            stream_time_moved_by(run, Side::Right, 100, &nulls, 402);
        },
    );
}

/// `KStreamKStreamOuterJoinTest.testOrdering`.
#[test]
fn outer_join_test_ordering() {
    each_setup(
        || outer_topology(no_grace(100)),
        |run: &Run<i64>| {
            run.left(0, "A0".into(), 0);
            run.left(1, "A1".into(), 100);
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
            run.left(0, "A0".into(), 0);
            run.right(1, 11, 0);
            run.expect("A0, 11 at 0", &[]);
            run.left(1, "A1".into(), 101);
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
            run.left(0, "A0".into(), 29);
            run.expect("A0 at 29", &[]);
            run.left(1, "A1".into(), 30);
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
                run_join_steps(run, ["1", "2"]);
                run.left(0, "dummy".into(), 400);
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
            let unmatched = [(2, "null+12", 0), (3, "null+13", 0)];
            left_or_outer_windowing(run, ["1", "2"], &unmatched, 1103);
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
            run.left(2, "A2".into(), 103);
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
            run.left(2, "A2".into(), 201);
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

/// Kafka's `KStreamKStreamJoin#emitNonJoinedOuterRecords` with asymmetric windows: each
/// side's processor looks at the shared store only once its own "after" (the left side's
/// `after`, the right side's `before`) plus grace is behind stream time. With `after = 0`
/// a right record at 50 emits nothing (0 + 100 >= 50), a left record at 60 emits A0's null
/// result (0 + 0 < 60).
#[test]
fn left_join_null_results_wait_for_the_arriving_sides_own_after() {
    each_setup(
        || left_topology(no_grace(100).after(Duration::ZERO)),
        |run: &Run<String>| {
            run.left(0, "A0".into(), 0);
            run.expect("A0 at 0", &[]);
            run.right(9, "x".into(), 50);
            run.expect("right at 50", &[]);
            run.left(8, "B".into(), 60);
            run.expect("left at 60", &[(0, "A0+null", 0)]);
        },
    );
}

/// Where this join deliberately differs from Kafka (docs/SEMANTICS.md): Kafka's scan of the
/// shared store leaves its `minTime` at the last entry it visited, so A1's null result
/// (window closed after 150) would wait for the scan at 161; here the scan remembers the
/// oldest entry still open, and A1's result comes with the first record past 150.
#[test]
fn left_join_null_results_come_with_the_first_record_after_their_window_closed() {
    each_setup(
        || left_topology(no_grace(100)),
        |run: &Run<String>| {
            run.left(0, "A0".into(), 0);
            run.left(1, "A1".into(), 50);
            run.left(2, "A2".into(), 60);
            run.expect("A0-A2", &[]);
            run.left(3, "A3".into(), 101);
            run.expect("A3 at 101", &[(0, "A0+null", 0)]);
            run.left(4, "A4".into(), 151);
            run.expect("A4 at 151", &[(1, "A1+null", 50)]);
            run.left(5, "A5".into(), 161);
            run.expect("A5 at 161", &[(2, "A2+null", 60)]);
        },
    );
}

/// The join stores' retention (`before + after + grace`) as Kafka's window stores apply it:
/// nothing at or below observed stream time minus the retention is read (`getActualFrom`)
/// or written. With a 10 ms difference (retention 20), a right record at 0 is gone once the
/// right side saw 20: a left record at 10 no longer joins it; a right record at 0 arriving
/// then is not buffered, so the left record at 10 after it does not join it either.
#[test]
fn join_stores_hold_nothing_at_or_below_stream_time_minus_retention() {
    each_setup(
        || topology(|l, r: &KStream<i32, String>| l.join(r, inner, no_grace(10))),
        |run: &Run<String>| {
            run.right(0, "r0".into(), 0);
            run.right(1, "r1".into(), 20);
            run.expect("rights", &[]);
            run.left(0, "l".into(), 10);
            run.expect("left at 10: r0 expired", &[]);
            run.left(1, "m".into(), 11);
            run.expect("left at 11 joins r1", &[(1, "m+r1", 20)]);
            let dropped = run.driver.metrics().dropped_records;
            run.right(2, "late".into(), 0);
            assert_eq!(
                run.driver.metrics().dropped_records,
                dropped + 1,
                "a right record at 0 is late: not buffered, counted"
            );
            run.left(2, "n".into(), 10);
            run.expect("nothing to join", &[]);
        },
    );
}
