//! The activity binary's tests on Kafka (librdkafka's mock cluster, hosted by the test):
//! creating the app's topics on the mock, which has no CreateTopics, and reading a topic
//! back without a group.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;
use streams_core::client::kafka::KafkaClients;
use streams_core::client::{ClientSupplier, NoRebalanceListener, TopicPartition};
use streams_core::topology::NodeType;
use streams_examples::activity::{self, ActivityConfig};

use super::TopicRecord;

/// Creates every topic the app uses on the mock, each with `partitions` partitions: the
/// inputs (the global table's `pages` included), outputs and internal topics of the
/// topology, and the one-partition announcements topic (`<application.id>-metadata`).
pub(crate) fn create_topics(mock: &MockCluster<'static, DefaultProducerContext>, partitions: u32) {
    let app = activity::APPLICATION_ID;
    let topology = activity::topology(&ActivityConfig::default()).unwrap();
    let mut topics: Vec<String> = topology
        .changelog_topics(app)
        .into_iter()
        .map(|(t, _)| t)
        .collect();
    let description = topology.describe();
    topics.extend(description.global_stores.iter().map(|g| g.topic.clone()));
    for s in description.subtopologies {
        for n in s.nodes {
            match n.kind {
                NodeType::Source { topics: t } => topics.extend(t),
                NodeType::Sink { topic: Some(t) } => topics.push(t),
                _ => {}
            }
        }
    }
    topics.sort();
    topics.dedup();
    for t in topics {
        let t = t.replace("<application.id>", app);
        mock.create_topic(&t, i32::try_from(partitions).unwrap(), 1)
            .unwrap();
    }
    mock.create_topic(&format!("{app}-metadata"), 1, 1).unwrap();
}

/// Every record of `topic` (`partitions` partitions) on the broker, read to its current end
/// without a group, partition by partition in offset order; keys and values must be UTF-8.
pub(crate) fn read_records(
    clients: &KafkaClients,
    topic: &str,
    partitions: u32,
) -> Vec<TopicRecord> {
    let mut reader = clients.restore_consumer("activity-test-reader").unwrap();
    let tps: Vec<TopicPartition> = (0..partitions)
        .map(|p| TopicPartition::new(topic, p))
        .collect();
    let ends: Vec<i64> = tps
        .iter()
        .map(|tp| reader.watermarks(tp).unwrap().1)
        .collect();
    reader
        .assign(&tps.iter().map(|tp| (tp.clone(), 0)).collect::<Vec<_>>())
        .unwrap();
    let text = |bytes: Option<Vec<u8>>| {
        bytes.map(|b| String::from_utf8(b).unwrap_or_else(|e| panic!("{topic}: {e}")))
    };
    let mut by_partition: BTreeMap<u32, Vec<TopicRecord>> = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while tps
        .iter()
        .zip(&ends)
        .any(|(tp, end)| reader.position(tp).unwrap_or(0) < *end)
    {
        assert!(Instant::now() < deadline, "{topic} not read to its end");
        for c in reader
            .poll(Duration::from_millis(100), &mut NoRebalanceListener)
            .unwrap()
        {
            by_partition
                .entry(c.partition.partition)
                .or_default()
                .push(TopicRecord {
                    partition: c.partition.partition,
                    offset: c.record.offset,
                    timestamp: c.record.timestamp,
                    key: text(c.record.key),
                    value: text(c.record.value),
                });
        }
    }
    by_partition
        .into_values()
        .flat_map(|mut records| {
            records.sort_by_key(|r| r.offset);
            records
        })
        .collect()
}
