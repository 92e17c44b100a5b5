//! Exports the runtime's metrics through the [`metrics`](::metrics) facade, named and
//! labelled as Kafka Streams' (issue #21), with a Prometheus text exporter an app mounts
//! on its own HTTP server.
//!
//! Nothing is published until publishing is on: [`install_prometheus`] turns it on (and
//! installs the Prometheus recorder); an app with a recorder of its own (StatsD, OTLP...)
//! installs it with [`::metrics::set_global_recorder`] and calls [`enable_publishing`].
//! Publishing off costs each stream thread one atomic load per loop.
//!
//! Each stream thread publishes from the values it already keeps for
//! [`KafkaStreams::metrics`](crate::runtime::KafkaStreams::metrics), at most once per
//! publish interval (1 s by default), at the end of a loop: counters are set to their
//! totals, rates and windowed averages are computed over the time since the thread last
//! published, maxima and minima are those of that window. The processing loop itself only
//! adds a few integer additions and comparisons (poll and commit maxima, punctuation time,
//! records per poll, end-to-end latency per task).
//!
//! Names follow Kafka Streams' JMX metrics: `kafka_streams_<group>_<metric>`, the group
//! without its `-metrics` suffix and every `-` an `_` (`stream-thread-metrics`
//! `commit-latency-avg` is `kafka_streams_stream_thread_commit_latency_avg`); consumer
//! metrics are `kafka_consumer_<metric>`. Labels are Kafka's tags in snake case
//! (`thread_id`, `task_id`, `topic`, `partition`). Counters end in `_total`; latencies are
//! in milliseconds, as in Kafka Streams. [`METRICS`] lists them all (docs/OPERATIONS.md
//! says which alert to build on each).
//!
//! ```no_run
//! # #[cfg(feature = "prometheus")]
//! # fn main() -> Result<(), streams_core::metrics_export::MetricsExportError> {
//! let exporter = streams_core::metrics_export::install_prometheus()?;
//! // ... start the app; then, in the app's `GET /metrics` handler:
//! let body: String = exporter.render();
//! # let _ = body;
//! # Ok(())
//! # }
//! # #[cfg(not(feature = "prometheus"))]
//! # fn main() {}
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::record::TaskId;
use crate::runtime::{TaskState, ThreadSnapshot};

/// Why the metrics export could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum MetricsExportError {
    /// A global `metrics` recorder is installed already (only one per process).
    #[error("a metrics recorder is already installed in this process")]
    AlreadyInstalled,
}

/// Whether stream threads publish (see [`enable_publishing`]).
static PUBLISHING: AtomicBool = AtomicBool::new(false);
/// The publish interval, in ms.
static INTERVAL_MS: AtomicU64 = AtomicU64::new(DEFAULT_PUBLISH_INTERVAL.as_millis() as u64);

/// How often each stream thread publishes by default.
pub const DEFAULT_PUBLISH_INTERVAL: Duration = Duration::from_secs(1);

/// Makes every stream thread of the process publish its metrics to the global `metrics`
/// recorder at most once per `interval` (rates and windowed averages are over that
/// interval). For apps installing their own recorder; [`install_prometheus`] calls it.
pub fn enable_publishing(interval: Duration) {
    let ms = u64::try_from(interval.as_millis())
        .unwrap_or(u64::MAX)
        .max(1);
    INTERVAL_MS.store(ms, Ordering::Relaxed);
    PUBLISHING.store(true, Ordering::Relaxed);
}

/// Stops publishing (the recorder keeps the last values).
pub fn disable_publishing() {
    PUBLISHING.store(false, Ordering::Relaxed);
}

/// Whether stream threads publish their metrics.
pub fn is_publishing() -> bool {
    PUBLISHING.load(Ordering::Relaxed)
}

/// Settings of [`install_prometheus_with`].
#[derive(Debug, Clone, PartialEq)]
pub struct ExportOptions {
    /// How often each stream thread publishes (default [`DEFAULT_PUBLISH_INTERVAL`]).
    pub publish_interval: Duration,
    /// A metric not updated for this long leaves the output (the series of a task that
    /// moved to another instance, of a closed app). Default 60 s; at least five publish
    /// intervals are used.
    pub idle_timeout: Duration,
    /// Labels added to every metric (`application_id`, `instance`...).
    pub global_labels: Vec<(String, String)>,
}

impl Default for ExportOptions {
    fn default() -> Self {
        Self {
            publish_interval: DEFAULT_PUBLISH_INTERVAL,
            idle_timeout: Duration::from_secs(60),
            global_labels: Vec::new(),
        }
    }
}

/// The Prometheus exporter: renders the text exposition format for an app's own
/// `GET /metrics` route (serve it with [`PrometheusExporter::CONTENT_TYPE`]).
#[cfg(feature = "prometheus")]
#[derive(Clone)]
pub struct PrometheusExporter {
    handle: metrics_exporter_prometheus::PrometheusHandle,
}

#[cfg(feature = "prometheus")]
impl std::fmt::Debug for PrometheusExporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrometheusExporter").finish_non_exhaustive()
    }
}

#[cfg(feature = "prometheus")]
impl PrometheusExporter {
    /// The `Content-Type` of [`render`](Self::render)'s output.
    pub const CONTENT_TYPE: &'static str = "text/plain; version=0.0.4; charset=utf-8";

    /// Every metric recorded so far in the Prometheus text format (also drops those idle
    /// past the idle timeout).
    pub fn render(&self) -> String {
        self.handle.run_upkeep();
        self.handle.render()
    }
}

/// Installs a Prometheus recorder as the process's global `metrics` recorder, describes
/// the streams metrics, and turns publishing on, with default [`ExportOptions`].
#[cfg(feature = "prometheus")]
pub fn install_prometheus() -> Result<PrometheusExporter, MetricsExportError> {
    install_prometheus_with(ExportOptions::default())
}

/// [`install_prometheus`] with explicit settings.
#[cfg(feature = "prometheus")]
pub fn install_prometheus_with(
    options: ExportOptions,
) -> Result<PrometheusExporter, MetricsExportError> {
    let recorder = prometheus_recorder(&options);
    let handle = recorder.handle();
    ::metrics::set_global_recorder(recorder).map_err(|_| MetricsExportError::AlreadyInstalled)?;
    describe();
    enable_publishing(options.publish_interval);
    Ok(PrometheusExporter { handle })
}

#[cfg(feature = "prometheus")]
fn prometheus_recorder(options: &ExportOptions) -> metrics_exporter_prometheus::PrometheusRecorder {
    let idle = options
        .idle_timeout
        .max(options.publish_interval.saturating_mul(5));
    let mut builder = metrics_exporter_prometheus::PrometheusBuilder::new()
        .idle_timeout(metrics_util::MetricKindMask::ALL, Some(idle));
    for (k, v) in &options.global_labels {
        builder = builder.add_global_label(k.clone(), v.clone());
    }
    builder.build_recorder()
}

/// What a metric is to the recorder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    /// Only ever grows (a total).
    Counter,
    /// Goes up and down (a rate, a latency, a lag).
    Gauge,
}

/// One exported metric: its name, kind, labels and meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetricInfo {
    /// The exported name.
    pub name: &'static str,
    /// Counter or gauge.
    pub kind: MetricKind,
    /// Its labels (besides any global ones).
    pub labels: &'static [&'static str],
    /// What it measures.
    pub help: &'static str,
}

const TH: &[&str] = &["thread_id"];
const TA: &[&str] = &["thread_id", "task_id"];
const TP: &[&str] = &["thread_id", "topic", "partition"];
const SB: &[&str] = &["thread_id", "task_id", "topic", "partition"];
const DR: &[&str] = &["thread_id", "task_id", "reason"];

macro_rules! metric_names {
    ($($id:ident = $name:literal, $kind:ident, $labels:expr, $help:literal;)*) => {
        $(const $id: &str = $name;)*
        /// Every metric the stream threads publish.
        pub const METRICS: &[MetricInfo] = &[
            $(MetricInfo { name: $name, kind: MetricKind::$kind, labels: $labels, help: $help },)*
        ];
    };
}

metric_names! {
    POLL_TOTAL = "kafka_streams_stream_thread_poll_total", Counter, TH, "Consumer polls of the thread.";
    POLL_RATE = "kafka_streams_stream_thread_poll_rate", Gauge, TH, "Polls per second over the last publish interval.";
    POLL_LATENCY_AVG = "kafka_streams_stream_thread_poll_latency_avg", Gauge, TH, "Mean time a poll took over the last interval, ms.";
    POLL_LATENCY_MAX = "kafka_streams_stream_thread_poll_latency_max", Gauge, TH, "Longest poll of the last interval, ms.";
    POLL_RECORDS_AVG = "kafka_streams_stream_thread_poll_records_avg", Gauge, TH, "Records returned per poll over the last interval.";
    BLOCKED_TIME = "kafka_streams_stream_thread_blocked_time_ns_total", Counter, TH, "Time spent blocked in the consumer's poll, ns.";
    PROCESS_TOTAL = "kafka_streams_stream_thread_process_total", Counter, TH, "Records processed by the thread.";
    PROCESS_RATE = "kafka_streams_stream_thread_process_rate", Gauge, TH, "Records processed per second over the last interval.";
    PROCESS_LATENCY_AVG = "kafka_streams_stream_thread_process_latency_avg", Gauge, TH, "Mean time to process a record over the last interval, ms.";
    COMMIT_TOTAL = "kafka_streams_stream_thread_commit_total", Counter, TH, "Commits of the thread.";
    COMMIT_RATE = "kafka_streams_stream_thread_commit_rate", Gauge, TH, "Commits per second over the last interval.";
    COMMIT_LATENCY_AVG = "kafka_streams_stream_thread_commit_latency_avg", Gauge, TH, "Mean time a commit took over the last interval, ms.";
    COMMIT_LATENCY_MAX = "kafka_streams_stream_thread_commit_latency_max", Gauge, TH, "Longest commit of the last interval, ms.";
    PUNCTUATE_TOTAL = "kafka_streams_stream_thread_punctuate_total", Counter, TH, "Punctuator firings of the thread's tasks.";
    PUNCTUATE_RATE = "kafka_streams_stream_thread_punctuate_rate", Gauge, TH, "Punctuator firings per second over the last interval.";
    PUNCTUATE_LATENCY_AVG = "kafka_streams_stream_thread_punctuate_latency_avg", Gauge, TH, "Mean time of a punctuation round that fired over the last interval, ms.";
    PUNCTUATE_LATENCY_MAX = "kafka_streams_stream_thread_punctuate_latency_max", Gauge, TH, "Longest punctuation round of the last interval, ms.";
    TASK_CREATED_TOTAL = "kafka_streams_stream_thread_task_created_total", Counter, TH, "Tasks (active or standby) the thread took on, as seen at each publish.";
    TASK_CREATED_RATE = "kafka_streams_stream_thread_task_created_rate", Gauge, TH, "Tasks created per second over the last interval.";
    TASK_CLOSED_TOTAL = "kafka_streams_stream_thread_task_closed_total", Counter, TH, "Tasks (active or standby) the thread gave up, as seen at each publish.";
    TASK_CLOSED_RATE = "kafka_streams_stream_thread_task_closed_rate", Gauge, TH, "Tasks closed per second over the last interval.";
    ACTIVE_TASKS = "kafka_streams_stream_thread_active_tasks", Gauge, TH, "Active tasks of the thread (any state but standby).";
    STANDBY_TASKS = "kafka_streams_stream_thread_standby_tasks", Gauge, TH, "Standby tasks of the thread.";
    PRODUCTION_ERRORS = "kafka_streams_stream_thread_production_errors_skipped_total", Counter, TH, "Output records the producer could not deliver, skipped by the production handler.";
    CACHE_USED = "kafka_streams_record_cache_used_bytes", Gauge, TH, "Bytes the thread's record caches hold.";
    CACHE_MAX = "kafka_streams_record_cache_max_bytes", Gauge, TH, "The thread's share of statestore.cache.max.bytes.";
    REQUEST_LATENCY = "kafka_consumer_request_latency_avg", Gauge, TH, "Mean broker round trip the consumer reported (Kafka only), ms.";
    TASK_PROCESS_TOTAL = "kafka_streams_stream_task_process_total", Counter, TA, "Records the task processed.";
    TASK_PROCESS_RATE = "kafka_streams_stream_task_process_rate", Gauge, TA, "Records the task processed per second over the last interval.";
    TASK_DROPPED_TOTAL = "kafka_streams_stream_task_dropped_records_total", Counter, TA, "Records the task dropped or skipped, all reasons.";
    TASK_DROPPED_REASON = "kafka_streams_stream_task_dropped_records_by_reason_total", Counter, DR, "Dropped records by reason: skipped (undeserializable or invalid timestamp), null (null key or value where the type has none), operator (late for a closed window, unjoinable...).";
    TASK_DEAD_LETTERED = "kafka_streams_stream_task_dead_lettered_records_total", Counter, TA, "Skipped records sent to the dead-letter topic.";
    TASK_ENFORCED_TOTAL = "kafka_streams_stream_task_enforced_processing_total", Counter, TA, "Records processed while an input partition was empty (max.task.idle.ms passed).";
    TASK_ENFORCED_RATE = "kafka_streams_stream_task_enforced_processing_rate", Gauge, TA, "Enforced processing per second over the last interval.";
    TASK_PUNCTUATE_TOTAL = "kafka_streams_stream_task_punctuate_total", Counter, TA, "Punctuator firings of the task.";
    TASK_IDLE_ADVANCES = "kafka_streams_stream_task_idle_advances_total", Counter, TA, "Times stream time moved on without a record.";
    TASK_BUFFER = "kafka_streams_stream_task_active_buffer_count", Gauge, TA, "Records fetched and queued in the task, not processed yet.";
    TASK_LAG = "kafka_streams_stream_task_records_lag", Gauge, TA, "Input records of the task not processed yet (consumer lag plus queued).";
    E2E_MIN = "kafka_streams_stream_task_record_e2e_latency_min", Gauge, TA, "Least end-to-end latency (wall clock minus record timestamp, after processing) of the last interval, ms.";
    E2E_AVG = "kafka_streams_stream_task_record_e2e_latency_avg", Gauge, TA, "Mean end-to-end latency of the last interval, ms.";
    E2E_MAX = "kafka_streams_stream_task_record_e2e_latency_max", Gauge, TA, "Greatest end-to-end latency of the last interval, ms.";
    RESTORE_TOTAL = "kafka_streams_stream_task_restore_total", Counter, TA, "Changelog records restored into the task (standby: applied).";
    RESTORE_REMAINING = "kafka_streams_stream_task_restore_remaining_records", Gauge, TA, "Changelog records still to restore before the task runs.";
    RECORDS_LAG = "kafka_consumer_records_lag", Gauge, TP, "Records between the consumer's position and the partition's end.";
    INPUT_LAG = "kafka_streams_stream_task_input_records_lag", Gauge, SB, "Records of an input partition the task has not processed yet (end minus the next offset to process: the group lag once committed).";
    STANDBY_LAG = "kafka_streams_standby_records_lag", Gauge, SB, "Changelog records a standby task has not applied yet.";
}

/// Describes every metric to the global recorder (its `# HELP` lines).
pub fn describe() {
    for m in METRICS {
        match m.kind {
            MetricKind::Counter => ::metrics::describe_counter!(m.name, m.help),
            MetricKind::Gauge => ::metrics::describe_gauge!(m.name, m.help),
        }
    }
}

/// Minimum, sum, maximum and count of latencies in a window (the hot path only adds and
/// compares).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct LatencyWindow {
    min: i64,
    max: i64,
    sum: i64,
    count: u64,
}

impl LatencyWindow {
    /// Adds one latency, in ms.
    #[inline]
    pub(crate) fn record(&mut self, ms: i64) {
        if self.count == 0 {
            self.min = ms;
            self.max = ms;
        } else {
            self.min = self.min.min(ms);
            self.max = self.max.max(ms);
        }
        self.sum = self.sum.saturating_add(ms);
        self.count += 1;
    }

    /// The window so far (if anything was recorded), and a new window.
    pub(crate) fn take(&mut self) -> Option<LatencyWindow> {
        (self.count > 0).then(|| std::mem::take(self))
    }

    fn avg(&self) -> f64 {
        self.sum as f64 / self.count.max(1) as f64
    }
}

/// What a task contributes to a publish besides its [`TaskSnapshot`](crate::runtime::TaskSnapshot).
#[derive(Debug, Clone)]
pub(crate) struct TaskExtra {
    pub(crate) id: TaskId,
    /// Records queued in the task.
    pub(crate) buffered: usize,
    /// End-to-end latencies since the last publish.
    pub(crate) e2e: Option<LatencyWindow>,
}

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
}

/// Totals as of the last publish, for rates and windowed averages.
#[derive(Debug, Clone, Copy, Default)]
struct Previous {
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
struct TaskPrevious {
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
            task_created: 0,
            task_closed: 0,
            partitions: BTreeSet::new(),
            input_partitions: BTreeSet::new(),
            standby_partitions: BTreeSet::new(),
        }
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn gauge(name: &'static str, labels: &[(&'static str, String)], value: f64) {
    ::metrics::gauge!(name, labels).set(value);
}

fn counter(name: &'static str, labels: &[(&'static str, String)], value: u64) {
    ::metrics::counter!(name, labels).absolute(value);
}

/// `time / n` in ms (0 when `n` is 0).
fn avg_ms(time: Duration, n: u64) -> f64 {
    if n == 0 { 0.0 } else { ms(time) / n as f64 }
}

/// Sets the lag gauge `name` of each (task, topic, partition) in `lags`, and to 0 those
/// in `published` (last time's) that are gone; `published` becomes this time's.
fn publish_task_lags(
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

impl ThreadRecorder {
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

        counter(POLL_TOTAL, &th, snapshot.polls);
        gauge(POLL_RATE, &th, rate(snapshot.polls, p.polls));
        let polls = snapshot.polls.saturating_sub(p.polls);
        gauge(
            POLL_LATENCY_AVG,
            &th,
            avg_ms(input.poll_time.saturating_sub(p.poll_time), polls),
        );
        gauge(
            POLL_LATENCY_MAX,
            &th,
            ms(std::mem::take(&mut self.poll_max)),
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
        gauge(
            COMMIT_LATENCY_AVG,
            &th,
            avg_ms(
                input.commit_time.saturating_sub(p.commit_time),
                snapshot.commits.saturating_sub(p.commits),
            ),
        );
        gauge(
            COMMIT_LATENCY_MAX,
            &th,
            ms(std::mem::take(&mut self.commit_max)),
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
        gauge(
            PUNCTUATE_LATENCY_AVG,
            &th,
            avg_ms(
                self.punctuate_time.saturating_sub(p.punctuate_time),
                self.punctuate_rounds.saturating_sub(p.punctuate_rounds),
            ),
        );
        gauge(
            PUNCTUATE_LATENCY_MAX,
            &th,
            ms(std::mem::take(&mut self.punctuate_max)),
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
        }
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

#[cfg(all(test, feature = "prometheus"))]
mod tests {
    use super::*;
    use crate::metrics::TaskMetrics;
    use crate::runtime::TaskSnapshot;

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
                tasks: vec![TaskExtra {
                    id: TaskId {
                        subtopology: 0,
                        partition: 3,
                    },
                    buffered: 4,
                    e2e: Some(e2e),
                }],
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
    fn names_are_unique_and_follow_the_scheme() {
        let mut seen = BTreeSet::new();
        for m in METRICS {
            assert!(seen.insert(m.name), "{} twice", m.name);
            assert!(
                m.name.starts_with("kafka_streams_") || m.name.starts_with("kafka_consumer_"),
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
}
