//! What the Kafka test crates share: the word count app they run, test timings for their
//! configurations, keyed records, sentences with their expected word counts, and reading
//! a topic to its end. `kafka_transactions` declares it; the suite (`kafka_suite`) too.

// Test helpers outside #[test] functions may unwrap too: a panic fails the test.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::collections::HashMap;
use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, Instant};

use streams_core::client::kafka::KafkaClients;
use streams_core::client::{
    ClientSupplier, ConsumedRecord, NoRebalanceListener, OutgoingRecord, TopicPartition,
};
use streams_core::config::ClientPrefix;
use streams_core::partitioner::partition_for_key;
use streams_core::prelude::*;
use streams_core::runtime::KafkaStreams;

/// Appended to topic names and application ids on a shared broker: unique per run.
pub(crate) fn unique_suffix() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("-{}-{nanos:x}", std::process::id())
}

/// A configuration for `app` on `bootstrap` with timings that suit tests (short sessions
/// and heartbeats: the mock waits for members up to the session timeout).
pub(crate) fn test_config(app: &str, bootstrap: &str) -> StreamsConfig {
    StreamsConfig::new(app)
        .with_bootstrap_servers(bootstrap.split(','))
        .with_default_api_timeout(Duration::from_secs(20))
        .with_client_property(ClientPrefix::Consumer, "session.timeout.ms", "6000")
        .with_client_property(ClientPrefix::Consumer, "heartbeat.interval.ms", "300")
        .with_client_property(ClientPrefix::Consumer, "fetch.wait.max.ms", "50")
        .with_client_property(ClientPrefix::Producer, "linger.ms", "1")
}

/// Word count: the sentences of `input` split into words, counted per word (store
/// `counts`, so topics `<app>-counts-repartition` and `-changelog`) into `output`.
pub(crate) fn word_count(input: &str, output: &str) -> Topology {
    let builder = StreamsBuilder::new();
    builder
        .stream::<String, String>(input)
        .flat_map_values(|s: String| s.split(' ').map(str::to_string).collect::<Vec<_>>())
        .group_by(|_, w| w.clone())
        .count_with(Materialized::as_("counts"))
        .to_stream()
        .to(output);
    builder.build().unwrap()
}

/// An app of `topology` on its own clients of `config`, not started.
pub(crate) fn kafka_app(topology: Topology, config: StreamsConfig) -> KafkaStreams {
    let clients = KafkaClients::new(&config).unwrap();
    KafkaStreams::with_clients(topology, config, Arc::new(clients)).unwrap()
}

/// A record of `key` and `value` at `ts` for the partition of `topic` (`partitions`
/// partitions) the key hashes to.
pub(crate) fn keyed(
    topic: &str,
    partitions: u32,
    key: &str,
    value: &str,
    ts: i64,
) -> OutgoingRecord {
    OutgoingRecord {
        partition: TopicPartition::new(topic, partition_for_key(key.as_bytes(), partitions)),
        timestamp: ts,
        key: Some(key.as_bytes().to_vec()),
        value: Some(value.as_bytes().to_vec()),
        headers: vec![],
    }
}

/// Sends the sentences of `lines` to `topic` (`partitions` partitions), keyed `line-<i>`
/// with timestamp `i`: three of `words` each, line `i`'s picked with `spread`; adds their
/// words to `expected`.
pub(crate) fn send_sentences(
    clients: &KafkaClients,
    (topic, partitions): (&str, u32),
    (words, spread): (&[&str], usize),
    lines: Range<usize>,
    expected: &mut HashMap<String, i64>,
) {
    let mut p = clients.producer("input-producer").unwrap();
    for i in lines {
        let sentence: Vec<&str> = (0..3)
            .map(|j| words[(i * 3 + j * j + i / spread) % words.len()])
            .collect();
        for w in &sentence {
            *expected.entry(w.to_string()).or_default() += 1;
        }
        let record = keyed(
            topic,
            partitions,
            &format!("line-{i}"),
            &sentence.join(" "),
            i as i64,
        );
        p.send(record).unwrap();
    }
    p.flush(Duration::from_secs(60)).unwrap();
}

/// Every record of `topic` (`partitions` partitions) up to its current end, read by the
/// restore consumer `reader`. With `markers` (a transactional topic: its last offset may
/// be a commit marker, which is no record) reading stops once the next record would be at
/// or past the end, then polls once more for a last record.
pub(crate) fn read_topic(
    clients: &KafkaClients,
    reader: &str,
    (topic, partitions): (&str, u32),
    markers: bool,
) -> Vec<ConsumedRecord> {
    let mut r = clients.restore_consumer(reader).unwrap();
    let tps: Vec<TopicPartition> = (0..partitions)
        .map(|p| TopicPartition::new(topic, p))
        .collect();
    let ends: Vec<i64> = tps.iter().map(|tp| r.watermarks(tp).unwrap().1).collect();
    r.assign(&tps.iter().map(|tp| (tp.clone(), 0)).collect::<Vec<_>>())
        .unwrap();
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    let last = i64::from(markers);
    while tps
        .iter()
        .zip(&ends)
        .any(|(tp, end)| r.position(tp).unwrap_or(0) < *end - last)
    {
        assert!(Instant::now() < deadline, "{topic} not read to its end");
        out.extend(
            r.poll(Duration::from_millis(100), &mut NoRebalanceListener)
                .unwrap(),
        );
    }
    if markers {
        out.extend(
            r.poll(Duration::from_millis(500), &mut NoRebalanceListener)
                .unwrap(),
        );
    }
    out
}

/// The latest count per word of a word count's output records.
pub(crate) fn word_counts(records: Vec<ConsumedRecord>) -> HashMap<String, i64> {
    records
        .into_iter()
        .map(|c| {
            let w = String::from_utf8(c.record.key.unwrap()).unwrap();
            let n = i64::from_be_bytes(c.record.value.unwrap().try_into().unwrap());
            (w, n)
        })
        .collect()
}
