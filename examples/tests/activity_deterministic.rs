//! The activity app as a black box, on deterministic input (issue #15): the real `activity`
//! binary runs on the embedded engine with `--start-time` (simulated event time from a
//! fixed start and the seed, the events written as fast as possible), with 1 and 4
//! partitions and 1 and 2 stream threads, the record cache on (the default) and the app's
//! own settings; once it has processed everything and exited, its input and output topics
//! are read back through the `streams` CLI (`streams consume`), and every output is
//! recomputed here from the raw input with plain maps (`common::recount`), never the DSL:
//!
//! - `page_view_counts`: the latest count of every page and minute is exact;
//! - `page_view_counts_final`: exactly one record per window, with the exact count;
//! - `click_through_rate`: the latest views, clicks and ratio of every page and minute;
//! - `user_sessions`: the sessions still standing are exactly the input's sessions;
//! - `alerts`: exactly one alert per user and closed 10-second window over the threshold.
//!
//! Top pages are a query over the `page-view-counts` store, not a topic; that store's
//! content is what `page_view_counts` carries. The `recent-alerts` table is internal (its
//! changelog holds timestamped binary values) and is left out. The two runs with one
//! partition count must have written byte-identical input topics (the deterministic mode's
//! promise).
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
//! Scale: 15 000 events per run (60 000 over the four runs, a few seconds each), 10 per
//! second of event time: 25 minutes, about 4 300 closed page windows, 2 100 sessions (many
//! merged) and 20 bot alerts. The app keeps its own settings, 10 s of grace (2 s for
//! alerts), and its input arrives as a backlog, so every task must process its records in
//! timestamp order. With 4 partitions each by-page task also receives the records of four
//! upstream tasks, interleaved in the order those processed them: the results are exact
//! only if the upstream tasks never drift further apart in event time than the grace. On a
//! failure the test reads the repartition topic (purging is turned off for that) and says
//! how many records reached their by-page task after their window closed, how far behind,
//! and whether the app's counts are exactly the records that came in time, which tells late
//! records from miscounts.
//!
//! The `streams` CLI must be built: `cargo test --workspace` builds it; for this test alone
//! run `cargo build -p streams-state --bin streams` first (see `common::streams_cli`).

// Test helpers outside #[test] functions may unwrap too: a panic fails the test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use common::recount::{self, Event, Expected, Settings, window_start};
use common::{CliRecord, consume, run_app};
use serde::de::DeserializeOwned;
use streams_core::partitioner::partition_for_key;
use streams_examples::activity::{
    self, Activity, Alert, Click, ClickThroughRate, PageView, PageViewCount, PageWindow,
    SessionKey, UserSession,
};

const SEED: u64 = 15;
/// 2023-11-14T22:13:20Z.
const START_MS: i64 = 1_700_000_000_000;
const EVENTS: u64 = 15_000;
/// Events per second of event time.
const RATE: u32 = 10;
/// The by-page repartition topic (`<application.id>-events-by-page-repartition`).
const BY_PAGE_TOPIC: &str = "activity-events-by-page-repartition";

/// One app at a time: two cores, and the runs must not slow each other down.
static SERIAL: Mutex<()> = Mutex::new(());

#[test]
fn one_partition_gives_exact_results_with_one_and_two_threads() {
    matrix(1);
}

#[test]
fn four_partitions_give_exact_results_with_one_and_two_threads() {
    matrix(4);
}

/// Runs the app with `partitions` and 1, then 2 threads; fails with every failure of both.
fn matrix(partitions: u32) {
    let _one_at_a_time = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut failures = Vec::new();
    let mut inputs: Vec<String> = Vec::new();
    for threads in [1, 2] {
        let label = format!(
            "{partitions} partition{}, {threads} thread{}",
            if partitions == 1 { "" } else { "s" },
            if threads == 1 { "" } else { "s" }
        );
        match run(partitions, threads) {
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
        let line = a.lines().zip(b.lines()).position(|(x, y)| x != y);
        failures.push(format!(
            "== the input topics differ between the runs with 1 and 2 threads (same seed and \
             start time), first at line {line:?} of the CLI's output"
        ));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// What one run showed.
struct Run {
    /// The input topics as the CLI printed them.
    input: String,
    failures: Vec<String>,
    summary: String,
}

fn run(partitions: u32, threads: usize) -> Result<Run, String> {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_string_lossy().into_owned();
    let finished = run_app(
        &[
            "--data-dir",
            &data,
            "--start-time",
            &START_MS.to_string(),
            "--events",
            &EVENTS.to_string(),
            "--rate",
            &RATE.to_string(),
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
        ],
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
    let done = format!("processed {EVENTS} input events");
    if !finished.stdout.contains(&done) {
        return Err(format!(
            "the app did not report `{done}`:\n{}",
            finished.stdout
        ));
    }
    let log = dir.path().join("log");

    // The input, as written.
    let (views_text, views) = consume(&log, activity::PAGE_VIEWS_TOPIC)?;
    let (clicks_text, clicks) = consume(&log, activity::CLICKS_TOPIC)?;
    let mut failures = Vec::new();
    let mut misplaced = Vec::new();
    let mut events = Vec::new();
    for (r, v) in values::<PageView>(&views)? {
        misplaced.extend(misplaced_input(&r, &v.user_id, v.ts, partitions));
        events.push(Event {
            view: true,
            user: v.user_id,
            page: v.page,
            ts: v.ts,
        });
    }
    for (r, c) in values::<Click>(&clicks)? {
        misplaced.extend(misplaced_input(&r, &c.user_id, c.ts, partitions));
        events.push(Event {
            view: false,
            user: c.user_id,
            page: c.page,
            ts: c.ts,
        });
    }
    if !misplaced.is_empty() {
        failures.push(recount::listed(
            format!(
                "{} input records are not keyed by their user, in the user's partition, \
                 with their event time, e.g.",
                misplaced.len()
            ),
            &misplaced,
        ));
    }
    if events.len() as u64 != EVENTS {
        failures.push(format!(
            "the input topics hold {} events, not {EVENTS}",
            events.len()
        ));
    }
    let expected = Expected::from(&events, partitions, Settings::of_binary());
    // The data exercises what is checked.
    assert!(expected.closed_page_windows().len() > 1_000);
    assert!(expected.closed_alerts().len() >= 5);
    assert!(expected.sessions.len() > 1_000);

    // The outputs.
    let counts = topic::<PageWindow, PageViewCount>(&log, activity::PAGE_VIEW_COUNTS_TOPIC)?;
    failures.extend(recount::check_view_counts(&counts, &expected));
    let finals = topic::<PageWindow, PageViewCount>(&log, activity::PAGE_VIEW_COUNTS_FINAL_TOPIC)?;
    let (f, finals_summary) = recount::check_final_view_counts(&finals, &expected);
    failures.extend(f);
    let ctr = topic::<PageWindow, ClickThroughRate>(&log, activity::CLICK_THROUGH_RATE_TOPIC)?;
    failures.extend(recount::check_click_through_rates(&ctr, &expected));
    let sessions = topic::<SessionKey, UserSession>(&log, activity::USER_SESSIONS_TOPIC)?;
    failures.extend(recount::check_sessions(&sessions, &expected));
    let alerts = user_topic::<Alert>(&log, activity::ALERTS_TOPIC)?;
    let (f, alerts_summary) = recount::check_alerts(&alerts, &expected);
    failures.extend(f);

    if !failures.is_empty() {
        let (_, by_page) = consume(&log, BY_PAGE_TOPIC)?;
        let app_counts: BTreeMap<(String, i64), i64> = counts
            .iter()
            .filter_map(|(k, v)| v.as_ref().map(|v| ((k.page.clone(), k.start), v.views)))
            .collect();
        failures.push(late_records(&by_page, &expected, &app_counts));
    }
    Ok(Run {
        input: views_text + &clicks_text,
        failures,
        summary: format!(
            "{} events, the app ran {:.1?}; {finals_summary}; {alerts_summary}; {} sessions",
            events.len(),
            finished.elapsed,
            expected.sessions.len()
        ),
    })
}

/// An input record must be keyed by its user, in the user's partition (murmur2, as a
/// Kafka producer), with the event time as its timestamp; what is wrong otherwise.
fn misplaced_input(r: &CliRecord, user: &str, ts: i64, partitions: u32) -> Option<String> {
    let want = partition_for_key(user.as_bytes(), partitions);
    (r.key.as_deref() != Some(user) || r.partition != want || r.timestamp != ts)
        .then(|| format!("{r:?}: expected key {user}, partition {want}, timestamp {ts}"))
}

/// The records with their JSON values decoded.
fn values<V: DeserializeOwned>(records: &[CliRecord]) -> Result<Vec<(CliRecord, V)>, String> {
    records
        .iter()
        .map(|r| {
            let value = r.value.as_deref().ok_or(format!("a null value: {r:?}"))?;
            let v = serde_json::from_str(value).map_err(|e| format!("{r:?}: {e}"))?;
            Ok((r.clone(), v))
        })
        .collect()
}

/// Every record of `topic` as (key, value), tombstones as `None`, in the CLI's order; keys
/// are JSON.
fn topic<K: DeserializeOwned, V: DeserializeOwned>(
    log: &Path,
    topic: &str,
) -> Result<Vec<(K, Option<V>)>, String> {
    topic_with(log, topic, |k| {
        serde_json::from_str(k).map_err(|e| e.to_string())
    })
}

/// [`topic`] for topics keyed by user id (UTF-8 text, not JSON).
fn user_topic<V: DeserializeOwned>(
    log: &Path,
    topic: &str,
) -> Result<Vec<(String, Option<V>)>, String> {
    topic_with(log, topic, |k| Ok(k.to_string()))
}

fn topic_with<K, V: DeserializeOwned>(
    log: &Path,
    topic: &str,
    parse_key: impl Fn(&str) -> Result<K, String>,
) -> Result<Vec<(K, Option<V>)>, String> {
    let (_, records) = consume(log, topic)?;
    records
        .iter()
        .map(|r| {
            let key = r
                .key
                .as_deref()
                .ok_or(format!("{topic}: a null key: {r:?}"))?;
            let key = parse_key(key).map_err(|e| format!("{topic}: key of {r:?}: {e}"))?;
            let value = match r.value.as_deref() {
                None => None,
                Some(v) => {
                    Some(serde_json::from_str(v).map_err(|e| format!("{topic}: {r:?}: {e}"))?)
                }
            };
            Ok((key, value))
        })
        .collect()
}

/// A diagnosis for a failure: the records of the by-page repartition topic that reached
/// their task after their window had closed (its `end + grace` at or before the partition's
/// stream time so far), which the app must drop as late. The records of all upstream tasks
/// interleave there in the order they were processed. Whether the app's latest view counts
/// (`app_counts`) are exactly the counts of the records that came in time tells a by-page
/// task that counted wrong from records that came too late. With one partition the topic is
/// also the processing order of the one task that counts sessions and alerts, so clicks that
/// came after their alert window closed are counted too.
fn late_records(
    by_page: &[CliRecord],
    e: &Expected,
    app_counts: &BTreeMap<(String, i64), i64>,
) -> String {
    let s = e.settings;
    let mut lines = vec![format!(
        "diagnosis, from `{BY_PAGE_TOPIC}` (offset order per partition):"
    )];
    let mut stream_time: BTreeMap<u32, i64> = BTreeMap::new();
    let mut late: BTreeMap<u32, (u64, u64, i64)> = BTreeMap::new();
    let mut late_alert_clicks = (0u64, 0i64);
    let mut in_time: BTreeMap<(String, i64), i64> = BTreeMap::new();
    let mut misplaced = 0;
    for r in by_page {
        let page = r.key.clone().unwrap_or_default();
        if partition_for_key(page.as_bytes(), e.partitions) != r.partition {
            misplaced += 1;
        }
        let activity: Activity = r
            .value
            .as_deref()
            .and_then(|v| serde_json::from_str(v).ok())
            .unwrap_or_default();
        let st = stream_time.entry(r.partition).or_insert(i64::MIN);
        let ts = r.timestamp;
        let lag = st.saturating_sub(ts);
        if window_start(ts, s.window) + s.window + s.grace <= *st {
            let l = late.entry(r.partition).or_default();
            if activity.views > 0 {
                l.0 += 1;
            } else {
                l.1 += 1;
            }
            l.2 = l.2.max(lag);
        } else if activity.views > 0 {
            *in_time
                .entry((page.clone(), window_start(ts, s.window)))
                .or_default() += activity.views;
        }
        if e.partitions == 1
            && activity.clicks > 0
            && window_start(ts, s.alert_window) + s.alert_window + s.alert_grace <= *st
        {
            late_alert_clicks.0 += 1;
            late_alert_clicks.1 = late_alert_clicks.1.max(lag);
        }
        *st = (*st).max(ts);
    }
    if late.is_empty() {
        lines.push(format!(
            "  no record came after its window closed ({} records): the by-page tasks had \
             every record in time",
            by_page.len()
        ));
    }
    for (p, (views, clicks, lag)) in &late {
        lines.push(format!(
            "  partition {p}: {views} views and {clicks} clicks came after their window \
             closed (up to {:.1} s behind the partition's stream time, grace {} s): the app \
             must drop them",
            *lag as f64 / 1000.0,
            s.grace / 1000
        ));
    }
    let differ: Vec<String> = in_time
        .iter()
        .filter(|(k, n)| app_counts.get(*k) != Some(*n))
        .map(|((page, start), n)| {
            format!(
                "{page} [{start}, {}): {n} views came in time, the app counted {:?}",
                start + s.window,
                app_counts.get(&(page.clone(), *start))
            )
        })
        .chain(
            app_counts
                .iter()
                .filter(|(k, _)| !in_time.contains_key(*k))
                .map(|((page, start), n)| {
                    format!(
                        "{page} [{start}, {}): no view came in time, the app counted {n}",
                        start + s.window
                    )
                }),
        )
        .collect();
    if differ.is_empty() {
        let why = if late.is_empty() {
            "every view came in time"
        } else {
            "the by-page tasks counted right, the missing views came too late"
        };
        lines.push(format!(
            "  the app's page_view_counts are exactly the views that came in time ({} windows): {why}",
            in_time.len()
        ));
    } else {
        lines.push(format!(
            "  the app's page_view_counts differ from the views that came in time in {} windows, e.g.\n    {}",
            differ.len(),
            differ.iter().take(5).cloned().collect::<Vec<_>>().join("\n    ")
        ));
    }
    if e.partitions == 1 {
        lines.push(format!(
            "  the one input task processed {} clicks after their alert window closed (up to \
             {:.1} s behind its stream time, alert grace {} s)",
            late_alert_clicks.0,
            late_alert_clicks.1 as f64 / 1000.0,
            s.alert_grace / 1000
        ));
    }
    if misplaced > 0 {
        lines.push(format!(
            "  {misplaced} records are not in their page's partition (murmur2)"
        ));
    }
    lines.join("\n")
}
