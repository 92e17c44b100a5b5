//! The catalog of every metric the stream threads publish: names, kinds, labels, levels
//! and help ([`METRICS`], [`describe`]).

use crate::config::RecordingLevel;

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

pub(super) const TH: &[&str] = &["thread_id"];
pub(super) const TA: &[&str] = &["thread_id", "task_id"];
pub(super) const TP: &[&str] = &["thread_id", "topic", "partition"];
pub(super) const SB: &[&str] = &["thread_id", "task_id", "topic", "partition"];
pub(super) const DR: &[&str] = &["thread_id", "task_id", "reason"];
pub(super) const ST: &[&str] = &["thread_id", "task_id", "store", "store_scope"];
pub(super) const RC: &[&str] = &["thread_id", "task_id", "store"];
pub(super) const PN: &[&str] = &["thread_id", "task_id", "processor_node_id"];
pub(super) const LG: &[&str] = &["topic", "partition"];

macro_rules! metric_names {
    ($($id:ident = $name:literal, $kind:ident, $labels:expr, $level:ident, $help:literal;)*) => {
        $(pub(super) const $id: &str = $name;)*
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
pub(super) const STATE_OPS: &[(&str, [&str; 4])] = &[
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
