//! The metrics export (issue #21) on a running app: a stateless app on the embedded engine
//! (sleeping a millisecond per record) while a producer thread writes faster than it can
//! process (records 60 s old, some with a null key), and the test scrapes the Prometheus
//! text the exporter renders. Checked against what the test itself wrote and timed: the
//! processed counters end at the number of keyed records written and move while the load
//! lasts, the null-keyed ones are counted as dropped, lag is reported for every input
//! partition (above 0 under load, never above what was written, 0 once caught up),
//! processing rates are above 0 under load, never above what the per-record sleep allows,
//! and 0 once idle, and end-to-end latencies lie between the records' age when written and
//! their age at the end.

// Test helpers outside #[test] functions may unwrap too: a panic fails the test.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use streams_core::metrics_export::{ExportOptions, install_prometheus_with};
use streams_core::partitioner::partition_for_key;
use streams_core::prelude::*;
use streams_core::runtime::{KafkaStreams, LogEngine, NewRecord, TopicConfig};

const PARTITIONS: u32 = 4;
/// How old the records are when written: a lower bound of their end-to-end latency.
const AGE_MS: i64 = 60_000;
/// The app sleeps this long per record: a ceiling of each thread's process rate.
const SLEEP: Duration = Duration::from_millis(1);
const THREADS: usize = 2;
/// The load: `BATCH` records every `EVERY` for `LOAD` (3000/s, above the app's 2000/s).
const BATCH: usize = 30;
const EVERY: Duration = Duration::from_millis(10);
const LOAD: Duration = Duration::from_secs(2);
/// One record in this many has no key.
const NULL_EVERY: usize = 50;
const CONSUMER_LAG: &str = "kafka_consumer_records_lag";
const INPUT_LAG: &str = "kafka_streams_stream_task_input_records_lag";

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// The samples of `name` in Prometheus text: labels and value.
fn samples(text: &str, name: &str) -> Vec<(BTreeMap<String, String>, f64)> {
    streams_tests::prometheus_samples(text, name)
}

fn sum(text: &str, name: &str) -> f64 {
    samples(text, name).iter().map(|(_, v)| v).sum()
}

/// The lag `name` per partition of `topic`.
fn lags(text: &str, name: &str, topic: &str) -> BTreeMap<u32, f64> {
    samples(text, name)
        .into_iter()
        .filter(|(l, _)| l["topic"] == topic)
        .map(|(l, v)| (l["partition"].parse().unwrap(), v))
        .collect()
}

/// What the producer wrote.
#[derive(Debug, Default)]
struct Written {
    keyed: usize,
    null_keyed: usize,
    first_ms: i64,
}

/// Writes `BATCH` records every `EVERY` for `LOAD`, timestamped `AGE_MS` in the past.
fn produce(engine: &LogEngine, done: &AtomicBool) -> Written {
    let mut w = Written {
        first_ms: now_ms(),
        ..Written::default()
    };
    let started = Instant::now();
    let mut i = 0usize;
    while started.elapsed() < LOAD {
        let mut by_partition: BTreeMap<u32, Vec<NewRecord>> = BTreeMap::new();
        for _ in 0..BATCH {
            let key = (!i.is_multiple_of(NULL_EVERY)).then(|| format!("k{i}"));
            let p = key.as_ref().map_or(i as u32 % PARTITIONS, |k| {
                partition_for_key(k.as_bytes(), PARTITIONS)
            });
            if key.is_some() {
                w.keyed += 1;
            } else {
                w.null_keyed += 1;
            }
            by_partition.entry(p).or_default().push(NewRecord {
                timestamp: now_ms() - AGE_MS,
                key: key.map(String::into_bytes),
                value: Some(format!("v{i}").into_bytes()),
                headers: vec![],
            });
            i += 1;
        }
        for (p, records) in by_partition {
            engine.append("in", p, &records).unwrap();
        }
        std::thread::sleep(EVERY);
    }
    done.store(true, Ordering::SeqCst);
    w
}

#[test]
fn a_running_app_exports_counts_rates_lags_and_latencies() {
    let interval = Duration::from_millis(100);
    let exporter = install_prometheus_with(ExportOptions {
        publish_interval: interval,
        ..ExportOptions::default()
    })
    .unwrap();
    // One recorder per process.
    assert!(matches!(
        streams_core::metrics_export::install_prometheus(),
        Err(streams_core::metrics_export::MetricsExportError::AlreadyInstalled)
    ));

    let dir = tempfile::tempdir().unwrap();
    let engine = Arc::new(LogEngine::open(&dir.path().join("log")).unwrap());
    engine
        .create_topic("in", TopicConfig::new(PARTITIONS))
        .unwrap();
    engine
        .create_topic("out", TopicConfig::new(PARTITIONS))
        .unwrap();
    let builder = StreamsBuilder::new();
    builder
        .stream::<String, String>("in")
        .map_values(|v: String| {
            std::thread::sleep(SLEEP);
            v
        })
        .to("out");
    let config = StreamsConfig::new("metrics-export")
        .with_state_dir(dir.path().join("state"))
        .with_num_stream_threads(THREADS)
        .with_commit_interval(Duration::from_millis(200));
    let mut app = KafkaStreams::new(builder.build().unwrap(), config, engine.clone()).unwrap();
    app.start().unwrap();
    // The tasks settle on both threads before the load: a task that moves takes its
    // counts since its thread last published with it (as in Kafka Streams, task metrics
    // are the task's on that thread), and the task sums below are exact.
    let settled = Instant::now();
    loop {
        let m = app.metrics();
        let running = |t: &streams_core::runtime::ThreadSnapshot| {
            t.tasks.len() == (PARTITIONS as usize) / THREADS
                && t.tasks
                    .iter()
                    .all(|t| t.state == streams_core::runtime::TaskState::Running)
        };
        if m.threads.len() == THREADS && m.threads.iter().all(running) {
            break;
        }
        assert!(settled.elapsed() < Duration::from_secs(30), "{m:?}");
        std::thread::sleep(Duration::from_millis(20));
    }

    let done = Arc::new(AtomicBool::new(false));
    let mut producer = Some({
        let (engine, done) = (engine.clone(), done.clone());
        std::thread::spawn(move || produce(&engine, &done))
    });

    // Under load: scrape until the producer is done and everything is processed.
    let started = Instant::now();
    let mut totals = Vec::new();
    let mut busy_scrapes = 0;
    let mut lag_seen = BTreeMap::new();
    let mut consumer_lag_seen = BTreeSet::new();
    let ceiling = 1.0 / SLEEP.as_secs_f64();
    let mut written = None;
    loop {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "load not processed in 60 s"
        );
        std::thread::sleep(Duration::from_millis(50));
        let text = exporter.render();
        let total = sum(&text, "kafka_streams_stream_thread_process_total");
        totals.push(total);
        for (p, lag) in lags(&text, CONSUMER_LAG, "in") {
            consumer_lag_seen.insert(p);
            assert!(lag >= 0.0);
        }
        let end: i64 = (0..PARTITIONS)
            .map(|p| engine.offsets("in", p).unwrap().1)
            .sum();
        for (p, lag) in lags(&text, INPUT_LAG, "in") {
            let seen = lag_seen.entry(p).or_insert(0.0f64);
            *seen = seen.max(lag);
            assert!(lag <= end as f64, "lag {lag} of {p}: more than written");
        }
        let rates = samples(&text, "kafka_streams_stream_thread_process_rate");
        for (labels, rate) in &rates {
            assert!(
                *rate <= ceiling * 1.05,
                "{labels:?}: {rate}/s, above the {ceiling}/s the sleep allows"
            );
        }
        if rates.iter().any(|(_, r)| *r > 0.0) {
            busy_scrapes += 1;
        }
        if done.load(Ordering::SeqCst)
            && let Some(producer) = producer.take()
        {
            written = Some(producer.join().unwrap());
            continue; // a scrape after the last record was written
        }
        if let Some(w) = &written
            && total >= w.keyed as f64
        {
            break;
        }
    }
    let Some(written) = written else {
        unreachable!("the loop ends once the producer is done")
    };
    assert!(busy_scrapes > 1, "scrapes with a process rate above 0");
    let distinct: BTreeSet<u64> = totals.iter().map(|t| *t as u64).collect();
    assert!(
        distinct.len() > 3,
        "the processed counter moves while the load lasts: {totals:?}"
    );
    assert!(
        totals.windows(2).all(|w| w[0] <= w[1]),
        "the processed counter never goes back: {totals:?}"
    );
    assert_eq!(
        lag_seen.keys().copied().collect::<Vec<_>>(),
        (0..PARTITIONS).collect::<Vec<_>>(),
        "processing lag of every input partition"
    );
    assert_eq!(
        consumer_lag_seen.into_iter().collect::<Vec<_>>(),
        (0..PARTITIONS).collect::<Vec<_>>(),
        "consumer lag of every input partition"
    );
    assert!(
        lag_seen.values().any(|l| *l > 0.0),
        "some lag under a load above the app's capacity: {lag_seen:?}"
    );

    // Caught up and idle for a few publish intervals.
    app.wait_until_caught_up(Duration::from_secs(30)).unwrap();
    std::thread::sleep(interval * 6);
    let text = exporter.render();
    assert_eq!(
        sum(&text, "kafka_streams_stream_thread_process_total"),
        written.keyed as f64
    );
    assert_eq!(
        sum(&text, "kafka_streams_stream_task_process_total"),
        written.keyed as f64
    );
    assert_eq!(
        sum(&text, "kafka_streams_stream_task_dropped_records_total"),
        written.null_keyed as f64
    );
    let null: f64 = samples(
        &text,
        "kafka_streams_stream_task_dropped_records_by_reason_total",
    )
    .iter()
    .filter(|(l, _)| l["reason"] == "null")
    .map(|(_, v)| v)
    .sum();
    assert_eq!(null, written.null_keyed as f64);
    for name in [CONSUMER_LAG, INPUT_LAG] {
        let caught_up = lags(&text, name, "in");
        assert_eq!(caught_up.len(), PARTITIONS as usize, "{name}");
        for (p, lag) in caught_up {
            assert_eq!(lag, 0.0, "{name}: partition {p} caught up");
        }
    }
    for (labels, rate) in samples(&text, "kafka_streams_stream_thread_process_rate") {
        assert_eq!(rate, 0.0, "{labels:?} idle");
    }
    assert!(sum(&text, "kafka_streams_stream_thread_commit_total") > 0.0);
    assert!(sum(&text, "kafka_streams_stream_thread_poll_total") > 0.0);
    assert_eq!(
        sum(&text, "kafka_streams_stream_thread_active_tasks"),
        f64::from(PARTITIONS)
    );

    // End-to-end latency: at least the records' age when written, at most their age now.
    let oldest = (now_ms() - written.first_ms + AGE_MS) as f64;
    let mins = samples(&text, "kafka_streams_stream_task_record_e2e_latency_min");
    let avgs = samples(&text, "kafka_streams_stream_task_record_e2e_latency_avg");
    let maxs = samples(&text, "kafka_streams_stream_task_record_e2e_latency_max");
    assert_eq!(mins.len(), PARTITIONS as usize, "{mins:?}");
    assert_eq!(avgs.len(), PARTITIONS as usize, "{avgs:?}");
    assert_eq!(maxs.len(), PARTITIONS as usize, "{maxs:?}");
    for (labels, v) in mins.iter().chain(&avgs).chain(&maxs) {
        assert!(
            (AGE_MS as f64..=oldest).contains(v),
            "{labels:?}: {v} ms, not within [{AGE_MS}, {oldest}]"
        );
    }

    // The embedded engine's logs: offsets against what was written, segments and bytes
    // against the files on disk.
    let per_partition = |name: &str, topic: &str| -> BTreeMap<u32, f64> {
        samples(&text, name)
            .into_iter()
            .filter(|(l, _)| l["topic"] == topic)
            .map(|(l, v)| (l["partition"].parse().unwrap(), v))
            .collect()
    };
    let ends = per_partition("kafka_log_log_end_offset", "in");
    assert_eq!(ends.len(), PARTITIONS as usize);
    assert_eq!(
        ends.values().sum::<f64>(),
        (written.keyed + written.null_keyed) as f64
    );
    assert_eq!(
        per_partition("kafka_log_appended_offsets_total", "in"),
        ends
    );
    assert_eq!(
        per_partition("kafka_log_log_end_offset", "out")
            .values()
            .sum::<f64>(),
        written.keyed as f64
    );
    for p in 0..PARTITIONS {
        let files: Vec<std::fs::Metadata> =
            std::fs::read_dir(dir.path().join(format!("log/topics/in/{p}")))
                .unwrap()
                .map(|e| e.unwrap())
                .filter(|e| e.file_name().to_string_lossy().ends_with(".log"))
                .map(|e| e.metadata().unwrap())
                .collect();
        let bytes: u64 = files.iter().map(std::fs::Metadata::len).sum();
        assert_eq!(
            per_partition("kafka_log_num_log_segments", "in")[&p],
            files.len() as f64
        );
        assert_eq!(per_partition("kafka_log_size", "in")[&p], bytes as f64);
        assert_eq!(per_partition("kafka_log_log_start_offset", "in")[&p], 0.0);
    }

    app.close().unwrap();
}

/// docs/OPERATIONS.md documents every exported metric, and only those, with its type and
/// recording level.
#[test]
fn operations_doc_lists_every_metric() {
    use streams_core::metrics_export::{METRICS, MetricKind};
    let doc = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .join("docs/OPERATIONS.md");
    let doc = std::fs::read_to_string(doc).unwrap();
    // name -> (type, recording level)
    let rows: BTreeMap<String, (String, String)> = doc
        .lines()
        .filter_map(|l| {
            let mut cells = l.strip_prefix("| `")?.split(" | ");
            let name = cells.next()?.strip_suffix('`')?.to_string();
            let kind = cells.next()?.to_string();
            Some((name, (kind, cells.next()?.to_string())))
        })
        .collect();
    for m in METRICS {
        let kind = match m.kind {
            MetricKind::Counter => "counter",
            MetricKind::Gauge => "gauge",
        };
        assert_eq!(
            rows.get(m.name).map(|(k, l)| (k.as_str(), l.as_str())),
            Some((kind, m.level.as_str())),
            "{}",
            m.name
        );
    }
    let exported: BTreeSet<&str> = METRICS.iter().map(|m| m.name).collect();
    for name in rows.keys() {
        assert!(
            exported.contains(name.as_str()),
            "{name} is documented, not exported"
        );
    }
}
