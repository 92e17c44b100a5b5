//! One memory budget: many RocksDB stores opened with the same `RocksDbResources` stay
//! within it, however many there are. (Alone in its test binary so that the process's
//! resident memory is not shared with other tests.)

// Test helpers outside #[test] functions may unwrap too: a panic fails the test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::ops::Bound;

use streams_state::{KeyValueStore, RocksDbKeyValueStore, RocksDbResources, StateStore};

fn rss_bytes() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").expect("procfs");
    let kb: usize = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .expect("VmRSS line");
    kb * 1024
}

#[test]
fn many_stores_stay_within_one_budget() {
    const BUDGET: usize = 64 << 20;
    const STORES: usize = 48;
    const PER_STORE: usize = 40_000; // 48 x 40k x ~120 B = 230 MB written, 3.6x the budget
    let dir = tempfile::tempdir().unwrap();
    let resources = RocksDbResources::with_budget(BUDGET);
    let before = rss_bytes();
    let mut stores: Vec<RocksDbKeyValueStore> = (0..STORES)
        .map(|i| {
            RocksDbKeyValueStore::open(
                &format!("s{i}"),
                &dir.path().join(format!("s{i}")),
                &resources,
            )
            .unwrap()
        })
        .collect();
    let value = vec![7u8; 100];
    let mut peak_cache = 0;
    let mut peak_rss = 0;
    for round in 0..PER_STORE / 1000 {
        for s in &mut stores {
            for i in 0..1000 {
                let key = format!("key-{:08}", round * 1000 + i);
                s.put(key.as_bytes(), &value).unwrap();
            }
        }
        // Read back a little from every store so that the block cache fills too.
        for s in &stores {
            let _ = s
                .range(Bound::Unbounded, Bound::Unbounded)
                .unwrap()
                .take(500)
                .count();
        }
        peak_cache = peak_cache.max(resources.cache_usage());
        peak_rss = peak_rss.max(rss_bytes());
    }
    let grown = peak_rss.saturating_sub(before);
    println!(
        "stores {STORES}, budget {} MiB, peak cache usage {} MiB, RSS growth {} MiB",
        BUDGET >> 20,
        peak_cache >> 20,
        grown >> 20
    );
    // The block cache (memtables are charged to it) respects the budget, with RocksDB's
    // usual slack for entries in flight.
    assert!(
        peak_cache <= BUDGET + BUDGET / 8,
        "cache usage {peak_cache} over budget"
    );
    // The whole process grows by at most the budget plus fixed per-store overhead (table
    // readers, iterators, file handles): far below 48 default memtables of 64 MiB each.
    assert!(
        grown <= BUDGET + STORES * (1 << 20) + (32 << 20),
        "RSS grew {grown} bytes"
    );
    for s in &mut stores {
        s.close().unwrap();
    }
}
