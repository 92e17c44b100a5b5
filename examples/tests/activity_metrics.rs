//! `GET /metrics` of the running activity app (issue #21): the binary runs on the embedded
//! engine with its generator writing a bounded number of events at a steady rate; the test
//! scrapes the Prometheus text while the load lasts and once it is processed. Checked: the
//! processed counter moves between scrapes and ends at least at the number of events
//! generated (each is processed once by its source sub-topology, repartitioned ones again
//! later), process rates are above 0 under load, consumer lag is reported for every
//! partition of the input topics and reaches 0 once caught up, and end-to-end latencies
//! and commit latencies are there.

// Test helpers outside #[test] functions may unwrap too: a panic fails the test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use common::get;

const EVENTS: u64 = 3_000;
const RATE: u64 = 1_000;
const PARTITIONS: u32 = 3;

/// The samples of `name` in Prometheus text: labels and value.
fn samples(text: &str, name: &str) -> Vec<(BTreeMap<String, String>, f64)> {
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some(rest) = line.strip_prefix(name).and_then(|r| r.strip_prefix('{')) else {
            continue;
        };
        let (labels, value) = rest.split_once("} ").expect("labels, then the value");
        let labels = labels
            .split("\",")
            .map(|kv| {
                let (k, v) = kv.split_once("=\"").expect("k=\"v\"");
                (k.to_string(), v.trim_end_matches('"').to_string())
            })
            .collect();
        out.push((labels, value.trim().parse().expect("a number")));
    }
    out
}

fn sum(text: &str, name: &str) -> f64 {
    samples(text, name).iter().map(|(_, v)| v).sum()
}

/// `kafka_consumer_records_lag` of `topic`, per partition.
fn lags(text: &str, topic: &str) -> BTreeMap<u32, f64> {
    samples(text, "kafka_consumer_records_lag")
        .into_iter()
        .filter(|(l, _)| l["topic"] == topic)
        .map(|(l, v)| (l["partition"].parse().expect("a partition"), v))
        .collect()
}

#[test]
fn the_activity_app_serves_live_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().to_string_lossy().to_string();
    let (events, rate, partitions) = (EVENTS.to_string(), RATE.to_string(), PARTITIONS.to_string());
    let app = common::start_app(
        "app",
        &[
            "--rate",
            &rate,
            "--events",
            &events,
            "--partitions",
            &partitions,
            "--data-dir",
            &data_dir,
        ],
    );

    // Under load: the counter moves between scrapes, rates are above 0.
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut totals = Vec::new();
    let mut busy = 0;
    let mut lag_partitions = BTreeSet::new();
    let text = loop {
        assert!(
            Instant::now() < deadline,
            "{EVENTS} events not processed within 120 s: {totals:?}"
        );
        std::thread::sleep(Duration::from_millis(500));
        let Ok(text) = get(app.port, "/metrics") else {
            continue;
        };
        let total = sum(&text, "kafka_streams_stream_thread_process_total");
        totals.push(total);
        if samples(&text, "kafka_streams_stream_thread_process_rate")
            .iter()
            .any(|(_, r)| *r > 0.0)
        {
            busy += 1;
        }
        for topic in ["page_views", "clicks"] {
            for p in lags(&text, topic).keys() {
                lag_partitions.insert((topic, *p));
            }
        }
        let caught_up = ["page_views", "clicks"].iter().all(|t| {
            let l = lags(&text, t);
            l.len() == PARTITIONS as usize && l.values().all(|v| *v == 0.0)
        });
        if total >= EVENTS as f64 && caught_up {
            break text;
        }
    };
    assert!(busy > 0, "no scrape saw a process rate above 0: {totals:?}");
    let distinct: BTreeSet<u64> = totals.iter().map(|t| *t as u64).collect();
    assert!(distinct.len() > 2, "the counter moved: {totals:?}");
    assert!(
        totals.windows(2).all(|w| w[0] <= w[1]),
        "the counter never goes back: {totals:?}"
    );
    let expected: BTreeSet<(&str, u32)> = ["page_views", "clicks"]
        .into_iter()
        .flat_map(|t| (0..PARTITIONS).map(move |p| (t, p)))
        .collect();
    assert_eq!(lag_partitions, expected, "lag of every input partition");
    assert!(sum(&text, "kafka_streams_stream_thread_commit_total") > 0.0);
    assert!(!samples(&text, "kafka_streams_stream_thread_commit_latency_avg").is_empty());
    let e2e = samples(&text, "kafka_streams_stream_task_record_e2e_latency_avg");
    assert!(!e2e.is_empty(), "end-to-end latency reported");
    assert!(
        e2e.iter().all(|(_, v)| *v >= 0.0),
        "event time follows the wall clock: {e2e:?}"
    );
    assert!(text.contains("# TYPE kafka_streams_stream_thread_process_total counter"));
}
