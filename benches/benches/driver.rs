//! Throughput of whole topologies through the test driver (one core, in-memory stores):
//! a 5-operator stateless pipeline and a count. Run with
//! `cargo bench -p streams-benches --bench driver`.

// criterion_group! generates undocumented public functions.
#![allow(missing_docs)]

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use streams_core::prelude::*;

const N: usize = 200_000;
const KEYS: usize = 10_000;

fn records() -> Vec<Record<String, i64>> {
    (0..N)
        .map(|i| Record::new(format!("user-{}", (i * 7919) % KEYS), i as i64, i as i64))
        .collect()
}

/// source -> filter -> map_values -> filter_not -> map_values -> peek -> sink.
fn stateless() -> Topology {
    let builder = StreamsBuilder::new();
    builder
        .stream::<String, i64>("in")
        .filter(|_, v| v % 10 != 0)
        .map_values(|v| v * 3)
        .filter_not(|_, v| v % 7 == 0)
        .map_values(|v| v + 1)
        .peek(|_, _| {})
        .to("out");
    builder.build().unwrap_or_else(|e| panic!("{e}"))
}

/// source -> group_by_key -> count (in-memory store) -> to_stream -> sink.
fn count() -> Topology {
    let builder = StreamsBuilder::new();
    builder
        .stream::<String, i64>("in")
        .group_by_key()
        .count()
        .to_stream()
        .to("out");
    builder.build().unwrap_or_else(|e| panic!("{e}"))
}

/// source -> group_by_key -> 1-minute tumbling windows (grace 10 s) -> count -> sink.
fn windowed_count() -> Topology {
    let builder = StreamsBuilder::new();
    builder
        .stream::<String, i64>("in")
        .group_by_key()
        .windowed_by(streams_core::window::TimeWindows::of_size_and_grace(
            std::time::Duration::from_secs(60),
            std::time::Duration::from_secs(10),
        ))
        .count()
        .to_stream()
        .to("out");
    builder.build().unwrap_or_else(|e| panic!("{e}"))
}

/// source -> group_by_key -> 5-minute windows advancing by 1 minute -> count -> sink.
fn hopping_count() -> Topology {
    let builder = StreamsBuilder::new();
    builder
        .stream::<String, i64>("in")
        .group_by_key()
        .windowed_by(
            streams_core::window::TimeWindows::of_size_and_grace(
                std::time::Duration::from_secs(300),
                std::time::Duration::from_secs(10),
            )
            .advance_by(std::time::Duration::from_secs(60)),
        )
        .count()
        .to_stream()
        .to("out");
    builder.build().unwrap_or_else(|e| panic!("{e}"))
}

/// source -> group_by_key -> sessions with a 30-minute gap -> count -> sink.
fn session_count() -> Topology {
    let builder = StreamsBuilder::new();
    builder
        .stream::<String, i64>("in")
        .group_by_key()
        .windowed_by_session(
            streams_core::window::SessionWindows::of_inactivity_gap_with_no_grace(
                std::time::Duration::from_secs(1800),
            ),
        )
        .count()
        .to_stream()
        .to("out");
    builder.build().unwrap_or_else(|e| panic!("{e}"))
}

fn run(c: &mut Criterion, name: &str, topology: fn() -> Topology, config: fn() -> StreamsConfig) {
    let mut group = c.benchmark_group("driver");
    group.throughput(Throughput::Elements(N as u64));
    group.sample_size(10);
    let input = records();
    group.bench_function(name, |b| {
        b.iter_batched(
            || {
                let driver =
                    TopologyTestDriver::new(topology(), config()).unwrap_or_else(|e| panic!("{e}"));
                (driver, input.clone())
            },
            |(driver, recs)| {
                driver
                    .input_topic::<String, i64>("in")
                    .pipe_records(recs)
                    .unwrap_or_else(|e| panic!("{e}"));
                driver
            },
            BatchSize::PerIteration,
        );
    });
    group.finish();
}

fn in_memory() -> StreamsConfig {
    StreamsConfig::new("bench").with_default_dsl_store(streams_core::config::DslStore::InMemory)
}

fn rocksdb() -> StreamsConfig {
    StreamsConfig::new("bench")
}

fn benches(c: &mut Criterion) {
    run(c, "stateless_5_ops", stateless, in_memory);
    run(c, "count_in_memory", count, in_memory);
    run(c, "count_rocksdb", count, rocksdb);
    run(c, "windowed_count_rocksdb", windowed_count, rocksdb);
    run(c, "hopping_5m_by_1m_count_rocksdb", hopping_count, rocksdb);
    run(c, "session_30m_count_rocksdb", session_count, rocksdb);
}

criterion_group!(driver, benches);
criterion_main!(driver);
