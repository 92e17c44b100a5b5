//! Conformance suite for window and session stores: every test runs against both engines
//! (in memory and RocksDB), plus property tests against a `BTreeMap` model.

// Test helpers outside `#[test]` functions may unwrap too: a panic is how a test fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::Arc;

use proptest::prelude::*;
use streams_state::{
    ChangelogRecord, InMemorySessionStore, InMemorySessionStoreSupplier, InMemoryWindowStore,
    InMemoryWindowStoreSupplier, LoggingSessionStore, LoggingWindowStore, RocksDbResources,
    RocksDbSessionStore, RocksDbSessionStoreSupplier, RocksDbWindowStore,
    RocksDbWindowStoreSupplier, SessionBytesStoreSupplier, SessionKeyBytes, SessionStore,
    StateError, StateStore, StoreContext, WindowBytesStoreSupplier, WindowStore,
    session_changelog_key, window_changelog_key,
};
use tempfile::TempDir;

mod recording;
use recording::{Logged, RecordingSink};

// ---------------------------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Mem,
    Rocks,
}

struct Harness {
    kind: Kind,
    _dir: TempDir,
    ctx: StoreContext,
}

impl Harness {
    fn new(kind: Kind) -> Self {
        let dir = TempDir::new().unwrap();
        let ctx = StoreContext::new(
            Some(dir.path().to_path_buf()),
            RocksDbResources::with_budget(16 << 20),
        );
        Self {
            kind,
            _dir: dir,
            ctx,
        }
    }

    /// Opens (for RocksDB: reopens if it exists) the window store `name`.
    fn window(&self, name: &str, retention: i64) -> Box<dyn WindowStore> {
        match self.kind {
            Kind::Mem => InMemoryWindowStoreSupplier::new(name, retention, 1)
                .unwrap()
                .get(&self.ctx)
                .unwrap(),
            Kind::Rocks => RocksDbWindowStoreSupplier::new(name, retention, 1)
                .unwrap()
                .get(&self.ctx)
                .unwrap(),
        }
    }

    /// Opens (for RocksDB: reopens if it exists) the session store `name`.
    fn session(&self, name: &str, retention: i64) -> Box<dyn SessionStore> {
        match self.kind {
            Kind::Mem => InMemorySessionStoreSupplier::new(name, retention)
                .unwrap()
                .get(&self.ctx)
                .unwrap(),
            Kind::Rocks => RocksDbSessionStoreSupplier::new(name, retention)
                .unwrap()
                .get(&self.ctx)
                .unwrap(),
        }
    }
}

fn to_records(logged: &Logged) -> Vec<ChangelogRecord> {
    logged
        .lock()
        .unwrap()
        .iter()
        .enumerate()
        .map(|(i, (k, v))| ChangelogRecord {
            offset: i as i64,
            key: k.clone(),
            value: v.clone(),
        })
        .collect()
}

fn times<S: WindowStore + ?Sized>(s: &S, key: &[u8], from: i64, to: i64) -> Vec<(i64, Vec<u8>)> {
    s.fetch_range(key, from, to)
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

fn back_times<S: WindowStore + ?Sized>(
    s: &S,
    key: &[u8],
    from: i64,
    to: i64,
) -> Vec<(i64, Vec<u8>)> {
    s.backward_fetch_range(key, from, to)
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

fn wkv(iter: streams_state::WindowedKeyValueIter<'_>) -> Vec<(Vec<u8>, i64, Vec<u8>)> {
    iter.map(|r| {
        let (k, v) = r.unwrap();
        (k.key, k.window_start, v)
    })
    .collect()
}

fn sess(iter: streams_state::SessionIter<'_>) -> Vec<(Vec<u8>, i64, i64, Vec<u8>)> {
    iter.map(|r| {
        let (k, v) = r.unwrap();
        (k.key, k.start, k.end, v)
    })
    .collect()
}

fn w(k: &[u8], t: i64, v: &[u8]) -> (Vec<u8>, i64, Vec<u8>) {
    (k.to_vec(), t, v.to_vec())
}

fn sv(k: &[u8], start: i64, end: i64, v: &[u8]) -> (Vec<u8>, i64, i64, Vec<u8>) {
    (k.to_vec(), start, end, v.to_vec())
}

const DAY: i64 = 86_400_000;

/// Keys that are prefixes of each other, in byte order.
const PREFIX_KEYS: [&[u8]; 7] = [b"", b"a", b"a\0", b"a\0b", b"ab", b"b", b"\xff"];

// ---------------------------------------------------------------------------------------------
// Window stores
// ---------------------------------------------------------------------------------------------

fn window_put_fetch_delete(h: &Harness) {
    let mut s = h.window("w", DAY);
    assert!(s.is_open());
    assert_eq!(s.name(), "w");
    assert_eq!(s.persistent(), h.kind == Kind::Rocks);
    assert_eq!(s.retention_period(), DAY);
    assert_eq!(s.observed_stream_time(), -1);
    s.put(b"k", Some(b"v1"), 1_000).unwrap();
    assert_eq!(s.observed_stream_time(), 1_000);
    assert_eq!(s.fetch(b"k", 1_000).unwrap(), Some(b"v1".to_vec()));
    assert_eq!(s.fetch(b"k", 1_001).unwrap(), None);
    assert_eq!(s.fetch(b"k2", 1_000).unwrap(), None);
    s.put(b"k", Some(b"v2"), 1_000).unwrap();
    assert_eq!(s.fetch(b"k", 1_000).unwrap(), Some(b"v2".to_vec()));
    s.put(b"", Some(b""), 500).unwrap();
    assert_eq!(s.fetch(b"", 500).unwrap(), Some(Vec::new()));
    assert_eq!(
        s.observed_stream_time(),
        1_000,
        "stream time only moves forward"
    );
    s.put(b"k", None, 1_000).unwrap();
    assert_eq!(s.fetch(b"k", 1_000).unwrap(), None);
    s.put(b"k", None, 2_000).unwrap(); // deleting nothing still advances stream time
    assert_eq!(s.observed_stream_time(), 2_000);
    assert_eq!(wkv(s.all().unwrap()), vec![w(b"", 500, b"")]);
    s.flush().unwrap();
    s.close().unwrap();
    assert!(!s.is_open());
    assert!(matches!(s.fetch(b"", 500), Err(StateError::NotOpen { .. })));
    assert!(matches!(
        s.put(b"", Some(b"x"), 500),
        Err(StateError::NotOpen { .. })
    ));
    assert!(matches!(s.all(), Err(StateError::NotOpen { .. })));
}

fn window_time_bounds_are_inclusive(h: &Harness) {
    let mut s = h.window("w", DAY);
    for t in [0, 10, 20, 30] {
        s.put(b"a", Some(format!("a{t}").as_bytes()), t).unwrap();
    }
    // Neighbouring keys that share a prefix must not leak into a single-key fetch.
    s.put(b"ab", Some(b"ab"), 10).unwrap();
    s.put(b"a\0", Some(b"a0"), 10).unwrap();
    s.put(b"", Some(b"e"), 10).unwrap();
    assert_eq!(
        times(&*s, b"a", 10, 20),
        vec![(10, b"a10".to_vec()), (20, b"a20".to_vec())]
    );
    assert_eq!(times(&*s, b"a", 11, 19), vec![]);
    assert_eq!(
        times(&*s, b"a", 20, 10),
        vec![],
        "inverted time range is empty"
    );
    assert_eq!(times(&*s, b"a", 30, 30), vec![(30, b"a30".to_vec())]);
    assert_eq!(
        times(&*s, b"a", i64::MIN, i64::MAX)
            .into_iter()
            .map(|(t, _)| t)
            .collect::<Vec<_>>(),
        vec![0, 10, 20, 30]
    );
    assert_eq!(
        back_times(&*s, b"a", 0, 30)
            .into_iter()
            .map(|(t, _)| t)
            .collect::<Vec<_>>(),
        vec![30, 20, 10, 0]
    );
    assert_eq!(back_times(&*s, b"a", 5, 15), vec![(10, b"a10".to_vec())]);
    assert_eq!(times(&*s, b"ab", 0, 30), vec![(10, b"ab".to_vec())]);
    assert_eq!(times(&*s, b"a\0", 0, 30), vec![(10, b"a0".to_vec())]);
    assert_eq!(times(&*s, b"", 0, 30), vec![(10, b"e".to_vec())]);
    assert_eq!(times(&*s, b"a\0\0", 0, 30), vec![]);
}

fn window_key_ranges_with_prefix_keys(h: &Harness) {
    let mut s = h.window("w", DAY);
    // Insert in scrambled order, across two segments (interval 12 h).
    for (i, k) in PREFIX_KEYS.iter().enumerate().rev() {
        s.put(k, Some(&[i as u8, 7]), 7).unwrap();
        s.put(k, Some(&[i as u8, 5]), 5).unwrap();
        s.put(k, Some(&[i as u8, 99]), DAY / 2 + 1).unwrap();
    }
    let all = wkv(s.all().unwrap());
    let mut expected = Vec::new();
    for (i, k) in PREFIX_KEYS.iter().enumerate() {
        expected.push(w(k, 5, &[i as u8, 5]));
        expected.push(w(k, 7, &[i as u8, 7]));
        expected.push(w(k, DAY / 2 + 1, &[i as u8, 99]));
    }
    assert_eq!(
        all, expected,
        "ascending by (key bytes, start) across segments"
    );

    let r = wkv(s.fetch_key_range(Some(b"a"), Some(b"ab"), 0, 10).unwrap());
    assert_eq!(
        r,
        vec![
            w(b"a", 5, &[1, 5]),
            w(b"a", 7, &[1, 7]),
            w(b"a\0", 5, &[2, 5]),
            w(b"a\0", 7, &[2, 7]),
            w(b"a\0b", 5, &[3, 5]),
            w(b"a\0b", 7, &[3, 7]),
            w(b"ab", 5, &[4, 5]),
            w(b"ab", 7, &[4, 7]),
        ]
    );
    let r = wkv(s
        .backward_fetch_key_range(Some(b"a"), Some(b"ab"), 6, 10)
        .unwrap());
    assert_eq!(
        r,
        vec![
            w(b"ab", 7, &[4, 7]),
            w(b"a\0b", 7, &[3, 7]),
            w(b"a\0", 7, &[2, 7]),
            w(b"a", 7, &[1, 7]),
        ]
    );
    // Open lower bound: "" and "a" only (a\0 > a).
    let r = wkv(s.fetch_key_range(None, Some(b"a"), 7, 7).unwrap());
    assert_eq!(r, vec![w(b"", 7, &[0, 7]), w(b"a", 7, &[1, 7])]);
    // Open upper bound.
    let r = wkv(s.fetch_key_range(Some(b"ab"), None, 7, DAY).unwrap());
    assert_eq!(
        r,
        vec![
            w(b"ab", 7, &[4, 7]),
            w(b"ab", DAY / 2 + 1, &[4, 99]),
            w(b"b", 7, &[5, 7]),
            w(b"b", DAY / 2 + 1, &[5, 99]),
            w(b"\xff", 7, &[6, 7]),
            w(b"\xff", DAY / 2 + 1, &[6, 99]),
        ]
    );
    // A single key as a range, including a key that is not stored but sorts between.
    let r = wkv(s
        .fetch_key_range(Some(b"a\0"), Some(b"a\0"), 0, DAY)
        .unwrap());
    assert_eq!(r.len(), 3);
    assert!(r.iter().all(|(k, _, _)| k == b"a\0"));
    let r = wkv(s
        .fetch_key_range(Some(b"a\0a"), Some(b"a\0a"), 0, DAY)
        .unwrap());
    assert_eq!(r, vec![]);
    assert_eq!(
        wkv(s.fetch_key_range(Some(b"b"), Some(b"a"), 0, DAY).unwrap()),
        vec![],
        "inverted key range is empty"
    );
    assert_eq!(
        wkv(s.fetch_key_range(Some(b"a"), Some(b"b"), 8, 6).unwrap()),
        vec![],
        "inverted time range is empty"
    );
    // fetch_all and its backward variant.
    let r = wkv(s.fetch_all(6, DAY).unwrap());
    let mut expected = Vec::new();
    for (i, k) in PREFIX_KEYS.iter().enumerate() {
        expected.push(w(k, 7, &[i as u8, 7]));
        expected.push(w(k, DAY / 2 + 1, &[i as u8, 99]));
    }
    assert_eq!(r, expected);
    let r = wkv(s.backward_fetch_all(6, DAY).unwrap());
    expected.reverse();
    assert_eq!(r, expected);
    let r = wkv(s.fetch_all(5, 5).unwrap());
    assert_eq!(r.len(), PREFIX_KEYS.len());
    assert!(r.iter().all(|(_, t, _)| *t == 5));
}

fn window_negative_and_large_timestamps(h: &Harness) {
    let mut s = h.window("w", 1 << 42);
    let ts: [i64; 9] = [
        -(1 << 40),
        -60_001,
        -60_000,
        -1,
        0,
        1,
        59_999,
        60_000,
        1 << 40,
    ];
    for t in ts.iter().rev() {
        s.put(b"k", Some(&t.to_be_bytes()), *t).unwrap();
    }
    assert_eq!(s.observed_stream_time(), 1 << 40);
    let got: Vec<i64> = times(&*s, b"k", i64::MIN, i64::MAX)
        .into_iter()
        .map(|(t, v)| {
            assert_eq!(v, t.to_be_bytes());
            t
        })
        .collect();
    assert_eq!(got, ts.to_vec());
    let got: Vec<i64> = times(&*s, b"k", -60_000, 0)
        .into_iter()
        .map(|(t, _)| t)
        .collect();
    assert_eq!(got, vec![-60_000, -1, 0]);
    let got: Vec<i64> = back_times(&*s, b"k", -(1 << 40), -1)
        .into_iter()
        .map(|(t, _)| t)
        .collect();
    assert_eq!(got, vec![-1, -60_000, -60_001, -(1 << 40)]);
    assert_eq!(
        s.fetch(b"k", -60_001).unwrap(),
        Some((-60_001i64).to_be_bytes().to_vec())
    );

    // The extremes of the time line.
    let mut lo = h.window("lo", DAY);
    lo.put(b"k", Some(b"min"), i64::MIN).unwrap();
    lo.put(b"k", Some(b"min+1"), i64::MIN + 1).unwrap();
    assert_eq!(lo.observed_stream_time(), i64::MIN + 1);
    assert_eq!(
        times(&*lo, b"k", i64::MIN, i64::MAX),
        vec![
            (i64::MIN, b"min".to_vec()),
            (i64::MIN + 1, b"min+1".to_vec())
        ]
    );
    let mut hi = h.window("hi", DAY);
    hi.put(b"k", Some(b"max"), i64::MAX).unwrap();
    hi.put(b"k", Some(b"max-1"), i64::MAX - 1).unwrap();
    assert_eq!(
        wkv(hi.fetch_all(i64::MIN, i64::MAX).unwrap()),
        vec![w(b"k", i64::MAX - 1, b"max-1"), w(b"k", i64::MAX, b"max")]
    );
    assert_eq!(hi.fetch(b"k", i64::MAX).unwrap(), Some(b"max".to_vec()));
}

/// Retention 120 s: segment interval 60 s.
fn window_retention<S: WindowStore + ?Sized>(s: &mut S, segments: impl Fn(&S) -> Vec<i64>) {
    s.put(b"k", Some(b"s0"), 0).unwrap();
    s.put(b"k", Some(b"s0b"), 59_999).unwrap();
    s.put(b"k", Some(b"s1"), 60_000).unwrap();
    s.put(b"j", Some(b"j1"), 70_000).unwrap();
    assert_eq!(segments(s), vec![0, 1]);
    s.put(b"k", Some(b"s2"), 120_000).unwrap();
    // T = 120 000, T - retention = 0: the window at 0 is expired, its segment lives on.
    assert_eq!(segments(s), vec![0, 1, 2]);
    assert_eq!(s.fetch(b"k", 0).unwrap(), None);
    assert_eq!(s.fetch(b"k", 59_999).unwrap(), Some(b"s0b".to_vec()));
    assert_eq!(
        times(s, b"k", i64::MIN, i64::MAX)
            .into_iter()
            .map(|(t, _)| t)
            .collect::<Vec<_>>(),
        vec![59_999, 60_000, 120_000]
    );
    // A put into a live segment but at or before T - retention is ignored too.
    s.put(b"k", Some(b"late"), 0).unwrap();
    assert_eq!(s.fetch(b"k", 0).unwrap(), None);
    // T = 180 000: min live segment = segment(60 000) = 1: segment 0 is dropped whole.
    s.put(b"k", Some(b"s3"), 180_000).unwrap();
    assert_eq!(segments(s), vec![1, 2, 3]);
    assert_eq!(s.fetch(b"k", 59_999).unwrap(), None);
    // Puts into an expired segment are silently ignored and do not recreate it.
    s.put(b"k", Some(b"late"), 59_999).unwrap();
    s.put(b"new", Some(b"late"), 1).unwrap();
    assert_eq!(segments(s), vec![1, 2, 3]);
    assert_eq!(s.fetch(b"k", 59_999).unwrap(), None);
    assert_eq!(s.observed_stream_time(), 180_000);
    // The window at 60 000 is now expired (60 000 <= 180 000 - 120 000) although segment 1
    // is still there.
    assert_eq!(
        wkv(s.all().unwrap()),
        vec![
            w(b"j", 70_000, b"j1"),
            w(b"k", 120_000, b"s2"),
            w(b"k", 180_000, b"s3")
        ]
    );
    assert_eq!(
        wkv(s
            .backward_fetch_key_range(Some(b"j"), Some(b"k"), 0, i64::MAX)
            .unwrap()),
        vec![
            w(b"k", 180_000, b"s3"),
            w(b"k", 120_000, b"s2"),
            w(b"j", 70_000, b"j1")
        ]
    );
    // A big jump drops everything but the newest segment.
    s.put(b"k", Some(b"far"), 10 * DAY).unwrap();
    assert_eq!(segments(s), vec![10 * DAY / 60_000]);
    assert_eq!(wkv(s.all().unwrap()), vec![w(b"k", 10 * DAY, b"far")]);
}

#[test]
fn in_memory_window_retention_drops_whole_segments() {
    let mut s = InMemoryWindowStore::new("w", 120_000).unwrap();
    window_retention(&mut s, InMemoryWindowStore::segment_ids);
}

#[test]
fn rocksdb_window_retention_drops_whole_segments() {
    let dir = TempDir::new().unwrap();
    let res = RocksDbResources::with_budget(16 << 20);
    let path = dir.path().join("w");
    let mut s = RocksDbWindowStore::open("w", &path, &res, 120_000).unwrap();
    assert_eq!(s.path(), path.as_path());
    window_retention(&mut s, RocksDbWindowStore::segment_ids);
    s.close().unwrap();
    let mut cfs = rocksdb::DB::list_cf(&rocksdb::Options::default(), &path).unwrap();
    cfs.sort();
    assert_eq!(
        cfs,
        vec![
            "default".to_string(),
            format!("segment-{}", 10 * DAY / 60_000)
        ],
        "expired segments are dropped column families"
    );
}

fn window_restore_round_trip(h: &Harness) {
    let logged: Logged = Arc::default();
    // Retention 200 s: after the last put (T = 130 000), windows up to -70 000 are expired.
    let mut src = LoggingWindowStore::new(
        h.window("src", 200_000),
        Box::new(RecordingSink(logged.clone())),
    );
    src.put(b"a", Some(b"1"), 1_000).unwrap();
    src.put(b"a\0", Some(b"2"), -5).unwrap();
    src.put(b"ab", Some(b"3"), 70_000).unwrap();
    src.put(b"a", Some(b"4"), 1_000).unwrap();
    src.put(b"b", Some(b"5"), 130_000).unwrap();
    src.put(b"ab", None, 70_000).unwrap();
    src.put(b"c", Some(b"6"), -100_000).unwrap(); // expired when written, still logged
    assert_eq!(src.observed_stream_time(), 130_000);
    let expected = wkv(src.all().unwrap());
    assert_eq!(
        expected,
        vec![
            w(b"a", 1_000, b"4"),
            w(b"a\0", -5, b"2"),
            w(b"b", 130_000, b"5")
        ]
    );

    let records = to_records(&logged);
    assert_eq!(records.len(), 7);
    let mut dst = h.window("dst", 200_000);
    let (first, rest) = records.split_at(3);
    dst.restore_batch(first).unwrap();
    assert_eq!(dst.observed_stream_time(), 70_000);
    dst.restore_batch(rest).unwrap();
    assert_eq!(wkv(dst.all().unwrap()), expected);
    assert_eq!(dst.observed_stream_time(), 130_000);
    assert_eq!(dst.fetch(b"ab", 70_000).unwrap(), None);
    assert_eq!(dst.fetch(b"a\0", -5).unwrap(), Some(b"2".to_vec()));
    assert_eq!(
        dst.fetch(b"c", -100_000).unwrap(),
        None,
        "expired by stream time"
    );

    // Restoring through a logging store does not log again.
    let relogged: Logged = Arc::default();
    let mut dst2 = LoggingWindowStore::new(
        h.window("dst2", 200_000),
        Box::new(RecordingSink(relogged.clone())),
    );
    dst2.restore_batch(&records).unwrap();
    assert!(relogged.lock().unwrap().is_empty());
    assert_eq!(wkv(dst2.all().unwrap()), expected);

    // A key too short to hold a window start is corrupt.
    let bad = [ChangelogRecord {
        offset: 0,
        key: vec![1, 2, 3],
        value: Some(b"x".to_vec()),
    }];
    let err = dst.restore_batch(&bad).unwrap_err();
    match err {
        StateError::Corrupt { store, .. } => assert_eq!(store, "dst"),
        other => panic!("unexpected error {other}"),
    }
}

fn window_logging_sends_changelog_records(h: &Harness) {
    let logged: Logged = Arc::default();
    let mut s =
        LoggingWindowStore::new(h.window("w", DAY), Box::new(RecordingSink(logged.clone())));
    assert_eq!(s.name(), "w");
    s.put(b"k", Some(b"v"), 5).unwrap();
    s.put(b"k", None, 5).unwrap();
    s.put(b"k\0", Some(b""), -2).unwrap();
    assert_eq!(
        *logged.lock().unwrap(),
        vec![
            (vec![b'k', 0, 0, 0, 0, 0, 0, 0, 5], Some(b"v".to_vec())),
            (vec![b'k', 0, 0, 0, 0, 0, 0, 0, 5], None),
            (
                vec![b'k', 0, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFE],
                Some(Vec::new())
            ),
        ]
    );
    assert_eq!(
        logged.lock().unwrap()[2].0,
        window_changelog_key(b"k\0", -2)
    );
    // Reads go through to the inner store.
    assert_eq!(s.fetch(b"k\0", -2).unwrap(), Some(Vec::new()));
    assert_eq!(times(&s, b"k\0", -2, -2), vec![(-2, Vec::new())]);
    assert_eq!(wkv(s.fetch_all(-10, 10).unwrap()), vec![w(b"k\0", -2, b"")]);
    assert_eq!(s.retention_period(), DAY);
    assert_eq!(s.observed_stream_time(), 5);
}

#[test]
fn rocksdb_window_store_reopens_with_data_and_segments() {
    let h = Harness::new(Kind::Rocks);
    let mut s = h.window("w", 120_000);
    s.put(b"a", Some(b"1"), 10_000).unwrap();
    s.put(b"b", Some(b"2"), 70_000).unwrap();
    s.put(b"c", Some(b"3"), 150_000).unwrap();
    s.close().unwrap();
    drop(s);
    let path = h.ctx.store_dir("w").unwrap();
    let mut cfs = rocksdb::DB::list_cf(&rocksdb::Options::default(), &path).unwrap();
    cfs.sort();
    assert_eq!(cfs, vec!["default", "segment-0", "segment-1", "segment-2"]);

    let mut s = RocksDbWindowStore::open("w", &path, h.ctx.resources(), 120_000).unwrap();
    assert_eq!(s.segment_ids(), vec![0, 1, 2]);
    assert_eq!(s.observed_stream_time(), 150_000);
    assert_eq!(
        wkv(s.all().unwrap()),
        vec![w(b"b", 70_000, b"2"), w(b"c", 150_000, b"3")],
        "the window at 10 000 stays expired after a restart"
    );
    // Expiry carries on from the remembered stream time.
    s.put(b"a", Some(b"late"), 20_000).unwrap();
    assert_eq!(s.fetch(b"a", 20_000).unwrap(), None);
    s.put(b"d", Some(b"4"), 190_000).unwrap();
    assert_eq!(s.segment_ids(), vec![1, 2, 3]);
    s.close().unwrap();
    drop(s);

    // Reopened with a different retention, the store keeps its 60 s segments.
    let s = h.window("w", 10 * DAY);
    assert_eq!(s.retention_period(), 10 * DAY);
    assert_eq!(
        wkv(s.all().unwrap()),
        vec![
            w(b"b", 70_000, b"2"),
            w(b"c", 150_000, b"3"),
            w(b"d", 190_000, b"4")
        ]
    );
}

// ---------------------------------------------------------------------------------------------
// Session stores
// ---------------------------------------------------------------------------------------------

fn session_put_fetch_remove(h: &Harness) {
    let mut s = h.session("s", DAY);
    assert_eq!(s.name(), "s");
    assert_eq!(s.persistent(), h.kind == Kind::Rocks);
    assert_eq!(s.retention_period(), DAY);
    assert_eq!(s.observed_stream_time(), -1);
    s.put(b"k", 10, 20, b"v1").unwrap();
    assert_eq!(s.observed_stream_time(), 20);
    assert_eq!(s.fetch_session(b"k", 10, 20).unwrap(), Some(b"v1".to_vec()));
    assert_eq!(s.fetch_session(b"k", 10, 21).unwrap(), None);
    assert_eq!(s.fetch_session(b"k", 11, 20).unwrap(), None);
    assert_eq!(s.fetch_session(b"k\0", 10, 20).unwrap(), None);
    s.put(b"k", 10, 20, b"v2").unwrap();
    assert_eq!(s.fetch_session(b"k", 10, 20).unwrap(), Some(b"v2".to_vec()));
    s.put(b"k", 25, 25, b"point").unwrap();
    assert_eq!(
        sess(s.fetch(b"k").unwrap()),
        vec![sv(b"k", 10, 20, b"v2"), sv(b"k", 25, 25, b"point")]
    );
    assert_eq!(
        sess(s.backward_fetch(b"k").unwrap()),
        vec![sv(b"k", 25, 25, b"point"), sv(b"k", 10, 20, b"v2")]
    );
    s.remove(b"k", 10, 20).unwrap();
    assert_eq!(s.fetch_session(b"k", 10, 20).unwrap(), None);
    s.remove(b"k", 30, 40).unwrap(); // removing nothing still advances stream time
    assert_eq!(s.observed_stream_time(), 40);
    assert_eq!(
        sess(s.fetch(b"k").unwrap()),
        vec![sv(b"k", 25, 25, b"point")]
    );
    assert!(matches!(
        s.put(b"k", 2, 1, b"x"),
        Err(StateError::InvalidArgument { .. })
    ));
    s.close().unwrap();
    assert!(!s.is_open());
    assert!(matches!(s.fetch(b"k"), Err(StateError::NotOpen { .. })));
    assert!(matches!(
        s.put(b"k", 1, 1, b"x"),
        Err(StateError::NotOpen { .. })
    ));
}

fn session_find_sessions_bounds(h: &Harness) {
    let mut s = h.session("s", DAY);
    for (start, end) in [(30, 40), (12, 20), (5, 10), (0, 10), (0, 0)] {
        s.put(b"k", start, end, format!("{start}-{end}").as_bytes())
            .unwrap();
    }
    s.put(b"k\0", 10, 10, b"other").unwrap();
    s.put(b"", 10, 10, b"empty").unwrap();
    s.put(b"kk", 10, 10, b"other").unwrap();
    // end >= 10 && start <= 12, both inclusive; ascending by (end, start).
    assert_eq!(
        sess(s.find_sessions(b"k", 10, 12).unwrap()),
        vec![
            sv(b"k", 0, 10, b"0-10"),
            sv(b"k", 5, 10, b"5-10"),
            sv(b"k", 12, 20, b"12-20")
        ]
    );
    assert_eq!(
        sess(s.backward_find_sessions(b"k", 10, 12).unwrap()),
        vec![
            sv(b"k", 12, 20, b"12-20"),
            sv(b"k", 5, 10, b"5-10"),
            sv(b"k", 0, 10, b"0-10")
        ]
    );
    assert_eq!(sess(s.find_sessions(b"k", 11, 11).unwrap()), vec![]);
    assert_eq!(
        sess(s.find_sessions(b"k", 0, 0).unwrap()),
        vec![sv(b"k", 0, 0, b"0-0"), sv(b"k", 0, 10, b"0-10"),]
    );
    assert_eq!(sess(s.find_sessions(b"k", 41, i64::MAX).unwrap()), vec![]);
    assert_eq!(
        sess(s.find_sessions(b"k", 40, 30).unwrap()),
        vec![sv(b"k", 30, 40, b"30-40")]
    );
    assert_eq!(sess(s.fetch(b"k").unwrap()).len(), 5);
    assert_eq!(
        sess(s.fetch(b"k\0").unwrap()),
        vec![sv(b"k\0", 10, 10, b"other")]
    );
    assert_eq!(sess(s.fetch(b"").unwrap()), vec![sv(b"", 10, 10, b"empty")]);
    assert_eq!(sess(s.fetch(b"missing").unwrap()), vec![]);
}

fn session_ranges_with_prefix_keys(h: &Harness) {
    let mut s = h.session("s", DAY);
    for (i, k) in PREFIX_KEYS.iter().enumerate().rev() {
        s.put(k, DAY / 2 + 5, DAY / 2 + 9, &[i as u8, 3]).unwrap(); // second segment
        s.put(k, 3, 8, &[i as u8, 2]).unwrap();
        s.put(k, 0, 8, &[i as u8, 1]).unwrap();
    }
    let all = sess(
        s.find_sessions_in_range(None, None, i64::MIN, i64::MAX)
            .unwrap(),
    );
    let mut expected = Vec::new();
    for (i, k) in PREFIX_KEYS.iter().enumerate() {
        expected.push(sv(k, 0, 8, &[i as u8, 1]));
        expected.push(sv(k, 3, 8, &[i as u8, 2]));
        expected.push(sv(k, DAY / 2 + 5, DAY / 2 + 9, &[i as u8, 3]));
    }
    assert_eq!(
        all, expected,
        "ascending by (key, end, start) across segments"
    );
    let back = sess(
        s.backward_find_sessions_in_range(None, None, i64::MIN, i64::MAX)
            .unwrap(),
    );
    expected.reverse();
    assert_eq!(back, expected);

    let r = sess(
        s.find_sessions_in_range(Some(b"a"), Some(b"ab"), 0, 2)
            .unwrap(),
    );
    assert_eq!(
        r,
        vec![
            sv(b"a", 0, 8, &[1, 1]),
            sv(b"a\0", 0, 8, &[2, 1]),
            sv(b"a\0b", 0, 8, &[3, 1]),
            sv(b"ab", 0, 8, &[4, 1]),
        ]
    );
    let r = sess(
        s.find_sessions_in_range(None, Some(b"a"), 9, i64::MAX)
            .unwrap(),
    );
    assert_eq!(
        r,
        vec![
            sv(b"", DAY / 2 + 5, DAY / 2 + 9, &[0, 3]),
            sv(b"a", DAY / 2 + 5, DAY / 2 + 9, &[1, 3]),
        ]
    );
    let r = sess(
        s.backward_find_sessions_in_range(Some(b"b"), None, 8, 3)
            .unwrap(),
    );
    assert_eq!(
        r,
        vec![
            sv(b"\xff", 3, 8, &[6, 2]),
            sv(b"\xff", 0, 8, &[6, 1]),
            sv(b"b", 3, 8, &[5, 2]),
            sv(b"b", 0, 8, &[5, 1]),
        ]
    );
    assert_eq!(
        sess(
            s.find_sessions_in_range(Some(b"b"), Some(b"a"), i64::MIN, i64::MAX)
                .unwrap()
        ),
        vec![],
        "inverted key range is empty"
    );
    let r = sess(
        s.find_sessions_in_range(Some(b"a\0"), Some(b"a\0"), 0, i64::MAX)
            .unwrap(),
    );
    assert_eq!(r.len(), 3);
    assert!(r.iter().all(|(k, ..)| k == b"a\0"));
}

fn session_negative_and_large_timestamps(h: &Harness) {
    let mut s = h.session("s", 1 << 42);
    let sessions: [(i64, i64); 7] = [
        (-(1 << 40), -(1 << 39)),
        (-70_000, -60_001),
        (-60_000, -1),
        (-5, 0),
        (0, 59_999),
        (60_000, 60_000),
        (1, 1 << 40),
    ];
    for (start, end) in sessions.iter().rev() {
        s.put(b"k", *start, *end, &start.to_be_bytes()).unwrap();
    }
    assert_eq!(s.observed_stream_time(), 1 << 40);
    let got: Vec<(i64, i64)> = sess(s.fetch(b"k").unwrap())
        .into_iter()
        .map(|(_, st, en, v)| {
            assert_eq!(v, st.to_be_bytes());
            (st, en)
        })
        .collect();
    assert_eq!(got, sessions.to_vec());
    let got: Vec<(i64, i64)> = sess(s.find_sessions(b"k", -60_001, -5).unwrap())
        .into_iter()
        .map(|(_, st, en, _)| (st, en))
        .collect();
    assert_eq!(got, vec![(-70_000, -60_001), (-60_000, -1), (-5, 0)]);

    let mut lo = h.session("lo", DAY);
    lo.put(b"k", i64::MIN, i64::MIN, b"a").unwrap();
    lo.put(b"k", i64::MIN, i64::MIN + 1, b"b").unwrap();
    assert_eq!(
        sess(lo.fetch(b"k").unwrap()),
        vec![
            sv(b"k", i64::MIN, i64::MIN, b"a"),
            sv(b"k", i64::MIN, i64::MIN + 1, b"b")
        ]
    );
    let mut hi = h.session("hi", DAY);
    hi.put(b"k", i64::MAX, i64::MAX, b"a").unwrap();
    hi.put(b"k", i64::MAX - 10, i64::MAX, b"b").unwrap();
    assert_eq!(
        sess(hi.find_sessions(b"k", i64::MAX, i64::MAX).unwrap()),
        vec![
            sv(b"k", i64::MAX - 10, i64::MAX, b"b"),
            sv(b"k", i64::MAX, i64::MAX, b"a")
        ]
    );
}

/// Retention 120 s: segment interval 60 s, segmented by session end.
fn session_retention<S: SessionStore + ?Sized>(s: &mut S, segments: impl Fn(&S) -> Vec<i64>) {
    s.put(b"k", 0, 0, b"a").unwrap();
    s.put(b"k", 0, 59_999, b"b").unwrap(); // long session: segment of its end
    s.put(b"k", 50_000, 60_000, b"c").unwrap();
    assert_eq!(segments(s), vec![0, 1]);
    s.put(b"j", 100_000, 120_000, b"d").unwrap();
    // T = 120 000: sessions ending at or before 0 are expired.
    assert_eq!(segments(s), vec![0, 1, 2]);
    assert_eq!(s.fetch_session(b"k", 0, 0).unwrap(), None);
    assert_eq!(
        s.fetch_session(b"k", 0, 59_999).unwrap(),
        Some(b"b".to_vec())
    );
    assert_eq!(
        sess(s.fetch(b"k").unwrap()),
        vec![sv(b"k", 0, 59_999, b"b"), sv(b"k", 50_000, 60_000, b"c")]
    );
    s.put(b"k", 0, 0, b"late").unwrap();
    assert_eq!(s.fetch_session(b"k", 0, 0).unwrap(), None);
    s.put(b"j", 170_000, 180_000, b"e").unwrap();
    // T = 180 000: min live segment = segment(60 000) = 1.
    assert_eq!(segments(s), vec![1, 2, 3]);
    s.put(b"k", 0, 59_999, b"late").unwrap();
    assert_eq!(segments(s), vec![1, 2, 3]);
    assert_eq!(s.observed_stream_time(), 180_000);
    assert_eq!(
        sess(
            s.find_sessions_in_range(None, None, i64::MIN, i64::MAX)
                .unwrap()
        ),
        vec![
            sv(b"j", 100_000, 120_000, b"d"),
            sv(b"j", 170_000, 180_000, b"e")
        ]
    );
    // A remove advances stream time too: every segment expires, and none is created.
    s.remove(b"j", 0, 10 * DAY).unwrap();
    assert_eq!(s.observed_stream_time(), 10 * DAY);
    assert_eq!(segments(s), Vec::<i64>::new());
    assert_eq!(
        sess(
            s.find_sessions_in_range(None, None, i64::MIN, i64::MAX)
                .unwrap()
        ),
        vec![]
    );
}

#[test]
fn in_memory_session_retention_drops_whole_segments() {
    let mut s = InMemorySessionStore::new("s", 120_000).unwrap();
    session_retention(&mut s, InMemorySessionStore::segment_ids);
}

#[test]
fn rocksdb_session_retention_drops_whole_segments() {
    let dir = TempDir::new().unwrap();
    let res = RocksDbResources::with_budget(16 << 20);
    let path = dir.path().join("s");
    let mut s = RocksDbSessionStore::open("s", &path, &res, 120_000).unwrap();
    assert_eq!(s.path(), path.as_path());
    session_retention(&mut s, RocksDbSessionStore::segment_ids);
    s.close().unwrap();
    let mut cfs = rocksdb::DB::list_cf(&rocksdb::Options::default(), &path).unwrap();
    cfs.sort();
    assert_eq!(cfs, vec!["default".to_string()]);
}

fn session_restore_round_trip(h: &Harness) {
    let logged: Logged = Arc::default();
    // Retention 200 s: after the last put (T = 130 000), sessions ending up to -70 000 are
    // expired.
    let mut src = LoggingSessionStore::new(
        h.session("src", 200_000),
        Box::new(RecordingSink(logged.clone())),
    );
    src.put(b"a", 0, 1_000, b"1").unwrap();
    src.put(b"a\0", -10, -5, b"2").unwrap();
    src.put(b"ab", 60_000, 70_000, b"3").unwrap();
    src.put(b"a", 0, 1_000, b"4").unwrap();
    src.put(b"b", 129_000, 130_000, b"5").unwrap();
    src.remove(b"ab", 60_000, 70_000).unwrap();
    src.put(b"c", -100_000, -100_000, b"6").unwrap(); // expired, still logged
    let expected = sess(
        src.find_sessions_in_range(None, None, i64::MIN, i64::MAX)
            .unwrap(),
    );
    assert_eq!(
        expected,
        vec![
            sv(b"a", 0, 1_000, b"4"),
            sv(b"a\0", -10, -5, b"2"),
            sv(b"b", 129_000, 130_000, b"5")
        ]
    );

    let records = to_records(&logged);
    assert_eq!(records.len(), 7);
    assert_eq!(records[5].value, None);
    let relogged: Logged = Arc::default();
    let mut dst = LoggingSessionStore::new(
        h.session("dst", 200_000),
        Box::new(RecordingSink(relogged.clone())),
    );
    for chunk in records.chunks(2) {
        dst.restore_batch(chunk).unwrap();
    }
    assert!(
        relogged.lock().unwrap().is_empty(),
        "restoration is not logged"
    );
    assert_eq!(
        sess(
            dst.find_sessions_in_range(None, None, i64::MIN, i64::MAX)
                .unwrap()
        ),
        expected
    );
    assert_eq!(dst.observed_stream_time(), 130_000);
    let bad = [ChangelogRecord {
        offset: 9,
        key: vec![0; 15],
        value: None,
    }];
    assert!(matches!(
        dst.restore_batch(&bad),
        Err(StateError::Corrupt { .. })
    ));
}

fn session_logging_sends_changelog_records(h: &Harness) {
    let logged: Logged = Arc::default();
    let mut s =
        LoggingSessionStore::new(h.session("s", DAY), Box::new(RecordingSink(logged.clone())));
    s.put(b"k", 1, 2, b"v").unwrap();
    s.remove(b"k", 1, 2).unwrap();
    s.put(b"", -1, 0, b"w").unwrap();
    let mut key = vec![b'k'];
    key.extend_from_slice(&2i64.to_be_bytes());
    key.extend_from_slice(&1i64.to_be_bytes());
    let mut empty = Vec::new();
    empty.extend_from_slice(&[0; 8]);
    empty.extend_from_slice(&[0xFF; 8]);
    assert_eq!(
        *logged.lock().unwrap(),
        vec![
            (key.clone(), Some(b"v".to_vec())),
            (key, None),
            (empty.clone(), Some(b"w".to_vec())),
        ]
    );
    assert_eq!(empty, session_changelog_key(b"", -1, 0));
    assert_eq!(
        streams_state::split_session_changelog_key(&empty).unwrap(),
        SessionKeyBytes {
            key: Vec::new(),
            start: -1,
            end: 0
        }
    );
    assert_eq!(sess(s.fetch(b"").unwrap()), vec![sv(b"", -1, 0, b"w")]);
    assert_eq!(s.fetch_session(b"", -1, 0).unwrap(), Some(b"w".to_vec()));
    assert_eq!(s.observed_stream_time(), 2);
    // A rejected put is not logged.
    assert!(s.put(b"k", 3, 2, b"x").is_err());
    assert_eq!(logged.lock().unwrap().len(), 3);
}

#[test]
fn rocksdb_session_store_reopens_with_data_and_segments() {
    let h = Harness::new(Kind::Rocks);
    let mut s = h.session("s", 120_000);
    s.put(b"a", 0, 10_000, b"1").unwrap();
    s.put(b"b", 65_000, 70_000, b"2").unwrap();
    s.put(b"c", 100_000, 150_000, b"3").unwrap();
    s.close().unwrap();
    drop(s);
    let path = h.ctx.store_dir("s").unwrap();
    let mut s = RocksDbSessionStore::open("s", &path, h.ctx.resources(), 120_000).unwrap();
    assert_eq!(s.segment_ids(), vec![0, 1, 2]);
    assert_eq!(s.observed_stream_time(), 150_000);
    assert_eq!(
        sess(
            s.find_sessions_in_range(None, None, i64::MIN, i64::MAX)
                .unwrap()
        ),
        vec![
            sv(b"b", 65_000, 70_000, b"2"),
            sv(b"c", 100_000, 150_000, b"3")
        ]
    );
    s.put(b"d", 185_000, 190_000, b"4").unwrap();
    assert_eq!(s.segment_ids(), vec![1, 2, 3]);
    s.close().unwrap();
    drop(s);
    let s = h.session("s", 120_000);
    assert_eq!(
        sess(s.find_sessions(b"d", 0, i64::MAX).unwrap()),
        vec![sv(b"d", 185_000, 190_000, b"4")]
    );
}

#[test]
fn suppliers_report_their_configuration() {
    let w = InMemoryWindowStoreSupplier::new("win", 3 * DAY, 60_000).unwrap();
    assert_eq!(
        (
            w.name(),
            w.persistent(),
            w.retention_period(),
            w.window_size(),
            w.segment_interval()
        ),
        ("win", false, 3 * DAY, 60_000, 3 * DAY / 2)
    );
    let w = RocksDbWindowStoreSupplier::new("win", 60_000, 60_000).unwrap();
    assert_eq!((w.persistent(), w.segment_interval()), (true, 60_000));
    let err = RocksDbWindowStoreSupplier::new("win", 59_999, 60_000).unwrap_err();
    assert!(matches!(err, StateError::InvalidArgument { ref store, .. } if store == "win"));
    assert!(err.to_string().contains("win"));
    let s = RocksDbSessionStoreSupplier::new("ses", 5 * 60_000).unwrap();
    assert_eq!(
        (
            s.name(),
            s.persistent(),
            s.retention_period(),
            s.segment_interval()
        ),
        ("ses", true, 300_000, 150_000)
    );
    assert!(
        !InMemorySessionStoreSupplier::new("ses", 1)
            .unwrap()
            .persistent()
    );
    // A persistent store needs a state directory.
    let ctx = StoreContext::new(None, RocksDbResources::with_budget(16 << 20));
    assert!(matches!(w.get(&ctx), Err(StateError::NoStateDir { .. })));
    assert!(matches!(s.get(&ctx), Err(StateError::NoStateDir { .. })));
}

macro_rules! both_engines {
    ($($test:ident),* $(,)?) => {
        mod in_memory {
            $(#[test] fn $test() { super::$test(&super::Harness::new(super::Kind::Mem)); })*
        }
        mod rocks_db {
            $(#[test] fn $test() { super::$test(&super::Harness::new(super::Kind::Rocks)); })*
        }
    };
}

both_engines!(
    window_put_fetch_delete,
    window_time_bounds_are_inclusive,
    window_key_ranges_with_prefix_keys,
    window_negative_and_large_timestamps,
    window_restore_round_trip,
    window_logging_sends_changelog_records,
    session_put_fetch_remove,
    session_find_sessions_bounds,
    session_ranges_with_prefix_keys,
    session_negative_and_large_timestamps,
    session_restore_round_trip,
    session_logging_sends_changelog_records,
);

// ---------------------------------------------------------------------------------------------
// Property tests against a BTreeMap model
// ---------------------------------------------------------------------------------------------

const KEYS: [&[u8]; 5] = [b"", b"a", b"a\0", b"ab", b"b"];
const RETENTIONS: [i64; 3] = [60_000, 100_000, 250_000];

fn time(i: u8) -> i64 {
    i64::from(i) * 25_000 - 150_000
}

fn opt_key(i: u8) -> Option<&'static [u8]> {
    KEYS.get(usize::from(i)).copied()
}

/// Whether a record at `t` is live at stream time `st` (Kafka: expired iff t <= st - R).
fn live(st: Option<i64>, retention: i64, t: i64) -> bool {
    st.is_none_or(|st| i128::from(t) > i128::from(st) - i128::from(retention))
}

#[derive(Debug, Clone)]
enum WinOp {
    Put {
        key: u8,
        t: u8,
        value: Option<u8>,
    },
    Fetch {
        key: u8,
        t: u8,
    },
    FetchRange {
        key: u8,
        from: u8,
        to: u8,
        backward: bool,
    },
    KeyRange {
        from: u8,
        to: u8,
        tfrom: u8,
        tto: u8,
        backward: bool,
    },
    FetchAll {
        tfrom: u8,
        tto: u8,
        backward: bool,
    },
    Reopen,
}

fn win_op() -> impl Strategy<Value = WinOp> {
    let k = 0u8..5;
    let t = 0u8..20;
    prop_oneof![
        6 => (k.clone(), t.clone(), proptest::option::weighted(0.8, any::<u8>()))
            .prop_map(|(key, t, value)| WinOp::Put { key, t, value }),
        1 => (k.clone(), t.clone()).prop_map(|(key, t)| WinOp::Fetch { key, t }),
        2 => (k.clone(), t.clone(), t.clone(), any::<bool>())
            .prop_map(|(key, from, to, backward)| WinOp::FetchRange { key, from, to, backward }),
        // Key index 5 stands for an open bound.
        2 => (0u8..6, 0u8..6, t.clone(), t.clone(), any::<bool>())
            .prop_map(|(from, to, tfrom, tto, backward)| WinOp::KeyRange { from, to, tfrom, tto, backward }),
        1 => (t.clone(), t, any::<bool>())
            .prop_map(|(tfrom, tto, backward)| WinOp::FetchAll { tfrom, tto, backward }),
        1 => Just(WinOp::Reopen),
    ]
}

fn check_window_model(kind: Kind, retention: i64, ops: &[WinOp]) -> Result<(), TestCaseError> {
    let h = Harness::new(kind);
    let mut store = h.window("w", retention);
    let mut model: BTreeMap<(Vec<u8>, i64), Vec<u8>> = BTreeMap::new();
    let mut st: Option<i64> = None;
    for op in ops {
        match *op {
            WinOp::Put { key, t, value } => {
                let (k, t) = (KEYS[usize::from(key)], time(t));
                store
                    .put(k, value.map(|v| [v]).as_ref().map(|v| &v[..]), t)
                    .unwrap();
                st = Some(st.map_or(t, |s| s.max(t)));
                if live(st, retention, t) {
                    match value {
                        Some(v) => {
                            model.insert((k.to_vec(), t), vec![v]);
                        }
                        None => {
                            model.remove(&(k.to_vec(), t));
                        }
                    }
                }
                prop_assert_eq!(store.observed_stream_time(), st.unwrap_or(-1));
            }
            WinOp::Fetch { key, t } => {
                let (k, t) = (KEYS[usize::from(key)], time(t));
                let expected = model
                    .get(&(k.to_vec(), t))
                    .filter(|_| live(st, retention, t))
                    .cloned();
                prop_assert_eq!(store.fetch(k, t).unwrap(), expected);
            }
            WinOp::FetchRange {
                key,
                from,
                to,
                backward,
            } => {
                let (k, from, to) = (KEYS[usize::from(key)], time(from), time(to));
                let mut expected: Vec<(i64, Vec<u8>)> = model
                    .iter()
                    .filter(|((mk, t), _)| {
                        mk.as_slice() == k && *t >= from && *t <= to && live(st, retention, *t)
                    })
                    .map(|((_, t), v)| (*t, v.clone()))
                    .collect();
                let got = if backward {
                    expected.reverse();
                    back_times(&*store, k, from, to)
                } else {
                    times(&*store, k, from, to)
                };
                prop_assert_eq!(got, expected);
            }
            WinOp::KeyRange {
                from,
                to,
                tfrom,
                tto,
                backward,
            } => {
                let (kf, kt, tf, tt) = (opt_key(from), opt_key(to), time(tfrom), time(tto));
                let mut expected: Vec<_> = model
                    .iter()
                    .filter(|((k, t), _)| {
                        kf.is_none_or(|f| k.as_slice() >= f)
                            && kt.is_none_or(|e| k.as_slice() <= e)
                            && *t >= tf
                            && *t <= tt
                            && live(st, retention, *t)
                    })
                    .map(|((k, t), v)| (k.clone(), *t, v.clone()))
                    .collect();
                let got = if backward {
                    expected.reverse();
                    wkv(store.backward_fetch_key_range(kf, kt, tf, tt).unwrap())
                } else {
                    wkv(store.fetch_key_range(kf, kt, tf, tt).unwrap())
                };
                prop_assert_eq!(got, expected);
            }
            WinOp::FetchAll {
                tfrom,
                tto,
                backward,
            } => {
                let (tf, tt) = (time(tfrom), time(tto));
                let mut expected: Vec<_> = model
                    .iter()
                    .filter(|((_, t), _)| *t >= tf && *t <= tt && live(st, retention, *t))
                    .map(|((k, t), v)| (k.clone(), *t, v.clone()))
                    .collect();
                let got = if backward {
                    expected.reverse();
                    wkv(store.backward_fetch_all(tf, tt).unwrap())
                } else {
                    wkv(store.fetch_all(tf, tt).unwrap())
                };
                prop_assert_eq!(got, expected);
            }
            WinOp::Reopen => {
                if kind == Kind::Rocks {
                    store.close().unwrap();
                    drop(store);
                    store = h.window("w", retention);
                }
            }
        }
    }
    let expected: Vec<_> = model
        .iter()
        .filter(|((_, t), _)| live(st, retention, *t))
        .map(|((k, t), v)| (k.clone(), *t, v.clone()))
        .collect();
    prop_assert_eq!(wkv(store.all().unwrap()), expected.clone());
    // Restoring the live contents into a fresh store gives the same view.
    let records: Vec<ChangelogRecord> = expected
        .iter()
        .enumerate()
        .map(|(i, (k, t, v))| ChangelogRecord {
            offset: i as i64,
            key: window_changelog_key(k, *t),
            value: Some(v.clone()),
        })
        .collect();
    let mut restored = h.window("restored", retention);
    restored.restore_batch(&records).unwrap();
    let restored_view: Vec<_> = wkv(restored.all().unwrap())
        .into_iter()
        .filter(|(_, t, _)| live(st, retention, *t))
        .collect();
    prop_assert_eq!(restored_view, expected);
    Ok(())
}

#[derive(Debug, Clone)]
enum SesOp {
    Put {
        key: u8,
        start: u8,
        len: u8,
        value: u8,
    },
    Remove {
        key: u8,
        start: u8,
        len: u8,
    },
    FetchSession {
        key: u8,
        start: u8,
        len: u8,
    },
    Find {
        key: u8,
        earliest_end: u8,
        latest_start: u8,
        backward: bool,
    },
    InRange {
        from: u8,
        to: u8,
        earliest_end: u8,
        latest_start: u8,
        backward: bool,
    },
    Fetch {
        key: u8,
    },
    Reopen,
}

fn ses_op() -> impl Strategy<Value = SesOp> {
    let k = 0u8..5;
    let t = 0u8..20;
    let len = 0u8..4;
    prop_oneof![
        6 => (k.clone(), t.clone(), len.clone(), any::<u8>())
            .prop_map(|(key, start, len, value)| SesOp::Put { key, start, len, value }),
        2 => (k.clone(), t.clone(), len.clone())
            .prop_map(|(key, start, len)| SesOp::Remove { key, start, len }),
        1 => (k.clone(), t.clone(), len).prop_map(|(key, start, len)| SesOp::FetchSession { key, start, len }),
        2 => (k.clone(), t.clone(), t.clone(), any::<bool>())
            .prop_map(|(key, earliest_end, latest_start, backward)| SesOp::Find { key, earliest_end, latest_start, backward }),
        2 => (0u8..6, 0u8..6, t.clone(), t, any::<bool>())
            .prop_map(|(from, to, earliest_end, latest_start, backward)| SesOp::InRange { from, to, earliest_end, latest_start, backward }),
        1 => k.prop_map(|key| SesOp::Fetch { key }),
        1 => Just(SesOp::Reopen),
    ]
}

type SessionModel = BTreeMap<(Vec<u8>, i64, i64), Vec<u8>>; // (key, end, start)

fn model_sessions(
    model: &SessionModel,
    st: Option<i64>,
    retention: i64,
    keep: impl Fn(&[u8], i64, i64) -> bool,
) -> Vec<(Vec<u8>, i64, i64, Vec<u8>)> {
    model
        .iter()
        .filter(|((k, end, start), _)| live(st, retention, *end) && keep(k, *start, *end))
        .map(|((k, end, start), v)| (k.clone(), *start, *end, v.clone()))
        .collect()
}

fn check_session_model(kind: Kind, retention: i64, ops: &[SesOp]) -> Result<(), TestCaseError> {
    let h = Harness::new(kind);
    let mut store = h.session("s", retention);
    let mut model = SessionModel::new();
    let mut st: Option<i64> = None;
    let bounds = |start: u8, len: u8| {
        let s = time(start);
        (s, s + i64::from(len) * 20_000)
    };
    for op in ops {
        match *op {
            SesOp::Put {
                key,
                start,
                len,
                value,
            } => {
                let k = KEYS[usize::from(key)];
                let (s, e) = bounds(start, len);
                store.put(k, s, e, &[value]).unwrap();
                st = Some(st.map_or(e, |x| x.max(e)));
                if live(st, retention, e) {
                    model.insert((k.to_vec(), e, s), vec![value]);
                }
                prop_assert_eq!(store.observed_stream_time(), st.unwrap_or(-1));
            }
            SesOp::Remove { key, start, len } => {
                let k = KEYS[usize::from(key)];
                let (s, e) = bounds(start, len);
                store.remove(k, s, e).unwrap();
                st = Some(st.map_or(e, |x| x.max(e)));
                if live(st, retention, e) {
                    model.remove(&(k.to_vec(), e, s));
                }
            }
            SesOp::FetchSession { key, start, len } => {
                let k = KEYS[usize::from(key)];
                let (s, e) = bounds(start, len);
                let expected = model
                    .get(&(k.to_vec(), e, s))
                    .filter(|_| live(st, retention, e))
                    .cloned();
                prop_assert_eq!(store.fetch_session(k, s, e).unwrap(), expected);
            }
            SesOp::Find {
                key,
                earliest_end,
                latest_start,
                backward,
            } => {
                let k = KEYS[usize::from(key)];
                let (ee, ls) = (time(earliest_end), time(latest_start));
                let mut expected = model_sessions(&model, st, retention, |mk, s, e| {
                    mk == k && e >= ee && s <= ls
                });
                let got = if backward {
                    expected.reverse();
                    sess(store.backward_find_sessions(k, ee, ls).unwrap())
                } else {
                    sess(store.find_sessions(k, ee, ls).unwrap())
                };
                prop_assert_eq!(got, expected);
            }
            SesOp::InRange {
                from,
                to,
                earliest_end,
                latest_start,
                backward,
            } => {
                let (kf, kt) = (opt_key(from), opt_key(to));
                let (ee, ls) = (time(earliest_end), time(latest_start));
                let mut expected = model_sessions(&model, st, retention, |mk, s, e| {
                    kf.is_none_or(|f| mk >= f) && kt.is_none_or(|t| mk <= t) && e >= ee && s <= ls
                });
                let got = if backward {
                    expected.reverse();
                    sess(
                        store
                            .backward_find_sessions_in_range(kf, kt, ee, ls)
                            .unwrap(),
                    )
                } else {
                    sess(store.find_sessions_in_range(kf, kt, ee, ls).unwrap())
                };
                prop_assert_eq!(got, expected);
            }
            SesOp::Fetch { key } => {
                let k = KEYS[usize::from(key)];
                let expected = model_sessions(&model, st, retention, |mk, _, _| mk == k);
                prop_assert_eq!(sess(store.fetch(k).unwrap()), expected);
            }
            SesOp::Reopen => {
                if kind == Kind::Rocks {
                    store.close().unwrap();
                    drop(store);
                    store = h.session("s", retention);
                }
            }
        }
    }
    let expected = model_sessions(&model, st, retention, |_, _, _| true);
    prop_assert_eq!(
        sess(
            store
                .find_sessions_in_range(None, None, i64::MIN, i64::MAX)
                .unwrap()
        ),
        expected.clone()
    );
    let records: Vec<ChangelogRecord> = expected
        .iter()
        .enumerate()
        .map(|(i, (k, s, e, v))| ChangelogRecord {
            offset: i as i64,
            key: session_changelog_key(k, *s, *e),
            value: Some(v.clone()),
        })
        .collect();
    let mut restored = h.session("restored", retention);
    restored.restore_batch(&records).unwrap();
    let view: Vec<_> = sess(
        restored
            .find_sessions_in_range(None, None, i64::MIN, i64::MAX)
            .unwrap(),
    )
    .into_iter()
    .filter(|(_, _, e, _)| live(st, retention, *e))
    .collect();
    prop_assert_eq!(view, expected);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn in_memory_window_store_matches_model(
        r in 0usize..3,
        ops in proptest::collection::vec(win_op(), 1..60),
    ) {
        check_window_model(Kind::Mem, RETENTIONS[r], &ops)?;
    }

    #[test]
    fn in_memory_session_store_matches_model(
        r in 0usize..3,
        ops in proptest::collection::vec(ses_op(), 1..60),
    ) {
        check_session_model(Kind::Mem, RETENTIONS[r], &ops)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn rocksdb_window_store_matches_model(
        r in 0usize..3,
        ops in proptest::collection::vec(win_op(), 1..60),
    ) {
        check_window_model(Kind::Rocks, RETENTIONS[r], &ops)?;
    }

    #[test]
    fn rocksdb_session_store_matches_model(
        r in 0usize..3,
        ops in proptest::collection::vec(ses_op(), 1..60),
    ) {
        check_session_model(Kind::Rocks, RETENTIONS[r], &ops)?;
    }
}
