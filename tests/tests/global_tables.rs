//! Global tables and stream-global-table joins, in the test driver and in the runtime on the
//! embedded engine, checked against maps kept in the test.
//!
//! - Driver: each stream record joins the value its computed lookup key has at that moment
//!   (inner drops misses, left keeps them with `None`), across stream partitions, with
//!   tombstones; the store is queryable.
//! - Runtime: the global topic (4 partitions) is loaded completely before any stream record
//!   is processed, even when its records are newer in event time than the stream's; later
//!   updates are followed by the global thread; after a restart the store holds every key
//!   again (from its checkpoint); a record that does not decode is skipped, not fatal.

// Test helpers outside #[test] functions may unwrap too: a panic fails the test.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use streams_core::partitioner::partition_for_key;
use streams_core::prelude::*;
use streams_core::runtime::{KafkaStreams, LogEngine, NewRecord, TopicConfig};
use streams_tests::driver;

/// views (user -> page) joined with the global `pages` table (page -> category) by page.
fn topology(left: bool) -> Topology {
    let builder = StreamsBuilder::new();
    let pages = builder.global_table_with(
        "pages",
        Consumed::with(default_serde::<String>(), default_serde::<String>()),
        Materialized::as_("pages-store"),
    );
    let views = builder.stream::<String, String>("views");
    let joined = if left {
        views.left_join_global(
            &pages,
            |_user, page| page.clone(),
            |page, cat| format!("{page}:{}", cat.map_or("-", |c| c.as_str())),
        )
    } else {
        views.join_global(
            &pages,
            |_user, page| page.clone(),
            |page, cat| format!("{page}:{cat}"),
        )
    };
    joined.to("out");
    builder.build().unwrap()
}

#[test]
fn stream_global_joins_look_up_the_current_value_by_a_computed_key() {
    for left in [false, true] {
        let driver = TopologyTestDriver::builder(topology(left), StreamsConfig::new("g"))
            .partitions("views", 3)
            .partitions("pages", 2) // no co-partitioning needed
            .build()
            .unwrap();
        let pages = driver.input_topic::<String, Option<String>>("pages");
        let views = driver.input_topic::<String, String>("views");
        let mut table: BTreeMap<String, String> = BTreeMap::new();
        let mut want: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for i in 0..60usize {
            let page = format!("/p{}", i % 7);
            if i % 3 == 0 {
                // Every third step updates (or, one time in four, deletes) a page.
                let value = (i % 4 != 0).then(|| format!("cat{i}"));
                pages.pipe_input(page.clone(), value.clone()).unwrap();
                match value {
                    Some(v) => table.insert(page, v),
                    None => table.remove(&page),
                };
            } else {
                let user = format!("u{}", i % 5);
                views.pipe_input(user.clone(), page.clone()).unwrap();
                match (table.get(&page), left) {
                    (Some(c), _) => want.entry(user).or_default().push(format!("{page}:{c}")),
                    (None, true) => want.entry(user).or_default().push(format!("{page}:-")),
                    (None, false) => {}
                }
            }
        }
        let mut got: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (k, v) in driver::key_values::<String, String>(&driver, "out") {
            got.entry(k).or_default().push(v);
        }
        assert_eq!(got, want, "left = {left}");
        let store = driver
            .key_value_store::<String, String>("pages-store")
            .unwrap();
        for (page, cat) in &table {
            assert_eq!(store.get(page).unwrap().as_ref(), Some(cat));
        }
        assert_eq!(store.all().unwrap().len(), table.len());
    }
}

fn append(engine: &LogEngine, topic: &str, partitions: u32, key: &str, value: &[u8], ts: i64) {
    engine
        .append(
            topic,
            partition_for_key(key.as_bytes(), partitions),
            &[NewRecord {
                timestamp: ts,
                key: Some(key.as_bytes().to_vec()),
                value: Some(value.to_vec()),
                headers: Vec::new(),
            }],
        )
        .unwrap();
}

fn outputs(engine: &LogEngine) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let partitions = engine.topic_config("out").map_or(0, |c| c.partitions);
    for p in 0..partitions {
        for r in engine.read("out", p, 0, usize::MAX).unwrap() {
            out.push((
                String::from_utf8(r.key.unwrap()).unwrap(),
                String::from_utf8(r.value.unwrap()).unwrap(),
            ));
        }
    }
    out.sort();
    out
}

#[test]
fn runtime_loads_global_tables_before_processing_and_follows_them() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Arc::new(LogEngine::open(&dir.path().join("log")).unwrap());
    engine.create_topic("pages", TopicConfig::new(4)).unwrap();
    engine.create_topic("views", TopicConfig::new(2)).unwrap();
    engine.create_topic("out", TopicConfig::new(2)).unwrap();
    // 200 pages, newer in event time than every view, and one record that is not UTF-8.
    for i in 0..200 {
        append(
            &engine,
            "pages",
            4,
            &format!("/p{i}"),
            format!("cat{}", i % 9).as_bytes(),
            1_000_000 + i,
        );
    }
    append(&engine, "pages", 4, "/bad", &[0xff, 0xfe], 1_000_500);
    let mut want = Vec::new();
    for i in 0..300i64 {
        let page = format!("/p{}", (i * 7) % 200);
        let user = format!("u{}", i % 13);
        append(&engine, "views", 2, &user, page.as_bytes(), i);
        want.push((user, format!("{page}:cat{}", ((i * 7) % 200) % 9)));
    }
    want.sort();
    let config = |state: &std::path::Path| {
        StreamsConfig::new("global-app")
            .with_state_dir(state)
            .with_commit_interval(Duration::from_millis(100))
    };
    let state = dir.path().join("state");
    let mut app = KafkaStreams::new(topology(false), config(&state), engine.clone()).unwrap();
    app.start().unwrap();
    app.wait_until_caught_up(Duration::from_secs(60)).unwrap();
    assert_eq!(
        outputs(&engine),
        want,
        "every view joined the fully loaded table"
    );

    // An update is followed by the global thread, then used by the next view.
    append(&engine, "pages", 4, "/p3", b"updated", 2_000_000);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let store = app
            .key_value_store::<String, String>("pages-store")
            .unwrap();
        if store.get(&"/p3".to_string()).unwrap().as_deref() == Some("updated") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the update never reached the global store"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    append(&engine, "views", 2, "u1", b"/p3", 400);
    app.wait_until_caught_up(Duration::from_secs(60)).unwrap();
    assert!(
        outputs(&engine).contains(&("u1".to_string(), "/p3:updated".to_string())),
        "{:?}",
        outputs(&engine)
    );
    app.close().unwrap();

    // After a restart the store is complete again (200 pages, the bad record skipped).
    let mut app = KafkaStreams::new(topology(false), config(&state), engine.clone()).unwrap();
    app.start().unwrap();
    let store = app
        .key_value_store::<String, String>("pages-store")
        .unwrap();
    let all = store.all().unwrap();
    assert_eq!(all.len(), 200);
    assert_eq!(
        store.get(&"/p3".to_string()).unwrap().as_deref(),
        Some("updated")
    );
    app.close().unwrap();
}

#[test]
fn a_missing_global_topic_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Arc::new(LogEngine::open(&dir.path().join("log")).unwrap());
    engine.create_topic("views", TopicConfig::new(2)).unwrap();
    let config = StreamsConfig::new("global-missing").with_state_dir(dir.path().join("state"));
    let mut app = KafkaStreams::new(topology(true), config, engine).unwrap();
    let err = app.start().unwrap_err().to_string();
    assert!(
        err.contains("pages") && err.contains("global table"),
        "{err}"
    );
}
