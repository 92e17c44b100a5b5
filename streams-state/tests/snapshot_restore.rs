//! Restoration from a changelog and from a snapshot plus the changelog's tail: the restored
//! store equals the store before the loss, and the listener sees start, batches and end.

// Test helpers outside #[test] functions may unwrap too: a panic fails the test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use streams_state::{
    ChangelogRecord, ChangelogSink, InMemoryKeyValueStore, KeyValueStore, LoggingKeyValueStore,
    RestoreListener, RocksDbKeyValueStore, RocksDbResources, StateError, StateStore,
    install_snapshot, latest_snapshot, restore_store, take_snapshot,
};

#[derive(Clone, Default)]
struct VecSink(Arc<Mutex<Vec<ChangelogRecord>>>);

impl ChangelogSink for VecSink {
    fn send(&mut self, key: &[u8], value: Option<&[u8]>) -> Result<(), StateError> {
        let mut v = self.0.lock().unwrap();
        let offset = v.len() as i64;
        v.push(ChangelogRecord {
            offset,
            key: key.to_vec(),
            value: value.map(<[u8]>::to_vec),
        });
        Ok(())
    }
}

#[derive(Default)]
struct Events(Mutex<Vec<String>>);

impl RestoreListener for Events {
    fn on_restore_start(&self, store: &str, start: i64, end: i64) {
        self.0
            .lock()
            .unwrap()
            .push(format!("start {store} {start} {end}"));
    }
    fn on_batch_restored(&self, store: &str, batch_end: i64, n: u64) {
        self.0
            .lock()
            .unwrap()
            .push(format!("batch {store} {batch_end} {n}"));
    }
    fn on_restore_end(&self, store: &str, total: u64) {
        self.0.lock().unwrap().push(format!("end {store} {total}"));
    }
}

fn write_some(store: &mut dyn KeyValueStore, from: usize, to: usize) {
    for i in from..to {
        let k = format!("k{:05}", i % 700);
        if i % 11 == 0 {
            store.delete(k.as_bytes()).unwrap();
        } else {
            store.put(k.as_bytes(), format!("v{i}").as_bytes()).unwrap();
        }
    }
}

fn contents(store: &dyn KeyValueStore) -> BTreeMap<Vec<u8>, Vec<u8>> {
    store.all().unwrap().map(Result::unwrap).collect()
}

#[test]
fn full_restore_rebuilds_the_lost_store_on_both_engines() {
    let dir = tempfile::tempdir().unwrap();
    let resources = RocksDbResources::with_budget(16 << 20);
    let sink = VecSink::default();
    let engine = RocksDbKeyValueStore::open("s", &dir.path().join("a"), &resources).unwrap();
    let mut store = LoggingKeyValueStore::new(Box::new(engine), Box::new(sink.clone()));
    write_some(&mut store, 0, 5000);
    let before = contents(&store);
    let log = sink.0.lock().unwrap().clone();
    assert_eq!(log.len(), 5000);

    for fresh in [
        Box::new(RocksDbKeyValueStore::open("s", &dir.path().join("b"), &resources).unwrap())
            as Box<dyn KeyValueStore>,
        Box::new(InMemoryKeyValueStore::new("s")),
    ] {
        let mut fresh = fresh;
        let events = Events::default();
        let s = restore_store(
            fresh.as_mut(),
            log.iter().cloned().map(Ok),
            0,
            5000,
            2000,
            &events,
        )
        .unwrap();
        assert_eq!((s.restored, s.next_offset), (5000, 5000));
        assert_eq!(contents(fresh.as_ref()), before);
        assert_eq!(
            *events.0.lock().unwrap(),
            vec![
                "start s 0 5000",
                "batch s 2000 2000",
                "batch s 4000 2000",
                "batch s 5000 1000",
                "end s 5000"
            ]
        );
    }
}

#[test]
fn snapshot_plus_changelog_tail_equals_the_store_before_the_loss() {
    let dir = tempfile::tempdir().unwrap();
    let task_dir = dir.path().join("0_0");
    let store_dir = task_dir.join("rocksdb").join("s");
    let resources = RocksDbResources::with_budget(16 << 20);
    let sink = VecSink::default();
    let engine = RocksDbKeyValueStore::open("s", &store_dir, &resources).unwrap();
    let mut store = LoggingKeyValueStore::new(Box::new(engine), Box::new(sink.clone()));
    write_some(&mut store, 0, 3000);
    store.flush().unwrap();
    let snap = take_snapshot(&store, &task_dir, 3000)
        .unwrap()
        .expect("RocksDB snapshots");
    write_some(&mut store, 3000, 4500);
    let before = contents(&store);
    store.close().unwrap();
    drop(store);

    // The store is lost; the snapshot and the changelog remain.
    std::fs::remove_dir_all(&store_dir).unwrap();
    let (found, offset) = latest_snapshot(&task_dir, "s").unwrap();
    assert_eq!((found.clone(), offset), (snap, 3000));
    install_snapshot(&found, &store_dir).unwrap();
    let mut restored = RocksDbKeyValueStore::open("s", &store_dir, &resources).unwrap();
    let log = sink.0.lock().unwrap().clone();
    let events = Events::default();
    let s = restore_store(
        &mut restored,
        log.into_iter().map(Ok),
        offset,
        4500,
        10_000,
        &events,
    )
    .unwrap();
    assert_eq!(s.restored, 1500, "only the tail is replayed");
    assert_eq!(contents(&restored), before);
}
