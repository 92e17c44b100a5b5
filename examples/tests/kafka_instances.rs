//! The activity app as a group of three instances on Kafka: three processes of the
//! `activity` binary on one broker (librdkafka's mock cluster, hosted by this test on
//! 127.0.0.1) split the partitions, and the API of every instance answers for every key,
//! forwarding per-key requests to the owner and merging the others: each user's sessions,
//! each page's views per minute and the top pages agree on all three instances and with
//! the counts computed here from the raw events.
//!
//! The events span less than the windows' 10 s grace, so none can be dropped as late
//! however the instances interleave them, and they are written only once the group has
//! formed (no rebalance while they are processed), so every count is exact.
//!
//! Final results, read back from the broker: once input stops, idle advance (on in the
//! binary outside deterministic mode) moves each task's stream time on with the wall clock,
//! so every window closes; `page_view_counts_final` must then hold exactly one record per
//! page and window with its exact count, and `alerts` exactly one alert per user and alert
//! window over the threshold, as recomputed from the raw events (`common::recount`, the
//! same checks as `activity_deterministic.rs`). The events end just before a minute
//! boundary, so their windows close about 20 s after they are written.

#![cfg(feature = "kafka")]
// Test helpers outside #[test] functions may unwrap too: a panic fails the test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::check::{json_keyed, user_keyed};
use common::kafka::{mock_with_topics, read_records, start_instance, test_clients, wait_for_group};
use common::recount::{self, Event, Expected, Reference, Settings};
use common::{App, get, get_json, get_with, wait_for};
use serde_json::Value;
use streams_core::client::ClientSupplier;
use streams_examples::activity::generator::outgoing_record;
use streams_examples::activity::{self, ActivityEvent, Alert, PageViewCount, PageWindow};

const PARTITIONS: u32 = 4;
const EVENTS: usize = 3_000;
const MINUTE: i64 = 60_000;

/// The events, their event time within the last 70 s: `EVENTS` events in about 6 s, from
/// 10 s before a minute boundary (so they end before it and their windows close soon after
/// input stops). The simulation starts 10 minutes earlier and those events are left out (as
/// the binary does), so that visits are under way and the rate is steady: a cold start
/// spreads the first events over minutes, and the windows' grace would drop some of them as
/// late.
fn events() -> Vec<ActivityEvent> {
    let now = streams_examples::activity::web::now_ms();
    let from = now - now.rem_euclid(MINUTE) - 10_000;
    common::events_from(from, 11, (400, 40), 500.0, EVENTS, 9_000)
}

/// The same GET on every instance: the answers, which must all be equal.
fn same_on_all(apps: &[App], path: &str) -> Result<Value, String> {
    let answers: Vec<Value> = apps
        .iter()
        .map(|a| {
            let body = get(a.port, path)?;
            serde_json::from_str(&body).map_err(|e| format!("{path}: {e}: {body}"))
        })
        .collect::<Result<_, String>>()?;
    if answers.iter().any(|a| a != &answers[0]) {
        return Err(format!("the instances disagree on {path}: {answers:?}"));
    }
    Ok(answers[0].clone())
}

/// `path` with `/` escaped, for page names in a URL path.
fn escaped(page: &str) -> String {
    page.replace('/', "%2F")
}

#[test]
fn three_instances_split_the_partitions_and_each_answers_for_every_key() {
    let (_mock, bootstrap) = mock_with_topics(PARTITIONS);
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let apps: Vec<App> = dirs
        .iter()
        .enumerate()
        .map(|(i, dir)| {
            let extra = ["--no-generate", "--set", "consumer.fetch.wait.max.ms=50"];
            start_instance(i, &bootstrap, dir.path(), &extra)
        })
        .collect();

    // The group forms: every instance runs and lists the same three instances.
    wait_for_group(&apps.iter().collect::<Vec<_>>());

    // The input, written as a Kafka producer would (murmur2 of the user id).
    let events = events();
    let clients = test_clients("activity-test-producer", &bootstrap);
    let mut producer = clients.producer("activity-test-producer").unwrap();
    for e in &events {
        producer
            .send(outgoing_record(e, PARTITIONS).unwrap())
            .unwrap();
    }
    producer.flush(Duration::from_secs(30)).unwrap();

    // Counted here: views and clicks per user, views per page and minute.
    let mut per_user: BTreeMap<String, (i64, i64)> = BTreeMap::new();
    let mut per_page: BTreeMap<String, BTreeMap<i64, i64>> = BTreeMap::new();
    for e in &events {
        match e {
            ActivityEvent::PageView(v) => {
                per_user.entry(v.user_id.clone()).or_default().0 += 1;
                *per_page
                    .entry(v.page.clone())
                    .or_default()
                    .entry(v.ts - v.ts.rem_euclid(MINUTE))
                    .or_default() += 1;
            }
            ActivityEvent::Click(c) => per_user.entry(c.user_id.clone()).or_default().1 += 1,
        }
    }

    // All of it processed, each instance doing part of it.
    wait_for(120, "every event is processed", || {
        let statuses: Vec<Value> = apps
            .iter()
            .map(|a| get_json(a.port, "/api/status"))
            .collect();
        let processed: u64 = statuses
            .iter()
            .map(|s| s["processed"].as_u64().unwrap_or(0))
            .sum();
        let idle = statuses.iter().all(|s| s["lag"].as_u64() == Some(0));
        let shared = statuses
            .iter()
            .all(|s| s["processed"].as_u64().unwrap_or(0) > 0);
        (processed == EVENTS as u64 && idle && shared)
            .then_some(())
            .ok_or_else(|| format!("{statuses:?}"))
    });

    // Each user's sessions: the same on every instance, with every view and click.
    wait_for(60, "every user's sessions on every instance", || {
        for (user, (views, clicks)) in &per_user {
            let answer = same_on_all(&apps, &format!("/api/users/{user}/sessions"))?;
            let sessions = answer["sessions"].as_array().cloned().unwrap_or_default();
            let sum = |field: &str| -> i64 {
                sessions
                    .iter()
                    .map(|s| s[field].as_i64().unwrap_or(0))
                    .sum()
            };
            if (sum("views"), sum("clicks")) != (*views, *clicks) {
                return Err(format!(
                    "{user}: {answer}, expected {views} views, {clicks} clicks"
                ));
            }
        }
        Ok(())
    });

    // The state is split, not copied: asked as a forwarded request (answered locally,
    // never forwarded again; an instance without the key's partition answers 503),
    // exactly one instance has a user's sessions.
    for user in per_user.keys().take(50) {
        let path = format!("/api/users/{user}/sessions");
        let holders = apps
            .iter()
            .filter(|a| {
                get_with(a.port, &path, "x-activity-forwarded: 1\r\n").is_ok_and(|body| {
                    let v: Value = serde_json::from_str(&body).unwrap();
                    v["sessions"].as_array().is_some_and(|s| !s.is_empty())
                })
            })
            .count();
        assert_eq!(holders, 1, "{user}'s sessions are on one instance");
    }

    // Each page's views per minute, and the top pages of each minute.
    wait_for(60, "every page's views on every instance", || {
        for (page, windows) in &per_page {
            let answer = same_on_all(
                &apps,
                &format!("/api/pages/{}/views?minutes=60", escaped(page)),
            )?;
            let got: BTreeMap<i64, i64> =
                serde_json::from_value::<Vec<(i64, i64)>>(answer["windows"].clone())
                    .map_err(|e| e.to_string())?
                    .into_iter()
                    .collect();
            if &got != windows {
                return Err(format!("{page}: {got:?}, expected {windows:?}"));
            }
        }
        let mut minutes: Vec<i64> = per_page.values().flat_map(|w| w.keys().copied()).collect();
        minutes.sort_unstable();
        minutes.dedup();
        for minute in minutes {
            let answer = same_on_all(&apps, &format!("/api/top-pages?window={minute}&n=1000"))?;
            let got: BTreeMap<String, i64> =
                serde_json::from_value::<Vec<(String, i64)>>(answer["pages"].clone())
                    .map_err(|e| e.to_string())?
                    .into_iter()
                    .collect();
            let want: BTreeMap<String, i64> = per_page
                .iter()
                .filter_map(|(p, w)| w.get(&minute).map(|n| (p.clone(), *n)))
                .collect();
            if got != want {
                return Err(format!("top pages of {minute}: {got:?}, expected {want:?}"));
            }
        }
        Ok(())
    });

    // The final results: once every window has closed, one per page and window and one
    // alert per user and alert window over the threshold, each exact.
    let events: Vec<Event> = events.iter().map(Event::of).collect();
    // No reference data here: the checks below do not need it.
    let expected = Expected::from(
        &events,
        &Reference::default(),
        PARTITIONS,
        Settings::of_binary(),
    )
    .all_closed();
    let windows = expected.closed_page_windows().len();
    let finals = || -> Vec<(PageWindow, Option<PageViewCount>)> {
        let records = read_records(&clients, activity::PAGE_VIEW_COUNTS_FINAL_TOPIC, PARTITIONS);
        json_keyed(&records).unwrap()
    };
    wait_for(120, "a final result for every window", || {
        let finals = finals();
        (finals.len() >= windows)
            .then_some(())
            .ok_or_else(|| format!("{} of {windows} final results", finals.len()))
    });
    // Late duplicates would come within a commit interval.
    std::thread::sleep(Duration::from_secs(2));
    let (mut failures, finals_summary) = recount::check_final_view_counts(&finals(), &expected);
    let alerts: Vec<(String, Option<Alert>)> =
        user_keyed(&read_records(&clients, activity::ALERTS_TOPIC, PARTITIONS)).unwrap();
    let (alert_failures, alerts_summary) = recount::check_alerts(&alerts, &expected);
    failures.extend(alert_failures);
    eprintln!("{finals_summary}; {alerts_summary}");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
