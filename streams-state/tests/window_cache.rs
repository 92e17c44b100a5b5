//! The record cache in front of window stores: reads see cached writes, ranges merge the
//! cache over the store, and what leaves the cache (with the store's old value) rebuilds
//! exactly the latest state — for any budget, on both engines.

// Test helpers outside #[test] functions may unwrap too: a panic fails the test.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use proptest::prelude::*;
use streams_state::{
    CachingWindowStore, InMemoryWindowStore, RocksDbResources, RocksDbWindowStore, ThreadCache,
    WindowStore, split_window_changelog_key,
};

const RETENTION: i64 = 1_000_000;

fn engines(budget: usize) -> Vec<(Box<dyn WindowStore>, Option<tempfile::TempDir>)> {
    let dir = tempfile::tempdir().unwrap();
    let rocks = RocksDbWindowStore::open(
        "w",
        &dir.path().join("w"),
        &RocksDbResources::with_budget(16 << 20),
        RETENTION,
    )
    .unwrap();
    vec![
        (
            Box::new(CachingWindowStore::new(
                Box::new(InMemoryWindowStore::new("w", RETENTION).unwrap()),
                ThreadCache::new(budget),
            )),
            None,
        ),
        (
            Box::new(CachingWindowStore::new(
                Box::new(rocks),
                ThreadCache::new(budget),
            )),
            Some(dir),
        ),
    ]
}

#[test]
fn updates_coalesce_until_flush_and_carry_the_old_value() {
    for (mut s, _dir) in engines(1 << 20) {
        s.put(b"k", Some(b"1"), 0).unwrap();
        s.put(b"k", Some(b"2"), 0).unwrap();
        s.put(b"k", Some(b"x"), 10).unwrap();
        assert!(s.take_flushed().is_empty());
        assert_eq!(s.fetch(b"k", 0).unwrap(), Some(b"2".to_vec()));
        let range: Vec<_> = s
            .fetch_range(b"k", 0, 10)
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(range, vec![(0, b"2".to_vec()), (10, b"x".to_vec())]);
        s.flush_cache().unwrap();
        let f = s.take_flushed();
        assert_eq!(f.len(), 2);
        assert_eq!(
            split_window_changelog_key(&f[0].key).unwrap(),
            (b"k".to_vec(), 0)
        );
        assert_eq!(
            (f[0].new.clone(), f[0].old.clone()),
            (Some(b"2".to_vec()), None)
        );
        s.put(b"k", Some(b"3"), 0).unwrap();
        s.flush_cache().unwrap();
        assert_eq!(s.take_flushed()[0].old, Some(b"2".to_vec()));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]
    #[test]
    fn cached_window_stores_behave_like_a_map(
        budget in 0usize..400,
        ops in proptest::collection::vec((0u8..3, 0u8..4, 0i64..5, any::<u8>()), 0..60),
    ) {
        for (mut s, _dir) in engines(budget) {
            let mut model: BTreeMap<(Vec<u8>, i64), Vec<u8>> = BTreeMap::new();
            let mut downstream: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
            for (op, k, slot, v) in &ops {
                let key = vec![b'k', *k];
                let start = slot * 100;
                match op {
                    0 => { s.put(&key, Some(&[*v]), start).unwrap(); model.insert((key.clone(), start), vec![*v]); }
                    1 => { s.put(&key, None, start).unwrap(); model.remove(&(key.clone(), start)); }
                    _ => { s.flush_cache().unwrap(); }
                }
                prop_assert_eq!(s.fetch(&key, start).unwrap(), model.get(&(key.clone(), start)).cloned());
                for e in s.take_flushed() {
                    match e.new { Some(v) => { downstream.insert(e.key, v); } None => { downstream.remove(&e.key); } }
                }
            }
            let all: Vec<_> = s.fetch_all(0, 1_000).unwrap().map(Result::unwrap)
                .map(|(k, v)| ((k.key, k.window_start), v)).collect();
            prop_assert_eq!(all, model.clone().into_iter().collect::<Vec<_>>());
            s.flush_cache().unwrap();
            for e in s.take_flushed() {
                match e.new { Some(v) => { downstream.insert(e.key, v); } None => { downstream.remove(&e.key); } }
            }
            let rebuilt: BTreeMap<(Vec<u8>, i64), Vec<u8>> = downstream.into_iter()
                .map(|(k, v)| (split_window_changelog_key(&k).unwrap(), v)).collect();
            prop_assert_eq!(rebuilt, model);
        }
    }
}

mod sessions {
    use super::*;
    use streams_state::{
        CachingSessionStore, InMemorySessionStore, SessionStore, split_session_changelog_key,
    };

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        /// Sessions behind the cache: reads and searches see cached writes and removals (of
        /// one key only, where keys extend each other), and what leaves the cache rebuilds
        /// exactly the latest sessions.
        #[test]
        fn cached_session_stores_behave_like_a_map(
            budget in 0usize..400,
            ops in proptest::collection::vec((0u8..3, 0u8..3, 0i64..4, 0i64..3, any::<u8>()), 0..50),
        ) {
            let mut s = CachingSessionStore::new(
                Box::new(InMemorySessionStore::new("s", RETENTION).unwrap()),
                ThreadCache::new(budget),
            );
            let mut model: BTreeMap<(Vec<u8>, i64, i64), Vec<u8>> = BTreeMap::new();
            let mut downstream: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
            for (op, k, start, len, v) in &ops {
                // Keys that extend each other: one key's sessions sort among the others'.
                let key = b"k01"[..=usize::from(*k)].to_vec();
                let (start, end) = (start * 100, start * 100 + len * 50);
                match op {
                    0 => { s.put(&key, start, end, &[*v]).unwrap(); model.insert((key.clone(), start, end), vec![*v]); }
                    1 => { s.remove(&key, start, end).unwrap(); model.remove(&(key.clone(), start, end)); }
                    _ => { s.flush_cache().unwrap(); }
                }
                prop_assert_eq!(s.fetch_session(&key, start, end).unwrap(), model.get(&(key.clone(), start, end)).cloned());
                let found: Vec<_> = s.find_sessions(&key, 0, 1_000).unwrap().map(Result::unwrap)
                    .map(|(k, v)| ((k.key, k.start, k.end), v)).collect();
                let mut want: Vec<_> = model.iter().filter(|((mk, _, _), _)| *mk == key)
                    .map(|(k, v)| (k.clone(), v.clone())).collect();
                want.sort_by_key(|((_, st, en), _)| (*en, *st));
                prop_assert_eq!(found, want);
                for e in s.take_flushed() {
                    match e.new { Some(v) => { downstream.insert(e.key, v); } None => { downstream.remove(&e.key); } }
                }
            }
            s.flush_cache().unwrap();
            for e in s.take_flushed() {
                match e.new { Some(v) => { downstream.insert(e.key, v); } None => { downstream.remove(&e.key); } }
            }
            let rebuilt: BTreeMap<(Vec<u8>, i64, i64), Vec<u8>> = downstream.into_iter()
                .map(|(k, v)| { let k = split_session_changelog_key(&k).unwrap(); ((k.key, k.start, k.end), v) }).collect();
            prop_assert_eq!(rebuilt, model);
        }
    }
}
