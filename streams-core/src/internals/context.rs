//! A task's context: what a node gets while it runs (its task's stores, output, clocks,
//! punctuation schedules, changelog buffer, metrics), and the records a task produces.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use streams_state::{ChangelogSink, RocksDbResources, StateError, ThreadCache};

use tracing::warn;

use crate::config::{DeserializationHandler, StreamsConfig, dlq_headers};
use crate::error::{Result, StreamsError};
use crate::metrics::TaskMetrics;
use crate::punctuation::{PunctuationType, ScheduleId};
use crate::record::{Headers, RawRecord, Record, RecordMetadata, TaskId};
use crate::serde::SerdeError;
use crate::state::StoreEntry;

use super::node::Slot;

/// A record a task wants written to a topic (a sink, a repartition topic, a dead-letter
/// topic). `partition` is `None` when the producer's default partitioner should choose.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ProducedRecord {
    pub(crate) topic: Arc<str>,
    pub(crate) partition: Option<u32>,
    pub(crate) key: Option<Vec<u8>>,
    pub(crate) value: Option<Vec<u8>>,
    pub(crate) timestamp: i64,
    pub(crate) headers: Headers,
}

/// What every task of a thread shares: configuration, the RocksDB budget and the thread's
/// record cache.
#[derive(Debug, Clone)]
pub(crate) struct TaskEnv {
    pub(crate) config: Arc<StreamsConfig>,
    pub(crate) resources: RocksDbResources,
    pub(crate) cache: ThreadCache,
    /// The instance's global stores, shared by every task (read-only for them).
    pub(crate) globals: Arc<Vec<StoreEntry>>,
}

/// Changelog records of a task's stores, waiting to be produced with its output.
#[derive(Debug, Default)]
pub(super) struct ChangelogBuffer {
    pub(super) records: Mutex<Vec<ProducedRecord>>,
    /// The timestamp of the record being processed (changelog records carry it).
    pub(super) timestamp: AtomicI64,
}

/// The sink of one logged store of a task: its changelog topic, the task's partition.
pub(super) struct TaskChangelogSink {
    pub(super) topic: Arc<str>,
    pub(super) partition: u32,
    pub(super) buffer: Arc<ChangelogBuffer>,
}

impl ChangelogSink for TaskChangelogSink {
    fn send(&mut self, key: &[u8], value: Option<&[u8]>) -> Result<(), StateError> {
        let record = ProducedRecord {
            topic: self.topic.clone(),
            partition: Some(self.partition),
            key: Some(key.to_vec()),
            value: value.map(<[u8]>::to_vec),
            timestamp: self.buffer.timestamp.load(Ordering::Relaxed),
            headers: Headers::new(),
        };
        self.buffer
            .records
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(record);
        Ok(())
    }
}

#[derive(Debug, Clone)]
pub(super) struct Schedule {
    pub(super) id: ScheduleId,
    pub(super) node: usize,
    pub(super) kind: PunctuationType,
    pub(super) interval: i64,
    pub(super) next: i64,
    pub(super) cancelled: bool,
}

/// Everything a running node can reach: the arena, stores, output, clocks and metrics.
pub(crate) struct TaskContext {
    pub(crate) id: TaskId,
    pub(crate) nodes: Vec<Slot>,
    pub(crate) stores: Vec<StoreEntry>,
    pub(super) store_index: HashMap<String, usize>,
    /// Global stores: looked up after the task's own; never flushed or closed by the task.
    pub(super) globals: Arc<Vec<StoreEntry>>,
    pub(crate) output: Vec<ProducedRecord>,
    pub(crate) stream_time: i64,
    pub(crate) wall_clock: i64,
    pub(crate) current: Option<RecordMetadata>,
    /// The metadata of the last record processed (records leaving caches on commit carry it).
    pub(crate) last_record: Option<RecordMetadata>,
    pub(crate) current_timestamp: i64,
    pub(super) schedules: Vec<Schedule>,
    pub(super) next_schedule: u64,
    pub(crate) commit_requested: bool,
    pub(crate) metrics: TaskMetrics,
    pub(crate) config: Arc<StreamsConfig>,
    pub(super) changelog: Arc<ChangelogBuffer>,
    /// Whether `DEBUG` metrics are recorded (`metrics.recording.level`).
    pub(crate) debug_metrics: bool,
    /// Record lateness (stream time minus the record's timestamp, 0 when not late) since the
    /// last metrics publish; `DEBUG` only.
    pub(crate) lateness: crate::metrics_export::LatencyWindow,
    /// Suppression buffers' sizes since the last metrics publish, per suppression node;
    /// `DEBUG` only.
    pub(crate) suppression: Vec<(Arc<str>, crate::metrics_export::BufferWindow)>,
}

impl TaskContext {
    pub(crate) fn set_current_timestamp(&mut self, ts: i64) {
        self.set_timestamp(ts);
    }

    pub(super) fn set_timestamp(&mut self, ts: i64) {
        self.current_timestamp = ts;
        self.changelog.timestamp.store(ts, Ordering::Relaxed);
    }

    /// The index of the suppression node `name` in [`suppression`](Self::suppression),
    /// added on first use.
    pub(crate) fn suppression_slot(&mut self, name: &str) -> usize {
        match self.suppression.iter().position(|(n, _)| &**n == name) {
            Some(i) => i,
            None => {
                self.suppression.push((Arc::from(name), Default::default()));
                self.suppression.len() - 1
            }
        }
    }

    /// Runs the node at `idx` on `record`.
    #[inline]
    pub(crate) fn dispatch<K: 'static, V: 'static>(
        &mut self,
        idx: usize,
        record: Record<K, V>,
    ) -> Result<()> {
        let (debug, wall_clock) = (self.debug_metrics, self.wall_clock);
        let mut node = self
            .nodes
            .get_mut(idx)
            .and_then(|s| {
                // KIP-613 at terminal nodes (INFO): the wall clock of the thread's
                // processing round, no clock read per record.
                if s.terminal {
                    s.e2e.record(wall_clock.saturating_sub(record.timestamp));
                }
                if debug {
                    s.processed += 1;
                }
                s.node.take()
            })
            .ok_or_else(|| StreamsError::Internal(format!("node {idx} is missing or busy")))?;
        let result = match node.as_input::<K, V>() {
            Some(input) => input.process(record, self),
            None => Err(StreamsError::Internal(format!(
                "node `{}` does not take ({}, {})",
                self.nodes[idx].name,
                std::any::type_name::<K>(),
                std::any::type_name::<V>()
            ))),
        };
        self.nodes[idx].node = Some(node);
        match result {
            Err(e @ StreamsError::Processor { .. }) => self.processing_failed(idx, e),
            r => r,
        }
    }

    /// A processor failed on the current record, or in a punctuation
    /// (`processing.exception.handler`, KIP-1033): fail with its error, or log it, count it
    /// in `dropped_records` and go on. Handled at the failing node (the innermost
    /// dispatch), so its parents carry on as if it had forwarded nothing.
    #[cold]
    pub(crate) fn processing_failed(&mut self, idx: usize, e: StreamsError) -> Result<()> {
        match self.config.processing_handler() {
            crate::config::ProcessingHandler::Fail => Err(e),
            crate::config::ProcessingHandler::LogAndContinue => {
                let (topic, partition, offset) =
                    self.current.as_ref().map_or((None, None, None), |m| {
                        (Some(m.topic.clone()), Some(m.partition), Some(m.offset))
                    });
                tracing::warn!(
                    task = %self.id,
                    node = %self.nodes[idx].name,
                    topic = topic.as_deref().unwrap_or("-"),
                    partition,
                    offset,
                    error = %e,
                    "a processor failed; its record or punctuation is dropped (processing.exception.handler=log_and_continue)"
                );
                self.metrics.dropped_records += 1;
                Ok(())
            }
        }
    }

    /// The store called `name`.
    pub(crate) fn store(&self, name: &str) -> Result<&StoreEntry> {
        self.store_index
            .get(name)
            .map(|&i| &self.stores[i])
            .or_else(|| self.globals.iter().find(|g| g.name() == name))
            .ok_or_else(|| StreamsError::StoreAccess {
                store: name.to_string(),
                detail: format!(
                    "no such store in task {} (connect it to the processor that uses it)",
                    self.id
                ),
            })
    }

    /// The store called `name` as a handle of type `H`; `user` names what expects those
    /// types, for the error when the store holds others.
    pub(crate) fn typed_store<H: Clone + 'static>(&self, name: &str, user: &str) -> Result<H> {
        self.store(name)?
            .typed::<H>()
            .map_err(|_| StreamsError::StoreAccess {
                store: name.to_string(),
                detail: format!("holds other key/value types than this {user} expects"),
            })
    }

    pub(crate) fn schedule(
        &mut self,
        node: usize,
        interval_ms: i64,
        kind: PunctuationType,
    ) -> ScheduleId {
        let id = ScheduleId(self.next_schedule);
        self.next_schedule += 1;
        let next = match kind {
            // Aligned to 0: fires at the first record, then at multiples of the interval.
            PunctuationType::StreamTime => 0,
            PunctuationType::WallClockTime => self.wall_clock + interval_ms,
        };
        self.schedules.push(Schedule {
            id,
            node,
            kind,
            interval: interval_ms.max(1),
            next,
            cancelled: false,
        });
        id
    }

    pub(crate) fn cancel(&mut self, id: ScheduleId) {
        for s in &mut self.schedules {
            if s.id == id {
                s.cancelled = true;
            }
        }
    }

    /// Handles a record whose key or value did not deserialize, by the configured policy.
    pub(crate) fn on_deserialization_error(
        &mut self,
        which: &'static str,
        topic: &str,
        partition: u32,
        raw: &RawRecord,
        error: SerdeError,
    ) -> Result<()> {
        match &self.config.deserialization_handler().clone() {
            DeserializationHandler::Fail => Err(StreamsError::Deserialization {
                which,
                topic: topic.to_string(),
                partition,
                offset: raw.offset,
                source: error,
            }),
            DeserializationHandler::LogAndContinue => {
                warn!(task = %self.id, topic, partition, offset = raw.offset, %error, "skipping a record whose {which} does not deserialize");
                self.metrics.skipped_records += 1;
                Ok(())
            }
            DeserializationHandler::DeadLetter { topic: dlq } => {
                warn!(task = %self.id, topic, partition, offset = raw.offset, %error, dead_letter_topic = %dlq, "sending a record whose {which} does not deserialize to the dead-letter topic");
                let mut headers = raw.headers.clone();
                headers
                    .add(
                        dlq_headers::EXCEPTION,
                        Some(format!("DeserializationError({which})").into_bytes()),
                    )
                    .add(dlq_headers::MESSAGE, Some(error.to_string().into_bytes()))
                    .add(dlq_headers::TOPIC, Some(topic.as_bytes().to_vec()))
                    .add(
                        dlq_headers::PARTITION,
                        Some(partition.to_string().into_bytes()),
                    )
                    .add(
                        dlq_headers::OFFSET,
                        Some(raw.offset.to_string().into_bytes()),
                    );
                self.output.push(ProducedRecord {
                    topic: Arc::from(dlq.as_str()),
                    partition: None,
                    key: raw.key.clone(),
                    value: raw.value.clone(),
                    timestamp: raw.timestamp,
                    headers,
                });
                self.metrics.skipped_records += 1;
                self.metrics.dead_lettered += 1;
                Ok(())
            }
        }
    }
}
