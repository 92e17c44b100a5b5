//! Publishing a stream thread's metrics: rates and windowed averages over the time since
//! the thread last published, counters set to their totals.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use std::sync::Arc;

use crate::record::TaskId;
use crate::snapshot::{TaskState, ThreadSnapshot};

use super::catalog::*;
use super::windows::*;
use super::*;

/// What a thread gathers for a publish, besides its snapshot.
#[derive(Debug, Clone, Default)]
pub(crate) struct PublishInput {
    /// Total time polling, processing, committing.
    pub(crate) poll_time: Duration,
    pub(crate) process_time: Duration,
    pub(crate) commit_time: Duration,
    pub(crate) tasks: Vec<TaskExtra>,
    /// Per input partition: (topic, partition, lag).
    pub(crate) partition_lags: Vec<(String, u32, i64)>,
    /// Per active task's input partition: (task, topic, partition, records not processed).
    pub(crate) input_lags: Vec<(TaskId, String, u32, i64)>,
    /// Per standby changelog partition: (task, topic, partition, lag).
    pub(crate) standby_lags: Vec<(TaskId, String, u32, i64)>,
    pub(crate) cache_used: usize,
    pub(crate) cache_max: usize,
    /// The embedded engine's partitions (none on Kafka).
    pub(crate) log: Vec<streams_state::PartitionStats>,
}

/// Totals as of the last publish, for rates and windowed averages.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Previous {
    polls: u64,
    poll_time: Duration,
    records_polled: u64,
    processed: u64,
    process_time: Duration,
    commits: u64,
    commit_time: Duration,
    punctuations: u64,
    punctuate_rounds: u64,
    punctuate_time: Duration,
}

/// A task's counters as of the last publish.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct TaskPrevious {
    processed: u64,
    enforced: u64,
    punctuations: u64,
}

/// A stream thread's metrics recorder: a few accumulators the loop updates, and the
/// publisher's memory of what it published last.
#[derive(Debug)]
pub(crate) struct ThreadRecorder {
    poll_max: Duration,
    records_polled: u64,
    commit_max: Duration,
    punctuate_rounds: u64,
    punctuate_time: Duration,
    punctuate_max: Duration,
    last_publish: Instant,
    previous: Previous,
    /// Per task: records processed and enforced as of the last publish.
    task_previous: BTreeMap<(TaskId, bool), TaskPrevious>,
    /// Per task and processor node: records the node received as of the last publish.
    node_previous: BTreeMap<(TaskId, Arc<str>), u64>,
    task_created: u64,
    task_closed: u64,
    /// Labels of the lag gauges published last (zeroed once they disappear).
    partitions: BTreeSet<(String, u32)>,
    input_partitions: BTreeSet<(TaskId, String, u32)>,
    standby_partitions: BTreeSet<(TaskId, String, u32)>,
}

impl Default for ThreadRecorder {
    fn default() -> Self {
        Self {
            poll_max: Duration::ZERO,
            records_polled: 0,
            commit_max: Duration::ZERO,
            punctuate_rounds: 0,
            punctuate_time: Duration::ZERO,
            punctuate_max: Duration::ZERO,
            last_publish: Instant::now(),
            previous: Previous::default(),
            task_previous: BTreeMap::new(),
            node_previous: BTreeMap::new(),
            task_created: 0,
            task_closed: 0,
            partitions: BTreeSet::new(),
            input_partitions: BTreeSet::new(),
            standby_partitions: BTreeSet::new(),
        }
    }
}

pub(super) fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

pub(super) fn gauge(name: &'static str, labels: &[(&'static str, String)], value: f64) {
    ::metrics::gauge!(name, labels).set(value);
}

pub(super) fn counter(name: &'static str, labels: &[(&'static str, String)], value: u64) {
    ::metrics::counter!(name, labels).absolute(value);
}

/// The average and maximum latency gauges of an operation: `time` spent on `n` of them
/// since the last publish, and the longest one since then (`max`, which this resets).
fn latency(
    (avg_name, max_name): (&'static str, &'static str),
    labels: &[(&'static str, String)],
    (time, n): (Duration, u64),
    max: &mut Duration,
) {
    gauge(avg_name, labels, avg_ms(time, n));
    gauge(max_name, labels, ms(std::mem::take(max)));
}

/// `time / n` in ms (0 when `n` is 0).
pub(super) fn avg_ms(time: Duration, n: u64) -> f64 {
    if n == 0 { 0.0 } else { ms(time) / n as f64 }
}

/// Sets the lag gauge `name` of each (task, topic, partition) in `lags`, and to 0 those
/// in `published` (last time's) that are gone; `published` becomes this time's.
pub(super) fn publish_task_lags(
    name: &'static str,
    thread: &str,
    lags: &[(TaskId, String, u32, i64)],
    published: &mut BTreeSet<(TaskId, String, u32)>,
) {
    let labels = |id: &TaskId, topic: &str, partition: u32| {
        [
            ("thread_id", thread.to_string()),
            ("task_id", id.to_string()),
            ("topic", topic.to_string()),
            ("partition", partition.to_string()),
        ]
    };
    let mut now = BTreeSet::new();
    for (id, topic, partition, lag) in lags {
        gauge(name, &labels(id, topic, *partition), *lag as f64);
        now.insert((*id, topic.clone(), *partition));
    }
    for (id, topic, partition) in published.difference(&now) {
        gauge(name, &labels(id, topic, *partition), 0.0);
    }
    *published = now;
}

/// `ns` in ms.
pub(super) fn ns_ms(ns: u64) -> f64 {
    ns as f64 / 1e6
}

impl ThreadRecorder {
    /// Publishes a task's node, store, lateness and suppression metrics; records each
    /// node's count in `node_previous` for the next rates.
    fn publish_task_extra(
        &self,
        thread: &str,
        extra: &TaskExtra,
        secs: f64,
        node_previous: &mut BTreeMap<(TaskId, Arc<str>), u64>,
    ) {
        let task = extra.id.to_string();
        let ta = [("thread_id", thread.to_string()), ("task_id", task.clone())];
        if let Some(w) = extra.lateness {
            gauge(LATENESS_AVG, &ta, w.avg());
            gauge(LATENESS_MAX, &ta, w.max as f64);
        }
        let pn = |node: &str| {
            [
                ("thread_id", thread.to_string()),
                ("task_id", task.clone()),
                ("processor_node_id", node.to_string()),
            ]
        };
        for node in &extra.nodes {
            let labels = pn(&node.name);
            if let Some(w) = node.e2e {
                gauge(NODE_E2E_MIN, &labels, w.min as f64);
                gauge(NODE_E2E_AVG, &labels, w.avg());
                gauge(NODE_E2E_MAX, &labels, w.max as f64);
            }
            if let Some(n) = node.processed {
                let key = (extra.id, node.name.clone());
                let before = self.node_previous.get(&key).copied().unwrap_or(0);
                counter(NODE_PROCESS_TOTAL, &labels, n);
                gauge(
                    NODE_PROCESS_RATE,
                    &labels,
                    n.saturating_sub(before) as f64 / secs,
                );
                node_previous.insert(key, n);
            }
        }
        for (node, w) in &extra.suppression {
            let labels = pn(node);
            let n = w.samples.max(1) as f64;
            gauge(SUPPRESSION_SIZE_AVG, &labels, w.bytes_sum as f64 / n);
            gauge(SUPPRESSION_SIZE_MAX, &labels, w.bytes_max as f64);
            gauge(SUPPRESSION_COUNT_AVG, &labels, w.count_sum as f64 / n);
            gauge(SUPPRESSION_COUNT_MAX, &labels, w.count_max as f64);
        }
        for store in &extra.stores {
            let rc = [
                ("thread_id", thread.to_string()),
                ("task_id", task.clone()),
                ("store", store.name.to_string()),
            ];
            if let Some((scope, ops)) = &store.ops {
                let st = [
                    ("thread_id", thread.to_string()),
                    ("task_id", task.clone()),
                    ("store", store.name.to_string()),
                    ("store_scope", scope.to_string()),
                ];
                for (op, w) in ops {
                    let Some((_, [total, rate, avg, max])) =
                        STATE_OPS.iter().find(|(name, _)| name == op)
                    else {
                        continue;
                    };
                    counter(total, &st, w.total);
                    gauge(rate, &st, w.count as f64 / secs);
                    gauge(
                        avg,
                        &st,
                        if w.count == 0 {
                            0.0
                        } else {
                            ns_ms(w.sum_ns) / w.count as f64
                        },
                    );
                    gauge(max, &st, ns_ms(w.max_ns));
                }
            }
            if let Some(h) = store.hit_ratio {
                gauge(CACHE_HIT_RATIO_AVG, &rc, h.avg);
                gauge(CACHE_HIT_RATIO_MIN, &rc, h.min);
                gauge(CACHE_HIT_RATIO_MAX, &rc, h.max);
            }
            if let Some(p) = store.rocksdb {
                gauge(ROCKSDB_MEMTABLES, &rc, p.size_all_mem_tables as f64);
                gauge(ROCKSDB_BLOCK_CACHE_USAGE, &rc, p.block_cache_usage as f64);
                gauge(
                    ROCKSDB_BLOCK_CACHE_CAPACITY,
                    &rc,
                    p.block_cache_capacity as f64,
                );
                gauge(
                    ROCKSDB_PENDING_COMPACTION,
                    &rc,
                    p.estimate_pending_compaction_bytes as f64,
                );
                gauge(ROCKSDB_NUM_KEYS, &rc, p.estimate_num_keys as f64);
            }
        }
    }

    /// A poll returned `records` after `took`.
    #[inline]
    pub(crate) fn on_poll(&mut self, records: usize, took: Duration) {
        self.records_polled += records as u64;
        self.poll_max = self.poll_max.max(took);
    }

    /// A commit took `took`.
    #[inline]
    pub(crate) fn on_commit(&mut self, took: Duration) {
        self.commit_max = self.commit_max.max(took);
    }

    /// A punctuation round took `took`; counted only if a punctuator `fired`.
    #[inline]
    pub(crate) fn on_punctuate(&mut self, fired: bool, took: Duration) {
        if fired {
            self.punctuate_rounds += 1;
            self.punctuate_time += took;
            self.punctuate_max = self.punctuate_max.max(took);
        }
    }

    /// Whether publishing is on and the thread's publish interval has passed.
    #[inline]
    pub(crate) fn due(&self) -> bool {
        is_publishing()
            && self.last_publish.elapsed()
                >= Duration::from_millis(INTERVAL_MS.load(Ordering::Relaxed))
    }

    /// Publishes `snapshot` and `input` to the global recorder; starts a new window.
    pub(crate) fn publish(&mut self, snapshot: &ThreadSnapshot, input: &PublishInput) {
        let now = Instant::now();
        let secs = now
            .duration_since(self.last_publish)
            .as_secs_f64()
            .max(1e-9);
        self.last_publish = now;
        let rate = |now: u64, before: u64| now.saturating_sub(before) as f64 / secs;
        let p = self.previous;
        let th = [("thread_id", snapshot.name.clone())];
        // The embedded engine is the process's broker: every thread sets the same values.
        for l in &input.log {
            let lg = [
                ("topic", l.topic.clone()),
                ("partition", l.partition.to_string()),
            ];
            gauge(LOG_SEGMENTS, &lg, l.segments as f64);
            gauge(LOG_SIZE, &lg, l.size_bytes as f64);
            gauge(LOG_START, &lg, l.start_offset as f64);
            gauge(LOG_END, &lg, l.end_offset as f64);
            counter(LOG_APPENDED, &lg, l.end_offset.max(0) as u64);
        }

        counter(POLL_TOTAL, &th, snapshot.polls);
        gauge(POLL_RATE, &th, rate(snapshot.polls, p.polls));
        let polls = snapshot.polls.saturating_sub(p.polls);
        latency(
            (POLL_LATENCY_AVG, POLL_LATENCY_MAX),
            &th,
            (input.poll_time.saturating_sub(p.poll_time), polls),
            &mut self.poll_max,
        );
        let polled = self.records_polled.saturating_sub(p.records_polled);
        gauge(
            POLL_RECORDS_AVG,
            &th,
            if polls == 0 {
                0.0
            } else {
                polled as f64 / polls as f64
            },
        );
        counter(
            BLOCKED_TIME,
            &th,
            u64::try_from(input.poll_time.as_nanos()).unwrap_or(u64::MAX),
        );

        counter(PROCESS_TOTAL, &th, snapshot.processed);
        gauge(PROCESS_RATE, &th, rate(snapshot.processed, p.processed));
        gauge(
            PROCESS_LATENCY_AVG,
            &th,
            avg_ms(
                input.process_time.saturating_sub(p.process_time),
                snapshot.processed.saturating_sub(p.processed),
            ),
        );

        counter(COMMIT_TOTAL, &th, snapshot.commits);
        gauge(COMMIT_RATE, &th, rate(snapshot.commits, p.commits));
        latency(
            (COMMIT_LATENCY_AVG, COMMIT_LATENCY_MAX),
            &th,
            (
                input.commit_time.saturating_sub(p.commit_time),
                snapshot.commits.saturating_sub(p.commits),
            ),
            &mut self.commit_max,
        );

        // Task counters restart when a task moves: the thread sums what each task added.
        let punctuated: u64 = snapshot
            .tasks
            .iter()
            .filter(|t| t.state != TaskState::Standby)
            .map(|t| {
                let before = self.task_previous.get(&(t.id, false));
                let before = before.map_or(0, |b| b.punctuations);
                t.metrics.punctuations.saturating_sub(before)
            })
            .sum();
        let punctuations = p.punctuations + punctuated;
        counter(PUNCTUATE_TOTAL, &th, punctuations);
        gauge(PUNCTUATE_RATE, &th, rate(punctuations, p.punctuations));
        latency(
            (PUNCTUATE_LATENCY_AVG, PUNCTUATE_LATENCY_MAX),
            &th,
            (
                self.punctuate_time.saturating_sub(p.punctuate_time),
                self.punctuate_rounds.saturating_sub(p.punctuate_rounds),
            ),
            &mut self.punctuate_max,
        );

        // Tasks taken on and given up since the last publish.
        let current: BTreeSet<(TaskId, bool)> = snapshot
            .tasks
            .iter()
            .map(|t| (t.id, t.state == TaskState::Standby))
            .collect();
        let created = current
            .iter()
            .filter(|k| !self.task_previous.contains_key(k))
            .count() as u64;
        let closed = self
            .task_previous
            .keys()
            .filter(|k| !current.contains(k))
            .count() as u64;
        self.task_created += created;
        self.task_closed += closed;
        counter(TASK_CREATED_TOTAL, &th, self.task_created);
        gauge(TASK_CREATED_RATE, &th, created as f64 / secs);
        counter(TASK_CLOSED_TOTAL, &th, self.task_closed);
        gauge(TASK_CLOSED_RATE, &th, closed as f64 / secs);
        let standbys = current.iter().filter(|(_, s)| *s).count();
        gauge(
            ACTIVE_TASKS,
            &th,
            current.len().saturating_sub(standbys) as f64,
        );
        gauge(STANDBY_TASKS, &th, standbys as f64);
        counter(PRODUCTION_ERRORS, &th, snapshot.production_errors_skipped);
        gauge(CACHE_USED, &th, input.cache_used as f64);
        gauge(CACHE_MAX, &th, input.cache_max as f64);
        if let Some(latency) = snapshot
            .consumer_statistics
            .as_ref()
            .and_then(|s| s.request_latency_avg)
        {
            gauge(REQUEST_LATENCY, &th, ms(latency));
        }

        let mut task_previous = BTreeMap::new();
        for t in &snapshot.tasks {
            let standby = t.state == TaskState::Standby;
            let ta = [
                ("thread_id", snapshot.name.clone()),
                ("task_id", t.id.to_string()),
            ];
            let m = &t.metrics;
            let before = self
                .task_previous
                .get(&(t.id, standby))
                .copied()
                .unwrap_or_default();
            task_previous.insert(
                (t.id, standby),
                TaskPrevious {
                    processed: m.processed,
                    enforced: m.enforced_processing,
                    punctuations: m.punctuations,
                },
            );
            counter(RESTORE_TOTAL, &ta, t.restored);
            if standby {
                continue;
            }
            gauge(
                RESTORE_REMAINING,
                &ta,
                if t.state == TaskState::Restoring {
                    t.restore_total.saturating_sub(t.restored) as f64
                } else {
                    0.0
                },
            );
            counter(TASK_PROCESS_TOTAL, &ta, m.processed);
            gauge(TASK_PROCESS_RATE, &ta, rate(m.processed, before.processed));
            counter(
                TASK_DROPPED_TOTAL,
                &ta,
                m.skipped_records + m.dropped_records,
            );
            for (reason, n) in [
                ("skipped", m.skipped_records),
                ("null", m.null_records),
                ("operator", m.dropped_records.saturating_sub(m.null_records)),
            ] {
                let dr = [
                    ("thread_id", snapshot.name.clone()),
                    ("task_id", t.id.to_string()),
                    ("reason", reason.to_string()),
                ];
                counter(TASK_DROPPED_REASON, &dr, n);
            }
            counter(TASK_DEAD_LETTERED, &ta, m.dead_lettered);
            counter(TASK_ENFORCED_TOTAL, &ta, m.enforced_processing);
            gauge(
                TASK_ENFORCED_RATE,
                &ta,
                rate(m.enforced_processing, before.enforced),
            );
            counter(TASK_PUNCTUATE_TOTAL, &ta, m.punctuations);
            counter(TASK_IDLE_ADVANCES, &ta, m.idle_advances);
            gauge(TASK_LAG, &ta, t.lag as f64);
        }
        let mut node_previous = BTreeMap::new();
        for extra in &input.tasks {
            let ta = [
                ("thread_id", snapshot.name.clone()),
                ("task_id", extra.id.to_string()),
            ];
            gauge(TASK_BUFFER, &ta, extra.buffered as f64);
            if let Some(w) = extra.e2e {
                gauge(E2E_MIN, &ta, w.min as f64);
                gauge(E2E_AVG, &ta, w.avg());
                gauge(E2E_MAX, &ta, w.max as f64);
            }
            self.publish_task_extra(&snapshot.name, extra, secs, &mut node_previous);
        }
        self.node_previous = node_previous;
        // Tasks gone: their lag no longer counts here.
        for (id, standby) in self.task_previous.keys() {
            if !*standby && !task_previous.contains_key(&(*id, false)) {
                let ta = [
                    ("thread_id", snapshot.name.clone()),
                    ("task_id", id.to_string()),
                ];
                gauge(TASK_LAG, &ta, 0.0);
                gauge(TASK_BUFFER, &ta, 0.0);
                gauge(RESTORE_REMAINING, &ta, 0.0);
            }
        }
        self.task_previous = task_previous;

        let mut partitions = BTreeSet::new();
        for (topic, partition, lag) in &input.partition_lags {
            let tp = [
                ("thread_id", snapshot.name.clone()),
                ("topic", topic.clone()),
                ("partition", partition.to_string()),
            ];
            gauge(RECORDS_LAG, &tp, *lag as f64);
            partitions.insert((topic.clone(), *partition));
        }
        for (topic, partition) in self.partitions.difference(&partitions) {
            let tp = [
                ("thread_id", snapshot.name.clone()),
                ("topic", topic.clone()),
                ("partition", partition.to_string()),
            ];
            gauge(RECORDS_LAG, &tp, 0.0);
        }
        self.partitions = partitions;
        publish_task_lags(
            INPUT_LAG,
            &snapshot.name,
            &input.input_lags,
            &mut self.input_partitions,
        );
        publish_task_lags(
            STANDBY_LAG,
            &snapshot.name,
            &input.standby_lags,
            &mut self.standby_partitions,
        );

        self.previous = Previous {
            polls: snapshot.polls,
            poll_time: input.poll_time,
            records_polled: self.records_polled,
            processed: snapshot.processed,
            process_time: input.process_time,
            commits: snapshot.commits,
            commit_time: input.commit_time,
            punctuations,
            punctuate_rounds: self.punctuate_rounds,
            punctuate_time: self.punctuate_time,
        };
    }
}
