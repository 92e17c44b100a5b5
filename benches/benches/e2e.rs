//! End-to-end benchmarks of the runtime (`KafkaStreams`, one stream thread) on the embedded
//! log engine, with the standard workloads of docs/BENCHMARKS.md:
//!
//! - W0 read: every input record read through the engine, and through the embedded consumer
//!   the runtime uses (the ceiling);
//! - W1 stateless: parse JSON -> filter referrer != "bot" -> map_values (page, ts) -> topic;
//! - W2 count: group by page (repartition) -> count (RocksDB, changelog, cache 10 MiB) -> topic;
//! - W3 windowed: group by key -> 1-minute tumbling windows, grace 10 s -> count -> topic;
//! - W5 sessions: group by key -> session windows, 30-minute gap, grace 1 min -> count -> topic;
//! - W4 restore: a count over 1,000,000 distinct keys; close, delete the state directory,
//!   restart and time until the output of a newly appended record appears;
//! - W6 enrichment: a 100,000-user table (loaded in the same run) left-joined by the views;
//! - W7 click attribution: views left-joined with clicks (one view in five clicked 0-5
//!   minutes later) on (user, page) within 30 minutes, grace 1 minute;
//! - fk (not a standard workload): the views as a table of each user's latest view, joined by
//!   foreign key (the page) with a 10,000-page table: foreign-key join update throughput.
//!
//! A plain `main` (no criterion): these are long runs. Each workload runs `E2E_RUNS` times
//! (default 3) over `E2E_RECORDS` pre-filled page views (default 2,000,000), each run with a
//! fresh application id and state directory; the medians, min and max go to stdout as a
//! markdown table. `E2E_RESTORE_KEYS` sets W4's key count (default 1,000,000);
//! `E2E_THREADS` sets the stream threads per app (default 1); `E2E_DSL_STORE=in_memory`
//! runs the DSL's stores in memory instead of on RocksDB;
//! `E2E_WORKLOADS` (e.g. `w1,w3`) runs only some of W1-W7, fk, w2-eos (W2 under
//! `exactly_once_v2`) (W0 always runs).
//! Run with `cargo bench -p streams-benches --bench e2e`.

#![allow(missing_docs)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use streams_core::client::embedded::EmbeddedClients;
use streams_core::client::{ClientSupplier, NoRebalanceListener, TopicPartition};
use streams_core::partitioner::partition_for_key;
use streams_core::prelude::*;
use streams_core::runtime::{KafkaStreams, LogEngine, NewRecord, TaskState, TopicConfig};

use streams_benches::{
    ALLOCATOR, BoxResult, CLICKS, Click, EPOCH_MS, INPUT, PAGES, PARTITIONS, PageView, USERS,
    clicks, env_usize, loadavg, page_views, pages, rate, stats, users, w1, w2, w3, w5, w6, w7, wfk,
};

/// Every Rust allocation of the process, counted (allocations per record in the report).
#[cfg(not(feature = "mimalloc"))]
#[global_allocator]
static GLOBAL: &stats_alloc::StatsAlloc<std::alloc::System> = &stats_alloc::INSTRUMENTED_SYSTEM;

/// mimalloc (`--features mimalloc`), not counted.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Rust allocations of the process so far (0 under mimalloc: not counted).
fn allocs_now() -> u64 {
    #[cfg(not(feature = "mimalloc"))]
    return streams_benches::allocations(GLOBAL);
    #[cfg(feature = "mimalloc")]
    0
}

const RESTORE_INPUT: &str = "distinct_keys";
const TIMEOUT: Duration = Duration::from_secs(1800);

/// Appends keyed records in batches of 1,000 per partition (murmur2 of the key, as the
/// producer would); returns the value bytes written.
/// Creates `topic` and fills it with a table's rows, one ms apart from `first_ts`.
fn fill_table<V: DefaultSerde>(
    engine: &LogEngine,
    topic: &str,
    rows: impl Iterator<Item = (String, V)>,
    first_ts: i64,
) -> BoxResult<usize> {
    engine.create_topic(topic, TopicConfig::new(PARTITIONS))?;
    let serde = V::default_serde();
    let mut records = Vec::new();
    for (i, (key, value)) in rows.enumerate() {
        let ts = first_ts + i as i64;
        records.push((key.into_bytes(), serde.serialize(&value)?, ts));
    }
    fill(engine, topic, records.into_iter())
}

fn fill(
    engine: &LogEngine,
    topic: &str,
    records: impl Iterator<Item = (Vec<u8>, Vec<u8>, i64)>,
) -> BoxResult<usize> {
    let mut batches: Vec<Vec<NewRecord>> = vec![Vec::new(); PARTITIONS as usize];
    let mut bytes = 0;
    for (key, value, timestamp) in records {
        bytes += value.len();
        let p = partition_for_key(&key, PARTITIONS) as usize;
        batches[p].push(NewRecord {
            timestamp,
            key: Some(key),
            value: Some(value),
            headers: Vec::new(),
        });
        if batches[p].len() == 1_000 {
            engine.append(topic, p as u32, &batches[p])?;
            batches[p].clear();
        }
    }
    for (p, batch) in batches.iter().enumerate() {
        if !batch.is_empty() {
            engine.append(topic, p as u32, batch)?;
        }
    }
    engine.flush()?;
    Ok(bytes)
}

// ---- Helpers ----

/// Records in a topic (sum of its partitions' end - start offsets).
fn topic_len(engine: &LogEngine, topic: &str) -> BoxResult<i64> {
    let Some(config) = engine.topic_config(topic) else {
        return Ok(0);
    };
    let mut n = 0;
    for p in 0..config.partitions {
        let (start, end) = engine.offsets(topic, p)?;
        n += end - start;
    }
    Ok(n)
}

/// Deletes a finished run's output and internal topics (keeps the disk small).
fn drop_topics(engine: &LogEngine, app: &str, output: &str) -> BoxResult<()> {
    for (name, _) in engine.topics() {
        if name == output || name.starts_with(&format!("{app}-")) {
            engine.delete_topic(&name)?;
        }
    }
    Ok(())
}

/// Stream threads per app: `E2E_THREADS`, default 1.
fn threads() -> usize {
    std::env::var("E2E_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
}

/// The DSL's store engine: `E2E_DSL_STORE=in_memory` for in-memory stores, else RocksDB.
fn dsl_store() -> streams_core::config::DslStore {
    match std::env::var("E2E_DSL_STORE").as_deref() {
        Ok("in_memory") => streams_core::config::DslStore::InMemory,
        _ => streams_core::config::DslStore::RocksDb,
    }
}

fn config(app: &str, state: &std::path::Path) -> StreamsConfig {
    StreamsConfig::new(app)
        .with_state_dir(state)
        .with_default_dsl_store(dsl_store())
        .with_num_stream_threads(threads())
        .with_cache_max_bytes(10 << 20)
        // The poll wait only matters once the input is exhausted: a short one keeps the
        // idle tail of wait_until_caught_up (two more loops of the thread) small.
        .with_poll(Duration::from_millis(10))
}

/// One throughput run of `topology` over the pre-filled input: start() to caught up
/// (every input partition processed and committed). Returns (seconds, records processed
/// by the thread, output records).
fn run_app(
    engine: &Arc<LogEngine>,
    base: &std::path::Path,
    app: &str,
    output: &str,
    topology: Topology,
) -> BoxResult<(f64, u64, i64, u64, u64)> {
    let state = base.join(format!("state-{app}"));
    let mut cfg = config(app, &state);
    if app.contains("-eos-") {
        // The same workload under exactly_once_v2 (commit.interval.ms defaults to 100).
        cfg =
            cfg.with_processing_guarantee(streams_core::config::ProcessingGuarantee::ExactlyOnceV2);
    }
    let mut streams = KafkaStreams::new(topology, cfg, engine.clone())?;
    let allocs0 = allocs_now();
    let t0 = Instant::now();
    streams.start()?;
    streams.wait_until_caught_up(TIMEOUT)?;
    let secs = t0.elapsed().as_secs_f64();
    let allocs = allocs_now() - allocs0;
    let processed = streams.metrics().total().processed;
    streams.close()?;
    let out = topic_len(engine, output)?;
    let state_bytes = dir_bytes(&state);
    drop_topics(engine, app, output)?;
    std::fs::remove_dir_all(&state)?;
    Ok((secs, processed, out, state_bytes, allocs))
}

/// Bytes of the files under `dir` (the state stores on disk after a clean close).
fn dir_bytes(dir: &std::path::Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_bytes(&e.path()),
            _ => e.metadata().map_or(0, |m| m.len()),
        })
        .sum()
}

fn w4(output: &str) -> BoxResult<Topology> {
    let builder = StreamsBuilder::new();
    builder
        .stream::<String, String>(RESTORE_INPUT)
        .group_by_key()
        .count()
        .to_stream()
        .to(output);
    Ok(builder.build()?)
}

/// W0 through the engine: every partition read to its end in 1 MiB fetches.
fn read_engine(engine: &LogEngine, n: usize) -> BoxResult<f64> {
    let t0 = Instant::now();
    let mut count = 0;
    let mut bytes = 0;
    for p in 0..PARTITIONS {
        let mut next = 0;
        loop {
            let batch = engine.read(INPUT, p, next, 1 << 20)?;
            let Some(last) = batch.last() else { break };
            next = last.offset + 1;
            count += batch.len();
            bytes += batch
                .iter()
                .map(|r| r.value.as_ref().map_or(0, Vec::len))
                .sum::<usize>();
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    if count != n || bytes == 0 {
        return Err(format!("W0 engine read {count} records, expected {n}").into());
    }
    Ok(secs)
}

/// W0 through the embedded consumer the runtime uses (manual assignment, no group).
fn read_consumer(engine: &Arc<LogEngine>, n: usize) -> BoxResult<f64> {
    let clients = EmbeddedClients::new(engine.clone());
    let t0 = Instant::now();
    let mut consumer = clients.restore_consumer("w0")?;
    let partitions: Vec<(TopicPartition, i64)> = (0..PARTITIONS)
        .map(|p| (TopicPartition::new(INPUT, p), 0))
        .collect();
    consumer.assign(&partitions)?;
    let mut count = 0;
    let mut empty = 0;
    while count < n {
        let records = consumer.poll(Duration::from_millis(100), &mut NoRebalanceListener)?;
        if records.is_empty() {
            empty += 1;
            if empty > 10 {
                return Err(format!("W0 consumer stalled at {count} of {n} records").into());
            }
        }
        count += records.len();
    }
    Ok(t0.elapsed().as_secs_f64())
}

/// One W4 run: build a count over `keys` distinct keys, close, delete the state directory,
/// append one record of an existing key and restart. Returns
/// (build seconds, changelog records restored, restore seconds, seconds to first output).
fn restore_run(
    engine: &Arc<LogEngine>,
    base: &std::path::Path,
    app: &str,
    keys: usize,
) -> BoxResult<(f64, u64, f64, f64)> {
    let output = format!("{app}-out");
    let state = base.join(format!("state-{app}"));

    // Build the store (its changelog holds one record per key).
    let mut streams = KafkaStreams::new(w4(&output)?, config(app, &state), engine.clone())?;
    let t0 = Instant::now();
    streams.start()?;
    streams.wait_until_caught_up(TIMEOUT)?;
    let build = t0.elapsed().as_secs_f64();
    streams.close()?;

    // Lose the local state.
    std::fs::remove_dir_all(state.join(app))?;

    // A new record of a key the store holds: its count must come out restored (>= 2).
    let key = b"key-0000000".to_vec();
    let p = partition_for_key(&key, PARTITIONS);
    let (_, input_end) = engine.offsets(RESTORE_INPUT, p)?;
    engine.append(
        RESTORE_INPUT,
        p,
        &[NewRecord {
            timestamp: EPOCH_MS + input_end,
            key: Some(key.clone()),
            value: Some(b"\"x\"".to_vec()),
            headers: Vec::new(),
        }],
    )?;
    let (_, out_before) = engine.offsets(&output, p)?;

    // Restart. Caching off: the update goes out as soon as it is processed, not at the
    // next commit, so the time measured is restore + processing, not the commit interval.
    let cfg = config(app, &state).with_cache_max_bytes(0);
    let mut streams = KafkaStreams::new(w4(&output)?, cfg, engine.clone())?;
    let t0 = Instant::now();
    streams.start()?;
    let mut restored_at = None;
    let mut restore_total = 0u64;
    let first_output = loop {
        let m = streams.metrics();
        let tasks: Vec<_> = m.tasks().collect();
        let total: u64 = tasks.iter().map(|t| t.restore_total.max(t.restored)).sum();
        restore_total = restore_total.max(total);
        if restored_at.is_none()
            && tasks.len() == PARTITIONS as usize
            && tasks.iter().all(|t| t.state == TaskState::Running)
        {
            restored_at = Some(t0.elapsed().as_secs_f64());
        }
        if engine.offsets(&output, p)?.1 > out_before {
            break t0.elapsed().as_secs_f64();
        }
        if t0.elapsed() > TIMEOUT {
            return Err("W4: no output after the restart".into());
        }
        std::thread::sleep(Duration::from_millis(1));
    };
    // The restored count of the key plus the new record.
    let out = engine.read(&output, p, out_before, 1 << 20)?;
    let value = out
        .iter()
        .find(|r| r.key.as_deref() == Some(key.as_slice()))
        .and_then(|r| r.value.clone())
        .ok_or("W4: the new record's count is missing")?;
    let count = i64::from_be_bytes(
        value
            .as_slice()
            .try_into()
            .map_err(|_| format!("W4: count of {} bytes", value.len()))?,
    );
    if count < 2 {
        return Err(format!("W4: count {count} after the restart: state was not restored").into());
    }
    streams.close()?;
    let restored_at = restored_at.unwrap_or(first_output);
    if restore_total < keys as u64 {
        eprintln!(
            "W4: the metrics show {restore_total} changelog records restored, expected >= {keys}"
        );
    }
    drop_topics(engine, app, &output)?;
    std::fs::remove_dir_all(&state)?;
    Ok((build, restore_total, restored_at, first_output))
}

// ---- Statistics and report ----

struct Row {
    name: &'static str,
    what: String,
    rates: Vec<f64>,
    /// Rust allocations per input record, one per run (empty: not measured).
    allocs: Vec<f64>,
}

fn main() -> BoxResult<()> {
    let n = env_usize("E2E_RECORDS", 2_000_000)?;
    let runs = env_usize("E2E_RUNS", 3)?.max(1);
    let keys = env_usize("E2E_RESTORE_KEYS", 1_000_000)?;
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let load_before = loadavg();
    eprintln!(
        "e2e: {n} records, {runs} runs, {keys} restore keys, {cores} cores, load {load_before}"
    );

    let only = std::env::var("E2E_WORKLOADS").ok();
    let want = |w: &str| {
        only.as_ref()
            .is_none_or(|o| o.split(',').any(|x| x.trim().eq_ignore_ascii_case(w)))
    };
    let dir = tempfile::tempdir()?;
    // E2E_COMMIT_FSYNC=0: transactions' commits do not sync (they survive a process crash,
    // not a power loss; docs/EXACTLY_ONCE.md).
    let commit_fsync = std::env::var("E2E_COMMIT_FSYNC").map_or(true, |v| v != "0");
    let engine = Arc::new(LogEngine::open_with(
        &dir.path().join("log"),
        streams_core::runtime::EngineConfig::default().with_commit_fsync(commit_fsync),
    )?);
    engine.create_topic(INPUT, TopicConfig::new(PARTITIONS))?;
    let serde = PageView::default_serde();
    let t0 = Instant::now();
    let mut non_bot = 0i64;
    let mut values = Vec::with_capacity(n);
    let mut views = Vec::new();
    for view in page_views(42).take(n) {
        if want("w7") {
            views.push(view.clone());
        }
        if view.referrer != "bot" {
            non_bot += 1;
        }
        values.push((
            view.user_id.clone().into_bytes(),
            serde.serialize(&view)?,
            view.ts,
        ));
    }
    let bytes = fill(&engine, INPUT, values.into_iter())?;
    eprintln!(
        "pre-filled {n} page views ({:.0} value bytes on average) in {:.1?}",
        bytes as f64 / n as f64,
        t0.elapsed()
    );

    // W6's users (before every view in event time) and W7's clicks.
    if want("w6") {
        fill_table(&engine, USERS, users(), EPOCH_MS - 200_000)?;
    }
    let mut click_count = 0;
    if want("w7") {
        engine.create_topic(CLICKS, TopicConfig::new(PARTITIONS))?;
        let serde = Click::default_serde();
        let mut records = Vec::new();
        for c in clicks(&views, 7) {
            records.push((c.user_id.clone().into_bytes(), serde.serialize(&c)?, c.ts));
        }
        click_count = records.len();
        fill(&engine, CLICKS, records.into_iter())?;
        eprintln!("pre-filled {click_count} clicks");
    }
    if want("fk") {
        fill_table(&engine, PAGES, pages(), EPOCH_MS - 20_000)?;
    }
    drop(views);
    type Build = fn(&str) -> BoxResult<Topology>;
    let apps: [(&str, &str, Build); 8] = [
        ("w1", "W1 stateless", w1),
        ("w2", "W2 count", w2),
        ("w2-eos", "W2 count, exactly_once_v2", w2),
        ("w3", "W3 windowed", w3),
        ("w5", "W5 sessions", w5),
        ("w6", "W6 enrichment", w6),
        ("w7", "W7 click attribution", w7),
        ("fk", "FK join updates", wfk),
    ];
    let (mut w0e, mut w0c) = (vec![], vec![]);
    let mut app_rates: Vec<Vec<f64>> = vec![vec![]; apps.len()];
    let mut app_allocs: Vec<Vec<f64>> = vec![vec![]; apps.len()];
    for run in 0..runs {
        let secs = read_engine(&engine, n)?;
        w0e.push(n as f64 / secs);
        let secs = read_consumer(&engine, n)?;
        w0c.push(n as f64 / secs);
        eprintln!(
            "run {run}: W0 engine {}/s, consumer {}/s",
            rate(w0e[run]),
            rate(w0c[run])
        );
        for (i, (id, name, build)) in apps.iter().enumerate() {
            if !want(id) {
                continue;
            }
            let app = format!("e2e-{id}-{run}");
            let out = format!("{app}-out");
            let (secs, processed, written, state_bytes, allocs) =
                run_app(&engine, dir.path(), &app, &out, build(&out)?)?;
            if *id == "w1" && written != non_bot {
                return Err(format!("W1 wrote {written} records, expected {non_bot}").into());
            }
            // W7 counts the input records of both topics.
            let inputs = if *id == "w7" { n + click_count } else { n };
            if *id == "w6" && written != n as i64 {
                return Err(format!("{name} wrote {written} records, expected {n}").into());
            }
            app_rates[i].push(inputs as f64 / secs);
            app_allocs[i].push(allocs as f64 / inputs as f64);
            eprintln!(
                "run {run}: {name} {secs:.2} s, {}/s ({processed} records processed (repartitioned ones included), {written} out, state on disk {:.1} MiB, {:.1} allocations per input record), load {}",
                rate(inputs as f64 / secs),
                state_bytes as f64 / (1 << 20) as f64,
                allocs as f64 / inputs as f64,
                loadavg()
            );
        }
    }
    let mut rows = vec![
        Row {
            name: "W0 read (engine)",
            what: "`LogEngine::read`, 1 MiB fetches, 4 partitions".into(),
            rates: w0e,
            allocs: vec![],
        },
        Row {
            name: "W0 read (consumer)",
            what: "embedded `Consumer::poll`, manual assignment".into(),
            rates: w0c.clone(),
            allocs: vec![],
        },
    ];
    let what = [
        "JSON parse → filter bots → map_values → JSON → topic",
        "group by page (repartition) → count, RocksDB, changelog, cache 10 MiB → topic",
        "W2 under exactly_once_v2: one transaction per 100 ms commit, read_committed consumers",
        "group_by_key → 1-min tumbling, grace 10 s → count, RocksDB, cache 10 MiB → topic",
        "group_by_key → sessions, 30-min gap, grace 1 min → count, RocksDB, cache 10 MiB → topic",
        "100k users table (loaded in the same run) ⋈ page views (left join_table) → JSON → topic",
        "views and clicks re-keyed by (user, page) (2 repartitions) → left join, 30 min, grace 1 min, RocksDB → topic; rate over views + clicks",
        "views as a table of 100k users' latest view ⋈ 10k pages by foreign key (page): subscription + response topics → topic; rate over view updates",
    ];
    for (i, (rates, allocs)) in app_rates.into_iter().zip(app_allocs).enumerate() {
        if !rates.is_empty() {
            rows.push(Row {
                name: apps[i].1,
                what: what[i].into(),
                rates,
                allocs,
            });
        }
    }

    // W4: its own input of `keys` distinct keys.
    let (mut build, mut restore_rate, mut restore_secs, mut first) =
        (vec![], vec![], vec![], vec![]);
    if want("w4") {
        engine.create_topic(RESTORE_INPUT, TopicConfig::new(PARTITIONS))?;
        fill(
            &engine,
            RESTORE_INPUT,
            (0..keys).map(|i| {
                (
                    format!("key-{i:07}").into_bytes(),
                    b"\"x\"".to_vec(),
                    EPOCH_MS + i as i64,
                )
            }),
        )?;
        for run in 0..runs {
            let app = format!("e2e-w4-{run}");
            let (b, restored, r, f) = restore_run(&engine, dir.path(), &app, keys)?;
            build.push(keys as f64 / b);
            restore_rate.push(restored as f64 / r);
            restore_secs.push(r);
            first.push(f);
            eprintln!(
                "run {run}: W4 build {b:.2} s ({}/s); restart: {restored} changelog records restored in {r:.2} s ({}/s), first output at {f:.2} s, load {}",
                rate(keys as f64 / b),
                rate(restored as f64 / r),
                loadavg()
            );
        }
        rows.push(Row {
            name: "W4 build",
            what: format!("count over {keys} distinct keys (every record a new key), RocksDB"),
            rates: build,
            allocs: vec![],
        });
    }
    let load_after = loadavg();

    let (w0, _, _) = stats(&w0c);
    println!();
    println!(
        "{n} page views, {PARTITIONS} partitions, {} stream thread(s), embedded engine, {runs} runs, {cores} cores; load average before {load_before}, after {load_after}",
        threads()
    );
    println!();
    println!(
        "| workload | pipeline | median records/s | min | max | median / W0 (consumer) | Rust allocations / input record ({ALLOCATOR}) |"
    );
    println!("|---|---|---|---|---|---|---|");
    for row in &rows {
        let (m, lo, hi) = stats(&row.rates);
        let allocs = if row.allocs.is_empty() || cfg!(feature = "mimalloc") {
            "—".to_string()
        } else {
            format!("{:.1}", stats(&row.allocs).0)
        };
        println!(
            "| {} | {} | {} | {} | {} | {:.2} | {allocs} |",
            row.name,
            row.what,
            rate(m),
            rate(lo),
            rate(hi),
            m / w0
        );
    }
    if restore_secs.is_empty() {
        return Ok(());
    }
    println!();
    let (rm, rlo, rhi) = stats(&restore_rate);
    let (sm, slo, shi) = stats(&restore_secs);
    let (fm, flo, fhi) = stats(&first);
    println!("| W4 restart ({keys} keys of state, state directory deleted) | median | min | max |");
    println!("|---|---|---|---|");
    println!("| start() → every task running (s) | {sm:.2} | {slo:.2} | {shi:.2} |");
    println!("| start() → first output of a new record (s) | {fm:.2} | {flo:.2} | {fhi:.2} |");
    println!(
        "| restore rate (changelog records/s) | {} | {} | {} |",
        rate(rm),
        rate(rlo),
        rate(rhi)
    );
    Ok(())
}
