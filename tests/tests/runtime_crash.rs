//! At-least-once across `kill -9`: a child process runs the app on the embedded engine and
//! is killed mid-run; a restarted app reflects every input record (duplicates are allowed
//! and measured), with torn log tails truncated on open.

// Test helpers outside #[test] functions may unwrap too: a panic fails the test.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout};
use std::sync::Arc;
use std::time::Duration;

use streams_core::prelude::*;
use streams_core::runtime::{KafkaStreams, LogEngine, TopicConfig};
use streams_tests::child;

const CHILD_ENV: &str = "STREAMS_RUNTIME_CRASH_DIR";
fn word_count() -> Topology {
    streams_tests::wordcount::topology(true)
}

/// The child: runs the app until killed; says "caught-up" each time it has processed all.
#[test]
fn crash_child_app() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let dir = PathBuf::from(dir);
    let engine = Arc::new(LogEngine::open(&dir.join("log")).unwrap());
    let config = StreamsConfig::new("crash")
        .with_state_dir(dir.join("state"))
        .with_commit_interval(Duration::from_millis(20));
    let mut app = KafkaStreams::new(word_count(), config, engine).unwrap();
    app.start().unwrap();
    println!("started");
    app.wait_until_caught_up(Duration::from_secs(120)).unwrap();
    println!("caught-up");
    loop {
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn produce(dir: &Path, from: usize, n: usize, expected: &mut HashMap<String, i64>) {
    let engine = LogEngine::open(&dir.join("log")).unwrap();
    if engine.topics().is_empty() {
        engine
            .create_topic("sentences", TopicConfig::new(4))
            .unwrap();
    }
    streams_tests::wordcount::produce(&engine, from, n, expected);
    engine.flush().unwrap();
}

fn spawn(dir: &Path) -> (Child, BufReader<ChildStdout>) {
    child::spawn("crash_child_app", CHILD_ENV, dir)
}

#[test]
fn kill_dash_nine_mid_run_loses_no_input() {
    let dir = tempfile::tempdir().unwrap();
    let mut expected = HashMap::new();
    produce(dir.path(), 0, 60_000, &mut expected);

    // Killed while processing.
    let (mut child, mut out) = spawn(dir.path());
    child::wait_for(&mut out, "started");
    std::thread::sleep(Duration::from_millis(150));
    child.kill().unwrap();
    child.wait().unwrap();

    // More input arrives while it is down; a restarted app catches up.
    produce(dir.path(), 60_000, 2_000, &mut expected);
    let (mut child, mut out) = spawn(dir.path());
    child::wait_for(&mut out, "caught-up");
    child.kill().unwrap();
    child.wait().unwrap();

    let engine = LogEngine::open(&dir.path().join("log")).unwrap();
    let mut counts: HashMap<String, i64> = HashMap::new();
    for p in 0..4 {
        for r in engine.read("word-counts", p, 0, usize::MAX).unwrap() {
            let w = String::from_utf8(r.key.unwrap()).unwrap();
            counts.insert(w, i64::from_be_bytes(r.value.unwrap().try_into().unwrap()));
        }
    }
    let total: i64 = expected.values().sum();
    let counted: i64 = counts.values().sum();
    println!(
        "inputs {total} words, counted {counted}: {} counted twice (at-least-once), torn bytes cut on reopen: {}",
        counted - total,
        engine.recovery_report().truncated_bytes
    );
    for (w, n) in &expected {
        assert!(
            counts.get(w).copied().unwrap_or(0) >= *n,
            "word {w}: {counts:?} vs {expected:?}"
        );
    }
}
