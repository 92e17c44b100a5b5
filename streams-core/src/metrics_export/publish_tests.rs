//! Tests of publishing and the Prometheus exporter.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use super::catalog::*;
use super::publish::*;
use super::windows::*;
use super::*;
use crate::metrics::TaskMetrics;
use crate::record::TaskId;
use crate::snapshot::TaskSnapshot;
use crate::snapshot::{TaskState, ThreadSnapshot};

/// The value of the sample `name{labels}` in `text` (labels in rendered order).
fn sample(text: &str, name_and_labels: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name_and_labels)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

fn snapshot(processed: u64, lag: i64) -> ThreadSnapshot {
    ThreadSnapshot {
        name: "app-1-StreamThread-1".into(),
        polls: processed / 10,
        poll_latency_avg: Duration::ZERO,
        processed,
        process_rate: 0.0,
        process_latency_avg: Duration::ZERO,
        commits: 2,
        commit_latency_avg: Duration::ZERO,
        production_errors_skipped: 0,
        consumer_statistics: None,
        tasks: vec![TaskSnapshot {
            id: TaskId {
                subtopology: 0,
                partition: 3,
            },
            state: TaskState::Running,
            metrics: TaskMetrics {
                processed,
                skipped_records: 1,
                dropped_records: 5,
                null_records: 2,
                punctuations: 4,
                ..TaskMetrics::default()
            },
            lag,
            restored: 0,
            restore_total: 0,
            e2e_latency_ms: Some(7),
        }],
    }
}

#[test]
fn latency_window_keeps_min_avg_max_and_resets() {
    let mut w = LatencyWindow::default();
    assert_eq!(w.take(), None);
    for v in [5, 1, 9, 5] {
        w.record(v);
    }
    let got = w.take();
    assert_eq!(
        got.map(|w| (w.min, w.max, w.avg())),
        Some((1, 9, 20.0 / 4.0))
    );
    assert_eq!(w.take(), None);
}

#[test]
fn publishes_counters_rates_lags_and_zeroes_what_left() {
    let recorder = prometheus_recorder(&ExportOptions::default());
    let handle = recorder.handle();
    ::metrics::with_local_recorder(&recorder, || {
        let mut r = ThreadRecorder::default();
        r.on_poll(30, Duration::from_millis(4));
        r.on_poll(10, Duration::from_millis(2));
        let mut e2e = LatencyWindow::default();
        e2e.record(3);
        e2e.record(11);
        let input = PublishInput {
            poll_time: Duration::from_millis(6),
            process_time: Duration::from_millis(100),
            commit_time: Duration::from_millis(8),
            tasks: vec![TaskExtra::new(
                TaskId {
                    subtopology: 0,
                    partition: 3,
                },
                4,
                Some(e2e),
            )],
            partition_lags: vec![("in".into(), 3, 42)],
            input_lags: vec![(
                TaskId {
                    subtopology: 0,
                    partition: 3,
                },
                "in".into(),
                3,
                46,
            )],
            standby_lags: vec![],
            cache_used: 10,
            cache_max: 100,
            log: vec![],
        };
        r.publish(&snapshot(1000, 46), &input);
        let text = handle.render();
        let th = "{thread_id=\"app-1-StreamThread-1\"}";
        let ta = "{thread_id=\"app-1-StreamThread-1\",task_id=\"0_3\"}";
        assert_eq!(sample(&text, &format!("{PROCESS_TOTAL}{th}")), Some(1000.0));
        assert!(sample(&text, &format!("{PROCESS_RATE}{th}")).is_some_and(|v| v > 0.0));
        assert_eq!(
            sample(&text, &format!("{POLL_RECORDS_AVG}{th}")),
            Some(40.0 / 100.0)
        );
        assert_eq!(sample(&text, &format!("{POLL_LATENCY_MAX}{th}")), Some(4.0));
        assert_eq!(
            sample(&text, &format!("{COMMIT_LATENCY_AVG}{th}")),
            Some(4.0)
        );
        assert_eq!(
            sample(&text, &format!("{TASK_DROPPED_TOTAL}{ta}")),
            Some(6.0)
        );
        assert_eq!(
            sample(
                &text,
                "kafka_streams_stream_task_dropped_records_by_reason_total{thread_id=\"app-1-StreamThread-1\",task_id=\"0_3\",reason=\"operator\"}"
            ),
            Some(3.0)
        );
        assert_eq!(sample(&text, &format!("{E2E_MIN}{ta}")), Some(3.0));
        assert_eq!(sample(&text, &format!("{E2E_AVG}{ta}")), Some(7.0));
        assert_eq!(sample(&text, &format!("{E2E_MAX}{ta}")), Some(11.0));
        assert_eq!(sample(&text, &format!("{TASK_LAG}{ta}")), Some(46.0));
        assert_eq!(sample(&text, &format!("{TASK_BUFFER}{ta}")), Some(4.0));
        assert_eq!(
            sample(
                &text,
                "kafka_consumer_records_lag{thread_id=\"app-1-StreamThread-1\",topic=\"in\",partition=\"3\"}"
            ),
            Some(42.0)
        );
        assert_eq!(
            sample(&text, &format!("{TASK_CREATED_TOTAL}{th}")),
            Some(1.0)
        );
        let input_lag = "kafka_streams_stream_task_input_records_lag{thread_id=\"app-1-StreamThread-1\",task_id=\"0_3\",topic=\"in\",partition=\"3\"}";
        assert_eq!(sample(&text, input_lag), Some(46.0));

        // The task leaves: its lags drop to 0, the thread's totals stay.
        let mut gone = snapshot(1000, 0);
        gone.tasks.clear();
        // (Punctuations so far: the task's 4.)
        assert_eq!(sample(&text, &format!("{PUNCTUATE_TOTAL}{th}")), Some(4.0));
        r.publish(&gone, &PublishInput::default());
        let text = handle.render();
        assert_eq!(sample(&text, &format!("{TASK_LAG}{ta}")), Some(0.0));
        assert_eq!(
            sample(
                &text,
                "kafka_consumer_records_lag{thread_id=\"app-1-StreamThread-1\",topic=\"in\",partition=\"3\"}"
            ),
            Some(0.0)
        );
        assert_eq!(
            sample(&text, &format!("{TASK_CLOSED_TOTAL}{th}")),
            Some(1.0)
        );
        assert_eq!(sample(&text, input_lag), Some(0.0));
        assert_eq!(sample(&text, &format!("{PUNCTUATE_TOTAL}{th}")), Some(4.0));
        // It comes back as a new task (counters from 0) and punctuates twice: the
        // thread's total goes on from 4.
        let mut back = snapshot(1000, 0);
        back.tasks[0].metrics.punctuations = 2;
        r.publish(&back, &PublishInput::default());
        let text = handle.render();
        assert_eq!(sample(&text, &format!("{PUNCTUATE_TOTAL}{th}")), Some(6.0));
        assert_eq!(sample(&text, &format!("{PROCESS_RATE}{th}")), Some(0.0));
        assert_eq!(sample(&text, &format!("{POLL_LATENCY_MAX}{th}")), Some(0.0));
    });
}

#[test]
fn publishes_node_store_lateness_and_suppression_metrics() {
    let recorder = prometheus_recorder(&ExportOptions::default());
    let handle = recorder.handle();
    ::metrics::with_local_recorder(&recorder, || {
        let mut r = ThreadRecorder::default();
        let id = TaskId {
            subtopology: 0,
            partition: 3,
        };
        let mut lateness = LatencyWindow::default();
        for v in [0, 4, 0, 10] {
            lateness.record(v);
        }
        let mut e2e = LatencyWindow::default();
        e2e.record(20);
        e2e.record(40);
        let mut buffer = BufferWindow::default();
        buffer.record(100, 1);
        buffer.record(300, 3);
        let mut extra = TaskExtra::new(id, 0, None);
        extra.lateness = lateness.take();
        extra.nodes = vec![
            NodeExtra {
                name: Arc::from("src"),
                processed: Some(50),
                e2e: Some(e2e),
            },
            NodeExtra {
                name: Arc::from("mid"),
                processed: Some(30),
                e2e: None,
            },
        ];
        extra.suppression = vec![(Arc::from("sup"), buffer)];
        extra.stores = vec![StoreExtra {
            name: Arc::from("counts"),
            ops: Some((
                "rocksdb-state",
                vec![(
                    "put",
                    streams_state::metrics::OpWindow {
                        total: 9,
                        count: 4,
                        sum_ns: 8_000_000,
                        max_ns: 5_000_000,
                    },
                )],
            )),
            hit_ratio: Some(streams_state::HitRatioWindow {
                avg: 0.25,
                min: 0.0,
                max: 0.5,
            }),
            rocksdb: Some(streams_state::RocksDbProperties {
                estimate_num_keys: 7,
                block_cache_capacity: 1 << 20,
                ..Default::default()
            }),
        }];
        let input = PublishInput {
            tasks: vec![extra],
            ..PublishInput::default()
        };
        r.publish(&snapshot(0, 0), &input);
        let text = handle.render();
        let ta = "{thread_id=\"app-1-StreamThread-1\",task_id=\"0_3\"";
        assert_eq!(sample(&text, &format!("{LATENESS_AVG}{ta}}}")), Some(3.5));
        assert_eq!(sample(&text, &format!("{LATENESS_MAX}{ta}}}")), Some(10.0));
        let src = format!("{ta},processor_node_id=\"src\"}}");
        assert_eq!(sample(&text, &format!("{NODE_E2E_MIN}{src}")), Some(20.0));
        assert_eq!(sample(&text, &format!("{NODE_E2E_AVG}{src}")), Some(30.0));
        assert_eq!(sample(&text, &format!("{NODE_E2E_MAX}{src}")), Some(40.0));
        assert_eq!(
            sample(&text, &format!("{NODE_PROCESS_TOTAL}{src}")),
            Some(50.0)
        );
        let mid = format!("{ta},processor_node_id=\"mid\"}}");
        assert_eq!(sample(&text, &format!("{NODE_E2E_MIN}{mid}")), None);
        assert_eq!(
            sample(&text, &format!("{NODE_PROCESS_TOTAL}{mid}")),
            Some(30.0)
        );
        let sup = format!("{ta},processor_node_id=\"sup\"}}");
        assert_eq!(
            sample(&text, &format!("{SUPPRESSION_SIZE_AVG}{sup}")),
            Some(200.0)
        );
        assert_eq!(
            sample(&text, &format!("{SUPPRESSION_COUNT_MAX}{sup}")),
            Some(3.0)
        );
        let st = format!("{ta},store=\"counts\",store_scope=\"rocksdb-state\"}}");
        assert_eq!(sample(&text, &format!("{STATE_PUT_TOTAL}{st}")), Some(9.0));
        assert_eq!(
            sample(&text, &format!("{STATE_PUT_LATENCY_AVG}{st}")),
            Some(2.0)
        );
        assert_eq!(
            sample(&text, &format!("{STATE_PUT_LATENCY_MAX}{st}")),
            Some(5.0)
        );
        assert!(sample(&text, &format!("{STATE_PUT_RATE}{st}")).is_some_and(|v| v > 0.0));
        let rc = format!("{ta},store=\"counts\"}}");
        assert_eq!(
            sample(&text, &format!("{CACHE_HIT_RATIO_AVG}{rc}")),
            Some(0.25)
        );
        assert_eq!(sample(&text, &format!("{ROCKSDB_NUM_KEYS}{rc}")), Some(7.0));
        assert_eq!(
            sample(&text, &format!("{ROCKSDB_BLOCK_CACHE_CAPACITY}{rc}")),
            Some(1048576.0)
        );
    });
}

#[test]
fn every_store_operation_has_its_four_metrics() {
    let ops = streams_state::StoreMetrics::new("x");
    let names: Vec<&str> = ops.ops().iter().map(|(n, _)| *n).collect();
    let exported: Vec<&str> = STATE_OPS.iter().map(|(n, _)| *n).collect();
    assert_eq!(names, exported);
    for (op, names) in STATE_OPS {
        for n in names {
            assert!(n.contains(&format!("_{op}_")), "{n}");
            assert!(METRICS.iter().any(|m| m.name == *n), "{n}");
        }
    }
}

#[test]
fn names_are_unique_and_follow_the_scheme() {
    let mut seen = BTreeSet::new();
    for m in METRICS {
        assert!(seen.insert(m.name), "{} twice", m.name);
        assert!(
            m.name.starts_with("kafka_streams_")
                || m.name.starts_with("kafka_consumer_")
                || m.name.starts_with("kafka_log_"),
            "{}",
            m.name
        );
        assert_eq!(
            m.kind == MetricKind::Counter,
            m.name.ends_with("_total"),
            "{}",
            m.name
        );
        assert!(
            m.name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
            "{}",
            m.name
        );
    }
}
