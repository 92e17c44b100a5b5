//! Joins across `kill -9`: a child process runs an app with a stream-stream left join, a
//! table-table join and a foreign-key join on the embedded engine and is killed mid-run;
//! the app restarted in this process finishes the input. At-least-once may repeat results,
//! so the checks are on sets and final values, against reference code in this file: every
//! pair of a view and a click of the same user within the window (nested loop) and every
//! view without one (with `None`) appears, nothing else; the last result per key of the
//! table joins is the join of the final tables.

// Test helpers outside #[test] functions may unwrap too: a panic fails the test.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout};
use std::sync::Arc;
use std::time::Duration;

use streams_core::partitioner::partition_for_key;
use streams_core::prelude::*;
use streams_core::runtime::{KafkaStreams, LogEngine, NewRecord, TopicConfig};
use streams_tests::child;

const CHILD_ENV: &str = "STREAMS_JOIN_CRASH_DIR";
const USERS: usize = 7;
const WINDOW_MS: i64 = 50;
const TOTAL: usize = 6_000;

fn topology() -> Topology {
    let builder = StreamsBuilder::new();
    let views = builder.stream::<String, String>("views");
    let clicks = builder.stream::<String, String>("clicks");
    views
        .left_join(
            &clicks,
            |v, c| format!("{v}|{}", c.map_or("-", |c| c.as_str())),
            JoinWindows::of_time_difference_with_no_grace(Duration::from_millis(WINDOW_MS as u64)),
        )
        .to("view-clicks");
    // user -> country, user -> plan: joined; and plan -> price by foreign key.
    let countries = builder.table::<String, String>("countries");
    let plans = builder.table::<String, String>("plans");
    let prices = builder.table::<String, String>("prices");
    countries
        .join(&plans, |c, p| format!("{c}/{p}"))
        .to_stream()
        .to("user-profiles");
    plans
        .join_on_foreign_key(&prices, |p| p.clone(), |p, price| format!("{p}={price}"))
        .to_stream()
        .to("user-prices");
    builder.build().unwrap()
}

fn config(dir: &Path) -> StreamsConfig {
    StreamsConfig::new("join-crash")
        .with_state_dir(dir.join("state"))
        .with_commit_interval(Duration::from_millis(20))
}

/// The child: runs the app until killed; says "processing" once a quarter of the input is
/// processed.
#[test]
fn join_crash_child_app() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let dir = PathBuf::from(dir);
    let engine = Arc::new(LogEngine::open(&dir.join("log")).unwrap());
    let mut app = KafkaStreams::new(topology(), config(&dir), engine).unwrap();
    app.start().unwrap();
    println!("started");
    // Tells the parent once part of the input is processed (and some of it committed).
    loop {
        if app.metrics().total().processed >= (TOTAL / 4) as u64 {
            println!("processing");
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    loop {
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// One input event: (topic, key, value, timestamp).
type Event = (&'static str, String, Option<String>, i64);

/// Deterministic input: views and clicks of 7 users, and table updates.
fn events() -> Vec<Event> {
    let mut out = Vec::new();
    for i in 0..TOTAL {
        let user = format!("u{}", (i * 5 + i / 9) % USERS);
        let ts = (i as i64) * 10;
        match i % 6 {
            0..=2 => out.push(("views", user, Some(format!("v{i}")), ts)),
            3 => out.push((
                "clicks",
                user,
                Some(format!("c{i}")),
                ts + (i as i64 % 7) * 3,
            )),
            4 => {
                let country = ["fr", "de", "us"][i % 3];
                out.push(("countries", user, Some(country.to_string()), ts));
            }
            _ => {
                let (topic, key, value) = match i % 4 {
                    0 => (
                        "prices",
                        format!("plan{}", i % 3),
                        Some(format!("{}", i % 50)),
                    ),
                    1 => ("plans", user, None),
                    _ => ("plans", user, Some(format!("plan{}", i % 3))),
                };
                out.push((topic, key, value, ts));
            }
        }
    }
    out
}

const TOPICS: [&str; 5] = ["views", "clicks", "countries", "plans", "prices"];

fn produce(dir: &Path, events: &[Event]) {
    let engine = LogEngine::open(&dir.join("log")).unwrap();
    if engine.topics().is_empty() {
        for t in TOPICS {
            engine.create_topic(t, TopicConfig::new(2)).unwrap();
        }
        for t in ["view-clicks", "user-profiles", "user-prices"] {
            engine.create_topic(t, TopicConfig::new(2)).unwrap();
        }
    }
    for (topic, key, value, ts) in events {
        engine
            .append(
                topic,
                partition_for_key(key.as_bytes(), 2),
                &[NewRecord {
                    timestamp: *ts,
                    key: Some(key.clone().into_bytes()),
                    value: value.clone().map(String::into_bytes),
                    headers: Vec::new(),
                }],
            )
            .unwrap();
    }
    engine.flush().unwrap();
}

fn spawn(dir: &Path) -> (Child, BufReader<ChildStdout>) {
    child::spawn("join_crash_child_app", CHILD_ENV, dir)
}

fn read(engine: &LogEngine, topic: &str) -> Vec<(String, Option<String>)> {
    let mut out = Vec::new();
    for p in 0..2 {
        for r in engine.read(topic, p, 0, usize::MAX).unwrap() {
            out.push((
                String::from_utf8(r.key.unwrap()).unwrap(),
                r.value.map(|v| String::from_utf8(v).unwrap()),
            ));
        }
    }
    out
}

/// The last value per key of a table's output (per partition order; a key lives in one).
fn last(engine: &LogEngine, topic: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for (k, v) in read(engine, topic) {
        match v {
            Some(v) => out.insert(k, v),
            None => out.remove(&k),
        };
    }
    out
}

#[test]
fn kill_dash_nine_mid_run_gives_the_same_join_results() {
    let dir = tempfile::tempdir().unwrap();
    let all = events();
    let (first, rest) = all.split_at(all.len() * 2 / 3);
    produce(dir.path(), first);
    // Killed while it processes (the log is the child's while it runs).
    let (mut child, mut out) = spawn(dir.path());
    child::wait_for(&mut out, "processing");
    child.kill().unwrap();
    child.wait().unwrap();
    {
        let engine = LogEngine::open(&dir.path().join("log")).unwrap();
        println!(
            "killed after {} join results",
            read(&engine, "view-clicks").len()
        );
    }
    // More input arrives while it is down; the app restarted here finishes.
    produce(dir.path(), rest);
    let engine = Arc::new(LogEngine::open(&dir.path().join("log")).unwrap());
    let mut app = KafkaStreams::new(topology(), config(dir.path()), engine.clone()).unwrap();
    app.start().unwrap();
    app.wait_until_caught_up(Duration::from_secs(120)).unwrap();
    app.close().unwrap();

    // Stream-stream left join: the nested loop (the last windows may still be open: views
    // within WINDOW_MS of the end may lack their `None` result).
    // A view's window closes once its task's stream time passes ts + WINDOW_MS.
    let mut task_end: BTreeMap<u32, i64> = BTreeMap::new();
    for e in all.iter().filter(|e| e.0 == "views" || e.0 == "clicks") {
        let t = task_end
            .entry(partition_for_key(e.1.as_bytes(), 2))
            .or_insert(0);
        *t = (*t).max(e.3);
    }
    let views: Vec<&Event> = all.iter().filter(|e| e.0 == "views").collect();
    let clicks: Vec<&Event> = all.iter().filter(|e| e.0 == "clicks").collect();
    let mut want = BTreeSet::new();
    let mut open_unmatched = BTreeSet::new();
    for v in &views {
        let mut any = false;
        for c in &clicks {
            if c.1 == v.1 && (c.3 - v.3).abs() <= WINDOW_MS {
                any = true;
                want.insert((
                    v.1.clone(),
                    format!("{}|{}", v.2.clone().unwrap(), c.2.clone().unwrap()),
                ));
            }
        }
        if !any {
            let r = (v.1.clone(), format!("{}|-", v.2.clone().unwrap()));
            if task_end[&partition_for_key(v.1.as_bytes(), 2)] > v.3 + WINDOW_MS {
                want.insert(r);
            } else {
                open_unmatched.insert(r);
            }
        }
    }
    let got: BTreeSet<(String, String)> = read(&engine, "view-clicks")
        .into_iter()
        .map(|(k, v)| (k, v.unwrap()))
        .filter(|r| !open_unmatched.contains(r))
        .collect();
    assert_eq!(got, want);

    // Table joins: the join of the final tables.
    let mut tables: BTreeMap<&str, BTreeMap<String, String>> = BTreeMap::new();
    for (topic, key, value, _) in &all {
        let t = tables.entry(topic).or_default();
        match value {
            Some(v) => t.insert(key.clone(), v.clone()),
            None => t.remove(key),
        };
    }
    let empty = BTreeMap::new();
    let table = |t: &str| tables.get(t).unwrap_or(&empty);
    let mut profiles = BTreeMap::new();
    for (u, c) in table("countries") {
        if let Some(p) = table("plans").get(u) {
            profiles.insert(u.clone(), format!("{c}/{p}"));
        }
    }
    assert_eq!(last(&engine, "user-profiles"), profiles);
    let mut prices = BTreeMap::new();
    for (u, p) in table("plans") {
        if let Some(price) = table("prices").get(p) {
            prices.insert(u.clone(), format!("{p}={price}"));
        }
    }
    assert_eq!(last(&engine, "user-prices"), prices);
}
