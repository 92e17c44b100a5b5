//! End-to-end latency at a fixed input rate (issue #18), on the embedded engine.
//!
//! A producer thread appends page views (docs/BENCHMARKS.md's generator) to the input topic
//! at `LATENCY_RATE` records/s (default 50,000), each stamped with the wall clock (ms since
//! the epoch) when it is appended, in per-partition batches every millisecond or so, while
//! the app runs on one stream thread. The main thread tails the output topic and takes, for
//! each output record, now − the record's timestamp: every workload here passes the input
//! timestamp through (a stateless record keeps it, a count's update and a window's count
//! take the timestamp of the input record that changed them, the largest so far). Output
//! records stamped in the first `LATENCY_WARMUP` seconds (default 5) are not counted; the
//! producer runs `LATENCY_SECONDS` more (default 20), then the reader waits for the tail.
//!
//! Resolution: timestamps are whole milliseconds, so a latency is over-stated by up to 1 ms
//! (0.5 ms on average).
//!
//! Workloads (`LATENCY_WORKLOADS`, default all):
//! - `w1`: W1 stateless;
//! - `w2`: W2 count with the record cache off (every update goes out as it is processed);
//! - `w2-cache`: W2 with the 10 MiB cache and `commit.interval.ms` 1000: updates go out
//!   when the cache flushes, at the latest at each commit, so latency is bounded by the
//!   commit interval (as in Kafka Streams);
//! - `w3`: W3 1-minute tumbling count, cache off;
//! - `w5`: W5 sessions, cache off.
//!
//! `LATENCY_CSV=<file>` appends one line per workload in the format of
//! `benches/examples/charts.rs`'s `latency.csv` (header written if the file is new).
//! Run with `cargo bench -p streams-benches --bench latency [--features mimalloc]`.

#![allow(missing_docs)]

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use streams_core::partitioner::partition_for_key;
use streams_core::prelude::*;
use streams_core::runtime::{KafkaStreams, LogEngine, NewRecord, TopicConfig};

use streams_benches::{
    ALLOCATOR, BoxResult, INPUT, PARTITIONS, PageView, env_usize, loadavg, page_views, w1, w2, w3,
    w5,
};

/// mimalloc (`--features mimalloc`), as the shipped binaries use.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Wall-clock milliseconds since the epoch, with the fraction.
fn now_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64() * 1e3)
}

/// Appends `rate` records/s for `seconds`, each stamped with the wall clock when appended.
/// Returns the records appended.
fn produce(engine: &LogEngine, rate: usize, seconds: usize, stop: &AtomicBool) -> BoxResult<u64> {
    let serde = PageView::default_serde();
    let mut views = page_views(42);
    let total = (rate * seconds) as u64;
    let mut batches: Vec<Vec<NewRecord>> = vec![Vec::new(); PARTITIONS as usize];
    let start = Instant::now();
    let mut sent = 0u64;
    while sent < total && !stop.load(Ordering::Relaxed) {
        let due = ((start.elapsed().as_secs_f64() * rate as f64) as u64).min(total);
        if due == sent {
            std::thread::sleep(Duration::from_micros(200));
            continue;
        }
        let now = now_ms() as i64;
        for _ in sent..due {
            let mut view = views.next().ok_or("the page view generator ended")?;
            view.ts = now;
            let key = view.user_id.clone().into_bytes();
            let p = partition_for_key(&key, PARTITIONS) as usize;
            batches[p].push(NewRecord {
                timestamp: now,
                key: Some(key),
                value: Some(serde.serialize(&view)?),
                headers: Vec::new(),
            });
        }
        for (p, batch) in batches.iter_mut().enumerate() {
            if !batch.is_empty() {
                engine.append(INPUT, p as u32, batch)?;
                batch.clear();
            }
        }
        sent = due;
    }
    Ok(sent)
}

/// One workload's measurement.
struct Measured {
    /// Latencies (ms) of the output records stamped after the warm-up, sorted.
    latencies: Vec<f64>,
    /// Input records appended.
    sent: u64,
    /// Output records read (warm-up included).
    outputs: u64,
}

/// Runs `topology` against a producer at `rate` and tails `output`.
fn measure(
    topology: Topology,
    config: StreamsConfig,
    output: &str,
    rate: usize,
    warmup: usize,
    seconds: usize,
    tail: Duration,
) -> BoxResult<Measured> {
    let dir = tempfile::tempdir()?;
    let engine = Arc::new(LogEngine::open(&dir.path().join("log"))?);
    engine.create_topic(INPUT, TopicConfig::new(PARTITIONS))?;
    let config = config.with_state_dir(dir.path().join("state"));
    let mut streams = KafkaStreams::new(topology, config, engine.clone())?;
    streams.start()?;
    // Let the thread take its tasks before the clock starts.
    streams.wait_until_caught_up(Duration::from_secs(60))?;

    let stop = Arc::new(AtomicBool::new(false));
    let measured_from = now_ms() + (warmup * 1000) as f64;
    let producer = {
        let (engine, stop) = (engine.clone(), stop.clone());
        std::thread::spawn(move || {
            produce(&engine, rate, warmup + seconds, &stop).map_err(|e| e.to_string())
        })
    };

    let mut latencies = Vec::with_capacity(rate * seconds);
    let mut outputs = 0u64;
    let mut next: Vec<i64> = Vec::new();
    let mut produced_at: Option<Instant> = None;
    let result = loop {
        if next.is_empty()
            && let Some(c) = engine.topic_config(output)
        {
            next = vec![0; c.partitions as usize];
        }
        let mut read = 0;
        for (p, offset) in next.iter_mut().enumerate() {
            let records = engine.read(output, p as u32, *offset, 1 << 20)?;
            let now = now_ms();
            for r in &records {
                if r.timestamp as f64 >= measured_from {
                    latencies.push(now - r.timestamp as f64);
                }
            }
            if let Some(last) = records.last() {
                *offset = last.offset + 1;
            }
            read += records.len();
        }
        outputs += read as u64;
        if produced_at.is_none() && producer.is_finished() {
            produced_at = Some(Instant::now());
        }
        if produced_at.is_some_and(|t| t.elapsed() > tail) {
            break producer.join().map_err(|_| "the producer panicked")?;
        }
        if read == 0 {
            std::thread::sleep(Duration::from_micros(100));
        }
    };
    stop.store(true, Ordering::Relaxed);
    let sent = result?;
    streams.close()?;
    latencies.sort_by(f64::total_cmp);
    Ok(Measured {
        latencies,
        sent,
        outputs,
    })
}

/// The `q` quantile of sorted `values` (nearest rank).
fn quantile(values: &[f64], q: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    let rank = ((q * values.len() as f64).ceil() as usize).clamp(1, values.len());
    values[rank - 1]
}

fn main() -> BoxResult<()> {
    let rate = env_usize("LATENCY_RATE", 50_000)?.max(1);
    let seconds = env_usize("LATENCY_SECONDS", 20)?.max(1);
    let warmup = env_usize("LATENCY_WARMUP", 5)?;
    let only = std::env::var("LATENCY_WORKLOADS").ok();
    let want = |w: &str| {
        only.as_ref()
            .is_none_or(|o| o.split(',').any(|x| x.trim().eq_ignore_ascii_case(w)))
    };
    let csv = std::env::var("LATENCY_CSV").ok();
    let load_before = loadavg();
    eprintln!(
        "latency: {rate} records/s, {warmup} s warm-up + {seconds} s measured, {ALLOCATOR}, load {load_before}"
    );

    let base = |app: &str| {
        StreamsConfig::new(app)
            .with_num_stream_threads(1)
            .with_cache_max_bytes(0)
    };
    type Build = fn(&str) -> BoxResult<Topology>;
    let workloads: [(&str, &str, Build, StreamsConfig); 5] = [
        ("w1", "W1 stateless", w1, base("lat-w1")),
        ("w2", "W2 count (no cache)", w2, base("lat-w2")),
        (
            "w2-cache",
            "W2 count (cache 1 s)",
            w2,
            base("lat-w2c")
                .with_cache_max_bytes(10 << 20)
                .with_commit_interval(Duration::from_secs(1)),
        ),
        ("w3", "W3 windows (no cache)", w3, base("lat-w3")),
        ("w5", "W5 sessions (no cache)", w5, base("lat-w5")),
    ];
    let mut rows = Vec::new();
    for (id, name, build, config) in workloads {
        if !want(id) {
            continue;
        }
        let output = format!("lat-{id}-out");
        let m = measure(
            build(&output)?,
            config,
            &output,
            rate,
            warmup,
            seconds,
            Duration::from_secs(3),
        )?;
        let l = &m.latencies;
        let row = (
            name,
            quantile(l, 0.5),
            quantile(l, 0.9),
            quantile(l, 0.99),
            quantile(l, 0.999),
            l.last().copied().unwrap_or(f64::NAN),
        );
        eprintln!(
            "{name}: {} input records, {} outputs ({} measured), p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms, load {}",
            m.sent,
            m.outputs,
            l.len(),
            row.1,
            row.3,
            row.5,
            loadavg()
        );
        if l.is_empty() {
            return Err(format!("{name}: no output record after the warm-up").into());
        }
        rows.push((row, l.len()));
    }

    println!();
    println!(
        "{rate} page views/s for {warmup} s + {seconds} s, {PARTITIONS} partitions, 1 stream thread, embedded engine, {ALLOCATOR}; load average before {load_before}, after {}",
        loadavg()
    );
    println!();
    println!("| workload | outputs measured | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms |");
    println!("|---|---|---|---|---|---|---|");
    for ((name, p50, p90, p99, p999, max), n) in &rows {
        println!("| {name} | {n} | {p50:.1} | {p90:.1} | {p99:.1} | {p999:.1} | {max:.1} |");
    }
    if let Some(path) = csv {
        let new = !std::path::Path::new(&path).exists();
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)?;
        if new {
            writeln!(f, "workload,rate,p50_ms,p90_ms,p99_ms,max_ms")?;
        }
        for ((name, p50, p90, p99, _, max), _) in &rows {
            writeln!(
                f,
                "{},{rate},{p50:.2},{p90:.2},{p99:.2},{max:.2}",
                name.replace(',', ";")
            )?;
        }
    }
    Ok(())
}
