//! Metrics: counters per task, summed per application.

use std::ops::AddAssign;

/// Counters of one task (or, summed, of an application).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TaskMetrics {
    /// Records taken from input queues and processed.
    pub processed: u64,
    /// Records skipped: undeserializable (log-and-continue or dead-letter) or with an invalid
    /// timestamp (skip policy). Kafka's `skipped-records` / `dropped-records`.
    pub skipped_records: u64,
    /// Of the skipped records, those sent to the dead-letter topic.
    pub dead_lettered: u64,
    /// Records dropped by operators (late records for closed windows, for example).
    pub dropped_records: u64,
    /// Punctuator firings.
    pub punctuations: u64,
    /// Times stream time moved on without a record (idle advance).
    pub idle_advances: u64,
    /// Records processed while an input partition of the task was empty: it was caught
    /// up and `max.task.idle.ms` had passed, so the task did not wait for it (Kafka's
    /// `enforced-processing-total`). Only tasks with several input partitions count.
    pub enforced_processing: u64,
    /// Of the dropped records, those with a null key or value for a key or value type that
    /// has no null (not an `Option`): skipped at the source.
    pub null_records: u64,
}

impl AddAssign for TaskMetrics {
    fn add_assign(&mut self, o: Self) {
        self.processed += o.processed;
        self.skipped_records += o.skipped_records;
        self.dead_lettered += o.dead_lettered;
        self.dropped_records += o.dropped_records;
        self.punctuations += o.punctuations;
        self.idle_advances += o.idle_advances;
        self.enforced_processing += o.enforced_processing;
        self.null_records += o.null_records;
    }
}
