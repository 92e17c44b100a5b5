//! Unit tests of the embedded clients.

use super::*;
use std::sync::Arc;
use std::time::Duration;

use streams_state::{Isolation, LogEngine, TopicConfig};

use crate::client::{
    ClientError, ClientSupplier, NewTopic, OutgoingRecord, RebalanceListener, TopicPartition,
};

use crate::client::NoRebalanceListener;

#[derive(Default)]
struct Recorder {
    assigned: Vec<Vec<TopicPartition>>,
    revoked: Vec<Vec<TopicPartition>>,
}

impl RebalanceListener for Recorder {
    fn on_partitions_revoked(
        &mut self,
        partitions: &[TopicPartition],
    ) -> crate::error::Result<Vec<(TopicPartition, i64)>> {
        self.revoked.push(partitions.to_vec());
        Ok(partitions.iter().map(|tp| (tp.clone(), 1)).collect())
    }
    fn on_partitions_assigned(
        &mut self,
        partitions: &[TopicPartition],
    ) -> crate::error::Result<()> {
        self.assigned.push(partitions.to_vec());
        Ok(())
    }
}

fn record(tp: &TopicPartition, v: &str) -> OutgoingRecord {
    OutgoingRecord {
        partition: tp.clone(),
        timestamp: 1,
        key: Some(b"k".to_vec()),
        value: Some(v.as_bytes().to_vec()),
        headers: Vec::new(),
    }
}

fn committed_values(engine: &LogEngine, tp: &TopicPartition) -> Vec<String> {
    engine
        .read_with(
            &tp.topic,
            tp.partition,
            0,
            usize::MAX,
            Isolation::ReadCommitted,
        )
        .unwrap()
        .records
        .into_iter()
        .map(|r| String::from_utf8(r.value.unwrap()).unwrap())
        .collect()
}

#[test]
fn a_zombie_member_is_fenced_and_nothing_it_wrote_becomes_visible() {
    let (_dir, clients) = clients();
    let admin = clients.admin().unwrap();
    admin.create_topic(&NewTopic::new("in", 1)).unwrap();
    admin.create_topic(&NewTopic::new("out", 1)).unwrap();
    let out = TopicPartition::new("out", 0);
    let input = TopicPartition::new("in", 0);
    let mut consumer = clients.consumer("g", "a").unwrap();
    consumer.subscribe(&["in".to_string()]).unwrap();
    consumer
        .poll(Duration::from_millis(300), &mut NoRebalanceListener)
        .unwrap();
    assert_eq!(consumer.assignment(), std::slice::from_ref(&input));
    let metadata = consumer.group_metadata().unwrap();
    let mut producer = clients.transactional_producer("p", "txn-a").unwrap();
    assert!(producer.is_transactional());
    assert!(
        producer.send(record(&out, "early")).is_err(),
        "outside a transaction"
    );
    producer.init_transactions(Duration::from_secs(1)).unwrap();
    producer.begin_transaction().unwrap();
    producer.send(record(&out, "live")).unwrap();
    producer
        .send_offsets_to_transaction(&[(input.clone(), 1)], &metadata, Duration::from_secs(1))
        .unwrap();
    producer.commit_transaction(Duration::from_secs(1)).unwrap();
    assert_eq!(clients.engine().committed("g", "in", 0), Some(1));
    // The member is dropped from the group (its session expired while it was paused);
    // it resumes and goes on as if it still owned the partition.
    producer.begin_transaction().unwrap();
    producer.send(record(&out, "zombie")).unwrap();
    producer.poll().unwrap();
    clients.group("g").remove(&metadata.member_id);
    let fenced = producer
        .send_offsets_to_transaction(&[(input.clone(), 2)], &metadata, Duration::from_secs(1))
        .unwrap_err();
    assert!(fenced.is_task_migrated(), "{fenced}");
    assert!(producer.commit_transaction(Duration::from_secs(1)).is_err());
    assert_eq!(committed_values(clients.engine(), &out), ["live"]);
    assert_eq!(clients.engine().committed("g", "in", 0), Some(1));
    let (_, end) = clients.engine().offsets("out", 0).unwrap();
    assert_eq!(
        clients.engine().last_stable_offset("out", 0).unwrap(),
        end,
        "aborted, not pending"
    );
    // A second producer with the same transactional id fences the first.
    let mut again = clients.transactional_producer("p2", "txn-a").unwrap();
    again.init_transactions(Duration::from_secs(1)).unwrap();
    producer.begin_transaction().unwrap();
    let err = producer
        .send(record(&out, "old epoch"))
        .and_then(|()| producer.poll());
    assert!(
        matches!(err, Err(ClientError::ProducerFenced { .. })),
        "{err:?}"
    );
}

fn clients() -> (tempfile::TempDir, EmbeddedClients) {
    let dir = tempfile::tempdir().unwrap();
    let engine = Arc::new(LogEngine::open(dir.path()).unwrap());
    for t in ["a", "b"] {
        engine.create_topic(t, TopicConfig::new(4)).unwrap();
    }
    (dir, EmbeddedClients::new(engine))
}

#[test]
fn fetch_limits_bound_each_poll_and_bad_values_name_the_setting() {
    let (_dir, clients) = clients();
    let engine = clients.engine().clone();
    engine
        .create_topic("t", streams_state::TopicConfig::new(2))
        .unwrap();
    for p in 0..2 {
        engine.append("t", p, &values(50, 10)).unwrap();
    }
    let props: std::collections::BTreeMap<String, String> =
        [("max.poll.records".to_string(), "30".to_string())].into();
    let limits = ConsumerSettings::from_properties(&props).unwrap();
    let clients = clients.with_consumer_settings(limits);
    let mut c = clients.restore_consumer("r").unwrap();
    // The restore consumer keeps the defaults: everything at once.
    c.assign(&[
        (TopicPartition::new("t", 0), 0),
        (TopicPartition::new("t", 1), 0),
    ])
    .unwrap();
    assert_eq!(
        c.poll(Duration::ZERO, &mut NoRebalanceListener)
            .unwrap()
            .len(),
        100
    );
    let mut c = clients.consumer("g", "c").unwrap();
    c.subscribe(&["t".to_string()]).unwrap();
    let mut sizes = Vec::new();
    let mut per_partition = [0usize; 2];
    for _ in 0..20 {
        let got = c
            .poll(Duration::from_millis(200), &mut NoRebalanceListener)
            .unwrap();
        if got.is_empty() && sizes.iter().sum::<usize>() == 100 {
            break;
        }
        for r in &got {
            per_partition[r.partition.partition as usize] += 1;
        }
        sizes.push(got.len());
    }
    assert!(sizes.iter().all(|n| *n <= 30), "{sizes:?}");
    assert_eq!(sizes.iter().sum::<usize>(), 100);
    assert_eq!(per_partition, [50, 50]);

    for (key, value) in [
        ("max.poll.records", "0"),
        ("fetch.max.bytes", "lots"),
        ("auto.offset.reset", "sometimes"),
    ] {
        let props: std::collections::BTreeMap<String, String> =
            [(key.to_string(), value.to_string())].into();
        let err = ConsumerSettings::from_properties(&props).unwrap_err();
        assert!(
            err.to_string().contains(&format!("consumer.{key}")),
            "{err}"
        );
    }
}

#[test]
fn a_position_past_the_log_end_resets_per_auto_offset_reset() {
    for (reset, expected) in [
        ("earliest", Some(vec![0, 1, 2, 3, 4])),
        ("latest", Some(vec![3, 4])),
        ("none", None),
    ] {
        let (_dir, clients) = clients();
        let engine = clients.engine().clone();
        engine
            .create_topic("t", streams_state::TopicConfig::new(1))
            .unwrap();
        let append = |n: i64| {
            engine.append("t", 0, &values(n, 1)).unwrap();
        };
        append(3);
        let props: std::collections::BTreeMap<String, String> =
            [("auto.offset.reset".to_string(), reset.to_string())].into();
        let clients =
            clients.with_consumer_settings(ConsumerSettings::from_properties(&props).unwrap());
        // A group committed offset 10, past the end (3): the log lost records.
        let tp = TopicPartition::new("t", 0);
        engine.commit_offsets("g", &[("t", 0, 10)]).unwrap();
        let mut c = clients.consumer("g", "c").unwrap();
        c.subscribe(&["t".to_string()]).unwrap();
        let mut got = Vec::new();
        let mut failed = false;
        for i in 0..5 {
            match c.poll(Duration::from_millis(100), &mut NoRebalanceListener) {
                Ok(records) => got.extend(records.iter().map(|r| r.record.offset)),
                Err(_) => {
                    failed = true;
                    break;
                }
            }
            if i == 1 {
                // Records written after the reset.
                append(2);
            }
        }
        match expected {
            Some(offsets) => {
                assert!(!failed, "{reset}");
                // Latest: from the end (3) on, so only the records written after.
                assert_eq!(got, offsets, "{reset}");
                assert!(c.position(&tp).unwrap() >= 3, "{reset}");
            }
            None => assert!(failed, "{reset}: the poll must fail"),
        }
    }
}

/// `n` keyless records of `size`-byte values, timestamped 0, 1, ...
fn values(n: i64, size: usize) -> Vec<streams_state::NewRecord> {
    (0..n)
        .map(|i| streams_state::NewRecord {
            timestamp: i,
            key: None,
            value: Some(vec![1; size]),
            headers: Vec::new(),
        })
        .collect()
}

fn subs() -> Vec<String> {
    vec!["a".into(), "b".into()]
}

/// Two members `x` and `y` of group `g` subscribed to [`subs`], polled until both have
/// an assignment, with their recorders.
fn two_members(c: &EmbeddedClients) -> (Box<dyn Consumer>, Recorder, Box<dyn Consumer>, Recorder) {
    let mut c1 = c.consumer("g", "x").unwrap();
    let mut c2 = c.consumer("g", "y").unwrap();
    c1.subscribe(&subs()).unwrap();
    c2.subscribe(&subs()).unwrap();
    let (mut r1, mut r2) = (Recorder::default(), Recorder::default());
    // Each poll waits for the other member; alternate until both have an assignment.
    for _ in 0..100 {
        c1.poll(Duration::from_millis(5), &mut r1).unwrap();
        c2.poll(Duration::from_millis(5), &mut r2).unwrap();
        if !r1.assigned.is_empty() && !r2.assigned.is_empty() {
            break;
        }
    }
    (c1, r1, c2, r2)
}

#[test]
fn range_assignment_keeps_co_partitioned_topics_together() {
    let (_d, c) = clients();
    let (c1, r1, _c2, r2) = two_members(&c);
    let parts = |v: &[TopicPartition], t: &str| {
        v.iter()
            .filter(|tp| &*tp.topic == t)
            .map(|tp| tp.partition)
            .collect::<Vec<_>>()
    };
    let a1 = r1.assigned.last().unwrap();
    let a2 = r2.assigned.last().unwrap();
    assert_eq!(parts(a1, "a"), vec![0, 1]);
    assert_eq!(parts(a1, "b"), vec![0, 1]);
    assert_eq!(parts(a2, "a"), vec![2, 3]);
    assert_eq!(parts(a2, "b"), vec![2, 3]);
    // The group view shows both members' assignments.
    let members = c1.group_members().unwrap();
    assert_eq!(members.len(), 2);
    assert_eq!(members.iter().map(|m| m.assignment.len()).sum::<usize>(), 8);
}

#[test]
fn a_leaving_member_commits_on_revocation_and_its_partitions_move() {
    let (_d, c) = clients();
    // Two records in a-0, so that the committed offset 1 is inside its log.
    c.engine().append("a", 0, &values(2, 1)).unwrap();
    let (mut c1, mut r1, mut c2, _r2) = two_members(&c);
    c2.close().unwrap();
    let after = c1.poll(Duration::from_millis(50), &mut r1).unwrap();
    // c1 revoked its 4 partitions (committing offset 1 for each), then got all 8.
    assert_eq!(r1.revoked.last().unwrap().len(), 4);
    assert_eq!(r1.assigned.last().unwrap().len(), 8);
    let committed = c1
        .committed(&[TopicPartition::new("a", 0), TopicPartition::new("a", 3)])
        .unwrap();
    assert_eq!(committed, vec![Some(1), None]);
    // Positions start at the committed offset: a-0 is read from offset 1 on.
    let a0: Vec<i64> = after
        .iter()
        .filter(|r| r.partition == TopicPartition::new("a", 0))
        .map(|r| r.record.offset)
        .collect();
    assert_eq!(a0, vec![1]);
    assert_eq!(c1.position(&TopicPartition::new("a", 3)), Some(0));
}

#[test]
fn a_full_changelog_batch_is_appended_after_the_outputs_sent_before_it() {
    let (_d, c) = clients();
    let engine = c.engine();
    engine
        .create_topic("app-s-changelog", TopicConfig::new(1))
        .unwrap();
    let mut p = c.producer("p").unwrap();
    let out = TopicPartition::new("a", 2);
    let changelog = TopicPartition::new("app-s-changelog", 0);
    p.send(record(&out, "result")).unwrap();
    let big = "x".repeat(4096);
    let mut sent = 0;
    // Until the changelog's batch is full and appended (no poll, no flush).
    while engine.offsets("app-s-changelog", 0).unwrap().1 == 0 {
        p.send(record(&changelog, &big)).unwrap();
        sent += 1;
        assert!(sent < 1000, "the changelog batch never filled");
    }
    // The output sent before it reached the log no later than the changelog.
    assert_eq!(engine.offsets("a", 2).unwrap().1, 1);
    // A full output batch goes alone: pending changelog records are not pulled ahead.
    p.send(record(&changelog, "pending")).unwrap();
    let before = engine.offsets("app-s-changelog", 0).unwrap().1;
    while engine.offsets("a", 2).unwrap().1 == 1 {
        p.send(record(&out, &big)).unwrap();
    }
    assert_eq!(engine.offsets("app-s-changelog", 0).unwrap().1, before);
    p.poll().unwrap();
    assert_eq!(engine.offsets("app-s-changelog", 0).unwrap().1, before + 1);
}

#[test]
fn paused_partitions_return_nothing_until_resumed() {
    let (_d, c) = clients();
    let mut p = c.producer("p").unwrap();
    for part in 0..4 {
        p.send(OutgoingRecord {
            partition: TopicPartition::new("a", part),
            timestamp: 5,
            key: None,
            value: Some(vec![part as u8]),
            headers: vec![],
        })
        .unwrap();
    }
    p.flush(Duration::from_secs(1)).unwrap();
    let mut r = c.restore_consumer("r").unwrap();
    let tps: Vec<(TopicPartition, i64)> =
        (0..4).map(|p| (TopicPartition::new("a", p), 0)).collect();
    r.assign(&tps).unwrap();
    r.pause(&[TopicPartition::new("a", 1)]).unwrap();
    let got = r
        .poll(Duration::from_millis(10), &mut NoRebalanceListener)
        .unwrap();
    let mut parts: Vec<u32> = got.iter().map(|c| c.partition.partition).collect();
    parts.sort_unstable();
    assert_eq!(parts, vec![0, 2, 3]);
    r.resume(&[TopicPartition::new("a", 1)]).unwrap();
    let got = r
        .poll(Duration::from_millis(10), &mut NoRebalanceListener)
        .unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].record.value, Some(vec![1]));
    r.seek(&TopicPartition::new("a", 1), 0).unwrap();
    let got = r
        .poll(Duration::from_millis(10), &mut NoRebalanceListener)
        .unwrap();
    assert_eq!(got.len(), 1);
    assert!(r.seek(&TopicPartition::new("b", 0), 0).is_err());
}

#[test]
fn admin_creates_lists_and_refuses_duplicates() {
    let (_d, c) = clients();
    let admin = c.admin().unwrap();
    admin
        .create_topic(&NewTopic::new("c", 3).compacted())
        .unwrap();
    assert_eq!(admin.topics().unwrap().get("c"), Some(&3));
    assert!(matches!(
        admin.create_topic(&NewTopic::new("c", 3)),
        Err(ClientError::TopicExists(_))
    ));
    admin.delete_topic("c").unwrap();
    assert!(!admin.topics().unwrap().contains_key("c"));
}
