//! `exactly_once_v2` on the embedded engine, in process: a word count over 4 partitions
//! whose every commit is a transaction. Read with `read_committed`, each word's counts
//! are 1, 2, 3, ... with no value repeated or skipped (caching off: every update is
//! emitted), across a clean restart and across a lost state directory; the stores were
//! checkpointed only on close. The kill -9 runs are in `eos_fault_suite.rs`.

// Test helpers outside #[test] functions may unwrap too: a panic fails the test.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use streams_core::prelude::*;
use streams_core::runtime::{Isolation, KafkaStreams, LogEngine, TaskState, TopicConfig};

use streams_tests::wordcount::{counts, produce, topology};

fn run(engine: &Arc<LogEngine>, state: &Path, cache: bool, threads: usize) {
    let config = StreamsConfig::new("wc-eos")
        .with_state_dir(state)
        .with_processing_guarantee(streams_core::config::ProcessingGuarantee::ExactlyOnceV2)
        .with_num_stream_threads(threads);
    let mut app = KafkaStreams::new(topology(cache), config, engine.clone()).unwrap();
    app.start().unwrap();
    app.wait_until_caught_up(Duration::from_secs(20)).unwrap();
    // Caught up means every task restored and ran (none stuck restoring).
    let states: Vec<TaskState> = app.metrics().tasks().map(|t| t.state).collect();
    assert!(
        !states.is_empty() && states.iter().all(|s| *s == TaskState::Running),
        "{states:?}"
    );
    app.close().unwrap();
}

#[test]
fn every_count_is_committed_exactly_once_across_restarts_and_a_lost_state_dir() {
    for cache in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let engine = Arc::new(LogEngine::open(&dir.path().join("log")).unwrap());
        engine
            .create_topic("sentences", TopicConfig::new(4))
            .unwrap();
        let state = dir.path().join("state");
        let mut expected = HashMap::new();
        produce(&engine, 0, 300, &mut expected);
        run(&engine, &state, cache, 2);
        produce(&engine, 300, 200, &mut expected);
        run(&engine, &state, cache, 2);
        // The state directory is lost: the stores come back from the changelogs (whose
        // last records are followed by commit markers, which restoration must step over)
        // before any new input arrives.
        std::fs::remove_dir_all(&state).unwrap();
        run(&engine, &state, cache, 1);
        produce(&engine, 500, 100, &mut expected);
        run(&engine, &state, cache, 2);
        let got = counts(&engine, Isolation::ReadCommitted);
        assert_eq!(got.len(), expected.len(), "cache {cache}");
        for (w, counts) in &got {
            let n = expected[w];
            if cache {
                // The cache emits some updates only: strictly increasing, ending at the count.
                assert!(counts.windows(2).all(|p| p[0] < p[1]), "{w}: {counts:?}");
                assert_eq!(counts.last(), Some(&n), "{w}");
            } else {
                assert_eq!(counts, &(1..=n).collect::<Vec<_>>(), "{w}");
            }
        }
        // Every transaction ended: nothing is left open, and the app committed its offsets.
        for p in 0..4 {
            assert_eq!(
                engine.last_stable_offset("word-counts", p).unwrap(),
                engine.offsets("word-counts", p).unwrap().1
            );
        }
        assert!(
            engine
                .transactions()
                .iter()
                .all(|t| t.partitions.is_empty())
        );
    }
}
