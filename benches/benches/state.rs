//! State store benchmarks: our RocksDB store API against the raw `rocksdb` crate with the
//! same options (the overhead of our layer), and the restore rate from a changelog.
//! Run with `cargo bench -p streams-benches --bench state`.

// criterion_group! generates undocumented public functions.
#![allow(missing_docs)]

use std::ops::Bound;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use rocksdb::{DB, WriteOptions};
use streams_state::{
    ChangelogRecord, KeyValueStore, NoopRestoreListener, RocksDbKeyValueStore, RocksDbResources,
    restore_store,
};

const N: usize = 100_000;

fn key(i: usize) -> Vec<u8> {
    format!("user-{:08}", (i * 7919) % N).into_bytes()
}

fn value() -> Vec<u8> {
    vec![b'v'; 100]
}

fn put_get_range(c: &mut Criterion) {
    let resources = RocksDbResources::with_budget(256 << 20);
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut ours = RocksDbKeyValueStore::open("ours", &dir.path().join("ours"), &resources)
        .unwrap_or_else(|e| panic!("{e}"));
    let raw =
        DB::open(&resources.options(), dir.path().join("raw")).unwrap_or_else(|e| panic!("{e}"));
    let mut wo = WriteOptions::default();
    wo.disable_wal(true);
    let keys: Vec<Vec<u8>> = (0..N).map(key).collect();
    let v = value();

    let mut g = c.benchmark_group("rocksdb_put");
    g.throughput(Throughput::Elements(N as u64));
    g.sample_size(10);
    g.bench_function("ours", |b| {
        b.iter(|| {
            for k in &keys {
                ours.put(k, &v).unwrap_or_else(|e| panic!("{e}"));
            }
        })
    });
    g.bench_function("raw", |b| {
        b.iter(|| {
            for k in &keys {
                raw.put_opt(k, &v, &wo).unwrap_or_else(|e| panic!("{e}"));
            }
        })
    });
    g.finish();

    let mut g = c.benchmark_group("rocksdb_get");
    g.throughput(Throughput::Elements(N as u64));
    g.sample_size(10);
    g.bench_function("ours", |b| {
        b.iter(|| {
            for k in &keys {
                std::hint::black_box(ours.get(k).unwrap_or_else(|e| panic!("{e}")));
            }
        })
    });
    g.bench_function("raw", |b| {
        b.iter(|| {
            for k in &keys {
                std::hint::black_box(
                    raw.get_pinned(k)
                        .unwrap_or_else(|e| panic!("{e}"))
                        .map(|s| s.to_vec()),
                );
            }
        })
    });
    g.finish();

    let mut g = c.benchmark_group("rocksdb_range_scan");
    g.throughput(Throughput::Elements(N as u64));
    g.sample_size(10);
    g.bench_function("ours", |b| {
        b.iter(|| {
            let n = ours
                .range(Bound::Unbounded, Bound::Unbounded)
                .unwrap_or_else(|e| panic!("{e}"))
                .count();
            assert_eq!(n, N);
        })
    });
    g.bench_function("raw", |b| {
        b.iter(|| {
            let mut it = raw.raw_iterator();
            it.seek_to_first();
            let mut n = 0;
            while it.valid() {
                std::hint::black_box((
                    it.key().map(<[u8]>::to_vec),
                    it.value().map(<[u8]>::to_vec),
                ));
                n += 1;
                it.next();
            }
            assert_eq!(n, N);
        })
    });
    g.finish();
}

fn restore(c: &mut Criterion) {
    const R: usize = 1_000_000;
    let resources = RocksDbResources::with_budget(256 << 20);
    let records: Vec<ChangelogRecord> = (0..R)
        .map(|i| ChangelogRecord {
            offset: i as i64,
            key: format!("key-{:010}", (i * 7919) % R).into_bytes(),
            value: Some(vec![b'v'; 100]),
        })
        .collect();
    let mut g = c.benchmark_group("restore");
    g.throughput(Throughput::Elements(R as u64));
    g.sample_size(10);
    g.bench_function("rocksdb_1m_100b", |b| {
        b.iter_batched(
            || {
                let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
                let store = RocksDbKeyValueStore::open("s", &dir.path().join("s"), &resources)
                    .unwrap_or_else(|e| panic!("{e}"));
                (dir, store, records.clone())
            },
            |(dir, mut store, recs)| {
                let s = restore_store(
                    &mut store,
                    recs.into_iter().map(Ok),
                    0,
                    R as i64,
                    10_000,
                    &NoopRestoreListener,
                )
                .unwrap_or_else(|e| panic!("{e}"));
                assert_eq!(s.restored, R as u64);
                (dir, store)
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

criterion_group!(state, put_get_range, restore);
criterion_main!(state);
