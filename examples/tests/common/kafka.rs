//! The activity binary's tests on Kafka (librdkafka's mock cluster, hosted by the test):
//! creating the app's topics on the mock, which has no CreateTopics, and reading a topic
//! back without a group.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;
use streams_core::client::kafka::KafkaClients;
use streams_core::client::{ClientSupplier, NoRebalanceListener, TopicPartition};
use streams_core::config::StreamsConfig;
use streams_core::topology::NodeType;
use streams_examples::activity::{self, ActivityConfig};

use super::{App, TopicRecord, get, start_app, wait_for};

/// A mock cluster with every topic of the app (see [`create_topics`]), and its address.
pub(crate) fn mock_with_topics(
    partitions: u32,
) -> (MockCluster<'static, DefaultProducerContext>, String) {
    let mock = MockCluster::new(1).unwrap();
    create_topics(&mock, partitions);
    let bootstrap = mock.bootstrap_servers();
    (mock, bootstrap)
}

/// Clients named `name` on the broker at `bootstrap`, for the test's own producers and
/// readers.
pub(crate) fn test_clients(name: &str, bootstrap: &str) -> KafkaClients {
    KafkaClients::new(&StreamsConfig::new(name).with_bootstrap_servers([bootstrap])).unwrap()
}

/// Starts activity instance `i` on the mock at `bootstrap` with its state in `dir`: one
/// thread, short sessions, and `extra` flags.
pub(crate) fn start_instance(i: usize, bootstrap: &str, dir: &Path, extra: &[&str]) -> App {
    let data = dir.to_string_lossy();
    let mut args = vec![
        "--bootstrap-servers",
        bootstrap,
        "--threads",
        "1",
        "--data-dir",
        &data,
        // The mock waits for members up to the session timeout at each rebalance: short
        // sessions keep the test short.
        "--set",
        "consumer.session.timeout.ms=6000",
        "--set",
        "consumer.heartbeat.interval.ms=300",
    ];
    args.extend_from_slice(extra);
    start_app(&format!("instance-{i}"), &args)
}

/// Waits until every one of `apps` runs and lists exactly `apps` as the group.
pub(crate) fn wait_for_group(apps: &[&App]) {
    let mut hosts: Vec<String> = apps
        .iter()
        .map(|a| format!("127.0.0.1:{}", a.port))
        .collect();
    hosts.sort();
    let what = format!("{} instances form one group", apps.len());
    wait_for(120, &what, || {
        for a in apps {
            let s: serde_json::Value =
                serde_json::from_str(&get(a.port, "/api/status")?).map_err(|e| e.to_string())?;
            let listed: Vec<String> =
                serde_json::from_value(s["instances"].clone()).map_err(|e| e.to_string())?;
            if s["state"] != "Running" || listed != hosts {
                return Err(format!("{}: {s}", a.port));
            }
        }
        Ok(())
    });
}

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
