//! State stores through whole topologies: RocksDB by default, window and session stores in
//! the Processor API, changelog topics, checkpoints, persistence across a restart, and the
//! state directory lock.

// Test helpers outside #[test] functions may unwrap too: a panic fails the test.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use streams_core::config::DslStore;
use streams_core::prelude::*;
use streams_core::state::ChangelogKind;
use streams_tests::driver;

fn s(x: &str) -> String {
    x.to_string()
}

fn count_topology() -> Topology {
    let builder = StreamsBuilder::new();
    builder
        .stream::<String, String>("words")
        .group_by(|_, w| w.clone())
        .count_with(Materialized::as_("counts"))
        .to_stream()
        .to("out");
    builder.build().unwrap()
}

#[test]
fn rocksdb_and_in_memory_stores_give_the_same_counts() {
    let words = ["a", "b", "a", "c", "a", "b"];
    let mut results = Vec::new();
    for store in [DslStore::RocksDb, DslStore::InMemory] {
        let config = StreamsConfig::new("same").with_default_dsl_store(store);
        let driver = driver::with_partitions(count_topology(), config, &[("words", 3)]);
        let input = driver.input_topic::<String, String>("words");
        for w in words {
            input.pipe_input(s(w), s(w)).unwrap();
        }
        let mut all = driver
            .key_value_store::<String, i64>("counts")
            .unwrap()
            .all()
            .unwrap();
        all.sort();
        let rocks_dirs = std::fs::read_dir(driver.state_dir())
            .unwrap()
            .filter_map(Result::ok)
            .filter(|e| e.path().join("rocksdb").join("counts").exists())
            .count();
        results.push((all, rocks_dirs));
    }
    let expected = vec![(s("a"), 3), (s("b"), 2), (s("c"), 1)];
    assert_eq!(
        results[0],
        (expected.clone(), 3),
        "RocksDB: one instance per counting task"
    );
    assert_eq!(results[1], (expected, 0), "in memory: nothing on disk");
}

#[test]
fn dsl_stores_log_to_compacted_changelog_topics_in_the_task_partition() {
    let topology = count_topology();
    assert_eq!(
        topology.changelog_topics("app"),
        vec![(s("app-counts-changelog"), ChangelogKind::Compact)]
    );
    let driver = driver::with_partitions(
        topology,
        StreamsConfig::new("app").with_cache_max_bytes(0),
        &[("words", 2)],
    );
    let input = driver.input_topic::<String, String>("words");
    input.pipe_input_at(s("x"), s("x"), 5).unwrap();
    input.pipe_input_at(s("x"), s("x"), 9).unwrap();
    let log = driver.output_topic::<String, Option<Vec<u8>>>("app-counts-changelog");
    let records: Vec<_> = std::iter::from_fn(|| log.read_test_record().unwrap()).collect();
    assert_eq!(records.len(), 2);
    let out_partition = driver
        .output_topic::<String, Option<i64>>("out")
        .read_test_record()
        .unwrap()
        .unwrap()
        .partition;
    for (r, (n, ts)) in records.iter().zip([(1i64, 5i64), (2, 9)]) {
        assert_eq!(r.record.key, "x");
        // Kafka's timestamped layout: 8-byte big-endian timestamp, then the value.
        let mut expected = ts.to_be_bytes().to_vec();
        expected.extend_from_slice(&n.to_be_bytes());
        assert_eq!(r.record.value.as_deref(), Some(expected.as_slice()));
        assert_eq!(r.record.timestamp, ts);
        // The changelog partition is the counting task's partition; the output of that
        // task is keyed the same way, so it lands in the same partition here.
        assert_eq!(r.partition, out_partition);
    }
}

#[test]
fn rocksdb_state_and_checkpoints_survive_a_restart_and_the_directory_is_locked() {
    let dir = tempfile::tempdir().unwrap();
    let config = StreamsConfig::new("restart").with_state_dir(dir.path());
    {
        let driver = driver::with_partitions(count_topology(), config.clone(), &[("words", 2)]);
        let err = TopologyTestDriver::builder(count_topology(), config.clone())
            .partitions("words", 2)
            .build()
            .unwrap_err();
        assert!(err.to_string().contains("already in use"), "{err}");
        let input = driver.input_topic::<String, String>("words");
        for w in ["a", "b", "a"] {
            input.pipe_input(s(w), s(w)).unwrap();
        }
        driver.close().unwrap();
    }
    // Every counting task wrote a checkpoint on close.
    let checkpoints: Vec<String> = std::fs::read_dir(dir.path().join("restart"))
        .unwrap()
        .filter_map(Result::ok)
        .filter_map(|e| std::fs::read_to_string(e.path().join(".checkpoint")).ok())
        .collect();
    assert_eq!(checkpoints.len(), 2);
    assert!(
        checkpoints
            .iter()
            .all(|c| c.starts_with("streams-checkpoint 1 "))
    );
    assert!(
        checkpoints
            .iter()
            .any(|c| c.contains("restart-counts-changelog"))
    );
    // A new driver on the same directory finds the counts in RocksDB and goes on from them.
    let driver = driver::with_partitions(count_topology(), config, &[("words", 2)]);
    driver
        .input_topic::<String, String>("words")
        .pipe_input(s("a"), s("a"))
        .unwrap();
    let store = driver.key_value_store::<String, i64>("counts").unwrap();
    assert_eq!(store.get(&s("a")).unwrap(), Some(3));
    assert_eq!(store.get(&s("b")).unwrap(), Some(1));
}

/// Counts per key per 10-second window in a window store, and per session (gap 5 s) in a
/// session store, by hand.
struct Windows {
    wins: Option<WindowStoreHandle<String, i64>>,
    sessions: Option<SessionStoreHandle<String, i64>>,
}

impl Processor<String, String, String, i64> for Windows {
    fn init(&mut self, ctx: &mut ProcessorContext<'_, String, i64>) -> Result<(), StreamsError> {
        self.wins = Some(ctx.window_store("wins")?);
        self.sessions = Some(ctx.session_store("sess")?);
        Ok(())
    }
    fn process(
        &mut self,
        r: Record<String, String>,
        _: &mut ProcessorContext<'_, String, i64>,
    ) -> Result<(), StreamsError> {
        let wins = self
            .wins
            .as_ref()
            .ok_or_else(|| StreamsError::processor("w", "no init"))?;
        let start = r.timestamp - r.timestamp.rem_euclid(10_000);
        let n = wins.fetch(&r.key, start)?.unwrap_or(0);
        wins.put(&r.key, Some(&(n + 1)), start)?;
        let sessions = self
            .sessions
            .as_ref()
            .ok_or_else(|| StreamsError::processor("w", "no init"))?;
        let mut merged = Windowed {
            key: r.key.clone(),
            window: Window {
                start: r.timestamp,
                end: r.timestamp,
            },
        };
        let mut total = 1;
        for (old, count) in
            sessions.find_sessions(&r.key, r.timestamp - 5_000, r.timestamp + 5_000)?
        {
            merged.window.start = merged.window.start.min(old.window.start);
            merged.window.end = merged.window.end.max(old.window.end);
            total += count;
            sessions.remove(&old)?;
        }
        sessions.put(&merged, &total)?;
        Ok(())
    }
}

#[test]
fn window_and_session_stores_in_the_processor_api() {
    let builder = StreamsBuilder::new();
    builder.add_state_store(Stores::window_store_builder(
        Stores::persistent_window_store("wins", 60_000, 10_000).unwrap(),
        default_serde::<String>(),
        default_serde::<i64>(),
    ));
    builder.add_state_store(Stores::session_store_builder(
        Stores::in_memory_session_store("sess", 60_000).unwrap(),
        default_serde::<String>(),
        default_serde::<i64>(),
    ));
    builder
        .stream::<String, String>("clicks")
        .process(
            || Windows {
                wins: None,
                sessions: None,
            },
            Named::as_("windows"),
            &["wins", "sess"],
        )
        .to("unused");
    let topology = builder.build().unwrap();
    let kinds: Vec<_> = topology
        .changelog_topics("w")
        .into_iter()
        .map(|(_, k)| k)
        .collect();
    assert!(kinds.iter().all(|k| matches!(k, ChangelogKind::CompactDelete { retention_ms } if *retention_ms == 60_000 + 86_400_000)));
    let mut driver = TopologyTestDriver::new(topology, StreamsConfig::new("w")).unwrap();
    let input = driver.input_topic::<String, String>("clicks");
    for ts in [1_000, 4_000, 12_000, 30_000, 33_000] {
        input.pipe_input_at(s("u1"), s("click"), ts).unwrap();
    }
    let wins = driver.window_store::<String, i64>("wins").unwrap();
    assert_eq!(
        wins.fetch_range(&s("u1"), 0, 40_000).unwrap(),
        vec![(0, 2), (10_000, 1), (30_000, 2)]
    );
    let all = wins.fetch_all(10_000, 10_000).unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].0.to_string(), "[u1@10000/20000]");
    let sessions = driver.session_store::<String, i64>("sess").unwrap();
    let got: Vec<(i64, i64, i64)> = sessions
        .fetch(&s("u1"))
        .unwrap()
        .into_iter()
        .map(|(w, n)| (w.window.start, w.window.end, n))
        .collect();
    // 1s, 4s merge (gap 5 s); 12 s is 8 s after 4 s: its own session; 30 s and 33 s merge.
    assert_eq!(
        got,
        vec![(1_000, 4_000, 2), (12_000, 12_000, 1), (30_000, 33_000, 2)]
    );
    // The window changelog keys are Kafka's layout: key bytes, then the 8-byte start.
    let log = driver.output_topic::<Option<Vec<u8>>, Option<Vec<u8>>>("w-wins-changelog");
    let first = log.read_key_value().unwrap().unwrap();
    let mut key = b"u1".to_vec();
    key.extend_from_slice(&0i64.to_be_bytes());
    assert_eq!(first, (Some(key), Some(1i64.to_be_bytes().to_vec())));
    driver
        .advance_wall_clock_time(Duration::from_secs(1))
        .unwrap();
}
