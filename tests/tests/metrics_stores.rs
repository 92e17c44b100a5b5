//! The `DEBUG` metrics of issue #21 on running apps (embedded engine): state store
//! operations, the record cache's hit ratio, record lateness, per-node process counts and
//! end-to-end latency at source and sink, RocksDB properties; and none of the `DEBUG`
//! metrics at the default `INFO` level.
//!
//! Three apps count the keys of one-partition topics (`group_by_key().count()`): one at
//! `DEBUG` with the record cache off, one at `DEBUG` with it on, one at `INFO`. Publishing
//! is off while they process and turned on once they have caught up, so that each thread's
//! first publish holds every record in one window: the windowed values are then exact, and
//! the test compares them with what it computes from the keys and timestamps it wrote.

// Test helpers outside #[test] functions may unwrap too: a panic fails the test.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use streams_core::config::RecordingLevel;
use streams_core::dsl::{BufferConfig, Materialized};
use streams_core::metrics_export::{
    ExportOptions, METRICS, disable_publishing, enable_publishing, install_prometheus_with,
};
use streams_core::prelude::*;
use streams_core::runtime::{KafkaStreams, LogEngine, NewRecord, TopicConfig};

/// The keys written, in order: each app's count store reads each key once per record.
const KEYS: &[&str] = &["a", "b", "a", "c", "a", "b", "d", "a", "c", "e", "a", "b"];
/// Their timestamps (ms), out of order: some records are late.
const TIMESTAMPS: &[i64] = &[
    1_000, 3_000, 2_000, 5_000, 1_500, 6_000, 4_000, 6_000, 7_000, 2_500, 8_000, 7_500,
];
/// The RocksDB budget (`statestore.memory.bytes`): the block cache's capacity.
const MEMORY: usize = 16 << 20;

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// The samples of `name` in Prometheus text: labels and value.
fn samples(text: &str, name: &str) -> Vec<(BTreeMap<String, String>, f64)> {
    streams_tests::prometheus_samples(text, name)
}

/// The samples of `name` of the app `app` (its threads' names start with the app id).
fn of_app(text: &str, name: &str, app: &str) -> Vec<(BTreeMap<String, String>, f64)> {
    samples(text, name)
        .into_iter()
        .filter(|(l, _)| {
            l.get("thread_id")
                .is_some_and(|t| t.starts_with(&format!("{app}-")))
        })
        .collect()
}

/// The one sample of `name` of `app` whose labels include `with`.
fn one(text: &str, name: &str, app: &str, with: &[(&str, &str)]) -> f64 {
    let found: Vec<f64> = of_app(text, name, app)
        .into_iter()
        .filter(|(l, _)| {
            with.iter()
                .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|(_, v)| v)
        .collect();
    assert_eq!(found.len(), 1, "{name} {with:?} of {app}: {found:?}");
    found[0]
}

fn start_app(
    engine: &Arc<LogEngine>,
    dir: &std::path::Path,
    app: &str,
    level: RecordingLevel,
    caching: bool,
    suppress: bool,
) -> KafkaStreams {
    let input = format!("{app}-in");
    engine.create_topic(&input, TopicConfig::new(1)).unwrap();
    engine
        .create_topic(&format!("{app}-out"), TopicConfig::new(1))
        .unwrap();
    let mut materialized = Materialized::as_("counts");
    if !caching {
        materialized = materialized.with_caching_disabled();
    }
    let builder = StreamsBuilder::new();
    let mut counts = builder
        .stream::<String, String>(&input)
        .group_by_key()
        .count_with(materialized);
    if suppress {
        // Holds every key (the limit is never reached).
        counts = counts.suppress_until_time_limit(
            Duration::from_secs(3600),
            BufferConfig::unbounded(),
            Named::as_("sup"),
        );
    }
    counts.to_stream().to(&format!("{app}-out"));
    let config = StreamsConfig::new(app)
        .with_state_dir(dir.join(app))
        .with_memory_bytes(MEMORY)
        .with_metrics_recording_level(level);
    let mut streams = KafkaStreams::new(builder.build().unwrap(), config, engine.clone()).unwrap();
    streams.start().unwrap();
    let records: Vec<NewRecord> = KEYS
        .iter()
        .zip(TIMESTAMPS)
        .map(|(k, ts)| NewRecord {
            timestamp: *ts,
            key: Some(k.as_bytes().to_vec()),
            value: Some(b"v".to_vec()),
            headers: vec![],
        })
        .collect();
    engine.append(&input, 0, &records).unwrap();
    streams
}

/// The record cache's hit ratio as Kafka records it, computed from the keys: at each read,
/// hits over reads so far; (mean, least, greatest) of those.
fn expected_hit_ratio() -> (f64, f64, f64) {
    let mut seen = BTreeSet::new();
    let (mut hits, mut reads) = (0u32, 0u32);
    let mut ratios = Vec::new();
    for k in KEYS {
        reads += 1;
        if !seen.insert(*k) {
            hits += 1;
        }
        ratios.push(f64::from(hits) / f64::from(reads));
    }
    let avg = ratios.iter().sum::<f64>() / ratios.len() as f64;
    let min = ratios.iter().copied().fold(f64::INFINITY, f64::min);
    let max = ratios.iter().copied().fold(0.0, f64::max);
    (avg, min, max)
}

/// Record lateness computed from the timestamps: stream time before each record minus its
/// timestamp, 0 when not late; (mean, greatest).
fn expected_lateness() -> (f64, f64) {
    let mut stream_time = -1i64;
    let mut late = Vec::new();
    for ts in TIMESTAMPS {
        late.push((stream_time - ts).max(0));
        stream_time = stream_time.max(*ts);
    }
    let avg = late.iter().sum::<i64>() as f64 / late.len() as f64;
    (avg, *late.iter().max().unwrap() as f64)
}

#[test]
fn debug_metrics_match_the_input_and_are_absent_at_info() {
    let exporter = install_prometheus_with(ExportOptions {
        publish_interval: Duration::from_millis(50),
        ..ExportOptions::default()
    })
    .unwrap();
    // Nothing is published while the apps process: the first publish holds every record.
    disable_publishing();

    let dir = tempfile::tempdir().unwrap();
    let engine = Arc::new(LogEngine::open(&dir.path().join("log")).unwrap());
    let started_ms = now_ms();
    let apps = vec![
        (
            "dbg-nocache",
            start_app(
                &engine,
                dir.path(),
                "dbg-nocache",
                RecordingLevel::Debug,
                false,
                false,
            ),
        ),
        (
            "dbg-cache",
            start_app(
                &engine,
                dir.path(),
                "dbg-cache",
                RecordingLevel::Debug,
                true,
                false,
            ),
        ),
        (
            "info",
            start_app(
                &engine,
                dir.path(),
                "info",
                RecordingLevel::Info,
                true,
                true,
            ),
        ),
        (
            "dbg-suppress",
            start_app(
                &engine,
                dir.path(),
                "dbg-suppress",
                RecordingLevel::Debug,
                false,
                true,
            ),
        ),
    ];
    for (_, app) in &apps {
        app.wait_until_caught_up(Duration::from_secs(60)).unwrap();
    }
    let caught_up_ms = now_ms();
    enable_publishing(Duration::from_millis(50));

    // Every app's thread publishes its counts.
    let n = KEYS.len() as f64;
    let waited = Instant::now();
    let text = loop {
        let text = exporter.render();
        let published = apps.iter().all(|(app, _)| {
            of_app(&text, "kafka_streams_stream_task_process_total", app)
                .iter()
                .any(|(_, v)| *v == n)
        });
        if published {
            break text;
        }
        assert!(
            waited.elapsed() < Duration::from_secs(30),
            "no publish: {text}"
        );
        std::thread::sleep(Duration::from_millis(20));
    };

    let store = [("store", "counts"), ("store_scope", "rocksdb-state")];
    for app in ["dbg-nocache", "dbg-cache", "dbg-suppress"] {
        // Each record reads and writes its key once at the store's top (above the cache).
        for op in ["put", "get"] {
            let name = format!("kafka_streams_stream_state_{op}_total");
            assert_eq!(one(&text, &name, app, &store), n, "{name} of {app}");
            let max = format!("kafka_streams_stream_state_{op}_latency_max");
            assert!(one(&text, &max, app, &store) >= 0.0);
        }
        for op in ["delete", "range", "restore"] {
            let name = format!("kafka_streams_stream_state_{op}_total");
            assert_eq!(one(&text, &name, app, &store), 0.0, "{name} of {app}");
        }

        let (avg, max) = expected_lateness();
        let ta = [("task_id", "0_0")];
        let got_avg = one(
            &text,
            "kafka_streams_stream_task_record_lateness_avg",
            app,
            &ta,
        );
        assert!((got_avg - avg).abs() < 1e-9, "{app}: {got_avg} != {avg}");
        assert_eq!(
            one(
                &text,
                "kafka_streams_stream_task_record_lateness_max",
                app,
                &ta
            ),
            max,
            "{app}"
        );

        // Every record passes the source and the count; per-node counts are DEBUG.
        let counts: BTreeMap<String, f64> = of_app(
            &text,
            "kafka_streams_stream_processor_node_process_total",
            app,
        )
        .into_iter()
        .map(|(l, v)| (l["processor_node_id"].clone(), v))
        .collect();
        let of_kind = |kind: &str| -> Vec<f64> {
            counts
                .iter()
                .filter(|(node, _)| node.contains(kind))
                .map(|(_, v)| *v)
                .collect()
        };
        assert_eq!(of_kind("SOURCE"), vec![n], "{app}: {counts:?}");
        assert_eq!(of_kind("AGGREGATE"), vec![n], "{app}: {counts:?}");
        let sink = of_kind("SINK");
        assert_eq!(sink.len(), 1, "{app}: {counts:?}");
        if app == "dbg-suppress" {
            // Nothing is due: the suppression holds everything back.
            assert_eq!(sink[0], 0.0, "{app}: {counts:?}");
        } else if app == "dbg-nocache" {
            // Without a cache every update goes downstream.
            assert_eq!(sink[0], n, "{app}: {counts:?}");
        } else {
            assert!(sink[0] <= n, "{app}: {counts:?}");
        }
    }

    // The suppression buffer, sampled after each record (the cache is off: every update
    // reaches it): it holds every key seen so far.
    let mut distinct = BTreeSet::new();
    let held: Vec<f64> = KEYS
        .iter()
        .map(|k| {
            distinct.insert(*k);
            distinct.len() as f64
        })
        .collect();
    let sup = [("processor_node_id", "sup")];
    let sup_of = |name: &str| one(&text, name, "dbg-suppress", &sup);
    let count_avg = held.iter().sum::<f64>() / held.len() as f64;
    assert!(
        (sup_of("kafka_streams_stream_state_suppression_buffer_count_avg") - count_avg).abs()
            < 1e-9
    );
    assert_eq!(
        sup_of("kafka_streams_stream_state_suppression_buffer_count_max"),
        distinct.len() as f64
    );
    let (size_avg, size_max) = (
        sup_of("kafka_streams_stream_state_suppression_buffer_size_avg"),
        sup_of("kafka_streams_stream_state_suppression_buffer_size_max"),
    );
    // Each held key takes at least its key's bytes.
    assert!(size_max >= distinct.iter().map(|k| k.len()).sum::<usize>() as f64);
    assert!(size_avg > 0.0 && size_avg <= size_max);
    assert!(
        of_app(
            &text,
            "kafka_streams_stream_state_suppression_buffer_count_max",
            "info"
        )
        .is_empty()
    );

    // The hit ratio only where there is a cache.
    let (avg, min, max) = expected_hit_ratio();
    let rc = [("store", "counts")];
    let got = |name: &str| one(&text, name, "dbg-cache", &rc);
    assert!((got("kafka_streams_record_cache_hit_ratio_avg") - avg).abs() < 1e-5);
    assert!((got("kafka_streams_record_cache_hit_ratio_min") - min).abs() < 1e-5);
    assert!((got("kafka_streams_record_cache_hit_ratio_max") - max).abs() < 1e-5);
    assert!(
        of_app(
            &text,
            "kafka_streams_record_cache_hit_ratio_avg",
            "dbg-nocache"
        )
        .is_empty()
    );

    for (app, _) in &apps {
        // End-to-end latency (INFO) at the source and the sink only: between the records'
        // age when the apps started and their age once caught up.
        let e2e = of_app(
            &text,
            "kafka_streams_stream_processor_node_record_e2e_latency_max",
            app,
        );
        let nodes: BTreeSet<String> = e2e
            .iter()
            .map(|(l, _)| l["processor_node_id"].clone())
            .collect();
        assert!(nodes.iter().any(|n| n.contains("SOURCE")), "{nodes:?}");
        // Records reach the sink as they come only without a cache or suppression (a
        // cached table forwards on commit, the suppression holds everything).
        if *app == "dbg-nocache" {
            assert_eq!(nodes.len(), 2, "{app}: {nodes:?}");
            assert!(nodes.iter().any(|n| n.contains("SINK")), "{nodes:?}");
        } else {
            assert!(
                nodes
                    .iter()
                    .all(|n| n.contains("SOURCE") || n.contains("SINK")),
                "{app}: {nodes:?}"
            );
        }
        let lowest = (started_ms - TIMESTAMPS.iter().max().unwrap()) as f64;
        let highest = (caught_up_ms - TIMESTAMPS.iter().min().unwrap()) as f64;
        for stat in ["min", "avg", "max"] {
            let name = format!("kafka_streams_stream_processor_node_record_e2e_latency_{stat}");
            for (l, v) in of_app(&text, &name, app) {
                assert!((lowest..=highest).contains(&v), "{name} {l:?}: {v}");
            }
        }
        // RocksDB properties (INFO): the block cache is held to the memory budget.
        assert_eq!(
            one(
                &text,
                "kafka_streams_stream_state_block_cache_capacity",
                app,
                &rc
            ),
            MEMORY as f64,
            "{app}"
        );
        for name in [
            "kafka_streams_stream_state_size_all_mem_tables",
            "kafka_streams_stream_state_block_cache_usage",
            "kafka_streams_stream_state_estimate_pending_compaction_bytes",
            "kafka_streams_stream_state_estimate_num_keys",
        ] {
            one(&text, name, app, &rc);
        }
    }

    // At INFO no DEBUG metric has a series; at DEBUG each has one (the hit ratio with the
    // cache, the suppression buffer with a suppression: neither here).
    for m in METRICS {
        let info = of_app(&text, m.name, "info");
        let debug =
            of_app(&text, m.name, "dbg-nocache").len() + of_app(&text, m.name, "dbg-cache").len();
        if m.level == RecordingLevel::Info {
            continue;
        }
        assert!(info.is_empty(), "{} at INFO: {info:?}", m.name);
        if !m.name.contains("suppression") {
            assert!(debug > 0, "{} missing at DEBUG", m.name);
        }
    }

    for (_, app) in apps {
        app.close().unwrap();
    }
}
