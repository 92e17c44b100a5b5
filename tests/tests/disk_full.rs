//! A full disk, for real: the log engine on a small tmpfs that a filler file fills up.
//!
//! - The engine reports `StateError::DiskFull` with the path and the space left, never
//!   acknowledges an append it could not write, and after space is freed appends again
//!   with contiguous offsets; everything acknowledged survives a reopen.
//! - An app whose log fills up waits (its stream thread retries the append) and resumes
//!   once space is freed, with every input counted exactly once (cache off, so each input
//!   word gives one output record: a lost or repeated batch shows).
//!
//! Mounting a tmpfs needs root (and a container that allows it). Where it is refused, the
//! tests print a notice and pass, unless `STREAMS_REQUIRE_TMPFS=1`; the engine's own unit
//! tests inject the same failure in any case.

// Test helpers outside #[test] functions may unwrap too: a panic fails the test.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use streams_core::error::StateError;
use streams_core::prelude::*;
use streams_core::runtime::{
    Isolation, KafkaStreams, LogEngine, NewRecord, StreamsState, TopicConfig,
};
use streams_tests::Tmpfs;
use streams_tests::wordcount::{COUNTS, PARTITIONS, SENTENCES, counts, produce};

fn tmpfs(bytes: u64) -> Option<Tmpfs> {
    let t = Tmpfs::mount(bytes);
    if t.is_none() {
        assert!(
            std::env::var("STREAMS_REQUIRE_TMPFS").as_deref() != Ok("1"),
            "STREAMS_REQUIRE_TMPFS=1 but a tmpfs cannot be mounted here"
        );
        eprintln!("notice: cannot mount a tmpfs here (needs root): disk-full test skipped");
    }
    t
}

fn record(i: usize) -> NewRecord {
    NewRecord {
        timestamp: i as i64,
        key: Some(format!("k{i}").into_bytes()),
        value: Some(
            vec![b'x'; 900]
                .into_iter()
                .chain(format!("{i}").into_bytes())
                .collect(),
        ),
        headers: Vec::new(),
    }
}

fn read_all(engine: &LogEngine, topic: &str) -> Vec<(i64, Vec<u8>)> {
    let mut out = Vec::new();
    let mut offset = 0;
    loop {
        let records = engine.read(topic, 0, offset, 1 << 20).unwrap();
        let Some(last) = records.last() else {
            return out;
        };
        offset = last.offset + 1;
        out.extend(records.into_iter().map(|r| (r.offset, r.value.unwrap())));
    }
}

#[test]
fn the_engine_reports_a_full_disk_and_keeps_every_acknowledged_record() {
    let Some(fs) = tmpfs(2 << 20) else { return };
    let log = fs.path().join("log");
    let engine = LogEngine::open(&log).unwrap();
    engine.create_topic("t", TopicConfig::new(1)).unwrap();
    // Leave room for a few hundred records only.
    let filler = fs.fill();
    let free_later = std::fs::metadata(&filler).unwrap().len();
    std::fs::write(&filler, vec![0u8; (free_later - (256 << 10)) as usize]).unwrap();

    let mut acked: Vec<Vec<u8>> = Vec::new();
    let mut full = None;
    for batch in 0..10_000 {
        let records: Vec<NewRecord> = (0..10).map(|j| record(batch * 10 + j)).collect();
        match engine.append("t", 0, &records) {
            Ok(_) => acked.extend(records.into_iter().map(|r| r.value.unwrap())),
            Err(e) => {
                full = Some(e);
                break;
            }
        }
    }
    let e = full.expect("the disk never filled up");
    match &e {
        StateError::DiskFull {
            path,
            available_bytes,
            ..
        } => {
            assert!(path.starts_with(&log), "{e}");
            assert!(available_bytes.is_some_and(|b| b < 64 << 10), "{e}");
        }
        other => panic!("expected DiskFull, got {other:?}"),
    }
    assert!(e.is_retriable() && !e.is_fatal());
    assert!(e.to_string().contains(&log.display().to_string()), "{e}");
    assert!(!acked.is_empty());
    // Still full: the same batch is still refused, nothing acknowledged past the failure.
    let again: Vec<NewRecord> = (0..10).map(|j| record(1_000_000 + j)).collect();
    assert!(matches!(
        engine.append("t", 0, &again),
        Err(StateError::DiskFull { .. })
    ));

    // Space is freed: appends go on right after the last acknowledged record.
    std::fs::remove_file(&filler).unwrap();
    for i in 0..20 {
        let r = record(2_000_000 + i);
        let v = r.value.clone().unwrap();
        engine.append("t", 0, &[r]).unwrap();
        acked.push(v);
    }
    drop(engine);

    let engine = LogEngine::open(&log).unwrap();
    let stored = read_all(&engine, "t");
    let offsets: Vec<i64> = stored.iter().map(|(o, _)| *o).collect();
    assert_eq!(offsets, (0..acked.len() as i64).collect::<Vec<_>>());
    let values: Vec<Vec<u8>> = stored.into_iter().map(|(_, v)| v).collect();
    assert_eq!(values, acked);
}

#[test]
fn an_app_waits_out_a_full_disk_and_counts_every_word_once() {
    app_on_a_full_disk(false);
}

/// The same with the record cache on: fewer, coalesced updates, and the same final counts.
#[test]
fn an_app_with_its_cache_on_waits_out_a_full_disk_and_loses_no_count() {
    app_on_a_full_disk(true);
}

fn app_on_a_full_disk(caching: bool) {
    let Some(fs) = tmpfs(8 << 20) else { return };
    let state = tempfile::tempdir().unwrap();
    let engine = Arc::new(LogEngine::open(&fs.path().join("log")).unwrap());
    for topic in [SENTENCES, COUNTS] {
        engine
            .create_topic(topic, TopicConfig::new(PARTITIONS))
            .unwrap();
    }
    let mut expected: HashMap<String, i64> = HashMap::new();
    let config = StreamsConfig::new("wc-full")
        .with_state_dir(state.path())
        .with_commit_interval(Duration::from_millis(50));
    let start = || {
        let mut app = KafkaStreams::new(
            streams_tests::wordcount::topology(caching),
            config.clone(),
            engine.clone(),
        )
        .unwrap();
        app.start().unwrap();
        app
    };
    // A first run creates the internal topics (on a disk with room).
    let app = start();
    app.wait_until_caught_up(Duration::from_secs(60)).unwrap();
    app.close().unwrap();

    // Room for the input but not for what the app writes about it (repartition records,
    // changelog and output: several times the input).
    let filler = fs.fill();
    let size = std::fs::metadata(&filler).unwrap().len();
    std::fs::write(&filler, vec![0u8; (size - (256 << 10)) as usize]).unwrap();
    produce(&engine, 0, 3_000, &mut expected);
    let filler_rest = fs.fill();
    let total: i64 = expected.values().sum();
    let app = start();

    // The thread cannot write: it waits instead of failing, and cannot have finished.
    let until = Instant::now() + Duration::from_secs(2);
    while Instant::now() < until {
        assert_ne!(
            app.state(),
            StreamsState::Error,
            "the app failed on a full disk"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let before = counts(&engine, Isolation::ReadUncommitted);
    if caching {
        // The latest count of every word, summed, is what was counted so far.
        let so_far: i64 = before.values().filter_map(|c| c.last()).sum();
        assert!(so_far < total, "the app did not wait for space");
    } else {
        let so_far: usize = before.values().map(Vec::len).sum();
        assert!((so_far as i64) < total, "the app did not wait for space");
    }
    std::fs::remove_file(&filler_rest).unwrap();
    std::fs::remove_file(&filler).unwrap();
    app.wait_until_caught_up(Duration::from_secs(90)).unwrap();
    assert_eq!(app.state(), StreamsState::Running);
    app.close().unwrap();

    let out = counts(&engine, Isolation::ReadUncommitted);
    assert_eq!(out.len(), expected.len());
    for (word, n) in &expected {
        if caching {
            // Coalesced: rising strictly (a repeated batch would repeat or overshoot) up
            // to the word's number of occurrences.
            let c = &out[word];
            assert!(c.windows(2).all(|w| w[0] < w[1]), "counts of {word}: {c:?}");
            assert_eq!(c.last(), Some(n), "counts of {word}");
        } else {
            // Each occurrence of a word gave one count, in order: 1, 2, ..., n.
            assert_eq!(out[word], (1..=*n).collect::<Vec<_>>(), "counts of {word}");
        }
    }
}

/// A tiny deterministic generator (xorshift), so that the random cases repeat.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// The disk fills at random points: random room left, random batch and record sizes,
/// segments rolling on the way. Whatever the point, every acknowledged record (and only
/// those) is read back after the space is freed, more appends and a reopen.
#[test]
fn a_disk_that_fills_at_random_points_loses_no_acknowledged_record() {
    for case in 0..8u64 {
        let Some(fs) = tmpfs(2 << 20) else { return };
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ (case + 1).wrapping_mul(0x2545_f491_4f6c_dd1d));
        let log = fs.path().join("log");
        let engine = LogEngine::open(&log).unwrap();
        let mut config = TopicConfig::new(1);
        // Small segments: some cases fill up while a segment rolls.
        config.log.segment_bytes = 16 << 10;
        engine.create_topic("t", config).unwrap();
        let filler = fs.fill();
        let size = std::fs::metadata(&filler).unwrap().len();
        let room = 4096 + rng.below(200 << 10);
        std::fs::write(&filler, vec![0u8; size.saturating_sub(room) as usize]).unwrap();

        let mut acked: Vec<Vec<u8>> = Vec::new();
        let mut next = 0u64;
        let mut batch = |rng: &mut Rng| -> Vec<NewRecord> {
            (0..1 + rng.below(40))
                .map(|_| {
                    next += 1;
                    let len = 10 + rng.below(2000) as usize;
                    let mut value = format!("{case}-{next}-").into_bytes();
                    value.resize(len.max(value.len()), b'v');
                    NewRecord {
                        timestamp: next as i64,
                        key: Some(next.to_be_bytes().to_vec()),
                        value: Some(value),
                        headers: Vec::new(),
                    }
                })
                .collect()
        };
        let mut refused = 0;
        for _ in 0..2_000 {
            let records = batch(&mut rng);
            match engine.append("t", 0, &records) {
                Ok(_) => acked.extend(records.into_iter().map(|r| r.value.unwrap())),
                Err(StateError::DiskFull { .. }) => {
                    refused += 1;
                    if refused == 3 {
                        break;
                    }
                }
                Err(e) => panic!("case {case}: {e}"),
            }
        }
        assert!(refused > 0, "case {case}: the disk never filled up");
        std::fs::remove_file(&filler).unwrap();
        for _ in 0..5 {
            let records = batch(&mut rng);
            engine.append("t", 0, &records).unwrap();
            acked.extend(records.into_iter().map(|r| r.value.unwrap()));
        }
        drop(engine);
        let engine = LogEngine::open(&log).unwrap();
        let stored = read_all(&engine, "t");
        let offsets: Vec<i64> = stored.iter().map(|(o, _)| *o).collect();
        assert_eq!(
            offsets,
            (0..acked.len() as i64).collect::<Vec<_>>(),
            "case {case}: offsets"
        );
        let values: Vec<Vec<u8>> = stored.into_iter().map(|(_, v)| v).collect();
        assert!(values == acked, "case {case}: values differ");
    }
}
