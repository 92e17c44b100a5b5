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

use std::sync::Arc;

use crate::config::RecordingLevel;
use crate::record::TaskId;
use crate::snapshot::{TaskState, ThreadSnapshot};

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
    /// The `metrics.recording.level` from which it is recorded.
    pub level: RecordingLevel,
    /// What it measures.
    pub help: &'static str,
}

const TH: &[&str] = &["thread_id"];
const TA: &[&str] = &["thread_id", "task_id"];
const TP: &[&str] = &["thread_id", "topic", "partition"];
const SB: &[&str] = &["thread_id", "task_id", "topic", "partition"];
const DR: &[&str] = &["thread_id", "task_id", "reason"];
const ST: &[&str] = &["thread_id", "task_id", "store", "store_scope"];
const RC: &[&str] = &["thread_id", "task_id", "store"];
const PN: &[&str] = &["thread_id", "task_id", "processor_node_id"];
const LG: &[&str] = &["topic", "partition"];

macro_rules! metric_names {
    ($($id:ident = $name:literal, $kind:ident, $labels:expr, $level:ident, $help:literal;)*) => {
        $(const $id: &str = $name;)*
        /// Every metric the stream threads publish.
        pub const METRICS: &[MetricInfo] = &[
            $(MetricInfo {
                name: $name,
                kind: MetricKind::$kind,
                labels: $labels,
                level: RecordingLevel::$level,
                help: $help,
            },)*
        ];
    };
}

metric_names! {
    POLL_TOTAL = "kafka_streams_stream_thread_poll_total", Counter, TH, Info, "Consumer polls of the thread.";
    POLL_RATE = "kafka_streams_stream_thread_poll_rate", Gauge, TH, Info, "Polls per second over the last publish interval.";
    POLL_LATENCY_AVG = "kafka_streams_stream_thread_poll_latency_avg", Gauge, TH, Info, "Mean time a poll took over the last interval, ms.";
    POLL_LATENCY_MAX = "kafka_streams_stream_thread_poll_latency_max", Gauge, TH, Info, "Longest poll of the last interval, ms.";
    POLL_RECORDS_AVG = "kafka_streams_stream_thread_poll_records_avg", Gauge, TH, Info, "Records returned per poll over the last interval.";
    BLOCKED_TIME = "kafka_streams_stream_thread_blocked_time_ns_total", Counter, TH, Info, "Time spent blocked in the consumer's poll, ns.";
    PROCESS_TOTAL = "kafka_streams_stream_thread_process_total", Counter, TH, Info, "Records processed by the thread.";
    PROCESS_RATE = "kafka_streams_stream_thread_process_rate", Gauge, TH, Info, "Records processed per second over the last interval.";
    PROCESS_LATENCY_AVG = "kafka_streams_stream_thread_process_latency_avg", Gauge, TH, Info, "Mean time to process a record over the last interval, ms.";
    COMMIT_TOTAL = "kafka_streams_stream_thread_commit_total", Counter, TH, Info, "Commits of the thread.";
    COMMIT_RATE = "kafka_streams_stream_thread_commit_rate", Gauge, TH, Info, "Commits per second over the last interval.";
    COMMIT_LATENCY_AVG = "kafka_streams_stream_thread_commit_latency_avg", Gauge, TH, Info, "Mean time a commit took over the last interval, ms.";
    COMMIT_LATENCY_MAX = "kafka_streams_stream_thread_commit_latency_max", Gauge, TH, Info, "Longest commit of the last interval, ms.";
    PUNCTUATE_TOTAL = "kafka_streams_stream_thread_punctuate_total", Counter, TH, Info, "Punctuator firings of the thread's tasks.";
    PUNCTUATE_RATE = "kafka_streams_stream_thread_punctuate_rate", Gauge, TH, Info, "Punctuator firings per second over the last interval.";
    PUNCTUATE_LATENCY_AVG = "kafka_streams_stream_thread_punctuate_latency_avg", Gauge, TH, Info, "Mean time of a punctuation round that fired over the last interval, ms.";
    PUNCTUATE_LATENCY_MAX = "kafka_streams_stream_thread_punctuate_latency_max", Gauge, TH, Info, "Longest punctuation round of the last interval, ms.";
    TASK_CREATED_TOTAL = "kafka_streams_stream_thread_task_created_total", Counter, TH, Info, "Tasks (active or standby) the thread took on, as seen at each publish.";
    TASK_CREATED_RATE = "kafka_streams_stream_thread_task_created_rate", Gauge, TH, Info, "Tasks created per second over the last interval.";
    TASK_CLOSED_TOTAL = "kafka_streams_stream_thread_task_closed_total", Counter, TH, Info, "Tasks (active or standby) the thread gave up, as seen at each publish.";
    TASK_CLOSED_RATE = "kafka_streams_stream_thread_task_closed_rate", Gauge, TH, Info, "Tasks closed per second over the last interval.";
    ACTIVE_TASKS = "kafka_streams_stream_thread_active_tasks", Gauge, TH, Info, "Active tasks of the thread (any state but standby).";
    STANDBY_TASKS = "kafka_streams_stream_thread_standby_tasks", Gauge, TH, Info, "Standby tasks of the thread.";
    PRODUCTION_ERRORS = "kafka_streams_stream_thread_production_errors_skipped_total", Counter, TH, Info, "Output records the producer could not deliver, skipped by the production handler.";
    CACHE_USED = "kafka_streams_record_cache_used_bytes", Gauge, TH, Info, "Bytes the thread's record caches hold.";
    CACHE_MAX = "kafka_streams_record_cache_max_bytes", Gauge, TH, Info, "The thread's share of statestore.cache.max.bytes.";
    LOG_SEGMENTS = "kafka_log_num_log_segments", Gauge, LG, Info, "Segments of the embedded engine's partition.";
    LOG_SIZE = "kafka_log_size", Gauge, LG, Info, "Bytes of the embedded engine's partition's segment files.";
    LOG_START = "kafka_log_log_start_offset", Gauge, LG, Info, "First readable offset of the embedded engine's partition.";
    LOG_END = "kafka_log_log_end_offset", Gauge, LG, Info, "Offset the next record appended to the embedded engine's partition gets.";
    LOG_APPENDED = "kafka_log_appended_offsets_total", Counter, LG, Info, "Offsets the embedded engine's partition has taken (its end offset): rate() of it is the append rate.";
    REQUEST_LATENCY = "kafka_consumer_request_latency_avg", Gauge, TH, Info, "Mean broker round trip the consumer reported (Kafka only), ms.";
    TASK_PROCESS_TOTAL = "kafka_streams_stream_task_process_total", Counter, TA, Info, "Records the task processed.";
    TASK_PROCESS_RATE = "kafka_streams_stream_task_process_rate", Gauge, TA, Info, "Records the task processed per second over the last interval.";
    TASK_DROPPED_TOTAL = "kafka_streams_stream_task_dropped_records_total", Counter, TA, Info, "Records the task dropped or skipped, all reasons.";
    TASK_DROPPED_REASON = "kafka_streams_stream_task_dropped_records_by_reason_total", Counter, DR, Info, "Dropped records by reason: skipped (undeserializable or invalid timestamp), null (null key or value where the type has none), operator (late for a closed window, unjoinable...).";
    TASK_DEAD_LETTERED = "kafka_streams_stream_task_dead_lettered_records_total", Counter, TA, Info, "Skipped records sent to the dead-letter topic.";
    TASK_ENFORCED_TOTAL = "kafka_streams_stream_task_enforced_processing_total", Counter, TA, Info, "Records processed while an input partition was empty (max.task.idle.ms passed).";
    TASK_ENFORCED_RATE = "kafka_streams_stream_task_enforced_processing_rate", Gauge, TA, Info, "Enforced processing per second over the last interval.";
    TASK_PUNCTUATE_TOTAL = "kafka_streams_stream_task_punctuate_total", Counter, TA, Info, "Punctuator firings of the task.";
    TASK_IDLE_ADVANCES = "kafka_streams_stream_task_idle_advances_total", Counter, TA, Info, "Times stream time moved on without a record.";
    TASK_BUFFER = "kafka_streams_stream_task_active_buffer_count", Gauge, TA, Info, "Records fetched and queued in the task, not processed yet.";
    TASK_LAG = "kafka_streams_stream_task_records_lag", Gauge, TA, Info, "Input records of the task not processed yet (consumer lag plus queued).";
    E2E_MIN = "kafka_streams_stream_task_record_e2e_latency_min", Gauge, TA, Info, "Least end-to-end latency (wall clock minus record timestamp, after processing) of the last interval, ms.";
    E2E_AVG = "kafka_streams_stream_task_record_e2e_latency_avg", Gauge, TA, Info, "Mean end-to-end latency of the last interval, ms.";
    E2E_MAX = "kafka_streams_stream_task_record_e2e_latency_max", Gauge, TA, Info, "Greatest end-to-end latency of the last interval, ms.";
    RESTORE_TOTAL = "kafka_streams_stream_task_restore_total", Counter, TA, Info, "Changelog records restored into the task (standby: applied).";
    RESTORE_REMAINING = "kafka_streams_stream_task_restore_remaining_records", Gauge, TA, Info, "Changelog records still to restore before the task runs.";
    RECORDS_LAG = "kafka_consumer_records_lag", Gauge, TP, Info, "Records between the consumer's position and the partition's end.";
    INPUT_LAG = "kafka_streams_stream_task_input_records_lag", Gauge, SB, Info, "Records of an input partition the task has not processed yet (end minus the next offset to process: the group lag once committed).";
    STANDBY_LAG = "kafka_streams_standby_records_lag", Gauge, SB, Info, "Changelog records a standby task has not applied yet.";
    LATENESS_AVG = "kafka_streams_stream_task_record_lateness_avg", Gauge, TA, Debug, "Mean lateness of the task's records over the last interval (stream time before the record minus its timestamp, 0 when not late), ms.";
    LATENESS_MAX = "kafka_streams_stream_task_record_lateness_max", Gauge, TA, Debug, "Greatest record lateness of the last interval, ms.";
    NODE_E2E_MIN = "kafka_streams_stream_processor_node_record_e2e_latency_min", Gauge, PN, Info, "Least end-to-end latency at a source or terminal node over the last interval (wall clock of the processing round minus the record's timestamp), ms.";
    NODE_E2E_AVG = "kafka_streams_stream_processor_node_record_e2e_latency_avg", Gauge, PN, Info, "Mean end-to-end latency at a source or terminal node over the last interval, ms.";
    NODE_E2E_MAX = "kafka_streams_stream_processor_node_record_e2e_latency_max", Gauge, PN, Info, "Greatest end-to-end latency at a source or terminal node over the last interval, ms.";
    NODE_PROCESS_TOTAL = "kafka_streams_stream_processor_node_process_total", Counter, PN, Debug, "Records the processor node received (a source: records it took from its queues).";
    NODE_PROCESS_RATE = "kafka_streams_stream_processor_node_process_rate", Gauge, PN, Debug, "Records the node received per second over the last interval.";
    STATE_PUT_TOTAL = "kafka_streams_stream_state_put_total", Counter, ST, Debug, "Writes to the store (put, put_if_absent, put_all; window and session put).";
    STATE_PUT_RATE = "kafka_streams_stream_state_put_rate", Gauge, ST, Debug, "Writes per second over the last interval.";
    STATE_PUT_LATENCY_AVG = "kafka_streams_stream_state_put_latency_avg", Gauge, ST, Debug, "Mean write time over the last interval, ms.";
    STATE_PUT_LATENCY_MAX = "kafka_streams_stream_state_put_latency_max", Gauge, ST, Debug, "Longest write of the last interval, ms.";
    STATE_GET_TOTAL = "kafka_streams_stream_state_get_total", Counter, ST, Debug, "Point reads of the store (get; window fetch of one window; session fetch of one session).";
    STATE_GET_RATE = "kafka_streams_stream_state_get_rate", Gauge, ST, Debug, "Point reads per second over the last interval.";
    STATE_GET_LATENCY_AVG = "kafka_streams_stream_state_get_latency_avg", Gauge, ST, Debug, "Mean point-read time over the last interval, ms.";
    STATE_GET_LATENCY_MAX = "kafka_streams_stream_state_get_latency_max", Gauge, ST, Debug, "Longest point read of the last interval, ms.";
    STATE_DELETE_TOTAL = "kafka_streams_stream_state_delete_total", Counter, ST, Debug, "Deletes (key-value delete, session remove).";
    STATE_DELETE_RATE = "kafka_streams_stream_state_delete_rate", Gauge, ST, Debug, "Deletes per second over the last interval.";
    STATE_DELETE_LATENCY_AVG = "kafka_streams_stream_state_delete_latency_avg", Gauge, ST, Debug, "Mean delete time over the last interval, ms.";
    STATE_DELETE_LATENCY_MAX = "kafka_streams_stream_state_delete_latency_max", Gauge, ST, Debug, "Longest delete of the last interval, ms.";
    STATE_RANGE_TOTAL = "kafka_streams_stream_state_range_total", Counter, ST, Debug, "Range reads (range, reverse_range, all, prefix_scan, window and session range fetches).";
    STATE_RANGE_RATE = "kafka_streams_stream_state_range_rate", Gauge, ST, Debug, "Range reads per second over the last interval.";
    STATE_RANGE_LATENCY_AVG = "kafka_streams_stream_state_range_latency_avg", Gauge, ST, Debug, "Mean range-read time (call to iterator dropped) over the last interval, ms.";
    STATE_RANGE_LATENCY_MAX = "kafka_streams_stream_state_range_latency_max", Gauge, ST, Debug, "Longest range read of the last interval, ms.";
    STATE_FLUSH_TOTAL = "kafka_streams_stream_state_flush_total", Counter, ST, Debug, "Flushes of the store (on commit).";
    STATE_FLUSH_RATE = "kafka_streams_stream_state_flush_rate", Gauge, ST, Debug, "Flushes per second over the last interval.";
    STATE_FLUSH_LATENCY_AVG = "kafka_streams_stream_state_flush_latency_avg", Gauge, ST, Debug, "Mean flush time over the last interval, ms.";
    STATE_FLUSH_LATENCY_MAX = "kafka_streams_stream_state_flush_latency_max", Gauge, ST, Debug, "Longest flush of the last interval, ms.";
    STATE_RESTORE_TOTAL = "kafka_streams_stream_state_restore_total", Counter, ST, Debug, "Restoration batches applied to the store (changelog records restored: kafka_streams_stream_task_restore_total).";
    STATE_RESTORE_RATE = "kafka_streams_stream_state_restore_rate", Gauge, ST, Debug, "Restoration batches per second over the last interval.";
    STATE_RESTORE_LATENCY_AVG = "kafka_streams_stream_state_restore_latency_avg", Gauge, ST, Debug, "Mean time to apply a restoration batch over the last interval, ms.";
    STATE_RESTORE_LATENCY_MAX = "kafka_streams_stream_state_restore_latency_max", Gauge, ST, Debug, "Longest restoration batch of the last interval, ms.";
    CACHE_HIT_RATIO_AVG = "kafka_streams_record_cache_hit_ratio_avg", Gauge, RC, Debug, "Mean over the last interval of the store's record-cache hit ratio, taken at each read (hits over all reads of the cache so far).";
    CACHE_HIT_RATIO_MIN = "kafka_streams_record_cache_hit_ratio_min", Gauge, RC, Debug, "Least hit ratio taken in the last interval.";
    CACHE_HIT_RATIO_MAX = "kafka_streams_record_cache_hit_ratio_max", Gauge, RC, Debug, "Greatest hit ratio taken in the last interval.";
    SUPPRESSION_SIZE_AVG = "kafka_streams_stream_state_suppression_buffer_size_avg", Gauge, PN, Debug, "Mean bytes (keys and values) in the suppression buffer over the last interval, sampled after each record.";
    SUPPRESSION_SIZE_MAX = "kafka_streams_stream_state_suppression_buffer_size_max", Gauge, PN, Debug, "Most bytes in the suppression buffer in the last interval.";
    SUPPRESSION_COUNT_AVG = "kafka_streams_stream_state_suppression_buffer_count_avg", Gauge, PN, Debug, "Mean records (keys) in the suppression buffer over the last interval.";
    SUPPRESSION_COUNT_MAX = "kafka_streams_stream_state_suppression_buffer_count_max", Gauge, PN, Debug, "Most records in the suppression buffer in the last interval.";
    ROCKSDB_MEMTABLES = "kafka_streams_stream_state_size_all_mem_tables", Gauge, RC, Info, "RocksDB cur-size-all-mem-tables of the store: bytes of its memtables, sampled at publish.";
    ROCKSDB_BLOCK_CACHE_USAGE = "kafka_streams_stream_state_block_cache_usage", Gauge, RC, Info, "RocksDB block-cache-usage: bytes in the block cache, which every store of the process shares (memtables charged to it).";
    ROCKSDB_BLOCK_CACHE_CAPACITY = "kafka_streams_stream_state_block_cache_capacity", Gauge, RC, Info, "RocksDB block-cache-capacity: the shared block cache's budget (statestore.memory.bytes).";
    ROCKSDB_PENDING_COMPACTION = "kafka_streams_stream_state_estimate_pending_compaction_bytes", Gauge, RC, Info, "RocksDB estimate-pending-compaction-bytes of the store.";
    ROCKSDB_NUM_KEYS = "kafka_streams_stream_state_estimate_num_keys", Gauge, RC, Info, "RocksDB estimate-num-keys of the store.";
}

/// Per store operation (as [`streams_state::StoreMetrics::ops`] names it): its total,
/// rate, mean and greatest latency.
const STATE_OPS: &[(&str, [&str; 4])] = &[
    (
        "put",
        [
            STATE_PUT_TOTAL,
            STATE_PUT_RATE,
            STATE_PUT_LATENCY_AVG,
            STATE_PUT_LATENCY_MAX,
        ],
    ),
    (
        "get",
        [
            STATE_GET_TOTAL,
            STATE_GET_RATE,
            STATE_GET_LATENCY_AVG,
            STATE_GET_LATENCY_MAX,
        ],
    ),
    (
        "delete",
        [
            STATE_DELETE_TOTAL,
            STATE_DELETE_RATE,
            STATE_DELETE_LATENCY_AVG,
            STATE_DELETE_LATENCY_MAX,
        ],
    ),
    (
        "range",
        [
            STATE_RANGE_TOTAL,
            STATE_RANGE_RATE,
            STATE_RANGE_LATENCY_AVG,
            STATE_RANGE_LATENCY_MAX,
        ],
    ),
    (
        "flush",
        [
            STATE_FLUSH_TOTAL,
            STATE_FLUSH_RATE,
            STATE_FLUSH_LATENCY_AVG,
            STATE_FLUSH_LATENCY_MAX,
        ],
    ),
    (
        "restore",
        [
            STATE_RESTORE_TOTAL,
            STATE_RESTORE_RATE,
            STATE_RESTORE_LATENCY_AVG,
            STATE_RESTORE_LATENCY_MAX,
        ],
    ),
];

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

/// Sizes of a suppression buffer sampled in a window: bytes and records, mean and most.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct BufferWindow {
    samples: u64,
    bytes_sum: u64,
    bytes_max: u64,
    count_sum: u64,
    count_max: u64,
}

impl BufferWindow {
    /// Adds a sample: the buffer holds `bytes` in `count` records.
    #[inline]
    pub(crate) fn record(&mut self, bytes: usize, count: usize) {
        let (bytes, count) = (bytes as u64, count as u64);
        self.samples += 1;
        self.bytes_sum = self.bytes_sum.saturating_add(bytes);
        self.bytes_max = self.bytes_max.max(bytes);
        self.count_sum = self.count_sum.saturating_add(count);
        self.count_max = self.count_max.max(count);
    }

    /// The window so far (if anything was recorded), and a new window.
    pub(crate) fn take(&mut self) -> Option<BufferWindow> {
        (self.samples > 0).then(|| std::mem::take(self))
    }
}

/// A processor node's share of a publish.
#[derive(Debug, Clone)]
pub(crate) struct NodeExtra {
    pub(crate) name: Arc<str>,
    /// Records the node received so far (`DEBUG` only).
    pub(crate) processed: Option<u64>,
    /// End-to-end latencies since the last publish (source and terminal nodes).
    pub(crate) e2e: Option<LatencyWindow>,
}

/// A store's share of a publish.
#[derive(Debug, Clone)]
pub(crate) struct StoreExtra {
    pub(crate) name: Arc<str>,
    /// Kafka's `[store-scope]` and the operations of the window (`DEBUG` only).
    pub(crate) ops: Option<(
        &'static str,
        Vec<(&'static str, streams_state::metrics::OpWindow)>,
    )>,
    /// The record cache's hit ratio over the window (cached stores, `DEBUG` only).
    pub(crate) hit_ratio: Option<streams_state::HitRatioWindow>,
    /// RocksDB properties sampled now (RocksDB key-value stores).
    pub(crate) rocksdb: Option<streams_state::RocksDbProperties>,
}

/// What a task contributes to a publish besides its [`TaskSnapshot`](crate::runtime::TaskSnapshot).
#[derive(Debug, Clone)]
pub(crate) struct TaskExtra {
    pub(crate) id: TaskId,
    /// Records queued in the task.
    pub(crate) buffered: usize,
    /// End-to-end latencies since the last publish.
    pub(crate) e2e: Option<LatencyWindow>,
    /// Record lateness since the last publish (`DEBUG` only).
    pub(crate) lateness: Option<LatencyWindow>,
    pub(crate) nodes: Vec<NodeExtra>,
    pub(crate) stores: Vec<StoreExtra>,
    /// Per suppression node: its buffer's sizes since the last publish (`DEBUG` only).
    pub(crate) suppression: Vec<(Arc<str>, BufferWindow)>,
}

impl TaskExtra {
    /// A task's share with `buffered` records queued and end-to-end latencies `e2e`; the
    /// node, store and suppression parts empty.
    pub(crate) fn new(id: TaskId, buffered: usize, e2e: Option<LatencyWindow>) -> Self {
        Self {
            id,
            buffered,
            e2e,
            lateness: None,
            nodes: Vec::new(),
            stores: Vec::new(),
            suppression: Vec::new(),
        }
    }
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
    /// The embedded engine's partitions (none on Kafka).
    pub(crate) log: Vec<streams_state::PartitionStats>,
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

/// `ns` in ms.
fn ns_ms(ns: u64) -> f64 {
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

#[cfg(all(test, feature = "prometheus"))]
mod tests {
    use super::*;
    use crate::metrics::TaskMetrics;
    use crate::snapshot::TaskSnapshot;

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
}
