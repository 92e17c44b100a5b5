//! Embedded log engine benchmarks: appending and reading 100-byte records through
//! `LogEngine` (the goal is at least 5M records/s for append + read).
//! Run with `cargo bench -p streams-benches --bench engine`.

// criterion_group! generates undocumented public functions.
#![allow(missing_docs)]

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use streams_state::{LogEngine, NewRecord, TopicConfig};

const N: usize = 200_000;
const BATCH: usize = 1_000;

fn records() -> Vec<NewRecord> {
    (0..N)
        .map(|i| NewRecord {
            timestamp: 1_700_000_000_000 + i as i64,
            key: Some(format!("user-{:08}", i % 10_000).into_bytes()),
            value: Some(vec![b'v'; 100]),
            headers: Vec::new(),
        })
        .collect()
}

fn fresh() -> (tempfile::TempDir, LogEngine) {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let engine = LogEngine::open(dir.path()).unwrap_or_else(|e| panic!("{e}"));
    engine
        .create_topic("bench", TopicConfig::new(1))
        .unwrap_or_else(|e| panic!("{e}"));
    (dir, engine)
}

fn append_all(engine: &LogEngine, records: &[NewRecord]) {
    for chunk in records.chunks(BATCH) {
        engine
            .append("bench", 0, chunk)
            .unwrap_or_else(|e| panic!("{e}"));
    }
}

/// Reads the partition to its end in 1 MiB fetches, like the runtime's poll loop.
fn read_all(engine: &LogEngine) -> usize {
    let mut next = 0;
    let mut n = 0;
    loop {
        let batch = engine
            .read("bench", 0, next, 1 << 20)
            .unwrap_or_else(|e| panic!("{e}"));
        let Some(last) = batch.last() else { break };
        next = last.offset + 1;
        n += batch.len();
    }
    n
}

fn engine(c: &mut Criterion) {
    let records = records();
    let mut g = c.benchmark_group("log_engine");
    g.throughput(Throughput::Elements(N as u64));
    g.sample_size(10);
    g.bench_function("append_100b", |b| {
        b.iter_batched(
            fresh,
            |(dir, engine)| {
                append_all(&engine, &records);
                (dir, engine)
            },
            BatchSize::PerIteration,
        )
    });
    let (_dir, filled) = fresh();
    append_all(&filled, &records);
    g.bench_function("read_100b", |b| {
        b.iter(|| assert_eq!(read_all(&filled), N));
    });
    g.bench_function("append_then_read_100b", |b| {
        b.iter_batched(
            fresh,
            |(dir, engine)| {
                append_all(&engine, &records);
                assert_eq!(read_all(&engine), N);
                (dir, engine)
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

criterion_group!(benches, engine);
criterion_main!(benches);
