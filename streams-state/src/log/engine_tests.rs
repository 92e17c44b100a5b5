//! Tests of the log engine: topics, groups, transactions, damage.

use std::collections::BTreeMap;
use std::fs::{self};

use super::batch::NewRecord;
use super::coordinator::*;
use super::engine::*;
use super::error::LogError;
use super::partition::*;
use super::topics::*;
use super::txn::{Isolation, ProducerId};
use crate::error::StateError;

fn rec(v: &str) -> NewRecord {
    NewRecord {
        timestamp: 7,
        key: Some(b"k".to_vec()),
        value: Some(v.as_bytes().to_vec()),
        headers: Vec::new(),
    }
}

#[test]
fn a_topic_with_a_damaged_or_missing_meta_is_reported_and_not_adopted() {
    for damage in ["garbage", "missing"] {
        let dir = tempfile::tempdir().unwrap();
        {
            let e = LogEngine::open(dir.path()).unwrap();
            e.create_topic("t", TopicConfig::new(2)).unwrap();
            e.append("t", 1, &[rec("a"), rec("b")]).unwrap();
            e.flush().unwrap();
            // Created, never written: dropped quietly as an unfinished creation would be.
            e.create_topic("empty", TopicConfig::new(1)).unwrap();
        }
        let meta = dir.path().join("topics").join("t").join("topic.meta");
        match damage {
            "garbage" => fs::write(&meta, "\u{0}\u{0}partitions=x").unwrap(),
            _ => fs::remove_file(&meta).unwrap(),
        }
        fs::remove_file(dir.path().join("topics").join("empty").join("topic.meta")).unwrap();
        let e = LogEngine::open(dir.path()).unwrap();
        let names: Vec<String> = e.topics().into_iter().map(|(n, _)| n).collect();
        assert!(names.is_empty(), "{damage}: {names:?}");
        let why = e.damaged_topics().get("t").cloned().unwrap();
        assert!(why.contains("topic.meta"), "{damage}: {why}");
        assert!(!e.damaged_topics().contains_key("empty"), "{damage}");
        // Re-creating it would silently adopt the old records: refused, with the reason.
        let err = e
            .create_topic("t", TopicConfig::new(2))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("topic.meta") && err.contains("remove"),
            "{err}"
        );
        e.create_topic("empty", TopicConfig::new(1)).unwrap();
        assert!(
            dir.path().join("topics").join("t").join("1").exists(),
            "{damage}: the data is kept"
        );
    }
}

#[test]
fn edited_settings_files_are_reported_not_trusted() {
    let dir = tempfile::tempdir().unwrap();
    {
        let e = LogEngine::open(dir.path()).unwrap();
        e.create_topic("t", TopicConfig::new(3)).unwrap();
        e.append("t", 2, &[rec("a")]).unwrap();
        let p = e.init_producer_id("x").unwrap();
        e.append_transactional("x", p, "t", 0, &[rec("b")]).unwrap();
        e.end_transaction("x", p, true).unwrap();
    }
    let meta = dir.path().join("topics/t/topic.meta");
    let original = fs::read_to_string(&meta).unwrap();
    assert!(original.starts_with("crc32="), "{original}");
    // One changed digit: the checksum no longer matches.
    fs::write(&meta, original.replace("partitions=3", "partitions=2")).unwrap();
    let e = LogEngine::open(dir.path()).unwrap();
    assert!(
        e.damaged_topics()["t"].contains("checksum"),
        "{:?}",
        e.damaged_topics()
    );
    drop(e);
    // A file of an earlier version (no checksum) is read, and rewritten with one; but a
    // partition directory beyond its count holding data is damage.
    let body = original.split_once('\n').unwrap().1.to_string();
    fs::write(&meta, &body).unwrap();
    let e = LogEngine::open(dir.path()).unwrap();
    assert_eq!(e.topic_config("t").unwrap().partitions, 3);
    drop(e);
    assert_eq!(fs::read_to_string(&meta).unwrap(), original);
    fs::write(&meta, body.replace("partitions=3", "partitions=2")).unwrap();
    let e = LogEngine::open(dir.path()).unwrap();
    assert!(
        e.damaged_topics()["t"].contains("holds data"),
        "{:?}",
        e.damaged_topics()
    );
    drop(e);
    fs::write(&meta, &original).unwrap();
    // The transaction state is checked the same way.
    let state = dir.path().join("transactions.state");
    let text = fs::read_to_string(&state).unwrap();
    fs::write(&state, text.replace("txn 78 0 0", "txn 79 0 0")).unwrap();
    let err = LogEngine::open(dir.path()).unwrap_err().to_string();
    assert!(
        err.contains("transactions.state") && err.contains("checksum"),
        "{err}"
    );
    let body = text.split_once('\n').unwrap().1;
    let exhausted = format!("next-producer-id {}\n", i64::MAX);
    fs::write(&state, exhausted + body.split_once('\n').unwrap().1).unwrap();
    let e = LogEngine::open(dir.path()).unwrap();
    assert!(
        e.init_producer_id("y").is_err(),
        "no producer id left: an error, no panic"
    );
}

#[test]
fn topics_records_and_group_offsets_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    {
        let e = LogEngine::open(dir.path()).unwrap();
        e.create_topic("page_views", TopicConfig::new(4)).unwrap();
        assert!(
            e.create_topic("page_views", TopicConfig::new(4))
                .unwrap_err()
                .to_string()
                .contains("already exists")
        );
        assert!(e.create_topic("bad name", TopicConfig::new(1)).is_err());
        assert!(e.create_topic("none", TopicConfig::new(0)).is_err());
        assert_eq!(e.append("page_views", 2, &[rec("a"), rec("b")]).unwrap(), 0);
        assert_eq!(e.append("page_views", 2, &[rec("c")]).unwrap(), 2);
        let missing = e.append("page_views", 4, &[rec("x")]).unwrap_err();
        assert!(missing.to_string().contains("no partition 4"), "{missing}");
        e.commit_offsets("app", &[("page_views", 2, 2)]).unwrap();
        let second = LogEngine::open(dir.path()).unwrap_err();
        assert!(second.to_string().contains("in use"), "{second}");
        e.flush().unwrap();
    }
    let e = LogEngine::open(dir.path()).unwrap();
    assert_eq!(e.topics().len(), 1);
    assert_eq!(e.topics()[0].1.partitions, 4);
    assert_eq!(e.offsets("page_views", 2).unwrap(), (0, 3));
    assert_eq!(e.committed("app", "page_views", 2), Some(2));
    assert_eq!(e.committed("app", "page_views", 1), None);
    let from = e.committed("app", "page_views", 2).unwrap();
    let rest = e.read("page_views", 2, from, usize::MAX).unwrap();
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0].value.as_deref(), Some(b"c".as_slice()));
    e.delete_topic("page_views").unwrap();
    assert!(e.read("page_views", 0, 0, 10).is_err());
}

fn keyed(k: &str, v: Option<&str>, ts: i64) -> NewRecord {
    NewRecord {
        timestamp: ts,
        key: Some(k.as_bytes().to_vec()),
        value: v.map(|v| v.as_bytes().to_vec()),
        headers: Vec::new(),
    }
}

#[test]
fn open_with_overrides_every_partitions_fsync_policy() {
    let dir = tempfile::tempdir().unwrap();
    let fsync = |e: &LogEngine, t: &str| e.with_partition(t, 0, |p| Ok(p.config().fsync));
    {
        let e = LogEngine::open(dir.path()).unwrap();
        let mut c = TopicConfig::new(1);
        c.log.fsync = FsyncPolicy::OnFlush;
        e.create_topic("t", c).unwrap();
        assert_eq!(fsync(&e, "t").unwrap(), FsyncPolicy::OnFlush);
    }
    let config = EngineConfig::default().with_fsync(FsyncPolicy::EveryBatch);
    let e = LogEngine::open_with(dir.path(), config).unwrap();
    assert_eq!(e.config(), config);
    assert_eq!(fsync(&e, "t").unwrap(), FsyncPolicy::EveryBatch);
    e.create_topic("u", TopicConfig::new(1)).unwrap();
    assert_eq!(fsync(&e, "u").unwrap(), FsyncPolicy::EveryBatch);
    // The topic's own setting is what it keeps.
    assert_eq!(e.topic_config("t").unwrap().log.fsync, FsyncPolicy::OnFlush);
}

#[test]
fn topic_settings_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = TopicConfig::new(3).compacted().with_retention_ms(60_000);
    c.delete_retention_ms = 5;
    c.log.segment_ms = None;
    c.log.retention_bytes = Some(1 << 20);
    {
        let e = LogEngine::open(dir.path()).unwrap();
        e.create_topic("t", c).unwrap();
        assert!(
            e.create_topic("neg", TopicConfig::new(1).with_retention_ms(-1))
                .is_err()
        );
    }
    let e = LogEngine::open(dir.path()).unwrap();
    assert_eq!(e.topic_config("t"), Some(c));
    assert_eq!(e.topic_config("neg"), None);
}

#[test]
fn offset_for_time_and_maintenance_through_the_engine() {
    let dir = tempfile::tempdir().unwrap();
    let e = LogEngine::open(dir.path()).unwrap();
    let mut timed = TopicConfig::new(1).with_retention_ms(1_000);
    timed.log.segment_ms = Some(100);
    e.create_topic("timed", timed).unwrap();
    let mut compact = TopicConfig::new(1).compacted();
    compact.log.segment_bytes = 100;
    compact.delete_retention_ms = 0;
    e.create_topic("compact", compact).unwrap();
    for i in 0..20 {
        e.append("timed", 0, &[keyed("k", Some("v"), i * 50)])
            .unwrap();
        e.append("compact", 0, &[keyed(&format!("k{}", i % 4), Some("v"), 0)])
            .unwrap();
    }
    e.append("compact", 0, &[keyed("k0", None, 0)]).unwrap();
    for k in ["k5", "k6", "k7", "k8"] {
        e.append("compact", 0, &[keyed(k, Some("last"), 0)])
            .unwrap();
    }
    assert_eq!(e.offset_for_time("timed", 0, 125).unwrap(), Some(3));
    assert_eq!(e.offset_for_time("timed", 0, 951).unwrap(), None);
    assert!(e.offset_for_time("nope", 0, 0).is_err());
    let nulls = e.append("compact", 0, &[NewRecord::default()]).unwrap_err();
    assert!(nulls.to_string().contains("without a key"), "{nulls}");
    // At 1.6s, records before 0.6s are expired: 12 of them, in 100ms segments.
    let report = e.run_maintenance_at(1_600).unwrap();
    assert_eq!(report.segments_deleted, 6);
    assert_eq!(e.offsets("timed", 0).unwrap(), (12, 20));
    assert_eq!(e.offset_for_time("timed", 0, 0).unwrap(), Some(12));
    assert!(report.records_removed >= 16, "{report:?}");
    let left: Vec<(String, Option<Vec<u8>>)> = e
        .read("compact", 0, 0, usize::MAX)
        .unwrap()
        .into_iter()
        .map(|r| (String::from_utf8(r.key.unwrap()).unwrap(), r.value))
        .collect();
    let keys: Vec<&str> = left.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        keys,
        ["k1", "k2", "k3", "k5", "k6", "k7", "k8"],
        "the k0 tombstone expired at once"
    );
    assert_eq!(e.offsets("compact", 0).unwrap(), (0, 25));
}

#[test]
fn deleting_a_topic_drops_its_committed_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let e = LogEngine::open(dir.path()).unwrap();
    e.create_topic("a", TopicConfig::new(1)).unwrap();
    e.create_topic("b", TopicConfig::new(2)).unwrap();
    e.commit_offsets("g1", &[("a", 0, 1), ("b", 1, 2)]).unwrap();
    e.commit_offsets("g2", &[("b", 0, 3)]).unwrap();
    assert_eq!(e.groups(), ["g1", "g2"]);
    e.delete_topic("b").unwrap();
    assert_eq!(e.groups(), ["g1"]);
    assert_eq!(e.group_offsets("g1").unwrap(), [("a".to_string(), 0, 1)]);
    assert_eq!(e.group_offsets("g2"), None);
    drop(e);
    let e = LogEngine::open(dir.path()).unwrap();
    assert_eq!(e.groups(), ["g1"]);
    assert_eq!(e.committed("g1", "b", 1), None);
}

fn committed_values(e: &LogEngine, topic: &str, partition: u32, max_bytes: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut offset = 0;
    loop {
        let r = e
            .read_with(
                topic,
                partition,
                offset,
                max_bytes,
                Isolation::ReadCommitted,
            )
            .unwrap();
        let lso = e.last_stable_offset(topic, partition).unwrap();
        assert!(
            r.records.iter().all(|r| r.offset < lso),
            "nothing at or past the LSO"
        );
        out.extend(
            r.records
                .iter()
                .map(|r| String::from_utf8(r.value.clone().unwrap()).unwrap()),
        );
        if r.next_offset == offset {
            return out;
        }
        assert!(r.next_offset > offset);
        offset = r.next_offset;
    }
}

fn val(v: &str) -> NewRecord {
    keyed("k", Some(v), 1)
}

#[test]
fn read_committed_sees_a_transaction_only_once_it_commits() {
    let dir = tempfile::tempdir().unwrap();
    let e = LogEngine::open(dir.path()).unwrap();
    e.create_topic("in", TopicConfig::new(1)).unwrap();
    e.create_topic("out", TopicConfig::new(2)).unwrap();
    let p = e.init_producer_id("app-1").unwrap();
    e.append("out", 0, &[val("plain-1")]).unwrap();
    e.append_transactional("app-1", p, "out", 0, &[val("t1"), val("t2")])
        .unwrap();
    e.append_transactional("app-1", p, "out", 1, &[val("t3")])
        .unwrap();
    e.append("out", 0, &[val("plain-2")]).unwrap();
    e.add_offsets_to_transaction("app-1", p, "g", &[("in", 0, 7)])
        .unwrap();
    // Open: read_committed stops at the transaction's first offset; uncommitted sees all.
    assert_eq!(e.last_stable_offset("out", 0).unwrap(), 1);
    assert_eq!(committed_values(&e, "out", 0, usize::MAX), ["plain-1"]);
    assert!(committed_values(&e, "out", 1, usize::MAX).is_empty());
    assert_eq!(e.read("out", 0, 0, usize::MAX).unwrap().len(), 4);
    assert_eq!(
        e.committed("g", "in", 0),
        None,
        "offsets wait for the commit"
    );
    let status = &e.transactions()[0];
    assert_eq!(status.state, crate::TransactionState::Ongoing);
    assert_eq!(status.partitions.len(), 2);
    e.end_transaction("app-1", p, true).unwrap();
    assert_eq!(e.committed("g", "in", 0), Some(7));
    for max_bytes in [1, usize::MAX] {
        assert_eq!(
            committed_values(&e, "out", 0, max_bytes),
            ["plain-1", "t1", "t2", "plain-2"]
        );
        assert_eq!(committed_values(&e, "out", 1, max_bytes), ["t3"]);
    }
    // The markers take offsets but are never read.
    assert_eq!(e.offsets("out", 0).unwrap().1, 5);
    assert_eq!(e.last_stable_offset("out", 0).unwrap(), 5);
    assert_eq!(e.read("out", 1, 0, usize::MAX).unwrap().len(), 1);
    assert_eq!(e.transactions()[0].state, crate::TransactionState::Empty);
    // An aborted one is never visible to read_committed, and commits no offsets.
    e.append_transactional("app-1", p, "out", 1, &[val("gone")])
        .unwrap();
    e.add_offsets_to_transaction("app-1", p, "g", &[("in", 0, 9)])
        .unwrap();
    e.end_transaction("app-1", p, false).unwrap();
    e.append("out", 1, &[val("after")]).unwrap();
    assert_eq!(committed_values(&e, "out", 1, usize::MAX), ["t3", "after"]);
    assert_eq!(e.read("out", 1, 0, usize::MAX).unwrap().len(), 3);
    assert_eq!(e.committed("g", "in", 0), Some(7));
    drop(e);
    let e = LogEngine::open(dir.path()).unwrap();
    assert_eq!(e.transaction_recovery(), TransactionRecovery::default());
    assert_eq!(committed_values(&e, "out", 1, 1), ["t3", "after"]);
}

#[test]
fn registering_a_transactional_id_again_fences_the_old_producer() {
    let dir = tempfile::tempdir().unwrap();
    let e = LogEngine::open(dir.path()).unwrap();
    e.create_topic("out", TopicConfig::new(1)).unwrap();
    let old = e.init_producer_id("t").unwrap();
    e.append_transactional("t", old, "out", 0, &[val("zombie")])
        .unwrap();
    let new = e.init_producer_id("t").unwrap();
    assert_eq!((new.id, new.epoch), (old.id, old.epoch + 1));
    let fenced = |r: Result<(), StateError>| {
        assert!(
            matches!(r, Err(StateError::Log(LogError::ProducerFenced { .. }))),
            "{r:?}"
        );
    };
    fenced(
        e.append_transactional("t", old, "out", 0, &[val("late")])
            .map(drop),
    );
    fenced(e.add_offsets_to_transaction("t", old, "g", &[("out", 0, 1)]));
    fenced(e.end_transaction("t", old, true));
    // The old producer's open transaction was aborted by the registration.
    assert!(committed_values(&e, "out", 0, usize::MAX).is_empty());
    e.append_transactional("t", new, "out", 0, &[val("live")])
        .unwrap();
    e.end_transaction("t", new, true).unwrap();
    assert_eq!(committed_values(&e, "out", 0, usize::MAX), ["live"]);
    assert!(matches!(
        e.append_transactional("nobody", new, "out", 0, &[val("x")]),
        Err(StateError::Log(LogError::UnknownTransactionalId(_)))
    ));
    // Producer ids and epochs survive a restart.
    drop(e);
    let e = LogEngine::open(dir.path()).unwrap();
    let again = e.init_producer_id("t").unwrap();
    assert_eq!(again.epoch, new.epoch + 1);
    let other = e.init_producer_id("u").unwrap();
    assert!(other.id > new.id, "producer ids are never reused");
}

#[test]
fn a_crash_aborts_open_transactions_and_completes_decided_commits() {
    let dir = tempfile::tempdir().unwrap();
    {
        let e = LogEngine::open(dir.path()).unwrap();
        e.create_topic("out", TopicConfig::new(2)).unwrap();
        e.create_topic("in", TopicConfig::new(1)).unwrap();
        let a = e.init_producer_id("a").unwrap();
        let b = e.init_producer_id("b").unwrap();
        e.append_transactional("a", a, "out", 0, &[val("open")])
            .unwrap();
        e.append_transactional("b", b, "out", 0, &[val("decided")])
            .unwrap();
        e.append_transactional("b", b, "out", 1, &[val("decided-1")])
            .unwrap();
        // What a crash right after the commit decision leaves behind.
        let mut offsets = TxnOffsets::new();
        offsets
            .entry("g".into())
            .or_default()
            .insert(("in".into(), 0), 3);
        e.coordinator
            .persist(
                "b",
                Durable {
                    producer: b,
                    commit: Some((vec![("out".into(), 0, 1), ("out".into(), 1, 0)], offsets)),
                },
                true,
            )
            .unwrap();
    }
    let e = LogEngine::open(dir.path()).unwrap();
    assert_eq!(
        e.transaction_recovery(),
        TransactionRecovery {
            completed: 1,
            aborted: 1
        }
    );
    assert_eq!(committed_values(&e, "out", 0, usize::MAX), ["decided"]);
    assert_eq!(committed_values(&e, "out", 1, usize::MAX), ["decided-1"]);
    assert_eq!(e.committed("g", "in", 0), Some(3));
    assert_eq!(
        e.last_stable_offset("out", 0).unwrap(),
        e.offsets("out", 0).unwrap().1
    );
    drop(e);
    let e = LogEngine::open(dir.path()).unwrap();
    assert_eq!(e.transaction_recovery(), TransactionRecovery::default());
}

#[test]
fn a_stored_decision_applied_again_never_moves_offsets_back() {
    let dir = tempfile::tempdir().unwrap();
    {
        let e = LogEngine::open(dir.path()).unwrap();
        e.create_topic("in", TopicConfig::new(1)).unwrap();
        e.create_topic("out", TopicConfig::new(1)).unwrap();
        let a = e.init_producer_id("a").unwrap();
        e.append_transactional("a", a, "out", 0, &[val("x")])
            .unwrap();
        e.add_offsets_to_transaction("a", a, "g", &[("in", 0, 3)])
            .unwrap();
        e.end_transaction("a", a, true).unwrap();
        // The partition moved to another producer, which committed further.
        let b = e.init_producer_id("b").unwrap();
        e.add_offsets_to_transaction("b", b, "g", &[("in", 0, 8)])
            .unwrap();
        e.end_transaction("b", b, true).unwrap();
        assert_eq!(e.committed("g", "in", 0), Some(8));
    }
    // Opening applies both stored decisions again: markers are there, offsets stay.
    let e = LogEngine::open(dir.path()).unwrap();
    assert_eq!(e.transaction_recovery(), TransactionRecovery::default());
    assert_eq!(e.committed("g", "in", 0), Some(8));
    assert_eq!(committed_values(&e, "out", 0, usize::MAX), ["x"]);
}

#[test]
fn compaction_keeps_committed_records_and_drops_aborted_ones() {
    let dir = tempfile::tempdir().unwrap();
    let e = LogEngine::open(dir.path()).unwrap();
    let mut c = TopicConfig::new(1).compacted();
    c.log.segment_bytes = 200;
    e.create_topic("cl", c).unwrap();
    let p = e.init_producer_id("t").unwrap();
    for round in 0..6 {
        e.append_transactional(
            "t",
            p,
            "cl",
            0,
            &[keyed("a", Some(&format!("a{round}")), 1)],
        )
        .unwrap();
        e.append_transactional(
            "t",
            p,
            "cl",
            0,
            &[keyed(&format!("k{round}"), Some("x"), 1)],
        )
        .unwrap();
        e.end_transaction("t", p, round % 2 == 0).unwrap();
    }
    // An open transaction at the end: nothing at or after it is compacted.
    e.append_transactional("t", p, "cl", 0, &[keyed("a", Some("open"), 1)])
        .unwrap();
    let before: Vec<(String, String)> = read_all_committed(&e);
    e.run_maintenance_at(0).unwrap();
    let after = read_all_committed(&e);
    let latest = |v: &[(String, String)]| {
        let mut m = BTreeMap::new();
        for (k, x) in v {
            m.insert(k.clone(), x.clone());
        }
        m
    };
    assert_eq!(latest(&after), latest(&before));
    assert_eq!(latest(&after).get("a").map(String::as_str), Some("a4"));
    assert!(
        !after.iter().any(|(k, _)| k == "k1" || k == "k3"),
        "aborted"
    );
    e.end_transaction("t", p, true).unwrap();
    drop(e);
    let e = LogEngine::open(dir.path()).unwrap();
    assert_eq!(
        latest(&read_all_committed(&e)).get("a").map(String::as_str),
        Some("open")
    );
}

fn read_all_committed(e: &LogEngine) -> Vec<(String, String)> {
    let r = e
        .read_with("cl", 0, 0, usize::MAX, Isolation::ReadCommitted)
        .unwrap();
    r.records
        .into_iter()
        .map(|r| {
            (
                String::from_utf8(r.key.unwrap()).unwrap(),
                String::from_utf8(r.value.unwrap()).unwrap(),
            )
        })
        .collect()
}

#[derive(Debug, Clone)]
enum Op {
    Append { producer: usize, partition: u32 },
    Plain { partition: u32 },
    End { producer: usize, commit: bool },
    Crash,
    Reregister { producer: usize },
}

fn op() -> impl proptest::strategy::Strategy<Value = Op> {
    use proptest::prelude::*;
    prop_oneof![
        4 => (0usize..3, 0u32..2).prop_map(|(producer, partition)| Op::Append { producer, partition }),
        1 => (0u32..2).prop_map(|partition| Op::Plain { partition }),
        2 => (0usize..3, any::<bool>()).prop_map(|(producer, commit)| Op::End { producer, commit }),
        1 => Just(Op::Crash),
        1 => (0usize..3).prop_map(|producer| Op::Reregister { producer }),
    ]
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(40))]
    /// Whatever the interleaving of transactions, aborts, re-registrations and crashes,
    /// read_committed returns exactly the records of committed transactions and the
    /// plain ones, in offset order, and nothing at or past the last stable offset.
    #[test]
    fn read_committed_matches_a_model(ops in proptest::collection::vec(op(), 1..60), max_bytes in 1usize..200) {
        let dir = tempfile::tempdir().unwrap();
        let mut e = LogEngine::open(dir.path()).unwrap();
        e.create_topic("t", TopicConfig::new(2)).unwrap();
        let ids = ["p0", "p1", "p2"];
        let mut producers: Vec<ProducerId> = ids.iter().map(|id| e.init_producer_id(id).unwrap()).collect();
        // Per partition: (value, whose open transaction or None, decided).
        let mut written: Vec<Vec<(String, Option<usize>)>> = vec![Vec::new(), Vec::new()];
        let mut committed: Vec<std::collections::BTreeSet<String>> = vec![Default::default(), Default::default()];
        let mut pending: Vec<Vec<(u32, String)>> = vec![Vec::new(); 3];
        let mut n = 0;
        for op in ops {
            match op {
                Op::Append { producer, partition } => {
                    n += 1;
                    let v = format!("v{n}");
                    e.append_transactional(ids[producer], producer_of(&producers, producer), "t", partition, &[val(&v)]).unwrap();
                    written[partition as usize].push((v.clone(), Some(producer)));
                    pending[producer].push((partition, v));
                }
                Op::Plain { partition } => {
                    n += 1;
                    let v = format!("v{n}");
                    e.append("t", partition, &[val(&v)]).unwrap();
                    written[partition as usize].push((v.clone(), None));
                    committed[partition as usize].insert(v);
                }
                Op::End { producer, commit } => {
                    e.end_transaction(ids[producer], producers[producer], commit).unwrap();
                    for (p, v) in pending[producer].drain(..) {
                        if commit {
                            committed[p as usize].insert(v);
                        }
                    }
                }
                Op::Crash => {
                    drop(e);
                    e = LogEngine::open(dir.path()).unwrap();
                    for p in &mut pending {
                        p.clear();
                    }
                    producers = ids.iter().map(|id| e.init_producer_id(id).unwrap()).collect();
                }
                Op::Reregister { producer } => {
                    producers[producer] = e.init_producer_id(ids[producer]).unwrap();
                    pending[producer].clear();
                }
            }
            for partition in 0..2u32 {
                let got = committed_values(&e, "t", partition, max_bytes);
                // Expected: in write order, committed ones, up to the first record of a
                // transaction still open.
                let open_values: std::collections::BTreeSet<&String> =
                    pending.iter().flatten().filter(|(p, _)| *p == partition).map(|(_, v)| v).collect();
                let mut want = Vec::new();
                for (v, _) in &written[partition as usize] {
                    if open_values.contains(v) {
                        break;
                    }
                    if committed[partition as usize].contains(v) {
                        want.push(v.clone());
                    }
                }
                proptest::prop_assert_eq!(got, want);
            }
        }
    }
}

fn producer_of(producers: &[ProducerId], i: usize) -> ProducerId {
    producers[i]
}
