//! Source nodes: deserialize raw records, stamp them with event time, queue them per
//! partition and forward them in the order the task chooses.

use std::collections::VecDeque;
use std::sync::Arc;

use tracing::warn;

use crate::Data;
use crate::error::{Result, StreamsError};
use crate::record::{RawRecord, Record, RecordMetadata};
use crate::serde::{SerdeError, SerdeRef};
use crate::time::{ExtractorRef, InvalidTimestampPolicy};

use super::context::TaskContext;
use super::node::{Children, NodeOps};

/// What a task needs of a source, whatever its types.
pub(crate) trait SourceOps: NodeOps {
    fn enqueue(&mut self, topic_idx: usize, raw: RawRecord, task: &mut TaskContext) -> Result<()>;
    fn head_timestamp(&self, topic_idx: usize) -> Option<i64>;
    fn process_head(&mut self, topic_idx: usize, task: &mut TaskContext) -> Result<()>;
    /// The offset of the next record to process from `topic_idx`, if any is queued.
    fn head_offset(&self, topic_idx: usize) -> Option<i64>;
    /// How many records of `topic_idx` are queued.
    fn queued(&self, topic_idx: usize) -> usize;
    /// Drops every queued record (the partition moves away; its next owner reads them).
    fn clear(&mut self);
}

struct Queue<K, V> {
    topic: Arc<str>,
    records: VecDeque<(i64, Record<K, V>)>,
    partition_time: i64,
}

/// A typed source for one partition of one or more topics.
pub(crate) struct SourceNode<K, V> {
    partition: u32,
    key_serde: SerdeRef<K>,
    value_serde: SerdeRef<V>,
    extractor: ExtractorRef<K, V>,
    policy: InvalidTimestampPolicy,
    queues: Vec<Queue<K, V>>,
    children: Children,
}

impl<K, V> SourceNode<K, V> {
    pub(crate) fn new(
        topics: Vec<Arc<str>>,
        partition: u32,
        key_serde: SerdeRef<K>,
        value_serde: SerdeRef<V>,
        extractor: ExtractorRef<K, V>,
        policy: InvalidTimestampPolicy,
        children: Children,
    ) -> Self {
        Self {
            partition,
            key_serde,
            value_serde,
            extractor,
            policy,
            queues: topics
                .into_iter()
                .map(|topic| Queue {
                    topic,
                    records: VecDeque::new(),
                    partition_time: -1,
                })
                .collect(),
            children,
        }
    }
}

impl<K: Data, V: Data> NodeOps for SourceNode<K, V> {}

impl<K: Data, V: Data> SourceOps for SourceNode<K, V> {
    fn enqueue(&mut self, topic_idx: usize, raw: RawRecord, task: &mut TaskContext) -> Result<()> {
        let queue = self
            .queues
            .get_mut(topic_idx)
            .ok_or_else(|| StreamsError::Internal(format!("source has no topic {topic_idx}")))?;
        // A null key or value is a valid Kafka record (a keyless event, a tombstone), not a
        // deserialization error: a type that cannot hold it (not an `Option`) skips the
        // record and counts it as dropped, as Kafka Streams' aggregations do with null keys.
        let key = match self.key_serde.deserialize_nullable(raw.key.as_deref()) {
            Ok(k) => k,
            Err(SerdeError::UnexpectedNull { type_name }) => {
                return skip_null(task, "key", type_name, &queue.topic, self.partition, &raw);
            }
            Err(e) => {
                return task.on_deserialization_error("key", &queue.topic, self.partition, &raw, e);
            }
        };
        let value = match self.value_serde.deserialize_nullable(raw.value.as_deref()) {
            Ok(v) => v,
            Err(SerdeError::UnexpectedNull { type_name }) => {
                return skip_null(task, "value", type_name, &queue.topic, self.partition, &raw);
            }
            Err(e) => {
                return task.on_deserialization_error(
                    "value",
                    &queue.topic,
                    self.partition,
                    &raw,
                    e,
                );
            }
        };
        let offset = raw.offset;
        let mut record = Record {
            key,
            value,
            timestamp: raw.timestamp,
            headers: raw.headers,
        };
        let mut ts = self.extractor.extract(&record, queue.partition_time);
        if ts < 0 {
            let fallback = match self.policy {
                InvalidTimestampPolicy::Fail => {
                    return Err(StreamsError::InvalidTimestamp {
                        timestamp: ts,
                        topic: queue.topic.to_string(),
                        partition: self.partition,
                        offset,
                    });
                }
                InvalidTimestampPolicy::SkipAndCount => None,
                InvalidTimestampPolicy::UsePartitionTime => {
                    Some(queue.partition_time).filter(|t| *t >= 0)
                }
            };
            match fallback {
                Some(t) => ts = t,
                None => {
                    warn!(task = %task.id, topic = %queue.topic, partition = self.partition, offset, timestamp = ts, "skipping a record with an invalid timestamp");
                    task.metrics.skipped_records += 1;
                    return Ok(());
                }
            }
        }
        record.timestamp = ts;
        queue.partition_time = queue.partition_time.max(ts);
        queue.records.push_back((offset, record));
        Ok(())
    }

    fn head_timestamp(&self, topic_idx: usize) -> Option<i64> {
        self.queues
            .get(topic_idx)
            .and_then(|q| q.records.front())
            .map(|(_, r)| r.timestamp)
    }

    fn head_offset(&self, topic_idx: usize) -> Option<i64> {
        self.queues
            .get(topic_idx)
            .and_then(|q| q.records.front())
            .map(|(o, _)| *o)
    }

    fn queued(&self, topic_idx: usize) -> usize {
        self.queues.get(topic_idx).map_or(0, |q| q.records.len())
    }

    fn clear(&mut self) {
        for q in &mut self.queues {
            q.records.clear();
        }
    }

    fn process_head(&mut self, topic_idx: usize, task: &mut TaskContext) -> Result<()> {
        let Some(queue) = self.queues.get_mut(topic_idx) else {
            return Ok(());
        };
        let Some((offset, record)) = queue.records.pop_front() else {
            return Ok(());
        };
        let meta = RecordMetadata {
            topic: queue.topic.clone(),
            partition: self.partition,
            offset,
        };
        task.last_record = Some(meta.clone());
        task.current = Some(meta);
        task.set_current_timestamp(record.timestamp);
        task.stream_time = task.stream_time.max(record.timestamp);
        task.metrics.processed += 1;
        self.children.forward(task, record)
    }
}

/// Skips a record whose key or value is null for a type without a null, counting it as
/// dropped; logged at `warn` for the first such record of a task, at `debug` after.
fn skip_null(
    task: &mut TaskContext,
    which: &'static str,
    type_name: &'static str,
    topic: &str,
    partition: u32,
    raw: &RawRecord,
) -> Result<()> {
    if task.metrics.null_records == 0 {
        warn!(task = %task.id, topic, partition, offset = raw.offset, "skipping a record with a null {which}: `{type_name}` has no null (use Option<{type_name}> to receive such records); counted in dropped_records");
    } else {
        tracing::debug!(task = %task.id, topic, partition, offset = raw.offset, "skipping a record with a null {which}");
    }
    task.metrics.null_records += 1;
    task.metrics.dropped_records += 1;
    Ok(())
}
