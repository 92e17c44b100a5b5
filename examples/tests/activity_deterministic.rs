//! The activity app as a black box, on deterministic input (issue #15): the real `activity`
//! binary runs on the embedded engine with `--start-time` (simulated event time from a
//! fixed start and the seed; the events written at once or paced), with 1 and 4
//! partitions and 1 and 2 stream threads, the record cache on (the default) and the app's
//! own settings; once it has processed everything and exited, its input and output topics
//! are read back through the `streams` CLI (`streams consume`), and every output is
//! recomputed here from the raw input with plain maps (`common::recount`), never the DSL
//! (`common::check` runs the checks; `kafka_deterministic.rs` runs them on Kafka):
//!
//! - `page_view_counts`: the latest count of every page and minute is exact;
//! - `page_view_counts_final`: exactly one record per window, with the exact count;
//! - `country_view_counts`: the latest count of every country and minute, each view under
//!   its user's country at the view's time as the `users` topic says (the stream-table
//!   join);
//! - `click_through_rate` and `category_click_through_rate`: the latest resolved views,
//!   clicked views, attributed clicks and ratio of every page (category, from the `pages`
//!   topic: the global-table join) and minute, recounted from the views and clicks with a
//!   nested loop over each (user, page) and the join tasks' stream time (the view-click
//!   join: which views had a click within 30 minutes, and which waited long enough to be
//!   resolved without one);
//! - `user_sessions`: the sessions still standing are exactly the input's sessions;
//! - `alerts`: exactly one alert per user and closed 10-second window over the threshold.
//!
//! Top pages are a query over the `page-view-counts` store, not a topic; that store's
//! content is what `page_view_counts` carries. The `recent-alerts` table is internal (its
//! changelog holds timestamped binary values) and is left out. The two runs with one
//! partition count must have written byte-identical input topics, reference data included
//! (the deterministic mode's promise).
//!
//! Which final results must exist: a suppression emits a window once the time it observed
//! (the largest timestamp of the count updates that reached it) reaches `end + grace`, and
//! only when an update reaches it; idle advance, which would move time with the wall clock,
//! is off in deterministic mode. Windows near the end of the input therefore legitimately
//! stay open. Per task, the test requires the final of every window whose `end + grace` is
//! at or before the start of the window holding the task's latest view (for alerts: latest
//! click): that window's update reaches the suppression at the latest at the commit on
//! close, in whatever order the task processed its input. It allows finals up to the latest
//! view itself, and a final beyond that is a failure (its window cannot have closed). Only
//! the windows ending in the last minute of each by-page partition are in between. The
//! generator is not made to end with events that close everything: those events would be
//! input too, and the bound loses only the last of 25 minutes.
//!
//! Scale: with 1 partition, 15 000 events at 5 per second of event time (50 minutes)
//! written as a backlog, so the task reading views and clicks must process them in
//! timestamp order; the views of the first 19 minutes without a click are resolved (their
//! 30-minute click window and the join's 1-minute grace passed), those of the last 31
//! minutes still wait in the join unless clicked. With 4 partitions, 6 000 events at 10 per
//! second (10 minutes) paced at 20x (see [`PACED`] for why): there only clicked views are
//! resolved. The app keeps its own settings, 10 s of grace (2 s for alerts). With 4 partitions each
//! by-page task also receives the records of four upstream tasks, interleaved in the order
//! those processed them: the results are exact only if the upstream tasks never drift
//! further apart in event time than the grace. The
//! test reads the repartition topic (purging is turned off for that) and prints how far
//! behind its task's stream time a record came at most (the margin left to the grace); on a
//! failure it says how many records reached their by-page task after their window closed,
//! how far behind, and whether the app's counts are exactly the records that came in time,
//! which tells late records from miscounts.
//!
//! The `streams` CLI must be built: `cargo test --workspace` builds it; for this test alone
//! run `cargo build -p streams-state --bin streams` first (see `common::streams_cli`).

// Test helpers outside #[test] functions may unwrap too: a panic fails the test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Mutex;
use std::time::Duration;

use common::check::check_run;
use common::{TopicRecord, consume, run_app};

const SEED: u64 = 15;
/// 2023-11-14T22:13:20Z.
const START_MS: i64 = 1_700_000_000_000;

/// The input of a run: how many events, how many per second of event time, and how fast
/// they are written.
#[derive(Clone, Copy)]
struct Input {
    events: u64,
    rate: u32,
    /// `None`: all at once (a backlog); `Some(x)`: paced, event time running x times as
    /// fast as the wall clock.
    speedup: Option<u32>,
}

/// One partition: 15 000 events (50 minutes) as a backlog. The one task reading views and
/// clicks must process them in timestamp order, whatever it fetched first. The span is
/// longer than the click window and its grace, so views also resolve without a click.
const BACKLOG: Input = Input {
    events: 15_000,
    rate: 5,
    speedup: None,
};

/// Four partitions: 6 000 events (10 minutes) paced at 20x (30 s). Four upstream tasks then
/// feed each by-page task through the repartition topic. Tasks of different threads (and
/// instances) are not aligned in event time, as in Kafka Streams: a backlog lets one thread
/// run minutes ahead of the other, and their records reach the by-page tasks later than any
/// grace. Paced input keeps them within the processing latency times the speedup; the test
/// prints the largest lag it saw.
const PACED: Input = Input {
    events: 6_000,
    rate: 10,
    speedup: Some(20),
};

/// Four partitions: 12 000 events (40 minutes) as a backlog, with one and two threads. A
/// task that starts running (restored after the rebalance that the second thread's join
/// brings) must learn its partitions' lags at once: until its next poll it took them as
/// unknown and waited, while the other thread caught up minutes of event time, and the
/// by-page tasks then dropped its views as late.
const BACKLOG_FOUR: Input = Input {
    events: 12_000,
    rate: 5,
    speedup: None,
};

/// One app at a time: two cores, and the runs must not slow each other down.
static SERIAL: Mutex<()> = Mutex::new(());

#[test]
fn one_partition_gives_exact_results_with_one_and_two_threads() {
    matrix(1, BACKLOG);
}

#[test]
fn four_partitions_give_exact_results_with_one_and_two_threads() {
    matrix(4, PACED);
}

#[test]
fn four_partitions_as_a_backlog_give_exact_results_with_one_and_two_threads() {
    matrix(4, BACKLOG_FOUR);
}

/// Runs the app with `partitions` and 1, then 2 threads; fails with every failure of both.
fn matrix(partitions: u32, input: Input) {
    let _one_at_a_time = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut failures = Vec::new();
    let mut inputs: Vec<Vec<TopicRecord>> = Vec::new();
    for threads in [1, 2] {
        let label = format!(
            "{partitions} partition{}, {threads} thread{}",
            if partitions == 1 { "" } else { "s" },
            if threads == 1 { "" } else { "s" }
        );
        match run(partitions, threads, input) {
            Ok(run) => {
                eprintln!("{label}: {}", run.summary);
                if !run.failures.is_empty() {
                    failures.push(format!("== {label}:\n{}", run.failures.join("\n")));
                }
                inputs.push(run.input);
            }
            Err(e) => failures.push(format!("== {label}: {e}")),
        }
    }
    if let [a, b] = inputs.as_slice()
        && a != b
    {
        let first = a.iter().zip(b).position(|(x, y)| x != y);
        failures.push(format!(
            "== the input topics differ between the runs with 1 and 2 threads (same seed and \
             start time): {} and {} records, first different: {:?} and {:?}",
            a.len(),
            b.len(),
            first.map(|i| &a[i]),
            first.map(|i| &b[i])
        ));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// What one run showed.
struct Run {
    /// The input topics' records.
    input: Vec<TopicRecord>,
    failures: Vec<String>,
    summary: String,
}

fn run(partitions: u32, threads: usize, input: Input) -> Result<Run, String> {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_string_lossy().into_owned();
    let events = input.events;
    let speedup = input.speedup.map(|x| x.to_string());
    let mut pacing = Vec::new();
    if let Some(x) = &speedup {
        pacing.extend(["--speedup", x.as_str()]);
    }
    let finished = run_app(
        &[
            "--data-dir",
            &data,
            "--start-time",
            &START_MS.to_string(),
            "--events",
            &events.to_string(),
            "--rate",
            &input.rate.to_string(),
            "--seed",
            &SEED.to_string(),
            "--partitions",
            &partitions.to_string(),
            "--threads",
            &threads.to_string(),
            "--exit-when-done",
            // Keep the repartition topic's records for the diagnosis of late records.
            "--set",
            "streams.repartition.purge=false",
        ]
        .into_iter()
        .chain(pacing)
        .collect::<Vec<&str>>(),
        Duration::from_secs(600),
    );
    if !finished.success {
        return Err(format!(
            "the app failed ({}) after {:.1?}; its stderr ends with:\n{}",
            finished.status,
            finished.elapsed,
            finished.stderr_tail(20)
        ));
    }
    let done = format!("processed {events} input events");
    if !finished.stdout.contains(&done) {
        return Err(format!(
            "the app did not report `{done}`:\n{}",
            finished.stdout
        ));
    }
    let log = dir.path().join("log");
    let checked = check_run(
        &|topic| consume(&log, topic).map(|(_, records)| records),
        partitions,
        events,
    )?;
    // The data exercises what is checked.
    let expected = &checked.expected;
    assert!(expected.closed_page_windows().len() > 1_000);
    assert!(expected.closed_alerts().len() >= 5);
    assert!(expected.sessions.len() > 1_000);
    assert!(expected.per_country.len() > 50);
    assert!(
        expected.views_paired > 300,
        "{}",
        expected.attribution_summary()
    );
    if input.speedup.is_none() {
        assert!(
            expected.views_closed_unpaired > 1_000,
            "{}",
            expected.attribution_summary()
        );
    }
    Ok(Run {
        input: checked.input,
        failures: checked.failures,
        summary: format!("the app ran {:.1?}; {}", finished.elapsed, checked.summary),
    })
}
