//! One conformance suite for every key-value engine and wrapper: in-memory, RocksDB, and
//! each of them behind the record cache and change logging. Ranges, reverse ranges, prefix
//! scans and deletes must agree with a simple ordered map.

// Test helpers outside #[test] functions may unwrap too: a panic fails the test.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::ops::Bound;

use proptest::prelude::*;
use streams_state::{
    CachingKeyValueStore, ChangelogSink, InMemoryKeyValueStore, KeyValueStore,
    LoggingKeyValueStore, RocksDbKeyValueStore, RocksDbResources, StateError, StateStore,
    ThreadCache,
};

mod recording;
use recording::{Logged, RecordingSink};

struct NullSink;
impl ChangelogSink for NullSink {
    fn send(&mut self, _: &[u8], _: Option<&[u8]>) -> Result<(), StateError> {
        Ok(())
    }
}

/// Every engine and stack, fresh; the temp dir lives as long as the store.
fn stores() -> Vec<(String, Box<dyn KeyValueStore>, Option<tempfile::TempDir>)> {
    let resources = RocksDbResources::with_budget(16 << 20);
    let rocks = |name: &str| {
        let dir = tempfile::tempdir().unwrap();
        let s = RocksDbKeyValueStore::open(name, &dir.path().join(name), &resources).unwrap();
        (Box::new(s) as Box<dyn KeyValueStore>, Some(dir))
    };
    let (r1, d1) = rocks("rocks");
    let (r2, d2) = rocks("rocks-cached-logged");
    let (r3, d3) = rocks("rocks-logged");
    vec![
        (
            "memory".into(),
            Box::new(InMemoryKeyValueStore::new("m")),
            None,
        ),
        ("rocks".into(), r1, d1),
        (
            "memory-cached".into(),
            Box::new(CachingKeyValueStore::new(
                Box::new(InMemoryKeyValueStore::new("mc")),
                ThreadCache::new(300),
            )),
            None,
        ),
        (
            "rocks-cached-logged".into(),
            Box::new(CachingKeyValueStore::new(
                Box::new(LoggingKeyValueStore::new(r2, Box::new(NullSink))),
                ThreadCache::new(300),
            )),
            d2,
        ),
        (
            "rocks-logged".into(),
            Box::new(LoggingKeyValueStore::new(r3, Box::new(NullSink))),
            d3,
        ),
    ]
}

fn keys(it: streams_state::KeyValueIter<'_>) -> Vec<(Vec<u8>, Vec<u8>)> {
    it.map(Result::unwrap).collect()
}

fn bound(b: &Option<(bool, Vec<u8>)>) -> Bound<&[u8]> {
    match b {
        None => Bound::Unbounded,
        Some((true, k)) => Bound::Included(k.as_slice()),
        Some((false, k)) => Bound::Excluded(k.as_slice()),
    }
}

fn key_strategy() -> impl Strategy<Value = Vec<u8>> {
    // Small alphabet with 0x00 and 0xff so that prefixes and edge bytes collide often.
    proptest::collection::vec(
        prop_oneof![Just(0u8), Just(1u8), Just(b'a'), Just(0xffu8)],
        0..3,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    #[test]
    fn every_engine_agrees_with_an_ordered_map(
        ops in proptest::collection::vec((0u8..4, key_strategy(), any::<u8>()), 0..60),
        lo in proptest::option::of((any::<bool>(), key_strategy())),
        hi in proptest::option::of((any::<bool>(), key_strategy())),
        prefix in key_strategy(),
    ) {
        for (name, mut store, _dir) in stores() {
            let mut model: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
            for (op, k, v) in &ops {
                match op {
                    0 => { store.put(k, &[*v]).unwrap(); model.insert(k.clone(), vec![*v]); }
                    1 => { prop_assert_eq!(store.delete(k).unwrap(), model.remove(k), "{} delete", name); }
                    2 => { store.remove(k).unwrap(); model.remove(k); }
                    _ => { store.flush().unwrap(); }
                }
                prop_assert_eq!(store.get(k).unwrap(), model.get(k).cloned(), "{} get", name);
            }
            let valid = match (&lo, &hi) {
                (Some((li, l)), Some((hi_inc, h))) => l < h || (l == h && *li && *hi_inc),
                _ => true,
            };
            let want: Vec<_> = if valid {
                model.range::<[u8], _>((bound(&lo), bound(&hi))).map(|(k, v)| (k.clone(), v.clone())).collect()
            } else {
                Vec::new()
            };
            prop_assert_eq!(keys(store.range(bound(&lo), bound(&hi)).unwrap()), want.clone(), "{} range", name);
            let mut rev = want;
            rev.reverse();
            prop_assert_eq!(keys(store.reverse_range(bound(&lo), bound(&hi)).unwrap()), rev, "{} reverse", name);
            let want_prefix: Vec<_> = model.iter().filter(|(k, _)| k.starts_with(&prefix)).map(|(k, v)| (k.clone(), v.clone())).collect();
            prop_assert_eq!(keys(store.prefix_scan(&prefix).unwrap()), want_prefix, "{} prefix", name);
            prop_assert_eq!(keys(store.all().unwrap()), model.iter().map(|(k, v)| (k.clone(), v.clone())).collect::<Vec<_>>(), "{} all", name);
        }
    }
}

#[test]
fn a_blind_remove_logs_a_tombstone_whether_or_not_the_key_was_there() {
    for (name, inner, _dir) in stores() {
        let log = Logged::default();
        let mut store = LoggingKeyValueStore::new(inner, Box::new(RecordingSink(log.clone())));
        store.put(b"k", b"v").unwrap();
        store.remove(b"k").unwrap();
        store.remove(b"never").unwrap();
        store.flush().unwrap();
        assert_eq!(store.get(b"k").unwrap(), None, "{name}");
        let got = log.lock().unwrap().clone();
        let want = vec![
            (b"k".to_vec(), Some(b"v".to_vec())),
            (b"k".to_vec(), None),
            (b"never".to_vec(), None),
        ];
        assert_eq!(got, want, "{name}");
    }
}

#[test]
fn put_if_absent_and_put_all_on_every_engine() {
    for (name, mut store, _dir) in stores() {
        assert_eq!(store.put_if_absent(b"a", b"1").unwrap(), None, "{name}");
        assert_eq!(
            store.put_if_absent(b"a", b"2").unwrap(),
            Some(b"1".to_vec()),
            "{name}"
        );
        store.put_all(&[(b"b", b"x"), (b"c", b"y")]).unwrap();
        assert_eq!(store.get(b"c").unwrap(), Some(b"y".to_vec()), "{name}");
        assert!(store.approximate_num_entries().unwrap() >= 1, "{name}");
        store.close().unwrap();
        assert!(!store.is_open(), "{name}");
    }
}
