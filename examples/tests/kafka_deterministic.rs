//! The activity app as a black box on Kafka (issue #15): three processes of the `activity`
//! binary form one group on librdkafka's mock cluster (hosted by this test on 127.0.0.1),
//! one of them writes deterministic input (`--start-time`: the same events and bytes as
//! `activity_deterministic.rs` gets on the embedded engine for the same flags) spanning 10
//! minutes of event time, and once everything is processed the input and output topics are
//! read back from the broker with a Kafka consumer and every output is compared exactly
//! with the recount of the raw input (`common::check`, the checks of
//! `activity_deterministic.rs`): the latest view counts, click-through rates and sessions,
//! one final view count per closed window and one alert per closed alert window over the
//! threshold, none emitted twice; views per country and click-through rates per page and
//! category, the outputs of the joins. The input, reference data included, must be byte
//! for byte what `activity --record` writes with the same flags (keys, values, timestamps,
//! partitions, offsets).
//!
//! Pacing. The input is not written as a backlog: the tasks of one process take their input
//! in timestamp order and a thread runs its oldest task first, but three processes are not
//! coordinated, so upstream tasks in different processes would drift apart in event time
//! while working through a backlog, and the records they send a by-page task through the
//! repartition topic would arrive more than the 10 s grace behind each other and be dropped
//! as late (correctly; Kafka Streams behaves the same). So the generating instance paces
//! the input (`--speedup`): event time runs `SPEEDUP` times as fast as the wall clock, from
//! when all three instances run the app's tasks (`--wait-for-instances 3`: the mock often
//! takes two or three rebalances to form the group, and an instance can get its tasks a
//! second after the others) and stopping while a rebalance stops the app on the generating
//! instance. A record then reaches its by-page task behind that task's stream time by
//! about the difference between the latencies of two instances, times `SPEEDUP`. The app
//! keeps its own settings (10 s of grace, 2 s for alerts); with `SPEEDUP` 15 the grace
//! leaves 670 ms of difference. Measured on two busy cores: records come at most 3-4 s of
//! event time behind (a stall of 200-250 ms: commits, scheduling), once 7.7 s; at 20 the
//! margin was too thin, at 10 the test would take over a minute. The test prints the
//! figure, and on a failure says whether the missing records came too late.
//!
//! Which final results must exist: as in `activity_deterministic.rs`, idle advance is off
//! (it is in deterministic mode; the two instances that do not generate turn it off with
//! `--set`), so the windows near the end of the input legitimately stay open. Per task, a
//! final result is required for every window whose `end + grace` is at or before the start
//! of the window of the task's latest view (latest click for alerts), allowed up to its
//! latest event, and a failure beyond (`recount::Expected`): only the windows ending in
//! the last minute of each by-page partition are in between. The outputs are read once
//! every instance has processed all input (until they match, at most 30 s: they follow
//! within a commit interval, 1 s), and read again 3 s later, when no final result or alert
//! may have come twice.
//!
//! Scale: 6 000 events, 10 per second of event time: 10 minutes of event time, written in
//! 40 s; about 1 600 windows that must close (1 750 final results), 1 100 sessions and 7 bot
//! alerts. The whole test takes about 52 s (56 s with another process keeping a core busy).

#![cfg(feature = "kafka")]
// Test helpers outside #[test] functions may unwrap too: a panic fails the test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::check::{Checked, check_run};
use common::kafka::{mock_with_topics, read_records, test_clients, wait_for_group};
use common::{App, TopicRecord, get_json, run_app, wait_for};
use serde_json::Value;
use streams_examples::activity::InputRecord;
use streams_examples::activity::generator::{outgoing_record, replay_events};

const PARTITIONS: u32 = 4;
const SEED: u64 = 15;
/// 2023-11-14T22:13:20Z.
const START_MS: i64 = 1_700_000_000_000;
const EVENTS: u64 = 6_000;
/// Events per second of event time.
const RATE: u32 = 10;
/// Event time per wall-clock time while the input is written.
const SPEEDUP: u32 = 15;

/// The flags of the generating instance that define the input (also for `--record`).
fn input_flags() -> Vec<String> {
    [
        "--start-time",
        &START_MS.to_string(),
        "--events",
        &EVENTS.to_string(),
        "--rate",
        &RATE.to_string(),
        "--seed",
        &SEED.to_string(),
    ]
    .iter()
    .map(ToString::to_string)
    .collect()
}

/// Starts instance `i` on the broker at `bootstrap`, with state in `dir` and `extra` flags.
fn start_instance(i: usize, bootstrap: &str, dir: &tempfile::TempDir, extra: &[String]) -> App {
    let partitions = PARTITIONS.to_string();
    let mut args = vec![
        "--partitions",
        &partitions,
        // An empty fetch waits this long on the mock: latency, which `SPEEDUP` multiplies
        // into event time.
        "--set",
        "consumer.fetch.wait.max.ms=10",
        // Idle advance follows the wall clock: off on every instance, as in deterministic
        // mode (the instances without --start-time would turn it on).
        "--set",
        "streams.idle.advance.ms=-1",
        // Keep the repartition records for the diagnosis (the mock cannot delete them
        // anyway).
        "--set",
        "streams.repartition.purge=false",
    ];
    args.extend(extra.iter().map(String::as_str));
    common::kafka::start_instance(i, bootstrap, dir.path(), &args)
}

/// The status of every instance.
fn statuses(apps: &[&App]) -> Vec<Value> {
    apps.iter()
        .map(|a| get_json(a.port, "/api/status"))
        .collect()
}

/// The input records `activity --record` writes with the same flags, as a producer sends
/// them (`page_views`, `clicks`, `users`, then `pages`, partition by partition in offset
/// order).
fn recorded_input() -> Vec<TopicRecord> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("input.jsonl");
    let mut args = vec!["--record".to_string(), path.to_string_lossy().into_owned()];
    args.extend(input_flags());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let finished = run_app(&args, Duration::from_secs(120));
    assert!(finished.success, "--record failed: {}", finished.stderr);
    let mut by_partition: BTreeMap<(u8, u32), Vec<TopicRecord>> = BTreeMap::new();
    for record in replay_events(&path).unwrap() {
        let record = record.unwrap();
        let r = outgoing_record(&record, PARTITIONS).unwrap();
        let text = |b: Option<Vec<u8>>| b.map(|b| String::from_utf8(b).unwrap());
        let topic = match record {
            InputRecord::PageView(_) => 0,
            InputRecord::Click(_) => 1,
            InputRecord::User(_) => 2,
            InputRecord::Page(_) => 3,
        };
        let records = by_partition
            .entry((topic, r.partition.partition))
            .or_default();
        records.push(TopicRecord {
            partition: r.partition.partition,
            offset: i64::try_from(records.len()).unwrap(),
            timestamp: r.timestamp,
            key: text(r.key),
            value: text(r.value),
        });
    }
    by_partition.into_values().flatten().collect()
}

#[test]
fn three_instances_on_paced_deterministic_input_give_exact_results() {
    // What `activity --record` writes with the same flags: the input to expect, byte for
    // byte.
    let recorded = recorded_input();
    let started = Instant::now();
    let (_mock, bootstrap) = mock_with_topics(PARTITIONS);
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();

    // Two instances only process; the third writes the input, from when the three of them
    // run as one group.
    let no_generate = ["--no-generate".to_string()];
    let mut generate = input_flags();
    generate.extend(
        [
            "--speedup",
            &SPEEDUP.to_string(),
            "--wait-for-instances",
            "3",
        ]
        .map(String::from),
    );
    let first = start_instance(0, &bootstrap, &dirs[0], &no_generate);
    let second = start_instance(1, &bootstrap, &dirs[1], &no_generate);
    let third = start_instance(2, &bootstrap, &dirs[2], &generate);
    let apps = [&first, &second, &third];
    wait_for_group(&apps);
    let formed = started.elapsed();

    // Every event written and processed, each instance doing part of it. (The instances
    // also process the user profiles, which the third instance writes before it starts,
    // while the group forms: the records a task processed just before it moved between
    // instances are missing from `processed`, so the end is told by the generator's count
    // and the lags.)
    let span_secs = EVENTS / u64::from(RATE) / u64::from(SPEEDUP);
    wait_for(span_secs + 120, "every event is processed", || {
        let statuses = statuses(&apps);
        let generated = statuses[2]["generated"].as_u64() == Some(EVENTS);
        let idle = statuses.iter().all(|s| s["lag"].as_u64() == Some(0));
        let shared = statuses
            .iter()
            .all(|s| s["processed"].as_u64().unwrap_or(0) > 0);
        (generated && idle && shared)
            .then_some(())
            .ok_or_else(|| format!("{statuses:?}"))
    });
    let processed = started.elapsed();

    // The outputs follow within a commit interval (1 s): check until they are exact (or
    // 30 s have passed), then again 3 s later, when nothing may have come twice.
    let clients = test_clients("activity-test-reader", &bootstrap);
    let check = || -> Checked {
        check_run(
            &|topic| Ok(read_records(&clients, topic, PARTITIONS)),
            PARTITIONS,
            EVENTS,
        )
        .unwrap()
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut checked = check();
    while !checked.failures.is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_secs(1));
        checked = check();
    }
    let exact = Instant::now();
    if checked.failures.is_empty() {
        std::thread::sleep(Duration::from_secs(3).saturating_sub(exact.elapsed()));
        checked = check();
    }
    let mut failures = checked.failures;
    // The data exercises what is checked.
    let expected = &checked.expected;
    assert!(expected.closed_page_windows().len() > 1_000);
    assert!(expected.closed_alerts().len() >= 5);
    assert!(expected.sessions.len() > 300);

    // The input is the deterministic input, byte for byte.
    if checked.input != recorded {
        let first = checked
            .input
            .iter()
            .zip(&recorded)
            .position(|(a, b)| a != b);
        failures.push(format!(
            "the input topics differ from what `activity --record` writes with the same \
             flags: {} and {} records, first different: {:?} and {:?}",
            checked.input.len(),
            recorded.len(),
            first.map(|i| &checked.input[i]),
            first.map(|i| &recorded[i])
        ));
    }

    let dropped: Vec<String> = statuses(&apps)
        .iter()
        .map(|s| format!("{}/{}", s["dropped_records"], s["skipped_records"]))
        .collect();
    eprintln!(
        "group formed after {formed:.1?}, all input processed after {processed:.1?}, checked \
         after {:.1?}; {}; dropped/skipped per instance: {}",
        started.elapsed(),
        checked.summary,
        dropped.join(", ")
    );
    assert!(
        failures.is_empty(),
        "{}\n(dropped/skipped records per instance: {})",
        failures.join("\n"),
        dropped.join(", ")
    );
}
