//! `KafkaStreams::run_until_signal`: a child process runs an app until it gets SIGTERM,
//! then closes cleanly — final commit, state listener through PendingShutdown to
//! NotRunning, exit status 0.

// Test helpers outside #[test] functions may unwrap too: a panic fails the test.
#![allow(clippy::unwrap_used)]

use std::io::BufRead;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use streams_core::prelude::*;
use streams_core::runtime::{KafkaStreams, LogEngine, NewRecord, TopicConfig};
use streams_tests::child;

const CHILD_ENV: &str = "STREAMS_RUNTIME_SIGNAL_DIR";

/// The child: runs the app until a signal, printing its state changes.
#[test]
fn signal_child_app() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let dir = PathBuf::from(dir);
    let engine = Arc::new(LogEngine::open(&dir.join("log")).unwrap());
    let builder = StreamsBuilder::new();
    builder
        .stream::<String, String>("in")
        .map_values(|v: String| v.to_uppercase())
        .to("out");
    let config = StreamsConfig::new("sig")
        .with_state_dir(dir.join("state"))
        .with_commit_interval(Duration::from_secs(3600));
    let mut app = KafkaStreams::new(builder.build().unwrap(), config, engine).unwrap();
    app.set_state_listener(|new, old| println!("state {old:?} -> {new:?}"));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(app.run_until_signal()).unwrap();
    println!("closed");
}

#[cfg(unix)]
#[test]
fn sigterm_closes_the_app_cleanly_with_a_final_commit() {
    let dir = tempfile::tempdir().unwrap();
    {
        let engine = LogEngine::open(&dir.path().join("log")).unwrap();
        engine.create_topic("in", TopicConfig::new(2)).unwrap();
        for p in 0..2 {
            let records: Vec<NewRecord> = (0..100)
                .map(|i| NewRecord {
                    timestamp: i,
                    key: Some(format!("k{i}").into_bytes()),
                    value: Some(b"hello".to_vec()),
                    headers: Vec::new(),
                })
                .collect();
            engine.append("in", p, &records).unwrap();
        }
        engine.flush().unwrap();
    }
    let (mut child, mut out) = child::spawn("signal_child_app", CHILD_ENV, dir.path());
    let mut lines = child::wait_for(&mut out, "-> Running");
    // The commit interval is an hour: only the shutdown's commit can commit offsets. 200
    // records take milliseconds; the wait leaves room for a loaded machine.
    std::thread::sleep(Duration::from_secs(2));
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    for l in out.lines() {
        lines.push(l.unwrap());
    }
    assert!(child.wait().unwrap().success(), "{lines:?}");
    assert!(
        lines
            .iter()
            .any(|l| l == "state Running -> PendingShutdown"),
        "{lines:?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l == "state PendingShutdown -> NotRunning"),
        "{lines:?}"
    );
    assert!(lines.iter().any(|l| l == "closed"), "{lines:?}");
    let engine = LogEngine::open(&dir.path().join("log")).unwrap();
    for p in 0..2 {
        assert_eq!(engine.committed("sig", "in", p), Some(100), "partition {p}");
    }
    let out: usize = (0..2)
        .map(|p| engine.read("out", p, 0, usize::MAX).unwrap().len())
        .sum();
    assert_eq!(out, 200);
}
