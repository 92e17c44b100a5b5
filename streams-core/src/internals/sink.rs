//! Sink nodes: serialize records and hand them to the task's output for a topic.

use std::sync::Arc;

use crate::Data;
use crate::error::{Result, StreamsError};
use crate::record::{Record, RecordContext};
use crate::serde::SerdeRef;

use super::context::{ProducedRecord, TaskContext};
use super::node::{Input, NodeOps};

/// Chooses a sink's topic per record.
pub(crate) type TopicExtractorFn<K, V> =
    Arc<dyn Fn(&K, &V, &RecordContext) -> String + Send + Sync>;

/// Where a sink writes.
pub(crate) enum SinkTarget<K, V> {
    Fixed(Arc<str>),
    Dynamic(TopicExtractorFn<K, V>),
}

/// A typed sink.
pub(crate) struct SinkNode<K, V> {
    name: Arc<str>,
    target: SinkTarget<K, V>,
    key_serde: SerdeRef<K>,
    value_serde: SerdeRef<V>,
}

impl<K, V> SinkNode<K, V> {
    pub(crate) fn new(
        name: Arc<str>,
        target: SinkTarget<K, V>,
        key_serde: SerdeRef<K>,
        value_serde: SerdeRef<V>,
    ) -> Self {
        Self {
            name,
            target,
            key_serde,
            value_serde,
        }
    }
}

impl<K: Data, V: Data> NodeOps for SinkNode<K, V> {}

/// A serialized key and value (`None`: Kafka's null).
pub(crate) type SerializedKeyValue = (Option<Vec<u8>>, Option<Vec<u8>>);

/// A record's key and value serialized for `target` (which names the topic in the error,
/// made only on failure).
pub(crate) fn serialize_key_value<K: 'static, V: 'static>(
    key_serde: &SerdeRef<K>,
    value_serde: &SerdeRef<V>,
    record: &Record<K, V>,
    target: impl Fn() -> String,
) -> Result<SerializedKeyValue> {
    let error = |which, source| StreamsError::Serialization {
        which,
        target: target(),
        source,
    };
    let key = key_serde
        .serialize_nullable(&record.key)
        .map_err(|e| error("key", e))?;
    let value = value_serde
        .serialize_nullable(&record.value)
        .map_err(|e| error("value", e))?;
    Ok((key, value))
}

impl<K: Data, V: Data> Input<K, V> for SinkNode<K, V> {
    fn process(&mut self, record: Record<K, V>, task: &mut TaskContext) -> Result<()> {
        let topic = match &self.target {
            SinkTarget::Fixed(t) => t.clone(),
            SinkTarget::Dynamic(f) => {
                let ctx = RecordContext {
                    metadata: task.current.clone(),
                    timestamp: record.timestamp,
                };
                Arc::from(f(&record.key, &record.value, &ctx).as_str())
            }
        };
        let (key, value) =
            serialize_key_value(&self.key_serde, &self.value_serde, &record, || {
                format!("{} (sink {})", topic, self.name)
            })?;
        task.output.push(ProducedRecord {
            topic,
            partition: None,
            key,
            value,
            timestamp: record.timestamp,
            headers: record.headers,
        });
        Ok(())
    }
}
