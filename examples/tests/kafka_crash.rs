//! Issue #20: a group of three activity instances on Kafka, one killed with `kill -9`
//! under load. The broker is `streams serve` (the embedded log engine over the Kafka
//! protocol), started in this process on the loopback; the three instances are processes
//! of the `activity` binary under `exactly_once_v2` (a killed instance's uncommitted work
//! is aborted and redone by the new owner of its tasks, so counts are exact afterwards).
//!
//! While the input is written and the instance is killed, the API of the survivors is
//! polled: every answer must be `200` or `503` with `Retry-After` (never a connection error
//! passed on, never a `502`), and a `200` never counts more than the input holds (a
//! partition answered twice would). Once the group has rebalanced and the moved tasks have
//! restored and caught up, every answer must be `200` and equal an independent recount of
//! the input topics, read back here with a plain consumer and counted with hash maps: each
//! page's views per minute, the top pages, the views per country of each minute and each
//! user's views and clicks over its sessions; and `/api/status` must list the two live
//! instances only.
//!
//! librdkafka's mock cluster is not used: under `exactly_once_v2` it does not keep a
//! killed instance's work from being counted again (the counts come out more than double),
//! so exact answers cannot be required there.
//!
//! All events fall within 8 s of event time (less than the windows' 10 s grace) and idle
//! advance is off, so no record can be dropped as late however long the killed instance's
//! partitions wait for their new owner: every count is exact at the end.

#![cfg(feature = "kafka")]
// Test helpers outside #[test] functions may unwrap too: a panic fails the test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use common::kafka::read_records;
use common::{App, start_app, wait_for};
use serde_json::Value;
use streams_core::client::ClientSupplier;
use streams_core::client::kafka::KafkaClients;
use streams_core::config::StreamsConfig;
use streams_examples::activity::generator::{self, outgoing_record};
use streams_examples::activity::{self, ActivityEvent, Click, PageView};
use streams_state::LogEngine;
use streams_state::serve::Server;

const PARTITIONS: u32 = 6;
const EVENTS: usize = 18_000;
const MINUTE: i64 = 60_000;

/// The events: `EVENTS` of them within 8 s of event time, ending before now (the API's
/// per-page answers look back from the wall clock).
fn events() -> Vec<ActivityEvent> {
    let from = activity::web::now_ms() - 5 * MINUTE;
    common::events_from(from, 20, (300, 30), 2_500.0, EVENTS, 8_000)
}

/// An HTTP answer: status, `Retry-After` if any, body.
#[derive(Debug)]
struct Answer {
    status: u16,
    retry_after: Option<String>,
    body: String,
}

/// A GET on the loopback; `Err` when the instance cannot be reached or the answer is not
/// HTTP.
fn fetch(port: u16, path: &str) -> Result<Answer, String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .map_err(|e| e.to_string())?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut raw = String::new();
    s.read_to_string(&mut raw).map_err(|e| e.to_string())?;
    let (head, body) = raw.split_once("\r\n\r\n").ok_or("no header end")?;
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("bad status line in {head}"))?;
    let retry_after = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(n, _)| n.trim().eq_ignore_ascii_case("retry-after"))
        .map(|(_, v)| v.trim().to_string());
    Ok(Answer {
        status,
        retry_after,
        body: body.to_string(),
    })
}

/// `path` on `port`: `Ok(Some(json))` for a 200, `Ok(None)` for a 503 with `Retry-After`
/// and a reason; any other answer fails the test (it breaks the complete-or-503 rule).
fn complete_or_retry(port: u16, path: &str) -> Option<Value> {
    let a = fetch(port, path).unwrap_or_else(|e| panic!("GET {path} on {port}: {e}"));
    match a.status {
        200 => Some(
            serde_json::from_str(&a.body).unwrap_or_else(|e| panic!("GET {path}: {e}: {}", a.body)),
        ),
        503 => {
            assert!(
                a.retry_after.is_some(),
                "GET {path}: a 503 without Retry-After: {}",
                a.body
            );
            let v: Value = serde_json::from_str(&a.body)
                .unwrap_or_else(|e| panic!("GET {path}: {e}: {}", a.body));
            assert!(
                v["error"].as_str().is_some_and(|r| !r.is_empty()),
                "GET {path}: a 503 without a reason: {}",
                a.body
            );
            None
        }
        other => panic!(
            "GET {path} on {port}: {other}, neither complete (200) nor retry (503): {}",
            a.body
        ),
    }
}

/// `path` with `/` escaped, for page names in a URL path.
fn escaped(page: &str) -> String {
    page.replace('/', "%2F")
}

/// The input as read back from the broker, counted here.
#[derive(Debug, Default)]
struct Recount {
    /// (page, minute) -> views.
    views: HashMap<(String, i64), i64>,
    /// user -> (views, clicks).
    users: HashMap<String, (i64, i64)>,
}

impl Recount {
    fn per_minute(&self, minute: i64) -> BTreeMap<String, i64> {
        self.views
            .iter()
            .filter(|((_, m), _)| *m == minute)
            .map(|((p, _), n)| (p.clone(), *n))
            .collect()
    }

    fn page(&self, page: &str) -> BTreeMap<i64, i64> {
        self.views
            .iter()
            .filter(|((p, _), _)| p == page)
            .map(|((_, m), n)| (*m, *n))
            .collect()
    }

    fn minutes(&self) -> Vec<i64> {
        let mut m: Vec<i64> = self.views.keys().map(|(_, m)| *m).collect();
        m.sort_unstable();
        m.dedup();
        m
    }
}

/// Reads `page_views` and `clicks` back with a plain consumer (no group) and counts them.
fn recount(clients: &KafkaClients) -> Recount {
    let mut r = Recount::default();
    for record in read_records(clients, activity::PAGE_VIEWS_TOPIC, PARTITIONS) {
        let v: PageView = serde_json::from_str(record.value.as_deref().unwrap()).unwrap();
        *r.views
            .entry((v.page, v.ts - v.ts.rem_euclid(MINUTE)))
            .or_default() += 1;
        r.users.entry(v.user_id).or_default().0 += 1;
    }
    for record in read_records(clients, activity::CLICKS_TOPIC, PARTITIONS) {
        let c: Click = serde_json::from_str(record.value.as_deref().unwrap()).unwrap();
        r.users.entry(c.user_id).or_default().1 += 1;
    }
    r
}

/// `(name, count)` pairs of a JSON answer's `field`.
fn pairs(answer: &Value, field: &str) -> BTreeMap<String, i64> {
    serde_json::from_value::<Vec<(String, i64)>>(answer[field].clone())
        .unwrap()
        .into_iter()
        .collect()
}

/// One round of queries on `port` during the load: each answer is complete or 503, and a
/// complete one counts no more than the whole input holds.
fn poll_round(port: u16, expected: &Recount, pages: &[String]) -> (usize, usize) {
    let (mut ok, mut retry) = (0, 0);
    let mut tally = |answer: Option<Value>| -> Option<Value> {
        if answer.is_some() {
            ok += 1;
        } else {
            retry += 1;
        }
        answer
    };
    for minute in expected.minutes() {
        let path = format!("/api/top-pages?window={minute}&n=1000");
        if let Some(a) = tally(complete_or_retry(port, &path)) {
            let want = expected.per_minute(minute);
            for (page, n) in pairs(&a, "pages") {
                let most = want.get(&page).copied().unwrap_or(0);
                assert!(n <= most, "{path}: {page} has {n} views, the input {most}");
            }
        }
    }
    for page in pages.iter().take(5) {
        let path = format!("/api/pages/{}/views?minutes=60", escaped(page));
        if let Some(a) = tally(complete_or_retry(port, &path)) {
            let want = expected.page(page);
            for (minute, n) in
                serde_json::from_value::<Vec<(i64, i64)>>(a["windows"].clone()).unwrap()
            {
                let most = want.get(&minute).copied().unwrap_or(0);
                assert!(n <= most, "{path}: {n} views in {minute}, the input {most}");
            }
        }
    }
    for path in [
        "/api/ctr",
        "/api/countries",
        "/api/alerts",
        "/api/dashboard",
    ] {
        tally(complete_or_retry(port, path));
    }
    for user in ["user-0", "user-1", "user-2"] {
        tally(complete_or_retry(
            port,
            &format!("/api/users/{user}/sessions"),
        ));
    }
    (ok, retry)
}

/// Every answer checked against the recount; `Err` describes the first difference (or a
/// 503: not settled yet). With `strict` (all input processed and committed), a complete
/// answer that differs fails the test at once: only 503 may stand for "not yet".
fn all_equal(port: u16, expected: &Recount, strict: bool) -> Result<(), String> {
    let json = |path: &str| -> Result<Value, String> {
        complete_or_retry(port, path).ok_or_else(|| format!("{path} on {port}: 503"))
    };
    let differ = |what: String| -> Result<(), String> {
        assert!(
            !strict,
            "a complete answer differs from the recount: {what}"
        );
        Err(what)
    };
    for minute in expected.minutes() {
        let want = expected.per_minute(minute);
        let top = json(&format!("/api/top-pages?window={minute}&n=1000"))?;
        let got = pairs(&top, "pages");
        if got != want {
            return differ(format!(
                "top pages of {minute} on {port}: {got:?}, expected {want:?}"
            ));
        }
        let countries = json(&format!("/api/countries?window={minute}&n=1000"))?;
        let got = pairs(&countries, "countries");
        let total: i64 = want.values().sum();
        let want = BTreeMap::from([(activity::UNKNOWN.to_string(), total)]);
        if got != want {
            return differ(format!(
                "countries of {minute} on {port}: {got:?}, expected {want:?}"
            ));
        }
    }
    let mut pages: Vec<&String> = expected.views.keys().map(|(p, _)| p).collect();
    pages.sort();
    pages.dedup();
    for page in pages {
        let path = format!("/api/pages/{}/views?minutes=60", escaped(page));
        let got: BTreeMap<i64, i64> =
            serde_json::from_value::<Vec<(i64, i64)>>(json(&path)?["windows"].clone())
                .map_err(|e| e.to_string())?
                .into_iter()
                .collect();
        let want = expected.page(page);
        if got != want {
            return differ(format!("{path} on {port}: {got:?}, expected {want:?}"));
        }
    }
    let mut users: Vec<(&String, &(i64, i64))> = expected.users.iter().collect();
    users.sort();
    for (user, (views, clicks)) in users {
        let answer = json(&format!("/api/users/{user}/sessions"))?;
        let sessions = answer["sessions"].as_array().cloned().unwrap_or_default();
        let sum = |field: &str| -> i64 {
            sessions
                .iter()
                .map(|s| s[field].as_i64().unwrap_or(0))
                .sum()
        };
        if (sum("views"), sum("clicks")) != (*views, *clicks) {
            return differ(format!(
                "{user} on {port}: {answer}, expected {views} views, {clicks} clicks"
            ));
        }
    }
    Ok(())
}

/// The instances `/api/status` of `port` lists, and its state.
fn listed(port: u16) -> Result<(String, Vec<String>), String> {
    let a = fetch(port, "/api/status")?;
    let s: Value = serde_json::from_str(&a.body).map_err(|e| e.to_string())?;
    let instances = serde_json::from_value(s["instances"].clone()).map_err(|e| e.to_string())?;
    Ok((s["state"].as_str().unwrap_or("").to_string(), instances))
}

#[test]
fn killing_an_instance_under_load_on_streams_serve() {
    // The broker: `streams serve` on a free loopback port.
    let dir = tempfile::tempdir().unwrap();
    let engine = Arc::new(LogEngine::open(&dir.path().join("log")).unwrap());
    let server = Server::start(engine, "127.0.0.1:0").unwrap();
    let bootstrap = server.bootstrap_servers();
    let clients = KafkaClients::new(
        &StreamsConfig::new("activity-crash-test").with_bootstrap_servers([bootstrap.as_str()]),
    )
    .unwrap();
    generator::ensure_input_topics(clients.admin().unwrap().as_ref(), PARTITIONS).unwrap();
    kill_under_load(&bootstrap, &clients, dir.path());
}

/// Three instances on the broker at `bootstrap` (input topics created), one killed under
/// load, then a second once all is processed; see the module docs.
fn kill_under_load(bootstrap: &str, clients: &KafkaClients, dir: &std::path::Path) {
    let partitions = PARTITIONS.to_string();
    let start = |i: usize| -> App {
        let data = dir.join(format!("instance-{i}"));
        let data = data.to_string_lossy().into_owned();
        start_app(
            &format!("instance-{i}"),
            &[
                "--bootstrap-servers",
                bootstrap,
                "--no-generate",
                "--threads",
                "1",
                "--partitions",
                &partitions,
                "--data-dir",
                &data,
                "--set",
                "processing.guarantee=exactly_once_v2",
                // Stream time moves with records only: nothing can be late (see above).
                "--set",
                "streams.idle.advance.ms=-1",
                // A killed instance's partitions move after its session: short sessions
                // keep the test short.
                "--set",
                "consumer.session.timeout.ms=6000",
                "--set",
                "consumer.heartbeat.interval.ms=500",
                "--set",
                "consumer.fetch.wait.max.ms=50",
            ],
        )
    };
    let mut apps: Vec<App> = (0..3).map(start).collect();
    let host = |a: &App| format!("127.0.0.1:{}", a.port);
    let mut all: Vec<String> = apps.iter().map(host).collect();
    all.sort();
    wait_for(120, "the three instances form one group", || {
        for a in &apps {
            let (state, instances) = listed(a.port)?;
            if state != "Running" || instances != all {
                return Err(format!("{}: {state} {instances:?}", a.port));
            }
        }
        Ok(())
    });

    // The input: a third first, the rest while an instance is killed.
    let events = events();
    let mut expected_all = Recount::default();
    for e in &events {
        match e {
            ActivityEvent::PageView(v) => {
                *expected_all
                    .views
                    .entry((v.page.clone(), v.ts - v.ts.rem_euclid(MINUTE)))
                    .or_default() += 1;
                expected_all.users.entry(v.user_id.clone()).or_default().0 += 1;
            }
            ActivityEvent::Click(c) => {
                expected_all.users.entry(c.user_id.clone()).or_default().1 += 1;
            }
        }
    }
    let mut pages: Vec<(String, i64)> = expected_all
        .views
        .iter()
        .map(|((p, _), n)| (p.clone(), *n))
        .collect();
    pages.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let pages: Vec<String> = pages.into_iter().map(|(p, _)| p).collect();
    let mut producer = clients.producer("activity-crash-test-producer").unwrap();
    let chunks: Vec<&[ActivityEvent]> = events.chunks(EVENTS / 30).collect();
    let (mut ok, mut retry) = (0, 0);
    let mut victim = None;
    for (i, chunk) in chunks.iter().enumerate() {
        for e in *chunk {
            producer
                .send(outgoing_record(e, PARTITIONS).unwrap())
                .unwrap();
        }
        producer.flush(Duration::from_secs(30)).unwrap();
        if i == 10 {
            // kill -9 (`Child::kill` sends SIGKILL) of the first instance, under load.
            let dead = apps.remove(0);
            victim = Some(host(&dead));
            drop(dead);
            eprintln!("killed {}", victim.as_deref().unwrap_or(""));
        }
        if i >= 8 {
            for a in &apps {
                let (o, r) = poll_round(a.port, &expected_all, &pages);
                ok += o;
                retry += r;
            }
        } else {
            std::thread::sleep(Duration::from_millis(300));
        }
    }
    drop(producer);
    let victim = victim.unwrap();

    // What the broker holds, counted independently of what was sent.
    let expected = recount(clients);
    assert_eq!(
        expected.views.values().sum::<i64>() + expected.users.values().map(|u| u.1).sum::<i64>(),
        EVENTS as i64,
        "every event is on the broker once"
    );

    // The survivors list only themselves once the group has rebalanced.
    let mut live: Vec<String> = apps.iter().map(host).collect();
    live.sort();
    wait_for(90, "the survivors list only the live instances", || {
        for a in &apps {
            let (state, instances) = listed(a.port)?;
            if instances.contains(&victim) || instances != live || state != "Running" {
                return Err(format!("{}: {state} {instances:?}", a.port));
            }
        }
        Ok(())
    });

    // Then every answer of every survivor equals the recount, 503s meanwhile.
    let mut rounds = 0;
    wait_for(150, "every answer equals the recount", || {
        rounds += 1;
        for a in &apps {
            all_equal(a.port, &expected, false)?;
        }
        Ok(())
    });
    eprintln!(
        "during the load: {ok} complete answers, {retry} answered 503; {rounds} rounds of \
         checks until all equal the recount"
    );

    // Everything is processed; once committed (1 s commit interval), a second instance is
    // killed. The last one takes over its tasks: from now on, every answer is 503 or
    // exactly the recount, never smaller (the top pages that lost a page).
    std::thread::sleep(Duration::from_secs(3));
    let dead = apps.remove(0);
    let victim = host(&dead);
    drop(dead);
    let last = apps[0].port;
    let me = vec![host(&apps[0])];
    let (mut strict_rounds, mut settled) = (0, false);
    wait_for(150, "the last instance answers everything alone", || {
        strict_rounds += 1;
        let (state, instances) = listed(last)?;
        let equal = all_equal(last, &expected, true);
        if instances.contains(&victim) {
            return Err(format!("{last} still lists {victim}: {instances:?}"));
        }
        equal?;
        settled = instances == me && state == "Running";
        settled
            .then_some(())
            .ok_or_else(|| format!("{last}: {state} {instances:?}"))
    });
    eprintln!("after the second kill: {strict_rounds} strict rounds until settled");
    for a in &apps {
        let status = common::get_json(a.port, "/api/status");
        assert_eq!(
            status["dropped_records"], 0,
            "no record dropped as late: {status}"
        );
    }
}
